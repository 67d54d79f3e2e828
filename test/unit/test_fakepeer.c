/*
 * test_fakepeer.c - self-tests of the fake SMTP/LMTP peer, with plain sockets
 * (and an OpenSSL client for STARTTLS) on the client side, no libgw client.
 * Does not cover: hostile clients, or the 64 MiB record cap. Every read here is
 * bounded by poll, so a broken peer fails a test instead of hanging it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "fakepeer.h"

#define WAIT_MS 5000

static fp_peer *start(const char *script)
{
	char err[256];
	fp_peer *p = fp_start(script, err, sizeof err);

	if (p == NULL)
		fail_msg("fp_start: %s", err);
	return p;
}

static int connect_tcp(int family, unsigned port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd = socket(family, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&ss, 0, sizeof ss);
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons((unsigned short)port);
		sl = sizeof *sin;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		sin6->sin6_port = htons((unsigned short)port);
		sl = sizeof *sin6;
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int connect_to(fp_peer *p)
{
	int fd = connect_tcp(AF_INET, fp_port(p));

	assert_true(fd >= 0);
	return fd;
}

static void send_str(int fd, const char *s)
{
	size_t n = strlen(s);

	assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Read up to and including LF, or to EOF; bounded by WAIT_MS. Returns the length. */
static size_t read_line(int fd, char *buf, size_t len)
{
	size_t o = 0;

	while (o + 1 < len) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		ssize_t n;
		if (poll(&pf, 1, WAIT_MS) != 1)
			fail_msg("no reply in %d ms (got '%.*s')", WAIT_MS, (int)o, buf);
		n = recv(fd, buf + o, 1, 0);
		if (n <= 0)
			break;
		if (buf[o++] == '\n')
			break;
	}
	buf[o] = '\0';
	return o;
}

static void want_line(int fd, const char *want)
{
	char got[512];

	read_line(fd, got, sizeof got);
	if (strcmp(got, want) != 0)
		fail_msg("got '%s', want '%s'", got, want);
}

/* Read until EOF; returns bytes read, or -1 with errno on an error such as ECONNRESET. */
static ssize_t read_to_eof(int fd, char *buf, size_t len)
{
	size_t o = 0;

	for (;;) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		ssize_t n;
		if (poll(&pf, 1, WAIT_MS) != 1)
			fail_msg("no EOF in %d ms", WAIT_MS);
		n = recv(fd, buf + o, len - o, 0);
		if (n < 0)
			return -1;
		if (n == 0)
			return (ssize_t)o;
		o += (size_t)n;
		if (o == len)
			return (ssize_t)o;
	}
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void want_received(fp_peer *p, unsigned i, const char *want, size_t wantlen)
{
	size_t len = 0;
	const char *got = fp_received(p, i, &len);

	assert_non_null(got);
	if (len != wantlen || memcmp(got, want, len) != 0)
		fail_msg("connection %u received '%s' (%zu bytes), want '%s' (%zu bytes)", i, got, len, want,
			 wantlen);
	assert_int_equal(got[len], '\0');
}

static void t_greeting(void **state)
{
	fp_peer *p = start("send 220 fake ESMTP\n");
	int fd = connect_to(p);

	want_line(fd, "220 fake ESMTP\r\n");
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	assert_null(fp_error(p));
	close(fd);
	assert_int_equal(fp_connections(p), 1);
	fp_stop(&p);
	assert_null(p);
}

static void t_expect_match(void **state)
{
	/* prefixes compare case-insensitively; bare "expect" takes any line; LF alone ends a line */
	fp_peer *p =
	    start("send 220 hi\nexpect ehlo\nsend 250 ok\nexpect\nsend 250 any\nexpect Quit\nsend 221 bye\n");
	int fd = connect_to(p);

	want_line(fd, "220 hi\r\n");
	send_str(fd, "EHLO client.example\r\n");
	want_line(fd, "250 ok\r\n");
	send_str(fd, "whatever\n");
	want_line(fd, "250 any\r\n");
	send_str(fd, "QUIT\r\n");
	want_line(fd, "221 bye\r\n");
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	close(fd);
	fp_stop(&p);
}

