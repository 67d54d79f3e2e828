# shellcheck shell=bash
# fleet.sh - the multihomed fleet lab: two gateways between the Internet and an
# internal MTA, each host in its own network namespace, every link cuttable on
# its own. Source it (bash); it defines functions only. Needs root, iproute2,
# postfix, swaks, ss, python3.
#
#   Internet side, bridge brx (ns $FLEET_TAG-sw), 10.77.0.0/24:
#     ext   10.77.0.1   the sending Internet MTA (Postfix "ext")
#           10.77.0.21  dest-a.example's MX (Postfix "dest-a"), same namespace
#           10.77.0.22  dest-b.example's MX (Postfix "dest-b"), same namespace
#     gw1   10.77.0.11  gateway Postfix + gw-milter (inbound)
#     gw2   10.77.0.12
#   Internal side, bridge bri, 10.78.0.0/24:
#     gw1   10.78.0.11  gw-lmtpd on :24 (outbound)
#     gw2   10.78.0.12
#     int   10.78.0.1   the internal Postfix: mailboxes for example.org,
#                       outbound over LMTP to gw1 then gw2
#
#   fleet_init                   $LAB (mktemp -d), the namespace tag, the stop list
#   fleet_net_up                 namespaces, bridges, veth pairs, addresses
#   fleet_up BUILD               fleet_net_up and every daemon, configured from
#                                etc/ with only addresses and paths changed
#   fleet_cut HOST LINK / fleet_restore HOST LINK
#                                LINK x0 (Internet side) or i0 (internal side),
#                                set down/up inside HOST's namespace
#   fleet_postfix_stop NAME / fleet_postfix_start NAME
#   fleet_lmtpd_stop GW / fleet_lmtpd_start GW
#   fleet_inbound CASE RCPT...   swaks into ext's smtpd; "X-Fleet-Case: CASE"
#   fleet_outbound CASE RCPT...  swaks into int's smtpd (sender alice@example.org)
#   fleet_rcpt_reply GW RCPT     the RCPT reply GW's smtpd gives (from ext)
#   fleet_delivered CASE RCPT    copies of the CASE message in RCPT's mailbox
#   fleet_queue NAME             messages in instance NAME's queue (postqueue -j;
#                                queue files when the instance is stopped)
#   fleet_spool GW               files in GW's gw-lmtpd spool directory
#   fleet_wait SECS CMD...       until CMD succeeds, polled every 0.2 s
#   fleet_down                   stop everything by PID, delete the namespaces and $LAB
#
# FLEET_GW_CONF, FLEET_LMTPD_CONF, FLEET_GATEWAY_FRAGMENT, FLEET_INTERNAL_FRAGMENT
# name the gw.conf, gw-lmtpd.conf and Postfix fragments used (default: etc/).
#
# Links are cut on the host's side (`ip link set down`): the host loses the route
# at once, so a connect fails with "network unreachable" rather than waiting out a
# timeout. Destinations a gateway cannot reach get an "unreachable" route in its
# namespace (fleet_block GW ADDR). The namespaces are named with FLEET_TAG (default
# fl<PID>), so runs in parallel coexist; nothing outside $LAB and those namespaces
# is touched. Does not defend against: another program deleting our namespaces.

