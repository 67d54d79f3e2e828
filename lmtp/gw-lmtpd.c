/*
 * gw-lmtpd - the queueless LMTP-to-SMTP relay on a gateway.
 *
 *   gw-lmtpd [-f] [-c FILE] [-u USER]   run (default FILE /etc/gw/gw-lmtpd.conf)
 *   gw-lmtpd -n [-c FILE]               check FILE and its route file; exit 0 or 78
 *   gw-lmtpd -d [-c FILE]               print every key with its effective value
 *   gw-lmtpd -C CONTROL_SOCKET stats    counters of the running daemon
 *   gw-lmtpd -C CONTROL_SOCKET metrics  the same in Prometheus text format
 *
 * Internal MTAs hand it mail over LMTP; each message is relayed to its
 * destinations while the LMTP client waits, and each recipient is answered
 * with the destination's own verdict (session.c, relay.c). Nothing is
 * queued: a message either went on or its sender was told it did not.
 *
 * Start-up: configuration, listeners and control socket bound as root,
 * daemonise (unless -f), pid file, drop to the user. The main thread then
 * accepts connections (a thread per session, at most max_sessions: beyond
 * that new connections wait in the listen queue) and serves signals through
 * a pipe: SIGHUP loads the configuration again (sessions keep the one they
 * started with; listeners and user need a restart), SIGTERM/SIGINT stop
 * accepting and wait for the sessions to end, at most the relay deadline
 * plus a little. Exit status: 0, 64 usage, 69 cannot listen, 71 start-up
 * failure, 77 cannot switch user, 78 configuration error.
 *
 * Does not defend against: a flood of connections from the internal
 * network beyond max_sessions (they wait; bind the listener to the
 * internal interface or a unix socket).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "gw/daemon.h"
#include "gw/dns.h"
#include "gw/log.h"
#include "gw/metrics_http.h"
#include "gw/time.h"
#include "learn.h"
#include "lmtpd_conf.h"
#include "lmtpd_metrics.h"
#include "session.h"

enum { EX_OK_ = 0, EX_USAGE_ = 64, EX_UNAVAILABLE_ = 69, EX_OSERR_ = 71, EX_NOPERM_ = 77, EX_CONFIG_ = 78 };

/* A configuration and the relay made from it; sessions hold a reference. */
typedef struct instance {
	gwl_config *conf;
	gwl_relay *relay;
	const char **bind;
	gwl_session_env env;
	atomic_uint refs;
} instance;

typedef struct session_arg {
	int fd;
	char client[INET6_ADDRSTRLEN + 16];
	instance *inst;
} session_arg;

static const char *conf_path = GWL_DEFAULT_CONFIG;
static const char *opt_user;
static int wake_pipe[2] = {-1, -1};
static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sessions_cond = PTHREAD_COND_INITIALIZER;
static instance *current;
static unsigned sessions;
static unsigned long sessions_total;
static gwl_relay_stats retired; /* counters of relays freed after a reload, so stats survive reloads */

static void usage(void)
{
	fprintf(stderr, "usage: gw-lmtpd [-f] [-n] [-d] [-c FILE] [-u USER]\n"
			"       gw-lmtpd -C CONTROL_SOCKET stats|metrics\n");
}

static void stats_add(gwl_relay_stats *to, const gwl_relay_stats *from)
{
	to->transactions += from->transactions;
	to->delivered += from->delivered;
	to->tempfail += from->tempfail;
	to->permfail += from->permfail;
	to->uncertain += from->uncertain;
	to->late += from->late;
	to->connections_reused += from->connections_reused;
	to->dane_verified += from->dane_verified;
	to->dane_failed += from->dane_failed;
}

static void instance_unref(instance *in)
{
	gwl_relay_stats st;

	if (in == NULL || atomic_fetch_sub(&in->refs, 1) != 1)
		return;
	gwl_relay_get_stats(in->relay, &st);
	pthread_mutex_lock(&current_lock);
	stats_add(&retired, &st);
	pthread_mutex_unlock(&current_lock);
	gwl_relay_free(&in->relay);
	gwl_config_free(&in->conf);
	free(in->bind);
	free(in);
}

