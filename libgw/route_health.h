/*
 * route_health.h - per-route health shared by every call-ahead transaction (internal to libgw).
 *
 * One entry per route key (its next hops and protocol, see probe_pool.h):
 * up or down, when it last answered (on the caller's gw_clock), how many
 * probe sessions use it now, and whether it refused the probe sender. A
 * background thread re-probes each down route reprobe_ms after it went down
 * (then every reprobe_ms) through a callback, opens replacement pool
 * sessions on request through another, and calls a housekeeping callback
 * on every wake; rh_free() wakes it through a condition variable
 * and joins it. Entries are reference counted so a route in use is never
 * evicted; at most RH_MAX_ROUTES exist.
 *
 * Does not defend against: a probe callback that blocks for long (rh_free
 * waits for the probe in progress); more distinct routes in use at once than
 * RH_MAX_ROUTES (rh_acquire then fails).
 */
#ifndef GW_ROUTE_HEALTH_H
#define GW_ROUTE_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "gw/route.h"
#include "gw/time.h"

#define RH_MAX_ROUTES 1024

typedef struct rh_table rh_table;
typedef struct rh_entry rh_entry;

/* Re-probe one route from the background thread: 1 when a hop answered, 0 otherwise. */
typedef int (*rh_probe_fn)(void *ctx, const gw_route *route, const char *key);
/* Housekeeping on every wake of the background thread. */
typedef void (*rh_tick_fn)(void *ctx);

/* A table and its thread. clock NULL: monotonic. probe and tick may be NULL. NULL on error (errno). */
rh_table *rh_new(const gw_clock *clock, unsigned reprobe_ms, rh_probe_fn probe, rh_tick_fn tick, void *ctx);
/* Wake and join the thread, free every entry, set *t to NULL. No entry may be held. */
void rh_free(rh_table **t);

/* The entry for key (created up, with a copy of route), referenced; NULL when the table is full or on ENOMEM.
 */
rh_entry *rh_acquire(rh_table *t, const char *key, const gw_route *route);
void rh_release(rh_table *t, rh_entry *e);

int rh_is_down(rh_table *t, rh_entry *e);
/* Mark down (the re-probe is due reprobe_ms from now). 1 if it was up. */
int rh_mark_down(rh_table *t, rh_entry *e);
/* A successful exchange: mark up and remember when. */
void rh_confirm(rh_table *t, rh_entry *e);
/* Up, and confirmed less than window_ms ago? */
int rh_confirmed_within(rh_table *t, rh_entry *e, unsigned window_ms);

/* Take one of max probe slots, waiting up to wait_ms for one: 0 ok, -1 when all stayed taken. */
int rh_probe_begin(rh_table *t, rh_entry *e, unsigned max, unsigned wait_ms);
void rh_probe_end(rh_table *t, rh_entry *e);

/* Did the route refuse the probe sender (so the fallback goes first)? */
int rh_sender_refused(rh_table *t, rh_entry *e);
void rh_set_sender_refused(rh_table *t, rh_entry *e);

/*
 * Refills: the thread calls refill(ctx, route, key) soon for a route asked
 * for with rh_request_refill (once per request, not while the route is
 * down), so a pooled session retired at pool_max_uses is replaced where no
 * MTA waits. Set before the first request.
 */
void rh_set_refill(rh_table *t, rh_probe_fn refill);
/* Ask the thread to call the refill callback for e's route; wakes it. */
void rh_request_refill(rh_table *t, rh_entry *e);
/* Has rh_free begun? (a probe callback checks between hops, to let rh_free join soon) */
int rh_stopping(rh_table *t);

/* Is the route with this key down? (0 when unknown) */
int rh_key_down(rh_table *t, const char *key);
size_t rh_down_count(rh_table *t);
/* Threads waiting for a probe slot now, over all routes (for tests). */
unsigned rh_slot_waiters(rh_table *t);

#endif
