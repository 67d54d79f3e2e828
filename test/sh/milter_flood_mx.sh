#!/bin/bash
# milter_flood_mx.sh - the MX switch of etc/hooks/mx-switch, run by gw-milter's
# bounce-flood guard, against a real authoritative BIND 9 on loopback that
# takes TSIG-signed dynamic updates (RFC 2136). Usage: milter_flood_mx.sh BUILD_DIR
#
# Covered: in normal times example.org publishes MX 10 mx1, 20 mx2 with a TTL
# of 86400; a burst of bounces (miltertest) puts gw-milter in high-load mode
# by itself and the hook replaces the set with MX 10 overflow, TTL 300
# (`dig MX` shows it); when the flood is over (calm windows) the hook puts the
# normal set back, TTL 86400. The hook succeeded at its first attempt both
# times (gw-milter's log), and an update without the key is refused by the
# server (the key matters). The hook script is the shipped one, as is.
# Needs named, dig, nsupdate (bind9, bind9-utils, bind9-dnsutils), miltertest.
set -u

# shellcheck source=lib/milter_harness.sh
. "$(dirname "$0")/lib/milter_harness.sh"
mh_init milter-flood-mx "${1:-}"
# shellcheck source=lib/named.sh
. "$SRC/test/sh/lib/named.sh"
for t in named dig nsupdate tsig-keygen; do
	command -v "$t" >/dev/null || { bad "$t not installed (scripts/install-deps)"; mh_finish; }
done

# named.sh's server with this test's zone: example.org, updatable with the TSIG key "gw-mx".
_named_files() {
	local dir=$1
	[ -s "$dir/key.conf" ] || tsig-keygen -a hmac-sha256 gw-mx >"$dir/key.conf"
	cat >"$dir/named.conf" <<CONF
include "$dir/key.conf";
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
};
controls { };
zone "example.org" { type primary; file "$dir/example.org.zone"; allow-update { key "gw-mx"; }; };
CONF
	cat >"$dir/example.org.zone" <<'ZONE'
$TTL 60
@         IN SOA ns1.example.org. hostmaster.example.org. 1 3600 600 86400 60
@         IN NS  ns1.example.org.
ns1       IN A   127.0.0.1
@   86400 IN MX  10 mx1.example.org.
@   86400 IN MX  20 mx2.example.org.
mx1       IN A   127.0.0.11
mx2       IN A   127.0.0.12
overflow  IN A   127.0.0.13
ZONE
}
mkdir -p "$T/dns"
named_start "$T/dns" || { bad "named did not start"; mh_finish; }
PIDS+=("$NAMED_PID")

mx() { dig @127.0.0.1 -p "$NAMED_PORT" +time=2 +tries=1 +short example.org MX | sort | tr '\n' ' ' | sed 's/ $//'; }
mx_ttls() { dig @127.0.0.1 -p "$NAMED_PORT" +time=2 +tries=1 +noall +answer example.org MX | awk '{ print $2 }' | sort -u | tr '\n' ' ' | sed 's/ $//'; }
NORMAL="10 mx1.example.org. 20 mx2.example.org."
OVERFLOW="10 overflow.example.org."

cat >"$T/mx.conf" <<EOF2
MX_ZONE=example.org
MX_SERVER=127.0.0.1
MX_PORT=$NAMED_PORT
MX_KEYFILE=$T/dns/key.conf
MX_NORMAL="10 mx1.example.org., 20 mx2.example.org."
MX_OVERFLOW="10 overflow.example.org."
MX_NORMAL_TTL=86400
MX_OVERFLOW_TTL=300
MX_TIMEOUT=5
EOF2
want_eq "before: the normal MX set" "$(mx)" "$NORMAL"

# Without the key the server refuses the same update.
out=$(printf 'server 127.0.0.1 %s\nzone example.org.\nupdate delete example.org. MX\nsend\n' "$NAMED_PORT" | nsupdate -t 5 2>&1)
check "an update without the key is refused ($out)" grep -q REFUSED <<<"$out"
want_eq "the refused update changed nothing" "$(mx)" "$NORMAL"

echo "example.com smtp:[127.0.0.1]:$(free_port)" >"$T/routes"
mh_conf milter flood_guard=yes flood_store= flood_window=10s flood_floor_bounce=10 flood_calm_windows=1 \
	flood_baseline_windows=100 "flood_hook_command=$SRC/etc/hooks/mx-switch $T/mx.conf" flood_hook_timeout=20s
milter_start milter || mh_finish
wait_for 10 test -S "$CTL" || bad "no control socket $CTL"

{
	for i in $(seq 1 30); do
		echo "local c = open(\"203.0.113.$i\")"
		echo "check(mt.macro(c, SMFIC_MAIL, \"i\", \"B$i\"), \"macro\")"
		echo "check(mt.mailfrom(c, \"<>\"), \"mailfrom\")"
		echo "mt.disconnect(c)"
	done
} >"$T/flood.lua"
run_lua flood
check "the flood puts gw-milter in high-load mode" wait_for 20 bash -c "'$MILTER' -C '$CTL' mode | grep -q '^ok mode=high'"
check "dig MX shows the overflow MX" wait_for 30 bash -c "[ \"\$(dig @127.0.0.1 -p $NAMED_PORT +short example.org MX)\" = '$OVERFLOW' ]"
want_eq "overflow MX TTL" "$(mx_ttls)" 300
check "calm windows end high-load mode" wait_for 60 bash -c "'$MILTER' -C '$CTL' mode | grep -q '^ok mode=normal'"
check "dig MX shows the normal set again" wait_for 30 bash -c "[ \"\$(dig @127.0.0.1 -p $NAMED_PORT +short example.org MX | sort | tr '\n' ' ')\" = '$NORMAL ' ]"
want_eq "normal MX TTL" "$(mx_ttls)" 86400
want_eq "hook runs that succeeded at the first attempt" \
	"$(grep -c 'flood_hook kind=command mode=[a-z]* status=ok attempt=1' "$LOG")" 2
check "the hook's output is in the log" grep -q 'flood_hook kind=command mode=high status=ok attempt=1 output="mx-switch: example.org MX set to the high list' "$LOG"
want_eq "hook failures" "$(grep -c 'flood_hook.*status=failed' "$LOG")" 0
milter_stop
named_stop
mh_finish
