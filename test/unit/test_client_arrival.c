/*
 * test_client_arrival.c - how the client engine reports the arrival of each
 * reply (gw_client_set_reply_hook, gw_client_last_arrival), against the
 * scripted fake peer: a greeting dribbled one byte at a time, a greeting in
 * one write, a multi-line EHLO reply in a few writes, pipelined replies in
 * one write, and a hook cleared again.
 *
 * Timing bounds are loose on purpose (a loaded machine may merge two small
 * writes into one read); byte counts and stages are exact.
 *
 * Does not test: TLS records (the same accounting runs on decrypted reads).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakepeer.h"
#include "fp_test.h"
#include "gw/client.h"

#define SEEN_MAX 8

typedef struct seen {
	size_t n;
	gw_stage stage[SEEN_MAX];
	int code[SEEN_MAX];
	gw_reply_arrival a[SEEN_MAX];
} seen;

static void hook(void *ctx, gw_stage stage, const gw_reply *r, const gw_reply_arrival *a)
{
	seen *s = ctx;

	if (s->n >= SEEN_MAX)
		fail_msg("more than %d replies", SEEN_MAX);
	s->stage[s->n] = stage;
	s->code[s->n] = r->code;
	s->a[s->n] = *a;
	s->n++;
}

static fp_peer *start(const char *script)
{
	return fp_test_start(script, 5000);
}

static gw_client *open_client(fp_peer *p, seen *s)
{
	gw_client_opts o;
	gw_nexthop h;
	gw_reply r;
	gw_client *c;
	gw_status st;

	memset(&o, 0, sizeof(o));
	o.helo_name = "client.test";
	o.connect_timeout_ms = 5000;
	o.reply_timeout_ms = 5000;
	o.deadline_ms = 20000;
	c = gw_client_new(&o);
	assert_non_null(c);
	gw_client_set_reply_hook(c, s != NULL ? hook : NULL, s);
	memset(&h, 0, sizeof(h));
	h.kind = GW_HOP_INET;
	h.literal = 1;
	h.port = fp_port(p);
	snprintf(h.host, sizeof(h.host), "127.0.0.1");
	st = gw_client_open(c, &h, &r);
	if (st != GW_OK)
		fail_msg("open: %s (%s)", gw_status_str(st), gw_client_error(c));
	return c;
}

static void finish(gw_client **c, fp_peer **p)
{
	assert_int_equal(gw_client_quit(*c), GW_OK);
	gw_client_free(c);
	if (fp_wait(*p, 10000) != 0)
		fail_msg("fake peer: %s", fp_error(*p) ? fp_error(*p) : "scripts did not finish");
	fp_stop(p);
}

static void check(const seen *s, size_t i, gw_stage stage, int code, size_t bytes)
{
	if (i >= s->n)
		fail_msg("reply %zu: not seen (%zu replies)", i, s->n);
	if (s->stage[i] != stage || s->code[i] != code || s->a[i].bytes != bytes)
		fail_msg("reply %zu: got stage=%s code=%d bytes=%zu, want stage=%s code=%d bytes=%zu", i,
			 gw_stage_str(s->stage[i]), s->code[i], s->a[i].bytes, gw_stage_str(stage), code,
			 bytes);
}

/* "220 drip.test ok\r\n" one byte every 30 ms: many reads over a long spread. */
static void test_dribbled_greeting(void **state)
{
	const char *greeting = "220 drip.test ok\r\n";
	char script[2048];
	size_t i, n = 0;
	gw_reply_arrival last;
	fp_peer *p;
	gw_client *c;
	seen s;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (i = 0; greeting[i] != '\0'; i++) {
		char one[2] = {greeting[i], '\0'};
		const char *b = one[0] == '\r' ? "\\r" : one[0] == '\n' ? "\\n" : one;

		n += (size_t)snprintf(script + n, sizeof(script) - n, "raw %s\n%s", b,
				      greeting[i + 1] != '\0' ? "sleep 30\n" : "");
	}
	snprintf(script + n, sizeof(script) - n,
		 "expect EHLO\nsend 250 drip.test\nexpect QUIT\nsend 221 bye\n");
	p = start(script);
	c = open_client(p, &s);

	assert_int_equal(s.n, 2);
	check(&s, 0, GW_STAGE_GREETING, 220, strlen(greeting));
	/* 18 writes 30 ms apart: even a busy machine that merges some of them reads it many times */
	if (s.a[0].reads < 5 || s.a[0].reads > strlen(greeting) || s.a[0].spread_ms < 150)
		fail_msg("dribbled greeting: got reads=%u spread=%ums, want 5..%zu reads over >= 150ms",
			 s.a[0].reads, s.a[0].spread_ms, strlen(greeting));
	check(&s, 1, GW_STAGE_HELLO, 250, strlen("250 drip.test\r\n"));
	assert_int_equal(s.a[1].reads, 1);
	assert_int_equal(s.a[1].spread_ms, 0);
	gw_client_last_arrival(c, &last);
	assert_int_equal(last.reads, 1);
	assert_int_equal(last.bytes, strlen("250 drip.test\r\n"));
	finish(&c, &p);
	assert_int_equal(s.n, 3); /* QUIT's 221 too */
	check(&s, 2, GW_STAGE_QUIT, 221, strlen("221 bye\r\n"));
}

