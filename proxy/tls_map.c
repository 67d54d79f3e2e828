/*
 * tls_map.c - STARTTLS policy per destination address (see tls_map.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "map_file.h"
#include "tls_map.h"

#define MAP_MAX    10000 /* entries */
#define LINE_WORDS 3

typedef struct entry {
	int family;
	unsigned char addr[16];
	unsigned prefix;
	gw_tls_policy policy;
} entry;

struct gwp_tls_map {
	entry *e;
	size_t n;
};

/* Does a (family, addr) fall in e? */
static int covers(const entry *e, int family, const unsigned char *addr)
{
	unsigned full = e->prefix / 8, rest = e->prefix % 8;

	if (e->family != family || memcmp(e->addr, addr, full) != 0)
		return 0;
	return rest == 0 || ((e->addr[full] ^ addr[full]) & (unsigned char)(0xff << (8 - rest))) == 0;
}

static int parse_key(const char *key, entry *e)
{
	char a[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned long p;
	unsigned max;

	if (strlen(key) >= sizeof(a))
		return -1;
	strcpy(a, key);
	if ((slash = strchr(a, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, a, e->addr) == 1) {
		e->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, a, e->addr) == 1) {
		e->family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	e->prefix = max;
	if (slash != NULL) {
		errno = 0;
		p = strtoul(slash, &end, 10);
		if (errno != 0 || end == slash || *end != '\0' || p > max)
			return -1;
		e->prefix = (unsigned)p;
	}
	return 0;
}

gwp_tls_map *gwp_tls_map_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
	gwp_tls_map *m = calloc(1, sizeof(*m));
	size_t off = 0, cap = 0;
	unsigned lineno = 0;

	if (m == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - (text + off)) : len - off;
		char line[512], *w[LINE_WORDS], *save = NULL, *tok;
		int nw = 0;
		entry e;

		lineno++;
		if (ll >= sizeof(line)) {
			snprintf(err, errlen, "%s:%u: line too long", name, lineno);
			goto fail;
		}
		memcpy(line, text + off, ll);
		line[ll] = '\0';
		off += ll + (nl != NULL);
		if (strchr(line, '#') != NULL)
			*strchr(line, '#') = '\0';
		for (tok = strtok_r(line, " \t\r", &save); tok != NULL && nw < LINE_WORDS;
		     tok = strtok_r(NULL, " \t\r", &save))
			w[nw++] = tok;
		if (nw == 0)
			continue;
		if (nw != 2) {
			snprintf(err, errlen, "%s:%u: want \"ADDRESS[/PREFIX] POLICY\"", name, lineno);
			goto fail;
		}
		memset(&e, 0, sizeof(e));
		if (parse_key(w[0], &e) != 0) {
			snprintf(err, errlen, "%s:%u: %s: not an address or address/prefix", name, lineno,
				 w[0]);
			goto fail;
		}
		if (gw_tls_policy_parse(w[1], &e.policy) != 0) {
			snprintf(err, errlen, "%s:%u: %s: want none, may, encrypt or verify", name, lineno,
				 w[1]);
			goto fail;
		}
		if (m->n == cap) {
			entry *ne;
			if (cap >= MAP_MAX) {
				snprintf(err, errlen, "%s:%u: more than %d entries", name, lineno, MAP_MAX);
				goto fail;
			}
			cap = cap ? cap * 2 : 16;
			if ((ne = realloc(m->e, cap * sizeof(*ne))) == NULL) {
				snprintf(err, errlen, "%s: out of memory", name);
				goto fail;
			}
			m->e = ne;
		}
		m->e[m->n++] = e;
	}
	return m;
fail:
	gwp_tls_map_free(&m);
	return NULL;
}

gwp_tls_map *gwp_tls_map_load(const char *path, char *err, size_t errlen)
{
	size_t n;
	char *buf = gwp_map_file_read(path, &n, err, errlen);
	gwp_tls_map *m;

	if (buf == NULL)
		return NULL;
	m = gwp_tls_map_parse(buf, n, path, err, errlen);
	free(buf);
	return m;
}

gw_tls_policy gwp_tls_map_lookup(const gwp_tls_map *m, const char *address, gw_tls_policy fallback)
{
	unsigned char a[16];
	const entry *best = NULL;
	int family;
	size_t i;

	if (m == NULL)
		return fallback;
	if (inet_pton(AF_INET, address, a) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, address, a) == 1)
		family = AF_INET6;
	else
		return fallback;
	for (i = 0; i < m->n; i++)
		if (covers(&m->e[i], family, a) && (best == NULL || m->e[i].prefix > best->prefix))
			best = &m->e[i];
	return best != NULL ? best->policy : fallback;
}

size_t gwp_tls_map_count(const gwp_tls_map *m)
{
	return m != NULL ? m->n : 0;
}

void gwp_tls_map_free(gwp_tls_map **mp)
{
	if (*mp == NULL)
		return;
	free((*mp)->e);
	free(*mp);
	*mp = NULL;
}
