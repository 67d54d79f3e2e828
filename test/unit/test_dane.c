/*
 * test_dane.c - DANE in libgw: TLSA answers built byte by byte and fed to
 * gw_tlsa_parse_answer (usable and unusable records per RFC 7672, digest
 * lengths, NXDOMAIN, NODATA, SERVFAIL, truncated and malformed packets), and
 * the client engine's GW_TLS_DANE against the fake peer, whose certificate
 * the test hashes itself: a matching DANE-EE record lets the session up
 * whatever the name, a wrong one or none do not. (DANE-TA with a real chain
 * and its name check is in test/sh/lmtpd_dane.sh: the fake peer's
 * certificate is self-signed.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fakepeer.h"
#include "gw/client.h"
#include "gw/dane.h"

enum { T_CNAME = 5, T_TLSA = 52, T_RRSIG = 46, T_MX = 15 };

typedef struct pkt {
	unsigned char b[8192];
	size_t n;
} pkt;

static void put8(pkt *p, unsigned v)
{
	assert_true(p->n < sizeof p->b);
	p->b[p->n++] = (unsigned char)v;
}

static void put16(pkt *p, unsigned v)
{
	put8(p, v >> 8);
	put8(p, v & 0xff);
}

/* Header (QR, RD, RA, flags3 extra bits, rcode), question "_25._tcp.mx.test TLSA" (or qtype). */
static void start(pkt *p, unsigned flags3, unsigned rcode, unsigned an, unsigned qtype)
{
	static const char *labels[] = {"_25", "_tcp", "mx", "test"};
	size_t i;

	p->n = 0;
	put16(p, 0x1234);
	put8(p, 0x81);
	put8(p, 0x80 | flags3 | rcode);
	put16(p, 1);
	put16(p, an);
	put16(p, 0);
	put16(p, 0);
	for (i = 0; i < 4; i++) {
		put8(p, (unsigned)strlen(labels[i]));
		for (const char *c = labels[i]; *c; c++)
			put8(p, (unsigned char)*c);
	}
	put8(p, 0);
	put16(p, qtype);
	put16(p, 1);
}

/* A record owned by the question name: type, rdata. */
static void rr(pkt *p, unsigned type, const unsigned char *rd, size_t rdlen)
{
	put16(p, 0xc00c);
	put16(p, type);
	put16(p, 1);
	put16(p, 0);
	put16(p, 60);
	put16(p, (unsigned)rdlen);
	for (size_t i = 0; i < rdlen; i++)
		put8(p, rd[i]);
}

static void tlsa(pkt *p, unsigned usage, unsigned sel, unsigned mtype, size_t len, unsigned char fill)
{
	unsigned char rd[3 + 4096];

	assert_true(len <= 4096);
	rd[0] = (unsigned char)usage;
	rd[1] = (unsigned char)sel;
	rd[2] = (unsigned char)mtype;
	memset(rd + 3, fill, len);
	rr(p, T_TLSA, rd, 3 + len);
}

static gw_lookup parse(const pkt *p, gw_tlsa *t, size_t max, size_t *n, size_t *seen, char *err)
{
	return gw_tlsa_parse_answer(p->b, p->n, t, max, n, seen, err, 256);
}

