/*
 * gw/lmtp.h - deliver one message to a gateway over LMTP or SMTP with a
 * result per recipient, and fall back across an ordered list of gateways.
 *
 * A gw_lmtp is one reusable connection (gw/client.h underneath) and the
 * options it was made with. gw_lmtp_send() runs one transaction through one
 * next hop: LHLO (or EHLO), MAIL with SIZE/BODY/SMTPUTF8/RET/ENVID, RCPT with
 * NOTIFY/ORCPT (pipelined when offered), then DATA or, when the server offers
 * CHUNKING, BDAT. In LMTP each accepted RCPT gets its own final reply, in RCPT
 * order (duplicates included); in SMTP the one final reply applies to every
 * accepted recipient. Every recipient always ends with exactly one result:
 *
 *   DELIVERED  2xx final reply
 *   PERMFAIL   5xx (RCPT, MAIL, DATA or the final reply), or refused locally
 *              (bad address, message over the server's SIZE: never sent)
 *   TEMPFAIL   4xx, or a transport failure before the message was complete
 *              (refused, timeout, lost, bad reply, TLS), or a greeting/LHLO
 *              refusal (any code: it is the gateway's problem, not the mail's)
 *   UNCERTAIN  the connection broke after the final dot (or BDAT LAST) before
 *              this recipient's reply came: the gateway may have taken it
 *
 * gw_lmtp_send_fallback() tries the gateways in order. 2xx and 5xx are final;
 * TEMPFAIL recipients, and by default UNCERTAIN ones (opts.uncertain_final = 0:
 * a possible duplicate is better than a lost message), go on to the next
 * gateway, and only they. A recipient that got 2xx is never sent again. The
 * body is rewound between gateways, so it must be rewindable (a buffer, a
 * seekable fd, or a callback with rewind) when there is more than one.
 *
 * Pipelined commands are written while the replies are read, and each reply
 * goes straight into its recipient's result: no socket buffer size can stall
 * a large envelope, and the library keeps no reply per recipient. The body
 * goes out as gw_client_body() sends it (CRLF line ends, lines over 998
 * octets broken with CRLF SPACE as Postfix does); a body with a NUL byte is
 * never sent: every recipient left fails permanently (554 5.6.0, local).
 *
 * Connections are reused: the next transaction to the same hop goes over the
 * same session, with RSET first when the previous transaction did not end
 * cleanly (or always, with opts.always_rset). A reused connection that turns
 * out to be dead before MAIL got any reply is reopened once, transparently.
 * One idle longer than opts.idle_check_ms is asked with an RSET bounded by
 * opts.idle_check_timeout_ms first: a peer that vanished silently (a link
 * cut, a firewall that dropped the flow) costs that bound and a new
 * connection, not a reply timeout.
 *
 * Does not defend against: a server that answers LMTP final replies for the
 * wrong recipients (we trust the order, as RFC 2033 says); 452 "too many
 * recipients" is a temporary failure here, not split into a new transaction;
 * a body source that blocks (it is read synchronously).
 */
#ifndef GW_LMTP_H
#define GW_LMTP_H

#include "gw/export.h"

#include <stddef.h>
#include <sys/types.h>

#include "gw/client.h"
#include "gw/nexthop.h"
#include "gw/reply.h"
#include "gw/route.h"

#define GW_LMTP_TEXT_MAX    512               /* reply text kept per recipient (cut, NUL-terminated) */
#define GW_LMTP_GATEWAY_MAX (GW_HOST_MAX + 9) /* the longest next hop, "[host]:65535", and its NUL */
#define GW_LMTP_RCPTS_MAX   10000             /* recipients per transaction */

typedef enum gw_lmtp_state {
	GW_LMTP_PENDING = 0, /* not decided yet (never in a returned result) */
	GW_LMTP_DELIVERED,
	GW_LMTP_TEMPFAIL,
	GW_LMTP_PERMFAIL,
	GW_LMTP_UNCERTAIN
} gw_lmtp_state;

typedef enum gw_lmtp_stage {
	GW_LMTP_STAGE_NONE = 0,
	GW_LMTP_STAGE_CONNECT,  /* no connection (refused, no route, no address) */
	GW_LMTP_STAGE_GREETING, /* the greeting refused us, or never came */
	GW_LMTP_STAGE_LHLO,     /* LHLO/EHLO/HELO or STARTTLS failed */
	GW_LMTP_STAGE_MAIL,     /* MAIL refused (or SIZE/SMTPUTF8 checked locally) */
	GW_LMTP_STAGE_RCPT,     /* RCPT refused */
	GW_LMTP_STAGE_DATA,     /* DATA/BDAT refused, or the final reply for this recipient */
	GW_LMTP_STAGE_TRANSPORT /* the session broke after it was set up: lost, timeout, bad reply */
} gw_lmtp_stage;

