#!/bin/bash
# milter_flood_redis.sh - two gw-milter daemons sharing the bounce-flood
# guard's state through a real redis-server on loopback. Usage:
# milter_flood_redis.sh BUILD_DIR
#
# Covered:
#   sharing     a correspondent learnt through gw1 is known to gw2 (its
#               bounce goes on at gw2 in high-load mode, a stranger's is
#               deferred); gw2 forced to high-load mode puts gw1 there too
#               (cause fleet), and back
#   Redis down  redis-server stopped during the flood: both keep their local
#               state (the same verdicts at gw2), each logs "status=down"
#               once, and the RCPT latency stays within a few ms (the log's
#               ms= of every RCPT meanwhile, printed); gw1 learns a new
#               correspondent meanwhile
#   Redis hung  redis-server stopped with SIGSTOP (connections hang): the
#               verdicts and the RCPT latency are the same
#   Redis back  a new redis-server on the same port (empty): both log
#               "status=up", and gw2 learns what gw1 learnt while it was
#               down (the state converges)
# Needs redis-server, redis-cli, miltertest.
set -u

# shellcheck source=lib/milter_harness.sh
. "$(dirname "$0")/lib/milter_harness.sh"
mh_init milter-flood-redis "${1:-}"
for t in redis-server redis-cli; do
	command -v "$t" >/dev/null || { bad "$t not installed (scripts/install-deps)"; mh_finish; }
done

REDIS_PORT=$(free_port)
REDIS_PID=
redis_up() {
	redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$T" \
		--daemonize no --logfile "$T/redis.log" >/dev/null 2>&1 &
	REDIS_PID=$!
	PIDS+=("$REDIS_PID")
	wait_for 10 bash -c "ss -Hltnp 'sport = :$REDIS_PORT' | grep -q 'pid=$REDIS_PID,' && [ \"\$(redis-cli -p $REDIS_PORT ping)\" = PONG ]"
}
redis_down() {
	kill -CONT "$REDIS_PID" 2>/dev/null
	kill "$REDIS_PID"
	wait_exit "$REDIS_PID" 10 || kill -9 "$REDIS_PID"
}
redis_up || { bad "redis-server did not start ($(tail -2 "$T/redis.log"))"; mh_finish; }

echo "example.com smtp:[127.0.0.1]:$(free_port)" >"$T/routes"
for g in gw1 gw2; do
	mh_conf "$g" flood_guard=yes "flood_store=$T/$g.store" flood_threshold=2 \
		"shared_state=redis://127.0.0.1:$REDIS_PORT/0" shared_refresh=300ms
done
# use NAME: the harness's variables for that daemon
declare -A P L S C
start() { milter_start "$1" && wait_for 10 test -S "$CTL" && { P[$1]=$MPID; L[$1]=$LOG; S[$1]=$SOCK; C[$1]=$CTL; }; }
use() { MPID=${P[$1]}; LOG=${L[$1]}; SOCK=${S[$1]}; CTL=${C[$1]}; }
start gw1 || mh_finish
start gw2 || mh_finish
field_of() { "$MILTER" -C "${C[$1]}" mode | tr ' ' '\n' | sed -n "s/^$2=//p"; }

cat >>"$T/lib.lua" <<'EOF2'
function mail_as(c, name, from)
  check(mt.macro(c, SMFIC_MAIL, "i", name), "macro mail")
  check(mt.mailfrom(c, from), "mailfrom")
  local r = mt.getreply(c)
  print("MAIL " .. name .. " " .. ((r == SMFIR_CONTINUE and "continue") or (r == SMFIR_REPLYCODE and "replycode") or tostring(r)))
  return r == SMFIR_CONTINUE
