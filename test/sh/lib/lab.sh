# shellcheck shell=bash
# lab.sh - a throw-away mail lab on loopback for gw-milter's end-to-end tests,
# benchmark and demo. Source it (bash); it defines functions only.
#
#   lab_init                        make $LAB (one mktemp -d) and the stop trap list
#   lab_port                        print a free loopback TCP port below the ephemeral
#                                   range, held for this test only (lib/ports.sh)
#   lab_internal_start NAME PORT USER@DOMAIN...
#                                   an "internal MTA": Postfix on 127.0.0.1:PORT that
#                                   knows these users (virtual mailboxes, maildirs under
#                                   $LAB/NAME/mail) and answers 550 5.1.1 for others
#   lab_gateway_start NAME PORT MILTER_PORT ROUTES [DOMAINS]
#                                   a gateway Postfix on 127.0.0.1:PORT: etc/postfix/
#                                   main.cf.fragment appended, smtpd_milters pointed at
#                                   MILTER_PORT (empty: no milter; "fragment": the
#                                   fragment's own unix socket), relays DOMAINS via
#                                   the ROUTES file used as transport_maps (texthash)
#   lab_gateway_milter_sock NAME    the path where instance NAME's smtpd finds the
#                                   fragment's smtpd_milters socket (under its queue
#                                   directory); makes the directory
#   lab_postfix_stop NAME / lab_postfix_start NAME
#                                   stop / start again an instance made above
#   lab_milter_conf PORT ROUTES [KEY=VALUE...]
#                                   (PORT: a port, or unix:/path for a unix socket)
#                                   write $LAB/milter/gw.conf: etc/gw.conf with socket,
#                                   routes, pid_file, control_socket and log changed
#   lab_milter_start BUILD          start BUILD/milter/gw-milter -f on that config
#                                   (LAB_MILTER_BIN overrides the path), stderr to
#                                   $LAB/milter/log
#   lab_milter_stop
#   lab_bg NAME CMD...              run CMD in the background, output to $LAB/NAME.log;
#                                   its PID is stopped by lab_stop_all (or lab_bg_stop NAME)
#   lab_stop_all                    stop everything started, by PID; remove $LAB
#   lab_queue_count NAME            messages in an instance's queue
#   lab_wait_port PORT SECS / lab_wait_closed PORT SECS / lab_wait_file GLOB SECS
#   lab_swaks PORT FILE SWAKS-ARGS  swaks to 127.0.0.1:PORT from sender@ext.test, transcript
#                                   to FILE (its exit status is ignored: read the replies)
#   lab_rcpt_reply FILE ADDR        the reply to "RCPT TO:<ADDR>" in a swaks transcript
#   lab_smtp PORT                   raw SMTP: one command per stdin line (escapes \r
#                                   \n \xHH), prints "C: cmd" / "S: reply" lines
#
# Every wait is bounded. Needs root (Postfix's master runs as root), postfix,
# swaks, ss and /usr/bin/python3. Postfix instances have their own
# config_directory, queue and maillog_file ($LAB/NAME/maillog); nothing in
# /etc/postfix is read or changed, no systemd, no syslog.
#
# Pitfalls handled: `postfix check` creates the queue tree (and reports errors
# only in the maillog); maillog_file needs the postlog service and
# maillog_file_prefixes; two instances on one host need different
# myhostname or the gateway sees a mail loop; libmilter needs a few seconds to
# leave its accept loop after SIGTERM.

