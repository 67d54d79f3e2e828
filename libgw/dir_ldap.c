/*
 * dir_ldap.c - LDAP lookups of the directory check through OpenLDAP's
 * libldap, over a small pool of bound connections (see dir_ldap.h).
 *
 * Why libldap and not libcurl (which still speaks HTTP for the directory):
 * libcurl 7.88 (Debian 12, built with its OpenLDAP backend lib/openldap.c,
 * which does keep its connections) cannot reuse an LDAP connection for this
 * check. Its generic Curl_retry_request (lib/transfer.c) takes a transfer
 * that received no byte on a reused connection for a connection that died
 * and repeats it on a fresh one; a search without entries writes no byte,
 * so every "unknown" over a reused connection cost a second connection and
 * search (`curl -v` says "Connection died, retrying a fresh connect"), and
 * with several cached connections could end as "tried 5 times". No option
 * changes that (CURLOPT_NOBODY stops the search results being read at all),
 * so libcurl could only be run with CURLOPT_FORBID_REUSE: a TCP connection
 * and a bind per lookup. Worse, that backend closes every LDAP socket twice
 * (ldap_unbind_ext closes the descriptor libldap was handed by ldap_init_fd,
 * then libcurl closes it again: strace shows close(N) = 0 then close(N) =
 * -EBADF). In a threaded process the second close can hit a descriptor
 * another thread has just opened: under load a few lookups failed with
 * "connect ... failed: Bad file descriptor", "connecting ldap_result Can't
 * contact LDAP server" (slapd: "closed (connection lost)" right after the
 * BIND) or a 5 s timeout with slapd's answer sent at once (about 4 in 1000
 * lookups with four threads), and any other descriptor of the process could
 * be the one closed.
 *
 * Here a connection is opened (ldap_connect, then StartTLS when the URL's
 * extension asks, then a simple bind with the credentials when there are
 * some), kept in the pool and reused. Every wait is bounded by the lookup's
 * deadline: the connect and TLS by LDAP_OPT_NETWORK_TIMEOUT, StartTLS by
 * LDAP_OPT_TIMEOUT, the bind and the search by ldap_result's timeout. A
 * connection found closed when taken from the pool (a poll, no round trip)
 * is replaced; one that dies under a search before any answer (the server
 * restarted meanwhile) is replaced once and the search repeated, which is
 * safe: a search changes nothing. A timeout or a broken answer closes the
 * connection (its state is unknown); an error result from the server keeps
 * it. The answer: one or more entries -> EXISTS (sizeLimitExceeded
 * included), none -> UNKNOWN, anything else -> TEMPORARY with the reason.
 * Only the entries' names are asked for ("1.1": no attributes).
 *
 * TLS (ldaps://, or StartTLS: the extension "StartTLS" or its OID
 * 1.3.6.1.4.1.1466.20037 in the URL, "!" critical or not): the peer's
 * certificate and name are always verified (LDAP_OPT_X_TLS_DEMAND); ca_file
 * replaces the trust anchors of libldap's configuration (ldap.conf TLS_CACERT).
 *
 * Does not defend against: a server that answers a search slowly but
 * within the deadline (the slot is busy meanwhile); libldap's own copies of
 * the password (in its encoded bind request, freed, not wiped); a library
 * configuration (ldap.conf, LDAPRC) that changes options not set here;
 * SIGPIPE in a process that does not ignore it (libldap writes with write();
 * on a reset connection it writes at most its one unbind, which gets the
 * reset's ECONNRESET, not EPIPE: test_dir_ldap resets connections with
 * SIGPIPE at its default, but that is libldap's behaviour, not a guarantee).
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ldap.h>

#include "dir_ldap.h"
#include "gw/time.h"

#define STARTTLS_OID "1.3.6.1.4.1.1466.20037"

struct dir_ldap {
	char *server; /* ldap[s]://host:port */
	int starttls;
	int tls; /* ldaps:// or StartTLS */
	const char *ca_file, *user, *pass;
	unsigned connect_timeout_ms, max;
	pthread_mutex_t lock;
	LDAP **idle; /* max slots */
	size_t nidle;
	unsigned taken; /* slots in use */
	atomic_uint_fast64_t connects;
};

typedef enum srch { S_OK, S_DEAD, S_FAIL_KEEP, S_FAIL_DROP } srch;

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

