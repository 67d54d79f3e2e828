/*
 * test_proxy_relay.c - gw-proxy's relay state machine end to end in one
 * process: the tenant MTA played by the test over a socketpair,
 * gwp_session_run() on the other end, and a scripted destination (the fake
 * peer). Each case checks the exact replies the client got (the
 * destination's verdicts, pipelined or not), what the destination received,
 * and the session log's notation.
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
#include "proxy_conf.h"
#include "relay.h"
#include "session.h"

#define DEST_EHLO                                                                                            \
	"send 220 dest.test ESMTP\nexpect EHLO gw.test\nsend 250-dest.test\\r\\n250-PIPELINING\\r\\n"        \
	"250-SIZE 1000000\\r\\n250-8BITMIME\\r\\n250-STARTTLS\\r\\n250-CHUNKING\\r\\n250 DSN\n"

#define DEST_EHLO_NOPIPE                                                                                     \
	"send 220 dest.test ESMTP\nexpect EHLO gw.test\nsend 250-dest.test\\r\\n250-SIZE 1000000\\r\\n250 "  \
	"8BITMIME\n"

#define ENVELOPE                                                                                             \
	"MAIL FROM:<s@t.test>\r\nRCPT TO:<a@dest.test>\r\nRCPT TO:<b@dest.test>\r\nRCPT "                    \
	"TO:<c@dest.test>\r\nDATA\r\n"
#define ENVELOPE_ESC                                                                                         \
	"MAIL FROM:<s@t.test>\\r\\nRCPT TO:<a@dest.test>\\r\\nRCPT TO:<b@dest.test>\\r\\nRCPT "              \
	"TO:<c@dest.test>\\r\\nDATA\\r\\n"

typedef struct lab {
	char dir[64];
	gwp_config *conf;
	gwp_stats stats;
	gwp_env env;
	gw_nexthop hop;
	int use_hop;
	int fd; /* the test's end */
	pthread_t t;
	int sfd;
	char inbuf[65536];
	size_t inlen;
} lab;

static int lab_socktype = SOCK_STREAM; /* SOCK_SEQPACKET: every write of the session is a record of its own */

static void *serve(void *arg)
{
	lab *l = arg;

	gwp_session_run(l->sfd, "[127.0.0.9]:4242", &l->env, l->use_hop ? &l->hop : NULL, NULL);
	return NULL;
}

/* Session to the destination at port (0: MX mode), configuration with extra lines. */
static void lab_start(lab *l, unsigned port, const char *extra)
{
	char path[128], err[512];
	int sv[2];
	FILE *f;

	memset(l, 0, sizeof(*l));
	snprintf(l->dir, sizeof(l->dir), "/tmp/gw-proxy-test.XXXXXX");
	assert_non_null(mkdtemp(l->dir));
	snprintf(path, sizeof(path), "%s/gw-proxy.conf", l->dir);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f,
		"listen = [127.0.0.1]:10026\nlog = stderr\nhostname = proxy.test\nhelo_name = gw.test\n"
		"session_log = %s/session.log\nconnect_timeout = 2s\nreply_timeout = 3s\n%s%s%s",
		l->dir, strstr(extra, "tls =") ? "" : "tls = none\n",
		strstr(extra, "command_timeout =") ? "" : "command_timeout = 5s\n", extra);
	fclose(f);
	l->conf = gwp_config_load(path, err, sizeof(err));
	if (l->conf == NULL)
		fail_msg("config: %s", err);
	assert_non_null(l->env.slog = gwp_slog_open(l->conf->opt.session_log, err, sizeof(err)));
	l->env.conf = l->conf;
	l->env.stats = &l->stats;
	if (strstr(extra, "pool =") != NULL)
		assert_non_null(l->env.pool = gwp_pool_new(NULL));
	if (port != 0) {
		const char *e;
		char spec[64];
		snprintf(spec, sizeof(spec), "[127.0.0.1]:%u", port);
		assert_int_equal(gw_nexthop_parse(spec, strlen(spec), &l->hop, &e), 0);
		l->use_hop = 1;
	}
	assert_int_equal(socketpair(AF_UNIX, lab_socktype, 0, sv), 0);
	l->fd = sv[0];
	l->sfd = sv[1];
	assert_int_equal(pthread_create(&l->t, NULL, serve, l), 0);
}

static void lab_end_session(lab *l)
{
	if (l->fd < 0)
		return;
	close(l->fd);
	l->fd = -1;
	pthread_join(l->t, NULL);
}

/* The session log, once the session has ended; malloc'd. */
static char *session_log(lab *l)
{
	char path[128], *b = calloc(1, 65536);
	FILE *f;
	size_t n;

	lab_end_session(l);
	snprintf(path, sizeof(path), "%s/session.log", l->dir);
	assert_non_null(b);
	assert_non_null(f = fopen(path, "r"));
	n = fread(b, 1, 65535, f);
	b[n] = '\0';
	fclose(f);
	return b;
}

/* End the session and free; the directory (and the session log) goes at exit. */
static void lab_stop(lab *l)
{
	lab_end_session(l);
	gwp_slog_close(&l->env.slog);
	gwp_pool_free(&l->env.pool);
	gwp_config_free(&l->conf);
}

