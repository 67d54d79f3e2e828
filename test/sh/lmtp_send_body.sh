#!/usr/bin/env bash
# gw-send and the message body against the fake peer (test/gw-fakepeer), whose
# record is every byte it received:
#   - a 5,000-octet line and a line of exactly 998 octets: delivered, the long
#     line broken into lines of at most 998 octets plus CRLF (CRLF SPACE
#     inserted, as Postfix's smtp_line_length_limit does), the 998 one intact;
#   - a NUL byte: never on the wire, no end of message, every recipient
#     permfail 554 5.6.0 with the offset, exit 65 (EX_DATAERR).
set -euo pipefail
bindir=$1
gwsend=$bindir/lmtp/gw-send
work=$(mktemp -d)
peer_pid=
cleanup() {
  if [ -n "$peer_pid" ]; then kill "$peer_pid" 2>/dev/null || true; wait "$peer_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# start_peer SCRIPT-TEXT: a fake peer on a unix socket for one connection.
start_peer() {
  printf '%s\n' "$1" > "$work/script"
  rm -rf "$work/rec" "$work/sock"; mkdir "$work/rec"
  "$bindir/test/gw-fakepeer" -s "$work/script" -l "unix:$work/sock" -r "$work/rec" -t 5000 & peer_pid=$!
  for _ in $(seq 50); do [ -S "$work/sock" ] && break; sleep 0.1; done
  [ -S "$work/sock" ] || fail "fake peer did not start"
}
wait_peer() {
  local rc=0
  wait "$peer_pid" || rc=$?
  peer_pid=
  [ $rc -eq 0 ] || fail "fake peer reported a script failure ($1)"
}
lhlo='send 220 fake LMTP
expect LHLO
send 250-fake\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES
expect MAIL
expect RCPT
expect RCPT
expect DATA
send 250 ok\r\n250 ok\r\n250 ok\r\n354 go'

# 1. Long lines.
{
  printf 'Subject: long\n\n'
  head -c 5000 /dev/zero | tr '\0' 'c'; printf '\n'
  head -c 998 /dev/zero | tr '\0' 'a'; printf '\nend\n'
} > "$work/long"
start_peer "$lhlo
data
send 250 2.0.0 a\r\n250 2.0.0 b
expect QUIT
send 221 bye"
set +e
"$gwsend" -t 5 -f s@example.com -g "lmtp:unix:$work/sock" -m "$work/long" a@example.com b@example.com \
  > "$work/out1" 2>&1
rc=$?
set -e
wait_peer "long lines"
[ $rc -eq 0 ] || fail "long lines: exit $rc: $(cat "$work/out1")"
rec=$work/rec/conn-0.txt
awk '{ if (length($0) > 999) { print "line " NR " has " length($0) " octets"; bad = 1 } } END { exit bad }' "$rec" \
  || fail "a line over 998 octets plus CRLF went out"
# 5,000 = 998 + 4 x 997 + 14 after a space each: six wire lines, the 998 'a' line intact.
n=$(grep -c '^ \?c\+'$'\r''$' "$rec" || true)
[ "$n" -eq 6 ] || fail "the 5,000-octet line: $n wire lines, want 6"
grep -q '^a\{998\}'$'\r''$' "$rec" || fail "the 998-octet line was changed"

# 2. A NUL byte.
printf 'Subject: nul\n\nab\0cd\n' > "$work/nul"
start_peer "$lhlo"
set +e
"$gwsend" -t 5 -f s@example.com -g "lmtp:unix:$work/sock" -m "$work/nul" a@example.com b@example.com \
  > "$work/out2" 2>&1
rc=$?
set -e
wait_peer "NUL"
[ $rc -eq 65 ] || fail "NUL: exit $rc, want 65: $(cat "$work/out2")"
n=$(grep -c ': permfail stage=data code=554 enh=5.6.0 .*NUL byte at offset 16' "$work/out2" || true)
[ "$n" -eq 2 ] || fail "NUL: want two permfail 5.6.0 lines: $(cat "$work/out2")"
rec=$work/rec/conn-0.txt
[ "$(tr -cd '\000' < "$rec" | wc -c)" -eq 0 ] || fail "NUL: a NUL byte reached the peer"
tail -c 6 "$rec" | grep -q 'DATA' || fail "NUL: something after DATA reached the peer: $(tail -c 40 "$rec" | od -c | head -3)"
echo "lmtp send body: ok"
