/*
 * test_proxy_tls_in.c - STARTTLS on gw-proxy's tenant leg (proxy/tls_in.c):
 * the tenant MTA played by the test over a socketpair (OpenSSL as the TLS
 * client), gwp_session_run() on the other end, a scripted destination (the
 * fake peer). Checks the hand-over (220, handshake, the session state reset
 * so the client greets again, commands pipelined after STARTTLS dropped), a
 * client that fails the handshake (nothing relayed), encrypt refusing a plain
 * MAIL, the log lines, and the configuration errors for bad files.
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
#include <openssl/ssl.h>

#include "fakepeer.h"
#include "proxy_conf.h"
#include "relay.h"
#include "session.h"

static char dir[64]; /* certificate and key made once for every case */

static int setup(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/gw-proxy-tls.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
		 "-subj /CN=proxy.test -keyout %s/key.pem -out %s/cert.pem 2>/dev/null && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
		 "-subj /CN=other.test -keyout %s/other.pem -out /dev/null 2>/dev/null",
		 dir, dir, dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

typedef struct lab {
	gwp_config *conf;
	gwp_stats stats;
	gwp_env env;
	gw_nexthop hop;
	int fd, sfd;
	pthread_t t;
	SSL_CTX *cctx;
	SSL *ssl; /* the client's TLS once started */
	char in[16384];
	size_t inlen;
} lab;

static void *serve(void *arg)
{
	lab *l = arg;

	gwp_session_run(l->sfd, "[127.0.0.9]:4242", &l->env, &l->hop, NULL);
	return NULL;
}

/* A configuration file with lines; NULL with err when it does not load. */
static gwp_config *conf_with(const char *lines, char *err, size_t errlen)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/gw-proxy.conf", dir);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f,
		"listen = [127.0.0.1]:10026\nlog = stderr\nhostname = proxy.test\nhelo_name = gw.test\n"
		"session_log = %s/session.log\nconnect_timeout = 2s\nreply_timeout = 3s\n"
		"%stls = none\n%s",
		dir, strstr(lines, "command_timeout =") ? "" : "command_timeout = 5s\n", lines);
	fclose(f);
	return gwp_config_load(path, err, errlen);
}

