/*
 * hmap.c - a chained hash map from strings to the caller's entries (hmap.h).
 *
 * Power-of-two bucket counts, indexed by the low bits of gwu_hash (whose
 * final mix makes them usable). Each node keeps its hash, so growing never
 * hashes a key again and most mismatches cost no strcmp.
 */
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "util.h"

#define HMAP_MIN_BUCKETS 16

int gwu_hmap_init(gwu_hmap *m, size_t expected)
{
	size_t nb = HMAP_MIN_BUCKETS;

	while (nb < expected && nb <= SIZE_MAX / 4)
		nb <<= 1;
	m->buckets = calloc(nb, sizeof(*m->buckets));
	m->nbuckets = m->buckets != NULL ? nb : 0;
	m->count = 0;
	return m->buckets != NULL ? 0 : -1;
}

void gwu_hmap_fini(gwu_hmap *m)
{
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = m->count = 0;
}

gwu_hnode *gwu_hmap_get(const gwu_hmap *m, const char *key)
{
	uint32_t h = gwu_hash(key, strlen(key));
	gwu_hnode *n;

	for (n = m->buckets[h & (m->nbuckets - 1)]; n != NULL; n = n->next)
		if (n->hash == h && strcmp(n->key, key) == 0)
			return n;
	return NULL;
}

/* Double the bucket array; on ENOMEM keep the old one. */
static void grow(gwu_hmap *m)
{
	size_t nb = m->nbuckets * 2, i;
	gwu_hnode **b = calloc(nb, sizeof(*b));

	if (b == NULL)
		return;
	for (i = 0; i < m->nbuckets; i++) {
		gwu_hnode *n = m->buckets[i], *next;

		for (; n != NULL; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = nb;
}

void gwu_hmap_put(gwu_hmap *m, gwu_hnode *node, const char *key)
{
	gwu_hnode **b;

	if (m->count >= m->nbuckets && m->nbuckets <= SIZE_MAX / 2 / sizeof(*m->buckets))
		grow(m);
	node->key = key;
	node->hash = gwu_hash(key, strlen(key));
	b = &m->buckets[node->hash & (m->nbuckets - 1)];
	node->next = *b;
	*b = node;
	m->count++;
}

void gwu_hmap_del(gwu_hmap *m, gwu_hnode *node)
{
	gwu_hnode **p = &m->buckets[node->hash & (m->nbuckets - 1)];

	while (*p != NULL && *p != node)
		p = &(*p)->next;
	if (*p == NULL)
		return;
	*p = node->next;
	node->next = NULL;
	m->count--;
}

gwu_hnode *gwu_hmap_next(const gwu_hmap *m, gwu_hmap_iter *it)
{
	gwu_hnode *n = it->next;

	while (n == NULL && it->bucket < m->nbuckets)
		n = m->buckets[it->bucket++];
	if (n != NULL)
		it->next = n->next;
	return n;
}
