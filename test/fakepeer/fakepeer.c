/*
 * fakepeer.c - the scriptable fake SMTP/LMTP peer (see fakepeer.h): script
 * parser, loopback listener with its accept thread, one thread per accepted
 * connection running that connection's script, and the per-connection record
 * of every byte received (plaintext after STARTTLS).
 * Does not defend against: a hostile client (records are capped at 64 MiB per
 * connection, nothing more), or scripts that deadlock by design; every read is
 * bounded by the script timeout. It binds 127.0.0.1, ::1 or a unix path only.
 */
#include "fakepeer.h"
#include "fp_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <openssl/err.h>

#define FP_BUF      65536        /* read buffer; longer lines come in pieces */
#define FP_REC_MAX  (64u << 20)  /* record cap per connection */
#define FP_LONG_MAX (64ul << 20) /* largest sendlong */
#define FP_DRAIN_MS 2000         /* reading on after the script ended */
#define FP_SHOW     80           /* received text shown in a failure message */
#define FP_TIMEOUT  5000

enum fp_op {
	OP_SEND,
	OP_RAW,
	OP_EXPECT,
	OP_DATA,
	OP_SLEEP,
	OP_SENDLONG,
	OP_STARTTLS,
	OP_CLOSE,
	OP_RESET,
	OP_SERVE,
	OP_BATCH
};

struct fp_step {
	enum fp_op op;
	unsigned line; /* in the whole script text, for messages */
	char *arg;     /* send: unescaped text and CRLF; raw: unescaped; expect: prefix or NULL */
	size_t len;
	unsigned long n; /* sleep, sendlong, serve */
};

struct fp_script {
	struct fp_step *steps;
	size_t n, cap;
};

struct fp_conn {
	fp_peer *p;
	unsigned idx;
	int fd; /* -1 once closed; written only under p->mu, by the connection's own thread */
	SSL *ssl;
	int tls_up;
	pthread_t th;
	int has_thread;
	char *in; /* read buffer: unread bytes are in[off, len) */
	size_t off, len;
	char *rec; /* record; always NUL-terminated; under p->mu */
	size_t reclen, reccap;
	int ended; /* closed: rec is final and stays put */
};

/* Copies handed out by fp_received while a connection is still live. */
struct fp_snap {
	struct fp_snap *next;
	char data[];
};

struct fp_peer {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC; broadcast on every change of state */
	int lfd;
	int wake[2]; /* self-pipe that stops the accept loop */
	pthread_t acc;
	int acc_started;
	struct fp_script *scripts;
	size_t nscripts;
	struct fp_conn **conns;
	size_t nconns, capconns;
	unsigned port, timeout_ms, sockbuf;
	char *unix_path;
	char cert[PATH_MAX];
	SSL_CTX *ctx;
	char *error;
	size_t done; /* scripted connections whose script ended without failure */
	int failed, stopping;
	struct fp_snap *snaps;
};

enum { RUN_END, RUN_CLOSE, RUN_RESET, RUN_FAILED };

static void lock(const fp_peer *p)
{
	pthread_mutex_lock((pthread_mutex_t *)&p->mu);
}

static void unlock(const fp_peer *p)
{
	pthread_mutex_unlock((pthread_mutex_t *)&p->mu);
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static long ms_until(const struct timespec *ts)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(ts->tv_sec - now.tv_sec) * 1000 + (ts->tv_nsec - now.tv_nsec) / 1000000L;
}

/* ---- script parsing ------------------------------------------------------ */

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decode \r \n \t \\ \xHH into a new buffer with room for `extra` more bytes; NULL on a bad escape. */
static char *unescape(const char *s, size_t n, size_t extra, size_t *len_r)
{
	char *out = malloc(n + extra + 1);
	size_t i, o = 0;

	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] != '\\') {
			out[o++] = s[i];
			continue;
		}
		if (++i == n)
			goto bad;
		switch (s[i]) {
		case 'r':
			out[o++] = '\r';
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case '\\':
			out[o++] = '\\';
			break;
		case 'x':
			if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
				goto bad;
			out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
			break;
		default:
			goto bad;
		}
	}
	*len_r = o;
	return out;
bad:
	free(out);
	return NULL;
}

static int parse_number(const char *s, unsigned long max, unsigned long *n_r)
{
	char *end;
	unsigned long n;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	n = strtoul(s, &end, 10);
	while (*end == ' ' || *end == '\t')
		end++;
	if (errno != 0 || *end != '\0' || n > max)
		return -1;
	*n_r = n;
	return 0;
}

static int only_blank(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return *s == '\0';
}

