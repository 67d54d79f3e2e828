#!/usr/bin/env bash
# gw-lmtpd finding destinations in the DNS, against a real named on loopback
# (test/sh/lib/named.sh), no route file:
#   - example.org (MX 10 mx1, 20 mx2, 30 mx3): delivered to mx1; with mx1 down,
#     to mx2 in the same transaction (hosts in preference order);
#   - a-only.example.org (no MX, an A record): the implicit MX;
#   - eq.example.org (two MX at preference 10): both hosts used over 40
#     messages (equal preferences shuffled, RFC 5321 5.1);
#   - nullmx.example (MX 0 .): 556 5.1.10; nosuch.example.org (NXDOMAIN):
#     550 5.1.2; broken.example (SERVFAIL): 451 4.4.3; each recipient its own.
# The destinations are smtp-sink instances on 127.0.0.11/.12/.14 at a test
# port (smtp_port). Needs named (bind9), smtp-sink (postfix), swaks.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
# shellcheck source=lib/named.sh
. "$here/lib/named.sh"
lmtpd=$bindir/lmtp/gw-lmtpd
[ -x "$lmtpd" ] || { echo "FAIL: $lmtpd not built" >&2; exit 1; }

lab_init
trap 'named_stop; lab_stop_all' EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$LAB/lmtpd.log" ] && tail -n 30 "$LAB/lmtpd.log" >&2
	exit 1
}
mkdir "$LAB/named"
named_start "$LAB/named" || fail "named did not start"

sp=$(lab_port)
for ip in 127.0.0.11 127.0.0.12 127.0.0.14; do
	lab_bg "sink-$ip" smtp-sink -u postfix "$ip:$sp" 100
done
lmtp=$(lab_port)
c=$LAB/gw-lmtpd.conf
cp "$LAB_SRC/etc/gw-lmtpd.conf" "$c"
lab_conf_set "$c" listen "[127.0.0.1]:$lmtp"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file "$LAB/pid"
lab_conf_set "$c" spool_dir "$LAB"
lab_conf_set "$c" log stderr
lab_conf_set "$c" tls none
lab_conf_set "$c" dns_servers "127.0.0.1:$NAMED_PORT"
lab_conf_set "$c" dns_timeout 2s
lab_conf_set "$c" smtp_port "$sp"
lab_conf_set "$c" connect_timeout 1s
lab_conf_set "$c" dest_idle 0
"$lmtpd" -n -c "$c" >/dev/null || fail "gw-lmtpd -n refused the configuration"
lab_bg lmtpd "$lmtpd" -f -c "$c"
lab_wait_port "$lmtp" 10 || fail "gw-lmtpd does not listen"
for ip in 127.0.0.11 127.0.0.12 127.0.0.14; do
	for _ in $(seq 100); do [ -n "$(ss -Htln "src $ip:$sp")" ] && break; sleep 0.1; done
done

# lmtp OUT RCPTS: one LMTP transaction; OUT gets swaks' transcript
lmtp() {
	timeout 60 swaks --protocol LMTP --server 127.0.0.1 --port "$lmtp" --helo internal.test \
		--from sender@internal.test --to "$2" --timeout 30 >"$1" 2>&1 || true
}
# the final replies, one per recipient, in order
finals() { awk '/^ -> \.$/ { on = 1; next } on && /^ *<(-|\*\*) / { sub(/^ *<(-|\*\*) */, ""); print }' "$1" | grep -v '^221 '; }

lmtp "$LAB/t1" "a@example.org,b@a-only.example.org,c@nullmx.example,d@nosuch.example.org,e@broken.example"
finals "$LAB/t1" >"$LAB/t1.finals"
mapfile -t r <"$LAB/t1.finals"
[ "${#r[@]}" -eq 5 ] || fail "want 5 final replies, got ${#r[@]}: $(cat "$LAB/t1.finals")"
[[ ${r[0]} == "250 2.0.0 delivered to mx1.example.org:$sp"* ]] || fail "example.org: ${r[0]}"
[[ ${r[1]} == "250 2.0.0 delivered to a-only.example.org:$sp"* ]] || fail "implicit MX: ${r[1]}"
[[ ${r[2]} == "556 5.1.10 "* ]] || fail "null MX: ${r[2]}"
[[ ${r[3]} == "550 5.1.2 "* ]] || fail "NXDOMAIN: ${r[3]}"
[[ ${r[4]} == "451 4.4.3 "* ]] || fail "SERVFAIL: ${r[4]}"
echo "ok: MX, implicit MX, null MX, NXDOMAIN, SERVFAIL"

lab_bg_stop sink-127.0.0.11
lmtp "$LAB/t2" "a@example.org"
r2=$(finals "$LAB/t2")
[[ $r2 == "250 2.0.0 delivered to mx2.example.org:$sp"* ]] || fail "with mx1 down: $r2"
grep -q "host=mx2.example.org:$sp" "$LAB/lmtpd.log" || fail "no delivery through mx2 logged"
echo "ok: mx1 down, mx2 next"

lab_bg "sink-127.0.0.11" smtp-sink -u postfix "127.0.0.11:$sp" 100
for _ in $(seq 100); do [ -n "$(ss -Htln "src 127.0.0.11:$sp")" ] && break; sleep 0.1; done
for i in $(seq 40); do lmtp "$LAB/eq$i" "u$i@eq.example.org"; done
n1=$(grep -c "to=<u[0-9]*@eq.example.org> state=delivered .*host=mx1.example.org" "$LAB/lmtpd.log" || true)
n2=$(grep -c "to=<u[0-9]*@eq.example.org> state=delivered .*host=mx2.example.org" "$LAB/lmtpd.log" || true)
[ $((n1 + n2)) -eq 40 ] || fail "eq.example.org: $n1 + $n2 of 40 delivered"
[ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] || fail "equal-preference MX hosts not shared: mx1 $n1, mx2 $n2"
echo "ok: equal preference shared ($n1 / $n2)"
echo PASS
