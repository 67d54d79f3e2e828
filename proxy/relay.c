/*
 * relay.c - a client session replayed towards its destination, command by
 * command, with the destination's verdicts passed back (see relay.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "gw/log.h"
#include "gw/mx.h"
#include "gw/time.h"
#include "dribble.h"
#include "pool_session.h"
#include "relay.h"
#include "throttle.h"
#include "tls_in.h"

#define BODY_HOLD   65536 /* body bytes held for one write to the destination (the dot goes with the last) */
#define STUFFED_MAX (1024 * 1024) /* the body held, dot-stuffed: BODY_HOLD plus one chunk at most */
#define BATCH_FLUSH 16384 /* a batch this large is written before the engine has handed out all of it */
#define SENT_MAX    (256 * 1024) /* the lines sent ahead kept for a replay (beyond: no replay, 451) */

static atomic_ulong sid_counter;

static void new_sid(char *out, size_t outlen)
{
	uint32_t v;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = (uint32_t)gw_now_ms() ^ (uint32_t)(atomic_fetch_add(&sid_counter, 1) << 16);
	snprintf(out, outlen, "%08x", v);
}

static void set_reply(gw_reply *rep, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_reply(gw_reply *rep, int code, const char *enh, const char *fmt, ...)
{
	va_list ap;

	memset(rep, 0, sizeof(*rep));
	rep->code = code;
	rep->nlines = 1;
	snprintf(rep->enh, sizeof(rep->enh), "%s", enh);
	va_start(ap, fmt);
	vsnprintf(rep->text, sizeof(rep->text), fmt, ap);
	va_end(ap);
	rep->text_len = strlen(rep->text);
}

static void slogf(gwp_relay *r, const char *dir, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void slogf(gwp_relay *r, const char *dir, const char *fmt, ...)
{
	char text[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	gwp_slog_line(r->env->slog, r->sid, dir, text, strlen(text), -1);
}

static long since(int64_t t0)
{
	return (long)(gw_now_ms() - t0);
}

/* "<local@domain> KEY=VALUE ..." as the client wrote it (parameters as written). */
static void format_path(const gw_path *p, char *out, size_t outlen)
{
	char mb[GW_PATH_MAX + 1];
	size_t i, n;

	gw_mailbox_format(&p->mbox, mb, sizeof(mb));
	n = (size_t)snprintf(out, outlen, "<%s>", mb);
	for (i = 0; i < p->nparams && n < outlen; i++)
		n += (size_t)snprintf(out + n, outlen - n, " %s%s%s", p->params[i].keyword,
				      p->params[i].has_value ? "=" : "", p->params[i].value);
}

/* A destination that tarpits (a reply slower than tarpit_delay) or throttles (421, 4xx rate limits). */
static void watch_mark(gwp_relay *r, gwp_mark kind, const char *why)
{
	if (r->env->watch == NULL ||
	    !gwp_watch_mark(r->env->watch, r->up_key, kind, why, r->env->conf->opt.mark_time))
		return; /* marked already this period: extended, not logged or counted again */
	atomic_fetch_add(
	    kind == GWP_MARK_THROTTLE ? &r->env->stats->throttle_marks : &r->env->stats->tarpit_marks, 1);
	slogf(r, "|<", "! %s: %s marked: %s", gwp_mark_str(kind), r->up_key, why);
	gw_log(GW_LOG_WARNING, "watch", "destination=%s kind=%s reply=\"%s\"", r->up_key, gwp_mark_str(kind),
	       why);
}

static void watch_check(gwp_relay *r, const gw_reply *rep, long ms)
{
	const gwp_config *c = r->env->conf;
	char why[200];
	size_t i;
	int slow, throttled;

	if (r->env->watch == NULL || rep->code == 0)
		return;
	slow = ms > c->opt.tarpit_delay;
	throttled = gwp_throttled(rep, c->twords, c->ntwords);
	if (!slow && !throttled) /* nearly every reply: nothing to format */
		return;
	snprintf(why, sizeof(why), "%d%s%s %.150s", rep->code, rep->enh[0] ? " " : "", rep->enh, rep->text);
	for (i = 0; why[i] != '\0'; i++)
		if (why[i] == '\n' || why[i] == '"')
			why[i] = why[i] == '\n' ? ' ' : '\'';
	if (slow) {
		char text[260];
		snprintf(text, sizeof(text), "%ldms for %s", ms, why);
		watch_mark(r, GWP_MARK_TARPIT, text);
	}
	if (throttled)
		watch_mark(r, GWP_MARK_THROTTLE, why);
}

/* Answer the engine's pending MAIL, RCPT or end of data with rep, as the client will see it. */
static void answer(gwp_relay *r, const gw_reply *rep, long ms)
{
	const char *enh;
	gw_reply own;
	int moved = 0;

	if (ms >= 0) { /* the destination's own reply */
		moved = gwp_pool_session_answer(r, rep, ms, &own);
		watch_check(r, rep, ms);
	}
	if (moved)
		rep = &own; /* logged as the proxy's answer */
	else
		gwp_slog_reply(r->env->slog, r->sid, "<-", rep, ms);
	enh = rep->enh[0] != '\0' && rep->enh[0] - '0' == rep->code / 100 ? rep->enh : NULL;
	if (gw_srv_reply(r->srv, rep->code, enh, rep->text) != 0)
		(void)gw_srv_reply(r->srv, rep->code, NULL, rep->text);
}

static const char *fail_enh(gw_status st)
{
	switch (st) {
	case GW_E_REFUSED:
	case GW_E_RESOLVE:
		return "4.4.1";
	case GW_E_TLS:
		return "4.7.5";
	case GW_E_BADREPLY:
	case GW_E_PROTO:
		return "4.5.0";
	case GW_E_LOCAL:
		return "4.3.0";
	default:
		return "4.4.2";
	}
}

/* The tenant hung up while the destination's reply to what was awaited: the connection is closed already. */
static void client_hung_up(gwp_relay *r, const char *what)
{
	slogf(r, "|<",
	      "! client gone while waiting for the reply to %s (%ldms into the session): closed, no QUIT",
	      what, since(r->started));
	atomic_fetch_add(&r->env->stats->client_gone, 1);
	if (r->up != NULL)
		gw_client_close(r->up);
	snprintf(r->outcome, sizeof(r->outcome), "client-gone");
	gw_log(GW_LOG_NOTICE, "session", "client=%s destination=%s waiting=%s action=client-gone", r->client,
	       r->up_key[0] ? r->up_key : r->dest, what);
}

/*
 * The destination side failed (transport, or a reply that makes no sense
 * here): the pending command gets 421 and the session ends; the client
 * retries from its queue.
 */
static void fail(gwp_relay *r, gw_status st, const char *what)
{
	gw_reply rep;

	if (st == GW_E_CANCELLED) { /* the tenant, not the destination: nobody is left to answer */
		client_hung_up(r, what);
		r->in_txn = r->in_body = 0;
		set_reply(&rep, 421, "4.4.2", "%s: client gone", r->dest);
		answer(r, &rep, -1);
		return;
	}
	slogf(r, "|<", "! %s: %s%s%s", what, gw_status_str(st),
	      r->up && gw_client_error(r->up)[0] ? ": " : "", r->up ? gw_client_error(r->up) : "");
	atomic_fetch_add(&r->env->stats->upstream_failures, 1);
	if (r->up != NULL)
		gw_client_close(r->up);
	r->in_txn = r->in_body = 0;
	snprintf(r->outcome, sizeof(r->outcome), "upstream-%s", gw_status_str(st));
	set_reply(&rep, 421, fail_enh(st), "%s: %s; try again later", r->dest, gw_status_str(st));
	answer(r, &rep, -1);
}

static void caps_text(unsigned caps, char *out, size_t outlen)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {{GW_CAP_PIPELINING, "PIPELINING"}, {GW_CAP_SIZE, "SIZE"},
		     {GW_CAP_8BITMIME, "8BITMIME"},     {GW_CAP_SMTPUTF8, "SMTPUTF8"},
		     {GW_CAP_STARTTLS, "STARTTLS"},     {GW_CAP_ENHANCEDSTATUSCODES, "ENHANCEDSTATUSCODES"},
		     {GW_CAP_CHUNKING, "CHUNKING"},     {GW_CAP_DSN, "DSN"}};
	size_t i, n = 0;

	out[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]) && n < outlen; i++)
		if (caps & names[i].bit)
			n += (size_t)snprintf(out + n, outlen - n, "%s%s", n ? "," : "", names[i].name);
}

