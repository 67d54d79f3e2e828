#!/usr/bin/env bash
# gw-proxy's state_file across a restart:
#   - pool = 127.0.0.2, 127.0.0.3; the destination (python on 127.0.0.1)
#     greets 127.0.0.2 with "554 5.7.1 ... blocked using zen.spamhaus.org"
#     and logs the source address of every connection; tarpit_delay = 1s and
#     a RCPT answered after 1.5 s marks it as a tarpit;
#   - run 1: the first session meets the verdict from 127.0.0.2 and goes out
#     from 127.0.0.3 (127.0.0.2 retired), a slow RCPT marks the destination;
#     the state file is written while the proxy runs (state_save_interval
#     1s), mode 0600; SIGTERM by PID, a clean stop;
#   - run 2: the log says what was loaded, "retired" and "marked" list the
#     same entries, and the next session goes out from 127.0.0.3 without
#     connecting from 127.0.0.2 first (without the file it starts with the
#     first pool address); the mark still lowers the destination's sessions
#     to marked_concurrency = 1: a second session at once gets a 421 that
#     names the mark;
#   - run 3, on a truncated file: one log line naming the line, the file set
#     aside as state.bad, an empty state, and the proxy serves.
# Needs python3. Stops everything by PID.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
proxy=$bindir/proxy/gw-proxy
[ -x "$proxy" ] || { echo "FAIL: $proxy not built" >&2; exit 1; }
lab_init
trap 'exec 3>&- 2>/dev/null || true; lab_stop_all' EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$LAB/proxy.log" ] && tail -n 20 "$LAB/proxy.log" >&2
	[ -f "$LAB/session.log" ] && tail -n 20 "$LAB/session.log" >&2
	[ -f "$LAB/connections" ] && tail -n 20 "$LAB/connections" >&2
	[ -f "$LAB/state" ] && cat "$LAB/state" >&2
	exit 1
}

# --- the destination -----------------------------------------------------------------------------
dp=$(lab_port)
cat >"$LAB/dest.py" <<'PY'
import socket, sys, threading, time
port, record, conns = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
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
        elif cmd.startswith("EHLO"):
            send("250-dest.test")
            send("250 PIPELINING")
        elif cmd.startswith("RCPT TO:<SLOW@"):
            time.sleep(1.5)
            send("250 2.1.5 slow ok")
        elif cmd.startswith("DATA"):
            send("354 go ahead")
            while f.readline() not in (b".\r\n", b""):
                pass
            with lock, open(record, "a") as r:
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
    with lock, open(conns, "a") as r:
        r.write("connection from %s\n" % a[0])
    threading.Thread(target=serve, args=(c, a[0]), daemon=True).start()
PY
: >"$LAB/delivered"
: >"$LAB/connections"
lab_bg dest python3 "$LAB/dest.py" "$dp" "$LAB/delivered" "$LAB/connections"
lab_wait_port "$dp" 10 || fail "the destination does not listen"

# --- the proxy -----------------------------------------------------------------------------------
pp=$(lab_port)
c=$LAB/gw-proxy.conf
cp "$LAB_SRC/etc/gw-proxy.conf" "$c"
lab_conf_set "$c" listen "[127.0.0.1]:$pp"
lab_conf_set "$c" upstream "[127.0.0.1]:$dp"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file "$LAB/gw-proxy.pid"
lab_conf_set "$c" session_log "$LAB/session.log"
lab_conf_set "$c" log stderr
lab_conf_set "$c" tls none
lab_conf_set "$c" reply_timeout 10s
lab_conf_set "$c" pool "127.0.0.2, 127.0.0.3"
lab_conf_set "$c" pool_retire_time 1h
lab_conf_set "$c" tarpit_delay 1s
lab_conf_set "$c" mark_time 1h
lab_conf_set "$c" marked_concurrency 1
lab_conf_set "$c" state_file "$LAB/state"
lab_conf_set "$c" state_save_interval 1s
"$proxy" -n -c "$c" >/dev/null || fail "-n refused the test configuration"

