/*
 * test_dns.c - the bounded resolver (dns.c) and MX lookup (mx.c) against a
 * fake DNS server on loopback: a UDP socket this test binds to port 0 and
 * answers from a thread, one behaviour per case (MX sets, null MX, NXDOMAIN,
 * SERVFAIL, no MX but an address, A and AAAA, garbage, silence), and the
 * DNSSEC-asked lookups for DANE: the fake sets AD only when the query
 * carries EDNS0 with the DO bit, as a validating resolver does for signed
 * data, so "secure" proves the query asked for it.
 *
 * The silent and garbage servers must give "try later" by the deadline the
 * caller set, never "not found" and never a crash; numeric addresses must
 * never reach the DNS. Times are checked with a wide margin: a lookup with a
 * 500 ms deadline must be over in under 2 s.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns.h"
#include "gw/dane.h"
#include "gw/mx.h"
#include "gw/time.h"
#include "net.h"

enum { T_A = 1, T_MX = 15, T_AAAA = 28, T_TLSA = 52, T_OPT = 41 };

typedef enum mode {
	M_MX,           /* MX 20 mx2.fake.test, MX 10 mx1.fake.test; A 127.0.0.9; AAAA ::1 */
	M_NULLMX,       /* MX 0 . */
	M_NXDOMAIN,     /* rcode 3 */
	M_SERVFAIL,     /* rcode 2 */
	M_NOMX_A,       /* no MX (NOERROR, no answer); A 127.0.0.9 */
	M_NOMX_NOADDR,  /* NOERROR and no answer for every type */
	M_SILENT,       /* reads queries, never answers */
	M_GARBAGE_RR,   /* header and question fine, the MX record runs past the end */
	M_GARBAGE_HDR,  /* only 6 bytes */
	M_GARBAGE_RAND, /* the id, then random bytes */
	M_SIGNED,       /* as M_MX, TLSA 3 1 1 and 0 0 1 too; AD when the query asked with DO */
	M_UNSIGNED,     /* as M_SIGNED, never AD */
	M_SIGNED_NOMX   /* no MX, A 127.0.0.9, no TLSA; AD when asked with DO */
} mode;

typedef struct fake {
	int fd;
	unsigned port;
	int family;
	pthread_t thread;
	atomic_int mode, stop, queries;
	atomic_int last_do; /* the last query had EDNS0 with DO set */
	char last_qname[300];
} fake;

static fake F4;

/* ---- the fake server ------------------------------------------------------ */

static size_t put16(unsigned char *b, size_t off, unsigned v)
{
	b[off] = (unsigned char)(v >> 8);
	b[off + 1] = (unsigned char)(v & 0xff);
	return off + 2;
}

/* A record owned by the question name (pointer to offset 12). */
static size_t put_rr(unsigned char *b, size_t off, unsigned type, const unsigned char *rd, size_t rdlen)
{
	off = put16(b, off, 0xc00c);
	off = put16(b, off, type);
	off = put16(b, off, 1);
	off = put16(b, off, 0);
	off = put16(b, off, 60);
	off = put16(b, off, (unsigned)rdlen);
	memcpy(b + off, rd, rdlen);
	return off + rdlen;
}

static size_t put_mx(unsigned char *b, size_t off, unsigned pref, const char *target)
{
	unsigned char rd[300];
	size_t n = 2;

	put16(rd, 0, pref);
	while (*target != '\0') {
		size_t l = strcspn(target, ".");
		rd[n++] = (unsigned char)l;
		memcpy(rd + n, target, l);
		n += l;
		target += l;
		if (*target == '.')
			target++;
	}
	rd[n++] = 0;
	return put_rr(b, off, T_MX, rd, n);
}

