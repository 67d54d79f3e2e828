/*
 * probe_pool.c - per-route pool of idle call-ahead sessions (probe_pool.h).
 *
 * A hash map (hmap.h) holds one entry per route key with at least one idle
 * session, listing them most recently returned first. One mutex guards the
 * table; network work (RSET, QUIT) is never done under it, so a slow peer
 * cannot stall other routes' checkouts. RSET is written in pp_return, which
 * the engine calls at the end of a message, and its reply read by the next
 * user (probe_pool.h): no call here waits a round trip, except the polite
 * QUIT of pp_expire and pp_free, which run where no MTA waits.
 *
 * Does not defend against: see probe_pool.h.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/addr.h"
#include "client_int.h"
#include "gw/log.h"
#include "hmap.h"
#include "probe_pool.h"

typedef struct pp_route {
	gwu_hnode node;   /* keyed by key */
	pp_session *idle; /* most recent first */
	size_t n;
	char key[];
} pp_route;

struct pp_pool {
	pthread_mutex_t lock;
	gw_clock clock;
	unsigned max_idle_ms, max_uses, max_size, io_ms;
	gwu_hmap routes;
	size_t total;
};

static pp_route *pp_find(pp_pool *p, const char *key)
{
	gwu_hnode *n = gwu_hmap_get(&p->routes, key);

	return n != NULL ? gwu_entry(n, pp_route, node) : NULL;
}

/* QUIT politely (bounded by io_ms), after the replies still owed, and free. */
static void pp_quit(pp_session *s, unsigned io_ms)
{
	gw_reply r[2];

	gw_client_set_deadline(s->client, io_ms);
	if (s->owed > 0 && s->owed <= 2)
		(void)gw_client_raw(s->client, GW_STAGE_RSET, NULL, 0, r, s->owed, NULL);
	gw_client_quit(s->client);
	gw_log(GW_LOG_DEBUG, "ca_pool", "step=quit hop=%s uses=%u", s->hop, s->uses);
	pp_session_discard(&s);
}

/* QUIT without waiting for its reply, and free: for the paths an MTA waits on. */
static void pp_quit_nowait(pp_session *s, unsigned io_ms)
{
	gw_client_set_deadline(s->client, io_ms);
	(void)gw_client_raw(s->client, GW_STAGE_QUIT, "QUIT\r\n", 6, NULL, 0, NULL);
	gw_log(GW_LOG_DEBUG, "ca_pool", "step=quit hop=%s uses=%u", s->hop, s->uses);
	pp_session_discard(&s);
}

int pp_owed_reply(pp_session *s, const gw_reply *r)
{
	int rset = s->owed == (s->primed ? 2u : 1u);

	if (s->owed == 0)
		return -1;
	s->owed--;
	if (rset)
		return gw_reply_class(r->code) == 2 ? 0 : -1;
	/* A refused MAIL leaves a reset session: the next message sends MAIL itself. */
	if (gw_reply_class(r->code) != 2)
		s->primed = 0;
	return 0;
}

/*
 * Can s be handed out? Owed replies that have arrived are taken without
 * waiting; 0 when the session is dead (closed by the peer, RSET refused,
 * bytes nobody asked for), 1 otherwise (also while replies are still owed:
 * the first command finds out).
 */
static int pp_alive(pp_session *s)
{
	gw_reply r;

	while (s->owed > 0) {
		int rc = cl_try_reply(s->client, &r);

		if (rc < 0 || (rc > 0 && pp_owed_reply(s, &r) < 0))
			return 0;
		if (rc == 0)
			return 1;
	}
	return !gw_client_peer_closed(s->client);
}

static void pp_close_list(pp_session *list, int quit, unsigned io_ms)
{
	while (list != NULL) {
		pp_session *next = list->next;

		list->next = NULL;
		if (quit)
			pp_quit(list, io_ms);
		else
			pp_session_discard(&list);
		list = next;
	}
}

/* Drop r if it holds nothing; lock held. */
static void pp_route_gc(pp_pool *p, pp_route *r)
{
	if (r != NULL && r->idle == NULL) {
		gwu_hmap_del(&p->routes, &r->node);
		free(r);
	}
}

pp_pool *pp_new(const gw_clock *clock, unsigned max_idle_ms, unsigned max_uses, unsigned max_size,
		unsigned io_ms)
{
	pp_pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	if (gwu_hmap_init(&p->routes, 0) != 0) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	p->clock = clock != NULL ? *clock : gw_clock_monotonic;
	p->max_idle_ms = max_idle_ms;
	p->max_uses = max_uses;
	p->max_size = max_size;
	p->io_ms = io_ms;
	return p;
}