static void lab_rmdir(lab *l)
{
	char cmd[128];

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

/* Read one whole reply: all its lines, joined by '|', into out. */
static void reply(lab *l, char *out, size_t outlen)
{
	char ln[1024];
	size_t n = 0;

	out[0] = '\0';
	do {
		line(l, ln, sizeof(ln));
		n += (size_t)snprintf(out + n, n < outlen ? outlen - n : 0, "%s%s", n ? "|" : "", ln);
	} while (strlen(ln) > 3 && ln[3] == '-');
}

static void expect(lab *l, const char *want)
{
	char got[4096];

	reply(l, got, sizeof(got));
	if (strncmp(got, want, strlen(want)) != 0)
		fail_msg("got \"%s\", want \"%s...\"", got, want);
}

/* The session ends: the client sees the connection close. */
static void expect_closed(lab *l)
{
	struct timeval tv = {10, 0};
	char b[256];
	ssize_t n;

	setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while ((n = read(l->fd, b, sizeof(b))) > 0)
		;
	assert_int_equal(n, 0);
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

static void peer_done(fp_peer **p)
{
	if (fp_wait(*p, 10000) != 0)
		fail_msg("destination script: %s", fp_error(*p) ? fp_error(*p) : "did not finish");
	fp_stop(p);
}

static void contains(const char *hay, const char *needle)
{
	if (hay == NULL || strstr(hay, needle) == NULL)
		fail_msg("\"%s\" not found in:\n%s", needle, hay ? hay : "(null)");
}

/* The EHLO reply offers what the destination offers, minus STARTTLS and CHUNKING, plus PIPELINING. */
static void test_ehlo_follows_destination(void **state)
{
	fp_peer *d = peer(DEST_EHLO "expect QUIT\nsend 221 bye\n");
	char got[4096];
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 proxy.test");
	put(&l, "EHLO tenant.test\r\n");
	reply(&l, got, sizeof(got));
	contains(got, "250-PIPELINING");
	contains(got, "SIZE 1000000");
	contains(got, "8BITMIME");
	contains(got, "DSN");
	assert_null(strstr(got, "STARTTLS"));
	assert_null(strstr(got, "CHUNKING"));
	assert_null(strstr(got, "SMTPUTF8")); /* the destination does not offer it */
	put(&l, "QUIT\r\n");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	lab_rmdir(&l);
}

/* A pipelined transaction with mixed verdicts: each reply is the destination's, in order. */
static void test_pipelined_mixed_verdicts(void **state)
{
	fp_peer *d =
	    peer(DEST_EHLO "expect MAIL FROM:<s@tenant.test> SIZE=120\nsend 250 2.1.0 sender ok\n"
			   "expect RCPT TO:<a@dest.test> NOTIFY=NEVER\nsend 250 2.1.5 a ok\n"
			   "expect RCPT TO:<b@dest.test>\nsend 550 5.1.1 <b@dest.test>: no such user\n"
			   "expect RCPT TO:<c@dest.test>\nsend 452 4.2.2 mailbox full\n"
			   "expect DATA\nsend 354 go ahead\ndata\nsend 250 2.0.0 Ok: queued as D1\n"
			   "expect QUIT\nsend 221 bye\n");
	const char *rx;
	char *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO tenant.test\r\n");
	expect(&l, "250-proxy.test");
	put(&l, "MAIL FROM:<s@tenant.test> SIZE=120\r\nRCPT TO:<a@dest.test> NOTIFY=NEVER\r\n"
		"RCPT TO:<b@dest.test>\r\nRCPT TO:<c@dest.test>\r\nDATA\r\n");
	expect(&l, "250 2.1.0 sender ok");
	expect(&l, "250 2.1.5 a ok");
	expect(&l, "550 5.1.1 <b@dest.test>: no such user");
	expect(&l, "452 4.2.2 mailbox full");
	expect(&l, "354 ");
	put(&l, "Subject: t\r\n\r\n..leading dot\r\nbody\r\n.\r\nQUIT\r\n");
	expect(&l, "250 2.0.0 Ok: queued as D1");
	expect(&l, "221 ");
	lab_stop(&l);
	rx = fp_received(d, 0, NULL);
	contains(rx, "\r\n\r\n..leading dot\r\nbody\r\n.\r\nQUIT\r\n"); /* stuffed again */
	peer_done(&d);
	slog = session_log(&l);
	contains(slog, " -> MAIL FROM:<s@tenant.test> SIZE=120\n");
	contains(slog, " <- 550 5.1.1 <b@dest.test>: no such user [");
	contains(slog, " >| EHLO tenant.test\n");
	contains(slog, " |< 354 go ahead [");
	contains(slog, " -> QUIT\n");
	contains(slog, " == client=[127.0.0.9]:4242 tenant=127.0.0.9 helo=tenant.test");
	contains(slog, "outcome=quit messages=1 refused=0 rcpts=1/3");
	free(slog);
	assert_int_equal(l.stats.messages, 1);
	assert_int_equal(l.stats.rcpts_refused, 2);
	lab_rmdir(&l);
}

/* The destination refuses the message at the dot: the client gets exactly that. */
static void test_dot_refused(void **state)
{
	fp_peer *d = peer(
	    DEST_EHLO "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\n"
		      "send 354 go\ndata\nsend 554 5.7.1 spam\\xe9 detected\nexpect QUIT\nsend 221 bye\n");
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\nMAIL FROM:<s@t.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
	expect(&l, "250-");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "354 ");
	put(&l, "x\r\n.\r\n");
	expect(&l, "554 5.7.1 spam? detected"); /* the 8-bit byte sanitised */
	put(&l, "QUIT\r\n");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	assert_int_equal(l.stats.messages_refused, 1);
	lab_rmdir(&l);
}

/* The destination goes away after the dot without a verdict: never 250, a 421 and the session ends. */
static void test_lost_after_dot(void **state)
{
	fp_peer *d = peer(DEST_EHLO "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\n"
				    "send 354 go\ndata\nclose\n");
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\nMAIL FROM:<s@t.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
	expect(&l, "250-");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "354 ");
	put(&l, "x\r\n.\r\n");
	expect(&l, "421 4.4.2 [127.0.0.1]:");
	expect_closed(&l);
	lab_stop(&l);
	peer_done(&d);
	assert_int_equal(l.stats.messages, 0);
	assert_int_equal(l.stats.upstream_failures, 1);
	lab_rmdir(&l);
}

/* A destination that cannot be reached: 421 at the greeting, nothing else. */
static void test_destination_refused(void **state)
{
	char *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_closed_port(), "");
	expect(&l, "421 4.3.2 proxy.test cannot reach [127.0.0.1]:");
	expect_closed(&l);
	lab_stop(&l);
	slog = session_log(&l);
	contains(slog, " |< ! connection refused at connect");
	contains(slog, " outcome=upstream-connection-refused messages=0 "); /* one token */
	free(slog);
	lab_rmdir(&l);
}

