"""flood.py - one bounce flood through a gateway Postfix beside a correspondent;
prints what happened as one JSON object. Shared by test/sh/milter_flood_postfix.sh
(the checks) and bench/bench_flood.sh (the figures at several rates).

  flood.py --port GW_PORT --ctl "GW-MILTER -C SOCKET" --gen BENCH_FLOOD_GEN --out FILE
           [--seconds 20] [--threads 8] [--rate 0] [--corr-rate R] [--before 40]
           [--warmup 0] [--milter-pid PID] [--no-mode] [--data] [--no-flood]

Steps:
  1. learning: three hosts of 127.0.1.0/24 send ordinary mail (DATA);
  2. before: the correspondent (127.0.1.20) sends --before bounces to alice, one
     at a time: after a 0.25 s sleep each, or with --corr-rate R at R a second
     (absolute deadlines); its RCPT latency is measured;
  3. flood: bench_flood_gen (C) runs --threads sessions at a time from random
     addresses of 127.2.0.0/16 for --seconds (--rate: sessions a second in all,
     0 = as fast as they can; --data: a flood bounce whose RCPT is accepted
     goes on to DATA) while the correspondent keeps sending as before. In
     both steps the correspondent is a process of its own, started the same
     way (as a thread it waited for Python's GIL behind other threads after
     each reply, and that wait was measured as RCPT latency), and nothing
     else of this script runs meanwhile: high-load mode is taken to begin
     with the flood's first deferral (a poll of "CTL mode" every 100 ms
     during the flood made the correspondent faster by itself);
  4. after: polls "CTL mode" (60 s at most) until normal mode.
With --no-mode (a gw-milter without the guard) there is no entry and no wait.
With --no-flood step 3 runs without the generator: the correspondent alone,
measured the same way (the control: how far the ratio moves with no flood).

The flood's figures come from a window: from --warmup seconds after the flood
started to its end. In it: the correspondent's RCPTs (median, p90), the flood
sessions (stamped with the time of their MAIL reply) and the rate achieved,
the CPU idle share of the whole machine (/proc/stat: idle + iowait over all),
and with --milter-pid that process's CPU time (utime + stime, /proc/PID/stat)
per flood session; before and in the window, gw-milter's mean time per RCPT
decided (its gw_milter_rcpt_seconds histogram, from "CTL metrics": every RCPT
it decided, the correspondent's and, without the guard, the flood's).
FLOOD_PERF=FILE records a perf profile of the flood's first seconds (10 at
most): system-wide, or with FLOOD_PERF_PID=PID that process's call graphs
(perf record --call-graph dwarf -p PID: release builds have no frame pointers).

Needs Linux /proc; Python 3 standard library only.
"""
import argparse
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import time

RCPT = "alice@example.com"
CORR = "127.0.1.20"

ap = argparse.ArgumentParser(description="one bounce flood beside a correspondent")
ap.add_argument("--port", type=int, required=True, help="the gateway Postfix's port on 127.0.0.1")
ap.add_argument("--ctl", required=True, help='"gw-milter -C SOCKET", run with "mode"')
ap.add_argument("--gen", required=True, help="bench_flood_gen")
ap.add_argument("--out", required=True, help="bench_flood_gen's result file")
ap.add_argument("--seconds", type=float, default=20)
ap.add_argument("--threads", type=int, default=8)
ap.add_argument("--rate", type=float, default=0, help="flood sessions a second in all, 0 = unpaced")
ap.add_argument("--corr-rate", type=float, default=None, help="correspondent bounces a second")
ap.add_argument("--before", type=int, default=40, help="correspondent bounces before the flood")
ap.add_argument("--data", action="store_true", help="the flood sends DATA (a bounce of about 1 KB) when RCPT is accepted")
ap.add_argument("--warmup", type=float, default=0, help="seconds of the flood left out of its figures")
ap.add_argument("--milter-pid", type=int, default=None)
ap.add_argument("--no-mode", action="store_true", help="gw-milter runs without the guard")
ap.add_argument("--no-flood", action="store_true", help="no generator: the correspondent alone (the control)")
args = ap.parse_args()
port, ctl = args.port, args.ctl


def reply(f):
    while True:
        line = f.readline()
        if not line:
            raise EOFError("connection closed")
        if line[3:4] != b"-":
            return line.decode("latin-1").rstrip("\r\n")


