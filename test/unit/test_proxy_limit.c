/*
 * test_proxy_limit.c - gw-proxy's limits: the per-tenant token bucket (an
 * injected clock: burst, refill, two tenants apart, a rate changed by a
 * reload, the wait it reports, no limit), the per-destination session count
 * (take, give, the limit, refusals, listing, a table that grows), the limit
 * a marked destination gets, and the tenant_map's rate=N.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dest_limit.h"
#include "proxy_conf.h"
#include "rate_limit.h"
#include "tenant_map.h"
#include "throttle.h"
#include "watch.h"

static int64_t fake_now = 5000000;
static int64_t fake_clock(void)
{
	return fake_now;
}

/* Messages key may send now, taking them all (at most max). */
static int drain(gwp_rate *r, const char *key, long rate, int max)
{
	int n = 0;

	while (n < max && gwp_rate_take(r, key, rate, NULL))
		n++;
	return n;
}

static void test_rate_burst(void **state)
{
	gwp_rate *r = gwp_rate_new(fake_clock);
	int64_t wait = -1;

	(void)state;
	assert_non_null(r);
	/* a new tenant starts with a full minute's worth, then nothing */
	assert_int_equal(drain(r, "acme", 10, 100), 10);
	assert_int_equal(gwp_rate_take(r, "acme", 10, &wait), 0);
	assert_int_equal(wait, 6000); /* one message every 6 s at 10 a minute */
	gwp_rate_free(&r);
	assert_null(r);
}

static void test_rate_refill(void **state)
{
	gwp_rate *r = gwp_rate_new(fake_clock);
	int64_t wait = -1;

	(void)state;
	assert_int_equal(drain(r, "acme", 60, 1000), 60);
	fake_now += 999; /* 60 a minute: one a second; not quite one yet */
	assert_int_equal(gwp_rate_take(r, "acme", 60, &wait), 0);
	assert_int_equal(wait, 1);
	fake_now += 1;
	assert_int_equal(gwp_rate_take(r, "acme", 60, &wait), 1);
	assert_int_equal(wait, 0);
	assert_int_equal(gwp_rate_take(r, "acme", 60, NULL), 0);
	/* fractions add up over several takes: 10 x 500 ms = 5 messages */
	for (int i = 0; i < 10; i++) {
		fake_now += 500;
		(void)gwp_rate_take(r, "acme", 60, NULL);
	}
	assert_int_equal(drain(r, "acme", 60, 1000), 0);
	/* a long quiet time refills to one minute's worth, never more */
	fake_now += 3600 * 1000;
	assert_int_equal(drain(r, "acme", 60, 1000), 60);
	gwp_rate_free(&r);
}

static void test_rate_tenants_apart(void **state)
{
	gwp_rate *r = gwp_rate_new(fake_clock);
	char out[1024];

	(void)state;
	assert_int_equal(drain(r, "flood", 5, 100), 5);
	assert_int_equal(gwp_rate_take(r, "flood", 5, NULL), 0);
	assert_int_equal(gwp_rate_take(r, "flood", 5, NULL), 0); /* with drain's own: 3 refused */
	/* the flooding tenant's empty bucket leaves the other one alone */
	assert_int_equal(drain(r, "quiet", 5, 100), 5);
	assert_int_equal(drain(r, "none", 0, 1000), 1000); /* rate 0: no limit, only counted */
	assert_int_equal(gwp_rate_list(r, out, sizeof(out)), 3);
	assert_non_null(strstr(out, "flood messages=5 limited=3 rate=5/min tokens=0\n"));
	assert_non_null(strstr(out, "quiet messages=5 limited=1 rate=5/min tokens=0\n"));
	assert_non_null(strstr(out, "none messages=1000 limited=0 rate=none tokens=-\n"));
	gwp_rate_free(&r);
}

static void test_rate_changed(void **state)
{
	gwp_rate *r = gwp_rate_new(fake_clock);

	(void)state;
	assert_int_equal(drain(r, "acme", 100, 10), 10); /* 90 left */
	/* a reload lowers the rate to 20: the bucket holds 20 at most now */
	assert_int_equal(drain(r, "acme", 20, 1000), 20);
	/* and raising it fills at the new rate from what is there */
	fake_now += 6000; /* 10% of a minute at 200 a minute */
	assert_int_equal(drain(r, "acme", 200, 1000), 20);
	gwp_rate_free(&r);
}

