/*
 * dane_policy.c - the dane and dane-only STARTTLS levels for one MX host
 * (see dane_policy.h).
 */
#include <stdio.h>
#include <string.h>

#include "dane_policy.h"
#include "gw/time.h"

const char *gwl_dane_word(gw_dane_state s)
{
	return s == GW_DANE_OFF ? "" : gw_dane_state_str(s);
}

/* Remember what gateway got (the last word counts: a host is asked again on reuse). */
static void note(gwl_dane_ctx *c, const char *gateway, gw_dane_state s)
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
	gw_dane_state st;
	unsigned port = hop->port ? hop->port : c->port;

	gw_nexthop_format(hop, gateway, sizeof(gateway));
	snprintf(tlsa_name, sizeof(tlsa_name), "_%u._tcp.%s", port, hop->host);
	if (c->mx_secure && hop->kind == GW_HOP_INET)
		lk = gw_tlsa_lookup(hop->host, port, c->deadline, c->tlsa, GW_TLSA_MAX, &n, NULL, &secure,
				    err, sizeof(err));
	rc = gw_dane_decide(c->level, c->mx_secure && hop->kind == GW_HOP_INET, lk, secure, n, tlsa_name, err,
			    policy_r, &st, why, whylen);
	note(c, gateway, st);
	if (rc == 0 && *policy_r == GW_TLS_DANE) {
		*tlsa_r = c->tlsa;
		*ntlsa_r = n;
	}
	return rc;
}

gw_dane_state gwl_dane_outcome(const gwl_dane_ctx *c, const char *gateway, const char *tls)
{
	size_t i;

	for (i = 0; i < c->nhop; i++)
		if (strcmp(c->hop[i].gateway, gateway) == 0) {
			if (c->hop[i].state != GW_DANE_TLSA)
				return c->hop[i].state;
			/* Under DANE terms a session only comes up once the certificate matched. */
			return tls != NULL && tls[0] != '\0' ? GW_DANE_VERIFIED : GW_DANE_FAILED;
		}
	return GW_DANE_OFF; /* no host was tried (the MX lookup failed, say): DANE had no say */
}
