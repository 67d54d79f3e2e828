/*
 * callbacks.c - the libmilter callbacks of gw-milter (see callbacks.h).
 *
 * Per connection: a gwm_conn holding a snapshot reference (taken at
 * connect, dropped at close), the client address, and the message's
 * call-ahead transaction, begun at the first RCPT that needs a probe and
 * ended at end of message, abort, the next MAIL or close. Every libmilter
 * call goes through smfi_seam.h. The decision is computed into a gwm_dec,
 * then logged and sent, so each RCPT leaves exactly one log line.
 *
 * Steps negotiated: connect, MAIL, RCPT, DATA (registered so Postfix waits
 * for our reply instead of streaming the DATA macros into a delayed ACK),
 * end of message and abort; HELO, headers, body and unknown commands are
 * switched off. No reply is waived (SMFIP_NR_*): each would put a small
 * unacknowledged write in front of the next one.
 *
 * Does not defend against: a client whose address the MTA does not pass
 * (it is counted as "unknown" for the unknown-recipient limit).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "callbacks.h"
#include "conf.h"
#include "reply.h"
#include "smfi_seam.h"
#include "unknown_limit.h"
#include "gw/addr.h"
#include "gw/callahead.h"
#include "gw/log.h"

typedef struct gwm_conn {
	gwm_snapshot *snap;
	char client[GWM_UL_KEY_MAX];
	int skip_client;
	int authenticated;   /* this message */
	unsigned path_flags; /* GW_PATH_SMTPUTF8 when MAIL said SMTPUTF8 */
	gw_ca_txn *txn;
} gwm_conn;

/* What one RCPT came to: the reply and the fields of its log line. */
typedef struct gwm_dec {
	gwm_reply reply;
	const char *source;
	char rcpt[GW_PATH_MAX + 1];
	char route[GW_HOST_MAX + 16];
	int code;
} gwm_dec;

static gwm_ul *unknown;
static atomic_uint_fast64_t n_rcpts, n_skips, n_bad, n_limited, n_fail_open, n_local_errors, n_open;

int gwm_callbacks_init(const gw_clock *clock)
{
	if (unknown == NULL && (unknown = gwm_ul_new(GWM_UL_CLIENTS, clock)) == NULL)
		return -1;
	return 0;
}

void gwm_callbacks_deinit(void)
{
	gwm_ul_free(&unknown);
}

uint64_t gwm_callbacks_open(void)
{
	return atomic_load(&n_open);
}

void gwm_callbacks_stats(gwm_cb_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->rcpts = atomic_load(&n_rcpts);
	s->skips = atomic_load(&n_skips);
	s->bad_input = atomic_load(&n_bad);
	s->unknown_limited = atomic_load(&n_limited);
	s->fail_open = atomic_load(&n_fail_open);
	s->local_errors = atomic_load(&n_local_errors);
	s->connections = atomic_load(&n_open);
	s->ul_clients = unknown != NULL ? gwm_ul_clients(unknown) : 0;
}

/* --- connection context ------------------------------------------------------ */

static void client_text(const struct sockaddr *sa, char *buf, size_t size)
{
	snprintf(buf, size, "unknown");
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
			  (socklen_t)size);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) /* one client, one key, however it reached us */
			inet_ntop(AF_INET, a->s6_addr + 12, buf, (socklen_t)size);
		else
			inet_ntop(AF_INET6, a, buf, (socklen_t)size);
	}
}

static gwm_conn *conn_new(SMFICTX *ctx, const struct sockaddr *sa)
{
	gwm_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if ((c->snap = gwm_current_get()) == NULL) {
		free(c);
		return NULL;
	}
	client_text(sa, c->client, sizeof(c->client));
	c->skip_client = gwm_config_skip_client(c->snap->conf, sa);
	if (gwm_setpriv(ctx, c) != MI_SUCCESS) {
		gwm_snapshot_unref(&c->snap);
		free(c);
		return NULL;
	}
	atomic_fetch_add(&n_open, 1);
	return c;
}

/* The connection's context; made here when the MTA skipped the connect step. */
static gwm_conn *conn_get(SMFICTX *ctx)
{
	gwm_conn *c = gwm_getpriv(ctx);

	return c != NULL ? c : conn_new(ctx, NULL);
}

static void txn_end(gwm_conn *c)
{
	if (c != NULL && c->txn != NULL)
		gw_ca_txn_end(&c->txn);
}

/* --- callbacks ----------------------------------------------------------------- */

static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
			     unsigned long f3, unsigned long *pf0, unsigned long *pf1, unsigned long *pf2,
			     unsigned long *pf3)
{
	const unsigned long off = SMFIP_NOHELO | SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NOBODY | SMFIP_NOUNKNOWN;

	*pf0 = f0 & SMFIF_SETSYMLIST;
	*pf1 = f1 & off;
	*pf2 = *pf3 = 0;
	if (*pf0 & SMFIF_SETSYMLIST) {
		/* Ask for the macros we read, so the MTA's defaults do not matter. */
		(void)gwm_setsymlist(ctx, SMFIM_ENVFROM, "i {auth_authen}");
		(void)gwm_setsymlist(ctx, SMFIM_ENVRCPT, "i {rcpt_addr} {rcpt_host} {rcpt_mailer}");
	}
	return SMFIS_CONTINUE;
}

