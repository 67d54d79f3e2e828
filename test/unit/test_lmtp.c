/*
 * test_lmtp.c - one transaction through one gateway (gw/lmtp.h) against the
 * scripted fake peer: per-recipient LMTP DATA replies (mixed, in order,
 * duplicates), no accepted recipient, DATA refused, the connection lost or
 * timing out after the final dot (uncertain), pipelining on and off, BDAT
 * (LMTP LAST with one reply per recipient, several chunks, a refused chunk),
 * STARTTLS, SIZE, SMTP mode, ESMTP parameters, connection reuse with RSET and
 * a stale reused connection, a silent peer at QUIT, a unix socket, bad addresses and body sources.
 * Every test checks the results and the exact bytes the peer received.
 *
 * Does not test: fallback across gateways (test_lmtp_fallback.c); real
 * servers (test/sh/lmtp_dovecot.sh).
 */
#include "fp_internal.h"
#include "lmtp_int.h"
#include "gw/time.h"
#include "lmtp_test.h"

#include <fcntl.h>

#define LHLO_PIPE                                                                                            \
	"expect LHLO " HELO "\nsend 250-fake.test\\r\\n250-PIPELINING\\r\\n250 ENHANCEDSTATUSCODES\n"
#define LHLO_PLAIN "expect LHLO " HELO "\nsend 250 fake.test\n"
#define LHLO_C     "LHLO " HELO "\r\n"

/* A body that needs dot-stuffing and CRLF repair, and its bytes on the wire. */
#define DOT_BODY "Subject: t\n\n.hidden\nline\r\n..two\nend"
#define DOT_WIRE "Subject: t\r\n\r\n..hidden\r\nline\r\n...two\r\nend\r\n.\r\n"

typedef struct fixture {
	gw_lmtp_rcpt rcpts[8];
	gw_lmtp_txn txn;
	gw_lmtp_body body;
	gw_lmtp_result res[8];
	unsigned calls[8];
} fixture;

static void on_result(void *ctx, size_t i, const gw_lmtp_rcpt *r, const gw_lmtp_result *res)
{
	fixture *f = ctx;

	assert_true(i < 8);
	assert_ptr_equal(r, &f->rcpts[i]);
	assert_ptr_equal(res, &f->res[i]);
	f->calls[i]++;
}

