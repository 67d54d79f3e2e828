/*
 * relay.h - one client session relayed command by command to its
 * destination: the client side is libgw's sans-IO server engine (gw/server.h),
 * the destination side libgw's client engine (gw/client.h).
 *
 * The driver (session.c) owns the client socket and feeds the engine; each
 * engine event goes to gwp_relay_event(), which replays it towards the
 * destination and answers the engine with the destination's reply: MAIL,
 * RCPT and the end of data get the destination's own code, enhanced code and
 * text (sanitised by the engine), so the client MTA's queue is the only
 * queue and every verdict is the destination's. The proxy never answers the
 * final dot with 2xx before the destination did.
 *
 * Where the destination comes from:
 *  - known at accept (a redirected connection's original destination, or
 *    the configured upstream): connected before the greeting; the EHLO reply
 *    to the client offers what the destination offers (SIZE, 8BITMIME,
 *    SMTPUTF8, DSN) plus PIPELINING, never CHUNKING, and STARTTLS only for
 *    the proxy's own certificate (tls_in.h); a greeting
 *    or EHLO refusal is the answer to every MAIL;
 *  - MX of the recipients' domain (plain listener without upstream): MAIL is
 *    held (answered 250 by the proxy, logged ">|") and sent with the first
 *    RCPT, whose domain picks the destination; a RCPT for another domain in
 *    the same transaction gets 452 4.5.3 (the client sends it in its next
 *    transaction); a refused MAIL is the answer to its RCPTs.
 * Failures of the destination side (refused, timeout, lost, bad reply, TLS)
 * answer the pending command with 421 4.4.x and end the session: the client
 * retries from its queue. While a destination's reply is awaited (greeting,
 * EHLO, MAIL, RCPT, DATA, the dot, a pipelined batch), the tenant's socket
 * is watched for a hang-up only (gw_client_set_watch): a tenant that goes
 * away meanwhile (closed, or its own timeout ran out) ends the wait at once,
 * the destination connection is closed without QUIT (a tarpit is owed
 * nothing) and the session ends as "client-gone" (logged, counted in
 * client_gone). Commands the tenant sends meanwhile wake nothing and stay
 * in the socket for the engine: a tenant that pipelines and waits is not
 * gone. The engine's own 354 goes to the client at once;
 * a DATA the destination refuses is the answer to the final dot. A client
 * that goes away mid-body leaves the destination without a final dot (the
 * connection is closed: the destination drops the transaction); elsewhere
 * the destination gets QUIT.
 *
 * Limits (throttle.h) come before: a session over its destination's
 * session limit is not connected (421 greeting, or 451 4.4.5 at RCPT in MX
 * mode), a MAIL over its tenant's rate gets 451 4.7.1. A connection refused
 * from a pool address is tried once more from the next one, and when that
 * one gets in, the refused address is retired for the destination. A
 * blocklist verdict on a pool address (pool_session.h) in the greeting or
 * the EHLO reply connects again from another address in the same session;
 * so does one in reply to MAIL, or to the transaction's first RCPT, towards a
 * known destination (redirect, upstream): the address is retired, the
 * connection closed, a new one made from the next address (EHLO, STARTTLS
 * per policy), the MAIL and every command sent ahead written again, and the
 * tenant gets the new connection's verdict (pool_reconnected). When no new
 * connection can be made the tenant gets 451 4.7.1. Once a RCPT has been
 * answered the verdict reaches the tenant as 451 4.7.1 (pool_deferred) and
 * the next transaction connects from another address: replaying answered
 * RCPTs on a new connection could change verdicts the tenant already has.
 * In MX mode the held MAIL's verdict is 451 4.7.1 too.
 *
 * One session is one thread here (session.c); the state below is all a
 * session has, so an event loop could drive the same structure once the
 * client engine has a non-blocking form (docs/howto-proxy.md, NOTES).
 *
 * Pipelining (RFC 2920) on both sides: towards a destination that offers
 * PIPELINING (a known destination, not MX mode), the MAIL, RCPTs and DATA
 * the client pipelined (the server engine's look-ahead hands them out before
 * their answers) are queued and written to the destination in one write as
 * soon as the engine has nothing more to hand out; the replies are then read
 * one at a time and each answers its command, in order, as soon as it comes
 * (gwp_relay_pump(), called by the driver while the engine waits for an
 * answer). The session log shows each command when it is written and each
 * reply with the milliseconds since its command left. A DATA sent ahead
 * whose 354 is not wanted after all (the engine refused DATA itself: no
 * recipient accepted) is dropped by closing the destination connection
 * without a dot. When the destination fails mid-batch every command still
 * unanswered gets 451 4.4.x in order and the last 421, and the session ends.
 * Without PIPELINING at the destination, one command at a time.
 *
 * Does not defend against: a destination that accepts the dot and then
 * loses the mail (its 250 is the truth passed on); RSET, NOOP, VRFY and QUIT
 * are not sent ahead (they wait for the answers before them).
 */
