/*
 * client_enc.c - the wire form of a message body (client_enc.h): line ends,
 * dot-stuffing, long lines broken at 998 octets, NUL refused.
 *
 * Runs of ordinary bytes are copied with memcpy up to the next line end or
 * line break, so the common case costs a memchr-like scan and one copy.
 *
 * Does not defend against: see client_enc.h (long lines are changed, by
 * design, as Postfix changes them).
 */
#include <string.h>

#include "client_enc.h"

void cl_enc_init(cl_enc *e, int dot_stuff)
{
	memset(e, 0, sizeof(*e));
	e->dot_stuff = dot_stuff;
}

ssize_t cl_enc_run(cl_enc *e, const char *in, size_t n, char *out, unsigned long long *nul_at_r)
{
	const char *nul = memchr(in, '\0', n);
	size_t i = 0, o = 0;

	if (nul != NULL) {
		if (nul_at_r != NULL)
			*nul_at_r = e->in + (unsigned long long)(nul - in);
		return -1;
	}
	while (i < n) {
		char ch = in[i];

		if (e->pending_cr) {
			/* CRLF, or a bare CR: either way one line end on the wire. */
			e->pending_cr = 0;
			out[o++] = '\r';
			out[o++] = '\n';
			e->line_len = 0;
			if (ch == '\n') {
				i++;
				continue;
			}
		}
		if (ch == '\r') {
			e->pending_cr = 1;
			i++;
		} else if (ch == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			e->line_len = 0;
			i++;
		} else {
			size_t run, room;
			const char *lf, *cr;

			if (e->line_len == CL_ENC_LINE_MAX) {
				/* Postfix's smtp_line_length_limit: CRLF SPACE, the rest goes on. */
				out[o++] = '\r';
				out[o++] = '\n';
				out[o++] = ' ';
				e->line_len = 1;
				e->breaks++;
			} else if (e->line_len == 0 && ch == '.' && e->dot_stuff) {
				out[o++] = '.';
			}
			/* the text up to the next line end, at most what the line still has room for */
			room = n - i < CL_ENC_LINE_MAX - e->line_len ? n - i : CL_ENC_LINE_MAX - e->line_len;
			lf = memchr(in + i, '\n', room);
			run = lf != NULL ? (size_t)(lf - (in + i)) : room;
			cr = memchr(in + i, '\r', run);
			if (cr != NULL)
				run = (size_t)(cr - (in + i));
			memcpy(out + o, in + i, run);
			o += run;
			i += run;
			e->line_len += run;
		}
	}
	e->in += n;
	return (ssize_t)o;
}

size_t cl_enc_finish(cl_enc *e, char *out)
{
	if (!e->pending_cr && e->line_len == 0)
		return 0;
	e->pending_cr = 0;
	e->line_len = 0;
	out[0] = '\r';
	out[1] = '\n';
	return 2;
}
