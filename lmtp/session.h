/*
 * session.h - one LMTP session of gw-lmtpd: the socket driven through the
 * sans-IO server engine (gw/server.h), each message relayed by relay.h while
 * the client waits, and one LMTP reply per recipient, in RCPT order, each the
 * destination's own verdict.
 *
 * Runs in the thread that accepted the connection; blocking I/O bounded by
 * command_timeout (idle between commands and inside DATA) and, for writes,
 * the same. A gateway that knows it cannot reach the outside answers 421 at
 * the greeting and at MAIL, so the internal MTA moves on at once.
 *
 * Does not defend against: many slow sessions (max_sessions bounds them; each
 * holds a thread); STARTTLS from the internal MTA (not offered: run LMTP over
 * a trusted network or a unix socket).
 */
#ifndef GWL_SESSION_H
#define GWL_SESSION_H

#include "lmtpd_conf.h"
#include "relay.h"

typedef struct gwl_session_env {
	const gwl_config *conf;
	gwl_relay *relay;
} gwl_session_env;

/* Serve the connection on fd (closed on return); client names the peer in logs. */
void gwl_session_run(int fd, const char *client, const gwl_session_env *env);

#endif
