/*
 * smfi_seam.c - the real seam: each gwm_* call forwards to libmilter.
 *
 * libmilter's prototypes take char * where it only reads, so the casts here
 * are the one place that drops const. Does not defend against: anything.
 */
#include "smfi_seam.h"

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
