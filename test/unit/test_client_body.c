/*
 * test_client_body.c - the body on the wire, DATA and BDAT: long lines
 * broken as Postfix's smtp_line_length_limit does (998 octets, then CRLF
 * SPACE), lines of exactly 998 and 999 octets, a 5,000-octet line, a dot at
 * the start of a line and of a continuation, CRLF split across read chunks,
 * and a NUL byte, which is never sent: the transaction is dropped and every
 * recipient fails permanently (5.6.0), at one gateway only. The encoder
 * (client_enc.c) table-driven and fed one byte at a time; the library
 * against the fake peer's exact byte record.
 *
 * Does not test: real servers (test/sh/lmtp_dovecot.sh).
 */
#include "lmtp_test.h"

#include "client_enc.h"
#include "gw/buf.h"

#define LHLO_PIPE                                                                                            \
	"expect LHLO " HELO "\nsend 250-fake.test\\r\\n250-PIPELINING\\r\\n250 ENHANCEDSTATUSCODES\n"
#define LHLO_CHUNKING "expect LHLO " HELO "\nsend 250-fake.test\\r\\n250-PIPELINING\\r\\n250 CHUNKING\n"
#define ENV                                                                                                  \
	"LHLO " HELO "\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nRCPT "                     \
	"TO:<b@example.com>\r\n"
#define ENV_OK "expect MAIL\nexpect RCPT\nexpect RCPT\nsend 250 ok\\r\\n250 ok\\r\\n250 ok\n"

static char *repeat(gw_buf *b, char ch, size_t n)
{
	while (n-- > 0)
		assert_int_equal(gw_buf_putc(b, ch), 0);
	return b->data;
}

/* The message and its wire form (without the final dot). */
static void long_lines(gw_buf *in, gw_buf *wire)
{
	size_t k;

	gw_buf_puts(in, "Subject: long\r\n\r\n");
	gw_buf_puts(wire, "Subject: long\r\n\r\n");
	/* exactly 998: as it is */
	repeat(in, 'a', 998), gw_buf_puts(in, "\r\n");
	repeat(wire, 'a', 998), gw_buf_puts(wire, "\r\n");
	/* 999: one break */
	repeat(in, 'b', 999), gw_buf_puts(in, "\n");
	repeat(wire, 'b', 998), gw_buf_puts(wire, "\r\n b\r\n");
	/* 5,000: 998, then 997 after each inserted space, 4 times, then the last 14 */
	repeat(in, 'c', 5000), gw_buf_puts(in, "\r\n");
	repeat(wire, 'c', 998);
	for (k = 0; k < 4; k++)
		gw_buf_puts(wire, "\r\n "), repeat(wire, 'c', 997);
	gw_buf_puts(wire, "\r\n "), repeat(wire, 'c', 14), gw_buf_puts(wire, "\r\n");
	/* 998 with a leading dot: the stuffed dot does not count (RFC 5321 4.5.3.1.6) */
	gw_buf_puts(in, "."), repeat(in, 'd', 997), gw_buf_puts(in, "\r\n");
	gw_buf_puts(wire, ".."), repeat(wire, 'd', 997), gw_buf_puts(wire, "\r\n");
	/* a continuation that starts with a dot: after the space, nothing to stuff */
	repeat(in, 'e', 998), gw_buf_puts(in, ".tail\r\n");
	repeat(wire, 'e', 998), gw_buf_puts(wire, "\r\n .tail\r\n");
	/* a bare CR and a last line without its end */
	gw_buf_puts(in, "x\ry\r\nend");
	gw_buf_puts(wire, "x\r\ny\r\nend\r\n");
}

/* ---- the encoder alone --------------------------------------------------------- */

/* Encode in, split into pieces of at most step bytes (0: whole). */
static void encode(const char *in, size_t n, int dot, size_t step, gw_buf *out)
{
	char *buf = malloc(CL_ENC_ROOM(n) + 2);
	size_t off = 0, len = 0;
	cl_enc e;

	assert_non_null(buf);
	cl_enc_init(&e, dot);
	while (off < n) {
		size_t k = step == 0 || n - off < step ? n - off : step;
		ssize_t w = cl_enc_run(&e, in + off, k, buf + len, NULL);

		assert_true(w >= 0);
		len += (size_t)w;
		off += k;
	}
	len += cl_enc_finish(&e, buf + len);
	gw_buf_reset(out);
	assert_int_equal(gw_buf_append(out, buf, len), 0);
	free(buf);
}

