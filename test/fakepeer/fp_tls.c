/*
 * fp_tls.c - the fake peer's TLS identity: an EC P-256 key and a self-signed
 * certificate made at start, good for one day, that is its own trust anchor
 * (CA:TRUE) so a client can use the PEM file as its CA file.
 * Does not defend against anything: the key is throw-away and test-only; the
 * certificate file is world-readable like any mkstemp file's contents allow.
 */
#include "fp_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Only plain host-name characters, so the name cannot smuggle extra entries into the
 * subjectAltName configuration string. */
static int name_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 253)
		return 0;
	for (; *s; s++) {
		char ch = *s;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '-' || ch == '*' || ch == '_'))
			return 0;
	}
	return 1;
}

static int add_ext(X509 *x, X509V3_CTX *v, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v, nid, value);
	int ok;

	if (ext == NULL)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

static X509 *make_cert(EVP_PKEY *key, const char *name)
{
	X509 *x = X509_new();
	BIGNUM *serial = BN_new();
	X509_NAME *subject;
	X509V3_CTX v;
	char san[400];
	int ok;

	if (x == NULL || serial == NULL)
		goto fail;
	snprintf(san, sizeof san, "DNS:%s,IP:127.0.0.1,IP:::1", name);
	ok = X509_set_version(x, 2) && BN_rand(serial, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
	     BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) != NULL &&
	     X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
	     X509_gmtime_adj(X509_getm_notAfter(x), 86400 - 3600) != NULL && X509_set_pubkey(x, key);
	if (!ok)
		goto fail;
	subject = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1,
					0) ||
	    !X509_set_issuer_name(x, subject))
		goto fail;
	X509V3_set_ctx_nodb(&v);
	X509V3_set_ctx(&v, x, x, NULL, NULL, 0);
	ok = add_ext(x, &v, NID_basic_constraints, "critical,CA:TRUE") &&
	     add_ext(x, &v, NID_key_usage, "critical,digitalSignature,keyCertSign") &&
	     add_ext(x, &v, NID_ext_key_usage, "serverAuth") &&
	     add_ext(x, &v, NID_subject_key_identifier, "hash") &&
	     add_ext(x, &v, NID_subject_alt_name, san) && X509_sign(x, key, EVP_sha256()) > 0;
	if (!ok)
		goto fail;
	BN_free(serial);
	return x;
fail:
	BN_free(serial);
	X509_free(x);
	return NULL;
}

static int write_pem(X509 *x, char *path, size_t pathlen, char *err, size_t errlen)
{
	const char *dir = getenv("TMPDIR");
	FILE *f;
	int fd, ok;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	if ((size_t)snprintf(path, pathlen, "%s/fakepeer-cert-XXXXXX", dir) >= pathlen) {
		snprintf(err, errlen, "TMPDIR too long");
		return -1;
	}
	fd = mkstemp(path);
	if (fd < 0) {
		snprintf(err, errlen, "mkstemp %s failed", path);
		path[0] = '\0';
		return -1;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		ok = 0;
	} else {
		ok = PEM_write_X509(f, x);
		ok = (fclose(f) == 0) && ok;
	}
	if (!ok) {
		snprintf(err, errlen, "cannot write certificate to %s", path);
		unlink(path);
		path[0] = '\0';
		return -1;
	}
	return 0;
}

SSL_CTX *fp_tls_make(const char *name, char *path, size_t pathlen, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	SSL_CTX *ctx = NULL;

	path[0] = '\0';
	if (name == NULL)
		name = "localhost";
	if (!name_ok(name)) {
		snprintf(err, errlen, "bad tls_name");
		return NULL;
	}
	key = EVP_EC_gen("P-256");
	if (key == NULL || (x = make_cert(key, name)) == NULL) {
		snprintf(err, errlen, "cannot make the test certificate");
		goto out;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "cannot set up the TLS server context");
		SSL_CTX_free(ctx);
		ctx = NULL;
		goto out;
	}
	/* A client that closes without close_notify reads as end of input, not as an error. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* No session tickets: a client that closes right after the handshake would otherwise
	 * make the server's ticket write fail and look like a broken connection. */
	SSL_CTX_set_num_tickets(ctx, 0);
	if (write_pem(x, path, pathlen, err, errlen) < 0) {
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
out:
	if (ctx == NULL)
		ERR_clear_error();
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}
