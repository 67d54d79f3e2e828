/*
 * idle.c - the idle-connection watch (see idle.h).
 *
 * One list under one mutex: callbacks take it twice each (enter, leave), the
 * thread once per tick (a quarter of the timeout, at most a second). A
 * socket is shut down only while its entry is in the list, and the close
 * callback removes the entry before libmilter closes the descriptor, so a
 * descriptor number reused by another socket is never touched.
 */
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <time.h>

#include "idle.h"
#include "gw/log.h"
#include "gw/time.h"

/*
 * The head of libmilter's struct smfi_str (libmilter/libmilter.h, not
 * installed): ctx_id, ctx_sd, ctx_dbg, ctx_timeout. ctx_id is a long in
 * Sendmail 8.17 (ctx_sd at offset 8) and an unsigned int before (offset 4);
 * ctx_timeout is at offset 16 in both on LP64.
 */
struct smfi_head {
	long ctx_id;
	int ctx_sd;
	int ctx_dbg;
	time_t ctx_timeout;
};
struct smfi_head_old {
	unsigned int ctx_id;
	int ctx_sd;
	int ctx_dbg;
	time_t ctx_timeout;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static gwm_idle head = {&head, &head, -1, 0, 0, 0};
static pthread_t thread;
static int running, quit, warned;
static long timeout;
static struct sockaddr_storage listen_addr; /* family AF_UNSPEC: none */

/* The milter socket's local address, from "unix:/p", "local:/p", "inet:PORT@H", "inet6:PORT@H". */
static void parse_spec(const char *s)
{
	memset(&listen_addr, 0, sizeof(listen_addr));
	if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "local:", 6) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&listen_addr;
		const char *p = strchr(s, ':') + 1;
		if (strlen(p) < sizeof(un->sun_path)) {
			un->sun_family = AF_UNIX;
			memcpy(un->sun_path, p, strlen(p) + 1);
		}
	} else if (strncmp(s, "inet:", 5) == 0 || strncmp(s, "inet6:", 6) == 0) {
		long port = strtol(strchr(s, ':') + 1, NULL, 10);
		if (s[4] == '6') {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&listen_addr;
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)port);
		} else {
			struct sockaddr_in *in = (struct sockaddr_in *)&listen_addr;
			in->sin_family = AF_INET;
			in->sin_port = htons((uint16_t)port);
		}
	}
}

/* Is fd a connection accepted on the milter socket? */
static int is_milter_conn(int fd)
{
	struct sockaddr_storage a;
	socklen_t al = sizeof(a);
	struct stat st;

	memset(&a, 0, sizeof(a));
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) ||
	    getsockname(fd, (struct sockaddr *)&a, &al) != 0 || a.ss_family != listen_addr.ss_family)
		return 0;
	switch (a.ss_family) {
	case AF_UNIX:
		return strcmp(((struct sockaddr_un *)&a)->sun_path,
			      ((struct sockaddr_un *)&listen_addr)->sun_path) == 0;
	case AF_INET:
		return ((struct sockaddr_in *)&a)->sin_port == ((struct sockaddr_in *)&listen_addr)->sin_port;
	case AF_INET6:
		return ((struct sockaddr_in6 *)&a)->sin6_port ==
		       ((struct sockaddr_in6 *)&listen_addr)->sin6_port;
	default:
		return 0;
	}
}

static void *watch(void *arg)
{
	long tick = timeout / 4 > 1000 ? 1000 : (timeout / 4 > 10 ? timeout / 4 : 10);
	struct timespec ts;
	gwm_idle *e;

	(void)arg;
	pthread_mutex_lock(&lock);
	while (!quit) {
		int64_t now = gw_now_ms();
		for (e = head.next; e != &head; e = e->next) {
			if (e->busy == 0 && !e->shut && now - e->last_ms >= timeout) {
				e->shut = 1;
				/* libmilter sees the end of the connection and closes it itself */
				(void)shutdown(e->fd, SHUT_RDWR);
				gw_log(GW_LOG_INFO, "idle", "action=close idle_ms=%lld",
				       (long long)(now - e->last_ms));
			}
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += tick / 1000;
		ts.tv_nsec += (tick % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&cond, &lock, &ts);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int gwm_idle_start(const char *socket_spec, long timeout_ms)
{
	timeout = timeout_ms;
	parse_spec(socket_spec);
	quit = 0;
	if (pthread_create(&thread, NULL, watch, NULL) != 0)
		return -1;
	running = 1;
	return 0;
}

void gwm_idle_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&lock);
	quit = 1;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(thread, NULL);
	running = 0;
}

int gwm_idle_add(gwm_idle *e, SMFICTX *ctx)
{
	const struct smfi_head *h = (const struct smfi_head *)(const void *)ctx;
	const struct smfi_head_old *o = (const struct smfi_head_old *)(const void *)ctx;
	int fd = -1;

	e->fd = -1;
	e->prev = e->next = e;
	if (!running || ctx == NULL)
		return -1;
	if ((long long)h->ctx_timeout == (long long)(timeout + 999) / 1000) {
		if (is_milter_conn(h->ctx_sd))
			fd = h->ctx_sd;
		else if (is_milter_conn(o->ctx_sd))
			fd = o->ctx_sd;
	}
	pthread_mutex_lock(&lock);
	if (fd < 0) {
		if (!warned)
			gw_log(GW_LOG_WARNING, "idle",
			       "error=\"cannot find the session's socket in this libmilter\" "
			       "action=\"idle connections left to libmilter's timeout\"");
		warned = 1;
		pthread_mutex_unlock(&lock);
		return -1;
	}
	e->fd = fd;
	e->busy = e->shut = 0;
	e->last_ms = gw_now_ms();
	e->next = &head;
	e->prev = head.prev;
	head.prev->next = e;
	head.prev = e;
	pthread_mutex_unlock(&lock);
	return 0;
}

void gwm_idle_enter(gwm_idle *e)
{
	if (e == NULL || e->fd < 0)
		return;
	pthread_mutex_lock(&lock);
	e->busy++;
	pthread_mutex_unlock(&lock);
}

void gwm_idle_leave(gwm_idle *e)
{
	if (e == NULL || e->fd < 0)
		return;
	pthread_mutex_lock(&lock);
	e->busy--;
	e->last_ms = gw_now_ms();
	pthread_mutex_unlock(&lock);
}

void gwm_idle_del(gwm_idle *e)
{
	if (e == NULL || e->fd < 0)
		return;
	pthread_mutex_lock(&lock);
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = e;
	e->fd = -1;
	pthread_mutex_unlock(&lock);
}
