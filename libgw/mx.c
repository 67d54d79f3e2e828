/*
 * mx.c - MX lookup (RFC 5321 5.1) through the bounded resolver of dns.c,
 * and the parser for MX answers (which tests feed with crafted packets).
 *
 * Three outcomes, never two: FOUND (hosts by preference), NOTFOUND (NXDOMAIN,
 * a null MX, or neither MX nor address), RETRY (SERVFAIL, timeout, truncated
 * or malformed answer, any other resolver trouble). An MX record whose target
 * is "." (RFC 7505 null MX), at any preference, makes the whole domain
 * NOTFOUND. The MX query and the address lookup of an implicit MX share one
 * deadline. Thread-safe: nothing is shared between lookups.
 *
 * gw_mx_lookup_dnssec() also says whether the answer was DNSSEC-validated by
 * the resolver (its AD bit, dns.c), for DANE.
 *
 * Does not defend against: answers that are well-formed but wrong (no
 * validation here; the AD bit is the resolver's word). MX records are taken from the whole answer section
 * without following the CNAME chain by owner name (we asked for this name, and only answers for it are
 * expected there).
 */
#include <arpa/nameser.h>
#include <ctype.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns.h"
#include "gw/mx.h"
#include "util.h"

#define ANSWER_MAX 65536 /* the largest DNS message (TCP) */

/* A host name we are willing to connect to and log: letters, digits, '-', '_', '.'. */
static int host_ok(const char *h)
{
	size_t i;

	if (h[0] == '\0')
		return 0;
	for (i = 0; h[i] != '\0'; i++) {
		unsigned char c = (unsigned char)h[i];
		if (!isalnum(c) && c != '-' && c != '_' && c != '.')
			return 0;
	}
	return i <= GW_HOST_MAX;
}

/*
 * Keep the max lowest-preference records seen so far, in preference order,
 * earlier records first among equals (a stable insertion sort that drops
 * whatever falls off the end).
 */
static void keep_best(gw_mx *mx, size_t max, size_t *n, unsigned pref, const char *host)
{
	size_t pos = *n, i, hl = strlen(host);

	if (hl > GW_HOST_MAX)
		return; /* host_ok() already refused it */
	while (pos > 0 && mx[pos - 1].pref > pref)
		pos--;
	if (pos >= max)
		return;
	i = *n < max ? *n : max - 1;
	for (; i > pos; i--)
		mx[i] = mx[i - 1];
	mx[pos].pref = pref;
	memcpy(mx[pos].host, host, hl + 1);
	if (*n < max)
		(*n)++;
}

