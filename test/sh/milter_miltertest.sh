#!/bin/bash
# milter_miltertest.sh - drive the real gw-milter over the milter protocol
# with Debian's miltertest (Lua), the fake SMTP peer standing in for the
# internal MTA. Usage: milter_miltertest.sh BUILD_DIR
#
# Each internal MTA is a gw-fakepeer with its own script and record
# directory, so the records prove what the milter sent - and what it did not
# send (no RCPT for bad input, skipped recipients, the unknown limit).
# miltertest only tells the reply kind (continue / reply code), so the reply
# codes and texts are read from the milter's log (log_level = debug writes
# each reply as it is set).
#
# Covered: known user accepted (250, 251); unknown rejected 550 5.1.1 (550,
# 551, 553); internal 4xx passed on as 4xx with its class (450, 451, 452),
# 552 -> 452 4.2.2; refused connection -> 451 4.4.1 and the route marked
# down; 421 and 554 greetings -> 451 4.4.1; 501 5.1.3 for CR and an
# over-long local part (no RCPT sent); one session for several RCPTs;
# {rcpt_mailer} error and local mailers skipped; authenticated client,
# skipped network and skip_recipients skipped; no route -> accepted without
# a probe; unknown limit -> 451 4.7.1 without a probe; -n on bad
# configurations naming file:line; control socket stats and purge; SIGHUP
# reload with a changed route while a connection is open (it keeps the old
# route), a failed reload keeping the old configuration, a burst of SIGHUPs;
# -u and daemon mode; SIGTERM stopping cleanly. Everything on loopback or
# unix sockets in a temporary directory; every process stopped by PID.
# The shared machinery (peers, configuration, daemon, miltertest, log
# reading, assertions) is in lib/milter_harness.sh.
set -u

# shellcheck source=lib/milter_harness.sh
. "$(dirname "$0")/lib/milter_harness.sh"
mh_init milter-test "${1:-}"

# --- internal MTAs ---------------------------------------------------------------

# a.test: one session for several recipients, then RSET.
cat >"$T/a.script" <<'EOF'
send 220 a.test ESMTP fake
expect EHLO
send 250-a.test
send 250 PIPELINING
expect MAIL FROM:<>
send 250 2.1.0 ok
expect RCPT TO:<known@a.test>
send 250 2.1.5 ok
expect RCPT TO:<unknown@a.test>
send 550 5.1.1 <unknown@a.test>: no such user %s here
expect RSET
send 250 2.0.0 ok
EOF

# codes.test: one reply per code.
CODES="250 251 450 451 452 550 551 552 553"
{
	echo "send 220 codes.test ESMTP"
	echo "expect EHLO"
	echo "send 250 codes.test"
	echo "expect MAIL FROM:<>"
	echo "send 250 ok"
	for c in $CODES; do
		echo "expect RCPT TO:<c$c@codes.test>"
		case $c in
		2*) echo "send $c 2.1.5 ok" ;;
		45*) echo "send $c 4.2.$((c - 450)) try later" ;;
		552) echo "send 552 5.2.2 too many" ;;
		5*) echo "send $c 5.1.1 no" ;;
		esac
	done
	echo "expect RSET"
	echo "send 250 ok"
} >"$T/codes.script"

printf 'send 421 4.3.2 g421.test busy\nclose\n' >"$T/g421.script"
printf 'send 554 5.3.2 g554.test no service\nclose\n' >"$T/g554.script"

# lim.test: three unknowns, then nothing more may come.
cat >"$T/lim.script" <<'EOF'
send 220 lim.test ESMTP
expect EHLO
send 250 lim.test
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<u1@lim.test>
send 550 5.1.1 no
expect RCPT TO:<u2@lim.test>
send 550 5.1.1 no
expect RCPT TO:<u3@lim.test>
send 550 5.1.1 no
expect RSET
send 250 ok
EOF

# reload.test, first route: r1, then r2 in a second message over the pooled session.
cat >"$T/r1.script" <<'EOF'
send 220 r1 ESMTP
expect EHLO
send 250 r1
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<r1@reload.test>
send 250 ok
expect RSET
send 250 ok
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<r2@reload.test>
send 250 ok
expect RSET
send 250 ok
EOF
# reload.test, second route: r3.
cat >"$T/r2.script" <<'EOF'
send 220 r2 ESMTP
expect EHLO
send 250 r2
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<r3@reload.test>
send 250 ok
expect RSET
send 250 ok
EOF

