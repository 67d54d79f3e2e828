/*
 * gw/client.h - synchronous SMTP/LMTP client engine.
 *
 * One gw_client is one connection to one next hop, used by one thread at a
 * time. gw_client_open() connects (non-blocking, with its own timeout),
 * reads the greeting, says EHLO (falling back to HELO) or LHLO, and applies
 * the STARTTLS policy; the commands then send MAIL, RCPT, DATA, RSET, NOOP
 * and QUIT, pipelined when the server offers PIPELINING. Every wait for a
 * reply is bounded by the reply timeout and by one deadline for the whole
 * dialogue (set at open, renewable with gw_client_set_deadline()).
 *
 * Every failure comes back as a gw_status: transport failures (refused,
 * timeout, lost connection, bad reply, TLS failure, protocol error) are never
 * fatal to the process; callers map them to 4xx. GW_OK means "a reply was
 * read"; its code is the caller's to judge (except for open(), where GW_OK
 * means the session is ready and GW_E_REJECTED carries a 4xx/5xx greeting or
 * HELO refusal). SIGPIPE is never raised (MSG_NOSIGNAL).
 *
 * Does not defend against: a peer that trickles bytes slower than the reply
 * timeout but faster than it per byte is still cut by the deadline, not
 * earlier (gw_client_set_reply_hook() reports how each reply arrived, so a
 * caller can tell). (A host name is looked up through gw/dns.h's resolver within the
 * connect timeout and the deadline.)
 */
#ifndef GW_CLIENT_H
#define GW_CLIENT_H

#include "gw/export.h"

#include <stddef.h>
#include <sys/types.h>

#include "gw/dane.h"
#include "gw/nexthop.h"
#include "gw/proto.h"
#include "gw/reply.h"

#define GW_PEER_TEXT_MAX 112 /* "[2001:db8::1]:25" or "unix:/path" (cut) */
#define GW_TLS_TEXT_MAX  64  /* "TLSv1.3 TLS_AES_256_GCM_SHA384" */

typedef enum gw_status {
	GW_OK = 0,
	GW_E_REFUSED,  /* connection refused, host or socket unreachable */
	GW_E_TIMEOUT,  /* connect, reply or whole-dialogue deadline ran out */
	GW_E_LOST,     /* the peer closed or reset the connection */
	GW_E_BADREPLY, /* a reply that does not parse or is over its limits */
	GW_E_TLS,      /* TLS handshake or certificate verification failed */
	GW_E_PROTO,    /* protocol error: STARTTLS required but not offered, unexpected 354, ... */
	GW_E_REJECTED, /* greeting or EHLO/HELO/LHLO answered 4xx/5xx: the reply says why */
	GW_E_RESOLVE,  /* the host name did not resolve */
	GW_E_LOCAL,    /* local failure: memory, sockets, body read error, bad argument */
	GW_E_CONTENT,  /* the message cannot be sent as it is (a NUL byte): permanent, not a transport failure
			*/
	GW_E_CANCELLED /* given up: the descriptor watched with gw_client_set_watch() hung up meanwhile */
} gw_status;

typedef enum gw_stage {
	GW_STAGE_NONE = 0,
	GW_STAGE_CONNECT,
	GW_STAGE_GREETING,
	GW_STAGE_HELLO, /* EHLO, HELO or LHLO */
	GW_STAGE_STARTTLS,
	GW_STAGE_MAIL,
	GW_STAGE_RCPT,
	GW_STAGE_DATA, /* the DATA command and its 354 */
	GW_STAGE_BODY, /* sending the body and reading the final replies */
	GW_STAGE_RSET,
	GW_STAGE_NOOP,
	GW_STAGE_QUIT
} gw_stage;

typedef enum gw_tls_policy {
	GW_TLS_NONE = 0, /* never STARTTLS */
	GW_TLS_MAY,      /* STARTTLS when offered; if the handshake fails, reconnect in plain text */
	GW_TLS_ENCRYPT,  /* STARTTLS required, certificate not checked */
	GW_TLS_VERIFY,   /* STARTTLS required, certificate chain (tls_ca_file) and host name checked */
	GW_TLS_DANE      /* STARTTLS required, certificate checked against the TLSA records given with
			    gw_client_set_tls() (RFC 7672); without records the session fails */
} gw_tls_policy;

/* Server capabilities from the EHLO/LHLO reply. */
enum {
	GW_CAP_PIPELINING = 1 << 0,
	GW_CAP_SIZE = 1 << 1,
	GW_CAP_8BITMIME = 1 << 2,
	GW_CAP_SMTPUTF8 = 1 << 3,
	GW_CAP_STARTTLS = 1 << 4,
	GW_CAP_ENHANCEDSTATUSCODES = 1 << 5,
	GW_CAP_CHUNKING = 1 << 6,
	GW_CAP_DSN = 1 << 7
};

