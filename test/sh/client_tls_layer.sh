#!/usr/bin/env bash
# The client engine reaches OpenSSL only through tls.h: within libgw, only
# tls.c includes OpenSSL's TLS headers (ssl.h, err.h, x509*.h), and tls.h
# itself includes none, so every file above it is free of OpenSSL types.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bad=$(grep -lE '#include[[:space:]]*<openssl/(ssl|err|x509|x509v3)\.h>' "$top"/libgw/*.c "$top"/libgw/*.h \
  | grep -v '/libgw/tls\.c$' || true)
if [ -n "$bad" ]; then
  echo "FAIL: OpenSSL TLS headers outside libgw/tls.c: $bad" >&2
  exit 1
fi
grep -q 'gw_tls_' "$top/libgw/client.c" || { echo "FAIL: client.c does not use tls.h" >&2; exit 1; }
echo "client tls layer: ok"
