/*
 * client.c - the synchronous SMTP/LMTP client engine (gw/client.h).
 *
 * One connection, one thread. Commands are written whole, replies are read
 * through the incremental parser (gw/reply.h) from an input buffer; every wait
 * is bounded by the reply timeout and the dialogue deadline (net.h, tls.h).
 * Any transport failure closes the connection, so a half-read reply can never
 * be taken for the answer to a later command. Bytes buffered before a
 * STARTTLS handshake are thrown away (STARTTLS response injection). Pipelined
 * commands go through client_pipe.c (reading while writing), the body's wire
 * form through client_enc.c; TLS only through tls.h.
 *
 * Does not defend against: a server that pipelines replies it was not asked
 * for beyond what the input buffer holds (they are read as later replies, as
 * any client would); a body source that blocks.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "client_enc.h"
#include "client_int.h"
#include "gw/log.h"
#include "gw/time.h"
#include "util.h"

#define BODY_CHUNK (64 * 1024) /* bytes read from the body source at a time */

/* ---- small helpers -------------------------------------------------------- */

static void reply_clear(gw_reply *r)
{
	if (r == NULL)
		return;
	r->code = 0;
	r->enh[0] = '\0';
	r->nlines = 0;
	r->text_len = 0;
	r->text[0] = '\0';
}

unsigned cl_reply_timeout(const gw_client *c)
{
	return c->o.reply_timeout_ms ? c->o.reply_timeout_ms : 300000;
}

gw_status cl_fail(gw_client *c, gw_status s, const char *fmt, ...)
{
	char text[CL_ERR_MAX];
	va_list ap;

	/* Formatted apart first: the arguments may point into c->err itself. */
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	memcpy(c->err, text, sizeof(c->err));
	c->fail_stage = c->cur;
	gw_log(GW_LOG_DEBUG, "client_fail", "stage=%s status=%s error=\"%s\"", gw_stage_str(c->cur),
	       gw_status_str(s), c->err);
	return s;
}

static gw_status net_status(gw_net_rc rc)
{
	switch (rc) {
	case GW_NET_OK:
		return GW_OK;
	case GW_NET_REFUSED:
		return GW_E_REFUSED;
	case GW_NET_TIMEOUT:
		return GW_E_TIMEOUT;
	case GW_NET_LOST:
		return GW_E_LOST;
	case GW_NET_RESOLVE:
		return GW_E_RESOLVE;
	case GW_NET_TLS:
		return GW_E_TLS;
	case GW_NET_WATCHED:
		return GW_E_CANCELLED;
	case GW_NET_LOCAL:
	default:
		return GW_E_LOCAL;
	}
}

void cl_close(gw_client *c, int clean)
{
	gw_tls_free(&c->tls, clean);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->caps = 0;
	c->size_limit = 0;
	c->in_off = c->in_len = 0;
	gw_reply_parser_reset(&c->parser);
	cl_arrival_reset(c);
}

gw_status cl_transport_fail(gw_client *c, gw_net_rc rc)
{
	cl_close(c, 0);
	return cl_fail(c, net_status(rc), "%s", c->err);
}

static gw_status conn_write(gw_client *c, const char *p, size_t n)
{
	gw_net_rc rc;

	if (c->tls != NULL)
		rc = gw_tls_write_all(c->tls, c->fd, p, n, cl_reply_timeout(c), c->deadline, c->err,
				      sizeof(c->err));
	else
		rc = gw_net_write_all(c->fd, p, n, cl_reply_timeout(c), c->deadline, c->err, sizeof(c->err));
	return rc == GW_NET_OK ? GW_OK : cl_transport_fail(c, rc);
}

/* TLS read whose waits also watch c->watch_fd (gw_client_set_watch). */
static gw_net_rc tls_read_watched(gw_client *c, size_t *got_r)
{
	for (;;) {
		short want = POLLIN;
		gw_net_rc rc =
		    gw_tls_try_read(c->tls, c->in, sizeof(c->in), got_r, &want, c->err, sizeof(c->err));

		if (rc != GW_NET_OK || *got_r > 0)
			return rc;
		rc = gw_net_wait_watch(c->fd, want, c->watch_fd, cl_reply_timeout(c), c->deadline, c->err,
				       sizeof(c->err));
		if (rc != GW_NET_OK)
			return rc;
	}
}

/* Refill the (empty) input buffer with at least one byte. */
static gw_status conn_fill(gw_client *c)
{
	gw_net_rc rc;
	size_t got = 0;

	c->in_off = c->in_len = 0;
	if (c->watch_fd >= 0)
		rc = c->tls != NULL
			 ? tls_read_watched(c, &got)
			 : gw_net_read_watch(c->fd, c->watch_fd, c->in, sizeof(c->in), cl_reply_timeout(c),
					     c->deadline, &got, c->err, sizeof(c->err));
	else if (c->tls != NULL)
		rc = gw_tls_read(c->tls, c->fd, c->in, sizeof(c->in), cl_reply_timeout(c), c->deadline, &got,
				 c->err, sizeof(c->err));
	else
		rc = gw_net_read(c->fd, c->in, sizeof(c->in), cl_reply_timeout(c), c->deadline, &got, c->err,
				 sizeof(c->err));
	if (rc != GW_NET_OK)
		return cl_transport_fail(c, rc);
	c->in_len = got;
	cl_note_read(c, got);
	return GW_OK;
}

