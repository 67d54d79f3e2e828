/*
 * route.c - route files in Postfix transport(5) syntax, lookup with parent
 * domain fallback, loop detection and next-hop expansion.
 *
 * A file is read whole, split into logical entries (a line that starts with
 * blanks continues the previous entry, '#' lines and blank lines are
 * skipped, as in Postfix maps), and each entry "key transport:nexthop" goes
 * into a hash map (hmap.h), so a lookup costs at most one hash probe per
 * label of the domain plus one for "*".
 *
 * Choices where Postfix leaves room:
 *  - "smtp:" or "relay:" with an empty next hop means "the recipient domain
 *    itself": it is stored as one non-literal hop whose host is the key
 *    without its leading dot (".example.com" -> "example.com"). For the key
 *    "*" there is no domain to use, so the route has has_proto 1 and no hops;
 *    gw_route_expand() answers NOTFOUND for it and the caller must use the
 *    recipient domain. "lmtp:" needs a next hop.
 *  - An empty transport (":[10.0.0.5]") means "smtp". Transport names are
 *    lowercased and may hold letters, digits, '-' and '_'.
 *  - Keys that are addresses ("user@example.com", "@example.com") are refused.
 *  - gw_route_expand() looks up MX only for SMTP routes: LMTP never uses MX
 *    (Postfix lmtp(8) neither), so a host name there is connected to as is.
 *  - gw_addr_is_self(): a self address that is the wildcard (0.0.0.0, ::)
 *    also matches loopback addresses, because a listener on the wildcard
 *    receives what is sent to 127.0.0.1 or ::1.
 *
 * Does not defend against: host names in routes that resolve to the gateway
 * itself (only numeric hops are checked for loops), nor self addresses the
 * caller did not list (a wildcard listener's other interface addresses).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw/route.h"
#include "hmap.h"
#include "util.h"

#define ROUTE_FILE_MAX  (64u * 1024 * 1024) /* refuse absurd files before reading them */
#define ROUTE_ENTRY_MAX 8192                /* one logical entry, continuations included */
#define EXCERPT_MAX     40

typedef struct route_entry {
	gwu_hnode node; /* keyed by route.key */
	gw_route route;
} route_entry;

struct gw_routes {
	gwu_hmap map;
};

/* Write "name:line: message" into err (if any). */
static void set_err(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void set_err(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (name != NULL && line > 0)
		snprintf(err, errlen, "%s:%u: %s", name, line, msg);
	else if (name != NULL)
		snprintf(err, errlen, "%s: %s", name, msg);
	else
		snprintf(err, errlen, "%s", msg);
}

static const gw_route *find_exact(const gw_routes *r, const char *key)
{
	gwu_hnode *n = gwu_hmap_get(&r->map, key);

	return n != NULL ? &gwu_entry(n, route_entry, node)->route : NULL;
}

static int is_blank(int c)
{
	return c == ' ' || c == '\t';
}

/* Check and lowercase a key into key_r. NULL when fine, else why not. */
static const char *parse_key(const char *s, size_t len, char *key_r)
{
	size_t i, label = 0;

	if (len == 1 && s[0] == '*') {
		strcpy(key_r, "*");
		return NULL;
	}
	if (memchr(s, '@', len) != NULL)
		return "address keys (user@domain, @domain) are not supported";
	if (len > 1 && s[len - 1] == '.')
		len--; /* "example.com." names the same domain */
	if (len > GW_HOST_MAX + 1 || (s[0] != '.' && len > GW_HOST_MAX))
		return "domain too long";
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (i > 0 && label == 0)
				return "empty label in domain";
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			label++;
		} else {
			return "bad character in domain";
		}
		key_r[i] = (char)tolower(c);
	}
	key_r[len] = '\0';
	if (label == 0)
		return "empty label in domain";
	return NULL;
}