static gw_status up_open(gwp_relay *r, const gw_nexthop *hop, gw_reply *rep);

/*
 * Refused from addr: retired at once when the destination took another pool address lately; either way the
 * session tries once more from another address, and when that one gets in, the destination refuses addr, not
 * us (a destination down for everyone retires nothing). The status of the second try.
 */
static gw_status pool_refused(gwp_relay *r, const gw_nexthop *hop, gw_reply *rep, const char *addr)
{
	const gwp_config *c = r->env->conf;
	char a[64], why[128];
	int done = 0;
	gw_status st;

	snprintf(a, sizeof(a), "%s", addr);
	if (gwp_pool_accepts_others(r->env->pool, a, r->up_key, c->opt.pool_retire_time)) {
		gwp_pool_session_retire(r, a, "connection refused; other addresses accepted");
		done = 1;
	}
	snprintf(r->pool_skip, sizeof(r->pool_skip), "%s", a);
	st = up_open(r, hop, rep);
	r->pool_skip[0] = '\0';
	if (st == GW_OK && !done) {
		snprintf(why, sizeof(why), "connection refused; %s accepted", r->up_bind);
		gwp_pool_session_retire(r, a, why);
	}
	return st;
}

/*
 * The greeting or EHLO reply blocklists r->up_bind (retired) and the tenant has another address: connect
 * again from it, and from the next while each says the same, so the tenant never sees the verdict. The last
 * status.
 */
static gw_status pool_moved(gwp_relay *r, const gw_nexthop *hop, gw_reply *rep)
{
	gw_status st = GW_E_REJECTED;
	size_t tries;
	char from[64];

	for (tries = 0; tries < GWP_TENANT_ADDRS && st == GW_E_REJECTED && gwp_pool_session_left(r);
	     tries++) {
		snprintf(from, sizeof(from), "%s", r->up_bind);
		slogf(r, "|>", "! pool: %s blocklisted at %s: connecting again from another address", from,
		      r->up_key);
		gw_log(GW_LOG_NOTICE, "pool", "address=%s destination=%s tenant=%s action=reconnect", from,
		       r->up_key, r->tenant);
		atomic_fetch_add(&r->env->stats->pool_reconnected, 1);
		snprintf(r->pool_skip, sizeof(r->pool_skip), "%s", from);
		st = up_open(r, hop, rep); /* with pool_skip set, a verdict there comes back here */
		r->pool_skip[0] = '\0';
		if (st != GW_E_REJECTED || !gwp_blocklisted(rep, r->env->conf->words, r->env->conf->nwords))
			break;
	}
	return st;
}

/* Connect hop, greeting, EHLO, STARTTLS per policy. GW_OK, GW_E_REJECTED (rep), or a failure. */
static gw_status up_open(gwp_relay *r, const gw_nexthop *hop, gw_reply *rep)
{
	const gwp_config *c = r->env->conf;
	char h[GW_HOST_MAX + 16], caps[160];
	gw_status st;
	int64_t t0;

	gw_tls_policy tls = r->terms != NULL
				? r->terms->policy
				: gwp_tls_map_lookup(c->tls_map, hop->host,
						     gwp_dane_address_policy((gw_tls_level)c->opt.tls));
	char bind[64] = "";

	snprintf(r->up_key, sizeof(r->up_key), "%s", hop->host);
	if (gwp_throttle_dest_take(r, rep) != 0) /* at the destination's session limit: not connected */
		return GW_E_REJECTED;
	if (r->env->pool != NULL && c->npool > 0) {
		const char *mine[GWP_TENANT_ADDRS], *const *addrs = (const char *const *)c->pool;
		size_t n = c->npool, j;
		int all = 0, i;
		if (r->tenant_ent != NULL) { /* the tenant's part of the pool */
			for (j = 0; j < r->tenant_ent->naddr; j++)
				mine[j] = r->tenant_ent->addr[j];
			addrs = mine;
			n = r->tenant_ent->naddr;
		}
		if (r->pool_skip[0] == '\0') {
			i = gwp_pool_choose(r->env->pool, addrs, n, r->up_key, &all);
		} else if ((i = gwp_pool_choose_other(r->env->pool, addrs, n, r->up_key, r->pool_skip)) < 0) {
			gwp_throttle_dest_give(r); /* after a refusal, no other address to try */
			return GW_E_REFUSED;
		}
		snprintf(bind, sizeof(bind), "%s", addrs[i]);
		if (all) {
			atomic_fetch_add(&r->env->stats->pool_all_retired, 1);
			slogf(r, "|>", "! pool: every address retired for %s; %s retired longest ago",
			      r->up_key, bind);
		}
	}
	/* another policy or another source address: another client */
	if (r->up != NULL && (r->up_tls != tls || strcmp(r->up_bind, bind) != 0))
		gw_client_free(&r->up);
	if (r->up == NULL) {
		gw_client_opts o;
		memset(&o, 0, sizeof(o));
		o.proto = GW_PROTO_SMTP;
		o.helo_name = c->opt.helo_name;
		o.connect_timeout_ms = (unsigned)c->opt.connect_timeout;
		o.reply_timeout_ms = (unsigned)c->opt.reply_timeout;
		o.tls = tls;
		o.tls_ca_file =
		    c->opt.tls_ca_file != NULL && c->opt.tls_ca_file[0] ? c->opt.tls_ca_file : NULL;
		o.default_port = (unsigned)c->opt.smtp_port;
		o.bind_address = bind[0] ? bind : NULL;
		r->up_tls = tls;
		snprintf(r->up_bind, sizeof(r->up_bind), "%s", bind);
		if ((r->up = gw_client_new(&o)) == NULL) {
			set_reply(rep, 451, "4.3.0", "out of memory");
			return GW_E_LOCAL;
		}
		gw_client_set_reply_hook(r->up, gwp_dribble_hook, r);
		gw_client_set_watch(r->up, r->client_fd);
	} else {
		gw_client_close(r->up);
	}
	if (r->terms != NULL && gw_client_set_tls(r->up, tls, r->terms->tlsa, r->terms->ntlsa) != 0) {
		set_reply(rep, 451, "4.3.0", "out of memory");
		return GW_E_LOCAL;
	}
	gw_nexthop_format(hop, h, sizeof(h));
	slogf(r, "|>", "connect %s%s%s, EHLO %s, tls %s", h, bind[0] ? " from " : "", bind, c->opt.helo_name,
	      gw_tls_policy_str(tls));
	t0 = gw_now_ms();
	memset(rep, 0, sizeof(*rep));
	st = gw_client_open(r->up, hop, rep);
	if (st == GW_OK) {
		caps_text(gw_client_caps(r->up), caps, sizeof(caps));
		char text[400];
		snprintf(r->tls_out, sizeof(r->tls_out), "%s", gw_client_tls_desc(r->up));
		snprintf(text, sizeof(text), "250 ready at %s caps=%s tls=%s", gw_client_peer(r->up),
			 caps[0] ? caps : "-", r->tls_out[0] ? r->tls_out : "none");
		gwp_slog_line(r->env->slog, r->sid, "|<", text, strlen(text), since(t0));
		if (r->env->pool != NULL && bind[0])
			gwp_pool_ok(r->env->pool, bind, r->up_key);
		if (r->env->watch != NULL && since(t0) > c->opt.tarpit_delay) {
			char slow[64];
			snprintf(slow, sizeof(slow), "%ldms for connect, greeting and EHLO", since(t0));
			watch_mark(r, GWP_MARK_TARPIT, slow);
		}
	} else if (st == GW_E_REJECTED) {
		gwp_slog_reply(r->env->slog, r->sid, "|<", rep, since(t0));
		watch_check(r, rep, since(t0));
		if (gwp_pool_session_check(r, rep) == GWP_POOL_MOVE && r->pool_skip[0] == '\0')
			st = pool_moved(r, hop, rep);
	} else if (st == GW_E_CANCELLED) {
		client_hung_up(r, gw_stage_str(gw_client_stage(r->up)));
	} else {
		char text[400];
		snprintf(text, sizeof(text), "! %s at %s: %s", gw_status_str(st),
			 gw_stage_str(gw_client_stage(r->up)), gw_client_error(r->up));
		gwp_slog_line(r->env->slog, r->sid, "|<", text, strlen(text), since(t0));
		atomic_fetch_add(&r->env->stats->upstream_failures, 1);
		if (st == GW_E_REFUSED && r->env->pool != NULL && bind[0] && r->pool_skip[0] == '\0')
			st = pool_refused(r, hop, rep, bind);
	}
	if (st != GW_OK)
		gwp_throttle_dest_give(r);
	return st;
}

