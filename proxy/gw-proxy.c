/*
 * gw-proxy - a transparent, queueless outbound SMTP proxy.
 *
 *   gw-proxy [-f] [-c FILE] [-u USER]   run (default FILE /etc/gw/gw-proxy.conf)
 *   gw-proxy -n [-c FILE]               check FILE; exit 0 or 78
 *   gw-proxy -d [-c FILE]               print every key with its effective value
 *   gw-proxy -C CONTROL_SOCKET stats    counters of the running daemon
 *   gw-proxy -C CONTROL_SOCKET retired  pool addresses out of use, per destination
 *   gw-proxy -C CONTROL_SOCKET marked   destinations marked as tarpit or throttle
 *   gw-proxy -C CONTROL_SOCKET destinations  sessions per destination, its limit, refusals
 *   gw-proxy -C CONTROL_SOCKET tenants  messages per tenant, rate, refusals
 *
 * Tenant MTAs send through it: connections the kernel redirected to a
 * redirect_listen port go to their original destination, connections on a
 * plain listen port to the configured upstream (or the MX of the recipients'
 * domain). Each session is relayed command by command and every reply the
 * client gets is the destination's (relay.c); nothing is queued here.
 *
 * Start-up: configuration, listeners and control socket bound as root,
 * daemonise (unless -f), pid file, drop to the user, load state_file
 * (state_file.c: retired pool addresses and destination marks). The main
 * thread then accepts connections (a thread per session, at most
 * max_sessions: beyond that new connections wait in the listen queue; the
 * descriptor limit is raised to what max_sessions needs, or fewer sessions
 * are let in) and serves signals through a pipe: SIGHUP loads the
 * configuration again and reopens the session log (sessions keep the one
 * they started with; listeners, user, max_sessions and state_file need a
 * restart), SIGTERM/SIGINT stop accepting and wait for the sessions to end,
 * at most reply_timeout plus a little, then save state_file a last time.
 * Exit status: 0, 64 usage, 69 cannot listen, 71 start-up failure, 77
 * cannot switch user, 78 configuration error.
 *
 * Does not defend against: more tenants' sessions than max_sessions threads
 * (they wait in the listen queue), nor one destination holding all of them
 * (no limit per destination); see gw-proxy(8) BUGS.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gw/daemon.h"
#include "gw/dns.h"
#include "gw/log.h"
#include "gw/time.h"
#include "proxy_conf.h"
#include "origdst.h"
#include "session.h"
#include "state_file.h"

enum { EX_OK_ = 0, EX_USAGE_ = 64, EX_UNAVAILABLE_ = 69, EX_OSERR_ = 71, EX_NOPERM_ = 77, EX_CONFIG_ = 78 };

/* A configuration and its session log; sessions hold a reference. */
typedef struct instance {
	gwp_config *conf;
	gwp_slog *slog;
	gwp_env env;
	atomic_uint refs;
} instance;

typedef struct listener {
	int fd;
	int redirect; /* 1: redirect_listen, 0: listen */
	unsigned port;
} listener;

typedef struct session_arg {
	int fd;
	int redirect;
	unsigned port;
	char client[INET6_ADDRSTRLEN + 16];
	instance *inst;
} session_arg;

static const char *conf_path = GWP_DEFAULT_CONFIG;
static const char *opt_user;
static int wake_pipe[2] = {-1, -1};
static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sessions_cond = PTHREAD_COND_INITIALIZER;
static instance *current;
static unsigned sessions;
static unsigned session_limit; /* max_sessions, or fewer when the descriptors do not allow it */
static gwp_stats stats;        /* process-wide: survives reloads */
static gwp_pool *pool;         /* likewise: retired addresses outlive a reload */
static gwp_watch *watch;       /* and the marks on destinations */
static gwp_dlimit *dlimit;     /* sessions per destination */
static gwp_rate *rate;         /* messages per tenant */
static gwp_state *state;       /* pool and watch across restarts; NULL: state_file empty */

