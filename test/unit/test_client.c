/*
 * test_client.c - the SMTP/LMTP client engine against the scripted fake peer:
 * connect failures, greetings, EHLO/HELO/LHLO, PIPELINING and lock-step
 * envelopes, STARTTLS policies, per-recipient LMTP replies, body encoding
 * (checked byte for byte, also when the body arrives one byte at a time), a
 * large envelope through a small unix socket buffer, a NUL byte refused,
 * timeouts and the whole-dialogue deadline. Every test checks what the client
 * returned and the exact bytes the peer received.
 *
 * Does not test: DNS names (loopback literals only), IPv6, bind_address, and
 * a real MTA (the end-to-end tests do).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakepeer.h"
#include "gw/client.h"
#include "gw/log.h"
#include "gw/time.h"

#define HELO "client.test"

/* ---- helpers -------------------------------------------------------------- */

static fp_peer *start_opts(const fp_opts *o)
{
	char err[256] = "";
	fp_peer *p = fp_start_opts(o, err, sizeof(err));

	if (p == NULL)
		fail_msg("fp_start: %s", err);
	return p;
}

static fp_peer *start(const char *script)
{
	fp_opts o;

	memset(&o, 0, sizeof(o));
	o.script = script;
	o.timeout_ms = 3000;
	return start_opts(&o);
}

static void hop_loopback(gw_nexthop *h, unsigned port)
{
	memset(h, 0, sizeof(*h));
	h->kind = GW_HOP_INET;
	h->literal = 1;
	h->port = port;
	snprintf(h->host, sizeof(h->host), "127.0.0.1");
}

static gw_client_opts opts_default(void)
{
	gw_client_opts o;

	memset(&o, 0, sizeof(o));
	o.helo_name = HELO;
	o.connect_timeout_ms = 2000;
	o.reply_timeout_ms = 2000;
	o.deadline_ms = 10000;
	return o;
}

static gw_client *new_client(const gw_client_opts *o)
{
	gw_client *c = gw_client_new(o);

	assert_non_null(c);
	return c;
}

/* Printable form of bytes for failure messages. */
static void show(char *dst, size_t size, const char *s, size_t len)
{
	size_t o = 0, i;

	for (i = 0; i < len && o + 5 < size; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '\r')
			o += (size_t)snprintf(dst + o, size - o, "\\r");
		else if (ch == '\n')
			o += (size_t)snprintf(dst + o, size - o, "\\n");
		else if (ch < 0x20 || ch > 0x7e || ch == '\\')
			o += (size_t)snprintf(dst + o, size - o, "\\x%02x", ch);
		else
			dst[o++] = (char)ch;
	}
	dst[o < size ? o : size - 1] = '\0';
}

/* The peer received exactly want (prefix: at least want at the start) on connection i. */
static void check_received_n(fp_peer *p, unsigned i, const char *want, size_t wlen, int prefix)
{
	size_t len = 0, k;
	const char *got = fp_received(p, i, &len);
	char a[400], b[400];

	if (got == NULL)
		fail_msg("connection %u: no such connection", i);
	for (k = 0; k < len && k < wlen && got[k] == want[k]; k++)
		;
	if (k == wlen && (prefix || len == wlen))
		return;
	show(a, sizeof(a), got + (k > 40 ? k - 40 : 0),
	     len - (k > 40 ? k - 40 : 0) > 120 ? 120 : len - (k > 40 ? k - 40 : 0));
	show(b, sizeof(b), want + (k > 40 ? k - 40 : 0),
	     wlen - (k > 40 ? k - 40 : 0) > 120 ? 120 : wlen - (k > 40 ? k - 40 : 0));
	fail_msg("connection %u: bytes differ at offset %zu (got %zu bytes, want %zu):\n got  \"%s\"\n want "
		 "\"%s\"",
		 i, k, len, wlen, a, b);
}

static void check_received(fp_peer *p, unsigned i, const char *want)
{
	check_received_n(p, i, want, strlen(want), 0);
}

/* Wait for the peer's scripts; clean: they must have run without a failure. */
static void peer_done(fp_peer *p, int clean)
{
	int rc = fp_wait(p, 6000);

	if (clean && rc != 0)
		fail_msg("fake peer: %s", fp_error(p) ? fp_error(p) : "scripts did not finish");
}

static void check_status(gw_status got, gw_status want, const gw_client *c)
{
	if (got != want)
		fail_msg("status got %s, want %s (stage %s, error \"%s\")", gw_status_str(got),
			 gw_status_str(want), gw_stage_str(gw_client_stage(c)), gw_client_error(c));
}

static void check_code(const gw_reply *r, int want, const char *what)
{
	if (r->code != want)
		fail_msg("%s: code got %d, want %d (text \"%s\")", what, r->code, want, r->text);
}

#define GREET   "send 220 fake.test ESMTP\n"
#define EHLO_OK "expect EHLO " HELO "\nsend 250 fake.test\n"
#define QUIT_OK "expect QUIT\nsend 221 bye\n"

/* ---- connecting and greetings --------------------------------------------- */

static void test_refused(void **state)
{
	gw_client_opts o = opts_default();
	gw_client *c = new_client(&o);
	gw_nexthop h;
	gw_reply r;

	(void)state;
	hop_loopback(&h, fp_closed_port());
	check_status(gw_client_open(c, &h, &r), GW_E_REFUSED, c);
	assert_int_equal(gw_client_stage(c), GW_STAGE_CONNECT);
	assert_int_equal(r.code, 0);
	assert_false(gw_client_is_open(c));
	assert_true(strlen(gw_client_error(c)) > 0);
	/* A unix socket nobody listens on. */
	memset(&h, 0, sizeof(h));
	h.kind = GW_HOP_UNIX;
	snprintf(h.path, sizeof(h.path), "/tmp/gw-test-client-nobody-%ld.sock", (long)getpid());
	check_status(gw_client_open(c, &h, &r), GW_E_REFUSED, c);
	assert_int_equal(gw_client_stage(c), GW_STAGE_CONNECT);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	assert_null(c);
}

/* A peer that accepts and never speaks: the deadline cuts the wait for the greeting. */
static void test_silent_peer_deadline(void **state)
{
	fp_peer *p = start("sleep 700\n");
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;
	int64_t t0, el;

	(void)state;
	o.reply_timeout_ms = 5000;
	o.deadline_ms = 300;
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	t0 = gw_now_ms();
	check_status(gw_client_open(c, &h, NULL), GW_E_TIMEOUT, c);
	el = gw_now_ms() - t0;
	if (el < 280 || el > 300 + 250)
		fail_msg("elapsed got %lld ms, want about 300", (long long)el);
	assert_int_equal(gw_client_stage(c), GW_STAGE_GREETING);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "");
	fp_stop(&p);
}

