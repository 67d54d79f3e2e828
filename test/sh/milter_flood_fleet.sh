#!/bin/bash
# milter_flood_fleet.sh - two gw-milter daemons sharing the bounce-flood
# guard's counts through a real redis-server on loopback: the shared state
# is additive. Usage: milter_flood_fleet.sh BUILD_DIR
#
# Covered:
#   sums        a network learnt 10 times through gw1 and 10 times through
#               gw2 is a correspondent at threshold 15 on both (20), while
#               one learnt 10 times through gw1 alone is not (10), on gw1
#               either (its own hash is not counted twice); each gateway's
#               hash in Redis holds its own 10, and still 10 after more
#               refreshes
#   split flood bounces spread over the two gateways, each below the floor
#               (16) alone, together above it: both enter high-load mode
#   leaving     both forced high, then both back to auto: both leave
#               high-load mode (neither keeps the other there)
#   named       a gateway with shared_state_id = mx-a, restarted with
#               another flood_store, keeps its name: the same keys in Redis
#               (no new gw:flood:corr:* under a derived name), its hash
#               still holds its counts, and no duplicate warning after the
#               restart; a second gateway given the same id makes both log
#               status=duplicate (once, though each sees its own token now
#               and then), and the first logs status=unique once the second
#               is gone
# Needs redis-server, redis-cli, miltertest.
set -u

# shellcheck source=lib/milter_harness.sh
. "$(dirname "$0")/lib/milter_harness.sh"
mh_init milter-flood-fleet "${1:-}"
for t in redis-server redis-cli; do
	command -v "$t" >/dev/null || { bad "$t not installed (scripts/install-deps)"; mh_finish; }
done

REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$T" \
	--daemonize no --logfile "$T/redis.log" >/dev/null 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
wait_for 10 bash -c "ss -Hltnp 'sport = :$REDIS_PORT' | grep -q 'pid=$REDIS_PID,' && [ \"\$(redis-cli -p $REDIS_PORT ping)\" = PONG ]" ||
	{ bad "redis-server did not start ($(tail -2 "$T/redis.log"))"; mh_finish; }

echo "example.com smtp:[127.0.0.1]:$(free_port)" >"$T/routes"
for g in gw1 gw2; do
	mh_conf "$g" flood_guard=yes "flood_store=$T/$g.store" flood_threshold=15 flood_window=1m \
		flood_floor_bounce=16 "shared_state=redis://127.0.0.1:$REDIS_PORT/0" shared_refresh=300ms
done
declare -A P L S C
start() { milter_start "$1" && wait_for 10 test -S "$CTL" && { P[$1]=$MPID; L[$1]=$LOG; S[$1]=$SOCK; C[$1]=$CTL; }; }
use() { MPID=${P[$1]}; LOG=${L[$1]}; SOCK=${S[$1]}; CTL=${C[$1]}; }
start gw1 || mh_finish
start gw2 || mh_finish
mode_of() { "$MILTER" -C "${C[$1]}" mode; }
bounce_of() { mode_of "$1" | tr ' ' '\n' | sed -n 's/^bounce=\([0-9]*\)\/.*/\1/p'; }

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
# learn NAME GW CLIENT: 10 accepted messages from CLIENT through GW
learn() {
	for i in $(seq 1 10); do echo "msg(\"$1$i\", \"$3\", \"<a@partner.test>\", \"x@other.test\")"; done >"$T/$1.lua"
	use "$2"
	run_lua "$1"
}
# hget GW KEY: the SCORE of KEY in GW's own hash (its name: the one whose node key it published)
hashes() { rcli --scan --pattern 'gw:flood:corr:*' | sort; }
score_in() { rcli hget "$1" "$2" | cut -d' ' -f1; }