FLEET_SRC=${FLEET_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
# shellcheck source-path=SCRIPTDIR source=../../sh/lib/lab.sh
. "$FLEET_SRC/test/sh/lib/lab.sh"

# The configurations the gateways use; an operator may point these at their own
# (only addresses, paths and the log destination are changed for the lab).
FLEET_GW_CONF=${FLEET_GW_CONF:-$FLEET_SRC/etc/gw.conf}
FLEET_LMTPD_CONF=${FLEET_LMTPD_CONF:-$FLEET_SRC/etc/gw-lmtpd.conf}
FLEET_GATEWAY_FRAGMENT=${FLEET_GATEWAY_FRAGMENT:-$FLEET_SRC/etc/postfix/main.cf.fragment}
FLEET_INTERNAL_FRAGMENT=${FLEET_INTERNAL_FRAGMENT:-$FLEET_SRC/etc/postfix/internal-lmtp.cf.fragment}

FLEET_HOSTS="ext gw1 gw2 int"
FLEET_POSTFIX="dest-a dest-b int gw1 gw2 ext"
FLEET_TAG=

fleet_log() { echo "fleet: $*" >&2; }

fleet_ns() {   # HOST or instance NAME -> its namespace
	case $1 in
	dest-a | dest-b | ext) echo "$FLEET_TAG-ext" ;;
	sw | gw1 | gw2 | int) echo "$FLEET_TAG-$1" ;;
	*) fleet_log "no host $1"; return 1 ;;
	esac
}
fleet_in() { local ns; ns=$(fleet_ns "$1") || return 1; shift; ip netns exec "$ns" "$@"; }
fleet_addr() {   # instance NAME -> its smtpd listen address
	case $1 in
	ext) echo 10.77.0.1 ;; dest-a) echo 10.77.0.21 ;; dest-b) echo 10.77.0.22 ;;
	gw1) echo 10.77.0.11 ;; gw2) echo 10.77.0.12 ;; int) echo 10.78.0.1 ;;
	esac
}
fleet_lmtp_addr() { case $1 in gw1) echo 10.78.0.11 ;; gw2) echo 10.78.0.12 ;; esac; }

fleet_available() {   # prints why the lab cannot run here; 1 if so
	[ "$(id -u)" -eq 0 ] || { echo "needs root (namespaces, Postfix's master)"; return 1; }
	local t
	for t in ip postfix postconf postqueue swaks ss /usr/bin/python3; do
		command -v "$t" >/dev/null || { echo "$t not installed (scripts/install-deps)"; return 1; }
	done
	local probe=gwfleet-probe-$$
	ip netns add "$probe" 2>/dev/null || { echo "cannot create network namespaces (ip netns add)"; return 1; }
	if ! ip -n "$probe" link add p0 type veth peer name p1 2>/dev/null; then
		ip netns del "$probe"
		echo "cannot create veth pairs"
		return 1
	fi
	ip netns del "$probe"
}

fleet_init() {
	lab_init || return 1
	FLEET_TAG=${FLEET_TAG:-fl$$}
	echo "$FLEET_TAG" >"$LAB/tag"
	: >"$LAB/namespaces"
}

fleet_wait() {   # SECONDS CMD...
	local s=$1 i
	shift
	for ((i = 0; i < s * 5; i++)); do
		"$@" && return 0
		sleep 0.2
	done
	"$@"
}

# ---- network -----------------------------------------------------------------

fleet_plug() {   # HOST IFNAME BRIDGE ADDR...
	local h=$1 i=$2 br=$3 a p=$1-$2 sw ns
	shift 3
	sw=$(fleet_ns sw); ns=$(fleet_ns "$h")
	ip link add "$p" netns "$sw" type veth peer name "$i" netns "$ns" || return 1
	ip -n "$sw" link set "$p" master "$br" up || return 1
	for a in "$@"; do ip -n "$ns" addr add "$a/24" dev "$i" || return 1; done
	ip -n "$ns" link set "$i" up
}

