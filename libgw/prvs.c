/*
 * prvs.c - BATV/PRVS sign, verify and strip, and the key ring (see gw/prvs.h).
 *
 * The HMAC is computed from per-key precomputed SHA-1 states: when a key is
 * added, the ring hashes the 64-byte ipad and opad blocks once and keeps the
 * two EVP_MD_CTX states; each signature copies them and hashes only the
 * message and the inner digest. That is plain RFC 2104 HMAC, two compression
 * calls instead of four plus OpenSSL's per-call fetch and setup, and it is
 * what lets verification run at millions per second on one core. The ring is
 * never written after loading, so several threads may share it: each call
 * works on its own copied context. Secrets are not kept once the states are
 * made; the states (equivalent to the key) are wiped by OpenSSL when freed,
 * and every stack copy of key material is cleansed before return.
 *
 * Does not defend against: key material being paged to swap or read from a
 * core dump (nothing is mlock'ed); an attacker who can read the key file as
 * its owner; a wrong day passed in by the caller. Timing: the MAC compare is
 * constant-time, but parsing and the key-number lookup are not (they handle
 * only what the sender already knows).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "gw/prvs.h"

#define SHA1_BLOCK   64
#define SHA1_LEN     20
#define SIG_BYTES    3
#define KEYFILE_MAX  65536 /* a key file is ten short lines; anything bigger is a mistake */
#define HMAC_MSG_MAX (4 + GW_PRVS_ADDR_MAX)

struct prvs_key {
	EVP_MD_CTX *inner; /* SHA-1 state after (secret ^ ipad); NULL: no key with this number */
	EVP_MD_CTX *outer; /* SHA-1 state after (secret ^ opad) */
};

struct gw_prvs_ring {
	struct prvs_key keys[GW_PRVS_KEYS];
	int signing; /* -1: none */
};

/* A parsed "prvs=KDDDSSSSSS=local@domain". */
struct prvs_tag {
	int keynum;
	char kddd[4];                 /* "KDDD" as written (digits): the HMAC input prefix */
	int ddd;                      /* expiry day, 0-999 */
	unsigned char sig[SIG_BYTES]; /* the signature bytes from the hex */
	const char *orig;             /* local@domain */
	size_t orig_len;
};

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* Copy s[0..len) and a NUL into buf; 0, or -1 with errno ENOSPC. */
static int copy_out(char *buf, size_t size, const char *s, size_t len)
{
	if (size == 0 || len >= size) {
		errno = ENOSPC;
		return -1;
	}
	memmove(buf, s, len);
	buf[len] = '\0';
	return 0;
}

/*
 * Check a bare address: no control bytes, a last '@' that is neither first
 * nor last. 0 with *at_r its offset; -1 otherwise.
 */
static int addr_split(const char *a, size_t len, size_t *at_r)
{
	const char *at = NULL;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)a[i];
		if (c < 0x20 || c == 0x7f)
			return -1;
		if (c == '@')
			at = a + i;
	}
	if (at == NULL || at == a || at == a + len - 1)
		return -1;
	*at_r = (size_t)(at - a);
	return 0;
}

/* Day number modulo 1000 without overflow for any long, negative included. */
static int day_mod(long day, int add)
{
	long m = day % 1000;
	if (m < 0)
		m += 1000;
	return (int)((m + add) % 1000);
}

