/*
 * test_proxy_conf.c - gw-proxy's configuration checks (errors name file:line)
 * and the verdict on a redirected connection's original destination.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "origdst.h"
#include "proxy_conf.h"
#include "tls_map.h"

static char conf_path[64];

static gwp_config *load_text(const char *text, char *err, size_t errlen)
{
	FILE *f;
	int fd;

	snprintf(conf_path, sizeof(conf_path), "/tmp/gw-proxy-conf.XXXXXX");
	assert_true((fd = mkstemp(conf_path)) >= 0);
	assert_non_null(f = fdopen(fd, "w"));
	fputs(text, f);
	fclose(f);
	{
		gwp_config *c = gwp_config_load(conf_path, err, errlen);
		unlink(conf_path);
		return c;
	}
}

static void test_conf_errors(void **state)
{
	static const struct {
		const char *text, *want; /* want: the error after "path:" */
	} cases[] = {
	    {"log = stderr\nlisten = 127.0.0.1:25\n", "2: listen: want [ADDRESS]:PORT (127.0.0.1:25)"},
	    {"redirect_listen = [0.0.0.0]:10025, unix:/x\n",
	     "1: redirect_listen: want [ADDRESS]:PORT (unix:/x)"},
	    {"listen =\n", "1: listen: no listener (neither listen nor redirect_listen)"},
	    {"\nupstream = unix:/run/x\n", "2: upstream: want [ADDRESS]:PORT or HOST:PORT"},
	    {"upstream = [127.0.0.1]:25\nno_such_key = 1\n", "2: unknown key"},
	    {"tls = sometimes\n", "1: "},
	    {"\n\ntls_policy = /nonexistent/tls_policy\n",
	     "3: tls_policy: /nonexistent/tls_policy: No such file"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[512], want[600];
		gwp_config *c = load_text(cases[i].text, err, sizeof(err));
		if (c != NULL)
			fail_msg("case %zu: loaded, want error %s", i, cases[i].want);
		snprintf(want, sizeof(want), "%s:%s", conf_path, cases[i].want);
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s...\"", i, err, want);
	}
}

static void test_conf_ok(void **state)
{
	char err[512];
	gwp_config *c = load_text("listen = [127.0.0.1]:10026\nredirect_listen = [0.0.0.0]:10025 [::]:10025\n"
				  "upstream = mx.example.net:2525\n",
				  err, sizeof(err));

	(void)state;
	if (c == NULL)
		fail_msg("%s", err);
	assert_int_equal(c->nlisten, 1);
	assert_int_equal(c->nredirect, 2);
	assert_int_equal(c->redirect[1].port, 10025);
	assert_true(c->has_upstream);
	assert_string_equal(c->upstream.host, "mx.example.net");
	assert_int_equal(c->upstream.port, 2525);
	gwp_config_free(&c);
	assert_null(c);
	assert_non_null(c = load_text("", err, sizeof(err))); /* every default together is valid */
	assert_false(c->has_upstream);
	gwp_config_free(&c);
}

static struct sockaddr_in v4(const char *a, unsigned port)
{
	struct sockaddr_in s;

	memset(&s, 0, sizeof(s));
	s.sin_family = AF_INET;
	s.sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, a, &s.sin_addr), 1);
	return s;
}

static void test_origdst_judge(void **state)
{
	struct sockaddr_in local = v4("10.25.0.1", 10025), orig = v4("192.0.2.25", 25),
			   tproxy = v4("192.0.2.26", 25);
	struct sockaddr_in6 o6, l6;
	gw_nexthop hop;

	(void)state;
	/* nftables redirect: conntrack remembers the original destination */
	assert_int_equal(gwp_origdst_judge((struct sockaddr *)&orig, (struct sockaddr *)&local, 10025, &hop),
			 1);
	assert_string_equal(hop.host, "192.0.2.25");
	assert_int_equal(hop.port, 25);
	assert_true(hop.literal);
	/* straight to our port, conntrack active: SO_ORIGINAL_DST is our own address */
	assert_int_equal(gwp_origdst_judge((struct sockaddr *)&local, (struct sockaddr *)&local, 10025, &hop),
			 0);
	/* straight to our port, no conntrack (ENOENT) */
	assert_int_equal(gwp_origdst_judge(NULL, (struct sockaddr *)&local, 10025, &hop), 0);
	/* TPROXY: no NAT, the socket has the destination's own address */
	assert_int_equal(gwp_origdst_judge(NULL, (struct sockaddr *)&tproxy, 10025, &hop), 1);
	assert_string_equal(hop.host, "192.0.2.26");
	/* IPv6 redirect */
	memset(&o6, 0, sizeof(o6));
	memset(&l6, 0, sizeof(l6));
	o6.sin6_family = l6.sin6_family = AF_INET6;
	o6.sin6_port = htons(25);
	l6.sin6_port = htons(10025);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::25", &o6.sin6_addr), 1);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &l6.sin6_addr), 1);
	assert_int_equal(gwp_origdst_judge((struct sockaddr *)&o6, (struct sockaddr *)&l6, 10025, &hop), 1);
	assert_string_equal(hop.host, "2001:db8::25");
	assert_int_equal(gwp_origdst_judge((struct sockaddr *)&l6, (struct sockaddr *)&l6, 10025, &hop), 0);
}

