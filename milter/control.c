/*
 * control.c - the control socket of gw-milter (see control.h).
 *
 * The serving thread polls the listening socket and a pipe that
 * gwm_control_stop() writes to, so stopping never waits for a client. Each
 * client connection is read with SO_RCVTIMEO, line by line into a fixed
 * buffer. Commands read the current snapshot's engine; counters of the
 * callbacks come from gwm_callbacks_stats().
 *
 * Does not defend against: a flood of connections from local users (served
 * one by one, each bounded by the read timeout).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "callbacks.h"
#include "conf.h"
#include "control.h"
#include "flood.h"
#include "metrics.h"
#include "gw/addr.h"
#include "gw/log.h"

#define READ_TIMEOUT_S 5

static pthread_t thread;
static int running, listen_fd = -1, stop_pipe[2] = {-1, -1};
static char *sock_path;

static int fill_addr(const char *path, struct sockaddr_un *sun, char *err, size_t errlen)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (path == NULL || *path == '\0' || strlen(path) >= sizeof(sun->sun_path)) {
		snprintf(err, errlen, "%s: bad control socket path", path != NULL ? path : "");
		return -1;
	}
	memcpy(sun->sun_path, path, strlen(path) + 1);
	return 0;
}

int gwm_control_listen(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd;

	if (fill_addr(path, &sun, err, errlen) != 0)
		return -1;
	/* Replace a stale socket, never another kind of file. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		(void)unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "%s: socket: %s", path, strerror(errno));
		return -1;
	}
	old = umask(0177); /* created 0600: no window with wider permissions */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(fd, 8) != 0) {
		umask(old);
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	if (uid != (uid_t)-1 && chown(path, uid, gid) != 0) {
		snprintf(err, errlen, "%s: chown: %s", path, strerror(errno));
		close(fd);
		(void)unlink(path);
		return -1;
	}
	return fd;
}

/* Add one directory's counters to sum. */
static void dir_stats_add(gw_directory *d, gw_dir_stats *sum)
{
	gw_dir_stats x;
	size_t i;

	if (d == NULL)
		return;
	gw_dir_stats_get(d, &x);
	sum->lookups += x.lookups;
	sum->exists += x.exists;
	sum->unknown += x.unknown;
	sum->temporary += x.temporary;
	sum->from_cache += x.from_cache;
	sum->limited += x.limited;
	sum->bad_input += x.bad_input;
	sum->requests += x.requests;
	sum->latency_ms_total += x.latency_ms_total;
	if (x.latency_ms_max > sum->latency_ms_max)
		sum->latency_ms_max = x.latency_ms_max;
	for (i = 0; i < GW_DIR_LAT_BUCKETS; i++)
		sum->latency[i] += x.latency[i];
	sum->in_flight += x.in_flight;
}

/* Append the answers by kind and the request latencies of every directory of s (directory_url,
 * directory_urls). */
static void dir_stats(const gwm_snapshot *s, char *out, size_t outlen)
{
	gw_dir_stats ds;
	size_t l = strlen(out), i;

	memset(&ds, 0, sizeof(ds));
	dir_stats_add(s->dir, &ds);
	for (i = 0; s->route_dirs != NULL && i < s->conf->nroute_urls; i++)
		dir_stats_add(s->route_dirs[i], &ds);
	snprintf(out + l, outlen - l,
		 " dir_lookups=%llu dir_exists=%llu dir_unknown=%llu dir_temporary=%llu dir_cache_hits=%llu "
		 "dir_limited=%llu dir_bad_input=%llu dir_requests=%llu dir_in_flight=%u dir_ms_total=%llu "
		 "dir_ms_max=%llu dir_ms_le10=%llu dir_ms_le100=%llu dir_ms_le1000=%llu dir_ms_le5000=%llu "
		 "dir_ms_over5000=%llu",
		 (unsigned long long)ds.lookups, (unsigned long long)ds.exists,
		 (unsigned long long)ds.unknown, (unsigned long long)ds.temporary,
		 (unsigned long long)ds.from_cache, (unsigned long long)ds.limited,
		 (unsigned long long)ds.bad_input, (unsigned long long)ds.requests, ds.in_flight,
		 (unsigned long long)ds.latency_ms_total, (unsigned long long)ds.latency_ms_max,
		 (unsigned long long)ds.latency[0], (unsigned long long)ds.latency[1],
		 (unsigned long long)ds.latency[2], (unsigned long long)ds.latency[3],
		 (unsigned long long)ds.latency[4]);
}

