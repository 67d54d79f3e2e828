#!/bin/bash
# milter_shared_cache.sh - the call-ahead cache shared through Redis
# (shared_cache = yes): three gw-milter daemons and a real redis-server on
# loopback, each gateway with its own internal MTA (gw-fakepeer "serve",
# which records every command: RCPT for a local part "unknown..." gets 550,
# any other 250). Usage: milter_shared_cache.sh BUILD_DIR
#
# Covered:
#   valid       a recipient probed through gw1 is answered by gw2 from its
#               cache after a refresh (log source=cache), and gw2's MTA
#               never saw an RCPT for it
#   unknown     the same for an unknown recipient: 550 at gw2, no probe
#   off         gw3 (shared_state, shared_cache = no) probes as before and
#               publishes nothing
#   own         a gateway's own entries are not copied back to it; metrics
#               count published and copied entries
#   malformed   entries written to the stream by hand (a domain in upper
#               case, a valid with 550, an expiry a year ahead) are skipped
#               and counted, never cached
#   WRONGTYPE   a string under the stream's name: logged once, the rest of
#               the shared state stays up; deleted: copies resume
#   restart     gw2 restarted reads on from the newest entry: it copies
#               what gw1 probes next, never the older entries (no replay)
#   Redis down  both gateways still answer right, by probing; each logs
#               status=down once
#   Redis back  an empty redis-server on the same port: gw2 copies what gw1
#               probes next
#   Redis hung  SIGSTOP: gw2 answers from its cache and by probing at once
#               (the log's ms=, printed)
# Needs redis-server, redis-cli, miltertest.
set -u

# shellcheck source=lib/milter_harness.sh
. "$(dirname "$0")/lib/milter_harness.sh"
mh_init milter-shared-cache "${1:-}"
for t in redis-server redis-cli; do
	command -v "$t" >/dev/null || { bad "$t not installed (scripts/install-deps)"; mh_finish; }
done

REDIS_PORT=$(free_port)
redis_up() {
	redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$T" \
		--daemonize no --logfile "$T/redis.log" >/dev/null 2>&1 &
	REDIS_PID=$!
	PIDS+=("$REDIS_PID")
	wait_for 10 bash -c "ss -Hltnp 'sport = :$REDIS_PORT' | grep -q 'pid=$REDIS_PID,' && [ \"\$(redis-cli -p $REDIS_PORT ping)\" = PONG ]"
}
redis_up || { bad "redis-server did not start ($(tail -2 "$T/redis.log"))"; mh_finish; }
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

declare -A P L S C
start() { milter_start "$1" && wait_for 10 test -S "$CTL" && { P[$1]=$MPID; L[$1]=$LOG; S[$1]=$SOCK; C[$1]=$CTL; }; }
use() { MPID=${P[$1]}; LOG=${L[$1]}; SOCK=${S[$1]}; CTL=${C[$1]}; }
# metric NAME GW: its value in that gateway's metrics
metric() { "$MILTER" -C "${C[$2]}" metrics | awk -v m="$1" '$1 == m { print $2 }'; }
# metric_is NAME GW VALUE: wait (bounded) until it has that value
metric_is() { wait_for 10 bash -c "[ \"\$('$MILTER' -C '${C[$2]}' metrics | awk '\$1 == \"$1\" { print \$2 }')\" = '$3' ]"; }
# rcpts PEER ADDR: RCPTs for ADDR the peer received (its records are written as connections close)
rcpts() { cat "$T/$1.rec"/conn-*.txt 2>/dev/null | grep -ci "^RCPT TO:<$2>"; }

for g in gw1 gw2 gw3; do
	# the internal MTA of this gateway: every connection a plain SMTP server, idle up to 120 s
	printf 'send 220 %s.internal ESMTP\nserve 0\n' "$g" >"$T/p$g.script"
	start_peer "p$g" 50 -t 120000
	echo "example.com smtp:[127.0.0.1]:$(peer_port "p$g")" >"$T/$g.routes"
	cache=yes
	[ "$g" = gw3 ] && cache=no
	mh_conf "$g" "routes=$T/$g.routes" flood_guard=yes "flood_store=$T/$g.store" \
		"shared_state=redis://127.0.0.1:$REDIS_PORT/0" shared_refresh=300ms "shared_state_id=$g" \
		"shared_cache=$cache" confirm_window=1h
	start "$g" || mh_finish
done

# msg GW QID ADDR...: one message through that gateway
msg() {
	local g=$1 q=$2
	shift 2
	{
		printf 'message("192.0.2.%d", "%s"' $((RANDOM % 200 + 1)) "$q"
		printf ', "%s"' "$@"
		printf ')\n'
	} >"$T/$q.lua"
	use "$g"
	run_lua "$q"
}

