/*
 * directory.c - the directory client: cache, then one request per lookup:
 * HTTP(S) through a pooled libcurl easy handle, LDAP through a pooled
 * libldap connection (dir_ldap.c, which says why LDAP is not libcurl's).
 *
 * The HTTP pool holds at most max_requests easy handles; a lookup takes an
 * idle one or makes one, and gives it back afterwards, so each handle's own
 * connection cache keeps the HTTP connection open for the next lookup on
 * whichever thread. The LDAP pool holds at most max_requests bound
 * connections the same way. No handle or connection free means the cap is
 * reached: the answer is TEMPORARY at once (an RCPT must not queue behind a
 * slow directory). Every option that does not change per lookup is set when
 * the handle is made; per lookup only the URL, the timeouts and the sink.
 *
 * Bodies are kept up to BODY_MAX bytes (enough to see an LDAP entry or an
 * expected text); the rest is read and dropped, bounded by the timeout.
 *
 * Does not defend against: a server that sends a body slowly up to the
 * timeout (the answer is then TEMPORARY, as it should be, but the handle is
 * busy meanwhile); libcurl's own DNS resolution time beyond the timeout
 * when it was built without the threaded resolver.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "dir_ldap.h"
#include "gw/config.h"
#include "gw/directory.h"

#define BODY_MAX   65536
#define CODES_MAX  16
#define CRED_MAX   1024
#define OWN_CACHE  10000
#define KEY_PREFIX "dir:"
#define POLL_MS    5 /* longest sleep between two looks at a transfer (see perform) */

typedef struct dir_stats {
	atomic_uint_fast64_t lookups, exists, unknown, temporary, from_cache, limited, bad_input, requests,
	    lat_total, lat_max, lat[GW_DIR_LAT_BUCKETS];
	atomic_uint in_flight;
} dir_stats;

struct gw_directory {
	char *url, *ca_file, *expect, *user, *pass;
	int ldap;
	unsigned timeout_ms, connect_timeout_ms, max;
	uint32_t pos_ttl, neg_ttl;
	long exists[CODES_MAX], unknown[CODES_MAX];
	size_t nexists, nunknown;
	gw_cache *cache;
	int own_cache;
	pthread_mutex_t lock;
	CURL **idle; /* max slots */
	size_t nidle;
	unsigned made; /* handles in existence, idle or busy */
	dir_ldap *lp;  /* LDAP: the connection pool (no curl handles then) */
	dir_stats st;
};

typedef struct body {
	char *p;
	size_t len;
} body;

static void handle_free(CURL *h);

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* --- options ------------------------------------------------------------------ */

typedef struct codes_ctx {
	long *v;
	size_t *n;
	int bad;
} codes_ctx;

static int add_code(const char *item, size_t len, void *vctx)
{
	codes_ctx *x = vctx;
	char buf[8], *end;
	long c;

	if (len == 0 || len >= sizeof(buf) || *x->n >= CODES_MAX) {
		x->bad = 1;
		return -1;
	}
	memcpy(buf, item, len);
	buf[len] = '\0';
	c = strtol(buf, &end, 10);
	if (*end != '\0' || c < 100 || c > 599) {
		x->bad = 1;
		return -1;
	}
	x->v[(*x->n)++] = c;
	return 0;
}

static int parse_codes(const char *list, const char *def, long *v, size_t *n)
{
	codes_ctx x = {v, n, 0};

	*n = 0;
	(void)gw_config_list_foreach(list != NULL && *list != '\0' ? list : def, add_code, &x);
	return x.bad || *n == 0 ? -1 : 0;
}

static int has_code(const long *v, size_t n, long c)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i] == c)
			return 1;
	return 0;
}

