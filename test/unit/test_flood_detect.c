/*
 * test_flood_detect.c - the bounce-flood guard's pure logic
 * (milter/flood_math.c, milter/flood_detect.c): decay by half-life, the EWMA
 * step, network keys (IPv4 /24, IPv6 /48, other prefixes, v4-mapped), and
 * the detector on synthetic times: a flood's start (entry within the window,
 * at the count that reaches the threshold), its end after the calm windows,
 * a pausing flood that does not flap, a quiet site held back by the floor, a
 * baseline that does not learn the flood, the operator's force, and the
 * other gateways' counts added to ours (a flood split over the fleet). No
 * real clock is read anywhere: every time is a number the test passes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <string.h>

#include "milter/flood_detect.h"
#include "milter/flood_math.h"

#define MIN 60000

static void test_decay_and_ewma(void **state)
{
	(void)state;
	assert_true(fabs(gwm_decay(8, 0, 1000) - 8) < 1e-12);
	assert_true(fabs(gwm_decay(8, 1000, 1000) - 4) < 1e-12);
	assert_true(fabs(gwm_decay(8, 3000, 1000) - 1) < 1e-12);
	assert_true(fabs(gwm_decay(8, 500, 1000) - 8 / sqrt(2)) < 1e-9);
	assert_true(fabs(gwm_decay(8, -5, 1000) - 8) < 1e-12); /* a clock going back decays nothing */
	assert_true(fabs(gwm_ewma(10, 20, 0.5) - 15) < 1e-12);
	assert_true(fabs(gwm_ewma(10, 20, 1) - 20) < 1e-12);
	assert_true(fabs(gwm_ewma(10, 10, 0.1) - 10) < 1e-12);
}

static void v4(struct sockaddr_in *sin, const char *a)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, a, &sin->sin_addr), 1);
}

static void v6(struct sockaddr_in6 *sin6, const char *a)
{
	memset(sin6, 0, sizeof(*sin6));
	sin6->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, a, &sin6->sin6_addr), 1);
}

static void test_net_keys(void **state)
{
	static const struct {
		const char *addr;
		unsigned p4, p6;
		const char *want;
	} cases[] = {
	    {"198.51.100.77", 24, 48, "198.51.100.0/24"},
	    {"198.51.100.77", 32, 48, "198.51.100.77/32"},
	    {"198.51.100.77", 20, 48, "198.51.96.0/20"},
	    {"198.51.100.77", 8, 48, "198.0.0.0/8"},
	    {"2001:db8:aaaa:bbbb::1", 24, 48, "2001:db8:aaaa::/48"},
	    {"2001:db8:aaaa:bbbb::1", 24, 64, "2001:db8:aaaa:bbbb::/64"},
	    {"2001:db8:aaff:bbbb::1", 24, 44, "2001:db8:aaf0::/44"},
	    {"::ffff:203.0.113.9", 24, 48, "203.0.113.0/24"}, /* v4-mapped: counted as IPv4 */
	};
	char buf[GWM_NETKEY_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
		const struct sockaddr *sa;

		if (strchr(cases[i].addr, ':') != NULL) {
			v6(&sin6, cases[i].addr);
			sa = (const struct sockaddr *)&sin6;
		} else {
			v4(&sin, cases[i].addr);
			sa = (const struct sockaddr *)&sin;
		}
		assert_int_equal(gwm_net_key(sa, cases[i].p4, cases[i].p6, buf, sizeof(buf)), 0);
		if (strcmp(buf, cases[i].want) != 0)
			fail_msg("%s /%u /%u: got %s, want %s", cases[i].addr, cases[i].p4, cases[i].p6, buf,
				 cases[i].want);
	}
	{
		struct sockaddr_in sin;
		struct sockaddr sa = {.sa_family = AF_UNIX};

		v4(&sin, "192.0.2.1");
		assert_int_equal(gwm_net_key((const struct sockaddr *)&sin, 0, 48, buf, sizeof(buf)), -1);
		assert_int_equal(gwm_net_key((const struct sockaddr *)&sin, 33, 48, buf, sizeof(buf)), -1);
		assert_int_equal(gwm_net_key((const struct sockaddr *)&sin, 24, 48, buf, 5),
				 -1); /* too small */
		assert_int_equal(gwm_net_key(&sa, 24, 48, buf, sizeof(buf)), -1);
		assert_int_equal(gwm_net_key(NULL, 24, 48, buf, sizeof(buf)), -1);
	}
}

