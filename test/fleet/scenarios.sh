#!/usr/bin/env bash
# "COND && pass ... || mismatch ...": pass and mismatch always succeed, so it is if-then-else.
# shellcheck disable=SC2015
# scenarios.sh - the multihomed fleet with real MTAs: mail always takes a working
# path, is never stuck on a gateway, never delivered twice. Builds the lab of
# lib/fleet.sh (ext, gw1, gw2, int in network namespaces; gw-milter inbound and
# gw-lmtpd outbound on each gateway), cuts links and runs the scenarios:
#   1 all links up             inbound and outbound delivered once, queues empty
#   2 gw1 <-> int cut          gw1 answers RCPT 4xx, ext delivers through gw2, gw1's
#                              queue stays empty; restored, gw1 accepts within 10 s
#   3 gw1 <-> Internet cut     outbound goes out through gw2, each recipient once
#   4 gw1 cannot reach dest-b  dest-a once through gw1, dest-b through gw2
#   5 every outbound path cut  mail waits in int's queue, nothing on a gateway;
#                              restored and flushed: each recipient once
#   6 int down                 inbound 4xx at both gateways, the message waits in
#                              ext's queue; int back: delivered once
#   7 gw-lmtpd killed while relaying a large message: int retries through gw2; the
#                              recipient arrives once or twice and the test says which
# Each scenario sends fresh messages (a header X-Fleet-Case names them) and checks,
# per recipient, the copies in the final mailbox and the messages in every Postfix
# queue (postqueue -j) and both gw-lmtpd spools. A table at the end sums it up.
#
# Usage: scenarios.sh BUILD_DIR [SCENARIO...]   (default: 1 2 3 4 5 6 7)
# Exits 77 (skipped) without root or network namespaces. LAB_KEEP=1 keeps the lab
# directory; the namespaces are always deleted.
set -uo pipefail
build=${1:?usage: scenarios.sh BUILD_DIR [SCENARIO...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/fleet.sh
. "$here/lib/fleet.sh"

if ! why=$(fleet_available); then
	echo "SKIP: the fleet lab cannot run here: $why"
	exit 77
fi
for b in milter/gw-milter lmtp/gw-lmtpd; do
	[ -x "$build/$b" ] || { echo "FAIL: $build/$b not built" >&2; exit 1; }
done
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(1 2 3 4 5 6 7)

failures=0
summary=()
mismatch() { echo "MISMATCH: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok - $*"; }

post_mortem() {
	local f
	for f in gw1/milter/log gw2/milter/log gw1/lmtpd/log gw2/lmtpd/log ext/maillog gw1/maillog gw2/maillog int/maillog; do
		[ -f "$LAB/$f" ] && { echo "---- $f (last 15 lines)"; tail -15 "$LAB/$f"; }
	done
}
cleanup() {
	local rc=$?
	if [ -n "$LAB" ] && { [ "$rc" -ne 0 ] || [ "$failures" -ne 0 ]; }; then post_mortem >&2; fi
	fleet_down
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Log lines written since mark_logs (per scenario).
LOGS="ext/maillog gw1/maillog gw2/maillog int/maillog gw1/lmtpd/log gw2/lmtpd/log gw1/milter/log gw2/milter/log"
mark_logs() {
	local f
	for f in $LOGS; do
		wc -l <"$LAB/$f" 2>/dev/null | tr -d ' ' >"$LAB/$(echo "$f" | tr / _).mark" || echo 0 >"$LAB/$(echo "$f" | tr / _).mark"
	done
}
new_log() {   # FILE (relative to $LAB): its lines since mark_logs
	local m
	m=$(cat "$LAB/$(echo "$1" | tr / _).mark" 2>/dev/null || echo 0)
	tail -n +$((${m:-0} + 1)) "$LAB/$1" 2>/dev/null
}

queues() {   # one line: every Postfix queue and both gw-lmtpd spools
	local n out=
	for n in ext gw1 gw2 int dest-a dest-b; do out+="$n=$(fleet_queue "$n") "; done
	echo "${out}spool-gw1=$(fleet_spool gw1) spool-gw2=$(fleet_spool gw2)"
}
settled() {   # nothing in any queue or spool (stopped instances counted from their files)
	local n
	for n in ext gw1 gw2 int dest-a dest-b; do [ "$(fleet_queue "$n")" -eq 0 ] || return 1; done
	[ "$(fleet_spool gw1)" -eq 0 ] && [ "$(fleet_spool gw2)" -eq 0 ]
}
all_delivered() {   # CASE RCPT...: at least one copy each
	local c=$1 r
	shift
	for r in "$@"; do [ "$(fleet_delivered "$c" "$r")" -ge 1 ] || return 1; done
}

# expect_once SCENARIO CASE T0 RCPT...: wait (bounded) until each recipient has
# the CASE message and every queue is empty, then each must hold exactly one copy.
expect_once() {
	local s=$1 c=$2 t0=$3 r n secs
	shift 3
	fleet_wait 90 all_delivered "$c" "$@" || mismatch "$s: not every recipient got the $c message within 90 s"
	secs=$(since "$t0")
	fleet_wait 60 settled || mismatch "$s: queues not empty 60 s after delivery: $(queues)"
	for r in "$@"; do
		n=$(fleet_delivered "$c" "$r")
		if [ "$n" -eq 1 ]; then pass "$s: $r got the $c message once"
		else mismatch "$s: $r got $n copies of the $c message, want 1"; fi
		summary+=("$(printf '%-3s %-8s %-22s %-3s %-4s %6s  %s' "$s" "$c" "$r" 1 "$n" "$secs" "$(queues)")")
	done
}
expect_queues_empty() {   # SCENARIO
	local q
	if settled; then pass "$1: every queue and spool empty"; else q=$(queues); mismatch "$1: queues: $q"; fi
}
# GW RCPT STATE: lines in GW's gw-lmtpd log since mark_logs giving RCPT that state
lmtpd_saw() { new_log "$1/lmtpd/log" | grep -F "to=<$2>" | grep -c "state=$3"; }

# ---- the scenarios ------------------------------------------------------------

# gw-lmtpd keeps a destination connection idle for idle_time (gw-lmtpd.conf, 5 s) and
# reuses it without a round trip first: a link cut under it goes unseen until the
# reply timeout (reply_timeout, 120 s). Scenarios that cut an outbound path start
# once both gateways have been quiet longer than idle_time, so the next delivery
# closes those connections and connects afresh (what these scenarios are about).
lmtpd_quiet() {
	local g age idle
	idle=$(sed -n 's/^idle_time *= *\([0-9]*\)s.*/\1/p' "$LAB/gw1/lmtpd/gw-lmtpd.conf")
	for g in gw1 gw2; do
		age=$(($(date +%s) - $(stat -c %Y "$LAB/$g/lmtpd/log")))
		[ "$age" -gt "${idle:-5}" ] || return 1
	done
}
outbound_idle() { fleet_wait 30 lmtpd_quiet || mismatch "$1: gw-lmtpd logs still busy after 30 s"; }

s1() {
	local t0
	mark_logs
	t0=$(now)
	fleet_inbound s1-in alice@example.org bob@example.org || mismatch "1: inbound message refused"
	fleet_outbound s1-out alice@dest-a.example bob@dest-b.example || mismatch "1: outbound message refused"
	expect_once 1 s1-in "$t0" alice@example.org bob@example.org
	expect_once 1 s1-out "$t0" alice@dest-a.example bob@dest-b.example
	new_log ext/maillog | grep -q "to=<alice@example.org>, relay=10.77.0.11\[10.77.0.11\]:25.* status=sent" &&
		pass "1: inbound went through gw1, the first MX" || mismatch "1: inbound did not go through gw1"
	[ "$(lmtpd_saw gw1 alice@dest-a.example delivered)" -ge 1 ] &&
		pass "1: outbound went through gw1, the first next hop" || mismatch "1: outbound did not go through gw1"
	expect_queues_empty 1
}

s2() {
	local t0 r ok secs
	mark_logs
	fleet_cut gw1 i0
	# gw-milter trusts a cached "valid" while the route had a successful exchange
	# within confirm_window (gw.conf, 10 s; scenario 1's probes were seconds ago):
	# a cut no packet tells it about is noticed by the first live check after that,
	# which on a pooled session waits up to reply_timeout (10 s) for an answer.
	local cw rt bound
	cw=$(sed -n 's/^confirm_window *= *\([0-9]*\)s.*/\1/p' "$LAB/gw1/milter/gw.conf")
	rt=$(sed -n 's/^reply_timeout *= *\([0-9]*\)s.*/\1/p' "$LAB/gw1/milter/gw.conf")
	bound=$((${cw:-10} + ${rt:-10} + 5))
	t0=$(now)
	ok=
	for _ in $(seq 60); do
		r=$(fleet_rcpt_reply gw1 alice@example.org)
		if [[ $r =~ ^4[0-9][0-9]\  ]]; then ok=1; break; fi
		sleep 0.5
	done
	secs=$(since "$t0")
	if [ -n "$ok" ] && awk -v s="$secs" -v b="$bound" 'BEGIN { exit !(s <= b) }'; then
		pass "2: gw1 answers RCPT <alice@example.org> with $r, $secs s after the cut (bound: confirm_window + reply_timeout + 5 = $bound s)"
	else
		mismatch "2: gw1 gave no 4xx within $bound s of the cut ($secs s; last reply: ${r:-nothing})"
	fi
	summary+=("$(printf '%-3s %-8s %-22s %-3s %-4s %6s  %s' 2 cut "gw1 answers 4xx" - - "$secs" "RCPT $r")")
	t0=$(now)
	fleet_inbound s2 alice@example.org bob@example.org || mismatch "2: inbound message refused"
	expect_once 2 s2 "$t0" alice@example.org bob@example.org
	for r in alice@example.org bob@example.org; do
		new_log ext/maillog | grep -q "to=<$r>, relay=10.77.0.12\[10.77.0.12\]:25.* status=sent" &&
			pass "2: $r went through gw2" || mismatch "2: ext did not deliver $r through gw2"
	done
	[ "$(fleet_queue gw1)" -eq 0 ] && pass "2: gw1's queue is empty" || mismatch "2: gw1's queue holds $(fleet_queue gw1)"
	fleet_restore gw1 i0
	t0=$(now)
	ok=
	for _ in $(seq 60); do
		r=$(fleet_rcpt_reply gw1 alice@example.org)
		if [[ $r =~ ^250\  ]]; then ok=1; break; fi
		sleep 0.5
	done
	secs=$(since "$t0")
	if [ -n "$ok" ] && awk -v s="$secs" 'BEGIN { exit !(s <= 10) }'; then
		pass "2: restored, gw1 accepts again after $secs s (target 10 s)"
	else
		mismatch "2: restored, gw1 did not accept within 10 s (${secs} s; last reply: ${r:-none})"
	fi
	summary+=("$(printf '%-3s %-8s %-22s %-3s %-4s %6s  %s' 2 restore "gw1 accepts again" - - "$secs" "RCPT $r")")
}

s3() {
	local t0 r
	outbound_idle 3
	mark_logs
	fleet_cut gw1 x0
	t0=$(now)
	fleet_outbound s3 alice@dest-a.example bob@dest-b.example || mismatch "3: outbound message refused"
	expect_once 3 s3 "$t0" alice@dest-a.example bob@dest-b.example
	for r in alice@dest-a.example bob@dest-b.example; do
		[ "$(lmtpd_saw gw1 "$r" tempfail)" -ge 1 ] && pass "3: gw1 answered 4xx for $r" ||
			mismatch "3: gw1 did not answer 4xx for $r"
		[ "$(lmtpd_saw gw2 "$r" delivered)" -eq 1 ] && pass "3: gw2 delivered $r" ||
			mismatch "3: gw2 did not deliver $r once"
	done
	fleet_restore gw1 x0
	fleet_wait 20 fleet_reach gw1 10.77.0.21 || mismatch "3: gw1's Internet link did not come back"
}

s4() {
	local t0
	outbound_idle 4
	mark_logs
	fleet_block gw1 10.77.0.22
	t0=$(now)
	fleet_outbound s4 alice@dest-a.example bob@dest-b.example || mismatch "4: outbound message refused"
	expect_once 4 s4 "$t0" alice@dest-a.example bob@dest-b.example
	[ "$(lmtpd_saw gw1 alice@dest-a.example delivered)" -eq 1 ] && pass "4: dest-a delivered through gw1" ||
		mismatch "4: gw1 did not deliver alice@dest-a.example once"
	[ "$(lmtpd_saw gw1 bob@dest-b.example tempfail)" -ge 1 ] && pass "4: gw1 answered 4xx for dest-b" ||
		mismatch "4: gw1 did not answer 4xx for bob@dest-b.example"
	[ "$(lmtpd_saw gw2 bob@dest-b.example delivered)" -eq 1 ] && pass "4: dest-b delivered through gw2" ||
		mismatch "4: gw2 did not deliver bob@dest-b.example once"
	new_log gw2/lmtpd/log | grep -qF "to=<alice@dest-a.example>" && mismatch "4: gw2 was offered alice@dest-a.example too" ||
		pass "4: gw2 never saw the dest-a recipient"
	fleet_unblock gw1 10.77.0.22
}

int_deferred() {   # RCPT...: int logged each as deferred since mark_logs
	local r
	for r in "$@"; do new_log int/maillog | grep -q "to=<$r>.* status=deferred" || return 1; done
}

s5() {
	local t0 r q
	outbound_idle 5
	mark_logs
	fleet_cut gw1 x0
	fleet_cut gw2 x0
	fleet_outbound s5 alice@dest-a.example bob@dest-b.example || mismatch "5: outbound message refused"
	fleet_wait 60 int_deferred alice@dest-a.example bob@dest-b.example ||
		mismatch "5: int did not defer both recipients within 60 s"
	q=$(queues)
	for r in alice@dest-a.example bob@dest-b.example; do
		[ "$(fleet_queue_rcpt int "$r")" -eq 1 ] && pass "5: $r waits in int's queue" ||
			mismatch "5: $r is not in int's queue ($q)"
		[ "$(fleet_delivered s5 "$r")" -eq 0 ] || mismatch "5: $r delivered while every path was cut"
	done
	for r in gw1 gw2; do
		[ "$(fleet_queue "$r")" -eq 0 ] && [ "$(fleet_spool "$r")" -eq 0 ] && pass "5: nothing on $r" ||
			mismatch "5: $r holds mail ($q)"
	done
	summary+=("$(printf '%-3s %-8s %-22s %-3s %-4s %6s  %s' 5 cut "(while cut)" 0 0 - "$q")")
	fleet_restore gw1 x0
	fleet_restore gw2 x0
	fleet_wait 20 fleet_reach gw1 10.77.0.21 &&
		fleet_wait 20 fleet_reach gw2 10.77.0.21 || mismatch "5: links did not come back"
	t0=$(now)
	fleet_flush int
	expect_once 5 s5 "$t0" alice@dest-a.example bob@dest-b.example
}

ext_deferred() { new_log ext/maillog | grep -q "to=<$1>.* status=deferred"; }
flush_until_delivered() {   # CASE RCPT: until delivered (60 s bound), flushing ext every 2 s
	local i
	for ((i = 0; i < 300; i++)); do
		[ "$(fleet_delivered "$1" "$2")" -ge 1 ] && return 0
		((i % 10 == 0)) && fleet_flush ext
		sleep 0.2
	done
	return 1
}

s6() {
	local t0 r g q
	mark_logs
	fleet_postfix_stop int
	for g in gw1 gw2; do
		r=$(fleet_rcpt_reply "$g" alice@example.org)
		[[ $r =~ ^4[0-9][0-9]\  ]] && pass "6: $g answers RCPT with $r" ||
			mismatch "6: $g answers RCPT <alice@example.org> with '${r:-nothing}', want 4xx"
	done
	fleet_inbound s6 alice@example.org || mismatch "6: inbound message refused"
	fleet_wait 60 ext_deferred alice@example.org || mismatch "6: ext did not defer the message"
	q=$(queues)
	[ "$(fleet_queue_rcpt ext alice@example.org)" -eq 1 ] && pass "6: the message waits in ext's queue" ||
		mismatch "6: the message is not in ext's queue ($q)"
	for g in gw1 gw2; do
		[ "$(fleet_queue "$g")" -eq 0 ] && pass "6: nothing on $g" || mismatch "6: $g holds mail ($q)"
	done
	summary+=("$(printf '%-3s %-8s %-22s %-3s %-4s %6s  %s' 6 down "(int down)" 0 "$(fleet_delivered s6 alice@example.org)" - "$q")")
	fleet_postfix_start int || { mismatch "6: int did not start again"; return; }
	t0=$(now)
	flush_until_delivered s6 alice@example.org || true
	expect_once 6 s6 "$t0" alice@example.org
}

# Bytes the gw1 -> dest-a SMTP connection has had acknowledged (0: none open).
relayed_bytes() {
	fleet_in gw1 ss -Hti state established dst 10.77.0.21 dport = :25 2>/dev/null |
		sed -n 's/.*bytes_acked:\([0-9]*\).*/\1/p' | sort -n | tail -1
}
relaying() { local b; b=$(relayed_bytes); [ "${b:-0}" -gt 300000 ]; }

s7() {
	local t0 n body pid
	mark_logs
	body=$LAB/s7.body
	/usr/bin/python3 -c '
import sys
line = "fleet scenario 7: a large message, relayed slowly so that the relay can be cut\n"
sys.stdout.write(line * (3 * 1024 * 1024 // len(line)))' >"$body"
	# 3 MB at 4 Mbit/s: about 6 s on gw1's Internet link, time to kill gw-lmtpd mid-DATA
	fleet_in gw1 tc qdisc add dev x0 root tbf rate 4mbit burst 32kbit latency 2s ||
		{ mismatch "7: cannot shape gw1's link (tc tbf)"; return; }
	t0=$(now)
	FLEET_SWAKS_EXTRA=(--body "@$body")
	fleet_outbound s7 alice@dest-a.example || mismatch "7: outbound message refused"
	FLEET_SWAKS_EXTRA=()
	if fleet_wait 90 relaying; then
		pid=$(cat "$LAB/gw1/lmtpd/daemon.pid")
		echo "7: gw1 has relayed $(relayed_bytes) bytes to dest-a; SIGKILL gw-lmtpd ($pid)"
		fleet_lmtpd_stop gw1 KILL
	else
		mismatch "7: gw1 never started relaying the large message"
	fi
	fleet_in gw1 tc qdisc del dev x0 root 2>/dev/null || true
	fleet_wait 120 all_delivered s7 alice@dest-a.example || mismatch "7: alice@dest-a.example never got the message"
	local secs
	secs=$(since "$t0")
	fleet_lmtpd_start gw1 || mismatch "7: gw-lmtpd on gw1 did not start again"
	fleet_wait 60 settled || mismatch "7: queues not empty: $(queues)"
	n=$(fleet_delivered s7 alice@dest-a.example)
	case $n in
	1) pass "7: alice@dest-a.example got the message once (killed before the destination's end-of-data reply)" ;;
	2) pass "7: alice@dest-a.example got the message twice (killed after the destination took it: the uncertain window)" ;;
	*) mismatch "7: alice@dest-a.example got $n copies, want 1 or 2" ;;
	esac
	[ "$(lmtpd_saw gw2 alice@dest-a.example delivered)" -eq 1 ] && pass "7: int retried through gw2" ||
		mismatch "7: gw2 did not deliver the retried message"
	summary+=("$(printf '%-3s %-8s %-22s %-3s %-4s %6s  %s' 7 s7 alice@dest-a.example 1-2 "$n" "$secs" "$(queues)")")
}

# ---- run ----------------------------------------------------------------------

fleet_init || exit 1
t_all=$(now)
echo "fleet: lab in $LAB, namespaces $FLEET_TAG-*"
fleet_up "$build" || { echo "FAIL: the lab did not come up" >&2; exit 1; }
echo "fleet: lab up after $(since "$t_all") s"
for s in "${scenarios[@]}"; do
	case $s in
	[1-7]) ;;
	*) echo "FAIL: no scenario '$s' (1-7)" >&2; exit 2 ;;
	esac
	t_s=$(now)
	echo "== scenario $s"
	"s$s"
	echo "== scenario $s: $(since "$t_s") s"
done
# the daemons survived everything, without a sanitizer report
for g in gw1 gw2; do
	kill -0 "$(cat "$LAB/$g/milter/daemon.pid")" 2>/dev/null || mismatch "gw-milter on $g died"
	kill -0 "$(cat "$LAB/$g/lmtpd/daemon.pid")" 2>/dev/null || mismatch "gw-lmtpd on $g died"
	if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$LAB/$g/milter/log" "$LAB/$g/lmtpd/log"; then
		mismatch "$g: sanitizer report: $(grep -hm1 -E 'ERROR: |runtime error:' "$LAB/$g/milter/log" "$LAB/$g/lmtpd/log")"
	fi
done

echo
echo "scenario  case  recipient  deliveries expected/seen  seconds  queues (postqueue -j) and gw-lmtpd spools"
printf '%-3s %-8s %-22s %-3s %-4s %6s  %s\n' sc case recipient exp seen secs queues
for l in "${summary[@]}"; do echo "$l"; done
echo "total: $(since "$t_all") s"
if [ "$failures" -ne 0 ]; then
	echo "fleet: $failures mismatch(es)" >&2
	exit 1
fi
echo "fleet: scenarios ${scenarios[*]} passed"
