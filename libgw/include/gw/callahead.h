/*
 * gw/callahead.h - ask the internal MTA whether it would take a recipient.
 *
 * The call-ahead engine behind gw-milter, usable by any program. For each
 * recipient it answers accept, reject or tempfail, following the rules in
 * docs (design "Call-ahead at RCPT"):
 *
 *   RCPT 250/251                      -> ACCEPT   (cached positive)
 *   RCPT 5xx except 552               -> REJECT   (cached negative)
 *   RCPT 4xx, 552                     -> TEMPFAIL (never cached as negative)
 *   unreachable, timeout, 421, 4xx/5xx greeting, HELO or MAIL failure on
 *   every hop of the route, deadline passed, route marked down,
 *   too many concurrent probes        -> TEMPFAIL
 *
 * Sessions: a transaction (one message) holds one probe session per route and
 * reuses it for every recipient of that message. At the end of the message the
 * session goes back to a per-route pool: RSET and the next message's MAIL are
 * written and their replies left to be read with the next RCPT, so neither
 * gw_ca_txn_end() nor the next message's first recipient waits more than that
 * recipient's one round trip. A new session costs connect, greeting, EHLO and
 * one round trip for MAIL and RCPT together (PIPELINING). Pool bounds: idle
 * time, uses, size.
 *
 * Reachability is live; validity may be cached. A cached positive answer is
 * used only while the route is up and was confirmed (any successful exchange)
 * within confirm_window_ms; otherwise the recipient is checked live. A cached
 * negative answer is used while it lasts (the address did not exist; saying
 * so again makes no backscatter). Each route has a health state shared by
 * every transaction: a transport failure on all of its hops marks it down, and
 * recipients for a down route get TEMPFAIL at once, without waiting out a
 * timeout. A background thread re-probes down routes every reprobe_ms
 * (connect, greeting, EHLO, QUIT) and marks them up again.
 *
 * Thread-safe: one gw_callahead is shared by all threads; a gw_ca_txn belongs
 * to one thread at a time.
 *
 * Does not defend against: an internal MTA that accepts every recipient at
 * RCPT and bounces later (enable catch-all detection); clock jumps (the clock
 * is monotonic).
 */
#ifndef GW_CALLAHEAD_H
#define GW_CALLAHEAD_H

#include "gw/export.h"

#include <stddef.h>
#include <stdint.h>

#include "gw/cache.h"
#include "gw/client.h"
#include "gw/config.h"
#include "gw/route.h"
#include "gw/time.h"

typedef enum gw_verdict { GW_VERDICT_ACCEPT = 0, GW_VERDICT_REJECT, GW_VERDICT_TEMPFAIL } gw_verdict;

typedef enum gw_ca_source {
	GW_CA_SRC_CACHE = 0, /* cached answer */
	GW_CA_SRC_POOLED,    /* asked over a pooled (or this message's) session */
	GW_CA_SRC_NEW,       /* asked over a new connection */
	GW_CA_SRC_DOWN,      /* route marked down: not asked */
	GW_CA_SRC_LIMIT,     /* too many concurrent probes on the route: not asked */
	GW_CA_SRC_CATCHALL,  /* route accepts any recipient (catch-all detected): not asked */
	GW_CA_SRC_NOROUTE    /* the route has no usable next hop */
} gw_ca_source;

/*
 * The engine's tunables, one row each: gw.conf key, gw_ca_opts field, type,
 * default, lowest and highest value, one-line doc. This table is the one
 * place these facts live: the engine takes its defaults and bounds from it,
 * gw-milter builds its gw.conf keys from it, and a test checks gw.conf(5)
 * and etc/gw.conf against it. Each value is a number and a unit (ms, s, m,
 * h, d; nothing for counts), so it is written once and read both as a number
 * (GW_CA_VAL: milliseconds for durations) and as gw.conf text (GW_CA_TEXT).
 *
 * Use: #define ROW(key, field, type, def, def_unit, min, min_unit, max, max_unit, doc) ...
 *      GW_CA_PARAMS(ROW)
 */
