/*
 * server_body.c - the server engine's message body: DATA and BDAT chunks.
 *
 * DATA: the input is scanned line by line (two memchr per line) and handed
 * to the driver as long runs straight out of the input buffer; a run breaks
 * only where the bytes change: a leading dot removed (RFC 5321 4.5.2), a
 * bare CR or LF turned into CRLF (or, under GW_SRV_BARE_REJECT, the message
 * doomed), the end. The end is <CR><LF>.<CR><LF> and nothing else: a "."
 * line reached through a bare newline is content, so a message cannot be
 * cut short by one sequence here and by another downstream (SMTP smuggling).
 * Bytes that cannot be judged yet (a final CR, a dot at a line start) stay
 * in the input until the next byte comes, so any split of the input gives
 * the same body. Lines over max_text_line are counted, not cut.
 *
 * BDAT: exactly the announced octets, passed as they are.
 *
 * A body over max_size, or a bare newline under REJECT, dooms the message:
 * its remaining bytes are read and dropped, and at its end the engine itself
 * answers (552 5.3.4 / 550 5.5.2, once per accepted recipient in LMTP) and
 * reports GW_SRV_EV_RESET. Does not defend against: a client that never
 * sends the end; the driver's data timeout does.
 */
#include <stdio.h>
#include <string.h>

#include "server_int.h"

void gws_body_begin(gw_srv *s, int bdat)
{
	s->bdat = bdat;
	s->bol = 1;
	s->bol_crlf = 1;
	s->inject_crlf = 0;
	s->doomed = GW_SRV_R_NONE;
	s->body_size = 0;
	s->line_len = 0;
	s->long_lines = 0;
	s->longest = 0;
	s->bare = 0;
}

/* Hand out body bytes unless the message is doomed; 1 if *ev is a BODY event. */
static int emit(gw_srv *s, gw_srv_event *ev, const char *p, size_t n)
{
	if (s->doomed != GW_SRV_R_NONE)
		return 0;
	if (s->cfg.max_size != 0 && (n > s->cfg.max_size || s->body_size > s->cfg.max_size - n)) {
		s->doomed = GW_SRV_R_TOO_BIG;
		return 0;
	}
	s->body_size += n;
	memset(ev, 0, sizeof *ev);
	ev->type = GW_SRV_EV_BODY;
	ev->bdat = s->bdat;
	ev->data = p;
	ev->len = n;
	return 1;
}

static void end_line(gw_srv *s, size_t n)
{
	if (n > s->cfg.max_text_line)
		s->long_lines++;
	if (n > s->longest)
		s->longest = n;
	s->line_len = 0;
}

static void doomed_reply(gw_srv *s, int all)
{
	int code = s->doomed == GW_SRV_R_TOO_BIG ? 552 : 550;
	const char *enh = s->doomed == GW_SRV_R_TOO_BIG ? "5.3.4" : "5.5.2";
	const char *text =
	    s->doomed == GW_SRV_R_TOO_BIG ? "Error: message too large" : "Error: bare <CR> or <LF> received";

	if (all)
		gws_reply_final_all(s, code, enh, text);
	else
		gws_reply(s, code, enh, text);
}

/* The body is complete: the driver's DATA_END, or the engine's own refusal. */
static int finish(gw_srv *s, gw_srv_event *ev, int all)
{
	memset(ev, 0, sizeof *ev);
	ev->bdat = s->bdat;
	if (s->doomed != GW_SRV_R_NONE) {
		doomed_reply(s, all);
		ev->type = GW_SRV_EV_RESET;
		ev->reason = s->doomed;
		gws_txn_clear(s);
		s->phase = SRV_P_CMD;
		return 1;
	}
	ev->type = GW_SRV_EV_DATA_END;
	ev->size = s->body_size;
	ev->nrcpt = s->nrcpt;
	ev->long_lines = s->long_lines;
	ev->longest_line = s->longest;
	ev->bare_newlines = s->bare;
	s->phase = SRV_P_ANSWER;
	s->pending = SRV_A_FINAL;
	s->finals_next = 0;
	return 1;
}

