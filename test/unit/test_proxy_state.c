/*
 * test_proxy_state.c - gw-proxy's state file: retirements and marks through
 * the text and back (times moved from the tables' clocks to the wall clock
 * and back), entries that ended while the proxy was down, bad and truncated
 * files (refused whole, nothing loaded), the atomic save (mode 0600, no
 * temporary left, nothing written while nothing changed), the load of a
 * missing or bad file, and the periodic saver.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "gw/time.h"
#include "state_file.h"

static int64_t t_old = 5000000, t_new = 123; /* the tables' clocks before and after the "restart" */
static int64_t wall_now = 1800000000000LL;   /* the wall clock, ms */
static int64_t clock_old(void)
{
	return t_old;
}
static int64_t clock_new(void)
{
	return t_new;
}
static int64_t wall(void)
{
	return wall_now;
}

/* The text for a pool and a watch on the old clock: two retirements, one mark. */
static char *sample(size_t *len)
{
	gwp_pool *p = gwp_pool_new(clock_old);
	gwp_watch *w = gwp_watch_new(clock_old);
	char *text;

	assert_non_null(p);
	assert_non_null(w);
	assert_int_equal(gwp_pool_retire(p, "192.0.2.1", "mx.example", 3600000), 1);
	assert_int_equal(gwp_pool_retire(p, "2001:db8::1", "198.51.100.7", 60000), 1);
	assert_int_equal(gwp_watch_mark(w, "tarpit.example", GWP_MARK_TARPIT, "4000ms for 250 ok", 600000),
			 1);
	assert_int_equal(gwp_watch_mark(w, "tarpit.example", GWP_MARK_THROTTLE, "421 slow down", 1200000), 1);
	assert_int_equal(gwp_state_text(p, w, wall_now, &text, len, NULL), 0);
	gwp_pool_free(&p);
	gwp_watch_free(&w);
	return text;
}

static void test_round_trip(void **state)
{
	char *text, err[256], list[1024];
	size_t len;
	gwp_state_counts c;
	gwp_pool *p;
	gwp_watch *w;

	(void)state;
	text = sample(&len);
	assert_non_null(strstr(text, "gw-proxy-state 1\n"));
	assert_non_null(strstr(text, "retired 192.0.2.1 mx.example 1800000000000 1800003600000\n"));
	assert_non_null(strstr(text, "mark tarpit.example 1800000000000 1800001200000 1 1 421 slow down\n"));
	assert_non_null(strstr(text, "\nend 3\n"));

	/* ten minutes later, on a process whose monotonic clock started again */
	wall_now += 600000;
	p = gwp_pool_new(clock_new);
	w = gwp_watch_new(clock_new);
	assert_int_equal(gwp_state_parse(text, len, wall_now, 0, 0, p, w, &c, err, sizeof(err)), 0);
	assert_int_equal(c.retired, 1); /* the 60 s one ended while "down" */
	assert_int_equal(c.marks, 1);
	assert_int_equal(c.expired, 1);
	assert_int_equal(gwp_pool_is_retired(p, "192.0.2.1", "mx.example"), 1);
	assert_int_equal(gwp_pool_is_retired(p, "2001:db8::1", "198.51.100.7"), 0);
	assert_int_equal(gwp_pool_list(p, list, sizeof(list)), 1);
	assert_string_equal(list, "192.0.2.1 mx.example retired=600 left=3000\n");
	assert_int_equal(gwp_watch_marked(w, "tarpit.example"), 1);
	assert_int_equal(gwp_watch_list(w, list, sizeof(list)), 1);
	assert_string_equal(list, "tarpit.example tarpit=1 throttle=1 left=600 last=\"421 slow down\"\n");
	/* a loaded mark is not a new one: another slow reply only extends it (not counted, not logged) */
	{
		gwp_pool *p2 = gwp_pool_new(clock_new);
		gwp_watch *w2 = gwp_watch_new(clock_new);
		assert_int_equal(gwp_state_parse(text, len, wall_now, 0, 0, p2, w2, &c, err, sizeof(err)), 0);
		assert_int_equal(gwp_watch_mark(w2, "tarpit.example", GWP_MARK_TARPIT, "slow", 1200000), 0);
		assert_int_equal(gwp_watch_mark(w2, "tarpit.example", GWP_MARK_THROTTLE, "421", 1200000), 0);
		gwp_pool_free(&p2);
		gwp_watch_free(&w2);
	}
	/* a choice after the load skips the retired address */
	{
		const char *addrs[] = {"192.0.2.1", "192.0.2.2"};
		int fb;
		assert_int_equal(gwp_pool_choose(p, addrs, 2, "mx.example", &fb), 1);
		assert_int_equal(fb, 0);
	}
	/* the entries run out on the new clock when their wall-clock time is up */
	t_new += 600000;
	assert_int_equal(gwp_watch_marked(w, "tarpit.example"), 0);
	assert_int_equal(gwp_pool_is_retired(p, "192.0.2.1", "mx.example"), 1);
	t_new += 2400000;
	assert_int_equal(gwp_pool_is_retired(p, "192.0.2.1", "mx.example"), 0);

	/* an hour and more later nothing is left to load */
	gwp_pool_free(&p);
	gwp_watch_free(&w);
	p = gwp_pool_new(clock_new);
	w = gwp_watch_new(clock_new);
	assert_int_equal(gwp_state_parse(text, len, wall_now + 3600000, 0, 0, p, w, &c, err, sizeof(err)), 0);
	assert_int_equal(c.retired + c.marks, 0);
	assert_int_equal(c.expired, 3);
	assert_int_equal(gwp_pool_list(p, list, sizeof(list)), 0);
	assert_int_equal(gwp_watch_list(w, list, sizeof(list)), 0);
	wall_now -= 600000;
	gwp_pool_free(&p);
	gwp_watch_free(&w);
	free(text);
}

