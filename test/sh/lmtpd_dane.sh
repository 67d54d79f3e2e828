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
lmtpd=$bindir/lmtp/gw-lmtpd
[ -x "$lmtpd" ] || { echo "FAIL: $lmtpd not built" >&2; exit 1; }

lab_init
NAMED_PIDS=()
stop_named() {
	local pid st s
	for pid in "${NAMED_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || continue
		for _ in $(seq 100); do # at most ~10 s
			st=
			{ read -r s <"/proc/$pid/stat"; } 2>/dev/null && { s=${s##*) }; st=${s%% *}; }
			case $st in '' | Z) break ;; esac
			sleep 0.1
		done
		case $st in '' | Z) ;; *) kill -KILL "$pid" 2>/dev/null ;; esac
		wait "$pid" 2>/dev/null || true
	done
	NAMED_PIDS=()
}
trap 'stop_named; lab_stop_all' EXIT
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

# --- certificates: a CA and the destination's certificate from it (served with the chain),
# and another key for the TLSA that must not match
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=Test DANE CA" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
	-keyout "$LAB/ca.key" -out "$LAB/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=mx-ok.dane.test -keyout "$LAB/mx.key" -out "$LAB/mx.csr" 2>/dev/null
printf 'subjectAltName=DNS:mx-ok.dane.test,DNS:mx-bad.dane.test,DNS:mx-ta.dane.test,DNS:mx.plain.test\n' >"$LAB/mx.ext"
openssl x509 -req -in "$LAB/mx.csr" -CA "$LAB/ca.crt" -CAkey "$LAB/ca.key" -CAcreateserial -days 30 \
	-extfile "$LAB/mx.ext" -out "$LAB/mx.crt" 2>/dev/null
cat "$LAB/mx.crt" "$LAB/ca.crt" >"$LAB/mx-chain.crt"
# mx-expired.dane.test (by SNI): a self-signed certificate that expired yesterday
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=expired.invalid \
	-keyout "$LAB/expired.key" -out "$LAB/expired.csr" 2>/dev/null
