/*
 * test_unknown_limit.c - the per-client unknown-recipient counter of
 * gw-milter (milter/unknown_limit.c, from gw_milter_core): counting
 * and the limit, the sliding window on a fixed clock (slot edges, gradual
 * expiry), a window change, the bounded client table with LRU eviction,
 * long keys, and concurrent adds from several threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "milter/unknown_limit.h"

static int64_t fake_now;

static int64_t fake_ms(void *ctx)
{
	(void)ctx;
	return fake_now;
}

static const gw_clock fake_clock = {fake_ms, NULL};

#define W 16000 /* window: 16 slots of 1 s */

static void test_count_and_limit(void **state)
{
	gwm_ul *ul = gwm_ul_new(16, &fake_clock);
	int i;

	(void)state;
	assert_non_null(ul);
	fake_now = 1000000;
	assert_int_equal(gwm_ul_count(ul, "192.0.2.1", W), 0);
	assert_false(gwm_ul_over(ul, "192.0.2.1", 3, W));
	for (i = 1; i <= 3; i++) {
		gwm_ul_add(ul, "192.0.2.1", W);
		assert_int_equal(gwm_ul_count(ul, "192.0.2.1", W), i);
		assert_int_equal(gwm_ul_over(ul, "192.0.2.1", 3, W), i >= 3);
	}
	assert_false(gwm_ul_over(ul, "192.0.2.1", 0, W)); /* 0: no limit */
	assert_int_equal(gwm_ul_count(ul, "192.0.2.2", W), 0);
	assert_int_equal(gwm_ul_clients(ul), 1);
	gwm_ul_free(&ul);
	assert_null(ul);
	gwm_ul_free(&ul);
}

static void test_window_edges(void **state)
{
	gwm_ul *ul = gwm_ul_new(16, &fake_clock);

	(void)state;
	fake_now = 160000; /* the start of a slot */
	gwm_ul_add(ul, "c", W);
	gwm_ul_add(ul, "c", W);
	fake_now += W - 1;
	assert_int_equal(gwm_ul_count(ul, "c", W), 2);
	fake_now += 1; /* exactly one window later: gone */
	assert_int_equal(gwm_ul_count(ul, "c", W), 0);
	gwm_ul_free(&ul);
}

static void test_gradual_expiry(void **state)
{
	const int64_t t0 = 320000; /* the start of a slot */
	gwm_ul *ul = gwm_ul_new(16, &fake_clock);

	(void)state;
	fake_now = t0;
	gwm_ul_add(ul, "c", W);
	fake_now = t0 + 8000;
	gwm_ul_add(ul, "c", W);
	fake_now = t0 + 15999;
	assert_int_equal(gwm_ul_count(ul, "c", W), 2);
	fake_now = t0 + 16000; /* the first has left the window */
	assert_int_equal(gwm_ul_count(ul, "c", W), 1);
	gwm_ul_add(ul, "c", W);
	assert_int_equal(gwm_ul_count(ul, "c", W), 2);
	fake_now = t0 + 23999;
	assert_int_equal(gwm_ul_count(ul, "c", W), 2);
	fake_now = t0 + 24000;
	assert_int_equal(gwm_ul_count(ul, "c", W), 1);
	fake_now = t0 + 32000;
	assert_int_equal(gwm_ul_count(ul, "c", W), 0);
	gwm_ul_free(&ul);
}

/* A slot that is reused after a full turn of the ring starts from zero. */
static void test_slot_reuse(void **state)
{
	gwm_ul *ul = gwm_ul_new(4, &fake_clock);
	int i;

	(void)state;
	fake_now = 0;
	for (i = 0; i < 5; i++)
		gwm_ul_add(ul, "c", W);
	fake_now = W * 3; /* same slot index, three turns later */
	gwm_ul_add(ul, "c", W);
	assert_int_equal(gwm_ul_count(ul, "c", W), 1);
	gwm_ul_free(&ul);
}

