/*
 * flood.c - the bounce-flood guard's service (see flood.h): one state under
 * one mutex, one background thread.
 *
 * The effective mode is "forced high", or in auto mode "the detector says
 * flood, or another gateway does (shared.h)". Every change of it, wherever
 * it happens (a count in a callback, the thread's tick, the control socket,
 * the fleet), is logged once and queued for the hooks once, with a JSON
 * event built under the lock: mode, cause, counts, thresholds and the top
 * sources of null-sender mail (a space-saving table of GWM_TOP networks,
 * reset with each detector window).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../libgw/hmap.h" /* internal to libgw, reached through the static library */
#include "corr.h"
#include "flood.h"
#include "hook.h"
#include "cache_share.h"
#include "shared.h"
#include "store.h"
#include "gw/log.h"

#define FLUSH_MS 5000
#define GWM_TOP  64
#define TOP_SHOW 5

typedef struct top_entry {
	char key[GWM_NETKEY_MAX];
	unsigned long count;
} top_entry;

typedef struct slot {
	gwu_hnode node;
	unsigned n;
	char key[GWM_NETKEY_MAX];
} slot;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int on, quit, thread_up, eff_high;
static pthread_t thread;
static gw_clock mono;
static gwm_corr *corr;
static gwm_store *store;
static gwm_fd fd;
static top_entry top[GWM_TOP];
static size_t ntop;
static int64_t top_window;
static gwu_hmap slots;
static uint64_t n_deferred, n_slot_limited, n_learnt, n_transitions, n_store_errors;
/* Deferral log lines: the second (mono ms / 1000) being counted and the lines given in it; the
 * deferrals without a line of their own since the last summary, when the first of them came, and
 * when the last summary was logged. */
static int64_t dlog_sec = -1, dlog_first_ms, dlog_summary_ms;
static unsigned dlog_lines;
static uint64_t dlog_unlogged;
static char saved_base[128], self_name[256], shared_id[256];

static int64_t now_ms(void)
{
	return mono.now_ms(mono.ctx);
}

static void params_of(const gwm_config *c, gwm_fd_params *p)
{
	memset(p, 0, sizeof(*p));
	p->window_ms = c->opt.flood_window;
	p->alpha = 2.0 / ((double)c->opt.flood_baseline_windows + 1.0);
	p->multiple = (double)c->opt.flood_multiple;
	p->floor[GWM_FD_BOUNCE] = (double)c->opt.flood_floor_bounce;
	p->floor[GWM_FD_PRVS] = (double)c->opt.flood_floor_prvs;
	p->floor[GWM_FD_UNKNOWN] = (double)c->opt.flood_floor_unknown;
	p->leave_ratio = 0.5;
	p->calm_windows = (unsigned)c->opt.flood_calm_windows;
}

/* --- the mode and its events -------------------------------------------------- */

/* Lock held. */
static int effective(void)
{
	if (fd.force != GWM_FORCE_AUTO)
		return gwm_fd_high(&fd);
	return fd.detected || gwm_shared_fleet_high();
}

static void top_reset_if_new_window(void)
{
	if (fd.win_start != top_window) {
		top_window = fd.win_start;
		ntop = 0;
	}
}

/* Count one null-sender message from key (space-saving: a new key takes the smallest count's place). */
static void top_add(const char *key)
{
	size_t i, min = 0;

	top_reset_if_new_window();
	for (i = 0; i < ntop; i++) {
		if (strcmp(top[i].key, key) == 0) {
			top[i].count++;
			return;
		}
		if (top[i].count < top[min].count)
			min = i;
	}
	if (ntop < GWM_TOP) {
		snprintf(top[ntop].key, sizeof(top[ntop].key), "%s", key);
		top[ntop++].count = 1;
		return;
	}
	snprintf(top[min].key, sizeof(top[min].key), "%s", key);
	top[min].count++;
}

static int top_cmp(const void *a, const void *b)
{
	const top_entry *x = a, *y = b;

	return x->count < y->count ? 1 : x->count > y->count ? -1 : strcmp(x->key, y->key);
}

