/*
 * test_dir_check.c - gw-milter's decision per check mode (milter/dir_check.c
 * and reply.c, linked from gw_milter_core): every mode against every
 * directory answer and call-ahead verdict, through fake sources that record
 * whether they were asked. The table is gw-milter(8)'s "Decisions": in
 * directory+callahead mode an unknown recipient costs no probe, an existing
 * one is still probed live, and a directory that cannot answer hands over to
 * the call-ahead; in directory mode a temporary answer is 4xx, never 5xx.
 * Also the directory_routes/directory_mode lookup and the directory_urls
 * file of milter/conf.c (a route's own directory in the snapshot).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "milter/conf.h"
#include "milter/dir_check.h"
#include "milter/smfi_seam.h"

int gwm_setreply(SMFICTX *ctx, const char *rcode, const char *xcode, const char *text)
{
	(void)ctx;
	(void)rcode;
	(void)xcode;
	(void)text;
	return MI_SUCCESS;
}

/* --- the fake sources ------------------------------------------------------ */

typedef struct fake {
	gw_dir_answer dir;
	gw_verdict ca;
	int ca_code;
	int dir_calls, ca_calls;
	char last_rcpt[128];
} fake;

static gw_dir_answer fake_dir(void *vctx, const char *rcpt, gw_dir_result *r)
{
	fake *f = vctx;

	f->dir_calls++;
	snprintf(f->last_rcpt, sizeof(f->last_rcpt), "%s", rcpt);
	memset(r, 0, sizeof(*r));
	r->answer = f->dir;
	r->source = GW_DIR_SRC_LDAP;
	if (f->dir == GW_DIR_TEMPORARY)
		snprintf(r->text, sizeof(r->text), "timeout");
	return f->dir;
}

static gw_verdict fake_ca(void *vctx, const char *rcpt, gw_ca_result *r)
{
	fake *f = vctx;

	f->ca_calls++;
	snprintf(f->last_rcpt, sizeof(f->last_rcpt), "%s", rcpt);
	memset(r, 0, sizeof(*r));
	r->verdict = f->ca;
	r->source = GW_CA_SRC_POOLED;
	r->code = f->ca_code;
	r->status = f->ca_code != 0 ? GW_OK : GW_E_REFUSED;
	return f->ca;
}

typedef struct row {
	gwm_mode mode;
	gw_dir_answer dir;
	gw_verdict ca;
	int ca_code;
	/* want */
	int dir_asked, ca_asked;
	sfsistat action;
	const char *rcode, *xcode, *source;
} row;

#define E   GW_DIR_EXISTS
#define U   GW_DIR_UNKNOWN
#define T   GW_DIR_TEMPORARY
#define ACC GW_VERDICT_ACCEPT
#define REJ GW_VERDICT_REJECT
#define TMP GW_VERDICT_TEMPFAIL

static const row rows[] = {
    /* callahead: the directory is never asked */
    {GWM_MODE_CALLAHEAD, U, ACC, 250, 0, 1, SMFIS_CONTINUE, "", "", "pooled"},
    {GWM_MODE_CALLAHEAD, E, REJ, 550, 0, 1, SMFIS_REJECT, "550", "5.1.1", "pooled"},
    {GWM_MODE_CALLAHEAD, E, TMP, 0, 0, 1, SMFIS_TEMPFAIL, "451", "4.4.1", "pooled"},
    /* directory: the directory alone */
    {GWM_MODE_DIRECTORY, E, REJ, 550, 1, 0, SMFIS_CONTINUE, "", "", "directory"},
    {GWM_MODE_DIRECTORY, U, ACC, 250, 1, 0, SMFIS_REJECT, "550", "5.1.1", "directory"},
    {GWM_MODE_DIRECTORY, T, ACC, 250, 1, 0, SMFIS_TEMPFAIL, "451", "4.4.3", "directory"},
    /* directory+callahead */
    {GWM_MODE_BOTH, U, ACC, 250, 1, 0, SMFIS_REJECT, "550", "5.1.1", "directory"},
    {GWM_MODE_BOTH, E, ACC, 250, 1, 1, SMFIS_CONTINUE, "", "", "pooled"},
    {GWM_MODE_BOTH, E, REJ, 550, 1, 1, SMFIS_REJECT, "550", "5.1.1", "pooled"},
    {GWM_MODE_BOTH, E, TMP, 0, 1, 1, SMFIS_TEMPFAIL, "451", "4.4.1", "pooled"}, /* MTA down: 4xx */
    {GWM_MODE_BOTH, E, TMP, 450, 1, 1, SMFIS_TEMPFAIL, "450", "4.4.1", "pooled"},
    {GWM_MODE_BOTH, T, ACC, 250, 1, 1, SMFIS_CONTINUE, "", "", "pooled"},
    {GWM_MODE_BOTH, T, REJ, 550, 1, 1, SMFIS_REJECT, "550", "5.1.1", "pooled"},
    {GWM_MODE_BOTH, T, TMP, 0, 1, 1, SMFIS_TEMPFAIL, "451", "4.4.1", "pooled"},
};

