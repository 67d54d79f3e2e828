/*
 * test_reply.c - the reply parser, fed whole, one byte at a time and in
 * random splits: every way of cutting the input must give the same transcript.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw/reply.h"

#define S(x) x, sizeof(x) - 1

typedef struct reply_case {
	const char *in;
	size_t len;
	size_t max_line, max_reply;
	const char *want; /* transcript, see transcribe() */
} reply_case;

static const reply_case cases[] = {
    {S("250 Ok\r\n"), 0, 0, "250 [] 1 {Ok};"},
    {S("250-mx.example.com\r\n250-SIZE 10240000\r\n250 HELP\r\n"), 0, 0,
     "250 [] 3 {mx.example.com\nSIZE 10240000\nHELP};"},
    {S("250\r\n"), 0, 0, "250 [] 1 {};"},
    {S("250 \r\n"), 0, 0, "250 [] 1 {};"},
    {S("250-\r\n250\r\n"), 0, 0, "250 [] 2 {\n};"},
    {S("250-first\n250 second\n"), 0, 0, "250 [] 2 {first\nsecond};"},
    {S("220 mx ESMTP\n"), 0, 0, "220 [] 1 {mx ESMTP};"},
    {S("250 2.1.0 Ok\r\n"), 0, 0, "250 [2.1.0] 1 {Ok};"},
    {S("250 2.0.0\r\n"), 0, 0, "250 [2.0.0] 1 {};"},
    {S("550 5.1.1 <a@b>: User unknown\r\n"), 0, 0, "550 [5.1.1] 1 {<a@b>: User unknown};"},
    {S("550-5.1.1 first\r\n550 5.1.1 second\r\n"), 0, 0, "550 [5.1.1] 2 {first\nsecond};"},
    {S("550-first\r\n550 5.1.1 second\r\n"), 0, 0, "550 [] 2 {first\nsecond};"},
    {S("550 4.1.1 wrong class\r\n"), 0, 0, "550 [] 1 {4.1.1 wrong class};"},
    {S("451 4.3.0 Error\r\n"), 0, 0, "451 [4.3.0] 1 {Error};"},
    {S("250 2.1.0x\r\n"), 0, 0, "250 [] 1 {2.1.0x};"},
    {S("250 2.1234.0 Ok\r\n"), 0, 0, "250 [] 1 {2.1234.0 Ok};"},
    {S("250 2..0 Ok\r\n"), 0, 0, "250 [] 1 {2..0 Ok};"},
    {S("250 2.999.999 Ok\r\n"), 0, 0, "250 [2.999.999] 1 {Ok};"},
    {S("199 too low\r\n"), 0, 0, "ERR reply code out of range;"},
    {S("600 too high\r\n"), 0, 0, "ERR reply code out of range;"},
    {S("260 second digit\r\n"), 0, 0, "ERR reply code out of range;"},
    {S("099 x\r\n"), 0, 0, "ERR reply code out of range;"},
    {S("559 top\r\n"), 0, 0, "559 [] 1 {top};"},
    {S("590 x\r\n"), 0, 0, "ERR reply code out of range;"},
    {S("200 bottom\r\n"), 0, 0, "200 [] 1 {bottom};"},
    {S("25\r\n"), 0, 0, "ERR malformed reply code;"},
    {S("\r\n"), 0, 0, "ERR malformed reply code;"},
    {S("2a0 x\r\n"), 0, 0, "ERR malformed reply code;"},
    {S("hello\r\n"), 0, 0, "ERR malformed reply code;"},
    {S("250-a\r\n251 b\r\n"), 0, 0, "ERR reply codes differ between lines;"},
    {S("250-a\r\n550 b\r\n"), 0, 0, "ERR reply codes differ between lines;"},
    {S("250_x\r\n"), 0, 0, "ERR bad separator after reply code;"},
    {S("2500\r\n"), 0, 0, "ERR bad separator after reply code;"},
    {S("250\tx\r\n"), 0, 0, "ERR bad separator after reply code;"},
    {S("250 a\0b\r\n"), 0, 0, "ERR NUL in reply;"},
    {S("250 a\x01z\r\n"), 0, 0, "ERR control character in reply;"},
    {S("250 a\x1b[31m\r\n"), 0, 0, "ERR control character in reply;"},
    {S("250 a\x7f\r\n"), 0, 0, "ERR control character in reply;"},
    {S("250 a\rb\r\n"), 0, 0, "ERR CR not followed by LF;"},
    {S("250 a\r\r\n"), 0, 0, "ERR CR not followed by LF;"},
    {S("250 a\tb\r\n"), 0, 0, "250 [] 1 {a\tb};"},
    {S("250 caf\xc3\xa9 \xff\r\n"), 0, 0, "250 [] 1 {caf\xc3\xa9 \xff};"},
    /* Limits count the line ending: 10 bytes fit max_line 10, 11 do not. */
    {S("250 1234\r\n"), 10, 0, "250 [] 1 {1234};"},
    {S("250 12345\n"), 10, 0, "250 [] 1 {12345};"},
    {S("250 12345\r\n"), 10, 0, "ERR line too long;"},
    {S("250 123456\n"), 10, 0, "ERR line too long;"},
    {S("250 123456789012345678901234567890"), 10, 0, "ERR line too long;"},
    {S("250-aaaa\r\n250 bbbb\r\n"), 0, 20, "250 [] 2 {aaaa\nbbbb};"},
    {S("250-aaaa\r\n250 bbbbb\r\n"), 0, 20, "ERR reply too long;"},
    {S("250-aaaa\r\n250 bbbb\r\n250 cccc\r\n"), 0, 20, "250 [] 2 {aaaa\nbbbb};250 [] 1 {cccc};"},
    {S("250 a\r\n354 b\r\n"), 0, 0, "250 [] 1 {a};354 [] 1 {b};"},
    {S("250 a\r\n354 b\r\n221 2.0.0 Bye\r\n"), 0, 0, "250 [] 1 {a};354 [] 1 {b};221 [2.0.0] 1 {Bye};"},
    {S("250-a\r\n250 b"), 0, 0, "MORE"},
    {S("250 a\r"), 0, 0, "MORE"},
    {S("250 a\r\n25"), 0, 0, "250 [] 1 {a};MORE"},
    {S(""), 0, 0, ""},
    {S("250 ok\r\n600 bad\r\n250 never\r\n"), 0, 0, "250 [] 1 {ok};ERR reply code out of range;"},
};