/* HMAC-SHA1(key, kddd || addr) into mac; 0, or -1 with errno (ENOMEM, EIO). */
static int prvs_mac(const struct prvs_key *k, const char kddd[4], const char *addr, size_t len,
		    unsigned char mac[SHA1_LEN])
{
	unsigned char msg[HMAC_MSG_MAX];
	unsigned char inner[SHA1_LEN];
	unsigned int n;
	EVP_MD_CTX *w;
	int ok;

	if (len > GW_PRVS_ADDR_MAX) {
		errno = EINVAL;
		return -1;
	}
	/* One update call over a contiguous message is measurably faster than three. */
	memcpy(msg, kddd, 4);
	memcpy(msg + 4, addr, len);
	w = EVP_MD_CTX_new();
	if (w == NULL) {
		errno = ENOMEM;
		return -1;
	}
	ok = EVP_MD_CTX_copy_ex(w, k->inner) && EVP_DigestUpdate(w, msg, 4 + len) &&
	     EVP_DigestFinal_ex(w, inner, &n) && EVP_MD_CTX_copy_ex(w, k->outer) &&
	     EVP_DigestUpdate(w, inner, sizeof(inner)) && EVP_DigestFinal_ex(w, mac, &n);
	EVP_MD_CTX_free(w); /* OpenSSL's SHA-1 context free cleanses the state */
	OPENSSL_cleanse(inner, sizeof(inner));
	if (!ok) {
		errno = EIO;
		return -1;
	}
	return 0;
}

/*
 * Parse a tagged address. 0 with *t filled; GW_PRVS_NOT_TAGGED or
 * GW_PRVS_MALFORMED otherwise.
 */
static int prvs_parse(const char *a, size_t len, struct prvs_tag *t)
{
	size_t at;
	int hi, lo;

	if (len < 5 || strncasecmp(a, "prvs=", 5) != 0)
		return GW_PRVS_NOT_TAGGED;
	if (len < GW_PRVS_TAG_LEN || len > GW_PRVS_ADDR_MAX)
		return GW_PRVS_MALFORMED;
	for (int i = 0; i < 4; i++) {
		if (!is_digit(a[5 + i]))
			return GW_PRVS_MALFORMED;
		t->kddd[i] = a[5 + i];
	}
	for (int i = 0; i < SIG_BYTES; i++) {
		hi = hexval((unsigned char)a[9 + 2 * i]);
		lo = hexval((unsigned char)a[10 + 2 * i]);
		if (hi < 0 || lo < 0)
			return GW_PRVS_MALFORMED;
		t->sig[i] = (unsigned char)(hi << 4 | lo);
	}
	if (a[15] != '=')
		return GW_PRVS_MALFORMED;
	t->orig = a + GW_PRVS_TAG_LEN;
	t->orig_len = len - GW_PRVS_TAG_LEN;
	if (addr_split(t->orig, t->orig_len, &at) < 0)
		return GW_PRVS_MALFORMED;
	t->keynum = t->kddd[0] - '0';
	t->ddd = (t->kddd[1] - '0') * 100 + (t->kddd[2] - '0') * 10 + (t->kddd[3] - '0');
	return 0;
}

gw_prvs_ring *gw_prvs_ring_new(void)
{
	gw_prvs_ring *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	r->signing = -1;
	return r;
}

/* Hash one padded key block into a fresh SHA-1 context; NULL on failure. */
static EVP_MD_CTX *pad_state(const unsigned char *secret, size_t len, unsigned char padbyte)
{
	unsigned char block[SHA1_BLOCK];
	EVP_MD_CTX *c;

	memset(block, padbyte, sizeof(block));
	for (size_t i = 0; i < len; i++)
		block[i] ^= secret[i];
	c = EVP_MD_CTX_new();
	if (c != NULL &&
	    !(EVP_DigestInit_ex(c, EVP_sha1(), NULL) && EVP_DigestUpdate(c, block, sizeof(block)))) {
		EVP_MD_CTX_free(c);
		c = NULL;
	}
	OPENSSL_cleanse(block, sizeof(block));
	return c;
}

