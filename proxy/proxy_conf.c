/*
 * proxy_conf.c - gw-proxy.conf: the option table and the checks it cannot express.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/dns.h"
#include "gw/log.h"
#include "proxy_conf.h"
#include "tls_in.h"

static const char *const log_dests[] = {"syslog", "stderr", NULL};
static const char *const log_levels[] = {"err", "warning", "notice", "info", "debug", NULL};
static const char *const tls_policies[] = {"none", "may", "encrypt", "verify", "dane", "dane-only", NULL};
static const char *const tls_client_levels[] = {"none", "may", "encrypt", NULL};

#define S(n) ((long)(n)*1000L)
#define OPT(n, t, d, doc, f, lo, hi, e)                                                                      \
	{                                                                                                    \
		n, t, d, doc, offsetof(gwp_options, f), lo, hi, e                                            \
	}

/* The order follows etc/gw-proxy.conf and gw-proxy.conf(5). */
const gw_option gwp_option[] = {
    OPT("listen", GW_OPT_LIST, "[127.0.0.1]:10026",
	"plain SMTP listeners, relayed to upstream: [IPv4]:PORT, [IPv6]:PORT; empty: none", listen, 0, 0,
	NULL),
    OPT("redirect_listen", GW_OPT_LIST, NULL,
	"listeners for connections redirected by the kernel (nftables redirect, TPROXY), relayed to their "
	"original destination; empty: none",
	redirect_listen, 0, 0, NULL),
    OPT("upstream", GW_OPT_STRING, NULL,
	"next hop of the plain listeners ([address]:port or host:port); empty: MX of the recipients' domain",
	upstream, 0, 0, NULL),
    OPT("control_socket", GW_OPT_STRING, "/run/gw-proxy/control", "control socket (stats); empty: none",
	control_socket, 0, 0, NULL),
    OPT("pid_file", GW_OPT_STRING, "/run/gw-proxy/gw-proxy.pid", "pid file; empty: none", pid_file, 0, 0,
	NULL),
    OPT("user", GW_OPT_STRING, NULL, "drop root to this user after binding; empty: stay", user, 0, 0, NULL),
    OPT("log", GW_OPT_ENUM, "syslog", "syslog (facility mail) or stderr", log, 0, 0, log_dests),
    OPT("log_level", GW_OPT_ENUM, "info", "err, warning, notice, info, debug", log_level, 0, 0, log_levels),
    OPT("session_log", GW_OPT_STRING, NULL,
	"file the session log is appended to; empty: the daemon's log (event \"s\")", session_log, 0, 0,
	NULL),
    OPT("hostname", GW_OPT_STRING, "localhost", "name in the greeting and EHLO reply to clients", hostname, 0,
	0, NULL),
    OPT("helo_name", GW_OPT_STRING, "localhost", "EHLO name towards destinations", helo_name, 0, 0, NULL),
    OPT("dns_servers", GW_OPT_LIST, NULL, "DNS servers (IP, IP:PORT, [IPv6]:PORT); empty: /etc/resolv.conf",
	dns_servers, 0, 0, NULL),
    OPT("dns_timeout", GW_OPT_DURATION, "5s", "longest DNS lookup", dns_timeout, 100, S(600), NULL),
    OPT("smtp_port", GW_OPT_INT, "25", "port of MX hosts", smtp_port, 1, 65535, NULL),
    OPT("tls", GW_OPT_ENUM, "may",
	"STARTTLS towards destinations: none, may, encrypt, verify, dane, dane-only (DANE in MX mode only)",
	tls, 0, 0, tls_policies),
    OPT("tls_ca_file", GW_OPT_STRING, NULL, "trust anchors for tls = verify; empty: the system's",
	tls_ca_file, 0, 0, NULL),
    OPT("tls_policy", GW_OPT_STRING, NULL,
	"STARTTLS policy per destination address (ADDRESS[/PREFIX] POLICY lines); empty: tls for all",
	tls_policy, 0, 0, NULL),
    OPT("tls_domain_policy", GW_OPT_STRING, NULL,
	"MX mode: STARTTLS level per recipient domain (DOMAIN LEVEL lines, .DOMAIN for subdomains); empty: "
	"tls for all",
	tls_domain_policy, 0, 0, NULL),
    OPT("tls_cert_file", GW_OPT_STRING, NULL,
	"certificate chain (PEM, leaf first) offered to clients after STARTTLS; empty: STARTTLS not offered",
	tls_cert_file, 0, 0, NULL),
    OPT("tls_key_file", GW_OPT_STRING, NULL, "private key of tls_cert_file (PEM); empty: in tls_cert_file",
	tls_key_file, 0, 0, NULL),
    OPT("tls_client_security", GW_OPT_ENUM, "may",
	"STARTTLS towards clients: none (never offered), may (offered with tls_cert_file), encrypt (MAIL "
	"before STARTTLS is refused)",
	tls_client_security, 0, 0, tls_client_levels),
    OPT("connect_timeout", GW_OPT_DURATION, "30s", "connect timeout per destination host", connect_timeout,
	100, S(600), NULL),
    OPT("reply_timeout", GW_OPT_DURATION, "300s",
	"timeout per reply from a destination; keep below the client's own timeouts", reply_timeout, 100,
	S(3600), NULL),
    OPT("command_timeout", GW_OPT_DURATION, "300s", "idle time allowed between client commands",
	command_timeout, 100, S(3600), NULL),
    OPT("max_sessions", GW_OPT_INT, "4000", "sessions at once; more wait in the listen queue", max_sessions,
	1, 100000, NULL),
    OPT("max_rcpts", GW_OPT_INT, "1000", "recipients per transaction", max_rcpts, 1, 100000, NULL),
    OPT("message_size_limit", GW_OPT_SIZE, "50m",
	"largest message relayed (a destination's smaller SIZE wins)", message_size_limit, 1024, 1L << 40,
	NULL),
    OPT("pool", GW_OPT_LIST, NULL,
	"source addresses (IPv4, IPv6) connections to destinations bind to, first usable first; empty: "
	"the system's choice",
	pool, 0, 0, NULL),
    OPT("tenant_map", GW_OPT_STRING, NULL,
	"file of NETWORK[/PREFIX] TENANT ADDRESS[,ADDRESS...] lines: the tenant of a client and its pool "
	"addresses; empty: a client is its own tenant and uses the whole pool",
	tenant_map, 0, 0, NULL),
    OPT("pool_retire_time", GW_OPT_DURATION, "1h",
	"how long an address a destination refused as blocklisted stays out of use for it", pool_retire_time,
	1000, S(30L * 86400), NULL),
    OPT("pool_blocklist_words", GW_OPT_LIST, "listed blocked blacklist blocklist rbl spamhaus reputation",
	"words (case-insensitive) that make a 550, 554 or 5.7.1 reply a blocklist verdict",
	pool_blocklist_words, 0, 0, NULL),
    OPT("tarpit_delay", GW_OPT_DURATION, "30s",
	"a destination reply slower than this marks the destination as a tarpit", tarpit_delay, 100, S(3600),
	NULL),
    OPT("dribble_reads", GW_OPT_INT, "10",
	"a destination reply that came in at least this many reads of a few bytes each, spread over "
	"dribble_time or more, marks the destination as a tarpit; 0: never",
	dribble_reads, 0, 100000, NULL),
    OPT("dribble_time", GW_OPT_DURATION, "3s", "see dribble_reads", dribble_time, 100, S(3600), NULL),
    OPT("throttle_words", GW_OPT_LIST, "rate throttl limit many",
	"words (case-insensitive) that make a 4xx reply a rate limit; a 421 always is one", throttle_words, 0,
	0, NULL),
    OPT("mark_time", GW_OPT_DURATION, "1h", "how long a tarpit or throttle mark on a destination lasts",
	mark_time, 1000, S(30L * 86400), NULL),
    OPT("destination_concurrency", GW_OPT_INT, "0",
	"sessions to one destination host at once; more get 421 (a 451 at RCPT by MX); 0: no limit (the "
	"tenants' MTAs keep theirs)",
	destination_concurrency, 0, 100000, NULL),
    OPT("marked_concurrency", GW_OPT_INT, "2",
	"sessions at once to a destination marked as tarpit or throttle; 0: the mark lowers nothing",
	marked_concurrency, 0, 100000, NULL),
    OPT("tenant_rate_limit", GW_OPT_INT, "0",
	"messages (MAIL commands) per minute per tenant, beyond which MAIL gets 451 4.7.1; a tenant_map "
	"line's "
	"rate=N overrides it; 0: no limit",
	tenant_rate_limit, 0, 1000000, NULL),
    OPT("state_file", GW_OPT_STRING, "/var/lib/gw-proxy/state",
	"file keeping retired pool addresses and destination marks across a restart (read at start, written "
	"at state_save_interval when they changed and at a clean stop); empty: memory only",
	state_file, 0, 0, NULL),
    OPT("state_save_interval", GW_OPT_DURATION, "30s",
	"how often state_file is written when something changed", state_save_interval, 1000, S(3600), NULL),
    {NULL, 0, NULL, NULL, 0, 0, 0, NULL}};

