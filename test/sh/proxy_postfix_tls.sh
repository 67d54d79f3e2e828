#!/usr/bin/env bash
# gw-proxy's own certificate on the tenant leg, between two real Postfix
# instances: the tenant MTA (smtp_tls_security_level = encrypt, relayhost =
# the proxy's plain listener) must get STARTTLS from the proxy, with a
# certificate made at test time; the destination offers STARTTLS too (tls =
# encrypt towards it). Checked: the mail is delivered; the tenant logged a
# TLS connection to the proxy; the session log names the client leg's
# protocol and cipher (">| TLS with the client: ...", tls_in= in the summary)
# beside the destination leg's (tls_out=). Then without tls_cert_file the
# same tenant defers its next message (no STARTTLS offered: no plain-text
# fallback) and it stays in the tenant's queue.
# Needs root (Postfix), swaks, openssl. Stops everything by PID.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
proxy=$bindir/proxy/gw-proxy
[ -x "$proxy" ] || { echo "FAIL: $proxy not built" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (Postfix)" >&2; exit 1; }
lab_init
trap lab_stop_all EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$LAB/proxy.log" ] && tail -n 10 "$LAB/proxy.log" >&2
	[ -f "$LAB/session.log" ] && tail -n 20 "$LAB/session.log" >&2
	[ -f "$LAB/tenant/maillog" ] && tail -n 20 "$LAB/tenant/maillog" >&2
	exit 1
}
delivered() { find "$LAB/dest/mail/u@dest.test/new" -type f 2>/dev/null | wc -l; }
delivered_over() { [ "$(delivered)" -gt "$1" ]; }
wait_for() {   # SECONDS COMMAND...: until COMMAND succeeds
	local n=$(($1 * 10))
	shift
	for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
	return 1
}

dp=$(lab_port)
lab_internal_start dest "$dp" u@dest.test || fail "destination Postfix did not start"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=dest.lab.invalid -days 2 \
	-keyout "$LAB/dest/etc/key.pem" -out "$LAB/dest/etc/cert.pem" >/dev/null 2>&1 || fail "openssl req (dest)"
postconf -c "$LAB/dest/etc" -e "smtpd_tls_security_level = may" "smtpd_tls_cert_file = $LAB/dest/etc/cert.pem" \
	"smtpd_tls_key_file = $LAB/dest/etc/key.pem" "smtpd_tls_loglevel = 1"
echo "tlsmgr unix - - n 1000? 1 tlsmgr" >>"$LAB/dest/etc/master.cf"
postfix -c "$LAB/dest/etc" reload >/dev/null 2>&1 || fail "destination reload"
wait_for 10 grep -q "reload -- version" "$LAB/dest/maillog" || fail "destination did not reload"

# The proxy's own certificate, made now (EC, so the log shows another key type than the destination's).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=proxy.lab.invalid -days 2 \
	-keyout "$LAB/proxy-key.pem" -out "$LAB/proxy-cert.pem" >/dev/null 2>&1 || fail "openssl req (proxy)"
pp=$(lab_port)
c=$LAB/gw-proxy.conf
cp "$LAB_SRC/etc/gw-proxy.conf" "$c"
lab_conf_set "$c" state_file "" # memory only: never the system's state file
lab_conf_set "$c" listen "[127.0.0.1]:$pp"
lab_conf_set "$c" upstream "[127.0.0.1]:$dp"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file ""
lab_conf_set "$c" session_log "$LAB/session.log"
lab_conf_set "$c" log stderr
lab_conf_set "$c" tls encrypt
lab_conf_set "$c" tls_cert_file "$LAB/proxy-cert.pem"
lab_conf_set "$c" tls_key_file "$LAB/proxy-key.pem"
lab_conf_set "$c" connect_timeout 2s
"$proxy" -n -c "$c" || fail "gw-proxy -n refused the configuration"
lab_bg proxy "$proxy" -f -c "$c"
lab_wait_port "$pp" 10 || fail "gw-proxy does not listen"

tp=$(lab_port)
lab_instance_dirs tenant
echo "$tp" >"$LAB/tenant/port"
lab_master_cf "$tp" >"$LAB/tenant/etc/master.cf"
echo "tlsmgr unix - - n 1000? 1 tlsmgr" >>"$LAB/tenant/etc/master.cf"
{
	lab_main_cf tenant
	echo "# a tenant MTA that insists on TLS to its relay, the proxy"
	echo "relayhost = [127.0.0.1]:$pp"
	echo "smtpd_relay_restrictions = permit_mynetworks, reject"
	echo "smtp_tls_security_level = encrypt"
	echo "smtp_tls_loglevel = 1"
} >"$LAB/tenant/etc/main.cf"
lab_postfix_start tenant || fail "tenant Postfix did not start"

lab_swaks "$tp" "$LAB/t1" --from u@dest.test --to u@dest.test
grep -q "^<- *250 2.0.0 Ok" "$LAB/t1" || fail "tenant did not take the message: $(grep '^<' "$LAB/t1" | tail -1)"
wait_for 30 delivered_over 0 || fail "not delivered through the proxy"
grep -qE "TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:$pp: TLSv1\.[23]" "$LAB/tenant/maillog" ||
	fail "the tenant logged no TLS connection to the proxy"
grep -q "TLS connection established from localhost" "$LAB/dest/maillog" || fail "the destination saw no TLS"
grep -qE ' >\| TLS with the client: TLSv1\.[23] [A-Z0-9_-]+' "$LAB/session.log" ||
	fail "the session log does not show TLS on the tenant leg"
grep -qE ' == .*tls_out="TLSv1\.[23] [A-Z0-9_-]+" tls_in="TLSv1\.[23] [A-Z0-9_-]+"' "$LAB/session.log" ||
	fail "the summary line does not name both legs' TLS"
grep -E ' == ' "$LAB/session.log" | grep -q 'outcome=quit messages=1 refused=0' ||
	fail "no session with one message relayed"
echo "ok: tenant (smtp_tls_security_level = encrypt) -> gw-proxy over TLS, delivered; both legs' TLS logged"

# Without a certificate the proxy offers no STARTTLS: the tenant defers, the mail stays in its queue.
lab_conf_set "$c" tls_cert_file ""
lab_conf_set "$c" tls_key_file ""
kill -HUP "$(awk '$1 == "proxy" { print $2 }' "$LAB/bg")"
wait_for 10 grep -q "reload.*status=ok" "$LAB/proxy.log" || fail "gw-proxy did not reload"
lab_swaks "$tp" "$LAB/t2" --from u@dest.test --to u@dest.test --header "Subject: no tls"
wait_for 30 grep -q "to=<u@dest.test>.*status=deferred.*TLS is required, but was not offered" "$LAB/tenant/maillog" ||
	fail "the tenant did not defer for want of TLS: $(grep 'status=' "$LAB/tenant/maillog" | tail -1)"
[ "$(lab_queue_count tenant)" -ge 1 ] || fail "the tenant's queue is empty"
[ "$(delivered)" -eq 1 ] || fail "delivered without TLS on the tenant leg"
echo "ok: no tls_cert_file: STARTTLS not offered, the tenant (encrypt) keeps its mail queued"
echo PASS
