/*
 * client_bdat.c - send a message body with BDAT (RFC 3030) through the
 * engine's public interface: gw_client_raw() writes each chunk with its
 * command line in one write and reads the replies.
 *
 * The body is read a chunk at a time and encoded (bare CR or LF become CRLF,
 * a final CRLF is added) into a buffer of about three chunks; one encoded
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

#define BDAT_CHUNK_DEFAULT (64 * 1024)
#define BDAT_CHUNK_MAX     (16 * 1024 * 1024)
#define BDAT_HEAD          32 /* room for "BDAT <20 digits> LAST\r\n" before the data */

typedef struct bdat_enc {
	int pending_cr;    /* the last byte was a CR: is an LF next? */
	int at_line_start; /* the output ends with CRLF (or is empty) */
} bdat_enc;

/* Encode in[0..n) into out (room for 2n bytes); returns the bytes written. */
static size_t encode(bdat_enc *st, const char *in, size_t n, char *out)
{
	size_t i = 0, o = 0;

	while (i < n) {
		char ch = in[i];

		if (st->pending_cr) {
			st->pending_cr = 0;
			out[o++] = '\r';
			out[o++] = '\n';
			st->at_line_start = 1;
			if (ch == '\n') {
				i++;
				continue;
			}
		}
		if (ch == '\r') {
			st->pending_cr = 1;
			i++;
		} else if (ch == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			st->at_line_start = 1;
			i++;
		} else {
			/* A run of ordinary bytes, copied whole. */
			size_t j = i + 1;

			while (j < n && in[j] != '\r' && in[j] != '\n')
				j++;
			memcpy(out + o, in + i, j - i);
			o += j - i;
			i = j;
			st->at_line_start = 0;
		}
	}
	return o;
}

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

gw_status gw_client_bdat(gw_client *c, const gw_body *body, size_t chunk, gw_reply *chunk_r,
			 gw_reply *replies_r, size_t nreplies, size_t *got_r, int *last_sent_r)
{
	bdat_enc st = {0, 1};
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
	if (body == NULL || body->read == NULL || (nreplies > 0 && replies_r == NULL)) {
		gw_client_close(c);
		return GW_E_LOCAL;
	}
	in = malloc(chunk);
	out = malloc(BDAT_HEAD + 3 * chunk + 4);
	if (in == NULL || out == NULL) {
		s = GW_E_LOCAL;
		goto drop;
	}
	for (;;) {
		ssize_t n = body->read(body->ctx, in, chunk);

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
		out_len += encode(&st, in, (size_t)n, out + BDAT_HEAD + out_len);
	}
	if (st.pending_cr || !st.at_line_start) {
		memcpy(out + BDAT_HEAD + out_len, "\r\n", 2);
		out_len += 2;
	}
	s = send_chunk(c, out, out_len, 1);
	if (s != GW_OK)
		goto done;
	*last_sent_r = 1;
	memset(chunk_r, 0, sizeof(*chunk_r));
	s = gw_client_raw(c, GW_STAGE_BODY, NULL, 0, replies_r, nreplies, got_r);
	goto done;
drop:
	gw_client_close(c);
done:
	free(in);
	free(out);
	return s;
}
