/*
 * gw/server.h - sans-IO SMTP/LMTP server engine: command parser and session state machine.
 *
 * The driver owns the socket, the clock and the threads; the engine owns the
 * protocol. The driver feeds whatever bytes arrived (any split: one byte at a
 * time gives the same replies as the whole batch), then calls gw_srv_next()
 * until it returns GW_SRV_EV_NONE, acting on each event, and writes whatever
 * the engine appended to gw_srv_output(). Replies to a pipelined batch
 * accumulate there, so one write sends them all (RFC 2920).
 *
 * The driver decides every message's fate: MAIL, each RCPT and the end of
 * the data are events it answers with gw_srv_reply() (or, for LMTP's one
 * final reply per accepted recipient, gw_srv_reply_rcpt() by index, in any
 * order: the engine emits them in RCPT order and takes exactly one for each).
 * An answer may come later (after relaying): until it does the engine keeps
 * the following pipelined input buffered (at most max_input bytes; the driver
 * stops reading when gw_srv_input_room() is 0) and processes nothing more.
 * The body is streamed as GW_SRV_EV_BODY chunks, never held whole.
 *
 * Look-ahead (gw_srv_config.lookahead, for relays that pipeline towards
 * their own next hop, RFC 2920): while MAIL or RCPT answers are owed, the
 * engine goes on handing out the RCPTs the client pipelined behind them,
 * each as its own GW_SRV_EV_RCPT, so the driver can send them on together.
 * The driver answers them in the order they came (gw_srv_reply() answers
 * the oldest one owed) and the replies go out in that order. Any other
 * command (and a RCPT the engine would refuse itself: syntax, recipient
 * limit) waits until every answer is in and is then handled as without
 * look-ahead, so the engine's own replies stay in command order; a DATA
 * waiting there is announced once by GW_SRV_EV_DATA_AHEAD (the driver may
 * send DATA on ahead; the engine still answers it itself, 354 with
 * GW_SRV_EV_DATA or a refusal, once the answers are in). A RCPT handed out
 * behind a MAIL that is then refused gets the engine's "503 5.5.1 need
 * MAIL", whatever the driver answers. Without look-ahead (the default) the
 * next command waits for the previous answer, as above.
 *
 * Commands: LHLO (LMTP) or EHLO/HELO (SMTP; the other mode's greeting is
 * refused with 500 5.5.1), MAIL, RCPT, DATA, BDAT (CHUNKING, with LAST; DATA
 * and BDAT are not mixed in one transaction), RSET, NOOP, QUIT, VRFY (252),
 * HELP, STARTTLS (only when GW_SRV_CAP_STARTTLS; input pipelined after it is
 * discarded and the session returns to the un-greeted state, RFC 3207).
 * EXPN, TURN, ETRN, ATRN, AUTH and the SEND family answer 502 5.5.1; any
 * other verb 500 5.5.2. MAIL/RCPT paths and parameters are parsed by
 * gw/addr.h; a parameter the session did not advertise, or one that belongs
 * to the other command, is 555 5.5.4.
 *
 * Bad input, as chosen here:
 *  - Commands: a bare LF ends a command line, as in Postfix; a bare CR or a
 *    NUL in a command is 500 5.5.2; a line over max_line is 500 5.5.6 and the
 *    rest of it is discarded; 8-bit bytes are 500 5.5.2 except in MAIL/RCPT
 *    addresses under SMTPUTF8 (553 5.6.7 otherwise).
 *  - DATA: only <CR><LF>.<CR><LF> ends the data (RFC 5321 smuggling). A bare
 *    LF or bare CR in the body is, like Postfix's smtpd_forbid_bare_newline:
 *    GW_SRV_BARE_NORMALIZE (default) turned into CRLF in the body the driver
 *    gets (so no bare newline is ever passed on); GW_SRV_BARE_REJECT: the
 *    message is refused with 550 5.5.2 after its end, body discarded. A line
 *    of just "." that did not follow a real CRLF is kept as content ".".
 *  - Body over max_size: 552 5.3.4 after the end (BDAT: at the chunk that
 *    went over), body discarded, GW_SRV_EV_RESET. Lines over max_text_line
 *    are counted and reported at GW_SRV_EV_DATA_END; the driver decides.
 *    A refused body may already have been handed out in part (it streams):
 *    GW_SRV_EV_RESET is the driver's word to drop it.
 *  - STARTTLS: input the engine holds after the command is dropped; bytes
 *    the driver read but did not feed yet are its own to drop.
 *  - After max_errors bad commands: 421 4.7.0 and GW_SRV_EV_CLOSE.
 * Every reply is a well-formed SMTP reply; all but the greeting and the
 * HELO/EHLO/LHLO answer carry an enhanced status code (RFC 2034) unless
 * GW_SRV_CAP_ENHANCEDSTATUSCODES is off.
 *
 * Does not defend against: slow clients (the driver bounds time, using
 * gw_srv_waiting() to pick the timeout); AUTH (the engine never
 * authenticates; AUTH= on MAIL is syntax-checked and passed on); a BDAT
 * chunk's bytes after a BDAT line that could not be parsed are read as
 * commands (nothing tells where they end). BDAT bodies are passed as they
 * came: no line-length count, no newline policy (RFC 3030 binary).
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include "gw/export.h"

#include <stddef.h>
#include <stdint.h>

#include "gw/addr.h"
#include "gw/buf.h"

#define GW_SRV_LINE_DEFAULT      512   /* command line, CRLF included (RFC 5321 4.5.3.1.4) */
#define GW_SRV_TEXT_LINE_DEFAULT 1000  /* text line in DATA, CRLF included (RFC 5321 4.5.3.1.6) */
#define GW_SRV_RCPTS_DEFAULT     100   /* accepted recipients per transaction (RFC 5321 4.5.3.1.8) */
#define GW_SRV_ERRORS_DEFAULT    20    /* bad commands before 421 (Postfix smtpd_hard_error_limit) */
#define GW_SRV_INPUT_DEFAULT     65536 /* pipelined input held while an answer is pending */
#define GW_SRV_OUTPUT_DEFAULT    65536 /* unsent replies before the engine stops reading commands */
#define GW_SRV_REPLY_MAX         2048  /* one formatted reply; longer driver text is cut */

