/*
 * test_server.c - the sans-IO server engine, driven by a scripted driver.
 *
 * Every conversation is fed whole, one byte at a time and in odd chunks: the
 * replies, events and body must not depend on the split. The driver below
 * accepts or refuses by the address (local part "bad" at MAIL, "reject" and
 * "temp" at RCPT) unless the test answers by hand (async).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw/buf.h"
#include "gw/reply.h"
#include "gw/server.h"

#define S(x) x, sizeof(x) - 1

typedef struct drv {
	gw_srv *s;
	gw_srv_mode mode;
	gw_buf out, body, log;
	int async;     /* leave MAIL, RCPT and DATA_END to the test */
	int defer;     /* decide MAIL and RCPT as usual but answer them only in answer_owed() */
	int owed[128]; /* deferred decisions, oldest first */
	size_t nowed;
	int tls_auto; /* say TLS is up as soon as STARTTLS is reported */
	int closed;
	gw_srv_event last; /* the last event that needs an answer */
} drv;

static void drv_init(drv *d, gw_srv_config *c)
{
	memset(d, 0, sizeof *d);
	d->mode = c->mode;
	d->tls_auto = 1;
	d->s = gw_srv_new(c);
	assert_non_null(d->s);
	gw_buf_init(&d->out, 1 << 24);
	gw_buf_init(&d->body, 1 << 24);
	gw_buf_init(&d->log, 1 << 20);
	gw_srv_start(d->s);
}

static void drv_free(drv *d)
{
	gw_srv_free(&d->s);
	assert_null(d->s);
	gw_buf_free(&d->out);
	gw_buf_free(&d->body);
	gw_buf_free(&d->log);
}

static gw_srv_config config(gw_srv_mode mode)
{
	gw_srv_config c;

	gw_srv_config_init(&c, mode, "mx.example");
	return c;
}

static void handle(drv *d, const gw_srv_event *ev)
{
	char addr[GW_PATH_MAX + 1], text[64];
	size_t i;

	switch (ev->type) {
	case GW_SRV_EV_NONE:
		break;
	case GW_SRV_EV_HELO:
		gw_buf_printf(&d->log, "HELO %s %d;", ev->helo, ev->esmtp);
		break;
	case GW_SRV_EV_MAIL:
	case GW_SRV_EV_RCPT:
		gw_mailbox_format(&ev->path->mbox, addr, sizeof addr);
		if (ev->type == GW_SRV_EV_MAIL)
			gw_buf_printf(&d->log, "MAIL <%s> size=%llu auth=%s;", addr,
				      (unsigned long long)ev->size, ev->auth != NULL ? ev->auth : "-");
		else
			gw_buf_printf(&d->log, "RCPT <%s> %zu;", addr, ev->rcpt_index);
		d->last = *ev;
		if (d->async)
			break;
		if (d->defer) {
			const char *l = ev->path->mbox.local;

			assert_true(d->nowed < sizeof d->owed / sizeof d->owed[0]);
			d->owed[d->nowed++] = strncmp(l, "bad", 3) == 0      ? 1
					      : strncmp(l, "reject", 6) == 0 ? 2
					      : strncmp(l, "temp", 4) == 0   ? 3
									     : 0;
			break;
		}
		if (strncmp(ev->path->mbox.local, "bad", 3) == 0)
			assert_int_equal(gw_srv_reply(d->s, 550, "5.7.1", "sender refused"), 0);
		else if (strncmp(ev->path->mbox.local, "reject", 6) == 0)
			assert_int_equal(gw_srv_reply(d->s, 550, "5.1.1", "no such user"), 0);
		else if (strncmp(ev->path->mbox.local, "temp", 4) == 0)
			assert_int_equal(gw_srv_reply(d->s, 450, "4.2.0", "try later"), 0);
		else
			assert_int_equal(gw_srv_reply(d->s, 250, NULL, "Ok"), 0);
		break;
	case GW_SRV_EV_DATA:
		gw_buf_printf(&d->log, "DATA %d;", ev->bdat);
		break;
	case GW_SRV_EV_BODY:
		assert_true(ev->len > 0);
		gw_buf_append(&d->body, ev->data, ev->len);
		break;
	case GW_SRV_EV_DATA_END:
		gw_buf_printf(&d->log, "END %llu %zu long=%zu/%zu bare=%zu;", (unsigned long long)ev->size,
			      ev->nrcpt, ev->long_lines, ev->longest_line, ev->bare_newlines);
		d->last = *ev;
		if (d->async)
			break;
		if (d->mode == GW_SRV_SMTP) {
			assert_int_equal(gw_srv_reply(d->s, 250, NULL, "queued"), 0);
		} else {
			for (i = 0; i < ev->nrcpt; i++) {
				snprintf(text, sizeof text, "delivered %zu", i);
				assert_int_equal(gw_srv_reply_rcpt(d->s, i, 250, NULL, text), 0);
			}
		}
		break;
	case GW_SRV_EV_RESET:
		gw_buf_printf(&d->log, "RESET %d;", (int)ev->reason);
		break;
	case GW_SRV_EV_STARTTLS:
		gw_buf_puts(&d->log, "STARTTLS;");
		if (d->tls_auto)
			gw_srv_tls_started(d->s);
		break;
	case GW_SRV_EV_CLOSE:
		gw_buf_printf(&d->log, "CLOSE %d;", (int)ev->reason);
		d->closed = 1;
		break;
	case GW_SRV_EV_DATA_AHEAD:
		gw_buf_puts(&d->log, "AHEAD;");
		break;
	}
}

static void drain(drv *d)
{
	gw_srv_event ev;
	gw_buf *o;

	while (gw_srv_next(d->s, &ev) != GW_SRV_EV_NONE)
		handle(d, &ev);
	o = gw_srv_output(d->s);
	gw_buf_append(&d->out, o->data, o->len);
	gw_buf_consume(o, o->len);
}

/* Feed in chunks of `chunk` bytes (0: whole); stops early when the engine takes nothing. */
static size_t feed(drv *d, const char *in, size_t len, size_t chunk)
{
	size_t off = 0;

	drain(d);
	while (off < len) {
		size_t n = chunk != 0 && len - off > chunk ? chunk : len - off;
		size_t took = gw_srv_feed(d->s, in + off, n);

		off += took;
		drain(d);
		if (took == 0)
			break;
	}
	return off;
}

/* Every byte of out is a sequence of well-formed replies. */
static void assert_wellformed(const char *out, size_t len)
{
	gw_reply_parser p;
	gw_reply r;
	size_t off = 0;

	gw_reply_parser_init(&p, 0, 0);
	while (off < len) {
		size_t used;
		const char *err = NULL;
		int rc = gw_reply_parse(&p, out + off, len - off, &used, &r, &err);

		if (rc < 0)
			fail_msg("bad reply at %zu: %s in %.*s", off, err, (int)(len - off), out + off);
		assert_int_equal(rc, 1);
		if (r.code != 220 && r.code != 250 && r.code != 354)
			assert_true(r.enh[0] == '0' + r.code / 100);
		off += used;
	}
}

static const size_t chunks[] = {0, 1, 2, 3, 7, 64};

