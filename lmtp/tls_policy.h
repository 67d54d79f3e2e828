/*
 * tls_policy.h - STARTTLS policy per destination domain for gw-lmtpd, from a
 * file in the spirit of Postfix's smtp_tls_policy_maps:
 *
 *     example.com      encrypt
 *     .example.com     verify
 *     bank.example     verify
 *     legacy.example   none
 *
 * One "domain policy" pair per line; '#' starts a comment. A domain matches
 * itself; ".example.com" matches every subdomain. Policies: none, may,
 * encrypt, verify (gw/client.h), dane and dane-only (dane_policy.h).
 * Domains not listed use the global tls key.
 * Errors name file:line.
 *
 * Does not defend against: DNS answers that send a verified domain's mail to
 * another host whose certificate names that host (verify checks the MX host
 * name, as Postfix's "verify" does without DANE).
 */
#ifndef GWL_TLS_POLICY_H
#define GWL_TLS_POLICY_H

#include <stddef.h>

#include "gw/client.h"

/* The client's levels, and dane-only, which only the relay knows (dane_policy.h). */
typedef enum gwl_tls_level {
	GWL_TLS_NONE = GW_TLS_NONE,
	GWL_TLS_MAY = GW_TLS_MAY,
	GWL_TLS_ENCRYPT = GW_TLS_ENCRYPT,
	GWL_TLS_VERIFY = GW_TLS_VERIFY,
	GWL_TLS_DANE = GW_TLS_DANE,
	GWL_TLS_DANE_ONLY
} gwl_tls_level;

/* "none" ... "dane-only" in any case -> *level_r. 0, or -1 for another word. */
int gwl_tls_level_parse(const char *name, gwl_tls_level *level_r);
/* The word for a level. */
const char *gwl_tls_level_str(gwl_tls_level level);

typedef struct gwl_tls_policy gwl_tls_policy;

/* Load path. NULL with err "path:line: message". */
gwl_tls_policy *gwl_tls_policy_load(const char *path, char *err, size_t errlen);
/* The same from text[0..len) (name stands for the path in messages). */
gwl_tls_policy *gwl_tls_policy_parse(const char *text, size_t len, const char *name, char *err,
				     size_t errlen);
/* The policy for domain (case-insensitive), or fallback when none is listed. */
gwl_tls_level gwl_tls_policy_lookup(const gwl_tls_policy *t, const char *domain, gwl_tls_level fallback);
void gwl_tls_policy_free(gwl_tls_policy **t);

#endif
