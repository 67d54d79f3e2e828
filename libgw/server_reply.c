/*
 * server_reply.c - the server engine's replies: formatting, and LMTP final replies in RCPT order.
 *
 * A reply is "code[-| ][enh ]text\r\n" per line, the enhanced code on every
 * line (RFC 2034) when ENHANCEDSTATUSCODES is on. Text from the driver is
 * split at '\n'; every other byte outside printable ASCII becomes '?', so a
 * driver echoing a remote server's text cannot break the reply framing or
 * smuggle a line end; each line is cut at 500 bytes and the whole reply at
 * GW_SRV_REPLY_MAX.
 *
 * LMTP final replies may be given in any order: the one for the next
 * recipient in line goes straight to the output, later ones wait, formatted,
 * until their turn (at most one per accepted recipient, so bounded by
 * max_rcpts). Does not defend against a driver that never answers: the
 * session then waits, and the driver's clock must end it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

#define LINE_TEXT_MAX  500
#define LINE_BYTES_MAX (4 + 16 + 1 + LINE_TEXT_MAX + 2) /* code, enhanced code, text, CRLF */

static void format_into(gw_buf *b, int use_enh, int code, const char *enh, const char *text)
{
	char head[32], line[LINE_TEXT_MAX + 1];
	const char *p = text != NULL ? text : "";
	size_t start = b->len;

	if (!use_enh || enh == NULL)
		enh = "";
	for (;;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p), i, hl;
		int last = nl == NULL || nl[1] == '\0';

		if (n > LINE_TEXT_MAX)
			n = LINE_TEXT_MAX;
		for (i = 0; i < n; i++) {
			unsigned char c = (unsigned char)p[i];
			line[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		}
		line[n] = '\0';
		/* Cut the reply between lines: this one is the last if another might not fit. */
		if (!last && b->len - start + 2 * LINE_BYTES_MAX > GW_SRV_REPLY_MAX)
			last = 1;
		hl = (size_t)snprintf(head, sizeof head, "%03d%c", code, last ? ' ' : '-');
		gw_buf_append(b, head, hl);
		if (enh[0] != '\0') {
			gw_buf_puts(b, enh);
			if (n > 0)
				gw_buf_putc(b, ' ');
		}
		gw_buf_append(b, line, n);
		gw_buf_append(b, "\r\n", 2);
		if (last)
			break;
		p = nl + 1;
	}
}

void gws_reply(gw_srv *s, int code, const char *enh, const char *text)
{
	format_into(&s->out, (s->cfg.caps & GW_SRV_CAP_ENHANCEDSTATUSCODES) != 0, code, enh, text);
}

char *gws_reply_format(const gw_srv *s, int code, const char *enh, const char *text)
{
	gw_buf b;
	char *r;

	gw_buf_init(&b, GW_SRV_REPLY_MAX);
	format_into(&b, (s->cfg.caps & GW_SRV_CAP_ENHANCEDSTATUSCODES) != 0, code, enh, text);
	if (b.data == NULL)
		return NULL;
	r = b.data; /* the caller frees it with free(), as gw_buf_free would */
	return r;
}

int gws_reply_check(int code, const char *enh)
{
	size_t i = 2, part;

	if (code < 200 || code > 599 || (code >= 300 && code < 400) || code % 100 / 10 > 5)
		return -1;
	if (enh == NULL)
		return 0;
	if (enh[0] != '0' + code / 100 || enh[1] != '.')
		return -1;
	for (part = 0; part < 2; part++) {
		size_t d = 0;

		while (enh[i] >= '0' && enh[i] <= '9' && d < 4) {
			i++;
			d++;
		}
		if (d == 0 || d > 3)
			return -1;
		if (part == 0 && enh[i++] != '.')
			return -1;
	}
	return enh[i] == '\0' ? 0 : -1;
}

void gws_reply_final_all(gw_srv *s, int code, const char *enh, const char *text)
{
	size_t i, n = s->cfg.mode == GW_SRV_LMTP ? s->nrcpt : 1;

	for (i = 0; i < n; i++)
		gws_reply(s, code, enh, text);
}

void gws_reply_finals_free(gw_srv *s)
{
	size_t i;

	if (s->finals != NULL)
		for (i = 0; i < s->cfg.max_rcpts; i++) {
			free(s->finals[i]);
			s->finals[i] = NULL;
		}
	s->finals_next = 0;
}

int gws_reply_final(gw_srv *s, size_t idx, int code, const char *enh, const char *text)
{
	if (idx >= s->nrcpt) {
		errno = ERANGE;
		return -1;
	}
	if (idx < s->finals_next || (s->finals != NULL && s->finals[idx] != NULL)) {
		errno = EALREADY;
		return -1;
	}
	if (idx == s->finals_next) {
		gws_reply(s, code, enh, text);
		s->finals_next++;
		while (s->finals != NULL && s->finals_next < s->nrcpt && s->finals[s->finals_next] != NULL) {
			gw_buf_puts(&s->out, s->finals[s->finals_next]);
			free(s->finals[s->finals_next]);
			s->finals[s->finals_next] = NULL;
			s->finals_next++;
		}
	} else {
		if (s->finals == NULL) {
			s->finals = calloc(s->cfg.max_rcpts, sizeof *s->finals);
			if (s->finals == NULL)
				return -1;
		}
		s->finals[idx] = gws_reply_format(s, code, enh, text);
		if (s->finals[idx] == NULL)
			return -1;
	}
	return s->finals_next == s->nrcpt;
}
