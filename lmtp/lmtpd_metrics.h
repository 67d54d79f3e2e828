/*
 * lmtpd_metrics.h - gw-lmtpd's counters (those of "gw-lmtpd -C SOCKET stats")
 * in the Prometheus text exposition format (version 0.0.4), for
 * "gw-lmtpd -C SOCKET metrics" and the HTTP metrics listener.
 *
 * Does not defend against: a scraper that reads the counters while they move
 * (each is read on its own; a scrape is not one atomic picture).
 */
#ifndef GWL_LMTPD_METRICS_H
#define GWL_LMTPD_METRICS_H

#include <stddef.h>

#include "relay.h"

typedef struct gwl_counters {
	unsigned sessions;            /* open now */
	unsigned long sessions_total; /* since start */
	gwl_relay_stats relay;        /* since start, across reloads */
	int healthy;                  /* 1 when the relay thinks it can reach the outside */
} gwl_counters;

/* The whole exposition into out (NUL-terminated). Its length, or 0 when out was too small. */
size_t gwl_metrics_text(const gwl_counters *c, char *out, size_t outlen);

#endif
