#!/usr/bin/env bash
# bench_proxy_cpu.sh - what gw-proxy costs per relayed message, as CPU time
# rather than wall time, in bench_proxy.sh's "same tenant MTA" set-up.
#
# A throw-away Postfix instance (test/sh/lib/lab.sh, Postfix's default
# concurrency) is the tenant, its relayhost straight at an smtp-sink or at
# gw-proxy (plain listener, upstream = that sink). BENCH_MESSAGES messages of
# BENCH_SIZE bytes, BENCH_RCPTS recipients each, are injected and held on
# receipt, then released (postsuper -H ALL, postqueue -f) until the tenant's
# queue is empty and the sink has counted every one. The tenant (all its
# processes), gw-proxy and the sink each run in a cgroup of their own
# (cgroup v1 cpuacct, as bench_milter_cpu.sh), and the figure is each one's
# CPU microseconds per message from the release to the last message at the
# sink; the injection is not counted.
#
# On the 2-core machine the whole pipeline is CPU bound, so the ratio of
# total CPU per message (straight / through the proxy) is what msg/s would
# show on an idle machine; it moves much less than msg/s when other work
# shares the machine. Printed per path, the least total of BENCH_ROUNDS
# rounds: tenant, proxy (user + system, from cpuacct.stat: 10 ms ticks) and
# sink us/msg, the proxy's share of the total, and the CPU ratio against
# straight (target of the msg/s ratio: >= 0.9). The tenant's figure moves
# most between runs (Postfix's own work, some 2,000-3,000 us/msg here), so
# compare gw-proxy's own figure between builds, in the same run.
# BENCH_PROXY_BEFORE=/path/to/gw-proxy adds the same path for another
# gw-proxy binary (an older build, say), measured in the same rounds.
#   BENCH_MESSAGES (default 2000)  BENCH_RCPTS (default 3)  BENCH_SIZE (default 5000)
#   BENCH_ROUNDS (default 3)  GW_BENCH_BUILD_DIR (default build-bench)
#   BENCH_PROXY: a gw-proxy to use instead of building one
# Needs root (Postfix, cgroups), postfix (smtp-source, smtp-sink), bc, a
# cgroup v1 cpuacct hierarchy at /sys/fs/cgroup/cpuacct (BENCH_CGROUP).
# Stops what it started by PID.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GW_BENCH_BUILD_DIR:-$top/build-bench}
messages=${BENCH_MESSAGES:-2000}
rcpts=${BENCH_RCPTS:-3}
size=${BENCH_SIZE:-5000}
rounds=${BENCH_ROUNDS:-3}
cgroot=${BENCH_CGROUP:-/sys/fs/cgroup/cpuacct}

[ "$(id -u)" -eq 0 ] || { echo "bench_proxy_cpu: run as root (Postfix, cgroups)" >&2; exit 1; }
[ -f "$cgroot/cpuacct.usage" ] || { echo "bench_proxy_cpu: no cgroup v1 cpuacct at $cgroot" >&2; exit 1; }
if [ -z "${BENCH_PROXY:-}" ]; then
	cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=OFF >/dev/null
	cmake --build "$build" -j"${BENCH_JOBS:-$(nproc)}" --target gw-proxy >/dev/null
fi
proxy=${BENCH_PROXY:-$build/proxy/gw-proxy}

# shellcheck source-path=SCRIPTDIR source=../test/sh/lib/lab.sh
. "$top/test/sh/lib/lab.sh"
lab_init
cg=$cgroot/gw-bench-proxy.$$
paths="straight proxy"
[ -z "${BENCH_PROXY_BEFORE:-}" ] || paths="$paths before"
groups="sink"
for p in $paths; do groups="$groups t-$p"; done
groups="$groups gwp-proxy gwp-before"
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
ticks() { awk -v k="$2" '$1 == k { print $2 }' "$cg/$1/cpuacct.stat"; }   # GROUP user|system: USER_HZ ticks
hz=$(getconf CLK_TCK)

sink_port=$(lab_port)
(into sink; exec smtp-sink -u "$(id -un)" -c "127.0.0.1:$sink_port" 1000) >"$LAB/sink.log" 2>&1 &
echo "sink $!" >>"$LAB/bg"
lab_wait_port "$sink_port" 10

