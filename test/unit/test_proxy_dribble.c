/*
 * test_proxy_dribble.c - gwp_dribbled(): which reply arrivals count as
 * dribbled, table-driven. Replies that came whole, in two segments, or as a
 * long EHLO reply written a line at a time never do; a reply of many reads
 * of a few bytes over dribble_time does.
 *
 * Does not test: the hook marking the destination (test/sh/proxy_dribble.sh
 * does, end to end).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dribble.h"

static void test_table(void **state)
{
	static const struct {
		const char *name;
		unsigned reads;
		size_t bytes;
		unsigned spread_ms;
		long want_reads, want_ms;
		int want;
	} cases[] = {
	    {"greeting one byte a read", 19, 19, 360, 5, 200, 1},
	    {"two bytes a read", 10, 20, 900, 10, 3000, 0},
	    {"two bytes a read, long", 10, 20, 3000, 10, 3000, 1},
	    {"exactly 8 bytes a read", 10, 80, 3000, 10, 3000, 1},
	    {"9 bytes a read", 10, 90, 3000, 10, 3000, 0},
	    {"one write", 1, 21, 0, 10, 3000, 0},
	    {"one write, low thresholds", 1, 1, 0, 1, 0, 1},
	    {"two segments", 2, 30, 4000, 10, 3000, 0},
	    {"ten-line EHLO a line at a time", 10, 162, 5000, 5, 200, 0},
	    {"forty-line EHLO a line at a time", 40, 600, 8000, 10, 3000, 0},
	    {"few reads", 9, 9, 9000, 10, 3000, 0},
	    {"fast dribble", 30, 30, 100, 10, 3000, 0},
	    {"off", 100, 100, 60000, 0, 3000, 0},
	    {"nothing read", 0, 0, 0, 1, 0, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_reply_arrival a = {cases[i].reads, cases[i].bytes, cases[i].spread_ms};
		int got = gwp_dribbled(&a, cases[i].want_reads, cases[i].want_ms);

		if (got != cases[i].want)
			fail_msg("%s (reads=%u bytes=%zu spread=%ums, thresholds %ld reads %ldms): got %d, "
				 "want %d",
				 cases[i].name, a.reads, a.bytes, a.spread_ms, cases[i].want_reads,
				 cases[i].want_ms, got, cases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_table)};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
