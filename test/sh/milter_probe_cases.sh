#!/bin/bash
# milter_probe_cases.sh - the call-ahead cases of issue 3 that need the real
# gw-milter daemon and timing: driven over the milter protocol with
# miltertest, each internal MTA a gw-fakepeer whose records prove what the
# milter sent (and did not send). Usage: milter_probe_cases.sh BUILD_DIR
#
# Covered: silent peer (451 at the per-RCPT deadline); slow banner within
# the timeouts (normal answer); EHLO refused -> HELO; <> refused -> the
# fallback sender, the answer is the RCPT's, and the next message starts
# with the fallback; connection lost mid-RCPT (closed, or closed inside a
# reply) -> 451 4.4.1; garbage and over-long reply lines -> 451 4.4.1, never
# 5xx; multi-line replies (550 -> 550 5.1.1, 250 -> accepted, the session
# stays in step); tls = encrypt with STARTTLS not offered -> 451 and no MAIL
# (and with STARTTLS offered: checked over TLS); second next hop used when
# the first refuses; a pooled session reused across two messages (one
# connection, RSET between); cache hit (no RCPT sent); a cached-valid
# recipient answered 451 once the route is down; a blackholed route: 451 at
# the deadline, then 451 at once, still down while blackholed, up again
# within 10 s of recovering (on the same port); purge making the next RCPT
# go live; catch-all routes (catchall_check = yes) answered without RCPT
# probes, and a route that refuses the random local part probed normally.
# The cases already in milter_miltertest.sh are not repeated here.
#
# Timeouts are small (deadline 2 s, reprobe_interval 1 s) so the script runs
# in about half a minute; the margins allow for sanitizer builds.
set -u

# shellcheck source=lib/milter_harness.sh
. "$(dirname "$0")/lib/milter_harness.sh"
mh_init milter-cases "${1:-}"

DEADLINE_MS=2000
MARGIN_MS=1000 # scheduling and sanitizer slack on top of the deadline
AT_ONCE_MS=300 # "at once": far below any timeout

# now_ms: wall clock in milliseconds, for what the log cannot time.
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# sources ADDR: the source of every decision for ADDR, in order
sources() { grep -F " rcpt=$1 " "$LOG" | grep ': rcpt ' | sed -n 's/.* source=\([^ ]*\).*/\1/p' | paste -sd,; }
# rcpt_lines NAME: the RCPT commands peer NAME received
rcpt_lines() { peer_seen "$1" | grep -i '^RCPT' | tr -d '\r'; }

# --- internal MTAs ---------------------------------------------------------------
# A helper for the usual opening: greeting, EHLO, MAIL FROM:<>.
hello() { # hello DOMAIN
	printf 'send 220 %s ESMTP fake\nexpect EHLO\nsend 250 %s\nexpect MAIL FROM:<>\nsend 250 2.1.0 ok\n' "$1" "$1"
}

# Silent at RCPT: only the per-RCPT deadline ends the wait (reply_timeout is longer).
{ hello silent.test; echo 'expect RCPT TO:<quiet@silent.test>'; echo 'sleep 5000'; } >"$T/silent.script"

# A slow banner, well inside the deadline.
{
	echo 'sleep 800'
	hello slow.test
	echo 'expect RCPT TO:<known@slow.test>'
	echo 'send 250 2.1.5 ok'
	echo 'expect RSET'
	echo 'send 250 ok'
} >"$T/slow.script"

# EHLO refused: the probe must fall back to HELO, not give up.
cat >"$T/helo.script" <<'EOF'
send 220 helo.test ESMTP old
expect EHLO
send 502 5.5.2 EHLO not implemented
expect HELO
send 250 helo.test
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<known@helo.test>
send 250 ok
expect RSET
send 250 ok
EOF

