/*
 * test_route.c - route files: parsing (Postfix transport syntax, continuation
 * lines, errors with file:line), lookup order, loop detection, expansion.
 *
 * No test depends on real DNS: MX expansion is only tried for names under
 * .invalid, whose answer may be NOTFOUND or RETRY but never FOUND.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/route.h"

static gw_routes *load_sample(void)
{
	const char *dir = getenv("GW_TEST_DATA");
	char path[1024], err[256];
	gw_routes *r;

	snprintf(path, sizeof path, "%s/routes.txt", dir != NULL ? dir : "test/data");
	r = gw_routes_load(path, err, sizeof err);
	if (r == NULL)
		fail_msg("gw_routes_load(%s): %s", path, err);
	return r;
}

static gw_routes *parse_str(const char *text)
{
	char err[256];
	gw_routes *r = gw_routes_parse(text, strlen(text), "t", err, sizeof err);

	if (r == NULL)
		fail_msg("parse %s: got error %s, want success", text, err);
	return r;
}

static void test_sample_file(void **state)
{
	static const struct {
		const char *domain;
		const char *key; /* NULL: no route */
		const char *transport;
		int has_proto;
		gw_proto proto;
		size_t nhops;
		int kind0; /* hop 0: GW_HOP_INET or GW_HOP_UNIX */
		int literal0;
		const char *where0; /* host or path of hop 0 */
		unsigned port0;
		const char *text; /* nexthop_text */
		unsigned line;
	} cases[] = {
	    {"example.com", "example.com", "smtp", 1, GW_PROTO_SMTP, 1, GW_HOP_INET, 1, "10.0.0.5", 25,
	     "[10.0.0.5]:25", 4},
	    {"EXAMPLE.com.", "example.com", "smtp", 1, GW_PROTO_SMTP, 1, GW_HOP_INET, 1, "10.0.0.5", 25,
	     "[10.0.0.5]:25", 4},
	    {"A.B.Example.COM.", ".example.com", "smtp", 1, GW_PROTO_SMTP, 2, GW_HOP_INET, 1, "10.0.0.5", 25,
	     "[10.0.0.5]:25, [10.0.0.6]:25", 5},
	    {"bounce.example.com", "bounce.example.com", "error", 0, GW_PROTO_SMTP, 0, 0, 0, NULL, 0,
	     "5.1.1 no such user", 19},
	    {"lists.example.org", "lists.example.org", "lmtp", 1, GW_PROTO_LMTP, 1, GW_HOP_UNIX, 0,
	     "/run/lmtp", 0, "unix:/run/lmtp", 6},
	    {"example.net", "example.net", "smtp", 1, GW_PROTO_SMTP, 1, GW_HOP_INET, 0, "mx.example.net", 0,
	     "mx.example.net", 7},
	    /* "smtp:" with no next hop: the domain itself, by MX */
	    {"example.org", "example.org", "smtp", 1, GW_PROTO_SMTP, 1, GW_HOP_INET, 0, "example.org", 0, "",
	     8},
	    {"x.sub.example.org", ".sub.example.org", "relay", 1, GW_PROTO_SMTP, 1, GW_HOP_INET, 0,
	     "sub.example.org", 0, "", 9},
	    {"upper.example", "upper.example", "relay", 1, GW_PROTO_SMTP, 1, GW_HOP_INET, 1, "relay.internal",
	     0, "[relay.internal]", 10},
	    {"lmtp.example", "lmtp.example", "lmtp", 1, GW_PROTO_LMTP, 1, GW_HOP_INET, 0, "lmtp.internal", 24,
	     "inet:lmtp.internal:24", 11},
	    {"lmtp4.example", "lmtp4.example", "lmtp", 1, GW_PROTO_LMTP, 1, GW_HOP_INET, 1, "127.0.0.1", 24,
	     "[127.0.0.1]:24", 12},
	    {"v6.example", "v6.example", "smtp", 1, GW_PROTO_SMTP, 1, GW_HOP_INET, 1, "2001:db8::25", 2525,
	     "[IPv6:2001:db8::25]:2525", 13},
	    {"multi.example", "multi.example", "smtp", 1, GW_PROTO_SMTP, 3, GW_HOP_INET, 1, "10.0.0.1", 25,
	     "[10.0.0.1]:25, [10.0.0.2]:25 [10.0.0.3]", 15},
	    {"discard.example", "discard.example", "discard", 0, GW_PROTO_SMTP, 0, 0, 0, NULL, 0, "", 20},
	    {"local.example", "local.example", "local", 0, GW_PROTO_SMTP, 0, 0, 0, NULL, 0, "", 21},
	    {"elsewhere.test", "*", "smtp", 1, GW_PROTO_SMTP, 1, GW_HOP_INET, 1, "10.0.0.9", 0, "[10.0.0.9]",
	     22},
	    /* "example.com" is exact only: its subdomains take ".example.com" */
	    {"mail.example.com", ".example.com", "smtp", 1, GW_PROTO_SMTP, 2, GW_HOP_INET, 1, "10.0.0.5", 25,
	     "[10.0.0.5]:25, [10.0.0.6]:25", 5},
	};
	gw_routes *r = load_sample();
	size_t i;

	(void)state;
	if (gw_routes_count(r) != 15)
		fail_msg("count: got %zu, want 15", gw_routes_count(r));
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const gw_route *rt = gw_routes_lookup(r, cases[i].domain);
		const char *d = cases[i].domain;

		if (rt == NULL)
			fail_msg("%s: got no route, want %s", d, cases[i].key);
		if (strcmp(rt->key, cases[i].key) != 0)
			fail_msg("%s: key got %s, want %s", d, rt->key, cases[i].key);
		if (strcmp(rt->transport, cases[i].transport) != 0)
			fail_msg("%s: transport got %s, want %s", d, rt->transport, cases[i].transport);
		if (rt->has_proto != cases[i].has_proto)
			fail_msg("%s: has_proto got %d, want %d", d, rt->has_proto, cases[i].has_proto);
		if (rt->has_proto && rt->proto != cases[i].proto)
			fail_msg("%s: proto got %d, want %d", d, (int)rt->proto, (int)cases[i].proto);
		if (rt->nhops != cases[i].nhops)
			fail_msg("%s: nhops got %zu, want %zu", d, rt->nhops, cases[i].nhops);
		if (strcmp(rt->nexthop_text, cases[i].text) != 0)
			fail_msg("%s: nexthop_text got '%s', want '%s'", d, rt->nexthop_text, cases[i].text);
		if (rt->line != cases[i].line)
			fail_msg("%s: line got %u, want %u", d, rt->line, cases[i].line);
		if (cases[i].nhops == 0)
			continue;
		if ((int)rt->hops[0].kind != cases[i].kind0)
			fail_msg("%s: hop kind got %d, want %d", d, (int)rt->hops[0].kind, cases[i].kind0);
		if (rt->hops[0].literal != cases[i].literal0)
			fail_msg("%s: literal got %d, want %d", d, rt->hops[0].literal, cases[i].literal0);
		if (strcmp(rt->hops[0].kind == GW_HOP_UNIX ? rt->hops[0].path : rt->hops[0].host,
			   cases[i].where0))
			fail_msg("%s: hop got %s%s, want %s", d, rt->hops[0].host, rt->hops[0].path,
				 cases[i].where0);
		if (rt->hops[0].port != cases[i].port0)
			fail_msg("%s: port got %u, want %u", d, rt->hops[0].port, cases[i].port0);
	}
	gw_routes_free(&r);
	assert_null(r);
}

