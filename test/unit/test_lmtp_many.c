/*
 * test_lmtp_many.c - 10,000 recipients in one LMTP transaction against a
 * fake peer that answers each command before it reads the next, through a
 * 4 KB socket buffer: over a unix socket (where the kernel does not grow the
 * buffers) with DATA, with BDAT and with STARTTLS. A client that
 * writes every command before reading a reply stalls both sides here until
 * the reply timeout; ours must finish quickly with every recipient's own
 * result, in order, and the peer must have received exactly the envelope.
 * Also: a peer that answers some commands and closes while the client is
 * still writing; the replies it sent first are not lost.
 *
 * Does not test: a real server (test/sh/lmtp_dovecot.sh does, with Dovecot).
 */
#include "lmtp_test.h"

#include "gw/buf.h"

#include <time.h>

#define MANY    10000
#define SOCKBUF 4096

#define LHLO_PIPE                                                                                            \
	"expect LHLO " HELO "\nsend 250-fake.test\\r\\n250-PIPELINING\\r\\n250 ENHANCEDSTATUSCODES\n"
#define LHLO_BDAT "expect LHLO " HELO "\nsend 250-fake.test\\r\\n250-PIPELINING\\r\\n250 CHUNKING\n"
#define LHLO_TLS  "expect LHLO " HELO "\nsend 250-fake.test\\r\\n250-PIPELINING\\r\\n250 STARTTLS\n"

typedef struct many {
	gw_lmtp_rcpt *rcpts;
	gw_lmtp_result *res;
	char *addrs;
	gw_lmtp_body body;
	gw_lmtp_txn txn;
	gw_buf script, wire;
} many;

/* Recipient k is refused at RCPT when k % 7 == 3; an accepted one gets 452 at DATA when k % 5 == 1. */
static int refused(size_t k)
{
	return k % 7 == 3;
}

static int deferred(size_t k)
{
	return k % 5 == 1;
}

