/*
 * test_lmtpd.c - gw-lmtpd's session and relay end to end in one process: an
 * LMTP client played by the test over a socketpair, gwl_session_run() on
 * the other end, and fake destination MXs (the fake peer) behind a route
 * file. Each case checks the exact LMTP replies, in RCPT order, and what
 * each destination received.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakepeer.h"
#include "gw/log.h"
#include "gw/time.h"
#include "lmtpd_conf.h"
#include "relay.h"
#include "session.h"

#define SINK_OK                                                                                              \
	"send 220 dest ESMTP\nexpect EHLO\nsend 250-dest\\r\\n250-PIPELINING\\r\\n250-8BITMIME\\r\\n250 "    \
	"DSN\n"

typedef struct lab {
	char dir[64];
	gwl_config *conf;
	gwl_relay *relay;
	gwl_session_env env;
	int fd; /* the test's end */
	pthread_t t;
	int sfd;
	char inbuf[65536];
	size_t inlen;
} lab;

static void *serve(void *arg)
{
	lab *l = arg;

	gwl_session_run(l->sfd, "[test]", &l->env);
	return NULL;
}

/* Log lines of the current case, for checks on what gw-lmtpd logs. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char logbuf[65536];
static size_t loglen;

static void log_sink(int level, const char *line, void *ctx)
{
	size_t n = strlen(line);

	(void)level;
	(void)ctx;
	pthread_mutex_lock(&log_lock);
	if (loglen + n + 2 < sizeof(logbuf)) {
		memcpy(logbuf + loglen, line, n);
		loglen += n;
		logbuf[loglen++] = '\n';
		logbuf[loglen] = '\0';
	}
	pthread_mutex_unlock(&log_lock);
}

static const char *lab_policy; /* a tls_policy file's text for the next lab_start, or NULL */

/* A configuration file with extra lines, a route file with routes; session started. */
static void lab_start(lab *l, const char *extra, const char *routes)
{
	char path[128], err[512];
	int sv[2];
	FILE *f;
	gwl_relay_conf rc;

	memset(l, 0, sizeof(*l));
	snprintf(l->dir, sizeof(l->dir), "/tmp/gw-lmtpd-test.XXXXXX");
	assert_non_null(mkdtemp(l->dir));
	snprintf(path, sizeof(path), "%s/routes", l->dir);
	assert_non_null(f = fopen(path, "w"));
	fputs(routes, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/gw-lmtpd.conf", l->dir);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f,
		"listen = [127.0.0.1]:24\nlog = stderr\nroutes = %s/routes\nspool_dir = %s\n"
		"connect_timeout = 1s\ncommand_timeout = 5s\ntls = none\n%s",
		l->dir, l->dir, extra);
	if (strstr(extra, "reply_timeout") == NULL)
		fputs("reply_timeout = 1s\n", f);
	if (strstr(extra, "deadline") == NULL)
		fputs("deadline = 3s\n", f);
	if (lab_policy != NULL) {
		FILE *pf;
		char ppath[128];
		snprintf(ppath, sizeof(ppath), "%s/tls_policy", l->dir);
		assert_non_null(pf = fopen(ppath, "w"));
		fputs(lab_policy, pf);
		fclose(pf);
		fprintf(f, "tls_policy = %s\n", ppath);
		lab_policy = NULL;
	}
	fclose(f);
	l->conf = gwl_config_load(path, err, sizeof(err));
	if (l->conf == NULL)
		fail_msg("config: %s", err);
	memset(&rc, 0, sizeof(rc));
	rc.routes = l->conf->routes;
	rc.tls_policy = l->conf->tls_policy;
	rc.smtp.client.helo_name = "gw.test";
	rc.smtp.client.connect_timeout_ms = (unsigned)l->conf->opt.connect_timeout;
	rc.smtp.client.reply_timeout_ms = (unsigned)l->conf->opt.reply_timeout;
	rc.smtp.client.deadline_ms = (unsigned)l->conf->opt.deadline;
	rc.smtp.client.tls = (gw_tls_policy)l->conf->opt.tls;
	rc.health_min_failures = (unsigned)l->conf->opt.health_failures;
	rc.health_window_ms = (unsigned)l->conf->opt.health_window;
	rc.health_retry_ms = (unsigned)l->conf->opt.health_retry;
	rc.dest_idle = (unsigned)l->conf->opt.dest_idle;
	assert_non_null(l->relay = gwl_relay_new(&rc));
	l->env.conf = l->conf;
	l->env.relay = l->relay;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	l->fd = sv[0];
	l->sfd = sv[1];
	assert_int_equal(pthread_create(&l->t, NULL, serve, l), 0);
}

