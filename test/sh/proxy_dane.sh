#!/usr/bin/env bash
# gw-proxy in MX mode (plain listener, no upstream) with tls = dane against a
# real DNSSEC setup on loopback (test/sh/lib/dane.sh: a signed dane.test, an
# unsigned plain.test, a validating resolver as gw-proxy's dns_servers; the
# MX is a Postfix with smtpd TLS, mx-notls an smtp-sink without STARTTLS).
# The client is swaks playing the tenant MTA; one message each:
#   bad.dane.test     TLSA 3 1 1 of another key: 4xx at RCPT, nothing delivered,
#                     the session log says the certificate does not match
#   notls.dane.test   TLSA, destination without STARTTLS: 4xx, the sink never
#                     gets a transaction (never plain text)
#   bogus.dane.test   TLSA changed after signing (SERVFAIL): 4xx, host not tried
#   only.plain.test   unsigned zone, dane-only from tls_domain_policy: 4xx
#   ok.dane.test      TLSA 3 1 1 of the certificate: delivered over TLS, the log
#                     says the host had usable TLSA records
#   next.dane.test    MX 10 mismatching, MX 20 good: delivered through the second
#   plain.test        unsigned zone under dane: delivered (opportunistic TLS)
# Needs root (Postfix), named + dnssec-keygen + dnssec-signzone, dig,
# smtp-sink, swaks, openssl.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
# shellcheck source=lib/dane.sh
. "$here/lib/dane.sh"
proxy=$bindir/proxy/gw-proxy
[ -x "$proxy" ] || { echo "FAIL: $proxy not built" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (Postfix)" >&2; exit 1; }

lab_init
trap 'dane_stop_named; lab_stop_all' EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$LAB/proxy.log" ] && tail -n 10 "$LAB/proxy.log" >&2
	[ -f "$LAB/session.log" ] && tail -n 40 "$LAB/session.log" >&2
	exit 1
}

sp=$(lab_port)   # the destinations' SMTP port (smtp_port), also in the TLSA owner names
auth=$(lab_port) # authoritative named
res=$(lab_port)  # validating resolver
pp=$(lab_port)

dane_certs
dane_dns_start "$sp" "$auth" "$res"
dane_dest_start "$sp" u@ok.dane.test u@bad.dane.test u@notls.dane.test u@plain.test u@only.plain.test \
	u@bogus.dane.test u@next.dane.test

printf 'only.plain.test dane-only\n' >"$LAB/tls_domain_policy"
c=$LAB/gw-proxy.conf
cp "$LAB_SRC/etc/gw-proxy.conf" "$c"
lab_conf_set "$c" state_file "" # memory only: never the system's state file
lab_conf_set "$c" listen "[127.0.0.1]:$pp"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file ""
lab_conf_set "$c" session_log "$LAB/session.log"
lab_conf_set "$c" log stderr
lab_conf_set "$c" tls dane
lab_conf_set "$c" tls_domain_policy "$LAB/tls_domain_policy"
lab_conf_set "$c" dns_servers "127.0.0.1:$res"
lab_conf_set "$c" smtp_port "$sp"
lab_conf_set "$c" connect_timeout 2s
"$proxy" -n -c "$c" || fail "gw-proxy -n refused the configuration"
lab_bg proxy "$proxy" -f -c "$c"
lab_wait_port "$pp" 10 || fail "gw-proxy does not listen"

mailbox() { find "$LAB/dest/mail/$1/new" -type f 2>/dev/null | wc -l; }
wait_mail() { for _ in $(seq 300); do [ "$(mailbox "$1")" -ge 1 ] && return 0; sleep 0.1; done; return 1; }
send() { lab_swaks "$pp" "$LAB/t-$1" --to "$1" --header "Subject: $1"; }
rcpt() { lab_rcpt_reply "$LAB/t-$1" "$1"; }
# the session log's lines of the (one) session to ADDR's domain: its summary says dest=DOMAIN
session() {
	local sid
	sid=$(awk -v d=" dest=${1#*@} " '/ == / && index($0, d) { print $2; exit }' "$LAB/session.log")
	[ -n "$sid" ] && grep " $sid " "$LAB/session.log"
}

