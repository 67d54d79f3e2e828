/*
 * callahead.c - the call-ahead engine (gw/callahead.h): cache and route
 * health first, then one probe session per route per message.
 *
 * gw_ca_check() answers from the cache when it may (a negative entry while
 * it lasts; a positive one only while the route is up and was confirmed
 * within confirm_window_ms), says TEMPFAIL at once for a route marked down,
 * and otherwise asks the internal MTA over this message's session for the
 * route, a pooled one (probe_pool.c), or a new connection tried hop by hop.
 * Replies map to verdicts as in the header; any transport failure (refused,
 * timeout, lost, bad reply, 421, refused greeting or hello) marks the route
 * down (route_health.c), whose thread re-probes it. Catch-all markers live in
 * the same cache as answers, under keys no address can have.
 *
 * Does not defend against: an MTA that accepts at RCPT and bounces later
 * (catch-all detection only notices one that accepts a random local part).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "client_int.h"
#include "gw/callahead.h"
#include "gw/log.h"
#include "probe_pool.h"
#include "route_health.h"
#include "util.h"

#define CA_TXN_ROUTES 32  /* routes one message may probe */
#define CA_RCPT_MAX   320 /* longer recipients are refused to probe (RFC 5321 path: 256) */
#define CA_HOPS_MAX   (GW_ROUTE_HOPS_MAX * 4)
#define CA_ENH_SEP    '\x1f' /* separates the enhanced code from the text in cache values */

typedef struct ca_sess {
	char key[PP_KEY_MAX];
	rh_entry *rh;     /* referenced while the message lasts */
	pp_session *s;    /* NULL when no session is open; holds a probe slot when not NULL */
	int fresh_pooled; /* checked out of the pool, no command sent yet in this message */
	int mail_ok;      /* MAIL accepted in this message */
} ca_sess;

struct gw_ca_txn {
	gw_callahead *ca;
	ca_sess *sess[CA_TXN_ROUTES];
	size_t n;
};

struct gw_callahead {
	gw_ca_opts o; /* defaults filled in; strings point at the owned copies below */
	char *helo_name, *probe_sender, *fallback_sender, *tls_ca_file, *bind_address;
	gw_cache *cache;
	int own_cache;
	gw_clock clock;
	pp_pool *pool;
	rh_table *health;
	gw_ca_verdict_fn verdict_hook; /* set before the engine is shared, then only read */
	void *verdict_ctx;
	pthread_mutex_t lock; /* guards the counters */
	uint64_t checks, accepts, rejects, tempfails, from_cache, pooled, new_sessions, route_down, limited;
};

/* What one check works on. */
typedef struct ca_work {
	gw_callahead *ca;
	gw_ca_txn *txn;
	const gw_route *route; /* with at least one hop */
	const char *rcpt;
	char domain[GW_HOST_MAX + 1]; /* lower case */
	char cache_key[GW_CACHE_KEY_MAX];
	char key[PP_KEY_MAX];
	int64_t deadline; /* gw_now_ms() time */
	gw_ca_result *res;
} ca_work;

/* ---- small helpers -------------------------------------------------------- */

/* Copy the first line of text, cut to fit. */
static void first_line(char *dst, size_t size, const char *text)
{
	size_t n = strcspn(text, "\n");

	if (n >= size)
		n = size - 1;
	memcpy(dst, text, n);
	dst[n] = '\0';
}

static void set_text(gw_ca_result *res, const char *text)
{
	first_line(res->text, sizeof(res->text), text);
}

static void set_reply(gw_ca_result *res, const gw_reply *r)
{
	res->code = r->code;
	snprintf(res->enh, sizeof(res->enh), "%s", r->enh);
	set_text(res, r->text);
}

/* One debug line per probe step; peer text sanitised. */
static void log_step(const char *step, const char *hop, const char *arg, gw_status s, const gw_reply *r,
		     const char *err)
{
	char text[GW_LOG_PEER_MAX * 4 + 8], a[CA_RCPT_MAX * 4 + 8];
	const char *t = r != NULL && r->code != 0 ? r->text : err != NULL ? err : "";

	if (!gw_log_enabled(GW_LOG_DEBUG))
		return; /* several per recipient: not even the sanitising when nobody reads them */
	gw_log_sanitize(text, sizeof(text), t, strcspn(t, "\n"), GW_LOG_PEER_MAX);
	gw_log_sanitize(a, sizeof(a), arg != NULL ? arg : "", arg != NULL ? strlen(arg) : 0, CA_RCPT_MAX);
	gw_log(GW_LOG_DEBUG, "ca_probe", "step=%s hop=%s arg=\"%s\" status=%s code=%d text=\"%s\"", step, hop,
	       a, gw_status_str(s), r != NULL ? r->code : 0, text);
}