void cl_note_read(gw_client *c, size_t got)
{
	if (got == 0)
		return;
	c->in_gen++;
	c->in_at = gw_now_ms();
}

void cl_arrival_reset(gw_client *c)
{
	memset(&c->arr, 0, sizeof(c->arr));
}

/* used bytes of the read numbered c->in_gen went to the reply being parsed. */
static void arrival_take(gw_client *c, size_t used)
{
	if (used == 0)
		return;
	if (c->arr.reads == 0) {
		c->arr.reads = 1;
		c->arr_gen = c->in_gen;
		c->arr_t0 = c->in_at;
	} else if (c->arr_gen != c->in_gen) {
		c->arr.reads++;
		c->arr_gen = c->in_gen;
	}
	c->arr.bytes += used;
	c->arr.spread_ms = (unsigned)(c->in_at - c->arr_t0);
}

/* The reply r is whole: keep how it arrived and tell the hook. */
static void arrival_done(gw_client *c, const gw_reply *r)
{
	c->last_arr = c->arr;
	cl_arrival_reset(c);
	if (c->hook_fn != NULL)
		c->hook_fn(c->hook_ctx, c->cur, r, &c->last_arr);
}

/* Log a reply's first line at debug level, sanitised. */
static void log_reply(const gw_client *c, const gw_reply *r)
{
	char text[GW_LOG_PEER_MAX * 4 + 8];
	size_t first = strcspn(r->text, "\n");

	gw_log_sanitize(text, sizeof(text), r->text, first, GW_LOG_PEER_MAX);
	gw_log(GW_LOG_DEBUG, "client_reply", "stage=%s code=%d enh=%s lines=%u text=\"%s\"",
	       gw_stage_str(c->cur), r->code, r->enh[0] ? r->enh : "-", r->nlines, text);
}

int cl_parse_buffered(gw_client *c, gw_reply *r)
{
	while (c->in_off < c->in_len) {
		size_t used = 0;
		const char *perr = NULL;
		int rc =
		    gw_reply_parse(&c->parser, c->in + c->in_off, c->in_len - c->in_off, &used, r, &perr);

		if (rc < 0) {
			cl_close(c, 0);
			cl_fail(c, GW_E_BADREPLY, "bad reply: %s", perr != NULL ? perr : "parse error");
			return -1;
		}
		c->in_off += used;
		arrival_take(c, used);
		if (rc == 1) {
			log_reply(c, r);
			arrival_done(c, r);
			return 1;
		}
	}
	return 0;
}

/* Read one whole reply into *r. */
static gw_status read_reply(gw_client *c, gw_reply *r)
{
	for (;;) {
		int rc = cl_parse_buffered(c, r);
		gw_status s;

		if (rc > 0)
			return GW_OK;
		if (rc < 0)
			return GW_E_BADREPLY;
		s = conn_fill(c);
		if (s != GW_OK)
			return s;
	}
}

int cl_arg_ok(const char *arg)
{
	return arg != NULL && strlen(arg) <= CL_ARG_MAX && strpbrk(arg, "\r\n") == NULL;
}

/* Check that the session can take a command now. */
static gw_status ready(gw_client *c, gw_stage stage)
{
	c->cur = stage;
	if (c->fd < 0)
		return cl_fail(c, GW_E_LOCAL, "not connected");
	if (c->deadline > 0 && gw_now_ms() >= c->deadline) {
		cl_close(c, 0);
		return cl_fail(c, GW_E_TIMEOUT, "deadline reached");
	}
	return GW_OK;
}

/* Append "verb[arg]\r\n" to b; arg was checked by the caller. */
static int format_command(gw_buf *b, const char *verb, const char *arg)
{
	return gw_buf_printf(b, "%s%s\r\n", verb, arg != NULL ? arg : "");
}

static void log_sent(const gw_client *c, const char *verb)
{
	gw_log(GW_LOG_DEBUG, "client_send", "stage=%s command=\"%s\"", gw_stage_str(c->cur), verb);
}

/* Send one command; verb includes any separator ("MAIL FROM:", "EHLO "). */
static gw_status send_command(gw_client *c, gw_stage stage, const char *verb, const char *arg)
{
	gw_buf b;
	gw_status s;

	c->cur = stage;
	if (arg != NULL && !cl_arg_ok(arg))
		return cl_fail(c, GW_E_LOCAL, "argument of %s has CR, LF or is too long", verb);
	gw_buf_init(&b, CL_LINE_MAX);
	if (format_command(&b, verb, arg) < 0) {
		gw_buf_free(&b);
		return cl_fail(c, GW_E_LOCAL, "out of memory");
	}
	log_sent(c, verb);
	s = conn_write(c, b.data, b.len);
	gw_buf_free(&b);
	return s;
}

