/*
 * bench_lmtp.c - deliver messages with the LMTP library (gw/lmtp.h), as
 * Postfix's smtp-source does, so bench/run can time both against one sink.
 *
 *   bench_lmtp [-L] [-d] -m COUNT -l LENGTH -r RCPTS -t NEXTHOP
 *   bench_lmtp [-L] -b MEGABYTES -t NEXTHOP
 *   bench_lmtp [-L] -n RCPTS -t NEXTHOP
 *
 * The first form takes smtp-source's flags: -L speak LMTP, -d keep the
 * connection for the next message, -m messages, -l message length in bytes,
 * -r recipients per message. Exit 1 if any recipient was not delivered.
 * The second sends one message of MEGABYTES, generated on the fly by a read
 * callback (never in memory), and prints the peak RSS (VmHWM, ru_maxrss)
 * before and after: the library must stream it in bounded memory.
 * The third sends one 1 KB message to RCPTS recipients in one transaction
 * (up to GW_LMTP_RCPTS_MAX) and prints the process's peak RSS: bench/run
 * runs it for 10 and 10,000 recipients and prints the cost per recipient.
 *
 * Does not defend against: a sink that refuses the messages (counted as
 * failures, the timing is then meaningless).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "gw/lmtp.h"

#define RCPTS_MAX 100

static char *make_message(size_t len, size_t *len_r)
{
	static const char head[] = "From: <bench@example.com>\r\nTo: <rcpt@example.com>\r\n"
				   "Subject: bench\r\n\r\n";
	char *m = malloc(len + sizeof(head) + 82);
	size_t off = sizeof(head) - 1;

	if (m == NULL)
		exit(1);
	memcpy(m, head, off);
	while (off < len) {
		size_t line = len - off > 78 ? 78 : len - off;

		memset(m + off, 'x', line);
		off += line;
		memcpy(m + off, "\r\n", 2);
		off += 2;
	}
	*len_r = off;
	return m;
}

/* A body of total bytes of 78-character lines, made as it is read. */
typedef struct gen {
	unsigned long long total, sent;
} gen;

static ssize_t gen_read(void *ctx, char *buf, size_t len)
{
	gen *g = ctx;
	size_t n = 0;

	while (n + 80 <= len && g->sent < g->total) {
		memset(buf + n, 'y', 78);
		memcpy(buf + n + 78, "\r\n", 2);
		n += 80;
		g->sent += 80;
	}
	return (ssize_t)n;
}

static int gen_rewind(void *ctx)
{
	((gen *)ctx)->sent = 0;
	return 0;
}

/* Peak resident set size in kB from /proc (VmHWM), or ru_maxrss when /proc is missing. */
static long peak_rss_kb(long *maxrss_r)
{
	struct rusage ru;
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmHWM:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	if (f != NULL)
		fclose(f);
	getrusage(RUSAGE_SELF, &ru);
	*maxrss_r = ru.ru_maxrss;
	return kb >= 0 ? kb : ru.ru_maxrss;
}

static int big_message(gw_lmtp *l, const gw_nexthop *hop, unsigned long mb)
{
	gw_lmtp_rcpt rcpts[3] = {
	    {.addr = "big1@example.com"}, {.addr = "big2@example.com"}, {.addr = "big3@example.com"}};
	gw_lmtp_result res[3];
	gen g = {(unsigned long long)mb * 1024 * 1024, 0};
	gw_lmtp_body body;
	gw_lmtp_txn txn;
	long before, after, rb, ra;

	gw_lmtp_body_callback(&body, gen_read, gen_rewind, &g, (long long)g.total);
	memset(&txn, 0, sizeof(txn));
	txn.sender = "bench@example.com";
	txn.rcpts = rcpts;
	txn.nrcpts = 3;
	txn.body = &body;
	before = peak_rss_kb(&rb);
	gw_lmtp_send(l, hop, &txn, res);
	after = peak_rss_kb(&ra);
	printf("%lu MB message, 3 recipients: %zu delivered; peak RSS before %ld kB, after %ld kB, growth "
	       "%ld kB "
	       "(ru_maxrss %ld -> %ld kB); target < 5120 kB: %s\n",
	       mb, gw_lmtp_count(res, 3, GW_LMTP_DELIVERED), before, after, after - before, rb, ra,
	       after - before < 5120 ? "met" : "MISSED");
	return gw_lmtp_count(res, 3, GW_LMTP_DELIVERED) == 3 && g.sent == g.total ? 0 : 1;
}

