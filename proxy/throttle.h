/*
 * throttle.h - what a session does about the limits: sessions per
 * destination (dest_limit.c, lowered while watch.c marks the destination)
 * and messages per tenant (rate_limit.c). relay.c calls these at the points
 * named below; each refusal is counted (gwp_stats), logged in the daemon's
 * log and the session log, and answered with a 4xx the client MTA keeps the
 * mail for: the proxy queues nothing.
 *
 *  - gwp_throttle_dest_take() before a session connects to a destination:
 *    at destination_concurrency sessions (marked_concurrency while the
 *    destination is marked) it refuses with "421 4.4.5" for a destination
 *    known at accept (the greeting; the tenant's MTA counts a failed
 *    connection, as for a destination that refuses it) or "451 4.4.5" for a
 *    RCPT whose MX hosts are all at their limit;
 *  - gwp_throttle_dest_give() when the session leaves the destination;
 *  - gwp_throttle_mail() at each MAIL: over the tenant's rate, "451 4.7.1".
 *
 * Does not defend against: sessions already at a destination when it gets
 * marked (they run to their end; only new ones are refused).
 */
#ifndef GWP_THROTTLE_H
#define GWP_THROTTLE_H

#include "relay.h"

/* A session to r->up_key (held in r->dslot until given back). 0 go on, -1 refused: rep is the answer. */
int gwp_throttle_dest_take(gwp_relay *r, gw_reply *rep);
/* The session left the destination it took (nothing when it holds none). */
void gwp_throttle_dest_give(gwp_relay *r);
/* One message of r's tenant (MAIL, r->mail_cmd). 0 go on, -1 over the rate: rep is the answer. */
int gwp_throttle_mail(gwp_relay *r, gw_reply *rep);
/* The limit on sessions to a destination now (0: none), marked or not. */
long gwp_throttle_dest_limit(const gwp_env *env, const char *dest, int *marked_r);

#endif
