/*
 * unknown_limit.c - sliding-window counters of unknown recipients per client
 * address, in a fixed table with LRU eviction (see unknown_limit.h).
 *
 * All memory is allocated once, at creation: max_clients entries, libgw's
 * hash map sized for them (it never grows past what it was sized for) and an
 * LRU list threaded through the entries. A lookup is one hash and a short
 * chain walk; nothing grows with traffic.
 *
 * Does not defend against: clock jumps backwards (the monotonic clock does
 * not jump; a fake clock that does only makes counts smaller).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../libgw/hmap.h" /* internal to libgw, reached through the static library */
#include "unknown_limit.h"

#define NONE UINT32_MAX
/* A period no real slot can have: "this slot is empty". */
#define EMPTY_PERIOD (INT64_MIN / 2)

typedef struct ul_entry {
	char key[GWM_UL_KEY_MAX];
	int64_t window_ms;            /* the window the slots were cut for */
	int64_t period[GWM_UL_SLOTS]; /* which slot-length period each slot counts */
	uint32_t count[GWM_UL_SLOTS];
	gwu_hnode node;      /* keyed by key */
	uint32_t prev, next; /* LRU list: head is the most recent */
} ul_entry;

struct gwm_ul {
	pthread_mutex_t lock;
	gw_clock clock;
	size_t max, used;
	gwu_hmap map;
	ul_entry *e;
	uint32_t head, tail;
	uint64_t evictions;
};

gwm_ul *gwm_ul_new(size_t max_clients, const gw_clock *clock)
{
	gwm_ul *ul;

	if (max_clients == 0 || max_clients > (1u << 24)) {
		errno = EINVAL;
		return NULL;
	}
	if ((ul = calloc(1, sizeof(*ul))) == NULL)
		return NULL;
	ul->e = calloc(max_clients, sizeof(*ul->e));
	if (ul->e == NULL || gwu_hmap_init(&ul->map, max_clients) != 0) {
		free(ul->e);
		free(ul);
		return NULL;
	}
	pthread_mutex_init(&ul->lock, NULL);
	ul->clock = clock != NULL ? *clock : gw_clock_monotonic;
	ul->max = max_clients;
	ul->head = ul->tail = NONE;
	return ul;
}

void gwm_ul_free(gwm_ul **ulp)
{
	gwm_ul *ul;

	if (ulp == NULL || (ul = *ulp) == NULL)
		return;
	pthread_mutex_destroy(&ul->lock);
	gwu_hmap_fini(&ul->map);
	free(ul->e);
	free(ul);
	*ulp = NULL;
}

static uint32_t find(gwm_ul *ul, const char *key)
{
	gwu_hnode *n = gwu_hmap_get(&ul->map, key);

	return n != NULL ? (uint32_t)(gwu_entry(n, ul_entry, node) - ul->e) : NONE;
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
	uint32_t i;

	if (ul->used < ul->max) {
		i = (uint32_t)ul->used++;
	} else {
		i = ul->tail;
		lru_unlink(ul, i);
		gwu_hmap_del(&ul->map, &ul->e[i].node);
		ul->evictions++;
	}
	memset(&ul->e[i], 0, sizeof(ul->e[i]));
	memcpy(ul->e[i].key, key, strlen(key) + 1); /* key comes from make_key: fits */
	reset_slots(&ul->e[i], window_ms);
	gwu_hmap_put(&ul->map, &ul->e[i].node, ul->e[i].key);
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

size_t gwm_ul_table_size(gwm_ul *ul)
{
	size_t n;

	pthread_mutex_lock(&ul->lock);
	n = ul->map.nbuckets;
	pthread_mutex_unlock(&ul->lock);
	return n;
}