/* Parse one non-empty, non-comment line (CR stripped, NUL-terminated) into a step. */
static int parse_step(char *l, unsigned line, struct fp_step *st, char *err, size_t errlen)
{
	size_t wl = strcspn(l, " \t");
	char *arg = l + wl;
	int has_arg = 0;

	if (*arg != '\0') {
		arg++; /* exactly one separator: the rest, spaces included, is the argument */
		has_arg = 1;
	}
	memset(st, 0, sizeof *st);
	st->line = line;
#define IS(w) (wl == sizeof(w) - 1 && strncmp(l, w, wl) == 0)
	if (IS("send") || IS("raw")) {
		int send = IS("send");
		st->op = send ? OP_SEND : OP_RAW;
		st->arg = unescape(arg, strlen(arg), 2, &st->len);
		if (st->arg == NULL) {
			snprintf(err, errlen, "script line %u: bad escape", line);
			return -1;
		}
		if (send) {
			st->arg[st->len++] = '\r';
			st->arg[st->len++] = '\n';
		}
		return 0;
	}
	if (IS("batch")) {
		st->op = OP_BATCH;
		st->arg = unescape(arg, strlen(arg), 0, &st->len);
		if (st->arg == NULL || st->len == 0) {
			snprintf(err, errlen, "script line %u: batch needs text", line);
			return -1;
		}
		return 0;
	}
	if (IS("expect")) {
		st->op = OP_EXPECT;
		if (has_arg && *arg != '\0') {
			st->arg = strdup(arg);
			if (st->arg == NULL)
				goto nomem;
			st->len = strlen(arg);
		}
		return 0;
	}
	if (IS("sleep") || IS("sendlong") || IS("serve")) {
		st->op = IS("sleep") ? OP_SLEEP : IS("serve") ? OP_SERVE : OP_SENDLONG;
		if (parse_number(arg, st->op == OP_SENDLONG ? FP_LONG_MAX : 600000ul, &st->n) < 0) {
			snprintf(err, errlen, "script line %u: %.*s needs a number", line, (int)wl, l);
			return -1;
		}
		return 0;
	}
	if (IS("data"))
		st->op = OP_DATA;
	else if (IS("starttls"))
		st->op = OP_STARTTLS;
	else if (IS("close"))
		st->op = OP_CLOSE;
	else if (IS("reset"))
		st->op = OP_RESET;
	else {
		snprintf(err, errlen, "script line %u: unknown command '%.*s'", line,
			 (int)(wl > 40 ? 40 : wl), l);
		return -1;
	}
#undef IS
	if (!only_blank(arg)) {
		snprintf(err, errlen, "script line %u: %.*s takes no argument", line, (int)wl, l);
		return -1;
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static void free_scripts(fp_peer *p)
{
	size_t i, j;

	for (i = 0; i < p->nscripts; i++) {
		for (j = 0; j < p->scripts[i].n; j++)
			free(p->scripts[i].steps[j].arg);
		free(p->scripts[i].steps);
	}
	free(p->scripts);
	p->scripts = NULL;
	p->nscripts = 0;
}

static int add_script(fp_peer *p)
{
	struct fp_script *ns = realloc(p->scripts, (p->nscripts + 1) * sizeof *ns);

	if (ns == NULL)
		return -1;
	p->scripts = ns;
	memset(&ns[p->nscripts++], 0, sizeof *ns);
	return 0;
}

static int parse_script(fp_peer *p, const char *text, char *err, size_t errlen)
{
	const char *s = text;
	unsigned line = 0;

	if (add_script(p) < 0)
		goto nomem;
	while (*s != '\0') {
		const char *e = strchr(s, '\n');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		struct fp_script *sc = &p->scripts[p->nscripts - 1];
		char *l, *t;
		int r;

		line++;
		l = strndup(s, n);
		if (l == NULL)
			goto nomem;
		s += n + (e ? 1 : 0);
		if (n > 0 && l[n - 1] == '\r')
			l[--n] = '\0';
		t = l + strspn(l, " \t");
		if (*t == '\0' || *t == '#') {
			free(l);
			continue;
		}
		if (strncmp(t, "---", 3) == 0 && only_blank(t + 3)) {
			free(l);
			if (add_script(p) < 0)
				goto nomem;
			continue;
		}
		if (sc->n == sc->cap) {
			size_t cap = sc->cap ? sc->cap * 2 : 16;
			struct fp_step *ns = realloc(sc->steps, cap * sizeof *ns);
			if (ns == NULL) {
				free(l);
				goto nomem;
			}
			sc->steps = ns;
			sc->cap = cap;
		}
		r = parse_step(t, line, &sc->steps[sc->n], err, errlen);
		free(l);
		if (r < 0)
			return -1;
		sc->n++;
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* ---- connection I/O ------------------------------------------------------ */

/* Printable rendering of received bytes for a message: line end dropped, others as \xHH, truncated. */
static void show(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0, i;

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	for (i = 0; i < n && o + 8 < outlen; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (o >= FP_SHOW) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (ch >= 0x20 && ch < 0x7f && ch != '\'' && ch != '\\')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
	}
	out[o] = '\0';
}

static void fail(struct fp_conn *c, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record the first failure; the connection that failed closes right after. */
static void fail(struct fp_conn *c, unsigned line, const char *fmt, ...)
{
	fp_peer *p = c->p;
	char msg[512];
	va_list ap;
	int k;

	k = snprintf(msg, sizeof msg, "connection %u line %u: ", c->idx, line);
	va_start(ap, fmt);
	vsnprintf(msg + k, sizeof msg - (size_t)k, fmt, ap);
	va_end(ap);
	lock(p);
	/* Everything breaks while fp_stop tears down; those are not script failures. */
	if (!p->stopping) {
		if (p->error == NULL)
			p->error = strdup(msg);
		p->failed = 1;
	}
	pthread_cond_broadcast(&p->cv);
	unlock(p);
}

static int rec_append(struct fp_conn *c, const char *b, size_t n)
{
	fp_peer *p = c->p;
	int r = 0;

	lock(p);
	if (c->reclen + n + 1 > c->reccap) {
		size_t cap = c->reccap;
		char *nr;
		while (cap < c->reclen + n + 1)
			cap *= 2;
		nr = cap > FP_REC_MAX + 1 ? NULL : realloc(c->rec, cap);
		if (nr == NULL)
			r = -1;
		else {
			c->rec = nr;
			c->reccap = cap;
		}
	}
	if (r == 0) {
		memcpy(c->rec + c->reclen, b, n);
		c->reclen += n;
		c->rec[c->reclen] = '\0';
	}
	unlock(p);
	return r;
}

/* 1 when input is ready, 0 on timeout, -1 on error. */
static int wait_in(struct fp_conn *c, long ms)
{
	struct pollfd pf = {.fd = c->fd, .events = POLLIN};
	int r;

	if (c->ssl != NULL && SSL_pending(c->ssl) > 0)
		return 1;
	do
		r = poll(&pf, 1, ms < 0 ? 0 : (int)(ms > INT_MAX ? INT_MAX : ms));
	while (r < 0 && errno == EINTR);
	return r > 0 ? 1 : r;
}

enum { IO_EOF = 0, IO_ERR = -1, IO_TIMEOUT = -2 };

/* Read what is there into the buffer and the record: bytes read (>0), IO_EOF, IO_ERR or IO_TIMEOUT. */
static int fill(struct fp_conn *c, long ms)
{
	size_t room;
	ssize_t n;
	int w;

	if (c->off == c->len)
		c->off = c->len = 0;
	else if (c->off > 0 && c->len == FP_BUF) {
		memmove(c->in, c->in + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	room = FP_BUF - c->len;
	w = wait_in(c, ms);
	if (w <= 0)
		return w == 0 ? IO_TIMEOUT : IO_ERR;
	if (c->ssl != NULL) {
		int r, e;
		ERR_clear_error();
		r = SSL_read(c->ssl, c->in + c->len, (int)room);
		if (r <= 0) {
			e = SSL_get_error(c->ssl, r);
			ERR_clear_error();
			if (e == SSL_ERROR_ZERO_RETURN)
				return IO_EOF;
			/* SO_RCVTIMEO ran out in the middle of a TLS record */
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return IO_TIMEOUT;
			return IO_ERR;
		}
		n = r;
	} else {
		do
			n = recv(c->fd, c->in + c->len, room, 0);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? IO_TIMEOUT : IO_ERR;
		if (n == 0)
			return IO_EOF;
	}
	if (rec_append(c, c->in + c->len, (size_t)n) < 0)
		return IO_ERR;
	c->len += (size_t)n;
	return (int)n;
}

/* Next line, LF included, from the buffer: 1, or IO_EOF / IO_ERR / IO_TIMEOUT. A line longer
 * than the buffer, or an unterminated last line, comes without its LF. */
static int get_line(struct fp_conn *c, const char **l, size_t *n)
{
	for (;;) {
		char *nl = memchr(c->in + c->off, '\n', c->len - c->off);
		int r;

		if (nl != NULL || (c->off == 0 && c->len == FP_BUF)) {
			*l = c->in + c->off;
			*n = nl ? (size_t)(nl + 1 - *l) : c->len - c->off;
			c->off += *n;
			return 1;
		}
		r = fill(c, c->p->timeout_ms);
		if (r == IO_EOF && c->len > c->off) {
			*l = c->in + c->off;
			*n = c->len - c->off;
			c->off = c->len;
			return 1;
		}
		if (r <= 0)
			return r;
	}
}

static const char *io_what(int r, unsigned timeout_ms, char *buf, size_t len)
{
	if (r == IO_EOF)
		return "end of connection";
	if (r == IO_TIMEOUT)
		snprintf(buf, len, "nothing in %u ms", timeout_ms);
	else
		snprintf(buf, len, "read error");
	return buf;
}

static int put(struct fp_conn *c, const char *b, size_t n)
{
	while (n > 0) {
		if (c->ssl != NULL) {
			int r;
			ERR_clear_error();
			r = SSL_write(c->ssl, b, n > INT_MAX ? INT_MAX : (int)n);
			if (r <= 0) {
				ERR_clear_error();
				return -1;
			}
			b += r;
			n -= (size_t)r;
		} else {
			/* MSG_NOSIGNAL: a client that went away must not kill the test with SIGPIPE. */
			ssize_t r = send(c->fd, b, n, MSG_NOSIGNAL);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			b += r;
			n -= (size_t)r;
		}
	}
	return 0;
}

/* Pause ms, or less if fp_stop comes: 0, or -1 when stopping. */
static int nap(fp_peer *p, unsigned long ms)
{
	struct timespec ts;
	int stopping;

	deadline_in(&ts, (unsigned)ms);
	lock(p);
	while (!p->stopping && pthread_cond_timedwait(&p->cv, &p->mu, &ts) != ETIMEDOUT)
		;
	stopping = p->stopping;
	unlock(p);
	return stopping ? -1 : 0;
}

/* ---- the script interpreter ---------------------------------------------- */

static int do_expect(struct fp_conn *c, const struct fp_step *st)
{
	char what[FP_SHOW * 4 + 16], got[FP_SHOW * 4 + 16];
	const char *l;
	size_t n, k, i;
	int r = get_line(c, &l, &n);

	if (r != 1) {
		if (st->arg)
			fail(c, st->line, "expected '%s', got %s", st->arg,
			     io_what(r, c->p->timeout_ms, what, sizeof what));
		else
			fail(c, st->line, "expected a line, got %s",
			     io_what(r, c->p->timeout_ms, what, sizeof what));
		return -1;
	}
	if (st->arg == NULL)
		return 0;
	k = n;
	while (k > 0 && (l[k - 1] == '\n' || l[k - 1] == '\r'))
		k--;
	for (i = 0; i < st->len && i < k; i++) {
		unsigned char a = (unsigned char)l[i], b = (unsigned char)st->arg[i];
		if (a >= 'A' && a <= 'Z')
			a = (unsigned char)(a - 'A' + 'a');
		if (b >= 'A' && b <= 'Z')
			b = (unsigned char)(b - 'A' + 'a');
		if (a != b)
			break;
	}
	if (i == st->len)
		return 0;
	show(l, n, got, sizeof got);
	fail(c, st->line, "expected '%s', got '%s'", st->arg, got);
	return -1;
}

static int do_data(struct fp_conn *c, const struct fp_step *st)
{
	char what[64];
	int bol = 1;

	for (;;) {
		const char *l;
		size_t n;
		int r = get_line(c, &l, &n);

		if (r != 1) {
			fail(c, st->line, "expected message data ending with '.', got %s",
			     io_what(r, c->p->timeout_ms, what, sizeof what));
			return -1;
		}
		if (bol && ((n == 3 && memcmp(l, ".\r\n", 3) == 0) || (n == 2 && memcmp(l, ".\n", 2) == 0)))
			return 0;
		bol = l[n - 1] == '\n';
	}
}

static int do_sendlong(struct fp_conn *c, const struct fp_step *st)
{
	char *b = malloc(st->n + 2);
	int r;

	if (b == NULL) {
		fail(c, st->line, "out of memory");
		return -1;
	}
	memset(b, 'x', st->n);
	memcpy(b + st->n, "\r\n", 2);
	r = put(c, b, st->n + 2);
	free(b);
	if (r < 0)
		fail(c, st->line, "send failed: %s", strerror(errno));
	return r;
}

/* The server side of STARTTLS. 0: TLS is up; -1: script failure (the client did not start
 * TLS); 1: the client started TLS and gave up (e.g. it rejected the certificate), which a test
 * may want, so it ends the connection without a failure. */
static int do_starttls(struct fp_conn *c, const struct fp_step *st)
{
	char got[FP_SHOW * 4 + 16], what[64];
	unsigned char b;
	ssize_t n;
	int w;

	if (c->ssl != NULL) {
		fail(c, st->line, "starttls: TLS is already on");
		return -1;
	}
	if (c->len > c->off) {
		show(c->in + c->off, c->len - c->off, got, sizeof got);
		fail(c, st->line, "starttls: client sent '%s' before the TLS handshake", got);
		return -1;
	}
	w = wait_in(c, c->p->timeout_ms);
	if (w <= 0) {
		fail(c, st->line, "starttls: client did not start TLS, got %s",
		     io_what(w == 0 ? IO_TIMEOUT : IO_ERR, c->p->timeout_ms, what, sizeof what));
		return -1;
	}
	do
		n = recv(c->fd, &b, 1, MSG_PEEK);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		fail(c, st->line, "starttls: client did not start TLS, got %s",
		     n == 0 ? "end of connection" : "read error");
		return -1;
	}
	if (b != 0x16) { /* not a TLS handshake record: show (and record) what came instead */
		int r = fill(c, c->p->timeout_ms);
		if (r > 0)
			show(c->in + c->off, c->len - c->off, got, sizeof got);
		else
			snprintf(got, sizeof got, "?");
		fail(c, st->line, "starttls: client did not start TLS, got '%s'", got);
		return -1;
	}
	c->ssl = SSL_new(c->p->ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		fail(c, st->line, "starttls: cannot make a TLS session");
		return -1;
	}
	ERR_clear_error();
	if (SSL_accept(c->ssl) != 1) {
		ERR_clear_error();
		return 1;
	}
	c->tls_up = 1;
	return 0;
}

/* ---- serve: a plain SMTP server whose replies come MS after their commands ---- */

#define FP_SERVE_QUEUE 256 /* replies in flight at most; the client's pipelining window is smaller */

struct fp_due {
	int64_t at_us; /* CLOCK_MONOTONIC */
	char text[96];
	size_t len;
	int quit;
};

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Does the line (verb at l) start with word, case-insensitively? */
static int verb_is(const char *l, size_t n, const char *word)
{
	size_t i, k = strlen(word);

	if (n < k)
		return 0;
	for (i = 0; i < k; i++) {
		char ch = l[i];
		if (ch >= 'a' && ch <= 'z')
			ch = (char)(ch - 'a' + 'A');
		if (ch != word[i])
			return 0;
	}
	return 1;
}

/* The reply to one command line; *body_r set after DATA's 354. "" for a body line (no reply). */
static const char *serve_reply(const char *l, size_t n, int *body_r, int *quit_r)
{
	if (*body_r) {
		if ((n == 3 && memcmp(l, ".\r\n", 3) == 0) || (n == 2 && memcmp(l, ".\n", 2) == 0)) {
			*body_r = 0;
			return "250 2.0.0 Ok: queued\r\n";
		}
		return "";
	}
	if (verb_is(l, n, "EHLO") || verb_is(l, n, "LHLO"))
		return "250-fakepeer\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n";
	if (verb_is(l, n, "HELO"))
		return "250 fakepeer\r\n";
	if (verb_is(l, n, "MAIL"))
		return "250 2.1.0 Ok\r\n";
	if (verb_is(l, n, "RCPT")) {
		const char *lt = memchr(l, '<', n);
		return lt != NULL && verb_is(lt + 1, n - (size_t)(lt + 1 - l), "UNKNOWN")
			   ? "550 5.1.1 <unknown>: Recipient address rejected: User unknown\r\n"
			   : "250 2.1.5 Ok\r\n";
	}
	if (verb_is(l, n, "RSET") || verb_is(l, n, "NOOP"))
		return "250 2.0.0 Ok\r\n";
	if (verb_is(l, n, "DATA")) {
		*body_r = 1;
		return "354 End data with <CR><LF>.<CR><LF>\r\n";
	}
	if (verb_is(l, n, "QUIT")) {
		*quit_r = 1;
		return "221 2.0.0 Bye\r\n";
	}
	return "502 5.5.2 Error: command not recognized\r\n";
}

/*
 * Answer every command until QUIT, the client closes, or nothing comes for
 * the script timeout (an MTA's idle timeout: closed without a word). Each
 * reply leaves ms after its command line arrived, so replies to pipelined
 * commands leave together: the peer looks like a server across a link with
 * that round-trip time, and a test counts round trips in units of ms.
 */
static int do_serve(struct fp_conn *c, const struct fp_step *st)
{
	struct fp_due *q = calloc(FP_SERVE_QUEUE, sizeof *q);
	char *out = malloc(FP_SERVE_QUEUE * sizeof q->text);
	size_t head = 0, count = 0, out_len;
	int quit;
	int64_t delay = (int64_t)st->n * 1000, idle_since = now_us();
	int body = 0, rc = RUN_CLOSE;

	if (q == NULL || out == NULL) {
		free(q);
		free(out);
		fail(c, st->line, "out of memory");
		return RUN_FAILED;
	}
	for (;;) {
		int64_t now = now_us(), wait_us;
		char *nl;
		int r;

		/* Every reply now due in one write, as an MTA flushes pipelined replies (and no Nagle wait).
		 */
		out_len = 0;
		quit = 0;
		while (count > 0 && q[head].at_us <= now && !quit) {
			memcpy(out + out_len, q[head].text, q[head].len);
			out_len += q[head].len;
			quit = q[head].quit;
			head = (head + 1) % FP_SERVE_QUEUE;
			count--;
		}
		if (out_len > 0 && (put(c, out, out_len) < 0 || quit))
			goto out; /* the client went away, or said QUIT */
		while (count < FP_SERVE_QUEUE &&
		       (nl = memchr(c->in + c->off, '\n', c->len - c->off)) != NULL) {
			const char *l = c->in + c->off;
			size_t n = (size_t)(nl + 1 - l);
			int q_quit = 0;
			const char *t = serve_reply(l, n, &body, &q_quit);
			struct fp_due *d = &q[(head + count) % FP_SERVE_QUEUE];

			c->off += n;
			if (*t == '\0')
				continue;
			d->at_us = now + delay;
			d->len = strlen(t);
			if (d->len > sizeof d->text)
				d->len = sizeof d->text;
			memcpy(d->text, t, d->len);
			d->quit = q_quit;
			count++;
		}
		if (c->off == c->len)
			c->off = c->len = 0;
		else if (c->len == FP_BUF && c->off == 0)
			c->off = c->len = 0; /* a line longer than the buffer: dropped unanswered */
		if (count > 0)
			wait_us = q[head].at_us - now_us();
		else
			wait_us = idle_since + (int64_t)c->p->timeout_ms * 1000 - now_us();
		if (wait_us <= 0 && count == 0)
			goto out; /* idle too long */
		if (wait_us > 0 && (c->ssl == NULL || SSL_pending(c->ssl) == 0)) {
			/* To the microsecond (poll's milliseconds would add up to one per reply). */
			struct pollfd pf = {.fd = c->fd, .events = POLLIN};
			struct timespec ts = {.tv_sec = (time_t)(wait_us / 1000000),
					      .tv_nsec = (long)(wait_us % 1000000) * 1000};

			if (ppoll(&pf, 1, &ts, NULL) == 0)
				continue; /* a reply is due, or the idle limit: the loop decides */
		}
		r = fill(c, 0);
		if (r == IO_EOF || r == IO_ERR)
			goto out;
		if (r > 0)
			idle_since = now_us();
	}
out:
	free(q);
	free(out);
	return rc;
}

/* The bytes not read yet are exactly st->arg, all there after at most one read: what a client wrote at
 * once, and nothing after it (it waits for the replies). */
static int do_batch(struct fp_conn *c, const struct fp_step *st)
{
	char what[FP_SHOW * 4 + 16], got[FP_SHOW * 4 + 16];
	size_t have = c->len - c->off;

	if (have < st->len) {
		int r = fill(c, c->p->timeout_ms);

		if (r <= 0) {
			fail(c, st->line, "expected a batch of %zu bytes, got %s", st->len,
			     io_what(r, c->p->timeout_ms, what, sizeof what));
			return -1;
		}
		have = c->len - c->off;
	}
	if (have == st->len && memcmp(c->in + c->off, st->arg, st->len) == 0) {
		c->off += st->len;
		return 0;
	}
	show(c->in + c->off, have, got, sizeof got);
	show(st->arg, st->len, what, sizeof what);
	fail(c, st->line, "expected the batch '%s' in one read, got '%s'", what, got);
	return -1;
}

static int run_script(struct fp_conn *c, const struct fp_script *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		const struct fp_step *st = &s->steps[i];
		int r;

		switch (st->op) {
		case OP_SEND:
		case OP_RAW:
			if (put(c, st->arg, st->len) < 0) {
				fail(c, st->line, "send failed: %s", strerror(errno));
				return RUN_FAILED;
			}
			break;
		case OP_EXPECT:
			if (do_expect(c, st) < 0)
				return RUN_FAILED;
			break;
		case OP_BATCH:
			if (do_batch(c, st) < 0)
				return RUN_FAILED;
			break;
		case OP_DATA:
			if (do_data(c, st) < 0)
				return RUN_FAILED;
			break;
		case OP_SLEEP:
			if (nap(c->p, st->n) < 0)
				return RUN_FAILED;
			break;
		case OP_SENDLONG:
			if (do_sendlong(c, st) < 0)
				return RUN_FAILED;
			break;
		case OP_STARTTLS:
			r = do_starttls(c, st);
			if (r < 0)
				return RUN_FAILED;
			if (r > 0)
				return RUN_CLOSE;
			break;
		case OP_SERVE:
			return do_serve(c, st);
		case OP_CLOSE:
			return RUN_CLOSE;
		case OP_RESET:
			return RUN_RESET;
		}
	}
	return RUN_END;
}

/* After the script: record whatever the client still sends, until it closes or FP_DRAIN_MS pass. */
static void drain(struct fp_conn *c)
{
	struct timespec end;
	long left;

	deadline_in(&end, FP_DRAIN_MS);
	while ((left = ms_until(&end)) > 0) {
		c->off = c->len = 0;
		if (fill(c, left) <= 0)
			break;
	}
}

static void close_conn(struct fp_conn *c, int reset)
{
	fp_peer *p = c->p;

	if (c->tls_up && !reset) {
		ERR_clear_error();
		SSL_shutdown(c->ssl); /* best effort close_notify */
		ERR_clear_error();
	}
	lock(p);
	if (reset) {
		/* linger 0: close sends RST instead of FIN */
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
	close(c->fd);
	c->fd = -1;
	unlock(p);
	SSL_free(c->ssl);
	c->ssl = NULL;
}

static void script_done(fp_peer *p)
{
	lock(p);
	p->done++;
	pthread_cond_broadcast(&p->cv);
	unlock(p);
}

static void *conn_main(void *arg)
{
	struct fp_conn *c = arg;
	fp_peer *p = c->p;
	int r = run_script(c, &p->scripts[c->idx]);

	switch (r) {
	case RUN_END:
		/* Done as soon as the script ran out, so fp_wait need not sit through the drain. */
		script_done(p);
		drain(c);
		close_conn(c, 0);
		break;
	case RUN_CLOSE:
	case RUN_RESET:
		close_conn(c, r == RUN_RESET);
		script_done(p);
		break;
	default:
		close_conn(c, 0);
		break;
	}
	lock(p);
	c->ended = 1;
	pthread_cond_broadcast(&p->cv);
	unlock(p);
	return NULL;
}

/* ---- listener -------------------------------------------------------------- */

static struct fp_conn *new_conn(fp_peer *p, int fd)
{
	struct fp_conn *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	c->rec = malloc(256);
	if (c->rec == NULL) {
		free(c);
		return NULL;
	}
	c->rec[0] = '\0';
	c->reccap = 256;
	c->p = p;
	c->fd = fd;
	return c;
}

static void add_conn(fp_peer *p, int fd)
{
	struct fp_conn *c = new_conn(p, fd);
	struct timeval tv = {.tv_sec = p->timeout_ms / 1000, .tv_usec = (p->timeout_ms % 1000) * 1000};
	int scripted;

	lock(p);
	if (c != NULL && p->nconns == p->capconns) {
		size_t cap = p->capconns ? p->capconns * 2 : 8;
		struct fp_conn **nc = realloc(p->conns, cap * sizeof *nc);
		if (nc != NULL) {
			p->conns = nc;
			p->capconns = cap;
		}
	}
	if (c == NULL || p->nconns == p->capconns) {
		unlock(p);
		close(fd);
		if (c != NULL)
			free(c->rec);
		free(c);
		return;
	}
	c->idx = (unsigned)p->nconns;
	p->conns[p->nconns++] = c;
	scripted = c->idx < p->nscripts && !p->stopping;
	if (scripted)
		c->in = malloc(FP_BUF);
	if (!scripted || c->in == NULL) {
		/* Beyond the last script: closed at once, without a greeting. */
		close(fd);
		c->fd = -1;
		c->ended = 1;
		pthread_cond_broadcast(&p->cv);
		unlock(p);
		if (scripted) {
			fail(c, 0, "out of memory");
		}
		return;
	}
	unlock(p);
	/* Backstop for blocking reads and writes that poll cannot bound (inside a TLS record). */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (p->sockbuf > 0) {
		/* A peer that answers each command before reading the next, through small buffers. */
		int sb = (int)p->sockbuf;
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sb, sizeof sb);
	}
	if (pthread_create(&c->th, NULL, conn_main, c) != 0) {
		fail(c, 0, "cannot start a connection thread");
		lock(p);
		close(fd);
		c->fd = -1;
		c->ended = 1;
		unlock(p);
		return;
	}
	c->has_thread = 1; /* read by fp_stop only after it joined this thread */
}

static void *accept_main(void *arg)
{
	fp_peer *p = arg;
	struct pollfd pf[2] = {{.fd = p->lfd, .events = POLLIN}, {.fd = p->wake[0], .events = POLLIN}};

	for (;;) {
		int r = poll(pf, 2, -1), fd;

		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		if (pf[1].revents != 0)
			break;
		if ((pf[0].revents & POLLIN) == 0)
			continue;
		fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* out of descriptors and the like: do not spin */
			if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
				poll(&pf[1], 1, 10);
			continue;
		}
		add_conn(p, fd);
	}
	return NULL;
}

static int listen_on(fp_peer *p, const char *spec, unsigned port, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;

	memset(&ss, 0, sizeof ss);
	if (port > 65535) {
		snprintf(err, errlen, "bad port %u", port);
		return -1;
	}
	if (spec == NULL || strcmp(spec, "127.0.0.1") == 0) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons((unsigned short)port);
		sl = sizeof *sin;
	} else if (strcmp(spec, "::1") == 0) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		sin6->sin6_port = htons((unsigned short)port);
		sl = sizeof *sin6;
	} else if (strncmp(spec, "unix:", 5) == 0 && spec[5] != '\0') {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
		struct stat sb;
		if (strlen(spec + 5) >= sizeof sun->sun_path) {
			snprintf(err, errlen, "unix socket path too long");
			return -1;
		}
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, spec + 5);
		sl = sizeof *sun;
		/* a stale socket from an earlier run; anything else at that path is left alone */
		if (lstat(sun->sun_path, &sb) == 0 && S_ISSOCK(sb.st_mode))
			unlink(sun->sun_path);
		p->unix_path = strdup(sun->sun_path);
		if (p->unix_path == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	} else {
		snprintf(err, errlen, "listen must be 127.0.0.1, ::1 or unix:/path");
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (ss.ss_family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 64) < 0) {
		snprintf(err, errlen, "listen on %s: %s", spec ? spec : "127.0.0.1", strerror(errno));
		close(fd);
		free(p->unix_path);
		p->unix_path = NULL;
		return -1;
	}
	p->lfd = fd;
	if (ss.ss_family != AF_UNIX) {
		sl = sizeof ss;
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
			p->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
								: ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return 0;
}

/* ---- public interface -------------------------------------------------------- */

fp_peer *fp_start(const char *script, char *err, size_t errlen)
{
	fp_opts o = {.script = script};

	return fp_start_opts(&o, err, errlen);
}

fp_peer *fp_start_opts(const fp_opts *opts, char *err, size_t errlen)
{
	pthread_condattr_t ca;
	sigset_t all, old;
	fp_peer *p;
	char dummy[1];

	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof dummy;
	}
	err[0] = '\0';
	if (opts == NULL || opts->script == NULL) {
		snprintf(err, errlen, "no script");
		return NULL;
	}
	p = calloc(1, sizeof *p);
	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->lfd = -1;
	p->wake[0] = p->wake[1] = -1;
	p->timeout_ms = opts->timeout_ms ? opts->timeout_ms : FP_TIMEOUT;
	p->sockbuf = opts->sockbuf;
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (parse_script(p, opts->script, err, errlen) < 0)
		goto fail;
	p->ctx = fp_tls_make(opts->tls_name, p->cert, sizeof p->cert, err, errlen);
	if (p->ctx == NULL)
		goto fail;
	if (listen_on(p, opts->listen, opts->port, err, errlen) < 0)
		goto fail;
	if (pipe2(p->wake, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	/* Peer threads take no signals: the test's handlers (and SIGPIPE from TLS writes to a
	 * closed socket, which stays pending and harmless) belong to the test's own threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&p->acc, NULL, accept_main, p) != 0) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		snprintf(err, errlen, "cannot start the accept thread");
		goto fail;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	p->acc_started = 1;
	return p;
fail:
	fp_stop(&p);
	return NULL;
}

unsigned fp_port(const fp_peer *p)
{
	return p->port;
}

const char *fp_cert_file(const fp_peer *p)
{
	return p->cert;
}

int fp_wait(fp_peer *p, unsigned timeout_ms)
{
	struct timespec ts;
	int ok;

	deadline_in(&ts, timeout_ms);
	lock(p);
	while (!p->failed && p->done < p->nscripts)
		if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT)
			break;
	ok = !p->failed && p->done >= p->nscripts;
	unlock(p);
	return ok ? 0 : -1;
}

unsigned fp_connections(const fp_peer *p)
{
	unsigned n;

	lock(p);
	n = (unsigned)p->nconns;
	unlock(p);
	return n;
}

const char *fp_received(const fp_peer *cp, unsigned i, size_t *len_r)
{
	fp_peer *p = (fp_peer *)cp; /* snapshots are kept in the peer */
	const char *r = NULL;
	struct fp_conn *c;

	lock(p);
	if (i < p->nconns) {
		c = p->conns[i];
		if (c->ended) {
			r = c->rec;
		} else {
			/* still growing (and moving): hand out a copy that lives until fp_stop */
			struct fp_snap *s = malloc(sizeof *s + c->reclen + 1);
			if (s != NULL) {
				memcpy(s->data, c->rec, c->reclen + 1);
				s->next = p->snaps;
				p->snaps = s;
				r = s->data;
			}
		}
		if (r != NULL && len_r != NULL)
			*len_r = c->reclen;
	}
	unlock(p);
	return r;
}

const char *fp_error(const fp_peer *p)
{
	const char *e;

	lock(p);
	e = p->error;
	unlock(p);
	return e;
}

unsigned fp_scripted(const fp_peer *p)
{
	return (unsigned)p->nscripts;
}

int fp_conn_ended(const fp_peer *p, unsigned i)
{
	int e;

	lock(p);
	e = i < p->nconns && p->conns[i]->ended;
	unlock(p);
	return e;
}

void fp_stop(fp_peer **pp)
{
	fp_peer *p;
	size_t i;

	if (pp == NULL || *pp == NULL)
		return;
	p = *pp;
	*pp = NULL;
	lock(p);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cv);
	unlock(p);
	if (p->acc_started) {
		ssize_t w;
		do
			w = write(p->wake[1], "x", 1);
		while (w < 0 && errno == EINTR);
		pthread_join(p->acc, NULL);
	}
	/* Wake every connection blocked in poll, read or write; each thread closes its own fd. */
	lock(p);
	for (i = 0; i < p->nconns; i++)
		if (p->conns[i]->fd >= 0)
			shutdown(p->conns[i]->fd, SHUT_RDWR);
	unlock(p);
	for (i = 0; i < p->nconns; i++) {
		struct fp_conn *c = p->conns[i];
		if (c->has_thread)
			pthread_join(c->th, NULL);
		free(c->in);
		free(c->rec);
		free(c);
	}
	free(p->conns);
	while (p->snaps != NULL) {
		struct fp_snap *s = p->snaps;
		p->snaps = s->next;
		free(s);
	}
	if (p->lfd >= 0)
		close(p->lfd);
	if (p->wake[0] >= 0) {
		close(p->wake[0]);
		close(p->wake[1]);
	}
	if (p->unix_path != NULL) {
		unlink(p->unix_path);
		free(p->unix_path);
	}
	if (p->cert[0] != '\0')
		unlink(p->cert);
	SSL_CTX_free(p->ctx);
	free_scripts(p);
	free(p->error);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

unsigned fp_closed_port(void)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	unsigned port = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 0;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == 0)
		port = ntohs(sin.sin_port);
	/*
	 * Kept bound (never listening) until the process exits: a connect is
	 * refused, and no other test's listener or outgoing connection can take
	 * the port meanwhile, as it could once it was closed.
	 */
	if (port == 0)
		close(fd);
	return port;
}