int gw_prvs_ring_add(gw_prvs_ring *ring, int keynum, const void *secret, size_t len)
{
	struct prvs_key *k;

	/* Longer secrets would be hashed first by RFC 2104; Exim refuses them, so do we. */
	if (ring == NULL || keynum < 0 || keynum >= GW_PRVS_KEYS || secret == NULL || len == 0 ||
	    len > GW_PRVS_SECRET_MAX) {
		errno = EINVAL;
		return -1;
	}
	k = &ring->keys[keynum];
	if (k->inner != NULL) {
		errno = EEXIST;
		return -1;
	}
	k->inner = pad_state(secret, len, 0x36);
	k->outer = pad_state(secret, len, 0x5c);
	if (k->inner == NULL || k->outer == NULL) {
		EVP_MD_CTX_free(k->inner);
		EVP_MD_CTX_free(k->outer);
		k->inner = k->outer = NULL;
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

int gw_prvs_ring_set_signing(gw_prvs_ring *ring, int keynum)
{
	if (!gw_prvs_ring_has(ring, keynum)) {
		errno = ENOENT;
		return -1;
	}
	ring->signing = keynum;
	return 0;
}

int gw_prvs_ring_signing(const gw_prvs_ring *ring)
{
	return ring == NULL ? -1 : ring->signing;
}

int gw_prvs_ring_has(const gw_prvs_ring *ring, int keynum)
{
	return ring != NULL && keynum >= 0 && keynum < GW_PRVS_KEYS && ring->keys[keynum].inner != NULL;
}

void gw_prvs_ring_free(gw_prvs_ring **ring)
{
	gw_prvs_ring *r;

	if (ring == NULL || *ring == NULL)
		return;
	r = *ring;
	for (int i = 0; i < GW_PRVS_KEYS; i++) {
		EVP_MD_CTX_free(r->keys[i].inner);
		EVP_MD_CTX_free(r->keys[i].outer);
	}
	OPENSSL_cleanse(r, sizeof(*r));
	free(r);
	*ring = NULL;
}

/* Split the next blank-separated word off *p (which ends at end); NULL when none is left. */
static const char *next_word(const char **p, const char *end, size_t *len_r)
{
	const char *s = *p, *w;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s == end) {
		*p = s;
		return NULL;
	}
	w = s;
	while (s < end && *s != ' ' && *s != '\t')
		s++;
	*len_r = (size_t)(s - w);
	*p = s;
	return w;
}

/* Parse the key file text into ring; 0, or -1 with err "path:line: ...". */
static int keyfile_parse(gw_prvs_ring *ring, const char *path, const char *text, size_t len, char *err,
			 size_t errlen)
{
	const char *p = text, *end = text + len;
	int line = 0, sign = -1, sign_line = 0, nkeys = 0, last = -1;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol != NULL ? eol : end;
		const char *cur = p, *w1, *w2, *w3;
		size_t l1 = 0, l2 = 0, l3 = 0;

		line++;
		p = eol != NULL ? eol + 1 : end;
		if (le > cur && le[-1] == '\r')
			le--;
		w1 = next_word(&cur, le, &l1);
		if (w1 == NULL || w1[0] == '#')
			continue;
		w2 = next_word(&cur, le, &l2);
		w3 = next_word(&cur, le, &l3);
		(void)l3;
		if (w2 == NULL || w3 != NULL) {
			snprintf(err, errlen, "%s:%d: expected \"K SECRET\" or \"sign K\"", path, line);
			return -1;
		}
		if (l1 == 4 && memcmp(w1, "sign", 4) == 0) {
			if (l2 != 1 || !is_digit(w2[0])) {
				snprintf(err, errlen, "%s:%d: \"sign\" takes a key number 0-9", path, line);
				return -1;
			}
			if (sign >= 0) {
				snprintf(err, errlen, "%s:%d: a second \"sign\" line", path, line);
				return -1;
			}
			sign = w2[0] - '0';
			sign_line = line;
			continue;
		}
		if (l1 != 1 || !is_digit(w1[0])) {
			snprintf(err, errlen, "%s:%d: expected a key number 0-9 or \"sign\"", path, line);
			return -1;
		}
		if (l2 > GW_PRVS_SECRET_MAX) {
			snprintf(err, errlen, "%s:%d: secret longer than %d characters", path, line,
				 GW_PRVS_SECRET_MAX);
			return -1;
		}
		for (size_t i = 0; i < l2; i++) {
			if ((unsigned char)w2[i] < 0x21 || (unsigned char)w2[i] > 0x7e) {
				snprintf(err, errlen, "%s:%d: secret must be printable ASCII", path, line);
				return -1;
			}
		}
		if (gw_prvs_ring_add(ring, w1[0] - '0', w2, l2) < 0) {
			if (errno == EEXIST)
				snprintf(err, errlen, "%s:%d: key %c defined twice", path, line, w1[0]);
			else
				snprintf(err, errlen, "%s:%d: cannot set up key: %s", path, line,
					 strerror(errno));
			return -1;
		}
		nkeys++;
		last = w1[0] - '0';
	}
	if (nkeys == 0) {
		snprintf(err, errlen, "%s: no keys", path);
		return -1;
	}
	if (sign < 0) {
		if (nkeys > 1) {
			snprintf(err, errlen, "%s: several keys and no \"sign K\" line", path);
			return -1;
		}
		sign = last;
	}
	if (gw_prvs_ring_set_signing(ring, sign) < 0) {
		snprintf(err, errlen, "%s:%d: sign %d: no key %d in the file", path, sign_line, sign, sign);
		return -1;
	}
	return 0;
}