/* Another session on the same relay (the previous one must have ended). */
static void lab_reconnect(lab *l)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	l->fd = sv[0];
	l->sfd = sv[1];
	l->inlen = 0;
	assert_int_equal(pthread_create(&l->t, NULL, serve, l), 0);
}

static void lab_end_session(lab *l)
{
	close(l->fd);
	pthread_join(l->t, NULL);
}

static void lab_stop(lab *l)
{
	char cmd[128];

	lab_end_session(l);
	gwl_relay_free(&l->relay);
	gwl_config_free(&l->conf);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", l->dir);
	(void)!system(cmd);
}

static void put(lab *l, const char *s)
{
	size_t len = strlen(s);
	assert_int_equal(write(l->fd, s, len), (ssize_t)len);
}

/* The next reply line (without CRLF) into out; fails the test after 10 s. */
static void line(lab *l, char *out, size_t outlen)
{
	struct timeval tv = {10, 0};

	setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		char *nl = memchr(l->inbuf, '\n', l->inlen);
		ssize_t n;
		if (nl != NULL) {
			size_t len = (size_t)(nl - l->inbuf) + 1, keep = len - 1;
			if (keep > 0 && l->inbuf[keep - 1] == '\r')
				keep--;
			snprintf(out, outlen, "%.*s", (int)keep, l->inbuf);
			memmove(l->inbuf, l->inbuf + len, l->inlen - len);
			l->inlen -= len;
			return;
		}
		n = read(l->fd, l->inbuf + l->inlen, sizeof(l->inbuf) - l->inlen);
		if (n <= 0)
			fail_msg("session: no reply line (%s)", n == 0 ? "closed" : strerror(errno));
		l->inlen += (size_t)n;
	}
}

/* Read one whole reply; its last line into out. */
static void reply(lab *l, char *out, size_t outlen)
{
	do
		line(l, out, outlen);
	while (strlen(out) > 3 && out[3] == '-');
}

static void expect(lab *l, const char *prefix)
{
	char got[1024];

	reply(l, got, sizeof(got));
	if (strncmp(got, prefix, strlen(prefix)) != 0)
		fail_msg("got \"%s\", want \"%s...\"", got, prefix);
}

static fp_peer *peer(const char *script)
{
	char err[256];
	fp_opts o;
	fp_peer *p;

	memset(&o, 0, sizeof(o));
	o.script = script;
	o.timeout_ms = 5000;
	if ((p = fp_start_opts(&o, err, sizeof(err))) == NULL)
		fail_msg("fake peer: %s", err);
	return p;
}

static unsigned count(fp_peer *p, const char *needle)
{
	const char *s = fp_received(p, 0, NULL);
	unsigned n = 0;

	for (; s != NULL && (s = strstr(s, needle)) != NULL; s += strlen(needle))
		n++;
	return n;
}

static void greet(lab *l)
{
	expect(l, "220 ");
	put(l, "LHLO internal.test\r\n");
	expect(l, "250 ");
}

