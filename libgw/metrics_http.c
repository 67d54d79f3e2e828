/*
 * metrics_http.c - the HTTP/1.0 metrics responder (see gw/metrics_http.h).
 *
 * The request is read into a fixed buffer until its blank line, within a
 * total deadline; only the request line is looked at. Anything else (too
 * long, too slow, binary, no version) is answered 400 or dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw/daemon.h"
#include "gw/metrics_http.h"
#include "gw/nexthop.h"
#include "gw/time.h"

#define REQ_MAX  2048      /* a request line and headers; longer ones get 400 */
#define READ_MS  2000      /* the whole request within this */
#define WRITE_MS 2000      /* the whole answer within this */
#define BODY_MAX (1 << 18) /* the exposition */

struct gw_metrics_http {
	int lfd, stop[2];
	gw_metrics_text_fn text;
	void *arg;
	pthread_t thread;
	char *body;
};

/* Wait for fd to be ready for ev until deadline (ms clock). 1 ready, 0 not. */
static int wait_fd(int fd, short ev, int64_t deadline)
{
	struct pollfd p = {fd, ev, 0};
	int64_t left;

	for (;;) {
		left = deadline - gw_now_ms();
		if (left <= 0)
			return 0;
		int n = poll(&p, 1, (int)left);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return 0;
	}
}

static void write_all(int fd, const char *p, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
			   wait_fd(fd, POLLOUT, deadline)) {
			continue;
		} else {
			return;
		}
	}
}

static void reply(int fd, const char *status, const char *ctype, const char *body, size_t len)
{
	char head[256];
	int64_t deadline = gw_now_ms() + WRITE_MS;
	int n =
	    snprintf(head, sizeof(head),
		     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
		     status, ctype, len);

	write_all(fd, head, (size_t)n, deadline);
	write_all(fd, body, len, deadline);
}

static void plain(int fd, const char *status)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%s\n", status);

	reply(fd, status, "text/plain; charset=utf-8", body, (size_t)n);
}

/* Read the request head into req (NUL-terminated). 1 complete, 0 too long or malformed, -1 gone/slow. */
static int read_head(int fd, char *req, size_t size)
{
	int64_t deadline = gw_now_ms() + READ_MS;
	size_t len = 0;

	for (;;) {
		ssize_t n;
		if (len + 1 >= size)
			return 0;
		n = recv(fd, req + len, size - 1 - len, 0);
		if (n > 0) {
			len += (size_t)n;
			req[len] = '\0';
			if (memchr(req, '\0', len) != NULL)
				return 0;
			if (strstr(req, "\r\n\r\n") != NULL || strstr(req, "\n\n") != NULL)
				return 1;
		} else if (n == 0) {
			return len > 0 && strchr(req, '\n') != NULL ? 1 : -1;
		} else if (errno == EINTR) {
			continue;
		} else if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLIN, deadline)) {
			continue;
		} else {
			return -1;
		}
	}
}

static void serve(gw_metrics_http *h, int fd)
{
	char req[REQ_MAX + 1], method[16], path[256], version[16];
	int r = read_head(fd, req, sizeof(req));
	size_t len;

	if (r < 0)
		return;
	req[strcspn(req, "\r\n")] = '\0';
	if (r == 0 || sscanf(req, "%15[A-Z] %255[^ ] HTTP/%15[0-9.]", method, path, version) != 3) {
		plain(fd, "400 Bad Request");
		return;
	}
	path[strcspn(path, "?")] = '\0';
	if (strcmp(path, "/metrics") != 0) {
		plain(fd, "404 Not Found");
		return;
	}
	if (strcmp(method, "GET") != 0) {
		plain(fd, "405 Method Not Allowed");
		return;
	}
	if ((len = h->text(h->arg, h->body, BODY_MAX)) == 0) {
		plain(fd, "503 Service Unavailable");
		return;
	}
	reply(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", h->body, len);
}

/* After the answer: end our side and read what the client still sends (bounded), so closing with
 * unread input does not reset the connection and lose the answer. */
static void linger_close(int fd)
{
	char sink[4096];
	int64_t deadline = gw_now_ms() + 500;
	size_t total = 0;

	(void)shutdown(fd, SHUT_WR);
	while (total < (1u << 20)) {
		ssize_t n = recv(fd, sink, sizeof(sink), 0);
		if (n > 0)
			total += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLIN, deadline))
			continue;
		else
			break;
	}
	close(fd);
}

static void *run(void *arg)
{
	gw_metrics_http *h = arg;
	struct pollfd p[2];

	for (;;) {
		p[0].fd = h->stop[0];
		p[0].events = POLLIN;
		p[1].fd = h->lfd;
		p[1].events = POLLIN;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (p[0].revents != 0)
			return NULL;
		if (p[1].revents & POLLIN) {
			int fd = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
			if (fd >= 0) {
				serve(h, fd);
				linger_close(fd);
			}
		}
	}
}

int gw_metrics_http_listen(const char *spec, char *err, size_t errlen)
{
	gw_nexthop hop;
	const char *e = NULL;

	if (gw_nexthop_parse(spec, strlen(spec), &hop, &e) != 0 || hop.kind != GW_HOP_INET) {
		snprintf(err, errlen, "metrics_listen %s: %s", spec, e != NULL ? e : "not [address]:port");
		return -1;
	}
	return gw_daemon_listen(&hop, 16, 0600, (uid_t)-1, (gid_t)-1, err, errlen);
}

gw_metrics_http *gw_metrics_http_start(int lfd, gw_metrics_text_fn text, void *arg, char *err, size_t errlen)
{
	gw_metrics_http *h = calloc(1, sizeof(*h));
	int e;

	if (h == NULL || (h->body = malloc(BODY_MAX)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	h->lfd = lfd;
	h->text = text;
	h->arg = arg;
	if (pipe2(h->stop, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	if ((e = pthread_create(&h->thread, NULL, run, h)) != 0) {
		snprintf(err, errlen, "thread: %s", strerror(e));
		close(h->stop[0]);
		close(h->stop[1]);
		goto fail;
	}
	return h;
fail:
	close(lfd);
	if (h != NULL)
		free(h->body);
	free(h);
	return NULL;
}

void gw_metrics_http_stop(gw_metrics_http **hp)
{
	gw_metrics_http *h = hp != NULL ? *hp : NULL;

	if (h == NULL)
		return;
	(void)!write(h->stop[1], "T", 1);
	pthread_join(h->thread, NULL);
	close(h->stop[0]);
	close(h->stop[1]);
	close(h->lfd);
	free(h->body);
	free(h);
	*hp = NULL;
}
