/*
 * bench_reply.c - reply-parser throughput against a raw line scan of the same bytes.
 *
 * Builds a stream of typical server replies (single-line 250s with enhanced
 * codes, multi-line EHLO answers, 5xx rejections), parses it whole and in
 * 64-byte chunks, and scans the same bytes with memchr for line ends (the
 * least any parser must do). Prints MB/s, replies/s and the parser/scan
 * ratio; both are measured in the same run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/buf.h"
#include "gw/reply.h"
#include "gw/time.h"

static const char *samples[] = {
    "250 2.1.0 Ok\r\n",
    "250 2.1.5 Ok\r\n",
    "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table\r\n",
    "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
    "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
    "250 CHUNKING\r\n",
    "354 End data with <CR><LF>.<CR><LF>\r\n",
    "250 2.0.0 Ok: queued as 4Xk2Lz0bQqz9v\r\n",
    "451 4.3.0 Error: queue file write error\r\n",
    "221 2.0.0 Bye\r\n",
};

static size_t parse_all(const char *data, size_t len, size_t chunk)
{
	static gw_reply_parser p;
	static gw_reply r;
	size_t off = 0, n = 0;

	gw_reply_parser_init(&p, 0, 0);
	while (off < len) {
		size_t want = chunk && len - off > chunk ? chunk : len - off, used;
		const char *err;
		int rc = gw_reply_parse(&p, data + off, want, &used, &r, &err);

		if (rc < 0) {
			fprintf(stderr, "bench_reply: parse error: %s\n", err);
			exit(1);
		}
		off += used;
		n += rc == 1;
	}
	return n;
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

int main(int argc, char **argv)
{
	size_t target = argc > 1 ? strtoul(argv[1], NULL, 10) : 64u << 20;
	int rounds = 5;
	gw_buf stream;
	size_t replies = 0, lines = 0, nsamples = sizeof(samples) / sizeof(samples[0]);
	int64_t best_parse = -1, best_chunk = -1, best_scan = -1;

	gw_buf_init(&stream, target + 4096);
	for (size_t i = 0; stream.len < target; i++)
		if (gw_buf_puts(&stream, samples[i % nsamples]) < 0)
			break;
	for (int r = 0; r < rounds; r++) {
		int64_t t0 = gw_now_ms();
		replies = parse_all(stream.data, stream.len, 0);
		int64_t t1 = gw_now_ms();
		parse_all(stream.data, stream.len, 64);
		int64_t t2 = gw_now_ms();
		lines = scan_all(stream.data, stream.len);
		int64_t t3 = gw_now_ms();
		if (best_parse < 0 || t1 - t0 < best_parse)
			best_parse = t1 - t0;
		if (best_chunk < 0 || t2 - t1 < best_chunk)
			best_chunk = t2 - t1;
		if (best_scan < 0 || t3 - t2 < best_scan)
			best_scan = t3 - t2;
	}
	if (best_parse < 1)
		best_parse = 1;
	if (best_chunk < 1)
		best_chunk = 1;
	if (best_scan < 1)
		best_scan = 1;
	double mb = (double)stream.len / (1 << 20);
	printf("reply_parser bytes=%zu replies=%zu lines=%zu\n", stream.len, replies, lines);
	printf("reply_parser whole:     %8.1f MB/s %10.0f replies/s\n", mb * 1000 / best_parse,
	       replies * 1000.0 / best_parse);
	printf("reply_parser 64B chunks:%8.1f MB/s %10.0f replies/s\n", mb * 1000 / best_chunk,
	       replies * 1000.0 / best_chunk);
	printf("memchr line scan:       %8.1f MB/s\n", mb * 1000 / best_scan);
	printf("ratio reply_parser/memchr_scan = %.3f (whole), %.3f (64B chunks)\n",
	       (double)best_scan / best_parse, (double)best_scan / best_chunk);
	gw_buf_free(&stream);
	return 0;
}
