/*
 * proxy_conf.h - gw-proxy's configuration file (gw-proxy.conf(5)): the
 * option table, and what the table cannot check (listen addresses, the
 * upstream, the DNS servers), parsed once at load.
 *
 * Same conventions as gw.conf and gw-lmtpd.conf: "key = value", one table
 * describing every key, errors naming file:line (a value checked after the
 * table names the line of its key). Loading starts nothing, so -n uses it as
 * it is.
 *
 * Does not defend against: a file changed while it is read.
 */
#ifndef GWP_CONF_H
#define GWP_CONF_H

#include <stddef.h>

#include "gw/config.h"
#include "gw/domain_tls.h"
#include "gw/nexthop.h"
#include "gw/server_tls.h"
#include "tenant_map.h"
#include "tls_map.h"

#define GWP_DEFAULT_CONFIG "/etc/gw/gw-proxy.conf"
#define GWP_LISTEN_MAX     8
#define GWP_POOL_MAX       64
#define GWP_WORDS_MAX      64

typedef struct gwp_options {
	char *listen, *redirect_listen, *upstream;
	char *control_socket, *pid_file, *user;
	int log, log_level;
	char *session_log;
	char *hostname, *helo_name;
	char *dns_servers;
	long dns_timeout, smtp_port;
	int tls;
	char *tls_ca_file, *tls_policy;
	char *tls_domain_policy;
	char *tls_cert_file, *tls_key_file;
	int tls_client_security; /* gwp_tls_in_level */
	long connect_timeout, reply_timeout, command_timeout;
	long max_sessions, max_rcpts, message_size_limit;
	char *pool, *tenant_map, *pool_blocklist_words;
	long pool_retire_time;
	long tarpit_delay, mark_time;
	long dribble_reads, dribble_time;
	char *throttle_words;
	long destination_concurrency, marked_concurrency;
	long tenant_rate_limit;
	char *state_file;
	long state_save_interval;
} gwp_options;

typedef struct gwp_config {
	gwp_options opt;
	char *path;
	gw_nexthop listen[GWP_LISTEN_MAX]; /* plain listeners */
	size_t nlisten;
	gw_nexthop redirect[GWP_LISTEN_MAX]; /* listeners for redirected connections */
	size_t nredirect;
	int has_upstream; /* plain listeners relay to upstream; else MX of the recipients' domain */
	gw_nexthop upstream;
	int log_level;             /* syslog priority */
	gwp_tls_map *tls_map;      /* NULL when no tls_policy file is set */
	gw_domain_tls *domain_tls; /* MX mode: level per recipient domain; NULL: tls for all */
	gw_srv_tls *tls_in;        /* the certificate offered to clients; NULL: no STARTTLS offered */
	char *pool[GWP_POOL_MAX];  /* numeric source addresses, in order of preference */
	size_t npool;
	gwp_tenant_map *tenants;    /* NULL when no tenant_map file is set */
	char *words[GWP_WORDS_MAX]; /* blocklist words */
	size_t nwords;
	char *twords[GWP_WORDS_MAX]; /* throttle words */
	size_t ntwords;
} gwp_config;

extern const gw_option gwp_option[];

/* Load and check path. NULL with err "path:line: message". */
gwp_config *gwp_config_load(const char *path, char *err, size_t errlen);
void gwp_config_free(gwp_config **c);
/* err = "path:line: key: msg" (the line of key in c's file, when it is there). */
void gwp_config_key_err(const gwp_config *c, const char *key, char *err, size_t errlen, const char *msg);

#endif