typedef size_t (*split_fn)(size_t remaining, uint32_t *rng);

static size_t split_whole(size_t remaining, uint32_t *rng)
{
	(void)rng;
	return remaining;
}

static size_t split_bytes(size_t remaining, uint32_t *rng)
{
	(void)rng;
	return remaining > 0 ? 1 : 0;
}

static size_t split_random(size_t remaining, uint32_t *rng)
{
	*rng = *rng * 1103515245u + 12345u;
	return remaining == 0 ? 0 : 1 + (*rng >> 8) % remaining;
}

__attribute__((format(printf, 3, 4))) static void append(char *out, size_t size, const char *fmt, ...)
{
	size_t n = strlen(out);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out + n, size - n, fmt, ap);
	va_end(ap);
}

/* Feed in[0..len) in chunks chosen by split; describe every reply and error in out. */
static void transcribe(const reply_case *c, split_fn split, uint32_t seed, char *out, size_t size)
{
	gw_reply_parser *p = malloc(sizeof *p);
	gw_reply *r = malloc(sizeof *r);
	size_t off = 0, pending = 0;
	uint32_t rng = seed;

	assert_non_null(p);
	assert_non_null(r);
	out[0] = '\0';
	gw_reply_parser_init(p, c->max_line, c->max_reply);
	while (off < c->len) {
		size_t n = split(c->len - off, &rng), coff = 0;
		/* A chunk in its own allocation, so ASan sees any read past it. */
		char *chunk = malloc(n);

		assert_non_null(chunk);
		memcpy(chunk, c->in + off, n);
		while (coff < n) {
			size_t used = 9999;
			const char *err = NULL;
			int rc = gw_reply_parse(p, chunk + coff, n - coff, &used, r, &err);

			if (rc < 0) {
				append(out, size, "ERR %s;", err);
				free(chunk);
				goto done;
			}
			if (rc == 0) {
				if (used != n - coff)
					fail_msg("%s: rc 0 used %zu, want %zu", c->in, used, n - coff);
				pending = 1;
				coff = n;
				break;
			}
			if (used == 0 || used > n - coff)
				fail_msg("%s: rc 1 used %zu of %zu", c->in, used, n - coff);
			if (strlen(r->text) != r->text_len)
				fail_msg("%s: text_len %zu, strlen %zu", c->in, r->text_len, strlen(r->text));
			append(out, size, "%d [%s] %u {%s};", r->code, r->enh, r->nlines, r->text);
			pending = 0;
			coff += used;
		}
		if (coff < n)
			pending = 1;
		off += n;
		free(chunk);
	}
	/* Bytes left after the last complete reply: partial, not lost. */
	if (pending)
		append(out, size, "MORE");
done:
	free(p);
	free(r);
}

