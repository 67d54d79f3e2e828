#!/usr/bin/env bash
# Host and MX lookups through libgw's resolver against a real BIND 9 (named) that
# the test starts on loopback (test/sh/lib/named.sh), with gw-dnsq (test/tools/dnsq.c)
# and gw-send --dns-server: MX answers in preference order, null MX, no MX ->
# implicit MX, NXDOMAIN and no address -> not found, SERVFAIL -> try later, a silent
# server (a UDP socket this test opens and never reads) -> try later within the
# deadline, A and AAAA host lookups, and gw-send reaching gateways named in the DNS
# (IPv4 and IPv6) and reporting a name that does not resolve as temporary.
set -euo pipefail
bindir=$1
top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib/named.sh disable=SC1091
. "$top/test/sh/lib/named.sh"
work=$(mktemp -d)
silent_pid='' peer_pid=''
cleanup() {
	named_stop
	[ -z "$silent_pid" ] || { kill "$silent_pid" 2>/dev/null; wait "$silent_pid" 2>/dev/null || true; }
	[ -z "$peer_pid" ] || { kill "$peer_pid" 2>/dev/null; wait "$peer_pid" 2>/dev/null || true; }
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
dnsq="$bindir/test/gw-dnsq"

named_start "$work" || fail "named did not start"
srv=127.0.0.1:$NAMED_PORT
echo "named pid=$NAMED_PID port=$NAMED_PORT"

# check WHAT WANT ARGS...: the first line of gw-dnsq's output must be WANT
check() {
	local what=$1 want=$2 got
	shift 2
	got=$("$dnsq" -s "$srv" -d 3000 "$@" | head -n1)
	[ "$got" = "$want" ] || fail "$what: got '$got', want '$want'"
	echo "ok: $what: $got"
}

check "MX in preference order" "FOUND 10 mx1.example.org,20 mx2.example.org,30 mx3.example.org" mx example.org
check "MX, trailing dot, upper case" "FOUND 10 mx1.example.org,20 mx2.example.org,30 mx3.example.org" mx EXAMPLE.ORG.
check "null MX" "NOTFOUND domain accepts no mail (null MX)" mx nullmx.example
check "no MX, an address: implicit MX" "FOUND 0 a-only.example.org" mx a-only.example.org
check "no MX, AAAA only: implicit MX" "FOUND 0 peer6.example.org" mx peer6.example.org
check "no MX, no address" "NOTFOUND no MX record and no address" mx nothing.example.org
check "NXDOMAIN" "NOTFOUND domain does not exist (NXDOMAIN)" mx nowhere.example.org
check "host A" "FOUND 127.0.0.11" host mx1.example.org
check "host AAAA" "FOUND ::1" host peer6.example.org
check "host NXDOMAIN" "NOTFOUND nowhere.example.org: no such host or no address" host nowhere.example.org
check "host without address" "NOTFOUND nothing.example.org: no such host or no address" host nothing.example.org
got=$("$dnsq" -s "$srv" -d 3000 host dual.example.org | head -n1)
case $got in
"FOUND 127.0.0.16,::1" | "FOUND ::1,127.0.0.16") echo "ok: host A and AAAA: $got" ;;
*) fail "host A and AAAA: got '$got'" ;;
esac
got=$("$dnsq" -s "$srv" -d 3000 mx broken.example | head -n1)
case $got in RETRY*) echo "ok: SERVFAIL: $got" ;; *) fail "SERVFAIL: got '$got', want RETRY" ;; esac
got=$("$dnsq" -s "$srv" -d 3000 host x.broken.example | head -n1)
case $got in RETRY*) echo "ok: host SERVFAIL: $got" ;; *) fail "host SERVFAIL: got '$got', want RETRY" ;; esac
grep -q 'query: example.org IN MX' "$NAMED_LOG" || fail "named did not see the MX query"

