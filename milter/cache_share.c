/*
 * cache_share.c - the call-ahead cache shared through a Redis stream (see cache_share.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_entry.h"
#include "cache_share.h"
#include "conf.h"
#include "corr.h"
#include "gw/callahead.h"
#include "gw/log.h"

static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER; /* the queue, the name */
static gwm_ce *queue;
static size_t queued;
static char self[GWM_CE_GW_MAX + 1];
static char last_id[64] = "0-0"; /* the shared thread's only */
static atomic_int on;
static atomic_ullong published, copied, malformed, dropped, syncs;

void gwm_cs_enable(const char *name)
{
	pthread_mutex_lock(&qlock);
	snprintf(self, sizeof(self), "%s", name);
	if (queue == NULL)
		queue = calloc(GWM_CS_QUEUE_MAX, sizeof(*queue));
	queued = 0;
	pthread_mutex_unlock(&qlock);
	atomic_store(&on, queue != NULL);
}

void gwm_cs_disable(void)
{
	atomic_store(&on, 0);
	pthread_mutex_lock(&qlock);
	free(queue);
	queue = NULL;
	queued = 0;
	pthread_mutex_unlock(&qlock);
}

int gwm_cs_enabled(void)
{
	return atomic_load(&on);
}

/* Copy s, cut to size - 1, control characters as '?': what the parser would take back. */
static void clean(char *dst, size_t size, const char *s)
{
	size_t i;

	for (i = 0; s != NULL && s[i] != '\0' && i + 1 < size; i++)
		dst[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	dst[i] = '\0';
}

void gwm_cs_on_verdict(void *ctx, const char *key, gw_cache_kind kind, int code, const char *enh,
		       const char *text, uint32_t ttl_ms)
{
	int64_t expires = gw_clock_wall.now_ms(gw_clock_wall.ctx) + (int64_t)ttl_ms;

	(void)ctx;
	if (!atomic_load(&on) || strlen(key) > GWM_CE_KEY_MAX)
		return;
	pthread_mutex_lock(&qlock);
	if (queue == NULL || queued >= GWM_CS_QUEUE_MAX) {
		pthread_mutex_unlock(&qlock);
		atomic_fetch_add(&dropped, 1);
		return;
	}
	gwm_ce *e = &queue[queued++];
	memset(e, 0, sizeof(*e));
	snprintf(e->gw, sizeof(e->gw), "%s", self);
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->kind = kind;
	e->code = code;
	clean(e->enh, sizeof(e->enh), enh);
	clean(e->text, sizeof(e->text), text);
	e->expires_ms = expires;
	pthread_mutex_unlock(&qlock);
}

void gwm_redis_why(char *why, size_t len, const char *what, const redisContext *rc, const redisReply *r)
{
	if (r != NULL && r->type == REDIS_REPLY_ERROR)
		snprintf(why, len, "%s: %.180s", what, r->str);
	else if (rc != NULL && rc->err)
		snprintf(why, len, "%s: %.180s", what, rc->errstr);
	else
		snprintf(why, len, "%s: unexpected reply", what);
}

/* The newest id in the stream ("0-0" when empty) as where to read from. 0 ok. */
static int start_at_newest(redisContext *rc, char *why, size_t whylen)
{
	redisReply *r = redisCommand(rc, "XREVRANGE " GWM_CS_STREAM " + - COUNT 1");

	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		gwm_redis_why(why, whylen, "XREVRANGE", rc, r);
		if (r != NULL)
			freeReplyObject(r);
		return -1;
	}
	snprintf(last_id, sizeof(last_id), "0-0");
	if (r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements >= 1 &&
	    r->element[0]->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[0]->element[0]->len < sizeof(last_id))
		snprintf(last_id, sizeof(last_id), "%s", r->element[0]->element[0]->str);
	freeReplyObject(r);
	return 0;
}

/* Send the queue in one pipeline. 0 ok. */
static int publish(redisContext *rc, char *why, size_t whylen)
{
	gwm_ce *batch;
	size_t n, i, sent = 0;
	int err = 0;

	pthread_mutex_lock(&qlock);
	n = queued;
	batch = n > 0 ? malloc(n * sizeof(*batch)) : NULL;
	if (batch != NULL)
		memcpy(batch, queue, n * sizeof(*batch));
	else if (n > 0)
		atomic_fetch_add(&dropped, n);
	queued = 0;
	pthread_mutex_unlock(&qlock);
	if (batch == NULL)
		return 0;
	for (i = 0; i < n; i++) {
		const char *argv[6 + 14];
		size_t argl[6 + 14];
		char num[2][24];
		int k;

		argv[0] = "XADD";
		argv[1] = GWM_CS_STREAM;
		argv[2] = "MAXLEN";
		argv[3] = "~";
		argv[4] = GWM_CS_STREAM_MAXLEN;
		argv[5] = "*";
		if (gwm_ce_fields(&batch[i], num, argv + 6) != 0) {
			atomic_fetch_add(&dropped, 1); /* never sent what we would refuse to read */
			continue;
		}
		for (k = 0; k < 20; k++)
			argl[k] = strlen(argv[k]);
		if (redisAppendCommandArgv(rc, 20, argv, argl) != REDIS_OK) {
			err = 1;
			break;
		}
		sent++;
	}
	for (i = 0; i < sent; i++) {
		redisReply *r = NULL;

		if (redisGetReply(rc, (void **)&r) != REDIS_OK)
			r = NULL;
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			if (!err)
				gwm_redis_why(why, whylen, "XADD", rc, r);
			err = 1;
		} else {
			atomic_fetch_add(&published, 1);
		}
		if (r != NULL)
			freeReplyObject(r);
		if (rc->err)
			break; /* the connection is gone: no more replies */
	}
	free(batch);
	return err ? -1 : 0;
}