/* MX mode: r->terms for host under the domain's level, logged. 0, or -1 (do not try it) with why. */
static int mx_terms(gwp_relay *r, gw_tls_level level, int mx_secure, const char *host, char *why,
		    size_t whylen)
{
	unsigned port = (unsigned)r->env->conf->opt.smtp_port;

	if (gwp_dane_host(level, mx_secure, host, port, gw_now_ms() + r->env->conf->opt.connect_timeout,
			  r->terms, why, whylen) != 0) {
		slogf(r, "|<", "! %s: %s not tried: %s", gw_tls_level_str(level), host, why);
		return -1;
	}
	if (r->terms->state != GW_DANE_OFF)
		slogf(r, "|<", "%s: %s%s: %s, %zu TLSA record%s", gw_tls_level_str(level), host,
		      mx_secure ? "" : " (MX not DNSSEC-validated)", gw_dane_state_str(r->terms->state),
		      r->terms->ntlsa, r->terms->ntlsa == 1 ? "" : "s");
	return 0;
}

/* MX mode: a connection to one of domain's mail servers. 0, or -1 with the answer for the RCPT in rep. */
static int mx_open(gwp_relay *r, const char *domain, gw_reply *rep)
{
	const gwp_config *c = r->env->conf;
	gw_mx mx[GW_MX_MAX];
	gw_nexthop hop;
	gw_reply last;
	gw_status st = GW_E_RESOLVE;
	char err[256];
	size_t n = 0, i;

	gw_tls_level level = gwp_dane_level(c, domain);
	int mx_secure = 0;
	size_t dane_refused = 0;
	char why[400] = "";

	memset(&last, 0, sizeof(last));
	snprintf(r->dest, sizeof(r->dest), "%s", domain);
	if (domain[0] == '[') { /* an address literal: that host, no lookup */
		char spec[GW_DOMAIN_MAX + 16];
		const char *e;
		snprintf(spec, sizeof(spec), "%s:%ld", domain, c->opt.smtp_port);
		if (gw_nexthop_parse(spec, strlen(spec), &hop, &e) != 0) {
			set_reply(rep, 550, "5.1.2", "bad address literal %s: %s", domain, e);
			return -1;
		}
		snprintf(mx[0].host, sizeof(mx[0].host), "%s", hop.host);
		n = 1;
	} else {
		gw_lookup lk = gwp_dane_mx(level, domain, mx, GW_MX_MAX, &n, &mx_secure, err, sizeof(err));
		if (lk == GW_LOOKUP_NOTFOUND) {
			slogf(r, "|<", "! no mail server for %s: %s", domain, err);
			if (strstr(err, "null MX") != NULL) /* RFC 7505 */
				set_reply(rep, 556, "5.1.10", "domain %s accepts no mail (null MX)", domain);
			else
				set_reply(rep, 550, "5.1.2", "no mail server for %s", domain);
			return -1;
		}
		if (lk != GW_LOOKUP_FOUND) {
			slogf(r, "|<", "! MX lookup of %s: %s", domain, err);
			set_reply(rep, 451, "4.4.3", "cannot look up the mail servers of %s now", domain);
			return -1;
		}
	}
	r->terms = NULL; /* an address literal: the address's policy */
	if (domain[0] != '[') {
		if (r->terms_mem == NULL && (r->terms_mem = calloc(1, sizeof(*r->terms_mem))) == NULL) {
			set_reply(rep, 451, "4.3.0", "out of memory");
			return -1;
		}
		r->terms = r->terms_mem;
	}
	for (i = 0; i < n; i++) {
		memset(&hop, 0, sizeof(hop));
		hop.kind = GW_HOP_INET;
		hop.literal = domain[0] == '[';
		hop.port = (unsigned)c->opt.smtp_port;
		snprintf(hop.host, sizeof(hop.host), "%s", mx[i].host);
		if (r->terms != NULL && mx_terms(r, level, mx_secure, hop.host, why, sizeof(why)) != 0) {
			dane_refused++;
			continue; /* never plain text where DANE says no */
		}
		st = up_open(r, &hop, &last);
		if (st == GW_OK) {
			snprintf(r->up_domain, sizeof(r->up_domain), "%s", domain);
			return 0;
		}
		if ((st == GW_E_REJECTED && gw_reply_class(last.code) == 5) || st == GW_E_CANCELLED)
			break; /* the host refuses us outright (its word, not a transport failure), or the
				  tenant left */
	}
	if (st == GW_E_REJECTED)
		*rep = last;
	else if (dane_refused == n)
		set_reply(rep, 451, "4.7.5", "no mail server of %s usable under %s: %s", domain,
			  gw_tls_level_str(level), why);
	else
		set_reply(rep, 451, fail_enh(st), "cannot reach the mail servers of %s: %s", domain,
			  gw_status_str(st));
	return -1;
}

/* The server engine, offering what the destination offers (all of it when the destination is not known yet).
 */
static int make_srv(gwp_relay *r, int known, unsigned dcaps, unsigned long dsize)
{
	const gwp_config *c = r->env->conf;
	gw_srv_config sc;

	gw_srv_config_init(&sc, GW_SRV_SMTP, c->opt.hostname);
	sc.caps = GW_SRV_CAP_PIPELINING | GW_SRV_CAP_ENHANCEDSTATUSCODES | GW_SRV_CAP_SIZE;
	if (!known || (dcaps & GW_CAP_8BITMIME))
		sc.caps |= GW_SRV_CAP_8BITMIME;
	if (!known || (dcaps & GW_CAP_SMTPUTF8))
		sc.caps |= GW_SRV_CAP_SMTPUTF8;
	if (!known || (dcaps & GW_CAP_DSN))
		sc.caps |= GW_SRV_CAP_DSN;
	if (gwp_tls_in_offered(c))
		sc.caps |= GW_SRV_CAP_STARTTLS;
	sc.max_rcpts = (size_t)c->opt.max_rcpts;
	sc.max_size = (uint64_t)c->opt.message_size_limit;
	if (dsize > 0 && dsize < sc.max_size)
		sc.max_size = dsize;
	sc.lookahead = 1; /* pipelined RCPTs come before their answers: pipelining() decides what to do */
	r->srv = gw_srv_new(&sc);
	/* at most the MAIL, every RCPT and DATA are outstanding at once; the queue itself is made at the
	 * first command sent ahead (16 KB at the default max_rcpts: sessions held by a tarpit never need it)
	 */
	r->pipe_cap = sc.max_rcpts + 2;
	gw_buf_init(&r->batch, BATCH_FLUSH + sizeof(r->mail_cmd) + 16);
	return r->srv != NULL ? 0 : -1;
}