/* The same peer: this time the reply timeout (no deadline) cuts it. */
static void test_silent_peer_reply_timeout(void **state)
{
	fp_peer *p = start("sleep 700\n");
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;
	int64_t t0, el;

	(void)state;
	o.reply_timeout_ms = 300;
	o.deadline_ms = 0;
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	t0 = gw_now_ms();
	check_status(gw_client_open(c, &h, NULL), GW_E_TIMEOUT, c);
	el = gw_now_ms() - t0;
	if (el < 280 || el > 300 + 250)
		fail_msg("elapsed got %lld ms, want about 300", (long long)el);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "");
	fp_stop(&p);
}

static void test_slow_banner(void **state)
{
	fp_peer *p = start("sleep 200\n" GREET "expect EHLO " HELO
			   "\nsend 250-fake.test\nsend 250 SIZE 1000\n" QUIT_OK);
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;

	(void)state;
	o.reply_timeout_ms = 1000;
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	assert_true(gw_client_is_open(c));
	assert_int_equal(gw_client_caps(c), GW_CAP_SIZE);
	assert_int_equal(gw_client_size_limit(c), 1000);
	check_status(gw_client_quit(c), GW_OK, c);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "EHLO " HELO "\r\nQUIT\r\n");
	fp_stop(&p);
}

static void greeting_refused(const char *script, int code)
{
	fp_peer *p = start(script);
	gw_client_opts o = opts_default();
	gw_client *c = new_client(&o);
	gw_nexthop h;
	gw_reply r;

	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, &r), GW_E_REJECTED, c);
	check_code(&r, code, "greeting");
	assert_int_equal(gw_client_stage(c), GW_STAGE_GREETING);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "");
	fp_stop(&p);
}

static void test_greeting_421(void **state)
{
	(void)state;
	greeting_refused("send 421 4.3.2 busy, try later\n", 421);
}

static void test_greeting_554(void **state)
{
	(void)state;
	greeting_refused("send 554-5.7.1 no\nsend 554 5.7.1 go away\n", 554);
}

static void test_overlong_reply(void **state)
{
	fp_peer *p = start("raw 220 \nsendlong 1200\n");
	gw_client_opts o = opts_default();
	gw_client *c = new_client(&o);
	gw_nexthop h;

	(void)state;
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_E_BADREPLY, c);
	assert_int_equal(gw_client_stage(c), GW_STAGE_GREETING);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "");
	fp_stop(&p);
}

/* ---- hello ---------------------------------------------------------------- */

static void test_ehlo_refused_helo(void **state)
{
	fp_peer *p =
	    start(GREET "expect EHLO " HELO "\nsend 502 5.5.1 what?\nexpect HELO " HELO
			"\nsend 250 fake.test\nexpect MAIL FROM:<a@b.test>\nsend 250 2.1.0 ok\n" QUIT_OK);
	gw_client_opts o = opts_default();
	gw_client *c = new_client(&o);
	gw_nexthop h;
	gw_reply r;

	(void)state;
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, &r), GW_OK, c);
	assert_int_equal(gw_client_caps(c), 0);
	check_status(gw_client_mail(c, "<a@b.test>", &r), GW_OK, c);
	check_code(&r, 250, "MAIL");
	assert_string_equal(r.enh, "2.1.0");
	gw_client_quit(c);
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "EHLO " HELO "\r\nHELO " HELO "\r\nMAIL FROM:<a@b.test>\r\nQUIT\r\n");
	fp_stop(&p);
}

/* LMTP: LHLO refused is final, no HELO. */
static void test_lhlo_refused(void **state)
{
	fp_peer *p = start("send 220 fake LMTP\nexpect LHLO " HELO "\nsend 500 no\n");
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;
	gw_reply r;

	(void)state;
	o.proto = GW_PROTO_LMTP;
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, &r), GW_E_REJECTED, c);
	check_code(&r, 500, "LHLO");
	assert_int_equal(gw_client_stage(c), GW_STAGE_HELLO);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "LHLO " HELO "\r\n");
	fp_stop(&p);
}

/* ---- envelopes ------------------------------------------------------------ */

/* With PIPELINING the peer reads MAIL, both RCPTs and DATA before it answers anything:
 * a lock-step client would stall here and time out. */
static void test_pipelining(void **state)
{
	fp_peer *p = start(
	    GREET "expect EHLO " HELO "\nsend 250-fake.test\nsend 250-PIPELINING\nsend 250-SIZE 10240000\n"
		  "send 250-8BITMIME\nsend 250 ENHANCEDSTATUSCODES\n"
		  "expect MAIL FROM:<s@x.test>\nexpect RCPT TO:<a@y.test>\nexpect RCPT TO:<b@y.test>\n"
		  "expect DATA\n"
		  "raw 250 2.1.0 ok\\r\\n250 2.1.5 ok\\r\\n550 5.1.1 unknown\\r\\n354 go ahead\\r\\n\n"
		  "data\nsend 250 2.0.0 queued\n" QUIT_OK);
	gw_client_opts o = opts_default();
	gw_client *c = new_client(&o);
	const char *rcpts[] = {"<a@y.test>", "<b@y.test>"};
	gw_reply mail, rc[2], data, fin;
	gw_body body;
	gw_body_mem mem;
	gw_nexthop h;
	size_t got = 99;

	(void)state;
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	assert_int_equal(gw_client_caps(c),
			 GW_CAP_PIPELINING | GW_CAP_SIZE | GW_CAP_8BITMIME | GW_CAP_ENHANCEDSTATUSCODES);
	assert_int_equal(gw_client_size_limit(c), 10240000);
	check_status(gw_client_envelope(c, "<s@x.test>", rcpts, 2, &mail, rc, 1, &data), GW_OK, c);
	check_code(&mail, 250, "MAIL");
	check_code(&rc[0], 250, "RCPT 0");
	check_code(&rc[1], 550, "RCPT 1");
	assert_string_equal(rc[1].enh, "5.1.1");
	assert_string_equal(rc[1].text, "unknown");
	check_code(&data, 354, "DATA");
	gw_body_from_memory(&body, &mem, "hi\n", 3);
	check_status(gw_client_body(c, &body, &fin, 1, &got), GW_OK, c);
	assert_int_equal(got, 1);
	check_code(&fin, 250, "final");
	gw_client_quit(c);
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0,
		       "EHLO " HELO
		       "\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"
		       "hi\r\n.\r\nQUIT\r\n");
	fp_stop(&p);
}

