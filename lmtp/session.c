/*
 * session.c - an LMTP session: socket <-> server engine <-> relay.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw/log.h"
#include "gw/server.h"
#include "gw/time.h"
#include "learn.h"
#include "session.h"

#define INPUT_CHUNK   16384
#define QUEUE_ID_SCAN 8192 /* header bytes searched for the internal MTA's queue id */

typedef struct txn {
	char sender[GW_PATH_MAX + 1];
	char body_type[16], ret[8], envid[GW_PARAM_VALUE_MAX + 1];
	int smtputf8, has_body_type, has_ret, has_envid;
	gw_lmtp_rcpt *rcpts;
	size_t nrcpts, cap;
	gwl_spool spool;
	int spool_errno;
	char head[QUEUE_ID_SCAN + 1]; /* the first header bytes, for the queue id */
	size_t head_len;
	int64_t started;
} txn;

typedef struct sess {
	int fd;
	const char *client;
	const gwl_session_env *env;
	gw_srv *srv;
	txn t;
	char in[INPUT_CHUNK];
	size_t in_off, in_len;
} sess;

static void txn_clear(txn *t)
{
	size_t i;

	for (i = 0; i < t->nrcpts; i++) {
		free((char *)t->rcpts[i].addr);
		free((char *)t->rcpts[i].notify);
		free((char *)t->rcpts[i].orcpt);
	}
	t->nrcpts = 0;
	t->sender[0] = '\0';
	t->has_body_type = t->has_ret = t->has_envid = t->smtputf8 = 0;
	t->spool_errno = 0;
	t->head_len = 0;
	gwl_spool_reset(&t->spool);
}

/* Write everything the engine has queued. 0, or -1 when the client is gone or too slow. */
static int flush(sess *s)
{
	gw_buf *out = gw_srv_output(s->srv);
	unsigned timeout = (unsigned)s->env->conf->opt.command_timeout;

	while (out->len > 0) {
		ssize_t n = send(s->fd, out->data, out->len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = {s->fd, POLLOUT, 0};
			if (poll(&p, 1, (int)timeout) <= 0)
				return -1;
			continue;
		}
		if (n <= 0)
			return -1;
		gw_buf_consume(out, (size_t)n);
	}
	return 0;
}