static sfsistat cb_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	/* Without a context nothing could be checked: refuse for now rather than pass unchecked. */
	return conn_new(ctx, hostaddr) != NULL ? SMFIS_CONTINUE : SMFIS_TEMPFAIL;
}

static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
	gwm_conn *c = conn_get(ctx);
	const char *auth;
	size_t i;

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	txn_end(c); /* a message that ended without eom or abort */
	auth = gwm_getsymval(ctx, "{auth_authen}");
	c->authenticated = c->snap->conf->opt.skip_authenticated && auth != NULL && *auth != '\0';
	c->path_flags = 0;
	for (i = 1; argv != NULL && argv[0] != NULL && argv[i] != NULL; i++)
		if (strcasecmp(argv[i], "SMTPUTF8") == 0)
			c->path_flags |= GW_PATH_SMTPUTF8;
	return SMFIS_CONTINUE;
}

static void skip(gwm_dec *d, const char *why)
{
	gwm_reply_skip(&d->reply);
	d->source = why;
	atomic_fetch_add(&n_skips, 1);
}

/* A one-hop route to Sendmail's {rcpt_host}; 0 ok. */
static int rcpt_host_route(const gwm_config *conf, const char *host, const char *domain, gw_route *r)
{
	const char *why = NULL;
	char err[512];

	memset(r, 0, sizeof(*r));
	if (gw_nexthop_parse(host, strlen(host), &r->hops[0], &why) != 0)
		return -1;
	snprintf(r->key, sizeof(r->key), "%s", domain);
	snprintf(r->transport, sizeof(r->transport), "smtp");
	snprintf(r->nexthop_text, sizeof(r->nexthop_text), "%s", host);
	r->has_proto = 1;
	r->proto = GW_PROTO_SMTP;
	r->nhops = 1;
	if (gwm_config_check_route(conf, r, err, sizeof(err)) != 0) {
		gw_log(GW_LOG_WARNING, "route", "rcpt_host=%s refused: it is this gateway (mail loop)",
		       r->key);
		return -1;
	}
	return 0;
}

/* Parse the recipient as the client wrote it; 0 ok, -1 with *why. */
static int parse_rcpt(const gwm_conn *c, const char *raw, gw_path *p, const char **why)
{
	unsigned flags = GW_PATH_PARAMS | GW_PATH_POSTMASTER | c->path_flags;

	/* Sendmail may hand the address without angle brackets. */
	if (raw[0] != '<')
		flags |= GW_PATH_BARE;
	return gw_path_parse(raw, strlen(raw), flags, p, why);
}

static void decide(SMFICTX *ctx, gwm_conn *c, const char *raw, gwm_dec *d)
{
	const gwm_config *conf = c->snap->conf;
	const char *mailer, *host, *why = NULL;
	const gw_route *route;
	gw_route tmp;
	gw_path path;
	gw_ca_result res;
	gwm_reply_opts ro;

	if (c->skip_client) {
		skip(d, "skip-network");
		return;
	}
	if (c->authenticated) {
		skip(d, "skip-auth");
		return;
	}
	mailer = gwm_getsymval(ctx, "{rcpt_mailer}");
	if (mailer != NULL && strcasecmp(mailer, "error") == 0) {
		skip(d, "skip-error"); /* the MTA rejected it already */
		return;
	}
	if (gwm_config_local_mailer(conf, mailer)) {
		skip(d, "skip-local");
		return;
	}
	if (parse_rcpt(c, raw, &path, &why) != 0) {
		gwm_reply_bad_input(why, &d->reply);
		d->source = "bad-input";
		atomic_fetch_add(&n_bad, 1);
		return;
	}
	gw_mailbox_format(&path.mbox, d->rcpt, sizeof(d->rcpt));
	if (path.mbox.domain[0] == '\0') {
		skip(d, "skip-postmaster");
		return;
	}
	if (gwm_config_skip_rcpt(conf, path.mbox.local, path.mbox.domain)) {
		skip(d, "skip-recipient");
		return;
	}
	route = gw_routes_lookup(conf->routes, path.mbox.domain);
	if (route == NULL && conf->opt.use_rcpt_host && (host = gwm_getsymval(ctx, "{rcpt_host}")) != NULL &&
	    *host != '\0' && rcpt_host_route(conf, host, path.mbox.domain, &tmp) == 0)
		route = &tmp;
	if (route == NULL) {
		skip(d, "noroute");
		return;
	}
	if (!route->has_proto) {
		skip(d, "skip-transport"); /* error:, discard:, local: ... deliver nowhere to ask */
		return;
	}
	if (gwm_ul_over(unknown, c->client, (unsigned)conf->opt.unknown_limit, conf->opt.unknown_window)) {
		gwm_reply_unknown_limit(&d->reply);
		d->source = "unknown-limit";
		atomic_fetch_add(&n_limited, 1);
		return;
	}
	if (c->txn == NULL && (c->txn = gw_ca_txn_begin(c->snap->ca)) == NULL) {
		gwm_reply_local_error(d->rcpt, &d->reply);
		d->source = "local-error";
		atomic_fetch_add(&n_local_errors, 1);
		return;
	}
	gw_ca_check(c->txn, route, d->rcpt, &res);
	if (res.verdict == GW_VERDICT_REJECT)
		gwm_ul_add(unknown, c->client, conf->opt.unknown_window);
	ro.reveal_internal = conf->opt.reveal_internal;
	ro.fail_open = conf->opt.fail_open;
	gwm_reply_for_result(&ro, d->rcpt, &res, &d->reply);
	if (strcmp(d->reply.verdict, "fail-open") == 0)
		atomic_fetch_add(&n_fail_open, 1);
	d->source = gw_ca_source_str(res.source);
	d->code = res.code;
	snprintf(d->route, sizeof(d->route), "%s", res.hop[0] != '\0' ? res.hop : route->key);
}

