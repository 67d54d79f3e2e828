/*
 * store.h - the embedded store that keeps learned correspondents, the
 * operator's forced mode and the detector's baselines across restarts.
 *
 * LMDB (liblmdb), one environment in a directory: a "corr" database of
 * key -> {score, stamp} records and a "meta" database of short text values.
 * Why LMDB rather than a file written whole and renamed: it is crash-safe
 * by construction (copy-on-write B+tree, a committed transaction is on disk,
 * a crash loses only the uncommitted one, and there is no recovery step or
 * log to replay at start), a flush writes only the entries that changed
 * instead of rewriting a table of 100 000 entries, readers never block the
 * writer, and it is a small, long-maintained library (OpenLDAP's) packaged
 * by Debian. gwm_store_flush() writes every entry marked dirty for the store
 * in one transaction; the daemon calls it from its background thread, never
 * from a milter callback.
 *
 * Records are in host byte order: the directory is not meant to move
 * between architectures (it only holds what the gateway can learn again).
 *
 * Does not defend against: two daemons given the same directory at once
 * (LMDB allows it, but each would overwrite the other's scores); a full map
 * (GWM_STORE_MAP_MB; the flush fails, is logged, and is tried again whole).
 */
#ifndef GWM_STORE_H
#define GWM_STORE_H

#include <stddef.h>

#include "corr.h"

#define GWM_STORE_MAP_MB 256

typedef struct gwm_store gwm_store;

/* Open (creating) the store in directory dir. NULL with err. */
gwm_store *gwm_store_open(const char *dir, char *err, size_t errlen);
void gwm_store_close(gwm_store **s);
/* Merge every stored correspondent into t (not marked dirty); entries decayed to nothing are deleted. Loaded
 * count, or -1 with err. */
long gwm_store_load(gwm_store *s, gwm_corr *t, char *err, size_t errlen);
/* Write t's entries marked dirty for the store, in one transaction. Written count, or -1 with err (they stay
 * marked). */
long gwm_store_flush(gwm_store *s, gwm_corr *t, char *err, size_t errlen);
/* A short text value under key in "meta". 0 ok, -1 with err. */
int gwm_store_put_meta(gwm_store *s, const char *key, const char *value, char *err, size_t errlen);
/* The value of key into buf: 1 found, 0 absent, -1 with err. */
int gwm_store_get_meta(gwm_store *s, const char *key, char *buf, size_t size, char *err, size_t errlen);

#endif
