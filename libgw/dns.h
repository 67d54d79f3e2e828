/*
 * dns.h - libgw's bounded lookups through c-ares (see dns.c), for mx.c and
 * net.c. The settings are those of gw/dns.h.
 *
 * "end" is the absolute gw_now_ms() time a lookup must be over by; get it
 * from gwd_end() so the configured lookup timeout bounds it too.
 */
#ifndef GW_DNS_INT_H
#define GW_DNS_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "gw/dns.h"

#define GWD_ADDR_MAX 16

typedef struct gwd_addr {
	struct sockaddr_storage sa;
	socklen_t len;
} gwd_addr;

/* now + the configured lookup timeout, or deadline when that comes first (deadline 0: none). */
int64_t gwd_end(int64_t deadline);

/*
 * One query of class IN and this type for name, as it is (no search list).
 * FOUND with *answer_r (malloc'd, the caller frees it) when a server answered,
 * whatever its rcode; otherwise NOTFOUND (NXDOMAIN, or no such record: then
 * *nodata_r is 1) or RETRY, with err.
 */
gw_lookup gwd_query(const char *name, unsigned type, int64_t end, unsigned char **answer_r, size_t *len_r,
		    int *nodata_r, char *err, size_t errlen);

/*
 * The same query with DNSSEC asked for (EDNS0 with the DO bit, and AD set as
 * RFC 6840 5.7 suggests), sent as it is: the answer comes back whatever its
 * rcode but SERVFAIL (FOUND; the caller reads rcode and *ad_r, the AD bit the
 * resolver set). NXDOMAIN and NODATA answers are FOUND here too, so that
 * their AD bit (authenticated denial) can be read.
 */
gw_lookup gwd_query_dnssec(const char *name, unsigned type, int64_t end, unsigned char **answer_r,
			   size_t *len_r, int *ad_r, char *err, size_t errlen);

/* The AD bit of a DNS message header (0 for anything too short to be one). */
int gwd_answer_ad(const unsigned char *answer, size_t len);

/*
 * Addresses of host, each with port: a numeric address as it is (no DNS),
 * else A and AAAA records (and /etc/hosts, in the system's lookup order).
 * NOTFOUND: no such host or no address. RETRY: resolver trouble, or end
 * reached (then *timed_out_r is 1 when timed_out_r is given).
 */
gw_lookup gwd_host_lookup(const char *host, unsigned port, int64_t end, gwd_addr *addrs_r, size_t max,
			  size_t *n_r, int *timed_out_r, char *err, size_t errlen);

#endif
