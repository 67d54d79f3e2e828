#!/usr/bin/env bash
# gw-proxy as a daemon through its plain listener, driven from outside:
#   - -n refuses bad configurations with file:line and exit 78;
#   - swaks (pipelining) and smtp-source through the proxy to smtp-sink: every
#     message accepted at the dot, counted on the control socket;
#   - a scripted destination (gw-fakepeer) with mixed verdicts, reached after a
#     SIGHUP changed upstream: each RCPT gets the destination's own reply, the
#     refused message its 554, a destination that vanishes after the dot a 421;
#   - the session log: every line "TIMESTAMP ID ARROW text", one summary each;
#   - SIGTERM ends it with exit 0, pid file and control socket removed.
# Needs swaks, smtp-sink, smtp-source, python3. Stops everything by PID.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
proxy=$bindir/proxy/gw-proxy
fakepeer=$bindir/test/gw-fakepeer
[ -x "$proxy" ] || { echo "FAIL: $proxy not built" >&2; exit 1; }
lab_init
trap lab_stop_all EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$LAB/proxy.log" ] && tail -n 20 "$LAB/proxy.log" >&2
	[ -f "$LAB/session.log" ] && tail -n 30 "$LAB/session.log" >&2
	exit 1
}

# --- configuration errors name file:line -------------------------------------------------------
bad() {   # EXPECTED-TEXT KEY VALUE
	local c=$LAB/bad.conf rc=0 out
	cp "$LAB_SRC/etc/gw-proxy.conf" "$c"
	lab_conf_set "$c" "$2" "$3"
	out=$("$proxy" -n -c "$c" 2>&1) || rc=$?
	[ "$rc" -eq 78 ] || fail "-n with $2 = $3: exit $rc, want 78"
	grep -qE "bad.conf:[0-9]+: .*$1" <<<"$out" || fail "-n with $2 = $3 said: $out"
}
bad "want \[ADDRESS\]:PORT" listen "127.0.0.1:25"
bad "want \[ADDRESS\]:PORT" redirect_listen "unix:/run/x"
bad "HOST:PORT" upstream "unix:/run/x"
bad "" tls "sometimes"
echo "ok: configuration errors name file:line"

# --- smtp-sink as the destination ----------------------------------------------------------------
sp=$(lab_port)
lab_bg sink smtp-sink -u "$(id -un)" "127.0.0.1:$sp" 100
lab_wait_port "$sp" 10 || fail "smtp-sink does not listen"

pp=$(lab_port)
c=$LAB/gw-proxy.conf
cp "$LAB_SRC/etc/gw-proxy.conf" "$c"
lab_conf_set "$c" state_file "" # memory only: never the system's state file
lab_conf_set "$c" listen "[127.0.0.1]:$pp"
lab_conf_set "$c" upstream "[127.0.0.1]:$sp"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file "$LAB/gw-proxy.pid"
lab_conf_set "$c" session_log "$LAB/session.log"
lab_conf_set "$c" log stderr
lab_conf_set "$c" tls none
lab_conf_set "$c" reply_timeout 5s
"$proxy" -n -c "$c" >/dev/null || fail "-n refused the test configuration"
lab_bg proxy "$proxy" -f -c "$c"
pid=$(awk '$1=="proxy"{print $2}' "$LAB/bg")
lab_wait_port "$pp" 10 || fail "gw-proxy does not listen"
[ "$(cat "$LAB/gw-proxy.pid")" = "$pid" ] || fail "pid file does not hold $pid"

lab_swaks "$pp" "$LAB/t1" --to a@dest.test --pipeline
grep -q "^<- *250 2.0.0 Ok" "$LAB/t1" || fail "swaks through the proxy: $(grep '^<' "$LAB/t1" | tail -3)"
grep -q "^<- *250-PIPELINING" "$LAB/t1" || fail "no PIPELINING offered"
! grep -q "STARTTLS" "$LAB/t1" || fail "STARTTLS offered to the tenant"
timeout 60 smtp-source -c -s 2 -m 10 -f s@tenant.test -t r@dest.test "127.0.0.1:$pp" >"$LAB/source.out" 2>&1 ||
	fail "smtp-source through the proxy: $(tail -3 "$LAB/source.out")"
stats=$("$proxy" -C "$LAB/control" stats)
grep -q "messages=11 " <<<"$stats" || fail "stats after 11 messages: $stats"
grep -q "messages_refused=0 " <<<"$stats" || fail "stats: $stats"
echo "ok: swaks and smtp-source through the proxy to smtp-sink ($stats)"