/* The event's JSON into buf; lock held. Keys are network texts (no quoting needed: digits, '.', ':', '/'). */
static void event_json(int high, const char *cause, char *buf, size_t size)
{
	top_entry sorted[GWM_TOP];
	size_t o, i, n = ntop;
	int k;

	memcpy(sorted, top, n * sizeof(top[0]));
	qsort(sorted, n, sizeof(sorted[0]), top_cmp);
	o = (size_t)snprintf(buf, size,
			     "{\"event\":\"flood-mode\",\"mode\":\"%s\",\"cause\":\"%s\",\"force\":\"%s\","
			     "\"host\":\"%s\",\"time\":%lld,\"window_ms\":%lld,\"rates\":{",
			     high ? "high" : "normal", cause, gwm_force_str(fd.force), self_name,
			     (long long)time(NULL), (long long)fd.p.window_ms);
	for (k = 0; k < GWM_FD_KINDS && o < size; k++)
		o += (size_t)snprintf(
		    buf + o, size - o,
		    "%s\"%s\":{\"current\":%.0f,\"last\":%.0f,\"baseline\":%.2f,\"threshold\":%.0f}",
		    k > 0 ? "," : "", gwm_fd_kind_str(k), fd.cur[k], fd.last[k], fd.base[k],
		    gwm_fd_threshold(&fd, k));
	if (o < size)
		o += (size_t)snprintf(buf + o, size - o, "},\"top_sources\":[");
	for (i = 0; i < n && i < TOP_SHOW && o < size; i++)
		o += (size_t)snprintf(buf + o, size - o, "%s{\"network\":\"%s\",\"bounces\":%lu}",
				      i > 0 ? "," : "", sorted[i].key, sorted[i].count);
	if (o < size)
		snprintf(buf + o, size - o, "]}");
}

typedef struct pending {
	int changed, high;
	char cause[32];
	char json[2048];
} pending;

/* Why the effective mode is what it is. Lock held. */
static const char *cause_now(int high)
{
	if (fd.force != GWM_FORCE_AUTO)
		return "operator";
	if (!high)
		return "calm";
	return fd.detected ? gwm_fd_kind_str(fd.trigger) : "fleet";
}

/* After any change under the lock: note a change of the effective mode. Lock held. */
static void settle(pending *p)
{
	int high = effective();
	const char *cause = cause_now(high);

	p->changed = 0;
	/* Published whether or not the effective mode changed: leaving a forced "high" while the
	 * fleet keeps us high must still stop telling the fleet we are in a flood. */
	gwm_shared_set_high(fd.detected || fd.force == GWM_FORCE_HIGH);
	if (high == eff_high)
		return;
	eff_high = high;
	n_transitions++;
	p->changed = 1;
	p->high = high;
	snprintf(p->cause, sizeof(p->cause), "%s", cause);
	event_json(high, cause, p->json, sizeof(p->json));
}

/* Log and queue the hooks of a change (lock not held). */
static void announce(const pending *p)
{
	gwm_snapshot *s;

	if (!p->changed)
		return;
	gw_log(GW_LOG_NOTICE, "flood", "mode=%s cause=%s event=%s", p->high ? "high" : "normal", p->cause,
	       p->json);
	if ((s = gwm_current_get()) == NULL)
		return;
	gwm_hook_post(s->conf->opt.flood_hook_command, s->conf->opt.flood_hook_url,
		      s->conf->opt.flood_hook_timeout, (unsigned)s->conf->opt.flood_hook_retries,
		      p->high ? "high" : "normal", p->json);
	gwm_snapshot_unref(&s);
}

/* --- the store ---------------------------------------------------------------- */

static void save_meta(const char *key, const char *value)
{
	char err[256];

	/* Called without the lock (from the control thread too): the counter takes it. */
	if (store != NULL && gwm_store_put_meta(store, key, value, err, sizeof(err)) != 0) {
		pthread_mutex_lock(&lock);
		n_store_errors++;
		pthread_mutex_unlock(&lock);
		gw_log(GW_LOG_ERR, "flood", "store=error error=\"%s\"", err);
	}
}

static void flush(void)
{
	char err[256], base[128];
	long n;

	if (store == NULL)
		return;
	if ((n = gwm_store_flush(store, corr, err, sizeof(err))) < 0) {
		pthread_mutex_lock(&lock);
		n_store_errors++;
		pthread_mutex_unlock(&lock);
		gw_log(GW_LOG_ERR, "flood", "store=error error=\"%s\"", err);
	} else if (n > 0) {
		gw_log(GW_LOG_DEBUG, "flood", "store=flushed entries=%ld", n);
	}
	pthread_mutex_lock(&lock);
	snprintf(base, sizeof(base), "%.6f %.6f %.6f", fd.base[0], fd.base[1], fd.base[2]);
	pthread_mutex_unlock(&lock);
	if (strcmp(base, saved_base) != 0) {
		save_meta("baseline", base);
		snprintf(saved_base, sizeof(saved_base), "%s", base);
	}
}