/*
 * The public envelope call with 3,000 recipients through a 4 KB unix socket
 * buffer to a peer that answers each command before reading the next: every
 * reply lands in its slot; then a body with a NUL byte is refused
 * (GW_E_CONTENT), the connection closed before the end of the message.
 */
static void test_pipelining_small_buffer_nul(void **state)
{
	enum { N = 3000 };
	char path[96], listen[112], *script, *s;
	const char **rcpts = calloc(N, sizeof(*rcpts));
	char(*addrs)[24] = calloc(N, sizeof(*addrs));
	gw_reply *rc = calloc(N, sizeof(*rc)), mail, data;
	size_t k, got = 99, len = 0;
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_body_mem mem;
	gw_body body;
	gw_nexthop h;
	fp_opts po;
	fp_peer *p;

	(void)state;
	assert_non_null(rcpts);
	assert_non_null(addrs);
	assert_non_null(rc);
	script = s = malloc(N * 48 + 512);
	assert_non_null(script);
	s += sprintf(s, GREET "expect EHLO " HELO "\nsend 250-fake.test\\r\\n250 PIPELINING\n"
			      "expect MAIL\nsend 250 ok\n");
	for (k = 0; k < N; k++) {
		snprintf(addrs[k], sizeof(addrs[k]), "<r%zu@y.test>", k);
		rcpts[k] = addrs[k];
		s += sprintf(s, "expect RCPT TO:%s\nsend %s\n", addrs[k], k % 3 ? "250 ok" : "550 5.1.1 no");
	}
	sprintf(s, "expect DATA\nsend 354 go\n");
	snprintf(path, sizeof(path), "/tmp/gw-test-client-%ld.sock", (long)getpid());
	snprintf(listen, sizeof(listen), "unix:%s", path);
	memset(&po, 0, sizeof(po));
	po.script = script;
	po.listen = listen;
	po.timeout_ms = 3000;
	po.sockbuf = 4096;
	p = start_opts(&po);
	c = new_client(&o);
	memset(&h, 0, sizeof(h));
	h.kind = GW_HOP_UNIX;
	snprintf(h.path, sizeof(h.path), "%s", path);
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	check_status(gw_client_envelope(c, "<s@x.test>", rcpts, N, &mail, rc, 1, &data), GW_OK, c);
	check_code(&mail, 250, "MAIL");
	for (k = 0; k < N; k++)
		check_code(&rc[k], k % 3 ? 250 : 550, "RCPT");
	check_code(&data, 354, "DATA");
	gw_body_from_memory(&body, &mem, "a\nb\0c\n", 6);
	check_status(gw_client_body(c, &body, &data, 1, &got), GW_E_CONTENT, c);
	assert_int_equal(got, 0);
	assert_false(gw_client_is_open(c));
	assert_non_null(strstr(gw_client_error(c), "NUL byte at offset 3"));
	gw_client_free(&c);
	peer_done(p, 1);
	s = (char *)fp_received(p, 0, &len);
	assert_non_null(s);
	assert_null(memchr(s, '\0', len));
	assert_true(len > 7 && memcmp(s + len - 6, "DATA\r\n", 6) == 0);
	fp_stop(&p);
	unlink(path);
	free(script);
	free(rcpts);
	free(addrs);
	free(rc);
}

/* PIPELINING, no RCPT accepted, and the server still says 354: an empty message keeps the session in step. */
static void test_pipelining_354_without_rcpt(void **state)
{
	fp_peer *p =
	    start(GREET "expect EHLO\nsend 250-fake.test\nsend 250 PIPELINING\n"
			"expect MAIL\nexpect RCPT\nexpect DATA\n"
			"raw 250 ok\\r\\n550 no\\r\\n354 go\\r\\n\nexpect .\nsend 554 no valid recipients\n"
			"expect NOOP\nsend 250 ok\n" QUIT_OK);
	gw_client_opts o = opts_default();
	gw_client *c = new_client(&o);
	const char *rcpts[] = {"<a@y.test>"};
	gw_reply mail, rc[1], data, r;
	gw_nexthop h;

	(void)state;
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	check_status(gw_client_envelope(c, "<>", rcpts, 1, &mail, rc, 1, &data), GW_E_PROTO, c);
	check_code(&mail, 250, "MAIL");
	check_code(&rc[0], 550, "RCPT");
	check_code(&data, 0, "DATA");
	assert_true(gw_client_is_open(c));
	check_status(gw_client_noop(c, &r), GW_OK, c);
	check_code(&r, 250, "NOOP");
	gw_client_quit(c);
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(
	    p, 0, "EHLO " HELO "\r\nMAIL FROM:<>\r\nRCPT TO:<a@y.test>\r\nDATA\r\n.\r\nNOOP\r\nQUIT\r\n");
	fp_stop(&p);
}

/* Without PIPELINING: one command, one reply. */
static void test_lockstep(void **state)
{
	fp_peer *p =
	    start(GREET EHLO_OK
		  "expect MAIL FROM:<s@x.test> SIZE=10\nsend 250 ok\n"
		  "expect RCPT TO:<a@y.test>\nsend 250 ok\nexpect RCPT TO:<b@y.test>\nsend 451 later\n"
		  "expect DATA\nsend 354 go\n" QUIT_OK);
	gw_client_opts o = opts_default();
	gw_client *c = new_client(&o);
	const char *rcpts[] = {"<a@y.test>", "<b@y.test>"};
	gw_reply mail, rc[2], data;
	gw_nexthop h;

	(void)state;
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	assert_int_equal(gw_client_caps(c), 0);
	check_status(gw_client_envelope(c, "<s@x.test> SIZE=10", rcpts, 2, &mail, rc, 1, &data), GW_OK, c);
	check_code(&mail, 250, "MAIL");
	check_code(&rc[0], 250, "RCPT 0");
	check_code(&rc[1], 451, "RCPT 1");
	check_code(&data, 354, "DATA");
	gw_client_close(c);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	peer_done(p, 0);
	check_received(p, 0,
		       "EHLO " HELO
		       "\r\nMAIL FROM:<s@x.test> SIZE=10\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<b@y.test>\r\n"
		       "DATA\r\n");
	fp_stop(&p);
}

