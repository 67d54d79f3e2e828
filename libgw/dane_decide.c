/*
 * dane_decide.c - what the dane and dane-only STARTTLS levels make of one MX
 * host (see gw/domain_tls.h). No I/O: the caller did the lookups.
 */
#include <stdio.h>
#include <string.h>

#include "gw/domain_tls.h"

int gw_dane_decide(gw_tls_level level, int mx_secure, gw_lookup tlsa_lk, int tlsa_secure, size_t nusable,
		   const char *tlsa_name, const char *tlsa_err, gw_tls_policy *policy_r,
		   gw_dane_state *state_r, char *why, size_t whylen)
{
	int only = level == GW_TLS_LEVEL_DANE_ONLY;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	*policy_r = GW_TLS_MAY;
	if (level != GW_TLS_LEVEL_DANE && level != GW_TLS_LEVEL_DANE_ONLY) {
		*state_r = GW_DANE_OFF;
		*policy_r = (gw_tls_policy)level;
		return 0;
	}
	if (!mx_secure) {
		*state_r = GW_DANE_UNSIGNED_MX;
		if (only)
			snprintf(why, whylen, "dane-only: the MX records are not DNSSEC-validated");
		return only ? -1 : 0;
	}
	if (tlsa_lk == GW_LOOKUP_RETRY) {
		/* RFC 7672 2.2: a TLSA lookup that fails is not "no TLSA": the host is not tried. */
		*state_r = GW_DANE_LOOKUP_FAILED;
		snprintf(why, whylen, "TLSA lookup for %s failed: %s", tlsa_name, tlsa_err ? tlsa_err : "");
		return -1;
	}
	if (tlsa_lk == GW_LOOKUP_NOTFOUND || !tlsa_secure) {
		*state_r =
		    tlsa_lk == GW_LOOKUP_NOTFOUND && tlsa_secure ? GW_DANE_NO_TLSA : GW_DANE_UNSIGNED_TLSA;
		if (only)
			snprintf(why, whylen, "dane-only: %s for %s",
				 *state_r == GW_DANE_NO_TLSA ? "no TLSA records"
							     : "TLSA records not DNSSEC-validated",
				 tlsa_name);
		return only ? -1 : 0;
	}
	if (nusable == 0) {
		*state_r = GW_DANE_UNUSABLE;
		*policy_r = GW_TLS_ENCRYPT; /* RFC 7672 2.2: TLS still required, without authentication */
		if (only)
			snprintf(why, whylen, "dane-only: no usable TLSA record for %s", tlsa_name);
		return only ? -1 : 0;
	}
	*state_r = GW_DANE_TLSA;
	*policy_r = GW_TLS_DANE;
	return 0;
}
