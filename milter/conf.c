/*
 * conf.c - gw.conf for gw-milter: the option table, the checks the table
 * cannot express, the route file with its loop check, and snapshots.
 *
 * Values that need more than the table's types (socket, socket_mode,
 * networks, self addresses, PRVS lists) are parsed here once, at load, into
 * plain arrays, so a callback never parses configuration text. The PRVS key
 * ring is loaded here too: each snapshot owns its ring, so a reload picks up
 * a rotated key file and live connections keep the ring they started with. Errors about such a
 * value name the line of its key, found by scanning the file again.
 *
 * Snapshots are counted with an atomic; "current" is a pointer under a
 * mutex, so taking a reference costs one lock and one increment per milter
 * connection.
 *
 * Does not defend against: routes whose host names (not literals) resolve
 * to this gateway (only numeric next hops are compared with
 * self_addresses); a configuration file edited between the load and the
 * line scan of an error message (the line may then be off).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_share.h"
#include "conf.h"
#include "gw/addr.h"
#include "gw/dns.h"
#include "gw/log.h"
#include "gw/nexthop.h"

static const char *const log_dests[] = {"syslog", "stderr", NULL};
static const char *const log_levels[] = {"err", "warning", "notice", "info", "debug", NULL};
static const char *const tls_policies[] = {"none", "may", "encrypt", "verify", NULL};

#define S(n) ((long)(n)*1000L)
#define OPT(n, t, d, doc, f, lo, hi, e)                                                                      \
	{                                                                                                    \
		n, t, d, doc, offsetof(gwm_options, f), lo, hi, e                                            \
	}

/* The engine's keys, with their defaults and bounds, come from its table (gw/callahead.h). */
#define CA_OPT(key, field, type, def, du, min, mu, max, xu, doc)                                             \
	OPT(#key, type, GW_CA_TEXT(def, du), doc, key, (long)GW_CA_VAL(min, mu), (long)GW_CA_VAL(max, xu),   \
	    NULL),

