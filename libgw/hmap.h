/*
 * hmap.h - a chained hash map from strings to the caller's entries (internal
 * to libgw; gw-milter uses it through the static library).
 *
 * Intrusive: an entry embeds a gwu_hnode and the node points at the entry's
 * key, which must not change while the entry is in the map. The caller owns
 * the entries and does the locking; the map owns only its bucket array. Keys
 * are compared exactly (byte for byte), hashed with gwu_hash. The array
 * doubles when the map holds more entries than buckets; when that allocation
 * fails the chains just grow longer, so putting never fails. A map that never
 * holds more than gwu_hmap_init's expected entries never allocates again.
 *
 * Does not defend against: keys chosen to collide (gwu_hash is not keyed), a
 * key put twice (look it up first), entries put or deleted during an
 * iteration other than the one gwu_hmap_next just returned.
 */
#ifndef GW_HMAP_H
#define GW_HMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct gwu_hnode {
	struct gwu_hnode *next; /* same bucket */
	const char *key;
	uint32_t hash;
} gwu_hnode;

typedef struct gwu_hmap {
	gwu_hnode **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
} gwu_hmap;

typedef struct gwu_hmap_iter {
	size_t bucket;
	gwu_hnode *next;
} gwu_hmap_iter;

/* The entry of type type whose member member is node. */
#define gwu_entry(node, type, member) ((type *)(void *)((char *)(node)-offsetof(type, member)))

/* An empty map with buckets for expected entries. 0, or -1 on ENOMEM. */
int gwu_hmap_init(gwu_hmap *m, size_t expected);
/* Free the bucket array (not the entries). */
void gwu_hmap_fini(gwu_hmap *m);
/* The node whose key is key, or NULL. */
gwu_hnode *gwu_hmap_get(const gwu_hmap *m, const char *key);
/* Put node under key (stored in node->key; key must not be in the map yet). */
void gwu_hmap_put(gwu_hmap *m, gwu_hnode *node, const char *key);
/* Take node (which is in the map) out of it. */
void gwu_hmap_del(gwu_hmap *m, gwu_hnode *node);
/*
 * Every node once, in no order: start with an iterator set to {0} and call
 * until NULL. The node just returned may be deleted (and freed) before the
 * next call.
 */
gwu_hnode *gwu_hmap_next(const gwu_hmap *m, gwu_hmap_iter *it);

#endif