/* Lock-step and MAIL refused: no RCPT, no DATA, recipients get code 0. */
static void test_lockstep_mail_refused(void **state)
{
	fp_peer *p = start(GREET EHLO_OK "expect MAIL\nsend 550 5.7.1 sender refused\n" QUIT_OK);
	gw_client_opts o = opts_default();
	gw_client *c = new_client(&o);
	const char *rcpts[] = {"<a@y.test>", "<b@y.test>"};
	gw_reply mail, rc[2], data;
	gw_nexthop h;

	(void)state;
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	rc[0].code = rc[1].code = data.code = 999;
	check_status(gw_client_envelope(c, "<s@x.test>", rcpts, 2, &mail, rc, 1, &data), GW_OK, c);
	check_code(&mail, 550, "MAIL");
	check_code(&rc[0], 0, "RCPT 0");
	check_code(&rc[1], 0, "RCPT 1");
	check_code(&data, 0, "DATA");
	gw_client_quit(c);
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "EHLO " HELO "\r\nMAIL FROM:<s@x.test>\r\nQUIT\r\n");
	fp_stop(&p);
}

/* CR or LF in an argument: refused locally, nothing written, the session stays usable. */
static void test_crlf_argument(void **state)
{
	fp_peer *p = start(GREET "expect EHLO\nsend 250-fake.test\nsend 250 PIPELINING\n" QUIT_OK);
	gw_client_opts o = opts_default();
	gw_client *c = new_client(&o);
	const char *bad_rcpts[] = {"<a@y.test>", "<b@y.test>\r\nRSET"};
	const char *good_rcpts[] = {"<a@y.test>"};
	gw_reply r, rc[2];
	gw_nexthop h;

	(void)state;
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	check_status(gw_client_mail(c, "<a@b.test>\r\nRCPT TO:<x@y.test>", &r), GW_E_LOCAL, c);
	check_status(gw_client_rcpt(c, "<x@y.test>\n", &r), GW_E_LOCAL, c);
	check_status(gw_client_rcpt(c, "<x@y.test>\rDATA", &r), GW_E_LOCAL, c);
	check_status(gw_client_envelope(c, "<s@x.test>", bad_rcpts, 2, &r, rc, 1, NULL), GW_E_LOCAL, c);
	assert_int_equal(gw_client_stage(c), GW_STAGE_RCPT);
	check_status(gw_client_envelope(c, "<s@x.test>\n", good_rcpts, 1, &r, rc, 0, NULL), GW_E_LOCAL, c);
	assert_true(gw_client_is_open(c));
	gw_client_quit(c);
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "EHLO " HELO "\r\nQUIT\r\n");
	fp_stop(&p);
}

/* Debug log lines, checked for printable text only. */
static unsigned log_lines, log_bad;

static void log_sink(int level, const char *line, void *ctx)
{
	(void)ctx;
	log_lines++;
	if (level != GW_LOG_DEBUG)
		log_bad++;
	for (; *line != '\0'; line++)
		if ((unsigned char)*line < 0x20 || (unsigned char)*line > 0x7e)
			log_bad++;
}

static void test_rset_noop_quit(void **state)
{
	fp_peer *p =
	    start(GREET EHLO_OK "expect NOOP\nsend 250 2.0.0 ok\nexpect RSET\nsend 250 2.0.0 flushed\n"
				"expect QUIT\nsend 221 2.0.0 bye\n");
	gw_client_opts o = opts_default();
	gw_client *c = new_client(&o);
	gw_nexthop h;
	gw_reply r;

	(void)state;
	gw_log_open("test_client", GW_LOG_STDERR, GW_LOG_DEBUG);
	gw_log_set_sink(log_sink, NULL);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	check_status(gw_client_noop(c, &r), GW_OK, c);
	check_code(&r, 250, "NOOP");
	check_status(gw_client_rset(c, &r), GW_OK, c);
	check_code(&r, 250, "RSET");
	assert_string_equal(r.text, "flushed");
	check_status(gw_client_quit(c), GW_OK, c);
	assert_false(gw_client_is_open(c));
	check_status(gw_client_noop(c, &r), GW_E_LOCAL, c);
	gw_log_set_sink(NULL, NULL);
	gw_log_set_level(GW_LOG_INFO);
	if (log_lines == 0 || log_bad != 0)
		fail_msg("debug log: %u lines, %u bad (want some, none bad)", log_lines, log_bad);
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "EHLO " HELO "\r\nNOOP\r\nRSET\r\nQUIT\r\n");
	fp_stop(&p);
}

/* ---- TLS ------------------------------------------------------------------ */

#define EHLO_TLS "expect EHLO " HELO "\nsend 250-fake.test\nsend 250 STARTTLS\n"

static void test_tls_none(void **state)
{
	fp_peer *p = start(GREET EHLO_TLS QUIT_OK);
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;

	(void)state;
	o.tls = GW_TLS_NONE;
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	assert_int_equal(gw_client_caps(c), GW_CAP_STARTTLS);
	assert_false(gw_client_tls_active(c));
	gw_client_quit(c);
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "EHLO " HELO "\r\nQUIT\r\n");
	fp_stop(&p);
}

static void tls_ok(gw_tls_policy policy, const char *servername, int use_ca)
{
	fp_peer *p = start(GREET EHLO_TLS "expect STARTTLS\nsend 220 2.0.0 go ahead\nstarttls\n"
					  "expect EHLO " HELO
					  "\nsend 250-fake.test\nsend 250-PIPELINING\nsend 250 SIZE 5000\n"
					  "expect NOOP\nsend 250 ok\n" QUIT_OK);
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;
	gw_reply r;

	o.tls = policy;
	o.tls_servername = servername;
	o.tls_ca_file = use_ca ? fp_cert_file(p) : NULL;
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	assert_true(gw_client_tls_active(c));
	assert_int_equal(gw_client_caps(c), GW_CAP_PIPELINING | GW_CAP_SIZE);
	assert_int_equal(gw_client_size_limit(c), 5000);
	check_status(gw_client_noop(c, &r), GW_OK, c);
	check_code(&r, 250, "NOOP over TLS");
	check_status(gw_client_quit(c), GW_OK, c);
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "EHLO " HELO "\r\nSTARTTLS\r\nEHLO " HELO "\r\nNOOP\r\nQUIT\r\n");
	fp_stop(&p);
}

static void test_tls_may(void **state)
{
	(void)state;
	tls_ok(GW_TLS_MAY, NULL, 0);
}

static void test_tls_encrypt(void **state)
{
	(void)state;
	tls_ok(GW_TLS_ENCRYPT, NULL, 0);
}

static void test_tls_verify(void **state)
{
	(void)state;
	tls_ok(GW_TLS_VERIFY, "localhost", 1);
}

