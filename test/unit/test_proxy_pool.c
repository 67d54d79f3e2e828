/*
 * test_proxy_pool.c - the outbound address pool: the blocklist verdict on a
 * reply, the choice of an address, retirement per destination, its expiry
 * (an injected clock), the choice when every address is retired, and the
 * tenant map (client network -> tenant -> its pool addresses); the tarpit
 * and throttle marks on destinations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pool.h"
#include "tenant_map.h"
#include "watch.h"

static int64_t fake_now = 1000000;
static int64_t fake_clock(void)
{
	return fake_now;
}

static char *words[] = {"listed", "blocked", "blacklist", "blocklist", "rbl", "spamhaus", "reputation"};
#define NW (sizeof(words) / sizeof(words[0]))

static gw_reply mk(int code, const char *enh, const char *text)
{
	gw_reply r;

	memset(&r, 0, sizeof(r));
	r.code = code;
	snprintf(r.enh, sizeof(r.enh), "%s", enh);
	snprintf(r.text, sizeof(r.text), "%s", text);
	r.text_len = strlen(r.text);
	r.nlines = 1;
	return r;
}

static void test_verdicts(void **state)
{
	gw_reply r;

	(void)state;
	r = mk(554, "5.7.1", "Service unavailable; Client host [127.0.0.2] blocked using zen.spamhaus.org");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 1);
	r = mk(550, "", "Your IP is LISTED at some RBL");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 1);
	r = mk(553, "5.7.1", "poor Reputation of the sending address");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 1);
	r = mk(550, "5.7.1", "first line\nsecond line: see blocklist.example");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 1);
	/* a 4xx or a 5xx without the code/enhanced code is not a verdict on the address */
	r = mk(451, "4.7.1", "listed, try later");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 0);
	r = mk(553, "5.1.8", "sender domain blocked");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 0);
	/* the right code without a word */
	r = mk(550, "5.1.1", "no such user");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 0);
	r = mk(554, "5.7.1", "Relay access denied");
	assert_int_equal(gwp_blocklisted(&r, words, NW), 0);
	/* no words: nothing matches */
	r = mk(554, "5.7.1", "blocked");
	assert_int_equal(gwp_blocklisted(&r, words, 0), 0);
}

static void test_choice_retire_expiry(void **state)
{
	const char *addrs[] = {"192.0.2.1", "192.0.2.2", "2001:db8::3"};
	gwp_pool *p = gwp_pool_new(fake_clock);
	char out[1024];
	int all = -1;

	(void)state;
	assert_non_null(p);
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "mx.a.test", &all), 0);
	assert_int_equal(all, 0);
	assert_int_equal(gwp_pool_choose(p, addrs, 0, "mx.a.test", &all), -1);
	assert_int_equal(gwp_pool_retire(p, "192.0.2.1", "mx.a.test", 3600000), 1);
	assert_int_equal(gwp_pool_retire(p, "192.0.2.1", "mx.a.test", 3600000), 0); /* already */
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "mx.a.test", &all), 1);
	assert_int_equal(all, 0);
	/* per destination: another one still gets the first address */
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "mx.b.test", &all), 0);
	assert_int_equal(gwp_pool_list(p, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "192.0.2.1 mx.a.test retired=0 left=3600"));
	/* just before the end, still retired; at the end, back in use */
	fake_now += 3600000 - 1;
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "mx.a.test", &all), 1);
	fake_now += 1;
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "mx.a.test", &all), 0);
	assert_int_equal(gwp_pool_list(p, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	gwp_pool_free(&p);
	assert_null(p);
}

static void test_all_retired(void **state)
{
	const char *addrs[] = {"192.0.2.1", "192.0.2.2", "192.0.2.3"};
	gwp_pool *p = gwp_pool_new(fake_clock);
	int all = 0;

	(void)state;
	assert_int_equal(gwp_pool_retire(p, "192.0.2.2", "d", 3600000), 1);
	fake_now += 10;
	assert_int_equal(gwp_pool_retire(p, "192.0.2.1", "d", 3600000), 1);
	fake_now += 10;
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "d", &all), 2);
	assert_int_equal(all, 0);
	assert_int_equal(gwp_pool_retire(p, "192.0.2.3", "d", 3600000), 1);
	/* every one retired: the one retired longest ago, flagged */
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "d", &all), 1);
	assert_int_equal(all, 1);
	/* retired again (its second verdict): now the next oldest */
	fake_now += 10;
	assert_int_equal(gwp_pool_retire(p, "192.0.2.2", "d", 3600000), 0);
	assert_int_equal(gwp_pool_choose(p, addrs, 3, "d", &all), 0);
	assert_int_equal(all, 1);
	gwp_pool_free(&p);
}

