#!/usr/bin/env bash
# proxy_lab.sh - gw-proxy end to end in network namespaces: two tenant MTAs
# behind an nftables redirect, the proxy with an outbound address pool, and
# the Internet's destinations (docs/howto-proxy.md, "The lab").
#
#   tenants' LAN, bridge brt (ns TAG-sw), 10.30.0.0/24, default route via the proxy:
#     t1   10.30.0.2   tenant "t1": Postfix, own queue, sends by transport_maps
#     t2   10.30.0.3   tenant "t2": Postfix, own queue       to the addresses below
#     px   10.30.0.1   nftables: port 25 arriving on t0 -> gw-proxy's redirect_listen
#   Internet, bridge brx, 10.31.0.0/24:
#     px   10.31.0.11 .12 .13  the pool (t1: .11 .12, t2: .13, by tenant_map)
#     mx     10.31.0.25  Postfix MX for mx.lab, STARTTLS with a certificate made now
#     sink   10.31.0.26  smtp-sink for sink.lab
#     tarpit 10.31.0.27  every reply one byte every 250 ms (lib/fake_mx.py)
#     bl     10.31.0.28  554 5.7.1 "listed at" to RCPT from 10.31.0.11 (lib/fake_mx.py)
# Checked, each with a bounded wait:
#   1 t1's mail to mx.lab delivered with TLS on the outside leg (the MX's log and
#     Received header, the session log's tls_out) and plain on the tenant leg
#     (tls_in="none"; t1 would use STARTTLS, smtp_tls_security_level = may, and saw none);
#   2 bl.lab refuses RCPT from 10.31.0.11: the transaction's first RCPT, so the
#     address is retired for bl.lab (log, stats, "retired") and the same
#     session connects again from 10.31.0.12, where the message is delivered
#     (the destination's record): t1 sees neither the 554 nor a 451 (its log
#     has no deferral, no bounce); its next message goes out from 10.31.0.12;
#   3 the paper's experiment: t1 sends PROXY_LAB_RATE messages a second to
#     sink.lab throughout; after PROXY_LAB_WINDOWS windows alone, t2 queues
#     PROXY_LAB_TARPIT messages to tarpit.lab. Both tenants' deliveries are
#     printed per window (PROXY_LAB_WINDOW seconds, 10; 60 for the paper's
#     minutes); t1's total with t2's tarpit load must be at least
#     PROXY_LAB_MIN_RATIO (0.9) of its total alone; t1's queue empties while
#     t2's tarpit mail waits in t2's queue (postqueue -p); the proxy marked the
#     tarpit.
# Exits 77 (skipped) without root, network namespaces, nft, smtp-sink or
# openssl. Every process is stopped by its PID and the namespaces deleted on
# any exit; LAB_KEEP=1 keeps the lab directory.
set -uo pipefail
build=${1:?usage: proxy_lab.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../fleet/lib/fleet.sh
. "$here/../fleet/lib/fleet.sh"

WINDOW=${PROXY_LAB_WINDOW:-10}
WINDOWS=${PROXY_LAB_WINDOWS:-3}
RATE=${PROXY_LAB_RATE:-2}
TARPIT=${PROXY_LAB_TARPIT:-10}
MIN_RATIO=${PROXY_LAB_MIN_RATIO:-0.9}
proxy=$build/proxy/gw-proxy
[ -x "$proxy" ] || { echo "FAIL: $proxy not built" >&2; exit 1; }
if ! why=$(fleet_available); then echo "SKIP: $why"; exit 77; fi
for t in nft smtp-sink openssl sendmail; do
	command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps)"; exit 77; }
done

# The lab's hosts, in place of the fleet's (fleet.sh looks every host up here).
FLEET_TAG=pl$$
# shellcheck disable=SC2034 # read by fleet_down
FLEET_POSTFIX="t1 t2 mx"
fleet_ns() {
	case $1 in
	sw | t1 | t2 | px | mx | sink | tarpit | bl) echo "$FLEET_TAG-$1" ;;
	*) fleet_log "no host $1"; return 1 ;;
	esac
}
fleet_addr() {
	case $1 in
	px) echo 10.30.0.1 ;; t1) echo 10.30.0.2 ;; t2) echo 10.30.0.3 ;;
	mx) echo 10.31.0.25 ;; sink) echo 10.31.0.26 ;; tarpit) echo 10.31.0.27 ;; bl) echo 10.31.0.28 ;;
	esac
}
POOL=(10.31.0.11 10.31.0.12 10.31.0.13)

