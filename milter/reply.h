/*
 * reply.h - turn a call-ahead result into the milter's answer to RCPT.
 *
 *   accept                -> SMFIS_CONTINUE, no text
 *   reject                -> 550 5.1.1 "<rcpt>: Recipient address rejected: User unknown", SMFIS_REJECT
 *   tempfail              -> 451 4.4.1 "<rcpt>: Recipient address verification failed: cannot
 *                            verify now, try again later", SMFIS_TEMPFAIL; when the internal MTA
 *                            itself answered 4xx (not 421) in the transaction, its code and its
 *                            4.x.x class; 552 becomes 452 4.2.2 (RFC 5321: temporary at RCPT)
 *   tempfail, fail_open,  -> SMFIS_CONTINUE, verdict "fail-open"
 *   cause unreachable
 *   bad recipient syntax  -> 501 5.1.3, SMFIS_REJECT
 *   unknown-recipient cap -> 451 4.7.1, SMFIS_TEMPFAIL
 *   flood guard           -> 451 4.7.1, SMFIS_TEMPFAIL (high-load mode)
 *   directory answers     -> exists: accept; unknown: 550 5.1.1; temporary: 451 4.4.3
 *
 * With reveal_internal the internal MTA's host and reply are appended. Every
 * text goes through gwm_reply_sanitize: printable ASCII only, '%' doubled
 * (smfi_setreply treats the text as a format), bounded length. A final check
 * forces 4xx with TEMPFAIL and 5xx with REJECT, so a temporary cause can
 * never come out as 5xx and libmilter never silently drops the text.
 *
 * Does not defend against: an MTA that replaces our text with its own.
 */
#ifndef GWM_REPLY_H
#define GWM_REPLY_H

#include <stddef.h>

#include <libmilter/mfapi.h>

#include "gw/callahead.h"
#include "gw/directory.h"

/* The longest reply text kept, NUL included; below libmilter's MAXREPLYLEN (980). */
#define GWM_REPLY_TEXT_MAX 900
/* The most bytes of the internal MTA's text echoed with reveal_internal. */
#define GWM_REPLY_PEER_MAX 200

typedef struct gwm_reply_opts {
	int reveal_internal;
	int fail_open;
} gwm_reply_opts;

typedef struct gwm_reply {
	sfsistat action;     /* SMFIS_CONTINUE, SMFIS_REJECT or SMFIS_TEMPFAIL */
	const char *verdict; /* for the log: accept, reject, tempfail, fail-open, skip */
	char rcode[4];       /* "" when no reply is set */
	char xcode[GW_ENH_MAX];
	char text[GWM_REPLY_TEXT_MAX]; /* sanitised, '%' doubled */
} gwm_reply;

/* The reply for a call-ahead result on rcpt ("local@domain"). */
void gwm_reply_for_result(const gwm_reply_opts *o, const char *rcpt, const gw_ca_result *res, gwm_reply *r);
/*
 * The reply for a directory answer on rcpt: exists -> accept; unknown -> 550
 * 5.1.1 (as a call-ahead reject); temporary -> 451 4.4.3 (directory server
 * failure), never a 5xx.
 */
void gwm_reply_directory(const char *rcpt, gw_dir_answer a, gwm_reply *r);
/* 501 5.1.3 for a recipient that does not parse; why is a static message from the parser. */
void gwm_reply_bad_input(const char *why, gwm_reply *r);
/* 451 4.7.1: too many unknown recipients from this client. */
void gwm_reply_unknown_limit(gwm_reply *r);
/* 451 4.7.1 with text (the bounce-flood guard: high-load mode, per-network probe slots). */
void gwm_reply_flood(const char *text, gwm_reply *r);
/* 451 4.3.0: a local failure (memory) kept us from asking. */
void gwm_reply_local_error(const char *rcpt, gwm_reply *r);
/* Not checked: SMFIS_CONTINUE with verdict "skip". */
void gwm_reply_skip(gwm_reply *r);
/* Set the reply text (if any) through the seam and return the action. */
sfsistat gwm_reply_send(SMFICTX *ctx, const gwm_reply *r);

/*
 * Copy at most max bytes of src[0..len) into dst as reply text: printable
 * ASCII kept, CR/LF/TAB become a space, other bytes '?', '%' doubled. Never
 * splits a "%%". Always NUL-terminates when size > 0. Returns strlen(dst).
 */
size_t gwm_reply_sanitize(char *dst, size_t size, const char *src, size_t len, size_t max);
/* Is the cause of a tempfail "the internal MTA could not be reached" (what fail_open covers)? */
int gwm_reply_unreachable(const gw_ca_result *res);

#endif
