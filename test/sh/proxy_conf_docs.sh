#!/usr/bin/env bash
# gw-proxy's defaults are stated once, in its option table; etc/gw-proxy.conf
# and gw-proxy.conf(5) must say the same: every key of the table is in both,
# no other key is, and the values they give are the defaults (compared after
# parsing, with gw-proxy -d, so "120s" and "2m" are the same value).
set -euo pipefail
bindir=$1
top=$(cd "$(dirname "$0")/../.." && pwd)
proxy=$bindir/proxy/gw-proxy
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

: >"$work/empty.conf"
"$proxy" -d -c "$work/empty.conf" >"$work/defaults" || fail "gw-proxy -d on an empty file"
cut -d' ' -f1 "$work/defaults" | sort >"$work/keys"

# the sample: every key, each at its default
grep -E '^[a-z_]+ *=' "$top/etc/gw-proxy.conf" | sed 's/ *=.*//' | sort >"$work/sample.keys"
diff -u "$work/keys" "$work/sample.keys" >"$work/d1" || fail "etc/gw-proxy.conf keys differ from the table: $(cat "$work/d1")"
"$proxy" -d -c "$top/etc/gw-proxy.conf" >"$work/sample" || fail "gw-proxy -d refused etc/gw-proxy.conf"
diff -u "$work/defaults" "$work/sample" >"$work/d2" || fail "etc/gw-proxy.conf values differ from the defaults: $(cat "$work/d2")"

# the man page: ".B key = value" (or .TQ) lines, every key, each at its default
sed -n 's/^\.B \([a-z_]*\) =\(.*\)$/\1 =\2/p' "$top/docs/man/gw-proxy.conf.5" | sed 's/\\-/-/g' >"$work/man.conf"
cut -d' ' -f1 "$work/man.conf" | sort >"$work/man.keys"
diff -u "$work/keys" "$work/man.keys" >"$work/d3" || fail "gw-proxy.conf(5) keys differ from the table: $(cat "$work/d3")"
"$proxy" -d -c "$work/man.conf" >"$work/man" || fail "gw-proxy -d refused the man page's values"
diff -u "$work/defaults" "$work/man" >"$work/d4" || fail "gw-proxy.conf(5) values differ from the defaults: $(cat "$work/d4")"
echo "PASS: $(wc -l <"$work/keys") keys agree in the table, etc/gw-proxy.conf and gw-proxy.conf(5)"
