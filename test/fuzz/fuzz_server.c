/*
 * fuzz_server.c - libFuzzer target for the sans-IO server engine.
 *
 * The first byte picks the mode (SMTP/LMTP), the bare-newline policy and
 * small limits; the rest is client input. A deterministic driver accepts or
 * refuses each MAIL and RCPT by a hash of its address and answers LMTP final
 * replies in a scrambled order. The input is run twice: whole with answers
 * given at once, and in chunks from the input's own hash with some answers
 * given only after more input was fed. Asserted:
 *  - all output is a sequence of well-formed replies (gw/reply.h parses it);
 *  - an end of data gets exactly one final reply per accepted recipient
 *    (LMTP) or one (SMTP), each answer taken once, a second refused;
 *  - a DATA body never holds a bare CR or LF, and never exceeds max_size;
 *  - the transcript (output, events, body) does not depend on the split or
 *    on when answers came (STARTTLS excepted: what was fed before it is
 *    dropped, so that run is not compared);
 *  - a third run in look-ahead mode, fed whole, answering MAIL and RCPT
 *    only when the engine waits for them (oldest first, never more than one
 *    MAIL and max_rcpts RCPTs owed), sends the same replies byte for byte.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw/reply.h"
#include "gw/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SIZE 300

typedef struct fdrv {
	gw_srv *s;
	gw_srv_mode mode;
	uint64_t h, ho; /* transcript hashes: events and body; output (their interleaving varies) */
	uint64_t rng;   /* chunking and answer delays; 0: whole, immediate */
	int pending;    /* an answer is owed: 1 MAIL/RCPT, 2 final */
	int code;       /* the MAIL/RCPT answer decided for it */
	size_t nrcpt;   /* final replies owed */
	int tls;        /* STARTTLS was seen */
	int in_data;    /* inside a DATA (not BDAT) body */
	int last_cr;    /* the body's last byte was a CR */
	uint64_t body;  /* body bytes in this transaction */
	uint64_t hb;    /* their hash: counted at DATA_END, dropped at RESET (a refused body may have been
			   streamed in part, as far as the split let it) */
	gw_reply_parser p;
	gw_reply r;
	int la; /* look-ahead run: MAIL/RCPT answers are owed[], given in order when the engine waits */
	int owed[16];
	size_t nowed;
} fdrv;

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static uint64_t next_rng(fdrv *d)
{
	d->rng = d->rng * 6364136223846793005ull + 1442695040888963407ull;
	return d->rng >> 33;
}

/* Parse out[0..len) as whole replies; returns how many. */
static size_t count_replies(fdrv *d, const char *out, size_t len)
{
	size_t off = 0, n = 0;

	while (off < len) {
		size_t used;
		const char *err;
		int rc = gw_reply_parse(&d->p, out + off, len - off, &used, &d->r, &err);

		if (rc < 0 || used == 0)
			abort();
		if (rc == 0)
			break;
		off += used;
		n++;
	}
	return n;
}

/* Take the output: it must parse, and ends on a reply boundary. */
static void take_output(fdrv *d)
{
	gw_buf *o = gw_srv_output(d->s);

	count_replies(d, o->data, o->len);
	if (d->p.line_len != 0 || d->p.reply_bytes != 0)
		abort();
	d->ho = mix(d->ho, o->data, o->len);
	gw_buf_consume(o, o->len);
}