/* A wall clock set back a day since the save: the entries run no longer than pool_retire_time / mark_time. */
static void test_caps(void **state)
{
	char *text, err[256], list[1024];
	size_t len;
	gwp_state_counts c;
	gwp_pool *p = gwp_pool_new(clock_new);
	gwp_watch *w = gwp_watch_new(clock_new);

	(void)state;
	text = sample(&len);
	assert_int_equal(
	    gwp_state_parse(text, len, wall_now - 86400000, 1800000, 300000, p, w, &c, err, sizeof(err)), 0);
	assert_int_equal(c.retired, 2);
	assert_int_equal(c.marks, 1);
	assert_int_equal(c.capped, 3);
	assert_int_equal(gwp_pool_list(p, list, sizeof(list)), 2);
	assert_string_equal(list, "192.0.2.1 mx.example retired=0 left=1800\n"
				  "2001:db8::1 198.51.100.7 retired=0 left=1800\n");
	assert_int_equal(gwp_watch_list(w, list, sizeof(list)), 1);
	assert_string_equal(list, "tarpit.example tarpit=1 throttle=1 left=300 last=\"421 slow down\"\n");
	gwp_pool_free(&p);
	gwp_watch_free(&w);
	/* within the caps nothing is cut */
	p = gwp_pool_new(clock_new);
	w = gwp_watch_new(clock_new);
	assert_int_equal(gwp_state_parse(text, len, wall_now, 3600000, 1200000, p, w, &c, err, sizeof(err)),
			 0);
	assert_int_equal(c.capped, 0);
	assert_int_equal(gwp_pool_list(p, list, sizeof(list)), 2);
	assert_string_equal(list, "192.0.2.1 mx.example retired=0 left=3600\n"
				  "2001:db8::1 198.51.100.7 retired=0 left=60\n");
	gwp_pool_free(&p);
	gwp_watch_free(&w);
	free(text);
}

/* Every proper prefix of a good file is refused: a truncated file never loads half. */
static void test_truncated(void **state)
{
	char *text, err[256];
	size_t len, k;
	gwp_state_counts c;
	gwp_pool *p = gwp_pool_new(clock_new);
	gwp_watch *w = gwp_watch_new(clock_new);
	char list[256];

	(void)state;
	text = sample(&len);
	for (k = 0; k < len; k++) {
		if (gwp_state_parse(text, k, wall_now, 0, 0, p, w, &c, err, sizeof(err)) != -1)
			fail_msg("a prefix of %zu of %zu bytes loaded", k, len);
		assert_true(strncmp(err, "line ", 5) == 0);
	}
	assert_int_equal(gwp_pool_list(p, list, sizeof(list)), 0);
	assert_int_equal(gwp_watch_list(w, list, sizeof(list)), 0);
	assert_int_equal(gwp_state_parse(text, len, wall_now, 0, 0, p, w, &c, err, sizeof(err)), 0);
	gwp_pool_free(&p);
	gwp_watch_free(&w);
	free(text);
}

