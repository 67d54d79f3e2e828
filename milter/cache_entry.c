/*
 * cache_entry.c - the shared call-ahead cache's stream entries (see cache_entry.h).
 */
#include <stdio.h>
#include <string.h>

#include "cache_entry.h"

enum { F_GW, F_KEY, F_VERDICT, F_CODE, F_ENH, F_TEXT, F_EXPIRES, F_N };
static const char *const names[F_N] = {"gw", "k", "v", "c", "e", "t", "x"};

static int is_ctl(unsigned char ch)
{
	return ch < 0x20 || ch == 0x7f;
}

static int gw_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > GWM_CE_GW_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '-' || ch == '_'))
			return 0;
	}
	return 1;
}

/* A call-ahead cache key: no control characters, the domain after the last "@" in lower case. */
static int key_ok(const char *s, size_t n)
{
	const char *at = NULL;
	size_t i;

	if (n == 0 || n > GWM_CE_KEY_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		if (is_ctl((unsigned char)s[i]))
			return 0;
		if (s[i] == '@')
			at = s + i;
	}
	for (const char *p = at != NULL ? at : s + n; p < s + n; p++)
		if (*p >= 'A' && *p <= 'Z')
			return 0;
	return 1;
}

static int text_ok(const char *s, size_t n)
{
	size_t i;

	if (n > GWM_CE_TEXT_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (is_ctl((unsigned char)s[i]))
			return 0;
	return 1;
}

/* "" or D.D{1,3}.D{1,3} */
static int enh_ok(const char *s, size_t n)
{
	size_t i = 0, part, dots;

	if (n == 0)
		return 1;
	if (n > GWM_CE_ENH_MAX)
		return 0;
	for (dots = 0; dots < 3; dots++) {
		for (part = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			part++;
		if (part == 0 || part > 3 || (dots == 0 && part != 1))
			return 0;
		if (dots < 2) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
	}
	return i == n;
}

/* Decimal digits only, 1 to 18 of them (no sign, no overflow). -1 if not. */
static int64_t number(const char *s, size_t n)
{
	int64_t v = 0;
	size_t i;

	if (n == 0 || n > 18)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int gwm_ce_parse(const char *const *f, const size_t *len, size_t n, gwm_ce *e)
{
	const char *val[F_N] = {0};
	size_t vlen[F_N] = {0};
	size_t i;
	int k;
	int64_t code;

	memset(e, 0, sizeof(*e));
	if (f == NULL || len == NULL || n % 2 != 0)
		return -1;
	for (i = 0; i < n; i += 2) {
		if (f[i] == NULL || f[i + 1] == NULL)
			return -1;
		for (k = 0; k < F_N; k++)
			if (len[i] == strlen(names[k]) && memcmp(f[i], names[k], len[i]) == 0)
				break;
		if (k == F_N)
			continue; /* a field of a newer writer */
		if (val[k] != NULL)
			return -1; /* twice */
		val[k] = f[i + 1];
		vlen[k] = len[i + 1];
	}
	for (k = 0; k < F_N; k++)
		if (val[k] == NULL)
			return -1;
	if (!gw_ok(val[F_GW], vlen[F_GW]) || !key_ok(val[F_KEY], vlen[F_KEY]) ||
	    !enh_ok(val[F_ENH], vlen[F_ENH]) || !text_ok(val[F_TEXT], vlen[F_TEXT]))
		return -1;
	if (vlen[F_VERDICT] == 5 && memcmp(val[F_VERDICT], "valid", 5) == 0)
		e->kind = GW_CACHE_POSITIVE;
	else if (vlen[F_VERDICT] == 7 && memcmp(val[F_VERDICT], "unknown", 7) == 0)
		e->kind = GW_CACHE_NEGATIVE;
	else
		return -1;
	code = vlen[F_CODE] == 3 ? number(val[F_CODE], 3) : -1;
	if (e->kind == GW_CACHE_POSITIVE ? code != 250 && code != 251
					 : code < 500 || code > 599 || code == 552)
		return -1;
	if ((e->expires_ms = number(val[F_EXPIRES], vlen[F_EXPIRES])) <= 0)
		return -1;
	e->code = (int)code;
	memcpy(e->gw, val[F_GW], vlen[F_GW]);
	memcpy(e->key, val[F_KEY], vlen[F_KEY]);
	memcpy(e->enh, val[F_ENH], vlen[F_ENH]);
	memcpy(e->text, val[F_TEXT], vlen[F_TEXT]);
	return 0;
}

int64_t gwm_ce_ttl(const gwm_ce *e, int64_t now_ms, uint32_t pos_ttl_ms, uint32_t neg_ttl_ms)
{
	int64_t max = e->kind == GW_CACHE_POSITIVE ? pos_ttl_ms : neg_ttl_ms;
	int64_t left;

	if (e->expires_ms > now_ms && e->expires_ms - now_ms > GWM_CE_AHEAD_MAX)
		return -1;
	if (e->expires_ms <= now_ms)
		return 0;
	left = e->expires_ms - now_ms;
	return left < max ? left : max;
}

int gwm_ce_fields(const gwm_ce *e, char num[2][24], const char *out[14])
{
	const char *chk[14];
	size_t len[14];
	gwm_ce back;
	int i;

	snprintf(num[0], 24, "%d", e->code);
	snprintf(num[1], 24, "%lld", (long long)e->expires_ms);
	out[0] = "gw";
	out[1] = e->gw;
	out[2] = "k";
	out[3] = e->key;
	out[4] = "v";
	out[5] = e->kind == GW_CACHE_POSITIVE ? "valid" : "unknown";
	out[6] = "c";
	out[7] = num[0];
	out[8] = "e";
	out[9] = e->enh;
	out[10] = "t";
	out[11] = e->text;
	out[12] = "x";
	out[13] = num[1];
	for (i = 0; i < 14; i++) {
		chk[i] = out[i];
		len[i] = strlen(out[i]);
	}
	return gwm_ce_parse(chk, len, 14, &back);
}
