/*
 * route_health.c - per-route up/down state and the background re-probe thread (route_health.h).
 *
 * A hash map (hmap.h) of reference-counted entries under one mutex. The
 * thread sleeps on a condition variable (CLOCK_MONOTONIC) until the next
 * down route is due for a re-probe, a refill is asked for, the next
 * housekeeping tick, or rh_free; it runs the probe (and the refill) with the
 * mutex released, on a copy of the route, so
 * checks never wait for a re-probe. Re-probe timing uses the real monotonic
 * clock (it paces network work); "confirmed" times use the caller's clock so
 * tests can move them.
 *
 * Does not defend against: see route_health.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw/log.h"
#include "hmap.h"
#include "route_health.h"

#define RH_REFILL_MAX 16 /* refills one route may have pending (more sessions than a pool keeps) */

struct rh_entry {
	gwu_hnode node; /* keyed by key */
	gw_route route; /* copy, for the re-probe */
	unsigned refs;
	unsigned active; /* probe slots taken */
	int down;
	int probing;     /* the thread is re-probing or refilling it now */
	unsigned refill; /* refills asked for and not yet done (rh_request_refill) */
	int sender_refused;
	int64_t confirmed_ms; /* caller's clock; 0: never */
	int64_t retry_at;     /* real clock: next re-probe while down */
	char key[];
};

struct rh_table {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_cond_t slot_freed; /* a probe slot was given back */
	unsigned slot_waiters;     /* threads waiting on slot_freed, of any route */
	pthread_t thread;
	int stop;
	gw_clock clock;
	unsigned reprobe_ms;
	rh_probe_fn probe;
	rh_probe_fn refill;
	rh_tick_fn tick;
	void *ctx;
	gwu_hmap map;
};

static rh_entry *rh_find(rh_table *t, const char *key)
{
	gwu_hnode *n = gwu_hmap_get(&t->map, key);

	return n != NULL ? gwu_entry(n, rh_entry, node) : NULL;
}

static void rh_unlink(rh_table *t, rh_entry *victim)
{
	gwu_hmap_del(&t->map, &victim->node);
	free(victim);
}

/* Make room: drop one entry nobody holds and that carries no state worth keeping. */
static int rh_evict_one(rh_table *t)
{
	gwu_hmap_iter it = {0};
	gwu_hnode *n;

	while ((n = gwu_hmap_next(&t->map, &it)) != NULL) {
		rh_entry *e = gwu_entry(n, rh_entry, node);

		if (e->refs == 0 && !e->down && !e->probing && e->active == 0) {
			rh_unlink(t, e);
			return 0;
		}
	}
	return -1;
}

