/*
 * relay.c - deliver one message's recipients to their destinations in
 * parallel, one job per destination domain on a pool of worker threads
 * (see relay.h).
 *
 * A delivery is reference-counted: the caller's wait and every destination
 * job hold a reference, so a job still running at the deadline keeps the
 * body and the recipients it reads alive after the caller has answered, and
 * the last one out frees them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw/log.h"
#include "gw/time.h"
#include "relay.h"

#define DEST_KEY_MAX 256

/* Idle connections and the count in use, per destination. */
typedef struct dest_conn {
	gw_lmtp *l;
	int64_t idle_since;
	struct dest_conn *next;
} dest_conn;

typedef struct dest {
	char key[DEST_KEY_MAX];
	unsigned in_use, nidle;
	unsigned waiters;    /* threads waiting for a connection slot here */
	pthread_cond_t slot; /* one of them is woken when a slot frees: no herd across destinations */
	dest_conn *idle;
	struct dest *next;
} dest;

/* Outcomes of recent transactions, for the health check. */
#define HEALTH_RING 64
typedef struct health_event {
	int64_t at;
	int reached; /* 1: some host answered; 0: no host could be reached */
	char key[DEST_KEY_MAX];
} health_event;

struct gwl_relay {
	gwl_relay_conf c;
	pthread_mutex_t lock;
	pthread_cond_t freed; /* a worker ended or went idle (gwl_relay_free waits for them) */
	pthread_cond_t work;  /* a job was queued, or the relay is being freed */
	unsigned threads;     /* worker threads alive (running a destination, late ones included, or idle) */
	unsigned idle_workers;
	struct group *jobs, *jobs_tail; /* destinations waiting for a worker */
	int quit;                       /* workers: leave when idle */
	dest *dests;
	unsigned next_bind;
	health_event ring[HEALTH_RING];
	unsigned ring_next;
	int64_t last_retry;  /* while unhealthy: when a session was last let through; 0 while healthy */
	int64_t last_expire; /* the last sweep of idle connections */
	gwl_relay_stats stats;
};

/* One message in flight: its own copy of what the threads read. */
typedef struct delivery {
	gwl_relay *r;
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	unsigned refs, pending_groups;
	int64_t deadline;
	gwl_spool body;
	char *sender, *body_type, *ret, *envid, *client, *queue_id;
	int smtputf8;
	gw_lmtp_rcpt *rcpts;
	size_t nrcpts;
	gw_lmtp_result *results;
	gwl_relay_detail *details;
	int *decided; /* per recipient: its group finished before the caller stopped waiting */
	int answered; /* the caller has taken the results */
} delivery;

typedef struct group {
	struct group *next; /* in the job queue */
	delivery *d;
	char domain[DEST_KEY_MAX];
	size_t *idx; /* recipients of this group: indices into d->rcpts */
	size_t n;
} group;

gwl_relay *gwl_relay_new(const gwl_relay_conf *conf)
{
	gwl_relay *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->c = *conf;
	r->c.smtp.client.proto = GW_PROTO_SMTP;
	if (r->c.dest_concurrency == 0)
		r->c.dest_concurrency = 20;
	if (r->c.idle_ms == 0)
		r->c.idle_ms = 30000;
	if (r->c.health_window_ms == 0)
		r->c.health_window_ms = 60000;
	if (r->c.health_retry_ms == 0)
		r->c.health_retry_ms = 10000;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->freed, NULL);
	pthread_cond_init(&r->work, NULL);
	return r;
}

void gwl_relay_free(gwl_relay **rp)
{
	gwl_relay *r = *rp;

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock); /* late destination jobs still use the pools: wait for every worker */
	r->quit = 1;
	pthread_cond_broadcast(&r->work);
	while (r->threads > 0) {
		pthread_cond_broadcast(&r->work);
		gw_cond_wait_ms(&r->freed, &r->lock, 100);
	}
	pthread_mutex_unlock(&r->lock);
	while (r->dests != NULL) {
		dest *d = r->dests;
		r->dests = d->next;
		while (d->idle != NULL) {
			dest_conn *dc = d->idle;
			d->idle = dc->next;
			gw_lmtp_free(&dc->l);
			free(dc);
		}
		pthread_cond_destroy(&d->slot);
		free(d);
	}
	pthread_cond_destroy(&r->freed);
	pthread_cond_destroy(&r->work);
	pthread_mutex_destroy(&r->lock);
	free(r);
	*rp = NULL;
}

