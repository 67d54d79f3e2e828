#!/usr/bin/env bash
# gw-proxy ends a session promptly when the tenant hangs up while a slow
# destination's reply is awaited, and only then (upstream mode, one fake
# destination offering PIPELINING, reply_timeout = 60s):
#   - the destination dribbles its reply to RCPT TO:<slow30@...> one byte
#     every 250 ms (some 30 s); the tenant gives up after 1 s and closes: the
#     session ends within a few seconds (summary line outcome=client-gone),
#     the destination connection is closed without QUIT, the daemon logs it
#     and stats count it as client_gone;
#   - the same when the tenant's command went alone (MX mode, no
#     pipelining towards the destination: the relay's own wait);
#   - a tenant that pipelines MAIL, two RCPTs and DATA in one write while the
#     first RCPT's reply dribbles for 2 s is not gone: every command it sent
#     meanwhile is answered in order and the message is delivered.
# Needs python3. Waits are bounded polls; stops everything by PID.
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
	local f
	for f in proxy.log proxy2.log session.log session2.log dest.log events; do
		[ -f "$LAB/$f" ] && { echo "--- $f" >&2; tail -n 25 "$LAB/$f" >&2; }
	done
	exit 1
}

# --- the destination: RCPT slow30 dribbles ~30 s, slow2 ~2 s; it records how each connection ended --
dp=$(lab_port)
cat >"$LAB/dest.py" <<'PY'
import socket, sys, threading, time
port, events = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
def note(text):
    with lock, open(events, "a") as f:
        f.write(text + "\n")
def serve(c):
    f = c.makefile("rb")
    def drip(data):
        for i in range(len(data)):
            c.sendall(data[i:i + 1])
            time.sleep(0.25)
    c.sendall(b"220 dest.test ESMTP\r\n")
    rcpts, ended = 0, "closed without QUIT"
    try:
        while True:
            line = f.readline()
            if not line:
                break
            cmd = line.decode("latin-1").strip()
            up = cmd.upper()
            if up.startswith("QUIT"):
                c.sendall(b"221 bye\r\n")
                ended = "QUIT"
                break
            elif up.startswith("EHLO"):
                c.sendall(b"250-dest.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n")
            elif up.startswith("RCPT") and "slow30@" in cmd:
                note("slow30 reply started")
                drip(b"250 2.1.5 ok, after a long while of waiting" + b"." * 70 + b"\r\n")
                rcpts += 1
            elif up.startswith("RCPT") and "slow2@" in cmd:
                drip(b"250 ok\r\n")
                rcpts += 1
            elif up.startswith("RCPT"):
                c.sendall(b"250 2.1.5 ok\r\n")
                rcpts += 1
            elif up.startswith("DATA"):
                c.sendall(b"354 go ahead\r\n")
                while f.readline() not in (b".\r\n", b""):
                    pass
                note("delivered to %d recipients" % rcpts)
                c.sendall(b"250 2.0.0 Ok: queued\r\n")
            else:
                c.sendall(b"250 2.0.0 ok\r\n")
    except OSError:
        pass
    note("connection " + ended)
    c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(16)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
: >"$LAB/events"
lab_bg dest python3 "$LAB/dest.py" "$dp" "$LAB/events"
lab_wait_port "$dp" 10 || fail "the destination does not listen"

# --- the tenant: pipelined commands, then either wait for the replies or give up -------------------
cat >"$LAB/tenant.py" <<'PY'
import socket, sys, time
port, mode, rcpt = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=20)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if not line:
            print("S: (connection closed)"); sys.exit(1)
        print("S: " + line.decode("latin-1").rstrip("\r\n")); sys.stdout.flush()
        if line[3:4] != b"-":
            return line[:3].decode()
reply()
s.sendall(b"EHLO tenant.test\r\n")
reply()
if mode == "giveup":  # MAIL, the slow RCPT, then 1 s of patience
    s.sendall(b"MAIL FROM:<s@tenant.test>\r\n")
    reply()
    s.sendall(b"RCPT TO:<%s>\r\n" % rcpt.encode())
    s.settimeout(1)
    try:
        reply()
        print("T: the reply came")
        sys.exit(1)
    except socket.timeout:
        print("T: gave up")
    s.close()
    sys.exit(0)
# pipelined: everything up to DATA in one write, then the replies in order
s.sendall(b"MAIL FROM:<s@tenant.test>\r\nRCPT TO:<%s>\r\nRCPT TO:<r2@dest.test>\r\nDATA\r\n" % rcpt.encode())
got = [reply() for _ in range(4)]
if got != ["250", "250", "250", "354"]:
    print("T: replies " + " ".join(got)); sys.exit(1)
s.sendall(b"Subject: pipelined\r\n\r\nhello\r\n.\r\n")
if reply() != "250":
    sys.exit(1)
s.sendall(b"QUIT\r\n")
reply()
print("T: delivered")
PY

