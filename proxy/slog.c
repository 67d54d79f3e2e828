/*
 * slog.c - the session log's lines: timestamp, session id, arrow, text.
 *
 * Lines for a file are gathered in one buffer shared by every session and
 * written with one write() per batch of whole lines: when a session is about
 * to talk to or wait for its client (gwp_slog_flush(), session.c), when the
 * buffer is full, at close, and otherwise by a writer thread at most
 * SLOG_LAG_MS after a line came (a session waiting on a slow destination
 * still shows its last command). One write() per line cost more than the
 * rest of relaying a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gw/log.h"
#include "gw/time.h"
#include "slog.h"

#define SLOG_BUF    (64 * 1024) /* lines held for one write() */
#define SLOG_LINE   1024        /* a line at most, its newline included */
#define SLOG_LAG_MS 100         /* the longest a line waits for the writer thread */

struct gwp_slog {
	int fd; /* -1: the daemon's log */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* the writer thread: lines came while it slept, or close */
	char *buf;
	size_t len;
	int writer;    /* 1: the writer thread runs; -1: it could not start (every line written at once) */
	int armed;     /* the writer waits out SLOG_LAG_MS already: no need to wake it */
	int stop;      /* close asked the writer to end */
	size_t writes; /* write() calls so far */
	pthread_t thread;
};