/* A reply injected after "220" in the same packet must not be read as the answer to the EHLO after TLS. */
static void test_tls_injection(void **state)
{
	fp_peer *p = start(GREET EHLO_TLS
			   "expect STARTTLS\nraw 220 go ahead\\r\\n250-injected\\r\\n250 PIPELINING\\r\\n\n"
			   "starttls\nexpect EHLO " HELO "\nsend 250-fake.test\nsend 250 8BITMIME\n" QUIT_OK);
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;

	(void)state;
	o.tls = GW_TLS_ENCRYPT;
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	assert_true(gw_client_tls_active(c));
	assert_int_equal(gw_client_caps(c), GW_CAP_8BITMIME);
	gw_client_quit(c);
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "EHLO " HELO "\r\nSTARTTLS\r\nEHLO " HELO "\r\nQUIT\r\n");
	fp_stop(&p);
}

/* MAY and a failed handshake: a second, plain-text connection without STARTTLS. */
static void test_tls_may_fallback(void **state)
{
	fp_peer *p =
	    start(GREET EHLO_TLS "expect STARTTLS\nsend 220 go ahead\nsend this is not TLS at all\nclose\n"
				 "---\n" GREET EHLO_TLS "expect MAIL FROM:<a@b.test>\nsend 250 ok\n" QUIT_OK);
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;
	gw_reply r;

	(void)state;
	o.tls = GW_TLS_MAY;
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	assert_false(gw_client_tls_active(c));
	assert_int_equal(gw_client_caps(c), GW_CAP_STARTTLS);
	check_status(gw_client_mail(c, "<a@b.test>", &r), GW_OK, c);
	check_code(&r, 250, "MAIL");
	gw_client_quit(c);
	gw_client_free(&c);
	peer_done(p, 1);
	assert_int_equal(fp_connections(p), 2);
	check_received_n(p, 0, "EHLO " HELO "\r\nSTARTTLS\r\n", strlen("EHLO " HELO "\r\nSTARTTLS\r\n"), 1);
	check_received(p, 1, "EHLO " HELO "\r\nMAIL FROM:<a@b.test>\r\nQUIT\r\n");
	fp_stop(&p);
}

static void test_tls_required_not_offered(void **state)
{
	fp_peer *p = start(GREET EHLO_OK);
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;
	gw_reply r;

	(void)state;
	o.tls = GW_TLS_ENCRYPT;
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_E_PROTO, c);
	assert_int_equal(gw_client_stage(c), GW_STAGE_STARTTLS);
	assert_false(gw_client_is_open(c));
	check_status(gw_client_mail(c, "<a@b.test>", &r), GW_E_LOCAL, c);
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "EHLO " HELO "\r\n");
	fp_stop(&p);
}

static void test_tls_starttls_refused(void **state)
{
	fp_peer *p = start(GREET EHLO_TLS "expect STARTTLS\nsend 454 4.7.0 TLS not available\n");
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;
	gw_reply r;

	(void)state;
	o.tls = GW_TLS_ENCRYPT;
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, &r), GW_E_REJECTED, c);
	check_code(&r, 454, "STARTTLS");
	assert_int_equal(gw_client_stage(c), GW_STAGE_STARTTLS);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "EHLO " HELO "\r\nSTARTTLS\r\n");
	fp_stop(&p);
}

static void test_tls_verify_wrong_name(void **state)
{
	fp_peer *p = start(GREET EHLO_TLS "expect STARTTLS\nsend 220 go ahead\nstarttls\n");
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;

	(void)state;
	o.tls = GW_TLS_VERIFY;
	o.tls_servername = "wrong.example";
	o.tls_ca_file = fp_cert_file(p);
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_E_TLS, c);
	assert_int_equal(gw_client_stage(c), GW_STAGE_STARTTLS);
	assert_false(gw_client_is_open(c));
	assert_non_null(strstr(gw_client_error(c), "verif"));
	gw_client_free(&c);
	peer_done(p, 1);
	check_received_n(p, 0, "EHLO " HELO "\r\nSTARTTLS\r\n", strlen("EHLO " HELO "\r\nSTARTTLS\r\n"), 1);
	fp_stop(&p);
}

/* VERIFY with the right name but without the peer's certificate as a trust anchor. */
static void test_tls_verify_untrusted(void **state)
{
	fp_peer *p = start(GREET EHLO_TLS "expect STARTTLS\nsend 220 go ahead\nstarttls\n");
	fp_peer *other = start("close\n"); /* never connected to: only its certificate is used */
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;

	(void)state;
	/* Another peer's self-signed certificate: a valid CA file that does not vouch for this peer. */
	o.tls = GW_TLS_VERIFY;
	o.tls_servername = "localhost";
	o.tls_ca_file = fp_cert_file(other);
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_E_TLS, c);
	assert_int_equal(gw_client_stage(c), GW_STAGE_STARTTLS);
	assert_false(gw_client_is_open(c));
	assert_non_null(strstr(gw_client_error(c), "verif"));
	gw_client_free(&c);
	peer_done(p, 1);
	check_received_n(p, 0, "EHLO " HELO "\r\nSTARTTLS\r\n", strlen("EHLO " HELO "\r\nSTARTTLS\r\n"), 1);
	fp_stop(&p);
	fp_stop(&other);
}

/* ---- DATA and the body ---------------------------------------------------- */

#define BIG_BODY (300 * 1024)

/* A body source that hands out at most step bytes per read. */
typedef struct trickle {
	const char *data;
	size_t len, off, step;
} trickle;

static ssize_t trickle_read(void *ctx, char *buf, size_t len)
{
	trickle *t = ctx;
	size_t n = t->len - t->off;

	if (n > t->step)
		n = t->step;
	if (n > len)
		n = len;
	memcpy(buf, t->data + t->off, n);
	t->off += n;
	return (ssize_t)n;
}

/* Reference encoding, byte by byte, written plainly to check the engine against. */
static char *reference_encode(const char *s, size_t n, size_t *len_r)
{
	char *o = malloc(n * 2 + 8);
	size_t k = 0, i;
	int bol = 1;

	assert_non_null(o);
	for (i = 0; i < n; i++) {
		if (s[i] == '\r' || s[i] == '\n') {
			o[k++] = '\r';
			o[k++] = '\n';
			bol = 1;
			if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
				i++;
			continue;
		}
		if (bol && s[i] == '.')
			o[k++] = '.';
		o[k++] = s[i];
		bol = 0;
	}
	if (!bol) {
		o[k++] = '\r';
		o[k++] = '\n';
	}
	memcpy(o + k, ".\r\n", 3);
	*len_r = k + 3;
	return o;
}

