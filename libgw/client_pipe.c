/*
 * client_pipe.c - pipelined commands without a deadlock (RFC 2920 section
 * 3.1): the commands are written while the replies are read.
 *
 * One poll() loop on the non-blocking socket: replies already buffered are
 * parsed and handed on first; then up to PIPE_WINDOW bytes of commands are
 * formatted (never all of them: memory stays flat for any recipient count)
 * and written as far as the socket takes them; then whatever the peer sent is
 * read. Only when neither direction moved does the loop wait, for whichever
 * it needs. A server that answers each command before it reads the next
 * (Dovecot's LMTP, a small socket buffer) therefore always finds us reading,
 * where one blocking write of every command would stall both sides until the
 * reply timeout. The reply timeout restarts whenever bytes move; the dialogue
 * deadline bounds the whole. With TLS, OpenSSL's WANT_READ/WANT_WRITE decide
 * what to wait for, and a write in progress is retried with the same bytes.
 *
 * Does not defend against: a peer that sends replies it was not asked for
 * (they are taken as the next replies, as any client would take them).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "client_int.h"
#include "gw/log.h"
#include "gw/time.h"

#define PIPE_WINDOW 8192 /* bytes of commands formatted ahead of the socket */

/* One non-blocking write: bytes taken (0: would block, *want_r says on what), or a failure. */
static gw_net_rc try_write(gw_client *c, const char *p, size_t n, size_t *put_r, short *want_r)
{
	ssize_t w;

	if (c->tls != NULL)
		return gw_tls_try_write(c->tls, p, n, put_r, want_r, c->err, sizeof(c->err));
	*put_r = 0;
	*want_r = POLLOUT;
	w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w >= 0) {
		*put_r = (size_t)w;
		return GW_NET_OK;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return GW_NET_OK;
	snprintf(c->err, sizeof(c->err), "write: %s", strerror(errno));
	return GW_NET_LOST;
}

/* One non-blocking read into the (empty) input buffer. */
static gw_net_rc try_read(gw_client *c, size_t *got_r, short *want_r)
{
	ssize_t r;

	c->in_off = c->in_len = 0;
	if (c->tls != NULL)
		return gw_tls_try_read(c->tls, c->in, sizeof(c->in), got_r, want_r, c->err, sizeof(c->err));
	*got_r = 0;
	*want_r = POLLIN;
	r = recv(c->fd, c->in, sizeof(c->in), MSG_DONTWAIT);
	if (r > 0) {
		*got_r = (size_t)r;
		return GW_NET_OK;
	}
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return GW_NET_OK;
	snprintf(c->err, sizeof(c->err), "read: %s", r == 0 ? "connection closed by peer" : strerror(errno));
	return GW_NET_LOST;
}

/* Wait for events until the reply timeout (from the last progress) or the deadline. */
static gw_net_rc wait_for(gw_client *c, short events, int64_t idle_since)
{
	int64_t now = gw_now_ms(), end = idle_since + cl_reply_timeout(c);
	struct pollfd pfd;
	int r;

	if (c->deadline > 0 && c->deadline < end)
		end = c->deadline;
	if (now >= end) {
		snprintf(c->err, sizeof(c->err), "%s",
			 c->deadline > 0 && end == c->deadline ? "deadline reached"
							       : "timeout waiting for the peer");
		return GW_NET_TIMEOUT;
	}
	pfd.fd = c->fd;
	pfd.events = events;
	pfd.revents = 0;
	r = poll(&pfd, 1, (int)(end - now));
	if (r < 0 && errno != EINTR) {
		snprintf(c->err, sizeof(c->err), "poll: %s", strerror(errno));
		return GW_NET_LOCAL;
	}
	return GW_NET_OK; /* ready, interrupted or timed out: the next round finds out which */
}

gw_status cl_pipeline(gw_client *c, const cl_pipe *p, size_t *replied_r)
{
	int64_t idle_since = gw_now_ms();
	size_t next = 0, done = 0, off = 0;
	short want_w = POLLOUT, want_r = POLLIN;
	gw_net_rc wrc = GW_NET_OK; /* how writing failed: reading goes on to collect what came first */
	gw_status s = GW_OK;
	gw_reply r;
	gw_buf out;

	*replied_r = 0;
	gw_buf_init(&out, PIPE_WINDOW + CL_LINE_MAX);
	while (done < p->n) {
		int moved = 0, pr = 0;
		size_t nb = 0;
		gw_net_rc rc;

		c->cur = p->stage(p->ctx, done);
		while (done < p->n && (pr = cl_parse_buffered(c, &r)) == 1) {
			p->reply(p->ctx, done++, &r);
			*replied_r = done;
			if (done < p->n)
				c->cur = p->stage(p->ctx, done);
		}
		if (done == p->n)
			break;
		if (pr < 0) {
			s = GW_E_BADREPLY;
			break;
		}
		/* A new window once the last one is all written (a TLS write is retried with the same bytes).
		 */
		if (off == out.len && next < p->n && wrc == GW_NET_OK) {
			gw_buf_reset(&out);
			off = 0;
			while (next < p->n && out.len < PIPE_WINDOW) {
				if (p->command(p->ctx, next, &out) < 0) {
					/* Some commands may be out already: the session is in no known state.
					 */
					cl_close(c, 0);
					gw_buf_free(&out);
					return GW_E_LOCAL;
				}
				next++;
			}
		}
		if (off < out.len && wrc == GW_NET_OK) {
			wrc = try_write(c, out.data + off, out.len - off, &nb, &want_w);
			off += nb;
			moved |= nb > 0;
			if (wrc != GW_NET_OK)
				gw_log(GW_LOG_DEBUG, "client_pipe",
				       "write failed after %zu of %zu commands: %s", next, p->n, c->err);
		}
		rc = try_read(c, &nb, &want_r);
		if (rc != GW_NET_OK) {
			s = cl_transport_fail(c, rc);
			break;
		}
		c->in_len = nb;
		cl_note_read(c, nb);
		if (nb > 0)
			moved = 1;
		if (moved) {
			idle_since = gw_now_ms();
			continue;
		}
		rc = wait_for(c, (short)(want_r | (off < out.len && wrc == GW_NET_OK ? want_w : 0)),
			      idle_since);
		if (rc != GW_NET_OK) {
			s = cl_transport_fail(c, rc);
			break;
		}
	}
	gw_buf_free(&out);
	return s;
}

int cl_try_reply(gw_client *c, gw_reply *r)
{
	short want = 0;
	size_t nb = 0;
	int pr;

	if (c->fd < 0)
		return -1;
	pr = cl_parse_buffered(c, r);
	if (pr != 0)
		return pr;
	if (try_read(c, &nb, &want) != GW_NET_OK) {
		cl_close(c, 0);
		return -1;
	}
	c->in_len = nb;
	cl_note_read(c, nb);
	return nb > 0 ? cl_parse_buffered(c, r) : 0;
}
