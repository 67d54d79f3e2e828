/*
 * main.c - gw-milter, the call-ahead milter daemon.
 *
 *   gw-milter [-f] [-c FILE] [-u USER] [-p SOCKET]   run (default FILE /etc/gw/gw.conf)
 *   gw-milter -n [-c FILE]                           check FILE, its route file and loops; exit 0 or 78
 *   gw-milter -C CONTROL_SOCKET COMMAND...           stats | purge ADDRESS | purge all | mode [WORD]
 *
 * Start-up order: configuration, milter socket and control socket bound as
 * root, daemonise (unless -f), pid file, drop to the user, then threads:
 * libmilter's (smfi_main runs in its own thread), the control thread and the
 * reload thread. Exit status: 0, 64 usage, 69 socket unavailable, 71 start-up
 * failure, 77 cannot switch user, 78 configuration error.
 *
 * Signals. libmilter's own signal thread sigwaits for SIGHUP, SIGTERM and
 * SIGINT and treats SIGHUP as "stop". So every thread but this one blocks
 * them, and this thread - the thread-group leader, which Linux prefers for a
 * process-directed signal it does not block - keeps them unblocked with a
 * handler that only writes a byte to a pipe. SIGHUP wakes the reload thread
 * (a new snapshot; on error the old one stays and the error is logged);
 * SIGTERM and SIGINT call smfi_stop(), then the daemon waits (bounded) for
 * open milter connections to finish before it frees what they use.
 *
 * Milter connections: milter_timeout goes to smfi_settimeout and to the idle
 * watch (idle.h), which closes idle connections itself because libmilter's
 * worker pool checks its timeout only every 600 s.
 *
 * Does not defend against: a signal sent to one thread with tgkill (it would
 * reach libmilter's handler), or a SIGHUP that arrives while this thread has
 * another signal pending and is off the CPU (the kernel may then wake
 * libmilter's sigwait thread: the handler's SA_NODEFER closes only the window
 * while the handler itself runs); a reload cannot move the milter socket, the
 * control socket, the user or the log destination (a restart can).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "callbacks.h"
#include "conf.h"
#include "control.h"
#include "flood.h"
#include "idle.h"
#include "metrics.h"
#include "smfi_ctx.h"
#include "gw/cache.h"
#include "gw/daemon.h"
#include "gw/log.h"
#include "gw/metrics_http.h"
#include "gw/time.h"

enum { EX_OK_ = 0, EX_USAGE_ = 64, EX_UNAVAILABLE_ = 69, EX_OSERR_ = 71, EX_NOPERM_ = 77, EX_CONFIG_ = 78 };

/* How long a stop waits for open milter connections before leaving them to exit(). */
#define DRAIN_MS 10000

static const char *conf_path = GWM_DEFAULT_CONFIG;
static const char *opt_socket, *opt_user; /* -p and -u: they win over the file, at reloads too */
static int wake_pipe[2] = {-1, -1};
static gw_cache *cache;

static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reload_cond = PTHREAD_COND_INITIALIZER;
static int reload_pending, reload_quit;

static void usage(void)
{
	fprintf(stderr, "usage: gw-milter [-f] [-n] [-c FILE] [-u USER] [-p SOCKET]\n"
			"       gw-milter -C CONTROL_SOCKET stats | purge ADDRESS | purge all | mode "
			"[high|normal|auto]\n");
}

static int replace(char **field, const char *value)
{
	char *v;

	if (value == NULL)
		return 0;
	if ((v = strdup(value)) == NULL)
		return -1;
	free(*field);
	*field = v;
	return 0;
}

/* Load path and apply the command-line overrides. NULL with err. */
static gwm_config *load(char *err, size_t errlen)
{
	gwm_config *c = gwm_config_load(conf_path, err, errlen);

	if (c != NULL && (replace(&c->opt.socket, opt_socket) != 0 || replace(&c->opt.user, opt_user) != 0)) {
		snprintf(err, errlen, "out of memory");
		gwm_config_free(&c);
	}
	return c;
}

/* --- signals -------------------------------------------------------------- */

static void signals_mask(int how)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(how, &set, NULL);
}

/* --- reload ------------------------------------------------------------------ */

