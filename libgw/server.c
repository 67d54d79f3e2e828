/*
 * server.c - the server engine's session: lifecycle, bounded input and output, gw_srv_next(), answers.
 *
 * Input is one buffer of max_input bytes: gw_srv_feed() takes only what
 * fits, so a client pipelining while an answer is pending is held back by
 * the driver (and TCP), not by our memory. Output is a gw_buf the driver
 * drains; once max_output bytes wait there no further command is read, so
 * a client that sends but never reads stalls instead of growing it. Its
 * hard limit leaves room for one more command's replies (the largest: the
 * LMTP final replies of max_rcpts recipients).
 *
 * Does not defend against: use from several threads at once (one session
 * belongs to one driver thread at a time).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

void gw_srv_config_init(gw_srv_config *c, gw_srv_mode mode, const char *hostname)
{
	memset(c, 0, sizeof *c);
	c->mode = mode;
	c->hostname = hostname;
	c->caps = GW_SRV_CAP_DEFAULT;
	c->bare_newline = GW_SRV_BARE_NORMALIZE;
}

static char *dup_cut(const char *src, size_t max)
{
	size_t n = strnlen(src, max);
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, src, n);
		d[n] = '\0';
	}
	return d;
}

gw_srv *gw_srv_new(const gw_srv_config *c)
{
	gw_srv *s;
	char greet[SRV_HELO_MAX + 16];

	if (c == NULL || c->hostname == NULL || c->hostname[0] == '\0') {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->cfg = *c;
	if (s->cfg.max_line == 0)
		s->cfg.max_line = GW_SRV_LINE_DEFAULT;
	if (s->cfg.max_line < 16)
		s->cfg.max_line = 16;
	if (s->cfg.max_text_line == 0)
		s->cfg.max_text_line = GW_SRV_TEXT_LINE_DEFAULT;
	if (s->cfg.max_rcpts == 0)
		s->cfg.max_rcpts = GW_SRV_RCPTS_DEFAULT;
	if (s->cfg.max_errors == 0)
		s->cfg.max_errors = GW_SRV_ERRORS_DEFAULT;
	if (s->cfg.max_input == 0)
		s->cfg.max_input = GW_SRV_INPUT_DEFAULT;
	if (s->cfg.max_input < s->cfg.max_line + 8)
		s->cfg.max_input = s->cfg.max_line + 8;
	if (s->cfg.max_output == 0)
		s->cfg.max_output = GW_SRV_OUTPUT_DEFAULT;
	if (!(s->cfg.caps & GW_SRV_CAP_CHUNKING))
		s->cfg.caps &= ~(unsigned)GW_SRV_CAP_BINARYMIME;
	s->hostname = dup_cut(c->hostname, SRV_HELO_MAX);
	if (c->greeting != NULL) {
		s->greeting = dup_cut(c->greeting, 500);
	} else {
		snprintf(greet, sizeof greet, "%s %s", c->hostname,
			 c->mode == GW_SRV_LMTP ? "LMTP" : "ESMTP");
		s->greeting = dup_cut(greet, sizeof greet);
	}
	s->cfg.hostname = s->hostname;
	s->cfg.greeting = s->greeting;
	s->in_cap = s->cfg.max_input;
	s->in = malloc(s->in_cap);
	s->scratch = malloc(s->cfg.max_line + 1);
	gw_buf_init(&s->out, s->cfg.max_output + (s->cfg.max_rcpts + 4) * GW_SRV_REPLY_MAX);
	if (s->hostname == NULL || s->greeting == NULL || s->in == NULL || s->scratch == NULL) {
		gw_srv_free(&s);
		errno = ENOMEM;
		return NULL;
	}
	s->phase = SRV_P_INIT;
	return s;
}

void gw_srv_free(gw_srv **sp)
{
	gw_srv *s;

	if (sp == NULL || *sp == NULL)
		return;
	s = *sp;
	gws_reply_finals_free(s);
	free(s->finals);
	free(s->hostname);
	free(s->greeting);
	free(s->in);
	free(s->scratch);
	gw_buf_free(&s->out);
	free(s);
	*sp = NULL;
}

void gw_srv_start(gw_srv *s)
{
	if (s->phase != SRV_P_INIT)
		return;
	gws_reply(s, 220, NULL, s->greeting);
	s->phase = SRV_P_CMD;
}

void gw_srv_shutdown(gw_srv *s, const char *text)
{
	if (s->phase == SRV_P_CLOSED)
		return;
	snprintf(s->errtext, sizeof s->errtext, "%s %s", s->hostname,
		 text != NULL ? text : "Service not available, closing transmission channel");
	gws_reply(s, 421, "4.3.2", s->errtext);
	gws_close(s, GW_SRV_R_SHUTDOWN);
}

void gws_txn_clear(gw_srv *s)
{
	s->mail = 0;
	s->utf8 = 0;
	s->binarymime = 0;
	s->used_bdat = 0;
	s->nrcpt = 0;
	s->has_auth = 0;
	s->declared_size = 0;
	s->doomed = GW_SRV_R_NONE;
	gws_reply_finals_free(s);
}

void gws_close(gw_srv *s, gw_srv_reason why)
{
	s->phase = SRV_P_CLOSED;
	s->pending = SRV_A_NONE;
	s->close_reason = why;
	s->ahead = 0;
	gws_txn_clear(s);
	s->in_pos = s->in_len;
}

void gws_queue_event(gw_srv *s, const gw_srv_event *ev)
{
	if (s->qlen < SRV_QUEUE) {
		s->queue[(s->qhead + s->qlen) % SRV_QUEUE] = *ev;
		s->qlen++;
	}
}

size_t gws_room(const gw_srv *s)
{
	return s->in_cap - (s->in_len - s->in_pos);
}

size_t gw_srv_input_room(const gw_srv *s)
{
	return gws_room(s);
}

size_t gw_srv_feed(gw_srv *s, const void *data, size_t len)
{
	size_t n;

	/* After STARTTLS (until TLS is up) and after the end, client bytes are dropped unread. */
	if (s->phase == SRV_P_CLOSED || s->phase == SRV_P_TLS)
		return len;
	if (s->in_pos > 0) {
		memmove(s->in, s->in + s->in_pos, s->in_len - s->in_pos);
		s->in_len -= s->in_pos;
		s->in_pos = 0;
	}
	n = s->in_cap - s->in_len;
	if (n > len)
		n = len;
	if (n > 0)
		memcpy(s->in + s->in_len, data, n);
	s->in_len += n;
	return n;
}