static void key_err(const gwp_config *c, const char *key, char *err, size_t errlen, const char *msg)
{
	unsigned line = gw_config_key_line(c->path, key);

	if (line > 0)
		snprintf(err, errlen, "%s:%u: %s: %s", c->path, line, key, msg);
	else
		snprintf(err, errlen, "%s: %s: %s", c->path, key, msg);
}

void gwp_config_key_err(const gwp_config *c, const char *key, char *err, size_t errlen, const char *msg)
{
	key_err(c, key, err, errlen, msg);
}

typedef struct list_ctx {
	gw_nexthop *hops;
	size_t *n;
	const char *bad;
	char item[512];
} list_ctx;

static int add_listen(const char *item, size_t len, void *arg)
{
	list_ctx *x = arg;
	gw_nexthop *h;
	const char *e = NULL;

	snprintf(x->item, sizeof(x->item), "%.*s", (int)len, item);
	if (*x->n >= GWP_LISTEN_MAX) {
		x->bad = "too many listeners";
		return 1;
	}
	h = &x->hops[*x->n];
	if (gw_nexthop_parse(item, len, h, &e) != 0) {
		x->bad = e;
		return 1;
	}
	if (h->kind != GW_HOP_INET || !h->literal || h->port == 0) {
		x->bad = "want [ADDRESS]:PORT";
		return 1;
	}
	(*x->n)++;
	return 0;
}

