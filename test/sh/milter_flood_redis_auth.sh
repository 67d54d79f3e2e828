#!/bin/bash
# milter_flood_redis_auth.sh - the bounce-flood guard's Redis sharing with
# AUTH, against a real redis-server with requirepass and an ACL user. Usage:
# milter_flood_redis_auth.sh BUILD_DIR
#
# Covered:
#   config      -n refuses a password in the URL, a password file others can
#               read (0644), a missing one, naming the line; accepts
#               redis://USER@HOST:PORT/DB with a 0600 file
#   wrong pw    gw1 with a wrong password: one clear log line (status=down,
#               "AUTH refused: WRONGPASS"), the password in no log line,
#               local state and right verdicts (its own correspondent's
#               bounce goes on in high-load mode, a stranger's is deferred)
#   ACL user    gw2 as ACL user "gw" with its password: status=up, its node
#               key and hash in Redis
# Needs redis-server (6 or later), redis-cli, miltertest.
set -u

# shellcheck source=lib/milter_harness.sh
. "$(dirname "$0")/lib/milter_harness.sh"
mh_init milter-flood-redis-auth "${1:-}"
for t in redis-server redis-cli; do
	command -v "$t" >/dev/null || { bad "$t not installed (scripts/install-deps)"; mh_finish; }
done

ADMIN_PW=admin-$RANDOM$RANDOM
GW_PW=gw-$RANDOM$RANDOM
WRONG_PW=wrong-$RANDOM$RANDOM
REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$T" \
	--daemonize no --logfile "$T/redis.log" --requirepass "$ADMIN_PW" \
	--user gw on ">$GW_PW" '~gw:*' '+@all' >/dev/null 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
rcli() { REDISCLI_AUTH=$ADMIN_PW redis-cli -p "$REDIS_PORT" "$@"; }
wait_for 10 bash -c "ss -Hltnp 'sport = :$REDIS_PORT' | grep -q 'pid=$REDIS_PID,' && [ \"\$(REDISCLI_AUTH='$ADMIN_PW' redis-cli -p $REDIS_PORT ping)\" = PONG ]" ||
	{ bad "redis-server did not start ($(tail -2 "$T/redis.log"))"; mh_finish; }

(umask 077 && echo "$WRONG_PW" >"$T/wrong.pw" && echo "$GW_PW" >"$T/gw.pw")
echo "$GW_PW" >"$T/open.pw"
chmod 0644 "$T/open.pw"
echo "example.com smtp:[127.0.0.1]:$(free_port)" >"$T/routes"

# --- configuration --------------------------------------------------------------------------
mh_conf cfg flood_guard=yes "flood_store=$T/cfg.store"
refuses() { # refuses DESCRIPTION KEY WANT_TEXT KEY=VALUE...
	local what=$1 key=$2 want=$3 kv out rc line
	shift 3
	cp "$T/cfg.conf" "$T/bad.conf"
	for kv in "$@"; do set_key "$T/bad.conf" "${kv%%=*}" "${kv#*=}"; done
	line=$(grep -n "^$key =" "$T/bad.conf" | cut -d: -f1)
	out=$("$MILTER" -n -c "$T/bad.conf" 2>&1)
	rc=$?
	[ $rc -eq 78 ] && [[ $out == *"bad.conf:$line: $key"* ]] && [[ $out == *"$want"* ]] && [[ $out != *"$GW_PW"* ]]
	verdict $? "-n refuses $what (exit $rc: $out)"
}
refuses "a password in the URL" shared_state "shared_state_password_file" \
	"shared_state=redis://gw:$GW_PW@127.0.0.1:$REDIS_PORT/0"
refuses "a password file others can read" shared_state_password_file "want 0600" \
	"shared_state=redis://127.0.0.1:$REDIS_PORT/0" "shared_state_password_file=$T/open.pw"
refuses "a missing password file" shared_state_password_file "No such file" \
	"shared_state=redis://127.0.0.1:$REDIS_PORT/0" "shared_state_password_file=$T/none.pw"
cp "$T/cfg.conf" "$T/good.conf"
set_key "$T/good.conf" shared_state "redis://gw@127.0.0.1:$REDIS_PORT/0"
set_key "$T/good.conf" shared_state_password_file "$T/gw.pw"
check "-n accepts redis://gw@127.0.0.1:$REDIS_PORT/0 with a 0600 password file" "$MILTER" -n -c "$T/good.conf"

# --- the daemons ----------------------------------------------------------------------------
mh_conf gw1 flood_guard=yes "flood_store=$T/gw1.store" flood_threshold=2 \
	"shared_state=redis://127.0.0.1:$REDIS_PORT/0" "shared_state_password_file=$T/wrong.pw" shared_refresh=300ms
mh_conf gw2 flood_guard=yes "flood_store=$T/gw2.store" flood_threshold=2 \
	"shared_state=redis://gw@127.0.0.1:$REDIS_PORT/0" "shared_state_password_file=$T/gw.pw" shared_refresh=300ms
declare -A P L S C
start() { milter_start "$1" && wait_for 10 test -S "$CTL" && { P[$1]=$MPID; L[$1]=$LOG; S[$1]=$SOCK; C[$1]=$CTL; }; }
use() { MPID=${P[$1]}; LOG=${L[$1]}; SOCK=${S[$1]}; CTL=${C[$1]}; }
start gw1 || mh_finish
start gw2 || mh_finish

check "gw1 (wrong password) logs why Redis is not used" \
	wait_for 10 grep -q 'shared redis=127.0.0.1:[0-9]* status=down error="AUTH refused: WRONGPASS' "${L[gw1]}"
grep 'status=down' "${L[gw1]}" | head -1 | sed 's/^/     /'
check "gw2 (ACL user gw) is up" wait_for 10 grep -q 'shared redis=127.0.0.1:[0-9]* status=up' "${L[gw2]}"
check "gw2's node key and hash are in Redis" wait_for 10 bash -c \
	"[ \$(REDISCLI_AUTH='$ADMIN_PW' redis-cli -p $REDIS_PORT --scan --pattern 'gw:flood:node:*' | wc -l) -eq 1 ]"

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
msg("L1", "192.0.2.10", "<a@partner.test>", "x@other.test")
msg("L2", "192.0.2.10", "<a@partner.test>", "x@other.test")
msg("L3", "192.0.2.10", "<a@partner.test>", "x@other.test")
EOF2
mailgot() { awk -v n="$1" '$1 == "MAIL" && $2 == n { print $3 }' "$LUA_LAST" | tail -1; }
echo 'msg("C", "192.0.2.99", "<>", "c@other.test") msg("X", "203.0.113.9", "<>", "x@other.test")' >"$T/v.lua"
: >"$T/learn.lua"
use gw1
run_lua learn
"$MILTER" -C "${C[gw1]}" mode high >/dev/null
run_lua v
want_eq "gw1 on local state: its correspondent's bounce goes on, a stranger's is deferred" \
	"$(mailgot C) $(mailgot X)" "continue replycode"
want_eq "gw1: one down line for the outage" "$(grep -c 'status=down' "${L[gw1]}")" 1
for g in gw1 gw2; do
	! grep -qF -e "$WRONG_PW" -e "$GW_PW" "${L[$g]}"
	verdict $? "$g: no password in the log"
done

use gw1
milter_stop
use gw2
milter_stop
kill "$REDIS_PID"
wait_exit "$REDIS_PID" 10 || kill -9 "$REDIS_PID"
mh_finish
