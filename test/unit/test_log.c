/*
 * test_log.c - gw_log through a capturing sink and to stderr: line format,
 * level filter, the 1000-byte cut, level names, concurrent writers, and
 * gw_log_sanitize on hostile bytes and tiny destinations.
 *
 * Does not test: syslog output (there is no portable way to read it back).
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
#include <unistd.h>

#include <cmocka.h>

#include "gw/log.h"

#define CAPTURE_MAX 16

struct capture {
	int n;
	int level[CAPTURE_MAX];
	char line[CAPTURE_MAX][1100];
	long total; /* every line, kept or not; for the thread test */
};

static void capture_sink(int level, const char *line, void *ctx)
{
	struct capture *cap = ctx;

	if (cap->n < CAPTURE_MAX) {
		cap->level[cap->n] = level;
		snprintf(cap->line[cap->n], sizeof(cap->line[cap->n]), "%s", line);
		cap->n++;
	}
	cap->total++;
}

static int setup_sink(void **state)
{
	struct capture *cap = calloc(1, sizeof(*cap));

	if (cap == NULL)
		return -1;
	gw_log_open("test", GW_LOG_STDERR, GW_LOG_DEBUG);
	gw_log_set_sink(capture_sink, cap);
	*state = cap;
	return 0;
}

static int teardown_sink(void **state)
{
	gw_log_set_sink(NULL, NULL);
	free(*state);
	return 0;
}

static void test_sink_lines(void **state)
{
	struct capture *cap = *state;

	gw_log(GW_LOG_INFO, "rcpt", "client=%s verdict=%s code=%d", "a.example", "accept", 250);
	gw_log(GW_LOG_ERR, "boot", "%s", "");
	gw_log(GW_LOG_WARNING, "only", "%s", "x");
	gw_log(GW_LOG_NOTICE, "bare", NULL);
	assert_int_equal(cap->n, 4);
	assert_string_equal(cap->line[0], "rcpt client=a.example verdict=accept code=250");
	assert_int_equal(cap->level[0], GW_LOG_INFO);
	/* Fields that expand to nothing leave no trailing separator. */
	assert_string_equal(cap->line[1], "boot");
	assert_int_equal(cap->level[1], GW_LOG_ERR);
	assert_string_equal(cap->line[2], "only x");
	assert_string_equal(cap->line[3], "bare");
}

/* Levels outside 0-7 are clamped, so they cannot select a syslog facility. */
static void test_level_clamp(void **state)
{
	struct capture *cap = *state;

	gw_log(99, "big", NULL);
	gw_log(-5, "neg", NULL);
	gw_log(GW_LOG_DEBUG | (2 << 3), "mail", NULL); /* LOG_MAIL | LOG_DEBUG */
	assert_int_equal(cap->n, 3);
	assert_int_equal(cap->level[0], GW_LOG_DEBUG);
	assert_int_equal(cap->level[1], 0);
	assert_int_equal(cap->level[2], GW_LOG_DEBUG);
	gw_log_set_level(GW_LOG_INFO);
	gw_log(99, "dropped", NULL);
	assert_int_equal(cap->n, 3);
	assert_int_equal(gw_log_enabled(99), 0);
	assert_int_equal(gw_log_enabled(-5), 1);
}

static void test_levels_filter(void **state)
{
	static const struct {
		int max, level, want;
	} cases[] = {
	    {GW_LOG_DEBUG, GW_LOG_DEBUG, 1},    {GW_LOG_INFO, GW_LOG_DEBUG, 0},
	    {GW_LOG_INFO, GW_LOG_INFO, 1},      {GW_LOG_NOTICE, GW_LOG_INFO, 0},
	    {GW_LOG_NOTICE, GW_LOG_WARNING, 1}, {GW_LOG_ERR, GW_LOG_WARNING, 0},
	    {GW_LOG_ERR, GW_LOG_ERR, 1},        {GW_LOG_WARNING, GW_LOG_ERR, 1},
	};
	struct capture *cap = *state;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int before = cap->n, got;

		gw_log_set_level(cases[i].max);
		gw_log(cases[i].level, "ev", "i=%zu", i);
		got = cap->n - before;
		if (got != cases[i].want)
			fail_msg("case %zu: max %d level %d: got %d lines, want %d", i, cases[i].max,
				 cases[i].level, got, cases[i].want);
		if (gw_log_enabled(cases[i].level) != cases[i].want)
			fail_msg("case %zu: max %d level %d: gw_log_enabled got %d, want %d", i, cases[i].max,
				 cases[i].level, gw_log_enabled(cases[i].level), cases[i].want);
	}
	/* gw_log_open sets the level too. */
	gw_log_open("test", GW_LOG_STDERR, GW_LOG_WARNING);
	cap->n = 0;
	gw_log(GW_LOG_NOTICE, "ev", "dropped");
	gw_log(GW_LOG_WARNING, "ev", "kept");
	assert_int_equal(cap->n, 1);
	assert_string_equal(cap->line[0], "ev kept");
	gw_log_set_level(GW_LOG_DEBUG);
}

