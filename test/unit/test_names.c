/*
 * test_names.c - the {value, name} tables of libgw's public enums (names.c)
 * and gw-milter's option words that map onto them (gw.conf's tls,
 * log_level and log, loaded from a file and checked by value).
 *
 * For every enum: each value has exactly one name, distinct from the others
 * and from the "unknown" name; the name parses back to the value; values
 * outside the enum get the unknown name; and the public *_str function says
 * the same as the table. The list of values comes from a switch over the
 * enum type, so -Wswitch (an error in the -Werror build) fails this file
 * when an enum grows and the test does not.
 *
 * Does not test: that the names are the ones users expect (the log, JSON and
 * man page tests do).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "gw/callahead.h"
#include "gw/client.h"
#include "gw/domain_tls.h"
#include "gw/directory.h"
#include "gw/lmtp.h"
#include "gw/log.h"
#include "gw/proto.h"
#include "gw/prvs.h"
#include "milter/conf.h"
#include "names.h"

/* --- every value of each enum, by switch (no default: -Wswitch) ---------- */

static int is_status(int v)
{
	switch ((gw_status)v) {
	case GW_OK:
	case GW_E_REFUSED:
	case GW_E_TIMEOUT:
	case GW_E_LOST:
	case GW_E_BADREPLY:
	case GW_E_TLS:
	case GW_E_PROTO:
	case GW_E_REJECTED:
	case GW_E_RESOLVE:
	case GW_E_LOCAL:
	case GW_E_CONTENT:
	case GW_E_CANCELLED:
		return 1;
	}
	return 0;
}

static int is_stage(int v)
{
	switch ((gw_stage)v) {
	case GW_STAGE_NONE:
	case GW_STAGE_CONNECT:
	case GW_STAGE_GREETING:
	case GW_STAGE_HELLO:
	case GW_STAGE_STARTTLS:
	case GW_STAGE_MAIL:
	case GW_STAGE_RCPT:
	case GW_STAGE_DATA:
	case GW_STAGE_BODY:
	case GW_STAGE_RSET:
	case GW_STAGE_NOOP:
	case GW_STAGE_QUIT:
		return 1;
	}
	return 0;
}

static int is_proto(int v)
{
	switch ((gw_proto)v) {
	case GW_PROTO_SMTP:
	case GW_PROTO_LMTP:
		return 1;
	}
	return 0;
}

static int is_tls_policy(int v)
{
	switch ((gw_tls_policy)v) {
	case GW_TLS_NONE:
	case GW_TLS_MAY:
	case GW_TLS_ENCRYPT:
	case GW_TLS_VERIFY:
	case GW_TLS_DANE:
		return 1;
	}
	return 0;
}

static int is_tls_level(int v)
{
	switch ((gw_tls_level)v) {
	case GW_TLS_LEVEL_NONE:
	case GW_TLS_LEVEL_MAY:
	case GW_TLS_LEVEL_ENCRYPT:
	case GW_TLS_LEVEL_VERIFY:
	case GW_TLS_LEVEL_DANE:
	case GW_TLS_LEVEL_DANE_ONLY:
		return 1;
	}
	return 0;
}

static int is_dane_state(int v)
{
	switch ((gw_dane_state)v) {
	case GW_DANE_OFF:
	case GW_DANE_UNSIGNED_MX:
	case GW_DANE_LOOKUP_FAILED:
	case GW_DANE_NO_TLSA:
	case GW_DANE_UNSIGNED_TLSA:
	case GW_DANE_UNUSABLE:
	case GW_DANE_TLSA:
	case GW_DANE_VERIFIED:
	case GW_DANE_FAILED:
		return 1;
	}
	return 0;
}

static int is_verdict(int v)
{
	switch ((gw_verdict)v) {
	case GW_VERDICT_ACCEPT:
	case GW_VERDICT_REJECT:
	case GW_VERDICT_TEMPFAIL:
		return 1;
	}
	return 0;
}

static int is_dir_answer(int v)
{
	switch ((gw_dir_answer)v) {
	case GW_DIR_EXISTS:
	case GW_DIR_UNKNOWN:
	case GW_DIR_TEMPORARY:
		return 1;
	}
	return 0;
}