/* Fill route from "transport:nexthop" value. NULL when fine, else why not (detail quotes the culprit). */
static const char *parse_value(gw_route *route, const char *v, size_t vlen, char *detail, size_t dlen)
{
	const char *colon = memchr(v, ':', vlen);
	size_t tlen = colon != NULL ? (size_t)(colon - v) : vlen;
	const char *nh = colon != NULL ? colon + 1 : v + vlen;
	size_t nhlen = (size_t)(v + vlen - nh), i;

	detail[0] = '\0';
	if (tlen > GW_TRANSPORT_MAX)
		return "transport name too long";
	for (i = 0; i < tlen; i++) {
		unsigned char c = (unsigned char)v[i];
		if (!isalnum(c) && c != '-' && c != '_') {
			char ex[EXCERPT_MAX + 8];
			snprintf(detail, dlen, "'%s'", gwu_excerpt(v, vlen, EXCERPT_MAX, ex, sizeof ex));
			return "bad transport name (want transport:nexthop, e.g. smtp:[10.0.0.5]:25)";
		}
		route->transport[i] = (char)tolower(c);
	}
	route->transport[tlen] = '\0';
	if (tlen == 0)
		strcpy(route->transport, "smtp"); /* Postfix: empty transport = the default one */

	while (nhlen > 0 && is_blank((unsigned char)*nh)) {
		nh++;
		nhlen--;
	}
	if (nhlen >= sizeof route->nexthop_text)
		return "next hop too long";
	memcpy(route->nexthop_text, nh, nhlen);
	route->nexthop_text[nhlen] = '\0';

	if (strcmp(route->transport, "smtp") == 0 || strcmp(route->transport, "relay") == 0) {
		route->has_proto = 1;
		route->proto = GW_PROTO_SMTP;
	} else if (strcmp(route->transport, "lmtp") == 0) {
		route->has_proto = 1;
		route->proto = GW_PROTO_LMTP;
	} else {
		return NULL; /* error:, discard:, local:, ...: no hops, kept for the caller to skip */
	}

	route->nhops = 0;
	i = 0;
	for (;;) {
		size_t start, tl;
		const char *why = NULL;
		while (i < nhlen && (is_blank((unsigned char)nh[i]) || nh[i] == ','))
			i++;
		if (i >= nhlen)
			break;
		start = i;
		while (i < nhlen && !is_blank((unsigned char)nh[i]) && nh[i] != ',')
			i++;
		tl = i - start;
		if (route->nhops == GW_ROUTE_HOPS_MAX)
			return "too many next hops (at most 8)";
		if (gw_nexthop_parse(nh + start, tl, &route->hops[route->nhops], &why) != 0) {
			char ex[EXCERPT_MAX + 8];
			snprintf(detail, dlen, "'%s': %s",
				 gwu_excerpt(nh + start, tl, EXCERPT_MAX, ex, sizeof ex),
				 why != NULL ? why : "unparsable");
			return "bad next hop";
		}
		route->nhops++;
	}
	if (route->nhops == 0) {
		if (route->proto == GW_PROTO_LMTP)
			return "lmtp needs a next hop (lmtp:unix:/path or lmtp:[host]:port)";
		if (strcmp(route->key, "*") != 0) {
			/* "smtp:" = deliver to the recipient domain itself (its MX). */
			gw_nexthop *hop = &route->hops[0];
			const char *d = route->key[0] == '.' ? route->key + 1 : route->key;
			size_t dl = strlen(d);

			memset(hop, 0, sizeof *hop);
			hop->kind = GW_HOP_INET;
			if (dl >= sizeof hop->host)
				return "domain too long"; /* parse_key() keeps it shorter */
			memcpy(hop->host, d, dl + 1);
			route->nhops = 1;
		}
	}
	return NULL;
}

