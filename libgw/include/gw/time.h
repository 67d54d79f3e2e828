/*
 * gw/time.h - monotonic milliseconds, clocks that tests can replace (monotonic
 * and wall), and a bounded wait on a condition variable.
 * Knows nothing about mail.
 */
#ifndef GW_TIME_H
#define GW_TIME_H

#include "gw/export.h"

#include <pthread.h>
#include <stdint.h>

/* Milliseconds from CLOCK_MONOTONIC. */
GW_API int64_t gw_now_ms(void);

/*
 * Wait on cond (made with the default clock, CLOCK_REALTIME) for at most ms
 * milliseconds. Returns what pthread_cond_timedwait returns (0 or ETIMEDOUT).
 */
GW_API int gw_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t ms);

/* A clock passed to modules that keep time (cache, route health), so tests fix it. */
typedef struct gw_clock {
	int64_t (*now_ms)(void *ctx);
	void *ctx;
} gw_clock;

/* The system monotonic clock. */
GW_API extern const gw_clock gw_clock_monotonic;
/* Milliseconds since the epoch (CLOCK_REALTIME): for times kept across restarts or compared
 * between machines; it jumps when the system clock is set. */
GW_API extern const gw_clock gw_clock_wall;

#endif