/* One transaction, recipients mixed over seven destinations, each with its own outcome. */
static void test_mixed_outcomes(void **state)
{
	fp_peer *ok =
	    peer(SINK_OK "expect MAIL FROM:<s@int.test>\nsend 250 ok\nexpect RCPT TO:<a1@ok.test>\n"
			 "send 250 ok\nexpect RCPT TO:<a2@ok.test>\nsend 250 ok\nexpect DATA\nsend 354 go\n"
			 "data\nsend 250 2.0.0 queued as A1\n");
	fp_peer *r5 =
	    peer(SINK_OK "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 550 5.1.1 no such user\n"
			 "expect RCPT\nsend 250 ok\nexpect DATA\nsend 354 go\ndata\nsend 250 2.0.0 ok\n");
	fp_peer *r4 = peer(SINK_OK "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 450 4.2.1 try later\n"
				   "expect DATA\nsend 554 5.5.1 no valid recipients\n");
	fp_peer *d5 = peer(SINK_OK "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\n"
				   "send 354 go\ndata\nsend 554 5.6.0 content refused\n");
	fp_peer *pre = peer(SINK_OK "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\n"
				    "send 354 go\nexpect\nclose\n");
	fp_peer *post = peer(SINK_OK "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\n"
				     "send 354 go\ndata\nclose\n");
	unsigned refused = fp_closed_port();
	char routes[1024], got[512];
	lab l;

	(void)state;
	snprintf(routes, sizeof(routes),
		 "ok.test smtp:[127.0.0.1]:%u\nr5.test smtp:[127.0.0.1]:%u\nr4.test smtp:[127.0.0.1]:%u\n"
		 "d5.test smtp:[127.0.0.1]:%u\npre.test smtp:[127.0.0.1]:%u\npost.test smtp:[127.0.0.1]:%u\n"
		 "down.test smtp:[127.0.0.1]:%u\nerr.test error:5.7.1 we do not send there\n",
		 fp_port(ok), fp_port(r5), fp_port(r4), fp_port(d5), fp_port(pre), fp_port(post), refused);
	lab_start(&l, "", routes);
	greet(&l);
	put(&l, "MAIL FROM:<s@int.test>\r\n");
	expect(&l, "250 2.1.0");
	{
		static const char *const rcpts[] = {"a1@ok.test", "x@r5.test",  "y@r4.test",   "z@d5.test",
						    "a2@ok.test", "p@pre.test", "q@post.test", "d@down.test",
						    "e@err.test", "y2@r5.test"};
		size_t i;
		char cmd[128];
		for (i = 0; i < sizeof(rcpts) / sizeof(rcpts[0]); i++) {
			snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>\r\n", rcpts[i]);
			put(&l, cmd);
			expect(&l, "250 2.1.5");
		}
	}
	put(&l, "DATA\r\n");
	expect(&l, "354 ");
	put(&l,
	    "Received: by int.test (Postfix) id 4QidTest; now\r\nSubject: t\r\n\r\n..dot\r\nbody\r\n.\r\n");
	expect(&l, "250 2.0.0 delivered to [127.0.0.1]:"); /* a1@ok.test */
	reply(&l, got, sizeof(got));                       /* x@r5.test */
	assert_true(strncmp(got, "550 5.1.1 [127.0.0.1]:", 22) == 0);
	assert_non_null(strstr(got, "said: 550 5.1.1 no such user"));
	expect(&l, "450 4.2.1 ");          /* y@r4.test */
	expect(&l, "554 5.6.0 ");          /* z@d5.test */
	expect(&l, "250 2.0.0 delivered"); /* a2@ok.test */
	expect(&l, "451 4.4.");            /* p@pre.test: lost before the dot */
	expect(&l, "451 4.4.2 ");          /* q@post.test: uncertain */
	reply(&l, got, sizeof(got));       /* d@down.test: refused */
	assert_true(strncmp(got, "451 4.4.1 ", 10) == 0);
	expect(&l, "550 5.7.1 we do not send there"); /* e@err.test */
	expect(&l, "250 2.0.0 delivered");            /* y2@r5.test */
	put(&l, "QUIT\r\n");
	expect(&l, "221 ");
	assert_int_equal(fp_wait(ok, 5000), 0);
	assert_int_equal(count(ok, "RCPT TO:<a1@ok.test>"), 1);
	assert_int_equal(count(ok, "RCPT TO:<a2@ok.test>"), 1);
	assert_non_null(strstr(fp_received(ok, 0, NULL), "\r\n..dot\r\nbody\r\n.\r\n")); /* stuffed again */
	assert_int_equal(count(r5, "RCPT TO:<"), 2);
	assert_int_equal(count(post, "body\r\n.\r\n"), 1);
	lab_stop(&l);
	fp_stop(&ok);
	fp_stop(&r5);
	fp_stop(&r4);
	fp_stop(&d5);
	fp_stop(&pre);
	fp_stop(&post);
}