/* Send one command and read its reply. */
static gw_status command(gw_client *c, gw_stage stage, const char *verb, const char *arg, gw_reply *r)
{
	gw_status s = ready(c, stage);

	if (s == GW_OK)
		s = send_command(c, stage, verb, arg);
	if (s == GW_OK)
		s = read_reply(c, r);
	return s;
}

/* ---- session setup -------------------------------------------------------- */

static void parse_caps(gw_client *c, const gw_reply *r)
{
	static const struct {
		const char *word;
		unsigned bit;
	} table[] = {
	    {"PIPELINING", GW_CAP_PIPELINING}, {"SIZE", GW_CAP_SIZE},
	    {"8BITMIME", GW_CAP_8BITMIME},     {"SMTPUTF8", GW_CAP_SMTPUTF8},
	    {"STARTTLS", GW_CAP_STARTTLS},     {"ENHANCEDSTATUSCODES", GW_CAP_ENHANCEDSTATUSCODES},
	    {"CHUNKING", GW_CAP_CHUNKING},     {"DSN", GW_CAP_DSN},
	};
	size_t i;

	c->caps = 0;
	c->size_limit = 0;
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const char *arg = NULL;
		size_t alen = 0;

		if (!gw_reply_has_keyword(r, table[i].word, &arg, &alen))
			continue;
		c->caps |= table[i].bit;
		if (table[i].bit == GW_CAP_SIZE && arg != NULL) {
			char num[24];
			size_t k = 0;

			while (alen > 0 && (*arg == ' ' || *arg == '\t')) {
				arg++;
				alen--;
			}
			while (k < alen && k < sizeof(num) - 1 && arg[k] >= '0' && arg[k] <= '9') {
				num[k] = arg[k];
				k++;
			}
			num[k] = '\0';
			if (k > 0 && k < 20)
				c->size_limit = strtoul(num, NULL, 10);
		}
	}
	gw_log(GW_LOG_DEBUG, "client_caps", "caps=0x%x size=%lu", c->caps, c->size_limit);
}

/* EHLO (HELO after a 5xx) or LHLO. GW_E_REJECTED closes the connection. */
static gw_status hello(gw_client *c, gw_reply *r)
{
	const char *name = c->helo_name != NULL ? c->helo_name : "localhost";
	int lmtp = c->o.proto == GW_PROTO_LMTP;
	gw_status s = command(c, GW_STAGE_HELLO, lmtp ? "LHLO " : "EHLO ", name, r);

	if (s != GW_OK)
		return s;
	if (gw_reply_class(r->code) == 2) {
		parse_caps(c, r);
		return GW_OK;
	}
	if (!lmtp && gw_reply_class(r->code) == 5) {
		s = command(c, GW_STAGE_HELLO, "HELO ", name, r);
		if (s != GW_OK)
			return s;
		if (gw_reply_class(r->code) == 2) {
			c->caps = 0;
			c->size_limit = 0;
			return GW_OK;
		}
	}
	cl_close(c, 0);
	return cl_fail(c, GW_E_REJECTED, "%s refused with %d", lmtp ? "LHLO" : "EHLO/HELO", r->code);
}

/* STARTTLS per policy, then the hello again. */
static gw_status starttls(gw_client *c, gw_tls_policy policy, gw_reply *r)
{
	const char *name;
	gw_status s;
	gw_net_rc rc;

	c->cur = GW_STAGE_STARTTLS;
	if (policy == GW_TLS_NONE)
		return GW_OK;
	if (!(c->caps & GW_CAP_STARTTLS)) {
		if (policy == GW_TLS_MAY)
			return GW_OK;
		cl_close(c, 0);
		return cl_fail(c, GW_E_PROTO, "STARTTLS required but not offered");
	}
	if (policy == GW_TLS_DANE && c->ntlsa == 0) {
		cl_close(c, 0);
		return cl_fail(c, GW_E_TLS, "DANE required but no TLSA record given");
	}
	s = command(c, GW_STAGE_STARTTLS, "STARTTLS", NULL, r);
	if (s != GW_OK)
		return s;
	if (r->code != 220) {
		int cls = gw_reply_class(r->code);

		if (policy == GW_TLS_MAY) {
			gw_log(GW_LOG_DEBUG, "client_starttls", "refused code=%d, continuing in plain text",
			       r->code);
			reply_clear(r);
			return GW_OK;
		}
		cl_close(c, 0);
		return cl_fail(c, cls == 4 || cls == 5 ? GW_E_REJECTED : GW_E_PROTO, "STARTTLS answered %d",
			       r->code);
	}
	/* Anything the server sent after its 220 came before encryption: an injection attempt. */
	if (c->in_off < c->in_len)
		gw_log(GW_LOG_DEBUG, "client_starttls", "discarding %zu bytes sent before the handshake",
		       c->in_len - c->in_off);
	c->in_off = c->in_len = 0;
	gw_reply_parser_reset(&c->parser);
	cl_arrival_reset(c);

	name = c->tls_servername;
	if (name == NULL && c->hop.kind == GW_HOP_INET)
		name = c->hop.host;
	rc = gw_tls_connect(c->tls_ctx, c->fd, name, policy == GW_TLS_VERIFY,
			    policy == GW_TLS_DANE ? c->tlsa : NULL, policy == GW_TLS_DANE ? c->ntlsa : 0,
			    cl_reply_timeout(c), c->deadline, &c->tls, c->err, sizeof(c->err));
	if (rc != GW_NET_OK)
		return cl_transport_fail(c, rc);
	snprintf(c->tls_desc, sizeof(c->tls_desc), "%s %s", gw_tls_version(c->tls), gw_tls_cipher(c->tls));
	gw_log(GW_LOG_DEBUG, "client_starttls", "established version=%s cipher=%s", gw_tls_version(c->tls),
	       gw_tls_cipher(c->tls));
	c->caps = 0;
	c->size_limit = 0;
	return hello(c, r);
}