# gw2 and gw3 talk to their MTAs first: a cached valid needs a live exchange within confirm_window.
msg gw2 W2 warm2@example.com
expect warm2@example.com continue accept new -
msg gw3 W3 warm3@example.com
expect warm3@example.com continue accept new -

# --- probed through gw1 ------------------------------------------------------------------------
msg gw1 Q1 v1@example.com unknown1@example.com
expect v1@example.com continue accept new -
expect unknown1@example.com replycode reject pooled 550
reply1=$(reply_text unknown1@example.com)
check "gw1 published its two verdicts" metric_is gw_milter_shared_cache_published_total gw1 2
check "gw2 copied them (and not its own)" metric_is gw_milter_shared_cache_copied_total gw2 2
want_eq "the stream: gw1's entries" "$(rcli XRANGE gw:cache:stream - + | grep -cx gw1)" 2
want_eq "the stream: nothing from gw3 (shared_cache = no)" "$(rcli XRANGE gw:cache:stream - + | grep -cx gw3)" 0
want_eq "gw3 publishes no metric of the shared cache" "$(metric gw_milter_shared_cache_published_total gw3)" ""

# --- answered at gw2 without a probe -----------------------------------------------------------
msg gw2 Q2 v1@example.com unknown1@example.com
expect v1@example.com continue accept cache -
expect unknown1@example.com replycode reject cache 550 "$reply1"

# --- gw3 (shared_cache = no) probes as today ---------------------------------------------------
msg gw3 Q3 v1@example.com unknown1@example.com
expect v1@example.com continue accept pooled -
expect unknown1@example.com replycode reject pooled 550

# --- gw1 copies gw2's warm-up verdict, never its own back ---------------------------------------
want_eq "gw1 copied gw2's one verdict" "$(metric gw_milter_shared_cache_copied_total gw1)" 1
msg gw1 Q4 warm2@example.com
expect warm2@example.com continue accept cache -

# --- malformed entries: skipped and counted ----------------------------------------------------
later=$(($(date +%s) * 1000 + 600000))
rcli XADD gw:cache:stream '*' gw evil k bad1@EXAMPLE.com v valid c 250 e 2.1.5 t ok x "$later" >/dev/null
rcli XADD gw:cache:stream '*' gw evil k bad2@example.com v valid c 550 e 2.1.5 t ok x "$later" >/dev/null
rcli XADD gw:cache:stream '*' gw evil k bad3@example.com v unknown c 550 e 5.1.1 t no x "$(($(date +%s) * 1000 + 400 * 86400000))" >/dev/null
rcli XADD gw:cache:stream '*' gw 'evil one' k bad4@example.com v unknown c 550 e 5.1.1 t no x "$later" >/dev/null
check "gw2 counts 4 malformed entries" metric_is gw_milter_shared_cache_malformed_total gw2 4
want_eq "gw2 copied nothing of them" "$(metric gw_milter_shared_cache_copied_total gw2)" 2
msg gw2 Q5 bad2@example.com bad3@example.com
expect bad2@example.com continue accept pooled -
expect bad3@example.com continue accept pooled -

# --- something else under the stream's name: only the cache sharing stops -----------------------
rcli DEL gw:cache:stream >/dev/null
rcli SET gw:cache:stream not-a-stream >/dev/null
check "gw2 logs the stream failing" wait_for 10 grep -q 'shared_cache stream=gw:cache:stream status=failing error=".*WRONGTYPE' "${L[gw2]}"
want_eq "the rest of the shared state stays up" "$(metric gw_milter_flood_shared_up gw2)" 1
rcli DEL gw:cache:stream >/dev/null
check "gw2 logs the stream working again" wait_for 10 grep -q 'shared_cache stream=gw:cache:stream status=ok' "${L[gw2]}"
want_eq "logged once each" "$(grep -c 'shared_cache stream=gw:cache:stream status=' "${L[gw2]}")" 2
msg gw1 Q13 v7@example.com
expect v7@example.com continue accept pooled -
check "gw2 copies again" metric_is gw_milter_shared_cache_copied_total gw2 3
msg gw2 Q14 v7@example.com
expect v7@example.com continue accept cache -

# --- a gateway (re)started reads on from the newest entry: no replay ---------------------------
use gw2
milter_stop
start gw2 || mh_finish
check "gw2 restarted: Redis up" metric_is gw_milter_flood_shared_up gw2 1
msg gw1 Q8 v4@example.com
expect v4@example.com continue accept pooled -
check "gw2 copies gw1's new verdict" metric_is gw_milter_shared_cache_copied_total gw2 1
want_eq "gw2 replayed none of the older entries (nothing malformed seen)" \
	"$(metric gw_milter_shared_cache_copied_total gw2) $(metric gw_milter_shared_cache_malformed_total gw2)" "1 0"
