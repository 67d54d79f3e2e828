/*
 * test_directory.c - the directory client (libgw/directory.c) against a
 * scripted HTTP server on loopback (a thread here): status lists (default
 * and configured), the expected-content check, positive and negative
 * answers cached with their own TTLs on a fixed clock while temporary ones
 * never are, the cap on concurrent requests (the second lookup is refused at
 * once while the first waits on a silent server), the caller's budget
 * bounding the timeout, HTTP connections reused, and the credentials file
 * (refused when others can read it, its content never in a message, sent
 * as Basic authentication).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw/directory.h"
#include "gw/time.h"

/* --- the scripted server: the status (and body) comes from the path's local part ----- */

typedef struct server {
	int fd, port;
	pthread_t th;
	atomic_int requests, connections, stop;
	char last_auth[256];
	pthread_mutex_t lock;
} server;

static void answer(int c, const char *path)
{
	char buf[512];
	const char *body = "{\"exists\": \"yes\"}";
	int code = 404;

	if (strstr(path, "/ok%40") != NULL) {
		code = 200;
	} else if (strstr(path, "/nocontent%40") != NULL) {
		code = 204;
		body = "";
	} else if (strstr(path, "/login%40") != NULL) {
		code = 200;
		body = "<html>log in</html>";
	} else if (strstr(path, "/boom%40") != NULL) {
		code = 503;
	} else if (strstr(path, "/silent%40") != NULL) {
		usleep(1500 * 1000); /* longer than the client waits */
		return;
	}
	snprintf(buf, sizeof(buf),
		 "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nContent-Type: text/plain\r\n\r\n%s", code,
		 strlen(body), body);
	(void)!write(c, buf, strlen(buf));
}

/* One connection: requests until the client closes it (keep-alive). */
static void *conn_main(void *arg)
{
	server *s = ((void **)arg)[0];
	int c = (int)(intptr_t)((void **)arg)[1];
	char req[4096], path[1024], *auth;
	size_t len = 0;
	ssize_t n;

	free(arg);
	for (;;) {
		char *end;
		n = read(c, req + len, sizeof(req) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		req[len] = '\0';
		if ((end = strstr(req, "\r\n\r\n")) == NULL)
			continue;
		atomic_fetch_add(&s->requests, 1);
		if (sscanf(req, "GET %1023s", path) != 1)
			break;
		pthread_mutex_lock(&s->lock);
		s->last_auth[0] = '\0';
		if ((auth = strstr(req, "Authorization: ")) != NULL)
			snprintf(s->last_auth, sizeof(s->last_auth), "%.*s", (int)strcspn(auth + 15, "\r\n"),
				 auth + 15);
		pthread_mutex_unlock(&s->lock);
		answer(c, path);
		len -= (size_t)(end + 4 - req);
		memmove(req, end + 4, len);
	}
	close(c);
	return NULL;
}

static void *server_main(void *arg)
{
	server *s = arg;

	while (!atomic_load(&s->stop)) {
		int c = accept(s->fd, NULL, NULL);
		void **a;
		pthread_t t;

		if (c < 0)
			continue;
		if (atomic_load(&s->stop)) {
			close(c);
			break;
		}
		atomic_fetch_add(&s->connections, 1);
		a = malloc(2 * sizeof(void *));
		a[0] = s;
		a[1] = (void *)(intptr_t)c;
		pthread_create(&t, NULL, conn_main, a);
		pthread_detach(t);
	}
	return NULL;
}

static server *server_start(void)
{
	server *s = calloc(1, sizeof(*s));
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	assert_non_null(s);
	pthread_mutex_init(&s->lock, NULL);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* port 0: the kernel's choice, never shared with a parallel test */
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->fd, 16), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&sa, &sl), 0);
	s->port = ntohs(sa.sin_port);
	pthread_create(&s->th, NULL, server_main, s);
	return s;
}

static void server_stop(server *s)
{
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa;

	atomic_store(&s->stop, 1);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)s->port);
	(void)connect(c, (struct sockaddr *)&sa, sizeof(sa)); /* wakes accept */
	close(c);
	pthread_join(s->th, NULL);
	close(s->fd);
	usleep(1600 * 1000); /* a connection thread may still sleep in "silent" */
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* --- a fixed clock ------------------------------------------------------------------- */

static int64_t fake_ms;
static int64_t fake_now(void *ctx)
{
	(void)ctx;
	return fake_ms;
}
static const gw_clock fake_clock = {fake_now, NULL};

static gw_directory *dir_new(server *s, gw_dir_opts *o)
{
	char url[128], err[256];
	gw_directory *d;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/{rcpt}", s->port);
	o->url = url;
	d = gw_directory_new(o, NULL, &fake_clock, err, sizeof(err));
	if (d == NULL)
		fail_msg("gw_directory_new: %s", err);
	return d;
}

