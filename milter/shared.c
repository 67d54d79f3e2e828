/*
 * shared.c - the Redis sharing of the bounce-flood guard (see shared.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cache_share.h"
#include "shared.h"
#include "gw/log.h"
#include "gw/time.h"

#define CORR_PREF      "gw:flood:corr:"
#define NODE_PREF      "gw:flood:node:"
#define SCAN_COUNT     "1000"
#define MAX_NODES      256 /* gateways read per refresh */
#define DAY_S          86400LL
#define UNKNOWN        2  /* started, no refresh yet: the first outcome is logged, up or down */
#define CALM_REFRESHES 10 /* without another's token under our name: a duplicate gone */

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

typedef struct names {
	char (*v)[320];
	size_t n;
} names;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* the thread's quit and wakeups */
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t counts_lock = PTHREAD_MUTEX_INITIALIZER; /* own[] and fleet[] */
static double own[GWM_FD_KINDS], fleet[GWM_FD_KINDS];
static pthread_t thread;
static int running, quit;
static atomic_int state = -1, fleet_high, my_high;
static char host[256], self[256], user[256], pass[512], why[256];
static char token[GWM_SHARED_TOKEN_LEN + 1];        /* this instance's, next to its counts */
static int port, db, wrote, duplicate, calm, fresh; /* fresh: a new connection, the stream not read yet */
static long refresh_ms;
static long long ttl_s;
static gwm_corr *corr;
static redisContext *rc;

int gwm_shared_state(void)
{
	int st = atomic_load(&state);

	return st == UNKNOWN ? 0 : st;
}

int gwm_shared_fleet_high(void)
{
	return atomic_load(&fleet_high);
}

void gwm_shared_set_high(int high)
{
	atomic_store(&my_high, high);
}

void gwm_shared_set_counts(const double o[GWM_FD_KINDS])
{
	pthread_mutex_lock(&counts_lock);
	memcpy(own, o, sizeof(own));
	pthread_mutex_unlock(&counts_lock);
}

void gwm_shared_fleet_counts(double out[GWM_FD_KINDS])
{
	pthread_mutex_lock(&counts_lock);
	memcpy(out, fleet, sizeof(fleet));
	pthread_mutex_unlock(&counts_lock);
}

static void set_fleet(int high, const double c[GWM_FD_KINDS])
{
	atomic_store(&fleet_high, high);
	pthread_mutex_lock(&counts_lock);
	if (c != NULL)
		memcpy(fleet, c, sizeof(fleet));
	else
		memset(fleet, 0, sizeof(fleet));
	pthread_mutex_unlock(&counts_lock);
}

static struct timeval timeout_tv(void)
{
	long ms = refresh_ms < 2000 ? refresh_ms : 2000;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	return tv;
}

static void set_state(int up, const char *w)
{
	int old = atomic_exchange(&state, up);

	if (old != up && up)
		gw_log(GW_LOG_NOTICE, "shared", "redis=%s:%d status=up", host, port);
	else if (old != up)
		gw_log(GW_LOG_WARNING, "shared", "redis=%s:%d status=down error=\"%s\" using=local-state",
		       host, port, w);
}

/* Remember why the last command failed (a reply's error text, never what we sent). */
static void note(const char *what, const redisReply *r)
{
	gwm_redis_why(why, sizeof(why), what, rc, r);
}

static void disconnect(void)
{
	if (rc != NULL) {
		redisFree(rc);
		rc = NULL;
	}
	set_state(0, why);
}

/* One command whose reply is only checked; 0 ok. */
static int command_ok(const char *what, redisReply *r)
{
	int ok = r != NULL && r->type != REDIS_REPLY_ERROR;

	if (!ok)
		note(what, r);
	if (r != NULL)
		freeReplyObject(r);
	return ok ? 0 : -1;
}

