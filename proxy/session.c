/*
 * session.c - a gw-proxy client connection: socket <-> server engine <-> relay.
 *
 * Few system calls per message: a read is tried before any poll (a poll only
 * when nothing is there), the replies to a pipelined batch leave in one write
 * (written only when the next reply is not already in from the destination),
 * the session log is written when the session is about to answer or wait for
 * its client, and the body held for the destination (relay.c) when the
 * client's next part has not come within BODY_WAIT_MS.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw/log.h"
#include "session.h"
#include "tls_in.h"

#define INPUT_CHUNK  16384
#define BODY_WAIT_MS 200 /* the longest a held body part waits for the client's next before it goes */

typedef struct sess {
	int fd;
	long timeout;
	gwp_relay r;
	gw_srv_tls_conn *tls; /* after STARTTLS: all client I/O goes through it */
	char in[INPUT_CHUNK];
	size_t in_off, in_len;
	int eof;      /* the client closed while the session waited on the destination */
	int answered; /* replies went to the client since it last sent something */
} sess;

/* Write everything the engine has queued. 0, or -1 when the client is gone or too slow. */
static int flush(sess *s)
{
	gw_buf *out = gw_srv_output(s->r.srv);

	if (out->len > 0) /* whatever the client sees is in the session log by then */
		gwp_slog_flush(s->r.env->slog);
	if (s->tls != NULL && out->len > 0) {
		char err[256];
		if (gw_srv_tls_write(s->tls, out->data, out->len, (unsigned)s->timeout, err, sizeof(err)) !=
		    0)
			return -1;
		gw_buf_consume(out, out->len);
	}
	while (out->len > 0) {
		ssize_t n = send(s->fd, out->data, out->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = {s->fd, POLLOUT, 0};
			if (poll(&p, 1, (int)s->timeout) <= 0)
				return -1;
			continue;
		}
		if (n <= 0)
			return -1;
		gw_buf_consume(out, (size_t)n);
		s->answered = 1;
	}
	return 0;
}

/*
 * While answers are owed: feed what the client has sent already (buffered, or readable now) without
 * waiting, so the rest of a pipelined batch goes to the destination with the first part. 1 when the
 * engine took something.
 */
static int feed_more(sess *s)
{
	size_t took;
	ssize_t n;

	/* once the batch is written, what the client sends now waits for the next one */
	if (s->in_off == s->in_len && !gwp_relay_unsent(&s->r))
		return 0;
	if (s->in_off == s->in_len && s->tls != NULL) { /* decrypted bytes may wait inside TLS: no poll */
		char err[256];
		size_t got = 0;
		if (s->eof)
			return 0;
		if (gw_srv_tls_read(s->tls, s->in, sizeof(s->in), 0, &got, err, sizeof(err)) != 0) {
			s->eof = errno != ETIMEDOUT; /* ETIMEDOUT: nothing there yet */
			return 0;
		}
		s->in_off = 0;
		s->in_len = got;
	}
	if (s->in_off == s->in_len) {
		if (s->eof)
			return 0;
		do
			n = recv(s->fd, s->in, sizeof(s->in), MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n <= 0) {
			s->eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
			return 0;
		}
		s->in_off = 0;
		s->in_len = (size_t)n;
	}
	took = gw_srv_feed(s->r.srv, s->in + s->in_off, s->in_len - s->in_off);
	s->in_off += took;
	return took > 0;
}

/* About to wait for the client: the held body goes to the destination, the session log to its file. */
static void idle(sess *s)
{
	gwp_relay_idle(&s->r);
	gwp_slog_flush(s->r.env->slog);
}