/* ---- connections per destination ------------------------------------------------------------ */

static dest *dest_get(gwl_relay *r, const char *key)
{
	dest *d;

	for (d = r->dests; d != NULL; d = d->next)
		if (strcmp(d->key, key) == 0)
			return d;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	pthread_cond_init(&d->slot, NULL);
	snprintf(d->key, sizeof(d->key), "%s", key);
	d->next = r->dests;
	r->dests = d;
	return d;
}

/* Close connections idle too long and forget destinations with nothing left; called with the lock. */
static void dest_expire(gwl_relay *r, int64_t now, gw_lmtp **closing, size_t *nclosing, size_t max)
{
	dest **dp = &r->dests;

	while (*dp != NULL) {
		dest *d = *dp;
		dest_conn **cp = &d->idle;
		while (*cp != NULL) {
			dest_conn *dc = *cp;
			if (now - dc->idle_since >= r->c.idle_ms && *nclosing < max) {
				*cp = dc->next;
				closing[(*nclosing)++] = dc->l;
				free(dc);
				d->nidle--;
			} else {
				cp = &dc->next;
			}
		}
		if (d->in_use == 0 && d->idle == NULL && d->waiters == 0) {
			*dp = d->next;
			pthread_cond_destroy(&d->slot);
			free(d);
		} else {
			dp = &d->next;
		}
	}
}

/*
 * A connection handle for key, waiting (until deadline) while the
 * destination is at its concurrency cap. *reused_r says it was idle before.
 */
static gw_lmtp *conn_take(gwl_relay *r, const char *key, gw_tls_policy tls, int64_t deadline, int *reused_r)
{
	gw_lmtp *closing[16], *l = NULL;
	size_t nclosing = 0, i;
	gw_lmtp_opts o;
	dest *d;

	*reused_r = 0;
	pthread_mutex_lock(&r->lock);
	if (gw_now_ms() - r->last_expire >= 1000) { /* a sweep a second, not one per delivery */
		r->last_expire = gw_now_ms();
		dest_expire(r, r->last_expire, closing, &nclosing, 16);
	}
	for (;;) {
		if ((d = dest_get(r, key)) == NULL)
			break;
		if (d->idle != NULL) {
			dest_conn *dc = d->idle;
			d->idle = dc->next;
			d->nidle--;
			l = dc->l;
			free(dc);
			d->in_use++;
			*reused_r = 1;
			break;
		}
		if (d->in_use < r->c.dest_concurrency) {
			d->in_use++;
			break;
		}
		if (deadline - gw_now_ms() <= 0) {
			d = NULL;
			break;
		}
		d->waiters++;
		gw_cond_wait_ms(&d->slot, &r->lock, deadline - gw_now_ms());
		d->waiters--;
	}
	o = r->c.smtp;
	o.client.tls = tls;
	if (d != NULL && l == NULL && r->c.nbind > 0)
		o.client.bind_address = r->c.bind_addresses[r->next_bind++ % r->c.nbind];
	pthread_mutex_unlock(&r->lock);
	for (i = 0; i < nclosing; i++)
		gw_lmtp_free(&closing[i]);
	if (d == NULL)
		return NULL;
	if (l == NULL) {
		if ((l = gw_lmtp_new(&o)) == NULL) { /* the caller sets the transaction's deadline */
			pthread_mutex_lock(&r->lock);
			d->in_use--;
			if (d->waiters > 0)
				pthread_cond_signal(&d->slot);
			pthread_mutex_unlock(&r->lock);
		}
	}
	return l;
}

/* Give the handle back: kept idle when its last transaction ended cleanly and there is room. */
static void conn_give(gwl_relay *r, const char *key, gw_lmtp *l, int keep)
{
	dest_conn *dc = NULL;
	dest *d;

	if (keep && (dc = malloc(sizeof(*dc))) == NULL)
		keep = 0;
	pthread_mutex_lock(&r->lock);
	d = dest_get(r, key);
	if (d != NULL) {
		d->in_use--;
		if (keep && d->nidle < r->c.dest_idle) {
			dc->l = l;
			dc->idle_since = gw_now_ms();
			dc->next = d->idle;
			d->idle = dc;
			d->nidle++;
			l = NULL;
			dc = NULL;
		}
		if (d->waiters > 0)
			pthread_cond_signal(&d->slot);
	}
	pthread_mutex_unlock(&r->lock);
	free(dc);
	gw_lmtp_free(&l);
}