# <> refused: the fallback sender, then the RCPTs decide; the route remembers
# the refusal, so the next message (pooled session) starts with the fallback.
cat >"$T/nullref.script" <<'EOF'
send 220 nullref.test ESMTP
expect EHLO
send 250 nullref.test
expect MAIL FROM:<>
send 550 5.7.1 null sender not accepted here
expect MAIL FROM:<probe@gw.test>
send 250 ok
expect RCPT TO:<known@nullref.test>
send 250 ok
expect RCPT TO:<unknown@nullref.test>
send 550 5.1.1 no such user
expect RSET
send 250 ok
expect MAIL FROM:<probe@gw.test>
send 250 ok
expect RCPT TO:<other@nullref.test>
send 250 ok
expect RSET
send 250 ok
EOF

# Connection lost after RCPT; and lost inside a "250" reply (a partial 250 is no answer).
{ hello lost.test; echo 'expect RCPT TO:<x@lost.test>'; echo 'close'; } >"$T/lost.script"
{ hello lostpart.test; echo 'expect RCPT TO:<x@lostpart.test>'; echo 'raw 250 2.1.5 o'; echo 'close'; } >"$T/lostpart.script"
# Garbage, and a 550 whose line is over the 1000-byte limit: neither may become 5xx.
{ hello garbage.test; echo 'expect RCPT TO:<x@garbage.test>'; echo 'send hello, this is not SMTP'; } >"$T/garbage.script"
{ hello longline.test; echo 'expect RCPT TO:<x@longline.test>'; echo 'raw 550 5.1.1 '; echo 'sendlong 3000'; } >"$T/longline.script"

# Multi-line replies everywhere; the second RCPT proves the session stayed in step.
cat >"$T/multi.script" <<'EOF'
send 220-multi.test ESMTP
send 220 second greeting line
expect EHLO
send 250-multi.test
send 250-SIZE 10240000
send 250 8BITMIME
expect MAIL FROM:<>
send 250-2.1.0 sender
send 250 2.1.0 ok
expect RCPT TO:<unknown@multi.test>
send 550-5.1.1 the mailbox you tried to reach
send 550-5.1.1 does not exist here,
send 550 5.1.1 please check the address
expect RCPT TO:<known@multi.test>
send 250-2.1.5 recipient
send 250 2.1.5 ok
expect RSET
send 250 ok
EOF

# The second next hop of a route whose first hop refuses connections.
{
	hello hop2.test
	echo 'expect RCPT TO:<known@hop2.test>'
	echo 'send 250 ok'
	echo 'expect RCPT TO:<unknown@hop2.test>'
	echo 'send 550 5.1.1 no'
	echo 'expect RSET'
	echo 'send 250 ok'
} >"$T/hop2.script"

# One connection for two messages: RSET between them.
{
	hello pool.test
	echo 'expect RCPT TO:<p1@pool.test>'
	echo 'send 250 ok'
	echo 'expect RSET'
	echo 'send 250 ok'
	echo 'expect MAIL FROM:<>'
	echo 'send 250 ok'
	echo 'expect RCPT TO:<p2@pool.test>'
	echo 'send 250 ok'
	echo 'expect RSET'
	echo 'send 250 ok'
} >"$T/pool.script"

# Cache hit: one RCPT only. The idle session stays open (sleep) so the pool
# vouches for the route; a peer that closed it would force a live check.
{
	hello cache.test
	echo 'expect RCPT TO:<k@cache.test>'
	echo 'send 250 ok'
	echo 'expect RSET'
	echo 'send 250 ok'
	echo 'sleep 4000'
} >"$T/cache.script"

# Purge: live, cached, purged, live again (pooled).
{
	hello purge.test
	echo 'expect RCPT TO:<pu@purge.test>'
	echo 'send 250 ok'
	echo 'expect RSET'
	echo 'send 250 ok'
	echo 'expect MAIL FROM:<>'
	echo 'send 250 ok'
	echo 'expect RCPT TO:<pu@purge.test>'
	echo 'send 250 ok'
	echo 'expect RSET'
	echo 'send 250 ok'
} >"$T/purge.script"

# Cached valid, then the internal MTA stops (the test stops this peer).
{
	hello cvd.test
	echo 'expect RCPT TO:<known@cvd.test>'
	echo 'send 250 ok'
	echo 'expect RSET'
	echo 'send 250 ok'
	echo 'sleep 15000'
} >"$T/cvd.script"

