#!/usr/bin/env bash
# gw-proxy's limits end to end, against a fake destination on 127.0.0.1
# whose RCPT TO:<hold-N@...> waits until the test releases it:
#   - destination_concurrency = 2: two sessions held at the destination, the
#     third gets a 421 greeting at once saying why (the tenant's queue keeps
#     the mail), counted (dest_limited), logged (event "limit"), listed by
#     "destinations"; once they leave, sessions=0 again;
#   - a "451 4.7.1 Rate limit exceeded" marks the destination as throttle;
#     marked_concurrency = 1 then lets one session in and gives the next a
#     421 that names the mark;
#   - tenant_rate_limit = 100, the tenant_map gives tenant acme (clients
#     from 127.0.0.1) rate=3: acme's fourth MAIL within the minute gets
#     "451 4.7.1 rate limit", counted (rate_limited), logged (event "rate"),
#     listed by "tenants", while tenant blog (clients from 127.0.0.5) still
#     delivers.
#   - in MX mode (no upstream, an address-literal recipient domain; a new
#     process, so no mark) every RCPT of a transaction whose destination is
#     at its limit gets 451 4.4.5, and the session goes on.
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
	[ -f "$LAB/proxy.log" ] && tail -n 20 "$LAB/proxy.log" >&2
	[ -f "$LAB/session.log" ] && tail -n 30 "$LAB/session.log" >&2
	[ -f "$LAB/dest.log" ] && tail -n 20 "$LAB/dest.log" >&2
	exit 1
}

# --- the destination: hold-N waits for $LAB/release-N (60 s at most) -------------------------------
dp=$(lab_port)
cat >"$LAB/dest.py" <<'PY'
import os, re, socket, sys, threading, time
port, lab = int(sys.argv[1]), sys.argv[2]
def serve(c, peer):
    f = c.makefile("rb")
    def send(line):
        c.sendall(line.encode() + b"\r\n")
    send("220 dest.test ESMTP")
    while True:
        line = f.readline()
        if not line:
            break
        cmd = line.decode("latin-1").strip()
        up = cmd.upper()
        m = re.match(r"RCPT TO:<HOLD-(\d+)@", up)
        if up.startswith("QUIT"):
            send("221 bye")
            break
        elif up.startswith("EHLO"):
            send("250-dest.test")
            send("250 PIPELINING")
        elif m:
            flag = os.path.join(lab, "release-" + m.group(1))
            t0 = time.time()
            while not os.path.exists(flag) and time.time() - t0 < 60:
                time.sleep(0.05)
            send("250 2.1.5 held ok")
        elif up.startswith("RCPT TO:<BUSY@"):
            send("451 4.7.1 Rate limit exceeded, try again later")
        elif up.startswith("DATA"):
            send("354 go ahead")
            while f.readline() not in (b".\r\n", b""):
                pass
            with open(os.path.join(lab, "delivered"), "a") as r:
                r.write("delivered\n")
            send("250 2.0.0 Ok: queued")
        else:
            send("250 ok")
    c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a[0]), daemon=True).start()
PY
: >"$LAB/delivered"
lab_bg dest python3 "$LAB/dest.py" "$dp" "$LAB"
lab_wait_port "$dp" 10 || fail "the destination does not listen"

# A tenant MTA: raw SMTP from source address SRC to 127.0.0.1:PORT, commands on stdin as for lab_smtp.
cat >"$LAB/client.py" <<'PY'
import socket, sys
src, port = sys.argv[1], int(sys.argv[2])
s = socket.socket()
s.settimeout(90)
s.bind((src, 0))
s.connect(("127.0.0.1", port))
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if not line:
            print("S: (connection closed)", flush=True); return False
        print("S: " + line.decode("latin-1").rstrip("\r\n"), flush=True)
        if len(line) < 4 or line[3:4] != b"-":
            return True
if not reply():
    sys.exit(1)
for cmd in sys.stdin.read().splitlines():
    if not cmd:
        continue
    raw = cmd.encode("latin-1").decode("unicode_escape").encode("latin-1")
    print("C: " + repr(raw)[2:-1], flush=True)
    s.sendall(raw + b"\r\n")
    if not reply():
        break
s.close()
PY
client() {   # SRC PORT: the session on stdin, the transcript on stdout (60 s at most)
	timeout 60 python3 "$LAB/client.py" "$1" "$2" || true
}