static gwm_fd_params params(void)
{
	gwm_fd_params p;

	memset(&p, 0, sizeof(p));
	p.window_ms = MIN;
	p.alpha = 0.5;
	p.multiple = 10;
	p.floor[GWM_FD_BOUNCE] = 50;
	p.floor[GWM_FD_PRVS] = 50;
	p.floor[GWM_FD_UNKNOWN] = 100;
	p.leave_ratio = 0.5;
	p.calm_windows = 3;
	return p;
}

/* n events of kind spread over the window starting at t; the transitions seen, summed. */
static int window(gwm_fd *fd, int64_t t, int kind, unsigned n, int *entered_at)
{
	unsigned i;
	int sum = 0;

	for (i = 0; i < n; i++) {
		int tr = gwm_fd_count(fd, kind, 1, t + (int64_t)i * (MIN / (n + 1)));
		if (tr == GWM_FD_ENTERED && entered_at != NULL)
			*entered_at = (int)i + 1;
		sum += tr;
	}
	return sum;
}

static void test_flood_start_and_end(void **state)
{
	gwm_fd_params p = params();
	gwm_fd fd;
	int64_t t = 1000000;
	int at = -1, w;

	(void)state;
	gwm_fd_init(&fd, &p, t);
	/* Normal times: 20 bounces a minute for 10 minutes. */
	for (w = 0; w < 10; w++, t += MIN)
		assert_int_equal(window(&fd, t, GWM_FD_BOUNCE, 20, NULL), 0);
	assert_int_equal(gwm_fd_tick(&fd, t), GWM_FD_SAME);
	assert_true(fd.base[GWM_FD_BOUNCE] > 19 && fd.base[GWM_FD_BOUNCE] < 20.01);
	assert_false(gwm_fd_high(&fd));
	/* The threshold is 10 x baseline (about 200), above the floor. */
	assert_true(gwm_fd_threshold(&fd, GWM_FD_BOUNCE) > 190);
	/* The flood: 1000 a minute. Entry at the count that reaches the threshold, inside the first window.
	 */
	assert_int_equal(window(&fd, t, GWM_FD_BOUNCE, 1000, &at), GWM_FD_ENTERED);
	if (at < 190 || at > 201)
		fail_msg("entered at bounce %d, want about 200 (the threshold)", at);
	assert_true(gwm_fd_high(&fd));
	assert_int_equal(fd.trigger, GWM_FD_BOUNCE);
	t += MIN;
	/* Ten more minutes of flood: the mode holds, the baseline does not learn the flood. */
	for (w = 0; w < 10; w++, t += MIN)
		assert_int_equal(window(&fd, t, GWM_FD_BOUNCE, 1000, NULL), 0);
	assert_true(fd.base[GWM_FD_BOUNCE] < 20.01);
	/* The flood stops: back to 20 a minute. The mode is left after 3 calm windows, not before. */
	assert_int_equal(window(&fd, t, GWM_FD_BOUNCE, 20, NULL), 0); /* closes the last flood window */
	t += MIN;
	assert_int_equal(gwm_fd_tick(&fd, t), GWM_FD_SAME);           /* calm 1 */
	assert_int_equal(gwm_fd_tick(&fd, t + MIN), GWM_FD_SAME);     /* calm 2 */
	assert_int_equal(gwm_fd_tick(&fd, t + 2 * MIN), GWM_FD_LEFT); /* calm 3 */
	assert_false(gwm_fd_high(&fd));
}