# Blackhole: connections accepted, nothing ever said (re-probes too: 20 of them).
echo 'sleep 15000' >"$T/bh1.script"
# The same port after recovery: the re-probe (EHLO, QUIT), then a real probe.
cat >"$T/bh2.script" <<'EOF'
send 220 bh.test ESMTP back
expect EHLO
send 250 bh.test
expect QUIT
send 221 bye
---
send 220 bh.test ESMTP back
expect EHLO
send 250 bh.test
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<back@bh.test>
send 250 ok
expect RSET
send 250 ok
EOF

# tls = encrypt (second daemon): STARTTLS not offered -> no MAIL; offered -> used.
printf 'send 220 tlsno.test ESMTP\nexpect EHLO\nsend 250-tlsno.test\nsend 250 PIPELINING\n' >"$T/tlsno.script"
cat >"$T/tlsyes.script" <<'EOF'
send 220 tlsyes.test ESMTP
expect EHLO
send 250-tlsyes.test
send 250 STARTTLS
expect STARTTLS
send 220 2.0.0 go ahead
starttls
expect EHLO
send 250 tlsyes.test
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<known@tlsyes.test>
send 250 ok
expect RSET
send 250 ok
EOF

# catchall_check = yes (third daemon): a route that takes the random local part...
{
	hello catchall.test
	echo 'expect RCPT TO:<gw-probe-'
	echo 'send 250 2.1.5 ok'
	echo 'expect RSET'
	echo 'send 250 ok'
} >"$T/catchall.script"
# ... and one that refuses it: its recipients are probed as usual.
{
	hello nocatch.test
	echo 'expect RCPT TO:<gw-probe-'
	echo 'send 550 5.1.1 no such user'
	echo 'expect RCPT TO:<known@nocatch.test>'
	echo 'send 250 ok'
	echo 'expect RCPT TO:<unknown@nocatch.test>'
	echo 'send 550 5.1.1 no such user'
	echo 'expect RSET'
	echo 'send 250 ok'
} >"$T/nocatch.script"

for p in silent slow helo nullref lost lostpart garbage longline multi hop2 pool cache purge cvd \
	tlsno tlsyes catchall nocatch; do
	start_peer $p
done
# bh2 comes back on bh1's port: a claimed one, which no outgoing connection can take meanwhile
BH_PORT=$(free_port)
start_peer bh1 20 -p "$BH_PORT"
DOWN_PORT=$(free_port)

{
	for p in silent slow helo nullref lost lostpart garbage longline multi pool cache purge cvd \
		tlsno tlsyes catchall nocatch; do
		printf '%-16s smtp:[127.0.0.1]:%s\n' "$p.test" "$(peer_port $p)"
	done
	printf '%-16s smtp:[127.0.0.1]:%s, [127.0.0.1]:%s\n' hop2.test "$DOWN_PORT" "$(peer_port hop2)"
	printf '%-16s smtp:[127.0.0.1]:%s\n' bh.test "$BH_PORT"
} >"$T/routes"

# The main daemon. reply_timeout above the deadline, so a silent peer is ended by the deadline.
mh_conf probe connect_timeout=1s reply_timeout=5s deadline=2s reprobe_interval=1s \
	unknown_limit=1000 fallback_sender=probe@gw.test confirm_window=10s
milter_start probe || mh_finish

TEMPFAIL_TEXT="Recipient address verification failed: cannot verify now, try again later"

# --- one message per case, each from its own client -----------------------------------

cat >"$T/cases.lua" <<'EOF'
message("192.0.2.1", "QS1", "quiet@silent.test")
message("192.0.2.2", "QS2", "known@slow.test")
message("192.0.2.3", "QS3", "known@helo.test")
message("192.0.2.4", "QS4", "known@nullref.test", "unknown@nullref.test")
message("192.0.2.4", "QS5", "other@nullref.test")
message("192.0.2.5", "QS6", "x@lost.test")
message("192.0.2.6", "QS7", "x@lostpart.test")
message("192.0.2.7", "QS8", "x@garbage.test")
message("192.0.2.8", "QS9", "x@longline.test")
message("192.0.2.9", "QS10", "unknown@multi.test", "known@multi.test")
message("192.0.2.10", "QS11", "known@hop2.test", "unknown@hop2.test")
message("192.0.2.11", "QS12", "p1@pool.test")
message("192.0.2.12", "QS13", "p2@pool.test")
EOF
run_lua cases

