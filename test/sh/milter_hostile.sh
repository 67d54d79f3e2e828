#!/bin/bash
# milter_hostile.sh - gw-milter against what no MTA sends, and the defaults that
# keep everyone but the MTA off its socket. Usage: milter_hostile.sh BUILD_DIR
#
# Covered: the shipped socket_mode keeps another local user (nobody) off the
# unix socket - that user's connection is refused and the daemon is untouched -
# while the same user gets in once socket_mode is 0666 (so the refusal is the
# mode's doing); socket_group sets the socket's group, an unknown group is a
# configuration error naming file:line; milter_timeout closes an idle milter
# connection (2 s here), not one waiting for a slower probe, and the default
# keeps one open; a missing routes file
# names the gw.conf line that set it; gw-prvs says "malformed" (5), not
# "try again" (75), for an over-long address in sign, verify and strip.
#
# libmilter's own flaw: a macro packet with an odd number of strings makes
# smfi_getsymval read past its macro list. gw-milter checks the lists first
# (milter/smfi_ctx.c) and ignores the macros of such a packet; the last part
# sends them, at MAIL and RCPT, as the MTA would, and the daemon must live and
# say so in its log (a plain build without that check died within a few
# sessions). The milter side of the wire is lib/milter_client.py.
set -u

# shellcheck source=lib/milter_harness.sh
. "$(dirname "$0")/lib/milter_harness.sh"
mh_init milter-hostile "${1:-}"
PRVS=$B/milter/gw-prvs
CLIENT=$SRC/test/sh/lib/milter_client.py
# The socket's own mode must decide, not the directory's: let others in to $T.
chmod 755 "$T"
: >"$T/routes"
printf 'example.com smtp:[127.0.0.1]:%s\n' "$(free_port)" >"$T/routes"

# mclient SCRIPT [AS_USER]: one milter session; output in $T/client.out
mclient() {
	if [ -n "${2:-}" ]; then
		timeout 30 setpriv --reuid="$2" --regid="$(id -g "$2")" --clear-groups \
			/usr/bin/python3 "$CLIENT" "$SOCK" /dev/stdin <"$T/$1.script" >"$T/client.out" 2>&1
	else
		timeout 30 /usr/bin/python3 "$CLIENT" "$SOCK" "$T/$1.script" >"$T/client.out" 2>&1
	fi
}

cat >"$T/good.script" <<'EOF2'
connect client.test 192.0.2.1
macro mail i Q1
mail s@remote.test
macro rcpt {rcpt_mailer} smtp {rcpt_addr} u@other.test
rcpt u@other.test
quit
EOF2
# the malformed packets: a macro name without a value at MAIL and at RCPT
cat >"$T/odd.script" <<'EOF2'
connect client.test 192.0.2.1
macro mail aaaaaa1 aaaaaaa2 aaaaaaaaaaaaaaaaaaaaaa3
mail s@remote.test
macro rcpt {rcpt_mailer} smtp {rcpt_addr} u dangling
rcpt u@other.test
rcpt u@other.test
quit
EOF2

# --- the shipped socket mode keeps other users out ---------------------------------

mh_conf milter
want_eq "etc/gw.conf ships a unix socket" "$(sed -n 's/^socket = \([a-z]*\):.*/\1/p' "$SRC/etc/gw.conf")" unix
milter_start milter || mh_finish
# the socket appears at bind() with mode 600 and gets its mode just after: a bounded wait
for _ in $(seq 100); do [ "$(stat -c %a "$T/milter.sock")" = 660 ] && break; sleep 0.05; done
want_eq "socket mode from etc/gw.conf" "$(stat -c %a "$T/milter.sock")" 660
mclient odd nobody
out=$(cat "$T/client.out")
[[ $out == "REFUSED Permission denied"* ]]
verdict $? "user nobody cannot connect to the socket ($out)"
check "gw-milter still runs after nobody's attempt" kill -0 "$MPID"
mclient good
want_eq "the MTA's session (root) still answered" "$(grep -c '^REPLY' "$T/client.out")" 3
milter_stop

mh_conf open socket_mode=0666 socket_group=nogroup
milter_start open || mh_finish
want_eq "socket_group sets the socket's group" "$(stat -c %G "$T/open.sock")" nogroup
mclient good nobody
want_eq "with socket_mode 0666 nobody gets in (the mode decides)" "$(grep -c '^REPLY' "$T/client.out")" 3
milter_stop

mh_conf badgroup socket_group=no-such-group-gw
line=$(grep -n '^socket_group =' "$CONF" | cut -d: -f1)
out=$("$MILTER" -n -c "$CONF" 2>&1)
rc=$?
[ $rc -eq 78 ] && [[ $out == *"$CONF:$line: socket_group: unknown group"* ]]
verdict $? "an unknown socket_group exits 78 naming file:line ($out)"