typedef struct gw_lmtp_result {
	gw_lmtp_state state;
	gw_lmtp_stage stage;
	gw_status status;            /* GW_OK: code/enh/text are the peer's reply; else what broke */
	int local;                   /* 1: decided here, not by the peer (code and enh are ours) */
	int code;                    /* the reply code; 0 when no reply (transport failure) */
	char enh[GW_ENH_MAX];        /* enhanced status; for failures without a reply, ours (4.4.1, 4.4.2) */
	char text[GW_LMTP_TEXT_MAX]; /* reply text, lines joined by '\n' (peer text: sanitise before logging)
				      */
	char gateway[GW_LMTP_GATEWAY_MAX]; /* the next hop that gave this result; "" if none */
	unsigned attempts;                 /* gateways this recipient was offered to */
} gw_lmtp_result;

/*
 * A message body: a read callback (gw_body) with an optional rewind and a
 * known size. The memory and fd forms point into the struct itself: do not
 * move or copy it while it is in use.
 */
typedef struct gw_lmtp_body {
	gw_body src;              /* read(): bytes, 0 at the end, -1 on error */
	int (*rewind)(void *ctx); /* back to the first byte: 0, or -1; NULL: cannot */
	void *rewind_ctx;
	long long size; /* bytes, or -1 when unknown (then no SIZE= and no local size check) */
	/* private to the memory and fd forms */
	gw_body_mem mem;
	int fd;
	off_t fd_start;
} gw_lmtp_body;

/* A body held in memory (the data is not copied: keep it alive). */
GW_API void gw_lmtp_body_memory(gw_lmtp_body *b, const char *data, size_t len);
/* A body read from fd from its current offset. Size and rewind when fd is a regular file. 0, or -1 (fstat
 * failed). */
GW_API int gw_lmtp_body_fd(gw_lmtp_body *b, int fd);
/* A body from a read callback; rewind may be NULL; size -1 when unknown. */
GW_API void gw_lmtp_body_callback(gw_lmtp_body *b, ssize_t (*read_fn)(void *ctx, char *buf, size_t len),
				  int (*rewind_fn)(void *ctx), void *ctx, long long size);

typedef struct gw_lmtp_rcpt {
	const char *addr;   /* "user@example.com" or "<user@example.com>" */
	const char *notify; /* DSN NOTIFY value ("SUCCESS,FAILURE", "NEVER") or NULL */
	const char *orcpt;  /* DSN ORCPT value ("rfc822;user@example.com", xtext) or NULL */
} gw_lmtp_rcpt;

/* Called once per recipient with its final result (index into rcpts). */
typedef void gw_lmtp_result_fn(void *ctx, size_t index, const gw_lmtp_rcpt *rcpt,
			       const gw_lmtp_result *result);

typedef struct gw_lmtp_txn {
	const char *sender;    /* "" or "<>" for the null sender, else "user@domain" or "<user@domain>" */
	const char *body_type; /* BODY= value ("7BIT", "8BITMIME", "BINARYMIME"), sent when 8BITMIME is
				  offered; or NULL */
	int smtputf8; /* send SMTPUTF8 (and allow UTF-8 addresses); a server without it fails permanently */
	const char *ret;   /* DSN RET= ("FULL", "HDRS"), sent when DSN is offered; or NULL */
	const char *envid; /* DSN ENVID= (xtext), sent when DSN is offered; or NULL */
	const gw_lmtp_rcpt *rcpts;
	size_t nrcpts;
	gw_lmtp_body *body;
	gw_lmtp_result_fn *on_result; /* may be NULL */
	void *ctx;
} gw_lmtp_txn;

typedef struct gw_lmtp_opts {
	gw_client_opts
	    client; /* proto (GW_PROTO_LMTP or _SMTP), timeouts, deadline per transaction, TLS, HELO name */
	int no_chunking;        /* never BDAT, even when CHUNKING is offered */
	size_t bdat_chunk;      /* body bytes per BDAT chunk; 0: 64 KB */
	int always_rset;        /* RSET before every reused transaction, not only after an unfinished one */
	int uncertain_final;    /* fallback: 0 (default) UNCERTAIN recipients go to the next gateway; 1: they
				   stay */
	unsigned idle_check_ms; /* reuse after this long idle: RSET first; 0: never */
	unsigned idle_check_timeout_ms; /* that RSET's bound; 0: 5000 */
} gw_lmtp_opts;

