/*
 * test_hmap.c - the internal string hash map (libgw/hmap.c): many keys with
 * the bucket array growing, one long chain of keys that share a bucket
 * (deleting its head, middle and tail), deletion of each node during an
 * iteration, no allocation past the size given at init, keys that are
 * prefixes of each other and the empty key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "util.h"

typedef struct item {
	gwu_hnode node;
	int seen;
	char key[24];
} item;

/* n items keyed prefix<i>suffix. */
static item *items_new(size_t n, const char *prefix, const char *suffix)
{
	item *it = calloc(n, sizeof(*it));
	size_t i;

	assert_non_null(it);
	for (i = 0; i < n; i++)
		snprintf(it[i].key, sizeof(it[i].key), "%s%zu%s", prefix, i, suffix);
	return it;
}

static item *get(const gwu_hmap *m, const char *key)
{
	gwu_hnode *n = gwu_hmap_get(m, key);

	return n != NULL ? gwu_entry(n, item, node) : NULL;
}

static void test_many_keys(void **state)
{
	enum { N = 20000 };
	item *it = items_new(N, "rcpt", "@example.com");
	char miss[32];
	gwu_hmap m;
	size_t i;

	(void)state;
	assert_int_equal(gwu_hmap_init(&m, 0), 0);
	for (i = 0; i < N; i++)
		gwu_hmap_put(&m, &it[i].node, it[i].key);
	assert_int_equal(m.count, N);
	assert_true(m.nbuckets >= N); /* grew: chains stay short */
	for (i = 0; i < N; i++)
		assert_ptr_equal(get(&m, it[i].key), &it[i]);
	for (i = 0; i < 100; i++) {
		snprintf(miss, sizeof(miss), "rcpt%zu@example.com", N + i);
		assert_null(get(&m, miss));
	}
	gwu_hmap_fini(&m);
	free(it);
}

/* Keys that all land in bucket 0 of a 16-bucket map: one chain, looked up and cut anywhere. */
static void test_one_chain(void **state)
{
	enum { N = 12 };
	item it[N];
	char key[24];
	gwu_hmap m;
	size_t n = 0, i, k;

	(void)state;
	memset(it, 0, sizeof(it));
	for (k = 0; n < N; k++) {
		snprintf(key, sizeof(key), "k%zu", k);
		if ((gwu_hash(key, strlen(key)) & 15) == 0)
			memcpy(it[n++].key, key, sizeof(key));
	}
	assert_int_equal(gwu_hmap_init(&m, 16), 0);
	assert_int_equal(m.nbuckets, 16);
	for (i = 0; i < N; i++)
		gwu_hmap_put(&m, &it[i].node, it[i].key);
	assert_int_equal(m.nbuckets, 16);
	for (i = 0; i < N; i++)
		assert_ptr_equal(get(&m, it[i].key), &it[i]);
	/* it[N-1] heads the chain (put last), it[0] ends it. */
	gwu_hmap_del(&m, &it[N - 1].node);
	gwu_hmap_del(&m, &it[N / 2].node);
	gwu_hmap_del(&m, &it[0].node);
	assert_int_equal(m.count, N - 3);
	for (i = 0; i < N; i++)
		assert_ptr_equal(get(&m, it[i].key), i == 0 || i == N / 2 || i == N - 1 ? NULL : &it[i]);
	gwu_hmap_put(&m, &it[N / 2].node, it[N / 2].key);
	assert_ptr_equal(get(&m, it[N / 2].key), &it[N / 2]);
	gwu_hmap_fini(&m);
}

/* Deleting (and freeing) the node just returned keeps the iteration whole. */
static void test_delete_while_iterating(void **state)
{
	enum { N = 3000 };
	gwu_hmap_iter iter = {0};
	gwu_hnode *n;
	gwu_hmap m;
	size_t i, visits = 0;

	(void)state;
	assert_int_equal(gwu_hmap_init(&m, 0), 0);
	for (i = 0; i < N; i++) {
		item *x = calloc(1, sizeof(*x));

		assert_non_null(x);
		snprintf(x->key, sizeof(x->key), "route-%zu", i);
		x->seen = (int)i;
		gwu_hmap_put(&m, &x->node, x->key);
	}
	/* Pass 1: drop the odd ones. */
	while ((n = gwu_hmap_next(&m, &iter)) != NULL) {
		item *x = gwu_entry(n, item, node);

		visits++;
		if (x->seen % 2 == 1) {
			gwu_hmap_del(&m, n);
			free(x);
		}
	}
	assert_int_equal(visits, N);
	assert_int_equal(m.count, N / 2);
	for (i = 0; i < N; i++) {
		char key[24];

		snprintf(key, sizeof(key), "route-%zu", i);
		assert_true((get(&m, key) != NULL) == (i % 2 == 0));
	}
	/* Pass 2: drop the rest, each seen once. */
	memset(&iter, 0, sizeof(iter));
	visits = 0;
	while ((n = gwu_hmap_next(&m, &iter)) != NULL) {
		gwu_hmap_del(&m, n);
		free(gwu_entry(n, item, node));
		visits++;
	}
	assert_int_equal(visits, N / 2);
	assert_int_equal(m.count, 0);
	memset(&iter, 0, sizeof(iter));
	assert_null(gwu_hmap_next(&m, &iter));
	gwu_hmap_fini(&m);
}

/* Sized at init, the map never allocates again however often entries come and go. */
static void test_bounded(void **state)
{
	enum { MAX = 1000 };
	item *it = items_new(MAX, "192.0.2.", "");
	gwu_hmap m;
	size_t nb, round, i;

	(void)state;
	assert_int_equal(gwu_hmap_init(&m, MAX), 0);
	nb = m.nbuckets;
	assert_true(nb >= MAX);
	for (round = 0; round < 3; round++) {
		for (i = 0; i < MAX; i++)
			gwu_hmap_put(&m, &it[i].node, it[i].key);
		assert_int_equal(m.count, MAX);
		for (i = 0; i < MAX; i++)
			gwu_hmap_del(&m, &it[i].node);
		assert_int_equal(m.count, 0);
	}
	assert_int_equal(m.nbuckets, nb);
	gwu_hmap_fini(&m);
	free(it);
}

static void test_prefix_and_empty_keys(void **state)
{
	item a, ab, empty;
	gwu_hmap m;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&ab, 0, sizeof(ab));
	memset(&empty, 0, sizeof(empty));
	strcpy(a.key, "a");
	strcpy(ab.key, "ab");
	assert_int_equal(gwu_hmap_init(&m, 4), 0);
	gwu_hmap_put(&m, &a.node, a.key);
	assert_null(get(&m, "ab"));
	assert_null(get(&m, ""));
	assert_null(get(&m, "A")); /* exact: case matters */
	gwu_hmap_put(&m, &ab.node, ab.key);
	gwu_hmap_put(&m, &empty.node, empty.key);
	assert_ptr_equal(get(&m, "a"), &a);
	assert_ptr_equal(get(&m, "ab"), &ab);
	assert_ptr_equal(get(&m, ""), &empty);
	gwu_hmap_fini(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_many_keys),
	    cmocka_unit_test(test_one_chain),
	    cmocka_unit_test(test_delete_while_iterating),
	    cmocka_unit_test(test_bounded),
	    cmocka_unit_test(test_prefix_and_empty_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