/* A bare CR or LF at in[pos]: the line ends there. */
static void bare_newline(gw_srv *s, size_t pos)
{
	s->bare++;
	end_line(s, s->line_len + 1);
	s->in_pos = pos + 1;
	s->bol = 1;
	s->bol_crlf = 0;
	if (s->cfg.bare_newline == GW_SRV_BARE_REJECT) {
		if (s->doomed == GW_SRV_R_NONE)
			s->doomed = GW_SRV_R_BARE_NEWLINE;
	} else {
		s->inject_crlf = 1;
	}
}

static int data_step(gw_srv *s, gw_srv_event *ev)
{
	for (;;) {
		const char *in = s->in;
		size_t pos = s->in_pos, end = s->in_len, start = pos;
		int bare_at = 0;

		if (s->inject_crlf) {
			s->inject_crlf = 0;
			if (emit(s, ev, "\r\n", 2))
				return 1;
			continue;
		}
		while (pos < end) {
			const char *lf, *cr, *seg;

			if (s->bol) {
				if (in[pos] == '.') {
					if (pos > start)
						break;
					if (end - pos < 2 || (in[pos + 1] == '\r' && end - pos < 3))
						return 0;
					if (in[pos + 1] == '\r' && in[pos + 2] == '\n' && s->bol_crlf) {
						s->in_pos = pos + 3;
						return finish(s, ev, 1);
					}
					/* A dot before more text is removed; one alone on its line stays. */
					if (in[pos + 1] != '\r' && in[pos + 1] != '\n') {
						pos++;
						start = pos;
						s->line_len++;
					}
				}
				s->bol = 0;
			}
			lf = memchr(in + pos, '\n', end - pos);
			seg = lf != NULL ? lf : in + end;
			cr = memchr(in + pos, '\r', (size_t)(seg - (in + pos)));
			if (cr != NULL && (lf == NULL || cr < lf - 1)) {
				s->line_len += (size_t)(cr - (in + pos));
				pos = (size_t)(cr - in);
				if (pos + 1 == end)
					break; /* a CR as the last byte: wait for what follows */
				bare_at = 1;
				break;
			}
			if (lf == NULL) {
				s->line_len += end - pos;
				pos = end;
				break;
			}
			if (lf == in + pos || lf[-1] != '\r') {
				s->line_len += (size_t)(lf - (in + pos));
				pos = (size_t)(lf - in);
				bare_at = 1;
				break;
			}
			s->line_len += (size_t)(lf + 1 - (in + pos));
			end_line(s, s->line_len);
			pos = (size_t)(lf + 1 - in);
			s->bol = 1;
			s->bol_crlf = 1;
		}
		s->in_pos = pos;
		if (pos > start) {
			if (emit(s, ev, in + start, pos - start))
				return 1;
			continue;
		}
		if (!bare_at)
			return 0;
		bare_newline(s, pos);
	}
}

static int bdat_step(gw_srv *s, gw_srv_event *ev)
{
	for (;;) {
		size_t avail = s->in_len - s->in_pos, n;
		const char *p = s->in + s->in_pos;

		if (s->bdat_left == 0) {
			s->phase = SRV_P_CMD;
			if (s->bdat_refuse != 0) {
				gws_session_error(s, s->bdat_refuse, s->bdat_refuse_enh, s->bdat_refuse_text);
				return 2;
			}
			if (s->bdat_last || s->doomed != GW_SRV_R_NONE)
				return finish(s, ev, s->bdat_last);
			snprintf(s->errtext, sizeof s->errtext, "%llu octets received",
				 (unsigned long long)s->bdat_chunk);
			gws_reply(s, 250, "2.0.0", s->errtext);
			return 2;
		}
		if (avail == 0)
			return 0;
		n = avail < s->bdat_left ? avail : (size_t)s->bdat_left;
		s->in_pos += n;
		s->bdat_left -= n;
		if (s->bdat_refuse == 0 && emit(s, ev, p, n))
			return 1;
	}
}

int gws_body_step(gw_srv *s, gw_srv_event *ev)
{
	return s->phase == SRV_P_BDAT ? bdat_step(s, ev) : data_step(s, ev);
}
