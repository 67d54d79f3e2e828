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
 * encrypt, verify (gw/client.h). Domains not listed use the global tls key.
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

typedef struct gwl_tls_policy gwl_tls_policy;

/* Load path. NULL with err "path:line: message". */
gwl_tls_policy *gwl_tls_policy_load(const char *path, char *err, size_t errlen);
/* The same from text[0..len) (name stands for the path in messages). */
gwl_tls_policy *gwl_tls_policy_parse(const char *text, size_t len, const char *name, char *err,
				     size_t errlen);
/* The policy for domain (case-insensitive), or fallback when none is listed. */
gw_tls_policy gwl_tls_policy_lookup(const gwl_tls_policy *t, const char *domain, gw_tls_policy fallback);
void gwl_tls_policy_free(gwl_tls_policy **t);

#endif