/* "local@domain" -> lower-case domain into w->domain and the cache key "local@domain". -1 if unusable. */
static int split_rcpt(ca_work *w, const char *rcpt)
{
	const char *at = strrchr(rcpt, '@');
	size_t len = strlen(rcpt), i, dlen;

	if (len == 0 || len > CA_RCPT_MAX)
		return -1;
	for (i = 0; i < len; i++)
		if ((unsigned char)rcpt[i] < 0x20 || rcpt[i] == 0x7f)
			return -1;
	dlen = at != NULL ? strlen(at + 1) : 0;
	if (dlen > GW_HOST_MAX)
		return -1;
	for (i = 0; i < dlen; i++) {
		char ch = at[1 + i];

		w->domain[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
	}
	w->domain[dlen] = '\0';
	if (at == NULL)
		snprintf(w->cache_key, sizeof(w->cache_key), "%s", rcpt);
	else
		snprintf(w->cache_key, sizeof(w->cache_key), "%.*s@%s", (int)(at - rcpt), rcpt, w->domain);
	return 0;
}

/*
 * Cache key of the catch-all marker for (route, domain): starts with a byte
 * no address has. Route keys can be longer than a cache key, so a hash names
 * the route; a domain has one route at a time, so the hash only has to tell
 * a route changed by a reload from the old one.
 */
static void catchall_key(const ca_work *w, char *buf, size_t size)
{
	snprintf(buf, size, "\001catchall %08" PRIx32 " %s", gwu_hash(w->key, strlen(w->key)), w->domain);
}

/* Store a reply as the cache value (enhanced code, separator, first line). 0 ok, -1 (errno). */
static int ca_put(gw_callahead *ca, const char *key, gw_cache_kind kind, const gw_reply *r, uint32_t ttl)
{
	char text[GW_CACHE_TEXT_MAX];
	size_t n = strcspn(r->text, "\n");

	snprintf(text, sizeof(text), "%s%c%.*s", r->enh, CA_ENH_SEP, (int)n, r->text);
	return gw_cache_put(ca->cache, key, kind, r->code, text, ttl);
}

static void cache_put(gw_callahead *ca, const char *key, gw_cache_kind kind, const gw_reply *r, uint32_t ttl)
{
	if (ca_put(ca, key, kind, r, ttl) != 0)
		gw_log(GW_LOG_DEBUG, "ca_cache", "put failed error=\"%s\"", strerror(errno));
}

/* Tell the verdict hook what a probe just cached (first line of the text, as cached). */
static void verdict_told(gw_callahead *ca, const char *key, gw_cache_kind kind, const gw_reply *r,
			 uint32_t ttl)
{
	char text[GW_CACHE_TEXT_MAX];

	if (ca->verdict_hook == NULL)
		return;
	first_line(text, sizeof(text), r->text);
	ca->verdict_hook(ca->verdict_ctx, key, kind, r->code, r->enh, text, ttl);
}

static void result_from_cache(gw_ca_result *res, const gw_cache_value *v)
{
	const char *sep = strchr(v->text, CA_ENH_SEP);

	res->code = v->code;
	if (sep != NULL) {
		snprintf(res->enh, sizeof(res->enh), "%.*s", (int)(sep - v->text), v->text);
		set_text(res, sep + 1);
	} else {
		set_text(res, v->text);
	}
}

static void count(gw_callahead *ca, uint64_t *counter)
{
	pthread_mutex_lock(&ca->lock);
	(*counter)++;
	pthread_mutex_unlock(&ca->lock);
}

/* ---- sessions ------------------------------------------------------------- */

static gw_client_opts client_opts(const gw_callahead *ca, gw_proto proto, unsigned deadline_ms)
{
	gw_client_opts co;

	memset(&co, 0, sizeof(co));
	co.proto = proto;
	co.helo_name = ca->o.helo_name;
	co.connect_timeout_ms =
	    ca->o.connect_timeout_ms < deadline_ms ? ca->o.connect_timeout_ms : deadline_ms;
	co.reply_timeout_ms = ca->o.reply_timeout_ms;
	co.deadline_ms = deadline_ms;
	co.tls = ca->o.tls;
	co.tls_ca_file = ca->o.tls_ca_file;
	co.bind_address = ca->o.bind_address;
	return co;
}

static int64_t time_left(const ca_work *w)
{
	return w->deadline - gw_now_ms();
}

/* A transport failure: drop the session and its slot, mark the route down, empty its pool. */
static void route_failed(ca_work *w, ca_sess *ss)
{
	if (ss != NULL && ss->s != NULL) {
		pp_session_discard(&ss->s);
		rh_probe_end(w->ca->health, ss->rh);
		ss->mail_ok = 0;
		ss->fresh_pooled = 0;
	}
	if (ss != NULL && rh_mark_down(w->ca->health, ss->rh))
		gw_log(GW_LOG_DEBUG, "ca_route", "route=%s state=down", w->key);
	pp_flush(w->ca->pool, w->key);
}

/*
 * Open a new session on the first hop that answers, in order; the caller
 * holds a probe slot for it. 0 with ss->s set; -1 with res filled, the slot
 * given back and the route marked down after transport failures.
 */
static int open_session(ca_work *w, ca_sess *ss)
{
	gw_callahead *ca = w->ca;
	gw_nexthop hops[CA_HOPS_MAX];
	char err[256] = "", hop[PP_HOP_MAX];
	size_t n = 0, i;
	int transport = 0;
	gw_lookup lk = gw_route_expand_until(w->route, ca->o.use_mx, w->deadline, hops, CA_HOPS_MAX, &n, err,
					     sizeof(err));

	if (lk != GW_LOOKUP_FOUND || n == 0) {
		w->res->source = GW_CA_SRC_NOROUTE;
		w->res->status = GW_E_RESOLVE;
		set_text(w->res, err[0] ? err : "no next hop");
		return -1;
	}
	for (i = 0; i < n; i++) {
		int64_t left = time_left(w);
		gw_client_opts co;
		gw_client *c;
		gw_reply r;
		gw_status s;

		if (left <= 0) {
			w->res->status = GW_E_TIMEOUT;
			set_text(w->res, "deadline reached");
			transport = 1;
			break;
		}
		co = client_opts(ca, w->route->proto, (unsigned)left);
		c = gw_client_new(&co);
		if (c == NULL) {
			w->res->status = GW_E_LOCAL;
			set_text(w->res, "out of memory");
			break;
		}
		gw_nexthop_format(&hops[i], hop, sizeof(hop));
		snprintf(w->res->hop, sizeof(w->res->hop), "%s", hop);
		r.code = 0;
		s = gw_client_open(c, &hops[i], &r);
		log_step("connect", hop, NULL, s, s == GW_E_REJECTED ? &r : NULL, gw_client_error(c));
		if (s == GW_OK) {
			ss->s = pp_session_new(c, hop);
			if (ss->s == NULL) {
				w->res->status = GW_E_LOCAL;
				set_text(w->res, "out of memory");
				rh_probe_end(ca->health, ss->rh);
				return -1;
			}
			count(ca, &ca->new_sessions);
			rh_confirm(ca->health, ss->rh);
			return 0;
		}
		w->res->status = s;
		w->res->code = 0;
		w->res->enh[0] = '\0';
		if (s == GW_E_REJECTED)
			set_reply(w->res, &r);
		else
			set_text(w->res, gw_client_error(c));
		gw_client_free(&c);
		if (s != GW_E_LOCAL)
			transport = 1;
	}
	w->res->source = GW_CA_SRC_NEW;
	rh_probe_end(ca->health, ss->rh); /* the slot was taken for this session */
	if (transport)
		route_failed(w, ss);
	return -1;
}

/* Send MAIL or RCPT with "<addr>" within the deadline. GW_E_TIMEOUT when no time is left. */
static gw_status command(ca_work *w, ca_sess *ss, int rcpt, const char *addr, gw_reply *r)
{
	char arg[CA_RCPT_MAX + GW_HOST_MAX + 8];
	int64_t left = time_left(w);
	gw_status s;

	r->code = 0;
	r->enh[0] = r->text[0] = '\0';
	snprintf(arg, sizeof(arg), "<%s>", addr);
	if (left <= 0) {
		s = GW_E_TIMEOUT;
	} else {
		gw_client_set_deadline(ss->s->client, (unsigned)left);
		ss->s->dirty = 1;
		s = rcpt ? gw_client_rcpt(ss->s->client, arg, r) : gw_client_mail(ss->s->client, arg, r);
	}
	log_step(rcpt ? "rcpt" : "mail", ss->s->hop, arg, s, r,
		 s == GW_E_TIMEOUT && left <= 0 ? "deadline reached" : gw_client_error(ss->s->client));
	return s;
}

/* A failure that says the session (not the recipient) is gone: transport error or 421. */
static int session_lost(gw_status s, const gw_reply *r)
{
	return s != GW_OK || r->code == 421;
}

/* Fill res after a transport failure of a command and drop the route. */
static void command_failed(ca_work *w, ca_sess *ss, gw_status s, const gw_reply *r)
{
	w->res->status = s;
	snprintf(w->res->hop, sizeof(w->res->hop), "%s", ss->s->hop);
	if (s == GW_OK)
		set_reply(w->res, r);
	else
		set_text(w->res, time_left(w) <= 0 ? "deadline reached" : gw_client_error(ss->s->client));
	route_failed(w, ss);
}

/* Did the first command on a session fresh from the pool find it closed (LOST, or an idle-timeout 421)? */
static int stale_pooled(const ca_sess *ss, gw_status s, const gw_reply *r)
{
	return ss->fresh_pooled && (s == GW_E_LOST || (s == GW_OK && r->code == 421));
}

/*
 * MAIL FROM with the probe sender, or the fallback once the route refused it.
 * 0 when the session is in a transaction; -1 with res filled; 1 when a
 * session fresh from the pool turned out closed by the peer (LOST, or the
 * 421 an MTA sends when its idle timer runs out).
 */
static int send_mail(ca_work *w, ca_sess *ss)
{
	gw_callahead *ca = w->ca;
	const char *fb = ca->o.fallback_sender;
	int use_fb = fb != NULL && rh_sender_refused(ca->health, ss->rh);
	gw_reply r;
	gw_status s;

	for (;;) {
		s = command(w, ss, 0, use_fb ? fb : ca->o.probe_sender, &r);
		if (stale_pooled(ss, s, &r))
			return 1;
		ss->fresh_pooled = 0;
		if (session_lost(s, &r)) {
			command_failed(w, ss, s, &r);
			return -1;
		}
		if (gw_reply_class(r.code) == 2) {
			ss->mail_ok = 1;
			rh_confirm(ca->health, ss->rh);
			return 0;
		}
		if (gw_reply_class(r.code) == 5 && !use_fb && fb != NULL) {
			/* Remembered for the route: later messages start with the fallback. */
			rh_set_sender_refused(ca->health, ss->rh);
			use_fb = 1;
			continue;
		}
		/* A refused probe sender says nothing about the recipient: try later, never cache. */
		w->res->status = GW_OK;
		set_reply(w->res, &r);
		return -1;
	}
}

/* Replace a pooled session the peer closed while idle (no route failure) by a new one, without MAIL. */
static int replace_stale(ca_work *w, ca_sess *ss)
{
	gw_log(GW_LOG_DEBUG, "ca_pool", "step=stale hop=%s result=replaced", ss->s->hop);
	pp_session_discard(&ss->s);
	ss->fresh_pooled = 0;
	ss->mail_ok = 0;
	if (open_session(w, ss) != 0)
		return -1;
	w->res->source = GW_CA_SRC_NEW;
	return 0;
}

/* Read the replies the pool left owed, one by one. 0; 1 stale pooled session; -1 res filled. */
static int settle_owed(ca_work *w, ca_sess *ss)
{
	gw_reply r;
	gw_status s;
	int64_t left;

	while (ss->s->owed > 0) {
		left = time_left(w);
		if (left <= 0) {
			command_failed(w, ss, GW_E_TIMEOUT, NULL);
			return -1;
		}
		gw_client_set_deadline(ss->s->client, (unsigned)left);
		s = gw_client_raw(ss->s->client, GW_STAGE_RSET, NULL, 0, &r, 1, NULL);
		if (s != GW_OK && s != GW_E_LOST) {
			command_failed(w, ss, s, NULL); /* a timeout is the route's, as for any command */
			return -1;
		}
		if (s != GW_OK || r.code == 421 || pp_owed_reply(ss->s, &r) != 0)
			return 1; /* gone or out of step while idle: replace, not a route failure */
	}
	ss->mail_ok = ss->s->primed;
	return 0;
}

/* The probe sender to use on this route now. */
static const char *mail_sender(ca_work *w, ca_sess *ss)
{
	const char *fb = w->ca->o.fallback_sender;

	return fb != NULL && rh_sender_refused(w->ca->health, ss->rh) ? fb : w->ca->o.probe_sender;
}

/*
 * One write with what the recipient needs and one read of all the replies
 * (PIPELINING): the replies the pool left owed (RSET, MAIL), MAIL when no
 * transaction is open, and RCPT TO:<addr>. 0 with the RCPT outcome in *r and
 * *s_r; 1 when a session fresh from the pool turned out stale; 2 when the
 * exchange must be done again one command at a time (the MAIL was refused,
 * mail_ok says so); -1 with res filled.
 */
static int rcpt_pipelined(ca_work *w, ca_sess *ss, const char *addr, gw_reply *r, gw_status *s_r)
{
	gw_callahead *ca = w->ca;
	pp_session *ps = ss->s;
	const char *sender = NULL;
	char cmd[2 * CA_RCPT_MAX + 64];
	gw_reply rep[4];
	size_t got = 0, owed = ps->owed, want, i;
	/* Owed RSET alone (or its MAIL already known refused): MAIL goes now. */
	int send_mail_too = owed > 0 ? !ps->primed : !ss->mail_ok, n;
	int64_t left = time_left(w);
	gw_status s;

	if (send_mail_too)
		sender = mail_sender(w, ss); /* a lock: only when MAIL goes */
	n = snprintf(cmd, sizeof(cmd), "%s%s%s%sRCPT TO:<%s>\r\n", send_mail_too ? "MAIL FROM:<" : "",
		     send_mail_too ? sender : "", send_mail_too ? ">" : "", send_mail_too ? "\r\n" : "",
		     addr);
	if (n < 0 || (size_t)n >= sizeof(cmd)) {
		w->res->status = GW_E_LOCAL;
		set_text(w->res, "recipient too long");
		return -1;
	}
	want = owed + (size_t)send_mail_too + 1;
	if (left <= 0) {
		command_failed(w, ss, GW_E_TIMEOUT, NULL);
		return -1;
	}
	gw_client_set_deadline(ps->client, (unsigned)left);
	ps->dirty = 1;
	if (owed == 0) {
		s = gw_client_raw(ps->client, GW_STAGE_RCPT, cmd, (size_t)n, rep, want, &got);
	} else {
		/*
		 * The owed replies may be on their way already, ahead of ours: acknowledge them at once, or a
		 * server with Nagle on holds our reply until our delayed ACK (40 ms or more) goes out. Set
		 * after the write, which would put the socket back into delayed-ACK mode.
		 */
		s = gw_client_raw(ps->client, GW_STAGE_RCPT, cmd, (size_t)n, NULL, 0, NULL);
		cl_quickack(ps->client);
		if (s == GW_OK)
			s = gw_client_raw(ps->client, GW_STAGE_RCPT, NULL, 0, rep, want, &got);
	}
	log_step(send_mail_too ? "mail+rcpt" : "rcpt", ps->hop, addr, s, got == want ? &rep[want - 1] : NULL,
		 gw_client_error(ps->client));
	/* The owed replies: a session that broke while idle is replaced, not counted against the route. */
	for (i = 0; i < owed; i++) {
		if (i >= got && s != GW_E_LOST) {
			command_failed(w, ss, s != GW_OK ? s : GW_E_PROTO,
				       NULL); /* a timeout is the route's */
			return -1;
		}
		if (i >= got || rep[i].code == 421 || pp_owed_reply(ps, &rep[i]) != 0)
			return 1; /* owed replies mean fresh from the pool: closed or out of step while idle
				   */
	}
	/* The owed replies may have left before the peer went idle: a session that closes at the RCPT after
	 * them is still stale, so they leave fresh_pooled as it is. */
	if (owed > 0 && !send_mail_too) {
		ss->mail_ok = ps->primed;
		if (!ss->mail_ok) {
			ss->fresh_pooled = 0;
			return 2; /* the primed MAIL was refused: RCPT got 503; MAIL again, with the fallback
				     rules */
		}
		rh_confirm(ca->health, ss->rh);
	}
	if (send_mail_too) {
		const gw_reply *m = &rep[owed];

		if (got <= owed) {
			*s_r = s;
			r->code = 0;
			return stale_pooled(ss, s, r) ? 1 : 0;
		}
		if (stale_pooled(ss, GW_OK, m))
			return 1;
		ss->fresh_pooled = 0;
		if (m->code == 421) {
			*s_r = GW_OK;
			*r = *m;
			return 0; /* session_lost() takes it from here */
		}
		if (gw_reply_class(m->code) == 5 && ca->o.fallback_sender != NULL &&
		    sender != ca->o.fallback_sender) {
			/* Remembered for the route; send_mail() goes on with the fallback. */
			rh_set_sender_refused(ca->health, ss->rh);
			return 2;
		}
		if (gw_reply_class(m->code) != 2) {
			/* A refused probe sender says nothing about the recipient: try later, never cache. */
			w->res->status = GW_OK;
			set_reply(w->res, m);
			return -1;
		}
		ss->mail_ok = 1;
		rh_confirm(ca->health, ss->rh);
	}
	*s_r = got == want ? GW_OK : s != GW_OK ? s : GW_E_PROTO;
	if (got == want)
		*r = rep[want - 1];
	else
		r->code = 0;
	/* Still fresh when the RCPT was the session's first command since the pool (its replies taken there).
	 */
	if (stale_pooled(ss, *s_r, r))
		return 1;
	ss->fresh_pooled = 0;
	return 0;
}

/*
 * RCPT TO:<addr>, with everything it needs first: the replies the pool left
 * owed, MAIL when no transaction is open. With PIPELINING all of it is one
 * write and one round trip; otherwise one command at a time. A session fresh
 * from the pool that turns out closed is replaced once. 0 with the RCPT
 * outcome in *r and *s_r; -1 with res filled.
 */
static int send_rcpt(ca_work *w, ca_sess *ss, const char *addr, gw_reply *r, gw_status *s_r)
{
	int rc;

	for (;;) {
		rc = 2;
		if (gw_client_caps(ss->s->client) & GW_CAP_PIPELINING)
			rc = rcpt_pipelined(w, ss, addr, r, s_r);
		else if (ss->s->owed > 0 && (rc = settle_owed(w, ss)) == 0)
			rc = 2;
		if (rc < 0)
			return -1;
		if (rc == 2) {
			/* One command at a time: MAIL if needed (the fallback sender rules there), then RCPT.
			 */
			if (!ss->mail_ok)
				rc = send_mail(w, ss);
			else
				rc = 0;
			if (rc == 0) {
				*s_r = command(w, ss, 1, addr, r);
				rc = stale_pooled(ss, *s_r, r) ? 1 : 0;
			}
		}
		if (rc != 1)
			break;
		if (replace_stale(w, ss) != 0)
			return -1;
	}
	ss->fresh_pooled = 0;
	return rc;
}

/* ---- the check ------------------------------------------------------------ */

static ca_sess *txn_find(gw_ca_txn *txn, const char *key)
{
	size_t i;

	for (i = 0; i < txn->n; i++)
		if (strcmp(txn->sess[i]->key, key) == 0)
			return txn->sess[i];
	return NULL;
}

/* How long to queue for a probe slot: part of what is left, so the probe itself still fits. */
static unsigned slot_wait_ms(ca_work *w)
{
	int64_t left = time_left(w) / 4;

	return left <= 0 ? 0 : left > 5000 ? 5000 : (unsigned)left;
}

/* This message's session for the route, taking a probe slot and a pooled or new session. NULL: res filled. */
static ca_sess *get_session(ca_work *w, ca_sess *ss, rh_entry **rh_r)
{
	gw_callahead *ca = w->ca;

	if (ss == NULL) {
		if (w->txn->n >= CA_TXN_ROUTES) {
			w->res->source = GW_CA_SRC_LIMIT;
			set_text(w->res, "too many routes in one message");
			return NULL;
		}
		ss = calloc(1, sizeof(*ss));
		if (ss == NULL) {
			w->res->source = GW_CA_SRC_LIMIT;
			w->res->status = GW_E_LOCAL;
			set_text(w->res, "out of memory");
			return NULL;
		}
		snprintf(ss->key, sizeof(ss->key), "%s", w->key);
		ss->rh = *rh_r; /* the message keeps the reference now */
		*rh_r = NULL;
		w->txn->sess[w->txn->n++] = ss;
	}
	if (ss->s != NULL) {
		w->res->source = GW_CA_SRC_POOLED;
		return ss;
	}
	if (rh_probe_begin(ca->health, ss->rh, ca->o.max_probes, slot_wait_ms(w)) != 0) {
		w->res->source = GW_CA_SRC_LIMIT;
		set_text(w->res, "too many concurrent probes on the route");
		return NULL;
	}
	ss->mail_ok = 0;
	ss->s = pp_checkout(ca->pool, w->key);
	if (ss->s != NULL) {
		ss->fresh_pooled = 1;
		ss->mail_ok = ss->s->primed; /* MAIL went with the last RSET */
		w->res->source = GW_CA_SRC_POOLED;
		return ss;
	}
	if (open_session(w, ss) != 0)
		return NULL;
	w->res->source = GW_CA_SRC_NEW;
	return ss;
}

/* A random local part at the domain: does the MTA take anything? 1 catch-all (res filled), 0 go on, -1
 * failed. */
static int probe_catchall(ca_work *w, ca_sess *ss, const char *mkey)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[8];
	char addr[GW_HOST_MAX + 32];
	size_t i, o;
	gw_reply r;
	gw_status s;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		int64_t t = gw_now_ms();

		for (i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)(t >> (i * 5)) ^ (unsigned char)(uintptr_t)&t;
	}
	o = (size_t)snprintf(addr, sizeof(addr), "gw-probe-");
	for (i = 0; i < sizeof(rnd); i++) {
		addr[o++] = hex[rnd[i] >> 4];
		addr[o++] = hex[rnd[i] & 15];
	}
	snprintf(addr + o, sizeof(addr) - o, "@%s", w->domain);
	if (send_rcpt(w, ss, addr, &r, &s) != 0)
		return -1;
	if (session_lost(s, &r)) {
		command_failed(w, ss, s, &r);
		return -1;
	}
	if (gw_reply_class(r.code) == 2) {
		cache_put(w->ca, mkey, GW_CACHE_POSITIVE, &r, w->ca->o.catchall_ttl_ms);
		rh_confirm(w->ca->health, ss->rh);
		w->res->verdict = GW_VERDICT_ACCEPT;
		w->res->source = GW_CA_SRC_CATCHALL;
		set_reply(w->res, &r);
		return 1;
	}
	/* Refused: remember the route is not catch-all; the random address itself is not cached. */
	ss->s->errors++;
	if (gw_reply_class(r.code) == 5)
		cache_put(w->ca, mkey, GW_CACHE_NEGATIVE, &r, w->ca->o.catchall_ttl_ms);
	return 0;
}

