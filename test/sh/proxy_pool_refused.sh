#!/usr/bin/env bash
# gw-proxy's pool against a destination that refuses TCP connections from
# one source address and takes them from the others. "Refused" is the
# connection itself refused (a RST or ICMP unreachable answering the SYN:
# the client engine's GW_E_REFUSED), as a firewall rule or an MTA's
# connection-level block does; a connection accepted and then closed is
# "lost", not a refusal. In a network namespace of its own (lo only):
#   - pool = 127.0.0.2, 127.0.0.3;
#   - upstream first a port nothing listens on (down for everyone): the
#     session tries 127.0.0.2, then 127.0.0.3, both refused, and gets a 421
#     greeting; nothing is retired (a destination down for everyone must not
#     empty the pool);
#   - after a SIGHUP, upstream the destination (python on 127.0.0.1) with
#     nftables "ip saddr 127.0.0.2 tcp dport DEST reject with tcp reset":
#     the session is refused from 127.0.0.2, tries 127.0.0.3, gets in and
#     delivers; 127.0.0.2 is retired for that destination (daemon log event
#     "pool", a "|<" line in the session log, pool_retired=1, listed by
#     "retired");
#   - the next session goes out from 127.0.0.3 straight away.
# Needs root, ip, nft, python3. Stops everything by PID, removes the namespace.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
proxy=$bindir/proxy/gw-proxy
[ -x "$proxy" ] || { echo "FAIL: $proxy not built" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (network namespace)" >&2; exit 1; }
command -v nft >/dev/null || { echo "FAIL: nft missing (scripts/install-deps)" >&2; exit 1; }
lab_init
NS=refuse-${LAB##*.}
stop() {
	lab_stop_all # processes first: a namespace lives on while a process is in it
	ip netns del "$NS" 2>/dev/null || true
}
trap stop EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$LAB/proxy.log" ] && tail -n 20 "$LAB/proxy.log" >&2
	[ -f "$LAB/session.log" ] && tail -n 30 "$LAB/session.log" >&2
	[ -f "$LAB/dest.log" ] && tail -n 20 "$LAB/dest.log" >&2
	exit 1
}
in_ns() { ip netns exec "$NS" "$@"; }
wait_listen() {   # PORT: until something listens on PORT in the namespace (10 s)
	for _ in $(seq 100); do
		[ -n "$(in_ns ss -Htln "sport = :$1")" ] && return 0
		sleep 0.1
	done
	return 1
}

ip netns add "$NS"
ip -n "$NS" link set lo up
dp=$(lab_port)
pp=$(lab_port)
in_ns nft -f - <<N
table inet refuse {
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr 127.0.0.2 tcp dport $dp reject with tcp reset
	}
}
N

cat >"$LAB/dest.py" <<'PY'
import socket, sys, threading
port, record = int(sys.argv[1]), sys.argv[2]
def serve(c, peer):
    f = c.makefile("rb")
    def send(line):
        c.sendall(line.encode() + b"\r\n")
    send("220 dest.test ESMTP")
    while True:
        line = f.readline()
        if not line:
            break
        cmd = line.decode("latin-1").strip().upper()
        if cmd.startswith("QUIT"):
            send("221 bye")
            break
        elif cmd.startswith("EHLO"):
            send("250-dest.test")
            send("250 PIPELINING")
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
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a[0]), daemon=True).start()
PY
: >"$LAB/delivered"
lab_bg dest ip netns exec "$NS" python3 "$LAB/dest.py" "$dp" "$LAB/delivered"
wait_listen "$dp" || fail "the destination does not listen"

cat >"$LAB/client.py" <<'PY'
import socket, sys
src, port = sys.argv[1], int(sys.argv[2])
s = socket.socket()
s.settimeout(30)
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
session() {   # SRC OUT: one message from a client at SRC
	printf 'EHLO tenant.test\nMAIL FROM:<s@tenant.test>\nRCPT TO:<a@dest.test>\nDATA\nSubject: pool\\r\\n\\r\\nhello\\r\\n.\nQUIT\n' |
		timeout 60 ip netns exec "$NS" python3 "$LAB/client.py" "$1" "$pp" >"$2" || true
}

c=$LAB/gw-proxy.conf
down=$(lab_port)
cp "$LAB_SRC/etc/gw-proxy.conf" "$c"
lab_conf_set "$c" state_file "" # memory only: never the system's state file
lab_conf_set "$c" listen "[127.0.0.1]:$pp"
lab_conf_set "$c" upstream "[127.0.0.1]:$down"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file "$LAB/gw-proxy.pid"
lab_conf_set "$c" session_log "$LAB/session.log"
lab_conf_set "$c" log stderr
lab_conf_set "$c" tls none
lab_conf_set "$c" connect_timeout 5s
lab_conf_set "$c" pool "127.0.0.2, 127.0.0.3"
lab_conf_set "$c" pool_retire_time 1h
"$proxy" -n -c "$c" >/dev/null || fail "-n refused the test configuration"
lab_bg proxy ip netns exec "$NS" "$proxy" -f -c "$c"
wait_listen "$pp" || fail "gw-proxy does not listen"
for _ in $(seq 100); do [ -s "$LAB/gw-proxy.pid" ] && [ -S "$LAB/control" ] && break; sleep 0.1; done
pid=$(cat "$LAB/gw-proxy.pid")
ctl() { "$proxy" -C "$LAB/control" "$1"; }
summaries() {   # N: until the session log has N summary lines (10 s)
	for _ in $(seq 100); do [ "$(grep -c ' == ' "$LAB/session.log")" -ge "$1" ] && return 0; sleep 0.1; done
	fail "want $1 session summaries: $(grep ' == ' "$LAB/session.log")"
}
connects() {   # ADDRESS PORT: connect lines from ADDRESS to PORT in the session log
	grep -cE " \|> connect \[127\.0\.0\.1\]:$2 from ${1//./\\.}," "$LAB/session.log" || true
}

