/*
 * dns.c - bounded DNS lookups (MX queries, A/AAAA host lookups) through
 * c-ares, and the process-wide resolver settings of gw/dns.h.
 *
 * Why c-ares and not libunbound: libgw needs a plain stub resolver whose
 * every lookup ends by a deadline the caller gives, pointed at the host's
 * resolver or at the servers the configuration names (Postfix's model).
 * c-ares is exactly that: it sends the query, we drive its sockets with
 * poll() until the answer or the deadline, and ares_query hands back the raw
 * answer, so the MX parser (mx.c) and its tests and fuzz target stay as they
 * are. libunbound is a full recursive, validating resolver with its own
 * cache and threads; DNSSEC-validated answers (for DANE) are better had from
 * a validating resolver on the host, whose AD bit the raw answer carries.
 *
 * Each lookup has its own c-ares channel (c-ares 1.18 channels are not
 * thread-safe), so lookups from many threads never share state; the price is
 * one channel set-up per lookup (it reads /etc/resolv.conf unless servers
 * are configured). The deadline is enforced here, not by c-ares: its own
 * per-try timeout is set so that its retransmissions fit in the time left,
 * and at the deadline the queries are cancelled.
 *
 * DNSSEC, the way Postfix does it: gwd_query_dnssec() asks with the DO bit
 * (c-ares 1.18 has no flag that sets it, so the query is built with
 * ares_create_query and its OPT record patched before ares_send) and hands
 * back the AD bit of the answer. Nothing here validates signatures: AD is
 * only as good as the resolver that set it and the path to it.
 *
 * Does not defend against: forged answers that are well formed (no
 * validation of our own, no 0x20 case randomisation; c-ares randomises query
 * ids and ports), a resolver off the host that lies about AD, and the time
 * /etc/hosts and resolv.conf take to read.
 */
#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "gw/time.h"
#include "util.h"

#define CLASS_IN       1
#define TRIES          3
#define SERVER_TEXT    56 /* "[" IPv6 "]:" port */
#define SERVERS_TEXT   (GW_DNS_SERVERS_MAX * SERVER_TEXT)
#define PER_TRY_MIN_MS 50

static pthread_mutex_t conf_lock = PTHREAD_MUTEX_INITIALIZER;
static char conf_servers[SERVERS_TEXT]; /* c-ares CSV form; "": /etc/resolv.conf */
static unsigned conf_timeout_ms = GW_DNS_TIMEOUT_DEFAULT_MS;

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status = ARES_ENOTINITIALIZED;

static void lib_init(void)
{
	lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* --- settings ------------------------------------------------------------ */

/* One item "IP", "IP:port", "[IP]:port" into c-ares' "IP:port" / "[IPv6]:port". 0 ok, -1 err. */
static int server_item(const char *s, size_t len, char *out, size_t outlen, char *err, size_t errlen)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *a = s, *colon = NULL;
	size_t alen = len;
	unsigned long port = 53;
	unsigned char bin[16];
	int v6;

	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (close == NULL)
			goto bad;
		a = s + 1;
		alen = (size_t)(close - a);
		if (close + 1 < s + len) {
			if (close[1] != ':')
				goto bad;
			colon = close + 1;
		}
	} else {
		const char *c1 = memchr(s, ':', len);
		if (c1 != NULL && memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - s)) == NULL) {
			colon = c1; /* one colon: IPv4 with a port */
			alen = (size_t)(c1 - s);
		} /* more than one: a bare IPv6 address, port 53 */
	}
	if (colon != NULL) {
		const char *p = colon + 1, *e = s + len;
		if (p == e || e - p > 5)
			goto bad;
		port = 0;
		for (; p < e; p++) {
			if (*p < '0' || *p > '9')
				goto bad;
			port = port * 10 + (unsigned long)(*p - '0');
		}
		if (port == 0 || port > 65535)
			goto bad;
	}
	if (alen == 0 || alen >= sizeof addr)
		goto bad;
	memcpy(addr, a, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, bin) == 1)
		v6 = 0;
	else if (inet_pton(AF_INET6, addr, bin) == 1)
		v6 = 1;
	else
		goto bad;
	snprintf(out, outlen, v6 ? "[%s]:%lu" : "%s:%lu", addr, port);
	return 0;
bad:
	gwu_set_err(err, errlen, "'%.*s': want IP, IP:PORT or [IPv6]:PORT", (int)(len > 64 ? 64 : len), s);
	return -1;
}