proxy_start() {   # NAME BINARY: gw-proxy in cgroup gwp-NAME, upstream the sink; prints its port
	local port
	port=$(lab_port)
	cat >"$LAB/$1.conf" <<C
listen = [127.0.0.1]:$port
upstream = [127.0.0.1]:$sink_port
control_socket = $LAB/$1.control
pid_file =
log = stderr
log_level = warning
session_log = $LAB/$1.session.log
tls = none
C
	(into "gwp-$1"; exec "$2" -f -c "$LAB/$1.conf") >"$LAB/$1.log" 2>&1 &
	echo "gwp-$1 $!" >>"$LAB/bg"
	lab_wait_port "$port" 15 >&2 || { cat "$LAB/$1.log" >&2; exit 1; }
	echo "$port"
}
tenant_start() {   # PATH RELAYHOST-PORT: the tenant Postfix, in cgroup t-PATH
	local name=tenant-$1 d=$LAB/tenant-$1 port
	port=$(lab_port)
	lab_instance_dirs "$name"
	echo "$port" >"$d/port"
	lab_master_cf "$port" >"$d/etc/master.cf"
	{
		lab_main_cf "$name"
		cat <<C
# the tenant: everything to its relayhost; mail held on receipt until released
relayhost = [127.0.0.1]:$2
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = check_client_access static:HOLD
C
	} >"$d/etc/main.cf"
	(into "t-$1"; lab_postfix_start "$name" >/dev/null)
}
declare -A relay
relay[straight]=$sink_port
relay[proxy]=$(proxy_start proxy "$proxy")
[ -z "${BENCH_PROXY_BEFORE:-}" ] || relay[before]=$(proxy_start before "$BENCH_PROXY_BEFORE")
for p in $paths; do tenant_start "$p" "${relay[$p]}"; done

sink_count() { tr '\r' '\n' <"$LAB/sink.log" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1; }
run() {   # PATH: inject and hold, then release and wait; sets r_t r_p r_pu r_ps r_s (us per message)
	local name=tenant-$1 d=$LAB/tenant-$1 n0 held b_t b_p b_pu b_ps b_s pg=gwp-$1
	smtp-source -s 10 -m "$messages" -r "$rcpts" -l "$size" -f s@tenant.test -t r@dest.test \
		"127.0.0.1:$(cat "$d/port")" >/dev/null 2>&1
	held=$(find "$d/spool/hold" -type f | wc -l)
	[ "$held" -eq "$messages" ] || { echo "bench_proxy_cpu: $name holds $held messages, not $messages" >&2; exit 1; }
	n0=$(sink_count); n0=${n0:-0}
	[ "$1" != straight ] || pg=gwp-proxy   # not in the path: its figure is not counted
	b_t=$(usage "t-$1"); b_p=$(usage "$pg"); b_s=$(usage sink); b_pu=$(ticks "$pg" user); b_ps=$(ticks "$pg" system)
	postsuper -c "$d/etc" -H ALL 2>/dev/null
	postqueue -c "$d/etc" -f
	for _ in $(seq 6000); do [ "$(lab_queue_count "$name")" -eq 0 ] && break; sleep 0.05; done
	[ "$(lab_queue_count "$name")" -eq 0 ] || { echo "bench_proxy_cpu: $name did not empty its queue" >&2; tail -5 "$d/maillog" >&2; exit 1; }
	for _ in $(seq 100); do [ "$(( $(sink_count) - n0 ))" -ge "$messages" ] && break; sleep 0.1; done
	[ "$(( $(sink_count) - n0 ))" -eq "$messages" ] || {
		echo "bench_proxy_cpu: the sink got $(( $(sink_count) - n0 )) of $name's $messages messages" >&2; tail -5 "$d/maillog" >&2; exit 1; }
	r_t=$((($(usage "t-$1") - b_t) / 1000 / messages))
	r_p=$((($(usage "$pg") - b_p) / 1000 / messages))
	r_s=$((($(usage sink) - b_s) / 1000 / messages))
	r_pu=$((($(ticks "$pg" user) - b_pu) * 1000000 / hz / messages))
	r_ps=$((($(ticks "$pg" system) - b_ps) * 1000000 / hz / messages))
	[ "$1" != straight ] || r_p=0 r_pu=0 r_ps=0
}

echo "== gw-proxy CPU per message: tenant Postfix -> [gw-proxy ->] smtp-sink, $messages messages of $size bytes x $rcpts recipients, least of $rounds rounds (load $(cut -d' ' -f1-3 /proc/loadavg))"
declare -A best
for _ in $(seq "$rounds"); do
	for p in $paths; do
		run "$p"
		tot=$((r_t + r_p + r_s))
		if [ -z "${best[$p,total]:-}" ] || [ "$tot" -lt "${best[$p,total]}" ]; then
			best[$p,total]=$tot best[$p,tenant]=$r_t best[$p,proxy]=$r_p best[$p,sink]=$r_s
			best[$p,user]=$r_pu best[$p,sys]=$r_ps
		fi
	done
done
for p in $paths; do
	printf '%-8s CPU us/msg: total %5d = tenant %5d + gw-proxy %4d (user %3d + sys %3d) + sink %4d   gw-proxy share %4.1f%%   CPU ratio straight/%s %.2f (target >= 0.9)\n' \
		"$p" "${best[$p,total]}" "${best[$p,tenant]}" "${best[$p,proxy]}" "${best[$p,user]}" "${best[$p,sys]}" "${best[$p,sink]}" \
		"$(echo "100 * ${best[$p,proxy]} / ${best[$p,total]}" | bc -l)" "$p" \
		"$(echo "${best[straight,total]} / ${best[$p,total]}" | bc -l)"
done