/* The null sender and the DSN and BODY parameters reach the destination as the internal MTA sent them. */
static void test_parameters_passed_on(void **state)
{
	fp_peer *p =
	    peer(SINK_OK "expect MAIL FROM:<> BODY=8BITMIME RET=HDRS ENVID=env1\nsend 250 ok\n"
			 "expect RCPT TO:<u@dsn.test> NOTIFY=FAILURE ORCPT=rfc822;u@dsn.test\nsend 250 ok\n"
			 "expect DATA\nsend 354 go\ndata\nsend 250 ok\n");
	char routes[256];
	lab l;

	(void)state;
	snprintf(routes, sizeof(routes), "dsn.test smtp:[127.0.0.1]:%u\n", fp_port(p));
	lab_start(&l, "", routes);
	greet(&l);
	put(&l, "MAIL FROM:<> BODY=8BITMIME RET=HDRS ENVID=env1\r\n");
	expect(&l, "250 ");
	put(&l, "RCPT TO:<u@dsn.test> NOTIFY=FAILURE ORCPT=rfc822;u@dsn.test\r\n");
	expect(&l, "250 ");
	put(&l, "DATA\r\n");
	expect(&l, "354 ");
	put(&l, "Subject: b\r\n\r\n\xc3\xa9t\xc3\xa9\r\n.\r\n");
	expect(&l, "250 2.0.0 delivered");
	lab_stop(&l);
	assert_int_equal(fp_wait(p, 5000), 0);
	fp_stop(&p);
}

/* A silent destination costs its recipients a 4xx at the deadline; the others are delivered in time. */
static void test_deadline(void **state)
{
	fp_peer *silent = peer("send 220 dest ESMTP\nexpect EHLO\nsleep 4500\n");
	fp_peer *ok =
	    peer(SINK_OK "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\nsend 354 go\n"
			 "data\nsend 250 ok\n");
	char routes[256];
	int64_t t0;
	lab l;

	(void)state;
	snprintf(routes, sizeof(routes), "slow.test smtp:[127.0.0.1]:%u\nok.test smtp:[127.0.0.1]:%u\n",
		 fp_port(silent), fp_port(ok));
	lab_start(&l, "reply_timeout = 10s\ndeadline = 1500ms\n", routes);
	greet(&l);
	put(&l, "MAIL FROM:<s@int.test>\r\nRCPT TO:<a@slow.test>\r\nRCPT TO:<b@ok.test>\r\nDATA\r\n");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "354 ");
	t0 = gw_now_ms();
	put(&l, "Subject: s\r\n\r\nx\r\n.\r\n");
	expect(&l, "451 4.4."); /* the relay's deadline or the client's own, whichever noticed first */
	expect(&l, "250 2.0.0 ");
	assert_true(gw_now_ms() - t0 < 3000);
	lab_stop(&l);
	fp_stop(&silent);
	fp_stop(&ok);
}

/* A body over spool_memory goes through the unlinked file and arrives byte for byte. */
static void test_spool_file(void **state)
{
	fp_peer *p =
	    peer(SINK_OK "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\nsend 354 go\n"
			 "data\nsend 250 ok\n");
	char routes[256], *body, *want;
	size_t i, n = 300000;
	lab l;

	(void)state;
	snprintf(routes, sizeof(routes), "big.test smtp:[127.0.0.1]:%u\n", fp_port(p));
	lab_start(&l, "spool_memory = 4k\n", routes);
	greet(&l);
	body = malloc(n + 16);
	assert_non_null(body);
	for (i = 0; i < n; i++)
		body[i] = (i % 77 == 76) ? '\n' : (char)('a' + i % 26);
	body[n] = '\0';
	want = strdup(body);
	put(&l, "MAIL FROM:<s@int.test>\r\nRCPT TO:<a@big.test>\r\nDATA\r\n");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "354 ");
	{
		/* bare LF lines: the engine normalises them to CRLF, as the destination must see */
		size_t off = 0;
		while (off < n) {
			size_t k = n - off > 8192 ? 8192 : n - off;
			assert_int_equal(write(l.fd, body + off, k), (ssize_t)k);
			off += k;
		}
	}
	put(&l, "\r\n.\r\n");
	expect(&l, "250 2.0.0 delivered");
	lab_stop(&l);
	assert_int_equal(fp_wait(p, 5000), 0);
	{
		const char *got = fp_received(p, 0, NULL);
		const char *start = strstr(got, "354") == NULL ? strstr(got, "DATA\r\n") : NULL;
		size_t lines = 0;
		assert_non_null(start);
		for (i = 0; i < n; i++)
			lines += body[i] == '\n';
		/* every bare LF became CRLF; no byte lost */
		assert_int_equal(count(p, "\r\n"), lines + 3 /* EHLO MAIL RCPT */ + 1 /* DATA */ +
						       1 /* final CRLF */ + 1 /* . */ + 1 /* QUIT */);
	}
	free(body);
	free(want);
	fp_stop(&p);
}

