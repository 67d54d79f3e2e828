/*
 * bench_redis.c - would the call-ahead cache gain from living on Redis?
 * Times, in one run on one machine, a lookup in the local gw_cache against
 * a GET of the same entry from a redis-server (one hiredis connection, one
 * command at a time: the latency an RCPT would wait), over N keys shaped
 * like call-ahead entries ("user@domain" -> "250|2.1.5|Ok").
 *
 *   bench_redis [-n KEYS] [-g GETS] HOST PORT
 *
 * Prints the median and 99th percentile of each, and their ratio. The
 * redis-server is the caller's (bench/bench_redis.sh starts one on
 * loopback); the keys it writes are under "gwbench:" and deleted after.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "gw/cache.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *what, double *t, size_t n, double *median_r)
{
	qsort(t, n, sizeof(*t), cmpd);
	*median_r = t[n / 2];
	printf("%-34s median %9.3f us  p99 %9.3f us  (%zu lookups)\n", what, t[n / 2], t[n * 99 / 100], n);
}

int main(int argc, char **argv)
{
	size_t keys = 10000, gets = 20000, i;
	double *t, med_local, med_redis;
	gw_cache_value v;
	redisContext *rc;
	gw_cache *c;
	char key[128];
	int o;

	while ((o = getopt(argc, argv, "n:g:")) != -1) {
		if (o == 'n')
			keys = strtoul(optarg, NULL, 10);
		else if (o == 'g')
			gets = strtoul(optarg, NULL, 10);
		else
			return 2;
	}
	if (argc - optind != 2 || keys == 0 || gets < 100) {
		fprintf(stderr, "usage: bench_redis [-n KEYS] [-g GETS] HOST PORT\n");
		return 2;
	}
	rc = redisConnect(argv[optind], atoi(argv[optind + 1]));
	if (rc == NULL || rc->err) {
		fprintf(stderr, "bench_redis: connect: %s\n", rc != NULL ? rc->errstr : "out of memory");
		return 1;
	}
	if ((c = gw_cache_new(keys, NULL)) == NULL || (t = malloc(gets * sizeof(*t))) == NULL)
		return 1;
	for (i = 0; i < keys; i++) {
		snprintf(key, sizeof(key), "user%zu@dept%zu.example.com", i, i % 50);
		gw_cache_put(c, key, GW_CACHE_POSITIVE, 250, "2.1.5|Ok", 3600000);
		redisAppendCommand(rc, "SET gwbench:%s 250|2.1.5|Ok EX 3600", key);
	}
	for (i = 0; i < keys; i++) {
		redisReply *r;
		if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
			fprintf(stderr, "bench_redis: SET: %s\n", rc->errstr);
			return 1;
		}
		freeReplyObject(r);
	}
	for (i = 0; i < gets; i++) {
		double t0;
		snprintf(key, sizeof(key), "user%zu@dept%zu.example.com", (i * 7919) % keys,
			 ((i * 7919) % keys) % 50);
		t0 = now_us();
		if (gw_cache_get(c, key, &v) != 1)
			return 1;
		t[i] = now_us() - t0;
	}
	report("local gw_cache hit", t, gets, &med_local);
	for (i = 0; i < gets; i++) {
		redisReply *r;
		double t0;
		snprintf(key, sizeof(key), "user%zu@dept%zu.example.com", (i * 7919) % keys,
			 ((i * 7919) % keys) % 50);
		t0 = now_us();
		r = redisCommand(rc, "GET gwbench:%s", key);
		t[i] = now_us() - t0;
		if (r == NULL || r->type != REDIS_REPLY_STRING) {
			fprintf(stderr, "bench_redis: GET: %s\n", r == NULL ? rc->errstr : "not found");
			return 1;
		}
		freeReplyObject(r);
	}
	report("Redis GET round trip (loopback)", t, gets, &med_redis);
	printf("ratio redis/local: %.0fx\n", med_redis / (med_local > 0.001 ? med_local : 0.001));
	for (i = 0; i < keys; i++) {
		snprintf(key, sizeof(key), "user%zu@dept%zu.example.com", i, i % 50);
		redisAppendCommand(rc, "DEL gwbench:%s", key);
	}
	for (i = 0; i < keys; i++) {
		redisReply *r;
		if (redisGetReply(rc, (void **)&r) == REDIS_OK)
			freeReplyObject(r);
	}
	redisFree(rc);
	gw_cache_free(&c);
	free(t);
	return 0;
}
