/*
 * test_prvs_filter.c - gw-milter's PRVS decisions (milter/prvs_filter.c and
 * milter/reply.c, linked from gw_milter_core), with a fixed day and a key
 * ring built in memory: the RCPT decision table (bounce or not, trusted
 * client or not, no tag / valid / expired / bad signature / unknown key /
 * malformed, exempt address and domain, other domains, verify off, PRVS
 * off), MAILER-DAEMON senders with and without the option, the reply texts,
 * and the signing decisions (internal, authenticated and external clients,
 * signing domain or not, already tagged, null sender, exempt sender,
 * over-long local part).
 * The smfi seam (gwm_setreply) is a stub defined here, in place of
 * milter/smfi_seam.c: nothing here talks to an MTA.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "milter/reply.h"
#include "milter/prvs_filter.h"
#include "milter/smfi_seam.h"

int gwm_setreply(SMFICTX *ctx, const char *rcode, const char *xcode, const char *text)
{
	(void)ctx;
	(void)rcode;
	(void)xcode;
	(void)text;
	return MI_SUCCESS;
}

#define DAY 20000L /* fixed "today" (2024-10-04) */

static char *sign_domains[] = {"example.com", "example.org"};
static char *exempt[] = {"list@example.com", "@example.org"};
static char *sign_exempt[] = {"noreply@example.com"};

/* A ring with key 1 (signing) and key 2; a second ring with key 5 only. */
static gw_prvs_ring *ring, *other_ring;
static gwm_prvs_conf pc;

static int setup(void **state)
{
	(void)state;
	ring = gw_prvs_ring_new();
	other_ring = gw_prvs_ring_new();
	if (ring == NULL || other_ring == NULL || gw_prvs_ring_add(ring, 1, "s3cret-one", 10) != 0 ||
	    gw_prvs_ring_add(ring, 2, "s3cret-two", 10) != 0 || gw_prvs_ring_set_signing(ring, 1) != 0 ||
	    gw_prvs_ring_add(other_ring, 5, "elsewhere", 9) != 0 ||
	    gw_prvs_ring_set_signing(other_ring, 5) != 0)
		return -1;
	memset(&pc, 0, sizeof(pc));
	pc.ring = ring;
	pc.sign_domains = sign_domains;
	pc.nsign_domains = 2;
	pc.exempt = exempt;
	pc.nexempt = 2;
	pc.sign_exempt = sign_exempt;
	pc.nsign_exempt = 1;
	pc.verify = 1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	gw_prvs_ring_free(&ring);
	gw_prvs_ring_free(&other_ring);
	return 0;
}

/* addr signed with r's signing key on day. */
static const char *tag(const gw_prvs_ring *r, long day, const char *addr)
{
	static char buf[8][GW_PRVS_ADDR_MAX + 1];
	static int n;
	char *b = buf[n++ % 8];

	assert_int_equal(gw_prvs_sign(r, day, addr, 0, b, GW_PRVS_ADDR_MAX + 1, NULL), GW_PRVS_SIGNED);
	return b;
}

/* --- RCPT ------------------------------------------------------------------------ */

typedef struct rrow {
	const char *name;
	const char *rcpt;
	int bounce, trusted;
	gwm_prvs_action want;
	gw_prvs_result want_result;
	const char *want_plain; /* STRIP only */
	const char *want_text;  /* REJECT only */
	int want_log;
} rrow;

#define NOBOUNCE "this address sent no mail that could bounce"
#define EXPIRED  "bounce to an expired address tag"

static void check_rcpt(const rrow *r)
{
	gwm_prvs_rcpt_dec d;
	char want_text[600];

	gwm_prvs_rcpt(&pc, DAY, r->bounce, r->trusted, r->rcpt, &d);
	if (d.action != r->want || d.result != r->want_result || d.log != r->want_log)
		fail_msg("%s: %s: got action %s result %s log %d, want %s %s %d", r->name, r->rcpt,
			 gwm_prvs_action_str(d.action), gw_prvs_result_str(d.result), d.log,
			 gwm_prvs_action_str(r->want), gw_prvs_result_str(r->want_result), r->want_log);
	if (r->want == GWM_PRVS_STRIP && strcmp(d.plain, r->want_plain) != 0)
		fail_msg("%s: got plain '%s', want '%s'", r->name, d.plain, r->want_plain);
	if (r->want != GWM_PRVS_STRIP && d.plain[0] != '\0')
		fail_msg("%s: got plain '%s', want none", r->name, d.plain);
	if (r->want == GWM_PRVS_REJECT) {
		snprintf(want_text, sizeof(want_text), "<%s>: %s", r->rcpt, r->want_text);
		if (d.reply.action != SMFIS_REJECT || strcmp(d.reply.rcode, "550") != 0 ||
		    strcmp(d.reply.xcode, "5.7.1") != 0 || strcmp(d.reply.text, want_text) != 0)
			fail_msg("%s: got reply %s %s '%s', want 550 5.7.1 '%s'", r->name, d.reply.rcode,
				 d.reply.xcode, d.reply.text, want_text);
	} else if (d.reply.rcode[0] != '\0') {
		fail_msg("%s: got reply %s, want none", r->name, d.reply.rcode);
	}
}

