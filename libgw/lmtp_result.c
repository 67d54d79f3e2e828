/*
 * lmtp_result.c - fill and name per-recipient delivery results (gw/lmtp.h).
 *
 * A reply's class decides the state (2 delivered, 4 temporary, 5 permanent;
 * anything else is a protocol fault, temporary). Failures without a reply get
 * an enhanced code of our own (RFC 3463 4.4.x) so callers can print one line.
 *
 * Does not defend against: nothing here talks to a peer; peer text is copied
 * as it is and only sanitised when logged.
 */
#include <stdio.h>
#include <string.h>

#include "gw/log.h"
#include "lmtp_int.h"

/* Copy src cut to size - 1 bytes (size > 0). */
static void copy_text(char *dst, size_t size, const char *src)
{
	size_t n = src != NULL ? strnlen(src, size - 1) : 0;

	if (n > 0)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

void lm_result_reply(gw_lmtp_result *r, gw_lmtp_stage stage, const gw_reply *reply, const char *gateway)
{
	int cls = gw_reply_class(reply->code);

	r->state = cls == 2 ? GW_LMTP_DELIVERED : cls == 5 ? GW_LMTP_PERMFAIL : GW_LMTP_TEMPFAIL;
	r->stage = stage;
	r->status = GW_OK;
	r->local = 0;
	r->code = reply->code;
	copy_text(r->enh, sizeof(r->enh), reply->enh);
	copy_text(r->text, sizeof(r->text), reply->text);
	copy_text(r->gateway, sizeof(r->gateway), gateway);
}

void lm_result_transport(gw_lmtp_result *r, gw_lmtp_stage stage, gw_status s, int uncertain, const char *why,
			 const char *gateway)
{
	r->state = uncertain ? GW_LMTP_UNCERTAIN : GW_LMTP_TEMPFAIL;
	r->stage = stage;
	r->status = s;
	r->local = 0;
	r->code = 0;
	/* 4.4.1: no answer from host; 4.4.2: bad connection (RFC 3463). */
	copy_text(r->enh, sizeof(r->enh),
		  s == GW_E_REFUSED || s == GW_E_RESOLVE ? "4.4.1"
		  : s == GW_E_TLS                        ? "4.7.0"
		  : s == GW_E_LOCAL                      ? "4.3.0"
							 : "4.4.2");
	if (uncertain)
		snprintf(r->text, sizeof(r->text), "%s after the final dot, delivery uncertain%s%s",
			 gw_status_str(s), why != NULL && *why ? ": " : "", why != NULL ? why : "");
	else
		snprintf(r->text, sizeof(r->text), "%s%s%s", gw_status_str(s),
			 why != NULL && *why ? ": " : "", why != NULL ? why : "");
	copy_text(r->gateway, sizeof(r->gateway), gateway);
}

void lm_result_local(gw_lmtp_result *r, gw_lmtp_state state, gw_lmtp_stage stage, int code, const char *enh,
		     const char *text, const char *gateway)
{
	r->state = state;
	r->stage = stage;
	r->status = state == GW_LMTP_TEMPFAIL ? GW_E_LOCAL : GW_OK;
	r->local = 1;
	r->code = code;
	copy_text(r->enh, sizeof(r->enh), enh);
	copy_text(r->text, sizeof(r->text), text);
	copy_text(r->gateway, sizeof(r->gateway), gateway);
}

void lm_result_log(int level, const char *event, const gw_lmtp_rcpt *rcpt, const gw_lmtp_result *r)
{
	char text[GW_LOG_PEER_MAX * 4 + 8], addr[GW_LOG_PEER_MAX * 4 + 8];
	const char *a = rcpt != NULL && rcpt->addr != NULL ? rcpt->addr : "";

	gw_log_sanitize(text, sizeof(text), r->text, strcspn(r->text, "\n"), GW_LOG_PEER_MAX);
	gw_log_sanitize(addr, sizeof(addr), a, strlen(a), GW_LOG_PEER_MAX);
	gw_log(level, event, "rcpt=<%s> state=%s stage=%s gateway=%s code=%d enh=%s local=%d text=\"%s\"",
	       addr, gw_lmtp_state_str(r->state), gw_lmtp_stage_str(r->stage),
	       r->gateway[0] ? r->gateway : "-", r->code, r->enh[0] ? r->enh : "-", r->local, text);
}

size_t gw_lmtp_count(const gw_lmtp_result *results, size_t n, gw_lmtp_state state)
{
	size_t i, k = 0;

	for (i = 0; i < n && results != NULL; i++)
		k += results[i].state == state;
	return k;
}
