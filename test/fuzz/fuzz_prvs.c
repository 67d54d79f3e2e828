/*
 * fuzz_prvs.c - libFuzzer target for the PRVS parser: gw_prvs_verify,
 * gw_prvs_strip and gw_prvs_sign on arbitrary bytes, checking that they agree
 * with each other (verify's result vs strip's, sign-then-verify round trip).
 *
 * Does not cover: the key file reader (its input is trusted, mode 0600).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw/prvs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DAY 20780L

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static gw_prvs_ring *ring;
	char in[600], orig[GW_PRVS_ADDR_MAX + 1], stripped[GW_PRVS_ADDR_MAX + 1], tag[GW_PRVS_ADDR_MAX + 1];
	gw_prvs_result r;
	long day;
	int s;

	if (ring == NULL) {
		ring = gw_prvs_ring_new();
		if (ring == NULL || gw_prvs_ring_add(ring, 1, "secret", 6) < 0 ||
		    gw_prvs_ring_add(ring, 7, "another secret", 14) < 0 ||
		    gw_prvs_ring_set_signing(ring, 7) < 0)
			abort();
	}
	if (size < 1 || size >= sizeof(in))
		return 0;
	/* The first byte moves the day about, so the expiry window and its wrap are reached too. */
	day = DAY + data[0] * 4;
	memcpy(in, data + 1, size - 1);
	in[size - 1] = '\0';

	r = gw_prvs_verify(ring, day, in, orig, sizeof(orig));
	s = gw_prvs_strip(in, stripped, sizeof(stripped));
	switch (r) {
	case GW_PRVS_VALID:
	case GW_PRVS_EXPIRED:
	case GW_PRVS_BAD_SIGNATURE:
	case GW_PRVS_UNKNOWN_KEY:
		if (s != 1 || strcmp(orig, stripped) != 0)
			abort();
		break;
	case GW_PRVS_NOT_TAGGED:
		if (s != 0 || strcmp(orig, in) != 0 || strcmp(stripped, in) != 0)
			abort();
		break;
	case GW_PRVS_MALFORMED:
		if (s != -1 || orig[0] != '\0')
			abort();
		break;
	case GW_PRVS_ERROR:
		/* Only an untagged address too long for the output buffer. */
		if (strlen(in) < sizeof(orig) || s != -1)
			abort();
		break;
	default:
		abort();
	}

	s = gw_prvs_sign(ring, day, in, 0, tag, sizeof(tag), NULL);
	if (s == GW_PRVS_SIGNED) {
		if (gw_prvs_verify(ring, day, tag, orig, sizeof(orig)) != GW_PRVS_VALID ||
		    strcmp(orig, in) != 0)
			abort();
		if (gw_prvs_verify(ring, day + GW_PRVS_LIFETIME + 1, tag, orig, sizeof(orig)) !=
		    GW_PRVS_EXPIRED)
			abort();
	} else if (s == GW_PRVS_UNSIGNED && strcmp(tag, in) != 0) {
		abort();
	}
	return 0;
}
