/*
 * gw/dane.h - TLSA records for DANE (RFC 6698, RFC 7671) as SMTP uses them
 * (RFC 7672): looked up at "_PORT._tcp.HOST" through the resolver of
 * gw/dns.h with DNSSEC asked for, and parsed into the records a client can
 * verify a certificate against (gw_client_set_tls() in gw/client.h).
 *
 * Usable records, per RFC 7672 3.1: DANE-TA(2) and DANE-EE(3), selector
 * Cert(0) or SPKI(1), matching type Full(0), SHA2-256(1) or SHA2-512(2)
 * with the digest's exact length. PKIX-TA(0) and PKIX-EE(1) records, other
 * values and malformed data are counted but never used.
 *
 * Three outcomes, never two: FOUND (at least one TLSA record, usable or
 * not), NOTFOUND (NXDOMAIN or no TLSA record), RETRY (SERVFAIL, which is
 * what a validating resolver answers for bogus data, a timeout, a truncated
 * or malformed answer). *secure_r is the resolver's AD bit on the answer.
 *
 * Does not defend against: a resolver that lies about AD (use a validating
 * resolver on the host); the owner names of the records are not compared
 * with the query (a CNAME chain is followed by the resolver).
 */
#ifndef GW_DANE_H
#define GW_DANE_H

#include "gw/export.h"

#include <stddef.h>
#include <stdint.h>

#include "gw/dns.h"

#define GW_TLSA_MAX      8    /* usable records kept per host */
#define GW_TLSA_DATA_MAX 2048 /* a full certificate (matching type 0) up to this size */

/* Certificate usages (RFC 6698 2.1.1, RFC 7218 names). */
enum { GW_TLSA_PKIX_TA = 0, GW_TLSA_PKIX_EE = 1, GW_TLSA_DANE_TA = 2, GW_TLSA_DANE_EE = 3 };

typedef struct gw_tlsa {
	uint8_t usage, selector, mtype;
	size_t len;
	unsigned char data[GW_TLSA_DATA_MAX];
} gw_tlsa;

/*
 * The TLSA records of an answer already in hand (rcode from its header):
 * the usable ones into tlsa_r (at most max, in answer order), *n_r of them;
 * *seen_r (may be NULL) counts every TLSA record, usable or not.
 */
GW_API gw_lookup gw_tlsa_parse_answer(const unsigned char *answer, size_t len, gw_tlsa *tlsa_r, size_t max,
				      size_t *n_r, size_t *seen_r, char *err, size_t errlen);
/*
 * Look up "_port._tcp.host" (port 0: 25) with DNSSEC asked for, ending by
 * deadline (gw_now_ms() time; 0: the lookup timeout alone). As above, and
 * *secure_r says whether the resolver validated the answer (also for a
 * NOTFOUND: authenticated denial).
 */
GW_API gw_lookup gw_tlsa_lookup(const char *host, unsigned port, int64_t deadline, gw_tlsa *tlsa_r,
				size_t max, size_t *n_r, size_t *seen_r, int *secure_r, char *err,
				size_t errlen);

#endif
