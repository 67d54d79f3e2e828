#!/bin/bash
# milter_directory.sh - gw-milter's directory check end to end, driven over
# the milter protocol by miltertest, against a real OpenLDAP slapd
# (lib/ldap.sh) and a small HTTPS directory (lib/http_dir.py, with a
# certificate made here). Usage: milter_directory.sh BUILD_DIR
#
# LDAP (routes: example.org in mode directory with its internal MTA down,
# both.test in mode directory+callahead with a gw-fakepeer as internal MTA
# and its own URL template (directory_urls),
# ca.test in mode callahead; the milter binds with a credentials file):
#   known user, alias (mailLocalAddress), group address -> accept, no probe;
#   unknown -> 550 5.1.1; injection attempts ("*", "a*", "*)(uid=*", "\")
#   -> 550, and slapd's log shows every filter with the template's structure
#   and the values escaped; a second lookup answered from the cache (no
#   search); directory+callahead: known -> probed and accepted, unknown ->
#   550 without a probe; callahead route -> directory not asked; LDAP
#   connections reused: the ten searches over one bound connection per
#   directory (slapd's conn= numbers), never a search repeated; the bind DN
#   seen by slapd, the password never in the milter's log; slapd stopped
#   (SIGSTOP) -> 451 4.4.3 at directory_timeout, never 550, and in
#   directory+callahead mode the call-ahead decides; slapd continued ->
#   answers again; slapd restarted between lookups (pooled connections
#   dead) -> the right verdicts (accept, 550), never 451, over new
#   connections; slapd killed -> 451 4.4.3 at once; control stats count the
#   answers by kind.
# LDAP over TLS (slapd with a certificate made here): ldaps:// with
#   directory_ca_file -> accept and 550 over one reused TLS connection;
#   StartTLS asked by the URL extension
#   (slapd's log shows the StartTLS operation before the bind) -> accept and
#   550; ldaps://localhost (a name the certificate does not carry) -> 451,
#   never accept; -n refuses an unknown critical extension.
# HTTPS: 200 -> accept, 404 -> 550, 500 -> 451, wrong content (no
#   directory_http_expect text) -> 451, a server that does not answer -> 451
#   at the timeout; hostile local parts (\"a%2f..\", \"../\", \"?#\", "&") reach the
#   server as one percent-encoded path segment (its log shows the raw path);
#   Basic credentials sent, never logged; without directory_ca_file the
#   test's certificate is not trusted -> 451, never accept; server gone ->
#   451.
set -u

# shellcheck source=lib/milter_harness.sh
. "$(dirname "$0")/lib/milter_harness.sh"
mh_init milter-directory "${1:-}"
# shellcheck source=lib/ldap.sh
. "$SRC/test/sh/lib/ldap.sh"
for t in slapd slapadd ldapsearch openssl /usr/bin/python3; do
	command -v "$t" >/dev/null || { echo "FAIL: $t not installed (scripts/install-deps)"; exit 1; }
done
HTTP_PID=
stop_all() {
	ldap_stop
	[ -n "$HTTP_PID" ] && kill "$HTTP_PID" 2>/dev/null && wait "$HTTP_PID" 2>/dev/null
	mh_cleanup
}
trap stop_all EXIT

# dset FILE KEY VALUE: like set_key, for values with any character (an LDAP filter has '|').
dset() {
	grep -q "^$2 =" "$1" || bad "etc/gw.conf has no key $2"
	K=$2 V=$3 awk '$0 ~ "^" ENVIRON["K"] " =" { print ENVIRON["K"] " = " ENVIRON["V"]; next } { print }' \
		"$1" >"$1.new" && mv "$1.new" "$1"
}

DIR_TIMEOUT_MS=2000
MARGIN_MS=3000 # a loaded 2-core machine; the point is "not the 20 s deadline"

# --- LDAP ------------------------------------------------------------------------------

ldap_start || { echo "FAIL: slapd did not start"; exit 1; }
ok "slapd on $LDAP_URI"