static void answer_stats(char *out, size_t outlen)
{
	gwm_snapshot *s = gwm_current_get();
	gw_ca_stats st;
	gwm_cb_stats cb;

	if (s == NULL) {
		snprintf(out, outlen, "error no configuration loaded");
		return;
	}
	gw_ca_stats_get(s->ca, &st);
	gwm_callbacks_stats(&cb);
	snprintf(out, outlen,
		 "ok checks=%llu accepts=%llu rejects=%llu tempfails=%llu cache_hits=%llu pooled=%llu "
		 "new_sessions=%llu route_down=%llu limited=%llu cache_entries=%zu cache_max=%zu "
		 "cache_evictions=%llu routes_down=%zu pooled_idle=%zu rcpts=%llu skips=%llu bad_input=%llu "
		 "unknown_limited=%llu fail_open=%llu connections=%llu unknown_clients=%zu generation=%u",
		 (unsigned long long)st.checks, (unsigned long long)st.accepts,
		 (unsigned long long)st.rejects, (unsigned long long)st.tempfails,
		 (unsigned long long)st.from_cache, (unsigned long long)st.pooled,
		 (unsigned long long)st.new_sessions, (unsigned long long)st.route_down,
		 (unsigned long long)st.limited, st.cache.entries, st.cache.max_entries,
		 (unsigned long long)st.cache.evictions, st.routes_down, st.pooled_idle,
		 (unsigned long long)cb.rcpts, (unsigned long long)cb.skips, (unsigned long long)cb.bad_input,
		 (unsigned long long)cb.unknown_limited, (unsigned long long)cb.fail_open,
		 (unsigned long long)cb.connections, cb.ul_clients, s->generation);
	if (s->dir != NULL || s->route_dirs != NULL)
		dir_stats(s, out, outlen);
	gwm_snapshot_unref(&s);
}

static void answer_purge(const char *arg, char *out, size_t outlen)
{
	gwm_snapshot *s;
	gw_path p;
	const char *why = NULL;
	char rcpt[GW_PATH_MAX + 1];
	size_t n, i;

	if (strcasecmp(arg, "all") != 0 &&
	    gw_path_parse(arg, strlen(arg), GW_PATH_BARE | GW_PATH_SMTPUTF8, &p, &why) != 0) {
		snprintf(out, outlen, "error bad address: %s", why != NULL ? why : "syntax");
		return;
	}
	if ((s = gwm_current_get()) == NULL) {
		snprintf(out, outlen, "error no configuration loaded");
		return;
	}
	if (strcasecmp(arg, "all") == 0) {
		n = gw_ca_purge(s->ca, NULL);
	} else {
		/* The same normal form the callbacks check with, so the cache key matches. */
		gw_mailbox_format(&p.mbox, rcpt, sizeof(rcpt));
		n = gw_ca_purge(s->ca, rcpt);
		if (s->dir != NULL)
			n += (size_t)gw_dir_purge(s->dir, rcpt);
		for (i = 0; s->route_dirs != NULL && i < s->conf->nroute_urls; i++)
			n += (size_t)gw_dir_purge(s->route_dirs[i], rcpt);
	}
	gwm_snapshot_unref(&s);
	snprintf(out, outlen, "ok purged=%zu", n);
}

/* A domain name as gw-lmtpd sends it: letters, digits, '-', '.' (or UTF-8), lower case, at most 253. */
static int domain_ok(const char *d, size_t n)
{
	size_t i;

	if (n == 0 || n > 253 || d[0] == '.' || d[0] == '-')
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)d[i];
		if (!(ch >= 'a' && ch <= 'z') && !(ch >= '0' && ch <= '9') && ch != '-' && ch != '.' &&
		    ch < 0x80)
			return 0;
	}
	return 1;
}

/* "learn-domains D1 D2 ...": domains another daemon (gw-lmtpd) delivered to, credited as the domains
 * of signed outbound mail are. */