/* A transaction from s@example.com to the NULL-terminated addrs with body text. */
static void txn_init(fixture *f, const char *body, const char *const *addrs)
{
	size_t n = 0;

	memset(f, 0, sizeof(*f));
	while (addrs[n] != NULL) {
		f->rcpts[n].addr = addrs[n];
		n++;
	}
	gw_lmtp_body_memory(&f->body, body, strlen(body));
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

static gw_status send1(gw_lmtp *l, fp_peer *p, fixture *f)
{
	gw_nexthop h;

	hop_port(&h, fp_port(p));
	return gw_lmtp_send(l, &h, &f->txn, f->res);
}

static const char *const abc[] = {"a@example.com", "b@example.com", "c@example.com", NULL};
static const char *const ab[] = {"a@example.com", "b@example.com", NULL};

#define ENV_ABC                                                                                              \
	"MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRCPT "           \
	"TO:<c@example.com>\r\n"
#define ENV_AB "MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
#define EXPECT_ABC                                                                                           \
	"expect MAIL FROM:<s@example.com>\nexpect RCPT TO:<a@example.com>\nexpect RCPT TO:<b@example.com>\n" \
	"expect RCPT TO:<c@example.com>\n"
#define EXPECT_AB                                                                                            \
	"expect MAIL FROM:<s@example.com>\nexpect RCPT TO:<a@example.com>\nexpect RCPT TO:<b@example.com>\n"

/* ---- LMTP final replies ------------------------------------------------------ */

/* 250, 452 and 550 to one message; the body dot-stuffed with CRLF line ends. */
static void test_mixed_replies(void **state)
{
	fp_peer *p = start(
	    GREET LHLO_PIPE EXPECT_ABC
	    "expect DATA\n"
	    "send 250 2.1.0 ok\\r\\n250 2.1.5 a\\r\\n250 2.1.5 b\\r\\n250 2.1.5 c\\r\\n354 go ahead\n"
	    "data\n"
	    "send 250 2.0.0 a delivered\\r\\n452 4.2.2 b mailbox full\\r\\n550 5.1.1 c unknown\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	char want[64];
	fixture f;

	(void)state;
	txn_init(&f, DOT_BODY, abc);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[1], "b", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_DATA, 452, "4.2.2");
	check_result(&f.res[2], "c", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_DATA, 550, "5.1.1");
	assert_string_equal(f.res[0].text, "a delivered");
	assert_string_equal(f.res[2].text, "c unknown");
	snprintf(want, sizeof(want), "[127.0.0.1]:%u", fp_port(p));
	assert_string_equal(f.res[1].gateway, want);
	assert_int_equal(f.res[1].attempts, 1);
	assert_int_equal(f.res[1].status, GW_OK);
	assert_int_equal(gw_lmtp_count(f.res, 3, GW_LMTP_DELIVERED), 1);
	check_calls(&f);
	gw_lmtp_free(&l);
	assert_null(l);
	peer_done(p);
	check_received(p, 0, LHLO_C ENV_ABC "DATA\r\n" DOT_WIRE "QUIT\r\n");
	fp_stop(&p);
}

/* Closing waits for QUIT's reply a bounded time: a peer gone silent (a cut link under an
 * idle connection) does not hold the caller until the last transaction's deadline. */
static void test_close_silent_peer(void **state)
{
	fp_peer *p =
	    start(GREET LHLO_PIPE EXPECT_ABC
		  "expect DATA\n"
		  "send 250 2.1.0 ok\\r\\n250 2.1.5 a\\r\\n250 2.1.5 b\\r\\n250 2.1.5 c\\r\\n354 go ahead\n"
		  "data\n"
		  "send 250 2.0.0 a\\r\\n250 2.0.0 b\\r\\n250 2.0.0 c\n"
		  "expect QUIT\nsleep 15000\n");
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l;
	int64_t t0, ms;
	fixture f;

	(void)state;
	o.client.reply_timeout_ms = 30000;
	o.client.deadline_ms = 30000;
	l = new_lmtp(&o);
	txn_init(&f, DOT_BODY, abc);
	assert_int_equal(send1(l, p, &f), GW_OK);
	assert_int_equal(gw_lmtp_count(f.res, 3, GW_LMTP_DELIVERED), 3);
	t0 = gw_now_ms();
	gw_lmtp_free(&l);
	ms = gw_now_ms() - t0;
	if (ms >= 5000)
		fail_msg("closing took %lld ms waiting for QUIT's reply", (long long)ms);
	fp_stop(&p);
}

/* Replies belong to the accepted recipients in RCPT order; refused ones get none. */
static void test_reply_order(void **state)
{
	fp_peer *p =
	    start(GREET LHLO_PIPE EXPECT_ABC
		  "expect DATA\n"
		  "send 250 2.1.0 ok\\r\\n250 2.1.5 a\\r\\n550 5.1.1 b unknown\\r\\n250 2.1.5 c\\r\\n354 go\n"
		  "data\n"
		  "send 451 4.3.0 a later\\r\\n250 2.0.0 c saved\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, "hi\n", abc);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_DATA, 451, "4.3.0");
	check_result(&f.res[1], "b", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_RCPT, 550, "5.1.1");
	check_result(&f.res[2], "c", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	assert_string_equal(f.res[2].text, "c saved");
	check_calls(&f);
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0, LHLO_C ENV_ABC "DATA\r\nhi\r\n.\r\nQUIT\r\n");
	fp_stop(&p);
}

/* The same recipient twice: two RCPTs, two final replies, two results. */
static void test_duplicate_recipient(void **state)
{
	static const char *const aa[] = {"a@example.com", "<a@example.com>", NULL};
	fp_peer *p =
	    start(GREET LHLO_PIPE "expect MAIL\nexpect RCPT TO:<a@example.com>\n"
				  "expect RCPT TO:<a@example.com>\nexpect DATA\n"
				  "send 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\n"
				  "data\nsend 250 2.0.0 first\\r\\n452 4.2.1 second later\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, "x", aa);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a#1", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[1], "a#2", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_DATA, 452, "4.2.1");
	check_calls(&f);
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0,
		       LHLO_C
		       "MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<a@example.com>\r\n"
		       "DATA\r\nx\r\n.\r\nQUIT\r\n");
	fp_stop(&p);
}

/* No RCPT accepted: 503 at DATA, no body; the next transaction on the connection starts with RSET. */
static void test_no_accepted_pipelined(void **state)
{
	fp_peer *p = start(
	    GREET LHLO_PIPE EXPECT_AB
	    "expect DATA\n"
	    "send 250 ok\\r\\n550 5.1.1 a unknown\\r\\n450 4.2.1 b busy\\r\\n503 5.5.1 no valid recipients\n"
	    "expect RSET\nsend 250 2.0.0 ok\n" EXPECT_AB "expect DATA\n"
	    "send 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\n"
	    "data\nsend 250 2.0.0 a\\r\\n250 2.0.0 b\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, "body\n", ab);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_RCPT, 550, "5.1.1");
	check_result(&f.res[1], "b", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_RCPT, 450, "4.2.1");
	check_calls(&f);
	txn_init(&f, "body\n", ab);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[1], "b", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0, LHLO_C ENV_AB "DATA\r\nRSET\r\n" ENV_AB "DATA\r\nbody\r\n.\r\nQUIT\r\n");
	fp_stop(&p);
}

/* Without PIPELINING: one command at a time, and no DATA at all when nobody was accepted. */
static void test_no_accepted_lockstep(void **state)
{
	fp_peer *p = start(GREET LHLO_PLAIN "expect MAIL FROM:<s@example.com>\nsend 250 ok\n"
					    "expect RCPT TO:<a@example.com>\nsend 550 5.1.1 no\n"
					    "expect RCPT TO:<b@example.com>\nsend 550 5.1.1 no\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, "body\n", ab);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_RCPT, 550, "5.1.1");
	check_result(&f.res[1], "b", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_RCPT, 550, "5.1.1");
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0, LHLO_C ENV_AB "QUIT\r\n");
	fp_stop(&p);
}

/* DATA refused: 451 then (after RSET) 554, for every accepted recipient. */
static void test_data_refused(void **state)
{
	fp_peer *p = start(GREET LHLO_PIPE EXPECT_AB
			   "expect DATA\n"
			   "send 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n451 4.3.0 try later\n"
			   "expect RSET\nsend 250 ok\n" EXPECT_AB "expect DATA\n"
			   "send 250 ok\\r\\n250 ok\\r\\n550 5.1.1 b no\\r\\n554 5.6.0 no thanks\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, "body\n", ab);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_DATA, 451, "4.3.0");
	check_result(&f.res[1], "b", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_DATA, 451, "4.3.0");
	txn_init(&f, "body\n", ab);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_DATA, 554, "5.6.0");
	check_result(&f.res[1], "b", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_RCPT, 550, "5.1.1");
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0, LHLO_C ENV_AB "DATA\r\nRSET\r\n" ENV_AB "DATA\r\nQUIT\r\n");
	fp_stop(&p);
}