static void expect_bytes(const char *what, const gw_buf *got, const char *want, size_t wlen)
{
	size_t k;

	for (k = 0; k < got->len && k < wlen && got->data[k] == want[k]; k++)
		;
	if (k != wlen || got->len != wlen)
		fail_msg("%s: differs at offset %zu (got %zu bytes, want %zu)", what, k, got->len, wlen);
}

static void test_encoder_table(void **state)
{
	static const struct {
		const char *in, *data, *bdat;
	} cases[] = {
	    {"", "", ""},
	    {"a", "a\r\n", "a\r\n"},
	    {"a\nb\n", "a\r\nb\r\n", "a\r\nb\r\n"},
	    {"a\r\nb", "a\r\nb\r\n", "a\r\nb\r\n"},
	    {"a\rb\r", "a\r\nb\r\n", "a\r\nb\r\n"},
	    {"\r\r\n", "\r\n\r\n", "\r\n\r\n"},
	    {".\n..\nx.\n", "..\r\n...\r\nx.\r\n", ".\r\n..\r\nx.\r\n"},
	    {"\n.", "\r\n..\r\n", "\r\n.\r\n"},
	};
	static const size_t steps[] = {0, 1, 2, 3};
	gw_buf out;
	size_t i, j;

	(void)state;
	gw_buf_init(&out, 1 << 20);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (j = 0; j < sizeof(steps) / sizeof(steps[0]); j++) {
			char what[64];

			snprintf(what, sizeof(what), "case %zu step %zu data", i, steps[j]);
			encode(cases[i].in, strlen(cases[i].in), 1, steps[j], &out);
			expect_bytes(what, &out, cases[i].data, strlen(cases[i].data));
			snprintf(what, sizeof(what), "case %zu step %zu bdat", i, steps[j]);
			encode(cases[i].in, strlen(cases[i].in), 0, steps[j], &out);
			expect_bytes(what, &out, cases[i].bdat, strlen(cases[i].bdat));
		}
	}
	gw_buf_free(&out);
}

/* The long lines whole, one byte at a time and in 7-byte pieces (CRLF split anywhere). */
static void test_encoder_long_lines(void **state)
{
	static const size_t steps[] = {0, 1, 7, 999};
	gw_buf in, wire, out;
	size_t j;

	(void)state;
	gw_buf_init(&in, 1 << 20);
	gw_buf_init(&wire, 1 << 20);
	gw_buf_init(&out, 1 << 20);
	long_lines(&in, &wire);
	for (j = 0; j < sizeof(steps) / sizeof(steps[0]); j++) {
		char what[64];

		snprintf(what, sizeof(what), "long lines step %zu", steps[j]);
		encode(in.data, in.len, 1, steps[j], &out);
		expect_bytes(what, &out, wire.data, wire.len);
	}
	gw_buf_free(&in);
	gw_buf_free(&wire);
	gw_buf_free(&out);
}

static void test_encoder_nul(void **state)
{
	char out[CL_ENC_ROOM(16)];
	unsigned long long at = 0;
	cl_enc e;

	(void)state;
	cl_enc_init(&e, 1);
	assert_int_equal(cl_enc_run(&e, "abc\n", 4, out, &at), 5);
	assert_int_equal(cl_enc_run(&e, "de\0f", 4, out, &at), -1);
	assert_int_equal(at, 6);
}

/* ---- through the library, against the fake peer's record ----------------------- */

/* A body read in pieces of at most step bytes. */
typedef struct pieces {
	const char *data;
	size_t len, off, step;
} pieces;

static ssize_t pieces_read(void *ctx, char *buf, size_t len)
{
	pieces *p = ctx;
	size_t n = p->len - p->off;

	if (n > p->step)
		n = p->step;
	if (n > len)
		n = len;
	memcpy(buf, p->data + p->off, n);
	p->off += n;
	return (ssize_t)n;
}

static const char *const two[] = {"a@example.com", "b@example.com", NULL};

typedef struct run_args {
	const char *script;
	const char *body;
	size_t body_len, step, bdat_chunk;
	gw_lmtp_result res[2];
	gw_status status;
} run_args;