/* Which records are usable (RFC 7672 3.1): table of usage, selector, matching type, length. */
static void test_usable_records(void **state)
{
	static const struct {
		unsigned usage, sel, mtype;
		size_t len;
		int usable;
	} cases[] = {
	    {3, 1, 1, 32, 1},   {3, 0, 1, 32, 1}, {2, 0, 1, 32, 1},
	    {2, 1, 2, 64, 1},   {3, 1, 0, 91, 1}, {3, 0, 0, 1200, 1},
	    {0, 0, 1, 32, 0},   {1, 1, 1, 32, 0}, {4, 1, 1, 32, 0},
	    {255, 1, 1, 32, 0}, {3, 2, 1, 32, 0}, {3, 1, 3, 32, 0},
	    {3, 1, 1, 31, 0},   {3, 1, 1, 33, 0}, {3, 1, 2, 32, 0},
	    {2, 0, 2, 63, 0},   {3, 1, 0, 0, 0},  {3, 0, 0, GW_TLSA_DATA_MAX + 1, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		pkt p;
		gw_tlsa t[2];
		size_t n = 9, seen = 9;
		char err[256];
		gw_lookup got;

		start(&p, 0, 0, 1, T_TLSA);
		tlsa(&p, cases[i].usage, cases[i].sel, cases[i].mtype, cases[i].len, 0xab);
		got = parse(&p, t, 2, &n, &seen, err);
		if (got != GW_LOOKUP_FOUND || seen != 1 || n != (size_t)cases[i].usable)
			fail_msg(
			    "case %zu (%u %u %u, %zu bytes): got %d n=%zu seen=%zu (%s), want FOUND n=%d", i,
			    cases[i].usage, cases[i].sel, cases[i].mtype, cases[i].len, (int)got, n, seen,
			    err, cases[i].usable);
		if (cases[i].usable) {
			assert_int_equal(t[0].usage, cases[i].usage);
			assert_int_equal(t[0].selector, cases[i].sel);
			assert_int_equal(t[0].mtype, cases[i].mtype);
			assert_int_equal(t[0].len, cases[i].len);
			assert_int_equal(t[0].data[0], 0xab);
			assert_int_equal(t[0].data[cases[i].len - 1], 0xab);
		} else {
			assert_non_null(strstr(err, "no usable TLSA"));
		}
	}
}

/* A mixed answer: signatures and CNAMEs skipped, unusable records counted, at most max kept. */
static void test_mixed_answer(void **state)
{
	static const unsigned char sig[20] = {0, T_TLSA, 13, 2};
	static const unsigned char cname[] = {2, 'm', 'x', 0};
	pkt p;
	gw_tlsa t[2];
	size_t n, seen;
	char err[256];

	(void)state;
	start(&p, 0x20, 0, 7, T_TLSA);
	rr(&p, T_CNAME, cname, sizeof cname);
	tlsa(&p, 1, 0, 1, 32, 1); /* PKIX-EE */
	tlsa(&p, 3, 1, 1, 32, 2);
	rr(&p, T_RRSIG, sig, sizeof sig);
	tlsa(&p, 2, 0, 2, 64, 3);
	tlsa(&p, 3, 0, 1, 32, 4); /* a third usable one: no room */
	tlsa(&p, 0, 0, 0, 10, 5); /* PKIX-TA */
	assert_int_equal(parse(&p, t, 2, &n, &seen, err), GW_LOOKUP_FOUND);
	assert_int_equal(seen, 5);
	assert_int_equal(n, 2);
	assert_int_equal(t[0].usage, 3);
	assert_int_equal(t[0].data[0], 2);
	assert_int_equal(t[1].usage, 2);
	assert_int_equal(t[1].mtype, 2);
	assert_int_equal(t[1].data[63], 3);
}

/* Three outcomes: no TLSA is NOTFOUND; anything that is not a clean answer is RETRY. */
static void test_outcomes(void **state)
{
	pkt p;
	gw_tlsa t[2];
	size_t n = 9, seen = 9;
	char err[256];

	(void)state;
	start(&p, 0, 3, 0, T_TLSA); /* NXDOMAIN */
	assert_int_equal(parse(&p, t, 2, &n, &seen, err), GW_LOOKUP_NOTFOUND);
	assert_int_equal(n, 0);
	start(&p, 0, 0, 0, T_TLSA); /* NODATA */
	assert_int_equal(parse(&p, t, 2, &n, &seen, err), GW_LOOKUP_NOTFOUND);
	assert_int_equal(seen, 0);
	start(&p, 0, 2, 0, T_TLSA); /* SERVFAIL: bogus data at a validating resolver */
	assert_int_equal(parse(&p, t, 2, &n, &seen, err), GW_LOOKUP_RETRY);
	start(&p, 0, 5, 0, T_TLSA); /* REFUSED */
	assert_int_equal(parse(&p, t, 2, &n, &seen, err), GW_LOOKUP_RETRY);
	start(&p, 0x02, 0, 1, T_TLSA); /* TC */
	tlsa(&p, 3, 1, 1, 32, 1);
	assert_int_equal(parse(&p, t, 2, &n, &seen, err), GW_LOOKUP_RETRY);
	start(&p, 0, 0, 1, T_MX); /* the answer to another question */
	tlsa(&p, 3, 1, 1, 32, 1);
	assert_int_equal(parse(&p, t, 2, &n, &seen, err), GW_LOOKUP_RETRY);
	start(&p, 0, 0, 1, T_TLSA); /* rdata shorter than usage, selector, type */
	{
		static const unsigned char rd[2] = {3, 1};
		rr(&p, T_TLSA, rd, 2);
	}
	assert_int_equal(parse(&p, t, 2, &n, &seen, err), GW_LOOKUP_FOUND);
	assert_int_equal(n, 0);
	start(&p, 0, 0, 2, T_TLSA); /* the second record runs past the end */
	tlsa(&p, 3, 1, 1, 32, 1);
	tlsa(&p, 3, 1, 1, 32, 1);
	p.n -= 10;
	assert_int_equal(parse(&p, t, 2, &n, &seen, err), GW_LOOKUP_RETRY);
	assert_int_equal(gw_tlsa_parse_answer(NULL, 0, t, 2, &n, &seen, err, sizeof err), GW_LOOKUP_RETRY);
	assert_int_equal(gw_tlsa_parse_answer(p.b, 6, t, 2, &n, &seen, err, sizeof err), GW_LOOKUP_RETRY);
	/* Every prefix of a good answer: never a crash, never FOUND with records past the cut. */
	start(&p, 0, 0, 1, T_TLSA);
	tlsa(&p, 3, 1, 1, 32, 1);
	for (size_t cut = 0; cut < p.n; cut++)
		assert_int_not_equal(gw_tlsa_parse_answer(p.b, cut, t, 2, &n, &seen, err, sizeof err),
				     GW_LOOKUP_FOUND);
}

/* ---- the client engine under GW_TLS_DANE ----------------------------------------------- */

#define HELO     "client.test"
#define GREET    "send 220 fake.test ESMTP\n"
#define EHLO_TLS "expect EHLO " HELO "\nsend 250-fake.test\nsend 250 STARTTLS\n"

/* SHA-256 of the peer certificate's SubjectPublicKeyInfo (selector 1) or whole DER (selector 0). */
static void cert_digest(const char *pem, int selector, unsigned char out[32])
{
	FILE *f = fopen(pem, "r");
	X509 *x;
	unsigned char *der = NULL;
	int len;
	unsigned int olen = 0;

	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	len = selector == 1 ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der) : i2d_X509(x, &der);
	assert_true(len > 0);
	assert_int_equal(EVP_Digest(der, (size_t)len, out, &olen, EVP_sha256(), NULL), 1);
	assert_int_equal(olen, 32);
	OPENSSL_free(der);
	X509_free(x);
}