void pp_free(pp_pool **pp)
{
	pp_pool *p = *pp;
	gwu_hmap_iter it = {0};
	gwu_hnode *n;

	if (p == NULL)
		return;
	while ((n = gwu_hmap_next(&p->routes, &it)) != NULL) {
		pp_route *r = gwu_entry(n, pp_route, node);

		gwu_hmap_del(&p->routes, n);
		pp_close_list(r->idle, 1, p->io_ms);
		free(r);
	}
	gwu_hmap_fini(&p->routes);
	pthread_mutex_destroy(&p->lock);
	free(p);
	*pp = NULL;
}

void pp_route_key(const gw_route *route, char *buf, size_t size)
{
	size_t i, len = 0;

	if (size == 0)
		return;
	buf[0] = '\0';
	for (i = 0; i < route->nhops && i < GW_ROUTE_HOPS_MAX && len < size; i++) {
		if (i > 0)
			len += (size_t)snprintf(buf + len, size - len, ",");
		if (len < size)
			len += gw_nexthop_format(&route->hops[i], buf + len, size - len);
	}
	if (len < size)
		snprintf(buf + len, size - len, "/%s", gw_proto_str(route->proto));
}

pp_session *pp_session_new(gw_client *client, const char *hop)
{
	pp_session *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		gw_client_free(&client);
		return NULL;
	}
	s->client = client;
	snprintf(s->hop, sizeof(s->hop), "%s", hop);
	return s;
}

void pp_session_discard(pp_session **sp)
{
	pp_session *s = *sp;

	if (s == NULL)
		return;
	gw_client_free(&s->client);
	free(s);
	*sp = NULL;
}

/* Move sessions idle since before cutoff from r to *dead_r; lock held. */
static void pp_take_stale(pp_pool *p, pp_route *r, int64_t cutoff, pp_session **dead_r)
{
	pp_session **sp = &r->idle;

	while (*sp != NULL) {
		pp_session *s = *sp;

		if (s->idle_since <= cutoff) {
			*sp = s->next;
			s->next = *dead_r;
			*dead_r = s;
			r->n--;
			p->total--;
		} else {
			sp = &s->next;
		}
	}
}

pp_session *pp_checkout(pp_pool *p, const char *key)
{
	int64_t now = p->clock.now_ms(p->clock.ctx);
	pp_session *s = NULL, *dead = NULL;
	pp_route *r;

	pthread_mutex_lock(&p->lock);
	r = pp_find(p, key);
	if (r != NULL) {
		pp_take_stale(p, r, now - (int64_t)p->max_idle_ms, &dead);
		/* A poll per session, no round trip: skip those the MTA closed while idle. */
		while ((s = r->idle) != NULL) {
			r->idle = s->next;
			r->n--;
			p->total--;
			s->next = NULL;
			if (pp_alive(s))
				break;
			s->next = dead;
			dead = s;
		}
		pp_route_gc(p, r);
	}
	pthread_mutex_unlock(&p->lock);
	/* On the RCPT path: stale sessions are dropped without a QUIT round trip. */
	pp_close_list(dead, 0, p->io_ms);
	return s;
}

/* Why a returned session would not be kept, or NULL; lock held. */
static const char *pp_refusal(pp_pool *p, const pp_session *s, const pp_route *route)
{
	if (s->uses >= p->max_uses)
		return "max_uses";
	if (s->errors >= PP_ERRORS_MAX)
		return "max_errors";
	if (route != NULL && route->n >= p->max_size)
		return "max_size";
	if (p->total >= PP_MAX_TOTAL)
		return "pool_full";
	return NULL;
}

/* RSET, and MAIL FROM:prime when given, in one write; the replies are left owed. 0, or -1 (closed). */
static int pp_reset(pp_pool *p, pp_session *s, const char *prime)
{
	char cmd[GW_PATH_MAX + 32];
	int n = prime != NULL ? snprintf(cmd, sizeof(cmd), "RSET\r\nMAIL FROM:%s\r\n", prime)
			      : snprintf(cmd, sizeof(cmd), "RSET\r\n");

	if (n < 0 || (size_t)n >= sizeof(cmd) || (prime != NULL && strpbrk(prime, "\r\n") != NULL))
		return -1;
	gw_client_set_deadline(s->client, p->io_ms);
	/* A few bytes into an idle socket's buffer: the write does not wait for the peer. */
	if (gw_client_raw(s->client, GW_STAGE_RSET, cmd, (size_t)n, NULL, 0, NULL) != GW_OK) {
		gw_log(GW_LOG_DEBUG, "ca_pool", "step=reset hop=%s result=failed", s->hop);
		return -1;
	}
	s->owed = prime != NULL ? 2 : 1;
	s->primed = prime != NULL;
	s->dirty = 0;
	return 0;
}