static int is_dir_source(int v)
{
	switch ((gw_dir_source)v) {
	case GW_DIR_SRC_CACHE:
	case GW_DIR_SRC_LDAP:
	case GW_DIR_SRC_HTTP:
	case GW_DIR_SRC_LIMIT:
	case GW_DIR_SRC_INPUT:
		return 1;
	}
	return 0;
}

static int is_ca_source(int v)
{
	switch ((gw_ca_source)v) {
	case GW_CA_SRC_CACHE:
	case GW_CA_SRC_POOLED:
	case GW_CA_SRC_NEW:
	case GW_CA_SRC_DOWN:
	case GW_CA_SRC_LIMIT:
	case GW_CA_SRC_CATCHALL:
	case GW_CA_SRC_NOROUTE:
		return 1;
	}
	return 0;
}

static int is_lmtp_state(int v)
{
	switch ((gw_lmtp_state)v) {
	case GW_LMTP_PENDING:
	case GW_LMTP_DELIVERED:
	case GW_LMTP_TEMPFAIL:
	case GW_LMTP_PERMFAIL:
	case GW_LMTP_UNCERTAIN:
		return 1;
	}
	return 0;
}

static int is_lmtp_stage(int v)
{
	switch ((gw_lmtp_stage)v) {
	case GW_LMTP_STAGE_NONE:
	case GW_LMTP_STAGE_CONNECT:
	case GW_LMTP_STAGE_GREETING:
	case GW_LMTP_STAGE_LHLO:
	case GW_LMTP_STAGE_MAIL:
	case GW_LMTP_STAGE_RCPT:
	case GW_LMTP_STAGE_DATA:
	case GW_LMTP_STAGE_TRANSPORT:
		return 1;
	}
	return 0;
}

static int is_prvs_result(int v)
{
	switch ((gw_prvs_result)v) {
	case GW_PRVS_ERROR:
	case GW_PRVS_VALID:
	case GW_PRVS_BAD_SIGNATURE:
	case GW_PRVS_EXPIRED:
	case GW_PRVS_UNKNOWN_KEY:
	case GW_PRVS_NOT_TAGGED:
	case GW_PRVS_MALFORMED:
		return 1;
	}
	return 0;
}

static int is_prvs_skip(int v)
{
	switch ((gw_prvs_skip)v) {
	case GW_PRVS_SKIP_NONE:
	case GW_PRVS_SKIP_NULL:
	case GW_PRVS_SKIP_TAGGED:
	case GW_PRVS_SKIP_EXEMPT:
	case GW_PRVS_SKIP_TOO_LONG:
		return 1;
	}
	return 0;
}

/* The log levels are an anonymous enum of syslog priorities: listed by hand. */
static int is_log_level(int v)
{
	return v == GW_LOG_ERR || v == GW_LOG_WARNING || v == GW_LOG_NOTICE || v == GW_LOG_INFO ||
	       v == GW_LOG_DEBUG;
}

/* --- the public functions, called with an int ----------------------------- */

static const char *status_str(int v)
{
	return gw_status_str((gw_status)v);
}
static const char *stage_str(int v)
{
	return gw_stage_str((gw_stage)v);
}
static const char *proto_str(int v)
{
	return gw_proto_str((gw_proto)v);
}
static const char *tls_policy_str(int v)
{
	return gw_tls_policy_str((gw_tls_policy)v);
}
static const char *tls_level_str(int v)
{
	return gw_tls_level_str((gw_tls_level)v);
}
static const char *dane_state_str(int v)
{
	return gw_dane_state_str((gw_dane_state)v);
}
static const char *verdict_str(int v)
{
	return gw_verdict_str((gw_verdict)v);
}
static const char *dir_answer_str(int v)
{
	return gw_dir_answer_str((gw_dir_answer)v);
}
static const char *dir_source_str(int v)
{
	return gw_dir_source_str((gw_dir_source)v);
}
static const char *ca_source_str(int v)
{
	return gw_ca_source_str((gw_ca_source)v);
}
static const char *lmtp_state_str(int v)
{
	return gw_lmtp_state_str((gw_lmtp_state)v);
}
static const char *lmtp_stage_str(int v)
{
	return gw_lmtp_stage_str((gw_lmtp_stage)v);
}
static const char *prvs_result_str(int v)
{
	return gw_prvs_result_str((gw_prvs_result)v);
}
static const char *prvs_skip_str(int v)
{
	return gw_prvs_skip_str((gw_prvs_skip)v);
}

