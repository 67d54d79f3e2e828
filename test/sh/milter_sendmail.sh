#!/usr/bin/env bash
# milter_sendmail.sh - gw-milter end to end through a real Sendmail 8.17.
#
# Sendmail is not installed: lib/sendmail.sh unpacks its Debian packages into
# a cache ($1/sendmail-cache, reused by later runs), so it coexists with
# Postfix. The
# gateway's sendmail.cf is built with m4 from a small .mc that includes
# etc/sendmail/gw-milter.mc (only the port changed). The internal MTA is a
# throw-away Postfix (test/sh/lib/lab.sh) that knows alice@example.com.
# Cases, at the RCPT reply the client sees:
#   1. known user            250, and the message reaches the internal mailbox
#   2. unknown user          550 5.1.1, nothing queued on the gateway
#   3. internal MTA stopped  451 4.4.1 for the known user, nothing queued
# Sendmail pitfalls handled: it stalls 60 s at start on an unqualified host
# name (run in its own UTS namespace with a dotted name), refuses a
# world-writable /tmp parent (TrustStickyBit), and has no syslog here
# (-X transcript; milter decisions are in gw-milter's log).
# Needs root, m4, swaks, postfix, unshare. Usage: milter_sendmail.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: milter_sendmail.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
. "$here/lib/lab.sh"

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "must run as root"
for t in postfix swaks ss m4 unshare /usr/bin/python3; do
	command -v "$t" >/dev/null || fail "$t not installed (scripts/install-deps)"
done
if [ -z "${LAB_MILTER_BIN:-}" ] && [ ! -x "$build/milter/gw-milter" ]; then
	cmake --build "$build" --target gw-milter >/dev/null || fail "cannot build gw-milter in $build"
fi

# ---- Sendmail, unpacked, not installed (lib/sendmail.sh) ------------------
# shellcheck source-path=SCRIPTDIR source=lib/sendmail.sh
. "$here/lib/sendmail.sh"
sm_unpack "$build" || fail "no Sendmail to run"
# Its own UTS namespace with a dotted host name (else a 60 s stall at start).
sm_cmd gw.sendmail.lab.invalid
smx() { "${smx_cmd[@]}" "$@"; }

