/*
 * client_int.h - what the client engine's files (client.c, client_pipe.c,
 * client_bdat.c) share, internal to libgw. Names start with cl_.
 *
 * Replies are handed to callbacks one at a time as they are read, so a
 * transaction with many recipients never holds a gw_reply per recipient:
 * the engine keeps one reply in flight, the caller keeps what it needs.
 *
 * Does not defend against: use from several threads at once (one gw_client,
 * one thread).
 */
#ifndef GW_CLIENT_INT_H
#define GW_CLIENT_INT_H

#include <stdint.h>

#include "gw/buf.h"
#include "gw/client.h"
#include "net.h"
#include "tls.h"

#define CL_ERR_MAX  256
#define CL_IN_MAX   8192
#define CL_ARG_MAX  2048 /* longest MAIL/RCPT argument we agree to send */
#define CL_LINE_MAX (CL_ARG_MAX + 64)

struct gw_client {
	gw_client_opts o;
	char *helo_name, *tls_ca_file, *tls_servername, *bind_address; /* owned copies */
	gw_nexthop hop;
	int fd;
	gw_tls_ctx *tls_ctx;
	int tls_ctx_verify; /* tls_ctx was made for GW_TLS_VERIFY (a CA store) */
	gw_tlsa *tlsa;      /* GW_TLS_DANE: the records the certificate must match (owned) */
	size_t ntlsa;
	gw_tls *tls;
	unsigned caps;
	unsigned long size_limit;
	int64_t deadline; /* absolute gw_now_ms(); 0: none */
	gw_stage cur;     /* the stage being worked on */
	gw_stage fail_stage;
	char err[CL_ERR_MAX];
	gw_reply_parser parser;
	char in[CL_IN_MAX];
	size_t in_off, in_len;
	char *body_in, *body_out;       /* allocated at the first body */
	char peer[GW_PEER_TEXT_MAX];    /* address of the last connection, kept after it closes */
	char tls_desc[GW_TLS_TEXT_MAX]; /* "TLSv1.3 TLS_AES_256_GCM_SHA384" of the last session; "" plain */
	/* How replies arrive: each read that fills in[] gets a number and a time. */
	unsigned long in_gen;        /* reads that brought bytes */
	int64_t in_at;               /* when the last of them returned */
	gw_reply_arrival arr;        /* the reply being parsed (reads 0: none of it yet) */
	unsigned long arr_gen;       /* the read its last bytes came from */
	int64_t arr_t0;              /* when its first read returned */
	gw_reply_arrival last_arr;   /* the last whole reply */
	gw_client_reply_fn *hook_fn; /* gw_client_set_reply_hook() */
	void *hook_ctx;
	int watch_fd; /* gw_client_set_watch(): -1 none */
};

/* Called with reply i (0-based) of a series, as soon as it is read. */
typedef void cl_reply_fn(void *ctx, size_t i, const gw_reply *r);

/* Record a failure of the current stage: its status, text and a debug line. Returns s. */
gw_status cl_fail(gw_client *c, gw_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A transport failure whose text is already in c->err: close and report. */
gw_status cl_transport_fail(gw_client *c, gw_net_rc rc);
/* Drop the connection; clean: close_notify to a TLS peer first. */
void cl_close(gw_client *c, int clean);
unsigned cl_reply_timeout(const gw_client *c);
/* got bytes were just read into in[] (0: nothing to note). */
void cl_note_read(gw_client *c, size_t got);
/* Forget the reply in progress: its bytes were thrown away with the parser's state. */
void cl_arrival_reset(gw_client *c);
/* Parse buffered input: 1 with a whole reply in *r, 0 when the buffer ran dry, -1 after a bad reply (closed).
 */
int cl_parse_buffered(gw_client *c, gw_reply *r);
/* Is arg safe to put on a command line? (no CR, LF; bounded) */
int cl_arg_ok(const char *arg);

/*
 * A pipelined series of n commands (RFC 2920) and their replies, in order.
 * command() appends command i, CRLF included, to out (0, or -1 after
 * cl_fail: the session is then closed); stage() names what reply i answers;
 * reply() takes reply i.
 */
typedef struct cl_pipe {
	size_t n;
	int (*command)(void *ctx, size_t i, gw_buf *out);
	gw_stage (*stage)(void *ctx, size_t i);
	cl_reply_fn *reply;
	void *ctx;
} cl_pipe;

/*
 * Write the commands while reading the replies, never blocking on one
 * direction while the other could move, so neither side's buffers can fill
 * up and stall both (a unix socket does not grow them). Commands are
 * formatted a window at a time. *replied_r: replies handed to reply().
 * A transport failure closes the connection; replies the peer sent before it
 * closed are still read and handed on.
 */
gw_status cl_pipeline(gw_client *c, const cl_pipe *p, size_t *replied_r);

/*
 * MAIL, n RCPTs (argument i from rcpt_arg(), which may reuse its buffer; NULL
 * for out of memory) and, when want_data, DATA: pipelined when offered, else
 * one at a time (stopping after a failed MAIL, DATA only after an accepted
 * RCPT). rcpt_reply() gets each RCPT's reply as it comes; mail_r and data_r
 * the others (code 0: none). DATA answered 354 with no accepted RCPT is
 * answered with an empty message (data_r cleared, GW_E_PROTO).
 */
typedef struct cl_envelope_args {
	const char *mail_arg;
	size_t n;
	const char *(*rcpt_arg)(void *ctx, size_t i);
	cl_reply_fn *rcpt_reply;
	void *ctx;
	int want_data;
} cl_envelope_args;

gw_status cl_envelope(gw_client *c, const cl_envelope_args *a, gw_reply *mail_r, gw_reply *data_r);

/*
 * Without waiting: a reply already buffered, or one read by a single
 * non-blocking read. 1 with *r filled; 0 when no whole reply is there yet;
 * -1 when the peer closed, the read failed or the reply was bad (the
 * connection is then closed).
 */
int cl_try_reply(gw_client *c, gw_reply *r);

/*
 * Acknowledge what arrives next at once instead of after the delayed-ACK
 * timer (Linux TCP_QUICKACK; a no-op elsewhere). For a read whose replies
 * may come in two segments: a server that has the first one unacknowledged
 * holds the second small one back (Nagle) until that ACK comes.
 */
void cl_quickack(gw_client *c);

/* gw_client_body() with the final replies handed to fn as they come. */
gw_status cl_body(gw_client *c, const gw_body *body, size_t nreplies, cl_reply_fn *fn, void *ctx,
		  size_t *got_r);

/* gw_client_raw() with the replies handed to fn as they come. */
gw_status cl_raw(gw_client *c, gw_stage stage, const void *data, size_t len, size_t nreplies, cl_reply_fn *fn,
		 void *ctx, size_t *got_r);

#endif