typedef enum gw_srv_mode { GW_SRV_SMTP = 0, GW_SRV_LMTP = 1 } gw_srv_mode;

/* Capabilities: what EHLO/LHLO advertises and the parameters that are accepted. */
enum {
	GW_SRV_CAP_PIPELINING = 1u << 0,
	GW_SRV_CAP_ENHANCEDSTATUSCODES = 1u << 1,
	GW_SRV_CAP_8BITMIME = 1u << 2,
	GW_SRV_CAP_SIZE = 1u << 3, /* "SIZE n" with max_size, "SIZE" when there is no limit */
	GW_SRV_CAP_SMTPUTF8 = 1u << 4,
	GW_SRV_CAP_DSN = 1u << 5,        /* RET, ENVID, NOTIFY, ORCPT */
	GW_SRV_CAP_CHUNKING = 1u << 6,   /* BDAT */
	GW_SRV_CAP_BINARYMIME = 1u << 7, /* BODY=BINARYMIME (needs CHUNKING) */
	GW_SRV_CAP_STARTTLS = 1u << 8,   /* TLS is available: advertise and accept STARTTLS */
	GW_SRV_CAP_AUTH_PARAM = 1u << 9, /* accept MAIL ... AUTH=<xtext>|<> (not advertised) */
	GW_SRV_CAP_DEFAULT = GW_SRV_CAP_PIPELINING | GW_SRV_CAP_ENHANCEDSTATUSCODES | GW_SRV_CAP_8BITMIME |
			     GW_SRV_CAP_SIZE | GW_SRV_CAP_SMTPUTF8 | GW_SRV_CAP_DSN | GW_SRV_CAP_CHUNKING
};

typedef enum gw_srv_bare { GW_SRV_BARE_NORMALIZE = 0, GW_SRV_BARE_REJECT = 1 } gw_srv_bare;

