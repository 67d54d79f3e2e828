# shellcheck shell=bash
# milter_harness.sh - the shared parts of the gw-milter daemon tests that
# drive the real daemon over the milter protocol with Debian's miltertest
# (Lua), gw-fakepeer standing in for the internal MTA. Source it (bash); it
# defines functions only, until mh_init is called.
#
#   mh_init NAME BUILD_DIR      binaries, $T (one mktemp -d), the stop trap,
#                               $T/lib.lua; FAILS (exit 1) without miltertest
#   ok / bad / check DESC CMD... / verdict RC DESC / none_of REGEX TEXT
#   want_eq DESC GOT WANT       "DESC: got 'X', want 'Y'" unless equal
#   want_le DESC GOT MAX        numbers: GOT <= MAX
#   wait_for SECS CMD... / wait_exit PID SECS (status in $WAIT_RC) / free_port
#                               (a port held for this test, lib/ports.sh)
#   start_peer NAME [CONNS] [OPTS...]
#                               gw-fakepeer with script $T/NAME.script, its port
#                               in $T/NAME.port, records in $T/NAME.rec; CONNS
#                               connections (default 1) take the script's "---"
#                               sections in turn; OPTS go to gw-fakepeer (-p PORT)
#   peer_port NAME / peer_seen NAME (every byte the milter sent it) /
#   peer_conns NAME (connections) / peer_talked NAME (those that sent
#   anything) / peer_stop NAME /
#   peer_done NAME SECS         wait for the peer to end; ok if it ran its
#                               script to the end (the milter followed it)
#   set_key FILE KEY VALUE      KEY must exist in etc/gw.conf
#   mh_conf NAME [KEY=VALUE...] $T/NAME.conf: etc/gw.conf with socket, control
#                               socket, pid file, log (stderr, debug), routes
#                               ($T/routes) and tls = none, then the pairs
#   milter_start NAME [ARGS...] gw-milter -f on $T/NAME.conf, log $T/NAME.log;
#                               sets MPID, LOG, SOCK, CTL for the calls below
#   milter_stop                 SIGTERM, wait; ok when it exits 0
#   ctl ARGS...                 gw-milter -C $CTL ARGS (control socket)
#   run_lua NAME [-D K=V...]    miltertest on $T/lib.lua + $T/NAME.lua
#   got ADDR                    reply kind miltertest saw in the last run
#   logline ADDR / field LINE KEY / reply_text ADDR / ms_of ADDR
#                               the milter's last decision line for ADDR, a
#                               field of it, the reply it set, its milliseconds
#   expect ADDR KIND VERDICT SOURCE REPLY ["CODE ENH TEXT"]
#   mh_finish                   summary and exit status
#
# miltertest only tells the reply kind (continue / reply code), so codes and
# texts are read from the milter's log: log_level = debug writes each reply
# as it is set. Every process started here is stopped by PID in the EXIT
# trap, every wait is bounded, and $T is removed unless a check failed (or
# KEEP is set).

# mh_init NAME BUILD_DIR
mh_init() {
	B=${2:?usage: $1 BUILD_DIR}
	SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
	# shellcheck source-path=SCRIPTDIR source=ports.sh
	. "$SRC/test/sh/lib/ports.sh"
	MILTER=$B/milter/gw-milter
	FP=$B/test/gw-fakepeer
	PIDS=()
	FAILS=0
	MPID='' LOG='' SOCK='' CTL='' LUA_LAST=''
	# A missing miltertest must not pass as a skipped test: the test command installs it.
	if ! command -v miltertest >/dev/null; then
		echo "FAIL: miltertest not installed (apt-get install miltertest)"
		exit 1
	fi
	for f in "$MILTER" "$FP"; do
		[ -x "$f" ] || { echo "FAIL: $f not built"; exit 1; }
	done
	T=$(mktemp -d "/tmp/gw-$1.XXXXXX") || { echo "FAIL: mktemp"; exit 1; }
	trap mh_cleanup EXIT
	mh_write_lua_lib
}

mh_cleanup() {
	local p
	port_release_all
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 1 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$p" 2>/dev/null
	done
	if [ "$FAILS" -eq 0 ] && [ -z "${KEEP:-}" ]; then
		rm -rf "$T"
	else
		echo "files kept in $T"
	fi
}

# --- assertions -------------------------------------------------------------------

ok() { echo "ok   - $*"; }
bad() {
	echo "FAIL - $*"
	FAILS=$((FAILS + 1))
}
check() { # check DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@"; then ok "$d"; else bad "$d"; fi
}
# COND1 && COND2; verdict $? DESCRIPTION
verdict() { if [ "$1" -eq 0 ]; then ok "$2"; else bad "$2"; fi; }
# none_of REGEX TEXT: no line of TEXT matches
none_of() { ! grep -qiE "$1" <<<"$2"; }
want_eq() { # want_eq DESCRIPTION GOT WANT
	if [ "$2" = "$3" ]; then ok "$1 ($2)"; else bad "$1: got '$2', want '$3'"; fi
}
want_le() { # want_le DESCRIPTION GOT MAX (integers)
	if [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -le "$3" ]; then ok "$1 ($2 <= $3)"; else bad "$1: got '$2', want <= $3"; fi
}

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local n=$(($1 * 10))
	shift
	while [ $n -gt 0 ]; do
		"$@" 2>/dev/null && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# wait_exit PID SECONDS: wait for a child to end; its status in $WAIT_RC.
