#!/usr/bin/env bash
# bench_rtt.sh - gw-milter's RCPT latency in round trips to a slow internal MTA.
#
# Loopback hides round trips; this benchmark makes them visible. The internal
# MTA is gw-fakepeer's "serve RTT" (test/fakepeer): every reply leaves RTT ms
# (default 20) after its command arrived, replies to pipelined commands
# together, and a new connection's greeting comes 2 RTT after connect (TCP
# handshake and greeting). gw-milter is driven over the milter protocol by
# bench/milter_rtt.py (the MTA side, as Postfix's smtpd: MAIL, RCPT, DATA,
# end of message, each awaited), one message after another in one session.
# Median and 99th percentile of:
#   (a) cold      a recipient never seen, on a pooled session   target <= 1 RTT + 5 ms
#   (b) new       the same with no idle session (pool_max_uses = 1: every
#                 message opens a connection)                  target <= 4 RTT + 5 ms
#   (c) warm      a recipient checked moments ago (cache, inside confirm_window)
#                                                               target <= 1 ms
#   (d) refresh   the same after confirm_window (200 ms here): re-checked live
#                                                               target <= 1 RTT + 5 ms
# ((a), (c) and (d) run with pool_max_uses raised: at its default of 100,
# one message in 100 finds its session retired and pays (b) instead.)
# and the DATA reply after (a), (b) and (d): the probe session goes back to
# its pool at DATA, and whatever that costs is time the MTA's smtpd waits.
# Messages follow each other at once, so the next RCPT reaches the internal
# MTA about a millisecond after the last message's RSET and MAIL (the fake
# MTA, like a server with Nagle on, then sends their replies and the RCPT's
# in separate segments).
# Then Postfix's reject_unverified_recipient on a gateway Postfix relaying to
# the same kind of internal MTA, with RTT and with BENCH_SLOW_RTT (default
# 300) ms: first contact (BENCH_FIRST new recipients, 8 at a time: RCPT
# latency and how many were answered 450 while the probe ran) and warm (the
# same recipients again: answered from its verify cache). (b) has no
# counterpart there (the probe goes through the queue and smtp(8)'s own
# connections) and neither has (d) (a cached result stands for
# address_verify_positive_refresh_time, 7 days, without a live check).
#   BENCH_N (default 200) messages per gw-milter case; BENCH_RTT (default 20)
#   BENCH_POSTFIX=0 skips the Postfix part; GW_BENCH_BUILD_DIR (build-rtt)
#   BENCH_PRIO: a command prefix for gw-milter, the fake MTA and the driver,
#   e.g. "chrt -f 10" (root) on a machine busy with other work, so the
#   percentiles show this software's round trips rather than the run queue.
# Needs python3; the Postfix part needs root and postfix.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GW_BENCH_BUILD_DIR:-$top/build-rtt}
n=${BENCH_N:-200}
rtt=${BENCH_RTT:-20}
slow=${BENCH_SLOW_RTT:-300}
first=${BENCH_FIRST:-24}
do_postfix=${BENCH_POSTFIX:-1}
read -r -a prio <<<"${BENCH_PRIO:-}"

if [ -z "${GW_BENCH_NO_BUILD:-}" ]; then
	cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=ON >/dev/null
	cmake --build "$build" -j"$(nproc)" --target gw-milter gw-fakepeer >/dev/null
fi
# shellcheck source-path=SCRIPTDIR source=../test/sh/lib/lab.sh
. "$top/test/sh/lib/lab.sh"
lab_init
trap 'lab_stop_all' EXIT
trap 'exit 1' INT TERM