/* RCPT for the recipient and the verdict from its reply. */
static void probe_rcpt(ca_work *w, ca_sess *ss)
{
	gw_callahead *ca = w->ca;
	int cls;
	gw_reply r;
	gw_status s;

	if (send_rcpt(w, ss, w->rcpt, &r, &s) != 0)
		return;
	if (session_lost(s, &r)) {
		command_failed(w, ss, s, &r);
		return;
	}
	set_reply(w->res, &r);
	cls = gw_reply_class(r.code);
	if (cls != 2)
		ss->s->errors++;
	if (cls == 2) {
		w->res->verdict = GW_VERDICT_ACCEPT;
		if (r.code == 250 || r.code == 251) {
			cache_put(ca, w->cache_key, GW_CACHE_POSITIVE, &r, ca->o.positive_ttl_ms);
			verdict_told(ca, w->cache_key, GW_CACHE_POSITIVE, &r, ca->o.positive_ttl_ms);
		}
		rh_confirm(ca->health, ss->rh);
	} else if (cls == 5 && r.code != 552) {
		w->res->verdict = GW_VERDICT_REJECT;
		cache_put(ca, w->cache_key, GW_CACHE_NEGATIVE, &r, ca->o.negative_ttl_ms);
		verdict_told(ca, w->cache_key, GW_CACHE_NEGATIVE, &r, ca->o.negative_ttl_ms);
		rh_confirm(ca->health, ss->rh);
	} else if (cls == 3) {
		/* Out of step with the peer: this session cannot be trusted any more. */
		pp_session_discard(&ss->s);
		rh_probe_end(ca->health, ss->rh);
		ss->mail_ok = 0;
	}
	/* 4xx and 552: TEMPFAIL, the verdict already set. */
}