# --- milter_timeout ------------------------------------------------------------------

printf 'connect client.test 192.0.2.1\nidle 10\n' >"$T/idle.script"
mh_conf idle milter_timeout=2s
milter_start idle || mh_finish
mclient idle
out=$(tail -1 "$T/client.out")
secs=$(sed -n 's/^CLOSED \([0-9]*\).*/\1/p' <<<"$out")
[[ $out == CLOSED* ]] && [ "$secs" -ge 1 ] && [ "$secs" -le 5 ]
verdict $? "milter_timeout = 2s closes an idle connection in about 2 s ($out)"
check "the close is logged" grep -q ': idle action=close idle_ms=' "$LOG"
none_of "cannot find the session's socket" "$(cat "$LOG")"
verdict $? "gw-milter found the session's socket in this libmilter"
milter_stop

# A probe slower than milter_timeout: the connection is busy, not idle, and keeps its reply.
cat >"$T/slow.script" <<'EOF2'
send 220 slow.test ESMTP
expect EHLO
send 250 slow.test
expect MAIL FROM:<>
send 250 ok
expect RCPT TO:<known@slow.test>
sleep 3500
send 250 ok
EOF2
start_peer slow
printf 'slow.test smtp:[127.0.0.1]:%s\n' "$(peer_port slow)" >>"$T/routes"
cat >"$T/busy.script" <<'EOF2'
connect client.test 192.0.2.1
macro mail i Q2
mail s@remote.test
macro rcpt {rcpt_mailer} smtp
rcpt known@slow.test
quit
EOF2
mh_conf busy milter_timeout=2s
milter_start busy || mh_finish
mclient busy
want_eq "a 3.5 s probe with milter_timeout = 2s still answers RCPT" "$(grep -c '^REPLY rcpt c' "$T/client.out")" 1
check "and the connection was not closed as idle" bash -c "! grep -q ': idle action=close' '$LOG'"
milter_stop

printf 'connect client.test 192.0.2.1\nidle 4\n' >"$T/idle4.script"
mh_conf keep
milter_start keep || mh_finish
mclient idle4
want_eq "the default milter_timeout keeps a connection idle for 4 s" "$(tail -1 "$T/client.out")" OPEN
milter_stop

# --- a missing routes file names the gw.conf line ---------------------------------

mh_conf noroutes "routes=$T/no-such-routes"
line=$(grep -n '^routes =' "$CONF" | cut -d: -f1)
out=$("$MILTER" -n -c "$CONF" 2>&1)
rc=$?
[ $rc -eq 78 ] && [[ $out == *"$CONF:$line: routes: $T/no-such-routes: No such file or directory"* ]]
verdict $? "a missing routes file exits 78 naming gw.conf:line ($out)"

# --- gw-prvs: an over-long address is malformed, never "try again" -------------------

"$PRVS" keygen >"$T/prvs.keys" && chmod 600 "$T/prvs.keys"
long=$(printf 'a%.0s' $(seq 1 590))
for addr in "$long@example.com" "prvs=0123abcdef=$long@example.com"; do
	for cmd in sign verify strip; do
		"$PRVS" --keys "$T/prvs.keys" --day 20000 "$cmd" "$addr" >/dev/null 2>"$T/prvs.err"
		rc=$?
		want_eq "gw-prvs $cmd of a ${#addr}-character address exits 5 ($(cat "$T/prvs.err"))" "$rc" 5
	done
done

# --- odd macro packets from the MTA's side: ignored, the daemon lives ---------------

mh_conf odd
milter_start odd || mh_finish
for _ in $(seq 20); do
	mclient odd
	kill -0 "$MPID" 2>/dev/null || break
done
check "gw-milter survives 20 sessions with odd macro packets" kill -0 "$MPID"
want_eq "RCPT still answered after an odd macro packet" "$(grep -c '^REPLY rcpt' "$T/client.out")" 2
check "the odd macro list is logged and ignored" \
	grep -q 'macros error="a macro list with a name and no value" action="macros ignored"' "$LOG"
mclient good
want_eq "a well-formed session afterwards" "$(grep -c '^REPLY' "$T/client.out")" 3
check "a well-formed session reads its macros (queue id Q1 logged)" grep -q 'rcpt queue=Q1 ' "$LOG"
kill -0 "$MPID" 2>/dev/null && milter_stop

mh_finish
for _ in $(seq 20); do mclient odd; kill -0 "$MPID" 2>/dev/null || break; done
if kill -0 "$MPID" 2>/dev/null; then
	echo "note: gw-milter survived 20 sessions with odd macro packets (this build, this heap)"
	milter_stop
else
	wait "$MPID" 2>/dev/null
	echo "note: gw-milter died (status $?) of odd macro packets from root, as gw-milter(8) SECURITY says"
fi

mh_finish
