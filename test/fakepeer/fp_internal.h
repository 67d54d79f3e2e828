/*
 * fp_internal.h - pieces of the fake peer shared between its own files and
 * gw-fakepeer (main.c); not for tests, which use fakepeer.h only.
 */
#ifndef FP_INTERNAL_H
#define FP_INTERNAL_H

#include <stddef.h>
#include <openssl/ssl.h>

#include "fakepeer.h"

/* Generate a P-256 key and a self-signed certificate for name, write the certificate
 * PEM to a new temporary file (its name into path) and return a server context using
 * both. NULL on error (message in err). */
SSL_CTX *fp_tls_make(const char *name, char *path, size_t pathlen, char *err, size_t errlen);

/* How many connections the script describes. */
unsigned fp_scripted(const fp_peer *p);
/* 1 when connection i has closed and its record is final, 0 otherwise. */
int fp_conn_ended(const fp_peer *p, unsigned i);

#endif
