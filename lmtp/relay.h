/*
 * relay.h - gw-lmtpd's queueless relay: one message's recipients delivered
 * to their destinations over SMTP, in parallel, each recipient ending with
 * the destination's own verdict before the deadline.
 *
 * Recipients are grouped by domain; each group is one SMTP transaction to
 * that destination, the groups run at once on reused worker threads (the
 * last one in the caller's thread): the route file's next hops when
 * the domain has a route (transport(5) syntax, as gw-milter), else the MX
 * hosts in preference order with equal preferences shuffled (RFC 5321 5.1),
 * the domain itself when it has no MX, and no delivery at all for a null MX
 * (RFC 7505: 556 5.1.10). Hosts are tried in order, each later host getting
 * only the recipients still temporarily failed. Connections are kept per
 * destination between transactions, at most dest_concurrency at once.
 *
 * STARTTLS per destination (gw/domain_tls.h); under dane and dane-only each MX
 * host gets its terms from its TLSA records (dane_policy.h) just before it
 * is tried, and a host whose certificate does not match is not tried
 * further: its recipients stay temporarily failed for the next host.
 *
 * Every recipient gets exactly one result: delivered only when the
 * destination said 2xx to the final dot; a destination's 5xx is permanent;
 * everything else (4xx, refused, timeout, TLS required but unavailable, DNS
 * trouble, the deadline) is temporary, and a connection lost after the dot is
 * UNCERTAIN (the caller answers 4xx: a duplicate beats a loss).
 *
 * Health: the relay remembers whether recent deliveries reached any
 * destination at all; gwl_relay_healthy() says 0 when, within health_window,
 * at least health_min_failures transactions to at least two destinations
 * failed to connect and none got through, so the daemon can turn the
 * internal MTA away at the session level. While unhealthy one transaction per
 * health_retry is still let through, and its outcome decides again.
 *
 * Does not defend against: a destination that accepts and then loses the
 * mail (its 250 is the truth we pass on); a job still running at the deadline
 * keeps its worker (and the message's body) until its own bounds end it: the
 * caller has answered by then, so only threads and memory wait.
 */
#ifndef GWL_RELAY_H
#define GWL_RELAY_H

#include <stddef.h>

#include "gw/lmtp.h"
#include "gw/mx.h"
#include "gw/route.h"
#include "dane_policy.h"
#include "spool.h"
#include "gw/domain_tls.h"

typedef struct gwl_relay_conf {
	const gw_routes *routes; /* may be NULL: MX for every domain */
	int use_mx;              /* route next hops without brackets are looked up as MX */
	unsigned smtp_port;      /* port of MX hosts; 0: 25 */
	gw_lmtp_opts smtp;       /* client options: timeouts, TLS policy, HELO name (proto forced to SMTP) */
	gw_tls_level tls_level;  /* the global level; GW_TLS_LEVEL_NONE: smtp.client.tls is the level */
	const gw_domain_tls *tls_policy;   /* per-destination STARTTLS policy, or NULL: the global level */
	const char *const *bind_addresses; /* source addresses used in turn, or none */
	size_t nbind;
	unsigned dest_concurrency;    /* connections at once per destination; 0: 20 */
	unsigned dest_idle;           /* idle connections kept per destination; 0: 2 */
	unsigned idle_ms;             /* how long an idle connection is kept; 0: 30000 */
	unsigned health_window_ms;    /* 0: 60000 */
	unsigned health_min_failures; /* 0: disables the health check */
	unsigned health_retry_ms;     /* 0: 10000 */
} gwl_relay_conf;

typedef struct gwl_relay_msg {
	const char *sender;                  /* "" for the null sender */
	const char *body_type, *ret, *envid; /* ESMTP parameters to pass on, or NULL */
	int smtputf8;
	const gw_lmtp_rcpt *rcpts;
	size_t nrcpts;
	const gwl_spool *body;
	const char *client;   /* for logs: the LMTP client */
	const char *queue_id; /* for logs: the internal MTA's queue id, or NULL */
} gwl_relay_msg;

/* Where a recipient's verdict came from, for the log: the destination's address and the session's TLS. */
typedef struct gwl_relay_detail {
	char peer[GW_PEER_TEXT_MAX]; /* "[192.0.2.1]:25"; "" when no connection was made */
	char tls[GW_TLS_TEXT_MAX];   /* "TLSv1.3 TLS_AES_256_GCM_SHA384"; "" for plain text */
	char dane[24];               /* under dane/dane-only: "verified", "failed", "no-tlsa", ...; else "" */
} gwl_relay_detail;

typedef struct gwl_relay gwl_relay;

/* A relay with this configuration (copied; routes and strings must outlive it). NULL on ENOMEM. */
gwl_relay *gwl_relay_new(const gwl_relay_conf *conf);
/* Close idle connections, free, set *r to NULL. No delivery may be running. */
void gwl_relay_free(gwl_relay **r);

/*
 * Deliver m to its recipients within deadline_ms. results_r (and details_r,
 * which may be NULL) have room for m->nrcpts. Returns when every recipient has its result and every delivery
 * thread has ended (a thread still running at the deadline has its
 * recipients' results set to TEMPFAIL first; its later outcome is logged as
 * late and otherwise ignored).
 */
void gwl_relay_deliver(gwl_relay *r, const gwl_relay_msg *m, unsigned deadline_ms, gw_lmtp_result *results_r,
		       gwl_relay_detail *details_r);

/* 1 when the relay can reach the outside (or does not know otherwise), 0 when it is sure it cannot. */
int gwl_relay_healthy(gwl_relay *r);

/* Counters for the control socket. */
typedef struct gwl_relay_stats {
	unsigned long transactions, delivered, tempfail, permfail, uncertain, late, connections_reused;
	unsigned long dane_verified,
	    dane_failed; /* recipients through a DANE-verified session / refused by DANE */
} gwl_relay_stats;
void gwl_relay_get_stats(gwl_relay *r, gwl_relay_stats *s_r);

#endif