static void base_init(gwp_relay *r, const gwp_env *env, const char *client)
{
	memset(r, 0, sizeof(*r));
	r->env = env;
	r->started = gw_now_ms();
	new_sid(r->sid, sizeof(r->sid));
	snprintf(r->client, sizeof(r->client), "%s", client);
	{ /* "[192.0.2.7]:51234" -> "192.0.2.7"; the tenant map may name it */
		size_t tl = strcspn(client + (client[0] == '['), "]");
		snprintf(r->tenant, sizeof(r->tenant), "%.*s", (int)tl, client + (client[0] == '['));
		if ((r->tenant_ent = gwp_tenant_map_lookup(env->conf->tenants, r->tenant)) != NULL)
			snprintf(r->tenant, sizeof(r->tenant), "%s", r->tenant_ent->name);
	}
	snprintf(r->outcome, sizeof(r->outcome), "open");
	r->client_fd = -1;
	gw_buf_init(&r->stuffed, STUFFED_MAX);
	gw_buf_init(&r->sent, SENT_MAX);
	atomic_fetch_add(&env->stats->sessions_total, 1);
}

int gwp_relay_init_refused(gwp_relay *r, const gwp_env *env, const char *client, const char *text)
{
	base_init(r, env, client);
	snprintf(r->dest, sizeof(r->dest), "-");
	snprintf(r->outcome, sizeof(r->outcome), "refused");
	if (make_srv(r, 0, 0, 0) != 0)
		return -1;
	slogf(r, "<-", "421 4.3.2 %s", text);
	gw_srv_shutdown(r->srv, text);
	return 0;
}

int gwp_relay_init(gwp_relay *r, const gwp_env *env, const char *client, int client_fd, const gw_nexthop *hop)
{
	gw_reply rep;
	gw_status st;

	base_init(r, env, client);
	r->client_fd = client_fd;
	if (hop == NULL) {
		r->mode = GWP_DEST_MX;
		snprintf(r->dest, sizeof(r->dest), "mx");
		slogf(r, "|>", "session from %s, destination by MX of the recipients' domain", client);
		if (make_srv(r, 0, 0, 0) != 0)
			return -1;
		gw_srv_start(r->srv);
		return 0;
	}
	r->mode = GWP_DEST_HOP;
	r->hop = *hop;
	gw_nexthop_format(hop, r->dest, sizeof(r->dest));
	slogf(r, "|>", "session from %s to %s", client, r->dest);
	st = up_open(r, hop, &rep);
	if (st == GW_OK) {
		if (make_srv(r, 1, gw_client_caps(r->up), gw_client_size_limit(r->up)) != 0)
			return -1;
		gw_srv_start(r->srv);
		return 0;
	}
	if (make_srv(r, 0, 0, 0) != 0)
		return -1;
	if (r->dlimited) { /* a 421 greeting: the tenant's MTA backs off as from a busy destination */
		snprintf(r->outcome, sizeof(r->outcome), "limited");
		slogf(r, "<-", "421 4.3.2 %s", rep.text);
		gw_srv_shutdown(r->srv, rep.text);
		return 0;
	}
	if (st == GW_E_REJECTED) {
		/* the destination's refusal answers every MAIL: its words reach the client whole */
		r->refusal = rep;
		gw_srv_start(r->srv);
		return 0;
	}
	{
		char text[GW_HOST_MAX + 64];
		snprintf(text, sizeof(text), "cannot reach %s: %s", r->dest, gw_status_str(st));
		if (st != GW_E_CANCELLED) /* else "client-gone" */
			snprintf(r->outcome, sizeof(r->outcome), "upstream-%s", gw_status_str(st));
		slogf(r, "<-", "421 4.3.2 %s", text);
		gw_srv_shutdown(r->srv, text);
	}
	return 0;
}

static void txn_clear(gwp_relay *r)
{
	r->in_txn = r->in_body = r->mail_held = r->body_lost = r->txn_rcpts = 0;
	r->txn_domain[0] = '\0';
	r->txn_fail.code = 0;
	r->data_reply.code = 0;
	r->body_status = GW_OK;
}

/* Send a command that the client sent, relay its reply. 0 relayed, -1 failed (answered 421). */
static int relay_cmd(gwp_relay *r, gw_stage stage, const char *arg, gw_reply *rep, long *ms_r)
{
	int64_t t0 = gw_now_ms();
	gw_status st;

	slogf(r, "->", "%s%s", stage == GW_STAGE_MAIL ? "MAIL FROM:" : "RCPT TO:", arg);
	st = stage == GW_STAGE_MAIL ? gw_client_mail(r->up, arg, rep) : gw_client_rcpt(r->up, arg, rep);
	*ms_r = since(t0);
	if (st != GW_OK) {
		fail(r, st, stage == GW_STAGE_MAIL ? "MAIL" : "RCPT");
		return -1;
	}
	if (gw_reply_class(rep->code) == 3) {
		gwp_slog_reply(r->env->slog, r->sid, "|<", rep, *ms_r);
		fail(r, GW_E_PROTO, stage == GW_STAGE_MAIL ? "MAIL" : "RCPT");
		return -1;
	}
	return 0;
}

/*
 * rep, a known destination's reply to the transaction's MAIL or first RCPT (before any RCPT was answered),
 * blocklists r->up_bind while the tenant has another address: retire it, close the connection and connect
 * again from the next address (pool_moved(): EHLO, STARTTLS per policy, counted in pool_reconnected). 1: the
 * new connection is ready, nothing sent on it yet; 0: not such a verdict (nothing done); -1: no new
 * connection, the pending command answered 451 4.7.1 with the destination's text (pool_deferred).
 */
static int pool_replay(gwp_relay *r, const gw_reply *rep, long ms)
{
	const gwp_config *c = r->env->conf;
	gw_reply nrep, out;
	gw_status st;

	if (r->mode != GWP_DEST_HOP || r->env->pool == NULL || r->up_bind[0] == '\0' || r->sent_lost ||
	    !gwp_blocklisted(rep, c->words, c->nwords) || !gwp_pool_session_left(r))
		return 0;
	gwp_slog_reply(r->env->slog, r->sid, "|<", rep, ms);
	if (gwp_pool_session_check(r, rep) != GWP_POOL_MOVE) /* retired; moved by another session meanwhile */
		return 0;
	slogf(r, "|>",
	      "(close: %s is blocklisted at %s; the transaction goes out again from another address)",
	      r->up_bind, r->up_key);
	gw_client_close(r->up);
	st = pool_moved(r, &r->hop, &nrep);
	if (st == GW_OK)
		return 1;
	gwp_pool_defer_reply(rep, &out);
	atomic_fetch_add(&r->env->stats->pool_deferred, 1);
	slogf(r, "|<", "! pool: no new connection to %s (%s): the tenant retries later", r->up_key,
	      gw_status_str(st));
	if (gw_client_is_open(r->up))
		gw_client_close(r->up); /* the next MAIL connects again */
	r->in_txn = 0;
	r->txn_fail = out; /* also the answer to the commands sent after it */
	answer(r, &out, -1);
	return -1;
}

