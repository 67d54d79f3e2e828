#!/usr/bin/env bash
# bench_lmtpd.sh - gw-lmtpd against Postfix as a relay and against the straight
# line, in one run, as ratios; then its memory with 200 sessions holding 1 MB
# each, and whether silent destinations slow the healthy ones.
#
# One load generator (bench/bench_lmtpd_load.c, libgw's client) drives every
# path, S sessions with reused connections, each message to 3 recipients at 3
# destination domains, sizes from design.md:
#   straight  generator -SMTP-> smtp-sink                      (one transaction a message)
#   perdest   generator -SMTP-> smtp-sink, one transaction per destination domain
#             (what delivering straight to 3 destinations takes, with no relay:
#             the limit for any relay, which must make those 3 transactions)
#   postfix   generator -SMTP-> Postfix relay -> smtp-sink      (until its queue is empty)
#   lmtpd     generator -LMTP-> gw-lmtpd -SMTP-> smtp-sink     (every reply is the sink's)
# Targets: lmtpd >= 1.5x postfix, >= 0.7x the straight line, printed against
# both straight lines: a relay to 3 destinations makes 3 transactions where the
# one-transaction line makes 1, so the like-for-like limit is perdest (the
# script also prints perdest/straight, what no relay can beat).
# Each destination domain is its own smtp-sink process, as 3 destinations are
# 3 servers.
# Memory: 200 LMTP sessions, each a 1 MB message, to a sink that waits 3 s
# before answering DATA: gw-lmtpd's peak RSS growth beyond 200 x spool_memory
# (target < 64 MB).
# Silent destinations: 15 healthy and 5 silent domains (accept TCP, never
# greet); the healthy domains' rate with the silent traffic running beside it,
# against without (target >= 0.9).
#   BENCH_MESSAGES (default 600)  BENCH_SESSIONS (default 8)  BENCH_ROUNDS (default 3)
# Needs root (Postfix), postfix (smtp-sink), a C compiler.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GW_BENCH_BUILD_DIR:-$top/build-bench}
messages=${BENCH_MESSAGES:-600}
sessions=${BENCH_SESSIONS:-8}
rounds=${BENCH_ROUNDS:-3}

[ "$(id -u)" -eq 0 ] || { echo "bench_lmtpd: run as root (Postfix)" >&2; exit 1; }
"$top/scripts/install-deps"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target gw-lmtpd bench_lmtpd_load >/dev/null
load=$build/bench/bench_lmtpd_load
lmtpd=$build/lmtp/gw-lmtpd
# shellcheck source-path=SCRIPTDIR source=../test/sh/lib/lab.sh
. "$top/test/sh/lib/lab.sh"
lab_init
trap 'lab_stop_all' EXIT
trap 'exit 1' INT TERM

doms="d1.example d2.example d3.example"
# three destinations are three servers: one smtp-sink each (one shared sink
# would make its single process the bound of every relayed line)
: >"$LAB/routes"
sink=""
for d in $doms; do
	p=$(lab_port)
	lab_bg "sink-$d" smtp-sink -u postfix -c "127.0.0.1:$p" 1000
	lab_wait_port "$p" 10
	echo "$d smtp:[127.0.0.1]:$p" >>"$LAB/routes"
	[ -n "$sink" ] || sink=$p
done