for p in a codes g421 g554 lim r1 r2; do
	start_peer $p
done
DOWN_PORT=$(free_port)

write_routes() { # write_routes RELOAD_PEER
	cat >"$T/routes" <<EOF
a.test          smtp:[127.0.0.1]:$(peer_port a)
codes.test      smtp:[127.0.0.1]:$(peer_port codes)
down.test       smtp:[127.0.0.1]:$DOWN_PORT
g421.test       smtp:[127.0.0.1]:$(peer_port g421)
g554.test       smtp:[127.0.0.1]:$(peer_port g554)
lim.test        smtp:[127.0.0.1]:$(peer_port lim)
reload.test     smtp:[127.0.0.1]:$(peer_port "$1")
retired.test    error:5.1.1 gone
EOF
}
write_routes r1

# --- configuration: etc/gw.conf with the test's values -------------------------

mh_conf milter socket_mode=0660 connect_timeout=2s reply_timeout=5s deadline=8s unknown_limit=3 \
	"skip_networks=198.51.100.0/24, 2001:db8:1::/48" "skip_recipients=postmaster@, abuse@a.test"

# --- -n -----------------------------------------------------------------------------

out=$("$MILTER" -n -c "$CONF" 2>&1)
check "-n accepts the test configuration" [ $? -eq 0 ]
cp "$CONF" "$T/bad1.conf"
set_key "$T/bad1.conf" deadline forever
line=$(grep -n '^deadline =' "$T/bad1.conf" | cut -d: -f1)
out=$("$MILTER" -n -c "$T/bad1.conf" 2>&1)
rc=$?
[ $rc -eq 78 ] && [[ $out == *"$T/bad1.conf:$line:"* ]]
verdict $? "-n on a bad value exits 78 naming file:line ($out)"
cp "$CONF" "$T/bad2.conf"
set_key "$T/bad2.conf" skip_networks "10.0.0.0/33"
line=$(grep -n '^skip_networks =' "$T/bad2.conf" | cut -d: -f1)
out=$("$MILTER" -n -c "$T/bad2.conf" 2>&1)
rc=$?
[ $rc -eq 78 ] && [[ $out == *"$T/bad2.conf:$line:"* ]]
verdict $? "-n on a bad network exits 78 naming file:line ($out)"
cp "$CONF" "$T/bad3.conf"
set_key "$T/bad3.conf" socket "inet:127.0.0.1:10025"
out=$("$MILTER" -n -c "$T/bad3.conf" 2>&1)
[ $? -eq 78 ] && [[ $out == *"bad3.conf:"*"socket"* ]]
verdict $? "-n refuses Postfix's socket syntax ($out)"
printf 'ok.test smtp:[127.0.0.1]:25\nbroken.test smtp:[\n' >"$T/bad.routes"
cp "$CONF" "$T/bad4.conf"
set_key "$T/bad4.conf" routes "$T/bad.routes"
out=$("$MILTER" -n -c "$T/bad4.conf" 2>&1)
[ $? -eq 78 ] && [[ $out == *"$T/bad.routes:2:"* ]]
verdict $? "-n on a bad route file exits 78 naming routes:line ($out)"
cp "$CONF" "$T/bad5.conf"
set_key "$T/bad5.conf" self_addresses "127.0.0.1:$(peer_port a)"
out=$("$MILTER" -n -c "$T/bad5.conf" 2>&1)
[ $? -eq 78 ] && [[ $out == *"$T/routes:1:"*"loop"* ]]
verdict $? "-n refuses a route to self_addresses (loop) ($out)"

# --- the daemon -------------------------------------------------------------------

milter_start milter
check "socket_mode 0660 applied" [ "$(stat -c %a "$T/milter.sock")" = 660 ]
check "control socket is 0600" [ "$(stat -c %a "$CTL")" = 600 ]
check "pid file names the daemon" [ "$(cat "$T/milter.pid" 2>/dev/null)" = "$MPID" ]