/* Every destination refusing connections: the next session is turned away at the greeting. */
static void test_health_fast_fail(void **state)
{
	unsigned a = fp_closed_port(), b = fp_closed_port();
	char routes[256];
	lab l;

	(void)state;
	snprintf(routes, sizeof(routes), "a.test smtp:[127.0.0.1]:%u\nb.test smtp:[127.0.0.1]:%u\n", a, b);
	lab_start(&l, "health_failures = 2\nhealth_retry = 1h\n", routes);
	greet(&l);
	put(&l, "MAIL FROM:<s@int.test>\r\nRCPT TO:<x@a.test>\r\nRCPT TO:<y@b.test>\r\nDATA\r\n");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "354 ");
	put(&l, "Subject: s\r\n\r\nx\r\n.\r\n");
	expect(&l, "451 4.4.1 ");
	expect(&l, "451 4.4.1 ");
	/* the same session: the next MAIL is refused with 421 */
	put(&l, "MAIL FROM:<s@int.test>\r\n");
	expect(&l, "421 4.4.0 ");
	lab_end_session(&l);
	assert_int_equal(gwl_relay_healthy(l.relay), 0);
	lab_reconnect(&l);
	expect(&l, "421 4.3.2 ");
	lab_stop(&l);
}

/* Two transactions to one destination share one connection, without RSET after a clean end. */
static void test_connection_reuse(void **state)
{
	fp_peer *p =
	    peer(SINK_OK "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\nsend 354 go\n"
			 "data\nsend 250 ok\nexpect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\n"
			 "expect DATA\nsend 354 go\ndata\nsend 250 ok\n");
	gwl_relay_stats st;
	char routes[256];
	int i;
	lab l;

	(void)state;
	snprintf(routes, sizeof(routes), "re.test smtp:[127.0.0.1]:%u\n", fp_port(p));
	lab_start(&l, "", routes);
	greet(&l);
	for (i = 0; i < 2; i++) {
		put(&l, "MAIL FROM:<s@int.test>\r\nRCPT TO:<x@re.test>\r\nDATA\r\n");
		expect(&l, "250 ");
		expect(&l, "250 ");
		expect(&l, "354 ");
		put(&l, "Subject: s\r\n\r\nx\r\n.\r\n");
		expect(&l, "250 2.0.0 ");
	}
	gwl_relay_get_stats(l.relay, &st);
	assert_int_equal(st.connections_reused, 1);
	assert_int_equal(st.delivered, 2);
	assert_int_equal(fp_connections(p), 1);
	assert_int_equal(count(p, "RSET"), 0);
	lab_stop(&l);
	fp_stop(&p);
}

/* Garbage, commands out of order and a recipient without a domain: answered, the session survives. */
static void test_bad_input(void **state)
{
	lab l;

	(void)state;
	lab_start(&l, "", "");
	expect(&l, "220 ");
	put(&l, "EHLO x\r\n");
	expect(&l, "500 5.5.1 ");
	put(&l, "LHLO internal.test\r\n");
	expect(&l, "250 ");
	put(&l, "RCPT TO:<a@b.test>\r\n");
	expect(&l, "503 5.5.1 ");
	assert_int_equal(write(l.fd, "\x01\x02garbage\x00\r\n", 12), 12);
	expect(&l, "500 5.5.2 ");
	put(&l, "MAIL FROM:<s@int.test>\r\n");
	expect(&l, "250 ");
	put(&l, "RCPT TO:<postmaster>\r\n");
	expect(&l, "550 5.1.3 ");
	put(&l, "DATA\r\n");
	expect(&l, "554 5.5.1 "); /* no valid recipients, as Postfix says */
	put(&l, "RSET\r\nNOOP\r\nQUIT\r\n");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "221 ");
	lab_stop(&l);
}

