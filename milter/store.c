/*
 * store.c - the LMDB store of the bounce-flood guard (see store.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "store.h"

struct gwm_store {
	MDB_env *env;
	MDB_dbi corr, meta;
};

/* What a "corr" record holds. */
typedef struct rec {
	double score;
	int64_t stamp;
} rec;

static int fail(char *err, size_t errlen, const char *what, int rc)
{
	snprintf(err, errlen, "%s: %s", what, mdb_strerror(rc));
	return -1;
}

gwm_store *gwm_store_open(const char *dir, char *err, size_t errlen)
{
	gwm_store *s = calloc(1, sizeof(*s));
	MDB_txn *txn = NULL;
	int rc;

	if (s == NULL) {
		snprintf(err, errlen, "%s: out of memory", dir);
		return NULL;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		free(s);
		return NULL;
	}
	/* MDB_NOTLS: the transactions of the background thread and of start-up are not tied to a thread. */
	if ((rc = mdb_env_create(&s->env)) != 0 || (rc = mdb_env_set_maxdbs(s->env, 2)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, (size_t)GWM_STORE_MAP_MB << 20)) != 0 ||
	    (rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600)) != 0 ||
	    (rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "corr", MDB_CREATE, &s->corr)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0 || (rc = mdb_txn_commit(txn)) != 0) {
		char what[512];
		if (txn != NULL && rc != 0)
			mdb_txn_abort(txn);
		snprintf(what, sizeof(what), "%s", dir);
		fail(err, errlen, what, rc);
		if (s->env != NULL)
			mdb_env_close(s->env);
		free(s);
		return NULL;
	}
	return s;
}

void gwm_store_close(gwm_store **sp)
{
	if (sp == NULL || *sp == NULL)
		return;
	mdb_env_close((*sp)->env);
	free(*sp);
	*sp = NULL;
}

long gwm_store_load(gwm_store *s, gwm_corr *t, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	long n = 0;
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return fail(err, errlen, "load", rc);
	if ((rc = mdb_cursor_open(txn, s->corr, &cur)) != 0) {
		mdb_txn_abort(txn);
		return fail(err, errlen, "load", rc);
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		char key[GWM_CORR_KEY_MAX];
		rec r;
		int m;

		/* A record of another size or key length is not ours: dropped rather than trusted. */
		if (v.mv_size != sizeof(r) || k.mv_size == 0 || k.mv_size >= sizeof(key) ||
		    memchr(k.mv_data, '\0', k.mv_size) != NULL) {
			(void)mdb_cursor_del(cur, 0);
			continue;
		}
		memcpy(&r, v.mv_data, sizeof(r));
		memcpy(key, k.mv_data, k.mv_size);
		key[k.mv_size] = '\0';
		m = gwm_corr_merge(t, key, r.score, r.stamp, 0);
		if (m == 1)
			n++;
		else if (gwm_corr_score(t, key) < GWM_CORR_FORGET)
			(void)mdb_cursor_del(cur, 0); /* decayed to nothing while we were down */
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return fail(err, errlen, "load", rc);
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return fail(err, errlen, "load", rc);
	return n;
}

typedef struct flush_ctx {
	gwm_store *s;
	MDB_txn *txn;
	int rc;
} flush_ctx;

static void put_one(void *vctx, const char *key, double score, int64_t stamp)
{
	flush_ctx *x = vctx;
	rec r = {score, stamp};
	MDB_val k = {strlen(key), (void *)key}, v = {sizeof(r), &r};

	if (x->rc != 0)
		return;
	if (score < GWM_CORR_FORGET)
		x->rc = mdb_del(x->txn, x->s->corr, &k, NULL);
	else
		x->rc = mdb_put(x->txn, x->s->corr, &k, &v, 0);
	if (x->rc == MDB_NOTFOUND)
		x->rc = 0;
}

long gwm_store_flush(gwm_store *s, gwm_corr *t, char *err, size_t errlen)
{
	flush_ctx x = {s, NULL, 0};
	size_t n;
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &x.txn)) != 0)
		return fail(err, errlen, "flush", rc);
	n = gwm_corr_drain(t, GWM_CORR_DIRTY_STORE, put_one, &x);
	if (x.rc != 0) {
		mdb_txn_abort(x.txn);
		gwm_corr_mark_all(t, GWM_CORR_DIRTY_STORE);
		return fail(err, errlen, "flush", x.rc);
	}
	if ((rc = mdb_txn_commit(x.txn)) != 0) {
		gwm_corr_mark_all(t, GWM_CORR_DIRTY_STORE);
		return fail(err, errlen, "flush", rc);
	}
	return (long)n;
}

int gwm_store_put_meta(gwm_store *s, const char *key, const char *value, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_val k = {strlen(key), (void *)key}, v = {strlen(value), (void *)value};
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return fail(err, errlen, key, rc);
	if ((rc = mdb_put(txn, s->meta, &k, &v, 0)) != 0) {
		mdb_txn_abort(txn);
		return fail(err, errlen, key, rc);
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return fail(err, errlen, key, rc);
	return 0;
}

int gwm_store_get_meta(gwm_store *s, const char *key, char *buf, size_t size, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_val k = {strlen(key), (void *)key}, v;
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
		return fail(err, errlen, key, rc);
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == 0)
		snprintf(buf, size, "%.*s", (int)v.mv_size, (const char *)v.mv_data);
	mdb_txn_abort(txn);
	if (rc == MDB_NOTFOUND)
		return 0;
	return rc == 0 ? 1 : fail(err, errlen, key, rc);
}
