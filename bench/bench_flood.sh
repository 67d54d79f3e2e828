#!/usr/bin/env bash
# bench_flood.sh - a correspondent's RCPT latency during a bounce flood, at
# several flood rates, with the bounce-flood guard and without it (the
# reference, same run), beside the CPU the flood leaves idle.
#
# The issue's goal: correspondents' median RCPT latency during a flood within
# 1.2x of before. Whether a gateway meets it depends on the flood's rate more
# than on gw-milter: a flood that keeps every CPU busy makes every process on
# the RCPT's path (smtpd, gw-milter's thread, the client) wait for a CPU,
# whatever the milter does with the flood. So this prints, for each rate, the
# ratio and the CPU idle share side by side: the reader sees where the goal
# holds and where the CPUs run out.
#
# Lab (test/sh/lib/lab.sh), as in test/sh/milter_flood_postfix.sh: an internal
# Postfix that knows alice@example.com; gw-milter from etc/gw.conf (release
# build) with flood_guard = yes and the test's small window (flood_window 2s,
# flood_floor_bounce 20, flood_calm_windows 2); a gateway Postfix with
# etc/postfix/main.cf.fragment. Each run is test/sh/lib/flood.py: three
# networks of 127.0.1.0/24 send ordinary mail (learnt as correspondents); the
# correspondent 127.0.1.20 sends bounces to alice at BENCH_FLOOD_CORR_RATE a
# second, BENCH_FLOOD_BEFORE of them before the flood, and on during it;
# bench/bench_flood_gen sends the flood (null sender, to alice, random
# sources in 127.2.0.0/16, one connection per message, BENCH_FLOOD_THREADS
# sessions at a time, a bounce of about 1 KB after DATA when RCPT is
# accepted) at the rate, paced by absolute deadlines ("max": as fast as the
# threads can). The first BENCH_FLOOD_WARMUP seconds of each flood are left
# out (the guard enters high-load mode in them). Each rate
# runs twice: every rate with the guard first, then gw-milter is restarted
# with flood_guard = no and every rate runs again (so no guarded run follows
# the drain of an unguarded one), where every flood bounce takes the normal path
# (RCPT, call-ahead to the internal MTA: one recipient, so mostly a cache hit
# re-confirmed on a pooled session; no PRVS, the lab has no keys; then DATA,
# the gateway's queue, delivery to alice's mailbox on the internal MTA).
# After each run the gateway's and the internal MTA's queues are left to
# drain (BENCH_FLOOD_DRAIN seconds at most), the flood bounces in alice's
# mailbox are counted and removed, so no run fills the disk.
# Printed per rate and configuration:
#   achieved   flood sessions a second (MAIL replies in the window)
#   deferred   share of them answered 451 4.7.1 at MAIL
#   entry      seconds from flood start to high-load mode (guard only)
#   before / during   the correspondent's RCPT latency, median and p90 (ms)
#   ratio      median during / median before of the run (one run's ratio
#              is noisy: see the summary)
#   idle       CPU idle share of the whole machine in the window (/proc/stat)
#   mailbox    flood bounces delivered into alice's mailbox (with the guard:
#              those that came before high-load mode)
#   milter     gw-milter's CPU (utime + stime, /proc/PID/stat) per flood
#              session in the window, microseconds (clock ticks of 10 ms:
#              coarse at low rates; the correspondent's few sessions a second
#              are in it too)
#   milter RCPT  gw-milter's mean time per RCPT decided, before and in the
#              window (its gw_milter_rcpt_seconds histogram): with the guard
#              the correspondent's RCPTs, without it the flood's too
# Then the summary: per configuration the baseline, the median of every
# run's median before (all of them the same condition: no flood yet); per
# rate the median of its runs' medians during the flood over that baseline,
# judged against the goal of 1.2x (with the median and range of the runs'
# own ratios beside it); and per rate the effect of the guard: the median
# during the flood unguarded over guarded, and gw-milter's CPU per session
# unguarded over guarded. At the end: what
# is left on disk (queue files, the lab's size: mostly logs).
#   BENCH_FLOOD_RATES    flood sessions a second, "0" = as fast as possible,
#                        "none" = no flood, the control: the correspondent
#                        alone, measured the same way, shows how far the
#                        ratio moves by chance (default "none 50 200 500 0")
#   BENCH_FLOOD_ROUNDS   rounds through all the rates with the guard (5): one
#                        run's median of 40-50 RCPTs of half a millisecond
#                        moves by up to 50 % from run to run, with no flood
#                        too, so the goal is judged on medians over the
#                        rounds (the summary at the end)
#   BENCH_FLOOD_ROUNDS_REF  rounds without the guard (2): each unguarded flood
#                        queues and delivers up to 10,000 bounces
#   BENCH_FLOOD_SECONDS  each flood (default 20)     BENCH_FLOOD_WARMUP (3)
#   BENCH_FLOOD_THREADS  (8)   BENCH_FLOOD_BEFORE (40)   BENCH_FLOOD_CORR_RATE (4)
#   BENCH_FLOOD_DRAIN    seconds to wait for the queues after a run (300)
#   BENCH_FLOOD_SETTLE   seconds at most to wait, after a flood's queues
#                        drained, for its TIME_WAIT sockets to expire (120;
#                        from 10,000 more than at the start):
#                        while the 90,000 of an unpaced flood lasted (a
#                        minute), the next run's "before" was 0.7-0.8 ms
#                        instead of 0.5, which flattered that run's ratio
#   BENCH_FLOOD_GUARDS   the configurations to run ("yes no"; "yes": the guard only)
#   BENCH_FLOOD_CONF     more gw.conf settings for both, "KEY=VALUE ..." (e.g.
#                        "log_level=notice" to see what the log lines cost)
#   BENCH_FLOOD_PERF=DIR  perf record (call graphs) of gw-milter in each flood's first
#                        seconds, into DIR/gw-milter-CONFIG-RATE.perf
#   GW_BENCH_BUILD_DIR (build-bench); LAB_MILTER_BIN: a gw-milter to use
#   instead of the one built here
# Short form while developing: BENCH_FLOOD_SECONDS=8 BENCH_FLOOD_BEFORE=20 BENCH_FLOOD_ROUNDS=1.
# Figures on a machine busy with other work show its load, not this software:
# quote figures from an idle machine (docs/howto-bounce-floods.md).
# Needs root (Postfix's master), postfix, /usr/bin/python3.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GW_BENCH_BUILD_DIR:-$top/build-bench}
read -r -a rates <<<"${BENCH_FLOOD_RATES:-none 50 200 500 0}"
rounds=${BENCH_FLOOD_ROUNDS:-5}
rounds_ref=${BENCH_FLOOD_ROUNDS_REF:-2}
settle_max=${BENCH_FLOOD_SETTLE:-120}
seconds=${BENCH_FLOOD_SECONDS:-20}
warmup=${BENCH_FLOOD_WARMUP:-3}
threads=${BENCH_FLOOD_THREADS:-8}
before=${BENCH_FLOOD_BEFORE:-40}
corr_rate=${BENCH_FLOOD_CORR_RATE:-4}
perf_dir=${BENCH_FLOOD_PERF:-}
drain_max=${BENCH_FLOOD_DRAIN:-300}
read -r -a guards <<<"${BENCH_FLOOD_GUARDS:-yes no}"
read -r -a conf_extra <<<"${BENCH_FLOOD_CONF:-}"