/* One stream entry [id, [field, value, ...]]: copied into the local cache if it is another's and good. */
static void take(const redisReply *ent, gwm_snapshot *s, uint32_t pos, uint32_t neg, int64_t now)
{
	const redisReply *fv = ent->element[1];
	const char *f[64];
	size_t len[64], i;
	gwm_ce e;
	int64_t ttl;

	if (fv->type != REDIS_REPLY_ARRAY || fv->elements > 64) {
		atomic_fetch_add(&malformed, 1);
		return;
	}
	for (i = 0; i < fv->elements; i++) {
		if (fv->element[i]->type != REDIS_REPLY_STRING) {
			atomic_fetch_add(&malformed, 1);
			return;
		}
		f[i] = fv->element[i]->str;
		len[i] = fv->element[i]->len;
	}
	if (gwm_ce_parse(f, len, fv->elements, &e) != 0) {
		atomic_fetch_add(&malformed, 1);
		return;
	}
	if (strcmp(e.gw, self) == 0)
		return; /* ours: already in our cache, or replaced since */
	if ((ttl = gwm_ce_ttl(&e, now, pos, neg)) < 0) {
		atomic_fetch_add(&malformed, 1);
		return;
	}
	if (ttl == 0)
		return;
	if (gw_ca_import(s->ca, e.key, e.kind, e.code, e.enh, e.text, (uint32_t)ttl) == 0)
		atomic_fetch_add(&copied, 1);
	else if (errno == EINVAL)
		atomic_fetch_add(&malformed, 1);
}

/* A page of XREAD: [[stream, [[id, fields], ...]]] or nil. Entries taken; -1 on a bad shape. */
static long page(const redisReply *r, gwm_snapshot *s, uint32_t pos, uint32_t neg)
{
	const redisReply *ents;
	int64_t now = gw_clock_wall.now_ms(gw_clock_wall.ctx);
	size_t i;

	if (r->type == REDIS_REPLY_NIL)
		return 0;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 || r->element[0]->type != REDIS_REPLY_ARRAY ||
	    r->element[0]->elements != 2 || r->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
		return -1;
	ents = r->element[0]->element[1];
	for (i = 0; i < ents->elements; i++) {
		const redisReply *ent = ents->element[i];

		if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
		    ent->element[0]->type != REDIS_REPLY_STRING || ent->element[0]->len >= sizeof(last_id))
			return -1; /* Redis itself never sends this: stop reading rather than guess */
		snprintf(last_id, sizeof(last_id), "%s", ent->element[0]->str);
		take(ent, s, pos, neg, now);
	}
	return (long)ents->elements;
}

/* Read what the others wrote since last_id. 0 ok. */
static int read_stream(redisContext *rc, char *why, size_t whylen)
{
	gwm_snapshot *s = gwm_current_get();
	gw_ca_opts o;
	const char *bad;
	long got, total = 0;

	if (s == NULL)
		return 0;
	gwm_config_ca_opts(s->conf, &o);
	(void)gw_ca_opts_fill(&o, &bad);
	do {
		redisReply *r =
		    redisCommand(rc, "XREAD COUNT %d STREAMS " GWM_CS_STREAM " %s", GWM_CS_PAGE, last_id);

		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			gwm_redis_why(why, whylen, "XREAD", rc, r);
			if (r != NULL)
				freeReplyObject(r);
			gwm_snapshot_unref(&s);
			return -1;
		}
		got = page(r, s, o.positive_ttl_ms, o.negative_ttl_ms);
		freeReplyObject(r);
		if (got < 0) {
			snprintf(why, whylen, "XREAD: unexpected reply");
			gwm_snapshot_unref(&s);
			return -1;
		}
		total += got;
	} while (got == GWM_CS_PAGE && total < GWM_CS_READ_MAX);
	gwm_snapshot_unref(&s);
	return 0;
}

int gwm_cs_sync(redisContext *rc, int fresh, char *why, size_t whylen)
{
	static int failing,
	    unplaced; /* the shared thread's only; unplaced: last_id not set since connecting */
	char w[256] = "";
	int err;

	if (!atomic_load(&on))
		return 0;
	if (fresh)
		unplaced = 1;
	/*
	 * Where to read from first: our own batch below is skipped anyway, and
	 * the past is never replayed (no read before the newest id is known).
	 */
	if (unplaced && start_at_newest(rc, w, sizeof(w)) == 0)
		unplaced = 0;
	err = unplaced || publish(rc, w, sizeof(w)) != 0 || read_stream(rc, w, sizeof(w)) != 0;
	if (err && rc->err) {
		snprintf(why, whylen, "%s", w);
		return -1; /* the connection: the whole shared state is down */
	}
	/*
	 * Redis answered with an error (say WRONGTYPE: something else under the
	 * stream's name): only the cache sharing stops, logged once until it works.
	 */
	if (err && !failing)
		gw_log(GW_LOG_WARNING, "shared_cache", "stream=" GWM_CS_STREAM " status=failing error=\"%s\"",
		       w);
	else if (!err && failing)
		gw_log(GW_LOG_NOTICE, "shared_cache", "stream=" GWM_CS_STREAM " status=ok");
	failing = err;
	if (!err)
		atomic_fetch_add(&syncs, 1);
	return 0;
}

void gwm_cs_stats_get(gwm_cs_stats *st)
{
	st->on = atomic_load(&on);
	st->published = atomic_load(&published);
	st->copied = atomic_load(&copied);
	st->malformed = atomic_load(&malformed);
	st->dropped = atomic_load(&dropped);
	st->syncs = atomic_load(&syncs);
}