pid=
start() {   # RUN: gw-proxy in the foreground, its log in $LAB/proxy.RUN.log (proxy.log: the current one)
	lab_bg proxy "$proxy" -f -c "$c"
	pid=$(awk '$1=="proxy"{p=$2} END{print p}' "$LAB/bg")
	lab_wait_port "$pp" 10 || fail "gw-proxy ($1) does not listen"
	for _ in $(seq 100); do [ -S "$LAB/control" ] && break; sleep 0.1; done
}
stop() {   # RUN: SIGTERM by PID, a clean exit
	local rc=0
	kill -TERM "$pid"
	lab_wait_pid "$pid" 30 || fail "gw-proxy ($1) did not stop"
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ] || fail "gw-proxy ($1) exited $rc"
	sed -i "/^proxy /d" "$LAB/bg"
	cp "$LAB/proxy.log" "$LAB/proxy.$1.log"
	lab_wait_closed "$pp" 10 || fail "port $pp still open after ($1)"
}
session() {   # OUT
	lab_smtp "$pp" >"$1" <<'C' || true
EHLO tenant.test
MAIL FROM:<s@tenant.test>
RCPT TO:<a@dest.test>
DATA
Subject: state\r\n\r\nhello\r\n.
QUIT
C
}

# --- run 1: learn ---------------------------------------------------------------------------------
start 1
grep -qE "state file=$LAB/state status=none" "$LAB/proxy.log" || fail "run 1: no 'status=none' for a missing file"
session "$LAB/t1"
grep -q "^S: 250 2.0.0 Ok: queued" "$LAB/t1" || fail "run 1: $(grep '^S:' "$LAB/t1" | tr '\n' '|')"
grep -qx "connection from 127.0.0.2" "$LAB/connections" || fail "run 1 did not try 127.0.0.2 first"
grep -qx "delivered from 127.0.0.3" "$LAB/delivered" || fail "run 1 delivered: $(cat "$LAB/delivered")"
lab_smtp "$pp" >"$LAB/t2" <<'C' || true
EHLO tenant.test
MAIL FROM:<s@tenant.test>
RCPT TO:<slow@dest.test>
QUIT
C
grep -qxF "S: 250 2.1.5 slow ok" "$LAB/t2" || fail "slow RCPT: $(grep '^S:' "$LAB/t2" | tr '\n' '|')"
grep -qE '^127\.0\.0\.1 tarpit=1 throttle=0 left=[0-9]+ ' <<<"$("$proxy" -C "$LAB/control" marked)" ||
	fail "run 1 marked: $("$proxy" -C "$LAB/control" marked)"
# saved while running, within state_save_interval (bounded wait)
for _ in $(seq 150); do
	grep -qE '^mark 127\.0\.0\.1 [0-9]+ [0-9]+ 1 0 ' "$LAB/state" 2>/dev/null && break
	sleep 0.1
done
grep -qE '^retired 127\.0\.0\.2 127\.0\.0\.1 [0-9]+ [0-9]+$' "$LAB/state" || fail "no retired line saved while running"
grep -qE '^mark 127\.0\.0\.1 [0-9]+ [0-9]+ 1 0 [0-9]+ms for 250 2\.1\.5 slow ok$' "$LAB/state" ||
	fail "no mark line saved while running"
[ "$(stat -c %a "$LAB/state")" = 600 ] || fail "state file mode $(stat -c %a "$LAB/state"), want 600"
[ ! -e "$LAB/state.tmp" ] || fail "state.tmp left behind"
# the retirement ends an hour from now on the wall clock
end_ms=$(awk '$1=="retired"{print $5}' "$LAB/state")
now=$(($(date +%s) * 1000))
((end_ms - now > 3500000 && end_ms - now <= 3600000)) ||
	fail "retired until $end_ms, now $now: want about an hour ahead"
stop 1
head -n1 "$LAB/state" | grep -qx "gw-proxy-state 1" || fail "first line: $(head -n1 "$LAB/state")"
tail -n1 "$LAB/state" | grep -qx "end 2" || fail "last line: $(tail -n1 "$LAB/state")"
echo "ok: run 1 retired 127.0.0.2, marked the destination, saved both ($(wc -l <"$LAB/state") lines)"

