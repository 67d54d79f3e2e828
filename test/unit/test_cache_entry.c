/*
 * test_cache_entry.c - the shared call-ahead cache's stream entries
 * (milter/cache_entry.h): a good entry of each verdict, every field's
 * bounds and alphabet, missing and repeated fields, unknown fields skipped,
 * the TTL left (expired, cut to this gateway's own, too far ahead), the
 * fields written parse back (and a value the parser would refuse is never
 * written); shared_cache in gw.conf (needs shared_state and flood_guard);
 * the publishing queue (milter/cache_share.h) takes only while enabled.
 *
 * Does not test: Redis (test/sh/milter_shared_cache.sh does, with two
 * gw-milter daemons and a real redis-server).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "milter/cache_entry.h"
#include "milter/cache_share.h"
#include "milter/conf.h"
#include "milter_conf_test.h"

#define NOW 1800000000000LL

/* Fields of a good entry; a test changes one (name or value) by index. */
static const char *good[14] = {"gw", "mx1",   "k", "user@example.com", "v", "valid",        "c", "250",
			       "e",  "2.1.5", "t", "2.1.5 Ok",         "x", "1800000060000"};

static int parse_with(int at, const char *val, size_t vlen, gwm_ce *e)
{
	const char *f[14];
	size_t len[14];
	int i;

	for (i = 0; i < 14; i++) {
		f[i] = good[i];
		len[i] = strlen(good[i]);
	}
	if (at >= 0) {
		f[at] = val;
		len[at] = vlen;
	}
	return gwm_ce_parse(f, len, 14, e);
}

static int parse1(int at, const char *val)
{
	gwm_ce e;

	return parse_with(at, val, strlen(val), &e);
}

static void test_good(void **state)
{
	gwm_ce e;

	(void)state;
	assert_int_equal(parse_with(-1, NULL, 0, &e), 0);
	assert_string_equal(e.gw, "mx1");
	assert_string_equal(e.key, "user@example.com");
	assert_int_equal(e.kind, GW_CACHE_POSITIVE);
	assert_int_equal(e.code, 250);
	assert_string_equal(e.enh, "2.1.5");
	assert_string_equal(e.text, "2.1.5 Ok");
	assert_int_equal(e.expires_ms, 1800000060000LL);
	assert_int_equal(parse1(7, "251"), 0);
	/* unknown with a 5xx but 552 */
	{
		const char *f[14];
		size_t len[14];
		int i;

		for (i = 0; i < 14; i++)
			f[i] = good[i];
		f[5] = "unknown";
		f[7] = "550";
		f[9] = "";
		for (i = 0; i < 14; i++)
			len[i] = strlen(f[i]);
		assert_int_equal(gwm_ce_parse(f, len, 14, &e), 0);
		assert_int_equal(e.kind, GW_CACHE_NEGATIVE);
		assert_string_equal(e.enh, "");
		f[7] = "552";
		assert_int_equal(gwm_ce_parse(f, len, 14, &e), -1);
		f[7] = "450";
		assert_int_equal(gwm_ce_parse(f, len, 14, &e), -1);
		f[7] = "250";
		assert_int_equal(gwm_ce_parse(f, len, 14, &e), -1);
	}
}