/* The same greeting in one write: one read, no spread. */
static void test_whole_greeting(void **state)
{
	fp_peer *p =
	    start("send 220 drip.test ok\nexpect EHLO\nsend 250 drip.test\nexpect QUIT\nsend 221 bye\n");
	gw_client *c;
	seen s;

	(void)state;
	memset(&s, 0, sizeof(s));
	c = open_client(p, &s);
	check(&s, 0, GW_STAGE_GREETING, 220, strlen("220 drip.test ok\r\n"));
	assert_int_equal(s.a[0].reads, 1);
	assert_int_equal(s.a[0].spread_ms, 0);
	finish(&c, &p);
}

/* A four-line EHLO reply in three writes 300 ms apart: a few reads, every byte counted. */
static void test_multiline_few_writes(void **state)
{
	fp_peer *p = start("send 220 big.test\n"
			   "expect EHLO\n"
			   "raw 250-big.test greets client.test\\r\\n250-PIPELINING\\r\\n\n"
			   "sleep 300\n"
			   "raw 250-SIZE 10240000\\r\\n\n"
			   "sleep 300\n"
			   "raw 250 8BITMIME\\r\\n\n"
			   "expect QUIT\nsend 221 bye\n");
	size_t bytes = strlen("250-big.test greets client.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
			      "250 8BITMIME\r\n");
	gw_reply_arrival last;
	gw_client *c;
	seen s;

	(void)state;
	memset(&s, 0, sizeof(s));
	c = open_client(p, &s);
	assert_int_equal(s.n, 2);
	check(&s, 1, GW_STAGE_HELLO, 250, bytes);
	if (s.a[1].reads < 2 || s.a[1].reads > 3)
		fail_msg("EHLO in three writes: got reads=%u, want 2..3", s.a[1].reads);
	gw_client_last_arrival(c, &last);
	assert_int_equal(last.reads, s.a[1].reads);
	assert_int_equal(last.bytes, bytes);
	assert_true(gw_client_caps(c) & GW_CAP_PIPELINING);
	finish(&c, &p);
}

/* Pipelined replies in one write: each came in one read. */
static void test_pipelined_one_write(void **state)
{
	fp_peer *p = start("send 220 pipe.test\n"
			   "expect EHLO\nsend 250-pipe.test\nsend 250 PIPELINING\n"
			   "expect MAIL\nexpect RCPT\nexpect RCPT\n"
			   "raw 250 ok\\r\\n250 2.1.5 ok\\r\\n550 5.1.1 unknown\\r\\n\n"
			   "expect QUIT\nsend 221 bye\n");
	const char *rcpts[2] = {"<a@pipe.test>", "<b@pipe.test>"};
	gw_reply mail, rr[2];
	gw_client *c;
	seen s;

	(void)state;
	memset(&s, 0, sizeof(s));
	c = open_client(p, &s);
	assert_int_equal(gw_client_envelope(c, "<s@client.test>", rcpts, 2, &mail, rr, 0, NULL), GW_OK);
	assert_int_equal(s.n, 5);
	check(&s, 2, GW_STAGE_MAIL, 250, strlen("250 ok\r\n"));
	check(&s, 3, GW_STAGE_RCPT, 250, strlen("250 2.1.5 ok\r\n"));
	check(&s, 4, GW_STAGE_RCPT, 550, strlen("550 5.1.1 unknown\r\n"));
	assert_int_equal(s.a[2].reads, 1);
	assert_int_equal(s.a[3].reads, 1);
	assert_int_equal(s.a[4].reads, 1);
	assert_int_equal(s.a[4].spread_ms, 0);
	finish(&c, &p);
}

/* No hook: nothing is called, the last arrival is still kept. */
static void test_no_hook(void **state)
{
	fp_peer *p = start("send 220 x.test\nexpect EHLO\nsend 250 x.test\nexpect QUIT\nsend 221 bye\n");
	gw_reply_arrival last;
	gw_client *c;

	(void)state;
	c = open_client(p, NULL);
	gw_client_last_arrival(c, &last);
	assert_int_equal(last.reads, 1);
	assert_int_equal(last.bytes, strlen("250 x.test\r\n"));
	finish(&c, &p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dribbled_greeting),
	    cmocka_unit_test(test_whole_greeting),
	    cmocka_unit_test(test_multiline_few_writes),
	    cmocka_unit_test(test_pipelined_one_write),
	    cmocka_unit_test(test_no_hook),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
