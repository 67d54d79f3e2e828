/*
 * gw/prvs.h - BATV/PRVS envelope sender signing (draft-levine-smtp-batv-01).
 *
 * A signed address is "prvs=KDDDSSSSSS=local@domain": K the key number (0-9),
 * DDD the expiry day (the low three digits of day + 7, where day counts days
 * since 1970-01-01 UTC), SSSSSS the lower-case hex of the first three bytes
 * of HMAC-SHA1(secret, K DDD local@domain). This is byte for byte what Exim's
 * ${prvs{local@domain}{secret}{K}} produces: the HMAC input is the address
 * exactly as written (no case folding), and the secret is used as raw bytes.
 *
 * Every function is a pure function of a key ring, a day number and an
 * address: nothing reads the clock, nothing keeps state between calls, output
 * goes into caller-owned buffers. A ring is read-only once loaded, so one ring
 * may be used by several threads at once.
 *
 * Addresses are bare "local@domain" strings without angle brackets; "" and
 * "<>" are the null sender. The address is split at its LAST '@', so a quoted
 * local part containing '@' ("a@b"@example.com) is handled. A quoted local
 * part is signed as written: the tag goes in front of the opening quote
 * (prvs=KDDDSSSSSS="a b"@example.com), exactly as Exim does. That result is
 * not strictly RFC 5321 syntax; such senders are rare, and matching Exim
 * matters more, since either side may have to verify the other's tags.
 *
 * Does not defend against: replay of a valid tag within its 7-day lifetime
 * (BATV only stops bounces to addresses we never used); a 24-bit signature can
 * be guessed by a sender who tries about 2^23 times per address and day; the
 * caller is trusted to pass the right day. Domains are compared exactly as
 * written (the HMAC covers them byte for byte, as in Exim), so a bounce whose
 * domain a remote MTA re-cased fails to verify.
 */
#ifndef GW_PRVS_H
#define GW_PRVS_H

#include "gw/export.h"

#include <stddef.h>

#define GW_PRVS_KEYS       10  /* key numbers 0-9 */
#define GW_PRVS_SECRET_MAX 64  /* Exim refuses longer secrets; at most one HMAC-SHA1 block */
#define GW_PRVS_TAG_LEN    16  /* strlen("prvs=KDDDSSSSSS=") */
#define GW_PRVS_LOCAL_MAX  64  /* RFC 5321 local part limit, tag included */
#define GW_PRVS_ADDR_MAX   254 /* RFC 5321 path limit (256) less the angle brackets */
#define GW_PRVS_LIFETIME   7   /* days a signature stays valid after the day it was made */

/* Buffers of GW_PRVS_ADDR_MAX + 1 bytes hold every result for inputs of up to GW_PRVS_ADDR_MAX octets. */

/* The key ring: up to ten numbered secrets, one of them used for signing. */
typedef struct gw_prvs_ring gw_prvs_ring;

/* Verification results; the values are gw-prvs verify's exit statuses. */
typedef enum gw_prvs_result {
	GW_PRVS_ERROR = -1,        /* undecided (no memory, OpenSSL, buffer too small): try later */
	GW_PRVS_VALID = 0,         /* signature good, not expired */
	GW_PRVS_BAD_SIGNATURE = 1, /* well-formed tag, wrong signature */
	GW_PRVS_EXPIRED = 2,       /* signature good, expiry day passed */
	GW_PRVS_UNKNOWN_KEY = 3,   /* well-formed tag, key number not in the ring */
	GW_PRVS_NOT_TAGGED = 4,    /* does not start with "prvs=" */
	GW_PRVS_MALFORMED = 5      /* starts with "prvs=" but is not prvs=KDDDSSSSSS=local@domain */
} gw_prvs_result;

/* Why gw_prvs_sign left an address unsigned. */
typedef enum gw_prvs_skip {
	GW_PRVS_SKIP_NONE = 0, /* it was signed */
	GW_PRVS_SKIP_NULL,     /* the null sender */
	GW_PRVS_SKIP_TAGGED,   /* already prvs=, SRS0=, SRS1= or btv1== */
	GW_PRVS_SKIP_EXEMPT,   /* the caller said so (GW_PRVS_EXEMPT) */
	GW_PRVS_SKIP_TOO_LONG  /* local part over 64 octets or address over 254 once tagged */
} gw_prvs_skip;

enum {
	GW_PRVS_EXEMPT = 1 << 0 /* the sender is on the caller's exemption list: do not sign */
};

enum {
	GW_PRVS_UNSIGNED = 0, /* gw_prvs_sign: left as it was, see *skip_r */
	GW_PRVS_SIGNED = 1    /* gw_prvs_sign: buf holds the signed address */
};