static void test_rate_full_table(void **state)
{
	gwp_rate *r = gwp_rate_new(fake_clock);
	char key[32];
	int i;

	(void)state;
	for (i = 0; i < GWP_RATE_ENTRIES; i++) {
		snprintf(key, sizeof(key), "t%d", i);
		fake_now++;
		assert_int_equal(gwp_rate_take(r, key, 1, NULL), 1);
	}
	/* the table is full: a new key takes the place of the one quiet for longest (t0) */
	fake_now++;
	assert_int_equal(gwp_rate_take(r, "late", 1, NULL), 1);
	assert_int_equal(gwp_rate_take(r, "t1", 1, NULL), 0); /* still there, still empty */
	assert_int_equal(gwp_rate_take(r, "t0", 1, NULL), 1); /* came back full */
	gwp_rate_free(&r);
}

static void test_dlimit_take_give(void **state)
{
	gwp_dlimit *d = gwp_dlimit_new();
	unsigned long now = 0;
	char out[1024];

	(void)state;
	assert_non_null(d);
	assert_int_equal(gwp_dlimit_take(d, "192.0.2.25", 2, &now), 1);
	assert_int_equal(now, 1);
	assert_int_equal(gwp_dlimit_take(d, "192.0.2.25", 2, &now), 1);
	assert_int_equal(now, 2);
	assert_int_equal(gwp_dlimit_take(d, "192.0.2.25", 2, &now), 0);
	assert_int_equal(now, 2);
	/* another destination has its own count */
	assert_int_equal(gwp_dlimit_take(d, "192.0.2.26", 2, NULL), 1);
	assert_int_equal(gwp_dlimit_count(d, "192.0.2.26"), 1);
	/* a session leaves: room for one more */
	gwp_dlimit_give(d, "192.0.2.25");
	assert_int_equal(gwp_dlimit_take(d, "192.0.2.25", 2, NULL), 1);
	/* a lowered limit refuses new sessions, never the ones there */
	assert_int_equal(gwp_dlimit_take(d, "192.0.2.25", 1, &now), 0);
	assert_int_equal(gwp_dlimit_count(d, "192.0.2.25"), 2);
	/* 0: no limit */
	assert_int_equal(gwp_dlimit_take(d, "192.0.2.25", 0, &now), 1);
	assert_int_equal(now, 3);
	assert_int_equal(gwp_dlimit_list(d, out, sizeof(out)), 2);
	assert_string_equal(out, "192.0.2.25 sessions=3 limit=none refused=2\n"
				 "192.0.2.26 sessions=1 limit=2 refused=0\n");
	/* idle and never refused: not listed; giving more than taken changes nothing */
	gwp_dlimit_give(d, "192.0.2.26");
	gwp_dlimit_give(d, "192.0.2.26");
	gwp_dlimit_give(d, "198.51.100.1");
	assert_int_equal(gwp_dlimit_list(d, out, sizeof(out)), 1);
	assert_int_equal(gwp_dlimit_count(d, "192.0.2.26"), 0);
	gwp_dlimit_free(&d);
	assert_null(d);
}

static void test_dlimit_grows(void **state)
{
	gwp_dlimit *d = gwp_dlimit_new();
	char dest[32];
	int i;

	(void)state;
	/* more busy destinations than the first table holds: it grows, every count stays exact */
	for (i = 0; i < GWP_DLIMIT_ENTRIES + 100; i++) {
		snprintf(dest, sizeof(dest), "d%d", i);
		assert_int_equal(gwp_dlimit_take(d, dest, 1, NULL), 1);
	}
	for (i = 0; i < GWP_DLIMIT_ENTRIES + 100; i++) {
		snprintf(dest, sizeof(dest), "d%d", i);
		assert_int_equal(gwp_dlimit_take(d, dest, 1, NULL), 0);
		assert_int_equal(gwp_dlimit_count(d, dest), 1);
	}
	gwp_dlimit_free(&d);
}