typedef struct gw_srv_config {
	gw_srv_mode mode;
	const char *hostname; /* first line of the EHLO/LHLO reply, 221 and 421 text (copied) */
	const char *greeting; /* 220 text; NULL: "<hostname> ESMTP" or "<hostname> LMTP" (copied) */
	unsigned caps;        /* GW_SRV_CAP_* */
	gw_srv_bare bare_newline;
	/* Limits; 0 means the default above. */
	size_t max_line;
	size_t max_text_line;
	size_t max_rcpts;
	uint64_t max_size; /* message bytes (after dot-unstuffing); 0: no limit */
	unsigned max_errors;
	size_t max_input;
	size_t max_output;
	int lookahead; /* hand out pipelined RCPTs before the earlier answers (see above); 0: no */
} gw_srv_config;

typedef enum gw_srv_event_type {
	GW_SRV_EV_NONE =
	    0,          /* nothing to do until input, an answer, TLS or output room: see gw_srv_waiting() */
	GW_SRV_EV_HELO, /* HELO/EHLO/LHLO answered: helo, esmtp. Informational */
	GW_SRV_EV_MAIL, /* answer with gw_srv_reply(): path, auth, size; 2xx starts the transaction */
	GW_SRV_EV_RCPT, /* answer with gw_srv_reply(): path, rcpt_index; 2xx accepts */
	GW_SRV_EV_DATA, /* the body starts (354 sent for DATA; first chunk for BDAT): bdat */
	GW_SRV_EV_BODY, /* data[0..len): body bytes, unstuffed, CRLF line ends (DATA) */
	GW_SRV_EV_DATA_END, /* body complete: answer (SMTP: gw_srv_reply; LMTP: one per accepted RCPT) */
	GW_SRV_EV_RESET, /* the transaction the driver accepted is gone (RSET, HELO, refused body): reason */
	GW_SRV_EV_STARTTLS,  /* write the output, start TLS, then call gw_srv_tls_started() */
	GW_SRV_EV_CLOSE,     /* write the output and close: reason. Any transaction is gone */
	GW_SRV_EV_DATA_AHEAD /* look-ahead: a DATA waits behind the answers owed. Informational */
} gw_srv_event_type;

typedef enum gw_srv_reason {
	GW_SRV_R_NONE = 0,
	GW_SRV_R_RSET,         /* RESET: RSET command */
	GW_SRV_R_HELO,         /* RESET: HELO/EHLO/LHLO in a transaction */
	GW_SRV_R_TOO_BIG,      /* RESET: body over max_size, 552 sent */
	GW_SRV_R_BARE_NEWLINE, /* RESET: bare CR/LF under GW_SRV_BARE_REJECT, 550 sent */
	GW_SRV_R_QUIT,         /* CLOSE: QUIT answered */
	GW_SRV_R_ERRORS,       /* CLOSE: too many errors, 421 sent */
	GW_SRV_R_SHUTDOWN      /* CLOSE: the driver gave a 421 (reply or gw_srv_shutdown) */
} gw_srv_reason;

typedef struct gw_srv_event {
	gw_srv_event_type type;
	gw_srv_reason reason;
	int esmtp;            /* HELO: EHLO or LHLO */
	const char *helo;     /* HELO: the name the client gave */
	const gw_path *path;  /* MAIL, RCPT: valid until the next gw_srv_next() */
	const char *auth;     /* MAIL: the AUTH= value as sent, or NULL (valid as path) */
	uint64_t size;        /* MAIL: SIZE= value (0 if none); DATA_END: body bytes */
	size_t rcpt_index;    /* RCPT: its index if accepted (for gw_srv_reply_rcpt; with look-ahead, if
				 every answer owed before it accepts) */
	size_t nrcpt;         /* DATA_END: accepted recipients (LMTP: replies owed) */
	int bdat;             /* DATA, BODY, DATA_END: the body came by BDAT */
	const char *data;     /* BODY: valid until the next gw_srv_* call */
	size_t len;           /* BODY */
	size_t long_lines;    /* DATA_END: text lines over max_text_line */
	size_t longest_line;  /* DATA_END: longest text line, line end included */
	size_t bare_newlines; /* DATA_END: bare CR/LF turned into CRLF */
} gw_srv_event;

