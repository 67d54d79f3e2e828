/*
 * test_dir_expand.c - directory URL templates (libgw/dir_tmpl.c): where
 * placeholders may stand, and that every substituted value is escaped for
 * its context so that no recipient changes the query: RFC 4515 then
 * percent-encoding inside an LDAP filter, percent-encoding in an HTTP path
 * or query. Hostile local parts, quotes, UTF-8, NUL and control characters.
 * The round-trip test decodes each expansion as the server would and checks
 * that the filter is the template's own with the value as one literal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gw/directory.h"

#define LDAP_T "ldap://127.0.0.1:389/ou=people,dc=example,dc=org?mail?sub?(|(mail={rcpt})(uid={local}))"
#define HTTP_T "https://idm.example.org/api/mailboxes/{rcpt}?domain={domain}"

/* Expand tmpl for "local@domain" given as one string (split at the last '@'). */
static int expand(const char *tmpl, const char *rcpt, size_t rlen, char *out, size_t size, const char **why)
{
	const char *at = NULL;
	size_t i;

	for (i = 0; i < rlen; i++)
		if (rcpt[i] == '@')
			at = rcpt + i;
	assert_non_null(at);
	return gw_dir_expand(tmpl, rcpt, (size_t)(at - rcpt), at + 1, rlen - (size_t)(at - rcpt) - 1, out,
			     size, why);
}

typedef struct ecase {
	const char *tmpl, *rcpt, *want;
} ecase;

static void test_expand_table(void **state)
{
	static const ecase cases[] = {
	    {LDAP_T, "alice@example.org",
	     "ldap://127.0.0.1:389/"
	     "ou=people,dc=example,dc=org?mail?sub?(|(mail=alice%40example.org)(uid=alice))"},
	    /* filter injection: * ( ) become \2a \28 \29, then '\' is percent-encoded */
	    {LDAP_T, "*)(uid=*@example.org",
	     "ldap://127.0.0.1:389/"
	     "ou=people,dc=example,dc=org?mail?sub?(|(mail=%5C2a%5C29%5C28uid%3D%5C2a%40example.org)"
	     "(uid=%5C2a%5C29%5C28uid%3D%5C2a))"},
	    {LDAP_T, "a\\b@example.org",
	     "ldap://127.0.0.1:389/"
	     "ou=people,dc=example,dc=org?mail?sub?(|(mail=a%5C5cb%40example.org)(uid=a%5C5cb))"},
	    /* URL structure: ? # % / and blanks in a quoted local part */
	    {LDAP_T, "\"a?b#c%d/e f\"@example.org",
	     "ldap://127.0.0.1:389/"
	     "ou=people,dc=example,dc=org?mail?sub?(|(mail=%22a%3Fb%23c%25d%2Fe%20f%22%40example.org)"
	     "(uid=%22a%3Fb%23c%25d%2Fe%20f%22))"},
	    {HTTP_T, "alice@example.org",
	     "https://idm.example.org/api/mailboxes/alice%40example.org?domain=example.org"},
	    {HTTP_T, "a%2f..@x.example",
	     "https://idm.example.org/api/mailboxes/a%252f..%40x.example?domain=x.example"},
	    {HTTP_T, "a/../../admin@x.example",
	     "https://idm.example.org/api/mailboxes/a%2F..%2F..%2Fadmin%40x.example?domain=x.example"},
	    {HTTP_T, "x&domain=evil.example@x.example",
	     "https://idm.example.org/api/mailboxes/x%26domain%3Devil.example%40x.example?domain=x.example"},
	    {HTTP_T, "'q'\"r\"@x.example",
	     "https://idm.example.org/api/mailboxes/%27q%27%22r%22%40x.example?domain=x.example"},
	    /* UTF-8 (SMTPUTF8): each byte percent-encoded, in LDAP after RFC 4515 (which leaves it) */
	    {HTTP_T, "j\xc3\xb6rg@b\xc3\xbc.example",
	     "https://idm.example.org/api/mailboxes/j%C3%B6rg%40b%C3%BC.example?domain=b%C3%BC.example"},
	    {LDAP_T, "\xe2\x82\xac*@example.org",
	     "ldap://127.0.0.1:389/ou=people,dc=example,dc=org?mail?sub?(|(mail=%E2%82%AC%5C2a%40example.org)"
	     "(uid=%E2%82%AC%5C2a))"},
	    {"http://h/{local}/{domain}", "A-Z.a_z~0@d", "http://h/A-Z.a_z~0/d"},
	};
	char out[GW_DIR_URL_MAX + 1];
	const char *why;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why = NULL;
		if (expand(cases[i].tmpl, cases[i].rcpt, strlen(cases[i].rcpt), out, sizeof(out), &why) != 0)
			fail_msg("case %zu (%s): refused: %s", i, cases[i].rcpt, why);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("case %zu (%s):\n got  %s\n want %s", i, cases[i].rcpt, out, cases[i].want);
	}
}

