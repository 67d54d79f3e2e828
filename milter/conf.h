/*
 * conf.h - gw-milter's configuration: the option table, the parsed
 * configuration, and reference-counted snapshots of it.
 *
 * gwm_option[] describes every key of gw.conf(5) once. gwm_config_load()
 * reads the file, then checks and parses what the table cannot (socket
 * syntax, socket mode, networks, self addresses, PRVS lists), loads the
 * route file and refuses routes that loop back to self_addresses, and loads
 * the PRVS key ring (a key file others may read is refused, naming the file);
 * every error names file:line. It starts no threads, so -n uses it as it is.
 *
 * A gwm_snapshot is a loaded configuration plus the call-ahead engine and
 * the directory client built from it. Each milter connection takes a reference at connect and drops it
 * at close; a reload builds a new snapshot and makes it current, and the old
 * one is freed when its last connection closes. The cache is not part of a
 * snapshot: the caller passes the same one to every engine, so reloads keep
 * what was learnt.
 *
 * Does not defend against: a route file changed while it is being read (the
 * reload sees whatever the read returned), or cache_entries changed by a
 * reload (the cache keeps the size it was created with).
 */
#ifndef GWM_CONF_H
#define GWM_CONF_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "gw/cache.h"
#include "gw/callahead.h"
#include "gw/config.h"
#include "gw/route.h"
#include "dir_check.h"
#include "gw/directory.h"
#include "prvs_filter.h"

#define GWM_DEFAULT_CONFIG "/etc/gw/gw.conf"
#define GWM_SELF_MAX       16
#define GWM_SHARED_ID_MAX  64 /* shared_state_id: characters at most */

/* Every key of gw.conf; see gwm_option[] for types and defaults. */
typedef struct gwm_options {
	char *socket, *socket_mode, *socket_group, *control_socket, *metrics_listen, *pid_file, *user;
	long milter_timeout;
	int log, log_level; /* indexes into their words; gwm_config has the values */
	char *routes;
	int use_mx;
	char *dns_servers;
	long dns_timeout;
	int use_rcpt_host;
	char *self_addresses;
	char *helo_name, *probe_sender, *fallback_sender;
	int tls; /* index into the option's words; gwm_config.tls has the policy */
	char *tls_ca_file;
	long connect_timeout, reply_timeout, deadline;
	long pool_max_idle, pool_max_uses, pool_max_size, max_probes;
	long positive_ttl, negative_ttl, confirm_window, reprobe_interval, cache_entries;
	int catchall_check;
	long catchall_ttl;
	int fail_open, reveal_internal;
	long unknown_limit, unknown_window;
	char *skip_networks, *skip_recipients;
	int skip_authenticated;
	char *local_mailers;
	char *prvs_keys, *prvs_sign_domains, *prvs_internal_networks;
	int prvs_verify, prvs_verify_mailer_daemon;
	char *prvs_exempt, *prvs_sign_exempt;
	/* bounce-flood guard (flood.h) */
	int flood_guard;
	char *flood_store;
	long flood_v4_prefix, flood_v6_prefix, flood_half_life, flood_threshold, flood_max_entries;
	long flood_window, flood_baseline_windows, flood_multiple;
	long flood_floor_bounce, flood_floor_prvs, flood_floor_unknown, flood_calm_windows;
	int flood_defer_all;
	long flood_client_probes;
	char *flood_hook_command, *flood_hook_url;
	long flood_hook_timeout, flood_hook_retries;
	char *shared_state, *shared_state_password_file;
	long shared_refresh;
	char *shared_state_id;
	int shared_cache;
	char *directory_url, *directory_urls;
	int directory_mode; /* index into gwm_mode_words: a gwm_mode */
	char *directory_routes;
	long directory_timeout, directory_max_requests, directory_positive_ttl, directory_negative_ttl;
	char *directory_ca_file, *directory_credentials;
	char *directory_http_exists, *directory_http_unknown, *directory_http_expect;
} gwm_options;

extern const gw_option gwm_option[];

/* A client network: address and prefix length, IPv4 stored as such. */
typedef struct gwm_net {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
} gwm_net;

/* A directory_routes entry: a route key as written in the route file, and its check mode. */
typedef struct gwm_route_mode {
	char *key;
	gwm_mode mode;
} gwm_route_mode;

/* A line of the directory_urls file: a route key and that route's own URL template. */
typedef struct gwm_route_url {
	char *key, *url;
} gwm_route_url;