static void test_accepts_others(void **state)
{
	gwp_pool *p = gwp_pool_new(fake_clock);

	(void)state;
	assert_int_equal(gwp_pool_accepts_others(p, "192.0.2.1", "d", 60000), 0);
	gwp_pool_ok(p, "192.0.2.1", "d");
	/* its own success does not count, nor another destination's */
	assert_int_equal(gwp_pool_accepts_others(p, "192.0.2.1", "d", 60000), 0);
	assert_int_equal(gwp_pool_accepts_others(p, "192.0.2.2", "e", 60000), 0);
	assert_int_equal(gwp_pool_accepts_others(p, "192.0.2.2", "d", 60000), 1);
	fake_now += 60001; /* too long ago */
	assert_int_equal(gwp_pool_accepts_others(p, "192.0.2.2", "d", 60000), 0);
	gwp_pool_free(&p);
}

static void test_choose_other(void **state)
{
	gwp_pool *p = gwp_pool_new(fake_clock);
	const char *addrs[] = {"192.0.2.1", "192.0.2.2", "192.0.2.3"};

	(void)state;
	/* after a refusal from .1: the next address not retired */
	assert_int_equal(gwp_pool_choose_other(p, addrs, 3, "d", "192.0.2.1"), 1);
	assert_int_equal(gwp_pool_choose_other(p, addrs, 3, "d", "192.0.2.2"), 0);
	gwp_pool_retire(p, "192.0.2.2", "d", 60000);
	assert_int_equal(gwp_pool_choose_other(p, addrs, 3, "d", "192.0.2.1"), 2);
	assert_int_equal(gwp_pool_choose_other(p, addrs, 3, "e", "192.0.2.1"), 1); /* per destination */
	gwp_pool_retire(p, "192.0.2.3", "d", 60000);
	/* only retired ones left: none (the retry is for a usable address) */
	assert_int_equal(gwp_pool_choose_other(p, addrs, 3, "d", "192.0.2.1"), -1);
	assert_int_equal(gwp_pool_choose_other(p, addrs, 1, "d", "192.0.2.1"), -1);
	fake_now += 60000;
	assert_int_equal(gwp_pool_choose_other(p, addrs, 3, "d", "192.0.2.1"), 1);
	gwp_pool_free(&p);
}

/* A blocklist verdict moves the session while another of the tenant's addresses is left, else it is the
 * truth. */
static void test_verdict_move(void **state)
{
	gwp_pool *p = gwp_pool_new(fake_clock);
	const char *addrs[] = {"192.0.2.1", "192.0.2.2"};
	gw_reply bl =
		     mk(554, "5.7.1", "Client host [192.0.2.1] listed at bl.example\nsee https://bl.example"),
		 out;
	gw_reply user = mk(550, "5.1.1", "no such user");
	int newly = -1;

	(void)state;
	bl.nlines = 2;
	/* not a verdict on the address: nothing retired, the reply goes as it is */
	assert_int_equal(gwp_pool_verdict(p, addrs, 2, "d", "192.0.2.1", &user, words, NW, 60000, &newly),
			 GWP_POOL_PASS);
	assert_int_equal(newly, 0);
	assert_int_equal(gwp_pool_is_retired(p, "192.0.2.1", "d"), 0);
	/* .1 blocklisted, .2 left: move (and .1 is retired, once) */
	assert_int_equal(gwp_pool_verdict(p, addrs, 2, "d", "192.0.2.1", &bl, words, NW, 60000, &newly),
			 GWP_POOL_MOVE);
	assert_int_equal(newly, 1);
	assert_int_equal(gwp_pool_is_retired(p, "192.0.2.1", "d"), 1);
	assert_int_equal(gwp_pool_is_retired(p, "192.0.2.1", "e"), 0); /* per destination */
	assert_int_equal(gwp_pool_verdict(p, addrs, 2, "d", "192.0.2.1", &bl, words, NW, 60000, &newly),
			 GWP_POOL_MOVE); /* the same transaction's next RCPT */
	assert_int_equal(newly, 0);
	/* a tenant with one address: nothing left, the verdict is the truth */
	assert_int_equal(gwp_pool_verdict(p, addrs, 1, "e", "192.0.2.1", &bl, words, NW, 60000, &newly),
			 GWP_POOL_LAST);
	assert_int_equal(newly, 1);
	/* .2 blocklisted too: the last one */
	assert_int_equal(gwp_pool_verdict(p, addrs, 2, "d", "192.0.2.2", &bl, words, NW, 60000, &newly),
			 GWP_POOL_LAST);
	/* .1's retirement over: .2's verdict moves the session back to .1 */
	fake_now += 60000;
	assert_int_equal(gwp_pool_is_retired(p, "192.0.2.1", "d"), 0);
	assert_int_equal(gwp_pool_verdict(p, addrs, 2, "d", "192.0.2.2", &bl, words, NW, 60000, &newly),
			 GWP_POOL_MOVE);
	/* the tenant's answer: 451 4.7.1 with the destination's text, every line */
	gwp_pool_defer_reply(&bl, &out);
	assert_int_equal(out.code, 451);
	assert_string_equal(out.enh, "4.7.1");
	assert_string_equal(out.text, bl.text);
	assert_int_equal(out.nlines, 2);
	assert_int_equal(out.text_len, bl.text_len);
	gwp_pool_free(&p);
}