# --- decisions -----------------------------------------------------------------------

LONG=$(printf 'x%.0s' $(seq 1 65))
cat >"$T/main.lua" <<EOF
local c = open("192.0.2.7")
mail(c, "QID1")
rcpt(c, "known@a.test")
rcpt(c, "unknown@a.test")
rcpt(c, "bad\\rline@a.test")
rcpt(c, "$LONG@a.test")
rcpt(c, "err@a.test", "error")
rcpt(c, "loc@a.test", "local")
rcpt(c, "postmaster@a.test")
rcpt(c, "abuse@a.test")
rcpt(c, "someone@noroute.test")
rcpt(c, "someone@retired.test")
rcpt(c, "first@down.test")
rcpt(c, "second@down.test")
rcpt(c, "x@g421.test")
rcpt(c, "x@g554.test")
finish(c)
mt.disconnect(c)

-- Another client: the unknown-recipient limit counts per client address.
local k = open("192.0.2.9")
mail(k, "QID2")
for _, code in ipairs({250, 251, 450, 451, 452, 550, 551, 552, 553}) do rcpt(k, "c" .. code .. "@codes.test") end
finish(k)
mt.disconnect(k)

local a = open("192.0.2.8")
mail(a, "QID3", "alice")
rcpt(a, "authed@a.test")
finish(a)
mt.disconnect(a)

local s = open("198.51.100.20")
mail(s, "QID4")
rcpt(s, "fromskipnet@a.test")
finish(s)
mt.disconnect(s)

local l = open("192.0.2.99")
mail(l, "QID5")
for i = 1, 5 do rcpt(l, "u" .. i .. "@lim.test") end
finish(l)
mt.disconnect(l)
EOF
run_lua main

expect known@a.test continue accept new -
expect unknown@a.test replycode reject pooled 550 \
	"550 5.1.1 <unknown@a.test>: Recipient address rejected: User unknown"
# Bad input is logged as the client wrote it, sanitised.
l=$(logline 'bad\x0dline@a.test')
[ "$(got 'bad?line@a.test')" = replycode ] && [ "$(field "$l" reply)" = 501 ] && [ "$(field "$l" source)" = bad-input ] &&
	[ "$(reply_text 'bad\x0dline@a.test')" = "501 5.1.3 Bad recipient address syntax: CR in address" ]
verdict $? "CR in a recipient -> 501 5.1.3 ($l)"
l=$(logline "$LONG@a.test")
[ "$(got "$LONG@a.test")" = replycode ] && [ "$(field "$l" reply)" = 501 ] && [ "$(field "$l" source)" = bad-input ]
verdict $? "over-long local part -> 501 5.1.3 ($l)"
expect err@a.test continue skip skip-error -
expect loc@a.test continue skip skip-local -
expect postmaster@a.test continue skip skip-recipient -
expect abuse@a.test continue skip skip-recipient -
expect someone@noroute.test continue skip noroute -
expect someone@retired.test continue skip skip-transport -
expect first@down.test replycode tempfail new 451 \
	"451 4.4.1 <first@down.test>: Recipient address verification failed: cannot verify now, try again later"
expect second@down.test replycode tempfail down 451
expect x@g421.test replycode tempfail new 451
expect x@g554.test replycode tempfail new 451
check "421 greeting text not passed on" [ "$(reply_text x@g421.test)" = \
	"451 4.4.1 <x@g421.test>: Recipient address verification failed: cannot verify now, try again later" ]
expect c250@codes.test continue accept new -
expect c251@codes.test continue accept pooled -
expect c450@codes.test replycode tempfail pooled 450 \
	"450 4.2.0 <c450@codes.test>: Recipient address verification failed: cannot verify now, try again later"
expect c451@codes.test replycode tempfail pooled 451
expect c452@codes.test replycode tempfail pooled 452
[[ "$(reply_text c452@codes.test)" == "452 4.2.2 "* ]]
verdict $? "452 keeps its class 4.2.2"
expect c550@codes.test replycode reject pooled 550
expect c551@codes.test replycode reject pooled 550
expect c552@codes.test replycode tempfail pooled 452 \
	"452 4.2.2 <c552@codes.test>: Recipient address verification failed: cannot verify now, try again later"
