/*
 * cache.c - thread-safe TTL cache with a bound on entries (see gw/cache.h).
 *
 * A chained hash table (FNV-1a, power-of-two buckets sized from max_entries)
 * finds entries; a doubly linked list keeps them in recency order, most
 * recent first, so eviction takes the tail in O(1). One mutex guards it all;
 * the clock is read before the lock is taken, so a slow clock never holds it.
 * An entry lives for [stored_ms, expires_ms): at expires_ms it is gone. An
 * expired entry is removed when a get finds it, and otherwise ages out of the
 * LRU tail like any other.
 *
 * Does not defend against: keys chosen to collide in FNV-1a (the hash is not
 * keyed; chains are bounded only by max_entries), or a clock that jumps back.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache_check.h"
#include "gw/cache.h"
#include "util.h"

/* Bucket counts stay within this, so a huge max_entries does not allocate up front. */
#define CACHE_MIN_BUCKETS 16
#define CACHE_MAX_BUCKETS ((size_t)1 << 20)

/*
 * One allocation per entry, sized to its key and text: a million cached
 * recipients must fit in a gateway's memory (about 130 bytes each).
 */
typedef struct cache_entry {
	struct cache_entry *hnext;       /* next in the same bucket */
	struct cache_entry *prev, *next; /* LRU list: prev is more recent */
	int64_t stored_ms, expires_ms;
	uint32_t hash;
	int32_t code;
	uint16_t keylen, textlen;
	uint8_t kind;
	char key[]; /* NUL-terminated, then the text, NUL-terminated */
} cache_entry;

struct gw_cache {
	pthread_mutex_t lock;
	gw_clock clock;
	cache_entry **buckets;
	size_t nbuckets; /* a power of two */
	cache_entry *head, *tail;
	size_t entries, max_entries;
	uint64_t hits, misses, expired, evictions;
};

static cache_entry *cache_find(gw_cache *c, const char *key, size_t len, uint32_t hash)
{
	cache_entry *e;

	for (e = c->buckets[hash & (c->nbuckets - 1)]; e != NULL; e = e->hnext)
		if (e->hash == hash && e->keylen == len && memcmp(e->key, key, len) == 0)
			return e;
	return NULL;
}

static void lru_unlink(gw_cache *c, cache_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_front(gw_cache *c, cache_entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head != NULL)
		c->head->prev = e;
	else
		c->tail = e;
	c->head = e;
}

/* Take e out of both the table and the list, and free it. */
static void cache_unlink_free(gw_cache *c, cache_entry *e)
{
	cache_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(c, e);
	c->entries--;
	free(e);
}

/* A new, unlinked entry; NULL on ENOMEM. */
static cache_entry *entry_new(const char *key, size_t keylen, uint32_t hash, gw_cache_kind kind, int code,
			      const char *text, int64_t now, uint32_t ttl_ms)
{
	size_t n = text != NULL ? strnlen(text, GW_CACHE_TEXT_MAX - 1) : 0;
	cache_entry *e = malloc(sizeof(*e) + keylen + 1 + n + 1);

	if (e == NULL)
		return NULL;
	memcpy(e->key, key, keylen);
	e->key[keylen] = '\0';
	memcpy(e->key + keylen + 1, text != NULL ? text : "", n);
	e->key[keylen + 1 + n] = '\0';
	e->keylen = (uint16_t)keylen;
	e->textlen = (uint16_t)n;
	e->hash = hash;
	e->kind = (uint8_t)kind;
	e->code = code;
	e->stored_ms = now;
	/* A fake clock may start anywhere; saturate rather than wrap. */
	e->expires_ms = now > INT64_MAX - (int64_t)ttl_ms ? INT64_MAX : now + (int64_t)ttl_ms;
	return e;
}

static void value_get(const cache_entry *e, gw_cache_value *v)
{
	v->kind = (gw_cache_kind)e->kind;
	v->code = e->code;
	memcpy(v->text, e->key + e->keylen + 1, (size_t)e->textlen + 1);
	v->stored_ms = e->stored_ms;
	v->expires_ms = e->expires_ms;
}

gw_cache *gw_cache_new(size_t max_entries, const gw_clock *clock)
{
	gw_cache *c;
	size_t nb;

	if (max_entries == 0) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	nb = CACHE_MIN_BUCKETS;
	while (nb < max_entries && nb < CACHE_MAX_BUCKETS)
		nb *= 2;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (c->buckets == NULL) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c->buckets);
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	c->nbuckets = nb;
	c->max_entries = max_entries;
	c->clock = clock != NULL ? *clock : gw_clock_monotonic;
	return c;
}