[ "$(id -u)" -eq 0 ] || { echo "bench_flood: run as root (Postfix's master runs as root)" >&2; exit 1; }
"$top/scripts/install-deps"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=OFF >/dev/null
targets=(bench_flood_gen)
[ -n "${LAB_MILTER_BIN:-}" ] || targets+=(gw-milter)
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null
milter_bin=${LAB_MILTER_BIN:-$build/milter/gw-milter}
[ -z "$perf_dir" ] || mkdir -p "$perf_dir"
# shellcheck source-path=SCRIPTDIR source=../test/sh/lib/lab.sh
. "$top/test/sh/lib/lab.sh"
lab_init
trap 'lab_stop_all' EXIT
trap 'exit 1' INT TERM

int_port=$(lab_port); gw_port=$(lab_port); milter_port=$(lab_port)
printf 'example.com   smtp:[127.0.0.1]:%s\n' "$int_port" >"$LAB/routes"
lab_internal_start int "$int_port" alice@example.com
guard_now=
milter() {   # yes|no: (re)start gw-milter with the guard on or off, unless it runs so already
	[ "$1" != "$guard_now" ] || return 0
	guard_now=$1
	lab_milter_stop
	lab_milter_conf "$milter_port" "$LAB/routes" unknown_limit=0 "flood_guard=$1" "flood_store=$LAB/milter/store" \
		flood_threshold=2 flood_window=2s flood_floor_bounce=20 flood_calm_windows=2 flood_baseline_windows=100 \
		"${conf_extra[@]}"
	LAB_MILTER_BIN=$milter_bin lab_milter_start "$build"
}
milter "${guards[0]}"
lab_gateway_start gw "$gw_port" "$milter_port" "$LAB/routes" example.com
# thousands of clients from 127.2.0.0/16: no reverse lookups, no per-client limits
postconf -c "$LAB/gw/etc" -e "smtpd_peername_lookup = no" "default_process_limit = 100" \
	"smtpd_client_connection_count_limit = 0" "smtpd_client_connection_rate_limit = 0"