LAB_SRC=${LAB_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
LAB=
# shellcheck source-path=SCRIPTDIR source=ports.sh
. "$LAB_SRC/test/sh/lib/ports.sh"

lab_log() { echo "lab: $*" >&2; }

lab_init() {
	LAB=$(mktemp -d "${TMPDIR:-/tmp}/gw-lab.XXXXXX") || return 1
	# Postfix's virtual(8) delivers as nobody: the tree must be traversable.
	chmod 755 "$LAB"
	: >"$LAB/instances"
	LAB_MILTER_PID=
}

# A free port below the ephemeral range, claimed for this test until lab_stop_all
# (lib/ports.sh: a claim file per port, so $(lab_port) in a subshell keeps it).
lab_port() { port_claim; }

lab_listening() { [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]; }

lab_wait_port() {   # PORT SECONDS: until something listens on 127.0.0.1:PORT
	for _ in $(seq $(($2 * 10))); do
		lab_listening "$1" && return 0
		sleep 0.1
	done
	lab_log "nothing listens on port $1 after $2 s"
	return 1
}

lab_wait_closed() {   # PORT SECONDS: until nothing listens on PORT
	for _ in $(seq $(($2 * 10))); do
		lab_listening "$1" || return 0
		sleep 0.1
	done
	lab_log "port $1 still open after $2 s"
	return 1
}

lab_wait_file() {   # GLOB SECONDS: until a file matches GLOB
	local f
	for _ in $(seq $(($2 * 10))); do
		for f in $1; do [ -e "$f" ] && return 0; done
		sleep 0.1
	done
	return 1
}

lab_wait_pid() {   # PID SECONDS: until PID is gone; 1 if still there
	for _ in $(seq $(($2 * 10))); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

# ---- Postfix instances ----------------------------------------------------

lab_master_cf() {   # PORT: smtpd on 127.0.0.1:PORT and the services a relay needs
	cat <<EOF
127.0.0.1:$1 inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
virtual   unix  - n n -  - virtual
lmtp      unix  - - n -  - lmtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
}

lab_main_cf() {   # NAME: the common part of every instance's main.cf
	local d=$LAB/$1
	cat <<EOF
# throw-away instance "$1" made by test/sh/lib/lab.sh
compatibility_level = 3.6
myhostname = $1.lab.invalid
mydomain = lab.invalid
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
queue_directory = $d/spool
data_directory = $d/data
maillog_file = $d/maillog
maillog_file_prefixes = $LAB
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
alias_maps =
alias_database =
local_recipient_maps =
notify_classes =
biff = no
smtpd_banner = \$myhostname ESMTP
# tests are fast and local: retry deferred mail quickly, give up quickly
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
smtp_connect_timeout = 5s
EOF
}

lab_instance_dirs() {   # NAME
	local d=$LAB/$1
	mkdir -p "$d/etc" "$d/spool" "$d/data"
	chown postfix "$d/data"
	echo "$1" >>"$LAB/instances"
}

# Start (or restart) instance NAME; wait until its smtpd listens.
lab_postfix_start() {
	local d=$LAB/$1 port
	port=$(cat "$d/port")
	if ! postfix -c "$d/etc" check >"$d/check.log" 2>&1; then
		lab_log "postfix check failed for $1:"; cat "$d/check.log" "$d/maillog" 2>/dev/null >&2
		return 1
	fi
	rm -f "$d/spool/pid/master.pid"
	postfix -c "$d/etc" start-fg >>"$d/start-fg.log" 2>&1 &
	echo $! >"$d/wrapper.pid"
	if ! lab_wait_port "$port" 15 || ! lab_wait_file "$d/spool/pid/master.pid" 5; then
		lab_log "postfix $1 did not start:"; tail -20 "$d/start-fg.log" "$d/maillog" 2>/dev/null >&2
		return 1
	fi
	tr -d ' \n' <"$d/spool/pid/master.pid" >"$d/master.pid"
}

# Stop instance NAME by its master's PID; wait until the port is closed.
lab_postfix_stop() {
	local d=$LAB/$1 pid wpid port kids k
	[ -f "$d/master.pid" ] || return 0
	pid=$(cat "$d/master.pid"); wpid=$(cat "$d/wrapper.pid" 2>/dev/null || true)
	port=$(cat "$d/port")
	# The master's children: an smtpd in a session outlives an orderly stop (it finishes
	# the session, up to smtpd_timeout), so a client's pooled connection would still be
	# answered. A stopped MTA here answers nobody: they are stopped too, by PID.
	kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
	kill -TERM "$pid" 2>/dev/null || true
	lab_wait_pid "$pid" 15 || kill -KILL "$pid" 2>/dev/null || true
	for k in $kids; do
		kill -TERM "$k" 2>/dev/null || true
		lab_wait_pid "$k" 5 || kill -KILL "$k" 2>/dev/null || true
	done
	if [ -n "$wpid" ]; then
		lab_wait_pid "$wpid" 5 || kill -KILL "$wpid" 2>/dev/null || true
		wait "$wpid" 2>/dev/null || true
	fi
	rm -f "$d/master.pid" "$d/wrapper.pid"
	lab_wait_closed "$port" 10
}

# The internal MTA: knows the listed users, rejects others with 550 5.1.1,
# delivers to maildirs $LAB/NAME/mail/USER@DOMAIN/new/.
lab_internal_start() {
	local name=$1 port=$2 d=$LAB/$1 u domains
	shift 2
	lab_instance_dirs "$name"
	echo "$port" >"$d/port"
	mkdir -p "$d/mail"; chown nobody:nogroup "$d/mail"
	: >"$d/users"
	for u in "$@"; do echo "$u $u/" >>"$d/users"; done
	domains=$(printf '%s\n' "$@" | sed 's/.*@//' | sort -u | paste -sd, -)
	lab_master_cf "$port" >"$d/etc/master.cf"
	{
		lab_main_cf "$name"
		cat <<EOF
# the internal MTA: virtual mailboxes, unknown users refused at RCPT (550 5.1.1)
virtual_mailbox_domains = $domains
virtual_mailbox_maps = texthash:$d/users
virtual_mailbox_base = $d/mail
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(getent group nogroup | cut -d: -f3)
virtual_minimum_uid = 1
smtpd_reject_unlisted_recipient = yes
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
EOF
	} >"$d/etc/main.cf"
	lab_postfix_start "$name"
}

# The gateway: the project's fragment appended, per-test values with postconf -e.
lab_gateway_start() {
	local name=$1 port=$2 mport=$3 routes=$4 domains=${5:-example.com} d=$LAB/$1
	lab_instance_dirs "$name"
	echo "$port" >"$d/port"
	lab_master_cf "$port" >"$d/etc/master.cf"
	{
		lab_main_cf "$name"
		cat <<EOF
# the gateway: an Internet-facing MX relaying to the internal MTAs
relay_domains = $domains
transport_maps = texthash:$routes
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions =

EOF
		cat "$LAB_SRC/etc/postfix/main.cf.fragment"
	} >"$d/etc/main.cf"
	if [ "$mport" = fragment ]; then
		: # the fragment's smtpd_milters, a unix socket relative to the queue directory
	elif [ -n "$mport" ]; then
		postconf -c "$d/etc" -e "smtpd_milters = inet:127.0.0.1:$mport"
	else
		postconf -c "$d/etc" -e "smtpd_milters ="
	fi
	lab_postfix_start "$name"
}

# Where instance NAME's smtpd finds the fragment's smtpd_milters (a path relative to
# its queue directory, as a chrooted smtpd would): make the directory, print the path.
lab_gateway_milter_sock() {
	local rel dir
	rel=$(sed -n 's/^smtpd_milters = unix:\(.*\)$/\1/p' "$LAB_SRC/etc/postfix/main.cf.fragment")
	[ -n "$rel" ] || { lab_log "etc/postfix/main.cf.fragment has no smtpd_milters = unix:PATH"; return 1; }
	dir=$LAB/$1/spool/$(dirname "${rel#/}")
	mkdir -p "$dir" && chgrp postfix "$dir" && chmod 750 "$dir" || return 1
	echo "$LAB/$1/spool/${rel#/}"
}

lab_queue_count() {   # NAME: queue files (incoming, active, deferred, hold, maildrop)
	local s=$LAB/$1/spool
	find "$s/incoming" "$s/active" "$s/deferred" "$s/hold" "$s/maildrop" -type f 2>/dev/null | wc -l
}

# ---- gw-milter ------------------------------------------------------------

lab_conf_set() {   # FILE KEY VALUE: change KEY's value in a gw.conf (keeps the comment)
	local f=$1 k=$2 v=$3
	if grep -qE "^${k}[[:space:]]*=" "$f"; then
		sed -i -E "s|^(${k}[[:space:]]*=)[^#]*|\\1 $v   |" "$f"
	else
		echo "$k = $v" >>"$f"
	fi
}

# etc/gw.conf with the lab's socket, routes and paths; further KEY=VALUE pairs override.
lab_milter_conf() {
	local port=$1 routes=$2 kv c=$LAB/milter/gw.conf
	shift 2
	mkdir -p "$LAB/milter"
	cp "$LAB_SRC/etc/gw.conf" "$c"
	case $port in
	unix:*) lab_conf_set "$c" socket "$port" ;;
	*) lab_conf_set "$c" socket "inet:$port@127.0.0.1" ;;
	esac
	lab_conf_set "$c" control_socket "$LAB/milter/control"
	lab_conf_set "$c" pid_file "$LAB/milter/gw-milter.pid"
	lab_conf_set "$c" routes "$routes"
	lab_conf_set "$c" log stderr
	for kv in "$@"; do lab_conf_set "$c" "${kv%%=*}" "${kv#*=}"; done
	echo "$port" >"$LAB/milter/port"
}

