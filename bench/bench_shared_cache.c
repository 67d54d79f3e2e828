/*
 * bench_shared_cache.c - how many call-ahead probes would a cache shared by
 * the gateways (on Redis) save? Replays a synthetic workload, on a simulated
 * clock, through the real cache (gw_cache, as gw_callahead uses it) twice:
 *   local   each gateway has its own cache (today);
 *   shared  each gateway's cache backed by one fleet-wide tier that every
 *           probe's answer reaches at once and a local miss reads (an entry
 *           found there is copied with its remaining lifetime): the ideal of
 *           a Redis-backed cache, instant replication and no outage, so an
 *           upper bound on what Redis could save. Its local misses are the
 *           Redis round trips it would cost.
 * The workload, all stated by the options (defaults in brackets):
 *   -g LIST   numbers of gateways [2,3,4]; each RCPT goes to one of them at
 *             random (MX of equal preference), or in turn with -m rr;
 *   -a N      recipient addresses [50000], drawn from a Zipf distribution of
 *             exponent -s [1.0] over their ranks;
 *   -u SHARE  of the addresses do not exist [0.05] (chosen at random, not by
 *             rank): cached negative;
 *   -r LIST   fleet-wide RCPT rates per second [0.1,1,10,50], Poisson
 *             arrivals, each over -d hours [24];
 *   positive_ttl 1h, negative_ttl 10m, confirm_window 10s, cache_entries
 *             100000 (gw.conf(5) defaults; -p, -n, -c to change the first three);
 *   -S SEED   of the generator [1]; the same seed replays the same RCPTs
 *             through both designs;
 *   -l MS     lag of the shared tier [0]: a probe's answer reaches it this
 *             much later. A lag models the design that keeps Redis off the
 *             RCPT path (a local copy of the fleet's answers refreshed in the
 *             background, as the flood guard's state is): then a local miss
 *             reads that copy, with no round trip.
 * A cached "valid" counts only while the gateway's route had an exchange
 * within confirm_window (gw-milter's rule: reachability is live); otherwise
 * the RCPT is checked live, a probe, in both designs alike.
 *
 *   bench_shared_cache [-g 2,3,4] [-a N] [-s S] [-u SHARE] [-r LIST] [-d H] [-m random|rr]
 *                      [-p S] [-n S] [-c MS] [-t US] [-S SEED] [-l MS]
 *
 * Prints per design the probes (per gateway and in all), the hit rate, the
 * probes the shared tier saves, and the break-even probe cost: the probe
 * time that the saved probes must exceed to pay for a Redis round trip on
 * every local miss (30.6 us on loopback, bench_redis; -t for another, and a
 * LAN's 300 us too).
 *
 * Does not model: Redis outages (they make sharing worth less), the cost
 * of the background copy (writes and reads of every answer), dictionary attacks (mostly distinct unknown
 * addresses, which no cache helps), daily cycles of the rate, catch-all domains.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw/cache.h"

#define MAX_GW     16
#define MAX_RATES  16
#define LAN_RTT_US 300.0

typedef struct sim {
	double now_ms;
} sim;

static int64_t sim_now(void *ctx)
{
	return (int64_t)((sim *)ctx)->now_ms;
}

static uint64_t rng_state;

/* xorshift64*: a stated, reproducible stream. */
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/* Uniform in (0, 1]. */
static double unif(void)
{
	return ((double)(rng() >> 11) + 1.0) / 9007199254740992.0;
}

typedef struct workload {
	size_t addrs;
	double zipf_s, unknown, hours;
	double *cdf;           /* cdf[i]: P(rank <= i) */
	unsigned char *exists; /* per address */
	uint32_t pos_ttl, neg_ttl, confirm_ms;
	int round_robin;
	uint64_t seed;
	uint32_t lag_ms; /* a probe's answer reaches the shared tier this much later */
} workload;

/* Answers on their way to the shared tier (-l), oldest first. */
typedef struct pending {
	size_t rank;
	double at_ms;
} pending;

typedef struct queue {
	pending *v;
	size_t head, tail, cap;
} queue;

