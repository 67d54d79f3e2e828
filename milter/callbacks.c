/*
 * callbacks.c - the libmilter callbacks of gw-milter (see callbacks.h).
 *
 * Per connection: a gwm_conn holding a snapshot reference (taken at
 * connect, dropped at close), the client address, and the message's
 * call-ahead transaction, begun at the first RCPT that needs a probe and
 * ended at DATA (every recipient is known), abort, the next MAIL or close. Every libmilter
 * call goes through smfi_seam.h, every macro through its guarded accessor
 * gwm_macro (read once per callback, bounded). The decision is computed into a gwm_dec,
 * then logged and sent, so each RCPT leaves exactly one log line.
 *
 * PRVS (prvs_filter.h decides; this file gathers and acts): MAIL notes the
 * sender, its ESMTP parameters and whether it is a bounce; RCPT verifies,
 * and a validly tagged recipient is probed as its plain address and
 * remembered; end of message replaces each remembered recipient
 * (smfi_addrcpt of the plain form, smfi_delrcpt of the form the MTA gave)
 * and signs the sender with smfi_chgfrom. The day is time(NULL) / 86400,
 * read here: the library never reads the clock. The modification actions
 * are requested only when the current configuration has PRVS on.
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
#include <time.h>

#include "callbacks.h"
#include "conf.h"
#include "dir_check.h"
#include "flood.h"
#include "idle.h"
#include "macros.h"
#include "reply.h"
#include "prvs_filter.h"
#include "smfi_seam.h"
#include "unknown_limit.h"
#include "gw/addr.h"
#include "gw/callahead.h"
#include "gw/log.h"

/* Recipients of one message a tag is stripped from, at most. */
#define GWM_PRVS_STRIPS_MAX 1000
/* ESMTP parameters of MAIL FROM kept for smfi_chgfrom, at most (bytes). */
#define GWM_PRVS_ARGS_MAX 1024

/* A recipient accepted in its tagged form, to be replaced at end of message. */
typedef struct gwm_strip {
	char tagged[GW_PATH_MAX + 1];     /* as the MTA gave it at RCPT */
	char plain[GW_PRVS_ADDR_MAX + 3]; /* "<local@domain>" */
} gwm_strip;

typedef struct gwm_conn {
	gwm_idle idle; /* milter_timeout watch */
	gwm_snapshot *snap;
	char client[GWM_UL_KEY_MAX];
	int skip_client;
	int authenticated;   /* this message */
	unsigned path_flags; /* GW_PATH_SMTPUTF8 when MAIL said SMTPUTF8 */
	gw_ca_txn *txn;
	/* PRVS: the connection */
	int prvs_internal; /* client in prvs_internal_networks */
	/* PRVS: this message */
	int prvs_auth;                     /* {auth_authen} set (whatever skip_authenticated says) */
	int prvs_bounce;                   /* the sender is a bounce (gwm_prvs_bounce) */
	int prvs_from_ok;                  /* MAIL FROM parsed: prvs_from and prvs_args hold it */
	char prvs_from[GW_PATH_MAX + 1];   /* "local@domain", "" for <> */
	char prvs_args[GWM_PRVS_ARGS_MAX]; /* its ESMTP parameters, space separated */
	gwm_strip *strips;
	size_t nstrips;
	/* bounce-flood guard */
	char netkey[GWM_NETKEY_MAX]; /* the client's network, "" when the guard is off */
	int flood_bounce;            /* this message has the null sender */
	int flood_out;               /* the client sends outbound mail (internal, skipped or authenticated) */
	char (*flood_domains)[GW_DOMAIN_MAX + 1]; /* recipient domains of outbound mail, to learn at eom */
	size_t nflood_domains;
} gwm_conn;

/* What one RCPT came to: the reply and the fields of its log line. */
typedef struct gwm_dec {
	gwm_reply reply;
	const char *source;
	char rcpt[GW_PATH_MAX + 1];
	char route[GW_HOST_MAX + 16];
	int code;
	char dir[32];      /* "answer/source" when the directory was asked, else "-" */
	char dir_why[160]; /* the directory's reason, for the debug line */
} gwm_dec;

