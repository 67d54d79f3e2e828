/*
 * lmtpd_conf.c - gw-lmtpd.conf: the option table and the checks it cannot express.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/dns.h"
#include "gw/log.h"
#include "lmtpd_conf.h"

static const char *const log_dests[] = {"syslog", "stderr", NULL};
static const char *const log_levels[] = {"err", "warning", "notice", "info", "debug", NULL};
/* In gw_tls_level order. */
static const char *const tls_policies[] = {"none", "may", "encrypt", "verify", "dane", "dane-only", NULL};

#define S(n) ((long)(n)*1000L)
#define OPT(n, t, d, doc, f, lo, hi, e)                                                                      \
	{                                                                                                    \
		n, t, d, doc, offsetof(gwl_options, f), lo, hi, e                                            \
	}

/* The order follows etc/gw-lmtpd.conf and gw-lmtpd.conf(5). */
const gw_option gwl_option[] = {
    OPT("listen", GW_OPT_LIST, "[127.0.0.1]:24",
	"LMTP listeners: [IPv4]:PORT, [IPv6]:PORT, unix:/path (comma or blank separated)", listen, 0, 0,
	NULL),
    OPT("socket_mode", GW_OPT_STRING, "0660", "permissions of a unix listener (octal)", socket_mode, 0, 0,
	NULL),
    OPT("control_socket", GW_OPT_STRING, "/run/gw-lmtpd/control", "control socket (stats); empty: none",
	control_socket, 0, 0, NULL),
    OPT("milter_control", GW_OPT_STRING, NULL,
	"gw-milter's control socket, told the domains delivered to; empty: none", milter_control, 0, 0, NULL),
    OPT("metrics_listen", GW_OPT_STRING, NULL,
	"HTTP listener answering GET /metrics ([address]:port); empty: none", metrics_listen, 0, 0, NULL),
    OPT("pid_file", GW_OPT_STRING, "/run/gw-lmtpd/gw-lmtpd.pid", "pid file; empty: none", pid_file, 0, 0,
	NULL),
    OPT("user", GW_OPT_STRING, NULL, "drop root to this user after binding; empty: stay", user, 0, 0, NULL),
    OPT("log", GW_OPT_ENUM, "syslog", "syslog (facility mail) or stderr", log, 0, 0, log_dests),
    OPT("log_level", GW_OPT_ENUM, "info", "err, warning, notice, info, debug", log_level, 0, 0, log_levels),
    OPT("hostname", GW_OPT_STRING, "localhost", "name in the LMTP greeting and LHLO reply", hostname, 0, 0,
	NULL),
    OPT("helo_name", GW_OPT_STRING, "localhost", "EHLO name towards destinations", helo_name, 0, 0, NULL),
    OPT("routes", GW_OPT_STRING, NULL, "route file (transport(5) syntax); empty: MX for every domain", routes,
	0, 0, NULL),
    OPT("use_mx", GW_OPT_BOOL, "yes", "resolve unbracketed route next hops by MX", use_mx, 0, 0, NULL),
    OPT("dns_servers", GW_OPT_LIST, NULL, "DNS servers (IP, IP:PORT, [IPv6]:PORT); empty: /etc/resolv.conf",
	dns_servers, 0, 0, NULL),
    OPT("dns_timeout", GW_OPT_DURATION, "5s", "longest DNS lookup", dns_timeout, 100, S(600), NULL),
    OPT("smtp_port", GW_OPT_INT, "25", "port of MX hosts (Postfix smtp_tcp_port)", smtp_port, 1, 65535, NULL),
    OPT("smtp_bind_address", GW_OPT_LIST, NULL, "source addresses for outgoing connections, used in turn",
	smtp_bind_address, 0, 0, NULL),
    OPT("tls", GW_OPT_ENUM, "may", "STARTTLS policy: none, may, encrypt, verify, dane, dane-only", tls, 0, 0,
	tls_policies),
    OPT("tls_ca_file", GW_OPT_STRING, NULL, "trust anchors for tls = verify", tls_ca_file, 0, 0, NULL),
    OPT("tls_policy", GW_OPT_STRING, NULL,
	"per-destination STARTTLS policies (domain policy lines); empty: tls", tls_policy, 0, 0, NULL),
    OPT("connect_timeout", GW_OPT_DURATION, "30s", "connect timeout per destination host", connect_timeout,
	100, S(600), NULL),
    OPT("reply_timeout", GW_OPT_DURATION, "120s", "timeout per reply from a destination", reply_timeout, 100,
	S(600), NULL),
    OPT("deadline", GW_OPT_DURATION, "300s",
	"whole relay of one message; keep below the client's LMTP data timeout", deadline, 1000, S(3600),
	NULL),
    OPT("command_timeout", GW_OPT_DURATION, "300s", "idle time allowed between LMTP commands",
	command_timeout, 100, S(3600), NULL),
    OPT("max_sessions", GW_OPT_INT, "200", "LMTP sessions at once; more wait in the listen queue",
	max_sessions, 1, 100000, NULL),
    OPT("max_rcpts", GW_OPT_INT, "1000", "recipients per LMTP transaction", max_rcpts, 1, 100000, NULL),
    OPT("message_size_limit", GW_OPT_SIZE, "50m", "largest message taken", message_size_limit, 1024, 1L << 40,
	NULL),
    OPT("spool_memory", GW_OPT_SIZE, "256k", "body bytes kept in memory before the unlinked spool file",
	spool_memory, 0, 1L << 30, NULL),
    OPT("spool_dir", GW_OPT_STRING, "/var/tmp", "where spool files are made (unlinked at once)", spool_dir, 0,
	0, NULL),
    OPT("dest_concurrency", GW_OPT_INT, "20", "connections at once per destination domain", dest_concurrency,
	1, 10000, NULL),
    OPT("dest_idle", GW_OPT_INT, "20", "idle connections kept per destination for reuse", dest_idle, 0, 1000,
	NULL),
    OPT("idle_time", GW_OPT_DURATION, "5s", "how long an idle destination connection is kept", idle_time, 100,
	S(3600), NULL),
    OPT("health_failures", GW_OPT_INT, "0",
	"failed connects (to two or more destinations, none reached) that make the gateway refuse LMTP "
	"sessions with 421; 0: never",
	health_failures, 0, 64, NULL),
    OPT("health_window", GW_OPT_DURATION, "60s", "how far back the health check looks", health_window, 1000,
	S(3600), NULL),
    OPT("health_retry", GW_OPT_DURATION, "10s", "while unhealthy, one session is let through this often",
	health_retry, 100, S(3600), NULL),
    {NULL, 0, NULL, NULL, 0, 0, 0, NULL}};