static void answer_finals(fdrv *d)
{
	gw_buf *o = gw_srv_output(d->s);
	size_t n = d->mode == GW_SRV_LMTP ? d->nrcpt : 1, i, k, before = o->len;

	if (before != 0)
		abort(); /* output is taken before an answer is given */
	if (d->mode == GW_SRV_SMTP) {
		if (gw_srv_reply(d->s, d->nrcpt % 2 ? 250 : 554, NULL, "final") != 0)
			abort();
	} else {
		/* A scrambled order: odd indexes first, then even ones backwards. */
		for (k = 0; k < n; k++) {
			i = k < n / 2 ? 2 * k + 1 : 2 * (n - 1 - k);
			if (i >= n)
				abort();
			if (gw_srv_reply_rcpt(d->s, i,
					      i % 3 == 0   ? 250
					      : i % 3 == 1 ? 451
							   : 550,
					      NULL, "rcpt") != 0)
				abort();
			/* Answered twice: refused (once all are in, nothing is owed at all). */
			if (gw_srv_reply_rcpt(d->s, i, 250, NULL, "again") != -1 ||
			    errno != (k + 1 < n ? EALREADY : EPROTO))
				abort();
		}
	}
	if (count_replies(d, o->data, o->len) != n)
		abort();
	d->ho = mix(d->ho, o->data, o->len);
	gw_buf_consume(o, o->len);
	if (gw_srv_reply(d->s, 250, NULL, "late") != -1)
		abort();
	d->pending = 0;
}

static void give_answer(fdrv *d)
{
	size_t i;

	if (d->la && d->nowed > 0) {
		if (gw_srv_owed(d->s) != d->nowed)
			abort();
		for (i = 0; i < d->nowed; i++)
			if (gw_srv_reply(d->s, d->owed[i], NULL, "decided") != 0)
				abort();
		d->nowed = 0;
		d->pending = 0;
		return;
	}
	if (d->pending == 1) {
		if (gw_srv_reply(d->s, d->code, NULL, "decided") != 0)
			abort();
		d->pending = 0;
	} else if (d->pending == 2) {
		answer_finals(d);
	}
}

static void check_body(fdrv *d, const char *p, size_t n)
{
	size_t i;

	d->body += n;
	if (d->body > MAX_SIZE)
		abort();
	if (!d->in_data)
		return;
	for (i = 0; i < n; i++) {
		if (d->last_cr != (p[i] == '\n'))
			abort();
		d->last_cr = p[i] == '\r';
	}
}

static void on_event(fdrv *d, const gw_srv_event *ev)
{
	char addr[GW_PATH_MAX + 1];
	uint64_t a;

	/* Body chunks depend on the split; their bytes do not. */
	if (ev->type != GW_SRV_EV_BODY)
		d->h = mix(d->h, &ev->type, sizeof ev->type);
	switch (ev->type) {
	case GW_SRV_EV_MAIL:
	case GW_SRV_EV_RCPT:
		gw_mailbox_format(&ev->path->mbox, addr, sizeof addr);
		a = mix(14695981039346656037ull, addr, strlen(addr));
		d->code = a % 5 == 0 ? 550 : a % 7 == 0 ? 450 : 250;
		d->pending = 1;
		if (d->la) {
			if (d->nowed >= sizeof d->owed / sizeof d->owed[0])
				abort();
			d->owed[d->nowed++] = d->code;
		}
		break;
	case GW_SRV_EV_DATA:
		d->in_data = !ev->bdat;
		d->last_cr = 0;
		d->body = 0;
		d->hb = 14695981039346656037ull;
		break;
	case GW_SRV_EV_BODY:
		if (ev->len == 0 || ev->data == NULL)
			abort();
		check_body(d, ev->data, ev->len);
		d->hb = mix(d->hb, ev->data, ev->len);
		break;
	case GW_SRV_EV_DATA_END:
		if (ev->size != d->body || (d->in_data && d->last_cr))
			abort();
		if (ev->nrcpt == 0)
			abort();
		d->nrcpt = ev->nrcpt;
		d->pending = 2;
		d->h = mix(d->h, &ev->nrcpt, sizeof ev->nrcpt);
		d->h = mix(d->h, &d->hb, sizeof d->hb);
		break;
	case GW_SRV_EV_RESET:
	case GW_SRV_EV_CLOSE:
		d->h = mix(d->h, &ev->reason, sizeof ev->reason);
		break;
	case GW_SRV_EV_STARTTLS:
		d->tls = 1;
		gw_srv_tls_started(d->s);
		break;
	default:
		break;
	}
}

