# shellcheck shell=bash
# dane.sh - a DNSSEC lab on loopback for the DANE tests (sourced after lab.sh):
# certificates made with openssl, a signed zone dane.test and an unsigned
# plain.test on an authoritative BIND, a validating BIND resolver with a
# static trust anchor for dane.test, and the destination MX (Postfix with
# smtpd TLS on 127.0.0.1, smtp-sink without STARTTLS on 127.0.0.2).
#
#   dane_certs                  certificates in $LAB; sets DANE_GOOD, DANE_OTHER,
#                               DANE_CA, DANE_EXPIRED (SHA2-256 digests)
#   dane_dns_start SP AUTH RES  the zones (TLSA owners at _SP._tcp), both named
#                               started and checked: dane.test validates, plain.test not
#   dane_dest_start SP ADDR...  the destinations on port SP, mailboxes ADDR...
#   dane_stop_named             stop both named by PID (call it from the EXIT trap)
#
# The names in dane.test:
#   ok        MX mx-ok, TLSA 3 1 1 of the certificate        bad     TLSA 3 1 1 of another key
#   notls     MX on 127.0.0.2 (no STARTTLS), TLSA            ta      TLSA 2 0 1 of the CA (+ PKIX-TA)
#   taname    TLSA 2 0 1, certificate not naming the host    bogus   TLSA changed after signing
#   next      MX 10 mx-bad, MX 20 mx-ok                      expired TLSA 3 1 1 of an expired cert (SNI)
# plain.test and only.plain.test: unsigned, MX mx.plain.test (the same Postfix).
# Needs fail() from the caller, named + dnssec-keygen + dnssec-signzone, dig, openssl, smtp-sink.

NAMED_PIDS=()
dane_stop_named() {
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
dane_certs() {
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
	DANE_GOOD=$good DANE_OTHER=$other DANE_CA=$ca DANE_EXPIRED=$expired
}

# start_named DIR PORT: named -g on that config, until it answers (bounded)
dane_start_named() {
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

dane_dns_start() {   # SP AUTH RES
	local sp=$1 auth=$2 res=$3 z r anchor good=$DANE_GOOD other=$DANE_OTHER ca=$DANE_CA expired=$DANE_EXPIRED
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
	dane_start_named "$z" "$auth" || fail "authoritative named did not start"
	dane_start_named "$r" "$res" || fail "resolver named did not start"
	# The resolver validates dane.test (AD) and not plain.test.
	dig @127.0.0.1 -p "$res" +dnssec +time=2 +tries=1 ok.dane.test MX | grep -q 'flags:.* ad[ ;]' ||
		fail "the resolver does not validate dane.test: $(dig @127.0.0.1 -p "$res" +dnssec ok.dane.test MX)"
	dig @127.0.0.1 -p "$res" +dnssec +time=2 +tries=1 plain.test MX | grep -q 'flags:.* ad[ ;]' &&
		fail "plain.test should not validate"
	return 0
}

dane_dest_start() {   # SP ADDR...
	local sp=$1
	shift
	lab_internal_start dest "$sp" "$@" || fail "destination Postfix did not start"
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
	return 0
}