static void t_expect_mismatch(void **state)
{
	fp_peer *p = start("send 220 hi\nexpect RCPT\nsend 250 never\n");
	int fd = connect_to(p);
	char buf[64];

	want_line(fd, "220 hi\r\n");
	send_str(fd, "MAIL FROM:<a@b>\r\n");
	/* the peer closes the connection at the failure and sends nothing more */
	assert_int_equal(read_to_eof(fd, buf, sizeof buf), 0);
	assert_int_equal(fp_wait(p, WAIT_MS), -1);
	assert_non_null(fp_error(p));
	assert_string_equal(fp_error(p), "connection 0 line 2: expected 'RCPT', got 'MAIL FROM:<a@b>'");
	close(fd);
	fp_stop(&p);
}

static void t_expect_sanitised(void **state)
{
	char line[300], want[300];
	fp_peer *p = start("expect RCPT\n");
	int fd = connect_to(p);

	/* control bytes shown as \xHH, long text cut */
	memset(line, 'A', sizeof line);
	memcpy(line, "X\x01\x7f", 3);
	memcpy(line + sizeof line - 2, "\r\n", 2);
	assert_int_equal(send(fd, line, sizeof line, MSG_NOSIGNAL), (ssize_t)sizeof line);
	assert_int_equal(fp_wait(p, WAIT_MS), -1);
	snprintf(want, sizeof want, "connection 0 line 1: expected 'RCPT', got 'X\\x01\\x7f%.*s...'", 71,
		 line + 3);
	assert_string_equal(fp_error(p), want);
	close(fd);
	fp_stop(&p);
}

static void t_expect_eof(void **state)
{
	fp_peer *p = start("send 220 hi\nexpect EHLO\n");
	int fd = connect_to(p);

	want_line(fd, "220 hi\r\n");
	close(fd);
	assert_int_equal(fp_wait(p, WAIT_MS), -1);
	assert_string_equal(fp_error(p), "connection 0 line 2: expected 'EHLO', got end of connection");
	fp_stop(&p);
}

static void t_expect_timeout(void **state)
{
	fp_opts o = {.script = "expect EHLO\n", .timeout_ms = 200};
	char err[256];
	fp_peer *p = fp_start_opts(&o, err, sizeof err);
	int fd;
	long t0;

	assert_non_null(p);
	fd = connect_to(p);
	t0 = now_ms();
	assert_int_equal(fp_wait(p, WAIT_MS), -1);
	assert_true(now_ms() - t0 < 2000);
	assert_string_equal(fp_error(p), "connection 0 line 1: expected 'EHLO', got nothing in 200 ms");
	close(fd);
	fp_stop(&p);
}

static void t_escapes(void **state)
{
	static const char want[] = "a\tb\\c\r\nd\0e\xff\r\n"
				   "raw\nno-crlf";
	fp_peer *p = start("send a\\tb\\\\c\\r\\nd\\x00e\\xFF\nraw raw\\nno-crlf\nclose\n");
	int fd = connect_to(p);
	char buf[64];

	assert_int_equal(read_to_eof(fd, buf, sizeof buf), (ssize_t)(sizeof want - 1));
	assert_memory_equal(buf, want, sizeof want - 1);
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	close(fd);
	fp_stop(&p);
}

static void t_bad_scripts(void **state)
{
	static const struct {
		const char *script, *err;
	} cases[] = {
	    {"send 220 hi\n\n# comment\nhelo x\n", "script line 4: unknown command 'helo'"},
	    {"send bad \\q escape\n", "script line 1: bad escape"},
	    {"raw \\x4\n", "script line 1: bad escape"},
	    {"send x\\\n", "script line 1: bad escape"},
	    {"sleep\n", "script line 1: sleep needs a number"},
	    {"sleep 12ms\n", "script line 1: sleep needs a number"},
	    {"sendlong -1\n", "script line 1: sendlong needs a number"},
	    {"send a\n---\nclose now\n", "script line 3: close takes no argument"},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char err[256] = "";
		fp_peer *p = fp_start(cases[i].script, err, sizeof err);
		if (p != NULL)
			fail_msg("case %zu: started, want '%s'", i, cases[i].err);
		if (strcmp(err, cases[i].err) != 0)
			fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].err);
	}
}

