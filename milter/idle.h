/*
 * idle.h - close milter connections the MTA leaves idle longer than
 * milter_timeout.
 *
 * libmilter has a timeout (smfi_settimeout), but Debian's build runs its
 * sessions in a worker pool whose controller looks for timed-out sessions
 * only every 600 s, so an idle connection lives up to ten minutes past it.
 * This module watches each connection from its connect callback to its close
 * callback: a thread shuts the socket down (shutdown(2); libmilter then sees
 * the end of the connection, calls abort and close, and closes it itself)
 * once no callback has run on it for the timeout.
 *
 * libmilter gives no call for a session's socket: smfi_ctx.h reads it from
 * libmilter's context when the layout checks out; when it does not, that is
 * logged once and idle connections are left to libmilter's own timeout.
 *
 * Does not defend against: a connection that never reaches the connect
 * callback (it sends nothing, or only the option negotiation): libmilter's
 * own timeout closes it, up to 600 s late.
 */
#ifndef GWM_IDLE_H
#define GWM_IDLE_H

#include <stdint.h>

#include <libmilter/mfapi.h>

/* One watched connection; embedded in the connection's context. */
typedef struct gwm_idle {
	struct gwm_idle *prev, *next;
	int fd;          /* -1: not watched */
	int busy;        /* callbacks running on it */
	int shut;        /* shut down once already */
	int64_t last_ms; /* end of the last callback */
} gwm_idle;

/* Start the watch thread (after gwm_ctx_init). 0 or -1. */
int gwm_idle_start(long timeout_ms);
/* Stop the thread (the connections still open are no longer watched). */
void gwm_idle_stop(void);

/* At connect: find ctx's socket and watch it; 0 watched, -1 not. */
int gwm_idle_add(gwm_idle *e, SMFICTX *ctx);
/* Around every other callback on a watched connection (e may be unwatched). */
void gwm_idle_enter(gwm_idle *e);
void gwm_idle_leave(gwm_idle *e);
/* At close, before libmilter closes the socket: never touched again. */
void gwm_idle_del(gwm_idle *e);

#endif