# --- down for everyone: nothing retired ----------------------------------------------------------
session 127.0.0.1 "$LAB/t1"
grep -qxF "S: 421 4.3.2 localhost cannot reach [127.0.0.1]:$down: connection refused" "$LAB/t1" ||
	fail "session to a port nothing listens on: $(tr '\n' '|' <"$LAB/t1")"
summaries 1
if [ "$(connects 127.0.0.2 "$down")" -ne 1 ] || [ "$(connects 127.0.0.3 "$down")" -ne 1 ]; then
	fail "want one try from each address: $(grep ' connect ' "$LAB/session.log")"
fi
[ "$(grep -c ' |< ! connection refused at connect: ' "$LAB/session.log")" -eq 2 ] ||
	fail "want two refusals in the session log"
! grep -q 'pool address=' "$LAB/proxy.log" || fail "retired by a destination down for everyone: $(grep 'pool address=' "$LAB/proxy.log")"
grep -qE ' pool_retired=0 ' <<<"$(ctl stats)" || fail "stats: $(ctl stats)"
grep -qx 'retired=0' <<<"$(ctl retired)" || fail "retired: $(ctl retired)"
echo "ok: refused from both addresses (down for everyone): 421, nothing retired"

# --- refused from 127.0.0.2 only -----------------------------------------------------------------
lab_conf_set "$c" upstream "[127.0.0.1]:$dp"
kill -HUP "$pid"
for _ in $(seq 100); do grep -q "reload status=ok" "$LAB/proxy.log" && break; sleep 0.1; done
grep -q "reload status=ok" "$LAB/proxy.log" || fail "no reload logged"
session 127.0.0.1 "$LAB/t2"
grep -q "^S: 250 2.0.0 Ok: queued" "$LAB/t2" || fail "session refused from 127.0.0.2: $(tr '\n' '|' <"$LAB/t2")"
grep -qx "delivered from 127.0.0.3" "$LAB/delivered" || fail "delivered: $(cat "$LAB/delivered")"
summaries 2
if [ "$(connects 127.0.0.2 "$dp")" -ne 1 ] || [ "$(connects 127.0.0.3 "$dp")" -ne 1 ]; then
	fail "want a try from 127.0.0.2, then 127.0.0.3: $(grep ' connect ' "$LAB/session.log")"
fi
grep -qE 'pool address=127\.0\.0\.2 destination=127\.0\.0\.1 retired=3600s reply="connection refused; 127\.0\.0\.3 accepted"' "$LAB/proxy.log" ||
	fail "no pool line in the daemon's log: $(grep 'pool' "$LAB/proxy.log")"
[ "$(grep -c 'pool address=' "$LAB/proxy.log")" -eq 1 ] || fail "want one pool line: $(grep 'pool address=' "$LAB/proxy.log")"
grep -qE ' \|< ! pool: address 127\.0\.0\.2 retired for 127\.0\.0\.1 for 3600s: connection refused; 127\.0\.0\.3 accepted$' "$LAB/session.log" ||
	fail "no pool line in the session log"
stats=$(ctl stats)
grep -qE ' pool_retired=1 pool_all_retired=0 ' <<<"$stats" || fail "stats: $stats"
retired=$(ctl retired)
grep -qE '^127\.0\.0\.2 127\.0\.0\.1 retired=[0-9]+ left=(3600|359[0-9])$' <<<"$retired" || fail "retired: $retired"
echo "ok: refused from 127.0.0.2, in from 127.0.0.3 and delivered: 127.0.0.2 retired for 127.0.0.1 ($stats)"

session 127.0.0.1 "$LAB/t3"
grep -q "^S: 250 2.0.0 Ok: queued" "$LAB/t3" || fail "next session: $(tr '\n' '|' <"$LAB/t3")"
[ "$(grep -c 'delivered from 127.0.0.3' "$LAB/delivered")" -eq 2 ] || fail "delivered: $(cat "$LAB/delivered")"
summaries 3
[ "$(connects 127.0.0.2 "$dp")" -eq 1 ] || fail "127.0.0.2 used after its retirement"
[ "$(connects 127.0.0.3 "$dp")" -eq 2 ] || fail "the next session did not go out from 127.0.0.3"
echo "ok: the next session went out from 127.0.0.3 straight away"

kill -TERM "$pid"
lab_wait_pid "$pid" 15 || fail "gw-proxy did not stop"
echo PASS
