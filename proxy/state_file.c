/*
 * state_file.c - gw-proxy's pool retirements and destination marks across
 * a restart (see state_file.h): the text format, its strict parser, the
 * atomic write and the thread that saves periodically.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gw/log.h"
#include "gw/time.h"
#include "state_file.h"

#define TIME_MAX 10000000000000000LL /* 10^16 ms, year 318857: keeps every difference far from overflow */

struct gwp_state {
	char *path;
	gwp_pool *pool;
	gwp_watch *watch;
	int64_t (*wall)(void);
	int64_t retire_max, mark_max;
	pthread_mutex_t lock; /* one save at a time; hash, failing */
	uint64_t hash;
	int have_hash, failing;
	int hold; /* the file at start could be neither read nor moved aside: never written over */
	pthread_mutex_t tlock; /* the thread's stop flag */
	pthread_cond_t cond;
	pthread_t thread;
	int started, stop;
	long interval_ms;
};

static int64_t wall_clock(void)
{
	return gw_clock_wall.now_ms(gw_clock_wall.ctx);
}

/* --- checks shared by the writer and the parser ------------------------------------------------ */

static int good_addr(const char *a)
{
	unsigned char b[16];

	return strlen(a) < sizeof(((gwp_pool_saved *)0)->addr) &&
	       (inet_pton(AF_INET, a, b) == 1 || inet_pton(AF_INET6, a, b) == 1);
}

/* A destination as pool.c and watch.c key it: a host name or address, no space, printable. */
static int good_dest(const char *d)
{
	size_t i, n = strlen(d);

	if (n == 0 || n >= sizeof(((gwp_pool_saved *)0)->dest))
		return 0;
	for (i = 0; i < n; i++)
		if (d[i] <= ' ' || d[i] > '~')
			return 0;
	return 1;
}

/* --- the parser -------------------------------------------------------------------------------- */

/* The next space-separated field of *cur into f[fsize]; 0 when there is none or it is too long. */
static int field(const char **cur, char *f, size_t fsize)
{
	const char *s = *cur, *e;

	if (*s != ' ')
		return 0;
	s++;
	e = s + strcspn(s, " ");
	if (e == s || (size_t)(e - s) >= fsize)
		return 0;
	memcpy(f, s, (size_t)(e - s));
	f[e - s] = '\0';
	*cur = e;
	return 1;
}

/* A decimal number below TIME_MAX: digits only, no sign, no leading zero but "0". */
static int number(const char **cur, int64_t *v)
{
	char f[24];
	size_t i;
	int64_t x = 0;

	if (!field(cur, f, sizeof(f)) || (f[0] == '0' && f[1] != '\0'))
		return 0;
	for (i = 0; f[i] != '\0'; i++) {
		if (f[i] < '0' || f[i] > '9' || x >= TIME_MAX / 10)
			return 0;
		x = x * 10 + (f[i] - '0');
	}
	*v = x;
	return x < TIME_MAX;
}

typedef struct pass {
	int64_t wall, retire_max, mark_max;
	gwp_pool *pool;
	gwp_watch *watch; /* NULL both: check only */
	gwp_state_counts c;
	size_t nretired, nmarks;
	char *err;
	size_t errlen;
	unsigned line;
} pass;

static int bad(pass *x, const char *msg)
{
	snprintf(x->err, x->errlen, "line %u: %s", x->line, msg);
	return -1;
}

/* left_ms, at most max_ms (0: no cap); counted when cut. */
static int64_t cap(pass *x, int64_t left_ms, int64_t max_ms)
{
	if (max_ms <= 0 || left_ms <= max_ms)
		return left_ms;
	x->c.capped++;
	return max_ms;
}