static void test_rcpt_table(void **state)
{
	char badsig[GW_PRVS_ADDR_MAX + 1], upper[GW_PRVS_ADDR_MAX + 1];
	const char *valid = tag(ring, DAY, "alice@example.com");
	const char *old_ok = tag(ring, DAY - 7, "alice@example.com"); /* expires today: still valid */
	const char *expired = tag(ring, DAY - 8, "alice@example.com");
	const char *key2;
	size_t i;

	(void)state;
	/* a valid tag from the non-signing key 2 (the previous key, kept for verification) */
	assert_int_equal(gw_prvs_ring_set_signing(ring, 2), 0);
	key2 = tag(ring, DAY - 3, "bob@example.com");
	assert_int_equal(gw_prvs_ring_set_signing(ring, 1), 0);
	snprintf(badsig, sizeof(badsig), "%s", valid);
	badsig[14] = badsig[14] == '0' ? '1' : '0'; /* one hex digit of SSSSSS */
	snprintf(upper, sizeof(upper), "PRVS=%s", valid + 5);
	for (i = 9; i < 15; i++)
		upper[i] = (char)toupper((unsigned char)upper[i]);

	const rrow rows[] = {
	    {"bounce, no tag", "alice@example.com", 1, 0, GWM_PRVS_REJECT, GW_PRVS_NOT_TAGGED, NULL, NOBOUNCE,
	     1},
	    {"bounce, second domain, no tag", "carol@example.org", 1, 0, GWM_PRVS_PASS, GW_PRVS_NOT_TAGGED,
	     NULL, NULL, 1}, /* @example.org is exempt */
	    {"bounce, valid tag", valid, 1, 0, GWM_PRVS_STRIP, GW_PRVS_VALID, "alice@example.com", NULL, 1},
	    {"bounce, tag expiring today", old_ok, 1, 0, GWM_PRVS_STRIP, GW_PRVS_VALID, "alice@example.com",
	     NULL, 1},
	    {"bounce, uppercase tag", upper, 1, 0, GWM_PRVS_STRIP, GW_PRVS_VALID, "alice@example.com", NULL,
	     1},
	    {"bounce, previous key", key2, 1, 0, GWM_PRVS_STRIP, GW_PRVS_VALID, "bob@example.com", NULL, 1},
	    {"bounce, expired tag", expired, 1, 0, GWM_PRVS_REJECT, GW_PRVS_EXPIRED, NULL, EXPIRED, 1},
	    {"bounce, bad signature", badsig, 1, 0, GWM_PRVS_REJECT, GW_PRVS_BAD_SIGNATURE, NULL, NOBOUNCE,
	     1},
	    {"bounce, unknown key", tag(other_ring, DAY, "alice@example.com"), 1, 0, GWM_PRVS_REJECT,
	     GW_PRVS_UNKNOWN_KEY, NULL, NOBOUNCE, 1},
	    {"bounce, malformed tag", "prvs=1zz=alice@example.com", 1, 0, GWM_PRVS_REJECT, GW_PRVS_MALFORMED,
	     NULL, NOBOUNCE, 1},
	    {"bounce, exempt address", "list@example.com", 1, 0, GWM_PRVS_PASS, GW_PRVS_NOT_TAGGED, NULL,
	     NULL, 1},
	    {"bounce, exempt address, any case", "LIST@example.com", 1, 0, GWM_PRVS_PASS, GW_PRVS_NOT_TAGGED,
	     NULL, NULL, 1},
	    {"bounce, exempt address, expired tag", tag(ring, DAY - 30, "list@example.com"), 1, 0,
	     GWM_PRVS_STRIP, GW_PRVS_EXPIRED, "list@example.com", NULL, 1},
	    {"bounce, other domain", "dave@elsewhere.test", 1, 0, GWM_PRVS_NONE, GW_PRVS_NOT_TAGGED, NULL,
	     NULL, 0},
	    {"bounce, other domain, valid tag", tag(ring, DAY, "dave@elsewhere.test"), 1, 0, GWM_PRVS_STRIP,
	     GW_PRVS_VALID, "dave@elsewhere.test", NULL, 1},
	    {"bounce from a trusted client", "alice@example.com", 1, 1, GWM_PRVS_NONE, GW_PRVS_NOT_TAGGED,
	     NULL, NULL, 1},
	    {"bounce from a trusted client, valid tag", valid, 1, 1, GWM_PRVS_STRIP, GW_PRVS_VALID,
	     "alice@example.com", NULL, 1},
	    {"mail, plain address", "alice@example.com", 0, 0, GWM_PRVS_NONE, GW_PRVS_NOT_TAGGED, NULL, NULL,
	     0},
	    {"mail, valid tag", valid, 0, 0, GWM_PRVS_STRIP, GW_PRVS_VALID, "alice@example.com", NULL, 1},
	    {"mail, expired tag", expired, 0, 0, GWM_PRVS_NONE, GW_PRVS_EXPIRED, NULL, NULL, 1},
	    {"mail, bad signature", badsig, 0, 0, GWM_PRVS_NONE, GW_PRVS_BAD_SIGNATURE, NULL, NULL, 1},
	};
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		check_rcpt(&rows[i]);
}

