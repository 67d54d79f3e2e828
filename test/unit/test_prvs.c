/*
 * test_prvs.c - gw_prvs sign, verify, strip, the key ring and the key file,
 * all at a fixed day. Expected signatures are computed here independently
 * with OpenSSL's one-shot HMAC(), and a few were produced by real Exim 4.96
 * (${prvs{...}}) on day 20780, the day these tests use.
 *
 * Does not test: ENOMEM and OpenSSL failures (nothing is replaced here);
 * interoperation with a live Exim (test/sh/prvs_exim.sh does that).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gw/prvs.h"

#define DAY 20780L /* 2026-11-23; DDD for a tag made today is 787 */

static const char *const secrets[GW_PRVS_KEYS] = {
    "k3y!",
    "secret",
    "another secret without blanks",
    NULL,
    "0123456789012345678901234567890123456789012345678901234567890123",
    "x",
    NULL,
    "c8271560fca438e43812948c36e344fa6ec571543aac4dd7908179ddcdea04ae",
    NULL,
    "0123456789012345678901234567890123456789012345678901234567890123",
};

/* A ring with every non-NULL secret above, signing with key `sign`. */
static gw_prvs_ring *make_ring(int sign)
{
	gw_prvs_ring *r = gw_prvs_ring_new();

	assert_non_null(r);
	for (int k = 0; k < GW_PRVS_KEYS; k++)
		if (secrets[k] != NULL)
			assert_int_equal(gw_prvs_ring_add(r, k, secrets[k], strlen(secrets[k])), 0);
	assert_int_equal(gw_prvs_ring_set_signing(r, sign), 0);
	return r;
}

/* The tag computed the plain way: HMAC() over K DDD addr. */
static void expected_tag(int k, const char *secret, long day, const char *addr, char *out, size_t size)
{
	char msg[600];
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	int ddd = (int)((day + 7) % 1000);

	snprintf(msg, sizeof(msg), "%d%03d%s", k, ddd, addr);
	assert_non_null(HMAC(EVP_sha1(), secret, (int)strlen(secret), (const unsigned char *)msg, strlen(msg),
			     mac, &maclen));
	assert_int_equal(maclen, 20);
	snprintf(out, size, "prvs=%d%03d%02x%02x%02x=%s", k, ddd, mac[0], mac[1], mac[2], addr);
}

static void check_sign(gw_prvs_ring *r, long day, const char *addr, const char *want, const char *what)
{
	char buf[GW_PRVS_ADDR_MAX + 1];
	gw_prvs_skip skip = GW_PRVS_SKIP_TOO_LONG;
	int rc = gw_prvs_sign(r, day, addr, 0, buf, sizeof(buf), &skip);

	if (rc != GW_PRVS_SIGNED)
		fail_msg("%s: sign(%s) got rc %d errno %d, want signed", what, addr, rc, errno);
	if (skip != GW_PRVS_SKIP_NONE)
		fail_msg("%s: skip got %d, want none", what, (int)skip);
	if (strcmp(buf, want) != 0)
		fail_msg("%s: sign(%s) got \"%s\", want \"%s\"", what, addr, buf, want);
}

static void check_verify(gw_prvs_ring *r, long day, const char *addr, gw_prvs_result want,
			 const char *want_orig, const char *what)
{
	char orig[GW_PRVS_ADDR_MAX + 1];
	gw_prvs_result got;

	memset(orig, 'Z', sizeof(orig));
	got = gw_prvs_verify(r, day, addr, orig, sizeof(orig));
	if (got != want)
		fail_msg("%s: verify(%s) day %ld got %s, want %s", what, addr, day, gw_prvs_result_str(got),
			 gw_prvs_result_str(want));
	if (want_orig != NULL && strcmp(orig, want_orig) != 0)
		fail_msg("%s: verify(%s) original got \"%s\", want \"%s\"", what, addr, orig, want_orig);
}

