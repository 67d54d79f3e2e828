#!/usr/bin/env bash
# milter_postfix.sh - gw-milter end to end through a real Postfix.
#
# On loopback, each on a free port, all under one temp dir (test/sh/lib/lab.sh):
#   internal MTA   a throw-away Postfix that knows alice@ and carol@example.com
#                  and answers 550 5.1.1 for every other user
#   gw-milter      etc/gw.conf with only socket, socket_group, routes, paths and
#                  log changed: a unix socket under the gateway's queue directory
#   gateway        a throw-away Postfix with etc/postfix/main.cf.fragment as it is
#                  (its smtpd_milters finds that socket), relaying
#                  example.com to the internal MTA and dead.example.net to a port
#                  where nothing listens (the same routes file for both)
# Cases, each checked at the RCPT reply the Internet client sees:
#   1. known user              250, and the message reaches the internal mailbox
#   2. unknown user            550 5.1.1; no bounce made, gateway queue empty
#   3. known, unknown, known, unreachable route in one message
#                              250, 550 5.1.1, 250, 451 4.4.1; both known delivered
#   4. bad recipients          a control character (\x01), a 65-octet local part:
#                              501 5.1.3 (Postfix passes both to the milter);
#                              neither ever reaches the internal MTA
#   5. internal MTA stopped    451 4.4.1 for alice, verified seconds before; a second
#                              try answered at once (route marked down); queue empty
#   6. internal MTA restarted  alice accepted again within 12 s
#   7. control socket          `gw-milter -C SOCKET stats` and `purge all` answer
# Needs root, postfix, swaks. Usage: milter_postfix.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: milter_postfix.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
. "$here/lib/lab.sh"

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "must run as root (Postfix's master runs as root)"
for t in postfix postconf swaks ss /usr/bin/python3; do
	command -v "$t" >/dev/null || fail "$t not installed (scripts/install-deps)"
done
if [ -z "${LAB_MILTER_BIN:-}" ] && [ ! -x "$build/milter/gw-milter" ]; then
	cmake --build "$build" --target gw-milter >/dev/null || fail "cannot build gw-milter in $build"
fi
milter_bin=${LAB_MILTER_BIN:-$build/milter/gw-milter}