# both.test: carol (directory: exists) probed in message 1; dave (asked while slapd is stopped) in message 2.
cat >"$T/both.script" <<'EOF'
send 220 both.test ESMTP
expect EHLO
send 250 both.test
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<carol@both.test>
send 250 2.1.5 ok
expect RSET
send 250 ok
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<dave@both.test>
send 250 2.1.5 ok
expect RSET
send 250 ok
EOF
cat >"$T/ca.script" <<'EOF'
send 220 ca.test ESMTP
expect EHLO
send 250 ca.test
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<zed@ca.test>
send 250 2.1.5 ok
expect RSET
send 250 ok
EOF
# both's pooled session waits from message 1 to message 2, across the stopped-slapd lookups
# (directory_timeout each): on a loaded machine longer than the peer's default 20 s per line.
start_peer both 1 -t 90000
start_peer ca
DOWN_PORT=$(free_port)
cat >"$T/routes" <<EOF
example.org  smtp:[127.0.0.1]:$DOWN_PORT
both.test    smtp:[127.0.0.1]:$(peer_port both)
ca.test      smtp:[127.0.0.1]:$(peer_port ca)
example.com  smtp:[127.0.0.1]:$DOWN_PORT
EOF
printf '%s\n%s\n' "$LDAP_ROOTDN" "$LDAP_ROOTPW" >"$T/ldap.cred"
chmod 600 "$T/ldap.cred"
LDAP_TMPL="$LDAP_URI/dc=example,dc=org?dn?sub?(|(mail={rcpt})(mailLocalAddress={rcpt}))"
mh_conf ldap connect_timeout=2s reply_timeout=5s deadline=8s unknown_limit=0 pool_max_idle=90s \
	"directory_routes=example.org=directory, both.test=directory+callahead" \
	directory_timeout=2s "directory_credentials=$T/ldap.cred"
dset "$CONF" directory_url "$LDAP_TMPL"
# both.test has its own directory (directory_urls): another base and filter
printf '# route key, template\nboth.test %s\n' "$LDAP_URI/ou=people,dc=example,dc=org?dn?one?(mail={rcpt})" >"$T/dir.urls"
set_key "$CONF" directory_urls "$T/dir.urls"

out=$("$MILTER" -n -c "$CONF" 2>&1)
check "-n accepts the directory configuration ($out)" [ $? -eq 0 ]
cp "$CONF" "$T/bad1.conf"
set_key "$T/bad1.conf" directory_url "ldap://127.0.0.1:1/uid={local},dc=example,dc=org?dn?base?(objectClass=*)"
line=$(grep -n '^directory_url =' "$T/bad1.conf" | cut -d: -f1)
out=$("$MILTER" -n -c "$T/bad1.conf" 2>&1)
[ $? -eq 78 ] && [[ $out == *"bad1.conf:$line: directory_url: URL template: {local} outside the LDAP filter"* ]]
verdict $? "-n refuses a placeholder in the base DN ($out)"
chmod 640 "$T/ldap.cred"
out=$("$MILTER" -n -c "$CONF" 2>&1)
[ $? -eq 78 ] && [[ $out == *"directory_credentials"*"readable by group or others"* ]] && none_of "$LDAP_ROOTPW" "$out"
verdict $? "-n refuses a credentials file others can read, without showing it ($out)"
chmod 600 "$T/ldap.cred"

milter_start ldap || exit 1

cat >"$T/ldap1.lua" <<'EOF'
local c = open("192.0.2.7")
mail(c, "QL1")
rcpt(c, "alice@example.org")
rcpt(c, "al@example.org")
rcpt(c, "staff@example.org")
rcpt(c, "nobody@example.org")
rcpt(c, "*@example.org")
rcpt(c, "a*@example.org")
rcpt(c, '"*)(uid=*"@example.org')
rcpt(c, '"a\\\\b"@example.org')
rcpt(c, "alice@example.org")
rcpt(c, "carol@both.test")
rcpt(c, "nobody@both.test")
rcpt(c, "zed@ca.test")
finish(c)
mt.disconnect(c)
EOF
run_lua ldap1
expect alice@example.org continue accept directory -
want_eq "alice: directory answered, then the cache" "$(grep -F ' rcpt=alice@example.org ' "$LOG" | grep ': rcpt ' | sed -n 's/.* dir=\([^ ]*\).*/\1/p' | paste -sd' ')" "exists/ldap exists/cache"
expect al@example.org continue accept directory -
expect staff@example.org continue accept directory -
expect nobody@example.org replycode reject directory 550 \
	"550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown"
