/*
 * lmtp.c - one LMTP/SMTP transaction through one gateway with a result per
 * recipient (gw/lmtp.h); the handle that keeps the connection for reuse.
 *
 * The envelope goes through the engine's cl_envelope() (pipelined when
 * offered, read while written); the body through cl_body() (DATA) or
 * gw_client_bdat() (BDAT). Replies are taken one at a time, as they come,
 * straight into the caller's results: memory per recipient is a few indices,
 * never a reply buffer. In LMTP the accepted recipients are kept in RCPT order in survivors[], and the
 * k-th final reply belongs to survivors[k] (Postfix smtp_proto.c does the
 * same). When the session breaks after the body source reached its end, the
 * final dot may have reached the server: recipients without a reply are then
 * UNCERTAIN, never delivered, never plainly failed. (With DATA a failure while
 * writing the last buffer of the body is counted the same way: we cannot tell
 * it from a loss after the dot, and uncertain is the safe reading.)
 *
 * Does not defend against: a server that reorders LMTP replies; a body that
 * changes between gateways; 452 "too many recipients" (not split, temporary).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_bdat.h"
#include "client_int.h"
#include "gw/log.h"
#include "gw/time.h"
#include "lmtp_int.h"
#include "util.h"

/*
 * How long closing a session waits for the reply to QUIT. The session is over
 * whatever the answer; a peer gone silent (a cut link under an idle pooled
 * connection) must not hold the caller for the rest of the last transaction's
 * deadline: gw-lmtpd closes expired idle connections on the way to a new delivery.
 */
#define QUIT_WAIT_MS 1000
#define ARG_LIMIT    4096 /* one MAIL or RCPT argument: room to spare over what client.c sends (CMD_ARG_MAX) */

/* ---- the handle ------------------------------------------------------------- */

gw_lmtp *gw_lmtp_new(const gw_lmtp_opts *opts)
{
	gw_lmtp *l = calloc(1, sizeof(*l));
	int failed = 0;

	if (l == NULL)
		return NULL;
	if (opts != NULL)
		l->o = *opts;
	l->helo_name = gwu_strdup_opt(l->o.client.helo_name, &failed);
	l->tls_ca_file = gwu_strdup_opt(l->o.client.tls_ca_file, &failed);
	l->tls_servername = gwu_strdup_opt(l->o.client.tls_servername, &failed);
	l->bind_address = gwu_strdup_opt(l->o.client.bind_address, &failed);
	/* The engine is made again when the protocol changes, so it needs strings that live as long as we do.
	 */
	l->o.client.helo_name = l->helo_name;
	l->o.client.tls_ca_file = l->tls_ca_file;
	l->o.client.tls_servername = l->tls_servername;
	l->o.client.bind_address = l->bind_address;
	if (!failed)
		l->c = gw_client_new(&l->o.client);
	if (failed || l->c == NULL)
		gw_lmtp_free(&l);
	return l;
}

void gw_lmtp_close(gw_lmtp *l)
{
	if (l == NULL)
		return;
	if (l->c != NULL && gw_client_is_open(l->c)) {
		int64_t bound = gw_now_ms() + QUIT_WAIT_MS;
		if (l->c->deadline == 0 || l->c->deadline > bound)
			l->c->deadline = bound;
		gw_client_quit(l->c);
	}
	l->hop_key[0] = '\0';
	l->dirty = 0;
}

void gw_lmtp_free(gw_lmtp **lp)
{
	gw_lmtp *l = *lp;

	if (l == NULL)
		return;
	gw_lmtp_close(l);
	gw_client_free(&l->c);
	free(l->helo_name);
	free(l->tls_ca_file);
	free(l->tls_servername);
	free(l->bind_address);
	free(l->details);
	free(l);
	*lp = NULL;
}

int lm_set_proto(gw_lmtp *l, gw_proto p)
{
	gw_client *c;

	if (l->o.client.proto == p && l->c != NULL)
		return 0;
	gw_lmtp_close(l);
	l->o.client.proto = p;
	c = gw_client_new(&l->o.client);
	if (c == NULL)
		return -1;
	gw_client_free(&l->c);
	l->c = c;
	return 0;
}

