/*
 * test_dir_ldap.c - the directory's LDAP transport (libgw/dir_ldap.c)
 * against a scripted LDAP server on loopback (a thread here, BER by hand):
 * lookups reuse one connection (bound once); a reused connection the server
 * resets under a search is replaced and the search repeated, so the answer
 * stays right, and one reset while idle is replaced when taken; no SIGPIPE
 * reaches the process (not ignored here); an error result is temporary and keeps
 * the connection, a search without an answer is temporary at the timeout and closes it; a refused bind is
 * temporary, never unknown; the cap on concurrent requests; the URL extensions (StartTLS known, other
 * critical ones refused).
 *
 * The answer comes from the filter's text: "ok@" one entry, "two@" two,
 * "nobody@" none, "err@" noSuchObject, "hang@" no answer at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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

typedef struct server {
	int fd, port;
	pthread_t th;
	atomic_int connections, searches, binds, stop;
	atomic_int drop_next;   /* drop the next search on a connection that already answered one */
	atomic_int reset_after; /* reset the connection after answering the next search */
	char bind_dn[128];
	pthread_mutex_t lock;
} server;

/* Read one LDAPMessage (short or long form length) into buf; its content length, or -1. */
static int read_all(int c, unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = read(c, p, n);
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static long read_msg(int c, unsigned char *buf, size_t size, size_t *hdr)
{
	size_t len = 0, nl = 0, i;

	if (read_all(c, buf, 2) != 0)
		return -1;
	if (buf[1] & 0x80) {
		nl = buf[1] & 0x7f;
		if (nl == 0 || nl > 3 || read_all(c, buf + 2, nl) != 0)
			return -1;
		for (i = 0; i < nl; i++)
			len = len << 8 | buf[2 + i];
	} else {
		len = buf[1];
	}
	*hdr = 2 + nl;
	if (*hdr + len > size || read_all(c, buf + *hdr, len) != 0)
		return -1;
	return (long)len;
}

/* Send SEQUENCE { messageID (as received), op } */
static void send_op(int c, const unsigned char *id, size_t idlen, const unsigned char *op, size_t oplen)
{
	unsigned char out[512];
	size_t n = 0;

	out[n++] = 0x30;
	out[n++] = (unsigned char)(idlen + oplen);
	memcpy(out + n, id, idlen);
	n += idlen;
	memcpy(out + n, op, oplen);
	n += oplen;
	(void)!write(c, out, n);
}

static void send_done(int c, const unsigned char *id, size_t idlen, unsigned char tag, unsigned char rc)
{
	const unsigned char op[] = {tag, 0x07, 0x0a, 0x01, rc, 0x04, 0x00, 0x04, 0x00};

	send_op(c, id, idlen, op, sizeof(op));
}

static void send_entry(int c, const unsigned char *id, size_t idlen)
{
	const unsigned char op[] = {0x64, 0x09, 0x04, 0x05, 'u', 'i', 'd', '=', 'x', 0x30, 0x00};

	send_op(c, id, idlen, op, sizeof(op));
}

static int has(const unsigned char *p, size_t len, const char *s)
{
	return memmem(p, len, s, strlen(s)) != NULL;
}

static void *conn_main(void *arg)
{
	server *s = ((void **)arg)[0];
	int c = (int)(intptr_t)((void **)arg)[1], answered = 0;
	unsigned char buf[4096];

	free(arg);
	for (;;) {
		size_t hdr = 0, idlen;
		long len = read_msg(c, buf, sizeof(buf), &hdr);
		const unsigned char *p = buf + hdr, *id;
		unsigned char op;

		if (len < 3 || p[0] != 0x02)
			break;
		id = p;
		idlen = 2 + (size_t)p[1];
		op = p[idlen];
		if (op == 0x42) /* unbind */
			break;
		if (op == 0x60) { /* bind: version, name, simple password */
			const unsigned char *b = p + idlen + 2;
			size_t dnlen = b[4];
			atomic_fetch_add(&s->binds, 1);
			pthread_mutex_lock(&s->lock);
			snprintf(s->bind_dn, sizeof(s->bind_dn), "%.*s", (int)dnlen, (const char *)b + 5);
			pthread_mutex_unlock(&s->lock);
			send_done(c, id, idlen, 0x61, has(p, (size_t)len, "right-pw") ? 0 : 49);
			continue;
		}
		if (op != 0x63) /* anything else (abandon): ignored */
			continue;
		atomic_fetch_add(&s->searches, 1);
		if (answered && atomic_exchange(&s->drop_next, 0)) {
			/* gone without a word, as a restarted server, and with a reset: the client's next
			 * write (its unbind) fails with EPIPE, which must not raise SIGPIPE in the caller */
			struct linger lg = {1, 0};
			(void)setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			break;
		}
		answered = 1;
		if (has(p, (size_t)len, "hang@"))
			continue;
		if (has(p, (size_t)len, "ok@") || has(p, (size_t)len, "two@"))
			send_entry(c, id, idlen);
		if (has(p, (size_t)len, "two@"))
			send_entry(c, id, idlen);
		send_done(c, id, idlen, 0x65, has(p, (size_t)len, "err@") ? 32 : 0);
		if (atomic_load(&s->reset_after)) {
			struct linger lg = {1, 0};
			usleep(100 * 1000); /* the client has read the answer: the connection is idle */
			(void)setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(c);
			atomic_store(&s->reset_after, 0);
			return NULL;
		}
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

/* The directory is freed first: its connections end, and so do their threads here. */
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
	usleep(100 * 1000); /* detached connection threads see their peer's close */
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static gw_directory *dir_new(server *s, gw_dir_opts *o, const char *ext)
{
	char url[256], err[256];
	gw_directory *d;

	snprintf(url, sizeof(url), "ldap://127.0.0.1:%d/dc=example,dc=org?dn?sub?(mail={rcpt})%s", s->port,
		 ext);
	o->url = url;
	d = gw_directory_new(o, NULL, NULL, err, sizeof(err));
	if (d == NULL)
		fail_msg("gw_directory_new: %s", err);
	return d;
}

static uint64_t connects(gw_directory *d)
{
	gw_dir_stats st;

	gw_dir_stats_get(d, &st);
	return st.connects;
}

static void test_reuse(void **state)
{
	server *s = server_start();
	gw_dir_opts o = {0};
	gw_dir_result r;
	gw_directory *d;
	int i;

	(void)state;
	o.timeout_ms = 5000;
	d = dir_new(s, &o, "");
	for (i = 0; i < 20; i++) {
		/* the same recipients again and again: nothing cached (TTLs 0), every one asked */
		assert_int_equal(gw_dir_check(d, i % 2 ? "nobody@example.org" : "ok@example.org", 0, &r),
				 i % 2 ? GW_DIR_UNKNOWN : GW_DIR_EXISTS);
		assert_int_equal(r.source, GW_DIR_SRC_LDAP);
		assert_int_equal(r.status, i % 2 ? 0 : 1);
	}
	assert_int_equal(gw_dir_check(d, "two@example.org", 0, &r), GW_DIR_EXISTS);
	assert_int_equal(r.status, 2);
	assert_int_equal(atomic_load(&s->searches), 21);
	assert_int_equal(atomic_load(&s->connections), 1);
	assert_int_equal(connects(d), 1);
	assert_int_equal(atomic_load(&s->binds), 0); /* anonymous: no bind at all */
	gw_directory_free(&d);
	server_stop(s);
}

static void test_dead_connection(void **state)
{
	server *s = server_start();
	gw_dir_opts o = {0};
	gw_dir_result r;
	gw_directory *d;
	int i;

	(void)state;
	o.timeout_ms = 5000;
	d = dir_new(s, &o, "");
	assert_int_equal(gw_dir_check(d, "nobody@example.org", 0, &r), GW_DIR_UNKNOWN);
	/* the pooled connection looks alive when taken, then dies under the search: repeated afresh */
	atomic_store(&s->drop_next, 1);
	assert_int_equal(gw_dir_check(d, "nobody@example.org", 0, &r), GW_DIR_UNKNOWN);
	assert_string_equal(r.text, "");
	atomic_store(&s->drop_next, 1);
	assert_int_equal(gw_dir_check(d, "ok@example.org", 0, &r), GW_DIR_EXISTS);
	assert_int_equal(atomic_load(&s->connections), 3);
	assert_int_equal(connects(d), 3);
	assert_int_equal(atomic_load(&s->searches), 5); /* two of them repeated */
	/* reset while idle: noticed when taken, replaced; closing it must not raise SIGPIPE either */
	atomic_store(&s->reset_after, 1);
	assert_int_equal(gw_dir_check(d, "ok@example.org", 0, &r), GW_DIR_EXISTS);
	for (i = 0; i < 200 && atomic_load(&s->reset_after) != 0; i++) /* bounded poll */
		usleep(5 * 1000);
	usleep(50 * 1000); /* the reset reaches the client's socket (loopback) */
	assert_int_equal(gw_dir_check(d, "nobody@example.org", 0, &r), GW_DIR_UNKNOWN);
	assert_int_equal(connects(d), 4);
	gw_directory_free(&d);
	server_stop(s);
}

static void test_errors(void **state)
{
	server *s = server_start();
	gw_dir_opts o = {0};
	gw_dir_result r;
	gw_directory *d;
	int64_t t0, ms;

	(void)state;
	o.timeout_ms = 600;
	d = dir_new(s, &o, "");
	assert_int_equal(gw_dir_check(d, "err@example.org", 0, &r), GW_DIR_TEMPORARY);
	assert_non_null(strstr(r.text, "No such object"));
	assert_int_equal(gw_dir_check(d, "ok@example.org", 0, &r), GW_DIR_EXISTS);
	assert_int_equal(connects(d), 1); /* an error result keeps the connection */
	t0 = gw_now_ms();
	assert_int_equal(gw_dir_check(d, "hang@example.org", 0, &r), GW_DIR_TEMPORARY);
	ms = gw_now_ms() - t0;
	assert_string_equal(r.text, "timeout");
	assert_true(ms >= 500 && ms < 5000); /* generous: a loaded machine */
	/* the caller's budget bounds it too */
	t0 = gw_now_ms();
	assert_int_equal(gw_dir_check(d, "hang@example.org", 200, &r), GW_DIR_TEMPORARY);
	ms = gw_now_ms() - t0;
	assert_true(ms >= 150 && ms < 3000);
	/* a timed-out connection is not reused */
	assert_int_equal(gw_dir_check(d, "nobody@example.org", 0, &r), GW_DIR_UNKNOWN);
	assert_int_equal(connects(d), 3);
	gw_directory_free(&d);
	server_stop(s);
}

static void test_bind(void **state)
{
	char path[] = "/tmp/gw-test-dirldap-XXXXXX";
	server *s = server_start();
	gw_dir_opts o = {0};
	gw_dir_result r;
	gw_directory *d;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "cn=gw,dc=example,dc=org\nright-pw\n", 33), 33);
	close(fd);
	o.timeout_ms = 5000;
	o.credentials_file = path;
	d = dir_new(s, &o, "");
	assert_int_equal(gw_dir_check(d, "ok@example.org", 0, &r), GW_DIR_EXISTS);
	assert_int_equal(gw_dir_check(d, "nobody@example.org", 0, &r), GW_DIR_UNKNOWN);
	assert_int_equal(gw_dir_check(d, "ok@example.org", 0, &r), GW_DIR_EXISTS);
	assert_int_equal(atomic_load(&s->binds), 1); /* bound once, then reused */
	assert_string_equal(s->bind_dn, "cn=gw,dc=example,dc=org");
	gw_directory_free(&d);
	/* a refused bind: temporary, never unknown, and the password in no message */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "cn=gw,dc=example,dc=org\nwrong-pw\n", 33), 33);
	close(fd);
	d = dir_new(s, &o, "");
	assert_int_equal(gw_dir_check(d, "nobody@example.org", 0, &r), GW_DIR_TEMPORARY);
	assert_non_null(strstr(r.text, "Invalid credentials"));
	assert_null(strstr(r.text, "wrong-pw"));
	gw_directory_free(&d);
	unlink(path);
	server_stop(s);
}

