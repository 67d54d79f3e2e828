/*
 * dribble.c - dribbled replies mark the destination as a tarpit (see dribble.h).
 */
#include <stdio.h>
#include <string.h>

#include "dribble.h"
#include "gw/log.h"
#include "relay.h"

int gwp_dribbled(const gw_reply_arrival *a, long reads, long time_ms)
{
	return reads > 0 && a->reads >= (unsigned long)reads && (long)a->spread_ms >= time_ms &&
	       a->bytes <= (size_t)a->reads * GWP_DRIBBLE_BYTES;
}

void gwp_dribble_hook(void *ctx, gw_stage stage, const gw_reply *rep, const gw_reply_arrival *a)
{
	gwp_relay *r = ctx;
	const gwp_config *c = r->env->conf;
	char why[160], text[GW_HOST_MAX + 200];

	if (r->env->watch == NULL || !gwp_dribbled(a, c->opt.dribble_reads, c->opt.dribble_time))
		return;
	snprintf(why, sizeof(why), "dribble: %d reply to %s in %u reads of %zu bytes over %ums", rep->code,
		 gw_stage_str(stage), a->reads, a->bytes, a->spread_ms);
	if (!gwp_watch_mark(r->env->watch, r->up_key, GWP_MARK_TARPIT, why, c->opt.mark_time))
		return; /* marked already this period: extended, not logged or counted again */
	atomic_fetch_add(&r->env->stats->tarpit_marks, 1);
	atomic_fetch_add(&r->env->stats->dribble_marks, 1);
	snprintf(text, sizeof(text), "! %s: %s marked: %s", gwp_mark_str(GWP_MARK_TARPIT), r->up_key, why);
	gwp_slog_line(r->env->slog, r->sid, "|<", text, strlen(text), -1);
	gw_log(GW_LOG_WARNING, "watch",
	       "destination=%s kind=%s dribble reads=%u bytes=%zu spread=%ums reply=%d", r->up_key,
	       gwp_mark_str(GWP_MARK_TARPIT), a->reads, a->bytes, a->spread_ms, rep->code);
}