static void test_answers(void **state)
{
	server *s = server_start();
	gw_dir_opts o = {0};
	gw_dir_result r;
	gw_dir_stats st;
	gw_directory *d;

	(void)state;
	o.timeout_ms = 1000;
	o.positive_ttl_ms = 60000;
	o.negative_ttl_ms = 10000;
	o.http_expect = "exists";
	d = dir_new(s, &o);
	fake_ms = 1000000;
	assert_int_equal(gw_dir_check(d, "ok@example.org", 0, &r), GW_DIR_EXISTS);
	assert_int_equal(r.source, GW_DIR_SRC_HTTP);
	assert_int_equal(r.status, 200);
	assert_int_equal(gw_dir_check(d, "nobody@example.org", 0, &r), GW_DIR_UNKNOWN);
	assert_int_equal(r.status, 404);
	assert_int_equal(gw_dir_check(d, "boom@example.org", 0, &r), GW_DIR_TEMPORARY);
	assert_string_equal(r.text, "unexpected status 503");
	assert_int_equal(gw_dir_check(d, "login@example.org", 0, &r), GW_DIR_TEMPORARY);
	assert_string_equal(r.text, "status 200 without the expected content");
	assert_int_equal(gw_dir_check(d, "nocontent@example.org", 0, &r),
			 GW_DIR_TEMPORARY); /* 204 not listed */
	assert_int_equal(atomic_load(&s->requests), 5);
	/* the answers again: exists and unknown from the cache, temporary asked again */
	assert_int_equal(gw_dir_check(d, "ok@example.org", 0, &r), GW_DIR_EXISTS);
	assert_int_equal(r.source, GW_DIR_SRC_CACHE);
	assert_int_equal(gw_dir_check(d, "nobody@example.org", 0, &r), GW_DIR_UNKNOWN);
	assert_int_equal(r.source, GW_DIR_SRC_CACHE);
	assert_int_equal(gw_dir_check(d, "boom@example.org", 0, &r), GW_DIR_TEMPORARY);
	assert_int_equal(r.source, GW_DIR_SRC_HTTP);
	assert_int_equal(atomic_load(&s->requests), 6);
	/* each TTL on its own: after 10 s unknown is asked again, exists is not */
	fake_ms += 10001;
	assert_int_equal(gw_dir_check(d, "nobody@example.org", 0, &r), GW_DIR_UNKNOWN);
	assert_int_equal(r.source, GW_DIR_SRC_HTTP);
	assert_int_equal(gw_dir_check(d, "ok@example.org", 0, &r), GW_DIR_EXISTS);
	assert_int_equal(r.source, GW_DIR_SRC_CACHE);
	fake_ms += 50000;
	assert_int_equal(gw_dir_check(d, "ok@example.org", 0, &r), GW_DIR_EXISTS);
	assert_int_equal(r.source, GW_DIR_SRC_HTTP);
	assert_int_equal(gw_dir_purge(d, "ok@example.org"), 1);
	assert_int_equal(gw_dir_purge(d, "ok@example.org"), 0);
	/* one keep-alive connection served them all */
	assert_int_equal(atomic_load(&s->connections), 1);
	gw_dir_stats_get(d, &st);
	assert_int_equal(st.lookups, 11);
	assert_int_equal(st.exists, 4);
	assert_int_equal(st.unknown, 3);
	assert_int_equal(st.temporary, 4);
	assert_int_equal(st.from_cache, 3);
	assert_int_equal(st.requests, 8);
	assert_int_equal(st.latency[0] + st.latency[1] + st.latency[2] + st.latency[3] + st.latency[4], 8);
	gw_directory_free(&d);
	assert_null(d);

	/* configured status lists */
	o.http_exists = "200, 204";
	o.http_unknown = "404 410";
	o.http_expect = NULL;
	d = dir_new(s, &o);
	assert_int_equal(gw_dir_check(d, "nocontent@example.org", 0, &r), GW_DIR_EXISTS);
	gw_directory_free(&d);
	o.http_exists = "20x";
	{
		char url[128], err[256];
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/{rcpt}", s->port);
		o.url = url;
		assert_null(gw_directory_new(&o, NULL, NULL, err, sizeof(err)));
		assert_non_null(strstr(err, "bad HTTP status list"));
	}
	server_stop(s);
}

typedef struct slow_arg {
	gw_directory *d;
	gw_dir_result r;
	int64_t ms;
} slow_arg;

