/*
 * bench_server.c - server engine throughput against a raw line scan of the same bytes.
 *
 * Two client streams, each fed to one session in 16 KB reads (what a socket
 * read gives) with a driver that answers every MAIL, RCPT and end of data at
 * once and drains the output after each read:
 *  - commands: pipelined transactions (MAIL with SIZE, three RCPTs with
 *    NOTIFY, RSET): commands per second;
 *  - bodies: whole transactions with DATA, message sizes drawn from a real
 *    gateway's distribution (design.md: 3% under 1 KB, 69% 1-10 KB, 27%
 *    10-100 KB, 1% 100 KB-1 MB), text lines of 76 bytes, some dot-stuffed:
 *    MB/s of client input.
 * The reference is memchr over the same bytes counting line ends (the least
 * any line-based reader must do); both are measured in the same run and the
 * engine/scan ratio is printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/buf.h"
#include "gw/server.h"
#include "gw/time.h"

#define READ_SIZE 16384

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static size_t message_size(void)
{
	unsigned p = (unsigned)(rnd() % 1000);

	if (p < 30)
		return 300 + rnd() % 700;
	if (p < 720)
		return 1024 + rnd() % (9 * 1024);
	if (p < 990)
		return 10240 + rnd() % (90 * 1024);
	return 102400 + rnd() % (900 * 1024);
}

static void add_body(gw_buf *b, size_t size)
{
	static const char text[] =
	    "The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.";
	size_t n = 0;

	while (n < size) {
		/* One line in forty starts with a dot, stuffed as a client must. */
		if (rnd() % 40 == 0) {
			gw_buf_puts(b, "..");
			n += 1;
		}
		gw_buf_append(b, text, 76);
		gw_buf_append(b, "\r\n", 2);
		n += 78;
	}
}

typedef struct counts {
	size_t commands, messages;
	uint64_t body;
} counts;

/* Drive one session over the stream; returns what it saw. */
static counts drive(const char *data, size_t len)
{
	gw_srv_config c;
	gw_srv *s;
	gw_srv_event ev;
	counts k = {0, 0, 0};
	size_t off = 0;

	gw_srv_config_init(&c, GW_SRV_SMTP, "mx.example");
	c.max_rcpts = 1000;
	s = gw_srv_new(&c);
	if (s == NULL)
		exit(1);
	gw_srv_start(s);
	while (off < len) {
		size_t n = len - off < READ_SIZE ? len - off : READ_SIZE;
		size_t took = gw_srv_feed(s, data + off, n);
		gw_buf *o;

		off += took;
		for (;;) {
			gw_srv_event_type t = gw_srv_next(s, &ev);

			if (t == GW_SRV_EV_NONE)
				break;
			if (t == GW_SRV_EV_MAIL || t == GW_SRV_EV_RCPT) {
				k.commands++;
				gw_srv_reply(s, 250, NULL, "Ok");
			} else if (t == GW_SRV_EV_BODY) {
				k.body += ev.len;
			} else if (t == GW_SRV_EV_DATA_END) {
				k.messages++;
				gw_srv_reply(s, 250, NULL, "queued");
			}
		}
		o = gw_srv_output(s);
		gw_buf_consume(o, o->len);
		if (took == 0 && gw_srv_waiting(s) == GW_SRV_WAIT_CLOSED)
			break;
	}
	gw_srv_free(&s);
	return k;
}

static size_t scan_all(const char *data, size_t len)
{
	const char *p = data, *end = data + len;
	size_t n = 0;

	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p++;
		n++;
	}
	return n;
}

/* Best of rounds, in ms (at least 1). */
static void measure(const char *data, size_t len, int rounds, int64_t *engine_r, int64_t *scan_r, counts *k_r,
		    size_t *lines_r)
{
	int64_t best_e = -1, best_s = -1;

	for (int r = 0; r < rounds; r++) {
		int64_t t0 = gw_now_ms();
		*k_r = drive(data, len);
		int64_t t1 = gw_now_ms();
		*lines_r = scan_all(data, len);
		int64_t t2 = gw_now_ms();

		if (best_e < 0 || t1 - t0 < best_e)
			best_e = t1 - t0;
		if (best_s < 0 || t2 - t1 < best_s)
			best_s = t2 - t1;
	}
	*engine_r = best_e < 1 ? 1 : best_e;
	*scan_r = best_s < 1 ? 1 : best_s;
}

int main(int argc, char **argv)
{
	size_t target = argc > 1 ? strtoul(argv[1], NULL, 10) : 64u << 20;
	int rounds = 5;
	gw_buf cmds, bodies;
	int64_t te, ts;
	counts k;
	size_t lines, i;

	gw_buf_init(&cmds, target + (1 << 20));
	gw_buf_puts(&cmds, "EHLO client.example\r\n");
	for (i = 0; cmds.len < target / 4; i++) {
		gw_buf_printf(&cmds, "MAIL FROM:<sender%zu@example.com> SIZE=%zu\r\n", i % 100,
			      1000 + i % 5000);
		for (int r = 0; r < 3; r++)
			gw_buf_printf(&cmds, "RCPT TO:<rcpt%zu@dest%d.example.net> NOTIFY=FAILURE\r\n",
				      i % 1000, r);
		gw_buf_puts(&cmds, "RSET\r\n");
	}
	gw_buf_puts(&cmds, "QUIT\r\n");

	gw_buf_init(&bodies, target + (2 << 20));
	gw_buf_puts(&bodies, "EHLO client.example\r\n");
	while (bodies.len < target) {
		gw_buf_puts(&bodies,
			    "MAIL FROM:<sender@example.com>\r\nRCPT TO:<rcpt@example.net>\r\nDATA\r\n");
		add_body(&bodies, message_size());
		gw_buf_puts(&bodies, ".\r\n");
	}
	gw_buf_puts(&bodies, "QUIT\r\n");

	measure(cmds.data, cmds.len, rounds, &te, &ts, &k, &lines);
	double mb = (double)cmds.len / (1 << 20);
	/* Every line is a command: MAIL/RCPT go to the driver, RSET and EHLO the engine answers itself. */
	printf("server_engine commands: bytes=%zu commands=%zu (MAIL/RCPT events %zu)\n", cmds.len, lines,
	       k.commands);
	printf("server_engine commands: %10.0f commands/s %8.1f MB/s\n", lines * 1000.0 / te, mb * 1000 / te);
	printf("memchr line scan:       %10.0f lines/s    %8.1f MB/s\n", lines * 1000.0 / ts, mb * 1000 / ts);
	printf("ratio server_engine/memchr_scan (commands) = %.3f\n", (double)ts / te);

	measure(bodies.data, bodies.len, rounds, &te, &ts, &k, &lines);
	mb = (double)bodies.len / (1 << 20);
	printf("server_engine bodies: bytes=%zu messages=%zu body_bytes=%llu\n", bodies.len, k.messages,
	       (unsigned long long)k.body);
	printf("server_engine bodies:   %8.1f MB/s %10.0f messages/s\n", mb * 1000 / te,
	       k.messages * 1000.0 / te);
	printf("memchr line scan:       %8.1f MB/s\n", mb * 1000 / ts);
	printf("ratio server_engine/memchr_scan (bodies) = %.3f\n", (double)ts / te);
	gw_buf_free(&cmds);
	gw_buf_free(&bodies);
	return 0;
}