int pp_return(pp_pool *p, const char *key, pp_session **sp, const char *prime)
{
	pp_session *s = *sp;
	const char *why;
	char hop[PP_HOP_MAX];
	unsigned uses;
	pp_route *route;

	*sp = NULL;
	if (s == NULL)
		return 0;
	if (!gw_client_is_open(s->client)) {
		pp_session_discard(&s);
		return 0;
	}
	if (s->dirty)
		s->uses++; /* a message was carried; a session opened ahead of need (a refill) was not used
			      yet */
	/* Decided first, so a session about to be closed is not reset for nothing. */
	pthread_mutex_lock(&p->lock);
	why = pp_refusal(p, s, pp_find(p, key));
	pthread_mutex_unlock(&p->lock);
	if (why == NULL && s->dirty && s->owed == 0 &&
	    pp_reset(p, s, prime != NULL && (gw_client_caps(s->client) & GW_CAP_PIPELINING) ? prime : NULL) !=
		0) {
		pp_session_discard(&s);
		return 0;
	}
	if (why == NULL && s->dirty) /* replies of an earlier reset still unread: out of step */
		why = "out_of_step";
	s->idle_since = p->clock.now_ms(p->clock.ctx);
	/* Copied for the log line: once pooled, s belongs to whoever checks it out. */
	uses = s->uses;
	snprintf(hop, sizeof(hop), "%s", s->hop);
	pthread_mutex_lock(&p->lock);
	route = pp_find(p, key);
	if (why == NULL)
		why = pp_refusal(p, s, route); /* again: others may have returned sessions meanwhile */
	if (why == NULL && route == NULL) {
		size_t klen = strlen(key);

		route = calloc(1, sizeof(pp_route) + klen + 1);
		if (route == NULL) {
			why = "out_of_memory";
		} else {
			memcpy(route->key, key, klen + 1);
			gwu_hmap_put(&p->routes, &route->node, route->key);
		}
	}
	if (why == NULL) {
		s->next = route->idle;
		route->idle = s;
		route->n++;
		p->total++;
	}
	pthread_mutex_unlock(&p->lock);
	gw_log(GW_LOG_DEBUG, "ca_pool", "step=return hop=%s uses=%u result=%s", hop, uses,
	       why == NULL ? "pooled" : why);
	if (why != NULL)
		pp_quit_nowait(s, p->io_ms);
	return why != NULL && strcmp(why, "max_uses") == 0;
}

int pp_vouch(pp_pool *p, const char *key)
{
	pp_session *dead = NULL;
	pp_route *r;
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	r = pp_find(p, key);
	if (r != NULL) {
		pp_session **sp = &r->idle;

		/* A poll and at most one non-blocking read per session: cheap enough to do under the lock. */
		while (*sp != NULL) {
			pp_session *s = *sp;

			if (!pp_alive(s)) {
				*sp = s->next;
				s->next = dead;
				dead = s;
				r->n--;
				p->total--;
				rc = -1;
			} else {
				if (rc == 0)
					rc = 1;
				sp = &s->next;
			}
		}
		pp_route_gc(p, r);
	}
	pthread_mutex_unlock(&p->lock);
	if (dead != NULL)
		gw_log(GW_LOG_DEBUG, "ca_pool", "step=vouch route=%s result=peer_closed", key);
	pp_close_list(dead, 0, p->io_ms);
	return rc;
}

void pp_flush(pp_pool *p, const char *key)
{
	pp_session *dead = NULL;
	pp_route *r;

	pthread_mutex_lock(&p->lock);
	r = pp_find(p, key);
	if (r != NULL) {
		dead = r->idle;
		p->total -= r->n;
		r->idle = NULL;
		r->n = 0;
		pp_route_gc(p, r);
	}
	pthread_mutex_unlock(&p->lock);
	pp_close_list(dead, 0, p->io_ms);
}

size_t pp_expire(pp_pool *p)
{
	int64_t cutoff = p->clock.now_ms(p->clock.ctx) - (int64_t)p->max_idle_ms;
	pp_session *dead = NULL, *s;
	gwu_hmap_iter it = {0};
	gwu_hnode *hn;
	size_t n = 0;

	pthread_mutex_lock(&p->lock);
	while ((hn = gwu_hmap_next(&p->routes, &it)) != NULL) {
		pp_route *r = gwu_entry(hn, pp_route, node);

		pp_take_stale(p, r, cutoff, &dead);
		pp_route_gc(p, r);
	}
	pthread_mutex_unlock(&p->lock);
	for (s = dead; s != NULL; s = s->next)
		n++;
	/* Off the RCPT path (the background thread): say goodbye properly. */
	pp_close_list(dead, 1, p->io_ms);
	return n;
}

size_t pp_idle(pp_pool *p)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->total;
	pthread_mutex_unlock(&p->lock);
	return n;
}
