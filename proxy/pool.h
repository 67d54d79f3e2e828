/*
 * pool.h - the outbound address pool: which source address a connection to
 * a destination binds to, and which addresses a destination has refused as
 * blocklisted.
 *
 * The table is process-wide (it survives reloads, like the counters): one
 * entry per (address, destination) seen, holding when the destination last
 * accepted that address and until when the address is retired for it. The
 * addresses themselves come from the configuration at each choice, so a
 * reload that changes the pool needs nothing here.
 *
 * Choice: the first address of the tenant's list not retired for the
 * destination; when every one is retired, the one retired longest ago (mail
 * keeps going out and the destination's verdict reaches the tenant, rather
 * than the proxy inventing a 4xx of its own).
 * After a refused connection the session tries once more from another
 * address not retired (gwp_pool_choose_other); when that one gets in, the
 * destination refuses the first address, not us, and it is retired.
 *
 * Blocklist verdicts: a 550, a 554 or an enhanced 5.7.1 whose text holds
 * one of the configured words (case-insensitive). A verdict retires the
 * address; while the tenant has another address not retired for the
 * destination, the verdict is about the proxy's address, not the mail, so
 * the session moves (gwp_pool_verdict: GWP_POOL_MOVE): the tenant gets a
 * 4xx (gwp_pool_defer_reply) or, before any reply committed it, a new
 * connection. With no address left the 5xx is the truth for this tenant.
 *
 * Does not defend against: a destination that blocks a whole network (every
 * address gets retired in turn), or more than GWP_POOL_ENTRIES pairs at once
 * (the stalest entry makes room).
 */
#ifndef GWP_POOL_H
#define GWP_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "gw/reply.h"

#define GWP_POOL_ENTRIES 4096

typedef struct gwp_pool gwp_pool;

/* now: the clock in ms (NULL: gw_now_ms); tests inject their own. */
gwp_pool *gwp_pool_new(int64_t (*now)(void));
void gwp_pool_free(gwp_pool **p);

/* Index in addrs[n] to bind to for dest; *fallback set when every address is retired. -1 when n is 0. */
int gwp_pool_choose(gwp_pool *p, const char *const *addrs, size_t n, const char *dest, int *fallback);
/* Index in addrs[n] of the first address other than except not retired for dest; -1 when there is none. */
int gwp_pool_choose_other(gwp_pool *p, const char *const *addrs, size_t n, const char *dest,
			  const char *except);
/* Retire addr for dest for ttl_ms. 1 when it was usable before, 0 when it was retired already. */
int gwp_pool_retire(gwp_pool *p, const char *addr, const char *dest, int64_t ttl_ms);
/* dest accepted a session from addr. */
void gwp_pool_ok(gwp_pool *p, const char *addr, const char *dest);
/* 1 when dest accepted another address than addr within the last window_ms. */
int gwp_pool_accepts_others(gwp_pool *p, const char *addr, const char *dest, int64_t window_ms);
/* The retired pairs, one line each: "ADDRESS DESTINATION retired=SECONDS_AGO left=SECONDS". */
size_t gwp_pool_list(gwp_pool *p, char *out, size_t outlen);

/* A retired pair as gwp_pool_export() gives it (state_file.c saves these). */
typedef struct gwp_pool_saved {
	char addr[64];
	char dest[300];
	int64_t at, until; /* retired at, until: the pool's clock (gwp_pool_export's *now_r) */
} gwp_pool_saved;

/* The pairs retired now into out[max], *now_r the pool's clock at the time. Returns their number (may be >
 * max). */
size_t gwp_pool_export(gwp_pool *p, gwp_pool_saved *out, size_t max, int64_t *now_r);
/* Retire addr for dest as saved: retired ago_ms ago, for left_ms more (> 0); a later expiry already there
 * stays. */
void gwp_pool_import(gwp_pool *p, const char *addr, const char *dest, int64_t ago_ms, int64_t left_ms);

/* 1 when addr is retired for dest now. */
int gwp_pool_is_retired(gwp_pool *p, const char *addr, const char *dest);

/* What a destination's reply means for the session bound to one pool address. */
typedef enum gwp_pool_act {
	GWP_POOL_PASS = 0, /* no blocklist verdict: the reply goes to the tenant as it is */
	GWP_POOL_LAST = 1, /* blocklisted, no other address left: the verdict goes to the tenant */
	GWP_POOL_MOVE = 2  /* blocklisted, another address left: the tenant must not see the 5xx */
} gwp_pool_act;

/*
 * rep from dest to a session bound to addr (one of the tenant's addrs[n]): a blocklist verdict (words[nw])
 * retires addr for ttl_ms (*newly_r: 1 when it was usable before) and says whether another of addrs is left.
 */
gwp_pool_act gwp_pool_verdict(gwp_pool *p, const char *const *addrs, size_t n, const char *dest,
			      const char *addr, const gw_reply *rep, char *const *words, size_t nw,
			      int64_t ttl_ms, int *newly_r);
/* The tenant's answer for a verdict that moves the session: 451 4.7.1 with the destination's text. */
void gwp_pool_defer_reply(const gw_reply *rep, gw_reply *out);

/* 1 when rep says our address is blocklisted: 550, 554 or 5.7.1 with one of words[n] in its text. */
int gwp_blocklisted(const gw_reply *rep, char *const *words, size_t n);

#endif
