#!/usr/bin/env bash
# bench_directory.sh - RCPT decisions per second through the directory check
# (LDAP, a real slapd) with a cold and a warm cache, against the same
# recipients checked by call-ahead (smtp-sink as the internal MTA), same run;
# ratios printed by bench/bench_directory.c.
#   BENCH_RCPTS (default 2000; half of them exist in the directory)
#   BENCH_THREADS (default 4)   GW_BENCH_BUILD_DIR (default build-bench)
# Needs slapd, ldap-utils, postfix (smtp-sink). Everything on loopback; every
# process started here is stopped by PID.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${GW_BENCH_BUILD_DIR:-$top/build-bench}
n=${BENCH_RCPTS:-2000}
threads=${BENCH_THREADS:-4}

cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGW_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench_directory >/dev/null
# shellcheck source-path=SCRIPTDIR source=../test/sh/lib/ports.sh
. "$top/test/sh/lib/ports.sh"
# shellcheck source-path=SCRIPTDIR source=../test/sh/lib/ldap.sh
. "$top/test/sh/lib/ldap.sh"
sink_pid=
# Every status tested: under set -e a failing `wait` (smtp-sink ends by SIGTERM) would skip ldap_stop.
cleanup() {
	if [ -n "$sink_pid" ]; then
		kill "$sink_pid" 2>/dev/null || true
		wait "$sink_pid" 2>/dev/null || true
	fi
	ldap_stop
	port_release_all
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ldap_start
# half of the recipients exist (even numbers), the others are unknown
for ((i = 0; i < n; i += 2)); do
	printf 'dn: uid=user%d,ou=people,%s\nobjectClass: inetOrgPerson\nuid: user%d\ncn: u\nsn: u\nmail: user%d@example.org\n\n' \
		"$i" "$LDAP_BASE" "$i" "$i"
done >"$LDAP_DIR/users.ldif"
ldapadd -x -H "$LDAP_URI" -D "$LDAP_ROOTDN" -w "$LDAP_ROOTPW" -f "$LDAP_DIR/users.ldif" >/dev/null
sink_port=$(port_claim)
smtp-sink -u postfix -c "127.0.0.1:$sink_port" 256 &
sink_pid=$!
for _ in $(seq 100); do
	ss -Hltn "sport = :$sink_port" | grep -q . && break
	sleep 0.1
done
"$build/bench/bench_directory" "$LDAP_URI/dc=example,dc=org?dn?sub?(|(mail={rcpt})(mailLocalAddress={rcpt}))" \
	"$sink_port" "$n" "$threads"
