/*
 * gw/directory.h - ask the organisation's user directory (LDAP through
 * OpenLDAP's libldap, or HTTP(S) through libcurl) whether a recipient exists.
 *
 * A directory is a URL template with the recipient's parts substituted:
 *
 *   ldap://ldap.example.org/ou=people,dc=example,dc=org?mail?sub?(|(mail={rcpt})(mailLocalAddress={rcpt}))
 *   https://idm.example.org/api/mailboxes/{rcpt}
 *
 * Placeholders: {rcpt} (local@domain), {local}, {domain}. Every substitution
 * is escaped for its context, so no recipient can change the query: in an
 * LDAP URL placeholders are allowed only in the filter (the fourth part),
 * where the value is escaped by RFC 4515 (* ( ) \ as \2a \28 \29 \5c) and the
 * result percent-encoded (RFC 4516: the filter is itself inside a URL); in an
 * HTTP(S) URL only after the host, percent-encoded (everything but RFC 3986
 * unreserved characters). Values with NUL or other control characters, or
 * that are not UTF-8, are refused; so is a template whose placeholders sit
 * anywhere else (gw_dir_template_check).
 *
 * Answers, three kinds, never two (a directory that cannot answer is never
 * "unknown"):
 *   LDAP: one or more entries -> EXISTS, none -> UNKNOWN;
 *   HTTP: a status in http_exists (default 200) -> EXISTS (when http_expect
 *         is set, only if the body contains it), in http_unknown (default
 *         404) -> UNKNOWN;
 *   anything else, a timeout, TLS or connection failure, the cap on
 *   concurrent requests -> TEMPORARY.
 * EXISTS and UNKNOWN are cached in the shared gw_cache with their own TTLs
 * (key "dir:" + the expanded URL); TEMPORARY never is.
 *
 * Transport: a pool of at most max_requests handles, which is also the cap
 * on concurrent requests (when every one is busy the answer is TEMPORARY at
 * once, never a wait): for HTTP(S) libcurl easy handles, each keeping its
 * connection open for the next lookup; for LDAP bound libldap connections,
 * kept and reused (a connection the server closed meanwhile is replaced,
 * and a search it dies under before answering is repeated once on a new
 * one). StartTLS when the LDAP URL carries the extension "StartTLS" (or its
 * OID, 1.3.6.1.4.1.1466.20037); other critical extensions are refused. TLS
 * peer and host verification are always on (ca_file replaces the default
 * trust anchors). Only ldap, ldaps, http and https are spoken; redirects and
 * referrals are not followed. Credentials come from a file (first line the
 * user or bind DN, second line the password) that group and others cannot
 * read; they are never logged and are wiped when the directory is freed.
 *
 * Thread-safe: one gw_directory is shared by all threads.
 *
 * Does not defend against: a directory that answers wrongly but well-formed;
 * libcurl's and libldap's own copies of the credentials (freed, not wiped);
 * an LDAP URL template whose own literal text is not a valid filter (the
 * directory then answers an error: TEMPORARY).
 */
#ifndef GW_DIRECTORY_H
#define GW_DIRECTORY_H

#include "gw/export.h"

#include <stddef.h>
#include <stdint.h>

#include "gw/cache.h"
#include "gw/time.h"

/* The longest template and expanded URL, NUL excluded. */
#define GW_DIR_URL_MAX 2048

typedef enum gw_dir_answer { GW_DIR_EXISTS = 0, GW_DIR_UNKNOWN, GW_DIR_TEMPORARY } gw_dir_answer;

typedef enum gw_dir_source {
	GW_DIR_SRC_CACHE = 0, /* cached answer */
	GW_DIR_SRC_LDAP,      /* asked an LDAP server */
	GW_DIR_SRC_HTTP,      /* asked an HTTP(S) server */
	GW_DIR_SRC_LIMIT,     /* every handle busy: not asked */
	GW_DIR_SRC_INPUT      /* the recipient cannot be put in the query: not asked */
} gw_dir_source;