/* Run one conversation with every chunk size; all must give want_out (and want_log, want_body if given). */
static void conv(gw_srv_config c, const char *in, size_t len, const char *want_out, const char *want_log,
		 const char *want_body)
{
	size_t i;

	for (i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
		drv d;

		drv_init(&d, &c);
		assert_int_equal(feed(&d, in, len, chunks[i]), len);
		if (strcmp(gw_buf_cstr(&d.out), want_out) != 0)
			fail_msg("chunk %zu: got\n%s\nwant\n%s", chunks[i], gw_buf_cstr(&d.out), want_out);
		assert_wellformed(d.out.data, d.out.len);
		if (want_log != NULL && strcmp(gw_buf_cstr(&d.log), want_log) != 0)
			fail_msg("chunk %zu: got log %s, want %s", chunks[i], gw_buf_cstr(&d.log), want_log);
		if (want_body != NULL && strcmp(gw_buf_cstr(&d.body), want_body) != 0)
			fail_msg("chunk %zu: got body [%s], want [%s]", chunks[i], gw_buf_cstr(&d.body),
				 want_body);
		drv_free(&d);
	}
}

#define GREET "220 mx.example ESMTP\r\n"
#define EHLO_REPLY                                                                                           \
	"250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"        \
	"250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
#define EHLO_REPLY_BIN                                                                                       \
	"250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"        \
	"250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 BINARYMIME\r\n"

static void test_smtp_transaction(void **state)
{
	(void)state;
	conv(config(GW_SRV_SMTP),
	     S("EHLO client.example\r\n"
	       "MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=x1\r\n"
	       "RCPT TO:<c@D.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d.example\r\n"
	       "RCPT TO:<reject@d.example>\r\n"
	       "RCPT TO:<temp@d.example>\r\n"
	       "DATA\r\n"
	       "Subject: hi\r\n\r\n..dot\r\n.x\r\nend\r\n.\r\n"
	       "QUIT\r\n"),
	     GREET EHLO_REPLY
	     "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no such user\r\n450 4.2.0 try later\r\n"
	     "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 queued\r\n221 2.0.0 Bye\r\n",
	     "HELO client.example 1;MAIL <a@b.example> size=100 auth=-;RCPT <c@d.example> 0;"
	     "RCPT <reject@d.example> 1;RCPT <temp@d.example> 1;DATA 0;END 29 1 long=0/13 bare=0;CLOSE 5;",
	     "Subject: hi\r\n\r\n.dot\r\nx\r\nend\r\n");
}

static void test_ehlo_capabilities(void **state)
{
	gw_srv_config c = config(GW_SRV_SMTP);

	(void)state;
	c.max_size = 10000;
	c.caps = GW_SRV_CAP_PIPELINING | GW_SRV_CAP_SIZE | GW_SRV_CAP_STARTTLS | GW_SRV_CAP_BINARYMIME;
	/* BINARYMIME without CHUNKING is not offered; without ENHANCEDSTATUSCODES replies carry none. */
	conv(c, S("EHLO x\r\nNOOP\r\n"),
	     GREET "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250 STARTTLS\r\n250 Ok\r\n", NULL,
	     NULL);
	c.caps = GW_SRV_CAP_DEFAULT | GW_SRV_CAP_BINARYMIME;
	c.greeting = "gw ready";
	conv(c, S("EHLO x\r\n"),
	     "220 gw ready\r\n250-mx.example\r\n250-PIPELINING\r\n250-SIZE "
	     "10000\r\n250-ENHANCEDSTATUSCODES\r\n"
	     "250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 BINARYMIME\r\n",
	     NULL, NULL);
}

static void test_helo_and_modes(void **state)
{
	(void)state;
	conv(config(GW_SRV_SMTP), S("HELO client\r\nLHLO client\r\nHELO\r\nMAIL FROM:<>\r\n"),
	     GREET "250 mx.example\r\n500 5.5.1 Error: LHLO is LMTP: send EHLO or HELO\r\n"
		   "501 5.5.4 Syntax: HELO hostname\r\n250 2.1.0 Ok\r\n",
	     "HELO client 0;MAIL <> size=0 auth=-;", NULL);
	conv(config(GW_SRV_LMTP), S("EHLO x\r\nHELO x\r\nMAIL FROM:<>\r\nLHLO x\r\n"),
	     "220 mx.example LMTP\r\n500 5.5.1 Error: this is LMTP: send LHLO\r\n"
	     "500 5.5.1 Error: this is LMTP: send LHLO\r\n503 5.5.1 Error: send LHLO first\r\n" EHLO_REPLY,
	     "HELO x 1;", NULL);
	/* A new greeting in a transaction ends it. */
	conv(config(GW_SRV_SMTP), S("EHLO x\r\nMAIL FROM:<a@b>\r\nEHLO y\r\nRCPT TO:<c@d>\r\n"),
	     GREET EHLO_REPLY "250 2.1.0 Ok\r\n" EHLO_REPLY "503 5.5.1 Error: need MAIL command\r\n",
	     "HELO x 1;MAIL <a@b> size=0 auth=-;RESET 2;HELO y 1;", NULL);
}

static void test_simple_commands(void **state)
{
	(void)state;
	conv(config(GW_SRV_SMTP),
	     S("NOOP\r\nnoop anything\r\nVRFY someone\r\nVRFY\r\nHELP\r\nRSET\r\nRSET x\r\nEXPN "
	       "list\r\nTURN\r\n"
	       "AUTH PLAIN\r\nFOO\r\n\r\nSTARTTLS\r\nQUIT\r\nNOOP\r\n"),
	     GREET "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"
		   "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
		   "501 5.5.4 Syntax: VRFY address\r\n"
		   "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS\r\n"
		   "250 2.0.0 Ok\r\n501 5.5.4 Syntax: RSET\r\n502 5.5.1 Error: command not implemented\r\n"
		   "502 5.5.1 Error: command not implemented\r\n502 5.5.1 Error: command not implemented\r\n"
		   "500 5.5.2 Error: command not recognized\r\n500 5.5.2 Error: command not recognized\r\n"
		   "502 5.5.1 Error: command not implemented\r\n221 2.0.0 Bye\r\n",
	     "CLOSE 5;", NULL);
}

static void test_out_of_order(void **state)
{
	(void)state;
	conv(config(GW_SRV_SMTP),
	     S("MAIL FROM:<a@b>\r\nEHLO x\r\nRCPT TO:<c@d>\r\nDATA\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\n"
	       "DATA\r\nRCPT TO:<reject@d>\r\nDATA\r\nDATA x\r\nMAIL FROM:<bad@b>\r\n"),
	     GREET
	     "503 5.5.1 Error: send HELO/EHLO first\r\n" EHLO_REPLY
	     "503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need MAIL command\r\n250 2.1.0 Ok\r\n"
	     "503 5.5.1 Error: nested MAIL command\r\n554 5.5.1 Error: no valid recipients\r\n"
	     "550 5.1.1 no such user\r\n554 5.5.1 Error: no valid recipients\r\n501 5.5.4 Syntax: DATA\r\n"
	     "503 5.5.1 Error: nested MAIL command\r\n",
	     NULL, NULL);
	/* A refused MAIL leaves no transaction. */
	conv(config(GW_SRV_SMTP), S("EHLO x\r\nMAIL FROM:<bad@b>\r\nRCPT TO:<c@d>\r\nMAIL FROM:<a@b>\r\n"),
	     GREET EHLO_REPLY
	     "550 5.7.1 sender refused\r\n503 5.5.1 Error: need MAIL command\r\n250 2.1.0 Ok\r\n",
	     NULL, NULL);
}