static void t_bad_listen(void **state)
{
	fp_opts o = {.script = "send hi\n", .listen = "0.0.0.0"};
	char err[256];

	assert_null(fp_start_opts(&o, err, sizeof err));
	assert_string_equal(err, "listen must be 127.0.0.1, ::1 or unix:/path");
	o.listen = "127.0.0.1";
	o.tls_name = "a,DNS:evil";
	assert_null(fp_start_opts(&o, err, sizeof err));
	assert_string_equal(err, "bad tls_name");
}

static void t_data(void **state)
{
	/* a dot-stuffed line, a ".x" line and a lone "." without CR do not end the data early;
	 * the body and the command after it arrive in one write (pipelining) */
	static const char body[] = "DATA\r\nSubject: t\r\n\r\n..stuffed\r\n.x\r\nline\n.\r\nQUIT\r\n";
	fp_peer *p = start("send 220 hi\nexpect DATA\nsend 354 go\ndata\nsend 250 queued\nexpect QUIT\n"
			   "send 221 bye\n");
	int fd = connect_to(p);

	want_line(fd, "220 hi\r\n");
	send_str(fd, body);
	want_line(fd, "354 go\r\n");
	want_line(fd, "250 queued\r\n");
	want_line(fd, "221 bye\r\n");
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	close(fd);
	want_received(p, 0, body, sizeof body - 1);
	fp_stop(&p);
}

static void t_data_lf_dot(void **state)
{
	static const char body[] = "a\n.\n";
	fp_peer *p = start("data\nsend 250 ok\n");
	int fd = connect_to(p);

	send_str(fd, body);
	want_line(fd, "250 ok\r\n");
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	close(fd);
	fp_stop(&p);
}

static void t_data_eof(void **state)
{
	fp_peer *p = start("send 354 go\ndata\n");
	int fd = connect_to(p);

	want_line(fd, "354 go\r\n");
	send_str(fd, "body without end\r\n");
	close(fd);
	assert_int_equal(fp_wait(p, WAIT_MS), -1);
	assert_string_equal(
	    fp_error(p), "connection 0 line 2: expected message data ending with '.', got end of connection");
	fp_stop(&p);
}

static void t_sendlong(void **state)
{
	enum { N = 100000 };
	fp_peer *p = start("sendlong 100000\nclose\n");
	int fd = connect_to(p);
	char *buf = malloc(N + 10);
	size_t i;

	assert_non_null(buf);
	assert_int_equal(read_to_eof(fd, buf, N + 10), N + 2);
	for (i = 0; i < N; i++)
		if (buf[i] != 'x')
			fail_msg("byte %zu is %d", i, buf[i]);
	assert_memory_equal(buf + N, "\r\n", 2);
	free(buf);
	close(fd);
	fp_stop(&p);
}

static void t_sleep(void **state)
{
	fp_peer *p = start("send 220 a\nsleep 300\nsend 220 b\n");
	int fd = connect_to(p);
	long t0;

	want_line(fd, "220 a\r\n");
	t0 = now_ms();
	want_line(fd, "220 b\r\n");
	assert_true(now_ms() - t0 >= 250);
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	close(fd);
	fp_stop(&p);
}

