#!/bin/bash
# milter_prvs.sh - gw-milter's BATV/PRVS over the milter protocol: the real
# daemon driven by Debian's miltertest (Lua), gw-fakepeer standing in for the
# internal MTA of example.com. Usage: milter_prvs.sh BUILD_DIR
#
# Covered:
#   signing     an internal client (prvs_internal_networks) and an
#               authenticated one get one smfi_chgfrom at end of message, to a
#               tag that BUILD/milter/gw-prvs verifies back to the sender, with
#               the MAIL FROM parameters kept (the length of the change request
#               miltertest saw); an external client, an already tagged sender,
#               another domain and a prvs_sign_exempt sender are left alone
#   verifying   one bounce to six recipients, each judged on its own: a valid
#               tag (accepted), no tag (550 5.7.1 no-bounce text, no probe), an
#               expired tag (550 5.7.1 expired text), a bad signature, an exempt
#               address, an exempt domain; a bounce from an internal client is
#               not verified; MAILER-DAEMON@ senders before and after enabling
#               prvs_verify_mailer_daemon
#   stripping   smfi_delrcpt of the tagged form and smfi_addrcpt of the plain
#               one at end of message, for a bounce and for ordinary mail, and
#               the probe sent to the internal MTA for the plain address (the
#               peer's record); nothing stripped for rejected recipients nor for
#               one the MTA already refused ({rcpt_mailer} error)
#   keys        gw-milter -n refuses a key file readable by others, naming it;
#               a SIGHUP reload picks up a rotated key file (new signing key,
#               tags of the old key still accepted)
# Shared machinery: lib/milter_harness.sh. Everything on unix sockets and
# loopback in one temporary directory; every process stopped by PID.
set -u

# shellcheck source=lib/milter_harness.sh
. "$(dirname "$0")/lib/milter_harness.sh"
mh_init milter-prvs "${1:-}"
PRVS=$B/milter/gw-prvs
[ -x "$PRVS" ] || { echo "FAIL: $PRVS not built"; exit 1; }

TODAY=$(($(date -u +%s) / 86400))
KEYS=$T/prvs.keys
printf '# test keys\n1 first-secret-1\n2 second-secret-2\nsign 1\n' >"$KEYS"
chmod 600 "$KEYS"
# sign ADDR [DAY]: the tag gw-prvs makes with the test keys
sign() { "$PRVS" --keys "$KEYS" --day "${2:-$TODAY}" sign "$1"; }

# --- the internal MTA: every probe the milter may send, in order ----------------
cat >"$T/a.script" <<'EOF'
send 220 a.test ESMTP fake
expect EHLO
send 250 a.test
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<alice@example.com>
send 250 ok
expect RCPT TO:<list@example.com>
send 250 ok
expect RSET
send 250 ok
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<dan@example.com>
send 250 ok
expect RSET
send 250 ok
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<erin@example.com>
send 250 ok
expect RSET
send 250 ok
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<frank@example.com>
send 250 ok
expect RSET
send 250 ok
EOF
start_peer a
cat >"$T/routes" <<EOF
example.com     smtp:[127.0.0.1]:$(peer_port a)
EOF

mh_conf milter "prvs_keys=$KEYS" "prvs_sign_domains=example.com, example.org, example.net" \
	"prvs_internal_networks=10.0.0.0/8" "prvs_exempt=list@example.com, @example.org" \
	"prvs_sign_exempt=noreply@example.com" connect_timeout=2s reply_timeout=5s deadline=8s

# --- -n and the key file -----------------------------------------------------------
out=$("$MILTER" -n -c "$CONF" 2>&1)
check "-n accepts the PRVS configuration ($out)" [ $? -eq 0 ]
cp "$KEYS" "$T/open.keys"
chmod 644 "$T/open.keys"
cp "$CONF" "$T/bad1.conf"
set_key "$T/bad1.conf" prvs_keys "$T/open.keys"
line=$(grep -n '^prvs_keys =' "$T/bad1.conf" | cut -d: -f1)
out=$("$MILTER" -n -c "$T/bad1.conf" 2>&1)
rc=$?
[ $rc -eq 78 ] && [[ $out == *"$T/bad1.conf:$line:"*"$T/open.keys"* ]]
verdict $? "-n refuses a key file readable by others, naming it (exit $rc: $out)"
cp "$CONF" "$T/bad2.conf"
set_key "$T/bad2.conf" prvs_exempt "postmaster"
out=$("$MILTER" -n -c "$T/bad2.conf" 2>&1)
[ $? -eq 78 ] && [[ $out == *"prvs_exempt"* ]]
verdict $? "-n refuses an exemption without '@' ($out)"