static void test_decision_table(void **state)
{
	gwm_reply_opts ro = {0, 0};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const row *w = &rows[i];
		fake f = {w->dir, w->ca, w->ca_code, 0, 0, ""};
		gwm_checker ck = {fake_dir, fake_ca, &f};
		gwm_check_out out;

		gwm_check(w->mode, &ro, "user@example.org", &ck, &out);
		if (f.dir_calls != w->dir_asked || f.ca_calls != w->ca_asked ||
		    out.dir_asked != w->dir_asked || out.ca_asked != w->ca_asked)
			fail_msg("row %zu (%s, dir %s, ca %s): asked dir %d ca %d, want dir %d ca %d", i,
				 gwm_mode_words[w->mode], gw_dir_answer_str(w->dir), gw_verdict_str(w->ca),
				 f.dir_calls, f.ca_calls, w->dir_asked, w->ca_asked);
		if (out.reply.action != w->action || strcmp(out.reply.rcode, w->rcode) != 0 ||
		    strcmp(out.reply.xcode, w->xcode) != 0 || strcmp(out.source, w->source) != 0)
			fail_msg("row %zu (%s, dir %s, ca %s): got %d '%s %s' source %s, want %d '%s %s' "
				 "source %s",
				 i, gwm_mode_words[w->mode], gw_dir_answer_str(w->dir), gw_verdict_str(w->ca),
				 out.reply.action, out.reply.rcode, out.reply.xcode, out.source, w->action,
				 w->rcode, w->xcode, w->source);
		assert_string_equal(f.last_rcpt, "user@example.org");
		if (out.reply.action == SMFIS_REJECT)
			assert_non_null(
			    strstr(out.reply.text, "<user@example.org>: Recipient address rejected"));
	}
}

/* Whatever the sources say, a directory that could not answer never makes a 5xx on its own. */
static void test_temporary_never_5xx(void **state)
{
	gwm_reply_opts ro = {0, 0};
	int mode, ca;

	(void)state;
	for (mode = GWM_MODE_DIRECTORY; mode <= GWM_MODE_BOTH; mode++) {
		for (ca = GW_VERDICT_ACCEPT; ca <= GW_VERDICT_TEMPFAIL; ca++) {
			fake f = {GW_DIR_TEMPORARY, (gw_verdict)ca, 0, 0, 0, ""};
			gwm_checker ck = {fake_dir, fake_ca, &f};
			gwm_check_out out;

			gwm_check((gwm_mode)mode, &ro, "u@example.org", &ck, &out);
			if (out.reply.action == SMFIS_REJECT && ca != GW_VERDICT_REJECT)
				fail_msg("mode %s ca %s: 5xx from a temporary directory answer",
					 gwm_mode_words[mode], gw_verdict_str((gw_verdict)ca));
		}
	}
}