static void answer_learn(const char *arg, char *out, size_t outlen)
{
	char d[254];
	unsigned learnt = 0, refused = 0;
	gwm_flood_stats fl;

	gwm_flood_stats_get(&fl);
	while (*arg != '\0') {
		size_t n = strcspn(arg, " \t");
		if (domain_ok(arg, n)) {
			memcpy(d, arg, n);
			d[n] = '\0';
			if (fl.on) {
				gwm_flood_learn(NULL, d);
				learnt++;
			}
		} else {
			refused++;
		}
		arg += n;
		arg += strspn(arg, " \t");
	}
	snprintf(out, outlen, "ok learnt=%u refused=%u guard=%s", learnt, refused, fl.on ? "on" : "off");
}

/* "corr DOMAIN": is the domain a correspondent now. */
static void answer_corr(const char *arg, char *out, size_t outlen)
{
	gwm_snapshot *s = gwm_current_get();
	size_t n = strcspn(arg, " \t");

	if (!domain_ok(arg, n) || arg[n] != '\0')
		snprintf(out, outlen, "error corr wants one lower-case domain");
	else
		snprintf(out, outlen, "ok domain=%s correspondent=%s", arg,
			 s != NULL && gwm_flood_is_corr(s->conf, NULL, arg) ? "yes" : "no");
	gwm_snapshot_unref(&s);
}

void gwm_control_handle(const char *line, char *out, size_t outlen)
{
	const char *arg;
	size_t cl;

	line += strspn(line, " \t");
	cl = strcspn(line, " \t");
	arg = line + cl;
	arg += strspn(arg, " \t");
	if (cl == 5 && strncasecmp(line, "stats", 5) == 0 && *arg == '\0')
		answer_stats(out, outlen);
	else if (cl == 5 && strncasecmp(line, "purge", 5) == 0 && *arg != '\0')
		answer_purge(arg, out, outlen);
	else if (cl == 13 && strncasecmp(line, "learn-domains", 13) == 0 && *arg != '\0')
		answer_learn(arg, out, outlen);
	else if (cl == 4 && strncasecmp(line, "corr", 4) == 0 && *arg != '\0')
		answer_corr(arg, out, outlen);
	else if (cl == 4 && strncasecmp(line, "mode", 4) == 0)
		gwm_flood_control_mode(arg, out, outlen);
	else if (cl == 7 && strncasecmp(line, "metrics", 7) == 0 && *arg == '\0') {
		if (gwm_metrics_text(out, outlen) == 0)
			snprintf(out, outlen,
				 "error no configuration loaded, or metrics longer than %zu bytes", outlen);
		else if (out[0] != '\0' && out[strlen(out) - 1] == '\n')
			out[strlen(out) - 1] = '\0'; /* serve() ends the answer with its own newline */
	} else
		snprintf(out, outlen,
			 "error unknown command (stats, purge ADDRESS, purge all, mode [high|normal|auto], "
			 "metrics, learn-domains DOMAIN..., corr DOMAIN)");
}

/* Serve one client: lines in, answers out, until EOF, timeout or error. */
static void serve(int fd)
{
	static char out[GWM_CONTROL_ANSWER_MAX]; /* one serving thread */
	char line[GWM_CONTROL_LINE_MAX + 1];
	size_t len = 0;
	struct timeval tv = {READ_TIMEOUT_S, 0};
	ssize_t n;
	char *nl;

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	for (;;) {
		while ((nl = memchr(line, '\n', len)) != NULL) {
			size_t ll = (size_t)(nl - line), ol;
			*nl = '\0';
			if (ll > 0 && line[ll - 1] == '\r')
				line[ll - 1] = '\0';
			gwm_control_handle(line, out, sizeof(out) - 1);
			ol = strlen(out);
			out[ol++] = '\n';
			if (send(fd, out, ol, MSG_NOSIGNAL) != (ssize_t)ol)
				return;
			memmove(line, nl + 1, len - ll - 1);
			len -= ll + 1;
		}
		if (len >= GWM_CONTROL_LINE_MAX) {
			static const char too_long[] = "error line too long\n";
			(void)send(fd, too_long, sizeof(too_long) - 1, MSG_NOSIGNAL);
			return;
		}
		n = recv(fd, line + len, GWM_CONTROL_LINE_MAX - len, 0);
		if (n <= 0)
			return;
		if (memchr(line + len, '\0', (size_t)n) != NULL) {
			static const char nul[] = "error NUL in command\n";
			(void)send(fd, nul, sizeof(nul) - 1, MSG_NOSIGNAL);
			return;
		}
		len += (size_t)n;
	}
}