/* A destination that refuses us at its greeting: its own 554 answers MAIL, word for word. */
static void test_greeting_refusal_answers_mail(void **state)
{
	fp_peer *d = peer("send 554 5.7.1 dest.test: no service for you\nexpect QUIT\nsend 221 bye\n");
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\n");
	expect(&l, "250-");
	put(&l, "MAIL FROM:<s@t.test>\r\n");
	expect(&l, "554 5.7.1 dest.test: no service for you");
	put(&l, "QUIT\r\n");
	expect(&l, "221 ");
	lab_stop(&l);
	fp_stop(&d);
	lab_rmdir(&l);
}

#define BL_TEXT "Service unavailable; Client host [127.0.0.2] listed at bl.test"

/* A blocklist verdict in the greeting: the same session connects again from the next pool address. */
static void test_pool_greeting_reconnects(void **state)
{
	fp_peer *d = peer("send 554 5.7.1 " BL_TEXT "\n---\n" DEST_EHLO
			  "expect MAIL FROM:<s@t.test>\nsend 250 2.1.0 ok\nexpect RCPT TO:<a@dest.test>\n"
			  "send 250 2.1.5 ok\nexpect QUIT\nsend 221 bye\n");
	char *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "pool = 127.0.0.2, 127.0.0.3\n");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\n");
	expect(&l, "250-");
	put(&l, "MAIL FROM:<s@t.test>\r\n");
	expect(&l, "250 2.1.0 ok");
	put(&l, "RCPT TO:<a@dest.test>\r\n");
	expect(&l, "250 2.1.5 ok");
	put(&l, "QUIT\r\n");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	slog = session_log(&l);
	contains(slog, " from 127.0.0.2, EHLO");
	contains(slog, " |< 554 5.7.1 " BL_TEXT " [");
	contains(slog,
		 " |< ! pool: address 127.0.0.2 retired for 127.0.0.1 for 3600s: 554 5.7.1 " BL_TEXT "\n");
	contains(slog,
		 " |> ! pool: 127.0.0.2 blocklisted at 127.0.0.1: connecting again from another address\n");
	contains(slog, " from 127.0.0.3, EHLO");
	contains(slog, " outcome=quit ");
	free(slog);
	assert_int_equal(l.stats.pool_retired, 1);
	assert_int_equal(l.stats.pool_reconnected, 1);
	assert_int_equal(l.stats.pool_deferred, 0);
	lab_rmdir(&l);
}

/*
 * A blocklist verdict to a RCPT after another RCPT of the transaction was accepted, while another pool
 * address is left: the tenant gets 451 4.7.1 with the destination's text (its queue retries; answered
 * RCPTs are not replayed on a new connection), and its next transaction connects from the other address.
 */
static void test_pool_rcpt_deferred(void **state)
{
	fp_peer *d =
	    peer(DEST_EHLO "expect MAIL FROM:<s@t.test>\nsend 250 2.1.0 ok\nexpect RCPT TO:<a@dest.test>\n"
			   "send 250 2.1.5 ok\nexpect RCPT TO:<b@dest.test>\n"
			   "send 554 5.7.1 " BL_TEXT "\nexpect RSET\nsend 250 ok\nexpect QUIT\nsend 221 bye\n"
			   "---\n" DEST_EHLO "expect MAIL FROM:<s@t.test>\nsend 250 2.1.0 ok\n"
			   "expect RCPT TO:<a@dest.test>\nsend 250 2.1.5 ok\nexpect QUIT\nsend 221 bye\n");
	char *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "pool = 127.0.0.2, 127.0.0.3\n");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\n");
	expect(&l, "250-");
	put(&l, "MAIL FROM:<s@t.test>\r\n");
	expect(&l, "250 2.1.0 ok");
	put(&l, "RCPT TO:<a@dest.test>\r\n");
	expect(&l, "250 2.1.5 ok");
	put(&l, "RCPT TO:<b@dest.test>\r\n");
	expect(&l, "451 4.7.1 " BL_TEXT);
	put(&l, "RSET\r\n");
	expect(&l, "250 ");
	put(&l, "MAIL FROM:<s@t.test>\r\n");
	expect(&l, "250 2.1.0 ok");
	put(&l, "RCPT TO:<a@dest.test>\r\n");
	expect(&l, "250 2.1.5 ok");
	put(&l, "QUIT\r\n");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	slog = session_log(&l);
	contains(slog, " |< 554 5.7.1 " BL_TEXT " [");
	contains(slog, " <- 451 4.7.1 " BL_TEXT
		       " (proxy: 554 from a retired address; the retry goes out from another)\n");
	contains(slog,
		 " |> ! pool: 127.0.0.2 retired for 127.0.0.1: the next transaction connects from another\n");
	contains(slog, " from 127.0.0.3, EHLO");
	free(slog);
	assert_int_equal(l.stats.pool_retired, 1);
	assert_int_equal(l.stats.pool_deferred, 1);
	assert_int_equal(l.stats.pool_reconnected, 0);
	lab_rmdir(&l);
}

/*
 * A blocklist verdict to a pipelined MAIL from a known destination: the same session retires the address,
 * connects again from the next one, sends the MAIL and everything sent ahead with it again, and the tenant
 * gets the new connection's verdicts only.
 */
