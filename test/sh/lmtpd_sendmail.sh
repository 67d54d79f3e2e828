#!/usr/bin/env bash
# lmtpd_sendmail.sh - gw-lmtpd end to end with a real Sendmail 8.17 as the
# internal MTA: its outbound mail goes over LMTP to two gw-lmtpd gateways
# through the gwlmtp mailer and rules of etc/sendmail/gw-lmtpd.mc (only the
# gateway addresses and port changed: gw1 on 127.0.0.1, gw2 on 127.0.0.2,
# one port, as the mailer's A=TCP $h PORT wants). The destinations are
# Postfix instances with virtual mailboxes (test/sh/lib/lab.sh); gw1 cannot
# reach dest-c (its route points at a closed port), gw2 can.
#   1. One message to alice@dest-a, bob@dest-b, carol@dest-c. The first
#      delivery attempt (Sendmail's background delivery after the SMTP
#      session) gives alice and bob to gw1, which delivers them; gw1 answers
#      4xx for carol after the final dot, and Sendmail does NOT offer carol to
#      gw2 in that attempt: she stays in its queue (qf with N1, only her R
#      line). The next queue run (sendmail -q) reads ${ntries}=1, the .mc's
#      rules reverse the gateway list, and carol goes through gw2. Every
#      recipient arrives exactly once; Sendmail's queue is empty.
#   2. alice and nobody@dest-a (dest-a answers 550 5.1.1 for nobody) and bob:
#      alice and bob are delivered, nobody alone is bounced: the DSN that
#      reaches sender@ext.test (through the gateways) names nobody with
#      5.1.1 and no other recipient; gw2 never sees nobody.
#   3. gw1 stopped: Sendmail moves to gw2 within the same attempt (the
#      connection to gw1 is refused), no queue run needed.
# After each case both gateways have no session open, no spool file, and
# their stats (gw-lmtpd -C SOCKET stats) count what they passed on.
#
# Sendmail is not installed: lib/sendmail.sh unpacks its Debian packages
# into a cache ($1/sendmail-cache, GW_SENDMAIL_CACHE overrides) and runs it
# in its own UTS namespace with a dotted host name (else a 60 s stall at
# start). Also handled: TrustStickyBit (world-writable /tmp parent), no
# syslog here (-X traffic log; the queue files and the gateways' logs say
# what happened).
# Needs root, m4, swaks, postfix, unshare. Usage: lmtpd_sendmail.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: lmtpd_sendmail.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
. "$here/lib/lab.sh"

die() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"
for t in postfix swaks ss m4 unshare flock; do
	command -v "$t" >/dev/null || die "$t not installed (scripts/install-deps)"
done
lmtpd=$build/lmtp/gw-lmtpd
[ -x "$lmtpd" ] || die "$lmtpd not built"

# ---- Sendmail, unpacked, not installed (lib/sendmail.sh) ------------------
# shellcheck source-path=SCRIPTDIR source=lib/sendmail.sh
. "$here/lib/sendmail.sh"
sm_unpack "$build" || die "no Sendmail to run"
sm_cmd internal.sendmail.lab.invalid
smx() { "${smx_cmd[@]}" "$@"; }

