/*
 * test_proxy_dane.c - gw-proxy's STARTTLS terms per destination (proxy/dane.c):
 * the level of a recipient domain (tls_domain_policy, else tls), the
 * reduction of dane and dane-only for destinations known by address, the
 * terms for an MX host without DNS (no DNSSEC: dane falls back to may,
 * dane-only refuses the host), and the configuration errors of the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dane.h"
#include "proxy_conf.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/gw-proxy-dane.XXXXXX");
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

/* gw-proxy.conf with lines; NULL with err when it does not load. */
static gwp_config *conf_with(const char *lines, char *err, size_t errlen)
{
	char path[128], text[1024];

	snprintf(text, sizeof(text), "listen = [127.0.0.1]:10026\nlog = stderr\n%s", lines);
	write_file("gw-proxy.conf", text);
	snprintf(path, sizeof(path), "%s/gw-proxy.conf", dir);
	return gwp_config_load(path, err, errlen);
}

static void test_levels(void **state)
{
	char lines[300], err[600];
	gwp_config *c;

	(void)state;
	write_file("domains", "bank.example dane-only\n.example.org dane\nlegacy.example none\n");
	snprintf(lines, sizeof(lines), "tls = verify\ntls_domain_policy = %s/domains\n", dir);
	if ((c = conf_with(lines, err, sizeof(err))) == NULL)
		fail_msg("config: %s", err);
	assert_int_equal(gwp_dane_level(c, "bank.example"), GW_TLS_LEVEL_DANE_ONLY);
	assert_int_equal(gwp_dane_level(c, "BANK.example"), GW_TLS_LEVEL_DANE_ONLY);
	assert_int_equal(gwp_dane_level(c, "mx.example.org"), GW_TLS_LEVEL_DANE);
	assert_int_equal(gwp_dane_level(c, "example.org"), GW_TLS_LEVEL_VERIFY); /* ".x" is subdomains only */
	assert_int_equal(gwp_dane_level(c, "legacy.example"), GW_TLS_LEVEL_NONE);
	assert_int_equal(gwp_dane_level(c, "other.test"), GW_TLS_LEVEL_VERIFY);
	gwp_config_free(&c);
	if ((c = conf_with("tls = dane-only\n", err, sizeof(err))) == NULL)
		fail_msg("config: %s", err);
	assert_int_equal(gwp_dane_level(c, "other.test"), GW_TLS_LEVEL_DANE_ONLY);
	gwp_config_free(&c);
}

/* Addresses have no MX name and no DNSSEC: dane is may, dane-only encrypt (never plain text). */
static void test_address_policy(void **state)
{
	(void)state;
	assert_int_equal(gwp_dane_address_policy(GW_TLS_LEVEL_DANE), GW_TLS_MAY);
	assert_int_equal(gwp_dane_address_policy(GW_TLS_LEVEL_DANE_ONLY), GW_TLS_ENCRYPT);
	assert_int_equal(gwp_dane_address_policy(GW_TLS_LEVEL_VERIFY), GW_TLS_VERIFY);
	assert_int_equal(gwp_dane_address_policy(GW_TLS_LEVEL_NONE), GW_TLS_NONE);
}

/* An MX answer that was not validated: no TLSA lookup at all (no DNS needed here). */
static void test_host_unsigned_mx(void **state)
{
	gwp_tls_terms t;
	char why[300];

	(void)state;
	memset(&t, 0, sizeof(t));
	assert_int_equal(gwp_dane_host(GW_TLS_LEVEL_DANE, 0, "mx.example", 25, 0, &t, why, sizeof(why)), 0);
	assert_int_equal(t.policy, GW_TLS_MAY);
	assert_int_equal(t.state, GW_DANE_UNSIGNED_MX);
	assert_int_equal(t.ntlsa, 0);
	assert_int_equal(gwp_dane_host(GW_TLS_LEVEL_DANE_ONLY, 0, "mx.example", 25, 0, &t, why, sizeof(why)),
			 -1);
	assert_non_null(strstr(why, "not DNSSEC-validated"));
	assert_int_equal(gwp_dane_host(GW_TLS_LEVEL_ENCRYPT, 1, "mx.example", 25, 0, &t, why, sizeof(why)),
			 0);
	assert_int_equal(t.policy, GW_TLS_ENCRYPT);
	assert_int_equal(t.state, GW_DANE_OFF);
}

static void test_conf_errors(void **state)
{
	char lines[300], err[600];
	gwp_config *c;

	(void)state;
	write_file("bad", "ok.example may\nx.example dane-sometimes\n");
	snprintf(lines, sizeof(lines), "tls_domain_policy = %s/bad\n", dir);
	c = conf_with(lines, err, sizeof(err));
	assert_null(c);
	if (strstr(err, "gw-proxy.conf:3: tls_domain_policy: ") == NULL ||
	    strstr(err, "/bad:2: unknown policy") == NULL)
		fail_msg("got \"%s\"", err);
	snprintf(lines, sizeof(lines), "tls_domain_policy = %s/missing\n", dir);
	assert_null(conf_with(lines, err, sizeof(err)));
	assert_non_null(strstr(err, "gw-proxy.conf:3: tls_domain_policy: "));
	assert_null(conf_with("tls = dane-sometimes\n", err, sizeof(err)));
	assert_non_null(strstr(err, "gw-proxy.conf:3"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_levels),
	    cmocka_unit_test(test_address_policy),
	    cmocka_unit_test(test_host_unsigned_mx),
	    cmocka_unit_test(test_conf_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
