/*
 * test_nexthop.c - next-hop syntax: parse, format, and parse what format wrote.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw/nexthop.h"

typedef struct hop_case {
	const char *in;
	const char *err; /* NULL: must parse */
	gw_hop_kind kind;
	int literal;
	unsigned port;
	const char *host_or_path;
	const char *formatted;
} hop_case;

static const hop_case cases[] = {
    {"mx.example.com:25", NULL, GW_HOP_INET, 0, 25, "mx.example.com", "mx.example.com:25"},
    {"mx.example.com", NULL, GW_HOP_INET, 0, 0, "mx.example.com", "mx.example.com"},
    {"mx.example.com.:2525", NULL, GW_HOP_INET, 0, 2525, "mx.example.com.", "mx.example.com.:2525"},
    {"localhost:65535", NULL, GW_HOP_INET, 0, 65535, "localhost", "localhost:65535"},
    {"mx_1.internal:1", NULL, GW_HOP_INET, 0, 1, "mx_1.internal", "mx_1.internal:1"},
    {"[1.2.3.4]:25", NULL, GW_HOP_INET, 1, 25, "1.2.3.4", "[1.2.3.4]:25"},
    {"[10.0.0.5]", NULL, GW_HOP_INET, 1, 0, "10.0.0.5", "[10.0.0.5]"},
    {"[IPv6:2001:db8::1]:24", NULL, GW_HOP_INET, 1, 24, "2001:db8::1", "[2001:db8::1]:24"},
    {"[ipv6:::1]", NULL, GW_HOP_INET, 1, 0, "::1", "[::1]"},
    {"[2001:db8::1]", NULL, GW_HOP_INET, 1, 0, "2001:db8::1", "[2001:db8::1]"},
    {"[::ffff:192.0.2.1]:25", NULL, GW_HOP_INET, 1, 25, "::ffff:192.0.2.1", "[::ffff:192.0.2.1]:25"},
    {"[mail.internal]:25", NULL, GW_HOP_INET, 1, 25, "mail.internal", "[mail.internal]:25"},
    {"1.2.3.4:25", NULL, GW_HOP_INET, 0, 25, "1.2.3.4", "1.2.3.4:25"},
    {"inet:mx.example.com:25", NULL, GW_HOP_INET, 0, 25, "mx.example.com", "mx.example.com:25"},
    {"inet:[10.0.0.5]:24", NULL, GW_HOP_INET, 1, 24, "10.0.0.5", "[10.0.0.5]:24"},
    {"inet:localhost", NULL, GW_HOP_INET, 0, 0, "localhost", "localhost"},
    {"/run/dovecot/lmtp", NULL, GW_HOP_UNIX, 0, 0, "/run/dovecot/lmtp", "unix:/run/dovecot/lmtp"},
    {"unix:/run/dovecot/lmtp", NULL, GW_HOP_UNIX, 0, 0, "/run/dovecot/lmtp", "unix:/run/dovecot/lmtp"},
    {"unix:/a:b", NULL, GW_HOP_UNIX, 0, 0, "/a:b", "unix:/a:b"},
    {"mx:025", NULL, GW_HOP_INET, 0, 25, "mx", "mx:25"},
    /* ports */
    {"mx:0", "port out of range (1-65535)", 0, 0, 0, NULL, NULL},
    {"mx:65536", "port out of range (1-65535)", 0, 0, 0, NULL, NULL},
    {"mx:99999999999999999999", "port out of range (1-65535)", 0, 0, 0, NULL, NULL},
    {"mx:smtp", "port is not a number", 0, 0, 0, NULL, NULL},
    {"mx:-1", "port is not a number", 0, 0, 0, NULL, NULL},
    {"mx:+25", "port is not a number", 0, 0, 0, NULL, NULL},
    {"mx: 25", "port is not a number", 0, 0, 0, NULL, NULL},
    {"mx:", "empty port", 0, 0, 0, NULL, NULL},
    {"[1.2.3.4]:", "empty port", 0, 0, 0, NULL, NULL},
    {"[1.2.3.4]:0", "port out of range (1-65535)", 0, 0, 0, NULL, NULL},
    /* empty */
    {"", "empty next hop", 0, 0, 0, NULL, NULL},
    {"inet:", "empty host", 0, 0, 0, NULL, NULL},
    {":25", "empty host", 0, 0, 0, NULL, NULL},
    {"unix:", "empty unix socket path", 0, 0, 0, NULL, NULL},
    {"unix:run/lmtp", "unix socket path must be absolute", 0, 0, 0, NULL, NULL},
    {"/run/\x01lmtp", "control character in unix socket path", 0, 0, 0, NULL, NULL},
    /* literals */
    {"[1.2.3.4", "unterminated [", 0, 0, 0, NULL, NULL},
    {"[", "unterminated [", 0, 0, 0, NULL, NULL},
    {"[]", "empty address literal", 0, 0, 0, NULL, NULL},
    {"[]:25", "empty address literal", 0, 0, 0, NULL, NULL},
    {"[1.2.3.999]", "invalid IPv4 address literal", 0, 0, 0, NULL, NULL},
    {"[1.2.3]:25", "invalid IPv4 address literal", 0, 0, 0, NULL, NULL},
    {"[IPv6:zz::1]", "invalid IPv6 address literal", 0, 0, 0, NULL, NULL},
    {"[IPv6:1.2.3.4]", "invalid IPv6 address literal", 0, 0, 0, NULL, NULL},
    {"[IPv6:]", "invalid IPv6 address literal", 0, 0, 0, NULL, NULL},
    {"[2001:db8::1%eth0]", "invalid IPv6 address literal", 0, 0, 0, NULL, NULL},
    {"[bad host]", "invalid host name in brackets", 0, 0, 0, NULL, NULL},
    {"[1.2.3.4]x", "unexpected text after host", 0, 0, 0, NULL, NULL},
    {"[1.2.3.4]]", "unexpected text after host", 0, 0, 0, NULL, NULL},
    /* host names */
    {"2001:db8::1", "IPv6 address must be written in brackets", 0, 0, 0, NULL, NULL},
    {"mx:25:26", "IPv6 address must be written in brackets", 0, 0, 0, NULL, NULL},
    {"mx..example", "invalid host name", 0, 0, 0, NULL, NULL},
    {"mx example", "invalid host name", 0, 0, 0, NULL, NULL},
    {"-mx.example", "invalid host name", 0, 0, 0, NULL, NULL},
    {"mx-.example", "invalid host name", 0, 0, 0, NULL, NULL},
    {".", "invalid host name", 0, 0, 0, NULL, NULL},
    {"10.0.0.300", "invalid host name", 0, 0, 0, NULL, NULL},
    {"mx\r\n", "invalid host name", 0, 0, 0, NULL, NULL},
};