lab_postfix_stop gw >/dev/null; lab_postfix_start gw

box=$LAB/int/mail/alice@example.com
tw_count() { ss -Htan state time-wait | wc -l; }
tw_calm=$(($(tw_count) + 10000))   # a flood of 200/s leaves about 8,000, an unpaced one 90,000
settle() {   # wait (BENCH_FLOOD_SETTLE s at most) until the TIME_WAIT sockets are back near where they were
	local i
	for ((i = 0; i < settle_max; i++)); do
		[ "$(tw_count)" -gt "$tw_calm" ] || return 0
		sleep 1
	done
	echo "bench_flood: $(tw_count) sockets still in TIME_WAIT after $settle_max s" >&2
}
drain() {   # wait for both queues to empty; print the flood bounces delivered, remove them
	local i n
	for ((i = 0; i < drain_max * 5; i++)); do
		[ "$(lab_queue_count gw)" -eq 0 ] && [ "$(lab_queue_count int)" -eq 0 ] && break
		sleep 0.2
	done
	[ "$(lab_queue_count gw)" -eq 0 ] && [ "$(lab_queue_count int)" -eq 0 ] ||
		echo "bench_flood: queues not empty after $drain_max s (gateway $(lab_queue_count gw), internal $(lab_queue_count int))" >&2
	n=$(find "$box" -type f -path '*/new/*' -print0 2>/dev/null | xargs -0r grep -l -F 'Reporting-MTA: dns; flood.client.test' | wc -l)
	find "$box" -type f \( -path '*/new/*' -o -path '*/cur/*' \) -delete 2>/dev/null || true
	echo "$n"
}

echo "== bounce flood beside a correspondent: $threads flood sessions at a time, ${seconds} s per flood${conf_extra[*]:+, gw.conf ${conf_extra[*]}}" \
	"(first ${warmup} s left out), correspondent $corr_rate bounces/s ($before before); goal: median during <= 1.2x before"
echo "   load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs at the start"
printf '%-5s %-5s %5s %9s %9s %6s %15s %15s %7s %-5s %6s %8s %8s %13s\n' rate guard round achieved deferred entry \
	"before med/p90" "during med/p90" ratio goal idle% mailbox milter "milter RCPT"
printf '%-5s %-5s %5s %9s %9s %6s %15s %15s %7s %-5s %6s %8s %8s %13s\n' "/s" "" "" "/s" "" s ms ms "" "" "" "" "us/sess" "us bef/dur"
# one line per run for the summary: RATE GUARD RATIO MILTER-CPU MEDIAN-DURING MEDIAN-BEFORE
: >"$LAB/runs"
# Every rate with the guard first, then without: an unguarded run leaves queues to drain and a busier
# Postfix behind it, which must not be the "before" of a guarded run. Within a configuration the
# rounds go through all rates in turn, so a drift of the machine spreads over every rate alike.
for guard in "${guards[@]}"; do
	milter "$guard"
	n_rounds=$rounds
	[ "$guard" = yes ] || n_rounds=$rounds_ref
	for ((round = 1; round <= n_rounds; round++)); do
		for rate in "${rates[@]}"; do
			label=$rate
			[ "$rate" != 0 ] || label=max
			extra=()
			[ "$guard" = yes ] || extra+=(--no-mode)
			[ "$rate" != none ] || extra+=(--no-flood)
			perf_env=()
			[ -z "$perf_dir" ] || [ "$rate" = none ] ||
				perf_env=(FLOOD_PERF="$perf_dir/gw-milter-$guard-$label-$round.perf" FLOOD_PERF_PID="$LAB_MILTER_PID")
			env "${perf_env[@]}" /usr/bin/python3 "$top/test/sh/lib/flood.py" --port "$gw_port" \
				--ctl "$milter_bin -C $LAB/milter/control" --gen "$build/bench/bench_flood_gen" --out "$LAB/flood.out" \
				--seconds "$seconds" --threads "$threads" --rate "${rate/none/0}" --corr-rate "$corr_rate" --before "$before" \
				--warmup "$warmup" --milter-pid "$LAB_MILTER_PID" --data "${extra[@]}" >"$LAB/result.json" ||
				{ echo "bench_flood: flood.py failed (rate $label, guard $guard, round $round)" >&2; exit 1; }
			delivered=$(drain)
			settle
			line=$(/usr/bin/python3 - "$LAB/result.json" "$label" "$guard" "$delivered" "$round" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
label, guard, delivered, rnd = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
w = d["window"]
f = lambda x, p=2: "-" if x is None else ("%.*f" % (p, x))
ratio = d["median_during_ms"] / d["median_before_ms"] if d["median_during_ms"] and d["median_before_ms"] else None
bad = d["before_bad"] + len(d["during_bad"])
print("%-5s %-5s %5s %9s %8s%% %6s %15s %15s %6sx %-5s %6s %8s %8s %13s%s%s" % (
    label, guard, rnd, f(d["rate_achieved"], 1), f(100.0 * w["deferred"] / w["sent"] if w["sent"] else None, 1),
    f(d["entry_s"], 1) if guard == "yes" and label != "none" else "-",
    f(d["median_before_ms"]) + "/" + f(d["p90_before_ms"]), f(d["median_during_ms"]) + "/" + f(d["p90_during_ms"]),
    f(ratio), "-" if ratio is None else "met" if ratio <= 1.2 else "MISS", f(d["cpu_idle_pct"], 1), delivered,
    f(d.get("milter_cpu_us_per_session"), 0),
    f(d.get("milter_rcpt_us_before"), 0) + "/" + f(d.get("milter_rcpt_us_during"), 0),
    "" if bad == 0 else "  correspondent refused %d: %s" % (bad, d["during_bad"][:1]),
    "" if guard == "no" or d["mode_at_start"] == "normal" else "  (flood started in mode %s)" % d["mode_at_start"]))
print(f(ratio, 4), f(d.get("milter_cpu_us_per_session"), 1), f(d["median_during_ms"], 3), f(d["median_before_ms"], 3))
PY
			)
			echo "${line%%$'\n'*}"
			echo "$label $guard ${line##*$'\n'}" >>"$LAB/runs"
		done
	done