static void usage(void)
{
	fprintf(stderr, "usage: gw-proxy [-f] [-n] [-d] [-c FILE] [-u USER]\n"
			"       gw-proxy -C CONTROL_SOCKET stats|retired|marked|destinations|tenants\n");
}

static void instance_unref(instance *in)
{
	if (in == NULL || atomic_fetch_sub(&in->refs, 1) != 1)
		return;
	gwp_slog_close(&in->slog);
	gwp_config_free(&in->conf);
	free(in);
}

/* An instance for c (which it owns from here on, even when it fails). NULL with err. */
static instance *instance_new(gwp_config *c, char *err, size_t errlen)
{
	instance *in = calloc(1, sizeof(*in));

	if (in == NULL) {
		snprintf(err, errlen, "out of memory");
		gwp_config_free(&c);
		return NULL;
	}
	if ((in->slog = gwp_slog_open(c->opt.session_log, err, errlen)) == NULL) {
		gwp_config_free(&c);
		free(in);
		return NULL;
	}
	in->conf = c;
	/* Checked at load; process-wide, so the newest configuration's servers serve every lookup. */
	if (gw_dns_configure(c->opt.dns_servers, (unsigned)c->opt.dns_timeout, NULL, 0) != 0)
		gw_log(GW_LOG_ERR, "config", "file=%s dns_servers refused; keeping the previous ones",
		       c->path);
	in->env.conf = c;
	in->env.slog = in->slog;
	in->env.stats = &stats;
	in->env.pool = pool;
	in->env.watch = watch;
	in->env.dlimit = dlimit;
	in->env.rate = rate;
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

static gwp_config *load(char *err, size_t errlen)
{
	gwp_config *c = gwp_config_load(conf_path, err, errlen);

	if (c != NULL && opt_user != NULL) {
		char *u = strdup(opt_user);
		if (u == NULL) {
			snprintf(err, errlen, "out of memory");
			gwp_config_free(&c);
			return NULL;
		}
		free(c->opt.user);
		c->opt.user = u;
	}
	return c;
}

static void reload(void)
{
	char err[1024];
	gwp_config *c = load(err, sizeof(err));
	instance *in;

	if (c == NULL) {
		gw_log(GW_LOG_ERR, "reload", "status=error error=\"%s\" keeping=old", err);
		return;
	}
	gw_log_set_level(c->log_level);
	if ((in = instance_new(c, err, sizeof(err))) == NULL) {
		gw_log(GW_LOG_ERR, "reload", "status=error error=\"%s\" keeping=old", err);
		return;
	}
	current_set(in);
	gw_log(GW_LOG_NOTICE, "reload", "status=ok");
}

/* --- sessions --------------------------------------------------------------------------------- */

static void *session_thread(void *arg)
{
	session_arg *a = arg;
	const gwp_config *c = a->inst->conf;

	if (a->redirect) {
		gw_nexthop hop;
		char err[256];
		int rc = gwp_origdst(a->fd, a->port, &hop, err, sizeof(err));
		if (rc == 1) {
			gwp_session_run(a->fd, a->client, &a->inst->env, &hop, NULL);
		} else {
			atomic_fetch_add(&stats.refused_not_redirected, 1);
			gw_log(GW_LOG_NOTICE, "refuse", "client=%s reason=\"%s\"", a->client,
			       rc == 0 ? "not redirected" : err);
			gwp_session_run(a->fd, a->client, &a->inst->env, NULL,
					rc == 0 ? "not a redirected connection: no destination"
						: "no destination");
		}
	} else {
		gwp_session_run(a->fd, a->client, &a->inst->env, c->has_upstream ? &c->upstream : NULL, NULL);
	}
	instance_unref(a->inst);
	free(a);
	pthread_mutex_lock(&current_lock);
	/* at the limit the main loop does not watch the listeners: tell it a place is free */
	if (sessions-- == session_limit)
		(void)!write(wake_pipe[1], "S", 1);
	pthread_cond_broadcast(&sessions_cond);
	pthread_mutex_unlock(&current_lock);
	return NULL;
}

/* Accept a connection and start its thread. -1 when accept() is out of descriptors or memory. */
static int accept_one(const listener *l)
{
	session_arg *a;
	pthread_attr_t attr;
	pthread_t t;
	int one = 1, fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM ? -1 : 0;
	if ((a = calloc(1, sizeof(*a))) == NULL || (a->inst = current_get()) == NULL) {
		free(a);
		close(fd);
		return 0;
	}
	a->fd = fd;
	a->redirect = l->redirect;
	a->port = l->port;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* replies leave whole */
	gw_daemon_peer_text(fd, a->client, sizeof(a->client));
	pthread_mutex_lock(&current_lock);
	sessions++;
	pthread_mutex_unlock(&current_lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024); /* sessions keep their buffers on the heap */
	if ((errno = pthread_create(&t, &attr, session_thread, a)) != 0) {
		static const char busy[] = "421 4.3.2 too many sessions; try again later\r\n";
		gw_log(GW_LOG_ERR, "accept", "client=%s error=\"thread: %s\"", a->client, strerror(errno));
		(void)!send(fd, busy, sizeof(busy) - 1,
			    MSG_DONTWAIT | MSG_NOSIGNAL); /* its queue keeps the mail */
		close(fd);
		instance_unref(a->inst);
		free(a);
		pthread_mutex_lock(&current_lock);
		sessions--;
		pthread_mutex_unlock(&current_lock);
	}
	pthread_attr_destroy(&attr);
	return 0;
}

/* --- control socket --------------------------------------------------------------------------- */

static void control_serve(int cfd)
{
	char cmd[64], out[8192];
	struct pollfd p;
	ssize_t n;
	int fd = accept4(cfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	p.fd = fd;
	p.events = POLLIN;
	if (poll(&p, 1, 1000) == 1 && (n = read(fd, cmd, sizeof(cmd) - 1)) > 0) {
		cmd[n] = '\0';
		cmd[strcspn(cmd, "\r\n")] = '\0';
		if (strcmp(cmd, "stats") == 0) {
			unsigned now;
			pthread_mutex_lock(&current_lock);
			now = sessions;
			pthread_mutex_unlock(&current_lock);
			snprintf(
			    out, sizeof(out),
			    "sessions=%u sessions_total=%lu refused_not_redirected=%lu upstream_failures=%lu "
			    "messages=%lu messages_refused=%lu rcpts_accepted=%lu rcpts_refused=%lu "
			    "bytes=%lu pool_retired=%lu pool_all_retired=%lu pool_deferred=%lu "
			    "pool_reconnected=%lu tarpit_marks=%lu "
			    "throttle_marks=%lu dest_limited=%lu rate_limited=%lu dribble_marks=%lu "
			    "client_gone=%lu\n",
			    now, atomic_load(&stats.sessions_total),
			    atomic_load(&stats.refused_not_redirected), atomic_load(&stats.upstream_failures),
			    atomic_load(&stats.messages), atomic_load(&stats.messages_refused),
			    atomic_load(&stats.rcpts_accepted), atomic_load(&stats.rcpts_refused),
			    atomic_load(&stats.bytes), atomic_load(&stats.pool_retired),
			    atomic_load(&stats.pool_all_retired), atomic_load(&stats.pool_deferred),
			    atomic_load(&stats.pool_reconnected), atomic_load(&stats.tarpit_marks),
			    atomic_load(&stats.throttle_marks), atomic_load(&stats.dest_limited),
			    atomic_load(&stats.rate_limited), atomic_load(&stats.dribble_marks),
			    atomic_load(&stats.client_gone));
		} else if (strcmp(cmd, "retired") == 0) {
			size_t k = gwp_pool_list(pool, out, sizeof(out) - 16);
			size_t l = strlen(out);
			snprintf(out + l, sizeof(out) - l, "retired=%zu\n", k);
		} else if (strcmp(cmd, "marked") == 0) {
			size_t k = gwp_watch_list(watch, out, sizeof(out) - 16);
			size_t l = strlen(out);
			snprintf(out + l, sizeof(out) - l, "marked=%zu\n", k);
		} else if (strcmp(cmd, "destinations") == 0) {
			size_t k = gwp_dlimit_list(dlimit, out, sizeof(out) - 24);
			size_t l = strlen(out);
			snprintf(out + l, sizeof(out) - l, "destinations=%zu\n", k);
		} else if (strcmp(cmd, "tenants") == 0) {
			size_t k = gwp_rate_list(rate, out, sizeof(out) - 24);
			size_t l = strlen(out);
			snprintf(out + l, sizeof(out) - l, "tenants=%zu\n", k);
		} else {
			snprintf(
			    out, sizeof(out),
			    "error: unknown command (try: stats, retired, marked, destinations, tenants)\n");
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
		fprintf(stderr, "gw-proxy: %s: %s\n", path, strerror(errno));
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

static void main_loop(const listener *l, size_t nl, int cfd)
{
	struct pollfd p[2 * GWP_LISTEN_MAX + 2];
	const listener *which[2 * GWP_LISTEN_MAX + 2];
	int64_t pause_until = 0, logged = 0;
	size_t i, n;

	for (;;) {
		int full, paused = gw_now_ms() < pause_until;
		pthread_mutex_lock(&current_lock);
		full = sessions >= session_limit;
		pthread_mutex_unlock(&current_lock);
		n = 0;
		p[n].fd = wake_pipe[0];
		p[n++].events = POLLIN;
		if (cfd >= 0) {
			which[n] = NULL;
			p[n].fd = cfd;
			p[n++].events = POLLIN;
		}
		for (i = 0; i < nl; i++) {
			which[n] = &l[i];
			/* at the limit (a session's end writes to the pipe) or out of descriptors, new
			 * connections wait in the listen queue */
			p[n].fd = full || paused ? -1 : l[i].fd;
			p[n++].events = POLLIN;
		}
		if (poll(p, n, paused ? (int)(pause_until - gw_now_ms()) + 1 : -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (p[0].revents & POLLIN) {
			char b[64];
			ssize_t k, got = read(wake_pipe[0], b, sizeof(b));
			for (k = 0; k < got; k++) {
				if (b[k] == 'T')
					return;
				if (b[k] == 'H') {
					gw_log(GW_LOG_NOTICE, "reload", "status=start config=%s", conf_path);
					reload();
				}
			}
		}
		for (i = 1; i < n; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			if (p[i].fd == cfd) {
				control_serve(cfd);
			} else if (accept_one(which[i]) != 0) {
				/* the connection stays queued; trying again at once would spin */
				int e = errno;
				int64_t now = gw_now_ms();
				pause_until = now + 100;
				if (now - logged >= 10000) { /* once in 10 s */
					unsigned open;
					pthread_mutex_lock(&current_lock);
					open = sessions;
					pthread_mutex_unlock(&current_lock);
					gw_log(GW_LOG_ERR, "accept", "sessions=%u error=\"%s\" paused=100ms",
					       open, strerror(e));
					logged = now;
				}
			}
		}
	}
}

/*
 * Every session holds two descriptors (client and destination): raise the
 * soft RLIMIT_NOFILE, and as root the hard one, to what max_sessions needs.
 * Where the limit stays lower, fewer sessions are let in (logged), so the
 * others wait in the listen queue instead of failing at accept() or connect().
 */
static unsigned nofile_sessions(long max_sessions)
{
	const rlim_t spare = 64; /* listeners, control socket, logs, DNS, the pipe */
	rlim_t need = (rlim_t)max_sessions * 2 + spare;
	struct rlimit rl;
	long fit;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return (unsigned)max_sessions;
	if (rl.rlim_cur < need) {
		struct rlimit want = rl;
		want.rlim_cur = need;
		if (want.rlim_max != RLIM_INFINITY && want.rlim_max < need)
			want.rlim_max = need; /* root only */
		if (setrlimit(RLIMIT_NOFILE, &want) != 0 && rl.rlim_cur < rl.rlim_max) {
			want.rlim_max = rl.rlim_max;
			want.rlim_cur = rl.rlim_max;
			(void)setrlimit(RLIMIT_NOFILE, &want);
		}
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur >= need)
		return (unsigned)max_sessions;
	fit = rl.rlim_cur > spare + 2 ? (long)((rl.rlim_cur - spare) / 2) : 1;
	gw_log(GW_LOG_WARNING, "start",
	       "max_sessions=%ld needs %lu descriptors, RLIMIT_NOFILE allows %lu: at most %ld sessions "
	       "(raise LimitNOFILE)",
	       max_sessions, (unsigned long)need, (unsigned long)rl.rlim_cur, fit);
	return (unsigned)fit;
}

static int run(gwp_config *c, int foreground)
{
	const char *user = c->opt.user != NULL && *c->opt.user != '\0' ? c->opt.user : NULL;
	char err[1024], *pid_file = NULL, *ctl_path = NULL;
	listener l[2 * GWP_LISTEN_MAX];
	int cfd = -1, rc = EX_OSERR_;
	size_t nl = 0, i;
	uid_t uid;
	gid_t gid;
	long drain_ms;
	instance *in;
	int64_t t0;

	gw_log_open("gw-proxy", c->opt.log == 1 ? GW_LOG_STDERR : GW_LOG_SYSLOG, c->log_level);
	if (gw_daemon_user(user, &uid, &gid, err, sizeof(err)) != 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"%s\"", err);
		rc = EX_NOPERM_;
		goto fail;
	}
	for (i = 0; i < c->nlisten + c->nredirect; i++) {
		int redirect = i >= c->nlisten;
		const gw_nexthop *h = redirect ? &c->redirect[i - c->nlisten] : &c->listen[i];
		if ((l[nl].fd = gw_daemon_listen(h, 128, 0660, uid, gid, err, sizeof(err))) < 0) {
			gw_log(GW_LOG_ERR, "start", "error=\"cannot listen on %s\"", err);
			rc = EX_UNAVAILABLE_;
			goto fail;
		}
		l[nl].redirect = redirect;
		l[nl].port = h->port;
		nl++;
	}
	if (c->opt.control_socket != NULL && *c->opt.control_socket != '\0') {
		gw_nexthop h;
		const char *e = NULL;
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
	session_limit =
	    nofile_sessions(c->opt.max_sessions); /* before dropping root: it may raise the hard limit */
	if (gw_daemon_drop(user, uid, gid, err, sizeof(err)) != 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"%s\"", err);
		rc = EX_NOPERM_;
		goto fail;
	}
	/* non-blocking writes: a full pipe already wakes the main loop; never block a signal handler or a
	 * session */
	if (pipe2(wake_pipe, O_CLOEXEC) != 0 || fcntl(wake_pipe[1], F_SETFL, O_NONBLOCK) != 0)
		goto fail;
	drain_ms = c->opt.reply_timeout + 5000;
	if ((pool = gwp_pool_new(NULL)) == NULL || (watch = gwp_watch_new(NULL)) == NULL ||
	    (dlimit = gwp_dlimit_new()) == NULL || (rate = gwp_rate_new(NULL)) == NULL) {
		gw_log(GW_LOG_ERR, "start", "error=\"out of memory\"");
		goto fail;
	}
	/* as the user: the file is its own */
	if (c->opt.state_file != NULL && *c->opt.state_file != '\0') {
		if ((state = gwp_state_new(c->opt.state_file, pool, watch, NULL)) == NULL) {
			gw_log(GW_LOG_ERR, "start", "error=\"out of memory\"");
			goto fail;
		}
		gwp_state_caps(state, c->opt.pool_retire_time, c->opt.mark_time);
		(void)gwp_state_load(state); /* a bad file is logged and set aside: the start goes on */
		if (gwp_state_start(state, c->opt.state_save_interval) != 0)
			gw_log(GW_LOG_ERR, "start",
			       "error=\"state_file: no saving thread; saved at stop only\"");
	}
	if ((in = instance_new(c, err, sizeof(err))) == NULL) {
		c = NULL;
		gw_log(GW_LOG_ERR, "start", "error=\"%s\"", err);
		rc = EX_CONFIG_;
		goto fail;
	}
	c = NULL;
	current_set(in);
	gw_log(GW_LOG_NOTICE, "start", "status=ok listen=\"%s\" redirect_listen=\"%s\" upstream=%s pid=%ld",
	       in->conf->opt.listen ? in->conf->opt.listen : "",
	       in->conf->opt.redirect_listen ? in->conf->opt.redirect_listen : "",
	       in->conf->has_upstream ? in->conf->opt.upstream : "mx", (long)getpid());
	gw_daemon_signals_to(wake_pipe[1]);
	main_loop(l, nl, cfd);
	gw_log(GW_LOG_NOTICE, "stop", "status=start sessions=%u", sessions);
	for (i = 0; i < nl; i++)
		close(l[i].fd);
	nl = 0;
	t0 = gw_now_ms();
	pthread_mutex_lock(&current_lock);
	while (sessions > 0 && gw_now_ms() - t0 < drain_ms)
		gw_cond_wait_ms(&sessions_cond, &current_lock, 100);
	pthread_mutex_unlock(&current_lock);
	rc = EX_OK_;
	gwp_state_free(&state); /* the last save, sessions still open or not */
	gw_log(GW_LOG_NOTICE, "stop", "status=ok open_sessions=%u", sessions);
	if (sessions > 0) { /* still relaying: leave the rest to exit() */
		instance *cur = current_get();
		if (cur != NULL) /* the session log lines of the open sessions so far */
			gwp_slog_flush(cur->slog);
		instance_unref(cur);
		if (pid_file != NULL)
			(void)unlink(pid_file);
		if (ctl_path != NULL)
			(void)unlink(ctl_path);
		_exit(rc);
	}
	current_set(NULL);
fail:
	for (i = 0; i < nl; i++)
		close(l[i].fd);
	if (cfd >= 0)
		close(cfd);
	if (ctl_path != NULL)
		(void)unlink(ctl_path);
	gwp_config_free(&c);
	if (pid_file != NULL)
		(void)unlink(pid_file);
	free(pid_file);
	gwp_state_free(&state);
	gwp_pool_free(&pool);
	gwp_watch_free(&watch);
	gwp_dlimit_free(&dlimit);
	gwp_rate_free(&rate);
	free(ctl_path);
	return rc;
}

int main(int argc, char **argv)
{
	const char *control = NULL;
	int ch, check = 0, dump = 0, foreground = 0;
	char err[1024];
	gwp_config *c;

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
		fprintf(stderr, "gw-proxy: %s\n", err);
		return EX_CONFIG_;
	}
	if (dump) {
		gw_config_dump(gwp_option, &c->opt, stdout);
		gwp_config_free(&c);
		return EX_OK_;
	}
	if (check) {
		printf("gw-proxy: %s: ok (%zu listeners, %zu redirect listeners, upstream %s)\n", conf_path,
		       c->nlisten, c->nredirect, c->has_upstream ? c->opt.upstream : "by MX");
		gwp_config_free(&c);
		return EX_OK_;
	}
	return run(c, foreground);
}
