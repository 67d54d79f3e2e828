#!/usr/bin/env bash
# bench_milter_cpu.sh - where the CPU goes per message through a Postfix gateway
# with gw-milter, by component, as CPU time rather than wall time.
#
# Same lab as bench_milter.sh (smtp-source -> gateway Postfix with a milter ->
# smtp-sink as the internal MTA, 3 recipients per message, design.md sizes,
# 8 sessions), but each component runs in a cgroup of its own (cgroup v1
# cpuacct) and the figure is its CPU time per message: the gateway Postfix
# (all its processes, also by process name), the milter, the sink, the
# generator. CPU time moves much less than msg/s when other work shares the
# machine (here about 15 % between runs at load 40-80, where msg/s halves),
# and it says where a gap comes from: on this 2-core
# machine the run is CPU bound, so the ratio of total CPU per message is
# what msg/s would show on an idle machine. Kinds (as in bench_milter.sh):
#   null      the do-nothing milter, the same 3 recipients in every message
#   nullnew   the do-nothing milter, every recipient new (smtp-source -N)
#   warm      gw-milter, cache warm
#   cold      gw-milter, every recipient new: a probe per RCPT to the sink
# Prints, per kind, the least CPU per message of BENCH_ROUNDS rounds (default
# 3) for each component and in total, and total-CPU ratios against null and
# (for cold) nullnew. The sink is also the gateway's delivery target, so its
# figure holds the deliveries (every kind) plus the probes (cold only): the
# probes' share is the sink's cold minus nullnew.
#   BENCH_MESSAGES (default 300)  GW_BENCH_BUILD_DIR (default build-bench)
#   LAB_MILTER_BIN: a gw-milter to use instead of building one
# Needs root, postfix (smtp-source, smtp-sink), libmilter-dev, a C compiler, a
# cgroup v1 cpuacct hierarchy at /sys/fs/cgroup/cpuacct (BENCH_CGROUP).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GW_BENCH_BUILD_DIR:-$top/build-bench}
messages=${BENCH_MESSAGES:-300}
rounds=${BENCH_ROUNDS:-3}
cgroot=${BENCH_CGROUP:-/sys/fs/cgroup/cpuacct}

[ "$(id -u)" -eq 0 ] || { echo "bench_milter_cpu: run as root (Postfix, cgroups)" >&2; exit 1; }
[ -f "$cgroot/cpuacct.usage" ] || { echo "bench_milter_cpu: no cgroup v1 cpuacct at $cgroot" >&2; exit 1; }
"$top/scripts/install-deps"
if [ -z "${LAB_MILTER_BIN:-}" ]; then
	cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=OFF >/dev/null
	cmake --build "$build" -j"$(nproc)" --target gw-milter >/dev/null
fi
milter_bin=${LAB_MILTER_BIN:-$build/milter/gw-milter}
# shellcheck source-path=SCRIPTDIR source=../test/sh/lib/lab.sh
. "$top/test/sh/lib/lab.sh"
lab_init
cg=$cgroot/gw-bench.$$
groups="sink nullm gwm gwmw gw-null gw-cold gw-warm src"
cleanup() {   # stop everything, then move any stragglers back and remove the groups
	local g p
	lab_stop_all
	for g in $groups; do
		[ -d "$cg/$g" ] || continue
		while read -r p; do echo "$p" >"$cgroot/tasks" 2>/dev/null || true; done <"$cg/$g/tasks"
		rmdir "$cg/$g"
	done
	rmdir "$cg" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 1' INT TERM
for g in $groups; do mkdir -p "$cg/$g"; done
into() { echo "$BASHPID" >"$cg/$1/tasks"; }   # the calling (sub)shell and what it starts
usage() { cat "$cg/$1/cpuacct.usage"; }       # ns

cc -std=c11 -O2 -Wall -Wextra -Wno-unused-parameter -o "$LAB/null_milter" "$top/bench/null_milter.c" -lmilter -pthread
sink_port=$(lab_port)
(into sink; exec smtp-sink -u postfix -c "127.0.0.1:$sink_port" 256) >"$LAB/sink.log" 2>&1 &
echo "sink $!" >>"$LAB/bg"
lab_wait_port "$sink_port" 10
printf 'example.com   smtp:[127.0.0.1]:%s\n' "$sink_port" >"$LAB/routes"
np=$(lab_port)
(into nullm; exec "$LAB/null_milter" "inet:$np@127.0.0.1") >"$LAB/null.log" 2>&1 &
echo "null $!" >>"$LAB/bg"
lab_wait_port "$np" 10
milter() {   # GROUP: a gw-milter from etc/gw.conf in that cgroup; prints its port
	local name=$1 port
	port=$(lab_port)
	lab_milter_conf "$port" "$LAB/routes" log_level=warning
	sed -i "s|$LAB/milter/control|$LAB/milter/$name.control|; s|$LAB/milter/gw-milter.pid|$LAB/milter/$name.pid|" \
		"$LAB/milter/gw.conf"
	mv "$LAB/milter/gw.conf" "$LAB/milter/$name.conf"
	(into "$name"; exec "$milter_bin" -c "$LAB/milter/$name.conf" -f) >"$LAB/$name.log" 2>&1 &
	echo "$name $!" >>"$LAB/bg"
	lab_wait_port "$port" 15 >&2 || { cat "$LAB/$name.log" >&2; exit 1; }
	echo "$port"
}
declare -A port mgroup gwgroup
cp=$(milter gwm)
wp=$(milter gwmw)
for k in null cold warm; do
	port[$k]=$(lab_port)
	case $k in null) mp=$np ;; cold) mp=$cp ;; warm) mp=$wp ;; esac
	(into "gw-$k"; lab_gateway_start "gw-$k" "${port[$k]}" "$mp" "$LAB/routes" example.com >/dev/null)
