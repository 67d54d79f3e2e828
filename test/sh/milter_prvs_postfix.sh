#!/usr/bin/env bash
# milter_prvs_postfix.sh - gw-milter's BATV/PRVS end to end through a real
# Postfix gateway.
#
# On loopback, each on a free port, all under one temp dir (test/sh/lib/lab.sh):
#   internal MTA   a throw-away Postfix that knows alice@example.com
#   smtp-sink      the Internet as seen by outbound mail (remote.test), dumping
#                  each transaction with its MAIL FROM (X-Mail-Args)
#   gw-milter      etc/gw.conf with PRVS on: a 0600 key file, prvs_sign_domains
#                  example.com, prvs_internal_networks 127.0.0.2/32
#   gateway        a throw-away Postfix with etc/postfix/main.cf.fragment,
#                  relaying example.com to the internal MTA and remote.test to
#                  smtp-sink; relay_recipient_maps left unset, so tagged
#                  recipients reach the milter (see gw-milter(8), PRVS)
# Clients from 127.0.0.2 are "internal", from 127.0.0.1 "the Internet".
# Cases:
#   1. outbound mail from the internal network leaves with a signed envelope
#      sender (seen at smtp-sink; gw-prvs verifies it to alice@example.com)
#   2. a bounce to that address comes back from the Internet: 250 at RCPT, and
#      reaches the internal MTA as the plain alice@example.com
#   3. a forged bounce (no tag): 550 5.7.1 at RCPT, nothing delivered
#   4. an expired tag (gw-prvs --day in the past): 550 5.7.1 with the expired
#      text at RCPT
# Needs root, postfix (smtp-sink), swaks. Usage: milter_prvs_postfix.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: milter_prvs_postfix.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
. "$here/lib/lab.sh"

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "must run as root (Postfix's master runs as root)"
for t in postfix postconf smtp-sink swaks ss /usr/bin/python3; do
	command -v "$t" >/dev/null || fail "$t not installed (scripts/install-deps)"
done
for b in milter/gw-milter milter/gw-prvs; do
	[ -x "$build/$b" ] || cmake --build "$build" --target "${b#milter/}" >/dev/null || fail "cannot build $b in $build"
done
prvs_bin=$build/milter/gw-prvs