/* After the greeting and the EHLO reply, the replies must be want[], in order (each a prefix of its reply).
 */
static void expect_replies(gw_srv_config c, const char *in, size_t len, const char *const *want, size_t nwant)
{
	size_t k;

	for (k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
		drv d;
		gw_reply_parser p;
		gw_reply r;
		size_t off = 0, n = 0;

		drv_init(&d, &c);
		assert_int_equal(feed(&d, in, len, chunks[k]), len);
		assert_wellformed(d.out.data, d.out.len);
		gw_reply_parser_init(&p, 0, 0);
		while (off < d.out.len) {
			size_t used;

			assert_int_equal(
			    gw_reply_parse(&p, d.out.data + off, d.out.len - off, &used, &r, NULL), 1);
			if (n >= 2) {
				if (n - 2 >= nwant)
					fail_msg("chunk %zu: extra reply %.*s", chunks[k], (int)used,
						 d.out.data + off);
				if (strncmp(d.out.data + off, want[n - 2], strlen(want[n - 2])) != 0)
					fail_msg("chunk %zu: reply %zu: got %.*s want %s", chunks[k], n - 2,
						 (int)used, d.out.data + off, want[n - 2]);
			}
			off += used;
			n++;
		}
		assert_int_equal(n - 2, nwant);
		drv_free(&d);
	}
}

static void test_parameters_each(void **state)
{
	gw_srv_config c = config(GW_SRV_SMTP);
	static const char in[] =
	    "EHLO x\r\nMAIL FROM:<a@b> FOO=1\r\nMAIL FROM:<a@b> NOTIFY=NEVER\r\nMAIL FROM:<a@b> SIZE=1001\r\n"
	    "MAIL FROM:<a@b> SIZE=x\r\nMAIL FROM:<a@b> AUTH=<>\r\nMAIL FROM:<a@@b>\r\nMAIL TO:<a@b>\r\n"
	    "MAIL FROM:<a\xc3\xa9@b>\r\nMAIL FROM:<a@b> BODY=BINARYMIME\r\nMAIL FROM: <a@b> SIZE=1000\r\n"
	    "RCPT TO:<c@d> SIZE=1\r\nRCPT TO:<c\xc3\xa9@d>\r\nRCPT TO:<Postmaster>\r\nRCPT TO:c@d\r\n"
	    "RCPT TO:<c@d> AUTH=x\r\nRCPT TO:<c@d>NOTIFY=NEVER\r\nRCPT TO:<\"c d\"@d> "
	    "NOTIFY=NEVER\r\nRSET\r\n"
	    "MAIL FROM:<a\xc3\xa9@b> SMTPUTF8\r\nRCPT TO:<c\xc3\xa9@d>\r\n";
	static const char *const want[] = {
	    "555 5.5.4 Error: unsupported parameter\r\n",
	    "555 5.5.4 Error: NOTIFY and ORCPT belong to RCPT\r\n",
	    "552 5.3.4 Error: message size exceeds fixed limit\r\n",
	    "501 5.5.4 Error: SIZE value not a number\r\n",
	    "555 5.5.4 Error: AUTH parameter not supported\r\n",
	    "501 5.1.7 Bad sender address syntax: ",
	    "501 5.5.4 Syntax: MAIL FROM:<address>\r\n",
	    "553 5.6.7 Error: non-ASCII address needs SMTPUTF8\r\n",
	    "555 5.5.4 Error: BINARYMIME not offered\r\n",
	    "250 2.1.0 Ok\r\n",
	    "555 5.5.4 Error: parameter not valid for RCPT\r\n",
	    "553 5.6.7 Error: non-ASCII address needs SMTPUTF8\r\n",
	    "250 2.1.5 Ok\r\n",
	    "250 2.1.5 Ok\r\n",
	    "555 5.5.4 Error: AUTH parameter not supported\r\n",
	    "501 5.1.3 Bad recipient address syntax: unexpected text after address\r\n",
	    "250 2.1.5 Ok\r\n",
	    "250 2.0.0 Ok\r\n",
	    "250 2.1.0 Ok\r\n",
	    "250 2.1.5 Ok\r\n",
	};

	(void)state;
	c.max_size = 1000;
	expect_replies(c, in, sizeof in - 1, want, sizeof want / sizeof want[0]);

	/* Without DSN and SMTPUTF8 offered, their parameters are refused; AUTH= when allowed is passed on. */
	c.caps = GW_SRV_CAP_PIPELINING | GW_SRV_CAP_ENHANCEDSTATUSCODES | GW_SRV_CAP_AUTH_PARAM;
	{
		static const char in2[] =
		    "EHLO x\r\nMAIL FROM:<a@b> RET=FULL\r\nMAIL FROM:<a@b> SMTPUTF8\r\n"
		    "MAIL FROM:<a@b> BODY=8BITMIME\r\nMAIL FROM:<a@b> SIZE=5\r\n"
		    "MAIL FROM:<a@b> AUTH=bad=\r\nMAIL FROM:<a@b> AUTH=x+2By AUTH=<>\r\n"
		    "MAIL FROM:<a@b> AUTH=x+2By\r\nRCPT TO:<c@d> NOTIFY=NEVER\r\n";
		static const char *const want2[] = {
		    "555 5.5.4 Error: DSN not offered\r\n",
		    "555 5.5.4 Error: SMTPUTF8 not offered\r\n",
		    "555 5.5.4 Error: 8BITMIME not offered\r\n",
		    "555 5.5.4 Error: SIZE not offered\r\n",
		    "501 5.5.4 Error: invalid AUTH value\r\n",
		    "501 5.5.4 Error: duplicate parameter AUTH\r\n",
		    "250 2.1.0 Ok\r\n",
		    "555 5.5.4 Error: DSN not offered\r\n",
		};
		drv d;

		expect_replies(c, in2, sizeof in2 - 1, want2, sizeof want2 / sizeof want2[0]);
		drv_init(&d, &c);
		feed(&d, S("EHLO x\r\nMAIL FROM:<a@b> AUTH=x+2By\r\n"), 0);
		assert_string_equal(gw_buf_cstr(&d.log), "HELO x 1;MAIL <a@b> size=0 auth=x+2By;");
		drv_free(&d);
	}
}

