/*
 * test_cache.c - gw_cache with a fake clock: TTL boundary, LRU order and
 * eviction, replace, remove, clear, stats, ttl 0, key limits, the three
 * kinds, and four threads hammering overlapping keys.
 *
 * Does not test: ENOMEM (the allocator is not replaced here).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cache_check.h"
#include "gw/cache.h"

struct fake_clock {
	atomic_llong now;
	atomic_llong tick; /* added after every read; the thread test makes time pass */
};

static int64_t fake_now(void *ctx)
{
	struct fake_clock *fc = ctx;

	return (int64_t)atomic_fetch_add(&fc->now, atomic_load(&fc->tick));
}

static void fake_set(struct fake_clock *fc, int64_t now)
{
	atomic_store(&fc->now, now);
}

static void check_stats(gw_cache *c, size_t entries, uint64_t hits, uint64_t misses, uint64_t expired,
			uint64_t evictions)
{
	gw_cache_stats st;

	gw_cache_stats_get(c, &st);
	if (st.entries != entries)
		fail_msg("entries got %zu, want %zu", st.entries, entries);
	if (st.hits != hits)
		fail_msg("hits got %llu, want %llu", (unsigned long long)st.hits, (unsigned long long)hits);
	if (st.misses != misses)
		fail_msg("misses got %llu, want %llu", (unsigned long long)st.misses,
			 (unsigned long long)misses);
	if (st.expired != expired)
		fail_msg("expired got %llu, want %llu", (unsigned long long)st.expired,
			 (unsigned long long)expired);
	if (st.evictions != evictions)
		fail_msg("evictions got %llu, want %llu", (unsigned long long)st.evictions,
			 (unsigned long long)evictions);
	if (gw_cache_check(c) != 0)
		fail_msg("table and list disagree");
}

static void expect_get(gw_cache *c, const char *key, int want, const char *what)
{
	int got = gw_cache_get(c, key, NULL);

	if (got != want)
		fail_msg("%s: get \"%s\" got %d, want %d", what, key, got, want);
}

static void test_new_args(void **state)
{
	gw_cache *c;
	gw_cache_stats st;

	(void)state;
	assert_null(gw_cache_new(0, NULL));
	c = gw_cache_new(3, NULL); /* the real monotonic clock */
	assert_non_null(c);
	gw_cache_stats_get(c, &st);
	assert_int_equal(st.max_entries, 3);
	assert_int_equal(gw_cache_put(c, "k", GW_CACHE_POSITIVE, 250, "ok", 60000), 0);
	expect_get(c, "k", 1, "monotonic");
	gw_cache_free(&c);
	assert_null(c);
	gw_cache_free(&c);
	gw_cache_free(NULL);
}

/* An entry stored at t with ttl is there at t + ttl - 1 and gone at t + ttl. */
static void test_ttl_boundary(void **state)
{
	static const struct {
		uint32_t ttl;
		int64_t at; /* offset from the put */
		int want;
	} cases[] = {
	    {1000, 0, 1},
	    {1000, 999, 1},
	    {1000, 1000, 0},
	    {1000, 1001, 0},
	    {1, 0, 1},
	    {1, 1, 0},
	    {UINT32_MAX, (int64_t)UINT32_MAX - 1, 1},
	    {UINT32_MAX, UINT32_MAX, 0},
	};
	struct fake_clock fc = {1000000, 0};
	gw_clock clk = {fake_now, &fc};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_cache *c = gw_cache_new(4, &clk);
		gw_cache_value v;
		int got;

		assert_non_null(c);
		fake_set(&fc, 1000000);
		assert_int_equal(gw_cache_put(c, "key", GW_CACHE_NEGATIVE, 550, "no", cases[i].ttl), 0);
		fake_set(&fc, 1000000 + cases[i].at);
		got = gw_cache_get(c, "key", &v);
		if (got != cases[i].want)
			fail_msg("ttl %u at +%lld: got %d, want %d", cases[i].ttl, (long long)cases[i].at,
				 got, cases[i].want);
		if (got) {
			assert_int_equal(v.stored_ms, 1000000);
			assert_int_equal(v.expires_ms, 1000000 + (int64_t)cases[i].ttl);
			check_stats(c, 1, 1, 0, 0, 0);
		} else {
			/* An expired entry is a miss, is counted, and is gone for good. */
			check_stats(c, 0, 0, 1, 1, 0);
			fake_set(&fc, 1000000);
			expect_get(c, "key", 0, "after expiry");
			check_stats(c, 0, 0, 2, 1, 0);
		}
		gw_cache_free(&c);
	}
}