def session(src, mail, rcpt, data=False):
    """One SMTP session from src; returns (MAIL reply, RCPT reply or None, RCPT start or None, RCPT seconds or None)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60, source_address=(src, 0))
    f = s.makefile("rb")

    def cmd(c):
        s.sendall(c.encode() + b"\r\n")
        return reply(f)
    try:
        reply(f)
        cmd("EHLO " + src.replace(".", "-") + ".client.test")
        m = cmd("MAIL FROM:<%s>" % mail)
        if not m.startswith("250"):
            return m, None, None, None
        t0 = time.monotonic()
        r = cmd("RCPT TO:<%s>" % rcpt)
        dt = time.monotonic() - t0
        if data and r.startswith("250"):
            if cmd("DATA").startswith("354"):
                s.sendall(b"Subject: hello\r\n\r\nhello\r\n.\r\n")
                reply(f)
        cmd("QUIT")
        return m, r, t0, dt
    finally:
        s.close()


def mode():
    out = subprocess.run(ctl.split() + ["mode"], capture_output=True, text=True).stdout
    return "high" if "mode=high" in out else "normal" if "mode=normal" in out else "?"


def rcpt_time():
    """gw-milter's RCPT decision times so far: (sum of seconds, count), from "CTL metrics"."""
    out = subprocess.run(ctl.split() + ["metrics"], capture_output=True, text=True).stdout
    v = {}
    for line in out.splitlines():
        for k in ("gw_milter_rcpt_seconds_sum", "gw_milter_rcpt_seconds_count"):
            if line.startswith(k + " "):
                v[k] = float(line.split()[1])
    return v.get("gw_milter_rcpt_seconds_sum"), v.get("gw_milter_rcpt_seconds_count")


def mean_us(a, b):
    """Mean microseconds per RCPT between two rcpt_time() readings, or None."""
    if None in a + b or b[1] <= a[1]:
        return None
    return round(1e6 * (b[0] - a[0]) / (b[1] - a[1]), 1)


def pacer(rate):
    """wait(i): with a rate, sleep until the i-th deadline (absolute, no drift); else nothing."""
    t0 = time.monotonic()

    def wait(i):
        if rate:
            d = t0 + i / rate - time.monotonic()
            if d > 0:
                time.sleep(d)
    return wait


def ms(x):
    return round(x * 1000, 2)


def quantile(xs, q):
    """The q-quantile (nearest rank) of xs, or None."""
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(q * len(s) + 0.999999) - 1))]


def cpu_times():
    """(idle + iowait, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[3] + v[4], sum(v[:8])  # user nice system idle iowait irq softirq steal


def proc_ticks(pid):
    """utime + stime of pid in clock ticks, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])
    except (OSError, IndexError, ValueError):
        return None


def correspondent(conn, stop_ev, rate, count):
    """Bounces to alice until stop_ev or count sent (0: no limit); sends back ([(RCPT start, seconds)], [refusals])."""
    ok, bad = [], []
    wait = pacer(rate)
    i = 0
    while not stop_ev.is_set() and (count == 0 or i < count):
        if rate:
            wait(i)
        else:
            time.sleep(0.25)
        i += 1
        if stop_ev.is_set():
            break
        m, r, t0, dt = session(CORR, "", RCPT)
        if r and r.startswith("250"):
            ok.append((t0, dt))
        else:
            bad.append(m if r is None else r)
    conn.send((ok, bad))


ctx = multiprocessing.get_context("fork")


def start_correspondent(count):
    """The correspondent in a process of its own; returns (process, its stop event, our end of its pipe)."""
    ev = ctx.Event()
    mine, theirs = ctx.Pipe()
    p = ctx.Process(target=correspondent, args=(theirs, ev, args.corr_rate, count))
    p.start()
    return p, ev, mine


res = {}
# 1. learning
for h in (10, 11, 12):
    for i in range(2):
        m, r, _, _ = session("127.0.1.%d" % h, "friend%d@partner.test" % h, RCPT, data=True)
        assert r and r.startswith("250"), (m, r)
# 2. before the flood: paced under the floor (20 bounces per 2 s window), so the flood starts in normal mode
rt_before0 = rcpt_time()
bproc, _, bpipe = start_correspondent(args.before)
ok, bad = bpipe.recv()
bproc.join()
before = [dt for _, dt in ok]
bad_before = len(bad)
res["before_ok"], res["before_bad"] = len(before), bad_before
res["milter_rcpt_us_before"] = mean_us(rt_before0, rcpt_time())
res["mode_at_start"] = "-" if args.no_mode else mode()

