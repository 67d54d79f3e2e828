/*
 * time.c - monotonic milliseconds and the default gw_clock.
 */
#include <time.h>

#include "gw/time.h"

int64_t gw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t monotonic_now(void *ctx)
{
	(void)ctx;
	return gw_now_ms();
}

const gw_clock gw_clock_monotonic = {monotonic_now, NULL};
