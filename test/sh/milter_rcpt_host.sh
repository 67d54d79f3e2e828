#!/bin/bash
# milter_rcpt_host.sh - Sendmail's {rcpt_host} as a route (use_rcpt_host),
# driven over the milter protocol with miltertest, the internal MTAs
# gw-fakepeer whose records prove what the milter sent. Usage:
# milter_rcpt_host.sh BUILD_DIR
#
# Covered: use_rcpt_host = yes, a domain with no route and {rcpt_host} =
# "[127.0.0.1]:PORT": that host is probed (EHLO, MAIL, RCPT), 250 accepted,
# 550 -> 550 5.1.1; a domain with a route ignores {rcpt_host}; {rcpt_host}
# pointing at one of self_addresses (a mail loop, with or without a port):
# no probe, 451 4.4.6 (temporary: a configuration error, not a bounce); no
# {rcpt_host} macro (Postfix never sends it) or an empty one: "no route",
# accepted unchecked; use_rcpt_host = no (the default): {rcpt_host} ignored,
# accepted unchecked, no connection made.
set -u

# shellcheck source=lib/milter_harness.sh
. "$(dirname "$0")/lib/milter_harness.sh"
mh_init milter-rcpt-host "${1:-}"

# The internal MTA named by {rcpt_host}: two recipients over one session.
cat >"$T/far.script" <<'EOF'
send 220 far.test ESMTP fake
expect EHLO
send 250 far.test
expect MAIL FROM:<>
send 250 2.1.0 ok
expect RCPT TO:<known@far.test>
send 250 2.1.5 ok
expect RCPT TO:<unknown@far.test>
send 550 5.1.1 no such user
expect RSET
send 250 ok
EOF
# The route file's internal MTA for routed.test (which must win over {rcpt_host}).
cat >"$T/routed.script" <<'EOF'
send 220 routed.test ESMTP fake
expect EHLO
send 250 routed.test
expect MAIL FROM:<>
send 250 2.1.0 ok
expect RCPT TO:<known@routed.test>
send 250 2.1.5 ok
expect RSET
send 250 ok
EOF
# Peers that must never be connected to: "self" stands for this gateway's
# own listener (in self_addresses), "idle" is named by {rcpt_host} where it
# must be ignored. Each would answer, so a probe would not fail by accident.
for p in self idle; do
	printf 'send 220 %s.test ESMTP fake\nexpect EHLO\nsend 250 %s.test\n' $p $p >"$T/$p.script"
done
for p in far routed self idle; do
	start_peer $p
done
FAR=$(peer_port far) SELF=$(peer_port self) IDLE=$(peer_port idle)
printf 'routed.test  smtp:[127.0.0.1]:%s\n' "$(peer_port routed)" >"$T/routes"

# rcpt_h(c, addr, host): rcpt() of lib.lua with {rcpt_host} too, in the same
# macro packet (each packet replaces the last); "names" is lib.lua's (one chunk).
LUA_RCPT_H='
function rcpt_h(c, addr, host)
  check(mt.macro(c, SMFIC_RCPT, "{rcpt_mailer}", "esmtp", "{rcpt_addr}", addr, "{rcpt_host}", host),
        "macro rcpt")
  check(mt.rcptto(c, "<" .. addr .. ">"), "rcptto " .. addr)
  local r = mt.getreply(c)
  print("RCPT " .. addr .. " " .. (names[r] or tostring(r)))
end
'

# --- use_rcpt_host = yes ---------------------------------------------------------------

# 127.0.0.2: every port is ours, so Sendmail's usual "[127.0.0.2]" (port 25) loops too.
mh_conf on use_rcpt_host=yes self_addresses="127.0.0.1:$SELF, 127.0.0.2" connect_timeout=1s reply_timeout=3s \
	deadline=3s