static int connect_redis(void)
{
	struct timeval tv = timeout_tv();
	redisReply *r;

	if (rc != NULL)
		return 0;
	rc = redisConnectWithTimeout(host, port, tv);
	if (rc == NULL || rc->err) {
		snprintf(why, sizeof(why), "connect: %s", rc != NULL ? rc->errstr : "out of memory");
		disconnect();
		return -1;
	}
	(void)redisSetTimeout(rc, tv);
	if (pass[0] != '\0') {
		if (user[0] != '\0')
			r = redisCommand(rc, "AUTH %s %s", user, pass);
		else
			r = redisCommand(rc, "AUTH %s", pass);
		if (command_ok("AUTH refused", r) != 0) {
			disconnect();
			return -1;
		}
	}
	if (db != 0 && command_ok("SELECT", redisCommand(rc, "SELECT %d", db)) != 0) {
		disconnect();
		return -1;
	}
	/* A new connection: everything we hold may be missing there (a restarted Redis). */
	gwm_corr_mark_all(corr, GWM_CORR_DIRTY_SHARED);
	fresh = 1;
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

/* One pipelined reply, checked; 0 ok. */
static int reply_ok(void)
{
	redisReply *r = NULL;

	if (redisGetReply(rc, (void **)&r) != REDIS_OK)
		r = NULL;
	return command_ok("write", r);
}

/* Write our dirty counts, the hash's expiry and our node key, pipelined. 0 ok. */
static int write_batch(void)
{
	batch b = {0};
	size_t i, sent = 0, want;
	int err = 0;
	double c[GWM_FD_KINDS];

	gwm_corr_drain(corr, GWM_CORR_DIRTY_SHARED, collect, &b);
	if (b.oom)
		gwm_corr_mark_all(corr, GWM_CORR_DIRTY_SHARED);
	for (i = 0; i < b.n; i++) {
		char v[64];
		snprintf(v, sizeof(v), "%.6f %lld", b.v[i].score, (long long)b.v[i].stamp);
		if (redisAppendCommand(rc, "HSET " CORR_PREF "%s %s %s", self, b.v[i].key, v) != REDIS_OK) {
			err = 1;
			break;
		}
		sent++;
	}
	pthread_mutex_lock(&counts_lock);
	memcpy(c, own, sizeof(c));
	pthread_mutex_unlock(&counts_lock);
	want = sent;
	if (!err) {
		char v[128];
		snprintf(v, sizeof(v), "%d %.0f %.0f %.0f %s", atomic_load(&my_high), c[0], c[1], c[2],
			 token);
		err = redisAppendCommand(rc, "EXPIRE " CORR_PREF "%s %lld", self, ttl_s) != REDIS_OK ||
		      redisAppendCommand(rc, "SET " NODE_PREF "%s %s PX %ld", self, v, refresh_ms * 3) !=
			  REDIS_OK;
		want += err ? 0 : 2;
	}
	for (i = 0; i < want; i++)
		if (reply_ok() != 0)
			err = 1;
	free(b.v);
	if (err) {
		gwm_corr_mark_all(corr, GWM_CORR_DIRTY_SHARED);
		return -1;
	}
	wrote = 1;
	return 0;
}

int gwm_shared_token_foreign(const char *value, const char *mine)
{
	char t[GWM_SHARED_TOKEN_LEN + 2];
	int h;
	double c[GWM_FD_KINDS];

	/* One token too long reads as another's: %33s keeps a 33rd character. */
	if (value == NULL)
		return 0;
	if (sscanf(value, "%d %lf %lf %lf %33s", &h, &c[0], &c[1], &c[2], t) != 5)
		return 1;
	return strcmp(t, mine) != 0;
}

/*
 * Before writing, read our own node key back: after our first write it holds
 * our token or nothing (expired); another token means another gateway writes
 * under our name, and its counts and ours overwrite each other. Two such
 * gateways see their own token now and then (two of one's writes between two
 * of the other's), so the episode ends only after CALM_REFRESHES refreshes in
 * a row without another's: logged once when it starts and once when it ends.
 * 0 ok (whatever was found), -1 Redis.
 */
static int check_own_token(void)
{
	redisReply *r = redisCommand(rc, "GET " NODE_PREF "%s", self);
	int foreign;

	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		note("GET", r);
		if (r != NULL)
			freeReplyObject(r);
		return -1;
	}
	foreign = wrote && r->type == REDIS_REPLY_STRING && gwm_shared_token_foreign(r->str, token);
	if (foreign && !duplicate) {
		char v[256];
		gw_log_sanitize(v, sizeof(v), r->str, r->len, 60);
		gw_log(GW_LOG_WARNING, "shared",
		       "id=%s status=duplicate error=\"another gateway writes under this shared_state_id: "
		       "each overwrites the other's counts\" token=%s found=\"%s\"",
		       self, token, v);
	}
	if (foreign) {
		duplicate = 1;
		calm = 0;
	} else if (duplicate && ++calm >= CALM_REFRESHES) {
		gw_log(GW_LOG_NOTICE, "shared", "id=%s status=unique", self);
		duplicate = 0;
	}
	freeReplyObject(r);
	return 0;
}

