#!/usr/bin/env bash
# gw-proxy holding many sessions in a tarpit (bench/bench_tarpit.c: one byte
# every 250 ms, a greeting that never ends) while other sessions relay:
#   - started with a soft RLIMIT_NOFILE of 1024, it raises the limit to what
#     max_sessions needs: 600 tarpit sessions (1,200 descriptors) are held,
#     counted at the generator and at the tarpit, and meanwhile smtp-source's
#     messages through the same proxy reach smtp-sink; stats count both;
#   - when the limit cannot be raised (hard limit 300, no CAP_SYS_RESOURCE) it
#     says so and lets in only the sessions the descriptors allow (118): the
#     rest wait in the listen queue, none is refused or cut;
#   - the tarpit gone, every session ends, a new one gets in at the limit's
#     proxy, and SIGTERM ends both with exit 0.
# Needs smtp-sink, smtp-source, setpriv. Stops everything by PID.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
proxy=$bindir/proxy/gw-proxy
tool=$bindir/bench/bench_tarpit
[ -x "$proxy" ] || { echo "FAIL: $proxy not built" >&2; exit 1; }
[ -x "$tool" ] || { echo "FAIL: $tool not built" >&2; exit 1; }
lab_init
trap lab_stop_all EXIT
fail() {
	echo "FAIL: $*" >&2
	local f
	for f in proxy proxy2 hold hold2; do
		[ -f "$LAB/$f.log" ] && { echo "--- $f.log" >&2; tail -n 10 "$LAB/$f.log" >&2; }
	done
	for f in "$LAB"/*.status; do [ -f "$f" ] && echo "$f: $(cat "$f")" >&2; done
	exit 1
}
field() { sed -n "s/.*\\b$2=\\([0-9]*\\).*/\\1/p" "$1" 2>/dev/null; }   # FILE KEY
wait_field() {   # SECONDS FILE KEY VALUE: until KEY in FILE is VALUE
	for _ in $(seq $(($1 * 10))); do
		[ "$(field "$2" "$3")" = "$4" ] && return 0
		sleep 0.1
	done
	return 1
}
bgpid() { awk -v n="$1" '$1==n{print $2}' "$LAB/bg"; }
start_proxy() {   # NAME CONF [WRAPPER...]: gw-proxy -f with a soft descriptor limit of 1024
	local name=$1 conf=$2
	shift 2
	lab_bg "$name" bash -c 'ulimit -Sn 1024 && exec "$@"' sh "$@" "$proxy" -f -c "$conf"
}
conf() {   # FILE LISTEN_PORT: MX mode (destination by the recipient's domain), smtp_port $port
	cat >"$1" <<C
listen = [127.0.0.1]:$2
smtp_port = $port
control_socket = $1.control
pid_file =
log = stderr
log_level = notice
session_log = $1.session
tls = none
reply_timeout = 60s
state_file =
C
}

# the sink and the tarpit on one port, two loopback addresses
port=$(lab_port)
lab_bg sink smtp-sink -u "$(id -un)" "127.0.0.1:$port" 100
lab_bg tarpit "$tool" tarpit 127.0.0.2 "$port" "$LAB/tarpit.status"
lab_wait_port "$port" 10 || fail "smtp-sink or the tarpit does not listen"
wait_field 10 "$LAB/tarpit.status" open 0 || fail "no tarpit status"

# --- 600 tarpit sessions and healthy relaying beside them --------------------------------------
pp=$(lab_port)
conf "$LAB/p1.conf" "$pp"
start_proxy proxy "$LAB/p1.conf"
lab_wait_port "$pp" 10 || fail "gw-proxy does not listen"
pid=$(bgpid proxy)
lab_bg hold "$tool" hold 127.0.0.1 "$pp" 600 'x@[127.0.0.2]' "$LAB/hold.status"
wait_field 40 "$LAB/hold.status" held 600 || fail "600 sessions not held"
wait_field 20 "$LAB/tarpit.status" open 600 || fail "the tarpit does not hold 600 connections"
lim=$(awk '/^Max open files/{print $4}' "/proc/$pid/limits")
[ "$lim" -ge 1264 ] || fail "gw-proxy's soft descriptor limit is $lim"
timeout 60 smtp-source -s 2 -m 20 -f s@tenant.test -t 'r@[127.0.0.1]' "127.0.0.1:$pp" >"$LAB/source.out" 2>&1 ||
	fail "smtp-source beside the tarpit sessions: $(tail -n 3 "$LAB/source.out")"
kill -0 "$pid" 2>/dev/null || fail "gw-proxy died"
stats=$("$proxy" -C "$LAB/p1.conf.control" stats)
grep -q "^sessions=600 " <<<"$stats" || fail "stats with 600 held: $stats"
grep -q " messages=20 " <<<"$stats" || fail "not 20 messages relayed: $stats"
[ "$(field "$LAB/hold.status" held)" = 600 ] || fail "held sessions lost while relaying"
! grep -q "max_sessions=.*needs" "$LAB/proxy.log" || fail "limit warning with a raisable limit"
echo "ok: 600 sessions held by the tarpit (descriptor limit raised to $lim), 20 messages relayed beside them"
lab_bg_stop hold

# --- a limit that cannot be raised: fewer sessions, the rest wait --------------------------------
pp2=$(lab_port)
conf "$LAB/p2.conf" "$pp2"
start_proxy proxy2 "$LAB/p2.conf" prlimit --nofile=300:300 setpriv --bounding-set -sys_resource --
lab_wait_port "$pp2" 10 || fail "gw-proxy (limit 300) does not listen"
grep -q "max_sessions=4000 needs 8064 descriptors, RLIMIT_NOFILE allows 300: at most 118 sessions" \
	"$LAB/proxy2.log" || fail "no warning about the descriptor limit"
lab_bg hold2 "$tool" hold 127.0.0.1 "$pp2" 130 'x@[127.0.0.2]' "$LAB/hold2.status"
wait_field 30 "$LAB/hold2.status" held 118 || fail "118 sessions not held"
st=$("$proxy" -C "$LAB/p2.conf.control" stats)
grep -q "^sessions=118 " <<<"$st" || fail "stats at the limit: $st"
# the other 12 are connected and wait for their greeting in the listen queue: none is refused or cut
[ "$(field "$LAB/hold2.status" opening)" = 12 ] || fail "the sessions beyond the limit are not waiting"
[ "$(field "$LAB/hold2.status" failed)$(field "$LAB/hold2.status" closed)" = 00 ] || fail "a session failed"
! grep -q "error=" "$LAB/proxy2.log" || fail "errors at the limit: $(grep error= "$LAB/proxy2.log" | head -3)"
echo "ok: limit 300 not raisable: warned, 118 sessions in, 12 waiting in the listen queue"

# --- the tarpit gone: every session ends, places free again, SIGTERM exits 0 -----------------------
lab_bg_stop hold2
lab_bg_stop tarpit
for c in "$LAB/p1.conf.control" "$LAB/p2.conf.control"; do
	for _ in $(seq 300); do
		"$proxy" -C "$c" stats | grep -q "^sessions=0 " && break
		sleep 0.1
	done
	"$proxy" -C "$c" stats | grep -q "^sessions=0 " || fail "sessions left after the tarpit closed: $c"
done
# the limit was reached and the places are free: a new session gets in and relays its RCPT
lab_bg hold3 "$tool" hold 127.0.0.1 "$pp2" 1 'r@[127.0.0.1]' "$LAB/hold3.status"
wait_field 20 "$LAB/hold3.status" answered2 1 || fail "no session let in once places were free again"
lab_bg_stop hold3
for p in proxy proxy2; do
	q=$(bgpid "$p")
	kill -TERM "$q"
	rc=0
	wait "$q" || rc=$?
	[ "$rc" -eq 0 ] || fail "$p: exit $rc after SIGTERM"
	sed -i "/^$p /d" "$LAB/bg"
done
echo "ok: sessions ended with the tarpit, SIGTERM exit 0"