lab_milter_start() {   # BUILD
	local bin=${LAB_MILTER_BIN:-$1/milter/gw-milter} c=$LAB/milter/gw.conf port
	port=$(cat "$LAB/milter/port")
	if ! "$bin" -c "$c" -n >"$LAB/milter/check.log" 2>&1; then
		lab_log "gw-milter -n refused $c:"; cat "$LAB/milter/check.log" >&2
		return 1
	fi
	"$bin" -c "$c" -f >>"$LAB/milter/log" 2>&1 &
	LAB_MILTER_PID=$!
	echo "$LAB_MILTER_PID" >"$LAB/milter/pid"
	if [[ $port == unix:* ]]; then
		if ! lab_wait_file "${port#unix:}" 15 || ! [ -S "${port#unix:}" ]; then
			lab_log "gw-milter did not make its socket ${port#unix:}:"; tail -20 "$LAB/milter/log" >&2
			return 1
		fi
	elif ! lab_wait_port "$port" 15; then
		lab_log "gw-milter did not listen on $port:"; tail -20 "$LAB/milter/log" >&2
		return 1
	fi
}

lab_milter_stop() {
	local pid
	pid=$(cat "$LAB/milter/pid" 2>/dev/null) || return 0
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	lab_wait_pid "$pid" 15 || { lab_log "gw-milter $pid ignored SIGTERM; killing"; kill -KILL "$pid" 2>/dev/null || true; }
	wait "$pid" 2>/dev/null || true
	rm -f "$LAB/milter/pid"
	LAB_MILTER_PID=
}

