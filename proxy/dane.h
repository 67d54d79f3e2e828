/*
 * dane.h - the STARTTLS terms of gw-proxy's destinations: per recipient
 * domain in MX mode (tls_domain_policy file, else the tls key; dane and
 * dane-only as in gw-lmtpd, RFC 7672, through gw/domain_tls.h), and per
 * address for redirected connections and the upstream (tls_policy file,
 * else the tls key).
 *
 * DANE needs the MX host's name and a DNSSEC-validated MX answer: only MX
 * mode has them. A redirected connection's destination is an address and
 * an upstream is not looked up as MX, so there dane acts as may and
 * dane-only as encrypt (TLS required, the certificate not checked): never
 * plain text under dane-only, but no authentication either.
 *
 * Does not defend against: a resolver that lies about AD (dns_servers must
 * be a validating resolver the host trusts, on loopback); MX hosts whose
 * address records are forged (under DANE the certificate still has to match).
 */
#ifndef GWP_DANE_H
#define GWP_DANE_H

#include <stddef.h>
#include <stdint.h>

#include "gw/domain_tls.h"
#include "gw/mx.h"
#include "proxy_conf.h"

/* The terms for the next connection to one MX host. */
typedef struct gwp_tls_terms {
	gw_tls_policy policy;
	gw_dane_state state; /* GW_DANE_OFF unless the domain's level is dane or dane-only */
	gw_tlsa tlsa[GW_TLSA_MAX];
	size_t ntlsa;
} gwp_tls_terms;

/* The level of a recipient domain (MX mode). */
gw_tls_level gwp_dane_level(const gwp_config *c, const char *domain);
/* The policy for a destination known only by its address (or an upstream): dane, dane-only reduced. */
gw_tls_policy gwp_dane_address_policy(gw_tls_level level);
/*
 * The MX hosts of domain for level: a DNSSEC-asking lookup (*secure_r: the
 * answer was validated) under dane and dane-only, a plain one otherwise.
 */
gw_lookup gwp_dane_mx(gw_tls_level level, const char *domain, gw_mx *mx_r, size_t max, size_t *n_r,
		      int *secure_r, char *err, size_t errlen);
/*
 * The terms for MX host (reached on port) of a domain at level: its TLSA
 * records looked up when DANE applies. 0 with *t filled, or -1 (do not try
 * the host: dane-only without DANE, a TLSA lookup that failed) with why.
 */
int gwp_dane_host(gw_tls_level level, int mx_secure, const char *host, unsigned port, int64_t deadline,
		  gwp_tls_terms *t, char *why, size_t whylen);

#endif