# 3. the flood and the correspondent
flood = {"sent": 0, "deferred": 0, "through": 0, "errors": 0, "sent_after": 0, "deferred_after": 0, "other": []}
window = {"sent": 0, "deferred": 0, "errors": 0}
t_start = time.monotonic()
gen = None if args.no_flood else subprocess.Popen([args.gen, "-p", str(port), "-c", str(args.threads), "-s", str(args.seconds),
                        "-R", str(args.rate), "-n", "127.2", "-r", RCPT, "-o", args.out] + (["-d"] if args.data else []))
# FLOOD_PERF=FILE: a system-wide perf profile of the first seconds of the flood (who takes the CPU).
perf = None
if os.environ.get("FLOOD_PERF"):
    who = ["--call-graph", "dwarf", "-p", os.environ["FLOOD_PERF_PID"]] if os.environ.get("FLOOD_PERF_PID") else ["-a"]
    perf = subprocess.Popen(["perf", "record"] + who + ["-F", "499", "-q", "-o", os.environ["FLOOD_PERF"],
                             "--", "sleep", str(min(10, args.seconds))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
cproc, cstop, mine = start_correspondent(0)
# The figures' window: from the end of the warm-up to the end of the flood.
warm = min(args.warmup, args.seconds)
time.sleep(warm)
t_win = time.monotonic()
cpu0, m0, rt0 = cpu_times(), proc_ticks(args.milter_pid) if args.milter_pid else None, rcpt_time()
time.sleep(max(0.0, t_start + args.seconds - time.monotonic()))
cstop.set()
gen_rc = 0 if gen is None else gen.wait()
t_win_end = time.monotonic()
cpu1, m1, rt1 = cpu_times(), proc_ticks(args.milter_pid) if args.milter_pid else None, rcpt_time()
# The generator's sessions, each stamped with the monotonic time of its MAIL reply. High-load mode
# began with the first deferral (read from the sessions, not by polling "CTL mode" meanwhile: a
# poll every 100 ms changed the correspondent's latency by itself).
sessions = [] if gen is None else [(line.rstrip("\n").split(" ", 2) + [""])[:3] for line in open(args.out)]
entered = None if args.no_mode else min((float(t) for t, kind, _ in sessions if kind == "defer"), default=None)
for t, kind, text in sessions:
    inwin = t_win <= float(t) <= t_win_end
    if kind == "error":
        flood["errors"] += 1
        window["errors"] += inwin
        continue
    after = entered is not None and float(t) >= entered
    flood["sent"] += 1
    flood["sent_after"] += after
    window["sent"] += inwin
    if kind == "defer":
        flood["deferred"] += 1
        flood["deferred_after"] += after
        window["deferred"] += inwin
    else:
        flood["through"] += 1
        if len(flood["other"]) < 5 and after:
            flood["other"].append(text)
during_all, bad_during = mine.recv()
cproc.join()
if perf is not None:
    perf.wait()
t_end = time.monotonic()
during = [dt for t0, dt in during_all if warm <= 0 or t0 >= t_win]
res["gen_rc"] = gen_rc
res["entry_s"] = None if entered is None else round(entered - t_start, 2)
res["flood"] = flood
res["window"] = window
res["window_s"] = round(t_win_end - t_win, 3)
res["rate_achieved"] = round(window["sent"] / max(1e-9, t_win_end - t_win), 1)
res["during_ok"], res["during_bad"] = len(during), bad_during[:5]
res["median_before_ms"] = ms(statistics.median(before)) if before else None
res["median_during_ms"] = ms(statistics.median(during)) if during else None
res["p90_before_ms"] = ms(quantile(before, 0.9)) if before else None
res["p90_during_ms"] = ms(quantile(during, 0.9)) if during else None
res["milter_rcpt_us_during"] = mean_us(rt0, rt1)
res["cpu_idle_pct"] = round(100.0 * (cpu1[0] - cpu0[0]) / max(1, cpu1[1] - cpu0[1]), 1)
if m0 is not None and m1 is not None:
    hz = os.sysconf("SC_CLK_TCK")
    res["milter_cpu_s"] = round((m1 - m0) / hz, 3)
    res["milter_cpu_us_per_session"] = round(1e6 * (m1 - m0) / hz / window["sent"], 1) if window["sent"] else None
# 4. after the flood
back = None
while not args.no_mode and time.monotonic() - t_end < 60:
    if mode() == "normal":
        back = round(time.monotonic() - t_end, 2)
        break
    time.sleep(0.2)
res["back_s"] = back
print(json.dumps(res))
