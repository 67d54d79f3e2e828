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
	gwp_prefix key;
	gw_tls_policy policy;
} entry;

struct gwp_tls_map {
	entry *e;
	size_t n;
};

gwp_tls_map *gwp_tls_map_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
	gwp_tls_map *m = calloc(1, sizeof(*m));
	size_t off = 0, cap = 0;
	unsigned lineno = 0;

	if (m == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	for (;;) {
		char line[512], *w[LINE_WORDS];
		int nw = 0, got;
		entry e;

		got = gwp_map_next_line(text, len, &off, &lineno, line, sizeof(line), w, LINE_WORDS, &nw,
					name, err, errlen);
		if (got < 0)
			goto fail;
		if (got == 0)
			break;
		if (nw != 2) {
			snprintf(err, errlen, "%s:%u: want \"ADDRESS[/PREFIX] POLICY\"", name, lineno);
			goto fail;
		}
		memset(&e, 0, sizeof(e));
		if (gwp_prefix_parse(w[0], &e.key) != 0) {
			snprintf(err, errlen, "%s:%u: %s: not an address or address/prefix", name, lineno,
				 w[0]);
			goto fail;
		}
		if (gw_tls_policy_parse(w[1], &e.policy) != 0) {
			snprintf(err, errlen, "%s:%u: %s: want none, may, encrypt or verify", name, lineno,
				 w[1]);
			goto fail;
		}
		if (gwp_map_grow((void **)&m->e, &cap, m->n, sizeof(*m->e), MAP_MAX, name, lineno, err,
				 errlen) != 0)
			goto fail;
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
	gwp_prefix a;
	const entry *best = NULL;
	size_t i;

	if (m == NULL)
		return fallback;
	if (gwp_prefix_address(address, &a) != 0)
		return fallback;
	for (i = 0; i < m->n; i++)
		if (gwp_prefix_covers(&m->e[i].key, &a) &&
		    (best == NULL || m->e[i].key.bits > best->key.bits))
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
