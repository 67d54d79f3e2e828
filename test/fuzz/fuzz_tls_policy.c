/*
 * fuzz_tls_policy.c - libFuzzer target: any bytes as a per-domain STARTTLS policy
 * file (gw/domain_tls.h, gw-lmtpd's and gw-proxy's). Parsing must fail with a message naming a line, or give
 * a table whose lookups return one of the levels.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw/domain_tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const domains[] = {"example.com", "a.b.example.com", "EXAMPLE.COM", "", ".", "x"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "";
	gw_domain_tls *t = gw_domain_tls_parse((const char *)data, size, "fuzz", err, sizeof err);
	size_t i;

	if (t == NULL) {
		if (err[0] == '\0' || strnlen(err, sizeof err) == sizeof err || strncmp(err, "fuzz", 4) != 0)
			abort();
		return 0;
	}
	for (i = 0; i < sizeof(domains) / sizeof(domains[0]); i++) {
		gw_tls_level p = gw_domain_tls_lookup(t, domains[i], GW_TLS_LEVEL_MAY);
		if (strcmp(gw_tls_level_str(p), "unknown") == 0)
			abort();
	}
	gw_domain_tls_free(&t);
	return 0;
}