/* An instance for c (which it owns from here on, even when it fails). */
static instance *instance_new(gwl_config *c)
{
	instance *in = calloc(1, sizeof(*in));
	gwl_relay_conf rc;
	size_t i;

	if (in == NULL || (in->bind = calloc(c->nbind ? c->nbind : 1, sizeof(*in->bind))) == NULL) {
		free(in);
		gwl_config_free(&c);
		return NULL;
	}
	in->conf = c;
	for (i = 0; i < c->nbind; i++)
		in->bind[i] = c->bind[i];
	memset(&rc, 0, sizeof(rc));
	rc.routes = c->routes;
	rc.tls_policy = c->tls_policy;
	rc.use_mx = c->opt.use_mx;
	rc.smtp_port = (unsigned)c->opt.smtp_port;
	rc.smtp.client.proto = GW_PROTO_SMTP;
	rc.smtp.client.helo_name = c->opt.helo_name;
	rc.smtp.client.connect_timeout_ms = (unsigned)c->opt.connect_timeout;
	rc.smtp.client.reply_timeout_ms = (unsigned)c->opt.reply_timeout;
	rc.smtp.client.deadline_ms = (unsigned)c->opt.deadline;
	/* A pooled connection idle a second or more may lead into a cut link: ask it first, briefly. */
	rc.smtp.idle_check_ms = 1000;
	rc.smtp.idle_check_timeout_ms =
	    c->opt.connect_timeout < 10000 ? (unsigned)c->opt.connect_timeout : 10000;
	rc.tls_level = (gw_tls_level)c->opt.tls;
	rc.smtp.client.tls = c->opt.tls <= GW_TLS_LEVEL_VERIFY ? (gw_tls_policy)c->opt.tls : GW_TLS_MAY;
	rc.smtp.client.tls_ca_file = c->opt.tls_ca_file;
	rc.bind_addresses = in->bind;
	rc.nbind = c->nbind;
	rc.dest_concurrency = (unsigned)c->opt.dest_concurrency;
	rc.dest_idle = (unsigned)c->opt.dest_idle;
	rc.idle_ms = (unsigned)c->opt.idle_time;
	rc.health_min_failures = (unsigned)c->opt.health_failures;
	rc.health_window_ms = (unsigned)c->opt.health_window;
	rc.health_retry_ms = (unsigned)c->opt.health_retry;
	/* Checked at load; process-wide, so the newest configuration's servers serve every lookup. */
	if (gw_dns_configure(c->opt.dns_servers, (unsigned)c->opt.dns_timeout, NULL, 0) != 0)
		gw_log(GW_LOG_ERR, "config", "file=%s dns_servers refused; keeping the previous ones",
		       c->path);
	if ((in->relay = gwl_relay_new(&rc)) == NULL) {
		free(in->bind);
		free(in);
		gwl_config_free(&c);
		return NULL;
	}
	in->env.conf = c;
	in->env.relay = in->relay;
	atomic_init(&in->refs, 1);
	return in;
}

static instance *current_get(void)
{
	instance *in;

	pthread_mutex_lock(&current_lock);
	in = current;
	if (in != NULL)
		atomic_fetch_add(&in->refs, 1);
	pthread_mutex_unlock(&current_lock);
	return in;
}

static void current_set(instance *in)
{
	instance *old;

	pthread_mutex_lock(&current_lock);
	old = current;
	current = in;
	pthread_mutex_unlock(&current_lock);
	instance_unref(old);
}

static gwl_config *load(char *err, size_t errlen)
{
	gwl_config *c = gwl_config_load(conf_path, err, errlen);

	if (c != NULL && opt_user != NULL) {
		char *u = strdup(opt_user);
		if (u == NULL) {
			snprintf(err, errlen, "out of memory");
			gwl_config_free(&c);
			return NULL;
		}
		free(c->opt.user);
		c->opt.user = u;
	}
	return c;
}

/* --- signals ---------------------------------------------------------------------------------- */

static void reload(void)
{
	char err[1024];
	gwl_config *c = load(err, sizeof(err));
	instance *in;

	if (c == NULL) {
		gw_log(GW_LOG_ERR, "reload", "status=error error=\"%s\" keeping=old", err);
		return;
	}
	gw_log_set_level(c->log_level);
	if ((in = instance_new(c)) == NULL) {
		gw_log(GW_LOG_ERR, "reload", "status=error error=\"out of memory\" keeping=old");
		return;
	}
	current_set(in);
	gw_log(GW_LOG_NOTICE, "reload", "status=ok routes=%zu",
	       in->conf->routes ? gw_routes_count(in->conf->routes) : 0);
}

/* --- sessions --------------------------------------------------------------------------------- */