static void test_window_change(void **state)
{
	gwm_ul *ul = gwm_ul_new(4, &fake_clock);

	(void)state;
	fake_now = 5000;
	gwm_ul_add(ul, "c", W);
	gwm_ul_add(ul, "c", W);
	/* A reload with another window: the old counts are not read with the new slots. */
	assert_int_equal(gwm_ul_count(ul, "c", 60000), 0);
	gwm_ul_add(ul, "c", 60000);
	assert_int_equal(gwm_ul_count(ul, "c", 60000), 1);
	gwm_ul_free(&ul);
}

static void test_bounded_table(void **state)
{
	gwm_ul *ul = gwm_ul_new(4, &fake_clock);
	size_t nbuckets = gwm_ul_table_size(ul);
	char key[32];
	int i;

	(void)state;
	fake_now = 100000;
	for (i = 1; i <= 4; i++) {
		snprintf(key, sizeof(key), "10.0.0.%d", i);
		gwm_ul_add(ul, key, W);
	}
	assert_int_equal(gwm_ul_clients(ul), 4);
	assert_int_equal(gwm_ul_evictions(ul), 0);
	gwm_ul_add(ul, "10.0.0.1", W); /* 10.0.0.1 is now the most recent; 10.0.0.2 the oldest */
	gwm_ul_add(ul, "10.0.0.5", W);
	assert_int_equal(gwm_ul_clients(ul), 4);
	assert_int_equal(gwm_ul_evictions(ul), 1);
	assert_int_equal(gwm_ul_count(ul, "10.0.0.2", W), 0);
	assert_int_equal(gwm_ul_count(ul, "10.0.0.1", W), 2);
	assert_int_equal(gwm_ul_count(ul, "10.0.0.3", W), 1);
	assert_int_equal(gwm_ul_count(ul, "10.0.0.5", W), 1);
	/* Many more clients than slots: the table never grows, lookups stay right. */
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "2001:db8::%x", i);
		gwm_ul_add(ul, key, W);
		assert_int_equal(gwm_ul_count(ul, key, W), 1);
	}
	assert_int_equal(gwm_ul_clients(ul), 4);
	assert_int_equal(gwm_ul_evictions(ul), 1001);
	assert_int_equal(gwm_ul_count(ul, "2001:db8::3e7", W), 1);
	assert_int_equal(gwm_ul_count(ul, "2001:db8::3e3", W), 0);
	assert_int_equal(gwm_ul_table_size(ul), nbuckets); /* nothing allocated after creation */
	gwm_ul_free(&ul);
}

static void test_args(void **state)
{
	char longkey[200];
	gwm_ul *ul;

	(void)state;
	assert_null(gwm_ul_new(0, NULL));
	ul = gwm_ul_new(2, NULL); /* the monotonic clock */
	assert_non_null(ul);
	gwm_ul_add(ul, NULL, W); /* NULL counts as the empty key */
	assert_int_equal(gwm_ul_count(ul, "", W), 1);
	gwm_ul_add(ul, "x", 0); /* no window: ignored */
	assert_int_equal(gwm_ul_count(ul, "x", 0), 0);
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	gwm_ul_add(ul, longkey, W);
	assert_int_equal(gwm_ul_count(ul, longkey, W), 1);
	assert_int_equal(gwm_ul_count(NULL, "x", W), 0);
	gwm_ul_add(NULL, "x", W);
	gwm_ul_free(&ul);
}

static gwm_ul *shared;

static void *adder(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 1000; i++) {
		char key[16];
		gwm_ul_add(shared, "203.0.113.9", W);
		snprintf(key, sizeof(key), "198.51.100.%d", i % 200);
		gwm_ul_add(shared, key, W);
		(void)gwm_ul_over(shared, key, 5, W);
	}
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t t[4];
	int i;

	(void)state;
	fake_now = 7777;
	shared = gwm_ul_new(64, &fake_clock);
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, adder, NULL), 0);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(gwm_ul_count(shared, "203.0.113.9", W), 4000);
	assert_int_equal(gwm_ul_clients(shared), 64);
	gwm_ul_free(&shared);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_count_and_limit),
	    cmocka_unit_test(test_window_edges),
	    cmocka_unit_test(test_gradual_expiry),
	    cmocka_unit_test(test_slot_reuse),
	    cmocka_unit_test(test_window_change),
	    cmocka_unit_test(test_bounded_table),
	    cmocka_unit_test(test_args),
	    cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