static int retired_line(pass *x, const char *cur)
{
	char addr[sizeof(((gwp_pool_saved *)0)->addr)], dest[sizeof(((gwp_pool_saved *)0)->dest)];
	int64_t at, until;

	if (!field(&cur, addr, sizeof(addr)) || !good_addr(addr))
		return bad(x, "retired: want a numeric IPv4 or IPv6 address");
	if (!field(&cur, dest, sizeof(dest)) || !good_dest(dest))
		return bad(x, "retired: want a destination");
	if (!number(&cur, &at) || !number(&cur, &until))
		return bad(x, "retired: want two times in ms since the epoch");
	if (*cur != '\0')
		return bad(x, "retired: text after the last field");
	if (at > until)
		return bad(x, "retired: retired after its end");
	if (++x->nretired > GWP_POOL_ENTRIES)
		return bad(x, "more retired lines than the pool holds");
	if (until <= x->wall) {
		x->c.expired++;
	} else if (x->pool != NULL) {
		gwp_pool_import(x->pool, addr, dest, at < x->wall ? x->wall - at : 0,
				cap(x, until - x->wall, x->retire_max));
		x->c.retired++;
	}
	return 0;
}

static int mark_line(pass *x, const char *cur)
{
	gwp_watch_saved s;
	int64_t at, until, tarpit, throttle;

	memset(&s, 0, sizeof(s));
	if (!field(&cur, s.dest, sizeof(s.dest)) || !good_dest(s.dest))
		return bad(x, "mark: want a destination");
	if (!number(&cur, &at) || !number(&cur, &until))
		return bad(x, "mark: want two times in ms since the epoch");
	if (!number(&cur, &tarpit) || !number(&cur, &throttle) || (uint64_t)tarpit > ULONG_MAX ||
	    (uint64_t)throttle > ULONG_MAX)
		return bad(x, "mark: want the tarpit and throttle counts");
	if (*cur == ' ') /* the rest of the line: the last reply's text, may be empty */
		cur++;
	if (strlen(cur) >= sizeof(s.why))
		return bad(x, "mark: reply text too long");
	if (at > until)
		return bad(x, "mark: marked after its end");
	if (++x->nmarks > GWP_WATCH_ENTRIES)
		return bad(x, "more mark lines than the table holds");
	snprintf(s.why, sizeof(s.why), "%s", cur);
	s.tarpit = (unsigned long)tarpit;
	s.throttle = (unsigned long)throttle;
	if (until <= x->wall) {
		x->c.expired++;
	} else if (x->watch != NULL) {
		if (gwp_watch_import(x->watch, &s, at < x->wall ? x->wall - at : 0,
				     cap(x, until - x->wall, x->mark_max)) == 0)
			x->c.marks++;
	}
	return 0;
}

/* One pass over the text: checks every line, imports when x has tables. */
static int run_pass(pass *x, const char *buf, size_t len)
{
	char line[GWP_STATE_MAX_LINE + 1];
	size_t off = 0;
	int ended = 0;

	if (len == 0)
		return bad(x, "empty file");
	while (off < len) {
		const char *nl = memchr(buf + off, '\n', len - off);
		size_t ll = nl != NULL ? (size_t)(nl - (buf + off)) : len - off, i;
		int64_t n;
		const char *cur;

		x->line++;
		if (nl == NULL)
			return bad(x, "no newline at the end (truncated?)");
		if (ll > GWP_STATE_MAX_LINE)
			return bad(x, "line too long");
		if (ended)
			return bad(x, "text after the end line");
		memcpy(line, buf + off, ll);
		line[ll] = '\0';
		off += ll + 1;
		for (i = 0; i < ll; i++)
			if (line[i] < ' ' || line[i] > '~')
				return bad(x, "not printable ASCII");
		if (x->line == 1) {
			if (strcmp(line, GWP_STATE_MAGIC) == 0)
				continue;
			return bad(x, strncmp(line, "gw-proxy-state ", 15) == 0
					  ? "a version this gw-proxy does not know"
					  : "not a gw-proxy state file");
		}
		if (strncmp(line, "retired ", 8) == 0) {
			if (retired_line(x, line + 7) != 0)
				return -1;
		} else if (strncmp(line, "mark ", 5) == 0) {
			if (mark_line(x, line + 4) != 0)
				return -1;
		} else if (strncmp(line, "end ", 4) == 0) {
			cur = line + 3;
			if (!number(&cur, &n) || *cur != '\0')
				return bad(x, "end: want the number of entries");
			if ((uint64_t)n != x->nretired + x->nmarks)
				return bad(x, "end: the number of entries differs (truncated?)");
			ended = 1;
		} else {
			return bad(x, "unknown line");
		}
	}
	return ended ? 0 : bad(x, "no end line (truncated?)");
}