/* The servers list in c-ares' CSV form into out ("" for none). 0 ok, -1 err. */
static int servers_csv(const char *servers, char *out, size_t outlen, char *err, size_t errlen)
{
	const char *s = servers != NULL ? servers : "";
	size_t off = 0, n = 0;

	out[0] = '\0';
	for (;;) {
		char item[SERVER_TEXT];
		size_t len;

		s += strspn(s, ", \t");
		if (*s == '\0')
			break;
		len = strcspn(s, ", \t");
		if (++n > GW_DNS_SERVERS_MAX) {
			gwu_set_err(err, errlen, "more than %d servers", GW_DNS_SERVERS_MAX);
			return -1;
		}
		if (server_item(s, len, item, sizeof item, err, errlen) != 0)
			return -1;
		off += (size_t)snprintf(out + off, outlen - off, "%s%s", off > 0 ? "," : "", item);
		s += len;
	}
	return 0;
}

int gw_dns_check_servers(const char *servers, char *err, size_t errlen)
{
	char csv[SERVERS_TEXT];

	return servers_csv(servers, csv, sizeof csv, err, errlen);
}

int gw_dns_configure(const char *servers, unsigned timeout_ms, char *err, size_t errlen)
{
	char csv[SERVERS_TEXT];

	if (servers_csv(servers, csv, sizeof csv, err, errlen) != 0)
		return -1;
	if (timeout_ms > GW_DNS_TIMEOUT_MAX_MS) {
		gwu_set_err(err, errlen, "lookup timeout over %d ms", GW_DNS_TIMEOUT_MAX_MS);
		return -1;
	}
	pthread_mutex_lock(&conf_lock);
	memcpy(conf_servers, csv, sizeof csv);
	conf_timeout_ms = timeout_ms != 0 ? timeout_ms : GW_DNS_TIMEOUT_DEFAULT_MS;
	pthread_mutex_unlock(&conf_lock);
	return 0;
}

int64_t gwd_end(int64_t deadline)
{
	int64_t end;

	pthread_mutex_lock(&conf_lock);
	end = gw_now_ms() + conf_timeout_ms;
	pthread_mutex_unlock(&conf_lock);
	return deadline > 0 && deadline < end ? deadline : end;
}

/* --- a channel per lookup -------------------------------------------------- */

/* A channel for one lookup ending at end, with the configured servers. 0 ok, -1 err. */
static int chan_open(ares_channel *ch_r, int64_t end, char *err, size_t errlen)
{
	struct ares_options o;
	char csv[SERVERS_TEXT];
	int64_t left = end - gw_now_ms();
	int rc;

	pthread_once(&lib_once, lib_init);
	if (lib_status != ARES_SUCCESS) {
		gwu_set_err(err, errlen, "resolver: %s", ares_strerror(lib_status));
		return -1;
	}
	pthread_mutex_lock(&conf_lock);
	memcpy(csv, conf_servers, sizeof csv);
	pthread_mutex_unlock(&conf_lock);
	memset(&o, 0, sizeof o);
	/* c-ares doubles the timeout after each round: 1 + 2 + 4 tries' worth fit in what is left. */
	o.timeout = left / 7 > PER_TRY_MIN_MS ? (int)(left / 7) : PER_TRY_MIN_MS;
	o.tries = TRIES;
	rc = ares_init_options(ch_r, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		gwu_set_err(err, errlen, "resolver: %s", ares_strerror(rc));
		return -1;
	}
	if (csv[0] != '\0' && (rc = ares_set_servers_ports_csv(*ch_r, csv)) != ARES_SUCCESS) {
		gwu_set_err(err, errlen, "resolver servers: %s", ares_strerror(rc));
		ares_destroy(*ch_r);
		return -1;
	}
	return 0;
}

/*
 * Drive ch until *done, or until end: then cancel what is pending (its
 * callbacks run with ARES_ECANCELLED). A failing poll() cancels too.
 */