/* The live part: session, MAIL, catch-all probe, RCPT. */
static void check_live(ca_work *w, ca_sess *ss, rh_entry **rh_r, const char *mkey, int catchall_known)
{
	ss = get_session(w, ss, rh_r);
	if (ss == NULL)
		return;
	if (ss->s->errors >= PP_ERRORS_MAX) {
		/* Retire it before the MTA starts to slow it down; the probe slot stays ours. */
		gw_log(GW_LOG_DEBUG, "ca_pool", "step=retire hop=%s errors=%u", ss->s->hop, ss->s->errors);
		pp_session_discard(&ss->s);
		ss->mail_ok = 0;
		ss->fresh_pooled = 0;
		if (open_session(w, ss) != 0)
			return;
		w->res->source = GW_CA_SRC_NEW;
	}
	snprintf(w->res->hop, sizeof(w->res->hop), "%s", ss->s->hop);
	if (mkey != NULL && !catchall_known && w->domain[0] != '\0' && probe_catchall(w, ss, mkey) != 0)
		return;
	probe_rcpt(w, ss);
}

/* Fill in what every answer has and count it. */
static gw_verdict finish(gw_callahead *ca, gw_ca_result *res, int64_t t0)
{
	res->elapsed_ms = gw_now_ms() - t0;
	pthread_mutex_lock(&ca->lock);
	ca->checks++;
	if (res->verdict == GW_VERDICT_ACCEPT)
		ca->accepts++;
	else if (res->verdict == GW_VERDICT_REJECT)
		ca->rejects++;
	else
		ca->tempfails++;
	switch (res->source) {
	case GW_CA_SRC_CACHE:
		ca->from_cache++;
		break;
	case GW_CA_SRC_POOLED:
		ca->pooled++;
		break;
	case GW_CA_SRC_DOWN:
		ca->route_down++;
		break;
	case GW_CA_SRC_LIMIT:
		ca->limited++;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&ca->lock);
	return res->verdict;
}