gw_buf *gw_srv_output(gw_srv *s)
{
	return &s->out;
}

size_t gw_srv_owed(const gw_srv *s)
{
	if (s->phase != SRV_P_ANSWER)
		return 0;
	if (s->pending == SRV_A_FINAL && s->cfg.mode == GW_SRV_LMTP) {
		size_t i, n = 0;

		for (i = s->finals_next; i < s->nrcpt; i++)
			n += s->finals == NULL || s->finals[i] == NULL;
		return n;
	}
	return 1 + s->ahead;
}

unsigned gw_srv_errors(const gw_srv *s)
{
	return s->errors;
}

gw_srv_wait gw_srv_waiting(const gw_srv *s)
{
	switch (s->phase) {
	case SRV_P_INIT:
		return GW_SRV_WAIT_GREETING;
	case SRV_P_CMD:
		return s->out.len >= s->cfg.max_output ? GW_SRV_WAIT_OUTPUT : GW_SRV_WAIT_COMMAND;
	case SRV_P_DATA:
	case SRV_P_BDAT:
		return GW_SRV_WAIT_BODY;
	case SRV_P_ANSWER:
		return GW_SRV_WAIT_ANSWER;
	case SRV_P_TLS:
		return GW_SRV_WAIT_TLS;
	case SRV_P_CLOSED:
		break;
	}
	return GW_SRV_WAIT_CLOSED;
}