static void chan_run(ares_channel ch, int64_t end, const int *done)
{
	while (!*done) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		struct timeval maxtv, tv, *tvp;
		int64_t left = end - gw_now_ms();
		int bits, n = 0, i, rc, wait_ms;

		if (left <= 0) {
			ares_cancel(ch);
			return;
		}
		bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
		for (i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			/* ARES_GETSOCK_WRITABLE shifts a signed 1 into the sign bit for i = 15. */
			unsigned ub = (unsigned)bits;
			short ev = (short)((ub & (1u << i) ? POLLIN : 0) |
					   (ub & (1u << (i + ARES_GETSOCK_MAXNUM)) ? POLLOUT : 0));
			if (ev == 0)
				continue;
			pfd[n].fd = socks[i];
			pfd[n].events = ev;
			pfd[n].revents = 0;
			n++;
		}
		maxtv.tv_sec = (time_t)(left / 1000);
		maxtv.tv_usec = (suseconds_t)(left % 1000) * 1000;
		tvp = ares_timeout(ch, &maxtv, &tv);
		wait_ms = (int)(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000);
		rc = poll(pfd, (nfds_t)n, wait_ms);
		if (rc < 0 && errno != EINTR) {
			ares_cancel(ch);
			return;
		}
		if (rc <= 0) {
			ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* retransmissions, timeouts */
			continue;
		}
		for (i = 0; i < n; i++) {
			if (pfd[i].revents == 0)
				continue;
			ares_process_fd(
			    ch, pfd[i].revents & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd : ARES_SOCKET_BAD,
			    pfd[i].revents & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD);
		}
	}
}

/* Why a lookup ended without an answer, in words. */
static void status_err(int status, char *err, size_t errlen)
{
	if (status == ARES_ECANCELLED)
		gwu_set_err(err, errlen, "DNS lookup deadline reached");
	else if (status == ARES_ETIMEOUT)
		gwu_set_err(err, errlen, "DNS lookup timed out");
	else if (status == ARES_ECONNREFUSED) /* c-ares' word for "every server failed" */
		gwu_set_err(err, errlen, "no DNS server could answer (SERVFAIL, REFUSED or unreachable)");
	else
		gwu_set_err(err, errlen, "DNS lookup failed: %s", ares_strerror(status));
}

/* --- queries ----------------------------------------------------------------- */

typedef struct query_state {
	int done, status;
	unsigned char *answer;
	size_t len;
} query_state;

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	query_state *q = arg;

	(void)timeouts;
	q->done = 1;
	q->status = status;
	if (abuf != NULL && alen > 0 && (q->answer = malloc((size_t)alen)) != NULL) {
		memcpy(q->answer, abuf, (size_t)alen);
		q->len = (size_t)alen;
	}
}

gw_lookup gwd_query(const char *name, unsigned type, int64_t end, unsigned char **answer_r, size_t *len_r,
		    int *nodata_r, char *err, size_t errlen)
{
	query_state q;
	ares_channel ch;

	*answer_r = NULL;
	*len_r = 0;
	*nodata_r = 0;
	memset(&q, 0, sizeof q);
	if (chan_open(&ch, end, err, errlen) != 0)
		return GW_LOOKUP_RETRY;
	ares_query(ch, name, CLASS_IN, (int)type, on_answer, &q);
	chan_run(ch, end, &q.done);
	ares_destroy(ch); /* runs on_answer with ARES_EDESTRUCTION if still pending */
	if (q.answer != NULL) {
		*answer_r = q.answer;
		*len_r = q.len;
		return GW_LOOKUP_FOUND;
	}
	if (q.status == ARES_ENOTFOUND || q.status == ARES_ENODATA) {
		*nodata_r = q.status == ARES_ENODATA;
		gwu_set_err(err, errlen,
			    q.status == ARES_ENOTFOUND ? "domain does not exist (NXDOMAIN)"
						       : "no such record");
		return GW_LOOKUP_NOTFOUND;
	}
	status_err(q.done ? q.status : ARES_ECANCELLED, err, errlen);
	return GW_LOOKUP_RETRY;
}

#define EDNS_UDP_SIZE 1232 /* the DNS flag day 2020 size: no IP fragments */

int gwd_answer_ad(const unsigned char *answer, size_t len)
{
	return answer != NULL && len >= 12 && (answer[3] & 0x20) != 0;
}

