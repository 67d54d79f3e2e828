/*
 * test_addr.c - RFC 5321 paths and ESMTP parameters. Every case runs twice:
 * from a buffer exactly len bytes long (so ASan catches a read past it) and
 * from one followed by junk, which must not change the result.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw/addr.h"

#define S(x) x, sizeof(x) - 1

#define R  GW_PATH_REVERSE
#define U  GW_PATH_SMTPUTF8
#define B  GW_PATH_BARE
#define P  GW_PATH_PARAMS
#define PM GW_PATH_POSTMASTER

typedef struct addr_case {
	const char *in;
	size_t len;
	unsigned flags;
	const char *err;   /* NULL: must parse */
	const char *local; /* expected on success */
	const char *domain;
	const char *mflags; /* which of null, quoted, literal, utf8 are set: "n", "q", "l", "u" letters */
	size_t nparams;
} addr_case;

static const addr_case cases[] = {
    /* null path and Postmaster */
    {S("<>"), R, NULL, "", "", "n", 0},
    {S("<>"), 0, "null path not allowed here", NULL, NULL, NULL, 0},
    {S("<> SIZE=100"), R | P, NULL, "", "", "n", 1},
    {S("<>x"), R, "unexpected text after address", NULL, NULL, NULL, 0},
    {S("<Postmaster>"), PM, NULL, "Postmaster", "", "", 0},
    {S("<POSTMASTER>"), PM, NULL, "POSTMASTER", "", "", 0},
    {S("<Postmaster>"), 0, "missing @ in address", NULL, NULL, NULL, 0},
    {S("<\"Postmaster\">"), PM, "missing @ in address", NULL, NULL, NULL, 0},
    {S("<Postmaster@Example.ORG>"), PM, NULL, "Postmaster", "example.org", "", 0},
    /* plain mailboxes, case */
    {S("<user@example.com>"), 0, NULL, "user", "example.com", "", 0},
    {S("<User.Name+tag@Mail.Example.COM>"), 0, NULL, "User.Name+tag", "mail.example.com", "", 0},
    {S("<!#$%&'*+-/=?^_`{|}~@x.org>"), 0, NULL, "!#$%&'*+-/=?^_`{|}~", "x.org", "", 0},
    {S("<a@localhost>"), 0, NULL, "a", "localhost", "", 0},
    {S("<a@123.example>"), 0, NULL, "a", "123.example", "", 0},
    {S(" <a@b.c> "), P, NULL, "a", "b.c", "", 0},
    /* quoted local parts */
    {S("<\"a b\"@x.org>"), 0, NULL, "\"a b\"", "x.org", "q", 0},
    {S("<\"a\\\"b\"@x.org>"), 0, NULL, "\"a\\\"b\"", "x.org", "q", 0},
    {S("<\"a@b>c\"@x.org>"), 0, NULL, "\"a@b>c\"", "x.org", "q", 0},
    {S("<\"\"@x.org>"), 0, NULL, "\"\"", "x.org", "q", 0},
    {S("<\"a b@x.org>"), 0, "unterminated quoted string in local part", NULL, NULL, NULL, 0},
    {S("<\"a\"b@x.org>"), 0, "invalid character after quoted local part", NULL, NULL, NULL, 0},
    {S("<\"a\\"), 0, "unterminated quoted string in local part", NULL, NULL, NULL, 0},
    /* address literals */
    {S("<user@[192.0.2.1]>"), 0, NULL, "user", "[192.0.2.1]", "l", 0},
    {S("<user@[IPv6:2001:DB8::1]>"), 0, NULL, "user", "[IPv6:2001:db8::1]", "l", 0},
    {S("<user@[ipv6:2001:db8::1]>"), 0, NULL, "user", "[IPv6:2001:db8::1]", "l", 0},
    {S("<user@[IPv6:::ffff:192.0.2.1]>"), 0, NULL, "user", "[IPv6:::ffff:192.0.2.1]", "l", 0},
    {S("<user@[192.0.2.256]>"), 0, "invalid IPv4 address literal", NULL, NULL, NULL, 0},
    {S("<user@[1.2.3]>"), 0, "invalid IPv4 address literal", NULL, NULL, NULL, 0},
    {S("<user@[example.com]>"), 0, "invalid IPv4 address literal", NULL, NULL, NULL, 0},
    {S("<user@[IPv6:2001:db8::g]>"), 0, "invalid IPv6 address literal", NULL, NULL, NULL, 0},
    {S("<user@[IPv6:1.2.3.4]>"), 0, "invalid IPv6 address literal", NULL, NULL, NULL, 0},
    {S("<user@[IPv6:]>"), 0, "invalid IPv6 address literal", NULL, NULL, NULL, 0},
    {S("<user@[2001:db8::1]>"), 0, "unsupported address literal", NULL, NULL, NULL, 0},
    {S("<user@[x-tag:stuff]>"), 0, "unsupported address literal", NULL, NULL, NULL, 0},
    {S("<user@[]>"), 0, "empty address literal", NULL, NULL, NULL, 0},
    {S("<user@[192.0.2.1>"), 0, "unterminated address literal", NULL, NULL, NULL, 0},
    {S("<user@[192.0.2.1 ]>"), 0, "invalid character in address literal", NULL, NULL, NULL, 0},
    {S("<user@[192.0.2.1]x>"), 0, "unexpected character after address literal", NULL, NULL, NULL, 0},
    /* source routes: checked, dropped */
    {S("<@a.example,@b.example:user@c.example>"), 0, NULL, "user", "c.example", "", 0},
    {S("<@a.example:user@c.example>"), 0, NULL, "user", "c.example", "", 0},
    {S("<@a.example user@c.example>"), 0, "invalid source route", NULL, NULL, NULL, 0},
    {S("<@a.example,b.example:user@c.example>"), 0, "invalid source route", NULL, NULL, NULL, 0},
    {S("<@:user@c.example>"), 0, "invalid domain in source route", NULL, NULL, NULL, 0},
    {S("<@b.c>"), 0, "empty local part", NULL, NULL, NULL, 0},
    /* parameters */
    {S("<a@b.c> SIZE=12345"), R | P, NULL, "a", "b.c", "", 1},
    {S("<a@b.c> size=0"), R | P, NULL, "a", "b.c", "", 1},
    {S("<a@b.c> SIZE=12k"), R | P, "SIZE value not a number", NULL, NULL, NULL, 0},
    {S("<a@b.c> SIZE=123456789012345678901"), R | P, "SIZE value too long", NULL, NULL, NULL, 0},
    {S("<a@b.c> SIZE"), R | P, "SIZE needs a value", NULL, NULL, NULL, 0},
    {S("<a@b.c> SIZE="), R | P, "empty parameter value", NULL, NULL, NULL, 0},
    {S("<a@b.c> SIZE==1"), R | P, "invalid character in parameter value", NULL, NULL, NULL, 0},
    {S("<a@b.c> BODY=8BITMIME"), R | P, NULL, "a", "b.c", "", 1},
    {S("<a@b.c> BODY=7bit"), R | P, NULL, "a", "b.c", "", 1},
    {S("<a@b.c> BODY=BINARYMIME"), R | P, NULL, "a", "b.c", "", 1},
    {S("<a@b.c> BODY=FOO"), R | P, "invalid BODY value", NULL, NULL, NULL, 0},
    {S("<a@b.c> SMTPUTF8"), R | P, NULL, "a", "b.c", "", 1},
    {S("<a@b.c> SMTPUTF8=yes"), R | P, "SMTPUTF8 takes no value", NULL, NULL, NULL, 0},
    {S("<a@b.c> NOTIFY=SUCCESS,FAILURE,DELAY"), P, NULL, "a", "b.c", "", 1},
    {S("<a@b.c> NOTIFY=never"), P, NULL, "a", "b.c", "", 1},
    {S("<a@b.c> NOTIFY=NEVER,SUCCESS"), P, "NOTIFY=NEVER cannot be combined", NULL, NULL, NULL, 0},
    {S("<a@b.c> NOTIFY=SUCCESS,SUCCESS"), P, "NOTIFY value repeated", NULL, NULL, NULL, 0},
    {S("<a@b.c> NOTIFY=SUCCESS,"), P, "invalid NOTIFY value", NULL, NULL, NULL, 0},
    {S("<a@b.c> NOTIFY=ALWAYS"), P, "invalid NOTIFY value", NULL, NULL, NULL, 0},
    {S("<a@b.c> ORCPT=rfc822;a+40b"), P, NULL, "a", "b.c", "", 1},
    {S("<a@b.c> ORCPT=rfc822;a+40"), P, NULL, "a", "b.c", "", 1},
    {S("<a@b.c> ORCPT=rfc822;a+4"), P, "invalid xtext in ORCPT", NULL, NULL, NULL, 0},
    {S("<a@b.c> ORCPT=rfc822;a+2b"), P, "invalid xtext in ORCPT", NULL, NULL, NULL, 0},
    {S("<a@b.c> ORCPT=rfc822"), P, "ORCPT needs addr-type;address", NULL, NULL, NULL, 0},
    {S("<a@b.c> ORCPT=;a@b"), P, "ORCPT needs addr-type;address", NULL, NULL, NULL, 0},
    {S("<a@b.c> ORCPT=rfc822;"), P, "empty ORCPT address", NULL, NULL, NULL, 0},
    {S("<a@b.c> ORCPT=rf(c;a"), P, "invalid ORCPT address type", NULL, NULL, NULL, 0},
    {S("<a@b.c> RET=FULL"), R | P, NULL, "a", "b.c", "", 1},
    {S("<a@b.c> RET=hdrs"), R | P, NULL, "a", "b.c", "", 1},
    {S("<a@b.c> RET=ALL"), R | P, "invalid RET value", NULL, NULL, NULL, 0},
    {S("<a@b.c> ENVID=QQ314159+2B"), R | P, NULL, "a", "b.c", "", 1},
    {S("<a@b.c> ENVID=a+zz"), R | P, "invalid xtext in ENVID", NULL, NULL, NULL, 0},
    {S("<a@b.c> SIZE=1 BODY=7BIT RET=FULL ENVID=x SMTPUTF8"), R | P, NULL, "a", "b.c", "", 5},
    {S("<a@b.c>  SIZE=1   BODY=7BIT  "), R | P, NULL, "a", "b.c", "", 2},
    {S("<a@b.c> SIZE=1 SIZE=2"), R | P, "duplicate parameter SIZE", NULL, NULL, NULL, 0},
    {S("<a@b.c> body=7BIT BODY=7BIT"), R | P, "duplicate parameter BODY", NULL, NULL, NULL, 0},
    {S("<a@b.c> FOO=bar"), R | P, "unknown parameter", NULL, NULL, NULL, 0},
    {S("<a@b.c> X-FOO"), R | P, "unknown parameter", NULL, NULL, NULL, 0},
    {S("<a@b.c> -X=1"), R | P, "invalid parameter keyword", NULL, NULL, NULL, 0},
    {S("<a@b.c> SI_ZE=1"), R | P, "invalid parameter keyword", NULL, NULL, NULL, 0},
    {S("<a@b.c> >"), R | P, "invalid parameter keyword", NULL, NULL, NULL, 0},
    {S("<a@b.c> A=1 B=2 C=3 D=4 E=5 F=6 G=7 H=8 I=9"), R | P, "too many parameters", NULL, NULL, NULL, 0},
    {S("<a@b.c> SIZE=1"), R, "unexpected text after address", NULL, NULL, NULL, 0},
    /* bytes that never pass */
    {S("<a@b\rc>"), 0, "CR in address", NULL, NULL, NULL, 0},
    {S("<a@b.c>\r\n"), 0, "CR in address", NULL, NULL, NULL, 0},
    {S("<a\n@b.c>"), 0, "LF in address", NULL, NULL, NULL, 0},
    {S("<a\0@b.c>"), 0, "NUL in address", NULL, NULL, NULL, 0},
    {S("<a@b.c> ENVID=\0"), R | P, "NUL in address", NULL, NULL, NULL, 0},
    {S("<a\x01@b.c>"), 0, "control character in address", NULL, NULL, NULL, 0},
    {S("<a\t@b.c>"), 0, "control character in address", NULL, NULL, NULL, 0},
    {S("<a\x7f@b.c>"), 0, "control character in address", NULL, NULL, NULL, 0},
    {S("<\"a\x01\"@b.c>"), 0, "control character in address", NULL, NULL, NULL, 0},
    /* 8-bit and UTF-8 */
    {S("<j\xc3\xb6rg@b.c>"), 0, "8-bit character in address without SMTPUTF8", NULL, NULL, NULL, 0},
    {S("<j\xc3\xb6rg@b.c>"), U, NULL, "j\xc3\xb6rg", "b.c", "u", 0},
    {S("<\"j\xc3\xb6 rg\"@b.c>"), U, NULL, "\"j\xc3\xb6 rg\"", "b.c", "qu", 0},
    {S("<a@M\xc3\x9cNCHEN.DE>"), U, NULL, "a", "m\xc3\x9cnchen.de", "u", 0},
    {S("<a@\xe4\xbe\x8b\xe3\x81\x88.jp>"), U, NULL, "a", "\xe4\xbe\x8b\xe3\x81\x88.jp", "u", 0},
    {S("<a@b.c> ENVID=\xc3\xa9"), R | P, "8-bit character in address without SMTPUTF8", NULL, NULL, NULL, 0},
    {S("<j\xc3rg@b.c>"), U, "invalid UTF-8 in address", NULL, NULL, NULL, 0},
    {S("<j\xc0\xafrg@b.c>"), U, "invalid UTF-8 in address", NULL, NULL, NULL, 0},
    {S("<\xed\xa0\x80@b.c>"), U, "invalid UTF-8 in address", NULL, NULL, NULL, 0},
    {S("<\xf4\x90\x80\x80@b.c>"), U, "invalid UTF-8 in address", NULL, NULL, NULL, 0},
    {S("<a@b.c\xc3"), U, "invalid UTF-8 in address", NULL, NULL, NULL, 0},
    {S("<a@[192.0.2.\xc3\xa9]>"), U, "invalid character in address literal", NULL, NULL, NULL, 0},
    /* trailing garbage, brackets */
    {S("<a@b.c>x"), 0, "unexpected text after address", NULL, NULL, NULL, 0},
    {S("<a@b.c>>"), 0, "unexpected text after address", NULL, NULL, NULL, 0},
    {S("<a@b.c> x"), 0, "unexpected text after address", NULL, NULL, NULL, 0},
    {S("a@b.c"), 0, "missing < before address", NULL, NULL, NULL, 0},
    {S("a@B.c"), B, NULL, "a", "b.c", "", 0},
    {S("a@b.c SIZE=1"), B | P | R, NULL, "a", "b.c", "", 1},
    {S("a@b.c>"), B, "invalid character in domain", NULL, NULL, NULL, 0},
    {S("<a@b.c"), 0, "missing > at end of path", NULL, NULL, NULL, 0},
    {S("<a@b.c"), B, "missing > at end of path", NULL, NULL, NULL, 0},
    {S("<a@b.c x>"), 0, "invalid character in domain", NULL, NULL, NULL, 0},
    {S("<a"), 0, "missing > at end of path", NULL, NULL, NULL, 0},
    {S("<"), 0, "empty local part", NULL, NULL, NULL, 0},
    {S("Postmaster"), B | PM, NULL, "Postmaster", "", "", 0},
    {S(""), B, "empty address", NULL, NULL, NULL, 0},
    {S("   "), B, "empty address", NULL, NULL, NULL, 0},
    /* local part shape */
    {S("<@>"), 0, "invalid domain in source route", NULL, NULL, NULL, 0},
    {S("@b.c"), B, "empty local part", NULL, NULL, NULL, 0},
    {S("<a>"), 0, "missing @ in address", NULL, NULL, NULL, 0},
    {S("<a@>"), 0, "missing domain", NULL, NULL, NULL, 0},
    {S("<a b@c.d>"), 0, "invalid character in local part", NULL, NULL, NULL, 0},
    {S("<a(c)@c.d>"), 0, "invalid character in local part", NULL, NULL, NULL, 0},
    {S("<.a@b.c>"), 0, "local part starts with a dot", NULL, NULL, NULL, 0},
    {S("<a.@b.c>"), 0, "local part ends with a dot", NULL, NULL, NULL, 0},
    {S("<a..b@b.c>"), 0, "two dots in a row in local part", NULL, NULL, NULL, 0},
    {S("<a.b.c@b.c>"), 0, NULL, "a.b.c", "b.c", "", 0},
    {S("<\"a..b.\"@b.c>"), 0, NULL, "\"a..b.\"", "b.c", "q", 0},
    /* domain shape */
    {S("<a@.b.c>"), 0, "domain starts with a dot", NULL, NULL, NULL, 0},
    {S("<a@b..c>"), 0, "two dots in a row in domain", NULL, NULL, NULL, 0},
    {S("<a@b.c.>"), 0, "domain ends with a dot", NULL, NULL, NULL, 0},
    {S("<a@-b.c>"), 0, "domain label starts with a hyphen", NULL, NULL, NULL, 0},
    {S("<a@b-.c>"), 0, "domain label ends with a hyphen", NULL, NULL, NULL, 0},
    {S("<a@b.c->"), 0, "domain label ends with a hyphen", NULL, NULL, NULL, 0},
    {S("<a@b-c.d-e>"), 0, NULL, "a", "b-c.d-e", "", 0},
    {S("<a@b_c.d>"), 0, "invalid character in domain", NULL, NULL, NULL, 0},
    {S("<a@b.c@d>"), 0, "invalid character in domain", NULL, NULL, NULL, 0},
};

