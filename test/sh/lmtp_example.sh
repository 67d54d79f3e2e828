#!/usr/bin/env bash
# Installs libgw and gw-send into a private prefix from a plain Release build,
# checks the LMTP pieces are installed (gw/lmtp.h, gw-send, man pages), builds
# docs/examples/lmtp_send.c through pkg-config and runs it, and the installed
# gw-send, against the fake peer (test/gw-fakepeer): per-recipient results,
# fallback from a refused gateway, --json, and the sysexits exit statuses
# (0 delivered, 75 temporary, 67 unknown user, 69 other permanent).
set -euo pipefail
bindir=$1                               # the test build directory (has gw-fakepeer)
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
peer_pid=
cleanup() { [ -n "$peer_pid" ] && kill "$peer_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake -S "$top" -B "$work/build" -DGW_TESTS=OFF -DCMAKE_BUILD_TYPE=Release -DGW_WERROR=ON >/dev/null
cmake --build "$work/build" -j2 >/dev/null
cmake --install "$work/build" --prefix "$work/prefix" >/dev/null

libdir=$(ls -d "$work"/prefix/lib*/ | head -n1)
[ -f "$work/prefix/include/gw/lmtp.h" ] || fail "gw/lmtp.h not installed"
[ -x "$work/prefix/bin/gw-send" ] || fail "gw-send not installed in bin"
[ -f "$work/prefix/share/man/man1/gw-send.1" ] || fail "gw-send.1 not installed"
[ -f "$work/prefix/share/man/man3/gw_lmtp.3" ] || fail "gw_lmtp.3 not installed"
export PKG_CONFIG_PATH=$libdir/pkgconfig
make -s -C "$top/docs/examples" O="$work" CFLAGS="-O2 -Wall -Wextra -Werror" "$work/lmtp_send" >/dev/null
export LD_LIBRARY_PATH=$libdir

# start_peer SCRIPT-TEXT: a fake peer for one connection; sets port and peer_pid.
start_peer() {
  printf '%s\n' "$1" > "$work/script"
  rm -f "$work/port"; rm -rf "$work/rec"; mkdir "$work/rec"
  "$bindir/test/gw-fakepeer" -s "$work/script" -P "$work/port" -r "$work/rec" -t 5000 & peer_pid=$!
  for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
  [ -s "$work/port" ] || fail "fake peer did not start"
  port=$(cat "$work/port")
}
wait_peer() {
  local rc=0
  wait "$peer_pid" || rc=$?
  peer_pid=
  [ $rc -eq 0 ] || fail "fake peer reported a script failure ($1)"
}

printf 'Subject: example\n\n.leading dot\nend\n' > "$work/msg"
lhlo='send 220 fake LMTP
expect LHLO
send 250-fake\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES'

# 1. The example program: first gateway refused, the second takes a and refuses b at DATA.
start_peer "$lhlo
expect MAIL FROM:<s@example.com>
expect RCPT TO:<a@example.com>
expect RCPT TO:<b@example.com>
expect DATA
send 250 ok\r\n250 ok\r\n250 ok\r\n354 go
data
send 250 2.0.0 a saved\r\n550 5.2.1 b disabled
expect QUIT
send 221 bye"
set +e
out=$("$work/lmtp_send" "$work/msg" s@example.com "[127.0.0.1]:1,[127.0.0.1]:$port" a@example.com b@example.com)
rc=$?
set -e
wait_peer example
[ $rc -eq 1 ] || fail "lmtp_send: exit $rc, want 1 ($out)"
echo "$out" | grep -qx "0 a@example.com delivered 250 2.0.0 via \[127.0.0.1\]:$port:a saved" || fail "lmtp_send a: $out"
echo "$out" | grep -qx "1 b@example.com permfail 550 5.2.1 via \[127.0.0.1\]:$port:b disabled" || fail "lmtp_send b: $out"
grep -q '^\.\.leading dot' "$work/rec/conn-0.txt" || fail "body not dot-stuffed"

gwsend=$work/prefix/bin/gw-send

# 2. gw-send, everything delivered, message on stdin (a pipe: spooled), --json.
start_peer "$lhlo
expect MAIL FROM:<s@example.com>
expect RCPT TO:<a@example.com>
expect DATA
send 250 ok\r\n250 ok\r\n354 go
data
send 250 2.0.0 \"quoted\" ok
expect QUIT
send 221 bye"
set +e
out=$(cat "$work/msg" | "$gwsend" --json -f s@example.com -g "lmtp:[127.0.0.1]:$port" a@example.com); rc=$?
set -e
wait_peer json
[ $rc -eq 0 ] || fail "gw-send delivered: exit $rc, want 0 ($out)"
echo "$out" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); assert r["state"]=="delivered" and r["code"]==250 and r["text"]=="\"quoted\" ok", r' \
  || fail "gw-send --json: $out"
grep -q $'^Subject: example\r$' "$work/rec/conn-0.txt" || fail "gw-send body not sent with CRLF"

# 3. One temporary failure -> 75; an unknown user only -> 67; other permanent -> 69.
run_case() {   # want-exit reply-to-rcpt reply-to-data
  local want=$1 rcpt_reply=$2 data_reply=$3 data_part=
  [ -n "$data_reply" ] && data_part="
data
send $data_reply"
  start_peer "$lhlo
expect MAIL
expect RCPT
expect DATA
send 250 ok\r\n$rcpt_reply${data_reply:+\r\n354 go}${data_reply:-\r\n503 5.5.1 no recipients}$data_part
expect QUIT
send 221 bye"
  set +e
  out=$("$gwsend" -f s@example.com -g "[127.0.0.1]:$port" -m "$work/msg" u@example.com); rc=$?
  set -e
  wait_peer "case $want"
  [ $rc -eq "$want" ] || fail "gw-send: exit $rc, want $want ($out)"
}
run_case 75 '250 ok' '452 4.2.2 mailbox full'
run_case 67 '550 5.1.1 unknown user' ''
run_case 69 '250 ok' '554 5.6.0 content refused'
echo "$out" | grep -q '^u@example.com: permfail stage=data code=554 enh=5.6.0' || fail "gw-send line: $out"

# 4. Usage errors.
set +e
"$gwsend" -f s@example.com a@example.com >/dev/null 2>&1; rc=$?
[ $rc -eq 64 ] || fail "no gateway: exit $rc, want 64"
"$gwsend" --smtp -g "lmtp:[127.0.0.1]:24" a@example.com >/dev/null 2>&1; rc=$?
[ $rc -eq 64 ] || fail "conflicting protocols: exit $rc, want 64"
"$gwsend" -g "[127.0.0.1]:1" -m "$work/nonexistent" a@example.com >/dev/null 2>&1; rc=$?
[ $rc -eq 66 ] || fail "missing message: exit $rc, want 66"
set -e
echo "lmtp example: ok"
