/*
 * smfi_seam.h - the few libmilter calls the callbacks make, behind one seam.
 *
 * Callbacks and reply building call gwm_* instead of smfi_* so that unit
 * tests can link their own definitions (recording replies, serving macros
 * from a table) without libmilter or an MTA. smfi_seam.c is the real one.
 *
 * Macros are read through macros.h, which calls gwm_getsymval.
 *
 * Does not defend against: anything; it only forwards.
 */
#ifndef GWM_SMFI_SEAM_H
#define GWM_SMFI_SEAM_H

#include <libmilter/mfapi.h>

/* smfi_setreply: MI_SUCCESS or MI_FAILURE. */
int gwm_setreply(SMFICTX *ctx, const char *rcode, const char *xcode, const char *text);
/* smfi_getsymval: the macro's value, or NULL when the MTA did not send it. */
const char *gwm_getsymval(SMFICTX *ctx, const char *name);
void *gwm_getpriv(SMFICTX *ctx);
int gwm_setpriv(SMFICTX *ctx, void *priv);
/* smfi_setsymlist: only valid inside xxfi_negotiate. */
int gwm_setsymlist(SMFICTX *ctx, int stage, const char *macros);
/* smfi_chgfrom (end of message only; needs SMFIF_CHGFROM): args NULL or the ESMTP parameters. */
int gwm_chgfrom(SMFICTX *ctx, const char *mail, const char *args);
/* smfi_addrcpt / smfi_delrcpt (end of message only; need SMFIF_ADDRCPT / SMFIF_DELRCPT). */
int gwm_addrcpt(SMFICTX *ctx, const char *rcpt);
int gwm_delrcpt(SMFICTX *ctx, const char *rcpt);

#endif