int gwp_state_parse(const char *buf, size_t len, int64_t wall_ms, int64_t retire_max_ms, int64_t mark_max_ms,
		    gwp_pool *p, gwp_watch *w, gwp_state_counts *c_r, char *err, size_t errlen)
{
	pass x;

	memset(&x, 0, sizeof(x));
	x.wall = wall_ms;
	x.retire_max = retire_max_ms;
	x.mark_max = mark_max_ms;
	x.err = err;
	x.errlen = errlen;
	if (run_pass(&x, buf, len) != 0) /* all or nothing: check it all first */
		return -1;
	memset(&x.c, 0, sizeof(x.c));
	x.nretired = x.nmarks = 0;
	x.line = 0;
	x.pool = p;
	x.watch = w;
	if (run_pass(&x, buf, len) != 0)
		return -1;
	*c_r = x.c;
	return 0;
}

/* --- the writer -------------------------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
	const unsigned char *b = data;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* t in the table's clock (now then) on the wall clock (wall then), kept in the file's range. */
static long long on_wall(int64_t t, int64_t now, int64_t wall)
{
	int64_t v = wall + (t - now);

	return v < 0 ? 0 : v >= TIME_MAX ? TIME_MAX - 1 : v;
}

int gwp_state_text(gwp_pool *p, gwp_watch *w, int64_t wall_ms, char **text_r, size_t *len_r, uint64_t *hash_r)
{
	int64_t pnow, wnow;
	/* room for what the tables hold now (a first count), plus a few made meanwhile */
	size_t mp = gwp_pool_export(p, NULL, 0, &pnow) + 16, mw = gwp_watch_export(w, NULL, 0, &wnow) + 16;
	gwp_pool_saved *ps = malloc(mp * sizeof(*ps));
	gwp_watch_saved *ws = malloc(mw * sizeof(*ws));
	uint64_t h = 14695981039346656037ULL;
	size_t np, nw, i, n = 0;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (ps == NULL || ws == NULL || (f = open_memstream(&text, &len)) == NULL) {
		free(ps);
		free(ws);
		return -1;
	}
	np = gwp_pool_export(p, ps, mp, &pnow);
	nw = gwp_watch_export(w, ws, mw, &wnow);
	np = np < mp ? np : mp; /* more made since the count: the next save has them */
	nw = nw < mw ? nw : mw;
	fprintf(f, "%s\n", GWP_STATE_MAGIC);
	for (i = 0; i < np; i++) {
		/* a line the parser would refuse loses the whole file: leave such an entry out */
		if (!good_addr(ps[i].addr) || !good_dest(ps[i].dest))
			continue;
		fprintf(f, "retired %s %s %lld %lld\n", ps[i].addr, ps[i].dest,
			on_wall(ps[i].at, pnow, wall_ms), on_wall(ps[i].until, pnow, wall_ms));
		h = fnv(h, ps[i].addr, strlen(ps[i].addr) + 1);
		h = fnv(h, ps[i].dest, strlen(ps[i].dest) + 1);
		h = fnv(h, &ps[i].at, sizeof(ps[i].at));
		h = fnv(h, &ps[i].until, sizeof(ps[i].until));
		n++;
	}
	for (i = 0; i < nw; i++) {
		char *c;
		if (!good_dest(ws[i].dest))
			continue;
		ws[i].why[sizeof(ws[i].why) - 1] = '\0';
		for (c = ws[i].why; *c != '\0'; c++)
			if (*c < ' ' || *c > '~')
				*c = '?';
		fprintf(f, "mark %s %lld %lld %lu %lu%s%s\n", ws[i].dest, on_wall(ws[i].at, wnow, wall_ms),
			on_wall(ws[i].until, wnow, wall_ms), ws[i].tarpit, ws[i].throttle,
			ws[i].why[0] ? " " : "", ws[i].why);
		h = fnv(h, ws[i].dest, strlen(ws[i].dest) + 1);
		h = fnv(h, ws[i].why, strlen(ws[i].why) + 1);
		h = fnv(h, &ws[i].tarpit, sizeof(ws[i].tarpit));
		h = fnv(h, &ws[i].throttle, sizeof(ws[i].throttle));
		h = fnv(h, &ws[i].at, sizeof(ws[i].at));
		h = fnv(h, &ws[i].until, sizeof(ws[i].until));
		n++;
	}
	fprintf(f, "end %zu\n", n);
	free(ps);
	free(ws);
	if (fclose(f) != 0) {
		free(text);
		return -1;
	}
	*text_r = text;
	*len_r = len;
	if (hash_r != NULL)
		*hash_r = h;
	return 0;
}

