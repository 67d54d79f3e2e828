/*
 * test_proxy_pool.c - the outbound address pool: the blocklist verdict on a
 * reply, the choice of an address, retirement per destination, its expiry
 * (an injected clock) and the choice when every address is retired.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pool.h"

static int64_t fake_now = 1000000;
static int64_t fake_clock(void)
{
	return fake_now;
}

static char *words[] = {"listed", "blocked", "blacklist", "blocklist", "rbl", "spamhaus", "reputation"};
#define NW (sizeof(words) / sizeof(words[0]))

static gw_reply mk(int code, const char *enh, const char *text)
{
	gw_reply r;

	memset(&r, 0, sizeof(r));
	r.code = code;
	snprintf(r.enh, sizeof(r.enh), "%s", enh);
	snprintf(r.text, sizeof(r.text), "%s", text);
	r.text_len = strlen(r.text);
	r.nlines = 1;
	return r;
}

static void test_verdicts(void **state)
{
	gw_reply r;

	(void)state;
	r = mk(554, "5.7.1", "Service unavailable; Client host [127.0.0.2] blocked using zen.spamhaus.org");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 1);
	r = mk(550, "", "Your IP is LISTED at some RBL");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 1);
	r = mk(553, "5.7.1", "poor Reputation of the sending address");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 1);
	r = mk(550, "5.7.1", "first line\nsecond line: see blocklist.example");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 1);
	/* a 4xx or a 5xx without the code/enhanced code is not a verdict on the address */
	r = mk(451, "4.7.1", "listed, try later");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 0);
	r = mk(553, "5.1.8", "sender domain blocked");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 0);
	/* the right code without a word */
	r = mk(550, "5.1.1", "no such user");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 0);
	r = mk(554, "5.7.1", "Relay access denied");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 0);
	/* no words: nothing matches */
	r = mk(554, "5.7.1", "blocked");
	assert_int_equal(gwp_blocklisted(&r, words, 0), 0);
}

static void test_choice_retire_expiry(void **state)
{
	const char *addrs[] = {"192.0.2.1", "192.0.2.2", "2001:db8::3"};
	gwp_pool *p = gwp_pool_new(fake_clock);
	char out[1024];
	int all = -1;

	(void)state;
	assert_non_null(p);
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "mx.a.test", &all), 0);
	assert_int_equal(all, 0);
	assert_int_equal(gwp_pool_choose(p, addrs, 0, "mx.a.test", &all), -1);
	assert_int_equal(gwp_pool_retire(p, "192.0.2.1", "mx.a.test", 3600000), 1);
	assert_int_equal(gwp_pool_retire(p, "192.0.2.1", "mx.a.test", 3600000), 0); /* already */
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "mx.a.test", &all), 1);
	assert_int_equal(all, 0);
	/* per destination: another one still gets the first address */
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "mx.b.test", &all), 0);
	assert_int_equal(gwp_pool_list(p, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "192.0.2.1 mx.a.test retired=0 left=3600"));
	/* just before the end, still retired; at the end, back in use */
	fake_now += 3600000 - 1;
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "mx.a.test", &all), 1);
	fake_now += 1;
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "mx.a.test", &all), 0);
	assert_int_equal(gwp_pool_list(p, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	gwp_pool_free(&p);
	assert_null(p);
}

static void test_all_retired(void **state)
{
	const char *addrs[] = {"192.0.2.1", "192.0.2.2", "192.0.2.3"};
	gwp_pool *p = gwp_pool_new(fake_clock);
	int all = 0;

	(void)state;
	assert_int_equal(gwp_pool_retire(p, "192.0.2.2", "d", 3600000), 1);
	fake_now += 10;
	assert_int_equal(gwp_pool_retire(p, "192.0.2.1", "d", 3600000), 1);
	fake_now += 10;
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "d", &all), 2);
	assert_int_equal(all, 0);
	assert_int_equal(gwp_pool_retire(p, "192.0.2.3", "d", 3600000), 1);
	/* every one retired: the one retired longest ago, flagged */
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "d", &all), 1);
	assert_int_equal(all, 1);
	/* retired again (its second verdict): now the next oldest */
	fake_now += 10;
	assert_int_equal(gwp_pool_retire(p, "192.0.2.2", "d", 3600000), 0);
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "d", &all), 0);
	assert_int_equal(all, 1);
	gwp_pool_free(&p);
}

static void test_accepts_others(void **state)
{
	gwp_pool *p = gwp_pool_new(fake_clock);

	(void)state;
	assert_int_equal(gwp_pool_accepts_others(p, "192.0.2.1", "d", 60000), 0);
	gwp_pool_ok(p, "192.0.2.1", "d");
	/* its own success does not count, nor another destination's */
	assert_int_equal(gwp_pool_accepts_others(p, "192.0.2.1", "d", 60000), 0);
	assert_int_equal(gwp_pool_accepts_others(p, "192.0.2.2", "e", 60000), 0);
	assert_int_equal(gwp_pool_accepts_others(p, "192.0.2.2", "d", 60000), 1);
	fake_now += 60001; /* too long ago */
	assert_int_equal(gwp_pool_accepts_others(p, "192.0.2.2", "d", 60000), 0);
	gwp_pool_free(&p);
}

static void test_table_full(void **state)
{
	gwp_pool *p = gwp_pool_new(fake_clock);
	const char *addrs[] = {"192.0.2.1", "192.0.2.2"};
	char dest[32];
	int i, all;

	(void)state;
	/* the newest retirement survives a table overflowing with successes */
	assert_int_equal(gwp_pool_retire(p, "192.0.2.1", "keep", 3600000), 1);
	for (i = 0; i < GWP_POOL_ENTRIES + 10; i++) {
		snprintf(dest, sizeof(dest), "d%d", i);
		fake_now++;
		gwp_pool_ok(p, "192.0.2.1", dest);
	}
	assert_int_equal(gwp_pool_choose(p, addrs, 2, "keep", &all), 1);
	gwp_pool_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verdicts),    cmocka_unit_test(test_choice_retire_expiry),
	    cmocka_unit_test(test_all_retired), cmocka_unit_test(test_accepts_others),
	    cmocka_unit_test(test_table_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