# refusals first: 4xx, never plain text, nothing delivered
send u@bad.dane.test
r=$(rcpt u@bad.dane.test)
[[ $r == 4[0-9][0-9]* ]] || fail "bad.dane.test: want 4xx, got $r"
session u@bad.dane.test | grep -q "does not match the TLSA records" || fail "bad.dane.test: no mismatch in the log"
echo "ok: TLSA 3 1 1 not matching: $r"

send u@notls.dane.test
r=$(rcpt u@notls.dane.test)
[[ $r == 4[0-9][0-9]* ]] || fail "notls.dane.test: want 4xx, got $r"
grep -q 'RCPT TO' "$LAB/sink.log" 2>/dev/null && fail "the destination without STARTTLS got a transaction"
echo "ok: TLSA but no STARTTLS: $r"

send u@bogus.dane.test
r=$(rcpt u@bogus.dane.test)
[[ $r == 451\ 4.7.5* ]] || fail "bogus.dane.test: want 451 4.7.5, got $r"
session u@bogus.dane.test | grep -q "not tried: TLSA lookup" || fail "bogus.dane.test: log"
session u@bogus.dane.test | grep -q "|> connect" && fail "bogus.dane.test: a host was connected"
echo "ok: bogus TLSA (SERVFAIL from the validator): $r, no connection"

send u@only.plain.test
r=$(rcpt u@only.plain.test)
[[ $r == 451\ 4.7.5* ]] || fail "only.plain.test: want 451 4.7.5, got $r"
session u@only.plain.test | grep -q "dane-only: mx.plain.test not tried: dane-only: the MX records are not DNSSEC" ||
	fail "only.plain.test: log"
echo "ok: unsigned zone under dane-only (tls_domain_policy): $r"

for a in u@bad.dane.test u@notls.dane.test u@bogus.dane.test u@only.plain.test; do
	[ "$(mailbox "$a")" -eq 0 ] || fail "$a got mail"
done

# deliveries
send u@ok.dane.test
r=$(rcpt u@ok.dane.test)
[[ $r == 250* ]] || fail "ok.dane.test: $r"
grep -q "^<- *250 " "$LAB/t-u@ok.dane.test" || fail "ok.dane.test: not accepted"
wait_mail u@ok.dane.test || fail "ok.dane.test: nothing in the mailbox"
session u@ok.dane.test | grep -q "dane: mx-ok.dane.test: tlsa, 1 TLSA record" || fail "ok.dane.test: no DANE in the log"
session u@ok.dane.test | grep -qE "tls dane$" || fail "ok.dane.test: not connected under dane"
session u@ok.dane.test | grep -qE ' == .*tls_out="TLSv1\.[23] ' || fail "ok.dane.test: no TLS in the summary"
echo "ok: matching DANE-EE 3 1 1: delivered over TLS"

send u@next.dane.test
r=$(rcpt u@next.dane.test)
[[ $r == 250* ]] || fail "next.dane.test: $r"
wait_mail u@next.dane.test || fail "next.dane.test: nothing in the mailbox"
session u@next.dane.test | grep -q "does not match the TLSA records" || fail "next.dane.test: the first MX was not refused"
echo "ok: the first MX fails DANE, the second delivers"

send u@plain.test
r=$(rcpt u@plain.test)
[[ $r == 250* ]] || fail "plain.test: $r"
wait_mail u@plain.test || fail "plain.test: nothing in the mailbox"
session u@plain.test | grep -q "(MX not DNSSEC-validated): unsigned-mx" || fail "plain.test: log"
echo "ok: unsigned zone under dane: delivered opportunistically"
echo PASS
