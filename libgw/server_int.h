/*
 * server_int.h - the server engine's session structure and the seams between its files.
 *
 *   server.c          lifecycle, input/output buffers, gw_srv_next() dispatch
 *   server_line.c     command-line splitter (line ends, overlong lines, NUL, bare CR)
 *   server_cmd.c      command verbs and arguments (MAIL/RCPT through gw/addr.h, BDAT)
 *   server_session.c  the state machine: one handler per command
 *   server_body.c     DATA (unstuffing, end detection, bare newlines) and BDAT chunks
 *   server_reply.c    reply formatting and the LMTP final replies in RCPT order
 *
 * Not installed; nothing here is public API.
 */
#ifndef GW_SERVER_INT_H
#define GW_SERVER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "gw/addr.h"
#include "gw/buf.h"
#include "gw/server.h"

#define SRV_HELO_MAX 255 /* the HELO name kept for the event */
#define SRV_AUTH_MAX 500 /* AUTH= value (esmtp-value bound) */
#define SRV_QUEUE    4   /* informational events produced by one command */

typedef enum gws_phase {
	SRV_P_INIT = 0, /* before gw_srv_start() */
	SRV_P_CMD,
	SRV_P_ANSWER, /* waiting for gw_srv_reply() */
	SRV_P_DATA,
	SRV_P_BDAT,
	SRV_P_TLS,
	SRV_P_CLOSED
} gws_phase;

typedef enum gws_pending { SRV_A_NONE = 0, SRV_A_MAIL, SRV_A_RCPT, SRV_A_FINAL } gws_pending;

/* The verbs the engine knows. */
typedef enum gws_verb {
	SRV_V_UNKNOWN = 0,
	SRV_V_HELO,
	SRV_V_EHLO,
	SRV_V_LHLO,
	SRV_V_MAIL,
	SRV_V_RCPT,
	SRV_V_DATA,
	SRV_V_BDAT,
	SRV_V_RSET,
	SRV_V_NOOP,
	SRV_V_QUIT,
	SRV_V_VRFY,
	SRV_V_HELP,
	SRV_V_STARTTLS,
	SRV_V_UNIMPLEMENTED /* known but not offered: 502 */
} gws_verb;

struct gw_srv {
	gw_srv_config cfg; /* limits resolved; strings point at the copies below */
	char *hostname, *greeting;

	/* Input: in[pos..len) is unprocessed; compacted by gw_srv_feed(). */
	char *in;
	size_t in_len, in_pos, in_cap;
	int discarding; /* inside an overlong command line: drop bytes until LF */
	size_t discarded;
	gw_buf out;
	char *scratch; /* one command's arguments rebuilt without AUTH= (max_line bytes) */

	gws_phase phase;
	gws_pending pending;
	unsigned errors;
	int greeted, esmtp, tls;
	int close_after; /* a 421 was given: close when the answer is complete */
	gw_srv_reason close_reason;
	int close_reported;
	char helo[SRV_HELO_MAX + 1];
	char errtext[320]; /* a reply text built from a parser's message */

	/* Events waiting to be returned, oldest first. */
	gw_srv_event queue[SRV_QUEUE];
	size_t qhead, qlen;

	/* Look-ahead: RCPTs handed out behind the pending answer, and whether a DATA behind them was
	 * announced. */
	size_t ahead;
	int data_announced;

	/* The transaction. */
	int mail;                       /* MAIL accepted */
	int utf8;                       /* MAIL had SMTPUTF8 */
	int binarymime;                 /* MAIL had BODY=BINARYMIME */
	int pend_utf8, pend_binarymime; /* the same for the last MAIL handed out, until it is answered */
	int used_bdat;                  /* a BDAT chunk was taken in this transaction */
	size_t nrcpt;                   /* accepted recipients */
	gw_path path;                   /* the MAIL or RCPT path of the pending event */
	char auth[SRV_AUTH_MAX + 1];
	int has_auth;
	uint64_t declared_size;