static void *session_thread(void *arg)
{
	session_arg *a = arg;

	gwl_session_run(a->fd, a->client, &a->inst->env);
	instance_unref(a->inst);
	free(a);
	pthread_mutex_lock(&current_lock);
	sessions--;
	pthread_cond_broadcast(&sessions_cond);
	pthread_mutex_unlock(&current_lock);
	return NULL;
}

static void accept_one(int lfd)
{
	session_arg *a;
	pthread_attr_t attr;
	pthread_t t;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if ((a = calloc(1, sizeof(*a))) == NULL || (a->inst = current_get()) == NULL) {
		free(a);
		close(fd);
		return;
	}
	a->fd = fd;
	{
		/* replies are written whole (session.c); no reason to hold a small one back */
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	gw_daemon_peer_text(fd, a->client, sizeof(a->client));
	pthread_mutex_lock(&current_lock);
	sessions++;
	sessions_total++;
	pthread_mutex_unlock(&current_lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, session_thread, a) != 0) {
		gw_log(GW_LOG_ERR, "accept", "client=%s error=\"thread: %s\"", a->client, strerror(errno));
		close(fd);
		instance_unref(a->inst);
		free(a);
		pthread_mutex_lock(&current_lock);
		sessions--;
		pthread_mutex_unlock(&current_lock);
	}
	pthread_attr_destroy(&attr);
}

/* --- control socket --------------------------------------------------------------------------- */

/* The counters of "stats" and "metrics": those of the current relay plus those of relays retired
 * at reloads. */
static void counters_get(gwl_counters *c)
{
	instance *in = current_get();

	memset(c, 0, sizeof(*c));
	if (in != NULL) {
		gwl_relay_get_stats(in->relay, &c->relay);
		c->healthy = gwl_relay_healthy(in->relay);
	}
	pthread_mutex_lock(&current_lock);
	stats_add(&c->relay, &retired);
	c->sessions = sessions;
	c->sessions_total = sessions_total;
	pthread_mutex_unlock(&current_lock);
	instance_unref(in);
}

static size_t metrics_text(void *arg, char *out, size_t outlen)
{
	gwl_counters c;

	(void)arg;
	counters_get(&c);
	return gwl_metrics_text(&c, out, outlen);
}

