#!/usr/bin/env bash
# bench_proxy.sh - messages/s through gw-proxy against the same client sending
# straight to the same sink, in one run, as a ratio (the issue's target for the
# finished proxy: >= 0.9x).
#   straight  smtp-source -> smtp-sink
#   proxy     smtp-source -> gw-proxy (plain listener, upstream = the sink) -> smtp-sink
# Each with a new connection per message and with connections reused (-d),
# best of BENCH_ROUNDS rounds of BENCH_MESSAGES messages of BENCH_SIZE bytes
# over BENCH_SESSIONS parallel sessions.
#   BENCH_MESSAGES (default 2000)  BENCH_SESSIONS (default 10)  BENCH_SIZE (default 5000)
#   BENCH_ROUNDS (default 3)
# Then a destination a round trip away, where pipelining shows: gw-fakepeer's
# "serve RTT" (every reply leaves BENCH_RTT ms after its command, replies to
# pipelined commands together) as the destination, bench/smtp_pipe.py as a
# pipelining tenant MTA (MAIL, BENCH_RTT_RCPTS RCPTs and DATA in one write,
# then the body) sending BENCH_RTT_MESSAGES messages over one connection:
# milliseconds per message straight and through gw-proxy, and their ratio
# (pipelined on both sides: about 2 RTT each; one command at a time towards
# the destination: RCPTS + 3 RTT). BENCH_PROXY_BEFORE=/path/to/gw-proxy adds
# the same figure for another gw-proxy binary (an older build, say).
#   BENCH_RTT (default 20)  BENCH_RTT_RCPTS (default 5)  BENCH_RTT_MESSAGES (default 50)
#   BENCH_SINK=0 skips the smtp-sink part
# Then the issue's "same tenant MTA": a throw-away Postfix instance
# (test/sh/lib/lab.sh, Postfix's default concurrency) as the tenant, its
# relayhost straight at an smtp-sink or at gw-proxy (upstream = that sink).
# BENCH_TENANT_MESSAGES messages of BENCH_SIZE bytes, BENCH_TENANT_RCPTS
# recipients each, are injected with smtp-source and put on hold on receipt
# (check_client_access static:HOLD), then released (postsuper -H ALL,
# postqueue -f) and timed until the tenant's queue is empty; the sink's
# message counter must have grown by exactly that many (no bounce counts).
# The two paths run alternately; printed: the best msg/s of each and their
# ratio, then each round's ratio (the proxy run against the straight run just
# before it, so a machine that slows down between rounds moves both) and the
# median of those.
#   BENCH_TENANT_MESSAGES (default 2000)  BENCH_TENANT_RCPTS (default 3)
#   BENCH_TENANT=0 skips it (it needs root: Postfix)
# Then, next to that ratio, the same set-up measured as CPU time, which
# other work on the machine moves much less than msg/s: gw-proxy's CPU
# microseconds per message and its share of the whole pipeline's CPU
# (bench/bench_proxy_cpu.sh with the same messages, size, recipients, rounds
# and gw-proxy; BENCH_PROXY_BEFORE there too).
#   BENCH_CPU=0 skips it (it needs root and a cgroup v1 cpuacct hierarchy)
#   BENCH_JOBS (default nproc): parallel build jobs
# Needs postfix (smtp-sink, smtp-source) and python3. Stops what it started by PID.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GW_BENCH_BUILD_DIR:-$top/build-bench}
messages=${BENCH_MESSAGES:-2000}
sessions=${BENCH_SESSIONS:-10}
size=${BENCH_SIZE:-5000}
rounds=${BENCH_ROUNDS:-3}

rtt=${BENCH_RTT:-20}
rtt_rcpts=${BENCH_RTT_RCPTS:-5}
rtt_messages=${BENCH_RTT_MESSAGES:-50}
rtt_build=${GW_BENCH_RTT_BUILD_DIR:-$top/build-rtt}

cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=OFF >/dev/null
cmake --build "$build" -j"${BENCH_JOBS:-$(nproc)}" --target gw-proxy >/dev/null
proxy=$build/proxy/gw-proxy
# gw-fakepeer is a test program: built where the tests are
cmake -S "$top" -B "$rtt_build" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=ON >/dev/null
cmake --build "$rtt_build" -j"${BENCH_JOBS:-$(nproc)}" --target gw-fakepeer >/dev/null
fakepeer=$rtt_build/test/gw-fakepeer

# shellcheck source-path=SCRIPTDIR source=../test/sh/lib/lab.sh
. "$top/test/sh/lib/lab.sh"
work=$(mktemp -d)
pids=()
cleanup() {
	local p
	[ -z "$LAB" ] || lab_stop_all
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
	port_release_all
}
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

