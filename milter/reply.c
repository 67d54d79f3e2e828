/*
 * reply.c - milter answers to RCPT from call-ahead results (see reply.h).
 *
 * Text is composed raw into a bounded buffer, then sanitised once, so the
 * '%' doubling and the length bound apply to everything that is sent,
 * recipient and internal reply alike. The last step of every builder is
 * fix_class(), which enforces "4xx with TEMPFAIL, 5xx with REJECT" and a
 * matching enhanced-code class: a mistake upstream degrades to a generic
 * reply of the right class rather than to a wrong class.
 *
 * Does not defend against: a recipient text that is itself misleading (it is
 * the client's own address, already validated by the caller).
 */
#include <stdio.h>
#include <string.h>

#include "reply.h"
#include "smfi_seam.h"

static const char REJECT_TEXT[] = "Recipient address rejected: User unknown";
static const char TEMPFAIL_TEXT[] =
    "Recipient address verification failed: cannot verify now, try again later";

size_t gwm_reply_sanitize(char *dst, size_t size, const char *src, size_t len, size_t max)
{
	size_t o = 0, i;

	if (size == 0)
		return 0;
	if (src == NULL)
		len = 0;
	if (len > max)
		len = max;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c == '%') {
			if (o + 2 >= size)
				break;
			dst[o++] = '%';
			dst[o++] = '%';
			continue;
		}
		if (o + 1 >= size)
			break;
		if (c == '\r' || c == '\n' || c == '\t')
			c = ' ';
		else if (c < 0x20 || c > 0x7e)
			c = '?';
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	return o;
}

/* An enhanced code "C.S.D" with class C, subject and detail of 1-3 digits. */
static int enh_valid(const char *e, char cls)
{
	size_t n;

	if (e == NULL || e[0] != cls || e[1] != '.')
		return 0;
	e += 2;
	n = strspn(e, "0123456789");
	if (n < 1 || n > 3 || e[n] != '.')
		return 0;
	e += n + 1;
	n = strspn(e, "0123456789");
	return n >= 1 && n <= 3 && e[n] == '\0';
}

/* rcode or xcode may point into r itself, hence the copies. */
static void set_codes(gwm_reply *r, const char *rcode, const char *xcode)
{
	char rc[sizeof(r->rcode)], xc[sizeof(r->xcode)];

	snprintf(rc, sizeof(rc), "%s", rcode);
	snprintf(xc, sizeof(xc), "%s", xcode);
	memcpy(r->rcode, rc, sizeof(rc));
	memcpy(r->xcode, xc, sizeof(xc));
}

/* Compose "<rcpt>: what" plus an optional revealed tail, then sanitise. */
static void set_text(gwm_reply *r, const char *rcpt, const char *what, const char *tail)
{
	char raw[GWM_REPLY_TEXT_MAX];

	if (rcpt != NULL)
		snprintf(raw, sizeof(raw), "<%s>: %s%s", rcpt, what, tail != NULL ? tail : "");
	else
		snprintf(raw, sizeof(raw), "%s%s", what, tail != NULL ? tail : "");
	gwm_reply_sanitize(r->text, sizeof(r->text), raw, strlen(raw), sizeof(raw));
}

/* Enforce the class rules whatever the builders did. */
static void fix_class(gwm_reply *r)
{
	if (r->action == SMFIS_TEMPFAIL) {
		if (r->rcode[0] != '4' || strcmp(r->rcode, "421") == 0)
			set_codes(r, "451", "4.4.1");
		if (!enh_valid(r->xcode, '4'))
			set_codes(r, r->rcode, "4.4.1");
	} else if (r->action == SMFIS_REJECT) {
		if (r->rcode[0] != '5')
			set_codes(r, "550", "5.1.1");
		if (!enh_valid(r->xcode, '5'))
			set_codes(r, r->rcode, "5.1.1");
	} else {
		r->rcode[0] = r->xcode[0] = r->text[0] = '\0';
	}
}

static void clear(gwm_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->action = SMFIS_CONTINUE;
	r->verdict = "accept";
}

int gwm_reply_unreachable(const gw_ca_result *res)
{
	if (res->source == GW_CA_SRC_DOWN)
		return 1;
	if (res->code != 0)
		return 0; /* it answered: a 4xx is the MTA's own word, not an outage */
	return res->status == GW_E_REFUSED || res->status == GW_E_TIMEOUT || res->status == GW_E_LOST ||
	       res->status == GW_E_RESOLVE;
}