static void control_serve(int cfd)
{
	char cmd[64], out[4096];
	struct pollfd p;
	ssize_t n;
	int fd = accept4(cfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	p.fd = fd;
	p.events = POLLIN;
	if (poll(&p, 1, 1000) == 1 && (n = read(fd, cmd, sizeof(cmd) - 1)) > 0) {
		gwl_counters c;
		cmd[n] = '\0';
		cmd[strcspn(cmd, "\r\n")] = '\0';
		if (strcmp(cmd, "stats") == 0) {
			counters_get(&c);
			snprintf(
			    out, sizeof(out),
			    "sessions=%u sessions_total=%lu transactions=%lu delivered=%lu tempfail=%lu "
			    "permfail=%lu uncertain=%lu late=%lu connections_reused=%lu dane_verified=%lu "
			    "dane_failed=%lu healthy=%s\n",
			    c.sessions, c.sessions_total, c.relay.transactions, c.relay.delivered,
			    c.relay.tempfail, c.relay.permfail, c.relay.uncertain, c.relay.late,
			    c.relay.connections_reused, c.relay.dane_verified, c.relay.dane_failed,
			    c.healthy ? "yes" : "no");
		} else if (strcmp(cmd, "metrics") == 0) {
			counters_get(&c);
			if (gwl_metrics_text(&c, out, sizeof(out)) == 0)
				snprintf(out, sizeof(out), "error: metrics do not fit\n");
		} else {
			snprintf(out, sizeof(out), "error: unknown command (try: stats, metrics)\n");
		}
		(void)!write(fd, out, strlen(out));
	}
	close(fd);
}

static int control_client(const char *path, int argc, char **argv)
{
	struct sockaddr_un un;
	char buf[1024];
	ssize_t n;
	int fd;

	if (argc != 1 || strlen(path) >= sizeof(un.sun_path)) {
		usage();
		return EX_USAGE_;
	}
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	memcpy(un.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&un, sizeof(un)) != 0) {
		fprintf(stderr, "gw-lmtpd: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return EX_UNAVAILABLE_;
	}
	snprintf(buf, sizeof(buf), "%s\n", argv[0]);
	(void)!write(fd, buf, strlen(buf));
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	close(fd);
	return EX_OK_;
}

/* --- main loop -------------------------------------------------------------------------------- */

static void main_loop(const int *lfd, size_t nl, int cfd, long max_sessions)
{
	struct pollfd p[GWL_LISTEN_MAX + 2];
	size_t i, n;

	for (;;) {
		int full;
		pthread_mutex_lock(&current_lock);
		full = sessions >= (unsigned)max_sessions;
		pthread_mutex_unlock(&current_lock);
		n = 0;
		p[n].fd = wake_pipe[0];
		p[n++].events = POLLIN;
		if (cfd >= 0) {
			p[n].fd = cfd;
			p[n++].events = POLLIN;
		}
		for (i = 0; i < nl; i++) {
			p[n].fd =
			    full ? -1 : lfd[i]; /* at the limit, new connections wait in the listen queue */
			p[n++].events = POLLIN;
		}
		if (poll(p, n, full ? 100 : -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (p[0].revents & POLLIN) {
			char b;
			if (read(wake_pipe[0], &b, 1) == 1) {
				if (b == 'T')
					return;
				gw_log(GW_LOG_NOTICE, "reload", "status=start config=%s", conf_path);
				reload();
			}
		}
		for (i = 1; i < n; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			if (p[i].fd == cfd)
				control_serve(cfd);
			else
				accept_one(p[i].fd);
		}
	}
}

static int run(gwl_config *c, int foreground)
{
	const char *user = c->opt.user != NULL && *c->opt.user != '\0' ? c->opt.user : NULL;
	char err[1024], *pid_file = NULL, *control = NULL, *ctl_path = NULL;
	int lfd[GWL_LISTEN_MAX], cfd = -1, mfd = -1, rc = EX_OSERR_;
	gw_metrics_http *mh = NULL;
	size_t nl = 0, i;
	uid_t uid;
	gid_t gid;
	long drain_ms, max_sessions = c->opt.max_sessions;
	instance *in;
	int64_t t0;

	gw_log_open("gw-lmtpd", c->opt.log == 1 ? GW_LOG_STDERR : GW_LOG_SYSLOG, c->log_level);
	if (gw_daemon_user(user, &uid, &gid, err, sizeof(err)) != 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"%s\"", err);
		rc = EX_NOPERM_;
		goto fail;
	}
	for (i = 0; i < c->nlisten; i++) {
		if ((lfd[nl] = gw_daemon_listen(&c->listen[i], 128, c->socket_mode, uid, gid, err,
						sizeof(err))) < 0) {
			gw_log(GW_LOG_ERR, "start", "error=\"cannot listen on %s\"", err);
			rc = EX_UNAVAILABLE_;
			goto fail;
		}
		nl++;
	}
	if (c->opt.control_socket != NULL && *c->opt.control_socket != '\0') {
		gw_nexthop h;
		const char *e;
		char spec[GW_UNIX_PATH_MAX + 8];
		snprintf(spec, sizeof(spec), "unix:%s", c->opt.control_socket);
		if (gw_nexthop_parse(spec, strlen(spec), &h, &e) != 0 ||
		    (cfd = gw_daemon_listen(&h, 8, 0600, uid, gid, err, sizeof(err))) < 0) {
			gw_log(GW_LOG_ERR, "start", "error=\"control socket %s\"", e != NULL ? e : err);
			rc = EX_UNAVAILABLE_;
			goto fail;
		}
		ctl_path = strdup(c->opt.control_socket);
	}
	if (c->opt.metrics_listen != NULL && *c->opt.metrics_listen != '\0' &&
	    (mfd = gw_metrics_http_listen(c->opt.metrics_listen, err, sizeof(err))) < 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"%s\"", err);
		rc = EX_UNAVAILABLE_;
		goto fail;
	}
	if (!foreground && daemon(0, c->opt.log == 1) != 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"daemon: %s\"", strerror(errno));
		goto fail;
	}
	if (c->opt.pid_file != NULL && *c->opt.pid_file != '\0')
		pid_file = strdup(c->opt.pid_file);
	if (gw_daemon_write_pid(pid_file, err, sizeof(err)) != 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"%s\"", err);
		goto fail;
	}
	if (gw_daemon_drop(user, uid, gid, err, sizeof(err)) != 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"%s\"", err);
		rc = EX_NOPERM_;
		goto fail;
	}
	if (pipe2(wake_pipe, O_CLOEXEC) != 0)
		goto fail;
	drain_ms = c->opt.deadline + 5000;
	if ((in = instance_new(c)) == NULL) {
		c = NULL;
		gw_log(GW_LOG_ERR, "start", "error=\"out of memory\"");
		goto fail;
	}
	c = NULL;
	current_set(in);
	if (mfd >= 0) {
		mh = gw_metrics_http_start(mfd, metrics_text, NULL, err, sizeof(err));
		mfd = -1;
		if (mh == NULL) {
			gw_log(GW_LOG_ERR, "start", "error=\"metrics listener: %s\"", err);
			current_set(NULL);
			goto fail;
		}
	}
	if (in->conf->opt.milter_control != NULL && *in->conf->opt.milter_control != '\0' &&
	    gwl_learn_start(in->conf->opt.milter_control) != 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"milter_control %s: %s\"", in->conf->opt.milter_control,
		       strerror(errno));
		gw_metrics_http_stop(&mh);
		current_set(NULL);
		goto fail;
	}
	gw_log(GW_LOG_NOTICE, "start", "status=ok listen=\"%s\" routes=%zu pid=%ld", in->conf->opt.listen,
	       in->conf->routes ? gw_routes_count(in->conf->routes) : 0, (long)getpid());
	gw_daemon_signals_to(wake_pipe[1]);
	main_loop(lfd, nl, cfd, max_sessions);
	gw_metrics_http_stop(&mh);
	gw_log(GW_LOG_NOTICE, "stop", "status=start sessions=%u", sessions);
	for (i = 0; i < nl; i++)
		close(lfd[i]);
	nl = 0;
	/* Sessions in a relay finish it (each within its deadline) and then see their client go. */
	t0 = gw_now_ms();
	pthread_mutex_lock(&current_lock);
	while (sessions > 0 && gw_now_ms() - t0 < drain_ms)
		gw_cond_wait_ms(&sessions_cond, &current_lock, 100);
	pthread_mutex_unlock(&current_lock);
	rc = EX_OK_;
	gwl_learn_stop(); /* after the drain: the last deliveries' domains are sent too */
	gw_log(GW_LOG_NOTICE, "stop", "status=ok open_sessions=%u", sessions);
	if (sessions > 0) { /* still holding the relay: leave it to exit() */
		if (pid_file != NULL)
			(void)unlink(pid_file);
		if (ctl_path != NULL)
			(void)unlink(ctl_path);
		_exit(rc);
	}
	current_set(NULL);
