/*
 * watch.h - destinations that tarpit or throttle us: a reply slower than
 * tarpit_delay, a reply dribbled a few bytes a read (dribble.c, from how
 * the client engine says it arrived), or a 421 / 4xx whose text holds a
 * throttle word, marks the destination for mark_time; another such reply
 * within mark_time of a mark of the same kind only extends it (a tarpit that
 * dribbles every reply is one mark a period, not one a reply). The marks are logged, counted and listed on
 * the control socket ("marked"); while a destination is marked, throttle.c
 * gives it marked_concurrency sessions at most.
 *
 * The table is process-wide like the pool's (it survives reloads).
 *
 * Does not defend against: more than GWP_WATCH_ENTRIES destinations at
 * once (the stalest entry makes room); a tarpit that stays under both
 * tarpit_delay and dribble_reads/dribble_time (see dribble.h).
 */
#ifndef GWP_WATCH_H
#define GWP_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "gw/reply.h"

#define GWP_WATCH_ENTRIES 4096

typedef enum gwp_mark { GWP_MARK_TARPIT = 0, GWP_MARK_THROTTLE = 1 } gwp_mark;

typedef struct gwp_watch gwp_watch;

/* now: the clock in ms (NULL: gw_now_ms); tests inject their own. */
gwp_watch *gwp_watch_new(int64_t (*now)(void));
void gwp_watch_free(gwp_watch **w);
/*
 * Mark dest (kind, why: for the listing) for ttl_ms. 1 when this is a new mark, to be logged and counted:
 * dest had no mark of this kind begun within the last ttl_ms; 0 when it only extends the mark it has (the
 * listing's count stays, its "last" reason and time left are renewed).
 */
int gwp_watch_mark(gwp_watch *w, const char *dest, gwp_mark kind, const char *why, int64_t ttl_ms);
/* 1 when dest is marked now. */
int gwp_watch_marked(gwp_watch *w, const char *dest);
/* The marked destinations, one line each:
 * "DESTINATION tarpit=N throttle=N left=SECONDS last=\"WHY\"". Returns their number. */
size_t gwp_watch_list(gwp_watch *w, char *out, size_t outlen);

/* A mark as gwp_watch_export() gives it (state_file.c saves these). */
typedef struct gwp_watch_saved {
	char dest[300];
	char why[160];
	unsigned long tarpit, throttle; /* marks of each kind so far */
	int64_t at, until; /* last marked at, until: the watch's clock (gwp_watch_export's *now_r) */
} gwp_watch_saved;

/* The destinations marked now into out[max], *now_r the watch's clock at the time. Returns their number (may
 * be > max). */
size_t gwp_watch_export(gwp_watch *w, gwp_watch_saved *out, size_t max, int64_t *now_r);
/* Mark s->dest as saved (s->at, s->until ignored): marked ago_ms ago, for left_ms more (> 0); a later expiry
 * already there stays. 0 done, -1 the table is full. */
int gwp_watch_import(gwp_watch *w, const gwp_watch_saved *s, int64_t ago_ms, int64_t left_ms);

/* 1 when rep is a rate limit: a 421, or a 4xx with one of words[n] in its text (case-insensitive). */
int gwp_throttled(const gw_reply *rep, char *const *words, size_t n);
const char *gwp_mark_str(gwp_mark kind);

#endif