/* Each recipient of one bounce is judged on its own. */
static void test_rcpt_several(void **state)
{
	const char *rcpts[] = {tag(ring, DAY, "alice@example.com"), "bob@example.com",
			       tag(ring, DAY - 20, "carol@example.com"), "list@example.com", "x@remote.test"};
	const gwm_prvs_action want[] = {GWM_PRVS_STRIP, GWM_PRVS_REJECT, GWM_PRVS_REJECT, GWM_PRVS_PASS,
					GWM_PRVS_NONE};
	gwm_prvs_rcpt_dec d;
	size_t i;

	(void)state;
	for (i = 0; i < 5; i++) {
		gwm_prvs_rcpt(&pc, DAY, 1, 0, rcpts[i], &d);
		if (d.action != want[i])
			fail_msg("rcpt %zu %s: got %s, want %s", i, rcpts[i], gwm_prvs_action_str(d.action),
				 gwm_prvs_action_str(want[i]));
	}
}

static void test_verify_off(void **state)
{
	gwm_prvs_conf off = pc;
	gwm_prvs_rcpt_dec d;

	(void)state;
	off.verify = 0;
	gwm_prvs_rcpt(&off, DAY, 1, 0, "alice@example.com", &d);
	assert_int_equal(d.action, GWM_PRVS_NONE);
	gwm_prvs_rcpt(&off, DAY, 1, 0, tag(ring, DAY, "alice@example.com"), &d);
	assert_int_equal(d.action, GWM_PRVS_STRIP); /* stripping does not depend on verify */
	off.ring = NULL;                            /* PRVS off altogether */
	gwm_prvs_rcpt(&off, DAY, 1, 0, "alice@example.com", &d);
	assert_int_equal(d.action, GWM_PRVS_NONE);
	assert_int_equal(d.log, 0);
	gwm_prvs_rcpt(&off, DAY, 1, 0, tag(ring, DAY, "alice@example.com"), &d);
	assert_int_equal(d.action, GWM_PRVS_NONE);
}

static void test_reply_sanitised(void **state)
{
	gwm_prvs_rcpt_dec d;

	(void)state;
	gwm_prvs_rcpt(&pc, DAY, 1, 0, "100%@example.com", &d);
	assert_int_equal(d.action, GWM_PRVS_REJECT);
	assert_string_equal(d.reply.text, "<100%%@example.com>: " NOBOUNCE);
}

static void test_mailer_daemon(void **state)
{
	gwm_prvs_conf md = pc;

	(void)state;
	assert_true(gwm_prvs_bounce(&pc, ""));
	assert_false(gwm_prvs_bounce(&pc, "MAILER-DAEMON@remote.test"));
	assert_false(gwm_prvs_bounce(&pc, "alice@remote.test"));
	md.verify_mailer_daemon = 1;
	assert_true(gwm_prvs_bounce(&md, "MAILER-DAEMON@remote.test"));
	assert_true(gwm_prvs_bounce(&md, "mailer-daemon@remote.test"));
	assert_true(gwm_prvs_bounce(&md, ""));
	assert_false(gwm_prvs_bounce(&md, "mailer-daemonx@remote.test"));
	assert_false(gwm_prvs_bounce(&md, "alice@remote.test"));
}

