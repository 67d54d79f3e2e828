/*
 * test_mx.c - MX answers built byte by byte in the test and fed to
 * gw_mx_parse_answer: preferences, compression pointers, null MX, NXDOMAIN,
 * SERVFAIL, truncated and malformed packets, more answers than fit.
 *
 * No test depends on real DNS: gw_mx_lookup is only asked about names that
 * cannot exist (.invalid, bad syntax), where FOUND would be a bug.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gw/mx.h"

#define QNAME_OFF 12 /* the question name starts right after the header */

enum { T_A = 1, T_CNAME = 5, T_MX = 15, T_TXT = 16 };
enum { RC_NOERROR = 0, RC_SERVFAIL = 2, RC_NXDOMAIN = 3, RC_REFUSED = 5 };

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

static void put32(pkt *p, unsigned long v)
{
	put16(p, (unsigned)(v >> 16));
	put16(p, (unsigned)(v & 0xffff));
}

/* A name as labels; a NULL-free string ending in "@" + offset means "then a pointer to offset". */
static void put_name(pkt *p, const char *name, int ptr)
{
	while (*name != '\0') {
		const char *dot = strchr(name, '.');
		size_t l = dot != NULL ? (size_t)(dot - name) : strlen(name);
		put8(p, (unsigned)l);
		for (size_t i = 0; i < l; i++)
			put8(p, (unsigned char)name[i]);
		name += l;
		if (*name == '.')
			name++;
	}
	if (ptr >= 0)
		put16(p, 0xc000u | (unsigned)ptr);
	else
		put8(p, 0);
}

/* Header with QR set, then the question "example.com MX IN". */
static void start(pkt *p, unsigned flags_low, unsigned rcode, unsigned an)
{
	p->n = 0;
	put16(p, 0x1234);                                /* id */
	put16(p, 0x8000u | 0x0100u | flags_low | rcode); /* QR, RD, extra flags, rcode */
	put16(p, 1);                                     /* QDCOUNT */
	put16(p, an);                                    /* ANCOUNT */
	put16(p, 0);                                     /* NSCOUNT */
	put16(p, 0);                                     /* ARCOUNT */
	put_name(p, "example.com", -1);
	put16(p, T_MX);
	put16(p, 1);
}

/* One MX record owned by the question name (compressed), target as labels + optional pointer. */
static void add_mx(pkt *p, unsigned pref, const char *target, int ptr)
{
	size_t rdlen_at;

	put16(p, 0xc000u | QNAME_OFF);
	put16(p, T_MX);
	put16(p, 1);
	put32(p, 3600);
	rdlen_at = p->n;
	put16(p, 0);
	put16(p, pref);
	put_name(p, target, ptr);
	p->b[rdlen_at] = (unsigned char)((p->n - rdlen_at - 2) >> 8);
	p->b[rdlen_at + 1] = (unsigned char)((p->n - rdlen_at - 2) & 0xff);
}

static void add_rr_raw(pkt *p, unsigned type, const unsigned char *rd, size_t rdlen)
{
	put16(p, 0xc000u | QNAME_OFF);
	put16(p, type);
	put16(p, 1);
	put32(p, 3600);
	put16(p, (unsigned)rdlen);
	for (size_t i = 0; i < rdlen; i++)
		put8(p, rd[i]);
}

/* Expect res and exactly the hosts "pref host|pref host|..." */
static void check(const char *what, const pkt *p, size_t len, size_t max, gw_lookup want,
		  const char *want_list)
{
	gw_mx mx[GW_MX_MAX + 4];
	size_t n = 99, off = 0, i;
	char got[2048] = "", err[256] = "";
	gw_lookup res;

	memset(mx, 0, sizeof mx);
	res = gw_mx_parse_answer(p->b, len, mx, max, &n, err, sizeof err);
	for (i = 0; i < n && i < max; i++)
		off += (size_t)snprintf(got + off, sizeof got - off, "%s%u %s", i ? "|" : "", mx[i].pref,
					mx[i].host);
	if (res != want || strcmp(got, want_list) != 0)
		fail_msg("%s: got %d '%s' (%s), want %d '%s'", what, (int)res, got, err, (int)want,
			 want_list);
	if (res != GW_LOOKUP_FOUND && (n != 0 || err[0] == '\0'))
		fail_msg("%s: got n %zu, err '%s', want n 0 and a reason", what, n, err);
}

