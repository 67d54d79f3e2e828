/*
 * dnsq.c - gw-dnsq, libgw's lookups as a program for shell tests:
 *   gw-dnsq [-s SERVERS] [-t TIMEOUT_MS] [-d DEADLINE_MS] mx DOMAIN
 *   gw-dnsq [-s SERVERS] [-t TIMEOUT_MS] [-d DEADLINE_MS] host NAME
 * Prints one line: "FOUND 10 mx1.example.org,20 mx2.example.org" (host:
 * "FOUND 127.0.0.11,::1"), "NOTFOUND reason" or "RETRY reason", then
 * "ms=N" (how long the lookup took) on a second line. Exit 0 when a lookup
 * ran, 2 on bad usage or a bad -s.
 * Does not defend against: nothing to defend; a test tool.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns.h"
#include "gw/mx.h"
#include "gw/time.h"

static const char *const names[] = {"FOUND", "NOTFOUND", "RETRY"};

static int usage(void)
{
	fprintf(stderr, "usage: gw-dnsq [-s SERVERS] [-t TIMEOUT_MS] [-d DEADLINE_MS] mx|host NAME\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *servers = NULL;
	unsigned timeout = 0, deadline_ms = 0;
	char err[512] = "", out[4096] = "";
	size_t off = 0, n = 0, i;
	int64_t t0, deadline;
	gw_lookup res;
	int c;

	while ((c = getopt(argc, argv, "s:t:d:")) != -1) {
		if (c == 's')
			servers = optarg;
		else if (c == 't')
			timeout = (unsigned)strtoul(optarg, NULL, 10);
		else if (c == 'd')
			deadline_ms = (unsigned)strtoul(optarg, NULL, 10);
		else
			return usage();
	}
	if (argc - optind != 2)
		return usage();
	if (gw_dns_configure(servers, timeout, err, sizeof err) != 0) {
		fprintf(stderr, "gw-dnsq: -s: %s\n", err);
		return 2;
	}
	t0 = gw_now_ms();
	deadline = deadline_ms ? t0 + deadline_ms : 0;
	if (strcmp(argv[optind], "mx") == 0) {
		gw_mx mx[GW_MX_MAX];
		res = gw_mx_lookup_until(argv[optind + 1], deadline, mx, GW_MX_MAX, &n, err, sizeof err);
		for (i = 0; i < n; i++)
			off += (size_t)snprintf(out + off, sizeof out - off, "%s%u %s", i ? "," : "",
						mx[i].pref, mx[i].host);
	} else if (strcmp(argv[optind], "host") == 0) {
		gwd_addr a[GWD_ADDR_MAX];
		res = gwd_host_lookup(argv[optind + 1], 25, gwd_end(deadline), a, GWD_ADDR_MAX, &n, NULL, err,
				      sizeof err);
		for (i = 0; i < n; i++) {
			char text[INET6_ADDRSTRLEN] = "?";
			if (a[i].sa.ss_family == AF_INET)
				inet_ntop(AF_INET, &((struct sockaddr_in *)&a[i].sa)->sin_addr, text,
					  sizeof text);
			else
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a[i].sa)->sin6_addr, text,
					  sizeof text);
			off += (size_t)snprintf(out + off, sizeof out - off, "%s%s", i ? "," : "", text);
		}
	} else {
		return usage();
	}
	printf("%s %s\nms=%lld\n", names[res], res == GW_LOOKUP_FOUND ? out : err,
	       (long long)(gw_now_ms() - t0));
	return 0;
}
