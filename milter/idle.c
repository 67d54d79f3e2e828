/*
 * idle.c - the idle-connection watch (see idle.h).
 *
 * One list under one mutex: callbacks take it twice each (enter, leave), the
 * thread once per tick (a quarter of the timeout, at most a second). A
 * socket is shut down only while its entry is in the list, and the close
 * callback removes the entry before libmilter closes the descriptor, so a
 * descriptor number reused by another socket is never touched.
 */
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "idle.h"
#include "smfi_ctx.h"
#include "gw/log.h"
#include "gw/time.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static gwm_idle head = {&head, &head, -1, 0, 0, 0};
static pthread_t thread;
static int running, quit, warned;
static long timeout;

static void *watch(void *arg)
{
	long tick = timeout / 4 > 1000 ? 1000 : (timeout / 4 > 10 ? timeout / 4 : 10);
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
		gw_cond_wait_ms(&cond, &lock, tick);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int gwm_idle_start(long timeout_ms)
{
	timeout = timeout_ms;
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
	int fd;

	e->fd = -1;
	e->prev = e->next = e;
	if (!running || ctx == NULL)
		return -1;
	fd = gwm_ctx_socket(ctx);
	pthread_mutex_lock(&lock);
	if (fd < 0) {
		if (!warned)
			gw_log(
			    GW_LOG_WARNING, "idle",
			    "error=\"cannot find the session's socket in this libmilter\" "
			    "action=\"idle connections left to libmilter's timeout, macro lists unchecked\"");
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
