/*
 * smfi_seam.c - the real seam: each gwm_* call forwards to libmilter.
 *
 * libmilter's prototypes take char * where it only reads, so the casts here
 * are the one place that drops const. gwm_macro is the one accessor of
 * macros, guarded against libmilter's macro walk (see smfi_seam.h).
 */
#include <string.h>

#include "smfi_seam.h"
#include "smfi_ctx.h"
#include "gw/log.h"

static const char *const macro_names[GWM_MACROS] = {
    "i", "v", "{auth_authen}", "{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}",
};

void gwm_macros_init(gwm_macros *m, SMFICTX *ctx)
{
	m->ctx = ctx;
	m->pairs = -2;
	m->read = m->present = 0;
}

const char *gwm_macro(gwm_macros *m, int which)
{
	const char *v;
	size_t n;

	if (which < 0 || which >= GWM_MACROS)
		return NULL;
	if (m->pairs == -2) {
		m->pairs = gwm_ctx_macros_ok(m->ctx);
		if (m->pairs == 0)
			gw_log(GW_LOG_WARNING, "macros",
			       "error=\"a macro list with a name and no value\" action=\"macros ignored\"");
	}
	if (m->pairs == 0)
		return NULL;
	if (!(m->read & (1u << which))) {
		m->read |= 1u << which;
		v = m->ctx != NULL ? gwm_getsymval(m->ctx, macro_names[which]) : NULL;
		if (v != NULL && (n = strnlen(v, GWM_MACRO_VALUE_MAX + 1)) <= GWM_MACRO_VALUE_MAX) {
			memcpy(m->value[which], v, n);
			m->value[which][n] = '\0';
			m->present |= 1u << which;
		}
	}
	return (m->present & (1u << which)) ? m->value[which] : NULL;
}

int gwm_setreply(SMFICTX *ctx, const char *rcode, const char *xcode, const char *text)
{
	return smfi_setreply(ctx, (char *)rcode, (char *)xcode, (char *)text);
}

const char *gwm_getsymval(SMFICTX *ctx, const char *name)
{
	return smfi_getsymval(ctx, (char *)name);
}

void *gwm_getpriv(SMFICTX *ctx)
{
	return smfi_getpriv(ctx);
}

int gwm_setpriv(SMFICTX *ctx, void *priv)
{
	return smfi_setpriv(ctx, priv);
}

int gwm_setsymlist(SMFICTX *ctx, int stage, const char *macros)
{
	return smfi_setsymlist(ctx, stage, (char *)macros);
}

int gwm_chgfrom(SMFICTX *ctx, const char *mail, const char *args)
{
	return smfi_chgfrom(ctx, (char *)mail, (char *)args);
}

int gwm_addrcpt(SMFICTX *ctx, const char *rcpt)
{
	return smfi_addrcpt(ctx, (char *)rcpt);
}

int gwm_delrcpt(SMFICTX *ctx, const char *rcpt)
{
	return smfi_delrcpt(ctx, (char *)rcpt);
}
