/*
 * test_client_buffered.c - gw_client_reply_buffered(): whether the next
 * reply is already in the client's input, so reading it waits for nothing.
 * Against the scripted fake peer: replies to pipelined NOOPs in one write,
 * read one at a time with gw_client_raw(); a multi-line reply cut in the
 * middle of the buffer; a line the parser will refuse; a closed client.
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

static fp_peer *start(const char *script)
{
	return fp_test_start(script, 5000);
}

static gw_client *open_client(fp_peer *p)
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
	assert_non_null(c = gw_client_new(&o));
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

/* Write data (may be NULL) and read one reply; check its code and first line. */
static void one(gw_client *c, const char *data, int code, const char *text)
{
	size_t got = 0;
	gw_reply r;

	assert_int_equal(gw_client_raw(c, GW_STAGE_NOOP, data, data != NULL ? strlen(data) : 0, &r, 1, &got),
			 GW_OK);
	assert_int_equal(got, 1);
	if (r.code != code || strncmp(r.text, text, strlen(text)) != 0)
		fail_msg("got %d %s, want %d %s", r.code, r.text, code, text);
}

static void test_buffered(void **state)
{
	fp_peer *p = start("send 220 buf.test\nexpect EHLO\nsend 250 buf.test\n"
			   "expect NOOP\nexpect NOOP\nexpect NOOP\n"
			   "raw 250-one\\r\\n250 one more\\r\\n250 two\\r\\n250-three\\r\\n\n"
			   "expect NOOP\nraw 250 three end\\r\\n250\\r\\n\n"
			   "expect NOOP\nraw 250 five\\r\\nxx\\r\\n\n");
	gw_client *c;

	(void)state;
	c = open_client(p);
	assert_int_equal(gw_client_reply_buffered(c), 0); /* the EHLO reply was all there was */
	one(c, "NOOP\r\nNOOP\r\nNOOP\r\n", 250, "one");
	assert_int_equal(gw_client_reply_buffered(c), 1); /* "250 two" is whole */
	one(c, NULL, 250, "two");
	assert_int_equal(gw_client_reply_buffered(c), 0); /* "250-three" needs its last line */
	one(c, "NOOP\r\n", 250, "three");
	assert_int_equal(gw_client_reply_buffered(c), 1); /* "250" alone is a last line */
	one(c, NULL, 250, "");
	assert_int_equal(gw_client_reply_buffered(c), 0);
	one(c, "NOOP\r\n", 250, "five");
	assert_int_equal(gw_client_reply_buffered(c), 1); /* "xx": the parser refuses it at once, no wait */
	gw_client_close(c);
	assert_int_equal(gw_client_reply_buffered(c), 0); /* not open */
	assert_int_equal(gw_client_reply_buffered(NULL), 0);
	gw_client_free(&c);
	fp_stop(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buffered),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
