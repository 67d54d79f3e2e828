/*
 * net.c - non-blocking connect, and reads and writes bounded by poll().
 *
 * Every wait is computed from the monotonic clock, so EINTR and partial
 * transfers never stretch a timeout; the deadline is checked even when the
 * per-call timeout is longer. Knows nothing about SMTP.
 *
 * Host names are looked up through dns.c, bounded by the connect timeout
 * and the deadline; numeric addresses never reach the DNS.
 *
 * Does not defend against: a peer that moves one byte just before each
 * timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dns.h"
#include "gw/time.h"
#include "net.h"

/* The absolute end of a wait: now + timeout_ms, but never past the deadline. */
static int64_t wait_end(unsigned timeout_ms, int64_t deadline, int *by_deadline_r)
{
	int64_t end = gw_now_ms() + (int64_t)timeout_ms;

	*by_deadline_r = 0;
	if (deadline > 0 && deadline <= end) {
		end = deadline;
		*by_deadline_r = 1;
	}
	return end;
}

/* poll() fd until end; OK when any event (or error) is reported; WATCHED when watch's peer hung up first. */
static gw_net_rc wait_until(int fd, short events, int watch, int64_t end, int by_deadline, char *err,
			    size_t errlen)
{
	for (;;) {
		/* watch: hang-ups only (POLLHUP and POLLERR are always reported); its data stays unread */
		struct pollfd pfd[2] = {{.fd = fd, .events = events, .revents = 0},
					{.fd = watch, .events = POLLRDHUP, .revents = 0}};
		int64_t left = end - gw_now_ms();
		int rc;

		if (left <= 0) {
			snprintf(err, errlen, "%s", by_deadline ? "deadline reached" : "timed out");
			return GW_NET_TIMEOUT;
		}
		rc = poll(pfd, watch >= 0 ? 2 : 1, left > 1000000 ? 1000000 : (int)left);
		if (rc > 0 && watch >= 0 && (pfd[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
			snprintf(err, errlen, "the other side hung up while waiting");
			return GW_NET_WATCHED;
		}
		if (rc > 0)
			return GW_NET_OK;
		if (rc < 0 && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			return GW_NET_LOCAL;
		}
	}
}

gw_net_rc gw_net_wait(int fd, short events, unsigned timeout_ms, int64_t deadline, char *err, size_t errlen)
{
	int by_deadline;
	int64_t end = wait_end(timeout_ms, deadline, &by_deadline);

	return wait_until(fd, events, -1, end, by_deadline, err, errlen);
}

gw_net_rc gw_net_wait_watch(int fd, short events, int watch_fd, unsigned timeout_ms, int64_t deadline,
			    char *err, size_t errlen)
{
	int by_deadline;
	int64_t end = wait_end(timeout_ms, deadline, &by_deadline);

	return wait_until(fd, events, watch_fd, end, by_deadline, err, errlen);
}

/* Is this errno a sign that the peer went away? */
static int errno_lost(int e)
{
	return e == ECONNRESET || e == EPIPE || e == ENOTCONN || e == ECONNABORTED || e == ETIMEDOUT ||
	       e == EHOSTUNREACH || e == ENETUNREACH || e == ENETRESET;
}

gw_net_rc gw_net_read(int fd, void *buf, size_t len, unsigned timeout_ms, int64_t deadline, size_t *got_r,
		      char *err, size_t errlen)
{
	return gw_net_read_watch(fd, -1, buf, len, timeout_ms, deadline, got_r, err, errlen);
}

gw_net_rc gw_net_read_watch(int fd, int watch_fd, void *buf, size_t len, unsigned timeout_ms,
			    int64_t deadline, size_t *got_r, char *err, size_t errlen)
{
	int by_deadline;
	int64_t end = wait_end(timeout_ms, deadline, &by_deadline);

	*got_r = 0;
	for (;;) {
		ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
		gw_net_rc rc;

		if (n > 0) {
			*got_r = (size_t)n;
			return GW_NET_OK;
		}
		if (n == 0) {
			snprintf(err, errlen, "connection closed by peer");
			return GW_NET_LOST;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			return errno_lost(errno) ? GW_NET_LOST : GW_NET_LOCAL;
		}
		rc = wait_until(fd, POLLIN, watch_fd, end, by_deadline, err, errlen);
		if (rc != GW_NET_OK)
			return rc;
	}
}

gw_net_rc gw_net_write_all(int fd, const void *buf, size_t len, unsigned timeout_ms, int64_t deadline,
			   char *err, size_t errlen)
{
	const char *p = buf;
	int by_deadline;
	int64_t end = wait_end(timeout_ms, deadline, &by_deadline);

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		gw_net_rc rc;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			end = wait_end(timeout_ms, deadline, &by_deadline);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			snprintf(err, errlen, "write: %s", strerror(errno));
			return errno_lost(errno) ? GW_NET_LOST : GW_NET_LOCAL;
		}
		rc = wait_until(fd, POLLOUT, -1, end, by_deadline, err, errlen);
		if (rc != GW_NET_OK)
			return rc;
	}
	return GW_NET_OK;
}

/* Finish a non-blocking connect() on fd: wait for it, then read SO_ERROR. */
static gw_net_rc connect_wait(int fd, unsigned timeout_ms, int64_t deadline, char *err, size_t errlen)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	gw_net_rc rc = gw_net_wait(fd, POLLOUT, timeout_ms, deadline, err, errlen);

	if (rc != GW_NET_OK)
		return rc;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr != 0) {
		snprintf(err, errlen, "connect: %s", strerror(soerr));
		return soerr == ETIMEDOUT ? GW_NET_TIMEOUT : GW_NET_REFUSED;
	}
	return GW_NET_OK;
}