# --- the proxy -----------------------------------------------------------------------------------
pp=$(lab_port)
c=$LAB/gw-proxy.conf
printf '127.0.0.1 acme 127.0.0.2 rate=3\n127.0.0.5 blog 127.0.0.2\n' >"$LAB/tenants"
cp "$LAB_SRC/etc/gw-proxy.conf" "$c"
lab_conf_set "$c" state_file "" # memory only: never the system's state file
lab_conf_set "$c" listen "[127.0.0.1]:$pp"
lab_conf_set "$c" upstream "[127.0.0.1]:$dp"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file "$LAB/gw-proxy.pid"
lab_conf_set "$c" session_log "$LAB/session.log"
lab_conf_set "$c" log stderr
lab_conf_set "$c" tls none
lab_conf_set "$c" reply_timeout 90s
lab_conf_set "$c" pool "127.0.0.2"
lab_conf_set "$c" tenant_map "$LAB/tenants"
lab_conf_set "$c" destination_concurrency 2
lab_conf_set "$c" marked_concurrency 1
lab_conf_set "$c" tenant_rate_limit 100
"$proxy" -n -c "$c" >/dev/null || fail "-n refused the test configuration"
lab_bg proxy "$proxy" -f -c "$c"
pid=$(awk '$1=="proxy"{print $2}' "$LAB/bg")
lab_wait_port "$pp" 10 || fail "gw-proxy does not listen"
ctl() { "$proxy" -C "$LAB/control" "$1"; }
wait_dest() {   # REGEX: until "destinations" has a line matching it (30 s)
	for _ in $(seq 300); do
		grep -qE "$1" <<<"$(ctl destinations)" && return 0
		sleep 0.1
	done
	fail "destinations never matched $1: $(ctl destinations | tr '\n' '|')"
}
hold() {   # N NAME: a blog session held at RCPT TO:<hold-N@dest.test>, in the background
	printf 'EHLO blog.test\nMAIL FROM:<s@blog.test>\nRCPT TO:<hold-%s@dest.test>\nQUIT\n' "$1" |
		client 127.0.0.5 "$pp" >"$LAB/$2" &
	echo $! >"$LAB/$2.pid"
}
held_end() {   # NAME: the held session ended with the destination's 250 (30 s)
	local p
	p=$(cat "$LAB/$1.pid")
	for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$p" 2>/dev/null || fail "held session $1 did not end"
	wait "$p" || true
	grep -qxF "S: 250 2.1.5 held ok" "$LAB/$1" || fail "held session $1: $(tr '\n' '|' <"$LAB/$1")"
}
limited() {   # OUT: a session that must be refused at once
	local t0=$SECONDS
	printf 'EHLO blog.test\nMAIL FROM:<s@blog.test>\nQUIT\n' | client 127.0.0.5 "$pp" >"$1"
	[ $((SECONDS - t0)) -le 10 ] || fail "the refused session took $((SECONDS - t0)) s"
}

# --- destination_concurrency ---------------------------------------------------------------------
hold 1 h1
hold 1 h2
wait_dest '^127\.0\.0\.1 sessions=2 limit=2 refused=0$'
limited "$LAB/t3"
grep -qxF "S: 421 4.3.2 localhost too many sessions to 127.0.0.1 (limit 2); try again later" "$LAB/t3" ||
	fail "third session: $(tr '\n' '|' <"$LAB/t3")"
grep -q "^C: MAIL" "$LAB/t3" && fail "the third session got past the greeting"
grep -qE 'limit destination=127\.0\.0\.1 tenant=blog sessions=2 limit=2 marked=no' "$LAB/proxy.log" ||
	fail "no limit line in the daemon's log"
grep -qE ' \|> ! concurrency: 2 sessions to 127\.0\.0\.1, limit 2: not connected' "$LAB/session.log" ||
	fail "no concurrency line in the session log"
stats=$(ctl stats)
grep -qE ' dest_limited=1( |$)' <<<"$stats" || fail "stats: $stats"
wait_dest '^127\.0\.0\.1 sessions=2 limit=2 refused=1$'
touch "$LAB/release-1"
held_end h1
held_end h2
wait_dest '^127\.0\.0\.1 sessions=0 limit=2 refused=1$'
echo "ok: destination_concurrency 2: the third session got 421 at once ($stats)"

# --- a throttled destination: marked_concurrency -------------------------------------------------
printf 'EHLO blog.test\nMAIL FROM:<s@blog.test>\nRCPT TO:<busy@dest.test>\nQUIT\n' | client 127.0.0.5 "$pp" >"$LAB/t4"
grep -qxF "S: 451 4.7.1 Rate limit exceeded, try again later" "$LAB/t4" || fail "busy: $(tr '\n' '|' <"$LAB/t4")"
grep -qE '^127\.0\.0\.1 tarpit=0 throttle=1 ' <<<"$(ctl marked)" || fail "not marked: $(ctl marked)"
wait_dest '^127\.0\.0\.1 sessions=0 '
hold 2 h5
wait_dest '^127\.0\.0\.1 sessions=1 limit=1 '
limited "$LAB/t6"
grep -qxF "S: 421 4.3.2 localhost too many sessions to 127.0.0.1 (limit 1, lowered: the destination is marked as tarpit or throttle); try again later" "$LAB/t6" ||
	fail "session beyond marked_concurrency: $(tr '\n' '|' <"$LAB/t6")"
grep -qE 'limit destination=127\.0\.0\.1 tenant=blog sessions=1 limit=1 marked=yes' "$LAB/proxy.log" ||
	fail "no marked limit line in the daemon's log"
