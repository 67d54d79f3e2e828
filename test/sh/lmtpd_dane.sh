#!/usr/bin/env bash
# gw-lmtpd with tls = dane (RFC 7672) against a real DNSSEC setup on loopback:
#   - an authoritative BIND for dane.test, signed here (dnssec-keygen,
#     dnssec-signzone), and for plain.test, unsigned;
#   - a validating BIND resolver with a static trust anchor for dane.test that
#     forwards both zones to the first; gw-lmtpd's dns_servers is this one;
#   - the destination MX is a Postfix with smtpd TLS and a certificate made
#     here with openssl req; mx-notls.dane.test is an smtp-sink (no STARTTLS).
# Cases, one message each:
#   ok.dane.test        TLSA 3 1 1 of the certificate: delivered, dane=verified
#   bad.dane.test       TLSA 3 1 1 of another key: 4xx, nothing delivered, the log
#                       says the certificate does not match
#   notls.dane.test     TLSA, destination without STARTTLS: 4xx, nothing delivered
#   plain.test          unsigned zone under dane: delivered (opportunistic TLS)
#   only.plain.test     unsigned zone under dane-only (tls_policy): 4xx
#   ta.dane.test        TLSA 2 0 1 of the CA that issued the certificate (and a
#                       PKIX-TA record, ignored): delivered, dane=verified
#   taname.dane.test    the same TLSA, but the certificate does not name the MX
#                       host (DANE-TA checks names): 4xx
#   bogus.dane.test     a TLSA record changed after signing: the resolver answers
#                       SERVFAIL, 4xx without connecting
#   next.dane.test      MX 10 the mismatching host, MX 20 the good one: delivered
#                       through the second in the same transaction
#   expired.dane.test   TLSA 3 1 1 of an expired self-signed certificate naming
#                       another host (served by SNI): delivered, dane=verified
#   ok.dane.test again  over the connection kept from the first: dane=verified
# The refusals come first, with gw-lmtpd's health check on: hosts DANE refused
# must not read as "the gateway cannot reach the outside".
# Also: gw-send refuses -T dane (no TLSA records to give).
# Needs root (Postfix), named + dnssec-keygen + dnssec-signzone (bind9,
# bind9-utils), dig, smtp-sink, swaks, openssl.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
# shellcheck source=lib/dane.sh
. "$here/lib/dane.sh"
lmtpd=$bindir/lmtp/gw-lmtpd
[ -x "$lmtpd" ] || { echo "FAIL: $lmtpd not built" >&2; exit 1; }

lab_init
trap 'dane_stop_named; lab_stop_all' EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$LAB/lmtpd.log" ] && tail -n 30 "$LAB/lmtpd.log" >&2
	[ -f "$LAB/dest/maillog" ] && grep -iE 'tls|warning|error' "$LAB/dest/maillog" | tail -n 10 >&2
	exit 1
}

# gw-send has no TLSA records to give: its -T refuses dane.
out=$("$bindir/lmtp/gw-send" -T dane -f a@internal.test -g 127.0.0.1:1 b@dane.test </dev/null 2>&1) &&
	fail "gw-send -T dane accepted"
[[ $out == *"bad value for -T: dane"* ]] || fail "gw-send -T dane: $out"

sp=$(lab_port)    # the destinations' SMTP port (smtp_port), also in the TLSA owner names
auth=$(lab_port)  # authoritative named
res=$(lab_port)   # validating resolver
lmtp=$(lab_port)

# --- certificates, the zones (dane.test signed), both named (lib/dane.sh)
dane_certs
dane_dns_start "$sp" "$auth" "$res"
echo "ok: signed zone validates, unsigned does not"

# --- the destinations: Postfix with smtpd TLS on 127.0.0.1, smtp-sink without TLS on 127.0.0.2
dane_dest_start "$sp" u@ok.dane.test u@bad.dane.test u@notls.dane.test u@plain.test u@only.plain.test \
	u@ta.dane.test u@taname.dane.test u@bogus.dane.test u@next.dane.test u@expired.dane.test