# A silent server: bound, never read. 500 ms deadline -> RETRY in under 2 s.
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
time.sleep(120)
' >"$work/silent.port" &
silent_pid=$!
for _ in $(seq 50); do [ -s "$work/silent.port" ] && break; sleep 0.1; done
[ -s "$work/silent.port" ] || fail "silent server did not start"
quiet=127.0.0.1:$(cat "$work/silent.port")
for q in "mx example.org" "host mx1.example.org"; do
	# shellcheck disable=SC2086
	out=$("$dnsq" -s "$quiet" -t 30000 -d 500 $q)
	res=$(echo "$out" | head -n1)
	ms=$(echo "$out" | sed -n 's/^ms=//p')
	case $res in RETRY*) ;; *) fail "silent server, $q: got '$res', want RETRY" ;; esac
	[ "$ms" -lt 2000 ] || fail "silent server, $q: took $ms ms, want under 2000"
	echo "ok: silent server, $q, deadline 500 ms: $res after $ms ms"
done
# no deadline from the caller: the lookup timeout (-t) bounds it
out=$("$dnsq" -s "$quiet" -t 400 mx example.org)
ms=$(echo "$out" | sed -n 's/^ms=//p')
case $out in RETRY*) ;; *) fail "silent server, timeout 400 ms: got '$out'" ;; esac
[ "$ms" -lt 2000 ] || fail "silent server, timeout 400 ms: took $ms ms"
echo "ok: silent server, lookup timeout 400 ms: after $ms ms"

# gw-send to gateways named in the DNS: peer (A 127.0.0.1) and peer6 (AAAA ::1).
printf 'Subject: dns\n\nhello\n' >"$work/msg"
for target in "peer 127.0.0.1" "peer6 ::1"; do
	# shellcheck disable=SC2086 # two words: name and listen address
	set -- $target
	printf '%s\n' 'send 220 fake LMTP' 'expect LHLO' 'send 250-fake\r\n250 PIPELINING' \
		'expect MAIL FROM:<s@example.com>' 'send 250 ok' 'expect RCPT TO:<a@example.org>' 'send 250 ok' \
		'expect DATA' 'send 354 go' 'data' 'send 250 2.0.0 saved' 'expect QUIT' 'send 221 bye' >"$work/script"
	rm -f "$work/port"
	"$bindir/test/gw-fakepeer" -s "$work/script" -l "$2" -P "$work/port" -t 5000 &
	peer_pid=$!
	for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
	[ -s "$work/port" ] || fail "fake peer did not start"
	out=$("$bindir/lmtp/gw-send" --dns-server "$srv" -f s@example.com -g "lmtp:$1.example.org:$(cat "$work/port")" \
		-m "$work/msg" a@example.org) || fail "gw-send via $1.example.org: exit $?: $out"
	wait "$peer_pid" || fail "fake peer script failed ($1)"
	peer_pid=
	echo "ok: gw-send to $1.example.org ($2): $out"
done
# a gateway name that does not exist: temporary (75), the recipient kept for a retry
rc=0
out=$("$bindir/lmtp/gw-send" --dns-server "$srv" -t 2 -f s@example.com -g "lmtp:nowhere.example.org:2424" \
	-m "$work/msg" a@example.org) || rc=$?
[ "$rc" = 75 ] || fail "gw-send to an unknown name: exit $rc, want 75: $out"
echo "ok: gw-send to nowhere.example.org: exit 75: $out"
# a silent resolver: the connect timeout bounds the lookup
t0=$(date +%s%N)
rc=0
out=$("$bindir/lmtp/gw-send" --dns-server "$quiet" -t 1 -f s@example.com -g "lmtp:peer.example.org:2424" \
	-m "$work/msg" a@example.org) || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" = 75 ] || fail "gw-send with a silent resolver: exit $rc, want 75: $out"
[ "$ms" -lt 4000 ] || fail "gw-send with a silent resolver: took $ms ms, want under 4000 (-t 1)"
echo "ok: gw-send with a silent resolver, -t 1: exit 75 after $ms ms: $out"
# a bad --dns-server is a usage error
rc=0
"$bindir/lmtp/gw-send" --dns-server ns.example.org -f s@example.com -g lmtp:peer.example.org:2424 \
	-m "$work/msg" a@example.org 2>"$work/err" || rc=$?
{ [ "$rc" = 64 ] && grep -q -- '--dns-server' "$work/err"; } || fail "bad --dns-server: exit $rc: $(cat "$work/err")"
echo "ok: bad --dns-server: exit 64: $(cat "$work/err")"
echo PASS
