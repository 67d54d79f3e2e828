/*
 * gw/cache.h - thread-safe TTL cache with a bound on entries.
 *
 * Keys are strings; each value is one of three kinds of result (positive,
 * negative, temporary) with a reply code and a short text, stored with the
 * TTL the caller gives. When full, the least recently used entry is evicted.
 * Time comes from a gw_clock so tests can fix it. Knows nothing about mail:
 * what the kinds mean is the caller's business.
 *
 * Does not defend against: a caller that needs more than GW_CACHE_TEXT_MAX
 * bytes of text (it is cut).
 */
#ifndef GW_CACHE_H
#define GW_CACHE_H

#include "gw/export.h"

#include <stddef.h>
#include <stdint.h>

#include "gw/time.h"

#define GW_CACHE_KEY_MAX  512
#define GW_CACHE_TEXT_MAX 256

typedef enum gw_cache_kind {
	GW_CACHE_POSITIVE = 1,
	GW_CACHE_NEGATIVE = 2,
	GW_CACHE_TEMPORARY = 3
} gw_cache_kind;

typedef struct gw_cache_value {
	gw_cache_kind kind;
	int code;                     /* e.g. the reply code that produced it; 0 if none */
	char text[GW_CACHE_TEXT_MAX]; /* NUL-terminated, cut to fit */
	int64_t stored_ms;            /* clock time of the put */
	int64_t expires_ms;           /* clock time after which it is gone */
} gw_cache_value;

typedef struct gw_cache_stats {
	size_t entries, max_entries;
	uint64_t hits, misses, expired, evictions;
} gw_cache_stats;

typedef struct gw_cache gw_cache;

/* A cache of at most max_entries (> 0); clock NULL means gw_clock_monotonic. NULL on ENOMEM or max_entries 0.
 */
GW_API gw_cache *gw_cache_new(size_t max_entries, const gw_clock *clock);
/* Store or replace key. ttl_ms 0 stores nothing (and removes an old entry). 0 ok, -1 (errno EINVAL for a key
 * over GW_CACHE_KEY_MAX, ENOMEM). */
GW_API int gw_cache_put(gw_cache *c, const char *key, gw_cache_kind kind, int code, const char *text,
			uint32_t ttl_ms);
/* 1 and *value_r filled when key is present and unexpired (it becomes most recently used); 0 otherwise.
 * value_r may be NULL. */
GW_API int gw_cache_get(gw_cache *c, const char *key, gw_cache_value *value_r);
/* 1 if key was present and is now removed, 0 if absent. */
GW_API int gw_cache_remove(gw_cache *c, const char *key);
/* Remove every entry; returns how many. */
GW_API size_t gw_cache_clear(gw_cache *c);
GW_API void gw_cache_stats_get(gw_cache *c, gw_cache_stats *stats_r);
/* Free the cache and set *c to NULL. */
GW_API void gw_cache_free(gw_cache **c);

#endif