# --- sums -----------------------------------------------------------------------------------
learn A gw1 192.0.2.10
learn B gw2 192.0.2.11
learn O gw1 198.51.100.7
check "two gateway hashes in Redis" wait_for 10 bash -c "[ \$(redis-cli -p $REDIS_PORT --scan --pattern 'gw:flood:corr:*' | wc -l) -eq 2 ]"
mapfile -t H < <(hashes)
check "each gateway's hash holds its own count of 192.0.2.0/24" wait_for 10 bash -c \
	"[ \"\$(redis-cli -p $REDIS_PORT hget '${H[0]}' n:192.0.2.0/24 | cut -d' ' -f1)\" = 10.000000 ] && [ \"\$(redis-cli -p $REDIS_PORT hget '${H[1]}' n:192.0.2.0/24 | cut -d' ' -f1)\" = 10.000000 ]"
"$MILTER" -C "${C[gw1]}" mode high >/dev/null
"$MILTER" -C "${C[gw2]}" mode high >/dev/null
# verdicts GW: MAIL of a bounce from 192.0.2.99 (10+10), from 198.51.100.99 (10 at gw1), from a stranger
verdicts() {
	cat >"$T/v.lua" <<'EOF2'
msg("S", "192.0.2.99", "<>", "c@other.test")
msg("O", "198.51.100.99", "<>", "o@other.test")
msg("X", "203.0.113.99", "<>", "x@other.test")
EOF2
	use "$1"
	run_lua v
	echo "$(mailgot S) $(mailgot O) $(mailgot X)"
}
# Bounded: until each has read the other's hash (a refresh after both wrote).
for i in $(seq 1 20); do
	v1=$(verdicts gw1)
	[ "$v1" = "continue replycode replycode" ] && break
	sleep 0.5
done
want_eq "gw1: 10+10 passes at 15, 10 alone does not, a stranger is deferred" "$v1" "continue replycode replycode"
want_eq "gw2: the same" "$(verdicts gw2)" "continue replycode replycode"
# More refreshes read the same counts again: nothing grows.
wait_for 10 bash -c "[ \$(redis-cli -p $REDIS_PORT --scan --pattern 'gw:flood:node:*' | wc -l) -eq 2 ]"
sleep_until_refreshes() { local t0=$SECONDS; while [ $((SECONDS - t0)) -lt 2 ]; do sleep 0.2; done; }
sleep_until_refreshes # 2 s: several 300 ms refreshes, to show they change nothing
want_eq "after more refreshes gw1 still does not count 198.51.100.0/24 twice" "$(verdicts gw1)" "continue replycode replycode"
want_eq "gw1's hash still holds its own 10" "$(score_in "${H[0]}" n:192.0.2.0/24) $(score_in "${H[1]}" n:192.0.2.0/24)" "10.000000 10.000000"


# --- a flood split over the two gateways -----------------------------------------------------
"$MILTER" -C "${C[gw1]}" mode auto >/dev/null
"$MILTER" -C "${C[gw2]}" mode auto >/dev/null
check "both forced high, then auto: gw1 back to normal mode" wait_for 10 bash -c "'$MILTER' -C '${C[gw1]}' mode | grep -q '^ok mode=normal'"
check "gw2 back to normal mode" wait_for 10 bash -c "'$MILTER' -C '${C[gw2]}' mode | grep -q '^ok mode=normal'"
flood() {
	for i in $(seq 1 "$3"); do echo "msg(\"F$1$i\", \"203.0.$2.$i\", \"<>\", \"f$i@other.test\")"; done >"$T/flood$1.lua"
	use "$1"
	run_lua "flood$1"
}
b1=$(bounce_of gw1)
b2=$(bounce_of gw2)
flood gw1 1 $((12 - b1))
flood gw2 2 $((12 - b2))
echo "     bounces this window: gw1 $(bounce_of gw1), gw2 $(bounce_of gw2); floor 16 each"
fleet_of() { mode_of "$1" | tr ' ' '\n' | sed -n 's/^fleet=\([0-9]*\)\/.*/\1/p'; }
# Bounded poll: gw1 reads gw2's node key within a few refreshes (and may be high already).
for i in $(seq 1 40); do
	f=$(fleet_of gw1)
	[ "${f:-0}" -ge 12 ] && break
	sleep 0.25