fleet_net_up() {
	local h ns sw
	for h in sw $FLEET_HOSTS; do
		ns=$(fleet_ns "$h")
		ip netns add "$ns" || { fleet_log "ip netns add $ns failed"; return 1; }
		echo "$ns" >>"$LAB/namespaces"
		ip -n "$ns" link set lo up
	done
	sw=$(fleet_ns sw)
	ip -n "$sw" link add brx type bridge && ip -n "$sw" link set brx up || return 1
	ip -n "$sw" link add bri type bridge && ip -n "$sw" link set bri up || return 1
	fleet_plug ext x0 brx 10.77.0.1 10.77.0.21 10.77.0.22 &&
		fleet_plug gw1 x0 brx 10.77.0.11 &&
		fleet_plug gw2 x0 brx 10.77.0.12 &&
		fleet_plug gw1 i0 bri 10.78.0.11 &&
		fleet_plug gw2 i0 bri 10.78.0.12 &&
		fleet_plug int i0 bri 10.78.0.1 || return 1
	# a bridge port needs a moment to forward; wait until each gateway reaches its peers
	for h in gw1 gw2; do
		if ! fleet_wait 20 fleet_reach "$h" 10.77.0.1 || ! fleet_wait 20 fleet_reach "$h" 10.78.0.1; then
			fleet_log "$h cannot reach its peers"
			return 1
		fi
	done
}

# HOST reaches ADDR: a TCP connection to port 9 (discard, nothing listens) is
# answered, accepted or refused, within a second.
fleet_reach() {
	fleet_in "$1" /usr/bin/python3 -c '
import socket, sys
try:
    socket.create_connection((sys.argv[1], 9), timeout=1).close()
except ConnectionRefusedError:
    pass
except OSError:
    sys.exit(1)' "$2"
}

fleet_cut() { ip -n "$(fleet_ns "$1")" link set "$2" down; }
fleet_restore() { ip -n "$(fleet_ns "$1")" link set "$2" up; }
# GW can no longer reach ADDR (a route of type unreachable: connects fail at once)
fleet_block() { ip -n "$(fleet_ns "$1")" route add unreachable "$2/32"; }
fleet_unblock() { ip -n "$(fleet_ns "$1")" route del unreachable "$2/32"; }

# ---- Postfix -----------------------------------------------------------------

fleet_master_cf() {   # ADDR: smtpd on ADDR:25 only (inet_interfaces = all: see below)
	lab_master_cf 25 | sed "1s/^127\.0\.0\.1:25 /$1:25 /"
}

fleet_main_cf() {   # NAME
	local d=$LAB/$1
	cat <<EOF
# throw-away instance "$1" made by test/fleet/lib/fleet.sh
compatibility_level = 3.6
myhostname = $1.fleet.invalid
mydomain = fleet.invalid
myorigin = \$myhostname
mydestination =
# "all" with the listen address in master.cf: a single non-loopback address here
# would also become the SMTP client's source address.
inet_interfaces = all
inet_protocols = ipv4
queue_directory = $d/spool
data_directory = $d/data
maillog_file = $d/maillog
maillog_file_prefixes = $LAB
smtp_dns_support_level = disabled
alias_maps =
alias_database =
local_recipient_maps =
notify_classes =
biff = no
smtpd_banner = \$myhostname ESMTP
# the lab retries within seconds (postqueue -f / -i trigger it at once)
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
smtp_connect_timeout = 5s
EOF
}

fleet_mailboxes() {   # NAME USER@DOMAIN...: virtual mailboxes, unknown users 550 5.1.1
	local name=$1 d=$LAB/$1 u domains
	shift
	mkdir -p "$d/mail"; chown nobody:nogroup "$d/mail"
	: >"$d/users"
	for u in "$@"; do echo "$u $u/" >>"$d/users"; done
	domains=$(printf '%s\n' "$@" | sed 's/.*@//' | sort -u | paste -sd, -)
	cat <<EOF
virtual_mailbox_domains = $domains
virtual_mailbox_maps = texthash:$d/users
virtual_mailbox_base = $d/mail
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(getent group nogroup | cut -d: -f3)
virtual_minimum_uid = 1
smtpd_reject_unlisted_recipient = yes
EOF
}

fleet_listening() {   # NAME: its smtpd listens
	fleet_in "$1" ss -Htln 2>/dev/null | grep -q " $(fleet_addr "$1"):25 "
}