static void test_line_cut(void **state)
{
	struct capture *cap = *state;
	char big[2001];
	size_t i;

	for (i = 0; i < sizeof(big) - 1; i++)
		big[i] = (char)('a' + i % 26);
	big[sizeof(big) - 1] = '\0';
	gw_log(GW_LOG_INFO, "long", "f=%s", big);
	gw_log(GW_LOG_INFO, big, "f=%d", 1);
	gw_log(GW_LOG_INFO, "fits", "%.993s", big); /* 5 + 993 = 998 */
	assert_int_equal(cap->n, 3);
	if (strlen(cap->line[0]) != 1000)
		fail_msg("long fields: got %zu bytes, want 1000", strlen(cap->line[0]));
	assert_memory_equal(cap->line[0], "long f=abcdef", 13);
	assert_memory_equal(cap->line[0] + 7, big, 993);
	if (strlen(cap->line[1]) != 1000)
		fail_msg("long event: got %zu bytes, want 1000", strlen(cap->line[1]));
	assert_memory_equal(cap->line[1], big, 1000);
	if (strlen(cap->line[2]) != 998)
		fail_msg("fits: got %zu bytes, want 998", strlen(cap->line[2]));
}

static void test_level_parse(void **state)
{
	static const struct {
		const char *name;
		int want;
	} cases[] = {
	    {"err", GW_LOG_ERR},
	    {"warning", GW_LOG_WARNING},
	    {"notice", GW_LOG_NOTICE},
	    {"info", GW_LOG_INFO},
	    {"debug", GW_LOG_DEBUG},
	    {"DEBUG", GW_LOG_DEBUG},
	    {"", -1},
	    {"error", -1},
	    {"warn", -1},
	    {"info ", -1},
	    {"crit", -1},
	    {NULL, -1},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = gw_log_level_parse(cases[i].name);

		if (got != cases[i].want)
			fail_msg("parse \"%s\": got %d, want %d", cases[i].name ? cases[i].name : "(null)",
				 got, cases[i].want);
	}
}

/* Without a sink, lines go to stderr as "ident[pid]: line". */
static void test_stderr_format(void **state)
{
	FILE *tmp = tmpfile();
	char got[256] = "", want[256];
	int saved;
	size_t n;

	(void)state;
	assert_non_null(tmp);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	gw_log_set_sink(NULL, NULL);
	gw_log_open("gwtest", GW_LOG_STDERR, GW_LOG_INFO);
	gw_log(GW_LOG_INFO, "hello", "k=%s", "v");
	gw_log(GW_LOG_DEBUG, "hidden", "k=v");
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(tmp);
	n = fread(got, 1, sizeof(got) - 1, tmp);
	got[n] = '\0';
	fclose(tmp);
	snprintf(want, sizeof(want), "gwtest[%ld]: hello k=v\n", (long)getpid());
	if (strcmp(got, want) != 0)
		fail_msg("got \"%s\", want \"%s\"", got, want);
}

#define LOG_THREADS 4
#define LOG_LINES   5000

static void *log_thread(void *arg)
{
	long id = (long)(intptr_t)arg;
	int i;

	for (i = 0; i < LOG_LINES; i++)
		gw_log(i % 2 ? GW_LOG_INFO : GW_LOG_DEBUG, "thread", "id=%ld i=%d", id, i);
	return NULL;
}

/* The sink runs under the log mutex, so a plain counter must come out exact. */
static void test_threads(void **state)
{
	struct capture *cap = *state;
	pthread_t t[LOG_THREADS];
	long i;

	gw_log_set_level(GW_LOG_INFO);
	cap->total = 0;
	for (i = 0; i < LOG_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, log_thread, (void *)(intptr_t)i), 0);
	/* Level changes race with writers by design; they must not be a data race. */
	gw_log_set_level(GW_LOG_INFO);
	for (i = 0; i < LOG_THREADS; i++)
		pthread_join(t[i], NULL);
	if (cap->total != LOG_THREADS * LOG_LINES / 2)
		fail_msg("got %ld lines, want %d", cap->total, LOG_THREADS * LOG_LINES / 2);
	gw_log_set_level(GW_LOG_DEBUG);
}