/* libldap's global state is set up by its first call: made once, before any thread uses it. */
static void lib_init(void)
{
	int v3 = LDAP_VERSION3;

	(void)ldap_set_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &v3);
}

/* The extensions of the template: StartTLS known; any other critical one refused. */
static int extensions(dir_ldap *p, LDAPURLDesc *lud, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; lud->lud_exts != NULL && lud->lud_exts[i] != NULL; i++) {
		const char *e = lud->lud_exts[i];
		int crit = *e == '!';

		e += crit;
		if (strncasecmp(e, "StartTLS", 8) == 0 && (e[8] == '\0' || e[8] == '=')) {
			p->starttls = 1;
		} else if (strncmp(e, STARTTLS_OID, sizeof(STARTTLS_OID) - 1) == 0 &&
			   (e[sizeof(STARTTLS_OID) - 1] == '\0' || e[sizeof(STARTTLS_OID) - 1] == '=')) {
			p->starttls = 1;
		} else if (crit) {
			snprintf(err, errlen, "LDAP URL: unsupported critical extension %.60s", e);
			return -1;
		}
	}
	return 0;
}

dir_ldap *dir_ldap_new(const char *tmpl, const char *ca_file, const char *user, const char *pass,
		       unsigned connect_timeout_ms, unsigned max, char *err, size_t errlen)
{
	char url[GW_DIR_URL_MAX + 1];
	const char *why = NULL;
	LDAPURLDesc *lud = NULL;
	dir_ldap *p;
	int rc, ssl;

	pthread_once(&lib_once, lib_init);
	/* The server and the extensions are the template's own text: a stand-in recipient will do. */
	if (gw_dir_expand(tmpl, "x", 1, "x", 1, url, sizeof(url), &why) != 0) {
		snprintf(err, errlen, "URL template: %s", why);
		return NULL;
	}
	if ((rc = ldap_url_parse(url, &lud)) != LDAP_URL_SUCCESS) {
		snprintf(err, errlen, "LDAP URL refused by libldap (ldap_url_parse error %d)", rc);
		return NULL;
	}
	if (lud->lud_host == NULL || *lud->lud_host == '\0') {
		snprintf(err, errlen, "LDAP URL without a host");
		ldap_free_urldesc(lud);
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL || (p->idle = calloc(max, sizeof(*p->idle))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&p->lock, NULL);
	ssl = strcasecmp(lud->lud_scheme, "ldaps") == 0;
	if (extensions(p, lud, err, errlen) != 0)
		goto fail;
	if (ssl && p->starttls) {
		snprintf(err, errlen, "LDAP URL: StartTLS on ldaps:// (already TLS)");
		goto fail;
	}
	p->tls = ssl || p->starttls;
	{
		size_t n = strlen(lud->lud_host) + 32;
		int v6 = strchr(lud->lud_host, ':') != NULL;

		if ((p->server = malloc(n)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		snprintf(p->server, n, "%s://%s%s%s:%d", ssl ? "ldaps" : "ldap", v6 ? "[" : "", lud->lud_host,
			 v6 ? "]" : "",
			 lud->lud_port > 0 ? lud->lud_port
			 : ssl             ? 636
					   : 389);
	}
	p->ca_file = ca_file;
	p->user = user;
	p->pass = pass;
	p->connect_timeout_ms = connect_timeout_ms;
	p->max = max;
	ldap_free_urldesc(lud);
	return p;
fail:
	ldap_free_urldesc(lud);
	dir_ldap_free(&p);
	return NULL;
}

void dir_ldap_free(dir_ldap **pp)
{
	dir_ldap *p;
	size_t i;

	if (pp == NULL || (p = *pp) == NULL)
		return;
	if (p->idle != NULL) {
		for (i = 0; i < p->nidle; i++)
			(void)ldap_unbind_ext_s(p->idle[i], NULL, NULL);
		free(p->idle);
		pthread_mutex_destroy(&p->lock);
	}
	free(p->server);
	free(p);
	*pp = NULL;
}

int dir_ldap_take(dir_ldap *p, LDAP **ld)
{
	int rc = 0;

	*ld = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->taken >= p->max) {
		rc = -1;
	} else {
		p->taken++;
		if (p->nidle > 0)
			*ld = p->idle[--p->nidle];
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void dir_ldap_give(dir_ldap *p, LDAP *ld)
{
	pthread_mutex_lock(&p->lock);
	p->taken--;
	if (ld != NULL)
		p->idle[p->nidle++] = ld; /* idle + taken <= max, so there is room */
	pthread_mutex_unlock(&p->lock);
}

uint64_t dir_ldap_connects(dir_ldap *p)
{
	return atomic_load(&p->connects);
}

/* --- one connection ------------------------------------------------------------ */

static void tv_of(struct timeval *tv, int64_t ms)
{
	if (ms < 1)
		ms = 1;
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)(ms % 1000) * 1000;
}

static void close_ld(LDAP **ld)
{
	if (*ld != NULL)
		(void)ldap_unbind_ext_s(*ld, NULL, NULL);
	*ld = NULL;
}

/* libldap's reason for the last failure on ld: its result code and diagnostic message. */
static void why_of(LDAP *ld, const char *what, int rc, gw_dir_result *r)
{
	char *diag = NULL;

	if (ld != NULL)
		(void)ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	snprintf(r->text, sizeof(r->text), "%s: %s%s%.80s", what, ldap_err2string(rc),
		 diag != NULL && *diag != '\0' ? ": " : "", diag != NULL ? diag : "");
	ldap_memfree(diag);
}

/* Did the server close an idle connection (or send anything, which it must not)? A poll, no wait. */
static int idle_alive(LDAP *ld)
{
	struct pollfd pfd;
	int fd = -1;

	if (ldap_get_option(ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS || fd < 0)
		return 0;
	pfd.fd = fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	return poll(&pfd, 1, 0) == 0;
}

static int options(dir_ldap *p, LDAP *ld, int64_t left)
{
	struct timeval net, api;
	int v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND, zero = 0;

	tv_of(&net, left < (int64_t)p->connect_timeout_ms ? left : (int64_t)p->connect_timeout_ms);
	tv_of(&api, left);
	if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_RESTART, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &net) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &api) != LDAP_OPT_SUCCESS)
		return -1;
	if (!p->tls)
		return 0;
	if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS ||
	    (p->ca_file != NULL &&
	     ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, p->ca_file) != LDAP_OPT_SUCCESS) ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero) != LDAP_OPT_SUCCESS)
		return -1;
	return 0;
}

