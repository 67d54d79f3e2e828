/*
 * test_flood_service.c - the bounce-flood guard as the callbacks see it
 * (milter/flood.c with a configuration loaded from a file, fixed clocks):
 * learning networks and domains against flood_threshold; in forced
 * high-load mode the MAIL verdicts (a non-correspondent's bounce deferred;
 * a correspondent's, an exempt client's and a non-bounce not; with
 * flood_defer_all a stranger's mail deferred unless its sender domain is one
 * we send to); the per-network probe slots (flood_client_probes in high-load
 * mode only, other networks unaffected); automatic entry on bounces counted
 * at MAIL and exit after the calm windows on the fixed clock; the control
 * command's answers; and a restart on the same store (correspondents and the
 * forced mode kept, decayed by the time that passed). The deferrals' log
 * lines: ten a second, the rest counted into a summary line at most once a
 * second, the last one at stop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdatomic.h>
#include <time.h>

#include "milter/conf.h"
#include "milter/flood.h"
#include "gw/cache.h"
#include "gw/log.h"

#define DAY 86400000LL

static int64_t mono_now, wall_now;

static int64_t mono_ms(void *ctx)
{
	(void)ctx;
	return mono_now;
}

static int64_t wall_ms(void *ctx)
{
	(void)ctx;
	return wall_now;
}

static const gw_clock mono = {mono_ms, NULL}, wall = {wall_ms, NULL};
static char dir[] = "/tmp/gw-test-flood.XXXXXX";
static gw_cache *cache;
static gwm_snapshot *snap;

/* Load dir/gw.conf and make it current; start the guard on it. */
static void start(void)
{
	char path[600], err[512];
	gwm_config *c;

	snprintf(path, sizeof(path), "%s/gw.conf", dir);
	c = gwm_config_load(path, err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	snap = gwm_snapshot_new(c, cache, &mono);
	assert_non_null(snap);
	gwm_current_set(snap);
	if (gwm_flood_start(snap->conf, &mono, &wall, err, sizeof(err)) != 0)
		fail_msg("%s", err);
}

static void stop(void)
{
	gwm_flood_free();
	gwm_current_set(NULL);
	gwm_snapshot_unref(&snap);
}

static int setup(void **state)
{
	char path[600];
	FILE *f;

	(void)state;
	if (mkdtemp(dir) == NULL || (cache = gw_cache_new(100, NULL)) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/routes", dir);
	f = fopen(path, "w");
	fprintf(f, "example.com smtp:[127.0.0.1]:2525\n");
	fclose(f);
	snprintf(path, sizeof(path), "%s/gw.conf", dir);
	f = fopen(path, "w");
	fprintf(
	    f,
	    "routes = %s/routes\nlog = stderr\nlog_level = err\nflood_guard = yes\nflood_store = %s/store\n"
	    "flood_threshold = 2\nflood_half_life = 1d\nflood_window = 10s\nflood_floor_bounce = 5\n"
	    "flood_calm_windows = 2\nflood_client_probes = 2\n",
	    dir, dir);
	fclose(f);
	mono_now = 1000000;
	wall_now = 1700000000000LL;
	return 0;
}

static int teardown(void **state)
{
	char cmd[600];

	(void)state;
	gw_cache_free(&cache);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *mode(void)
{
	static char out[512];

	gwm_flood_control_mode("", out, sizeof(out));
	return out;
}

static void test_service(void **state)
{
	gwm_config *conf;
	gwm_flood_stats st;
	char out[512];
	int i;

	(void)state;
	start();
	conf = snap->conf;
	/* Learning: two messages make a correspondent, one does not. */
	gwm_flood_learn("192.0.2.0/24", NULL);
	assert_false(gwm_flood_is_corr(conf, "192.0.2.0/24", NULL));
	gwm_flood_learn("192.0.2.0/24", NULL);
	assert_true(gwm_flood_is_corr(conf, "192.0.2.0/24", NULL));
	gwm_flood_learn("198.51.100.0/24", NULL);
	gwm_flood_learn(NULL, "partner.example");
	gwm_flood_learn(NULL, "partner.example");
	assert_true(gwm_flood_is_corr(conf, NULL, "partner.example"));
	assert_false(gwm_flood_is_corr(conf, "198.51.100.0/24", "stranger.example"));

	/* Normal mode: nothing is deferred, no slot is counted. */
	assert_int_equal(gwm_flood_mail(conf, "203.0.113.0/24", 0, 1, ""), 0);
	assert_int_equal(gwm_flood_slot_take(conf, "203.0.113.0/24"), 0);

	/* Forced high. */
	gwm_flood_control_mode("high", out, sizeof(out));
	assert_non_null(strstr(out, "ok mode=high force=high"));
	assert_int_equal(gwm_flood_mail(conf, "203.0.113.0/24", 0, 1, ""), 1); /* stranger's bounce */
	assert_int_equal(gwm_flood_mail(conf, "192.0.2.0/24", 0, 1, ""), 0);   /* correspondent's */
	assert_int_equal(gwm_flood_mail(conf, "203.0.113.0/24", 1, 1, ""), 0); /* exempt client */
	assert_int_equal(gwm_flood_mail(conf, "203.0.113.0/24", 0, 0, "x.example"), 0); /* not a bounce */
	conf->opt.flood_defer_all = 1;
	assert_int_equal(gwm_flood_mail(conf, "203.0.113.0/24", 0, 0, "x.example"), 1);
	assert_int_equal(gwm_flood_mail(conf, "203.0.113.0/24", 0, 0, "partner.example"), 0);
	assert_int_equal(gwm_flood_mail(conf, "203.0.113.0/24", 0, 1, "partner.example"),
			 1); /* a bounce has no domain */
	conf->opt.flood_defer_all = 0;
	/* Slots: two per network at once in high-load mode. */
	assert_int_equal(gwm_flood_slot_take(conf, "203.0.113.0/24"), 1);
	assert_int_equal(gwm_flood_slot_take(conf, "203.0.113.0/24"), 1);
	assert_int_equal(gwm_flood_slot_take(conf, "203.0.113.0/24"), -1);
	assert_int_equal(gwm_flood_slot_take(conf, "192.0.2.0/24"), 1); /* another network is not starved */
	gwm_flood_slot_give("203.0.113.0/24");
	assert_int_equal(gwm_flood_slot_take(conf, "203.0.113.0/24"), 1);
	gwm_flood_slot_give("203.0.113.0/24");
	gwm_flood_slot_give("203.0.113.0/24");
	gwm_flood_slot_give("192.0.2.0/24");
	gwm_flood_stats_get(&st);
	assert_int_equal(st.deferred, 3);
	assert_int_equal(st.slot_limited, 1);

	/* Auto: the four bounces counted above (the exempt one is not) stay under the floor of 5. */
	gwm_flood_control_mode("auto", out, sizeof(out));
	gwm_flood_stats_get(&st);
	assert_false(st.high);
	assert_true(st.cur[GWM_FD_BOUNCE] == 4);
	mono_now += 20000; /* a new window starts clean */
	gwm_flood_tick();
	assert_non_null(strstr(mode(), "ok mode=normal force=auto"));
	/* Four bounces: under the floor; the fifth in the window: high-load mode. */
	for (i = 0; i < 4; i++)
		assert_int_equal(gwm_flood_mail(conf, "203.0.113.0/24", 0, 1, ""), 0);
	assert_non_null(strstr(mode(), "ok mode=normal"));
	assert_int_equal(gwm_flood_mail(conf, "203.0.113.0/24", 0, 1, ""), 1); /* it is deferred at once */
	assert_non_null(strstr(mode(), "ok mode=high force=auto"));
	/* The flood stops: the window with it, then two calm windows. */
	mono_now += 10000;
	gwm_flood_tick();
	assert_non_null(strstr(mode(), "ok mode=high"));
	mono_now += 10000;
	gwm_flood_tick();
	assert_non_null(strstr(mode(), "ok mode=high"));
	mono_now += 10000;
	gwm_flood_tick();
	assert_non_null(strstr(mode(), "ok mode=normal"));
	gwm_flood_control_mode("sideways", out, sizeof(out));
	assert_non_null(strstr(out, "error"));
	gwm_flood_control_mode("high", out, sizeof(out));
	stop();

	/* Restart half a day later on the same store. */
	wall_now += DAY / 2;
	start();
	conf = snap->conf;
	assert_non_null(strstr(mode(), "ok mode=high force=high"));
	assert_true(gwm_flood_is_corr(conf, "192.0.2.0/24", NULL) == 0); /* 2 -> 1.41: below 2 now */
	gwm_flood_learn("192.0.2.0/24", NULL);                           /* 2.41 */
	assert_true(gwm_flood_is_corr(conf, "192.0.2.0/24", NULL));
	assert_int_equal(gwm_flood_mail(conf, "192.0.2.0/24", 0, 1, ""), 0);
	assert_int_equal(gwm_flood_mail(conf, "203.0.113.0/24", 0, 1, ""), 1);
	stop();
	/* Off: every call is a no. */
	gwm_flood_control_mode("high", out, sizeof(out));
	assert_non_null(strstr(out, "error flood guard off"));
}

/* The summary lines' counts, added up (the sink runs in whichever thread logs). */
static atomic_ullong unlogged_sum;
static atomic_llong unlogged_last_ms;

static void summary_sink(int level, const char *line, void *ctx)
{
	unsigned long long n;
	long long span;
	const char *p = strstr(line, "action=defer stage=mail unlogged=");

	(void)level;
	(void)ctx;
	if (p != NULL && sscanf(p, "action=defer stage=mail unlogged=%llu ms=%lld", &n, &span) == 2) {
		atomic_fetch_add(&unlogged_sum, n);
		atomic_store(&unlogged_last_ms, span);
	}
}

/* The background thread may log a summary as well as gwm_flood_tick: wait (2 s at most) for the sum. */
static unsigned long long wait_sum(unsigned long long want)
{
	struct timespec ts = {0, 10000000};
	int i;

	for (i = 0; i < 200 && atomic_load(&unlogged_sum) != want; i++)
		nanosleep(&ts, NULL);
	return atomic_load(&unlogged_sum);
}

static void test_defer_log(void **state)
{
	int i, lines = 0;

	(void)state;
	gw_log_set_level(GW_LOG_INFO);
	gw_log_set_sink(summary_sink, NULL);
	mono_now = 5000000; /* the start of a second */
	start();
	/* Fifteen deferrals in one second: ten lines, five counted. */
	for (i = 0; i < 15; i++)
		lines += gwm_flood_defer_log();
	assert_int_equal(lines, GWM_FLOOD_DEFER_LINES_PER_S);
	gwm_flood_tick();
	assert_int_equal(wait_sum(5), 5);
	/* Three more in the same second: counted, but the next summary waits a second. */
	for (i = 0; i < 3; i++)
		assert_int_equal(gwm_flood_defer_log(), 0);
	gwm_flood_tick();
	assert_int_equal(atomic_load(&unlogged_sum), 5);
	mono_now += 1000;
	gwm_flood_tick();
	assert_int_equal(wait_sum(8), 8);
	assert_int_equal(atomic_load(&unlogged_last_ms), 1000);
	/* A new second: ten lines again; what is left over is logged at stop. */
	for (i = 0, lines = 0; i < 12; i++)
		lines += gwm_flood_defer_log();
	assert_int_equal(lines, GWM_FLOOD_DEFER_LINES_PER_S);
	stop();
	assert_int_equal(atomic_load(&unlogged_sum), 10);
	/* Off: every deferral would have its line (there are none to defer). */
	assert_int_equal(gwm_flood_defer_log(), 1);
	gw_log_set_sink(NULL, NULL);
	gw_log_set_level(GW_LOG_ERR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_service),
	    cmocka_unit_test(test_defer_log),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