/* Parse one logical entry and append it. 0 ok, -1 with err. */
static int add_entry(gw_routes *r, const char *e, size_t len, const char *name, unsigned line, char *err,
		     size_t errlen)
{
	char ex[EXCERPT_MAX + 8], key[GW_HOST_MAX + 2], detail[128];
	size_t klen = 0, vstart;
	const char *why;
	const gw_route *dup;
	route_entry *ent;
	gw_route *route;

	while (klen < len && !is_blank((unsigned char)e[klen]))
		klen++;
	vstart = klen;
	while (vstart < len && is_blank((unsigned char)e[vstart]))
		vstart++;
	while (len > vstart && is_blank((unsigned char)e[len - 1]))
		len--;
	if ((why = parse_key(e, klen, key)) != NULL) {
		set_err(err, errlen, name, line, "%s: '%s'", why,
			gwu_excerpt(e, klen, EXCERPT_MAX, ex, sizeof ex));
		return -1;
	}
	if (vstart >= len) {
		set_err(err, errlen, name, line, "'%s' has no transport:nexthop", key);
		return -1;
	}
	dup = find_exact(r, key);
	if (dup != NULL) {
		set_err(err, errlen, name, line, "duplicate key '%s' (first at line %u)", key, dup->line);
		return -1;
	}
	if ((ent = calloc(1, sizeof *ent)) == NULL) {
		set_err(err, errlen, name, line, "out of memory");
		return -1;
	}
	route = &ent->route;
	strcpy(route->key, key);
	route->line = line;
	if ((why = parse_value(route, e + vstart, len - vstart, detail, sizeof detail)) != NULL) {
		if (detail[0] != '\0')
			set_err(err, errlen, name, line, "%s: %s", why, detail);
		else
			set_err(err, errlen, name, line, "%s: '%s'", why,
				gwu_excerpt(e + vstart, len - vstart, EXCERPT_MAX, ex, sizeof ex));
		free(ent);
		return -1;
	}
	gwu_hmap_put(&r->map, &ent->node, route->key);
	return 0;
}

gw_routes *gw_routes_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
	gw_routes *r = calloc(1, sizeof *r);
	char *ent = malloc(ROUTE_ENTRY_MAX);
	size_t pos = 0, elen = 0;
	unsigned line = 0, eline = 0;
	int have = 0;

	if (name == NULL)
		name = "(routes)";
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (r == NULL || ent == NULL || gwu_hmap_init(&r->map, 0) != 0) {
		set_err(err, errlen, name, 0, "out of memory");
		goto fail;
	}
	if (text == NULL)
		len = 0;
	while (pos < len) {
		const char *l = text + pos, *nl = memchr(l, '\n', len - pos);
		size_t ll = nl != NULL ? (size_t)(nl - l) : len - pos, i = 0;

		pos += ll + (nl != NULL);
		line++;
		if (memchr(l, '\0', ll) != NULL) {
			set_err(err, errlen, name, line, "NUL byte in line");
			goto fail;
		}
		if (ll > 0 && l[ll - 1] == '\r')
			ll--;
		while (i < ll && is_blank((unsigned char)l[i]))
			i++;
		if (i == ll || l[i] == '#')
			continue; /* blank or comment line; a continuation may still follow */
		if (i > 0) {
			if (!have) {
				set_err(err, errlen, name, line,
					"continuation line without an entry before it");
				goto fail;
			}
			if (elen + 1 + (ll - i) > ROUTE_ENTRY_MAX) {
				set_err(err, errlen, name, eline, "entry too long (over %d bytes)",
					ROUTE_ENTRY_MAX);
				goto fail;
			}
			ent[elen++] = ' ';
			memcpy(ent + elen, l + i, ll - i);
			elen += ll - i;
			continue;
		}
		if (have && add_entry(r, ent, elen, name, eline, err, errlen) != 0)
			goto fail;
		if (ll > ROUTE_ENTRY_MAX) {
			set_err(err, errlen, name, line, "entry too long (over %d bytes)", ROUTE_ENTRY_MAX);
			goto fail;
		}
		memcpy(ent, l, ll);
		elen = ll;
		eline = line;
		have = 1;
	}
	if (have && add_entry(r, ent, elen, name, eline, err, errlen) != 0)
		goto fail;
	free(ent);
	return r;
fail:
	free(ent);
	gw_routes_free(&r);
	return NULL;
}

