#!/usr/bin/env bash
# ports_alloc.sh - lib/ports.sh, the port allocator of the shell tests and benchmarks.
# Usage: ports_alloc.sh [BUILD_DIR] (not used).
#
# Checked: every port is below the ephemeral range; a claim made in a $(...)
# subshell survives it (the bug of the old lab_port); 8 shells claiming 20
# ports each at the same time never get the same port; a claim is given back
# by port_release_all of its own shell only; a claim whose shell is gone is
# taken over. Uses its own claim directory, so it never disturbs other tests.
set -u
here=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/gw-ports.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
export GW_PORT_DIR=$T/claims
# shellcheck source-path=SCRIPTDIR source=lib/ports.sh
. "$here/lib/ports.sh"
fails=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }

lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
p=$(port_claim)
if [[ $p =~ ^[0-9]+$ ]] && [ "$p" -ge 20000 ] && [ "$p" -lt "$lo" ] && [ "$p" -le 32767 ]; then
	ok "port $p below the ephemeral range ($lo)"
else
	bad "port '$p': want 20000 <= port < $lo"
fi
if [ "$(cat "$GW_PORT_DIR/$p" 2>/dev/null)" = "$$" ]; then
	ok "the claim made in \$(port_claim) outlives the subshell"
else
	bad "no claim file for $p after \$(port_claim)"
fi

# 8 shells x 20 ports at once: no port twice (each shell lives on a second, so its
# claims are live while the others claim).
for i in $(seq 8); do
	bash -c '. "$1"; for _ in $(seq 20); do port_claim; done; sleep 1' _ "$here/lib/ports.sh" >"$T/got.$i" 2>&1 &
done
wait
sort "$T"/got.* >"$T/all"
n=$(grep -cE '^[0-9]+$' "$T/all")
d=$(sort -u "$T/all" | grep -cE '^[0-9]+$')
if [ "$n" -eq 160 ] && [ "$d" -eq 160 ]; then
	ok "8 parallel shells got 160 distinct ports"
else
	bad "8 parallel shells: got $n ports, $d distinct, want 160 and 160 ($(grep -vE '^[0-9]+$' "$T/all" | head -1))"
fi
# Those shells are gone: their claims are taken over, ours is not.
for f in "$GW_PORT_DIR"/[0-9]*; do echo "$$" >"$f"; done
echo 1 >"$GW_PORT_DIR/$p" # PID 1 (init) is alive and not us
port_release_all
left=$(find "$GW_PORT_DIR" -name '[0-9]*' | wc -l)
if [ "$left" -eq 1 ] && [ -f "$GW_PORT_DIR/$p" ]; then
	ok "port_release_all gives back only this shell's claims"
else
	bad "after port_release_all: $left claim files left, want 1 (another shell's)"
fi
dead=$(bash -c 'echo $$')
rm -f "$GW_PORT_DIR"/[0-9]*
# a stale claim (its shell gone) on every port but one: that one, then the stale ones
read -r min max < <(port_range)
for q in $(seq "$min" "$max"); do echo "$dead" >"$GW_PORT_DIR/$q"; done
echo 1 >"$GW_PORT_DIR/$min"
q=$(port_claim)
if [[ $q =~ ^[0-9]+$ ]] && [ "$q" != "$min" ] && [ "$(cat "$GW_PORT_DIR/$q")" = "$$" ]; then
	ok "a claim whose shell is gone is taken over ($q)"
else
	bad "stale claims: got '$q'"
fi

[ "$fails" -eq 0 ] && echo "all checks passed"
exit $((fails != 0))
