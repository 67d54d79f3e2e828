/*
 * test_flood_hook.c - the mode-change hooks of the bounce-flood guard
 * (milter/hook.c): a command's exit status, its environment (mode and JSON
 * event), its kill at the timeout (with the grandchildren of its process
 * group); the JSON POST against a small HTTP server on loopback (the body
 * and Content-Type received, 2xx success, 500 and a refused connection
 * failures, a server that never answers bounded by the timeout); and the
 * hook thread: an event posted returns at once, a failing attempt is retried
 * and the retry succeeds, events run in order.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "milter/hook.h"
#include "gw/time.h"

static char tmpdir[] = "/tmp/gw-test-hook.XXXXXX";
static int64_t killed_at; /* when test_command's hung command was killed */

static char *slurp(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_command(void **state)
{
	char cmd[1024], path[600], err[256], out[64];
	const char *got;
	int64_t t0;

	(void)state;
	snprintf(path, sizeof(path), "%s/env", tmpdir);
	snprintf(cmd, sizeof(cmd), "printf '%%s|%%s' \"$GW_FLOOD_MODE\" \"$GW_FLOOD_EVENT\" > %s", path);
	assert_int_equal(gwm_hook_run_command(cmd, "high", "{\"mode\":\"high\"}", 5000, out, sizeof(out), err,
					      sizeof(err)),
			 0);
	got = slurp(path);
	assert_non_null(got);
	assert_string_equal(got, "high|{\"mode\":\"high\"}");
	assert_string_equal(out, ""); /* it wrote nothing to stdout */
	assert_int_equal(gwm_hook_run_command("echo said; echo complained >&2; exit 3", "normal", "{}", 5000,
					      out, sizeof(out), err, sizeof(err)),
			 -1);
	assert_string_equal(err, "exit status 3");
	assert_string_equal(out, "said\ncomplained\n"); /* stdout and stderr, for the log */
	/* Output beyond the buffer is read and dropped: the command is not blocked on a full pipe. */
	if (gwm_hook_run_command("head -c 200000 /dev/zero | tr '\\0' x", "high", "{}", 5000, out,
				 sizeof(out), err, sizeof(err)) != 0)
		fail_msg("a command with much output: %s", err);
	assert_int_equal(strlen(out), sizeof(out) - 1);
	/* A hung command and its child are killed at the timeout. */
	snprintf(path, sizeof(path), "%s/late", tmpdir);
	snprintf(cmd, sizeof(cmd), "(sleep 3; touch %s) & sleep 30", path);
	t0 = gw_now_ms();
	assert_int_equal(gwm_hook_run_command(cmd, "high", "{}", 300, out, sizeof(out), err, sizeof(err)),
			 -1);
	assert_true(gw_now_ms() - t0 < 5000);
	assert_non_null(strstr(err, "timed out"));
	killed_at = gw_now_ms();
	assert_int_equal(access(path, F_OK), -1); /* checked again below, after the child's 3 s */
}

/* --- a small HTTP server ---------------------------------------------------------- */

typedef struct server {
	int fd;
	unsigned port;
	int status;     /* answer; 0: never answer (hold the connection) */
	char req[8192]; /* what the last client sent */
	pthread_t th;
} server;

static void *serve(void *arg)
{
	server *s = arg;
	int c = accept(s->fd, NULL, NULL);
	size_t len = 0;
	char *body, out[128];

	if (c < 0)
		return NULL;
	for (;;) {
		ssize_t n = recv(c, s->req + len, sizeof(s->req) - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		s->req[len] = '\0';
		if ((body = strstr(s->req, "\r\n\r\n")) != NULL) {
			const char *cl = strcasestr(s->req, "Content-Length:");
			size_t want = cl != NULL ? (size_t)atoi(cl + 15) : 0;
			if (strlen(body + 4) >= want)
				break;
		}
	}
	if (s->status == 0) {
		char b;
		(void)recv(c, &b, 1, 0); /* until the client gives up */
	} else {
		snprintf(out, sizeof(out),
			 "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", s->status);
		(void)send(c, out, strlen(out), MSG_NOSIGNAL);
	}
	close(c);
	return NULL;
}

static void server_start(server *s, int status)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);

	memset(s, 0, sizeof(*s));
	s->status = status;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->fd >= 0);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(s->fd, 4), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&sin, &sl), 0);
	s->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
}

