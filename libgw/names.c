/*
 * names.c - the names of libgw's public enums, as explicit {value, name}
 * tables, and the public *_str and *_parse functions built on them.
 *
 * Lookups are linear: the tables are a dozen entries at most. Names that go
 * into logs and JSON (status, stage, verdict, source, LMTP state and stage)
 * are part of the output format; change them as carefully as an API.
 *
 * Does not defend against: nothing to defend; input names are only compared.
 */
#include <strings.h>

#include "gw/callahead.h"
#include "gw/client.h"
#include "gw/directory.h"
#include "gw/domain_tls.h"
#include "gw/lmtp.h"
#include "gw/log.h"
#include "gw/proto.h"
#include "gw/prvs.h"
#include "names.h"

#define TABLE(var, unknown_name, ...)                                                                        \
	static const gwn_entry var##_v[] = {__VA_ARGS__};                                                    \
	const gwn_table var = {var##_v, sizeof(var##_v) / sizeof(var##_v[0]), unknown_name}

TABLE(gwn_status, "unknown", {GW_OK, "ok"}, {GW_E_REFUSED, "connection refused"}, {GW_E_TIMEOUT, "timeout"},
      {GW_E_LOST, "connection lost"}, {GW_E_BADREPLY, "bad reply"}, {GW_E_TLS, "TLS failure"},
      {GW_E_PROTO, "protocol error"}, {GW_E_REJECTED, "rejected"}, {GW_E_RESOLVE, "host not found"},
      {GW_E_LOCAL, "local error"}, {GW_E_CONTENT, "message refused"}, {GW_E_CANCELLED, "cancelled"});

TABLE(gwn_stage, "unknown", {GW_STAGE_NONE, "none"}, {GW_STAGE_CONNECT, "connect"},
      {GW_STAGE_GREETING, "greeting"}, {GW_STAGE_HELLO, "hello"}, {GW_STAGE_STARTTLS, "starttls"},
      {GW_STAGE_MAIL, "mail"}, {GW_STAGE_RCPT, "rcpt"}, {GW_STAGE_DATA, "data"}, {GW_STAGE_BODY, "body"},
      {GW_STAGE_RSET, "rset"}, {GW_STAGE_NOOP, "noop"}, {GW_STAGE_QUIT, "quit"});

TABLE(gwn_proto, "unknown", {GW_PROTO_SMTP, "smtp"}, {GW_PROTO_LMTP, "lmtp"});

/* The words of gw.conf's "tls" and gw-send's --tls. */
TABLE(gwn_tls_policy, "unknown", {GW_TLS_NONE, "none"}, {GW_TLS_MAY, "may"}, {GW_TLS_ENCRYPT, "encrypt"},
      {GW_TLS_VERIFY, "verify"}, {GW_TLS_DANE, "dane"});

/* The words of the per-domain policy files and gw-lmtpd.conf's "tls". */
TABLE(gwn_tls_level, "unknown", {GW_TLS_LEVEL_NONE, "none"}, {GW_TLS_LEVEL_MAY, "may"},
      {GW_TLS_LEVEL_ENCRYPT, "encrypt"}, {GW_TLS_LEVEL_VERIFY, "verify"}, {GW_TLS_LEVEL_DANE, "dane"},
      {GW_TLS_LEVEL_DANE_ONLY, "dane-only"});

TABLE(gwn_dane_state, "unknown", {GW_DANE_OFF, "off"}, {GW_DANE_UNSIGNED_MX, "unsigned-mx"},
      {GW_DANE_LOOKUP_FAILED, "tlsa-lookup-failed"}, {GW_DANE_NO_TLSA, "no-tlsa"},
      {GW_DANE_UNSIGNED_TLSA, "unsigned-tlsa"}, {GW_DANE_UNUSABLE, "unusable-tlsa"}, {GW_DANE_TLSA, "tlsa"},
      {GW_DANE_VERIFIED, "verified"}, {GW_DANE_FAILED, "failed"});

TABLE(gwn_verdict, "unknown", {GW_VERDICT_ACCEPT, "accept"}, {GW_VERDICT_REJECT, "reject"},
      {GW_VERDICT_TEMPFAIL, "tempfail"});

TABLE(gwn_ca_source, "unknown", {GW_CA_SRC_CACHE, "cache"}, {GW_CA_SRC_POOLED, "pooled"},
      {GW_CA_SRC_NEW, "new"}, {GW_CA_SRC_DOWN, "down"}, {GW_CA_SRC_LIMIT, "limit"},
      {GW_CA_SRC_CATCHALL, "catchall"}, {GW_CA_SRC_NOROUTE, "noroute"});

TABLE(gwn_dir_answer, "unknown answer", {GW_DIR_EXISTS, "exists"}, {GW_DIR_UNKNOWN, "unknown"},
      {GW_DIR_TEMPORARY, "temporary"});

TABLE(gwn_dir_source, "unknown", {GW_DIR_SRC_CACHE, "cache"}, {GW_DIR_SRC_LDAP, "ldap"},
      {GW_DIR_SRC_HTTP, "http"}, {GW_DIR_SRC_LIMIT, "limit"}, {GW_DIR_SRC_INPUT, "input"});

TABLE(gwn_lmtp_state, "unknown", {GW_LMTP_PENDING, "pending"}, {GW_LMTP_DELIVERED, "delivered"},
      {GW_LMTP_TEMPFAIL, "tempfail"}, {GW_LMTP_PERMFAIL, "permfail"}, {GW_LMTP_UNCERTAIN, "uncertain"});

TABLE(gwn_lmtp_stage, "unknown", {GW_LMTP_STAGE_NONE, "none"}, {GW_LMTP_STAGE_CONNECT, "connect"},
      {GW_LMTP_STAGE_GREETING, "greeting"}, {GW_LMTP_STAGE_LHLO, "lhlo"}, {GW_LMTP_STAGE_MAIL, "mail"},
      {GW_LMTP_STAGE_RCPT, "rcpt"}, {GW_LMTP_STAGE_DATA, "data"}, {GW_LMTP_STAGE_TRANSPORT, "transport"});

TABLE(gwn_prvs_result, "unknown result", {GW_PRVS_ERROR, "error"}, {GW_PRVS_VALID, "valid"},
      {GW_PRVS_EXPIRED, "expired"}, {GW_PRVS_BAD_SIGNATURE, "bad signature"},
      {GW_PRVS_UNKNOWN_KEY, "unknown key"}, {GW_PRVS_NOT_TAGGED, "not tagged"},
      {GW_PRVS_MALFORMED, "malformed"});

TABLE(gwn_prvs_skip, "unknown reason", {GW_PRVS_SKIP_NONE, "signed"}, {GW_PRVS_SKIP_NULL, "null sender"},
      {GW_PRVS_SKIP_TAGGED, "already tagged"}, {GW_PRVS_SKIP_EXEMPT, "exempt"},
      {GW_PRVS_SKIP_TOO_LONG, "too long once tagged"});

/* The words of gw.conf's "log_level"; the values are syslog priorities. */
TABLE(gwn_log_level, "unknown", {GW_LOG_ERR, "err"}, {GW_LOG_WARNING, "warning"}, {GW_LOG_NOTICE, "notice"},
      {GW_LOG_INFO, "info"}, {GW_LOG_DEBUG, "debug"});

const char *gwn_name(const gwn_table *t, int value)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->v[i].value == value)
			return t->v[i].name;
	return t->unknown;
}