static void append(gw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(gw_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	assert_int_equal(gw_buf_vprintf(b, fmt, ap), 0);
	va_end(ap);
}

/* The transaction, the peer's script (after LHLO) and the envelope bytes it must receive. */
static void many_init(many *m, int bdat)
{
	size_t k;

	memset(m, 0, sizeof(*m));
	m->rcpts = calloc(MANY, sizeof(*m->rcpts));
	m->res = calloc(MANY, sizeof(*m->res));
	m->addrs = malloc(MANY * 32);
	assert_non_null(m->rcpts);
	assert_non_null(m->res);
	assert_non_null(m->addrs);
	gw_buf_init(&m->script, 8u << 20);
	gw_buf_init(&m->wire, 8u << 20);
	append(&m->script, "expect MAIL FROM:<s@example.com>\nsend 250 2.1.0 ok\n");
	append(&m->wire, "LHLO " HELO "\r\nMAIL FROM:<s@example.com>\r\n");
	for (k = 0; k < MANY; k++) {
		snprintf(m->addrs + k * 32, 32, "user+%zu@example.com", k);
		m->rcpts[k].addr = m->addrs + k * 32;
		append(&m->script, "expect RCPT TO:<%s>\nsend %s\n", m->rcpts[k].addr,
		       refused(k) ? "550 5.1.1 no such user" : "250 2.1.5 ok");
		append(&m->wire, "RCPT TO:<%s>\r\n", m->rcpts[k].addr);
	}
	if (bdat) {
		append(&m->script, "expect BDAT 6 LAST\nexpect hi\nexpect\n");
		append(&m->wire, "BDAT 6 LAST\r\nhi\r\n\r\n");
	} else {
		append(&m->script, "expect DATA\nsend 354 go\ndata\n");
		append(&m->wire, "DATA\r\nhi\r\n\r\n.\r\n");
	}
	for (k = 0; k < MANY; k++)
		if (!refused(k))
			append(&m->script, "send %s\n",
			       deferred(k) ? "452 4.2.2 mailbox full" : "250 2.0.0 saved");
	append(&m->script, QUIT_OK);
	append(&m->wire, "QUIT\r\n");
	gw_lmtp_body_memory(&m->body, "hi\n\n", 4);
	m->txn.sender = "s@example.com";
	m->txn.rcpts = m->rcpts;
	m->txn.nrcpts = MANY;
	m->txn.body = &m->body;
}

static void many_free(many *m)
{
	free(m->rcpts);
	free(m->res);
	free(m->addrs);
	gw_buf_free(&m->script);
	gw_buf_free(&m->wire);
}

static void check_many(const many *m)
{
	size_t k, counts[5] = {0};

	for (k = 0; k < MANY; k++) {
		char what[64];

		snprintf(what, sizeof(what), "recipient %zu", k);
		if (refused(k))
			check_result(&m->res[k], what, GW_LMTP_PERMFAIL, GW_LMTP_STAGE_RCPT, 550, "5.1.1");
		else if (deferred(k))
			check_result(&m->res[k], what, GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_DATA, 452, "4.2.2");
		else
			check_result(&m->res[k], what, GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
		counts[m->res[k].state]++;
	}
	assert_int_equal(counts[GW_LMTP_PENDING] + counts[GW_LMTP_UNCERTAIN], 0);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run the transaction against a peer with small buffers; it must take far less than the reply timeout. */
static void run(const char *listen, const char *head, int bdat, gw_tls_policy tls)
{
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	char err[256] = "", *script;
	gw_nexthop h;
	fp_opts po;
	gw_lmtp *l;
	fp_peer *p;
	double t0, took;
	gw_status s;
	many m;

	many_init(&m, bdat);
	assert_int_not_equal(asprintf(&script, "%s%s", head, gw_buf_cstr(&m.script)), -1);
	memset(&po, 0, sizeof(po));
	po.script = script;
	po.listen = listen;
	po.timeout_ms = 8000;
	po.sockbuf = SOCKBUF;
	p = fp_start_opts(&po, err, sizeof(err));
	if (p == NULL)
		fail_msg("fp_start: %s", err);
	o.client.reply_timeout_ms = 8000;
	o.client.deadline_ms = 60000;
	o.client.tls = tls;
	l = new_lmtp(&o);
	if (listen != NULL) {
		memset(&h, 0, sizeof(h));
		h.kind = GW_HOP_UNIX;
		snprintf(h.path, sizeof(h.path), "%s", listen + 5);
	} else {
		hop_port(&h, fp_port(p));
	}
	t0 = now_s();
	s = gw_lmtp_send(l, &h, &m.txn, m.res);
	took = now_s() - t0;
	gw_lmtp_free(&l);
	if (fp_wait(p, 10000) != 0)
		fail_msg("fake peer: %s", fp_error(p) ? fp_error(p) : "scripts did not finish");
	assert_int_equal(s, GW_OK);
	check_many(&m);
	/* The reply timeout is 8 s: a stalled exchange would have waited it out at least once. */
	if (took > 6.0)
		fail_msg("%d recipients took %.1f s", MANY, took);
	if (tls == GW_TLS_NONE)
		check_received(p, 0, gw_buf_cstr(&m.wire));
	fp_stop(&p);
	free(script);
	many_free(&m);
}

static void unix_path(char *listen, size_t size, const char *tag)
{
	snprintf(listen, size, "unix:/tmp/gw-test-many-%s-%ld.sock", tag, (long)getpid());
}

static void test_unix_data(void **state)
{
	char listen[96], head[256];

	(void)state;
	unix_path(listen, sizeof(listen), "data");
	snprintf(head, sizeof(head), "%s%s", GREET, LHLO_PIPE);
	run(listen, head, 0, GW_TLS_NONE);
}

static void test_unix_bdat(void **state)
{
	char listen[96], head[256];

	(void)state;
	unix_path(listen, sizeof(listen), "bdat");
	snprintf(head, sizeof(head), "%s%s", GREET, LHLO_BDAT);
	run(listen, head, 1, GW_TLS_NONE);
}

/* The same through TLS: OpenSSL's WANT_READ/WANT_WRITE inside the loop. */
static void test_unix_tls(void **state)
{
	char listen[96];

	(void)state;
	unix_path(listen, sizeof(listen), "tls");
	run(listen, GREET LHLO_TLS "expect STARTTLS\nsend 220 go ahead\nstarttls\n" LHLO_PIPE, 0,
	    GW_TLS_ENCRYPT);
}

/* The peer answers MAIL and two RCPTs, says 421 and closes while we are still writing: those replies count.
 */
static void test_peer_closes_midway(void **state)
{
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	char listen[96], err[256] = "", *script;
	gw_nexthop h;
	fp_opts po;
	gw_lmtp *l;
	fp_peer *p;
	gw_status s;
	many m;
	size_t k;

	(void)state;
	many_init(&m, 0);
	unix_path(listen, sizeof(listen), "close");
	assert_int_not_equal(asprintf(&script,
				      GREET LHLO_PIPE "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\n"
						      "expect RCPT\nsend 550 5.1.1 unknown\nsend 421 4.3.2 "
						      "shutting down\nclose\n"),
			     -1);
	memset(&po, 0, sizeof(po));
	po.script = script;
	po.listen = listen;
	po.sockbuf = SOCKBUF;
	p = fp_start_opts(&po, err, sizeof(err));
	if (p == NULL)
		fail_msg("fp_start: %s", err);
	l = new_lmtp(&o);
	memset(&h, 0, sizeof(h));
	h.kind = GW_HOP_UNIX;
	snprintf(h.path, sizeof(h.path), "%s", listen + 5);
	s = gw_lmtp_send(l, &h, &m.txn, m.res);
	assert_true(s == GW_E_LOST);
	/* Recipient 0 accepted at RCPT, then the session broke before DATA: temporary. */
	check_result(&m.res[0], "0", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_TRANSPORT, 0, NULL);
	check_result(&m.res[1], "1", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_RCPT, 550, "5.1.1");
	check_result(&m.res[2], "2", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_RCPT, 421, "4.3.2");
	for (k = 3; k < MANY; k++)
		check_result(&m.res[k], "rest", GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_TRANSPORT, 0, NULL);
	gw_lmtp_free(&l);
	peer_done(p);
	fp_stop(&p);
	free(script);
	many_free(&m);
}

/* The result's gateway field holds the longest next hop there is, whole. */
static void test_gateway_fits(void **state)
{
	gw_nexthop h;
	char buf[1024];

	(void)state;
	memset(&h, 0, sizeof(h));
	h.kind = GW_HOP_INET;
	h.literal = 1;
	h.port = 65535;
	memset(h.host, 'h', GW_HOST_MAX);
	assert_int_equal(gw_nexthop_format(&h, buf, sizeof(buf)), GW_LMTP_GATEWAY_MAX - 1);
	memset(&h, 0, sizeof(h));
	h.kind = GW_HOP_UNIX;
	memset(h.path, 'p', GW_UNIX_PATH_MAX);
	assert_true(gw_nexthop_format(&h, buf, sizeof(buf)) < GW_LMTP_GATEWAY_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unix_data),    cmocka_unit_test(test_unix_bdat),
	    cmocka_unit_test(test_unix_tls),     cmocka_unit_test(test_peer_closes_midway),
	    cmocka_unit_test(test_gateway_fits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