static void test_cases(void **state)
{
	static char got[16384], again[16384];
	size_t i;
	uint32_t seed;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const reply_case *c = &cases[i];

		transcribe(c, split_whole, 0, got, sizeof got);
		if (strcmp(got, c->want) != 0)
			fail_msg("case %zu %.*s: got \"%s\", want \"%s\"", i, (int)c->len, c->in, got,
				 c->want);
		transcribe(c, split_bytes, 0, again, sizeof again);
		if (strcmp(again, c->want) != 0)
			fail_msg("case %zu byte at a time: got \"%s\", want \"%s\"", i, again, c->want);
		for (seed = 1; seed <= 50; seed++) {
			transcribe(c, split_random, seed * 7919u + (uint32_t)i, again, sizeof again);
			if (strcmp(again, c->want) != 0)
				fail_msg("case %zu random split seed %u: got \"%s\", want \"%s\"", i, seed,
					 again, c->want);
		}
	}
}

/* Line length limit at the default: 1000 bytes with CRLF fit, 1001 do not. */
static void test_default_line_limit(void **state)
{
	static char buf[1200];
	static char got[4096];
	reply_case c;
	size_t textn;

	(void)state;
	for (textn = 994; textn <= 995; textn++) {
		memcpy(buf, "250 ", 4);
		memset(buf + 4, 'x', textn);
		memcpy(buf + 4 + textn, "\r\n", 2);
		c.in = buf;
		c.len = textn + 6;
		c.max_line = 0;
		c.max_reply = 0;
		transcribe(&c, split_whole, 0, got, sizeof got);
		if (textn == 994 && strncmp(got, "250 [] 1 {xxx", 13) != 0)
			fail_msg("1000-byte line: got \"%.40s\", want a reply", got);
		if (textn == 995 && strcmp(got, "ERR line too long;") != 0)
			fail_msg("1001-byte line: got \"%s\", want \"ERR line too long;\"", got);
	}
	/* Limits above the hard bounds are capped, not trusted. */
	{
		gw_reply_parser p;

		gw_reply_parser_init(&p, 100000, 100000);
		if (p.max_line != GW_REPLY_LINE_MAX || p.max_reply != GW_REPLY_TEXT_MAX)
			fail_msg("caps: got %zu/%zu, want %d/%d", p.max_line, p.max_reply, GW_REPLY_LINE_MAX,
				 GW_REPLY_TEXT_MAX);
		gw_reply_parser_init(&p, 0, 0);
		if (p.max_line != GW_REPLY_LINE_MAX || p.max_reply != GW_REPLY_TEXT_MAX)
			fail_msg("defaults: got %zu/%zu, want %d/%d", p.max_line, p.max_reply,
				 GW_REPLY_LINE_MAX, GW_REPLY_TEXT_MAX);
	}
}