/* The connection drops after the dot with one of three replies read: the other two are uncertain. */
static void test_lost_after_dot(void **state)
{
	fp_peer *p =
	    start(GREET LHLO_PIPE EXPECT_ABC "expect DATA\n"
					     "send 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\n"
					     "data\nsend 250 2.0.0 a\nclose\n");
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, "body\n", abc);
	assert_int_equal(send1(l, p, &f), GW_E_LOST);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[1], "b", GW_LMTP_UNCERTAIN, GW_LMTP_STAGE_TRANSPORT, 0, "4.4.2");
	check_result(&f.res[2], "c", GW_LMTP_UNCERTAIN, GW_LMTP_STAGE_TRANSPORT, 0, "4.4.2");
	assert_int_equal(f.res[2].status, GW_E_LOST);
	assert_int_equal(gw_lmtp_count(f.res, 3, GW_LMTP_UNCERTAIN), 2);
	check_calls(&f);
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0, LHLO_C ENV_ABC "DATA\r\nbody\r\n.\r\n");
	fp_stop(&p);
}

/* The last reply never comes: the reply timeout makes it uncertain too. */
static void test_timeout_after_dot(void **state)
{
	fp_peer *p = start(GREET LHLO_PIPE EXPECT_AB "expect DATA\n"
						     "send 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\n"
						     "data\nsend 250 2.0.0 a\nsleep 800\n");
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l;
	fixture f;

	(void)state;
	o.client.reply_timeout_ms = 300;
	l = new_lmtp(&o);
	txn_init(&f, "body\n", ab);
	assert_int_equal(send1(l, p, &f), GW_E_TIMEOUT);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[1], "b", GW_LMTP_UNCERTAIN, GW_LMTP_STAGE_TRANSPORT, 0, "4.4.2");
	assert_int_equal(f.res[1].status, GW_E_TIMEOUT);
	gw_lmtp_free(&l);
	peer_done(p);
	fp_stop(&p);
}

/* A body source that fails: the dot is never sent, so nobody is uncertain. */
static ssize_t failing_read(void *ctx, char *buf, size_t len)
{
	int *calls = ctx;

	if ((*calls)++ > 0)
		return -1;
	memcpy(buf, "partial\n", len < 8 ? len : 8);
	return len < 8 ? (ssize_t)len : 8;
}

static void test_body_read_error(void **state)
{
	fp_peer *p = start(GREET LHLO_PIPE EXPECT_AB "expect DATA\n"
						     "send 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\n");
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	int calls = 0;
	fixture f;

	(void)state;
	txn_init(&f, "", ab);
	gw_lmtp_body_callback(&f.body, failing_read, NULL, &calls, -1);
	assert_int_equal(send1(l, p, &f), GW_E_LOCAL);
	check_result(&f.res[0], "a", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_TRANSPORT, 0, NULL);
	check_result(&f.res[1], "b", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_TRANSPORT, 0, NULL);
	gw_lmtp_free(&l);
	peer_done(p);
	/* No SIZE (unknown size, not offered anyway), no final dot. */
	check_received(p, 0, LHLO_C ENV_AB "DATA\r\n");
	fp_stop(&p);
}

/* ---- pipelining, BDAT, STARTTLS, SIZE, SMTP ------------------------------------ */

