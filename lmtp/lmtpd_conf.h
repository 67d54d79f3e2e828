/*
 * lmtpd_conf.h - gw-lmtpd's configuration file (gw-lmtpd.conf(5)): the
 * option table, and what the table cannot check (listen addresses, socket
 * mode, source addresses, the route file), parsed once at load.
 *
 * Same conventions as gw.conf: "key = value", one table describing every
 * key, errors naming file:line (a value checked after the table names the
 * line of its key). Loading starts nothing, so -n uses it as it is.
 *
 * Does not defend against: a route file changed while it is read.
 */
#ifndef GWL_CONF_H
#define GWL_CONF_H

#include <stddef.h>
#include <sys/types.h>

#include "gw/config.h"
#include "gw/nexthop.h"
#include "gw/route.h"
#include "gw/domain_tls.h"

#define GWL_DEFAULT_CONFIG "/etc/gw/gw-lmtpd.conf"
#define GWL_LISTEN_MAX     8
#define GWL_BIND_MAX       16

typedef struct gwl_options {
	char *listen, *socket_mode, *control_socket, *metrics_listen, *milter_control, *pid_file, *user;
	int log, log_level;
	char *hostname, *helo_name;
	char *routes;
	int use_mx;
	char *dns_servers;
	long dns_timeout, smtp_port;
	char *smtp_bind_address;
	int tls;
	char *tls_ca_file, *tls_policy;
	long connect_timeout, reply_timeout, deadline, command_timeout;
	long max_sessions, max_rcpts, message_size_limit, spool_memory;
	char *spool_dir;
	long dest_concurrency, dest_idle, idle_time;
	long health_failures, health_window, health_retry;
} gwl_options;

typedef struct gwl_config {
	gwl_options opt;
	char *path;
	gw_nexthop listen[GWL_LISTEN_MAX];
	size_t nlisten;
	mode_t socket_mode;
	char *bind[GWL_BIND_MAX];
	size_t nbind;
	int log_level;             /* syslog priority */
	gw_routes *routes;         /* NULL when no route file is set */
	gw_domain_tls *tls_policy; /* NULL when no policy file is set */
} gwl_config;

extern const gw_option gwl_option[];

/* Load and check path. NULL with err "path:line: message". */
gwl_config *gwl_config_load(const char *path, char *err, size_t errlen);
void gwl_config_free(gwl_config **c);

#endif
