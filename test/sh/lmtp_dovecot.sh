#!/usr/bin/env bash
# gw-send against a real Dovecot LMTP server started by this test on a free
# loopback port (and a unix socket), no systemd, passwd-file users:
#   - known users get the message in their maildirs (one copy each);
#   - an unknown user is refused at RCPT (550 5.1.1);
#   - with the quota plugin (maildir quota, a tiny quota_rule for one user,
#     lmtp_rcpt_check_quota = no so the check happens at DATA), that user fails
#     at DATA while the others in the same message are delivered: LMTP's one
#     reply per recipient, seen through gw-send --json;
#   - the same over LMTP on a unix socket, and exit 0 when all are delivered;
#   - 10,000 recipients in one transaction over the unix socket (p+1 ...
#     p+10000, one passdb user by recipient_delimiter, which Dovecot proxies
#     to smtp-sink -L so delivering costs nothing): Dovecot answers each RCPT
#     before it reads the next, so a client that writes the whole envelope
#     before reading stalls both sides until the reply timeout; every
#     recipient must get its own 250, in order, well within that timeout.
# Skips (exit 0 with a note) when Dovecot is not installed. Needs root
# (Dovecot drops to the users' uid). Everything it starts is stopped by PID.
set -euo pipefail
bindir=$1
gwsend=$bindir/lmtp/gw-send
[ -x "$gwsend" ] || { echo "FAIL: $gwsend not built" >&2; exit 1; }
if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/lmtp ]; then
  echo "FAIL: dovecot-core and dovecot-lmtpd are not installed (scripts/install-deps)"; exit 1
fi
[ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root to run Dovecot"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gw-lmtp-dovecot.XXXXXX")
chmod 755 "$work"
dv_pid=
sink_pid=
cleanup() {
  if [ -n "$sink_pid" ]; then kill "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; fi
  if [ -n "$dv_pid" ]; then
    kill -TERM "$dv_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$dv_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$dv_pid" 2>/dev/null || true
    wait "$dv_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  port_release_all
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  [ -f "$work/dovecot.log" ] && tail -n 20 "$work/dovecot.log" >&2
  exit 1
}

# shellcheck source=lib/ports.sh
. "$(dirname "$0")/lib/ports.sh"
port=$(port_claim) || fail "no free port"
mkdir -p "$work/run" "$work/mail"
chown nobody:nogroup "$work/mail"
# user:password:uid:gid:gecos:home:shell:extra fields. small@ has a 1 KB quota.
cat > "$work/users" <<USERS
alice@example.org:::::::
bob@example.org:::::::
small@example.org:::::::userdb_quota_rule=*:storage=1K
USERS
# The user of the 10,000-recipient run: Dovecot proxies it (lmtp_proxy) to smtp-sink -L, so it
# reads and answers every command as usual while delivery costs nothing (Dovecot 2.3 takes
# minutes to deliver 10,000 local copies, and panics on 10,000 local users in one transaction).
sinkport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "p@example.org:::::::proxy=y host=127.0.0.1 port=$sinkport protocol=lmtp" >> "$work/users"
cat > "$work/dovecot.conf" <<CONF
protocols = lmtp
base_dir = $work/run
state_dir = $work/run
instance_name = gw-lmtp-test-$$
log_path = $work/dovecot.log
ssl = no
listen = 127.0.0.1
mail_location = maildir:~/Maildir
mail_plugins = \$mail_plugins quota
lmtp_rcpt_check_quota = no
lmtp_proxy = yes
recipient_delimiter = +
auth_cache_size = 1M
passdb {
  driver = passwd-file
  args = $work/users
}
userdb {
  driver = passwd-file
  args = $work/users
  default_fields = uid=nobody gid=nogroup home=$work/mail/%u
}
plugin {
  quota = maildir:User quota
  quota_rule = *:storage=10M
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $port
  }
  unix_listener $work/lmtp.sock {
    mode = 0666
  }
}
CONF
dovecot -F -c "$work/dovecot.conf" >"$work/stdout" 2>&1 & dv_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { cat "$work/stdout" >&2; fail "dovecot did not listen on $port"; }

# A message of about 4 KB with a dot-leading line: over small@'s quota, well under the others'.
{
  printf 'From: sender@example.com\nTo: alice@example.org\nSubject: gw-send dovecot test\n\n'
  printf '.a line that starts with a dot\n'
  for i in $(seq 60); do printf 'line %02d xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n' "$i"; done
} > "$work/msg"

set +e
timeout 60 "$gwsend" --json -v -t 20 -f sender@example.com -g "lmtp:[127.0.0.1]:$port" -m "$work/msg" \
  alice@example.org nosuchuser@example.org small@example.org bob@example.org > "$work/out" 2>"$work/err"