/* A configuration with the given extra lines. */
static gwp_config *conf_with(const char *extra)
{
	char dir[] = "/tmp/gw-proxy-limit.XXXXXX", path[64], err[512];
	gwp_config *c;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/c.conf", dir);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "listen = [127.0.0.1]:10026\n%s", extra);
	fclose(f);
	c = gwp_config_load(path, err, sizeof(err));
	if (c == NULL)
		fail_msg("config: %s", err);
	unlink(path);
	rmdir(dir);
	return c;
}

static void test_marked_limit(void **state)
{
	gwp_watch *w = gwp_watch_new(fake_clock);
	gwp_env env;
	int marked = -1;

	(void)state;
	memset(&env, 0, sizeof(env));
	env.watch = w;
	env.conf = conf_with("");
	/* the defaults: no limit, 2 while marked */
	assert_int_equal(gwp_throttle_dest_limit(&env, "192.0.2.25", &marked), 0);
	assert_int_equal(marked, 0);
	gwp_watch_mark(w, "192.0.2.25", GWP_MARK_TARPIT, "31000ms", 60000);
	assert_int_equal(gwp_throttle_dest_limit(&env, "192.0.2.25", &marked), 2);
	assert_int_equal(marked, 1);
	assert_int_equal(gwp_throttle_dest_limit(&env, "192.0.2.26", &marked), 0);
	fake_now += 60000; /* the mark ends */
	assert_int_equal(gwp_throttle_dest_limit(&env, "192.0.2.25", &marked), 0);
	assert_int_equal(marked, 0);
	gwp_config_free((gwp_config **)&env.conf);

	/* a mark never raises the limit; marked_concurrency = 0 lowers nothing */
	env.conf = conf_with("destination_concurrency = 1\nmarked_concurrency = 5\n");
	gwp_watch_mark(w, "192.0.2.25", GWP_MARK_THROTTLE, "421", 60000);
	assert_int_equal(gwp_throttle_dest_limit(&env, "192.0.2.25", &marked), 1);
	gwp_config_free((gwp_config **)&env.conf);
	env.conf = conf_with("destination_concurrency = 0\nmarked_concurrency = 0\n");
	assert_int_equal(gwp_throttle_dest_limit(&env, "192.0.2.25", &marked), 0);
	assert_int_equal(marked, 0);
	gwp_config_free((gwp_config **)&env.conf);
	env.conf = conf_with("destination_concurrency = 0\nmarked_concurrency = 3\n");
	assert_int_equal(gwp_throttle_dest_limit(&env, "192.0.2.25", &marked), 3);
	gwp_config_free((gwp_config **)&env.conf);
	gwp_watch_free(&w);
}

/* A destination answering reply after reply slowly is one mark a period, not one a reply. */
static void test_mark_once_a_period(void **state)
{
	gwp_watch *w = gwp_watch_new(fake_clock);
	char out[1024];
	int i;

	(void)state;
	assert_int_equal(gwp_watch_mark(w, "192.0.2.30", GWP_MARK_TARPIT, "dribble 1", 60000), 1);
	for (i = 2; i <= 5; i++) { /* four more dribbled replies, 10 s apart: extended, not marked again */
		char why[32];
		fake_now += 10000;
		snprintf(why, sizeof(why), "dribble %d", i);
		if (gwp_watch_mark(w, "192.0.2.30", GWP_MARK_TARPIT, why, 60000) != 0)
			fail_msg("reply %d: got a new mark, want the first one extended", i);
	}
	assert_int_equal(gwp_watch_list(w, out, sizeof(out)), 1);
	assert_string_equal(out, "192.0.2.30 tarpit=1 throttle=0 left=60 last=\"dribble 5\"\n");
	/* another kind is news: counted once too */
	assert_int_equal(gwp_watch_mark(w, "192.0.2.30", GWP_MARK_THROTTLE, "421 slow down", 60000), 1);
	assert_int_equal(gwp_watch_mark(w, "192.0.2.30", GWP_MARK_THROTTLE, "421 slow down", 60000), 0);
	/* a tarpit still at it a whole period after its mark began is marked (and logged) again */
	fake_now += 20000;
	assert_int_equal(gwp_watch_mark(w, "192.0.2.30", GWP_MARK_TARPIT, "dribble 6", 60000), 1);
	assert_int_equal(gwp_watch_list(w, out, sizeof(out)), 1);
	assert_string_equal(out, "192.0.2.30 tarpit=2 throttle=1 left=60 last=\"dribble 6\"\n");
	/* after the mark ended, the next is a new mark */
	fake_now += 60000;
	assert_int_equal(gwp_watch_marked(w, "192.0.2.30"), 0);
	assert_int_equal(gwp_watch_mark(w, "192.0.2.30", GWP_MARK_THROTTLE, "421", 60000), 1);
	gwp_watch_free(&w);
}