static void test_preferences(void **state)
{
	pkt p;

	(void)state;
	start(&p, 0, RC_NOERROR, 4);
	add_mx(&p, 20, "mx20.example.com", -1);
	add_mx(&p, 10, "mx10a.example.com", -1);
	add_mx(&p, 30, "MX30.Example.COM", -1);
	add_mx(&p, 10, "mx10b.example.com", -1);
	check("four prefs", &p, p.n, GW_MX_MAX, GW_LOOKUP_FOUND,
	      "10 mx10a.example.com|10 mx10b.example.com|20 mx20.example.com|30 mx30.example.com");

	start(&p, 0, RC_NOERROR, 1);
	add_mx(&p, 0, "mail.example.com", -1);
	check("single pref 0", &p, p.n, GW_MX_MAX, GW_LOOKUP_FOUND, "0 mail.example.com");

	start(&p, 0, RC_NOERROR, 2);
	add_mx(&p, 65535, "last.example.com", -1);
	add_mx(&p, 65535, "later.example.com", -1);
	check("max pref, stable", &p, p.n, GW_MX_MAX, GW_LOOKUP_FOUND,
	      "65535 last.example.com|65535 later.example.com");
}

static void test_compression(void **state)
{
	pkt p;
	size_t mx1_off;

	(void)state;
	start(&p, 0, RC_NOERROR, 3);
	/* "mx1" + pointer to the question name */
	add_mx(&p, 10, "mx1", QNAME_OFF);
	/* mx1.example.com sits 2+2+2+4+2+2 bytes into the first record */
	mx1_off = QNAME_OFF + 13 + 4 + 12 + 2;
	/* "backup" + pointer to "mx1.example.com" in the first record's rdata */
	add_mx(&p, 20, "backup", (int)mx1_off);
	/* the whole target is a pointer to the question name */
	add_mx(&p, 30, "", QNAME_OFF);
	check("compressed", &p, p.n, GW_MX_MAX, GW_LOOKUP_FOUND,
	      "10 mx1.example.com|20 backup.mx1.example.com|30 example.com");
}

static void test_null_mx(void **state)
{
	pkt p;

	(void)state;
	start(&p, 0, RC_NOERROR, 1);
	add_mx(&p, 0, "", -1);
	check("null MX", &p, p.n, GW_MX_MAX, GW_LOOKUP_NOTFOUND, "");

	/* RFC 7505: a null MX means no mail, whatever else is (wrongly) published with it */
	start(&p, 0, RC_NOERROR, 2);
	add_mx(&p, 10, "mx.example.com", -1);
	add_mx(&p, 0, "", -1);
	check("null MX among others", &p, p.n, GW_MX_MAX, GW_LOOKUP_NOTFOUND, "");
}

static void test_rcodes(void **state)
{
	static const struct {
		unsigned rcode;
		unsigned an;
		gw_lookup want;
	} cases[] = {
	    {RC_NXDOMAIN, 0, GW_LOOKUP_NOTFOUND}, {RC_SERVFAIL, 0, GW_LOOKUP_RETRY},
	    {RC_REFUSED, 0, GW_LOOKUP_RETRY},     {1 /* FORMERR */, 0, GW_LOOKUP_RETRY},
	    {RC_NOERROR, 0, GW_LOOKUP_NOTFOUND}, /* no MX: the caller (gw_mx_lookup) tries the address */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		pkt p;
		char what[64];
		start(&p, 0, cases[i].rcode, cases[i].an);
		snprintf(what, sizeof what, "rcode %u", cases[i].rcode);
		check(what, &p, p.n, GW_MX_MAX, cases[i].want, "");
	}
}