/* text[len] into path: PATH.tmp (0600), fsync, rename, fsync the directory. 0 or -1 with err. */
static int write_atomic(const char *path, const char *text, size_t len, char *err, size_t errlen)
{
	char tmp[4096], dir[4096], *slash;
	const char *step = "open";
	size_t off = 0;
	int fd, dfd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) {
		snprintf(err, errlen, "%s %.300s: %s", step, tmp, strerror(errno));
		return -1;
	}
	step = "write";
	if (fchmod(fd, 0600) != 0) /* an old PATH.tmp keeps its mode through O_CREAT */
		goto fail;
	while (off < len) {
		ssize_t k = write(fd, text + off, len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			goto fail;
		off += (size_t)k;
	}
	step = "fsync";
	if (fsync(fd) != 0)
		goto fail;
	step = "close";
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	step = "rename";
	if (rename(tmp, path) != 0)
		goto fail;
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		slash[slash == dir] = '\0'; /* "/state" -> "/" */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd); /* the rename on disk too; a failure here leaves a good file behind */
		close(dfd);
	}
	return 0;
fail:
	snprintf(err, errlen, "%s %.300s: %s", step, tmp, strerror(errno));
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
	return -1;
}

/* --- the daemon's side ------------------------------------------------------------------------- */

gwp_state *gwp_state_new(const char *path, gwp_pool *p, gwp_watch *w, int64_t (*wall)(void))
{
	gwp_state *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->path = strdup(path)) == NULL) {
		free(s);
		return NULL;
	}
	s->pool = p;
	s->watch = w;
	s->wall = wall != NULL ? wall : wall_clock;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->tlock, NULL);
	pthread_cond_init(&s->cond, NULL);
	return s;
}

/* The whole file at fd, at most GWP_STATE_MAX_FILE bytes, malloc'd. NULL with err. */
static char *read_all(int fd, size_t *len_r, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	size_t len = 0;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "not a regular file");
		return NULL;
	}
	if (st.st_size > GWP_STATE_MAX_FILE) {
		snprintf(err, errlen, "larger than %ld bytes", GWP_STATE_MAX_FILE);
		return NULL;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (;;) { /* one byte more than fstat said: a file that grows shows */
		ssize_t k = read(fd, buf + len, (size_t)st.st_size + 1 - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			free(buf);
			return NULL;
		}
		if (k == 0)
			break;
		len += (size_t)k;
		if (len > (size_t)st.st_size) {
			snprintf(err, errlen, "changed while read");
			free(buf);
			return NULL;
		}
	}
	*len_r = len;
	return buf;
}

void gwp_state_caps(gwp_state *s, int64_t retire_max_ms, int64_t mark_max_ms)
{
	s->retire_max = retire_max_ms;
	s->mark_max = mark_max_ms;
}