static void test_multi_hops(void **state)
{
	static const char *want[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3"};
	static const unsigned want_port[] = {25, 25, 0};
	gw_routes *r = load_sample();
	const gw_route *rt = gw_routes_lookup(r, "multi.example");
	size_t i;

	(void)state;
	assert_non_null(rt);
	for (i = 0; i < 3; i++) {
		if (strcmp(rt->hops[i].host, want[i]) != 0 || rt->hops[i].port != want_port[i])
			fail_msg("hop %zu: got %s:%u, want %s:%u", i, rt->hops[i].host, rt->hops[i].port,
				 want[i], want_port[i]);
	}
	gw_routes_free(&r);
}

static void test_lookup_order(void **state)
{
	static const struct {
		const char *text;
		const char *domain;
		const char *want; /* NULL: no route */
	} cases[] = {
	    {".b.example.com smtp:[1.1.1.1]\n.example.com smtp:[2.2.2.2]\n", "a.b.example.com",
	     ".b.example.com"},
	    {".b.example.com smtp:[1.1.1.1]\n.example.com smtp:[2.2.2.2]\n", "a.c.example.com",
	     ".example.com"},
	    {".b.example.com smtp:[1.1.1.1]\n.example.com smtp:[2.2.2.2]\n", "b.example.com", ".example.com"},
	    {".b.example.com smtp:[1.1.1.1]\n.example.com smtp:[2.2.2.2]\n", "example.com", NULL},
	    {".com smtp:[1.1.1.1]\n", "A.B.Example.COM.", ".com"},
	    {"a.b.example.com smtp:[1.1.1.1]\n.com smtp:[2.2.2.2]\n", "A.B.Example.COM.", "a.b.example.com"},
	    {"example.com smtp:[1.1.1.1]\n* smtp:[2.2.2.2]\n", "x.example.com", "*"},
	    {"example.com smtp:[1.1.1.1]\n", "x.example.com", NULL},
	    {"example.com smtp:[1.1.1.1]\n", "", NULL},
	    {"* smtp:[1.1.1.1]\n", "", "*"},
	    {"* smtp:[1.1.1.1]\n", "anything", "*"},
	    {"example.com. smtp:[1.1.1.1]\n", "example.com", "example.com"},
	    {"EXAMPLE.COM smtp:[1.1.1.1]\n", "example.com.", "example.com"},
	    {"", "example.com", NULL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		gw_routes *r = parse_str(cases[i].text);
		const gw_route *rt = gw_routes_lookup(r, cases[i].domain);
		const char *got = rt != NULL ? rt->key : NULL;

		if ((got == NULL) != (cases[i].want == NULL) ||
		    (got != NULL && strcmp(got, cases[i].want) != 0))
			fail_msg("case %zu lookup %s: got %s, want %s", i, cases[i].domain,
				 got ? got : "(none)", cases[i].want ? cases[i].want : "(none)");
		gw_routes_free(&r);
	}
	assert_null(gw_routes_lookup(NULL, "example.com"));
	assert_int_equal(gw_routes_count(NULL), 0);
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *text;
		size_t len; /* 0: strlen */
		const char *want;
	} cases[] = {
	    {"example.com smtp:[10.0.0.5]:25\nexample.com smtp:[10.0.0.6]\n", 0,
	     "t:2: duplicate key 'example.com' (first at line 1)"},
	    {"Example.COM smtp:[10.0.0.5]\n# c\nexample.com. relay:[10.0.0.6]\n", 0,
	     "t:3: duplicate key 'example.com' (first at line 1)"},
	    {"  smtp:[10.0.0.5]\n", 0, "t:1: continuation line without an entry before it"},
	    {"example.com\n", 0, "t:1: 'example.com' has no transport:nexthop"},
	    {"exa$mple.com smtp:[10.0.0.5]\n", 0, "t:1: bad character in domain: 'exa$mple.com'"},
	    {"a..b smtp:[10.0.0.5]\n", 0, "t:1: empty label in domain: 'a..b'"},
	    {". smtp:[10.0.0.5]\n", 0, "t:1: empty label in domain: '.'"},
	    {"user@example.com smtp:[10.0.0.5]\n", 0, "t:1: address keys"},
	    {"example.com [10.0.0.5]:25\n", 0, "t:1: bad transport name"},
	    {"example.com mx.example.net\n", 0, "t:1: bad transport name"},
	    {"example.com smtp:[10.0.0.5]:99999\n", 0,
	     "t:1: bad next hop: '[10.0.0.5]:99999': port out of range"},
	    {"example.com smtp:[10.0.0.300]\n", 0, "t:1: bad next hop: '[10.0.0.300]'"},
	    {"example.com smtp:[1.1.1.1] [1.1.1.2] [1.1.1.3] [1.1.1.4] [1.1.1.5] [1.1.1.6] [1.1.1.7] "
	     "[1.1.1.8] "
	     "[1.1.1.9]\n",
	     0, "t:1: too many next hops (at most 8)"},
	    {"example.com lmtp:\n", 0, "t:1: lmtp needs a next hop"},
	    {"ok.example smtp:[10.0.0.5]\nexample.com smtp:[10.0.0.5]\0\n", 56, "t:2: NUL byte in line"},
	    {"# c\n\nexample.com smtp:[10.0.0.5],\n\n   [10.0.0.6]:bad\nnext.example smtp:x\n", 0,
	     "t:3: bad next hop: '[10.0.0.6]:bad': port is not a number"},
	    {"ok.example smtp:[10.0.0.5]\nexample.com smtp:\x01\x7f\n", 0, "t:2: bad next hop: '?\?'"},
	    {"example.com: smtp:[10.0.0.5]\n", 0, "t:1: bad character in domain: 'example.com:'"},
	    {"example.com averyveryveryveryveryverylongtransportname:x\n", 0, "t:1: transport name too long"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char err[256] = "";
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		gw_routes *r = gw_routes_parse(cases[i].text, len, "t", err, sizeof err);

		if (r != NULL) {
			gw_routes_free(&r);
			fail_msg("case %zu: got success, want error %s", i, cases[i].want);
		}
		if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("case %zu: got error '%s', want '%s...'", i, err, cases[i].want);
		for (const char *p = err; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				fail_msg("case %zu: error holds a control byte: %s", i, err);
	}
}

static void test_long_entry(void **state)
{
	size_t n = 20000;
	char *text = malloc(n + 64), err[256];
	gw_routes *r;

	(void)state;
	assert_non_null(text);
	strcpy(text, "example.com smtp:");
	memset(text + strlen(text), 'a', n);
	text[17 + n] = '\0';
	r = gw_routes_parse(text, strlen(text), "t", err, sizeof err);
	assert_null(r);
	if (strstr(err, "t:1: entry too long") == NULL)
		fail_msg("got '%s', want 't:1: entry too long'", err);
	free(text);
}

static void test_load_missing(void **state)
{
	char err[256];

	(void)state;
	assert_null(gw_routes_load("/nonexistent/routes", err, sizeof err));
	if (strcmp(err, "/nonexistent/routes: No such file or directory") != 0)
		fail_msg("got '%s', want '/nonexistent/routes: No such file or directory'", err);
}

/* Many keys: the table grows and every key is still found by exact and by parent lookup. */
static void test_many_routes(void **state)
{
	size_t n = 5000, i, cap = n * 48, len = 0;
	char *text = malloc(cap), err[256], dom[64];
	gw_routes *r;

	(void)state;
	assert_non_null(text);
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, ".d%zu.example smtp:[10.%zu.%zu.1]\n", i,
					i / 256, i % 256);
	r = gw_routes_parse(text, len, "many", err, sizeof err);
	if (r == NULL)
		fail_msg("parse: %s", err);
	assert_int_equal(gw_routes_count(r), n);
	for (i = 0; i < n; i++) {
		const gw_route *rt;
		char want[32];
		snprintf(dom, sizeof dom, "host.D%zu.example", i);
		snprintf(want, sizeof want, "10.%zu.%zu.1", i / 256, i % 256);
		rt = gw_routes_lookup(r, dom);
		if (rt == NULL || strcmp(rt->hops[0].host, want) != 0)
			fail_msg("%s: got %s, want %s", dom, rt ? rt->hops[0].host : "(none)", want);
	}
	assert_null(gw_routes_lookup(r, "host.d5000.example"));
	gw_routes_free(&r);
	free(text);
}

static struct sockaddr_storage sa(const char *addr, unsigned port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&ss;

	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
	} else {
		fail_msg("bad test address %s", addr);
	}
	return ss;
}

static void test_check_loop(void **state)
{
	static const struct {
		const char *hops;
		unsigned default_port;
		int want; /* 0 ok, -1 loop */
	} cases[] = {
	    {"[10.0.0.1]:25", 25, -1},
	    {"[10.0.0.1]:26", 25, 0},
	    {"[10.0.0.1]", 25, -1}, /* default port */
	    {"[10.0.0.1]", 24, 0},
	    {"10.0.0.1:25", 25, -1},               /* numeric without brackets is still an address */
	    {"[IPv6:::ffff:10.0.0.1]:25", 25, -1}, /* IPv4-mapped IPv6 = IPv4 */
	    {"[192.0.2.1]:1234", 25, -1},          /* self port 0 matches every port */
	    {"[IPv6:2001:db8::1]:25", 25, -1},
	    {"[IPv6:2001:db8::1]:587", 25, 0},
	    {"[IPv6:2001:db8::2]:25", 25, 0},
	    {"[127.0.0.1]:2525", 25, -1}, /* 0.0.0.0:2525 listens on loopback too */
	    {"[127.0.0.1]:25", 25, 0},
	    {"[IPv6:::1]:2525", 25, 0}, /* a v4 wildcard does not take v6 loopback */
	    {"[10.0.0.2]:25, [10.0.0.1]:25", 25, -1},
	    {"unix:/run/lmtp", 25, 0},
	    {"mx.example.com:25", 25, 0}, /* names are not resolved here */
	    {"[relay.internal]:25", 25, 0},
	};
	struct sockaddr_storage self[4];
	size_t i;

	(void)state;
	self[0] = sa("10.0.0.1", 25);
	self[1] = sa("192.0.2.1", 0);
	self[2] = sa("2001:db8::1", 25);
	self[3] = sa("0.0.0.0", 2525);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[256], err[256] = "";
		gw_routes *r;
		const gw_route *rt;
		int got;

		snprintf(text, sizeof text, "k.example smtp:%s\n", cases[i].hops);
		r = parse_str(text);
		rt = gw_routes_lookup(r, "k.example");
		assert_non_null(rt);
		got = gw_route_check_loop(rt, cases[i].default_port, self, 4, err, sizeof err);
		if (got != cases[i].want)
			fail_msg("%s: got %d (%s), want %d", cases[i].hops, got, err, cases[i].want);
		if (got != 0 && (strstr(err, "k.example") == NULL || strstr(err, "loop") == NULL))
			fail_msg("%s: error '%s' should name the route and say loop", cases[i].hops, err);
		gw_routes_free(&r);
	}
}