static void test_lmtp_async_out_of_order(void **state)
{
	gw_srv_config c = config(GW_SRV_LMTP);
	static const char in[] = "LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<one@d>\r\nRCPT TO:<reject@d>\r\n"
				 "RCPT TO:<two@d>\r\nRCPT TO:<three@d>\r\nDATA\r\nbody\r\n.\r\nNOOP\r\n";
	drv d;
	const char *before;
	size_t i, base;

	(void)state;
	for (i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
		drv_init(&d, &c);
		d.async = 1;
		assert_int_equal(feed(&d, in, sizeof in - 1, chunks[i]), sizeof in - 1);
		/* MAIL is pending: nothing after it is answered, whatever was pipelined. */
		assert_int_equal(gw_srv_waiting(d.s), GW_SRV_WAIT_ANSWER);
		assert_string_equal(gw_buf_cstr(&d.log), "HELO x 1;MAIL <a@b> size=0 auth=-;");
		base = d.out.len;
		assert_int_equal(gw_srv_reply(d.s, 250, NULL, "sender ok"), 0);
		drain(&d);
		assert_int_equal(gw_srv_reply(d.s, 250, NULL, "one ok"), 0);
		drain(&d);
		assert_int_equal(gw_srv_reply(d.s, 550, "5.1.1", "no"), 0);
		drain(&d);
		assert_int_equal(gw_srv_reply(d.s, 250, NULL, "two ok"), 0);
		drain(&d);
		assert_int_equal(gw_srv_reply(d.s, 251, NULL, "three ok"), 0);
		drain(&d);
		assert_int_equal(d.last.type, GW_SRV_EV_DATA_END);
		assert_int_equal(d.last.nrcpt, 3);
		assert_string_equal(gw_buf_cstr(&d.body), "body\r\n");
		/* Out of order: 2 then 0 then 1; output only grows when the next in line is known. */
		assert_int_equal(gw_srv_reply_rcpt(d.s, 2, 450, "4.4.1", "third later"), 0);
		drain(&d);
		before = strstr(gw_buf_cstr(&d.out) + base, "354");
		assert_non_null(before);
		assert_string_equal(before, "354 End data with <CR><LF>.<CR><LF>\r\n");
		assert_int_equal(gw_srv_reply_rcpt(d.s, 2, 250, NULL, "again"), -1);
		assert_int_equal(errno, EALREADY);
		assert_int_equal(gw_srv_reply_rcpt(d.s, 3, 250, NULL, "none"), -1);
		assert_int_equal(errno, ERANGE);
		assert_int_equal(gw_srv_reply_rcpt(d.s, 0, 250, NULL, "first"), 0);
		drain(&d);
		assert_int_equal(gw_srv_reply_rcpt(d.s, 0, 250, NULL, "again"), -1);
		assert_int_equal(errno, EALREADY);
		assert_int_equal(gw_srv_waiting(d.s), GW_SRV_WAIT_ANSWER);
		assert_int_equal(gw_srv_reply_rcpt(d.s, 1, 554, "5.6.0", "second\nrefused"), 0);
		drain(&d);
		assert_string_equal(
		    gw_buf_cstr(&d.out) + base,
		    "250 2.1.0 sender ok\r\n250 2.1.5 one ok\r\n550 5.1.1 no\r\n250 2.1.5 two ok\r\n"
		    "251 2.1.5 three ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
		    "250 2.0.0 first\r\n554-5.6.0 second\r\n554 5.6.0 refused\r\n"
		    "450 4.4.1 third later\r\n250 2.0.0 Ok\r\n");
		/* Nothing is owed any more. */
		assert_int_equal(gw_srv_reply(d.s, 250, NULL, "x"), -1);
		assert_int_equal(errno, EPROTO);
		drv_free(&d);
	}
}