/* ---- health ---------------------------------------------------------------------------------- */

static void health_note(gwl_relay *r, const char *key, int reached)
{
	health_event *e;

	pthread_mutex_lock(&r->lock);
	e = &r->ring[r->ring_next++ % HEALTH_RING];
	e->at = gw_now_ms();
	e->reached = reached;
	snprintf(e->key, sizeof(e->key), "%s", key);
	pthread_mutex_unlock(&r->lock);
}

int gwl_relay_healthy(gwl_relay *r)
{
	int64_t now = gw_now_ms();
	unsigned failures = 0, i;
	const char *first_key = NULL;
	int several = 0, healthy = 1;

	if (r->c.health_min_failures == 0)
		return 1;
	pthread_mutex_lock(&r->lock);
	for (i = 0; i < HEALTH_RING; i++) {
		const health_event *e = &r->ring[i];
		if (e->at == 0 || now - e->at > r->c.health_window_ms)
			continue;
		if (e->reached) {
			failures = 0;
			break;
		}
		failures++;
		if (first_key == NULL)
			first_key = e->key;
		else if (strcmp(first_key, e->key) != 0)
			several = 1;
	}
	if (failures >= r->c.health_min_failures && several) {
		/* Sure enough to turn sessions away; let one through now and then to learn when it ends. */
		if (r->last_retry == 0)
			r->last_retry = now; /* the outage starts: the first retry is health_retry away */
		if (now - r->last_retry >= r->c.health_retry_ms)
			r->last_retry = now;
		else
			healthy = 0;
	} else {
		r->last_retry = 0;
	}
	pthread_mutex_unlock(&r->lock);
	return healthy;
}

/* ---- one destination ------------------------------------------------------------------------- */

static void set_local(gw_lmtp_result *res, gw_lmtp_state state, int code, const char *enh, const char *fmt,
		      ...) __attribute__((format(printf, 5, 6)));
static void set_local(gw_lmtp_result *res, gw_lmtp_state state, int code, const char *enh, const char *fmt,
		      ...)
{
	va_list ap;

	memset(res, 0, sizeof(*res));
	res->state = state;
	res->stage = GW_LMTP_STAGE_CONNECT;
	res->status = state == GW_LMTP_PERMFAIL ? GW_OK : GW_E_RESOLVE;
	res->local = 1;
	res->code = code;
	snprintf(res->enh, sizeof(res->enh), "%s", enh);
	va_start(ap, fmt);
	vsnprintf(res->text, sizeof(res->text), fmt, ap);
	va_end(ap);
}

/* Postfix's "error:5.x.y text" route: that enhanced code (when it is a 5.x.y) and text, else 5.7.1. */
static void error_route(gw_lmtp_result *res, const char *spec)
{
	char enh[GW_ENH_MAX] = "5.7.1";
	size_t n = strspn(spec, "0123456789.");

	if (n > 4 && n < sizeof(enh) && spec[0] == '5' && spec[1] == '.' &&
	    (spec[n] == ' ' || spec[n] == '\0')) {
		memcpy(enh, spec, n);
		enh[n] = '\0';
		spec += n;
		spec += strspn(spec, " ");
	}
	set_local(res, GW_LMTP_PERMFAIL, 550, enh, "%s", spec[0] ? spec : "delivery refused by route");
}

/* Shuffle each run of equal preference (RFC 5321 5.1), so equal MX hosts share the load. */
static void mx_shuffle(gw_mx *mx, size_t n, unsigned *seed)
{
	size_t i = 0;

	while (i < n) {
		size_t j = i + 1, k;
		while (j < n && mx[j].pref == mx[i].pref)
			j++;
		for (k = j - 1; k > i; k--) {
			size_t m = i + (size_t)(rand_r(seed) % (unsigned)(k - i + 1));
			gw_mx t = mx[k];
			mx[k] = mx[m];
			mx[m] = t;
		}
		i = j;
	}
}