/* Send body through a fresh session, reading step bytes at a time; check the bytes on the wire. */
static void body_case(const char *bodytext, size_t blen, size_t step, const char *want, size_t wlen)
{
	fp_peer *p = start(GREET EHLO_OK "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\n"
					 "send 354 go\ndata\nsend 250 queued\n" QUIT_OK);
	gw_client_opts o = opts_default();
	gw_client *c = new_client(&o);
	static const char prefix[] =
	    "EHLO " HELO "\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<a@y.test>\r\nDATA\r\n";
	trickle t = {bodytext, blen, 0, step};
	gw_body body = {trickle_read, &t};
	gw_reply r;
	gw_nexthop h;
	size_t got = 0, total = strlen(prefix) + wlen + 6;
	char *all = malloc(total + 1);

	assert_non_null(all);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	check_status(gw_client_mail(c, "<s@x.test>", &r), GW_OK, c);
	check_status(gw_client_rcpt(c, "<a@y.test>", &r), GW_OK, c);
	check_status(gw_client_data(c, &r), GW_OK, c);
	check_code(&r, 354, "DATA");
	check_status(gw_client_body(c, &body, &r, 1, &got), GW_OK, c);
	assert_int_equal(got, 1);
	check_code(&r, 250, "final");
	gw_client_quit(c);
	gw_client_free(&c);
	peer_done(p, 1);
	memcpy(all, prefix, strlen(prefix));
	memcpy(all + strlen(prefix), want, wlen);
	memcpy(all + strlen(prefix) + wlen, "QUIT\r\n", 6);
	check_received_n(p, 0, all, total, 0);
	free(all);
	fp_stop(&p);
}

static void test_body_encoding(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"", ".\r\n"},
	    {"x", "x\r\n.\r\n"},
	    {".", "..\r\n.\r\n"},
	    {"a\r\n", "a\r\n.\r\n"},
	    {"a\n", "a\r\n.\r\n"},
	    {"a\r", "a\r\n.\r\n"},
	    {".\r\n", "..\r\n.\r\n"},
	    {"\r\n.\r\n", "\r\n..\r\n.\r\n"},
	    {".a\n.b\r..c\r\n", "..a\r\n..b\r\n...c\r\n.\r\n"},
	    {"a\n.b\r\n..c\rd\r\r\n.\n.\r\nend", "a\r\n..b\r\n...c\r\nd\r\n\r\n..\r\n..\r\nend\r\n.\r\n"},
	    {"x.y\n \r\n.\n\n\r\r", "x.y\r\n \r\n..\r\n\r\n\r\n\r\n.\r\n"},
	};
	static const size_t steps[] = {1, 2, 3, 65536};
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t rlen;
		char *ref = reference_encode(cases[i].in, strlen(cases[i].in), &rlen);

		/* The table and the reference encoder agree, so both are checked. */
		if (rlen != strlen(cases[i].want) || memcmp(ref, cases[i].want, rlen) != 0)
			fail_msg("case %zu: reference encoder disagrees with the table", i);
		free(ref);
		for (j = 0; j < sizeof(steps) / sizeof(steps[0]); j++)
			body_case(cases[i].in, strlen(cases[i].in), steps[j], cases[i].want,
				  strlen(cases[i].want));
	}
}

/* A large body, line ends of every kind and dots falling on chunk and buffer boundaries. */
static void test_body_large(void **state)
{
	char *in = malloc(BIG_BODY);
	static const char *const pieces[] = {".", "\r", "\n", "\r\n", "..", "abc", "x", "\n.", "\r."};
	size_t n = 0, rlen;
	unsigned seed = 12345;
	char *ref;

	(void)state;
	assert_non_null(in);
	while (n < BIG_BODY - 4) {
		const char *pc;

		seed = seed * 1103515245u + 12345u;
		pc = pieces[(seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
		memcpy(in + n, pc, strlen(pc));
		n += strlen(pc);
	}
	ref = reference_encode(in, n, &rlen);
	body_case(in, n, 65536, ref, rlen);
	body_case(in, n, 7777, ref, rlen);
	free(ref);
	free(in);
}

/* A body from a file descriptor (a pipe) and a body source that fails. */
static void test_body_fd_and_error(void **state)
{
	fp_peer *p =
	    start(GREET EHLO_OK "expect DATA\nsend 354 go\ndata\nsend 250 ok\nexpect DATA\nsend 354 go\n");
	gw_client_opts o = opts_default();
	gw_client *c = new_client(&o);
	gw_reply r;
	gw_body body;
	gw_nexthop h;
	size_t got = 0;
	int fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "line1\n.x\n", 9), 9);
	close(fds[1]);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	check_status(gw_client_data(c, &r), GW_OK, c);
	gw_body_from_fd(&body, &fds[0]);
	check_status(gw_client_body(c, &body, &r, 1, &got), GW_OK, c);
	assert_int_equal(got, 1);
	check_code(&r, 250, "final");
	close(fds[0]);
	/* A read error (closed fd): never send the dot, drop the session instead. */
	check_status(gw_client_data(c, &r), GW_OK, c);
	check_status(gw_client_body(c, &body, &r, 1, &got), GW_E_LOCAL, c);
	assert_int_equal(got, 0);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "EHLO " HELO "\r\nDATA\r\nline1\r\n..x\r\n.\r\nDATA\r\n");
	fp_stop(&p);
}

