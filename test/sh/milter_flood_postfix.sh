#!/usr/bin/env bash
# milter_flood_postfix.sh - the bounce-flood guard end to end through a real
# Postfix, with a load generator playing correspondents and a bounce flood.
#
# Lab (test/sh/lib/lab.sh): an internal Postfix that knows alice@example.com;
# gw-milter from etc/gw.conf with flood_guard = yes, a small window
# (flood_window 2s, flood_floor_bounce 20, flood_calm_windows 2) and a hook
# command; a gateway Postfix with etc/postfix/main.cf.fragment. The load
# generator (lib/flood.py, shared with bench/bench_flood.sh) binds its
# connections to loopback addresses (all of 127.0.0.0/8 is local); the
# correspondent during the flood is a process of its own, so its latency
# does not include waits for the flood threads' GIL:
#   1. learning: three hosts of 127.0.1.0/24 send ordinary mail (DATA);
#   2. before: a correspondent (127.0.1.20) sends bounces to alice, one at a
#      time, 4 a second (under the floor): the RCPT latency is measured;
#   3. flood: FLOOD_THREADS (8) sessions at a time send bounces to alice
#      from random addresses of 127.2.0.0/16 for FLOOD_SECONDS (20), with
#      bench/bench_flood_gen (C, so the generator takes little CPU), while the
#      correspondent keeps sending its bounces (high-load mode begins with
#      the first flood session deferred);
#   4. after: the flood stops; "gw-milter -C SOCKET mode" is polled until
#      normal mode.
# Measured and printed: seconds from flood start to high-load mode, the share
# of flood messages deferred (451 4.7.1 at MAIL) overall and after entry, the
# correspondent's bounces accepted and its median RCPT latency before and
# during the flood (and their ratio), gw-milter's mean time per RCPT decided
# before and during (its gw_milter_rcpt_seconds histogram), seconds from
# flood end to normal mode.
# Checked: entry within 10 s; after entry >= 99% of flood messages deferred
# and no flood RCPT decided by gw-milter after its mode line but those of
# sessions already past MAIL (at most one per flood thread); every correspondent bounce accepted (250); the
# median latency during the flood within 2x + 20 ms of before (the goal of
# 1.2x is printed, not enforced: this machine is shared and noisy); back to
# normal within 30 s; the hook ran once per transition (high, normal).
# Also printed: the CPU pressure (PSI) and load when the flood ends, and with
# FLOOD_PERF=FILE a perf profile of the flood's first seconds by command.
# Needs root, postfix, /usr/bin/python3. Usage: milter_flood_postfix.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: milter_flood_postfix.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
. "$here/lib/lab.sh"
FLOOD_SECONDS=${FLOOD_SECONDS:-20}
FLOOD_THREADS=${FLOOD_THREADS:-8}

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "must run as root (Postfix's master runs as root)"
for t in postfix postconf ss /usr/bin/python3; do
	command -v "$t" >/dev/null || fail "$t not installed (scripts/install-deps)"
done
milter_bin=$build/milter/gw-milter
[ -x "$milter_bin" ] || fail "$milter_bin not built"
[ -x "$build/bench/bench_flood_gen" ] || fail "$build/bench/bench_flood_gen not built"