static void reload_once(void)
{
	char err[1024];
	gwm_config *c = load(err, sizeof(err));
	gwm_snapshot *s, *old;
	size_t nroutes;

	if (c == NULL) {
		gw_log(GW_LOG_ERR, "reload", "status=error error=\"%s\" keeping=old", err);
		return;
	}
	old = gwm_current_get();
	if (old != NULL) {
		const gwm_options *a = &old->conf->opt, *b = &c->opt;
		if (strcmp(a->socket, b->socket) != 0 || strcmp(a->control_socket, b->control_socket) != 0 ||
		    strcmp(a->metrics_listen != NULL ? a->metrics_listen : "",
			   b->metrics_listen != NULL ? b->metrics_listen : "") != 0 ||
		    strcmp(a->user != NULL ? a->user : "", b->user != NULL ? b->user : "") != 0 ||
		    a->log != b->log || a->milter_timeout != b->milter_timeout)
			gw_log(GW_LOG_WARNING, "reload",
			       "socket, control_socket, metrics_listen, user, log and milter_timeout need a "
			       "restart");
#define S0(x) ((x) != NULL ? (x) : "")
		if (a->flood_guard != b->flood_guard || strcmp(S0(a->flood_store), S0(b->flood_store)) != 0 ||
		    strcmp(S0(a->shared_state), S0(b->shared_state)) != 0 ||
		    a->flood_max_entries != b->flood_max_entries || a->shared_refresh != b->shared_refresh ||
		    a->shared_cache != b->shared_cache)
			gw_log(
			    GW_LOG_WARNING, "reload",
			    "flood_guard, flood_store, flood_max_entries, shared_state, shared_refresh and "
			    "shared_cache need a restart");
#undef S0
	}
	gwm_snapshot_unref(&old);
	nroutes = gw_routes_count(c->routes);
	gw_log_set_level(c->log_level);
	if ((s = gwm_snapshot_new(c, cache, NULL)) == NULL) {
		gw_log(GW_LOG_ERR, "reload", "status=error error=\"engine: %s\" keeping=old",
		       strerror(errno));
		return;
	}
	gwm_current_set(s);
	gw_log(GW_LOG_NOTICE, "reload", "status=ok generation=%u routes=%zu", s->generation, nroutes);
	gwm_snapshot_unref(&s);
}

static void *reload_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&reload_lock);
	for (;;) {
		while (!reload_pending && !reload_quit)
			pthread_cond_wait(&reload_cond, &reload_lock);
		if (reload_quit)
			break;
		reload_pending = 0; /* several SIGHUPs during one reload make one more */
		pthread_mutex_unlock(&reload_lock);
		reload_once();
		pthread_mutex_lock(&reload_lock);
	}
	pthread_mutex_unlock(&reload_lock);
	return NULL;
}

static void reload_signal(int quit)
{
	pthread_mutex_lock(&reload_lock);
	if (quit)
		reload_quit = 1;
	else
		reload_pending = 1;
	pthread_cond_signal(&reload_cond);
	pthread_mutex_unlock(&reload_lock);
}

/* --- the milter ---------------------------------------------------------------- */

static int milter_status;

static void *milter_thread(void *arg)
{
	char b = 'E';

	(void)arg;
	milter_status = smfi_main();
	(void)!write(wake_pipe[1], &b, 1);
	return NULL;
}