static void test_pool_mail_reconnects(void **state)
{
	fp_peer *d = peer(DEST_EHLO "batch " ENVELOPE_ESC "\nsend 554 5.7.1 " BL_TEXT "\n---\n" DEST_EHLO
				    "batch " ENVELOPE_ESC "\nsend 250 2.1.0 sender ok\nsend 250 2.1.5 a ok\n"
				    "send 550 5.1.1 b unknown\nsend 250 2.1.5 c ok\nsend 354 go ahead\ndata\n"
				    "send 250 2.0.0 queued as P2\nexpect QUIT\nsend 221 bye\n");
	char *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "pool = 127.0.0.2, 127.0.0.3\n");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\n");
	expect(&l, "250-");
	put(&l, ENVELOPE);
	expect(&l, "250 2.1.0 sender ok");
	expect(&l, "250 2.1.5 a ok");
	expect(&l, "550 5.1.1 b unknown");
	expect(&l, "250 2.1.5 c ok");
	expect(&l, "354 ");
	put(&l, "hello\r\n.\r\nQUIT\r\n");
	expect(&l, "250 2.0.0 queued as P2");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	slog = session_log(&l);
	contains(slog, " from 127.0.0.2, EHLO");
	contains(slog, " |< 554 5.7.1 " BL_TEXT " [");
	contains(slog,
		 " |< ! pool: address 127.0.0.2 retired for 127.0.0.1 for 3600s: 554 5.7.1 " BL_TEXT "\n");
	contains(slog,
		 " |> (close: 127.0.0.2 is blocklisted at 127.0.0.1; the transaction goes out again from "
		 "another address)\n");
	contains(slog, " from 127.0.0.3, EHLO");
	contains(slog, " <- 250 2.1.0 sender ok [");
	contains(slog, "outcome=quit messages=1 refused=0 rcpts=2/3");
	if (strstr(slog, " <- 451 ") != NULL || strstr(slog, " <- 554 ") != NULL)
		fail_msg("the tenant saw the verdict:\n%s", slog);
	free(slog);
	assert_int_equal(l.stats.pool_retired, 1);
	assert_int_equal(l.stats.pool_reconnected, 1);
	assert_int_equal(l.stats.pool_deferred, 0);
	assert_int_equal(l.stats.messages, 1);
	lab_rmdir(&l);
}

/*
 * A blocklist verdict to the transaction's first RCPT (MAIL accepted, a destination without PIPELINING):
 * the new connection gets the MAIL again (its reply the proxy's), then the RCPT, whose verdict the tenant
 * gets.
 */
static void test_pool_first_rcpt_reconnects(void **state)
{
	fp_peer *d = peer(DEST_EHLO_NOPIPE
			  "expect MAIL FROM:<s@t.test>\nsend 250 2.1.0 ok\n"
			  "expect RCPT TO:<a@dest.test>\nsend 554 5.7.1 " BL_TEXT "\n---\n" DEST_EHLO_NOPIPE
			  "expect MAIL FROM:<s@t.test>\nsend 250 2.1.0 ok again\n"
			  "expect RCPT TO:<a@dest.test>\nsend 250 2.1.5 a ok\nexpect QUIT\nsend 221 bye\n");
	char *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "pool = 127.0.0.2, 127.0.0.3\n");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\n");
	expect(&l, "250-");
	put(&l, "MAIL FROM:<s@t.test>\r\n");
	expect(&l, "250 2.1.0 ok");
	put(&l, "RCPT TO:<a@dest.test>\r\n");
	expect(&l, "250 2.1.5 a ok");
	put(&l, "QUIT\r\n");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	slog = session_log(&l);
	contains(slog, " from 127.0.0.3, EHLO");
	contains(slog, " |> MAIL FROM:<s@t.test>\n");
	contains(slog, " |< 250 2.1.0 ok again [");
	contains(slog, "outcome=quit messages=0 refused=0 rcpts=1/1");
	free(slog);
	assert_int_equal(l.stats.pool_reconnected, 1);
	assert_int_equal(l.stats.pool_deferred, 0);
	assert_int_equal(l.stats.rcpts_accepted, 1);
	lab_rmdir(&l);
}

/* The MAIL's blocklist verdict and every other address blocklisted at its greeting: 451 4.7.1 as before. */
static void test_pool_mail_no_address_left(void **state)
{
	fp_peer *d = peer(DEST_EHLO_NOPIPE "expect MAIL FROM:<s@t.test>\nsend 550 5.7.1 " BL_TEXT "\n---\n"
					   "send 554 5.7.1 " BL_TEXT "\n");
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "pool = 127.0.0.2, 127.0.0.3\n");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\n");
	expect(&l, "250-");
	put(&l, "MAIL FROM:<s@t.test>\r\n");
	expect(&l, "451 4.7.1 " BL_TEXT);
	put(&l, "QUIT\r\n");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	assert_int_equal(l.stats.pool_retired, 2);
	assert_int_equal(l.stats.pool_reconnected, 1);
	assert_int_equal(l.stats.pool_deferred, 1);
	lab_rmdir(&l);
}

/* MX mode: a blocklist verdict to the held MAIL answers the transaction's RCPTs with 451, and the next
 * transaction connects from the other address. */
static void test_pool_mx_mail_deferred(void **state)
{
	fp_peer *d =
	    peer(DEST_EHLO "expect MAIL FROM:<s@t.test>\nsend 550 5.7.1 " BL_TEXT "\nexpect QUIT\n"
			   "send 221 bye\n---\n" DEST_EHLO "expect MAIL FROM:<s@t.test>\nsend 250 2.1.0 ok\n"
			   "expect RCPT TO:<a@[127.0.0.1]>\nsend 250 2.1.5 ok\nexpect QUIT\nsend 221 bye\n");
	char extra[128];
	lab l;

	(void)state;
	snprintf(extra, sizeof(extra), "smtp_port = %u\npool = 127.0.0.2, 127.0.0.3\n", fp_port(d));
	lab_start(&l, 0, extra);
	expect(&l, "220 ");
	put(&l, "EHLO t\r\nMAIL FROM:<s@t.test>\r\nRCPT TO:<a@[127.0.0.1]>\r\nRCPT TO:<b@[127.0.0.1]>\r\n"
		"RSET\r\nMAIL FROM:<s@t.test>\r\nRCPT TO:<a@[127.0.0.1]>\r\nQUIT\r\n");
	expect(&l, "250-");
	expect(&l, "250 2.1.0 Ok");
	expect(&l, "451 4.7.1 " BL_TEXT);
	expect(&l, "451 4.7.1 " BL_TEXT);
	expect(&l, "250 ");
	expect(&l, "250 2.1.0 Ok");
	expect(&l, "250 2.1.5 ok");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	assert_int_equal(l.stats.pool_retired, 1);
	assert_int_equal(l.stats.pool_deferred, 1);
	lab_rmdir(&l);
}

