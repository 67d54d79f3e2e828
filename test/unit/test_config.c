/*
 * test_config.c - option tables: defaults, every value type with its units
 * and bounds, file syntax, errors naming file:line, dump/parse round trip,
 * describe, list splitting. Every error path frees the struct so ASan sees
 * that a failed parse leaves nothing leaked or dangling.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/config.h"

typedef struct conf {
	char *hostname;
	char *listen;
	char *peers;
	char *banner;
	char *exempt;
	long port;
	long offset;
	long timeout;
	long cache_ttl;
	long max_size;
	long big;
	int verbose;
	int mode;
} conf;

static const char *const modes[] = {"off", "lenient", "strict", NULL};

#define OPT(n, t, d, doc, f, lo, hi, e)                                                                      \
	{                                                                                                    \
		n, t, d, doc, offsetof(conf, f), lo, hi, e                                                   \
	}
static const gw_option table[] = {
    OPT("hostname", GW_OPT_STRING, "localhost", "name used in HELO", hostname, 0, 0, NULL),
    OPT("listen", GW_OPT_STRING, "inet:127.0.0.1:8891", "milter socket", listen, 0, 0, NULL),
    OPT("peers", GW_OPT_LIST, NULL, "internal MTAs", peers, 0, 0, NULL),
    OPT("banner", GW_OPT_STRING, NULL, "greeting text", banner, 0, 0, NULL),
    OPT("exempt", GW_OPT_LIST, "postmaster abuse", "never probed", exempt, 0, 0, NULL),
    OPT("port", GW_OPT_INT, "25", "SMTP port", port, 1, 65535, NULL),
    OPT("offset", GW_OPT_INT, NULL, "unbounded integer", offset, 0, 0, NULL),
    OPT("timeout", GW_OPT_DURATION, "10s", "probe timeout", timeout, 100, 60000, NULL),
    OPT("cache_ttl", GW_OPT_DURATION, "1h", "how long a result is kept", cache_ttl, 0, 0, NULL),
    OPT("max_size", GW_OPT_SIZE, "1m", "largest message", max_size, 1024, 1024L * 1024 * 1024, NULL),
    OPT("big", GW_OPT_SIZE, NULL, "unbounded size", big, 0, 0, NULL),
    OPT("verbose", GW_OPT_BOOL, "no", "log every probe", verbose, 0, 0, NULL),
    OPT("mode", GW_OPT_ENUM, "lenient", "how strict", mode, 0, 0, modes),
    {NULL, GW_OPT_STRING, NULL, NULL, 0, 0, 0, NULL},
};

static void test_defaults(void **state)
{
	conf c;
	char err[256] = "x";

	(void)state;
	memset(&c, 0xa5, sizeof c); /* defaults must not read or free what was there */
	assert_int_equal(gw_config_defaults(table, &c, err, sizeof err), 0);
	assert_string_equal(err, "");
	assert_string_equal(c.hostname, "localhost");
	assert_string_equal(c.peers, "");
	assert_string_equal(c.banner, "");
	assert_string_equal(c.exempt, "postmaster abuse");
	assert_int_equal(c.port, 25);
	assert_int_equal(c.offset, 0);
	assert_int_equal(c.timeout, 10000);
	assert_int_equal(c.cache_ttl, 3600000);
	assert_int_equal(c.max_size, 1048576);
	assert_int_equal(c.big, 0);
	assert_int_equal(c.verbose, 0);
	assert_int_equal(c.mode, 1);
	gw_config_free(table, &c);
	assert_null(c.hostname);
	assert_null(c.peers);
}

static void test_bad_default(void **state)
{
	static const gw_option bad[] = {
	    OPT("hostname", GW_OPT_STRING, "x", "", hostname, 0, 0, NULL),
	    OPT("port", GW_OPT_INT, "99999", "", port, 1, 65535, NULL),
	    OPT("listen", GW_OPT_STRING, "y", "", listen, 0, 0, NULL),
	    {NULL, GW_OPT_STRING, NULL, NULL, 0, 0, 0, NULL},
	};
	conf c;
	char err[256];

	(void)state;
	memset(&c, 0xa5, sizeof c);
	assert_int_equal(gw_config_defaults(bad, &c, err, sizeof err), -1);
	if (strstr(err, "port") == NULL || strstr(err, "[1, 65535]") == NULL)
		fail_msg("got '%s', want it to name port and its range", err);
	gw_config_free(bad, &c); /* the strings set so far, and NULL for the rest */
}

