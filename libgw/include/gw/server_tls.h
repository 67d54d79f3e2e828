/*
 * gw/server_tls.h - the server side of STARTTLS for drivers of the server
 * engine (gw/server.h): a certificate and key loaded once, a handshake on the
 * client's socket after the engine's GW_SRV_EV_STARTTLS, then reads and
 * writes through the TLS session in place of recv() and send().
 *
 * The driver's sequence: write the engine's output (the 220) in plain text,
 * drop any client bytes it read but did not feed (they came before TLS),
 * gw_srv_tls_accept(), then gw_srv_tls_started() on the engine. Every wait is
 * bounded by the timeout given; a socket may be blocking or not.
 *
 * Clients are never asked for a certificate, and TLS 1.2 is the oldest
 * version accepted. Does not defend against: a client that moves one byte
 * just before each timeout; renegotiation (refused); anything a client
 * certificate would prove (none is asked for).
 */
#ifndef GW_SERVER_TLS_H
#define GW_SERVER_TLS_H

#include "gw/export.h"

#include <stddef.h>

typedef struct gw_srv_tls gw_srv_tls;           /* a certificate and key (shared by sessions) */
typedef struct gw_srv_tls_conn gw_srv_tls_conn; /* one client's TLS session */

/*
 * Load the certificate chain in cert_file (PEM, leaf first) and the private
 * key in key_file (NULL or "": in cert_file too), checked to belong together.
 * NULL with err naming the file and the reason. Safe to share between threads.
 */
GW_API gw_srv_tls *gw_srv_tls_new(const char *cert_file, const char *key_file, char *err, size_t errlen);
/* Free t (after every session made with it) and set *t to NULL. */
GW_API void gw_srv_tls_free(gw_srv_tls **t);

/*
 * The TLS handshake as the server on fd, at most timeout_ms per wait. The
 * session, or NULL with err and errno: ETIMEDOUT, ECONNRESET (the client
 * went away) or EPROTO (the client does not speak TLS with us, or OpenSSL
 * failed).
 */
GW_API gw_srv_tls_conn *gw_srv_tls_accept(gw_srv_tls *t, int fd, unsigned timeout_ms, char *err,
					  size_t errlen);
/*
 * Read at least one byte (up to len) into buf: 0 with *got_r > 0, or -1 with
 * errno ETIMEDOUT (nothing within timeout_ms), ECONNRESET (closed) or EPROTO.
 */
GW_API int gw_srv_tls_read(gw_srv_tls_conn *c, void *buf, size_t len, unsigned timeout_ms, size_t *got_r,
			   char *err, size_t errlen);
/* Write all len bytes (the timeout restarts when bytes move): 0, or -1 with errno as for reading. */
GW_API int gw_srv_tls_write(gw_srv_tls_conn *c, const void *buf, size_t len, unsigned timeout_ms, char *err,
			    size_t errlen);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384": the protocol and cipher, for logs. */
GW_API const char *gw_srv_tls_desc(const gw_srv_tls_conn *c);
/* Try once (without waiting) to send close_notify, free, set *c to NULL. The socket stays open. */
GW_API void gw_srv_tls_close(gw_srv_tls_conn **c);

#endif