/* A clock near the end of int64 saturates instead of wrapping into the past. */
static void test_ttl_saturates(void **state)
{
	struct fake_clock fc = {INT64_MAX - 10, 0};
	gw_clock clk = {fake_now, &fc};
	gw_cache *c = gw_cache_new(4, &clk);
	gw_cache_value v;

	(void)state;
	assert_non_null(c);
	assert_int_equal(gw_cache_put(c, "k", GW_CACHE_POSITIVE, 250, "", 1000), 0);
	assert_int_equal(gw_cache_get(c, "k", &v), 1);
	assert_true(v.expires_ms == INT64_MAX);
	gw_cache_free(&c);
}

static void test_lru_eviction(void **state)
{
	struct fake_clock fc = {0, 0};
	gw_clock clk = {fake_now, &fc};
	gw_cache *c = gw_cache_new(3, &clk);

	(void)state;
	assert_non_null(c);
	assert_int_equal(gw_cache_put(c, "a", GW_CACHE_POSITIVE, 250, "a", 10000), 0);
	assert_int_equal(gw_cache_put(c, "b", GW_CACHE_POSITIVE, 250, "b", 10000), 0);
	assert_int_equal(gw_cache_put(c, "c", GW_CACHE_POSITIVE, 250, "c", 10000), 0);
	check_stats(c, 3, 0, 0, 0, 0);
	/* Order now c b a; a get refreshes a: a c b. */
	expect_get(c, "a", 1, "refresh a");
	assert_int_equal(gw_cache_put(c, "d", GW_CACHE_POSITIVE, 250, "d", 10000), 0);
	check_stats(c, 3, 1, 0, 0, 1);
	expect_get(c, "b", 0, "b evicted");
	expect_get(c, "a", 1, "a kept");
	expect_get(c, "c", 1, "c kept");
	expect_get(c, "d", 1, "d kept");
	/* Order d c a; replacing a refreshes it too: a d c. */
	assert_int_equal(gw_cache_put(c, "a", GW_CACHE_NEGATIVE, 550, "a2", 10000), 0);
	assert_int_equal(gw_cache_put(c, "e", GW_CACHE_POSITIVE, 250, "e", 10000), 0);
	expect_get(c, "c", 0, "c evicted");
	assert_int_equal(gw_cache_put(c, "f", GW_CACHE_POSITIVE, 250, "f", 10000), 0);
	expect_get(c, "d", 0, "d evicted");
	expect_get(c, "a", 1, "a kept after two evictions");
	check_stats(c, 3, 5, 3, 0, 3);
	gw_cache_free(&c);
}

/* max_entries 1: every new key evicts the last. */
static void test_single_entry(void **state)
{
	gw_cache *c = gw_cache_new(1, NULL);
	char key[16];
	int i;

	(void)state;
	assert_non_null(c);
	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(gw_cache_put(c, key, GW_CACHE_TEMPORARY, 451, "t", 60000), 0);
		expect_get(c, key, 1, "just put");
	}
	expect_get(c, "k98", 0, "previous");
	check_stats(c, 1, 100, 1, 0, 99);
	gw_cache_free(&c);
}

static void test_replace(void **state)
{
	struct fake_clock fc = {500, 0};
	gw_clock clk = {fake_now, &fc};
	gw_cache *c = gw_cache_new(4, &clk);
	gw_cache_value v;

	(void)state;
	assert_non_null(c);
	assert_int_equal(gw_cache_put(c, "k", GW_CACHE_POSITIVE, 250, "first", 100), 0);
	fake_set(&fc, 550);
	assert_int_equal(gw_cache_put(c, "k", GW_CACHE_TEMPORARY, 451, "second", 1000), 0);
	check_stats(c, 1, 0, 0, 0, 0);
	/* The new TTL counts from the replacement, not the first put. */
	fake_set(&fc, 700);
	assert_int_equal(gw_cache_get(c, "k", &v), 1);
	assert_int_equal(v.kind, GW_CACHE_TEMPORARY);
	assert_int_equal(v.code, 451);
	assert_string_equal(v.text, "second");
	assert_int_equal(v.stored_ms, 550);
	assert_int_equal(v.expires_ms, 1550);
	/* Replacing an expired entry revives the key. */
	fake_set(&fc, 5000);
	assert_int_equal(gw_cache_put(c, "k", GW_CACHE_NEGATIVE, 550, NULL, 10), 0);
	assert_int_equal(gw_cache_get(c, "k", &v), 1);
	assert_int_equal(v.kind, GW_CACHE_NEGATIVE);
	assert_string_equal(v.text, "");
	check_stats(c, 1, 2, 0, 0, 0);
	gw_cache_free(&c);
}

