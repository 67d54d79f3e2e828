/*
 * cache_share.h - the call-ahead cache shared by the gateways: a background
 * copy of the others' answers through a Redis stream, never a lookup on the
 * path of an RCPT (shared_cache = yes; needs shared_state).
 *
 * Publishing: the engine's verdict hook (gw_ca_set_verdict_hook) queues each
 * definite verdict this gateway's own probes produced (valid, unknown; never
 * a temporary one, never one copied from another gateway) with its expiry in
 * wall-clock time, in a bounded queue (GWM_CS_QUEUE_MAX; more between two
 * refreshes are dropped and counted). The shared thread (shared.c), at each
 * refresh, sends the queue in one pipeline of
 *   XADD gw:cache:stream MAXLEN ~ GWM_CS_STREAM_MAXLEN * gw ID k KEY v ... x EXPIRES
 * (fields: cache_entry.h), then reads the stream from the last id it saw
 * (XREAD, pages of GWM_CS_PAGE, at most GWM_CS_READ_MAX a refresh), skips
 * its own entries and the expired ones, and copies the rest into the local
 * cache with the time they have left, cut to its own positive_ttl /
 * negative_ttl (gw_ca_import: a copied valid obeys confirm_window like a
 * local one). On each new connection it starts from the newest entry then
 * in the stream: a new gateway, or one back after an outage, does not replay
 * the past (what it missed is lost: it is a cache).
 *
 * Why a stream rather than a GET per local miss: Redis on the RCPT path is
 * what the design forbids, and the measurement (docs/howto-bounce-floods.md,
 * bench_shared_cache) found a copy 5 s late within 0.4 points of the ideal.
 *
 * Does not defend against: a writer to Redis that claims verdicts (see
 * cache_entry.h: bounded by this gateway's TTLs and confirm_window);
 * clocks that differ between gateways (an expiry is wall-clock time: a
 * gateway whose clock runs ahead sees others' entries expire early);
 * verdicts published faster than GWM_CS_QUEUE_MAX per refresh.
 */
#ifndef GWM_CACHE_SHARE_H
#define GWM_CACHE_SHARE_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "gw/cache.h"

#define GWM_CS_STREAM        "gw:cache:stream"
#define GWM_CS_STREAM_MAXLEN "100000" /* about: MAXLEN ~ trims whole nodes */
#define GWM_CS_QUEUE_MAX     4096
#define GWM_CS_PAGE          1000
#define GWM_CS_READ_MAX      20000

typedef struct gwm_cs_stats {
	int on;
	uint64_t published, copied, malformed, dropped;
	uint64_t syncs; /* refreshes that wrote and read the stream */
} gwm_cs_stats;

/* Start queueing under this gateway's name (its entries are skipped when read back). */
void gwm_cs_enable(const char *self);
/* Stop queueing and drop the queue. */
void gwm_cs_disable(void);
int gwm_cs_enabled(void);
/* The engine's verdict hook (gw_ca_verdict_fn); ctx unused. Quick: a copy into the queue. */
void gwm_cs_on_verdict(void *ctx, const char *key, gw_cache_kind kind, int code, const char *enh,
		       const char *text, uint32_t ttl_ms);
/*
 * One refresh on rc (the shared thread's connection): fresh says it is new
 * (read from the newest entry on). -1 when the connection failed, with why
 * filled; 0 otherwise (an error reply of Redis, such as another type of key
 * under the stream's name, is logged once, status=failing, and stops only
 * the cache sharing; status=ok when it works again).
 */
int gwm_cs_sync(redisContext *rc, int fresh, char *why, size_t whylen);
/* Why a Redis command failed, into why: the reply's error text, the connection's error, or "unexpected
 * reply" (never what was sent). rc and r may be NULL. Shared with shared.c's own commands. */
void gwm_redis_why(char *why, size_t len, const char *what, const redisContext *rc, const redisReply *r);
void gwm_cs_stats_get(gwm_cs_stats *st);

#endif