/* directory_routes overrides directory_mode per route key; a mode without a URL is refused. */
static void test_config_modes(void **state)
{
	char dir[] = "/tmp/gw-dircheck.XXXXXX", conf[256], routes[256], err[1024];
	gwm_config *c;
	const gw_route *r;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(routes, sizeof(routes), "%s/routes", dir);
	snprintf(conf, sizeof(conf), "%s/gw.conf", dir);
	f = fopen(routes, "w");
	assert_non_null(f);
	fprintf(f, "a.example smtp:[127.0.0.1]:2525\n.b.example smtp:[127.0.0.1]:2525\nc.example "
		   "smtp:[127.0.0.1]:2525\n");
	fclose(f);
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f,
		"routes = %s\ndirectory_url = ldap://127.0.0.1:1/dc=x?dn?sub?(mail={rcpt})\n"
		"directory_mode = directory\ndirectory_routes = .b.example=directory+callahead, "
		"c.example=CALLAHEAD\n",
		routes);
	fclose(f);
	c = gwm_config_load(conf, err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	assert_int_equal(c->nroute_modes, 2);
	r = gw_routes_lookup(c->routes, "a.example");
	assert_int_equal(gwm_config_mode(c, r), GWM_MODE_DIRECTORY);
	r = gw_routes_lookup(c->routes, "x.b.example");
	assert_int_equal(gwm_config_mode(c, r), GWM_MODE_BOTH);
	r = gw_routes_lookup(c->routes, "c.example");
	assert_int_equal(gwm_config_mode(c, r), GWM_MODE_CALLAHEAD);
	gwm_config_free(&c);

	/* a bad mode word names the line */
	f = fopen(conf, "w");
	fprintf(f, "routes = %s\ndirectory_url = http://h/{rcpt}\ndirectory_routes = a.example=ldap\n",
		routes);
	fclose(f);
	assert_null(gwm_config_load(conf, err, sizeof(err)));
	assert_non_null(strstr(err, ":3: directory_routes: bad entry 'a.example=ldap'"));
	/* a directory mode without a URL */
	f = fopen(conf, "w");
	fprintf(f, "routes = %s\ndirectory_routes = a.example=directory\n", routes);
	fclose(f);
	assert_null(gwm_config_load(conf, err, sizeof(err)));
	assert_non_null(strstr(err, "directory_url: a directory mode is set but no directory_url"));
	/* a placeholder outside the LDAP filter */
	f = fopen(conf, "w");
	fprintf(f, "routes = %s\ndirectory_url = ldap://h/uid={local},dc=x?dn?sub?(objectClass=*)\n", routes);
	fclose(f);
	assert_null(gwm_config_load(conf, err, sizeof(err)));
	assert_non_null(strstr(err, ":2: directory_url: URL template: {local} outside the LDAP filter"));
	/* a credentials file others can read */
	f = fopen(conf, "w");
	fprintf(f, "routes = %s\ndirectory_url = http://h/{rcpt}\ndirectory_credentials = %s/cred\n", routes,
		dir);
	fclose(f);
	snprintf(err, sizeof(err), "%s/cred", dir);
	f = fopen(err, "w");
	fprintf(f, "user\nsecret-password\n");
	fclose(f);
	assert_int_equal(chmod(err, 0644), 0);
	assert_null(gwm_config_load(conf, err, sizeof(err)));
	assert_non_null(strstr(err, ":3: directory_credentials: "));
	assert_non_null(strstr(err, "readable by group or others"));
	assert_null(strstr(err, "secret-password"));
	snprintf(err, sizeof(err), "%s/cred", dir);
	assert_int_equal(chmod(err, 0600), 0);
	c = gwm_config_load(conf, err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	gwm_config_free(&c);

	/* directory_urls: a route's own template; a directory mode with only that URL is enough for it */
	{
		char urls[300];
		gwm_snapshot *snap;
		gw_cache *cache = gw_cache_new(16, NULL);

		snprintf(urls, sizeof(urls), "%s/urls", dir);
		f = fopen(urls, "w");
		fprintf(f, "# comment\n\n.b.example  http://127.0.0.1:1/b/{rcpt}\n");
		fclose(f);
		f = fopen(conf, "w");
		fprintf(f, "routes = %s\ndirectory_urls = %s\ndirectory_routes = .b.example=directory\n",
			routes, urls);
		fclose(f);
		c = gwm_config_load(conf, err, sizeof(err));
		if (c == NULL)
			fail_msg("%s", err);
		assert_int_equal(c->nroute_urls, 1);
		assert_string_equal(c->route_urls[0].url, "http://127.0.0.1:1/b/{rcpt}");
		assert_int_equal(gwm_config_route_url(c, gw_routes_lookup(c->routes, "x.b.example")), 0);
		assert_int_equal(gwm_config_route_url(c, gw_routes_lookup(c->routes, "a.example")), -1);
		snap = gwm_snapshot_new(c, cache, NULL);
		assert_non_null(snap);
		assert_null(snap->dir);
		assert_non_null(gwm_snapshot_dir(snap, gw_routes_lookup(c->routes, "x.b.example")));
		assert_null(gwm_snapshot_dir(snap, gw_routes_lookup(c->routes, "a.example")));
		gwm_snapshot_unref(&snap);
		gw_cache_free(&cache);
		/* a directory mode for a route with neither URL */
		f = fopen(conf, "w");
		fprintf(f, "routes = %s\ndirectory_urls = %s\ndirectory_routes = a.example=directory\n",
			routes, urls);
		fclose(f);
		assert_null(gwm_config_load(conf, err, sizeof(err)));
		assert_non_null(strstr(err, "nor a directory_urls line for a.example"));
		/* a bad template in the file names its line */
		f = fopen(urls, "w");
		fprintf(f, ".b.example  http://127.0.0.1:1/b/{rcpt}\nc.example "
			   "ldap://h/uid={local}?dn?base?(x=y)\n");
		fclose(f);
		assert_null(gwm_config_load(conf, err, sizeof(err)));
		if (strstr(err, "/urls:2: URL template: {local} outside the LDAP filter") == NULL)
			fail_msg("got %s", err);
	}

	snprintf(err, sizeof(err), "rm -rf '%s'", dir);
	assert_int_equal(system(err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decision_table),
	    cmocka_unit_test(test_temporary_never_5xx),
	    cmocka_unit_test(test_config_modes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