static void test_malformed(void **state)
{
	char big[600];
	gwm_ce e;

	(void)state;
	/* verdicts and codes */
	assert_int_equal(parse1(5, "Valid"), -1);
	assert_int_equal(parse1(5, "temporary"), -1);
	assert_int_equal(parse1(7, "550"), -1); /* valid with a 5xx */
	assert_int_equal(parse1(7, "25"), -1);
	assert_int_equal(parse1(7, "2500"), -1);
	assert_int_equal(parse1(7, "+25"), -1);
	/* gateway names */
	assert_int_equal(parse1(1, ""), -1);
	assert_int_equal(parse1(1, "mx 1"), -1);
	assert_int_equal(parse1(1, "mx:1"), -1);
	memset(big, 'a', 256);
	big[256] = '\0';
	assert_int_equal(parse1(1, big), -1);
	big[255] = '\0';
	assert_int_equal(parse1(1, big), 0);
	/* keys: bounded, no control characters, the domain in lower case (a cache key) */
	assert_int_equal(parse1(3, ""), -1);
	assert_int_equal(parse1(3, "\001catchall 0 example.com"), -1);
	assert_int_equal(parse1(3, "a\tb@example.com"), -1);
	assert_int_equal(parse1(3, "user@Example.com"), -1);
	assert_int_equal(parse1(3, "User@example.com"), 0);
	assert_int_equal(parse1(3, "postmaster"), 0);
	memset(big, 'a', 321);
	big[321] = '\0';
	assert_int_equal(parse1(3, big), -1);
	big[320] = '\0';
	assert_int_equal(parse1(3, big), 0);
	assert_int_equal(parse_with(3, "a\0b@example.com", 15, &e), -1); /* a NUL inside */
	/* enhanced codes */
	assert_int_equal(parse1(9, "2.1"), -1);
	assert_int_equal(parse1(9, "2.1.5."), -1);
	assert_int_equal(parse1(9, "22.1.5"), -1);
	assert_int_equal(parse1(9, "2.1234.5"), -1);
	assert_int_equal(parse1(9, "2.a.5"), -1);
	assert_int_equal(parse1(9, "2.100.100"), 0);
	/* text */
	assert_int_equal(parse1(11, "ok\r\n550 forged"), -1);
	assert_int_equal(parse1(11, "ok\x7f"), -1);
	memset(big, 't', 201);
	big[201] = '\0';
	assert_int_equal(parse1(11, big), -1);
	big[200] = '\0';
	assert_int_equal(parse1(11, big), 0);
	/* expiry */
	assert_int_equal(parse1(13, ""), -1);
	assert_int_equal(parse1(13, "0"), -1);
	assert_int_equal(parse1(13, "-5"), -1);
	assert_int_equal(parse1(13, "12x"), -1);
	assert_int_equal(parse1(13, "9999999999999999999"), -1); /* 19 digits: could overflow */
	/* a field name changed: that field is missing (the other is skipped) */
	assert_int_equal(parse1(0, "gateway"), -1);
	assert_int_equal(parse1(12, "X"), -1);
}

static void test_fields_missing_repeated_extra(void **state)
{
	const char *f[18];
	size_t len[18];
	gwm_ce e;
	int i;

	(void)state;
	for (i = 0; i < 14; i++) {
		f[i] = good[i];
		len[i] = strlen(good[i]);
	}
	assert_int_equal(gwm_ce_parse(f, len, 12, &e), -1); /* no expiry */
	assert_int_equal(gwm_ce_parse(f, len, 13, &e), -1); /* odd */
	assert_int_equal(gwm_ce_parse(f, len, 0, &e), -1);
	assert_int_equal(gwm_ce_parse(NULL, len, 14, &e), -1);
	/* a field of a newer writer is skipped */
	f[14] = "z";
	f[15] = "anything \001 at all";
	for (i = 14; i < 16; i++)
		len[i] = strlen(f[i]);
	assert_int_equal(gwm_ce_parse(f, len, 16, &e), 0);
	/* a known field twice */
	f[14] = "k";
	f[15] = "other@example.com";
	for (i = 14; i < 16; i++)
		len[i] = strlen(f[i]);
	assert_int_equal(gwm_ce_parse(f, len, 16, &e), -1);
}