/* Without PIPELINING each command waits for its reply (the script answers one at a time). */
static void test_lockstep_delivery(void **state)
{
	fp_peer *p = start(GREET LHLO_PLAIN
			   "expect MAIL FROM:<s@example.com>\nsend 250 ok\n"
			   "expect RCPT TO:<a@example.com>\nsend 250 ok\n"
			   "expect RCPT TO:<b@example.com>\nsend 550 5.1.1 unknown\n"
			   "expect RCPT TO:<c@example.com>\nsend 250 ok\n"
			   "expect DATA\nsend 354 go\ndata\nsend 250 2.0.0 a\\r\\n250 2.0.0 c\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, DOT_BODY, abc);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[1], "b", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_RCPT, 550, "5.1.1");
	check_result(&f.res[2], "c", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0, LHLO_C ENV_ABC "DATA\r\n" DOT_WIRE "QUIT\r\n");
	fp_stop(&p);
}

#define LHLO_CHUNKING                                                                                        \
	"expect LHLO " HELO "\nsend 250-fake.test\\r\\n250-PIPELINING\\r\\n250-CHUNKING\\r\\n250 "           \
	"ENHANCEDSTATUSCODES\n"

/* LMTP BDAT ... LAST: no DATA, no dot-stuffing, one final reply per recipient. */
static void test_bdat_lmtp(void **state)
{
	fp_peer *p = start(GREET LHLO_CHUNKING EXPECT_AB
			   "send 250 ok\\r\\n250 ok\\r\\n250 ok\n"
			   "expect BDAT 25 LAST\nexpect Subject: t\nexpect\nexpect .dot\nexpect end\n"
			   "send 250 2.0.0 a ok\\r\\n550 5.2.1 b disabled\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, "Subject: t\n\n.dot\nend", ab);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[1], "b", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_DATA, 550, "5.2.1");
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0, LHLO_C ENV_AB "BDAT 25 LAST\r\nSubject: t\r\n\r\n.dot\r\nend\r\nQUIT\r\n");
	fp_stop(&p);
}

#define EHLO_CHUNKING "expect EHLO " HELO "\nsend 250-fake.test\\r\\n250 CHUNKING\n"
#define LINE16        "0123456789abcd\r\n"

/* SMTP BDAT in three chunks, each acknowledged; the one final reply covers every recipient. */
static void test_bdat_smtp_chunks(void **state)
{
	fp_peer *p = start("send 220 fake ESMTP\n" EHLO_CHUNKING
			   "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect RCPT\nsend 250 ok\n"
			   "expect BDAT 16\nexpect 0123\nsend 250 2.0.0 got 16\n"
			   "expect BDAT 16\nexpect 0123\nsend 250 2.0.0 got 16\n"
			   "expect BDAT 16 LAST\nexpect 0123\nsend 250 2.0.0 queued\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_SMTP);
	gw_lmtp *l;
	fixture f;

	(void)state;
	o.bdat_chunk = 16;
	l = new_lmtp(&o);
	txn_init(&f, LINE16 LINE16 LINE16, ab);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[1], "b", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	assert_string_equal(f.res[1].text, "queued");
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0,
		       "EHLO " HELO "\r\n" ENV_AB "BDAT 16\r\n" LINE16 "BDAT 16\r\n" LINE16
		       "BDAT 16 LAST\r\n" LINE16 "QUIT\r\n");
	fp_stop(&p);
}

/* A refused intermediate chunk ends the transaction for every accepted recipient. */
static void test_bdat_chunk_refused(void **state)
{
	fp_peer *p = start(GREET LHLO_CHUNKING EXPECT_AB
			   "send 250 ok\\r\\n250 ok\\r\\n250 ok\n"
			   "expect BDAT 16\nexpect 0123\nsend 552 5.3.4 too big\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l;
	fixture f;

	(void)state;
	o.bdat_chunk = 16;
	l = new_lmtp(&o);
	txn_init(&f, LINE16 LINE16, ab);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_DATA, 552, "5.3.4");
	check_result(&f.res[1], "b", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_DATA, 552, "5.3.4");
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0, LHLO_C ENV_AB "BDAT 16\r\n" LINE16 "QUIT\r\n");
	fp_stop(&p);
}

/* BDAT LAST written whole, then the connection drops: the recipients without a reply are uncertain. */
static void test_bdat_lost_after_last(void **state)
{
	fp_peer *p =
	    start(GREET LHLO_CHUNKING EXPECT_AB "send 250 ok\\r\\n250 ok\\r\\n250 ok\n"
						"expect BDAT 4 LAST\nexpect hi\nsend 250 2.0.0 a\nclose\n");
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, "hi", ab);
	assert_int_equal(send1(l, p, &f), GW_E_LOST);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[1], "b", GW_LMTP_UNCERTAIN, GW_LMTP_STAGE_TRANSPORT, 0, "4.4.2");
	gw_lmtp_free(&l);
	peer_done(p);
	fp_stop(&p);
}

/* CHUNKING offered but no_chunking set: DATA. */
static void test_bdat_disabled(void **state)
{
	fp_peer *p =
	    start(GREET LHLO_CHUNKING EXPECT_AB
		  "expect DATA\n"
		  "send 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\ndata\nsend 250 a\\r\\n250 b\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l;
	fixture f;

	(void)state;
	o.no_chunking = 1;
	l = new_lmtp(&o);
	txn_init(&f, "hi", ab);
	assert_int_equal(send1(l, p, &f), GW_OK);
	assert_int_equal(gw_lmtp_count(f.res, 2, GW_LMTP_DELIVERED), 2);
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0, LHLO_C ENV_AB "DATA\r\nhi\r\n.\r\nQUIT\r\n");
	fp_stop(&p);
}