static gwm_ul *unknown;
static atomic_uint_fast64_t n_rcpts, n_skips, n_bad, n_limited, n_fail_open, n_local_errors, n_open;
/* Prometheus' usual latency buckets, from 100 us: a cache hit is tens of microseconds, a probe
 * over a pooled session about a millisecond, a new probe session or a slow MTA up to seconds. */
const uint32_t gwm_rcpt_le_us[GWM_RCPT_BUCKETS] = {100,     250,     500,     1000,    2500,   5000,
						   10000,   25000,   50000,   100000,  250000, 500000,
						   1000000, 2500000, 5000000, 10000000};
static atomic_uint_fast64_t rcpt_time[GWM_RCPT_BUCKETS + 1], rcpt_time_us_sum;

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
	for (size_t i = 0; i <= GWM_RCPT_BUCKETS; i++)
		s->rcpt_time[i] = atomic_load(&rcpt_time[i]);
	s->rcpt_time_us_sum = atomic_load(&rcpt_time_us_sum);
}

/* Microseconds on CLOCK_MONOTONIC: the log's ms= is too coarse for a cache hit. */
static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void rcpt_time_add(int64_t us)
{
	size_t i = 0;

	if (us < 0)
		us = 0;
	while (i < GWM_RCPT_BUCKETS && (uint64_t)us > gwm_rcpt_le_us[i])
		i++;
	atomic_fetch_add(&rcpt_time[i], 1);
	atomic_fetch_add(&rcpt_time_us_sum, (uint64_t)us);
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
	c->prvs_internal = gwm_config_prvs_internal(c->snap->conf, sa);
	gwm_flood_netkey(c->snap->conf, sa, c->netkey, sizeof(c->netkey));
	if (gwm_setpriv(ctx, c) != MI_SUCCESS) {
		gwm_snapshot_unref(&c->snap);
		free(c);
		return NULL;
	}
	(void)gwm_idle_add(&c->idle, ctx); /* not watched: left to libmilter's own timeout */
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

/* --- PRVS ---------------------------------------------------------------------- */

static long prvs_today(void)
{
	return (long)(time(NULL) / 86400);
}

/* Forget the message's PRVS state (next MAIL, end of message, abort, close). */
static void prvs_reset(gwm_conn *c)
{
	if (c == NULL)
		return;
	free(c->strips);
	c->strips = NULL;
	c->nstrips = 0;
	c->prvs_from_ok = c->prvs_bounce = c->prvs_auth = 0;
	c->prvs_from[0] = c->prvs_args[0] = '\0';
}

/* s for a key=value log field: sanitised, blanks turned into '-'. */
static const char *log_word(const char *s, char *buf, size_t size)
{
	char *p;

	gw_log_sanitize(buf, size, s, strlen(s), GW_LOG_PEER_MAX);
	for (p = buf; *p != '\0'; p++)
		if (*p == ' ')
			*p = '-';
	return buf;
}

/* MAIL: note the sender, whether it is a bounce, and its ESMTP parameters. */
static void prvs_mail(gwm_conn *c, char **argv, const char *auth)
{
	const gwm_prvs_conf *pc = &c->snap->conf->prvs;
	unsigned flags = GW_PATH_REVERSE | c->path_flags;
	const char *why = NULL;
	gw_path p;
	size_t i, o = 0;

	prvs_reset(c);
	c->prvs_auth = auth != NULL && *auth != '\0';
	if (!gwm_prvs_on(pc) || argv == NULL || argv[0] == NULL)
		return;
	if (argv[0][0] != '<')
		flags |= GW_PATH_BARE;
	if (gw_path_parse(argv[0], strlen(argv[0]), flags, &p, &why) != 0)
		return; /* the MTA accepted what we cannot parse: neither signed nor treated as a bounce */
	gw_mailbox_format(&p.mbox, c->prvs_from, sizeof(c->prvs_from));
	c->prvs_bounce = gwm_prvs_bounce(pc, c->prvs_from);
	for (i = 1; argv[i] != NULL; i++) {
		size_t l = strlen(argv[i]);
		if (o + l + 2 > sizeof(c->prvs_args)) {
			o = 0; /* too long to keep whole: keep none rather than a part */
			break;
		}
		if (o > 0)
			c->prvs_args[o++] = ' ';
		memcpy(c->prvs_args + o, argv[i], l);
		o += l;
	}
	c->prvs_args[o] = '\0';
	c->prvs_from_ok = 1;
}

/* RCPT: the PRVS decision on raw; rcpt gets "local@domain" when it parsed. */
static void prvs_rcpt(const gwm_conn *c, const char *raw, gwm_prvs_rcpt_dec *pd, char *rcpt, size_t size)
{
	const gwm_prvs_conf *pc = &c->snap->conf->prvs;
	unsigned flags = GW_PATH_PARAMS | GW_PATH_POSTMASTER | c->path_flags;
	const char *why = NULL;
	gw_path p;

	memset(pd, 0, sizeof(*pd));
	pd->action = GWM_PRVS_NONE;
	pd->result = GW_PRVS_NOT_TAGGED;
	rcpt[0] = '\0';
	if (raw[0] != '<')
		flags |= GW_PATH_BARE;
	/* A recipient that does not parse is left to decide(), which answers 501. */
	if (!gwm_prvs_on(pc) || gw_path_parse(raw, strlen(raw), flags, &p, &why) != 0 ||
	    p.mbox.domain[0] == '\0')
		return;
	gw_mailbox_format(&p.mbox, rcpt, size);
	gwm_prvs_rcpt(pc, prvs_today(), c->prvs_bounce, c->prvs_internal || c->prvs_auth, rcpt, pd);
}

/* Remember a recipient accepted in tagged form. 0 ok, -1 (no memory, too many). */
static int prvs_remember(gwm_conn *c, const char *raw, const char *plain)
{
	gwm_strip *ns;

	if (c->nstrips >= GWM_PRVS_STRIPS_MAX || strlen(raw) >= sizeof(ns->tagged))
		return -1;
	if ((ns = realloc(c->strips, (c->nstrips + 1) * sizeof(*ns))) == NULL)
		return -1;
	c->strips = ns;
	snprintf(ns[c->nstrips].tagged, sizeof(ns->tagged), "%s", raw);
	snprintf(ns[c->nstrips].plain, sizeof(ns->plain), "<%s>", plain);
	c->nstrips++;
	return 0;
}

/* End of message: replace tagged recipients, then sign the sender. */
static sfsistat prvs_eom(SMFICTX *ctx, gwm_conn *c)
{
	const gwm_prvs_conf *pc = &c->snap->conf->prvs;
	gwm_macros m;
	const char *queue, *v, *args;
	char q[64], from[GW_LOG_PEER_MAX * 4 + 8], to[GW_LOG_PEER_MAX * 4 + 8], why[64],
	    mail[GW_PRVS_ADDR_MAX + 3];
	gwm_prvs_sign_dec sd;
	size_t i;

	gwm_macros_init(&m, ctx);
	queue = gwm_macro(&m, GWM_MACRO_I);
	if (queue == NULL || *queue == '\0')
		queue = "-";
	gw_log_sanitize(q, sizeof(q), queue, strlen(queue), 32);
	for (i = 0; i < c->nstrips; i++) {
		/* Add first: if that fails nothing has changed yet. */
		if (gwm_addrcpt(ctx, c->strips[i].plain) != MI_SUCCESS ||
		    gwm_delrcpt(ctx, c->strips[i].tagged) != MI_SUCCESS) {
			gw_log(
			    GW_LOG_ERR, "prvs",
			    "queue=%s client=%s step=strip action=tempfail why=smfi_addrcpt/delrcpt-failed "
			    "hint=\"does the MTA offer SMFIF_ADDRCPT and SMFIF_DELRCPT?\"",
			    q, c->client);
			(void)gwm_setreply(ctx, "451", "4.3.0",
					   "Cannot rewrite a tagged recipient, try again later");
			return SMFIS_TEMPFAIL;
		}
	}
	if (!c->prvs_from_ok)
		return SMFIS_CONTINUE;
	gwm_prvs_sign(pc, prvs_today(), c->prvs_internal, c->prvs_auth, c->prvs_from, &sd);
	if (sd.sign) {
		/* Postfix keeps the original parameters itself and warns when given any (cleanup_chg_from).
		 */
		v = gwm_macro(&m, GWM_MACRO_V);
		args = (v != NULL && strncasecmp(v, "Postfix", 7) == 0) || c->prvs_args[0] == '\0'
			   ? NULL
			   : c->prvs_args;
		snprintf(mail, sizeof(mail), "<%s>", sd.addr);
		if (gwm_chgfrom(ctx, mail, args) != MI_SUCCESS) {
			gw_log(GW_LOG_ERR, "prvs",
			       "queue=%s client=%s step=sign action=tempfail why=smfi_chgfrom-failed "
			       "hint=\"does the MTA offer SMFIF_CHGFROM? Postfix 2.6+, Sendmail 8.14+\"",
			       q, c->client);
			/* Sent unsigned, its bounces would be refused as forged: try later instead. */
			(void)gwm_setreply(ctx, "451", "4.3.0",
					   "Cannot sign the envelope sender, try again later");
			return SMFIS_TEMPFAIL;
		}
	}
	if (sd.log) {
		gw_log_sanitize(from, sizeof(from), c->prvs_from, strlen(c->prvs_from), GW_LOG_PEER_MAX);
		gw_log_sanitize(to, sizeof(to), sd.addr, strlen(sd.addr), GW_LOG_PEER_MAX);
		gw_log(GW_LOG_INFO, "prvs", "queue=%s client=%s step=sign from=%s action=%s why=%s to=%s", q,
		       c->client, from[0] != '\0' ? from : "<>", sd.sign ? "sign" : "none",
		       log_word(sd.why, why, sizeof(why)), to[0] != '\0' ? to : "-");
	}
	return SMFIS_CONTINUE;
}

/* --- bounce-flood guard (flood.h decides; this file gathers and acts) ------------- */

static int parse_rcpt(const gwm_conn *c, const char *raw, gw_path *p, const char **why);

static void flood_reset(gwm_conn *c)
{
	if (c == NULL)
		return;
	free(c->flood_domains);
	c->flood_domains = NULL;
	c->nflood_domains = 0;
	c->flood_bounce = 0;
}

/* MAIL: 1 when the guard defers it (the reply is set). */
static int flood_mail(SMFICTX *ctx, gwm_conn *c, char **argv, const char *auth)
{
	unsigned flags = GW_PATH_REVERSE | c->path_flags;
	const char *why = NULL, *raw = argv != NULL && argv[0] != NULL ? argv[0] : "";
	char domain[GW_DOMAIN_MAX + 1] = "";
	gw_path p;

	flood_reset(c);
	c->flood_out = c->skip_client || c->prvs_internal || (auth != NULL && *auth != '\0');
	if (raw[0] != '<')
		flags |= GW_PATH_BARE;
	if (gw_path_parse(raw, strlen(raw), flags, &p, &why) == 0) {
		c->flood_bounce = p.mbox.null;
		snprintf(domain, sizeof(domain), "%s", p.mbox.domain); /* already lower case */
	} else {
		c->flood_bounce = strcmp(raw, "<>") == 0;
	}
	if (!gwm_flood_mail(c->snap->conf, c->netkey, c->flood_out, c->flood_bounce, domain))
		return 0;
	if (gwm_flood_defer_log()) /* else counted into a summary line: a flood is thousands a second */
		gw_log(GW_LOG_INFO, "flood",
		       "client=%s network=%s action=defer stage=mail bounce=%s reply=451-4.7.1", c->client,
		       c->netkey, c->flood_bounce ? "yes" : "no");
	(void)gwm_setreply(ctx, "451", "4.7.1", "Service busy for mail from your network, try again later");
	return 1;
}

/* RCPT of outbound mail that goes on: remember its domain (bounded) to learn at eom. */
static void flood_rcpt(gwm_conn *c, const char *raw, const gwm_dec *d)
{
	gw_path p;
	const char *why = NULL;
	char dom[GW_DOMAIN_MAX + 1];
	size_t i;

	if (!c->flood_out || c->netkey[0] == '\0' || d->reply.action != SMFIS_CONTINUE ||
	    c->nflood_domains >= GWM_FLOOD_DOMAINS_MAX || parse_rcpt(c, raw, &p, &why) != 0 ||
	    p.mbox.domain[0] == '\0')
		return;
	snprintf(dom, sizeof(dom), "%s", p.mbox.domain);
	for (i = 0; i < c->nflood_domains; i++)
		if (strcmp(c->flood_domains[i], dom) == 0)
			return;
	if (c->flood_domains == NULL &&
	    (c->flood_domains = calloc(GWM_FLOOD_DOMAINS_MAX, sizeof(*c->flood_domains))) == NULL)
		return; /* not learnt: nothing else depends on it */
	snprintf(c->flood_domains[c->nflood_domains++], sizeof(c->flood_domains[0]), "%s", dom);
}

/* End of message: learn the client's network (inbound) or the domains it sent to; never from a bounce. */
static void flood_eom(gwm_conn *c)
{
	size_t i;

	if (c->netkey[0] == '\0')
		return;
	if (c->flood_bounce)
		return; /* a bounce is no correspondence, either way (our own DSNs go to forged senders too)
			 */
	if (!c->flood_out)
		gwm_flood_learn(c->netkey, NULL);
	for (i = 0; i < c->nflood_domains; i++)
		gwm_flood_learn(NULL, c->flood_domains[i]);
}

/* --- callbacks ----------------------------------------------------------------- */

static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
			     unsigned long f3, unsigned long *pf0, unsigned long *pf1, unsigned long *pf2,
			     unsigned long *pf3)
{
	const unsigned long off = SMFIP_NOHELO | SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NOBODY | SMFIP_NOUNKNOWN;
	gwm_snapshot *snap = gwm_current_get();
	unsigned long acts = SMFIF_SETSYMLIST;

	/* Ask to modify the envelope only when PRVS is on (signing and stripping need it). */
	if (snap != NULL && gwm_prvs_on(&snap->conf->prvs))
		acts |= SMFIF_CHGFROM | SMFIF_ADDRCPT | SMFIF_DELRCPT;
	gwm_snapshot_unref(&snap);
	*pf0 = f0 & acts;
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
	gwm_macros m;
	const char *auth;
	size_t i;

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	txn_end(c); /* a message that ended without eom or abort */
	gwm_macros_init(&m, ctx);
	auth = gwm_macro(&m, GWM_MACRO_AUTH_AUTHEN);
	c->authenticated = c->snap->conf->opt.skip_authenticated && auth != NULL && *auth != '\0';
	c->path_flags = 0;
	for (i = 1; argv != NULL && argv[0] != NULL && argv[i] != NULL; i++)
		if (strcasecmp(argv[i], "SMTPUTF8") == 0)
			c->path_flags |= GW_PATH_SMTPUTF8;
	prvs_mail(c, argv, auth);
	if (flood_mail(ctx, c, argv, auth))
		return SMFIS_TEMPFAIL;
	return SMFIS_CONTINUE;
}

