/*
 * server_tls.c - gw/server_tls.h over tls.c: the server context and the
 * per-client session behind opaque handles, failures mapped to errno.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "gw/client.h"
#include "gw/server_tls.h"
#include "tls.h"

struct gw_srv_tls {
	gw_tls_ctx *ctx;
};

struct gw_srv_tls_conn {
	gw_tls *tls;
	int fd;
	char desc[GW_TLS_TEXT_MAX];
};

static int rc_errno(gw_net_rc rc)
{
	switch (rc) {
	case GW_NET_TIMEOUT:
		return ETIMEDOUT;
	case GW_NET_LOST:
		return ECONNRESET;
	default:
		return EPROTO;
	}
}

gw_srv_tls *gw_srv_tls_new(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
	gw_srv_tls *t;

	if (cert_file == NULL || *cert_file == '\0') {
		snprintf(err, errlen, "no certificate file");
		errno = EINVAL;
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((t->ctx = gw_tls_ctx_new_server(cert_file, key_file, err, errlen)) == NULL) {
		free(t);
		errno = EINVAL;
		return NULL;
	}
	return t;
}

void gw_srv_tls_free(gw_srv_tls **t)
{
	if (*t == NULL)
		return;
	gw_tls_ctx_free(&(*t)->ctx);
	free(*t);
	*t = NULL;
}

gw_srv_tls_conn *gw_srv_tls_accept(gw_srv_tls *t, int fd, unsigned timeout_ms, char *err, size_t errlen)
{
	gw_srv_tls_conn *c = calloc(1, sizeof(*c));
	gw_net_rc rc;

	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	rc = gw_tls_accept(t->ctx, fd, timeout_ms, 0, &c->tls, err, errlen);
	if (rc != GW_NET_OK) {
		free(c);
		errno = rc_errno(rc);
		return NULL;
	}
	c->fd = fd;
	snprintf(c->desc, sizeof(c->desc), "%s %s", gw_tls_version(c->tls), gw_tls_cipher(c->tls));
	return c;
}

int gw_srv_tls_read(gw_srv_tls_conn *c, void *buf, size_t len, unsigned timeout_ms, size_t *got_r, char *err,
		    size_t errlen)
{
	gw_net_rc rc = gw_tls_read(c->tls, c->fd, buf, len, timeout_ms, 0, got_r, err, errlen);

	if (rc == GW_NET_OK)
		return 0;
	errno = rc_errno(rc);
	return -1;
}

int gw_srv_tls_write(gw_srv_tls_conn *c, const void *buf, size_t len, unsigned timeout_ms, char *err,
		     size_t errlen)
{
	gw_net_rc rc = gw_tls_write_all(c->tls, c->fd, buf, len, timeout_ms, 0, err, errlen);

	if (rc == GW_NET_OK)
		return 0;
	errno = rc_errno(rc);
	return -1;
}

const char *gw_srv_tls_desc(const gw_srv_tls_conn *c)
{
	return c->desc;
}

void gw_srv_tls_close(gw_srv_tls_conn **c)
{
	if (*c == NULL)
		return;
	gw_tls_free(&(*c)->tls, 1);
	free(*c);
	*c = NULL;
}