int gw_cache_put(gw_cache *c, const char *key, gw_cache_kind kind, int code, const char *text,
		 uint32_t ttl_ms)
{
	cache_entry *e;
	size_t len;
	uint32_t hash;
	int64_t now;

	if (key == NULL || kind < GW_CACHE_POSITIVE || kind > GW_CACHE_TEMPORARY) {
		errno = EINVAL;
		return -1;
	}
	len = strnlen(key, GW_CACHE_KEY_MAX + 1);
	if (len > GW_CACHE_KEY_MAX) {
		errno = EINVAL;
		return -1;
	}
	hash = gwu_hash(key, len);
	now = c->clock.now_ms(c->clock.ctx);

	pthread_mutex_lock(&c->lock);
	e = cache_find(c, key, len, hash);
	if (ttl_ms == 0) {
		/* Nothing to keep, and the old answer must not outlive the caller's wish. */
		if (e != NULL)
			cache_unlink_free(c, e);
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	/* Allocate before evicting or replacing, so ENOMEM leaves the cache as it was. */
	cache_entry *fresh = entry_new(key, len, hash, kind, code, text, now, ttl_ms);
	if (fresh == NULL) {
		pthread_mutex_unlock(&c->lock);
		errno = ENOMEM;
		return -1;
	}
	if (e != NULL) {
		cache_unlink_free(c, e); /* replaced: its size may differ */
	} else if (c->entries >= c->max_entries) {
		cache_unlink_free(c, c->tail);
		c->evictions++;
	}
	e = fresh;
	e->hnext = c->buckets[hash & (c->nbuckets - 1)];
	c->buckets[hash & (c->nbuckets - 1)] = e;
	lru_push_front(c, e);
	c->entries++;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int gw_cache_get(gw_cache *c, const char *key, gw_cache_value *value_r)
{
	cache_entry *e;
	size_t len;
	uint32_t hash;
	int64_t now;

	if (key == NULL)
		return 0;
	len = strnlen(key, GW_CACHE_KEY_MAX + 1);
	if (len > GW_CACHE_KEY_MAX) {
		/* Could never have been stored. */
		pthread_mutex_lock(&c->lock);
		c->misses++;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	hash = gwu_hash(key, len);
	now = c->clock.now_ms(c->clock.ctx);

	pthread_mutex_lock(&c->lock);
	e = cache_find(c, key, len, hash);
	if (e == NULL) {
		c->misses++;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	if (now >= e->expires_ms) {
		cache_unlink_free(c, e);
		c->expired++;
		c->misses++;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	lru_unlink(c, e);
	lru_push_front(c, e);
	c->hits++;
	if (value_r != NULL)
		value_get(e, value_r);
	pthread_mutex_unlock(&c->lock);
	return 1;
}

int gw_cache_remove(gw_cache *c, const char *key)
{
	cache_entry *e;
	size_t len;

	if (key == NULL)
		return 0;
	len = strnlen(key, GW_CACHE_KEY_MAX + 1);
	if (len > GW_CACHE_KEY_MAX)
		return 0;
	pthread_mutex_lock(&c->lock);
	e = cache_find(c, key, len, gwu_hash(key, len));
	if (e != NULL)
		cache_unlink_free(c, e);
	pthread_mutex_unlock(&c->lock);
	return e != NULL;
}

size_t gw_cache_clear(gw_cache *c)
{
	cache_entry *e, *next;
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->entries;
	for (e = c->head; e != NULL; e = next) {
		next = e->next;
		free(e);
	}
	memset(c->buckets, 0, c->nbuckets * sizeof(*c->buckets));
	c->head = c->tail = NULL;
	c->entries = 0;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void gw_cache_stats_get(gw_cache *c, gw_cache_stats *stats_r)
{
	pthread_mutex_lock(&c->lock);
	stats_r->entries = c->entries;
	stats_r->max_entries = c->max_entries;
	stats_r->hits = c->hits;
	stats_r->misses = c->misses;
	stats_r->expired = c->expired;
	stats_r->evictions = c->evictions;
	pthread_mutex_unlock(&c->lock);
}

void gw_cache_free(gw_cache **cp)
{
	gw_cache *c;

	if (cp == NULL || *cp == NULL)
		return;
	c = *cp;
	gw_cache_clear(c);
	pthread_mutex_destroy(&c->lock);
	free(c->buckets);
	free(c);
	*cp = NULL;
}

/* Tests: 0 when the table, the list and the count agree; -1 otherwise. */
int gw_cache_check(gw_cache *c)
{
	cache_entry *e, *h;
	size_t n = 0, in_table = 0, i;
	int ok = 1;

	pthread_mutex_lock(&c->lock);
	for (e = c->head; e != NULL; e = e->next) {
		if ((e->prev == NULL) != (e == c->head) || (e->next == NULL) != (e == c->tail))
			ok = 0;
		if (e->next != NULL && e->next->prev != e)
			ok = 0;
		for (h = c->buckets[e->hash & (c->nbuckets - 1)]; h != NULL && h != e; h = h->hnext)
			;
		if (h == NULL)
			ok = 0;
		n++;
	}
	for (i = 0; i < c->nbuckets; i++)
		for (h = c->buckets[i]; h != NULL; h = h->hnext)
			in_table++;
	if (n != c->entries || in_table != c->entries || c->entries > c->max_entries)
		ok = 0;
	pthread_mutex_unlock(&c->lock);
	return ok ? 0 : -1;
}