static void skip(gwm_dec *d, const char *why)
{
	gwm_reply_skip(&d->reply);
	d->source = why;
	atomic_fetch_add(&n_skips, 1);
}

/*
 * A one-hop route to Sendmail's {rcpt_host}: 0 ok; -1 unusable (not a next
 * hop: the domain has no route); 1 a mail loop (one of self_addresses).
 */
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
		/* err speaks of the route file; this route came from Sendmail's macro. */
		gw_log(GW_LOG_WARNING, "route",
		       "domain=%s rcpt_host=%s refused=\"one of self_addresses: mail loop\"", r->key,
		       r->nexthop_text);
		return 1;
	}
	return 0;
}

/*
 * 451 4.4.6 (routing loop): Sendmail would deliver the recipient back to this
 * gateway. Temporary, as for any configuration error: accepting would queue
 * mail that loops, a 5xx would bounce mail the operator can still fix.
 */
static void loop_reply(const char *rcpt, gwm_reply *r)
{
	char raw[GWM_REPLY_TEXT_MAX];

	gwm_reply_local_error(rcpt, r); /* 451 and SMFIS_TEMPFAIL; the code and text are ours */
	snprintf(r->xcode, sizeof(r->xcode), "4.4.6");
	snprintf(
	    raw, sizeof(raw),
	    "<%s>: Recipient address verification failed: mail for this domain loops back to this gateway",
	    rcpt);
	gwm_reply_sanitize(r->text, sizeof(r->text), raw, strlen(raw), sizeof(raw));
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

/* The two sources of gwm_check for one RCPT. */
typedef struct check_ctx {
	gwm_conn *c;
	const gw_route *route;
	gw_directory *dir; /* the route's */
} check_ctx;

static gw_dir_answer ck_dir(void *vctx, const char *rcpt, gw_dir_result *res)
{
	check_ctx *x = vctx;

	/* The RCPT's deadline bounds the directory too. */
	return gw_dir_check(x->dir, rcpt, (unsigned)x->c->snap->conf->opt.deadline, res);
}

static gw_verdict ck_ca(void *vctx, const char *rcpt, gw_ca_result *res)
{
	check_ctx *x = vctx;

	return gw_ca_check(x->c->txn, x->route, rcpt, res);
}

static void decide(gwm_macros *m, gwm_conn *c, const char *raw, gwm_dec *d)
{
	const gwm_config *conf = c->snap->conf;
	const char *mailer, *host, *why = NULL;
	const gw_route *route;
	gw_route tmp;
	gw_path path;
	gwm_reply_opts ro;
	int slot;
	gwm_mode mode;
	check_ctx x;
	gwm_checker ck;
	gwm_check_out out;

	if (c->skip_client) {
		skip(d, "skip-network");
		return;
	}
	if (c->authenticated) {
		skip(d, "skip-auth");
		return;
	}
	mailer = gwm_macro(m, GWM_MACRO_RCPT_MAILER);
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
	if (route == NULL && conf->opt.use_rcpt_host && (host = gwm_macro(m, GWM_MACRO_RCPT_HOST)) != NULL &&
	    *host != '\0') {
		int rh = rcpt_host_route(conf, host, path.mbox.domain, &tmp);

		if (rh > 0) { /* a loop: neither probed nor accepted */
			loop_reply(d->rcpt, &d->reply);
			d->source = "loop";
			snprintf(d->route, sizeof(d->route), "%.*s", (int)sizeof(d->route) - 1,
				 tmp.nexthop_text);
			return;
		}
		if (rh == 0)
			route = &tmp;
	}
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
	if ((slot = gwm_flood_slot_take(conf, c->netkey)) < 0) {
		gwm_reply_flood("Too many checks at once from your network, try again later", &d->reply);
		d->source = "flood-slots";
		return;
	}
	x.dir = gwm_snapshot_dir(c->snap, route);
	mode = x.dir != NULL ? gwm_config_mode(conf, route) : GWM_MODE_CALLAHEAD;
	/* A message's probe session is opened only where a call-ahead may follow. */
	if (mode != GWM_MODE_DIRECTORY && c->txn == NULL && (c->txn = gw_ca_txn_begin(c->snap->ca)) == NULL) {
		if (slot > 0)
			gwm_flood_slot_give(c->netkey);
		gwm_reply_local_error(d->rcpt, &d->reply);
		d->source = "local-error";
		atomic_fetch_add(&n_local_errors, 1);
		return;
	}
	ro.reveal_internal = conf->opt.reveal_internal;
	ro.fail_open = conf->opt.fail_open;
	x.c = c;
	x.route = route;
	ck.dir = ck_dir;
	ck.ca = ck_ca;
	ck.ctx = &x;
	gwm_check(mode, &ro, d->rcpt, &ck, &out);
	if (slot > 0)
		gwm_flood_slot_give(c->netkey);
	d->reply = out.reply;
	if (d->reply.action == SMFIS_REJECT) {
		gwm_ul_add(unknown, c->client, conf->opt.unknown_window);
		gwm_flood_event(GWM_FD_UNKNOWN);
	}
	if (strcmp(d->reply.verdict, "fail-open") == 0)
		atomic_fetch_add(&n_fail_open, 1);
	d->source = out.source;
	if (out.dir_asked) {
		snprintf(d->dir, sizeof(d->dir), "%s/%s", gw_dir_answer_str(out.dir.answer),
			 gw_dir_source_str(out.dir.source));
		snprintf(d->dir_why, sizeof(d->dir_why), "%s", out.dir.text);
	}
	d->code = out.ca_asked ? out.ca.code : 0;
	snprintf(d->route, sizeof(d->route), "%s",
		 out.ca_asked && out.ca.hop[0] != '\0' ? out.ca.hop : route->key);
}

static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
	gwm_conn *c = conn_get(ctx);
	gwm_dec d;
	gwm_prvs_rcpt_dec pd;
	const char *raw = argv != NULL ? argv[0] : NULL;
	gwm_macros m;
	const char *queue;
	char q[64], rcpt[GW_LOG_PEER_MAX * 4 + 8], route[GW_HOST_MAX * 2];
	char prcpt[GW_PATH_MAX + 1], plain[GW_PRVS_ADDR_MAX + 3], why[64];
	int64_t t0_us = mono_us(), took_us;

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	gwm_macros_init(&m, ctx);
	queue = gwm_macro(&m, GWM_MACRO_I);
	atomic_fetch_add(&n_rcpts, 1);
	memset(&d, 0, sizeof(d));
	snprintf(d.route, sizeof(d.route), "-");
	snprintf(d.dir, sizeof(d.dir), "-");
	if (raw == NULL)
		raw = gwm_macro(&m, GWM_MACRO_RCPT_ADDR);
	if (raw == NULL)
		raw = "";
	/* PRVS first: a forged bounce costs no probe, a tagged recipient is probed stripped. */
	prvs_rcpt(c, raw, &pd, prcpt, sizeof(prcpt));
	if (pd.action == GWM_PRVS_REJECT || pd.action == GWM_PRVS_TEMPFAIL) {
		d.reply = pd.reply;
		d.source = "prvs";
		snprintf(d.rcpt, sizeof(d.rcpt), "%s", prcpt);
		if (pd.action == GWM_PRVS_REJECT)
			gwm_flood_event(GWM_FD_PRVS);
	} else if (pd.action == GWM_PRVS_STRIP) {
		snprintf(plain, sizeof(plain), "<%s>", pd.plain);
		decide(&m, c, plain, &d);
		/* Not for a recipient the MTA already refused: the add at end of message would revive it. */
		if (d.reply.action == SMFIS_CONTINUE && strcmp(d.source, "skip-error") != 0 &&
		    prvs_remember(c, raw, pd.plain) != 0) {
			gwm_reply_local_error(d.rcpt, &d.reply);
			d.source = "local-error";
			atomic_fetch_add(&n_local_errors, 1);
		}
	} else {
		decide(&m, c, raw, &d);
	}
	flood_rcpt(c, raw, &d);
	took_us = mono_us() - t0_us;
	rcpt_time_add(took_us);
	if (!gw_log_enabled(GW_LOG_INFO))
		return gwm_reply_send(ctx, &d.reply); /* every line below is info or debug */
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
	       "queue=%s client=%s rcpt=%s route=%s verdict=%s source=%s code=%d reply=%s ms=%lld dir=%s", q,
	       c->client, rcpt, route, d.reply.verdict, d.source, d.code,
	       d.reply.rcode[0] != '\0' ? d.reply.rcode : "-", (long long)(took_us / 1000), d.dir);
	if (d.dir_why[0] != '\0') {
		char dw[sizeof(d.dir_why) * 4];
		gw_log_sanitize(dw, sizeof(dw), d.dir_why, strlen(d.dir_why), sizeof(d.dir_why));
		gw_log(GW_LOG_DEBUG, "rcpt_directory", "queue=%s rcpt=%s dir=%s why=\"%s\"", q, rcpt, d.dir,
		       dw);
	}
	if (d.reply.rcode[0] != '\0')
		gw_log(GW_LOG_DEBUG, "rcpt_reply", "queue=%s rcpt=%s reply=\"%s %s %s\"", q, rcpt,
		       d.reply.rcode, d.reply.xcode, d.reply.text);
	if (pd.log) {
		char tagged[GW_LOG_PEER_MAX * 4 + 8], res[64], pl[GW_LOG_PEER_MAX * 4 + 8];
		gw_log_sanitize(tagged, sizeof(tagged), prcpt, strlen(prcpt), GW_LOG_PEER_MAX);
		gw_log_sanitize(pl, sizeof(pl), pd.plain, strlen(pd.plain), GW_LOG_PEER_MAX);
		gw_log(GW_LOG_INFO, "prvs",
		       "queue=%s client=%s step=rcpt rcpt=%s bounce=%s tag=%s action=%s why=%s plain=%s", q,
		       c->client, tagged, c->prvs_bounce ? "yes" : "no",
		       log_word(gw_prvs_result_str(pd.result), res, sizeof(res)),
		       gwm_prvs_action_str(pd.action), log_word(pd.why, why, sizeof(why)),
		       pd.action == GWM_PRVS_STRIP ? pl : "-");
	}
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
	gwm_conn *c = gwm_getpriv(ctx);
	sfsistat rc = SMFIS_CONTINUE;

	txn_end(c);
	if (c != NULL) {
		rc = prvs_eom(ctx, c); /* once per message: the state is dropped right after */
		prvs_reset(c);
		if (rc == SMFIS_CONTINUE)
			flood_eom(c);
		flood_reset(c);
	}
	return rc;
}