failures=0
sm_wrapper=
sm_stop() {
	local pid
	pid=$(head -1 "$LAB/sm/sendmail.pid" 2>/dev/null || true)
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && { lab_wait_pid "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true; }
	if [ -n "$sm_wrapper" ]; then
		kill -TERM "$sm_wrapper" 2>/dev/null || true
		wait "$sm_wrapper" 2>/dev/null || true
		sm_wrapper=
	fi
}
cleanup() {
	local rc=$?
	if [ -n "$LAB" ] && { [ "$rc" -ne 0 ] || [ "$failures" -ne 0 ]; }; then
		{
			echo "---- gw-milter log (last 30)"; tail -30 "$LAB/milter/log" 2>/dev/null || true
			echo "---- sendmail output"; tail -20 "$LAB/sm/sendmail.out" 2>/dev/null || true
			echo "---- internal maillog (last 15)"; tail -15 "$LAB/int/maillog" 2>/dev/null || true
		} >&2
	fi
	[ -n "$LAB" ] && sm_stop
	lab_stop_all
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mismatch() { echo "MISMATCH: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok - $*"; }
expect_rcpt() {   # CASE TRANSCRIPT ADDR REGEX
	local got
	got=$(lab_rcpt_reply "$2" "$3")
	if [[ $got =~ $4 ]]; then pass "$1: RCPT <$3> -> $got"
	else mismatch "$1: RCPT <$3>: got '${got:-no reply}', want /$4/"; sed 's/^/    | /' "$2" >&2; fi
}
sm_queue_count() { find "$LAB/sm/mqueue" -type f -name 'qf*' 2>/dev/null | wc -l; }

lab_init
int_port=$(lab_port); sm_port=$(lab_port); milter_port=$(lab_port)
printf 'example.com   smtp:[127.0.0.1]:%s\n' "$int_port" >"$LAB/routes"
lab_internal_start int "$int_port" alice@example.com
lab_milter_conf "$milter_port" "$LAB/routes" log_level=debug
lab_milter_start "$build"

# ---- the Sendmail gateway: example.com relayed to the internal MTA ----------
S=$LAB/sm
mkdir -p "$S/mqueue"; chmod 700 "$S/mqueue"
sed "s|S=unix:/run/gw-milter/milter\.sock|S=inet:$milter_port@127.0.0.1|" "$LAB_SRC/etc/sendmail/gw-milter.mc" >"$S/gw-milter.mc"
grep -q "inet:$milter_port@127.0.0.1" "$S/gw-milter.mc" || fail "etc/sendmail/gw-milter.mc has no S=unix:/run/gw-milter/milter.sock to point at the lab's port"
cat >"$S/gateway.mc" <<EOF
divert(0)dnl
include(\`$sm_root/usr/share/sendmail/cf/m4/cf.m4')dnl
VERSIONID(\`gw-milter end-to-end gateway')dnl
OSTYPE(\`linux')dnl
define(\`confDOMAIN_NAME', \`gw.sendmail.lab.invalid')dnl
define(\`confDONT_PROBE_INTERFACES', \`True')dnl
define(\`confDONT_BLAME_SENDMAIL', \`TrustStickyBit')dnl
define(\`QUEUE_DIR', \`$S/mqueue')dnl
define(\`confPID_FILE', \`$S/sendmail.pid')dnl
define(\`STATUS_FILE', \`$S/statistics')dnl
define(\`ALIAS_FILE', \`$S/aliases')dnl
define(\`HELP_FILE', \`$sm_root/etc/mail/helpfile')dnl
define(\`confCONTROL_SOCKET_NAME', \`$S/smcontrol')dnl
define(\`confLOG_LEVEL', \`9')dnl
define(\`confTO_IDENT', \`0')dnl
define(\`confBIND_OPTS', \`-DNSRCH -DEFNAMES')dnl
define(\`confSERVICE_SWITCH_FILE', \`$S/service.switch')dnl
dnl Sendmail stops listening when the load average passes RefuseLA; tests run beside a load test.
define(\`confREFUSE_LA', \`999')dnl
define(\`confQUEUE_LA', \`999')dnl
define(\`confDELAY_LA', \`0')dnl
define(\`SMART_HOST', \`esmtp:[127.0.0.1]')dnl
define(\`ESMTP_MAILER_ARGS', \`TCP \$h $int_port')dnl
define(\`RELAY_MAILER_ARGS', \`TCP \$h $int_port')dnl
FEATURE(\`no_default_msa')dnl
FEATURE(\`nocanonify')dnl
FEATURE(\`accept_unresolvable_domains')dnl
DAEMON_OPTIONS(\`Port=$sm_port, Addr=127.0.0.1, Name=MTA-gw')dnl
include(\`$S/gw-milter.mc')dnl
RELAY_DOMAIN(\`example.com')dnl
MAILER(\`local')dnl
MAILER(\`smtp')dnl
EOF
m4 "$S/gateway.mc" >"$S/gateway.cf" || fail "m4 could not build sendmail.cf"
grep -q "^Xgw-milter, S=inet:$milter_port@127.0.0.1, F=T, T=" "$S/gateway.cf" ||
	fail "sendmail.cf has no gw-milter filter line: $(grep '^X' "$S/gateway.cf" || true)"
printf 'postmaster: root\nMAILER-DAEMON: postmaster\n' >"$S/aliases"; touch "$S/statistics"
# Host names from files only: a slow or unreachable resolver must not stall start-up.
printf 'hosts files\naliases files\n' >"$S/service.switch"
smx -C "$S/gateway.cf" -bi >/dev/null 2>&1 || true
smx -C "$S/gateway.cf" -bD -X "$S/transcript" >"$S/sendmail.out" 2>&1 &
sm_wrapper=$!
lab_wait_port "$sm_port" 60 || fail "sendmail did not listen on $sm_port: $(cat "$S/sendmail.out")"
echo "lab: internal :$int_port  gw-milter :$milter_port  sendmail :$sm_port  in $LAB"

# 1. known user
t=$LAB/1.out
lab_swaks "$sm_port" "$t" --to alice@example.com --add-header "X-Lab-Case: known"
expect_rcpt "1 known" "$t" alice@example.com '^250 '
ok=
for _ in $(seq 200); do
	grep -qs "X-Lab-Case: known" "$LAB/int/mail/alice@example.com"/new/* && { ok=1; break; }
	sleep 0.1
done
if [ -n "$ok" ]; then pass "1 known: delivered to the internal MTA"
else mismatch "1 known: not in alice's internal mailbox after 20 s"; fi

# 2. unknown user
t=$LAB/2.out
lab_swaks "$sm_port" "$t" --to bob@example.com --add-header "X-Lab-Case: unknown"
expect_rcpt "2 unknown" "$t" bob@example.com '^550 5\.1\.1 '
n=$(sm_queue_count)
if [ "$n" -eq 0 ]; then pass "2 unknown: gateway queue empty (no bounce)"; else mismatch "2 unknown: $n message(s) queued"; fi

# 3. internal MTA stopped
lab_postfix_stop int
t=$LAB/3.out
lab_swaks "$sm_port" "$t" --to alice@example.com --add-header "X-Lab-Case: down"
expect_rcpt "3 down" "$t" alice@example.com '^451 4\.4\.1 '
n=$(sm_queue_count)
if [ "$n" -eq 0 ]; then pass "3 down: gateway queue empty"; else mismatch "3 down: $n message(s) queued"; fi

kill -0 "$LAB_MILTER_PID" 2>/dev/null || mismatch "gw-milter died"
# a clean stop, and no sanitizer report (ASan/UBSan builds) in gw-milter's log
lab_milter_stop
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$LAB/milter/log"; then
	mismatch "gw-milter: sanitizer report in its log: $(grep -m1 -E 'ERROR: |runtime error:' "$LAB/milter/log")"
fi
if [ "$failures" -ne 0 ]; then
	echo "milter_sendmail: $failures mismatch(es)" >&2
	exit 1
fi
echo "milter_sendmail: all cases passed"