/* Two lines: user (or bind DN), password. The file must be a regular file others cannot read. */
static int read_credentials(gw_directory *d, const char *path, char *err, size_t errlen)
{
	char buf[CRED_MAX + 1], *nl;
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: readable by group or others (mode %04o): want 0600 or stricter",
			 path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	n = read(fd, buf, CRED_MAX);
	close(fd);
	if (n < 0 || n >= CRED_MAX) {
		snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "too long");
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	if (nl == NULL || nl == buf || memchr(buf, '\0', (size_t)n) != NULL) {
		snprintf(err, errlen, "%s: want two lines: the user (or bind DN), then the password", path);
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	*nl = '\0';
	if (nl > buf && nl[-1] == '\r')
		nl[-1] = '\0';
	nl[1 + strcspn(nl + 1, "\r\n")] = '\0';
	d->user = strdup(buf);
	d->pass = strdup(nl + 1);
	explicit_bzero(buf, sizeof(buf));
	if (d->user == NULL || d->pass == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	return 0;
}

static void wipe_free(char **s)
{
	if (*s != NULL) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

static char *dup_or_null(const char *s)
{
	return s != NULL && *s != '\0' ? strdup(s) : NULL;
}

gw_directory *gw_directory_new(const gw_dir_opts *o, gw_cache *cache, const gw_clock *clock, char *err,
			       size_t errlen)
{
	gw_directory *d;

	if (o == NULL || gw_dir_template_check(o->url, err, errlen) != 0)
		return NULL;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(curl_init_rc));
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&d->lock, NULL);
	d->ldap = strncasecmp(o->url, "ldap", 4) == 0;
	d->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
	d->connect_timeout_ms = o->connect_timeout_ms > 0 && o->connect_timeout_ms < d->timeout_ms
				    ? o->connect_timeout_ms
				    : d->timeout_ms;
	d->max = o->max_requests > 0 ? o->max_requests : 16;
	d->pos_ttl = o->positive_ttl_ms;
	d->neg_ttl = o->negative_ttl_ms;
	if (parse_codes(o->http_exists, "200", d->exists, &d->nexists) != 0 ||
	    parse_codes(o->http_unknown, "404", d->unknown, &d->nunknown) != 0) {
		snprintf(err, errlen, "bad HTTP status list (want up to %d codes 100-599)", CODES_MAX);
		goto fail;
	}
	if ((d->url = strdup(o->url)) == NULL ||
	    (o->ca_file != NULL && *o->ca_file != '\0' && (d->ca_file = strdup(o->ca_file)) == NULL) ||
	    (o->http_expect != NULL && *o->http_expect != '\0' &&
	     (d->expect = dup_or_null(o->http_expect)) == NULL) ||
	    (d->idle = calloc(d->max, sizeof(*d->idle))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (o->credentials_file != NULL && *o->credentials_file != '\0' &&
	    read_credentials(d, o->credentials_file, err, errlen) != 0)
		goto fail;
	if (d->ldap && (d->lp = dir_ldap_new(d->url, d->ca_file, d->user, d->pass, d->connect_timeout_ms,
					     d->max, err, errlen)) == NULL)
		goto fail;
	if (cache != NULL) {
		d->cache = cache;
	} else if ((d->cache = gw_cache_new(OWN_CACHE, clock)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	} else {
		d->own_cache = 1;
	}
	return d;
fail:
	gw_directory_free(&d);
	return NULL;
}

void gw_directory_free(gw_directory **dp)
{
	gw_directory *d;
	size_t i;

	if (dp == NULL || (d = *dp) == NULL)
		return;
	for (i = 0; i < d->nidle; i++)
		handle_free(d->idle[i]);
	free(d->idle);
	dir_ldap_free(&d->lp); /* before the credentials it borrows */
	if (d->own_cache)
		gw_cache_free(&d->cache);
	wipe_free(&d->user);
	wipe_free(&d->pass);
	free(d->url);
	free(d->ca_file);
	free(d->expect);
	pthread_mutex_destroy(&d->lock);
	free(d);
	*dp = NULL;
}

/* --- handles ------------------------------------------------------------------ */

static size_t sink(char *data, size_t size, size_t n, void *vb)
{
	body *b = vb;
	size_t len = size * n, keep = len;

	if (b->len + keep > BODY_MAX)
		keep = BODY_MAX - b->len;
	memcpy(b->p + b->len, data, keep);
	b->len += keep;
	return len; /* the rest is read and dropped: the answer is in the first BODY_MAX bytes */
}

static CURL *handle_make(gw_directory *d)
{
	CURL *h = curl_easy_init();
	CURLM *m = curl_multi_init();

	if (h == NULL || m == NULL) {
		curl_easy_cleanup(h);
		curl_multi_cleanup(m);
		return NULL;
	}
	if (curl_easy_setopt(h, CURLOPT_PRIVATE, (void *)m) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_USERAGENT, "gw-directory") != CURLE_OK ||
	    (d->ca_file != NULL && curl_easy_setopt(h, CURLOPT_CAINFO, d->ca_file) != CURLE_OK) ||
	    (d->user != NULL && (curl_easy_setopt(h, CURLOPT_USERNAME, d->user) != CURLE_OK ||
				 curl_easy_setopt(h, CURLOPT_PASSWORD, d->pass) != CURLE_OK ||
				 curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) != CURLE_OK))) {
		curl_easy_cleanup(h);
		curl_multi_cleanup(m);
		return NULL;
	}
	return h;
}

/* The handle and its multi handle (which holds its open connections). */
static void handle_free(CURL *h)
{
	CURLM *m = NULL;

	(void)curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&m);
	curl_easy_cleanup(h);
	curl_multi_cleanup(m);
}

/*
 * One transfer on h through its own multi handle, polled in short steps.
 * libcurl's TIMEOUT_MS ends the transfer; deadline only guards against a
 * stuck loop.
 */
static CURLcode perform(CURL *h, int64_t deadline)
{
	CURLM *m = NULL;
	CURLMsg *msg;
	CURLcode rc = CURLE_OPERATION_TIMEDOUT;
	int running = 1, left;

	(void)curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&m);
	if (m == NULL || curl_multi_add_handle(m, h) != CURLM_OK)
		return CURLE_FAILED_INIT;
	for (;;) {
		if (curl_multi_perform(m, &running) != CURLM_OK) {
			rc = CURLE_FAILED_INIT;
			break;
		}
		if (running == 0 || gw_now_ms() > deadline)
			break;
		(void)curl_multi_poll(m, NULL, 0, POLL_MS, NULL);
	}
	while ((msg = curl_multi_info_read(m, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == h)
			rc = msg->data.result;
	(void)curl_multi_remove_handle(m, h);
	return rc;
}

/* An idle handle, a new one, or NULL at the cap (*limited set) or on ENOMEM. */
static CURL *handle_take(gw_directory *d, int *limited)
{
	CURL *h = NULL;

	*limited = 0;
	pthread_mutex_lock(&d->lock);
	if (d->nidle > 0) {
		h = d->idle[--d->nidle];
	} else if (d->made < d->max) {
		d->made++;
	} else {
		*limited = 1;
	}
	pthread_mutex_unlock(&d->lock);
	if (h != NULL || *limited)
		return h;
	if ((h = handle_make(d)) == NULL) {
		pthread_mutex_lock(&d->lock);
		d->made--;
		pthread_mutex_unlock(&d->lock);
	}
	return h;
}

static void handle_give(gw_directory *d, CURL *h)
{
	pthread_mutex_lock(&d->lock);
	d->idle[d->nidle++] = h; /* made <= max, so there is room */
	pthread_mutex_unlock(&d->lock);
}

/* --- answers ------------------------------------------------------------------ */

static gw_dir_answer http_answer(const gw_directory *d, long status, const body *b, gw_dir_result *r)
{
	char code[8];

	snprintf(code, sizeof(code), "%ld", status);
	if (has_code(d->exists, d->nexists, status)) {
		if (d->expect != NULL && memmem(b->p, b->len, d->expect, strlen(d->expect)) == NULL) {
			snprintf(r->text, sizeof(r->text), "status %s without the expected content", code);
			return GW_DIR_TEMPORARY;
		}
		return GW_DIR_EXISTS;
	}
	if (has_code(d->unknown, d->nunknown, status))
		return GW_DIR_UNKNOWN;
	snprintf(r->text, sizeof(r->text), "unexpected status %s", code);
	return GW_DIR_TEMPORARY;
}

static void lat_add(dir_stats *st, int64_t ms)
{
	static const int64_t edges[GW_DIR_LAT_BUCKETS - 1] = {10, 100, 1000, 5000};
	uint64_t u = ms > 0 ? (uint64_t)ms : 0, m;
	size_t b = 0;

	while (b < GW_DIR_LAT_BUCKETS - 1 && ms > edges[b])
		b++;
	atomic_fetch_add(&st->lat[b], 1);
	atomic_fetch_add(&st->lat_total, u);
	m = atomic_load(&st->lat_max);
	while (u > m && !atomic_compare_exchange_weak(&st->lat_max, &m, u))
		;
}

/* One request on h for url. */
static gw_dir_answer request(gw_directory *d, CURL *h, const char *url, unsigned timeout, gw_dir_result *r)
{
	char ebuf[CURL_ERROR_SIZE];
	body b;
	CURLcode rc;
	long status = 0;
	gw_dir_answer a;

	if ((b.p = malloc(BODY_MAX)) == NULL) {
		snprintf(r->text, sizeof(r->text), "%s", "out of memory");
		return GW_DIR_TEMPORARY;
	}
	b.len = 0;
	ebuf[0] = '\0';
	if (curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			     (long)(d->connect_timeout_ms < timeout ? d->connect_timeout_ms : timeout)) !=
		CURLE_OK) {
		free(b.p);
		snprintf(r->text, sizeof(r->text), "%s", "libcurl refused the URL");
		return GW_DIR_TEMPORARY;
	}
	rc = perform(h, gw_now_ms() + timeout + 1000);
	(void)curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL); /* ebuf ends with this call */
	if (rc != CURLE_OK) {
		snprintf(r->text, sizeof(r->text), "%s",
			 rc == CURLE_OPERATION_TIMEDOUT ? "timeout"
			 : ebuf[0] != '\0'              ? ebuf
							: curl_easy_strerror(rc));
		a = GW_DIR_TEMPORARY;
	} else {
		(void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		r->status = status;
		a = http_answer(d, status, &b, r);
	}
	free(b.p);
	return a;
}

static void count(gw_directory *d, gw_dir_answer a)
{
	atomic_fetch_add(a == GW_DIR_EXISTS    ? &d->st.exists
			 : a == GW_DIR_UNKNOWN ? &d->st.unknown
					       : &d->st.temporary,
			 1);
}

/* "dir:" + the expanded URL for rcpt; -1 with *why. */
static int url_for(const gw_directory *d, const char *rcpt, char *url, size_t size, const char **why)
{
	const char *at = strrchr(rcpt, '@');

	if (at == NULL) {
		*why = "recipient without a domain";
		return -1;
	}
	memcpy(url, KEY_PREFIX, sizeof(KEY_PREFIX) - 1);
	return gw_dir_expand(d->url, rcpt, (size_t)(at - rcpt), at + 1, strlen(at + 1),
			     url + sizeof(KEY_PREFIX) - 1, size - (sizeof(KEY_PREFIX) - 1), why);
}

gw_dir_answer gw_dir_check(gw_directory *d, const char *rcpt, unsigned budget_ms, gw_dir_result *r)
{
	char key[sizeof(KEY_PREFIX) + GW_DIR_URL_MAX];
	const char *why = NULL, *url = key + sizeof(KEY_PREFIX) - 1;
	gw_cache_value v;
	unsigned timeout = d->timeout_ms;
	int64_t t0 = gw_now_ms();
	int limited = 0, cacheable, busy;
	CURL *h = NULL;
	struct ldap *ld = NULL;

	memset(r, 0, sizeof(r[0]));
	r->status = -1;
	atomic_fetch_add(&d->st.lookups, 1);
	if (url_for(d, rcpt, key, sizeof(key), &why) != 0) {
		/* Not asked, and not "unknown": the directory never said so. */
		r->answer = GW_DIR_TEMPORARY;
		r->source = GW_DIR_SRC_INPUT;
		snprintf(r->text, sizeof(r->text), "%s", why);
		atomic_fetch_add(&d->st.bad_input, 1);
		count(d, r->answer);
		return r->answer;
	}
	cacheable = strlen(key) <= GW_CACHE_KEY_MAX;
	if (cacheable && gw_cache_get(d->cache, key, &v) &&
	    (v.kind == GW_CACHE_POSITIVE || v.kind == GW_CACHE_NEGATIVE)) {
		r->answer = v.kind == GW_CACHE_POSITIVE ? GW_DIR_EXISTS : GW_DIR_UNKNOWN;
		r->source = GW_DIR_SRC_CACHE;
		r->status = v.code;
		atomic_fetch_add(&d->st.from_cache, 1);
		count(d, r->answer);
		r->elapsed_ms = gw_now_ms() - t0;
		return r->answer;
	}
	r->source = d->ldap ? GW_DIR_SRC_LDAP : GW_DIR_SRC_HTTP;
	busy = d->ldap ? (limited = dir_ldap_take(d->lp, &ld) != 0) : (h = handle_take(d, &limited)) == NULL;
	if (busy) {
		r->answer = GW_DIR_TEMPORARY;
		if (limited) {
			r->source = GW_DIR_SRC_LIMIT;
			atomic_fetch_add(&d->st.limited, 1);
		}
		snprintf(r->text, sizeof(r->text), "%s",
			 limited ? "too many concurrent directory requests" : "out of memory");
		count(d, r->answer);
		return r->answer;
	}
	if (budget_ms > 0 && budget_ms < timeout)
		timeout = budget_ms;
	atomic_fetch_add(&d->st.in_flight, 1);
	atomic_fetch_add(&d->st.requests, 1);
	if (d->ldap) {
		r->answer = dir_ldap_query(d->lp, &ld, url, timeout, r);
		dir_ldap_give(d->lp, ld);
	} else {
		r->answer = request(d, h, url, timeout, r);
		handle_give(d, h);
	}
	atomic_fetch_sub(&d->st.in_flight, 1);
	r->elapsed_ms = gw_now_ms() - t0;
	lat_add(&d->st, r->elapsed_ms);
	count(d, r->answer);
	if (cacheable && r->answer == GW_DIR_EXISTS)
		(void)gw_cache_put(d->cache, key, GW_CACHE_POSITIVE, (int)r->status, "", d->pos_ttl);
	else if (cacheable && r->answer == GW_DIR_UNKNOWN)
		(void)gw_cache_put(d->cache, key, GW_CACHE_NEGATIVE, (int)r->status, "", d->neg_ttl);
	return r->answer;
}

int gw_dir_purge(gw_directory *d, const char *rcpt)
{
	char key[sizeof(KEY_PREFIX) + GW_DIR_URL_MAX];
	const char *why = NULL;

	if (url_for(d, rcpt, key, sizeof(key), &why) != 0)
		return 0;
	return gw_cache_remove(d->cache, key);
}

void gw_dir_stats_get(gw_directory *d, gw_dir_stats *s)
{
	size_t i;

	memset(s, 0, sizeof(*s));
	s->lookups = atomic_load(&d->st.lookups);
	s->exists = atomic_load(&d->st.exists);
	s->unknown = atomic_load(&d->st.unknown);
	s->temporary = atomic_load(&d->st.temporary);
	s->from_cache = atomic_load(&d->st.from_cache);
	s->limited = atomic_load(&d->st.limited);
	s->bad_input = atomic_load(&d->st.bad_input);
	s->requests = atomic_load(&d->st.requests);
	s->latency_ms_total = atomic_load(&d->st.lat_total);
	s->latency_ms_max = atomic_load(&d->st.lat_max);
	for (i = 0; i < GW_DIR_LAT_BUCKETS; i++)
		s->latency[i] = atomic_load(&d->st.lat[i]);
	s->in_flight = atomic_load(&d->st.in_flight);
	s->connects = d->lp != NULL ? dir_ldap_connects(d->lp) : 0;
}
