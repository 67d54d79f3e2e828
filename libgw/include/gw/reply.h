/*
 * gw/reply.h - incremental SMTP/LMTP reply parser.
 *
 * Fed arbitrary chunks of bytes (a reply may be split anywhere), it returns
 * -1 (error), 0 (all bytes used, need more) or 1 (one whole reply parsed).
 * Handles multi-line replies ("250-..." then "250 ..."), lines ended by CRLF
 * or a bare LF, and RFC 3463 enhanced status codes (class matching the reply
 * code's first digit) which it takes off the start of each line's text.
 * Rejects: codes outside 200-599 (second digit above 5 too), a character
 * other than ' ', '-' or end of line after the code, multi-line replies whose
 * codes differ, NUL and other control bytes (TAB is allowed; bytes >= 0x80 are
 * kept), a line over max_line bytes and a reply over max_reply bytes.
 * After an error the parser must be reset before it is used again.
 *
 * Does not defend against: a peer that sends valid replies forever; callers
 * bound the wait with timeouts.
 */
#ifndef GW_REPLY_H
#define GW_REPLY_H

#include "gw/export.h"

#include <stddef.h>

#define GW_REPLY_LINE_MAX 1000 /* default max line length, CRLF included (RFC 5321 text line) */
#define GW_REPLY_TEXT_MAX 4096 /* hard bound on text kept per reply; also the default max_reply */
#define GW_ENH_MAX        16   /* "5.1.1" fits with room: class.subject(3).detail(3) */

typedef struct gw_reply {
	int code;             /* 200..599; 0 when no reply */
	char enh[GW_ENH_MAX]; /* enhanced status code of the first line, e.g. "5.1.1"; "" if none */
	unsigned nlines;
	size_t text_len;
	char text[GW_REPLY_TEXT_MAX]; /* each line's text after the code, separator and enhanced code,
					 lines joined with '\n', NUL-terminated */
} gw_reply;

typedef struct gw_reply_parser {
	size_t max_line, max_reply;
	/* private */
	char line[GW_REPLY_LINE_MAX + 1];
	size_t line_len;
	size_t reply_bytes;
	int failed;
	gw_reply cur;
} gw_reply_parser;

/* Initialise with limits; 0 means the default. max_line is capped at GW_REPLY_LINE_MAX, max_reply at
 * GW_REPLY_TEXT_MAX. */
GW_API void gw_reply_parser_init(gw_reply_parser *p, size_t max_line, size_t max_reply);
/* Forget any partial reply and error. */
GW_API void gw_reply_parser_reset(gw_reply_parser *p);
/*
 * Parse data[0..len). Returns 1 when a reply is complete: it is copied to
 * *reply_r and *used_r says how many bytes of data it took (the rest belongs to
 * the next reply). Returns 0 when all len bytes were used (*used_r = len) and
 * the reply is not complete yet. Returns -1 on error with *error_r a static
 * description ("reply code out of range", "line too long", ...).
 */
GW_API int gw_reply_parse(gw_reply_parser *p, const char *data, size_t len, size_t *used_r, gw_reply *reply_r,
			  const char **error_r);

/* 2, 3, 4 or 5: the class of a code; 0 if the code is not 200-599. */
static inline int gw_reply_class(int code)
{
	return code >= 200 && code <= 599 ? code / 100 : 0;
}

/* Does the text of the reply (an EHLO/LHLO reply) list keyword? Case-insensitive; *arg_r gets what follows it
 * on that line (or NULL). */
GW_API int gw_reply_has_keyword(const gw_reply *r, const char *keyword, const char **arg_r, size_t *arglen_r);

#endif
