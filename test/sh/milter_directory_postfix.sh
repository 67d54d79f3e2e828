#!/usr/bin/env bash
# milter_directory_postfix.sh - gw-milter's directory mode through a real
# Postfix gateway, against a real OpenLDAP slapd.
#
# On loopback, each on its own port, all under temp dirs (lib/lab.sh, lib/ldap.sh):
#   slapd          users alice (alias al@), bob, group staff@ (example.org)
#   internal MTA   a throw-away Postfix that knows alice@example.org
#   gw-milter      etc/gw.conf with directory_mode = directory and an LDAP
#                  template; its unix socket where the fragment's smtpd_milters
#                  finds it
#   gateway        a throw-away Postfix with etc/postfix/main.cf.fragment,
#                  relaying example.org to the internal MTA
# Cases, each checked at the RCPT reply the Internet client sees:
#   1. known user              250, delivered to the internal mailbox
#   2. alias, group address    250
#   3. unknown user            550 5.1.1, no bounce, gateway queue empty
#   4. injection ("*", "a*")   550 5.1.1; slapd searched them as literals (\2A)
#   5. slapd stopped (SIGSTOP) 451 4.4.3 for a known and an unknown user, never 550
#   6. slapd continued         a new known user accepted again
# Needs root, postfix, swaks, slapd. Usage: milter_directory_postfix.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: milter_directory_postfix.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh
. "$here/lib/lab.sh"
# shellcheck source-path=SCRIPTDIR source=lib/ldap.sh
. "$here/lib/ldap.sh"

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "must run as root (Postfix's master runs as root)"
for t in postfix postconf swaks ss slapd slapadd ldapsearch /usr/bin/python3; do
	command -v "$t" >/dev/null || fail "$t not installed (scripts/install-deps)"
done
milter_bin=${LAB_MILTER_BIN:-$build/milter/gw-milter}
[ -x "$milter_bin" ] || fail "$milter_bin not built"

failures=0
cleanup() {
	local rc=$?
	if [ -n "$LAB" ] && { [ "$rc" -ne 0 ] || [ "$failures" -ne 0 ]; }; then
		echo "---- gw-milter log (last 30 lines)"; tail -30 "$LAB/milter/log" 2>/dev/null || true
		echo "---- gateway maillog (last 20)"; tail -20 "$LAB/gw/maillog" 2>/dev/null || true
	fi >&2
	ldap_stop
	lab_stop_all
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mismatch() { echo "MISMATCH: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok - $*"; }
expect_rcpt() { # CASE TRANSCRIPT ADDR REGEX
	local got
	got=$(lab_rcpt_reply "$2" "$3")
	if [[ $got =~ $4 ]]; then
		pass "$1: RCPT <$3> -> $got"
	else
		mismatch "$1: RCPT <$3>: got '${got:-no reply}', want /$4/"
		sed 's/^/    | /' "$2" >&2
	fi
}
# conf_put FILE KEY VALUE: any characters in VALUE (an LDAP filter has '|', which lab_conf_set's sed cannot take)
conf_put() {
	K=$2 V=$3 awk '$0 ~ "^" ENVIRON["K"] " =" { print ENVIRON["K"] " = " ENVIRON["V"]; next } { print }' \
		"$1" >"$1.new" && mv "$1.new" "$1"
	grep -qxF "$2 = $3" "$1" || fail "cannot set $2 in $1"
}

ldap_start || fail "slapd did not start"
lab_init
int_port=$(lab_port); gw_port=$(lab_port)
cat >"$LAB/routes" <<EOF
example.org        smtp:[127.0.0.1]:$int_port
EOF
lab_internal_start int "$int_port" alice@example.org
milter_sock=$(lab_gateway_milter_sock gw) || fail "no milter socket path"
lab_milter_conf "unix:$milter_sock" "$LAB/routes" log_level=debug socket_group=postfix \
	directory_mode=directory directory_timeout=2s
conf_put "$LAB/milter/gw.conf" directory_url \
	"$LDAP_URI/dc=example,dc=org?dn?sub?(|(mail={rcpt})(mailLocalAddress={rcpt}))"
lab_milter_start "$build" || fail "gw-milter did not start"
lab_gateway_start gw "$gw_port" fragment "$LAB/routes" "example.org"
echo "lab: slapd $LDAP_URI  internal :$int_port  gateway :$gw_port  in $LAB"

# 1. known user, delivered
t=$LAB/1.out
lab_swaks "$gw_port" "$t" --to alice@example.org --add-header "X-Lab-Case: dir-known"
expect_rcpt "1 known" "$t" alice@example.org '^250 '
for _ in $(seq 200); do
	grep -qs "X-Lab-Case: dir-known" "$LAB/int/mail/alice@example.org"/new/* && break
	sleep 0.1
done
if grep -qs "X-Lab-Case: dir-known" "$LAB/int/mail/alice@example.org"/new/*; then
	pass "1 known: delivered to the internal MTA"
else
	mismatch "1 known: not in alice's internal mailbox after 20 s"
fi

# 2. alias and group
t=$LAB/2.out
lab_swaks "$gw_port" "$t" --to al@example.org,staff@example.org --quit-after RCPT
expect_rcpt "2 alias" "$t" al@example.org '^250 '
expect_rcpt "2 group" "$t" staff@example.org '^250 '

# 3. unknown user
t=$LAB/3.out
lab_swaks "$gw_port" "$t" --to nobody@example.org
expect_rcpt "3 unknown" "$t" nobody@example.org '^550 5\.1\.1 '
if grep -qs "sender non-delivery notification" "$LAB/gw/maillog"; then mismatch "3 unknown: a bounce was made"
else pass "3 unknown: no bounce made"; fi
n=$(lab_queue_count gw)
[ "$n" -eq 0 ] && pass "3 unknown: gateway queue empty" || mismatch "3 unknown: gateway queue holds $n"

# 4. injection attempts
t=$LAB/4.out
lab_swaks "$gw_port" "$t" --to '*@example.org,a*@example.org' --quit-after RCPT
expect_rcpt "4 injection" "$t" '*@example.org' '^550 5\.1\.1 '
expect_rcpt "4 injection" "$t" 'a*@example.org' '^550 5\.1\.1 '
if ldap_wait_log 'filter="\(\|\(mail=a\\2A@example.org\)\(mailLocalAddress=a\\2A@example.org\)\)"' 5 &&
	grep -qF 'filter="(|(mail=\2A@example.org)(mailLocalAddress=\2A@example.org))"' "$LDAP_LOG"; then
	pass "4 injection: slapd searched '*' and 'a*' as literals"
else
	mismatch "4 injection: filters: $(grep -o 'filter=.*' "$LDAP_LOG" | tail -4)"
fi

# 5. slapd stopped: 4xx, never 550
kill -STOP "$LDAP_PID"
t=$LAB/5.out
lab_swaks "$gw_port" "$t" --to bob@example.org,ghost@example.org --quit-after RCPT
kill -CONT "$LDAP_PID"
expect_rcpt "5 slapd stopped" "$t" bob@example.org '^451 4\.4\.3 '
expect_rcpt "5 slapd stopped" "$t" ghost@example.org '^451 4\.4\.3 '

# 6. continued: answers again
t=$LAB/6.out
lab_swaks "$gw_port" "$t" --to robert@example.org --quit-after RCPT
expect_rcpt "6 slapd continued" "$t" robert@example.org '^250 '

kill -0 "$LAB_MILTER_PID" 2>/dev/null || mismatch "gw-milter died"
if [ "$failures" -ne 0 ]; then
	echo "$failures mismatch(es)"
	exit 1
fi
echo "all checks passed"