rc=$?
set -e
cat "$work/out"
# state, stage, code of each line, in order.
python3 - "$work/out" > "$work/summary" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(r["rcpt"], r["state"], r["stage"], r["code"], r["enh"])
PY
expect_line() { grep -qx "$1" "$work/summary" || fail "want '$1', got: $(cat "$work/summary")"; }
expect_line "alice@example.org delivered data 250 2.0.0"
expect_line "nosuchuser@example.org permfail rcpt 550 5.1.1"
expect_line "bob@example.org delivered data 250 2.0.0"
grep -Eq '^small@example.org (permfail|tempfail) data (552|452) [45]\.2\.2$' "$work/summary" \
  || fail "small@ over quota: want a 5.2.2/4.2.2 failure at DATA, got: $(cat "$work/summary")"
if grep -q '^small@example.org tempfail' "$work/summary"; then want=75; else want=69; fi
[ $rc -eq $want ] || fail "gw-send exit $rc, want $want ($(cat "$work/err"))"

# Dovecot 2.3 offers CHUNKING: that run went by BDAT (caps bit 0x40), the unix-socket one below by DATA.
if grep -Eq 'client_caps caps=0x[0-9a-f]*[4567cdef][0-9a-f]\b' "$work/err"; then
  grep -q 'data=0' "$work/err" || fail "CHUNKING offered but BDAT not used: $(cat "$work/err")"
  echo "(delivered with BDAT)"
fi
# The maildirs: alice and bob have exactly one message with the body intact, small none.
for u in alice bob; do
  n=$(find "$work/mail/$u@example.org/Maildir" -path '*/new/*' -type f 2>/dev/null | wc -l)
  [ "$n" -eq 1 ] || fail "$u: $n messages in Maildir/new, want 1"
  f=$(find "$work/mail/$u@example.org/Maildir" -path '*/new/*' -type f)
  grep -q '^\.a line that starts with a dot' "$f" || fail "$u: dot-stuffing not undone (body damaged)"
  grep -q '^line 60 ' "$f" || fail "$u: message truncated"
done
n=$(find "$work/mail/small@example.org" -path '*/new/*' -type f 2>/dev/null | wc -l)
[ "$n" -eq 0 ] || fail "small: $n messages delivered over quota"

# Over the unix socket, every recipient delivered: exit 0.
set +e
printf 'Subject: unix\n\n.hello\n' | timeout 60 "$gwsend" --no-chunking -v -t 20 -f '' -g "lmtp:unix:$work/lmtp.sock" \
  alice@example.org bob@example.org > "$work/out2" 2>"$work/err2"
rc=$?
set -e
[ $rc -eq 0 ] || fail "unix socket: exit $rc: $(cat "$work/out2" "$work/err2")"
# The first run used BDAT when Dovecot offers CHUNKING; this one was told to use DATA.
grep -q 'command="DATA"\|data=1' "$work/err2" || fail "unix socket: DATA not used: $(cat "$work/err2")"
n=$(find "$work/mail/alice@example.org/Maildir" -path '*/new/*' -type f | wc -l)
[ "$n" -eq 2 ] || fail "alice: $n messages after the unix-socket delivery, want 2"
# 10,000 recipients over the unix socket, in one transaction (BDAT, as Dovecot offers CHUNKING).
many=${GW_DOVECOT_MANY:-10000}
seq -f 'p+%g@example.org' 1 "$many" > "$work/many"
smtp-sink -L -u nobody -c "127.0.0.1:$sinkport" 10 >"$work/sink.log" 2>&1 & sink_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$sinkport") 2>/dev/null && break; sleep 0.1; done
printf 'Subject: many\n\nhello\n' > "$work/msg-many"
start=$(date +%s%N)
set +e
timeout 120 "$gwsend" -t 60 -f sender@example.com -g "lmtp:unix:$work/lmtp.sock" -m "$work/msg-many" \
  $(cat "$work/many") > "$work/out3" 2>"$work/err3"
rc=$?
set -e
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
n=$(grep -c ': delivered stage=data code=250 ' "$work/out3" || true)
[ "$rc" -eq 0 ] && [ "$n" -eq "$many" ] \
  || fail "$many recipients: exit $rc, $n delivered: $(grep -v ': delivered ' "$work/out3" | head -3) $(head -3 "$work/err3")"
# One result line per recipient, in order.
cut -d: -f1 "$work/out3" | cmp -s - "$work/many" || fail "$many recipients: results not one per recipient in order"
[ "$took_ms" -lt 55000 ] || fail "$many recipients took $took_ms ms (a stalled exchange waits out the 60 s reply timeout)"
echo "$many recipients over the unix socket: all delivered in $took_ms ms"
echo "lmtp dovecot: ok"