expect c553@codes.test replycode reject pooled 550
expect authed@a.test continue skip skip-auth -
expect fromskipnet@a.test continue skip skip-network -
expect u1@lim.test replycode reject new 550
expect u2@lim.test replycode reject pooled 550
expect u3@lim.test replycode reject pooled 550
expect u4@lim.test replycode tempfail unknown-limit 451 \
	"451 4.7.1 Too many unknown recipients, try again later"
expect u5@lim.test replycode tempfail unknown-limit 451
check "no reply anywhere was 5xx for a temporary cause" \
	bash -c "! grep -E 'verdict=tempfail.* reply=5' '$LOG'"
check "internal host and text never revealed" bash -c "! grep -F 'rcpt_reply' '$LOG' | grep -E '127\\.0\\.0\\.1|no such user'"

# What the internal MTAs saw. Peers end 2 s after their script; wait for them.
for p in a codes g421 g554 lim; do
	peer_done $p 20
done
seen_a=$(peer_seen a)
check "a.test: one connection for both RCPTs" [ "$(peer_conns a)" -eq 1 ]
check "a.test: exactly the two checked RCPTs were sent" [ "$(grep -c '^RCPT' <<<"$seen_a")" -eq 2 ]
check "a.test: no RCPT for bad input, skips, auth or skipped network" \
	none_of 'bad|xxxxx|err@|loc@|postmaster|abuse|authed|fromskipnet' "$seen_a"
check "lim.test: three probes, none past the limit" [ "$(peer_seen lim | grep -c '^RCPT')" -eq 3 ]
[ "$(peer_seen codes | grep -c '^RCPT')" -eq 9 ] && [ "$(peer_conns codes)" -eq 1 ]
verdict $? "codes.test: nine RCPTs over one session"

# --- control socket -------------------------------------------------------------------

stats=$(ctl stats)
[[ $stats == "ok checks="* ]]
verdict $? "stats answers ok ($stats)"
[[ $stats == *" rejects=7 "* ]] && [[ $stats == *" route_down="[1-9]* ]]
verdict $? "stats counts rejects and the down route"
[[ $stats == *" unknown_limited=2 "* ]]
verdict $? "stats counts the unknown-limit refusals"
out=$(ctl purge known@A.TEST) # domains compare in any case, local parts do not
check "purge ADDRESS forgets a cached answer ($out)" [ "$out" = "ok purged=1" ]
out=$(ctl purge known@a.test)
check "purge ADDRESS twice finds nothing ($out)" [ "$out" = "ok purged=0" ]
out=$(ctl purge all)
[[ $out == "ok purged="[1-9]* ]]
verdict $? "purge all empties the cache ($out)"
[[ "$(ctl stats)" == *" cache_entries=0 "* ]]
verdict $? "stats after purge all: cache empty"
out=$(ctl frobnicate)
[ $? -eq 1 ] && [[ $out == "error "* ]]
verdict $? "unknown command -> error, exit 1 ($out)"
out=$(ctl purge "a b@" 2>&1)
[[ $out == "error "* ]]
verdict $? "purge of a bad address -> error ($out)"
out=$(head -c 2000 /dev/zero | tr '\0' x | timeout 10 python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read() + b"\n")
print(s.recv(200).decode().strip())' "$CTL")
check "over-long control line refused ($out)" [ "$out" = "error line too long" ]

# --- SIGHUP reload with a connection open ------------------------------------------------

cat >"$T/reload.sh" <<EOF
#!/bin/bash
# Point reload.test at the second peer, SIGHUP, wait for the reload to land.
n=\$(grep -c 'reload status=ok' "$LOG")
sed -i "s|^reload.test .*|reload.test     smtp:[127.0.0.1]:$(peer_port r2)|" "$T/routes"
kill -HUP $MPID
for i in \$(seq 1 100); do
	[ "\$(grep -c 'reload status=ok' "$LOG")" -gt "\$n" ] && exit 0
	sleep 0.1
