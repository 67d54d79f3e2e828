#!/usr/bin/env bash
# milter_dns.sh - gw-milter with use_mx = yes and dns_servers pointing at a real
# named on loopback (test/sh/lib/named.sh): a route written as a host name is
# expanded by MX and its MX host's address looked up through that server (IPv4 and
# IPv6), the probe reaches the internal MTA (a gw-fakepeer) there; a null MX,
# NXDOMAIN and SERVFAIL give 451, never 550 and never an unchecked accept; a
# dns_servers entry that is not an address is refused at load, naming file:line; a
# silent resolver gives 451 after dns_timeout; a reload changes the servers.
# Usage: milter_dns.sh BUILD_DIR
# shellcheck source=lib/milter_harness.sh
. "$(dirname "$0")/lib/milter_harness.sh"
# shellcheck source=lib/named.sh
. "$(dirname "$0")/lib/named.sh"
mh_init milter-dns "${1:-}"
mkdir "$T/named"
# named is stopped by PID in the EXIT trap, with the harness's processes.
trap 'named_stop; mh_cleanup' EXIT
named_start "$T/named" || { bad "named did not start"; mh_finish; }
ok "named on 127.0.0.1:$NAMED_PORT"

hello() { printf 'send 220 %s ESMTP fake\nexpect EHLO\nsend 250 %s\nexpect MAIL FROM:<>\nsend 250 2.1.0 ok\n' "$1" "$1"; }
{
	hello mail.example.org
	echo 'expect RCPT TO:<known@mail.example.org>'
	echo 'send 250 2.1.5 ok'
	echo 'expect RCPT TO:<unknown@mail.example.org>'
	echo 'send 550 5.1.1 no such user'
	echo 'expect RSET'
	echo 'send 250 ok'
} >"$T/v4.script"
{
	hello mail6.example.org
	echo 'expect RCPT TO:<known@mail6.example.org>'
	echo 'send 250 2.1.5 ok'
	echo 'expect RSET'
	echo 'send 250 ok'
} >"$T/v6.script"
start_peer v4
start_peer v6 1 -l ::1
DOWN_PORT=$(free_port)

# Host names, not [literals]: each is looked up by MX, the port kept.
{
	echo "mail.example.org   smtp:mail.example.org:$(peer_port v4)"
	echo "mail6.example.org  smtp:mail6.example.org:$(peer_port v6)"
	echo "nullmx.example     smtp:nullmx.example:$DOWN_PORT"
	echo "nx.example.org     smtp:nowhere.example.org:$DOWN_PORT"
	echo "broken.example     smtp:broken.example:$DOWN_PORT"
} >"$T/routes"

# a dns_servers entry that is not an address: refused at load, naming the line
mh_conf bad use_mx=yes dns_servers=ns.example.org
out=$("$MILTER" -n -c "$T/bad.conf" 2>&1)
rc=$?
line=$(grep -n '^dns_servers' "$T/bad.conf" | cut -d: -f1)
[ $rc -ne 0 ] && grep -qF "$T/bad.conf:$line: dns_servers: 'ns.example.org'" <<<"$out"
verdict $? "dns_servers = ns.example.org refused with file:line (exit $rc: $out)"

# Start with a resolver that never answers (a UDP socket nobody reads): the lookup
# timeout, not the 5 s deadline, ends the probe, with 451. Then a reload to named.
python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
time.sleep(300)
' >"$T/silent.port" &
PIDS+=($!)
wait_for 5 test -s "$T/silent.port" || bad "silent DNS server did not start"
mh_conf dns use_mx=yes "dns_servers=127.0.0.1:$(cat "$T/silent.port")" dns_timeout=1s deadline=5s \
	connect_timeout=2s
milter_start dns || mh_finish
cat >"$T/silent.lua" <<'EOF2'
message("192.0.2.9", "QS1", "x@mail.example.org")
EOF2
run_lua silent
expect x@mail.example.org replycode tempfail noroute 451
ms=$(ms_of x@mail.example.org)
[[ $ms =~ ^[0-9]+$ ]] && [ "$ms" -ge 900 ] && [ "$ms" -le 2500 ]
verdict $? "silent resolver: 451 after the 1 s lookup timeout: got ${ms} ms, want 900..2500"

n=$(grep -c 'reload status=ok' "$LOG")
set_key "$CONF" dns_servers "127.0.0.1:$NAMED_PORT"
kill -HUP "$MPID"
wait_for 10 bash -c "[ \$(grep -c 'reload status=ok' '$LOG') -gt $n ]"
verdict $? "reload with dns_servers pointing at named"

cat >"$T/cases.lua" <<'EOF2'
message("192.0.2.1", "QD1", "known@mail.example.org", "unknown@mail.example.org")
message("192.0.2.2", "QD2", "known@mail6.example.org")
message("192.0.2.3", "QD3", "x@nullmx.example")
message("192.0.2.4", "QD4", "x@nx.example.org")
message("192.0.2.5", "QD5", "x@broken.example")
EOF2
run_lua cases

expect known@mail.example.org continue accept new -
expect unknown@mail.example.org replycode reject pooled 550
want_eq "MX host of mail.example.org probed" "$(field "$(logline known@mail.example.org)" route)" \
	"[peer.example.org]:$(peer_port v4)"
expect known@mail6.example.org continue accept new -
want_eq "MX host of mail6.example.org probed" "$(field "$(logline known@mail6.example.org)" route)" \
	"[peer6.example.org]:$(peer_port v6)"
for a in x@nullmx.example x@nx.example.org x@broken.example; do
	expect $a replycode tempfail noroute 451
done
want_eq "the MX queries reached named" \
	"$(grep -cE 'query: (mail|mail6)\.example\.org IN MX' "$NAMED_LOG")" 2

milter_stop
# the peers write what they received when the (pooled) session closes
want_eq "the AAAA-only MX host got the probe over IPv6" \
	"$(peer_seen v6 | tr -d '\r' | grep -c '^RCPT TO:<known@mail6.example.org>')" 1
mh_finish
