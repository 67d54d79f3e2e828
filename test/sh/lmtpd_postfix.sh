#!/usr/bin/env bash
# gw-lmtpd end to end with real Postfix: an internal Postfix whose outbound
# transport is LMTP to two gw-lmtpd gateways (a Postfix 3.5+ next-hop list,
# as etc/postfix/internal-lmtp.cf.fragment says), and three destination MXs,
# each a Postfix with virtual mailboxes. The first gateway cannot reach
# dest-c (its route points at a closed port); the second can. One message to
# a user at each destination:
#   - dest-a and dest-b get it once, through gw1;
#   - gw1 answers 4xx for the dest-c recipient only; the internal Postfix
#     hands just that recipient to gw2 in the same delivery attempt, and
#     dest-c gets it once;
#   - nothing is left in the internal queue, none of the gateways keeps a
#     spool file, and each gateway logged the verdicts it passed on.
# Then: a recipient the destination refuses (550 5.1.1) bounces at once
# (never retried through gw2), and with every destination down at both
# gateways the message stays deferred in the internal queue (never lost).
# Needs root (Postfix), postfix. Every process is stopped by PID.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
lmtpd=$bindir/lmtp/gw-lmtpd
[ -x "$lmtpd" ] || { echo "FAIL: $lmtpd not built" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root to run Postfix"; exit 1; }

lab_init
trap lab_stop_all EXIT
fail() {
	echo "FAIL: $*" >&2
	for f in "$LAB"/gw1/log "$LAB"/gw2/log "$LAB"/internal/maillog; do
		[ -f "$f" ] && { echo "--- $f" >&2; tail -n 25 "$f" >&2; }
	done
	exit 1
}

# Destinations: Postfix instances with virtual mailboxes.
pa=$(lab_port); pb=$(lab_port); pc=$(lab_port); closed=$(lab_port)
lab_internal_start dest-a "$pa" alice@dest-a.example
lab_internal_start dest-b "$pb" bob@dest-b.example
lab_internal_start dest-c "$pc" carol@dest-c.example

# Two gateways, each from etc/gw-lmtpd.conf with the lab's paths.
gw_start() {   # NAME PORT ROUTES-TEXT
	local name=$1 port=$2 d=$LAB/$1
	mkdir -p "$d/spool"
	printf '%s' "$3" >"$d/routes"
	cp "$LAB_SRC/etc/gw-lmtpd.conf" "$d/gw-lmtpd.conf"
	lab_conf_set "$d/gw-lmtpd.conf" listen "[127.0.0.1]:$port"
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
	lab_wait_port "$port" 10 || fail "$name does not listen"
	# lab_bg logs to $LAB/NAME.log
	ln -sf "$LAB/$name.log" "$d/log"
}
g1=$(lab_port); g2=$(lab_port)
gw_start gw1 "$g1" "dest-a.example smtp:[127.0.0.1]:$pa
dest-b.example smtp:[127.0.0.1]:$pb
dest-c.example smtp:[127.0.0.1]:$closed
ext.test error:5.1.2 the test sender domain takes no mail
"
gw_start gw2 "$g2" "dest-a.example smtp:[127.0.0.1]:$pa
dest-b.example smtp:[127.0.0.1]:$pb
dest-c.example smtp:[127.0.0.1]:$pc
ext.test error:5.1.2 the test sender domain takes no mail
"

# The internal MTA: relays everything over LMTP to the gateways, with the project's fragment.
pi=$(lab_port)
lab_instance_dirs internal
echo "$pi" >"$LAB/internal/port"
lab_master_cf "$pi" >"$LAB/internal/etc/master.cf"
{
	lab_main_cf internal
	echo "smtpd_relay_restrictions = permit_mynetworks, reject"
	sed "s/\[gw1.example.org\]:24/[127.0.0.1]:$g1/; s/\[gw2.example.org\]:24/[127.0.0.1]:$g2/" \
		"$LAB_SRC/etc/postfix/internal-lmtp.cf.fragment"
} >"$LAB/internal/etc/main.cf"
grep -q "default_transport = lmtp:inet:\[127.0.0.1\]:$g1, \[127.0.0.1\]:$g2" "$LAB/internal/etc/main.cf" ||
	fail "the fragment's next-hop list was not rewritten for the lab"
lab_postfix_start internal

maildir_count() {   # INSTANCE USER: messages delivered to USER
	find "$LAB/$1/mail/$2/new" -type f 2>/dev/null | wc -l
}
wait_for() {   # SECONDS CMD...: until CMD succeeds
	local s=$1
	shift
	for _ in $(seq $((s * 10))); do "$@" && return 0; sleep 0.1; done
	return 1
}
delivered() { [ "$(maildir_count dest-a alice@dest-a.example)" -ge 1 ] &&
	[ "$(maildir_count dest-b bob@dest-b.example)" -ge 1 ] &&
	[ "$(maildir_count dest-c carol@dest-c.example)" -ge 1 ]; }
queue_empty() { [ "$(lab_queue_count internal)" -eq 0 ]; }

lab_swaks "$pi" "$LAB/swaks1" --to alice@dest-a.example,bob@dest-b.example,carol@dest-c.example \
	--header "Subject: fallback"
grep -q "^<- *250 .*queued as" "$LAB/swaks1" || fail "the internal MTA did not take the message: $(tail -3 "$LAB/swaks1")"
wait_for 30 delivered || fail "not every recipient was delivered"
wait_for 10 queue_empty || fail "mail left in the internal queue: $(lab_queue_count internal)"
for u in "dest-a alice@dest-a.example" "dest-b bob@dest-b.example" "dest-c carol@dest-c.example"; do
	# shellcheck disable=SC2086
	n=$(maildir_count $u)
	[ "$n" -eq 1 ] || fail "$u got $n copies"
done
grep -q 'to=<carol@dest-c.example> state=tempfail' "$LAB/gw1.log" || fail "gw1 did not tempfail carol"
grep -q 'to=<carol@dest-c.example> state=delivered' "$LAB/gw2.log" || fail "gw2 did not deliver carol"
grep -q 'to=<alice@dest-a.example> state=delivered' "$LAB/gw1.log" || fail "gw1 did not deliver alice"
! grep -q 'alice@dest-a.example\|bob@dest-b.example' "$LAB/gw2.log" || fail "gw2 saw a recipient gw1 had delivered"
grep -q "to=<carol@dest-c.example>, relay=127.0.0.1\[127.0.0.1\]:$g2.* status=sent" "$LAB/internal/maillog" ||
	fail "the internal MTA did not log carol as sent through gw2"
[ -z "$(find "$LAB/gw1/spool" "$LAB/gw2/spool" -mindepth 1)" ] || fail "a gateway left spool files"
echo "ok: fallback of one recipient to the second gateway, every recipient once"

# A 5xx from the destination is final: bounced by the internal MTA, never offered to gw2.
lab_swaks "$pi" "$LAB/swaks2" --to nobody@dest-a.example --header "Subject: unknown"
bounced() { grep -q "to=<nobody@dest-a.example>.* status=bounced" "$LAB/internal/maillog"; }
wait_for 30 bounced || fail "nobody@dest-a.example was not bounced"
grep -q "to=<nobody@dest-a.example>.*said: 550 5.1.1 \[127.0.0.1\]:$pa said: 550 5.1.1 <nobody@dest-a.example>" "$LAB/internal/maillog" ||
	fail "the bounce does not carry the destination's verdict: $(grep nobody@ "$LAB/internal/maillog" | tail -1)"
! grep -q 'nobody@dest-a.example' "$LAB/gw2.log" || fail "a permanent failure went on to gw2"
echo "ok: the destination's 550 5.1.1 reaches the internal MTA and is final"

# Every destination down: the internal MTA keeps the message (deferred), the gateways keep nothing.
lab_postfix_stop dest-b
lab_swaks "$pi" "$LAB/swaks3" --to bob@dest-b.example --header "Subject: later"
deferred() { grep -q "to=<bob@dest-b.example>.* status=deferred" "$LAB/internal/maillog"; }
wait_for 30 deferred || fail "bob@dest-b.example was not deferred"
[ "$(lab_queue_count internal)" -ge 1 ] || fail "the deferred message is not in the internal queue"
[ -z "$(find "$LAB/gw1/spool" "$LAB/gw2/spool" -mindepth 1)" ] || fail "a gateway left spool files"
lab_postfix_start dest-b
postqueue -c "$LAB/internal/etc" -f
wait_for 30 queue_empty || fail "the deferred message was not delivered after dest-b came back"
# dest-b took it; its own delivery to the maildir follows
bob_has_two() { [ "$(maildir_count dest-b bob@dest-b.example)" -ge 2 ]; }
wait_for 30 bob_has_two || fail "bob has $(maildir_count dest-b bob@dest-b.example) messages, want 2"
[ "$(maildir_count dest-b bob@dest-b.example)" -eq 2 ] || fail "bob has $(maildir_count dest-b bob@dest-b.example) messages, want 2"
echo "ok: nothing lost while every destination was down"
echo "PASS"