gw_srv_event_type gw_srv_next(gw_srv *s, gw_srv_event *ev)
{
	memset(ev, 0, sizeof *ev);
	for (;;) {
		const char *line, *enh, *text;
		size_t len;
		int rc, code;

		if (s->qlen > 0) {
			*ev = s->queue[s->qhead];
			s->qhead = (s->qhead + 1) % SRV_QUEUE;
			s->qlen--;
			return ev->type;
		}
		switch (s->phase) {
		case SRV_P_ANSWER:
			if (s->cfg.lookahead && (s->pending == SRV_A_MAIL || s->pending == SRV_A_RCPT) &&
			    gws_session_ahead(s))
				continue;
			return GW_SRV_EV_NONE;
		case SRV_P_INIT:
		case SRV_P_TLS:
			return GW_SRV_EV_NONE;
		case SRV_P_CLOSED:
			if (s->close_reported)
				return GW_SRV_EV_NONE;
			s->close_reported = 1;
			ev->type = GW_SRV_EV_CLOSE;
			ev->reason = s->close_reason;
			return ev->type;
		case SRV_P_DATA:
		case SRV_P_BDAT:
			rc = gws_body_step(s, ev);
			if (rc == 1)
				return ev->type;
			if (rc == 0)
				return GW_SRV_EV_NONE;
			continue;
		case SRV_P_CMD:
			if (s->out.len >= s->cfg.max_output)
				return GW_SRV_EV_NONE;
			rc = gws_line_next(s, &line, &len, &code, &enh, &text);
			if (rc == 0)
				return GW_SRV_EV_NONE;
			if (rc < 0)
				gws_session_error(s, code, enh, text);
			else
				gws_session_command(s, line, len);
			continue;
		}
	}
}

/* The transaction's final answer is complete. */
static void final_done(gw_srv *s)
{
	gws_txn_clear(s);
	s->pending = SRV_A_NONE;
	s->phase = SRV_P_CMD;
	if (s->close_after)
		gws_close(s, GW_SRV_R_SHUTDOWN);
}

static const char *default_enh(const gw_srv *s, int code)
{
	if (code / 100 == 4)
		return "4.0.0";
	if (code / 100 == 5)
		return "5.0.0";
	if (s->pending == SRV_A_MAIL)
		return "2.1.0";
	if (s->pending == SRV_A_RCPT)
		return "2.1.5";
	return "2.0.0";
}

static int answer(gw_srv *s, int by_index, size_t idx, int code, const char *enh, const char *text)
{
	int rc;

	if (s->phase != SRV_P_ANSWER ||
	    (by_index && (s->pending != SRV_A_FINAL || s->cfg.mode != GW_SRV_LMTP))) {
		errno = EPROTO;
		return -1;
	}
	if (gws_reply_check(code, enh) < 0) {
		errno = EINVAL;
		return -1;
	}
	if (enh == NULL)
		enh = default_enh(s, code);
	if (s->pending != SRV_A_FINAL || s->cfg.mode == GW_SRV_SMTP)
		s->close_after = code == 421;
	if (s->pending != SRV_A_FINAL) {
		if (s->pending == SRV_A_RCPT && !s->mail && code != 421) {
			/* handed out ahead of its MAIL, which was refused: as if it came after (no event) */
			s->pending = SRV_A_NONE;
			s->phase = SRV_P_CMD;
			gws_session_error(s, 503, "5.5.1", "Error: need MAIL command");
		} else {
			gws_reply(s, code, enh, text);
			gws_session_answered(s, code);
			s->pending = SRV_A_NONE;
			s->phase = SRV_P_CMD;
		}
		if (s->close_after) {
			gws_close(s, GW_SRV_R_SHUTDOWN);
		} else if (s->phase == SRV_P_CMD && s->ahead > 0) {
			s->ahead--;
			s->pending = SRV_A_RCPT;
			s->phase = SRV_P_ANSWER;
		}
		if (s->phase != SRV_P_ANSWER)
			s->data_announced = 0;
		return 0;
	}
	if (s->cfg.mode == GW_SRV_SMTP) {
		gws_reply(s, code, enh, text);
		final_done(s);
		return 0;
	}
	if (!by_index) {
		idx = s->finals_next;
		while (s->finals != NULL && idx < s->nrcpt && s->finals[idx] != NULL)
			idx++;
	}
	rc = gws_reply_final(s, idx, code, enh, text);
	if (rc < 0)
		return -1;
	if (code == 421)
		s->close_after = 1;
	if (rc == 1)
		final_done(s);
	return 0;
}

int gw_srv_reply(gw_srv *s, int code, const char *enh, const char *text)
{
	return answer(s, 0, 0, code, enh, text);
}

int gw_srv_reply_rcpt(gw_srv *s, size_t index, int code, const char *enh, const char *text)
{
	return answer(s, 1, index, code, enh, text);
}

void gw_srv_tls_started(gw_srv *s)
{
	if (s->phase != SRV_P_TLS)
		return;
	s->tls = 1;
	s->greeted = 0;
	s->esmtp = 0;
	s->helo[0] = '\0';
	gws_txn_clear(s);
	s->in_pos = s->in_len;
	s->discarding = 0;
	s->phase = SRV_P_CMD;
}