/*
 * The hosts to try for domain: its route's next hops, or its MX hosts. 0 with
 * hops filled; -1 with every recipient's result set when there is nowhere to go.
 */
static int dest_hops(gwl_relay *r, group *g, int dnssec, gw_nexthop *hops, size_t max, size_t *n_r,
		     int *mx_secure_r)
{
	delivery *d = g->d;
	char err[256] = "";
	const gw_route *route = r->c.routes != NULL ? gw_routes_lookup(r->c.routes, g->domain) : NULL;
	gw_lookup lk;
	size_t i;

	*n_r = 0;
	*mx_secure_r = 0;
	if (route != NULL) {
		if (!route->has_proto) {
			int perm = strcasecmp(route->transport, "error") == 0;
			for (i = 0; i < g->n; i++) {
				if (perm)
					error_route(&d->results[g->idx[i]], route->nexthop_text);
				else
					set_local(&d->results[g->idx[i]], GW_LMTP_TEMPFAIL, 451, "4.3.5",
						  "route transport %s is not relayed here", route->transport);
			}
			return -1;
		}
		lk = gw_route_expand_until(route, r->c.use_mx, d->deadline, hops, max, n_r, err, sizeof(err));
	} else {
		gw_mx mx[GW_MX_MAX];
		size_t nmx = 0;
		unsigned seed = (unsigned)gw_now_ms() ^ (unsigned)(uintptr_t)g;
		if (dnssec)
			lk = gw_mx_lookup_dnssec(g->domain, d->deadline, mx, GW_MX_MAX, &nmx, mx_secure_r,
						 err, sizeof(err));
		else
			lk =
			    gw_mx_lookup_until(g->domain, d->deadline, mx, GW_MX_MAX, &nmx, err, sizeof(err));
		if (lk == GW_LOOKUP_FOUND) {
			mx_shuffle(mx, nmx, &seed);
			for (i = 0; i < nmx && i < max; i++) {
				memset(&hops[i], 0, sizeof(hops[i]));
				hops[i].kind = GW_HOP_INET;
				snprintf(hops[i].host, sizeof(hops[i].host), "%s", mx[i].host);
				hops[i].port = r->c.smtp_port ? r->c.smtp_port : 25;
			}
			*n_r = i;
		}
	}
	if (lk == GW_LOOKUP_FOUND && *n_r > 0)
		return 0;
	for (i = 0; i < g->n; i++) {
		if (lk == GW_LOOKUP_NOTFOUND && strstr(err, "null MX") != NULL)
			set_local(&d->results[g->idx[i]], GW_LMTP_PERMFAIL, 556, "5.1.10",
				  "domain %s accepts no mail (null MX)", g->domain);
		else if (lk == GW_LOOKUP_NOTFOUND)
			set_local(&d->results[g->idx[i]], GW_LMTP_PERMFAIL, 550, "5.1.2",
				  "domain %s not found: %s", g->domain, err);
		else
			set_local(&d->results[g->idx[i]], GW_LMTP_TEMPFAIL, 451, "4.4.3",
				  "cannot find the mail servers of %s: %s", g->domain,
				  err[0] ? err : "lookup failed");
	}
	return -1;
}

/*
 * SMTPUTF8 is asked of a destination only when this group's envelope needs
 * it (a non-ASCII sender or recipient), as Postfix does: an ASCII envelope
 * goes to a destination without SMTPUTF8 as it is; a UTF-8 one fails there
 * permanently.
 */
static int group_needs_utf8(const delivery *d, const group *g)
{
	const unsigned char *p;
	size_t i;

	for (p = (const unsigned char *)d->sender; *p; p++)
		if (*p >= 0x80)
			return 1;
	for (i = 0; i < g->n; i++)
		for (p = (const unsigned char *)d->rcpts[g->idx[i]].addr; *p; p++)
			if (*p >= 0x80)
				return 1;
	return 0;
}

static void delivery_unref(delivery *d);

/* What DANE did to one destination's recipients, for stats and the health check. */
typedef struct dane_tally {
	unsigned long verified, failed; /* through a verified session; kept from a host by DANE (not by a
					   refused connection) */
	size_t untried;                 /* kept from every host before any connection */
	int talked;                     /* some host answered before DANE refused it */
} dane_tally;

