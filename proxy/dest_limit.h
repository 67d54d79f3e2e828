/*
 * dest_limit.h - sessions per destination at once: a count per destination
 * host, taken when a session connects there and given back when it leaves
 * (or moves to another destination).
 *
 * The limit is passed at each take (the caller picks destination_concurrency,
 * or marked_concurrency for a destination watch.c has marked), so a mark or
 * a reload acts on the next session; sessions already there are never cut
 * off, so the count may stay above a newly lowered limit until they end.
 * A take over the limit is counted against the destination and refused:
 * the caller answers its client with a 4xx at once, never a wait.
 *
 * The table is process-wide like the pool's (it survives reloads). Entries
 * stay while they have sessions or refusals to show; idle ones make room for
 * new destinations, and the table grows (doubling) only when every entry
 * has sessions.
 *
 * Does not defend against: a destination reached under several names or
 * addresses (each is counted on its own: the key is the host the session
 * connects to); a caller that takes twice without giving back (the session
 * keeps one key, relay.h).
 */
#ifndef GWP_DEST_LIMIT_H
#define GWP_DEST_LIMIT_H

#include <stddef.h>

#define GWP_DLIMIT_ENTRIES 4096

typedef struct gwp_dlimit gwp_dlimit;

gwp_dlimit *gwp_dlimit_new(void);
void gwp_dlimit_free(gwp_dlimit **d);
/* One more session to dest, when fewer than limit are there (limit 0: no limit). 1 taken, 0 refused, -1 out
 * of memory (nothing taken). *now_r (may be NULL): the sessions there now, this one included when taken. */
int gwp_dlimit_take(gwp_dlimit *d, const char *dest, long limit, unsigned long *now_r);
/* A session taken with gwp_dlimit_take() left dest. */
void gwp_dlimit_give(gwp_dlimit *d, const char *dest);
/* Sessions at dest now. */
unsigned long gwp_dlimit_count(gwp_dlimit *d, const char *dest);
/* Destinations with sessions or refusals, one line each:
 * "DESTINATION sessions=N limit=N|none refused=N" (limit: at the last take; refused: since the entry was
 * made; an idle entry with refusals stays until its room is needed). Returns their number. */
size_t gwp_dlimit_list(gwp_dlimit *d, char *out, size_t outlen);

#endif