typedef enum gw_srv_wait {
	GW_SRV_WAIT_GREETING = 0, /* gw_srv_start() not called yet */
	GW_SRV_WAIT_COMMAND,      /* reading commands: command timeout */
	GW_SRV_WAIT_BODY,         /* inside DATA or a BDAT chunk: data timeout */
	GW_SRV_WAIT_ANSWER,       /* the driver owes an answer */
	GW_SRV_WAIT_OUTPUT,       /* too much unsent output: write it */
	GW_SRV_WAIT_TLS,          /* STARTTLS: gw_srv_tls_started() */
	GW_SRV_WAIT_CLOSED        /* the session is over */
} gw_srv_wait;

typedef struct gw_srv gw_srv;

/* Defaults: GW_SRV_CAP_DEFAULT, normalise bare newlines, limits 0 (the defaults). */
GW_API void gw_srv_config_init(gw_srv_config *c, gw_srv_mode mode, const char *hostname);
/* A new session (NULL on ENOMEM or EINVAL: no hostname). Nothing is sent until gw_srv_start(). */
GW_API gw_srv *gw_srv_new(const gw_srv_config *c);
/* Free the session and set *s to NULL. */
GW_API void gw_srv_free(gw_srv **s);
/* Queue the 220 greeting. */
GW_API void gw_srv_start(gw_srv *s);
/* Queue "421 4.3.2 <text>" (default text when NULL) and end the session; also instead of
 * gw_srv_start() to refuse a connection. Any answers still owed are dropped. */
GW_API void gw_srv_shutdown(gw_srv *s, const char *text);

/* How many bytes gw_srv_feed() takes now. */
GW_API size_t gw_srv_input_room(const gw_srv *s);
/* Take up to len bytes of client input; returns how many were taken (the rest: feed later). Between
 * GW_SRV_EV_STARTTLS and gw_srv_tls_started(), and once the session is closed, bytes are dropped (all
 * taken). */
GW_API size_t gw_srv_feed(gw_srv *s, const void *data, size_t len);
/* Process input until an event for the driver; fills *ev and returns its type. */
GW_API gw_srv_event_type gw_srv_next(gw_srv *s, gw_srv_event *ev);
/* Replies to send. Write from ->data and gw_buf_consume() what was written. */
GW_API gw_buf *gw_srv_output(gw_srv *s);
/* What the engine waits for. */
GW_API gw_srv_wait gw_srv_waiting(const gw_srv *s);

/*
 * Answer the pending MAIL, RCPT or (SMTP) end of data; in LMTP at the end of
 * data, answer the first recipient not answered yet. code: 2xx, 4xx or 5xx;
 * enh: "x.y.z" with x the code's class, or NULL for a default; text: lines
 * separated by '\n' (control and 8-bit bytes become '?'). A 421 ends the
 * session once the answer is complete. 0, or -1 with errno EINVAL (bad code
 * or enhanced code) or EPROTO (no answer pending).
 */
GW_API int gw_srv_reply(gw_srv *s, int code, const char *enh, const char *text);
/* LMTP end of data: the final reply for accepted recipient index (in any order; each exactly once). 0, or
 * -1 with errno EINVAL, ERANGE (no such recipient), EALREADY (answered) or EPROTO. */
GW_API int gw_srv_reply_rcpt(gw_srv *s, size_t index, int code, const char *enh, const char *text);
/* After GW_SRV_EV_STARTTLS: TLS is up; the client must greet again. */
GW_API void gw_srv_tls_started(gw_srv *s);

/* Answers the driver owes (MAIL, RCPT or end of data; look-ahead: several). */
GW_API size_t gw_srv_owed(const gw_srv *s);

/* Bad commands so far. */
GW_API unsigned gw_srv_errors(const gw_srv *s);

#endif