msg gw2 Q9 v1@example.com v4@example.com
expect v1@example.com continue accept new -
expect v4@example.com continue accept cache -

# --- Redis down: both answer right by probing --------------------------------------------------
kill "$REDIS_PID"
wait_exit "$REDIS_PID" 10 || kill -9 "$REDIS_PID"
check "gw1 logs Redis down" wait_for 10 grep -q 'shared redis=127.0.0.1:[0-9]* status=down' "${L[gw1]}"
check "gw2 logs Redis down" wait_for 10 grep -q 'shared redis=127.0.0.1:[0-9]* status=down' "${L[gw2]}"
msg gw1 Q6 v2@example.com unknown2@example.com
expect v2@example.com continue accept pooled -
expect unknown2@example.com replycode reject pooled 550
msg gw2 Q7 v2@example.com unknown2@example.com
expect v2@example.com continue accept pooled -
expect unknown2@example.com replycode reject pooled 550
want_eq "Redis down: one log line at gw2" "$(grep -c 'status=down' "${L[gw2]}")" 1

# --- Redis back (empty): sharing resumes from its newest entry ---------------------------------
redis_up || bad "redis-server did not restart"
check "gw1 reconnected" metric_is gw_milter_flood_shared_up gw1 1
check "gw2 reconnected" metric_is gw_milter_flood_shared_up gw2 1
check "gw1 published what it probed during the outage" metric_is gw_milter_shared_cache_published_total gw1 6
msg gw1 Q10 v5@example.com
expect v5@example.com continue accept pooled -
check "gw1 published v5" metric_is gw_milter_shared_cache_published_total gw1 7
# two whole refreshes of gw2 after that: it has read v5
s0=$(metric gw_milter_shared_cache_syncs_total gw2)
check "gw2 refreshes twice more" wait_for 10 bash -c "[ \"\$('$MILTER' -C '${C[gw2]}' metrics | awk '\$1 == \"gw_milter_shared_cache_syncs_total\" { print \$2 }')\" -ge $((s0 + 2)) ]"
msg gw2 Q11 v5@example.com
expect v5@example.com continue accept cache -

# --- Redis hung (SIGSTOP): the RCPT path does not wait for it ------------------------------------
kill -STOP "$REDIS_PID"
check "gw2 notices the hung Redis" wait_for 10 bash -c "[ \$(grep -c 'status=down' '${L[gw2]}') -ge 2 ]"
msg gw2 Q12 v5@example.com v6@example.com
expect v5@example.com continue accept cache -
l=$(logline v6@example.com)
check "v6@example.com probed (new or pooled session)" grep -qE 'verdict=accept source=(new|pooled) ' <<<"$l"
echo "     Redis hung: RCPT at gw2 $(ms_of v5@example.com) ms from the cache, $(ms_of v6@example.com) ms probed (log field ms=)"
want_le "Redis hung: RCPT from the cache (ms)" "$(ms_of v5@example.com)" 20
want_le "Redis hung: RCPT probed (ms; a Redis wait would be 300)" "$(ms_of v6@example.com)" 250
kill -CONT "$REDIS_PID"

for g in gw1 gw2 gw3; do
	use "$g"
	milter_stop
	peer_stop "p$g"
done
# What each internal MTA was asked (records written as the connections closed).
want_eq "gw1's MTA: v1 probed once" "$(rcpts pgw1 v1@example.com)" 1
want_eq "gw1's MTA: unknown1 probed once" "$(rcpts pgw1 unknown1@example.com)" 1
want_eq "gw2's MTA: asked for v1 once, after its restart only" "$(rcpts pgw2 v1@example.com)" 1
want_eq "gw2's MTA: never asked for v4, v5 and v7" \
	"$(rcpts pgw2 v4@example.com) $(rcpts pgw2 v5@example.com) $(rcpts pgw2 v7@example.com)" "0 0 0"
want_eq "gw2's MTA: never asked for unknown1" "$(rcpts pgw2 unknown1@example.com)" 0
want_eq "gw2's MTA: asked for v2 and unknown2 with Redis down" \
	"$(rcpts pgw2 v2@example.com) $(rcpts pgw2 unknown2@example.com)" "1 1"
want_eq "gw3's MTA: asked for v1 (shared_cache = no)" "$(rcpts pgw3 v1@example.com)" 1
mh_finish