static void lab_start(lab *l, unsigned port, const char *extra)
{
	char err[512], spec[64], lines[1024], logpath[128];
	const char *e;
	int sv[2];

	memset(l, 0, sizeof(*l));
	snprintf(logpath, sizeof(logpath), "%s/session.log", dir);
	unlink(logpath);
	snprintf(lines, sizeof(lines), "tls_cert_file = %s/cert.pem\ntls_key_file = %s/key.pem\n%s", dir, dir,
		 extra);
	if ((l->conf = conf_with(lines, err, sizeof(err))) == NULL)
		fail_msg("config: %s", err);
	assert_non_null(l->env.slog = gwp_slog_open(l->conf->opt.session_log, err, sizeof(err)));
	l->env.conf = l->conf;
	l->env.stats = &l->stats;
	snprintf(spec, sizeof(spec), "[127.0.0.1]:%u", port);
	assert_int_equal(gw_nexthop_parse(spec, strlen(spec), &l->hop, &e), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	l->fd = sv[0];
	l->sfd = sv[1];
	assert_int_equal(pthread_create(&l->t, NULL, serve, l), 0);
}

static void lab_stop(lab *l)
{
	if (l->ssl != NULL)
		SSL_free(l->ssl);
	SSL_CTX_free(l->cctx);
	if (l->fd >= 0)
		close(l->fd);
	pthread_join(l->t, NULL);
	gwp_slog_close(&l->env.slog);
	gwp_config_free(&l->conf);
}

static void put(lab *l, const char *s)
{
	size_t len = strlen(s);

	if (l->ssl != NULL)
		assert_int_equal(SSL_write(l->ssl, s, (int)len), (int)len);
	else
		assert_int_equal(write(l->fd, s, len), (ssize_t)len);
}

/* One whole reply (its lines joined by '|') into out; fails the test after 10 s or at a close. */
static void reply(lab *l, char *out, size_t outlen)
{
	struct timeval tv = {10, 0};
	size_t n = 0;
	char *nl;

	setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	out[0] = '\0';
	for (;;) {
		ssize_t got;
		while ((nl = memchr(l->in, '\n', l->inlen)) != NULL) {
			size_t len = (size_t)(nl - l->in) + 1, keep = len - 1;
			int more;
			if (keep > 0 && l->in[keep - 1] == '\r')
				keep--;
			more = keep > 3 && l->in[3] == '-';
			n += (size_t)snprintf(out + n, n < outlen ? outlen - n : 0, "%s%.*s", n ? "|" : "",
					      (int)keep, l->in);
			memmove(l->in, l->in + len, l->inlen - len);
			l->inlen -= len;
			if (!more)
				return;
		}
		got = l->ssl != NULL ? SSL_read(l->ssl, l->in + l->inlen, (int)(sizeof(l->in) - l->inlen))
				     : read(l->fd, l->in + l->inlen, sizeof(l->in) - l->inlen);
		if (got <= 0)
			fail_msg("session: no reply (%s); so far \"%s\"", got == 0 ? "closed" : "error", out);
		l->inlen += (size_t)got;
	}
}

static void expect(lab *l, const char *want)
{
	char got[4096];

	reply(l, got, sizeof(got));
	if (strncmp(got, want, strlen(want)) != 0)
		fail_msg("got \"%s\", want \"%s...\"", got, want);
}

static void contains(const char *hay, const char *needle)
{
	if (hay == NULL || strstr(hay, needle) == NULL)
		fail_msg("\"%s\" not found in:\n%s", needle, hay ? hay : "(null)");
}

/* The client's side of the handshake on l->fd. 1 when it completed. */
static int client_tls(lab *l)
{
	assert_non_null(l->cctx = SSL_CTX_new(TLS_client_method()));
	SSL_CTX_set_verify(l->cctx, SSL_VERIFY_NONE,
			   NULL); /* opportunistic, as a tenant MTA under "encrypt" */
	assert_non_null(l->ssl = SSL_new(l->cctx));
	SSL_set_fd(l->ssl, l->fd);
	return SSL_connect(l->ssl) == 1;
}

/* The session log, read after the session ended; malloc'd. */
static char *session_log(void)
{
	char path[128], *b = calloc(1, 65536);
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/session.log", dir);
	assert_non_null(b);
	assert_non_null(f = fopen(path, "r"));
	n = fread(b, 1, 65535, f);
	b[n] = '\0';
	fclose(f);
	return b;
}

static fp_peer *peer(const char *script)
{
	char err[256];
	fp_peer *p = fp_start(script, err, sizeof(err));

	if (p == NULL)
		fail_msg("fake peer: %s", err);
	return p;
}

static void peer_done(fp_peer **p)
{
	if (fp_wait(*p, 10000) != 0)
		fail_msg("destination script: %s", fp_error(*p) ? fp_error(*p) : "did not finish");
	fp_stop(p);
}

#define DEST_EHLO                                                                                            \
	"send 220 dest.test ESMTP\nexpect EHLO gw.test\nsend 250-dest.test\\r\\n250-PIPELINING\\r\\n"        \
	"250 8BITMIME\n"

/*
 * The hand-over: STARTTLS offered, a MAIL pipelined after STARTTLS in plain
 * text is dropped (never relayed), the client greets again under TLS (no
 * STARTTLS offered any more) and its mail goes through; the log names the
 * client leg's protocol and cipher.
 */
static void test_starttls_handover(void **state)
{
	fp_peer *d =
	    peer(DEST_EHLO "expect MAIL FROM:<s@t.test>\nsend 250 2.1.0 ok\n"
			   "expect RCPT TO:<a@dest.test>\nsend 250 2.1.5 ok\nexpect DATA\nsend 354 go\n"
			   "data\nsend 250 2.0.0 queued\nexpect QUIT\nsend 221 bye\n");
	char got[4096], *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 proxy.test");
	put(&l, "EHLO tenant.test\r\n");
	reply(&l, got, sizeof(got));
	contains(got, "STARTTLS");
	put(&l, "STARTTLS\r\nMAIL FROM:<injected@t.test>\r\n");
	expect(&l, "220 2.0.0 Ready to start TLS");
	assert_int_equal(l.inlen, 0); /* nothing after the 220 in plain text */
	assert_true(client_tls(&l));
	put(&l, "MAIL FROM:<s@t.test>\r\n"); /* RFC 3207: the session starts over; greet first */
	expect(&l, "503 5.5.1");
	put(&l, "EHLO tenant.test\r\n");
	reply(&l, got, sizeof(got));
	assert_null(strstr(got, "STARTTLS"));
	contains(got, "PIPELINING");
	put(&l, "MAIL FROM:<s@t.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
	expect(&l, "250 2.1.0");
	expect(&l, "250 2.1.5");
	expect(&l, "354 ");
	put(&l, "over TLS\r\n.\r\nQUIT\r\n");
	expect(&l, "250 2.0.0 queued");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	slog = session_log();
	contains(slog, ">| STARTTLS");
	contains(slog, "<- 220 2.0.0 Ready to start TLS");
	contains(slog, ">| TLS with the client: TLSv1.");
	contains(slog, "outcome=quit messages=1");
	contains(slog, "tls_out=\"none\" tls_in=\"TLSv1.");
	assert_null(strstr(slog, "injected"));
	free(slog);
}

/* A client that answers the 220 with plain text: the handshake fails, logged; nothing relayed. */
static void test_failed_handshake(void **state)
{
	fp_peer *d = peer(DEST_EHLO "expect QUIT\nsend 221 bye\n");
	const char *got;
	char *slog, b[256];
	ssize_t n;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "");
	expect(&l, "220 ");
	put(&l, "EHLO tenant.test\r\nSTARTTLS\r\n");
	expect(&l, "250-proxy.test");
	expect(&l, "220 2.0.0");
	put(&l, "MAIL FROM:<s@t.test>\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
	{ /* the session closes the connection: whatever came back was no SMTP reply */
		struct timeval tv = {10, 0};
		setsockopt(l.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		while ((n = read(l.fd, b, sizeof(b))) > 0)
			assert_true(n < 3 || memcmp(b, "250", 3) != 0);
		/* closed; with our unread commands in its buffer the close may read as a reset */
		assert_true(n == 0 || errno == ECONNRESET);
	}
	lab_stop(&l);
	peer_done(&d);
	got = NULL;
	slog = session_log();
	contains(slog, ">| ! TLS with the client failed: ");
	contains(slog, "outcome=client-tls-failed messages=0");
	contains(slog, "tls_in=\"none\"");
	assert_null(strstr(slog, "-> MAIL"));
	free(slog);
	(void)got;
}

/* tls_client_security = encrypt: MAIL in plain text gets 530 5.7.0 and never reaches the destination. */
static void test_encrypt_refuses_plain_mail(void **state)
{
	fp_peer *d =
	    peer(DEST_EHLO "expect MAIL FROM:<s@t.test>\nsend 250 2.1.0 ok\nexpect QUIT\nsend 221 bye\n");
	char *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "tls_client_security = encrypt\n");
	expect(&l, "220 ");
	put(&l, "EHLO tenant.test\r\nMAIL FROM:<plain@t.test>\r\nSTARTTLS\r\n");
	expect(&l, "250-proxy.test");
	expect(&l, "530 5.7.0 Must issue a STARTTLS command first");
	expect(&l, "220 2.0.0");
	assert_true(client_tls(&l));
	put(&l, "EHLO tenant.test\r\nMAIL FROM:<s@t.test>\r\nQUIT\r\n");
	expect(&l, "250-proxy.test");
	expect(&l, "250 2.1.0 ok");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
	slog = session_log();
	contains(slog, ">| MAIL FROM:<plain@t.test>");
	contains(slog, "<- 530 5.7.0");
	assert_null(strstr(slog, "-> MAIL FROM:<plain@t.test>"));
	free(slog);
}

/* tls_client_security = none: a certificate is configured but STARTTLS is neither offered nor accepted. */
static void test_none_not_offered(void **state)
{
	fp_peer *d = peer(DEST_EHLO "expect QUIT\nsend 221 bye\n");
	char got[4096];
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "tls_client_security = none\n");
	expect(&l, "220 ");
	put(&l, "EHLO tenant.test\r\n");
	reply(&l, got, sizeof(got));
	assert_null(strstr(got, "STARTTLS"));
	put(&l, "STARTTLS\r\nQUIT\r\n");
	expect(&l, "502 5.5.1");
	expect(&l, "221 ");
	lab_stop(&l);
	peer_done(&d);
}

/* An idle client under TLS: the command timeout still holds, and its 421 goes over TLS. */
static void test_idle_under_tls(void **state)
{
	fp_peer *d = peer(DEST_EHLO "expect QUIT\nsend 221 bye\n");
	char *slog;
	lab l;

	(void)state;
	lab_start(&l, fp_port(d), "command_timeout = 1s\n");
	expect(&l, "220 ");
	put(&l, "EHLO tenant.test\r\nSTARTTLS\r\n");
	expect(&l, "250-proxy.test");
	expect(&l, "220 2.0.0");
	assert_true(client_tls(&l));
	put(&l, "EHLO tenant.test\r\n");
	expect(&l, "250-proxy.test");
	expect(&l, "421 4.3.2 proxy.test Error: timeout exceeded");
	lab_stop(&l);
	peer_done(&d);
	slog = session_log();
	contains(slog, "outcome=client-timeout");
	contains(slog, "tls_in=\"TLSv1.");
	free(slog);
}

/* Bad files and combinations: configuration errors naming file:line of the key. */
static void test_conf_errors(void **state)
{
	static const struct {
		const char *cert, *key, *extra; /* files in dir (NULL: key not set), more lines */
		const char *want;               /* in the error, after "gw-proxy.conf" */
	} cases[] = {
	    {"missing.pem", NULL, "", ":10: tls_cert_file: "},
	    {"key.pem", NULL, "", ":10: tls_cert_file: cannot load a certificate"},
	    {"cert.pem", NULL, "", ":10: tls_cert_file: cannot load a private key"},
	    {"cert.pem", "missing.pem", "", ":11: tls_key_file: "},
	    {"cert.pem", "other.pem", "", "key values mismatch"},
	    {"cert.pem", "cert.pem", "", ":11: tls_key_file: cannot load a private key"},
	    {NULL, "key.pem", "", ":10: tls_key_file: needs tls_cert_file"},
	    {NULL, NULL, "tls_client_security = encrypt\n",
	     ":10: tls_client_security: encrypt needs tls_cert_file"},
	    {NULL, NULL, "tls_client_security = verify\n", ":10: "},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char lines[512], err[1024];
		size_t n = 0;
		gwp_config *c;
		lines[0] = '\0';
		if (cases[i].cert != NULL)
			n += (size_t)snprintf(lines + n, sizeof(lines) - n, "tls_cert_file = %s/%s\n", dir,
					      cases[i].cert);
		if (cases[i].key != NULL)
			n += (size_t)snprintf(lines + n, sizeof(lines) - n, "tls_key_file = %s/%s\n", dir,
					      cases[i].key);
		snprintf(lines + n, sizeof(lines) - n, "%s", cases[i].extra);
		c = conf_with(lines, err, sizeof(err));
		if (c != NULL) {
			gwp_config_free(&c);
			fail_msg("case %zu: loaded, want an error with \"%s\"", i, cases[i].want);
		}
		if (strstr(err, "gw-proxy.conf") == NULL || strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, cases[i].want);
	}
	{ /* good files load; the key may sit in the certificate file */
		char lines[512], err[1024], cmd[300];
		gwp_config *c;
		snprintf(lines, sizeof(lines), "tls_cert_file = %s/cert.pem\ntls_key_file = %s/key.pem\n",
			 dir, dir);
		if ((c = conf_with(lines, err, sizeof(err))) == NULL)
			fail_msg("good files: %s", err);
		assert_non_null(c->tls_in);
		gwp_config_free(&c);
		snprintf(cmd, sizeof(cmd), "cat %s/key.pem %s/cert.pem > %s/both.pem", dir, dir, dir);
		assert_int_equal(system(cmd), 0);
		snprintf(lines, sizeof(lines), "tls_cert_file = %s/both.pem\n", dir);
		if ((c = conf_with(lines, err, sizeof(err))) == NULL)
			fail_msg("key in the certificate file: %s", err);
		assert_non_null(c->tls_in);
		gwp_config_free(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_starttls_handover),
	    cmocka_unit_test(test_failed_handshake),
	    cmocka_unit_test(test_encrypt_refuses_plain_mail),
	    cmocka_unit_test(test_none_not_offered),
	    cmocka_unit_test(test_idle_under_tls),
	    cmocka_unit_test(test_conf_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
