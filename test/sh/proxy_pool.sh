#!/usr/bin/env bash
# gw-proxy's outbound address pool against a destination that refuses one
# source address as blocklisted:
#   - pool = 127.0.0.2, 127.0.0.3; the destination (a small python server on
#     127.0.0.1) greets 127.0.0.2 with "554 5.7.1 ... blocked using
#     zen.spamhaus.org" and takes mail from any other address;
#   - the first session goes out from 127.0.0.2, meets the verdict in the
#     greeting, connects again from 127.0.0.3 in the same session and the
#     message is delivered: the tenant never sees the 554; 127.0.0.2 is
#     retired (logged, counted in stats, listed by "retired");
#   - then the destination refuses RCPT from 127.0.0.3 with "554 5.7.1 ...
#     listed at bl.test": it is the transaction's first RCPT, so 127.0.0.3 is
#     retired and the same session connects again from 127.0.0.4, sends the
#     MAIL and the RCPT again and the message is delivered: the tenant sees
#     neither the 554 nor a 451 (a verdict after an accepted RCPT, answered
#     451 4.7.1, is test_proxy_relay's); its next session goes out from
#     127.0.0.4 too;
#   - after a SIGHUP with a tenant_map giving 127.0.0.0/8 the tenant "acme"
#     and only 127.0.0.4, the session goes out from 127.0.0.4 and its
#     summary names the tenant;
#   - tarpit_delay = 1s: a RCPT answered after 1.5 s marks the destination
#     as a tarpit, a "451 4.7.1 Rate limit exceeded" as throttle (logged,
#     counted, listed by "marked"), and the replies still reach the tenant;
#   - a bad pool address, or a tenant_map address outside the pool, is
#     refused at load with file:line.
# Needs python3. Stops everything by PID.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
proxy=$bindir/proxy/gw-proxy
[ -x "$proxy" ] || { echo "FAIL: $proxy not built" >&2; exit 1; }
lab_init
trap lab_stop_all EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$LAB/proxy.log" ] && tail -n 20 "$LAB/proxy.log" >&2
	[ -f "$LAB/session.log" ] && tail -n 30 "$LAB/session.log" >&2
	[ -f "$LAB/dest.log" ] && tail -n 20 "$LAB/dest.log" >&2
	exit 1
}

# --- configuration errors ------------------------------------------------------------------------
bad() {   # EXPECTED-TEXT POOL TENANT_MAP
	local c=$LAB/bad.conf rc=0 out
	cp "$LAB_SRC/etc/gw-proxy.conf" "$c"
	lab_conf_set "$c" pool "$2"
	lab_conf_set "$c" tenant_map "$3"
	out=$("$proxy" -n -c "$c" 2>&1) || rc=$?
	[ "$rc" -eq 78 ] || fail "-n with pool = $2, tenant_map = $3: exit $rc, want 78"
	grep -qE "bad.conf:[0-9]+: $1" <<<"$out" || fail "-n with pool = $2, tenant_map = $3 said: $out"
}
printf '# tenants\n127.0.0.0/8 acme 127.0.0.4\n' >"$LAB/tenants"
printf '127.0.0.0/8 acme 127.0.0.9\n' >"$LAB/tenants.bad"
bad "pool: want a numeric IPv4 or IPv6 address \(mail.example\)" "127.0.0.2, mail.example" ""
bad "tenant_map: needs pool" "" "$LAB/tenants"
bad "tenant_map: .*tenants.bad:1: 127.0.0.9 is not in pool" "127.0.0.2" "$LAB/tenants.bad"
echo "ok: a bad pool address or tenant_map is refused with file:line"

# --- the destination -----------------------------------------------------------------------------
dp=$(lab_port)
cat >"$LAB/dest.py" <<'PY'
import os, socket, sys, threading, time
port, record, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def serve(c, peer):
    f = c.makefile("rb")
    def send(line):
        c.sendall(line.encode() + b"\r\n")
    blocked = peer == "127.0.0.2"
    if blocked:
        send("554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using zen.spamhaus.org")
    else:
        send("220 dest.test ESMTP")
    while True:
        line = f.readline()
        if not line:
            break
        cmd = line.decode("latin-1").strip().upper()
        if cmd.startswith("QUIT"):
            send("221 bye")
            break
        if blocked:
            send("503 5.5.1 go away")
        elif cmd.startswith("RCPT") and peer == "127.0.0.3" and os.path.exists(flag):
            send("554 5.7.1 Service unavailable; Client host [127.0.0.3] listed at bl.test")
        elif cmd.startswith("EHLO"):
            send("250-dest.test")
            send("250 PIPELINING")
        elif cmd.startswith("RCPT TO:<SLOW@"):
            time.sleep(1.5)
            send("250 2.1.5 slow ok")
        elif cmd.startswith("RCPT TO:<BUSY@"):
            send("451 4.7.1 Rate limit exceeded, try again later")
        elif cmd.startswith("DATA"):
            send("354 go ahead")
            while f.readline() not in (b".\r\n", b""):
                pass
            with open(record, "a") as r:
                r.write("delivered from %s\n" % peer)
            send("250 2.0.0 Ok: queued")
        else:
            send("250 ok")
    c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(16)