stop() {
	local n
	# the destinations first: gw-proxy drains its sessions on SIGTERM (up to reply_timeout),
	# and those with the tarpit end only when the tarpit goes
	if [ -n "$LAB" ] && [ -f "$LAB/bg" ]; then
		for n in tarpit bl sink proxy; do lab_bg_stop "$n"; done
	fi
	fleet_down # Postfix instances by PID, then the namespaces
}
trap stop EXIT
fail() {
	echo "FAIL: $*" >&2
	[ -f "$LAB/proxy.log" ] && tail -n 15 "$LAB/proxy.log" >&2
	[ -f "$LAB/session.log" ] && tail -n 25 "$LAB/session.log" >&2
	exit 1
}
wait_for() { fleet_wait "$@"; } # SECONDS CMD...: polled every 0.2 s

# ---- the network ----------------------------------------------------------------------------------
fleet_init || fail "fleet_init"
net_up() {
	local h ns sw
	for h in sw t1 t2 px mx sink tarpit bl; do
		ns=$(fleet_ns "$h")
		ip netns add "$ns" || return 1
		echo "$ns" >>"$LAB/namespaces"
		ip -n "$ns" link set lo up
	done
	sw=$(fleet_ns sw)
	for br in brt brx; do ip -n "$sw" link add "$br" type bridge && ip -n "$sw" link set "$br" up || return 1; done
	fleet_plug t1 t0 brt 10.30.0.2 && fleet_plug t2 t0 brt 10.30.0.3 &&
		fleet_plug px t0 brt 10.30.0.1 && fleet_plug px x0 brx "${POOL[@]}" || return 1
	for h in mx sink tarpit bl; do fleet_plug "$h" x0 brx "$(fleet_addr "$h")" || return 1; done
	# the tenants reach the Internet only through the proxy host (which does not forward:
	# a port-25 connection is the proxy's, anything else goes nowhere)
	for h in t1 t2; do ip -n "$(fleet_ns "$h")" route add default via 10.30.0.1 || return 1; done
	ip netns exec "$(fleet_ns px)" nft -f - <<'N' || return 1
table ip smtp_intercept {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "t0" tcp dport 25 redirect to :10025
  }
}
N
	for h in t1 t2; do wait_for 20 fleet_reach "$h" 10.30.0.1 || { fleet_log "$h cannot reach the proxy"; return 1; }; done
	for h in mx sink tarpit bl; do
		wait_for 20 fleet_reach px "$(fleet_addr "$h")" || { fleet_log "the proxy cannot reach $h"; return 1; }
	done
}
net_up || fail "the network did not come up"

# ---- destinations -------------------------------------------------------------------------------
fleet_dest_setup mx u@mx.lab || fail "mx setup"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=mx.lab.invalid -days 2 \
	-keyout "$LAB/mx/etc/key.pem" -out "$LAB/mx/etc/cert.pem" >/dev/null 2>&1 || fail "openssl req"
postconf -c "$LAB/mx/etc" -e "smtpd_tls_security_level = may" "smtpd_tls_cert_file = $LAB/mx/etc/cert.pem" \
	"smtpd_tls_key_file = $LAB/mx/etc/key.pem" "smtpd_tls_loglevel = 1" "smtpd_tls_received_header = yes"
echo "tlsmgr unix - - n 1000? 1 tlsmgr" >>"$LAB/mx/etc/master.cf"
fleet_postfix_start mx || fail "the MX did not start"

dest_listening() { ip netns exec "$(fleet_ns "$1")" ss -Htln | grep -q " $(fleet_addr "$1"):25 "; }
lab_bg sink ip netns exec "$(fleet_ns sink)" smtp-sink -u nobody "$(fleet_addr sink):25" 256
: >"$LAB/tarpit.rec"
: >"$LAB/bl.rec"
lab_bg tarpit ip netns exec "$(fleet_ns tarpit)" /usr/bin/python3 "$here/lib/fake_mx.py" tarpit \
	"$(fleet_addr tarpit):25" "$LAB/tarpit.rec" 0.25