#ifndef GWP_RELAY_H
#define GWP_RELAY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/client.h"
#include "gw/server.h"
#include "dane.h"
#include "dest_limit.h"
#include "pool.h"
#include "rate_limit.h"
#include "proxy_conf.h"
#include "slog.h"
#include "watch.h"

/* Counters for the control socket, shared by every session. */
typedef struct gwp_stats {
	atomic_ulong sessions_total, refused_not_redirected, upstream_failures;
	atomic_ulong messages, messages_refused, rcpts_accepted, rcpts_refused, bytes;
	atomic_ulong pool_retired, pool_all_retired, tarpit_marks, throttle_marks;
	atomic_ulong dest_limited, rate_limited;      /* throttle.c */
	atomic_ulong pool_deferred, pool_reconnected; /* pool_session.c, relay.c */
	atomic_ulong dribble_marks;                   /* dribble.c: tarpit marks for dribbled replies */
	atomic_ulong client_gone; /* relay.c: the tenant hung up while the destination's reply was awaited */
} gwp_stats;

typedef struct gwp_env {
	const gwp_config *conf;
	gwp_slog *slog;
	gwp_stats *stats;
	gwp_pool *pool;     /* the outbound address table (NULL: no pool) */
	gwp_watch *watch;   /* tarpitting and throttling destinations (NULL: not watched) */
	gwp_dlimit *dlimit; /* sessions per destination (NULL: not limited) */
	gwp_rate *rate;     /* messages per tenant (NULL: not limited) */
} gwp_env;

typedef enum gwp_dest_mode { GWP_DEST_HOP = 0, GWP_DEST_MX = 1 } gwp_dest_mode;

/* A command sent ahead to a PIPELINING destination whose reply is not read yet. */
typedef struct gwp_sent {
	gw_stage stage; /* GW_STAGE_MAIL, _RCPT or _DATA */
	int64_t t0;     /* when it was written (0: still in the batch) */
} gwp_sent;

