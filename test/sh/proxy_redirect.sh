#!/usr/bin/env bash
# gw-proxy behind an nftables redirect, in two network namespaces of its own:
#   tenant-TAG  10.25.0.2 (the tenant MTA: swaks), default route via 10.25.0.1
#   proxy-TAG   10.25.0.1, nftables "tcp dport 25 redirect to :10025" on the
#               tenant side; gw-proxy on redirect_listen [0.0.0.0]:10025; the
#               destination 192.0.2.25:25 (smtp-sink) on its loopback
# Checked: the tenant's connection to 192.0.2.25:25 is relayed to that very
# destination (SO_ORIGINAL_DST), its mail accepted with the sink's 250; a
# destination that refuses connections (192.0.2.26:25) is a 421 greeting; a
# connection made straight to the proxy's port (not redirected) is refused
# with 421 and counted. Needs root, ip, nft, swaks, smtp-sink.
set -euo pipefail
bindir=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/lab.sh
. "$here/lib/lab.sh"
proxy=$bindir/proxy/gw-proxy
[ -x "$proxy" ] || { echo "FAIL: $proxy not built" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (network namespaces)" >&2; exit 1; }
command -v nft >/dev/null || { echo "FAIL: nft missing (scripts/install-deps)" >&2; exit 1; }
lab_init
tag=${LAB##*.}
NS_T=tenant-$tag NS_P=proxy-$tag
stop() {
	lab_stop_all # processes first: a namespace lives on while a process is in it
	ip netns del "$NS_T" 2>/dev/null || true
	ip netns del "$NS_P" 2>/dev/null || true
}
trap stop EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$LAB/proxy.log" ] && tail -n 20 "$LAB/proxy.log" >&2
	[ -f "$LAB/session.log" ] && tail -n 30 "$LAB/session.log" >&2
	exit 1
}
in_t() { ip netns exec "$NS_T" "$@"; }
in_p() { ip netns exec "$NS_P" "$@"; }
wait_listen() {   # PORT: until something listens on PORT in the proxy namespace (10 s)
	for _ in $(seq 100); do
		[ -n "$(in_p ss -Htln "sport = :$1")" ] && return 0
		sleep 0.1
	done
	return 1
}

ip netns add "$NS_T"
ip netns add "$NS_P"
ip link add vproxy netns "$NS_P" type veth peer name vtenant netns "$NS_T"
ip -n "$NS_P" link set lo up
ip -n "$NS_P" addr add 10.25.0.1/24 dev vproxy
ip -n "$NS_P" addr add 192.0.2.25/32 dev lo
ip -n "$NS_P" addr add 192.0.2.26/32 dev lo
ip -n "$NS_P" link set vproxy up
ip -n "$NS_T" link set lo up
ip -n "$NS_T" addr add 10.25.0.2/24 dev vtenant
ip -n "$NS_T" link set vtenant up
ip -n "$NS_T" route add default via 10.25.0.1
# Only what arrives from the tenants is redirected: the proxy's own connections to port 25 leave untouched.
in_p nft -f - <<'N'
table ip smtp_intercept {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "vproxy" tcp dport 25 redirect to :10025
  }
}
N
for _ in $(seq 50); do
	ip -n "$NS_T" link show vtenant | grep -q 'state UP' && ip -n "$NS_P" link show vproxy | grep -q 'state UP' && break
	sleep 0.1
done

lab_bg sink ip netns exec "$NS_P" smtp-sink -u "$(id -un)" 192.0.2.25:25 100
wait_listen 25 || fail "smtp-sink does not listen"

c=$LAB/gw-proxy.conf
cp "$LAB_SRC/etc/gw-proxy.conf" "$c"
lab_conf_set "$c" state_file "" # memory only: never the system's state file
lab_conf_set "$c" listen ""
lab_conf_set "$c" redirect_listen "[0.0.0.0]:10025"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file "$LAB/gw-proxy.pid"
lab_conf_set "$c" session_log "$LAB/session.log"
lab_conf_set "$c" log stderr
lab_conf_set "$c" tls none
lab_conf_set "$c" connect_timeout 5s
"$proxy" -n -c "$c" >/dev/null || fail "-n refused the test configuration"
lab_bg proxy ip netns exec "$NS_P" "$proxy" -f -c "$c"
wait_listen 10025 || fail "gw-proxy does not listen"

# 1. redirected to the destination the tenant asked for
timeout 60 ip netns exec "$NS_T" swaks -4 --server 192.0.2.25 --port 25 --helo tenant.test \
	--from s@tenant.test --to r@dest.test --timeout 40 >"$LAB/t1" 2>&1 || true
grep -q "^<- *250 2.0.0 Ok" "$LAB/t1" || fail "through the redirect: $(grep '^<' "$LAB/t1" | tail -3)"
grep -qE ' \|> session from \[10\.25\.0\.2\]:[0-9]+ to \[192\.0\.2\.25\]:25$' "$LAB/session.log" ||
	fail "the session log does not name the original destination"
echo "ok: the tenant's connection to 192.0.2.25:25 relayed there, 250 from the destination"

# 2. the original destination refuses connections: 421 at the greeting
timeout 60 ip netns exec "$NS_T" swaks -4 --server 192.0.2.26 --port 25 --helo tenant.test \
	--from s@tenant.test --to r@dest.test --timeout 40 >"$LAB/t2" 2>&1 || true
grep -q "^<\*\* *421 4.3.2 .*cannot reach \[192.0.2.26\]:25: connection refused" "$LAB/t2" ||
	fail "unreachable destination: $(grep '^<' "$LAB/t2" | tail -3)"
echo "ok: an unreachable original destination is a 421 greeting"

# 3. straight to the proxy's port: no destination, refused
timeout 60 ip netns exec "$NS_T" swaks -4 --server 10.25.0.1 --port 10025 --helo tenant.test \
	--from s@tenant.test --to r@dest.test --timeout 40 >"$LAB/t3" 2>&1 || true
grep -q "^<\*\* *421 4.3.2 .*not a redirected connection" "$LAB/t3" ||
	fail "direct connection: $(grep '^<' "$LAB/t3" | tail -3)"
stats=$("$proxy" -C "$LAB/control" stats)
grep -q "refused_not_redirected=1 " <<<"$stats" || fail "stats: $stats"
grep -q "messages=1 " <<<"$stats" || fail "stats: $stats"
echo "ok: a connection straight to the proxy's port refused ($stats)"
echo PASS