static void check(const char *in, size_t len, const hop_case *c, const char *what)
{
	/* An allocation of exactly len bytes: ASan sees any read past the end. */
	char *buf = malloc(len > 0 ? len : 1);
	gw_nexthop hop, again;
	const char *err = NULL;
	char out[512];
	size_t n;
	int rc;

	assert_non_null(buf);
	memcpy(buf, in, len);
	rc = gw_nexthop_parse(buf, len, &hop, &err);
	free(buf);
	if (c->err != NULL) {
		if (rc != -1 || err == NULL || strcmp(err, c->err) != 0)
			fail_msg("%s \"%s\": got rc %d \"%s\", want -1 \"%s\"", what, c->in, rc,
				 err ? err : "(null)", c->err);
		return;
	}
	if (rc != 0)
		fail_msg("%s \"%s\": got \"%s\", want success", what, c->in, err ? err : "(null)");
	if (hop.kind != c->kind || hop.literal != c->literal || hop.port != c->port)
		fail_msg("%s \"%s\": got kind %d literal %d port %u, want %d %d %u", what, c->in, hop.kind,
			 hop.literal, hop.port, c->kind, c->literal, c->port);
	if (strcmp(c->kind == GW_HOP_UNIX ? hop.path : hop.host, c->host_or_path) != 0)
		fail_msg("%s \"%s\": got host \"%s\" path \"%s\", want \"%s\"", what, c->in, hop.host,
			 hop.path, c->host_or_path);
	n = gw_nexthop_format(&hop, out, sizeof out);
	if (n != strlen(c->formatted) || strcmp(out, c->formatted) != 0)
		fail_msg("%s \"%s\": got formatted \"%s\" (%zu), want \"%s\"", what, c->in, out, n,
			 c->formatted);
	/* Round trip: what format writes parses to the same hop. */
	if (gw_nexthop_parse(out, n, &again, &err) != 0 || memcmp(&again, &hop, sizeof hop) != 0)
		fail_msg("%s \"%s\": reparse of \"%s\" differs (%s)", what, c->in, out, err ? err : "fields");
}