static sfsistat cb_abort(SMFICTX *ctx)
{
	gwm_conn *c = gwm_getpriv(ctx);

	txn_end(c);
	prvs_reset(c);
	flood_reset(c);
	return SMFIS_CONTINUE;
}

static sfsistat cb_close(SMFICTX *ctx)
{
	gwm_conn *c = gwm_getpriv(ctx);

	if (c == NULL)
		return SMFIS_CONTINUE;
	gwm_idle_del(&c->idle); /* before libmilter closes the socket */
	txn_end(c);
	prvs_reset(c);
	flood_reset(c);
	gwm_snapshot_unref(&c->snap);
	free(c);
	(void)gwm_setpriv(ctx, NULL);
	atomic_fetch_sub(&n_open, 1);
	return SMFIS_CONTINUE;
}

/* --- the idle watch around each callback between connect and close --------------- */

static gwm_idle *idle_of(SMFICTX *ctx)
{
	gwm_conn *c = gwm_getpriv(ctx);

	return c != NULL ? &c->idle : NULL;
}

#define WATCHED(call)                                                                                        \
	do {                                                                                                 \
		gwm_idle *e = idle_of(ctx);                                                                  \
		sfsistat r;                                                                                  \
		gwm_idle_enter(e);                                                                           \
		r = call;                                                                                    \
		gwm_idle_leave(e);                                                                           \
		return r;                                                                                    \
	} while (0)