# Silent peer: 451 when the deadline (not the 5 s reply timeout) runs out.
expect quiet@silent.test replycode tempfail new 451 "451 4.4.1 <quiet@silent.test>: $TEMPFAIL_TEXT"
ms=$(ms_of quiet@silent.test)
[[ $ms =~ ^[0-9]+$ ]] && [ "$ms" -ge $((DEADLINE_MS - 100)) ] && [ "$ms" -le $((DEADLINE_MS + MARGIN_MS)) ]
verdict $? "silent peer answered at the deadline: got ${ms} ms, want $DEADLINE_MS..$((DEADLINE_MS + MARGIN_MS))"

expect known@slow.test continue accept new -
ms=$(ms_of known@slow.test)
[[ $ms =~ ^[0-9]+$ ]] && [ "$ms" -ge 700 ]
verdict $? "slow banner waited for: got ${ms} ms, want >= 700"

expect known@helo.test continue accept new -

expect known@nullref.test continue accept new -
expect unknown@nullref.test replycode reject pooled 550 \
	"550 5.1.1 <unknown@nullref.test>: Recipient address rejected: User unknown"
expect other@nullref.test continue accept pooled -

for a in x@lost.test x@lostpart.test x@garbage.test x@longline.test; do
	expect $a replycode tempfail new 451 "451 4.4.1 <$a>: $TEMPFAIL_TEXT"
done

expect unknown@multi.test replycode reject new 550 \
	"550 5.1.1 <unknown@multi.test>: Recipient address rejected: User unknown"
expect known@multi.test continue accept pooled -

expect known@hop2.test continue accept new -
expect unknown@hop2.test replycode reject pooled 550
want_eq "hop2.test answered by the second hop" "$(field "$(logline known@hop2.test)" route)" \
	"[127.0.0.1]:$(peer_port hop2)"

expect p1@pool.test continue accept new -
expect p2@pool.test continue accept pooled -

# --- cache hit, purge, cached-valid with the route down -------------------------------

cat >"$T/cache.lua" <<'EOF'
message("192.0.2.20", "QC1", "k@cache.test")
message("192.0.2.21", "QC2", "k@cache.test")
message("192.0.2.22", "QP1", "pu@purge.test")
message("192.0.2.23", "QP2", "pu@purge.test")
message("192.0.2.24", "QV1", "known@cvd.test")
message("192.0.2.25", "QV2", "known@cvd.test")
EOF
run_lua cache
# The second message to k@cache.test: answered from the cache, so within the confirm window.
expect k@cache.test continue accept cache -
want_eq "k@cache.test: sources of the two answers" "$(sources k@cache.test)" "new,cache"
expect pu@purge.test continue accept cache -
expect known@cvd.test continue accept cache -

out=$(ctl purge pu@purge.test)
want_eq "purge ADDRESS" "$out" "ok purged=1"
echo 'message("192.0.2.26", "QP3", "pu@purge.test")' >"$T/purge.lua"
run_lua purge
expect pu@purge.test continue accept pooled -
want_eq "pu@purge.test: live, cached, live again after the purge" "$(sources pu@purge.test)" "new,cache,pooled"

# The internal MTA stops: the cached "valid" must not stand in for reachability.
peer_stop cvd
echo 'message("192.0.2.27", "QV3", "known@cvd.test")' >"$T/cvd.lua"
run_lua cvd
l=$(logline known@cvd.test)
[ "$(got known@cvd.test)" = replycode ] && [ "$(field "$l" verdict)" = tempfail ] &&
	[ "$(field "$l" reply)" = 451 ] && [ "$(field "$l" source)" != cache ]