int lm_txn_ok(const gw_lmtp_txn *txn, const gw_lmtp_result *res)
{
	return txn != NULL && res != NULL && txn->nrcpts <= GW_LMTP_RCPTS_MAX &&
	       (txn->nrcpts == 0 || txn->rcpts != NULL) && txn->body != NULL && txn->body->src.read != NULL;
}

void lm_report(const gw_lmtp_txn *txn, const gw_lmtp_result *res)
{
	size_t i;

	for (i = 0; i < txn->nrcpts; i++) {
		lm_result_log(GW_LOG_DEBUG, "lmtp_result", &txn->rcpts[i], &res[i]);
		if (txn->on_result != NULL)
			txn->on_result(txn->ctx, i, &txn->rcpts[i], &res[i]);
	}
}

/* ---- one attempt ------------------------------------------------------------ */

/* Watches the body source: was it read, did it reach its end? */
typedef struct body_watch {
	const gw_body *inner;
	int used, eof;
} body_watch;

static ssize_t watch_read(void *ctx, char *buf, size_t len)
{
	body_watch *w = ctx;
	ssize_t n = w->inner->read(w->inner->ctx, buf, len);

	w->used = 1;
	if (n == 0)
		w->eof = 1;
	return n;
}

/* What the attempt works on. */
typedef struct attempt {
	gw_lmtp *l;
	const gw_lmtp_txn *txn;
	const gw_nexthop *hop;
	const char *key; /* the gateway, formatted */
	size_t *idx;     /* recipients (indices into txn->rcpts) still in play */
	size_t n;
	gw_lmtp_result *res;
	int body_used;
} attempt;

static gw_lmtp_result *res_of(attempt *a, size_t k)
{
	return &a->res[a->idx[k]];
}

static void all_transport(attempt *a, gw_lmtp_stage stage, gw_status s, int uncertain)
{
	size_t k;

	for (k = 0; k < a->n; k++)
		lm_result_transport(res_of(a, k), stage, s, uncertain, gw_client_error(a->l->c), a->key);
}

static void all_local(attempt *a, gw_lmtp_state state, gw_lmtp_stage stage, int code, const char *enh,
		      const char *text)
{
	size_t k;

	for (k = 0; k < a->n; k++)
		lm_result_local(res_of(a, k), state, stage, code, enh, text, a->key);
}

/* A reply that should have been a failure or a 354 but was something else: temporary. */
static void reply_not_ok(gw_lmtp_result *r, gw_lmtp_stage stage, const gw_reply *reply, const char *key)
{
	lm_result_reply(r, stage, reply, key);
	if (r->state == GW_LMTP_DELIVERED)
		r->state = GW_LMTP_TEMPFAIL;
}

static gw_lmtp_stage open_stage(gw_stage st)
{
	switch (st) {
	case GW_STAGE_GREETING:
		return GW_LMTP_STAGE_GREETING;
	case GW_STAGE_HELLO:
	case GW_STAGE_STARTTLS:
		return GW_LMTP_STAGE_LHLO;
	default:
		return GW_LMTP_STAGE_CONNECT;
	}
}

/* Reuse the open session to this gateway (RSET first when needed) or open a new one. */
static gw_status session(attempt *a, int allow_reuse, int *reused_r, gw_reply *r)
{
	gw_lmtp *l = a->l;
	gw_status s;

	*reused_r = 0;
	memset(r, 0, sizeof(*r));
	/* A session the peer closed while idle (its 421 unread) is not worth a transaction. */
	if (allow_reuse && gw_client_is_open(l->c) && strcmp(l->hop_key, a->key) == 0 &&
	    !gw_client_peer_closed(l->c)) {
		int check = l->o.idle_check_ms > 0 && gw_now_ms() - l->last_used >= l->o.idle_check_ms;
		if (!l->dirty && !l->o.always_rset && !check) {
			gw_client_set_deadline(l->c, l->o.client.deadline_ms);
			*reused_r = 1;
			return GW_OK;
		}
		/* Idle a while: whether the peer is still there is worth one short RSET. */
		gw_client_set_deadline(
		    l->c, check ? (l->o.idle_check_timeout_ms ? l->o.idle_check_timeout_ms : 5000)
				: l->o.client.deadline_ms);
		s = gw_client_rset(l->c, r);
		gw_client_set_deadline(l->c, l->o.client.deadline_ms);
		if (s == GW_OK && gw_reply_class(r->code) == 2) {
			l->dirty = 0;
			*reused_r = 1;
			return GW_OK;
		}
		gw_log(GW_LOG_DEBUG, "lmtp_rset", "gateway=%s status=%s code=%d, reconnecting", a->key,
		       gw_status_str(s), r->code);
	}
	gw_lmtp_close(l);
	return gw_client_open(l->c, a->hop, r);
}

