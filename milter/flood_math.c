/*
 * flood_math.c - decay, EWMA and network keys for the bounce-flood guard
 * (see flood_math.h).
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "flood_math.h"

double gwm_decay(double v, int64_t dt_ms, int64_t half_ms)
{
	if (dt_ms <= 0 || half_ms <= 0)
		return v;
	return v * exp2(-(double)dt_ms / (double)half_ms);
}

double gwm_ewma(double avg, double sample, double alpha)
{
	return avg + alpha * (sample - avg);
}

/* Keep the first prefix bits of a (len bytes), clear the rest. */
static void mask(unsigned char *a, size_t len, unsigned prefix)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned bit = (unsigned)i * 8;
		if (bit >= prefix)
			a[i] = 0;
		else if (prefix - bit < 8)
			a[i] &= (unsigned char)(0xff << (8 - (prefix - bit)));
	}
}

int gwm_net_key(const struct sockaddr *sa, unsigned v4_prefix, unsigned v6_prefix, char *buf, size_t size)
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];
	int family;
	unsigned prefix;

	if (sa == NULL || size == 0)
		return -1;
	if (sa->sa_family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) { /* one client, one network, however it reached us */
			memcpy(a, a6->s6_addr + 12, 4);
			family = AF_INET;
		} else {
			memcpy(a, a6->s6_addr, 16);
			family = AF_INET6;
		}
	} else {
		return -1;
	}
	prefix = family == AF_INET ? v4_prefix : v6_prefix;
	if (prefix < 1 || prefix > (family == AF_INET ? 32u : 128u))
		return -1;
	mask(a, family == AF_INET ? 4 : 16, prefix);
	if (inet_ntop(family, a, text, sizeof(text)) == NULL)
		return -1;
	if ((size_t)snprintf(buf, size, "%s/%u", text, prefix) >= size)
		return -1;
	return 0;
}
