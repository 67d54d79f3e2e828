/*
 * unknown_limit.h - per client address, count unknown recipients in a
 * sliding window, so a dictionary attack cannot become a probe flood.
 *
 * The window is cut into GWM_UL_SLOTS slots of window/GWM_UL_SLOTS ms; a
 * client's count is the sum of its slots younger than the window, so an
 * event is forgotten between window - window/GWM_UL_SLOTS and window after
 * it happened. Memory is bounded: at most max_clients addresses are tracked;
 * a new one evicts the least recently counted. Time comes from a gw_clock so
 * tests fix it. Thread-safe (one mutex).
 *
 * Does not defend against: an attacker with more addresses than max_clients
 * (the oldest are forgotten; each address still gets its full budget), or
 * one spread over many addresses of a network (counted per address).
 */
#ifndef GWM_UNKNOWN_LIMIT_H
#define GWM_UNKNOWN_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "gw/time.h"

#define GWM_UL_SLOTS   16
#define GWM_UL_KEY_MAX 64 /* an IPv6 address in text fits with room */

typedef struct gwm_ul gwm_ul;

/* A table of at most max_clients (> 0); clock NULL: monotonic. NULL on ENOMEM or max_clients 0. */
gwm_ul *gwm_ul_new(size_t max_clients, const gw_clock *clock);
/* Free and set *ul to NULL. */
void gwm_ul_free(gwm_ul **ul);
/* Unknown recipients counted for client within window_ms (> 0). */
unsigned gwm_ul_count(gwm_ul *ul, const char *client, int64_t window_ms);
/* 1 when client has limit or more within window_ms; limit 0 turns the check off. */
int gwm_ul_over(gwm_ul *ul, const char *client, unsigned limit, int64_t window_ms);
/* Count one unknown recipient for client. */
void gwm_ul_add(gwm_ul *ul, const char *client, int64_t window_ms);
/* Clients tracked now, and evicted so far. */
size_t gwm_ul_clients(gwm_ul *ul);
uint64_t gwm_ul_evictions(gwm_ul *ul);
/* Buckets of the client table: fixed when it is made (a flood of clients never grows it). */
size_t gwm_ul_table_size(gwm_ul *ul);

#endif