/*
 * On the new connection of a replay at a RCPT: the transaction's MAIL again, its reply consumed. 0, or -1
 * when it failed or was refused (the pending RCPT answered with why).
 */
static int replay_mail(gwp_relay *r, gw_reply *rep)
{
	int64_t t0 = gw_now_ms();
	gw_status st;

	slogf(r, "|>", "MAIL FROM:%s", r->mail_cmd);
	st = gw_client_mail(r->up, r->mail_cmd, rep);
	if (st != GW_OK) {
		r->txn_fail.code = 0;
		fail(r, st, "MAIL");
		return -1;
	}
	gwp_slog_reply(r->env->slog, r->sid, "|<", rep, since(t0));
	if (gw_reply_class(rep->code) == 2)
		return 0;
	r->in_txn = 0; /* the new connection refused the sender: that is the answer to its recipients */
	r->txn_fail = *rep;
	answer(r, rep, -1);
	return -1;
}

/* ---- pipelining towards the destination (RFC 2920) ---- */

/* Does the destination take pipelined commands (and is there nothing in the way)? */
static int pipelining(const gwp_relay *r)
{
	return r->mode == GWP_DEST_HOP && r->refusal.code == 0 && gw_client_is_open(r->up) &&
	       (gw_client_caps(r->up) & GW_CAP_PIPELINING);
}

static void pipe_clear(gwp_relay *r)
{
	r->pipe_head = r->pipe_len = 0;
	gw_buf_reset(&r->batch);
	gw_buf_reset(&r->sent);
	r->sent_lost = 0;
}

/* Write the commands in the batch, in one write, and log each as it leaves. GW_OK or the failure. */
static gw_status pipe_flush(gwp_relay *r)
{
	const char *p = r->batch.data, *end = r->batch.data + r->batch.len;
	int64_t now;
	size_t i;
	gw_status st;

	if (r->batch.len == 0)
		return GW_OK;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)(nl - p);
		slogf(r, "->", "%.*s", (int)(n > 0 && p[n - 1] == '\r' ? n - 1 : n), p);
		p = nl + 1;
	}
	st = gw_client_raw(r->up, r->pipe[r->pipe_head].stage, r->batch.data, r->batch.len, NULL, 0, NULL);
	if (r->up_bind[0] != '\0' && gw_buf_append(&r->sent, r->batch.data, r->batch.len) != 0)
		r->sent_lost = 1; /* kept for pool_replay(): only with a pool address to move from */
	gw_buf_reset(&r->batch);
	now = gw_now_ms();
	for (i = 0; i < r->pipe_len; i++) {
		gwp_sent *e = &r->pipe[(r->pipe_head + i) % r->pipe_cap];
		if (e->t0 == 0)
			e->t0 = now;
	}
	return st;
}

/*
 * The destination failed with commands outstanding: each MAIL/RCPT still
 * unanswered gets a 451 in order, the last one the 421 that ends the session
 * (fail()); a DATA sent ahead is the engine's own to answer.
 */
static void pipe_fail(gwp_relay *r, gw_status st, const char *what)
{
	size_t i, last = 0, owed = 0;
	gw_reply rep;

	for (i = 0; i < r->pipe_len; i++)
		if (r->pipe[(r->pipe_head + i) % r->pipe_cap].stage != GW_STAGE_DATA) {
			owed++;
			last = i;
		}
	set_reply(&rep, 451, fail_enh(st), "%s: %s; try again later", r->dest, gw_status_str(st));
	for (i = 0; i < r->pipe_len && owed > 0; i++) {
		gw_stage sg = r->pipe[(r->pipe_head + i) % r->pipe_cap].stage;
		if (sg == GW_STAGE_DATA)
			continue;
		if (sg == GW_STAGE_RCPT)
			r->rcpts_bad++;
		if (i != last)
			answer(r, &rep, -1);
	}
	pipe_clear(r);
	r->data_ahead = 0;
	fail(r, st, what); /* the last one owed: 421, or just the log and the close when none is */
}

static void pipe_settle(gwp_relay *r, int data_follows);

/*
 * Queue "verb arg" to go with the next write: 0, or -1 when the destination failed (answered). 1 when
 * there is no room (more than the engine can owe at once: not expected): everything before it has been
 * answered, the caller sends it alone.
 */
static int pipe_queue(gwp_relay *r, gw_stage stage, const char *verb, const char *arg)
{
	gwp_sent *e;

	if (r->pipe == NULL)
		r->pipe = calloc(r->pipe_cap, sizeof(*r->pipe));
	if (r->pipe == NULL || r->pipe_len == r->pipe_cap ||
	    gw_buf_printf(&r->batch, "%s%s\r\n", verb, arg) != 0) {
		pipe_settle(r, 1);
		return 1;
	}
	e = &r->pipe[(r->pipe_head + r->pipe_len) % r->pipe_cap];
	e->stage = stage;
	e->t0 = 0;
	r->pipe_len++;
	if (r->batch.len >= BATCH_FLUSH) {
		gw_status st = pipe_flush(r);
		if (st != GW_OK) {
			pipe_fail(r, st, stage == GW_STAGE_MAIL ? "MAIL" : "RCPT");
			return -1;
		}
	}
	return 0;
}

size_t gwp_relay_pending(const gwp_relay *r)
{
	return r->pipe_len;
}

/*
 * The reply to a MAIL or RCPT sent ahead (stage, at the head of the queue): a blocklist verdict that moves
 * the transaction (pool_replay()) has every command still unanswered, the head included, queued again for
 * the new connection (after the MAIL alone, when the head is a RCPT). 1 when the reply was dealt with here.
 */
static int pool_replay_pipe(gwp_relay *r, gw_stage stage, const gw_reply *rep, long ms)
{
	gw_buf again;
	gw_reply mrep;
	size_t i;
	int moved;

	if (stage == GW_STAGE_RCPT && r->txn_rcpts != 0)
		return 0;
	if ((moved = pool_replay(r, rep, ms)) == 0)
		return 0;
	if (moved > 0 && stage == GW_STAGE_RCPT && replay_mail(r, &mrep) == 0)
		moved = 2; /* the MAIL is in on the new connection */
	if (moved == 1 && stage == GW_STAGE_MAIL)
		moved = 2;
	if (moved == 2) {
		/* what was written and not answered, then what was not written yet: the next batch */
		gw_buf_init(&again, SENT_MAX + r->batch.limit);
		if (gw_buf_append(&again, r->sent.data, r->sent.len) == 0 &&
		    gw_buf_append(&again, r->batch.data, r->batch.len) == 0) {
			gw_buf_free(&r->batch);
			r->batch = again;
			gw_buf_reset(&r->sent);
			for (i = 0; i < r->pipe_len; i++)
				r->pipe[(r->pipe_head + i) % r->pipe_cap].t0 = 0;
			return 1;
		}
		gw_buf_free(&again);
		r->txn_fail.code = 0;
		fail(r, GW_E_LOCAL, "replay"); /* out of memory: the head gets 421, the session ends */
	}
	/* the head is answered (451 4.7.1, the new connection's refusal, or 421): the rest the same way */
	if (stage == GW_STAGE_RCPT)
		r->rcpts_bad++;
	r->pipe_head = (r->pipe_head + 1) % r->pipe_cap;
	r->pipe_len--;
	while (r->pipe_len > 0) {
		gw_stage sg = r->pipe[r->pipe_head].stage;
		r->pipe_head = (r->pipe_head + 1) % r->pipe_cap;
		r->pipe_len--;
		if (sg == GW_STAGE_DATA) { /* not 354: the engine refuses the DATA it holds (code 0: lost) */
			r->ahead_data = r->txn_fail;
			continue;
		}
		if (sg == GW_STAGE_RCPT)
			r->rcpts_bad++;
		if (r->txn_fail.code != 0)
			answer(r, &r->txn_fail, -1);
	}
	pipe_clear(r);
	return 1;
}

