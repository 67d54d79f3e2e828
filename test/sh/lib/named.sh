# shellcheck shell=bash
# named.sh - a throw-away authoritative BIND 9 (named -g) on 127.0.0.1:PORT,
# UDP and TCP, no recursion, for the DNS tests. Source it (bash).
#
#   named_start DIR     write DIR/named.conf and the zones below, start named,
#                       wait (bounded) until it answers; sets NAMED_PORT, NAMED_PID,
#                       NAMED_LOG. Retries on another port when the one picked is taken.
#   named_stop          stop it by PID (SIGTERM, bounded wait, SIGKILL)
#
# Zones (the A/AAAA records are loopback addresses, so a test peer can listen there):
#   example.org      MX 20 mx2, MX 10 mx1 (listed in that order), MX 30 mx3
#                    mx1 A 127.0.0.11, mx2 A 127.0.0.12, mx3 AAAA ::1
#                    a-only A 127.0.0.14 (no MX: implicit MX)
#                    peer A 127.0.0.1, peer6 AAAA ::1, dual A 127.0.0.16 + AAAA ::1
#                    nothing (TXT only: no MX, no address)
#                    mail MX 10 peer, mail6 MX 10 peer6 (MX hosts a test peer listens on)
#                    eq MX 10 mx1, MX 10 mx2 (equal preference)
#   nullmx.example   MX 0 . (RFC 7505)
#   broken.example   a zone whose file does not load: every query gets SERVFAIL
# Ports are picked in 12000-31999 (below the ephemeral range), checked free with ss,
# and named itself must hold the port before the test uses it.
# Needs: named, named-checkconf, dig (bind9, bind9-utils, bind9-dnsutils), ss.

NAMED_PID=
NAMED_PORT=
NAMED_LOG=

_named_files() {
	local dir=$1
	cat >"$dir/named.conf" <<CONF
options {
    directory "$dir";
    pid-file "$dir/named.pid";
    session-keyfile "$dir/session.key";
    managed-keys-directory "$dir";
    listen-on port $NAMED_PORT { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
    allow-transfer { none; };
    notify no;
    querylog yes;
};
controls { };
zone "example.org" { type primary; file "$dir/example.org.zone"; };
zone "nullmx.example" { type primary; file "$dir/nullmx.example.zone"; };
zone "broken.example" { type primary; file "$dir/broken.example.zone"; };
CONF
	cat >"$dir/example.org.zone" <<'ZONE'
$TTL 60
@         IN SOA ns1.example.org. hostmaster.example.org. 1 3600 600 86400 60
@         IN NS  ns1.example.org.
ns1       IN A   127.0.0.1
@         IN MX  20 mx2.example.org.
@         IN MX  10 mx1.example.org.
@         IN MX  30 mx3.example.org.
mx1       IN A   127.0.0.11
mx2       IN A   127.0.0.12
mx3       IN AAAA ::1
a-only    IN A   127.0.0.14
peer      IN A   127.0.0.1
peer6     IN AAAA ::1
dual      IN A   127.0.0.16
dual      IN AAAA ::1
nothing   IN TXT "no mail here"
mail      IN MX  10 peer.example.org.
mail6     IN MX  10 peer6.example.org.
eq        IN MX  10 mx1.example.org.
eq        IN MX  10 mx2.example.org.
ZONE
	cat >"$dir/nullmx.example.zone" <<'ZONE'
$TTL 60
@         IN SOA ns1.example.org. hostmaster.example.org. 1 3600 600 86400 60
@         IN NS  ns1.example.org.
@         IN MX  0 .
@         IN A   127.0.0.15
ZONE
	# not a zone file: named logs the error and answers SERVFAIL for the zone
	echo 'this is not a zone file' >"$dir/broken.example.zone"
}

_named_port() {
	local p i
	for i in $(seq 50); do
		p=$((12000 + RANDOM % 20000))
		ss -Hltun "sport = :$p" | grep -q . || { echo "$p"; return 0; }
	done
	return 1
}

named_start() {
	local dir=$1 attempt i
	NAMED_LOG=$dir/named.log
	for attempt in 1 2 3 4 5; do
		NAMED_PORT=$(_named_port) || return 1
		_named_files "$dir"
		# -g: foreground, log to stderr; -4: IPv4 only; as the invoking user
		named -g -4 -c "$dir/named.conf" >"$NAMED_LOG" 2>&1 &
		NAMED_PID=$!
		for i in $(seq 100); do # at most ~10 s
			kill -0 "$NAMED_PID" 2>/dev/null || break
			if ss -Hlunp "sport = :$NAMED_PORT" | grep -q "pid=$NAMED_PID," &&
				[ -n "$(dig @127.0.0.1 -p "$NAMED_PORT" +time=1 +tries=1 +short example.org SOA 2>/dev/null)" ] &&
				grep -q 'running$' "$NAMED_LOG"; then
				return 0
			fi
			sleep 0.1
		done
		named_stop
		echo "named did not come up on port $NAMED_PORT (attempt $attempt)" >&2
		grep -iE 'error|fail|could not' "$NAMED_LOG" | tail -5 >&2
	done
	return 1
}

named_stop() {
	local pid=$NAMED_PID s st=
	[ -n "$pid" ] || return 0
	NAMED_PID=
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do # at most ~10 s; a zombie (Z) is gone, waiting for our wait
		st=
		{ read -r s <"/proc/$pid/stat"; } 2>/dev/null && { s=${s##*) }; st=${s%% *}; }
		case $st in '' | Z) break ;; esac
		sleep 0.1
	done
	case $st in '' | Z) ;; *) kill -KILL "$pid" 2>/dev/null ;; esac
	wait "$pid" 2>/dev/null || true
}