static void test_expand_refuses(void **state)
{
	static const struct {
		const char *rcpt;
		size_t len;
	} bad[] = {
	    {"a\0b@example.org", 15},         /* NUL inside */
	    {"a\rb@example.org", 15},         /* CR */
	    {"a\nb@example.org", 15},         /* LF */
	    {"a\tb@example.org", 15},         /* TAB */
	    {"a\x7f@example.org", 14},        /* DEL */
	    {"\xc3(@example.org", 14},        /* bad continuation */
	    {"\xc0\xaf@example.org", 14},     /* overlong '/' */
	    {"\xed\xa0\x80@example.org", 15}, /* surrogate */
	    {"\xf5\x80\x80\x80@example.org", 16},
	    {"\xc2\x85@example.org", 14}, /* C1 control (NEL) */
	    {"\xe2\x82@example.org", 14}, /* cut short */
	    {"..@example.org", 14},       /* a whole dot segment */
	    {"@example.org", 12},         /* empty local part */
	};
	char out[GW_DIR_URL_MAX + 1];
	const char *why;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		strcpy(out, "untouched");
		if (expand(HTTP_T, bad[i].rcpt, bad[i].len, out, sizeof(out), &why) == 0)
			fail_msg("case %zu: accepted, got %s", i, out);
		assert_non_null(why);
		if (expand(LDAP_T, bad[i].rcpt, bad[i].len, out, sizeof(out), &why) == 0)
			fail_msg("case %zu: accepted in LDAP, got %s", i, out);
	}
	/* too small an output buffer: refused, never cut */
	assert_int_equal(expand(HTTP_T, "alice@example.org", 17, out, 40, &why), -1);
	assert_string_equal(out, "");
	assert_non_null(strstr(why, "too long"));
}