done
# The summary. Every "before" of a configuration is the same condition (no flood yet), so the
# baseline is the median of all of them, steadier than one run's; each rate's figure is the median
# of its runs' medians during the flood over that baseline, and the goal is judged on it. Also
# printed: the median and range of the runs' own ratios. The effect of the guard compares the
# medians during the flood, not the ratios: an unguarded flood queues thousands of bounces and
# the unguarded runs after it start slower.
/usr/bin/python3 - "$LAB/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, guard, *v = line.split()
    runs.setdefault((label, guard), []).append([None if x == "-" else float(x) for x in v])
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
f = lambda x, fmt="%.2f": "-" if x is None else fmt % x
base = {g: med([r[3] for (l, gg), rs in runs.items() if gg == g for r in rs]) for g in {g for _, g in runs}}
for g in sorted(base, reverse=True):
    n = sum(len(rs) for (l, gg), rs in runs.items() if gg == g)
    print("   guard %-3s: baseline (median of all %d runs' medians before) %s ms" % (g, n, f(base[g])))
print("   %-5s %-5s %8s %7s %-5s %22s" % ("rate", "guard", "during", "/base", "goal", "runs' ratios: median"))
summary = {}
for (label, guard), rs in runs.items():
    d, c = med([r[2] for r in rs]), med([r[1] for r in rs])
    q = d / base[guard] if d is not None and base[guard] else None
    summary[label, guard] = (d, c)
    ratios = [r[0] for r in rs if r[0] is not None]
    goal = "-" if q is None or label == "none" else "met" if q <= 1.2 else "MISS"
    print("   %-5s %-5s %8s %6sx %-5s %10sx (%s)%s" % (
        label, guard, f(d), f(q), goal, f(med(ratios)), "-" if not ratios else "%.2f-%.2f" % (min(ratios), max(ratios)),
        "   no flood: the noise" if label == "none" else ""))
for (label, guard), (d, c) in summary.items():
    if guard != "yes" or label == "none" or (label, "no") not in summary:
        continue
    dn, cn = summary[label, "no"]
    q = lambda a, b: "-" if a is None or not b else "%.2f" % (a / b)
    print("   %s/s, the effect of the guard: median latency during the flood without / with %s,"
          " gw-milter CPU per session without / with %s" % (label, q(dn, d), q(cn, c)))
PY
echo "   load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "   left on disk: queue files gateway $(lab_queue_count gw), internal $(lab_queue_count int);" \
	"lab $(du -sm "$LAB" | cut -f1) MB (mostly logs)"
if [ -n "$perf_dir" ]; then
	echo "   gw-milter profiles: perf report -i $perf_dir/gw-milter-CONFIG-RATE.perf --no-children --sort sym"
fi