/* The revealed tail: " (HOP said: CODE ENH TEXT)" or " (HOP: why)". */
static void reveal_tail(const gw_ca_result *res, char *buf, size_t size)
{
	char peer[GWM_REPLY_PEER_MAX + 1];
	size_t tl = strnlen(res->text, sizeof(res->text));
	const char *hop = res->hop[0] != '\0' ? res->hop : "internal MTA";

	/* Raw here: set_text sanitises the whole line once. Only cut it now. */
	snprintf(peer, sizeof(peer), "%.*s", (int)(tl < GWM_REPLY_PEER_MAX ? tl : GWM_REPLY_PEER_MAX),
		 res->text);
	if (res->code != 0)
		snprintf(buf, size, " (%s said: %d%s%s %s)", hop, res->code, res->enh[0] != '\0' ? " " : "",
			 res->enh, peer);
	else
		snprintf(buf, size, " (%s: %s)", hop, peer[0] != '\0' ? peer : "no answer");
}

/* The 4xx code and class for a temporary result. */
static void tempfail_codes(const gw_ca_result *res, gwm_reply *r)
{
	set_codes(r, "451", "4.4.1");
	if (res->status != GW_OK || res->source == GW_CA_SRC_DOWN || res->source == GW_CA_SRC_LIMIT)
		return; /* no reply inside a transaction: the generic "cannot verify now" */
	if (res->code == 552) {
		set_codes(r, "452", "4.2.2");
	} else if (res->code >= 400 && res->code <= 499 && res->code != 421) {
		char code[4] = {(char)('0' + res->code / 100), (char)('0' + res->code / 10 % 10),
				(char)('0' + res->code % 10), '\0'};
		set_codes(r, code, enh_valid(res->enh, '4') ? res->enh : "4.4.1");
	}
}

void gwm_reply_for_result(const gwm_reply_opts *o, const char *rcpt, const gw_ca_result *res, gwm_reply *r)
{
	char tail[GWM_REPLY_PEER_MAX + GW_HOST_MAX + 64];

	clear(r);
	tail[0] = '\0';
	if (o->reveal_internal)
		reveal_tail(res, tail, sizeof(tail));
	switch (res->verdict) {
	case GW_VERDICT_ACCEPT:
		break;
	case GW_VERDICT_REJECT:
		r->action = SMFIS_REJECT;
		r->verdict = "reject";
		set_codes(r, "550", "5.1.1");
		set_text(r, rcpt, REJECT_TEXT, tail);
		break;
	case GW_VERDICT_TEMPFAIL:
	default:
		if (o->fail_open && gwm_reply_unreachable(res)) {
			r->verdict = "fail-open";
			break;
		}
		r->action = SMFIS_TEMPFAIL;
		r->verdict = "tempfail";
		tempfail_codes(res, r);
		set_text(r, rcpt, TEMPFAIL_TEXT, tail);
		break;
	}
	fix_class(r);
}

void gwm_reply_directory(const char *rcpt, gw_dir_answer a, gwm_reply *r)
{
	clear(r);
	if (a == GW_DIR_EXISTS)
		return;
	if (a == GW_DIR_UNKNOWN) {
		r->action = SMFIS_REJECT;
		r->verdict = "reject";
		set_codes(r, "550", "5.1.1");
		set_text(r, rcpt, REJECT_TEXT, NULL);
	} else {
		r->action = SMFIS_TEMPFAIL;
		r->verdict = "tempfail";
		set_codes(r, "451", "4.4.3");
		set_text(r, rcpt, TEMPFAIL_TEXT, NULL);
	}
	fix_class(r);
}

void gwm_reply_bad_input(const char *why, gwm_reply *r)
{
	char what[160];

	clear(r);
	r->action = SMFIS_REJECT;
	r->verdict = "reject";
	set_codes(r, "501", "5.1.3");
	snprintf(what, sizeof(what), "Bad recipient address syntax%s%s", why != NULL ? ": " : "",
		 why != NULL ? why : "");
	set_text(r, NULL, what, NULL);
	fix_class(r);
}

void gwm_reply_unknown_limit(gwm_reply *r)
{
	clear(r);
	r->action = SMFIS_TEMPFAIL;
	r->verdict = "tempfail";
	set_codes(r, "451", "4.7.1");
	set_text(r, NULL, "Too many unknown recipients, try again later", NULL);
	fix_class(r);
}

void gwm_reply_flood(const char *text, gwm_reply *r)
{
	clear(r);
	r->action = SMFIS_TEMPFAIL;
	r->verdict = "tempfail";
	set_codes(r, "451", "4.7.1");
	set_text(r, NULL, text, NULL);
	fix_class(r);
}

void gwm_reply_local_error(const char *rcpt, gwm_reply *r)
{
	clear(r);
	r->action = SMFIS_TEMPFAIL;
	r->verdict = "tempfail";
	set_codes(r, "451", "4.3.0");
	set_text(r, rcpt, TEMPFAIL_TEXT, NULL);
	fix_class(r);
}

void gwm_reply_skip(gwm_reply *r)
{
	clear(r);
	r->verdict = "skip";
}

sfsistat gwm_reply_send(SMFICTX *ctx, const gwm_reply *r)
{
	/* If libmilter refuses the text, the MTA still applies the action with its own text. */
	if (r->rcode[0] != '\0')
		(void)gwm_setreply(ctx, r->rcode, r->xcode, r->text);
	return r->action;
}
