/*
 * fuzz_route.c - libFuzzer target: any bytes as a route file. Parsing must
 * either fail with a message or give routes whose lookups, loop checks and
 * (MX-free) expansion stay in bounds.
 *
 * Does not exercise MX lookups: use_mx is 0 so no input reaches the network.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gw/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const domains[] = {
    "example.com", "A.B.Example.COM.", "x.example.org", "lists.example.org", "", ".", "*", "unknown.test"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	gw_routes *r = gw_routes_parse((const char *)data, size, "fuzz", err, sizeof err);
	struct sockaddr_storage self[2];
	struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&self[0];
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&self[1];
	size_t i;

	if (r == NULL) {
		if (strnlen(err, sizeof err) == sizeof err || err[0] == '\0')
			__builtin_trap(); /* a failure always says why */
		return 0;
	}
	memset(self, 0, sizeof self);
	s4->sin_family = AF_INET;
	s4->sin_port = htons(25);
	s4->sin_addr.s_addr = htonl(0x0a000005); /* 10.0.0.5 */
	s6->sin6_family = AF_INET6;
	s6->sin6_addr = in6addr_any;
	for (i = 0; i < sizeof domains / sizeof domains[0]; i++) {
		const gw_route *rt = gw_routes_lookup(r, domains[i]);
		gw_nexthop hops[GW_ROUTE_HOPS_MAX];
		size_t n = 0;

		if (rt == NULL)
			continue;
		if (rt->nhops > GW_ROUTE_HOPS_MAX)
			__builtin_trap();
		(void)gw_route_check_loop(rt, 25, self, 2, err, sizeof err);
		(void)gw_route_expand(rt, 0, hops, GW_ROUTE_HOPS_MAX, &n, err, sizeof err);
		if (n > GW_ROUTE_HOPS_MAX)
			__builtin_trap();
	}
	gw_routes_free(&r);
	return 0;
}