static void test_tenant_rate_in_map(void **state)
{
	static const char text[] = "# tenants\n"
				   "10.1.0.0/16  acme  192.0.2.10  rate=600\n"
				   "10.2.0.7     blog  192.0.2.20\n"
				   "10.3.0.0/24  acme  192.0.2.11\n"
				   "10.4.0.0/24  vip   192.0.2.12 rate=0\n";
	char err[512];
	gwp_tenant_map *m = gwp_tenant_map_parse(text, strlen(text), "t", err, sizeof(err));
	const gwp_tenant *t;

	(void)state;
	if (m == NULL)
		fail_msg("parse: %s", err);
	assert_non_null(t = gwp_tenant_map_lookup(m, "10.1.2.3"));
	assert_int_equal(t->rate, 600);
	/* the rate is the tenant's: its other line has it too */
	assert_non_null(t = gwp_tenant_map_lookup(m, "10.3.0.9"));
	assert_string_equal(t->name, "acme");
	assert_int_equal(t->rate, 600);
	assert_non_null(t = gwp_tenant_map_lookup(m, "10.2.0.7"));
	assert_int_equal(t->rate, -1); /* tenant_rate_limit */
	assert_non_null(t = gwp_tenant_map_lookup(m, "10.4.0.1"));
	assert_int_equal(t->rate, 0);
	gwp_tenant_map_free(&m);
}

static void test_tenant_rate_errors(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"10.1.0.0/16 acme 192.0.2.10 rate=\n", "t:1: rate=: want rate=N"},
	    {"10.1.0.0/16 acme 192.0.2.10 rate=-1\n", "t:1: rate=-1: want rate=N"},
	    {"10.1.0.0/16 acme 192.0.2.10 rate=5x\n", "t:1: rate=5x: want rate=N"},
	    {"10.1.0.0/16 acme 192.0.2.10 rate=1000001\n", "t:1: rate=1000001: want rate=N"},
	    {"10.1.0.0/16 acme 192.0.2.10 speed=5\n", "t:1: speed=5: want rate=N"},
	    {"10.1.0.0/16 acme 192.0.2.10 rate=5 x\n", "t:1: want \"NETWORK[/PREFIX] TENANT"},
	    {"10.1.0.0/16 acme 192.0.2.10 rate=5\n\n10.2.0.0/16 acme 192.0.2.10 rate=6\n",
	     "t:3: tenant acme: rate=6, but rate=5 on line 1"},
	};
	size_t i;
	char err[512];

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gwp_tenant_map *m =
		    gwp_tenant_map_parse(cases[i].text, strlen(cases[i].text), "t", err, sizeof(err));
		if (m != NULL)
			fail_msg("case %zu: parsed, want error %s", i, cases[i].want);
		if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s...\"", i, err, cases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rate_burst),         cmocka_unit_test(test_rate_refill),
	    cmocka_unit_test(test_rate_tenants_apart), cmocka_unit_test(test_rate_changed),
	    cmocka_unit_test(test_rate_full_table),    cmocka_unit_test(test_dlimit_take_give),
	    cmocka_unit_test(test_dlimit_grows),       cmocka_unit_test(test_marked_limit),
	    cmocka_unit_test(test_mark_once_a_period), cmocka_unit_test(test_tenant_rate_in_map),
	    cmocka_unit_test(test_tenant_rate_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