want_eq "nobody: directory said unknown" "$(field "$(logline nobody@example.org)" dir)" "unknown/ldap"
expect '*@example.org' replycode reject directory 550
expect 'a*@example.org' replycode reject directory 550
expect '"*)(uid=*"@example.org' replycode reject directory 550
l=$(grep ': rcpt ' "$LOG" | grep -F 'rcpt="a\\\\b"@example.org ' | tail -1)
want_eq "quoted backslash: 550 from the directory" "$(field "$l" verdict) $(field "$l" source) $(field "$l" reply)" "reject directory 550"
expect carol@both.test continue accept new -
want_eq "carol: directory exists, then probed" "$(field "$(logline carol@both.test)" dir)" "exists/ldap"
expect nobody@both.test replycode reject directory 550
expect zed@ca.test continue accept new -
want_eq "callahead route: directory not asked" "$(field "$(logline zed@ca.test)" dir)" "-"

# Pooled connections: a lookup is one search round trip (connecting and binding only the first time).
med=$(grep ': rcpt ' "$LOG" | grep -F 'dir=' | grep -F '/ldap' | sed -n 's/.* ms=\([0-9]*\) .*/\1/p' | sort -n |
	awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
want_le "median LDAP lookup (connect, bind, search) in ms" "$med" 100

# slapd's view: every filter has the template's structure, values escaped (\2A, \28, \29, \5C).
ldap_wait_log 'filter="\(\|\(mail=nobody@both.test\)' 5
srch=$(grep -o 'SRCH base=.*' "$LDAP_LOG" | grep -v 'scope=0' | sed -n 's/.* filter="\(.*\)"$/\1/p')
n_srch=$(wc -l <<<"$srch")
want_eq "searches: one per recipient not cached" "$n_srch" 10
bad_f=$(grep -vE '^(\(\|\(mail=[^()*]+\)\(mailLocalAddress=[^()*]+\)\)|\(mail=[^()*]+@both.test\))$' <<<"$srch")
check "every filter kept the template's structure (odd: '$bad_f')" [ -z "$bad_f" ]
check "'*' searched as a literal" grep -qF 'filter="(|(mail=\2A@example.org)(mailLocalAddress=\2A@example.org))"' "$LDAP_LOG"
check "'*)(uid=*' searched as a literal" grep -qF '(mail="\2A\29\28uid=\2A"@example.org)' "$LDAP_LOG"
check "'\\' searched as a literal" grep -qF '(mail="a\5C\5Cb"@example.org)' "$LDAP_LOG"
check "both.test searched with its own URL (directory_urls)" \
	grep -qF 'SRCH base="ou=people,dc=example,dc=org" scope=1 deref=0 filter="(mail=carol@both.test)"' "$LDAP_LOG"
check "slapd saw the bind DN from the credentials file" grep -qF "BIND dn=\"$LDAP_ROOTDN\" method=128" "$LDAP_LOG"
check "the password is not in the milter's log" none_of "$LDAP_ROOTPW" "$(cat "$LOG")"
# Connection reuse (libgw/dir_ldap.c): the readiness check's connection, then one per directory
# (example.org's and both.test's templates), each bound once; every search on one of them.
n_conn=$(grep -c 'ACCEPT from' "$LDAP_LOG")
want_eq "LDAP connections: the readiness check's and one per directory" "$n_conn" 3
want_eq "one bind per milter connection" "$(grep -c "BIND dn=\"$LDAP_ROOTDN\" method=128" "$LDAP_LOG")" 2
want_eq "searches over those two connections" \
	"$(grep -E 'op=[0-9]+ SRCH base=' "$LDAP_LOG" | grep -v 'scope=0' | grep -o 'conn=[0-9]*' | sort -u | wc -l)" 2

# slapd stopped: no answer, ever. 4xx at directory_timeout, never 550; directory+callahead: call-ahead decides.
kill -STOP "$LDAP_PID"
cat >"$T/ldap2.lua" <<'EOF'
local c = open("192.0.2.7")
mail(c, "QL2")
rcpt(c, "robert@example.org")
rcpt(c, "nobody2@example.org")
rcpt(c, "dave@both.test")
finish(c)
mt.disconnect(c)
EOF
run_lua ldap2
kill -CONT "$LDAP_PID"
expect robert@example.org replycode tempfail directory 451 \
	"451 4.4.3 <robert@example.org>: Recipient address verification failed: cannot verify now, try again later"