/* A reply exactly max_reply bytes long, many lines: text must fit, NUL included. */
static void test_full_reply(void **state)
{
	static char buf[GW_REPLY_TEXT_MAX + 16];
	gw_reply_parser p;
	static gw_reply r;
	size_t len = 0, used;
	const char *err = NULL;
	int rc;

	(void)state;
	len = 0;
	while (len + 14 + 8 <= GW_REPLY_TEXT_MAX) {
		memcpy(buf + len, "250-abcdefgh\r\n", 14);
		len += 14;
	}
	memcpy(buf + len, "250 ", 4);
	len += 4;
	while (len < GW_REPLY_TEXT_MAX - 2)
		buf[len++] = 'y';
	memcpy(buf + len, "\r\n", 2);
	len += 2;
	assert_int_equal(len, GW_REPLY_TEXT_MAX);
	gw_reply_parser_init(&p, 0, 0);
	rc = gw_reply_parse(&p, buf, len, &used, &r, &err);
	if (rc != 1)
		fail_msg("full reply: got rc %d (%s), want 1", rc, err ? err : "");
	if (used != len || r.text_len >= sizeof r.text || strlen(r.text) != r.text_len)
		fail_msg("full reply: got used %zu text_len %zu, want used %zu", used, r.text_len, len);
	/* One byte more is over the limit. */
	memmove(buf + len - 2, "y\r\n", 3);
	gw_reply_parser_init(&p, 0, 0);
	rc = gw_reply_parse(&p, buf, len + 1, &used, &r, &err);
	if (rc != -1 || strcmp(err, "reply too long") != 0)
		fail_msg("reply + 1: got rc %d, want -1 \"reply too long\"", rc);
}

static void test_used_two_replies(void **state)
{
	static const char in[] = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go";
	gw_reply_parser p;
	static gw_reply r;
	size_t used, off = 0;
	const char *err = NULL;
	int rc;

	(void)state;
	gw_reply_parser_init(&p, 0, 0);
	rc = gw_reply_parse(&p, in, sizeof in - 1, &used, &r, &err);
	if (rc != 1 || used != 14 || strcmp(r.enh, "2.1.0") != 0)
		fail_msg("first: got rc %d used %zu enh %s, want 1 14 2.1.0", rc, used, r.enh);
	off += used;
	rc = gw_reply_parse(&p, in + off, sizeof in - 1 - off, &used, &r, &err);
	if (rc != 1 || used != 14 || strcmp(r.enh, "2.1.5") != 0)
		fail_msg("second: got rc %d used %zu enh %s, want 1 14 2.1.5", rc, used, r.enh);
	off += used;
	rc = gw_reply_parse(&p, in + off, sizeof in - 1 - off, &used, &r, &err);
	if (rc != 0 || used != 6)
		fail_msg("third: got rc %d used %zu, want 0 6", rc, used);
	rc = gw_reply_parse(&p, "\r\n", 2, &used, &r, &err);
	if (rc != 1 || used != 2 || r.code != 354 || strcmp(r.text, "go") != 0)
		fail_msg("third end: got rc %d used %zu code %d text %s, want 1 2 354 go", rc, used, r.code,
			 r.text);
	rc = gw_reply_parse(&p, "", 0, &used, &r, &err);
	if (rc != 0 || used != 0)
		fail_msg("empty: got rc %d used %zu, want 0 0", rc, used);
}

