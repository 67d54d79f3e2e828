/*
 * fuzz_tls_policy.c - libFuzzer target: any bytes as gw-lmtpd's tls_policy
 * file. Parsing must fail with a message naming a line, or give a table
 * whose lookups return one of the four policies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const domains[] = {"example.com", "a.b.example.com", "EXAMPLE.COM", "", ".", "x"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "";
	gwl_tls_policy *t = gwl_tls_policy_parse((const char *)data, size, "fuzz", err, sizeof err);
	size_t i;

	if (t == NULL) {
		if (err[0] == '\0' || strnlen(err, sizeof err) == sizeof err || strncmp(err, "fuzz", 4) != 0)
			abort();
		return 0;
	}
	for (i = 0; i < sizeof(domains) / sizeof(domains[0]); i++) {
		gwl_tls_level p = gwl_tls_policy_lookup(t, domains[i], GWL_TLS_MAY);
		if (strcmp(gwl_tls_level_str(p), "unknown") == 0)
			abort();
	}
	gwl_tls_policy_free(&t);
	return 0;
}
