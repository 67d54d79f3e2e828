/*
 * bench_cache.c - memory and speed of the call-ahead cache at gateway scale.
 *
 * Fills a gw_cache with N recipients (default 1,000,000) the way the
 * call-ahead engine does (key "localpart@domain", text "enh|reply text" of a
 * Postfix answer; 80% positive, 20% negative), then reports the resident
 * memory it took and lookups per second, against a plain array of the same
 * keys searched with bsearch in the same run (the ratio). Target: 1,000,000
 * cached recipients in at most 256 MB of RSS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/cache.h"
#include "gw/time.h"

static long rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void make_key(char *buf, size_t size, size_t i)
{
	snprintf(buf, size, "user%zu.%zx@dept%zu.example.com", i, i * 2654435761u % 100000, i % 50);
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000, i, found = 0, found_ref = 0;
	long before, after;
	char key[128];
	gw_cache *c;
	gw_cache_value v;
	int64_t t0, t1, t2;

	before = rss_kb();
	c = gw_cache_new(n, NULL);
	if (c == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		make_key(key, sizeof(key), i);
		if (i % 5 == 4)
			gw_cache_put(c, key, GW_CACHE_NEGATIVE, 550,
				     "5.1.1|<x@example.com>: Recipient address rejected: User unknown",
				     600000);
		else
			gw_cache_put(c, key, GW_CACHE_POSITIVE, 250, "2.1.5|Ok", 3600000);
	}
	after = rss_kb();
	printf("cache %zu recipients: RSS %.1f MB (%.0f bytes each), target <= 256 MB: %s\n", n,
	       (after - before) / 1024.0, (after - before) * 1024.0 / (double)n,
	       (after - before) <= 256 * 1024 ? "met" : "NOT met");

	/* Reference: the same keys in a sorted array, looked up with bsearch. */
	char **keys = malloc(n * sizeof(*keys));
	if (keys == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		make_key(key, sizeof(key), i);
		keys[i] = strdup(key);
	}
	qsort(keys, n, sizeof(*keys), cmp);

	t0 = gw_now_ms();
	for (i = 0; i < n; i++) {
		make_key(key, sizeof(key), (i * 7919) % n);
		found += gw_cache_get(c, key, &v);
	}
	t1 = gw_now_ms();
	for (i = 0; i < n; i++) {
		char *k = key;
		make_key(key, sizeof(key), (i * 7919) % n);
		found_ref += bsearch(&k, keys, n, sizeof(*keys), cmp) != NULL;
	}
	t2 = gw_now_ms();
	if (t1 == t0)
		t1 = t0 + 1;
	if (t2 == t1)
		t2 = t1 + 1;
	printf(
	    "cache lookups: %.0f/s (%zu hits); sorted array + bsearch: %.0f/s; ratio cache/bsearch = %.2f\n",
	    n * 1000.0 / (double)(t1 - t0), found, n * 1000.0 / (double)(t2 - t1),
	    (double)(t2 - t1) / (double)(t1 - t0));
	for (i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	gw_cache_free(&c);
	return found == n && found_ref == n ? 0 : 1;
}