/* Register, bind the milter socket (as root), and set its mode. 0 ok. */
static int open_milter(const gwm_config *c, uid_t uid, gid_t gid)
{
	static struct smfiDesc desc;
	static char conn[GW_UNIX_PATH_MAX + 64];
	const char *path = NULL;
	mode_t old_mask;
	int ok, timeout_s;

	gwm_callbacks_desc(&desc);
	snprintf(conn, sizeof(conn), "%s", c->opt.socket);
	if (smfi_register(desc) != MI_SUCCESS || smfi_setconn(conn) != MI_SUCCESS) {
		gw_log(GW_LOG_ERR, "start", "error=\"libmilter refused the registration or socket %s\"",
		       conn);
		return -1;
	}
	/* libmilter's idle timeout (its default is 7210 s): a silent peer's connection is closed. */
	timeout_s = (int)((c->opt.milter_timeout + 999) / 1000);
	gwm_ctx_init(timeout_s, &desc, c->opt.socket);
	if (smfi_settimeout(timeout_s) != MI_SUCCESS) {
		gw_log(GW_LOG_ERR, "start", "error=\"libmilter refused milter_timeout %d s\"", timeout_s);
		return -1;
	}
	/*
	 * bind() makes a unix socket with the umask's mode: no one else may
	 * connect in the moment between bind and the chmod below.
	 */
	old_mask = umask(0177);
	ok = smfi_opensocket(1) == MI_SUCCESS;
	umask(old_mask);
	if (!ok) {
		gw_log(GW_LOG_ERR, "start", "error=\"cannot listen on %s\"", conn);
		return -1;
	}
	if (strncmp(conn, "unix:", 5) == 0 || strncmp(conn, "local:", 6) == 0)
		path = strchr(conn, ':') + 1;
	if (c->socket_gid != (gid_t)-1)
		gid = c->socket_gid;
	if (path != NULL) {
		if (chmod(path, c->socket_mode) != 0 ||
		    ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid) != 0)) {
			gw_log(GW_LOG_ERR, "start", "error=\"%s: %s\"", path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Wait for the stop: serve SIGHUP until SIGTERM/SIGINT or the end of smfi_main. */
static void main_loop(void)
{
	char b;
	int stopping = 0;

	for (;;) {
		ssize_t n = read(wake_pipe[0], &b, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || b == 'E')
			return;
		if (b == 'H' && !stopping) {
			gw_log(GW_LOG_NOTICE, "reload", "status=start config=%s", conf_path);
			reload_signal(0);
		} else if (b == 'T' && !stopping) {
			gw_log(GW_LOG_NOTICE, "stop", "status=start");
			stopping = 1;
			smfi_stop();
		}
	}
}

static size_t metrics_text(void *arg, char *out, size_t outlen)
{
	(void)arg;
	return gwm_metrics_text(out, outlen);
}

static int run(gwm_config *c, int foreground)
{
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	const char *user = c->opt.user != NULL && *c->opt.user != '\0' ? c->opt.user : NULL;
	char err[512], *pid_file = NULL, *control = NULL;
	pthread_t mt, rt;
	gwm_snapshot *s;
	int64_t t0;
	int cfd = -1, mfd = -1, rc = EX_OSERR_;
	gw_metrics_http *mh = NULL;

	gw_log_open("gw-milter", c->log_dest, c->log_level);
	if (gw_daemon_user(user, &uid, &gid, err, sizeof(err)) != 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"%s\"", err);
		rc = EX_NOPERM_;
		goto fail;
	}
	rc = EX_UNAVAILABLE_;
	if (open_milter(c, uid, gid) != 0)
		goto fail;
	if (c->opt.control_socket != NULL && *c->opt.control_socket != '\0') {
		if ((cfd = gwm_control_listen(c->opt.control_socket, uid, gid, err, sizeof(err))) < 0) {
			gw_log(GW_LOG_ERR, "start", "error=\"control socket %s\"", err);
			goto fail;
		}
		control = strdup(c->opt.control_socket);
	}
	if (c->opt.metrics_listen != NULL && *c->opt.metrics_listen != '\0' &&
	    (mfd = gw_metrics_http_listen(c->opt.metrics_listen, err, sizeof(err))) < 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"%s\"", err);
		goto fail;
	}
	rc = EX_OSERR_;
	if (!foreground && daemon(0, c->log_dest == GW_LOG_STDERR) != 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"daemon: %s\"", strerror(errno));
		goto fail;
	}
	if (c->opt.pid_file != NULL && *c->opt.pid_file != '\0')
		pid_file = strdup(c->opt.pid_file);
	if (gw_daemon_write_pid(pid_file, err, sizeof(err)) != 0 ||
	    gw_daemon_drop(user, uid, gid, err, sizeof(err)) != 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"%s\"", err);
		goto fail;
	}
	if (pipe2(wake_pipe, O_CLOEXEC) != 0)
		goto fail;
	signals_mask(SIG_BLOCK); /* every thread made from here on inherits the block */
	if ((cache = gw_cache_new((size_t)c->opt.cache_entries, NULL)) == NULL ||
	    gwm_callbacks_init(NULL) != 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"%s\"", strerror(errno));
		goto fail;
	}
	s = gwm_snapshot_new(c, cache, NULL); /* owns c from here on, even when it fails */
	c = NULL;
	if (s == NULL) {
		gw_log(GW_LOG_ERR, "start", "error=\"engine: %s\"", strerror(errno));
		goto fail;
	}
	gwm_current_set(s);
	if (gwm_flood_start(s->conf, NULL, NULL, err, sizeof(err)) != 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"%s\"", err);
		gwm_snapshot_unref(&s);
		goto fail;
	}
	if (gwm_idle_start(s->conf->opt.milter_timeout) != 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"idle thread: %s\"", strerror(errno));
		gwm_snapshot_unref(&s);
		goto fail;
	}
	gw_log(GW_LOG_NOTICE, "start", "status=ok socket=%s routes=%zu pid=%ld", s->conf->opt.socket,
	       gw_routes_count(s->conf->routes), (long)getpid());
	gwm_snapshot_unref(&s);
	if (cfd >= 0) {
		if (gwm_control_start(cfd, control) != 0) {
			gw_log(GW_LOG_ERR, "start", "error=\"control thread: %s\"", strerror(errno));
			goto fail;
		}
		cfd = -1;
	}
	if (mfd >= 0) {
		mh = gw_metrics_http_start(mfd, metrics_text, NULL, err, sizeof(err));
		mfd = -1;
		if (mh == NULL) {
			gw_log(GW_LOG_ERR, "start", "error=\"metrics listener: %s\"", err);
			goto fail;
		}
	}
	if (pthread_create(&rt, NULL, reload_thread, NULL) != 0 ||
	    pthread_create(&mt, NULL, milter_thread, NULL) != 0) {
		gw_log(GW_LOG_ERR, "start", "error=\"threads: %s\"", strerror(errno));
		_exit(EX_OSERR_); /* a half-started set of threads: nothing sensible to unwind */
	}
	gw_daemon_signals_to(wake_pipe[1]);
	signals_mask(SIG_UNBLOCK);
	main_loop();
	signals_mask(SIG_BLOCK);
	pthread_join(mt, NULL);
	gwm_idle_stop();
	reload_signal(1);
	pthread_join(rt, NULL);
	gwm_control_stop();
	gw_metrics_http_stop(&mh);
	gwm_flood_stop(); /* what was learnt is written before the exit, whatever the sessions do */
	/* libmilter does not wait for its session threads: they hold snapshots, so wait for them. */
	t0 = gw_now_ms();
	while (gwm_callbacks_open() > 0 && gw_now_ms() - t0 < DRAIN_MS)
		usleep(20000);
	rc = milter_status == MI_SUCCESS ? EX_OK_ : EX_OSERR_;
	gw_log(GW_LOG_NOTICE, "stop", "status=%s open_connections=%llu", rc == EX_OK_ ? "ok" : "error",
	       (unsigned long long)gwm_callbacks_open());
	if (gwm_callbacks_open() > 0) {
		/* Sessions still hold the engine: leave it to exit(). */
		if (pid_file != NULL)
			(void)unlink(pid_file);
		_exit(rc);
	}