/* serve: replies MS after their commands, pipelined ones together; 550 for "unknown"; body; QUIT closes. */
static void t_serve(void **state)
{
	fp_peer *p = start("send 220 a\nserve 300\n");
	int fd = connect_to(p);
	char buf[256];
	long t0, t1;

	(void)state;
	want_line(fd, "220 a\r\n");
	t0 = now_ms();
	send_str(fd, "MAIL FROM:<>\r\nRCPT TO:<unknown-1@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n");
	want_line(fd, "250 2.1.0 Ok\r\n");
	t1 = now_ms();
	/* One round trip for the pipelined commands; their replies came in the same write. */
	assert_true(t1 - t0 >= 250);
	assert_true(t1 - t0 < 2000);
	want_line(fd, "550 5.1.1 <unknown>: Recipient address rejected: User unknown\r\n");
	want_line(fd, "250 2.1.5 Ok\r\n");
	want_line(fd, "354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_true(now_ms() - t1 < 150);
	send_str(fd, "Subject: x\r\n\r\nRSET in a body\r\n.\r\nNOOP\r\nQUIT\r\n");
	want_line(fd, "250 2.0.0 Ok: queued\r\n");
	want_line(fd, "250 2.0.0 Ok\r\n");
	want_line(fd, "221 2.0.0 Bye\r\n");
	assert_int_equal(read_to_eof(fd, buf, sizeof buf), 0);
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	close(fd);
	fp_stop(&p);
}

static void t_close(void **state)
{
	fp_peer *p = start("send 220 hi\nclose\nsend 250 skipped\n");
	int fd = connect_to(p);
	char buf[64];

	assert_int_equal(read_to_eof(fd, buf, sizeof buf), 8);
	assert_memory_equal(buf, "220 hi\r\n", 8);
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	close(fd);
	fp_stop(&p);
}

static void t_reset(void **state)
{
	fp_peer *p = start("expect QUIT\nreset\n");
	int fd = connect_to(p);
	char buf[64];

	send_str(fd, "QUIT\r\n");
	assert_int_equal(read_to_eof(fd, buf, sizeof buf), -1);
	assert_int_equal(errno, ECONNRESET);
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	close(fd);
	fp_stop(&p);
}

static void t_multi_connection(void **state)
{
	fp_peer *p = start("send 220 first\nexpect QUIT\nsend 221 a\n---\nsend 220 second\nexpect QUIT\n"
			   "send 221 b\n");
	int fd1 = connect_to(p), fd2;

	want_line(fd1, "220 first\r\n");
	/* both connected at once: the first waits in expect while the second runs */
	fd2 = connect_to(p);
	want_line(fd2, "220 second\r\n");
	send_str(fd2, "QUIT 2\r\n");
	want_line(fd2, "221 b\r\n");
	assert_int_equal(fp_wait(p, 200), -1); /* the first is not done yet */
	assert_null(fp_error(p));
	send_str(fd1, "QUIT 1\r\n");
	want_line(fd1, "221 a\r\n");
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	close(fd1);
	close(fd2);
	assert_int_equal(fp_connections(p), 2);
	want_received(p, 0, "QUIT 1\r\n", 8);
	want_received(p, 1, "QUIT 2\r\n", 8);
	assert_null(fp_received(p, 2, NULL));
	fp_stop(&p);
}

static void t_beyond_last_script(void **state)
{
	fp_peer *p = start("send 220 only\n");
	int fd1 = connect_to(p), fd2;
	char buf[64];

	want_line(fd1, "220 only\r\n");
	fd2 = connect_to(p);
	assert_int_equal(read_to_eof(fd2, buf, sizeof buf), 0); /* no greeting, closed */
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	assert_int_equal(fp_connections(p), 2);
	want_received(p, 1, "", 0);
	close(fd1);
	close(fd2);
	fp_stop(&p);
}

static void t_record_exact(void **state)
{
	/* NUL, bare LF, bare CR, 8-bit bytes, and what arrives after the script ended */
	static const char sent[] = "EHLO \0x\r\nbare\rcr\nhigh\xe9\r\nafter the script\r\n";
	fp_peer *p = start("expect EHLO\nexpect bare\n");
	int fd = connect_to(p);
	const char *live;
	size_t len;

	assert_int_equal(send(fd, sent, sizeof sent - 1, MSG_NOSIGNAL), (ssize_t)(sizeof sent - 1));
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	/* while the connection is open the record is a stable copy */
	live = fp_received(p, 0, &len);
	assert_non_null(live);
	close(fd);
	/* the peer reads on until the client closes: wait for the final record */
	for (int i = 0; i < 100; i++) {
		const char *r = fp_received(p, 0, &len);
		if (len == sizeof sent - 1 && r != live)
			break;
		usleep(20000);
	}
	want_received(p, 0, sent, sizeof sent - 1);
	fp_stop(&p);
}

static void t_fp_wait_timeout(void **state)
{
	fp_peer *p = start("send 220 hi\n---\nsend 220 two\n");
	int fd = connect_to(p);
	long t0 = now_ms();

	want_line(fd, "220 hi\r\n");
	assert_int_equal(fp_wait(p, 300), -1); /* the second connection never came */
	assert_true(now_ms() - t0 >= 250);
	assert_null(fp_error(p));
	close(fd);
	fp_stop(&p);
}

static void t_stop_while_busy(void **state)
{
	fp_peer *p = start("send 220 hi\nexpect EHLO\n---\nsleep 60000\n");
	int fd1 = connect_to(p), fd2 = connect_to(p);
	long t0;

	want_line(fd1, "220 hi\r\n");
	t0 = now_ms();
	fp_stop(&p);
	assert_true(now_ms() - t0 < 2000);
	close(fd1);
	close(fd2);
}

/* ---- STARTTLS ---- */

static SSL_CTX *client_ctx(const char *cafile)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_load_verify_locations(ctx, cafile, NULL), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

static int ssl_line(SSL *ssl, char *buf, size_t len)
{
	size_t o = 0;

	while (o + 1 < len) {
		if (SSL_read(ssl, buf + o, 1) != 1)
			break;
		if (buf[o++] == '\n')
			break;
	}
	buf[o] = '\0';
	return (int)o;
}

static void t_starttls(void **state)
{
	fp_peer *p =
	    start("send 220 hi\nexpect EHLO\nsend 250 STARTTLS\nexpect STARTTLS\nsend 220 go\nstarttls\n"
		  "expect EHLO\nsend 250 secure\ndata\nsend 250 ok\nexpect QUIT\nsend 221 bye\n");
	SSL_CTX *ctx = client_ctx(fp_cert_file(p));
	int fd = connect_to(p);
	struct timeval tv = {.tv_sec = 5};
	char buf[128];
	SSL *ssl;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	want_line(fd, "220 hi\r\n");
	send_str(fd, "EHLO c\r\n");
	want_line(fd, "250 STARTTLS\r\n");
	send_str(fd, "STARTTLS\r\n");
	want_line(fd, "220 go\r\n");
	ssl = SSL_new(ctx);
	assert_non_null(ssl);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	assert_int_equal(SSL_set1_host(ssl, "localhost"), 1);
	if (SSL_connect(ssl) != 1)
		fail_msg("TLS handshake failed: verify result %ld", SSL_get_verify_result(ssl));
	assert_int_equal(SSL_get_verify_result(ssl), X509_V_OK);
	assert_int_equal(SSL_write(ssl, "EHLO c\r\n", 8), 8);
	ssl_line(ssl, buf, sizeof buf);
	assert_string_equal(buf, "250 secure\r\n");
	assert_int_equal(SSL_write(ssl, "body\r\n.\r\nQUIT\r\n", 15), 15);
	ssl_line(ssl, buf, sizeof buf);
	assert_string_equal(buf, "250 ok\r\n");
	ssl_line(ssl, buf, sizeof buf);
	assert_string_equal(buf, "221 bye\r\n");
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	assert_null(fp_error(p));
	/* plaintext on both sides of the handshake; nothing of the TLS records */
	want_received(p, 0, "EHLO c\r\nSTARTTLS\r\nEHLO c\r\nbody\r\n.\r\nQUIT\r\n", 41);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	fp_stop(&p);
}

static void t_starttls_wrong_name(void **state)
{
	/* a client that verifies a different name rejects the certificate: not a script failure */
	fp_opts o = {.script = "send 220 go\nstarttls\nsend 250 never\n", .tls_name = "mx.example"};
	char err[256];
	fp_peer *p = fp_start_opts(&o, err, sizeof err);
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;

	assert_non_null(p);
	ctx = client_ctx(fp_cert_file(p));
	fd = connect_to(p);
	want_line(fd, "220 go\r\n");
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	assert_int_equal(SSL_set1_host(ssl, "localhost"), 1);
	assert_true(SSL_connect(ssl) != 1);
	assert_int_equal(SSL_get_verify_result(ssl), X509_V_ERR_HOSTNAME_MISMATCH);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	close(fd);
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	assert_null(fp_error(p));
	fp_stop(&p);
}

static void t_starttls_plaintext(void **state)
{
	fp_peer *p = start("send 220 go\nstarttls\n");
	int fd = connect_to(p);

	want_line(fd, "220 go\r\n");
	send_str(fd, "EHLO still plain\r\n");
	assert_int_equal(fp_wait(p, WAIT_MS), -1);
	assert_string_equal(
	    fp_error(p), "connection 0 line 2: starttls: client did not start TLS, got 'EHLO still plain'");
	close(fd);
	fp_stop(&p);
}

static void t_starttls_pipelined(void **state)
{
	/* bytes sent after STARTTLS before the handshake (RFC 3207 forbids it) fail the script */
	fp_peer *p = start("expect STARTTLS\nsend 220 go\nstarttls\n");
	int fd = connect_to(p);

	send_str(fd, "STARTTLS\r\nRSET\r\n");
	assert_int_equal(fp_wait(p, WAIT_MS), -1);
	assert_string_equal(fp_error(p),
			    "connection 0 line 3: starttls: client sent 'RSET' before the TLS handshake");
	close(fd);
	fp_stop(&p);
}

/* ---- other listeners ---- */

static void t_ipv6(void **state)
{
	fp_opts o = {.script = "send 220 six\nexpect QUIT\n", .listen = "::1"};
	char err[256];
	fp_peer *p = fp_start_opts(&o, err, sizeof err);
	int fd;

	if (p == NULL) {
		/* no IPv6 loopback in this sandbox */
		print_message("skipped: %s\n", err);
		skip();
	}
	assert_true(fp_port(p) > 0);
	fd = connect_tcp(AF_INET6, fp_port(p));
	assert_true(fd >= 0);
	want_line(fd, "220 six\r\n");
	send_str(fd, "QUIT\r\n");
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	close(fd);
	fp_stop(&p);
}

static void t_unix(void **state)
{
	char path[108], spec[120], err[256];
	struct sockaddr_un sun;
	fp_opts o = {.script = "send 220 unix\nexpect LHLO\n", .listen = spec};
	fp_peer *p;
	int fd;

	snprintf(path, sizeof path, "/tmp/fp-test-%ld.sock", (long)getpid());
	snprintf(spec, sizeof spec, "unix:%s", path);
	p = fp_start_opts(&o, err, sizeof err);
	if (p == NULL)
		fail_msg("fp_start_opts: %s", err);
	assert_int_equal(fp_port(p), 0);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	want_line(fd, "220 unix\r\n");
	send_str(fd, "LHLO x\r\n");
	assert_int_equal(fp_wait(p, WAIT_MS), 0);
	close(fd);
	fp_stop(&p);
	assert_int_equal(access(path, F_OK), -1); /* removed at stop */
}

static void t_closed_port(void **state)
{
	unsigned port = fp_closed_port();
	int fd;

	assert_true(port > 0);
	fd = connect_tcp(AF_INET, port);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, ECONNREFUSED);
}