/* Connect, greeting, hello, STARTTLS under policy. */
static gw_status session_start(gw_client *c, gw_tls_policy policy, gw_reply *r)
{
	unsigned port = c->o.default_port ? c->o.default_port : c->o.proto == GW_PROTO_LMTP ? 24 : 25;
	unsigned cto = c->o.connect_timeout_ms ? c->o.connect_timeout_ms : 10000;
	char hopname[GW_HOST_MAX + GW_UNIX_PATH_MAX + 32];
	gw_net_rc rc;
	gw_status s;

	c->cur = GW_STAGE_CONNECT;
	if (c->deadline > 0 && gw_now_ms() >= c->deadline)
		return cl_fail(c, GW_E_TIMEOUT, "deadline reached");
	gw_nexthop_format(&c->hop, hopname, sizeof(hopname));
	gw_log(GW_LOG_DEBUG, "client_connect", "nexthop=%s tls=%d", hopname, (int)policy);
	c->peer[0] = c->tls_desc[0] = '\0';
	rc = gw_net_connect(&c->hop, port, c->bind_address, cto, c->deadline, &c->fd, c->err, sizeof(c->err));
	if (rc != GW_NET_OK) {
		c->fd = -1;
		return cl_fail(c, net_status(rc), "%s", c->err);
	}
	gw_net_peer_text(c->fd, c->peer, sizeof(c->peer));
	gw_reply_parser_reset(&c->parser);
	cl_arrival_reset(c);
	memset(&c->last_arr, 0, sizeof(c->last_arr));
	c->in_off = c->in_len = 0;

	c->cur = GW_STAGE_GREETING;
	s = read_reply(c, r);
	if (s != GW_OK)
		return s;
	if (gw_reply_class(r->code) != 2) {
		cl_close(c, 0);
		return cl_fail(c, GW_E_REJECTED, "greeting %d", r->code);
	}
	s = hello(c, r);
	if (s != GW_OK)
		return s;
	return starttls(c, policy, r);
}

/* ---- public interface ----------------------------------------------------- */

const char *gw_client_peer(const gw_client *c)
{
	return c->peer;
}

const char *gw_client_tls_desc(const gw_client *c)
{
	return c->tls_desc;
}

gw_client *gw_client_new(const gw_client_opts *opts)
{
	gw_client *c = calloc(1, sizeof(*c));
	int failed = 0;

	if (c == NULL)
		return NULL;
	if (opts != NULL)
		c->o = *opts;
	c->fd = -1;
	c->watch_fd = -1;
	c->helo_name = gwu_strdup_opt(c->o.helo_name, &failed);
	c->tls_ca_file = gwu_strdup_opt(c->o.tls_ca_file, &failed);
	c->tls_servername = gwu_strdup_opt(c->o.tls_servername, &failed);
	c->bind_address = gwu_strdup_opt(c->o.bind_address, &failed);
	/* The copies own the strings; the caller's pointers are not kept. */
	c->o.helo_name = c->o.tls_ca_file = c->o.tls_servername = c->o.bind_address = NULL;
	gw_reply_parser_init(&c->parser, c->o.max_reply_line, c->o.max_reply);
	if (failed) {
		gw_client_free(&c);
		return NULL;
	}
	return c;
}

void gw_client_free(gw_client **cp)
{
	gw_client *c = *cp;

	if (c == NULL)
		return;
	cl_close(c, 1);
	gw_tls_ctx_free(&c->tls_ctx);
	free(c->tlsa);
	free(c->helo_name);
	free(c->tls_ca_file);
	free(c->tls_servername);
	free(c->bind_address);
	free(c->body_in);
	free(c->body_out);
	free(c);
	*cp = NULL;
}

