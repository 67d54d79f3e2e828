/*
 * test_corr_store.c - learned correspondents (milter/corr.c) and their LMDB
 * store (milter/store.c) on a fixed clock: decay by half-life and the
 * threshold, the bounded table (decayed entries swept, then new keys
 * refused), merging the larger decayed score, the dirty bits of the two
 * writers, the other gateways' counts summed with ours (never twice), and persistence across a restart (a new
 * table and a reopened store: scores decayed by the time that passed while "down", entries that decayed to
 * nothing deleted, the meta values kept, a foreign record dropped).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <lmdb.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "milter/corr.h"
#include "milter/store.h"

#define HOUR 3600000LL

static int64_t fake_now;

static int64_t fake_ms(void *ctx)
{
	(void)ctx;
	return fake_now;
}

static const gw_clock fake_clock = {fake_ms, NULL};

static int near(double a, double b)
{
	return fabs(a - b) < 1e-6;
}

static void test_decay_threshold(void **state)
{
	gwm_corr *t;
	int i;

	(void)state;
	fake_now = 1000 * HOUR;
	t = gwm_corr_new(100, 24 * HOUR, &fake_clock);
	assert_non_null(t);
	for (i = 0; i < 4; i++)
		assert_int_equal(gwm_corr_add(t, "n:198.51.100.0/24", 1), 0);
	assert_true(near(gwm_corr_score(t, "n:198.51.100.0/24"), 4));
	assert_true(gwm_corr_is(t, "n:198.51.100.0/24", 3));
	assert_false(gwm_corr_is(t, "n:203.0.113.0/24", 3));
	fake_now += 24 * HOUR; /* one half-life */
	assert_true(near(gwm_corr_score(t, "n:198.51.100.0/24"), 2));
	assert_false(gwm_corr_is(t, "n:198.51.100.0/24", 3));
	assert_int_equal(gwm_corr_add(t, "n:198.51.100.0/24", 1), 0); /* decayed first, then added */
	assert_true(near(gwm_corr_score(t, "n:198.51.100.0/24"), 3));
	assert_true(gwm_corr_is(t, "n:198.51.100.0/24", 3));
	gwm_corr_set_half_life(t, 12 * HOUR);
	fake_now += 12 * HOUR;
	assert_true(near(gwm_corr_score(t, "n:198.51.100.0/24"), 1.5));
	/* A key too long is refused, not truncated into another key. */
	{
		char big[GWM_CORR_KEY_MAX + 10];
		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(gwm_corr_add(t, big, 1), -1);
	}
	gwm_corr_free(&t);
	assert_null(t);
	assert_null(gwm_corr_new(0, HOUR, &fake_clock));
	assert_null(gwm_corr_new(10, 0, &fake_clock));
}

static void test_bounded(void **state)
{
	gwm_corr *t;
	gwm_corr_stats st;
	char k[32];
	int i;

	(void)state;
	fake_now = 0;
	t = gwm_corr_new(100, HOUR, &fake_clock);
	for (i = 0; i < 100; i++) {
		snprintf(k, sizeof(k), "d:%d.example", i);
		assert_int_equal(gwm_corr_add(t, k, 1), 0);
	}
	/* Full of live entries: a new key is refused and counted. */
	assert_int_equal(gwm_corr_add(t, "d:new.example", 1), -1);
	gwm_corr_stats_get(t, &st);
	assert_int_equal(st.entries, 100);
	assert_int_equal(st.refused, 1);
	/* Ten half-lives later every entry is below GWM_CORR_FORGET: the sweep makes room. */
	fake_now += 10 * HOUR;
	assert_int_equal(gwm_corr_add(t, "d:new.example", 1), 0);
	gwm_corr_stats_get(t, &st);
	assert_int_equal(st.entries, 1);
	gwm_corr_free(&t);
}

typedef struct seen {
	char keys[16][GWM_CORR_KEY_MAX];
	double scores[16];
	int n;
} seen;

static void collect(void *ctx, const char *key, double score, int64_t stamp)
{
	seen *s = ctx;

	(void)stamp;
	assert_true(s->n < 16);
	snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
	s->scores[s->n++] = score;
}