static void test_addr_is_self(void **state)
{
	static const struct {
		const char *addr;
		unsigned port;
		int want;
	} cases[] = {
	    {"10.0.0.1", 25, 1}, {"10.0.0.1", 24, 0},     {"::ffff:10.0.0.1", 25, 1},
	    {"10.0.0.2", 25, 0}, {"192.0.2.7", 25, 1},    {"192.0.2.7", 1, 1},
	    {"::1", 587, 1},     {"127.0.0.5", 587, 1},   {"::", 587, 1},
	    {"::1", 25, 0},      {"2001:db8::1", 587, 0},
	};
	struct sockaddr_storage self[3];
	size_t i;

	(void)state;
	self[0] = sa("::ffff:10.0.0.1", 25); /* mapped in self, plain in the query */
	self[1] = sa("::ffff:192.0.2.7", 0);
	self[2] = sa("::", 587); /* v6 wildcard (dual stack) takes both loopbacks */
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sockaddr_storage a = sa(cases[i].addr, cases[i].port);
		int got = gw_addr_is_self((const struct sockaddr *)&a, self, 3);
		if (got != cases[i].want)
			fail_msg("%s port %u: got %d, want %d", cases[i].addr, cases[i].port, got,
				 cases[i].want);
	}
	{
		struct sockaddr_storage u;
		memset(&u, 0, sizeof u);
		u.ss_family = AF_UNIX;
		assert_int_equal(gw_addr_is_self((const struct sockaddr *)&u, self, 3), 0);
	}
}