start_proxy() {   # NAME BINARY LISTEN-PORT UPSTREAM-PORT
	cat >"$work/$1.conf" <<C
listen = [127.0.0.1]:$3
upstream = [127.0.0.1]:$4
control_socket = $work/$1.control
pid_file =
log = stderr
log_level = warning
session_log = $work/$1.session.log
tls = none
C
	# never the system's state file; BENCH_PROXY_BEFORE may predate the key
	[ "$2" != "$proxy" ] || echo "state_file =" >>"$work/$1.conf"
	"$2" -f -c "$work/$1.conf" 2>"$work/$1.log" &
	pids+=($!)
	wait_port "$3" || { echo "bench_proxy: $1 did not start" >&2; cat "$work/$1.log" >&2; exit 1; }
}

if [ "${BENCH_SINK:-1}" = 1 ]; then
sp=$(port_claim)
pp=$(port_claim)
smtp-sink -u "$(id -un)" -c "127.0.0.1:$sp" 1000 >"$work/sink.log" 2>&1 &
pids+=($!)
wait_port "$sp" || { echo "bench_proxy: smtp-sink did not start" >&2; exit 1; }
cat >"$work/gw-proxy.conf" <<C
listen = [127.0.0.1]:$pp
upstream = [127.0.0.1]:$sp
control_socket = $work/control
pid_file =
log = stderr
log_level = warning
session_log = $work/session.log
state_file =
tls = none
C
"$proxy" -f -c "$work/gw-proxy.conf" 2>"$work/proxy.log" &
pids+=($!)
wait_port "$pp" || { echo "bench_proxy: gw-proxy did not start" >&2; exit 1; }

rate() {   # PORT [SMTP-SOURCE-FLAGS]: best messages/s of $rounds rounds
	local port=$1 best=0 t0 t1 v
	shift
	for _ in $(seq "$rounds"); do
		t0=$(date +%s.%N)
		smtp-source "$@" -s "$sessions" -m "$messages" -l "$size" -f s@tenant.test -t r@dest.test \
			"127.0.0.1:$port" >/dev/null 2>&1
		t1=$(date +%s.%N)
		v=$(echo "$messages / ($t1 - $t0)" | bc -l)
		best=$(echo "if ($v > $best) $v else $best" | bc -l)
	done
	printf '%.0f' "$best"
}

echo "== gw-proxy vs straight to smtp-sink: $messages messages of $size bytes, $sessions sessions, best of $rounds"
for mode in new reuse; do
	flags=()
	[ "$mode" = reuse ] && flags=(-d)
	straight=$(rate "$sp" "${flags[@]}")
	through=$(rate "$pp" "${flags[@]}")
	printf '%-6s connections: straight %6s msg/s   proxy %6s msg/s   ratio %.2f (target >= 0.9)\n' \
		"$mode" "$straight" "$through" "$(echo "$through / $straight" | bc -l)"
done
"$proxy" -C "$work/control" stats
fi

# A destination BENCH_RTT ms away, pipelining tenant MTA: ms per message.
fp=$(port_claim)
printf 'send 220 dest.test ESMTP\nserve %s\n' "$rtt" >"$work/dest.script"
"$fakepeer" -s "$work/dest.script" -p "$fp" -n 100000 -t 600000 2>"$work/dest.log" &
pids+=($!)
wait_port "$fp" || { echo "bench_proxy: gw-fakepeer did not start" >&2; exit 1; }
rp=$(port_claim)
start_proxy rtt "$proxy" "$rp" "$fp"
ms() { python3 "$top/bench/smtp_pipe.py" 127.0.0.1 "$1" "$rtt_messages" "$rtt_rcpts" 2000; }
echo "== pipelining: destination $rtt ms away, $rtt_messages messages x $rtt_rcpts recipients, one connection"
straight=$(ms "$fp")
through=$(ms "$rp")
printf 'pipelined: straight %6.1f ms/msg   proxy %6.1f ms/msg   ratio %.2f (straight/proxy; 1.0: no round trip added)\n' \
	"$straight" "$through" "$(echo "$straight / $through" | bc -l)"
if [ -n "${BENCH_PROXY_BEFORE:-}" ]; then
	bp=$(port_claim)
	start_proxy before "$BENCH_PROXY_BEFORE" "$bp" "$fp"
	before=$(ms "$bp")
	printf 'before:    straight %6.1f ms/msg   proxy %6.1f ms/msg   ratio %.2f (%s)\n' \
		"$straight" "$before" "$(echo "$straight / $before" | bc -l)" "$BENCH_PROXY_BEFORE"
fi

