/*
 * tls_in.c - STARTTLS towards the tenant clients (see tls_in.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gw/log.h"
#include "gw/time.h"
#include "relay.h"
#include "tls_in.h"

static int readable(const gwp_config *c, const char *key, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char msg[600];

	if (f != NULL) {
		fclose(f);
		return 0;
	}
	snprintf(msg, sizeof(msg), "%s: %s", path, strerror(errno));
	gwp_config_key_err(c, key, err, errlen, msg);
	return -1;
}

int gwp_tls_in_conf(gwp_config *c, char *err, size_t errlen)
{
	const char *cert = c->opt.tls_cert_file, *key = c->opt.tls_key_file;
	int have_cert = cert != NULL && cert[0] != '\0', have_key = key != NULL && key[0] != '\0';
	char terr[600];

	if (have_key && !have_cert) {
		gwp_config_key_err(c, "tls_key_file", err, errlen, "needs tls_cert_file");
		return -1;
	}
	if (c->opt.tls_client_security == GWP_TLS_IN_ENCRYPT && !have_cert) {
		gwp_config_key_err(c, "tls_client_security", err, errlen, "encrypt needs tls_cert_file");
		return -1;
	}
	if (!have_cert || c->opt.tls_client_security == GWP_TLS_IN_NONE)
		return 0;
	if (readable(c, "tls_cert_file", cert, err, errlen) != 0 ||
	    (have_key && readable(c, "tls_key_file", key, err, errlen) != 0))
		return -1;
	if ((c->tls_in = gw_srv_tls_new(cert, have_key ? key : NULL, terr, sizeof(terr))) == NULL) {
		/* a key that does not load or does not match is the key's line when it has its own */
		int keyline = have_key && strstr(terr, "private key") != NULL;
		gwp_config_key_err(c, keyline ? "tls_key_file" : "tls_cert_file", err, errlen, terr);
		return -1;
	}
	return 0;
}

int gwp_tls_in_offered(const gwp_config *c)
{
	return c->tls_in != NULL;
}

int gwp_tls_in_refuse_mail(const struct gwp_relay *r, gw_reply *rep)
{
	if (r->env->conf->opt.tls_client_security != GWP_TLS_IN_ENCRYPT || r->tls_in[0] != '\0')
		return 0;
	memset(rep, 0, sizeof(*rep));
	rep->code = 530;
	rep->nlines = 1;
	snprintf(rep->enh, sizeof(rep->enh), "5.7.0");
	snprintf(rep->text, sizeof(rep->text), "Must issue a STARTTLS command first");
	rep->text_len = strlen(rep->text);
	return 1;
}

int gwp_tls_in_start(struct gwp_relay *r, int fd, unsigned timeout_ms, gw_srv_tls_conn **conn_r)
{
	char err[400], text[600];
	int64_t t0 = gw_now_ms();
	long ms;

	gwp_slog_line(r->env->slog, r->sid, ">|", "STARTTLS", 8, -1);
	gwp_slog_line(r->env->slog, r->sid, "<-", "220 2.0.0 Ready to start TLS", 28, -1);
	*conn_r = r->env->conf->tls_in != NULL
		      ? gw_srv_tls_accept(r->env->conf->tls_in, fd, timeout_ms, err, sizeof(err))
		      : NULL;
	ms = (long)(gw_now_ms() - t0);
	if (*conn_r == NULL) {
		if (r->env->conf->tls_in == NULL)
			snprintf(err, sizeof(err), "no certificate configured");
		snprintf(text, sizeof(text), "! TLS with the client failed: %s", err);
		gwp_slog_line(r->env->slog, r->sid, ">|", text, strlen(text), ms);
		gw_log(GW_LOG_WARNING, "tls_in", "client=%s error=\"%s\"", r->client, err);
		snprintf(r->outcome, sizeof(r->outcome), "client-tls-failed");
		return -1;
	}
	snprintf(r->tls_in, sizeof(r->tls_in), "%s", gw_srv_tls_desc(*conn_r));
	snprintf(text, sizeof(text), "TLS with the client: %s", r->tls_in);
	gwp_slog_line(r->env->slog, r->sid, ">|", text, strlen(text), ms);
	gw_log(GW_LOG_INFO, "tls_in", "client=%s tls=\"%s\"", r->client, r->tls_in);
	r->helo[0] = '\0'; /* RFC 3207: the client greets again */
	return 0;
}
