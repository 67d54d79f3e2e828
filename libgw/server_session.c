/*
 * server_session.c - the server engine's state machine: one handler per command.
 *
 * Each complete command line comes here; the handler checks the session
 * state (greeted, in a transaction, recipients, TLS), answers on its own what
 * the protocol decides, and hands the driver the decisions that are its own
 * (MAIL, RCPT) as events, moving to the answer-pending phase. Errors in the
 * protocol itself (enhanced code 5.5.x) count towards max_errors; refusals
 * of content (size, SMTPUTF8, too many recipients) do not.
 *
 * Does not defend against: a client that sends good commands forever; the
 * driver bounds a session's time and transactions.
 */
#include <stdio.h>
#include <string.h>

#include "server_int.h"

void gws_session_error(gw_srv *s, int code, const char *enh, const char *text)
{
	gws_reply(s, code, enh, text);
	if (strncmp(enh, "5.5.", 4) != 0)
		return;
	s->errors++;
	if (s->errors >= s->cfg.max_errors) {
		snprintf(s->errtext, sizeof s->errtext, "%s Error: too many errors", s->hostname);
		gws_reply(s, 421, "4.7.0", s->errtext);
		gws_close(s, GW_SRV_R_ERRORS);
	}
}

static void queue_simple(gw_srv *s, gw_srv_event_type type, gw_srv_reason reason)
{
	gw_srv_event ev;

	memset(&ev, 0, sizeof ev);
	ev.type = type;
	ev.reason = reason;
	gws_queue_event(s, &ev);
}

/* A transaction the driver knows about ends without a final reply. */
static void txn_abort(gw_srv *s, gw_srv_reason why)
{
	if (s->mail)
		queue_simple(s, GW_SRV_EV_RESET, why);
	gws_txn_clear(s);
}

static void ehlo_reply(gw_srv *s)
{
	char text[512];
	unsigned caps = s->cfg.caps;
	size_t n;

	n = (size_t)snprintf(text, sizeof text, "%s", s->hostname);
	if (caps & GW_SRV_CAP_PIPELINING)
		n += (size_t)snprintf(text + n, sizeof text - n, "\nPIPELINING");
	if ((caps & GW_SRV_CAP_SIZE) && s->cfg.max_size != 0)
		n += (size_t)snprintf(text + n, sizeof text - n, "\nSIZE %llu",
				      (unsigned long long)s->cfg.max_size);
	else if (caps & GW_SRV_CAP_SIZE)
		n += (size_t)snprintf(text + n, sizeof text - n, "\nSIZE");
	if ((caps & GW_SRV_CAP_STARTTLS) && !s->tls)
		n += (size_t)snprintf(text + n, sizeof text - n, "\nSTARTTLS");
	if (caps & GW_SRV_CAP_ENHANCEDSTATUSCODES)
		n += (size_t)snprintf(text + n, sizeof text - n, "\nENHANCEDSTATUSCODES");
	if (caps & GW_SRV_CAP_8BITMIME)
		n += (size_t)snprintf(text + n, sizeof text - n, "\n8BITMIME");
	if (caps & GW_SRV_CAP_DSN)
		n += (size_t)snprintf(text + n, sizeof text - n, "\nDSN");
	if (caps & GW_SRV_CAP_SMTPUTF8)
		n += (size_t)snprintf(text + n, sizeof text - n, "\nSMTPUTF8");
	if (caps & GW_SRV_CAP_CHUNKING)
		n += (size_t)snprintf(text + n, sizeof text - n, "\nCHUNKING");
	if (caps & GW_SRV_CAP_BINARYMIME)
		snprintf(text + n, sizeof text - n, "\nBINARYMIME");
	gws_reply(s, 250, NULL, text);
}

static void do_helo(gw_srv *s, gws_verb v, const char *args, size_t alen)
{
	gw_srv_event ev;
	size_t n = 0;

	if (s->cfg.mode == GW_SRV_LMTP && v != SRV_V_LHLO) {
		gws_session_error(s, 500, "5.5.1", "Error: this is LMTP: send LHLO");
		return;
	}
	if (s->cfg.mode == GW_SRV_SMTP && v == SRV_V_LHLO) {
		gws_session_error(s, 500, "5.5.1", "Error: LHLO is LMTP: send EHLO or HELO");
		return;
	}
	while (n < alen && args[n] != ' ')
		n++;
	if (n == 0) {
		gws_session_error(s, 501, "5.5.4",
				  v == SRV_V_HELO   ? "Syntax: HELO hostname"
				  : v == SRV_V_EHLO ? "Syntax: EHLO hostname"
						    : "Syntax: LHLO hostname");
		return;
	}
	txn_abort(s, GW_SRV_R_HELO);
	if (n > SRV_HELO_MAX)
		n = SRV_HELO_MAX;
	memcpy(s->helo, args, n);
	s->helo[n] = '\0';
	s->greeted = 1;
	s->esmtp = v != SRV_V_HELO;
	if (s->esmtp)
		ehlo_reply(s);
	else
		gws_reply(s, 250, NULL, s->hostname);
	memset(&ev, 0, sizeof ev);
	ev.type = GW_SRV_EV_HELO;
	ev.esmtp = s->esmtp;
	ev.helo = s->helo;
	gws_queue_event(s, &ev);
}

