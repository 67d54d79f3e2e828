/*
 * gw/addr.h - RFC 5321 mailbox addresses, reverse-paths and forward-paths.
 *
 * Parses "<local@domain> PARAM=value ..." as it appears after MAIL FROM: or
 * RCPT TO:, or a bare "local@domain". Supports the null path "<>" (reverse
 * paths only), quoted local parts, address literals ("[192.0.2.1]",
 * "[IPv6:2001:db8::1]"), an RFC 5321 source route (accepted and dropped), and
 * the ESMTP parameters SIZE, BODY, SMTPUTF8, NOTIFY, ORCPT, RET, ENVID, each
 * checked for syntax. Limits: local part 64 octets, domain 255, path 256
 * (angle brackets included). CR, LF, NUL and other control bytes are refused
 * with a precise error; bytes >= 0x80 only when GW_PATH_SMTPUTF8 is given, and
 * then they must be valid UTF-8. The domain is normalised to lower case (ASCII
 * letters only); the local part is kept exactly as written.
 *
 * Does not defend against: nothing checks that a domain exists; IDNA
 * (A-label) validity is not checked.
 */
#ifndef GW_ADDR_H
#define GW_ADDR_H

#include "gw/export.h"

#include <stddef.h>

#define GW_LOCAL_MAX       64
#define GW_DOMAIN_MAX      255
#define GW_PATH_MAX        256
#define GW_PARAMS_MAX      8
#define GW_PARAM_KEY_MAX   20
#define GW_PARAM_VALUE_MAX 500

enum {
	GW_PATH_REVERSE = 1 << 0,   /* a reverse-path: "<>" allowed */
	GW_PATH_SMTPUTF8 = 1 << 1,  /* UTF-8 allowed in local part and domain (RFC 6531) */
	GW_PATH_BARE = 1 << 2,      /* angle brackets may be left out ("user@example.com") */
	GW_PATH_PARAMS = 1 << 3,    /* ESMTP parameters may follow the path */
	GW_PATH_POSTMASTER = 1 << 4 /* forward-path "<Postmaster>" without domain allowed */
};

typedef struct gw_mailbox {
	int null;                     /* the null path "<>" */
	int quoted;                   /* local part is a quoted string */
	int literal;                  /* domain is an address literal */
	int utf8;                     /* contains bytes >= 0x80 */
	char local[GW_LOCAL_MAX + 1]; /* as written (quotes included when quoted) */
	char domain[GW_DOMAIN_MAX +
		    1]; /* lower case; "[192.0.2.1]" for a literal; "" for <> and <Postmaster> */
} gw_mailbox;

typedef struct gw_param {
	char keyword[GW_PARAM_KEY_MAX + 1]; /* upper case */
	char value[GW_PARAM_VALUE_MAX + 1]; /* as written; "" when the parameter has no value */
	int has_value;
} gw_param;

typedef struct gw_path {
	gw_mailbox mbox;
	size_t nparams;
	gw_param params[GW_PARAMS_MAX];
} gw_path;

/*
 * Parse s[0..len) with the GW_PATH_* flags. 0 on success; -1 with *error_r a
 * static, precise message ("local part longer than 64 octets", "NUL in
 * address", "unknown parameter FOO", ...). s need not be NUL-terminated.
 */
GW_API int gw_path_parse(const char *s, size_t len, unsigned flags, gw_path *path_r, const char **error_r);

/* Write "local@domain" ("" for the null path) into buf. Returns the length it needs, like snprintf. */
GW_API size_t gw_mailbox_format(const gw_mailbox *mb, char *buf, size_t size);

/* The parameter named keyword (case-insensitive), or NULL. */
GW_API const gw_param *gw_path_param(const gw_path *p, const char *keyword);

#endif