/* A route to probe: the route itself, or for "smtp:" with no next hop, the recipient domain. */
static const gw_route *usable_route(const gw_route *route, const char *domain, gw_route *tmp)
{
	if (route == NULL || !route->has_proto)
		return NULL;
	if (route->nhops > 0)
		return route;
	if (domain[0] == '\0')
		return NULL;
	*tmp = *route;
	memset(&tmp->hops[0], 0, sizeof(tmp->hops[0]));
	tmp->hops[0].kind = GW_HOP_INET;
	snprintf(tmp->hops[0].host, sizeof(tmp->hops[0].host), "%s", domain);
	tmp->nhops = 1;
	return tmp;
}

/*
 * May a cached "valid" stand in for asking? Only while the route is up, was
 * confirmed within the window, and none of its idle pooled sessions was found
 * closed by the peer (an MTA that stops closes them: seconds-old answers must
 * not outlive it).
 */
static int reachable(ca_work *w, rh_entry *health)
{
	if (!rh_confirmed_within(w->ca->health, health, w->ca->o.confirm_window_ms))
		return 0;
	return pp_vouch(w->ca->pool, w->key) >= 0;
}

gw_verdict gw_ca_check(gw_ca_txn *txn, const gw_route *route, const char *rcpt, gw_ca_result *res)
{
	gw_callahead *ca = txn->ca;
	int64_t t0 = gw_now_ms();
	char mkey[GW_CACHE_KEY_MAX];
	int catchall_known = 0;
	gw_cache_value v;
	gw_route tmp;
	rh_entry *rh = NULL;
	ca_sess *ss;
	ca_work w;

	memset(res, 0, sizeof(*res));
	res->verdict = GW_VERDICT_TEMPFAIL;
	res->source = GW_CA_SRC_NOROUTE;
	memset(&w, 0, sizeof(w));
	w.ca = ca;
	w.txn = txn;
	w.rcpt = rcpt;
	w.res = res;
	w.deadline = t0 + ca->o.deadline_ms;
	if (rcpt == NULL || split_rcpt(&w, rcpt) != 0) {
		res->source = GW_CA_SRC_LIMIT;
		set_text(res, "recipient unusable (empty, too long or control characters)");
		return finish(ca, res, t0);
	}
	w.route = usable_route(route, w.domain, &tmp);
	if (w.route == NULL) {
		set_text(res, "no next hop");
		return finish(ca, res, t0);
	}
	pp_route_key(w.route, w.key, sizeof(w.key));

	ss = txn_find(txn, w.key);
	if (ss == NULL) {
		rh = rh_acquire(ca->health, w.key, w.route);
		if (rh == NULL) {
			res->source = GW_CA_SRC_LIMIT;
			set_text(res, "too many routes");
			return finish(ca, res, t0);
		}
	}
	rh_entry *health = ss != NULL ? ss->rh : rh;

	/* Validity may be cached; reachability is live. */
	if (gw_cache_get(ca->cache, w.cache_key, &v) &&
	    (v.kind == GW_CACHE_NEGATIVE || (v.kind == GW_CACHE_POSITIVE && reachable(&w, health)))) {
		res->verdict = v.kind == GW_CACHE_NEGATIVE ? GW_VERDICT_REJECT : GW_VERDICT_ACCEPT;
		res->source = GW_CA_SRC_CACHE;
		result_from_cache(res, &v);
	} else if (rh_is_down(ca->health, health)) {
		res->source = GW_CA_SRC_DOWN;
		set_text(res, "route down");
	} else {
		if (ca->o.catchall_check && w.domain[0] != '\0') {
			catchall_key(&w, mkey, sizeof(mkey));
			if (gw_cache_get(ca->cache, mkey, &v)) {
				catchall_known = 1;
				/* Catch-all stands in for validity only, like a positive entry. */
				if (v.kind == GW_CACHE_POSITIVE && reachable(&w, health)) {
					res->verdict = GW_VERDICT_ACCEPT;
					res->source = GW_CA_SRC_CATCHALL;
					result_from_cache(res, &v);
				}
			}
		}
		if (res->source != GW_CA_SRC_CATCHALL)
			check_live(&w, ss, &rh, ca->o.catchall_check ? mkey : NULL, catchall_known);
	}
	if (rh != NULL)
		rh_release(ca->health, rh);
	return finish(ca, res, t0);
}

