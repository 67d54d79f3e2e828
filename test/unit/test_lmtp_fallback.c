/*
 * test_lmtp_fallback.c - delivery across an ordered list of fake gateways
 * (gw_lmtp_send_fallback, gw_lmtp_send_route): only temporarily failed and
 * (by default) uncertain recipients go on, a 2xx or 5xx recipient is never
 * offered again, every recipient gets exactly one final result, and the
 * peers' records show which gateway saw which recipient.
 *
 * Does not test: MX lookups (literal next hops only); real servers.
 */
#include "lmtp_test.h"

#define LHLO_PIPE                                                                                            \
	"expect LHLO " HELO "\nsend 250-fake.test\\r\\n250-PIPELINING\\r\\n250 ENHANCEDSTATUSCODES\n"
#define BODY      "Subject: fallback\n\n.dot\nbody\n"
#define BODY_WIRE "Subject: fallback\r\n\r\n..dot\r\nbody\r\n.\r\n"

typedef struct fixture {
	gw_lmtp_rcpt rcpts[4];
	gw_lmtp_txn txn;
	gw_lmtp_body body;
	gw_lmtp_result res[4];
	unsigned calls[4];
} fixture;

static void on_result(void *ctx, size_t i, const gw_lmtp_rcpt *r, const gw_lmtp_result *res)
{
	fixture *f = ctx;

	assert_true(i < 4);
	assert_ptr_equal(r, &f->rcpts[i]);
	/* Only final results are reported. */
	assert_true(res->state != GW_LMTP_PENDING);
	f->calls[i]++;
}

static void txn_init(fixture *f, const char *const *addrs)
{
	size_t n = 0;

	memset(f, 0, sizeof(*f));
	while (addrs[n] != NULL) {
		f->rcpts[n].addr = addrs[n];
		n++;
	}
	gw_lmtp_body_memory(&f->body, BODY, strlen(BODY));
	f->txn.sender = "s@example.com";
	f->txn.rcpts = f->rcpts;
	f->txn.nrcpts = n;
	f->txn.body = &f->body;
	f->txn.on_result = on_result;
	f->txn.ctx = f;
}

static void check_calls(const fixture *f)
{
	size_t i;

	for (i = 0; i < f->txn.nrcpts; i++)
		if (f->calls[i] != 1)
			fail_msg("recipient %zu: callback called %u times, want 1", i, f->calls[i]);
}

static void check_gateway(const gw_lmtp_result *r, unsigned port)
{
	char want[64];

	snprintf(want, sizeof(want), "[127.0.0.1]:%u", port);
	assert_string_equal(r->gateway, want);
}

static const char *const abc[] = {"a@example.com", "b@example.com", "c@example.com", NULL};
static const char *const ab[] = {"a@example.com", "b@example.com", NULL};

/*
 * The first gateway refuses connections, the second temp-fails B only, the
 * third accepts: A and C through the second, B through the third, each
 * accepted exactly once.
 */