/* The log word for one recipient's result, and its share of the tally. */
static void dane_note(const gwl_dane_ctx *c, const gw_lmtp_result *res, const char *tls, gwl_relay_detail *dt,
		      dane_tally *t)
{
	gw_dane_state st = gwl_dane_outcome(c, res->gateway, tls);
	/* The hook refused the host: a failed TLSA lookup, or dane-only without validated TLSA. */
	int refused =
	    res->local && res->state == GW_LMTP_TEMPFAIL &&
	    (st == GW_DANE_LOOKUP_FAILED || (c->level == GW_TLS_LEVEL_DANE_ONLY && st != GW_DANE_OFF &&
					     st != GW_DANE_FAILED && st != GW_DANE_VERIFIED));

	snprintf(dt->dane, sizeof(dt->dane), "%s", gwl_dane_word(st));
	t->verified += st == GW_DANE_VERIFIED;
	t->untried += refused;
	if (st == GW_DANE_FAILED && res->stage != GW_LMTP_STAGE_CONNECT) {
		t->failed++;
		t->talked = 1; /* greeting, EHLO or STARTTLS came: the host is up, its TLS is not ours */
	} else if (refused) {
		t->failed++;
	}
}

static void group_run(group *g)
{
	delivery *d = g->d;
	gwl_relay *r = d->r;
	gw_nexthop *hops = malloc(GW_ROUTE_HOPS_MAX * GW_MX_MAX * sizeof(*hops)); /* filled as used */
	gw_lmtp_rcpt *rcpts = calloc(g->n, sizeof(*rcpts));
	gw_lmtp_result *res = calloc(g->n, sizeof(*res));
	size_t nhops = 0, i;
	int reused = 0, mx_secure = 0;
	gw_lmtp *l = NULL;
	gw_tls_level level = gw_domain_tls_lookup(
	    r->c.tls_policy, g->domain,
	    r->c.tls_level != GW_TLS_LEVEL_NONE ? r->c.tls_level : (gw_tls_level)r->c.smtp.client.tls);
	int use_dane = level == GW_TLS_LEVEL_DANE || level == GW_TLS_LEVEL_DANE_ONLY;
	gwl_dane_ctx *dctx = use_dane ? calloc(1, sizeof(*dctx)) : NULL;

	if (hops == NULL || rcpts == NULL || res == NULL || (use_dane && dctx == NULL)) {
		for (i = 0; i < g->n; i++)
			set_local(&d->results[g->idx[i]], GW_LMTP_TEMPFAIL, 451, "4.3.0", "out of memory");
	} else if (dest_hops(r, g, use_dane, hops, GW_ROUTE_HOPS_MAX * GW_MX_MAX, &nhops, &mx_secure) == 0) {
		/* Under DANE the hop hook sets each host's terms; until then, opportunistic. */
		l = conn_take(r, g->domain, use_dane ? GW_TLS_MAY : (gw_tls_policy)level, d->deadline,
			      &reused);
		if (l != NULL && use_dane) {
			dctx->level = level;
			dctx->mx_secure = mx_secure;
			dctx->port = r->c.smtp_port ? r->c.smtp_port : 25;
			dctx->deadline = d->deadline;
			gw_lmtp_set_hop_tls(l, gwl_dane_hop, dctx);
		} else if (l != NULL) {
			gw_lmtp_set_hop_tls(l, NULL, NULL);
		}
		if (l != NULL) {
			int64_t left = d->deadline - gw_now_ms();
			gw_lmtp_set_deadline(l, left > 0 ? (unsigned)left : 1);
		}
		if (l == NULL) {
			for (i = 0; i < g->n; i++)
				set_local(&d->results[g->idx[i]], GW_LMTP_TEMPFAIL, 451, "4.4.5",
					  "too many connections to %s", g->domain);
		} else {
			gwl_spool_reader rd;
			gw_lmtp_txn txn = {0};
			dane_tally dane = {0};
			int reached = 0;
			for (i = 0; i < g->n; i++)
				rcpts[i] = d->rcpts[g->idx[i]];
			gwl_spool_reader_init(&rd, &d->body);
			txn.sender = d->sender;
			txn.body_type = d->body_type;
			txn.smtputf8 = d->smtputf8 && group_needs_utf8(d, g);
			txn.ret = d->ret;
			txn.envid = d->envid;
			txn.rcpts = rcpts;
			txn.nrcpts = g->n;
			txn.body = &rd.body;
			gw_lmtp_send_fallback(l, hops, nhops, &txn, res);
			for (i = 0; i < g->n; i++) {
				const char *peer = "", *tls = "";
				gwl_relay_detail *dt = &d->details[g->idx[i]];
				d->results[g->idx[i]] = res[i];
				if (gw_lmtp_hop_detail(l, res[i].gateway, &peer, &tls) == 0) {
					snprintf(dt->peer, sizeof(dt->peer), "%s", peer);
					snprintf(dt->tls, sizeof(dt->tls), "%s", tls);
				}
				if (use_dane)
					dane_note(dctx, &res[i], tls, dt, &dane);
				if (res[i].code != 0 && !res[i].local)
					reached = 1;
			}
			gw_lmtp_set_hop_tls(l, NULL, NULL); /* dctx goes; the next user sets its own */
			if (use_dane) {
				pthread_mutex_lock(&r->lock);
				r->stats.dane_verified += dane.verified;
				r->stats.dane_failed += dane.failed;
				pthread_mutex_unlock(&r->lock);
				reached |= dane.talked;
			}
			/* Hosts DANE kept us from say nothing about whether the outside can be reached. */
			if (!use_dane || dane.untried < g->n)
				health_note(r, g->domain, reached);
			conn_give(r, g->domain, l,
				  gw_lmtp_count(res, g->n, GW_LMTP_DELIVERED) +
					  gw_lmtp_count(res, g->n, GW_LMTP_PERMFAIL) ==
				      g->n);
			if (reused) {
				pthread_mutex_lock(&r->lock);
				r->stats.connections_reused++;
				pthread_mutex_unlock(&r->lock);
			}
		}
	}
	pthread_mutex_lock(&d->lock);
	if (!d->answered)
		for (i = 0; i < g->n; i++)
			d->decided[g->idx[i]] = 1;
	else
		for (i = 0; i < g->n; i++)
			gw_log(GW_LOG_WARNING, "late",
			       "client=%s queue_id=%s to=<%s> state=%s code=%d after the deadline", d->client,
			       d->queue_id, d->rcpts[g->idx[i]].addr,
			       gw_lmtp_state_str(d->results[g->idx[i]].state), d->results[g->idx[i]].code);
	if (d->answered) {
		pthread_mutex_lock(&r->lock);
		r->stats.late += g->n;
		pthread_mutex_unlock(&r->lock);
	}
	d->pending_groups--;
	pthread_cond_broadcast(&d->done_cond);
	pthread_mutex_unlock(&d->lock);
	free(dctx);
	free(hops);
	free(rcpts);
	free(res);
	free(g->idx);
	free(g);
	delivery_unref(d);
}

