/*
 * origdst.c - the original destination of a redirected connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "origdst.h"

/* <linux/netfilter_ipv4.h> SO_ORIGINAL_DST and <linux/netfilter_ipv6/ip6_tables.h> IP6T_SO_ORIGINAL_DST,
 * without the kernel headers (they clash with the libc ones). */
#define GWP_SO_ORIGINAL_DST 80

static unsigned port_of(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

static int same(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return 0;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return 0;
}

int gwp_origdst_judge(const struct sockaddr *orig, const struct sockaddr *local, unsigned listen_port,
		      gw_nexthop *hop_r)
{
	const struct sockaddr *dst;
	char text[INET6_ADDRSTRLEN];
	const void *addr;

	if (orig != NULL && !same(orig, local))
		dst = orig; /* NAT redirect: conntrack kept where it was going */
	else if (port_of(local) != listen_port)
		dst = local; /* TPROXY: the socket took the destination's own address */
	else
		return 0; /* straight to our port */
	if (dst->sa_family == AF_INET)
		addr = &((const struct sockaddr_in *)dst)->sin_addr;
	else if (dst->sa_family == AF_INET6)
		addr = &((const struct sockaddr_in6 *)dst)->sin6_addr;
	else
		return 0;
	if (inet_ntop(dst->sa_family, addr, text, sizeof(text)) == NULL)
		return 0;
	memset(hop_r, 0, sizeof(*hop_r));
	hop_r->kind = GW_HOP_INET;
	hop_r->literal = 1;
	hop_r->port = port_of(dst);
	snprintf(hop_r->host, sizeof(hop_r->host), "%s", text);
	return 1;
}

int gwp_origdst(int fd, unsigned listen_port, gw_nexthop *hop_r, char *err, size_t errlen)
{
	struct sockaddr_storage orig, local;
	socklen_t ol = sizeof(orig), ll = sizeof(local);
	int have_orig;

	memset(&orig, 0, sizeof(orig));
	memset(&local, 0, sizeof(local));
	if (getsockname(fd, (struct sockaddr *)&local, &ll) != 0) {
		snprintf(err, errlen, "getsockname: %s", strerror(errno));
		return -1;
	}
	if (local.ss_family == AF_INET6)
		have_orig = getsockopt(fd, IPPROTO_IPV6, GWP_SO_ORIGINAL_DST, &orig, &ol) == 0;
	else
		have_orig = getsockopt(fd, IPPROTO_IP, GWP_SO_ORIGINAL_DST, &orig, &ol) == 0;
	if (!have_orig && errno != ENOENT && errno != ENOPROTOOPT) {
		snprintf(err, errlen, "SO_ORIGINAL_DST: %s", strerror(errno));
		return -1;
	}
	return gwp_origdst_judge(have_orig ? (struct sockaddr *)&orig : NULL, (struct sockaddr *)&local,
				 listen_port, hop_r);
}
