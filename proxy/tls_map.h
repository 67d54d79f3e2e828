/*
 * tls_map.h - STARTTLS policy per destination address for gw-proxy, from a
 * file of "ADDRESS[/PREFIX] POLICY" lines:
 *
 *     192.0.2.25          verify
 *     198.51.100.0/24     encrypt
 *     2001:db8::/32       may
 *     203.0.113.9         none
 *
 * '#' starts a comment. The longest prefix that holds the destination's
 * address wins; addresses not covered use the global tls key. Policies:
 * none, may, encrypt, verify (gw/client.h). Errors name file:line.
 *
 * Keys are addresses because a redirected connection's destination is an
 * address, not a domain. Destinations given by name (MX hosts, an upstream
 * host name) are resolved inside the client engine and use the global
 * policy.
 *
 * Does not defend against: overlapping entries of equal prefix (the first
 * one listed wins).
 */
#ifndef GWP_TLS_MAP_H
#define GWP_TLS_MAP_H

#include <stddef.h>

#include "gw/client.h"

typedef struct gwp_tls_map gwp_tls_map;

/* Load path. NULL with err "path:line: message". */
gwp_tls_map *gwp_tls_map_load(const char *path, char *err, size_t errlen);
/* The same from text[0..len) (name stands for the path in messages). */
gwp_tls_map *gwp_tls_map_parse(const char *text, size_t len, const char *name, char *err, size_t errlen);
/* The policy for a numeric address (IPv4 or IPv6 text), or fallback (also for a name). */
gw_tls_policy gwp_tls_map_lookup(const gwp_tls_map *m, const char *address, gw_tls_policy fallback);
/* Entries loaded. */
size_t gwp_tls_map_count(const gwp_tls_map *m);
void gwp_tls_map_free(gwp_tls_map **m);

#endif
