/*
 * gw/route.h - recipient domain -> ordered next hops, in Postfix transport(5) syntax.
 *
 * A route file is read as a Postfix transport map so administrators can reuse
 * the file they have:
 *
 *     example.com        smtp:[10.0.0.5]:25
 *     .example.com       smtp:[10.0.0.5]:25, [10.0.0.6]:25
 *     lists.example.org  lmtp:unix:/run/lmtp
 *     example.net        smtp:mx.example.net
 *     *                  smtp:[10.0.0.9]
 *
 * '#' starts a comment line; a line starting with white space continues the
 * previous one. Transports "smtp", "relay" and "lmtp" carry next hops,
 * separated by commas or blanks; any other transport (error:, discard:,
 * local:, ...) is kept with no next hops so callers can skip it. Lookup order
 * for "a.b.example.com": the exact domain, then ".b.example.com",
 * ".example.com", ".com", then "*". Errors name file:line.
 *
 * Next hops written without brackets are resolved by MX lookup (gw/mx.h,
 * bounded in time); bracketed ones are used as they are. A
 * route that points at one of the gateway's own listening addresses is a
 * mail loop and is refused (gw_route_check_loop).
 *
 * Does not defend against: DNS answers that are wrong but well-formed.
 */
#ifndef GW_ROUTE_H
#define GW_ROUTE_H

#include "gw/export.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "gw/mx.h"
#include "gw/nexthop.h"
#include "gw/proto.h"

#define GW_ROUTE_HOPS_MAX 8
#define GW_TRANSPORT_MAX  31

typedef struct gw_route {
	char key[GW_HOST_MAX + 2]; /* the table key that matched: "example.com", ".example.com", "*" */
	char transport[GW_TRANSPORT_MAX + 1]; /* "smtp", "lmtp", "relay", "error", ... */
	char nexthop_text[512];               /* the next-hop field as written (for error: its text) */
	int has_proto;                        /* transport is smtp, relay or lmtp */
	gw_proto proto;
	size_t nhops;
	gw_nexthop hops[GW_ROUTE_HOPS_MAX];
	unsigned line; /* line in the file where it was defined */
} gw_route;

typedef struct gw_routes gw_routes;

/* Read a route file. NULL with err "path:line: message" (or "path: strerror"). */
GW_API gw_routes *gw_routes_load(const char *path, char *err, size_t errlen);
/* Parse route text; name stands for the path in messages. */
GW_API gw_routes *gw_routes_parse(const char *text, size_t len, const char *name, char *err, size_t errlen);
/* The route for domain (case-insensitive, trailing dot ignored), or NULL if none. */
GW_API const gw_route *gw_routes_lookup(const gw_routes *r, const char *domain);
GW_API size_t gw_routes_count(const gw_routes *r);
GW_API void gw_routes_free(gw_routes **r);

/*
 * Refuse a route that points at the gateway itself: any literal (bracketed or
 * numeric) next hop whose address and port equal one of self[0..nself).
 * Port 0 in self matches every port. 0 ok; -1 with err naming the hop.
 */
GW_API int gw_route_check_loop(const gw_route *route, unsigned default_port,
			       const struct sockaddr_storage *self, size_t nself, char *err, size_t errlen);
/* The same test for one resolved address. 1 when addr:port is one of self. */
GW_API int gw_addr_is_self(const struct sockaddr *addr, const struct sockaddr_storage *self, size_t nself);

/*
 * Expand a route's next hops into the hosts to try, in order: literal hops and
 * unix sockets as they are; other hops replaced by their MX hosts (port kept),
 * or kept as they are when use_mx is 0. GW_LOOKUP_RETRY if a lookup failed
 * and nothing else could be added. Each MX lookup is bounded by the lookup
 * timeout of gw/dns.h.
 */
GW_API gw_lookup gw_route_expand(const gw_route *route, int use_mx, gw_nexthop *hops_r, size_t max,
				 size_t *n_r, char *err, size_t errlen);
/* The same, the lookups ending by deadline (an absolute gw_now_ms() value; 0: none) if that comes first. */
GW_API gw_lookup gw_route_expand_until(const gw_route *route, int use_mx, int64_t deadline,
				       gw_nexthop *hops_r, size_t max, size_t *n_r, char *err, size_t errlen);

#endif
