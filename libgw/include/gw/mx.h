/*
 * gw/mx.h - MX lookup (RFC 5321 5.1) through the resolver of gw/dns.h.
 *
 * Three outcomes, never two: FOUND (hosts by preference), NOTFOUND (NXDOMAIN,
 * a null MX, or neither MX nor address), RETRY (SERVFAIL, timeout, truncated
 * or malformed answer, any other resolver trouble). An MX record whose target
 * is "." (RFC 7505 null MX), at any preference, makes the whole domain
 * NOTFOUND. A domain with no MX record but an address (A or AAAA) is its own
 * MX at preference 0 (the implicit MX). Thread-safe.
 *
 * Does not defend against: answers that are well-formed but wrong (no
 * validation of our own: gw_mx_lookup_dnssec() reports the resolver's AD bit). MX records are taken from the
 * whole answer section without following the CNAME chain by owner name.
 */
#ifndef GW_MX_H
#define GW_MX_H

#include "gw/export.h"

#include <stddef.h>
#include <stdint.h>

#include "gw/dns.h"
#include "gw/nexthop.h"

#define GW_MX_MAX 16

typedef struct gw_mx {
	unsigned pref;
	char host[GW_HOST_MAX + 1];
} gw_mx;

/*
 * MX hosts of domain, lowest preference first, at most max of them (the
 * lowest preferences; among equals the first in the answer). Bounded by the
 * lookup timeout of gw/dns.h.
 */
GW_API gw_lookup gw_mx_lookup(const char *domain, gw_mx *mx_r, size_t max, size_t *n_r, char *err,
			      size_t errlen);
/* The same, ending by deadline (an absolute gw_now_ms() value; 0: none) if that comes first. */
GW_API gw_lookup gw_mx_lookup_until(const char *domain, int64_t deadline, gw_mx *mx_r, size_t max,
				    size_t *n_r, char *err, size_t errlen);
/*
 * gw_mx_lookup_until() asking for DNSSEC (EDNS0 DO): *secure_r is 1 when the
 * answer is FOUND and the resolver set AD on it (for an implicit MX: on the
 * denial of the MX set and on the domain's A or AAAA answer). Only a
 * validating resolver the host trusts (gw/dns.h servers on loopback) makes
 * that bit mean anything: it is what DANE (gw/dane.h) rests on.
 */
GW_API gw_lookup gw_mx_lookup_dnssec(const char *domain, int64_t deadline, gw_mx *mx_r, size_t max,
				     size_t *n_r, int *secure_r, char *err, size_t errlen);
/*
 * The same from a DNS answer already in hand (the answer to an MX query,
 * rcode from its header); used by gw_mx_lookup and by tests with crafted
 * packets. A NOERROR answer without MX records is NOTFOUND here: the
 * implicit MX needs a second lookup.
 */
GW_API gw_lookup gw_mx_parse_answer(const unsigned char *answer, size_t len, gw_mx *mx_r, size_t max,
				    size_t *n_r, char *err, size_t errlen);

#endif
