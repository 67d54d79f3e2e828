/*
 * test_proxy_slog.c - the session log's lines: timestamp, id, arrow, text;
 * peer text escaped and cut, multi-line replies on one line, one summary
 * whose values parse as key=VALUE.
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "slog.h"

static char path[64];

static char *slurp(void)
{
	char *b = calloc(1, 65536);
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(b);
	assert_non_null(f);
	n = fread(b, 1, 65535, f);
	b[n] = '\0';
	fclose(f);
	return b;
}

static void test_lines(void **state)
{
	char err[256], *got, *line, *save = NULL;
	gwp_slog *l;
	gw_reply r;
	regex_t re;
	int nlines = 0;
	char longtext[600];

	(void)state;
	snprintf(path, sizeof(path), "/tmp/gw-proxy-slog.XXXXXX");
	close(mkstemp(path));
	assert_non_null(l = gwp_slog_open(path, err, sizeof(err)));
	gwp_slog_line(l, "0badcafe", "->", "RCPT TO:<a@b.test>", 18, -1);
	memset(&r, 0, sizeof(r));
	r.code = 550;
	strcpy(r.enh, "5.1.1");
	strcpy(r.text, "no such user\nsecond line\nthird");
	r.nlines = 3;
	gwp_slog_reply(l, "0badcafe", "<-", &r, 12);
	{
		static const char evil[] = "evil\r\n2026-01-01T00:00:00.000Z 0badcafe == forged";
		gwp_slog_line(l, "0badcafe", "|<", evil, strlen(evil), 3);
	}
	memset(longtext, 'x', sizeof(longtext));
	gwp_slog_line(l, "0badcafe", ">|", longtext, sizeof(longtext), -1);
	gwp_slog_summary(l, "0badcafe", "client=%s outcome=%s", "[192.0.2.7]:4242", "quit");
	gwp_slog_close(&l);
	assert_null(l);
	got = slurp();
	unlink(path);
	assert_int_equal(
	    regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z 0badcafe ",
		    REG_EXTENDED | REG_NOSUB),
	    0);
	for (line = strtok_r(got, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (regexec(&re, line, 0, NULL, 0) != 0)
			fail_msg("line out of the notation: %s", line);
		nlines++;
		switch (nlines) {
		case 1:
			assert_string_equal(line + 34, "-> RCPT TO:<a@b.test>");
			break;
		case 2:
			assert_string_equal(line + 34, "<- 550 5.1.1 no such user (+2 lines) [12ms]");
			break;
		case 3: /* CR LF escaped: a peer cannot start a line of its own */
			assert_string_equal(
			    line + 34, "|< evil\\x0d\\x0a2026-01-01T00:00:00.000Z 0badcafe == forged [3ms]");
			break;
		case 4: /* cut at GWP_SLOG_TEXT_MAX with a mark */
			assert_true(strlen(line + 37) < GWP_SLOG_TEXT_MAX + 8);
			assert_non_null(strstr(line, "..."));
			break;
		case 5:
			assert_string_equal(line + 34, "== client=[192.0.2.7]:4242 outcome=quit");
			break;
		}
	}
	assert_int_equal(nlines, 5);
	regfree(&re);
	free(got);
}

/* Lines are written in batches: many lines, one write() at the flush; nothing lost, in order. */
static void test_batched(void **state)
{
	char err[256], text[32], *got, *p;
	gwp_slog *l;
	int i;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/gw-proxy-slog.XXXXXX");
	close(mkstemp(path));
	assert_non_null(l = gwp_slog_open(path, err, sizeof(err)));
	for (i = 0; i < 200; i++) {
		snprintf(text, sizeof(text), "RCPT TO:<%d@b.test>", i);
		gwp_slog_line(l, "0badcafe", "->", text, strlen(text), -1);
	}
	gwp_slog_flush(l);
	/* one write at the flush; the log's thread may have written once or twice meanwhile on a slow machine
	 */
	assert_in_range(gwp_slog_writes(l), 1, 10);
	got = slurp();
	for (i = 0, p = got; i < 200; i++) {
		snprintf(text, sizeof(text), " -> RCPT TO:<%d@b.test>\n", i);
		if ((p = strstr(p, text)) == NULL)
			fail_msg("line %d missing or out of order", i);
	}
	free(got);
	gwp_slog_close(&l);
	unlink(path);
}

/* A line nobody flushes (its session waits on a destination) is written by the log's thread soon. */
static void test_written_without_flush(void **state)
{
	char err[256], *got = NULL;
	gwp_slog *l;
	int i;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/gw-proxy-slog.XXXXXX");
	close(mkstemp(path));
	assert_non_null(l = gwp_slog_open(path, err, sizeof(err)));
	gwp_slog_line(l, "0badcafe", "->", "MAIL FROM:<a@b.test>", 20, -1);
	for (i = 0; i < 1000; i++) { /* 10 s at most */
		got = slurp();
		if (strstr(got, " -> MAIL FROM:<a@b.test>\n") != NULL)
			break;
		free(got);
		got = NULL;
		usleep(10000);
	}
	if (got == NULL)
		fail_msg("the line was not written within 10 s");
	free(got);
	gwp_slog_close(&l);
	unlink(path);
}

static void test_open_error(void **state)
{
	char err[256];

	(void)state;
	assert_null(gwp_slog_open("/nonexistent/dir/session.log", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/dir/session.log: No such file"));
}

/* Summary values parse as key=VALUE: tokens bare, anything else quoted with escapes. */
static void test_values(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"quit", "quit"},
	    {"[127.0.0.1]:25", "[127.0.0.1]:25"},
	    {"upstream-connection lost", "\"upstream-connection lost\""},
	    {"", "\"\""},
	    {"a\"b\\c", "\"a\\\"b\\\\c\""},
	    {"tab\there", "\"tab\there\""},
	};
	char out[64], small[8];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gwp_slog_value(out, sizeof(out), cases[i].in);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("value %zu: got %s, want %s", i, out, cases[i].want);
	}
	/* cut short, still one quoted value */
	assert_string_equal(gwp_slog_value(small, sizeof(small), "a b c d e f"), "\"a b \"");
	assert_string_equal(gwp_slog_value(small, sizeof(small), "\"\"\"\""), "\"\\\"\\\"\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines),
	    cmocka_unit_test(test_batched),
	    cmocka_unit_test(test_written_without_flush),
	    cmocka_unit_test(test_open_error),
	    cmocka_unit_test(test_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
