/*
 * lmtp_args.c - check and format the MAIL and RCPT arguments of an LMTP/SMTP
 * transaction (gw/lmtp.h): the path through the RFC 5321 parser (gw/addr.h),
 * then the ESMTP parameters the server offered.
 *
 * Parameters whose extension the server did not offer are left out (DSN's
 * NOTIFY/ORCPT/RET/ENVID, BODY, SIZE), as Postfix does; SMTPUTF8 is checked by
 * the caller because it cannot be left out. Values must be printable ASCII
 * without space or '=' (xtext, RFC 3461): that is all that keeps them from
 * breaking the command line.
 *
 * Does not defend against: values that are well-formed but wrong (an ORCPT
 * that is not xtext-encoded is passed on; the server judges it).
 */
#include <string.h>

#include "gw/addr.h"
#include "lmtp_int.h"

/* Printable ASCII without space and '=', bounded. */
static int value_ok(const char *v)
{
	size_t n = strlen(v), i;

	if (n == 0 || n > GW_PARAM_VALUE_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (ch <= 0x20 || ch >= 0x7f || ch == '=')
			return 0;
	}
	return 1;
}

/* Append " KEY=value" when value is given; -1 when it is malformed. */
static int param(gw_buf *out, const char *key, const char *value, const char **err_r, const char *what)
{
	if (value == NULL)
		return 0;
	if (!value_ok(value)) {
		*err_r = what;
		return -1;
	}
	if (gw_buf_printf(out, " %s=%s", key, value) < 0) {
		*err_r = "out of memory";
		return -1;
	}
	return 0;
}

/* Parse addr as a path and append "<local@domain>". */
static int path(gw_buf *out, const char *addr, unsigned flags, const char **err_r)
{
	char mb[GW_PATH_MAX + 8];
	gw_path p;

	if (addr == NULL) {
		*err_r = "no address";
		return -1;
	}
	if (gw_path_parse(addr, strlen(addr), flags | GW_PATH_BARE, &p, err_r) < 0)
		return -1;
	if (p.mbox.null) {
		mb[0] = '\0';
	} else if (gw_mailbox_format(&p.mbox, mb, sizeof(mb)) >= sizeof(mb)) {
		*err_r = "address too long";
		return -1;
	}
	if (gw_buf_printf(out, "<%s>", mb) < 0) {
		*err_r = "out of memory";
		return -1;
	}
	return 0;
}

int lm_mail_arg(const gw_lmtp_txn *txn, unsigned caps, gw_buf *out, const char **err_r)
{
	const char *s = txn->sender != NULL ? txn->sender : "";
	unsigned flags = GW_PATH_REVERSE | (txn->smtputf8 ? GW_PATH_SMTPUTF8 : 0);
	int dsn = (caps & GW_CAP_DSN) != 0;

	gw_buf_reset(out);
	/* Checked even when not sent, so a bad value fails the same way on every gateway. */
	if ((txn->body_type != NULL && !value_ok(txn->body_type)) ||
	    (txn->ret != NULL && !value_ok(txn->ret)) || (txn->envid != NULL && !value_ok(txn->envid))) {
		*err_r = "bad BODY, RET or ENVID value";
		return -1;
	}
	if (*s == '\0' ? gw_buf_puts(out, "<>") < 0 : path(out, s, flags, err_r) < 0) {
		if (*s == '\0')
			*err_r = "out of memory";
		return -1;
	}
	if ((caps & GW_CAP_SIZE) && txn->body != NULL && txn->body->size >= 0 &&
	    gw_buf_printf(out, " SIZE=%lld", txn->body->size) < 0) {
		*err_r = "out of memory";
		return -1;
	}
	if (param(out, "BODY", (caps & GW_CAP_8BITMIME) ? txn->body_type : NULL, err_r, "bad BODY value") < 0)
		return -1;
	if (txn->smtputf8 && gw_buf_puts(out, " SMTPUTF8") < 0) {
		*err_r = "out of memory";
		return -1;
	}
	if (param(out, "RET", dsn ? txn->ret : NULL, err_r, "bad RET value") < 0 ||
	    param(out, "ENVID", dsn ? txn->envid : NULL, err_r, "bad ENVID value") < 0)
		return -1;
	return 0;
}

int lm_rcpt_arg(const gw_lmtp_rcpt *r, int smtputf8, unsigned caps, gw_buf *out, const char **err_r)
{
	int dsn = (caps & GW_CAP_DSN) != 0;

	gw_buf_reset(out);
	if (path(out, r->addr, GW_PATH_POSTMASTER | (smtputf8 ? GW_PATH_SMTPUTF8 : 0), err_r) < 0)
		return -1;
	/* Checked even when not sent, so a bad value fails the same way on every gateway. */
	if ((r->notify != NULL && !value_ok(r->notify)) || (r->orcpt != NULL && !value_ok(r->orcpt))) {
		*err_r = "bad NOTIFY or ORCPT value";
		return -1;
	}
	if (param(out, "NOTIFY", dsn ? r->notify : NULL, err_r, "bad NOTIFY value") < 0 ||
	    param(out, "ORCPT", dsn ? r->orcpt : NULL, err_r, "bad ORCPT value") < 0)
		return -1;
	return 0;
}