/* A NUL in the body: permanent for every survivor, decided here (never put on the wire). */
static void content_refused(attempt *a, const size_t *surv, size_t ns)
{
	char text[GW_LMTP_TEXT_MAX];
	size_t k;

	snprintf(text, sizeof(text), "%s", gw_client_error(a->l->c));
	for (k = 0; k < ns; k++)
		lm_result_local(res_of(a, surv[k]), GW_LMTP_PERMFAIL, GW_LMTP_STAGE_DATA, 554, "5.6.0", text,
				a->key);
}

/* Survivors without a final reply get the failure that took it. */
static void finals(attempt *a, const size_t *surv, size_t ns, size_t got, gw_status s, int maybe_sent)
{
	int lmtp = a->l->o.client.proto == GW_PROTO_LMTP;
	int uncertain =
	    maybe_sent && (s == GW_E_LOST || s == GW_E_TIMEOUT || s == GW_E_BADREPLY || s == GW_E_TLS);
	size_t k;

	if (s == GW_E_CONTENT) {
		content_refused(a, surv, ns);
		return;
	}
	for (k = lmtp ? got : got > 0 ? ns : 0; k < ns; k++)
		lm_result_transport(res_of(a, surv[k]), GW_LMTP_STAGE_TRANSPORT, s, uncertain,
				    gw_client_error(a->l->c), a->key);
}

/* The final replies as they come: in LMTP the k-th is survivor k's, in SMTP the one reply is everyone's. */
typedef struct final_ctx {
	attempt *a;
	const size_t *surv;
	size_t ns;
} final_ctx;

static void on_final(void *ctx, size_t i, const gw_reply *r)
{
	final_ctx *f = ctx;
	size_t k;

	if (f->a->l->o.client.proto == GW_PROTO_LMTP) {
		if (i < f->ns)
			lm_result_reply(res_of(f->a, f->surv[i]), GW_LMTP_STAGE_DATA, r, f->a->key);
		return;
	}
	for (k = 0; k < f->ns; k++)
		lm_result_reply(res_of(f->a, f->surv[k]), GW_LMTP_STAGE_DATA, r, f->a->key);
}

/* The body, by DATA or BDAT, for the ns accepted recipients. */
static gw_status body(attempt *a, int bdat, const gw_reply *data_r, const size_t *surv, size_t ns)
{
	gw_lmtp *l = a->l;
	size_t nrep = l->o.client.proto == GW_PROTO_LMTP ? ns : 1, got = 0, k;
	body_watch w = {&a->txn->body->src, 0, 0};
	gw_body wb = {watch_read, &w};
	final_ctx f = {a, surv, ns};
	gw_reply chunk_r;
	int last_sent = 0;
	gw_status s;

	if (!bdat && data_r->code != 354) {
		for (k = 0; k < ns; k++)
			reply_not_ok(res_of(a, surv[k]), GW_LMTP_STAGE_DATA, data_r, a->key);
		l->dirty = 1;
		return GW_OK;
	}
	if (bdat) {
		s = gw_client_bdat(l->c, &wb, l->o.bdat_chunk, &chunk_r, nrep, on_final, &f, &got,
				   &last_sent);
		if (s == GW_OK && !last_sent) {
			for (k = 0; k < ns; k++)
				reply_not_ok(res_of(a, surv[k]), GW_LMTP_STAGE_DATA, &chunk_r, a->key);
			l->dirty = 1;
		} else {
			finals(a, surv, ns, got, s, last_sent);
		}
	} else {
		s = cl_body(l->c, &wb, nrep, on_final, &f, &got);
		finals(a, surv, ns, got, s, w.eof && s != GW_E_CONTENT);
	}
	a->body_used |= w.used;
	return s;
}

