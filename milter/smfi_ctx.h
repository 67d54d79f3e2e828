/*
 * smfi_ctx.h - the two facts gw-milter reads from libmilter's private
 * session context (struct smfi_str, in libmilter/libmilter.h, which is not
 * installed), because libmilter has no call for them:
 *
 *   the session's socket, so that an idle connection can be shut down
 *   (idle.h: libmilter's pool checks its own timeout only every 600 s);
 *   whether every macro list holds name/value pairs, so that smfi_getsymval
 *   is never called on a list with a name and no value (it walks the list two
 *   entries at a time and reads past its end: a crash from one packet).
 *
 * The layout is Sendmail 8.17's (ctx_id a long) on LP64, and it is used only
 * when it checks out, per session: the context's ctx_timeout is the timeout
 * gw-milter set, its ctx_smfi holds gw-milter's own callbacks, and the
 * socket's local address is the milter socket's. When a check fails the
 * caller is told (-1) and falls back to plain libmilter.
 *
 * Does not defend against: a libmilter whose layout differs yet passes those
 * checks by chance; a malformed packet's other effects inside libmilter
 * (none known besides the macro walk).
 */
#ifndef GWM_SMFI_CTX_H
#define GWM_SMFI_CTX_H

#include <libmilter/mfapi.h>

/* What the checks compare with: the timeout given to smfi_settimeout, the
 * registered description, the milter socket (gw.conf syntax). Call once. */
void gwm_ctx_init(long timeout_s, const struct smfiDesc *desc, const char *socket_spec);
/* The session's socket, or -1 when the layout does not check out. */
int gwm_ctx_socket(SMFICTX *ctx);
/* 1 every macro list is pairs, 0 one is not (do not call smfi_getsymval), -1 layout unknown. */
int gwm_ctx_macros_ok(SMFICTX *ctx);

#endif