static void test_other_records(void **state)
{
	static const unsigned char a_rd[] = {192, 0, 2, 1};
	static const unsigned char cname_rd[] = {4, 'm', 'a', 'i', 'l', 0xc0, QNAME_OFF};
	pkt p;

	(void)state;
	/* CNAME on the way, then the MX set */
	start(&p, 0, RC_NOERROR, 2);
	add_rr_raw(&p, T_CNAME, cname_rd, sizeof cname_rd);
	add_mx(&p, 5, "mx.example.com", -1);
	check("cname + mx", &p, p.n, GW_MX_MAX, GW_LOOKUP_FOUND, "5 mx.example.com");

	/* only an A record: no MX */
	start(&p, 0, RC_NOERROR, 1);
	add_rr_raw(&p, T_A, a_rd, sizeof a_rd);
	check("only A", &p, p.n, GW_MX_MAX, GW_LOOKUP_NOTFOUND, "");
}

static void test_bad_packets(void **state)
{
	static const unsigned char short_mx[] = {0, 10};
	pkt p, q;
	size_t full;

	(void)state;
	/* TC bit: the answer is incomplete */
	start(&p, 0x0200, RC_NOERROR, 1);
	add_mx(&p, 10, "mx.example.com", -1);
	check("TC set", &p, p.n, GW_MX_MAX, GW_LOOKUP_RETRY, "");

	/* cut at every length: never FOUND with garbage, never a crash */
	start(&p, 0, RC_NOERROR, 2);
	add_mx(&p, 10, "mx1.example.com", -1);
	add_mx(&p, 20, "mx2.example.com", -1);
	full = p.n;
	for (size_t len = 0; len < full; len++) {
		char what[32];
		snprintf(what, sizeof what, "cut at %zu", len);
		check(what, &p, len, GW_MX_MAX, GW_LOOKUP_RETRY, "");
	}
	check("whole", &p, full, GW_MX_MAX, GW_LOOKUP_FOUND, "10 mx1.example.com|20 mx2.example.com");

	/* ANCOUNT says 3 but only 2 are there */
	q = p;
	q.b[7] = 3;
	check("ancount too big", &q, q.n, GW_MX_MAX, GW_LOOKUP_RETRY, "");

	/* a compression pointer to itself */
	start(&p, 0, RC_NOERROR, 1);
	add_mx(&p, 10, "", -1);
	p.n -= 1;                             /* drop the root label of the target ... */
	put16(&p, 0xc000u | (unsigned)(p.n)); /* ... and point at this very pointer */
	p.b[p.n - 6] = 0, p.b[p.n - 5] = 4;   /* rdlen = 2 + 2 */
	check("pointer loop", &p, p.n, GW_MX_MAX, GW_LOOKUP_RETRY, "");

	/* a pointer forward, past the end */
	start(&p, 0, RC_NOERROR, 1);
	add_mx(&p, 10, "mx", 0x3fff);
	check("pointer out of range", &p, p.n, GW_MX_MAX, GW_LOOKUP_RETRY, "");

	/* rdata too short for an MX */
	start(&p, 0, RC_NOERROR, 1);
	add_rr_raw(&p, T_MX, short_mx, sizeof short_mx);
	check("short rdata", &p, p.n, GW_MX_MAX, GW_LOOKUP_RETRY, "");

	/* rdlen longer than the name in it */
	start(&p, 0, RC_NOERROR, 1);
	add_mx(&p, 10, "mx.example.com", -1);
	put8(&p, 0);
	p.b[p.n - 1 - 19] += 1; /* rdlen: 2 + 16 name bytes + 1 */
	check("rdlen mismatch", &p, p.n, GW_MX_MAX, GW_LOOKUP_RETRY, "");

	/* not a response at all (QR clear) */
	start(&p, 0, RC_NOERROR, 1);
	add_mx(&p, 10, "mx.example.com", -1);
	p.b[2] &= 0x7f;
	check("QR clear", &p, p.n, GW_MX_MAX, GW_LOOKUP_RETRY, "");

	/* the answer to some other question */
	start(&p, 0, RC_NOERROR, 1);
	add_mx(&p, 10, "mx.example.com", -1);
	p.b[QNAME_OFF + 13 + 1] = T_TXT;
	check("TXT question", &p, p.n, GW_MX_MAX, GW_LOOKUP_RETRY, "");

	/* odd bytes in the only target: nothing usable */
	start(&p, 0, RC_NOERROR, 1);
	add_mx(&p, 10, "m x.example.com", -1);
	check("space in host", &p, p.n, GW_MX_MAX, GW_LOOKUP_RETRY, "");

	/* ... but next to a good one it is just skipped */
	start(&p, 0, RC_NOERROR, 2);
	add_mx(&p, 10, "m\001x.example.com", -1);
	add_mx(&p, 20, "good.example.com", -1);
	check("control byte skipped", &p, p.n, GW_MX_MAX, GW_LOOKUP_FOUND, "20 good.example.com");

	check("NULL", &p, 0, GW_MX_MAX, GW_LOOKUP_RETRY, "");
	{
		gw_mx mx[1];
		size_t n = 7;
		assert_int_equal(gw_mx_parse_answer(NULL, 100, mx, 1, &n, NULL, 0), GW_LOOKUP_RETRY);
		assert_int_equal(n, 0);
	}
}