static void load_meta(void)
{
	char v[128], err[256];
	gwm_force f;

	if (store == NULL)
		return;
	if (gwm_store_get_meta(store, "force", v, sizeof(v), err, sizeof(err)) == 1 &&
	    gwm_force_parse(v, &f) == 0)
		fd.force = f;
	if (gwm_store_get_meta(store, "baseline", v, sizeof(v), err, sizeof(err)) == 1 &&
	    sscanf(v, "%lf %lf %lf", &fd.base[0], &fd.base[1], &fd.base[2]) == 3)
		snprintf(saved_base, sizeof(saved_base), "%s", v);
	else
		memset(fd.base, 0, sizeof(fd.base));
}

/* --- the thread ---------------------------------------------------------------- */

/* Log the deferrals that had no line of their own, once a second at most (all with force). */
static void defer_summary(int force)
{
	uint64_t n = 0;
	int64_t now, span = 0;

	pthread_mutex_lock(&lock);
	now = now_ms();
	if (dlog_unlogged > 0 && (force || now - dlog_summary_ms >= 1000)) {
		n = dlog_unlogged;
		span = now - dlog_first_ms;
		dlog_unlogged = 0;
		dlog_summary_ms = now;
	}
	pthread_mutex_unlock(&lock);
	if (n > 0)
		gw_log(GW_LOG_INFO, "flood", "action=defer stage=mail unlogged=%llu ms=%lld",
		       (unsigned long long)n, (long long)span);
}

void gwm_flood_tick(void)
{
	gwm_snapshot *s = gwm_current_get();
	gwm_fd_params p;
	pending pd;

	if (!on) {
		gwm_snapshot_unref(&s);
		return;
	}
	pthread_mutex_lock(&lock);
	if (s != NULL) {
		params_of(s->conf, &p);
		gwm_fd_set_params(&fd, &p);
		gwm_corr_set_half_life(corr, s->conf->opt.flood_half_life);
	}
	gwm_fd_tick(&fd, now_ms());
	if (gwm_shared_state() >= 0) {
		double ext[GWM_FD_KINDS], o[GWM_FD_KINDS];
		int k;
		/* What the fleet counts: the others' recent windows, and ours for them. */
		gwm_shared_fleet_counts(ext);
		gwm_fd_set_ext(&fd, ext, now_ms());
		for (k = 0; k < GWM_FD_KINDS; k++)
			o[k] = fd.cur[k] > fd.last[k] ? fd.cur[k] : fd.last[k];
		gwm_shared_set_counts(o);
	}
	settle(&pd);
	pthread_mutex_unlock(&lock);
	gwm_snapshot_unref(&s);
	announce(&pd);
	defer_summary(0);
}