/* tls_policy: encrypt for a destination that offers STARTTLS works inside TLS; one that does not gets 4xx. */
static void test_tls_policy(void **state)
{
	fp_peer *tls =
	    peer("send 220 dest ESMTP\nexpect EHLO\nsend 250-dest\\r\\n250 STARTTLS\n"
		 "expect STARTTLS\nsend 220 go ahead\nstarttls\nexpect EHLO\nsend 250 dest\n"
		 "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\nsend 354 go\ndata\n"
		 "send 250 2.0.0 in tls\n");
	fp_peer *plain = peer(SINK_OK);
	fp_peer *other = peer(SINK_OK "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\n"
				      "send 354 go\ndata\nsend 250 ok\n");
	char routes[512], got[512];
	lab l;

	(void)state;
	snprintf(
	    routes, sizeof(routes),
	    "tls.test smtp:[127.0.0.1]:%u\nplain.test smtp:[127.0.0.1]:%u\nother.test smtp:[127.0.0.1]:%u\n",
	    fp_port(tls), fp_port(plain), fp_port(other));
	lab_policy = "# per destination\ntls.test encrypt\n.test none\nPLAIN.test Encrypt\n";
	lab_start(&l, "", routes);
	loglen = 0;
	logbuf[0] = '\0';
	gw_log_open("test_lmtpd", GW_LOG_STDERR, GW_LOG_INFO);
	gw_log_set_sink(log_sink, NULL);
	greet(&l);
	put(&l, "MAIL FROM:<s@int.test>\r\nRCPT TO:<a@tls.test>\r\nRCPT TO:<b@plain.test>\r\n"
		"RCPT TO:<c@other.test>\r\nDATA\r\n");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "354 ");
	put(&l, "Subject: s\r\n\r\nx\r\n.\r\n");
	expect(&l, "250 2.0.0 delivered to [127.0.0.1]:");
	reply(&l, got, sizeof(got));
	if (strncmp(got, "451 4.", 6) != 0 || strstr(got, "STARTTLS") == NULL)
		fail_msg("plain.test: got \"%s\", want a 4xx about STARTTLS", got);
	expect(&l, "250 2.0.0 delivered"); /* other.test: ".test none", no STARTTLS asked */
	lab_stop(&l);
	gw_log_set_sink(NULL, NULL);
	gw_log_open("test_lmtpd", GW_LOG_STDERR, getenv("GW_TEST_VERBOSE") ? GW_LOG_DEBUG : GW_LOG_ERR);
	{
		/* each recipient's line names the destination's address and the session's TLS */
		char want[128];
		snprintf(want, sizeof(want),
			 "to=<a@tls.test> state=delivered stage=data host=[127.0.0.1]:%u addr=[127.0.0.1]:%u "
			 "tls=\"TLSv1.",
			 fp_port(tls), fp_port(tls));
		if (strstr(logbuf, want) == NULL)
			fail_msg("no log line with \"%s\" in:\n%s", want, logbuf);
		snprintf(want, sizeof(want),
			 "to=<c@other.test> state=delivered stage=data host=[127.0.0.1]:%u "
			 "addr=[127.0.0.1]:%u tls=\"none\"",
			 fp_port(other), fp_port(other));
		if (strstr(logbuf, want) == NULL)
			fail_msg("no log line with \"%s\" in:\n%s", want, logbuf);
	}
	assert_int_equal(count(plain, "MAIL FROM"), 0);
	assert_int_equal(count(other, "STARTTLS"), 0);
	fp_stop(&tls);
	fp_stop(&plain);
	fp_stop(&other);
}

/* A bad tls_policy file is refused at load with file:line. */
static void test_tls_policy_errors(void **state)
{
	char path[] = "/tmp/gw-lmtpd-policy.XXXXXX", err[512];
	int fd = mkstemp(path);
	gw_domain_tls *t;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "a.test may\nb.test sometimes\n", 29), 29);
	close(fd);
	t = gw_domain_tls_load(path, err, sizeof(err));
	assert_null(t);
	assert_non_null(strstr(err, ":2: unknown policy \"sometimes\""));
	unlink(path);
}

