#!/usr/bin/env bash
# prvs_exim.sh - PRVS interoperation with Exim, an independent implementation.
#
# Unpacks Debian's exim4-daemon-light (plus any library it needs that is not
# installed, and libnss-wrapper) with `apt-get download` + `dpkg -x` into a
# private directory: nothing is installed. Exim runs only as
# `exim -C PRIVATE.conf -be '...'` (string expansion, no daemon, no mail). Its
# compiled-in user "Debian-exim" need not exist on this machine: nss_wrapper
# gives Exim a private passwd/group file instead. The .debs are cached in
# $1/prvs-exim-cache so reruns do not download again; the rest lives in a temp
# dir removed on exit.
#
# For several addresses, key numbers and secrets, with today's day:
#   gw-prvs sign          == Exim ${prvs{addr}{secret}{K}}
#   Exim ${prvscheck}     accepts our tags (and refuses tampered ones)
#   gw-prvs verify        accepts Exim's tags (and refuses tampered ones)
#   both agree on the expiry edge (DDD == today valid, DDD == today - 1 expired)
# Before that, the gw-prvs command line's exit statuses are checked (no Exim).
# Exits non-zero on any mismatch. Needs root (Exim accepts -C from root only).
set -euo pipefail
build=$1
gwprvs=$build/milter/gw-prvs
cache=${GW_PRVS_EXIM_CACHE:-$build/prvs-exim-cache}
work=$(mktemp -d)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
failures=0
mismatch() { echo "MISMATCH: $*" >&2; failures=$((failures + 1)); }

[ "$(id -u)" -eq 0 ] || fail "must run as root: Exim accepts -C only from root"
if [ ! -x "$gwprvs" ]; then
	cmake --build "$build" --target gw-prvs >/dev/null || fail "cannot build gw-prvs in $build"
fi

# ---- 0. the gw-prvs command line: exit statuses (no Exim needed) ----------------
expect() {   # want-status want-stdout args...
	local want=$1 want_out=$2 rc=0 out
	shift 2
	out=$("$gwprvs" "$@" 2>"$work/stderr") || rc=$?
	[ "$rc" -eq "$want" ] || mismatch "gw-prvs $*: exit $rc, want $want ($(cat "$work/stderr"))"
	[ "$want_out" = - ] || [ "$out" = "$want_out" ] || mismatch "gw-prvs $*: printed '$out', want '$want_out'"
}
printf '# test keys\n1 secret\n' >"$work/k"
chmod 600 "$work/k"
k=(--keys "$work/k" --day 20780)
expect 0 prvs=178773a1ad=user@example.com "${k[@]}" sign user@example.com
expect 1 '<>' "${k[@]}" sign '<>'
expect 1 prvs=178773a1ad=user@example.com "${k[@]}" sign prvs=178773a1ad=user@example.com
expect 5 '' "${k[@]}" sign not-an-address
expect 0 user@example.com "${k[@]}" verify prvs=178773a1ad=user@example.com
expect 0 user@example.com "${k[@]}" verify PRVS=178773A1AD=user@example.com
expect 1 user@example.com "${k[@]}" verify prvs=178773a1ae=user@example.com
expect 2 user@example.com --keys "$work/k" --day 20788 verify prvs=178773a1ad=user@example.com
expect 0 user@example.com --keys "$work/k" --day 20787 verify prvs=178773a1ad=user@example.com
expect 3 user@example.com "${k[@]}" verify prvs=278773a1ad=user@example.com
expect 4 user@example.com "${k[@]}" verify user@example.com
expect 5 '' "${k[@]}" verify prvs=1787=user@example.com
expect 0 user@example.com strip PRVS=178773a1ad=user@example.com
expect 4 user@example.com strip user@example.com
expect 5 '' strip prvs=x@y
expect 64 - "${k[@]}" verify
expect 64 - "${k[@]}" frobnicate x@y
expect 64 - --day yesterday sign x@y
expect 64 - keygen 12
expect 78 - --keys "$work/missing" sign x@y
chmod 640 "$work/k"
expect 78 - "${k[@]}" sign x@y
grep -q 'group or others' "$work/stderr" || mismatch "0640 key file: message '$(cat "$work/stderr")'"
chmod 600 "$work/k"
[[ "$("$gwprvs" keygen)" =~ ^0\ [0-9a-f]{64}$ ]] || mismatch "keygen output"
[ "$("$gwprvs" keygen 3)" != "$("$gwprvs" keygen 3)" ] || mismatch "keygen repeats itself"
[ "$failures" -eq 0 ] || fail "$failures gw-prvs command-line mismatches"
echo "gw-prvs command line: ok"

