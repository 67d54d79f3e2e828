/*
 * test_milter_reply.c - gw-milter's RCPT replies (milter/reply.c, linked
 * from gw_milter_core): one table row per
 * internal reply or failure, the sanitiser ('%', CR/LF, control bytes, long
 * text), reveal_internal on and off, fail_open, and an exhaustive sweep
 * proving that no temporary result ever comes out as 5xx or 421.
 * The smfi seam (milter/smfi_seam.c, not in gw_milter_core) is replaced by
 * a recorder of smfi_setreply calls.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gw/addr.h"

#include "milter/reply.h"
#include "milter/smfi_seam.h"

/* --- the seam: record what would go to smfi_setreply ------------------- */

static int setreply_calls;
static char got_rcode[8], got_xcode[32], got_text[GWM_REPLY_TEXT_MAX + 8];

int gwm_setreply(SMFICTX *ctx, const char *rcode, const char *xcode, const char *text)
{
	(void)ctx;
	setreply_calls++;
	snprintf(got_rcode, sizeof(got_rcode), "%s", rcode);
	snprintf(got_xcode, sizeof(got_xcode), "%s", xcode);
	snprintf(got_text, sizeof(got_text), "%s", text);
	return MI_SUCCESS;
}

static gw_ca_result result(gw_verdict v, gw_ca_source src, gw_status st, int code, const char *enh,
			   const char *text)
{
	gw_ca_result r;

	memset(&r, 0, sizeof(r));
	r.verdict = v;
	r.source = src;
	r.status = st;
	r.code = code;
	snprintf(r.enh, sizeof(r.enh), "%s", enh);
	snprintf(r.text, sizeof(r.text), "%s", text);
	snprintf(r.hop, sizeof(r.hop), "[10.0.0.5]:25");
	return r;
}

/* --- the decision table ----------------------------------------------------- */

typedef struct row {
	const char *name;
	gw_verdict verdict;
	gw_ca_source source;
	gw_status status;
	int code;
	const char *enh;
	int fail_open;
	sfsistat want_action;
	const char *want_verdict, *want_rcode, *want_xcode;
} row;