gw_routes *gw_routes_load(const char *path, char *err, size_t errlen)
{
	FILE *f;
	char *text = NULL;
	size_t len = 0, cap = 0;
	gw_routes *r;

	if ((f = fopen(path, "r")) == NULL) {
		set_err(err, errlen, path, 0, "%s", strerror(errno));
		return NULL;
	}
	for (;;) {
		size_t got;
		if (len == cap) {
			char *nt;
			if (cap >= ROUTE_FILE_MAX) {
				set_err(err, errlen, path, 0, "file too large (over %u bytes)",
					ROUTE_FILE_MAX);
				goto fail;
			}
			cap = cap ? cap * 2 : 65536;
			if ((nt = realloc(text, cap)) == NULL) {
				set_err(err, errlen, path, 0, "out of memory");
				goto fail;
			}
			text = nt;
		}
		got = fread(text + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		set_err(err, errlen, path, 0, "read error");
		goto fail;
	}
	fclose(f);
	r = gw_routes_parse(text, len, path, err, errlen);
	free(text);
	return r;
fail:
	fclose(f);
	free(text);
	return NULL;
}

const gw_route *gw_routes_lookup(const gw_routes *r, const char *domain)
{
	char buf[GW_HOST_MAX + 2];
	size_t len, i;
	const gw_route *found;

	if (r == NULL || domain == NULL)
		return NULL;
	len = strnlen(domain, sizeof buf);
	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len > GW_HOST_MAX)
		return NULL; /* not a domain: no route, rather than the catch-all */
	for (i = 0; i < len; i++)
		buf[i] = (char)tolower((unsigned char)domain[i]);
	buf[len] = '\0';
	if (len > 0 && (found = find_exact(r, buf)) != NULL)
		return found;
	for (i = 1; i < len; i++)
		if (buf[i] == '.' && (found = find_exact(r, buf + i)) != NULL)
			return found;
	return find_exact(r, "*");
}

size_t gw_routes_count(const gw_routes *r)
{
	return r != NULL ? r->map.count : 0;
}

void gw_routes_free(gw_routes **rp)
{
	gwu_hmap_iter it = {0};
	gwu_hnode *n;

	if (rp == NULL || *rp == NULL)
		return;
	while ((n = gwu_hmap_next(&(*rp)->map, &it)) != NULL)
		free(gwu_entry(n, route_entry, node));
	gwu_hmap_fini(&(*rp)->map);
	free(*rp);
	*rp = NULL;
}

/* --- loops ---------------------------------------------------------------- */

typedef struct norm_addr {
	int v4;
	unsigned char a[16];
	unsigned port;
} norm_addr;

/* IPv4-mapped IPv6 becomes IPv4 so both spellings of one address compare equal. */
static int normalise(const struct sockaddr *sa, norm_addr *n)
{
	memset(n, 0, sizeof *n);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		n->v4 = 1;
		memcpy(n->a, &s4->sin_addr, 4);
		n->port = ntohs(s4->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			n->v4 = 1;
			memcpy(n->a, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			memcpy(n->a, s6->sin6_addr.s6_addr, 16);
		}
		n->port = ntohs(s6->sin6_port);
		return 0;
	}
	return -1;
}

static int is_zero(const unsigned char *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i] != 0)
			return 0;
	return 1;
}

static int is_loopback(const norm_addr *n)
{
	static const unsigned char v6lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

	return n->v4 ? n->a[0] == 127 : memcmp(n->a, v6lo, 16) == 0;
}

int gw_addr_is_self(const struct sockaddr *addr, const struct sockaddr_storage *self, size_t nself)
{
	norm_addr a, s;
	size_t i;

	if (addr == NULL || self == NULL || normalise(addr, &a) != 0)
		return 0;
	for (i = 0; i < nself; i++) {
		if (normalise((const struct sockaddr *)(const void *)&self[i], &s) != 0)
			continue;
		if (s.port != 0 && s.port != a.port)
			continue;
		if (s.v4 == a.v4 && memcmp(s.a, a.a, a.v4 ? 4 : 16) == 0)
			return 1;
		/* A wildcard listener also answers on loopback: 0.0.0.0 for 127/8, :: for both. */
		if (is_zero(s.a, s.v4 ? 4 : 16) && is_loopback(&a) && (!s.v4 || a.v4))
			return 1;
	}
	return 0;
}

/* Fill ss from a numeric host. 0 ok, -1 when host is a name. */
static int numeric_sockaddr(const char *host, unsigned port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)ss;

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return 0;
	}
	return -1;
}