static void test_merge_and_dirty(void **state)
{
	gwm_corr *t;
	seen s;

	(void)state;
	fake_now = 100 * HOUR;
	t = gwm_corr_new(100, HOUR, &fake_clock);
	assert_int_equal(gwm_corr_add(t, "n:a", 2), 0);
	/* Both writers see the add once. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(gwm_corr_drain(t, GWM_CORR_DIRTY_STORE, collect, &s), 1);
	assert_string_equal(s.keys[0], "n:a");
	assert_int_equal(gwm_corr_drain(t, GWM_CORR_DIRTY_STORE, collect, &s), 0);
	assert_int_equal(gwm_corr_drain(t, GWM_CORR_DIRTY_SHARED, collect, &s), 1);
	/* A smaller value from elsewhere is ignored; a larger one (after its decay) is taken. */
	assert_int_equal(gwm_corr_merge(t, "n:a", 3, fake_now - 2 * HOUR, GWM_CORR_DIRTY_STORE),
			 0); /* 0.75 */
	assert_true(near(gwm_corr_score(t, "n:a"), 2));
	assert_int_equal(gwm_corr_merge(t, "n:a", 16, fake_now - 2 * HOUR, GWM_CORR_DIRTY_STORE), 1); /* 4 */
	assert_true(near(gwm_corr_score(t, "n:a"), 4));
	/* Taken from Redis: marked for the store only. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(gwm_corr_drain(t, GWM_CORR_DIRTY_SHARED, collect, &s), 0);
	assert_int_equal(gwm_corr_drain(t, GWM_CORR_DIRTY_STORE, collect, &s), 1);
	assert_true(near(s.scores[0], 4));
	/* A stamp from the future counts as now; a new key is made; junk is refused. */
	assert_int_equal(gwm_corr_merge(t, "d:b.example", 5, fake_now + HOUR, 0), 1);
	assert_true(near(gwm_corr_score(t, "d:b.example"), 5));
	assert_int_equal(gwm_corr_merge(t, "d:c.example", -1, fake_now, 0), -1);
	assert_int_equal(gwm_corr_merge(t, "d:c.example", NAN, fake_now, 0), -1);
	assert_int_equal(gwm_corr_merge(t, "d:old.example", 1, fake_now - 100 * HOUR, 0),
			 0); /* nothing left */
	assert_true(near(gwm_corr_score(t, "d:old.example"), 0));
	gwm_corr_mark_all(t, GWM_CORR_DIRTY_SHARED);
	memset(&s, 0, sizeof(s));
	assert_int_equal(gwm_corr_drain(t, GWM_CORR_DIRTY_SHARED, collect, &s), 2);
	gwm_corr_free(&t);
}

/* Own counts plus the other gateways': summed, never counted twice, decayed alike. */
static void test_fleet_sum(void **state)
{
	gwm_corr *t;
	uint64_t g;
	seen s;
	int i;

	(void)state;
	fake_now = 100 * HOUR;
	t = gwm_corr_new(100, 24 * HOUR, &fake_clock);
	/* 10 messages through this gateway, 10 through another: 20, a correspondent at 15. */
	for (i = 0; i < 10; i++)
		assert_int_equal(gwm_corr_add(t, "n:192.0.2.0/24", 1), 0);
	assert_false(gwm_corr_is(t, "n:192.0.2.0/24", 15));
	for (i = 0; i < 5; i++) { /* five refreshes read the same counts: still 20 */
		g = gwm_corr_fleet_begin(t);
		assert_int_equal(gwm_corr_fleet_add(t, g, "n:192.0.2.0/24", 10, fake_now), 0);
		gwm_corr_fleet_end(t, g);
		assert_true(near(gwm_corr_score(t, "n:192.0.2.0/24"), 20));
	}
	assert_true(gwm_corr_is(t, "n:192.0.2.0/24", 15));
	assert_true(near(gwm_corr_own(t, "n:192.0.2.0/24"), 10));
	/* Two other gateways, one written a half-life ago: 10 + 4 + 8/2. */
	g = gwm_corr_fleet_begin(t);
	assert_int_equal(gwm_corr_fleet_add(t, g, "n:192.0.2.0/24", 4, fake_now), 0);
	assert_int_equal(gwm_corr_fleet_add(t, g, "n:192.0.2.0/24", 8, fake_now - 24 * HOUR), 0);
	/* A key only the others know is made, with no own count. */
	assert_int_equal(gwm_corr_fleet_add(t, g, "d:partner.example", 3, fake_now), 0);
	/* Not ended yet: what callbacks read is still the last refresh's sum. */
	assert_true(near(gwm_corr_score(t, "n:192.0.2.0/24"), 20));
	gwm_corr_fleet_end(t, g);
	assert_true(near(gwm_corr_score(t, "n:192.0.2.0/24"), 18));
	assert_true(near(gwm_corr_score(t, "d:partner.example"), 3));
	assert_true(near(gwm_corr_own(t, "d:partner.example"), 0));
	/* Both parts decay with the half-life. */
	fake_now += 24 * HOUR;
	assert_true(near(gwm_corr_score(t, "n:192.0.2.0/24"), 9));
	/* Only own counts are written; fleet sums mark nothing. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(gwm_corr_drain(t, GWM_CORR_DIRTY_SHARED, collect, &s), 1);
	assert_string_equal(s.keys[0], "n:192.0.2.0/24");
	assert_true(near(s.scores[0], 5)); /* decayed with its stamp */
	/* A refresh that began but failed (never ended) keeps the last sums. */
	g = gwm_corr_fleet_begin(t);
	assert_int_equal(gwm_corr_fleet_add(t, g, "n:192.0.2.0/24", 100, fake_now), 0);
	assert_true(near(gwm_corr_score(t, "n:192.0.2.0/24"), 9));
	/* The next refresh, in which no other gateway has the key any more: own count only. */
	g = gwm_corr_fleet_begin(t);
	gwm_corr_fleet_end(t, g);
	assert_true(near(gwm_corr_score(t, "n:192.0.2.0/24"), 5));
	assert_true(near(gwm_corr_score(t, "d:partner.example"), 0));
	/* Junk and decayed values. */
	assert_int_equal(gwm_corr_fleet_add(t, g, "n:x", -1, fake_now), -1);
	assert_int_equal(gwm_corr_fleet_add(t, g, "n:x", 1, fake_now - 1000 * HOUR), 0);
	gwm_corr_free(&t);
}