static void test_lmtp_sequential_and_smtp_final(void **state)
{
	gw_srv_config c = config(GW_SRV_LMTP);
	drv d;

	(void)state;
	/* gw_srv_reply at LMTP end of data answers the recipients in order. */
	drv_init(&d, &c);
	d.async = 1;
	feed(&d, S("LHLO x\r\nMAIL FROM:<a@b>\r\n"), 0);
	assert_int_equal(gw_srv_reply(d.s, 250, NULL, NULL), 0);
	feed(&d, S("RCPT TO:<a@d>\r\n"), 0);
	assert_int_equal(gw_srv_reply(d.s, 250, NULL, NULL), 0);
	feed(&d, S("RCPT TO:<b@d>\r\n"), 0);
	assert_int_equal(gw_srv_reply(d.s, 250, NULL, NULL), 0);
	assert_int_equal(gw_srv_reply(d.s, 250, NULL, NULL), -1);
	assert_int_equal(errno, EPROTO);
	feed(&d, S("DATA\r\nx\r\n.\r\n"), 0);
	assert_int_equal(gw_srv_reply_rcpt(d.s, 1, 250, NULL, "b"), 0);
	assert_int_equal(gw_srv_reply(d.s, 452, "4.3.1", "a"), 0);
	drain(&d);
	assert_non_null(strstr(gw_buf_cstr(&d.out),
			       "354 End data with <CR><LF>.<CR><LF>\r\n452 4.3.1 a\r\n250 2.0.0 b\r\n"));
	/* Bad answers are refused and change nothing. */
	feed(&d, S("MAIL FROM:<a@b>\r\n"), 0);
	assert_int_equal(gw_srv_reply(d.s, 354, NULL, "x"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(gw_srv_reply(d.s, 250, "5.1.1", "x"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(gw_srv_reply(d.s, 250, "2.1", "x"), -1);
	assert_int_equal(gw_srv_reply(d.s, 700, NULL, "x"), -1);
	assert_int_equal(gw_srv_reply_rcpt(d.s, 0, 250, NULL, "x"), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(gw_srv_reply(d.s, 250, "2.1.0", "fine\r\x01"), 0);
	drain(&d);
	assert_non_null(strstr(gw_buf_cstr(&d.out), "250 2.1.0 fine??\r\n"));
	drv_free(&d);
}

static void test_driver_421_closes(void **state)
{
	gw_srv_config c = config(GW_SRV_SMTP);
	drv d;

	(void)state;
	drv_init(&d, &c);
	d.async = 1;
	feed(&d, S("EHLO x\r\nMAIL FROM:<a@b>\r\nNOOP\r\n"), 0);
	assert_int_equal(gw_srv_reply(d.s, 421, "4.3.2", "gateway cannot reach the outside"), 0);
	drain(&d);
	assert_true(d.closed);
	assert_int_equal(gw_srv_waiting(d.s), GW_SRV_WAIT_CLOSED);
	assert_non_null(strstr(gw_buf_cstr(&d.out), "\r\n421 4.3.2 gateway cannot reach the outside\r\n"));
	assert_null(strstr(gw_buf_cstr(&d.out), "250 2.0.0 Ok"));
	drv_free(&d);

	/* LMTP: a 421 among the final replies closes the session once every recipient has its reply. */
	c.mode = GW_SRV_LMTP;
	drv_init(&d, &c);
	d.async = 1;
	feed(&d, S("LHLO x\r\nMAIL FROM:<a@b>\r\n"), 0);
	assert_int_equal(gw_srv_reply(d.s, 250, NULL, NULL), 0);
	feed(&d, S("RCPT TO:<a@d>\r\nRCPT TO:<b@d>\r\nDATA\r\n.\r\nNOOP\r\n"), 0);
	assert_int_equal(gw_srv_reply(d.s, 250, NULL, NULL), 0);
	drain(&d);
	assert_int_equal(gw_srv_reply(d.s, 250, NULL, NULL), 0);
	drain(&d);
	assert_int_equal(gw_srv_reply_rcpt(d.s, 0, 421, "4.4.2", "lost the destination"), 0);
	drain(&d);
	assert_false(d.closed);
	assert_int_equal(gw_srv_reply_rcpt(d.s, 1, 250, NULL, "done"), 0);
	drain(&d);
	assert_true(d.closed);
	assert_non_null(strstr(gw_buf_cstr(&d.out), "354 End data with <CR><LF>.<CR><LF>\r\n"
						    "421 4.4.2 lost the destination\r\n250 2.0.0 done\r\n"));
	assert_null(strstr(gw_buf_cstr(&d.out), "250 2.0.0 Ok"));
	drv_free(&d);

	/* Refusing the connection: 421 instead of the greeting. */
	c.mode = GW_SRV_SMTP;
	d.s = gw_srv_new(&c);
	assert_int_equal(gw_srv_waiting(d.s), GW_SRV_WAIT_GREETING);
	gw_srv_shutdown(d.s, "busy");
	assert_string_equal(gw_buf_cstr(gw_srv_output(d.s)), "421 4.3.2 mx.example busy\r\n");
	gw_srv_free(&d.s);
}

static void test_bdat(void **state)
{
	gw_srv_config c = config(GW_SRV_SMTP);

	(void)state;
	conv(c,
	     S("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 7\r\nhe\r\n.\r\nBDAT 6 LAST\r\n world"
	       "BDAT 3\r\nabcNOOP\r\n"),
	     GREET EHLO_REPLY
	     "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 7 octets received\r\n250 2.0.0 queued\r\n"
	     "503 5.5.1 Error: need MAIL command\r\n250 2.0.0 Ok\r\n",
	     "HELO x 1;MAIL <a@b> size=0 auth=-;RCPT <c@d> 0;DATA 1;END 13 1 long=0/0 bare=0;",
	     "he\r\n.\r\n world");
	/* DATA after BDAT in one transaction; BDAT 0 LAST; bad BDAT syntax; no recipients. */
	conv(c,
	     S("EHLO x\r\nMAIL FROM:<a@b>\r\nBDAT 2\r\nxyRCPT TO:<c@d>\r\nBDAT 1\r\nzDATA\r\nBDAT 0 LAST\r\n"
	       "BDAT x\r\nBDAT 1 LASTX\r\n"),
	     GREET EHLO_REPLY
	     "250 2.1.0 Ok\r\n554 5.5.1 Error: no valid recipients\r\n250 2.1.5 Ok\r\n"
	     "250 2.0.0 1 octets received\r\n503 5.5.1 Error: DATA and BDAT cannot be mixed\r\n"
	     "250 2.0.0 queued\r\n501 5.5.4 Syntax: BDAT size [LAST]\r\n"
	     "501 5.5.4 Syntax: BDAT size [LAST]\r\n",
	     NULL, "z");
	/* LMTP: one reply per recipient after BDAT LAST; BINARYMIME needs BDAT. */
	c = config(GW_SRV_LMTP);
	c.caps |= GW_SRV_CAP_BINARYMIME;
	conv(c,
	     S("LHLO x\r\nMAIL FROM:<a@b> BODY=BINARYMIME\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@d>\r\nDATA\r\n"
	       "BDAT 4 LAST\r\n\x00\r\n\xff"),
	     "220 mx.example LMTP\r\n" EHLO_REPLY_BIN "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
	     "503 5.5.1 Error: BODY=BINARYMIME needs BDAT\r\n250 2.0.0 delivered 0\r\n250 2.0.0 delivered "
	     "1\r\n",
	     NULL, NULL);
	/* Without CHUNKING, BDAT is not offered. */
	c = config(GW_SRV_SMTP);
	c.caps &= ~(unsigned)GW_SRV_CAP_CHUNKING;
	conv(c, S("BDAT 1 LAST\r\n"), GREET "502 5.5.1 Error: command not implemented\r\n", NULL, NULL);
}

static void test_dot_unstuffing_and_end(void **state)
{
	gw_srv_config c = config(GW_SRV_SMTP);

	(void)state;
	/* Empty body; a body that is one "." line (stuffed); lines starting with dots. */
	conv(c,
	     S("EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<c@d>\r\n"
	       "DATA\r\n..\r\n...\r\n.a.\r\n.\r\n"),
	     GREET EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
			      "250 2.0.0 queued\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
			      "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 queued\r\n",
	     NULL, ".\r\n..\r\na.\r\n");
}

static void test_bare_newlines(void **state)
{
	gw_srv_config c = config(GW_SRV_SMTP);
	static const char hdr[] = "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n";
	char in[512];

	(void)state;
	/* Normalised: bare LF and CR become CRLF; "\n.\r\n" and "\r\n.\n" do not end the data (smuggling). */
	snprintf(in, sizeof in, "%s%s", hdr,
		 "a\nb\rc\r\n.\nMAIL FROM:<evil@x>\r\nd\n.\r\nRCPT TO:<evil@y>\r\n.\r\nNOOP\r\n");
	conv(c, in, strlen(in),
	     GREET EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
			      "250 2.0.0 queued\r\n250 2.0.0 Ok\r\n",
	     "HELO x 1;MAIL <a@b> size=0 auth=-;RCPT <c@d> 0;DATA 0;END 56 1 long=0/20 bare=4;",
	     "a\r\nb\r\nc\r\n.\r\nMAIL FROM:<evil@x>\r\nd\r\n.\r\nRCPT TO:<evil@y>\r\n");
	/* A dot line after a bare LF keeps its dot (it is not stuffing). */
	snprintf(in, sizeof in, "%s%s", hdr, "x\n..\r\n.\r\n");
	conv(c, in, strlen(in),
	     GREET EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
			      "250 2.0.0 queued\r\n",
	     NULL, "x\r\n.\r\n");
	/* Rejected: 550 5.5.2 after the end, the session goes on. What came before the first bare newline was
	 * already streamed; RESET tells the driver to drop it, and nothing after it is handed out. */
	c.bare_newline = GW_SRV_BARE_REJECT;
	snprintf(in, sizeof in, "%s%s", hdr, "a\nb\r\n.\nc\r\n.\r\nNOOP\r\n");
	conv(c, in, strlen(in),
	     GREET EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
			      "550 5.5.2 Error: bare <CR> or <LF> received\r\n250 2.0.0 Ok\r\n",
	     "HELO x 1;MAIL <a@b> size=0 auth=-;RCPT <c@d> 0;DATA 0;RESET 4;", "a");
}

static void test_command_line_bad_bytes(void **state)
{
	(void)state;
	conv(config(GW_SRV_SMTP), S("NOOP\nNO\0OP\r\nNO\rOP\r\nNOOP \xc3\xa9\r\nnoop\r\n"),
	     GREET
	     "250 2.0.0 Ok\r\n500 5.5.2 Error: NUL in command\r\n500 5.5.2 Error: bare CR in command\r\n"
	     "500 5.5.2 Error: 8-bit characters in command\r\n250 2.0.0 Ok\r\n",
	     NULL, NULL);
}

static void test_long_command_line(void **state)
{
	gw_srv_config c = config(GW_SRV_SMTP);
	char in[4096];
	size_t n;

	(void)state;
	/* 510 bytes + CRLF = 512 fits; 511 + CRLF does not; a 3000-byte line is dropped as it comes. */
	n = (size_t)snprintf(in, sizeof in, "NOOP %0505d\r\nNOOP %0506d\r\nNOOP %03000d\r\nNOOP\r\n", 0, 0,
			     0);
	conv(c, in, n,
	     GREET "250 2.0.0 Ok\r\n500 5.5.6 Error: line too long\r\n500 5.5.6 Error: line too long\r\n"
		   "250 2.0.0 Ok\r\n",
	     NULL, NULL);
	c.max_line = 20;
	n = (size_t)snprintf(in, sizeof in, "NOOP 12345678901234\r\nNOOP\r\n");
	conv(c, in, n, GREET "500 5.5.6 Error: line too long\r\n250 2.0.0 Ok\r\n", NULL, NULL);
}

static void test_recipient_limit(void **state)
{
	gw_srv_config c = config(GW_SRV_LMTP);

	(void)state;
	c.max_rcpts = 2;
	conv(c,
	     S("LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<reject@d>\r\nRCPT TO:<a@d>\r\nRCPT TO:<b@d>\r\n"
	       "RCPT TO:<c@d>\r\nDATA\r\n.\r\n"),
	     "220 mx.example LMTP\r\n" EHLO_REPLY "250 2.1.0 Ok\r\n550 5.1.1 no such user\r\n250 2.1.5 Ok\r\n"
	     "250 2.1.5 Ok\r\n452 4.5.3 Error: too many recipients\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
	     "250 2.0.0 delivered 0\r\n250 2.0.0 delivered 1\r\n",
	     NULL, NULL);
}

static void test_size_limit(void **state)
{
	gw_srv_config c = config(GW_SRV_LMTP);

	(void)state;
	c.max_size = 10;
	conv(
	    c,
	    S("LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@d>\r\nRCPT TO:<b@d>\r\nDATA\r\n0123456789\r\n.\r\n"
	      "MAIL FROM:<a@b>\r\nRCPT TO:<a@d>\r\nDATA\r\n01234567\r\n.\r\n"
	      "MAIL FROM:<a@b>\r\nRCPT TO:<a@d>\r\nBDAT 8\r\n01234567BDAT 8 LAST\r\n01234567RSET\r\n"),
	    "220 mx.example LMTP\r\n250-mx.example\r\n250-PIPELINING\r\n250-SIZE "
	    "10\r\n250-ENHANCEDSTATUSCODES\r\n"
	    "250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
	    "552 5.3.4 Error: message too large\r\n552 5.3.4 Error: message too large\r\n"
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 delivered 0\r\n"
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 8 octets received\r\n552 5.3.4 Error: message too "
	    "large\r\n"
	    "250 2.0.0 Ok\r\n",
	    "HELO x 1;MAIL <a@b> size=0 auth=-;RCPT <a@d> 0;RCPT <b@d> 1;DATA 0;RESET 3;"
	    "MAIL <a@b> size=0 auth=-;RCPT <a@d> 0;DATA 0;END 10 1 long=0/10 bare=0;"
	    "MAIL <a@b> size=0 auth=-;RCPT <a@d> 0;DATA 1;RESET 3;",
	    NULL);
}

static void test_text_line_limit(void **state)
{
	gw_srv_config c = config(GW_SRV_SMTP);
	char in[8192];
	size_t n;

	(void)state;
	n = (size_t)snprintf(in, sizeof in,
			     "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nshort\r\n%01198d\r\n"
			     "%0998d\r\n.\r\nNOOP\r\n",
			     0, 0);
	conv(c, in, n,
	     GREET EHLO_REPLY "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
			      "250 2.0.0 queued\r\n250 2.0.0 Ok\r\n",
	     "HELO x 1;MAIL <a@b> size=0 auth=-;RCPT <c@d> 0;DATA 0;END 2207 1 long=1/1200 bare=0;", NULL);
}

static void test_error_limit(void **state)
{
	gw_srv_config c = config(GW_SRV_SMTP);

	(void)state;
	c.max_errors = 3;
	/* Refusals of content do not count; protocol errors do. */
	conv(
	    c, S("FOO\r\nMAIL FROM:<a@b>\r\nEHLO x\r\nMAIL FROM:<a\xc3\xa9@b>\r\nBAR\r\nNOOP\r\n"),
	    GREET
	    "500 5.5.2 Error: command not recognized\r\n503 5.5.1 Error: send HELO/EHLO first\r\n" EHLO_REPLY
	    "553 5.6.7 Error: non-ASCII address needs SMTPUTF8\r\n500 5.5.2 Error: command not recognized\r\n"
	    "421 4.7.0 mx.example Error: too many errors\r\n",
	    "HELO x 1;CLOSE 6;", NULL);
}

static void test_starttls(void **state)
{
	gw_srv_config c = config(GW_SRV_SMTP);
	drv d;

	(void)state;
	c.caps |= GW_SRV_CAP_STARTTLS;
	/* The MAIL pipelined after STARTTLS came in clear text: it is dropped, and TLS needs a new EHLO. (Fed
	 * whole: fed later, it would be input that came over TLS.) */
	drv_init(&d, &c);
	feed(&d, S("EHLO x\r\nSTARTTLS\r\nMAIL FROM:<a@b>\r\n"), 0);
	assert_string_equal(
	    gw_buf_cstr(&d.out),
	    GREET "250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-STARTTLS\r\n"
		  "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
		  "220 2.0.0 Ready to start TLS\r\n");
	assert_string_equal(gw_buf_cstr(&d.log), "HELO x 1;STARTTLS;");
	drv_free(&d);
	drv_init(&d, &c);
	d.tls_auto = 0;
	feed(&d, S("EHLO x\r\nMAIL FROM:<a@b>\r\nSTARTTLS\r\nRSET\r\nSTARTTLS x\r\nSTARTTLS\r\nNOOP\r\n"), 0);
	assert_int_equal(gw_srv_waiting(d.s), GW_SRV_WAIT_TLS);
	assert_int_equal(gw_srv_feed(d.s, S("NOOP\r\n")), 6); /* dropped */
	drain(&d);
	gw_srv_tls_started(d.s);
	feed(&d, S("MAIL FROM:<a@b>\r\nEHLO y\r\nSTARTTLS\r\n"), 0);
	assert_string_equal(
	    gw_buf_cstr(&d.out), GREET
	    "250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-STARTTLS\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
	    "250 2.1.0 Ok\r\n503 5.5.1 Error: MAIL transaction in progress\r\n250 2.0.0 Ok\r\n"
	    "501 5.5.4 Syntax: STARTTLS\r\n220 2.0.0 Ready to start TLS\r\n"
	    "503 5.5.1 Error: send HELO/EHLO first\r\n" EHLO_REPLY "503 5.5.1 Error: TLS already active\r\n");
	assert_string_equal(gw_buf_cstr(&d.log),
			    "HELO x 1;MAIL <a@b> size=0 auth=-;RESET 1;STARTTLS;HELO y 1;");
	drv_free(&d);
}

static void test_input_and_output_bounds(void **state)
{
	gw_srv_config c = config(GW_SRV_SMTP);
	char in[20000];
	size_t n = 0, took, i;
	gw_srv *s;
	gw_srv_event ev;
	gw_buf *o;

	(void)state;
	c.max_input = 1000;
	c.max_output = 200;
	s = gw_srv_new(&c);
	gw_srv_start(s);
	n = (size_t)snprintf(in, sizeof in, "EHLO x\r\nMAIL FROM:<a@b>\r\n");
	for (i = 0; i < 1000; i++)
		n += (size_t)snprintf(in + n, sizeof in - n, "NOOP\r\n");
	/* MAIL pending: the engine holds at most max_input bytes of what follows. */
	took = gw_srv_feed(s, in, n);
	assert_int_equal(took, 1000);
	while (gw_srv_next(s, &ev) != GW_SRV_EV_NONE)
		if (ev.type == GW_SRV_EV_MAIL)
			break;
	assert_int_equal(ev.type, GW_SRV_EV_MAIL);
	assert_int_equal(gw_srv_next(s, &ev), GW_SRV_EV_NONE);
	assert_int_equal(gw_srv_waiting(s), GW_SRV_WAIT_ANSWER);
	assert_int_equal(gw_srv_input_room(s), 1000 - (1000 - 8 - 17));
	assert_int_equal(gw_srv_feed(s, in + took, n - took), 25);
	assert_int_equal(gw_srv_input_room(s), 0);
	assert_int_equal(gw_srv_reply(s, 250, NULL, NULL), 0);
	/* Nobody reads the output: the engine stops once max_output bytes wait. */
	assert_int_equal(gw_srv_next(s, &ev), GW_SRV_EV_NONE);
	assert_int_equal(gw_srv_waiting(s), GW_SRV_WAIT_OUTPUT);
	o = gw_srv_output(s);
	assert_true(o->len >= 200 && o->len < 220);
	gw_buf_consume(o, o->len);
	assert_int_equal(gw_srv_waiting(s), GW_SRV_WAIT_COMMAND);
	assert_int_equal(gw_srv_next(s, &ev), GW_SRV_EV_NONE);
	assert_true(o->len >= 200);
	gw_srv_free(&s);
}

/* Garbage of every kind, in odd splits: every reply well-formed, and the session still answers. */
static void test_garbage_survives(void **state)
{
	gw_srv_config c = config(GW_SRV_SMTP);
	static char junk[200000];
	uint64_t x = 88172645463325252ull;
	size_t i, k;

	(void)state;
	c.max_errors = 1000000;
	c.max_size = 5000;
	for (i = 0; i < sizeof junk; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* Mostly text with line ends and dots, so commands and DATA are reached too. */
		switch (x % 16) {
		case 0:
			junk[i] = '\n';
			break;
		case 1:
			junk[i] = '\r';
			break;
		case 2:
			junk[i] = '.';
			break;
		case 3:
			junk[i] = (char)(x >> 24);
			break;
		default:
			junk[i] = "DATAMAILRCPTFROM:TO:<a@b>BDAT1 LASTEHLO xRSETQUIT"[(x >> 8) % 46];
		}
	}
	for (k = 0; k < 3; k++) {
		drv d;
		size_t sz = k == 0 ? 0 : k == 1 ? 1 : 17;

		drv_init(&d, &c);
		feed(&d, S("EHLO x\r\n"), 0);
		feed(&d, junk, sizeof junk, sz);
		if (!d.closed) {
			feed(&d, S("\r\n.\r\nBDAT 0 LAST\r\nRSET\r\nNOOP\r\n"), sz);
			assert_non_null(strstr(gw_buf_cstr(&d.out), "250 2.0.0 Ok\r\n"));
		}
		assert_wellformed(d.out.data, d.out.len);
		drv_free(&d);
	}
}

/* ---- look-ahead (gw_srv_config.lookahead) ---- */

/* Give the deferred answers, oldest first, then process what they release. */
static void answer_owed(drv *d);

static void drain_owed(drv *d)
{
	drain(d);
	while (d->nowed > 0)
		answer_owed(d);
}

static void answer_owed(drv *d)
{
	int codes[128];
	size_t n = d->nowed, i;

	memcpy(codes, d->owed, n * sizeof codes[0]);
	d->nowed = 0;
	assert_int_equal(gw_srv_owed(d->s), n);
	/* the answers the immediate driver gives (handle()) */
	static const struct {
		int code;
		const char *enh, *text;
	} ans[] = {{250, NULL, "Ok"},
		   {550, "5.7.1", "sender refused"},
		   {550, "5.1.1", "no such user"},
		   {450, "4.2.0", "try later"}};

	for (i = 0; i < n; i++)
		assert_int_equal(
		    gw_srv_reply(d->s, ans[codes[i]].code, ans[codes[i]].enh, ans[codes[i]].text), 0);
	assert_int_equal(gw_srv_owed(d->s), 0);
	drain(d);
}

static const char batch[] =
    "EHLO x\r\nMAIL FROM:<a@b> SMTPUTF8\r\nRCPT TO:<c\xc3\xa9@d>\r\n"
    "RCPT TO:<reject@d>\r\nRCPT TO:<e@d> NOTIFY=NEVER\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n";

static void test_lookahead_batch(void **state)
{
	gw_srv_config c = config(GW_SRV_SMTP);
	size_t k;

	(void)state;
	c.lookahead = 1;
	for (k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
		drv d;

		drv_init(&d, &c);
		d.defer = 1;
		assert_int_equal(feed(&d, batch, sizeof batch - 1, chunks[k]), sizeof batch - 1);
		/* Every RCPT is out before any answer, DATA is announced once; no reply has left yet. */
		assert_string_equal(gw_buf_cstr(&d.log),
				    "HELO x 1;MAIL <a@b> size=0 auth=-;RCPT <c\xc3\xa9@d> 0;"
				    "RCPT <reject@d> 1;RCPT <e@d> 2;AHEAD;");
		assert_string_equal(gw_buf_cstr(&d.out), GREET EHLO_REPLY);
		assert_int_equal(gw_srv_waiting(d.s), GW_SRV_WAIT_ANSWER);
		assert_int_equal(gw_srv_owed(d.s), 4);
		assert_int_equal(gw_srv_reply(d.s, 250, NULL, "sender ok"), 0);
		d.owed[0] = d.owed[1];
		d.owed[1] = d.owed[2];
		d.owed[2] = d.owed[3];
		d.nowed = 3;
		drain(&d);
		/* The MAIL's reply goes out alone; the RCPTs' wait for their answers. */
		assert_string_equal(gw_buf_cstr(&d.out), GREET EHLO_REPLY "250 2.1.0 sender ok\r\n");
		answer_owed(&d);
		assert_string_equal(gw_buf_cstr(&d.out), GREET EHLO_REPLY
				    "250 2.1.0 sender ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no such user\r\n"
				    "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
				    "250 2.0.0 queued\r\n221 2.0.0 Bye\r\n");
		assert_string_equal(gw_buf_cstr(&d.log),
				    "HELO x 1;MAIL <a@b> size=0 auth=-;RCPT <c\xc3\xa9@d> 0;"
				    "RCPT <reject@d> 1;RCPT <e@d> 2;AHEAD;DATA 0;"
				    "END 7 2 long=0/7 bare=0;CLOSE 5;");
		assert_string_equal(gw_buf_cstr(&d.body), "hello\r\n");
		drv_free(&d);
	}
	/* Without look-ahead the same batch waits on the MAIL's answer. */
	{
		drv d;

		c.lookahead = 0;
		drv_init(&d, &c);
		d.defer = 1;
		feed(&d, batch, sizeof batch - 1, 0);
		assert_string_equal(gw_buf_cstr(&d.log), "HELO x 1;MAIL <a@b> size=0 auth=-;");
		assert_int_equal(gw_srv_owed(d.s), 1);
		drain_owed(&d);
		assert_non_null(strstr(gw_buf_cstr(&d.out), "250 2.0.0 queued\r\n221 2.0.0 Bye\r\n"));
		drv_free(&d);
	}
}

/*
 * Whatever the engine would answer itself waits for the answers owed and is then handled as without
 * look-ahead: every conversation gives, byte for byte, the replies it gives with answers given at once.
 */
static void test_lookahead_same_replies(void **state)
{
	static const char *const convs[] = {
	    /* a refused MAIL: the RCPTs handed out behind it get 503, whatever the driver said */
	    "EHLO x\r\nMAIL FROM:<bad@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@d>\r\nDATA\r\nRSET\r\n",
	    /* a bad RCPT holds what follows until its turn */
	    "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:c@@d\r\nRCPT TO:<e@d>\r\nNOOP\r\n"
	    "RCPT TO:<f@d> SIZE=1\r\nDATA\r\n.\r\n",
	    /* the recipient limit (2) counts the RCPTs owed */
	    "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@d>\r\nRCPT "
	    "TO:<f@d>\r\nDATA\r\nx\r\n.\r\n",
	    /* refused recipients do not count towards it */
	    "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<reject@d>\r\nRCPT TO:<temp@d>\r\nRCPT TO:<e@d>\r\n"
	    "RCPT TO:<f@d>\r\nRCPT TO:<g@d>\r\nDATA\r\n.\r\n",
	    /* no valid recipients: DATA refused by the engine */
	    "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<reject@d>\r\nDATA\r\nMAIL FROM:<a@b>\r\nRSET\r\nQUIT\r\n",
	    /* an RCPT before any MAIL, an overlong line behind a MAIL, SMTPUTF8 only with its MAIL */
	    "EHLO x\r\nRCPT TO:<c@d>\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c\xc3\xa9@d>\r\nRCPT TO:<"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx@d>\r\n"
	    "RCPT TO:<c@d>\r\nDATA\r\n.\r\n",
	    /* too many errors end the session in the same place */
	    "EHLO x\r\nMAIL FROM:<bad@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<c@d>\r\nRCPT TO:<c@d>\r\nNOOP\r\n",
	    /* a transaction after another, and DATA pipelined behind RSET */
	    "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRSET\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
	    "RCPT TO:<e@d>\r\nDATA\r\n.\r\nQUIT\r\n",
	};
	gw_srv_config c = config(GW_SRV_SMTP);
	size_t i, k;

	(void)state;
	c.max_rcpts = 2;
	c.max_line = 64;
	c.max_errors = 4;
	for (i = 0; i < sizeof convs / sizeof convs[0]; i++) {
		drv a;

		c.lookahead = 0;
		drv_init(&a, &c);
		assert_int_equal(feed(&a, convs[i], strlen(convs[i]), 0), strlen(convs[i]));
		c.lookahead = 1;
		for (k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
			drv d;
			size_t off = 0, len = strlen(convs[i]);

			drv_init(&d, &c);
			d.defer = 1;
			/* answers come only when the engine waits for them, so as much as possible is ahead
			 */
			while (off < len) {
				size_t n = chunks[k] != 0 && len - off > chunks[k] ? chunks[k] : len - off;
				size_t took = gw_srv_feed(d.s, convs[i] + off, n);

				off += took;
				drain(&d);
				if (took == 0 || off == len)
					drain_owed(&d);
				if (d.closed)
					break;
			}
			drain_owed(&d);
			if (strcmp(gw_buf_cstr(&d.out), gw_buf_cstr(&a.out)) != 0)
				fail_msg("conversation %zu chunk %zu: got\n%s\nwant\n%s", i, chunks[k],
					 gw_buf_cstr(&d.out), gw_buf_cstr(&a.out));
			drv_free(&d);
		}
		drv_free(&a);
	}
}

/* A 421 for the oldest answer owed ends the session: the RCPTs behind it get nothing more. */
static void test_lookahead_421(void **state)
{
	gw_srv_config c = config(GW_SRV_SMTP);
	drv d;

	(void)state;
	c.lookahead = 1;
	drv_init(&d, &c);
	d.async = 1;
	feed(&d, S("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@d>\r\n"), 0);
	assert_int_equal(gw_srv_owed(d.s), 3);
	assert_int_equal(gw_srv_reply(d.s, 250, NULL, "Ok"), 0);
	assert_int_equal(gw_srv_reply(d.s, 451, "4.4.2", "lost"), 0);
	assert_int_equal(gw_srv_reply(d.s, 421, "4.4.2", "lost, closing"), 0);
	drain(&d);
	assert_true(d.closed);
	assert_string_equal(gw_buf_cstr(&d.out), GREET EHLO_REPLY "250 2.1.0 Ok\r\n451 4.4.2 lost\r\n"
								  "421 4.4.2 lost, closing\r\n");
	drv_free(&d);

	drv_init(&d, &c);
	d.async = 1;
	feed(&d, S("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@d>\r\nDATA\r\n"), 0);
	assert_int_equal(gw_srv_reply(d.s, 421, "4.4.2", "lost"), 0);
	drain(&d);
	assert_true(d.closed);
	assert_int_equal(gw_srv_owed(d.s), 0);
	assert_int_equal(gw_srv_reply(d.s, 250, NULL, NULL), -1);
	assert_int_equal(errno, EPROTO);
	assert_string_equal(gw_buf_cstr(&d.out), GREET EHLO_REPLY "421 4.4.2 lost\r\n");
	drv_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_smtp_transaction),
	    cmocka_unit_test(test_ehlo_capabilities),
	    cmocka_unit_test(test_helo_and_modes),
	    cmocka_unit_test(test_simple_commands),
	    cmocka_unit_test(test_out_of_order),
	    cmocka_unit_test(test_parameters_each),
	    cmocka_unit_test(test_lmtp_async_out_of_order),
	    cmocka_unit_test(test_lmtp_sequential_and_smtp_final),
	    cmocka_unit_test(test_driver_421_closes),
	    cmocka_unit_test(test_bdat),
	    cmocka_unit_test(test_dot_unstuffing_and_end),
	    cmocka_unit_test(test_bare_newlines),
	    cmocka_unit_test(test_command_line_bad_bytes),
	    cmocka_unit_test(test_long_command_line),
	    cmocka_unit_test(test_recipient_limit),
	    cmocka_unit_test(test_size_limit),
	    cmocka_unit_test(test_text_line_limit),
	    cmocka_unit_test(test_error_limit),
	    cmocka_unit_test(test_starttls),
	    cmocka_unit_test(test_input_and_output_bounds),
	    cmocka_unit_test(test_garbage_survives),
	    cmocka_unit_test(test_lookahead_batch),
	    cmocka_unit_test(test_lookahead_same_replies),
	    cmocka_unit_test(test_lookahead_421),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
