/*
 * cache_entry.h - one entry of the shared call-ahead cache's Redis stream
 * (gw:cache:stream), parsed strictly and written back.
 *
 * An entry is a verdict one gateway's own probe produced, as the fields
 *   gw ID  k KEY  v valid|unknown  c CODE  e ENH  t TEXT  x EXPIRES
 * (EXPIRES: wall-clock milliseconds since the epoch). Everything read from
 * Redis is untrusted: each field must be there once, within its length, of
 * its alphabet (no control characters anywhere, the key as a call-ahead
 * cache key: local part, "@", lower-case domain), a valid with 250 or 251,
 * an unknown with a 5xx but 552; anything else is malformed. Unknown field
 * names are skipped (a newer writer may add some). Pure: no Redis, no I/O.
 *
 * Does not defend against: a writer that lies within the format (anyone who
 * can write to Redis can claim any recipient valid or unknown for at most
 * this gateway's own positive_ttl / negative_ttl; a claimed valid is still
 * used only while the route was confirmed live within confirm_window).
 */
#ifndef GWM_CACHE_ENTRY_H
#define GWM_CACHE_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "gw/cache.h"

#define GWM_CE_GW_MAX    255 /* a gateway's name (shared_state_id or the derived one) */
#define GWM_CE_KEY_MAX   320 /* a cache key: call-ahead refuses longer recipients */
#define GWM_CE_ENH_MAX   15
#define GWM_CE_TEXT_MAX  200
#define GWM_CE_AHEAD_MAX (31LL * 86400000LL) /* an expiry further ahead than this is malformed */

typedef struct gwm_ce {
	char gw[GWM_CE_GW_MAX + 1];
	char key[GWM_CE_KEY_MAX + 1];
	gw_cache_kind kind; /* GW_CACHE_POSITIVE (valid) or GW_CACHE_NEGATIVE (unknown) */
	int code;
	char enh[GWM_CE_ENH_MAX + 1];
	char text[GWM_CE_TEXT_MAX + 1];
	int64_t expires_ms; /* wall clock */
} gwm_ce;

/*
 * Parse an entry's fields: n strings (f[i], len[i] bytes, not necessarily
 * NUL-terminated), name and value in turn. 0 and *e filled, or -1 malformed.
 */
int gwm_ce_parse(const char *const *f, const size_t *len, size_t n, gwm_ce *e);
/*
 * The TTL to cache e with at wall time now_ms, cut to this gateway's own
 * pos_ttl_ms (valid) or neg_ttl_ms (unknown): 0 when expired, -1 when its
 * expiry lies more than GWM_CE_AHEAD_MAX ahead (malformed).
 */
int64_t gwm_ce_ttl(const gwm_ce *e, int64_t now_ms, uint32_t pos_ttl_ms, uint32_t neg_ttl_ms);
/*
 * e's fields for XADD, in the order above: 14 strings in out[] pointing into
 * e or into num (2 x 24 bytes for code and expiry). 0 ok, -1 when e would
 * not parse back (the caller never sends what it would refuse to read).
 */
int gwm_ce_fields(const gwm_ce *e, char num[2][24], const char *out[14]);

#endif
