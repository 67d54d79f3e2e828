#!/usr/bin/env bash
# bench_proxy_tarpit.sh - does gw-proxy keep relaying while a tarpit holds
# thousands of its sessions? In one run, through one gw-proxy (plain listener,
# destination by the recipient's domain, here address literals):
#   healthy   smtp-source -> gw-proxy -> smtp-sink on 127.0.0.1       r@[127.0.0.1]
#   tarpit    bench_tarpit hold -> gw-proxy -> bench_tarpit tarpit on 127.0.0.2
#             (one byte every 250 ms, a greeting that never ends)  x@[127.0.0.2]
# The healthy messages/s, in this order:
#   none      no tarpit sessions (before they open and after they are gone, best of both)
#   straight  BENCH_TARPIT tarpit sessions held by the generator straight, not
#             through gw-proxy: the machine carries the tarpit and its
#             dribbling, as in the loaded case, but gw-proxy does not
#   proxy     BENCH_TARPIT tarpit sessions held through gw-proxy
# and the ratios proxy/straight (what holding the sessions costs gw-proxy's
# other sessions; the target >= 0.9) and proxy/none (that plus the cost of
# running the tarpit and its generator on the same machine, which a real
# tarpit does not add). Also gw-proxy's peak RSS (VmHWM, target < 256 MB) and
# CPU, the tarpit's bytes/s, and the number of tarpit sessions held while the
# loaded rate was taken, counted at both ends (the generator's unanswered
# RCPTs, the tarpit's open connections) before and after the loaded rounds;
# the run fails when either count is below BENCH_TARPIT.
# Each rate: best of BENCH_ROUNDS rounds of BENCH_MESSAGES messages of
# BENCH_SIZE bytes over BENCH_SESSIONS sessions, a new connection per message
# ("new") and connections reused (-d, "reuse").
#   BENCH_TARPIT (default 2000)  BENCH_MESSAGES (default 2000)  BENCH_SESSIONS (default 10)
#   BENCH_SIZE (default 5000)  BENCH_ROUNDS (default 3)
#   GW_BENCH_BUILD_DIR (default build-bench, Release); GW_BENCH_NO_BUILD=1 uses it as built
# Needs postfix (smtp-sink, smtp-source). Stops what it started by PID.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GW_BENCH_BUILD_DIR:-$top/build-bench}
held_want=${BENCH_TARPIT:-2000}
messages=${BENCH_MESSAGES:-2000}
sessions=${BENCH_SESSIONS:-10}
size=${BENCH_SIZE:-5000}
rounds=${BENCH_ROUNDS:-3}

if [ -z "${GW_BENCH_NO_BUILD:-}" ]; then
	cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=OFF >/dev/null
	cmake --build "$build" -j"$(nproc)" --target gw-proxy bench_tarpit >/dev/null
fi
proxy=$build/proxy/gw-proxy
tarpit=$build/bench/bench_tarpit

