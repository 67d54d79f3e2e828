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
# Needs postfix (smtp-sink, smtp-source). Stops what it started by PID.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GW_BENCH_BUILD_DIR:-$top/build-bench}
messages=${BENCH_MESSAGES:-2000}
sessions=${BENCH_SESSIONS:-10}
size=${BENCH_SIZE:-5000}
rounds=${BENCH_ROUNDS:-3}

cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target gw-proxy >/dev/null
proxy=$build/proxy/gw-proxy

# shellcheck source=../test/sh/lib/ports.sh
. "$top/test/sh/lib/ports.sh"
work=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
	port_release_all
}
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

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