static const unsigned char tlsa_digest[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
					      17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static size_t put_tlsa(unsigned char *b, size_t off, unsigned usage, unsigned sel, unsigned mtype)
{
	unsigned char rd[3 + sizeof tlsa_digest] = {(unsigned char)usage, (unsigned char)sel,
						    (unsigned char)mtype};

	memcpy(rd + 3, tlsa_digest, sizeof tlsa_digest);
	return put_rr(b, off, T_TLSA, rd, sizeof rd);
}

/* Does the query end with an OPT record whose DO bit is set? qend: the end of its question. */
static int query_do(const unsigned char *q, size_t qlen, size_t qend)
{
	return qlen >= qend + 11 && q[11] >= 1 && q[qend] == 0 && q[qend + 1] == 0 && q[qend + 2] == T_OPT &&
	       (q[qend + 7] & 0x80) != 0;
}

/* The question name of q in dotted form into out. */
static void qname_text(const unsigned char *q, size_t qend, char *out, size_t outlen)
{
	size_t i = 12, o = 0;

	while (i < qend && q[i] != 0 && o + q[i] + 2 < outlen) {
		if (o > 0)
			out[o++] = '.';
		memcpy(out + o, q + i + 1, q[i]);
		o += q[i];
		i += (size_t)q[i] + 1;
	}
	out[o] = '\0';
}

/* The answer to query q[0..qlen) in this mode; 0 for none. */
static size_t answer(mode m, const unsigned char *q, size_t qlen, unsigned char *b, int *do_r)
{
	static const unsigned char a[4] = {127, 0, 0, 9};
	static const unsigned char aaaa[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	size_t qend = 12, off, an = 0;
	unsigned qtype, rcode = 0;

	if (qlen < 17)
		return 0;
	while (qend < qlen && q[qend] != 0)
		qend += (size_t)q[qend] + 1;
	qend += 5; /* root label, type, class */
	if (qend > qlen)
		return 0;
	qtype = (unsigned)q[qend - 4] << 8 | q[qend - 3];
	*do_r = query_do(q, qlen, qend);
	memcpy(b, q, qend);
	b[2] = 0x81; /* QR, RD */
	b[3] = 0x80; /* RA */
	off = qend;
	switch (m) {
	case M_SIGNED:
	case M_UNSIGNED:
		if (qtype == T_MX) {
			off = put_mx(b, off, 20, "mx2.fake.test");
			off = put_mx(b, off, 10, "mx1.fake.test");
			an = 2;
		} else if (qtype == T_TLSA) {
			off = put_tlsa(b, off, 3, 1, 1);
			off = put_tlsa(b, off, 0, 0, 1); /* PKIX-TA: seen, never used */
			an = 2;
		} else if (qtype == T_A) {
			off = put_rr(b, off, T_A, a, sizeof a), an = 1;
		}
		if (m == M_SIGNED && *do_r)
			b[3] |= 0x20; /* AD */
		break;
	case M_SIGNED_NOMX:
		if (qtype == T_A)
			off = put_rr(b, off, T_A, a, sizeof a), an = 1;
		if (*do_r)
			b[3] |= 0x20;
		break;
	case M_MX:
		if (qtype == T_MX) {
			off = put_mx(b, off, 20, "mx2.fake.test");
			off = put_mx(b, off, 10, "mx1.fake.test");
			an = 2;
		} else if (qtype == T_A) {
			off = put_rr(b, off, T_A, a, sizeof a), an = 1;
		} else if (qtype == T_AAAA) {
			off = put_rr(b, off, T_AAAA, aaaa, sizeof aaaa), an = 1;
		}
		break;
	case M_NULLMX:
		off = put_mx(b, off, 0, ""), an = 1;
		break;
	case M_NXDOMAIN:
		rcode = 3;
		break;
	case M_SERVFAIL:
		rcode = 2;
		break;
	case M_NOMX_A:
		if (qtype == T_A)
			off = put_rr(b, off, T_A, a, sizeof a), an = 1;
		break;
	case M_NOMX_NOADDR:
		break;
	case M_SILENT:
		return 0;
	case M_GARBAGE_RR:
		off = put_mx(b, off, 10, "mx1.fake.test");
		off -= 6; /* cut the target short of what rdlen says */
		an = 1;
		break;
	case M_GARBAGE_HDR:
		b[7] = 1;
		return 6;
	case M_GARBAGE_RAND:
		for (off = 2; off < 200; off++)
			b[off] = (unsigned char)(off * 37 + 11);
		return off;
	}
	b[3] |= (unsigned char)rcode;
	put16(b, 4, 1);
	put16(b, 6, (unsigned)an);
	put16(b, 8, 0);
	put16(b, 10, 0);
	return off;
}

static void *serve(void *arg)
{
	fake *f = arg;

	while (!atomic_load(&f->stop)) {
		struct pollfd pfd = {.fd = f->fd, .events = POLLIN, .revents = 0};
		struct sockaddr_storage from;
		socklen_t fl = sizeof from;
		unsigned char q[1500], b[1500];
		ssize_t got;
		size_t n;

		if (poll(&pfd, 1, 20) <= 0)
			continue;
		got = recvfrom(f->fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
		if (got <= 0)
			continue;
		atomic_fetch_add(&f->queries, 1);
		{
			int do_bit = 0;
			n = answer((mode)atomic_load(&f->mode), q, (size_t)got, b, &do_bit);
			atomic_store(&f->last_do, do_bit);
			if (got > 17)
				qname_text(q, (size_t)got, f->last_qname, sizeof f->last_qname);
		}
		if (n > 0)
			(void)sendto(f->fd, b, n, 0, (struct sockaddr *)&from, fl);
	}
	return NULL;
}

/* Bind loopback port 0 of family and serve. 0 ok, -1 when the family is not there. */
static int fake_start(fake *f, int family)
{
	struct sockaddr_storage ss;
	socklen_t sl;

	memset(f, 0, sizeof *f);
	memset(&ss, 0, sizeof ss);
	f->family = family;
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof *s4;
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		sl = sizeof *s6;
	}
	f->fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (f->fd < 0)
		return -1;
	if (bind(f->fd, (struct sockaddr *)&ss, sl) != 0 ||
	    getsockname(f->fd, (struct sockaddr *)&ss, &sl) != 0) {
		close(f->fd);
		return -1;
	}
	f->port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					  : ((struct sockaddr_in6 *)&ss)->sin6_port);
	assert_int_equal(pthread_create(&f->thread, NULL, serve, f), 0);
	return 0;
}

static void fake_stop(fake *f)
{
	atomic_store(&f->stop, 1);
	pthread_join(f->thread, NULL);
	close(f->fd);
}

/* Point the resolver at f with a lookup timeout of timeout_ms. */
static void use(const fake *f, mode m, unsigned timeout_ms)
{
	char servers[64], err[256] = "";

	atomic_store((atomic_int *)&f->mode, (int)m);
	snprintf(servers, sizeof servers, f->family == AF_INET ? "127.0.0.1:%u" : "[::1]:%u", f->port);
	if (gw_dns_configure(servers, timeout_ms, err, sizeof err) != 0)
		fail_msg("configure '%s': %s", servers, err);
}

static int setup(void **state)
{
	(void)state;
	return fake_start(&F4, AF_INET);
}

static int teardown(void **state)
{
	(void)state;
	fake_stop(&F4);
	return gw_dns_configure(NULL, 0, NULL, 0);
}

/* ---- MX ------------------------------------------------------------------------ */

/* Look up domain by deadline_ms from now; expect want and the hosts "pref host|...", in under 2 s. */
static void check_mx(const char *what, const char *domain, unsigned deadline_ms, gw_lookup want,
		     const char *want_list)
{
	gw_mx mx[GW_MX_MAX];
	size_t n = 99, off = 0, i;
	char got[1024] = "", err[256] = "";
	int64_t t0 = gw_now_ms(), took;
	gw_lookup res = gw_mx_lookup_until(domain, deadline_ms ? t0 + deadline_ms : 0, mx, GW_MX_MAX, &n, err,
					   sizeof err);

	took = gw_now_ms() - t0;
	for (i = 0; i < n && i < GW_MX_MAX; i++)
		off += (size_t)snprintf(got + off, sizeof got - off, "%s%u %s", i ? "|" : "", mx[i].pref,
					mx[i].host);
	if (res != want || strcmp(got, want_list) != 0)
		fail_msg("%s: got %d '%s' (%s), want %d '%s'", what, (int)res, got, err, (int)want,
			 want_list);
	if (res != GW_LOOKUP_FOUND && (n != 0 || err[0] == '\0'))
		fail_msg("%s: got n %zu, err '%s', want n 0 and a reason", what, n, err);
	if (took >= 2000)
		fail_msg("%s: took %lld ms, want under 2000", what, (long long)took);
}

static void test_mx_answers(void **state)
{
	(void)state;
	use(&F4, M_MX, 2000);
	check_mx("MX by preference", "fake.test", 500, GW_LOOKUP_FOUND, "10 mx1.fake.test|20 mx2.fake.test");
	check_mx("trailing dot", "fake.test.", 0, GW_LOOKUP_FOUND, "10 mx1.fake.test|20 mx2.fake.test");
	use(&F4, M_NULLMX, 2000);
	check_mx("null MX", "fake.test", 500, GW_LOOKUP_NOTFOUND, "");
	use(&F4, M_NXDOMAIN, 2000);
	check_mx("NXDOMAIN", "fake.test", 500, GW_LOOKUP_NOTFOUND, "");
	use(&F4, M_SERVFAIL, 2000);
	check_mx("SERVFAIL", "fake.test", 500, GW_LOOKUP_RETRY, "");
	use(&F4, M_NOMX_A, 2000);
	check_mx("no MX, an address: implicit MX", "fake.test", 500, GW_LOOKUP_FOUND, "0 fake.test");
	use(&F4, M_NOMX_NOADDR, 2000);
	check_mx("no MX, no address", "fake.test", 500, GW_LOOKUP_NOTFOUND, "");
}

/* A server that never answers: RETRY by the caller's deadline, or by the configured timeout. */
static void test_silent(void **state)
{
	gw_mx mx[4];
	size_t n = 9;
	char err[256] = "";
	int64_t t0;
	int64_t took;

	(void)state;
	use(&F4, M_SILENT, 30000);
	atomic_store(&F4.queries, 0);
	t0 = gw_now_ms();
	check_mx("silent, deadline 500 ms", "fake.test", 500, GW_LOOKUP_RETRY, "");
	took = gw_now_ms() - t0;
	if (took < 400)
		fail_msg("silent: over after %lld ms, before the deadline", (long long)took);
	if (atomic_load(&F4.queries) < 2)
		fail_msg("silent: %d queries, want retransmissions within the deadline",
			 atomic_load(&F4.queries));

	/* no deadline from the caller: the configured lookup timeout bounds it */
	use(&F4, M_SILENT, 300);
	t0 = gw_now_ms();
	assert_int_equal(gw_mx_lookup("fake.test", mx, 4, &n, err, sizeof err), GW_LOOKUP_RETRY);
	took = gw_now_ms() - t0;
	assert_int_equal(n, 0);
	if (took < 250 || took >= 2000)
		fail_msg("silent, timeout 300 ms: took %lld ms", (long long)took);
}

static void test_garbage(void **state)
{
	static const struct {
		mode m;
		const char *what;
	} cases[] = {
	    {M_GARBAGE_RR, "record past the end"},
	    {M_GARBAGE_HDR, "6-byte answer"},
	    {M_GARBAGE_RAND, "random bytes"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		gwd_addr addrs[4];
		size_t n = 9;
		char err[256] = "";

		use(&F4, cases[i].m, 2000);
		check_mx(cases[i].what, "fake.test", 500, GW_LOOKUP_RETRY, "");
		if (gwd_host_lookup("host.fake.test", 25, gwd_end(gw_now_ms() + 500), addrs, 4, &n, NULL, err,
				    sizeof err) != GW_LOOKUP_RETRY ||
		    n != 0)
			fail_msg("%s: host lookup got n %zu (%s), want RETRY", cases[i].what, n, err);
	}
}

/* ---- host lookups ------------------------------------------------------------ */

static void test_host_a_aaaa(void **state)
{
	gwd_addr addrs[GWD_ADDR_MAX];
	size_t n = 0, i;
	char err[256] = "";
	int v4 = 0, v6 = 0;

	(void)state;
	use(&F4, M_MX, 2000);
	assert_int_equal(gwd_host_lookup("mx1.fake.test", 2525, gwd_end(0), addrs, GWD_ADDR_MAX, &n, NULL,
					 err, sizeof err),
			 GW_LOOKUP_FOUND);
	for (i = 0; i < n; i++) {
		char text[INET6_ADDRSTRLEN] = "";
		if (addrs[i].sa.ss_family == AF_INET) {
			struct sockaddr_in *s = (struct sockaddr_in *)&addrs[i].sa;
			inet_ntop(AF_INET, &s->sin_addr, text, sizeof text);
			assert_string_equal(text, "127.0.0.9");
			assert_int_equal(ntohs(s->sin_port), 2525);
			v4++;
		} else {
			struct sockaddr_in6 *s = (struct sockaddr_in6 *)&addrs[i].sa;
			inet_ntop(AF_INET6, &s->sin6_addr, text, sizeof text);
			assert_string_equal(text, "::1");
			assert_int_equal(ntohs(s->sin6_port), 2525);
			v6++;
		}
	}
	if (v4 != 1 || v6 != 1)
		fail_msg("got %d A and %d AAAA, want one of each", v4, v6);

	use(&F4, M_NXDOMAIN, 2000);
	assert_int_equal(gwd_host_lookup("nx.fake.test", 25, gwd_end(0), addrs, 4, &n, NULL, err, sizeof err),
			 GW_LOOKUP_NOTFOUND);
	use(&F4, M_SERVFAIL, 2000);
	assert_int_equal(gwd_host_lookup("sf.fake.test", 25, gwd_end(0), addrs, 4, &n, NULL, err, sizeof err),
			 GW_LOOKUP_RETRY);
}

/* Numeric addresses never reach the DNS, even with a resolver that never answers. */
static void test_numeric_no_dns(void **state)
{
	static const char *hosts[] = {"127.0.0.5", "::1", "192.0.2.1"};
	size_t i;

	(void)state;
	use(&F4, M_SILENT, 5000);
	atomic_store(&F4.queries, 0);
	for (i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
		gwd_addr a[2];
		size_t n = 0;
		char err[256] = "";
		int64_t t0 = gw_now_ms();

		assert_int_equal(gwd_host_lookup(hosts[i], 25, gwd_end(0), a, 2, &n, NULL, err, sizeof err),
				 GW_LOOKUP_FOUND);
		assert_int_equal(n, 1);
		assert_true(gw_now_ms() - t0 < 1000);
	}
	assert_int_equal(atomic_load(&F4.queries), 0);
}

/* gw_net_connect: the name lookup is bounded by the connect timeout; a name that resolves connects. */
static void test_net_connect(void **state)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	gw_nexthop hop;
	char err[256] = "";
	int lfd, fd = -1;
	int64_t t0, took;
	gw_net_rc rc;

	(void)state;
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0x7f000009); /* 127.0.0.9: what the fake server gives */
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);

	memset(&hop, 0, sizeof hop);
	hop.kind = GW_HOP_INET;
	snprintf(hop.host, sizeof hop.host, "mx1.fake.test");
	hop.port = ntohs(sin.sin_port);
	use(&F4, M_NOMX_A, 30000);
	rc = gw_net_connect(&hop, 25, NULL, 2000, 0, &fd, err, sizeof err);
	if (rc != GW_NET_OK)
		fail_msg("connect by name: got %d (%s), want OK", (int)rc, err);
	close(fd);
	fd = -1;

	/* a silent resolver: the connect timeout (500 ms) ends the lookup, the lookup timeout is 30 s */
	use(&F4, M_SILENT, 30000);
	t0 = gw_now_ms();
	rc = gw_net_connect(&hop, 25, NULL, 500, 0, &fd, err, sizeof err);
	took = gw_now_ms() - t0;
	if (rc != GW_NET_TIMEOUT || fd != -1 || took >= 2000)
		fail_msg("silent resolver: got %d (%s) fd %d in %lld ms, want TIMEOUT in under 2 s", (int)rc,
			 err, fd, (long long)took);
	/* ... and the deadline, when it comes first */
	t0 = gw_now_ms();
	rc = gw_net_connect(&hop, 25, NULL, 10000, t0 + 400, &fd, err, sizeof err);
	took = gw_now_ms() - t0;
	if (rc != GW_NET_TIMEOUT || took >= 2000)
		fail_msg("silent resolver, deadline: got %d (%s) in %lld ms", (int)rc, err, (long long)took);
	/* NXDOMAIN: did not resolve */
	use(&F4, M_NXDOMAIN, 2000);
	assert_int_equal(gw_net_connect(&hop, 25, NULL, 2000, 0, &fd, err, sizeof err), GW_NET_RESOLVE);
	close(lfd);
}