verdict $? "cached-valid recipient with the route down -> 451, not from the cache (got: $l)"

# --- a blackholed route, and its recovery -----------------------------------------------

cat >"$T/bh.lua" <<'EOF'
message("192.0.2.40", "QB1", "b1@bh.test", "b2@bh.test")
message("192.0.2.41", "QB2", "b3@bh.test")
EOF
run_lua bh
expect b1@bh.test replycode tempfail new 451 "451 4.4.1 <b1@bh.test>: $TEMPFAIL_TEXT"
want_le "blackhole: first RCPT waited out the deadline only" "$(ms_of b1@bh.test)" $((DEADLINE_MS + MARGIN_MS))
expect b2@bh.test replycode tempfail down 451
want_le "blackhole: next RCPT in the message answered at once" "$(ms_of b2@bh.test)" $AT_ONCE_MS
expect b3@bh.test replycode tempfail down 451
want_le "blackhole: next message answered at once" "$(ms_of b3@bh.test)" $AT_ONCE_MS
# Re-probes (every second) into the blackhole must not mark it up.
sleep 2.5
echo 'message("192.0.2.42", "QB3", "b4@bh.test")' >"$T/bh2.lua"
run_lua bh2
expect b4@bh.test replycode tempfail down 451
want_le "blackhole: still down and answered at once after re-probes" "$(ms_of b4@bh.test)" $AT_ONCE_MS

# Recovery: a working internal MTA on the same port.
peer_stop bh1
# The probe and the re-probes connected, and none got past the (missing) greeting.
n=$(peer_conns bh1)
want_eq "blackhole: connections (probe + re-probes >= 2), connections with anything sent" \
	"$([ "$n" -ge 2 ] && echo ">=2"),$(peer_talked bh1)" ">=2,0"
t0=$(now_ms)
start_peer bh2 2 -p "$BH_PORT"
if wait_for 10 grep -qF "ca_reprobe route=[127.0.0.1]:$BH_PORT/smtp result=up" "$LOG"; then
	want_le "recovery noticed (ms after the MTA came back)" $(($(now_ms) - t0)) 10000
else
	bad "route not marked up within 10 s of recovering"
fi
echo 'message("192.0.2.43", "QB4", "back@bh.test")' >"$T/bh3.lua"
run_lua bh3
expect back@bh.test continue accept new -
want_le "normal answer after recovery within 10 s (ms)" $(($(now_ms) - t0)) 10000

check "no 5xx for a temporary cause anywhere" bash -c "! grep -E 'verdict=tempfail.* reply=5' '$LOG'"
check "internal host and text never revealed in a reply" \
	bash -c "! grep -F 'rcpt_reply' '$LOG' | grep -E '127\\.0\\.0\\.1|not SMTP|null sender|xxxxxxxx'"
milter_stop

# --- tls = encrypt --------------------------------------------------------------------------

mh_conf tls tls=encrypt connect_timeout=1s reply_timeout=5s deadline=2s
milter_start tls || mh_finish
cat >"$T/tls.lua" <<'EOF'
message("192.0.2.50", "QT1", "known@tlsno.test")
message("192.0.2.51", "QT2", "known@tlsyes.test")
EOF
run_lua tls
expect known@tlsno.test replycode tempfail new 451 "451 4.4.1 <known@tlsno.test>: $TEMPFAIL_TEXT"
expect known@tlsyes.test continue accept new -
milter_stop

# --- catchall_check = yes ---------------------------------------------------------------------

mh_conf catchall catchall_check=yes connect_timeout=1s reply_timeout=5s deadline=2s
milter_start catchall || mh_finish
cat >"$T/catchall.lua" <<'EOF'
message("192.0.2.60", "QA1", "a@catchall.test", "b@catchall.test")
message("192.0.2.61", "QA2", "c@catchall.test")
message("192.0.2.62", "QA3", "known@nocatch.test", "unknown@nocatch.test")
EOF
run_lua catchall
expect a@catchall.test continue accept catchall -
expect b@catchall.test continue accept catchall -
expect c@catchall.test continue accept catchall -
expect known@nocatch.test continue accept new -
expect unknown@nocatch.test replycode reject pooled 550
milter_stop