static void test_sign_hmac_vectors(void **state)
{
	static const struct {
		int key;
		long day;
		const char *addr;
	} cases[] = {
	    {1, DAY, "user@example.com"},
	    {0, DAY, "Joe.Bloggs@Example.ORG"},
	    {2, DAY, "a@b"},
	    {4, DAY, "x@y.z"},
	    {5, DAY, "first.last+tag@sub.example.net"},
	    {7, 20993, "wrap@example.com"},  /* (20993 + 7) % 1000 = 0: DDD "000" */
	    {9, 20995, "wrap2@example.com"}, /* DDD "002" */
	    {1, 20000, "zero@example.com"},  /* DDD "007" */
	    {1, 20092, "ninetynine@example.com"},
	    {2, DAY, "\"a@b\"@example.com"}, /* split at the last '@': the whole is signed */
	    {2, DAY, "\"a b\"@example.com"},
	    {0, DAY, "u@[192.0.2.1]"},
	    {0, DAY, "\xc3\xa9l\xc3\xa8ve@example.fr"}, /* UTF-8 bytes signed as written */
	};
	char want[600], what[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_prvs_ring *r = make_ring(cases[i].key);
		expected_tag(cases[i].key, secrets[cases[i].key], cases[i].day, cases[i].addr, want,
			     sizeof(want));
		snprintf(what, sizeof(what), "case %zu", i);
		check_sign(r, cases[i].day, cases[i].addr, want, what);
		check_verify(r, cases[i].day, want, GW_PRVS_VALID, cases[i].addr, what);
		gw_prvs_ring_free(&r);
		assert_null(r);
	}
}

/* Produced by Exim 4.96 (Debian 4.96-15+deb12u10) `exim -be '${prvs{ADDR}{SECRET}{K}}'` on day 20780. */
static const struct {
	int key;
	const char *addr, *tagged;
} exim_vectors[] = {
    {1, "user@example.com", "prvs=178773a1ad=user@example.com"},
    {7, "Joe.Bloggs@Example.ORG", "prvs=7787685416=Joe.Bloggs@Example.ORG"},
    {0, "\"a@b\"@example.com", "prvs=078775bc6d=\"a@b\"@example.com"},
    {9, "x@y.z", "prvs=978719871f=x@y.z"},
};

static void test_exim_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(exim_vectors) / sizeof(exim_vectors[0]); i++) {
		gw_prvs_ring *r = make_ring(exim_vectors[i].key);
		check_sign(r, DAY, exim_vectors[i].addr, exim_vectors[i].tagged, "exim");
		check_verify(r, DAY, exim_vectors[i].tagged, GW_PRVS_VALID, exim_vectors[i].addr, "exim");
		gw_prvs_ring_free(&r);
	}
}

/* A tag made on day `signed_on` checked on day `today`. */
static void check_window(long signed_on, long today, gw_prvs_result want)
{
	char tag[GW_PRVS_ADDR_MAX + 1], what[64];
	gw_prvs_ring *r = make_ring(1);

	assert_int_equal(gw_prvs_sign(r, signed_on, "user@example.com", 0, tag, sizeof(tag), NULL),
			 GW_PRVS_SIGNED);
	snprintf(what, sizeof(what), "signed %ld (DDD %.3s) checked %ld", signed_on, tag + 6, today);
	check_verify(r, today, tag, want, "user@example.com", what);
	gw_prvs_ring_free(&r);
}

static void test_expiry(void **state)
{
	(void)state;
	check_window(DAY, DAY, GW_PRVS_VALID);
	check_window(DAY, DAY + 1, GW_PRVS_VALID);
	check_window(DAY - 7, DAY, GW_PRVS_VALID);   /* expiry day equal to today */
	check_window(DAY - 8, DAY, GW_PRVS_EXPIRED); /* DDD = today - 1 */
	check_window(DAY, DAY + 8, GW_PRVS_EXPIRED);
	check_window(DAY, DAY + 500, GW_PRVS_EXPIRED);
	check_window(DAY + 1, DAY, GW_PRVS_EXPIRED); /* DDD = today + 8 */
	check_window(DAY, DAY + 1000,
		     GW_PRVS_VALID); /* 1000 days later the wheel comes round: a BATV limit */
}

static void test_wraparound(void **state)
{
	(void)state;
	/* Signed on 20995: DDD = 002. Today 995 -> valid, through today 002 (DDD == today). */
	check_window(20995, 20995, GW_PRVS_VALID);
	check_window(20995, 20999, GW_PRVS_VALID);
	check_window(20995, 21000, GW_PRVS_VALID);
	check_window(20995, 21002, GW_PRVS_VALID);
	check_window(20995, 21003, GW_PRVS_EXPIRED);
	/* Signed on 20991: DDD = 998. Today 001 -> expired. */
	check_window(20991, 21001, GW_PRVS_EXPIRED);
	check_window(20991, 20998, GW_PRVS_VALID);
	check_window(20991, 20999, GW_PRVS_EXPIRED);
	/* Signed on 20993: DDD = 000. */
	check_window(20993, 21000, GW_PRVS_VALID);
	check_window(20993, 21001, GW_PRVS_EXPIRED);
}

