/*
 * metrics.c - gw-milter's counters in Prometheus text format (see metrics.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cache_share.h"
#include "callbacks.h"
#include "conf.h"
#include "flood.h"
#include "metrics.h"

typedef struct out {
	char *p;
	size_t len, cap;
	int full;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len)
		o->full = 1;
	else
		o->len += (size_t)n;
}

/* One metric without labels: HELP, TYPE and the sample. */
static void one(out *o, const char *name, const char *type, const char *help, double v)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

/* A metric per flood kind (label kind). */
static void kinds(out *o, const char *name, const char *help, const double v[GWM_FD_KINDS])
{
	int k;

	put(o, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	for (k = 0; k < GWM_FD_KINDS; k++)
		put(o, "%s{kind=\"%s\"} %.17g\n", name, gwm_fd_kind_str(k), v[k]);
}

/* The RCPT decision times: cumulative buckets, sum, count, as Prometheus histograms are. */
static void rcpt_histogram(out *o, const gwm_cb_stats *cb)
{
	uint64_t below = 0;
	size_t i;

	put(o, "# HELP gw_milter_rcpt_seconds Time from the RCPT callback's start to its decision.\n"
	       "# TYPE gw_milter_rcpt_seconds histogram\n");
	for (i = 0; i < GWM_RCPT_BUCKETS; i++) {
		below += cb->rcpt_time[i];
		put(o, "gw_milter_rcpt_seconds_bucket{le=\"%g\"} %llu\n", gwm_rcpt_le_us[i] / 1e6,
		    (unsigned long long)below);
	}
	below += cb->rcpt_time[GWM_RCPT_BUCKETS];
	put(o, "gw_milter_rcpt_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)below);
	put(o, "gw_milter_rcpt_seconds_sum %.6f\ngw_milter_rcpt_seconds_count %llu\n",
	    (double)cb->rcpt_time_us_sum / 1e6, (unsigned long long)below);
}

size_t gwm_metrics_text(char *buf, size_t size)
{
	gwm_snapshot *s = gwm_current_get();
	out o = {buf, 0, size, 0};
	gw_ca_stats st;
	gwm_cb_stats cb;
	gwm_flood_stats fl;
	gwm_cs_stats cs;

	if (s == NULL || size == 0) {
		gwm_snapshot_unref(&s);
		return 0;
	}
	gw_ca_stats_get(s->ca, &st);
	gwm_callbacks_stats(&cb);
	gwm_flood_stats_get(&fl);
	put(&o,
	    "# HELP gw_milter_verdicts_total Call-ahead verdicts by kind (since the last reload).\n"
	    "# TYPE gw_milter_verdicts_total counter\n"
	    "gw_milter_verdicts_total{verdict=\"accept\"} %llu\n"
	    "gw_milter_verdicts_total{verdict=\"reject\"} %llu\n"
	    "gw_milter_verdicts_total{verdict=\"tempfail\"} %llu\n",
	    (unsigned long long)st.accepts, (unsigned long long)st.rejects, (unsigned long long)st.tempfails);
	one(&o, "gw_milter_checks_total", "counter", "Call-ahead checks (since the last reload).",
	    (double)st.checks);
	one(&o, "gw_milter_cache_hits_total", "counter", "Answers from the cache.", (double)st.from_cache);
	one(&o, "gw_milter_pooled_total", "counter", "Answers over a pooled probe session.",
	    (double)st.pooled);
	one(&o, "gw_milter_probe_sessions_total", "counter", "Probe sessions opened.",
	    (double)st.new_sessions);
	one(&o, "gw_milter_route_down_answers_total", "counter", "Answers given because the route was down.",
	    (double)st.route_down);
	one(&o, "gw_milter_probe_limited_total", "counter", "Checks refused by the concurrent-probe cap.",
	    (double)st.limited);
	one(&o, "gw_milter_cache_entries", "gauge", "Cache entries now.", (double)st.cache.entries);
	one(&o, "gw_milter_cache_evictions_total", "counter", "Cache evictions.", (double)st.cache.evictions);
	one(&o, "gw_milter_routes_down", "gauge", "Routes marked down now.", (double)st.routes_down);
	one(&o, "gw_milter_pooled_idle", "gauge", "Idle pooled probe sessions now.", (double)st.pooled_idle);
	one(&o, "gw_milter_rcpts_total", "counter", "RCPT callbacks.", (double)cb.rcpts);
	one(&o, "gw_milter_skips_total", "counter", "Recipients not checked (skip rules, no route).",
	    (double)cb.skips);
	one(&o, "gw_milter_bad_input_total", "counter", "Recipients refused as malformed (501 5.1.3).",
	    (double)cb.bad_input);
	one(&o, "gw_milter_unknown_limited_total", "counter", "Recipients refused by unknown_limit.",
	    (double)cb.unknown_limited);
	one(&o, "gw_milter_fail_open_total", "counter", "Recipients accepted by fail_open.",
	    (double)cb.fail_open);
	rcpt_histogram(&o, &cb);
	one(&o, "gw_milter_connections", "gauge", "Open milter connections.", (double)cb.connections);
	one(&o, "gw_milter_config_generation", "gauge", "Configuration generation (1 plus reloads).",
	    (double)s->generation);
	one(&o, "gw_milter_flood_guard", "gauge", "1 when flood_guard is on.", fl.on);
	if (fl.on) {
		one(&o, "gw_milter_flood_mode", "gauge", "1 in high-load mode.", fl.high);
		put(&o, "# HELP gw_milter_flood_forced The operator's forced mode (1 for the one in force).\n"
			"# TYPE gw_milter_flood_forced gauge\n");
		for (int f = GWM_FORCE_AUTO; f <= GWM_FORCE_NORMAL; f++)
			put(&o, "gw_milter_flood_forced{force=\"%s\"} %d\n", gwm_force_str((gwm_force)f),
			    fl.force == (gwm_force)f);
		kinds(&o, "gw_milter_flood_count", "Events in the current detector window.", fl.cur);
		kinds(&o, "gw_milter_flood_last_count", "Events in the last closed detector window.",
		      fl.last);
		kinds(&o, "gw_milter_flood_fleet_count",
		      "The other gateways' events in their recent windows (shared state).", fl.fleet);
		kinds(&o, "gw_milter_flood_baseline", "EWMA baseline of events per window.", fl.base);
		kinds(&o, "gw_milter_flood_threshold", "Events per window that start high-load mode.",
		      fl.threshold);
		one(&o, "gw_milter_flood_deferred_total", "counter",
		    "Messages deferred by the guard (451 4.7.1).", (double)fl.deferred);
		one(&o, "gw_milter_flood_slot_limited_total", "counter",
		    "Recipients refused for probe slots.", (double)fl.slot_limited);
		one(&o, "gw_milter_flood_learnt_total", "counter", "Networks and domains credited.",
		    (double)fl.learnt);
		one(&o, "gw_milter_flood_transitions_total", "counter", "Mode changes.",
		    (double)fl.transitions);
		one(&o, "gw_milter_flood_store_errors_total", "counter", "Store writes that failed.",
		    (double)fl.store_errors);
		one(&o, "gw_milter_flood_entries", "gauge", "Networks and domains remembered.",
		    (double)fl.entries);
		one(&o, "gw_milter_flood_shared_up", "gauge",
		    "1 when Redis answered at the last refresh, -1 none.", fl.shared);
	}
	gwm_cs_stats_get(&cs);
	if (cs.on) {
		one(&o, "gw_milter_shared_cache_published_total", "counter",
		    "Verdicts of this gateway's probes written to the shared cache stream.",
		    (double)cs.published);
		one(&o, "gw_milter_shared_cache_copied_total", "counter",
		    "Other gateways' verdicts copied into the local cache.", (double)cs.copied);
		one(&o, "gw_milter_shared_cache_malformed_total", "counter",
		    "Shared cache stream entries refused as malformed.", (double)cs.malformed);
		one(&o, "gw_milter_shared_cache_syncs_total", "counter",
		    "Refreshes that wrote and read the shared cache stream.", (double)cs.syncs);
		one(&o, "gw_milter_shared_cache_dropped_total", "counter",
		    "Verdicts not published (queue full between two refreshes).", (double)cs.dropped);
	}
	gwm_snapshot_unref(&s);
	return o.full ? 0 : o.len;
}
