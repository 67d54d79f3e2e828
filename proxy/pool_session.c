/*
 * pool_session.c - a session's answers to blocklist verdicts on its pool address (see pool_session.h).
 */
#include <stdio.h>
#include <string.h>

#include "gw/log.h"
#include "pool_session.h"

/* The tenant's part of the pool (tenant_map), or the whole pool; n 0 without one. */
static size_t tenant_addrs(const gwp_relay *r, const char **mine, const char *const **addrs_r)
{
	size_t j;

	*addrs_r = (const char *const *)r->env->conf->pool;
	if (r->tenant_ent == NULL)
		return r->env->conf->npool;
	for (j = 0; j < r->tenant_ent->naddr && j < GWP_TENANT_ADDRS; j++)
		mine[j] = r->tenant_ent->addr[j];
	*addrs_r = mine;
	return j;
}

/* "554 5.7.1 first line" for logs: newlines and double quotes made harmless for key="value". */
static void reply_text(const gw_reply *rep, char *out, size_t outlen)
{
	size_t i;

	snprintf(out, outlen, "%d%s%s %s", rep->code, rep->enh[0] ? " " : "", rep->enh, rep->text);
	for (i = 0; out[i] != '\0'; i++)
		if (out[i] == '\n' || out[i] == '"')
			out[i] = out[i] == '\n' ? ' ' : '\'';
}

/* An address out of use for r's destination: the session log's "|<" line and the daemon's. */
static void log_retired(gwp_relay *r, const char *addr, const char *why)
{
	const gwp_config *c = r->env->conf;
	char line[GW_REPLY_TEXT_MAX + GW_HOST_MAX + 256];

	snprintf(line, sizeof(line), "! pool: address %s retired for %s for %lds: %s", addr, r->up_key,
		 c->opt.pool_retire_time / 1000, why);
	gwp_slog_line(r->env->slog, r->sid, "|<", line, strlen(line), -1);
	gw_log(GW_LOG_WARNING, "pool", "address=%s destination=%s retired=%lds reply=\"%s\"", addr, r->up_key,
	       c->opt.pool_retire_time / 1000, why);
}

void gwp_pool_session_retire(gwp_relay *r, const char *addr, const char *why)
{
	if (r->env->pool == NULL || addr[0] == '\0')
		return;
	if (gwp_pool_retire(r->env->pool, addr, r->up_key, r->env->conf->opt.pool_retire_time))
		atomic_fetch_add(&r->env->stats->pool_retired, 1);
	log_retired(r, addr, why);
}

gwp_pool_act gwp_pool_session_check(gwp_relay *r, const gw_reply *rep)
{
	const gwp_config *c = r->env->conf;
	const char *mine[GWP_TENANT_ADDRS], *const *addrs;
	char why[GW_REPLY_TEXT_MAX + 32];
	size_t n;
	int newly;
	gwp_pool_act act;

	if (r->env->pool == NULL || r->up_bind[0] == '\0')
		return GWP_POOL_PASS;
	n = tenant_addrs(r, mine, &addrs);
	act = gwp_pool_verdict(r->env->pool, addrs, n, r->up_key, r->up_bind, rep, c->words, c->nwords,
			       c->opt.pool_retire_time, &newly);
	if (act == GWP_POOL_PASS)
		return act;
	if (newly) /* gwp_pool_verdict retired it: counted as any retirement */
		atomic_fetch_add(&r->env->stats->pool_retired, 1);
	reply_text(rep, why, sizeof(why));
	log_retired(r, r->up_bind, why);
	return act;
}

int gwp_pool_session_left(gwp_relay *r)
{
	const char *mine[GWP_TENANT_ADDRS], *const *addrs;
	size_t n;

	if (r->env->pool == NULL || r->up_bind[0] == '\0')
		return 0;
	n = tenant_addrs(r, mine, &addrs);
	return gwp_pool_choose_other(r->env->pool, addrs, n, r->up_key, r->up_bind) >= 0;
}

int gwp_pool_session_answer(gwp_relay *r, const gw_reply *rep, long ms, gw_reply *out)
{
	char why[GW_REPLY_TEXT_MAX + 32], line[GWP_SLOG_TEXT_MAX + 200];
	size_t flen;

	if (gwp_pool_session_check(r, rep) != GWP_POOL_MOVE)
		return 0;
	gwp_pool_defer_reply(rep, out);
	atomic_fetch_add(&r->env->stats->pool_deferred, 1);
	reply_text(rep, why, sizeof(why));
	gwp_slog_reply(r->env->slog, r->sid, "|<", rep, ms);
	flen = strcspn(out->text, "\n");
	snprintf(line, sizeof(line),
		 "%d %s %.*s (proxy: %d from a retired address; the retry goes out from another)", out->code,
		 out->enh, (int)(flen < GWP_SLOG_TEXT_MAX ? flen : GWP_SLOG_TEXT_MAX), out->text, rep->code);
	gwp_slog_line(r->env->slog, r->sid, "<-", line, strlen(line), -1);
	gw_log(GW_LOG_NOTICE, "pool", "address=%s destination=%s tenant=%s action=deferred reply=\"%s\"",
	       r->up_bind, r->up_key, r->tenant, why);
	return 1;
}

int gwp_pool_session_leave(gwp_relay *r)
{
	if (r->up == NULL || !gw_client_is_open(r->up) || r->env->pool == NULL || r->up_bind[0] == '\0' ||
	    !gwp_pool_is_retired(r->env->pool, r->up_bind, r->up_key) || !gwp_pool_session_left(r))
		return 0;
	gwp_slog_line(r->env->slog, r->sid, "|>", "QUIT", 4, -1);
	{
		char line[GW_HOST_MAX + 200];
		snprintf(line, sizeof(line),
			 "! pool: %s retired for %s: the next transaction connects from another", r->up_bind,
			 r->up_key);
		gwp_slog_line(r->env->slog, r->sid, "|>", line, strlen(line), -1);
	}
	gw_client_quit(r->up);
	return 1;
}