static void test_table_full(void **state)
{
	gwp_pool *p = gwp_pool_new(fake_clock);
	const char *addrs[] = {"192.0.2.1", "192.0.2.2"};
	char dest[32];
	int i, all;

	(void)state;
	/* the newest retirement survives a table overflowing with successes */
	assert_int_equal(gwp_pool_retire(p, "192.0.2.1", "keep", 3600000), 1);
	for (i = 0; i < GWP_POOL_ENTRIES + 10; i++) {
		snprintf(dest, sizeof(dest), "d%d", i);
		fake_now++;
		gwp_pool_ok(p, "192.0.2.1", dest);
	}
	assert_int_equal(gwp_pool_choose(p, addrs, 2, "keep", &all), 1);
	gwp_pool_free(&p);
}

static void test_tenant_map(void **state)
{
	static const char text[] = "# tenants\n"
				   "10.1.0.0/16   acme  192.0.2.10,192.0.2.11\n"
				   "10.1.2.0/24   sub   192.0.2.12   # longer prefix\n"
				   "\n"
				   "fd00:1::/48   six   2001:db8::10\n";
	char err[256];
	gwp_tenant_map *m = gwp_tenant_map_parse(text, sizeof(text) - 1, "t", err, sizeof(err));
	const gwp_tenant *t;

	(void)state;
	assert_non_null(m);
	assert_int_equal(gwp_tenant_map_count(m), 3);
	assert_non_null(t = gwp_tenant_map_lookup(m, "10.1.9.9"));
	assert_string_equal(t->name, "acme");
	assert_int_equal(t->naddr, 2);
	assert_string_equal(t->addr[0], "192.0.2.10");
	assert_string_equal(t->addr[1], "192.0.2.11");
	assert_int_equal(t->line, 2);
	assert_non_null(t = gwp_tenant_map_lookup(m, "10.1.2.3"));
	assert_string_equal(t->name, "sub");
	assert_non_null(t = gwp_tenant_map_lookup(m, "fd00:1:0:5::1"));
	assert_string_equal(t->name, "six");
	assert_null(gwp_tenant_map_lookup(m, "10.2.0.1"));
	assert_null(gwp_tenant_map_lookup(m, "fd00:2::1"));
	assert_null(gwp_tenant_map_lookup(m, "not-an-address"));
	assert_null(gwp_tenant_map_lookup(NULL, "10.1.0.1"));
	assert_non_null(gwp_tenant_map_get(m, 2));
	assert_null(gwp_tenant_map_get(m, 3));
	gwp_tenant_map_free(&m);
	assert_null(m);
}

