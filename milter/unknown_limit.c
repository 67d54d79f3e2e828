/*
 * unknown_limit.c - sliding-window counters of unknown recipients per client
 * address, in a fixed table with LRU eviction (see unknown_limit.h).
 *
 * All memory is allocated once, at creation: max_clients entries, a bucket
 * array twice as large (chained through entry indices) and an LRU list
 * threaded through the entries. A lookup is one hash and a short chain walk;
 * nothing grows with traffic.
 *
 * Does not defend against: clock jumps backwards (the monotonic clock does
 * not jump; a fake clock that does only makes counts smaller).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unknown_limit.h"

#define NONE UINT32_MAX
/* A period no real slot can have: "this slot is empty". */
#define EMPTY_PERIOD (INT64_MIN / 2)

typedef struct ul_entry {
	char key[GWM_UL_KEY_MAX];
	int64_t window_ms;            /* the window the slots were cut for */
	int64_t period[GWM_UL_SLOTS]; /* which slot-length period each slot counts */
	uint32_t count[GWM_UL_SLOTS];
	uint32_t hnext;      /* next entry in the bucket chain */
	uint32_t prev, next; /* LRU list: head is the most recent */
} ul_entry;

struct gwm_ul {
	pthread_mutex_t lock;
	gw_clock clock;
	size_t max, used;
	uint32_t nbuckets; /* a power of two */
	uint32_t *bucket;
	ul_entry *e;
	uint32_t head, tail;
	uint64_t evictions;
};