wait_exit() {
	WAIT_RC=255
	if wait_for "$2" bash -c "! kill -0 $1"; then
		wait "$1" 2>/dev/null
		WAIT_RC=$?
		return 0
	fi
	return 1
}

# free_port: a port below the ephemeral range held for this test (lib/ports.sh),
# for a peer that must come back on the same port or a route nobody listens on.
free_port() { port_claim; }

# --- internal MTAs (gw-fakepeer) -------------------------------------------------------

# start_peer NAME [CONNECTIONS] [OPTIONS...]
start_peer() {
	local name=$1 n=${2:-1}
	shift
	[ $# -gt 0 ] && shift
	mkdir -p "$T/$name.rec"
	rm -f "$T/$name.port"
	"$FP" -s "$T/$name.script" -P "$T/$name.port" -r "$T/$name.rec" -n "$n" -t 20000 "$@" \
		>>"$T/$name.out" 2>&1 &
	PIDS+=($!)
	eval "PEER_PID_$name=$!"
	wait_for 5 test -s "$T/$name.port" || bad "peer $name did not start ($(tail -1 "$T/$name.out"))"
}
peer_pid() { eval "echo \${PEER_PID_$1:-}"; }
peer_port() { cat "$T/$1.port"; }
# Every byte the milter sent to peer NAME, connection by connection.
peer_seen() { cat "$T/$1.rec"/conn-*.txt 2>/dev/null; }
# Connections the peer accepted (each leaves a record when it closes).
peer_conns() { find "$T/$1.rec" -name 'conn-*.txt' 2>/dev/null | wc -l; }
# Connections on which the milter sent anything (one that never got a greeting sends nothing).
peer_talked() { find "$T/$1.rec" -name 'conn-*.txt' -size +0c 2>/dev/null | wc -l; }
# peer_stop NAME: SIGTERM; it writes what its open connections received and exits.
peer_stop() {
	local pid
	pid=$(peer_pid "$1")
	kill "$pid" 2>/dev/null
	wait_exit "$pid" 10 || bad "peer $1 did not stop on SIGTERM"
}
# peer_done NAME SECONDS: the peer ends by itself once every scripted
# connection closed; status 0 means the milter sent what the script expected.
peer_done() {
	local pid
	pid=$(peer_pid "$1")
	if wait_exit "$pid" "$2"; then
		if [ "$WAIT_RC" -eq 0 ]; then
			ok "peer $1 ran its script to the end"
		else
			bad "peer $1: got exit $WAIT_RC ($(tail -1 "$T/$1.out")), want 0"
		fi
	else
		bad "peer $1 still running after $2 s"
	fi
}

# --- configuration: etc/gw.conf with the test's values -------------------------

# set_key FILE KEY VALUE: the key must exist in etc/gw.conf (same keys as the table).
set_key() {
	grep -q "^$2 =" "$1" || bad "etc/gw.conf has no key $2"
	sed -i "s|^$2 =.*|$2 = $3|" "$1"
}

# mh_conf NAME [KEY=VALUE...]: $T/NAME.conf, and CONF pointing at it.
mh_conf() {
	local name=$1 kv
	shift
	CONF=$T/$name.conf
	cp "$SRC/etc/gw.conf" "$CONF"
	set_key "$CONF" socket "unix:$T/$name.sock"
	set_key "$CONF" control_socket "$T/$name.control"
	set_key "$CONF" pid_file "$T/$name.pid"
	set_key "$CONF" log stderr
	set_key "$CONF" log_level debug
	set_key "$CONF" routes "$T/routes"
	set_key "$CONF" tls none
	for kv in "$@"; do
		set_key "$CONF" "${kv%%=*}" "${kv#*=}"
	done
}

# --- the daemon -------------------------------------------------------------------

# milter_start NAME [ARGS...]: 1 if its socket did not appear.
milter_start() {
	local name=$1
	shift
	LOG=$T/$name.log
	SOCK=unix:$T/$name.sock
	CTL=$T/$name.control
	"$MILTER" -f -c "$T/$name.conf" "$@" 2>>"$LOG" &
	MPID=$!
	PIDS+=("$MPID")
	if ! wait_for 10 test -S "$T/$name.sock"; then
		bad "gw-milter $name did not create its socket ($(tail -2 "$LOG"))"
		return 1
	fi
}

# milter_stop: SIGTERM; exit status 0 also says the sanitizers found nothing.
milter_stop() {
	kill -TERM "$MPID"
	if wait_exit "$MPID" 30; then
		[ "$WAIT_RC" -eq 0 ]
		verdict $? "gw-milter stopped on SIGTERM, exit $WAIT_RC ($(grep -E 'ERROR|leak' "$LOG" | head -2))"
	else
		bad "gw-milter did not stop on SIGTERM"
	fi
}

ctl() { "$MILTER" -C "$CTL" "$@"; }

# Lua helpers for every scenario: open a connection, MAIL, RCPT (prints
# "RCPT ADDR KIND"), end of message.
mh_write_lua_lib() {
	cat >"$T/lib.lua" <<'EOF'
function check(r, what) if r ~= nil then error(what .. ": " .. tostring(r)) end end
function open(client)
  local c = mt.connect(sock, 40, 0.25)
  if c == nil then error("connect " .. sock) end
  check(mt.conninfo(c, "client.test", client), "conninfo")
  if mt.getreply(c) ~= SMFIR_CONTINUE then error("connect not continued") end
  return c
end
function mail(c, qid, auth)
  if auth then check(mt.macro(c, SMFIC_MAIL, "i", qid, "{auth_authen}", auth), "macro mail")
  else check(mt.macro(c, SMFIC_MAIL, "i", qid), "macro mail") end
  check(mt.mailfrom(c, "<sender@remote.test>"), "mailfrom")
  if mt.getreply(c) ~= SMFIR_CONTINUE then error("MAIL not continued") end
end
local names = {}
names[SMFIR_CONTINUE] = "continue"; names[SMFIR_REPLYCODE] = "replycode"
names[SMFIR_TEMPFAIL] = "tempfail"; names[SMFIR_REJECT] = "reject"; names[SMFIR_ACCEPT] = "accept"
function rcpt(c, addr, mailer)
  check(mt.macro(c, SMFIC_RCPT, "{rcpt_mailer}", mailer or "smtp", "{rcpt_addr}", addr), "macro rcpt")
  check(mt.rcptto(c, "<" .. addr .. ">"), "rcptto " .. addr)
  local r = mt.getreply(c)
  print("RCPT " .. addr:gsub("[%c]", "?") .. " " .. (names[r] or tostring(r)))
end
function finish(c)
  check(mt.eom(c), "eom")
  if mt.getreply(c) ~= SMFIR_CONTINUE then error("eom not continued") end
end
-- one message from one client to the given recipients, on its own connection
function message(client, qid, ...)
  local c = open(client)
  mail(c, qid)
  for _, a in ipairs({...}) do rcpt(c, a) end
  finish(c)
  mt.disconnect(c)
end
EOF
}

# run_lua NAME [-D NAME=VALUE...]: $T/NAME.lua after lib.lua; output in $T/lua-NAME.out
run_lua() {
	local name=$1
	shift
	LUA_LAST=$T/lua-$name.out
	cat "$T/lib.lua" "$T/$name.lua" >"$T/$name.all.lua"
	if ! timeout 120 miltertest -D sock="$SOCK" "$@" -s "$T/$name.all.lua" >"$LUA_LAST" 2>&1; then
		bad "miltertest $name: $(tail -3 "$LUA_LAST")"
	fi
}
# got ADDR: the reply kind miltertest saw for ADDR in the last run
got() { awk -v a="$1" '$1 == "RCPT" && $2 == a { print $3 }' "$LUA_LAST" | tail -1; }
# logline ADDR: the milter's last decision line for ADDR (as the log writes it)
logline() { grep -F " rcpt=$1 " "$LOG" | grep ': rcpt ' | tail -1; }
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
# reply_text ADDR: "CODE ENH TEXT" of the last reply the milter set for ADDR
reply_text() { grep -F "rcpt_reply" "$LOG" | grep -F " rcpt=$1 " | tail -1 | sed -n 's/.* reply="\(.*\)"$/\1/p'; }
ms_of() { field "$(logline "$1")" ms; }

# expect ADDR KIND VERDICT SOURCE REPLY ["CODE ENH TEXT"]
expect() {
	local l g
	l=$(logline "$1")
	g=$(got "$1")
	if [ "$g" != "$2" ]; then
		bad "$1: miltertest got '$g', want $2"
		return 1
	fi
	if [ "$(field "$l" verdict)" != "$3" ] || [ "$(field "$l" source)" != "$4" ] || [ "$(field "$l" reply)" != "$5" ]; then
		bad "$1: got log '$l', want verdict=$3 source=$4 reply=$5"
		return 1
	fi
	if [ $# -ge 6 ] && [ "$(reply_text "$1")" != "$6" ]; then
		bad "$1: got reply '$(reply_text "$1")', want '$6'"
		return 1
	fi
	ok "$1 -> $2 ($3, $4, $5)"
}

mh_finish() {
	if [ "$FAILS" -ne 0 ]; then
		echo "$FAILS check(s) failed; log: ${LOG:-none}"
		exit 1
	fi
	echo "all checks passed"
	exit 0
}