static void test_store_restart(void **state)
{
	char dir[] = "/tmp/gw-test-store.XXXXXX", err[512], v[64];
	gwm_store *st;
	gwm_corr *t;
	long n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	fake_now = 1000 * HOUR;
	/* First run: learn, flush, close. */
	t = gwm_corr_new(100, 24 * HOUR, &fake_clock);
	st = gwm_store_open(dir, err, sizeof(err));
	if (st == NULL)
		fail_msg("open: %s", err);
	assert_int_equal(gwm_store_load(st, t, err, sizeof(err)), 0);
	assert_int_equal(gwm_corr_add(t, "n:198.51.100.0/24", 8), 0);
	assert_int_equal(gwm_corr_add(t, "d:example.org", 4), 0);
	assert_int_equal(gwm_corr_add(t, "n:fading", 0.015), 0);
	assert_int_equal(gwm_store_flush(st, t, err, sizeof(err)), 3);
	assert_int_equal(gwm_store_flush(st, t, err, sizeof(err)), 0); /* nothing changed since */
	assert_int_equal(gwm_store_put_meta(st, "force", "high", err, sizeof(err)), 0);
	gwm_store_close(&st);
	assert_null(st);
	gwm_corr_free(&t);
	/* A record that is not ours, written behind the store's back. */
	{
		MDB_env *env;
		MDB_txn *txn;
		MDB_dbi dbi;
		MDB_val k = {5, "n:bad"}, val = {3, "xyz"};
		assert_int_equal(mdb_env_create(&env), 0);
		assert_int_equal(mdb_env_set_maxdbs(env, 2), 0);
		assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
		assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
		assert_int_equal(mdb_dbi_open(txn, "corr", 0, &dbi), 0);
		assert_int_equal(mdb_put(txn, dbi, &k, &val, 0), 0);
		assert_int_equal(mdb_txn_commit(txn), 0);
		mdb_env_close(env);
	}
	/* Down for one half-life; the second run starts from the store. */
	fake_now += 24 * HOUR;
	t = gwm_corr_new(100, 24 * HOUR, &fake_clock);
	st = gwm_store_open(dir, err, sizeof(err));
	assert_non_null(st);
	n = gwm_store_load(st, t, err, sizeof(err));
	assert_int_equal(n, 2); /* the fading one decayed to nothing, the foreign one dropped */
	assert_true(near(gwm_corr_score(t, "n:198.51.100.0/24"), 4));
	assert_true(near(gwm_corr_score(t, "d:example.org"), 2));
	assert_true(near(gwm_corr_score(t, "n:fading"), 0));
	assert_true(near(gwm_corr_score(t, "n:bad"), 0));
	/* Loaded entries are not dirty: nothing to write back. */
	assert_int_equal(gwm_store_flush(st, t, err, sizeof(err)), 0);
	assert_int_equal(gwm_store_get_meta(st, "force", v, sizeof(v), err, sizeof(err)), 1);
	assert_string_equal(v, "high");
	assert_int_equal(gwm_store_get_meta(st, "nothing", v, sizeof(v), err, sizeof(err)), 0);
	gwm_store_close(&st);
	gwm_corr_free(&t);
	/* The third run finds the two deleted records gone for good. */
	t = gwm_corr_new(100, 24 * HOUR, &fake_clock);
	st = gwm_store_open(dir, err, sizeof(err));
	assert_int_equal(gwm_store_load(st, t, err, sizeof(err)), 2);
	gwm_store_close(&st);
	gwm_corr_free(&t);
	/* A directory that cannot be made is an error with its name. */
	assert_null(gwm_store_open("/proc/nonexistent/store", err, sizeof(err)));
	assert_non_null(strstr(err, "/proc/nonexistent/store"));
	assert_int_equal(system(NULL) != 0, 1);
	{
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decay_threshold), cmocka_unit_test(test_bounded),
	    cmocka_unit_test(test_merge_and_dirty), cmocka_unit_test(test_fleet_sum),
	    cmocka_unit_test(test_store_restart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
