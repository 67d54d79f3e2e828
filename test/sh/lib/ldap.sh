# shellcheck shell=bash
# ldap.sh - a throw-away OpenLDAP slapd on loopback for the directory-check
# tests. Source it (bash) after ports.sh; it defines functions only.
#
#   ldap_start          slapd 2.5 on ldap://127.0.0.1:PORT (a port claimed with
#                       port_claim), own slapd.conf (-f), mdb database
#                       dc=example,dc=org loaded with slapadd; sets LDAP_DIR,
#                       LDAP_PORT, LDAP_URI, LDAP_PID, LDAP_LOG
#                       With LDAP_TLS_CERT and LDAP_TLS_KEY set (PEM files),
#                       slapd also speaks TLS: StartTLS on LDAP_URI, and
#                       ldaps:// on LDAPS_PORT (claimed too)
#   ldap_wait_log ERE [SECS]   wait for a line of slapd's log
#   ldap_restart        stop slapd and start it again on the same port and
#                       database (its log appended to LDAP_LOG); sets LDAP_PID
#   ldap_stop           stop it by PID (SIGCONT first: it may be stopped), remove
#                       LDAP_DIR (LDAP_KEEP=1 keeps it)
#
# Data: users alice (mail alice@example.org, mailLocalAddress
# alice.liddell@example.org and al@example.org) and bob (mail bob@example.org
# and robert@example.org), a groupOfNames "staff" with its own address
# staff@example.org, and carol (mail carol@both.test) for a second route.
# Anonymous read is allowed; LDAP_ROOTDN/LDAP_ROOTPW bind with write access.
# LDAP_LOG is slapd's `-d stats` output, one line per operation, such as
#   conn=1000 op=1 SRCH base="dc=example,dc=org" scope=2 deref=0 filter="(mail=alice@example.org)"
# so a test sees exactly which filter reached the server.
#
# Adapted from /work/shared/recipes/ldap-lab.sh (Debian 12; packages slapd and
# ldap-utils, installed with slapd/no_configuration preseeded). Every wait is
# bounded; only the PID started here is ever signalled.

LDAP_BASE=dc=example,dc=org
LDAP_ROOTDN=cn=admin,dc=example,dc=org
LDAP_ROOTPW=secret-ldap-pw
LDAP_PID=
LDAP_DIR=

