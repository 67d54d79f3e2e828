/*
 * gw/domain_tls.h - STARTTLS levels per destination domain, shared by the
 * daemons that deliver to MX hosts (gw-lmtpd, gw-proxy in MX mode): the
 * levels with Postfix's words (smtp_tls_security_level), a file of domain
 * policies in the spirit of Postfix's smtp_tls_policy_maps, and what the
 * dane and dane-only levels make of one MX host (RFC 7672).
 *
 * The policy file:
 *
 *     example.com      encrypt
 *     .example.com     verify
 *     bank.example     dane-only
 *     legacy.example   none
 *
 * One "domain policy" pair per line; '#' starts a comment. A domain matches
 * itself; ".example.com" matches every subdomain. Errors name file:line.
 *
 * gw_dane_decide(), with no I/O, is this table for one MX host:
 *
 *   MX set not DNSSEC-validated      dane: may            dane-only: host not tried (4xx)
 *   TLSA lookup failed (SERVFAIL,    host not tried (4xx) under both
 *     bogus, timeout)
 *   no TLSA, or TLSA not validated   dane: may            dane-only: host not tried
 *   validated TLSA, none usable      dane: encrypt        dane-only: host not tried
 *   validated, usable TLSA           STARTTLS required, certificate matched against
 *                                    the records (GW_TLS_DANE); no plain-text fallback
 *
 * The caller looks the records up (gw_mx_lookup_dnssec, gw_tlsa_lookup in
 * gw/mx.h and gw/dane.h) and hands the TLSA records to the client
 * (gw_client_set_tls).
 *
 * Does not defend against: DNS answers that send a verified domain's mail to
 * another host whose certificate names that host (verify checks the MX host
 * name, as Postfix's "verify" does without DANE); a resolver that lies about
 * AD (use a validating resolver the host trusts, on loopback).
 */
#ifndef GW_DOMAIN_TLS_H
#define GW_DOMAIN_TLS_H

#include "gw/export.h"

#include <stddef.h>

#include "gw/client.h"
#include "gw/dane.h"

/* The client's policies, and dane-only, which the caller applies (gw_dane_decide). */
typedef enum gw_tls_level {
	GW_TLS_LEVEL_NONE = GW_TLS_NONE,
	GW_TLS_LEVEL_MAY = GW_TLS_MAY,
	GW_TLS_LEVEL_ENCRYPT = GW_TLS_ENCRYPT,
	GW_TLS_LEVEL_VERIFY = GW_TLS_VERIFY,
	GW_TLS_LEVEL_DANE = GW_TLS_DANE,
	GW_TLS_LEVEL_DANE_ONLY
} gw_tls_level;

/* "none" ... "dane-only" in any case -> *level_r. 0, or -1 for another word. */
GW_API int gw_tls_level_parse(const char *name, gw_tls_level *level_r);
/* The word for a level; "unknown" for other values. */
GW_API const char *gw_tls_level_str(gw_tls_level level);

typedef struct gw_domain_tls gw_domain_tls;

/* Load path. NULL with err "path:line: message". */
GW_API gw_domain_tls *gw_domain_tls_load(const char *path, char *err, size_t errlen);
/* The same from text[0..len) (name stands for the path in messages). */
GW_API gw_domain_tls *gw_domain_tls_parse(const char *text, size_t len, const char *name, char *err,
					  size_t errlen);
/* The level for domain (case-insensitive), or fallback when none is listed (or t is NULL). */
GW_API gw_tls_level gw_domain_tls_lookup(const gw_domain_tls *t, const char *domain, gw_tls_level fallback);
GW_API void gw_domain_tls_free(gw_domain_tls **t);

typedef enum gw_dane_state {
	GW_DANE_OFF = 0,       /* the level is not dane or dane-only */
	GW_DANE_UNSIGNED_MX,   /* the MX set was not validated */
	GW_DANE_LOOKUP_FAILED, /* the TLSA lookup could not be answered */
	GW_DANE_NO_TLSA,       /* validated: no TLSA records */
	GW_DANE_UNSIGNED_TLSA, /* TLSA answer (or its denial) not validated */
	GW_DANE_UNUSABLE,      /* validated TLSA records, none usable */
	GW_DANE_TLSA,          /* validated, usable TLSA records: DANE required */
	GW_DANE_VERIFIED,      /* after delivery: a DANE session was established */
	GW_DANE_FAILED         /* after delivery: usable TLSA, but no verified session */
} gw_dane_state;

/*
 * The terms for one host under level (other levels: GW_DANE_OFF and the
 * level itself as the policy): 0 with *policy_r, or -1 (do not try the host)
 * with why. *state_r either way. mx_secure: the MX answer was validated;
 * tlsa_lk, tlsa_secure, nusable: the TLSA lookup's outcome; tlsa_name,
 * tlsa_err: its name and error text, for why.
 */
GW_API int gw_dane_decide(gw_tls_level level, int mx_secure, gw_lookup tlsa_lk, int tlsa_secure,
			  size_t nusable, const char *tlsa_name, const char *tlsa_err,
			  gw_tls_policy *policy_r, gw_dane_state *state_r, char *why, size_t whylen);
/* "off", "unsigned-mx", "tlsa-lookup-failed", "no-tlsa", ..., "verified", "failed"; "unknown" otherwise. */
GW_API const char *gw_dane_state_str(gw_dane_state s);

#endif