fleet_postfix_start() {   # NAME
	local n=$1 d=$LAB/$1 ns
	ns=$(fleet_ns "$n")
	if ! postfix -c "$d/etc" check >"$d/check.log" 2>&1; then
		fleet_log "postfix check failed for $n:"; cat "$d/check.log" "$d/maillog" 2>/dev/null >&2
		return 1
	fi
	rm -f "$d/spool/pid/master.pid"
	ip netns exec "$ns" postfix -c "$d/etc" start-fg >>"$d/start-fg.log" 2>&1 &
	echo $! >"$d/wrapper.pid"
	if ! fleet_wait 30 fleet_listening "$n" || ! fleet_wait 10 test -s "$d/spool/pid/master.pid"; then
		fleet_log "postfix $n did not start:"; tail -20 "$d/start-fg.log" "$d/maillog" 2>/dev/null >&2
		return 1
	fi
	tr -d ' \n' <"$d/spool/pid/master.pid" >"$d/master.pid"
}

fleet_postfix_stop() {   # NAME: its master and the master's children, by PID
	local n=$1 d=$LAB/$1 pid wpid kids k
	[ -f "$d/master.pid" ] || return 0
	pid=$(cat "$d/master.pid"); wpid=$(cat "$d/wrapper.pid" 2>/dev/null || true)
	kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
	kill -TERM "$pid" 2>/dev/null || true
	lab_wait_pid "$pid" 20 || kill -KILL "$pid" 2>/dev/null || true
	for k in $kids; do
		kill -TERM "$k" 2>/dev/null || true
		lab_wait_pid "$k" 5 || kill -KILL "$k" 2>/dev/null || true
	done
	if [ -n "$wpid" ]; then
		lab_wait_pid "$wpid" 10 || kill -KILL "$wpid" 2>/dev/null || true
		wait "$wpid" 2>/dev/null || true
	fi
	rm -f "$d/master.pid" "$d/wrapper.pid"
	fleet_wait 15 fleet_not_listening "$n"
}
fleet_not_listening() { ! fleet_listening "$1"; }

fleet_instance() {   # NAME: directories; main.cf/master.cf written by the caller
	local d=$LAB/$1
	mkdir -p "$d/etc" "$d/spool" "$d/data"
	chown postfix "$d/data"
	fleet_master_cf "$(fleet_addr "$1")" >"$d/etc/master.cf"
}

fleet_dest_setup() {   # NAME USER@DOMAIN...
	local n=$1
	shift
	fleet_instance "$n"
	{
		fleet_main_cf "$n"
		fleet_mailboxes "$n" "$@"
		echo "smtpd_relay_restrictions = reject_unauth_destination"
	} >"$LAB/$n/etc/main.cf"
}

fleet_ext_setup() {
	fleet_instance ext
	echo "example.org  smtp:[10.77.0.11]:25, [10.77.0.12]:25" >"$LAB/ext/transport"
	{
		fleet_main_cf ext
		cat <<EOF
# the Internet: our domain's two MXs, gw1 first (a Postfix 3.5+ next-hop list
# in MX order; a 4xx from gw1 for a recipient hands it to gw2 at once)
transport_maps = texthash:$LAB/ext/transport
mynetworks = 127.0.0.0/8 10.77.0.1/32
smtpd_relay_restrictions = permit_mynetworks, reject
EOF
	} >"$LAB/ext/etc/main.cf"
}

fleet_int_setup() {
	fleet_instance int
	{
		fleet_main_cf int
		fleet_mailboxes int alice@example.org bob@example.org
		echo "mynetworks = 127.0.0.0/8 10.78.0.1/32"
		echo "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination"
		sed "s/\[gw1.example.org\]:24/[10.78.0.11]:24/; s/\[gw2.example.org\]:24/[10.78.0.12]:24/" \
			"$FLEET_INTERNAL_FRAGMENT"
	} >"$LAB/int/etc/main.cf"
	grep -q "^default_transport = lmtp:inet:\[10.78.0.11\]:24, \[10.78.0.12\]:24" "$LAB/int/etc/main.cf" || {
		fleet_log "$FLEET_INTERNAL_FRAGMENT: its default_transport next-hop list was not rewritten for the lab"
		return 1
	}
}