typedef struct gwp_relay {
	const gwp_env *env;
	gw_srv *srv;
	int client_fd; /* the tenant's socket, watched while a reply is awaited (-1: none) */
	char sid[16];
	char client[64];
	char tenant[GWP_TENANT_NAME_MAX]; /* tenant_map's name, or the client's address */
	const gwp_tenant *tenant_ent;     /* tenant_map's entry (its pool addresses), or NULL */
	gwp_dest_mode mode;
	gw_nexthop hop;              /* GWP_DEST_HOP */
	char dest[GW_HOST_MAX + 16]; /* for logs: the hop, or the MX domain */
	gw_client *up;
	gw_tls_policy up_tls;          /* the STARTTLS policy up was made with */
	gwp_tls_terms *terms;          /* MX mode: the terms for the host being opened (dane.h), else NULL */
	gwp_tls_terms *terms_mem;      /* terms' memory, made at the first MX lookup */
	char up_bind[64];              /* the pool address up binds to ("": none) */
	char up_key[GW_HOST_MAX + 16]; /* the destination host of up, for the pool */
	gw_reply refusal;              /* greeting/EHLO refusal (code 0: none): the answer to MAIL */
	char dslot[GW_HOST_MAX + 16];  /* the destination whose session count holds this one ("": none) */
	int dlimited;                  /* up_open() refused: destination_concurrency reached */
	char pool_skip[64];            /* up_open() once more after a refused connection: not this address */
	/* MX mode: the held MAIL and the transaction's domain */
	char mail_cmd[GW_PATH_MAX + GW_PARAMS_MAX * (GW_PARAM_KEY_MAX + GW_PARAM_VALUE_MAX + 2) + 16];
	int mail_held;
	char txn_domain[GW_DOMAIN_MAX + 1];
	char up_domain[GW_DOMAIN_MAX + 1];
	gw_reply txn_fail; /* answer to every further RCPT of the transaction (code 0: none) */
	/* the body towards the destination */
	int in_txn, in_body, bol, body_lost;
	gw_reply data_reply; /* DATA's reply when it was not 354 */
	gw_status body_status;
	gw_buf stuffed;
	/* commands sent ahead, oldest first (pipelining); the batch holds those not written yet */
	gwp_sent *pipe;
	size_t pipe_head, pipe_len, pipe_cap;
	gw_buf batch;
	gw_buf sent;         /* with a pool: the lines written ahead and not answered yet, for a replay */
	int sent_lost;       /* sent is incomplete (over its limit): no replay this transaction */
	int txn_rcpts;       /* RCPT replies relayed in this transaction */
	gw_reply ahead_data; /* the reply to a DATA sent ahead (code 0: none read) */
	int data_ahead;      /* a DATA was sent ahead in this transaction */
	/* for the summary */
	char helo[GW_DOMAIN_MAX + 1];
	char outcome[48];
	char tls_out[GW_TLS_TEXT_MAX];
	char tls_in[GW_TLS_TEXT_MAX]; /* the client's leg ("": plain); set by tls_in.c */
	unsigned long messages, refused, rcpts_ok, rcpts_bad;
	uint64_t bytes;
	int64_t started;
} gwp_relay;

/*
 * Set up r for a client (client: its address for logs; client_fd: its
 * socket, watched for a hang-up while a destination's reply is awaited, -1
 * none) with a destination: hop for a redirected connection or an upstream,
 * NULL for MX per recipient domain. Connects a known destination and makes
 * the server engine; the greeting is queued (a 421 when the destination
 * cannot be reached). 0, or -1 when the engine cannot be made (out of
 * memory).
 */
int gwp_relay_init(gwp_relay *r, const gwp_env *env, const char *client, int client_fd,
		   const gw_nexthop *hop);
/* Refuse the session with 421 (text) before any destination is tried: the engine is made, nothing else. */
int gwp_relay_init_refused(gwp_relay *r, const gwp_env *env, const char *client, const char *text);
/* Act on one engine event. */
void gwp_relay_event(gwp_relay *r, const gw_srv_event *ev);
/* Commands sent ahead whose replies are still to come (0: the relay owes the engine nothing). */
size_t gwp_relay_pending(const gwp_relay *r);
/* Write the commands queued ahead, then read the next reply and answer its command. */
void gwp_relay_pump(gwp_relay *r);
/* 1 when the next reply gwp_relay_pump() reads is already here: the driver need not write first. */
int gwp_relay_reply_ready(const gwp_relay *r);
/* 1 while commands queued ahead are not written yet (more of the client's batch may join them). */
int gwp_relay_unsent(const gwp_relay *r);
/* The driver is about to wait a while for its client: what the relay holds for the destination (body) goes
 * now. */
void gwp_relay_idle(gwp_relay *r);
/* Body bytes held for the destination, not written yet. */
size_t gwp_relay_held(const gwp_relay *r);
/* The client is gone (closed or timed out): abort or QUIT the destination. */
void gwp_relay_client_gone(gwp_relay *r, const char *why);
/* End the session: QUIT the destination if still open, the summary line, free. */
void gwp_relay_finish(gwp_relay *r);

#endif