typedef struct gw_client_opts {
	gw_proto proto;
	const char *helo_name;       /* NULL: "localhost" */
	unsigned connect_timeout_ms; /* 0: 10000 */
	unsigned reply_timeout_ms;   /* 0: 300000 (RFC 5321 minimums are longer; callers shorten) */
	unsigned deadline_ms;        /* whole dialogue from open(); 0: none */
	gw_tls_policy tls;
	const char *tls_ca_file; /* trust anchors for GW_TLS_VERIFY; NULL: system default paths */
	const char
	    *tls_servername; /* SNI and name to verify; NULL: the next hop's host (not for IP addresses) */
	const char *bind_address; /* numeric source address, or NULL */
	unsigned default_port;    /* 0: 25 for SMTP, 24 for LMTP */
	size_t max_reply_line;    /* 0: GW_REPLY_LINE_MAX */
	size_t max_reply;         /* 0: GW_REPLY_TEXT_MAX */
} gw_client_opts;

/* A message body source: read() returns bytes (> 0), 0 at the end, or -1 on error. */
typedef struct gw_body {
	ssize_t (*read)(void *ctx, char *buf, size_t len);
	void *ctx;
} gw_body;

/* State for gw_body_from_memory(); keep it alive while the body is read. */
typedef struct gw_body_mem {
	const char *data;
	size_t len, off;
} gw_body_mem;

/* A body read from memory (mem is filled in). */
GW_API void gw_body_from_memory(gw_body *body, gw_body_mem *mem, const char *data, size_t len);
/* A body read from a file descriptor; *fd must stay valid while the body is read. */
GW_API void gw_body_from_fd(gw_body *body, int *fd);

typedef struct gw_client gw_client;

/* A client with these options (copied; strings are copied too). NULL on ENOMEM. */
GW_API gw_client *gw_client_new(const gw_client_opts *opts);
/* Close the connection (without QUIT), free, set *c to NULL. */
GW_API void gw_client_free(gw_client **c);

/* Connect, read the greeting, EHLO/HELO or LHLO, STARTTLS per policy. On GW_E_REJECTED, reply_r (may be NULL)
 * holds the refusal. */
GW_API gw_status gw_client_open(gw_client *c, const gw_nexthop *hop, gw_reply *reply_r);

/* MAIL FROM:arg, where arg is "<path>" plus any parameters. GW_OK: reply_r holds the reply. */
GW_API gw_status gw_client_mail(gw_client *c, const char *arg, gw_reply *reply_r);
/* RCPT TO:arg. */
GW_API gw_status gw_client_rcpt(gw_client *c, const char *arg, gw_reply *reply_r);

/*
 * MAIL, every RCPT and, when want_data, DATA: pipelined when the server
 * offers PIPELINING (written while the replies are read, so any number of
 * recipients goes through any socket buffer), else one command at a time
 * (stopping after a failed MAIL).
 * rcpt_r has room for n replies. A recipient not attempted (MAIL failed) gets
 * code 0. data_r gets DATA's reply (354 means the body must follow, with
 * gw_client_body()); if no RCPT was accepted the DATA reply is still read but
 * a 354 is answered by an empty message so the session stays usable
 * (data_r->code is then reported as 0 and GW_E_PROTO is returned).
 */
GW_API gw_status gw_client_envelope(gw_client *c, const char *mail_arg, const char *const *rcpt_args,
				    size_t n, gw_reply *mail_r, gw_reply *rcpt_r, int want_data,
				    gw_reply *data_r);

/* DATA alone. GW_OK with 354 in reply_r means the body must follow. */
GW_API gw_status gw_client_data(gw_client *c, gw_reply *reply_r);

/*
 * After a 354: stream the body (bare LF and bare CR become CRLF, lines
 * starting with '.' are dot-stuffed, a missing final CRLF is added, a line
 * longer than 998 octets is broken by inserting CRLF and a SPACE as Postfix's
 * smtp_line_length_limit does), send the final ".", then read nreplies replies
 * into replies_r: 1 for SMTP, one per accepted RCPT for LMTP. *got_r says how
 * many replies were read, also on failure (the rest are unknown: the
 * connection broke after the dot). A NUL byte in the body is never sent: the
 * connection is closed without the final dot (the server drops the
 * transaction) and GW_E_CONTENT returned.
 */
GW_API gw_status gw_client_body(gw_client *c, const gw_body *body, gw_reply *replies_r, size_t nreplies,
				size_t *got_r);

/*
 * Low-level hook for commands the engine does not format itself (BDAT, in
 * libgw/client_bdat.c): write data[0..len) exactly as it is (may be empty),
 * then read nreplies replies into replies_r. stage names the step for
 * gw_client_stage(). *got_r (may be NULL) says how many replies were read,
 * also on failure. A transport failure closes the connection, as elsewhere.
 */
GW_API gw_status gw_client_raw(gw_client *c, gw_stage stage, const void *data, size_t len,
			       gw_reply *replies_r, size_t nreplies, size_t *got_r);

