/*
 * tenant_map.c - client network -> tenant -> pool addresses (see tenant_map.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "map_file.h"
#include "tenant_map.h"

#define MAP_MAX    10000 /* entries */
#define LINE_WORDS 5
#define RATE_MAX   1000000

typedef struct entry {
	gwp_prefix key;
	gwp_tenant t;
} entry;

struct gwp_tenant_map {
	entry *e;
	size_t n;
};

/* "a,b,c" into t->addr: 0, or -1 with the bad item in bad. */
static int parse_addrs(char *list, gwp_tenant *t, const char **why, char *bad, size_t badlen)
{
	char *save = NULL, *tok;
	unsigned char a[16];

	for (tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		snprintf(bad, badlen, "%s", tok);
		if (t->naddr >= GWP_TENANT_ADDRS) {
			*why = "too many addresses";
			return -1;
		}
		if (strlen(tok) >= sizeof(t->addr[0]) ||
		    (inet_pton(AF_INET, tok, a) != 1 && inet_pton(AF_INET6, tok, a) != 1)) {
			*why = "not a numeric address";
			return -1;
		}
		snprintf(t->addr[t->naddr++], sizeof(t->addr[0]), "%s", tok);
	}
	if (t->naddr == 0) {
		*why = "no address";
		return -1;
	}
	return 0;
}

/* "rate=N" into *rate: 0, or -1. */
static int parse_rate(const char *w, long *rate)
{
	char *end;
	long v;

	if (strncmp(w, "rate=", 5) != 0 || w[5] < '0' || w[5] > '9')
		return -1;
	errno = 0;
	v = strtol(w + 5, &end, 10);
	if (errno != 0 || *end != '\0' || v > RATE_MAX)
		return -1;
	*rate = v;
	return 0;
}

/* A rate is the tenant's: given on one line, it holds for every line of that name; two rates clash. */
static int share_rates(gwp_tenant_map *m, const char *name, char *err, size_t errlen)
{
	size_t i, j;

	for (i = 0; i < m->n; i++) {
		const gwp_tenant *a = &m->e[i].t;
		if (a->rate < 0)
			continue;
		for (j = 0; j < m->n; j++) {
			gwp_tenant *b = &m->e[j].t;
			if (j == i || strcmp(a->name, b->name) != 0)
				continue;
			if (b->rate >= 0 && b->rate != a->rate) {
				snprintf(err, errlen, "%s:%u: tenant %s: rate=%ld, but rate=%ld on line %u",
					 name, b->line > a->line ? b->line : a->line, a->name,
					 b->line > a->line ? b->rate : a->rate,
					 b->line > a->line ? a->rate : b->rate,
					 b->line > a->line ? a->line : b->line);
				return -1;
			}
		}
	}
	for (i = 0; i < m->n; i++) {
		const gwp_tenant *a = &m->e[i].t;
		if (a->rate < 0)
			continue;
		for (j = 0; j < m->n; j++)
			if (m->e[j].t.rate < 0 && strcmp(a->name, m->e[j].t.name) == 0)
				m->e[j].t.rate = a->rate;
	}
	return 0;
}

gwp_tenant_map *gwp_tenant_map_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
	gwp_tenant_map *m = calloc(1, sizeof(*m));
	size_t off = 0, cap = 0;
	unsigned lineno = 0;

	if (m == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	for (;;) {
		char line[1024], *w[LINE_WORDS], bad[64];
		const char *why = "";
		int nw = 0, got;
		entry e;

		got = gwp_map_next_line(text, len, &off, &lineno, line, sizeof(line), w, LINE_WORDS, &nw,
					name, err, errlen);
		if (got < 0)
			goto fail;
		if (got == 0)
			break;
		if (nw != 3 && nw != 4) {
			snprintf(err, errlen,
				 "%s:%u: want \"NETWORK[/PREFIX] TENANT ADDRESS[,ADDRESS...]\" and an "
				 "optional rate=N",
				 name, lineno);
			goto fail;
		}
		memset(&e, 0, sizeof(e));
		e.t.line = lineno;
		e.t.rate = -1;
		if (nw == 4 && parse_rate(w[3], &e.t.rate) != 0) {
			snprintf(err, errlen, "%s:%u: %s: want rate=N, N messages per minute from 0 to %d",
				 name, lineno, w[3], RATE_MAX);
			goto fail;
		}
		if (gwp_prefix_parse(w[0], &e.key) != 0) {
			snprintf(err, errlen, "%s:%u: %s: not an address or address/prefix", name, lineno,
				 w[0]);
			goto fail;
		}
		if (strlen(w[1]) >= sizeof(e.t.name)) {
			snprintf(err, errlen, "%s:%u: tenant name longer than %d", name, lineno,
				 GWP_TENANT_NAME_MAX - 1);
			goto fail;
		}
		snprintf(e.t.name, sizeof(e.t.name), "%s", w[1]);
		if (parse_addrs(w[2], &e.t, &why, bad, sizeof(bad)) != 0) {
			snprintf(err, errlen, "%s:%u: %s (%s)", name, lineno, why, bad);
			goto fail;
		}
		if (gwp_map_grow((void **)&m->e, &cap, m->n, sizeof(*m->e), MAP_MAX, name, lineno, err,
				 errlen) != 0)
			goto fail;
		m->e[m->n++] = e;
	}
	if (share_rates(m, name, err, errlen) != 0)
		goto fail;
	return m;
fail:
	gwp_tenant_map_free(&m);
	return NULL;
}

gwp_tenant_map *gwp_tenant_map_load(const char *path, char *err, size_t errlen)
{
	size_t n;
	char *buf = gwp_map_file_read(path, &n, err, errlen);
	gwp_tenant_map *m;

	if (buf == NULL)
		return NULL;
	m = gwp_tenant_map_parse(buf, n, path, err, errlen);
	free(buf);
	return m;
}

const gwp_tenant *gwp_tenant_map_lookup(const gwp_tenant_map *m, const char *address)
{
	gwp_prefix a;
	const entry *best = NULL;
	size_t i;

	if (m == NULL)
		return NULL;
	if (gwp_prefix_address(address, &a) != 0)
		return NULL;
	for (i = 0; i < m->n; i++)
		if (gwp_prefix_covers(&m->e[i].key, &a) &&
		    (best == NULL || m->e[i].key.bits > best->key.bits))
			best = &m->e[i];
	return best != NULL ? &best->t : NULL;
}

size_t gwp_tenant_map_count(const gwp_tenant_map *m)
{
	return m != NULL ? m->n : 0;
}

const gwp_tenant *gwp_tenant_map_get(const gwp_tenant_map *m, size_t i)
{
	return m != NULL && i < m->n ? &m->e[i].t : NULL;
}

void gwp_tenant_map_free(gwp_tenant_map **mp)
{
	if (*mp == NULL)
		return;
	free((*mp)->e);
	free(*mp);
	*mp = NULL;
}
