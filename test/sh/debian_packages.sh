#!/usr/bin/env bash
# debian_packages.sh - the Debian packages build, install, work and purge.
# Usage: debian_packages.sh BUILD_DIR
#
# Always (cheap, changes nothing): debian/changelog's version is the project
# version of CMakeLists.txt, debian/libgw0.symbols lists exactly what
# BUILD_DIR's libgw.so exports (scripts/debian-symbols), and every man page,
# program, sample configuration file and systemd unit of the tree is shipped
# by some debian/*.install (the package build's dh_missing catches the rest).
#
# With GW_TEST_PACKAGES=1 (scripts/test sets it; this part changes the machine,
# so it runs only when asked, as root): copies the tree to a temporary
# directory, builds with `dpkg-buildpackage -us -uc -b` (DEB_BUILD_OPTIONS=
# nocheck), runs lintian (no E: tags), installs the packages with `apt-get
# install ./*.deb`, checks man -w for every man page, the conffiles, the
# system users, the socket directory, the units enabled but not started,
# `gw-milter -n`, `gw-lmtpd -n` and `gw-proxy -n` on the packaged configuration, libgw
# through pkg-config, then a call-ahead through the packaged gw-milter:
# started with its unit's ExecStart line as the gw-milter user on the
# packaged gw.conf (default socket in /var/spool/postfix/gw-milter), the
# packaged /etc/gw/routes pointing a.test at a gw-fakepeer on loopback, one
# known and one unknown RCPT driven with miltertest AS THE postfix USER (so
# Postfix's user is proved able to reach the socket). Then purges and checks
# nothing is left but the system users (kept by design). The EXIT trap stops
# the daemon and purges the packages whatever happened; a run killed outright
# leaves /var/lib/gw-test-debian-packages, and the next run purges first.
#
# The installed /usr/sbin/gw-milter and /usr/lib/*/libgw.so.0 cannot stand
# in for the build tree's in the other tests: they run $BUILD_DIR/... paths
# and link libgw statically, and the install tests set LD_LIBRARY_PATH and
# PKG_CONFIG_PATH to their own prefix. Does not defend against: another
# process on the machine installing or removing these packages meanwhile.
set -uo pipefail
bindir=${1:?usage: debian_packages.sh BUILD_DIR}
bindir=$(cd "$bindir" && pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
fails=0
ok() { echo "ok   - $*"; }
bad() {
	echo "FAIL - $*"
	fails=$((fails + 1))
}
check() { # check DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@"; then ok "$d"; else bad "$d"; fi
}
finish() {
	if [ "$fails" -ne 0 ]; then
		echo "$fails check(s) failed"
		exit 1
	fi
	echo "all checks passed"
	exit 0
}
# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local n=$(($1 * 10))
	shift
	while [ $n -gt 0 ]; do
		"$@" 2>/dev/null && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# --- static checks ----------------------------------------------------------------------

project_version=$(sed -n 's/^project(gw VERSION \([0-9.]*\).*/\1/p' "$top/CMakeLists.txt")
deb_version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version 2>/dev/null)
if [[ $deb_version =~ ^${project_version//./\\.}([-+~].*)?$ ]]; then
	ok "debian/changelog version $deb_version is the project version $project_version"
else
	bad "debian/changelog version '$deb_version', want the project version '$project_version' (dch -v)"
fi
out=$("$top/scripts/debian-symbols" "$bindir" --check 2>&1)
check "debian/libgw0.symbols lists what libgw.so exports${out:+: $out}" [ -z "$out" ]
installs=$(cat "$top"/debian/*.install)
for p in "$top"/docs/man/*.[1-9]; do
	n=${p##*/}
	s=${n##*.}
	if grep -qE "^usr/share/man/man$s(/$n)?( |$)" <<<"$installs"; then
		ok "man page shipped: $n"
	else
		bad "no debian/*.install ships usr/share/man/man$s/$n"
	fi
done
# The programs as test/sh/install_tree.sh finds them: add_executable in a program folder.
mapfile -t programs < <(
	for f in "$top"/*/CMakeLists.txt; do
		case ${f#"$top"/} in libgw/* | test/* | bench/* | docs/* | etc/*) continue ;; esac
		grep -ho 'add_executable( *[A-Za-z0-9_.-]\+' "$f" | sed 's/add_executable( *//'
	done | sort -u
)
[ ${#programs[@]} -ge 4 ] || bad "found only ${#programs[@]} programs in the tree (${programs[*]})"
for p in "${programs[@]}"; do
	if grep -qE "^usr/s?bin/$p$" <<<"$installs"; then ok "program shipped: $p"; else bad "no debian/*.install ships $p"; fi
done
for p in "$top"/etc/*; do
	n=${p##*/}
	[ -f "$p" ] && [ "$n" != CMakeLists.txt ] || continue
	if grep -qx "etc/gw/$n" <<<"$installs"; then ok "sample shipped as /etc/gw/$n"; else bad "no debian/*.install ships etc/gw/$n"; fi
done
for p in "$top"/etc/systemd/*.service; do
	n=${p##*/}
	if grep -qx "lib/systemd/system/$n" <<<"$installs"; then ok "unit shipped: $n"; else bad "no debian/*.install ships lib/systemd/system/$n"; fi
done

if [ "${GW_TEST_PACKAGES:-0}" != 1 ]; then
	echo "skip - building and installing the packages: set GW_TEST_PACKAGES=1 (scripts/test does)"
	finish
fi

# --- build ------------------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || { bad "GW_TEST_PACKAGES=1 needs root (apt-get install)"; finish; }
for c in dpkg-buildpackage dh lintian miltertest man apt-get; do
	command -v "$c" >/dev/null || { bad "$c not installed (scripts/install-deps)"; finish; }
done
FP=$bindir/test/gw-fakepeer
[ -x "$FP" ] || { bad "$FP not built"; finish; }
PKGS=(libgw0 libgw-dev gw-milter gw-lmtpd gw-proxy gw-tools)
# Present while this test has the packages installed: a run killed outright
# (SIGKILL, a power cut) leaves it, and the next run purges what that one left.
MARK=/var/lib/gw-test-debian-packages
# present: those of PKGS dpkg knows as installed or with configuration left
present() {
	local p
	for p in "${PKGS[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qv 'not-installed' && echo "$p"
	done
	return 0
}
# purge_ours LOG: apt-get purge of the present ones (apt refuses names it does not know)
purge_ours() {
	local p
	mapfile -t p < <(present)
	[ ${#p[@]} -eq 0 ] && return 0
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "${p[@]}" >>"$1" 2>&1
}
if [ -e "$MARK" ]; then
	echo "a previous run left its packages installed: purging $(present | tr '\n' ' ')"
	purge_ours /dev/null && rm -f "$MARK"
fi
for p in "${PKGS[@]}"; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv 'not-installed'; then
		bad "$p is already on this machine: this test would purge it; remove it first"
		finish
	fi
done

# shellcheck source=lib/ports.sh
. "$top/test/sh/lib/ports.sh"
T=$(mktemp -d /tmp/gw-debian.XXXXXX)
chmod 0755 "$T" # the gw-milter and postfix users read files here
INSTALLED=0 MPID='' PEER=''
before=$(dpkg-query -W -f='${Package}\n' | sort)
cleanup() {
	local p new
	for p in $MPID $PEER; do kill "$p" 2>/dev/null; done
	for p in $MPID $PEER; do
		wait_for 30 bash -c "! kill -0 $p" || kill -9 "$p" 2>/dev/null
	done
	if [ "$INSTALLED" = 1 ]; then
		purge_ours "$T/purge.log" && rm -f "$MARK"
		# Whatever apt pulled in for them goes too.
		new=$(comm -13 <(echo "$before") <(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' |
			awk '$1 ~ /^.i/ {print $2}' | sort))
		# shellcheck disable=SC2086
		[ -z "$new" ] || DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $new >>"$T/purge.log" 2>&1
	fi
	rm -rf /run/gw-milter
	port_release_all
	if [ "$fails" -eq 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$T"; else echo "files kept in $T"; fi
}
trap cleanup EXIT
trap 'bad "stopped by a signal"; exit 1' INT TERM HUP

# A copy of the tree as a clean clone has it (no build directories, no debris left in $top).
mkdir "$T/src"
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$top" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$T/src")
else
	tar -C "$top" --exclude='./build*' --exclude=./_install -cf - . | tar -C "$T/src" -xf -
fi
echo "building the packages (log: $T/build.log)"
start=$(date +%s)
if (cd "$T/src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -us -uc -b >"$T/build.log" 2>&1); then
	ok "dpkg-buildpackage -us -uc -b ($(($(date +%s) - start)) s)"
else
	bad "dpkg-buildpackage failed: $(tail -5 "$T/build.log")"
	finish
fi
for p in "${PKGS[@]}"; do
	check "built $p" test -f "$T/${p}_${deb_version}_$(dpkg --print-architecture).deb"
done

lintian --tag-display-limit 0 "$T"/gw_*.changes >"$T/lintian.log" 2>&1
echo "lintian: $(grep -c '^E:' "$T/lintian.log") errors, $(grep -c '^W:' "$T/lintian.log") warnings, $(grep -c '^I:' "$T/lintian.log") info"
grep -E '^[EW]:' "$T/lintian.log"
check "lintian reports no errors" bash -c "! grep -q '^E:' '$T/lintian.log'"

# --- install -----------------------------------------------------------------------------

debs=()
for p in "${PKGS[@]}"; do debs+=("./$(basename "$T/${p}_"*.deb)"); done
INSTALLED=1
touch "$MARK"
if (cd "$T" && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${debs[@]}" >"$T/install.log" 2>&1); then
	ok "apt-get install ${debs[*]}"
else
	bad "apt-get install failed: $(tail -5 "$T/install.log")"
	finish
fi
for p in "${PKGS[@]}"; do
	dpkg -L "$p" >>"$T/files"
done

for p in "$top"/docs/man/*.[1-9]; do
	n=${p##*/}
	m=$(man -w "${n##*.}" "${n%.*}" 2>/dev/null)
	check "man -w ${n##*.} ${n%.*} -> $m" test "$m" = "/usr/share/man/man${n##*.}/$n.gz"
done
conffiles=$(dpkg-query -W -f='${Conffiles}\n' gw-milter gw-lmtpd gw-proxy)
for f in /etc/gw/gw.conf /etc/gw/routes /etc/gw/gw-lmtpd.conf /etc/gw/gw-proxy.conf; do
	check "$f is a conffile" grep -q "^ $f " <<<"$conffiles"
done
for u in gw-milter gw-lmtpd gw-proxy; do
	uid=$(id -u "$u" 2>/dev/null)
	check "system user $u (uid ${uid:-none})" test -n "$uid" -a "${uid:-1000}" -lt 1000
	check "$u.service enabled" test -L "/etc/systemd/system/multi-user.target.wants/$u.service"
	check "$u not started by the installation" bash -c "! pgrep -x -f '/usr/sbin/$u .*' >/dev/null"
done
check "postfix is in the gw-milter group" bash -c "id -nG postfix | grep -qw gw-milter"
check "socket directory gw-milter:gw-milter 0750 ($(stat -c '%U:%G %a' /var/spool/postfix/gw-milter 2>&1))" \
	test "$(stat -c '%U:%G %a' /var/spool/postfix/gw-milter 2>/dev/null)" = "gw-milter:gw-milter 750"

out=$(setpriv --reuid=gw-milter --regid=gw-milter --init-groups /usr/sbin/gw-milter -n -c /etc/gw/gw.conf 2>&1)
check "gw-milter -n on the packaged gw.conf, as gw-milter (${out:-no output})" test $? -eq 0
out=$(setpriv --reuid=gw-lmtpd --regid=gw-lmtpd --init-groups /usr/sbin/gw-lmtpd -n -c /etc/gw/gw-lmtpd.conf 2>&1)
check "gw-lmtpd -n on the packaged gw-lmtpd.conf, as gw-lmtpd (${out:-no output})" test $? -eq 0
out=$(setpriv --reuid=gw-proxy --regid=gw-proxy --init-groups /usr/sbin/gw-proxy -n -c /etc/gw/gw-proxy.conf 2>&1)
check "gw-proxy -n on the packaged gw-proxy.conf, as gw-proxy (${out:-no output})" test $? -eq 0
check "gw-send is /usr/bin/gw-send" test "$(command -v gw-send)" = /usr/bin/gw-send
check "pkg-config libgw is $project_version" test "$(pkg-config --modversion libgw 2>/dev/null)" = "$project_version"
# shellcheck disable=SC2046
if cc -o "$T/probe" "$top/docs/examples/probe.c" $(pkg-config --cflags --libs libgw) 2>"$T/cc.log"; then
	check "docs/examples/probe.c runs against the packaged libgw.so.0" \
		bash -c "ldd '$T/probe' | grep -qE 'libgw.so.0 => (/usr)?/lib/.*/libgw.so.0 '"
else
	bad "probe.c does not build against libgw-dev: $(head -3 "$T/cc.log")"
fi

# --- a call-ahead through the packaged gw-milter -------------------------------------------

cat >"$T/peer.script" <<'EOF'
send 220 internal.test ESMTP
expect EHLO
send 250 internal.test
expect MAIL FROM:<>
send 250 2.1.0 ok
expect RCPT TO:<known@a.test>
send 250 2.1.5 ok
expect RCPT TO:<unknown@a.test>
send 550 5.1.1 no such user
EOF
mkdir "$T/rec"
"$FP" -s "$T/peer.script" -p "$(port_claim)" -P "$T/peer.port" -r "$T/rec" -t 20000 >"$T/peer.log" 2>&1 &
PEER=$!
wait_for 10 test -s "$T/peer.port" || bad "gw-fakepeer did not start ($(cat "$T/peer.log"))"
# What an operator does: the real route in the packaged routes file.
echo "a.test smtp:[127.0.0.1]:$(cat "$T/peer.port")" >>/etc/gw/routes

# The unit's own command line, as its User=; /run/gw-milter as its RuntimeDirectory= would be.
unit=/lib/systemd/system/gw-milter.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[[ $exec_start == "/usr/sbin/gw-milter "*"-c /etc/gw/gw.conf"* ]]
check "the unit starts /usr/sbin/gw-milter on /etc/gw/gw.conf ($exec_start)" test $? -eq 0
install -d -o gw-milter -g gw-milter -m 0750 /run/gw-milter
# shellcheck disable=SC2086
setpriv --reuid=gw-milter --regid=gw-milter --init-groups $exec_start 2>"$T/milter.log" &
MPID=$!
SOCK=/var/spool/postfix/gw-milter/milter.sock
if wait_for 20 test -S "$SOCK"; then
	ok "gw-milter made its socket $SOCK"
	check "socket mode 0660 group gw-milter" test "$(stat -c '%a %G' "$SOCK")" = "660 gw-milter"
	cat >"$T/callahead.lua" <<'EOF'
local c = mt.connect(sock, 40, 0.25)
if c == nil then error("connect " .. sock) end
if mt.conninfo(c, "client.test", "192.0.2.7") ~= nil then error("conninfo") end
if mt.getreply(c) ~= SMFIR_CONTINUE then error("connect not continued") end
mt.macro(c, SMFIC_MAIL, "i", "QID1")
mt.mailfrom(c, "<sender@remote.test>")
if mt.getreply(c) ~= SMFIR_CONTINUE then error("MAIL not continued") end
for _, a in ipairs({"known@a.test", "unknown@a.test"}) do
  mt.macro(c, SMFIC_RCPT, "{rcpt_mailer}", "smtp", "{rcpt_addr}", a)
  mt.rcptto(c, "<" .. a .. ">")
  local r = mt.getreply(c)
  if r == SMFIR_CONTINUE then print("RCPT " .. a .. " continue")
  elseif r == SMFIR_REPLYCODE then print("RCPT " .. a .. " replycode")
  else print("RCPT " .. a .. " other " .. tostring(r)) end
end
mt.disconnect(c)
EOF
	chmod 0644 "$T/callahead.lua"
	# As Postfix's user: the group gives it the socket.
	timeout 60 setpriv --reuid=postfix --regid=postfix --init-groups \
		miltertest -D sock="unix:$SOCK" -s "$T/callahead.lua" >"$T/lua.out" 2>&1
	rc=$?
	check "miltertest as postfix reached the socket ($(tail -2 "$T/lua.out" | tr '\n' ' '))" test $rc -eq 0
	check "known@a.test accepted" grep -qx 'RCPT known@a.test continue' "$T/lua.out"
	check "unknown@a.test refused" grep -qx 'RCPT unknown@a.test replycode' "$T/lua.out"
	stats=$(/usr/sbin/gw-milter -C /run/gw-milter/control stats 2>&1)
	check "control socket of the packaged gw.conf answers ($stats)" grep -q ' rejects=1 ' <<<"$stats"
	check "the internal MTA was asked both RCPTs" \
		wait_for 30 bash -c "[ \$(cat '$T'/rec/conn-*.txt 2>/dev/null | grep -c '^RCPT TO') -eq 2 ]"
	check "gw-milter runs as gw-milter" test "$(ps -o user= -p "$MPID")" = gw-milter
else
	bad "gw-milter did not make $SOCK ($(tail -3 "$T/milter.log"))"
fi
kill -TERM "$MPID"
check "gw-milter stops on SIGTERM" wait_for 30 bash -c "! kill -0 $MPID"
MPID=''
rm -rf /run/gw-milter

# --- purge -------------------------------------------------------------------------------

if purge_ours "$T/purge.log"; then
	INSTALLED=0
	rm -f "$MARK"
	ok "apt-get purge ${PKGS[*]}"
else
	bad "apt-get purge failed: $(tail -5 "$T/purge.log")"
fi
for p in "${PKGS[@]}"; do
	check "$p: no trace in dpkg's status" bash -c "! dpkg-query -W '$p' >/dev/null 2>&1 || [ \"\$(dpkg-query -W -f='\${db:Status-Abbrev}' '$p')\" = 'un ' ]"
done
left=$(while read -r f; do [ -e "$f" ] && [ ! -d "$f" ] && echo "$f"; done <"$T/files")
check "no file of the packages left${left:+: $left}" test -z "$left"
for d in /etc/gw /usr/include/gw /var/spool/postfix/gw-milter /usr/share/doc/gw-milter /usr/share/doc/gw-lmtpd /usr/share/doc/gw-proxy \
	/etc/systemd/system/multi-user.target.wants/gw-milter.service \
	/etc/systemd/system/multi-user.target.wants/gw-lmtpd.service \
	/etc/systemd/system/multi-user.target.wants/gw-proxy.service; do
	check "gone: $d" test ! -e "$d" -a ! -L "$d"
done
check "deb-systemd-helper forgot the units" \
	bash -c "! ls /var/lib/systemd/deb-systemd-helper-enabled 2>/dev/null | grep -q gw-"
check "postfix left the gw-milter group" bash -c "! id -nG postfix | grep -qw gw-milter"
echo "kept by design: the system users $(getent passwd gw-milter gw-lmtpd gw-proxy | cut -d: -f1 | tr '\n' ' ')"

finish
