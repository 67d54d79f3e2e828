/*
 * lmtp_send.c - deliver a message file over LMTP through a list of gateways
 * with libgw, and print what happened to each recipient.
 *
 *   lmtp_send FILE SENDER GATEWAY[,GATEWAY...] RECIPIENT...
 *   e.g. lmtp_send msg.eml alice@example.com [10.0.0.5]:24,[10.0.0.6]:24 bob@example.com
 *
 * Recipients that a gateway accepts (2xx) or refuses (5xx) are done; the
 * others are offered to the next gateway. Exit 0 when every recipient was
 * delivered, 75 (EX_TEMPFAIL) when any is left for a later try, 1 otherwise.
 * An example of linking libgw through pkg-config:
 *
 *   cc -o lmtp_send lmtp_send.c $(pkg-config --cflags --libs libgw)
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gw/lmtp.h>

/* Called once per recipient with its final result. */
static void on_result(void *ctx, size_t i, const gw_lmtp_rcpt *rcpt, const gw_lmtp_result *r)
{
	(void)ctx;
	/* Reply text comes from the server: print only its first line, and only printable bytes. */
	printf("%zu %s %s %d %s via %s:", i, rcpt->addr, gw_lmtp_state_str(r->state), r->code,
	       r->enh[0] ? r->enh : "-", r->gateway[0] ? r->gateway : "-");
	for (const char *t = r->text; *t != '\0' && *t != '\n'; t++)
		putchar(*t >= 0x20 && *t < 0x7f ? *t : '?');
	putchar('\n');
}

int main(int argc, char **argv)
{
	gw_lmtp_opts opts = {.client = {.proto = GW_PROTO_LMTP,
					.helo_name = "lmtp-send.example",
					.reply_timeout_ms = 30000,
					.deadline_ms = 600000}};
	gw_nexthop hops[16];
	size_t nhops = 0, n, i;
	gw_lmtp_rcpt *rcpts;
	gw_lmtp_result *res;
	gw_lmtp_body body;
	gw_lmtp_txn txn;
	gw_lmtp *l;
	int fd, rc = 0;

	if (argc < 5) {
		fprintf(stderr, "usage: lmtp_send FILE SENDER GATEWAY[,GATEWAY...] RECIPIENT...\n");
		return 64;
	}
	for (char *s = strtok(argv[3], ","); s != NULL && nhops < 16; s = strtok(NULL, ",")) {
		const char *err;

		if (gw_nexthop_parse(s, strlen(s), &hops[nhops], &err) < 0) {
			fprintf(stderr, "lmtp_send: %s: %s\n", s, err);
			return 64;
		}
		nhops++;
	}
	/* A regular file: the library reads it in chunks and rewinds it for the next gateway. */
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || gw_lmtp_body_fd(&body, fd) < 0 || body.rewind == NULL) {
		fprintf(stderr, "lmtp_send: %s: not a readable regular file\n", argv[1]);
		return 66;
	}
	n = (size_t)argc - 4;
	rcpts = calloc(n, sizeof(*rcpts));
	res = calloc(n, sizeof(*res));
	l = gw_lmtp_new(&opts);
	if (rcpts == NULL || res == NULL || l == NULL)
		return 71;
	for (i = 0; i < n; i++)
		rcpts[i].addr = argv[4 + i];
	memset(&txn, 0, sizeof(txn));
	txn.sender = argv[2];
	txn.rcpts = rcpts;
	txn.nrcpts = n;
	txn.body = &body;
	txn.on_result = on_result;

	gw_lmtp_send_fallback(l, hops, nhops, &txn, res);

	if (gw_lmtp_count(res, n, GW_LMTP_TEMPFAIL) + gw_lmtp_count(res, n, GW_LMTP_UNCERTAIN) > 0)
		rc = 75;
	else if (gw_lmtp_count(res, n, GW_LMTP_PERMFAIL) > 0)
		rc = 1;
	gw_lmtp_free(&l);
	free(rcpts);
	free(res);
	close(fd);
	return rc;
}
