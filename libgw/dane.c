/*
 * dane.c - TLSA lookup and parsing for DANE (see gw/dane.h). The parser
 * takes raw answers, so tests and the lookup share it; the lookup is one
 * DNSSEC-asked query through dns.c.
 *
 * Does not defend against: what gw/dane.h says (the AD bit is the
 * resolver's word; owner names are not compared with the query).
 */
#include <arpa/nameser.h>
#include <ctype.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "gw/dane.h"
#include "gw/nexthop.h"
#include "util.h"

#define TYPE_TLSA  52
#define ANSWER_MAX 65536

/* Is this record one RFC 7672 lets an SMTP client use? */
static int usable(unsigned usage, unsigned selector, unsigned mtype, size_t len)
{
	if (usage != GW_TLSA_DANE_TA && usage != GW_TLSA_DANE_EE)
		return 0; /* PKIX-TA/PKIX-EE: not for SMTP (RFC 7672 3.1.3) */
	if (selector > 1)
		return 0;
	switch (mtype) {
	case 0:
		return len > 0 && len <= GW_TLSA_DATA_MAX;
	case 1:
		return len == 32;
	case 2:
		return len == 64;
	default:
		return 0;
	}
}

gw_lookup gw_tlsa_parse_answer(const unsigned char *answer, size_t len, gw_tlsa *tlsa_r, size_t max,
			       size_t *n_r, size_t *seen_r, char *err, size_t errlen)
{
	ns_msg msg;
	ns_rr rr;
	int rcode, count, i;
	size_t n = 0, seen = 0;

	if (n_r != NULL)
		*n_r = 0;
	if (seen_r != NULL)
		*seen_r = 0;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (answer == NULL || len > ANSWER_MAX || ns_initparse(answer, (int)len, &msg) < 0) {
		gwu_set_err(err, errlen, "malformed DNS answer");
		return GW_LOOKUP_RETRY;
	}
	if (!ns_msg_getflag(msg, ns_f_qr) || ns_msg_getflag(msg, ns_f_tc)) {
		gwu_set_err(err, errlen, "DNS answer not a complete response");
		return GW_LOOKUP_RETRY;
	}
	rcode = ns_msg_getflag(msg, ns_f_rcode);
	if (rcode == ns_r_nxdomain) {
		gwu_set_err(err, errlen, "no TLSA record (NXDOMAIN)");
		return GW_LOOKUP_NOTFOUND;
	}
	if (rcode != ns_r_noerror) {
		/* A validating resolver answers SERVFAIL for bogus data: never read as "no TLSA". */
		gwu_set_err(err, errlen, "DNS error (rcode %d)", rcode);
		return GW_LOOKUP_RETRY;
	}
	if (ns_msg_count(msg, ns_s_qd) > 0 &&
	    (ns_parserr(&msg, ns_s_qd, 0, &rr) < 0 || ns_rr_type(rr) != TYPE_TLSA)) {
		gwu_set_err(err, errlen, "DNS answer is not for a TLSA query");
		return GW_LOOKUP_RETRY;
	}
	count = ns_msg_count(msg, ns_s_an);
	for (i = 0; i < count; i++) {
		const unsigned char *rd;
		size_t rdlen;

		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0) {
			gwu_set_err(err, errlen, "malformed DNS answer record %d", i);
			return GW_LOOKUP_RETRY;
		}
		if (ns_rr_type(rr) != TYPE_TLSA || ns_rr_class(rr) != ns_c_in)
			continue; /* CNAMEs, RRSIGs */
		seen++;
		rd = ns_rr_rdata(rr);
		rdlen = ns_rr_rdlen(rr);
		if (rdlen < 4 || !usable(rd[0], rd[1], rd[2], rdlen - 3) || tlsa_r == NULL || n >= max)
			continue;
		tlsa_r[n].usage = rd[0];
		tlsa_r[n].selector = rd[1];
		tlsa_r[n].mtype = rd[2];
		tlsa_r[n].len = rdlen - 3;
		memcpy(tlsa_r[n].data, rd + 3, rdlen - 3);
		n++;
	}
	if (seen_r != NULL)
		*seen_r = seen;
	if (seen == 0) {
		gwu_set_err(err, errlen, "no TLSA record");
		return GW_LOOKUP_NOTFOUND;
	}
	if (n_r != NULL)
		*n_r = n;
	if (n == 0)
		gwu_set_err(err, errlen, "no usable TLSA record (%zu seen)", seen);
	return GW_LOOKUP_FOUND;
}

gw_lookup gw_tlsa_lookup(const char *host, unsigned port, int64_t deadline, gw_tlsa *tlsa_r, size_t max,
			 size_t *n_r, size_t *seen_r, int *secure_r, char *err, size_t errlen)
{
	char name[GW_HOST_MAX + 24]; /* "_65535._tcp." and the host */
	unsigned char *answer = NULL;
	size_t len = 0, i;
	int ad = 0;
	gw_lookup res;

	if (n_r != NULL)
		*n_r = 0;
	if (seen_r != NULL)
		*seen_r = 0;
	if (secure_r != NULL)
		*secure_r = 0;
	if (host == NULL || host[0] == '\0' || strlen(host) > GW_HOST_MAX) {
		gwu_set_err(err, errlen, "not a host name");
		return GW_LOOKUP_NOTFOUND;
	}
	for (i = 0; host[i] != '\0'; i++)
		if (!isalnum((unsigned char)host[i]) && host[i] != '-' && host[i] != '.' && host[i] != '_') {
			gwu_set_err(err, errlen, "not a host name");
			return GW_LOOKUP_NOTFOUND;
		}
	snprintf(name, sizeof name, "_%u._tcp.%s", port != 0 ? port : 25, host);
	res = gwd_query_dnssec(name, TYPE_TLSA, gwd_end(deadline), &answer, &len, &ad, err, errlen);
	if (res != GW_LOOKUP_FOUND)
		return res;
	res = gw_tlsa_parse_answer(answer, len, tlsa_r, max, n_r, seen_r, err, errlen);
	free(answer);
	if (secure_r != NULL)
		*secure_r = res != GW_LOOKUP_RETRY && ad;
	return res;
}