int gwp_relay_reply_ready(const gwp_relay *r)
{
	return r->pipe_len > 0 && r->batch.len == 0 && gw_client_reply_buffered(r->up);
}

int gwp_relay_unsent(const gwp_relay *r)
{
	return r->batch.len > 0;
}

void gwp_relay_pump(gwp_relay *r)
{
	gwp_sent e;
	gw_reply rep;
	gw_status st;
	size_t got = 0;
	long ms;
	static const char *const what[] = {
	    [GW_STAGE_MAIL] = "MAIL", [GW_STAGE_RCPT] = "RCPT", [GW_STAGE_DATA] = "DATA"};

	if (r->pipe_len == 0)
		return;
	st = pipe_flush(r); /* stamps the commands it sends: copy the entry after it */
	e = r->pipe[r->pipe_head];
	if (st == GW_OK) {
		st = gw_client_raw(r->up, e.stage, NULL, 0, &rep, 1, &got);
		if (st == GW_OK && got != 1)
			st = GW_E_LOST;
	}
	if (st == GW_OK && gw_reply_class(rep.code) == 3 && e.stage != GW_STAGE_DATA) {
		gwp_slog_reply(r->env->slog, r->sid, "|<", &rep, since(e.t0));
		st = GW_E_PROTO;
	}
	if (st != GW_OK) {
		pipe_fail(r, st, what[e.stage]);
		return;
	}
	ms = since(e.t0);
	if (e.stage != GW_STAGE_DATA && pool_replay_pipe(r, e.stage, &rep, ms))
		return; /* sent again on a new connection: the next pump reads the replies there */
	if (r->sent.len > 0) {
		const char *nl = memchr(r->sent.data, '\n', r->sent.len);
		gw_buf_consume(&r->sent, nl != NULL ? (size_t)(nl - r->sent.data) + 1 : r->sent.len);
	}
	r->pipe_head = (r->pipe_head + 1) % r->pipe_cap;
	r->pipe_len--;
	switch (e.stage) {
	case GW_STAGE_MAIL:
		r->in_txn = gw_reply_class(rep.code) == 2;
		answer(r, &rep, ms);
		break;
	case GW_STAGE_RCPT:
		r->txn_rcpts++;
		if (gw_reply_class(rep.code) == 2) {
			r->rcpts_ok++;
			atomic_fetch_add(&r->env->stats->rcpts_accepted, 1);
		} else {
			r->rcpts_bad++;
			atomic_fetch_add(&r->env->stats->rcpts_refused, 1);
		}
		answer(r, &rep, ms);
		break;
	default: /* DATA: the engine answers it itself; on_data() takes the reply */
		gwp_slog_reply(r->env->slog, r->sid, "|<", &rep, ms);
		r->ahead_data = rep;
		break;
	}
}

/*
 * Before anything that is not sent ahead: every reply outstanding is read.
 * A DATA sent ahead that the engine did not follow (it refused DATA itself)
 * and that the destination answered 354 is dropped with the connection: no
 * final dot, so the destination drops the transaction; the next MAIL
 * connects again.
 */
static void pipe_settle(gwp_relay *r, int data_follows)
{
	while (r->pipe_len > 0)
		gwp_relay_pump(r);
	if (!r->data_ahead || data_follows)
		return;
	if (r->ahead_data.code == 354 && gw_client_is_open(r->up)) {
		slogf(r, "|>",
		      "(close: DATA was not wanted after all; no final dot, the destination drops the "
		      "transaction)");
		gw_client_close(r->up);
		r->in_txn = 0;
	}
	r->data_ahead = 0;
	r->ahead_data.code = 0;
}

static void on_mail(gwp_relay *r, const gw_srv_event *ev)
{
	gw_reply rep;
	long ms;
	int moved;

	txn_clear(r);
	if (r->pipe_len == 0) { /* nothing sent ahead is owed: nothing to keep for a replay */
		gw_buf_reset(&r->sent);
		r->sent_lost = 0;
	}
	(void)gwp_pool_session_leave(
	    r); /* its address retired since: this transaction goes out from another */
	format_path(ev->path, r->mail_cmd, sizeof(r->mail_cmd));
	if (gwp_tls_in_refuse_mail(r, &rep)) {
		slogf(r, ">|", "MAIL FROM:%s", r->mail_cmd);
		answer(r, &rep, -1);
		return;
	}
	if (gwp_throttle_mail(r, &rep) != 0) { /* the tenant's rate: its own queue keeps the message */
		answer(r, &rep, -1);
		return;
	}
	if (r->mode == GWP_DEST_MX) {
		r->mail_held = 1;
		slogf(r, ">|", "MAIL FROM:%s", r->mail_cmd);
		set_reply(&rep, 250, "2.1.0", "Ok");
		answer(r, &rep, -1);
		return;
	}
	if (r->refusal.code != 0) {
		answer(r, &r->refusal, -1);
		return;
	}
	if (!gw_client_is_open(r->up)) { /* lost after an abort or an RSET that failed: once more */
		gw_status st = up_open(r, &r->hop, &rep);
		if (st == GW_E_REJECTED) {
			answer(r, &rep, -1);
			return;
		}
		if (st != GW_OK) {
			fail(r, st, "connect");
			return;
		}
	}
	if (pipelining(r) && pipe_queue(r, GW_STAGE_MAIL, "MAIL FROM:", r->mail_cmd) <= 0)
		return;
	if (relay_cmd(r, GW_STAGE_MAIL, r->mail_cmd, &rep, &ms) != 0)
		return;
	while ((moved = pool_replay(r, &rep, ms)) == 1) /* a new connection: the MAIL once more */
		if (relay_cmd(r, GW_STAGE_MAIL, r->mail_cmd, &rep, &ms) != 0)
			return;
	if (moved < 0)
		return; /* answered */
	r->in_txn = gw_reply_class(rep.code) == 2;
	answer(r, &rep, ms);
}

/* MX mode, first RCPT of a transaction: the destination for domain, then the held MAIL. 0 ok, -1 answered. */
static int mx_start(gwp_relay *r, const char *domain)
{
	gw_reply rep;
	long ms;

	snprintf(r->txn_domain, sizeof(r->txn_domain), "%s", domain);
	if (!(gw_client_is_open(r->up) && strcasecmp(r->up_domain, domain) == 0 &&
	      !gw_client_peer_closed(r->up))) {
		if (gw_client_is_open(r->up)) {
			slogf(r, "|>", "QUIT");
			gw_client_quit(r->up);
		}
		r->up_domain[0] = '\0';
		if (mx_open(r, domain, &r->txn_fail) != 0) {
			answer(r, &r->txn_fail, -1);
			return -1;
		}
	}
	if (relay_cmd(r, GW_STAGE_MAIL, r->mail_cmd, &rep, &ms) != 0)
		return -1;
	r->mail_held = 0;
	if (gw_reply_class(rep.code) == 5 && gwp_pool_session_answer(r, &rep, ms, &r->txn_fail)) {
		/* the held MAIL's blocklist verdict: 451 to this RCPT and the rest of the transaction */
		(void)gw_srv_reply(r->srv, r->txn_fail.code, r->txn_fail.enh, r->txn_fail.text);
		return -1;
	}
	gwp_slog_reply(r->env->slog, r->sid, "|<", &rep, ms);
	if (gw_reply_class(rep.code) != 2) {
		r->txn_fail =
		    rep; /* the destination refused the sender: that is the answer to its recipients */
		answer(r, &rep, -1);
		return -1;
	}
	r->in_txn = 1;
	return 0;
}