openssl x509 -req -in "$LAB/expired.csr" -signkey "$LAB/expired.key" -days -1 -out "$LAB/expired.crt" 2>/dev/null
cat "$LAB/expired.key" "$LAB/expired.crt" >"$LAB/expired-chain.pem"
openssl x509 -in "$LAB/expired.crt" -noout -checkend 0 >/dev/null && fail "the expired certificate has not expired"
expired=$(openssl x509 -in "$LAB/expired.crt" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$LAB/other.key" 2>/dev/null
good=$(openssl x509 -in "$LAB/mx.crt" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
other=$(openssl pkey -in "$LAB/other.key" -pubout -outform DER | sha256sum | cut -d' ' -f1)
ca=$(openssl x509 -in "$LAB/ca.crt" -outform DER | sha256sum | cut -d' ' -f1)
[ ${#good} -eq 64 ] && [ ${#other} -eq 64 ] && [ ${#ca} -eq 64 ] && [ ${#expired} -eq 64 ] ||
	fail "cannot make the certificates"

# --- the zones, dane.test signed
z=$LAB/auth
mkdir -p "$z"
cat >"$z/dane.test.zone" <<ZONE
\$TTL 60
@              IN SOA ns1.dane.test. hostmaster.dane.test. 1 3600 600 86400 60
@              IN NS  ns1.dane.test.
ns1            IN A   127.0.0.1
ok             IN MX  10 mx-ok.dane.test.
bad            IN MX  10 mx-bad.dane.test.
notls          IN MX  10 mx-notls.dane.test.
ta             IN MX  10 mx-ta.dane.test.
taname         IN MX  10 mx-taname.dane.test.
bogus          IN MX  10 mx-bogus.dane.test.
expired        IN MX  10 mx-expired.dane.test.
next           IN MX  10 mx-bad.dane.test.
next           IN MX  20 mx-ok.dane.test.
mx-ok          IN A   127.0.0.1
mx-ta          IN A   127.0.0.1
mx-taname      IN A   127.0.0.1
mx-bogus       IN A   127.0.0.1
mx-expired     IN A   127.0.0.1
mx-bad         IN A   127.0.0.1
mx-notls       IN A   127.0.0.2
_$sp._tcp.mx-ok    IN TLSA 3 1 1 $good
_$sp._tcp.mx-bad   IN TLSA 3 1 1 $other
_$sp._tcp.mx-notls IN TLSA 3 1 1 $good
_$sp._tcp.mx-ta    IN TLSA 2 0 1 $ca
_$sp._tcp.mx-ta    IN TLSA 0 0 1 $other
_$sp._tcp.mx-taname IN TLSA 2 0 1 $ca
_$sp._tcp.mx-bogus IN TLSA 3 1 1 $good
_$sp._tcp.mx-expired IN TLSA 3 1 1 $expired
ZONE
cat >"$z/plain.test.zone" <<ZONE
\$TTL 60
@              IN SOA ns1.plain.test. hostmaster.plain.test. 1 3600 600 86400 60
@              IN NS  ns1.plain.test.
ns1            IN A   127.0.0.1
@              IN MX  10 mx.plain.test.
only           IN MX  10 mx.plain.test.
mx             IN A   127.0.0.1
_$sp._tcp.mx   IN TLSA 3 1 1 $good
ZONE
(cd "$z" && dnssec-keygen -q -K . -a ECDSAP256SHA256 -f KSK dane.test >/dev/null &&
	dnssec-keygen -q -K . -a ECDSAP256SHA256 dane.test >/dev/null &&
	dnssec-signzone -q -S -K . -O full -o dane.test -f dane.test.zone.signed dane.test.zone >/dev/null) ||
	fail "cannot sign dane.test"
# mx-bogus: its TLSA changed after signing, so the signature no longer covers it (bogus data)
awk -v o="$other" '$1 ~ /^_[0-9]+\._tcp\.mx-bogus\./ && $4 == "TLSA" { print $1, $2, $3, $4, 3, 1, 1, o; next } { print }' \
	"$z/dane.test.zone.signed" >"$z/signed.tmp" && mv "$z/signed.tmp" "$z/dane.test.zone.signed"
grep -q "mx-bogus.* TLSA 3 1 1 $other" "$z/dane.test.zone.signed" || fail "cannot spoil mx-bogus's TLSA"
# The KSK's DNSKEY as a static trust anchor for the resolver.
anchor=$(awk '$0 !~ /^;/ { for (d = 1; d <= NF && $d != "DNSKEY"; d++); if (d < NF && $(d + 1) == 257) {
	k = ""; for (i = d + 4; i <= NF; i++) k = k $i; print $(d + 1), $(d + 2), $(d + 3), "\"" k "\"" } }' "$z"/Kdane.test.*.key)
[ -n "$anchor" ] || fail "no KSK found"

cat >"$z/named.conf" <<CONF
options {
    directory "$z"; pid-file "$z/named.pid"; session-keyfile "$z/session.key";
    managed-keys-directory "$z";
    listen-on port $auth { 127.0.0.1; }; listen-on-v6 { none; };
    recursion no; dnssec-validation no; allow-transfer { none; }; notify no;
};
controls { };
zone "dane.test" { type primary; file "$z/dane.test.zone.signed"; };
zone "plain.test" { type primary; file "$z/plain.test.zone"; };
CONF
r=$LAB/resolver
mkdir -p "$r"
cat >"$r/named.conf" <<CONF
options {
    directory "$r"; pid-file "$r/named.pid"; session-keyfile "$r/session.key";
    managed-keys-directory "$r";
    listen-on port $res { 127.0.0.1; }; listen-on-v6 { none; };
    recursion yes; allow-recursion { 127.0.0.0/8; };
    dnssec-validation yes;    // only the anchors below: no root key, no Internet
    querylog yes;
};
controls { };
trust-anchors { "dane.test." static-key $anchor; };
zone "dane.test" { type forward; forward only; forwarders { 127.0.0.1 port $auth; }; };
zone "plain.test" { type forward; forward only; forwarders { 127.0.0.1 port $auth; }; };
CONF

# start_named DIR PORT: named -g on that config, until it answers (bounded)
start_named() {
	local dir=$1 port=$2 pid
	named -g -4 -c "$dir/named.conf" >"$dir/named.log" 2>&1 &
	pid=$!
	NAMED_PIDS+=("$pid")
	for _ in $(seq 150); do # at most ~15 s
		kill -0 "$pid" 2>/dev/null || break
		if grep -q 'running$' "$dir/named.log" &&
			[ -n "$(dig @127.0.0.1 -p "$port" +time=1 +tries=1 +short dane.test SOA 2>/dev/null)" ]; then
			return 0
		fi
		sleep 0.1
	done
	tail -n 20 "$dir/named.log" >&2
	return 1
}
start_named "$z" "$auth" || fail "authoritative named did not start"
start_named "$r" "$res" || fail "resolver named did not start"
# The resolver validates dane.test (AD) and not plain.test.
dig @127.0.0.1 -p "$res" +dnssec +time=2 +tries=1 ok.dane.test MX | grep -q 'flags:.* ad[ ;]' ||
	fail "the resolver does not validate dane.test: $(dig @127.0.0.1 -p "$res" +dnssec ok.dane.test MX)"
dig @127.0.0.1 -p "$res" +dnssec +time=2 +tries=1 plain.test MX | grep -q 'flags:.* ad[ ;]' &&
	fail "plain.test should not validate"
echo "ok: signed zone validates, unsigned does not"

# --- the destinations: Postfix with smtpd TLS on 127.0.0.1, smtp-sink without TLS on 127.0.0.2
lab_internal_start dest "$sp" u@ok.dane.test u@bad.dane.test u@notls.dane.test u@plain.test u@only.plain.test \
	u@ta.dane.test u@taname.dane.test u@bogus.dane.test u@next.dane.test u@expired.dane.test ||
	fail "destination Postfix did not start"
lab_postfix_stop dest
echo 'tlsmgr    unix  - - n 1000? 1 tlsmgr' >>"$LAB/dest/etc/master.cf"
postconf -c "$LAB/dest/etc" -e "smtpd_tls_cert_file = $LAB/mx-chain.crt" "smtpd_tls_key_file = $LAB/mx.key" \
	"smtpd_tls_security_level = may" "smtpd_tls_received_header = yes" \
	"tls_server_sni_maps = hash:$LAB/dest/etc/sni"
printf 'mx-expired.dane.test %s\n' "$LAB/expired-chain.pem" >"$LAB/dest/etc/sni"
postmap -c "$LAB/dest/etc" -F "hash:$LAB/dest/etc/sni" || fail "postmap -F sni"
lab_postfix_start dest || fail "destination Postfix did not start with TLS"
lab_bg sink smtp-sink -u postfix "127.0.0.2:$sp" 100
for _ in $(seq 100); do [ -n "$(ss -Htln "src 127.0.0.2:$sp")" ] && break; sleep 0.1; done

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