/* STARTTLS required: the transaction runs inside TLS (the record is the plaintext). */
static void test_starttls(void **state)
{
	fp_peer *p =
	    start(GREET "expect LHLO " HELO "\nsend 250-fake.test\\r\\n250-STARTTLS\\r\\n250 PIPELINING\n"
			"expect STARTTLS\nsend 220 go ahead\nstarttls\n" LHLO_PIPE EXPECT_AB "expect DATA\n"
			"send 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\ndata\nsend 250 2.0.0 a\\r\\n250 "
			"2.0.0 b\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l;
	fixture f;

	(void)state;
	o.client.tls = GW_TLS_ENCRYPT;
	l = new_lmtp(&o);
	txn_init(&f, DOT_BODY, ab);
	assert_int_equal(send1(l, p, &f), GW_OK);
	assert_int_equal(gw_lmtp_count(f.res, 2, GW_LMTP_DELIVERED), 2);
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0, LHLO_C "STARTTLS\r\n" LHLO_C ENV_AB "DATA\r\n" DOT_WIRE "QUIT\r\n");
	fp_stop(&p);
}

/* STARTTLS required but not offered: a temporary failure at LHLO, nothing sent. */
static void test_starttls_missing(void **state)
{
	fp_peer *p = start(GREET LHLO_PIPE);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l;
	fixture f;

	(void)state;
	o.client.tls = GW_TLS_ENCRYPT;
	l = new_lmtp(&o);
	txn_init(&f, "x", ab);
	assert_int_equal(send1(l, p, &f), GW_E_PROTO);
	check_result(&f.res[0], "a", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_LHLO, 0, NULL);
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0, LHLO_C);
	fp_stop(&p);
}

/* Over SIZE: a permanent failure without MAIL; under it, SIZE= is sent. */
static void test_size(void **state)
{
	fp_peer *p = start(
	    GREET "expect LHLO " HELO "\nsend 250-fake.test\\r\\n250-PIPELINING\\r\\n250 SIZE 20\n"
		  "expect MAIL FROM:<s@example.com> SIZE=10\nexpect RCPT\nexpect RCPT\nexpect DATA\n"
		  "send 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\ndata\nsend 250 a\\r\\n250 b\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, "0123456789012345678901234567890", ab);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_MAIL, 552, "5.3.4");
	check_result(&f.res[1], "b", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_MAIL, 552, "5.3.4");
	assert_int_equal(f.res[0].local, 1);
	check_calls(&f);
	txn_init(&f, "012345678\n", ab);
	assert_int_equal(send1(l, p, &f), GW_OK);
	assert_int_equal(gw_lmtp_count(f.res, 2, GW_LMTP_DELIVERED), 2);
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0,
		       LHLO_C "MAIL FROM:<s@example.com> SIZE=10\r\nRCPT TO:<a@example.com>\r\nRCPT "
			      "TO:<b@example.com>\r\nDATA\r\n012345678\r\n.\r\nQUIT\r\n");
	fp_stop(&p);
}

/* SMTP: the one DATA reply applies to every accepted recipient. */
static void test_smtp_mode(void **state)
{
	fp_peer *p =
	    start("send 220 fake ESMTP\nexpect EHLO " HELO "\nsend 250-fake\\r\\n250 PIPELINING\n" EXPECT_ABC
		  "expect DATA\nsend 250 ok\\r\\n250 ok\\r\\n550 5.1.1 b no\\r\\n250 ok\\r\\n354 go\n"
		  "data\nsend 250 2.0.0 queued as 1234\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_SMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, DOT_BODY, abc);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_result(&f.res[1], "b", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_RCPT, 550, "5.1.1");
	check_result(&f.res[2], "c", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	assert_string_equal(f.res[2].text, "queued as 1234");
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0, "EHLO " HELO "\r\n" ENV_ABC "DATA\r\n" DOT_WIRE "QUIT\r\n");
	fp_stop(&p);
}

/* Parameters: SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT when offered. */
static void test_params(void **state)
{
	static const char *const a[] = {"a@example.com", NULL};
	fp_peer *p = start(GREET "expect LHLO " HELO
				 "\nsend 250-fake\\r\\n250-PIPELINING\\r\\n250-SIZE\\r\\n250-8BITMIME\\r\\n"
				 "250-SMTPUTF8\\r\\n250 DSN\n"
				 "expect MAIL\nexpect RCPT\nexpect DATA\nsend 250 ok\\r\\n250 ok\\r\\n354 "
				 "go\ndata\nsend 250 ok\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, "x\n", a);
	f.txn.body_type = "8BITMIME";
	f.txn.smtputf8 = 1;
	f.txn.ret = "HDRS";
	f.txn.envid = "QQ314";
	f.rcpts[0].notify = "SUCCESS,FAILURE";
	f.rcpts[0].orcpt = "rfc822;a@example.com";
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "");
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0,
		       LHLO_C
		       "MAIL FROM:<s@example.com> SIZE=2 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314\r\n"
		       "RCPT TO:<a@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.com\r\n"
		       "DATA\r\nx\r\n.\r\nQUIT\r\n");
	fp_stop(&p);
}