/* A new empty ring, or NULL (ENOMEM). */
GW_API gw_prvs_ring *gw_prvs_ring_new(void);
/*
 * Add key keynum (0-9) with a secret of 1-64 bytes. The secret is not kept:
 * the ring holds the HMAC inner and outer hash states derived from it. 0 ok;
 * -1 with errno EINVAL (bad number or length), EEXIST (number taken), ENOMEM.
 */
GW_API int gw_prvs_ring_add(gw_prvs_ring *ring, int keynum, const void *secret, size_t len);
/* Sign with key keynum from now on. 0 ok; -1 with errno ENOENT when the ring lacks it. */
GW_API int gw_prvs_ring_set_signing(gw_prvs_ring *ring, int keynum);
/* The signing key number, or -1 when none is set. */
GW_API int gw_prvs_ring_signing(const gw_prvs_ring *ring);
/* 1 when the ring holds key keynum, else 0. */
GW_API int gw_prvs_ring_has(const gw_prvs_ring *ring, int keynum);
/*
 * Load a key file into a new ring. The file must be a regular file that
 * neither group nor others may read or write (mode & 077 == 0). Format, one
 * item per line, blank lines and lines starting with '#' ignored:
 *     K SECRET     key number K (0-9) and its secret: 1-64 printable
 *                  non-blank ASCII characters, used as the HMAC key exactly
 *                  as written (the same string Exim's ${prvs} takes)
 *     sign K       sign with key K (may be left out when there is one key)
 * 0 ok with *ring_r set; -1 with err "path:line: message" or "path: ...".
 * The file's bytes are wiped from memory after parsing.
 */
GW_API int gw_prvs_ring_load(const char *path, gw_prvs_ring **ring_r, char *err, size_t errlen);
/* Free the ring, wiping the key material, and set *ring to NULL. */
GW_API void gw_prvs_ring_free(gw_prvs_ring **ring);

/*
 * Sign addr with the ring's signing key for the given day (days since 1970
 * UTC). Returns GW_PRVS_SIGNED with the signed address in buf, or
 * GW_PRVS_UNSIGNED with addr copied to buf unchanged and *skip_r saying why
 * (skip_r may be NULL); -1 with errno EINVAL (addr has no '@', an empty local
 * part or domain, or a control byte), ENOKEY (no signing key), ENOSPC (buf too
 * small), ENOMEM or EIO (OpenSSL failure). flags: GW_PRVS_EXEMPT.
 */
GW_API int gw_prvs_sign(const gw_prvs_ring *ring, long day, const char *addr, unsigned flags, char *buf,
			size_t size, gw_prvs_skip *skip_r);

/*
 * Check a tagged address for the given day. The tag type ("prvs") and the
 * hex are case-insensitive; the signature is compared in constant time; a
 * tag is valid while (DDD - day) mod 1000 <= 7, which also works across the
 * wrap from 999 to 000. The signature is checked before the expiry day, so
 * GW_PRVS_EXPIRED only ever describes a tag we made. The original address
 * goes to orig for VALID, EXPIRED, BAD_SIGNATURE and UNKNOWN_KEY; addr
 * unchanged for NOT_TAGGED; "" for MALFORMED. GW_PRVS_ERROR sets errno.
 */
GW_API gw_prvs_result gw_prvs_verify(const gw_prvs_ring *ring, long day, const char *addr, char *orig,
				     size_t size);

/*
 * Remove a well-formed tag without checking it. 1 with the original address
 * in buf; 0 when addr is not tagged (copied unchanged); -1 with errno EINVAL
 * (malformed tag) or ENOSPC.
 */
GW_API int gw_prvs_strip(const char *addr, char *buf, size_t size);

/* 1 when addr starts with a tag we must not sign over (prvs=, SRS0=, SRS1=, btv1==), else 0. */
GW_API int gw_prvs_is_tagged(const char *addr);

/*
 * 1 when addr matches one of the n entries of list, else 0. An entry
 * "@domain" matches every address in that domain; "local@domain" matches
 * that address. Comparison is case-insensitive throughout (local parts are
 * case-sensitive in theory, never in practice for exemptions); the address
 * is split at its last '@'. Entries without '@' match nothing.
 */
GW_API int gw_prvs_listed(const char *addr, const char *const *list, size_t n);

/* A short lower-case name for r ("valid", "expired", "bad signature", ...). */
GW_API const char *gw_prvs_result_str(gw_prvs_result r);
/* A short lower-case name for s ("null sender", "already tagged", ...). */
GW_API const char *gw_prvs_skip_str(gw_prvs_skip s);

#endif