lab_bg bl ip netns exec "$(fleet_ns bl)" /usr/bin/python3 "$here/lib/fake_mx.py" blocklist \
	"$(fleet_addr bl):25" "$LAB/bl.rec" 10.31.0.11
for h in sink tarpit bl; do wait_for 20 dest_listening "$h" || fail "$h does not listen"; done

# ---- the proxy ----------------------------------------------------------------------------------
printf '%s\n' "# tenant network, name, its part of the pool" "10.30.0.2/32 t1 10.31.0.11,10.31.0.12" \
	"10.30.0.3/32 t2 10.31.0.13" >"$LAB/tenants"
c=$LAB/gw-proxy.conf
cp "$LAB_SRC/etc/gw-proxy.conf" "$c"
lab_conf_set "$c" state_file "" # memory only: never the system's state file
lab_conf_set "$c" listen ""
lab_conf_set "$c" redirect_listen "[0.0.0.0]:10025"
lab_conf_set "$c" control_socket "$LAB/control"
lab_conf_set "$c" pid_file ""
lab_conf_set "$c" session_log "$LAB/session.log"
lab_conf_set "$c" log stderr
lab_conf_set "$c" hostname proxy.lab.invalid
lab_conf_set "$c" helo_name proxy.lab.invalid
lab_conf_set "$c" tls may
lab_conf_set "$c" connect_timeout 5s
pool=${POOL[*]}
lab_conf_set "$c" pool "${pool// /, }"
lab_conf_set "$c" tenant_map "$LAB/tenants"
lab_conf_set "$c" tarpit_delay 2s
"$proxy" -n -c "$c" >"$LAB/proxy-n.log" 2>&1 || fail "-n refused the lab's configuration: $(cat "$LAB/proxy-n.log")"
lab_bg proxy ip netns exec "$(fleet_ns px)" "$proxy" -f -c "$c"
proxy_listening() { ip netns exec "$(fleet_ns px)" ss -Htln "sport = :10025" | grep -q .; }
wait_for 20 proxy_listening || fail "gw-proxy does not listen"
ctl() { "$proxy" -C "$LAB/control" "$@"; }

# ---- the tenants ----------------------------------------------------------------------------------
tenant_setup() {   # NAME
	local n=$1 d=$LAB/$1
	fleet_instance "$n"
	echo "tlsmgr unix - - n 1000? 1 tlsmgr" >>"$d/etc/master.cf"
	printf '%s\n' "mx.lab smtp:[10.31.0.25]:25" "sink.lab smtp:[10.31.0.26]:25" \
		"tarpit.lab smtp:[10.31.0.27]:25" "bl.lab smtp:[10.31.0.28]:25" >"$d/transport"
	{
		fleet_main_cf "$n"
		# the sender's own mailbox: bounces stay in the tenant
		fleet_mailboxes "$n" "s@$n.lab"
		cat <<EOF
# a tenant MTA: its own queue, mail out by the destinations' addresses (the
# proxy host redirects port 25); it would use STARTTLS if it were offered
transport_maps = texthash:$d/transport
smtp_tls_security_level = may
smtp_tls_loglevel = 1
EOF
	} >"$d/etc/main.cf"
	fleet_postfix_start "$n"
}
tenant_setup t1 || fail "tenant t1 did not start"
tenant_setup t2 || fail "tenant t2 did not start"

send() {   # TENANT RCPT [SUBJECT]: one message into TENANT's queue (sendmail, pickup)
	printf 'Subject: %s\nFrom: s@%s.lab\nTo: %s\n\nproxy lab\n' "${3:-lab}" "$1" "$2" |
		sendmail -C "$LAB/$1/etc" -f "s@$1.lab" "$2"
}
sent() { grep -c "to=<$2>.*status=sent" "$LAB/$1/maillog" 2>/dev/null; } # TENANT RCPT
sent_over() { [ "$(sent "$1" "$2")" -gt "$3" ]; }
queue() { fleet_queue "$1"; }
queue_empty() { [ "$(queue "$1")" -eq 0 ]; }

