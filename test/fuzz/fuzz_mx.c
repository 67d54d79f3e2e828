/*
 * fuzz_mx.c - libFuzzer target: any bytes as a DNS answer to an MX query.
 * gw_mx_parse_answer must classify it (found / not found / retry) without
 * reading out of bounds, and what it reports as found must be well formed.
 */
#include <stdint.h>
#include <string.h>

#include "gw/mx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gw_mx mx[4];
	size_t n = 99, i;
	char err[256];
	gw_lookup r = gw_mx_parse_answer(data, size, mx, 4, &n, err, sizeof err);

	if (r == GW_LOOKUP_FOUND) {
		if (n == 0 || n > 4)
			__builtin_trap();
		for (i = 0; i < n; i++) {
			size_t len = strnlen(mx[i].host, sizeof mx[i].host);
			if (len == 0 || len == sizeof mx[i].host)
				__builtin_trap();
			if (i > 0 && mx[i].pref < mx[i - 1].pref)
				__builtin_trap(); /* sorted by preference */
		}
	}
	return 0;
}