/* The order follows etc/gw.conf and gw.conf(5), except that catchall_check follows the engine's keys. */
const gw_option gwm_option[] = {
    OPT("socket", GW_OPT_STRING, "unix:/var/spool/postfix/gw-milter/milter.sock",
	"milter socket: unix:/path, inet:PORT@HOST, inet6:PORT@HOST", socket, 0, 0, NULL),
    OPT("socket_mode", GW_OPT_STRING, "0660", "permissions of a unix milter socket (octal)", socket_mode, 0,
	0, NULL),
    OPT("socket_group", GW_OPT_STRING, NULL, "group of a unix milter socket; empty: the daemon's group",
	socket_group, 0, 0, NULL),
    OPT("milter_timeout", GW_OPT_DURATION, "10m", "an idle milter connection is closed after this",
	milter_timeout, S(1), S(86400), NULL),
    OPT("control_socket", GW_OPT_STRING, "/run/gw-milter/control",
	"control socket (stats, purge); empty: none", control_socket, 0, 0, NULL),
    OPT("metrics_listen", GW_OPT_STRING, NULL,
	"HTTP listener answering GET /metrics ([address]:port); empty: none", metrics_listen, 0, 0, NULL),
    OPT("pid_file", GW_OPT_STRING, "/run/gw-milter/gw-milter.pid", "pid file; empty: none", pid_file, 0, 0,
	NULL),
    OPT("user", GW_OPT_STRING, NULL, "drop root to this user after binding; empty: stay", user, 0, 0, NULL),
    OPT("log", GW_OPT_ENUM, "syslog", "syslog (facility mail) or stderr", log, 0, 0, log_dests),
    OPT("log_level", GW_OPT_ENUM, "info", "err, warning, notice, info, debug", log_level, 0, 0, log_levels),
    OPT("routes", GW_OPT_STRING, "/etc/gw/routes", "route file (Postfix transport(5) syntax)", routes, 0, 0,
	NULL),
    OPT("use_mx", GW_OPT_BOOL, "no", "resolve unbracketed next hops by MX", use_mx, 0, 0, NULL),
    OPT("dns_servers", GW_OPT_LIST, NULL, "DNS servers (IP, IP:PORT, [IPv6]:PORT); empty: /etc/resolv.conf",
	dns_servers, 0, 0, NULL),
    OPT("dns_timeout", GW_OPT_DURATION, "5s", "longest DNS lookup (deadline and connect_timeout too)",
	dns_timeout, 100, S(600), NULL),
    OPT("use_rcpt_host", GW_OPT_BOOL, "no", "probe Sendmail's {rcpt_host} when no route matches",
	use_rcpt_host, 0, 0, NULL),
    OPT("self_addresses", GW_OPT_LIST, NULL, "our own SMTP listeners (ADDR:PORT); routes to them are refused",
	self_addresses, 0, 0, NULL),
    OPT("helo_name", GW_OPT_STRING, "localhost", "EHLO/HELO name of the probe", helo_name, 0, 0, NULL),
    OPT("probe_sender", GW_OPT_STRING, NULL, "probe reverse-path; empty: <>", probe_sender, 0, 0, NULL),
    OPT("fallback_sender", GW_OPT_STRING, NULL, "reverse-path used when <> is refused", fallback_sender, 0, 0,
	NULL),
    OPT("tls", GW_OPT_ENUM, "may", "STARTTLS policy: none, may, encrypt, verify", tls, 0, 0, tls_policies),
    OPT("tls_ca_file", GW_OPT_STRING, NULL, "trust anchors for tls = verify", tls_ca_file, 0, 0, NULL),
    /* clang-format off: a row list, not a call */
    GW_CA_PARAMS(CA_OPT)
    /* clang-format on */
    OPT("catchall_check", GW_OPT_BOOL, "no", "probe a random local part to detect accept-all routes",
	catchall_check, 0, 0, NULL),
    OPT("fail_open", GW_OPT_BOOL, "no", "accept when the internal MTA cannot be reached (NOT recommended)",
	fail_open, 0, 0, NULL),
    OPT("reveal_internal", GW_OPT_BOOL, "no", "include the internal MTA's reply and host in replies",
	reveal_internal, 0, 0, NULL),
    OPT("unknown_limit", GW_OPT_INT, "20", "unknown recipients per client IP in unknown_window; 0: no limit",
	unknown_limit, 0, 1000000, NULL),
    OPT("unknown_window", GW_OPT_DURATION, "10m", "window of unknown_limit", unknown_window, 1000, S(604800),
	NULL),
    OPT("skip_networks", GW_OPT_LIST, NULL, "client networks never checked", skip_networks, 0, 0, NULL),
    OPT("skip_recipients", GW_OPT_LIST, NULL, "recipients never checked (local@, @domain, local@domain)",
	skip_recipients, 0, 0, NULL),
    OPT("skip_authenticated", GW_OPT_BOOL, "yes", "clients with {auth_authen} are not checked",
	skip_authenticated, 0, 0, NULL),
    OPT("local_mailers", GW_OPT_LIST, "local", "{rcpt_mailer} values never checked", local_mailers, 0, 0,
	NULL),
    OPT("prvs_keys", GW_OPT_STRING, NULL, "PRVS key file (mode 0600 or stricter); empty: PRVS off", prvs_keys,
	0, 0, NULL),
    OPT("prvs_sign_domains", GW_OPT_LIST, NULL, "domains whose senders are signed and bounces verified",
	prvs_sign_domains, 0, 0, NULL),
    OPT("prvs_internal_networks", GW_OPT_LIST, NULL,
	"clients whose mail is signed (authenticated clients too)", prvs_internal_networks, 0, 0, NULL),
    OPT("prvs_verify", GW_OPT_BOOL, "yes", "refuse bounces to signing domains without a valid tag",
	prvs_verify, 0, 0, NULL),
    OPT("prvs_verify_mailer_daemon", GW_OPT_BOOL, "no", "MAIL FROM MAILER-DAEMON@... is a bounce too",
	prvs_verify_mailer_daemon, 0, 0, NULL),
    OPT("prvs_exempt", GW_OPT_LIST, NULL, "recipients accepting unsigned bounces (local@domain, @domain)",
	prvs_exempt, 0, 0, NULL),
    OPT("prvs_sign_exempt", GW_OPT_LIST, NULL, "senders never signed (local@domain, @domain)",
	prvs_sign_exempt, 0, 0, NULL),
    OPT("flood_guard", GW_OPT_BOOL, "no", "learn correspondents, detect bounce floods, defer others in one",
	flood_guard, 0, 0, NULL),
    OPT("flood_store", GW_OPT_STRING, "/var/lib/gw-milter/flood",
	"directory of the LMDB store of what was learnt; empty: memory only", flood_store, 0, 0, NULL),
    OPT("flood_v4_prefix", GW_OPT_INT, "24", "IPv4 client network learnt as one correspondent (prefix)",
	flood_v4_prefix, 8, 32, NULL),
    OPT("flood_v6_prefix", GW_OPT_INT, "48", "IPv6 client network learnt as one correspondent (prefix)",
	flood_v6_prefix, 16, 128, NULL),
    OPT("flood_half_life", GW_OPT_DURATION, "7d", "half-life of the learnt counts", flood_half_life, S(1),
	S(31536000), NULL),
    OPT("flood_threshold", GW_OPT_INT, "3", "decayed count from which a network or domain is a correspondent",
	flood_threshold, 1, 1000000, NULL),
    OPT("flood_max_entries", GW_OPT_INT, "100000", "networks and domains remembered at most",
	flood_max_entries, 100, 10000000, NULL),
    OPT("flood_window", GW_OPT_DURATION, "1m", "rate window of the flood detector", flood_window, 100,
	S(3600), NULL),
    OPT("flood_baseline_windows", GW_OPT_INT, "60", "windows the EWMA baseline spans (alpha = 2/(N+1))",
	flood_baseline_windows, 1, 100000, NULL),
    OPT("flood_multiple", GW_OPT_INT, "10", "a rate this many times its baseline is a flood", flood_multiple,
	2, 100000, NULL),
    OPT("flood_floor_bounce", GW_OPT_INT, "100", "null-sender messages per window below which no flood",
	flood_floor_bounce, 1, 100000000, NULL),
    OPT("flood_floor_prvs", GW_OPT_INT, "100", "PRVS failures per window below which no flood",
	flood_floor_prvs, 1, 100000000, NULL),
    OPT("flood_floor_unknown", GW_OPT_INT, "200", "unknown recipients per window below which no flood",
	flood_floor_unknown, 1, 100000000, NULL),
    OPT("flood_calm_windows", GW_OPT_INT, "10", "calm windows in a row that end high-load mode",
	flood_calm_windows, 1, 100000, NULL),
    OPT("flood_defer_all", GW_OPT_BOOL, "no", "in high-load mode defer all mail of non-correspondents",
	flood_defer_all, 0, 0, NULL),
    OPT("flood_client_probes", GW_OPT_INT, "4",
	"in high-load mode, concurrent probes per client network; 0: no limit", flood_client_probes, 0,
	100000, NULL),
    OPT("flood_hook_command", GW_OPT_STRING, NULL,
	"command run (sh -c) on entering and leaving high-load mode", flood_hook_command, 0, 0, NULL),
    OPT("flood_hook_url", GW_OPT_STRING, NULL, "URL a JSON event is POSTed to on each mode change",
	flood_hook_url, 0, 0, NULL),
    OPT("flood_hook_timeout", GW_OPT_DURATION, "10s", "longest run of one hook attempt", flood_hook_timeout,
	100, S(600), NULL),
    OPT("flood_hook_retries", GW_OPT_INT, "3", "attempts after a failed hook", flood_hook_retries, 0, 100,
	NULL),
    OPT("shared_state", GW_OPT_STRING, NULL,
	"redis://[USER@]HOST[:PORT][/DB] shared by the gateways; empty: none", shared_state, 0, 0, NULL),
    OPT("shared_state_password_file", GW_OPT_STRING, NULL,
	"file (mode 0600 or stricter) holding the Redis password; empty: no AUTH", shared_state_password_file,
	0, 0, NULL),
    OPT("shared_refresh", GW_OPT_DURATION, "5s", "how often the shared state is read and written",
	shared_refresh, 100, S(3600), NULL),
    OPT("shared_state_id", GW_OPT_STRING, NULL,
	"this gateway's name in the shared state's keys; empty: host name and a hash of flood_store",
	shared_state_id, 0, 0, NULL),
    OPT("shared_cache", GW_OPT_BOOL, "no",
	"copy the other gateways' call-ahead verdicts into the local cache in the background (needs "
	"shared_state)",
	shared_cache, 0, 0, NULL),
    OPT("directory_url", GW_OPT_STRING, NULL,
	"directory URL template (ldap, ldaps, http, https); empty: none", directory_url, 0, 0, NULL),
    OPT("directory_urls", GW_OPT_STRING, NULL,
	"file of ROUTE_KEY URL_TEMPLATE lines: routes with their own directory; empty: none", directory_urls,
	0, 0, NULL),
    OPT("directory_mode", GW_OPT_ENUM, "callahead", "check mode: callahead, directory, directory+callahead",
	directory_mode, 0, 0, gwm_mode_words),
    OPT("directory_routes", GW_OPT_LIST, NULL, "per-route modes: ROUTE_KEY=MODE (key as in the route file)",
	directory_routes, 0, 0, NULL),
    OPT("directory_timeout", GW_OPT_DURATION, "5s", "one directory request (within deadline)",
	directory_timeout, 100, S(600), NULL),
    OPT("directory_max_requests", GW_OPT_INT, "16", "concurrent directory requests", directory_max_requests,
	1, 10000, NULL),
    OPT("directory_positive_ttl", GW_OPT_DURATION, "10m", "how long an existing recipient is cached",
	directory_positive_ttl, 1, S(2592000), NULL),
    OPT("directory_negative_ttl", GW_OPT_DURATION, "5m", "how long an unknown recipient is cached",
	directory_negative_ttl, 1, S(2592000), NULL),
    OPT("directory_ca_file", GW_OPT_STRING, NULL, "trust anchors for ldaps and https; empty: the system's",
	directory_ca_file, 0, 0, NULL),
    OPT("directory_credentials", GW_OPT_STRING, NULL,
	"file (mode 0600 or stricter): user or bind DN, then password; empty: anonymous",
	directory_credentials, 0, 0, NULL),
    OPT("directory_http_exists", GW_OPT_LIST, "200", "HTTP statuses meaning the recipient exists",
	directory_http_exists, 0, 0, NULL),
    OPT("directory_http_unknown", GW_OPT_LIST, "404", "HTTP statuses meaning the recipient is unknown",
	directory_http_unknown, 0, 0, NULL),
    OPT("directory_http_expect", GW_OPT_STRING, NULL, "text an exists answer's body must contain; empty: any",
	directory_http_expect, 0, 0, NULL),
    {NULL, GW_OPT_STRING, NULL, NULL, 0, 0, 0, NULL},
};

