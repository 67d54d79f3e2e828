/*
 * tls.c - OpenSSL sessions over non-blocking sockets: the client side, and the
 * server side of STARTTLS (a certificate and key offered, no client certificate).
 *
 * The socket is wrapped in a small BIO of our own (send with MSG_NOSIGNAL,
 * recv) rather than BIO_s_socket, whose write() would raise SIGPIPE on a
 * closed connection. WANT_READ/WANT_WRITE are turned into poll() waits
 * bounded by the caller's timeout and deadline.
 *
 * DANE: every context has OpenSSL's DANE support enabled (it costs nothing
 * until a session adds TLSA records); a DANE session verifies the peer with
 * SSL_VERIFY_PEER so a mismatch ends the handshake, and is only accepted
 * when OpenSSL says a TLSA record matched.
 *
 * Does not defend against: revoked certificates (no CRL/OCSP), downgrade by
 * an active attacker under the encrypt/may policies (no verification there by
 * design), renegotiation (OpenSSL's defaults apply).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* The handles are OpenSSL's own objects under names of ours. */
static SSL_CTX *ctx_of(gw_tls_ctx *c)
{
	return (SSL_CTX *)(void *)c;
}

static SSL *ssl_of(gw_tls *t)
{
	return (SSL *)(void *)t;
}

static const SSL *cssl_of(const gw_tls *t)
{
	return (const SSL *)(const void *)t;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_sock_write(BIO *b, const char *in, int inl)
{
	int fd = (int)(intptr_t)BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	n = send(fd, in, (size_t)inl, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			BIO_set_retry_write(b);
		return -1;
	}
	return (int)n;
}

static int bio_sock_read(BIO *b, char *out, int outl)
{
	int fd = (int)(intptr_t)BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	n = recv(fd, out, (size_t)outl, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			BIO_set_retry_read(b);
		return -1;
	}
	return (int)n;
}

static long bio_sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	/* Writes go straight to the socket: nothing to flush. Everything else is unsupported. */
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_sock_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void bio_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "gw socket");

	if (m == NULL)
		return;
	if (!BIO_meth_set_write(m, bio_sock_write) || !BIO_meth_set_read(m, bio_sock_read) ||
	    !BIO_meth_set_ctrl(m, bio_sock_ctrl) || !BIO_meth_set_create(m, bio_sock_create)) {
		BIO_meth_free(m);
		return;
	}
	bio_method = m;
}

/* The most recent OpenSSL error as text, or fallback. */
static void ssl_errtext(const char *what, const char *fallback, char *err, size_t errlen)
{
	unsigned long e = ERR_peek_last_error();
	char buf[200];

	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(err, errlen, "%s: %s", what, buf);
	} else {
		snprintf(err, errlen, "%s: %s", what, fallback);
	}
	ERR_clear_error();
}

