/*
 * gw/time.h - monotonic milliseconds, and a clock that tests can replace.
 * Knows nothing about mail.
 */
#ifndef GW_TIME_H
#define GW_TIME_H

#include "gw/export.h"

#include <stdint.h>

/* Milliseconds from CLOCK_MONOTONIC. */
GW_API int64_t gw_now_ms(void);

/* A clock passed to modules that keep time (cache, route health), so tests fix it. */
typedef struct gw_clock {
	int64_t (*now_ms)(void *ctx);
	void *ctx;
} gw_clock;

/* The system monotonic clock. */
GW_API extern const gw_clock gw_clock_monotonic;

#endif