static void *run(void *arg)
{
	struct pollfd pf[2];
	int cfd;

	(void)arg;
	pf[0].fd = listen_fd;
	pf[0].events = POLLIN;
	pf[1].fd = stop_pipe[0];
	pf[1].events = POLLIN;
	for (;;) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			gw_log(GW_LOG_ERR, "control", "poll: %s", strerror(errno));
			return NULL;
		}
		if (pf[1].revents != 0)
			return NULL;
		if ((pf[0].revents & POLLIN) == 0)
			continue;
		if ((cfd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		serve(cfd);
		close(cfd);
	}
}

int gwm_control_start(int fd, const char *path)
{
	int e;

	if (running) {
		errno = EBUSY;
		return -1;
	}
	if (pipe2(stop_pipe, O_CLOEXEC) != 0)
		return -1;
	listen_fd = fd;
	sock_path = path != NULL ? strdup(path) : NULL;
	if ((e = pthread_create(&thread, NULL, run, NULL)) != 0) {
		close(stop_pipe[0]);
		close(stop_pipe[1]);
		stop_pipe[0] = stop_pipe[1] = -1;
		free(sock_path);
		sock_path = NULL;
		errno = e;
		return -1;
	}
	running = 1;
	return 0;
}

void gwm_control_stop(void)
{
	if (!running)
		return;
	(void)!write(stop_pipe[1], "x", 1);
	pthread_join(thread, NULL);
	close(stop_pipe[0]);
	close(stop_pipe[1]);
	stop_pipe[0] = stop_pipe[1] = -1;
	close(listen_fd);
	listen_fd = -1;
	if (sock_path != NULL)
		(void)unlink(sock_path);
	free(sock_path);
	sock_path = NULL;
	running = 0;
}

int gwm_control_client(const char *path, int argc, char **argv)
{
	struct sockaddr_un sun;
	struct timeval tv = {10, 0};
	static char ans[GWM_CONTROL_ANSWER_MAX + 1];
	char cmd[GWM_CONTROL_LINE_MAX + 2], err[256];
	size_t len = 0, alen = 0;
	ssize_t n;
	int fd, i;

	cmd[0] = '\0';
	for (i = 0; i < argc; i++) {
		int w = snprintf(cmd + len, sizeof(cmd) - len, "%s%s", i > 0 ? " " : "", argv[i]);
		if (w < 0 || (size_t)w >= sizeof(cmd) - len - 1) {
			fprintf(stderr, "gw-milter: command too long\n");
			return 1;
		}
		len += (size_t)w;
	}
	cmd[len++] = '\n';
	if (fill_addr(path, &sun, err, sizeof(err)) != 0) {
		fprintf(stderr, "gw-milter: %s\n", err);
		return 69;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		fprintf(stderr, "gw-milter: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 69;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, cmd, len, MSG_NOSIGNAL) != (ssize_t)len) {
		fprintf(stderr, "gw-milter: %s: %s\n", path, strerror(errno));
		close(fd);
		return 69;
	}
	(void)shutdown(fd, SHUT_WR);
	while (alen < sizeof(ans) - 1 && (n = recv(fd, ans + alen, sizeof(ans) - 1 - alen, 0)) > 0)
		alen += (size_t)n;
	close(fd);
	ans[alen] = '\0';
	if (alen == 0) {
		fprintf(stderr, "gw-milter: %s: no answer\n", path);
		return 69;
	}
	fputs(ans, stdout);
	if (ans[alen - 1] != '\n')
		fputc('\n', stdout);
	/* "ok ..." or, for metrics, Prometheus text (it starts with a comment). */
	return strncmp(ans, "ok", 2) == 0 || strncmp(ans, "# ", 2) == 0 ? 0 : 1;
}