/* SMTPUTF8 is asked only for a UTF-8 envelope: ASCII recipients go to a destination without it. */
static void test_smtputf8(void **state)
{
	fp_peer *p =
	    peer(SINK_OK "expect MAIL FROM:<s@int.test>\nsend 250 ok\nexpect RCPT TO:<ascii@u.test>\n"
			 "send 250 ok\nexpect DATA\nsend 354 go\ndata\nsend 250 ok\n");
	char routes[256], got[512];
	lab l;

	(void)state;
	snprintf(routes, sizeof(routes), "u.test smtp:[127.0.0.1]:%u\n", fp_port(p));
	lab_start(&l, "", routes);
	greet(&l);
	put(&l, "MAIL FROM:<s@int.test> SMTPUTF8\r\nRCPT TO:<ascii@u.test>\r\nDATA\r\n");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "354 ");
	put(&l, "Subject: s\r\n\r\nx\r\n.\r\n");
	expect(&l, "250 2.0.0 delivered");
	lab_end_session(&l);
	assert_int_equal(fp_wait(p, 5000), 0);
	fp_stop(&p);
	/* the same destination without SMTPUTF8 and a UTF-8 recipient: permanent */
	p = peer(SINK_OK);
	snprintf(routes, sizeof(routes), "u.test smtp:[127.0.0.1]:%u\n", fp_port(p));
	gwl_relay_free(&l.relay);
	gwl_config_free(&l.conf);
	lab_start(&l, "", routes);
	greet(&l);
	put(&l, "MAIL FROM:<s@int.test> SMTPUTF8\r\nRCPT TO:<j\xc3\xbcrgen@u.test>\r\nDATA\r\n");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "354 ");
	put(&l, "Subject: s\r\n\r\nx\r\n.\r\n");
	reply(&l, got, sizeof(got));
	if (got[0] != '5')
		fail_msg("UTF-8 recipient to a destination without SMTPUTF8: got \"%s\", want 5xx", got);
	lab_stop(&l);
	assert_int_equal(count(p, "MAIL FROM"), 0);
	fp_stop(&p);
}

/* Two messages at once to a destination capped at one connection: the second waits for it and reuses it. */
typedef struct cap_arg {
	gwl_relay *relay;
	gwl_spool spool;
	gw_lmtp_result res;
} cap_arg;

static void *cap_send(void *arg)
{
	cap_arg *a = arg;
	gw_lmtp_rcpt rc = {"x@cap.test", NULL, NULL};
	gwl_relay_msg m;

	memset(&m, 0, sizeof(m));
	m.sender = "s@int.test";
	m.rcpts = &rc;
	m.nrcpts = 1;
	m.body = &a->spool;
	gwl_relay_deliver(a->relay, &m, 5000, &a->res, NULL);
	return NULL;
}

static void test_dest_concurrency(void **state)
{
	fp_peer *p =
	    peer(SINK_OK "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\nsend 354 go\n"
			 "data\nsleep 300\nsend 250 ok\nexpect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\n"
			 "expect DATA\nsend 354 go\ndata\nsend 250 ok\n");
	char routes[256];
	cap_arg a[2];
	pthread_t t[2];
	lab l;
	int i;

	(void)state;
	snprintf(routes, sizeof(routes), "cap.test smtp:[127.0.0.1]:%u\n", fp_port(p));
	lab_start(&l, "", routes);
	{
		/* a relay of its own, capped at one connection per destination */
		gwl_relay_conf rc;
		memset(&rc, 0, sizeof(rc));
		rc.routes = l.conf->routes;
		rc.smtp.client.connect_timeout_ms = 1000;
		rc.smtp.client.reply_timeout_ms = 3000;
		rc.dest_concurrency = 1;
		rc.dest_idle = 1;
		for (i = 0; i < 2; i++) {
			assert_non_null(a[i].relay = i == 0 ? gwl_relay_new(&rc) : a[0].relay);
			gwl_spool_init(&a[i].spool, l.dir, 1024, 1 << 20);
			assert_int_equal(gwl_spool_append(&a[i].spool, "Subject: c\r\n\r\nx\r\n", 16), 0);
		}
	}
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, cap_send, &a[i]), 0);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < 2; i++)
		if (a[i].res.state != GW_LMTP_DELIVERED)
			fail_msg("message %d: %s %d %s", i, gw_lmtp_state_str(a[i].res.state), a[i].res.code,
				 a[i].res.text);
	assert_int_equal(fp_connections(p), 1);
	gwl_relay_free(&a[0].relay);
	for (i = 0; i < 2; i++)
		gwl_spool_reset(&a[i].spool);
	lab_stop(&l);
	fp_stop(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mixed_outcomes),    cmocka_unit_test(test_parameters_passed_on),
	    cmocka_unit_test(test_deadline),          cmocka_unit_test(test_spool_file),
	    cmocka_unit_test(test_health_fast_fail),  cmocka_unit_test(test_connection_reuse),
	    cmocka_unit_test(test_bad_input),         cmocka_unit_test(test_tls_policy),
	    cmocka_unit_test(test_tls_policy_errors), cmocka_unit_test(test_smtputf8),
	    cmocka_unit_test(test_dest_concurrency),
	};

	gw_log_open("test_lmtpd", GW_LOG_STDERR, getenv("GW_TEST_VERBOSE") ? GW_LOG_DEBUG : GW_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