gw_status gw_client_open(gw_client *c, const gw_nexthop *hop, gw_reply *reply_r)
{
	gw_reply tmp;
	gw_reply *r = reply_r != NULL ? reply_r : &tmp;
	gw_status s;

	reply_clear(r);
	cl_close(c, 1);
	c->err[0] = '\0';
	c->fail_stage = GW_STAGE_NONE;
	c->cur = GW_STAGE_CONNECT;
	c->deadline = c->o.deadline_ms ? gw_now_ms() + (int64_t)c->o.deadline_ms : 0;
	if (hop == NULL)
		return cl_fail(c, GW_E_LOCAL, "no next hop");
	c->hop = *hop;
	if (c->tls_ctx != NULL && c->tls_ctx_verify != (c->o.tls == GW_TLS_VERIFY))
		gw_tls_ctx_free(&c->tls_ctx); /* the policy changed (gw_client_set_tls) */
	if (c->o.tls != GW_TLS_NONE && c->tls_ctx == NULL) {
		c->tls_ctx_verify = c->o.tls == GW_TLS_VERIFY;
		c->tls_ctx =
		    gw_tls_ctx_new(c->o.tls == GW_TLS_VERIFY, c->tls_ca_file, c->err, sizeof(c->err));
		if (c->tls_ctx == NULL) {
			c->cur = GW_STAGE_STARTTLS;
			return cl_fail(c, GW_E_LOCAL, "%s", c->err);
		}
	}
	s = session_start(c, c->o.tls, r);
	if (s == GW_E_TLS && c->o.tls == GW_TLS_MAY) {
		/* Opportunistic TLS must not cost the delivery: start over in plain text. */
		gw_log(GW_LOG_DEBUG, "client_starttls",
		       "handshake failed, reconnecting without TLS error=\"%s\"", c->err);
		reply_clear(r);
		s = session_start(c, GW_TLS_NONE, r);
	}
	return s;
}

int gw_client_set_tls(gw_client *c, gw_tls_policy policy, const gw_tlsa *tlsa, size_t ntlsa)
{
	gw_tlsa *copy = NULL;
	int same;

	if (policy != GW_TLS_DANE)
		ntlsa = 0;
	if (ntlsa > 0 && (copy = malloc(ntlsa * sizeof(*copy))) == NULL)
		return -1;
	if (ntlsa > 0)
		memcpy(copy, tlsa, ntlsa * sizeof(*copy));
	same = policy == c->o.tls && ntlsa == c->ntlsa &&
	       (ntlsa == 0 || memcmp(copy, c->tlsa, ntlsa * sizeof(*copy)) == 0);
	if (!same && c->fd >= 0)
		cl_close(c, 1); /* the open session was set up under other terms */
	free(c->tlsa);
	c->tlsa = copy;
	c->ntlsa = ntlsa;
	c->o.tls = policy;
	return 0;
}

gw_status gw_client_mail(gw_client *c, const char *arg, gw_reply *reply_r)
{
	gw_reply tmp;

	reply_clear(reply_r);
	return command(c, GW_STAGE_MAIL, "MAIL FROM:", arg, reply_r != NULL ? reply_r : &tmp);
}

gw_status gw_client_rcpt(gw_client *c, const char *arg, gw_reply *reply_r)
{
	gw_reply tmp;

	reply_clear(reply_r);
	return command(c, GW_STAGE_RCPT, "RCPT TO:", arg, reply_r != NULL ? reply_r : &tmp);
}

gw_status gw_client_data(gw_client *c, gw_reply *reply_r)
{
	gw_reply tmp;

	reply_clear(reply_r);
	return command(c, GW_STAGE_DATA, "DATA", NULL, reply_r != NULL ? reply_r : &tmp);
}

gw_status gw_client_rset(gw_client *c, gw_reply *reply_r)
{
	gw_reply tmp;

	reply_clear(reply_r);
	return command(c, GW_STAGE_RSET, "RSET", NULL, reply_r != NULL ? reply_r : &tmp);
}

gw_status gw_client_noop(gw_client *c, gw_reply *reply_r)
{
	gw_reply tmp;

	reply_clear(reply_r);
	return command(c, GW_STAGE_NOOP, "NOOP", NULL, reply_r != NULL ? reply_r : &tmp);
}

gw_status gw_client_quit(gw_client *c)
{
	gw_stage stage = c->fail_stage;
	char err[CL_ERR_MAX];
	gw_reply r;

	if (c->fd < 0)
		return GW_OK;
	/* Whatever happens now, the session is over; a missing reply is no failure, so it is not recorded. */
	memcpy(err, c->err, sizeof(err));
	if (command(c, GW_STAGE_QUIT, "QUIT", NULL, &r) == GW_OK) {
		cl_close(c, 1);
	} else {
		cl_close(c, 0);
		c->fail_stage = stage;
		memcpy(c->err, err, sizeof(c->err));
	}
	return GW_OK;
}

void gw_client_close(gw_client *c)
{
	if (c != NULL)
		cl_close(c, 1);
}

/* DATA answered 354 with no accepted recipient: send an empty message to stay in sync. */
static gw_status abort_data(gw_client *c, gw_reply *data_r)
{
	gw_reply r;
	gw_status s;

	c->cur = GW_STAGE_BODY;
	log_sent(c, ".");
	s = conn_write(c, ".\r\n", 3);
	if (s == GW_OK)
		s = read_reply(c, &r);
	reply_clear(data_r);
	c->cur = GW_STAGE_DATA;
	if (s != GW_OK)
		return s;
	return cl_fail(c, GW_E_PROTO, "DATA answered 354 with no accepted recipient");
}

