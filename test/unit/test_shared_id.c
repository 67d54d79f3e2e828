/*
 * test_shared_id.c - a gateway's name in the shared state (shared.h):
 * shared_state_id as gw.conf takes it (the safe characters, at most
 * GWM_SHARED_ID_MAX, a config error naming the line otherwise), the name
 * gw-milter derives (the id when set, whatever the store and host; else the
 * host name and a hash of the store's path), and the instance token check
 * that notices two gateways writing under one name.
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

#include "milter/conf.h"
#include "milter/flood.h"
#include "milter/shared.h"
#include "milter_conf_test.h"

static void test_conf(void **state)
{
	static const struct {
		const char *line;
		const char *want; /* NULL: loads; else in the error */
	} cases[] = {
	    {"", NULL},
	    {"shared_state_id =\n", NULL},
	    {"shared_state_id = gw1\n", NULL},
	    {"shared_state_id = mx-2.example.org_a\n", NULL},
	    {"shared_state_id = "
	     "a234567890123456789012345678901234567890123456789012345678901234\n",
	     NULL},
	    {"shared_state_id = "
	     "a2345678901234567890123456789012345678901234567890123456789012345\n",
	     "65 characters, at most 64"},
	    {"shared_state_id = gw:1\n", "character 3 (':')"},
	    {"shared_state_id = gw*\n", "character 3 ('*')"},
	    {"shared_state_id = gw/1\n", "character 3 ('/')"},
	    {"shared_state_id = \"gw 1\"\n", "character 3 (' ')"},
	    {"shared_state_id = gw\xc3\xa9\n", "character 3 ('?')"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[512] = "", want[600];
		gwm_config *c = load(cases[i].line, err, sizeof(err));

		if (cases[i].want == NULL) {
			if (c == NULL)
				fail_msg("'%s': got error '%s', want it loaded", cases[i].line, err);
			gwm_config_free(&c);
			continue;
		}
		if (c != NULL)
			fail_msg("'%s': loaded, want an error with '%s'", cases[i].line, cases[i].want);
		/* The line of gw.conf and the key, then why. */
		snprintf(want, sizeof(want), "%s/gw.conf:4: shared_state_id: ", dir);
		if (strncmp(err, want, strlen(want)) != 0 || strstr(err, cases[i].want) == NULL)
			fail_msg("'%s': got '%s', want '%s...%s'", cases[i].line, err, want, cases[i].want);
	}
}

/* The derived name of a config of these lines on this host. */
static void name_of(const char *extra, const char *host, char *buf, size_t size)
{
	char err[512];
	gwm_config *c = load(extra, err, sizeof(err));

	if (c == NULL)
		fail_msg("%s", err);
	gwm_flood_shared_name(c, host, buf, size);
	gwm_config_free(&c);
}

static void test_name(void **state)
{
	char a[256], b[256], c[256];

	(void)state;
	/* Derived: the host, then the store's hash; a renamed store is a new name. */
	name_of("flood_store =\n", "gw1.example.org", a, sizeof(a));
	assert_string_equal(a, "gw1.example.org");
	name_of("flood_store = /var/lib/gw-milter/flood\n", "gw1.example.org", a, sizeof(a));
	name_of("flood_store = /var/lib/gw-milter/flood2\n", "gw1.example.org", b, sizeof(b));
	assert_int_equal(strncmp(a, "gw1.example.org-", 16), 0);
	assert_int_equal(strlen(a), 16 + 8);
	assert_string_not_equal(a, b);
	name_of("flood_store = /var/lib/gw-milter/flood\n", "gw2.example.org", c, sizeof(c));
	assert_string_not_equal(a, c);
	/* A host name's unsafe characters become '_'. */
	name_of("flood_store =\n", "gw 1:x", a, sizeof(a));
	assert_string_equal(a, "gw_1_x");
	/* Named: the same whatever the store and the host. */
	name_of("shared_state_id = mx-a\nflood_store = /var/lib/gw-milter/flood\n", "gw1.example.org", a,
		sizeof(a));
	name_of("shared_state_id = mx-a\nflood_store = /srv/flood-new\n", "gw9.example.net", b, sizeof(b));
	name_of("shared_state_id = mx-a\n", "gw1", c, sizeof(c));
	assert_string_equal(a, "mx-a");
	assert_string_equal(b, "mx-a");
	assert_string_equal(c, "mx-a");
}

static void test_token(void **state)
{
	const char *mine = "0123456789abcdef0123456789abcdef";

	(void)state;
	assert_int_equal(gwm_shared_token_foreign(NULL, mine), 0);
	assert_int_equal(gwm_shared_token_foreign("0 12 0 3 0123456789abcdef0123456789abcdef", mine), 0);
	assert_int_equal(gwm_shared_token_foreign("1 0 0 0 ffff456789abcdef0123456789abcdef", mine), 1);
	/* A writer without a token (an older gw-milter under our name) is another. */
	assert_int_equal(gwm_shared_token_foreign("0 12 0 3", mine), 1);
	/* Ours with more after it is not ours. */
	assert_int_equal(gwm_shared_token_foreign("0 12 0 3 0123456789abcdef0123456789abcdef0", mine), 1);
	assert_int_equal(gwm_shared_token_foreign("junk", mine), 1);
	assert_int_equal(gwm_shared_token_foreign("", mine), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_conf),
	    cmocka_unit_test(test_name),
	    cmocka_unit_test(test_token),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
