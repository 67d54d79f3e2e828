/*
 * shared.c - the Redis sharing of the bounce-flood guard (see shared.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "shared.h"
#include "gw/log.h"
#include "gw/time.h"

#define HASH       "gw:flood:corr"
#define MODE_PREF  "gw:flood:high:"
#define SCAN_COUNT "1000"

typedef struct item {
	char key[GWM_CORR_KEY_MAX];
	double score;
	int64_t stamp;
} item;

typedef struct batch {
	item *v;
	size_t n, cap;
	int oom;
} batch;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_t thread;
static int running, quit;
static atomic_int state = -1, fleet_high, my_high;
static int published; /* our mode key is set in Redis */
static char host[256], self[256];
static int port, db;
static long refresh_ms;
static gwm_corr *corr;
static redisContext *rc;

int gwm_shared_state(void)
{
	return atomic_load(&state);
}

int gwm_shared_fleet_high(void)
{
	return atomic_load(&fleet_high);
}

void gwm_shared_set_high(int high)
{
	atomic_store(&my_high, high);
}

static struct timeval timeout_tv(void)
{
	long ms = refresh_ms < 2000 ? refresh_ms : 2000;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	return tv;
}

static void set_state(int up, const char *why)
{
	int old = atomic_exchange(&state, up);

	if (old != up && up)
		gw_log(GW_LOG_NOTICE, "shared", "redis=%s:%d status=up", host, port);
	else if (old != up)
		gw_log(GW_LOG_WARNING, "shared", "redis=%s:%d status=down error=\"%s\" using=local-state",
		       host, port, why);
}

static void disconnect(const char *why)
{
	char w[256];

	/* why may point into rc (its errstr): copied before rc goes. */
	snprintf(w, sizeof(w), "%s", why);
	if (rc != NULL) {
		redisFree(rc);
		rc = NULL;
	}
	set_state(0, w);
}

static int connect_redis(void)
{
	struct timeval tv = timeout_tv();
	redisReply *r;

	if (rc != NULL)
		return 0;
	rc = redisConnectWithTimeout(host, port, tv);
	if (rc == NULL || rc->err) {
		char why[256];
		snprintf(why, sizeof(why), "%s", rc != NULL ? rc->errstr : "out of memory");
		disconnect(why);
		return -1;
	}
	(void)redisSetTimeout(rc, tv);
	if (db != 0) {
		r = redisCommand(rc, "SELECT %d", db);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			if (r != NULL)
				freeReplyObject(r);
			disconnect("SELECT failed");
			return -1;
		}
		freeReplyObject(r);
	}
	/* A new connection: everything we hold may be missing there (a restarted Redis). */
	gwm_corr_mark_all(corr, GWM_CORR_DIRTY_SHARED);
	published = 0;
	return 0;
}

static void collect(void *ctx, const char *key, double score, int64_t stamp)
{
	batch *b = ctx;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		item *v = realloc(b->v, cap * sizeof(*v));
		if (v == NULL) {
			b->oom = 1;
			return;
		}
		b->v = v;
		b->cap = cap;
	}
	snprintf(b->v[b->n].key, sizeof(b->v[b->n].key), "%s", key);
	b->v[b->n].score = score;
	b->v[b->n].stamp = stamp;
	b->n++;
}

/* One command's reply, checked; 0 ok. */
static int reply_ok(void)
{
	redisReply *r = NULL;
	int ok;

	if (redisGetReply(rc, (void **)&r) != REDIS_OK || r == NULL)
		return -1;
	ok = r->type != REDIS_REPLY_ERROR;
	freeReplyObject(r);
	return ok ? 0 : -1;
}