/* The envelope's side of the attempt: arguments made one at a time, RCPT replies taken as they come. */
typedef struct env_ctx {
	attempt *a;
	unsigned caps;
	gw_buf arg;
	size_t *surv, ns, replied;
} env_ctx;

static const char *env_arg(void *ctx, size_t k)
{
	env_ctx *e = ctx;
	const char *err = "";

	/* Checked before the attempt, so only memory can fail here. */
	if (lm_rcpt_arg(&e->a->txn->rcpts[e->a->idx[k]], e->a->txn->smtputf8, e->caps, &e->arg, &err) < 0)
		return NULL;
	return gw_buf_cstr(&e->arg);
}

static void env_rcpt(void *ctx, size_t k, const gw_reply *r)
{
	env_ctx *e = ctx;

	e->replied = k + 1;
	if (gw_reply_class(r->code) == 2)
		e->surv[e->ns++] = k;
	else
		lm_result_reply(res_of(e->a, k), GW_LMTP_STAGE_RCPT, r, e->a->key);
}

/* MAIL, RCPTs and the body over an open session. *stale_r: a reused session was dead, nothing happened. */
static gw_status transaction(attempt *a, int reused, int *stale_r)
{
	gw_lmtp *l = a->l;
	const gw_lmtp_txn *txn = a->txn;
	unsigned caps = gw_client_caps(l->c);
	unsigned long limit = gw_client_size_limit(l->c);
	int bdat = (caps & GW_CAP_CHUNKING) && !l->o.no_chunking;
	env_ctx e = {a, caps, {0}, NULL, 0, 0};
	cl_envelope_args args = {NULL, a->n, env_arg, env_rcpt, &e, !bdat};
	gw_reply mail_r, data_r;
	const char *err = "";
	gw_status s = GW_E_LOCAL;
	gw_buf b;
	size_t k;
	char text[128];

	*stale_r = 0;
	if (txn->body->size >= 0 && limit > 0 && (unsigned long long)txn->body->size > limit) {
		snprintf(text, sizeof(text), "message size %lld exceeds the gateway's limit of %lu",
			 txn->body->size, limit);
		all_local(a, GW_LMTP_PERMFAIL, GW_LMTP_STAGE_MAIL, 552, "5.3.4", text);
		return GW_OK;
	}
	if (txn->smtputf8 && !(caps & GW_CAP_SMTPUTF8)) {
		all_local(a, GW_LMTP_PERMFAIL, GW_LMTP_STAGE_MAIL, 553, "5.6.7",
			  "SMTPUTF8 is required, but was not offered by the gateway");
		return GW_OK;
	}
	gw_buf_init(&b, ARG_LIMIT);
	gw_buf_init(&e.arg, ARG_LIMIT);
	e.surv = malloc((a->n > 0 ? a->n : 1) * sizeof(*e.surv));
	if (e.surv == NULL || lm_mail_arg(txn, caps, &b, &err) < 0)
		goto oom;
	args.mail_arg = gw_buf_cstr(&b);

	s = cl_envelope(l->c, &args, &mail_r, &data_r);
	if (mail_r.code == 0) {
		if (reused && s == GW_E_LOST) {
			*stale_r = 1;
			goto out;
		}
		all_transport(a, s == GW_E_LOCAL ? GW_LMTP_STAGE_MAIL : GW_LMTP_STAGE_TRANSPORT, s, 0);
		goto out;
	}
	if (gw_reply_class(mail_r.code) != 2) {
		for (k = 0; k < a->n; k++)
			reply_not_ok(res_of(a, k), GW_LMTP_STAGE_MAIL, &mail_r, a->key);
		l->dirty = 1;
		goto out;
	}
	for (k = e.replied; k < a->n; k++)
		lm_result_transport(res_of(a, k), GW_LMTP_STAGE_TRANSPORT, s, 0, gw_client_error(l->c),
				    a->key);
	if (e.ns == 0) {
		/* No recipient: no body (the engine answered a stray 354 with an empty message). */
		l->dirty = 1;
		if (s == GW_E_PROTO)
			s = GW_OK;
		goto out;
	}
	if (s != GW_OK) {
		for (k = 0; k < e.ns; k++)
			lm_result_transport(res_of(a, e.surv[k]), GW_LMTP_STAGE_TRANSPORT, s, 0,
					    gw_client_error(l->c), a->key);
		goto out;
	}
	s = body(a, bdat, &data_r, e.surv, e.ns);
	goto out;
oom:
	all_local(a, GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_MAIL, 0, "4.3.0", "out of memory");
	s = GW_E_LOCAL;
out:
	free(e.surv);
	gw_buf_free(&e.arg);
	gw_buf_free(&b);
	return s;
}

