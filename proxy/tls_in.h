/*
 * tls_in.h - STARTTLS on the client's (tenant's) leg of gw-proxy: the
 * proxy's own certificate, offered in its EHLO reply when tls_cert_file is
 * set (gw-proxy.conf(5): tls_cert_file, tls_key_file, tls_client_security).
 *
 * The keys are checked when the configuration loads: the certificate and the
 * key are read and must belong together, or the error names file:line of the
 * key. Per session, after the server engine answered STARTTLS with 220, the
 * session driver (session.c) hands the socket to gwp_tls_in_start(); the
 * engine then forgets the session state (RFC 3207: the client greets again),
 * and the session log and summary line say which protocol and cipher the
 * client's leg got. A client that fails the handshake ends the session there:
 * logged, nothing of it relayed. Under tls_client_security = encrypt a MAIL
 * before STARTTLS is refused with 530 5.7.0.
 *
 * The destination's leg is separate (tls, tls_policy: relay.c).
 *
 * Does not defend against: a client that never asks for STARTTLS under
 * "may" (its leg stays plain, as with Postfix's smtpd_tls_security_level =
 * may); client certificates (never asked for); a key file that the user the
 * daemon runs as cannot read at a reload (the reload fails, the old
 * configuration stays).
 */
#ifndef GWP_TLS_IN_H
#define GWP_TLS_IN_H

#include <stddef.h>

#include "gw/reply.h"
#include "gw/server_tls.h"
#include "proxy_conf.h"

typedef enum gwp_tls_in_level { GWP_TLS_IN_NONE = 0, GWP_TLS_IN_MAY, GWP_TLS_IN_ENCRYPT } gwp_tls_in_level;

struct gwp_relay;

/* Check the keys and load c->tls_in. 0, or -1 with err "path:line: key: message". */
int gwp_tls_in_conf(gwp_config *c, char *err, size_t errlen);
/* 1 when the EHLO reply to clients offers STARTTLS. */
int gwp_tls_in_offered(const gwp_config *c);
/* 1 with the answer in rep when a MAIL must be refused: encrypt required and the leg is still plain. */
int gwp_tls_in_refuse_mail(const struct gwp_relay *r, gw_reply *rep);
/*
 * The client of r sent STARTTLS and got 220: the handshake on fd, each wait
 * at most timeout_ms. 0 with *conn_r, r's tls_in set and the session log
 * told; -1 (logged, r's outcome "client-tls-failed") when the client failed it.
 */
int gwp_tls_in_start(struct gwp_relay *r, int fd, unsigned timeout_ms, gw_srv_tls_conn **conn_r);

#endif