/* The pipelined envelope as a cl_pipe: command 0 is MAIL, 1..n the RCPTs, n+1 DATA. */
typedef struct env_pipe {
	gw_client *c;
	const cl_envelope_args *a;
	gw_reply *mail_r, *data_r;
	size_t accepted;
} env_pipe;

static int env_command(void *ctx, size_t i, gw_buf *out)
{
	env_pipe *e = ctx;
	const char *arg;

	if (i == 0)
		return format_command(out, "MAIL FROM:", e->a->mail_arg);
	if (i > e->a->n)
		return format_command(out, "DATA", NULL);
	arg = e->a->rcpt_arg(e->a->ctx, i - 1);
	e->c->cur = GW_STAGE_RCPT;
	if (arg == NULL) {
		cl_fail(e->c, GW_E_LOCAL, "out of memory");
		return -1;
	}
	if (!cl_arg_ok(arg)) {
		cl_fail(e->c, GW_E_LOCAL, "RCPT argument %zu has CR, LF or is too long", i - 1);
		return -1;
	}
	if (format_command(out, "RCPT TO:", arg) < 0) {
		cl_fail(e->c, GW_E_LOCAL, "out of memory");
		return -1;
	}
	return 0;
}

static gw_stage env_stage(void *ctx, size_t i)
{
	env_pipe *e = ctx;

	return i == 0 ? GW_STAGE_MAIL : i > e->a->n ? GW_STAGE_DATA : GW_STAGE_RCPT;
}

static void env_reply(void *ctx, size_t i, const gw_reply *r)
{
	env_pipe *e = ctx;

	if (i == 0) {
		*e->mail_r = *r;
	} else if (i > e->a->n) {
		*e->data_r = *r;
	} else {
		if (gw_reply_class(r->code) == 2)
			e->accepted++;
		e->a->rcpt_reply(e->a->ctx, i - 1, r);
	}
}

/* MAIL, RCPTs, DATA streamed while the replies are read (client_pipe.c). */
static gw_status envelope_pipelined(gw_client *c, const cl_envelope_args *a, gw_reply *mail_r,
				    gw_reply *data_r)
{
	env_pipe e = {c, a, mail_r, data_r, 0};
	cl_pipe p = {a->n + 1 + (a->want_data != 0), env_command, env_stage, env_reply, &e};
	size_t replied = 0;
	gw_status s;

	gw_log(GW_LOG_DEBUG, "client_send", "stage=mail command=\"MAIL FROM:\" pipelined=%zu data=%d", a->n,
	       a->want_data);
	s = cl_pipeline(c, &p, &replied);
	if (s != GW_OK || !a->want_data)
		return s;
	if (data_r->code == 354 && (e.accepted == 0 || gw_reply_class(mail_r->code) != 2))
		return abort_data(c, data_r);
	return s;
}

/* One command at a time, stopping after a failed MAIL; DATA only when a RCPT was accepted. */
static gw_status envelope_lockstep(gw_client *c, const cl_envelope_args *a, gw_reply *mail_r,
				   gw_reply *data_r)
{
	size_t i, accepted = 0;
	gw_status s = command(c, GW_STAGE_MAIL, "MAIL FROM:", a->mail_arg, mail_r);
	gw_reply r;

	if (s != GW_OK || gw_reply_class(mail_r->code) != 2)
		return s;
	for (i = 0; i < a->n; i++) {
		const char *arg = a->rcpt_arg(a->ctx, i);

		if (arg == NULL) {
			c->cur = GW_STAGE_RCPT;
			return cl_fail(c, GW_E_LOCAL, "out of memory");
		}
		s = command(c, GW_STAGE_RCPT, "RCPT TO:", arg, &r);
		if (s != GW_OK)
			return s;
		if (gw_reply_class(r.code) == 2)
			accepted++;
		a->rcpt_reply(a->ctx, i, &r);
	}
	if (!a->want_data || accepted == 0)
		return GW_OK;
	return command(c, GW_STAGE_DATA, "DATA", NULL, data_r);
}

gw_status cl_envelope(gw_client *c, const cl_envelope_args *a, gw_reply *mail_r, gw_reply *data_r)
{
	gw_status s;

	reply_clear(mail_r);
	reply_clear(data_r);
	s = ready(c, GW_STAGE_MAIL);
	if (s != GW_OK)
		return s;
	if (!cl_arg_ok(a->mail_arg))
		return cl_fail(c, GW_E_LOCAL, "MAIL argument has CR, LF or is too long");
	if (c->caps & GW_CAP_PIPELINING)
		return envelope_pipelined(c, a, mail_r, data_r);
	return envelope_lockstep(c, a, mail_r, data_r);
}

/* gw_client_envelope()'s arrays behind cl_envelope()'s callbacks. */
typedef struct env_arrays {
	const char *const *args;
	gw_reply *rcpt_r;
} env_arrays;

static const char *array_arg(void *ctx, size_t i)
{
	return ((env_arrays *)ctx)->args[i];
}

static void array_reply(void *ctx, size_t i, const gw_reply *r)
{
	((env_arrays *)ctx)->rcpt_r[i] = *r;
}

