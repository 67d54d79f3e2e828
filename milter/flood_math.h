/*
 * flood_math.h - the arithmetic of the bounce-flood guard, without state or
 * clock: exponential decay by half-life, the EWMA step, and the network key
 * of a client address (IPv4 /v4_prefix, IPv6 /v6_prefix, an IPv4-mapped IPv6
 * address counted as IPv4).
 *
 * Times are milliseconds passed in by the caller, so tests fix them.
 *
 * Does not defend against: clients that move between networks (each network
 * is learnt on its own), or a prefix that lumps unrelated senders together
 * (the operator's choice).
 */
#ifndef GWM_FLOOD_MATH_H
#define GWM_FLOOD_MATH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128" and a NUL fit. */
#define GWM_NETKEY_MAX 48

/* v decayed over dt_ms with half-life half_ms (> 0); dt_ms <= 0 leaves v as it is. */
double gwm_decay(double v, int64_t dt_ms, int64_t half_ms);
/* The EWMA after one more sample: avg + alpha * (sample - avg), alpha in (0, 1]. */
double gwm_ewma(double avg, double sample, double alpha);
/*
 * The network of sa as "a.b.c.0/24" or "2001:db8:1::/48" into buf. 0 ok;
 * -1 for a missing address, another family, or a prefix out of range
 * (v4 1..32, v6 1..128).
 */
int gwm_net_key(const struct sockaddr *sa, unsigned v4_prefix, unsigned v6_prefix, char *buf, size_t size);

#endif