static void key_err(const gwl_config *c, const char *key, char *err, size_t errlen, const char *msg)
{
	unsigned line = gw_config_key_line(c->path, key);

	if (line > 0)
		snprintf(err, errlen, "%s:%u: %s: %s", c->path, line, key, msg);
	else
		snprintf(err, errlen, "%s: %s: %s", c->path, key, msg);
}

typedef struct list_ctx {
	gwl_config *c;
	const char *bad;
	char item[512];
	int nomem;
} list_ctx;

static int add_listen(const char *item, size_t len, void *arg)
{
	list_ctx *x = arg;
	gwl_config *c = x->c;
	const char *e = NULL;

	snprintf(x->item, sizeof(x->item), "%.*s", (int)len, item);
	if (c->nlisten >= GWL_LISTEN_MAX) {
		x->bad = "too many listeners";
		return 1;
	}
	if (gw_nexthop_parse(item, len, &c->listen[c->nlisten], &e) != 0) {
		x->bad = e;
		return 1;
	}
	if (c->listen[c->nlisten].kind == GW_HOP_INET &&
	    (!c->listen[c->nlisten].literal || c->listen[c->nlisten].port == 0)) {
		x->bad = "want [ADDRESS]:PORT or unix:/path";
		return 1;
	}
	c->nlisten++;
	return 0;
}