# shellcheck source-path=SCRIPTDIR source=../test/sh/lib/lab.sh
. "$top/test/sh/lib/lab.sh"
lab_init
trap 'lab_stop_all' EXIT
trap 'exit 1' INT TERM
die() {
	echo "bench_proxy_tarpit: $*" >&2
	tail -n 5 "$LAB/proxy.log" >&2 || true
	exit 1
}
field() { sed -n "s/.*\\b$2=\\([0-9]*\\).*/\\1/p" "$1" 2>/dev/null; }   # FILE KEY
wait_for() {   # SECONDS FILE KEY MIN: until KEY in FILE >= MIN
	local v
	for _ in $(seq $(($1 * 4))); do
		v=$(field "$2" "$3")
		[ -n "$v" ] && [ "$v" -ge "$4" ] && return 0
		sleep 0.25
	done
	return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$ppid/stat"; }   # gw-proxy's user+system clock ticks
proxy_sessions() { "$proxy" -C "$LAB/control" stats | sed -n 's/^sessions=\([0-9]*\) .*/\1/p'; }

# the sink and the tarpit on one port, two loopback addresses: smtp_port serves both
port=$(lab_port)
lab_bg sink smtp-sink -u "$(id -un)" -c "127.0.0.1:$port" 1000
lab_bg tarpit "$tarpit" tarpit 127.0.0.2 "$port" "$LAB/tarpit.status"
pp=$(lab_port)
lab_wait_port "$port" 10 || die "smtp-sink or the tarpit did not start"
cat >"$LAB/gw-proxy.conf" <<C
listen = [127.0.0.1]:$pp
smtp_port = $port
control_socket = $LAB/control
pid_file =
log = stderr
log_level = warning
session_log = $LAB/session.log
tls = none
C
lab_bg proxy "$proxy" -f -c "$LAB/gw-proxy.conf"
ppid=$(awk '$1=="proxy"{print $2}' "$LAB/bg")
lab_wait_port "$pp" 10 || die "gw-proxy did not start"

rate() {   # [SMTP-SOURCE-FLAGS]: best messages/s of $rounds rounds to the healthy sink
	local best=0 t0 t1 v
	for _ in $(seq "$rounds"); do
		t0=$(date +%s.%N)
		timeout 300 smtp-source "$@" -s "$sessions" -m "$messages" -l "$size" -f s@tenant.test \
			-t 'r@[127.0.0.1]' "127.0.0.1:$pp" >"$LAB/source.out" 2>&1 ||
			die "smtp-source: $(tail -n 3 "$LAB/source.out")"
		t1=$(date +%s.%N)
		v=$(echo "$messages / ($t1 - $t0)" | bc -l)
		best=$(echo "if ($v > $best) $v else $best" | bc -l)
	done
	printf '%.0f' "$best"
}
held_now() {   # "generator/tarpit" counts of held sessions
	echo "$(field "$LAB/hold.status" held)/$(field "$LAB/tarpit.status" open)"
}

echo "== healthy relay through gw-proxy with $held_want sessions held by a tarpit (1 byte / 250 ms)"
echo "   $messages messages of $size bytes, $sessions sessions, best of $rounds; load: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A before after loaded straight
for mode in new reuse; do
	flags=()
	[ "$mode" = reuse ] && flags=(-d)
	before[$mode]=$(rate "${flags[@]}")
done

lab_bg straight "$tarpit" hold 127.0.0.2 "$port" "$held_want" - "$LAB/straight.status"
wait_for 300 "$LAB/straight.status" held "$held_want" ||
	die "the generator holds $(cat "$LAB/straight.status") straight, not $held_want"
wait_for 60 "$LAB/tarpit.status" open "$held_want" || die "the tarpit holds $(cat "$LAB/tarpit.status")"
for mode in new reuse; do
	flags=()
	[ "$mode" = reuse ] && flags=(-d)
	straight[$mode]=$(rate "${flags[@]}")
done
[ "$(field "$LAB/straight.status" held)" -ge "$held_want" ] || die "straight sessions lost: $(cat "$LAB/straight.status")"
lab_bg_stop straight
wait_for 60 "$LAB/tarpit.status" closed "$held_want" || die "the tarpit still has the straight sessions"

t0=$(date +%s)
lab_bg hold "$tarpit" hold 127.0.0.1 "$pp" "$held_want" 'x@[127.0.0.2]' "$LAB/hold.status"
wait_for 600 "$LAB/hold.status" held "$held_want" ||
	die "the generator holds $(held_now) sessions, not $held_want: $(cat "$LAB/hold.status")"
wait_for 120 "$LAB/tarpit.status" open "$held_want" ||
	die "the tarpit holds $(held_now), not $held_want: $(cat "$LAB/tarpit.status")"
echo "   $held_want tarpit sessions open after $(($(date +%s) - t0)) s; gw-proxy sessions=$(proxy_sessions)"
held_start=$(held_now)
bytes0=$(field "$LAB/tarpit.status" bytes)
cpu0=$(cpu_ticks)
w0=$(date +%s.%N)
for mode in new reuse; do
	flags=()
	[ "$mode" = reuse ] && flags=(-d)
	loaded[$mode]=$(rate "${flags[@]}")
done
held_end=$(held_now)
bytes1=$(field "$LAB/tarpit.status" bytes)
cpu1=$(cpu_ticks)
w1=$(date +%s.%N)
rss_peak=$(awk '/^VmHWM/{print $2}' "/proc/$ppid/status")
rss_now=$(awk '/^VmRSS/{print $2}' "/proc/$ppid/status")
threads=$(awk '/^Threads/{print $2}' "/proc/$ppid/status")
for h in "$held_start" "$held_end"; do
	[ "${h%/*}" -ge "$held_want" ] && [ "${h#*/}" -ge "$held_want" ] ||
		die "held (generator/tarpit) $held_start at the start, $held_end at the end of the loaded rounds"
done
hold_status=$(cat "$LAB/hold.status")

# the tarpit sessions gone (the tarpit closing ends them), the reference once more
lab_bg_stop hold
lab_bg_stop tarpit
for _ in $(seq 240); do
	[ "$(proxy_sessions)" -eq 0 ] && break
	sleep 0.25
done
[ "$(proxy_sessions)" -eq 0 ] || die "gw-proxy still has $(proxy_sessions) sessions 60 s after the tarpit closed"
for mode in new reuse; do
	flags=()
	[ "$mode" = reuse ] && flags=(-d)
	after[$mode]=$(rate "${flags[@]}")
done

for mode in new reuse; do
	ref=${before[$mode]}
	[ "${after[$mode]}" -gt "$ref" ] && ref=${after[$mode]}
	printf '%-5s connections: none %5s msg/s (before %s, after %s)  straight %5s  proxy %5s   proxy/straight %.2f (target >= 0.9)  proxy/none %.2f\n' \
		"$mode" "$ref" "${before[$mode]}" "${after[$mode]}" "${straight[$mode]}" "${loaded[$mode]}" \
		"$(echo "${loaded[$mode]} / ${straight[$mode]}" | bc -l)" "$(echo "${loaded[$mode]} / $ref" | bc -l)"
done
printf 'held (generator/tarpit): %s before, %s after the loaded rounds; generator: %s\n' \
	"$held_start" "$held_end" "$hold_status"
printf 'during the loaded rounds: the tarpit sent %.0f bytes/s (%d sessions x 4 = %d wanted), gw-proxy used %.0f%% of one CPU\n' \
	"$(echo "($bytes1 - $bytes0) / ($w1 - $w0)" | bc -l)" "$held_want" $((held_want * 4)) \
	"$(echo "100 * ($cpu1 - $cpu0) / $(getconf CLK_TCK) / ($w1 - $w0)" | bc -l)"
printf 'gw-proxy: peak RSS (VmHWM) %d MB (target < 256 MB), RSS with the sessions held %d MB, %s threads\n' \
	$((rss_peak / 1024)) $((rss_now / 1024)) "$threads"
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
"$proxy" -C "$LAB/control" stats
