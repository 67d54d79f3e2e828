#!/usr/bin/env bash
# lmtpd_learn.sh BUILD_DIR - gw-lmtpd tells gw-milter the domains it delivers to:
#   - with milter_control naming gw-milter's control socket, a domain
#     gw-lmtpd delivered to (in mixed case; three rounds apart, one credit per
#     domain per round, above flood_threshold 2 as the counts decay) becomes a
#     correspondent of gw-milter's bounce-flood guard ("corr DOMAIN" says yes,
#     learnt credits move in its metrics); a domain it was refused for (550)
#     does not;
#   - the control socket's learn-domains refuses malformed words;
#   - with gw-milter gone, gw-lmtpd still delivers at once, logs the lost
#     batch (learn status=error) and stops cleanly.
# Stops every process by PID.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
lmtpd=$bindir/lmtp/gw-lmtpd
milter=$bindir/milter/gw-milter
[ -x "$lmtpd" ] && [ -x "$milter" ] || { echo "FAIL: daemons not built" >&2; exit 1; }
lab_init
trap lab_stop_all EXIT
fail() {
	echo "FAIL: $*" >&2
	for f in "$LAB/lmtpd.log" "$LAB/milter/log"; do [ -f "$f" ] && tail -n 15 "$f" >&2; done
	exit 1
}
wait_for() {   # SECONDS COMMAND...: poll until COMMAND succeeds
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# --- a destination: 550 for anyone@refused.test, 250 otherwise ------------------------------------
dp=$(lab_port)
lab_bg dest /usr/bin/python3 -c '
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
def serve(c):
    f = c.makefile("rb")
    c.sendall(b"220 dest ESMTP\r\n")
    data = False
    for line in f:
        if data:
            if line in (b".\r\n", b".\n"):
                data = False; c.sendall(b"250 2.0.0 stored\r\n")
            continue
        u = line.upper()
        if u.startswith(b"RCPT") and b"@REFUSED.TEST" in u:
            c.sendall(b"550 5.1.1 no such user\r\n")
        elif u.startswith(b"DATA"):
            data = True; c.sendall(b"354 go\r\n")
        elif u.startswith(b"QUIT"):
            c.sendall(b"221 bye\r\n"); break
        else:
            c.sendall(b"250 ok\r\n")
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
' "$dp"
lab_wait_port "$dp" 10 || fail "destination does not listen"

# --- gw-milter with the guard on -----------------------------------------------------------------
printf 'dest.test smtp:[127.0.0.1]:%s\n' "$dp" >"$LAB/mroutes"
lab_milter_conf "unix:$LAB/milter.sock" "$LAB/mroutes" flood_guard=yes "flood_store=$LAB/flood" \
	flood_threshold=2 tls=none
lab_milter_start "$bindir" || fail "gw-milter did not start"
MCTL=$LAB/milter/control
mctl() { "$milter" -C "$MCTL" "$@"; }
out=$(mctl learn-domains 'bad_name' '-x.test' 'ok.test' || true)
[ "$out" = "ok learnt=1 refused=2 guard=on" ] || fail "learn-domains with malformed words: $out"
out=$(mctl corr dest.test)
[ "$out" = "ok domain=dest.test correspondent=no" ] || fail "corr before: $out"
learnt0=$(mctl metrics | awk '$1 == "gw_milter_flood_learnt_total" { print $2 }')

# --- gw-lmtpd telling it -------------------------------------------------------------------------
lp=$(lab_port)
c=$LAB/gw-lmtpd.conf
cp "$LAB_SRC/etc/gw-lmtpd.conf" "$c"
printf '* smtp:[127.0.0.1]:%s\n' "$dp" >"$LAB/routes"
lab_conf_set "$c" listen "[127.0.0.1]:$lp"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file "$LAB/gw-lmtpd.pid"
lab_conf_set "$c" routes "$LAB/routes"
lab_conf_set "$c" spool_dir "$LAB"
lab_conf_set "$c" log stderr
lab_conf_set "$c" log_level debug
lab_conf_set "$c" tls none
lab_conf_set "$c" milter_control "$MCTL"
lab_bg lmtpd "$lmtpd" -f -c "$c"
pid=$(awk '$1=="lmtpd"{print $2}' "$LAB/bg")
lab_wait_port "$lp" 10 || fail "gw-lmtpd does not listen"
send() {   # TO[,TO...]: one LMTP transaction
	timeout 30 swaks --protocol LMTP --server 127.0.0.1 --port "$lp" --helo internal.test \
		--from s@internal.test --to "$1" --timeout 20 >"$LAB/swaks" 2>&1 || true
}
send a@Dest.TEST,x@refused.test
grep -q "^<- *250 2.0.0 delivered" "$LAB/swaks" || fail "first delivery: $(grep '^<' "$LAB/swaks" | tail -2)"
# one credit per domain per round (a second): the second delivery after the first round was sent
wait_for 20 grep -q "learn status=ok domains=1 learnt=1" "$LAB/lmtpd.log" || fail "no first round logged"
[ "$(mctl corr dest.test)" = "ok domain=dest.test correspondent=no" ] || fail "one credit made a correspondent"
send b@dest.test
grep -q "^<- *250 2.0.0 delivered" "$LAB/swaks" || fail "second delivery: $(grep '^<' "$LAB/swaks" | tail -2)"
# a third round: the counts decay (flood_half_life), so two credits are a hair below 2
rounds() { [ "$(grep -c "learn status=ok domains=1 learnt=1" "$LAB/lmtpd.log")" -ge "$1" ]; }
wait_for 20 rounds 2 || fail "no second round logged"
send c@dest.test
grep -q "^<- *250 2.0.0 delivered" "$LAB/swaks" || fail "third delivery: $(grep '^<' "$LAB/swaks" | tail -2)"
corr_yes() { [ "$(mctl corr dest.test)" = "ok domain=dest.test correspondent=yes" ]; }
wait_for 20 corr_yes || fail "dest.test never became a correspondent: $(mctl corr dest.test)"
out=$(mctl corr refused.test)
[ "$out" = "ok domain=refused.test correspondent=no" ] || fail "a refused domain was learnt: $out"
learnt1=$(mctl metrics | awk '$1 == "gw_milter_flood_learnt_total" { print $2 }')
[ "$((learnt1 - learnt0))" -eq 3 ] || fail "learnt moved by $((learnt1 - learnt0)), want 3"
[ "$(grep -c "learn status=ok domains=1 learnt=1" "$LAB/lmtpd.log")" -eq 3 ] || fail "not three learn rounds logged"
echo "ok: gw-lmtpd's delivered-to domain is a correspondent of gw-milter (learnt +3, refused.test not)"

# --- gw-milter gone: delivery unaffected, the batch logged and dropped ---------------------------
lab_milter_stop
t0=$(date +%s%N)
send d@dest.test
t1=$(date +%s%N)
grep -q "^<- *250 2.0.0 delivered" "$LAB/swaks" || fail "delivery with gw-milter gone: $(grep '^<' "$LAB/swaks" | tail -2)"
wait_for 20 grep -q "learn status=error domains=1 error=" "$LAB/lmtpd.log" || fail "the lost batch was not logged"
echo "ok: with gw-milter gone, delivered in $(((t1 - t0) / 1000000)) ms, batch logged and dropped"
kill -TERM "$pid"
lab_wait_pid "$pid" 15 || fail "gw-lmtpd did not stop"
wait "$pid" || fail "gw-lmtpd exit $?"
echo "PASS"