# The same tenant MTA: a Postfix instance, relayhost straight at the sink or at gw-proxy.
if [ "${BENCH_TENANT:-1}" = 1 ]; then
[ "$(id -u)" -eq 0 ] || { echo "bench_proxy: the tenant MTA part needs root (Postfix); BENCH_TENANT=0 skips it" >&2; exit 1; }
tmessages=${BENCH_TENANT_MESSAGES:-2000}
trcpts=${BENCH_TENANT_RCPTS:-3}
lab_init
ts=$(port_claim)
smtp-sink -u "$(id -un)" -c "127.0.0.1:$ts" 1000 >"$work/tsink.log" 2>&1 &
pids+=($!)
wait_port "$ts" || { echo "bench_proxy: smtp-sink did not start" >&2; exit 1; }
tp=$(port_claim)
start_proxy tenant "$proxy" "$tp" "$ts"
tenant_start() {   # NAME RELAYHOST-PORT
	local d=$LAB/$1 port
	port=$(port_claim)
	lab_instance_dirs "$1"
	echo "$port" >"$d/port"
	lab_master_cf "$port" >"$d/etc/master.cf"
	{
		lab_main_cf "$1"
		cat <<C
# the tenant: everything to its relayhost; mail held on receipt until released
relayhost = [127.0.0.1]:$2
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = check_client_access static:HOLD
C
	} >"$d/etc/main.cf"
	lab_postfix_start "$1" >/dev/null
}
sink_count() { tr '\r' '\n' <"$work/tsink.log" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1; }
tenant_run() {   # NAME: seconds from release until the queue is empty, every message at the sink
	local d=$LAB/$1 n0 t0 t1 held
	smtp-source -s 10 -m "$tmessages" -r "$trcpts" -l "$size" -f s@tenant.test -t r@dest.test \
		"127.0.0.1:$(cat "$d/port")" >/dev/null 2>&1
	held=$(find "$d/spool/hold" -type f | wc -l)
	[ "$held" -eq "$tmessages" ] || { echo "bench_proxy: $1 holds $held messages, not $tmessages" >&2; exit 1; }
	[ "$(lab_queue_count "$1")" -eq "$tmessages" ] || { echo "bench_proxy: $1 delivered before release" >&2; exit 1; }
	n0=$(sink_count); n0=${n0:-0}
	t0=$(date +%s.%N)
	postsuper -c "$d/etc" -H ALL 2>/dev/null
	postqueue -c "$d/etc" -f
	for _ in $(seq 6000); do [ "$(lab_queue_count "$1")" -eq 0 ] && break; sleep 0.05; done
	t1=$(date +%s.%N)
	[ "$(lab_queue_count "$1")" -eq 0 ] || { echo "bench_proxy: $1 did not empty its queue" >&2; tail -5 "$d/maillog" >&2; exit 1; }
	for _ in $(seq 100); do [ "$(( $(sink_count) - n0 ))" -ge "$tmessages" ] && break; sleep 0.1; done
	[ "$(( $(sink_count) - n0 ))" -eq "$tmessages" ] || {
		echo "bench_proxy: the sink got $(( $(sink_count) - n0 )) of $1's $tmessages messages" >&2; tail -5 "$d/maillog" >&2; exit 1; }
	echo "$t1 - $t0" | bc -l
}
tenant_start tenant-straight "$ts"
tenant_start tenant-proxy "$tp"
echo "== tenant MTA (Postfix, default concurrency): $tmessages messages of $size bytes x $trcpts recipients, held then released, best of $rounds"
bs=0 bp=0 pairs=()
for _ in $(seq "$rounds"); do
	t=$(tenant_run tenant-straight); vs=$(echo "$tmessages / $t" | bc -l)
	bs=$(echo "if ($vs > $bs) $vs else $bs" | bc -l)
	t=$(tenant_run tenant-proxy); v=$(echo "$tmessages / $t" | bc -l)
	bp=$(echo "if ($v > $bp) $v else $bp" | bc -l)
	pairs+=("$(printf '%.2f' "$(echo "$v / $vs" | bc -l)")")
done
printf 'tenant MTA:  straight %6.0f msg/s   proxy %6.0f msg/s   ratio %.2f (target >= 0.9)\n' \
	"$bs" "$bp" "$(echo "$bp / $bs" | bc -l)"
# each round's proxy run against the straight run just before it: drift between rounds cancels out
printf 'tenant MTA:  ratio per round %s   median %s\n' "${pairs[*]}" \
	"$(printf '%s\n' "${pairs[@]}" | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}')"
"$proxy" -C "$work/tenant.control" stats
if [ "${BENCH_CPU:-1}" = 1 ]; then
	BENCH_PROXY=$proxy BENCH_MESSAGES=$tmessages BENCH_RCPTS=$trcpts BENCH_SIZE=$size BENCH_ROUNDS=$rounds \
		bash "$top/bench/bench_proxy_cpu.sh"
fi
fi