typedef struct gw_dir_opts {
	const char *url;              /* the template (required) */
	const char *ca_file;          /* NULL: the system trust anchors */
	const char *credentials_file; /* NULL: anonymous */
	unsigned timeout_ms;          /* whole request; 0: 5000 */
	unsigned connect_timeout_ms;  /* 0: timeout_ms */
	unsigned max_requests;        /* concurrent requests; 0: 16 */
	uint32_t positive_ttl_ms;     /* 0: not cached */
	uint32_t negative_ttl_ms;     /* 0: not cached */
	const char *http_exists;      /* status codes, blank or comma separated; NULL: "200" */
	const char *http_unknown;     /* NULL: "404" */
	const char *http_expect;      /* text an EXISTS body must contain; NULL or "": any body */
} gw_dir_opts;

typedef struct gw_dir_result {
	gw_dir_answer answer;
	gw_dir_source source;
	long status;    /* HTTP status, or the number of LDAP entries; -1 if none */
	char text[160]; /* why, for logs (never the credentials); "" if nothing to say */
	int64_t elapsed_ms;
} gw_dir_result;

/* Latency buckets of gw_dir_stats: <= 10 ms, 100 ms, 1 s, 5 s, and more. */
#define GW_DIR_LAT_BUCKETS 5

typedef struct gw_dir_stats {
	uint64_t lookups;                          /* gw_dir_check calls */
	uint64_t exists, unknown, temporary;       /* answers by kind, cached ones included */
	uint64_t from_cache, limited, bad_input;   /* of those: cached, refused by the cap, by the input */
	uint64_t requests;                         /* asked the server */
	uint64_t latency_ms_total, latency_ms_max; /* of the requests */
	uint64_t latency[GW_DIR_LAT_BUCKETS];      /* requests per latency bucket */
	unsigned in_flight;
	uint64_t connects; /* LDAP connections opened (0 for HTTP) */
} gw_dir_stats;

typedef struct gw_directory gw_directory;

/*
 * Check a template: a known scheme (ldap, ldaps, http, https), placeholders
 * known and only where they can be escaped, braces balanced, length. 0 ok;
 * -1 with err.
 */
GW_API int gw_dir_template_check(const char *tmpl, char *err, size_t errlen);

/*
 * Expand tmpl for local@domain (lengths given, so an embedded NUL is seen and
 * refused) into out. 0 ok; -1 with *why (a static message): bad template,
 * a value with NUL or control characters or invalid UTF-8, or out too small.
 */
GW_API int gw_dir_expand(const char *tmpl, const char *local, size_t local_len, const char *domain,
			 size_t domain_len, char *out, size_t size, const char **why);

/* RFC 4515 escaping of src[0..len) into out (NUL-terminated). Length written, or -1 if it does not fit. */
GW_API long gw_dir_ldap_escape(const char *src, size_t len, char *out, size_t size);
/* Percent-encoding of every byte but RFC 3986 unreserved ones. Length written, or -1 if it does not fit. */
GW_API long gw_dir_url_escape(const char *src, size_t len, char *out, size_t size);

/*
 * A directory with these options (copied). cache: shared, or NULL to make a
 * small one. clock: NULL for monotonic. Reads the credentials file now. NULL
 * with err (template, credentials file, libcurl).
 */
GW_API gw_directory *gw_directory_new(const gw_dir_opts *opts, gw_cache *cache, const gw_clock *clock,
				      char *err, size_t errlen);
/* Close every connection, wipe the credentials, free; sets *d to NULL. No lookup may be running. */
GW_API void gw_directory_free(gw_directory **d);

/*
 * Is rcpt ("local@domain", already validated) in the directory? Fills *res_r
 * and returns its answer. Never takes longer than timeout_ms nor budget_ms
 * (when > 0: what is left of the caller's deadline).
 */
GW_API gw_dir_answer gw_dir_check(gw_directory *d, const char *rcpt, unsigned budget_ms,
				  gw_dir_result *res_r);
/* Forget the cached answer for rcpt (1 if there was one). */
GW_API int gw_dir_purge(gw_directory *d, const char *rcpt);
GW_API void gw_dir_stats_get(gw_directory *d, gw_dir_stats *stats_r);

/* "exists", "unknown", "temporary" */
GW_API const char *gw_dir_answer_str(gw_dir_answer a);
/* "cache", "ldap", "http", "limit", "input" */
GW_API const char *gw_dir_source_str(gw_dir_source s);

#endif