static void *run(void *arg)
{
	int64_t last_flush = gw_now_ms(), period;

	(void)arg;
	pthread_mutex_lock(&lock);
	while (!quit) {
		/* Often enough to close every window on time, never busier than 20 times a second. */
		period = fd.p.window_ms / 4;
		period = period > 1000 ? 1000 : period < 50 ? 50 : period;
		(void)gw_cond_wait_ms(&cond, &lock, period);
		if (quit)
			break;
		pthread_mutex_unlock(&lock);
		gwm_flood_tick();
		if (gw_now_ms() - last_flush >= FLUSH_MS) {
			flush();
			last_flush = gw_now_ms();
		}
		pthread_mutex_lock(&lock);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* --- start and stop -------------------------------------------------------------- */

/*
 * This gateway's name in Redis: it must stay the same across restarts (the
 * counts it wrote are its own, not another gateway's to add), and two
 * daemons on one host must differ. shared_state_id when the operator names
 * it (then renaming the store or moving to another host keeps the name);
 * else the host name, and with a store the store's path (a daemon's own
 * learning lives there), hashed (FNV-1a).
 */
void gwm_flood_shared_name(const gwm_config *c, const char *host, char *buf, size_t size)
{
	const char *st = c->opt.flood_store;
	char safe[256];
	uint32_t h = 2166136261u;

	if (c->opt.shared_state_id != NULL && *c->opt.shared_state_id != '\0') {
		snprintf(buf, size, "%s", c->opt.shared_state_id);
		return;
	}
	/* A name for JSON and Redis keys: only the safe characters. */
	snprintf(safe, sizeof(safe), "%s", host != NULL && *host != '\0' ? host : "gw");
	for (char *q = safe; *q != '\0'; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
		      *q == '.' || *q == '-'))
			*q = '_';
	if (st == NULL || *st == '\0') {
		snprintf(buf, size, "%.200s", safe);
		return;
	}
	for (; *st != '\0'; st++)
		h = (h ^ (unsigned char)*st) * 16777619u;
	snprintf(buf, size, "%.200s-%08x", safe, (unsigned)h);
}

int gwm_flood_start(const gwm_config *c, const gw_clock *m, const gw_clock *wall, char *err, size_t errlen)
{
	gwm_fd_params p;
	long n;
	int rc;

	if (!c->opt.flood_guard)
		return 0;
	mono = m != NULL ? *m : gw_clock_monotonic;
	if (gethostname(self_name, sizeof(self_name) - 1) != 0)
		snprintf(self_name, sizeof(self_name), "gw");
	/* A name for JSON and Redis keys: only the safe characters. */
	for (char *q = self_name; *q != '\0'; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
		      *q == '.' || *q == '-'))
			*q = '_';
	if ((corr = gwm_corr_new((size_t)c->opt.flood_max_entries, c->opt.flood_half_life, wall)) == NULL ||
	    gwu_hmap_init(&slots, 64) != 0) {
		snprintf(err, errlen, "flood guard: %s", strerror(errno));
		gwm_corr_free(&corr);
		return -1;
	}
	params_of(c, &p);
	gwm_fd_init(&fd, &p, now_ms());
	top_window = fd.win_start;
	if (c->opt.flood_store != NULL && *c->opt.flood_store != '\0') {
		char e[512];
		if ((store = gwm_store_open(c->opt.flood_store, e, sizeof(e))) == NULL ||
		    (n = gwm_store_load(store, corr, e, sizeof(e))) < 0) {
			snprintf(err, errlen, "flood_store %s", e);
			gwm_store_close(&store);
			gwu_hmap_fini(&slots);
			gwm_corr_free(&corr);
			return -1;
		}
		load_meta();
		gw_log(GW_LOG_NOTICE, "flood", "store=%s loaded=%ld force=%s", c->opt.flood_store, n,
		       gwm_force_str(fd.force));
	}
	/* A mode forced before the restart is in force again, without a new hook run. */
	eff_high = gwm_fd_high(&fd);
	on = 1;
	quit = 0;
	if (gwm_hook_start() != 0) {
		snprintf(err, errlen, "flood hooks: %s", strerror(errno));
		gwm_flood_free();
		return -1;
	}
	gwm_flood_shared_name(c, self_name, shared_id, sizeof(shared_id));
	if (c->redis_host[0] != '\0') {
		if (c->opt.shared_cache)
			gwm_cs_enable(shared_id);
		gwm_shared_conf sc = {c->redis_host,          c->redis_port, c->redis_db,
				      c->redis_user,          c->redis_pass, c->opt.shared_refresh,
				      c->opt.flood_half_life, shared_id};
		if (gwm_shared_start(&sc, corr) != 0) {
			snprintf(err, errlen, "shared_state: %s", strerror(errno));
			gwm_flood_free();
			return -1;
		}
		gw_log(GW_LOG_NOTICE, "flood", "shared_state=redis://%s%s%s:%d/%d id=%s auth=%s",
		       c->redis_user, c->redis_user[0] != '\0' ? "@" : "", c->redis_host, c->redis_port,
		       c->redis_db, shared_id, c->redis_pass[0] != '\0' ? "yes" : "no");
	}
	if ((rc = pthread_create(&thread, NULL, run, NULL)) != 0) {
		snprintf(err, errlen, "flood thread: %s", strerror(rc));
		gwm_flood_free();
		return -1;
	}
	thread_up = 1;
	return 0;
}

void gwm_flood_stop(void)
{
	if (!on)
		return;
	if (thread_up) {
		pthread_mutex_lock(&lock);
		quit = 1;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
		pthread_join(thread, NULL);
		thread_up = 0;
	}
	gwm_shared_stop();
	gwm_cs_disable();
	gwm_hook_stop();
	defer_summary(1);
	flush();
	gwm_store_close(&store);
}

