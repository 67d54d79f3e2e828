/*
 * rate_limit.h - messages per minute per tenant: a token bucket per key
 * (the tenant's name, or the client's address when no tenant_map line
 * covers it).
 *
 * A bucket holds at most one minute's worth of messages (per_minute
 * tokens) and refills at per_minute tokens a minute, continuously; a
 * message takes one token. A tenant quiet for a minute may send per_minute
 * messages at once, then per_minute a minute; the rate is passed at each
 * take, so a reload that changes it acts at once (a lower rate also lowers
 * what a full bucket holds).
 *
 * The table is process-wide like the pool's (it survives reloads); the
 * clock is injected (tests fix it).
 *
 * Does not defend against: more than GWP_RATE_ENTRIES keys at once (the
 * one that sent nothing for longest makes room and starts again full), a tenant that spreads over networks
 * the tenant_map does not join under one name (each address then is a tenant of its own).
 */
#ifndef GWP_RATE_LIMIT_H
#define GWP_RATE_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#define GWP_RATE_ENTRIES 4096

typedef struct gwp_rate gwp_rate;

/* now: the clock in ms (NULL: gw_now_ms); tests inject their own. */
gwp_rate *gwp_rate_new(int64_t (*now)(void));
void gwp_rate_free(gwp_rate **r);
/*
 * One message of key at per_minute messages a minute (0: no limit, the
 * message is only counted). 1 when it may go, 0 when the bucket is empty;
 * *wait_ms_r (may be NULL) then says when the next token comes.
 */
int gwp_rate_take(gwp_rate *r, const char *key, long per_minute, int64_t *wait_ms_r);
/* The keys seen, one line each: "KEY messages=N limited=N rate=N/min tokens=N". Returns their number. */
size_t gwp_rate_list(gwp_rate *r, char *out, size_t outlen);

#endif
