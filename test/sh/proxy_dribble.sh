#!/usr/bin/env bash
# gw-proxy marks a destination that dribbles its replies, and only that one
# (MX mode, address-literal recipients, one fake destination program on
# 127.0.0.1 and 127.0.0.2, tarpit_delay = 10s, dribble_reads = 5,
# dribble_time = 200ms):
#   - 127.0.0.1 is a normal destination with the awkward parts of one: a
#     ten-line EHLO reply written a line at a time 25 ms apart (ten reads
#     over 225 ms, but some 15 bytes each) and a MAIL reply split in two
#     segments 100 ms apart. Its message is delivered and nothing is marked;
#   - 127.0.0.2 sends every reply one byte every 20 ms (each reply well
#     within tarpit_delay). Its message is still delivered, the destination
#     is marked as a tarpit with a "dribble" reason (daemon log, session log,
#     "marked"), counted as dribble_marks and tarpit_marks in stats: once,
#     though every one of its seven replies is dribbled (a mark already made
#     is extended silently within mark_time);
#   - the normal destination, used again, stays unmarked.
# Needs python3. Waits are bounded; stops everything by PID.
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

# --- the destinations: 127.0.0.2 dribbles, 127.0.0.1 writes normally -------------------------------
dp=$(lab_port)
cat >"$LAB/dest.py" <<'PY'
import socket, sys, threading, time
port, record = int(sys.argv[1]), sys.argv[2]
EHLO = ["250-mx.normal.test greets you", "250-PIPELINING", "250-SIZE 10240000", "250-VRFY", "250-ETRN",
        "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-DSN", "250-SMTPUTF8", "250 CHUNKING"]
def serve(c, me):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # every write its own segment
    f = c.makefile("rb")
    drip = me == "127.0.0.2"
    def send(line):
        data = line.encode() + b"\r\n"
        if not drip:
            c.sendall(data)
            return
        for i in range(len(data)):
            c.sendall(data[i:i + 1])
            time.sleep(0.02)
    send("220 %s ESMTP" % ("drip.test" if drip else "mx.normal.test"))
    while True:
        line = f.readline()
        if not line:
            break
        cmd = line.decode("latin-1").strip().upper()
        if cmd.startswith("QUIT"):
            send("221 bye")
            break
        elif cmd.startswith("EHLO") and drip:
            send("250-drip.test")
            send("250 PIPELINING")
        elif cmd.startswith("EHLO"):
            for l in EHLO:  # a line at a time, as some servers write it
                send(l)
                time.sleep(0.025)
        elif cmd.startswith("MAIL") and not drip:  # one reply in two segments
            c.sendall(b"250 2.1.0 ")
            time.sleep(0.1)
            c.sendall(b"Ok\r\n")
        elif cmd.startswith("DATA"):
            send("354 go ahead")
            while f.readline() not in (b".\r\n", b""):
                pass
            with open(record, "a") as r:
                r.write("delivered to %s\n" % me)
            send("250 2.0.0 Ok: queued")
        else:
            send("250 ok")
    c.close()
def listen(addr):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(16)
    return s
def accept(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c, c.getsockname()[0]), daemon=True).start()
drip = listen("127.0.0.2")  # before 127.0.0.1: once the test sees that one listen, both do
threading.Thread(target=accept, args=(drip,), daemon=True).start()
accept(listen("127.0.0.1"))
PY
: >"$LAB/delivered"
lab_bg dest python3 "$LAB/dest.py" "$dp" "$LAB/delivered"
lab_wait_port "$dp" 10 || fail "the destinations do not listen"

# --- the proxy -----------------------------------------------------------------------------------
pp=$(lab_port)
c=$LAB/gw-proxy.conf
cp "$LAB_SRC/etc/gw-proxy.conf" "$c"
lab_conf_set "$c" state_file "" # memory only: never the system's state file
lab_conf_set "$c" listen "[127.0.0.1]:$pp"
lab_conf_set "$c" smtp_port "$dp"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file "$LAB/gw-proxy.pid"
lab_conf_set "$c" session_log "$LAB/session.log"
lab_conf_set "$c" log stderr
lab_conf_set "$c" tls none
lab_conf_set "$c" reply_timeout 30s
lab_conf_set "$c" tarpit_delay 10s
lab_conf_set "$c" dribble_reads 5
lab_conf_set "$c" dribble_time 200ms
"$proxy" -n -c "$c" >/dev/null || fail "-n refused the test configuration"
lab_bg proxy "$proxy" -f -c "$c"
pid=$(awk '$1=="proxy"{print $2}' "$LAB/bg")
lab_wait_port "$pp" 10 || fail "gw-proxy does not listen"
for _ in $(seq 100); do [ -S "$LAB/control" ] && break; sleep 0.1; done
ctl() { "$proxy" -C "$LAB/control" "$1"; }
session() {   # DEST-ADDRESS OUT: one message to r@[DEST-ADDRESS]
	lab_smtp "$pp" >"$2" <<C || true
EHLO tenant.test
MAIL FROM:<s@tenant.test>
RCPT TO:<r@[$1]>
DATA
Subject: dribble\r\n\r\nhello\r\n.
QUIT
C
	grep -qxF "S: 250 2.0.0 Ok: queued" "$2" || fail "message to $1: $(tr '\n' '|' <"$2")"
}
sval() { sed -n "s/.* $1=\\([0-9]*\\).*/\\1/p" <<<"$(ctl stats)"; }