static void test_three_gateways(void **state)
{
	fp_peer *g2 = start(GREET LHLO_PIPE
			    "expect MAIL FROM:<s@example.com>\nexpect RCPT TO:<a@example.com>\n"
			    "expect RCPT TO:<b@example.com>\nexpect RCPT TO:<c@example.com>\nexpect DATA\n"
			    "send 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\ndata\n"
			    "send 250 2.0.0 A accepted\\r\\n451 4.4.1 B cannot relay now\\r\\n"
			    "250 2.0.0 C accepted\n" QUIT_OK);
	fp_peer *g3 =
	    start(GREET LHLO_PIPE "expect MAIL FROM:<s@example.com>\nexpect RCPT TO:<b@example.com>\n"
				  "expect DATA\nsend 250 ok\\r\\n250 ok\\r\\n354 go\ndata\n"
				  "send 250 2.0.0 B accepted\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	gw_nexthop hops[3];
	unsigned closed = fp_closed_port(), g2_accepts_a, g3_accepts_b;
	fixture f;

	(void)state;
	hop_port(&hops[0], closed);
	hop_port(&hops[1], fp_port(g2));
	hop_port(&hops[2], fp_port(g3));
	txn_init(&f, abc);
	assert_int_equal(gw_lmtp_send_fallback(l, hops, 3, &f.txn, f.res), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[1], "b", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[2], "c", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	assert_string_equal(f.res[0].text, "A accepted");
	assert_string_equal(f.res[1].text, "B accepted");
	check_gateway(&f.res[0], fp_port(g2));
	check_gateway(&f.res[1], fp_port(g3));
	check_gateway(&f.res[2], fp_port(g2));
	assert_int_equal(f.res[0].attempts, 2);
	assert_int_equal(f.res[1].attempts, 3);
	assert_int_equal(f.res[2].attempts, 2);
	check_calls(&f);
	gw_lmtp_free(&l);
	peer_done(g2);
	peer_done(g3);
	/* The records: each gateway saw exactly the recipients it was meant to, and one body each. */
	check_received(g2, 0,
		       "LHLO " HELO "\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nRCPT "
		       "TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n" BODY_WIRE "QUIT\r\n");
	check_received(g3, 0,
		       "LHLO " HELO
		       "\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n" BODY_WIRE
		       "QUIT\r\n");
	assert_int_equal(fp_connections(g2), 1);
	assert_int_equal(fp_connections(g3), 1);
	/* Accepted exactly once: A and C only at g2 (whose script accepted them), B only at g3. */
	g2_accepts_a = count_in(g2, 0, "RCPT TO:<a@") + count_in(g2, 0, "RCPT TO:<c@");
	g3_accepts_b = count_in(g3, 0, "RCPT TO:<b@");
	assert_int_equal(g2_accepts_a, 2);
	assert_int_equal(g3_accepts_b, 1);
	assert_int_equal(count_in(g3, 0, "RCPT TO:<a@") + count_in(g3, 0, "RCPT TO:<c@"), 0);
	fp_stop(&g2);
	fp_stop(&g3);
}

#define LOST_AFTER_A                                                                                         \
	GREET LHLO_PIPE                                                                                      \
	    "expect MAIL\nexpect RCPT TO:<a@example.com>\nexpect RCPT TO:<b@example.com>\nexpect DATA\n"     \
	    "send 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\ndata\nsend 250 2.0.0 A\nclose\n"

/* Uncertain recipients go on to the next gateway by default. */
static void test_uncertain_retried(void **state)
{
	fp_peer *g1 = start(LOST_AFTER_A);
	fp_peer *g2 =
	    start(GREET LHLO_PIPE "expect MAIL\nexpect RCPT TO:<b@example.com>\nexpect DATA\n"
				  "send 250 ok\\r\\n250 ok\\r\\n354 go\ndata\nsend 250 2.0.0 B\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	gw_nexthop hops[2];
	fixture f;

	(void)state;
	hop_port(&hops[0], fp_port(g1));
	hop_port(&hops[1], fp_port(g2));
	txn_init(&f, ab);
	assert_int_equal(gw_lmtp_send_fallback(l, hops, 2, &f.txn, f.res), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[1], "b", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_gateway(&f.res[0], fp_port(g1));
	check_gateway(&f.res[1], fp_port(g2));
	check_calls(&f);
	gw_lmtp_free(&l);
	peer_done(g1);
	peer_done(g2);
	assert_int_equal(count_in(g2, 0, "RCPT TO:<a@"), 0);
	fp_stop(&g1);
	fp_stop(&g2);
}

/* With uncertain_final they stay uncertain, and the next gateway is not contacted. */
static void test_uncertain_final(void **state)
{
	fp_peer *g1 = start(LOST_AFTER_A);
	fp_peer *g2 = start(GREET);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l;
	gw_nexthop hops[2];
	fixture f;

	(void)state;
	o.uncertain_final = 1;
	l = new_lmtp(&o);
	hop_port(&hops[0], fp_port(g1));
	hop_port(&hops[1], fp_port(g2));
	txn_init(&f, ab);
	assert_int_equal(gw_lmtp_send_fallback(l, hops, 2, &f.txn, f.res), GW_E_LOST);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[1], "b", GW_LMTP_UNCERTAIN, GW_LMTP_STAGE_TRANSPORT, 0, "4.4.2");
	check_calls(&f);
	gw_lmtp_free(&l);
	peer_done(g1);
	assert_int_equal(fp_connections(g2), 0);
	fp_stop(&g1);
	fp_stop(&g2);
}

/* 5xx is final: only the 4xx recipient goes on, and stays temporary when the last gateway 4xx's it too. */
static void test_permanent_not_retried(void **state)
{
	fp_peer *g1 =
	    start(GREET LHLO_PIPE "expect MAIL\nexpect RCPT\nexpect RCPT\nexpect DATA\n"
				  "send 250 ok\\r\\n550 5.1.1 A unknown\\r\\n451 4.3.0 B later\\r\\n"
				  "503 5.5.1 no recipients\n" QUIT_OK);
	fp_peer *g2 =
	    start(GREET LHLO_PIPE "expect MAIL\nexpect RCPT TO:<b@example.com>\nexpect DATA\n"
				  "send 250 ok\\r\\n452 4.2.2 B full\\r\\n503 5.5.1 no recipients\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	gw_nexthop hops[2];
	fixture f;

	(void)state;
	hop_port(&hops[0], fp_port(g1));
	hop_port(&hops[1], fp_port(g2));
	txn_init(&f, ab);
	assert_int_equal(gw_lmtp_send_fallback(l, hops, 2, &f.txn, f.res), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_RCPT, 550, "5.1.1");
	check_result(&f.res[1], "b", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_RCPT, 452, "4.2.2");
	check_gateway(&f.res[0], fp_port(g1));
	check_gateway(&f.res[1], fp_port(g2));
	assert_int_equal(f.res[0].attempts, 1);
	assert_int_equal(f.res[1].attempts, 2);
	check_calls(&f);
	gw_lmtp_free(&l);
	peer_done(g1);
	peer_done(g2);
	fp_stop(&g1);
	fp_stop(&g2);
}

static ssize_t once_read(void *ctx, char *buf, size_t len)
{
	int *done = ctx;

	if (*done || len < 4)
		return 0;
	*done = 1;
	memcpy(buf, "one\n", 4);
	return 4;
}

/* A body that cannot be rewound: fine while unread, the end of the fallback once read. */
static void test_body_not_rewindable(void **state)
{
	static const char *const a[] = {"a@example.com", NULL};
	fp_peer *g2 = start(GREET LHLO_PIPE
			    "expect MAIL\nexpect RCPT\nexpect DATA\n"
			    "send 250 ok\\r\\n250 ok\\r\\n354 go\ndata\nsend 451 4.3.0 later\n" QUIT_OK);
	fp_peer *g3 = start(GREET);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	gw_nexthop hops[3];
	int done = 0;
	fixture f;

	(void)state;
	hop_port(&hops[0], fp_closed_port());
	hop_port(&hops[1], fp_port(g2));
	hop_port(&hops[2], fp_port(g3));
	txn_init(&f, a);
	gw_lmtp_body_callback(&f.body, once_read, NULL, &done, -1);
	assert_int_equal(gw_lmtp_send_fallback(l, hops, 3, &f.txn, f.res), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_DATA, 451, "4.3.0");
	check_gateway(&f.res[0], fp_port(g2));
	check_calls(&f);
	gw_lmtp_free(&l);
	peer_done(g2);
	assert_int_equal(fp_connections(g3), 0);
	check_received(g2, 0,
		       "LHLO " HELO
		       "\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\none\r\n.\r\n"
		       "QUIT\r\n");
	fp_stop(&g2);
	fp_stop(&g3);
}

/* A route from the route table: its next hops in order, its protocol. */
static void test_route(void **state)
{
	fp_peer *g2 =
	    start("send 220 fake ESMTP\nexpect EHLO " HELO "\nsend 250-fake\\r\\n250 PIPELINING\n"
		  "expect MAIL\nexpect RCPT\nexpect RCPT\nexpect DATA\n"
		  "send 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\ndata\nsend 250 2.0.0 queued\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	char text[256], err[256];
	const gw_route *r;
	gw_routes *rt;
	fixture f;

	(void)state;
	snprintf(text, sizeof(text),
		 "example.com smtp:[127.0.0.1]:%u, [127.0.0.1]:%u\nexample.org error:nope\n",
		 fp_closed_port(), fp_port(g2));
	rt = gw_routes_parse(text, strlen(text), "test", err, sizeof(err));
	if (rt == NULL)
		fail_msg("routes: %s", err);
	r = gw_routes_lookup(rt, "example.com");
	assert_non_null(r);
	txn_init(&f, ab);
	assert_int_equal(gw_lmtp_send_route(l, r, 0, &f.txn, f.res), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[1], "b", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_gateway(&f.res[1], fp_port(g2));
	assert_int_equal(f.res[1].attempts, 2);
	check_calls(&f);
	/* A route that is not smtp/lmtp leaves everybody temporarily failed. */
	r = gw_routes_lookup(rt, "example.org");
	assert_non_null(r);
	txn_init(&f, ab);
	assert_int_equal(gw_lmtp_send_route(l, r, 0, &f.txn, f.res), GW_E_LOCAL);
	check_result(&f.res[0], "a", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_CONNECT, 0, NULL);
	check_calls(&f);
	gw_lmtp_free(&l);
	gw_routes_free(&rt);
	peer_done(g2);
	fp_stop(&g2);
}

/* No gateway at all: every recipient temporarily failed, none dropped. */
static void test_no_gateway(void **state)
{
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, abc);
	assert_int_equal(gw_lmtp_send_fallback(l, NULL, 0, &f.txn, f.res), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_CONNECT, 0, "4.4.0");
	check_result(&f.res[2], "c", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_CONNECT, 0, "4.4.0");
	assert_int_equal(f.res[2].local, 1);
	check_calls(&f);
	gw_lmtp_free(&l);
}

/* Every gateway down: every recipient TEMPFAIL from the last one. */
static void test_all_down(void **state)
{
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	gw_nexthop hops[2];
	fixture f;

	(void)state;
	hop_port(&hops[0], fp_closed_port());
	hop_port(&hops[1], fp_closed_port());
	txn_init(&f, ab);
	assert_int_equal(gw_lmtp_send_fallback(l, hops, 2, &f.txn, f.res), GW_E_REFUSED);
	check_result(&f.res[0], "a", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_CONNECT, 0, "4.4.1");
	check_gateway(&f.res[1], hops[1].port);
	assert_int_equal(f.res[1].attempts, 2);
	check_calls(&f);
	gw_lmtp_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_three_gateways),      cmocka_unit_test(test_uncertain_retried),
	    cmocka_unit_test(test_uncertain_final),     cmocka_unit_test(test_permanent_not_retried),
	    cmocka_unit_test(test_body_not_rewindable), cmocka_unit_test(test_route),
	    cmocka_unit_test(test_no_gateway),          cmocka_unit_test(test_all_down),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