static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
	gwm_conn *c = conn_get(ctx);
	gwm_dec d;
	const char *raw = argv != NULL ? argv[0] : NULL;
	const char *queue = gwm_getsymval(ctx, "i");
	char q[64], rcpt[GW_LOG_PEER_MAX * 4 + 8], route[GW_HOST_MAX * 2];
	int64_t t0 = gw_now_ms();

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	atomic_fetch_add(&n_rcpts, 1);
	memset(&d, 0, sizeof(d));
	snprintf(d.route, sizeof(d.route), "-");
	if (raw == NULL)
		raw = gwm_getsymval(ctx, "{rcpt_addr}");
	if (raw == NULL)
		raw = "";
	decide(ctx, c, raw, &d);
	/* The queue id is empty at the first RCPT under Postfix. */
	if (queue == NULL || *queue == '\0')
		queue = "-";
	gw_log_sanitize(q, sizeof(q), queue, strlen(queue), 32);
	if (d.rcpt[0] != '\0') {
		gw_log_sanitize(rcpt, sizeof(rcpt), d.rcpt, strlen(d.rcpt), GW_LOG_PEER_MAX);
	} else {
		/* Not parsed (skipped first, or bad): as written, without its angle brackets. */
		size_t rl = strlen(raw);
		int br = rl >= 2 && raw[0] == '<' && raw[rl - 1] == '>';
		gw_log_sanitize(rcpt, sizeof(rcpt), raw + br, rl - 2 * (size_t)br, GW_LOG_PEER_MAX);
	}
	gw_log_sanitize(route, sizeof(route), d.route, strlen(d.route), GW_HOST_MAX);
	gw_log(GW_LOG_INFO, "rcpt",
	       "queue=%s client=%s rcpt=%s route=%s verdict=%s source=%s code=%d reply=%s ms=%lld", q,
	       c->client, rcpt, route, d.reply.verdict, d.source, d.code,
	       d.reply.rcode[0] != '\0' ? d.reply.rcode : "-", (long long)(gw_now_ms() - t0));
	if (d.reply.rcode[0] != '\0')
		gw_log(GW_LOG_DEBUG, "rcpt_reply", "queue=%s rcpt=%s reply=\"%s %s %s\"", q, rcpt,
		       d.reply.rcode, d.reply.xcode, d.reply.text);
	return gwm_reply_send(ctx, &d.reply);
}

/*
 * Registered so that Postfix waits for our reply (no delayed-ACK stall), and
 * the place where the recipients are all known: the probe sessions go back to
 * their pools now instead of being held while the body is transferred.
 */
static sfsistat cb_data(SMFICTX *ctx)
{
	txn_end(gwm_getpriv(ctx));
	return SMFIS_CONTINUE;
}

static sfsistat cb_eom(SMFICTX *ctx)
{
	txn_end(gwm_getpriv(ctx));
	return SMFIS_CONTINUE;
}

static sfsistat cb_abort(SMFICTX *ctx)
{
	txn_end(gwm_getpriv(ctx));
	return SMFIS_CONTINUE;
}

static sfsistat cb_close(SMFICTX *ctx)
{
	gwm_conn *c = gwm_getpriv(ctx);

	if (c == NULL)
		return SMFIS_CONTINUE;
	txn_end(c);
	gwm_snapshot_unref(&c->snap);
	free(c);
	(void)gwm_setpriv(ctx, NULL);
	atomic_fetch_sub(&n_open, 1);
	return SMFIS_CONTINUE;
}

void gwm_callbacks_desc(struct smfiDesc *d)
{
	static char name[] = "gw-milter";

	memset(d, 0, sizeof(*d));
	d->xxfi_name = name;
	d->xxfi_version = SMFI_VERSION;
	d->xxfi_flags = 0; /* we never modify a message */
	d->xxfi_connect = cb_connect;
	d->xxfi_envfrom = cb_envfrom;
	d->xxfi_envrcpt = cb_envrcpt;
	d->xxfi_data = cb_data;
	d->xxfi_eom = cb_eom;
	d->xxfi_abort = cb_abort;
	d->xxfi_close = cb_close;
	d->xxfi_negotiate = cb_negotiate;
}
