/*
 * nexthop.c - parse and format next hops (gw/nexthop.h).
 *
 * Accepts "host", "host:port", "[literal]", "[literal]:port", "inet:" before
 * any of those, "/path" and "unix:/path". A bracketed literal is an IPv4
 * address, an IPv6 address (with or without the "IPv6:" tag) or, as in
 * Postfix's "[mx.example.com]", a host name that must not be looked up by
 * MX. Text that looks numeric must be a valid address (inet_pton), so a typo
 * such as "[10.0.0.300]" is refused rather than sent to the resolver.
 *
 * Does not defend against: host names that resolve somewhere unexpected,
 * socket paths that point somewhere unexpected; names are only checked for
 * syntax. Host names are kept as written (not lower-cased).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gw/nexthop.h"

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int is_alnum(unsigned char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* LDH labels separated by dots, one final dot allowed (a fully qualified name). */
static int host_name_ok(const char *h, size_t n)
{
	size_t i, label = 0;

	if (n > 0 && h[n - 1] == '.')
		n--;
	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];

		if (c == '.') {
			if (label == 0 || h[i - 1] == '-')
				return 0;
			label = 0;
		} else if (is_alnum(c) || (c == '-' && label > 0) || c == '_') {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return h[n - 1] != '-';
}

static int looks_numeric(const char *h, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!is_digit((unsigned char)h[i]) && h[i] != '.')
			return 0;
	return 1;
}

static int inet_ok(int af, const char *h, size_t n)
{
	char buf[64];
	unsigned char addr[16];

	if (n == 0 || n >= sizeof buf)
		return 0;
	memcpy(buf, h, n);
	buf[n] = '\0';
	return inet_pton(af, buf, addr) == 1;
}

static const char *parse_port(const char *s, size_t n, unsigned *port_r)
{
	size_t i;
	unsigned long v = 0;

	if (n == 0)
		return "empty port";
	for (i = 0; i < n; i++) {
		if (!is_digit((unsigned char)s[i]))
			return "port is not a number";
		v = v * 10 + (unsigned)(s[i] - '0');
		if (v > 65535)
			return "port out of range (1-65535)";
	}
	if (v == 0)
		return "port out of range (1-65535)";
	*port_r = (unsigned)v;
	return NULL;
}

static const char *parse_unix(const char *s, size_t n, gw_nexthop *hop)
{
	size_t i;

	if (n == 0)
		return "empty unix socket path";
	if (s[0] != '/')
		return "unix socket path must be absolute";
	if (n > GW_UNIX_PATH_MAX)
		return "unix socket path too long";
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return "control character in unix socket path";
	hop->kind = GW_HOP_UNIX;
	memcpy(hop->path, s, n);
	hop->path[n] = '\0';
	return NULL;
}

static const char *parse_inet(const char *s, size_t n, gw_nexthop *hop)
{
	const char *host, *rest;
	size_t hlen, rlen;

	if (n == 0)
		return "empty host";
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);

		if (close == NULL)
			return "unterminated [";
		host = s + 1;
		hlen = (size_t)(close - host);
		rest = close + 1;
		rlen = n - (size_t)(rest - s);
		if (hlen == 0)
			return "empty address literal";
		if (hlen >= 5 && strncasecmp(host, "IPv6:", 5) == 0) {
			host += 5;
			hlen -= 5;
			if (!inet_ok(AF_INET6, host, hlen))
				return "invalid IPv6 address literal";
		} else if (memchr(host, ':', hlen) != NULL) {
			if (!inet_ok(AF_INET6, host, hlen))
				return "invalid IPv6 address literal";
		} else if (looks_numeric(host, hlen)) {
			if (!inet_ok(AF_INET, host, hlen))
				return "invalid IPv4 address literal";
		} else if (hlen > GW_HOST_MAX) {
			return "host name too long";
		} else if (!host_name_ok(host, hlen)) {
			return "invalid host name in brackets";
		}
		hop->literal = 1;
	} else {
		const char *colon = memchr(s, ':', n);

		host = s;
		hlen = colon != NULL ? (size_t)(colon - s) : n;
		rest = s + hlen;
		rlen = n - hlen;
		if (hlen == 0)
			return "empty host";
		if (rlen > 0 && memchr(rest + 1, ':', rlen - 1) != NULL)
			return "IPv6 address must be written in brackets";
		if (hlen > GW_HOST_MAX)
			return "host name too long";
		if (looks_numeric(host, hlen) ? !inet_ok(AF_INET, host, hlen) : !host_name_ok(host, hlen))
			return "invalid host name";
	}
	if (rlen > 0) {
		const char *err;

		if (rest[0] != ':')
			return "unexpected text after host";
		err = parse_port(rest + 1, rlen - 1, &hop->port);
		if (err != NULL)
			return err;
	}
	hop->kind = GW_HOP_INET;
	memcpy(hop->host, host, hlen);
	hop->host[hlen] = '\0';
	return NULL;
}

int gw_nexthop_parse(const char *s, size_t len, gw_nexthop *hop_r, const char **error_r)
{
	const char *err, *dummy;

	if (error_r == NULL)
		error_r = &dummy;
	memset(hop_r, 0, sizeof *hop_r);
	if (s == NULL || len == 0) {
		*error_r = "empty next hop";
		return -1;
	}
	if (len >= 5 && strncmp(s, "unix:", 5) == 0)
		err = parse_unix(s + 5, len - 5, hop_r);
	else if (s[0] == '/')
		err = parse_unix(s, len, hop_r);
	else if (len >= 5 && strncmp(s, "inet:", 5) == 0)
		err = parse_inet(s + 5, len - 5, hop_r);
	else
		err = parse_inet(s, len, hop_r);
	if (err != NULL) {
		memset(hop_r, 0, sizeof *hop_r);
		*error_r = err;
		return -1;
	}
	return 0;
}

size_t gw_nexthop_format(const gw_nexthop *hop, char *buf, size_t size)
{
	char port[8] = "";
	int n;

	if (hop->kind == GW_HOP_UNIX)
		n = snprintf(buf, size, "unix:%.*s", GW_UNIX_PATH_MAX, hop->path);
	else {
		if (hop->port != 0)
			snprintf(port, sizeof port, ":%u", hop->port % 100000);
		n = snprintf(buf, size, "%s%.*s%s%s", hop->literal ? "[" : "", GW_HOST_MAX, hop->host,
			     hop->literal ? "]" : "", port);
	}
	return n < 0 ? 0 : (size_t)n;
}