/* The peer reads one line of a large body and closes. */
static void test_lost_mid_data(void **state)
{
	fp_peer *p = start(GREET EHLO_OK "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\n"
					 "send 354 go\nexpect\nclose\n");
	gw_client_opts o = opts_default();
	gw_client *c = new_client(&o);
	size_t len = 4 * 1024 * 1024, got = 7;
	char *big = malloc(len);
	gw_body_mem mem;
	gw_body body;
	gw_reply r;
	gw_nexthop h;
	static const char want[] =
	    "EHLO " HELO
	    "\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<a@y.test>\r\nDATA\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

	(void)state;
	assert_non_null(big);
	memset(big, 'x', len);
	for (size_t i = 100; i < len; i += 100)
		big[i] = '\n';
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	check_status(gw_client_mail(c, "<s@x.test>", &r), GW_OK, c);
	check_status(gw_client_rcpt(c, "<a@y.test>", &r), GW_OK, c);
	check_status(gw_client_data(c, &r), GW_OK, c);
	gw_body_from_memory(&body, &mem, big, len);
	check_status(gw_client_body(c, &body, &r, 1, &got), GW_E_LOST, c);
	assert_int_equal(got, 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(gw_client_stage(c), GW_STAGE_BODY);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	peer_done(p, 1);
	check_received_n(p, 0, want, strlen(want), 1);
	fp_stop(&p);
	free(big);
}

/* The same over TLS: a closed TLS peer must not raise SIGPIPE either. */
static void test_lost_mid_data_tls(void **state)
{
	fp_peer *p = start(GREET EHLO_TLS "expect STARTTLS\nsend 220 go\nstarttls\nexpect EHLO\nsend 250 ok\n"
					  "expect DATA\nsend 354 go\nexpect\nreset\n");
	gw_client_opts o = opts_default();
	gw_client *c;
	size_t len = 4 * 1024 * 1024, got = 7;
	char *big = malloc(len);
	gw_body_mem mem;
	gw_body body;
	gw_reply r;
	gw_nexthop h;
	static const char want[] = "EHLO " HELO "\r\nSTARTTLS\r\nEHLO " HELO "\r\nDATA\r\nxxxxxxxxxx";
	gw_status s;

	(void)state;
	assert_non_null(big);
	memset(big, 'x', len);
	for (size_t i = 100; i < len; i += 100)
		big[i] = '\n';
	o.tls = GW_TLS_ENCRYPT;
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	assert_true(gw_client_tls_active(c));
	check_status(gw_client_data(c, &r), GW_OK, c);
	gw_body_from_memory(&body, &mem, big, len);
	s = gw_client_body(c, &body, &r, 1, &got);
	check_status(s, GW_E_LOST, c);
	assert_int_equal(got, 0);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	peer_done(p, 1);
	check_received_n(p, 0, want, strlen(want), 1);
	fp_stop(&p);
	free(big);
}

/* ---- LMTP ----------------------------------------------------------------- */

#define LMTP_ENVELOPE                                                                                        \
	"send 220 fake LMTP\nexpect LHLO " HELO                                                              \
	"\nsend 250-fake.test\nsend 250-PIPELINING\nsend 250 ENHANCEDSTATUSCODES\n"                          \
	"expect MAIL\nexpect RCPT\nexpect RCPT\nexpect RCPT\nexpect DATA\n"                                  \
	"raw 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\\r\\n\ndata\n"
#define LMTP_SENT                                                                                            \
	"LHLO " HELO                                                                                         \
	"\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<a@y.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"     \
	"DATA\r\nSubject: t\r\n\r\nhello\r\n.\r\n"

static gw_client *lmtp_session(fp_peer *p, gw_reply *rc)
{
	gw_client_opts o = opts_default();
	gw_client *c;
	const char *rcpts[] = {"<a@y.test>", "<b@y.test>", "<c@y.test>"};
	gw_reply mail, data;
	gw_nexthop h;

	o.proto = GW_PROTO_LMTP;
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	check_status(gw_client_envelope(c, "<s@x.test>", rcpts, 3, &mail, rc, 1, &data), GW_OK, c);
	check_code(&data, 354, "DATA");
	return c;
}

static void test_lmtp_per_recipient(void **state)
{
	fp_peer *p = start(LMTP_ENVELOPE "send 250 2.1.5 a delivered\nsend 452 4.2.2 b mailbox full\n"
					 "send 550 5.1.1 c unknown\n" QUIT_OK);
	gw_reply rc[3], fin[3];
	gw_body_mem mem;
	gw_body body;
	size_t got = 0;
	gw_client *c;

	(void)state;
	c = lmtp_session(p, rc);
	gw_body_from_memory(&body, &mem, "Subject: t\n\nhello\n", 18);
	check_status(gw_client_body(c, &body, fin, 3, &got), GW_OK, c);
	assert_int_equal(got, 3);
	check_code(&fin[0], 250, "rcpt a");
	check_code(&fin[1], 452, "rcpt b");
	check_code(&fin[2], 550, "rcpt c");
	assert_string_equal(fin[1].enh, "4.2.2");
	assert_string_equal(fin[2].text, "c unknown");
	check_status(gw_client_quit(c), GW_OK, c);
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, LMTP_SENT "QUIT\r\n");
	fp_stop(&p);
}

static void test_lmtp_lost_after_dot(void **state)
{
	fp_peer *p = start(LMTP_ENVELOPE "send 250 2.1.5 a delivered\nclose\n");
	gw_reply rc[3], fin[3];
	gw_body_mem mem;
	gw_body body;
	size_t got = 0;
	gw_client *c;

	(void)state;
	c = lmtp_session(p, rc);
	gw_body_from_memory(&body, &mem, "Subject: t\r\n\r\nhello", 19);
	check_status(gw_client_body(c, &body, fin, 3, &got), GW_E_LOST, c);
	assert_int_equal(got, 1);
	check_code(&fin[0], 250, "rcpt a");
	check_code(&fin[1], 0, "rcpt b");
	check_code(&fin[2], 0, "rcpt c");
	assert_int_equal(gw_client_stage(c), GW_STAGE_BODY);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, LMTP_SENT);
	fp_stop(&p);
}

/* LMTP over a unix socket. */
static void test_unix_socket(void **state)
{
	char path[108];
	char listen[120];
	fp_opts fo;
	fp_peer *p;
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;
	gw_reply r;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/gw-test-client-%ld.sock", (long)getpid());
	snprintf(listen, sizeof(listen), "unix:%s", path);
	memset(&fo, 0, sizeof(fo));
	fo.script = "send 220 fake LMTP\nexpect LHLO " HELO
		    "\nsend 250 fake.test\nexpect NOOP\nsend 250 ok\n" QUIT_OK;
	fo.listen = listen;
	fo.timeout_ms = 3000;
	p = start_opts(&fo);
	o.proto = GW_PROTO_LMTP;
	c = new_client(&o);
	memset(&h, 0, sizeof(h));
	h.kind = GW_HOP_UNIX;
	snprintf(h.path, sizeof(h.path), "%s", path);
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	check_status(gw_client_noop(c, &r), GW_OK, c);
	check_code(&r, 250, "NOOP");
	gw_client_quit(c);
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "LHLO " HELO "\r\nNOOP\r\nQUIT\r\n");
	fp_stop(&p);
	unlink(path);
}

/* ---- IPv6, source address, idle liveness ----------------------------------- */

static void test_ipv6_literal(void **state)
{
	fp_opts fo;
	fp_peer *p;
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;
	const char *err;

	(void)state;
	memset(&fo, 0, sizeof(fo));
	fo.script = "send 220 fake ESMTP\nexpect EHLO " HELO "\nsend 250 fake.test\n" QUIT_OK;
	fo.listen = "::1";
	fo.timeout_ms = 3000;
	p = start_opts(&fo);
	char spec[64];
	snprintf(spec, sizeof(spec), "[IPv6:::1]:%u", fp_port(p));
	assert_int_equal(gw_nexthop_parse(spec, strlen(spec), &h, &err), 0);
	c = new_client(&o);
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	gw_client_quit(c);
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "EHLO " HELO "\r\nQUIT\r\n");
	fp_stop(&p);
}

