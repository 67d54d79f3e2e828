/*
 * fuzz_dir_expand.c - libFuzzer target for directory URL templates
 * (gw_dir_template_check, gw_dir_expand).
 *
 * The first byte picks the mode. Mode 0: the input is "TEMPLATE\nRECIPIENT":
 * what the check refuses must not expand, and every expansion is printable
 * ASCII without blanks (each substituted byte outside RFC 3986 unreserved is
 * percent-encoded). Other modes: the recipient is the rest of the input,
 * expanded into a fixed LDAP or HTTP template; the expansion, percent-decoded,
 * must be the template's text with the recipient as one literal: for LDAP,
 * the RFC 4515-unescaped value gives back the recipient byte for byte and
 * has no bare '(' ')' '*' '\'.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw/directory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static size_t pct_decode(const char *s, char *out)
{
	size_t o = 0;

	for (; *s != '\0'; s++) {
		if (s[0] == '%') {
			if (hexval(s[1]) < 0 || hexval(s[2]) < 0)
				abort(); /* every '%' we write starts an escape */
			out[o++] = (char)(hexval(s[1]) * 16 + hexval(s[2]));
			s += 2;
		} else {
			out[o++] = *s;
		}
	}
	return o;
}

static void printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			abort();
}

static void fixed(const char *r, size_t len, int ldap)
{
	static char out[GW_DIR_URL_MAX + 1], dec[GW_DIR_URL_MAX + 1], val[GW_DIR_URL_MAX + 1];
	const char *prefix = ldap ? "ldap://h/dc=x?dn?sub?(mail=" : "http://h/m/", *why = NULL;
	const char *tmpl = ldap ? "ldap://h/dc=x?dn?sub?(mail={rcpt})" : "http://h/m/{rcpt}";
	const char *at = NULL;
	size_t i, n, o, pl = strlen(prefix);

	for (i = 0; i < len; i++)
		if (r[i] == '@')
			at = r + i;
	if (at == NULL)
		return;
	if (gw_dir_expand(tmpl, r, (size_t)(at - r), at + 1, len - (size_t)(at - r) - 1, out, sizeof(out),
			  &why) != 0) {
		if (why == NULL)
			abort();
		return;
	}
	printable(out);
	n = pct_decode(out, dec);
	if (n < pl + (ldap ? 1 : 0) || memcmp(dec, prefix, pl) != 0)
		abort();
	if (!ldap) {
		if (n - pl != len || memcmp(dec + pl, r, len) != 0)
			abort();
		return;
	}
	if (dec[n - 1] != ')')
		abort();
	for (i = pl, o = 0; i < n - 1; i++) {
		if (dec[i] == '(' || dec[i] == ')' || dec[i] == '*')
			abort();
		if (dec[i] == '\\') {
			if (i + 2 >= n - 1 || hexval(dec[i + 1]) < 0 || hexval(dec[i + 2]) < 0)
				abort();
			val[o++] = (char)(hexval(dec[i + 1]) * 16 + hexval(dec[i + 2]));
			i += 2;
		} else {
			val[o++] = dec[i];
		}
	}
	if (o != len || memcmp(val, r, len) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char tmpl[GW_DIR_URL_MAX + 64], out[GW_DIR_URL_MAX + 1], err[256];
	const char *s = (const char *)data + 1, *nl, *at, *why = NULL;
	size_t len, tl, i;
	int ok;

	if (size < 1 || size > GW_DIR_URL_MAX)
		return 0;
	len = size - 1;
	if (data[0] % 3 != 0) {
		fixed(s, len, data[0] % 3 == 1);
		return 0;
	}
	if ((nl = memchr(s, '\n', len)) == NULL)
		return 0;
	tl = (size_t)(nl - s);
	memcpy(tmpl, s, tl);
	tmpl[tl] = '\0';
	if (memchr(tmpl, '\0', tl) != NULL)
		return 0;
	ok = gw_dir_template_check(tmpl, err, sizeof(err)) == 0;
	s = nl + 1;
	len -= tl + 1;
	at = NULL;
	for (i = 0; i < len; i++)
		if (s[i] == '@')
			at = s + i;
	if (at == NULL)
		return 0;
	if (gw_dir_expand(tmpl, s, (size_t)(at - s), at + 1, len - (size_t)(at - s) - 1, out, sizeof(out),
			  &why) == 0) {
		if (!ok)
			abort();
		printable(out);
	} else if (why == NULL) {
		abort();
	}
	return 0;
}