# --- what the internal MTAs saw -----------------------------------------------------------------
# Every peer ends by itself 2 s after its script (or was stopped); then its records are complete.

for p in silent slow helo nullref lost lostpart garbage longline multi hop2 pool cache purge \
	tlsno tlsyes catchall nocatch bh2; do
	peer_done $p 30
done

want_eq "silent: the RCPT was sent, nothing after it" "$(peer_seen silent | tr -d '\r' | tail -1)" \
	"RCPT TO:<quiet@silent.test>"
seen=$(peer_seen helo | tr -d '\r')
want_eq "EHLO refused: HELO followed it" "$(grep -E '^(EHLO|HELO)' <<<"$seen" | cut -d' ' -f1 | paste -sd,)" "EHLO,HELO"
want_eq "null sender refused: the MAIL commands, in order" \
	"$(peer_seen nullref | tr -d '\r' | grep '^MAIL' | paste -sd,)" \
	"MAIL FROM:<>,MAIL FROM:<probe@gw.test>,MAIL FROM:<probe@gw.test>"
for p in lost lostpart garbage longline; do
	seen=$(peer_seen $p | tr -d '\r')
	want_eq "$p: nothing sent after the RCPT but QUIT" "$(sed -n '/^RCPT/,$p' <<<"$seen" | grep -v '^QUIT' | paste -sd,)" \
		"RCPT TO:<x@$p.test>"
done
want_eq "multi: both RCPTs over one session" "$(rcpt_lines multi | wc -l),$(peer_conns multi)" "2,1"
want_eq "hop2: the second hop got both RCPTs over one session" "$(rcpt_lines hop2 | wc -l),$(peer_conns hop2)" "2,1"
want_eq "pool: one connection for two messages" "$(peer_conns pool)" 1
want_eq "pool: RCPT, RSET, RCPT, RSET in that order" \
	"$(peer_seen pool | tr -d '\r' | grep -E '^(RCPT|RSET)' | cut -c1-4 | paste -sd,)" "RCPT,RSET,RCPT,RSET"
want_eq "cache hit: one RCPT for two messages" "$(rcpt_lines cache | wc -l)" 1
want_eq "purge: RCPT before the cache and after the purge, none for the cached answer" \
	"$(rcpt_lines purge | wc -l)" 2
want_eq "cvd: one RCPT, the cached answer sent none" "$(rcpt_lines cvd | wc -l)" 1
want_eq "blackhole recovery: a re-probe (EHLO, QUIT), then the probe" \
	"$(tr -d '\r' <"$T/bh2.rec/conn-0.txt" | cut -d' ' -f1 | paste -sd,)|$(rcpt_lines bh2)" \
	"EHLO,QUIT|RCPT TO:<back@bh.test>"
seen=$(peer_seen tlsno | tr -d '\r')
check "tls = encrypt without STARTTLS: no STARTTLS, MAIL or RCPT sent" none_of '^(STARTTLS|MAIL|RCPT)' "$seen"
seen=$(peer_seen tlsyes | tr -d '\r')
want_eq "tls = encrypt with STARTTLS: commands in order" \
	"$(grep -vE '^QUIT' <<<"$seen" | cut -d' ' -f1 | paste -sd,)" "EHLO,STARTTLS,EHLO,MAIL,RCPT,RSET"
want_eq "catch-all: only the random local part was probed" \
	"$(rcpt_lines catchall | sed 's/gw-probe-[0-9a-f]*@/gw-probe-RANDOM@/' | paste -sd,)" \
	"RCPT TO:<gw-probe-RANDOM@catchall.test>"
want_eq "not catch-all: random local part, then each recipient" \
	"$(rcpt_lines nocatch | sed 's/gw-probe-[0-9a-f]*@/gw-probe-RANDOM@/' | paste -sd,)" \
	"RCPT TO:<gw-probe-RANDOM@nocatch.test>,RCPT TO:<known@nocatch.test>,RCPT TO:<unknown@nocatch.test>"

mh_finish