static void test_cases(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const hop_case *c = &cases[i];
		size_t len = strlen(c->in);
		char *junk = malloc(len + 8);

		check(c->in, len, c, "exact");
		/* Bytes beyond len must not matter. */
		assert_non_null(junk);
		memcpy(junk, c->in, len);
		memcpy(junk + len, ":9]x\0/a", 8);
		check(junk, len, c, "with junk");
		free(junk);
	}
}

static void test_lengths(void **state)
{
	static char buf[600];
	gw_nexthop hop;
	const char *err;
	size_t n, i;

	(void)state;
	/* Host names: 255 fit, 256 do not. Labels of 50. */
	for (n = 255; n <= 256; n++) {
		for (i = 0; i < n; i++)
			buf[i] = (i % 51 == 50 && i != n - 1) ? '.' : 'h';
		err = NULL;
		if (n == 255 && (gw_nexthop_parse(buf, n, &hop, &err) != 0 || strlen(hop.host) != 255))
			fail_msg("255-byte host: got \"%s\", want success", err ? err : "");
		if (n == 256 &&
		    (gw_nexthop_parse(buf, n, &hop, &err) != -1 || strcmp(err, "host name too long") != 0))
			fail_msg("256-byte host: got \"%s\", want \"host name too long\"",
				 err ? err : "success");
	}
	buf[0] = '[';
	for (i = 1; i <= 256; i++)
		buf[i] = (i % 51 == 50) ? '.' : 'h';
	buf[257] = ']';
	err = NULL;
	if (gw_nexthop_parse(buf, 258, &hop, &err) != -1 || strcmp(err, "host name too long") != 0)
		fail_msg("[256-byte host]: got \"%s\", want \"host name too long\"", err ? err : "success");
	/* Socket paths: 107 fit, 108 do not. */
	for (n = 107; n <= 108; n++) {
		memcpy(buf, "unix:/", 6);
		memset(buf + 6, 'p', n - 1);
		err = NULL;
		if (n == 107 && (gw_nexthop_parse(buf, 5 + n, &hop, &err) != 0 || strlen(hop.path) != 107))
			fail_msg("107-byte path: got \"%s\", want success", err ? err : "");
		if (n == 108 && (gw_nexthop_parse(buf, 5 + n, &hop, &err) != -1 ||
				 strcmp(err, "unix socket path too long") != 0))
			fail_msg("108-byte path: got \"%s\", want \"unix socket path too long\"",
				 err ? err : "success");
	}
	/* A 63-octet label fits, 64 does not. */
	memset(buf, 'l', 64);
	if (gw_nexthop_parse(buf, 63, &hop, &err) != 0)
		fail_msg("63-octet label: got \"%s\", want success", err);
	if (gw_nexthop_parse(buf, 64, &hop, &err) != -1)
		fail_msg("64-octet label: got success, want failure");
}

static void test_format_truncation(void **state)
{
	gw_nexthop hop;
	const char *err;
	char out[8];
	size_t n;

	(void)state;
	assert_int_equal(gw_nexthop_parse("[10.0.0.5]:25", 13, &hop, &err), 0);
	memset(out, 'Z', sizeof out);
	n = gw_nexthop_format(&hop, out, sizeof out);
	if (n != 13 || strcmp(out, "[10.0.0") != 0)
		fail_msg("truncated: got \"%s\" (%zu), want \"[10.0.0\" (13)", out, n);
	n = gw_nexthop_format(&hop, NULL, 0);
	if (n != 13)
		fail_msg("size 0: got %zu, want 13", n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_lengths),
	    cmocka_unit_test(test_format_truncation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