/*
 * A worker: runs destination jobs, then waits for more. Workers are made
 * when a job finds none idle (a destination that hangs never delays another)
 * and kept while idle, at most WORKERS_IDLE_MAX of them for WORKER_IDLE_MS:
 * making a thread per destination per message costs more than the delivery
 * to a fast destination (stacks mapped and unmapped on every core).
 */
#define WORKERS_IDLE_MAX 256
#define WORKER_IDLE_MS   30000

static void *worker(void *arg)
{
	gwl_relay *r = arg;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		group *g = r->jobs;
		if (g != NULL) {
			r->jobs = g->next;
			if (r->jobs == NULL)
				r->jobs_tail = NULL;
			pthread_mutex_unlock(&r->lock);
			group_run(g);
			pthread_mutex_lock(&r->lock);
			continue;
		}
		if (r->quit || r->idle_workers >= WORKERS_IDLE_MAX)
			break;
		r->idle_workers++;
		if (gw_cond_wait_ms(&r->work, &r->lock, WORKER_IDLE_MS) != 0 && r->jobs == NULL) {
			r->idle_workers--;
			break;
		}
		r->idle_workers--;
	}
	r->threads--;
	pthread_cond_broadcast(&r->freed);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* Queue a destination job for a worker, making one when none is idle. 0, or -1 (no thread could be made). */