static void test_reset_after_error(void **state)
{
	gw_reply_parser p;
	static gw_reply r;
	size_t used;
	const char *err = NULL;
	int rc;

	(void)state;
	gw_reply_parser_init(&p, 0, 0);
	rc = gw_reply_parse(&p, "999 x\r\n", 7, &used, &r, &err);
	if (rc != -1 || strcmp(err, "reply code out of range") != 0)
		fail_msg("bad code: got rc %d err %s, want -1 reply code out of range", rc, err);
	rc = gw_reply_parse(&p, "250 ok\r\n", 8, &used, &r, &err);
	if (rc != -1 || strstr(err, "reset") == NULL)
		fail_msg("after error: got rc %d err %s, want -1 and a reset message", rc, err);
	gw_reply_parser_reset(&p);
	rc = gw_reply_parse(&p, "250 ok\r\n", 8, &used, &r, &err);
	if (rc != 1 || r.code != 250 || strcmp(r.text, "ok") != 0 || r.nlines != 1)
		fail_msg("after reset: got rc %d code %d text %s, want 1 250 ok", rc, r.code, r.text);
	/* Reset also drops a partial reply. */
	rc = gw_reply_parse(&p, "250-half\r\n25", 12, &used, &r, &err);
	assert_int_equal(rc, 0);
	gw_reply_parser_reset(&p);
	rc = gw_reply_parse(&p, "421 bye\r\n", 9, &used, &r, &err);
	if (rc != 1 || r.code != 421 || r.nlines != 1 || strcmp(r.text, "bye") != 0)
		fail_msg("partial then reset: got rc %d code %d nlines %u text %s, want 1 421 1 bye", rc,
			 r.code, r.nlines, r.text);
}

static void parse_one(const char *in, gw_reply *r)
{
	gw_reply_parser p;
	size_t used;
	const char *err = NULL;

	gw_reply_parser_init(&p, 0, 0);
	if (gw_reply_parse(&p, in, strlen(in), &used, r, &err) != 1)
		fail_msg("parse %s: got %s, want a reply", in, err ? err : "incomplete");
}

static void test_has_keyword(void **state)
{
	static const struct {
		const char *kw;
		int found;
		const char *arg;
	} kws[] = {
	    {"SIZE", 1, "10240000"},     {"size", 1, "10240000"},    {"PIPELINING", 1, NULL},
	    {"STARTTLS", 1, NULL},       {"AUTH", 1, "PLAIN LOGIN"}, {"8BITMIME", 1, NULL},
	    {"CHUNKING", 1, NULL},       {"SIZ", 0, NULL},           {"SIZE 1", 0, NULL},
	    {"mx.example.com", 0, NULL}, {"DSN", 0, NULL},           {"", 0, NULL},
	    {"XCLIENT", 1, "NAME ADDR"},
	};
	static gw_reply r;
	size_t i;

	(void)state;
	parse_one("250-mx.example.com Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n"
		  "250-AUTH=PLAIN LOGIN\r\n250-XCLIENT NAME ADDR  \r\n250-8BITMIME\r\n250 CHUNKING\r\n",
		  &r);
	for (i = 0; i < sizeof kws / sizeof kws[0]; i++) {
		const char *arg = "unset";
		size_t alen = 999;
		int got = gw_reply_has_keyword(&r, kws[i].kw, &arg, &alen);

		if (got != kws[i].found)
			fail_msg("%s: got %d, want %d", kws[i].kw, got, kws[i].found);
		if (kws[i].arg == NULL && (arg != NULL || alen != 0))
			fail_msg("%s: got arg \"%.*s\", want none", kws[i].kw, (int)alen, arg ? arg : "");
		if (kws[i].arg != NULL &&
		    (arg == NULL || alen != strlen(kws[i].arg) || memcmp(arg, kws[i].arg, alen) != 0))
			fail_msg("%s: got arg \"%.*s\", want \"%s\"", kws[i].kw, (int)alen, arg ? arg : "",
				 kws[i].arg);
	}
	assert_int_equal(gw_reply_has_keyword(&r, "SIZE", NULL, NULL), 1);
	/* A one-line EHLO reply offers nothing, whatever the server calls itself. */
	parse_one("250 SIZE\r\n", &r);
	assert_int_equal(gw_reply_has_keyword(&r, "SIZE", NULL, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_default_line_limit),
	    cmocka_unit_test(test_full_reply),
	    cmocka_unit_test(test_used_two_replies),
	    cmocka_unit_test(test_reset_after_error),
	    cmocka_unit_test(test_has_keyword),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