# --- the proxy -----------------------------------------------------------------------------------
start_proxy() {   # NAME PORT [UPSTREAM]: $LAB/NAME.conf, session log $LAB/NAME.session
	local c=$LAB/$1.conf
	cp "$LAB_SRC/etc/gw-proxy.conf" "$c"
	lab_conf_set "$c" listen "[127.0.0.1]:$2"
	lab_conf_set "$c" upstream "${3:-}"
	lab_conf_set "$c" smtp_port "$dp"
	lab_conf_set "$c" control_socket "$LAB/$1.control"
	lab_conf_set "$c" pid_file ""
	lab_conf_set "$c" session_log "$LAB/$1.session"
	lab_conf_set "$c" log stderr
	lab_conf_set "$c" tls none
	lab_conf_set "$c" reply_timeout 60s
	lab_conf_set "$c" tarpit_delay 100s
	"$proxy" -n -c "$c" >/dev/null || fail "-n refused the test configuration"
	lab_bg "$1" "$proxy" -f -c "$c"
	lab_wait_port "$2" 10 || fail "gw-proxy ($1) does not listen"
	for _ in $(seq 100); do [ -S "$LAB/$1.control" ] && break; sleep 0.1; done
}
sval() { sed -n "s/.* $2=\\([0-9]*\\).*/\\1/p" <<<"$("$proxy" -C "$LAB/$1.control" stats)"; }
wait_summary() {   # SESSION-LOG N SECONDS: until the log has N summary lines
	for _ in $(seq $(($3 * 10))); do
		[ "$(grep -c ' == ' "$1" 2>/dev/null)" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

pp=$(lab_port)
start_proxy proxy "$pp" "[127.0.0.1]:$dp"

# --- a tenant gives up while the destination dribbles ----------------------------------------------
giveup() {   # NAME PORT RCPT SESSION-LOG N: the tenant gives up; the Nth summary line within 10 s
	local t0
	python3 "$LAB/tenant.py" "$2" giveup "$3" >"$LAB/$1.out" || fail "$1: $(tr '\n' '|' <"$LAB/$1.out")"
	t0=$SECONDS
	wait_summary "$4" "$5" 10 || fail "$1: the session did not end within 10 s of the tenant's hang-up"
	echo "$((SECONDS - t0))"
}
secs=$(giveup t1 "$pp" slow30@dest.test "$LAB/proxy.session" 1)
sum=$(grep ' == ' "$LAB/proxy.session")
grep -q ' outcome=client-gone ' <<<"$sum" || fail "summary: $sum"
grep -qE '\|< ! client gone while waiting for the reply to RCPT \([0-9]+ms into the session\): closed, no QUIT' \
	"$LAB/proxy.session" || fail "no session log line for the hang-up"
grep -qE 'session client=\[127\.0\.0\.1\]:[0-9]+ destination=127\.0\.0\.1 waiting=RCPT action=client-gone' \
	"$LAB/proxy.log" || fail "no daemon log line for the hang-up"
for _ in $(seq 100); do grep -q "^connection " "$LAB/events" && break; sleep 0.1; done
grep -qx "connection closed without QUIT" "$LAB/events" || fail "the destination connection: $(cat "$LAB/events")"
[ "$(sval proxy client_gone)" = 1 ] || fail "stats: $("$proxy" -C "$LAB/proxy.control" stats)"
[ "$(sval proxy upstream_failures)" = 0 ] || fail "counted as a destination failure"
echo "ok: RCPT (sent ahead to a PIPELINING destination) dribbled for 30 s, tenant gone after 1 s: session ended $secs s later, no QUIT"

# --- the same without pipelining towards the destination (MX mode: the held MAIL goes with the RCPT) --
pp2=$(lab_port)
start_proxy proxy2 "$pp2"
: >"$LAB/events"
secs=$(giveup t2 "$pp2" 'slow30@[127.0.0.1]' "$LAB/proxy2.session" 1)
grep -q ' outcome=client-gone ' <<<"$(grep ' == ' "$LAB/proxy2.session")" || fail "MX mode summary"
for _ in $(seq 100); do grep -q "^connection " "$LAB/events" && break; sleep 0.1; done
grep -qx "connection closed without QUIT" "$LAB/events" || fail "MX mode destination: $(cat "$LAB/events")"
[ "$(sval proxy2 client_gone)" = 1 ] || fail "stats: $("$proxy" -C "$LAB/proxy2.control" stats)"
echo "ok: MX mode, RCPT alone: session ended $secs s after the tenant's hang-up, no QUIT"

# --- a tenant that pipelines and waits is not gone --------------------------------------------------
: >"$LAB/events"
python3 "$LAB/tenant.py" "$pp" pipelined slow2@dest.test >"$LAB/t3.out" ||
	fail "pipelined tenant: $(tr '\n' '|' <"$LAB/t3.out")"
grep -qx "T: delivered" "$LAB/t3.out" || fail "pipelined tenant: $(tr '\n' '|' <"$LAB/t3.out")"
wait_summary "$LAB/proxy.session" 2 10 || fail "no second summary"
grep -q ' outcome=quit ' <<<"$(grep ' == ' "$LAB/proxy.session" | tail -n 1)" || fail "second session's outcome"
grep -qx "delivered to 2 recipients" "$LAB/events" || fail "delivered: $(cat "$LAB/events")"
[ "$(sval proxy client_gone)" = 1 ] || fail "a waiting tenant counted as gone"
echo "ok: a tenant that pipelined behind a 2 s dribbled reply got every answer, message delivered"

for p in proxy proxy2; do
	q=$(awk -v n="$p" '$1==n{print $2}' "$LAB/bg")
	kill -TERM "$q"
	lab_wait_pid "$q" 15 || fail "gw-proxy ($p) did not stop"
	sed -i "/^$p /d" "$LAB/bg"
done
echo PASS