failures=0
post_mortem() {
	echo "---- gw-milter log (last 30 lines)"; tail -30 "$LAB/milter/log" 2>/dev/null || true
	echo "---- gateway maillog (last 20)"; tail -20 "$LAB/gw/maillog" 2>/dev/null || true
	echo "---- internal maillog (last 20)"; tail -20 "$LAB/int/maillog" 2>/dev/null || true
}
cleanup() {
	local rc=$?
	if [ -n "$LAB" ] && { [ "$rc" -ne 0 ] || [ "$failures" -ne 0 ]; }; then post_mortem >&2; fi
	lab_stop_all
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mismatch() { echo "MISMATCH: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok - $*"; }
# expect_rcpt CASE TRANSCRIPT ADDR REGEX: the RCPT reply for ADDR must match REGEX.
expect_rcpt() {
	local got
	got=$(lab_rcpt_reply "$2" "$3")
	if [[ $got =~ $4 ]]; then
		pass "$1: RCPT <$3> -> $got"
	else
		mismatch "$1: RCPT <$3>: got '${got:-no reply}', want /$4/"
		sed 's/^/    | /' "$2" >&2
	fi
}
delivered() {   # USER CASE-TAG: a message carrying the tag in USER's internal mailbox
	for _ in $(seq 200); do
		grep -qs "X-Lab-Case: $2" "$LAB/int/mail/$1"/new/* && return 0
		sleep 0.1
	done
	return 1
}
expect_no_bounce() {   # CASE
	if grep -qs "sender non-delivery notification" "$LAB/gw/maillog" "$LAB/int/maillog"; then
		mismatch "$1: a bounce was made: $(grep -h 'non-delivery' "$LAB/gw/maillog" "$LAB/int/maillog" | head -3)"
	else
		pass "$1: no bounce made"
	fi
	local n
	n=$(lab_queue_count gw)
	if [ "$n" -eq 0 ]; then pass "$1: gateway queue empty"; else mismatch "$1: gateway queue holds $n message(s)"; fi
}
milter_alive() {
	kill -0 "$LAB_MILTER_PID" 2>/dev/null || fail "gw-milter died; see its log"
}

lab_init
int_port=$(lab_port); gw_port=$(lab_port); dead_port=$(lab_port)
cat >"$LAB/routes" <<EOF
# lab routes: Postfix's transport_maps and gw-milter's routes (transport(5) syntax)
example.com        smtp:[127.0.0.1]:$int_port
dead.example.net   smtp:[127.0.0.1]:$dead_port
EOF
lab_internal_start int "$int_port" alice@example.com carol@example.com
# gw-milter on a unix socket where the fragment's smtpd_milters finds it (relative to
# the gateway's queue directory), group postfix, etc/gw.conf's socket_mode
milter_sock=$(lab_gateway_milter_sock gw) || fail "no milter socket path"
lab_milter_conf "unix:$milter_sock" "$LAB/routes" log_level=debug socket_group=postfix
lab_milter_start "$build"
lab_gateway_start gw "$gw_port" fragment "$LAB/routes" "example.com, dead.example.net"
echo "lab: internal :$int_port  gw-milter $milter_sock  gateway :$gw_port  dead :$dead_port  in $LAB"
[ "$(stat -c '%a %G' "$milter_sock")" = "660 postfix" ] || fail "milter socket: $(stat -c '%a %G' "$milter_sock"), want 660 postfix"

# 1. known user
t=$LAB/1.out
lab_swaks "$gw_port" "$t" --to alice@example.com --add-header "X-Lab-Case: known"
expect_rcpt "1 known" "$t" alice@example.com '^250 '
if delivered alice@example.com known; then pass "1 known: delivered to the internal MTA"
else mismatch "1 known: message not in alice's internal mailbox after 20 s"; fi
milter_alive

# 2. unknown user
t=$LAB/2.out
lab_swaks "$gw_port" "$t" --to bob@example.com --add-header "X-Lab-Case: unknown"
expect_rcpt "2 unknown" "$t" bob@example.com '^550 5\.1\.1 '
sleep 1   # a bounce, if one were made, would show up in the maillog by now
expect_no_bounce "2 unknown"
milter_alive

# 3. one message, per-recipient answers
t=$LAB/3.out
lab_swaks "$gw_port" "$t" --to alice@example.com,bob@example.com,carol@example.com,ghost@dead.example.net \
	--add-header "X-Lab-Case: multi"
expect_rcpt "3 multi" "$t" alice@example.com '^250 '
expect_rcpt "3 multi" "$t" bob@example.com '^550 5\.1\.1 '
expect_rcpt "3 multi" "$t" carol@example.com '^250 '
expect_rcpt "3 multi" "$t" ghost@dead.example.net '^451 4\.4\.1 '
if delivered alice@example.com multi && delivered carol@example.com multi; then
	pass "3 multi: delivered to alice and carol"
else
	mismatch "3 multi: message not in both alice's and carol's mailboxes after 20 s"
fi
milter_alive

# 4. bad recipients, never passed to the internal MTA
t=$LAB/4.out
long=$(printf 'x%.0s' $(seq 65))
printf '%s\n' 'EHLO client.ext.test' 'MAIL FROM:<sender@ext.test>' \
	'RCPT TO:<evil\x01bob@example.com>' "RCPT TO:<$long@example.com>" 'QUIT' |
	lab_smtp "$gw_port" >"$t" 2>&1 || true
got=$(grep -A1 -F 'C: RCPT TO:<evil\x01bob' "$t" | sed -n 's/^S: //p' | head -1)
if [[ $got =~ ^501\ 5\.1\.3 ]]; then pass "4 bad: control character -> $got"
else mismatch "4 bad: control character: got '${got:-no reply}', want 501 5.1.3"; sed 's/^/    | /' "$t" >&2; fi
got=$(grep -A1 -F "C: RCPT TO:<$long@" "$t" | sed -n 's/^S: //p' | head -1)
if [[ $got =~ ^501\ 5\.1\.3 ]]; then pass "4 bad: 65-octet local part -> $got"
else mismatch "4 bad: 65-octet local part: got '${got:-no reply}', want 501 5.1.3"; sed 's/^/    | /' "$t" >&2; fi
if grep -qs -e "$long" -e 'evil' "$LAB/int/maillog"; then
	mismatch "4 bad: the internal MTA saw a bad recipient: $(grep -h -e "$long" -e evil "$LAB/int/maillog" | head -2)"
else
	pass "4 bad: the internal MTA never saw them"
fi
milter_alive

# 5. internal MTA stopped: alice, accepted seconds ago, now gets 451
lab_postfix_stop int
t=$LAB/5.out
t0=$(date +%s%N)
lab_swaks "$gw_port" "$t" --to alice@example.com --add-header "X-Lab-Case: down"
t1=$(date +%s%N)
expect_rcpt "5 down" "$t" alice@example.com '^451 4\.4\.1 '
if [[ $(lab_rcpt_reply "$t" alice@example.com) =~ ^2 ]]; then
	# Diagnosis for the report: is the cached "valid" at least dropped after confirm_window?
	sleep 11
	lab_swaks "$gw_port" "$LAB/5a.out" --to alice@example.com --quit-after RCPT
	echo "    (diagnosis: 11 s later, past confirm_window, alice gets: $(lab_rcpt_reply "$LAB/5a.out" alice@example.com);" \
		"a cached 'valid' was trusted although the internal MTA had closed the pooled session)" >&2
fi
t=$LAB/5b.out
t2=$(date +%s%N)
lab_swaks "$gw_port" "$t" --to carol@example.com --add-header "X-Lab-Case: down2"
t3=$(date +%s%N)
expect_rcpt "5 down, again" "$t" carol@example.com '^451 4\.4\.1 '
ms=$(( (t3 - t2) / 1000000 ))
if [ "$ms" -lt 3000 ]; then pass "5 down: second session answered in $ms ms (first $(( (t1 - t0) / 1000000 )) ms)"
else mismatch "5 down: second session took $ms ms; a route marked down should answer at once"; fi
expect_no_bounce "5 down"
milter_alive

# 6. internal MTA back: accepted again within 12 s
lab_postfix_start int
t0=$(date +%s)
ok=
for _ in $(seq 24); do
	t=$LAB/6.out
	lab_swaks "$gw_port" "$t" --to alice@example.com --add-header "X-Lab-Case: back"
	if [[ $(lab_rcpt_reply "$t" alice@example.com) =~ ^250\  ]]; then ok=1; break; fi
	sleep 0.5
done
secs=$(( $(date +%s) - t0 ))
if [ -n "$ok" ] && [ "$secs" -le 12 ]; then pass "6 back: alice accepted again after ${secs} s"
else mismatch "6 back: alice not accepted within 12 s of the restart (${secs} s; last: $(lab_rcpt_reply "$t" alice@example.com))"; fi
if delivered alice@example.com back; then pass "6 back: delivered"
else mismatch "6 back: message not in alice's mailbox after 20 s"; fi
milter_alive

# 7. control socket
if [ -z "${LAB_MILTER_BIN:-}" ]; then
	if out=$(timeout 10 "$milter_bin" -C "$LAB/milter/control" stats 2>&1) && [ -n "$out" ]; then
		pass "7 control: stats answered ($(echo "$out" | head -1))"
	else
		mismatch "7 control: stats failed: $out"
	fi
	if out=$(timeout 10 "$milter_bin" -C "$LAB/milter/control" purge all 2>&1); then
		pass "7 control: purge all"
	else
		mismatch "7 control: purge all failed: $out"
	fi
fi

# every RCPT decision logged (one line per decision names the recipient)
for a in alice@example.com bob@example.com ghost@dead.example.net; do
	grep -qF "$a" "$LAB/milter/log" || mismatch "log: no gw-milter line names $a"
done
expect_no_bounce "end"
# a clean stop, and no sanitizer report (ASan/UBSan builds) in gw-milter's log
lab_milter_stop
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$LAB/milter/log"; then
	mismatch "gw-milter: sanitizer report in its log: $(grep -m1 -E 'ERROR: |runtime error:' "$LAB/milter/log")"
fi

if [ "$failures" -ne 0 ]; then
	echo "milter_postfix: $failures mismatch(es)" >&2
	exit 1
fi
echo "milter_postfix: all cases passed"
