#!/usr/bin/env bash
# metrics_http.sh BUILD_DIR - the HTTP metrics listener (metrics_listen) of
# gw-lmtpd and gw-milter:
#   - GET /metrics answers 200, HTTP/1.0, Content-Type text/plain;
#     version=0.0.4, the same text as "-C SOCKET metrics" (gw_lmtpd_ or
#     gw_milter_ samples, each with its TYPE);
#   - hostile input: another path 404, another method 405, a garbage line,
#     binary bytes with NULs, a request past 2 KB and a request line with no
#     version 400; a client that connects and says nothing is dropped after
#     the read timeout; one that connects and leaves is ignored; after all of
#     it the listener still answers;
#   - a malformed metrics_listen makes the daemon refuse to start.
# Stops every process by PID.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
# shellcheck source=lib/prom_lint.sh
. "$here/lib/prom_lint.sh"
lmtpd=$bindir/lmtp/gw-lmtpd
milter=$bindir/milter/gw-milter
[ -x "$lmtpd" ] && [ -x "$milter" ] || { echo "FAIL: daemons not built" >&2; exit 1; }
lab_init
trap lab_stop_all EXIT
fail() {
	echo "FAIL: $*" >&2
	for f in "$LAB/lmtpd.log" "$LAB/milter/log"; do [ -f "$f" ] && tail -n 10 "$f" >&2; done
	exit 1
}

# req PORT PYTHON-BYTES-LITERAL: send the bytes, print the whole answer (empty when closed without one).
req() {
	timeout 20 python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
data = eval(sys.argv[2])
try:
    s.sendall(data)
except OSError:
    pass
out = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
except OSError:
    pass
sys.stdout.write(out.decode("latin-1"))
PY
}

status() { head -n1 | tr -d '\r'; }

# hostile PORT: the malformed requests, each answered as it should be.
hostile() {
	local p=$1 out
	out=$(req "$p" 'b"GET /other HTTP/1.0\r\n\r\n"' | status)
	[ "$out" = "HTTP/1.0 404 Not Found" ] || fail "other path: $out"
	out=$(req "$p" 'b"POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"' | status)
	[ "$out" = "HTTP/1.0 405 Method Not Allowed" ] || fail "POST: $out"
	out=$(req "$p" 'b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n"' | status)
	[ "$out" = "HTTP/1.0 400 Bad Request" ] || fail "binary: $out"
	out=$(req "$p" 'b"hello there\r\n\r\n"' | status)
	[ "$out" = "HTTP/1.0 400 Bad Request" ] || fail "garbage line: $out"
	out=$(req "$p" 'b"GET /metrics\r\n\r\n"' | status)
	[ "$out" = "HTTP/1.0 400 Bad Request" ] || fail "no version: $out"
	out=$(req "$p" 'b"GET /metrics HTTP/1.0\r\nX-A: " + b"a" * 100000 + b"\r\n\r\n"' | status)
	[ "$out" = "HTTP/1.0 400 Bad Request" ] || fail "oversized: $out"
	out=$(req "$p" 'b""')
	[ -z "$out" ] || fail "a silent client got an answer: $out"
	# a client that sends half a request and goes away
	req "$p" 'b"GET /met"' >/dev/null
}

# scrape PORT PREFIX FILE: GET /metrics, checked; the body into FILE.
scrape() {
	local p=$1 pre=$2 f=$3 out bad untyped
	req "$p" 'b"GET /metrics?x=1 HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n"' >"$f.raw"
	[ "$(status <"$f.raw")" = "HTTP/1.0 200 OK" ] || fail "GET /metrics: $(head -c 300 "$f.raw")"
	grep -qi $'^Content-Type: text/plain; version=0.0.4' "$f.raw" || fail "content type: $(head -5 "$f.raw")"
	sed '1,/^\r$/d' "$f.raw" >"$f"
	[ "$(wc -c <"$f")" -eq "$(sed -n 's/^Content-Length: \([0-9]*\)\r$/\1/p' "$f.raw")" ] || fail "Content-Length"
	grep -q "^${pre}" "$f" || fail "no ${pre} samples: $(head -5 "$f")"
	bad=$(prom_malformed "$f" "$pre")
	[ -z "$bad" ] || fail "malformed lines: $bad"
	untyped=$(prom_untyped "$f")
	[ -z "$untyped" ] || fail "samples without TYPE: $untyped"
}