# ---- fetch and unpack Exim without installing it ------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
download() {   # packages... -> .debs in $cache (apt-get update once if the lists are missing)
	mkdir -p "$cache"
	local missing=() p
	for p in "$@"; do
		compgen -G "$cache/${p}_*.deb" >/dev/null || missing+=("$p")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	if ! (cd "$cache" && apt-get download "${missing[@]}") >"$work/apt.log" 2>&1; then
		apt-get update >>"$work/apt.log" 2>&1 || true
		(cd "$cache" && apt-get download "${missing[@]}") >>"$work/apt.log" 2>&1 ||
			{ cat "$work/apt.log" >&2; fail "apt-get download ${missing[*]} failed"; }
	fi
}

pkgs=(exim4-daemon-light libnss-wrapper)
# Libraries Exim links against that this machine lacks (libidn12 on a bare Debian 12).
if ! apt-cache show exim4-daemon-light >/dev/null 2>&1; then
	apt-get update >"$work/apt.log" 2>&1 || true
fi
while read -r dep; do
	case $dep in lib*) installed "$dep" || pkgs+=("$dep") ;; esac
done < <(apt-cache depends --important exim4-daemon-light 2>/dev/null | sed -n 's/^ *|\{0,1\}Depends: \([^<][^ ]*\)$/\1/p')
download "${pkgs[@]}"

root=$work/root
mkdir -p "$root"
for p in "${pkgs[@]}"; do
	for deb in "$cache/${p}"_*.deb; do dpkg -x "$deb" "$root"; done
done
exim=$root/usr/sbin/exim4
[ -x "$exim" ] || fail "no exim4 binary in exim4-daemon-light"
libdir=$(dirname "$(find "$root" -name 'libnss_wrapper.so*' | head -n1)")
[ -n "$libdir" ] || fail "no libnss_wrapper.so in libnss-wrapper"

# A private user database: Exim refuses to run as uid 0 for its exim user.
printf 'root:x:0:0:root:/root:/bin/sh\nDebian-exim:x:64999:64999:exim:/nonexistent:/usr/sbin/nologin\n' >"$work/passwd"
printf 'root:x:0:\nDebian-exim:x:64999:\n' >"$work/group"
mkdir -p "$work/spool"
cat >"$work/exim.conf" <<EOF
primary_hostname = prvs-test.example
spool_directory = $work/spool
log_file_path = $work/spool/%slog
EOF
chmod 644 "$work/exim.conf" # Exim refuses a -C file writable by others

run_exim() {   # expansion strings... -> one result per line
	LD_LIBRARY_PATH=$root/usr/lib/x86_64-linux-gnu:$libdir LD_PRELOAD=$libdir/libnss_wrapper.so \
		NSS_WRAPPER_PASSWD=$work/passwd NSS_WRAPPER_GROUP=$work/group \
		"$exim" -C "$work/exim.conf" -be "$@"
}
missing_libs=$(LD_LIBRARY_PATH=$root/usr/lib/x86_64-linux-gnu ldd "$exim" | grep 'not found' || true)
[ -z "$missing_libs" ] || fail "exim needs libraries that are missing: $missing_libs"
run_exim '${prvs{probe@example.com}{s}{0}}' >"$work/probe.out" 2>&1 ||
	{ cat "$work/probe.out" >&2; fail "exim -be does not run"; }
