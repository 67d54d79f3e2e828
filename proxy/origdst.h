/*
 * origdst.h - where a redirected connection was going: the original
 * destination of a connection the kernel redirected to us (nftables or
 * iptables "redirect": SO_ORIGINAL_DST; TPROXY: the socket's own address).
 *
 * A connection made straight to the proxy's port is not redirected: with
 * conntrack active, SO_ORIGINAL_DST then answers the listener's own address
 * (the same as getsockname()), and without conntrack it fails with ENOENT
 * and getsockname() is the listener's address. Either way the destination
 * would be the proxy itself: the caller refuses such connections, or one
 * client could make the proxy connect to itself forever.
 *
 * Does not defend against: rules that redirect the proxy's own outbound
 * connections back to it (exclude its user or mark in the ruleset); a
 * redirect to a port other than the listener's.
 */
#ifndef GWP_ORIGDST_H
#define GWP_ORIGDST_H

#include <stddef.h>
#include <sys/socket.h>

#include "gw/nexthop.h"

/*
 * The verdict on addresses already read: orig (SO_ORIGINAL_DST, or NULL when
 * it failed), local (getsockname()) and the listener's port. 1 and *hop_r set
 * (a literal "[address]:port") when redirected, 0 when not.
 */
int gwp_origdst_judge(const struct sockaddr *orig, const struct sockaddr *local, unsigned listen_port,
		      gw_nexthop *hop_r);

/* The original destination of accepted fd. 1 redirected (*hop_r set), 0 not redirected, -1 error (err). */
int gwp_origdst(int fd, unsigned listen_port, gw_nexthop *hop_r, char *err, size_t errlen);

#endif