/* One value per row through gw_config_set; want_err is a prefix of the message. */
static void test_values(void **state)
{
	static const struct {
		const char *key, *value;
		long want;            /* for numbers, bools and enums */
		const char *want_str; /* for strings; NULL otherwise */
		const char *want_err; /* NULL: success */
	} cases[] = {
	    {"port", "587", 587, NULL, NULL},
	    {"port", "  587 ", 587, NULL, NULL},
	    {"port", "\"587\"", 587, NULL, NULL},
	    {"port", "1", 1, NULL, NULL},
	    {"port", "65535", 65535, NULL, NULL},
	    {"port", "0", 0, NULL, "port: 0 out of range [1, 65535]"},
	    {"port", "65536", 0, NULL, "port: 65536 out of range [1, 65535]"},
	    {"port", "-1", 0, NULL, "port: -1 out of range [1, 65535]"},
	    {"port", "", 0, NULL, "port: empty value"},
	    {"port", "25x", 0, NULL, "port: not a number: '25x'"},
	    {"port", "x", 0, NULL, "port: not a number: 'x'"},
	    {"port", "99999999999999999999999", 0, NULL, "port: number too large"},
	    {"offset", "-42", -42, NULL, NULL},
	    {"offset", "+42", 42, NULL, NULL},
	    {"offset", "9223372036854775807", LONG_MAX, NULL, NULL},
	    {"offset", "9223372036854775808", 0, NULL, "offset: number too large"},
	    {"offset", "-", 0, NULL, "offset: not a number"},
	    {"timeout", "500ms", 500, NULL, NULL},
	    {"timeout", "10s", 10000, NULL, NULL},
	    {"timeout", "10S", 10000, NULL, NULL},
	    {"timeout", "1m", 60000, NULL, NULL},
	    {"timeout", "30", 30000, NULL, NULL},
	    {"timeout", "99ms", 0, NULL, "timeout: 99ms out of range [100ms, 1m]"},
	    {"timeout", "2m", 0, NULL, "timeout: 2m out of range [100ms, 1m]"},
	    {"timeout", "10 s", 0, NULL, "timeout: bad unit"},
	    {"timeout", "10x", 0, NULL, "timeout: bad unit"},
	    {"timeout", "-5s", 0, NULL, "timeout: negative value"},
	    {"timeout", "s", 0, NULL, "timeout: not a number"},
	    {"timeout", "", 0, NULL, "timeout: empty value"},
	    {"cache_ttl", "1h", 3600000, NULL, NULL},
	    {"cache_ttl", "2d", 172800000, NULL, NULL},
	    {"cache_ttl", "5m", 300000, NULL, NULL},
	    {"cache_ttl", "0", 0, NULL, NULL},
	    {"cache_ttl", "106751991168d", 0, NULL, "cache_ttl: number too large"},
	    {"cache_ttl", "106751991167d", 106751991167L * 86400000, NULL, NULL},
	    {"cache_ttl", "9223372036854775807ms", LONG_MAX, NULL, NULL},
	    {"cache_ttl", "9223372036854775807s", 0, NULL, "cache_ttl: number too large"},
	    {"max_size", "10k", 10240, NULL, NULL},
	    {"max_size", "5m", 5242880, NULL, NULL},
	    {"max_size", "1g", 1073741824, NULL, NULL},
	    {"max_size", "1G", 1073741824, NULL, NULL},
	    {"max_size", "4096", 4096, NULL, NULL},
	    {"max_size", "2g", 0, NULL, "max_size: 2g out of range [1k, 1g]"},
	    {"max_size", "100", 0, NULL, "max_size: 100 out of range [1k, 1g]"},
	    {"max_size", "1t", 0, NULL, "max_size: bad unit"},
	    {"max_size", "1kb", 0, NULL, "max_size: bad unit"},
	    {"big", "8589934592g", 0, NULL, "big: number too large"},
	    {"big", "8589934591m", 8589934591L * 1024 * 1024, NULL, NULL},
	    {"verbose", "yes", 1, NULL, NULL},
	    {"verbose", "No", 0, NULL, NULL},
	    {"verbose", "TRUE", 1, NULL, NULL},
	    {"verbose", "false", 0, NULL, NULL},
	    {"verbose", "on", 1, NULL, NULL},
	    {"verbose", "off", 0, NULL, NULL},
	    {"verbose", "1", 1, NULL, NULL},
	    {"verbose", "0", 0, NULL, NULL},
	    {"verbose", "2", 0, NULL, "verbose: bad boolean '2' (use yes or no)"},
	    {"verbose", "", 0, NULL, "verbose: bad boolean ''"},
	    {"mode", "strict", 2, NULL, NULL},
	    {"mode", "OFF", 0, NULL, NULL},
	    {"mode", "Lenient", 1, NULL, NULL},
	    {"mode", "hard", 0, NULL, "mode: bad value 'hard' (one of: off, lenient, strict)"},
	    {"hostname", "gw.example.com", 0, "gw.example.com", NULL},
	    {"hostname", "  padded  ", 0, "padded", NULL},
	    {"hostname", "\"  kept  \"", 0, "  kept  ", NULL},
	    {"hostname", "\"a \\\"quote\\\" and \\\\ back\"", 0, "a \"quote\" and \\ back", NULL},
	    {"hostname", "\"\"", 0, "", NULL},
	    {"hostname", "", 0, "", NULL},
	    {"hostname", "a # not a comment", 0, "a # not a comment", NULL},
	    {"hostname", "say \"hi\"", 0, "say \"hi\"", NULL},
	    {"hostname", "\"open", 0, NULL, "hostname: missing closing quote"},
	    {"hostname", "\"a\" b", 0, NULL, "hostname: text after closing quote"},
	    {"hostname", "\"a\\n\"", 0, NULL, "hostname: bad escape"},
	    {"hostname", "a\x01z", 0, NULL, "hostname: control character in value"},
	    {"peers", "a, b c", 0, "a, b c", NULL},
	    {"peers", "", 0, "", NULL},
	    {"nosuch", "1", 0, NULL, "unknown key 'nosuch'"},
	    {"cache_tll", "1s", 0, NULL, "unknown key 'cache_tll' (did you mean 'cache_ttl'?)"},
	    {"Port", "1", 0, NULL, "unknown key 'Port' (did you mean 'port'?)"},
	    {"verbos", "1", 0, NULL, "unknown key 'verbos' (did you mean 'verbose'?)"},
	    {"x", "1", 0, NULL, "unknown key 'x'"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		conf c;
		char err[256] = "";
		int rc;

		assert_int_equal(gw_config_defaults(table, &c, err, sizeof err), 0);
		rc = gw_config_set(table, &c, cases[i].key, cases[i].value, err, sizeof err);
		if (cases[i].want_err != NULL) {
			if (rc != -1 || strncmp(err, cases[i].want_err, strlen(cases[i].want_err)) != 0)
				fail_msg("%s = '%s': got %d '%s', want error '%s...'", cases[i].key,
					 cases[i].value, rc, err, cases[i].want_err);
			if (strcmp(cases[i].want_err, "unknown key 'x'") == 0 && strstr(err, "did you mean"))
				fail_msg("x: got '%s', want no suggestion for a one-letter key", err);
		} else if (rc != 0) {
			fail_msg("%s = '%s': got error '%s', want success", cases[i].key, cases[i].value,
				 err);
		} else {
			const gw_option *o = NULL;
			for (size_t k = 0; table[k].name != NULL; k++)
				if (strcmp(table[k].name, cases[i].key) == 0)
					o = &table[k];
			assert_non_null(o);
			if (cases[i].want_str != NULL) {
				const char *got = *(char **)(void *)((char *)&c + o->offset);
				if (strcmp(got, cases[i].want_str) != 0)
					fail_msg("%s = '%s': got '%s', want '%s'", cases[i].key,
						 cases[i].value, got, cases[i].want_str);
			} else {
				long got = (o->type == GW_OPT_BOOL || o->type == GW_OPT_ENUM)
					       ? *(int *)(void *)((char *)&c + o->offset)
					       : *(long *)(void *)((char *)&c + o->offset);
				if (got != cases[i].want)
					fail_msg("%s = '%s': got %ld, want %ld", cases[i].key, cases[i].value,
						 got, cases[i].want);
			}
		}
		gw_config_free(table, &c);
	}
}

/* A failed set leaves the old value in place. */
static void test_set_keeps_old(void **state)
{
	conf c;
	char err[256];

	(void)state;
	assert_int_equal(gw_config_defaults(table, &c, err, sizeof err), 0);
	assert_int_equal(gw_config_set(table, &c, "port", "2525", err, sizeof err), 0);
	assert_int_equal(gw_config_set(table, &c, "port", "0", err, sizeof err), -1);
	assert_int_equal(c.port, 2525);
	assert_int_equal(gw_config_set(table, &c, "hostname", "one", err, sizeof err), 0);
	assert_int_equal(gw_config_set(table, &c, "hostname", "two", err, sizeof err), 0);
	assert_int_equal(gw_config_set(table, &c, "hostname", "\"bad", err, sizeof err), -1);
	assert_string_equal(c.hostname, "two");
	gw_config_free(table, &c);
}

static void test_parse_file_syntax(void **state)
{
	static const char text[] = "# comment\n"
				   "\n"
				   "   # indented comment\n"
				   "hostname=gw.example.com\r\n"
				   "port =587\n"
				   "\tverbose\t=\ton\t\n"
				   "banner =\n"
				   "peers = a,b\n"
				   "mode = STRICT";
	conf c;
	char err[256] = "";

	(void)state;
	if (gw_config_parse(table, &c, text, sizeof text - 1, "t.conf", err, sizeof err) != 0)
		fail_msg("got error '%s', want success", err);
	assert_string_equal(c.hostname, "gw.example.com");
	assert_int_equal(c.port, 587);
	assert_int_equal(c.verbose, 1);
	assert_string_equal(c.banner, "");
	assert_string_equal(c.peers, "a,b");
	assert_int_equal(c.mode, 2);
	assert_string_equal(c.listen, "inet:127.0.0.1:8891"); /* default kept */
	gw_config_free(table, &c);
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *text;
		size_t len; /* 0: strlen */
		const char *want;
	} cases[] = {
	    {"port = 25\nhostname = a\nport = 26\n", 0,
	     "t.conf:3: repeated key 'port' (first set at line 1)"},
	    {"port = 25\n\n# c\ncache_tll = 5s\n", 0,
	     "t.conf:4: unknown key 'cache_tll' (did you mean 'cache_ttl'?)"},
	    {"unheard_of = 1\n", 0, "t.conf:1: unknown key 'unheard_of'"},
	    {"port 25\n", 0, "t.conf:1: missing '=' after 'port'"},
	    {"port\n", 0, "t.conf:1: missing '=' after 'port'"},
	    {"= 25\n", 0, "t.conf:1: missing key before '='"},
	    {"port =\n", 0, "t.conf:1: port: empty value"},
	    {"timeout =\n", 0, "t.conf:1: timeout: empty value"},
	    {"max_size = \"\"\n", 0, "t.conf:1: max_size: empty value"},
	    {"verbose = maybe\n", 0, "t.conf:1: verbose: bad boolean 'maybe'"},
	    {"a = 1\0b = 2\n", 12, "t.conf:1: NUL byte in line"},
	    {"port = 25\nhostname = \"x\n", 0, "t.conf:2: hostname: missing closing quote"},
	    {"hostname = \x1b[31mred\n", 0, "t.conf:1: hostname: control character in value"},
	    {"\xff\xfe = 1\n", 0, "t.conf:1: unknown key '?\?'"},
	    {"port = 25\ncache_ttl = 1y\n", 0, "t.conf:2: cache_ttl: bad unit (use ms, s, m, h or d): '1y'"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		conf c;
		char err[256] = "";
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		int rc = gw_config_parse(table, &c, cases[i].text, len, "t.conf", err, sizeof err);
		size_t wl = strlen(cases[i].want);

		if (rc != -1 || strncmp(err, cases[i].want, wl) != 0)
			fail_msg("case %zu: got %d '%s', want error '%s...'", i, rc, err, cases[i].want);
		gw_config_free(table, &c);
	}
	{
		conf c;
		char err[256];
		assert_int_equal(
		    gw_config_parse(table, &c, "unheard_of = 1\n", 15, "t.conf", err, sizeof err), -1);
		assert_string_equal(err,
				    "t.conf:1: unknown key 'unheard_of'"); /* nothing close: no suggestion */
		gw_config_free(table, &c);
	}
}

static void test_long_line(void **state)
{
	size_t n = 5000;
	char *text = malloc(n + 32), err[256] = "";
	conf c;

	(void)state;
	assert_non_null(text);
	strcpy(text, "port = 25\nhostname = ");
	memset(text + strlen(text), 'a', n);
	text[21 + n] = '\0';
	assert_int_equal(gw_config_parse(table, &c, text, strlen(text), "t.conf", err, sizeof err), -1);
	if (strcmp(err, "t.conf:2: line too long (over 4096 bytes)") != 0)
		fail_msg("got '%s', want 't.conf:2: line too long (over 4096 bytes)'", err);
	gw_config_free(table, &c);

	/* exactly 4096 bytes is fine */
	strcpy(text, "hostname = ");
	memset(text + 11, 'a', 4096 - 11);
	text[4096] = '\0';
	if (gw_config_parse(table, &c, text, 4096, "t.conf", err, sizeof err) != 0)
		fail_msg("4096-byte line: got '%s', want success", err);
	assert_int_equal(strlen(c.hostname), 4096 - 11);
	gw_config_free(table, &c);
	free(text);
}

static void test_load(void **state)
{
	const char *dir = getenv("GW_TEST_DATA");
	char path[1024], err[256] = "";
	conf c;

	(void)state;
	snprintf(path, sizeof path, "%s/gw-test.conf", dir != NULL ? dir : "test/data");
	if (gw_config_load(table, &c, path, err, sizeof err) != 0)
		fail_msg("load %s: %s", path, err);
	assert_string_equal(c.hostname, "gw1.example.com");
	assert_string_equal(c.listen, "inet:127.0.0.1:10025");
	assert_string_equal(c.peers, "10.0.0.5, 10.0.0.6 10.0.0.7");
	assert_string_equal(c.banner, "  Gateway \"one\" \\ ready  ");
	assert_string_equal(c.exempt, "");
	assert_int_equal(c.port, 2525);
	assert_int_equal(c.verbose, 1);
	assert_int_equal(c.timeout, 20000);
	assert_int_equal(c.cache_ttl, 300000);
	assert_int_equal(c.max_size, 10 * 1024 * 1024);
	assert_int_equal(c.mode, 2);
	gw_config_free(table, &c);

	assert_int_equal(gw_config_load(table, &c, "/nonexistent/gw.conf", err, sizeof err), -1);
	assert_string_equal(err, "/nonexistent/gw.conf: No such file or directory");
	gw_config_free(table, &c);
}

/* What dump writes, parse reads back to the same values. */
static void test_dump_round_trip(void **state)
{
	conf a, b;
	char err[256] = "", *out = NULL;
	size_t outlen = 0;
	FILE *f;

	(void)state;
	assert_int_equal(gw_config_defaults(table, &a, err, sizeof err), 0);
	assert_int_equal(gw_config_set(table, &a, "banner", "\"  \\\"odd\\\" \\\\ text \"", err, sizeof err),
			 0);
	assert_int_equal(gw_config_set(table, &a, "hostname", "\"\\\"quoted\"", err, sizeof err), 0);
	assert_int_equal(gw_config_set(table, &a, "peers", "", err, sizeof err), 0);
	assert_int_equal(gw_config_set(table, &a, "timeout", "1500ms", err, sizeof err), 0);
	assert_int_equal(gw_config_set(table, &a, "cache_ttl", "2d", err, sizeof err), 0);
	assert_int_equal(gw_config_set(table, &a, "max_size", "1025", err, sizeof err), 0);
	assert_int_equal(gw_config_set(table, &a, "offset", "-7", err, sizeof err), 0);
	assert_int_equal(gw_config_set(table, &a, "verbose", "on", err, sizeof err), 0);
	assert_int_equal(gw_config_set(table, &a, "mode", "off", err, sizeof err), 0);

	f = open_memstream(&out, &outlen);
	assert_non_null(f);
	gw_config_dump(table, &a, f);
	fclose(f);
	if (strstr(out, "timeout = 1500ms\n") == NULL || strstr(out, "cache_ttl = 2d\n") == NULL ||
	    strstr(out, "max_size = 1025\n") == NULL || strstr(out, "verbose = yes\n") == NULL ||
	    strstr(out, "mode = off\n") == NULL || strstr(out, "peers = \"\"\n") == NULL)
		fail_msg("dump got:\n%s", out);
	if (gw_config_parse(table, &b, out, outlen, "dump", err, sizeof err) != 0)
		fail_msg("parse of dump: %s\n%s", err, out);
	assert_string_equal(b.banner, a.banner);
	assert_string_equal(b.hostname, "\"quoted");
	assert_string_equal(b.peers, "");
	assert_int_equal(b.timeout, 1500);
	assert_int_equal(b.cache_ttl, 172800000);
	assert_int_equal(b.max_size, 1025);
	assert_int_equal(b.offset, -7);
	assert_int_equal(b.verbose, 1);
	assert_int_equal(b.mode, 0);
	gw_config_free(table, &a);
	gw_config_free(table, &b);
	free(out);
}

static void test_describe(void **state)
{
	static const char *want[] = {
	    "hostname (string, default localhost): name used in HELO\n",
	    "peers (list, default \"\"): internal MTAs\n",
	    "port (integer in [1, 65535], default 25): SMTP port\n",
	    "offset (integer, default 0): unbounded integer\n",
	    "timeout (duration in [100ms, 1m], default 10s): probe timeout\n",
	    "max_size (size in [1k, 1g], default 1m): largest message\n",
	    "verbose (boolean, default no): log every probe\n",
	    "mode (enum off|lenient|strict, default lenient): how strict\n",
	};
	char *out = NULL;
	size_t outlen = 0, i;
	FILE *f = open_memstream(&out, &outlen);

	(void)state;
	assert_non_null(f);
	gw_config_describe(table, f);
	fclose(f);
	for (i = 0; i < sizeof want / sizeof want[0]; i++)
		if (strstr(out, want[i]) == NULL)
			fail_msg("describe: want line %s got:\n%s", want[i], out);
	free(out);
}

typedef struct collect {
	char buf[256];
	size_t n;
	int stop_at;
} collect;

static int collect_item(const char *item, size_t len, void *ctx)
{
	collect *c = ctx;

	c->n++;
	strncat(c->buf, "[", sizeof c->buf - strlen(c->buf) - 1);
	strncat(c->buf, item, len < sizeof c->buf - strlen(c->buf) - 1 ? len : 0);
	strncat(c->buf, "]", sizeof c->buf - strlen(c->buf) - 1);
	return c->stop_at != 0 && (int)c->n == c->stop_at ? 42 : 0;
}

static void test_list_foreach(void **state)
{
	static const struct {
		const char *list;
		int stop_at;
		int want_rc;
		const char *want;
	} cases[] = {
	    {"a, b c", 0, 0, "[a][b][c]"},
	    {"  ,,a,,  b\t,c ,", 0, 0, "[a][b][c]"},
	    {"", 0, 0, ""},
	    {" , ", 0, 0, ""},
	    {"one", 0, 0, "[one]"},
	    {"a b c d", 2, 42, "[a][b]"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		collect c;
		int rc;
		memset(&c, 0, sizeof c);
		c.stop_at = cases[i].stop_at;
		rc = gw_config_list_foreach(cases[i].list, collect_item, &c);
		if (rc != cases[i].want_rc || strcmp(c.buf, cases[i].want) != 0)
			fail_msg("'%s': got %d %s, want %d %s", cases[i].list, rc, c.buf, cases[i].want_rc,
				 cases[i].want);
	}
	assert_int_equal(gw_config_list_foreach(NULL, collect_item, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_bad_default),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_set_keeps_old),
	    cmocka_unit_test(test_parse_file_syntax),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_load),
	    cmocka_unit_test(test_dump_round_trip),
	    cmocka_unit_test(test_describe),
	    cmocka_unit_test(test_list_foreach),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