static fp_peer *deliver(run_args *r)
{
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp_rcpt rcpts[2] = {{.addr = two[0]}, {.addr = two[1]}};
	pieces pc = {r->body, r->body_len, 0, r->step};
	gw_lmtp_body body;
	gw_lmtp_txn txn;
	gw_nexthop h;
	gw_lmtp *l;
	fp_peer *p = start(r->script);

	o.bdat_chunk = r->bdat_chunk;
	l = new_lmtp(&o);
	gw_lmtp_body_callback(&body, pieces_read, NULL, &pc, (long long)r->body_len);
	memset(&txn, 0, sizeof(txn));
	txn.sender = "s@example.com";
	txn.rcpts = rcpts;
	txn.nrcpts = 2;
	txn.body = &body;
	hop_port(&h, fp_port(p));
	r->status = gw_lmtp_send(l, &h, &txn, r->res);
	gw_lmtp_free(&l);
	peer_done(p);
	return p;
}

static void test_data_long_lines(void **state)
{
	static const size_t steps[] = {1, 7, 65536};
	gw_buf in, wire, want;
	size_t j;

	(void)state;
	gw_buf_init(&in, 1 << 20);
	gw_buf_init(&wire, 1 << 20);
	gw_buf_init(&want, 1 << 20);
	long_lines(&in, &wire);
	gw_buf_printf(&want, ENV "DATA\r\n%s.\r\nQUIT\r\n", gw_buf_cstr(&wire));
	for (j = 0; j < sizeof(steps) / sizeof(steps[0]); j++) {
		run_args r = {GREET LHLO_PIPE "expect MAIL\nexpect RCPT\nexpect RCPT\nexpect DATA\n"
					      "send 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\ndata\n"
					      "send 250 2.0.0 a\\r\\n250 2.0.0 b\n" QUIT_OK,
			      in.data,
			      in.len,
			      steps[j],
			      0,
			      {{0}},
			      GW_OK};
		fp_peer *p = deliver(&r);

		assert_int_equal(r.status, GW_OK);
		check_result(&r.res[0], "a", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
		check_result(&r.res[1], "b", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
		check_received(p, 0, gw_buf_cstr(&want));
		fp_stop(&p);
	}
	gw_buf_free(&in);
	gw_buf_free(&wire);
	gw_buf_free(&want);
}

static void test_bdat_long_lines(void **state)
{
	gw_buf in, wire, want, script;
	size_t k, lines = 0;
	fp_peer *p;
	run_args r;

	(void)state;
	gw_buf_init(&in, 1 << 20);
	gw_buf_init(&wire, 1 << 20);
	gw_buf_init(&want, 1 << 20);
	gw_buf_init(&script, 1 << 20);
	long_lines(&in, &wire);
	/* BDAT: the same line breaks, no dot-stuffing. */
	for (k = 0; k + 2 < wire.len; k++) {
		if (wire.data[k] == '\n' && wire.data[k + 1] == '.' && wire.data[k + 2] == '.') {
			memmove(wire.data + k + 1, wire.data + k + 2, wire.len - k - 2);
			wire.len--;
			wire.data[wire.len] = '\0';
		}
	}
	for (k = 0; k < wire.len; k++)
		lines += wire.data[k] == '\n';
	gw_buf_printf(&want, ENV "BDAT %zu LAST\r\n%sQUIT\r\n", wire.len, gw_buf_cstr(&wire));
	gw_buf_printf(&script, GREET LHLO_CHUNKING ENV_OK "expect BDAT %zu LAST\n", wire.len);
	for (k = 0; k < lines; k++)
		gw_buf_puts(&script, "expect\n");
	gw_buf_puts(&script, "send 250 2.0.0 a\\r\\n250 2.0.0 b\n" QUIT_OK);
	memset(&r, 0, sizeof(r));
	r.script = script.data;
	r.body = in.data;
	r.body_len = in.len;
	r.step = 7;
	p = deliver(&r);
	assert_int_equal(r.status, GW_OK);
	check_result(&r.res[1], "b", GW_LMTP_DELIVERED, GW_LMTP_STAGE_DATA, 250, "2.0.0");
	check_received(p, 0, gw_buf_cstr(&want));
	fp_stop(&p);
	gw_buf_free(&in);
	gw_buf_free(&wire);
	gw_buf_free(&want);
	gw_buf_free(&script);
}

/* No NUL in what the peer got, and no end of message. */
static void check_no_nul(fp_peer *p, const char *want)
{
	size_t len = 0;
	const char *got = fp_received(p, 0, &len);

	assert_non_null(got);
	assert_null(memchr(got, '\0', len));
	check_received(p, 0, want);
}

static void check_refused(const run_args *r, const char *offset)
{
	char want[64];
	size_t k;

	snprintf(want, sizeof(want), "NUL byte at offset %s", offset);
	assert_int_equal(r->status, GW_E_CONTENT);
	for (k = 0; k < 2; k++) {
		check_result(&r->res[k], "NUL", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_DATA, 554, "5.6.0");
		assert_int_equal(r->res[k].local, 1);
		if (strstr(r->res[k].text, want) == NULL)
			fail_msg("text got \"%s\", want \"%s\" in it", r->res[k].text, want);
	}
}

static void test_data_nul(void **state)
{
	run_args r = {GREET LHLO_PIPE "expect MAIL\nexpect RCPT\nexpect RCPT\nexpect DATA\n"
				      "send 250 ok\\r\\n250 ok\\r\\n250 ok\\r\\n354 go\n",
		      "Subject: x\n\nab\0cd\n.\n",
		      19,
		      4,
		      0,
		      {{0}},
		      GW_OK};
	fp_peer *p;

	(void)state;
	p = deliver(&r);
	check_refused(&r, "14");
	/* The pieces before the NUL were held back: the server saw DATA and then the connection close. */
	check_no_nul(p, ENV "DATA\r\n");
	fp_stop(&p);
}

/* BDAT with 8-byte chunks: the chunks before the NUL went out, the one with it never did. */
static void test_bdat_nul(void **state)
{
	run_args r = {GREET LHLO_CHUNKING ENV_OK "expect BDAT 8\nexpect abcdef\nsend 250 2.0.0 ok 8\n",
		      "abcdef\r\ngh\0ij\n",
		      15,
		      64,
		      8,
		      {{0}},
		      GW_OK};
	fp_peer *p;

	(void)state;
	p = deliver(&r);
	check_refused(&r, "10");
	check_no_nul(p, ENV "BDAT 8\r\nabcdef\r\n");
	fp_stop(&p);
}

/* A refused message is final: the next gateway is not tried. */
static void test_nul_not_retried(void **state)
{
	gw_lmtp_opts o = lmtp_opts(GW_PROTO_LMTP);
	gw_lmtp_rcpt rcpt = {.addr = "a@example.com"};
	fp_peer *p1 = start(GREET LHLO_PIPE "expect MAIL\nexpect RCPT\nexpect DATA\n"
					    "send 250 ok\\r\\n250 ok\\r\\n354 go\n");
	fp_peer *p2 = start("# never used\n");
	gw_lmtp *l = new_lmtp(&o);
	gw_nexthop h[2];
	gw_lmtp_result res;
	gw_lmtp_body body;
	gw_lmtp_txn txn;

	(void)state;
	gw_lmtp_body_memory(&body, "x\0y\n", 4);
	memset(&txn, 0, sizeof(txn));
	txn.sender = "s@example.com";
	txn.rcpts = &rcpt;
	txn.nrcpts = 1;
	txn.body = &body;
	hop_port(&h[0], fp_port(p1));
	hop_port(&h[1], fp_port(p2));
	gw_lmtp_send_fallback(l, h, 2, &txn, &res);
	check_result(&res, "a", GW_LMTP_PERMFAIL, GW_LMTP_STAGE_DATA, 554, "5.6.0");
	assert_int_equal(res.attempts, 1);
	assert_int_equal(fp_connections(p2), 0);
	gw_lmtp_free(&l);
	peer_done(p1);
	fp_stop(&p1);
	fp_stop(&p2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encoder_table),   cmocka_unit_test(test_encoder_long_lines),
	    cmocka_unit_test(test_encoder_nul),     cmocka_unit_test(test_data_long_lines),
	    cmocka_unit_test(test_bdat_long_lines), cmocka_unit_test(test_data_nul),
	    cmocka_unit_test(test_bdat_nul),        cmocka_unit_test(test_nul_not_retried),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