static int parse_listeners(gwp_config *c, const char *key, const char *value, gw_nexthop *hops, size_t *n,
			   char *err, size_t errlen)
{
	list_ctx x;

	memset(&x, 0, sizeof(x));
	x.hops = hops;
	x.n = n;
	if (value == NULL || gw_config_list_foreach(value, add_listen, &x) == 0)
		return 0;
	key_err(c, key, err, errlen, x.bad);
	{
		size_t l = strlen(err);
		snprintf(err + l, errlen - l, " (%s)", x.item);
	}
	return -1;
}

typedef struct words_ctx {
	char **v;
	size_t *n, max;
	int family_check;
	const char *bad;
	char item[512];
} words_ctx;

static int add_word(const char *item, size_t len, void *arg)
{
	words_ctx *x = arg;
	unsigned char a[16];

	snprintf(x->item, sizeof(x->item), "%.*s", (int)len, item);
	if (*x->n >= x->max) {
		x->bad = "too many items";
		return 1;
	}
	if (x->family_check && inet_pton(AF_INET, x->item, a) != 1 && inet_pton(AF_INET6, x->item, a) != 1) {
		x->bad = "want a numeric IPv4 or IPv6 address";
		return 1;
	}
	if ((x->v[*x->n] = strdup(x->item)) == NULL) {
		x->bad = "out of memory";
		return 1;
	}
	(*x->n)++;
	return 0;
}

static int parse_words(gwp_config *c, const char *key, const char *value, char **v, size_t *n, size_t max,
		       int family_check, char *err, size_t errlen)
{
	words_ctx x;

	memset(&x, 0, sizeof(x));
	x.v = v;
	x.n = n;
	x.max = max;
	x.family_check = family_check;
	if (value == NULL || gw_config_list_foreach(value, add_word, &x) == 0)
		return 0;
	key_err(c, key, err, errlen, x.bad);
	{
		size_t l = strlen(err);
		snprintf(err + l, errlen - l, " (%s)", x.item);
	}
	return -1;
}