expect nobody2@example.org replycode tempfail directory 451
want_eq "stopped slapd: directory temporary" "$(field "$(logline nobody2@example.org)" dir)" "temporary/ldap"
want_le "stopped slapd: answered at directory_timeout" "$(ms_of robert@example.org)" $((DIR_TIMEOUT_MS + MARGIN_MS))
expect dave@both.test continue accept pooled -
want_eq "directory+callahead, slapd stopped: the call-ahead decided" "$(field "$(logline dave@both.test)" dir)" "temporary/ldap"
check "the reason is logged at debug" grep -q 'rcpt_directory .*rcpt=robert@example.org dir=temporary/ldap why="timeout"' "$LOG"

# continued: answers again (a recipient not cached yet)
cat >"$T/ldap3.lua" <<'EOF'
local c = open("192.0.2.7")
mail(c, "QL3")
rcpt(c, "bob@example.org")
finish(c)
mt.disconnect(c)
EOF
run_lua ldap3
expect bob@example.org continue accept directory -

# restarted between lookups: the pooled connections are dead; replaced, and the verdicts stay right
accepts_before=$(grep -c 'ACCEPT from' "$LDAP_LOG")
ldap_restart || bad "slapd did not come back"
cat >"$T/ldap5.lua" <<'EOF'
local c = open("192.0.2.7")
mail(c, "QL5")
rcpt(c, "alice.liddell@example.org")
rcpt(c, "nobody5@example.org")
rcpt(c, "nobody5@both.test")
finish(c)
mt.disconnect(c)
EOF
run_lua ldap5
expect alice.liddell@example.org continue accept directory -
expect nobody5@example.org replycode reject directory 550
expect nobody5@both.test replycode reject directory 550
want_eq "after the restart: one new connection per directory (and the readiness check's)" \
	"$(($(grep -c 'ACCEPT from' "$LDAP_LOG") - accepts_before))" 3

# killed: refused at once
ldap_stop
cat >"$T/ldap4.lua" <<'EOF'
local c = open("192.0.2.7")
mail(c, "QL4")
rcpt(c, "robert.gone@example.org")
finish(c)
mt.disconnect(c)
EOF
run_lua ldap4
expect robert.gone@example.org replycode tempfail directory 451
want_le "slapd gone: answered at once" "$(ms_of robert.gone@example.org)" $MARGIN_MS

st=$(ctl stats)
want_eq "stats: call-ahead checks (carol, zed, dave: no probe in directory mode nor for a directory unknown)" \
	"$(sed -n 's/^ok checks=\([0-9]*\).*/\1/p' <<<"$st")" 3
want_eq "stats: directory exists" "$(sed -n 's/.* dir_exists=\([0-9]*\).*/\1/p' <<<"$st")" 7
want_eq "stats: directory unknown" "$(sed -n 's/.* dir_unknown=\([0-9]*\).*/\1/p' <<<"$st")" 8
want_eq "stats: directory temporary" "$(sed -n 's/.* dir_temporary=\([0-9]*\).*/\1/p' <<<"$st")" 4
want_eq "stats: directory cache hits" "$(sed -n 's/.* dir_cache_hits=\([0-9]*\).*/\1/p' <<<"$st")" 1
check "stats: latency buckets ($st)" grep -qE 'dir_ms_max=[0-9]+ dir_ms_le10=[0-9]+ .*dir_ms_over5000=0' <<<"$st"
peer_done both 10
peer_done ca 10
milter_stop

# --- LDAP over TLS ------------------------------------------------------------------------

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$T/ldap.key" -out "$T/ldap.crt" >/dev/null 2>&1 || { bad "openssl req (ldap)"; mh_finish; }
LDAP_TLS_CERT=$T/ldap.crt LDAP_TLS_KEY=$T/ldap.key ldap_start || { bad "slapd with TLS did not start"; mh_finish; }
mh_conf ldaptls connect_timeout=2s reply_timeout=5s deadline=8s unknown_limit=0 \
	"directory_routes=example.org=directory, both.test=directory, example.com=directory" \
	directory_timeout=2s "directory_credentials=$T/ldap.cred" "directory_ca_file=$T/ldap.crt"
dset "$CONF" directory_url "ldaps://127.0.0.1:$LDAPS_PORT/dc=example,dc=org?dn?sub?(|(mail={rcpt})(mailLocalAddress={rcpt}))"
printf 'both.test %s\nexample.com %s\n' "$LDAP_URI/ou=people,dc=example,dc=org?dn?one?(mail={rcpt})?!StartTLS" \
	"ldaps://localhost:$LDAPS_PORT/dc=example,dc=org?dn?sub?(mail={rcpt})" >"$T/dirtls.urls"