static void t_cert_file(void **state)
{
	fp_peer *p = start("close\n");
	char path[4096];
	FILE *f;
	X509 *x;

	snprintf(path, sizeof path, "%s", fp_cert_file(p));
	f = fopen(path, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
	assert_int_equal(X509_check_ca(x), 1);
	X509_free(x);
	fp_stop(&p);
	assert_int_equal(access(path, F_OK), -1); /* removed at stop */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(t_greeting),
	    cmocka_unit_test(t_expect_match),
	    cmocka_unit_test(t_expect_mismatch),
	    cmocka_unit_test(t_expect_sanitised),
	    cmocka_unit_test(t_expect_eof),
	    cmocka_unit_test(t_expect_timeout),
	    cmocka_unit_test(t_escapes),
	    cmocka_unit_test(t_bad_scripts),
	    cmocka_unit_test(t_bad_listen),
	    cmocka_unit_test(t_data),
	    cmocka_unit_test(t_data_lf_dot),
	    cmocka_unit_test(t_data_eof),
	    cmocka_unit_test(t_sendlong),
	    cmocka_unit_test(t_sleep),
	    cmocka_unit_test(t_serve),
	    cmocka_unit_test(t_close),
	    cmocka_unit_test(t_reset),
	    cmocka_unit_test(t_multi_connection),
	    cmocka_unit_test(t_beyond_last_script),
	    cmocka_unit_test(t_record_exact),
	    cmocka_unit_test(t_fp_wait_timeout),
	    cmocka_unit_test(t_stop_while_busy),
	    cmocka_unit_test(t_starttls),
	    cmocka_unit_test(t_starttls_wrong_name),
	    cmocka_unit_test(t_starttls_plaintext),
	    cmocka_unit_test(t_starttls_pipelined),
	    cmocka_unit_test(t_ipv6),
	    cmocka_unit_test(t_unix),
	    cmocka_unit_test(t_closed_port),
	    cmocka_unit_test(t_cert_file),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