milter_start milter || mh_finish

# --- one run: signing, verifying, stripping ---------------------------------------
VALID=$(sign alice@example.com)
EXPIRED=$(sign carol@example.com $((TODAY - 10)))
t=$(sign gina@example.com)
# the last hex digit of the signature changed
if [ "${t:14:1}" = 0 ]; then BADSIG="${t:0:14}1${t:15}"; else BADSIG="${t:0:14}0${t:15}"; fi
ERIN=$(sign erin@example.com)
IVY=$(sign ivy@example.com)
TAGGED_SENDER=$(sign alice@example.com)
cat >"$T/main.lua" <<EOF
function mail_from(c, qid, from, auth, ...)
  if auth then check(mt.macro(c, SMFIC_MAIL, "i", qid, "{auth_authen}", auth), "macro mail")
  else check(mt.macro(c, SMFIC_MAIL, "i", qid), "macro mail") end
  check(mt.mailfrom(c, from, ...), "mailfrom")
  if mt.getreply(c) ~= SMFIR_CONTINUE then error("MAIL not continued") end
end
-- end of message between markers, so the verbose "cmd e" lines can be told apart
function eom(c, name)
  print("EOM-BEGIN " .. name)
  check(mt.eom(c), "eom")
  print("EOM-END " .. name .. " " .. (mt.getreply(c) == SMFIR_CONTINUE and "continue" or "other"))
end
function rcptmods(c, name, tagged, plain)
  print("DEL " .. name .. " " .. tostring(mt.eom_check(c, MT_RCPTDELETE, "<" .. tagged .. ">")))
  print("ADD " .. name .. " " .. tostring(mt.eom_check(c, MT_RCPTADD, "<" .. plain .. ">")))
end
function message(name, client, qid, from, auth, rcpts, ...)
  local c = open(client)
  mail_from(c, qid, from, auth, ...)
  for _, a in ipairs(rcpts) do rcpt(c, a) end
  eom(c, name)
  return c
end

-- signing
mt.disconnect(message("internal", "10.1.2.3", "Q1", "<alice@example.com>", nil, {"bob@remote.test"}, "SIZE=100", "BODY=8BITMIME"))
mt.disconnect(message("authenticated", "192.0.2.7", "Q2", "<carol@Example.COM>", "carol", {"bob@remote.test"}))
mt.disconnect(message("external", "192.0.2.8", "Q3", "<alice@example.com>", nil, {"bob@remote.test"}))
mt.disconnect(message("tagged", "10.1.2.3", "Q4", "<$TAGGED_SENDER>", nil, {"bob@remote.test"}))
mt.disconnect(message("other", "10.1.2.3", "Q5", "<dave@elsewhere.test>", nil, {"bob@remote.test"}))
mt.disconnect(message("exempt", "10.1.2.3", "Q6", "<noreply@example.com>", nil, {"bob@remote.test"}))
mt.disconnect(message("nullsender", "10.1.2.3", "Q7", "<>", nil, {"bob@remote.test"}))

-- a bounce to six recipients, judged one by one
local b = message("bounce", "192.0.2.9", "Q8", "<>", nil,
  {"$VALID", "bob@example.com", "$EXPIRED", "list@example.com", "x@example.org", "$BADSIG"})
rcptmods(b, "bounce", "$VALID", "alice@example.com")
print("DELBOB " .. tostring(mt.eom_check(b, MT_RCPTDELETE, "<bob@example.com>")))
mt.disconnect(b)

-- MAILER-DAEMON is not a bounce unless configured: probed like any mail
mt.disconnect(message("md-off", "192.0.2.9", "Q9", "<MAILER-DAEMON@remote.test>", nil, {"dan@example.com"}))
-- ordinary mail to a valid tag: stripped, probed stripped
local e = open("192.0.2.9")
mail_from(e, "Q10", "<someone@remote.test>")
rcpt(e, "$ERIN")
rcpt(e, "$IVY", "error") -- the MTA refused it already: never added back at end of message
eom(e, "mail-tag")
rcptmods(e, "mail-tag", "$ERIN", "erin@example.com")
print("ADDIVY " .. tostring(mt.eom_check(e, MT_RCPTADD, "<ivy@example.com>")))
mt.disconnect(e)
-- a bounce from an internal client is not verified
mt.disconnect(message("trusted-bounce", "10.9.9.9", "Q11", "<>", nil, {"frank@example.com"}))
EOF
run_lua main -v -v

