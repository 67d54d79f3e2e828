/*
 * dane_policy.c - the dane and dane-only STARTTLS levels for one MX host
 * (see dane_policy.h).
 */
#include <stdio.h>
#include <string.h>

#include "dane_policy.h"
#include "gw/time.h"

int gwl_dane_decide(gwl_tls_level level, int mx_secure, gw_lookup tlsa_lk, int tlsa_secure, size_t nusable,
		    const char *tlsa_name, const char *tlsa_err, gw_tls_policy *policy_r,
		    gwl_dane_state *state_r, char *why, size_t whylen)
{
	int only = level == GWL_TLS_DANE_ONLY;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	*policy_r = GW_TLS_MAY;
	if (level != GWL_TLS_DANE && level != GWL_TLS_DANE_ONLY) {
		*state_r = GWL_DANE_OFF;
		*policy_r = (gw_tls_policy)level;
		return 0;
	}
	if (!mx_secure) {
		*state_r = GWL_DANE_UNSIGNED_MX;
		if (only)
			snprintf(why, whylen, "dane-only: the MX records are not DNSSEC-validated");
		return only ? -1 : 0;
	}
	if (tlsa_lk == GW_LOOKUP_RETRY) {
		/* RFC 7672 2.2: a TLSA lookup that fails is not "no TLSA": the host is not tried. */
		*state_r = GWL_DANE_LOOKUP_FAILED;
		snprintf(why, whylen, "TLSA lookup for %s failed: %s", tlsa_name, tlsa_err ? tlsa_err : "");
		return -1;
	}
	if (tlsa_lk == GW_LOOKUP_NOTFOUND || !tlsa_secure) {
		*state_r =
		    tlsa_lk == GW_LOOKUP_NOTFOUND && tlsa_secure ? GWL_DANE_NO_TLSA : GWL_DANE_UNSIGNED_TLSA;
		if (only)
			snprintf(why, whylen, "dane-only: %s for %s",
				 *state_r == GWL_DANE_NO_TLSA ? "no TLSA records"
							      : "TLSA records not DNSSEC-validated",
				 tlsa_name);
		return only ? -1 : 0;
	}
	if (nusable == 0) {
		*state_r = GWL_DANE_UNUSABLE;
		*policy_r = GW_TLS_ENCRYPT; /* RFC 7672 2.2: TLS still required, without authentication */
		if (only)
			snprintf(why, whylen, "dane-only: no usable TLSA record for %s", tlsa_name);
		return only ? -1 : 0;
	}
	*state_r = GWL_DANE_TLSA;
	*policy_r = GW_TLS_DANE;
	return 0;
}

const char *gwl_dane_word(gwl_dane_state s)
{
	switch (s) {
	case GWL_DANE_OFF:
		return "";
	case GWL_DANE_UNSIGNED_MX:
		return "unsigned-mx";
	case GWL_DANE_LOOKUP_FAILED:
		return "tlsa-lookup-failed";
	case GWL_DANE_NO_TLSA:
		return "no-tlsa";
	case GWL_DANE_UNSIGNED_TLSA:
		return "unsigned-tlsa";
	case GWL_DANE_UNUSABLE:
		return "unusable-tlsa";
	case GWL_DANE_TLSA:
		return "tlsa";
	case GWL_DANE_VERIFIED:
		return "verified";
	case GWL_DANE_FAILED:
		return "failed";
	}
	return "unknown";
}

/* Remember what gateway got (the last word counts: a host is asked again on reuse). */
static void note(gwl_dane_ctx *c, const char *gateway, gwl_dane_state s)
{
	size_t i;

	for (i = 0; i < c->nhop; i++)
		if (strcmp(c->hop[i].gateway, gateway) == 0)
			break;
	if (i == c->nhop) {
		if (c->nhop == GWL_DANE_HOPS_MAX)
			return;
		c->nhop++;
		snprintf(c->hop[i].gateway, sizeof(c->hop[i].gateway), "%s", gateway);
	}
	c->hop[i].state = s;
}

int gwl_dane_hop(void *ctx, const gw_nexthop *hop, gw_tls_policy *policy_r, const gw_tlsa **tlsa_r,
		 size_t *ntlsa_r, char *why, size_t whylen)
{
	gwl_dane_ctx *c = ctx;
	char gateway[GW_LMTP_GATEWAY_MAX], tlsa_name[GW_HOST_MAX + 24], err[256] = "";
	gw_lookup lk = GW_LOOKUP_NOTFOUND;
	size_t n = 0;
	int secure = 0, rc;
	gwl_dane_state st;
	unsigned port = hop->port ? hop->port : c->port;

	gw_nexthop_format(hop, gateway, sizeof(gateway));
	snprintf(tlsa_name, sizeof(tlsa_name), "_%u._tcp.%s", port, hop->host);
	if (c->mx_secure && hop->kind == GW_HOP_INET)
		lk = gw_tlsa_lookup(hop->host, port, c->deadline, c->tlsa, GW_TLSA_MAX, &n, NULL, &secure,
				    err, sizeof(err));
	rc = gwl_dane_decide(c->level, c->mx_secure && hop->kind == GW_HOP_INET, lk, secure, n, tlsa_name,
			     err, policy_r, &st, why, whylen);
	note(c, gateway, st);
	if (rc == 0 && *policy_r == GW_TLS_DANE) {
		*tlsa_r = c->tlsa;
		*ntlsa_r = n;
	}
	return rc;
}

gwl_dane_state gwl_dane_outcome(const gwl_dane_ctx *c, const char *gateway, const char *tls)
{
	size_t i;

	for (i = 0; i < c->nhop; i++)
		if (strcmp(c->hop[i].gateway, gateway) == 0) {
			if (c->hop[i].state != GWL_DANE_TLSA)
				return c->hop[i].state;
			/* Under DANE terms a session only comes up once the certificate matched. */
			return tls != NULL && tls[0] != '\0' ? GWL_DANE_VERIFIED : GWL_DANE_FAILED;
		}
	return GWL_DANE_OFF; /* no host was tried (the MX lookup failed, say): DANE had no say */
}