/* A random token for this instance (hex); the time and PID when the kernel has none to give. */
static void new_token(void)
{
	unsigned char b[GWM_SHARED_TOKEN_LEN / 2];
	size_t i;

	if (getrandom(b, sizeof(b), GRND_NONBLOCK) != (ssize_t)sizeof(b)) {
		struct timespec ts;
		uint64_t x;

		clock_gettime(CLOCK_REALTIME, &ts);
		x = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
		for (i = 0; i < sizeof(b); i++, x = x * 6364136223846793005u + 1442695040888963407u)
			b[i] = (unsigned char)(x >> 56);
	}
	for (i = 0; i < sizeof(b); i++)
		snprintf(token + 2 * i, 3, "%02x", b[i]);
}

/* A SCAN reply's shape; 1 good. */
static int scan_shape(const redisReply *r)
{
	return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	       r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_ARRAY;
}

/* The keys matching PREFIX* into n (at most MAX_NODES). 0 ok. */
static int scan_keys(const char *prefix, names *n)
{
	char cursor[32] = "0";

	n->n = 0;
	do {
		redisReply *r = redisCommand(rc, "SCAN %s MATCH %s* COUNT " SCAN_COUNT, cursor, prefix);
		size_t i;

		if (!scan_shape(r)) {
			note("SCAN", r);
			if (r != NULL)
				freeReplyObject(r);
			return -1;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (i = 0; i < r->element[1]->elements && n->n < MAX_NODES; i++) {
			redisReply *k = r->element[1]->element[i];
			if (k->type == REDIS_REPLY_STRING && k->len < sizeof(n->v[0]))
				snprintf(n->v[n->n++], sizeof(n->v[0]), "%s", k->str);
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0 && n->n < MAX_NODES);
	return 0;
}

/* Read one gateway's hash: ours merged into our own counts, another's summed into refresh gen. 0 ok. */
static int read_hash(const char *name, int mine, uint64_t gen, size_t *seen)
{
	char cursor[32] = "0";

	do {
		redisReply *r = redisCommand(rc, "HSCAN %s %s COUNT " SCAN_COUNT, name, cursor);
		size_t i;

		if (!scan_shape(r)) {
			note("HSCAN", r);
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
			if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
			    k->len >= GWM_CORR_KEY_MAX || sscanf(v->str, "%lf %lld", &score, &stamp) != 2)
				continue;
			if (mine)
				(void)gwm_corr_merge(corr, k->str, score, (int64_t)stamp,
						     GWM_CORR_DIRTY_STORE);
			else
				(void)gwm_corr_fleet_add(corr, gen, k->str, score, (int64_t)stamp);
			(*seen)++;
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0 && *seen < GWM_SHARED_READ_MAX);
	return 0;
}

/* Every gateway's counts of correspondents. 0 ok. */
static int read_corr(names *n)
{
	char mine[320];
	size_t i, seen = 0;
	uint64_t gen;

	snprintf(mine, sizeof(mine), CORR_PREF "%s", self);
	if (scan_keys(CORR_PREF, n) != 0)
		return -1;
	gen = gwm_corr_fleet_begin(corr);
	for (i = 0; i < n->n && seen < GWM_SHARED_READ_MAX; i++)
		if (read_hash(n->v[i], strcmp(n->v[i], mine) == 0, gen, &seen) != 0)
			return -1; /* the last sums stay */
	gwm_corr_fleet_end(corr, gen);
	return 0;
}

/* The other gateways' modes and counts. 0 ok. */
static int read_nodes(names *n)
{
	char mine[320];
	double sum[GWM_FD_KINDS] = {0};
	size_t i;
	int high = 0;

	snprintf(mine, sizeof(mine), NODE_PREF "%s", self);
	if (scan_keys(NODE_PREF, n) != 0)
		return -1;
	for (i = 0; i < n->n; i++) {
		redisReply *r;
		int h;
		double c[GWM_FD_KINDS];

		if (strcmp(n->v[i], mine) == 0)
			continue;
		r = redisCommand(rc, "GET %s", n->v[i]);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			note("GET", r);
			if (r != NULL)
				freeReplyObject(r);
			return -1;
		}
		/* Expired between SCAN and GET (nil), or not ours: nothing. */
		if (r->type == REDIS_REPLY_STRING &&
		    sscanf(r->str, "%d %lf %lf %lf", &h, &c[0], &c[1], &c[2]) == 4) {
			high |= h != 0;
			for (int k = 0; k < GWM_FD_KINDS; k++)
				sum[k] += c[k] > 0 ? c[k] : 0;
		}
		freeReplyObject(r);
	}
	set_fleet(high, sum);
	return 0;
}

void gwm_shared_refresh_now(void)
{
	names n;

	if (corr == NULL || connect_redis() != 0) {
		/* Without the fleet's word, our own detector decides. */
		set_fleet(0, NULL);
		return;
	}
	if ((n.v = malloc(MAX_NODES * sizeof(*n.v))) == NULL) {
		gw_log(GW_LOG_ERR, "shared", "error=\"out of memory\"");
		return;
	}
	n.n = 0;
	if (check_own_token() != 0 || write_batch() != 0 || read_corr(&n) != 0 || read_nodes(&n) != 0 ||
	    gwm_cs_sync(rc, fresh, why, sizeof(why)) != 0) {
		disconnect();
		set_fleet(0, NULL);
	} else {
		fresh = 0;
		set_state(1, NULL);
	}
	free(n.v);
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

int gwm_shared_start(const gwm_shared_conf *c, gwm_corr *t)
{
	int e;

	if (running)
		return 0;
	snprintf(host, sizeof(host), "%s", c->host);
	snprintf(self, sizeof(self), "%s", c->id);
	snprintf(user, sizeof(user), "%s", c->user != NULL ? c->user : "");
	snprintf(pass, sizeof(pass), "%s", c->password != NULL ? c->password : "");
	port = c->port;
	db = c->db;
	refresh_ms = c->refresh_ms > 0 ? c->refresh_ms : 5000;
	ttl_s = c->half_ms / 100; /* ten half-lives, in seconds */
	if (ttl_s < DAY_S)
		ttl_s = DAY_S;
	corr = t;
	quit = 0;
	wrote = 0;
	duplicate = 0;
	calm = 0;
	new_token();
	atomic_store(&state, UNKNOWN);
	if ((e = pthread_create(&thread, NULL, run, NULL)) != 0) {
		explicit_bzero(pass, sizeof(pass));
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
	/* Say we left high-load mode if Redis is there; else the node key expires by itself. */
	if (rc != NULL) {
		double zero[GWM_FD_KINDS] = {0};
		atomic_store(&my_high, 0);
		gwm_shared_set_counts(zero);
		(void)write_batch();
		redisFree(rc);
		rc = NULL;
	}
	explicit_bzero(pass, sizeof(pass));
	corr = NULL;
	atomic_store(&state, -1);
	set_fleet(0, NULL);
}
