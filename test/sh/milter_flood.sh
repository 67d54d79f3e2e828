#!/bin/bash
# milter_flood.sh - gw-milter's bounce-flood guard over the milter protocol:
# the real daemon driven by Debian's miltertest (Lua), gw-fakepeer standing
# in for the internal MTA of example.com. Usage: milter_flood.sh BUILD_DIR
#
# Covered:
#   learning     inbound non-bounce mail from 192.0.2.10 (three messages)
#                makes 192.0.2.0/24 a correspondent (flood_threshold 2); one
#                message from 198.51.100.5 does not; a bounce teaches nothing;
#                outbound mail from an internal client teaches its recipients'
#                domain (once per message), not the client's network
#   forced mode  "gw-milter -C SOCK mode high": a bounce from a
#                non-correspondent gets 451 4.7.1 at MAIL and the internal MTA
#                sees no probe for it; a correspondent's bounce goes on and is
#                probed; a non-bounce from the non-correspondent goes on
#                (flood_defer_all = no), and so does an internal client's
#                bounce (which teaches no domain); "mode auto" returns to normal
#   detection    a burst of bounces from 203.0.113.0/24 past flood_floor_bounce
#                within one small flood_window puts the guard in high-load mode
#                by itself (cause bounce, the flooding network first among the
#                top sources of the event), and calm windows end it
#   metrics      "gw-milter -C SOCK metrics": Prometheus text, every line a
#                comment or a sample with its TYPE, the guard's mode and counters
#   hooks        flood_hook_command ran exactly once per transition, in order
#                (high normal high normal), with the mode in its environment
#   config       gw-milter -n refuses a malformed shared_state, naming its line
#   restart      SIGTERM writes the store; a new daemon on the same
#                flood_store still knows the correspondent (its bounce goes on
#                in forced high mode, the other's is deferred) and the forced
#                mode, without running the hook again; a SIGHUP that changes
#                flood_store warns that it needs a restart
# Shared machinery: lib/milter_harness.sh. Everything on unix sockets and
# loopback in one temporary directory; every process stopped by PID.
set -u

# shellcheck source=lib/milter_harness.sh
. "$(dirname "$0")/lib/milter_harness.sh"
# shellcheck source=lib/prom_lint.sh
. "$(dirname "$0")/lib/prom_lint.sh"
mh_init milter-flood "${1:-}"

# --- the internal MTA: the one probe the guard lets through ------------------------
cat >"$T/a.script" <<'EOF2'
send 220 a.test ESMTP fake
expect EHLO
send 250 a.test
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<alice@example.com>
send 250 ok
EOF2
start_peer a
cat >"$T/routes" <<EOF2
example.com     smtp:[127.0.0.1]:$(peer_port a)
EOF2

HOOKS=$T/hooks.log
mh_conf milter flood_guard=yes "flood_store=$T/store" flood_threshold=2 skip_networks=10.0.0.0/8 flood_window=10s \
	flood_floor_bounce=10 flood_calm_windows=1 flood_baseline_windows=100 \
	"flood_hook_command=echo \"\$GW_FLOOD_MODE\" >> $HOOKS" \
	connect_timeout=2s reply_timeout=5s deadline=8s
# -n checks shared_state's syntax, naming the line.
for v in "http://127.0.0.1:6379" "redis://[::1" "redis://127.0.0.1:99999" "redis://127.0.0.1:6379/x" "redis://"; do
	cp "$CONF" "$T/bad.conf"
	set_key "$T/bad.conf" shared_state "$v"
	line=$(grep -n '^shared_state =' "$T/bad.conf" | cut -d: -f1)
	out=$("$MILTER" -n -c "$T/bad.conf" 2>&1)
	rc=$?
	[ $rc -eq 78 ] && [[ $out == *"bad.conf:$line: shared_state"* ]]
	verdict $? "-n refuses shared_state = $v (exit $rc: $out)"
done
cp "$CONF" "$T/good.conf"
set_key "$T/good.conf" shared_state "redis://[::1]:6380/2"
check "-n accepts shared_state = redis://[::1]:6380/2" "$MILTER" -n -c "$T/good.conf"

milter_start milter || mh_finish
wait_for 10 test -S "$CTL" || bad "no control socket $CTL"

mode_field() { ctl mode | tr ' ' '\n' | sed -n "s/^$1=//p"; }
hooks() { tr '\n' ' ' <"$HOOKS" 2>/dev/null | sed 's/ $//'; }

