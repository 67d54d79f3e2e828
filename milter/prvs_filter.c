/*
 * prvs_filter.c - gw-milter's BATV/PRVS decisions (see prvs_filter.h).
 *
 * Each function looks at its arguments only: the ring, the day and the lists
 * come from the caller, so a decision can be replayed in a unit test. The
 * verification itself (HMAC, constant-time compare, expiry window) is
 * libgw's gw_prvs_verify; this file only decides what a result means for a
 * recipient of a given message, and builds the reply text through
 * gwm_reply_sanitize so a recipient's '%' or odd bytes cannot garble it.
 *
 * Does not defend against: a client that varies the case of the tag's local
 * part (the HMAC covers it byte for byte, as Exim's does); lists too long
 * for a linear scan to be cheap (they are meant to hold a few entries).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "prvs_filter.h"

static const char NO_BOUNCE_TEXT[] = "this address sent no mail that could bounce";
static const char EXPIRED_TEXT[] = "bounce to an expired address tag";
static const char PRVS_TEMPFAIL_TEXT[] = "cannot check the address tag now, try again later";

int gwm_prvs_on(const gwm_prvs_conf *pc)
{
	return pc != NULL && pc->ring != NULL;
}

/* The domain of "local@domain" (after the last '@'), or NULL. */
static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL && at[1] != '\0' ? at + 1 : NULL;
}

int gwm_prvs_signing_domain(const gwm_prvs_conf *pc, const char *domain)
{
	size_t i;

	for (i = 0; domain != NULL && i < pc->nsign_domains; i++)
		if (strcasecmp(pc->sign_domains[i], domain) == 0)
			return 1;
	return 0;
}

int gwm_prvs_bounce(const gwm_prvs_conf *pc, const char *sender)
{
	static const char md[] = "mailer-daemon@";

	if (sender == NULL || sender[0] == '\0')
		return 1;
	return pc->verify_mailer_daemon && strncasecmp(sender, md, sizeof(md) - 1) == 0;
}

const char *gwm_prvs_action_str(gwm_prvs_action a)
{
	switch (a) {
	case GWM_PRVS_NONE:
		return "none";
	case GWM_PRVS_PASS:
		return "pass";
	case GWM_PRVS_STRIP:
		return "strip";
	case GWM_PRVS_REJECT:
		return "reject";
	case GWM_PRVS_TEMPFAIL:
		return "tempfail";
	}
	return "?";
}

/* rcode/xcode and "<rcpt>: what", sanitised; action and verdict to match. */
static void set_reply(gwm_reply *r, sfsistat action, const char *rcode, const char *xcode, const char *rcpt,
		      const char *what)
{
	char raw[GWM_REPLY_TEXT_MAX];

	memset(r, 0, sizeof(*r));
	r->action = action;
	r->verdict = action == SMFIS_REJECT ? "reject" : "tempfail";
	snprintf(r->rcode, sizeof(r->rcode), "%s", rcode);
	snprintf(r->xcode, sizeof(r->xcode), "%s", xcode);
	snprintf(raw, sizeof(raw), "<%s>: %s", rcpt, what);
	gwm_reply_sanitize(r->text, sizeof(r->text), raw, strlen(raw), sizeof(raw));
}

static void reject(gwm_prvs_rcpt_dec *d, const char *rcpt, const char *why, const char *text)
{
	d->action = GWM_PRVS_REJECT;
	d->why = why;
	set_reply(&d->reply, SMFIS_REJECT, "550", "5.7.1", rcpt, text);
}