gwp_config *gwp_config_load(const char *path, char *err, size_t errlen)
{
	gwp_config *c = calloc(1, sizeof(*c));
	char derr[256];
	static const int levels[] = {GW_LOG_ERR, GW_LOG_WARNING, GW_LOG_NOTICE, GW_LOG_INFO, GW_LOG_DEBUG};

	if (c == NULL || (c->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		free(c);
		return NULL;
	}
	if (gw_config_load(gwp_option, &c->opt, path, err, errlen) != 0)
		goto fail;
	c->log_level = levels[c->opt.log_level];
	if (parse_listeners(c, "listen", c->opt.listen, c->listen, &c->nlisten, err, errlen) != 0 ||
	    parse_listeners(c, "redirect_listen", c->opt.redirect_listen, c->redirect, &c->nredirect, err,
			    errlen) != 0)
		goto fail;
	if (c->nlisten + c->nredirect == 0) {
		key_err(c, "listen", err, errlen, "no listener (neither listen nor redirect_listen)");
		goto fail;
	}
	if (c->opt.upstream != NULL && c->opt.upstream[0] != '\0') {
		const char *e = NULL;
		if (gw_nexthop_parse(c->opt.upstream, strlen(c->opt.upstream), &c->upstream, &e) != 0) {
			key_err(c, "upstream", err, errlen, e);
			goto fail;
		}
		if (c->upstream.kind != GW_HOP_INET) {
			key_err(c, "upstream", err, errlen, "want [ADDRESS]:PORT or HOST:PORT");
			goto fail;
		}
		c->has_upstream = 1;
	}
	if (gw_dns_check_servers(c->opt.dns_servers, derr, sizeof(derr)) != 0) {
		key_err(c, "dns_servers", err, errlen, derr);
		goto fail;
	}
	if (c->opt.tls == 3 && c->opt.tls_ca_file != NULL && c->opt.tls_ca_file[0] != '\0') {
		FILE *f = fopen(c->opt.tls_ca_file, "r");
		if (f == NULL) {
			key_err(c, "tls_ca_file", err, errlen, "cannot be read");
			goto fail;
		}
		fclose(f);
	}
	if (c->opt.tls_policy != NULL && c->opt.tls_policy[0] != '\0') {
		char perr[512];
		if ((c->tls_map = gwp_tls_map_load(c->opt.tls_policy, perr, sizeof(perr))) == NULL) {
			key_err(c, "tls_policy", err, errlen, perr);
			goto fail;
		}
	}
	if (c->opt.tls_domain_policy != NULL && c->opt.tls_domain_policy[0] != '\0') {
		char perr[512];
		if ((c->domain_tls = gw_domain_tls_load(c->opt.tls_domain_policy, perr, sizeof(perr))) ==
		    NULL) {
			key_err(c, "tls_domain_policy", err, errlen, perr);
			goto fail;
		}
	}
	if (gwp_tls_in_conf(c, err, errlen) != 0)
		goto fail;
	if (parse_words(c, "pool", c->opt.pool, c->pool, &c->npool, GWP_POOL_MAX, 1, err, errlen) != 0 ||
	    parse_words(c, "pool_blocklist_words", c->opt.pool_blocklist_words, c->words, &c->nwords,
			GWP_WORDS_MAX, 0, err, errlen) != 0 ||
	    parse_words(c, "throttle_words", c->opt.throttle_words, c->twords, &c->ntwords, GWP_WORDS_MAX, 0,
			err, errlen) != 0)
		goto fail;
	if (c->opt.tenant_map != NULL && c->opt.tenant_map[0] != '\0') {
		char terr[512];
		size_t i, j, k;
		if (c->npool == 0) {
			key_err(c, "tenant_map", err, errlen, "needs pool");
			goto fail;
		}
		if ((c->tenants = gwp_tenant_map_load(c->opt.tenant_map, terr, sizeof(terr))) == NULL) {
			key_err(c, "tenant_map", err, errlen, terr);
			goto fail;
		}
		for (i = 0; i < gwp_tenant_map_count(c->tenants); i++) {
			const gwp_tenant *t = gwp_tenant_map_get(c->tenants, i);
			for (j = 0; j < t->naddr; j++) {
				for (k = 0; k < c->npool && strcmp(c->pool[k], t->addr[j]) != 0; k++)
					;
				if (k == c->npool) {
					snprintf(terr, sizeof(terr), "%s:%u: %s is not in pool",
						 c->opt.tenant_map, t->line, t->addr[j]);
					key_err(c, "tenant_map", err, errlen, terr);
					goto fail;
				}
			}
		}
	}
	return c;
fail:
	gwp_config_free(&c);
	return NULL;
}

void gwp_config_free(gwp_config **cp)
{
	gwp_config *c = *cp;

	if (c == NULL)
		return;
	gw_config_free(gwp_option, &c->opt);
	gwp_tls_map_free(&c->tls_map);
	gw_srv_tls_free(&c->tls_in);
	gw_domain_tls_free(&c->domain_tls);
	gwp_tenant_map_free(&c->tenants);
	while (c->npool > 0)
		free(c->pool[--c->npool]);
	while (c->nwords > 0)
		free(c->words[--c->nwords]);
	while (c->ntwords > 0)
		free(c->twords[--c->ntwords]);
	free(c->path);
	free(c);
	*cp = NULL;
}