/* Write the dirty entries and our mode, pipelined. 0 ok. */
static int write_batch(void)
{
	batch b = {0};
	size_t i, sent = 0;
	int err = 0, high = atomic_load(&my_high), mode_cmd = 0;

	gwm_corr_drain(corr, GWM_CORR_DIRTY_SHARED, collect, &b);
	if (b.oom)
		gwm_corr_mark_all(corr, GWM_CORR_DIRTY_SHARED);
	for (i = 0; i < b.n; i++) {
		char v[64];
		snprintf(v, sizeof(v), "%.6f %lld", b.v[i].score, (long long)b.v[i].stamp);
		if (redisAppendCommand(rc, "HSET " HASH " %s %s", b.v[i].key, v) != REDIS_OK) {
			err = 1;
			break;
		}
		sent++;
	}
	if (!err && (high || published)) {
		if (high)
			err = redisAppendCommand(rc, "SET " MODE_PREF "%s 1 PX %ld", self, refresh_ms * 3) !=
			      REDIS_OK;
		else
			err = redisAppendCommand(rc, "DEL " MODE_PREF "%s", self) != REDIS_OK;
		mode_cmd = !err;
	}
	for (i = 0; i < sent + (size_t)mode_cmd; i++)
		if (reply_ok() != 0)
			err = 1;
	free(b.v);
	if (err) {
		gwm_corr_mark_all(corr, GWM_CORR_DIRTY_SHARED);
		return -1;
	}
	if (mode_cmd)
		published = high;
	return 0;
}

/* Merge the shared hash into the local table. 0 ok. */
static int read_hash(void)
{
	char cursor[32] = "0";
	size_t seen = 0;

	do {
		redisReply *r = redisCommand(rc, "HSCAN " HASH " %s COUNT " SCAN_COUNT, cursor);
		size_t i;

		if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
			if (r != NULL)
				freeReplyObject(r);
			return -1;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (i = 0; i + 1 < r->element[1]->elements; i += 2) {
			redisReply *k = r->element[1]->element[i], *v = r->element[1]->element[i + 1];
			double score;
			long long stamp;

			/* Another writer's junk is skipped, never trusted. */
			if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
			    k->len < GWM_CORR_KEY_MAX && sscanf(v->str, "%lf %lld", &score, &stamp) == 2)
				(void)gwm_corr_merge(corr, k->str, score, (int64_t)stamp,
						     GWM_CORR_DIRTY_STORE);
			seen++;
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0 && seen < GWM_SHARED_READ_MAX);
	return 0;
}

/* Is another gateway's mode key there? 0 ok (fleet_high set), -1 error. */
static int read_modes(void)
{
	char cursor[32] = "0", mine[512];
	int high = 0;

	snprintf(mine, sizeof(mine), MODE_PREF "%s", self);
	do {
		redisReply *r = redisCommand(rc, "SCAN %s MATCH " MODE_PREF "* COUNT " SCAN_COUNT, cursor);
		size_t i;

		if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
			if (r != NULL)
				freeReplyObject(r);
			return -1;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (i = 0; i < r->element[1]->elements; i++) {
			redisReply *k = r->element[1]->element[i];
			if (k->type == REDIS_REPLY_STRING && strcmp(k->str, mine) != 0)
				high = 1;
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
	atomic_store(&fleet_high, high);
	return 0;
}

void gwm_shared_refresh_now(void)
{
	if (corr == NULL || connect_redis() != 0)
		return;
	if (write_batch() != 0 || read_hash() != 0 || read_modes() != 0) {
		disconnect(rc->err ? rc->errstr : "bad reply");
		/* Without the fleet's word, our own detector decides. */
		atomic_store(&fleet_high, 0);
		return;
	}
	set_state(1, NULL);
}

static void *run(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	while (!quit) {
		pthread_mutex_unlock(&lock);
		gwm_shared_refresh_now();
		pthread_mutex_lock(&lock);
		if (!quit)
			(void)gw_cond_wait_ms(&cond, &lock, refresh_ms);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int gwm_shared_start(const char *h, int p, int d, long r, gwm_corr *t, const char *name)
{
	int e;

	if (running)
		return 0;
	snprintf(host, sizeof(host), "%s", h);
	snprintf(self, sizeof(self), "%s", name);
	port = p;
	db = d;
	refresh_ms = r > 0 ? r : 5000;
	corr = t;
	quit = 0;
	atomic_store(&state, 0);
	if ((e = pthread_create(&thread, NULL, run, NULL)) != 0) {
		errno = e;
		return -1;
	}
	running = 1;
	return 0;
}

void gwm_shared_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&lock);
	quit = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(thread, NULL);
	running = 0;
	/* Leave the fleet's flood flag to its expiry if Redis is gone; say we left if it is there. */
	if (rc != NULL) {
		atomic_store(&my_high, 0);
		(void)write_batch();
		redisFree(rc);
		rc = NULL;
	}
	corr = NULL;
	atomic_store(&state, -1);
	atomic_store(&fleet_high, 0);
}