typedef struct enum_case {
	const char *what;
	const gwn_table *t;
	int (*is_value)(int v);
	const char *(*str)(int v);
} enum_case;

static const enum_case enums[] = {
    {"gw_status", &gwn_status, is_status, status_str},
    {"gw_stage", &gwn_stage, is_stage, stage_str},
    {"gw_proto", &gwn_proto, is_proto, proto_str},
    {"gw_tls_policy", &gwn_tls_policy, is_tls_policy, tls_policy_str},
    {"gw_tls_level", &gwn_tls_level, is_tls_level, tls_level_str},
    {"gw_dane_state", &gwn_dane_state, is_dane_state, dane_state_str},
    {"gw_verdict", &gwn_verdict, is_verdict, verdict_str},
    {"gw_ca_source", &gwn_ca_source, is_ca_source, ca_source_str},
    {"gw_dir_answer", &gwn_dir_answer, is_dir_answer, dir_answer_str},
    {"gw_dir_source", &gwn_dir_source, is_dir_source, dir_source_str},
    {"gw_lmtp_state", &gwn_lmtp_state, is_lmtp_state, lmtp_state_str},
    {"gw_lmtp_stage", &gwn_lmtp_stage, is_lmtp_stage, lmtp_stage_str},
    {"gw_prvs_result", &gwn_prvs_result, is_prvs_result, prvs_result_str},
    {"gw_prvs_skip", &gwn_prvs_skip, is_prvs_skip, prvs_skip_str},
    {"GW_LOG_*", &gwn_log_level, is_log_level, gw_log_level_str},
};

#define VMIN (-8) /* every enum here lies within [VMIN, VMAX] */
#define VMAX 63

/* Each value named once, distinctly; names parse back; others are unknown. */
static void test_tables(void **state)
{
	size_t k, i, j;
	int v, got, nvalues;

	(void)state;
	for (k = 0; k < sizeof(enums) / sizeof(enums[0]); k++) {
		const enum_case *e = &enums[k];
		const gwn_table *t = e->t;

		nvalues = 0;
		for (v = VMIN; v <= VMAX; v++) {
			const char *name = e->str(v);
			size_t seen = 0;

			for (i = 0; i < t->n; i++)
				seen += t->v[i].value == v;
			if (!e->is_value(v)) {
				if (seen != 0 || strcmp(name, t->unknown) != 0)
					fail_msg("%s: %d is not a value but is named '%s'", e->what, v, name);
				continue;
			}
			nvalues++;
			if (seen != 1)
				fail_msg("%s: value %d named %zu times, want 1", e->what, v, seen);
			if (strcmp(name, gwn_name(t, v)) != 0 || strcmp(name, t->unknown) == 0 ||
			    *name == '\0')
				fail_msg("%s: value %d: got '%s', want its own name", e->what, v, name);
			got = VMIN - 1;
			if (gwn_value(t, name, &got) != 0 || got != v)
				fail_msg("%s: '%s' parses to %d, want %d", e->what, name, got, v);
		}
		if ((size_t)nvalues != t->n)
			fail_msg("%s: table has %zu entries for %d values", e->what, t->n, nvalues);
		for (i = 0; i < t->n; i++)
			for (j = i + 1; j < t->n; j++)
				if (strcasecmp(t->v[i].name, t->v[j].name) == 0)
					fail_msg("%s: '%s' names two values", e->what, t->v[i].name);
		got = 12345;
		assert_int_equal(gwn_value(t, "no such name", &got), -1);
		assert_int_equal(gwn_value(t, NULL, &got), -1);
		assert_int_equal(got, 12345);
	}
}