/* ---- transactions --------------------------------------------------------- */

gw_ca_txn *gw_ca_txn_begin(gw_callahead *ca)
{
	gw_ca_txn *txn = calloc(1, sizeof(*txn));

	if (txn != NULL)
		txn->ca = ca;
	return txn;
}

void gw_ca_txn_end(gw_ca_txn **txnp)
{
	gw_ca_txn *txn = *txnp;
	size_t i;

	if (txn == NULL)
		return;
	for (i = 0; i < txn->n; i++) {
		ca_sess *ss = txn->sess[i];

		if (ss->s != NULL) {
			/* RSET (and MAIL for the next message) off the RCPT path, then back to the pool. */
			gw_callahead *ca = txn->ca;
			const char *fb = ca->o.fallback_sender;
			const char *sender =
			    fb != NULL && rh_sender_refused(ca->health, ss->rh) ? fb : ca->o.probe_sender;
			char prime[CA_RCPT_MAX + 3];

			snprintf(prime, sizeof(prime), "<%s>", sender != NULL ? sender : "");
			/* A session retired at pool_max_uses is replaced in the background, not by the next
			 * recipient's connect, greeting and EHLO. */
			if (pp_return(ca->pool, ss->key, &ss->s, prime))
				rh_request_refill(ca->health, ss->rh);
			rh_probe_end(txn->ca->health, ss->rh);
		}
		rh_release(txn->ca->health, ss->rh);
		free(ss);
	}
	free(txn);
	*txnp = NULL;
}