static fp_peer *peer(const char *script)
{
	fp_opts o;
	char err[256] = "";
	fp_peer *p;

	memset(&o, 0, sizeof(o));
	o.script = script;
	o.timeout_ms = 3000;
	p = fp_start_opts(&o, err, sizeof(err));
	if (p == NULL)
		fail_msg("fp_start: %s", err);
	return p;
}

/*
 * Open a GW_TLS_DANE session to a fresh peer with one TLSA record
 * (usage/selector 3 1 or 2 0 over the peer's own certificate, spoiled when
 * wrong) under servername. Returns the status; *err_r gets the error.
 */
static gw_status dane_open(unsigned usage, unsigned selector, int wrong, const char *servername, size_t ntlsa,
			   char *err_r, size_t errlen)
{
	fp_peer *p =
	    peer(GREET EHLO_TLS "expect STARTTLS\nsend 220 2.0.0 go ahead\nstarttls\n"
				"expect EHLO " HELO "\nsend 250 fake.test\nexpect QUIT\nsend 221 bye\n");
	gw_client_opts o;
	gw_client *c;
	gw_nexthop h;
	gw_tlsa t;
	gw_status s;

	memset(&o, 0, sizeof(o));
	o.helo_name = HELO;
	o.connect_timeout_ms = 2000;
	o.reply_timeout_ms = 2000;
	o.deadline_ms = 10000;
	o.tls = GW_TLS_DANE;
	o.tls_servername = servername;
	memset(&t, 0, sizeof(t));
	t.usage = (uint8_t)usage;
	t.selector = (uint8_t)selector;
	t.mtype = 1;
	t.len = 32;
	cert_digest(fp_cert_file(p), (int)selector, t.data);
	if (wrong)
		t.data[7] ^= 0x40;
	c = gw_client_new(&o);
	assert_non_null(c);
	assert_int_equal(gw_client_set_tls(c, GW_TLS_DANE, &t, ntlsa), 0);
	memset(&h, 0, sizeof(h));
	h.kind = GW_HOP_INET;
	h.literal = 1;
	h.port = fp_port(p);
	snprintf(h.host, sizeof(h.host), "127.0.0.1");
	s = gw_client_open(c, &h, NULL);
	snprintf(err_r, errlen, "%s", gw_client_error(c));
	if (getenv("TEST_DANE_VERBOSE") != NULL)
		fprintf(stderr, "dane_open %u %u wrong=%d name=%s n=%zu: %s\n", usage, selector, wrong,
			servername ? servername : "-", ntlsa, err_r);
	if (s == GW_OK) {
		assert_true(gw_client_tls_active(c));
		assert_int_equal(gw_client_quit(c), GW_OK);
	} else {
		assert_false(gw_client_is_open(c));
		assert_int_equal(gw_client_stage(c), GW_STAGE_STARTTLS);
	}
	gw_client_free(&c);
	(void)fp_wait(p, 6000);
	fp_stop(&p);
	return s;
}

