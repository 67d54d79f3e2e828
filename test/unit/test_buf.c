/*
 * test_buf.c - gw_buf: limits, growth, failure leaves the buffer unchanged,
 * printf, consume and reset.
 *
 * Does not test: ENOMEM (the allocator is not replaced here).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gw/buf.h"

/* Check contents and length with "got ..., want ..." messages. */
static void check_buf(const gw_buf *b, const char *want, size_t want_len, const char *what)
{
	if (b->len != want_len)
		fail_msg("%s: len got %zu, want %zu", what, b->len, want_len);
	if (memcmp(gw_buf_cstr(b), want, want_len) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", what, gw_buf_cstr(b), want);
	if (gw_buf_cstr(b)[b->len] != '\0')
		fail_msg("%s: not NUL-terminated", what);
	if (b->data != NULL && b->limit != SIZE_MAX && b->cap > b->limit + 1)
		fail_msg("%s: cap got %zu, want <= limit + 1 = %zu", what, b->cap, b->limit + 1);
}

static void test_init_empty(void **state)
{
	gw_buf b;

	(void)state;
	gw_buf_init(&b, 10);
	assert_null(b.data);
	assert_string_equal(gw_buf_cstr(&b), "");
	gw_buf_consume(&b, 5);
	gw_buf_reset(&b);
	check_buf(&b, "", 0, "empty");
	gw_buf_free(&b);
	gw_buf_free(&b);
}

/* Appends up to the limit and one byte over, for several limits. */
static void test_append_table(void **state)
{
	static const struct {
		size_t limit;
		const char *parts[4];
		int want_rc[4];
		const char *want;
	} cases[] = {
	    {0, {"", "a"}, {0, -1}, ""},
	    {1, {"a", "b"}, {0, -1}, "a"},
	    {5, {"ab", "cd", "ef", "e"}, {0, 0, -1, 0}, "abcde"},
	    {5, {"abcdef", "abcde"}, {-1, 0}, "abcde"},
	    {3, {"abcd", "", "abc", ""}, {-1, 0, 0, 0}, "abc"},
	    {200,
	     {"0123456789012345678901234567890123456789012345678901234567890123456789", "x"},
	     {0, 0},
	     NULL},
	};
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_buf b;
		char want[256] = "";
		char what[64];

		gw_buf_init(&b, cases[i].limit);
		for (j = 0; j < 4 && cases[i].parts[j] != NULL; j++) {
			size_t before = b.len;
			int rc;

			errno = 0;
			rc = gw_buf_puts(&b, cases[i].parts[j]);
			snprintf(what, sizeof(what), "case %zu part %zu", i, j);
			if (rc != cases[i].want_rc[j])
				fail_msg("%s: rc got %d, want %d", what, rc, cases[i].want_rc[j]);
			if (rc < 0) {
				if (errno != EMSGSIZE)
					fail_msg("%s: errno got %d, want EMSGSIZE", what, errno);
				if (b.len != before)
					fail_msg("%s: len changed on failure: got %zu, want %zu", what, b.len,
						 before);
			} else {
				strcat(want, cases[i].parts[j]);
			}
		}
		if (cases[i].want != NULL && strcmp(want, cases[i].want) != 0)
			fail_msg("case %zu: table wrong: built \"%s\", want \"%s\"", i, want, cases[i].want);
		check_buf(&b, want, strlen(want), what);
		gw_buf_free(&b);
	}
}

