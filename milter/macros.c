/*
 * macros.c - reading macros once per callback, bounded, and never through
 * smfi_getsymval on a macro list that is not name/value pairs (see macros.h).
 */
#include <string.h>

#include "macros.h"
#include "smfi_ctx.h"
#include "smfi_seam.h"
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