static int job_submit(gwl_relay *r, group *g)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc = 0;

	g->next = NULL;
	pthread_mutex_lock(&r->lock);
	if (r->idle_workers == 0) {
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, worker, r) != 0)
			rc = -1;
		else
			r->threads++;
		pthread_attr_destroy(&attr);
	}
	if (rc == 0) {
		if (r->jobs_tail != NULL)
			r->jobs_tail->next = g;
		else
			r->jobs = g;
		r->jobs_tail = g;
		pthread_cond_signal(&r->work);
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* ---- one message ----------------------------------------------------------------------------- */

static void delivery_unref(delivery *d)
{
	unsigned left;
	size_t i;

	pthread_mutex_lock(&d->lock);
	left = --d->refs;
	pthread_mutex_unlock(&d->lock);
	if (left > 0)
		return;
	gwl_spool_reset(&d->body);
	for (i = 0; i < d->nrcpts; i++) {
		free((char *)d->rcpts[i].addr);
		free((char *)d->rcpts[i].notify);
		free((char *)d->rcpts[i].orcpt);
	}
	free(d->rcpts);
	free(d->results);
	free(d->details);
	free(d->decided);
	free(d->sender);
	free(d->body_type);
	free(d->ret);
	free(d->envid);
	free(d->client);
	free(d->queue_id);
	pthread_cond_destroy(&d->done_cond);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static char *dup_opt(const char *s, int *failed)
{
	char *c;

	if (s == NULL)
		return NULL;
	if ((c = strdup(s)) == NULL)
		*failed = 1;
	return c;
}

/* The domain of an address, lower-cased, without brackets around it; "" when there is none. */
static void rcpt_domain(const char *addr, char *out, size_t outlen)
{
	const char *at = strrchr(addr, '@');
	size_t i, n;

	out[0] = '\0';
	if (at == NULL)
		return;
	at++;
	n = strcspn(at, ">");
	if (n >= outlen)
		n = outlen - 1;
	for (i = 0; i < n; i++)
		out[i] = (char)(at[i] >= 'A' && at[i] <= 'Z' ? at[i] + 32 : at[i]);
	out[n] = '\0';
}

static delivery *delivery_new(gwl_relay *r, const gwl_relay_msg *m, gwl_spool *body, unsigned deadline_ms)
{
	delivery *d = calloc(1, sizeof(*d));
	int failed = 0;
	size_t i;

	if (d == NULL)
		return NULL;
	d->r = r;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->done_cond, NULL);
	d->refs = 1;
	d->deadline = gw_now_ms() + deadline_ms;
	d->body = *body;
	gwl_spool_init(body, body->dir, body->mem_limit, body->max_size); /* the body moved here */
	d->sender = dup_opt(m->sender != NULL ? m->sender : "", &failed);
	d->body_type = dup_opt(m->body_type, &failed);
	d->ret = dup_opt(m->ret, &failed);
	d->envid = dup_opt(m->envid, &failed);
	d->client = dup_opt(m->client != NULL ? m->client : "-", &failed);
	d->queue_id = dup_opt(m->queue_id != NULL ? m->queue_id : "-", &failed);
	d->smtputf8 = m->smtputf8;
	d->nrcpts = m->nrcpts;
	d->rcpts = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*d->rcpts));
	d->results = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*d->results));
	d->decided = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*d->decided));
	d->details = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*d->details));
	if (d->rcpts == NULL || d->results == NULL || d->decided == NULL || d->details == NULL)
		failed = 1;
	for (i = 0; !failed && i < m->nrcpts; i++) {
		d->rcpts[i].addr = dup_opt(m->rcpts[i].addr, &failed);
		d->rcpts[i].notify = dup_opt(m->rcpts[i].notify, &failed);
		d->rcpts[i].orcpt = dup_opt(m->rcpts[i].orcpt, &failed);
	}
	if (failed) {
		delivery_unref(d);
		return NULL;
	}
	return d;
}

/* A group no worker could take: its recipients fail temporarily at once. */
static void job_refused(delivery *d, group *g)
{
	size_t j;

	for (j = 0; j < g->n; j++)
		set_local(&d->results[g->idx[j]], GW_LMTP_TEMPFAIL, 451, "4.3.0",
			  "cannot start a delivery thread");
	pthread_mutex_lock(&d->lock);
	for (j = 0; j < g->n; j++)
		d->decided[g->idx[j]] = 1;
	d->refs--;
	d->pending_groups--;
	pthread_mutex_unlock(&d->lock);
	free(g->idx);
	free(g);
}

