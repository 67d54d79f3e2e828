/*
 * fuzz_milter_cache_entry.c - libFuzzer target: any bytes as the fields of a
 * shared call-ahead cache stream entry (milter/cache_entry.c), split at each
 * '\n' into name, value, name, value ... (values may hold any other byte,
 * NUL included). A refused entry is fine; an accepted one must keep every
 * promise of the header (lengths, alphabets, verdict and code, expiry > 0),
 * write fields that parse back to the same entry, and give a TTL within the
 * bounds it was given.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELDS_MAX 40

static void no_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *f[FIELDS_MAX];
	size_t len[FIELDS_MAX], n = 0, start = 0, i;
	const char *out[14];
	size_t olen[14];
	char num[2][24];
	gwm_ce e, back;
	int64_t ttl, now = 1800000000000LL;

	for (i = 0; i <= size && n < FIELDS_MAX; i++) {
		if (i == size || data[i] == '\n') {
			f[n] = (const char *)data + start;
			len[n++] = i - start;
			start = i + 1;
		}
	}
	if (gwm_ce_parse(f, len, n, &e) != 0)
		return 0;
	if (strlen(e.gw) == 0 || strlen(e.gw) > GWM_CE_GW_MAX || strlen(e.key) == 0 ||
	    strlen(e.key) > GWM_CE_KEY_MAX || strlen(e.enh) > GWM_CE_ENH_MAX ||
	    strlen(e.text) > GWM_CE_TEXT_MAX || e.expires_ms <= 0)
		abort();
	no_ctl(e.gw);
	no_ctl(e.key);
	no_ctl(e.enh);
	no_ctl(e.text);
	if (e.kind == GW_CACHE_POSITIVE
		? e.code != 250 && e.code != 251
		: e.kind != GW_CACHE_NEGATIVE || e.code < 500 || e.code > 599 || e.code == 552)
		abort();
	if (gwm_ce_fields(&e, num, out) != 0)
		abort();
	for (i = 0; i < 14; i++)
		olen[i] = strlen(out[i]);
	if (gwm_ce_parse(out, olen, 14, &back) != 0 || memcmp(&e, &back, sizeof(e)) != 0)
		abort();
	ttl = gwm_ce_ttl(&e, now, 3600000, 600000);
	if (ttl < -1 || ttl > (e.kind == GW_CACHE_POSITIVE ? 3600000 : 600000))
		abort();
	if (ttl == -1 && e.expires_ms - now <= GWM_CE_AHEAD_MAX)
		abort();
	if (ttl == 0 && e.expires_ms > now)
		abort();
	return 0;
}