/* The parser behind both entry points; *nodata_r is set for NOERROR with no MX record. */
static gw_lookup parse_answer(const unsigned char *answer, size_t len, gw_mx *mx_r, size_t max, size_t *n_r,
			      int *nodata_r, char *err, size_t errlen)
{
	ns_msg msg;
	ns_rr rr;
	int rcode, count, i, seen = 0, nullmx = 0, bad = 0;

	*nodata_r = 0;
	if (answer == NULL || len > ANSWER_MAX || ns_initparse(answer, (int)len, &msg) < 0) {
		gwu_set_err(err, errlen, "malformed DNS answer");
		return GW_LOOKUP_RETRY;
	}
	if (!ns_msg_getflag(msg, ns_f_qr)) {
		gwu_set_err(err, errlen, "DNS message is not a response");
		return GW_LOOKUP_RETRY;
	}
	if (ns_msg_getflag(msg, ns_f_tc)) {
		gwu_set_err(err, errlen, "truncated DNS answer");
		return GW_LOOKUP_RETRY;
	}
	rcode = ns_msg_getflag(msg, ns_f_rcode);
	if (rcode == ns_r_nxdomain) {
		gwu_set_err(err, errlen, "domain does not exist (NXDOMAIN)");
		return GW_LOOKUP_NOTFOUND;
	}
	if (rcode != ns_r_noerror) {
		/* SERVFAIL, REFUSED, FORMERR, ...: the name may well exist; ask again later. */
		gwu_set_err(err, errlen, "DNS error (rcode %d)", rcode);
		return GW_LOOKUP_RETRY;
	}
	if (ns_msg_count(msg, ns_s_qd) > 0) {
		if (ns_parserr(&msg, ns_s_qd, 0, &rr) < 0) {
			gwu_set_err(err, errlen, "malformed DNS question");
			return GW_LOOKUP_RETRY;
		}
		if (ns_rr_type(rr) != ns_t_mx) {
			gwu_set_err(err, errlen, "DNS answer is not for an MX query");
			return GW_LOOKUP_RETRY;
		}
	}
	count = ns_msg_count(msg, ns_s_an);
	for (i = 0; i < count; i++) {
		char host[NS_MAXDNAME];
		const unsigned char *rd;
		int used;

		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0) {
			gwu_set_err(err, errlen, "malformed DNS answer record %d", i);
			return GW_LOOKUP_RETRY;
		}
		if (ns_rr_type(rr) != ns_t_mx || ns_rr_class(rr) != ns_c_in)
			continue; /* CNAMEs on the way to the MX set, signatures, ... */
		rd = ns_rr_rdata(rr);
		if (ns_rr_rdlen(rr) < 3) {
			gwu_set_err(err, errlen, "malformed MX record (rdata length %u)",
				    (unsigned)ns_rr_rdlen(rr));
			return GW_LOOKUP_RETRY;
		}
		used = dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 2, host, sizeof host);
		if (used < 0 || (size_t)used + 2 != ns_rr_rdlen(rr)) {
			gwu_set_err(err, errlen, "malformed MX target name");
			return GW_LOOKUP_RETRY;
		}
		seen++;
		if (host[0] == '\0' || strcmp(host, ".") == 0) {
			nullmx = 1;
			continue;
		}
		for (char *p = host; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		if (!host_ok(host)) {
			bad++; /* dn_expand escapes odd bytes ("\032"); no such host is reachable */
			continue;
		}
		if (max > 0 && mx_r != NULL)
			keep_best(mx_r, max, n_r, ns_get16(rd), host);
	}
	if (nullmx) {
		*n_r = 0;
		gwu_set_err(err, errlen, "domain accepts no mail (null MX)");
		return GW_LOOKUP_NOTFOUND;
	}
	if (seen == 0) {
		*nodata_r = 1;
		gwu_set_err(err, errlen, "no MX record");
		return GW_LOOKUP_NOTFOUND;
	}
	if (seen == bad) {
		gwu_set_err(err, errlen, "no usable MX host name (%d malformed)", bad);
		return GW_LOOKUP_RETRY;
	}
	return GW_LOOKUP_FOUND;
}

gw_lookup gw_mx_parse_answer(const unsigned char *answer, size_t len, gw_mx *mx_r, size_t max, size_t *n_r,
			     char *err, size_t errlen)
{
	size_t n = 0;
	int nodata;
	gw_lookup res;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	res = parse_answer(answer, len, mx_r, max, &n, &nodata, err, errlen);
	if (n_r != NULL)
		*n_r = res == GW_LOOKUP_FOUND ? n : 0;
	return res;
}

/* RFC 5321 5.1: no MX but an address -> the domain is its own MX, preference 0. */
static gw_lookup implicit_mx(const char *domain, int64_t end, gw_mx *mx_r, size_t max, size_t *n_r, char *err,
			     size_t errlen)
{
	gwd_addr addr[1];
	size_t n = 0;
	char why[256] = "";
	gw_lookup res = gwd_host_lookup(domain, 0, end, addr, 1, &n, NULL, why, sizeof why);

	if (res == GW_LOOKUP_FOUND) {
		if (max > 0 && mx_r != NULL) {
			mx_r[0].pref = 0;
			snprintf(mx_r[0].host, sizeof mx_r[0].host, "%s", domain);
			*n_r = 1;
		}
		return GW_LOOKUP_FOUND;
	}
	if (res == GW_LOOKUP_NOTFOUND)
		gwu_set_err(err, errlen, "no MX record and no address");
	else
		gwu_set_err(err, errlen, "no MX record; address lookup: %s", why);
	return res;
}