/* One transaction to n recipients: what the memory costs per recipient. */
static int many_rcpts(gw_lmtp *l, const gw_nexthop *hop, size_t n)
{
	gw_lmtp_rcpt *rcpts = calloc(n, sizeof(*rcpts));
	gw_lmtp_result *res = calloc(n, sizeof(*res));
	char *addrs = malloc(n * 32), *msg;
	size_t k, msglen, ok;
	gw_lmtp_body body;
	gw_lmtp_txn txn;
	long peak, rb;

	if (rcpts == NULL || res == NULL || addrs == NULL)
		return 1;
	for (k = 0; k < n; k++) {
		snprintf(addrs + k * 32, 32, "rcpt%zu@example.com", k + 1);
		rcpts[k].addr = addrs + k * 32;
	}
	msg = make_message(1000, &msglen);
	gw_lmtp_body_memory(&body, msg, msglen);
	memset(&txn, 0, sizeof(txn));
	txn.sender = "bench@example.com";
	txn.rcpts = rcpts;
	txn.nrcpts = n;
	txn.body = &body;
	gw_lmtp_send(l, hop, &txn, res);
	ok = gw_lmtp_count(res, n, GW_LMTP_DELIVERED);
	peak = peak_rss_kb(&rb);
	printf("%zu recipients in one transaction: %zu delivered; peak RSS %ld kB (results %zu bytes each)\n",
	       n, ok, peak, sizeof(*res));
	free(msg);
	free(addrs);
	free(rcpts);
	free(res);
	return ok == n ? 0 : 1;
}

int main(int argc, char **argv)
{
	gw_lmtp_opts opts = {.client = {.helo_name = "bench.example", .reply_timeout_ms = 30000}};
	unsigned long count = 1, nrcpt = 1, big = 0, many = 0, i, failed = 0;
	size_t length = 1000, msglen, k;
	int reuse = 0, c;
	const char *target = NULL, *err;
	gw_lmtp_rcpt rcpts[RCPTS_MAX];
	gw_lmtp_result res[RCPTS_MAX];
	char addrs[RCPTS_MAX][32];
	gw_lmtp_body body;
	gw_lmtp_txn txn;
	gw_nexthop hop;
	gw_lmtp *l;
	char *msg;

	while ((c = getopt(argc, argv, "Ldm:l:r:t:b:n:")) != -1) {
		switch (c) {
		case 'L':
			opts.client.proto = GW_PROTO_LMTP;
			break;
		case 'd':
			reuse = 1;
			break;
		case 'm':
			count = strtoul(optarg, NULL, 10);
			break;
		case 'l':
			length = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			nrcpt = strtoul(optarg, NULL, 10);
			break;
		case 't':
			target = optarg;
			break;
		case 'b':
			big = strtoul(optarg, NULL, 10);
			break;
		case 'n':
			many = strtoul(optarg, NULL, 10);
			break;
		default:
			return 64;
		}
	}
	if (target == NULL || nrcpt == 0 || nrcpt > RCPTS_MAX || many > GW_LMTP_RCPTS_MAX ||
	    gw_nexthop_parse(target, strlen(target), &hop, &err) < 0) {
		fprintf(stderr, "usage: bench_lmtp [-L] [-d] -m COUNT -l LENGTH -r RCPTS -t NEXTHOP\n"
				"       bench_lmtp [-L] -b MEGABYTES -t NEXTHOP\n"
				"       bench_lmtp [-L] -n RCPTS -t NEXTHOP\n");
		return 64;
	}
	l = gw_lmtp_new(&opts);
	if (l == NULL)
		return 1;
	if (big > 0 || many > 0) {
		int rc = big > 0 ? big_message(l, &hop, big) : many_rcpts(l, &hop, many);

		gw_lmtp_free(&l);
		return rc;
	}
	msg = make_message(length, &msglen);
	for (k = 0; k < nrcpt; k++) {
		snprintf(addrs[k], sizeof(addrs[k]), "%zurcpt@example.com", k + 1);
		memset(&rcpts[k], 0, sizeof(rcpts[k]));
		rcpts[k].addr = addrs[k];
	}
	memset(&txn, 0, sizeof(txn));
	txn.sender = "bench@example.com";
	txn.rcpts = rcpts;
	txn.nrcpts = nrcpt;
	txn.body = &body;
	for (i = 0; i < count; i++) {
		gw_lmtp_body_memory(&body, msg, msglen);
		gw_lmtp_send(l, &hop, &txn, res);
		failed += nrcpt - gw_lmtp_count(res, nrcpt, GW_LMTP_DELIVERED);
		if (!reuse)
			gw_lmtp_close(l);
	}
	gw_lmtp_free(&l);
	free(msg);
	if (failed > 0)
		fprintf(stderr, "bench_lmtp: %lu recipients not delivered\n", failed);
	return failed > 0;
}