/* Capacity doubles and is clamped to limit + 1; binary bytes (NUL) survive. */
static void test_growth(void **state)
{
	gw_buf b;
	size_t i, last_cap = 0, grows = 0;

	(void)state;
	gw_buf_init(&b, 10000);
	for (i = 0; i < 10000; i++) {
		assert_int_equal(gw_buf_putc(&b, (int)(i % 7)), 0);
		if (b.cap != last_cap) {
			if (last_cap != 0 && b.cap != last_cap * 2 && b.cap != b.limit + 1)
				fail_msg("cap got %zu, want %zu or %zu", b.cap, last_cap * 2, b.limit + 1);
			last_cap = b.cap;
			grows++;
		}
	}
	if (b.cap != 10001)
		fail_msg("final cap got %zu, want 10001", b.cap);
	if (grows > 10)
		fail_msg("grew %zu times, want <= 10", grows);
	for (i = 0; i < 10000; i++)
		if ((size_t)(unsigned char)b.data[i] != i % 7)
			fail_msg("byte %zu got %d, want %zu", i, b.data[i], i % 7);
	errno = 0;
	assert_int_equal(gw_buf_putc(&b, 'x'), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(b.len, 10000);
	gw_buf_free(&b);
}

/* Lengths that would wrap size_t must fail cleanly, not allocate a tiny block. */
static void test_overflow(void **state)
{
	gw_buf b;

	(void)state;
	gw_buf_init(&b, 100);
	assert_int_equal(gw_buf_puts(&b, "abc"), 0);
	errno = 0;
	assert_int_equal(gw_buf_append(&b, "x", SIZE_MAX), -1);
	assert_int_equal(errno, EMSGSIZE);
	errno = 0;
	assert_int_equal(gw_buf_append(&b, "x", SIZE_MAX - 2), -1);
	assert_int_equal(errno, EMSGSIZE);
	check_buf(&b, "abc", 3, "after overflow");
	gw_buf_free(&b);

	gw_buf_init(&b, SIZE_MAX);
	assert_int_equal(gw_buf_puts(&b, "abc"), 0);
	errno = 0;
	/* len + n + 1 for the NUL wraps; must not reach the allocator. */
	assert_int_equal(gw_buf_append(&b, "x", SIZE_MAX - 3), -1);
	assert_int_equal(errno, ENOMEM);
	check_buf(&b, "abc", 3, "unlimited after overflow");
	gw_buf_free(&b);
}

static void test_printf(void **state)
{
	gw_buf b;
	char big[300];

	(void)state;
	gw_buf_init(&b, 20);
	assert_int_equal(gw_buf_printf(&b, "%d-%s", 42, "ab"), 0);
	check_buf(&b, "42-ab", 5, "printf");
	assert_int_equal(gw_buf_printf(&b, "%s", ""), 0);
	check_buf(&b, "42-ab", 5, "printf empty");
	/* 15 more bytes reach the limit exactly. */
	assert_int_equal(gw_buf_printf(&b, "%015d", 7), 0);
	check_buf(&b, "42-ab000000000000007", 20, "printf to limit");
	errno = 0;
	assert_int_equal(gw_buf_printf(&b, "%c", 'z'), -1);
	assert_int_equal(errno, EMSGSIZE);
	check_buf(&b, "42-ab000000000000007", 20, "printf over limit");
	gw_buf_free(&b);

	/* Over the limit on a fresh buffer, and in the middle of a grown one. */
	gw_buf_init(&b, 100);
	errno = 0;
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(gw_buf_printf(&b, "%s", big), -1);
	assert_int_equal(errno, EMSGSIZE);
	check_buf(&b, "", 0, "fresh over limit");
	assert_int_equal(gw_buf_puts(&b, "hello"), 0);
	/* Spare room exists (cap 64) but the text needs more: a truncated try must not leak in. */
	errno = 0;
	assert_int_equal(gw_buf_printf(&b, "%.96s", big), -1);
	assert_int_equal(errno, EMSGSIZE);
	check_buf(&b, "hello", 5, "over limit after grow");
	assert_int_equal(gw_buf_printf(&b, "%.95s", big), 0);
	assert_int_equal(b.len, 100);
	gw_buf_free(&b);
}

static void test_consume_reset(void **state)
{
	static const struct {
		size_t n;
		const char *want;
	} cases[] = {
	    {0, "abcdef"}, {1, "bcdef"}, {5, "f"}, {6, ""}, {7, ""}, {SIZE_MAX, ""},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_buf b;
		char what[32];

		gw_buf_init(&b, 64);
		assert_int_equal(gw_buf_puts(&b, "abcdef"), 0);
		gw_buf_consume(&b, cases[i].n);
		snprintf(what, sizeof(what), "consume %zu", cases[i].n);
		check_buf(&b, cases[i].want, strlen(cases[i].want), what);
		gw_buf_free(&b);
	}

	{
		gw_buf b;
		size_t cap;

		gw_buf_init(&b, 8);
		assert_int_equal(gw_buf_puts(&b, "12345678"), 0);
		cap = b.cap;
		gw_buf_reset(&b);
		check_buf(&b, "", 0, "reset");
		assert_int_equal(b.cap, cap);
		assert_int_equal(b.limit, 8);
		assert_int_equal(gw_buf_puts(&b, "abcdefgh"), 0);
		check_buf(&b, "abcdefgh", 8, "after reset");
		gw_buf_free(&b);
		assert_null(b.data);
		assert_int_equal(b.limit, 8);
		assert_int_equal(gw_buf_puts(&b, "xyz"), 0);
		check_buf(&b, "xyz", 3, "reuse after free");
		gw_buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_empty), cmocka_unit_test(test_append_table),
	    cmocka_unit_test(test_growth),     cmocka_unit_test(test_overflow),
	    cmocka_unit_test(test_printf),     cmocka_unit_test(test_consume_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