static void test_case_insensitive_tag(void **state)
{
	gw_prvs_ring *r = make_ring(1);

	(void)state;
	check_verify(r, DAY, "PRVS=178773A1AD=user@example.com", GW_PRVS_VALID, "user@example.com", "upper");
	check_verify(r, DAY, "Prvs=178773a1AD=user@example.com", GW_PRVS_VALID, "user@example.com", "mixed");
	/* The address itself is covered byte for byte, as in Exim. */
	check_verify(r, DAY, "prvs=178773a1ad=User@example.com", GW_PRVS_BAD_SIGNATURE, "User@example.com",
		     "local case");
	check_verify(r, DAY, "prvs=178773a1ad=user@EXAMPLE.com", GW_PRVS_BAD_SIGNATURE, "user@EXAMPLE.com",
		     "domain case");
	gw_prvs_ring_free(&r);
}

static void test_bad_signature_and_unknown_key(void **state)
{
	gw_prvs_ring *r = gw_prvs_ring_new();

	(void)state;
	assert_int_equal(gw_prvs_ring_add(r, 1, "secret", 6), 0);
	check_verify(r, DAY, "prvs=178773a1ae=user@example.com", GW_PRVS_BAD_SIGNATURE, "user@example.com",
		     "hex");
	check_verify(r, DAY, "prvs=178873a1ad=user@example.com", GW_PRVS_BAD_SIGNATURE, "user@example.com",
		     "day");
	check_verify(r, DAY, "prvs=178773a1ad=user@example.net", GW_PRVS_BAD_SIGNATURE, "user@example.net",
		     "domain");
	/* An old forged tag is a bad signature, not "expired". */
	check_verify(r, DAY, "prvs=1001000000=user@example.com", GW_PRVS_BAD_SIGNATURE, "user@example.com",
		     "forged old");
	check_verify(r, DAY, "prvs=278773a1ad=user@example.com", GW_PRVS_UNKNOWN_KEY, "user@example.com",
		     "K=2");
	check_verify(r, DAY, "prvs=078773a1ad=user@example.com", GW_PRVS_UNKNOWN_KEY, "user@example.com",
		     "K=0");
	/* Same secret under another key number signs differently. */
	assert_int_equal(gw_prvs_ring_add(r, 2, "secret", 6), 0);
	check_verify(r, DAY, "prvs=278773a1ad=user@example.com", GW_PRVS_BAD_SIGNATURE, "user@example.com",
		     "K=2");
	/* Without any ring, every tag is of an unknown key. */
	check_verify(NULL, DAY, "prvs=178773a1ad=user@example.com", GW_PRVS_UNKNOWN_KEY, "user@example.com",
		     "NULL");
	gw_prvs_ring_free(&r);
}

static void test_malformed(void **state)
{
	static const char *const cases[] = {
	    "prvs=",
	    "prvs=1",
	    "prvs=178773a1ad",                    /* nothing after the tag */
	    "prvs=178773a1ad=",                   /* empty address */
	    "prvs=178773a1a=user@example.com",    /* short hex */
	    "prvs=178773a1=user@example.com",     /* shorter hex */
	    "prvs=178773a1ag=user@example.com",   /* non-hex */
	    "prvs=178773 1ad=user@example.com",   /* blank in hex */
	    "prvs=x78773a1ad=user@example.com",   /* non-digit K */
	    "prvs=17a773a1ad=user@example.com",   /* non-digit DDD */
	    "prvs=1787=73a1ad=user@example.com",  /* short DDD */
	    "prvs=178773a1adXuser@example.com",   /* missing '=' */
	    "prvs=178773a1ad-user@example.com",   /* wrong separator */
	    "prvs=178773a1ad=@example.com",       /* empty local part */
	    "prvs=178773a1ad=user@",              /* empty domain */
	    "prvs=178773a1ad=userexample.com",    /* no '@' */
	    "prvs=178773a1ad=us\ter@example.com", /* control byte */
	    "prvs=178773a1ad=us\rer@example.com",
	    "prvs=178773a1ad=user@exam\x7fple.com",
	    "prvs=178773a1ad=user@example.com\n",
	    "PRVS=foo@example.com",
	};
	char long_addr[400];
	gw_prvs_ring *r = make_ring(1);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char what[32];
		snprintf(what, sizeof(what), "malformed %zu", i);
		check_verify(r, DAY, cases[i], GW_PRVS_MALFORMED, "", what);
	}
	/* Longer than any RFC 5321 path. */
	memset(long_addr, 'a', sizeof(long_addr));
	memcpy(long_addr, "prvs=178773a1ad=", GW_PRVS_TAG_LEN);
	memcpy(long_addr + 300, "@example.com", 13);
	check_verify(r, DAY, long_addr, GW_PRVS_MALFORMED, "", "too long");
	gw_prvs_ring_free(&r);
}

