/*
 * test_tls_ctx.c - the client TLS contexts (tls.h): the one that verifies
 * nothing is made once and shared, so a new probe session does not pay
 * SSL_CTX_new; verifying ones are made afresh (their CA store may change);
 * sessions keep working over the shared context after other clients that
 * held it were freed.
 *
 * Does not test: the handshake itself in depth (test_client.c, test_dane.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fakepeer.h"
#include "gw/client.h"
#include "tls.h"

#define HELO "client.test"

static void test_plain_shared(void **state)
{
	char err[256] = "";
	gw_tls_ctx *a, *b, *c;

	(void)state;
	a = gw_tls_ctx_new(0, NULL, err, sizeof(err));
	b = gw_tls_ctx_new(0, NULL, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	if (a != b)
		fail_msg("two contexts without verification: got %p and %p, want the same one", (void *)a,
			 (void *)b);
	gw_tls_ctx_free(&a);
	gw_tls_ctx_free(&b);
	assert_null(a);
	/* Every holder gone: the process still keeps it, the next call gets it again. */
	c = gw_tls_ctx_new(0, NULL, err, sizeof(err));
	assert_non_null(c);
	gw_tls_ctx_free(&c);
}

static void test_verify_not_shared(void **state)
{
	char err[256] = "";
	gw_tls_ctx *a, *b, *plain;

	(void)state;
	a = gw_tls_ctx_new(1, NULL, err, sizeof(err));
	b = gw_tls_ctx_new(1, NULL, err, sizeof(err));
	plain = gw_tls_ctx_new(0, NULL, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(plain);
	assert_true(a != b);
	assert_true(a != plain && b != plain);
	gw_tls_ctx_free(&a);
	gw_tls_ctx_free(&b);
	gw_tls_ctx_free(&plain);
}

/* One client with tls = may over STARTTLS against a fresh fake peer; freed at the end. */
static void one_session(void)
{
	char err[256] = "";
	fp_opts fo;
	fp_peer *p;
	gw_client_opts o;
	gw_client *c;
	gw_nexthop h;
	gw_status s;

	memset(&fo, 0, sizeof(fo));
	fo.script = "send 220 fake.test ESMTP\nexpect EHLO " HELO "\nsend 250-fake.test\nsend 250 STARTTLS\n"
		    "expect STARTTLS\nsend 220 go ahead\nstarttls\nexpect EHLO " HELO
		    "\nsend 250 fake.test\nexpect QUIT\nsend 221 bye\n";
	fo.timeout_ms = 3000;
	p = fp_start_opts(&fo, err, sizeof(err));
	if (p == NULL)
		fail_msg("fp_start: %s", err);
	memset(&o, 0, sizeof(o));
	o.helo_name = HELO;
	o.connect_timeout_ms = o.reply_timeout_ms = 2000;
	o.deadline_ms = 10000;
	o.tls = GW_TLS_MAY;
	c = gw_client_new(&o);
	assert_non_null(c);
	memset(&h, 0, sizeof(h));
	h.kind = GW_HOP_INET;
	h.literal = 1;
	h.port = fp_port(p);
	snprintf(h.host, sizeof(h.host), "127.0.0.1");
	s = gw_client_open(c, &h, NULL);
	if (s != GW_OK)
		fail_msg("open got %s, want ok (%s)", gw_status_str(s), gw_client_error(c));
	assert_true(gw_client_tls_active(c));
	assert_int_equal(gw_client_quit(c), GW_OK);
	gw_client_free(&c);
	if (fp_wait(p, 6000) != 0)
		fail_msg("fake peer: %s", fp_error(p) ? fp_error(p) : "script did not finish");
	fp_stop(&p);
}

static void test_sessions_after_free(void **state)
{
	(void)state;
	/* The second and third sessions use the context the freed first client also held. */
	one_session();
	one_session();
	one_session();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_shared),
	    cmocka_unit_test(test_verify_not_shared),
	    cmocka_unit_test(test_sessions_after_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