print("listening", flush=True)
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a[0]), daemon=True).start()
PY
: >"$LAB/delivered"
lab_bg dest python3 "$LAB/dest.py" "$dp" "$LAB/delivered" "$LAB/block3"
lab_wait_port "$dp" 10 || fail "the destination does not listen"

# --- the proxy -----------------------------------------------------------------------------------
pp=$(lab_port)
c=$LAB/gw-proxy.conf
cp "$LAB_SRC/etc/gw-proxy.conf" "$c"
lab_conf_set "$c" state_file "" # memory only: never the system's state file
lab_conf_set "$c" listen "[127.0.0.1]:$pp"
lab_conf_set "$c" upstream "[127.0.0.1]:$dp"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file "$LAB/gw-proxy.pid"
lab_conf_set "$c" session_log "$LAB/session.log"
lab_conf_set "$c" log stderr
lab_conf_set "$c" tls none
lab_conf_set "$c" reply_timeout 10s
lab_conf_set "$c" pool "127.0.0.2, 127.0.0.3, 127.0.0.4"
lab_conf_set "$c" pool_retire_time 1h
lab_conf_set "$c" tarpit_delay 1s
"$proxy" -n -c "$c" >/dev/null || fail "-n refused the test configuration"
lab_bg proxy "$proxy" -f -c "$c"
pid=$(awk '$1=="proxy"{print $2}' "$LAB/bg")
lab_wait_port "$pp" 10 || fail "gw-proxy does not listen"

session() {   # OUT
	lab_smtp "$pp" >"$1" <<'C' || true
EHLO tenant.test
MAIL FROM:<s@tenant.test>
RCPT TO:<a@dest.test>
DATA
Subject: pool\r\n\r\nhello\r\n.
QUIT
C
}

session "$LAB/t1"
grep -q "^S: 250 2.0.0 Ok: queued" "$LAB/t1" || fail "first session: $(grep '^S:' "$LAB/t1" | tr '\n' '|')"
! grep -q "^S: 5" "$LAB/t1" || fail "the tenant saw a 5xx: $(grep '^S: 5' "$LAB/t1")"
grep -qx "delivered from 127.0.0.3" "$LAB/delivered" || fail "delivered: $(cat "$LAB/delivered")"
grep -qE ' \|> connect \[127\.0\.0\.1\]:[0-9]+ from 127\.0\.0\.2,' "$LAB/session.log" ||
	fail "the first session did not go out from 127.0.0.2"
grep -qE ' \|> ! pool: 127\.0\.0\.2 blocklisted at 127\.0\.0\.1: connecting again from another address$' "$LAB/session.log" ||
	fail "no reconnection in the session log"
grep -qE 'pool address=127\.0\.0\.2 destination=127\.0\.0\.1 retired=3600s reply="554 5\.7\.1 Service unavailable; Client host \[127\.0\.0\.2\] blocked using zen\.spamhaus\.org"' "$LAB/proxy.log" ||
	fail "no pool line in the daemon's log"
grep -qE 'pool address=127\.0\.0\.2 destination=127\.0\.0\.1 tenant=127\.0\.0\.1 action=reconnect' "$LAB/proxy.log" ||
	fail "no reconnect line in the daemon's log"
[ "$(grep -c 'pool address=.* retired=' "$LAB/proxy.log")" -eq 1 ] || fail "want one pool line, got: $(grep 'pool address=' "$LAB/proxy.log")"
stats=$("$proxy" -C "$LAB/control" stats)
grep -q " pool_retired=1 pool_all_retired=0 pool_deferred=0 pool_reconnected=1 " <<<"$stats" ||
	fail "stats after the retirement: $stats"
retired=$("$proxy" -C "$LAB/control" retired)
grep -qE '^127\.0\.0\.2 127\.0\.0\.1 retired=[0-9]+ left=(3600|359[0-9])$' <<<"$retired" ||
	fail "retired: $retired"
grep -qx "retired=1" <<<"$retired" || fail "retired count: $retired"
echo "ok: a blocklist greeting to 127.0.0.2: retired, the same session went out from 127.0.0.3 ($stats)"

# --- a blocklist verdict at the first RCPT: the same session moves to another address --------------
touch "$LAB/block3"
lab_smtp "$pp" >"$LAB/t2" <<'C' || true
EHLO tenant.test
MAIL FROM:<s@tenant.test>
RCPT TO:<a@dest.test>
DATA
Subject: pool\r\n\r\nagain\r\n.
QUIT
C
grep -qxF "S: 250 2.1.5 ok" "$LAB/t2" || fail "RCPT after the move: $(grep '^S:' "$LAB/t2" | tr '\n' '|')"
! grep -qE "^S: (4|5)" "$LAB/t2" || fail "the tenant saw the verdict: $(grep -E '^S: (4|5)' "$LAB/t2")"
grep -q "^S: 250 2.0.0 Ok: queued" "$LAB/t2" || fail "the moved transaction: $(grep '^S:' "$LAB/t2" | tr '\n' '|')"
grep -qx "delivered from 127.0.0.4" "$LAB/delivered" || fail "delivered: $(cat "$LAB/delivered")"
! grep -q "delivered from 127.0.0.3" <(sed 1d "$LAB/delivered") || fail "delivered from 127.0.0.3 again"
grep -qE ' \|> \(close: 127\.0\.0\.3 is blocklisted at 127\.0\.0\.1; the transaction goes out again from another address\)$' "$LAB/session.log" ||
	fail "no move in the session log"