/* Absolute CLOCK_MONOTONIC time ms from now, for pthread_cond_timedwait. */
static struct timespec rh_abstime(int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* The first down route due now; else *next_r lowered to the earliest due time. */
static rh_entry *rh_due(rh_table *t, int64_t now, int64_t *next_r)
{
	gwu_hmap_iter it = {0};
	gwu_hnode *n;

	while ((n = gwu_hmap_next(&t->map, &it)) != NULL) {
		rh_entry *e = gwu_entry(n, rh_entry, node);

		if (!e->down || e->probing)
			continue;
		if (e->retry_at <= now)
			return e;
		if (e->retry_at < *next_r)
			*next_r = e->retry_at;
	}
	return NULL;
}

/* A route up, not busy, with a refill asked for; NULL if none. */
static rh_entry *rh_refill_due(rh_table *t)
{
	gwu_hmap_iter it = {0};
	gwu_hnode *n;

	while ((n = gwu_hmap_next(&t->map, &it)) != NULL) {
		rh_entry *e = gwu_entry(n, rh_entry, node);

		if (e->refill && !e->down && !e->probing)
			return e;
	}
	return NULL;
}

/* Refill e's pool with the lock released; called and returns with the lock held. */
static void rh_refill(rh_table *t, rh_entry *e)
{
	gw_route route = e->route;
	char *key = strdup(e->key);
	int ok = 0;

	e->refill--;
	e->probing = 1;
	e->refs++;
	pthread_mutex_unlock(&t->lock);
	if (key != NULL && t->refill != NULL)
		ok = t->refill(t->ctx, &route, key);
	gw_log(GW_LOG_DEBUG, "ca_pool", "step=refill route=%s result=%s", key != NULL ? key : "?",
	       ok ? "pooled" : "failed");
	free(key);
	pthread_mutex_lock(&t->lock);
	e->probing = 0;
	e->refs--;
}

/* Re-probe e with the lock released; called and returns with the lock held. */
static void rh_reprobe(rh_table *t, rh_entry *e)
{
	gw_route route = e->route;
	char *key = strdup(e->key);
	int ok = 0;

	e->probing = 1;
	e->refs++;
	pthread_mutex_unlock(&t->lock);
	if (key != NULL && t->probe != NULL)
		ok = t->probe(t->ctx, &route, key);
	gw_log(GW_LOG_DEBUG, "ca_reprobe", "route=%s result=%s", key != NULL ? key : "?", ok ? "up" : "down");
	free(key);
	int64_t confirmed = t->clock.now_ms(t->clock.ctx);
	pthread_mutex_lock(&t->lock);
	e->probing = 0;
	e->refs--;
	if (ok && e->down) {
		e->down = 0;
		e->confirmed_ms = confirmed;
	} else if (e->down) {
		e->retry_at = gw_now_ms() + t->reprobe_ms;
	}
}

static void *rh_thread(void *arg)
{
	rh_table *t = arg;
	int64_t next_tick = gw_now_ms() + t->reprobe_ms;

	pthread_mutex_lock(&t->lock);
	while (!t->stop) {
		int64_t now = gw_now_ms();
		int64_t next = next_tick;
		rh_entry *e = rh_due(t, now, &next);

		if (e != NULL) {
			rh_reprobe(t, e);
			continue;
		}
		if ((e = rh_refill_due(t)) != NULL) {
			rh_refill(t, e);
			continue;
		}
		if (now >= next_tick) {
			next_tick = now + t->reprobe_ms;
			if (t->tick != NULL) {
				pthread_mutex_unlock(&t->lock);
				t->tick(t->ctx);
				pthread_mutex_lock(&t->lock);
			}
			continue;
		}
		struct timespec ts = rh_abstime(next - now);
		pthread_cond_timedwait(&t->wake, &t->lock, &ts);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

rh_table *rh_new(const gw_clock *clock, unsigned reprobe_ms, rh_probe_fn probe, rh_tick_fn tick, void *ctx)
{
	rh_table *t = calloc(1, sizeof(*t));
	pthread_condattr_t ca;
	int err;

	if (t == NULL)
		return NULL;
	if (gwu_hmap_init(&t->map, 0) != 0) {
		free(t);
		return NULL;
	}
	t->clock = clock != NULL ? *clock : gw_clock_monotonic;
	t->reprobe_ms = reprobe_ms > 0 ? reprobe_ms : 1;
	t->probe = probe;
	t->tick = tick;
	t->ctx = ctx;
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->wake, &ca);
	pthread_cond_init(&t->slot_freed, &ca);
	pthread_condattr_destroy(&ca);
	err = pthread_create(&t->thread, NULL, rh_thread, t);
	if (err != 0) {
		pthread_cond_destroy(&t->slot_freed);
		pthread_cond_destroy(&t->wake);
		pthread_mutex_destroy(&t->lock);
		gwu_hmap_fini(&t->map);
		free(t);
		errno = err;
		return NULL;
	}
	return t;
}

void rh_free(rh_table **tp)
{
	rh_table *t = *tp;
	gwu_hmap_iter it = {0};
	gwu_hnode *n;

	if (t == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = 1;
	pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	while ((n = gwu_hmap_next(&t->map, &it)) != NULL)
		rh_unlink(t, gwu_entry(n, rh_entry, node));
	gwu_hmap_fini(&t->map);
	pthread_cond_destroy(&t->slot_freed);
	pthread_cond_destroy(&t->wake);
	pthread_mutex_destroy(&t->lock);
	free(t);
	*tp = NULL;
}

void rh_set_refill(rh_table *t, rh_probe_fn refill)
{
	pthread_mutex_lock(&t->lock);
	t->refill = refill;
	pthread_mutex_unlock(&t->lock);
}

void rh_request_refill(rh_table *t, rh_entry *e)
{
	pthread_mutex_lock(&t->lock);
	if (t->refill != NULL && !e->down && e->refill < RH_REFILL_MAX) {
		e->refill++;
		pthread_cond_signal(&t->wake);
	}
	pthread_mutex_unlock(&t->lock);
}

rh_entry *rh_acquire(rh_table *t, const char *key, const gw_route *route)
{
	rh_entry *e;

	pthread_mutex_lock(&t->lock);
	e = rh_find(t, key);
	if (e == NULL && (t->map.count < RH_MAX_ROUTES || rh_evict_one(t) == 0)) {
		size_t klen = strlen(key);

		e = calloc(1, sizeof(*e) + klen + 1);
		if (e != NULL) {
			memcpy(e->key, key, klen + 1);
			e->route = *route;
			gwu_hmap_put(&t->map, &e->node, e->key);
		}
	}
	if (e != NULL)
		e->refs++;
	pthread_mutex_unlock(&t->lock);
	return e;
}

void rh_release(rh_table *t, rh_entry *e)
{
	if (e == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	e->refs--;
	pthread_mutex_unlock(&t->lock);
}

int rh_is_down(rh_table *t, rh_entry *e)
{
	int down;

	pthread_mutex_lock(&t->lock);
	down = e->down;
	pthread_mutex_unlock(&t->lock);
	return down;
}

int rh_mark_down(rh_table *t, rh_entry *e)
{
	int was_up;

	pthread_mutex_lock(&t->lock);
	was_up = !e->down;
	if (was_up) {
		e->down = 1;
		e->retry_at = gw_now_ms() + t->reprobe_ms;
		/* The thread may be sleeping a whole tick: let it plan for this route. */
		pthread_cond_signal(&t->wake);
	}
	pthread_mutex_unlock(&t->lock);
	return was_up;
}

void rh_confirm(rh_table *t, rh_entry *e)
{
	int64_t now = t->clock.now_ms(t->clock.ctx);

	pthread_mutex_lock(&t->lock);
	e->down = 0;
	e->confirmed_ms = now;
	pthread_mutex_unlock(&t->lock);
}

int rh_confirmed_within(rh_table *t, rh_entry *e, unsigned window_ms)
{
	int64_t now = t->clock.now_ms(t->clock.ctx);
	int ok;

	pthread_mutex_lock(&t->lock);
	ok = !e->down && e->confirmed_ms > 0 && now - e->confirmed_ms < (int64_t)window_ms;
	pthread_mutex_unlock(&t->lock);
	return ok;
}

int rh_probe_begin(rh_table *t, rh_entry *e, unsigned max, unsigned wait_ms)
{
	struct timespec until = rh_abstime(wait_ms);
	int rc = -1;

	pthread_mutex_lock(&t->lock);
	/* A burst queues briefly for a slot rather than being told 4xx at once. */
	while (e->active >= max && wait_ms > 0) {
		int wr;

		t->slot_waiters++;
		wr = pthread_cond_timedwait(&t->slot_freed, &t->lock, &until);
		t->slot_waiters--;
		if (wr == ETIMEDOUT)
			break;
	}
	if (e->active < max) {
		e->active++;
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void rh_probe_end(rh_table *t, rh_entry *e)
{
	pthread_mutex_lock(&t->lock);
	if (e->active > 0)
		e->active--;
	/*
	 * Nobody waits in the common case: no wake-up at all. The waiters may be
	 * for other routes (one condition for all), so all are woken, or the one
	 * for this route could sleep on while another re-checks and sleeps again.
	 */
	if (t->slot_waiters > 0)
		pthread_cond_broadcast(&t->slot_freed);
	pthread_mutex_unlock(&t->lock);
}

int rh_sender_refused(rh_table *t, rh_entry *e)
{
	int r;

	pthread_mutex_lock(&t->lock);
	r = e->sender_refused;
	pthread_mutex_unlock(&t->lock);
	return r;
}

void rh_set_sender_refused(rh_table *t, rh_entry *e)
{
	pthread_mutex_lock(&t->lock);
	e->sender_refused = 1;
	pthread_mutex_unlock(&t->lock);
}

int rh_stopping(rh_table *t)
{
	int stop;

	pthread_mutex_lock(&t->lock);
	stop = t->stop;
	pthread_mutex_unlock(&t->lock);
	return stop;
}

int rh_key_down(rh_table *t, const char *key)
{
	rh_entry *e;
	int down;

	pthread_mutex_lock(&t->lock);
	e = rh_find(t, key);
	down = e != NULL && e->down;
	pthread_mutex_unlock(&t->lock);
	return down;
}

size_t rh_down_count(rh_table *t)
{
	gwu_hmap_iter it = {0};
	gwu_hnode *n;
	size_t down = 0;

	pthread_mutex_lock(&t->lock);
	while ((n = gwu_hmap_next(&t->map, &it)) != NULL)
		down += gwu_entry(n, rh_entry, node)->down != 0;
	pthread_mutex_unlock(&t->lock);
	return down;
}

unsigned rh_slot_waiters(rh_table *t)
{
	unsigned n;

	pthread_mutex_lock(&t->lock);
	n = t->slot_waiters;
	pthread_mutex_unlock(&t->lock);
	return n;
}