static const struct {
	const char *text, *want;
} bad_files[] = {
    {"", "line 0: empty file"},
    {"gw-proxy-state 2\nend 0\n", "line 1: a version this gw-proxy does not know"},
    {"hello\n", "line 1: not a gw-proxy state file"},
    {"gw-proxy-state 1\n", "line 1: no end line (truncated?)"},
    {"gw-proxy-state 1\nend 0", "line 2: no newline at the end (truncated?)"},
    {"gw-proxy-state 1\nend 1\n", "line 2: end: the number of entries differs (truncated?)"},
    {"gw-proxy-state 1\nend 0\nend 0\n", "line 3: text after the end line"},
    {"gw-proxy-state 1\nend -1\n", "line 2: end: want the number of entries"},
    {"gw-proxy-state 1\nend 00\n", "line 2: end: want the number of entries"},
    {"gw-proxy-state 1\nfoo bar\nend 1\n", "line 2: unknown line"},
    {"gw-proxy-state 1\nretired 192.0.2.1 mx 1800000000000 1900000000000\nretired mail.example mx 1 2\nend "
     "2\n",
     "line 3: retired: want a numeric IPv4 or IPv6 address"},
    {"gw-proxy-state 1\nretired 192.0.2.1  mx 1 2\nend 1\n", "line 2: retired: want a destination"},
    {"gw-proxy-state 1\nretired 192.0.2.1 mx 1 x\nend 1\n",
     "line 2: retired: want two times in ms since the epoch"},
    {"gw-proxy-state 1\nretired 192.0.2.1 mx 1 99999999999999999999\nend 1\n",
     "line 2: retired: want two times in ms since the epoch"},
    {"gw-proxy-state 1\nretired 192.0.2.1 mx 1 10000000000000000\nend 1\n",
     "line 2: retired: want two times in ms since the epoch"},
    {"gw-proxy-state 1\nretired 192.0.2.1 mx 1 2 3\nend 1\n", "line 2: retired: text after the last field"},
    {"gw-proxy-state 1\nretired 192.0.2.1 mx 5 2\nend 1\n", "line 2: retired: retired after its end"},
    {"gw-proxy-state 1\nretired 192.0.2.1 mx\t1 2\nend 1\n", "line 2: not printable ASCII"},
    {"gw-proxy-state 1\r\nend 0\r\n", "line 1: not printable ASCII"},
    {"gw-proxy-state 1\nmark mx 1 2 3\nend 1\n", "line 2: mark: want the tarpit and throttle counts"},
    {"gw-proxy-state 1\nmark mx 1 2 3 +4\nend 1\n", "line 2: mark: want the tarpit and throttle counts"},
    {"gw-proxy-state 1\nmark mx 3 2 0 0\nend 1\n", "line 2: mark: marked after its end"},
    {"gw-proxy-state 1\nmark  1 2 0 0\nend 1\n", "line 2: mark: want a destination"},
};

