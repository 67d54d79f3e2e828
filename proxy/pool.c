/*
 * pool.c - the outbound address pool's table and the blocklist verdict.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw/time.h"
#include "pool.h"

typedef struct entry {
	char addr[64];
	char dest[300];
	int64_t ok_at, retired_at, until; /* 0: never */
} entry;

struct gwp_pool {
	pthread_mutex_t lock;
	int64_t (*now)(void);
	entry *e;
	size_t n;
};

static int64_t clock_ms(void)
{
	return gw_now_ms();
}

gwp_pool *gwp_pool_new(int64_t (*now)(void))
{
	gwp_pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	if ((p->e = calloc(GWP_POOL_ENTRIES, sizeof(entry))) == NULL) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	p->now = now != NULL ? now : clock_ms;
	return p;
}

void gwp_pool_free(gwp_pool **pp)
{
	gwp_pool *p = *pp;

	if (p == NULL)
		return;
	pthread_mutex_destroy(&p->lock);
	free(p->e);
	free(p);
	*pp = NULL;
}

static entry *find(gwp_pool *p, const char *addr, const char *dest)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->e[i].addr, addr) == 0 && strcmp(p->e[i].dest, dest) == 0)
			return &p->e[i];
	return NULL;
}

/* The entry for the pair, made when missing: a full table gives up its stalest entry. */
static entry *get(gwp_pool *p, const char *addr, const char *dest)
{
	entry *x = find(p, addr, dest);

	if (x != NULL)
		return x;
	if (p->n < GWP_POOL_ENTRIES) {
		x = &p->e[p->n++];
	} else {
		size_t i, old = 0;
		int64_t t, best = INT64_MAX;
		for (i = 0; i < p->n; i++) {
			t = p->e[i].until > p->e[i].ok_at ? p->e[i].until : p->e[i].ok_at;
			if (t < best) {
				best = t;
				old = i;
			}
		}
		x = &p->e[old];
	}
	memset(x, 0, sizeof(*x));
	snprintf(x->addr, sizeof(x->addr), "%s", addr);
	snprintf(x->dest, sizeof(x->dest), "%s", dest);
	return x;
}

int gwp_pool_choose(gwp_pool *p, const char *const *addrs, size_t n, const char *dest, int *fallback)
{
	size_t i;
	int pick = -1;
	int64_t now, oldest = INT64_MAX;

	*fallback = 0;
	if (n == 0)
		return -1;
	pthread_mutex_lock(&p->lock);
	now = p->now();
	for (i = 0; i < n; i++) {
		entry *x = find(p, addrs[i], dest);
		if (x == NULL || x->until <= now) {
			pthread_mutex_unlock(&p->lock);
			return (int)i;
		}
		if (x->retired_at < oldest) {
			oldest = x->retired_at;
			pick = (int)i;
		}
	}
	pthread_mutex_unlock(&p->lock);
	*fallback = 1;
	return pick;
}

int gwp_pool_choose_other(gwp_pool *p, const char *const *addrs, size_t n, const char *dest,
			  const char *except)
{
	size_t i;
	int pick = -1;
	int64_t now;

	pthread_mutex_lock(&p->lock);
	now = p->now();
	for (i = 0; i < n && pick < 0; i++) {
		const entry *x;
		if (strcmp(addrs[i], except) == 0)
			continue;
		x = find(p, addrs[i], dest);
		if (x == NULL || x->until <= now)
			pick = (int)i;
	}
	pthread_mutex_unlock(&p->lock);
	return pick;
}

int gwp_pool_retire(gwp_pool *p, const char *addr, const char *dest, int64_t ttl_ms)
{
	entry *x;
	int was_usable;
	int64_t now;

	pthread_mutex_lock(&p->lock);
	now = p->now();
	x = get(p, addr, dest);
	was_usable = x->until <= now;
	x->retired_at = now;
	x->until = now + ttl_ms;
	pthread_mutex_unlock(&p->lock);
	return was_usable;
}

int gwp_pool_is_retired(gwp_pool *p, const char *addr, const char *dest)
{
	const entry *x;
	int yes;

	pthread_mutex_lock(&p->lock);
	x = find(p, addr, dest);
	yes = x != NULL && x->until > p->now();
	pthread_mutex_unlock(&p->lock);
	return yes;
}