/* DSN and BODY left out when not offered; SMTPUTF8 cannot be: a permanent failure. */
static void test_params_not_offered(void **state)
{
	static const char *const a[] = {"a@example.com", NULL};
	fp_peer *p =
	    start(GREET LHLO_PIPE "expect MAIL FROM:<>\nexpect RCPT TO:<a@example.com>\nexpect DATA\n"
				  "send 250 ok\\r\\n250 ok\\r\\n354 go\ndata\nsend 250 ok\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, "x\n", a);
	f.txn.sender = "";
	f.txn.body_type = "8BITMIME";
	f.txn.ret = "FULL";
	f.rcpts[0].notify = "NEVER";
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "");
	f.txn.smtputf8 = 1;
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_MAIL, 553, "5.6.7");
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0, LHLO_C "MAIL FROM:<>\r\nRCPT TO:<a@example.com>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
	fp_stop(&p);
}

/* Malformed addresses are refused here and never reach the gateway; the rest is delivered. */
static void test_bad_addresses(void **state)
{
	static const char *const bad[] = {"a@example.com", "b\r\nRSET@example.com", "c@example.com", NULL};
	fp_peer *p = start(GREET LHLO_PIPE
			   "expect MAIL\nexpect RCPT TO:<a@example.com>\nexpect RCPT TO:<c@example.com>\n"
			   "expect DATA\nsend 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\ndata\n"
			   "send 250 a\\r\\n250 c\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, "x\n", bad);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "");
	check_result(&f.res[1], "b", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_RCPT, 553, "5.1.3");
	check_result(&f.res[2], "c", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "");
	check_calls(&f);
	/* A bad sender fails everybody without a connection. */
	txn_init(&f, "x\n", ab);
	f.txn.sender = "no spaces allowed@example.com";
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_MAIL, 553, "5.1.7");
	check_result(&f.res[1], "b", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_MAIL, 553, "5.1.7");
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0,
		       LHLO_C
		       "MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<c@example.com>\r\n"
		       "DATA\r\nx\r\n.\r\nQUIT\r\n");
	fp_stop(&p);
}

/* MAIL refused: its reply is every recipient's result. */
static void test_mail_refused(void **state)
{
	fp_peer *p = start(
	    GREET LHLO_PIPE EXPECT_AB
	    "expect DATA\n"
	    "send 553 5.7.1 sender rejected\\r\\n503 5.5.1 no\\r\\n503 5.5.1 no\\r\\n503 5.5.1 no\n" QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;

	(void)state;
	txn_init(&f, "x\n", ab);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_MAIL, 553, "5.7.1");
	check_result(&f.res[1], "b", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_MAIL, 553, "5.7.1");
	gw_lmtp_free(&l);
	peer_done(p);
	fp_stop(&p);
}

/* ---- sessions ------------------------------------------------------------------ */

/* Refused connection, refused greeting, refused LHLO: temporary, with the stage. */
static void test_session_failures(void **state)
{
	fp_peer *p = start("send 554 5.3.2 go away\n---\n" GREET "expect LHLO\nsend 500 5.5.1 what\n");
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	gw_nexthop h;
	fixture f;

	(void)state;
	txn_init(&f, "x\n", ab);
	hop_port(&h, fp_closed_port());
	assert_int_equal(gw_lmtp_send(l, &h, &f.txn, f.res), GW_E_REFUSED);
	check_result(&f.res[0], "refused", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_CONNECT, 0, "4.4.1");
	assert_int_equal(f.res[0].status, GW_E_REFUSED);
	assert_int_equal(send1(l, p, &f), GW_E_REJECTED);
	check_result(&f.res[1], "greeting", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_GREETING, 554, "5.3.2");
	assert_int_equal(send1(l, p, &f), GW_E_REJECTED);
	check_result(&f.res[0], "lhlo", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_LHLO, 500, "5.5.1");
	gw_lmtp_free(&l);
	peer_done(p);
	fp_stop(&p);
}

/* Two transactions on one connection: no RSET after a clean one (and one with always_rset). */
static void test_reuse(void **state)
{
	static const char *const a[] = {"a@example.com", NULL};
#define ONE_TXN                                                                                              \
	"expect MAIL\nexpect RCPT\nexpect DATA\nsend 250 ok\\r\\n250 ok\\r\\n354 go\ndata\nsend 250 ok\n"
	fp_peer *p = start(GREET LHLO_PIPE ONE_TXN ONE_TXN "expect RSET\nsend 250 ok\n" ONE_TXN QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		if (i == 2)
			l->o.always_rset = 1; /* the handle is reachable through lmtp_int.h (gw_internal) */
		txn_init(&f, "x\n", a);
		assert_int_equal(send1(l, p, &f), GW_OK);
		check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "");
	}
	gw_lmtp_free(&l);
	peer_done(p);
	assert_int_equal(fp_connections(p), 1);
#define ONE_C "MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\nx\r\n.\r\n"
	check_received(p, 0, LHLO_C ONE_C ONE_C "RSET\r\n" ONE_C "QUIT\r\n");
	fp_stop(&p);
}

