/*
 * corr.h - learned correspondents: a bounded table of decayed counts keyed
 * by text ("n:198.51.100.0/24" for a client network, "d:example.org" for a
 * domain we send to).
 *
 * Each entry holds a score and the time it was last brought up to date; a
 * read or an add first decays the score to now with the table's half-life,
 * so nothing ever sweeps the table on a timer. A key is a correspondent
 * while its decayed score is at least the caller's threshold. Times come
 * from the gw_clock given at creation and are stored as they are, so a
 * wall clock (gw_clock_wall) makes stored entries decay across restarts.
 *
 * Each entry holds two decayed counts: this gateway's own (what it learnt:
 * gwm_corr_add, the store, what it wrote to Redis before a restart) and the
 * fleet's, the sum of the other gateways' own counts as read at the last
 * refresh of the shared state (gwm_corr_fleet_begin/_add/_end). A key's
 * score is the sum of the two: 10 messages through gw1 and 10 through gw2
 * make 20 on both, and reading the same counts again replaces the fleet
 * part instead of adding to it, so nothing is counted twice. Only the own
 * count is written (to the store and to Redis).
 *
 * Entries changed since the last gwm_corr_drain() are marked dirty, with one
 * bit per writer: the store (LMDB) and the shared state (Redis) each write
 * only what changed since their last batch.
 * gwm_corr_merge() takes an own count from elsewhere (the store at start,
 * this gateway's own hash in Redis after a restart without a store),
 * keeping the larger of the two decayed scores.
 *
 * Memory is bounded by max_entries: when the table is full a sweep drops
 * entries decayed below GWM_CORR_FORGET; if it is still full the new key is
 * not learnt (counted in stats). Thread-safe (one mutex).
 *
 * Does not defend against: a sender that gets accepted mail through for a
 * while to become a correspondent before a flood (learning is by design
 * open to anyone whose mail we accept); keys chosen to collide in the hash.
 */
#ifndef GWM_CORR_H
#define GWM_CORR_H

#include <stddef.h>
#include <stdint.h>

#include "gw/time.h"

#define GWM_CORR_KEY_MAX 272  /* "d:" + a domain of 255 octets, with room */
#define GWM_CORR_FORGET  0.01 /* a score below this is as good as none */
/* Dirty bits: one per writer, so each sees every change once. An add sets both. */
#define GWM_CORR_DIRTY_STORE  1u
#define GWM_CORR_DIRTY_SHARED 2u

typedef struct gwm_corr gwm_corr;

typedef struct gwm_corr_stats {
	size_t entries, max_entries;
	uint64_t refused; /* keys not learnt because the table was full */
} gwm_corr_stats;

/* A table of at most max_entries (> 0), half-life half_ms (> 0); clock NULL: gw_clock_wall. */
gwm_corr *gwm_corr_new(size_t max_entries, int64_t half_ms, const gw_clock *clock);
void gwm_corr_free(gwm_corr **t);
/* Change the half-life (a reload); scores already held are not touched. */
void gwm_corr_set_half_life(gwm_corr *t, int64_t half_ms);
/* Add w to key's decayed score (creating it). 0 ok, -1 (key too long, table full, no memory). */
int gwm_corr_add(gwm_corr *t, const char *key, double w);
/* key's score (own plus the fleet's) decayed to now; 0 when unknown. */
double gwm_corr_score(gwm_corr *t, const char *key);
/* key's own count decayed to now; 0 when unknown. */
double gwm_corr_own(gwm_corr *t, const char *key);
/*
 * A refresh of the fleet's counts: begin returns its generation; add sums one
 * other gateway's count for key (score as of stamp_ms, decayed to now) into
 * the refresh; end makes the sums the fleet part of every entry (0 where no
 * other gateway had the key). A refresh that is not ended (Redis failed on
 * the way) leaves the last fleet part in place, decaying. add: 0 ok, -1
 * (key too long, table full). Only one refresh at a time.
 */
uint64_t gwm_corr_fleet_begin(gwm_corr *t);
int gwm_corr_fleet_add(gwm_corr *t, uint64_t gen, const char *key, double score, int64_t stamp_ms);
void gwm_corr_fleet_end(gwm_corr *t, uint64_t gen);
/* 1 when key's decayed score is at least threshold (> 0). */
int gwm_corr_is(gwm_corr *t, const char *key, double threshold);
/*
 * Take score (as of stamp_ms) from elsewhere: kept when it decays to more
 * than what the table has, and then marked with the dirty bits mark. 1
 * taken, 0 not, -1 error.
 */
int gwm_corr_merge(gwm_corr *t, const char *key, double score, int64_t stamp_ms, unsigned mark);
/* Call fn for each entry with dirty bit bit (its own score as of stamp), clearing it. Returns how many. fn
 * must not call back into t. */
size_t gwm_corr_drain(gwm_corr *t, unsigned bit,
		      void (*fn)(void *ctx, const char *key, double score, int64_t stamp_ms), void *ctx);
/* Set dirty bit bit on every entry (a batch that failed is written again whole). */
void gwm_corr_mark_all(gwm_corr *t, unsigned bit);
void gwm_corr_stats_get(gwm_corr *t, gwm_corr_stats *s);

#endif