static void test_remove_clear(void **state)
{
	gw_cache *c = gw_cache_new(8, NULL);
	char key[16];
	int i;

	(void)state;
	assert_non_null(c);
	assert_int_equal(gw_cache_remove(c, "absent"), 0);
	for (i = 0; i < 5; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(gw_cache_put(c, key, GW_CACHE_POSITIVE, 250, key, 60000), 0);
	}
	assert_int_equal(gw_cache_remove(c, "k2"), 1);
	assert_int_equal(gw_cache_remove(c, "k2"), 0);
	expect_get(c, "k2", 0, "removed");
	/* Removing the head and the tail of the LRU list keeps it consistent. */
	assert_int_equal(gw_cache_remove(c, "k4"), 1);
	assert_int_equal(gw_cache_remove(c, "k0"), 1);
	check_stats(c, 2, 0, 1, 0, 0);
	assert_int_equal(gw_cache_clear(c), 2);
	check_stats(c, 0, 0, 1, 0, 0);
	expect_get(c, "k1", 0, "cleared");
	assert_int_equal(gw_cache_clear(c), 0);
	/* Usable after clear. */
	assert_int_equal(gw_cache_put(c, "k1", GW_CACHE_POSITIVE, 250, "", 60000), 0);
	expect_get(c, "k1", 1, "after clear");
	check_stats(c, 1, 1, 2, 0, 0);
	gw_cache_free(&c);
}

static void test_ttl_zero(void **state)
{
	gw_cache *c = gw_cache_new(4, NULL);

	(void)state;
	assert_non_null(c);
	assert_int_equal(gw_cache_put(c, "new", GW_CACHE_POSITIVE, 250, "x", 0), 0);
	expect_get(c, "new", 0, "ttl 0 stores nothing");
	assert_int_equal(gw_cache_put(c, "old", GW_CACHE_POSITIVE, 250, "x", 60000), 0);
	assert_int_equal(gw_cache_put(c, "old", GW_CACHE_NEGATIVE, 550, "y", 0), 0);
	expect_get(c, "old", 0, "ttl 0 removes the old entry");
	check_stats(c, 0, 0, 2, 0, 0);
	gw_cache_free(&c);
}