/* ---- servers, IPv6, threads ----------------------------------------------------- */

static void test_servers_syntax(void **state)
{
	static const struct {
		const char *list;
		int ok;
	} cases[] = {
	    {"", 1},
	    {"127.0.0.1", 1},
	    {"127.0.0.1:5353", 1},
	    {"[::1]:5353", 1},
	    {"::1", 1},
	    {"[2001:db8::53]", 1},
	    {"10.0.0.1, 10.0.0.2 [::1]:53", 1},
	    {"1,2,3,4,5,6,7,8", 0}, /* not addresses */
	    {"10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5,10.0.0.6,10.0.0.7,10.0.0.8", 1},
	    {"10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5,10.0.0.6,10.0.0.7,10.0.0.8,10.0.0.9", 0},
	    {"ns.example.com", 0},
	    {"127.0.0.1:0", 0},
	    {"127.0.0.1:65536", 0},
	    {"127.0.0.1:5x", 0},
	    {"127.0.0.1:", 0},
	    {"[::1", 0},
	    {"[::1]x", 0},
	    {"[::1]:", 0},
	    {"300.0.0.1", 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char err[256] = "";
		int got = gw_dns_check_servers(cases[i].list, err, sizeof err) == 0;
		if (got != cases[i].ok || (!got && err[0] == '\0'))
			fail_msg("'%s': got %s (%s), want %s", cases[i].list, got ? "ok" : "error", err,
				 cases[i].ok ? "ok" : "error");
	}
	/* a refused setting keeps the one in force */
	use(&F4, M_MX, 2000);
	assert_int_equal(gw_dns_configure("ns.example.com", 0, NULL, 0), -1);
	assert_int_equal(gw_dns_configure("127.0.0.1", GW_DNS_TIMEOUT_MAX_MS + 1, NULL, 0), -1);
	check_mx("after refused settings", "fake.test", 500, GW_LOOKUP_FOUND,
		 "10 mx1.fake.test|20 mx2.fake.test");
}

static void test_ipv6_server(void **state)
{
	fake f6;

	(void)state;
	if (fake_start(&f6, AF_INET6) != 0)
		skip();
	use(&f6, M_MX, 2000);
	check_mx("over IPv6", "fake.test", 1000, GW_LOOKUP_FOUND, "10 mx1.fake.test|20 mx2.fake.test");
	assert_true(atomic_load(&f6.queries) > 0);
	fake_stop(&f6);
}

#define THREADS 8
#define LOOKUPS 25

static void *lookups(void *arg)
{
	int i, *bad = arg;

	for (i = 0; i < LOOKUPS; i++) {
		gw_mx mx[4];
		size_t n = 0;
		char err[256];

		if (gw_mx_lookup("fake.test", mx, 4, &n, err, sizeof err) != GW_LOOKUP_FOUND || n != 2 ||
		    strcmp(mx[0].host, "mx1.fake.test") != 0)
			(*bad)++;
	}
	return NULL;
}

/* Lookups from many threads at once (run under ThreadSanitizer or ASan for the full effect). */
/* The DNSSEC-asked MX lookup: AD only comes back for a query with DO, and only then is it "secure". */
static void test_mx_dnssec(void **state)
{
	gw_mx mx[4];
	size_t n = 9;
	int secure = -1;
	char err[256];

	(void)state;
	use(&F4, M_SIGNED, 2000);
	assert_int_equal(gw_mx_lookup_dnssec("fake.test", 0, mx, 4, &n, &secure, err, sizeof err),
			 GW_LOOKUP_FOUND);
	assert_int_equal(n, 2);
	assert_string_equal(mx[0].host, "mx1.fake.test");
	assert_int_equal(secure, 1);
	assert_int_equal(atomic_load(&F4.last_do), 1);
	/* The plain lookup does not ask: no DO on the wire. */
	assert_int_equal(gw_mx_lookup("fake.test", mx, 4, &n, err, sizeof err), GW_LOOKUP_FOUND);
	assert_int_equal(atomic_load(&F4.last_do), 0);

	use(&F4, M_UNSIGNED, 2000);
	secure = -1;
	assert_int_equal(gw_mx_lookup_dnssec("fake.test", 0, mx, 4, &n, &secure, err, sizeof err),
			 GW_LOOKUP_FOUND);
	assert_int_equal(n, 2);
	assert_int_equal(secure, 0);

	/* Implicit MX: secure when the denial of the MX set and the A answer both are. */
	use(&F4, M_SIGNED_NOMX, 2000);
	secure = -1;
	assert_int_equal(gw_mx_lookup_dnssec("a.fake.test", 0, mx, 4, &n, &secure, err, sizeof err),
			 GW_LOOKUP_FOUND);
	assert_int_equal(n, 1);
	assert_string_equal(mx[0].host, "a.fake.test");
	assert_int_equal(secure, 1);
	use(&F4, M_NOMX_A, 2000);
	secure = -1;
	assert_int_equal(gw_mx_lookup_dnssec("a.fake.test", 0, mx, 4, &n, &secure, err, sizeof err),
			 GW_LOOKUP_FOUND);
	assert_int_equal(secure, 0);

	/* Three outcomes still: NXDOMAIN is not found, SERVFAIL is try later; neither is secure. */
	use(&F4, M_NXDOMAIN, 2000);
	secure = -1;
	assert_int_equal(gw_mx_lookup_dnssec("fake.test", 0, mx, 4, &n, &secure, err, sizeof err),
			 GW_LOOKUP_NOTFOUND);
	assert_int_equal(secure, 0);
	use(&F4, M_SERVFAIL, 2000);
	assert_int_equal(gw_mx_lookup_dnssec("fake.test", 0, mx, 4, &n, &secure, err, sizeof err),
			 GW_LOOKUP_RETRY);
	assert_int_equal(secure, 0);
	use(&F4, M_NULLMX, 2000);
	assert_int_equal(gw_mx_lookup_dnssec("fake.test", 0, mx, 4, &n, &secure, err, sizeof err),
			 GW_LOOKUP_NOTFOUND);
	assert_non_null(strstr(err, "null MX"));
}

/* TLSA at _PORT._tcp.HOST with DO: the usable records, and the resolver's AD. */
static void test_tlsa_lookup(void **state)
{
	gw_tlsa t[4];
	size_t n = 9, seen = 9;
	int secure = -1;
	char err[256];

	(void)state;
	use(&F4, M_SIGNED, 2000);
	assert_int_equal(gw_tlsa_lookup("mx1.fake.test", 2525, 0, t, 4, &n, &seen, &secure, err, sizeof err),
			 GW_LOOKUP_FOUND);
	assert_string_equal(F4.last_qname, "_2525._tcp.mx1.fake.test");
	assert_int_equal(atomic_load(&F4.last_do), 1);
	assert_int_equal(seen, 2);
	assert_int_equal(n, 1);
	assert_int_equal(t[0].usage, 3);
	assert_int_equal(t[0].selector, 1);
	assert_int_equal(t[0].mtype, 1);
	assert_int_equal(t[0].len, 32);
	assert_memory_equal(t[0].data, tlsa_digest, 32);
	assert_int_equal(secure, 1);
	assert_int_equal(gw_tlsa_lookup("mx1.fake.test", 0, 0, t, 4, &n, &seen, &secure, err, sizeof err),
			 GW_LOOKUP_FOUND);
	assert_string_equal(F4.last_qname, "_25._tcp.mx1.fake.test");

	use(&F4, M_UNSIGNED, 2000);
	assert_int_equal(gw_tlsa_lookup("mx1.fake.test", 25, 0, t, 4, &n, &seen, &secure, err, sizeof err),
			 GW_LOOKUP_FOUND);
	assert_int_equal(secure, 0);

	/* Authenticated denial: NOTFOUND and secure. */
	use(&F4, M_SIGNED_NOMX, 2000);
	assert_int_equal(gw_tlsa_lookup("mx1.fake.test", 25, 0, t, 4, &n, &seen, &secure, err, sizeof err),
			 GW_LOOKUP_NOTFOUND);
	assert_int_equal(n, 0);
	assert_int_equal(secure, 1);

	use(&F4, M_NXDOMAIN, 2000);
	assert_int_equal(gw_tlsa_lookup("mx1.fake.test", 25, 0, t, 4, &n, &seen, &secure, err, sizeof err),
			 GW_LOOKUP_NOTFOUND);
	assert_int_equal(secure, 0);
	/* SERVFAIL (what a validating resolver says for bogus data): try later, never "no TLSA". */
	use(&F4, M_SERVFAIL, 2000);
	assert_int_equal(gw_tlsa_lookup("mx1.fake.test", 25, 0, t, 4, &n, &seen, &secure, err, sizeof err),
			 GW_LOOKUP_RETRY);
	assert_int_equal(secure, 0);
	/* Silence: try later by the deadline. */
	use(&F4, M_SILENT, 30000);
	{
		int64_t t0 = gw_now_ms();
		assert_int_equal(
		    gw_tlsa_lookup("mx1.fake.test", 25, t0 + 500, t, 4, &n, &seen, &secure, err, sizeof err),
		    GW_LOOKUP_RETRY);
		assert_true(gw_now_ms() - t0 < 2000);
	}
	/* A name that cannot be one never reaches the DNS. */
	assert_int_equal(gw_tlsa_lookup("bad name", 25, 0, t, 4, &n, &seen, &secure, err, sizeof err),
			 GW_LOOKUP_NOTFOUND);
}

static void test_threads(void **state)
{
	pthread_t t[THREADS];
	int bad[THREADS] = {0}, i;

	(void)state;
	use(&F4, M_MX, 5000);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, lookups, &bad[i]), 0);
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		if (bad[i] != 0)
			fail_msg("thread %d: %d of %d lookups wrong", i, bad[i], LOOKUPS);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mx_answers),     cmocka_unit_test(test_silent),
	    cmocka_unit_test(test_garbage),        cmocka_unit_test(test_host_a_aaaa),
	    cmocka_unit_test(test_numeric_no_dns), cmocka_unit_test(test_net_connect),
	    cmocka_unit_test(test_servers_syntax), cmocka_unit_test(test_ipv6_server),
	    cmocka_unit_test(test_threads),        cmocka_unit_test(test_mx_dnssec),
	    cmocka_unit_test(test_tlsa_lookup),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