# --- a destination with mixed verdicts, reached after SIGHUP ---------------------------------------
cat >"$LAB/dest.script" <<'S'
send 220 dest.test ESMTP
expect EHLO
send 250-dest.test\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250 8BITMIME
expect MAIL FROM:<s@tenant.test>
send 250 2.1.0 sender ok
expect RCPT TO:<a@dest.test>
send 250 2.1.5 a ok
expect RCPT TO:<b@dest.test>
send 550 5.1.1 <b@dest.test>: Recipient address rejected: User unknown
expect RCPT TO:<c@dest.test>
send 451 4.2.0 c: greylisted, try again later
expect DATA
send 354 go ahead
data
send 250 2.0.0 Ok: queued as 4QD1
expect MAIL
send 250 2.1.0 ok
expect RCPT
send 250 2.1.5 ok
expect DATA
send 354 go ahead
data
send 554 5.7.1 message content rejected
expect QUIT
send 221 bye
---
send 220 dest.test ESMTP
expect EHLO
send 250 dest.test
expect MAIL
send 250 2.1.0 ok
expect RCPT
send 250 2.1.5 ok
expect DATA
send 354 go ahead
data
close
S
lab_bg dest "$fakepeer" -s "$LAB/dest.script" -P "$LAB/dest.port" -r "$LAB/dest.rec" -t 10000
lab_wait_file "$LAB/dest.port" 10 || fail "gw-fakepeer did not start"
dp=$(cat "$LAB/dest.port")
lab_conf_set "$c" upstream "[127.0.0.1]:$dp"
kill -HUP "$pid"
for _ in $(seq 100); do grep -q "reload status=ok" "$LAB/proxy.log" && break; sleep 0.1; done
grep -q "reload status=ok" "$LAB/proxy.log" || fail "no reload logged"

lab_smtp "$pp" >"$LAB/t2" <<'C' || true
EHLO tenant.test
MAIL FROM:<s@tenant.test>
RCPT TO:<a@dest.test>
RCPT TO:<b@dest.test>
RCPT TO:<c@dest.test>
DATA
Subject: mixed\r\n\r\nhello\r\n.
MAIL FROM:<s@tenant.test>
RCPT TO:<a@dest.test>
DATA
Subject: spam\r\n\r\nbuy\r\n.
QUIT
C
want() {   # FILE LINE: the client saw exactly this reply line
	grep -qxF "S: $2" "$1" || fail "want \"$2\" in: $(grep '^S:' "$1" | tr '\n' '|')"
}
want "$LAB/t2" "250 2.1.0 sender ok"
want "$LAB/t2" "250 2.1.5 a ok"
want "$LAB/t2" "550 5.1.1 <b@dest.test>: Recipient address rejected: User unknown"
want "$LAB/t2" "451 4.2.0 c: greylisted, try again later"
want "$LAB/t2" "250 2.0.0 Ok: queued as 4QD1"
want "$LAB/t2" "554 5.7.1 message content rejected"
grep -q "^S: 250-SIZE 100000" "$LAB/t2" || fail "the destination's SIZE not offered"

lab_smtp "$pp" >"$LAB/t3" <<'C' || true
EHLO tenant.test
MAIL FROM:<s@tenant.test>
RCPT TO:<a@dest.test>
DATA
Subject: lost\r\n\r\nhello\r\n.
QUIT
C
grep -q "^S: 421 4.4.2 " "$LAB/t3" || fail "a destination lost after the dot: $(grep '^S:' "$LAB/t3" | tail -2)"
! grep -q "^S: 250 2.0.0" "$LAB/t3" || fail "250 for a message the destination never accepted"
echo "ok: mixed verdicts passed on word for word; 421 when the destination vanished after the dot"

# --- the session log -----------------------------------------------------------------------------
lab_wait_pid "$(awk '$1=="dest"{print $2}' "$LAB/bg")" 15 || fail "gw-fakepeer did not finish its script"
sed -i "/^dest /d" "$LAB/bg"
for _ in $(seq 50); do [ "$(grep -c ' == ' "$LAB/session.log")" -ge 13 ] && break; sleep 0.1; done
bad_lines=$(grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z [0-9a-f]{8} (<-|->|\|<|\|>|>\||==) ' "$LAB/session.log" || true)
[ "$bad_lines" -eq 0 ] || fail "$bad_lines session log lines out of the notation"
grep -qE ' <- 550 5\.1\.1 <b@dest\.test>: Recipient address rejected: User unknown \[[0-9]+ms\]$' "$LAB/session.log" ||
	fail "no timed <- line for the refused recipient"
grep -qE ' -> RCPT TO:<c@dest\.test>$' "$LAB/session.log" || fail "no -> line for a relayed RCPT"
grep -qE ' == .*outcome=quit messages=2 refused=1 rcpts=2/4 ' "$LAB/session.log" ||
	fail "summary of the mixed session: $(grep ' == ' "$LAB/session.log" | tail -3)"
grep -qE ' == .*outcome=upstream-connection-lost ' "$LAB/session.log" || fail "summary of the lost session"
[ "$(grep -c ' == ' "$LAB/session.log")" -eq 13 ] || fail "want 13 summary lines (one per session: 1 swaks, 10 smtp-source, 2 scripted), got $(grep -c ' == ' "$LAB/session.log")"
echo "ok: session log in the notation, one summary per session"

# --- stop ------------------------------------------------------------------------------------------
kill -TERM "$pid"
lab_wait_pid "$pid" 15 || fail "gw-proxy did not stop"
rc=0
wait "$pid" 2>/dev/null || rc=$?
[ "$rc" -eq 0 ] || fail "exit $rc after SIGTERM"
[ ! -e "$LAB/gw-proxy.pid" ] || fail "pid file left behind"
[ ! -e "$LAB/control" ] || fail "control socket left behind"
sed -i "/^proxy /d" "$LAB/bg"
echo "ok: SIGTERM (exit $rc)"
echo PASS