static void on_rcpt(gwp_relay *r, const gw_srv_event *ev)
{
	char arg[sizeof(r->mail_cmd)];
	gw_reply rep;
	long ms;
	int moved;

	format_path(ev->path, arg, sizeof(arg));
	if (r->mode == GWP_DEST_MX) {
		const char *dom = ev->path->mbox.domain;
		if (dom[0] == '\0') {
			set_reply(&rep, 550, "5.1.3", "a recipient without a domain cannot be relayed");
			slogf(r, ">|", "RCPT TO:%s", arg);
			answer(r, &rep, -1);
			return;
		}
		if (r->txn_fail.code != 0) {
			slogf(r, ">|", "RCPT TO:%s", arg);
			answer(r, &r->txn_fail, -1);
			r->rcpts_bad++;
			return;
		}
		if (r->txn_domain[0] != '\0' && strcasecmp(dom, r->txn_domain) != 0) {
			slogf(r, ">|", "RCPT TO:%s", arg);
			set_reply(&rep, 452, "4.5.3",
				  "one destination domain per transaction: send to %s in the next", dom);
			answer(r, &rep, -1);
			r->rcpts_bad++;
			return;
		}
		if (r->txn_domain[0] == '\0' && mx_start(r, dom) != 0) {
			r->rcpts_bad++;
			return;
		}
	}
	if (pipelining(r) && pipe_queue(r, GW_STAGE_RCPT, "RCPT TO:", arg) <= 0)
		return;
	if (relay_cmd(r, GW_STAGE_RCPT, arg, &rep, &ms) != 0)
		return;
	while (r->mode == GWP_DEST_HOP && r->txn_rcpts == 0 && (moved = pool_replay(r, &rep, ms)) != 0) {
		if (moved < 0 || replay_mail(r, &rep) != 0) {
			r->rcpts_bad++; /* answered: 451 4.7.1, the new connection's refusal of MAIL, or 421
					 */
			return;
		}
		if (relay_cmd(r, GW_STAGE_RCPT, arg, &rep, &ms) != 0)
			return;
	}
	r->txn_rcpts++;
	if (gw_reply_class(rep.code) == 2) {
		r->rcpts_ok++;
		atomic_fetch_add(&r->env->stats->rcpts_accepted, 1);
	} else {
		r->rcpts_bad++;
		atomic_fetch_add(&r->env->stats->rcpts_refused, 1);
	}
	answer(r, &rep, ms);
}

static void on_data(gwp_relay *r)
{
	gw_reply rep;
	gw_status st;
	int64_t t0;

	slogf(r, "<-", "354 End data with <CR><LF>.<CR><LF>");
	r->body_status = GW_OK;
	r->data_reply.code = 0;
	if (r->data_ahead) { /* sent with the envelope: its reply is in, or the destination is gone */
		pipe_settle(r, 1);
		r->data_ahead = 0;
		rep = r->ahead_data;
		r->ahead_data.code = 0;
		if (rep.code == 0) {
			r->body_status = GW_E_LOST;
			return;
		}
		goto got_reply;
	}
	slogf(r, "->", "DATA");
	t0 = gw_now_ms();
	st = gw_client_data(r->up, &rep);
	if (st != GW_OK) {
		/* the client's body is read and dropped; the final dot gets 421 */
		r->body_status = st;
		if (st == GW_E_CANCELLED)
			client_hung_up(r, "DATA");
		else
			slogf(r, "|<", "! DATA: %s: %s", gw_status_str(st), gw_client_error(r->up));
		gw_client_close(r->up);
		return;
	}
	gwp_slog_reply(r->env->slog, r->sid, "|<", &rep, since(t0));
got_reply:
	if (rep.code == 354) {
		r->in_body = 1;
		r->bol = 1;
		gw_buf_reset(&r->stuffed);
		return;
	}
	if (gw_reply_class(rep.code) == 3 || gw_reply_class(rep.code) == 2) /* a 250 to DATA: nonsense */
		set_reply(&rep, 451, "4.5.0", "%s answered DATA with %d", r->dest, rep.code);
	r->data_reply = rep;
}

/* Write the body held so far to the destination. */
static void body_write(gwp_relay *r)
{
	gw_status st;

	if (r->stuffed.len == 0 || !r->in_body || r->body_lost)
		return;
	st = gw_client_raw(r->up, GW_STAGE_BODY, r->stuffed.data, r->stuffed.len, NULL, 0, NULL);
	gw_buf_reset(&r->stuffed);
	if (st != GW_OK) {
		r->body_lost = 1;
		r->body_status = st;
		slogf(r, "|<", "! body: %s: %s", gw_status_str(st), gw_client_error(r->up));
	}
}

/*
 * Dot-stuff one chunk of the body (CRLF line ends from the engine) and hold it: it is written when
 * BODY_HOLD bytes are held, when the driver would wait for its client a while (gwp_relay_idle()), or with
 * the final dot; a small message goes out in one write.
 */
static void on_body(gwp_relay *r, const gw_srv_event *ev)
{
	const char *p = ev->data, *end = ev->data + ev->len, *dot;

	r->bytes += ev->len;
	atomic_fetch_add(&r->env->stats->bytes, ev->len);
	if (!r->in_body || r->body_lost || ev->len == 0)
		return;
	if (r->bol && *p == '.' && gw_buf_putc(&r->stuffed, '.') != 0)
		goto local;
	for (dot = p; (dot = memchr(dot, '\n', (size_t)(end - dot))) != NULL && dot + 1 < end; dot++) {
		if (dot[1] != '.')
			continue;
		if (gw_buf_append(&r->stuffed, p, (size_t)(dot + 1 - p)) != 0 ||
		    gw_buf_putc(&r->stuffed, '.') != 0)
			goto local;
		p = dot + 1;
	}
	if (gw_buf_append(&r->stuffed, p, (size_t)(end - p)) != 0)
		goto local;
	r->bol = end[-1] == '\n';
	if (r->stuffed.len >= BODY_HOLD)
		body_write(r);
	return;
local:
	r->body_lost = 1;
	r->body_status = GW_E_LOCAL;
	gw_buf_reset(&r->stuffed);
	gw_client_close(r->up);
}

void gwp_relay_idle(gwp_relay *r)
{
	body_write(r);
}

size_t gwp_relay_held(const gwp_relay *r)
{
	return r->in_body && !r->body_lost ? r->stuffed.len : 0;
}

static void on_data_end(gwp_relay *r, const gw_srv_event *ev)
{
	gw_reply rep;
	gw_status st;
	size_t got = 0;
	int64_t t0;
	char tail[8];
	size_t tl = 0;

	r->messages++;
	if (r->body_status != GW_OK) {
		fail(r, r->body_status, "DATA");
		r->refused++;
		txn_clear(r);
		return;
	}
	if (!r->in_body) { /* DATA refused: the refusal is the answer to the dot */
		answer(r, &r->data_reply, -1);
		r->refused++;
		atomic_fetch_add(&r->env->stats->messages_refused, 1);
		txn_clear(r);
		slogf(r, "|>", "RSET");
		if (gw_client_rset(r->up, &rep) == GW_OK)
			gwp_slog_reply(r->env->slog, r->sid, "|<", &rep, -1);
		return;
	}
	if (!r->bol) {
		tail[tl++] = '\r';
		tail[tl++] = '\n';
	}
	memcpy(tail + tl, ".\r\n", 3);
	tl += 3;
	slogf(r, "->", ". (%llu bytes)", (unsigned long long)ev->size);
	t0 = gw_now_ms();
	if (r->stuffed.len > 0 && gw_buf_append(&r->stuffed, tail, tl) == 0) { /* the held body and the dot */
		st = gw_client_raw(r->up, GW_STAGE_BODY, r->stuffed.data, r->stuffed.len, &rep, 1, &got);
		gw_buf_reset(&r->stuffed);
	} else {
		body_write(r);
		st = r->body_lost ? r->body_status
				  : gw_client_raw(r->up, GW_STAGE_BODY, tail, tl, &rep, 1, &got);
	}
	if (st != GW_OK || got != 1) {
		/* after the dot: the destination may have the message; the client retries (a duplicate beats
		 * a loss) */
		fail(r, st != GW_OK ? st : GW_E_LOST, "end of data");
		r->refused++;
		txn_clear(r);
		return;
	}
	if (gw_reply_class(rep.code) == 3) {
		gwp_slog_reply(r->env->slog, r->sid, "|<", &rep, since(t0));
		fail(r, GW_E_PROTO, "end of data");
		txn_clear(r);
		return;
	}
	if (gw_reply_class(rep.code) == 2) {
		atomic_fetch_add(&r->env->stats->messages, 1);
	} else {
		r->refused++;
		atomic_fetch_add(&r->env->stats->messages_refused, 1);
	}
	answer(r, &rep, since(t0));
	txn_clear(r);
}

