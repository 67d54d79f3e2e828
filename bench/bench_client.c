/*
 * bench_client.c - deliver messages with the libgw client engine, as
 * Postfix's smtp-source does, so bench/run can time both against one sink.
 *
 *   bench_client [-L] [-d] -m COUNT -l LENGTH -r RCPTS -t [127.0.0.1]:PORT
 *
 * The flags mean what they mean to smtp-source: -L speak LMTP, -d keep the
 * connection for the next message (RSET between), -m messages, -l message
 * length in bytes, -r recipients per message. Exit 1 if any message was not
 * accepted.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/client.h"

static char *make_message(size_t len)
{
	static const char head[] = "From: <bench@example.com>\r\nTo: <rcpt@example.com>\r\n"
				   "Subject: bench\r\n\r\n";
	char *m = malloc(len + sizeof(head) + 2);
	size_t off = 0;

	if (m == NULL)
		exit(1);
	memcpy(m, head, sizeof(head) - 1);
	off = sizeof(head) - 1;
	while (off < len) {
		size_t line = len - off > 78 ? 78 : len - off;
		memset(m + off, 'x', line);
		off += line;
		memcpy(m + off, "\r\n", 2);
		off += 2;
	}
	m[off] = 0;
	return m;
}

int main(int argc, char **argv)
{
	gw_client_opts opts = {.helo_name = "bench.example", .reply_timeout_ms = 30000};
	unsigned long count = 1, rcpts = 1;
	size_t length = 1000;
	int reuse = 0, c, failed = 0;
	const char *target = NULL, *err;
	gw_nexthop hop;

	while ((c = getopt(argc, argv, "Ldm:l:r:t:")) != -1) {
		switch (c) {
		case 'L':
			opts.proto = GW_PROTO_LMTP;
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
			rcpts = strtoul(optarg, NULL, 10);
			break;
		case 't':
			target = optarg;
			break;
		default:
			return 64;
		}
	}
	if (target == NULL || rcpts == 0 || rcpts > 1000 ||
	    gw_nexthop_parse(target, strlen(target), &hop, &err) < 0) {
		fprintf(stderr, "usage: bench_client [-L] [-d] -m COUNT -l LENGTH -r RCPTS -t NEXTHOP\n");
		return 64;
	}

	char *msg = make_message(length);
	size_t msglen = strlen(msg);
	char(*args)[64] = calloc(rcpts, sizeof(*args));
	const char **argp = calloc(rcpts, sizeof(*argp));
	gw_reply *rr = calloc(rcpts, sizeof(*rr)), *fin = calloc(rcpts, sizeof(*fin));
	gw_reply mail, data;
	gw_client *cl = gw_client_new(&opts);

	if (args == NULL || argp == NULL || rr == NULL || fin == NULL || cl == NULL)
		return 1;
	for (unsigned long i = 0; i < rcpts; i++) {
		snprintf(args[i], sizeof(args[i]), "<%lurcpt@example.com>", i + 1);
		argp[i] = args[i];
	}
	for (unsigned long m = 0; m < count; m++) {
		gw_body body;
		gw_body_mem mem;
		size_t got = 0, accepted = 0;
		gw_status st = GW_OK;

		/* A completed transaction needs no RSET before the next MAIL. */
		if (!gw_client_is_open(cl))
			st = gw_client_open(cl, &hop, NULL);
		if (st == GW_OK)
			st = gw_client_envelope(cl, "<bench@example.com>", argp, rcpts, &mail, rr, 1, &data);
		for (unsigned long i = 0; i < rcpts; i++)
			accepted += gw_reply_class(rr[i].code) == 2;
		if (st == GW_OK && data.code == 354) {
			gw_body_from_memory(&body, &mem, msg, msglen);
			st = gw_client_body(cl, &body, fin, opts.proto == GW_PROTO_LMTP ? accepted : 1, &got);
		}
		if (st != GW_OK || got == 0 || gw_reply_class(fin[0].code) != 2) {
			failed++;
			fprintf(stderr, "bench_client: message %lu: %s at %s %s\n", m, gw_status_str(st),
				gw_stage_str(gw_client_stage(cl)), gw_client_error(cl));
		}
		if (!reuse && gw_client_is_open(cl))
			gw_client_quit(cl);
		else if (st != GW_OK || gw_reply_class(data.code) != 3)
			gw_client_close(cl);
	}
	if (gw_client_is_open(cl))
		gw_client_quit(cl);
	gw_client_free(&cl);
	free(msg);
	free(args);
	free(argp);
	free(rr);
	free(fin);
	return failed ? 1 : 0;
}