static const row rows[] = {
    {"250 accept", GW_VERDICT_ACCEPT, GW_CA_SRC_NEW, GW_OK, 250, "2.1.5", 0, SMFIS_CONTINUE, "accept", "",
     ""},
    {"251 accept", GW_VERDICT_ACCEPT, GW_CA_SRC_POOLED, GW_OK, 251, "", 0, SMFIS_CONTINUE, "accept", "", ""},
    {"cached accept", GW_VERDICT_ACCEPT, GW_CA_SRC_CACHE, GW_OK, 0, "", 0, SMFIS_CONTINUE, "accept", "", ""},
    {"550", GW_VERDICT_REJECT, GW_CA_SRC_NEW, GW_OK, 550, "5.1.1", 0, SMFIS_REJECT, "reject", "550", "5.1.1"},
    {"551", GW_VERDICT_REJECT, GW_CA_SRC_NEW, GW_OK, 551, "5.1.6", 0, SMFIS_REJECT, "reject", "550", "5.1.1"},
    {"553", GW_VERDICT_REJECT, GW_CA_SRC_NEW, GW_OK, 553, "", 0, SMFIS_REJECT, "reject", "550", "5.1.1"},
    {"cached reject", GW_VERDICT_REJECT, GW_CA_SRC_CACHE, GW_OK, 550, "", 0, SMFIS_REJECT, "reject", "550",
     "5.1.1"},
    {"450 with class", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_OK, 450, "4.2.1", 0, SMFIS_TEMPFAIL, "tempfail",
     "450", "4.2.1"},
    {"451 no enh", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_OK, 451, "", 0, SMFIS_TEMPFAIL, "tempfail", "451",
     "4.4.1"},
    {"452 4.5.3", GW_VERDICT_TEMPFAIL, GW_CA_SRC_POOLED, GW_OK, 452, "4.5.3", 0, SMFIS_TEMPFAIL, "tempfail",
     "452", "4.5.3"},
    {"450 with 5.x.x enh", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_OK, 450, "5.1.1", 0, SMFIS_TEMPFAIL,
     "tempfail", "450", "4.4.1"},
    {"421 never passed on", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_OK, 421, "4.3.2", 0, SMFIS_TEMPFAIL,
     "tempfail", "451", "4.4.1"},
    {"552 is temporary", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_OK, 552, "5.2.2", 0, SMFIS_TEMPFAIL,
     "tempfail", "452", "4.2.2"},
    {"554 greeting", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_E_REJECTED, 554, "", 0, SMFIS_TEMPFAIL,
     "tempfail", "451", "4.4.1"},
    {"450 greeting", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_E_REJECTED, 450, "4.3.2", 0, SMFIS_TEMPFAIL,
     "tempfail", "451", "4.4.1"},
    {"refused", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_E_REFUSED, 0, "", 0, SMFIS_TEMPFAIL, "tempfail", "451",
     "4.4.1"},
    {"timeout", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_E_TIMEOUT, 0, "", 0, SMFIS_TEMPFAIL, "tempfail", "451",
     "4.4.1"},
    {"lost", GW_VERDICT_TEMPFAIL, GW_CA_SRC_POOLED, GW_E_LOST, 0, "", 0, SMFIS_TEMPFAIL, "tempfail", "451",
     "4.4.1"},
    {"bad reply", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_E_BADREPLY, 0, "", 0, SMFIS_TEMPFAIL, "tempfail",
     "451", "4.4.1"},
    {"tls required", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_E_PROTO, 0, "", 0, SMFIS_TEMPFAIL, "tempfail",
     "451", "4.4.1"},
    {"route down", GW_VERDICT_TEMPFAIL, GW_CA_SRC_DOWN, GW_OK, 0, "", 0, SMFIS_TEMPFAIL, "tempfail", "451",
     "4.4.1"},
    {"probe cap", GW_VERDICT_TEMPFAIL, GW_CA_SRC_LIMIT, GW_OK, 0, "", 0, SMFIS_TEMPFAIL, "tempfail", "451",
     "4.4.1"},
    {"5xx under tempfail", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_OK, 550, "5.1.1", 0, SMFIS_TEMPFAIL,
     "tempfail", "451", "4.4.1"},
    /* fail_open: only when the MTA could not be reached. */
    {"fail-open refused", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_E_REFUSED, 0, "", 1, SMFIS_CONTINUE,
     "fail-open", "", ""},
    {"fail-open timeout", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_E_TIMEOUT, 0, "", 1, SMFIS_CONTINUE,
     "fail-open", "", ""},
    {"fail-open down", GW_VERDICT_TEMPFAIL, GW_CA_SRC_DOWN, GW_OK, 0, "", 1, SMFIS_CONTINUE, "fail-open", "",
     ""},
    {"fail-open not for 450", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_OK, 450, "4.2.1", 1, SMFIS_TEMPFAIL,
     "tempfail", "450", "4.2.1"},
    {"fail-open not for 421", GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_E_REJECTED, 421, "", 1, SMFIS_TEMPFAIL,
     "tempfail", "451", "4.4.1"},
    {"fail-open not for probe cap", GW_VERDICT_TEMPFAIL, GW_CA_SRC_LIMIT, GW_OK, 0, "", 1, SMFIS_TEMPFAIL,
     "tempfail", "451", "4.4.1"},
    {"fail-open never turns reject", GW_VERDICT_REJECT, GW_CA_SRC_NEW, GW_OK, 550, "5.1.1", 1, SMFIS_REJECT,
     "reject", "550", "5.1.1"},
};

static void test_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const row *w = &rows[i];
		gwm_reply_opts o = {0, w->fail_open};
		gw_ca_result res = result(w->verdict, w->source, w->status, w->code, w->enh, "internal text");
		gwm_reply r;
		sfsistat act;

		gwm_reply_for_result(&o, "user@example.com", &res, &r);
		if (r.action != w->want_action || strcmp(r.verdict, w->want_verdict) != 0 ||
		    strcmp(r.rcode, w->want_rcode) != 0 || strcmp(r.xcode, w->want_xcode) != 0)
			fail_msg("%s: got action %d %s %s %s, want %d %s %s %s", w->name, r.action, r.verdict,
				 r.rcode, r.xcode, w->want_action, w->want_verdict, w->want_rcode,
				 w->want_xcode);
		setreply_calls = 0;
		act = gwm_reply_send(NULL, &r);
		assert_int_equal(act, w->want_action);
		assert_int_equal(setreply_calls, w->want_rcode[0] != '\0' ? 1 : 0);
		if (w->want_rcode[0] != '\0') {
			assert_string_equal(got_rcode, w->want_rcode);
			assert_string_equal(got_xcode, w->want_xcode);
			/* The recipient is named; the internal host and text are not. */
			assert_non_null(strstr(got_text, "<user@example.com>: "));
			assert_null(strstr(got_text, "10.0.0.5"));
			assert_null(strstr(got_text, "internal text"));
		}
	}
}