static void test_no_flapping(void **state)
{
	gwm_fd_params p = params();
	gwm_fd fd;
	int64_t t = 0;
	int w, transitions = 0;

	(void)state;
	gwm_fd_init(&fd, &p, t);
	assert_int_equal(window(&fd, t, GWM_FD_PRVS, 300, NULL), GWM_FD_ENTERED);
	t += MIN;
	/* A flood that pauses every other window, and one that sits between the leave and enter levels. */
	for (w = 0; w < 20; w++, t += MIN)
		transitions += abs(window(&fd, t, GWM_FD_PRVS, w % 2 ? 300 : 0, NULL));
	for (w = 0; w < 20; w++, t += MIN)
		transitions += abs(window(&fd, t, GWM_FD_PRVS, 30, NULL)); /* >= 0.5 x floor 50 */
	assert_int_equal(transitions, 0);
	assert_true(gwm_fd_high(&fd));
	/* Below the leave level for 3 windows: left once. */
	for (w = 0; w < 4; w++, t += MIN)
		transitions += abs(window(&fd, t, GWM_FD_PRVS, 5, NULL));
	assert_int_equal(transitions, 1);
	assert_false(gwm_fd_high(&fd));
}

static void test_quiet_site_floor(void **state)
{
	gwm_fd_params p = params();
	gwm_fd fd;
	int64_t t = 0;
	int w;

	(void)state;
	gwm_fd_init(&fd, &p, t);
	/* A site that sees one bounce an hour: baseline near zero. */
	for (w = 0; w < 60; w++, t += MIN)
		(void)gwm_fd_tick(&fd, t);
	assert_true(fd.base[GWM_FD_BOUNCE] < 0.01);
	/* Ten bounces in a minute are 1000 x the baseline but under the floor of 50: no flood. */
	assert_int_equal(window(&fd, t, GWM_FD_BOUNCE, 10, NULL), 0);
	assert_int_equal(window(&fd, t + MIN, GWM_FD_BOUNCE, 49, NULL), 0);
	assert_false(gwm_fd_high(&fd));
	/* The 50th in one window is a flood (a fresh quiet site: the windows above moved the baseline). */
	gwm_fd_init(&fd, &p, 0);
	assert_int_equal(window(&fd, 0, GWM_FD_BOUNCE, 49, NULL), 0);
	assert_int_equal(gwm_fd_count(&fd, GWM_FD_BOUNCE, 1, MIN - 1), GWM_FD_ENTERED);
	/* Unknown recipients have their own floor (100). */
	gwm_fd_init(&fd, &p, 0);
	assert_int_equal(window(&fd, 0, GWM_FD_UNKNOWN, 99, NULL), 0);
	assert_int_equal(gwm_fd_count(&fd, GWM_FD_UNKNOWN, 1, MIN - 1), GWM_FD_ENTERED);
	assert_int_equal(fd.trigger, GWM_FD_UNKNOWN);
	assert_int_equal(gwm_fd_count(&fd, 7, 1, MIN - 1), GWM_FD_SAME); /* no such kind */
}

static void test_force_and_gap(void **state)
{
	gwm_fd_params p = params();
	gwm_fd fd;
	gwm_force f;

	(void)state;
	gwm_fd_init(&fd, &p, 0);
	assert_int_equal(gwm_fd_force(&fd, GWM_FORCE_HIGH, 10), GWM_FD_ENTERED);
	assert_true(gwm_fd_high(&fd));
	assert_int_equal(fd.since_ms, 10);
	assert_int_equal(gwm_fd_force(&fd, GWM_FORCE_HIGH, 20), GWM_FD_SAME);
	/* A detected flood under "normal" changes nothing visible; "auto" then shows it. */
	assert_int_equal(gwm_fd_force(&fd, GWM_FORCE_NORMAL, 30), GWM_FD_LEFT);
	assert_int_equal(window(&fd, 0, GWM_FD_BOUNCE, 60, NULL), GWM_FD_SAME);
	assert_true(fd.detected);
	assert_false(gwm_fd_high(&fd));
	assert_int_equal(gwm_fd_force(&fd, GWM_FORCE_AUTO, 40), GWM_FD_ENTERED);
	/* Days without a tick: a bounded amount of work, and the calm windows end the flood. */
	assert_int_equal(gwm_fd_tick(&fd, (int64_t)86400000 * 30), GWM_FD_LEFT);
	assert_int_equal(fd.win_start % MIN, 0);
	assert_true((int64_t)86400000 * 30 - fd.win_start < MIN);
	assert_int_equal(gwm_force_parse("HIGH", &f), 0);
	assert_int_equal(f, GWM_FORCE_HIGH);
	assert_int_equal(gwm_force_parse("auto", &f), 0);
	assert_int_equal(f, GWM_FORCE_AUTO);
	assert_int_equal(gwm_force_parse("sometimes", &f), -1);
	assert_string_equal(gwm_force_str(GWM_FORCE_NORMAL), "normal");
	assert_string_equal(gwm_fd_kind_str(GWM_FD_PRVS), "prvs");
}

