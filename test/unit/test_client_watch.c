/*
 * test_client_watch.c - gw_client_set_watch(): while the client engine waits
 * for a slow reply, a hang-up on the watched descriptor (the other leg of a
 * relay, a socketpair here) ends the wait at once with GW_E_CANCELLED and
 * closes the connection; bytes arriving on it wake nothing and stay unread;
 * the same over TLS; without a watch the wait is the reply's.
 *
 * The fake peer holds each reply for 3 s against a reply timeout of 5 s: a
 * cancelled wait must come back well before (bound: 2 s, loose on purpose).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakepeer.h"
#include "fp_test.h"
#include "gw/client.h"
#include "gw/time.h"

#define GREET_EHLO "send 220 fake.test ESMTP\nexpect EHLO client.test\nsend 250 fake.test\n"
#define GREET_EHLO_TLS                                                                                       \
	"send 220 fake.test ESMTP\nexpect EHLO client.test\nsend 250-fake.test\\r\\n250 STARTTLS\n"          \
	"expect STARTTLS\nsend 220 go ahead\nstarttls\nexpect EHLO client.test\nsend 250 fake.test\n"

static fp_peer *start(const char *script)
{
	return fp_test_start(script, 8000);
}

static gw_client *open_client(fp_peer *p, gw_tls_policy tls, int watch)
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
	o.tls = tls;
	c = gw_client_new(&o);
	assert_non_null(c);
	gw_client_set_watch(c, watch);
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

static void peer_stop(fp_peer **p)
{
	fp_stop(p);
}

/* The watched side hangs up: MAIL's wait ends at once, the connection is closed without QUIT. */
static void cancelled(gw_tls_policy tls, const char *script)
{
	fp_peer *p = start(script);
	gw_client *c;
	gw_reply r;
	int sv[2];
	int64_t t0;
	gw_status st;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = open_client(p, tls, sv[0]);
	if (tls != GW_TLS_NONE)
		assert_int_equal(gw_client_tls_active(c), 1);
	close(sv[1]); /* the tenant is gone */
	t0 = gw_now_ms();
	st = gw_client_mail(c, "<s@t.test>", &r);
	if (st != GW_E_CANCELLED)
		fail_msg("MAIL: got %s (%s), want cancelled", gw_status_str(st), gw_client_error(c));
	if (gw_now_ms() - t0 > 2000)
		fail_msg("cancelled after %lldms, want at once", (long long)(gw_now_ms() - t0));
	assert_string_equal(gw_status_str(st), "cancelled");
	assert_int_equal(gw_client_is_open(c), 0);
	assert_int_equal(gw_client_stage(c), GW_STAGE_MAIL);
	gw_client_free(&c);
	close(sv[0]);
	peer_stop(&p);
}

static void test_cancelled_plain(void **state)
{
	(void)state;
	cancelled(GW_TLS_NONE, GREET_EHLO "expect MAIL FROM:<s@t.test>\nsleep 3000\nsend 250 late\n");
}

static void test_cancelled_tls(void **state)
{
	(void)state;
	cancelled(GW_TLS_MAY, GREET_EHLO_TLS "expect MAIL FROM:<s@t.test>\nsleep 3000\nsend 250 late\n");
}

/* Bytes on the watched descriptor are no hang-up: the reply is waited for, the bytes stay there. */
static void test_data_is_not_hangup(void **state)
{
	fp_peer *p = start(GREET_EHLO "expect MAIL FROM:<s@t.test>\nsleep 500\nsend 250 2.1.0 ok\n"
				      "expect QUIT\nsend 221 bye\n");
	gw_client *c;
	gw_reply r;
	char b[16];
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = open_client(p, GW_TLS_NONE, sv[0]);
	assert_int_equal(write(sv[1], "RCPT TO:<x>\r\n", 13), 13); /* a tenant that pipelines and waits */
	assert_int_equal(gw_client_mail(c, "<s@t.test>", &r), GW_OK);
	assert_int_equal(r.code, 250);
	assert_int_equal(recv(sv[0], b, sizeof(b), MSG_DONTWAIT), 13); /* still there, unread */
	assert_int_equal(gw_client_quit(c), GW_OK);
	gw_client_free(&c);
	if (fp_wait(p, 10000) != 0)
		fail_msg("fake peer: %s", fp_error(p) ? fp_error(p) : "script did not finish");
	peer_stop(&p);
	close(sv[0]);
	close(sv[1]);
}

/* No watch (-1): a closed socketpair elsewhere changes nothing; the slow reply is read. */
static void test_no_watch(void **state)
{
	fp_peer *p = start(GREET_EHLO "expect MAIL FROM:<s@t.test>\nsleep 500\nsend 250 2.1.0 ok\n"
				      "expect QUIT\nsend 221 bye\n");
	gw_client *c;
	gw_reply r;

	(void)state;
	c = open_client(p, GW_TLS_NONE, -1);
	assert_int_equal(gw_client_mail(c, "<s@t.test>", &r), GW_OK);
	assert_int_equal(r.code, 250);
	assert_int_equal(gw_client_quit(c), GW_OK);
	gw_client_free(&c);
	if (fp_wait(p, 10000) != 0)
		fail_msg("fake peer: %s", fp_error(p) ? fp_error(p) : "script did not finish");
	peer_stop(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cancelled_plain),
	    cmocka_unit_test(test_cancelled_tls),
	    cmocka_unit_test(test_data_is_not_hangup),
	    cmocka_unit_test(test_no_watch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