	/* The body. */
	int bdat;             /* this body comes by BDAT */
	int bol, bol_crlf;    /* at a line start; reached by a real CRLF (or the start) */
	int inject_crlf;      /* a bare newline was taken: hand out "\r\n" next */
	gw_srv_reason doomed; /* GW_SRV_R_TOO_BIG / _BARE_NEWLINE: discard, refuse at the end */
	uint64_t body_size;
	size_t line_len, long_lines, longest, bare;
	uint64_t bdat_left;  /* octets of the current chunk still to read */
	uint64_t bdat_chunk; /* the current chunk's size, for its 250 */
	int bdat_last;
	int bdat_refuse; /* chunk is read and dropped, then refused with this code */
	const char *bdat_refuse_enh, *bdat_refuse_text;

	/* LMTP final replies given out of order, formatted, until their turn. */
	char **finals;
	size_t finals_next; /* the next recipient whose reply goes out */
};

/* server.c */
void gws_queue_event(gw_srv *s, const gw_srv_event *ev);
void gws_close(gw_srv *s, gw_srv_reason why);
void gws_txn_clear(gw_srv *s);
size_t gws_room(const gw_srv *s);

/* server_line.c: the next command line. 1 with line/len (ending removed) and consumed bytes, 0 need more
 * input; on a bad line returns -1 with the reply to give (*code, *enh, *text). */
int gws_line_next(gw_srv *s, const char **line_r, size_t *len_r, int *code_r, const char **enh_r,
		  const char **text_r);

/* server_cmd.c */
gws_verb gws_cmd_verb(const char *line, size_t len, size_t *argpos_r);
int gws_has_8bit(const char *s, size_t len);
/* MAIL FROM:/RCPT TO: arguments into s->path (and s->auth); 0, or -1 with the reply to give. */
int gws_cmd_path(gw_srv *s, const char *args, size_t len, int is_mail, int *code_r, const char **enh_r,
		 const char **text_r);
/* "BDAT n [LAST]": 0, or -1 on bad syntax. */
int gws_cmd_bdat(const char *args, size_t len, uint64_t *size_r, int *last_r);

/* server_session.c: handle one complete command line. */
void gws_session_command(gw_srv *s, const char *line, size_t len);
/* Look-ahead: hand out the next pipelined RCPT (1), announce a waiting DATA (1), or leave the input (0). */
int gws_session_ahead(gw_srv *s);
/* The driver's answer to MAIL/RCPT arrived (code already validated). */
void gws_session_answered(gw_srv *s, int code);
/* A bad command: reply, count, 421 at the limit. */
void gws_session_error(gw_srv *s, int code, const char *enh, const char *text);

/* server_body.c: one step of the body. Returns 1 with *ev filled (BODY, DATA_END or RESET), 0 when it
 * needs more input, 2 when the body or chunk is over and the phase has changed. */
int gws_body_step(gw_srv *s, gw_srv_event *ev);
void gws_body_begin(gw_srv *s, int bdat);

/* server_reply.c */
/* Append one reply; enh NULL or "" leaves it out. Text lines split at '\n', sanitised, cut. */
void gws_reply(gw_srv *s, int code, const char *enh, const char *text);
/* Format into a fresh malloc'd string (NULL on ENOMEM). */
char *gws_reply_format(const gw_srv *s, int code, const char *enh, const char *text);
/* Check a driver's code and enhanced code (NULL enh: ok). 0 or -1. */
int gws_reply_check(int code, const char *enh);
/* The same final reply for every accepted recipient (LMTP) or once (SMTP). */
void gws_reply_final_all(gw_srv *s, int code, const char *enh, const char *text);
/* LMTP: store or emit the final reply of recipient idx; 1 when all are out. -1 errno as gw_srv_reply_rcpt. */
int gws_reply_final(gw_srv *s, size_t idx, int code, const char *enh, const char *text);
void gws_reply_finals_free(gw_srv *s);

#endif