set_key "$CONF" directory_urls "$T/dirtls.urls"
cp "$CONF" "$T/badext.conf"
dset "$T/badext.conf" directory_url "$LDAP_URI/dc=example,dc=org?dn?sub?(mail={rcpt})?!x-unknown"
out=$("$MILTER" -n -c "$T/badext.conf" 2>&1)
[ $? -eq 78 ] && [[ $out == *"unsupported critical extension x-unknown"* ]]
verdict $? "-n refuses an unknown critical LDAP extension ($out)"
milter_start ldaptls || exit 1
cat >"$T/ldaptls.lua" <<'EOF'
local c = open("192.0.2.7")
mail(c, "QT1")
rcpt(c, "alice@example.org")
rcpt(c, "nobody@example.org")
rcpt(c, "carol@both.test")
rcpt(c, "nobody@both.test")
rcpt(c, "alice@example.com")
finish(c)
mt.disconnect(c)
EOF
run_lua ldaptls
expect alice@example.org continue accept directory -
expect nobody@example.org replycode reject directory 550
expect carol@both.test continue accept directory -
expect nobody@both.test replycode reject directory 550
check "ldaps:// connection established with TLS" grep -qE 'conn=[0-9]+ fd=[0-9]+ TLS established' "$LDAP_LOG"
# two lookups per directory, one TLS connection each (reused), and the one refused for its name below
want_eq "TLS connections: one per directory, reused" "$(grep -c 'TLS established' "$LDAP_LOG")" 3
check "StartTLS asked on the ldap:// connection" grep -qF 'EXT oid=1.3.6.1.4.1.1466.20037' "$LDAP_LOG"
c_st=$(grep -F 'EXT oid=1.3.6.1.4.1.1466.20037' "$LDAP_LOG" | grep -o 'conn=[0-9]*' | head -1)
check "StartTLS before the bind on that connection" \
	sh -c "grep -E '$c_st (op|fd)=' '$LDAP_LOG' | grep -E 'EXT oid|BIND dn' | head -1 | grep -q 'EXT oid'"
expect alice@example.com replycode tempfail directory 451
check "the reason at debug ($(grep -F 'rcpt=alice@example.com dir=' "$LOG" | tail -1))" \
	grep -qE 'rcpt=alice@example.com dir=temporary/ldap why="connect: ' "$LOG"
# slapd's view: the handshake completed, then the client hung up without a single operation (name refused)
refused=0
for c in $(grep -E 'TLS established' "$LDAP_LOG" | grep -o 'conn=[0-9]*'); do
	if ! grep -qE "$c op=" "$LDAP_LOG" && grep -qE "$c fd=[0-9]+ closed \(connection lost\)" "$LDAP_LOG"; then
		refused=$((refused + 1))
	fi
done
check "a name the certificate does not carry: TLS refused by gw-milter after the handshake ($refused)" [ "$refused" -ge 1 ]
milter_stop
ldap_stop

# --- HTTPS ------------------------------------------------------------------------------

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$T/http.key" -out "$T/http.crt" >/dev/null 2>&1 || { bad "openssl req"; mh_finish; }
HTTP_PORT=$(free_port)
: >"$T/http.req"
/usr/bin/python3 "$SRC/test/sh/lib/http_dir.py" "$HTTP_PORT" "$T/http.req" "$T/http.crt" "$T/http.key" \
	>"$T/http.out" 2>&1 &
HTTP_PID=$!
wait_for 10 sh -c "ss -Hltn 'sport = :$HTTP_PORT' | grep -q ." || bad "HTTP directory did not start ($(tail -2 "$T/http.out"))"
printf 'gw\nsecret-http-pw\n' >"$T/http.cred"
chmod 600 "$T/http.cred"
mh_conf https connect_timeout=2s deadline=8s unknown_limit=0 \
	"directory_url=https://127.0.0.1:$HTTP_PORT/api/mailboxes/{rcpt}" directory_mode=directory \
	directory_timeout=2s "directory_ca_file=$T/http.crt" "directory_credentials=$T/http.cred" \
	"directory_http_expect=exists"
