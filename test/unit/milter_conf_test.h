/*
 * milter_conf_test.h - helpers shared by the unit tests that load a gw.conf
 * through gw-milter's parser: a temporary directory with a routes file
 * (cmocka group setup/teardown) and load(), which writes gw.conf from the
 * common lines plus the test's own and parses it.
 *
 * Does not defend against: being included twice in one program (static
 * helpers), or two groups of one program running at once (one directory).
 */
#ifndef MILTER_CONF_TEST_H
#define MILTER_CONF_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "milter/conf.h"

static char dir[] = "/tmp/gw-test-milter-conf.XXXXXX";

/* Load a gw.conf of the routes and the extra lines; NULL with err on failure. */
static gwm_config *load(const char *extra, char *err, size_t errlen)
{
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/gw.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "routes = %s/routes\nlog = stderr\nlog_level = err\n%s", dir, extra);
	fclose(f);
	return gwm_config_load(path, err, errlen);
}

static int setup(void **state)
{
	char path[600];
	FILE *f;

	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/routes", dir);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fprintf(f, "example.com smtp:[127.0.0.1]:2525\n");
	fclose(f);
	return 0;
}

static int teardown(void **state)
{
	char cmd[600];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

#endif