/* ---- the engine ----------------------------------------------------------- */

/* Background re-probe of a down route: connect, greeting, EHLO, QUIT on the first hop that answers. */
static int reprobe(void *ctx, const gw_route *route, const char *key)
{
	gw_callahead *ca = ctx;
	gw_nexthop hops[CA_HOPS_MAX];
	char err[256], hop[PP_HOP_MAX];
	size_t n = 0, i;

	if (gw_route_expand_until(route, ca->o.use_mx, gw_now_ms() + ca->o.deadline_ms, hops, CA_HOPS_MAX, &n,
				  err, sizeof(err)) != GW_LOOKUP_FOUND)
		return 0;
	for (i = 0; i < n && !rh_stopping(ca->health); i++) {
		gw_client_opts co = client_opts(ca, route->proto, ca->o.deadline_ms);
		gw_client *c = gw_client_new(&co);
		gw_status s;

		if (c == NULL)
			return 0;
		gw_nexthop_format(&hops[i], hop, sizeof(hop));
		s = gw_client_open(c, &hops[i], NULL);
		log_step("reprobe", hop, key, s, NULL, gw_client_error(c));
		if (s == GW_OK) {
			gw_client_set_deadline(c, ca->o.reply_timeout_ms);
			gw_client_quit(c);
		}
		gw_client_free(&c);
		if (s == GW_OK)
			return 1;
	}
	return 0;
}

/* Background: open a session on the first hop that answers and put it in the route's pool. */
static int refill(void *ctx, const gw_route *route, const char *key)
{
	gw_callahead *ca = ctx;
	gw_nexthop hops[CA_HOPS_MAX];
	char err[256], hop[PP_HOP_MAX];
	size_t n = 0, i;

	if (gw_route_expand_until(route, ca->o.use_mx, gw_now_ms() + ca->o.deadline_ms, hops, CA_HOPS_MAX, &n,
				  err, sizeof(err)) != GW_LOOKUP_FOUND)
		return 0;
	for (i = 0; i < n && !rh_stopping(ca->health); i++) {
		gw_client_opts co = client_opts(ca, route->proto, ca->o.deadline_ms);
		gw_client *c = gw_client_new(&co);
		pp_session *s;
		gw_status st;

		if (c == NULL)
			return 0;
		gw_nexthop_format(&hops[i], hop, sizeof(hop));
		st = gw_client_open(c, &hops[i], NULL);
		log_step("refill", hop, key, st, NULL, gw_client_error(c));
		if (st != GW_OK) {
			gw_client_free(&c);
			continue;
		}
		if ((s = pp_session_new(c, hop)) == NULL)
			return 0;
		count(ca, &ca->new_sessions);
		/* Not dirty: pooled as it is, and the first recipient sends MAIL with its RCPT. */
		(void)pp_return(ca->pool, key, &s, NULL);
		return 1;
	}
	return 0;
}

static void housekeeping(void *ctx)
{
	gw_callahead *ca = ctx;

	pp_expire(ca->pool);
}

int gw_ca_opts_fill(gw_ca_opts *o, const char **bad_r)
{
#define CA_FILL(key, field, type, def, du, min, mu, max, xu, doc)                                            \
	if (o->field == 0)                                                                                   \
		o->field = GW_CA_VAL(def, du);                                                               \
	else if (o->field < GW_CA_VAL(min, mu) || o->field > GW_CA_VAL(max, xu)) {                           \
		*bad_r = #key;                                                                               \
		return -1;                                                                                   \
	}
	GW_CA_PARAMS(CA_FILL)
#undef CA_FILL
	return 0;
}

