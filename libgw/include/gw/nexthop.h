/*
 * gw/nexthop.h - where to connect: "host:port", "[IPv4]:port", "[IPv6:addr]:port",
 * "[addr]:port", a unix socket path ("/path" or "unix:/path"), or "inet:host:port".
 *
 * A host written in brackets is a literal: it is connected to as it is, with
 * no MX lookup. A host without brackets may be looked up by MX (gw/route.h).
 *
 * Does not defend against: host names that resolve somewhere unexpected.
 */
#ifndef GW_NEXTHOP_H
#define GW_NEXTHOP_H

#include "gw/export.h"

#include <stddef.h>

#define GW_HOST_MAX      255
#define GW_UNIX_PATH_MAX 107

typedef enum gw_hop_kind { GW_HOP_INET = 0, GW_HOP_UNIX = 1 } gw_hop_kind;

typedef struct gw_nexthop {
	gw_hop_kind kind;
	int literal;                     /* written in brackets: no MX lookup */
	unsigned port;                   /* 0: the protocol's default */
	char host[GW_HOST_MAX + 1];      /* name or numeric address, without brackets or "IPv6:" */
	char path[GW_UNIX_PATH_MAX + 1]; /* unix socket path */
} gw_nexthop;

/* Parse s[0..len). 0 ok; -1 with *error_r a static message. */
GW_API int gw_nexthop_parse(const char *s, size_t len, gw_nexthop *hop_r, const char **error_r);
/* Write the hop back in the syntax above ("[10.0.0.5]:25", "mx.example.com:25", "unix:/run/lmtp"). Like
 * snprintf. */
GW_API size_t gw_nexthop_format(const gw_nexthop *hop, char *buf, size_t size);

#endif
