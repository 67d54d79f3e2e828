/*
 * corr.c - the learned-correspondent table (see corr.h): an intrusive hash
 * map of entries under one mutex.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../libgw/hmap.h" /* internal to libgw, reached through the static library */
#include "corr.h"
#include "flood_math.h"

typedef struct centry {
	gwu_hnode node;
	double score;      /* this gateway's own count */
	double fleet;      /* the other gateways' counts, summed at the last fleet refresh */
	double fleet_next; /* the sum being built by a refresh in progress */
	uint64_t gen;      /* the refresh fleet_next belongs to */
	int64_t stamp;     /* ms of the clock, when score and fleet were last brought up to date */
	unsigned dirty;
	char key[];
} centry;

struct gwm_corr {
	pthread_mutex_t lock;
	gwu_hmap map;
	size_t max;
	int64_t half_ms;
	gw_clock clock;
	uint64_t refused;
	uint64_t gen; /* the last fleet refresh begun */
};

gwm_corr *gwm_corr_new(size_t max_entries, int64_t half_ms, const gw_clock *clock)
{
	gwm_corr *t;

	if (max_entries == 0 || half_ms <= 0) {
		errno = EINVAL;
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	/* Buckets for a modest table; the map grows towards max as it fills. */
	if (gwu_hmap_init(&t->map, max_entries < 1024 ? max_entries : 1024) != 0) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	t->max = max_entries;
	t->half_ms = half_ms;
	t->clock = clock != NULL ? *clock : gw_clock_wall;
	return t;
}

void gwm_corr_free(gwm_corr **tp)
{
	gwm_corr *t = tp != NULL ? *tp : NULL;
	gwu_hmap_iter it = {0};
	gwu_hnode *n;

	if (t == NULL)
		return;
	while ((n = gwu_hmap_next(&t->map, &it)) != NULL) {
		gwu_hmap_del(&t->map, n);
		free(gwu_entry(n, centry, node));
	}
	gwu_hmap_fini(&t->map);
	pthread_mutex_destroy(&t->lock);
	free(t);
	*tp = NULL;
}

void gwm_corr_set_half_life(gwm_corr *t, int64_t half_ms)
{
	if (half_ms <= 0)
		return;
	pthread_mutex_lock(&t->lock);
	t->half_ms = half_ms;
	pthread_mutex_unlock(&t->lock);
}

/* Bring e up to now. Lock held. */
static void freshen(gwm_corr *t, centry *e, int64_t now)
{
	if (now > e->stamp) {
		e->score = gwm_decay(e->score, now - e->stamp, t->half_ms);
		e->fleet = gwm_decay(e->fleet, now - e->stamp, t->half_ms);
		e->stamp = now;
	}
}

/* Drop entries decayed to nothing; lock held. */
static void sweep(gwm_corr *t, int64_t now)
{
	gwu_hmap_iter it = {0};
	gwu_hnode *n;

	while ((n = gwu_hmap_next(&t->map, &it)) != NULL) {
		centry *e = gwu_entry(n, centry, node);
		freshen(t, e, now);
		/* A sum being built by a refresh in progress keeps its entry. */
		if (e->score + e->fleet + (e->gen == t->gen ? e->fleet_next : 0) < GWM_CORR_FORGET) {
			gwu_hmap_del(&t->map, n);
			free(e);
		}
	}
}

/* key's entry, made when absent and make is set; lock held. NULL: none, or cannot make. */
static centry *find(gwm_corr *t, const char *key, int make, int64_t now)
{
	gwu_hnode *n = gwu_hmap_get(&t->map, key);
	size_t len;
	centry *e;

	if (n != NULL)
		return gwu_entry(n, centry, node);
	if (!make)
		return NULL;
	if (t->map.count >= t->max)
		sweep(t, now);
	len = strlen(key);
	if (t->map.count >= t->max || (e = calloc(1, sizeof(*e) + len + 1)) == NULL) {
		t->refused++;
		return NULL;
	}
	memcpy(e->key, key, len + 1);
	e->stamp = now;
	gwu_hmap_put(&t->map, &e->node, e->key);
	return e;
}

int gwm_corr_add(gwm_corr *t, const char *key, double w)
{
	int64_t now;
	centry *e;

	if (key == NULL || strlen(key) >= GWM_CORR_KEY_MAX)
		return -1;
	now = t->clock.now_ms(t->clock.ctx);
	pthread_mutex_lock(&t->lock);
	if ((e = find(t, key, 1, now)) != NULL) {
		freshen(t, e, now);
		e->score += w;
		e->dirty = GWM_CORR_DIRTY_STORE | GWM_CORR_DIRTY_SHARED;
	}
	pthread_mutex_unlock(&t->lock);
	return e != NULL ? 0 : -1;
}

/* key's own score (fleet 0) or own plus the fleet's (fleet 1). */
static double score_of(gwm_corr *t, const char *key, int fleet)
{
	int64_t now = t->clock.now_ms(t->clock.ctx);
	double s = 0;
	centry *e;

	pthread_mutex_lock(&t->lock);
	if ((e = find(t, key, 0, now)) != NULL) {
		freshen(t, e, now);
		s = e->score + (fleet ? e->fleet : 0);
	}
	pthread_mutex_unlock(&t->lock);
	return s;
}

double gwm_corr_score(gwm_corr *t, const char *key)
{
	return score_of(t, key, 1);
}

double gwm_corr_own(gwm_corr *t, const char *key)
{
	return score_of(t, key, 0);
}

uint64_t gwm_corr_fleet_begin(gwm_corr *t)
{
	uint64_t g;

	pthread_mutex_lock(&t->lock);
	g = ++t->gen;
	pthread_mutex_unlock(&t->lock);
	return g;
}

int gwm_corr_fleet_add(gwm_corr *t, uint64_t gen, const char *key, double score, int64_t stamp_ms)
{
	int64_t now;
	double theirs;
	centry *e;

	if (key == NULL || strlen(key) >= GWM_CORR_KEY_MAX || !(score >= 0))
		return -1;
	now = t->clock.now_ms(t->clock.ctx);
	theirs = gwm_decay(score, now - stamp_ms, t->half_ms);
	if (theirs < GWM_CORR_FORGET)
		return 0;
	pthread_mutex_lock(&t->lock);
	if ((e = find(t, key, 1, now)) != NULL) {
		freshen(t, e, now);
		if (e->gen != gen) {
			e->gen = gen;
			e->fleet_next = 0;
		}
		e->fleet_next += theirs;
	}
	pthread_mutex_unlock(&t->lock);
	return e != NULL ? 0 : -1;
}

void gwm_corr_fleet_end(gwm_corr *t, uint64_t gen)
{
	int64_t now = t->clock.now_ms(t->clock.ctx);
	gwu_hmap_iter it = {0};
	gwu_hnode *n;

	pthread_mutex_lock(&t->lock);
	while ((n = gwu_hmap_next(&t->map, &it)) != NULL) {
		centry *e = gwu_entry(n, centry, node);
		freshen(t, e, now);
		/* A key no other gateway holds any more (its hash expired) counts for nothing. */
		e->fleet = e->gen == gen ? e->fleet_next : 0;
		e->fleet_next = 0;
	}
	pthread_mutex_unlock(&t->lock);
}

int gwm_corr_is(gwm_corr *t, const char *key, double threshold)
{
	return gwm_corr_score(t, key) >= threshold;
}

int gwm_corr_merge(gwm_corr *t, const char *key, double score, int64_t stamp_ms, unsigned mark)
{
	int64_t now;
	double theirs;
	centry *e;
	int taken = 0;

	if (key == NULL || strlen(key) >= GWM_CORR_KEY_MAX || !(score >= 0))
		return -1;
	now = t->clock.now_ms(t->clock.ctx);
	/* A stamp from the future (another host's clock ahead of ours) counts as now. */
	theirs = gwm_decay(score, now - stamp_ms, t->half_ms);
	if (theirs < GWM_CORR_FORGET)
		return 0;
	pthread_mutex_lock(&t->lock);
	e = find(t, key, 0, now);
	if (e != NULL)
		freshen(t, e, now);
	if (e == NULL || theirs > e->score + 1e-9) {
		if (e == NULL)
			e = find(t, key, 1, now);
		if (e != NULL) {
			e->score = theirs;
			e->stamp = now;
			e->dirty |= mark;
			taken = 1;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return e != NULL ? taken : -1;
}

size_t gwm_corr_drain(gwm_corr *t, unsigned bit,
		      void (*fn)(void *ctx, const char *key, double score, int64_t stamp_ms), void *ctx)
{
	gwu_hmap_iter it = {0};
	gwu_hnode *n;
	size_t count = 0;

	pthread_mutex_lock(&t->lock);
	while ((n = gwu_hmap_next(&t->map, &it)) != NULL) {
		centry *e = gwu_entry(n, centry, node);
		if (!(e->dirty & bit))
			continue;
		e->dirty &= ~bit;
		fn(ctx, e->key, e->score, e->stamp);
		count++;
	}
	pthread_mutex_unlock(&t->lock);
	return count;
}

void gwm_corr_mark_all(gwm_corr *t, unsigned bit)
{
	gwu_hmap_iter it = {0};
	gwu_hnode *n;

	pthread_mutex_lock(&t->lock);
	while ((n = gwu_hmap_next(&t->map, &it)) != NULL)
		gwu_entry(n, centry, node)->dirty |= bit;
	pthread_mutex_unlock(&t->lock);
}

void gwm_corr_stats_get(gwm_corr *t, gwm_corr_stats *s)
{
	pthread_mutex_lock(&t->lock);
	s->entries = t->map.count;
	s->max_entries = t->max;
	s->refused = t->refused;
	pthread_mutex_unlock(&t->lock);
}