gw_callahead *gw_callahead_new(const gw_ca_opts *opts, gw_cache *cache, const gw_clock *clock)
{
	gw_callahead *ca = calloc(1, sizeof(*ca));
	const char *bad;
	int failed = 0;

	if (ca == NULL)
		return NULL;
	if (opts != NULL)
		ca->o = *opts;
	if (gw_ca_opts_fill(&ca->o, &bad) != 0) {
		free(ca);
		errno = EINVAL;
		return NULL;
	}
	ca->clock = clock != NULL ? *clock : gw_clock_monotonic;
	pthread_mutex_init(&ca->lock, NULL);
	ca->helo_name = gwu_strdup_opt(ca->o.helo_name != NULL ? ca->o.helo_name : "localhost", &failed);
	ca->probe_sender = gwu_strdup_opt(ca->o.probe_sender != NULL ? ca->o.probe_sender : "", &failed);
	ca->fallback_sender = gwu_strdup_opt(ca->o.fallback_sender, &failed);
	ca->tls_ca_file = gwu_strdup_opt(ca->o.tls_ca_file, &failed);
	ca->bind_address = gwu_strdup_opt(ca->o.bind_address, &failed);
	ca->o.helo_name = ca->helo_name;
	ca->o.probe_sender = ca->probe_sender;
	ca->o.fallback_sender = ca->fallback_sender;
	ca->o.tls_ca_file = ca->tls_ca_file;
	ca->o.bind_address = ca->bind_address;
	ca->cache = cache;
	if (cache == NULL) {
		ca->cache = gw_cache_new(ca->o.cache_entries, &ca->clock);
		ca->own_cache = 1;
	}
	ca->pool = pp_new(&ca->clock, ca->o.pool_max_idle_ms, ca->o.pool_max_uses, ca->o.pool_max_size,
			  ca->o.reply_timeout_ms);
	if (failed || ca->cache == NULL || ca->pool == NULL) {
		gw_callahead_free(&ca);
		errno = ENOMEM;
		return NULL;
	}
	/* Last: the thread calls back into the pool. */
	ca->health = rh_new(&ca->clock, ca->o.reprobe_ms, reprobe, housekeeping, ca);
	if (ca->health == NULL) {
		int err = errno;

		gw_callahead_free(&ca);
		errno = err;
		return NULL;
	}
	rh_set_refill(ca->health, refill);
	return ca;
}

void gw_callahead_free(gw_callahead **cap)
{
	gw_callahead *ca = *cap;

	if (ca == NULL)
		return;
	rh_free(&ca->health); /* first: its thread uses the pool */
	pp_free(&ca->pool);
	if (ca->own_cache)
		gw_cache_free(&ca->cache);
	free(ca->helo_name);
	free(ca->probe_sender);
	free(ca->fallback_sender);
	free(ca->tls_ca_file);
	free(ca->bind_address);
	pthread_mutex_destroy(&ca->lock);
	free(ca);
	*cap = NULL;
}

size_t gw_ca_purge(gw_callahead *ca, const char *rcpt)
{
	ca_work w;

	if (rcpt == NULL)
		return gw_cache_clear(ca->cache);
	memset(&w, 0, sizeof(w));
	if (split_rcpt(&w, rcpt) != 0)
		return 0;
	return (size_t)gw_cache_remove(ca->cache, w.cache_key);
}

void gw_ca_set_verdict_hook(gw_callahead *ca, gw_ca_verdict_fn fn, void *ctx)
{
	ca->verdict_hook = fn;
	ca->verdict_ctx = ctx;
}

int gw_ca_import(gw_callahead *ca, const char *key, gw_cache_kind kind, int code, const char *enh,
		 const char *text, uint32_t ttl_ms)
{
	uint32_t max = kind == GW_CACHE_POSITIVE ? ca->o.positive_ttl_ms : ca->o.negative_ttl_ms;
	gw_reply r;
	ca_work w;
	size_t i;

	memset(&w, 0, sizeof(w));
	memset(&r, 0, sizeof(r));
	/* Only answers a probe could have given, under the key a check would look up. */
	if (key == NULL || (kind != GW_CACHE_POSITIVE && kind != GW_CACHE_NEGATIVE) || ttl_ms == 0 ||
	    split_rcpt(&w, key) != 0 || strcmp(w.cache_key, key) != 0 ||
	    (kind == GW_CACHE_POSITIVE && code != 250 && code != 251) ||
	    (kind == GW_CACHE_NEGATIVE && (code < 500 || code > 599 || code == 552))) {
		errno = EINVAL;
		return -1;
	}
	for (i = 0; enh != NULL && enh[i] != '\0'; i++)
		if (i + 1 >= sizeof(r.enh) || !((enh[i] >= '0' && enh[i] <= '9') || enh[i] == '.')) {
			errno = EINVAL;
			return -1;
		}
	r.code = code;
	snprintf(r.enh, sizeof(r.enh), "%s", enh != NULL ? enh : "");
	first_line(r.text, sizeof(r.text), text != NULL ? text : "");
	return ca_put(ca, w.cache_key, kind, &r, ttl_ms < max ? ttl_ms : max);
}

int gw_ca_route_down(gw_callahead *ca, const gw_route *route)
{
	char key[PP_KEY_MAX];

	if (route == NULL)
		return 0;
	pp_route_key(route, key, sizeof(key));
	return rh_key_down(ca->health, key);
}

void gw_ca_stats_get(gw_callahead *ca, gw_ca_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&ca->lock);
	st->checks = ca->checks;
	st->accepts = ca->accepts;
	st->rejects = ca->rejects;
	st->tempfails = ca->tempfails;
	st->from_cache = ca->from_cache;
	st->pooled = ca->pooled;
	st->new_sessions = ca->new_sessions;
	st->route_down = ca->route_down;
	st->limited = ca->limited;
	pthread_mutex_unlock(&ca->lock);
	st->pooled_idle = pp_idle(ca->pool);
	st->routes_down = rh_down_count(ca->health);
	gw_cache_stats_get(ca->cache, &st->cache);
}