cat >>"$T/lib.lua" <<'EOF2'
-- MAIL with a given sender: prints "MAIL NAME KIND"
function mail_as(c, name, from)
  check(mt.macro(c, SMFIC_MAIL, "i", name), "macro mail")
  check(mt.mailfrom(c, from), "mailfrom")
  local r = mt.getreply(c)
  local k = (r == SMFIR_CONTINUE and "continue") or (r == SMFIR_REPLYCODE and "replycode") or (r == SMFIR_TEMPFAIL and "tempfail") or tostring(r)
  print("MAIL " .. name .. " " .. k)
  return r == SMFIR_CONTINUE
end
-- one message on its own connection; the recipients only when MAIL went on
function msg(name, client, from, ...)
  local c = open(client)
  if mail_as(c, name, from) then
    for _, a in ipairs({...}) do rcpt(c, a) end
    finish(c)
  end
  mt.disconnect(c)
end
EOF2
mailgot() { awk -v n="$1" '$1 == "MAIL" && $2 == n { print $3 }' "$LUA_LAST" | tail -1; }

# --- learning -------------------------------------------------------------------------
cat >"$T/learn.lua" <<'EOF2'
msg("L1", "192.0.2.10", "<a@partner.test>", "x@other.test")
msg("L2", "192.0.2.10", "<a@partner.test>", "x@other.test")
msg("L3", "192.0.2.11", "<b@partner.test>", "x@other.test")
msg("L4", "198.51.100.5", "<c@once.test>", "x@other.test")
msg("L5", "198.51.100.6", "<>", "x@other.test")
msg("L6", "198.51.100.6", "<>", "x@other.test")
EOF2
run_lua learn
want_eq "after learning: mode" "$(mode_field mode)" normal
want_eq "after learning: networks learnt (192.0.2.0/24: 3, 198.51.100.0/24: 1; bounces teach nothing)" \
	"$(mode_field learnt)" 2
# Outbound mail from an internal client (skip_networks) teaches the recipient domain, not the network.
cat >"$T/out.lua" <<'EOF2'
msg("O1", "10.1.1.1", "<me@example.com>", "bob@dest.test")
msg("O2", "10.1.1.1", "<me@example.com>", "carol@dest.test", "dan@dest.test")
EOF2
run_lua out
want_eq "after outbound mail: one more learnt (dest.test)" "$(mode_field learnt)" 3

# --- forced mode ------------------------------------------------------------------------
out=$(ctl mode high)
check "mode high answers ok mode=high ($out)" grep -q '^ok mode=high force=high' <<<"$out"
out=$(ctl mode sometimes)
check "mode with a bad word is an error ($out)" grep -q '^error' <<<"$out"
check "hook ran for high" wait_for 10 grep -qx high "$HOOKS"
cat >"$T/forced.lua" <<'EOF2'
msg("F1", "203.0.113.7", "<>", "alice@example.com")
msg("F2", "192.0.2.99", "<>", "alice@example.com")
msg("F3", "198.51.100.5", "<>", "alice@example.com")
msg("F4", "203.0.113.7", "<someone@elsewhere.test>", "x@other.test")
msg("F5", "10.9.9.9", "<>", "x@other.test")
EOF2
run_lua forced
want_eq "forced high: non-correspondent's bounce at MAIL" "$(mailgot F1)" replycode
want_eq "forced high: correspondent network's bounce" "$(mailgot F2)" continue
want_eq "forced high: correspondent's bounce RCPT (probed)" "$(got alice@example.com)" continue
want_eq "forced high: below-threshold network's bounce" "$(mailgot F3)" replycode
want_eq "forced high: non-bounce from a non-correspondent (flood_defer_all = no)" "$(mailgot F4)" continue
want_eq "forced high: a bounce from an internal client (skip_networks)" "$(mailgot F5)" continue
l=$(grep 'flood client=203.0.113.7 ' "$LOG" | head -1)
check "deferral logged with the network and the reply ($l)" \
	grep -q 'network=203.0.113.0/24 action=defer stage=mail bounce=yes reply=451-4.7.1' <<<"$l"