/* With no other address left, the blocklist verdict is the truth for the tenant: it goes through. */
static void test_pool_last_address_passes(void **state)
{
	fp_peer *d =
	    peer(DEST_EHLO "expect MAIL FROM:<s@t.test>\nsend 250 2.1.0 ok\nexpect RCPT TO:<a@dest.test>\n"
			   "send 554 5.7.1 " BL_TEXT "\nexpect QUIT\nsend 221 bye\n");
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "pool = 127.0.0.2\n");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\nMAIL FROM:<s@t.test>\r\nRCPT TO:<a@dest.test>\r\n");
	expect(&l, "250-");
	expect(&l, "250 2.1.0 ok");
	expect(&l, "554 5.7.1 " BL_TEXT);
	put(&l, "QUIT\r\n");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	assert_int_equal(l.stats.pool_retired, 1);
	assert_int_equal(l.stats.pool_deferred, 0);
	lab_rmdir(&l);
}

/* A 421 from the destination is passed on and ends the session. */
static void test_destination_421(void **state)
{
	fp_peer *d =
	    peer(DEST_EHLO "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 421 4.7.0 too many connections\n"
			   "expect QUIT\nsend 221 bye\n");
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\nMAIL FROM:<s@t.test>\r\nRCPT TO:<a@dest.test>\r\n");
	expect(&l, "250-");
	expect(&l, "250 ");
	expect(&l, "421 4.7.0 too many connections");
	expect_closed(&l);
	lab_stop(&l);
	fp_stop(&d);
	lab_rmdir(&l);
}

/* DATA refused by the destination after the proxy's own 354: the refusal answers the dot. */
static void test_data_refused(void **state)
{
	fp_peer *d =
	    peer(DEST_EHLO "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\n"
			   "send 554 5.5.1 no thanks\nexpect RSET\nsend 250 ok\nexpect QUIT\nsend 221 bye\n");
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\nMAIL FROM:<s@t.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
	expect(&l, "250-");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "354 ");
	put(&l, "hello\r\n.\r\nQUIT\r\n");
	expect(&l, "554 5.5.1 no thanks");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	lab_rmdir(&l);
}

/* The client goes away in the middle of the body: the destination never sees a final dot, nor QUIT. */
static void test_client_lost_in_body(void **state)
{
	fp_peer *d = peer(DEST_EHLO "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\n"
				    "send 354 go\nexpect Subject\n");
	const char *rx;
	char *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\nMAIL FROM:<s@t.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
	expect(&l, "250-");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "354 ");
	put(&l, "Subject: half\r\nbody without an end\r\n");
	lab_end_session(&l);
	assert_int_equal(fp_wait(d, 10000), 0);
	rx = fp_received(d, 0, NULL);
	contains(rx, "body without an end\r\n");
	assert_null(strstr(rx, "\r\n.\r\n"));
	assert_null(strstr(rx, "QUIT"));
	slog = session_log(&l);
	contains(slog, "|> (close in DATA: no final dot");
	contains(slog, "outcome=client-lost");
	free(slog);
	lab_stop(&l);
	fp_stop(&d);
	lab_rmdir(&l);
}

/* The client goes away between commands: the destination gets a clean QUIT. */
static void test_client_lost_between_commands(void **state)
{
	fp_peer *d = peer(DEST_EHLO "expect MAIL\nsend 250 ok\nexpect QUIT\nsend 221 bye\n");
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\nMAIL FROM:<s@t.test>\r\n");
	expect(&l, "250-");
	expect(&l, "250 ");
	lab_end_session(&l);
	lab_stop(&l);
	peer_done(&d);
	lab_rmdir(&l);
}

/* RSET goes on to the destination; the next transaction starts clean. */
static void test_rset_relayed(void **state)
{
	fp_peer *d =
	    peer(DEST_EHLO "expect MAIL FROM:<one@t.test>\nsend 250 ok\nexpect RSET\nsend 250 ok\n"
			   "expect MAIL FROM:<two@t.test>\nsend 250 ok\nexpect QUIT\nsend 221 bye\n");
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\nMAIL FROM:<one@t.test>\r\nRSET\r\nMAIL FROM:<two@t.test>\r\nQUIT\r\n");
	expect(&l, "250-");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	lab_rmdir(&l);
}

/* MX mode with an address-literal domain (no DNS): MAIL is held, sent with the first RCPT. */
static void test_mx_mode_held_mail(void **state)
{
	fp_peer *d =
	    peer(DEST_EHLO "expect MAIL FROM:<s@t.test>\nsend 250 ok\nexpect RCPT TO:<a@[127.0.0.1]>\n"
			   "send 250 2.1.5 a ok\nexpect QUIT\nsend 221 bye\n");
	char extra[64], *slog;
	lab l;

	(void)state;
	snprintf(extra, sizeof(extra), "smtp_port = %u\n", fp_port(d));
	lab_start(&l, 0, extra);
	expect(&l, "220 ");
	put(&l, "EHLO t\r\nMAIL FROM:<s@t.test>\r\nRCPT TO:<a@[127.0.0.1]>\r\nRCPT "
		"TO:<b@other.test>\r\nQUIT\r\n");
	expect(&l, "250-");
	expect(&l, "250 2.1.0 Ok");
	expect(&l, "250 2.1.5 a ok");
	expect(&l, "452 4.5.3 one destination domain per transaction");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	slog = session_log(&l);
	contains(slog, " >| MAIL FROM:<s@t.test>\n");
	contains(slog, " -> MAIL FROM:<s@t.test>\n");
	contains(slog, " |< 250 ok [");
	free(slog);
	lab_rmdir(&l);
}

/* MX mode: a sender the destination refuses is the answer to its recipients. */
static void test_mx_mode_mail_refused(void **state)
{
	fp_peer *d = peer(DEST_EHLO "expect MAIL FROM:<s@t.test>\nsend 553 5.7.1 sender blocked\n"
				    "expect QUIT\nsend 221 bye\n");
	char extra[64];
	lab l;

	(void)state;
	snprintf(extra, sizeof(extra), "smtp_port = %u\n", fp_port(d));
	lab_start(&l, 0, extra);
	expect(&l, "220 ");
	put(&l, "EHLO t\r\nMAIL FROM:<s@t.test>\r\nRCPT TO:<a@[127.0.0.1]>\r\nRCPT TO:<b@[127.0.0.1]>\r\n"
		"QUIT\r\n");
	expect(&l, "250-");
	expect(&l, "250 2.1.0 Ok");
	expect(&l, "553 5.7.1 sender blocked");
	expect(&l, "553 5.7.1 sender blocked");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	lab_rmdir(&l);
}