/*
 * Split the recipients into one group per domain and hand each to a worker,
 * except the last, which is returned for the caller to run itself: a message
 * to one destination needs no other thread. (Its wait is bounded like the
 * others': lookups, connection slot and dialogue all end by the deadline.)
 */
static group *delivery_start(delivery *d)
{
	group *last = NULL;
	size_t i, j, n = d->nrcpts ? d->nrcpts : 1;
	char *seen = calloc(n, 1);
	const char **at = calloc(n, sizeof(*at)); /* each recipient's domain, found once */
	size_t *alen = calloc(n, sizeof(*alen));
	char dom[DEST_KEY_MAX];

	for (i = 0; at != NULL && alen != NULL && i < d->nrcpts; i++) {
		const char *a = strrchr(d->rcpts[i].addr, '@');
		at[i] = a != NULL ? a + 1 : "";
		alen[i] = strcspn(at[i], ">");
	}
	for (i = 0; seen != NULL && at != NULL && alen != NULL && i < d->nrcpts; i++) {
		group *g;
		if (seen[i])
			continue;
		rcpt_domain(d->rcpts[i].addr, dom, sizeof(dom));
		g = calloc(1, sizeof(*g));
		if (g != NULL)
			g->idx = calloc(d->nrcpts - i, sizeof(*g->idx));
		if (g == NULL || g->idx == NULL) {
			if (g != NULL)
				free(g);
			break;
		}
		g->d = d;
		snprintf(g->domain, sizeof(g->domain), "%s", dom);
		for (j = i; j < d->nrcpts; j++) {
			if (!seen[j] && alen[j] == alen[i] && strncasecmp(at[j], at[i], alen[i]) == 0) {
				seen[j] = 1;
				g->idx[g->n++] = j;
			}
		}
		pthread_mutex_lock(&d->lock);
		d->refs++;
		d->pending_groups++;
		pthread_mutex_unlock(&d->lock);
		if (last != NULL && job_submit(d->r, last) != 0)
			job_refused(d, last);
		last = g;
	}
	free(seen);
	free(at);
	free(alen);
	return last;
}

void gwl_relay_deliver(gwl_relay *r, const gwl_relay_msg *m, unsigned deadline_ms, gw_lmtp_result *results_r,
		       gwl_relay_detail *details_r)
{
	delivery *d = delivery_new(r, m, (gwl_spool *)m->body, deadline_ms);
	size_t i;

	if (d == NULL) {
		for (i = 0; i < m->nrcpts; i++)
			set_local(&results_r[i], GW_LMTP_TEMPFAIL, 451, "4.3.0", "out of memory");
		return;
	}
	{
		group *mine = delivery_start(d);
		if (mine != NULL)
			group_run(mine);
	}
	pthread_mutex_lock(&d->lock);
	while (d->pending_groups > 0 && d->deadline - gw_now_ms() > 0)
		gw_cond_wait_ms(&d->done_cond, &d->lock, d->deadline - gw_now_ms());
	d->answered = 1;
	if (details_r != NULL)
		memset(details_r, 0, d->nrcpts * sizeof(*details_r));
	for (i = 0; i < d->nrcpts; i++) {
		if (d->decided[i]) {
			results_r[i] = d->results[i];
			if (details_r != NULL)
				details_r[i] = d->details[i];
		} else
			set_local(&results_r[i], GW_LMTP_TEMPFAIL, 451, "4.4.7",
				  "no answer from the destination within the deadline");
	}
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_lock(&r->lock);
	r->stats.transactions++;
	for (i = 0; i < m->nrcpts; i++) {
		switch (results_r[i].state) {
		case GW_LMTP_DELIVERED:
			r->stats.delivered++;
			break;
		case GW_LMTP_PERMFAIL:
			r->stats.permfail++;
			break;
		case GW_LMTP_UNCERTAIN:
			r->stats.uncertain++;
			break;
		default:
			r->stats.tempfail++;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	delivery_unref(d);
}

void gwl_relay_get_stats(gwl_relay *r, gwl_relay_stats *s_r)
{
	pthread_mutex_lock(&r->lock);
	*s_r = r->stats;
	pthread_mutex_unlock(&r->lock);
}
