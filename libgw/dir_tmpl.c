/*
 * dir_tmpl.c - directory URL templates: check them, and expand them with
 * every substituted value escaped for where it lands (see gw/directory.h).
 *
 * The template is the administrator's and is taken as written; only the
 * recipient's parts are escaped. Where a placeholder may stand is decided
 * from the template alone, once, by the same scan that expands it: in an
 * LDAP URL, inside the filter (after the third '?' of the path, before a
 * fourth); in an HTTP URL, after the host. A value is first checked (no NUL,
 * no control characters, valid UTF-8), then escaped: RFC 4515 and then
 * percent-encoding for an LDAP filter, percent-encoding alone for HTTP.
 *
 * Does not defend against: a template whose own text makes a bad query (its
 * author sees the directory's error in the log); placeholders in an LDAP
 * base DN (refused: DN escaping is not done).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gw/directory.h"

typedef enum tmpl_kind { TMPL_LDAP, TMPL_HTTP } tmpl_kind;

static const char *const placeholders[] = {"{rcpt}", "{local}", "{domain}"};
#define NPLACE (sizeof(placeholders) / sizeof(placeholders[0]))

/* The scheme's kind and where its authority starts; -1 if unknown. */
static int scheme_of(const char *t, tmpl_kind *kind, size_t *after)
{
	static const struct {
		const char *p;
		tmpl_kind k;
	} schemes[] = {
	    {"ldap://", TMPL_LDAP}, {"ldaps://", TMPL_LDAP}, {"http://", TMPL_HTTP}, {"https://", TMPL_HTTP}};
	size_t i;

	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t l = strlen(schemes[i].p);
		if (strncasecmp(t, schemes[i].p, l) == 0) {
			*kind = schemes[i].k;
			*after = l;
			return 0;
		}
	}
	return -1;
}

/* Which placeholder starts at p (its index), or -1. */
static int placeholder_at(const char *p)
{
	size_t i;

	for (i = 0; i < NPLACE; i++)
		if (strncmp(p, placeholders[i], strlen(placeholders[i])) == 0)
			return (int)i;
	return -1;
}

/*
 * Walk the template: for each byte, whether a placeholder may stand there.
 * The state is (kind, in path, '?' seen in the path). Returns 1 inside the
 * allowed region for the byte at t[i], updating the state with it.
 */
typedef struct walk {
	tmpl_kind kind;
	size_t authority; /* index where the authority starts */
	int in_path;
	int qmarks;
} walk;

static int walk_allowed(walk *w, const char *t, size_t i)
{
	if (!w->in_path) {
		if (i >= w->authority && t[i] == '/')
			w->in_path = 1;
		return 0;
	}
	if (w->kind == TMPL_HTTP)
		return 1;
	if (t[i] == '?') {
		w->qmarks++;
		return 0;
	}
	return w->qmarks == 3;
}

int gw_dir_template_check(const char *t, char *err, size_t errlen)
{
	walk w;
	size_t i, n;
	int k, any = 0;

	memset(&w, 0, sizeof(w));
	if (t == NULL || *t == '\0') {
		snprintf(err, errlen, "empty URL template");
		return -1;
	}
	if ((n = strlen(t)) > GW_DIR_URL_MAX) {
		snprintf(err, errlen, "URL template longer than %d bytes", GW_DIR_URL_MAX);
		return -1;
	}
	if (scheme_of(t, &w.kind, &w.authority) != 0) {
		snprintf(err, errlen, "URL template must start with ldap://, ldaps://, http:// or https://");
		return -1;
	}
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)t[i];
		int allowed;

		if (ch <= 0x20 || ch >= 0x7f) {
			snprintf(
			    err, errlen,
			    "URL template has a blank or control character or a non-ASCII byte at offset %zu",
			    i);
			return -1;
		}
		allowed = walk_allowed(&w, t, i);
		if (ch == '}') {
			snprintf(err, errlen, "URL template has a stray '}' at offset %zu", i);
			return -1;
		}
		if (ch != '{')
			continue;
		if ((k = placeholder_at(t + i)) < 0) {
			snprintf(err, errlen,
				 "URL template: unknown placeholder at offset %zu (want {rcpt}, {local} or "
				 "{domain})",
				 i);
			return -1;
		}
		if (!allowed) {
			snprintf(
			    err, errlen,
			    w.kind == TMPL_LDAP
				? "URL template: %s outside the LDAP filter (only the filter part is escaped)"
				: "URL template: %s before the path (only the path and query are escaped)",
			    placeholders[k]);
			return -1;
		}
		any = 1;
		i += strlen(placeholders[k]) - 1;
	}
	if (!any) {
		snprintf(err, errlen, "URL template has no placeholder ({rcpt}, {local} or {domain})");
		return -1;
	}
	return 0;
}