int gw_prvs_ring_load(const char *path, gw_prvs_ring **ring_r, char *err, size_t errlen)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	gw_prvs_ring *ring = NULL;
	int fd, rc = -1;

	*ring_r = NULL;
	/* O_NONBLOCK: a FIFO in place of the file must not hang us before fstat refuses it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen,
			 "%s: refusing a key file that group or others may access (mode %04o); chmod 600 it",
			 path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_size > KEYFILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, KEYFILE_MAX);
		goto out;
	}
	/* read(2) into our own buffer, not stdio, so no unwiped copy of the secrets is left behind. */
	text = malloc(KEYFILE_MAX + 1);
	if (text == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, text + len, KEYFILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > KEYFILE_MAX) {
			snprintf(err, errlen, "%s: larger than %d bytes", path, KEYFILE_MAX);
			goto out;
		}
	}
	ring = gw_prvs_ring_new();
	if (ring == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	if (keyfile_parse(ring, path, text, len, err, errlen) < 0)
		goto out;
	*ring_r = ring;
	ring = NULL;
	rc = 0;
out:
	if (text != NULL) {
		OPENSSL_cleanse(text, KEYFILE_MAX + 1);
		free(text);
	}
	gw_prvs_ring_free(&ring);
	close(fd);
	return rc;
}

int gw_prvs_is_tagged(const char *addr)
{
	static const char *const prefixes[] = {"prvs=", "srs0=", "srs1=", "btv1=="};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncasecmp(addr, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return 0;
}

static int is_null_sender(const char *addr)
{
	return addr[0] == '\0' || strcmp(addr, "<>") == 0;
}

int gw_prvs_sign(const gw_prvs_ring *ring, long day, const char *addr, unsigned flags, char *buf, size_t size,
		 gw_prvs_skip *skip_r)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[SHA1_LEN];
	gw_prvs_skip skip = GW_PRVS_SKIP_NONE;
	size_t len, at;
	char kddd[4];
	int ddd, k;

	if (skip_r != NULL)
		*skip_r = GW_PRVS_SKIP_NONE;
	len = strlen(addr);
	if (is_null_sender(addr))
		skip = GW_PRVS_SKIP_NULL;
	else if (addr_split(addr, len, &at) < 0) {
		errno = EINVAL;
		return -1;
	} else if (gw_prvs_is_tagged(addr))
		skip = GW_PRVS_SKIP_TAGGED;
	else if (flags & GW_PRVS_EXEMPT)
		skip = GW_PRVS_SKIP_EXEMPT;
	else if (at + GW_PRVS_TAG_LEN > GW_PRVS_LOCAL_MAX || len + GW_PRVS_TAG_LEN > GW_PRVS_ADDR_MAX)
		skip = GW_PRVS_SKIP_TOO_LONG;
	if (skip != GW_PRVS_SKIP_NONE) {
		if (copy_out(buf, size, addr, len) < 0)
			return -1;
		if (skip_r != NULL)
			*skip_r = skip;
		return GW_PRVS_UNSIGNED;
	}
	k = gw_prvs_ring_signing(ring);
	if (k < 0) {
		errno = ENOKEY;
		return -1;
	}
	if (size == 0 || len + GW_PRVS_TAG_LEN >= size) {
		errno = ENOSPC;
		return -1;
	}
	ddd = day_mod(day, GW_PRVS_LIFETIME);
	kddd[0] = (char)('0' + k);
	kddd[1] = (char)('0' + ddd / 100);
	kddd[2] = (char)('0' + ddd / 10 % 10);
	kddd[3] = (char)('0' + ddd % 10);
	if (prvs_mac(&ring->keys[k], kddd, addr, len, mac) < 0)
		return -1;
	/* memmove: buf may be addr itself. */
	memmove(buf + GW_PRVS_TAG_LEN, addr, len + 1);
	memcpy(buf, "prvs=", 5);
	memcpy(buf + 5, kddd, 4);
	for (int i = 0; i < SIG_BYTES; i++) {
		buf[9 + 2 * i] = hex[mac[i] >> 4];
		buf[10 + 2 * i] = hex[mac[i] & 15];
	}
	buf[15] = '=';
	OPENSSL_cleanse(mac, sizeof(mac));
	return GW_PRVS_SIGNED;
}