static void test_texts(void **state)
{
	gwm_reply_opts o = {0, 0};
	gw_ca_result res = result(GW_VERDICT_REJECT, GW_CA_SRC_NEW, GW_OK, 550, "5.1.1", "no");
	gwm_reply r;

	(void)state;
	gwm_reply_for_result(&o, "u@example.com", &res, &r);
	assert_string_equal(r.text, "<u@example.com>: Recipient address rejected: User unknown");
	res = result(GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_E_REFUSED, 0, "", "connection refused");
	gwm_reply_for_result(&o, "u@example.com", &res, &r);
	assert_string_equal(
	    r.text,
	    "<u@example.com>: Recipient address verification failed: cannot verify now, try again later");
	gwm_reply_bad_input("CR in address", &r);
	assert_int_equal(r.action, SMFIS_REJECT);
	assert_string_equal(r.rcode, "501");
	assert_string_equal(r.xcode, "5.1.3");
	assert_string_equal(r.text, "Bad recipient address syntax: CR in address");
	gwm_reply_unknown_limit(&r);
	assert_int_equal(r.action, SMFIS_TEMPFAIL);
	assert_string_equal(r.rcode, "451");
	assert_string_equal(r.xcode, "4.7.1");
	gwm_reply_local_error("u@example.com", &r);
	assert_int_equal(r.action, SMFIS_TEMPFAIL);
	assert_string_equal(r.rcode, "451");
	assert_string_equal(r.xcode, "4.3.0");
	gwm_reply_skip(&r);
	assert_int_equal(r.action, SMFIS_CONTINUE);
	assert_string_equal(r.verdict, "skip");
	setreply_calls = 0;
	assert_int_equal(gwm_reply_send(NULL, &r), SMFIS_CONTINUE);
	assert_int_equal(setreply_calls, 0);
}

static void test_reveal(void **state)
{
	gwm_reply_opts on = {1, 0}, off = {0, 0};
	gw_ca_result res =
	    result(GW_VERDICT_REJECT, GW_CA_SRC_NEW, GW_OK, 550, "5.1.1", "no such user\r\nX: y %s");
	gwm_reply r;

	(void)state;
	gwm_reply_for_result(&on, "u@example.com", &res, &r);
	assert_string_equal(r.text, "<u@example.com>: Recipient address rejected: User unknown "
				    "([10.0.0.5]:25 said: 550 5.1.1 no such user  X: y %%s)");
	gwm_reply_for_result(&off, "u@example.com", &res, &r);
	assert_null(strstr(r.text, "10.0.0.5"));
	assert_null(strstr(r.text, "no such user"));
	/* A failure without a reply: the reason, still sanitised. */
	res = result(GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_E_REFUSED, 0, "",
		     "connect: Connection refused\x01");
	gwm_reply_for_result(&on, "u@example.com", &res, &r);
	assert_non_null(strstr(r.text, "([10.0.0.5]:25: connect: Connection refused?)"));
	assert_string_equal(r.rcode, "451");
	/* No hop known. */
	res = result(GW_VERDICT_TEMPFAIL, GW_CA_SRC_DOWN, GW_OK, 0, "", "");
	res.hop[0] = '\0';
	gwm_reply_for_result(&on, "u@example.com", &res, &r);
	assert_non_null(strstr(r.text, "(internal MTA: no answer)"));
}

static void test_percent_and_controls(void **state)
{
	gwm_reply_opts o = {0, 0};
	gw_ca_result res = result(GW_VERDICT_REJECT, GW_CA_SRC_NEW, GW_OK, 550, "5.1.1", "");
	gwm_reply r;
	const char *p;

	(void)state;
	gwm_reply_for_result(&o, "100%user%s@example.com", &res, &r);
	assert_string_equal(r.text, "<100%%user%%s@example.com>: Recipient address rejected: User unknown");
	/* Every '%' in the text is doubled: an even run everywhere. */
	for (p = r.text; *p != '\0'; p++) {
		size_t n = strspn(p, "%");
		assert_int_equal(n % 2, 0);
		p += n > 0 ? n - 1 : 0;
	}
	/* Nothing outside printable ASCII ever reaches the reply. */
	res = result(GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_OK, 450, "4.2.1", "a\rb\nc\td\x7f\xff\x1b[0m");
	o.reveal_internal = 1;
	gwm_reply_for_result(&o, "u@example.com", &res, &r);
	for (p = r.text; *p != '\0'; p++)
		assert_true(*p >= 0x20 && *p <= 0x7e);
	assert_non_null(strstr(r.text, "a b c d???[0m"));
}

typedef struct srow {
	const char *in;
	size_t size, max;
	const char *want;
} srow;

