/*
 * tls.h - TLS over a non-blocking socket (internal to libgw): the client
 * side, and the server side that gw/server_tls.h wraps for drivers of the
 * server engine.
 *
 * The only door to OpenSSL for the client engine: its callers see opaque
 * gw_tls_ctx and gw_tls handles and include no OpenSSL header.
 * One context per gw_client (the one without verification shared by all): with verify, the peer's chain is
 * checked against ca_file (or the system default paths) and its name against the name given to the handshake;
 * without, anything is accepted (opportunistic encryption). Handshake, reads and writes are driven by poll()
 * under the same per-call timeout and absolute deadline as net.h, and the socket I/O goes through a BIO that
 * sends with MSG_NOSIGNAL, so a dead peer never raises SIGPIPE.
 *
 * With TLSA records (DANE, RFC 7672) the certificate is checked against them
 * with OpenSSL's DANE support instead of a CA store: DANE-EE(3) matches the
 * server's own certificate or key, names and dates ignored; DANE-TA(2) a
 * trust anchor in the chain the server sends, with the name checked.
 *
 * Does not defend against: revoked certificates (no CRL or OCSP checks),
 * MTA-STS policies (callers choose the policy and find the TLSA records).
 */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "gw/dane.h"
#include "net.h"

typedef struct gw_tls_ctx gw_tls_ctx; /* an OpenSSL SSL_CTX underneath */
typedef struct gw_tls gw_tls;         /* an OpenSSL SSL session underneath */

/*
 * A client context. verify: check chain and name. NULL with err set on
 * failure. Without verify, every call returns the same process-wide context
 * (another reference to it): opening a session costs no new context.
 */
gw_tls_ctx *gw_tls_ctx_new(int verify, const char *ca_file, char *err, size_t errlen);
void gw_tls_ctx_free(gw_tls_ctx **ctx);

/*
 * A server context: the certificate chain in cert_file (PEM, leaf first) and
 * the private key in key_file (NULL or "": cert_file holds it too), checked to
 * belong together. NULL with err naming the file on failure.
 */
gw_tls_ctx *gw_tls_ctx_new_server(const char *cert_file, const char *key_file, char *err, size_t errlen);

/* Handshake as the server on fd (after a 220 to STARTTLS). GW_NET_TLS, LOST or TIMEOUT on failure. */
gw_net_rc gw_tls_accept(gw_tls_ctx *ctx, int fd, unsigned timeout_ms, int64_t deadline, gw_tls **tls_r,
			char *err, size_t errlen);

/*
 * Handshake as a client on fd. name: SNI and, with verify, the name to check
 * (an IP address is checked as an address and not sent as SNI); NULL: no SNI,
 * and with verify the handshake fails. GW_NET_TLS on handshake or
 * verification failure, GW_NET_TIMEOUT when the wait ran out.
 * ntlsa > 0: DANE, the certificate must match one of tlsa[0..ntlsa) (verify
 * is then ignored; name is the TLSA base domain and the name DANE-TA checks).
 */
gw_net_rc gw_tls_connect(gw_tls_ctx *ctx, int fd, const char *name, int verify, const gw_tlsa *tlsa,
			 size_t ntlsa, unsigned timeout_ms, int64_t deadline, gw_tls **tls_r, char *err,
			 size_t errlen);

/* Read at least one byte (up to len); LOST when the peer closed. */
gw_net_rc gw_tls_read(gw_tls *tls, int fd, void *buf, size_t len, unsigned timeout_ms, int64_t deadline,
		      size_t *got_r, char *err, size_t errlen);

/* Write all len bytes; the timeout restarts whenever some bytes were written. */
gw_net_rc gw_tls_write_all(gw_tls *tls, int fd, const void *buf, size_t len, unsigned timeout_ms,
			   int64_t deadline, char *err, size_t errlen);

/*
 * One non-blocking read or write for a loop that polls itself: GW_NET_OK with
 * *n_r bytes moved (0 when it would block: *want_r then says whether to wait
 * for POLLIN or POLLOUT), else the failure (LOST, TLS) with err set.
 */
gw_net_rc gw_tls_try_read(gw_tls *tls, void *buf, size_t len, size_t *n_r, short *want_r, char *err,
			  size_t errlen);
gw_net_rc gw_tls_try_write(gw_tls *tls, const void *buf, size_t len, size_t *n_r, short *want_r, char *err,
			   size_t errlen);

/*
 * For a liveness check after poll() saw the socket readable: 1 when the peer
 * sent data or closed, 0 when what came was only TLS housekeeping (TLS 1.3
 * session tickets), which is taken in without blocking.
 */
int gw_tls_peer_spoke(gw_tls *tls);

/* The negotiated protocol version and cipher, for logging. */
const char *gw_tls_version(const gw_tls *tls);
const char *gw_tls_cipher(const gw_tls *tls);

/* Free the session; clean: try once (without waiting) to send close_notify. *tls becomes NULL. */
void gw_tls_free(gw_tls **tls, int clean);

#endif