gw_prvs_result gw_prvs_verify(const gw_prvs_ring *ring, long day, const char *addr, char *orig, size_t size)
{
	unsigned char mac[SHA1_LEN];
	struct prvs_tag t;
	size_t len = strlen(addr);
	int rc, diff;

	rc = prvs_parse(addr, len, &t);
	if (rc == GW_PRVS_NOT_TAGGED)
		return copy_out(orig, size, addr, len) < 0 ? GW_PRVS_ERROR : GW_PRVS_NOT_TAGGED;
	if (rc == GW_PRVS_MALFORMED) {
		if (size > 0)
			orig[0] = '\0';
		return GW_PRVS_MALFORMED;
	}
	if (!gw_prvs_ring_has(ring, t.keynum))
		return copy_out(orig, size, t.orig, t.orig_len) < 0 ? GW_PRVS_ERROR : GW_PRVS_UNKNOWN_KEY;
	if (prvs_mac(&ring->keys[t.keynum], t.kddd, t.orig, t.orig_len, mac) < 0)
		return GW_PRVS_ERROR;
	rc = CRYPTO_memcmp(mac, t.sig, SIG_BYTES);
	OPENSSL_cleanse(mac, sizeof(mac));
	/* orig may alias addr: copy only after the MAC is computed over t.orig. */
	if (copy_out(orig, size, t.orig, t.orig_len) < 0)
		return GW_PRVS_ERROR;
	if (rc != 0)
		return GW_PRVS_BAD_SIGNATURE;
	/* How many days ahead the expiry day lies, counted around the 1000-day wheel. */
	diff = (t.ddd - day_mod(day, 0) + 1000) % 1000;
	return diff <= GW_PRVS_LIFETIME ? GW_PRVS_VALID : GW_PRVS_EXPIRED;
}

int gw_prvs_strip(const char *addr, char *buf, size_t size)
{
	struct prvs_tag t;
	size_t len = strlen(addr);
	int rc = prvs_parse(addr, len, &t);

	if (rc == GW_PRVS_NOT_TAGGED)
		return copy_out(buf, size, addr, len) < 0 ? -1 : 0;
	if (rc == GW_PRVS_MALFORMED) {
		errno = EINVAL;
		return -1;
	}
	return copy_out(buf, size, t.orig, t.orig_len) < 0 ? -1 : 1;
}

int gw_prvs_listed(const char *addr, const char *const *list, size_t n)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL || at == addr || at[1] == '\0')
		return 0;
	for (size_t i = 0; i < n; i++) {
		const char *e = list[i];
		if (e == NULL || strchr(e, '@') == NULL)
			continue;
		if (e[0] == '@' ? strcasecmp(e + 1, at + 1) == 0 : strcasecmp(e, addr) == 0)
			return 1;
	}
	return 0;
}