# --- the normal destination: a line-by-line EHLO and a split reply mark nothing ---------------------
session 127.0.0.1 "$LAB/t1"
grep -qE "\|< 250 ready at \[127\.0\.0\.1\]:$dp caps=PIPELINING,SIZE,8BITMIME,SMTPUTF8,ENHANCEDSTATUSCODES,CHUNKING,DSN " \
	"$LAB/session.log" || fail "the ten-line EHLO reply was not read whole"
grep -qE '<- 250 2\.1\.0 Ok' "$LAB/session.log" || fail "the split MAIL reply did not reach the tenant"
ctl marked | grep -qx "marked=0" || fail "normal destination marked: $(ctl marked | tr '\n' '|')"
[ "$(sval tarpit_marks)/$(sval dribble_marks)" = 0/0 ] || fail "stats: $(ctl stats)"
! grep -q "watch " "$LAB/proxy.log" || fail "a watch line for the normal destination"
echo "ok: a ten-line EHLO reply a line at a time and a reply in two segments marked nothing"

# --- the dribbling destination ----------------------------------------------------------------------
t0=$SECONDS
session 127.0.0.2 "$LAB/t2"
marked=$(ctl marked)
grep -qE '^127\.0\.0\.2 tarpit=1 throttle=0 left=[0-9]+ last="dribble: [0-9]{3} reply to [a-z]+ in [0-9]+ reads of [0-9]+ bytes over [0-9]+ms"$' <<<"$marked" ||
	fail "dribbling destination not marked: $(tr '\n' '|' <<<"$marked")"
grep -qx "marked=1" <<<"$marked" || fail "marked: $(tr '\n' '|' <<<"$marked")"
grep -qE 'watch destination=127\.0\.0\.2 kind=tarpit dribble reads=[0-9]+ bytes=[0-9]+ spread=[0-9]+ms reply=220' \
	"$LAB/proxy.log" || fail "no watch line for the dribbled greeting"
grep -qE '\|< ! tarpit: 127\.0\.0\.2 marked: dribble: 220 reply to greeting in ' "$LAB/session.log" ||
	fail "no session log line for the mark"
d=$(sval dribble_marks)
[ "${d:-0}/$(sval tarpit_marks)" = 1/1 ] || fail "stats (one mark for seven dribbled replies): $(ctl stats)"
[ "$(grep -c 'watch destination=127\.0\.0\.2 ' "$LAB/proxy.log")" = 1 ] ||
	fail "watch lines for one mark: $(grep -c 'watch destination=' "$LAB/proxy.log")"
[ "$(grep -c '|< ! tarpit: 127\.0\.0\.2 marked: ' "$LAB/session.log")" = 1 ] || fail "session log: more than one mark"
# every mark came from dribbling: no reply was anywhere near tarpit_delay
! grep -qE 'watch destination=.* reply="[0-9]+ms for' "$LAB/proxy.log" || fail "a slow-reply mark"
[ "$(grep -c 'delivered to 127.0.0.2' "$LAB/delivered")" = 1 ] || fail "delivered: $(cat "$LAB/delivered")"
echo "ok: the dribbling destination (session of $((SECONDS - t0)) s) marked as tarpit once, dribble_marks=$d, mail delivered"

# --- the normal destination again: still unmarked -------------------------------------------------
session 127.0.0.1 "$LAB/t3"
! ctl marked | grep -q '^127\.0\.0\.1 ' || fail "normal destination marked: $(ctl marked | tr '\n' '|')"
[ "$(sval dribble_marks)" = "$d" ] || fail "stats: $(ctl stats)"
[ "$(grep -c 'delivered to 127.0.0.1' "$LAB/delivered")" = 2 ] || fail "delivered: $(cat "$LAB/delivered")"
echo "ok: the normal destination, used again, stays unmarked"

kill -TERM "$pid"
lab_wait_pid "$pid" 15 || fail "gw-proxy did not stop"
sed -i "/^proxy /d" "$LAB/bg"
echo PASS
