/*
 * cache_check.h - the cache's self-check, for tests (internal to libgw).
 *
 * Walks the hash chains and the LRU list under the lock and compares them with
 * the entry count. It is hidden in libgw.so; tests reach it through the static
 * library. Costs O(entries): never call it on a hot path.
 */
#ifndef GW_CACHE_CHECK_H
#define GW_CACHE_CHECK_H

#include "gw/cache.h"

/* 0 when the table, the LRU list and the count agree; -1 otherwise. */
int gw_cache_check(gw_cache *c);

#endif
