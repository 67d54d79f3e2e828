/*
 * gw/dns.h - the resolver behind every name libgw looks up (MX records, and
 * the addresses of next hops given as host names).
 *
 * Every lookup is bounded in time: by the deadline its caller gives (a
 * client's connect timeout, a probe's deadline) and never longer than the
 * lookup timeout set here. A resolver that does not answer in time gives
 * GW_LOOKUP_RETRY, never "not found".
 *
 * The settings are process-wide, like /etc/resolv.conf itself, and may be
 * changed while lookups run (each lookup uses the settings it started with):
 *
 *     servers   "IP[:port]" items separated by commas or blanks, at most
 *               GW_DNS_SERVERS_MAX; IPv6 as "[2001:db8::53]:5353" (or bare,
 *               without a port). NULL or "": the nameservers of
 *               /etc/resolv.conf. Each is asked over UDP (TCP when an answer
 *               is truncated), in order.
 *     timeout   the longest a lookup may take, retransmissions included;
 *               0: GW_DNS_TIMEOUT_DEFAULT_MS.
 *
 * DNSSEC is left to the resolver: gw_mx_lookup_dnssec() (gw/mx.h) and
 * gw_tlsa_lookup() (gw/dane.h) ask with the EDNS0 DO bit and report the AD
 * bit of its answers, which only means something when servers is a
 * validating resolver the host trusts (on loopback).
 *
 * Does not defend against: answers that are well-formed but forged (no
 * DNSSEC validation here; point servers at a validating resolver on the
 * host).
 */
#ifndef GW_DNS_H
#define GW_DNS_H

#include "gw/export.h"

#include <stddef.h>

#define GW_DNS_SERVERS_MAX        8
#define GW_DNS_TIMEOUT_DEFAULT_MS 5000
#define GW_DNS_TIMEOUT_MAX_MS     600000

/* Three outcomes of a lookup, never two. */
typedef enum gw_lookup {
	GW_LOOKUP_FOUND = 0, /* results filled in */
	GW_LOOKUP_NOTFOUND,  /* the name does not exist, has no such record, or a null MX (RFC 7505) */
	GW_LOOKUP_RETRY      /* resolver failure or timeout: try later, never read as "not found" */
} gw_lookup;

/* Check a servers list without using it. 0 ok; -1 with err naming the bad item. */
GW_API int gw_dns_check_servers(const char *servers, char *err, size_t errlen);
/*
 * Use servers and timeout_ms (see above) for every lookup from now on.
 * 0 ok; -1 with err (the settings in force are kept).
 */
GW_API int gw_dns_configure(const char *servers, unsigned timeout_ms, char *err, size_t errlen);

#endif