/* A source address that is ours works; one that is not is a local failure, not "refused". */
static void test_bind_address(void **state)
{
	fp_peer *p = start("send 220 fake ESMTP\nexpect EHLO " HELO "\nsend 250 fake.test\n" QUIT_OK);
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;
	gw_status st;

	(void)state;
	hop_loopback(&h, fp_port(p));
	o.bind_address = "127.0.0.1";
	c = new_client(&o);
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	gw_client_quit(c);
	gw_client_free(&c);
	peer_done(p, 1);
	fp_stop(&p);

	o.bind_address = "192.0.2.1"; /* TEST-NET-1: never one of this host's addresses */
	c = new_client(&o);
	hop_loopback(&h, fp_closed_port());
	st = gw_client_open(c, &h, NULL);
	if (st != GW_E_LOCAL)
		fail_msg("bind to a foreign address: got %s, want %s", gw_status_str(st),
			 gw_status_str(GW_E_LOCAL));
	assert_int_equal(gw_client_is_open(c), 0);
	gw_client_free(&c);
}

/* An idle session reads as usable until the peer closes it or speaks unasked. */
static void test_peer_closed(void **state)
{
	fp_peer *p = start("send 220 fake ESMTP\nexpect EHLO " HELO "\nsend 250 fake.test\nsleep 200\n"
			   "send 421 4.4.2 idle timeout\nclose\n");
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;
	int i;

	(void)state;
	hop_loopback(&h, fp_port(p));
	c = new_client(&o);
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	if (gw_client_peer_closed(c) != 0)
		fail_msg("fresh session: got closed, want usable");
	for (i = 0; i < 100 && !gw_client_peer_closed(c); i++)
		usleep(20000);
	if (i == 100)
		fail_msg("after the peer's 421 and close: got usable, want closed");
	gw_client_free(&c);
	assert_int_equal(gw_client_peer_closed(NULL), 1);
	fp_stop(&p);
}

/* ---- the deadline ---------------------------------------------------------- */

/* Each reply comes 200 ms late: fine for the reply timeout, but the 500 ms deadline runs out at MAIL. */
static void test_deadline_slow_peer(void **state)
{
	fp_peer *p = start("sleep 200\n" GREET
			   "expect EHLO\nsleep 200\nsend 250 ok\nexpect MAIL\nsleep 200\nsend 250 ok\n");
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;
	gw_reply r;
	int64_t t0, el;

	(void)state;
	o.reply_timeout_ms = 2000;
	o.deadline_ms = 500;
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	t0 = gw_now_ms();
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	check_status(gw_client_mail(c, "<a@b.test>", &r), GW_E_TIMEOUT, c);
	el = gw_now_ms() - t0;
	if (el < 480 || el > 500 + 250)
		fail_msg("elapsed got %lld ms, want about 500", (long long)el);
	assert_int_equal(gw_client_stage(c), GW_STAGE_MAIL);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	peer_done(p, 0);
	check_received(p, 0, "EHLO " HELO "\r\nMAIL FROM:<a@b.test>\r\n");
	fp_stop(&p);
}

/* gw_client_set_deadline renews the deadline for the next transaction. */
static void test_deadline_renewed(void **state)
{
	fp_peer *p = start(GREET EHLO_OK "expect NOOP\nsleep 300\nsend 250 ok\n" QUIT_OK);
	gw_client_opts o = opts_default();
	gw_client *c;
	gw_nexthop h;
	gw_reply r;

	(void)state;
	o.deadline_ms = 200;
	c = new_client(&o);
	hop_loopback(&h, fp_port(p));
	check_status(gw_client_open(c, &h, NULL), GW_OK, c);
	gw_client_set_deadline(c, 2000);
	check_status(gw_client_noop(c, &r), GW_OK, c);
	check_code(&r, 250, "NOOP");
	gw_client_set_deadline(c, 0);
	gw_client_quit(c);
	gw_client_free(&c);
	peer_done(p, 1);
	check_received(p, 0, "EHLO " HELO "\r\nNOOP\r\nQUIT\r\n");
	fp_stop(&p);
}

static void test_strings(void **state)
{
	(void)state;
	assert_string_equal(gw_status_str(GW_OK), "ok");
	assert_string_equal(gw_status_str(GW_E_TIMEOUT), "timeout");
	assert_string_equal(gw_stage_str(GW_STAGE_GREETING), "greeting");
	assert_string_equal(gw_stage_str(GW_STAGE_QUIT), "quit");
	assert_string_equal(gw_stage_str((gw_stage)99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_silent_peer_deadline),
	    cmocka_unit_test(test_silent_peer_reply_timeout),
	    cmocka_unit_test(test_slow_banner),
	    cmocka_unit_test(test_greeting_421),
	    cmocka_unit_test(test_greeting_554),
	    cmocka_unit_test(test_overlong_reply),
	    cmocka_unit_test(test_ehlo_refused_helo),
	    cmocka_unit_test(test_lhlo_refused),
	    cmocka_unit_test(test_pipelining),
	    cmocka_unit_test(test_pipelining_small_buffer_nul),
	    cmocka_unit_test(test_pipelining_354_without_rcpt),
	    cmocka_unit_test(test_lockstep),
	    cmocka_unit_test(test_lockstep_mail_refused),
	    cmocka_unit_test(test_crlf_argument),
	    cmocka_unit_test(test_rset_noop_quit),
	    cmocka_unit_test(test_tls_none),
	    cmocka_unit_test(test_tls_may),
	    cmocka_unit_test(test_tls_encrypt),
	    cmocka_unit_test(test_tls_verify),
	    cmocka_unit_test(test_tls_injection),
	    cmocka_unit_test(test_tls_may_fallback),
	    cmocka_unit_test(test_tls_required_not_offered),
	    cmocka_unit_test(test_tls_starttls_refused),
	    cmocka_unit_test(test_tls_verify_wrong_name),
	    cmocka_unit_test(test_tls_verify_untrusted),
	    cmocka_unit_test(test_body_encoding),
	    cmocka_unit_test(test_body_large),
	    cmocka_unit_test(test_body_fd_and_error),
	    cmocka_unit_test(test_lost_mid_data),
	    cmocka_unit_test(test_lost_mid_data_tls),
	    cmocka_unit_test(test_lmtp_per_recipient),
	    cmocka_unit_test(test_lmtp_lost_after_dot),
	    cmocka_unit_test(test_unix_socket),
	    cmocka_unit_test(test_ipv6_literal),
	    cmocka_unit_test(test_bind_address),
	    cmocka_unit_test(test_peer_closed),
	    cmocka_unit_test(test_deadline_slow_peer),
	    cmocka_unit_test(test_deadline_renewed),
	    cmocka_unit_test(test_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