#define GW_CA_PARAMS(X)                                                                                      \
	X(connect_timeout, connect_timeout_ms, GW_OPT_DURATION, 5, s, 100, ms, 10, m,                        \
	  "connect timeout per hop")                                                                         \
	X(reply_timeout, reply_timeout_ms, GW_OPT_DURATION, 10, s, 100, ms, 10, m, "timeout per reply")      \
	X(deadline, deadline_ms, GW_OPT_DURATION, 20, s, 100, ms, 10, m, "whole call-ahead per RCPT")        \
	X(pool_max_idle, pool_max_idle_ms, GW_OPT_DURATION, 30, s, 1, ms, 1, d,                              \
	  "idle time of a pooled session")                                                                   \
	X(pool_max_uses, pool_max_uses, GW_OPT_INT, 100, , 1, , 1000000, , "messages per pooled session")    \
	X(pool_max_size, pool_max_size, GW_OPT_INT, 8, , 1, , 10000, , "idle sessions kept per route")       \
	X(max_probes, max_probes, GW_OPT_INT, 32, , 1, , 100000, , "concurrent probe sessions per route")    \
	X(positive_ttl, positive_ttl_ms, GW_OPT_DURATION, 1, h, 1, ms, 30, d,                                \
	  "how long a valid recipient is cached")                                                            \
	X(negative_ttl, negative_ttl_ms, GW_OPT_DURATION, 10, m, 1, ms, 30, d,                               \
	  "how long an unknown recipient is cached")                                                         \
	X(confirm_window, confirm_window_ms, GW_OPT_DURATION, 10, s, 1, ms, 1, h,                            \
	  "a cached valid needs a live exchange this recent")                                                \
	X(reprobe_interval, reprobe_ms, GW_OPT_DURATION, 3, s, 100, ms, 1, h,                                \
	  "re-probe of routes marked down")                                                                  \
	X(cache_entries, cache_entries, GW_OPT_INT, 100000, , 1, , 100000000, , "cached recipients at most") \
	X(catchall_ttl, catchall_ttl_ms, GW_OPT_DURATION, 1, h, 1, ms, 30, d,                                \
	  "how long a route stays accept-all")

#define GW_CA_UNIT_   1UL /* a count */
#define GW_CA_UNIT_ms 1UL
#define GW_CA_UNIT_s  1000UL
#define GW_CA_UNIT_m  60000UL
#define GW_CA_UNIT_h  3600000UL
#define GW_CA_UNIT_d  86400000UL
/* A table value as a number (durations in ms) and as gw.conf text ("5s"). */
#define GW_CA_VAL(n, unit)  ((unsigned long)(n)*GW_CA_UNIT_##unit)
#define GW_CA_TEXT(n, unit) #n #unit

/* Options of the engine. A field left 0 takes its default from GW_CA_PARAMS. */
typedef struct gw_ca_opts {
	const char *helo_name;       /* NULL: "localhost" */
	const char *probe_sender;    /* reverse-path without brackets; NULL or "": the null sender <> */
	const char *fallback_sender; /* used when the MTA refuses probe_sender; NULL: none */
	gw_tls_policy tls;
	const char *tls_ca_file;
	const char *bind_address;
	unsigned connect_timeout_ms; /* per hop */
	unsigned reply_timeout_ms;   /* per reply */
	unsigned deadline_ms;        /* whole call-ahead for one recipient */
	unsigned pool_max_idle_ms;
	unsigned pool_max_uses; /* messages per pooled session */
	unsigned pool_max_size; /* idle sessions per route */
	unsigned max_probes;    /* concurrent probe sessions per route */
	uint32_t positive_ttl_ms;
	uint32_t negative_ttl_ms;
	unsigned confirm_window_ms;
	unsigned reprobe_ms; /* background re-probe of down routes */
	int use_mx;          /* resolve unbracketed next hops by MX */
	int catchall_check;  /* probe a random local part once per route and domain */
	uint32_t catchall_ttl_ms;
	size_t cache_entries; /* ignored when a cache is passed in */
} gw_ca_opts;

typedef struct gw_ca_result {
	gw_verdict verdict;
	gw_ca_source source;
	int code;                   /* the internal MTA's reply code, 0 if none */
	char enh[GW_ENH_MAX];       /* its enhanced code, "" if none */
	char text[256];             /* its text (first line, cut), or why we did not ask; not sanitised */
	char hop[GW_HOST_MAX + 16]; /* the next hop that answered or failed last, "" if none */
	gw_status status;           /* transport status of the last attempt */
	int64_t elapsed_ms;
} gw_ca_result;