/* Start connecting fd to addr and wait for the outcome. */
static gw_net_rc connect_addr(int fd, const struct sockaddr *addr, socklen_t alen, unsigned timeout_ms,
			      int64_t deadline, char *err, size_t errlen)
{
	for (;;) {
		if (connect(fd, addr, alen) == 0)
			return GW_NET_OK;
		if (errno == EINTR)
			continue; /* the connect carries on; wait for it below */
		if (errno == EINPROGRESS || errno == EAGAIN)
			break;
		snprintf(err, errlen, "connect: %s", strerror(errno));
		return errno == ENOMEM || errno == ENOBUFS ? GW_NET_LOCAL : GW_NET_REFUSED;
	}
	return connect_wait(fd, timeout_ms, deadline, err, errlen);
}

static gw_net_rc connect_unix(const gw_nexthop *hop, unsigned timeout_ms, int64_t deadline, int *fd_r,
			      char *err, size_t errlen)
{
	struct sockaddr_un sun;
	size_t plen = strnlen(hop->path, sizeof(hop->path));
	gw_net_rc rc;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (plen == 0 || plen >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "bad unix socket path");
		return GW_NET_LOCAL;
	}
	memcpy(sun.sun_path, hop->path, plen);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return GW_NET_LOCAL;
	}
	rc = connect_addr(fd, (const struct sockaddr *)&sun, (socklen_t)sizeof(sun), timeout_ms, deadline,
			  err, errlen);
	if (rc != GW_NET_OK) {
		close(fd);
		return rc;
	}
	*fd_r = fd;
	return GW_NET_OK;
}

/* Bind fd to the numeric address text, when it is of the same family. -1 on failure (err set). */
static int bind_source(int fd, int family, const char *bind_address, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
	rc = getaddrinfo(bind_address, NULL, &hints, &res);
	if (rc != 0 || res == NULL) {
		snprintf(err, errlen, "bad bind address for this family");
		return -1;
	}
	rc = bind(fd, res->ai_addr, res->ai_addrlen);
	if (rc < 0)
		snprintf(err, errlen, "bind: %s", strerror(errno));
	freeaddrinfo(res);
	return rc < 0 ? -1 : 0;
}

static gw_net_rc connect_inet(const gw_nexthop *hop, unsigned port, const char *bind_address,
			      unsigned timeout_ms, int64_t deadline, int *fd_r, char *err, size_t errlen)
{
	gwd_addr addrs[GWD_ADDR_MAX];
	size_t n = 0, i;
	gw_net_rc last = GW_NET_REFUSED;
	int one = 1, timed_out = 0;
	int64_t end = gw_now_ms() + (int64_t)timeout_ms;
	gw_lookup lk;

	/* The name lookup shares the first address's connect timeout and the deadline. */
	lk = gwd_host_lookup(hop->host, hop->port ? hop->port : port,
			     gwd_end(deadline > 0 && deadline < end ? deadline : end), addrs, GWD_ADDR_MAX,
			     &n, &timed_out, err, errlen);
	if (lk != GW_LOOKUP_FOUND) {
		if (timed_out)
			return GW_NET_TIMEOUT;
		return GW_NET_RESOLVE;
	}
	for (i = 0; i < n; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&addrs[i].sa;
		int rc, fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			snprintf(err, errlen, "socket: %s", strerror(errno));
			last = GW_NET_LOCAL;
			continue;
		}
		if (bind_address != NULL && bind_source(fd, sa->sa_family, bind_address, err, errlen) < 0) {
			close(fd);
			last = GW_NET_LOCAL;
			continue;
		}
		rc = (int)connect_addr(fd, sa, addrs[i].len, timeout_ms, deadline, err, errlen);
		if (rc == GW_NET_OK) {
			/* We buffer ourselves; Nagle would only add delayed-ACK stalls. */
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			*fd_r = fd;
			return GW_NET_OK;
		}
		close(fd);
		/* A timeout anywhere is the more telling failure; keep it. */
		if (last != GW_NET_TIMEOUT)
			last = (gw_net_rc)rc;
		if (deadline > 0 && gw_now_ms() >= deadline) {
			snprintf(err, errlen, "deadline reached");
			last = GW_NET_TIMEOUT;
			break;
		}
	}
	return last;
}

gw_net_rc gw_net_connect(const gw_nexthop *hop, unsigned port, const char *bind_address, unsigned timeout_ms,
			 int64_t deadline, int *fd_r, char *err, size_t errlen)
{
	*fd_r = -1;
	if (hop->kind == GW_HOP_UNIX)
		return connect_unix(hop, timeout_ms, deadline, fd_r, err, errlen);
	return connect_inet(hop, port, bind_address, timeout_ms, deadline, fd_r, err, errlen);
}

void gw_net_peer_text(int fd, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "";

	out[0] = '\0';
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, outlen, "[%s]:%u", host, ntohs(s4->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, outlen, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else if (ss.ss_family == AF_UNIX) {
		const struct sockaddr_un *su = (const struct sockaddr_un *)&ss;
		snprintf(out, outlen, "unix:%.*s", (int)sizeof(su->sun_path), su->sun_path);
	}
}
