#!/usr/bin/env bash
# gw-proxy's plain listener without upstream: destinations by MX of the
# recipients' domain, against a real named on loopback (test/sh/lib/named.sh):
#   - example.org (MX 10 mx1, 20 mx2, 30 mx3) with mx1 down: relayed to mx2;
#   - a-only.example.org (no MX, an A record): the implicit MX;
#   - nullmx.example (MX 0 .): 556 5.1.10; nosuch.example.org (NXDOMAIN):
#     550 5.1.2; broken.example (SERVFAIL): 451 4.4.3.
# The destinations are smtp-sink instances on 127.0.0.12/.14 at a test port
# (smtp_port); nothing listens on mx1's 127.0.0.11. Needs named, smtp-sink.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
# shellcheck source=lib/named.sh
. "$here/lib/named.sh"
proxy=$bindir/proxy/gw-proxy
[ -x "$proxy" ] || { echo "FAIL: $proxy not built" >&2; exit 1; }

lab_init
trap 'named_stop; lab_stop_all' EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$LAB/proxy.log" ] && tail -n 10 "$LAB/proxy.log" >&2
	[ -f "$LAB/session.log" ] && tail -n 30 "$LAB/session.log" >&2
	exit 1
}
mkdir "$LAB/named"
named_start "$LAB/named" || fail "named did not start"

sp=$(lab_port)
for ip in 127.0.0.12 127.0.0.14; do
	lab_bg "sink-$ip" smtp-sink -u postfix "$ip:$sp" 100
done
pp=$(lab_port)
c=$LAB/gw-proxy.conf
cp "$LAB_SRC/etc/gw-proxy.conf" "$c"
lab_conf_set "$c" state_file "" # memory only: never the system's state file
lab_conf_set "$c" listen "[127.0.0.1]:$pp"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file ""
lab_conf_set "$c" session_log "$LAB/session.log"
lab_conf_set "$c" log stderr
lab_conf_set "$c" tls none
lab_conf_set "$c" dns_servers "127.0.0.1:$NAMED_PORT"
lab_conf_set "$c" dns_timeout 2s
lab_conf_set "$c" smtp_port "$sp"
lab_conf_set "$c" connect_timeout 1s
"$proxy" -n -c "$c" >/dev/null || fail "gw-proxy -n refused the configuration"
lab_bg proxy "$proxy" -f -c "$c"
lab_wait_port "$pp" 10 || fail "gw-proxy does not listen"
for ip in 127.0.0.12 127.0.0.14; do
	for _ in $(seq 100); do [ -n "$(ss -Htln "src $ip:$sp")" ] && break; sleep 0.1; done
done

send() {   # OUT RCPT
	lab_smtp "$pp" >"$1" <<C || true
EHLO tenant.test
MAIL FROM:<s@tenant.test>
RCPT TO:<$2>
DATA
Subject: t\r\n\r\nhello\r\n.
QUIT
C
}
send "$LAB/t1" x@example.org
grep -q "^S: 250 2.0.0 Ok" "$LAB/t1" || fail "example.org: $(grep '^S:' "$LAB/t1" | tr '\n' '|')"
grep -qE ' == .*dest=example.org peer=\[127\.0\.0\.12\]:'"$sp"' outcome=quit messages=1 ' "$LAB/session.log" ||
	fail "example.org not relayed to mx2 (127.0.0.12)"
grep -qE ' \|< ! connection refused at connect' "$LAB/session.log" || fail "mx1's refusal not logged"
echo "ok: example.org by MX, mx1 down, relayed to mx2"

send "$LAB/t2" y@a-only.example.org
grep -q "^S: 250 2.0.0 Ok" "$LAB/t2" || fail "a-only: $(grep '^S:' "$LAB/t2" | tr '\n' '|')"
grep -qE ' == .*dest=a-only.example.org peer=\[127\.0\.0\.14\]:'"$sp" "$LAB/session.log" || fail "implicit MX not used"
echo "ok: implicit MX"

send "$LAB/t3" z@nullmx.example
grep -q "^S: 556 5.1.10 domain nullmx.example accepts no mail" "$LAB/t3" || fail "null MX: $(grep '^S:' "$LAB/t3" | tr '\n' '|')"
send "$LAB/t4" z@nosuch.example.org
grep -q "^S: 550 5.1.2 no mail server for nosuch.example.org" "$LAB/t4" || fail "NXDOMAIN: $(grep '^S:' "$LAB/t4" | tr '\n' '|')"
send "$LAB/t5" z@broken.example
grep -q "^S: 451 4.4.3 " "$LAB/t5" || fail "SERVFAIL: $(grep '^S:' "$LAB/t5" | tr '\n' '|')"
echo "ok: null MX 556 5.1.10, NXDOMAIN 550 5.1.2, SERVFAIL 451 4.4.3"
echo PASS