/* The public parsers: the words users write, any case; anything else refused. */
static void test_parse(void **state)
{
	gw_proto p = GW_PROTO_SMTP;
	gw_tls_policy tp = GW_TLS_NONE;

	(void)state;
	assert_int_equal(gw_proto_parse("lmtp", &p), 0);
	assert_int_equal(p, GW_PROTO_LMTP);
	assert_int_equal(gw_proto_parse("SMTP", &p), 0);
	assert_int_equal(p, GW_PROTO_SMTP);
	assert_int_equal(gw_proto_parse("relay", &p), -1); /* a transport, not a protocol */
	assert_int_equal(gw_proto_parse("", &p), -1);
	assert_int_equal(gw_proto_parse(NULL, &p), -1);
	assert_int_equal(p, GW_PROTO_SMTP);

	assert_int_equal(gw_tls_policy_parse("verify", &tp), 0);
	assert_int_equal(tp, GW_TLS_VERIFY);
	assert_int_equal(gw_tls_policy_parse("May", &tp), 0);
	assert_int_equal(tp, GW_TLS_MAY);
	assert_int_equal(gw_tls_policy_parse("required", &tp), -1);
	assert_int_equal(gw_tls_policy_parse("may ", &tp), -1);
	assert_int_equal(tp, GW_TLS_MAY);

	assert_int_equal(gw_log_level_parse("warning"), GW_LOG_WARNING);
	assert_int_equal(gw_log_level_parse("DEBUG"), GW_LOG_DEBUG);
	assert_int_equal(gw_log_level_parse("warn"), -1);
	assert_int_equal(gw_log_level_parse(NULL), -1);
	assert_string_equal(gw_log_level_str(GW_LOG_NOTICE), "notice");
	assert_string_equal(gw_proto_str(GW_PROTO_LMTP), "lmtp");
	assert_string_equal(gw_tls_policy_str(GW_TLS_ENCRYPT), "encrypt");
}

/*
 * gw.conf's words for an enum option: each one maps to a library value by
 * name, and every value has its word except the `missing` ones gw-milter
 * deliberately lacks.
 */
static void check_words(const char *key, const gwn_table *t, size_t missing)
{
	const gw_option *o;
	size_t i, n = 0;
	int v;

	for (o = gwm_option; o->name != NULL && strcmp(o->name, key) != 0; o++)
		;
	if (o->name == NULL || o->type != GW_OPT_ENUM || o->enum_values == NULL)
		fail_msg("gw.conf has no enum option '%s'", key);
	for (i = 0; o->enum_values[i] != NULL; i++, n++)
		if (gwn_value(t, o->enum_values[i], &v) != 0)
			fail_msg("gw.conf %s: '%s' is not a library name", key, o->enum_values[i]);
	if (n + missing != t->n)
		fail_msg("gw.conf %s: %zu words for %zu values", key, n, t->n);
}

static void test_milter_words(void **state)
{
	(void)state;
	/* "dane" needs TLSA records per host, which only gw-lmtpd's relay looks up. */
	check_words("tls", &gwn_tls_policy, 1);
	check_words("log_level", &gwn_log_level, 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* A loaded gw.conf carries the library's values for the words, whatever their order in the word lists. */
static void test_milter_config_values(void **state)
{
	char dir[] = "/tmp/test_names.XXXXXX", routes[64], conf[64], text[256], err[512];
	gwm_config *c;
	gw_ca_opts o;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(routes, sizeof(routes), "%s/routes", dir);
	snprintf(conf, sizeof(conf), "%s/gw.conf", dir);
	write_file(routes, "example.com smtp:[127.0.0.1]:25\n");

	snprintf(text, sizeof(text), "routes = %s\nlog = stderr\nlog_level = debug\ntls = encrypt\n", routes);
	write_file(conf, text);
	c = gwm_config_load(conf, err, sizeof(err));
	if (c == NULL)
		fail_msg("load: %s", err);
	assert_int_equal(c->log_dest, GW_LOG_STDERR);
	assert_int_equal(c->log_level, GW_LOG_DEBUG);
	assert_int_equal(c->tls, GW_TLS_ENCRYPT);
	gwm_config_ca_opts(c, &o);
	assert_int_equal(o.tls, GW_TLS_ENCRYPT);
	gwm_config_free(&c);

	snprintf(text, sizeof(text), "routes = %s\nlog_level = WARNING\ntls = none\n", routes);
	write_file(conf, text);
	c = gwm_config_load(conf, err, sizeof(err));
	if (c == NULL)
		fail_msg("load: %s", err);
	assert_int_equal(c->log_dest, GW_LOG_SYSLOG);
	assert_int_equal(c->log_level, GW_LOG_WARNING);
	assert_int_equal(c->tls, GW_TLS_NONE);
	gwm_config_free(&c);

	assert_int_equal(unlink(conf), 0);
	assert_int_equal(unlink(routes), 0);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tables),
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_milter_words),
	    cmocka_unit_test(test_milter_config_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