static void test_sanitize(void **state)
{
	static const srow t[] = {
	    {"plain", 64, 100, "plain"},
	    {"a%b", 64, 100, "a%%b"},
	    {"%%", 64, 100, "%%%%"},
	    {"cr\rlf\nnul", 64, 100, "cr lf nul"},
	    {"\x01\x7f\x80\xc3\xa9", 64, 100, "?????"},
	    {"abcdef", 4, 100, "abc"}, /* size bound */
	    {"abcdef", 64, 2, "ab"},   /* max bound on input */
	    {"ab%", 4, 100, "ab"},     /* never half a "%%" */
	    {"a%", 4, 100, "a%%"},
	    {"", 64, 100, ""},
	};
	char out[64];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		n = gwm_reply_sanitize(out, t[i].size, t[i].in, strlen(t[i].in), t[i].max);
		if (strcmp(out, t[i].want) != 0 || n != strlen(t[i].want))
			fail_msg("sanitize(\"%s\", %zu, %zu): got \"%s\" (%zu), want \"%s\"", t[i].in,
				 t[i].size, t[i].max, out, n, t[i].want);
	}
	assert_int_equal(gwm_reply_sanitize(out, 0, "x", 1, 10), 0);
	assert_int_equal(gwm_reply_sanitize(out, sizeof(out), NULL, 5, 10), 0);
	assert_string_equal(out, "");
}

static void test_long_text(void **state)
{
	gwm_reply_opts o = {1, 0};
	gw_ca_result res;
	char rcpt[GW_PATH_MAX + 1];
	gwm_reply r;

	(void)state;
	res = result(GW_VERDICT_TEMPFAIL, GW_CA_SRC_NEW, GW_OK, 452, "4.2.2", "");
	memset(res.text, '%', sizeof(res.text) - 1);
	res.text[sizeof(res.text) - 1] = '\0';
	memset(res.hop, 'h', sizeof(res.hop) - 1);
	res.hop[sizeof(res.hop) - 1] = '\0';
	memset(rcpt, '%', 64);
	rcpt[64] = '@';
	memset(rcpt + 65, 'd', sizeof(rcpt) - 66);
	rcpt[sizeof(rcpt) - 1] = '\0';
	gwm_reply_for_result(&o, rcpt, &res, &r);
	assert_true(strlen(r.text) < GWM_REPLY_TEXT_MAX);
	assert_true(strlen(r.text) + 4 + strlen(r.xcode) + 2 < 980); /* libmilter's MAXREPLYLEN */
	assert_string_equal(r.rcode, "452");
	/* Cut, but never in the middle of a "%%". */
	assert_int_equal(strspn(r.text + strlen(r.text) - strspn(r.text, "%"), "%") % 2, 0);
}

/* Every temporary result, whatever it carries, answers 4xx (not 421) or fails open. */
static void test_never_5xx_when_temporary(void **state)
{
	static const gw_status st[] = {GW_OK,    GW_E_REFUSED, GW_E_TIMEOUT,  GW_E_LOST,    GW_E_BADREPLY,
				       GW_E_TLS, GW_E_PROTO,   GW_E_REJECTED, GW_E_RESOLVE, GW_E_LOCAL};
	static const char *const enh[] = {"", "4.2.1", "5.1.1", "2.0.0", "x.y.z", "4.1234.1", "5."};
	gwm_reply r;
	gw_ca_result res;
	int code, src, fo, rev;
	size_t s, e;

	(void)state;
	for (code = 0; code < 700; code += (code < 200 ? 200 : 1))
		for (s = 0; s < sizeof(st) / sizeof(st[0]); s++)
			for (src = GW_CA_SRC_CACHE; src <= GW_CA_SRC_NOROUTE; src++)
				for (e = 0; e < sizeof(enh) / sizeof(enh[0]); e++)
					for (fo = 0; fo < 2; fo++)
						for (rev = 0; rev < 2; rev++) {
							gwm_reply_opts o = {rev, fo};
							res = result(GW_VERDICT_TEMPFAIL, (gw_ca_source)src,
								     st[s], code, enh[e], "t");
							gwm_reply_for_result(&o, "u@example.com", &res, &r);
							if (r.action == SMFIS_CONTINUE) {
								assert_true(fo);
								assert_string_equal(r.verdict, "fail-open");
								continue;
							}
							assert_int_equal(r.action, SMFIS_TEMPFAIL);
							if (r.rcode[0] != '4' ||
							    strcmp(r.rcode, "421") == 0 ||
							    r.xcode[0] != '4' || r.xcode[1] != '.')
								fail_msg(
								    "code %d enh %s status %zu: got %s %s",
								    code, enh[e], s, r.rcode, r.xcode);
						}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_texts),
	    cmocka_unit_test(test_reveal),
	    cmocka_unit_test(test_percent_and_controls),
	    cmocka_unit_test(test_sanitize),
	    cmocka_unit_test(test_long_text),
	    cmocka_unit_test(test_never_5xx_when_temporary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