/* Process events; answers now unless this run delays some of them. */
static void drain(fdrv *d)
{
	gw_srv_event ev;

	for (;;) {
		take_output(d);
		if (d->pending && !d->la && (d->rng == 0 || next_rng(d) % 3 != 0))
			give_answer(d);
		if (gw_srv_next(d->s, &ev) == GW_SRV_EV_NONE) {
			take_output(d);
			if (d->pending && gw_srv_waiting(d->s) != GW_SRV_WAIT_ANSWER)
				abort();
			if (d->la && d->pending) { /* every look-ahead is out: answer what is owed */
				give_answer(d);
				continue;
			}
			return;
		}
		if (d->pending && !(d->la && d->pending == 1 &&
				    (ev.type == GW_SRV_EV_RCPT || ev.type == GW_SRV_EV_DATA_AHEAD)))
			abort(); /* nothing moves while an answer is owed, but look-ahead RCPTs */
		on_event(d, &ev);
	}
}

static uint64_t run(const uint8_t *data, size_t size, const gw_srv_config *c, uint64_t split, int *tls_r,
		    uint64_t *out_r)
{
	fdrv d;
	size_t off = 0;
	int stuck = 0;

	memset(&d, 0, sizeof d);
	d.la = c->lookahead;
	d.mode = c->mode;
	d.h = 14695981039346656037ull;
	d.ho = 14695981039346656037ull;
	d.rng = split;
	gw_reply_parser_init(&d.p, 0, 0);
	d.s = gw_srv_new(c);
	if (d.s == NULL)
		abort();
	gw_srv_start(d.s);
	drain(&d);
	while (off < size && stuck < 4) {
		size_t n = size - off, took;

		if (split != 0)
			n = 1 + (size_t)(next_rng(&d) % (n < 64 ? n : 64));
		took = gw_srv_feed(d.s, data + off, n);
		off += took;
		drain(&d);
		/* Input may wait on an answer this run holds back: give it, then feed again. */
		if (took == 0) {
			give_answer(&d);
			drain(&d);
			stuck++;
		} else {
			stuck = 0;
		}
	}
	while (d.pending) {
		give_answer(&d);
		drain(&d);
	}
	*tls_r = d.tls;
	*out_r = d.ho;
	gw_srv_free(&d.s);
	return d.h ^ (d.ho * 31);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gw_srv_config c;
	uint8_t sel;
	uint64_t whole, seed, out1 = 0, out2 = 0;
	int tls1 = 0, tls2 = 0;

	if (size < 1)
		return 0;
	sel = data[0];
	data++;
	size--;
	gw_srv_config_init(&c, sel & 1 ? GW_SRV_LMTP : GW_SRV_SMTP, "mx.example");
	c.bare_newline = sel & 2 ? GW_SRV_BARE_REJECT : GW_SRV_BARE_NORMALIZE;
	c.caps |= GW_SRV_CAP_BINARYMIME | GW_SRV_CAP_AUTH_PARAM;
	if (sel & 4)
		c.caps |= GW_SRV_CAP_STARTTLS;
	if (sel & 8)
		c.caps &= ~(unsigned)(GW_SRV_CAP_ENHANCEDSTATUSCODES | GW_SRV_CAP_SMTPUTF8 | GW_SRV_CAP_DSN);
	c.max_line = sel & 16 ? 40 : 0;
	c.max_text_line = 50;
	c.max_rcpts = sel & 32 ? 2 : 5;
	c.max_size = MAX_SIZE;
	c.max_errors = sel & 64 ? 3 : 1000;
	c.max_input = sel & 128 ? 1 : 4096; /* 1: the least the engine allows (max_line + 8) */
	seed = mix(14695981039346656037ull, data, size) | 1;
	whole = run(data, size, &c, 0, &tls1, &out1);
	if (run(data, size, &c, seed, &tls2, &out2) != whole && !tls1 && !tls2)
		abort();
	c.lookahead = 1;
	(void)run(data, size, &c, 0, &tls2, &out2);
	if (out2 != out1 && !tls1)
		abort();
	return 0;
}
