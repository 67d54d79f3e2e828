/*
 * learn.c - delivered-to domains to gw-milter's control socket (see learn.h).
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "gw/log.h"
#include "gw/time.h"
#include "learn.h"

#define LINE_MAX_ 500 /* gw-milter's control lines are at most 512 bytes */
#define DOM_MAX   254

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_t thread;
static int running, stopping;
static char *sock_path;
static char (*pending)[DOM_MAX];
static size_t npending;
static unsigned long dropped;

void gwl_learn_note(const char *addr)
{
	const char *at = strrchr(addr, '@');
	char dom[DOM_MAX];
	size_t i, n;

	if (at == NULL || at[1] == '\0' || at[1] == '[' || (n = strlen(at + 1)) >= DOM_MAX)
		return;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)at[1 + i];
		if (!isalnum(ch) && ch != '-' && ch != '.' && ch < 0x80)
			return; /* not a domain name gw-milter would take */
		dom[i] = (char)tolower(ch);
	}
	dom[n] = '\0';
	pthread_mutex_lock(&lock);
	if (running && !stopping) {
		for (i = 0; i < npending; i++)
			if (strcmp(pending[i], dom) == 0)
				break;
		if (i == npending) {
			if (npending < GWL_LEARN_PENDING_MAX)
				memcpy(pending[npending++], dom, n + 1);
			else
				dropped++;
		}
	}
	pthread_mutex_unlock(&lock);
}

/* Send the batch in lines of at most LINE_MAX_ bytes; read the answers. 0, or -1 with why. */
static int send_batch(char (*doms)[DOM_MAX], size_t n, size_t *learnt, char *why, size_t whylen)
{
	struct sockaddr_un un;
	struct timeval tv = {5, 0};
	char line[LINE_MAX_ + 2], ans[65536]; /* an answer line per request line (a full batch: ~520) */
	size_t i = 0, alen = 0, lines = 0, got = 0;
	ssize_t r;
	int fd;

	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", sock_path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&un, sizeof(un)) != 0) {
		snprintf(why, whylen, "%s: %s", sock_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (i < n) {
		size_t len = (size_t)snprintf(line, sizeof(line), "learn-domains");
		while (i < n && len + 1 + strlen(doms[i]) <= LINE_MAX_)
			len += (size_t)snprintf(line + len, sizeof(line) - len, " %s", doms[i++]);
		line[len++] = '\n';
		if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
			snprintf(why, whylen, "%s: send: %s", sock_path, strerror(errno));
			close(fd);
			return -1;
		}
		lines++;
	}
	(void)shutdown(fd, SHUT_WR);
	while (alen < sizeof(ans) - 1 && (r = recv(fd, ans + alen, sizeof(ans) - 1 - alen, 0)) > 0)
		alen += (size_t)r;
	close(fd);
	ans[alen] = '\0';
	*learnt = 0;
	for (char *p = ans; *p != '\0'; p = p + strcspn(p, "\n") + (p[strcspn(p, "\n")] != '\0')) {
		unsigned long k;
		if (strncmp(p, "ok ", 3) != 0) {
			snprintf(why, whylen, "%s: %.*s", sock_path, (int)strcspn(p, "\n"), p);
			return -1;
		}
		if (sscanf(p, "ok learnt=%lu", &k) == 1)
			*learnt += k;
		got++;
	}
	if (got != lines) {
		snprintf(why, whylen, "%s: %zu answers to %zu lines", sock_path, got, lines);
		return -1;
	}
	return 0;
}

static void *run(void *arg)
{
	char(*batch)[DOM_MAX] = calloc(GWL_LEARN_PENDING_MAX, DOM_MAX);
	char why[512];

	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		size_t n, learnt = 0;
		unsigned long drop;
		int stop;
		/* a second between rounds: batches, not one connection per delivery */
		if (!stopping)
			gw_cond_wait_ms(&cond, &lock, 1000);
		stop = stopping;
		n = npending;
		if (batch != NULL && n > 0)
			memcpy(batch, pending, n * DOM_MAX);
		npending = 0;
		drop = dropped;
		dropped = 0;
		pthread_mutex_unlock(&lock);
		if (drop > 0)
			gw_log(GW_LOG_WARNING, "learn",
			       "status=dropped domains=%lu reason=\"more than %d pending\"", drop,
			       GWL_LEARN_PENDING_MAX);
		if (batch != NULL && n > 0) {
			if (send_batch(batch, n, &learnt, why, sizeof(why)) != 0)
				gw_log(GW_LOG_WARNING, "learn", "status=error domains=%zu error=\"%s\"", n,
				       why);
			else
				gw_log(GW_LOG_DEBUG, "learn", "status=ok domains=%zu learnt=%zu", n, learnt);
		}
		if (stop)
			break;
		pthread_mutex_lock(&lock);
	}
	free(batch);
	return NULL;
}

int gwl_learn_start(const char *path)
{
	struct sockaddr_un un;

	if (strlen(path) >= sizeof(un.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((pending = calloc(GWL_LEARN_PENDING_MAX, DOM_MAX)) == NULL || (sock_path = strdup(path)) == NULL)
		goto fail;
	pthread_mutex_lock(&lock);
	running = 1;
	stopping = 0;
	pthread_mutex_unlock(&lock);
	if ((errno = pthread_create(&thread, NULL, run, NULL)) != 0) {
		running = 0;
		goto fail;
	}
	return 0;
fail:
	free(pending);
	pending = NULL;
	free(sock_path);
	sock_path = NULL;
	return -1;
}

void gwl_learn_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&lock);
	stopping = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(thread, NULL);
	pthread_mutex_lock(&lock);
	running = 0;
	free(pending);
	pending = NULL;
	npending = 0;
	pthread_mutex_unlock(&lock);
	free(sock_path);
	sock_path = NULL;
}