/* STARTTLS at the proxy: the destination's leg is encrypted, the client's is plain and never offered it. */
static void test_starttls_at_proxy(void **state)
{
	fp_peer *d =
	    peer("send 220 dest.test ESMTP\nexpect EHLO gw.test\nsend 250-dest.test\\r\\n250-PIPELINING\\r\\n"
		 "250 STARTTLS\nexpect STARTTLS\nsend 220 go ahead\nstarttls\nexpect EHLO gw.test\n"
		 "send 250-dest.test\\r\\n250 8BITMIME\nexpect MAIL FROM:<s@t.test>\nsend 250 ok\n"
		 "expect RCPT\nsend 250 ok\nexpect DATA\nsend 354 go\ndata\nsend 250 2.0.0 queued over TLS\n"
		 "expect QUIT\nsend 221 bye\n");
	char got[4096], *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "tls = encrypt\n");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\n");
	reply(&l, got, sizeof(got));
	assert_null(strstr(got, "STARTTLS"));
	put(&l, "MAIL FROM:<s@t.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "354 ");
	put(&l, "secret\r\n.\r\nQUIT\r\n");
	expect(&l, "250 2.0.0 queued over TLS");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	slog = session_log(&l);
	contains(slog, " tls=TLSv1.");
	contains(slog, "tls_out=\"TLSv1.");
	contains(slog, "tls_in=\"none\"");
	free(slog);
	lab_rmdir(&l);
}

/* tls = encrypt and a destination without STARTTLS: no plain-text fallback, a 421 greeting. */
static void test_tls_required_not_offered(void **state)
{
	fp_peer *d = peer("send 220 dest.test ESMTP\nexpect EHLO\nsend 250-dest.test\\r\\n250 PIPELINING\n"
			  "expect QUIT\nsend 221 bye\n");
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "tls = encrypt\n");
	expect(&l, "421 4.3.2 proxy.test cannot reach [127.0.0.1]:");
	expect_closed(&l);
	lab_stop(&l);
	fp_stop(&d);
	assert_int_equal(l.stats.upstream_failures, 1);
	lab_rmdir(&l);
}

/* A message over the destination's SIZE: 552 from the proxy, no final dot at the destination, and the next
 * transaction gets a fresh connection. */
static void test_too_big_aborts_destination(void **state)
{
	fp_peer *d =
	    peer("send 220 dest.test ESMTP\nexpect EHLO\nsend 250-dest.test\\r\\n250 SIZE 1024\n"
		 "expect MAIL\nsend 250 ok\nexpect RCPT\nsend 250 ok\nexpect DATA\nsend 354 go\n---\n"
		 "send 220 dest.test ESMTP\nexpect EHLO\nsend 250 dest.test\nexpect MAIL FROM:<two@t.test>\n"
		 "send 250 2.1.0 second ok\nexpect QUIT\nsend 221 bye\n");
	char big[1500];
	const char *rx;
	lab l;

	(void)state;
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\nMAIL FROM:<one@t.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
	expect(&l, "250-");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "354 ");
	put(&l, big);
	put(&l, "\r\n.\r\n");
	expect(&l, "552 5.3.4 ");
	put(&l, "MAIL FROM:<two@t.test>\r\nQUIT\r\n");
	expect(&l, "250 2.1.0 second ok");
	expect(&l, "221 ");
	lab_stop(&l);
	assert_int_equal(fp_wait(d, 10000), 0);
	assert_int_equal(fp_connections(d), 2);
	rx = fp_received(d, 0, NULL);
	assert_null(strstr(rx, "\r\n.\r\n"));
	fp_stop(&d);
	lab_rmdir(&l);
}

/* An idle client: 421 after command_timeout, and the destination gets QUIT. */
static void test_client_idle_timeout(void **state)
{
	fp_peer *d = peer(DEST_EHLO "expect MAIL\nsend 250 ok\nexpect QUIT\nsend 221 bye\n");
	char *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "command_timeout = 300ms\n");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\nMAIL FROM:<s@t.test>\r\n");
	expect(&l, "250-");
	expect(&l, "250 ");
	expect(&l, "421 4.3.2 proxy.test Error: timeout exceeded");
	expect_closed(&l);
	lab_stop(&l);
	peer_done(&d);
	slog = session_log(&l);
	contains(slog, "outcome=client-timeout");
	free(slog);
	lab_rmdir(&l);
}

/* Garbage from the client is answered by the proxy and never reaches the destination; after too many
 * errors the session ends with 421 and the destination gets QUIT. */
static void test_client_garbage(void **state)
{
	fp_peer *d = peer(DEST_EHLO "expect QUIT\nsend 221 bye\n");
	char cmds[2048];
	const char *rx;
	size_t n = 0;
	int i;
	lab l;

	(void)state;
	for (i = 0; i < 25; i++)
		n += (size_t)snprintf(cmds + n, sizeof(cmds) - n, "XYZZY %d\r\n", i);
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\n");
	expect(&l, "250-");
	put(&l, "MAIL FROM:<a\x01b@t.test>\r\n");
	expect(&l, "50");
	put(&l, cmds);
	for (i = 0;; i++) { /* the engine's error limit, then 421 */
		char got[512];
		reply(&l, got, sizeof(got));
		if (strncmp(got, "421 4.7.0 ", 10) == 0)
			break;
		if (strncmp(got, "500 5.5.2 ", 10) != 0 || i > 25)
			fail_msg("got \"%s\" after %d errors", got, i);
	}
	assert_true(i >= 18);
	expect_closed(&l);
	lab_stop(&l);
	assert_int_equal(fp_wait(d, 10000), 0);
	rx = fp_received(d, 0, NULL);
	assert_null(strstr(rx, "XYZZY"));
	assert_null(strstr(rx, "MAIL"));
	fp_stop(&d);
	lab_rmdir(&l);
}

