#!/usr/bin/env bash
# milter_load.sh - gw-milter under load through a real Postfix.
#
# The lab of milter_postfix.sh (internal Postfix knowing alice@ and carol@
# example.com, gw-milter from etc/gw.conf, gateway Postfix from
# etc/postfix/main.cf.fragment with default_process_limit raised to 250), then
# LOAD_SESSIONS (default 200) concurrent SMTP clients for LOAD_SECONDS (default
# 60), each looping over sessions of one message to a known, an unknown and a
# random never-seen user. Checks:
#   - every RCPT verdict right: known 250, unknown 550 5.1.1 (no 4xx: nothing is
#     down; unknown_limit is lifted for the one client IP); never-seen 550 5.1.1,
#     or 451 4.4.1 when the per-route probe cap (max_probes) is reached and
#     stays taken while a probe waits for a slot: allowed by design, counted as
#     new_451, and at most 1% of never-seen recipients
#   - gw-milter's open file descriptors and RSS, idle after a warm-up and idle
#     after the run, do not grow (fd +16, RSS +50% + 64 MB allowed)
#   - gw-milter still answers, stops cleanly, no sanitizer report
# Needs root, postfix, /usr/bin/python3. Usage: milter_load.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: milter_load.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
. "$here/lib/lab.sh"
sessions=${LOAD_SESSIONS:-200}
seconds=${LOAD_SECONDS:-60}

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "must run as root (Postfix's master runs as root)"
for t in postfix postconf ss /usr/bin/python3; do
	command -v "$t" >/dev/null || fail "$t not installed (scripts/install-deps)"
done
if [ ! -x "$build/milter/gw-milter" ]; then
	cmake --build "$build" --target gw-milter >/dev/null || fail "cannot build gw-milter in $build"
fi

failures=0
cleanup() {
	local rc=$?
	if [ -n "$LAB" ] && { [ "$rc" -ne 0 ] || [ "$failures" -ne 0 ]; }; then
		{ echo "---- gw-milter log (last 20)"; tail -20 "$LAB/milter/log" 2>/dev/null || true; } >&2
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
lab_internal_start int "$int_port" alice@example.com carol@example.com
postconf -c "$LAB/int/etc" -e "default_process_limit = 300" "smtpd_client_connection_count_limit = 0"
lab_postfix_stop int >/dev/null; lab_postfix_start int
# one client IP sends every unknown recipient here: lift the amplification cap
lab_milter_conf "$milter_port" "$LAB/routes" unknown_limit=0
# ASan builds: a small quarantine, so that RSS measures gw-milter, not ASan's cache of freed blocks
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16" lab_milter_start "$build"
lab_gateway_start gw "$gw_port" "$milter_port" "$LAB/routes" example.com
postconf -c "$LAB/gw/etc" -e "default_process_limit = 250" "smtpd_client_connection_count_limit = 0" \
	"smtpd_client_connection_rate_limit = 0" "smtpd_client_recipient_rate_limit = 0"
lab_postfix_stop gw >/dev/null; lab_postfix_start gw
pid=$LAB_MILTER_PID

sample() {   # -> "FDS RSS_KB" of gw-milter
	echo "$(find "/proc/$pid/fd" -mindepth 1 2>/dev/null | wc -l) $(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")"
}

cat >"$LAB/load.py" <<'PY'
import random, socket, sys, threading, time
port, sessions, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
end = time.time() + seconds
lock = threading.Lock()
stats = {"sessions": 0, "known": 0, "unknown": 0, "new": 0, "new_451": 0, "wrong": 0, "errors": 0}
bad = []
def reply(f):
    while True:
        line = f.readline()
        if not line:
            raise EOFError("connection closed")
        if line[3:4] != b"-":
            return line.decode("latin-1").rstrip("\r\n")
def note(key, got, want):
    with lock:
        stats[key] += 1
        if key == "new" and got.startswith("451 4.4.1"):
            stats["new_451"] += 1
        elif not got.startswith(want):
            stats["wrong"] += 1
            if len(bad) < 20:
                bad.append("%s: got %r, want %s" % (key, got, want))
