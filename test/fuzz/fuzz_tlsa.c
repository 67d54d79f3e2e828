/*
 * fuzz_tlsa.c - libFuzzer target: any bytes as a DNS answer to a TLSA query.
 * gw_tlsa_parse_answer must classify it (found / not found / retry) without
 * reading out of bounds, and every record it reports as usable must be one
 * RFC 7672 lets a client use.
 */
#include <stdint.h>
#include <string.h>

#include "gw/dane.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static gw_tlsa t[3];
	size_t n = 99, seen = 99, i;
	char err[256];
	gw_lookup r = gw_tlsa_parse_answer(data, size, t, 3, &n, &seen, err, sizeof err);

	if (r != GW_LOOKUP_FOUND && n != 0)
		__builtin_trap();
	if (r == GW_LOOKUP_FOUND && (seen == 0 || n > 3 || n > seen))
		__builtin_trap();
	for (i = 0; i < n; i++) {
		if (t[i].usage != GW_TLSA_DANE_TA && t[i].usage != GW_TLSA_DANE_EE)
			__builtin_trap();
		if (t[i].selector > 1 || t[i].mtype > 2 || t[i].len == 0 || t[i].len > GW_TLSA_DATA_MAX)
			__builtin_trap();
		if ((t[i].mtype == 1 && t[i].len != 32) || (t[i].mtype == 2 && t[i].len != 64))
			__builtin_trap();
	}
	if (strnlen(err, sizeof err) == sizeof err)
		__builtin_trap();
	return 0;
}
