/*
 * bench_lmtpd_load.c - the load generator of bench/bench_lmtpd.sh: SESSIONS
 * threads, each with one reused connection, send MESSAGES messages in all
 * over LMTP or SMTP, each to one recipient at each of the given domains, with
 * sizes drawn from design.md's distribution (3% < 1 KB, 69% 1-10 KB, 27%
 * 10-100 KB, 1% 100 KB-1 MB, 0.2% > 1 MB; or every message SIZE bytes).
 *
 *   bench_lmtpd_load [-L] [-D] -t NEXTHOP -s SESSIONS -m MESSAGES [-z SIZE] DOMAIN...
 *
 * -D sends each message as one transaction per domain, over one connection
 * per domain in each session: what a sender delivering straight to each
 * destination does (the work a relay cannot avoid).
 *
 * Prints "messages=N recipients=N delivered=N failed=N seconds=S": the
 * time from the first connection to the last reply. The same generator
 * drives every path of the benchmark, so their ratios compare the paths,
 * not the clients.
 *
 * Does not defend against: a target that refuses the recipients (they count
 * as failed; the timing then means little).
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/lmtp.h"
#include "gw/time.h"

#define DOMAINS_MAX 32

static gw_nexthop hop;
static gw_proto proto = GW_PROTO_SMTP;
static const char *domains[DOMAINS_MAX];
static size_t ndomains;
static long fixed_size = -1;
static atomic_long next_msg, delivered, failed;
static long messages;
static int per_domain;

/* Message i's size: a deterministic walk through the distribution, so every path gets the same mix. */
static size_t size_of(long i)
{
	long k = (i * 7919) % 1000;

	if (fixed_size >= 0)
		return (size_t)fixed_size;
	if (k < 30)
		return 500;
	if (k < 720)
		return 1000 + (size_t)(k * 13) % 9000;
	if (k < 990)
		return 10000 + (size_t)(k * 97) % 90000;
	if (k < 998)
		return 100000 + (size_t)(k * 1009) % 900000;
	return 1500000;
}

static char *make_body(size_t len, size_t *len_r)
{
	static const char head[] = "From: <bench@example.org>\r\nSubject: bench\r\n\r\n";
	char *m = malloc(len + sizeof(head) + 82);
	size_t off = sizeof(head) - 1;

	if (m == NULL)
		exit(1);
	memcpy(m, head, off);
	while (off < len) {
		memset(m + off, 'x', 78);
		memcpy(m + off + 78, "\r\n", 2);
		off += 80;
	}
	*len_r = off;
	return m;
}

static void *session(void *arg)
{
	gw_lmtp_opts o;
	gw_lmtp *l[DOMAINS_MAX];
	gw_lmtp_rcpt rc[DOMAINS_MAX];
	gw_lmtp_result *res = calloc(DOMAINS_MAX, sizeof(*res));
	char addr[DOMAINS_MAX][320];
	size_t k, nl = per_domain ? ndomains : 1;
	long i;

	(void)arg;
	memset(&o, 0, sizeof(o));
	o.client.proto = proto;
	o.client.helo_name = "bench.example.org";
	o.client.connect_timeout_ms = 10000;
	o.client.reply_timeout_ms = 600000;
	if (res == NULL)
		exit(1);
	for (k = 0; k < nl; k++)
		if ((l[k] = gw_lmtp_new(&o)) == NULL)
			exit(1);
	while ((i = atomic_fetch_add(&next_msg, 1)) < messages) {
		gw_lmtp_body b;
		gw_lmtp_txn t;
		size_t len, n = 0;
		char *body = make_body(size_of(i), &len);
		for (k = 0; k < ndomains; k++) {
			snprintf(addr[k], sizeof(addr[k]), "u%ld@%s", i, domains[k]);
			memset(&rc[k], 0, sizeof(rc[k]));
			rc[k].addr = addr[k];
		}
		for (k = 0; k < nl; k++) {
			size_t nr = per_domain ? 1 : ndomains;
			gw_lmtp_body_memory(&b, body, len);
			memset(&t, 0, sizeof(t));
			t.sender = "bench@example.org";
			t.rcpts = per_domain ? &rc[k] : rc;
			t.nrcpts = nr;
			t.body = &b;
			gw_lmtp_send(l[k], &hop, &t, res);
			n += gw_lmtp_count(res, nr, GW_LMTP_DELIVERED);
		}
		atomic_fetch_add(&delivered, (long)n);
		atomic_fetch_add(&failed, (long)(ndomains - n));
		free(body);
	}
	for (k = 0; k < nl; k++)
		gw_lmtp_free(&l[k]);
	free(res);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *target = NULL, *e;
	long sessions = 1, s;
	pthread_t *t;
	int64_t t0;
	int ch;

	while ((ch = getopt(argc, argv, "LDt:s:m:z:")) != -1) {
		switch (ch) {
		case 'D':
			per_domain = 1;
			break;
		case 'L':
			proto = GW_PROTO_LMTP;
			break;
		case 't':
			target = optarg;
			break;
		case 's':
			sessions = atol(optarg);
			break;
		case 'm':
			messages = atol(optarg);
			break;
		case 'z':
			fixed_size = atol(optarg);
			break;
		default:
			goto usage;
		}
	}
	for (; optind < argc && ndomains < DOMAINS_MAX; optind++)
		domains[ndomains++] = argv[optind];
	if (target == NULL || ndomains == 0 || sessions < 1 || messages < 1 ||
	    gw_nexthop_parse(target, strlen(target), &hop, &e) != 0)
		goto usage;
	t = calloc((size_t)sessions, sizeof(*t));
	t0 = gw_now_ms();
	for (s = 0; s < sessions; s++)
		pthread_create(&t[s], NULL, session, NULL);
	for (s = 0; s < sessions; s++)
		pthread_join(t[s], NULL);
	printf("messages=%ld recipients=%ld delivered=%ld failed=%ld seconds=%.3f\n", messages,
	       messages * (long)ndomains, atomic_load(&delivered), atomic_load(&failed),
	       (double)(gw_now_ms() - t0) / 1000.0);
	free(t);
	return atomic_load(&failed) > 0;
usage:
	fprintf(stderr,
		"usage: bench_lmtpd_load [-L] [-D] -t NEXTHOP -s SESSIONS -m MESSAGES [-z SIZE] DOMAIN...\n");
	return 64;
}