/* A good entry before the bad line is not loaded either: all or nothing. */
static void test_bad_files(void **state)
{
	char err[256], list[256];
	size_t i;
	gwp_state_counts c;
	gwp_pool *p = gwp_pool_new(clock_new);
	gwp_watch *w = gwp_watch_new(clock_new);

	(void)state;
	for (i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
		err[0] = '\0';
		if (gwp_state_parse(bad_files[i].text, strlen(bad_files[i].text), wall_now, 0, 0, p, w, &c,
				    err, sizeof(err)) != -1)
			fail_msg("case %zu loaded", i);
		if (strcmp(err, bad_files[i].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, bad_files[i].want);
	}
	assert_int_equal(gwp_pool_list(p, list, sizeof(list)), 0);
	assert_int_equal(gwp_watch_list(w, list, sizeof(list)), 0);
	/* a NUL inside, a line beyond the limit */
	{
		static const char nul[] = "gw-proxy-state 1\nend\0 0\n";
		char *big = malloc(GWP_STATE_MAX_LINE + 64);
		assert_int_equal(
		    gwp_state_parse(nul, sizeof(nul) - 1, wall_now, 0, 0, p, w, &c, err, sizeof(err)), -1);
		assert_string_equal(err, "line 2: not printable ASCII");
		snprintf(big, GWP_STATE_MAX_LINE + 64, "gw-proxy-state 1\nmark mx 1 2 0 0 %0*d\nend 1\n",
			 GWP_STATE_MAX_LINE, 7);
		assert_int_equal(
		    gwp_state_parse(big, strlen(big), wall_now, 0, 0, p, w, &c, err, sizeof(err)), -1);
		assert_string_equal(err, "line 2: line too long");
		free(big);
	}
	/* good lines, well formed but odd: a mark without reply text, duplicates (the later end wins) */
	{
		static const char ok[] = "gw-proxy-state 1\n"
					 "mark mx.example 1800000000000 1800000060000 0 2\n"
					 "retired 192.0.2.9 mx.example 1799999990000 1800000010000\n"
					 "retired 192.0.2.9 mx.example 1799999990000 1800000020000\n"
					 "end 3\n";
		assert_int_equal(
		    gwp_state_parse(ok, sizeof(ok) - 1, wall_now, 0, 0, p, w, &c, err, sizeof(err)), 0);
		assert_int_equal(c.retired, 2);
		assert_int_equal(c.marks, 1);
		assert_int_equal(gwp_pool_list(p, list, sizeof(list)), 1);
		assert_string_equal(list, "192.0.2.9 mx.example retired=10 left=20\n");
		assert_int_equal(gwp_watch_list(w, list, sizeof(list)), 1);
		assert_string_equal(list, "mx.example tarpit=0 throttle=2 left=60 last=\"\"\n");
	}
	gwp_pool_free(&p);
	gwp_watch_free(&w);
}

/* What the parser would refuse never reaches the file: a destination with a space, a reply with a newline. */
static void test_writer_keeps_file_loadable(void **state)
{
	char *text, err[256], list[256];
	size_t len;
	gwp_state_counts c;
	gwp_pool *p = gwp_pool_new(clock_old);
	gwp_watch *w = gwp_watch_new(clock_old);

	(void)state;
	gwp_pool_retire(p, "192.0.2.1", "bad dest", 60000);
	gwp_pool_retire(p, "192.0.2.1", "good.example", 60000);
	gwp_watch_mark(w, "good.example", GWP_MARK_TARPIT, "line1\nline2\x01", 60000);
	assert_int_equal(gwp_state_text(p, w, wall_now, &text, &len, NULL), 0);
	gwp_pool_free(&p);
	gwp_watch_free(&w);
	p = gwp_pool_new(clock_new);
	w = gwp_watch_new(clock_new);
	assert_int_equal(gwp_state_parse(text, len, wall_now, 0, 0, p, w, &c, err, sizeof(err)), 0);
	assert_int_equal(c.retired, 1);
	assert_int_equal(gwp_watch_list(w, list, sizeof(list)), 1);
	assert_string_equal(list, "good.example tarpit=1 throttle=0 left=60 last=\"line1?line2?\"\n");
	gwp_pool_free(&p);
	gwp_watch_free(&w);
	free(text);
}

static char dir[256], path[300];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_proxy_state.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/state", dir);
	return 0;
}

