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
 * gwl_dane_decide() is that table, with no I/O; gwl_dane_hop() is the
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
#include "tls_policy.h"

typedef enum gwl_dane_state {
	GWL_DANE_OFF = 0,       /* the level is not dane or dane-only */
	GWL_DANE_UNSIGNED_MX,   /* the MX set was not validated */
	GWL_DANE_LOOKUP_FAILED, /* the TLSA lookup could not be answered */
	GWL_DANE_NO_TLSA,       /* validated: no TLSA records */
	GWL_DANE_UNSIGNED_TLSA, /* TLSA answer (or its denial) not validated */
	GWL_DANE_UNUSABLE,      /* validated TLSA records, none usable */
	GWL_DANE_TLSA,          /* validated, usable TLSA records: DANE required */
	GWL_DANE_VERIFIED,      /* after delivery: a DANE session was established */
	GWL_DANE_FAILED         /* after delivery: usable TLSA, but no verified session */
} gwl_dane_state;

/*
 * The terms for one host under level (GWL_TLS_DANE or GWL_TLS_DANE_ONLY):
 * 0 with *policy_r, or -1 (do not try the host) with why. *state_r either way.
 * tlsa_lk, tlsa_secure, nusable: the TLSA lookup's outcome; tlsa_err its text.
 */
int gwl_dane_decide(gwl_tls_level level, int mx_secure, gw_lookup tlsa_lk, int tlsa_secure, size_t nusable,
		    const char *tlsa_name, const char *tlsa_err, gw_tls_policy *policy_r,
		    gwl_dane_state *state_r, char *why, size_t whylen);

/* "verified", "failed", "no-tlsa", ... for the log; "" for GWL_DANE_OFF. */
const char *gwl_dane_word(gwl_dane_state s);

#define GWL_DANE_HOPS_MAX 64

/* The hop hook's state for one destination's transaction. */
typedef struct gwl_dane_ctx {
	gwl_tls_level level;
	int mx_secure;
	unsigned port;    /* the TLSA records' port: the port connected to */
	int64_t deadline; /* the transaction's */
	gw_tlsa tlsa[GW_TLSA_MAX];
	struct {
		char gateway[GW_LMTP_GATEWAY_MAX];
		gwl_dane_state state;
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
gwl_dane_state gwl_dane_outcome(const gwl_dane_ctx *ctx, const char *gateway, const char *tls);

#endif