static uint32_t hash_key(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

gwm_ul *gwm_ul_new(size_t max_clients, const gw_clock *clock)
{
	gwm_ul *ul;
	uint32_t nb = 16;

	if (max_clients == 0 || max_clients > (1u << 24)) {
		errno = EINVAL;
		return NULL;
	}
	while (nb < max_clients * 2)
		nb <<= 1;
	if ((ul = calloc(1, sizeof(*ul))) == NULL)
		return NULL;
	ul->bucket = malloc(nb * sizeof(*ul->bucket));
	ul->e = calloc(max_clients, sizeof(*ul->e));
	if (ul->bucket == NULL || ul->e == NULL) {
		free(ul->bucket);
		free(ul->e);
		free(ul);
		return NULL;
	}
	memset(ul->bucket, 0xff, nb * sizeof(*ul->bucket));
	pthread_mutex_init(&ul->lock, NULL);
	ul->clock = clock != NULL ? *clock : gw_clock_monotonic;
	ul->max = max_clients;
	ul->nbuckets = nb;
	ul->head = ul->tail = NONE;
	return ul;
}

void gwm_ul_free(gwm_ul **ulp)
{
	gwm_ul *ul;

	if (ulp == NULL || (ul = *ulp) == NULL)
		return;
	pthread_mutex_destroy(&ul->lock);
	free(ul->bucket);
	free(ul->e);
	free(ul);
	*ulp = NULL;
}

static uint32_t find(gwm_ul *ul, const char *key)
{
	uint32_t i = ul->bucket[hash_key(key) & (ul->nbuckets - 1)];

	while (i != NONE && strcmp(ul->e[i].key, key) != 0)
		i = ul->e[i].hnext;
	return i;
}

static void lru_unlink(gwm_ul *ul, uint32_t i)
{
	ul_entry *x = &ul->e[i];

	if (x->prev != NONE)
		ul->e[x->prev].next = x->next;
	else
		ul->head = x->next;
	if (x->next != NONE)
		ul->e[x->next].prev = x->prev;
	else
		ul->tail = x->prev;
}

static void lru_push_front(gwm_ul *ul, uint32_t i)
{
	ul_entry *x = &ul->e[i];

	x->prev = NONE;
	x->next = ul->head;
	if (ul->head != NONE)
		ul->e[ul->head].prev = i;
	ul->head = i;
	if (ul->tail == NONE)
		ul->tail = i;
}

static void chain_remove(gwm_ul *ul, uint32_t i)
{
	uint32_t *p = &ul->bucket[hash_key(ul->e[i].key) & (ul->nbuckets - 1)];

	while (*p != NONE && *p != i)
		p = &ul->e[*p].hnext;
	if (*p == i)
		*p = ul->e[i].hnext;
}

static void reset_slots(ul_entry *x, int64_t window_ms)
{
	size_t k;

	x->window_ms = window_ms;
	for (k = 0; k < GWM_UL_SLOTS; k++) {
		x->period[k] = EMPTY_PERIOD;
		x->count[k] = 0;
	}
}

/* A fresh entry for key: an unused one, or the least recently counted. */
static uint32_t insert(gwm_ul *ul, const char *key, int64_t window_ms)
{
	uint32_t i, b;

	if (ul->used < ul->max) {
		i = (uint32_t)ul->used++;
	} else {
		i = ul->tail;
		lru_unlink(ul, i);
		chain_remove(ul, i);
		ul->evictions++;
	}
	memset(&ul->e[i], 0, sizeof(ul->e[i]));
	memcpy(ul->e[i].key, key, strlen(key) + 1); /* key comes from make_key: fits */
	reset_slots(&ul->e[i], window_ms);
	b = hash_key(ul->e[i].key) & (ul->nbuckets - 1);
	ul->e[i].hnext = ul->bucket[b];
	ul->bucket[b] = i;
	lru_push_front(ul, i);
	return i;
}

static int64_t slot_len(int64_t window_ms)
{
	int64_t l = window_ms / GWM_UL_SLOTS;

	return l > 0 ? l : 1;
}

static unsigned sum(const ul_entry *x, int64_t now)
{
	int64_t p = now / slot_len(x->window_ms);
	unsigned total = 0;
	size_t k;

	for (k = 0; k < GWM_UL_SLOTS; k++)
		if (x->period[k] > p - GWM_UL_SLOTS && x->period[k] <= p)
			total += x->count[k];
	return total;
}

/* The key as stored: cut to fit, so lookups and inserts agree. */
static void make_key(char *buf, const char *client)
{
	snprintf(buf, GWM_UL_KEY_MAX, "%s", client != NULL ? client : "");
}

unsigned gwm_ul_count(gwm_ul *ul, const char *client, int64_t window_ms)
{
	char key[GWM_UL_KEY_MAX];
	unsigned n = 0;
	uint32_t i;

	if (ul == NULL || window_ms <= 0)
		return 0;
	make_key(key, client);
	pthread_mutex_lock(&ul->lock);
	i = find(ul, key);
	if (i != NONE && ul->e[i].window_ms == window_ms)
		n = sum(&ul->e[i], ul->clock.now_ms(ul->clock.ctx));
	pthread_mutex_unlock(&ul->lock);
	return n;
}

int gwm_ul_over(gwm_ul *ul, const char *client, unsigned limit, int64_t window_ms)
{
	return limit > 0 && gwm_ul_count(ul, client, window_ms) >= limit;
}

void gwm_ul_add(gwm_ul *ul, const char *client, int64_t window_ms)
{
	char key[GWM_UL_KEY_MAX];
	ul_entry *x;
	uint32_t i;
	int64_t now, p;
	size_t k;

	if (ul == NULL || window_ms <= 0)
		return;
	make_key(key, client);
	pthread_mutex_lock(&ul->lock);
	now = ul->clock.now_ms(ul->clock.ctx);
	i = find(ul, key);
	if (i == NONE) {
		i = insert(ul, key, window_ms);
	} else {
		lru_unlink(ul, i);
		lru_push_front(ul, i);
	}
	x = &ul->e[i];
	if (x->window_ms != window_ms) /* reloaded with another window: start over */
		reset_slots(x, window_ms);
	p = now / slot_len(window_ms);
	k = (size_t)(((p % GWM_UL_SLOTS) + GWM_UL_SLOTS) % GWM_UL_SLOTS);
	if (x->period[k] != p) {
		x->period[k] = p;
		x->count[k] = 0;
	}
	if (x->count[k] < UINT32_MAX)
		x->count[k]++;
	pthread_mutex_unlock(&ul->lock);
}

size_t gwm_ul_clients(gwm_ul *ul)
{
	size_t n;

	pthread_mutex_lock(&ul->lock);
	n = ul->used;
	pthread_mutex_unlock(&ul->lock);
	return n;
}

uint64_t gwm_ul_evictions(gwm_ul *ul)
{
	uint64_t n;

	pthread_mutex_lock(&ul->lock);
	n = ul->evictions;
	pthread_mutex_unlock(&ul->lock);
	return n;
}