static int add_bind(const char *item, size_t len, void *arg)
{
	list_ctx *x = arg;
	gwl_config *c = x->c;
	unsigned char buf[16];
	char *a;

	snprintf(x->item, sizeof(x->item), "%.*s", (int)len, item);
	if (c->nbind >= GWL_BIND_MAX) {
		x->bad = "too many source addresses";
		return 1;
	}
	if (inet_pton(AF_INET, x->item, buf) != 1 && inet_pton(AF_INET6, x->item, buf) != 1) {
		x->bad = "not a numeric IPv4 or IPv6 address";
		return 1;
	}
	if ((a = strdup(x->item)) == NULL) {
		x->nomem = 1;
		return 1;
	}
	c->bind[c->nbind++] = a;
	return 0;
}

static int parse_mode(const char *s, mode_t *mode_r)
{
	char *end;
	unsigned long m;

	errno = 0;
	m = strtoul(s, &end, 8);
	if (errno != 0 || end == s || *end != '\0' || m > 0777)
		return -1;
	*mode_r = (mode_t)m;
	return 0;
}

gwl_config *gwl_config_load(const char *path, char *err, size_t errlen)
{
	gwl_config *c = calloc(1, sizeof(*c));
	char derr[256];
	list_ctx x;
	static const int levels[] = {GW_LOG_ERR, GW_LOG_WARNING, GW_LOG_NOTICE, GW_LOG_INFO, GW_LOG_DEBUG};

	if (c == NULL || (c->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		free(c);
		return NULL;
	}
	if (gw_config_load(gwl_option, &c->opt, path, err, errlen) != 0)
		goto fail;
	c->log_level = levels[c->opt.log_level];
	memset(&x, 0, sizeof(x));
	x.c = c;
	if (c->opt.listen == NULL || gw_config_list_foreach(c->opt.listen, add_listen, &x) != 0 ||
	    c->nlisten == 0) {
		key_err(c, "listen", err, errlen, x.bad != NULL ? x.bad : "no listener");
		if (x.bad != NULL) {
			size_t l = strlen(err);
			snprintf(err + l, errlen - l, " (%s)", x.item);
		}
		goto fail;
	}
	memset(&x, 0, sizeof(x));
	x.c = c;
	if (c->opt.smtp_bind_address != NULL &&
	    gw_config_list_foreach(c->opt.smtp_bind_address, add_bind, &x) != 0) {
		key_err(c, "smtp_bind_address", err, errlen, x.nomem ? "out of memory" : x.bad);
		goto fail;
	}
	if (gw_dns_check_servers(c->opt.dns_servers, derr, sizeof(derr)) != 0) {
		key_err(c, "dns_servers", err, errlen, derr);
		goto fail;
	}
	if (parse_mode(c->opt.socket_mode, &c->socket_mode) != 0) {
		key_err(c, "socket_mode", err, errlen, "want an octal mode such as 0660");
		goto fail;
	}
	if (c->opt.routes != NULL && c->opt.routes[0] != '\0') {
		char rerr[512];
		if ((c->routes = gw_routes_load(c->opt.routes, rerr, sizeof(rerr))) == NULL) {
			key_err(c, "routes", err, errlen, rerr);
			goto fail;
		}
	}
	if (c->opt.tls_policy != NULL && c->opt.tls_policy[0] != '\0') {
		char perr[512];
		if ((c->tls_policy = gw_domain_tls_load(c->opt.tls_policy, perr, sizeof(perr))) == NULL) {
			key_err(c, "tls_policy", err, errlen, perr);
			goto fail;
		}
	}
	return c;
fail:
	gwl_config_free(&c);
	return NULL;
}

void gwl_config_free(gwl_config **cp)
{
	gwl_config *c = *cp;
	size_t i;

	if (c == NULL)
		return;
	gw_config_free(gwl_option, &c->opt);
	for (i = 0; i < c->nbind; i++)
		free(c->bind[i]);
	gw_routes_free(&c->routes);
	gw_domain_tls_free(&c->tls_policy);
	free(c->path);
	free(c);
	*cp = NULL;
}
