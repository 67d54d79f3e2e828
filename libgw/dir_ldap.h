/*
 * dir_ldap.h - the directory check's LDAP transport (internal to libgw):
 * a bounded pool of bound connections to the one server of a directory's
 * URL template, and one search per lookup on a pooled connection.
 *
 * The pool holds at most max connections, idle or busy; a lookup takes a
 * slot (an idle connection, or the right to open one) and gives it back.
 * No slot free is the cap on concurrent requests: dir_ldap_take fails at
 * once and the caller answers TEMPORARY. See dir_ldap.c for why this is
 * libldap and not libcurl.
 */
#ifndef GW_DIR_LDAP_H
#define GW_DIR_LDAP_H

#include <stddef.h>
#include <stdint.h>

#include "gw/directory.h"

struct ldap; /* OpenLDAP's LDAP */
typedef struct dir_ldap dir_ldap;

/*
 * A pool for the server of tmpl (an ldap:// or ldaps:// template, already
 * checked). ca_file, user and pass are borrowed (they outlive the pool);
 * user NULL: no bind (anonymous). NULL with err: a URL libldap refuses, no
 * host, an unsupported critical extension, StartTLS asked on ldaps://.
 */
dir_ldap *dir_ldap_new(const char *tmpl, const char *ca_file, const char *user, const char *pass,
		       unsigned connect_timeout_ms, unsigned max, char *err, size_t errlen);
/* Close every idle connection and free. No lookup may be running. */
void dir_ldap_free(dir_ldap **p);

/* A slot: *ld an idle connection, or NULL (one may be opened). -1 at the cap. */
int dir_ldap_take(dir_ldap *p, struct ldap **ld);
/* Give the slot back with its connection (kept idle) or NULL (slot freed). */
void dir_ldap_give(dir_ldap *p, struct ldap *ld);

/*
 * Search the expanded url on *ld (opening, and once replacing a dead
 * reused one, within timeout_ms). Fills r->status (entries) and r->text.
 * *ld is left open for reuse, or NULL if it was closed.
 */
gw_dir_answer dir_ldap_query(dir_ldap *p, struct ldap **ld, const char *url, unsigned timeout_ms,
			     gw_dir_result *r);

/* Connections opened so far. */
uint64_t dir_ldap_connects(dir_ldap *p);

#endif