typedef struct slow_arg {
	gw_directory *d;
	gw_dir_result r;
} slow_arg;

static void *slow_lookup(void *v)
{
	slow_arg *a = v;

	(void)gw_dir_check(a->d, "hang@example.org", 0, &a->r);
	return NULL;
}

static void test_cap(void **state)
{
	server *s = server_start();
	gw_dir_opts o = {0};
	gw_dir_result r;
	gw_directory *d;
	slow_arg a;
	pthread_t t;
	int i;

	(void)state;
	o.timeout_ms = 800;
	o.max_requests = 1;
	d = dir_new(s, &o, "");
	memset(&a, 0, sizeof(a));
	a.d = d;
	pthread_create(&t, NULL, slow_lookup, &a);
	for (i = 0; i < 500 && atomic_load(&s->searches) == 0; i++) /* bounded poll */
		usleep(10 * 1000);
	assert_int_equal(atomic_load(&s->searches), 1);
	assert_int_equal(gw_dir_check(d, "ok@example.org", 0, &r), GW_DIR_TEMPORARY);
	assert_int_equal(r.source, GW_DIR_SRC_LIMIT);
	pthread_join(t, NULL);
	assert_int_equal(a.r.answer, GW_DIR_TEMPORARY);
	assert_int_equal(gw_dir_check(d, "ok@example.org", 0, &r), GW_DIR_EXISTS);
	gw_directory_free(&d);
	server_stop(s);
}