static void test_ttl(void **state)
{
	gwm_ce e;

	(void)state;
	assert_int_equal(parse_with(-1, NULL, 0, &e), 0);
	/* 60 s left, cut to this gateway's own positive_ttl */
	assert_int_equal(gwm_ce_ttl(&e, NOW, 3600000, 600000), 60000);
	assert_int_equal(gwm_ce_ttl(&e, NOW, 10000, 600000), 10000);
	assert_int_equal(gwm_ce_ttl(&e, NOW + 59999, 3600000, 600000), 1);
	assert_int_equal(gwm_ce_ttl(&e, NOW + 60000, 3600000, 600000), 0);
	assert_int_equal(gwm_ce_ttl(&e, NOW + 999999, 3600000, 600000), 0);
	e.kind = GW_CACHE_NEGATIVE;
	assert_int_equal(gwm_ce_ttl(&e, NOW, 3600000, 5000), 5000);
	/* a month and more ahead: nonsense, refused */
	e.expires_ms = NOW + GWM_CE_AHEAD_MAX;
	assert_int_equal(gwm_ce_ttl(&e, NOW, 3600000, 5000), 5000);
	e.expires_ms = NOW + GWM_CE_AHEAD_MAX + 1;
	assert_int_equal(gwm_ce_ttl(&e, NOW, 3600000, 5000), -1);
}

static void test_write_parse_back(void **state)
{
	const char *out[14];
	size_t len[14];
	char num[2][24];
	gwm_ce e, back;
	int i;

	(void)state;
	assert_int_equal(parse_with(-1, NULL, 0, &e), 0);
	assert_int_equal(gwm_ce_fields(&e, num, out), 0);
	for (i = 0; i < 14; i++) {
		assert_string_equal(out[i], good[i]);
		len[i] = strlen(out[i]);
	}
	assert_int_equal(gwm_ce_parse(out, len, 14, &back), 0);
	assert_memory_equal(&e, &back, sizeof(e));
	/* never written: what the parser would refuse */
	snprintf(e.text, sizeof(e.text), "a\rb");
	assert_int_equal(gwm_ce_fields(&e, num, out), -1);
	snprintf(e.text, sizeof(e.text), "ok");
	e.code = 450;
	assert_int_equal(gwm_ce_fields(&e, num, out), -1);
}

/* ---- gw.conf --------------------------------------------------------------- */

static void test_conf(void **state)
{
	char err[512] = "";
	gwm_config *c;

	(void)state;
	c = load("", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->opt.shared_cache, 0);
	gwm_config_free(&c);
	c = load("shared_cache = yes\n", err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "shared_cache"));
	assert_non_null(strstr(err, "needs shared_state"));
	c = load("shared_cache = yes\nshared_state = redis://127.0.0.1:6379/0\n", err, sizeof(err));
	assert_null(c);
	c = load("shared_cache = yes\nflood_guard = yes\nshared_state = redis://127.0.0.1:6379/0\n", err,
		 sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->opt.shared_cache, 1);
	gwm_config_free(&c);
}

/* ---- the publishing queue --------------------------------------------------- */

static void test_queue(void **state)
{
	gwm_cs_stats a, b;
	int i;

	(void)state;
	gwm_cs_stats_get(&a);
	assert_int_equal(a.on, 0);
	/* Off: nothing queued, nothing counted. */
	gwm_cs_on_verdict(NULL, "a@example.com", GW_CACHE_POSITIVE, 250, "2.1.5", "ok", 1000);
	gwm_cs_enable("mx1");
	assert_int_equal(gwm_cs_enabled(), 1);
	for (i = 0; i < GWM_CS_QUEUE_MAX + 3; i++)
		gwm_cs_on_verdict(NULL, "a@example.com", GW_CACHE_POSITIVE, 250, "2.1.5", "ok", 1000);
	gwm_cs_stats_get(&b);
	assert_int_equal(b.on, 1);
	assert_int_equal(b.dropped - a.dropped, 3);
	gwm_cs_disable();
	gwm_cs_on_verdict(NULL, "a@example.com", GW_CACHE_POSITIVE, 250, "2.1.5", "ok", 1000);
	gwm_cs_stats_get(&b);
	assert_int_equal(b.on, 0);
	assert_int_equal(b.dropped - a.dropped, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_fields_missing_repeated_extra),
	    cmocka_unit_test(test_ttl),
	    cmocka_unit_test(test_write_parse_back),
	    cmocka_unit_test(test_conf),
	    cmocka_unit_test(test_queue),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
