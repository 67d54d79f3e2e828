/*
 * dane.c - STARTTLS terms per destination for gw-proxy (see dane.h).
 */
#include <stdio.h>
#include <string.h>

#include "dane.h"

gw_tls_level gwp_dane_level(const gwp_config *c, const char *domain)
{
	return gw_domain_tls_lookup(c->domain_tls, domain, (gw_tls_level)c->opt.tls);
}

gw_tls_policy gwp_dane_address_policy(gw_tls_level level)
{
	if (level == GW_TLS_LEVEL_DANE)
		return GW_TLS_MAY;
	if (level == GW_TLS_LEVEL_DANE_ONLY)
		return GW_TLS_ENCRYPT;
	return (gw_tls_policy)level;
}

static int is_dane(gw_tls_level level)
{
	return level == GW_TLS_LEVEL_DANE || level == GW_TLS_LEVEL_DANE_ONLY;
}

gw_lookup gwp_dane_mx(gw_tls_level level, const char *domain, gw_mx *mx_r, size_t max, size_t *n_r,
		      int *secure_r, char *err, size_t errlen)
{
	*secure_r = 0;
	if (is_dane(level))
		return gw_mx_lookup_dnssec(domain, 0, mx_r, max, n_r, secure_r, err, errlen);
	return gw_mx_lookup(domain, mx_r, max, n_r, err, errlen);
}

int gwp_dane_host(gw_tls_level level, int mx_secure, const char *host, unsigned port, int64_t deadline,
		  gwp_tls_terms *t, char *why, size_t whylen)
{
	char name[GW_HOST_MAX + 24], err[256] = "";
	gw_lookup lk = GW_LOOKUP_NOTFOUND;
	int secure = 0;

	t->ntlsa = 0;
	snprintf(name, sizeof(name), "_%u._tcp.%s", port, host);
	if (is_dane(level) && mx_secure)
		lk = gw_tlsa_lookup(host, port, deadline, t->tlsa, GW_TLSA_MAX, &t->ntlsa, NULL, &secure, err,
				    sizeof(err));
	if (gw_dane_decide(level, mx_secure, lk, secure, t->ntlsa, name, err, &t->policy, &t->state, why,
			   whylen) != 0)
		return -1;
	if (t->policy != GW_TLS_DANE)
		t->ntlsa = 0;
	return 0;
}