static void test_template_check(void **state)
{
	static const char *const good[] = {
	    LDAP_T,
	    HTTP_T,
	    "ldaps://ldap.example.org/dc=example,dc=org?dn?sub?(mail={rcpt})",
	    "LDAP://ldap.example.org/dc=x?dn?sub?(mail={rcpt})?x-ext",
	    "http://127.0.0.1:8080/check?r={rcpt}",
	};
	static const struct {
		const char *t, *msg;
	} bad[] = {
	    {"", "empty"},
	    {"ftp://h/{rcpt}", "must start"},
	    {"file:///etc/{rcpt}", "must start"},
	    {"ldap://h/uid={local},dc=x?dn?sub?(objectClass=*)", "outside the LDAP filter"},
	    {"ldap://h/dc=x?{local}?sub?(mail=x)", "outside the LDAP filter"},
	    {"ldap://h/dc=x?dn?sub?(mail=x)?{rcpt}", "outside the LDAP filter"},
	    {"http://{domain}/x/{local}", "before the path"},
	    {"http://h.example?x={rcpt}", "before the path"},
	    {"http://h/{user}", "unknown placeholder"},
	    {"http://h/{rcpt", "unknown placeholder"},
	    {"http://h/x}", "stray"},
	    {"http://h/a b/{rcpt}", "blank or control"},
	    {"http://h/static", "no placeholder"},
	};
	char err[256], big[GW_DIR_URL_MAX + 20];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (gw_dir_template_check(good[i], err, sizeof(err)) != 0)
			fail_msg("%s: refused: %s", good[i], err);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (gw_dir_template_check(bad[i].t, err, sizeof(err)) == 0)
			fail_msg("%s: accepted", bad[i].t);
		if (strstr(err, bad[i].msg) == NULL)
			fail_msg("%s: got '%s', want '%s'", bad[i].t, err, bad[i].msg);
	}
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "http://h/{rcpt}", 15);
	assert_int_equal(gw_dir_template_check(big, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer"));
}

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* Percent-decode s in place (as the LDAP URL parser does). */
static void pct_decode(char *s)
{
	char *o = s;

	for (; *s != '\0'; s++) {
		if (s[0] == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
			*o++ = (char)(hexval(s[1]) * 16 + hexval(s[2]));
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/*
 * Decode the expansion as slapd would see the filter: percent-decoded, every
 * '(' ')' '*' of it is the template's own, and RFC 4515-unescaping the value
 * gives back the recipient byte for byte.
 */
static void test_ldap_round_trip(void **state)
{
	static const char *const hostile[] = {
	    "*)(uid=*@example.org", "*@example.org",     ")(|(objectClass=*)@example.org",
	    "a\\2a@example.org",    "\\@example.org",    "\"(*)\"@example.org",
	    "%2a%28@example.org",   "x%00y@example.org", "\xc3\xa9*\xc3\xa9@example.org",
	};
	const char *tmpl = "ldap://h/dc=x?dn?sub?(mail={rcpt})";
	char out[GW_DIR_URL_MAX + 1], want[512], got[512];
	const char *why, *f, *v;
	size_t i, o, k;

	(void)state;
	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		assert_int_equal(expand(tmpl, hostile[i], strlen(hostile[i]), out, sizeof(out), &why), 0);
		pct_decode(out);
		f = strstr(out, "?(mail=");
		assert_non_null(f);
		v = f + 7;
		/* the value runs to the template's closing ')' at the very end, with no special inside */
		assert_int_equal(out[strlen(out) - 1], ')');
		for (k = 0; v + k < out + strlen(out) - 1; k++)
			if (v[k] == '(' || v[k] == ')' || v[k] == '*')
				fail_msg("%s: unescaped '%c' in the filter %s", hostile[i], v[k], f + 1);
		/* unescape \XX */
		for (o = 0, k = 0; v + k < out + strlen(out) - 1; k++) {
			if (v[k] == '\\') {
				assert_true(hexval(v[k + 1]) >= 0 && hexval(v[k + 2]) >= 0);
				got[o++] = (char)(hexval(v[k + 1]) * 16 + hexval(v[k + 2]));
				k += 2;
			} else {
				got[o++] = v[k];
			}
		}
		got[o] = '\0';
		snprintf(want, sizeof(want), "%s", hostile[i]);
		if (strcmp(got, want) != 0)
			fail_msg("round trip: got '%s', want '%s'", got, want);
	}
}

static void test_escapes(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(gw_dir_ldap_escape("a*(b)\\", 6, out, sizeof(out)), 14);
	assert_string_equal(out, "a\\2a\\28b\\29\\5c");
	assert_int_equal(gw_dir_ldap_escape("a\0b", 3, out, sizeof(out)), 5);
	assert_string_equal(out, "a\\00b");
	assert_int_equal(gw_dir_ldap_escape("***", 3, out, 9), -1); /* 9 bytes + NUL do not fit in 9 */
	assert_int_equal(gw_dir_ldap_escape("***", 3, out, 10), 9);
	assert_int_equal(gw_dir_url_escape("a b/\xff", 5, out, sizeof(out)), 11);
	assert_string_equal(out, "a%20b%2F%FF");
	assert_int_equal(gw_dir_url_escape("///", 3, out, 9), -1);
	assert_int_equal(gw_dir_url_escape("", 0, out, 1), 0);
	assert_string_equal(out, "");
	assert_int_equal(gw_dir_url_escape("x", 1, out, 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_expand_table),   cmocka_unit_test(test_expand_refuses),
	    cmocka_unit_test(test_template_check), cmocka_unit_test(test_ldap_round_trip),
	    cmocka_unit_test(test_escapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