static int enqueue(queue *q, size_t rank, double at_ms)
{
	if (q->tail == q->cap && q->head > 0) {
		memmove(q->v, q->v + q->head, (q->tail - q->head) * sizeof(*q->v));
		q->tail -= q->head;
		q->head = 0;
	}
	if (q->tail == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 1024;
		pending *v = realloc(q->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		q->v = v;
		q->cap = cap;
	}
	q->v[q->tail].rank = rank;
	q->v[q->tail++].at_ms = at_ms;
	return 0;
}

static void key_of(size_t rank, char *buf, size_t size)
{
	snprintf(buf, size, "u%zu@example.org", rank);
}

/* Put the answer for rank, probed at at_ms, into c with what is left of its TTL. 0 ok. */
static int put_answer(const workload *w, gw_cache *c, size_t rank, double at_ms, double now_ms)
{
	char key[64];
	int exists = w->exists[rank];
	double left = at_ms + (exists ? w->pos_ttl : w->neg_ttl) - now_ms;

	if (left < 1)
		return 0;
	key_of(rank, key, sizeof(key));
	return gw_cache_put(c, key, exists ? GW_CACHE_POSITIVE : GW_CACHE_NEGATIVE, exists ? 250 : 550, "",
			    (uint32_t)left);
}

static size_t draw_rank(const workload *w)
{
	double u = unif();
	size_t lo = 0, hi = w->addrs - 1;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (w->cdf[mid] >= u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

typedef struct result {
	uint64_t rcpts;
	uint64_t probes[MAX_GW], probes_all;
	uint64_t confirm_probes; /* positive known, route not confirmed recently: checked live */
	uint64_t local_misses;   /* shared design: the Redis round trips */
	uint64_t tier_hits;      /* shared design: answers found in the shared tier */
} result;

/* One design over the whole run: shared 0 local caches only, 1 local caches backed by the shared tier. */
static int run(const workload *w, int ngw, double rate, int shared, result *res)
{
	sim clock_state = {0};
	gw_clock clk = {sim_now, &clock_state};
	gw_cache *local[MAX_GW] = {0}, *tier = NULL;
	queue q = {0};
	double last_ok[MAX_GW], end_ms = w->hours * 3600e3;
	int rc = -1, g, next = 0;

	memset(res, 0, sizeof(*res));
	rng_state = w->seed * 0x9E3779B97F4A7C15ULL + 1;
	for (g = 0; g < ngw; g++) {
		last_ok[g] = -1e18;
		if ((local[g] = gw_cache_new(100000, &clk)) == NULL)
			goto out;
	}
	if (shared && (tier = gw_cache_new(1000000, &clk)) == NULL)
		goto out;
	for (;;) {
		gw_cache_value v;
		char key[64];
		size_t r;
		int found, ok;

		clock_state.now_ms += -log(unif()) / rate * 1e3;
		if (clock_state.now_ms >= end_ms)
			break;
		for (; q.head < q.tail && q.v[q.head].at_ms + w->lag_ms <= clock_state.now_ms; q.head++)
			if (put_answer(w, tier, q.v[q.head].rank, q.v[q.head].at_ms, clock_state.now_ms) != 0)
				goto out;
		g = w->round_robin ? next++ % ngw : (int)(rng() % (uint64_t)ngw);
		r = draw_rank(w);
		key_of(r, key, sizeof(key));
		res->rcpts++;
		found = gw_cache_get(local[g], key, &v);
		if (!found && shared) {
			res->local_misses++;
			if (gw_cache_get(tier, key, &v)) {
				int64_t left = v.expires_ms - (int64_t)clock_state.now_ms;
				res->tier_hits++;
				if (left > 0) {
					(void)gw_cache_put(local[g], key, v.kind, v.code, "", (uint32_t)left);
					found = 1;
				}
			}
		}
		/* gw-milter's rule: a negative stands; a positive only on a route confirmed lately. */
		ok = found && (v.kind == GW_CACHE_NEGATIVE ||
			       clock_state.now_ms - last_ok[g] <= (double)w->confirm_ms);
		if (ok)
			continue;
		if (found)
			res->confirm_probes++;
		res->probes[g]++;
		res->probes_all++;
		last_ok[g] = clock_state.now_ms;
		if (put_answer(w, local[g], r, clock_state.now_ms, clock_state.now_ms) != 0)
			goto out;
		if (shared &&
		    (w->lag_ms > 0 ? enqueue(&q, r, clock_state.now_ms)
				   : put_answer(w, tier, r, clock_state.now_ms, clock_state.now_ms)) != 0)
			goto out;
	}
	rc = 0;
out:
	for (g = 0; g < ngw; g++)
		gw_cache_free(&local[g]);
	gw_cache_free(&tier);
	free(q.v);
	return rc;
}

/* "a,b,c" into v (at most max); the count, 0 on a bad list. */
static int parse_list(const char *s, double *v, int max)
{
	int n = 0;
	char *e;

	while (*s != '\0' && n < max) {
		errno = 0;
		v[n] = strtod(s, &e);
		if (e == s || errno != 0 || v[n] <= 0)
			return 0;
		n++;
		s = *e == ',' ? e + 1 : e;
		if (*e != ',' && *e != '\0')
			return 0;
	}
	return *s == '\0' ? n : 0;
}

static void per_gw(const result *r, int ngw, double days, char *buf, size_t size)
{
	size_t off = 0;

	for (int g = 0; g < ngw && off < size; g++)
		off += (size_t)snprintf(buf + off, size - off, "%s%.0f", g ? "/" : "",
					(double)r->probes[g] / days);
}

static int usage(void)
{
	fprintf(stderr, "usage: bench_shared_cache [-g 2,3,4] [-a ADDRS] [-s ZIPF_S] [-u UNKNOWN_SHARE] "
			"[-r RATES] [-d HOURS] [-m random|rr] [-p POS_TTL_S] [-n NEG_TTL_S] [-c CONFIRM_MS] "
			"[-t RTT_US] [-S SEED] [-l LAG_MS]\n");
	return 2;
}

int main(int argc, char **argv)
{
	workload w = {50000, 1.0, 0.05, 24.0, NULL, NULL, 3600000, 600000, 10000, 0, 1, 0};
	double gws[MAX_RATES] = {2, 3, 4}, rates[MAX_RATES] = {0.1, 1, 10, 50}, rtt_us = 30.6, sum = 0;
	int ngws = 3, nrates = 4, o;

	while ((o = getopt(argc, argv, "g:a:s:u:r:d:m:p:n:c:t:S:l:")) != -1) {
		switch (o) {
		case 'g':
			ngws = parse_list(optarg, gws, MAX_RATES);
			break;
		case 'a':
			w.addrs = strtoul(optarg, NULL, 10);
			break;
		case 's':
			w.zipf_s = strtod(optarg, NULL);
			break;
		case 'u':
			w.unknown = strtod(optarg, NULL);
			break;
		case 'r':
			nrates = parse_list(optarg, rates, MAX_RATES);
			break;
		case 'd':
			w.hours = strtod(optarg, NULL);
			break;
		case 'm':
			w.round_robin = strcmp(optarg, "rr") == 0;
			if (!w.round_robin && strcmp(optarg, "random") != 0)
				return usage();
			break;
		case 'p':
			w.pos_ttl = (uint32_t)strtoul(optarg, NULL, 10) * 1000u;
			break;
		case 'n':
			w.neg_ttl = (uint32_t)strtoul(optarg, NULL, 10) * 1000u;
			break;
		case 'c':
			w.confirm_ms = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 't':
			rtt_us = strtod(optarg, NULL);
			break;
		case 'S':
			w.seed = strtoull(optarg, NULL, 10);
			break;
		case 'l':
			w.lag_ms = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		default:
			return usage();
		}
	}
	if (ngws == 0 || nrates == 0 || w.addrs < 1 || w.addrs > 10000000 || w.zipf_s <= 0 || w.unknown < 0 ||
	    w.unknown > 1 || w.hours <= 0 || rtt_us <= 0 || w.pos_ttl == 0 || w.neg_ttl == 0)
		return usage();
	for (int i = 0; i < ngws; i++)
		if (gws[i] != (int)gws[i] || gws[i] < 1 || gws[i] > MAX_GW)
			return usage();
	if ((w.cdf = malloc(w.addrs * sizeof(*w.cdf))) == NULL || (w.exists = malloc(w.addrs)) == NULL) {
		fprintf(stderr, "bench_shared_cache: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < w.addrs; i++)
		w.cdf[i] = sum += pow((double)(i + 1), -w.zipf_s);
	rng_state = w.seed * 0xD1B54A32D192ED03ULL + 7;
	for (size_t i = 0; i < w.addrs; i++) {
		w.cdf[i] /= sum;
		w.exists[i] = unif() > w.unknown;
	}
	w.cdf[w.addrs - 1] = 1.0;

	printf("workload: %zu addresses, Zipf s=%.2f, %.0f%% of them unknown; Poisson arrivals over %.0f h, "
	       "MX %s;\n          positive_ttl %us, negative_ttl %us, confirm_window %ums, cache_entries "
	       "100000; "
	       "shared tier lag %ums; seed %llu\n",
	       w.addrs, w.zipf_s, w.unknown * 100, w.hours, w.round_robin ? "round robin" : "random",
	       w.pos_ttl / 1000, w.neg_ttl / 1000, w.confirm_ms, w.lag_ms, (unsigned long long)w.seed);
	printf("per day. probes/gw: each gateway's; live%%: probes that checked a cached valid live (no "
	       "exchange on the route within confirm_window);\nredis: local misses, one Redis GET each "
	       "(with a lag: reads of a local copy, no round trip); b-e: the probe cost (ms) above which the "
	       "saved probes\noutweigh those GETs (%.1f us; LAN %.0f us)\n\n",
	       rtt_us, LAN_RTT_US);
	printf("%2s %6s %8s | %-28s %8s %5s %5s | %-28s %8s %5s %5s %8s | %7s %5s | %6s %6s\n", "N", "rcpt/s",
	       "rcpts", "local: probes/gw", "probes", "hit%", "live%", "shared: probes/gw", "probes", "hit%",
	       "live%", "redis", "saved", "%", "b-e ms", "LAN");
	for (int i = 0; i < ngws; i++) {
		for (int k = 0; k < nrates; k++) {
			result loc, shr;
			double days = w.hours / 24.0, saved, be, be_lan;
			char pl[64], ps[64];
			int ngw = (int)gws[i];

			if (run(&w, ngw, rates[k], 0, &loc) != 0 || run(&w, ngw, rates[k], 1, &shr) != 0) {
				fprintf(stderr, "bench_shared_cache: %s\n", strerror(errno));
				return 1;
			}
			per_gw(&loc, ngw, days, pl, sizeof(pl));
			per_gw(&shr, ngw, days, ps, sizeof(ps));
			saved = (double)loc.probes_all - (double)shr.probes_all;
			be = saved > 0 ? (double)shr.local_misses * rtt_us / saved / 1e3 : INFINITY;
			be_lan = saved > 0 ? (double)shr.local_misses * LAN_RTT_US / saved / 1e3 : INFINITY;
			printf("%2d %6.1f %8.0f | %-28s %8.0f %4.1f%% %4.0f%% | %-28s %8.0f %4.1f%% %4.0f%% "
			       "%8.0f | "
			       "%7.0f %4.1f%% | %6.3f %6.3f\n",
			       ngw, rates[k], (double)loc.rcpts / days, pl, (double)loc.probes_all / days,
			       100.0 * (1 - (double)loc.probes_all / (double)loc.rcpts),
			       100.0 * (double)loc.confirm_probes / (double)loc.probes_all, ps,
			       (double)shr.probes_all / days,
			       100.0 * (1 - (double)shr.probes_all / (double)shr.rcpts),
			       100.0 * (double)shr.confirm_probes / (double)shr.probes_all,
			       (double)shr.local_misses / days, saved / days,
			       100.0 * saved / (double)loc.probes_all, be, be_lan);
			fflush(stdout);
		}
	}
	free(w.cdf);
	free(w.exists);
	return 0;
}