static void test_more_than_max(void **state)
{
	pkt p;
	char want[1024];
	size_t off = 0, i;

	(void)state;
	/* 40 records, preferences falling: the lowest ones must survive, in order */
	start(&p, 0, RC_NOERROR, 40);
	for (i = 0; i < 40; i++) {
		char host[32];
		snprintf(host, sizeof host, "mx%zu.example.com", i);
		add_mx(&p, (unsigned)(100 - i), host, -1);
	}
	for (i = 0; i < 3; i++)
		off += (size_t)snprintf(want + off, sizeof want - off, "%s%zu mx%zu.example.com",
					i ? "|" : "", 61 + i, 39 - i);
	check("40 into 3", &p, p.n, 3, GW_LOOKUP_FOUND, want);

	/* equal preferences beyond max: the first ones in the answer are kept */
	start(&p, 0, RC_NOERROR, 20);
	for (i = 0; i < 20; i++) {
		char host[32];
		snprintf(host, sizeof host, "eq%zu.example.com", i);
		add_mx(&p, 10, host, -1);
	}
	off = 0;
	for (i = 0; i < GW_MX_MAX; i++)
		off += (size_t)snprintf(want + off, sizeof want - off, "%s10 eq%zu.example.com", i ? "|" : "",
					i);
	check("20 equal into GW_MX_MAX", &p, p.n, GW_MX_MAX, GW_LOOKUP_FOUND, want);
	check("into 1", &p, p.n, 1, GW_LOOKUP_FOUND, "10 eq0.example.com");
}

static void test_lookup_no_network(void **state)
{
	static const char *names[] = {"nowhere.invalid", "a.b.nowhere.invalid.", "bad..name", "", "-",
				      "sp ace.example",  "x\001.example"};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		gw_mx mx[GW_MX_MAX];
		size_t n = 99;
		char err[256] = "";
		gw_lookup res = gw_mx_lookup(names[i], mx, GW_MX_MAX, &n, err, sizeof err);
		if (res == GW_LOOKUP_FOUND || n != 0 || err[0] == '\0')
			fail_msg("'%s': got %d, n %zu, err '%s', want NOTFOUND or RETRY, n 0, a reason",
				 names[i], (int)res, n, err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_preferences),   cmocka_unit_test(test_compression),
	    cmocka_unit_test(test_null_mx),       cmocka_unit_test(test_rcodes),
	    cmocka_unit_test(test_other_records), cmocka_unit_test(test_bad_packets),
	    cmocka_unit_test(test_more_than_max), cmocka_unit_test(test_lookup_no_network),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