fail:
	gwl_learn_stop();
	gw_metrics_http_stop(&mh);
	for (i = 0; i < nl; i++)
		close(lfd[i]);
	if (cfd >= 0)
		close(cfd);
	if (mfd >= 0)
		close(mfd);
	if (ctl_path != NULL)
		(void)unlink(ctl_path);
	gwl_config_free(&c);
	if (pid_file != NULL)
		(void)unlink(pid_file);
	free(pid_file);
	free(control);
	free(ctl_path);
	return rc;
}

int main(int argc, char **argv)
{
	const char *control = NULL;
	int ch, check = 0, dump = 0, foreground = 0;
	char err[1024];
	gwl_config *c;

	while ((ch = getopt(argc, argv, "+c:fndu:C:h")) != -1) {
		switch (ch) {
		case 'd':
			dump = 1;
			break;
		case 'c':
			conf_path = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 'u':
			opt_user = optarg;
			break;
		case 'C':
			control = optarg;
			break;
		case 'h':
			usage();
			return EX_OK_;
		default:
			usage();
			return EX_USAGE_;
		}
	}
	if (control != NULL)
		return control_client(control, argc - optind, argv + optind);
	if (optind != argc) {
		usage();
		return EX_USAGE_;
	}
	if ((c = load(err, sizeof(err))) == NULL) {
		fprintf(stderr, "gw-lmtpd: %s\n", err);
		return EX_CONFIG_;
	}
	if (dump) {
		gw_config_dump(gwl_option, &c->opt, stdout);
		gwl_config_free(&c);
		return EX_OK_;
	}
	if (check) {
		printf("gw-lmtpd: %s: ok (%zu listeners, %zu routes)\n", conf_path, c->nlisten,
		       c->routes ? gw_routes_count(c->routes) : 0);
		gwl_config_free(&c);
		return EX_OK_;
	}
	return run(c, foreground);
}
