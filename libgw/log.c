/*
 * log.c - one line per event to syslog (LOG_MAIL, LOG_PID) or to stderr as
 * "ident[pid]: line", filtered by level, plus gw_log_sanitize for peer text.
 *
 * A line is formatted into a fixed stack buffer, so logging never allocates
 * and a long line is cut at GW_LOG_LINE_MAX bytes rather than growing. One
 * mutex guards the destination, the sink and the stderr write, so lines from
 * several threads never interleave; syslog(3) is thread-safe on its own.
 *
 * Does not defend against: callers that pass unsanitised peer text as fields
 * (a CR or LF in fields goes out as is), or a sink that calls gw_log (it runs
 * under the mutex and would deadlock).
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <pthread.h>
#include <unistd.h>

#include "gw/log.h"

/* The most bytes of one line, not counting the NUL. */
#define GW_LOG_LINE_MAX 1000

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
/* openlog(3) keeps the pointer, so the ident must live in static storage. */
static char log_ident[64] = "gw";
static int log_dest = GW_LOG_STDERR;
static void (*log_sink)(int level, const char *line, void *ctx);
static void *log_sink_ctx;
/* Read on every gw_log without the mutex, so a level change must be atomic. */
static atomic_int log_max_level = GW_LOG_INFO;

void gw_log_open(const char *ident, int dest, int max_level)
{
	pthread_mutex_lock(&log_lock);
	if (log_dest == GW_LOG_SYSLOG)
		closelog();
	if (ident != NULL && *ident != '\0')
		snprintf(log_ident, sizeof(log_ident), "%s", ident);
	log_dest = dest == GW_LOG_SYSLOG ? GW_LOG_SYSLOG : GW_LOG_STDERR;
	if (log_dest == GW_LOG_SYSLOG)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	pthread_mutex_unlock(&log_lock);
	atomic_store(&log_max_level, max_level);
}

void gw_log_set_level(int max_level)
{
	atomic_store(&log_max_level, max_level);
}

int gw_log_enabled(int level)
{
	/* Clamped as gw_log clamps it. */
	if (level < 0)
		level = 0;
	if (level > GW_LOG_DEBUG)
		level = GW_LOG_DEBUG;
	return level <= atomic_load(&log_max_level);
}

void gw_log_set_sink(void (*fn)(int level, const char *line, void *ctx), void *ctx)
{
	pthread_mutex_lock(&log_lock);
	log_sink = fn;
	log_sink_ctx = ctx;
	pthread_mutex_unlock(&log_lock);
}

void gw_log(int level, const char *event, const char *fields, ...)
{
	char line[GW_LOG_LINE_MAX + 1];
	size_t used;
	va_list ap;
	int n;

	/* syslog(3) reads bits above 7 as a facility; keep a bad level a level. */
	if (level < 0)
		level = 0;
	if (level > GW_LOG_DEBUG)
		level = GW_LOG_DEBUG;
	if (level > atomic_load(&log_max_level))
		return;
	n = snprintf(line, sizeof(line), "%s", event != NULL ? event : "-");
	used = n < 0 ? 0 : (size_t)n;
	if (used >= sizeof(line))
		used = sizeof(line) - 1;
	line[used] = '\0';
	if (fields != NULL && *fields != '\0' && used + 1 < sizeof(line)) {
		line[used++] = ' ';
		va_start(ap, fields);
		n = vsnprintf(line + used, sizeof(line) - used, fields, ap);
		va_end(ap);
		if (n <= 0)
			line[used - 1] = '\0'; /* no fields: no trailing separator */
	}

	pthread_mutex_lock(&log_lock);
	if (log_sink != NULL)
		log_sink(level, line, log_sink_ctx);
	else if (log_dest == GW_LOG_SYSLOG)
		syslog(level, "%s", line);
	else
		fprintf(stderr, "%s[%ld]: %s\n", log_ident, (long)getpid(), line);
	pthread_mutex_unlock(&log_lock);
}

size_t gw_log_sanitize(char *dst, size_t size, const char *src, size_t len, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)src;
	size_t n, i, out, need, avail, dots;
	int cut;

	if (size == 0)
		return 0;
	if (src == NULL)
		len = 0;
	n = len < max ? len : max;
	cut = len > max;

	/* Does the whole escaped prefix fit? Then no room need be kept for "...". */
	need = 0;
	for (i = 0; i < n; i++)
		need += s[i] == '\\' ? 2 : (s[i] < 0x20 || s[i] > 0x7e) ? 4 : 1;
	if (cut || need > size - 1) {
		cut = 1;
		avail = size - 1 > 3 ? size - 1 - 3 : 0;
	} else {
		avail = size - 1;
	}

	/* Copy whole escapes only: half of "\x1b" would read as something else. */
	out = 0;
	for (i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (c == '\\') {
			if (out + 2 > avail)
				break;
			dst[out++] = '\\';
			dst[out++] = '\\';
		} else if (c < 0x20 || c > 0x7e) {
			if (out + 4 > avail)
				break;
			dst[out++] = '\\';
			dst[out++] = 'x';
			dst[out++] = hex[c >> 4];
			dst[out++] = hex[c & 0x0f];
		} else {
			if (out + 1 > avail)
				break;
			dst[out++] = (char)c;
		}
	}
	if (cut) {
		/* A destination too small for all three dots gets as many as fit. */
		dots = size - 1 - out < 3 ? size - 1 - out : 3;
		memset(dst + out, '.', dots);
		out += dots;
	}
	dst[out] = '\0';
	return out;
}
