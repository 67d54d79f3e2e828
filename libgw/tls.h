/*
 * tls.h - the client side of TLS over a non-blocking socket (internal to libgw).
 *
 * One SSL_CTX per gw_client: with verify, the peer's chain is checked against
 * ca_file (or the system default paths) and its name against the name given
 * to the handshake; without, anything is accepted (opportunistic encryption).
 * Handshake, reads and writes are driven by poll() under the same per-call
 * timeout and absolute deadline as net.h, and the socket I/O goes through a
 * BIO that sends with MSG_NOSIGNAL, so a dead peer never raises SIGPIPE.
 *
 * Does not defend against: revoked certificates (no CRL or OCSP checks),
 * DANE/MTA-STS policies (callers choose the policy).
 */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "net.h"

/* A client context. verify: check chain and name. NULL with err set on failure. */
SSL_CTX *gw_tls_ctx_new(int verify, const char *ca_file, char *err, size_t errlen);
void gw_tls_ctx_free(SSL_CTX **ctx);

/*
 * Handshake as a client on fd. name: SNI and, with verify, the name to check
 * (an IP address is checked as an address and not sent as SNI); NULL: no SNI,
 * and with verify the handshake fails. GW_NET_TLS on handshake or
 * verification failure, GW_NET_TIMEOUT when the wait ran out.
 */
gw_net_rc gw_tls_connect(SSL_CTX *ctx, int fd, const char *name, int verify, unsigned timeout_ms,
			 int64_t deadline, SSL **ssl_r, char *err, size_t errlen);

/* Read at least one byte (up to len); LOST when the peer closed. */
gw_net_rc gw_tls_read(SSL *ssl, int fd, void *buf, size_t len, unsigned timeout_ms, int64_t deadline,
		      size_t *got_r, char *err, size_t errlen);

/* Write all len bytes; the timeout restarts whenever some bytes were written. */
gw_net_rc gw_tls_write_all(SSL *ssl, int fd, const void *buf, size_t len, unsigned timeout_ms,
			   int64_t deadline, char *err, size_t errlen);

/* Free the session; clean: try once (without waiting) to send close_notify. *ssl becomes NULL. */
void gw_tls_free(SSL **ssl, int clean);

#endif