failures=0
post_mortem() {
	echo "---- gw-milter log (last 30 lines)"; tail -30 "$LAB/milter/log" 2>/dev/null || true
	echo "---- gateway maillog (last 20)"; tail -20 "$LAB/gw/maillog" 2>/dev/null || true
	echo "---- internal maillog (last 20)"; tail -20 "$LAB/int/maillog" 2>/dev/null || true
	echo "---- smtp-sink"; tail -5 "$LAB/sink.log" 2>/dev/null || true
}
cleanup() {
	local rc=$?
	if [ -n "$LAB" ] && { [ "$rc" -ne 0 ] || [ "$failures" -ne 0 ]; }; then post_mortem >&2; fi
	lab_stop_all
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mismatch() { echo "MISMATCH: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok - $*"; }
expect_rcpt() {   # CASE TRANSCRIPT ADDR REGEX
	local got
	got=$(lab_rcpt_reply "$2" "$3")
	if [[ $got =~ $4 ]]; then
		pass "$1: RCPT <$3> -> $got"
	else
		mismatch "$1: RCPT <$3>: got '${got:-no reply}', want /$4/"
		sed 's/^/    | /' "$2" >&2
	fi
}
delivered() {   # USER CASE-TAG: the file in USER's internal mailbox carrying the tag
	local f
	for _ in $(seq 200); do
		f=$(grep -ls "X-Lab-Case: $2" "$LAB/int/mail/$1"/new/* 2>/dev/null | head -1)
		[ -n "$f" ] && { echo "$f"; return 0; }
		sleep 0.1
	done
	return 1
}

lab_init
int_port=$(lab_port); gw_port=$(lab_port); milter_port=$(lab_port); sink_port=$(lab_port)
# The gateway's transport map knows both directions; gw-milter probes only example.com.
cat >"$LAB/routes" <<EOF
example.com        smtp:[127.0.0.1]:$int_port
EOF
cat >"$LAB/gw-transport" <<EOF
example.com        smtp:[127.0.0.1]:$int_port
remote.test        smtp:[127.0.0.1]:$sink_port
EOF
mkdir -p "$LAB/sink" "$LAB/milter"
chown nobody "$LAB/sink"
lab_bg sink smtp-sink -u nobody -d "$LAB/sink/%M." "127.0.0.1:$sink_port" 10
lab_wait_port "$sink_port" 10 || fail "smtp-sink did not start"
keys=$LAB/milter/prvs.keys
printf '# lab keys\n1 lab-secret-one\n' >"$keys"
chmod 600 "$keys"
lab_internal_start int "$int_port" alice@example.com
lab_milter_conf "$milter_port" "$LAB/routes" log_level=debug "prvs_keys=$keys" prvs_sign_domains=example.com \
	prvs_internal_networks=127.0.0.2/32
lab_milter_start "$build"
lab_gateway_start gw "$gw_port" "$milter_port" "$LAB/gw-transport" "example.com, remote.test"
echo "lab: internal :$int_port  gw-milter :$milter_port  gateway :$gw_port  smtp-sink :$sink_port  in $LAB"

# 1. outbound from the internal network: signed at the gateway
t=$LAB/1.out
lab_swaks "$gw_port" "$t" --local-interface 127.0.0.2 --from alice@example.com --to bob@remote.test \
	--add-header "X-Lab-Case: outbound"
expect_rcpt "1 outbound" "$t" bob@remote.test '^250 '
dump=
for _ in $(seq 200); do
	dump=$(grep -ls "X-Lab-Case: outbound" "$LAB/sink"/* 2>/dev/null | head -1) || true
	[ -n "$dump" ] && break
	sleep 0.1
done
tagged=
if [ -z "$dump" ]; then
	mismatch "1 outbound: nothing reached smtp-sink after 20 s"
else
	from=$(sed -n 's/^X-Mail-Args: *//p' "$dump" | head -1)
	# smtp-sink writes the MAIL arguments: "<address> PARAM..." (or "FROM:<address>")
	tagged=$(sed -n 's/^\(FROM:\)\{0,1\}<\([^>]*\)>.*/\2/Ip' <<<"$from")
	if [[ $tagged == prvs=* ]] && orig=$("$prvs_bin" --keys "$keys" verify "$tagged") && [ "$orig" = alice@example.com ]; then
		pass "1 outbound: smtp-sink saw MAIL $from (verifies to $orig)"
	else
		mismatch "1 outbound: smtp-sink saw MAIL '$from', want a valid prvs tag of alice@example.com"
	fi
fi
if grep -q 'step=sign .*action=sign' "$LAB/milter/log"; then pass "1 outbound: gw-milter logged the signing"
else mismatch "1 outbound: no signing line in gw-milter's log"; fi

# 2. the bounce to the signed address comes back from the Internet
if [ -n "$tagged" ]; then
	t=$LAB/2.out
	lab_swaks "$gw_port" "$t" --from '<>' --to "$tagged" --add-header "X-Lab-Case: bounce"
	expect_rcpt "2 bounce" "$t" "$tagged" '^250 '
	if f=$(delivered alice@example.com bounce); then
		if grep -qi '^X-Original-To: alice@example.com$' "$f" && ! grep -qi 'prvs=' <(sed -n '1,/^$/p' "$f" | grep -i '^\(X-Original-To\|Delivered-To\):'); then
			pass "2 bounce: delivered to the internal MTA as alice@example.com"
		else
			mismatch "2 bounce: delivered, but not to the plain address: $(grep -i '^\(X-Original-To\|Delivered-To\):' "$f" | tr '\n' ' ')"
		fi
	else
		mismatch "2 bounce: not in alice's internal mailbox after 20 s"
	fi
	if grep -q "to=<$tagged>" "$LAB/int/maillog" 2>/dev/null; then
		mismatch "2 bounce: the internal MTA saw the tagged address"
	fi
else
	mismatch "2 bounce: skipped, no signed sender from case 1"
fi

# 3. a forged bounce: no tag
t=$LAB/3.out
lab_swaks "$gw_port" "$t" --from '<>' --to alice@example.com --add-header "X-Lab-Case: forged"
expect_rcpt "3 forged" "$t" alice@example.com '^550 5\.7\.1 <alice@example\.com>: this address sent no mail that could bounce'

# 4. an expired tag
old=$("$prvs_bin" --keys "$keys" --day $(($(date -u +%s) / 86400 - 10)) sign alice@example.com)
t=$LAB/4.out
lab_swaks "$gw_port" "$t" --from '<>' --to "$old" --add-header "X-Lab-Case: expired"
expect_rcpt "4 expired" "$t" "$old" '^550 5\.7\.1 .*expired address tag'

sleep 1 # anything wrongly accepted would be delivered by now
if grep -qs -e "X-Lab-Case: forged" -e "X-Lab-Case: expired" "$LAB/int/mail/alice@example.com"/new/*; then
	mismatch "3/4: a refused bounce reached the internal mailbox"
else
	pass "3/4: refused bounces never reached the internal MTA"
fi
if grep -q 'ignoring ESMTP arguments' "$LAB/gw/maillog" 2>/dev/null; then
	mismatch "Postfix warned about smfi_chgfrom ESMTP arguments"
fi

lab_milter_stop
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$LAB/milter/log"; then
	mismatch "gw-milter: sanitizer report in its log: $(grep -m1 -E 'ERROR: |runtime error:' "$LAB/milter/log")"
fi
if [ "$failures" -ne 0 ]; then
	echo "milter_prvs_postfix: $failures mismatch(es)" >&2
	exit 1
fi
echo "milter_prvs_postfix: all cases passed"