static void server_stop(server *s)
{
	pthread_join(s->th, NULL);
	close(s->fd);
}

static void test_post(void **state)
{
	server s;
	char url[128], err[256];
	int64_t t0;

	(void)state;
	assert_int_equal(gwm_hook_start(), 0); /* curl_global_init */
	server_start(&s, 200);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/hook", s.port);
	assert_int_equal(gwm_hook_run_post(url, "{\"mode\":\"high\"}", 5000, err, sizeof(err)), 0);
	server_stop(&s);
	assert_non_null(strstr(s.req, "POST /hook HTTP/1.1\r\n"));
	assert_non_null(strcasestr(s.req, "\r\nContent-Type: application/json\r\n"));
	assert_non_null(strstr(s.req, "\r\n\r\n{\"mode\":\"high\"}"));

	server_start(&s, 500);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/hook", s.port);
	assert_int_equal(gwm_hook_run_post(url, "{}", 5000, err, sizeof(err)), -1);
	assert_string_equal(err, "HTTP status 500");
	server_stop(&s);

	server_start(&s, 0); /* never answers */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/hook", s.port);
	t0 = gw_now_ms();
	assert_int_equal(gwm_hook_run_post(url, "{}", 500, err, sizeof(err)), -1);
	assert_true(gw_now_ms() - t0 < 5000);
	server_stop(&s);
	/* The port is closed now: refused. */
	assert_int_equal(gwm_hook_run_post(url, "{}", 2000, err, sizeof(err)), -1);
	assert_int_equal(gwm_hook_run_post("file:///etc/passwd", "{}", 2000, err, sizeof(err)), -1);
	gwm_hook_stop();
}

static void test_thread_retries(void **state)
{
	char cmd[2048], log[600], flag[600];
	unsigned long ok = 0, failed = 0;
	int64_t t0;
	const char *got;

	(void)state;
	snprintf(log, sizeof(log), "%s/runs", tmpdir);
	snprintf(flag, sizeof(flag), "%s/flag", tmpdir);
	/* Fails the first time (no flag yet), succeeds the second. */
	snprintf(cmd, sizeof(cmd), "echo \"$GW_FLOOD_MODE\" >> %s; [ -e %s ] || { touch %s; exit 1; }", log,
		 flag, flag);
	assert_int_equal(gwm_hook_start(), 0);
	t0 = gw_now_ms();
	gwm_hook_post(cmd, NULL, 5000, 2, "high", "{\"mode\":\"high\"}");
	gwm_hook_post(cmd, NULL, 5000, 2, "normal", "{\"mode\":\"normal\"}");
	assert_true(gw_now_ms() - t0 < 200); /* queued, not run here */
	while (gw_now_ms() - t0 < 30000) {
		gwm_hook_counts(&ok, &failed);
		if (ok >= 2)
			break;
		usleep(20000);
	}
	assert_int_equal(ok, 2);
	assert_int_equal(failed, 1);
	got = slurp(log);
	assert_non_null(got);
	assert_string_equal(got, "high\nhigh\nnormal\n"); /* one retry, then the next event, in order */
	gwm_hook_stop();
	gwm_hook_post(cmd, NULL, 5000, 2, "high", "{}"); /* stopped: dropped (logged), not run */
	/* The timed-out command's child of test_command was killed with its group: past its 3 s, no file. */
	while (gw_now_ms() - killed_at < 3500)
		usleep(100000);
	snprintf(log, sizeof(log), "%s/late", tmpdir);
	assert_int_equal(access(log, F_OK), -1);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[600];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_command),
	    cmocka_unit_test(test_post),
	    cmocka_unit_test(test_thread_retries),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
