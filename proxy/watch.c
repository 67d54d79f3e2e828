/*
 * watch.c - the table of tarpitting and throttling destinations (see watch.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw/time.h"
#include "watch.h"

typedef struct entry {
	char dest[300];
	char why[160];
	unsigned long count[2]; /* per gwp_mark: marks counted, not the replies that extended them */
	int64_t at, until;
	int64_t counted[2]; /* per gwp_mark: when its last counted mark began (0: never) */
} entry;

struct gwp_watch {
	pthread_mutex_t lock;
	int64_t (*now)(void);
	entry *e;
	size_t n;
};

static int64_t clock_ms(void)
{
	return gw_now_ms();
}

gwp_watch *gwp_watch_new(int64_t (*now)(void))
{
	gwp_watch *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	if ((w->e = calloc(GWP_WATCH_ENTRIES, sizeof(entry))) == NULL) {
		free(w);
		return NULL;
	}
	pthread_mutex_init(&w->lock, NULL);
	w->now = now != NULL ? now : clock_ms;
	return w;
}

void gwp_watch_free(gwp_watch **wp)
{
	gwp_watch *w = *wp;

	if (w == NULL)
		return;
	pthread_mutex_destroy(&w->lock);
	free(w->e);
	free(w);
	*wp = NULL;
}

static entry *find(gwp_watch *w, const char *dest)
{
	size_t i;

	for (i = 0; i < w->n; i++)
		if (strcmp(w->e[i].dest, dest) == 0)
			return &w->e[i];
	return NULL;
}

int gwp_watch_mark(gwp_watch *w, const char *dest, gwp_mark kind, const char *why, int64_t ttl_ms)
{
	entry *x;
	int fresh, k;
	int64_t now;

	pthread_mutex_lock(&w->lock);
	now = w->now();
	if ((x = find(w, dest)) == NULL) {
		if (w->n < GWP_WATCH_ENTRIES) {
			x = &w->e[w->n++];
		} else { /* full: the mark that ended first makes room */
			size_t i;
			x = &w->e[0];
			for (i = 1; i < w->n; i++)
				if (w->e[i].until < x->until)
					x = &w->e[i];
		}
		memset(x, 0, sizeof(*x));
		snprintf(x->dest, sizeof(x->dest), "%s", dest);
	}
	k = kind == GWP_MARK_THROTTLE;
	/* one mark per kind and mark period: a tarpit answering every reply slowly is one event, not one a
	 * reply; later replies only keep the mark alive */
	fresh = x->counted[k] == 0 || now - x->counted[k] >= ttl_ms || x->until <= now;
	if (fresh) {
		x->count[k]++;
		x->counted[k] = now != 0 ? now : 1;
	}
	x->at = now;
	if (now + ttl_ms > x->until)
		x->until = now + ttl_ms;
	snprintf(x->why, sizeof(x->why), "%s", why);
	pthread_mutex_unlock(&w->lock);
	return fresh;
}

int gwp_watch_marked(gwp_watch *w, const char *dest)
{
	entry *x;
	int yes;

	pthread_mutex_lock(&w->lock);
	x = find(w, dest);
	yes = x != NULL && x->until > w->now();
	pthread_mutex_unlock(&w->lock);
	return yes;
}

size_t gwp_watch_list(gwp_watch *w, char *out, size_t outlen)
{
	size_t i, len = 0, count = 0;
	int64_t now;

	if (outlen > 0)
		out[0] = '\0';
	pthread_mutex_lock(&w->lock);
	now = w->now();
	for (i = 0; i < w->n; i++) {
		const entry *x = &w->e[i];
		int k;
		if (x->until <= now)
			continue;
		count++;
		if (len >= outlen)
			continue;
		k = snprintf(out + len, outlen - len, "%s tarpit=%lu throttle=%lu left=%lld last=\"%s\"\n",
			     x->dest, x->count[0], x->count[1], (long long)((x->until - now + 999) / 1000),
			     x->why);
		if (k > 0)
			len += (size_t)k < outlen - len ? (size_t)k : outlen - len - 1;
	}
	pthread_mutex_unlock(&w->lock);
	return count;
}

int gwp_throttled(const gw_reply *rep, char *const *words, size_t n)
{
	size_t i, wl;
	const char *t;

	if (rep->code == 421)
		return 1;
	if (rep->code / 100 != 4)
		return 0;
	for (i = 0; i < n; i++) {
		if ((wl = strlen(words[i])) == 0)
			continue;
		for (t = rep->text; *t != '\0'; t++)
			if (strncasecmp(t, words[i], wl) == 0)
				return 1;
	}
	return 0;
}

const char *gwp_mark_str(gwp_mark kind)
{
	return kind == GWP_MARK_THROTTLE ? "throttle" : "tarpit";
}

size_t gwp_watch_export(gwp_watch *w, gwp_watch_saved *out, size_t max, int64_t *now_r)
{
	size_t i, k = 0;
	int64_t now;

	pthread_mutex_lock(&w->lock);
	*now_r = now = w->now();
	for (i = 0; i < w->n; i++) {
		const entry *x = &w->e[i];
		if (x->until <= now)
			continue;
		if (k < max) {
			memcpy(out[k].dest, x->dest, sizeof(out[k].dest));
			memcpy(out[k].why, x->why, sizeof(out[k].why));
			out[k].tarpit = x->count[0];
			out[k].throttle = x->count[1];
			out[k].at = x->at;
			out[k].until = x->until;
		}
		k++;
	}
	pthread_mutex_unlock(&w->lock);
	return k;
}

int gwp_watch_import(gwp_watch *w, const gwp_watch_saved *s, int64_t ago_ms, int64_t left_ms)
{
	entry *x;
	int64_t now;

	if (left_ms <= 0)
		return 0;
	pthread_mutex_lock(&w->lock);
	now = w->now();
	if ((x = find(w, s->dest)) == NULL) {
		if (w->n >= GWP_WATCH_ENTRIES) { /* only at start-up into an empty table: never evict */
			pthread_mutex_unlock(&w->lock);
			return -1;
		}
		x = &w->e[w->n++];
		memset(x, 0, sizeof(*x));
		snprintf(x->dest, sizeof(x->dest), "%s", s->dest);
	}
	if (x->until < now + left_ms) {
		x->count[0] = s->tarpit;
		x->count[1] = s->throttle;
		x->at = now - ago_ms;
		x->until = now + left_ms;
		/* a loaded mark is not a new one: the next reply only extends it */
		x->counted[0] = s->tarpit != 0 ? (x->at > 0 ? x->at : 1) : 0;
		x->counted[1] = s->throttle != 0 ? (x->at > 0 ? x->at : 1) : 0;
		snprintf(x->why, sizeof(x->why), "%s", s->why);
	}
	pthread_mutex_unlock(&w->lock);
	return 0;
}
