/*
 * slog.c - the session log's lines: timestamp, session id, arrow, text.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gw/log.h"
#include "slog.h"

struct gwp_slog {
	int fd; /* -1: the daemon's log */
};

gwp_slog *gwp_slog_open(const char *path, char *err, size_t errlen)
{
	gwp_slog *l = calloc(1, sizeof(*l));

	if (l == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->fd = -1;
	if (path != NULL && path[0] != '\0' &&
	    (l->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(l);
		return NULL;
	}
	return l;
}

void gwp_slog_close(gwp_slog **lp)
{
	if (*lp == NULL)
		return;
	if ((*lp)->fd >= 0)
		close((*lp)->fd);
	free(*lp);
	*lp = NULL;
}

static void emit(gwp_slog *l, const char *sid, const char *dir, const char *body)
{
	char line[1024], ts[40];
	struct timespec now;
	struct tm tm;
	int n;

	if (l == NULL)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	if (l->fd < 0) {
		gw_log(GW_LOG_INFO, "s", "%s.%03ldZ %s %s %s", ts, now.tv_nsec / 1000000L, sid, dir, body);
		return;
	}
	n = snprintf(line, sizeof(line), "%s.%03ldZ %s %s %s\n", ts, now.tv_nsec / 1000000L, sid, dir, body);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	(void)!write(l->fd, line, (size_t)n);
}

void gwp_slog_line(gwp_slog *l, const char *sid, const char *dir, const char *text, size_t len, long ms)
{
	char clean[GWP_SLOG_TEXT_MAX * 4 + 8], body[sizeof(clean) + 32];

	gw_log_sanitize(clean, sizeof(clean), text, len, GWP_SLOG_TEXT_MAX);
	if (ms >= 0)
		snprintf(body, sizeof(body), "%s [%ldms]", clean, ms);
	else
		snprintf(body, sizeof(body), "%s", clean);
	emit(l, sid, dir, body);
}

void gwp_slog_reply(gwp_slog *l, const char *sid, const char *dir, const gw_reply *r, long ms)
{
	char first[GWP_SLOG_TEXT_MAX + 64];
	size_t flen = strcspn(r->text, "\n");
	int n;

	n = snprintf(first, sizeof(first), "%d%s%s %.*s", r->code, r->enh[0] ? " " : "", r->enh,
		     (int)(flen < GWP_SLOG_TEXT_MAX ? flen : GWP_SLOG_TEXT_MAX), r->text);
	if (n > 0 && r->nlines > 1 && (size_t)n < sizeof(first))
		snprintf(first + n, sizeof(first) - (size_t)n, " (+%u lines)", r->nlines - 1);
	gwp_slog_line(l, sid, dir, first, strlen(first), ms);
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

	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	emit(l, sid, "==", body);
}