static void test_not_tagged(void **state)
{
	static const char *const cases[] = {
	    "user@example.com",
	    "",
	    "prv=178773a1ad=user@example.com",
	    "prvs",
	    "SRS0=abc=de=example.com=u@x.org",
	    "xprvs=178773a1ad=user@example.com",
	};
	gw_prvs_ring *r = make_ring(1);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_verify(r, DAY, cases[i], GW_PRVS_NOT_TAGGED, cases[i], "not tagged");
	gw_prvs_ring_free(&r);
}

static void test_quoted_local_part(void **state)
{
	char tag[GW_PRVS_ADDR_MAX + 1], want[600];
	gw_prvs_ring *r = make_ring(0);

	(void)state;
	/* The split is at the last '@': "a@b" is the local part, example.com the domain. */
	expected_tag(0, secrets[0], DAY, "\"a@b\"@example.com", want, sizeof(want));
	assert_int_equal(gw_prvs_sign(r, DAY, "\"a@b\"@example.com", 0, tag, sizeof(tag), NULL),
			 GW_PRVS_SIGNED);
	assert_string_equal(tag, want);
	assert_string_equal(tag, "prvs=078775bc6d=\"a@b\"@example.com"); /* Exim's */
	check_verify(r, DAY, tag, GW_PRVS_VALID, "\"a@b\"@example.com", "quoted");
	assert_int_equal(gw_prvs_strip(tag, tag, sizeof(tag)), 1);
	assert_string_equal(tag, "\"a@b\"@example.com");
	assert_int_equal(gw_prvs_listed("\"a@b\"@example.com", (const char *const[]){"@example.com"}, 1), 1);
	assert_int_equal(gw_prvs_listed("\"a@b\"@example.com", (const char *const[]){"@b\"@example.com"}, 1),
			 0);
	gw_prvs_ring_free(&r);
}

static void check_unsigned(gw_prvs_ring *r, const char *addr, unsigned flags, gw_prvs_skip want,
			   const char *what)
{
	char buf[GW_PRVS_ADDR_MAX + 1];
	gw_prvs_skip skip = GW_PRVS_SKIP_NONE;
	int rc = gw_prvs_sign(r, DAY, addr, flags, buf, sizeof(buf), &skip);

	if (rc != GW_PRVS_UNSIGNED)
		fail_msg("%s: sign(%s) got rc %d, want unsigned", what, addr, rc);
	if (skip != want)
		fail_msg("%s: sign(%s) skip got %s, want %s", what, addr, gw_prvs_skip_str(skip),
			 gw_prvs_skip_str(want));
	if (strcmp(buf, addr) != 0)
		fail_msg("%s: unsigned address got \"%s\", want it unchanged", what, buf);
}