failures=0
cleanup() {
	local rc=$?
	if [ -n "$LAB" ] && { [ "$rc" -ne 0 ] || [ "$failures" -ne 0 ]; }; then
		{ echo "---- gw-milter log (last 30)"; tail -30 "$LAB/milter/log" 2>/dev/null || true; } >&2
	fi
	lab_stop_all
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
mismatch() { echo "MISMATCH: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok - $*"; }

lab_init
int_port=$(lab_port); gw_port=$(lab_port); milter_port=$(lab_port)
printf 'example.com   smtp:[127.0.0.1]:%s\n' "$int_port" >"$LAB/routes"
lab_internal_start int "$int_port" alice@example.com
lab_milter_conf "$milter_port" "$LAB/routes" unknown_limit=0 flood_guard=yes "flood_store=$LAB/milter/store" \
	flood_threshold=2 flood_window=2s flood_floor_bounce=20 flood_calm_windows=2 flood_baseline_windows=100 \
	"flood_hook_command=echo \$GW_FLOOD_MODE >> $LAB/milter/hooks"
lab_milter_start "$build"
lab_gateway_start gw "$gw_port" "$milter_port" "$LAB/routes" example.com
# thousands of clients from 127.2.0.0/16: no reverse lookups, no per-client limits
postconf -c "$LAB/gw/etc" -e "smtpd_peername_lookup = no" "default_process_limit = 100" \
	"smtpd_client_connection_count_limit = 0" "smtpd_client_connection_rate_limit = 0"
lab_postfix_stop gw >/dev/null; lab_postfix_start gw
ctl="$milter_bin -C $LAB/milter/control"

/usr/bin/python3 "$here/lib/flood.py" --port "$gw_port" --ctl "$ctl" --seconds "$FLOOD_SECONDS" \
	--threads "$FLOOD_THREADS" --gen "$build/bench/bench_flood_gen" --out "$LAB/flood.out" >"$LAB/result.json"
r=$(cat "$LAB/result.json")
get() { python3 -c "import json,sys; d=json.load(open('$LAB/result.json')); print(eval(sys.argv[1]))" "$1"; }
echo "result: $r"
entry=$(get 'd["entry_s"]')
[ "$(get 'd["mode_at_start"]')" = normal ] && pass "normal mode when the flood starts" || mismatch "mode at flood start: $(get 'd["mode_at_start"]')"
sent=$(get 'd["flood"]["sent"]'); deferred=$(get 'd["flood"]["deferred"]')
sent_after=$(get 'd["flood"]["sent_after"]'); deferred_after=$(get 'd["flood"]["deferred_after"]')
mb=$(get 'd["median_before_ms"]'); md=$(get 'd["median_during_ms"]')
echo "measured: flood start -> high-load mode ${entry} s"
echo "measured: flood messages deferred ${deferred}/${sent} overall ($(get 'round(100*d["flood"]["deferred"]/max(1,d["flood"]["sent"]),2)')%), ${deferred_after}/${sent_after} after entry ($(get 'round(100*d["flood"]["deferred_after"]/max(1,d["flood"]["sent_after"]),2)')%)"
echo "measured: correspondent's median RCPT latency ${mb} ms before, ${md} ms during ($(get 'round(d["median_during_ms"]/d["median_before_ms"],2)')x; goal 1.2x)"
echo "measured: flood end -> normal mode $(get 'd["back_s"]') s"
# gw-milter's own time per RCPT it decided (its gw_milter_rcpt_seconds histogram): before the flood,
# and in the flood's window (the correspondent's; the flood's sessions end at MAIL once deferred)
echo "measured: gw-milter's mean time per RCPT decided: $(get 'd["milter_rcpt_us_before"]') us before, $(get 'd["milter_rcpt_us_during"]') us during the flood"

# CPU pressure (PSI) now: the share of time runnable tasks waited for a CPU, the flood's and everyone's.
echo "measured: $(sed -n 's/^some /CPU pressure (\/proc\/pressure\/cpu): /p' /proc/pressure/cpu 2>/dev/null), load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
if [ -n "${FLOOD_PERF:-}" ] && [ -s "$FLOOD_PERF" ]; then
	echo "measured: CPU samples by command in the flood's first seconds (perf, all CPUs):"
	perf report -i "$FLOOD_PERF" --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -12 | sed 's/^/     /'
fi
[ "$entry" != None ] && python3 -c "import sys; sys.exit(0 if $entry <= 10 else 1)" &&
	pass "high-load mode within 10 s ($entry s)" || mismatch "high-load mode: got ${entry} s, want <= 10"
python3 -c "import sys; sys.exit(0 if $sent_after > 0 and $deferred_after * 100 >= 99 * $sent_after else 1)" &&
	pass "after entry >= 99% of the flood deferred ($deferred_after/$sent_after)" ||
	mismatch "deferred after entry: $deferred_after/$sent_after (other replies: $(get 'd["flood"]["other"]'))"
[ "$(get 'd["before_bad"]')" = 0 ] && [ "$(get 'len(d["during_bad"])')" = 0 ] &&
	pass "every correspondent bounce accepted ($(get 'd["before_ok"]') before, $(get 'd["during_ok"]') during)" ||
	mismatch "correspondent bounces refused: $(get 'd["before_bad"]') before, during: $(get 'd["during_bad"]')"
python3 -c "import sys; sys.exit(0 if $md <= 2 * $mb + 20 else 1)" &&
	pass "correspondent latency during the flood within 2x + 20 ms" || mismatch "latency ${md} ms during vs ${mb} ms before"
[ "$(get 'd["back_s"]')" != None ] && pass "back to normal ($(get 'd["back_s"]') s)" || mismatch "not back to normal within 60 s"
hooks=$(tr '\n' ' ' <"$LAB/milter/hooks" | sed 's/ $//')
[ "$hooks" = "high normal" ] && pass "hook ran once per transition ($hooks)" || mismatch "hooks: got '$hooks', want 'high normal'"
# After the mode line, the only flood RCPTs gw-milter may still decide are those of sessions
# whose MAIL went through just before it: at most one per flood thread.
n=$(awk '/flood mode=high/ { on = 1 } on && / rcpt / && /client=127\.2\./ { n++ } END { print n + 0 }' "$LAB/milter/log")
[ "$n" -le "$FLOOD_THREADS" ] && pass "flood RCPTs decided after entry: $n (sessions in flight, <= $FLOOD_THREADS)" ||
	mismatch "$n RCPTs of flood clients were decided after entry (want <= $FLOOD_THREADS in flight)"
kill -TERM "$LAB_MILTER_PID"
lab_wait_pid "$LAB_MILTER_PID" 30 || mismatch "gw-milter did not stop"
wait "$LAB_MILTER_PID" && pass "gw-milter stopped cleanly" || mismatch "gw-milter exit status $?"
[ "$failures" -eq 0 ] || exit 1
echo "all checks passed"
