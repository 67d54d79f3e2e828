/*
 * session.h - one client connection of gw-proxy: the socket, the server
 * engine's input and output, and the relay (relay.h) acting on its events.
 *
 * Runs in the calling thread until the client or the relay ends the
 * session; every wait on the client is bounded by command_timeout. The
 * descriptor is closed on return.
 *
 * Does not defend against: a destination that holds the session within its
 * reply timeout (the thread waits with it; see relay.h).
 */
#ifndef GWP_SESSION_H
#define GWP_SESSION_H

#include "gw/nexthop.h"
#include "relay.h"

/* Serve fd: relay to hop (NULL: MX of the recipients' domain), or refuse with 421 refuse_text when not NULL.
 */
void gwp_session_run(int fd, const char *client, const gwp_env *env, const gw_nexthop *hop,
		     const char *refuse_text);

#endif