# --- gw-lmtpd: tls = dane, dane-only for only.plain.test
printf 'only.plain.test dane-only\n' >"$LAB/tls_policy"
c=$LAB/gw-lmtpd.conf
cp "$LAB_SRC/etc/gw-lmtpd.conf" "$c"
lab_conf_set "$c" listen "[127.0.0.1]:$lmtp"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file "$LAB/pid"
lab_conf_set "$c" spool_dir "$LAB"
lab_conf_set "$c" log stderr
lab_conf_set "$c" tls dane
lab_conf_set "$c" tls_policy "$LAB/tls_policy"
lab_conf_set "$c" dns_servers "127.0.0.1:$res"
lab_conf_set "$c" dns_timeout 5s
lab_conf_set "$c" smtp_port "$sp"
lab_conf_set "$c" connect_timeout 2s
lab_conf_set "$c" dest_idle 1
lab_conf_set "$c" idle_time 120s # longer than any pause between two messages here, however loaded
# The health check is on: the DANE refusals below come first, at several destinations,
# and must not read as "cannot reach the outside" (the later sessions would get 421).
lab_conf_set "$c" health_failures 2
"$lmtpd" -n -c "$c" >/dev/null || fail "gw-lmtpd -n refused the configuration"
lab_bg lmtpd "$lmtpd" -f -c "$c"
lab_wait_port "$lmtp" 10 || fail "gw-lmtpd does not listen"

# lmtp OUT RCPT: one LMTP transaction; OUT gets swaks' transcript
lmtp() {
	timeout 90 swaks --protocol LMTP --server 127.0.0.1 --port "$lmtp" --helo internal.test \
		--from sender@internal.test --to "$2" --timeout 60 --header "Subject: $2" >"$1" 2>&1 || true
}
# the first final reply after the dot; "none" when there was none (a refused session)
final() {
	awk '/^ -> \.$/ { on = 1; next } on && /^ *<(-|\*\*) / && !/^ *<(-|\*\*) *221 / { sub(/^ *<(-|\*\*) */, ""); print; exit }' "$1" |
		grep . || echo "none: $(tail -n 3 "$1" | tr '\n' ' ')"
}
logline() { { grep "to=<$1>" "$LAB/lmtpd.log" || true; } | tail -1; }
mailbox() { find "$LAB/dest/mail/$1/new" -type f 2>/dev/null | wc -l; }
# wait_mail ADDR: until the destination has put one message in ADDR's mailbox (bounded)
wait_mail() { for _ in $(seq 150); do [ "$(mailbox "$1")" -ge 1 ] && return 0; sleep 0.1; done; return 1; }

lmtp "$LAB/t-bad" u@bad.dane.test
f=$(final "$LAB/t-bad")
[[ $f == 4[0-9][0-9]* ]] || fail "bad.dane.test: want 4xx, got $f"
l=$(logline u@bad.dane.test)
[[ $l == *"state=tempfail"* && $l == *" dane=failed "* && $l == *"does not match the TLSA records"* ]] ||
	fail "bad.dane.test log: $l"
echo "ok: TLSA not matching: $f"

lmtp "$LAB/t-notls" u@notls.dane.test
f=$(final "$LAB/t-notls")
[[ $f == 4[0-9][0-9]* ]] || fail "notls.dane.test: want 4xx, got $f"
l=$(logline u@notls.dane.test)
[[ $l == *"state=tempfail"* && $l == *" dane=failed "* && $l == *"STARTTLS"* ]] || fail "notls.dane.test log: $l"
grep -q 'RCPT TO' "$LAB/sink.log" 2>/dev/null && fail "the no-STARTTLS destination got a transaction"
echo "ok: TLSA but no STARTTLS: $f"

lmtp "$LAB/t-taname" u@taname.dane.test
f=$(final "$LAB/t-taname")
[[ $f == 4[0-9][0-9]* ]] || fail "taname.dane.test: want 4xx, got $f"
l=$(logline u@taname.dane.test)
[[ $l == *"state=tempfail"* && $l == *" dane=failed "* && $l == *"hostname mismatch"* ]] ||
	fail "taname.dane.test log: $l"
echo "ok: DANE-TA with a certificate not naming the MX host: $f"

lmtp "$LAB/t-bogus" u@bogus.dane.test
f=$(final "$LAB/t-bogus")
[[ $f == 4[0-9][0-9]* ]] || fail "bogus.dane.test: want 4xx, got $f"
l=$(logline u@bogus.dane.test)
[[ $l == *"state=tempfail"* && $l == *" dane=tlsa-lookup-failed "* && $l == *"TLSA lookup"* ]] ||
	fail "bogus.dane.test log: $l"
