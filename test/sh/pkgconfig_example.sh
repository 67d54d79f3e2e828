#!/usr/bin/env bash
# Installs libgw into a private prefix with `cmake --install`, checks what is
# installed (versioned SONAME, static library, headers, libgw.pc), builds
# docs/examples/probe.c through pkg-config and runs it against the fake peer:
# 250 -> exit 0, 550 -> exit 1, refused connection -> exit 75.
set -euo pipefail
bindir=$1                               # the test build directory (has gw-fakepeer)
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
peer_pid=
cleanup() { [ -n "$peer_pid" ] && kill "$peer_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# A plain build (no sanitizers): what a user installs.
cmake -S "$top" -B "$work/build" -DGW_TESTS=OFF -DCMAKE_BUILD_TYPE=Release -DGW_WERROR=ON >/dev/null
cmake --build "$work/build" -j2 >/dev/null
cmake --install "$work/build" --prefix "$work/prefix" >/dev/null

libdir=$(ls -d "$work"/prefix/lib*/ | head -n1)
[ -f "$libdir/libgw.a" ] || fail "libgw.a not installed"
[ -f "$work/prefix/include/gw/client.h" ] || fail "headers not installed under include/gw"
soname=$(readelf -d "$libdir"/libgw.so.*.*.* | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[[ "$soname" =~ ^libgw\.so\.[0-9]+$ ]] || fail "SONAME is '$soname', want libgw.so.N"
[ -L "$libdir/$soname" ] || fail "no $soname symlink"

export PKG_CONFIG_PATH=$libdir/pkgconfig
pkg-config --exists libgw || fail "pkg-config does not find libgw"
make -s -C "$top/docs/examples" O="$work" CFLAGS="-O2 -Wall -Wextra -Werror" >/dev/null
export LD_LIBRARY_PATH=$libdir

cat > "$work/script" <<'SCRIPT'
send 220 fake.test ESMTP
expect EHLO
send 250-fake.test\r\n250 PIPELINING
expect MAIL FROM:<>
send 250 2.1.0 Ok
expect RCPT TO:<known@example.com>
send 250 2.1.5 Ok
expect QUIT
send 221 Bye
---
send 220 fake.test ESMTP
expect EHLO
send 250 fake.test
expect MAIL FROM:<>
send 250 2.1.0 Ok
expect RCPT TO:<nobody@example.com>
send 550 5.1.1 <nobody@example.com>: Recipient address rejected
expect QUIT
send 221 Bye
SCRIPT
"$bindir/test/gw-fakepeer" -s "$work/script" -P "$work/port" -n 2 -t 5000 & peer_pid=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

set +e
out=$("$work/probe" "[127.0.0.1]:$port" known@example.com); rc=$?
[ $rc -eq 0 ] || fail "known user: exit $rc, want 0 ($out)"
echo "$out" | grep -q '^known@example.com: 250 2.1.5 Ok$' || fail "known user: got '$out'"
out=$("$work/probe" "[127.0.0.1]:$port" nobody@example.com); rc=$?
[ $rc -eq 1 ] || fail "unknown user: exit $rc, want 1 ($out)"
echo "$out" | grep -q '550 5.1.1' || fail "unknown user: got '$out'"
wait "$peer_pid"; peer_rc=$?; peer_pid=
[ $peer_rc -eq 0 ] || fail "fake peer reported a script failure"
out=$("$work/probe" "[127.0.0.1]:1" known@example.com); rc=$?
[ $rc -eq 75 ] || fail "refused: exit $rc, want 75 ($out)"
out=$("$work/probe" "[127.0.0.1]:$port" $'bad\r\n@example.com' 2>&1); rc=$?
[ $rc -eq 64 ] || fail "bad address: exit $rc, want 64 ($out)"
set -e

# Static linking through pkg-config --static.
cc -O2 -o "$work/probe-static" "$top/docs/examples/probe.c" $(pkg-config --cflags libgw) \
  "$libdir/libgw.a" $(pkg-config --libs-only-other --static libgw) -lssl -lcrypto -lcares -lresolv -lpthread
pkg-config --static --libs libgw | grep -q -- '-lcares' || fail "libgw.pc: c-ares missing from the static link line"
echo "pkgconfig example: ok"
