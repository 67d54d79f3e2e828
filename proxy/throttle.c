/*
 * throttle.c - the limits a session meets: per destination, per tenant (see throttle.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gw/log.h"
#include "throttle.h"

static void reply_set(gw_reply *rep, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_set(gw_reply *rep, int code, const char *enh, const char *fmt, ...)
{
	va_list ap;

	memset(rep, 0, sizeof(*rep));
	rep->code = code;
	rep->nlines = 1;
	snprintf(rep->enh, sizeof(rep->enh), "%s", enh);
	va_start(ap, fmt);
	vsnprintf(rep->text, sizeof(rep->text), fmt, ap);
	va_end(ap);
	rep->text_len = strlen(rep->text);
}

static void slog_text(gwp_relay *r, const char *dir, const char *text)
{
	gwp_slog_line(r->env->slog, r->sid, dir, text, strlen(text), -1);
}

long gwp_throttle_dest_limit(const gwp_env *env, const char *dest, int *marked_r)
{
	long normal = env->conf->opt.destination_concurrency, low = env->conf->opt.marked_concurrency;
	int marked = env->watch != NULL && low > 0 && gwp_watch_marked(env->watch, dest);

	if (marked_r != NULL)
		*marked_r = marked;
	if (!marked)
		return normal;
	return normal > 0 && normal < low ? normal : low; /* a mark never raises the limit */
}

int gwp_throttle_dest_take(gwp_relay *r, gw_reply *rep)
{
	const gwp_env *env = r->env;
	unsigned long there = 0;
	long limit;
	int marked, rc;
	char text[400];

	gwp_throttle_dest_give(r);
	r->dlimited = 0;
	if (env->dlimit == NULL)
		return 0;
	limit = gwp_throttle_dest_limit(env, r->up_key, &marked);
	rc = gwp_dlimit_take(env->dlimit, r->up_key, limit, &there);
	if (rc < 0) { /* out of memory: not counted, not refused (the limit is a courtesy, the mail is not) */
		gw_log(GW_LOG_ERR, "limit", "destination=%s error=\"out of memory\"", r->up_key);
		return 0;
	}
	if (rc == 1) {
		snprintf(r->dslot, sizeof(r->dslot), "%s", r->up_key);
		return 0;
	}
	r->dlimited = 1;
	atomic_fetch_add(&env->stats->dest_limited, 1);
	reply_set(rep, r->mode == GWP_DEST_HOP ? 421 : 451, "4.4.5",
		  "too many sessions to %s (limit %ld%s); try again later", r->up_key, limit,
		  marked ? ", lowered: the destination is marked as tarpit or throttle" : "");
	snprintf(text, sizeof(text), "! concurrency: %lu sessions to %s, limit %ld%s: not connected", there,
		 r->up_key, limit, marked ? " (marked)" : "");
	slog_text(r, "|>", text);
	gw_log(GW_LOG_NOTICE, "limit", "destination=%s tenant=%s sessions=%lu limit=%ld marked=%s", r->up_key,
	       r->tenant, there, limit, marked ? "yes" : "no");
	return -1;
}

void gwp_throttle_dest_give(gwp_relay *r)
{
	if (r->dslot[0] == '\0')
		return;
	if (r->env->dlimit != NULL)
		gwp_dlimit_give(r->env->dlimit, r->dslot);
	r->dslot[0] = '\0';
}

int gwp_throttle_mail(gwp_relay *r, gw_reply *rep)
{
	const gwp_env *env = r->env;
	long rate = r->tenant_ent != NULL && r->tenant_ent->rate >= 0 ? r->tenant_ent->rate
								      : env->conf->opt.tenant_rate_limit;
	int64_t wait = 0;
	char text[GW_PATH_MAX + 64];

	if (env->rate == NULL || gwp_rate_take(env->rate, r->tenant, rate, &wait))
		return 0;
	atomic_fetch_add(&env->stats->rate_limited, 1);
	snprintf(text, sizeof(text), "MAIL FROM:%.*s", GW_PATH_MAX, r->mail_cmd);
	slog_text(r, ">|", text);
	snprintf(text, sizeof(text), "! rate limit: tenant %s over %ld messages a minute", r->tenant, rate);
	slog_text(r, "|>", text);
	gw_log(GW_LOG_NOTICE, "rate", "tenant=%s client=%s limit=%ld/min next_in=%lldms", r->tenant,
	       r->client, rate, (long long)wait);
	reply_set(rep, 451, "4.7.1", "rate limit: tenant %s may send %ld messages a minute; try again later",
		  r->tenant, rate);
	return -1;
}
