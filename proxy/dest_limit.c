/*
 * dest_limit.c - the per-destination session count (see dest_limit.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dest_limit.h"

typedef struct entry {
	char dest[300];
	unsigned long sessions, refused;
	long limit; /* at the last take: for the listing */
	int used;   /* 0: a free slot */
} entry;

struct gwp_dlimit {
	pthread_mutex_t lock;
	entry *e;
	size_t n, cap;
};

gwp_dlimit *gwp_dlimit_new(void)
{
	gwp_dlimit *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	if ((d->e = calloc(GWP_DLIMIT_ENTRIES, sizeof(entry))) == NULL) {
		free(d);
		return NULL;
	}
	d->cap = GWP_DLIMIT_ENTRIES;
	pthread_mutex_init(&d->lock, NULL);
	return d;
}

void gwp_dlimit_free(gwp_dlimit **dp)
{
	gwp_dlimit *d = *dp;

	if (d == NULL)
		return;
	pthread_mutex_destroy(&d->lock);
	free(d->e);
	free(d);
	*dp = NULL;
}

static entry *find(gwp_dlimit *d, const char *dest)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->e[i].used && strcmp(d->e[i].dest, dest) == 0)
			return &d->e[i];
	return NULL;
}

/* An entry for dest: a free slot, an idle entry, or a new one (the table grows). NULL: out of memory. */
static entry *make(gwp_dlimit *d, const char *dest)
{
	entry *x = NULL;
	size_t i;

	for (i = 0; i < d->n && x == NULL; i++)
		if (!d->e[i].used)
			x = &d->e[i];
	if (x == NULL && d->n < d->cap)
		x = &d->e[d->n++];
	for (i = 0; i < d->n && x == NULL; i++) /* an idle destination's counters make room */
		if (d->e[i].sessions == 0)
			x = &d->e[i];
	if (x == NULL) {
		entry *ne = realloc(d->e, 2 * d->cap * sizeof(*ne));
		if (ne == NULL)
			return NULL;
		memset(ne + d->cap, 0, d->cap * sizeof(*ne));
		d->e = ne;
		d->cap *= 2;
		x = &d->e[d->n++];
	}
	memset(x, 0, sizeof(*x));
	snprintf(x->dest, sizeof(x->dest), "%s", dest);
	x->used = 1;
	return x;
}

int gwp_dlimit_take(gwp_dlimit *d, const char *dest, long limit, unsigned long *now_r)
{
	entry *x;
	int rc;

	pthread_mutex_lock(&d->lock);
	if ((x = find(d, dest)) == NULL && (x = make(d, dest)) == NULL) {
		pthread_mutex_unlock(&d->lock);
		return -1;
	}
	x->limit = limit;
	if (limit > 0 && x->sessions >= (unsigned long)limit) {
		x->refused++;
		rc = 0;
	} else {
		x->sessions++;
		rc = 1;
	}
	if (now_r != NULL)
		*now_r = x->sessions;
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void gwp_dlimit_give(gwp_dlimit *d, const char *dest)
{
	entry *x;

	pthread_mutex_lock(&d->lock);
	if ((x = find(d, dest)) != NULL && x->sessions > 0) {
		x->sessions--;
		if (x->sessions == 0 && x->refused == 0)
			x->used = 0; /* nothing worth listing: the slot is free again */
	}
	pthread_mutex_unlock(&d->lock);
}

unsigned long gwp_dlimit_count(gwp_dlimit *d, const char *dest)
{
	entry *x;
	unsigned long n;

	pthread_mutex_lock(&d->lock);
	x = find(d, dest);
	n = x != NULL ? x->sessions : 0;
	pthread_mutex_unlock(&d->lock);
	return n;
}

size_t gwp_dlimit_list(gwp_dlimit *d, char *out, size_t outlen)
{
	size_t i, len = 0, count = 0;

	if (outlen > 0)
		out[0] = '\0';
	pthread_mutex_lock(&d->lock);
	for (i = 0; i < d->n; i++) {
		const entry *x = &d->e[i];
		char lim[24];
		int k;
		if (!x->used)
			continue;
		count++;
		if (len >= outlen)
			continue;
		if (x->limit > 0)
			snprintf(lim, sizeof(lim), "%ld", x->limit);
		else
			snprintf(lim, sizeof(lim), "none");
		k = snprintf(out + len, outlen - len, "%s sessions=%lu limit=%s refused=%lu\n", x->dest,
			     x->sessions, lim, x->refused);
		if (k > 0)
			len += (size_t)k < outlen - len ? (size_t)k : outlen - len - 1;
	}
	pthread_mutex_unlock(&d->lock);
	return count;
}