done
exit 1
EOF
cat >"$T/reload.lua" <<'EOF'
local x = open("192.0.2.50")
mail(x, "QIDR1")
rcpt(x, "r1@reload.test")
finish(x)
local ok = os.execute(reload_cmd)
if not ok then error("reload did not happen") end
-- The open connection keeps its snapshot: the old route, its pooled session.
mail(x, "QIDR2")
rcpt(x, "r2@reload.test")
finish(x)
-- A new connection gets the new route.
local y = open("192.0.2.51")
mail(y, "QIDR3")
rcpt(y, "r3@reload.test")
finish(y)
mt.disconnect(y)
mt.disconnect(x)
EOF
run_lua reload -D reload_cmd="bash $T/reload.sh"
expect r1@reload.test continue accept new -
expect r2@reload.test continue accept pooled -
expect r3@reload.test continue accept new -
for p in r1 r2; do
	peer_done $p 20
done
check "old connection kept the old route (r2 went to the first peer)" \
	bash -c "grep -q 'RCPT TO:<r2@reload.test>' $T/r1.rec/conn-*.txt"
check "new connection used the new route (r3 went to the second peer)" \
	bash -c "grep -q 'RCPT TO:<r3@reload.test>' $T/r2.rec/conn-*.txt && ! grep -q r3 $T/r1.rec/conn-*.txt"
[[ "$(ctl stats)" == *" generation=2" ]]
verdict $? "stats shows generation 2"

# A reload that fails keeps the old configuration.
cp "$T/routes" "$T/routes.good"
echo 'broken.test smtp:[' >>"$T/routes"
kill -HUP $MPID
check "failed reload is logged" wait_for 10 grep -q 'reload status=error' "$LOG"
cp "$T/routes.good" "$T/routes"
[[ "$(ctl stats)" == *" generation=2" ]]
verdict $? "still generation 2 after the failed reload"
# A burst of SIGHUPs: each is a reload, none stops the daemon (libmilter would).
for _ in $(seq 1 100); do kill -HUP "$MPID"; done
check "daemon survives a burst of SIGHUPs" wait_for 10 bash -c "[[ \"\$('$MILTER' -C '$CTL' stats)\" != *' generation=2' ]]"
check "daemon still running" kill -0 $MPID
cat >"$T/alive.lua" <<'EOF'
local c = open("192.0.2.60")
mail(c, "QIDA")
rcpt(c, "alive@noroute.test")
finish(c)
mt.disconnect(c)
EOF
run_lua alive
expect alive@noroute.test continue skip noroute -

# --- SIGTERM -------------------------------------------------------------------------------

kill -TERM $MPID
if wait_exit $MPID 30; then
	check "SIGTERM: exit status 0 (sanitizers clean) ($(grep -E 'ERROR|leak' "$LOG" | head -2))" [ "$WAIT_RC" -eq 0 ]
	check "SIGTERM: pid file removed" [ ! -e "$T/milter.pid" ]
	check "SIGTERM: control socket removed" [ ! -e "$CTL" ]
	check "stop logged" grep -q 'stop status=ok' "$LOG"
else
	bad "gw-milter did not stop on SIGTERM"
fi

# --- daemon mode and -u ---------------------------------------------------------------------

if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
	cp "$CONF" "$T/d.conf"
	set_key "$T/d.conf" pid_file "$T/d.pid"
	set_key "$T/d.conf" control_socket "$T/d.control"
	"$MILTER" -c "$T/d.conf" -u nobody -p "unix:$T/d.sock" 2>"$T/d.log"
	check "daemon mode: the parent exits 0" [ $? -eq 0 ]
	if wait_for 10 test -s "$T/d.pid"; then
		DPID=$(cat "$T/d.pid")
		PIDS+=("$DPID")
		check "-u: runs as nobody" wait_for 5 bash -c "[ \"\$(ps -o user= -p $DPID)\" = nobody ]"
		check "-p: socket where -p said" test -S "$T/d.sock"
		check "-u: control socket handed to nobody" [ "$(stat -c %U "$T/d.control")" = nobody ]
		kill -TERM "$DPID"
		check "daemon stops on SIGTERM" wait_for 30 bash -c "! kill -0 $DPID"
	else
		bad "daemon mode: no pid file"
	fi
else
	echo "skip - -u and daemon mode need root"
fi

mh_finish