gw_lookup gwd_query_dnssec(const char *name, unsigned type, int64_t end, unsigned char **answer_r,
			   size_t *len_r, int *ad_r, char *err, size_t errlen)
{
	query_state q;
	ares_channel ch;
	unsigned char *qbuf = NULL;
	int qlen = 0, rc;

	*answer_r = NULL;
	*len_r = 0;
	*ad_r = 0;
	memset(&q, 0, sizeof q);
	if (chan_open(&ch, end, err, errlen) != 0)
		return GW_LOOKUP_RETRY;
	/* id 0: c-ares gives every query sent a random id of its own. */
	rc = ares_create_query(name, CLASS_IN, (int)type, 0, 1, &qbuf, &qlen, EDNS_UDP_SIZE);
	/* The OPT record must be there (ARCOUNT 1, at the end) before its DO bit is set. */
	if (rc != ARES_SUCCESS || qlen < 12 + 11 || qbuf[10] != 0 || qbuf[11] != 1 || qbuf[qlen - 10] != 0 ||
	    qbuf[qlen - 9] != 41) {
		ares_free_string(qbuf);
		ares_destroy(ch);
		gwu_set_err(err, errlen, "cannot build the DNSSEC query for %s: %s", name,
			    rc != ARES_SUCCESS ? ares_strerror(rc) : "no EDNS0 record");
		return GW_LOOKUP_RETRY;
	}
	/* The OPT record ends the query: root name, type, class (UDP size), TTL (ext-rcode, version,
	 * flags), rdlength 0. DO is the top bit of its flags. */
	qbuf[qlen - 4] |= 0x80;
	qbuf[3] |= 0x20; /* AD in the query: tell us what you validated (RFC 6840 5.7) */
	ares_send(ch, qbuf, qlen, on_answer, &q);
	ares_free_string(qbuf);
	chan_run(ch, end, &q.done);
	ares_destroy(ch);
	if (q.answer != NULL) {
		*answer_r = q.answer;
		*len_r = q.len;
		*ad_r = gwd_answer_ad(q.answer, q.len);
		return GW_LOOKUP_FOUND;
	}
	status_err(q.done ? q.status : ARES_ECANCELLED, err, errlen);
	return GW_LOOKUP_RETRY;
}

/* --- host lookups -------------------------------------------------------------- */

typedef struct host_state {
	int done, status;
	gwd_addr *addrs;
	size_t max, n;
	unsigned port;
} host_state;

static void add_addr(host_state *h, const struct sockaddr *sa, socklen_t len)
{
	gwd_addr *a;

	if (h->n >= h->max || len > (socklen_t)sizeof a->sa)
		return;
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return;
	a = &h->addrs[h->n++];
	memset(a, 0, sizeof *a);
	memcpy(&a->sa, sa, (size_t)len);
	a->len = len;
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)&a->sa)->sin_port = htons((uint16_t)h->port);
	else
		((struct sockaddr_in6 *)&a->sa)->sin6_port = htons((uint16_t)h->port);
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	host_state *h = arg;
	struct ares_addrinfo_node *node;

	(void)timeouts;
	h->done = 1;
	h->status = status;
	if (res == NULL)
		return;
	if (status == ARES_SUCCESS)
		for (node = res->nodes; node != NULL; node = node->ai_next)
			add_addr(h, node->ai_addr, (socklen_t)node->ai_addrlen);
	ares_freeaddrinfo(res);
}

/* A numeric address (with an IPv6 scope if any): 1 when host was one. */
static int numeric_host(host_state *h, const char *host)
{
	struct addrinfo hints, *res = NULL;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST; /* never a DNS query */
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
		return 0;
	add_addr(h, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 1;
}

gw_lookup gwd_host_lookup(const char *host, unsigned port, int64_t end, gwd_addr *addrs_r, size_t max,
			  size_t *n_r, int *timed_out_r, char *err, size_t errlen)
{
	struct ares_addrinfo_hints hints;
	host_state h;
	ares_channel ch;

	*n_r = 0;
	if (timed_out_r != NULL)
		*timed_out_r = 0;
	memset(&h, 0, sizeof h);
	h.addrs = addrs_r;
	h.max = max;
	h.port = port;
	if (host == NULL || host[0] == '\0' || strnlen(host, 256) > 255) {
		gwu_set_err(err, errlen, "not a host name");
		return GW_LOOKUP_NOTFOUND;
	}
	if (numeric_host(&h, host)) {
		*n_r = h.n;
		return GW_LOOKUP_FOUND;
	}
	if (chan_open(&ch, end, err, errlen) != 0)
		return GW_LOOKUP_RETRY;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	ares_getaddrinfo(ch, host, NULL, &hints, on_addrinfo, &h);
	chan_run(ch, end, &h.done);
	ares_destroy(ch);
	if (!h.done)
		h.status = ARES_ECANCELLED;
	if (h.status == ARES_SUCCESS && h.n > 0) {
		*n_r = h.n;
		return GW_LOOKUP_FOUND;
	}
	if (h.status == ARES_SUCCESS || h.status == ARES_ENOTFOUND || h.status == ARES_ENODATA) {
		gwu_set_err(err, errlen, "%s: no such host or no address", host);
		return GW_LOOKUP_NOTFOUND;
	}
	if (timed_out_r != NULL)
		*timed_out_r = h.status == ARES_ECANCELLED || h.status == ARES_ETIMEOUT;
	status_err(h.status, err, errlen);
	return GW_LOOKUP_RETRY;
}