static void test_tls_map(void **state)
{
	static const char text[] = "# per destination\n192.0.2.0/24 encrypt\n192.0.2.25 verify # that one\n"
				   "\n2001:db8::/32 none\n0.0.0.0/0 may\n";
	static const struct {
		const char *addr;
		gw_tls_policy want;
	} cases[] = {
	    {"192.0.2.25", GW_TLS_VERIFY},      {"192.0.2.26", GW_TLS_ENCRYPT},  {"198.51.100.1", GW_TLS_MAY},
	    {"2001:db8::25", GW_TLS_NONE},      {"2001:db9::1", GW_TLS_ENCRYPT}, /* fallback */
	    {"mx.example.net", GW_TLS_ENCRYPT}, /* names are not keys: fallback */
	};
	char err[512];
	gwp_tls_map *m = gwp_tls_map_parse(text, strlen(text), "map", err, sizeof(err));
	size_t i;

	(void)state;
	if (m == NULL)
		fail_msg("%s", err);
	assert_int_equal(gwp_tls_map_count(m), 4);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_tls_policy got = gwp_tls_map_lookup(m, cases[i].addr, GW_TLS_ENCRYPT);
		if (got != cases[i].want)
			fail_msg("%s: got %s, want %s", cases[i].addr, gw_tls_policy_str(got),
				 gw_tls_policy_str(cases[i].want));
	}
	gwp_tls_map_free(&m);
	assert_null(m);
	assert_int_equal(gwp_tls_map_lookup(NULL, "192.0.2.25", GW_TLS_MAY), GW_TLS_MAY);
}

static void test_tls_map_errors(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"192.0.2.1 encrypt\nexample.com verify\n", "map:2: example.com: not an address"},
	    {"192.0.2.0/33 encrypt\n", "map:1: 192.0.2.0/33: not an address"},
	    {"192.0.2.1 sometimes\n", "map:1: sometimes: want none, may, encrypt or verify"},
	    {"\n\n192.0.2.1\n", "map:3: want \"ADDRESS[/PREFIX] POLICY\""},
	    {"192.0.2.1 may extra\n", "map:1: want"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[512];
		gwp_tls_map *m =
		    gwp_tls_map_parse(cases[i].text, strlen(cases[i].text), "map", err, sizeof(err));
		if (m != NULL)
			fail_msg("case %zu: parsed, want %s", i, cases[i].want);
		if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s...\"", i, err, cases[i].want);
	}
}

/* A real loopback connection made straight to the listener: not redirected (whatever conntrack says). */
static void test_origdst_direct_socket(void **state)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	gw_nexthop hop;
	char err[256];
	int l, c, s;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((l = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
	assert_true((c = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_true((s = accept(l, NULL, NULL)) >= 0);
	assert_int_equal(gwp_origdst(s, ntohs(a.sin_port), &hop, err, sizeof(err)), 0);
	/* the same socket seen from a listener on another port: TPROXY's case, its own address */
	assert_int_equal(gwp_origdst(s, 1, &hop, err, sizeof(err)), 1);
	assert_string_equal(hop.host, "127.0.0.1");
	assert_int_equal(hop.port, ntohs(a.sin_port));
	close(s);
	close(c);
	close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_conf_errors),   cmocka_unit_test(test_conf_ok),
	    cmocka_unit_test(test_origdst_judge), cmocka_unit_test(test_origdst_direct_socket),
	    cmocka_unit_test(test_tls_map),       cmocka_unit_test(test_tls_map_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
