/*
 * test_conf_docs.c - gw.conf(5) and the sample etc/gw.conf say what
 * gw-milter's option table (milter/conf.c, included here curl-style with the
 * milter sources it calls) does: every key is in both with the table's
 * default, the man page gives each number and duration the table's range,
 * and neither documents a key the table does not have. The call-ahead keys
 * take their defaults and ranges from the engine's GW_CA_PARAMS, so this
 * checks that table too. Ranges are formatted by gw_config_describe().
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../milter/reply.c"
#include "../../milter/prvs_filter.c"
#include "../../milter/conf.c"

int gwm_setreply(SMFICTX *ctx, const char *rcode, const char *xcode, const char *text)
{
	(void)ctx;
	(void)rcode;
	(void)xcode;
	(void)text;
	return MI_SUCCESS;
}

/* A file of the source tree (GW_TEST_DATA is test/data), whole, NUL-terminated. */
static char *slurp(const char *rel)
{
	const char *data = getenv("GW_TEST_DATA");
	char path[4096];
	char *text;
	long len;
	FILE *f;

	assert_non_null(data);
	snprintf(path, sizeof(path), "%s/../../%s", data, rel);
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len >= 0);
	rewind(f);
	text = malloc((size_t)len + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
	text[len] = '\0';
	fclose(f);
	return text;
}

/* The line of text that starts with prefix (copied into line, no newline); 0 if none. */
static int find_line(const char *text, const char *prefix, char *line, size_t size)
{
	size_t plen = strlen(prefix);
	const char *p = text;

	while (p != NULL && *p != '\0') {
		size_t n = strcspn(p, "\n");

		if (n >= plen && strncmp(p, prefix, plen) == 0) {
			snprintf(line, size, "%.*s", (int)n, p);
			return 1;
		}
		p = p[n] == '\n' ? p + n + 1 : NULL;
	}
	return 0;
}

/* Remove roff's "\-" escapes in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s != '\0'; s++)
		if (!(s[0] == '\\' && s[1] == '-'))
			*o++ = *s;
	*o = '\0';
}

/* The "[lo, hi]" that gw_config_describe gives the option, as "lo" and "hi"; 0 when it has none. */
static int described_range(const char *describe, const gw_option *o, char *lo, char *hi, size_t size)
{
	char prefix[128], line[1024];
	const char *in, *comma, *end;

	snprintf(prefix, sizeof(prefix), "%s (", o->name);
	assert_true(find_line(describe, prefix, line, sizeof(line)));
	if ((in = strstr(line, " in [")) == NULL)
		return 0;
	in += 5;
	comma = strstr(in, ", ");
	end = strchr(in, ']');
	assert_non_null(comma);
	assert_non_null(end);
	snprintf(lo, size, "%.*s", (int)(comma - in), in);
	snprintf(hi, size, "%.*s", (int)(end - comma - 2), comma + 2);
	return 1;
}

static char *describe_table(void)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	gw_config_describe(gwm_option, f);
	fclose(f);
	return out;
}

/* Each key's line in gw.conf(5): ".BR key " (default " DEF "; " LO " to " HI )". */
static void test_man_page_matches_table(void **state)
{
	char *man = slurp("docs/man/gw.conf.5"), *describe = describe_table();
	static const char *const endings[] = {" )", " \") (restart)\"", " (restart)\"", "\"", NULL};
	const gw_option *o;
	size_t bad = 0;

	(void)state;
	unescape(man);
	for (o = gwm_option; o->name != NULL; o++) {
		char prefix[128], want[512], line[1024], lo[64], hi[64];
		const char *rest;
		size_t k;

		snprintf(prefix, sizeof(prefix), ".BR %s \" (default", o->name);
		if (!find_line(man, prefix, line, sizeof(line))) {
			print_error("gw.conf(5): no \"%s\" line for %s\n", prefix, o->name);
			bad++;
			continue;
		}
		if (o->def == NULL || o->def[0] == '\0')
			snprintf(want, sizeof(want), ".BR %s \" (default empty)", o->name);
		else
			snprintf(want, sizeof(want), ".BR %s \" (default \" %s", o->name, o->def);
		if (described_range(describe, o, lo, hi, sizeof(lo)))
			snprintf(want + strlen(want), sizeof(want) - strlen(want), " \"; \" %s \" to \" %s",
				 lo, hi);
		rest = strncmp(line, want, strlen(want)) == 0 ? line + strlen(want) : NULL;
		for (k = 0; rest != NULL && endings[k] != NULL && strcmp(rest, endings[k]) != 0; k++)
			;
		if (rest == NULL || endings[k] == NULL) {
			print_error("gw.conf(5): got '%s', want '%s' and a closing parenthesis\n", line,
				    want);
			bad++;
		}
	}
	free(describe);
	free(man);
	assert_int_equal(bad, 0);
}

/* Every ".BR key " (default" line of gw.conf(5) names a key the table has. */
static void test_man_page_has_no_stale_keys(void **state)
{
	char *man = slurp("docs/man/gw.conf.5"), *p;
	const gw_option *o;
	size_t bad = 0, seen = 0;

	(void)state;
	unescape(man);
	for (p = strstr(man, "\n.BR "); p != NULL; p = strstr(p + 1, "\n.BR ")) {
		char key[128];
		char *sp = strchr(p + 5, ' ');

		if (sp == NULL || strncmp(sp, " \" (default", 11) != 0)
			continue;
		snprintf(key, sizeof(key), "%.*s", (int)(sp - (p + 5)), p + 5);
		seen++;
		for (o = gwm_option; o->name != NULL && strcmp(o->name, key) != 0; o++)
			;
		if (o->name == NULL) {
			print_error("gw.conf(5) documents '%s', which gw-milter does not know\n", key);
			bad++;
		}
	}
	free(man);
	assert_true(seen > 0);
	assert_int_equal(bad, 0);
}

/* etc/gw.conf shows every key with its default ("key = DEF"; "key =" when empty) and loads cleanly. */
static void test_sample_matches_table(void **state)
{
	char *sample = slurp("etc/gw.conf"), path[4096], err[512];
	const gw_option *o;
	gwm_options opts;
	size_t bad = 0;

	(void)state;
	for (o = gwm_option; o->name != NULL; o++) {
		char prefix[128], want[512], line[1024] = "(none)";

		snprintf(prefix, sizeof(prefix), "%s =", o->name);
		snprintf(want, sizeof(want), "%s =%s%s", o->name,
			 o->def != NULL && o->def[0] != '\0' ? " " : "", o->def != NULL ? o->def : "");
		if (!find_line(sample, prefix, line, sizeof(line)) || strcmp(line, want) != 0) {
			print_error("etc/gw.conf: got '%s', want '%s'\n", line, want);
			bad++;
		}
	}
	free(sample);
	assert_int_equal(bad, 0);
	snprintf(path, sizeof(path), "%s/../../etc/gw.conf", getenv("GW_TEST_DATA"));
	memset(&opts, 0, sizeof(opts));
	if (gw_config_load(gwm_option, &opts, path, err, sizeof(err)) != 0)
		fail_msg("etc/gw.conf: %s", err);
	gw_config_free(gwm_option, &opts);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_man_page_matches_table),
	    cmocka_unit_test(test_man_page_has_no_stale_keys),
	    cmocka_unit_test(test_sample_matches_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