milter_start https || exit 1
cat >"$T/http1.lua" <<'EOF'
local c = open("192.0.2.8")
mail(c, "QH1")
rcpt(c, "alice@example.com")
rcpt(c, "nobody@example.com")
rcpt(c, "err500@example.com")
rcpt(c, "wrong@example.com")
rcpt(c, "slow@example.com")
rcpt(c, '"a%2f.."@example.com')
rcpt(c, '"x/../../admin"@example.com')
rcpt(c, '"a?b#c"@example.com')
rcpt(c, "x&domain=evil@example.com")
finish(c)
mt.disconnect(c)
EOF
run_lua http1
expect alice@example.com continue accept directory -
want_eq "alice: HTTP 200" "$(field "$(logline alice@example.com)" dir)" "exists/http"
expect nobody@example.com replycode reject directory 550 \
	"550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"
expect err500@example.com replycode tempfail directory 451
check "500 named at debug" grep -q 'rcpt=err500@example.com dir=temporary/http why="unexpected status 500"' "$LOG"
expect wrong@example.com replycode tempfail directory 451
check "wrong content named at debug" grep -q 'rcpt=wrong@example.com dir=temporary/http why="status 200 without the expected content"' "$LOG"
expect slow@example.com replycode tempfail directory 451
want_le "no answer: 451 at directory_timeout" "$(ms_of slow@example.com)" $((DIR_TIMEOUT_MS + MARGIN_MS))
expect '"a%2f.."@example.com' replycode reject directory 550
expect '"x/../../admin"@example.com' replycode reject directory 550
expect '"a?b#c"@example.com' replycode reject directory 550
expect 'x&domain=evil@example.com' replycode reject directory 550
paths=$(sed -n 's/^PATH \([^ ]*\) .*/\1/p' "$T/http.req")
for want in /api/mailboxes/alice%40example.com /api/mailboxes/%22a%252f..%22%40example.com \
	/api/mailboxes/%22x%2F..%2F..%2Fadmin%22%40example.com /api/mailboxes/%22a%3Fb%23c%22%40example.com \
	/api/mailboxes/x%26domain%3Devil%40example.com; do
	check "the server saw the path $want" grep -qxF "$want" <<<"$paths"
done
check "every path is one segment under /api/mailboxes/ ($(grep -vE '^/api/mailboxes/[A-Za-z0-9._~%-]+$' <<<"$paths"))" \
	[ -z "$(grep -vE '^/api/mailboxes/[A-Za-z0-9._~%-]+$' <<<"$paths")" ]
n_req=$(grep -c '^PATH' "$T/http.req")
n_ports=$(sed -n 's/.* PORT \([0-9]*\)$/\1/p' "$T/http.req" | sort -u | wc -l)
want_le "HTTP connections reused ($n_req requests; the timeout and the errors close theirs)" "$n_ports" 4
check "Basic credentials sent" grep -qF "AUTH Basic $(printf 'gw:secret-http-pw' | base64)" "$T/http.req"
check "the password is not in the milter's log" none_of "secret-http-pw" "$(cat "$LOG")"
milter_stop

# TLS verification is on by default: the test's certificate is not among the system's trust anchors.
# a generous timeout: the point is the certificate's refusal, which a loaded machine must not turn into a timeout
mh_conf https2 connect_timeout=2s deadline=8s unknown_limit=0 \
	"directory_url=https://127.0.0.1:$HTTP_PORT/api/mailboxes/{rcpt}" directory_mode=directory directory_timeout=6s
milter_start https2 || exit 1
cat >"$T/http2.lua" <<'EOF'
local c = open("192.0.2.8")
mail(c, "QH2")
rcpt(c, "bob@example.com")
finish(c)
mt.disconnect(c)
EOF
run_lua http2
expect bob@example.com replycode tempfail directory 451
check "untrusted certificate named at debug" grep -qiE 'rcpt=bob@example.com dir=temporary/http why=".*certificate' "$LOG"
kill "$HTTP_PID"
wait "$HTTP_PID" 2>/dev/null
HTTP_PID=
cat >"$T/http3.lua" <<'EOF'
local c = open("192.0.2.8")
mail(c, "QH3")
rcpt(c, "staff@example.com")
finish(c)
mt.disconnect(c)
EOF
run_lua http3
expect staff@example.com replycode tempfail directory 451
milter_stop

mh_finish