gwp_pool_act gwp_pool_verdict(gwp_pool *p, const char *const *addrs, size_t n, const char *dest,
			      const char *addr, const gw_reply *rep, char *const *words, size_t nw,
			      int64_t ttl_ms, int *newly_r)
{
	*newly_r = 0;
	if (!gwp_blocklisted(rep, words, nw))
		return GWP_POOL_PASS;
	*newly_r = gwp_pool_retire(p, addr, dest, ttl_ms);
	return gwp_pool_choose_other(p, addrs, n, dest, addr) >= 0 ? GWP_POOL_MOVE : GWP_POOL_LAST;
}

void gwp_pool_defer_reply(const gw_reply *rep, gw_reply *out)
{
	*out = *rep;
	out->code = 451;
	snprintf(out->enh, sizeof(out->enh), "4.7.1");
}

void gwp_pool_ok(gwp_pool *p, const char *addr, const char *dest)
{
	pthread_mutex_lock(&p->lock);
	get(p, addr, dest)->ok_at = p->now();
	pthread_mutex_unlock(&p->lock);
}

int gwp_pool_accepts_others(gwp_pool *p, const char *addr, const char *dest, int64_t window_ms)
{
	size_t i;
	int yes = 0;
	int64_t now;

	pthread_mutex_lock(&p->lock);
	now = p->now();
	for (i = 0; i < p->n && !yes; i++)
		yes = strcmp(p->e[i].dest, dest) == 0 && strcmp(p->e[i].addr, addr) != 0 &&
		      p->e[i].ok_at != 0 && now - p->e[i].ok_at <= window_ms;
	pthread_mutex_unlock(&p->lock);
	return yes;
}

size_t gwp_pool_list(gwp_pool *p, char *out, size_t outlen)
{
	size_t i, len = 0, count = 0;
	int64_t now;

	if (outlen > 0)
		out[0] = '\0';
	pthread_mutex_lock(&p->lock);
	now = p->now();
	for (i = 0; i < p->n; i++) {
		const entry *x = &p->e[i];
		int w;
		if (x->until <= now)
			continue;
		count++;
		if (len >= outlen)
			continue;
		w = snprintf(out + len, outlen - len, "%s %s retired=%lld left=%lld\n", x->addr, x->dest,
			     (long long)((now - x->retired_at) / 1000),
			     (long long)((x->until - now + 999) / 1000));
		if (w > 0)
			len += (size_t)w < outlen - len ? (size_t)w : outlen - len - 1;
	}
	pthread_mutex_unlock(&p->lock);
	return count;
}

static int has_word(const char *text, const char *word)
{
	size_t wl = strlen(word);

	if (wl == 0)
		return 0;
	for (; *text != '\0'; text++)
		if (strncasecmp(text, word, wl) == 0)
			return 1;
	return 0;
}

int gwp_blocklisted(const gw_reply *rep, char *const *words, size_t n)
{
	size_t i;

	if (rep->code != 550 && rep->code != 554 && !(rep->code / 100 == 5 && strcmp(rep->enh, "5.7.1") == 0))
		return 0;
	for (i = 0; i < n; i++)
		if (has_word(rep->text, words[i]))
			return 1;
	return 0;
}

size_t gwp_pool_export(gwp_pool *p, gwp_pool_saved *out, size_t max, int64_t *now_r)
{
	size_t i, k = 0;
	int64_t now;

	pthread_mutex_lock(&p->lock);
	*now_r = now = p->now();
	for (i = 0; i < p->n; i++) {
		const entry *x = &p->e[i];
		if (x->until <= now)
			continue;
		if (k < max) {
			memcpy(out[k].addr, x->addr, sizeof(out[k].addr));
			memcpy(out[k].dest, x->dest, sizeof(out[k].dest));
			out[k].at = x->retired_at;
			out[k].until = x->until;
		}
		k++;
	}
	pthread_mutex_unlock(&p->lock);
	return k;
}

void gwp_pool_import(gwp_pool *p, const char *addr, const char *dest, int64_t ago_ms, int64_t left_ms)
{
	entry *x;
	int64_t now;

	if (left_ms <= 0)
		return;
	pthread_mutex_lock(&p->lock);
	now = p->now();
	x = get(p, addr, dest);
	if (x->until < now + left_ms) {
		x->retired_at = now - ago_ms;
		x->until = now + left_ms;
	}
	pthread_mutex_unlock(&p->lock);
}