lmtpd_start() {   # NAME ROUTES [KEY VALUE]...: prints its port
	local name=$1 routes=$2 port c=$LAB/$1.conf
	shift 2
	port=$(lab_port)
	cp "$top/etc/gw-lmtpd.conf" "$c"
	lab_conf_set "$c" listen "[127.0.0.1]:$port"
	lab_conf_set "$c" control_socket "$LAB/$name.control"
	lab_conf_set "$c" pid_file "$LAB/$name.pid"
	lab_conf_set "$c" routes "$routes"
	lab_conf_set "$c" spool_dir "$LAB"
	lab_conf_set "$c" log stderr
	lab_conf_set "$c" log_level warning
	lab_conf_set "$c" tls none
	while [ $# -ge 2 ]; do lab_conf_set "$c" "$1" "$2"; shift 2; done
	lab_bg "$name" "$lmtpd" -f -c "$c"
	lab_wait_port "$port" 10 >&2 || { cat "$LAB/$name.log" >&2; exit 1; }
	echo "$port"
}
seconds() { sed -n 's/.*seconds=\([0-9.]*\).*/\1/p'; }
check_all() {   # OUTPUT: every recipient delivered
	grep -q "failed=0 " <<<"$1" || { echo "bench_lmtpd: not every recipient was delivered: $1" >&2; exit 1; }
}

lp=$(lmtpd_start lmtpd "$LAB/routes")
pp=$(lab_port)
lab_gateway_start relay "$pp" "" "$LAB/routes" "$(tr ' ' ',' <<<"$doms")" >/dev/null
postconf -c "$LAB/relay/etc" -e "smtp_destination_concurrency_limit = 50" "default_process_limit = 200"
lab_postfix_stop relay >/dev/null; lab_postfix_start relay >/dev/null

queue_drained() {
	for _ in $(seq 6000); do [ "$(lab_queue_count relay)" -eq 0 ] && return 0; sleep 0.05; done
	return 1
}
echo "== gw-lmtpd bench: $messages messages x 3 recipients at 3 destinations, $sessions sessions, best of $rounds"
# warm-up: connections, Postfix processes
$load -t "[127.0.0.1]:$sink" -s 2 -m 20 $doms >/dev/null
$load -L -t "[127.0.0.1]:$lp" -s 2 -m 20 $doms >/dev/null
$load -t "[127.0.0.1]:$pp" -s 2 -m 20 $doms >/dev/null; queue_drained
declare -A best
for _ in $(seq "$rounds"); do
	out=$($load -t "[127.0.0.1]:$sink" -s "$sessions" -m "$messages" $doms); check_all "$out"
	t=$(seconds <<<"$out")
	[ -z "${best[straight]:-}" ] || awk -v a="$t" -v b="${best[straight]}" 'BEGIN{exit !(a>=b)}' || best[straight]=$t
	[ -n "${best[straight]:-}" ] || best[straight]=$t

	out=$($load -D -t "[127.0.0.1]:$sink" -s "$sessions" -m "$messages" $doms); check_all "$out"
	t=$(seconds <<<"$out")
	[ -z "${best[perdest]:-}" ] || awk -v a="$t" -v b="${best[perdest]}" 'BEGIN{exit !(a>=b)}' || best[perdest]=$t
	[ -n "${best[perdest]:-}" ] || best[perdest]=$t

	out=$($load -L -t "[127.0.0.1]:$lp" -s "$sessions" -m "$messages" $doms); check_all "$out"
	t=$(seconds <<<"$out")
	[ -z "${best[lmtpd]:-}" ] || awk -v a="$t" -v b="${best[lmtpd]}" 'BEGIN{exit !(a>=b)}' || best[lmtpd]=$t
	[ -n "${best[lmtpd]:-}" ] || best[lmtpd]=$t

	t0=$(date +%s%N)
	out=$($load -t "[127.0.0.1]:$pp" -s "$sessions" -m "$messages" $doms); check_all "$out"
	queue_drained || { echo "bench_lmtpd: the Postfix relay did not drain its queue" >&2; exit 1; }
	t=$(awk -v n="$(( $(date +%s%N) - t0 ))" 'BEGIN{printf "%.3f", n/1e9}')
	[ -z "${best[postfix]:-}" ] || awk -v a="$t" -v b="${best[postfix]}" 'BEGIN{exit !(a>=b)}' || best[postfix]=$t
	[ -n "${best[postfix]:-}" ] || best[postfix]=$t
done
for k in straight perdest postfix lmtpd; do
	awk -v k="$k" -v t="${best[$k]}" -v m="$messages" 'BEGIN{printf "%-9s %7.3f s  %8.1f msg/s\n", k, t, m/t}'
done
awk -v l="${best[lmtpd]}" -v p="${best[postfix]}" -v s="${best[straight]}" -v d="${best[perdest]}" 'BEGIN{
	printf "ratio lmtpd/postfix  %.2fx (target >= 1.5x)\n", p/l
	printf "ratio lmtpd/straight %.2fx (target >= 0.7x; one transaction per message)\n", s/l
	printf "ratio lmtpd/perdest  %.2fx (target >= 0.7x; the same 3 transactions, no relay)\n", d/l
	printf "ratio perdest/straight %.2fx (the bound of any relay against one transaction)\n", s/d }'