/* The fleet's counts (ext): a flood spread over gateways, each below the floor alone. */
static void test_fleet_counts(void **state)
{
	gwm_fd_params p = params();
	double ext[GWM_FD_KINDS] = {0};
	gwm_fd fd;
	int w;

	(void)state;
	gwm_fd_init(&fd, &p, 0);
	/* 30 here and none elsewhere: under the floor of 50. */
	assert_int_equal(window(&fd, 0, GWM_FD_BOUNCE, 30, NULL), 0);
	assert_int_equal(gwm_fd_set_ext(&fd, ext, MIN - 1), GWM_FD_SAME);
	/* Another gateway's 30 in the same minute: 60 for the fleet, a flood here too. */
	ext[GWM_FD_BOUNCE] = 30;
	assert_int_equal(gwm_fd_set_ext(&fd, ext, MIN - 1), GWM_FD_ENTERED);
	assert_int_equal(fd.trigger, GWM_FD_BOUNCE);
	/* The same when the others' counts were there first and ours come one by one. */
	gwm_fd_init(&fd, &p, 0);
	ext[GWM_FD_BOUNCE] = 40;
	assert_int_equal(gwm_fd_set_ext(&fd, ext, 0), GWM_FD_SAME);
	assert_int_equal(window(&fd, 0, GWM_FD_BOUNCE, 9, NULL), 0);
	assert_int_equal(gwm_fd_count(&fd, GWM_FD_BOUNCE, 1, MIN - 1), GWM_FD_ENTERED);
	/* While the others still see the flood, our quiet windows are not calm. */
	for (w = 1; w <= 5; w++)
		assert_int_equal(gwm_fd_tick(&fd, (int64_t)w * MIN + 1), GWM_FD_SAME);
	assert_true(gwm_fd_high(&fd));
	/* The fleet calm too: three calm windows end it. */
	ext[GWM_FD_BOUNCE] = 0;
	(void)gwm_fd_set_ext(&fd, ext, 5 * MIN + 2);
	assert_int_equal(gwm_fd_tick(&fd, 8 * MIN + 1), GWM_FD_LEFT);
	/* The baseline learns the fleet's normal rate, so N gateways' sum is not N times a flood. */
	gwm_fd_init(&fd, &p, 0);
	ext[GWM_FD_BOUNCE] = 20;
	(void)gwm_fd_set_ext(&fd, ext, 0);
	for (w = 0; w < 10; w++)
		assert_int_equal(window(&fd, (int64_t)w * MIN, GWM_FD_BOUNCE, 10, NULL), 0);
	(void)gwm_fd_tick(&fd, 10 * MIN);
	assert_true(fabs(fd.base[GWM_FD_BOUNCE] - 30) < 0.1);
	/* NULL: no fleet. */
	assert_int_equal(gwm_fd_set_ext(&fd, NULL, 10 * MIN), GWM_FD_SAME);
	assert_true(fd.ext[GWM_FD_BOUNCE] == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decay_and_ewma),      cmocka_unit_test(test_net_keys),
	    cmocka_unit_test(test_flood_start_and_end), cmocka_unit_test(test_no_flapping),
	    cmocka_unit_test(test_quiet_site_floor),    cmocka_unit_test(test_force_and_gap),
	    cmocka_unit_test(test_fleet_counts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