/* Feed buffered input, reading more when none is left. 1 fed, 0 client gone or idle too long. */
static int fill(sess *s)
{
	struct pollfd p = {s->fd, POLLIN, 0};
	ssize_t n;
	int rc;

	if (s->in_off < s->in_len) {
		size_t took = gw_srv_feed(s->srv, s->in + s->in_off, s->in_len - s->in_off);
		s->in_off += took;
		if (took == 0) /* no event to give and no room for input: the engine is stuck, never spin */
			gw_log(GW_LOG_ERR, "session", "client=%s error=\"input not taken\"", s->client);
		return took > 0;
	}
	rc = poll(&p, 1, (int)s->env->conf->opt.command_timeout);
	if (rc == 0) {
		gw_log(GW_LOG_INFO, "timeout", "client=%s after=%ldms", s->client,
		       s->env->conf->opt.command_timeout);
		gw_srv_shutdown(s->srv, "Error: timeout exceeded");
		return 1;
	}
	if (rc < 0)
		return errno == EINTR;
	do
		n = recv(s->fd, s->in, sizeof(s->in), 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return 0;
	s->in_off = 0;
	s->in_len = (size_t)n;
	s->in_off += gw_srv_feed(s->srv, s->in, s->in_len);
	return 1;
}

static int on_mail(sess *s, const gw_srv_event *ev)
{
	txn *t = &s->t;
	const gw_param *p;

	if (!gwl_relay_healthy(s->env->relay)) {
		gw_log(GW_LOG_NOTICE, "refuse", "client=%s stage=mail reason=\"no destination reachable\"",
		       s->client);
		return gw_srv_reply(s->srv, 421, "4.4.0",
				    "cannot reach the Internet now: try another gateway");
	}
	txn_clear(t);
	gw_mailbox_format(&ev->path->mbox, t->sender, sizeof(t->sender));
	if ((p = gw_path_param(ev->path, "BODY")) != NULL) {
		snprintf(t->body_type, sizeof(t->body_type), "%.15s", p->value);
		t->has_body_type = 1;
	}
	if ((p = gw_path_param(ev->path, "RET")) != NULL) {
		snprintf(t->ret, sizeof(t->ret), "%.7s", p->value);
		t->has_ret = 1;
	}
	if ((p = gw_path_param(ev->path, "ENVID")) != NULL) {
		snprintf(t->envid, sizeof(t->envid), "%s", p->value);
		t->has_envid = 1;
	}
	t->smtputf8 = gw_path_param(ev->path, "SMTPUTF8") != NULL;
	t->started = gw_now_ms();
	return gw_srv_reply(s->srv, 250, "2.1.0", "Ok");
}

static int on_rcpt(sess *s, const gw_srv_event *ev)
{
	txn *t = &s->t;
	char addr[GW_PATH_MAX + 1];
	const gw_param *p;
	gw_lmtp_rcpt *r;

	if (ev->path->mbox.domain[0] == '\0')
		return gw_srv_reply(s->srv, 550, "5.1.3", "a recipient without a domain cannot be relayed");
	if (t->nrcpts == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		gw_lmtp_rcpt *n = realloc(t->rcpts, cap * sizeof(*n));
		if (n == NULL)
			return gw_srv_reply(s->srv, 452, "4.3.0", "out of memory");
		t->rcpts = n;
		t->cap = cap;
	}
	gw_mailbox_format(&ev->path->mbox, addr, sizeof(addr));
	r = &t->rcpts[t->nrcpts];
	memset(r, 0, sizeof(*r));
	r->addr = strdup(addr);
	if ((p = gw_path_param(ev->path, "NOTIFY")) != NULL)
		r->notify = strdup(p->value);
	if ((p = gw_path_param(ev->path, "ORCPT")) != NULL)
		r->orcpt = strdup(p->value);
	if (r->addr == NULL) {
		free((char *)r->notify);
		free((char *)r->orcpt);
		return gw_srv_reply(s->srv, 452, "4.3.0", "out of memory");
	}
	t->nrcpts++;
	return gw_srv_reply(s->srv, 250, "2.1.5", "Ok");
}

static void on_body(sess *s, const gw_srv_event *ev)
{
	txn *t = &s->t;

	if (t->head_len < QUEUE_ID_SCAN) {
		size_t n = ev->len < QUEUE_ID_SCAN - t->head_len ? ev->len : QUEUE_ID_SCAN - t->head_len;
		memcpy(t->head + t->head_len, ev->data, n);
		t->head_len += n;
		t->head[t->head_len] = '\0';
	}
	if (t->spool_errno == 0 && gwl_spool_append(&t->spool, ev->data, ev->len) != 0)
		t->spool_errno = errno ? errno : EIO;
}

/*
 * The queue id the internal MTA wrote into its own Received: header
 * ("... id 4Xyz12; date" from Postfix and Sendmail), for the logs; "-" if none.
 */
static void queue_id(const txn *t, char *out, size_t outlen)
{
	const char *h = t->head, *end, *id;
	size_t n = 0;

	snprintf(out, outlen, "-");
	if (strncasecmp(h, "Received:", 9) != 0 && (h = strstr(t->head, "\nReceived:")) == NULL)
		return;
	end = strstr(h + 1, "\r\n\r\n");
	if ((id = strstr(h, " id ")) == NULL || (end != NULL && id > end))
		return;
	id += 4;
	while (id[n] != '\0' && id[n] != ';' && id[n] != ' ' && id[n] != '\r' && id[n] != '\n' &&
	       id[n] != '\t' && n + 1 < outlen && n < 64)
		n++;
	if (n > 0)
		snprintf(out, outlen, "%.*s", (int)n, id);
}

/* One recipient's LMTP reply from its result: the destination's verdict, its text sanitised. */
static void reply_for(const gw_lmtp_result *r, int *code_r, char *enh, size_t enhlen, char *text,
		      size_t textlen)
{
	char peer[256], said[280];
	const char *host = r->gateway[0] ? r->gateway : "the destination";

	gw_log_sanitize(peer, sizeof(peer), r->text, strlen(r->text), 200);
	/* what the destination said, with its enhanced code when it gave one */
	snprintf(said, sizeof(said), "%d%s%s %s", r->code, r->enh[0] ? " " : "", r->enh, peer);
	switch (r->state) {
	case GW_LMTP_DELIVERED:
		*code_r = 250;
		snprintf(enh, enhlen, "%s", r->enh[0] == '2' ? r->enh : "2.0.0");
		snprintf(text, textlen, "delivered to %s: %s", host, said);
		return;
	case GW_LMTP_PERMFAIL:
		*code_r = r->code >= 500 && r->code <= 599 ? r->code : 550;
		snprintf(enh, enhlen, "%s", r->enh[0] == '5' ? r->enh : "5.0.0");
		if (r->local)
			snprintf(text, textlen, "%s", peer);
		else
			snprintf(text, textlen, "%s said: %s", host, said);
		return;
	case GW_LMTP_UNCERTAIN:
		*code_r = 451;
		snprintf(enh, enhlen, "4.4.2");
		snprintf(text, textlen, "connection to %s lost after the end of data: delivery uncertain",
			 host);
		return;
	default:
		*code_r = r->code >= 400 && r->code <= 499 ? r->code : 451;
		snprintf(enh, enhlen, "%s", r->enh[0] == '4' ? r->enh : "4.4.1");
		if (r->local || r->code == 0)
			snprintf(text, textlen, "%s%s%s", r->code == 0 && r->gateway[0] ? host : "",
				 r->code == 0 && r->gateway[0] ? ": " : "",
				 peer[0] ? peer : gw_status_str(r->status));
		else
			snprintf(text, textlen, "%s said: %s", host, said);
		return;
	}
}

static int on_data_end(sess *s, const gw_srv_event *ev)
{
	txn *t = &s->t;
	const gwl_config *c = s->env->conf;
	gw_lmtp_result *res = calloc(t->nrcpts ? t->nrcpts : 1, sizeof(*res));
	gwl_relay_detail *det = calloc(t->nrcpts ? t->nrcpts : 1, sizeof(*det));
	char qid[72], text[512], enh[16];
	gwl_relay_msg m;
	size_t i;
	int code;

	queue_id(t, qid, sizeof(qid));
	if (res == NULL || det == NULL || t->spool_errno != 0) {
		int big = t->spool_errno == EMSGSIZE;
		gw_log(GW_LOG_WARNING, "spool", "client=%s queue_id=%s error=\"%s\"", s->client, qid,
		       strerror(res == NULL ? ENOMEM : t->spool_errno));
		for (i = 0; i < t->nrcpts; i++)
			gw_srv_reply_rcpt(s->srv, i, big ? 552 : 451, big ? "5.3.4" : "4.3.0",
					  big ? "message too big" : "cannot hold the message now");
		free(res);
		free(det);
		txn_clear(t);
		return 0;
	}
	memset(&m, 0, sizeof(m));
	m.sender = t->sender;
	m.body_type = t->has_body_type ? t->body_type : NULL;
	m.ret = t->has_ret ? t->ret : NULL;
	m.envid = t->has_envid ? t->envid : NULL;
	m.smtputf8 = t->smtputf8;
	m.rcpts = t->rcpts;
	m.nrcpts = t->nrcpts;
	m.body = &t->spool;
	m.client = s->client;
	m.queue_id = qid;
	gwl_relay_deliver(s->env->relay, &m, (unsigned)c->opt.deadline, res, det);
	for (i = 0; i < t->nrcpts; i++) {
		char logtext[300];
		reply_for(&res[i], &code, enh, sizeof(enh), text, sizeof(text));
		if (res[i].state == GW_LMTP_DELIVERED)
			gwl_learn_note(t->rcpts[i].addr);
		gw_srv_reply_rcpt(s->srv, i, code, enh, text);
		gw_log_sanitize(logtext, sizeof(logtext), text, strlen(text), 250);
		gw_log(GW_LOG_INFO, "rcpt",
		       "client=%s queue_id=%s from=<%s> to=<%s> state=%s stage=%s host=%s addr=%s "
		       "tls=\"%s\"%s%s "
		       "code=%d enh=%s delay=%lldms size=%llu reply=\"%s\"",
		       s->client, qid, t->sender, t->rcpts[i].addr, gw_lmtp_state_str(res[i].state),
		       gw_lmtp_stage_str(res[i].stage), res[i].gateway[0] ? res[i].gateway : "-",
		       det[i].peer[0] ? det[i].peer : "-", det[i].tls[0] ? det[i].tls : "none",
		       det[i].dane[0] ? " dane=" : "", det[i].dane, code, enh,
		       (long long)(gw_now_ms() - t->started), (unsigned long long)ev->size, logtext);
	}
	free(res);
	free(det);
	txn_clear(t);
	return 0;
}

void gwl_session_run(int fd, const char *client, const gwl_session_env *env)
{
	const gwl_config *c = env->conf;
	gw_srv_config sc;
	gw_srv_event ev;
	unsigned long msgs = 0, rcpts = 0;
	int64_t t0 = gw_now_ms();
	sess s;

	memset(&s, 0, sizeof(s));
	s.fd = fd;
	s.client = client;
	s.env = env;
	gwl_spool_init(&s.t.spool, c->opt.spool_dir, (size_t)c->opt.spool_memory, c->opt.message_size_limit);
	gw_srv_config_init(&sc, GW_SRV_LMTP, c->opt.hostname);
	sc.max_rcpts = (size_t)c->opt.max_rcpts;
	sc.max_size = (uint64_t)c->opt.message_size_limit;
	if ((s.srv = gw_srv_new(&sc)) == NULL) {
		gw_log(GW_LOG_ERR, "session", "client=%s error=\"%s\"", client, strerror(errno));
		close(fd);
		return;
	}
	if (gwl_relay_healthy(env->relay)) {
		gw_srv_start(s.srv);
	} else {
		gw_log(GW_LOG_NOTICE, "refuse", "client=%s stage=connect reason=\"no destination reachable\"",
		       client);
		gw_srv_shutdown(s.srv, "cannot reach the Internet now: try another gateway");
	}
	for (;;) {
		/* Replies are written when the engine has nothing more to give: the replies to a
		 * pipelined batch leave in one write, never one small segment each (Nagle and
		 * delayed ACKs would hold the second for 40 ms). */
		gw_srv_event_type type = gw_srv_next(s.srv, &ev);
		if (type == GW_SRV_EV_NONE) {
			gw_srv_wait w = gw_srv_waiting(s.srv);
			if (w == GW_SRV_WAIT_CLOSED)
				break;
			if (w == GW_SRV_WAIT_OUTPUT) {
				if (flush(&s) != 0)
					break;
				continue;
			}
			if (w == GW_SRV_WAIT_ANSWER || w == GW_SRV_WAIT_TLS) {
				gw_log(GW_LOG_ERR, "session", "client=%s error=\"engine waits for %d\"",
				       client, (int)w);
				break;
			}
			if (flush(&s) != 0 || !fill(&s)) /* replies first: the client may wait for them */
				break;
			continue;
		}
		switch (type) {
		case GW_SRV_EV_MAIL:
			on_mail(&s, &ev);
			break;
		case GW_SRV_EV_RCPT:
			on_rcpt(&s, &ev);
			break;
		case GW_SRV_EV_DATA:
			gwl_spool_reset(&s.t.spool);
			break;
		case GW_SRV_EV_BODY:
			on_body(&s, &ev);
			break;
		case GW_SRV_EV_DATA_END:
			if (flush(&s) != 0) /* the replies before the relay, which may take a while */
				goto out;
			msgs++;
			rcpts += s.t.nrcpts;
			on_data_end(&s, &ev);
			break;
		case GW_SRV_EV_RESET:
			txn_clear(&s.t);
			break;
		case GW_SRV_EV_STARTTLS: /* never offered */
			gw_srv_shutdown(s.srv, NULL);
			break;
		default:
			break;
		}
	}
out:
	(void)flush(&s);
	gw_log(GW_LOG_INFO, "session", "client=%s messages=%lu recipients=%lu errors=%u duration=%lldms",
	       client, msgs, rcpts, gw_srv_errors(s.srv), (long long)(gw_now_ms() - t0));
	txn_clear(&s.t);
	free(s.t.rcpts);
	gw_srv_free(&s.srv);
	close(fd);
}