fleet_gw_setup() {   # GW BUILD: gateway Postfix, gw-milter, gw-lmtpd configurations
	local g=$1 build=$2 d=$LAB/$1 rel sock
	fleet_instance "$g"
	# one routes file for Postfix's transport_maps and gw-milter (etc/routes' syntax)
	echo "example.org  smtp:[10.78.0.1]:25" >"$d/routes"
	{
		fleet_main_cf "$g"
		cat <<EOF
# the gateway: an Internet-facing MX relaying example.org to the internal MTA
relay_domains = example.org
transport_maps = texthash:$d/routes
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions =

EOF
		cat "$FLEET_GATEWAY_FRAGMENT"
	} >"$d/etc/main.cf"
	# gw-milter's socket where the fragment's smtpd_milters finds it (queue-relative)
	rel=$(sed -n 's/^smtpd_milters = unix:\(.*\)$/\1/p' "$FLEET_GATEWAY_FRAGMENT")
	[ -n "$rel" ] || { fleet_log "$FLEET_GATEWAY_FRAGMENT has no smtpd_milters = unix:PATH"; return 1; }
	sock=$d/spool/${rel#/}
	mkdir -p "$(dirname "$sock")" && chgrp postfix "$(dirname "$sock")" && chmod 750 "$(dirname "$sock")"
	mkdir -p "$d/milter"
	cp "$FLEET_GW_CONF" "$d/milter/gw.conf"
	lab_conf_set "$d/milter/gw.conf" socket "unix:$sock"
	lab_conf_set "$d/milter/gw.conf" socket_group postfix
	lab_conf_set "$d/milter/gw.conf" control_socket "$d/milter/control"
	lab_conf_set "$d/milter/gw.conf" pid_file "$d/milter/pid"
	lab_conf_set "$d/milter/gw.conf" routes "$d/routes"
	lab_conf_set "$d/milter/gw.conf" log stderr
	echo "$sock" >"$d/milter/sock"
	"$build/milter/gw-milter" -c "$d/milter/gw.conf" -n >"$d/milter/check.log" 2>&1 ||
		{ fleet_log "gw-milter -n refused $g's gw.conf:"; cat "$d/milter/check.log" >&2; return 1; }
	# gw-lmtpd: the internal MTA's LMTP on the internal side, destinations by route
	mkdir -p "$d/lmtpd/spool"
	printf '%s\n' "dest-a.example  smtp:[10.77.0.21]:25" "dest-b.example  smtp:[10.77.0.22]:25" >"$d/lmtpd/routes"
	cp "$FLEET_LMTPD_CONF" "$d/lmtpd/gw-lmtpd.conf"
	lab_conf_set "$d/lmtpd/gw-lmtpd.conf" listen "[$(fleet_lmtp_addr "$g")]:24"
	lab_conf_set "$d/lmtpd/gw-lmtpd.conf" control_socket "$d/lmtpd/control"
	lab_conf_set "$d/lmtpd/gw-lmtpd.conf" pid_file "$d/lmtpd/pid"
	lab_conf_set "$d/lmtpd/gw-lmtpd.conf" routes "$d/lmtpd/routes"
	lab_conf_set "$d/lmtpd/gw-lmtpd.conf" spool_dir "$d/lmtpd/spool"
	lab_conf_set "$d/lmtpd/gw-lmtpd.conf" log stderr
	lab_conf_set "$d/lmtpd/gw-lmtpd.conf" hostname "$g.fleet.invalid"
	lab_conf_set "$d/lmtpd/gw-lmtpd.conf" helo_name "$g.fleet.invalid"
	"$build/lmtp/gw-lmtpd" -n -c "$d/lmtpd/gw-lmtpd.conf" >"$d/lmtpd/check.log" 2>&1 ||
		{ fleet_log "gw-lmtpd -n refused $g's gw-lmtpd.conf:"; cat "$d/lmtpd/check.log" >&2; return 1; }
	echo "$build" >"$LAB/build"
}

fleet_milter_start() {   # GW
	local g=$1 d=$LAB/$1 sock
	sock=$(cat "$d/milter/sock")
	rm -f "$sock"
	ip netns exec "$(fleet_ns "$g")" "$(cat "$LAB/build")/milter/gw-milter" -c "$d/milter/gw.conf" -f \
		>>"$d/milter/log" 2>&1 &
	echo $! >"$d/milter/daemon.pid"
	fleet_wait 30 test -S "$sock" || { fleet_log "$g: gw-milter made no socket:"; tail -20 "$d/milter/log" >&2; return 1; }
}

fleet_lmtpd_listening() { fleet_in "$1" ss -Htln 2>/dev/null | grep -q " $(fleet_lmtp_addr "$1"):24 "; }

fleet_lmtpd_start() {   # GW
	local g=$1 d=$LAB/$1
	ip netns exec "$(fleet_ns "$g")" "$(cat "$LAB/build")/lmtp/gw-lmtpd" -f -c "$d/lmtpd/gw-lmtpd.conf" \
		>>"$d/lmtpd/log" 2>&1 &
	echo $! >"$d/lmtpd/daemon.pid"
	fleet_wait 30 fleet_lmtpd_listening "$g" || { fleet_log "$g: gw-lmtpd does not listen:"; tail -20 "$d/lmtpd/log" >&2; return 1; }
}

fleet_daemon_stop() {   # PIDFILE [SIGNAL]
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 0
	[ -n "$pid" ] || return 0
	kill "-${2:-TERM}" "$pid" 2>/dev/null || true
	lab_wait_pid "$pid" 20 || { fleet_log "$pid ignored SIG${2:-TERM}; killing"; kill -KILL "$pid" 2>/dev/null || true; }
	wait "$pid" 2>/dev/null || true
	rm -f "$1"
}
fleet_milter_stop() { fleet_daemon_stop "$LAB/$1/milter/daemon.pid"; }
fleet_lmtpd_stop() { fleet_daemon_stop "$LAB/$1/lmtpd/daemon.pid" "${2:-TERM}"; }

fleet_up() {   # BUILD
	local build=$1 n g
	fleet_net_up || return 1
	fleet_dest_setup dest-a alice@dest-a.example carol@dest-a.example || return 1
	fleet_dest_setup dest-b bob@dest-b.example || return 1
	fleet_ext_setup && fleet_int_setup || return 1
	for g in gw1 gw2; do fleet_gw_setup "$g" "$build" || return 1; done
	for g in gw1 gw2; do fleet_milter_start "$g" && fleet_lmtpd_start "$g" || return 1; done
	for n in $FLEET_POSTFIX; do fleet_postfix_start "$n" || return 1; done
}

fleet_down() {
	local n g ns
	port_release_all
	[ -n "$LAB" ] && [ -d "$LAB" ] || return 0
	for g in gw1 gw2; do
		fleet_milter_stop "$g"
		fleet_lmtpd_stop "$g"
	done
	for n in $FLEET_POSTFIX; do fleet_postfix_stop "$n" >/dev/null 2>&1 || true; done
	if [ -f "$LAB/namespaces" ]; then
		while read -r ns; do ip netns del "$ns" 2>/dev/null || true; done <"$LAB/namespaces"
	fi
	if [ "${LAB_KEEP:-0}" = 1 ]; then
		fleet_log "kept $LAB"
	else
		rm -rf "$LAB"
	fi
	LAB=
}

# ---- mail in, mail out, counting -------------------------------------------

fleet_swaks() {   # NAME(where to send) OUT FROM TO SWAKS-ARGS...
	local n=$1 out=$2 from=$3 to=$4
	shift 4
	timeout 90 ip netns exec "$(fleet_ns "$n")" swaks -4 --server "$(fleet_addr "$n")" --port 25 \
		--helo "client.$n.fleet.invalid" --from "$from" --to "$to" --timeout 60 "$@" >"$out" 2>&1 || true
}

fleet_send() {   # NAME CASE FROM RCPT...: one message; 0 if queued
	local n=$1 case=$2 from=$3 to out
	shift 3
	to=$(IFS=,; echo "$*")
	out=$LAB/send-$case-$n.out
	fleet_swaks "$n" "$out" "$from" "$to" --header "Subject: fleet $case" --add-header "X-Fleet-Case: $case" \
		"${FLEET_SWAKS_EXTRA[@]}"
	grep -q '^<- *250 .*queued as' "$out" || { fleet_log "$n did not take the $case message:"; tail -5 "$out" >&2; return 1; }
}
FLEET_SWAKS_EXTRA=()
fleet_inbound() { local c=$1; shift; fleet_send ext "$c" sender@ext.test "$@"; }
fleet_outbound() { local c=$1; shift; fleet_send int "$c" alice@example.org "$@"; }

fleet_rcpt_reply() {   # GW RCPT: the RCPT reply GW gives a client on the Internet side
	local out=$LAB/rcpt-$1-$$-$RANDOM.out
	timeout 60 ip netns exec "$(fleet_ns ext)" swaks -4 --server "$(fleet_addr "$1")" --port 25 \
		--helo client.ext.fleet.invalid --from sender@ext.test --to "$2" --quit-after RCPT --timeout 40 \
		>"$out" 2>&1 || true
	lab_rcpt_reply "$out" "$2"
	rm -f "$out"
}

fleet_mailbox_of() {   # RCPT -> instance holding its mailbox
	case $1 in *@example.org) echo int ;; *@dest-a.example) echo dest-a ;; *@dest-b.example) echo dest-b ;; esac
}