# eom_block NAME: the verbose lines miltertest printed during that end of message
eom_block() { sed -n "/^EOM-BEGIN $1\$/,/^EOM-END $1 /p" "$LUA_LAST"; }
# chgfrom_len NAME: length of the change-sender request ('e'), empty if none
chgfrom_len() { eom_block "$1" | sed -n 's/.*cmd e, len \([0-9]*\).*/\1/p'; }
prvsline() { grep ': prvs ' "$LOG" | grep -F "$1" | tail -1; }
# expect_stripped TAGGED PLAIN SOURCE: miltertest saw TAGGED accepted; the
# milter's decision line is for PLAIN (the call-ahead checked the plain address)
expect_stripped() {
	local l
	l=$(logline "$2")
	[ "$(got "$1")" = continue ] && [ "$(field "$l" verdict)" = accept ] && [ "$(field "$l" source)" = "$3" ]
	verdict $? "$1 -> continue, probed as $2 ($l)"
}
signline() { grep ': prvs ' "$LOG" | grep -F "queue=$1 " | grep 'step=sign' | tail -1; }

for n in internal authenticated external tagged other exempt nullsender bounce md-off mail-tag trusted-bounce; do
	check "eom $n continued" grep -q "^EOM-END $n continue" "$LUA_LAST"
done