# Safe under the caller's set -e (a stop function runs in EXIT traps): every status is tested.
_ldap_reap() { # PID: SIGTERM, bounded wait, SIGKILL, reap
	local pid=$1
	kill -CONT "$pid" 2>/dev/null || true
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		if [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then break; fi
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	return 0
}

_ldap_write_files() {
	mkdir -p "$LDAP_DIR/db"
	cat >"$LDAP_DIR/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/misc.schema
$([ -n "${LDAP_TLS_CERT:-}" ] && printf 'TLSCertificateFile %s\nTLSCertificateKeyFile %s\n' "$LDAP_TLS_CERT" "$LDAP_TLS_KEY")
pidfile  $LDAP_DIR/slapd.pid
argsfile $LDAP_DIR/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize  33554432
suffix   "$LDAP_BASE"
rootdn   "$LDAP_ROOTDN"
rootpw   $LDAP_ROOTPW
directory $LDAP_DIR/db
index objectClass eq
index mail,mailLocalAddress,uid,cn eq
EOF
	cat >"$LDAP_DIR/data.ldif" <<EOF
dn: $LDAP_BASE
objectClass: dcObject
objectClass: organization
dc: example
o: Example Org

dn: ou=people,$LDAP_BASE
objectClass: organizationalUnit
ou: people

dn: ou=groups,$LDAP_BASE
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,$LDAP_BASE
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: alice
cn: Alice Liddell
sn: Liddell
mail: alice@example.org
mailLocalAddress: alice.liddell@example.org
mailLocalAddress: al@example.org

dn: uid=bob,ou=people,$LDAP_BASE
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: bob
cn: Bob Builder
sn: Builder
mail: bob@example.org
mail: robert@example.org

dn: uid=carol,ou=people,$LDAP_BASE
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: Carol
mail: carol@both.test

dn: cn=staff,ou=groups,$LDAP_BASE
objectClass: groupOfNames
objectClass: inetLocalMailRecipient
cn: staff
mailLocalAddress: staff@example.org
member: uid=alice,ou=people,$LDAP_BASE
member: uid=bob,ou=people,$LDAP_BASE
EOF
}

ldap_start() {
	local attempt
	LDAP_DIR=$(mktemp -d /tmp/gw-ldap.XXXXXX) || return 1
	_ldap_write_files
	slapadd -q -f "$LDAP_DIR/slapd.conf" -l "$LDAP_DIR/data.ldif" >"$LDAP_DIR/slapadd.log" 2>&1 ||
		{ cat "$LDAP_DIR/slapadd.log" >&2; return 1; }
	LDAP_LOG=$LDAP_DIR/slapd.log
	for attempt in 1 2 3; do
		LDAP_PORT=$(port_claim) || return 1
		LDAP_URI=ldap://127.0.0.1:$LDAP_PORT
		LDAP_LISTEN="$LDAP_URI/"
		if [ -n "${LDAP_TLS_CERT:-}" ]; then
			LDAPS_PORT=$(port_claim) || return 1
			LDAP_LISTEN="$LDAP_LISTEN ldaps://127.0.0.1:$LDAPS_PORT/"
		fi
		# -d stats: foreground (so $! is slapd), operations logged to stderr
		slapd -f "$LDAP_DIR/slapd.conf" -h "$LDAP_LISTEN" -d stats >"$LDAP_LOG" 2>&1 &
		LDAP_PID=$!
		for _ in $(seq 100); do
			kill -0 "$LDAP_PID" 2>/dev/null || break
			# slapd itself holds the port, and answers (bounded: a non-LDAP peer would hang ldapsearch)
			if ss -Hltnp "sport = :$LDAP_PORT" | grep -q "pid=$LDAP_PID," &&
				timeout 3 ldapsearch -x -H "$LDAP_URI" -b "$LDAP_BASE" -s base -o nettimeout=1 \
					'(objectClass=*)' dn >/dev/null 2>&1; then
				return 0
			fi
			sleep 0.1
		done
		_ldap_reap "$LDAP_PID"
		echo "slapd did not come up on port $LDAP_PORT (attempt $attempt): $(tail -3 "$LDAP_LOG")" >&2
	done
	return 1
}

ldap_restart() {
	_ldap_reap "$LDAP_PID"
	slapd -f "$LDAP_DIR/slapd.conf" -h "$LDAP_LISTEN" -d stats >>"$LDAP_LOG" 2>&1 &
	LDAP_PID=$!
	for _ in $(seq 100); do
		kill -0 "$LDAP_PID" 2>/dev/null || break
		if ss -Hltnp "sport = :$LDAP_PORT" | grep -q "pid=$LDAP_PID," &&
			timeout 3 ldapsearch -x -H "$LDAP_URI" -b "$LDAP_BASE" -s base -o nettimeout=1 \
				'(objectClass=*)' dn >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	echo "slapd did not come back on port $LDAP_PORT: $(tail -3 "$LDAP_LOG")" >&2
	return 1
}

ldap_wait_log() { # ERE [SECONDS]
	for _ in $(seq $((${2:-5} * 10))); do
		grep -Eq -- "$1" "$LDAP_LOG" && return 0
		sleep 0.1
	done
	return 1
}

ldap_stop() {
	if [ -n "$LDAP_PID" ]; then
		_ldap_reap "$LDAP_PID"
		LDAP_PID=
	fi
	if [ -n "$LDAP_DIR" ] && [ "${LDAP_KEEP:-0}" != 1 ]; then
		rm -rf "$LDAP_DIR"
	fi
	LDAP_DIR=
	return 0
}