static void test_tenant_map_errors(void **state)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
	    {"10.0.0.0/8 acme\n", "t:1: want \"NETWORK[/PREFIX] TENANT ADDRESS[,ADDRESS...]\""},
	    {"\n10.0.0.0/33 acme 192.0.2.1\n", "t:2: 10.0.0.0/33: not an address or address/prefix"},
	    {"10.0.0.0/8 acme 192.0.2.1,mail.example\n", "t:1: not a numeric address (mail.example)"},
	    {"10.0.0.0/8 acme ,\n", "t:1: no address"},
	    {"10.0.0.0/8 a b c\n", "t:1: c: want rate=N"},
	    {"10.0.0.0/8 a b c d\n", "t:1: want"},
	};
	size_t i;
	char err[256];

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_null(gwp_tenant_map_parse(bad[i].text, strlen(bad[i].text), "t", err, sizeof(err)));
		if (strstr(err, bad[i].want) == NULL)
			fail_msg("%s: got \"%s\", want \"%s\"", bad[i].text, err, bad[i].want);
	}
}

static void test_throttle_verdicts(void **state)
{
	static char *tw[] = {"rate", "throttl", "limit", "many"};
	gw_reply r;

	(void)state;
	r = mk(421, "4.7.0", "Service not available, closing transmission channel");
	assert_int_equal(gwp_throttled(&r, tw, 4), 1);
	r = mk(451, "4.7.1", "Rate limit exceeded, try again later");
	assert_int_equal(gwp_throttled(&r, tw, 4), 1);
	r = mk(450, "4.2.1", "Too MANY connections from your host");
	assert_int_equal(gwp_throttled(&r, tw, 4), 1);
	r = mk(452, "4.3.1", "you are being THROTTLED");
	assert_int_equal(gwp_throttled(&r, tw, 4), 1);
	/* a 4xx without a word, a 5xx with one: not a rate limit */
	r = mk(451, "4.2.0", "greylisted, try again later");
	assert_int_equal(gwp_throttled(&r, tw, 4), 0);
	r = mk(550, "5.7.1", "rate limit exceeded");
	assert_int_equal(gwp_throttled(&r, tw, 4), 0);
	r = mk(250, "2.1.5", "ok, many thanks");
	assert_int_equal(gwp_throttled(&r, tw, 4), 0);
	r = mk(451, "4.7.1", "rate limit");
	assert_int_equal(gwp_throttled(&r, tw, 0), 0);
}

static void test_watch_marks(void **state)
{
	gwp_watch *w = gwp_watch_new(fake_clock);
	char out[1024];

	(void)state;
	assert_non_null(w);
	assert_int_equal(gwp_watch_marked(w, "192.0.2.25"), 0);
	assert_int_equal(gwp_watch_mark(w, "192.0.2.25", GWP_MARK_TARPIT, "31000ms for 250 ok", 60000), 1);
	/* another kind while marked: a mark of its own (the first of its kind this period) */
	assert_int_equal(gwp_watch_mark(w, "192.0.2.25", GWP_MARK_THROTTLE, "421 4.7.0 busy", 60000), 1);
	assert_int_equal(gwp_watch_mark(w, "192.0.2.25", GWP_MARK_THROTTLE, "421 4.7.0 busy", 60000), 0);
	assert_int_equal(gwp_watch_marked(w, "192.0.2.25"), 1);
	assert_int_equal(gwp_watch_marked(w, "192.0.2.26"), 0);
	assert_int_equal(gwp_watch_list(w, out, sizeof(out)), 1);
	assert_string_equal(out, "192.0.2.25 tarpit=1 throttle=1 left=60 last=\"421 4.7.0 busy\"\n");
	/* the mark lasts mark_time after the last event */
	fake_now += 59999;
	assert_int_equal(gwp_watch_marked(w, "192.0.2.25"), 1);
	fake_now += 1;
	assert_int_equal(gwp_watch_marked(w, "192.0.2.25"), 0);
	assert_int_equal(gwp_watch_list(w, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	/* marked again after it ended: a fresh mark, the counts kept */
	assert_int_equal(gwp_watch_mark(w, "192.0.2.25", GWP_MARK_TARPIT, "slow", 60000), 1);
	assert_int_equal(gwp_watch_list(w, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "tarpit=2 throttle=1 "));
	gwp_watch_free(&w);
	assert_null(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verdicts),          cmocka_unit_test(test_choice_retire_expiry),
	    cmocka_unit_test(test_all_retired),       cmocka_unit_test(test_accepts_others),
	    cmocka_unit_test(test_choose_other),      cmocka_unit_test(test_verdict_move),
	    cmocka_unit_test(test_table_full),        cmocka_unit_test(test_tenant_map),
	    cmocka_unit_test(test_tenant_map_errors), cmocka_unit_test(test_throttle_verdicts),
	    cmocka_unit_test(test_watch_marks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