# signing: the log names the new sender; gw-prvs verifies it; the change request carries it
l=$(signline Q1)
to=$(field "$l" to)
[ "$(field "$l" action)" = sign ] && [ "$("$PRVS" --keys "$KEYS" verify "$to")" = alice@example.com ]
verdict $? "internal client: signed, the tag verifies to alice@example.com ($l)"
check "internal client: key 1, expiry today+7" [ "${to:5:4}" = "1$(printf '%03d' $(((TODAY + 7) % 1000)))" ]
args="SIZE=100 BODY=8BITMIME"
# the request is "<tag>" NUL "parameters" NUL
want=$((${#to} + 2 + 1 + ${#args} + 1))
want_eq "internal client: one smfi_chgfrom of <tag> with the MAIL FROM parameters (bytes)" "$(chgfrom_len internal)" "$want"
l=$(signline Q2)
to=$(field "$l" to)
[ "$(field "$l" action)" = sign ] && [ "$("$PRVS" --keys "$KEYS" verify "$to")" = carol@example.com ]
verdict $? "authenticated client: signed, domain in lower case ($l)"
want_eq "authenticated client: one smfi_chgfrom, no parameters (bytes)" "$(chgfrom_len authenticated)" "$((${#to} + 2 + 1))"
check "external client: no smfi_chgfrom" [ -z "$(chgfrom_len external)" ]
check "external client: no PRVS log line" [ -z "$(signline Q3)" ]
for q in "Q4 tagged already-tagged" "Q5 other other-domain" "Q6 exempt exempt" "Q7 nullsender null-sender"; do
	read -r qid name why <<<"$q"
	l=$(signline "$qid")
	[ -z "$(chgfrom_len "$name")" ] && [ "$(field "$l" action)" = none ] && [ "$(field "$l" why)" = "$why" ]
	verdict $? "$name sender: left unsigned, why=$why ($l)"
done

# verifying: each recipient of the bounce on its own
expect_stripped "$VALID" alice@example.com new
l=$(prvsline "rcpt=$VALID ")
[ "$(field "$l" action)" = strip ] && [ "$(field "$l" plain)" = alice@example.com ] && [ "$(field "$l" bounce)" = yes ]
verdict $? "bounce, valid tag: accepted and stripped ($l)"
expect bob@example.com replycode reject prvs 550 \
	"550 5.7.1 <bob@example.com>: this address sent no mail that could bounce"
expect "$EXPIRED" replycode reject prvs 550 "550 5.7.1 <$EXPIRED>: bounce to an expired address tag"
check "expired tag logged as such" [ "$(field "$(prvsline "rcpt=$EXPIRED ")" tag)" = expired ]
expect "$BADSIG" replycode reject prvs 550 "550 5.7.1 <$BADSIG>: this address sent no mail that could bounce"
expect list@example.com continue accept pooled -
check "exempt address logged as pass" [ "$(field "$(prvsline "rcpt=list@example.com ")" action)" = pass ]
expect x@example.org continue skip noroute -
check "exempt domain logged as pass" [ "$(field "$(prvsline "rcpt=x@example.org ")" action)" = pass ]
check "bounce: tagged recipient deleted at end of message" grep -q '^DEL bounce true' "$LUA_LAST"
check "bounce: plain recipient added at end of message" grep -q '^ADD bounce true' "$LUA_LAST"
check "bounce: nothing done to a rejected recipient" grep -q '^DELBOB false' "$LUA_LAST"
expect dan@example.com continue accept pooled -
check "MAILER-DAEMON sender without the option: no PRVS decision" [ -z "$(prvsline "rcpt=dan@example.com ")" ]
# ordinary mail to a tag
expect_stripped "$ERIN" erin@example.com pooled
check "mail to a valid tag: deleted and re-added plain" \
	bash -c "grep -q '^DEL mail-tag true' '$LUA_LAST' && grep -q '^ADD mail-tag true' '$LUA_LAST'"
check "a tagged recipient the MTA refused ({rcpt_mailer} error) is not added back" grep -q '^ADDIVY false' "$LUA_LAST"
expect frank@example.com continue accept pooled -
l=$(prvsline "rcpt=frank@example.com ")
check "bounce from an internal client: not checked ($l)" [ "$(field "$l" why)" = not-checked ]
check "every PRVS reject has a matching rcpt reply" [ "$(grep -c 'source=prvs' "$LOG")" -eq 3 ]

peer_done a 20
seen=$(peer_seen a)
check "probes went to the plain addresses" bash -c "grep -q '^RCPT TO:<alice@example.com>' <<<'$seen' && grep -q '^RCPT TO:<erin@example.com>' <<<'$seen'"
check "no probe for tagged, forged or expired recipients" none_of 'prvs=|bob@|carol@|gina@' "$seen"

# --- reload with a rotated key file --------------------------------------------------
printf '# rotated\n1 first-secret-1\n3 third-secret-3\nsign 3\n' >"$KEYS.new"
chmod 600 "$KEYS.new"
mv "$KEYS.new" "$KEYS"
set_key "$CONF" prvs_verify_mailer_daemon yes
n=$(grep -c 'reload status=ok' "$LOG")
kill -HUP "$MPID"
check "reload after key rotation" wait_for 10 bash -c "[ \$(grep -c 'reload status=ok' '$LOG') -gt $n ]"
OLD=$(printf '1 first-secret-1\n' >"$T/k1" && chmod 600 "$T/k1" && "$PRVS" --keys "$T/k1" sign zed@example.net)
cat >"$T/reload.lua" <<EOF
function mail_from(c, qid, from)
  check(mt.macro(c, SMFIC_MAIL, "i", qid), "macro mail")
  check(mt.mailfrom(c, from), "mailfrom")
  if mt.getreply(c) ~= SMFIR_CONTINUE then error("MAIL not continued") end
end
local c = open("10.1.2.3")
mail_from(c, "R1", "<alice@example.com>")
rcpt(c, "bob@remote.test")
finish(c)
mt.disconnect(c)
local d = open("192.0.2.9")
mail_from(d, "R2", "<MAILER-DAEMON@remote.test>")
rcpt(d, "henry@example.com")
rcpt(d, "$OLD")
rcpt(d, "zed@example.net")
check(mt.eom(d), "eom")
print("ADD old " .. tostring(mt.eom_check(d, MT_RCPTADD, "<zed@example.net>")))
mt.disconnect(d)
EOF
run_lua reload
l=$(signline R1)
to=$(field "$l" to)
[[ $to == prvs=3* ]] && [ "$("$PRVS" --keys "$KEYS" verify "$to")" = alice@example.com ]
verdict $? "after the reload: signed with the new key 3 ($l)"
expect henry@example.com replycode reject prvs 550 \
	"550 5.7.1 <henry@example.com>: this address sent no mail that could bounce"
check "MAILER-DAEMON sender with the option: a bounce" [ "$(field "$(prvsline "rcpt=henry@example.com ")" bounce)" = yes ]
expect zed@example.net replycode reject prvs 550
check "a tag of the old key 1 still accepted and stripped" grep -q '^ADD old true' "$LUA_LAST"

milter_stop
mh_finish