void gwm_flood_free(void)
{
	gwu_hmap_iter it = {0};
	gwu_hnode *n;

	gwm_flood_stop();
	if (!on)
		return;
	on = 0;
	while ((n = gwu_hmap_next(&slots, &it)) != NULL) {
		gwu_hmap_del(&slots, n);
		free(gwu_entry(n, slot, node));
	}
	gwu_hmap_fini(&slots);
	gwm_corr_free(&corr);
	ntop = 0;
	saved_base[0] = '\0';
	dlog_sec = -1;
	dlog_lines = 0;
	dlog_unlogged = 0;
	dlog_first_ms = dlog_summary_ms = 0;
}

/* --- what the callbacks call ----------------------------------------------------- */

void gwm_flood_netkey(const gwm_config *c, const struct sockaddr *sa, char *buf, size_t size)
{
	char k[GWM_NETKEY_MAX];

	buf[0] = '\0';
	if (!c->opt.flood_guard || gwm_net_key(sa, (unsigned)c->opt.flood_v4_prefix,
					       (unsigned)c->opt.flood_v6_prefix, k, sizeof(k)) != 0)
		return;
	snprintf(buf, size, "%s", k);
}

/* "n:KEY" and "d:DOMAIN" name the two kinds in one table. */
static void corr_key(char *buf, size_t size, char kind, const char *what)
{
	snprintf(buf, size, "%c:%s", kind, what);
}

int gwm_flood_is_corr(const gwm_config *c, const char *netkey, const char *domain)
{
	char k[GWM_CORR_KEY_MAX];
	double thr = (double)c->opt.flood_threshold;

	if (!on)
		return 0;
	if (netkey != NULL && *netkey != '\0') {
		corr_key(k, sizeof(k), 'n', netkey);
		if (gwm_corr_is(corr, k, thr))
			return 1;
	}
	if (domain != NULL && *domain != '\0' && strlen(domain) < GWM_CORR_KEY_MAX - 2) {
		corr_key(k, sizeof(k), 'd', domain);
		if (gwm_corr_is(corr, k, thr))
			return 1;
	}
	return 0;
}

int gwm_flood_mail(const gwm_config *c, const char *netkey, int exempt, int bounce, const char *sender_domain)
{
	pending pd;
	int high;

	if (!on || exempt)
		return 0;
	pthread_mutex_lock(&lock);
	if (bounce) {
		if (netkey != NULL && *netkey != '\0')
			top_add(netkey);
		gwm_fd_count(&fd, GWM_FD_BOUNCE, 1, now_ms());
		settle(&pd);
	} else {
		pd.changed = 0;
	}
	high = eff_high;
	pthread_mutex_unlock(&lock);
	announce(&pd);
	if (!high || (!bounce && !c->opt.flood_defer_all))
		return 0;
	/* The sender's domain speaks for mail with a sender only: a bounce has none. */
	if (gwm_flood_is_corr(c, netkey, bounce ? NULL : sender_domain))
		return 0;
	pthread_mutex_lock(&lock);
	n_deferred++;
	pthread_mutex_unlock(&lock);
	return 1;
}

