/*
 * client_bdat.c - send a message body with BDAT (RFC 3030) through the
 * engine's raw exchange: gw_client_raw() writes each chunk with its command
 * line in one write and reads its reply; cl_raw() hands the final replies on
 * one at a time.
 *
 * The body is read a chunk at a time and encoded by client_enc.c (bare CR or
 * LF become CRLF, lines over 998 octets broken, a final CRLF added, a NUL
 * refused) into a buffer of about four chunks; one encoded
 * chunk is held back until the next read shows whether it is the last, so
 * the last chunk always carries LAST and "BDAT 0 LAST" is only sent for an
 * empty message. Each intermediate chunk waits for its reply before the next
 * is sent: simple, and a refusal stops the body at once.
 *
 * Does not defend against: a body source that blocks; BINARYMIME content is
 * still given CRLF line ends (callers send text).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_bdat.h"
#include "client_enc.h"

#define BDAT_CHUNK_DEFAULT (64 * 1024)
#define BDAT_CHUNK_MAX     (16 * 1024 * 1024)
#define BDAT_HEAD          32 /* room for "BDAT <20 digits> LAST\r\n" before the data */

/* Send buf[BDAT_HEAD..BDAT_HEAD+len) as one chunk: the command line goes just before the data. */
static gw_status send_chunk(gw_client *c, char *buf, size_t len, int last)
{
	char head[BDAT_HEAD];
	int hl = snprintf(head, sizeof(head), "BDAT %zu%s\r\n", len, last ? " LAST" : "");

	if (hl < 0 || (size_t)hl >= sizeof(head))
		return GW_E_LOCAL;
	memcpy(buf + BDAT_HEAD - hl, head, (size_t)hl);
	return gw_client_raw(c, GW_STAGE_BODY, buf + BDAT_HEAD - hl, (size_t)hl + len, NULL, 0, NULL);
}

/* A NUL in the body: the session is closed, nothing more is sent. */
static gw_status content_refused(gw_client *c, char *in, char *out, unsigned long long nul_at)
{
	free(in);
	free(out);
	c->cur = GW_STAGE_BODY;
	return cl_fail(c, GW_E_CONTENT, "the message has a NUL byte at offset %llu: not sent", nul_at);
}

gw_status gw_client_bdat(gw_client *c, const gw_body *body, size_t chunk, gw_reply *chunk_r, size_t nreplies,
			 cl_reply_fn *fn, void *ctx, size_t *got_r, int *last_sent_r)
{
	unsigned long long nul_at = 0;
	cl_enc st;
	char *in = NULL, *out = NULL;
	size_t out_len = 0;
	gw_status s = GW_OK;

	*got_r = 0;
	*last_sent_r = 0;
	memset(chunk_r, 0, sizeof(*chunk_r));
	if (chunk == 0)
		chunk = BDAT_CHUNK_DEFAULT;
	if (chunk > BDAT_CHUNK_MAX)
		chunk = BDAT_CHUNK_MAX;
	cl_enc_init(&st, 0);
	if (body == NULL || body->read == NULL || (nreplies > 0 && fn == NULL)) {
		gw_client_close(c);
		return GW_E_LOCAL;
	}
	in = malloc(chunk);
	out = malloc(BDAT_HEAD + chunk + CL_ENC_ROOM(chunk));
	if (in == NULL || out == NULL) {
		s = GW_E_LOCAL;
		goto drop;
	}
	for (;;) {
		ssize_t n = body->read(body->ctx, in, chunk), w;

		if (n < 0 || (size_t)n > chunk) {
			/* No chunk is half sent, but the session is in an unknown state for the caller: drop
			 * it. */
			s = GW_E_LOCAL;
			goto drop;
		}
		if (n == 0)
			break;
		if (out_len >= chunk) {
			s = send_chunk(c, out, out_len, 0);
			if (s == GW_OK)
				s = gw_client_raw(c, GW_STAGE_BODY, NULL, 0, chunk_r, 1, NULL);
			if (s != GW_OK)
				goto done;
			if (gw_reply_class(chunk_r->code) != 2)
				goto done;
			out_len = 0;
		}
		w = cl_enc_run(&st, in, (size_t)n, out + BDAT_HEAD + out_len, &nul_at);
		if (w < 0) {
			/* The chunk with the NUL was never sent; the ones before cannot be taken back. */
			gw_client_close(c);
			return content_refused(c, in, out, nul_at);
		}
		out_len += (size_t)w;
	}
	out_len += cl_enc_finish(&st, out + BDAT_HEAD + out_len);
	s = send_chunk(c, out, out_len, 1);
	if (s != GW_OK)
		goto done;
	*last_sent_r = 1;
	memset(chunk_r, 0, sizeof(*chunk_r));
	s = cl_raw(c, GW_STAGE_BODY, NULL, 0, nreplies, fn, ctx, got_r);
	goto done;
drop:
	gw_client_close(c);
done:
	free(in);
	free(out);
	return s;
}