gw_status gw_client_envelope(gw_client *c, const char *mail_arg, const char *const *rcpt_args, size_t n,
			     gw_reply *mail_r, gw_reply *rcpt_r, int want_data, gw_reply *data_r)
{
	env_arrays arr = {rcpt_args, rcpt_r};
	cl_envelope_args a = {mail_arg, n, array_arg, array_reply, &arr, want_data};
	gw_reply mail_tmp, data_tmp;
	size_t i;
	gw_status s;

	if (mail_r == NULL)
		mail_r = &mail_tmp;
	if (data_r == NULL)
		data_r = &data_tmp;
	reply_clear(mail_r);
	reply_clear(data_r);
	for (i = 0; i < n && rcpt_r != NULL; i++)
		reply_clear(&rcpt_r[i]);
	s = ready(c, GW_STAGE_MAIL);
	if (s != GW_OK)
		return s;
	if (n > 0 && (rcpt_args == NULL || rcpt_r == NULL)) {
		c->cur = GW_STAGE_RCPT;
		return cl_fail(c, GW_E_LOCAL, "no recipient arrays");
	}
	/* Every argument is checked before anything is sent, so a bad one costs no session. */
	for (i = 0; i < n; i++) {
		if (!cl_arg_ok(rcpt_args[i])) {
			c->cur = GW_STAGE_RCPT;
			return cl_fail(c, GW_E_LOCAL, "RCPT argument %zu has CR, LF or is too long", i);
		}
	}
	return cl_envelope(c, &a, mail_r, data_r);
}

/* ---- the body ------------------------------------------------------------- */

static gw_status body_buffers(gw_client *c)
{
	if (c->body_in == NULL)
		c->body_in = malloc(BODY_CHUNK);
	if (c->body_out == NULL)
		c->body_out = malloc(BODY_CHUNK + CL_ENC_ROOM(BODY_CHUNK) + 3);
	return c->body_in != NULL && c->body_out != NULL ? GW_OK : GW_E_LOCAL;
}

/* Read n replies, handing each to fn. */
static gw_status replies(gw_client *c, size_t n, cl_reply_fn *fn, void *ctx, size_t *got_r)
{
	gw_status s = GW_OK;
	gw_reply r;
	size_t i;

	for (i = 0; i < n && s == GW_OK; i++) {
		s = read_reply(c, &r);
		if (s != GW_OK)
			break;
		fn(ctx, i, &r);
		if (got_r != NULL)
			*got_r = i + 1;
	}
	return s;
}

gw_status cl_body(gw_client *c, const gw_body *body, size_t nreplies, cl_reply_fn *fn, void *ctx,
		  size_t *got_r)
{
	unsigned long long nul_at = 0;
	size_t out_len = 0; /* encoded bytes not written yet: small reads make few writes */
	gw_status s;
	cl_enc enc;

	if (got_r != NULL)
		*got_r = 0;
	s = ready(c, GW_STAGE_BODY);
	if (s != GW_OK)
		return s;
	if (body == NULL || body->read == NULL || (nreplies > 0 && fn == NULL)) {
		/* The server is waiting for a body we cannot send: the session is unusable. */
		cl_close(c, 0);
		return cl_fail(c, GW_E_LOCAL, "no body source or reply array");
	}
	if (body_buffers(c) != GW_OK) {
		cl_close(c, 0);
		return cl_fail(c, GW_E_LOCAL, "out of memory");
	}
	cl_enc_init(&enc, 1);
	for (;;) {
		ssize_t n = body->read(body->ctx, c->body_in, BODY_CHUNK), w;

		if (n == 0)
			break;
		if (n < 0 || (size_t)n > BODY_CHUNK) {
			/* Sending the dot now would deliver a truncated message: drop the session instead. */
			cl_close(c, 0);
			return cl_fail(c, GW_E_LOCAL, "body read error");
		}
		w = cl_enc_run(&enc, c->body_in, (size_t)n, c->body_out + out_len, &nul_at);
		if (w < 0) {
			/* Never a NUL on the wire, and no dot after a part of the message: drop the session.
			 */
			cl_close(c, 0);
			return cl_fail(c, GW_E_CONTENT, "the message has a NUL byte at offset %llu: not sent",
				       nul_at);
		}
		out_len += (size_t)w;
		if (out_len >= BODY_CHUNK) {
			s = conn_write(c, c->body_out, out_len);
			if (s != GW_OK)
				return s;
			out_len = 0;
		}
	}
	out_len += cl_enc_finish(&enc, c->body_out + out_len);
	memcpy(c->body_out + out_len, ".\r\n", 3);
	s = conn_write(c, c->body_out, out_len + 3);
	if (s != GW_OK)
		return s;
	log_sent(c, ".");
	if (enc.breaks > 0)
		gw_log(GW_LOG_DEBUG, "client_body", "lines over %d octets broken: %lu", CL_ENC_LINE_MAX,
		       enc.breaks);
	return replies(c, nreplies, fn, ctx, got_r);
}

static void array_put(void *ctx, size_t i, const gw_reply *r)
{
	((gw_reply *)ctx)[i] = *r;
}

