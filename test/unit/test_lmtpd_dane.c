/*
 * test_lmtpd_dane.c - gw-lmtpd's dane and dane-only levels without the
 * network: the decision table of dane_policy.h row by row, the hop hook for
 * hosts whose MX set was not validated (no DNS is asked then), what the log
 * says after delivery, and the two words in tls_policy files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "dane_policy.h"
#include "gw/domain_tls.h"

static void test_decide_table(void **state)
{
	static const struct {
		gw_tls_level level;
		int mx_secure;
		gw_lookup lk;
		int tlsa_secure;
		size_t nusable;
		int rc;
		gw_tls_policy policy;
		gw_dane_state st;
		const char *why; /* a piece of the reason when the host is not tried */
	} cases[] = {
	    /* not a DANE level: the level is the client's policy */
	    {GW_TLS_LEVEL_VERIFY, 1, GW_LOOKUP_FOUND, 1, 1, 0, GW_TLS_VERIFY, GW_DANE_OFF, NULL},
	    {GW_TLS_LEVEL_NONE, 0, GW_LOOKUP_FOUND, 1, 1, 0, GW_TLS_NONE, GW_DANE_OFF, NULL},
	    /* MX set not validated */
	    {GW_TLS_LEVEL_DANE, 0, GW_LOOKUP_FOUND, 1, 1, 0, GW_TLS_MAY, GW_DANE_UNSIGNED_MX, NULL},
	    {GW_TLS_LEVEL_DANE_ONLY, 0, GW_LOOKUP_FOUND, 1, 1, -1, GW_TLS_MAY, GW_DANE_UNSIGNED_MX,
	     "not DNSSEC"},
	    /* TLSA lookup failed: never read as "no TLSA", under either level */
	    {GW_TLS_LEVEL_DANE, 1, GW_LOOKUP_RETRY, 0, 0, -1, GW_TLS_MAY, GW_DANE_LOOKUP_FAILED,
	     "TLSA lookup"},
	    {GW_TLS_LEVEL_DANE_ONLY, 1, GW_LOOKUP_RETRY, 0, 0, -1, GW_TLS_MAY, GW_DANE_LOOKUP_FAILED,
	     "TLSA lookup"},
	    /* validated denial of TLSA */
	    {GW_TLS_LEVEL_DANE, 1, GW_LOOKUP_NOTFOUND, 1, 0, 0, GW_TLS_MAY, GW_DANE_NO_TLSA, NULL},
	    {GW_TLS_LEVEL_DANE_ONLY, 1, GW_LOOKUP_NOTFOUND, 1, 0, -1, GW_TLS_MAY, GW_DANE_NO_TLSA, "no TLSA"},
	    /* TLSA (or its absence) not validated */
	    {GW_TLS_LEVEL_DANE, 1, GW_LOOKUP_FOUND, 0, 1, 0, GW_TLS_MAY, GW_DANE_UNSIGNED_TLSA, NULL},
	    {GW_TLS_LEVEL_DANE, 1, GW_LOOKUP_NOTFOUND, 0, 0, 0, GW_TLS_MAY, GW_DANE_UNSIGNED_TLSA, NULL},
	    {GW_TLS_LEVEL_DANE_ONLY, 1, GW_LOOKUP_FOUND, 0, 1, -1, GW_TLS_MAY, GW_DANE_UNSIGNED_TLSA,
	     "not DNSSEC"},
	    /* validated, nothing usable: encrypt without authentication (RFC 7672 2.2) */
	    {GW_TLS_LEVEL_DANE, 1, GW_LOOKUP_FOUND, 1, 0, 0, GW_TLS_ENCRYPT, GW_DANE_UNUSABLE, NULL},
	    {GW_TLS_LEVEL_DANE_ONLY, 1, GW_LOOKUP_FOUND, 1, 0, -1, GW_TLS_ENCRYPT, GW_DANE_UNUSABLE,
	     "usable"},
	    /* validated, usable */
	    {GW_TLS_LEVEL_DANE, 1, GW_LOOKUP_FOUND, 1, 2, 0, GW_TLS_DANE, GW_DANE_TLSA, NULL},
	    {GW_TLS_LEVEL_DANE_ONLY, 1, GW_LOOKUP_FOUND, 1, 1, 0, GW_TLS_DANE, GW_DANE_TLSA, NULL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		gw_tls_policy pol = (gw_tls_policy)99;
		gw_dane_state st = (gw_dane_state)99;
		char why[256] = "x";
		int rc = gw_dane_decide(cases[i].level, cases[i].mx_secure, cases[i].lk, cases[i].tlsa_secure,
					cases[i].nusable, "_25._tcp.mx.test", "SERVFAIL", &pol, &st, why,
					sizeof why);

		if (rc != cases[i].rc || st != cases[i].st || (rc == 0 && pol != cases[i].policy))
			fail_msg("case %zu: got rc=%d policy=%d state=%s, want rc=%d policy=%d state=%s", i,
				 rc, (int)pol, gwl_dane_word(st), cases[i].rc, (int)cases[i].policy,
				 gwl_dane_word(cases[i].st));
		if (rc == 0 && why[0] != '\0')
			fail_msg("case %zu: a reason for a host that is tried: %s", i, why);
		if (rc != 0 && strstr(why, cases[i].why) == NULL)
			fail_msg("case %zu: reason \"%s\" lacks \"%s\"", i, why, cases[i].why);
	}
}