static void test_extensions(void **state)
{
	gw_dir_opts o = {0};
	char err[256];
	gw_directory *d;

	(void)state;
	o.url = "ldap://127.0.0.1:1/dc=example,dc=org?dn?sub?(mail={rcpt})?!x-unknown";
	assert_null(gw_directory_new(&o, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "unsupported critical extension x-unknown"));
	o.url = "ldaps://127.0.0.1:1/dc=example,dc=org?dn?sub?(mail={rcpt})?!StartTLS";
	assert_null(gw_directory_new(&o, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "StartTLS on ldaps://"));
	o.url = "ldap:///dc=example,dc=org?dn?sub?(mail={rcpt})";
	assert_null(gw_directory_new(&o, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "without a host"));
	/* known or not critical: accepted (nothing is connected yet) */
	o.url = "ldap://127.0.0.1:1/dc=example,dc=org?dn?sub?(mail={rcpt})?x-unknown,!StartTLS";
	d = gw_directory_new(&o, NULL, NULL, err, sizeof(err));
	assert_non_null(d);
	gw_directory_free(&d);
	o.url = "ldap://127.0.0.1:1/dc=example,dc=org?dn?sub?(mail={rcpt})?1.3.6.1.4.1.1466.20037";
	d = gw_directory_new(&o, NULL, NULL, err, sizeof(err));
	assert_non_null(d);
	gw_directory_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reuse),  cmocka_unit_test(test_dead_connection),
	    cmocka_unit_test(test_errors), cmocka_unit_test(test_bind),
	    cmocka_unit_test(test_cap),    cmocka_unit_test(test_extensions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