int gw_route_check_loop(const gw_route *route, unsigned default_port, const struct sockaddr_storage *self,
			size_t nself, char *err, size_t errlen)
{
	size_t i;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (route == NULL)
		return 0;
	for (i = 0; i < route->nhops && i < GW_ROUTE_HOPS_MAX; i++) {
		const gw_nexthop *hop = &route->hops[i];
		unsigned port = hop->port != 0 ? hop->port : default_port;
		struct sockaddr_storage ss;

		if (hop->kind != GW_HOP_INET || port > 65535 || numeric_sockaddr(hop->host, port, &ss) != 0)
			continue; /* unix sockets never loop back to our TCP listener; names are not checked
				   */
		if (gw_addr_is_self((const struct sockaddr *)(const void *)&ss, self, nself)) {
			set_err(err, errlen, NULL, 0,
				"route '%s' (line %u): next hop [%s]:%u is this gateway itself (mail loop)",
				route->key, route->line, hop->host, port);
			return -1;
		}
	}
	return 0;
}

/* --- expansion -------------------------------------------------------------- */

static int same_hop(const gw_nexthop *a, const gw_nexthop *b)
{
	if (a->kind != b->kind)
		return 0;
	if (a->kind == GW_HOP_UNIX)
		return strcmp(a->path, b->path) == 0;
	return a->port == b->port && strcasecmp(a->host, b->host) == 0;
}

/* Append hop unless it is already there (two next hops sharing an MX host). */
static void add_hop(gw_nexthop *hops, size_t max, size_t *n, const gw_nexthop *hop)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (same_hop(&hops[i], hop))
			return;
	if (*n < max)
		hops[(*n)++] = *hop;
}

gw_lookup gw_route_expand(const gw_route *route, int use_mx, gw_nexthop *hops_r, size_t max, size_t *n_r,
			  char *err, size_t errlen)
{
	return gw_route_expand_until(route, use_mx, 0, hops_r, max, n_r, err, errlen);
}

gw_lookup gw_route_expand_until(const gw_route *route, int use_mx, int64_t deadline, gw_nexthop *hops_r,
				size_t max, size_t *n_r, char *err, size_t errlen)
{
	size_t i, n = 0;
	int retry = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (n_r != NULL)
		*n_r = 0;
	if (route == NULL || !route->has_proto) {
		set_err(err, errlen, NULL, 0, "transport '%s' has no next hops",
			route != NULL ? route->transport : "(none)");
		return GW_LOOKUP_NOTFOUND;
	}
	if (route->nhops == 0) {
		set_err(err, errlen, NULL, 0, "route '%s' has no next hop: use the recipient domain",
			route->key);
		return GW_LOOKUP_NOTFOUND;
	}
	for (i = 0; i < route->nhops && i < GW_ROUTE_HOPS_MAX && n < max; i++) {
		const gw_nexthop *hop = &route->hops[i];
		struct sockaddr_storage ss;
		gw_mx mx[GW_MX_MAX];
		size_t nmx = 0, k;
		char why[256];
		gw_lookup res;

		if (hop->kind == GW_HOP_UNIX || hop->literal || !use_mx || route->proto == GW_PROTO_LMTP ||
		    numeric_sockaddr(hop->host, 0, &ss) == 0) {
			add_hop(hops_r, max, &n, hop);
			continue;
		}
		res = gw_mx_lookup_until(hop->host, deadline, mx, GW_MX_MAX, &nmx, why, sizeof why);
		if (res == GW_LOOKUP_FOUND) {
			for (k = 0; k < nmx && n < max; k++) {
				gw_nexthop h;
				memset(&h, 0, sizeof h);
				h.kind = GW_HOP_INET;
				h.literal = 1; /* already resolved: connect to it, no second MX lookup */
				h.port = hop->port;
				snprintf(h.host, sizeof h.host, "%s", mx[k].host);
				add_hop(hops_r, max, &n, &h);
			}
			continue;
		}
		if (res == GW_LOOKUP_RETRY)
			retry = 1;
		set_err(err, errlen, NULL, 0, "%s: %s", hop->host, why);
	}
	if (n_r != NULL)
		*n_r = n;
	if (n > 0) {
		if (err != NULL && errlen > 0)
			err[0] = '\0';
		return GW_LOOKUP_FOUND;
	}
	return retry ? GW_LOOKUP_RETRY : GW_LOOKUP_NOTFOUND;
}