static void test_not_signed(void **state)
{
	char local[80], addr[400], want[600];
	gw_prvs_ring *r = make_ring(1);

	(void)state;
	check_unsigned(r, "", 0, GW_PRVS_SKIP_NULL, "null");
	check_unsigned(r, "<>", 0, GW_PRVS_SKIP_NULL, "null <>");
	check_unsigned(r, "prvs=178773a1ad=user@example.com", 0, GW_PRVS_SKIP_TAGGED, "prvs");
	check_unsigned(r, "PRVS=178773a1ad=user@example.com", 0, GW_PRVS_SKIP_TAGGED, "PRVS");
	check_unsigned(r, "SRS0=HHH=TT=example.org=user@example.com", 0, GW_PRVS_SKIP_TAGGED, "SRS0");
	check_unsigned(r, "srs1=HHH=example.org==HHH=TT=example.net=u@example.com", 0, GW_PRVS_SKIP_TAGGED,
		       "srs1");
	check_unsigned(r, "BTV1==000abcdef=user@example.com", 0, GW_PRVS_SKIP_TAGGED, "btv1");
	check_unsigned(r, "user@example.com", GW_PRVS_EXEMPT, GW_PRVS_SKIP_EXEMPT, "exempt");
	/* 48 octets + the 16-octet tag = 64: signed. 49: left alone. */
	memset(local, 'l', 48);
	snprintf(addr, sizeof(addr), "%.48s@example.com", local);
	expected_tag(1, secrets[1], DAY, addr, want, sizeof(want));
	check_sign(r, DAY, addr, want, "local 48");
	memset(local, 'l', 49);
	snprintf(addr, sizeof(addr), "%.49s@example.com", local);
	check_unsigned(r, addr, 0, GW_PRVS_SKIP_TOO_LONG, "local 49");
	snprintf(addr, sizeof(addr), "\"%.47s\"@example.com", local); /* the quotes count */
	check_unsigned(r, addr, 0, GW_PRVS_SKIP_TOO_LONG, "quoted local 48");
	/* A whole address over 254 octets once tagged. */
	memset(addr, 'd', sizeof(addr));
	memcpy(addr, "u@", 2);
	addr[2 + 237] = '\0'; /* 239 + 16 = 255 */
	check_unsigned(r, addr, 0, GW_PRVS_SKIP_TOO_LONG, "address 239");
	addr[2 + 236] = '\0'; /* 238 + 16 = 254 */
	expected_tag(1, secrets[1], DAY, addr, want, sizeof(want));
	check_sign(r, DAY, addr, want, "address 238");
	/* Not signed does not need a signing key. */
	gw_prvs_ring_free(&r);
	check_unsigned(NULL, "", 0, GW_PRVS_SKIP_NULL, "null without ring");
}

static void test_sign_errors(void **state)
{
	static const char *const bad[] = {"user", "@example.com", "user@", "us\ner@example.com", "u\r@x",
					  "@"};
	char buf[GW_PRVS_ADDR_MAX + 1];
	gw_prvs_ring *r = make_ring(1), *empty = gw_prvs_ring_new();

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_int_equal(gw_prvs_sign(r, DAY, bad[i], 0, buf, sizeof(buf), NULL), -1);
		assert_int_equal(errno, EINVAL);
	}
	errno = 0;
	assert_int_equal(gw_prvs_sign(empty, DAY, "user@example.com", 0, buf, sizeof(buf), NULL), -1);
	assert_int_equal(errno, ENOKEY);
	assert_int_equal(gw_prvs_ring_add(empty, 3, "s", 1), 0);
	assert_int_equal(gw_prvs_ring_signing(empty), -1);
	assert_int_equal(gw_prvs_sign(empty, DAY, "user@example.com", 0, buf, sizeof(buf), NULL), -1);
	assert_int_equal(errno, ENOKEY);
	/* "prvs=178773a1ad=user@example.com" is 32 octets: 33 fit, 32 do not. */
	assert_int_equal(gw_prvs_sign(r, DAY, "user@example.com", 0, buf, 32, NULL), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(gw_prvs_sign(r, DAY, "user@example.com", 0, buf, 33, NULL), GW_PRVS_SIGNED);
	assert_string_equal(buf, "prvs=178773a1ad=user@example.com");
	assert_int_equal(gw_prvs_sign(r, DAY, "user@example.com", GW_PRVS_EXEMPT, buf, 16, NULL), -1);
	assert_int_equal(errno, ENOSPC);
	/* In place. */
	strcpy(buf, "user@example.com");
	assert_int_equal(gw_prvs_sign(r, DAY, buf, 0, buf, sizeof(buf), NULL), GW_PRVS_SIGNED);
	assert_string_equal(buf, "prvs=178773a1ad=user@example.com");
	assert_int_equal(gw_prvs_verify(r, DAY, buf, buf, sizeof(buf)), GW_PRVS_VALID);
	assert_string_equal(buf, "user@example.com");
	/* verify with too small an output buffer cannot decide. */
	assert_int_equal(gw_prvs_verify(r, DAY, "prvs=178773a1ad=user@example.com", buf, 16), GW_PRVS_ERROR);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(gw_prvs_verify(r, DAY, "prvs=178773a1ad=user@example.com", buf, 17), GW_PRVS_VALID);
	gw_prvs_ring_free(&r);
	gw_prvs_ring_free(&empty);
	gw_prvs_ring_free(&empty); /* idempotent on NULL */
}