static void test_expand(void **state)
{
	static const struct {
		const char *text; /* route for k.example */
		int use_mx;
		size_t max;
		gw_lookup want;
		size_t want_n;
		const char *want_hops; /* formatted, '|' separated */
	} cases[] = {
	    {"smtp:[10.0.0.5]:25, [10.0.0.6]", 1, 8, GW_LOOKUP_FOUND, 2, "[10.0.0.5]:25|[10.0.0.6]"},
	    {"smtp:mx1.example.invalid:2525, [10.0.0.6]", 0, 8, GW_LOOKUP_FOUND, 2,
	     "mx1.example.invalid:2525|[10.0.0.6]"},
	    {"smtp:[10.0.0.5]:25 [10.0.0.5]:25 [10.0.0.6]", 1, 8, GW_LOOKUP_FOUND, 2,
	     "[10.0.0.5]:25|[10.0.0.6]"},
	    {"smtp:[10.0.0.5]:25 [10.0.0.6] [10.0.0.7]", 1, 2, GW_LOOKUP_FOUND, 2,
	     "[10.0.0.5]:25|[10.0.0.6]"},
	    {"lmtp:unix:/run/lmtp", 1, 8, GW_LOOKUP_FOUND, 1, "unix:/run/lmtp"},
	    /* LMTP never uses MX */
	    {"lmtp:inet:lmtp.example.invalid:24", 1, 8, GW_LOOKUP_FOUND, 1, "lmtp.example.invalid:24"},
	    /* a numeric host without brackets is not looked up */
	    {"smtp:10.0.0.5:25", 1, 8, GW_LOOKUP_FOUND, 1, "10.0.0.5:25"},
	    /* a name under .invalid has no MX: the literal that follows is still used */
	    {"smtp:nowhere.invalid, [10.0.0.6]", 1, 8, GW_LOOKUP_FOUND, 1, "[10.0.0.6]"},
	    {"error:5.1.1 no such user", 1, 8, GW_LOOKUP_NOTFOUND, 0, ""},
	    {"discard:", 0, 8, GW_LOOKUP_NOTFOUND, 0, ""},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[256], err[256] = "", got[512] = "";
		gw_nexthop hops[8];
		size_t n = 99, k, off = 0;
		gw_routes *r;
		gw_lookup res;

		snprintf(text, sizeof text, "k.example %s\n", cases[i].text);
		r = parse_str(text);
		res = gw_route_expand(gw_routes_lookup(r, "k.example"), cases[i].use_mx, hops, cases[i].max,
				      &n, err, sizeof err);
		for (k = 0; k < n && k < 8; k++) {
			if (k > 0)
				got[off++] = '|';
			off += gw_nexthop_format(&hops[k], got + off, sizeof got - off);
		}
		if (res != cases[i].want || n != cases[i].want_n || strcmp(got, cases[i].want_hops) != 0)
			fail_msg("%s (use_mx %d): got %d, %zu hops '%s' (%s), want %d, %zu hops '%s'",
				 cases[i].text, cases[i].use_mx, (int)res, n, got, err, (int)cases[i].want,
				 cases[i].want_n, cases[i].want_hops);
		if (res != GW_LOOKUP_FOUND && err[0] == '\0')
			fail_msg("%s: got no error text", cases[i].text);
		gw_routes_free(&r);
	}
}