done
[ "${f:-0}" -ge 12 ]
verdict $? "gw1 counts gw2's bounces as the fleet's (fleet=$f, want >= 12)"
echo "     fleet counts: gw1 sees $(fleet_of gw1), gw2 sees $(fleet_of gw2)"
want_le "gw1 alone below the floor" "$(bounce_of gw1)" 15
want_le "gw2 alone below the floor" "$(bounce_of gw2)" 15
check "gw1 enters high-load mode on the fleet's sum" \
	wait_for 15 bash -c "'$MILTER' -C '${C[gw1]}' mode | grep -q '^ok mode=high'"
check "gw2 enters high-load mode on the fleet's sum" \
	wait_for 15 bash -c "'$MILTER' -C '${C[gw2]}' mode | grep -q '^ok mode=high'"
check "a detector saw the sum (cause bounce, not only the fleet flag)" \
	grep -q 'flood mode=high cause=bounce' "${L[gw1]}" "${L[gw2]}"

use gw1
milter_stop
use gw2
milter_stop

# --- named: shared_state_id ------------------------------------------------------------------
named() { # named GW STORE: a gateway named mx-a with this store
	mh_conf "$1" flood_guard=yes "flood_store=$T/$2" flood_threshold=15 flood_window=1m \
		"shared_state=redis://127.0.0.1:$REDIS_PORT/0" shared_refresh=300ms shared_state_id=mx-a
}
corr_keys() { rcli keys 'gw:flood:corr:*' | sort | tr '\n' ' '; }
named gw3 gw3-a.store
start gw3 || mh_finish
learn N gw3 192.0.2.20
check "gw3's counts are under its id: gw:flood:corr:mx-a holds 10 for 192.0.2.0/24" wait_for 10 bash -c \
	"[ \"\$(redis-cli -p $REDIS_PORT hget gw:flood:corr:mx-a n:192.0.2.0/24 | cut -d' ' -f1)\" = 10.000000 ]"
keys_before=$(corr_keys)
echo "     keys before the restart: $keys_before"
use gw3
milter_stop
named gw3 gw3-b.store # another store: a derived name would change with it
lines=$(wc -l <"${L[gw3]}")
start gw3 || mh_finish
check "restarted gw3 announces the same name" wait_for 10 bash -c \
	"tail -n +$((lines + 1)) '${L[gw3]}' | grep -q 'shared_state=redis://.* id=mx-a '"
check "restarted gw3 writes its node key again" wait_for 10 bash -c \
	"[ \"\$(redis-cli -p $REDIS_PORT exists gw:flood:node:mx-a)\" = 1 ]"
sleep_until_refreshes # several refreshes of the new instance
want_eq "the same gw:flood:corr:* keys after the restart with another store" "$(corr_keys)" "$keys_before"
want_eq "gw3's hash still holds its 10" "$(score_in gw:flood:corr:mx-a n:192.0.2.0/24)" "10.000000"
tail -n +$((lines + 1)) "${L[gw3]}" | grep -q 'status=duplicate'
verdict $((!$?)) "no duplicate warning after a restart under the same id"

named gw4 gw4.store # a second gateway given the same id by mistake
start gw4 || mh_finish
check "gw4 logs that another gateway writes under mx-a" \
	wait_for 10 grep -q 'shared id=mx-a status=duplicate' "${L[gw4]}"
check "gw3 logs it too" wait_for 10 grep -q 'shared id=mx-a status=duplicate' "${L[gw3]}"
echo "     $(grep -m1 'status=duplicate' "${L[gw3]}" | sed 's/.*shared /shared /')"
use gw4
milter_stop
check "gw3 logs status=unique once gw4 is gone (10 refreshes)" wait_for 30 grep -q 'shared id=mx-a status=unique' "${L[gw3]}"
want_eq "gw3 warned once, not at every refresh" "$(grep -c 'status=duplicate' "${L[gw3]}")" 1
use gw3
milter_stop
kill "$REDIS_PID"
wait_exit "$REDIS_PID" 10 || kill -9 "$REDIS_PID"
mh_finish