static void *slow_lookup(void *varg)
{
	slow_arg *a = varg;
	int64_t t0 = gw_now_ms();

	(void)gw_dir_check(a->d, "silent@example.org", 0, &a->r);
	a->ms = gw_now_ms() - t0;
	return NULL;
}

static void test_cap_and_budget(void **state)
{
	server *s = server_start();
	gw_dir_opts o = {0};
	gw_dir_result r;
	gw_directory *d;
	slow_arg a;
	pthread_t t;
	int64_t t0, ms;
	int i;

	(void)state;
	o.timeout_ms = 800;
	o.max_requests = 1;
	o.positive_ttl_ms = o.negative_ttl_ms = 1000;
	d = dir_new(s, &o);
	memset(&a, 0, sizeof(a));
	a.d = d;
	pthread_create(&t, NULL, slow_lookup, &a);
	/* bounded poll: until the slow request is in flight */
	for (i = 0; i < 500 && atomic_load(&s->requests) == 0; i++)
		usleep(10 * 1000);
	assert_int_equal(atomic_load(&s->requests), 1);
	t0 = gw_now_ms();
	assert_int_equal(gw_dir_check(d, "ok@example.org", 0, &r), GW_DIR_TEMPORARY);
	ms = gw_now_ms() - t0;
	assert_int_equal(r.source, GW_DIR_SRC_LIMIT);
	assert_true(ms < 300); /* refused at once, not queued behind the silent server */
	pthread_join(t, NULL);
	assert_int_equal(a.r.answer, GW_DIR_TEMPORARY);
	assert_string_equal(a.r.text, "timeout");
	assert_true(a.ms >= 700 && a.ms < 5000); /* generous: a loaded machine */
	/* the handle is back: the next lookup is asked */
	assert_int_equal(gw_dir_check(d, "ok@example.org", 0, &r), GW_DIR_EXISTS);
	/* the caller's budget shortens the timeout */
	t0 = gw_now_ms();
	assert_int_equal(gw_dir_check(d, "silent@example.org", 200, &r), GW_DIR_TEMPORARY);
	ms = gw_now_ms() - t0;
	assert_true(ms >= 150 && ms < 3000);
	gw_directory_free(&d);
	server_stop(s);
}

static void test_credentials(void **state)
{
	server *s = server_start();
	char path[] = "/tmp/gw-dircred.XXXXXX", url[128], err[512];
	gw_dir_opts o = {0};
	gw_dir_result r;
	gw_directory *d;
	FILE *f;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fprintf(f, "user1\nvery-secret-pw\n");
	fclose(f);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/{rcpt}", s->port);
	o.url = url;
	o.credentials_file = path;
	assert_int_equal(chmod(path, 0640), 0);
	assert_null(gw_directory_new(&o, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "readable by group or others (mode 0640)"));
	assert_null(strstr(err, "very-secret-pw"));
	assert_int_equal(chmod(path, 0600), 0);
	d = gw_directory_new(&o, NULL, NULL, err, sizeof(err));
	if (d == NULL)
		fail_msg("%s", err);
	assert_int_equal(gw_dir_check(d, "ok@example.org", 0, &r), GW_DIR_EXISTS);
	assert_null(strstr(r.text, "very-secret-pw"));
	pthread_mutex_lock(&s->lock);
	assert_string_equal(s->last_auth, "Basic dXNlcjE6dmVyeS1zZWNyZXQtcHc="); /* user1:very-secret-pw */
	pthread_mutex_unlock(&s->lock);
	gw_directory_free(&d);
	/* one line only: refused */
	f = fopen(path, "w");
	fprintf(f, "user-without-password");
	fclose(f);
	assert_null(gw_directory_new(&o, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "want two lines"));
	assert_null(strstr(err, "user-without-password"));
	unlink(path);
	server_stop(s);
}

/* A recipient that cannot go into the query is temporary, never unknown, and asks nobody. */
static void test_bad_input(void **state)
{
	server *s = server_start();
	gw_dir_opts o = {0};
	gw_dir_result r;
	gw_directory *d;

	(void)state;
	d = dir_new(s, &o);
	assert_int_equal(gw_dir_check(d, "a\x01@example.org", 0, &r), GW_DIR_TEMPORARY);
	assert_int_equal(r.source, GW_DIR_SRC_INPUT);
	assert_int_equal(gw_dir_check(d, "no-domain", 0, &r), GW_DIR_TEMPORARY);
	assert_int_equal(r.source, GW_DIR_SRC_INPUT);
	assert_int_equal(atomic_load(&s->requests), 0);
	gw_directory_free(&d);
	server_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_answers),
	    cmocka_unit_test(test_cap_and_budget),
	    cmocka_unit_test(test_credentials),
	    cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