static void test_dane_ee(void **state)
{
	char err[256];

	(void)state;
	/* DANE-EE: the server's own key matches; its name (localhost) and our name differ: no matter. */
	assert_int_equal(dane_open(3, 1, 0, "mx.example.test", 1, err, sizeof err), GW_OK);
	assert_int_equal(dane_open(3, 0, 0, "mx.example.test", 1, err, sizeof err), GW_OK);
	/* One bit off: refused, and the error says why. */
	assert_int_equal(dane_open(3, 1, 1, "mx.example.test", 1, err, sizeof err), GW_E_TLS);
	assert_non_null(strstr(err, "TLSA"));
	/* DANE without records is no session at all (never a silent downgrade). */
	assert_int_equal(dane_open(3, 1, 0, "mx.example.test", 0, err, sizeof err), GW_E_TLS);
	assert_non_null(strstr(err, "TLSA"));
	/* DANE needs a name: an IP address is not a TLSA base domain. */
	assert_int_equal(dane_open(3, 1, 0, NULL, 1, err, sizeof err), GW_E_TLS);
}

/* DANE-TA matching only the leaf itself is not a trust anchor (OpenSSL, like Postfix, wants an issuer). */
static void test_dane_ta_leaf(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(dane_open(2, 0, 0, "localhost", 1, err, sizeof err), GW_E_TLS);
	assert_non_null(strstr(err, "TLSA"));
}

/* Changing the terms closes a session set up under the old ones; the same terms keep it. */
static void test_set_tls(void **state)
{
	fp_peer *p = peer(GREET EHLO_TLS "expect QUIT\nsend 221 bye\n");
	gw_client_opts o;
	gw_client *c;
	gw_nexthop h;
	gw_tlsa t;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.helo_name = HELO;
	o.connect_timeout_ms = 2000;
	o.reply_timeout_ms = 2000;
	o.tls = GW_TLS_NONE;
	c = gw_client_new(&o);
	assert_non_null(c);
	memset(&h, 0, sizeof(h));
	h.kind = GW_HOP_INET;
	h.literal = 1;
	h.port = fp_port(p);
	snprintf(h.host, sizeof(h.host), "127.0.0.1");
	assert_int_equal(gw_client_open(c, &h, NULL), GW_OK);
	assert_int_equal(gw_client_set_tls(c, GW_TLS_NONE, NULL, 0), 0);
	assert_true(gw_client_is_open(c));
	memset(&t, 0, sizeof(t));
	t.usage = 3;
	t.selector = 1;
	t.mtype = 1;
	t.len = 32;
	assert_int_equal(gw_client_set_tls(c, GW_TLS_DANE, &t, 1), 0);
	assert_false(gw_client_is_open(c));
	gw_client_free(&c);
	(void)fp_wait(p, 6000);
	fp_stop(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_usable_records), cmocka_unit_test(test_mixed_answer),
	    cmocka_unit_test(test_outcomes),       cmocka_unit_test(test_dane_ee),
	    cmocka_unit_test(test_dane_ta_leaf),   cmocka_unit_test(test_set_tls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
