#!/bin/bash
# milter_rtt.sh - the round trips the MTA waits for, through the real daemon:
# gw-milter driven over the milter protocol (bench/milter_rtt.py, the MTA
# side as Postfix's smtpd: MAIL, RCPT, DATA, end of message, each awaited),
# the internal MTA gw-fakepeer's "serve 1000": every reply one second after
# its command, the greeting two seconds after connect. Usage:
# milter_rtt.sh BUILD_DIR
#
# Covered: the DATA reply does not wait for the internal MTA (the session
# goes back to its pool with RSET and MAIL written, their replies read with
# the next RCPT): well under one round trip, where waiting for them takes
# one; a cold recipient on the pooled session costs one round trip, not two;
# the first recipient (a new session) costs greeting, EHLO and one round
# trip for MAIL and RCPT together (4 s), not a fifth for MAIL alone; the
# internal MTA saw RSET, MAIL and RCPT in that order on one connection.
# Bounds are half a round trip wide, far above this machine's scheduling noise.
set -u

# shellcheck source=lib/milter_harness.sh
. "$(dirname "$0")/lib/milter_harness.sh"
mh_init milter-rtt "${1:-}"

printf 'sleep 2000\nsend 220 internal.test ESMTP\nserve 1000\n' >"$T/slow.script"
start_peer slow
printf 'example.com  smtp:[127.0.0.1]:%s\n' "$(peer_port slow)" >"$T/routes"
mh_conf rtt
milter_start rtt || mh_finish

RTT_TAG=rtt timeout 60 python3 "$SRC/bench/milter_rtt.py" "$SOCK" cold 3 >"$T/out" 2>&1
verdict $? "three messages, each recipient accepted ($(tail -1 "$T/out"))"
first=$(awk '$1 == "first" { printf "%d", $2 }' "$T/out")
want_le "first recipient, new session (connect 2 s, EHLO, MAIL+RCPT), ms" "${first:-99999}" 4500
check "first recipient took the 4 s the internal MTA needs at least" test "${first:-0}" -ge 3900
for ms in $(awk '$1 == "data" { printf "%d\n", $2 }' "$T/out"); do
	want_le "DATA reply while the session is reset, ms" "$ms" 500
done
for ms in $(awk '$1 == "rcpt" { printf "%d\n", $2 }' "$T/out"); do
	want_le "cold recipient on the pooled session (one round trip), ms" "$ms" 1500
	check "cold recipient took its round trip ($ms ms)" test "$ms" -ge 950
done
want_eq "timed replies" "$(grep -c '^data ' "$T/out")" 3
milter_stop
wait_for 10 test -s "$T/slow.rec/conn-0.txt" || bad "no record of the internal MTA's connection"
seen=$(tr -d '\r' <"$T/slow.rec/conn-0.txt" | grep -v '^EHLO' | head -6 | paste -sd' ' -)
want_eq "what the internal MTA saw" "$seen" \
	"MAIL FROM:<> RCPT TO:<cold-rtt-0@example.com> RSET MAIL FROM:<> RCPT TO:<cold-rtt-1@example.com> RSET"
mh_finish