/* tls_policy: the destination's address requires TLS although tls = none; the destination has none. */
static void test_tls_policy_by_address(void **state)
{
	fp_peer *d = peer("send 220 dest.test ESMTP\nexpect EHLO\nsend 250-dest.test\\r\\n250 PIPELINING\n"
			  "expect QUIT\nsend 221 bye\n");
	char extra[256], path[128], *slog;
	FILE *f;
	lab l;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/gw-proxy-policy.%ld", (long)getpid());
	assert_non_null(f = fopen(path, "w"));
	fputs("127.0.0.0/8 encrypt\n10.0.0.0/8 none\n", f);
	fclose(f);
	snprintf(extra, sizeof(extra), "tls = none\ntls_policy = %s\n", path);
	lab_start(&l, fp_port(d), extra);
	expect(&l, "421 4.3.2 proxy.test cannot reach [127.0.0.1]:");
	expect_closed(&l);
	lab_stop(&l);
	fp_stop(&d);
	unlink(path);
	slog = session_log(&l);
	contains(slog, ", tls encrypt\n");
	free(slog);
	lab_rmdir(&l);
}

/* ---- pipelining towards the destination ---- */

/* The client's pipelined envelope reaches a PIPELINING destination in one write; each reply comes back in
 * order, the destination's own, as it came. */
static void test_pipeline_one_write(void **state)
{
	fp_peer *d =
	    peer(DEST_EHLO "batch " ENVELOPE_ESC "\nsend 250 2.1.0 sender ok\nsleep 50\n"
			   "send 250 2.1.5 a ok\nsend 550 5.1.1 b unknown\nsleep 50\nsend 250 2.1.5 c ok\n"
			   "send 354 go ahead\ndata\nsend 250 2.0.0 queued as P1\n"
			   "batch QUIT\\r\\n\nsend 221 bye\n");
	char *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\n");
	expect(&l, "250-");
	put(&l, ENVELOPE);
	expect(&l, "250 2.1.0 sender ok");
	expect(&l, "250 2.1.5 a ok");
	expect(&l, "550 5.1.1 b unknown");
	expect(&l, "250 2.1.5 c ok");
	expect(&l, "354 ");
	put(&l, "hello\r\n.\r\nQUIT\r\n");
	expect(&l, "250 2.0.0 queued as P1");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	slog = session_log(&l);
	/* every command logged as it left, every reply with its time */
	contains(slog, " -> MAIL FROM:<s@t.test>\n");
	contains(slog, " -> RCPT TO:<c@dest.test>\n");
	contains(slog, " -> DATA\n");
	contains(slog, " <- 250 2.1.0 sender ok [");
	contains(slog, " <- 550 5.1.1 b unknown [");
	contains(slog, " |< 354 go ahead [");
	contains(slog, " -> . (7 bytes)\n");
	contains(slog, "outcome=quit messages=1 refused=0 rcpts=2/3");
	free(slog);
	assert_int_equal(l.stats.messages, 1);
	assert_int_equal(l.stats.rcpts_accepted, 2);
	assert_int_equal(l.stats.rcpts_refused, 1);
	lab_rmdir(&l);
}

/*
 * Replies the destination gave together leave for the client together: the client's end is a SOCK_SEQPACKET
 * socket, so one read is one write of the session, and the first read holds all five replies. The held body
 * and the final dot reach the destination in one write (its "batch").
 */