lab_bg() {   # NAME CMD...
	local name=$1
	shift
	"$@" >"$LAB/$name.log" 2>&1 &
	echo "$name $!" >>"$LAB/bg"
}

lab_bg_stop() {   # NAME: stop the background process(es) started under NAME
	local n pid
	[ -f "$LAB/bg" ] || return 0
	while read -r n pid; do
		[ "$n" = "$1" ] || continue
		kill -TERM "$pid" 2>/dev/null || true
		lab_wait_pid "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done <"$LAB/bg"
	sed -i "/^$1 /d" "$LAB/bg"
}

# Stop everything this lab started (milter, then each Postfix), by PID; remove $LAB;
# give back the ports it claimed.
# LAB_KEEP=1 keeps the directory for a post-mortem.
lab_stop_all() {
	local n
	port_release_all
	[ -n "$LAB" ] && [ -d "$LAB" ] || return 0
	lab_milter_stop
	if [ -f "$LAB/bg" ]; then
		for n in $(cut -d' ' -f1 "$LAB/bg" | sort -u); do lab_bg_stop "$n"; done
	fi
	while read -r n; do lab_postfix_stop "$n" >/dev/null 2>&1 || true; done <"$LAB/instances"
	if [ "${LAB_KEEP:-0}" = 1 ]; then
		lab_log "kept $LAB"
	else
		rm -rf "$LAB"
	fi
	LAB=
}

# ---- SMTP clients ---------------------------------------------------------

lab_swaks() {
	local port=$1 out=$2
	shift 2
	timeout 60 swaks -4 --server 127.0.0.1 --port "$port" --helo client.ext.test \
		--from sender@ext.test --timeout 40 "$@" >"$out" 2>&1 || true
}

# The reply (first line, without swaks' prefix) to RCPT TO:<ADDR> in a swaks transcript.
lab_rcpt_reply() {
	awk -v want="RCPT TO:<$2>" '
		found && /^ *<(-|~|\*\*)/ { sub(/^ *<(-|~|\*\*) */, ""); print; exit }
		index($0, want) { found = 1 }' "$1"
}

# Raw SMTP on 127.0.0.1:PORT. stdin: one command per line, escapes \r \n \t \\ \xHH,
# CRLF appended. Waits for the greeting and each reply (10 s bound each).
lab_smtp() {
	/usr/bin/python3 -c '
import socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if not line:
            print("S: (connection closed)"); sys.stdout.flush(); return False
        print("S: " + line.decode("latin-1").rstrip("\r\n")); sys.stdout.flush()
        if len(line) < 4 or line[3:4] != b"-":
            return True
if not reply():
    sys.exit(1)
for cmd in sys.stdin.read().splitlines():
    if not cmd:
        continue
    raw = cmd.encode("latin-1").decode("unicode_escape").encode("latin-1")
    print("C: " + repr(raw)[2:-1]); sys.stdout.flush()
    s.sendall(raw + b"\r\n")
    if not reply():
        break
s.close()
' "$1"
}