static void test_sanitize(void **state)
{
	static const struct {
		const char *src;
		size_t len; /* SIZE_MAX: strlen(src) */
		size_t max;
		size_t size;
		const char *want;
	} cases[] = {
	    /* plain text, and the default cut */
	    {"hello world", SIZE_MAX, GW_LOG_PEER_MAX, 64, "hello world"},
	    {"", 0, GW_LOG_PEER_MAX, 64, ""},
	    {NULL, 0, GW_LOG_PEER_MAX, 64, ""},
	    /* control bytes, CR/LF, DEL, 8-bit, NUL inside len */
	    {"a\r\nb", SIZE_MAX, 100, 64, "a\\x0d\\x0ab"},
	    {"250 ok\r\n550 forged", SIZE_MAX, 100, 64, "250 ok\\x0d\\x0a550 forged"},
	    {"\x01\x1f\x7f", SIZE_MAX, 100, 64, "\\x01\\x1f\\x7f"},
	    {"\x80\xff\xc3\xa9", SIZE_MAX, 100, 64, "\\x80\\xff\\xc3\\xa9"},
	    {"a\0b", 3, 100, 64, "a\\x00b"},
	    {" ~", SIZE_MAX, 100, 64, " ~"},
	    /* backslash is escaped so "\x41" in peer text cannot pass for an escape */
	    {"a\\b", SIZE_MAX, 100, 64, "a\\\\b"},
	    {"\\x41", SIZE_MAX, 100, 64, "\\\\x41"},
	    /* cut by max: "..." marks it */
	    {"abcdef", SIZE_MAX, 3, 64, "abc..."},
	    {"abc", SIZE_MAX, 3, 64, "abc"},
	    {"abcd", SIZE_MAX, 3, 64, "abc..."},
	    {"a\nbcdef", SIZE_MAX, 2, 64, "a\\x0a..."},
	    /* max 0 keeps nothing */
	    {"abc", SIZE_MAX, 0, 64, "..."},
	    {"", 0, 0, 64, ""},
	    /* cut by the destination: whole escapes only, room kept for "..." */
	    {"abcdefgh", SIZE_MAX, 100, 9, "abcdefgh"},
	    {"abcdefghi", SIZE_MAX, 100, 9, "abcde..."},
	    {"ab\ncdef", SIZE_MAX, 100, 9, "ab..."},
	    {"abc\n", SIZE_MAX, 100, 8, "abc\\x0a"},
	    {"abcd\n", SIZE_MAX, 100, 8, "abcd..."},
	    {"\\\\\\", SIZE_MAX, 100, 6, "\\\\..."},
	    /* tiny destinations */
	    {"abc", SIZE_MAX, 100, 1, ""},
	    {"abc", SIZE_MAX, 100, 2, "."},
	    {"abc", SIZE_MAX, 100, 3, ".."},
	    {"abc", SIZE_MAX, 100, 4, "abc"},
	    {"abcd", SIZE_MAX, 100, 4, "..."},
	    {"abcd", SIZE_MAX, 100, 5, "abcd"},
	    {"abcde", SIZE_MAX, 100, 5, "a..."},
	    {"", 0, 100, 1, ""},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char dst[80];
		size_t len = cases[i].len == SIZE_MAX ? strlen(cases[i].src) : cases[i].len;
		size_t got;

		memset(dst, 'Z', sizeof(dst));
		got = gw_log_sanitize(dst, cases[i].size, cases[i].src, len, cases[i].max);
		if (strcmp(dst, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, dst, cases[i].want);
		if (got != strlen(cases[i].want))
			fail_msg("case %zu: returned %zu, want %zu", i, got, strlen(cases[i].want));
		if (dst[cases[i].size] != 'Z')
			fail_msg("case %zu: wrote past size %zu", i, cases[i].size);
	}
}

static void test_sanitize_size0(void **state)
{
	char dst[4] = "ZZZ";

	(void)state;
	assert_int_equal(gw_log_sanitize(dst, 0, "abc", 3, 100), 0);
	assert_string_equal(dst, "ZZZ");
	assert_int_equal(gw_log_sanitize(NULL, 0, "abc", 3, 100), 0);
}

/* Every byte value, at the default cap: output is printable and never over the cap. */
static void test_sanitize_all_bytes(void **state)
{
	char src[256], dst[GW_LOG_PEER_MAX * 4 + 4];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(src); i++)
		src[i] = (char)i;
	n = gw_log_sanitize(dst, sizeof(dst), src, sizeof(src), GW_LOG_PEER_MAX);
	assert_int_equal(n, strlen(dst));
	for (i = 0; i < n; i++)
		if (dst[i] < 0x20 || dst[i] > 0x7e)
			fail_msg("byte %zu got 0x%02x, want printable", i, (unsigned char)dst[i]);
	assert_string_equal(dst + n - 3, "...");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_sink_lines, setup_sink, teardown_sink),
	    cmocka_unit_test_setup_teardown(test_level_clamp, setup_sink, teardown_sink),
	    cmocka_unit_test_setup_teardown(test_levels_filter, setup_sink, teardown_sink),
	    cmocka_unit_test_setup_teardown(test_line_cut, setup_sink, teardown_sink),
	    cmocka_unit_test_setup_teardown(test_threads, setup_sink, teardown_sink),
	    cmocka_unit_test(test_level_parse),
	    cmocka_unit_test(test_stderr_format),
	    cmocka_unit_test(test_sanitize),
	    cmocka_unit_test(test_sanitize_size0),
	    cmocka_unit_test(test_sanitize_all_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