/* Without a validated MX set the hook asks no DNS: the host is opportunistic, or refused under dane-only. */
static void test_hop_unsigned(void **state)
{
	static gwl_dane_ctx c; /* large: not on the stack */
	gw_nexthop hop;
	gw_tls_policy pol;
	const gw_tlsa *t = NULL;
	size_t n = 7;
	char why[256];

	(void)state;
	memset(&c, 0, sizeof c);
	c.level = GW_TLS_LEVEL_DANE;
	c.mx_secure = 0;
	c.port = 25;
	memset(&hop, 0, sizeof hop);
	hop.kind = GW_HOP_INET;
	hop.port = 2525;
	snprintf(hop.host, sizeof hop.host, "mx.unsigned.test");
	pol = GW_TLS_VERIFY;
	assert_int_equal(gwl_dane_hop(&c, &hop, &pol, &t, &n, why, sizeof why), 0);
	assert_int_equal(pol, GW_TLS_MAY);
	assert_null(t);
	assert_int_equal(n, 7); /* untouched: no records for a may host */
	assert_int_equal(gwl_dane_outcome(&c, "mx.unsigned.test:2525", "TLSv1.3 X"), GW_DANE_UNSIGNED_MX);
	assert_string_equal(gwl_dane_word(gwl_dane_outcome(&c, "mx.unsigned.test:2525", "")), "unsigned-mx");

	c.level = GW_TLS_LEVEL_DANE_ONLY;
	assert_int_equal(gwl_dane_hop(&c, &hop, &pol, &t, &n, why, sizeof why), -1);
	assert_non_null(strstr(why, "dane-only"));
	assert_int_equal(c.nhop, 1); /* the same host again: one entry, the last word */

	/* A unix-socket next hop has no TLSA, whatever the MX set. */
	c.mx_secure = 1;
	c.level = GW_TLS_LEVEL_DANE;
	memset(&hop, 0, sizeof hop);
	hop.kind = GW_HOP_UNIX;
	snprintf(hop.path, sizeof hop.path, "/run/x");
	assert_int_equal(gwl_dane_hop(&c, &hop, &pol, &t, &n, why, sizeof why), 0);
	assert_int_equal(pol, GW_TLS_MAY);
	assert_int_equal(c.nhop, 2);
}

