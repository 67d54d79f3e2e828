#!/usr/bin/env bash
# gw-lmtpd as a daemon, driven from outside:
#   - -n refuses bad configurations with file:line (listener, mode, source
#     address, missing route or TLS policy file) and exit 78;
#   - a unix listener gets socket_mode; an inet one serves too;
#   - garbage, NULs and overlong lines are answered, the session ends after
#     too many errors, the daemon keeps serving;
#   - an idle session is closed after command_timeout with 421;
#   - smtp_bind_address: the destination sees the configured source address;
#   - SIGHUP loads a changed route file; the control socket answers stats, and metrics in
#     Prometheus text format whose counters move with a delivery;
#   - SIGTERM ends it with exit 0, pid file and control socket removed.
# Needs python3 (/usr/bin/python3), swaks, ss. Stops everything by PID.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
# shellcheck source=lib/prom_lint.sh
. "$here/lib/prom_lint.sh"
lmtpd=$bindir/lmtp/gw-lmtpd
[ -x "$lmtpd" ] || { echo "FAIL: $lmtpd not built" >&2; exit 1; }
lab_init
trap lab_stop_all EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$LAB/lmtpd.log" ] && tail -n 20 "$LAB/lmtpd.log" >&2
	exit 1
}

# --- configuration errors name file:line -------------------------------------------------------
bad() {   # EXPECTED-TEXT KEY VALUE
	local c=$LAB/bad.conf rc=0 out
	cp "$LAB_SRC/etc/gw-lmtpd.conf" "$c"
	lab_conf_set "$c" "$2" "$3"
	out=$("$lmtpd" -n -c "$c" 2>&1) || rc=$?
	[ "$rc" -eq 78 ] || fail "-n with $2 = $3: exit $rc, want 78"
	grep -qE "bad.conf:[0-9]+: .*$1" <<<"$out" || fail "-n with $2 = $3 said: $out"
}
bad "want \[ADDRESS\]:PORT" listen "127.0.0.1:24"
bad "octal" socket_mode "rw-rw----"
bad "not a numeric" smtp_bind_address "gw.example.org"
bad "No such file" routes "$LAB/missing-routes"
bad "No such file" tls_policy "$LAB/missing-policy"
bad "" dns_servers "ns.example.org"
echo "ok: configuration errors name file:line"

# --- a destination that records where connections come from -------------------------------------
dp=$(lab_port)
lab_bg dest /usr/bin/python3 -c '
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
log = open(sys.argv[2], "a", buffering=1)
def serve(c, peer):
    f = c.makefile("rb")
    c.sendall(b"220 dest ESMTP\r\n")
    log.write("from %s\n" % peer[0])
    data = False
    for line in f:
        if data:
            if line in (b".\r\n", b".\n"):
                data = False; c.sendall(b"250 2.0.0 stored\r\n")
            continue
        cmd = line[:4].upper()
        if cmd == b"DATA":
            data = True; c.sendall(b"354 go\r\n")
        elif cmd == b"QUIT":
            c.sendall(b"221 bye\r\n"); break
        else:
            c.sendall(b"250 ok\r\n")
    c.close()
while True:
    c, peer = s.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
' "$dp" "$LAB/dest.peers"
lab_wait_port "$dp" 10 || fail "destination does not listen"

# --- the daemon -------------------------------------------------------------------------------------
lp=$(lab_port)
c=$LAB/gw-lmtpd.conf
echo "a.test smtp:[127.0.0.1]:$dp" >"$LAB/routes"
cp "$LAB_SRC/etc/gw-lmtpd.conf" "$c"
lab_conf_set "$c" listen "[127.0.0.1]:$lp, unix:$LAB/lmtp.sock"
lab_conf_set "$c" socket_mode 0640
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file "$LAB/gw-lmtpd.pid"
lab_conf_set "$c" routes "$LAB/routes"
lab_conf_set "$c" spool_dir "$LAB"
lab_conf_set "$c" log stderr
lab_conf_set "$c" tls none
lab_conf_set "$c" command_timeout 1s
lab_conf_set "$c" smtp_bind_address 127.0.0.2
"$lmtpd" -n -c "$c" >/dev/null || fail "-n refused the test configuration"
lab_bg lmtpd "$lmtpd" -f -c "$c"
pid=$(awk '$1=="lmtpd"{print $2}' "$LAB/bg")
lab_wait_port "$lp" 10 || fail "gw-lmtpd does not listen"
[ "$(stat -c %a "$LAB/lmtp.sock")" = 640 ] || fail "unix listener mode $(stat -c %a "$LAB/lmtp.sock"), want 640"
[ "$(cat "$LAB/gw-lmtpd.pid")" = "$pid" ] || fail "pid file does not hold $pid"

send() {   # OUT SERVER-ARGS...: one message to x@a.test
	timeout 30 swaks --protocol LMTP "${@:2}" --helo internal.test --from s@internal.test \
		--to x@a.test --timeout 20 >"$1" 2>&1 || true
}
send "$LAB/t1" --socket "$LAB/lmtp.sock"
grep -q "^<- *250 2.0.0 delivered to \[127.0.0.1\]:$dp: 250 2.0.0 stored" "$LAB/t1" || fail "over the unix listener: $(grep '^<' "$LAB/t1" | tail -2)"
grep -qx "from 127.0.0.2" "$LAB/dest.peers" || fail "the destination saw $(cat "$LAB/dest.peers"), want 127.0.0.2"
grep -q 'addr=\[127.0.0.1\]:'"$dp" "$LAB/lmtpd.log" || fail "no addr= in the recipient's log line"
echo "ok: unix listener, mode, source address"