/* Does a DNSSEC-asked address query (type) for name come back validated with at least one record? */
static int address_secure(const char *name, unsigned type, int64_t end)
{
	unsigned char *answer = NULL;
	size_t len = 0;
	int ad = 0, secure = 0;
	char why[128];
	ns_msg msg;

	if (gwd_query_dnssec(name, type, end, &answer, &len, &ad, why, sizeof why) != GW_LOOKUP_FOUND)
		return 0;
	if (ad && ns_initparse(answer, (int)len, &msg) == 0 &&
	    ns_msg_getflag(msg, ns_f_rcode) == ns_r_noerror) {
		int i, count = ns_msg_count(msg, ns_s_an);
		ns_rr rr;
		for (i = 0; i < count; i++)
			if (ns_parserr(&msg, ns_s_an, i, &rr) == 0 && (unsigned)ns_rr_type(rr) == type)
				secure = 1;
	}
	free(answer);
	return secure;
}

/* The lookup behind the public entry points; secure_r NULL: no DNSSEC asked for. */
static gw_lookup mx_lookup(const char *domain, int64_t deadline, gw_mx *mx_r, size_t max, size_t *n_r,
			   int *secure_r, char *err, size_t errlen)
{
	char name[GW_HOST_MAX + 1];
	unsigned char *answer = NULL;
	size_t len, n = 0;
	int nodata = 0;
	int64_t end = gwd_end(deadline);
	gw_lookup res;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (n_r != NULL)
		*n_r = 0;
	if (domain == NULL || (len = strnlen(domain, sizeof name)) == sizeof name) {
		gwu_set_err(err, errlen, "domain name too long");
		return GW_LOOKUP_NOTFOUND;
	}
	if (len > 0 && domain[len - 1] == '.')
		len--;
	memcpy(name, domain, len);
	name[len] = '\0';
	if (!host_ok(name) || name[0] == '.' || strstr(name, "..") != NULL) {
		gwu_set_err(err, errlen, "not a domain name");
		return GW_LOOKUP_NOTFOUND; /* no such name can exist in the DNS */
	}
	if (secure_r != NULL) {
		int ad = 0;
		res = gwd_query_dnssec(name, ns_t_mx, end, &answer, &len, &ad, err, errlen);
		*secure_r = ad;
	} else {
		res = gwd_query(name, ns_t_mx, end, &answer, &len, &nodata, err, errlen);
	}
	if (res == GW_LOOKUP_FOUND) {
		res = parse_answer(answer, len, mx_r, max, &n, &nodata, err, errlen);
		free(answer);
	}
	if (nodata) {
		n = 0;
		res = implicit_mx(name, end, mx_r, max, &n, err, errlen);
		/* The implicit MX is as secure as the denial of the MX set and the host's own address. */
		if (secure_r != NULL && *secure_r && res == GW_LOOKUP_FOUND)
			*secure_r = address_secure(name, ns_t_a, end) || address_secure(name, ns_t_aaaa, end);
	}
	if (secure_r != NULL && res != GW_LOOKUP_FOUND)
		*secure_r = 0;
	if (n_r != NULL)
		*n_r = res == GW_LOOKUP_FOUND ? n : 0;
	return res;
}

gw_lookup gw_mx_lookup_until(const char *domain, int64_t deadline, gw_mx *mx_r, size_t max, size_t *n_r,
			     char *err, size_t errlen)
{
	return mx_lookup(domain, deadline, mx_r, max, n_r, NULL, err, errlen);
}

gw_lookup gw_mx_lookup_dnssec(const char *domain, int64_t deadline, gw_mx *mx_r, size_t max, size_t *n_r,
			      int *secure_r, char *err, size_t errlen)
{
	int secure = 0;
	gw_lookup res = mx_lookup(domain, deadline, mx_r, max, n_r, &secure, err, errlen);

	if (secure_r != NULL)
		*secure_r = secure;
	return res;
}

gw_lookup gw_mx_lookup(const char *domain, gw_mx *mx_r, size_t max, size_t *n_r, char *err, size_t errlen)
{
	return gw_mx_lookup_until(domain, 0, mx_r, max, n_r, err, errlen);
}