/* --- errors naming file:line --------------------------------------------- */

static void key_err(const gwm_config *c, const char *key, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void key_err(const gwm_config *c, const char *key, char *err, size_t errlen, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	unsigned line = gw_config_key_line(c->path, key);

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(err, errlen, "%s:%u: %s: %s", c->path, line, key, msg);
	else
		snprintf(err, errlen, "%s: %s: %s", c->path, key, msg);
}

/* --- values the table cannot check ------------------------------------- */

/* libmilter's syntax: inet:PORT[@HOST], inet6:PORT[@HOST], unix:/path, local:/path. */
static const char *socket_error(const char *s)
{
	const char *p;
	char *end;
	long port;

	if (s == NULL || *s == '\0')
		return "empty";
	if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "local:", 6) == 0) {
		p = strchr(s, ':') + 1;
		if (*p != '/')
			return "a unix socket needs an absolute path (unix:/path)";
		return strlen(p) > GW_UNIX_PATH_MAX ? "unix socket path too long" : NULL;
	}
	if (strncmp(s, "inet:", 5) == 0 || strncmp(s, "inet6:", 6) == 0) {
		p = strchr(s, ':') + 1;
		errno = 0;
		port = strtol(p, &end, 10);
		if (end == p || errno != 0 || port < 1 || port > 65535 || (*end != '\0' && *end != '@'))
			return "want inet:PORT@HOST (libmilter syntax, not Postfix's inet:HOST:PORT)";
		if (*end == '@' && end[1] == '\0')
			return "empty host after '@'";
		return NULL;
	}
	return "want inet:PORT@HOST, inet6:PORT@HOST or unix:/path";
}

static int parse_mode(const char *s, mode_t *mode_r)
{
	char *end;
	unsigned long m;

	if (s == NULL || *s == '\0' || strspn(s, "01234567") != strlen(s))
		return -1;
	m = strtoul(s, &end, 8);
	if (m > 0777)
		return -1;
	*mode_r = (mode_t)m;
	return 0;
}

/* "ADDR" or "ADDR/PREFIX", IPv4 or IPv6. */
static int parse_net(const char *s, size_t len, gwm_net *n)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned long prefix;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(n, 0, sizeof(*n));
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, n->addr) == 1) {
		n->family = AF_INET;
		n->prefix = 32;
	} else if (inet_pton(AF_INET6, buf, n->addr) == 1) {
		n->family = AF_INET6;
		n->prefix = 128;
	} else {
		return -1;
	}
	if (slash != NULL) {
		if (*slash == '\0' || strspn(slash, "0123456789") != strlen(slash))
			return -1;
		prefix = strtoul(slash, &end, 10);
		if (prefix > n->prefix)
			return -1;
		n->prefix = (unsigned)prefix;
	}
	return 0;
}

typedef struct list_ctx {
	gwm_config *c;
	const char *key;
	char *err;
	size_t errlen;
	gwm_net **nets; /* add_net: the array it appends to */
	size_t *nnets;
	char ***strs; /* add_prvs_item: the array it appends to */
	size_t *nstrs;
} list_ctx;

static int add_net(const char *item, size_t len, void *vctx)
{
	list_ctx *x = vctx;
	gwm_net *nn;

	nn = realloc(*x->nets, (*x->nnets + 1) * sizeof(*nn));
	if (nn == NULL) {
		key_err(x->c, x->key, x->err, x->errlen, "out of memory");
		return -1;
	}
	*x->nets = nn;
	if (parse_net(item, len, &nn[*x->nnets]) != 0) {
		key_err(x->c, x->key, x->err, x->errlen, "bad network '%.*s' (want ADDR or ADDR/PREFIX)",
			(int)(len > 64 ? 64 : len), item);
		return -1;
	}
	(*x->nnets)++;
	return 0;
}

static int add_string(char ***arr, size_t *n, const char *item, size_t len, int lower)
{
	char **na = realloc(*arr, (*n + 1) * sizeof(*na));
	size_t i;

	if (na == NULL)
		return -1;
	*arr = na;
	if ((na[*n] = strndup(item, len)) == NULL)
		return -1;
	if (lower)
		for (i = 0; i < len; i++)
			na[*n][i] = (char)tolower((unsigned char)na[*n][i]);
	(*n)++;
	return 0;
}