static int mflag_ok(const gw_mailbox *mb, const char *want)
{
	return (mb->null != 0) == (strchr(want, 'n') != NULL) &&
	       (mb->quoted != 0) == (strchr(want, 'q') != NULL) &&
	       (mb->literal != 0) == (strchr(want, 'l') != NULL) &&
	       (mb->utf8 != 0) == (strchr(want, 'u') != NULL);
}

/* Parse from an allocation of exactly len bytes, or of len bytes plus junk after them. */
static int parse_copy(const char *in, size_t len, unsigned flags, int junk, gw_path *path, const char **err)
{
	static const char tail[] = "@x> SIZE=1 \r\n\0\xff<";
	size_t extra = junk ? sizeof tail : 0;
	char *buf = malloc(len + extra > 0 ? len + extra : 1);
	int rc;

	assert_non_null(buf);
	memcpy(buf, in, len);
	if (junk)
		memcpy(buf + len, tail, sizeof tail);
	*err = NULL;
	rc = gw_path_parse(buf, len, flags, path, err);
	free(buf);
	return rc;
}

static void check_case(const addr_case *c, size_t idx)
{
	gw_path *path = malloc(sizeof *path), *path2 = malloc(sizeof *path2);
	const char *err = NULL, *err2 = NULL;
	int rc, rc2;

	assert_non_null(path);
	assert_non_null(path2);
	rc = parse_copy(c->in, c->len, c->flags, 0, path, &err);
	if (c->err != NULL) {
		if (rc != -1 || err == NULL || strcmp(err, c->err) != 0)
			fail_msg("case %zu \"%.*s\": got rc %d \"%s\", want -1 \"%s\"", idx, (int)c->len,
				 c->in, rc, err ? err : "(null)", c->err);
	} else {
		if (rc != 0)
			fail_msg("case %zu \"%.*s\": got rc %d \"%s\", want 0", idx, (int)c->len, c->in, rc,
				 err ? err : "(null)");
		if (strcmp(path->mbox.local, c->local) != 0 || strcmp(path->mbox.domain, c->domain) != 0)
			fail_msg("case %zu \"%.*s\": got \"%s\" @ \"%s\", want \"%s\" @ \"%s\"", idx,
				 (int)c->len, c->in, path->mbox.local, path->mbox.domain, c->local,
				 c->domain);
		if (!mflag_ok(&path->mbox, c->mflags))
			fail_msg("case %zu \"%.*s\": got null %d quoted %d literal %d utf8 %d, want \"%s\"",
				 idx, (int)c->len, c->in, path->mbox.null, path->mbox.quoted,
				 path->mbox.literal, path->mbox.utf8, c->mflags);
		if (path->nparams != c->nparams)
			fail_msg("case %zu \"%.*s\": got %zu params, want %zu", idx, (int)c->len, c->in,
				 path->nparams, c->nparams);
	}
	rc2 = parse_copy(c->in, c->len, c->flags, 1, path2, &err2);
	if (rc2 != rc || (rc == -1 && strcmp(err, err2) != 0) || memcmp(path, path2, sizeof *path) != 0)
		fail_msg("case %zu \"%.*s\" with junk after len: got rc %d \"%s\", want rc %d \"%s\"", idx,
			 (int)c->len, c->in, rc2, err2 ? err2 : "", rc, err ? err : "");
	free(path);
	free(path2);
}