fail:
	gwm_idle_stop();
	gwm_control_stop();
	gw_metrics_http_stop(&mh);
	gwm_flood_free();
	if (cfd >= 0)
		close(cfd);
	if (mfd >= 0)
		close(mfd);
	gwm_current_set(NULL);
	gwm_callbacks_deinit();
	gw_cache_free(&cache);
	gwm_config_free(&c);
	if (pid_file != NULL)
		(void)unlink(pid_file);
	free(pid_file);
	free(control);
	return rc;
}

int main(int argc, char **argv)
{
	const char *control = NULL;
	int ch, check = 0, foreground = 0;
	char err[1024];
	gwm_config *c;

	/* '+': stop at the first word that is not an option (the -C command). */
	while ((ch = getopt(argc, argv, "+c:fnu:p:C:h")) != -1) {
		switch (ch) {
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
		case 'p':
			opt_socket = optarg;
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
	if (control != NULL) {
		if (optind >= argc) {
			usage();
			return EX_USAGE_;
		}
		return gwm_control_client(control, argc - optind, argv + optind);
	}
	if (optind != argc) {
		usage();
		return EX_USAGE_;
	}
	if ((c = load(err, sizeof(err))) == NULL) {
		fprintf(stderr, "gw-milter: %s\n", err);
		return EX_CONFIG_;
	}
	if (check) {
		printf("gw-milter: %s: ok (%zu routes)\n", conf_path, gw_routes_count(c->routes));
		gwm_config_free(&c);
		return EX_OK_;
	}
	/* The snapshot owns c from here on (run passes it to gwm_snapshot_new). */
	return run(c, foreground);
}
