/*
 * dane_policy.h - what gw-lmtpd's "dane" and "dane-only" STARTTLS levels
 * make of one MX host, as Postfix's smtp_tls_security_level = dane /
 * dane-only do (RFC 7672):
 *
 *   MX set not DNSSEC-validated      dane: may            dane-only: host not tried (4xx)
 *   TLSA lookup failed (SERVFAIL,    host not tried (4xx) under both
 *     bogus, timeout)
 *   no TLSA, or TLSA not validated   dane: may            dane-only: host not tried
 *   validated TLSA, none usable      dane: encrypt        dane-only: host not tried
 *   validated, usable TLSA           STARTTLS required, certificate matched against
 *                                    the records (GW_TLS_DANE); no plain-text fallback
 *
 * gw_dane_decide() (gw/domain_tls.h, shared with gw-proxy) is that table,
 * with no I/O; gwl_dane_hop() is the
 * gw_lmtp hop hook (gw/lmtp.h) that looks the TLSA records up and applies it,
 * remembering what each host got for the log (gwl_dane_word()).
 *
 * Does not defend against: a resolver that lies about AD (dns_servers must
 * be a validating resolver the host trusts, on loopback); MX hosts whose
 * address records are forged (the certificate still has to match); route
 * file next hops, which are never DNSSEC-checked (dane acts as may there).
 */
#ifndef GWL_DANE_POLICY_H
#define GWL_DANE_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "gw/dane.h"
#include "gw/lmtp.h"
#include "gw/domain_tls.h"

/* "verified", "failed", "no-tlsa", ... for the log; "" for GW_DANE_OFF. */
const char *gwl_dane_word(gw_dane_state s);

#define GWL_DANE_HOPS_MAX 64

/* The hop hook's state for one destination's transaction. */
typedef struct gwl_dane_ctx {
	gw_tls_level level;
	int mx_secure;
	unsigned port;    /* the TLSA records' port: the port connected to */
	int64_t deadline; /* the transaction's */
	gw_tlsa tlsa[GW_TLSA_MAX];
	struct {
		char gateway[GW_LMTP_GATEWAY_MAX];
		gw_dane_state state;
	} hop[GWL_DANE_HOPS_MAX];
	size_t nhop;
} gwl_dane_ctx;

/* The gw_lmtp_hop_tls_fn for a gwl_dane_ctx. */
int gwl_dane_hop(void *ctx, const gw_nexthop *hop, gw_tls_policy *policy_r, const gw_tlsa **tlsa_r,
		 size_t *ntlsa_r, char *why, size_t whylen);

/*
 * What DANE made of the recipient whose result came through gateway, with tls
 * the session's protocol ("" for plain text or no session).
 */
gw_dane_state gwl_dane_outcome(const gwl_dane_ctx *ctx, const char *gateway, const char *tls);

#endif