# --- hostile input ------------------------------------------------------------------------------
out=$(/usr/bin/python3 - "$lp" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
f = s.makefile("rb")
print(f.readline().decode().strip())
s.sendall(b"LHLO x\r\n" + b"\x00\xff\xfe garbage\r\n" + b"A" * 5000 + b"\r\n" + b"XYZZY\r\n" * 30)
lines = []
try:
    for line in f:
        lines.append(line.decode("latin-1").strip())
except socket.timeout:
    pass
print("\n".join(lines))
PY
)
grep -q "^500 5.5.2 " <<<"$out" || fail "no 500 5.5.2 for garbage: $out"
grep -q "^500 5.5.6 " <<<"$out" || fail "no 500 5.5.6 for an overlong line: $out"
grep -q "^421 4.7.0 " <<<"$out" || fail "no 421 after too many errors: $out"
send "$LAB/t2" --server 127.0.0.1 --port "$lp"
grep -q "^<- *250 2.0.0 delivered" "$LAB/t2" || fail "not serving after the garbage"
echo "ok: garbage answered, session ended after too many errors, daemon still serves"

out=$(/usr/bin/python3 - "$lp" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
f = s.makefile("rb")
t = time.time()
print(f.readline().decode().strip())
print(f.readline().decode().strip())
print("closed" if f.readline() == b"" else "open")
print("%.1f" % (time.time() - t))
PY
)
grep -q "^421 4.3.2 .*timeout" <<<"$out" || fail "idle session: $out"
grep -qx closed <<<"$out" || fail "idle session not closed: $out"
echo "ok: idle session closed after command_timeout"

# --- reload and stats --------------------------------------------------------------------------------
echo "b.test smtp:[127.0.0.1]:$dp" >>"$LAB/routes"
kill -HUP "$pid"
for _ in $(seq 100); do grep -q "reload status=ok routes=2" "$LAB/lmtpd.log" && break; sleep 0.1; done
grep -q "reload status=ok routes=2" "$LAB/lmtpd.log" || fail "no reload with 2 routes logged"
"$lmtpd" -C "$LAB/control" metrics >"$LAB/m1.prom" || fail "metrics: exit $?"
timeout 30 swaks --protocol LMTP --server 127.0.0.1 --port "$lp" --helo internal.test --from s@internal.test \
	--to y@b.test --timeout 20 >"$LAB/t3" 2>&1 || true
grep -q "^<- *250 2.0.0 delivered" "$LAB/t3" || fail "the reloaded route was not used: $(grep '^<' "$LAB/t3" | tail -1)"
stats=$("$lmtpd" -C "$LAB/control" stats)
grep -q "delivered=3 " <<<"$stats" || fail "stats: $stats"
echo "ok: reload, stats ($stats)"
# The same counters in Prometheus text format: every line a comment or a sample with its TYPE
# first, and the delivery since the first scrape counted.
"$lmtpd" -C "$LAB/control" metrics >"$LAB/m2.prom" || fail "metrics: exit $?"
bad=$(prom_malformed "$LAB/m2.prom" gw_lmtpd_ '[a-z]+' '[0-9]+')
[ -z "$bad" ] || fail "metrics: malformed lines: $bad"
untyped=$(prom_untyped "$LAB/m2.prom")
[ -z "$untyped" ] || fail "metrics: samples without TYPE: $untyped"
for f in sessions sessions_total transactions delivered tempfail permfail uncertain late connections_reused \
	dane_verified dane_failed healthy; do
	case $f in
	delivered | tempfail | permfail | uncertain) m="gw_lmtpd_recipients_total{result=\"$f\"}" ;;
	sessions | healthy) m="gw_lmtpd_$f" ;;
	*) m="gw_lmtpd_${f%_total}_total" ;;
	esac
	grep -qF "$m " "$LAB/m2.prom" || fail "metrics: no $m for stats' $f"
done
sample() { awk -v n="$1" '$1 == n { print $2 }' "$2"; }
[ "$(sample 'gw_lmtpd_recipients_total{result="delivered"}' "$LAB/m2.prom")" = 3 ] || fail "metrics: delivered $(cat "$LAB/m2.prom")"
[ "$(($(sample 'gw_lmtpd_recipients_total{result="delivered"}' "$LAB/m2.prom") - $(sample 'gw_lmtpd_recipients_total{result="delivered"}' "$LAB/m1.prom")))" = 1 ] ||
	fail "metrics: delivered did not move by 1"
[ "$(($(sample gw_lmtpd_transactions_total "$LAB/m2.prom") - $(sample gw_lmtpd_transactions_total "$LAB/m1.prom")))" = 1 ] ||
	fail "metrics: transactions did not move by 1"
[ "$(($(sample gw_lmtpd_sessions_total "$LAB/m2.prom") - $(sample gw_lmtpd_sessions_total "$LAB/m1.prom")))" = 1 ] ||
	fail "metrics: sessions_total did not move by 1"
echo "ok: metrics ($(wc -l <"$LAB/m2.prom") lines, counters moved by one delivery)"

# --- stop ------------------------------------------------------------------------------------------
kill -TERM "$pid"
lab_wait_pid "$pid" 15 || fail "gw-lmtpd did not stop"
rc=0
wait "$pid" 2>/dev/null || rc=$?
[ ! -e "$LAB/gw-lmtpd.pid" ] || fail "pid file left behind"
[ ! -e "$LAB/control" ] || fail "control socket left behind"
sed -i "/^lmtpd /d" "$LAB/bg"
echo "ok: SIGTERM (exit $rc)"
echo PASS