static sfsistat w_envfrom(SMFICTX *ctx, char **argv)
{
	WATCHED(cb_envfrom(ctx, argv));
}

static sfsistat w_envrcpt(SMFICTX *ctx, char **argv)
{
	WATCHED(cb_envrcpt(ctx, argv));
}

static sfsistat w_data(SMFICTX *ctx)
{
	WATCHED(cb_data(ctx));
}

static sfsistat w_eom(SMFICTX *ctx)
{
	WATCHED(cb_eom(ctx));
}

static sfsistat w_abort(SMFICTX *ctx)
{
	WATCHED(cb_abort(ctx));
}

void gwm_callbacks_desc(struct smfiDesc *d)
{
	static char name[] = "gw-milter";

	memset(d, 0, sizeof(*d));
	d->xxfi_name = name;
	d->xxfi_version = SMFI_VERSION;
	/* PRVS rewrites envelopes; cb_negotiate asks for these only when PRVS is on. */
	d->xxfi_flags = SMFIF_CHGFROM | SMFIF_ADDRCPT | SMFIF_DELRCPT;
	d->xxfi_connect = cb_connect;
	d->xxfi_envfrom = w_envfrom;
	d->xxfi_envrcpt = w_envrcpt;
	d->xxfi_data = w_data;
	d->xxfi_eom = w_eom;
	d->xxfi_abort = w_abort;
	d->xxfi_close = cb_close;
	d->xxfi_negotiate = cb_negotiate;
}