/* The server closed the idle connection: the next transaction reconnects by itself. */
static void test_reuse_stale(void **state)
{
	static const char *const a[] = {"a@example.com", NULL};
	fp_peer *p = start(GREET LHLO_PIPE ONE_TXN "close\n---\n" GREET LHLO_PIPE ONE_TXN QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;
	int i;

	(void)state;
	for (i = 0; i < 2; i++) {
		txn_init(&f, "x\n", a);
		if (i == 1)
			usleep(100 * 1000); /* let the close arrive */
		assert_int_equal(send1(l, p, &f), GW_OK);
		check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "");
		assert_int_equal(f.res[0].attempts, 1);
	}
	gw_lmtp_free(&l);
	peer_done(p);
	assert_int_equal(fp_connections(p), 2);
	check_received(p, 1, LHLO_C ONE_C "QUIT\r\n");
	fp_stop(&p);
}

/*
 * A connection idle past idle_check_ms is asked with an RSET first: a live
 * peer answers and the connection is reused; a silent one (a cut link) costs
 * idle_check_timeout_ms and a new connection, not the 30 s reply timeout.
 */
static void test_reuse_idle_check(void **state)
{
	static const char *const a[] = {"a@example.com", NULL};
	fp_peer *p = start(GREET LHLO_PIPE ONE_TXN "expect RSET\nsend 250 ok\n" ONE_TXN
						   "---\n" GREET LHLO_PIPE ONE_TXN QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l;
	fixture f;
	int64_t t0, ms;
	int i;

	(void)state;
	o.client.reply_timeout_ms = 30000;
	o.client.deadline_ms = 30000;
	o.idle_check_ms = 50;
	o.idle_check_timeout_ms = 500;
	l = new_lmtp(&o);
	for (i = 0; i < 3; i++) {
		txn_init(&f, "x\n", a);
		if (i > 0)
			usleep(100 * 1000); /* idle past idle_check_ms */
		t0 = gw_now_ms();
		assert_int_equal(send1(l, p, &f), GW_OK);
		ms = gw_now_ms() - t0;
		check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "");
		assert_int_equal(f.res[0].attempts, 1);
		if (ms >= 10000)
			fail_msg("transaction %d took %lld ms", i, (long long)ms);
	}
	gw_lmtp_free(&l);
	peer_done(p);
	assert_int_equal(fp_connections(p), 2);
	check_received(p, 1, LHLO_C ONE_C "QUIT\r\n");
	fp_stop(&p);
}

/*
 * The gateway said 421 on its idle timeout and closed: the next transaction
 * goes over a new connection, not into the unread 421 (which would read as
 * MAIL refused).
 */
static void test_reuse_after_idle_421(void **state)
{
	static const char *const a[] = {"a@example.com", NULL};
	fp_peer *p = start(GREET LHLO_PIPE ONE_TXN
			   "send 421 4.4.2 idle timeout\nclose\n---\n" GREET LHLO_PIPE ONE_TXN QUIT_OK);
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	fixture f;
	int i, k;

	(void)state;
	for (i = 0; i < 2; i++) {
		txn_init(&f, "x\n", a);
		/* Bounded wait for the first connection's 421 and close, not a guess. */
		for (k = 0; i == 1 && k < 500 && !fp_conn_ended(p, 0); k++)
			usleep(10 * 1000);
		assert_int_equal(send1(l, p, &f), GW_OK);
		check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "");
		assert_int_equal(f.res[0].attempts, 1);
	}
	gw_lmtp_free(&l);
	peer_done(p);
	assert_int_equal(fp_connections(p), 2);
	check_received(p, 0, LHLO_C ONE_C);
	check_received(p, 1, LHLO_C ONE_C "QUIT\r\n");
	fp_stop(&p);
}

/* The deadline cuts a stalled transaction (before the dot: temporary), and is renewed for each transaction.
 */
static void test_deadline(void **state)
{
	static const char *const a[] = {"a@example.com", NULL};
	fp_peer *p =
	    start(GREET LHLO_PIPE ONE_TXN "sleep 500\n" ONE_TXN "expect MAIL\nexpect RCPT\nexpect DATA\n"
					  "sleep 700\n");
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l;
	fixture f;

	(void)state;
	o.client.deadline_ms = 400;
	l = new_lmtp(&o);
	txn_init(&f, "x\n", a);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "first", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "");
	usleep(500 * 1000); /* longer than the deadline: the next transaction gets a new one */
	txn_init(&f, "x\n", a);
	assert_int_equal(send1(l, p, &f), GW_OK);
	check_result(&f.res[0], "second", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "");
	txn_init(&f, "x\n", a);
	assert_int_equal(send1(l, p, &f), GW_E_TIMEOUT);
	check_result(&f.res[0], "stalled", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_TRANSPORT, 0, "4.4.2");
	assert_int_equal(f.res[0].status, GW_E_TIMEOUT);
	gw_lmtp_free(&l);
	peer_done(p);
	fp_stop(&p);
}