echo "using $(LD_LIBRARY_PATH=$root/usr/lib/x86_64-linux-gnu:$libdir LD_PRELOAD=$libdir/libnss_wrapper.so \
	NSS_WRAPPER_PASSWD=$work/passwd NSS_WRAPPER_GROUP=$work/group "$exim" -C "$work/exim.conf" -bV 2>/dev/null |
	head -n1 || true)"

# ---- test data ----------------------------------------------------------------
# Secrets avoid $ \ { } (Exim expansion syntax) and blanks (key file syntax).
keygen=$("$gwprvs" keygen 5) || fail "gw-prvs keygen failed"
[[ "$keygen" =~ ^5\ [0-9a-f]{64}$ ]] || fail "keygen printed '$keygen', want '5 <64 hex digits>'"
declare -A secret=(
	[0]='k3y!'
	[1]='secret'
	[5]=${keygen#5 }
	[9]='0123456789012345678901234567890123456789012345678901234567890123'
)
long_local=$(printf 'l%.0s' $(seq 48))
addrs=(
	'user@example.com'
	'Joe.Bloggs@Example.ORG'
	'first.last+tag@sub.example.net'
	'"a@b"@example.com'
	'x@y.z'
	"$long_local@example.com"
)
mkkeys() {   # file sign-key -> key file with every key, signing with sign-key
	{ echo "# prvs_exim.sh"; for k in "${!secret[@]}"; do echo "$k ${secret[$k]}"; done; echo "sign $2"; } >"$1"
	chmod 600 "$1"
}
for k in "${!secret[@]}"; do mkkeys "$work/keys$k" "$k"; done
check_expr() {   # tag secret -> Exim expansion: "ok:ADDRESS" when prvscheck accepts, else "bad"
	printf '${prvscheck{%s}{%s}{${if eq{$prvscheck_result}{1}{ok:$prvscheck_address}{bad}}}}' "$1" "$2"
}
tamper() {   # flip the last hex digit of a tag
	local t=$1 c=${1:14:1} n
	n=$([ "$c" = 0 ] && echo 1 || echo 0)
	echo "${t:0:14}$n${t:15}"
}

# Do not straddle midnight UTC: Exim reads the clock itself.
secs=$(( $(date +%s) % 86400 ))
[ "$secs" -lt 86370 ] || sleep $(( 86400 - secs + 1 ))
today=$(( $(date +%s) / 86400 ))

# ---- 1. our signature == Exim's ------------------------------------------------
exprs=() cases=()
for k in "${!secret[@]}"; do
	for a in "${addrs[@]}"; do
		exprs+=("$(printf '${prvs{%s}{%s}{%s}}' "$a" "${secret[$k]}" "$k")")
		cases+=("$k $a")
	done
done
mapfile -t exim_tags < <(run_exim "${exprs[@]}")
[ "${#exim_tags[@]}" -eq "${#cases[@]}" ] || fail "exim printed ${#exim_tags[@]} lines, want ${#cases[@]}"
ours=()
for i in "${!cases[@]}"; do
	k=${cases[$i]%% *} a=${cases[$i]#* }
	t=$("$gwprvs" --keys "$work/keys$k" --day "$today" sign "$a") || fail "gw-prvs sign $a failed"
	ours+=("$t")
	[ "$t" = "${exim_tags[$i]}" ] || mismatch "key $k $a: gw-prvs $t, exim ${exim_tags[$i]}"
done
echo "sign: ${#cases[@]} signatures compared"

# ---- 2. Exim accepts ours, refuses tampered ones -------------------------------
exprs=()
for i in "${!cases[@]}"; do
	k=${cases[$i]%% *}
	exprs+=("$(check_expr "${ours[$i]}" "${secret[$k]}")" "$(check_expr "$(tamper "${ours[$i]}")" "${secret[$k]}")")
done
mapfile -t res < <(run_exim "${exprs[@]}")
for i in "${!cases[@]}"; do
	a=${cases[$i]#* }
	[ "${res[$((2 * i))]:-}" = "ok:$a" ] || mismatch "exim prvscheck of ours ${ours[$i]}: got '${res[$((2 * i))]:-}', want 'ok:$a'"
	[ "${res[$((2 * i + 1))]:-}" = "bad" ] || mismatch "exim prvscheck of tampered $(tamper "${ours[$i]}"): got '${res[$((2 * i + 1))]:-}', want 'bad'"
done
echo "exim prvscheck: ${#cases[@]} of ours checked"

# ---- 3. we accept Exim's, refuse tampered ones ---------------------------------
for i in "${!cases[@]}"; do
	a=${cases[$i]#* } t=${exim_tags[$i]}
	rc=0; out=$("$gwprvs" --keys "$work/keys0" --day "$today" verify "$t" 2>/dev/null) || rc=$?
	[ "$rc" -eq 0 ] && [ "$out" = "$a" ] || mismatch "gw-prvs verify $t: exit $rc '$out', want 0 '$a'"
	upper="PRVS=$(echo "${t:5:10}" | tr a-f A-F)${t:15}"
	rc=0; "$gwprvs" --keys "$work/keys0" --day "$today" verify "$upper" >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || mismatch "gw-prvs verify $upper: exit $rc, want 0"
	rc=0; "$gwprvs" --keys "$work/keys0" --day "$today" verify "$(tamper "$t")" >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 1 ] || mismatch "gw-prvs verify tampered $(tamper "$t"): exit $rc, want 1 (bad signature)"
	rc=0; "$gwprvs" --keys "$work/keys0" --day "$((today + 8))" verify "$t" >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 2 ] || mismatch "gw-prvs verify $t on day $((today + 8)): exit $rc, want 2 (expired)"
done
echo "gw-prvs verify: ${#cases[@]} of Exim's checked"

# ---- 4. the expiry edge, judged by both -----------------------------------------
# Exim compares DDD >= today with a special case near the wrap, which differs
# from (DDD - today) mod 1000 <= 7 only in the last days before it; skip there.
if [ $((today % 1000)) -ge 8 ] && [ $((today % 1000)) -le 992 ]; then
	a=user@example.com
	edge=$("$gwprvs" --keys "$work/keys1" --day "$((today - 7))" sign "$a")   # DDD == today
	old=$("$gwprvs" --keys "$work/keys1" --day "$((today - 8))" sign "$a")    # DDD == today - 1
	mapfile -t res < <(run_exim "$(check_expr "$edge" "${secret[1]}")" "$(check_expr "$old" "${secret[1]}")")
	[ "${res[0]:-}" = "ok:$a" ] || mismatch "exim on $edge (DDD today): '${res[0]:-}', want ok"
	[ "${res[1]:-}" = "bad" ] || mismatch "exim on $old (DDD yesterday): '${res[1]:-}', want bad"
	rc=0; "$gwprvs" --keys "$work/keys1" --day "$today" verify "$edge" >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || mismatch "gw-prvs on $edge: exit $rc, want 0"
	rc=0; "$gwprvs" --keys "$work/keys1" --day "$today" verify "$old" >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 2 ] || mismatch "gw-prvs on $old: exit $rc, want 2"
	echo "expiry edge: checked"
fi

# Still the same day? Otherwise Exim and we may have used different DDDs.
[ "$(( $(date +%s) / 86400 ))" -eq "$today" ] || fail "the day changed during the test; run it again"
[ "$failures" -eq 0 ] || fail "$failures mismatches with Exim"
echo "PASS: gw-prvs and Exim agree"