grep -qE ' \|> MAIL FROM:<s@tenant\.test>$' "$LAB/session.log" || fail "the MAIL was not sent again"
grep -qE 'pool address=127\.0\.0\.3 destination=127\.0\.0\.1 retired=3600s reply="554 5\.7\.1 Service unavailable; Client host \[127\.0\.0\.3\] listed at bl\.test"' "$LAB/proxy.log" ||
	fail "no pool line for 127.0.0.3 in the daemon's log"
stats=$("$proxy" -C "$LAB/control" stats)
grep -q " pool_retired=2 pool_all_retired=0 pool_deferred=0 pool_reconnected=2 " <<<"$stats" ||
	fail "stats after the move: $stats"
session "$LAB/t2b"
grep -q "^S: 250 2.0.0 Ok: queued" "$LAB/t2b" || fail "the next session: $(grep '^S:' "$LAB/t2b" | tr '\n' '|')"
[ "$(grep -cx "delivered from 127.0.0.4" "$LAB/delivered")" -eq 2 ] || fail "delivered: $(cat "$LAB/delivered")"
echo "ok: a blocklist reply to the first RCPT moved the session to 127.0.0.4 unseen; the next session too"
rm -f "$LAB/block3"

lab_conf_set "$c" tenant_map "$LAB/tenants"
kill -HUP "$pid"
for _ in $(seq 100); do grep -q "reload status=ok" "$LAB/proxy.log" && break; sleep 0.1; done
grep -q "reload status=ok" "$LAB/proxy.log" || fail "no reload logged"
session "$LAB/t3"
grep -q "^S: 250 2.0.0 Ok: queued" "$LAB/t3" || fail "tenant session: $(grep '^S:' "$LAB/t3" | tr '\n' '|')"
[ "$(grep -cx "delivered from 127.0.0.4" "$LAB/delivered")" -eq 3 ] || fail "delivered: $(cat "$LAB/delivered")"
for _ in $(seq 50); do [ "$(grep -c ' == ' "$LAB/session.log")" -ge 4 ] && break; sleep 0.1; done
grep -qE ' == client=\[127\.0\.0\.1\]:[0-9]+ tenant=acme ' "$LAB/session.log" ||
	fail "no summary with tenant=acme: $(grep ' == ' "$LAB/session.log")"
echo "ok: tenant_map: tenant acme went out from its own address 127.0.0.4"

# --- a tarpit and a rate limit -------------------------------------------------------------------
lab_smtp "$pp" >"$LAB/t4" <<'C' || true
EHLO tenant.test
MAIL FROM:<s@tenant.test>
RCPT TO:<slow@dest.test>
RCPT TO:<busy@dest.test>
QUIT
C
grep -qxF "S: 250 2.1.5 slow ok" "$LAB/t4" || fail "slow RCPT: $(grep '^S:' "$LAB/t4" | tr '\n' '|')"
grep -qxF "S: 451 4.7.1 Rate limit exceeded, try again later" "$LAB/t4" ||
	fail "rate-limited RCPT: $(grep '^S:' "$LAB/t4" | tr '\n' '|')"
grep -qE 'watch destination=127\.0\.0\.1 kind=tarpit reply="[0-9]{4,}ms for 250 2\.1\.5 slow ok"' "$LAB/proxy.log" ||
	fail "no tarpit line in the daemon's log"
grep -qE 'watch destination=127\.0\.0\.1 kind=throttle reply="451 4\.7\.1 Rate limit exceeded, try again later"' "$LAB/proxy.log" ||
	fail "no throttle line in the daemon's log"
stats=$("$proxy" -C "$LAB/control" stats)
grep -qE " tarpit_marks=[1-9][0-9]* throttle_marks=1( |$)" <<<"$stats" || fail "stats after the marks: $stats"
marked=$("$proxy" -C "$LAB/control" marked)
grep -qE '^127\.0\.0\.1 tarpit=[1-9][0-9]* throttle=1 left=(3600|359[0-9]) last="451 4\.7\.1 Rate limit exceeded, try again later"$' <<<"$marked" ||
	fail "marked: $marked"
grep -qx "marked=1" <<<"$marked" || fail "marked count: $marked"
echo "ok: a slow reply marked the destination as tarpit, a rate limit as throttle ($stats)"

kill -TERM "$pid"
lab_wait_pid "$pid" 15 || fail "gw-proxy did not stop"
sed -i "/^proxy /d" "$LAB/bg"
echo PASS