/* A simple bind with the credentials, waited for until deadline. */
static int bind_ld(dir_ldap *p, LDAP *ld, int64_t deadline, gw_dir_result *r)
{
	struct berval cred;
	struct timeval tv;
	LDAPMessage *res = NULL;
	int rc, msgid = -1, err = LDAP_OTHER;

	cred.bv_val = (char *)p->pass;
	cred.bv_len = strlen(p->pass);
	if ((rc = ldap_sasl_bind(ld, p->user, LDAP_SASL_SIMPLE, &cred, NULL, NULL, &msgid)) != LDAP_SUCCESS) {
		why_of(ld, "bind", rc, r);
		return -1;
	}
	tv_of(&tv, deadline - gw_now_ms());
	rc = ldap_result(ld, msgid, LDAP_MSG_ALL, &tv, &res);
	if (rc == 0) {
		snprintf(r->text, sizeof(r->text), "%s", "timeout (bind)");
		return -1;
	}
	if (rc < 0) {
		(void)ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &err);
		why_of(ld, "bind", err, r);
		return -1;
	}
	if ((rc = ldap_parse_result(ld, res, &err, NULL, NULL, NULL, NULL, 1)) != LDAP_SUCCESS)
		err = rc;
	if (err != LDAP_SUCCESS) {
		why_of(ld, "bind", err, r);
		return -1;
	}
	return 0;
}