static void test_key_limits(void **state)
{
	static char key[GW_CACHE_KEY_MAX + 2];
	gw_cache *c = gw_cache_new(4, NULL);

	(void)state;
	assert_non_null(c);
	memset(key, 'k', GW_CACHE_KEY_MAX);
	key[GW_CACHE_KEY_MAX] = '\0';
	assert_int_equal(gw_cache_put(c, key, GW_CACHE_POSITIVE, 250, "max", 60000), 0);
	expect_get(c, key, 1, "key of GW_CACHE_KEY_MAX");
	key[GW_CACHE_KEY_MAX] = 'k';
	key[GW_CACHE_KEY_MAX + 1] = '\0';
	errno = 0;
	assert_int_equal(gw_cache_put(c, key, GW_CACHE_POSITIVE, 250, "over", 60000), -1);
	assert_int_equal(errno, EINVAL);
	expect_get(c, key, 0, "overlong key");
	assert_int_equal(gw_cache_remove(c, key), 0);
	errno = 0;
	assert_int_equal(gw_cache_put(c, NULL, GW_CACHE_POSITIVE, 250, "", 60000), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(gw_cache_put(c, "k", (gw_cache_kind)0, 250, "", 60000), -1);
	assert_int_equal(errno, EINVAL);
	/* The empty key is a key like any other. */
	assert_int_equal(gw_cache_put(c, "", GW_CACHE_POSITIVE, 250, "empty", 60000), 0);
	expect_get(c, "", 1, "empty key");
	/* Keys differing only after a shared prefix stay apart. */
	assert_int_equal(gw_cache_put(c, "ab", GW_CACHE_POSITIVE, 250, "", 60000), 0);
	expect_get(c, "a", 0, "prefix");
	expect_get(c, "abc", 0, "extension");
	check_stats(c, 3, 2, 3, 0, 0);
	gw_cache_free(&c);
}

static void test_kinds_round_trip(void **state)
{
	static const struct {
		const char *key;
		gw_cache_kind kind;
		int code;
		const char *text;
	} cases[] = {
	    {"pos", GW_CACHE_POSITIVE, 250, "2.1.5 ok"},
	    {"neg", GW_CACHE_NEGATIVE, 550, "5.1.1 unknown"},
	    {"tmp", GW_CACHE_TEMPORARY, 451, "4.4.1 later"},
	    {"none", GW_CACHE_POSITIVE, 0, ""},
	};
	struct fake_clock fc = {42, 0};
	gw_clock clk = {fake_now, &fc};
	gw_cache *c = gw_cache_new(16, &clk);
	size_t i;

	(void)state;
	assert_non_null(c);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(gw_cache_put(c, cases[i].key, cases[i].kind, cases[i].code, cases[i].text,
					      1000 + (uint32_t)i),
				 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_cache_value v;

		memset(&v, 0xa5, sizeof(v));
		if (gw_cache_get(c, cases[i].key, &v) != 1)
			fail_msg("%s: got absent, want present", cases[i].key);
		if (v.kind != cases[i].kind)
			fail_msg("%s: kind got %d, want %d", cases[i].key, v.kind, cases[i].kind);
		if (v.code != cases[i].code)
			fail_msg("%s: code got %d, want %d", cases[i].key, v.code, cases[i].code);
		if (strcmp(v.text, cases[i].text) != 0)
			fail_msg("%s: text got \"%s\", want \"%s\"", cases[i].key, v.text, cases[i].text);
		if (v.stored_ms != 42 || v.expires_ms != 42 + 1000 + (int64_t)i)
			fail_msg("%s: times got %lld..%lld, want 42..%lld", cases[i].key,
				 (long long)v.stored_ms, (long long)v.expires_ms, (long long)(42 + 1000 + i));
	}
	gw_cache_free(&c);
}

static void test_text_cut(void **state)
{
	static const size_t lens[] = {
	    0, 1, GW_CACHE_TEXT_MAX - 2, GW_CACHE_TEXT_MAX - 1, GW_CACHE_TEXT_MAX, GW_CACHE_TEXT_MAX * 4};
	static char text[GW_CACHE_TEXT_MAX * 4 + 1];
	gw_cache *c = gw_cache_new(4, NULL);
	size_t i;

	(void)state;
	assert_non_null(c);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		gw_cache_value v;
		size_t want = lens[i] < GW_CACHE_TEXT_MAX - 1 ? lens[i] : GW_CACHE_TEXT_MAX - 1;

		memset(text, 'x', lens[i]);
		text[lens[i]] = '\0';
		assert_int_equal(gw_cache_put(c, "k", GW_CACHE_POSITIVE, 250, text, 60000), 0);
		assert_int_equal(gw_cache_get(c, "k", &v), 1);
		if (strlen(v.text) != want)
			fail_msg("text of %zu: got %zu bytes, want %zu", lens[i], strlen(v.text), want);
	}
	gw_cache_free(&c);
}

/* Many keys in few buckets' worth of table: chains must stay correct through churn. */
static void test_many_keys(void **state)
{
	gw_cache *c = gw_cache_new(1000, NULL);
	char key[32];
	int i;

	(void)state;
	assert_non_null(c);
	for (i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "user%d@example.org", i);
		assert_int_equal(gw_cache_put(c, key, GW_CACHE_POSITIVE, 250, key, 60000), 0);
		if (i % 3 == 0) {
			snprintf(key, sizeof(key), "user%d@example.org", i / 2);
			gw_cache_remove(c, key);
		}
	}
	for (i = 4000; i < 5000; i++) {
		gw_cache_value v;

		snprintf(key, sizeof(key), "user%d@example.org", i);
		if (gw_cache_get(c, key, &v) != 1)
			fail_msg("%s: got absent, want present", key);
		assert_string_equal(v.text, key);
	}
	assert_int_equal(gw_cache_check(c), 0);
	gw_cache_free(&c);
}