fleet_delivered() {   # CASE RCPT: copies of CASE's message delivered to RCPT
	local n f c=0
	n=$(fleet_mailbox_of "$2")
	for f in "$LAB/$n/mail/$2/new"/*; do
		[ -f "$f" ] || continue
		grep -qx "X-Fleet-Case: $1" "$f" && c=$((c + 1))
	done
	echo "$c"
}

# NAME: messages in its queue: postqueue -j, or the queue files when the instance
# is stopped (or showq does not answer: never "empty" for want of an answer)
fleet_queue() {
	local d=$LAB/$1 out
	if [ -f "$d/master.pid" ] && out=$(postqueue -c "$d/etc" -j 2>/dev/null); then
		grep -c '"queue_id"' <<<"$out"
	else
		find "$d/spool/incoming" "$d/spool/active" "$d/spool/deferred" "$d/spool/hold" \
			"$d/spool/maildrop" -type f 2>/dev/null | wc -l
	fi
}

fleet_queue_rcpt() {   # NAME RCPT: queued messages that still hold RCPT
	local d=$LAB/$1
	[ -f "$d/master.pid" ] || { echo "?"; return; }
	postqueue -c "$d/etc" -j 2>/dev/null | /usr/bin/python3 -c '
import json, sys
want = sys.argv[1]
n = 0
for line in sys.stdin:
    m = json.loads(line)
    n += any(r.get("address") == want for r in m.get("recipients", []))
print(n)' "$2"
}

fleet_spool() { find "$LAB/$1/lmtpd/spool" -mindepth 1 2>/dev/null | wc -l; }

fleet_flush() { postqueue -c "$LAB/$1/etc" -f 2>/dev/null || true; }