stats=$(ctl stats)
grep -qE ' dest_limited=2( |$)' <<<"$stats" || fail "stats: $stats"
touch "$LAB/release-2"
held_end h5
wait_dest '^127\.0\.0\.1 sessions=0 limit=1 refused=2$'
echo "ok: marked as throttle, the destination took one session; the next got 421 naming the mark"

# --- tenant_rate_limit and rate=N ----------------------------------------------------------------
client 127.0.0.1 "$pp" >"$LAB/t7" <<'C'
EHLO acme.test
MAIL FROM:<a1@acme.test>
RSET
MAIL FROM:<a2@acme.test>
RSET
MAIL FROM:<a3@acme.test>
RSET
MAIL FROM:<a4@acme.test>
QUIT
C
[ "$(grep -c '^S: 250 2.1.0 ok' "$LAB/t7")" -eq 3 ] || fail "acme's first three MAILs: $(tr '\n' '|' <"$LAB/t7")"
grep -qxF "S: 451 4.7.1 rate limit: tenant acme may send 3 messages a minute; try again later" "$LAB/t7" ||
	fail "acme's fourth MAIL: $(tr '\n' '|' <"$LAB/t7")"
[ "$(grep -c '^S: 451 4.7.1 rate limit' "$LAB/t7")" -eq 1 ] || fail "acme: $(tr '\n' '|' <"$LAB/t7")"
grep -qE 'rate tenant=acme client=\[127\.0\.0\.1\]:[0-9]+ limit=3/min next_in=[0-9]+ms' "$LAB/proxy.log" ||
	fail "no rate line in the daemon's log"
grep -qE ' >\| MAIL FROM:<a4@acme\.test>$' "$LAB/session.log" || fail "the refused MAIL is not in the session log"
wait_dest '^127\.0\.0\.1 sessions=0 '
client 127.0.0.5 "$pp" >"$LAB/t8" <<'C'
EHLO blog.test
MAIL FROM:<b@blog.test>
RCPT TO:<x@dest.test>
DATA
Subject: flows\r\n\r\nhello\r\n.
QUIT
C
grep -qxF "S: 250 2.0.0 Ok: queued" "$LAB/t8" || fail "blog beside a limited acme: $(tr '\n' '|' <"$LAB/t8")"
[ "$(grep -c delivered "$LAB/delivered")" -eq 1 ] || fail "delivered: $(cat "$LAB/delivered")"
tenants=$(ctl tenants)
grep -qx "acme messages=3 limited=1 rate=3/min tokens=0" <<<"$tenants" || fail "tenants: $tenants"
grep -qE "^blog messages=[0-9]+ limited=0 rate=100/min tokens=[0-9]+$" <<<"$tenants" || fail "tenants: $tenants"
stats=$(ctl stats)
grep -qE ' rate_limited=1( |$)' <<<"$stats" || fail "stats: $stats"
echo "ok: acme's fourth MAIL in a minute got 451 4.7.1 while blog delivered ($stats)"

kill -TERM "$pid"
lab_wait_pid "$pid" 15 || fail "gw-proxy did not stop"
sed -i "/^proxy /d" "$LAB/bg"

# --- MX mode: 451 4.4.5 at RCPT ------------------------------------------------------------------
lab_conf_set "$c" upstream ""
lab_conf_set "$c" smtp_port "$dp"
lab_conf_set "$c" destination_concurrency 1
rm -f "$LAB/control"
lab_bg proxy "$proxy" -f -c "$c"
pid=$(awk '$1=="proxy"{print $2}' "$LAB/bg")
lab_wait_port "$pp" 10 || fail "gw-proxy (MX mode) does not listen"
for _ in $(seq 100); do [ -S "$LAB/control" ] && break; sleep 0.1; done
printf 'EHLO blog.test\nMAIL FROM:<s@blog.test>\nRCPT TO:<hold-3@[127.0.0.1]>\nQUIT\n' |
	client 127.0.0.5 "$pp" >"$LAB/h9" &
echo $! >"$LAB/h9.pid"
wait_dest '^127\.0\.0\.1 sessions=1 limit=1 '
client 127.0.0.5 "$pp" >"$LAB/t10" <<'C'
EHLO blog.test
MAIL FROM:<s@blog.test>
RCPT TO:<y@[127.0.0.1]>
RCPT TO:<z@[127.0.0.1]>
QUIT
C
[ "$(grep -cxF "S: 451 4.4.5 too many sessions to 127.0.0.1 (limit 1); try again later" "$LAB/t10")" -eq 2 ] ||
	fail "MX mode RCPTs at the limit: $(tr '\n' '|' <"$LAB/t10")"
grep -qE "^S: 221 " "$LAB/t10" || fail "MX mode session did not end with QUIT: $(tr '\n' '|' <"$LAB/t10")"
touch "$LAB/release-3"
held_end h9
echo "ok: MX mode: RCPTs for a destination at its limit got 451 4.4.5"

kill -TERM "$pid"
lab_wait_pid "$pid" 15 || fail "gw-proxy did not stop"
sed -i "/^proxy /d" "$LAB/bg"
echo PASS