end
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
# bounces NAME: a correspondent's bounce (C) and a stranger's (X) at that daemon, each of 10 messages
bounces() {
	{
		for i in $(seq 1 10); do
			echo "msg(\"C$i\", \"192.0.2.$((i + 20))\", \"<>\", \"c$i@other.test\")"
			echo "msg(\"X$i\", \"203.0.113.$i\", \"<>\", \"x$i@other.test\")"
		done
	} >"$T/bounces.lua"
	use "$1"
	run_lua bounces
	local c=0 x=0 i
	for i in $(seq 1 10); do
		[ "$(mailgot "C$i")" = continue ] && c=$((c + 1))
		[ "$(mailgot "X$i")" = replycode ] && x=$((x + 1))
	done
	echo "$c $x"
}
# max_ms NAME SINCE_LINE: the largest ms= of the RCPT lines logged after line SINCE_LINE
max_ms() { tail -n +"$(($2 + 1))" "${L[$1]}" | grep ': rcpt ' | sed -n 's/.* ms=\([0-9]*\).*/\1/p' | sort -n | tail -1; }
lines() { wc -l <"${L[$1]}"; }

# --- a correspondent learnt through gw1 is honoured by gw2 ------------------------------------
cat >"$T/learn.lua" <<'EOF2'
msg("L1", "192.0.2.10", "<a@partner.test>", "x@other.test")
msg("L2", "192.0.2.10", "<a@partner.test>", "x@other.test")
msg("L3", "192.0.2.10", "<a@partner.test>", "x@other.test")
EOF2
use gw1
run_lua learn
check "gw2 learns 192.0.2.0/24 through Redis" wait_for 10 bash -c "'$MILTER' -C '${C[gw2]}' mode | grep -q 'learnt=1 '"
"$MILTER" -C "${C[gw2]}" mode high >/dev/null
check "gw2 forced high puts gw1 in high-load mode (the fleet)" \
	wait_for 10 bash -c "'$MILTER' -C '${C[gw1]}' mode | grep -q '^ok mode=high force=auto'"
check "gw1 logged the cause" grep -q 'flood mode=high cause=fleet' "${L[gw1]}"
want_eq "gw2 in high mode: correspondents' bounces on, strangers' deferred (of 10 each)" "$(bounces gw2)" "10 10"
want_eq "gw1 in high mode by the fleet: the same" "$(bounces gw1)" "10 10"

# --- Redis down in the middle of the flood ---------------------------------------------------
redis_down
check "gw2 logs Redis down" wait_for 10 grep -q 'shared redis=127.0.0.1:[0-9]* status=down' "${L[gw2]}"
n=$(lines gw2)
want_eq "Redis down: gw2's verdicts unchanged" "$(bounces gw2)" "10 10"
ms=$(max_ms gw2 "$n")
echo "     Redis down: slowest RCPT at gw2 ${ms} ms (log field ms=)"
want_le "Redis down: RCPT latency" "$ms" 20
want_eq "Redis down: one log line per outage" "$(grep -c 'status=down' "${L[gw2]}")" 1
# gw1 learns a new correspondent while Redis is down
sed 's/192.0.2.10/198.51.100.7/' "$T/learn.lua" >"$T/learn2.lua"
use gw1
run_lua learn2
check "gw1 learnt 198.51.100.0/24 locally" bash -c "'$MILTER' -C '${C[gw1]}' mode | grep -q 'learnt=2 '"

# --- Redis back -------------------------------------------------------------------------------
redis_up || bad "redis-server did not restart"
check "gw2 logs Redis up again" wait_for 10 grep -q 'status=up' "${L[gw2]}"
check "the state converges: gw2 learns what gw1 learnt during the outage" \
	wait_for 10 bash -c "'$MILTER' -C '${C[gw2]}' mode | grep -q 'learnt=2 '"

# --- Redis hung (SIGSTOP): connections open, no answers ------------------------------------------
kill -STOP "$REDIS_PID"
n=$(lines gw2)
want_eq "Redis hung: gw2's verdicts unchanged" "$(bounces gw2)" "10 10"
ms=$(max_ms gw2 "$n")
echo "     Redis hung: slowest RCPT at gw2 ${ms} ms"
want_le "Redis hung: RCPT latency" "$ms" 20
check "gw2 logs the hung Redis as down" wait_for 10 bash -c "[ \$(grep -c 'status=down' '${L[gw2]}') -ge 2 ]"
kill -CONT "$REDIS_PID"

"$MILTER" -C "${C[gw2]}" mode auto >/dev/null
check "gw1 leaves high-load mode with the fleet" \
	wait_for 15 bash -c "'$MILTER' -C '${C[gw1]}' mode | grep -q '^ok mode=normal'"
use gw1
milter_stop
use gw2
milter_stop
redis_down
mh_finish