peer() {   # NAME RTT: a gw-fakepeer serving any number of connections; prints its port
	local name=$1 d=$2 port
	port=$(lab_port)
	printf 'sleep %s\nsend 220 internal.test ESMTP\nserve %s\n' "$((2 * d))" "$d" >"$LAB/$name.script"
	lab_bg "$name" "${prio[@]}" "$build/test/gw-fakepeer" -s "$LAB/$name.script" -p "$port" -n 100000 -t 600000
	lab_wait_port "$port" 10 >&2 || { cat "$LAB/$name.log" >&2; exit 1; }
	echo "$port"
}
milter() {   # NAME [KEY=VALUE...]: a gw-milter on the routes file; prints its port
	local name=$1 port
	shift
	port=$(lab_port)
	lab_milter_conf "$port" "$LAB/routes" log_level="${BENCH_LOG_LEVEL:-warning}" tls=none "$@"
	sed -i "s|$LAB/milter/control|$LAB/milter/$name.control|; s|$LAB/milter/gw-milter.pid|$LAB/milter/$name.pid|" \
		"$LAB/milter/gw.conf"
	mv "$LAB/milter/gw.conf" "$LAB/milter/$name.conf"
	lab_bg "$name" "${prio[@]}" "$build/milter/gw-milter" -c "$LAB/milter/$name.conf" -f
	lab_wait_port "$port" 15 >&2 || { cat "$LAB/$name.log" >&2; exit 1; }
	echo "$port"
}
drive() {   # PORT CASE N PAUSE TAG -> the driver's lines in $LAB/out
	RTT_TAG=$5 "${prio[@]}" python3 "$top/bench/milter_rtt.py" "inet:$1@127.0.0.1" "$2" "$3" "$4" >"$LAB/out" ||
		{ echo "bench_rtt: a recipient was not accepted ($2)" >&2; grep -c 'rcpt-reply [^c]' "$LAB/out" >&2 || true; }
}
summary() {   # WHAT LABEL TARGET_MS [RTT]: median and p99 of the WHAT lines of $LAB/out
	grep "^$1 " "$LAB/out" | cut -d' ' -f2 | sort -g | awk -v label="$2" -v target="$3" -v rtt="${4:-$rtt}" '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { printf "%-34s no samples\n", label; exit }
			med = v[int((NR + 1) / 2)]; p99 = v[int(NR * 0.99 + 0.999)]
			verdict = target == "" ? "" : (p99 <= target ? sprintf("target %g ms: met", target) : sprintf("target %g ms: MISSED", target))
			printf "%-34s median %7.2f ms (%4.2f RTT)  p99 %7.2f ms (%4.2f RTT)  n=%d  %s\n",
				label, med, med / rtt, p99, p99 / rtt, NR, verdict }'
}

echo "== gw-milter RCPT latency, internal MTA with a ${rtt} ms round trip, $n messages per case ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)${prio[*]:+, run under ${prio[*]}})"
fp=$(peer fake "$rtt")
printf 'example.com   smtp:[127.0.0.1]:%s\n' "$fp" >"$LAB/routes"
# pool_max_uses raised where a pooled session is measured: at the default (100) one message in 100
# opens a new session, which is case (b), not (a).
pa=$(milter pooled pool_max_uses=1000000)
pb=$(milter nopool pool_max_uses=1)
pd=$(milter refresh confirm_window=200ms pool_max_uses=1000000)
tag=$(date +%s%N)

drive "$pa" cold "$n" 0 "a$tag"
summary rcpt "(a) cold, pooled session" "$((rtt + 5))"
summary data "    DATA reply after (a)" ""
drive "$pa" warm "$n" 0 "a$tag"
summary rcpt "(c) warm, inside confirm_window" 1
drive "$pb" cold "$((n / 2))" 0 "b$tag"
summary rcpt "(b) cold, no idle session" "$((4 * rtt + 5))"
summary data "    DATA reply after (b)" ""
drive "$pd" seed "$((n / 2))" 0 "d$tag"
drive "$pd" warm "$((n / 2))" 300 "d$tag"
summary rcpt "(d) warm, after confirm_window" "$((rtt + 5))"
summary data "    DATA reply after (d)" ""

[ "$do_postfix" = 1 ] || exit 0
[ "$(id -u)" -eq 0 ] || { echo "bench_rtt: the Postfix part needs root (BENCH_POSTFIX=0 skips it)" >&2; exit 1; }
# Postfix reject_unverified_recipient: first contact and warm, with a fast and a slow internal MTA.
sp=$(peer slow "$slow")
printf 'example.com   smtp:[127.0.0.1]:%s\nslow.example.com   smtp:[127.0.0.1]:%s\n' "$fp" "$sp" >"$LAB/pf-routes"
gport=$(lab_port)
lab_gateway_start gw-verify "$gport" "" "$LAB/pf-routes" "example.com slow.example.com" >/dev/null
postconf -c "$LAB/gw-verify/etc" -e "smtpd_recipient_restrictions = reject_unverified_recipient"
lab_postfix_stop gw-verify >/dev/null; lab_postfix_start gw-verify >/dev/null
smtp_rcpt() {   # PORT RCPT: one SMTP session up to RCPT; prints "MS CODE"
	python3 - "$@" <<'EOF'
import smtplib, sys, time
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=60)
s.ehlo("client.ext.test")
s.mail("sender@ext.test")
t0 = time.perf_counter()
code, _ = s.rcpt(sys.argv[2])
print("%.3f %d" % ((time.perf_counter() - t0) * 1000, code))
try:
    s.quit()
except Exception:
    pass
EOF
}
export -f smtp_rcpt
for d in "$rtt:example.com" "$slow:slow.example.com"; do
	ms=${d%%:*} dom=${d#*:}
	for pass in first warm; do
		seq "$first" | xargs -P 8 -I{} bash -c "smtp_rcpt $gport pv$tag-{}@$dom" >"$LAB/out.raw"
		sed 's/^/rcpt /' "$LAB/out.raw" >"$LAB/out"
		c450=$(awk '$2 ~ /^4/' "$LAB/out.raw" | wc -l)
		summary rcpt "Postfix verify, ${ms} ms MTA, $pass" "" "$ms" | sed "s/\$/  4xx: $c450 of $first/"
	done
done