/* A new client context; see gw_tls_ctx_new. */
static SSL_CTX *ctx_make(int verify, const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		ssl_errtext("SSL_CTX_new", "failed", err, errlen);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* A peer that closes without close_notify reads as a lost connection, not a TLS error. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		ssl_errtext("cannot enable DANE", "failed", err, errlen);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (verify) {
		int ok = ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
					 : SSL_CTX_set_default_verify_paths(ctx);
		if (!ok) {
			ssl_errtext("cannot load CA certificates", "failed", err, errlen);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
}

/*
 * The context that verifies nothing is the same for every client and is not
 * changed once made (names, DANE records and verification are set per
 * session): one for the process, handed out by reference, so that opening a
 * probe session does not pay SSL_CTX_new (over a million instructions with
 * OpenSSL 3: more than a cold recipient's whole probe). Kept until exit. A
 * verifying context loads a CA store, which a reload may have changed: made
 * afresh each time.
 */
static SSL_CTX *shared_plain;
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;

gw_tls_ctx *gw_tls_ctx_new(int verify, const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx = NULL;

	if (verify)
		return (gw_tls_ctx *)(void *)ctx_make(verify, ca_file, err, errlen);
	pthread_mutex_lock(&shared_lock);
	if (shared_plain == NULL)
		shared_plain = ctx_make(0, NULL, err, errlen);
	if (shared_plain != NULL && SSL_CTX_up_ref(shared_plain) == 1)
		ctx = shared_plain;
	else if (shared_plain != NULL)
		ssl_errtext("SSL_CTX_up_ref", "failed", err, errlen);
	pthread_mutex_unlock(&shared_lock);
	return (gw_tls_ctx *)(void *)ctx;
}

void gw_tls_ctx_free(gw_tls_ctx **ctx)
{
	if (*ctx != NULL)
		SSL_CTX_free(ctx_of(*ctx));
	*ctx = NULL;
}

static int is_ip_address(const char *name)
{
	unsigned char addr[16];

	return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

/*
 * Act on the outcome r of an SSL call: wait when OpenSSL wants I/O (returns
 * 1 to retry), else classify the failure. end_timeout restarts per wait.
 */
static int ssl_step(SSL *ssl, int fd, int r, unsigned timeout_ms, int64_t deadline, gw_net_rc *rc_r,
		    const char *what, char *err, size_t errlen)
{
	int e = SSL_get_error(ssl, r);
	int saved = errno;

	switch (e) {
	case SSL_ERROR_WANT_READ:
		*rc_r = gw_net_wait(fd, POLLIN, timeout_ms, deadline, err, errlen);
		return *rc_r == GW_NET_OK;
	case SSL_ERROR_WANT_WRITE:
		*rc_r = gw_net_wait(fd, POLLOUT, timeout_ms, deadline, err, errlen);
		return *rc_r == GW_NET_OK;
	case SSL_ERROR_ZERO_RETURN:
		snprintf(err, errlen, "%s: connection closed by peer", what);
		*rc_r = GW_NET_LOST;
		return 0;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_last_error() != 0) {
			ssl_errtext(what, "", err, errlen);
		} else {
			snprintf(err, errlen, "%s: %s", what,
				 saved != 0 ? strerror(saved) : "connection closed");
			ERR_clear_error();
		}
		*rc_r = GW_NET_LOST;
		return 0;
	default:
		ssl_errtext(what, "protocol error", err, errlen);
		*rc_r = GW_NET_TLS;
		return 0;
	}
}

/* Make ssl a DANE session for base domain name with records tlsa[0..n). 0, or -1 with err. */
static int dane_setup(SSL *ssl, const char *name, const gw_tlsa *tlsa, size_t n, char *err, size_t errlen)
{
	size_t i, added = 0;

	if (SSL_dane_enable(ssl, name) <= 0) {
		ssl_errtext("cannot enable DANE for the session", "failed", err, errlen);
		return -1;
	}
	/* RFC 7672 3.2.3: DANE-EE names are not checked at all (OpenSSL checks them unless told);
	 * DANE-TA names are, against the base domain, without partial wildcards. */
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	for (i = 0; i < n; i++) {
		int r = SSL_dane_tlsa_add(ssl, tlsa[i].usage, tlsa[i].selector, tlsa[i].mtype, tlsa[i].data,
					  tlsa[i].len);
		if (r < 0) {
			ssl_errtext("cannot add a TLSA record", "failed", err, errlen);
			return -1;
		}
		added += r > 0;
	}
	ERR_clear_error();
	if (added == 0) {
		snprintf(err, errlen, "no usable TLSA record for %s", name);
		return -1;
	}
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	return 0;
}

/* A session of ctx on fd through the socket BIO. NULL with err (a local failure). */
static SSL *ssl_on_fd(gw_tls_ctx *ctx, int fd, char *err, size_t errlen)
{
	SSL *ssl;
	BIO *bio;

	pthread_once(&bio_once, bio_method_init);
	if (bio_method == NULL) {
		snprintf(err, errlen, "cannot create the socket BIO method");
		return NULL;
	}
	ERR_clear_error();
	ssl = SSL_new(ctx_of(ctx));
	bio = ssl != NULL ? BIO_new(bio_method) : NULL;
	if (bio == NULL) {
		ssl_errtext("SSL_new", "out of memory", err, errlen);
		SSL_free(ssl);
		return NULL;
	}
	BIO_set_data(bio, (void *)(intptr_t)fd);
	SSL_set_bio(ssl, bio, bio);
	return ssl;
}

gw_net_rc gw_tls_connect(gw_tls_ctx *ctx, int fd, const char *name, int verify, const gw_tlsa *tlsa,
			 size_t ntlsa, unsigned timeout_ms, int64_t deadline, gw_tls **tls_r, char *err,
			 size_t errlen)
{
	SSL *ssl;
	gw_net_rc rc = GW_NET_OK;
	int r;

	*tls_r = NULL;
	if (ntlsa > 0)
		verify = 0; /* DANE replaces the CA store and the name check below */
	if ((verify || ntlsa > 0) && (name == NULL || *name == '\0' || (ntlsa > 0 && is_ip_address(name)))) {
		snprintf(err, errlen, "no host name to verify the certificate against");
		return GW_NET_TLS;
	}
	if ((ssl = ssl_on_fd(ctx, fd, err, errlen)) == NULL)
		return GW_NET_LOCAL;
	if (name != NULL && *name != '\0') {
		int ip = is_ip_address(name);
		int ok = 1;

		if (!ip)
			ok = SSL_set_tlsext_host_name(ssl, name);
		if (ok && verify)
			ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
				: SSL_set1_host(ssl, name);
		if (!ok) {
			ssl_errtext("cannot set the peer name", "failed", err, errlen);
			SSL_free(ssl);
			return GW_NET_TLS;
		}
	}
	if (ntlsa > 0 && dane_setup(ssl, name, tlsa, ntlsa, err, errlen) != 0) {
		SSL_free(ssl);
		return GW_NET_TLS;
	}
	for (;;) {
		ERR_clear_error();
		errno = 0;
		r = SSL_connect(ssl);
		if (r == 1)
			break;
		if (!ssl_step(ssl, fd, r, timeout_ms, deadline, &rc, "TLS handshake", err, errlen))
			break;
	}
	if (r != 1) {
		long vr = SSL_get_verify_result(ssl);

		if (ntlsa > 0 && vr != X509_V_OK)
			snprintf(err, errlen, "certificate does not match the TLSA records of %s: %s", name,
				 X509_verify_cert_error_string(vr));
		else if (verify && vr != X509_V_OK)
			snprintf(err, errlen, "certificate verification failed: %s",
				 X509_verify_cert_error_string(vr));
		SSL_free(ssl);
		/* Any handshake failure but a timeout is a TLS failure: the peer would not speak TLS with us.
		 */
		return rc == GW_NET_TIMEOUT || rc == GW_NET_LOCAL ? rc : GW_NET_TLS;
	}
	if (verify && (SSL_get0_peer_certificate(ssl) == NULL || SSL_get_verify_result(ssl) != X509_V_OK)) {
		snprintf(err, errlen, "certificate verification failed");
		SSL_free(ssl);
		return GW_NET_TLS;
	}
	if (ntlsa > 0 &&
	    (SSL_get_verify_result(ssl) != X509_V_OK || SSL_get0_dane_authority(ssl, NULL, NULL) < 0)) {
		snprintf(err, errlen, "certificate does not match the TLSA records of %s", name);
		SSL_free(ssl);
		return GW_NET_TLS;
	}
	*tls_r = (gw_tls *)(void *)ssl;
	return GW_NET_OK;
}

gw_tls_ctx *gw_tls_ctx_new_server(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		ssl_errtext("SSL_CTX_new", "failed", err, errlen);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
				     SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
	/* Clients are not asked for certificates: this end only offers encryption. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		char what[300];
		snprintf(what, sizeof(what), "cannot load a certificate from %s", cert_file);
		ssl_errtext(what, "failed", err, errlen);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (key_file == NULL || *key_file == '\0')
		key_file = cert_file;
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		char what[300];
		snprintf(what, sizeof(what), "cannot load a private key from %s", key_file);
		ssl_errtext(what, "failed", err, errlen);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		char what[600];
		snprintf(what, sizeof(what), "the key in %s does not belong to the certificate in %s",
			 key_file, cert_file);
		ssl_errtext(what, "mismatch", err, errlen);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return (gw_tls_ctx *)(void *)ctx;
}

gw_net_rc gw_tls_accept(gw_tls_ctx *ctx, int fd, unsigned timeout_ms, int64_t deadline, gw_tls **tls_r,
			char *err, size_t errlen)
{
	SSL *ssl;
	gw_net_rc rc = GW_NET_OK;
	int r;

	*tls_r = NULL;
	if ((ssl = ssl_on_fd(ctx, fd, err, errlen)) == NULL)
		return GW_NET_LOCAL;
	for (;;) {
		ERR_clear_error();
		errno = 0;
		r = SSL_accept(ssl);
		if (r == 1)
			break;
		if (!ssl_step(ssl, fd, r, timeout_ms, deadline, &rc, "TLS handshake", err, errlen))
			break;
	}
	if (r != 1) {
		SSL_free(ssl);
		return rc == GW_NET_TIMEOUT || rc == GW_NET_LOCAL ? rc : GW_NET_TLS;
	}
	*tls_r = (gw_tls *)(void *)ssl;
	return GW_NET_OK;
}

gw_net_rc gw_tls_read(gw_tls *tls, int fd, void *buf, size_t len, unsigned timeout_ms, int64_t deadline,
		      size_t *got_r, char *err, size_t errlen)
{
	SSL *ssl = ssl_of(tls);
	gw_net_rc rc = GW_NET_OK;

	*got_r = 0;
	for (;;) {
		size_t n = 0;
		int r;

		ERR_clear_error();
		errno = 0;
		r = SSL_read_ex(ssl, buf, len, &n);
		if (r == 1 && n > 0) {
			*got_r = n;
			return GW_NET_OK;
		}
		if (!ssl_step(ssl, fd, r, timeout_ms, deadline, &rc, "TLS read", err, errlen))
			return rc;
	}
}

gw_net_rc gw_tls_write_all(gw_tls *tls, int fd, const void *buf, size_t len, unsigned timeout_ms,
			   int64_t deadline, char *err, size_t errlen)
{
	SSL *ssl = ssl_of(tls);
	const char *p = buf;
	gw_net_rc rc = GW_NET_OK;

	while (len > 0) {
		size_t n = 0;
		int r;

		ERR_clear_error();
		errno = 0;
		r = SSL_write_ex(ssl, p, len, &n);
		if (r == 1) {
			p += n;
			len -= n;
			continue;
		}
		if (!ssl_step(ssl, fd, r, timeout_ms, deadline, &rc, "TLS write", err, errlen))
			return rc;
	}
	return GW_NET_OK;
}

/* Classify the outcome r of a non-blocking SSL call: OK with *want_r set when it would block. */
static gw_net_rc try_outcome(SSL *ssl, int r, short *want_r, const char *what, char *err, size_t errlen)
{
	int e = SSL_get_error(ssl, r);
	int saved = errno;

	switch (e) {
	case SSL_ERROR_WANT_READ:
		*want_r = POLLIN;
		return GW_NET_OK;
	case SSL_ERROR_WANT_WRITE:
		*want_r = POLLOUT;
		return GW_NET_OK;
	case SSL_ERROR_ZERO_RETURN:
		snprintf(err, errlen, "%s: connection closed by peer", what);
		return GW_NET_LOST;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_last_error() != 0) {
			ssl_errtext(what, "", err, errlen);
		} else {
			snprintf(err, errlen, "%s: %s", what,
				 saved != 0 ? strerror(saved) : "connection closed");
			ERR_clear_error();
		}
		return GW_NET_LOST;
	default:
		ssl_errtext(what, "protocol error", err, errlen);
		return GW_NET_TLS;
	}
}

gw_net_rc gw_tls_try_read(gw_tls *tls, void *buf, size_t len, size_t *n_r, short *want_r, char *err,
			  size_t errlen)
{
	SSL *ssl = ssl_of(tls);
	int r;

	*n_r = 0;
	ERR_clear_error();
	errno = 0;
	r = SSL_read_ex(ssl, buf, len, n_r);
	if (r == 1)
		return GW_NET_OK;
	*n_r = 0;
	return try_outcome(ssl, r, want_r, "TLS read", err, errlen);
}

gw_net_rc gw_tls_try_write(gw_tls *tls, const void *buf, size_t len, size_t *n_r, short *want_r, char *err,
			   size_t errlen)
{
	SSL *ssl = ssl_of(tls);
	int r;

	*n_r = 0;
	ERR_clear_error();
	errno = 0;
	r = SSL_write_ex(ssl, buf, len, n_r);
	if (r == 1)
		return GW_NET_OK;
	*n_r = 0;
	return try_outcome(ssl, r, want_r, "TLS write", err, errlen);
}

int gw_tls_peer_spoke(gw_tls *tls)
{
	SSL *ssl = ssl_of(tls);
	char byte;
	int n;

	ERR_clear_error();
	n = SSL_peek(ssl, &byte, 1);
	n = !(n <= 0 && SSL_get_error(ssl, n) == SSL_ERROR_WANT_READ);
	ERR_clear_error();
	return n;
}

const char *gw_tls_version(const gw_tls *tls)
{
	return SSL_get_version(cssl_of(tls));
}

const char *gw_tls_cipher(const gw_tls *tls)
{
	return SSL_get_cipher_name(cssl_of(tls));
}

void gw_tls_free(gw_tls **tls, int clean)
{
	SSL *ssl;

	if (*tls == NULL)
		return;
	ssl = ssl_of(*tls);
	if (clean)
		(void)SSL_shutdown(ssl); /* one non-blocking attempt; the reply is not awaited */
	ERR_clear_error();
	SSL_free(ssl);
	*tls = NULL;
}
