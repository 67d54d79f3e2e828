/*
 * domain_tls.c - STARTTLS levels per destination domain (see gw/domain_tls.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw/addr.h"
#include "gw/domain_tls.h"

typedef struct entry {
	char domain[GW_DOMAIN_MAX + 2]; /* lower case; a leading '.' matches subdomains */
	gw_tls_level policy;
} entry;

struct gw_domain_tls {
	entry *e;
	size_t n;
};

/* Read the policy lines of f; path names it in messages. */
static gw_domain_tls *policy_read(FILE *f, const char *path, char *err, size_t errlen)
{
	gw_domain_tls *t = calloc(1, sizeof(*t));
	char line[1024];
	unsigned lineno = 0;
	size_t cap = 0;

	if (t == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		goto fail;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char dom[GW_DOMAIN_MAX + 9], pol[32], extra[8]; /* room for the %263s below and its NUL */
		int n;
		size_t i;
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(err, errlen, "%s:%u: line too long", path, lineno);
			goto fail;
		}
		line[strcspn(line, "#")] = '\0';
		n = sscanf(line, "%263s %31s %7s", dom, pol, extra);
		if (n <= 0)
			continue;
		if (n != 2) {
			snprintf(err, errlen, "%s:%u: want \"domain policy\"", path, lineno);
			goto fail;
		}
		if (strlen(dom) > GW_DOMAIN_MAX + 1) {
			snprintf(err, errlen, "%s:%u: domain too long", path, lineno);
			goto fail;
		}
		if (t->n == cap) {
			entry *ne = realloc(t->e, (cap = cap ? cap * 2 : 16) * sizeof(*ne));
			if (ne == NULL) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			t->e = ne;
		}
		for (i = 0; dom[i]; i++)
			dom[i] = (char)(dom[i] >= 'A' && dom[i] <= 'Z' ? dom[i] + 32 : dom[i]);
		if (gw_tls_level_parse(pol, &t->e[t->n].policy) != 0) {
			snprintf(err, errlen,
				 "%s:%u: unknown policy \"%s\" (none, may, encrypt, verify, dane, dane-only)",
				 path, lineno, pol);
			goto fail;
		}
		snprintf(t->e[t->n].domain, sizeof(t->e[t->n].domain), "%s", dom);
		t->n++;
	}
	return t;
fail:
	gw_domain_tls_free(&t);
	return NULL;
}

gw_domain_tls *gw_domain_tls_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	gw_domain_tls *t;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	t = policy_read(f, path, err, errlen);
	fclose(f);
	return t;
}

gw_domain_tls *gw_domain_tls_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
	FILE *f = len > 0 ? fmemopen((void *)text, len, "r") : NULL;
	gw_domain_tls *t;

	if (len == 0)
		return calloc(1, sizeof(gw_domain_tls));
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		return NULL;
	}
	t = policy_read(f, name, err, errlen);
	fclose(f);
	return t;
}

static const entry *find(const gw_domain_tls *t, const char *key)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcasecmp(t->e[i].domain, key) == 0)
			return &t->e[i];
	return NULL;
}

gw_tls_level gw_domain_tls_lookup(const gw_domain_tls *t, const char *domain, gw_tls_level fallback)
{
	const entry *e;
	const char *p;

	if (t == NULL)
		return fallback;
	if ((e = find(t, domain)) != NULL)
		return e->policy;
	for (p = strchr(domain, '.'); p != NULL; p = strchr(p + 1, '.'))
		if ((e = find(t, p)) != NULL)
			return e->policy;
	return fallback;
}

void gw_domain_tls_free(gw_domain_tls **tp)
{
	if (*tp == NULL)
		return;
	free((*tp)->e);
	free(*tp);
	*tp = NULL;
}