/* A new connection, ready to search (TLS and bind done), or NULL with r->text. */
static LDAP *conn_open(dir_ldap *p, int64_t deadline, gw_dir_result *r)
{
	LDAP *ld = NULL;
	int rc;

	if ((rc = ldap_initialize(&ld, p->server)) != LDAP_SUCCESS || ld == NULL) {
		why_of(NULL, "ldap_initialize", rc, r);
		return NULL;
	}
	if (options(p, ld, deadline - gw_now_ms()) != 0) {
		snprintf(r->text, sizeof(r->text), "%s", "libldap refused an option");
		close_ld(&ld);
		return NULL;
	}
	atomic_fetch_add(&p->connects, 1);
	if ((rc = ldap_connect(ld)) != LDAP_SUCCESS) {
		why_of(ld, "connect", rc, r);
		close_ld(&ld);
		return NULL;
	}
	if (p->starttls && (rc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS) {
		why_of(ld, "StartTLS", rc, r);
		close_ld(&ld);
		return NULL;
	}
	if (p->user != NULL && bind_ld(p, ld, deadline, r) != 0) {
		close_ld(&ld);
		return NULL;
	}
	return ld;
}

static int conn_lost(int rc)
{
	return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR;
}

/* One search of lud on ld until deadline; *entries counted. */
static srch search(LDAP *ld, LDAPURLDesc *lud, int64_t deadline, long *entries, gw_dir_result *r)
{
	static char *no_attrs[] = {LDAP_NO_ATTRS, NULL};
	struct timeval tv;
	LDAPMessage *res;
	int rc, msgid = -1, err, got = 0;

	*entries = 0;
	rc = ldap_search_ext(ld, lud->lud_dn, lud->lud_scope, lud->lud_filter, no_attrs, 0, NULL, NULL, NULL,
			     0, &msgid);
	if (rc != LDAP_SUCCESS) {
		why_of(ld, "search", rc, r);
		return conn_lost(rc) ? S_DEAD : rc == LDAP_FILTER_ERROR ? S_FAIL_KEEP : S_FAIL_DROP;
	}
	for (;;) {
		int64_t left = deadline - gw_now_ms();

		if (left <= 0) {
			(void)ldap_abandon_ext(ld, msgid, NULL, NULL);
			snprintf(r->text, sizeof(r->text), "%s", "timeout");
			return S_FAIL_DROP;
		}
		tv_of(&tv, left);
		res = NULL;
		rc = ldap_result(ld, msgid, LDAP_MSG_ONE, &tv, &res);
		if (rc == 0)
			continue;
		if (rc < 0) {
			err = LDAP_OTHER;
			(void)ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &err);
			why_of(ld, "search", err, r);
			return !got && conn_lost(err) ? S_DEAD : S_FAIL_DROP;
		}
		got = 1;
		if (rc == LDAP_RES_SEARCH_ENTRY) {
			(*entries)++;
		} else if (rc == LDAP_RES_SEARCH_RESULT) {
			err = LDAP_OTHER;
			if ((rc = ldap_parse_result(ld, res, &err, NULL, NULL, NULL, NULL, 1)) !=
			    LDAP_SUCCESS) {
				why_of(ld, "search result", rc, r);
				return S_FAIL_DROP;
			}
			if (err == LDAP_SUCCESS || (err == LDAP_SIZELIMIT_EXCEEDED && *entries > 0))
				return S_OK;
			why_of(ld, "search", err, r);
			return S_FAIL_KEEP;
		}
		ldap_msgfree(res); /* entries, and references (not followed) */
	}
}

gw_dir_answer dir_ldap_query(dir_ldap *p, LDAP **ld, const char *url, unsigned timeout_ms, gw_dir_result *r)
{
	int64_t deadline = gw_now_ms() + timeout_ms;
	LDAPURLDesc *lud = NULL;
	long entries = 0;
	int tries, reused, rc;
	srch s = S_FAIL_DROP;

	if ((rc = ldap_url_parse(url, &lud)) != LDAP_URL_SUCCESS) {
		snprintf(r->text, sizeof(r->text), "LDAP URL refused by libldap (error %d)", rc);
		return GW_DIR_TEMPORARY;
	}
	for (tries = 0; tries < 2; tries++) {
		if (*ld != NULL && !idle_alive(*ld))
			close_ld(ld);
		reused = *ld != NULL;
		if (*ld == NULL && (*ld = conn_open(p, deadline, r)) == NULL)
			break;
		s = search(*ld, lud, deadline, &entries, r);
		if (s == S_OK || s == S_FAIL_KEEP)
			break;
		close_ld(ld);
		/* A reused connection that died before answering: the server went away since; once more
		 * afresh. */
		if (s != S_DEAD || !reused || gw_now_ms() >= deadline)
			break;
	}
	ldap_free_urldesc(lud);
	if (s != S_OK)
		return GW_DIR_TEMPORARY;
	r->text[0] = '\0';
	r->status = entries;
	return entries > 0 ? GW_DIR_EXISTS : GW_DIR_UNKNOWN;
}