echo "== memory: 200 LMTP sessions holding a 1 MB message each (destination waits 3 s at DATA)"
slow=$(lab_port)
lab_bg slowsink smtp-sink -u postfix -w 3 -c "127.0.0.1:$slow" 1000
lab_wait_port "$slow" 10
echo "m.example smtp:[127.0.0.1]:$slow" >"$LAB/routes.mem"
mp=$(lmtpd_start lmtpd-mem "$LAB/routes.mem" max_sessions 400 dest_concurrency 400)
mpid=$(awk '$1=="lmtpd-mem"{print $2}' "$LAB/bg")
rss() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }
before=$(rss "$mpid")
out=$($load -L -t "[127.0.0.1]:$mp" -s 200 -m 200 -z 1048576 m.example); check_all "$out"
after=$(rss "$mpid")
spool_kb=$((200 * 256))
awk -v b="$before" -v a="$after" -v s="$spool_kb" 'BEGIN{
	printf "peak RSS %d kB -> %d kB: growth %.1f MB, beyond 200 x spool_memory (%.1f MB): %.1f MB (target < 64 MB)\n",
	b, a, (a-b)/1024, s/1024, (a-b-s)/1024 }'

echo "== silent destinations: 15 healthy + 5 silent domains"
: >"$LAB/routes.silent"
healthy=""
for i in $(seq 15); do echo "h$i.example smtp:[127.0.0.1]:$sink" >>"$LAB/routes.silent"; healthy="$healthy h$i.example"; done
silent=""
for i in $(seq 5); do
	p=$(lab_port)
	lab_bg "silent$i" /usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1000)
held = []
end = time.time() + 600
while time.time() < end:
    c, _ = s.accept(); held.append(c)   # accept, never greet
' "$p"
	lab_wait_port "$p" 10
	echo "s$i.example smtp:[127.0.0.1]:$p" >>"$LAB/routes.silent"
	silent="$silent s$i.example"
done
sp=$(lmtpd_start lmtpd-silent "$LAB/routes.silent" reply_timeout 60s deadline 120s max_sessions 400)
hm=$((messages / 2))
$load -L -t "[127.0.0.1]:$sp" -s 2 -m 10 $healthy >/dev/null
best_of2() {   # the faster of two runs of the healthy load
	local a b
	a=$($load -L -t "[127.0.0.1]:$sp" -s "$sessions" -m "$hm" $healthy); check_all "$a"
	b=$($load -L -t "[127.0.0.1]:$sp" -s "$sessions" -m "$hm" $healthy); check_all "$b"
	awk -v x="$(seconds <<<"$a")" -v y="$(seconds <<<"$b")" 'BEGIN{print "seconds=" (x < y ? x : y)}'
}
alone=$(best_of2)
# the silent traffic: 40 sessions, each stuck until the deadline
$load -L -t "[127.0.0.1]:$sp" -s 40 -m 80 $silent >"$LAB/silent-load.out" 2>&1 &
silent_pid=$!
# let the silent sessions reach their destinations before the healthy run starts
for _ in $(seq 100); do
	n=$("$lmtpd" -C "$LAB/lmtpd-silent.control" stats | sed -n 's/^sessions=\([0-9]*\).*/\1/p')
	[ "${n:-0}" -ge 40 ] && break
	sleep 0.1
done
mixed=$(best_of2)
kill "$silent_pid" 2>/dev/null || true
wait "$silent_pid" 2>/dev/null || true
awk -v a="$(seconds <<<"$alone")" -v m="$(seconds <<<"$mixed")" -v n="$hm" 'BEGIN{
	printf "healthy alone %.1f msg/s, beside 5 silent destinations %.1f msg/s: ratio %.2f (target >= 0.9)\n",
	n/a, n/m, a/m }'