static void test_ring(void **state)
{
	char big[GW_PRVS_SECRET_MAX + 1];
	gw_prvs_ring *r = gw_prvs_ring_new();

	(void)state;
	memset(big, 's', sizeof(big));
	errno = 0;
	assert_int_equal(gw_prvs_ring_add(r, -1, "s", 1), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(gw_prvs_ring_add(r, 10, "s", 1), -1);
	assert_int_equal(gw_prvs_ring_add(r, 0, "s", 0), -1);
	assert_int_equal(gw_prvs_ring_add(r, 0, big, sizeof(big)), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(gw_prvs_ring_add(r, 0, big, GW_PRVS_SECRET_MAX), 0);
	assert_int_equal(gw_prvs_ring_add(r, 0, "s", 1), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(gw_prvs_ring_set_signing(r, 5), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(gw_prvs_ring_has(r, 0), 1);
	assert_int_equal(gw_prvs_ring_has(r, 5), 0);
	assert_int_equal(gw_prvs_ring_has(r, 11), 0);
	assert_int_equal(gw_prvs_ring_set_signing(r, 0), 0);
	assert_int_equal(gw_prvs_ring_signing(r), 0);
	gw_prvs_ring_free(&r);
	assert_null(r);
}

/* Write text to dir/name with the given mode; returns the path in a static-free caller buffer. */
static void write_file(const char *dir, const char *name, const char *text, mode_t mode, char *path,
		       size_t size)
{
	int fd;

	snprintf(path, size, "%s/%s", dir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* Load text as a key file of the given mode; returns the ring or NULL with err. */
static gw_prvs_ring *load_text(const char *dir, const char *text, mode_t mode, char *err, size_t errlen)
{
	char path[512];
	gw_prvs_ring *r = NULL;

	write_file(dir, "keys", text, mode, path, sizeof(path));
	err[0] = '\0';
	if (gw_prvs_ring_load(path, &r, err, errlen) < 0) {
		assert_null(r);
		return NULL;
	}
	return r;
}

static void expect_refused(const char *dir, const char *text, mode_t mode, const char *want_err)
{
	char err[512];
	gw_prvs_ring *r = load_text(dir, text, mode, err, sizeof(err));

	if (r != NULL)
		fail_msg("key file %o \"%s\": accepted, want refused with \"%s\"", (unsigned)mode, text,
			 want_err);
	if (strstr(err, want_err) == NULL)
		fail_msg("key file \"%s\": error got \"%s\", want it to contain \"%s\"", text, err, want_err);
}

static void test_key_file(void **state)
{
	char dir[] = "/tmp/test_prvs.XXXXXX", err[512], path[512], tag[GW_PRVS_ADDR_MAX + 1];
	gw_prvs_ring *r;

	(void)state;
	assert_non_null(mkdtemp(dir));
	/* Permissions: 0644, 0640, 0604 and 0660 refused; 0600 and 0400 accepted. */
	expect_refused(dir, "1 secret\n", 0644, "group or others");
	expect_refused(dir, "1 secret\n", 0640, "mode 0640");
	expect_refused(dir, "1 secret\n", 0604, "chmod 600");
	expect_refused(dir, "1 secret\n", 0660, "group or others");
	r = load_text(dir, "1 secret\n", 0600, err, sizeof(err));
	if (r == NULL)
		fail_msg("0600 key file refused: %s", err);
	assert_int_equal(gw_prvs_ring_signing(r), 1); /* the only key signs */
	assert_int_equal(gw_prvs_sign(r, DAY, "user@example.com", 0, tag, sizeof(tag), NULL), GW_PRVS_SIGNED);
	assert_string_equal(tag, "prvs=178773a1ad=user@example.com");
	gw_prvs_ring_free(&r);
	r = load_text(dir, "1 secret\n", 0400, err, sizeof(err));
	assert_non_null(r);
	gw_prvs_ring_free(&r);

	/* Comments, blank lines, CRLF, tabs, rotation with two keys. */
	r = load_text(dir,
		      "# old key, kept for bounces\r\n"
		      "\n"
		      "  1\tsecret  \r\n"
		      "   # new key\n"
		      "7 c8271560fca438e43812948c36e344fa6ec571543aac4dd7908179ddcdea04ae\n"
		      "sign 7",
		      0600, err, sizeof(err));
	if (r == NULL)
		fail_msg("key file refused: %s", err);
	assert_int_equal(gw_prvs_ring_signing(r), 7);
	assert_int_equal(gw_prvs_sign(r, DAY, "Joe.Bloggs@Example.ORG", 0, tag, sizeof(tag), NULL),
			 GW_PRVS_SIGNED);
	assert_string_equal(tag, "prvs=7787685416=Joe.Bloggs@Example.ORG");
	check_verify(r, DAY, "prvs=178773a1ad=user@example.com", GW_PRVS_VALID, "user@example.com",
		     "old key");
	gw_prvs_ring_free(&r);

	expect_refused(dir, "", 0600, "no keys");
	expect_refused(dir, "# nothing\n", 0600, "no keys");
	expect_refused(dir, "1 a\n2 b\n", 0600, "no \"sign K\" line");
	expect_refused(dir, "1 a\nsign 2\n", 0600, ":2: sign 2: no key 2");
	expect_refused(dir, "1 a\n1 b\n", 0600, ":2: key 1 defined twice");
	expect_refused(dir, "1 a\nsign 1\nsign 1\n", 0600, ":3: a second \"sign\" line");
	expect_refused(dir, "1\n", 0600, ":1: expected \"K SECRET\"");
	expect_refused(dir, "1 a b\n", 0600, ":1: expected \"K SECRET\"");
	expect_refused(dir, "12 a\n", 0600, ":1: expected a key number");
	expect_refused(dir, "key a\n", 0600, ":1: expected a key number");
	expect_refused(dir, "1 a\nsign x\n", 0600, ":2: \"sign\" takes a key number");
	expect_refused(dir,
		       "1 0123456789012345678901234567890123456789012345678901234567890123"
		       "4\n",
		       0600, ":1: secret longer than 64");
	expect_refused(dir, "1 s\xc3\xa9\n", 0600, ":1: secret must be printable ASCII");

	/* Not a regular file; missing file. */
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(gw_prvs_ring_load(path, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(rmdir(path), 0);
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(gw_prvs_ring_load(path, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));

	snprintf(path, sizeof(path), "%s/keys", dir);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

static void test_strip(void **state)
{
	char buf[GW_PRVS_ADDR_MAX + 1];

	(void)state;
	assert_int_equal(gw_prvs_strip("prvs=178773a1ad=user@example.com", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "user@example.com");
	assert_int_equal(gw_prvs_strip("PRVS=9000FFFFFF=User@Example.com", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "User@Example.com");
	assert_int_equal(gw_prvs_strip("user@example.com", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "user@example.com");
	assert_int_equal(gw_prvs_strip("", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	errno = 0;
	assert_int_equal(gw_prvs_strip("prvs=17877=user@example.com", buf, sizeof(buf)), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(gw_prvs_strip("prvs=178773a1ad=user@example.com", buf, 16), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(gw_prvs_strip("prvs=178773a1ad=user@example.com", buf, 17), 1);
}

static void test_listed(void **state)
{
	static const char *const list[] = {"@Example.COM", "postmaster@example.net", "nodomain", NULL};
	const size_t n = sizeof(list) / sizeof(list[0]);

	(void)state;
	assert_int_equal(gw_prvs_listed("anyone@example.com", list, n), 1);
	assert_int_equal(gw_prvs_listed("anyone@EXAMPLE.com", list, n), 1);
	assert_int_equal(gw_prvs_listed("anyone@sub.example.com", list, n), 0);
	assert_int_equal(gw_prvs_listed("PostMaster@example.net", list, n), 1);
	assert_int_equal(gw_prvs_listed("other@example.net", list, n), 0);
	assert_int_equal(gw_prvs_listed("nodomain", list, n), 0);
	assert_int_equal(gw_prvs_listed("x@nodomain", list, n), 0);
	assert_int_equal(gw_prvs_listed("", list, n), 0);
	assert_int_equal(gw_prvs_listed("user@example.com", list, 0), 0);
}

static void test_strings(void **state)
{
	(void)state;
	for (int r = GW_PRVS_ERROR; r <= GW_PRVS_MALFORMED; r++)
		assert_non_null(gw_prvs_result_str((gw_prvs_result)r));
	assert_string_equal(gw_prvs_result_str(GW_PRVS_BAD_SIGNATURE), "bad signature");
	for (int s = GW_PRVS_SKIP_NONE; s <= GW_PRVS_SKIP_TOO_LONG; s++)
		assert_non_null(gw_prvs_skip_str((gw_prvs_skip)s));
	assert_int_equal(gw_prvs_is_tagged("SrS0=x"), 1);
	assert_int_equal(gw_prvs_is_tagged("btv1=x"), 0);
	assert_int_equal(gw_prvs_is_tagged("prvs"), 0);
}

/* Random addresses, keys and days: sign then verify, against the independent HMAC. */
static void test_random_roundtrip(void **state)
{
	static const char alphabet[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+-_=!#$%&'*/?^`{|}~";
	uint32_t seed = 12345;
	char addr[128], want[600];

	(void)state;
	for (int i = 0; i < 500; i++) {
		int k, llen, dlen, n = 0;
		long day;
		gw_prvs_ring *r;

		seed = seed * 1103515245u + 12345u;
		do {
			seed = seed * 1103515245u + 12345u;
			k = (int)(seed >> 16) % GW_PRVS_KEYS;
		} while (secrets[k] == NULL);
		seed = seed * 1103515245u + 12345u;
		llen = 1 + (int)((seed >> 16) % 48);
		seed = seed * 1103515245u + 12345u;
		dlen = 1 + (int)((seed >> 16) % 40);
		for (int j = 0; j < llen; j++) {
			seed = seed * 1103515245u + 12345u;
			addr[n++] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		addr[n++] = '@';
		for (int j = 0; j < dlen; j++) {
			seed = seed * 1103515245u + 12345u;
			addr[n++] = alphabet[(seed >> 16) % 36];
		}
		addr[n] = '\0';
		if (gw_prvs_is_tagged(addr))
			continue;
		seed = seed * 1103515245u + 12345u;
		day = 19000 + (long)((seed >> 16) % 5000);
		r = make_ring(k);
		expected_tag(k, secrets[k], day, addr, want, sizeof(want));
		check_sign(r, day, addr, want, "random");
		seed = seed * 1103515245u + 12345u;
		check_verify(r, day + (long)((seed >> 16) % 8), want, GW_PRVS_VALID, addr, "random");
		check_verify(r, day + 8 + (long)((seed >> 16) % 990), want, GW_PRVS_EXPIRED, addr,
			     "random late");
		gw_prvs_ring_free(&r);
	}
}

/* One ring, several threads signing and verifying at once: the ring is read-only after loading. */
static void *share_ring_worker(void *arg)
{
	gw_prvs_ring *r = arg;
	char buf[GW_PRVS_ADDR_MAX + 1];
	intptr_t bad = 0;

	for (int i = 0; i < 20000; i++) {
		if (gw_prvs_verify(r, DAY, "prvs=178773a1ad=user@example.com", buf, sizeof(buf)) !=
			GW_PRVS_VALID ||
		    strcmp(buf, "user@example.com") != 0)
			bad++;
		if (gw_prvs_sign(r, DAY, "user@example.com", 0, buf, sizeof(buf), NULL) != GW_PRVS_SIGNED ||
		    strcmp(buf, "prvs=178773a1ad=user@example.com") != 0)
			bad++;
	}
	return (void *)bad;
}

static void test_threads_share_ring(void **state)
{
	gw_prvs_ring *r = make_ring(1);
	pthread_t t[4];

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, share_ring_worker, r), 0);
	for (int i = 0; i < 4; i++) {
		void *bad;
		assert_int_equal(pthread_join(t[i], &bad), 0);
		if ((intptr_t)bad != 0)
			fail_msg("thread %d: %ld wrong results, want 0", i, (long)(intptr_t)bad);
	}
	gw_prvs_ring_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sign_hmac_vectors),
	    cmocka_unit_test(test_exim_vectors),
	    cmocka_unit_test(test_expiry),
	    cmocka_unit_test(test_wraparound),
	    cmocka_unit_test(test_case_insensitive_tag),
	    cmocka_unit_test(test_bad_signature_and_unknown_key),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_not_tagged),
	    cmocka_unit_test(test_quoted_local_part),
	    cmocka_unit_test(test_not_signed),
	    cmocka_unit_test(test_sign_errors),
	    cmocka_unit_test(test_ring),
	    cmocka_unit_test(test_key_file),
	    cmocka_unit_test(test_strip),
	    cmocka_unit_test(test_listed),
	    cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_random_roundtrip),
	    cmocka_unit_test(test_threads_share_ring),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