int gwm_flood_defer_log(void)
{
	int64_t now, sec;
	int rc = 0;

	if (!on)
		return 1;
	pthread_mutex_lock(&lock);
	now = now_ms();
	sec = now / 1000;
	if (sec != dlog_sec) {
		dlog_sec = sec;
		dlog_lines = 0;
	}
	if (dlog_lines < GWM_FLOOD_DEFER_LINES_PER_S) {
		dlog_lines++;
		rc = 1;
	} else if (dlog_unlogged++ == 0) {
		dlog_first_ms = now;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

void gwm_flood_event(int kind)
{
	pending pd;

	if (!on)
		return;
	pthread_mutex_lock(&lock);
	gwm_fd_count(&fd, kind, 1, now_ms());
	settle(&pd);
	pthread_mutex_unlock(&lock);
	announce(&pd);
}

int gwm_flood_slot_take(const gwm_config *c, const char *netkey)
{
	gwu_hnode *n;
	slot *s;
	int rc = 0;

	if (!on || c->opt.flood_client_probes == 0 || netkey == NULL || *netkey == '\0')
		return 0;
	pthread_mutex_lock(&lock);
	n = gwu_hmap_get(&slots, netkey);
	s = n != NULL ? gwu_entry(n, slot, node) : NULL;
	if (!eff_high) {
		/* Normal mode: no limit, but a network already holding slots keeps counting them. */
		if (s != NULL) {
			s->n++;
			rc = 1;
		}
	} else if (s != NULL && s->n >= (unsigned)c->opt.flood_client_probes) {
		n_slot_limited++;
		rc = -1;
	} else if (s != NULL) {
		s->n++;
		rc = 1;
	} else if ((s = calloc(1, sizeof(*s))) != NULL) {
		snprintf(s->key, sizeof(s->key), "%s", netkey);
		s->n = 1;
		gwu_hmap_put(&slots, &s->node, s->key);
		rc = 1;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

void gwm_flood_slot_give(const char *netkey)
{
	gwu_hnode *n;
	slot *s;

	if (!on)
		return;
	pthread_mutex_lock(&lock);
	if ((n = gwu_hmap_get(&slots, netkey)) != NULL) {
		s = gwu_entry(n, slot, node);
		if (--s->n == 0) {
			gwu_hmap_del(&slots, n);
			free(s);
		}
	}
	pthread_mutex_unlock(&lock);
}

void gwm_flood_learn(const char *netkey, const char *domain)
{
	char k[GWM_CORR_KEY_MAX];
	int learnt = 0;

	if (!on)
		return;
	if (netkey != NULL && *netkey != '\0') {
		corr_key(k, sizeof(k), 'n', netkey);
		learnt += gwm_corr_add(corr, k, 1.0) == 0;
	}
	if (domain != NULL && *domain != '\0' && strlen(domain) < GWM_CORR_KEY_MAX - 2) {
		corr_key(k, sizeof(k), 'd', domain);
		learnt += gwm_corr_add(corr, k, 1.0) == 0;
	}
	pthread_mutex_lock(&lock);
	n_learnt += (uint64_t)learnt;
	pthread_mutex_unlock(&lock);
}

void gwm_flood_stats_get(gwm_flood_stats *s)
{
	gwm_corr_stats cs;
	int k;

	memset(s, 0, sizeof(*s));
	s->shared = gwm_shared_state();
	if (!on)
		return;
	gwm_corr_stats_get(corr, &cs);
	pthread_mutex_lock(&lock);
	s->on = 1;
	s->high = eff_high;
	s->force = fd.force;
	for (k = 0; k < GWM_FD_KINDS; k++) {
		s->cur[k] = fd.cur[k];
		s->last[k] = fd.last[k];
		s->base[k] = fd.base[k];
		s->threshold[k] = gwm_fd_threshold(&fd, k);
		s->fleet[k] = fd.ext[k];
	}
	s->deferred = n_deferred;
	s->slot_limited = n_slot_limited;
	s->learnt = n_learnt;
	s->transitions = n_transitions;
	s->store_errors = n_store_errors;
	pthread_mutex_unlock(&lock);
	s->entries = cs.entries;
	s->refused = cs.refused;
}

void gwm_flood_control_mode(const char *arg, char *out, size_t outlen)
{
	gwm_flood_stats st;
	gwm_force f;
	pending pd;

	if (!on) {
		snprintf(out, outlen, "error flood guard off (flood_guard = no)");
		return;
	}
	if (arg != NULL && *arg != '\0') {
		if (gwm_force_parse(arg, &f) != 0) {
			snprintf(out, outlen, "error want mode high, normal or auto");
			return;
		}
		pthread_mutex_lock(&lock);
		gwm_fd_force(&fd, f, now_ms());
		settle(&pd);
		pthread_mutex_unlock(&lock);
		save_meta("force", gwm_force_str(f));
		announce(&pd);
	}
	gwm_flood_stats_get(&st);
	snprintf(out, outlen,
		 "ok mode=%s force=%s bounce=%.0f/%.0f prvs=%.0f/%.0f unknown=%.0f/%.0f learnt=%zu "
		 "deferred=%llu slot_limited=%llu transitions=%llu shared=%s fleet=%.0f/%.0f/%.0f",
		 st.high ? "high" : "normal", gwm_force_str(st.force), st.cur[0], st.threshold[0], st.cur[1],
		 st.threshold[1], st.cur[2], st.threshold[2], st.entries, (unsigned long long)st.deferred,
		 (unsigned long long)st.slot_limited, (unsigned long long)st.transitions,
		 st.shared < 0 ? "none"
		 : st.shared   ? "up"
			       : "down",
		 st.fleet[0], st.fleet[1], st.fleet[2]);
}