milter_start on || mh_finish
{
	echo "$LUA_RCPT_H"
	cat <<'EOF'
local far = "[127.0.0.1]:" .. far_port
-- 1: no route, {rcpt_host} names the internal MTA
local c = open("192.0.2.1")
mail(c, "QH1")
rcpt_h(c, "known@far.test", far)
rcpt_h(c, "unknown@far.test", far)
finish(c)
mt.disconnect(c)
-- a routed domain: the route, not {rcpt_host}
c = open("192.0.2.2")
mail(c, "QH2")
rcpt_h(c, "known@routed.test", "[127.0.0.1]:" .. idle_port)
finish(c)
mt.disconnect(c)
-- 3: {rcpt_host} is this gateway itself
c = open("192.0.2.3")
mail(c, "QH3")
rcpt_h(c, "someone@loop.test", "[127.0.0.1]:" .. self_port)
rcpt_h(c, "other@loop2.test", "[127.0.0.2]")
finish(c)
mt.disconnect(c)
-- 4: no {rcpt_host} macro (as from Postfix), then an empty one
c = open("192.0.2.4")
mail(c, "QH4")
rcpt(c, "nomacro@far.test")
rcpt_h(c, "empty@far.test", "")
finish(c)
mt.disconnect(c)
EOF
} >"$T/on.lua"
run_lua on -D far_port="$FAR" -D self_port="$SELF" -D idle_port="$IDLE"

expect known@far.test continue accept new -
expect unknown@far.test replycode reject pooled 550 \
	"550 5.1.1 <unknown@far.test>: Recipient address rejected: User unknown"
want_eq "known@far.test: route is {rcpt_host}" "$(field "$(logline known@far.test)" route)" "[127.0.0.1]:$FAR"
expect known@routed.test continue accept new -
want_eq "known@routed.test: the route file's host, not {rcpt_host}" \
	"$(field "$(logline known@routed.test)" route)" "[127.0.0.1]:$(peer_port routed)"
expect someone@loop.test replycode tempfail loop 451 \
	"451 4.4.6 <someone@loop.test>: Recipient address verification failed: mail for this domain loops back to this gateway"
want_eq "someone@loop.test: route is {rcpt_host}" "$(field "$(logline someone@loop.test)" route)" \
	"[127.0.0.1]:$SELF"
check "loop: the refusal is logged with domain and host" \
	grep -qF "domain=loop.test rcpt_host=[127.0.0.1]:$SELF refused" "$LOG"
expect other@loop2.test replycode tempfail loop 451 \
	"451 4.4.6 <other@loop2.test>: Recipient address verification failed: mail for this domain loops back to this gateway"
expect nomacro@far.test continue skip noroute -
expect empty@far.test continue skip noroute -
milter_stop

# --- use_rcpt_host = no (the default) ------------------------------------------------------

mh_conf off
check "use_rcpt_host defaults to no" grep -q '^use_rcpt_host = no$' "$CONF"
milter_start off || mh_finish
{
	echo "$LUA_RCPT_H"
	cat <<'EOF'
local c = open("192.0.2.5")
mail(c, "QH5")
rcpt_h(c, "other@far.test", "[127.0.0.1]:" .. idle_port)
finish(c)
mt.disconnect(c)
EOF
} >"$T/off.lua"
run_lua off -D idle_port="$IDLE"
expect other@far.test continue skip noroute -
milter_stop

# --- what the internal MTAs saw -------------------------------------------------------------

peer_done far 15
peer_done routed 15
want_eq "far: commands in order, over one connection" \
	"$(peer_seen far | tr -d '\r' | grep -vE '^QUIT' | paste -sd,)|$(peer_conns far)" \
	"EHLO localhost,MAIL FROM:<>,RCPT TO:<known@far.test>,RCPT TO:<unknown@far.test>,RSET|1"
check "far: no probe for the recipients without {rcpt_host}" \
	none_of 'nomacro|empty|other' "$(peer_seen far)"
for p in self idle; do
	peer_stop $p # it writes a record for any connection still open
	want_eq "$p: connections (no probe made)" "$(peer_conns $p)" 0
done

mh_finish