/* --- signing --------------------------------------------------------------------- */

typedef struct srow {
	const char *name;
	const char *sender;
	int internal, authenticated;
	int want_sign, want_log;
	const char *want_why;
} srow;

static void test_sign_table(void **state)
{
	char longlocal[GW_PRVS_ADDR_MAX + 1];
	const srow rows[] = {
	    {"internal, signing domain", "alice@example.com", 1, 0, 1, 1, "signed"},
	    {"authenticated, signing domain", "alice@example.com", 0, 1, 1, 1, "signed"},
	    {"internal, second signing domain", "carol@example.org", 1, 0, 1, 1, "signed"},
	    {"external client", "alice@example.com", 0, 0, 0, 0, "-"},
	    {"internal, other domain", "dave@elsewhere.test", 1, 0, 0, 1, "other domain"},
	    {"internal, null sender", "", 1, 0, 0, 1, "null sender"},
	    {"internal, already prvs", "prvs=1123abcdef=alice@example.com", 1, 0, 0, 1, "already tagged"},
	    {"internal, SRS0", "SRS0=HHH=TT=remote.test=x@example.com", 1, 0, 0, 1, "already tagged"},
	    {"internal, exempt sender", "noreply@example.com", 1, 0, 0, 1, NULL},
	    {"internal, local part too long once tagged", longlocal, 1, 0, 0, 1, NULL},
	};
	gwm_prvs_sign_dec d;
	char orig[GW_PRVS_ADDR_MAX + 1];
	size_t i;

	(void)state;
	memset(longlocal, 'x', 60);
	snprintf(longlocal + 60, sizeof(longlocal) - 60, "@example.com");
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const srow *r = &rows[i];
		gwm_prvs_sign(&pc, DAY, r->internal, r->authenticated, r->sender, &d);
		if (d.sign != r->want_sign || d.log != r->want_log ||
		    (r->want_why != NULL && strcmp(d.why, r->want_why) != 0))
			fail_msg("%s: got sign %d log %d why '%s', want %d %d '%s'", r->name, d.sign, d.log,
				 d.why, r->want_sign, r->want_log,
				 r->want_why != NULL ? r->want_why : "(any)");
		if (d.sign) {
			/* the signed sender verifies today, to the original */
			if (gw_prvs_verify(ring, DAY, d.addr, orig, sizeof(orig)) != GW_PRVS_VALID ||
			    strcmp(orig, r->sender) != 0 || strncmp(d.addr, "prvs=1", 6) != 0)
				fail_msg("%s: got '%s', want a valid key-1 tag of '%s'", r->name, d.addr,
					 r->sender);
		} else if (d.addr[0] != '\0') {
			fail_msg("%s: got address '%s', want none", r->name, d.addr);
		}
	}
	/* the signed sender's bounce is accepted and stripped */
	gwm_prvs_sign(&pc, DAY, 1, 0, "alice@example.com", &d);
	{
		gwm_prvs_rcpt_dec r;
		gwm_prvs_rcpt(&pc, DAY + 3, 1, 0, d.addr, &r);
		assert_int_equal(r.action, GWM_PRVS_STRIP);
		assert_string_equal(r.plain, "alice@example.com");
		gwm_prvs_rcpt(&pc, DAY + 8, 1, 0, d.addr, &r);
		assert_int_equal(r.action, GWM_PRVS_REJECT);
	}
	/* PRVS off: nothing signed, nothing logged */
	{
		gwm_prvs_conf off = pc;
		off.ring = NULL;
		gwm_prvs_sign(&off, DAY, 1, 1, "alice@example.com", &d);
		assert_int_equal(d.sign, 0);
		assert_int_equal(d.log, 0);
	}
}

static void test_signing_domain(void **state)
{
	(void)state;
	assert_true(gwm_prvs_signing_domain(&pc, "example.com"));
	assert_true(gwm_prvs_signing_domain(&pc, "EXAMPLE.com"));
	assert_false(gwm_prvs_signing_domain(&pc, "sub.example.com"));
	assert_false(gwm_prvs_signing_domain(&pc, NULL));
	assert_string_equal(gwm_prvs_action_str(GWM_PRVS_STRIP), "strip");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rcpt_table),     cmocka_unit_test(test_rcpt_several),
	    cmocka_unit_test(test_verify_off),     cmocka_unit_test(test_reply_sanitised),
	    cmocka_unit_test(test_mailer_daemon),  cmocka_unit_test(test_sign_table),
	    cmocka_unit_test(test_signing_domain),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