static void on_reset(gwp_relay *r, const gw_srv_event *ev)
{
	gw_reply rep;
	int64_t t0;

	if (r->in_body) { /* mid-body (a message over the size limit): only closing stops the destination */
		slogf(r, "|>", "(close: no final dot, the destination drops the message)");
		gw_client_close(r->up);
	} else if (r->in_txn && gw_client_is_open(r->up)) {
		slogf(r, ev->reason == GW_SRV_R_RSET ? "->" : "|>", "RSET");
		t0 = gw_now_ms();
		if (gw_client_rset(r->up, &rep) == GW_OK)
			gwp_slog_reply(r->env->slog, r->sid, "|<", &rep, since(t0));
		else
			gw_client_close(r->up); /* the next MAIL connects again */
	} else if (ev->reason == GW_SRV_R_RSET) {
		slogf(r, ">|", "RSET");
	}
	txn_clear(r);
}

static const char *reason_str(gw_srv_reason why)
{
	switch (why) {
	case GW_SRV_R_QUIT:
		return "quit";
	case GW_SRV_R_ERRORS:
		return "client-errors";
	case GW_SRV_R_SHUTDOWN:
		return "shutdown";
	default:
		return "closed";
	}
}

/* A DATA the client pipelined behind the RCPTs: it goes with them when they go ahead. */
static void on_data_ahead(gwp_relay *r)
{
	if (r->pipe_len == 0 || !pipelining(r) || r->data_ahead)
		return;
	r->ahead_data.code = 0;
	if (pipe_queue(r, GW_STAGE_DATA, "DATA", "") == 0)
		r->data_ahead = 1;
}

void gwp_relay_event(gwp_relay *r, const gw_srv_event *ev)
{
	if (ev->type != GW_SRV_EV_RCPT && ev->type != GW_SRV_EV_DATA_AHEAD && ev->type != GW_SRV_EV_DATA &&
	    ev->type != GW_SRV_EV_BODY && ev->type != GW_SRV_EV_DATA_END)
		pipe_settle(r, 0);
	switch (ev->type) {
	case GW_SRV_EV_DATA_AHEAD:
		on_data_ahead(r);
		break;
	case GW_SRV_EV_HELO:
		snprintf(r->helo, sizeof(r->helo), "%s", ev->helo != NULL ? ev->helo : "");
		slogf(r, ">|", "%s %s", ev->esmtp ? "EHLO" : "HELO", r->helo);
		slogf(r, "<-", "250 %s", r->env->conf->opt.hostname);
		break;
	case GW_SRV_EV_MAIL:
		on_mail(r, ev);
		break;
	case GW_SRV_EV_RCPT:
		on_rcpt(r, ev);
		break;
	case GW_SRV_EV_DATA:
		on_data(r);
		break;
	case GW_SRV_EV_BODY:
		on_body(r, ev);
		break;
	case GW_SRV_EV_DATA_END:
		on_data_end(r, ev);
		break;
	case GW_SRV_EV_RESET:
		on_reset(r, ev);
		break;
	case GW_SRV_EV_STARTTLS: /* session.c hands it to tls_in.c; a driver that cannot ends here */
		gw_srv_shutdown(r->srv, NULL);
		break;
	case GW_SRV_EV_CLOSE:
		if (strcmp(r->outcome, "open") == 0)
			snprintf(r->outcome, sizeof(r->outcome), "%s", reason_str(ev->reason));
		if (ev->reason == GW_SRV_R_QUIT && !r->in_body && gw_client_is_open(r->up)) {
			slogf(r, "->", "QUIT");
			gw_client_quit(r->up);
		} else {
			gwp_relay_client_gone(r, reason_str(ev->reason));
		}
		break;
	default:
		break;
	}
}

void gwp_relay_client_gone(gwp_relay *r, const char *why)
{
	if (strcmp(r->outcome, "open") == 0)
		snprintf(r->outcome, sizeof(r->outcome), "%s", why);
	if (!gw_client_is_open(r->up))
		return;
	if (r->pipe_len > 0 || (r->data_ahead && r->ahead_data.code == 354)) {
		/* replies still due: a QUIT's reply could not be told from theirs */
		slogf(r, "|>",
		      "(close: commands sent ahead unanswered, the destination drops the transaction)");
		gw_client_close(r->up);
		pipe_clear(r);
		r->data_ahead = 0;
	} else if (r->in_body) {
		slogf(r, "|>", "(close in DATA: no final dot, the destination drops the message)");
		gw_client_close(r->up);
	} else {
		slogf(r, "|>", "QUIT");
		gw_client_quit(r->up);
	}
	txn_clear(r);
}

void gwp_relay_finish(gwp_relay *r)
{
	char helo[GW_DOMAIN_MAX * 4 + 8], v[6][GW_DOMAIN_MAX * 4 + 16];
	const char *peer = r->up != NULL && gw_client_peer(r->up)[0] ? gw_client_peer(r->up) : "-";
	size_t i;

	gwp_relay_client_gone(r, "closed");
	gwp_throttle_dest_give(r);
	gw_log_sanitize(helo, sizeof(helo), r->helo, strlen(r->helo), 100);
	for (i = 0; r->outcome[i] != '\0'; i++) /* "upstream-connection lost": one token */
		if (r->outcome[i] == ' ')
			r->outcome[i] = '-';
	gwp_slog_summary(
	    r->env->slog, r->sid,
	    "client=%s tenant=%s helo=%s dest=%s peer=%s outcome=%s messages=%lu refused=%lu "
	    "rcpts=%lu/%lu bytes=%llu tls_out=\"%s\" tls_in=\"%s\" duration=%ldms",
	    gwp_slog_value(v[0], sizeof(v[0]), r->client), gwp_slog_value(v[1], sizeof(v[1]), r->tenant),
	    gwp_slog_value(v[2], sizeof(v[2]), helo[0] ? helo : "-"),
	    gwp_slog_value(v[3], sizeof(v[3]), r->dest), gwp_slog_value(v[4], sizeof(v[4]), peer),
	    gwp_slog_value(v[5], sizeof(v[5]), r->outcome), r->messages, r->refused, r->rcpts_ok,
	    r->rcpts_ok + r->rcpts_bad, (unsigned long long)r->bytes, r->tls_out[0] ? r->tls_out : "none",
	    r->tls_in[0] ? r->tls_in : "none", since(r->started));
	gw_client_free(&r->up);
	gw_srv_free(&r->srv);
	free(r->terms_mem);
	r->terms = r->terms_mem = NULL;
	gw_buf_free(&r->stuffed);
	gw_buf_free(&r->batch);
	gw_buf_free(&r->sent);
	free(r->pipe);
	r->pipe = NULL;
}