typedef struct gw_lmtp gw_lmtp;

/* A delivery handle with these options (copied). NULL on ENOMEM. */
GW_API gw_lmtp *gw_lmtp_new(const gw_lmtp_opts *opts);
/* QUIT any open connection (its reply awaited 1 s at most), free, set *l to NULL. */
GW_API void gw_lmtp_free(gw_lmtp **l);
/* QUIT any open connection now (its reply awaited 1 s at most); the handle stays usable. */
GW_API void gw_lmtp_close(gw_lmtp *l);
/*
 * The whole-dialogue deadline (opts.client.deadline_ms) of the next
 * transactions on l, ms from the start of each (0: none); a relay gives each
 * transaction the time its own caller has left.
 */
GW_API void gw_lmtp_set_deadline(gw_lmtp *l, unsigned ms);

/*
 * A hook asked before every attempt through a hop (a new connection or the
 * reuse of an open one): it may change *policy_r (preset to
 * opts.client.tls) and, for GW_TLS_DANE, point *tlsa_r at *ntlsa_r TLSA
 * records for that host (read before the hook's next call). Return 0 to try
 * the hop on those terms, -1 to skip it: the recipients get TEMPFAIL 451
 * 4.7.5 with why as text (the next hop may still take them). DANE uses it
 * to give each MX host its own TLSA records.
 */
typedef int gw_lmtp_hop_tls_fn(void *ctx, const gw_nexthop *hop, gw_tls_policy *policy_r,
			       const gw_tlsa **tlsa_r, size_t *ntlsa_r, char *why, size_t whylen);
/* Use fn (with ctx) from the next send on; NULL: opts.client.tls for every hop again. */
GW_API void gw_lmtp_set_hop_tls(gw_lmtp *l, gw_lmtp_hop_tls_fn *fn, void *ctx);

/*
 * One transaction through hop. results_r has room for txn->nrcpts; each gets
 * its result and txn->on_result is called once per recipient, in order.
 * Returns GW_OK when the session ran to the end of the transaction, else the
 * failure that cut it (the results say what it meant for each recipient);
 * GW_E_LOCAL with no results for bad arguments.
 */
GW_API gw_status gw_lmtp_send(gw_lmtp *l, const gw_nexthop *hop, const gw_lmtp_txn *txn,
			      gw_lmtp_result *results_r);

/*
 * The transaction through hops[0..nhops) in order, each gateway getting only
 * the recipients still TEMPFAIL (and UNCERTAIN unless opts.uncertain_final).
 * Final results as for gw_lmtp_send(); with no gateway at all every recipient
 * is TEMPFAIL. Returns GW_OK when nothing is left temporarily failed or
 * uncertain, else the status of the last failure seen (GW_OK if it was a reply).
 */
GW_API gw_status gw_lmtp_send_fallback(gw_lmtp *l, const gw_nexthop *hops, size_t nhops,
				       const gw_lmtp_txn *txn, gw_lmtp_result *results_r);

/*
 * The same through a route of the route table (gw/route.h): its hops expanded
 * by gw_route_expand() (MX lookups when use_mx), its protocol used. A route
 * without smtp/lmtp/relay transport or whose lookups all failed leaves every
 * recipient TEMPFAIL.
 */
GW_API gw_status gw_lmtp_send_route(gw_lmtp *l, const gw_route *route, int use_mx, const gw_lmtp_txn *txn,
				    gw_lmtp_result *results_r);

/*
 * Where the last gw_lmtp_send*() call's attempt through gateway (a result's
 * gateway field) went: peer address ("[192.0.2.1]:25") and TLS protocol and
 * cipher ("" for plain text), valid until the next send on l. 0, or -1 when
 * that gateway was not tried in the last call.
 */
GW_API int gw_lmtp_hop_detail(const gw_lmtp *l, const char *gateway, const char **peer_r, const char **tls_r);

/* How many of results[0..n) are in state. */
GW_API size_t gw_lmtp_count(const gw_lmtp_result *results, size_t n, gw_lmtp_state state);
/* "pending", "delivered", "tempfail", "permfail", "uncertain". */
GW_API const char *gw_lmtp_state_str(gw_lmtp_state s);
/* "none", "connect", "greeting", "lhlo", "mail", "rcpt", "data", "transport". */
GW_API const char *gw_lmtp_stage_str(gw_lmtp_stage s);

#endif