done
port[nullnew]=${port[null]}
mgroup=([null]=nullm [nullnew]=nullm [warm]=gwmw [cold]=gwm)
gwgroup=([null]=gw-null [nullnew]=gw-null [warm]=gw-warm [cold]=gw-cold)

buckets() {   # count:size pairs for the size distribution, scaled to $1 messages (as bench_milter.sh)
	local n=$1
	echo "$((n * 30 / 1000)):500 $((n * 690 / 1000)):5000 $((n * 270 / 1000)):50000 $((n * 10 / 1000)):500000 $((n * 2 / 1000)):2000000"
}
run() {   # PORT TAG [-N]: all buckets, 8 sessions, from the "src" cgroup; with -N a tag per bucket
	local b count size i=0 t
	for b in $(buckets "$messages"); do
		count=${b%%:*}; size=${b##*:}
		i=$((i + 1)); t=$2
		[ -z "${3:-}" ] || t=${2}b$i
		[ "$count" -gt 0 ] || continue
		(into src; exec timeout 300 smtp-source ${3:+"$3"} -d -s 8 -m "$count" -l "$size" -r 3 \
			-f bench@ext.test -t "$t@example.com" -M client.ext.test "127.0.0.1:$1") \
			>>"$LAB/source.log" 2>&1 || true
	done
}
snap() {   # GROUP: "pid name cpu-ticks" for each process in it now
	local p
	while read -r p; do
		[ -r "/proc/$p/stat" ] || continue
		awk -v p="$p" '{ sub(/^[0-9]+ \(/, ""); split($0, a, ") "); split(a[2], f, " "); print p, a[1], f[12] + f[13] }' \
			"/proc/$p/stat" 2>/dev/null || true
	done <"$cg/$1/tasks"
}

for k in null warm cold; do run "${port[$k]}" warmup; done
echo "== gw-milter CPU per message by component: $messages messages x 3 recipients, 8 sessions, least of $rounds rounds (load $(cut -d' ' -f1-3 /proc/loadavg))"
declare -A best byproc
ticks=$(getconf CLK_TCK)
for _ in $(seq "$rounds"); do
	for k in null nullnew warm cold; do
		m=${mgroup[$k]} g=${gwgroup[$k]}
		b_sink=$(usage sink); b_m=$(usage "$m"); b_g=$(usage "$g"); b_src=$(usage src)
		snap "$g" >"$LAB/snap.before"
		case $k in
		cold | nullnew) run "${port[$k]}" "$k$(date +%s%N)" -N ;;
		*) run "${port[$k]}" bench ;;
		esac
		snap "$g" >"$LAB/snap.after"
		sink=$((($(usage sink) - b_sink) / 1000 / messages))
		mil=$((($(usage "$m") - b_m) / 1000 / messages))
		gw=$((($(usage "$g") - b_g) / 1000 / messages))
		src=$((($(usage src) - b_src) / 1000 / messages))
		tot=$((sink + mil + gw + src))
		if [ -z "${best[$k,total]:-}" ] || [ "$tot" -lt "${best[$k,total]}" ]; then
			best[$k,total]=$tot best[$k,sink]=$sink best[$k,milter]=$mil best[$k,gateway]=$gw best[$k,src]=$src
			# Postfix processes that lived through the run (a process that exited is in "gateway" only)
			byproc[$k]=$(awk -v m="$messages" -v hz="$ticks" 'NR == FNR { b[$1] = $3; next }
				{ c[$2] += $3 - ($1 in b ? b[$1] : 0) }
				END { for (n in c) if (c[n] > 0) printf " %s=%d", n, c[n] * 1e6 / hz / m }' \
				"$LAB/snap.before" "$LAB/snap.after")
		fi
	done
done
for k in null nullnew warm cold; do
	printf "%-8s CPU us/msg: total %5d = gateway Postfix %5d + milter %4d + sink %4d + smtp-source %4d   ratio null/%s %.2f\n" \
		"$k" "${best[$k,total]}" "${best[$k,gateway]}" "${best[$k,milter]}" "${best[$k,sink]}" "${best[$k,src]}" \
		"$k" "$(awk -v a="${best[null,total]}" -v b="${best[$k,total]}" 'BEGIN { print a / b }')"
	echo "         gateway Postfix by process (us/msg, from the same round):${byproc[$k]}"
done
awk -v a="${best[nullnew,total]}" -v b="${best[cold,total]}" -v s="${best[cold,sink]}" -v sn="${best[nullnew,sink]}" \
	'BEGIN { printf "cold     ratio nullnew/cold %.2f (total CPU); the probes cost the sink %d us/msg of it\n", a / b, s - sn }'