def client(n):
    rnd = random.Random(n)
    while time.time() < end:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            f = s.makefile("rb")
            def cmd(c):
                s.sendall(c.encode() + b"\r\n")
                return reply(f)
            reply(f); cmd("EHLO load%d.ext.test" % n); cmd("MAIL FROM:<load@ext.test>")
            note("known", cmd("RCPT TO:<%s@example.com>" % rnd.choice(["alice", "carol"])), "250")
            note("unknown", cmd("RCPT TO:<bob@example.com>"), "550 5.1.1")
            note("new", cmd("RCPT TO:<x%d.%d@example.com>" % (n, rnd.getrandbits(40))), "550 5.1.1")
            r = cmd("DATA")
            if r.startswith("354"):
                s.sendall(b"Subject: load\r\n\r\n" + b"x" * rnd.choice([500, 5000, 20000]) + b"\r\n.\r\n")
                note("known", reply(f), "250")
            cmd("QUIT"); s.close()
            with lock:
                stats["sessions"] += 1
        except Exception as e:
            with lock:
                stats["errors"] += 1
                if len(bad) < 20:
                    bad.append("client %d: %s" % (n, e))
            time.sleep(0.2)
threads = [threading.Thread(target=client, args=(i,)) for i in range(sessions)]
for t in threads: t.start()
for t in threads: t.join()
print(" ".join("%s=%d" % kv for kv in stats.items()))
for b in bad: print("BAD", b)
sys.exit(1 if bad else 0)
PY

settle() {   # wait (bounded) until gw-milter has no milter connection from Postfix left
	for _ in $(seq 100); do
		[ -z "$(ss -Htn state established "( sport = :$milter_port )" 2>/dev/null)" ] && break
		sleep 0.1
	done
	sleep 1
}
warmup=$((seconds / 6 > 5 ? seconds / 6 : 5))
echo "lab: warm-up $warmup s, then $sessions sessions for $seconds s against gateway :$gw_port (gw-milter :$milter_port)"
/usr/bin/python3 "$LAB/load.py" "$gw_port" "$sessions" "$warmup" >"$LAB/warmup.out" 2>&1 || true
settle; early=$(sample)
load_rc=0
timeout $((seconds + 120)) /usr/bin/python3 "$LAB/load.py" "$gw_port" "$sessions" "$seconds" >"$LAB/load.out" 2>&1 || load_rc=$?
settle; late=$(sample)
cat "$LAB/load.out"
summary=$(head -1 "$LAB/load.out")
if [ "$load_rc" -eq 0 ]; then pass "every verdict right ($summary)"
else mismatch "load client saw wrong verdicts or errors ($summary; see BAD lines)"; fi
case $summary in *"sessions=0 "*|"") mismatch "no session completed" ;; esac
n451=$(sed -n 's/.*new_451=\([0-9]*\).*/\1/p' <<<"$summary"); nnew=$(sed -n 's/.* new=\([0-9]*\).*/\1/p' <<<"$summary")
echo "note: never-seen recipients answered 451 at the probe cap (max_probes): ${n451:-?} of ${nnew:-?}"
if [ -n "$n451" ] && [ -n "$nnew" ] && [ $((n451 * 100)) -le "$nnew" ]; then
	pass "at most 1% of never-seen recipients answered 451 ($n451 of $nnew)"
else
	mismatch "too many never-seen recipients answered 451: ${n451:-?} of ${nnew:-?} (over 1%)"
fi

read -r fd1 rss1 <<<"$early"; read -r fd2 rss2 <<<"$late"
echo "gw-milter, idle after the warm-up and after the run: fds $fd1 -> $fd2, RSS $rss1 kB -> $rss2 kB"
if [ "$fd2" -le $((fd1 + 16)) ]; then pass "no file descriptor growth"; else mismatch "fds grew $fd1 -> $fd2"; fi
if [ "$rss2" -le $((rss1 * 3 / 2 + 65536)) ]; then pass "no memory growth"; else mismatch "RSS grew $rss1 -> $rss2 kB"; fi

if out=$(timeout 10 "$build/milter/gw-milter" -C "$LAB/milter/control" stats 2>&1); then
	pass "stats after the run: $(echo "$out" | tr ' ' '\n' | grep -E '^(checks|tempfails|cache_hits|new_sessions|pooled)=' | paste -sd' ' -)"
else
	mismatch "control socket does not answer after the run: $out"
fi
lab_milter_stop
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$LAB/milter/log"; then
	mismatch "sanitizer report in gw-milter's log: $(grep -m1 -E 'ERROR: |runtime error:' "$LAB/milter/log")"
fi
if [ "$failures" -ne 0 ]; then echo "milter_load: $failures mismatch(es)" >&2; exit 1; fi
echo "milter_load: all checks passed"