typedef struct gw_ca_stats {
	uint64_t checks, accepts, rejects, tempfails;
	uint64_t from_cache, pooled, new_sessions, route_down, limited;
	size_t pooled_idle; /* idle sessions in all pools now */
	size_t routes_down; /* routes marked down now */
	gw_cache_stats cache;
} gw_ca_stats;

typedef struct gw_callahead gw_callahead;
typedef struct gw_ca_txn gw_ca_txn;

/*
 * Give every GW_CA_PARAMS field of opts that is 0 its default. -1 when one is
 * outside its bounds, with *bad_r set to its gw.conf key; 0 otherwise.
 */
GW_API int gw_ca_opts_fill(gw_ca_opts *opts, const char **bad_r);

/*
 * An engine with these options (copied, filled as by gw_ca_opts_fill). cache:
 * shared cache, or NULL to make one. clock: NULL for monotonic. Starts the
 * re-probe thread. NULL on error (errno; EINVAL for an option out of bounds).
 */
GW_API gw_callahead *gw_callahead_new(const gw_ca_opts *opts, gw_cache *cache, const gw_clock *clock);
/* Stop the re-probe thread, close pooled sessions, free; sets *ca to NULL. No transaction may be open. */
GW_API void gw_callahead_free(gw_callahead **ca);

/* Start a message. NULL on ENOMEM. */
GW_API gw_ca_txn *gw_ca_txn_begin(gw_callahead *ca);
/*
 * Check one recipient ("local@domain", no brackets; already validated) on
 * route. Fills *res_r and returns its verdict. Never blocks longer than
 * deadline_ms.
 */
GW_API gw_verdict gw_ca_check(gw_ca_txn *txn, const gw_route *route, const char *rcpt, gw_ca_result *res_r);
/*
 * End the message: sessions go back to their pools (RSET written, its reply
 * read by the next user), or are closed (QUIT, its reply not awaited). Waits
 * for no reply from the internal MTA. Sets *txn to NULL.
 */
GW_API void gw_ca_txn_end(gw_ca_txn **txn);

/* Forget the cached answer for rcpt (1 if there was one), or every answer (rcpt NULL; returns how many). */
GW_API size_t gw_ca_purge(gw_callahead *ca, const char *rcpt);
/*
 * Called after a probe produced a definite verdict and cached it: a valid
 * recipient (RCPT 250/251, kind GW_CACHE_POSITIVE) or an unknown one (5xx
 * but 552, GW_CACHE_NEGATIVE); never for an answer from the cache, a
 * temporary one, a catch-all marker or an imported entry. key is the cache
 * key ("local@domain", the domain in lower case), text the reply's first
 * line, ttl_ms the TTL it was cached with. Runs in the checking thread, on
 * the RCPT path: it must be quick and must not block.
 */
typedef void (*gw_ca_verdict_fn)(void *ctx, const char *key, gw_cache_kind kind, int code, const char *enh,
				 const char *text, uint32_t ttl_ms);
/* Set (fn NULL: clear) the verdict hook. Call before the engine is used by other threads. */
GW_API void gw_ca_set_verdict_hook(gw_callahead *ca, gw_ca_verdict_fn fn, void *ctx);
/*
 * Cache a verdict learnt elsewhere (another gateway's probe), as a probe of
 * this engine would have: the TTL is cut to positive_ttl / negative_ttl, and
 * an imported valid stands in for asking only under the same rule as a local
 * one (route up, confirmed within confirm_window). Replaces what the cache
 * held for key. The hook is not called. -1 with errno EINVAL unless key is
 * a cache key as the hook gives it (no control characters, domain in lower
 * case), kind is positive with code 250/251 or negative with a 5xx but 552,
 * enh is "" or digits and dots, and ttl_ms > 0; ENOMEM. 0 ok.
 */
GW_API int gw_ca_import(gw_callahead *ca, const char *key, gw_cache_kind kind, int code, const char *enh,
			const char *text, uint32_t ttl_ms);
/* Is the route marked down? */
GW_API int gw_ca_route_down(gw_callahead *ca, const gw_route *route);
GW_API void gw_ca_stats_get(gw_callahead *ca, gw_ca_stats *stats_r);

GW_API const char *gw_verdict_str(gw_verdict v);
/* "cache", "pooled", "new", "down", "limit", "catchall", "noroute" */
GW_API const char *gw_ca_source_str(gw_ca_source s);

#endif
