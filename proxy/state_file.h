/*
 * state_file.h - what gw-proxy learnt about destinations, kept across a
 * restart: the pool addresses a destination refused as blocklisted
 * (pool.c) and the destinations marked as tarpit or throttle (watch.c).
 * Without it a restart (an upgrade, a configuration change) sends again
 * from the address a destination has just blocklisted, and into a tarpit at
 * full concurrency.
 *
 * The file (state_file, gw-proxy.conf(5)) is text, one entry per line,
 * times as wall-clock (CLOCK_REALTIME) milliseconds since the epoch, so a
 * restart after an entry's end finds it over:
 *
 *   gw-proxy-state 1
 *   retired ADDRESS DESTINATION RETIRED_AT UNTIL
 *   mark DESTINATION MARKED_AT UNTIL TARPIT_COUNT THROTTLE_COUNT [LAST REPLY TEXT]
 *   end ENTRIES
 *
 * The "end" line makes a truncated file show. Loading is all or nothing: a
 * file with any bad line, or one that cannot be read, is set aside (renamed
 * PATH.bad), logged, and the proxy starts with an empty state; when it
 * cannot be moved aside either, it is never written over in this run. A
 * missing file is an empty state.
 * Entries already over are skipped. Saving writes PATH.tmp (mode 0600),
 * fsyncs it, renames it over PATH and fsyncs the directory; it runs every
 * state_save_interval when something changed, and at a clean stop.
 *
 * Not kept: the tenants' message-rate windows (a minute: over by the time a
 * restart is done), the sessions per destination (none survive a restart),
 * when a destination last accepted each address (the refused-connection
 * check needs it within seconds), and the limit on a marked destination
 * (marked_concurrency: configuration, read anew at each session).
 *
 * An entry runs for what was left of it, but never longer than
 * pool_retire_time or mark_time from the load (a wall clock set back, or a
 * configuration that shortened them).
 *
 * Does not defend against: two daemons sharing one file (the last to save
 * wins); a wall clock set forward while the proxy was down (entries end
 * early by the step); a file edited by hand with wrong but well-formed
 * values (used as they are, within the caps).
 */
#ifndef GWP_STATE_FILE_H
#define GWP_STATE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "pool.h"
#include "watch.h"

#define GWP_STATE_MAGIC    "gw-proxy-state 1"
#define GWP_STATE_MAX_FILE (16L * 1024 * 1024)
#define GWP_STATE_MAX_LINE 1024

/* What a load found. */
typedef struct gwp_state_counts {
	size_t retired, marks; /* entries taken */
	size_t expired;        /* entries skipped as over */
	size_t capped;         /* entries cut down to the longest time allowed */
} gwp_state_counts;

/*
 * Check the file's text buf[len] (wall_ms: the wall clock now) and, when all of it is good, put its
 * entries still running into p and w, none for longer than retire_max_ms / mark_max_ms from now (0: no
 * cap; a wall clock set back, or a shorter pool_retire_time / mark_time since the file was written).
 * 0 done (*c_r filled), -1 with err "line N: ..." and nothing changed.
 */
int gwp_state_parse(const char *buf, size_t len, int64_t wall_ms, int64_t retire_max_ms, int64_t mark_max_ms,
		    gwp_pool *p, gwp_watch *w, gwp_state_counts *c_r, char *err, size_t errlen);

/*
 * The file's text for what p and w hold now (wall_ms: the wall clock now), malloc'd into *text_r[*len_r];
 * *hash_r (may be NULL) a digest of the entries that moves only when they change. 0 done, -1 out of memory.
 */
int gwp_state_text(gwp_pool *p, gwp_watch *w, int64_t wall_ms, char **text_r, size_t *len_r,
		   uint64_t *hash_r);

typedef struct gwp_state gwp_state;

/* A state file at path for p and w; wall: the wall clock in ms (NULL: CLOCK_REALTIME). NULL: out of memory.
 */
gwp_state *gwp_state_new(const char *path, gwp_pool *p, gwp_watch *w, int64_t (*wall)(void));
/* Caps for the next load (see gwp_state_parse); 0: none. */
void gwp_state_caps(gwp_state *s, int64_t retire_max_ms, int64_t mark_max_ms);
/* Load the file into p and w, logging what it found. 1 loaded, 0 no file, -1 unreadable or bad (empty state).
 */
int gwp_state_load(gwp_state *s);
/* Write the file when the entries changed since the last load or save (force: always). 1 written, 0 nothing
 * to do, -1 failed (logged; tried again at the next call). */
int gwp_state_save(gwp_state *s, int force);
/* Save every interval_ms from a thread of its own. 0 started, -1 could not. */
int gwp_state_start(gwp_state *s, long interval_ms);
/* Stop the thread, save a last time, and free s. */
void gwp_state_free(gwp_state **s);

#endif