/* Refuse malformed addresses here, before any gateway sees them; keep the rest in a->idx. */
static int check_addresses(attempt *a)
{
	char text[GW_LMTP_TEXT_MAX];
	const char *err = "";
	size_t k, kept = 0;
	gw_buf b;

	gw_buf_init(&b, ARG_LIMIT);
	if (lm_mail_arg(a->txn, 0, &b, &err) < 0) {
		snprintf(text, sizeof(text), "bad sender address: %s", err);
		all_local(a, GW_LMTP_PERMFAIL, GW_LMTP_STAGE_MAIL, 553, "5.1.7", text);
		a->n = 0;
	}
	for (k = 0; k < a->n; k++) {
		if (lm_rcpt_arg(&a->txn->rcpts[a->idx[k]], a->txn->smtputf8, 0, &b, &err) < 0) {
			snprintf(text, sizeof(text), "bad recipient address: %s", err);
			lm_result_local(res_of(a, k), GW_LMTP_PERMFAIL, GW_LMTP_STAGE_RCPT, 553, "5.1.3",
					text, a->key);
		} else {
			a->idx[kept++] = a->idx[k];
		}
	}
	a->n = kept;
	gw_buf_free(&b);
	return 0;
}

/*
 * The TLS terms for hop from the caller's hook (see gw_lmtp_set_hop_tls):
 * 0 with the client set up for them, -1 with every survivor TEMPFAIL.
 */
static int hop_terms(gw_lmtp *l, const gw_nexthop *hop, const char *key, attempt *a)
{
	gw_tls_policy policy = l->o.client.tls;
	const gw_tlsa *tlsa = NULL;
	size_t ntlsa = 0, k;
	char why[GW_LMTP_TEXT_MAX] = "";
	const char *enh = "4.7.5";

	if (l->hop_tls == NULL) {
		/* Back to the handle's own policy: a session set up under a hook's terms is not reused. */
		if (gw_client_set_tls(l->c, l->o.client.tls, NULL, 0) == 0)
			return 0;
		snprintf(why, sizeof(why), "out of memory");
		enh = "4.3.0";
	} else if (l->hop_tls(l->hop_tls_ctx, hop, &policy, &tlsa, &ntlsa, why, sizeof(why)) == 0) {
		if (gw_client_set_tls(l->c, policy, tlsa, ntlsa) == 0)
			return 0;
		snprintf(why, sizeof(why), "out of memory");
		enh = "4.3.0";
	}
	for (k = 0; k < a->n; k++)
		lm_result_local(res_of(a, k), GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_CONNECT, 451, enh,
				why[0] ? why : "TLS requirements for this host cannot be met", key);
	return -1;
}

void gw_lmtp_set_hop_tls(gw_lmtp *l, gw_lmtp_hop_tls_fn *fn, void *ctx)
{
	l->hop_tls = fn;
	l->hop_tls_ctx = ctx;
}

