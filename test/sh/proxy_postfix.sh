#!/usr/bin/env bash
# gw-proxy between two real Postfix instances: a tenant MTA (its own queue,
# relayhost = the proxy's plain listener) and a destination MTA that knows
# u@dest.test and refuses other recipients with 550 5.1.1.
#   - a message to u@dest.test is delivered into the destination's mailbox,
#     over TLS between proxy and destination (tls = encrypt; the destination's
#     certificate made at test time) and in plain text on the tenant leg;
#   - a message to nobody@dest.test is bounced by the tenant with the
#     destination's own words (the proxy passed its 550 on);
#   - with the destination down, the tenant's message is deferred and stays in
#     the tenant's queue (the proxy holds nothing); once the destination is
#     back, a queue flush delivers it.
# Needs root (Postfix), swaks. Stops everything by PID.
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
queue_empty() { [ "$(lab_queue_count tenant)" -eq 0 ]; }
down_mail_delivered() { grep -qs "^Subject: while down" "$LAB"/dest/mail/u@dest.test/new/*; }
wait_for() {   # SECONDS COMMAND...: until COMMAND succeeds
	local n=$(($1 * 10))
	shift
	for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
	return 1
}

dp=$(lab_port)
lab_internal_start dest "$dp" u@dest.test || fail "destination Postfix did not start"
# The destination offers STARTTLS with a certificate made now; the proxy requires it (tls = encrypt).
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=dest.lab.invalid -days 2 \
	-keyout "$LAB/dest/etc/key.pem" -out "$LAB/dest/etc/cert.pem" >/dev/null 2>&1 || fail "openssl req"
postconf -c "$LAB/dest/etc" -e "smtpd_tls_security_level = may" "smtpd_tls_cert_file = $LAB/dest/etc/cert.pem" \
	"smtpd_tls_key_file = $LAB/dest/etc/key.pem" "smtpd_tls_loglevel = 1"
echo "tlsmgr unix - - n 1000? 1 tlsmgr" >>"$LAB/dest/etc/master.cf"
postfix -c "$LAB/dest/etc" reload >/dev/null 2>&1 || fail "destination reload"
wait_for 10 grep -q "reload -- version" "$LAB/dest/maillog" || fail "destination did not reload"

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
lab_conf_set "$c" connect_timeout 2s
lab_bg proxy "$proxy" -f -c "$c"
lab_wait_port "$pp" 10 || fail "gw-proxy does not listen"

# The tenant: its own queue, everything relayed through the proxy.
tp=$(lab_port)
lab_instance_dirs tenant
echo "$tp" >"$LAB/tenant/port"
lab_master_cf "$tp" >"$LAB/tenant/etc/master.cf"
{
	lab_main_cf tenant
	echo "# a tenant MTA: its own queue, all mail out through gw-proxy"
	echo "relayhost = [127.0.0.1]:$pp"
	echo "smtpd_relay_restrictions = permit_mynetworks, reject"
} >"$LAB/tenant/etc/main.cf"
lab_postfix_start tenant || fail "tenant Postfix did not start"

# 1. delivered, and refused with the destination's words
lab_swaks "$tp" "$LAB/t1" --from u@dest.test --to u@dest.test
grep -q "^<- *250 2.0.0 Ok" "$LAB/t1" || fail "tenant did not take the message: $(grep '^<' "$LAB/t1" | tail -1)"
wait_for 30 delivered_over 0 || fail "not delivered through the proxy"
lab_swaks "$tp" "$LAB/t2" --from u@dest.test --to nobody@dest.test
wait_for 30 grep -q "to=<nobody@dest.test>.*status=bounced" "$LAB/tenant/maillog" ||
	fail "no bounce for nobody@dest.test"
grep "to=<nobody@dest.test>.*status=bounced" "$LAB/tenant/maillog" | grep -q "said: 550 5.1.1 <nobody@dest.test>" ||
	fail "the bounce does not carry the destination's 550 5.1.1: $(grep 'nobody@dest.test' "$LAB/tenant/maillog" | tail -1)"
grep -q "TLS connection established from localhost" "$LAB/dest/maillog" || fail "the destination saw no TLS"
grep -qE ' == .*tls_out="TLSv1\.[23] [A-Z0-9_-]+" tls_in="none"' "$LAB/session.log" || fail "no TLS on the outside leg in the log"
grep -q "TLS connection established" "$LAB/tenant/maillog" && fail "the tenant leg is encrypted: the proxy offered STARTTLS"
echo "ok: delivered through the proxy, TLS on the outside leg, plain on the tenant leg"
echo "ok: the destination's 550 5.1.1 reached the tenant word for word"

# 2. destination down: the mail waits in the tenant's own queue, then goes out
lab_postfix_stop dest
lab_swaks "$tp" "$LAB/t3" --from u@dest.test --to u@dest.test --header "Subject: while down"
wait_for 30 grep -q "to=<u@dest.test>.*status=deferred" "$LAB/tenant/maillog" ||
	fail "the tenant did not defer while the destination was down"
grep "to=<u@dest.test>.*status=deferred" "$LAB/tenant/maillog" | grep -q "421 4.3.2" ||
	fail "deferral without the proxy's 421: $(grep 'status=deferred' "$LAB/tenant/maillog" | tail -1)"
[ "$(lab_queue_count tenant)" -ge 1 ] || fail "the tenant's queue is empty while the destination is down"
stats=$("$proxy" -C "$LAB/control" stats)
grep -q "^sessions=0 " <<<"$stats" || fail "the proxy holds sessions: $stats"
! down_mail_delivered || fail "delivered while the destination was down?"
lab_postfix_start dest || fail "destination Postfix did not start again"
postqueue -c "$LAB/tenant/etc" -f
wait_for 60 down_mail_delivered || fail "not delivered after the destination came back"
wait_for 30 queue_empty || fail "the tenant's queue is not empty: $(lab_queue_count tenant)"
echo "ok: destination down: deferred in the tenant's queue (421 from the proxy), delivered after a flush"
grep -q "outcome=upstream-connection-refused " "$LAB/session.log" || fail "no session logged the refused destination"
echo PASS