# --- gw-lmtpd -----------------------------------------------------------------------------------
mp=$(lab_port)
lp=$(lab_port)
c=$LAB/gw-lmtpd.conf
cp "$LAB_SRC/etc/gw-lmtpd.conf" "$c"
: >"$LAB/routes"
lab_conf_set "$c" listen "[127.0.0.1]:$lp"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file "$LAB/gw-lmtpd.pid"
lab_conf_set "$c" routes "$LAB/routes"
lab_conf_set "$c" spool_dir "$LAB"
lab_conf_set "$c" log stderr
lab_conf_set "$c" tls none
cp "$c" "$LAB/bad.conf"
lab_conf_set "$LAB/bad.conf" metrics_listen "unix:$LAB/m.sock"
rc=0
timeout 20 "$lmtpd" -f -c "$LAB/bad.conf" >"$LAB/bad.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && grep -q "metrics_listen" "$LAB/bad.log" || fail "a unix metrics_listen was accepted (exit $rc): $(cat "$LAB/bad.log")"
lab_conf_set "$c" metrics_listen "[127.0.0.1]:$mp"
lab_bg lmtpd "$lmtpd" -f -c "$c"
pid=$(awk '$1=="lmtpd"{print $2}' "$LAB/bg")
lab_wait_port "$mp" 10 || fail "gw-lmtpd does not listen on metrics_listen"
scrape "$mp" gw_lmtpd_ "$LAB/l1.prom"
"$lmtpd" -C "$LAB/control" metrics >"$LAB/l1.ctl"
diff "$LAB/l1.ctl" "$LAB/l1.prom" >/dev/null || fail "HTTP and control socket differ: $(diff "$LAB/l1.ctl" "$LAB/l1.prom")"
echo "ok: gw-lmtpd GET /metrics ($(wc -l <"$LAB/l1.prom") lines, same as -C metrics)"
t0=$(date +%s)
hostile "$mp"
echo "ok: gw-lmtpd hostile requests answered 400/404/405 or dropped ($(($(date +%s) - t0)) s)"
scrape "$mp" gw_lmtpd_ "$LAB/l2.prom"
kill -0 "$pid" || fail "gw-lmtpd died"
echo "ok: gw-lmtpd still answers"
kill -TERM "$pid"
lab_wait_pid "$pid" 15 || fail "gw-lmtpd did not stop"
wait "$pid" || fail "gw-lmtpd exit $?"

# --- gw-milter ----------------------------------------------------------------------------------
mp2=$(lab_port)
echo "example.test smtp:[127.0.0.1]:$lp" >"$LAB/mroutes"
lab_milter_conf "unix:$LAB/milter.sock" "$LAB/mroutes" "metrics_listen=[127.0.0.1]:$mp2" tls=none
lab_milter_start "$bindir" || fail "gw-milter did not start"
lab_wait_port "$mp2" 10 || fail "gw-milter does not listen on metrics_listen"
scrape "$mp2" gw_milter_ "$LAB/m1.prom"
grep -q '^gw_milter_config_generation 1$' "$LAB/m1.prom" || fail "gw-milter: $(head "$LAB/m1.prom")"
echo "ok: gw-milter GET /metrics ($(wc -l <"$LAB/m1.prom") lines)"
hostile "$mp2"
scrape "$mp2" gw_milter_ "$LAB/m2.prom"
echo "ok: gw-milter hostile requests, still answers"
lab_milter_stop
echo "PASS"
