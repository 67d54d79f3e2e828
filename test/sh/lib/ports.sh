# shellcheck shell=bash
# ports.sh - loopback TCP ports for tests and benchmarks that must name a port
# before something listens on it. Source it (bash); it defines functions only.
#
#   port_claim          print a port that no other test holds and nothing uses,
#                       claimed for this shell ($$) until port_release_all
#   port_release_all    give back every port this shell claimed
#
# Ports come from 20000 up to just below Linux's ephemeral range
# (net.ipv4.ip_local_port_range, 32768 by default), so no outgoing connection
# (a load test's thousands of them) can take one as its source port. A claim
# is a file $GW_PORT_DIR/PORT holding the claiming shell's PID, made under an
# flock on $GW_PORT_DIR/.lock, so tests running in parallel never get the same
# port; `$(port_claim)` works, as the claim lives in the file, not in a shell
# variable a subshell would lose. A claim whose shell is gone (a test killed
# with SIGKILL) is taken over. Does not defend against: programs outside the
# test suite listening in 20000-32767 after the check (ss) and before the test
# binds, and PID reuse keeping a dead test's claim until the new process ends.

GW_PORT_DIR=${GW_PORT_DIR:-/tmp/gw-test-ports}

port_range() {   # prints "MIN MAX"
	local lo
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
	[[ $lo =~ ^[0-9]+$ ]] && [ "$lo" -gt 21000 ] || lo=32768
	echo "20000 $((lo - 1))"
}

port_claim() {
	local min max p f owner fd
	read -r min max < <(port_range)
	mkdir -p "$GW_PORT_DIR" && chmod 1777 "$GW_PORT_DIR" 2>/dev/null
	exec {fd}>>"$GW_PORT_DIR/.lock" || return 1
	if ! flock -w 30 "$fd"; then
		exec {fd}>&-
		echo "ports: $GW_PORT_DIR/.lock held for 30 s" >&2
		return 1
	fi
	for _ in $(seq 500); do
		p=$((min + (RANDOM * 32768 + RANDOM) % (max - min + 1)))
		f=$GW_PORT_DIR/$p
		if [ -e "$f" ]; then
			owner=$(cat "$f" 2>/dev/null)
			[[ $owner =~ ^[0-9]+$ ]] && kill -0 "$owner" 2>/dev/null && continue
		fi
		[ -z "$(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null)" ] || continue
		echo "$$" >"$f"
		exec {fd}>&-
		echo "$p"
		return 0
	done
	exec {fd}>&-
	echo "ports: no free port in $min-$max" >&2
	return 1
}

port_release_all() {
	local f
	for f in "$GW_PORT_DIR"/[0-9]*; do
		[ -f "$f" ] && [ "$(cat "$f" 2>/dev/null)" = "$$" ] && rm -f "$f"
	done
	return 0
}
