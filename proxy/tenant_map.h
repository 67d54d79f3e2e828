/*
 * tenant_map.h - which tenant a client is and which pool addresses its
 * mail goes out from, from a file of lines
 *
 *     NETWORK[/PREFIX]  TENANT  ADDRESS[,ADDRESS...]  [rate=N]
 *
 *     10.1.0.0/16       acme    192.0.2.10,192.0.2.11  rate=600
 *     10.2.0.7          blog    192.0.2.20
 *     fd00:1::/48       acme    2001:db8::10
 *
 * '#' starts a comment; the longest prefix holding the client's address
 * wins. TENANT names the client in the session log; the addresses, in order
 * of preference, are the tenant's part of the pool (gw-proxy.conf checks
 * each is in pool). A client no line covers is its own tenant (its
 * address) and uses the whole pool. rate=N: the tenant's messages per
 * minute instead of tenant_rate_limit (0: none); it is the tenant's, so it
 * holds for every line of that name, and two lines of one tenant giving
 * different rates are an error. Errors name file:line.
 *
 * Does not defend against: overlapping entries of equal prefix (the first
 * one listed wins).
 */
#ifndef GWP_TENANT_MAP_H
#define GWP_TENANT_MAP_H

#include <stddef.h>

#define GWP_TENANT_NAME_MAX 64
#define GWP_TENANT_ADDRS    16

typedef struct gwp_tenant {
	char name[GWP_TENANT_NAME_MAX];
	char addr[GWP_TENANT_ADDRS][48];
	size_t naddr;
	long rate;     /* messages per minute; -1: tenant_rate_limit */
	unsigned line; /* in the file, for messages */
} gwp_tenant;

typedef struct gwp_tenant_map gwp_tenant_map;

/* Load path. NULL with err "path:line: message". */
gwp_tenant_map *gwp_tenant_map_load(const char *path, char *err, size_t errlen);
/* The same from text[0..len) (name stands for the path in messages). */
gwp_tenant_map *gwp_tenant_map_parse(const char *text, size_t len, const char *name, char *err,
				     size_t errlen);
/* The tenant of a numeric client address (IPv4 or IPv6 text), or NULL. */
const gwp_tenant *gwp_tenant_map_lookup(const gwp_tenant_map *m, const char *address);
/* Entry i (0 <= i < count), for checks against the pool. */
size_t gwp_tenant_map_count(const gwp_tenant_map *m);
const gwp_tenant *gwp_tenant_map_get(const gwp_tenant_map *m, size_t i);
void gwp_tenant_map_free(gwp_tenant_map **m);

#endif