/* --- escaping --------------------------------------------------------------- */

long gw_dir_ldap_escape(const char *src, size_t len, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)src[i];
		if (ch == '*' || ch == '(' || ch == ')' || ch == '\\' || ch == '\0') {
			if (o + 3 >= size)
				return -1;
			out[o++] = '\\';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		} else {
			if (o + 1 >= size)
				return -1;
			out[o++] = (char)ch;
		}
	}
	if (o >= size)
		return -1;
	out[o] = '\0';
	return (long)o;
}

static int unreserved(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

long gw_dir_url_escape(const char *src, size_t len, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)src[i];
		if (unreserved(ch)) {
			if (o + 1 >= size)
				return -1;
			out[o++] = (char)ch;
		} else {
			if (o + 3 >= size)
				return -1;
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	if (o >= size)
		return -1;
	out[o] = '\0';
	return (long)o;
}

/* No NUL, no control characters, well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static int value_ok(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n, k;
		unsigned long cp;

		if (c < 0x20 || c == 0x7f)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (i + n >= len)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
			return 0;
		i += n + 1;
	}
	return 1;
}

/* Empty, or nothing but dots (the values are not NUL-terminated: lengths only). */
static int only_dots(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != '.')
			return 0;
	return 1;
}

int gw_dir_expand(const char *t, const char *local, size_t local_len, const char *domain, size_t domain_len,
		  char *out, size_t size, const char **why)
{
	char err[160], rcpt[2 * 1024 + 2], esc[3 * sizeof(rcpt)];
	const char *val;
	size_t i, o = 0, vl;
	walk w;
	int k;

	*why = NULL;
	if (size == 0) {
		*why = "no room for the URL";
		return -1;
	}
	if (gw_dir_template_check(t, err, sizeof(err)) != 0) {
		*why = "bad URL template";
		return -1;
	}
	if (local_len + domain_len + 1 >= sizeof(rcpt)) {
		*why = "recipient too long";
		return -1;
	}
	if (!value_ok((const unsigned char *)local, local_len) ||
	    !value_ok((const unsigned char *)domain, domain_len)) {
		*why = "recipient has NUL, control characters or invalid UTF-8";
		return -1;
	}
	/* "." or ".." as a whole path segment would be removed or climb a level in an HTTP URL. */
	if (only_dots(local, local_len) || only_dots(domain, domain_len)) {
		*why = "recipient part is empty or only dots";
		return -1;
	}
	memcpy(rcpt, local, local_len);
	rcpt[local_len] = '@';
	memcpy(rcpt + local_len + 1, domain, domain_len);
	memset(&w, 0, sizeof(w));
	(void)scheme_of(t, &w.kind, &w.authority);
	for (i = 0; t[i] != '\0'; i++) {
		(void)walk_allowed(&w, t, i);
		if (t[i] != '{' || (k = placeholder_at(t + i)) < 0) {
			if (o + 1 >= size)
				goto full;
			out[o++] = t[i];
			continue;
		}
		val = k == 0 ? rcpt : k == 1 ? local : domain;
		vl = k == 0 ? local_len + 1 + domain_len : k == 1 ? local_len : domain_len;
		if (w.kind == TMPL_LDAP) {
			long el = gw_dir_ldap_escape(val, vl, esc, sizeof(esc));
			if (el < 0)
				goto full;
			val = esc;
			vl = (size_t)el;
		}
		{
			long ul = gw_dir_url_escape(val, vl, out + o, size - o);
			if (ul < 0)
				goto full;
			o += (size_t)ul;
		}
		i += strlen(placeholders[k]) - 1;
	}
	out[o] = '\0';
	return 0;
full:
	out[0] = '\0';
	*why = "expanded URL too long";
	return -1;
}