# --- run 2: remember --------------------------------------------------------------------------------
: >"$LAB/connections"
: >"$LAB/session.log"
start 2
grep -qE "state file=$LAB/state status=loaded retired=1 marked=1 expired=0 capped=0$" "$LAB/proxy.log" ||
	fail "run 2: no load line"
retired=$("$proxy" -C "$LAB/control" retired)
grep -qE '^127\.0\.0\.2 127\.0\.0\.1 retired=[0-9]+ left=(3600|35[0-9][0-9])$' <<<"$retired" ||
	fail "run 2 retired: $retired"
marked=$("$proxy" -C "$LAB/control" marked)
grep -qE '^127\.0\.0\.1 tarpit=1 throttle=0 left=(3600|35[0-9][0-9]) last="[0-9]+ms for 250 2\.1\.5 slow ok"$' <<<"$marked" ||
	fail "run 2 marked: $marked"
session "$LAB/t3"
grep -q "^S: 250 2.0.0 Ok: queued" "$LAB/t3" || fail "run 2: $(grep '^S:' "$LAB/t3" | tr '\n' '|')"
[ "$(cat "$LAB/connections")" = "connection from 127.0.0.3" ] ||
	fail "run 2 connections: $(tr '\n' '|' <"$LAB/connections"), want only one from 127.0.0.3"
[ "$(tail -n1 "$LAB/delivered")" = "delivered from 127.0.0.3" ] || fail "run 2 delivered: $(cat "$LAB/delivered")"
! grep -q "pool: 127.0.0.2 blocklisted" "$LAB/session.log" || fail "run 2 met the blocklist again"
echo "ok: after the restart the session went straight out from 127.0.0.3"

# the mark still holds the destination to marked_concurrency = 1
exec 3<>"/dev/tcp/127.0.0.1/$pp"
IFS= read -r -t 15 greeting <&3 || fail "held session: no greeting"
[[ $greeting == 220* ]] || fail "held session greeting: $greeting"
lab_smtp "$pp" >"$LAB/t4" <<'C' || true
QUIT
C
grep -qE '^S: 421 .*too many sessions to 127\.0\.0\.1 \(limit 1, lowered: the destination is marked as tarpit or throttle\)' "$LAB/t4" ||
	fail "second session at the marked destination: $(grep '^S:' "$LAB/t4" | tr '\n' '|')"
exec 3>&-
echo "ok: the loaded tarpit mark lowered the destination's sessions to 1"
stop 2
grep -qE '^retired 127\.0\.0\.2 127\.0\.0\.1 ' "$LAB/state" || fail "run 2 lost the retirement at its stop"

# --- run 3: a truncated file ----------------------------------------------------------------------
sed -i '$d' "$LAB/state" # no end line
start 3
grep -qE "state file=$LAB/state status=error error=\"line [0-9]+: no end line \(truncated\?\)\" moved_to=$LAB/state.bad \(starting with an empty state\)" "$LAB/proxy.log" ||
	fail "run 3: no error line for the truncated file: $(grep ' state ' "$LAB/proxy.log")"
[ -f "$LAB/state.bad" ] || fail "run 3: state.bad missing"
grep -qx "retired=0" <<<"$("$proxy" -C "$LAB/control" retired)" || fail "run 3 retired something"
grep -qx "marked=0" <<<"$("$proxy" -C "$LAB/control" marked)" || fail "run 3 marked something"
session "$LAB/t5"
grep -q "^S: 250 2.0.0 Ok: queued" "$LAB/t5" || fail "run 3: $(grep '^S:' "$LAB/t5" | tr '\n' '|')"
stop 3
head -n1 "$LAB/state" | grep -qx "gw-proxy-state 1" || fail "run 3 did not write a good file"
echo "ok: a truncated state file: logged, set aside as state.bad, an empty state"
echo PASS