static void test_pipeline_replies_one_write(void **state)
{
	fp_peer *d =
	    peer(DEST_EHLO "batch " ENVELOPE_ESC "\n"
			   "raw 250 2.1.0 sender ok\\r\\n250 2.1.5 a ok\\r\\n550 5.1.1 b unknown\\r\\n"
			   "250 2.1.5 c ok\\r\\n354 go ahead\\r\\n\n"
			   "batch hello\\r\\n..dot\\r\\n.\\r\\n\nsend 250 2.0.0 queued as P2\n"
			   "batch QUIT\\r\\n\nsend 221 bye\n");
	struct timeval tv = {10, 0};
	char got[4096];
	ssize_t n;
	lab l;

	(void)state;
	lab_socktype = SOCK_SEQPACKET;
	lab_start(&l, fp_port(d), "");
	lab_socktype = SOCK_STREAM;
	expect(&l, "220 ");
	put(&l, "EHLO t\r\n");
	expect(&l, "250-");
	assert_int_equal(l.inlen, 0);
	put(&l, ENVELOPE);
	setsockopt(l.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = read(l.fd, got, sizeof(got) - 1);
	assert_true(n > 0);
	got[n] = '\0';
	assert_string_equal(got, "250 2.1.0 sender ok\r\n250 2.1.5 a ok\r\n550 5.1.1 b unknown\r\n"
				 "250 2.1.5 c ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	put(&l, "hello\r\n..dot\r\n.\r\nQUIT\r\n");
	expect(&l, "250 2.0.0 queued as P2");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	assert_int_equal(l.stats.messages, 1);
	lab_rmdir(&l);
}

/*
 * A client that pauses in the middle of the body: the part it sent reaches the destination during the pause
 * (held a moment for the next part, not until the dot). The destination gives up on a line that takes
 * over 2.5 s; the client pauses 5 s.
 */
static void test_body_part_not_held(void **state)
{
	fp_opts o;
	fp_peer *d;
	char err[256];
	lab l;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.script =
	    DEST_EHLO "batch MAIL FROM:<s@t.test>\\r\\nRCPT TO:<a@dest.test>\\r\\nDATA\\r\\n\n"
		      "raw 250 ok\\r\\n250 ok\\r\\n354 go\\r\\n\nexpect Subject: part one\nsleep 5000\n"
		      "data\nsend 250 2.0.0 queued as H1\nexpect QUIT\nsend 221 bye\n";
	o.timeout_ms = 2500;
	if ((d = fp_start_opts(&o, err, sizeof(err))) == NULL)
		fail_msg("fake peer: %s", err);
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\n");
	expect(&l, "250-");
	put(&l, "MAIL FROM:<s@t.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "354 ");
	put(&l, "Subject: part one\r\n");
	sleep(5); /* the client's pause itself, not a wait for readiness */
	put(&l, "\r\nthe rest\r\n.\r\nQUIT\r\n");
	expect(&l, "250 2.0.0 queued as H1");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	lab_rmdir(&l);
}

/* Without PIPELINING at the destination: one command at a time, each after the previous reply. */
static void test_pipeline_not_offered(void **state)
{
	fp_peer *d = peer(DEST_EHLO_NOPIPE "batch MAIL FROM:<s@t.test>\\r\\n\nsend 250 ok\n"
					   "batch RCPT TO:<a@dest.test>\\r\\n\nsend 250 ok\n"
					   "batch RCPT TO:<b@dest.test>\\r\\n\nsend 550 no\n"
					   "batch RCPT TO:<c@dest.test>\\r\\n\nsend 250 ok\n"
					   "batch DATA\\r\\n\nsend 354 go\ndata\nsend 250 queued\n"
					   "expect QUIT\nsend 221 bye\n");
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\n" ENVELOPE);
	expect(&l, "250-");
	expect(&l, "250 ");
	expect(&l, "250 ");
	expect(&l, "550 ");
	expect(&l, "250 ");
	expect(&l, "354 ");
	put(&l, "x\r\n.\r\nQUIT\r\n");
	expect(&l, "250 ");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	lab_rmdir(&l);
}

/* The destination goes away mid-batch: the replies it gave pass, every command still unanswered gets a 4xx
 * in order (the last 421), never a 2xx, and the session ends. */
static void test_pipeline_drop_mid_batch(void **state)
{
	fp_peer *d =
	    peer(DEST_EHLO "batch " ENVELOPE_ESC "\nsend 250 2.1.0 ok\nsend 250 2.1.5 a ok\nclose\n");
	char *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\n");
	expect(&l, "250-");
	put(&l, ENVELOPE);
	expect(&l, "250 2.1.0 ok");
	expect(&l, "250 2.1.5 a ok");
	expect(&l, "451 4.4.2 [127.0.0.1]:");
	expect(&l, "421 4.4.2 [127.0.0.1]:");
	expect_closed(&l);
	lab_stop(&l);
	peer_done(&d);
	slog = session_log(&l);
	contains(slog, " |< ! RCPT: connection lost");
	contains(slog, "outcome=upstream-connection-lost");
	free(slog);
	lab_rmdir(&l);
}

/* Every recipient refused: the engine refuses DATA itself, so the 354 to the DATA sent ahead is not
 * followed: the destination connection is closed without a final dot. */
static void test_pipeline_data_not_wanted(void **state)
{
	fp_peer *d = peer(DEST_EHLO "batch MAIL FROM:<s@t.test>\\r\\nRCPT TO:<a@dest.test>\\r\\nDATA\\r\\n\n"
				    "send 250 ok\nsend 550 5.1.1 a unknown\nsend 354 go\n");
	const char *rx;
	char *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO t\r\n");
	expect(&l, "250-");
	put(&l, "MAIL FROM:<s@t.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
	expect(&l, "250 ");
	expect(&l, "550 5.1.1 a unknown");
	expect(&l, "554 5.5.1 Error: no valid recipients");
	put(&l, "QUIT\r\n");
	expect(&l, "221 ");
	lab_stop(&l);
	assert_int_equal(fp_wait(d, 10000), 0);
	rx = fp_received(d, 0, NULL);
	/* the envelope and nothing after it: no dot, no QUIT whose reply would be the 354's */
	assert_non_null(rx);
	assert_string_equal(strstr(rx, "MAIL FROM:"),
			    "MAIL FROM:<s@t.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
	peer_done(&d);
	slog = session_log(&l);
	contains(slog, " |> (close: DATA was not wanted after all");
	free(slog);
	lab_rmdir(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ehlo_follows_destination),
	    cmocka_unit_test(test_pipelined_mixed_verdicts),
	    cmocka_unit_test(test_dot_refused),
	    cmocka_unit_test(test_lost_after_dot),
	    cmocka_unit_test(test_destination_refused),
	    cmocka_unit_test(test_pool_greeting_reconnects),
	    cmocka_unit_test(test_pool_rcpt_deferred),
	    cmocka_unit_test(test_pool_mail_reconnects),
	    cmocka_unit_test(test_pool_first_rcpt_reconnects),
	    cmocka_unit_test(test_pool_mail_no_address_left),
	    cmocka_unit_test(test_pool_mx_mail_deferred),
	    cmocka_unit_test(test_pool_last_address_passes),
	    cmocka_unit_test(test_greeting_refusal_answers_mail),
	    cmocka_unit_test(test_destination_421),
	    cmocka_unit_test(test_data_refused),
	    cmocka_unit_test(test_client_lost_in_body),
	    cmocka_unit_test(test_client_lost_between_commands),
	    cmocka_unit_test(test_rset_relayed),
	    cmocka_unit_test(test_mx_mode_held_mail),
	    cmocka_unit_test(test_mx_mode_mail_refused),
	    cmocka_unit_test(test_starttls_at_proxy),
	    cmocka_unit_test(test_tls_required_not_offered),
	    cmocka_unit_test(test_too_big_aborts_destination),
	    cmocka_unit_test(test_client_idle_timeout),
	    cmocka_unit_test(test_client_garbage),
	    cmocka_unit_test(test_tls_policy_by_address),
	    cmocka_unit_test(test_pipeline_one_write),
	    cmocka_unit_test(test_pipeline_replies_one_write),
	    cmocka_unit_test(test_body_part_not_held),
	    cmocka_unit_test(test_pipeline_not_offered),
	    cmocka_unit_test(test_pipeline_drop_mid_batch),
	    cmocka_unit_test(test_pipeline_data_not_wanted),
	};

	gw_log_open("test_proxy_relay", GW_LOG_STDERR, GW_LOG_WARNING);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