typedef struct gwm_config {
	char *path;
	gwm_options opt;
	mode_t socket_mode;
	gid_t socket_gid;  /* socket_group, or (gid_t)-1 */
	int log_dest;      /* GW_LOG_STDERR or GW_LOG_SYSLOG, from opt.log by name */
	int log_level;     /* GW_LOG_*, from opt.log_level by name */
	gw_tls_policy tls; /* from opt.tls by name */
	gw_routes *routes;
	gwm_net *nets;
	size_t nnets;
	char **skip_rcpts; /* "local@", "@domain" or "local@domain", lower case */
	size_t nskip_rcpts;
	char **local_mailers;
	size_t nlocal_mailers;
	struct sockaddr_storage self[GWM_SELF_MAX];
	size_t nself;
	gwm_prvs_conf prvs; /* ring loaded at load time: a reload reads the key file again */
	gwm_net *prvs_nets; /* prvs_internal_networks */
	size_t nprvs_nets;
	/* shared_state = redis://[USER@]HOST[:PORT][/DB]; redis_host "" when not set */
	char redis_host[256];
	char redis_user[128];
	char redis_pass[512]; /* from shared_state_password_file, "" none; wiped when freed */
	int redis_port, redis_db;
	gwm_route_mode *route_modes; /* directory_routes */
	size_t nroute_modes;
	gwm_route_url *route_urls; /* the directory_urls file */
	size_t nroute_urls;
} gwm_config;

/* Load and check path. NULL with err "file:line: message" (or "file: message"). */
gwm_config *gwm_config_load(const char *path, char *err, size_t errlen);
void gwm_config_free(gwm_config **conf);
/* The engine options the configuration describes (pointers into conf). */
void gwm_config_ca_opts(const gwm_config *conf, gw_ca_opts *opts_r);

/* The directory options the configuration describes (pointers into conf); url NULL when none. */
void gwm_config_dir_opts(const gwm_config *conf, gw_dir_opts *opts_r);
/* The index in route_urls of the route's own URL, or -1 (directory_url applies). */
long gwm_config_route_url(const gwm_config *conf, const gw_route *route);
/* The check mode of a route: its directory_routes entry, else directory_mode. */
gwm_mode gwm_config_mode(const gwm_config *conf, const gw_route *route);

/* Is the client address (sockaddr from the MTA) in a skip network? */
int gwm_config_skip_client(const gwm_config *conf, const struct sockaddr *sa);
/* Is the client address in prvs_internal_networks (its mail gets signed)? */
int gwm_config_prvs_internal(const gwm_config *conf, const struct sockaddr *sa);
/* Is "local@domain" (domain lower case) on the skip list? */
int gwm_config_skip_rcpt(const gwm_config *conf, const char *local, const char *domain);
/* Is the {rcpt_mailer} value one of local_mailers? */
int gwm_config_local_mailer(const gwm_config *conf, const char *mailer);
/* Refuse a route that points at self_addresses. 0 ok; -1 with err. */
int gwm_config_check_route(const gwm_config *conf, const gw_route *route, char *err, size_t errlen);
/* A shared_state_id: empty, or 1 to GWM_SHARED_ID_MAX of A-Z a-z 0-9 . - _ (safe in a Redis key and a
 * log line). 0 ok; -1 with err. */
int gwm_config_check_shared_id(const char *id, char *err, size_t errlen);

typedef struct gwm_snapshot {
	gwm_config *conf;
	gw_callahead *ca;
	gw_directory *dir;         /* NULL without directory_url */
	gw_directory **route_dirs; /* one per conf->route_urls entry */
	unsigned generation;       /* 1 for the first, +1 per reload */
	/* private */
	atomic_int refs;
} gwm_snapshot;

/* A snapshot owning conf (taken even on failure) with an engine sharing cache. NULL on error (errno). */
gwm_snapshot *gwm_snapshot_new(gwm_config *conf, gw_cache *cache, const gw_clock *clock);
void gwm_snapshot_ref(gwm_snapshot *s);
/* Drop a reference; the last one frees the engine and the configuration. Sets *s to NULL. */
void gwm_snapshot_unref(gwm_snapshot **s);

/* The directory for route: its own (directory_urls), else directory_url's; NULL if none. */
gw_directory *gwm_snapshot_dir(const gwm_snapshot *s, const gw_route *route);

/* Make s current (the table takes its own reference; NULL drops the current one). */
void gwm_current_set(gwm_snapshot *s);
/* A new reference to the current snapshot, or NULL. */
gwm_snapshot *gwm_current_get(void);

#endif