/* The catch-all with "smtp:" has no domain to use: NOTFOUND, the caller uses the recipient domain. */
static void test_expand_star_empty(void **state)
{
	gw_routes *r = parse_str("* smtp:\n");
	const gw_route *rt = gw_routes_lookup(r, "x.example");
	gw_nexthop hops[8];
	size_t n = 5;
	char err[256];

	(void)state;
	assert_non_null(rt);
	assert_int_equal(rt->has_proto, 1);
	assert_int_equal(rt->nhops, 0);
	assert_int_equal(gw_route_expand(rt, 1, hops, 8, &n, err, sizeof err), GW_LOOKUP_NOTFOUND);
	assert_int_equal(n, 0);
	gw_routes_free(&r);
}

/* Only names under .invalid reach the resolver: never FOUND, so the answer is NOTFOUND or RETRY. */
static void test_expand_mx_invalid(void **state)
{
	gw_routes *r = parse_str("k.example smtp:nowhere.invalid\n");
	gw_nexthop hops[8];
	size_t n = 5;
	char err[256] = "";
	gw_lookup res;

	(void)state;
	res = gw_route_expand(gw_routes_lookup(r, "k.example"), 1, hops, 8, &n, err, sizeof err);
	if (res == GW_LOOKUP_FOUND || n != 0)
		fail_msg("got %d with %zu hops, want NOTFOUND or RETRY with none", (int)res, n);
	if (strstr(err, "nowhere.invalid") == NULL)
		fail_msg("got error '%s', want it to name nowhere.invalid", err);
	gw_routes_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sample_file),       cmocka_unit_test(test_multi_hops),
	    cmocka_unit_test(test_lookup_order),      cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_long_entry),        cmocka_unit_test(test_load_missing),
	    cmocka_unit_test(test_many_routes),       cmocka_unit_test(test_check_loop),
	    cmocka_unit_test(test_addr_is_self),      cmocka_unit_test(test_expand),
	    cmocka_unit_test(test_expand_star_empty), cmocka_unit_test(test_expand_mx_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