#define CACHE_THREADS 4
#define CACHE_OPS     20000
#define CACHE_KEYS    200
#define CACHE_BOUND   64

struct thread_arg {
	gw_cache *c;
	unsigned seed;
	int over_bound; /* set if a thread saw more than CACHE_BOUND entries */
	int bad_value;  /* set if a get returned a value not matching its key */
};

static void *cache_thread(void *p)
{
	struct thread_arg *a = p;
	unsigned x = a->seed;
	int i;

	for (i = 0; i < CACHE_OPS; i++) {
		char key[32];
		gw_cache_value v;
		gw_cache_stats st;
		unsigned k, op;

		/* xorshift: cheap, and each thread has its own sequence */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		k = x % CACHE_KEYS;
		op = (x >> 8) % 10;
		snprintf(key, sizeof(key), "key-%u", k);
		if (op < 4) {
			gw_cache_put(a->c, key, (gw_cache_kind)(1 + k % 3), (int)k, key, 1 + (x >> 16) % 50);
		} else if (op < 8) {
			if (gw_cache_get(a->c, key, &v) == 1 &&
			    (v.code != (int)k || strcmp(v.text, key) != 0 ||
			     v.kind != (gw_cache_kind)(1 + k % 3)))
				a->bad_value = 1;
		} else if (op < 9) {
			gw_cache_remove(a->c, key);
		} else {
			gw_cache_stats_get(a->c, &st);
			if (st.entries > CACHE_BOUND)
				a->over_bound = 1;
		}
	}
	return NULL;
}

static void test_threads(void **state)
{
	/* Time advances 1 ms per read, so entries also expire under contention. */
	struct fake_clock fc = {0, 1};
	gw_clock clk = {fake_now, &fc};
	gw_cache *c = gw_cache_new(CACHE_BOUND, &clk);
	pthread_t t[CACHE_THREADS];
	struct thread_arg args[CACHE_THREADS];
	gw_cache_stats st;
	int i;

	(void)state;
	assert_non_null(c);
	for (i = 0; i < CACHE_THREADS; i++) {
		args[i] = (struct thread_arg){c, 0x9e3779b9u * (unsigned)(i + 1), 0, 0};
		assert_int_equal(pthread_create(&t[i], NULL, cache_thread, &args[i]), 0);
	}
	for (i = 0; i < CACHE_THREADS; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < CACHE_THREADS; i++) {
		if (args[i].over_bound)
			fail_msg("thread %d: got more than %d entries, want at most %d", i, CACHE_BOUND,
				 CACHE_BOUND);
		if (args[i].bad_value)
			fail_msg("thread %d: got a value for the wrong key", i);
	}
	gw_cache_stats_get(c, &st);
	if (st.entries > CACHE_BOUND)
		fail_msg("entries got %zu, want <= %d", st.entries, CACHE_BOUND);
	/* The mix must have exercised hits, expiry and eviction; an expiry is also a miss. */
	if (st.hits == 0 || st.expired == 0 || st.expired > st.misses || st.evictions == 0)
		fail_msg("stats implausible: hits %llu misses %llu expired %llu evictions %llu",
			 (unsigned long long)st.hits, (unsigned long long)st.misses,
			 (unsigned long long)st.expired, (unsigned long long)st.evictions);
	assert_int_equal(gw_cache_check(c), 0);
	gw_cache_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_new_args),      cmocka_unit_test(test_ttl_boundary),
	    cmocka_unit_test(test_ttl_saturates), cmocka_unit_test(test_lru_eviction),
	    cmocka_unit_test(test_single_entry),  cmocka_unit_test(test_replace),
	    cmocka_unit_test(test_remove_clear),  cmocka_unit_test(test_ttl_zero),
	    cmocka_unit_test(test_key_limits),    cmocka_unit_test(test_kinds_round_trip),
	    cmocka_unit_test(test_text_cut),      cmocka_unit_test(test_many_keys),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