int gwp_state_load(gwp_state *s)
{
	char err[512], bad_path[4200];
	gwp_state_counts c;
	size_t len = 0;
	char *buf, *text;
	int fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0 && errno == ENOENT) {
		gw_log(GW_LOG_INFO, "state", "file=%s status=none (starting with an empty state)", s->path);
		return 0;
	}
	if (fd < 0) {
		snprintf(err, sizeof(err), "open: %s", strerror(errno));
		buf = NULL;
	} else {
		buf = read_all(fd, &len, err, sizeof(err));
		close(fd);
	}
	if (buf == NULL || gwp_state_parse(buf, len, s->wall(), s->retire_max, s->mark_max, s->pool, s->watch,
					   &c, err, sizeof(err)) != 0) {
		free(buf);
		snprintf(bad_path, sizeof(bad_path), "%s.bad", s->path);
		/* kept for a look; the next save writes a good file in its place */
		if (rename(s->path, bad_path) != 0) {
			snprintf(bad_path, sizeof(bad_path), "(not moved: %s; not written over)",
				 strerror(errno));
			s->hold = 1; /* what it holds may still be good: lose nothing */
		}
		gw_log(GW_LOG_ERR, "state",
		       "file=%s status=error error=\"%s\" moved_to=%s (starting with an empty state)",
		       s->path, err, bad_path);
		return -1;
	}
	free(buf);
	gw_log(GW_LOG_NOTICE, "state", "file=%s status=loaded retired=%zu marked=%zu expired=%zu capped=%zu",
	       s->path, c.retired, c.marks, c.expired, c.capped);
	/* what was loaded is on disk already: the first save waits for a change */
	pthread_mutex_lock(&s->lock);
	if (gwp_state_text(s->pool, s->watch, s->wall(), &text, &len, &s->hash) == 0) {
		s->have_hash = 1;
		free(text);
	}
	pthread_mutex_unlock(&s->lock);
	return 1;
}

int gwp_state_save(gwp_state *s, int force)
{
	char err[512], *text;
	size_t len;
	uint64_t h;
	int rc = 1;

	pthread_mutex_lock(&s->lock);
	if (s->hold) {
		snprintf(err, sizeof(err), "the file found at start was neither read nor moved aside");
		text = NULL;
		len = 0;
		rc = -1;
	} else if (gwp_state_text(s->pool, s->watch, s->wall(), &text, &len, &h) != 0) {
		snprintf(err, sizeof(err), "out of memory");
		rc = -1;
	} else if (!force && s->have_hash && h == s->hash) {
		rc = 0;
	} else if (write_atomic(s->path, text, len, err, sizeof(err)) != 0) {
		rc = -1;
	}
	free(text);
	if (rc < 0) {
		if (!s->failing) /* once per run of failures, not every interval */
			gw_log(GW_LOG_ERR, "state", "file=%s status=error error=\"cannot save: %s\"", s->path,
			       err);
		s->failing = 1;
	} else if (rc > 0) {
		s->hash = h;
		s->have_hash = 1;
		s->failing = 0;
		gw_log(GW_LOG_INFO, "state", "file=%s status=saved bytes=%zu", s->path, len);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static void *saver(void *arg)
{
	gwp_state *s = arg;

	pthread_mutex_lock(&s->tlock);
	while (!s->stop) {
		int64_t t0 = gw_now_ms();
		while (!s->stop && gw_now_ms() - t0 < s->interval_ms)
			gw_cond_wait_ms(&s->cond, &s->tlock, s->interval_ms - (gw_now_ms() - t0));
		if (s->stop)
			break;
		pthread_mutex_unlock(&s->tlock);
		(void)gwp_state_save(s, 0);
		pthread_mutex_lock(&s->tlock);
	}
	pthread_mutex_unlock(&s->tlock);
	return NULL;
}

int gwp_state_start(gwp_state *s, long interval_ms)
{
	s->interval_ms = interval_ms > 0 ? interval_ms : 1000;
	if (pthread_create(&s->thread, NULL, saver, s) != 0)
		return -1;
	s->started = 1;
	return 0;
}

void gwp_state_free(gwp_state **sp)
{
	gwp_state *s = *sp;

	if (s == NULL)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->tlock);
		s->stop = 1;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->tlock);
		pthread_join(s->thread, NULL);
	}
	(void)gwp_state_save(s, 0);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->tlock);
	pthread_mutex_destroy(&s->lock);
	free(s->path);
	free(s);
	*sp = NULL;
}
