/*
 * macros.h - the one accessor of libmilter macros.
 *
 * Each callback keeps a gwm_macros, so a macro is asked of libmilter at
 * most once per callback, only when needed, and its value is copied with a
 * bound (an over-long value reads as absent).
 *
 * Before the first read in a callback, gwm_macro checks libmilter's macro
 * lists (smfi_ctx.h): smfi_getsymval walks a list two entries at a time, so
 * a macro packet with an odd number of strings (a name without a value, which
 * no MTA sends) would make it read past the list's end and can crash the
 * process. With such a list every macro reads as absent, and that is logged.
 *
 * Does not defend against: that packet when libmilter's context does not
 * have the layout smfi_ctx.h knows (then smfi_getsymval is called as it is).
 * Only the MTA should reach the milter socket (gw-milter(8), SECURITY).
 */
#ifndef GWM_MACROS_H
#define GWM_MACROS_H

#include <libmilter/mfapi.h>

/* The macros gw-milter reads, and the longest value kept. */
enum {
	GWM_MACRO_I,
	GWM_MACRO_V,
	GWM_MACRO_AUTH_AUTHEN,
	GWM_MACRO_RCPT_ADDR,
	GWM_MACRO_RCPT_HOST,
	GWM_MACRO_RCPT_MAILER,
	GWM_MACROS
};
#define GWM_MACRO_VALUE_MAX 512

/* One callback's view of the macros: each read at most once, on first use. */
typedef struct gwm_macros {
	SMFICTX *ctx;
	int pairs;              /* gwm_ctx_macros_ok, asked once: -2 not yet */
	unsigned read, present; /* bit per GWM_MACRO_* */
	char value[GWM_MACROS][GWM_MACRO_VALUE_MAX + 1];
} gwm_macros;

void gwm_macros_init(gwm_macros *m, SMFICTX *ctx);
/* The value of macro which (GWM_MACRO_*), NULL when absent or longer than GWM_MACRO_VALUE_MAX. */
const char *gwm_macro(gwm_macros *m, int which);

#endif
