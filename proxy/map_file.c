/*
 * map_file.c - what the address-keyed map files share (see map_file.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "map_file.h"

#define FILE_MAX (1024 * 1024)

char *gwp_map_file_read(const char *path, size_t *n_r, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(FILE_MAX + 1)) == NULL) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	n = fread(buf, 1, FILE_MAX + 1, f);
	if (ferror(f) || n > FILE_MAX) {
		snprintf(err, errlen, "%s: %s", path, ferror(f) ? strerror(errno) : "larger than 1 MB");
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	*n_r = n;
	return buf;
}

int gwp_prefix_address(const char *text, gwp_prefix *p)
{
	memset(p, 0, sizeof(*p));
	if (inet_pton(AF_INET, text, p->addr) == 1) {
		p->family = AF_INET;
		p->bits = 32;
	} else if (inet_pton(AF_INET6, text, p->addr) == 1) {
		p->family = AF_INET6;
		p->bits = 128;
	} else {
		return -1;
	}
	return 0;
}

int gwp_prefix_parse(const char *text, gwp_prefix *p)
{
	char a[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned long bits;

	if (strlen(text) >= sizeof(a))
		return -1;
	strcpy(a, text);
	if ((slash = strchr(a, '/')) != NULL)
		*slash++ = '\0';
	if (gwp_prefix_address(a, p) != 0)
		return -1;
	if (slash != NULL) {
		errno = 0;
		bits = strtoul(slash, &end, 10);
		if (errno != 0 || end == slash || *end != '\0' || bits > p->bits)
			return -1;
		p->bits = (unsigned)bits;
	}
	return 0;
}

int gwp_prefix_covers(const gwp_prefix *p, const gwp_prefix *a)
{
	unsigned full = p->bits / 8, rest = p->bits % 8;

	if (p->family != a->family || memcmp(p->addr, a->addr, full) != 0)
		return 0;
	return rest == 0 || ((p->addr[full] ^ a->addr[full]) & (unsigned char)(0xff << (8 - rest))) == 0;
}

int gwp_map_next_line(const char *text, size_t len, size_t *off, unsigned *lineno, char *line, size_t linesz,
		      char **w, int maxw, int *nw, const char *name, char *err, size_t errlen)
{
	while (*off < len) {
		const char *nl = memchr(text + *off, '\n', len - *off);
		size_t ll = nl ? (size_t)(nl - (text + *off)) : len - *off;
		char *save = NULL, *tok, *hash;

		++*lineno;
		if (ll >= linesz) {
			snprintf(err, errlen, "%s:%u: line too long", name, *lineno);
			return -1;
		}
		memcpy(line, text + *off, ll);
		line[ll] = '\0';
		*off += ll + (nl != NULL);
		if ((hash = strchr(line, '#')) != NULL)
			*hash = '\0';
		*nw = 0;
		for (tok = strtok_r(line, " \t\r", &save); tok != NULL && *nw < maxw;
		     tok = strtok_r(NULL, " \t\r", &save))
			w[(*nw)++] = tok;
		if (*nw > 0)
			return 1;
	}
	return 0;
}

int gwp_map_grow(void **arr, size_t *cap, size_t n, size_t elsize, size_t max, const char *name,
		 unsigned lineno, char *err, size_t errlen)
{
	size_t ncap;
	void *na;

	if (n < *cap)
		return 0;
	if (*cap >= max) {
		snprintf(err, errlen, "%s:%u: more than %zu entries", name, lineno, max);
		return -1;
	}
	ncap = *cap ? *cap * 2 : 16;
	if ((na = realloc(*arr, ncap * elsize)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	*arr = na;
	*cap = ncap;
	return 0;
}