gw_status gw_client_body(gw_client *c, const gw_body *body, gw_reply *replies_r, size_t nreplies,
			 size_t *got_r)
{
	size_t i;

	for (i = 0; i < nreplies && replies_r != NULL; i++)
		reply_clear(&replies_r[i]);
	return cl_body(c, body, nreplies, replies_r != NULL ? array_put : NULL, replies_r, got_r);
}

static ssize_t mem_read(void *ctx, char *buf, size_t len)
{
	gw_body_mem *m = ctx;
	size_t n = m->len - m->off;

	if (n > len)
		n = len;
	if (n > 0)
		memcpy(buf, m->data + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

void gw_body_from_memory(gw_body *body, gw_body_mem *mem, const char *data, size_t len)
{
	mem->data = data;
	mem->len = data != NULL ? len : 0;
	mem->off = 0;
	body->read = mem_read;
	body->ctx = mem;
}

static ssize_t fd_read(void *ctx, char *buf, size_t len)
{
	int fd = *(int *)ctx;

	for (;;) {
		ssize_t n = read(fd, buf, len);

		if (n >= 0 || errno != EINTR)
			return n < 0 ? -1 : n;
	}
}

void gw_body_from_fd(gw_body *body, int *fd)
{
	body->read = fd_read;
	body->ctx = fd;
}

/* ---- raw exchange (BDAT) --------------------------------------------------- */

gw_status cl_raw(gw_client *c, gw_stage stage, const void *data, size_t len, size_t nreplies, cl_reply_fn *fn,
		 void *ctx, size_t *got_r)
{
	gw_status s;

	if (got_r != NULL)
		*got_r = 0;
	s = ready(c, stage);
	if (s != GW_OK)
		return s;
	if ((len > 0 && data == NULL) || (nreplies > 0 && fn == NULL))
		return cl_fail(c, GW_E_LOCAL, "no data or reply array");
	if (len > 0)
		s = conn_write(c, data, len);
	if (s != GW_OK)
		return s;
	return replies(c, nreplies, fn, ctx, got_r);
}

gw_status gw_client_raw(gw_client *c, gw_stage stage, const void *data, size_t len, gw_reply *replies_r,
			size_t nreplies, size_t *got_r)
{
	size_t i;

	for (i = 0; i < nreplies && replies_r != NULL; i++)
		reply_clear(&replies_r[i]);
	return cl_raw(c, stage, data, len, nreplies, replies_r != NULL ? array_put : NULL, replies_r, got_r);
}

/* ---- accessors ------------------------------------------------------------ */

void cl_quickack(gw_client *c)
{
#ifdef TCP_QUICKACK
	int one = 1;

	/* Best effort: a unix socket says ENOPROTOOPT, and nothing is lost then. */
	if (c->fd >= 0)
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
#else
	(void)c;
#endif
}

int gw_client_is_open(const gw_client *c)
{
	return c != NULL && c->fd >= 0;
}

int gw_client_peer_closed(gw_client *c)
{
	struct pollfd p;

	if (c == NULL || c->fd < 0 || c->in_off < c->in_len)
		return 1;
	p.fd = c->fd;
	p.events = POLLIN;
	p.revents = 0;
	if (poll(&p, 1, 0) == 0)
		return 0;
	if (c->tls == NULL || (p.revents & (POLLHUP | POLLERR)))
		return 1;
	/* TLS 1.3 session tickets arrive unasked but are not data: let OpenSSL take them. */
	return gw_tls_peer_spoke(c->tls);
}

int gw_client_reply_buffered(const gw_client *c)
{
	const char *p, *end;

	if (c == NULL || c->fd < 0)
		return 0;
	/* A reply is parsed to its end and no further, so the buffer starts at the next reply's first line.
	 */
	p = c->in + c->in_off;
	end = c->in + c->in_len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			return 0;
		if (nl - p < 4 || p[3] != '-') /* a last line ("250 ok", "250"), or one the parser refuses */
			return 1;
		p = nl + 1;
	}
	return 0;
}

unsigned gw_client_caps(const gw_client *c)
{
	return c->caps;
}

unsigned long gw_client_size_limit(const gw_client *c)
{
	return c->size_limit;
}

int gw_client_tls_active(const gw_client *c)
{
	return c->tls != NULL;
}

void gw_client_set_deadline(gw_client *c, unsigned ms)
{
	c->deadline = ms ? gw_now_ms() + (int64_t)ms : 0;
}

void gw_client_set_watch(gw_client *c, int fd)
{
	c->watch_fd = fd;
}

gw_stage gw_client_stage(const gw_client *c)
{
	return c->fail_stage;
}

const char *gw_client_error(const gw_client *c)
{
	return c->err;
}

void gw_client_set_reply_hook(gw_client *c, gw_client_reply_fn *fn, void *ctx)
{
	c->hook_fn = fn;
	c->hook_ctx = fn != NULL ? ctx : NULL;
}

void gw_client_last_arrival(const gw_client *c, gw_reply_arrival *a_r)
{
	*a_r = c->last_arr;
}
