/*
 * shared.h - the bounce-flood guard's state shared by gateways on Redis
 * (hiredis), never on the path of an RCPT.
 *
 * One background thread, every refresh interval:
 *   - writes the entries of the correspondent table marked dirty for it in
 *     one pipelined batch: HSET gw:flood:corr KEY "SCORE STAMP_MS";
 *   - reads the whole hash back (HSCAN in pages) and merges each entry into
 *     the local table (gwm_corr_merge: the larger decayed score wins, so what
 *     one gateway learnt protects the others; a merged entry is marked for
 *     the local store, not for Redis again);
 *   - publishes this gateway's mode: SET gw:flood:high:HOST 1 PX 3*refresh
 *     while in high-load mode (DEL when it leaves), and reads the others'
 *     keys (SCAN gw:flood:high:*): any live key is "the fleet is in a
 *     flood", which the guard honours in auto mode.
 * The callbacks only read the local table and the last fleet flag (an
 * atomic). Each command has a timeout (connect and reply: the refresh
 * interval, at most 2 s); Redis down or slow costs the thread a timeout and
 * a log line (one per outage, and one when it is back), never an RCPT. A
 * batch that failed is written again whole at the next connection.
 *
 * Does not defend against: a Redis reachable by others (no AUTH or TLS is
 * configured here: use a loopback or private instance); hosts whose clocks
 * differ by much (stamps are wall-clock milliseconds, a stamp from the
 * future counts as now); a hash grown past what a refresh can read (each
 * refresh reads at most GWM_SHARED_READ_MAX entries).
 */
#ifndef GWM_SHARED_H
#define GWM_SHARED_H

#include "corr.h"

#define GWM_SHARED_READ_MAX 200000

/* Start the thread for redis://host:port/db; host names this gateway in the mode keys. 0 ok, -1 (errno). */
int gwm_shared_start(const char *host, int port, int db, long refresh_ms, gwm_corr *t, const char *self);
void gwm_shared_stop(void);
/* -1 not started, 0 down, 1 up at the last refresh. */
int gwm_shared_state(void);
/* 1 when another gateway announced high-load mode at the last refresh. */
int gwm_shared_fleet_high(void);
/* This gateway's mode, published at the next refresh. */
void gwm_shared_set_high(int high);
/* Run one refresh now, in the calling thread (tests). */
void gwm_shared_refresh_now(void);

#endif