want_eq "deferred count" "$(mode_field deferred)" 2
# The same counters for a scraper: Prometheus text format.
ctl metrics >"$T/metrics.prom"
check "metrics answers (exit 0)" test $? -eq 0
check "metrics: high-load mode" grep -qx 'gw_milter_flood_mode 1' "$T/metrics.prom"
check "metrics: deferred" grep -qx 'gw_milter_flood_deferred_total 2' "$T/metrics.prom"
check "metrics: forced high" grep -qx 'gw_milter_flood_forced{force="high"} 1' "$T/metrics.prom"
check "metrics: one probe session" grep -qx 'gw_milter_probe_sessions_total 1' "$T/metrics.prom"
bad_lines=$(prom_malformed "$T/metrics.prom" "")
want_eq "metrics: every line a comment or a sample" "$bad_lines" ""
# every RCPT decided is in the decision-time histogram once; its buckets are cumulative
rcpts=$(sed -n 's/^gw_milter_rcpts_total //p' "$T/metrics.prom")
want_eq "metrics: RCPT histogram count = RCPT callbacks ($rcpts)" "$(sed -n 's/^gw_milter_rcpt_seconds_count //p' "$T/metrics.prom")" "$rcpts"
want_eq "metrics: RCPT histogram +Inf bucket = count" "$(sed -n 's/^gw_milter_rcpt_seconds_bucket{le="+Inf"} //p' "$T/metrics.prom")" "$rcpts"
want_eq "metrics: RCPT histogram buckets never decrease, 17 of them" "$(awk -F'[ ]' '/^gw_milter_rcpt_seconds_bucket/ { n++; if ($2 < last) print "down at " $1; last = $2 } END { if (n != 17) print n " buckets" }' "$T/metrics.prom")" ""
untyped=$(prom_untyped "$T/metrics.prom")
want_eq "metrics: every sample has its TYPE line first" "$untyped" ""
out=$(ctl mode auto)
check "mode auto: back to normal ($out)" grep -q '^ok mode=normal force=auto' <<<"$out"
check "hook ran for normal" wait_for 10 bash -c "[ \"\$(tr '\n' ' ' <'$HOOKS')\" = 'high normal ' ]"
peer_stop a
want_eq "internal MTA: probe connections (the correspondent's only)" "$(peer_conns a)" 1
want_eq "internal MTA: RCPTs it saw" "$(peer_seen a | grep -c '^RCPT TO:')" 1

# --- automatic entry and exit ------------------------------------------------------------------
# 30 bounces from one flooding network: sent in less than the 10 s window, at
# least 15 fall in one window, past the floor of 10 (the baseline stays near 0).
t0=$(date +%s)
{
	for i in $(seq 1 30); do echo "msg(\"B$i\", \"203.0.113.$((i + 10))\", \"<>\", \"x@other.test\")"; done
} >"$T/flood.lua"
run_lua flood
echo "     the burst took $(($(date +%s) - t0)) s"
check "a flood puts the guard in high-load mode" wait_for 10 bash -c "'$MILTER' -C '$CTL' mode | grep -q 'mode=high force=auto'"
ev=$(grep ' flood mode=high cause=bounce ' "$LOG" | tail -1)
check "the event names the cause and the flooding network first ($ev)" \
	grep -q '"top_sources":\[{"network":"203.0.113.0/24"' <<<"$ev"
want_eq "the last bounces of the flood were deferred" "$(mailgot B30)" replycode
check "calm windows end it" wait_for 60 bash -c "'$MILTER' -C '$CTL' mode | grep -q 'mode=normal force=auto'"
check "hooks ran once per transition" wait_for 10 bash -c "[ \"\$(tr '\n' ' ' <'$HOOKS')\" = 'high normal high normal ' ]"
grep ' flood mode=' "$LOG" | sed 's/ event=.*//' | sed 's/^/     /'

# --- restart -----------------------------------------------------------------------------------
out=$(ctl mode high)
check "forced high before the restart" grep -q '^ok mode=high' <<<"$out"
check "hook ran for high" wait_for 10 bash -c "[ \"\$(tr '\n' ' ' <'$HOOKS')\" = 'high normal high normal high ' ]"
milter_stop
check "the store is on disk" test -s "$T/store/data.mdb"
start_peer a
cat >"$T/routes" <<EOF2
example.com     smtp:[127.0.0.1]:$(peer_port a)
EOF2
milter_start milter || mh_finish
wait_for 10 test -S "$CTL" || bad "no control socket $CTL"
want_eq "after the restart: forced mode kept" "$(mode_field force)" high
# 192.0.2.0/24, 198.51.100.0/24 and dest.test from learning, 203.0.113.0/24 from the accepted non-bounce F4
want_eq "after the restart: networks and domains learnt" "$(mode_field learnt)" 4
run_lua forced
want_eq "after the restart: non-correspondent's bounce deferred" "$(mailgot F1)" replycode
want_eq "after the restart: correspondent's bounce goes on" "$(mailgot F2)" continue
want_eq "after the restart: and is probed" "$(got alice@example.com)" continue
sleep 1 # a hook that should not run would have been queued by now; nothing waits on it
want_eq "no hook run for a mode restored from the store" "$(hooks)" "high normal high normal high"
# A reload cannot move the store: it says so, and the guard goes on with the old one.
set_key "$CONF" flood_store "$T/elsewhere"
kill -HUP "$MPID"
check "a reload warns that flood_store needs a restart" wait_for 10 grep -q 'flood_store.*need a restart' "$LOG"
want_eq "after the reload: still forced high" "$(mode_field force)" high
milter_stop
mh_finish