echo "ok: bogus TLSA (SERVFAIL from the validator): $f"

lmtp "$LAB/t-ok" u@ok.dane.test
f=$(final "$LAB/t-ok")
[[ $f == 250* ]] || fail "ok.dane.test: $f"
l=$(logline u@ok.dane.test)
[[ $l == *"state=delivered"* && $l == *" dane=verified "* && $l == *'tls="TLS'* ]] || fail "ok.dane.test log: $l"
wait_mail u@ok.dane.test || fail "ok.dane.test: nothing in the mailbox"
echo "ok: matching DANE-EE 3 1 1: delivered, dane=verified"

# A second message to ok.dane.test goes over the kept connection, still verified.
lmtp "$LAB/t-ok2" u@ok.dane.test
f=$(final "$LAB/t-ok2")
[[ $f == 250* ]] || fail "ok.dane.test again: $f"
l=$(logline u@ok.dane.test)
[[ $l == *"state=delivered"* && $l == *" dane=verified "* ]] || fail "ok.dane.test again, log: $l"
echo "ok: a kept connection is reused under the same TLSA records"

lmtp "$LAB/t-ta" u@ta.dane.test
f=$(final "$LAB/t-ta")
[[ $f == 250* ]] || fail "ta.dane.test: $f"
l=$(logline u@ta.dane.test)
[[ $l == *"state=delivered"* && $l == *" dane=verified "* ]] || fail "ta.dane.test log: $l"
wait_mail u@ta.dane.test || fail "ta.dane.test: nothing in the mailbox"
echo "ok: DANE-TA 2 0 1 of the issuing CA (and a PKIX-TA record ignored): delivered, dane=verified"

lmtp "$LAB/t-plain" u@plain.test
f=$(final "$LAB/t-plain")
[[ $f == 250* ]] || fail "plain.test: $f"
l=$(logline u@plain.test)
[[ $l == *"state=delivered"* && $l == *" dane=unsigned-mx "* && $l == *'tls="TLS'* ]] || fail "plain.test log: $l"
wait_mail u@plain.test || fail "plain.test: nothing in the mailbox"
echo "ok: unsigned zone under dane: delivered opportunistically"

lmtp "$LAB/t-only" u@only.plain.test
f=$(final "$LAB/t-only")
[[ $f == 4[0-9][0-9]* ]] || fail "only.plain.test: want 4xx, got $f"
l=$(logline u@only.plain.test)
[[ $l == *"state=tempfail"* && $l == *"not DNSSEC-validated"* ]] || fail "only.plain.test log: $l"
echo "ok: unsigned zone under dane-only: $f"

lmtp "$LAB/t-next" u@next.dane.test
f=$(final "$LAB/t-next")
[[ $f == 250* ]] || fail "next.dane.test: $f"
l=$(logline u@next.dane.test)
[[ $l == *"state=delivered"* && $l == *"host=mx-ok.dane.test:$sp"* && $l == *" dane=verified "* ]] ||
	fail "next.dane.test log: $l"
wait_mail u@next.dane.test || fail "next.dane.test: nothing in the mailbox"
echo "ok: the first MX fails DANE, the second delivers"

lmtp "$LAB/t-expired" u@expired.dane.test
f=$(final "$LAB/t-expired")
[[ $f == 250* ]] || fail "expired.dane.test: $f"
l=$(logline u@expired.dane.test)
[[ $l == *"state=delivered"* && $l == *" dane=verified "* ]] || fail "expired.dane.test log: $l"
echo "ok: DANE-EE ignores the certificate's dates and names (expired, CN=expired.invalid): delivered"

# Nothing reached the mailboxes of the refused recipients.
for a in u@bad.dane.test u@notls.dane.test u@only.plain.test u@taname.dane.test u@bogus.dane.test; do
	[ "$(mailbox "$a")" -eq 0 ] || fail "$a got mail"
done
st=$(timeout 10 "$lmtpd" -C "$LAB/control" stats)
[[ $st == *"dane_verified=5 "* && $st == *"dane_failed=5 "* && $st == *"connections_reused=1 "* ]] ||
	fail "stats: $st"
echo "ok: stats $st"
echo PASS