static int need_greeting(gw_srv *s)
{
	if (s->greeted)
		return 0;
	gws_session_error(s, 503, "5.5.1",
			  s->cfg.mode == GW_SRV_LMTP ? "Error: send LHLO first"
						     : "Error: send HELO/EHLO first");
	return 1;
}

static void do_mail_rcpt(gw_srv *s, int is_mail, const char *args, size_t alen)
{
	gw_srv_event ev;
	int code;
	const char *enh, *text;

	if (need_greeting(s))
		return;
	if (is_mail && s->mail) {
		gws_session_error(s, 503, "5.5.1", "Error: nested MAIL command");
		return;
	}
	if (!is_mail && !s->mail) {
		gws_session_error(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	if (!is_mail && s->nrcpt >= s->cfg.max_rcpts) {
		gws_reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	if (gws_cmd_path(s, args, alen, is_mail, &code, &enh, &text) < 0) {
		gws_session_error(s, code, enh, text);
		return;
	}
	memset(&ev, 0, sizeof ev);
	ev.type = is_mail ? GW_SRV_EV_MAIL : GW_SRV_EV_RCPT;
	ev.path = &s->path;
	if (is_mail) {
		const gw_param *pm = gw_path_param(&s->path, "BODY");

		ev.auth = s->has_auth ? s->auth : NULL;
		ev.size = s->declared_size;
		/* kept apart from s->path, which RCPTs handed out ahead overwrite before the answer */
		s->pend_utf8 = gw_path_param(&s->path, "SMTPUTF8") != NULL;
		s->pend_binarymime = pm != NULL && strcmp(pm->value, "BINARYMIME") == 0;
	}
	ev.rcpt_index = s->nrcpt;
	gws_queue_event(s, &ev);
	s->phase = SRV_P_ANSWER;
	s->pending = is_mail ? SRV_A_MAIL : SRV_A_RCPT;
}

void gws_session_answered(gw_srv *s, int code)
{
	if (code / 100 != 2)
		return;
	if (s->pending == SRV_A_MAIL) {
		s->mail = 1;
		s->nrcpt = 0;
		s->used_bdat = 0;
		s->utf8 = s->pend_utf8;
		s->binarymime = s->pend_binarymime;
	} else if (s->pending == SRV_A_RCPT) {
		s->nrcpt++;
	}
}

/* A RCPT the engine would hand to the driver now, were nothing owed: in a transaction (or behind its
 * MAIL), under the recipient limit counting those owed, and well-formed. */
static int rcpt_ahead_ok(gw_srv *s, const char *args, size_t alen)
{
	size_t owed = (s->pending == SRV_A_RCPT) + s->ahead;
	int code;
	const char *enh, *text;

	if (!s->mail && s->pending != SRV_A_MAIL)
		return 0;
	if (s->nrcpt + owed >= s->cfg.max_rcpts)
		return 0;
	return gws_cmd_path(s, args, alen, 0, &code, &enh, &text) == 0;
}

int gws_session_ahead(gw_srv *s)
{
	size_t pos = s->in_pos, ap, alen;
	const char *line, *enh, *text;
	size_t len;
	int code, discarding = s->discarding;
	gws_verb v;
	gw_srv_event ev;

	/* Whatever is not handed out here stays in the input exactly as it was. */
	if (discarding || gws_line_next(s, &line, &len, &code, &enh, &text) != 1) {
		s->in_pos = pos;
		s->discarding = discarding;
		return 0;
	}
	v = gws_cmd_verb(line, len, &ap);
	alen = len - ap;
	if (v == SRV_V_RCPT && rcpt_ahead_ok(s, line + ap, alen)) {
		memset(&ev, 0, sizeof ev);
		ev.type = GW_SRV_EV_RCPT;
		ev.path = &s->path;
		ev.rcpt_index = s->nrcpt + (s->pending == SRV_A_RCPT) + s->ahead;
		gws_queue_event(s, &ev);
		s->ahead++;
		return 1;
	}
	s->in_pos = pos;
	if (v == SRV_V_DATA && alen == 0 && !s->data_announced) {
		s->data_announced = 1;
		memset(&ev, 0, sizeof ev);
		ev.type = GW_SRV_EV_DATA_AHEAD;
		gws_queue_event(s, &ev);
		return 1;
	}
	return 0;
}

/* Why the transaction cannot take a body now, or NULL. */
static int body_refused(gw_srv *s, const char **enh_r, const char **text_r)
{
	if (!s->mail) {
		*enh_r = "5.5.1";
		*text_r = "Error: need MAIL command";
		return 503;
	}
	if (s->nrcpt == 0) {
		*enh_r = "5.5.1";
		*text_r = "Error: no valid recipients";
		return 554;
	}
	return 0;
}

static void do_data(gw_srv *s, size_t alen)
{
	const char *enh, *text;
	int code;

	if (alen != 0) {
		gws_session_error(s, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if ((code = body_refused(s, &enh, &text)) != 0) {
		gws_session_error(s, code, enh, text);
		return;
	}
	if (s->used_bdat) {
		gws_session_error(s, 503, "5.5.1", "Error: DATA and BDAT cannot be mixed");
		return;
	}
	if (s->binarymime) {
		gws_session_error(s, 503, "5.5.1", "Error: BODY=BINARYMIME needs BDAT");
		return;
	}
	gws_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	gws_body_begin(s, 0);
	s->phase = SRV_P_DATA;
	queue_simple(s, GW_SRV_EV_DATA, GW_SRV_R_NONE);
}

static void do_bdat(gw_srv *s, const char *args, size_t alen)
{
	uint64_t n;
	int last, code;
	const char *enh, *text;

	if (!(s->cfg.caps & GW_SRV_CAP_CHUNKING)) {
		gws_session_error(s, 502, "5.5.1", "Error: command not implemented");
		return;
	}
	if (gws_cmd_bdat(args, alen, &n, &last) < 0) {
		gws_session_error(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		return;
	}
	s->bdat_left = n;
	s->bdat_chunk = n;
	s->bdat_last = last;
	s->phase = SRV_P_BDAT;
	/* The chunk's octets follow whatever the answer: read them, then refuse (RFC 3030 3). */
	if ((code = body_refused(s, &enh, &text)) != 0) {
		s->bdat_refuse = code;
		s->bdat_refuse_enh = enh;
		s->bdat_refuse_text = text;
		return;
	}
	s->bdat_refuse = 0;
	if (!s->used_bdat) {
		gw_srv_event ev;

		s->used_bdat = 1;
		gws_body_begin(s, 1);
		memset(&ev, 0, sizeof ev);
		ev.type = GW_SRV_EV_DATA;
		ev.bdat = 1;
		gws_queue_event(s, &ev);
	}
}

static void do_starttls(gw_srv *s, size_t alen)
{
	if (!(s->cfg.caps & GW_SRV_CAP_STARTTLS)) {
		gws_session_error(s, 502, "5.5.1", "Error: command not implemented");
		return;
	}
	if (s->tls) {
		gws_session_error(s, 503, "5.5.1", "Error: TLS already active");
		return;
	}
	if (alen != 0) {
		gws_session_error(s, 501, "5.5.4", "Syntax: STARTTLS");
		return;
	}
	if (s->mail) {
		gws_session_error(s, 503, "5.5.1", "Error: MAIL transaction in progress");
		return;
	}
	gws_reply(s, 220, "2.0.0", "Ready to start TLS");
	/* Whatever was pipelined after STARTTLS came in plain text: it must not count as sent under TLS
	 * (CVE-2011-0411). */
	s->in_pos = s->in_len;
	s->phase = SRV_P_TLS;
	queue_simple(s, GW_SRV_EV_STARTTLS, GW_SRV_R_NONE);
}

void gws_session_command(gw_srv *s, const char *line, size_t len)
{
	size_t ap;
	gws_verb v = gws_cmd_verb(line, len, &ap);
	const char *args = line + ap;
	size_t alen = len - ap;

	if (v != SRV_V_MAIL && v != SRV_V_RCPT && gws_has_8bit(line, len)) {
		gws_session_error(s, 500, "5.5.2", "Error: 8-bit characters in command");
		return;
	}
	switch (v) {
	case SRV_V_UNKNOWN:
		gws_session_error(s, 500, "5.5.2", "Error: command not recognized");
		return;
	case SRV_V_UNIMPLEMENTED:
		gws_session_error(s, 502, "5.5.1", "Error: command not implemented");
		return;
	case SRV_V_HELO:
	case SRV_V_EHLO:
	case SRV_V_LHLO:
		do_helo(s, v, args, alen);
		return;
	case SRV_V_MAIL:
		do_mail_rcpt(s, 1, args, alen);
		return;
	case SRV_V_RCPT:
		do_mail_rcpt(s, 0, args, alen);
		return;
	case SRV_V_DATA:
		do_data(s, alen);
		return;
	case SRV_V_BDAT:
		do_bdat(s, args, alen);
		return;
	case SRV_V_RSET:
		if (alen != 0) {
			gws_session_error(s, 501, "5.5.4", "Syntax: RSET");
			return;
		}
		gws_reply(s, 250, "2.0.0", "Ok");
		txn_abort(s, GW_SRV_R_RSET);
		return;
	case SRV_V_NOOP:
		gws_reply(s, 250, "2.0.0", "Ok");
		return;
	case SRV_V_QUIT:
		gws_reply(s, 221, "2.0.0", "Bye");
		gws_close(s, GW_SRV_R_QUIT);
		return;
	case SRV_V_VRFY:
		if (alen == 0) {
			gws_session_error(s, 501, "5.5.4", "Syntax: VRFY address");
			return;
		}
		gws_reply(s, 252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
		return;
	case SRV_V_HELP:
		gws_reply(s, 214, "2.0.0",
			  s->cfg.mode == GW_SRV_LMTP
			      ? "Commands: LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS"
			      : "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS");
		return;
	case SRV_V_STARTTLS:
		do_starttls(s, alen);
		return;
	}
}