GW_API gw_status gw_client_rset(gw_client *c, gw_reply *reply_r);
GW_API gw_status gw_client_noop(gw_client *c, gw_reply *reply_r);
/* QUIT, read its reply (a missing reply is not an error), close. */
GW_API gw_status gw_client_quit(gw_client *c);
/* Close the connection without QUIT. The client may be opened again. */
GW_API void gw_client_close(gw_client *c);

/*
 * The STARTTLS policy for the next connections, with (for GW_TLS_DANE) the
 * TLSA records of the host to be opened next (copied). An open session set
 * up under other terms is closed, so it is never reused under these. 0, or
 * -1 on ENOMEM (nothing changed).
 */
GW_API int gw_client_set_tls(gw_client *c, gw_tls_policy policy, const gw_tlsa *tlsa, size_t ntlsa);

/* Is the connection open and not broken? */
GW_API int gw_client_is_open(const gw_client *c);
/*
 * Without blocking: 1 when the peer has closed the connection or sent bytes
 * unasked (an idle-timeout 421, say), or the client is not open; 0 while the
 * session looks usable. Pools use it to drop dead sessions before reuse.
 */
GW_API int gw_client_peer_closed(gw_client *c);
/*
 * Without reading: 1 when the next reply is already in the client's input
 * buffer, whole (or bytes the parser will refuse), so reading it waits for
 * nothing; 0 when reading it would wait for the server (or the client is
 * not open). Decrypted bytes still inside TLS count as not there. A relay
 * uses it to gather pipelined replies into one write to its own client.
 */
GW_API int gw_client_reply_buffered(const gw_client *c);
/* GW_CAP_* bits of the current session. */
GW_API unsigned gw_client_caps(const gw_client *c);
/* The SIZE the server announced, 0 if none. */
GW_API unsigned long gw_client_size_limit(const gw_client *c);
/* 1 when the session is encrypted. */
GW_API int gw_client_tls_active(const gw_client *c);
/* Renew the whole-dialogue deadline: ms from now (0: none). */
GW_API void gw_client_set_deadline(gw_client *c, unsigned ms);
/*
 * Watch fd (the other leg of a relay, say; -1: none) while waiting for a reply: when its peer hangs up
 * (POLLRDHUP, POLLHUP or POLLERR on fd), the wait ends at once, the connection is closed without QUIT and
 * the command returns GW_E_CANCELLED. Bytes arriving on fd wake nothing and stay unread. Writes, connects
 * and TLS handshakes are not watched (their own timeouts bound them).
 */
GW_API void gw_client_set_watch(gw_client *c, int fd);
/* The address the last connection went to ("[192.0.2.1]:25", "unix:/path"); "" before any. Kept after it
 * closed. */
GW_API const char *gw_client_peer(const gw_client *c);
/* The last session's TLS protocol and cipher ("TLSv1.3 TLS_AES_256_GCM_SHA384"); "" when it was plain text.
 */
GW_API const char *gw_client_tls_desc(const gw_client *c);
/* The stage the last failure happened in. */
GW_API gw_stage gw_client_stage(const gw_client *c);
/* A short description of the last failure (errno text, TLS error, ...), "" if none. */
GW_API const char *gw_client_error(const gw_client *c);

/*
 * How a reply arrived: a tarpit can dribble its replies a byte at a time
 * and still finish each within any reply timeout. Counted from the read
 * that brought the reply's first byte to the one that brought its last; a
 * read is one recv() (or, with TLS, one decrypted read) that carried bytes
 * of this reply, so a reply that shares a read with the one before it
 * counts that read too. The engine only reports; what is too slow is the
 * caller's to judge.
 */
typedef struct gw_reply_arrival {
	unsigned reads;     /* reads that carried bytes of the reply (1 when it came whole) */
	size_t bytes;       /* its bytes as received, CRLFs included */
	unsigned spread_ms; /* from the first of those reads to the last */
} gw_reply_arrival;

/* Called with every reply as soon as it is read (greeting and EHLO included), on the thread using c. It must
 * not call back into c. */
typedef void gw_client_reply_fn(void *ctx, gw_stage stage, const gw_reply *r, const gw_reply_arrival *a);

/* Set (fn NULL: clear) the reply hook. */
GW_API void gw_client_set_reply_hook(gw_client *c, gw_client_reply_fn *fn, void *ctx);
/* How the last reply read arrived (all zero before any). */
GW_API void gw_client_last_arrival(const gw_client *c, gw_reply_arrival *a_r);

/* "ok", "connection refused", "timeout", ... */
GW_API const char *gw_status_str(gw_status s);
/* "connect", "greeting", "hello", ... */
GW_API const char *gw_stage_str(gw_stage s);
/* "none", "may", "encrypt", "verify", "dane" (the words of gw.conf's tls); "unknown" for other values. */
GW_API const char *gw_tls_policy_str(gw_tls_policy p);
/* One of those words in any case -> *policy_r. 0 ok; -1 for any other name (*policy_r unchanged). */
GW_API int gw_tls_policy_parse(const char *name, gw_tls_policy *policy_r);

#endif