gw_status lm_attempt(gw_lmtp *l, const gw_nexthop *hop, const gw_lmtp_txn *txn, const size_t *sel,
		     size_t nsel, gw_lmtp_result *res, int *body_used_r)
{
	char key[GW_LMTP_GATEWAY_MAX];
	attempt a = {l, txn, hop, key, NULL, nsel, res, 0};
	gw_status s = GW_OK;
	gw_reply r;
	size_t k;
	int reused = 0, stale = 0, tries;

	*body_used_r = 0;
	gw_nexthop_format(hop, key, sizeof(key));
	for (k = 0; k < nsel; k++)
		res[sel[k]].attempts++;
	a.idx = malloc((nsel > 0 ? nsel : 1) * sizeof(*a.idx));
	if (a.idx == NULL) {
		for (k = 0; k < nsel; k++)
			lm_result_local(&res[sel[k]], GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_CONNECT, 0, "4.3.0",
					"out of memory", key);
		return GW_E_LOCAL;
	}
	memcpy(a.idx, sel, nsel * sizeof(*a.idx));
	check_addresses(&a);
	if (a.n > 0 && hop_terms(l, hop, key, &a) != 0) {
		free(a.idx); /* every survivor has its result: this hop is not tried, and has no details */
		return GW_E_TLS;
	}
	for (tries = 0; tries < 2 && a.n > 0; tries++) {
		s = session(&a, tries == 0, &reused, &r);
		if (s == GW_E_REJECTED) {
			for (k = 0; k < a.n; k++)
				reply_not_ok(res_of(&a, k), open_stage(gw_client_stage(l->c)), &r, key);
			/* A gateway that will not talk to us is its problem, not the recipients': try the
			 * next one. */
			for (k = 0; k < a.n; k++)
				res_of(&a, k)->state = GW_LMTP_TEMPFAIL;
			break;
		}
		if (s != GW_OK) {
			all_transport(&a, open_stage(gw_client_stage(l->c)), s, 0);
			break;
		}
		snprintf(l->hop_key, sizeof(l->hop_key), "%s", key);
		s = transaction(&a, reused, &stale);
		if (!stale)
			break;
		gw_log(GW_LOG_DEBUG, "lmtp_stale", "gateway=%s reused connection was closed, reconnecting",
		       key);
	}
	l->last_used = gw_now_ms();
	lm_details_note(l, key);
	for (k = 0; k < a.n; k++)
		lm_result_log(GW_LOG_DEBUG, "lmtp_attempt", &txn->rcpts[a.idx[k]], res_of(&a, k));
	*body_used_r = a.body_used;
	free(a.idx);
	return s;
}

void lm_details_reset(gw_lmtp *l)
{
	l->ndetails = 0;
}

void gw_lmtp_set_deadline(gw_lmtp *l, unsigned ms)
{
	l->o.client.deadline_ms = ms; /* a reused session renews its deadline from here */
	l->c->o.deadline_ms = ms;     /* and a new connection starts with it */
}

void lm_details_note(gw_lmtp *l, const char *gateway)
{
	lm_hop_detail *d;
	size_t i;

	for (i = 0; i < l->ndetails; i++)
		if (strcmp(l->details[i].gateway, gateway) == 0)
			break;
	if (i == l->ndetails) {
		if (l->ndetails == l->details_cap) {
			size_t cap = l->details_cap ? l->details_cap * 2 : 4;
			lm_hop_detail *nd = realloc(l->details, cap * sizeof(*nd));
			if (nd == NULL)
				return; /* only the log loses a detail */
			l->details = nd;
			l->details_cap = cap;
		}
		l->ndetails++;
	}
	d = &l->details[i];
	snprintf(d->gateway, sizeof(d->gateway), "%s", gateway);
	snprintf(d->peer, sizeof(d->peer), "%s", gw_client_peer(l->c));
	snprintf(d->tls, sizeof(d->tls), "%s", gw_client_tls_desc(l->c));
}

int gw_lmtp_hop_detail(const gw_lmtp *l, const char *gateway, const char **peer_r, const char **tls_r)
{
	size_t i;

	for (i = 0; l != NULL && gateway != NULL && i < l->ndetails; i++)
		if (strcmp(l->details[i].gateway, gateway) == 0) {
			*peer_r = l->details[i].peer;
			*tls_r = l->details[i].tls;
			return 0;
		}
	return -1;
}

gw_status gw_lmtp_send(gw_lmtp *l, const gw_nexthop *hop, const gw_lmtp_txn *txn, gw_lmtp_result *results_r)
{
	size_t *sel, i;
	gw_status s;
	int used;

	if (l == NULL || hop == NULL || !lm_txn_ok(txn, results_r))
		return GW_E_LOCAL;
	if (txn->nrcpts == 0)
		return GW_OK;
	memset(results_r, 0, txn->nrcpts * sizeof(*results_r));
	sel = malloc(txn->nrcpts * sizeof(*sel));
	if (sel == NULL)
		return GW_E_LOCAL;
	for (i = 0; i < txn->nrcpts; i++)
		sel[i] = i;
	lm_details_reset(l);
	s = lm_attempt(l, hop, txn, sel, txn->nrcpts, results_r, &used);
	free(sel);
	lm_report(txn, results_r);
	return s;
}