static void test_cases(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		check_case(&cases[i], i);
}

/* n bytes of domain in labels of at most 51 octets. */
static void make_domain(char *d, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		d[i] = (i % 51 == 50 && i != n - 1) ? '.' : 'd';
}

/* "<" local(nl) "@" domain(nd) ">", or bare. */
static size_t make_path(char *buf, size_t nl, size_t nd, int bare)
{
	size_t n = 0;

	if (!bare)
		buf[n++] = '<';
	memset(buf + n, 'l', nl);
	n += nl;
	buf[n++] = '@';
	make_domain(buf + n, nd);
	n += nd;
	if (!bare)
		buf[n++] = '>';
	return n;
}

static void test_limits(void **state)
{
	static const struct {
		size_t nl, nd;
		int bare;
		const char *err;
	} lim[] = {
	    {64, 10, 0, NULL},
	    {65, 10, 0, "local part longer than 64 octets"},
	    {1000, 10, 0, "local part longer than 64 octets"},
	    {64, 189, 0, NULL}, /* path exactly 256 */
	    {64, 190, 0, "path longer than 256 octets"},
	    {64, 189, 1, NULL}, /* bare: brackets counted as if written */
	    {64, 190, 1, "path longer than 256 octets"},
	    {1, 252, 0, NULL},
	    {1, 255, 0, "path longer than 256 octets"}, /* the domain limit holds, the path one does not */
	    {1, 256, 0, "domain longer than 255 octets"},
	    {1, 5000, 0, "domain longer than 255 octets"},
	};
	static char buf[8192];
	addr_case c;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof lim / sizeof lim[0]; i++) {
		memset(&c, 0, sizeof c);
		c.in = buf;
		c.len = make_path(buf, lim[i].nl, lim[i].nd, lim[i].bare);
		c.flags = lim[i].bare ? B : 0;
		c.err = lim[i].err;
		if (c.err == NULL) {
			gw_path path;
			const char *err = NULL;

			if (gw_path_parse(buf, c.len, c.flags, &path, &err) != 0)
				fail_msg("limit %zu (local %zu, domain %zu): got \"%s\", want success", i,
					 lim[i].nl, lim[i].nd, err);
			if (strlen(path.mbox.local) != lim[i].nl || strlen(path.mbox.domain) != lim[i].nd)
				fail_msg("limit %zu: got local %zu domain %zu, want %zu %zu", i,
					 strlen(path.mbox.local), strlen(path.mbox.domain), lim[i].nl,
					 lim[i].nd);
			continue;
		}
		check_case(&c, 1000 + i);
	}
	/* A label over 63 octets is refused even when the domain is short enough. */
	{
		char d[80];
		gw_path path;
		const char *err = NULL;
		int n = snprintf(d, sizeof d, "<a@%.*s.com>", 64,
				 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");

		if (gw_path_parse(d, (size_t)n, 0, &path, &err) != -1 ||
		    strcmp(err, "domain label longer than 63 octets") != 0)
			fail_msg("64-octet label: got \"%s\", want \"domain label longer than 63 octets\"",
				 err);
		n = snprintf(d, sizeof d, "<a@%.*s.com>", 63,
			     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
		if (gw_path_parse(d, (size_t)n, 0, &path, &err) != 0)
			fail_msg("63-octet label: got \"%s\", want success", err);
	}
	/* Quoted local part: the quotes count. */
	{
		size_t ql;

		for (ql = 62; ql <= 63; ql++) {
			size_t n = 0;

			buf[n++] = '<';
			buf[n++] = '"';
			memset(buf + n, 'q', ql);
			n += ql;
			memcpy(buf + n, "\"@x.y>", 6);
			n += 6;
			memset(&c, 0, sizeof c);
			c.in = buf;
			c.len = n;
			c.err = ql == 62 ? NULL : "local part longer than 64 octets";
			c.local = "";
			if (c.err == NULL) {
				gw_path path;
				const char *err = NULL;

				if (gw_path_parse(buf, n, 0, &path, &err) != 0 ||
				    strlen(path.mbox.local) != 64)
					fail_msg("quoted 64: got \"%s\", want success", err ? err : "");
			} else {
				check_case(&c, 2000 + ql);
			}
		}
	}
}

static void test_param_limits(void **state)
{
	static char buf[2048];
	size_t n, vlen, klen;
	gw_path path;
	const char *err;

	(void)state;
	/* ORCPT value exactly 500 octets, then 501. */
	for (vlen = 500; vlen <= 501; vlen++) {
		n = (size_t)snprintf(buf, sizeof buf, "<a@b.c> ORCPT=rfc822;");
		memset(buf + n, 'v', vlen - 7);
		n += vlen - 7;
		err = NULL;
		if (vlen == 500 && (gw_path_parse(buf, n, P, &path, &err) != 0 ||
				    strlen(gw_path_param(&path, "orcpt")->value) != 500))
			fail_msg("500-octet value: got \"%s\", want success", err ? err : "");
		if (vlen == 501 && (gw_path_parse(buf, n, P, &path, &err) != -1 ||
				    strcmp(err, "parameter value longer than 500 octets") != 0))
			fail_msg(
			    "501-octet value: got \"%s\", want \"parameter value longer than 500 octets\"",
			    err ? err : "success");
	}
	/* Keyword of 20 octets reaches the unknown-parameter check; 21 does not. */
	for (klen = 20; klen <= 21; klen++) {
		n = (size_t)snprintf(buf, sizeof buf, "<a@b.c> ");
		memset(buf + n, 'K', klen);
		n += klen;
		err = NULL;
		gw_path_parse(buf, n, P, &path, &err);
		if (strcmp(err, klen == 20 ? "unknown parameter" : "parameter keyword too long") != 0)
			fail_msg("keyword of %zu: got \"%s\"", klen, err);
	}
	/* ENVID: 100 characters, then 101. */
	for (vlen = 100; vlen <= 101; vlen++) {
		n = (size_t)snprintf(buf, sizeof buf, "<a@b.c> ENVID=");
		memset(buf + n, 'e', vlen);
		n += vlen;
		err = NULL;
		if ((gw_path_parse(buf, n, R | P, &path, &err) == 0) != (vlen == 100))
			fail_msg("ENVID of %zu: got \"%s\"", vlen, err ? err : "success");
	}
	/* Eight parameters are allowed (unknown or not, the count comes first). */
	n = (size_t)snprintf(buf, sizeof buf,
			     "<a@b.c> SIZE=1 BODY=7BIT RET=FULL ENVID=x SMTPUTF8 NOTIFY=NEVER "
			     "ORCPT=rfc822;x FOO");
	err = NULL;
	if (gw_path_parse(buf, n, P, &path, &err) != -1 || strcmp(err, "unknown parameter") != 0)
		fail_msg("eight: got \"%s\", want \"unknown parameter\"", err ? err : "success");
}

static void test_params_values(void **state)
{
	gw_path path;
	const char *err = NULL;
	const gw_param *pm;
	static const char in[] = "<a@b.c> size=1024 body=8bitmime SMTPUTF8 ENVID=Q+2Bx";

	(void)state;
	if (gw_path_parse(in, sizeof in - 1, R | P, &path, &err) != 0)
		fail_msg("got \"%s\", want success", err);
	pm = gw_path_param(&path, "SIZE");
	if (pm == NULL || strcmp(pm->keyword, "SIZE") != 0 || strcmp(pm->value, "1024") != 0 ||
	    !pm->has_value)
		fail_msg("SIZE: got %s=%s, want SIZE=1024", pm ? pm->keyword : "-", pm ? pm->value : "-");
	pm = gw_path_param(&path, "Body");
	if (pm == NULL || strcmp(pm->value, "8bitmime") != 0)
		fail_msg("BODY: got %s, want 8bitmime (as written)", pm ? pm->value : "-");
	pm = gw_path_param(&path, "smtputf8");
	if (pm == NULL || pm->has_value || pm->value[0] != '\0')
		fail_msg("SMTPUTF8: got has_value %d, want 0", pm ? pm->has_value : -1);
	pm = gw_path_param(&path, "ENVID");
	if (pm == NULL || strcmp(pm->value, "Q+2Bx") != 0)
		fail_msg("ENVID: got %s, want Q+2Bx", pm ? pm->value : "-");
	if (gw_path_param(&path, "RET") != NULL || gw_path_param(&path, "") != NULL ||
	    gw_path_param(NULL, "SIZE") != NULL || gw_path_param(&path, NULL) != NULL)
		fail_msg("absent parameter: got non-NULL, want NULL");
}

static void test_format(void **state)
{
	static const struct {
		const char *in;
		unsigned flags;
		const char *want;
	} f[] = {
	    {"<User@Example.COM>", 0, "User@example.com"},
	    {"<>", R, ""},
	    {"<Postmaster>", PM, "Postmaster"},
	    {"<\"a b\"@x.org>", 0, "\"a b\"@x.org"},
	    {"<@r.example:u@[IPv6:2001:DB8::1]>", 0, "u@[IPv6:2001:db8::1]"},
	};
	char out[300];
	size_t i, n;
	gw_path path, again;
	const char *err = NULL;

	(void)state;
	for (i = 0; i < sizeof f / sizeof f[0]; i++) {
		if (gw_path_parse(f[i].in, strlen(f[i].in), f[i].flags, &path, &err) != 0)
			fail_msg("%s: got \"%s\", want success", f[i].in, err);
		n = gw_mailbox_format(&path.mbox, out, sizeof out);
		if (n != strlen(f[i].want) || strcmp(out, f[i].want) != 0)
			fail_msg("%s: got \"%s\" (%zu), want \"%s\"", f[i].in, out, n, f[i].want);
		/* What format writes parses back to the same mailbox. */
		if (!path.mbox.null) {
			if (gw_path_parse(out, n, B | f[i].flags, &again, &err) != 0 ||
			    memcmp(&again.mbox, &path.mbox, sizeof again.mbox) != 0)
				fail_msg("%s: reparse of \"%s\" differs (%s)", f[i].in, out, err ? err : "");
		}
	}
	/* Truncation: like snprintf, returns what it needs and always terminates. */
	gw_path_parse("<user@example.com>", 18, 0, &path, &err);
	memset(out, 'Z', sizeof out);
	n = gw_mailbox_format(&path.mbox, out, 6);
	if (n != 16 || strcmp(out, "user@") != 0)
		fail_msg("size 6: got \"%s\" (%zu), want \"user@\" (16)", out, n);
	n = gw_mailbox_format(&path.mbox, out, 3);
	if (n != 16 || strcmp(out, "us") != 0)
		fail_msg("size 3: got \"%s\" (%zu), want \"us\" (16)", out, n);
	n = gw_mailbox_format(&path.mbox, NULL, 0);
	if (n != 16)
		fail_msg("size 0: got %zu, want 16", n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),        cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_param_limits), cmocka_unit_test(test_params_values),
	    cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