/* After delivery: a host with usable TLSA is verified only when a TLS session came up. */
static void test_outcome(void **state)
{
	static gwl_dane_ctx c;
	int s;

	(void)state;
	memset(&c, 0, sizeof c);
	c.level = GW_TLS_LEVEL_DANE;
	c.nhop = 2;
	snprintf(c.hop[0].gateway, sizeof c.hop[0].gateway, "mx1.test:25");
	c.hop[0].state = GW_DANE_TLSA;
	snprintf(c.hop[1].gateway, sizeof c.hop[1].gateway, "mx2.test:25");
	c.hop[1].state = GW_DANE_NO_TLSA;
	assert_int_equal(gwl_dane_outcome(&c, "mx1.test:25", "TLSv1.3 TLS_AES_256_GCM_SHA384"),
			 GW_DANE_VERIFIED);
	assert_int_equal(gwl_dane_outcome(&c, "mx1.test:25", ""), GW_DANE_FAILED);
	assert_int_equal(gwl_dane_outcome(&c, "mx2.test:25", "TLSv1.3 X"), GW_DANE_NO_TLSA);
	assert_int_equal(gwl_dane_outcome(&c, "", ""), GW_DANE_OFF); /* no host tried: DANE had no say */
	assert_string_equal(gwl_dane_word(GW_DANE_VERIFIED), "verified");
	assert_string_equal(gwl_dane_word(GW_DANE_OFF), "");
	for (s = GW_DANE_UNSIGNED_MX; s <= GW_DANE_FAILED; s++) {
		const char *w = gwl_dane_word((gw_dane_state)s);
		assert_true(w[0] != '\0' && strcmp(w, "unknown") != 0 && strchr(w, ' ') == NULL);
	}
}

/* dane and dane-only in tls_policy files, in any case; the error lists them. */
static void test_policy_words(void **state)
{
	static const char text[] = "dane.test dane\n.only.test DANE-ONLY\nverify.test verify\n";
	char err[256] = "";
	gw_domain_tls *t = gw_domain_tls_parse(text, strlen(text), "policy", err, sizeof err);
	gw_tls_level l;

	(void)state;
	assert_non_null(t);
	assert_int_equal(gw_domain_tls_lookup(t, "dane.test", GW_TLS_LEVEL_MAY), GW_TLS_LEVEL_DANE);
	assert_int_equal(gw_domain_tls_lookup(t, "a.only.test", GW_TLS_LEVEL_MAY), GW_TLS_LEVEL_DANE_ONLY);
	assert_int_equal(gw_domain_tls_lookup(t, "only.test", GW_TLS_LEVEL_MAY), GW_TLS_LEVEL_MAY);
	assert_int_equal(gw_domain_tls_lookup(t, "verify.test", GW_TLS_LEVEL_DANE), GW_TLS_LEVEL_VERIFY);
	assert_int_equal(gw_domain_tls_lookup(t, "other.test", GW_TLS_LEVEL_DANE_ONLY),
			 GW_TLS_LEVEL_DANE_ONLY);
	gw_domain_tls_free(&t);

	t = gw_domain_tls_parse("x.test dane-sometimes\n", 22, "policy", err, sizeof err);
	assert_null(t);
	assert_non_null(strstr(err, "policy:1: unknown policy \"dane-sometimes\""));
	assert_non_null(strstr(err, "dane-only"));

	assert_int_equal(gw_tls_level_parse("Dane", &l), 0);
	assert_int_equal(l, GW_TLS_LEVEL_DANE);
	assert_int_equal(gw_tls_level_parse("dane-only", &l), 0);
	assert_int_equal(l, GW_TLS_LEVEL_DANE_ONLY);
	assert_int_equal(gw_tls_level_parse("daneonly", &l), -1);
	assert_string_equal(gw_tls_level_str(GW_TLS_LEVEL_DANE_ONLY), "dane-only");
	assert_string_equal(gw_tls_level_str(GW_TLS_LEVEL_ENCRYPT), "encrypt");
	/* The client's own levels keep their numbers: gw-lmtpd.conf's tls maps onto both. */
	assert_int_equal((int)GW_TLS_LEVEL_VERIFY, (int)GW_TLS_VERIFY);
	assert_int_equal((int)GW_TLS_LEVEL_DANE, (int)GW_TLS_DANE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decide_table),
	    cmocka_unit_test(test_hop_unsigned),
	    cmocka_unit_test(test_outcome),
	    cmocka_unit_test(test_policy_words),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
