/*
 * metrics.h - gw-milter's counters in the Prometheus text exposition format
 * (version 0.0.4), for "gw-milter -C SOCKET metrics": the call-ahead
 * engine's verdicts, cache, sessions and route health, the callbacks'
 * decisions, and the bounce-flood guard's mode, rates, baselines,
 * thresholds and counters. A scraper runs the command (for example through
 * the node exporter's textfile collector: gw-milter -C SOCKET metrics >
 * DIR/gw_milter.prom).
 *
 * Does not defend against: counters of the engine restarting at a reload
 * (Prometheus sees a counter reset, which rate() handles).
 */
#ifndef GWM_METRICS_H
#define GWM_METRICS_H

#include <stddef.h>

/* The whole exposition into out (NUL-terminated). Its length, or 0 when out was too small or no
 * configuration. */
size_t gwm_metrics_text(char *out, size_t outlen);

#endif