S=
sm_wrapper=
sm_stop() {
	local pid
	pid=$(head -1 "$S/sendmail.pid" 2>/dev/null || true)
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && { lab_wait_pid "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true; }
	if [ -n "$sm_wrapper" ]; then
		kill -TERM "$sm_wrapper" 2>/dev/null || true
		wait "$sm_wrapper" 2>/dev/null || true
		sm_wrapper=
	fi
}
cleanup() {
	local rc=$?
	if [ -n "$LAB" ] && [ "$rc" -ne 0 ]; then
		{
			for f in "$LAB"/gw1.log "$LAB"/gw2.log "$LAB"/dest-a/maillog; do
				[ -f "$f" ] && { echo "---- $f (last 20)"; tail -n 20 "$f"; }
			done
			echo "---- sendmail traffic (last 40)"; tail -n 40 "$S"/traffic* 2>/dev/null || true
			echo "---- sendmail queue"; cat "$S"/mqueue/qf* 2>/dev/null || true
		} >&2
	fi
	[ -n "$S" ] && sm_stop
	lab_stop_all
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }

wait_for() {   # SECONDS CMD...: until CMD succeeds
	local s=$1
	shift
	for _ in $(seq $((s * 10))); do "$@" && return 0; sleep 0.1; done
	return 1
}
maildir_count() { find "$LAB/$1/mail/$2/new" -type f 2>/dev/null | wc -l; }   # INSTANCE USER
sm_qf() { find "$S/mqueue" -type f -name 'qf*' 2>/dev/null; }
sm_queue_empty() { [ -z "$(sm_qf)" ]; }
sm_queued() { find "$S/mqueue" -type f -name 'qf*' -exec grep -h "^[RM]" {} + 2>/dev/null; }   # its R and M lines
has_mail() { [ "$(maildir_count "$1" "$2")" -ge "$3" ]; }   # INSTANCE USER N: at least N messages

lab_init

# ---- destinations: dest-a also holds the test sender's mailbox (bounces) ---
pa=$(lab_port); pb=$(lab_port); pc=$(lab_port); closed=$(lab_port)
lab_internal_start dest-a "$pa" alice@dest-a.example sender@ext.test
lab_internal_start dest-b "$pb" bob@dest-b.example
lab_internal_start dest-c "$pc" carol@dest-c.example

# ---- two gateways on one port, 127.0.0.1 and 127.0.0.2 ----------------------
gp=$(lab_port)
listening_on() { [ -n "$(ss -Htln "src $1:$2" 2>/dev/null)" ]; }   # ADDR PORT
gw_start() {   # NAME ADDR ROUTES-TEXT
	local name=$1 addr=$2 d=$LAB/$1
	mkdir -p "$d/spool"
	[ -n "${3:-}" ] && printf '%s' "$3" >"$d/routes"
	cp "$LAB_SRC/etc/gw-lmtpd.conf" "$d/gw-lmtpd.conf"
	lab_conf_set "$d/gw-lmtpd.conf" listen "[$addr]:$gp"
	lab_conf_set "$d/gw-lmtpd.conf" control_socket "$d/control"
	lab_conf_set "$d/gw-lmtpd.conf" pid_file "$d/pid"
	lab_conf_set "$d/gw-lmtpd.conf" routes "$d/routes"
	lab_conf_set "$d/gw-lmtpd.conf" spool_dir "$d/spool"
	lab_conf_set "$d/gw-lmtpd.conf" spool_memory 0
	lab_conf_set "$d/gw-lmtpd.conf" log stderr
	lab_conf_set "$d/gw-lmtpd.conf" hostname "$name.lab.invalid"
	lab_conf_set "$d/gw-lmtpd.conf" connect_timeout 2s
	"$lmtpd" -n -c "$d/gw-lmtpd.conf" >/dev/null || fail "gw-lmtpd -n refused $name's configuration"
	lab_bg "$name" "$lmtpd" -f -c "$d/gw-lmtpd.conf"
	wait_for 10 listening_on "$addr" "$gp" || fail "$name does not listen on $addr:$gp"
}
routes_common="dest-a.example smtp:[127.0.0.1]:$pa
dest-b.example smtp:[127.0.0.1]:$pb
ext.test smtp:[127.0.0.1]:$pa
"
gw_start gw1 127.0.0.1 "${routes_common}dest-c.example smtp:[127.0.0.1]:$closed
"
gw_start gw2 127.0.0.2 "${routes_common}dest-c.example smtp:[127.0.0.1]:$pc
"
gw_stats() { "$lmtpd" -C "$LAB/$1/control" stats; }   # NAME
gw_idle() {   # NAME: no LMTP session open, no spool file
	gw_stats "$1" | grep -q '^sessions=0 ' && [ -z "$(find "$LAB/$1/spool" -mindepth 1)" ]
}
gw_count() {   # NAME KEY: a counter from the stats line
	gw_stats "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# ---- the internal Sendmail, with etc/sendmail/gw-lmtpd.mc -------------------
S=$LAB/sm
mkdir -p "$S/mqueue"; chmod 700 "$S/mqueue"
sed -e 's/\[gw1\.example\.org\]/[127.0.0.1]/; s/\[gw2\.example\.org\]/[127.0.0.2]/' \
	-e "s/A=TCP \\\$h 24\$/A=TCP \$h $gp/" "$LAB_SRC/etc/sendmail/gw-lmtpd.mc" >"$S/gw-lmtpd.mc"
{ grep -q "^define(\`GW_LMTP_GW1', \`\[127.0.0.1\]')" "$S/gw-lmtpd.mc" &&
	grep -q "^define(\`GW_LMTP_GW2', \`\[127.0.0.2\]')" "$S/gw-lmtpd.mc" &&
	grep -q "A=TCP \$h $gp\$" "$S/gw-lmtpd.mc"; } ||
	fail "etc/sendmail/gw-lmtpd.mc: no GW_LMTP_GW1/GW_LMTP_GW2 defines or A=TCP \$h 24 to point at the lab"
sp=$(lab_port)
cat >"$S/internal.mc" <<EOF
divert(0)dnl
include(\`$sm_root/usr/share/sendmail/cf/m4/cf.m4')dnl
VERSIONID(\`gw-lmtpd end-to-end internal MTA')dnl
OSTYPE(\`linux')dnl
define(\`confDOMAIN_NAME', \`internal.sendmail.lab.invalid')dnl
define(\`confDONT_PROBE_INTERFACES', \`True')dnl
define(\`confDONT_BLAME_SENDMAIL', \`TrustStickyBit')dnl
define(\`QUEUE_DIR', \`$S/mqueue')dnl
define(\`confPID_FILE', \`$S/sendmail.pid')dnl
define(\`STATUS_FILE', \`$S/statistics')dnl
define(\`ALIAS_FILE', \`$S/aliases')dnl
define(\`HELP_FILE', \`$sm_root/etc/mail/helpfile')dnl
define(\`confCONTROL_SOCKET_NAME', \`$S/smcontrol')dnl
define(\`confLOG_LEVEL', \`9')dnl
define(\`confTO_IDENT', \`0')dnl
define(\`confBIND_OPTS', \`-DNSRCH -DEFNAMES')dnl
define(\`confSERVICE_SWITCH_FILE', \`$S/service.switch')dnl
define(\`confREFUSE_LA', \`999')dnl
define(\`confQUEUE_LA', \`999')dnl
define(\`confDELAY_LA', \`0')dnl
FEATURE(\`no_default_msa')dnl
FEATURE(\`nocanonify')dnl
FEATURE(\`accept_unresolvable_domains')dnl
DAEMON_OPTIONS(\`Port=$sp, Addr=127.0.0.1, Name=MTA-int')dnl
RELAY_DOMAIN(\`dest-a.example dest-b.example dest-c.example')dnl
MAILER(\`local')dnl
MAILER(\`smtp')dnl
include(\`$S/gw-lmtpd.mc')dnl
EOF
m4 "$S/internal.mc" >"$S/internal.cf" || fail "m4 could not build sendmail.cf"
grep -q "^Mgwlmtp,.*F=[A-Za-z0-9]*z" "$S/internal.cf" || fail "sendmail.cf has no LMTP (F=z) gwlmtp mailer"
printf 'postmaster: root\nMAILER-DAEMON: postmaster\n' >"$S/aliases"; touch "$S/statistics"
printf 'hosts files\naliases files\n' >"$S/service.switch"
smx -C "$S/internal.cf" -bi >/dev/null 2>&1 || true
smx -C "$S/internal.cf" -bD -X "$S/traffic" >"$S/sendmail.out" 2>&1 &
sm_wrapper=$!
lab_wait_port "$sp" 60 || fail "sendmail did not listen on $sp: $(cat "$S/sendmail.out")"
echo "lab: sendmail :$sp  gw1 127.0.0.1:$gp  gw2 127.0.0.2:$gp  dest-a :$pa dest-b :$pb dest-c :$pc  in $LAB"

# ---- 1. one recipient gw1 cannot deliver -----------------------------------
t0=$(date +%s.%N)
lab_swaks "$sp" "$LAB/swaks1" --to alice@dest-a.example,bob@dest-b.example,carol@dest-c.example \
	--header "Subject: fallback"
grep -q "^<- *250 .*Message accepted" "$LAB/swaks1" || fail "sendmail did not take the message: $(tail -3 "$LAB/swaks1")"
# The first attempt is over when the queue file is written again with one try counted.
first_attempt_done() { [ -n "$(sm_qf)" ] && sm_qf | xargs grep -qx N1; }
wait_for 60 first_attempt_done || fail "no deferred queue file after the first attempt: $(sm_queued)"
t1=$(date +%s.%N)
qf=$(sm_qf)
[ "$(wc -l <<<"$qf")" -eq 1 ] || fail "more than one queue file: $qf"
grep -q '^R.*carol@dest-c.example' "$qf" || fail "carol is not the deferred recipient: $(grep '^R' "$qf")"
! grep -q '^R.*\(alice\|bob\)@' "$qf" || fail "a delivered recipient is still queued: $(grep '^R' "$qf")"
grep -q 'to=<carol@dest-c.example> state=tempfail' "$LAB/gw1.log" || fail "gw1 did not tempfail carol"
! grep -q 'carol@dest-c.example' "$LAB/gw2.log" || fail "gw2 saw carol in the first attempt"
{ wait_for 30 has_mail dest-a alice@dest-a.example 1 && wait_for 30 has_mail dest-b bob@dest-b.example 1; } ||
	fail "alice and bob were not delivered in the first attempt"
grep -q '>>> LHLO ' "$S/traffic" || fail "sendmail did not speak LMTP (no LHLO in its traffic log)"
printf 'ok: first attempt: alice, bob delivered through gw1; carol deferred, not offered to gw2 (%.1f s)\n' \
	"$(awk "BEGIN { print $t1 - $t0 }")"
# The next queue run: ${ntries}=1, gw2 first.
timeout 120 "${smx_cmd[@]}" -C "$S/internal.cf" -q -X "$S/traffic.q1" >"$S/q1.out" 2>&1 || fail "sendmail -q failed: $(cat "$S/q1.out")"
# (sendmail -q hands the run to a child and may return before it is done)
wait_for 60 sm_queue_empty || fail "carol still queued after the queue run: $(sm_queued)"
t2=$(date +%s.%N)
wait_for 30 has_mail dest-c carol@dest-c.example 1 || fail "carol was not delivered"
grep -q 'to=<carol@dest-c.example> state=delivered' "$LAB/gw2.log" || fail "gw2 did not deliver carol"
[ "$(grep -c 'to=<carol@dest-c.example>' "$LAB/gw1.log")" -eq 1 ] || fail "carol went to gw1 again"
! grep -q 'alice@dest-a.example\|bob@dest-b.example' "$LAB/gw2.log" || fail "gw2 saw a recipient gw1 had delivered"
for u in "dest-a alice@dest-a.example" "dest-b bob@dest-b.example" "dest-c carol@dest-c.example"; do
	# shellcheck disable=SC2086
	n=$(maildir_count $u)
	[ "$n" -eq 1 ] || fail "$u got $n copies"
done
{ wait_for 10 gw_idle gw1 && wait_for 10 gw_idle gw2; } || fail "a gateway holds a session or a spool file"
[ "$(gw_count gw1 delivered)/$(gw_count gw1 tempfail)" = 2/1 ] || fail "gw1 stats: $(gw_stats gw1)"
[ "$(gw_count gw2 delivered)/$(gw_count gw2 tempfail)" = 1/0 ] || fail "gw2 stats: $(gw_stats gw2)"
printf 'ok: next queue run: carol through gw2 (%.1f s); every recipient once; gateways idle and empty\n' \
	"$(awk "BEGIN { print $t2 - $t1 }")"

# ---- 2. a destination's 5xx: a DSN for that recipient only ------------------
lab_swaks "$sp" "$LAB/swaks2" --to alice@dest-a.example,nobody@dest-a.example,bob@dest-b.example \
	--header "Subject: one unknown"
grep -q "^<- *250 .*Message accepted" "$LAB/swaks2" || fail "sendmail did not take the message: $(tail -3 "$LAB/swaks2")"
dsn_arrived() { [ "$(maildir_count dest-a sender@ext.test)" -ge 1 ]; }
wait_for 60 dsn_arrived || fail "no DSN reached sender@ext.test"
wait_for 30 sm_queue_empty || fail "mail left in sendmail's queue: $(sm_queued)"
[ "$(maildir_count dest-a sender@ext.test)" -eq 1 ] || fail "more than one DSN"
dsn=$(find "$LAB/dest-a/mail/sender@ext.test/new" -type f)
grep -qi '^Final-Recipient: RFC822; *nobody@dest-a.example' "$dsn" || fail "the DSN does not name nobody: $(cat "$dsn")"
grep -qi '^Status: 5.1.1' "$dsn" || fail "the DSN does not carry 5.1.1"
grep -qi '^Diagnostic-Code: SMTP; 550 5.1.1 .*nobody@dest-a.example' "$dsn" || fail "the DSN lacks the destination's reply"
[ "$(grep -ci '^Final-Recipient:' "$dsn")" -eq 1 ] || fail "the DSN names more than one recipient"
! grep -qi '^\(Final\|Original\)-Recipient:.*\(alice\|bob\)@' "$dsn" || fail "the DSN names a delivered recipient"
[ "$(maildir_count dest-a alice@dest-a.example)" -eq 2 ] || fail "alice has $(maildir_count dest-a alice@dest-a.example), want 2"
wait_for 30 has_mail dest-b bob@dest-b.example 2 || fail "bob did not get the second message"
grep -q 'to=<nobody@dest-a.example> state=permfail' "$LAB/gw1.log" || fail "gw1 did not log nobody as permfail: $(grep nobody@ "$LAB/gw1.log")"
! grep -q 'nobody@dest-a.example' "$LAB/gw2.log" || fail "a permanent failure went on to gw2"
{ wait_for 10 gw_idle gw1 && wait_for 10 gw_idle gw2; } || fail "a gateway holds a session or a spool file"
echo "ok: 550 5.1.1 for nobody: one DSN naming nobody alone; alice and bob delivered"

# ---- 3. gw1 down: the next gateway in the same attempt ----------------------
lab_bg_stop gw1
gw1_closed() { ! listening_on 127.0.0.1 "$gp"; }
wait_for 10 gw1_closed || fail "gw1 still listens"
lab_swaks "$sp" "$LAB/swaks3" --to carol@dest-c.example --header "Subject: gw1 down"
grep -q "^<- *250 .*Message accepted" "$LAB/swaks3" || fail "sendmail did not take the message: $(tail -3 "$LAB/swaks3")"
wait_for 60 has_mail dest-c carol@dest-c.example 2 || fail "carol's second message did not arrive without gw1"
wait_for 30 sm_queue_empty || fail "mail left in sendmail's queue: $(sm_queued)"
[ "$(maildir_count dest-c carol@dest-c.example)" -eq 2 ] || fail "carol has $(maildir_count dest-c carol@dest-c.example), want 2"
wait_for 10 gw_idle gw2 || fail "gw2 holds a session or a spool file"
[ "$(gw_count gw2 delivered)" = 2 ] || fail "gw2 stats: $(gw_stats gw2)"
echo "ok: gw1 down: gw2 in the same attempt, no queue run"

kill -0 "$sm_wrapper" 2>/dev/null || fail "the sendmail daemon died"
lab_bg_stop gw2   # a leak report comes at exit
for f in "$LAB/gw1.log" "$LAB/gw2.log"; do
	! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f" || fail "sanitizer report in $f"
done
echo "PASS"