/* Feed buffered input, reading more when none is left. 1 fed, 0 client gone; a timeout shuts the engine. */
static int fill(sess *s)
{
	struct pollfd p = {s->fd, POLLIN, 0};
	ssize_t n = 0;
	int rc, wait;

	if (s->in_off < s->in_len) {
		size_t took = gw_srv_feed(s->r.srv, s->in + s->in_off, s->in_len - s->in_off);
		s->in_off += took;
		return took > 0; /* 0: the engine neither takes input nor gives events; never spin */
	}
	if (s->eof)
		return 0;
	if (s->tls != NULL) { /* TLS may hold decrypted bytes already: read, do not poll first */
		char err[256];
		size_t got = 0;
		idle(s);
		if (gw_srv_tls_read(s->tls, s->in, sizeof(s->in), (unsigned)s->timeout, &got, err,
				    sizeof(err)) != 0) {
			if (errno != ETIMEDOUT)
				return 0;
			gwp_relay_client_gone(&s->r, "client-timeout");
			gw_srv_shutdown(s->r.srv, "Error: timeout exceeded");
			return 1;
		}
		s->in_off = 0;
		s->in_len = got;
		s->in_off += gw_srv_feed(s->r.srv, s->in, s->in_len);
		return 1;
	}
	/* Just answered: the client's next bytes follow its reading of them, so wait first. Otherwise (the
	 * rest of a body, say) they are most often there already: read first, wait only when nothing is. */
	wait = s->answered;
	if (!wait) {
		do
			n = recv(s->fd, s->in, sizeof(s->in), MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		wait = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
	}
	if (wait) {
		s->answered = 0;
		gwp_slog_flush(s->r.env->slog);
		/* a body the client writes in parts: the next part is most often on its way; the part held
		 * waits for it a moment, so a message goes out in one write, not one per part */
		rc = gwp_relay_held(&s->r) > 0 ? poll(&p, 1, BODY_WAIT_MS) : 0;
		if (rc == 0) {
			gwp_relay_idle(&s->r);
			rc = poll(&p, 1, (int)s->timeout);
		}
		if (rc == 0) {
			gwp_relay_client_gone(&s->r, "client-timeout");
			gw_srv_shutdown(s->r.srv, "Error: timeout exceeded");
			return 1;
		}
		if (rc < 0)
			return errno == EINTR;
		do
			n = recv(s->fd, s->in, sizeof(s->in), MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1; /* woken for nothing: wait again */
	}
	if (n <= 0) {
		idle(s); /* the destination still gets what the client sent before it went */
		return 0;
	}
	s->in_off = 0;
	s->in_len = (size_t)n;
	s->in_off += gw_srv_feed(s->r.srv, s->in, s->in_len);
	return 1;
}

void gwp_session_run(int fd, const char *client, const gwp_env *env, const gw_nexthop *hop,
		     const char *refuse_text)
{
	sess *s; /* 16 KB of input: on the heap, not the thread's stack */
	gw_srv_event ev;
	int rc;

	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		close(fd);
		return;
	}
	s->fd = fd;
	s->timeout = env->conf->opt.command_timeout;
	rc = refuse_text != NULL ? gwp_relay_init_refused(&s->r, env, client, refuse_text)
				 : gwp_relay_init(&s->r, env, client, fd, hop);
	if (rc != 0) {
		gw_log(GW_LOG_ERR, "session", "client=%s error=\"out of memory\"", client);
		gwp_relay_finish(&s->r);
		goto out;
	}
	for (;;) {
		/* Replies leave when the engine has nothing more to give: the replies to a pipelined
		 * batch go in one write. */
		gw_srv_event_type type = gw_srv_next(s->r.srv, &ev);
		if (type == GW_SRV_EV_NONE) {
			gw_srv_wait w = gw_srv_waiting(s->r.srv);
			if (w == GW_SRV_WAIT_CLOSED)
				break;
			if (w == GW_SRV_WAIT_OUTPUT) {
				if (flush(s) != 0)
					break;
				continue;
			}
			if (w == GW_SRV_WAIT_ANSWER && gwp_relay_pending(&s->r) > 0) {
				/* commands went ahead to the destination: the rest of the client's batch
				 * joins them, then the next reply; replies the client can have leave first */
				if (feed_more(s))
					continue;
				if (!gwp_relay_reply_ready(&s->r) && flush(s) != 0) {
					gwp_relay_client_gone(&s->r, "client-lost");
					break;
				}
				gwp_relay_pump(&s->r);
				continue;
			}
			if (w == GW_SRV_WAIT_ANSWER || w == GW_SRV_WAIT_TLS) {
				gw_log(GW_LOG_ERR, "session", "client=%s error=\"engine waits for %d\"",
				       client, (int)w);
				break;
			}
			if (flush(s) != 0) {
				gwp_relay_client_gone(&s->r, "client-lost");
				break;
			}
			if (!fill(s)) {
				gwp_relay_client_gone(&s->r, "client-lost");
				break;
			}
			continue;
		}
		if (type == GW_SRV_EV_DATA_END && flush(s) != 0) /* pipelined replies before a long wait */
			break;
		if (type == GW_SRV_EV_STARTTLS) {
			/* the 220 in plain text; bytes read after STARTTLS came before TLS: dropped */
			s->in_off = s->in_len;
			if (flush(s) != 0 ||
			    gwp_tls_in_start(&s->r, s->fd, (unsigned)s->timeout, &s->tls) != 0) {
				gwp_relay_client_gone(&s->r, "client-tls-failed");
				break;
			}
			gw_srv_tls_started(s->r.srv);
			continue;
		}
		gwp_relay_event(&s->r, &ev);
	}
	(void)flush(s);
	gwp_relay_finish(&s->r);
	gw_srv_tls_close(&s->tls);
out:
	gwp_slog_flush(s->r.env->slog); /* the summary before the client sees the end */
	close(fd);
	free(s);
}