# ---- 1. TLS outside, plain inside -----------------------------------------------------------------
send t1 u@mx.lab "tls check" || fail "t1 took no message"
wait_for 60 sent_over t1 u@mx.lab 0 || fail "t1's message to mx.lab not delivered: $(grep 'u@mx.lab' "$LAB/t1/maillog" | tail -2)"
# t1 logs "sent" at the MX's 250; the MX's own delivery into the mailbox comes after it
in_mx_mailbox() { grep -ls "^Subject: tls check" "$LAB"/mx/mail/u@mx.lab/new/* 2>/dev/null | grep -q .; }
wait_for 30 in_mx_mailbox || fail "not in the MX's mailbox"
f=$(grep -ls "^Subject: tls check" "$LAB"/mx/mail/u@mx.lab/new/* | head -1)
grep -q "TLS connection established from .*\[10\.31\.0\.11\]" "$LAB/mx/maillog" || fail "the MX saw no TLS from 10.31.0.11"
grep -qE "^Received: from proxy\.lab\.invalid .*\[10\.31\.0\.11\]" "$f" || fail "Received: $(grep -A3 '^Received:' "$f" | head -4)"
grep -qE "^[[:space:]]+\(using TLSv1\.[23] with cipher" "$f" || fail "the MX's Received header shows no TLS"
wait_for 20 grep -qE ' == client=\[10\.30\.0\.2\]:[0-9]+ tenant=t1 .*dest=\[10\.31\.0\.25\]:25 .* tls_out="TLSv1\.[23] [^"]+" tls_in="none"' \
	"$LAB/session.log" || fail "no session summary with TLS out and plain in"
grep -q "TLS connection established" "$LAB/t1/maillog" && fail "the tenant leg is encrypted"
grep -q "^smtp_tls_security_level = may" "$LAB/t1/etc/main.cf" || fail "the tenant does not try STARTTLS"
echo "ok 1: t1 -> mx.lab delivered, TLS on the outside leg ($(grep -oE 'tls_out="[^"]+"' "$LAB/session.log" | head -1)), plain on the tenant leg"

# ---- 2. a blocklisted pool address retired --------------------------------------------------------
send t1 u@bl.lab "blocklisted" || fail "t1 took no message"
wait_for 90 sent_over t1 u@bl.lab 0 || fail "the first bl.lab message not delivered: $(grep 'u@bl.lab' "$LAB/t1/maillog" | tail -2)"
grep -q "to=<u@bl.lab>.*status=bounced" "$LAB/t1/maillog" && fail "t1 bounced: $(grep 'status=bounced' "$LAB/t1/maillog" | tail -1)"
grep -q "to=<u@bl.lab>.*status=deferred" "$LAB/t1/maillog" &&
	fail "t1 saw the verdict: $(grep 'u@bl.lab.*status=deferred' "$LAB/t1/maillog" | head -1)"
grep -qx "delivered from 10.31.0.12" "$LAB/bl.rec" || fail "bl.lab's record: $(tr '\n' '|' <"$LAB/bl.rec")"
! grep -q "delivered from 10.31.0.11" "$LAB/bl.rec" || fail "delivered from the blocklisted address"
grep -q 'pool address=10.31.0.11 destination=10.31.0.28 retired=' "$LAB/proxy.log" ||
	fail "10.31.0.11 not retired for 10.31.0.28"
grep -q 'pool address=10.31.0.11 destination=10.31.0.28 tenant=t1 action=reconnect' "$LAB/proxy.log" ||
	fail "no reconnection in the proxy's log"
ctl retired | grep -qE '^10\.31\.0\.11 10\.31\.0\.28 retired=' || fail "retired: $(ctl retired)"
ctl stats | grep -q ' pool_retired=1 pool_all_retired=0 pool_deferred=0 pool_reconnected=1 ' || fail "stats: $(ctl stats)"
send t1 u@bl.lab "second" || fail "t1 took no message"
wait_for 60 sent_over t1 u@bl.lab 1 || fail "the second bl.lab message not delivered: $(grep 'u@bl.lab' "$LAB/t1/maillog" | tail -2)"
[ "$(grep -cx "delivered from 10.31.0.12" "$LAB/bl.rec")" -eq 2 ] || fail "bl.lab's record: $(tr '\n' '|' <"$LAB/bl.rec")"
echo "ok 2: bl.lab refused 10.31.0.11; the session moved to 10.31.0.12 unseen (no deferral, no bounce); 10.31.0.11 retired; the next message went out from 10.31.0.12 too"

# ---- 3. the paper's experiment: a tarpit tenant beside a steady one -------------------------------
now_ms() { date +%s%3N; }
sleep_until() {   # EPOCH_MS
	local d=$(($1 - $(now_ms)))
	[ "$d" -gt 0 ] && sleep "$((d / 1000)).$(printf '%03d' $((d % 1000)))"
	return 0
}
tarpit_sent() { grep -c "to=<u@tarpit.lab>.*status=sent" "$LAB/t2/maillog" 2>/dev/null; }
wait_for 30 queue_empty t1 || fail "t1's queue not empty before the experiment"
a_before=$(sent t1 u@sink.lab) b_before=$(tarpit_sent)
t0=$(now_ms) k=0 total_alone=0 total_tarpit=0
printf '%-7s %-7s %12s %12s %8s %8s   (windows of %ss; t1 offers %s msg/s to sink.lab)\n' \
	window phase t1-delivered t2-delivered t1-queue t2-queue "$WINDOW" "$RATE"
for ((w = 1; w <= 2 * WINDOWS; w++)); do
	phase=alone
	if [ "$w" -gt "$WINDOWS" ]; then
		phase=tarpit
		if [ "$w" -eq $((WINDOWS + 1)) ]; then
			for ((i = 1; i <= TARPIT; i++)); do send t2 u@tarpit.lab "tarpit $i" || fail "t2 took no message"; done
		fi
	fi
	for ((s = 0; s < WINDOW; s++)); do
		for ((i = 0; i < RATE; i++)); do send t1 u@sink.lab "steady" || fail "t1 took no message"; done
		k=$((k + 1))
		sleep_until $((t0 + k * 1000))
	done
	a=$(sent t1 u@sink.lab) b=$(tarpit_sent)
	da=$((a - a_before)) db=$((b - b_before))
	a_before=$a b_before=$b
	if [ "$phase" = alone ]; then total_alone=$((total_alone + da)); else total_tarpit=$((total_tarpit + da)); fi
	printf '%-7s %-7s %12s %12s %8s %8s\n' "$w" "$phase" "$da" "$db" "$(queue t1)" "$(queue t2)"
done
offered=$((WINDOWS * WINDOW * RATE))
ratio=$(awk -v a="$total_alone" -v b="$total_tarpit" 'BEGIN { printf "%.2f", a ? b / a : 0 }')
echo "t1 delivered per window: $(awk -v t="$total_alone" -v n="$WINDOWS" 'BEGIN{printf "%.1f", t/n}') alone," \
	"$(awk -v t="$total_tarpit" -v n="$WINDOWS" 'BEGIN{printf "%.1f", t/n}') beside t2's tarpit load" \
	"(ratio $ratio, offered $((WINDOW * RATE)) per window)"
[ "$total_alone" -ge $((offered * 8 / 10)) ] || fail "t1 alone delivered $total_alone of $offered: the lab is too slow to measure"
awk -v r="$ratio" -v m="$MIN_RATIO" 'BEGIN { exit !(r >= m) }' ||
	fail "t1's rate beside the tarpit is $ratio of its rate alone (want >= $MIN_RATIO)"
wait_for 60 queue_empty t1 || fail "t1's queue did not empty: $(queue t1)"
pq=$(postqueue -c "$LAB/t2/etc" -p)
waiting=$(grep -c "^[[:space:]]*u@tarpit.lab$" <<<"$pq")
[ "$waiting" -ge 1 ] || fail "t2's queue holds no tarpit mail: $pq"
[ "$(tarpit_sent)" -lt "$TARPIT" ] || fail "the tarpit took all of t2's mail at once"
echo "ok 3: t1's queue is empty, t2's holds $waiting of its $TARPIT tarpit messages (postqueue -p):"
grep -E "^[0-9A-F]+[*!]? " <<<"$pq" | head -3 | sed 's/^/    /'
grep -q "connect from 10.31.0.13" "$LAB/tarpit.rec" || fail "t2's tarpit sessions did not go out from its address 10.31.0.13"
marked_tarpit() { ctl marked | grep -qE '^10\.31\.0\.27 tarpit=[1-9]'; }
wait_for 30 marked_tarpit || fail "the proxy did not mark the tarpit: $(ctl marked)"
echo "ok 3: the proxy marked 10.31.0.27 as a tarpit ($(ctl marked | head -1))"
echo PASS
