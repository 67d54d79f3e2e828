/*
 * probe.c - ask a mail server whether it would take a recipient, using libgw.
 *
 *   probe NEXTHOP RECIPIENT      e.g.  probe [127.0.0.1]:25 user@example.com
 *
 * Connects, says EHLO, sends MAIL FROM:<> and RCPT TO:<RECIPIENT>, prints the
 * RCPT reply, and quits. Exit 0 for 2xx, 1 for 5xx, 75 (EX_TEMPFAIL) for 4xx
 * or any failure to ask. An example of linking libgw through pkg-config:
 *
 *   cc -o probe probe.c $(pkg-config --cflags --libs libgw)
 */
#include <stdio.h>
#include <string.h>

#include <gw/gw.h>

int main(int argc, char **argv)
{
	gw_nexthop hop;
	gw_path rcpt;
	gw_reply reply;
	const char *error;
	char arg[GW_PATH_MAX + 3];
	gw_client_opts opts = {.helo_name = "probe.example", .reply_timeout_ms = 10000, .deadline_ms = 20000};
	gw_client *client;
	gw_status st;

	if (argc != 3) {
		fprintf(stderr, "usage: probe NEXTHOP RECIPIENT\n");
		return 64;
	}
	if (gw_nexthop_parse(argv[1], strlen(argv[1]), &hop, &error) < 0) {
		fprintf(stderr, "probe: %s: %s\n", argv[1], error);
		return 64;
	}
	/* Refuse a bad recipient here: it must never reach the server. */
	if (gw_path_parse(argv[2], strlen(argv[2]), GW_PATH_BARE, &rcpt, &error) < 0) {
		fprintf(stderr, "probe: %s: %s\n", argv[2], error);
		return 64;
	}
	arg[0] = '<';
	gw_mailbox_format(&rcpt.mbox, arg + 1, sizeof(arg) - 2);
	strcat(arg, ">");

	client = gw_client_new(&opts);
	if (client == NULL)
		return 75;
	st = gw_client_open(client, &hop, &reply);
	if (st == GW_OK)
		st = gw_client_mail(client, "<>", &reply);
	if (st == GW_OK && gw_reply_class(reply.code) == 2)
		st = gw_client_rcpt(client, arg, &reply);
	if (st != GW_OK) {
		printf("%s: cannot ask: %s at %s (%s)\n", argv[2], gw_status_str(st),
		       gw_stage_str(gw_client_stage(client)), gw_client_error(client));
		gw_client_free(&client);
		return 75;
	}
	printf("%s: %d %s %s\n", argv[2], reply.code, reply.enh, reply.text);
	gw_client_quit(client);
	gw_client_free(&client);
	switch (gw_reply_class(reply.code)) {
	case 2:
		return 0;
	case 5:
		return 1;
	default:
		return 75;
	}
}
