/*
 * net.h - non-blocking stream sockets with bounded waits (internal to libgw).
 *
 * gw_net_connect() connects to a gw_nexthop (TCP: each address of the host, in
 * turn; or a unix socket) without blocking longer than the
 * connect timeout per address and the absolute deadline. The read and write
 * helpers wait with poll(), each call bounded by its timeout (restarted when
 * bytes move) and by the deadline. Writes use MSG_NOSIGNAL: no SIGPIPE.
 * Deadlines are absolute gw_now_ms() values; 0 means none.
 * Knows nothing about SMTP.
 * The name lookup (dns.h) is bounded by the connect timeout and the deadline.
 *
 * Does not defend against: a peer that moves one byte just before each
 * timeout.
 */
#ifndef GW_NET_H
#define GW_NET_H

#include <stddef.h>
#include <stdint.h>

#include "gw/nexthop.h"

typedef enum gw_net_rc {
	GW_NET_OK = 0,
	GW_NET_REFUSED, /* refused or unreachable */
	GW_NET_TIMEOUT, /* the per-call timeout or the deadline ran out */
	GW_NET_LOST,    /* the peer closed or reset the connection */
	GW_NET_RESOLVE, /* the host name did not resolve */
	GW_NET_LOCAL,   /* a local failure (socket(), bad bind address, ...) */
	GW_NET_TLS,     /* TLS protocol failure (used by tls.c) */
	GW_NET_WATCHED  /* the watched descriptor's peer hung up (gw_net_wait_watch, gw_net_read_watch) */
} gw_net_rc;

/*
 * Connect to hop (port used when hop->port is 0), optionally binding the
 * numeric bind_address first. *fd_r gets a non-blocking, close-on-exec socket.
 * On failure err gets a short description.
 */
gw_net_rc gw_net_connect(const gw_nexthop *hop, unsigned port, const char *bind_address, unsigned timeout_ms,
			 int64_t deadline, int *fd_r, char *err, size_t errlen);

/* Wait until fd is ready for events (POLLIN/POLLOUT), at most timeout_ms from now and not past deadline. */
/* The connected peer of fd as text: "[192.0.2.1]:25", "[2001:db8::1]:25", "unix:/path"; "" if unknown. */
void gw_net_peer_text(int fd, char *out, size_t outlen);
gw_net_rc gw_net_wait(int fd, short events, unsigned timeout_ms, int64_t deadline, char *err, size_t errlen);

/*
 * gw_net_wait(), also ending (GW_NET_WATCHED) as soon as the peer of watch_fd hangs up: POLLRDHUP, POLLHUP
 * or POLLERR on it (bytes arriving there wake nothing: they stay unread). watch_fd -1: gw_net_wait().
 */
gw_net_rc gw_net_wait_watch(int fd, short events, int watch_fd, unsigned timeout_ms, int64_t deadline,
			    char *err, size_t errlen);
/* gw_net_read(), its waits watching watch_fd as gw_net_wait_watch() does (-1: none). */
gw_net_rc gw_net_read_watch(int fd, int watch_fd, void *buf, size_t len, unsigned timeout_ms,
			    int64_t deadline, size_t *got_r, char *err, size_t errlen);

/* Read at least one byte (up to len): GW_NET_OK with *got_r > 0, or LOST at end of stream. */
gw_net_rc gw_net_read(int fd, void *buf, size_t len, unsigned timeout_ms, int64_t deadline, size_t *got_r,
		      char *err, size_t errlen);

/* Write all len bytes; the timeout restarts whenever some bytes were written. */
gw_net_rc gw_net_write_all(int fd, const void *buf, size_t len, unsigned timeout_ms, int64_t deadline,
			   char *err, size_t errlen);

#endif
