/*
 * probe_pool.h - idle call-ahead sessions kept per route between messages (internal to libgw).
 *
 * A session is an open gw_client plus what the pool needs to judge it. The
 * key names a route: its next hops formatted with gw_nexthop_format, joined
 * by ',', then '/' and the protocol (pp_route_key). A returned session is
 * reset (RSET) and kept while it is younger than max_idle_ms (caller's
 * clock), has carried fewer than max_uses messages and its route has fewer
 * than max_size idle sessions; otherwise it is closed with QUIT. Checkout
 * takes the most recently returned session and closes stale ones.
 *
 * Nothing here waits for the peer on the caller's behalf: pp_return writes
 * RSET (and the next message's MAIL) without reading the replies, and a
 * session not kept gets QUIT without its reply read. The replies stay owed
 * (pp_session.owed): whoever uses the session next reads them ahead of its
 * own, pipelined with its first command, so the cost of resetting a
 * session is hidden in the next recipient's round trip instead of added to
 * the end of the message, where the MTA waits. Owed replies that have
 * arrived meanwhile are taken without blocking at checkout and vouch.
 *
 * Checkout drops sessions the peer has closed (a poll, no round trip); one
 * closed between that look and the first command is the caller's to replace.
 *
 * Does not defend against: more than PP_MAX_TOTAL
 * idle sessions over all routes (extra ones are closed).
 */
#ifndef GW_PROBE_POOL_H
#define GW_PROBE_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "gw/client.h"
#include "gw/route.h"
#include "gw/time.h"

#define PP_MAX_TOTAL 1024
#define PP_KEY_MAX   (GW_ROUTE_HOPS_MAX * (GW_HOST_MAX + GW_UNIX_PATH_MAX + 16) + 16)
#define PP_HOP_MAX   (GW_HOST_MAX + 16)
/*
 * Refusals one session may collect before it is retired. MTAs slow down or
 * drop clients that collect many (Postfix: smtpd_soft_error_limit 10 adds a
 * 1 s delay per reply, smtpd_hard_error_limit 20 disconnects) and RSET does
 * not reset the count, so a pooled probe session must not get near them.
 */
#define PP_ERRORS_MAX 8

typedef struct pp_session {
	struct pp_session *next; /* the pool's list */
	gw_client *client;
	char hop[PP_HOP_MAX]; /* the next hop it is connected to */
	unsigned uses;        /* messages carried so far (returned dirty) */
	unsigned errors;      /* 4xx/5xx replies drawn so far (see PP_ERRORS_MAX) */
	int dirty;            /* commands were sent since the last RSET */
	int primed;           /* MAIL was sent at return (accepted, or its reply still owed) */
	unsigned owed;        /* replies still to read for what pp_return wrote: RSET, then MAIL if primed */
	int64_t idle_since;   /* caller's clock */
} pp_session;

typedef struct pp_pool pp_pool;

/* A pool with these limits (0s already replaced by defaults); io_ms bounds each RSET and QUIT. */
pp_pool *pp_new(const gw_clock *clock, unsigned max_idle_ms, unsigned max_uses, unsigned max_size,
		unsigned io_ms);
/* QUIT and close every idle session, free, set *p to NULL. */
void pp_free(pp_pool **p);

/* Write route's key into buf (size PP_KEY_MAX). */
void pp_route_key(const gw_route *route, char *buf, size_t size);

/* A session wrapping client (taken over), connected to hop. NULL on ENOMEM (client is then freed). */
pp_session *pp_session_new(gw_client *client, const char *hop);
/* Close without QUIT and free; sets *s to NULL. */
void pp_session_discard(pp_session **s);

/* An idle session for key, or NULL. */
pp_session *pp_checkout(pp_pool *p, const char *key);
/*
 * End of a message: keep or close per the limits; a kept session that is
 * dirty gets RSET and, with prime ("<sender>") and PIPELINING, MAIL
 * FROM:prime, in one write whose replies are left owed (primed then set),
 * so neither this call nor the next message's first recipient waits a round
 * trip for them. A session not kept gets QUIT, unanswered. Never waits for
 * the peer. Takes s over; sets *s to NULL. Returns 1 when the session was
 * closed because it had carried max_uses messages (the route's pool wants a
 * replacement), else 0.
 */
int pp_return(pp_pool *p, const char *key, pp_session **s, const char *prime);
/*
 * Take r as the reply to the oldest owed command. -1 when the session cannot
 * be used (RSET refused: out of step with the peer); 0 otherwise, with
 * primed cleared when it was the MAIL and that was refused.
 */
int pp_owed_reply(pp_session *s, const gw_reply *r);
/*
 * Do key's idle sessions vouch for the route? Without blocking, sessions the
 * peer closed (or spoke on unasked) are dropped. -1 when one was found so (the
 * MTA may have gone: the caller should not trust cached answers), 1 when idle
 * sessions remain and none was, 0 when there are none or this cannot be told.
 */
int pp_vouch(pp_pool *p, const char *key);
/* Close every idle session of key (its route went down). */
void pp_flush(pp_pool *p, const char *key);
/* Close idle sessions older than max_idle_ms; returns how many. */
size_t pp_expire(pp_pool *p);
/* Idle sessions in all routes. */
size_t pp_idle(pp_pool *p);

#endif