static int add_skip_rcpt(const char *item, size_t len, void *vctx)
{
	list_ctx *x = vctx;
	char buf[GW_PATH_MAX + 2];

	if (len == 0 || len > GW_PATH_MAX) {
		key_err(x->c, x->key, x->err, x->errlen, "bad recipient '%.*s'", (int)(len > 64 ? 64 : len),
			item);
		return -1;
	}
	/* A bare "postmaster" means the local part in every domain. */
	snprintf(buf, sizeof(buf), "%.*s%s", (int)len, item, memchr(item, '@', len) == NULL ? "@" : "");
	if (strcmp(buf, "@") == 0 || strchr(strchr(buf, '@') + 1, '@') != NULL) {
		key_err(x->c, x->key, x->err, x->errlen, "bad recipient '%s'", buf);
		return -1;
	}
	if (add_string(&x->c->skip_rcpts, &x->c->nskip_rcpts, buf, strlen(buf), 1) != 0) {
		key_err(x->c, x->key, x->err, x->errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int add_mailer(const char *item, size_t len, void *vctx)
{
	list_ctx *x = vctx;

	if (add_string(&x->c->local_mailers, &x->c->nlocal_mailers, item, len, 0) != 0) {
		key_err(x->c, x->key, x->err, x->errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* "ADDR:PORT", "[ADDR]:PORT" or "ADDR" (every port), numeric only. */
static int add_self(const char *item, size_t len, void *vctx)
{
	list_ctx *x = vctx;
	gw_nexthop hop;
	const char *why = NULL;
	struct sockaddr_storage *ss;

	if (x->c->nself >= GWM_SELF_MAX) {
		key_err(x->c, x->key, x->err, x->errlen, "more than %d addresses", GWM_SELF_MAX);
		return -1;
	}
	ss = &x->c->self[x->c->nself];
	memset(ss, 0, sizeof(*ss));
	if (gw_nexthop_parse(item, len, &hop, &why) != 0 || hop.kind != GW_HOP_INET) {
		key_err(x->c, x->key, x->err, x->errlen, "bad address '%.*s': %s", (int)(len > 64 ? 64 : len),
			item, why != NULL ? why : "not an address and port");
		return -1;
	}
	if (inet_pton(AF_INET, hop.host, &((struct sockaddr_in *)(void *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		((struct sockaddr_in *)(void *)ss)->sin_port = htons((uint16_t)hop.port);
	} else if (inet_pton(AF_INET6, hop.host, &((struct sockaddr_in6 *)(void *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons((uint16_t)hop.port);
	} else {
		key_err(x->c, x->key, x->err, x->errlen, "'%s' is not a numeric address", hop.host);
		return -1;
	}
	x->c->nself++;
	return 0;
}

/* --- PRVS -------------------------------------------------------------------- */

/*
 * A prvs_sign_domains item (a domain: no '@') or, for the exemption lists,
 * "@domain" or "local@domain" (an entry without '@' would match nothing,
 * so it is an error rather than a silent no-op).
 */
static int add_prvs_item(const char *item, size_t len, void *vctx)
{
	list_ctx *x = vctx;
	const char *at = memchr(item, '@', len);
	int domains = strcmp(x->key, "prvs_sign_domains") == 0;

	if (len == 0 || len > GW_PATH_MAX || (domains && at != NULL) ||
	    (!domains &&
	     (at == NULL || at == item + len - 1 || memchr(at + 1, '@', len - (size_t)(at - item) - 1)))) {
		key_err(x->c, x->key, x->err, x->errlen, "bad entry '%.*s' (want %s)",
			(int)(len > 64 ? 64 : len), item, domains ? "a domain" : "local@domain or @domain");
		return -1;
	}
	if (add_string(x->strs, x->nstrs, item, len, domains) != 0) {
		key_err(x->c, x->key, x->err, x->errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* The prvs_* keys: lists parsed, the key ring loaded when prvs_keys is set. */
static int load_prvs(gwm_config *c, list_ctx *x)
{
	gwm_prvs_conf *p = &c->prvs;
	char e[512];

	p->verify = c->opt.prvs_verify;
	p->verify_mailer_daemon = c->opt.prvs_verify_mailer_daemon;
	x->key = "prvs_internal_networks";
	x->nets = &c->prvs_nets;
	x->nnets = &c->nprvs_nets;
	if (gw_config_list_foreach(c->opt.prvs_internal_networks, add_net, x) != 0)
		return -1;
	x->key = "prvs_sign_domains";
	x->strs = &p->sign_domains;
	x->nstrs = &p->nsign_domains;
	if (gw_config_list_foreach(c->opt.prvs_sign_domains, add_prvs_item, x) != 0)
		return -1;
	x->key = "prvs_exempt";
	x->strs = &p->exempt;
	x->nstrs = &p->nexempt;
	if (gw_config_list_foreach(c->opt.prvs_exempt, add_prvs_item, x) != 0)
		return -1;
	x->key = "prvs_sign_exempt";
	x->strs = &p->sign_exempt;
	x->nstrs = &p->nsign_exempt;
	if (gw_config_list_foreach(c->opt.prvs_sign_exempt, add_prvs_item, x) != 0)
		return -1;
	if (c->opt.prvs_keys == NULL || c->opt.prvs_keys[0] == '\0') {
		if (p->nsign_domains > 0)
			gw_log(GW_LOG_NOTICE, "config",
			       "file=%s prvs_sign_domains without prvs_keys: PRVS off", c->path);
		return 0;
	}
	/* The library's message names the key file ("path: readable by group or others ..."). */
	if (gw_prvs_ring_load(c->opt.prvs_keys, &p->ring, e, sizeof(e)) != 0) {
		key_err(c, "prvs_keys", x->err, x->errlen, "%s", e);
		return -1;
	}
	if (p->nsign_domains == 0)
		gw_log(GW_LOG_NOTICE, "config",
		       "file=%s prvs_keys without prvs_sign_domains: only tags are stripped", c->path);
	else if (gw_prvs_ring_signing(p->ring) < 0)
		gw_log(GW_LOG_NOTICE, "config", "file=%s %s has no signing key: nothing is signed", c->path,
		       c->opt.prvs_keys);
	return 0;
}

/* --- directory ---------------------------------------------------------------- */

static int add_route_mode(const char *item, size_t len, void *vctx)
{
	list_ctx *x = vctx;
	const char *eq = memchr(item, '=', len);
	gwm_route_mode *nm;
	size_t i, kl = eq != NULL ? (size_t)(eq - item) : 0;

	for (i = 0; eq != NULL && gwm_mode_words[i] != NULL; i++)
		if (strlen(gwm_mode_words[i]) == len - kl - 1 &&
		    strncasecmp(gwm_mode_words[i], eq + 1, len - kl - 1) == 0)
			break;
	if (eq == NULL || kl == 0 || kl > GW_HOST_MAX + 1 || gwm_mode_words[i] == NULL) {
		key_err(x->c, x->key, x->err, x->errlen,
			"bad entry '%.*s' (want ROUTE_KEY=callahead, =directory or =directory+callahead)",
			(int)(len > 64 ? 64 : len), item);
		return -1;
	}
	if ((nm = realloc(x->c->route_modes, (x->c->nroute_modes + 1) * sizeof(*nm))) == NULL ||
	    (nm[x->c->nroute_modes].key = strndup(item, kl)) == NULL) {
		if (nm != NULL)
			x->c->route_modes = nm;
		key_err(x->c, x->key, x->err, x->errlen, "out of memory");
		return -1;
	}
	x->c->route_modes = nm;
	nm[x->c->nroute_modes++].mode = (gwm_mode)i;
	return 0;
}

/* The directory_urls file: "ROUTE_KEY URL_TEMPLATE" lines, '#' comments; each template checked. */
static int load_route_urls(gwm_config *c, char *err, size_t errlen)
{
	const char *path = c->opt.directory_urls;
	char line[GW_DIR_URL_MAX + GW_HOST_MAX + 8], e[256];
	gwm_route_url *nu;
	unsigned ln = 0;
	FILE *f;
	int rc = 0;

	if (path == NULL || *path == '\0')
		return 0;
	if ((f = fopen(path, "r")) == NULL) {
		key_err(c, "directory_urls", err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		char *k = line, *u, *end;
		ln++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(err, errlen, "%s:%u: line too long", path, ln);
			rc = -1;
			break;
		}
		k += strspn(k, " \t");
		if (*k == '#' || *k == '\n' || *k == '\r' || *k == '\0')
			continue;
		u = k + strcspn(k, " \t\r\n");
		if (*u != '\0')
			*u++ = '\0';
		u += strspn(u, " \t");
		end = u + strcspn(u, " \t\r\n");
		*end = '\0';
		if (*u == '\0' || gw_dir_template_check(u, e, sizeof(e)) != 0) {
			snprintf(err, errlen, "%s:%u: %s", path, ln,
				 *u == '\0' ? "want ROUTE_KEY URL_TEMPLATE" : e);
			rc = -1;
			break;
		}
		if ((nu = realloc(c->route_urls, (c->nroute_urls + 1) * sizeof(*nu))) == NULL) {
			snprintf(err, errlen, "%s: out of memory", path);
			rc = -1;
			break;
		}
		c->route_urls = nu;
		nu[c->nroute_urls].key = strdup(k);
		nu[c->nroute_urls].url = strdup(u);
		c->nroute_urls++;
		if (nu[c->nroute_urls - 1].key == NULL || nu[c->nroute_urls - 1].url == NULL) {
			snprintf(err, errlen, "%s: out of memory", path);
			rc = -1;
		}
	}
	fclose(f);
	return rc;
}

long gwm_config_route_url(const gwm_config *c, const gw_route *route)
{
	size_t i;

	for (i = 0; route != NULL && i < c->nroute_urls; i++)
		if (strcasecmp(c->route_urls[i].key, route->key) == 0)
			return (long)i;
	return -1;
}

/* Does the route key have its own URL? */
static int has_own_url(const gwm_config *c, const char *key)
{
	size_t i;

	for (i = 0; i < c->nroute_urls; i++)
		if (strcasecmp(c->route_urls[i].key, key) == 0)
			return 1;
	return 0;
}

/*
 * directory_*: the per-route modes and URLs, and a trial client per URL
 * (template, credentials file) so -n sees errors. A route checked by the
 * directory needs a URL: its own (directory_urls), or directory_url.
 */
static int load_directory(gwm_config *c, list_ctx *x)
{
	gw_dir_opts o;
	gw_directory *d;
	char e[512];
	size_t i;

	x->key = "directory_routes";
	if (gw_config_list_foreach(c->opt.directory_routes, add_route_mode, x) != 0)
		return -1;
	if (load_route_urls(c, x->err, x->errlen) != 0)
		return -1;
	gwm_config_dir_opts(c, &o);
	if (o.url == NULL && c->opt.directory_mode != GWM_MODE_CALLAHEAD) {
		key_err(c, "directory_url", x->err, x->errlen,
			"a directory mode is set but no directory_url");
		return -1;
	}
	for (i = 0; i < c->nroute_modes; i++) {
		if (gw_routes_lookup(c->routes, c->route_modes[i].key) == NULL)
			gw_log(GW_LOG_NOTICE, "config", "file=%s directory_routes: %s matches no route",
			       c->path, c->route_modes[i].key);
		if (c->route_modes[i].mode != GWM_MODE_CALLAHEAD && o.url == NULL &&
		    !has_own_url(c, c->route_modes[i].key)) {
			key_err(
			    c, "directory_url", x->err, x->errlen,
			    "a directory mode is set but no directory_url (nor a directory_urls line for %s)",
			    c->route_modes[i].key);
			return -1;
		}
	}
	for (i = 0; i < c->nroute_urls; i++) {
		o.url = c->route_urls[i].url;
		if ((d = gw_directory_new(&o, NULL, NULL, e, sizeof(e))) == NULL) {
			if (o.credentials_file != NULL && strstr(e, o.credentials_file) == e)
				key_err(c, "directory_credentials", x->err, x->errlen, "%s", e);
			else
				key_err(c, "directory_urls", x->err, x->errlen, "%s: %s",
					c->route_urls[i].key, e);
			return -1;
		}
		gw_directory_free(&d);
	}
	gwm_config_dir_opts(c, &o);
	if (o.url == NULL)
		return 0;
	if ((d = gw_directory_new(&o, NULL, NULL, e, sizeof(e))) == NULL) {
		key_err(c,
			strstr(e, "template") != NULL ? "directory_url"
			: strstr(e, "status") != NULL ? "directory_http_exists"
			: o.credentials_file != NULL && strstr(e, o.credentials_file) == e
			    ? "directory_credentials"
			    : "directory_url",
			x->err, x->errlen, "%s", e);
		return -1;
	}
	gw_directory_free(&d);
	return 0;
}

void gwm_config_dir_opts(const gwm_config *c, gw_dir_opts *o)
{
	const gwm_options *p = &c->opt;

	memset(o, 0, sizeof(*o));
#define NONEMPTY(s) ((s) != NULL && *(s) != '\0' ? (s) : NULL)
	o->url = NONEMPTY(p->directory_url);
	o->ca_file = NONEMPTY(p->directory_ca_file);
	o->credentials_file = NONEMPTY(p->directory_credentials);
	o->http_exists = NONEMPTY(p->directory_http_exists);
	o->http_unknown = NONEMPTY(p->directory_http_unknown);
	o->http_expect = NONEMPTY(p->directory_http_expect);
#undef NONEMPTY
	o->timeout_ms = (unsigned)p->directory_timeout;
	o->max_requests = (unsigned)p->directory_max_requests;
	o->positive_ttl_ms = (uint32_t)p->directory_positive_ttl;
	o->negative_ttl_ms = (uint32_t)p->directory_negative_ttl;
}

gwm_mode gwm_config_mode(const gwm_config *c, const gw_route *route)
{
	size_t i;

	for (i = 0; route != NULL && i < c->nroute_modes; i++)
		if (strcasecmp(c->route_modes[i].key, route->key) == 0)
			return c->route_modes[i].mode;
	return (gwm_mode)c->opt.directory_mode;
}

/* --- routes ---------------------------------------------------------------- */

int gwm_config_check_route(const gwm_config *c, const gw_route *route, char *err, size_t errlen)
{
	char e[512];

	if (c->nself == 0 || route == NULL || !route->has_proto)
		return 0;
	if (gw_route_check_loop(route, route->proto == GW_PROTO_LMTP ? 24 : 25, c->self, c->nself, e,
				sizeof(e)) != 0) {
		snprintf(err, errlen, "%s:%u: %s", c->opt.routes, route->line, e);
		return -1;
	}
	return 0;
}

/*
 * Check every route for loops. gw_routes has no iterator, so the keys are
 * read back from the file (the first word of each entry line) and looked up:
 * a key as written finds its own entry.
 */
static int check_routes(const gwm_config *c, char *err, size_t errlen)
{
	FILE *f;
	char buf[1100];
	int rc = 0;

	if (c->nself == 0)
		return 0;
	if ((f = fopen(c->opt.routes, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", c->opt.routes, strerror(errno));
		return -1;
	}
	while (rc == 0 && fgets(buf, sizeof(buf), f) != NULL) {
		size_t kl = strcspn(buf, " \t\r\n");
		if (buf[0] == '#' || kl == 0)
			continue;
		buf[kl] = '\0';
		rc = gwm_config_check_route(c, gw_routes_lookup(c->routes, buf), err, errlen);
	}
	fclose(f);
	return rc;
}

int gwm_config_check_shared_id(const char *id, char *err, size_t errlen)
{
	size_t n;

	if (id == NULL || *id == '\0')
		return 0;
	n = strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_");
	if (id[n] != '\0') {
		snprintf(err, errlen, "'%.80s': character %zu ('%c') is not one of A-Z a-z 0-9 . - _", id,
			 n + 1, (unsigned char)id[n] >= 0x20 && (unsigned char)id[n] < 0x7f ? id[n] : '?');
		return -1;
	}
	if (n > GWM_SHARED_ID_MAX) {
		snprintf(err, errlen, "'%.80s...': %zu characters, at most %d", id, n, GWM_SHARED_ID_MAX);
		return -1;
	}
	return 0;
}

/*
 * redis://[USER@]HOST[:PORT][/DB] (HOST may be [IPv6]) into c->redis_*; empty:
 * none. A password in the URL is refused: it would be in gw.conf and in
 * errors. 0 ok, -1 with err.
 */
static int parse_redis(const char *s, gwm_config *c, char *err, size_t errlen)
{
	const char *h, *end, *p, *at;
	char *e;
	long v;

	c->redis_host[0] = '\0';
	c->redis_user[0] = '\0';
	c->redis_port = 6379;
	c->redis_db = 0;
	if (s == NULL || *s == '\0')
		return 0;
	if (strncmp(s, "redis://", 8) != 0) {
		snprintf(err, errlen, "'%s': want redis://[USER@]HOST[:PORT][/DB]", s);
		return -1;
	}
	h = s + 8;
	if ((at = strchr(h, '@')) != NULL) {
		size_t n = (size_t)(at - h);
		if (memchr(h, ':', n) != NULL) {
			snprintf(err, errlen, "a password in the URL: put it in shared_state_password_file");
			return -1;
		}
		if (n == 0 || n >= sizeof(c->redis_user) || memchr(h, '/', n) != NULL) {
			snprintf(err, errlen, "'%s': bad user", s);
			return -1;
		}
		memcpy(c->redis_user, h, n);
		c->redis_user[n] = '\0';
		h = at + 1;
	}
	if (*h == '[') {
		if ((end = strchr(h, ']')) == NULL) {
			snprintf(err, errlen, "'%s': no ']' after an IPv6 address", s);
			return -1;
		}
		h++;
		p = end + 1;
	} else {
		end = h + strcspn(h, ":/");
		p = end;
	}
	if (end == h || (size_t)(end - h) >= sizeof(c->redis_host)) {
		snprintf(err, errlen, "'%s': bad host", s);
		return -1;
	}
	memcpy(c->redis_host, h, (size_t)(end - h));
	c->redis_host[end - h] = '\0';
	if (*p == ':') {
		errno = 0;
		v = strtol(p + 1, &e, 10);
		if (e == p + 1 || errno != 0 || v < 1 || v > 65535) {
			snprintf(err, errlen, "'%s': bad port", s);
			return -1;
		}
		c->redis_port = (int)v;
		p = e;
	}
	if (*p == '/') {
		errno = 0;
		v = strtol(p + 1, &e, 10);
		if (e == p + 1 || errno != 0 || v < 0 || v > 1000000 || *e != '\0') {
			snprintf(err, errlen, "'%s': bad database number", s);
			return -1;
		}
		c->redis_db = (int)v;
		p = e;
	}
	if (*p != '\0') {
		snprintf(err, errlen, "'%s': want redis://[USER@]HOST[:PORT][/DB]", s);
		return -1;
	}
	return 0;
}

/* The password file: one line, a regular file others cannot read. 0 ok (c->redis_pass), -1 with err. */
static int read_redis_password(gwm_config *c, const char *path, char *err, size_t errlen)
{
	char buf[sizeof(c->redis_pass) + 1];
	struct stat st;
	ssize_t n;
	size_t len;
	int fd, bad;

	if (path == NULL || *path == '\0')
		return 0;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: readable by group or others (mode %04o): want 0600 or stricter",
			 path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0 || (size_t)n >= sizeof(buf) - 1) {
		snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "too long");
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	buf[n] = '\0';
	len = strcspn(buf, "\r\n");
	/* Stopped short of a line end and of the end: a NUL inside the password. */
	bad = len == 0 || (len < (size_t)n && buf[len] == '\0');
	buf[len] = '\0';
	if (bad) {
		explicit_bzero(buf, sizeof(buf));
		snprintf(err, errlen, "%s: want the password on the first line", path);
		return -1;
	}
	memcpy(c->redis_pass, buf, strlen(buf) + 1);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* --- load -------------------------------------------------------------------- */

gwm_config *gwm_config_load(const char *path, char *err, size_t errlen)
{
	gwm_config *c = calloc(1, sizeof(*c));
	list_ctx x;
	const char *why;
	char e[256];

	if (c == NULL || (c->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		free(c);
		return NULL;
	}
	memset(&x, 0, sizeof(x));
	x.c = c;
	x.err = err;
	x.errlen = errlen;
	if (gw_config_load(gwm_option, &c->opt, path, err, errlen) != 0)
		goto fail;
	if ((why = socket_error(c->opt.socket)) != NULL) {
		key_err(c, "socket", err, errlen, "'%s': %s", c->opt.socket, why);
		goto fail;
	}
	if (parse_mode(c->opt.socket_mode, &c->socket_mode) != 0) {
		key_err(c, "socket_mode", err, errlen, "want an octal mode such as 0660");
		goto fail;
	}
	c->socket_gid = (gid_t)-1;
	if (c->opt.socket_group != NULL && *c->opt.socket_group != '\0') {
		const struct group *g = getgrnam(c->opt.socket_group);
		if (g == NULL) {
			key_err(c, "socket_group", err, errlen, "unknown group '%s'", c->opt.socket_group);
			goto fail;
		}
		c->socket_gid = g->gr_gid;
	}
	/* The option words map to the library's values by name, never by their position in the list. */
	if ((c->log_level = gw_log_level_parse(log_levels[c->opt.log_level])) < 0) {
		key_err(c, "log_level", err, errlen, "'%s' has no log level", log_levels[c->opt.log_level]);
		goto fail;
	}
	c->log_dest = strcasecmp(log_dests[c->opt.log], "stderr") == 0 ? GW_LOG_STDERR : GW_LOG_SYSLOG;
	if (gw_tls_policy_parse(tls_policies[c->opt.tls], &c->tls) != 0) {
		key_err(c, "tls", err, errlen, "'%s' has no TLS policy", tls_policies[c->opt.tls]);
		goto fail;
	}
	if (c->tls == GW_TLS_VERIFY && (c->opt.tls_ca_file == NULL || *c->opt.tls_ca_file == '\0'))
		gw_log(GW_LOG_NOTICE, "config",
		       "file=%s tls=verify without tls_ca_file: system trust anchors", path);
	x.key = "skip_networks";
	x.nets = &c->nets;
	x.nnets = &c->nnets;
	if (gw_config_list_foreach(c->opt.skip_networks, add_net, &x) != 0)
		goto fail;
	x.key = "skip_recipients";
	if (gw_config_list_foreach(c->opt.skip_recipients, add_skip_rcpt, &x) != 0)
		goto fail;
	x.key = "local_mailers";
	if (gw_config_list_foreach(c->opt.local_mailers, add_mailer, &x) != 0)
		goto fail;
	x.key = "self_addresses";
	if (gw_config_list_foreach(c->opt.self_addresses, add_self, &x) != 0)
		goto fail;
	if (gw_dns_check_servers(c->opt.dns_servers, e, sizeof(e)) != 0) {
		key_err(c, "dns_servers", err, errlen, "%s", e);
		goto fail;
	}
	if (c->opt.routes == NULL || *c->opt.routes == '\0') {
		key_err(c, "routes", err, errlen, "a route file is required");
		goto fail;
	}
	if (access(c->opt.routes, R_OK) != 0) {
		/* name the gw.conf line too: the path alone does not say which file set it */
		key_err(c, "routes", err, errlen, "%s: %s", c->opt.routes, strerror(errno));
		goto fail;
	}
	if ((c->routes = gw_routes_load(c->opt.routes, err, errlen)) == NULL)
		goto fail;
	if (check_routes(c, err, errlen) != 0)
		goto fail;
	if (load_prvs(c, &x) != 0)
		goto fail;
	if (parse_redis(c->opt.shared_state, c, e, sizeof(e)) != 0) {
		key_err(c, "shared_state", err, errlen, "%s", e);
		goto fail;
	}
	if (read_redis_password(c, c->opt.shared_state_password_file, e, sizeof(e)) != 0) {
		key_err(c, "shared_state_password_file", err, errlen, "%s", e);
		goto fail;
	}
	if (gwm_config_check_shared_id(c->opt.shared_state_id, e, sizeof(e)) != 0) {
		key_err(c, "shared_state_id", err, errlen, "%s", e);
		goto fail;
	}
	if (c->opt.shared_cache && (c->redis_host[0] == '\0' || !c->opt.flood_guard)) {
		key_err(c, "shared_cache", err, errlen, "needs shared_state and flood_guard = yes");
		goto fail;
	}
	if (load_directory(c, &x) != 0)
		goto fail;
	return c;
fail:
	gwm_config_free(&c);
	return NULL;
}

void gwm_config_free(gwm_config **cp)
{
	gwm_config *c;
	size_t i;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	explicit_bzero(c->redis_pass, sizeof(c->redis_pass));
	gw_config_free(gwm_option, &c->opt);
	gw_routes_free(&c->routes);
	free(c->nets);
	for (i = 0; i < c->nskip_rcpts; i++)
		free(c->skip_rcpts[i]);
	free(c->skip_rcpts);
	for (i = 0; i < c->nlocal_mailers; i++)
		free(c->local_mailers[i]);
	free(c->local_mailers);
	gwm_prvs_conf_clear(&c->prvs);
	free(c->prvs_nets);
	for (i = 0; i < c->nroute_modes; i++)
		free(c->route_modes[i].key);
	free(c->route_modes);
	for (i = 0; i < c->nroute_urls; i++) {
		free(c->route_urls[i].key);
		free(c->route_urls[i].url);
	}
	free(c->route_urls);
	free(c->path);
	free(c);
	*cp = NULL;
}

void gwm_config_ca_opts(const gwm_config *c, gw_ca_opts *o)
{
	const gwm_options *p = &c->opt;

	memset(o, 0, sizeof(*o));
	o->helo_name = p->helo_name;
	o->probe_sender = p->probe_sender;
	o->fallback_sender =
	    p->fallback_sender != NULL && *p->fallback_sender != '\0' ? p->fallback_sender : NULL;
	o->tls = c->tls;
	o->tls_ca_file = p->tls_ca_file != NULL && *p->tls_ca_file != '\0' ? p->tls_ca_file : NULL;
#define CA_COPY(key, field, ...) o->field = p->key;
	GW_CA_PARAMS(CA_COPY)
#undef CA_COPY
	o->use_mx = p->use_mx;
	o->catchall_check = p->catchall_check;
}

/* --- per-RCPT questions ------------------------------------------------------ */

static int net_match(const gwm_net *n, const unsigned char *a, int family)
{
	unsigned full = n->prefix / 8, rest = n->prefix % 8;

	if (n->family != family)
		return 0;
	if (memcmp(n->addr, a, full) != 0)
		return 0;
	return rest == 0 || ((n->addr[full] ^ a[full]) & (0xffu << (8 - rest)) & 0xffu) == 0;
}

/* Is sa in one of the n networks? */
static int nets_match(const gwm_net *nets, size_t n, const struct sockaddr *sa)
{
	unsigned char a[16];
	int family;
	size_t i;

	if (sa == NULL || n == 0)
		return 0;
	if (sa->sa_family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *v6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(v6)) {
			memcpy(a, v6->s6_addr + 12, 4);
			family = AF_INET;
		} else {
			memcpy(a, v6->s6_addr, 16);
			family = AF_INET6;
		}
	} else {
		return 0;
	}
	for (i = 0; i < n; i++)
		if (net_match(&nets[i], a, family))
			return 1;
	return 0;
}

int gwm_config_skip_client(const gwm_config *c, const struct sockaddr *sa)
{
	return nets_match(c->nets, c->nnets, sa);
}

int gwm_config_prvs_internal(const gwm_config *c, const struct sockaddr *sa)
{
	return nets_match(c->prvs_nets, c->nprvs_nets, sa);
}

int gwm_config_skip_rcpt(const gwm_config *c, const char *local, const char *domain)
{
	size_t i, ll = strlen(local);

	for (i = 0; i < c->nskip_rcpts; i++) {
		const char *s = c->skip_rcpts[i], *at = strchr(s, '@');
		size_t sl = (size_t)(at - s);
		if (sl > 0 && (sl != ll || strncasecmp(s, local, ll) != 0))
			continue;
		if (at[1] != '\0' && strcmp(at + 1, domain) != 0)
			continue;
		return 1;
	}
	return 0;
}

int gwm_config_local_mailer(const gwm_config *c, const char *mailer)
{
	size_t i;

	for (i = 0; mailer != NULL && i < c->nlocal_mailers; i++)
		if (strcasecmp(c->local_mailers[i], mailer) == 0)
			return 1;
	return 0;
}

/* --- snapshots ---------------------------------------------------------------- */

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static gwm_snapshot *current;
static atomic_uint generations;

/* The snapshot's directories: directory_url's, and one per directory_urls line. */
static int snapshot_dirs(gwm_snapshot *s, gw_cache *cache, const gw_clock *clock, char *e, size_t elen)
{
	const gwm_config *c = s->conf;
	gw_dir_opts o;
	size_t i;

	gwm_config_dir_opts(c, &o);
	if (o.url != NULL && (s->dir = gw_directory_new(&o, cache, clock, e, elen)) == NULL)
		return -1;
	if (c->nroute_urls == 0)
		return 0;
	if ((s->route_dirs = calloc(c->nroute_urls, sizeof(*s->route_dirs))) == NULL) {
		snprintf(e, elen, "out of memory");
		return -1;
	}
	for (i = 0; i < c->nroute_urls; i++) {
		o.url = c->route_urls[i].url;
		if ((s->route_dirs[i] = gw_directory_new(&o, cache, clock, e, elen)) == NULL)
			return -1;
	}
	return 0;
}

static void snapshot_free(gwm_snapshot *s)
{
	size_t i;

	gw_callahead_free(&s->ca);
	gw_directory_free(&s->dir);
	for (i = 0; s->route_dirs != NULL && i < s->conf->nroute_urls; i++)
		gw_directory_free(&s->route_dirs[i]);
	free(s->route_dirs);
	gwm_config_free(&s->conf);
	free(s);
}

gw_directory *gwm_snapshot_dir(const gwm_snapshot *s, const gw_route *route)
{
	long i = gwm_config_route_url(s->conf, route);

	return i >= 0 && s->route_dirs != NULL ? s->route_dirs[i] : s->dir;
}

gwm_snapshot *gwm_snapshot_new(gwm_config *conf, gw_cache *cache, const gw_clock *clock)
{
	gwm_snapshot *s = calloc(1, sizeof(*s));
	gw_ca_opts o;
	char e[512];
	int saved;

	if (s == NULL) {
		gwm_config_free(&conf);
		return NULL;
	}
	gwm_config_ca_opts(conf, &o);
	if ((s->ca = gw_callahead_new(&o, cache, clock)) == NULL) {
		saved = errno;
		gwm_config_free(&conf);
		free(s);
		errno = saved;
		return NULL;
	}
	s->conf = conf;
	if (conf->opt.shared_cache)
		gw_ca_set_verdict_hook(s->ca, gwm_cs_on_verdict, NULL);
	if (snapshot_dirs(s, cache, clock, e, sizeof(e)) != 0) {
		gw_log(GW_LOG_ERR, "config", "file=%s directory: %s", conf->path, e);
		snapshot_free(s);
		errno = EINVAL;
		return NULL;
	}
	/* Checked at load; process-wide, so the newest snapshot's servers serve every lookup. */
	if (gw_dns_configure(conf->opt.dns_servers, (unsigned)conf->opt.dns_timeout, NULL, 0) != 0)
		gw_log(GW_LOG_ERR, "config", "file=%s dns_servers refused; keeping the previous ones",
		       conf->path);
	s->conf = conf;
	s->generation = atomic_fetch_add(&generations, 1) + 1;
	atomic_init(&s->refs, 1);
	return s;
}

void gwm_snapshot_ref(gwm_snapshot *s)
{
	atomic_fetch_add(&s->refs, 1);
}

void gwm_snapshot_unref(gwm_snapshot **sp)
{
	gwm_snapshot *s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	*sp = NULL;
	if (atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	snapshot_free(s);
}

void gwm_current_set(gwm_snapshot *s)
{
	gwm_snapshot *old;

	if (s != NULL)
		gwm_snapshot_ref(s);
	pthread_mutex_lock(&current_lock);
	old = current;
	current = s;
	pthread_mutex_unlock(&current_lock);
	gwm_snapshot_unref(&old);
}

gwm_snapshot *gwm_current_get(void)
{
	gwm_snapshot *s;

	pthread_mutex_lock(&current_lock);
	if ((s = current) != NULL)
		gwm_snapshot_ref(s);
	pthread_mutex_unlock(&current_lock);
	return s;
}