/* LMTP over a unix socket, with the body from a file descriptor. */
static void test_unix_socket_fd_body(void **state)
{
	static const char *const a[] = {"a@example.com", NULL};
	char path[96], listen[112], file[96];
	fp_opts po;
	fp_peer *p;
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	gw_nexthop h;
	char err[256];
	fixture f;
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/gw-test-lmtp-%ld.sock", (long)getpid());
	snprintf(listen, sizeof(listen), "unix:%s", path);
	snprintf(file, sizeof(file), "/tmp/gw-test-lmtp-%ld.msg", (long)getpid());
	memset(&po, 0, sizeof(po));
	po.script = GREET LHLO_PIPE "expect MAIL FROM:<s@example.com>\nexpect RCPT\nexpect DATA\n"
				    "send 250 ok\\r\\n250 ok\\r\\n354 go\ndata\nsend 250 2.0.0 ok\n" QUIT_OK;
	po.listen = listen;
	po.timeout_ms = 3000;
	p = fp_start_opts(&po, err, sizeof(err));
	if (p == NULL)
		fail_msg("fp_start: %s", err);
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	unlink(file);
	assert_int_equal(write(fd, "skip" DOT_BODY, 4 + strlen(DOT_BODY)), (ssize_t)(4 + strlen(DOT_BODY)));
	assert_int_equal(lseek(fd, 4, SEEK_SET), 4);
	txn_init(&f, "", a);
	assert_int_equal(gw_lmtp_body_fd(&f.body, fd), 0);
	assert_int_equal(f.body.size, (long long)strlen(DOT_BODY));
	memset(&h, 0, sizeof(h));
	h.kind = GW_HOP_UNIX;
	snprintf(h.path, sizeof(h.path), "%s", path);
	assert_int_equal(gw_lmtp_send(l, &h, &f.txn, f.res), GW_OK);
	check_result(&f.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	assert_string_equal(f.res[0].gateway, listen);
	/* Rewinding goes back to where the body started, not to the start of the file. */
	assert_int_equal(f.body.rewind(f.body.rewind_ctx), 0);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 4);
	close(fd);
	gw_lmtp_free(&l);
	peer_done(p);
	check_received(p, 0,
		       LHLO_C "MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n" DOT_WIRE
			      "QUIT\r\n");
	fp_stop(&p);
	unlink(path);
}

/* Bad arguments: GW_E_LOCAL, nothing sent; no recipients: nothing to do. */
static void test_bad_arguments(void **state)
{
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp *l = new_lmtp(&o);
	gw_nexthop h;
	fixture f;

	(void)state;
	hop_port(&h, fp_closed_port());
	txn_init(&f, "x", ab);
	assert_int_equal(gw_lmtp_send(l, &h, &f.txn, NULL), GW_E_LOCAL);
	assert_int_equal(gw_lmtp_send(l, NULL, &f.txn, f.res), GW_E_LOCAL);
	f.txn.body = NULL;
	assert_int_equal(gw_lmtp_send(l, &h, &f.txn, f.res), GW_E_LOCAL);
	f.txn.body = &f.body;
	f.txn.nrcpts = 0;
	assert_int_equal(gw_lmtp_send(l, &h, &f.txn, f.res), GW_OK);
	assert_string_equal(gw_lmtp_state_str(GW_LMTP_UNCERTAIN), "uncertain");
	assert_string_equal(gw_lmtp_stage_str(GW_LMTP_STAGE_TRANSPORT), "transport");
	gw_lmtp_free(&l);
	gw_lmtp_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mixed_replies),
	    cmocka_unit_test(test_close_silent_peer),
	    cmocka_unit_test(test_reply_order),
	    cmocka_unit_test(test_duplicate_recipient),
	    cmocka_unit_test(test_no_accepted_pipelined),
	    cmocka_unit_test(test_no_accepted_lockstep),
	    cmocka_unit_test(test_data_refused),
	    cmocka_unit_test(test_lost_after_dot),
	    cmocka_unit_test(test_timeout_after_dot),
	    cmocka_unit_test(test_body_read_error),
	    cmocka_unit_test(test_lockstep_delivery),
	    cmocka_unit_test(test_bdat_lmtp),
	    cmocka_unit_test(test_bdat_smtp_chunks),
	    cmocka_unit_test(test_bdat_chunk_refused),
	    cmocka_unit_test(test_bdat_lost_after_last),
	    cmocka_unit_test(test_bdat_disabled),
	    cmocka_unit_test(test_starttls),
	    cmocka_unit_test(test_starttls_missing),
	    cmocka_unit_test(test_size),
	    cmocka_unit_test(test_smtp_mode),
	    cmocka_unit_test(test_params),
	    cmocka_unit_test(test_params_not_offered),
	    cmocka_unit_test(test_bad_addresses),
	    cmocka_unit_test(test_mail_refused),
	    cmocka_unit_test(test_session_failures),
	    cmocka_unit_test(test_reuse),
	    cmocka_unit_test(test_reuse_stale),
	    cmocka_unit_test(test_reuse_after_idle_421),
	    cmocka_unit_test(test_reuse_idle_check),
	    cmocka_unit_test(test_deadline),
	    cmocka_unit_test(test_unix_socket_fd_body),
	    cmocka_unit_test(test_bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
