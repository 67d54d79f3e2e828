/*
 * client_bdat.h - BDAT (RFC 3030 CHUNKING) on top of the client engine,
 * internal to libgw (used by lmtp.c). See client_bdat.c.
 */
#ifndef GW_CLIENT_BDAT_H
#define GW_CLIENT_BDAT_H

#include "client_int.h"
#include "gw/client.h"

/*
 * After MAIL and RCPT: send the body as "BDAT n" chunks of about chunk bytes
 * (0: 64 KB), the last one "BDAT n LAST", then read nreplies final replies
 * (1 for SMTP, one per accepted RCPT for LMTP), each handed to fn as it comes.
 *   GW_OK, *last_sent_r 1: every reply read (*got_r == nreplies).
 *   GW_OK, *last_sent_r 0: an intermediate chunk was refused; its reply is in
 *     *chunk_r and the transaction is over (RSET before the next).
 *   other: the session failed and is closed; *last_sent_r says whether the
 *     whole LAST chunk had been written (replies missing after it are
 *     uncertain), *got_r how many final replies were read.
 *   GW_E_CONTENT: the body has a NUL byte; the session is closed, the chunk
 *     holding it was not sent and LAST never was.
 * The wire form is client_enc.c's without dot-stuffing.
 */
gw_status gw_client_bdat(gw_client *c, const gw_body *body, size_t chunk, gw_reply *chunk_r, size_t nreplies,
			 cl_reply_fn *fn, void *ctx, size_t *got_r, int *last_sent_r);

#endif