gwp_slog *gwp_slog_open(const char *path, char *err, size_t errlen)
{
	gwp_slog *l = calloc(1, sizeof(*l));

	if (l == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->fd = -1;
	if (path != NULL && path[0] != '\0') {
		if ((l->buf = malloc(SLOG_BUF)) == NULL) {
			snprintf(err, errlen, "out of memory");
			free(l);
			return NULL;
		}
		if ((l->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			free(l->buf);
			free(l);
			return NULL;
		}
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	return l;
}

/* Write out the buffered lines; l->lock held. A failed write drops them (a full disk). */
static void write_out(gwp_slog *l)
{
	size_t off = 0;

	while (off < l->len) {
		ssize_t n = write(l->fd, l->buf + off, l->len - off);
		l->writes++;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	l->len = 0;
}

/* The writer thread: lines wait at most SLOG_LAG_MS, whatever their sessions wait for. */
static void *writer(void *arg)
{
	gwp_slog *l = arg;

	pthread_mutex_lock(&l->lock);
	while (!l->stop) {
		if (l->len == 0) {
			pthread_cond_wait(&l->cond, &l->lock);
			continue;
		}
		/* a line waits: written within SLOG_LAG_MS (unless a session writes it first) */
		l->armed = 1;
		(void)gw_cond_wait_ms(&l->cond, &l->lock, SLOG_LAG_MS);
		l->armed = 0;
		if (!l->stop)
			write_out(l);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

void gwp_slog_flush(gwp_slog *l)
{
	if (l == NULL || l->fd < 0)
		return;
	pthread_mutex_lock(&l->lock);
	if (l->len > 0)
		write_out(l);
	pthread_mutex_unlock(&l->lock);
}

size_t gwp_slog_writes(gwp_slog *l)
{
	size_t n;

	pthread_mutex_lock(&l->lock);
	n = l->writes;
	pthread_mutex_unlock(&l->lock);
	return n;
}

void gwp_slog_close(gwp_slog **lp)
{
	gwp_slog *l = *lp;

	if (l == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	l->stop = 1;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
	if (l->writer == 1)
		pthread_join(l->thread, NULL);
	if (l->fd >= 0) {
		write_out(l);
		close(l->fd);
	}
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	free(l->buf);
	free(l);
	*lp = NULL;
}

/* Add one whole line to the buffer. */
static void append(gwp_slog *l, const char *line, size_t n)
{
	pthread_mutex_lock(&l->lock);
	if (l->len + n > SLOG_BUF)
		write_out(l);
	memcpy(l->buf + l->len, line, n);
	l->len += n;
	/* started with the first line, not at open: a process that forks after opening keeps no thread */
	if (l->writer == 0 && !l->stop)
		l->writer = pthread_create(&l->thread, NULL, writer, l) == 0 ? 1 : -1;
	if (l->writer != 1)
		write_out(l);
	else if (!l->armed)
		pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (at least 25 bytes); its length. The seconds' text is made once a
 * second. */
static size_t timestamp(char *out)
{
	static _Thread_local time_t last = (time_t)-1;
	static _Thread_local char text[24];
	struct timespec now;
	long ms;

	clock_gettime(CLOCK_REALTIME, &now);
	if (now.tv_sec != last) {
		struct tm tm;
		gmtime_r(&now.tv_sec, &tm);
		if (strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm) != 19)
			snprintf(text, sizeof(text), "0000-00-00T00:00:00");
		last = now.tv_sec;
	}
	memcpy(out, text, 19);
	ms = now.tv_nsec / 1000000L;
	out[19] = '.';
	out[20] = (char)('0' + ms / 100);
	out[21] = (char)('0' + ms / 10 % 10);
	out[22] = (char)('0' + ms % 10);
	out[23] = 'Z';
	out[24] = '\0';
	return 24;
}

/* v >= 0 in decimal at out (room for 20 digits); the digits' count. */
static size_t put_ulong(char *out, unsigned long v)
{
	char d[24];
	size_t n = 0, i;

	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	for (i = 0; i < n; i++)
		out[i] = d[n - 1 - i];
	return n;
}

/* "TIMESTAMP sid dir body[ [Nms]]" as one line: to the buffer, or to the daemon's log. */
static void emit(gwp_slog *l, const char *sid, const char *dir, const char *body, size_t blen, long ms)
{
	char line[SLOG_LINE], tail[32] = "";
	size_t n, sl = strlen(sid), dl = strlen(dir), tl = 0;

	if (l == NULL)
		return;
	if (ms >= 0) {
		memcpy(tail, " [", 2);
		tl = 2 + put_ulong(tail + 2, (unsigned long)ms);
		memcpy(tail + tl, "ms]", 4);
		tl += 3;
	}
	n = timestamp(line);
	if (l->fd < 0) {
		gw_log(GW_LOG_INFO, "s", "%s %s %s %.*s%s", line, sid, dir, (int)blen, body, tail);
		return;
	}
	if (n + 3 + sl + dl + blen + tl + 1 > sizeof(line)) { /* cut: the line still ends with its newline */
		snprintf(line + n, sizeof(line) - n, " %s %s %.*s%s", sid, dir, (int)blen, body, tail);
		n = sizeof(line) - 1;
	} else {
		line[n++] = ' ';
		memcpy(line + n, sid, sl);
		n += sl;
		line[n++] = ' ';
		memcpy(line + n, dir, dl);
		n += dl;
		line[n++] = ' ';
		memcpy(line + n, body, blen);
		n += blen;
		memcpy(line + n, tail, tl);
		n += tl;
	}
	line[n++] = '\n';
	append(l, line, n);
}

void gwp_slog_line(gwp_slog *l, const char *sid, const char *dir, const char *text, size_t len, long ms)
{
	char clean[GWP_SLOG_TEXT_MAX * 4 + 8];
	size_t cl;

	if (l == NULL)
		return;
	cl = gw_log_sanitize(clean, sizeof(clean), text, len, GWP_SLOG_TEXT_MAX);
	emit(l, sid, dir, clean, cl, ms);
}

void gwp_slog_reply(gwp_slog *l, const char *sid, const char *dir, const gw_reply *r, long ms)
{
	char first[GWP_SLOG_TEXT_MAX + 64];
	size_t flen = strcspn(r->text, "\n"), el = strnlen(r->enh, sizeof(r->enh)), n;

	if (l == NULL)
		return;
	if (flen > GWP_SLOG_TEXT_MAX)
		flen = GWP_SLOG_TEXT_MAX;
	/* "CODE[ ENH] first line[ (+N lines)]", by hand: one of these for nearly every reply */
	n = r->code >= 0 && r->code < 1000 ? put_ulong(first, (unsigned long)r->code) : 0;
	if (el > 0) {
		first[n++] = ' ';
		memcpy(first + n, r->enh, el);
		n += el;
	}
	first[n++] = ' ';
	memcpy(first + n, r->text, flen);
	n += flen;
	if (r->nlines > 1) {
		memcpy(first + n, " (+", 3);
		n += 3 + put_ulong(first + n + 3, r->nlines - 1);
		memcpy(first + n, " lines)", 7);
		n += 7;
	}
	gwp_slog_line(l, sid, dir, first, n, ms);
}

const char *gwp_slog_value(char *out, size_t outlen, const char *v)
{
	size_t i, n = 0;
	int bare = v[0] != '\0';

	for (i = 0; v[i] != '\0' && bare; i++)
		bare = v[i] > ' ' && v[i] < 0x7f && v[i] != '"' && v[i] != '\\';
	if (bare) {
		snprintf(out, outlen, "%s", v);
		return out;
	}
	if (outlen < 3) {
		if (outlen > 0)
			out[0] = '\0';
		return out;
	}
	out[n++] = '"';
	for (i = 0; v[i] != '\0' && n + 3 < outlen; i++) {
		if (v[i] == '"' || v[i] == '\\')
			out[n++] = '\\';
		out[n++] = v[i];
	}
	out[n++] = '"';
	out[n] = '\0';
	return out;
}

void gwp_slog_summary(gwp_slog *l, const char *sid, const char *fmt, ...)
{
	char body[900];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	emit(l, sid, "==", body, (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1, -1);
}