int gwn_value(const gwn_table *t, const char *name, int *value_r)
{
	size_t i;

	if (name == NULL)
		return -1;
	for (i = 0; i < t->n; i++) {
		if (strcasecmp(t->v[i].name, name) == 0) {
			*value_r = t->v[i].value;
			return 0;
		}
	}
	return -1;
}

const char *gw_status_str(gw_status s)
{
	return gwn_name(&gwn_status, (int)s);
}

const char *gw_stage_str(gw_stage s)
{
	return gwn_name(&gwn_stage, (int)s);
}

const char *gw_proto_str(gw_proto p)
{
	return gwn_name(&gwn_proto, (int)p);
}

int gw_proto_parse(const char *name, gw_proto *proto_r)
{
	int v;

	if (gwn_value(&gwn_proto, name, &v) != 0)
		return -1;
	*proto_r = (gw_proto)v;
	return 0;
}

const char *gw_tls_policy_str(gw_tls_policy p)
{
	return gwn_name(&gwn_tls_policy, (int)p);
}

int gw_tls_policy_parse(const char *name, gw_tls_policy *policy_r)
{
	int v;

	if (gwn_value(&gwn_tls_policy, name, &v) != 0)
		return -1;
	*policy_r = (gw_tls_policy)v;
	return 0;
}

const char *gw_tls_level_str(gw_tls_level l)
{
	return gwn_name(&gwn_tls_level, (int)l);
}

int gw_tls_level_parse(const char *name, gw_tls_level *level_r)
{
	int v;

	if (gwn_value(&gwn_tls_level, name, &v) != 0)
		return -1;
	*level_r = (gw_tls_level)v;
	return 0;
}

const char *gw_dane_state_str(gw_dane_state s)
{
	return gwn_name(&gwn_dane_state, (int)s);
}

const char *gw_verdict_str(gw_verdict v)
{
	return gwn_name(&gwn_verdict, (int)v);
}

const char *gw_ca_source_str(gw_ca_source s)
{
	return gwn_name(&gwn_ca_source, (int)s);
}

const char *gw_dir_answer_str(gw_dir_answer a)
{
	return gwn_name(&gwn_dir_answer, (int)a);
}

const char *gw_dir_source_str(gw_dir_source s)
{
	return gwn_name(&gwn_dir_source, (int)s);
}

const char *gw_lmtp_state_str(gw_lmtp_state s)
{
	return gwn_name(&gwn_lmtp_state, (int)s);
}

const char *gw_lmtp_stage_str(gw_lmtp_stage s)
{
	return gwn_name(&gwn_lmtp_stage, (int)s);
}

const char *gw_prvs_result_str(gw_prvs_result r)
{
	return gwn_name(&gwn_prvs_result, (int)r);
}

const char *gw_prvs_skip_str(gw_prvs_skip s)
{
	return gwn_name(&gwn_prvs_skip, (int)s);
}

const char *gw_log_level_str(int level)
{
	return gwn_name(&gwn_log_level, level);
}

int gw_log_level_parse(const char *name)
{
	int v;

	return gwn_value(&gwn_log_level, name, &v) == 0 ? v : -1;
}