static int teardown_dir(void **state)
{
	char p[400];

	(void)state;
	unlink(path);
	snprintf(p, sizeof(p), "%s.bad", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s.tmp", path);
	unlink(p);
	rmdir(dir);
	return 0;
}

static void test_save_load(void **state)
{
	struct stat st;
	char tmp[420], badp[400], list[256];
	gwp_pool *p = gwp_pool_new(clock_old), *p2;
	gwp_watch *w = gwp_watch_new(clock_old), *w2;
	gwp_state *s = gwp_state_new(path, p, w, wall), *s2;
	FILE *f;

	(void)state;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	snprintf(badp, sizeof(badp), "%s.bad", path);
	assert_non_null(s);
	assert_int_equal(gwp_state_load(s), 0); /* missing: fine, empty */
	assert_int_equal(gwp_state_save(s, 0), 1);
	assert_int_equal(gwp_state_save(s, 0), 0); /* nothing changed: nothing written */
	gwp_pool_retire(p, "192.0.2.1", "mx.example", 3600000);
	t_old += 1000; /* time alone changes nothing */
	wall_now += 1000;
	assert_int_equal(gwp_state_save(s, 0), 1);
	assert_int_equal(gwp_state_save(s, 0), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(access(tmp, F_OK), -1);
	gwp_watch_mark(w, "tarpit.example", GWP_MARK_TARPIT, "slow", 60000);
	gwp_state_free(&s); /* the last save at a clean stop */
	assert_null(s);

	p2 = gwp_pool_new(clock_new);
	w2 = gwp_watch_new(clock_new);
	s2 = gwp_state_new(path, p2, w2, wall);
	assert_int_equal(gwp_state_load(s2), 1);
	assert_int_equal(gwp_pool_is_retired(p2, "192.0.2.1", "mx.example"), 1);
	assert_int_equal(gwp_watch_marked(w2, "tarpit.example"), 1);
	assert_int_equal(gwp_state_save(s2, 0), 0); /* what was loaded is on disk already */
	gwp_state_free(&s2);
	gwp_pool_free(&p2);
	gwp_watch_free(&w2);

	/* a bad file: -1, set aside, nothing loaded; the next save writes a good one */
	assert_non_null(f = fopen(path, "w"));
	fputs("gw-proxy-state 1\nretired 192.0.2.1 mx.example 1800000000000 1900000000000\n", f);
	fclose(f);
	p2 = gwp_pool_new(clock_new);
	w2 = gwp_watch_new(clock_new);
	s2 = gwp_state_new(path, p2, w2, wall);
	assert_int_equal(gwp_state_load(s2), -1);
	assert_int_equal(gwp_pool_list(p2, list, sizeof(list)), 0);
	assert_int_equal(access(badp, F_OK), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(gwp_state_save(s2, 0), 1);
	assert_int_equal(access(path, F_OK), 0);
	gwp_state_free(&s2);
	gwp_pool_free(&p2);
	gwp_watch_free(&w2);

	/* a file that can be neither read (a symbolic link: O_NOFOLLOW) nor moved aside (a non-empty
	 * directory at PATH.bad): never written over */
	unlink(path);
	unlink(badp);
	assert_int_equal(symlink("/dev/null", path), 0);
	assert_int_equal(mkdir(badp, 0700), 0);
	snprintf(tmp, sizeof(tmp), "%s/x", badp);
	assert_non_null(f = fopen(tmp, "w"));
	fclose(f);
	p2 = gwp_pool_new(clock_new);
	w2 = gwp_watch_new(clock_new);
	s2 = gwp_state_new(path, p2, w2, wall);
	assert_int_equal(gwp_state_load(s2), -1);
	gwp_pool_retire(p2, "192.0.2.1", "mx.example", 3600000);
	assert_int_equal(gwp_state_save(s2, 1), -1);
	gwp_state_free(&s2);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	unlink(path);
	unlink(tmp);
	rmdir(badp);
	gwp_pool_free(&p2);
	gwp_watch_free(&w2);

	/* a directory that is not there: the save fails, and says so with -1 */
	s2 = gwp_state_new("/nonexistent-dir/state", p, w, wall);
	assert_int_equal(gwp_state_save(s2, 1), -1);
	assert_int_equal(gwp_state_load(s2), 0);
	gwp_state_free(&s2);
	gwp_pool_free(&p);
	gwp_watch_free(&w);
}

static void test_saver_thread(void **state)
{
	gwp_pool *p = gwp_pool_new(clock_old);
	gwp_watch *w = gwp_watch_new(clock_old);
	gwp_state *s = gwp_state_new(path, p, w, wall);
	int64_t t0;
	int seen = 0;

	(void)state;
	unlink(path);
	assert_int_equal(gwp_state_start(s, 20), 0);
	gwp_pool_retire(p, "192.0.2.1", "mx.example", 3600000);
	for (t0 = gw_now_ms();
	     gw_now_ms() - t0 < 30000 && !seen;) { /* bounded: the thread saves within 20 ms */
		FILE *f = fopen(path, "r");
		char buf[512];
		size_t n;
		if (f != NULL) {
			n = fread(buf, 1, sizeof(buf) - 1, f);
			buf[n] = '\0';
			fclose(f);
			seen = strstr(buf, "retired 192.0.2.1 mx.example ") != NULL;
		}
		if (!seen)
			usleep(10000);
	}
	assert_true(seen);
	gwp_state_free(&s);
	gwp_pool_free(&p);
	gwp_watch_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_caps),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_bad_files),
	    cmocka_unit_test(test_writer_keeps_file_loadable),
	    cmocka_unit_test_setup_teardown(test_save_load, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_saver_thread, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