void gwm_prvs_rcpt(const gwm_prvs_conf *pc, long day, int bounce, int trusted, const char *rcpt,
		   gwm_prvs_rcpt_dec *d)
{
	const char *dom;
	int check;

	memset(d, 0, sizeof(*d));
	d->action = GWM_PRVS_NONE;
	d->result = GW_PRVS_NOT_TAGGED;
	d->why = "-";
	if (!gwm_prvs_on(pc) || rcpt == NULL || rcpt[0] == '\0')
		return;
	d->result = gw_prvs_verify(pc->ring, day, rcpt, d->plain, sizeof(d->plain));
	if (d->result == GW_PRVS_VALID) {
		/* Any mail to a tag we made goes to the plain address, bounce or not. */
		d->action = GWM_PRVS_STRIP;
		d->why = "valid tag";
		d->log = 1;
		return;
	}
	/* The address the tag stands for, to judge its domain and exemption. */
	if (d->result != GW_PRVS_BAD_SIGNATURE && d->result != GW_PRVS_EXPIRED &&
	    d->result != GW_PRVS_UNKNOWN_KEY)
		snprintf(d->plain, sizeof(d->plain), "%s", rcpt);
	dom = domain_of(d->plain);
	check = bounce && !trusted && pc->verify && gwm_prvs_signing_domain(pc, dom);
	if (!check) {
		/* Logged: a tag we could not honour, or a bounce to us that a trusted client or verify = no
		 * let by. */
		d->why = "not checked";
		d->log = d->result != GW_PRVS_NOT_TAGGED || (bounce && gwm_prvs_signing_domain(pc, dom));
		d->plain[0] = '\0';
		return;
	}
	d->log = 1;
	if (d->result == GW_PRVS_ERROR) {
		d->action = GWM_PRVS_TEMPFAIL;
		d->why = "error";
		set_reply(&d->reply, SMFIS_TEMPFAIL, "451", "4.3.0", rcpt, PRVS_TEMPFAIL_TEXT);
		d->plain[0] = '\0';
		return;
	}
	if (gw_prvs_listed(d->plain, (const char *const *)pc->exempt, pc->nexempt)) {
		d->why = "exempt";
		/* A tag we cannot honour on an exempt address: deliver to the address it names. */
		if (d->result == GW_PRVS_NOT_TAGGED || d->result == GW_PRVS_MALFORMED) {
			d->action = GWM_PRVS_PASS;
			d->plain[0] = '\0';
		} else {
			d->action = GWM_PRVS_STRIP;
		}
		return;
	}
	switch (d->result) {
	case GW_PRVS_EXPIRED:
		reject(d, rcpt, "expired", EXPIRED_TEXT);
		break;
	case GW_PRVS_NOT_TAGGED:
		reject(d, rcpt, "no tag", NO_BOUNCE_TEXT);
		break;
	default: /* bad signature, unknown key, malformed: not a tag we made */
		reject(d, rcpt, gw_prvs_result_str(d->result), NO_BOUNCE_TEXT);
		break;
	}
	d->plain[0] = '\0';
}

void gwm_prvs_sign(const gwm_prvs_conf *pc, long day, int internal, int authenticated, const char *sender,
		   gwm_prvs_sign_dec *d)
{
	unsigned flags = 0;
	gw_prvs_skip skip = GW_PRVS_SKIP_NONE;
	int rc;

	memset(d, 0, sizeof(*d));
	d->why = "-";
	if (!gwm_prvs_on(pc) || (!internal && !authenticated))
		return; /* inbound mail: nothing to sign, nothing to log */
	d->log = 1;
	if (sender == NULL || sender[0] == '\0') {
		d->why = gw_prvs_skip_str(GW_PRVS_SKIP_NULL);
		return;
	}
	if (!gwm_prvs_signing_domain(pc, domain_of(sender))) {
		d->why = "other domain";
		return;
	}
	if (gw_prvs_listed(sender, (const char *const *)pc->sign_exempt, pc->nsign_exempt))
		flags |= GW_PRVS_EXEMPT;
	rc = gw_prvs_sign(pc->ring, day, sender, flags, d->addr, sizeof(d->addr), &skip);
	if (rc == GW_PRVS_SIGNED) {
		d->sign = 1;
		d->why = "signed";
	} else if (rc == GW_PRVS_UNSIGNED) {
		d->why = gw_prvs_skip_str(skip);
		d->addr[0] = '\0';
	} else {
		d->why = errno == ENOKEY ? "no signing key" : "error";
		d->addr[0] = '\0';
	}
}

void gwm_prvs_conf_clear(gwm_prvs_conf *pc)
{
	size_t i;

	gw_prvs_ring_free(&pc->ring);
	for (i = 0; i < pc->nsign_domains; i++)
		free(pc->sign_domains[i]);
	free(pc->sign_domains);
	for (i = 0; i < pc->nexempt; i++)
		free(pc->exempt[i]);
	free(pc->exempt);
	for (i = 0; i < pc->nsign_exempt; i++)
		free(pc->sign_exempt[i]);
	free(pc->sign_exempt);
	memset(pc, 0, sizeof(*pc));
}
