/*
 * fuzz_reply.c - libFuzzer target for the reply parser.
 *
 * The input is a byte stream from a peer. It is parsed whole and then in
 * chunks whose sizes come from the input's own hash, with the default limits
 * and with small ones: every split must give the same replies and the same
 * error, and every reply must satisfy the header's promises.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw/reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static void check_reply(const gw_reply *r)
{
	const char *arg;
	size_t alen;

	if (gw_reply_class(r->code) == 0 || r->code % 100 / 10 > 5)
		abort();
	if (r->text_len >= sizeof r->text || strlen(r->text) != r->text_len || r->nlines == 0)
		abort();
	if (memchr(r->enh, '\0', sizeof r->enh) == NULL ||
	    (r->enh[0] != '\0' && r->enh[0] != '0' + r->code / 100))
		abort();
	if (gw_reply_has_keyword(r, "SIZE", &arg, &alen) && arg != NULL &&
	    (arg < r->text || arg + alen > r->text + r->text_len))
		abort();
}

/* Transcript hash of parsing data in chunks; split 0 means whole. */
static uint64_t run(const uint8_t *data, size_t size, size_t max_line, size_t max_reply, uint64_t split)
{
	static gw_reply_parser p;
	static gw_reply r;
	uint64_t h = 14695981039346656037ull, rng = split;
	size_t off = 0;

	gw_reply_parser_init(&p, max_line, max_reply);
	while (off < size) {
		size_t n = size - off, coff = 0;
		uint8_t *chunk;

		if (split != 0) {
			rng = rng * 6364136223846793005ull + 1442695040888963407ull;
			n = 1 + (size_t)(rng >> 33) % (n < 16 ? n : 16);
		}
		/* Own allocation per chunk, so ASan sees reads past it. */
		chunk = malloc(n);
		if (chunk == NULL)
			abort();
		memcpy(chunk, data + off, n);
		while (coff < n) {
			size_t used = 0;
			const char *err = NULL;
			int rc = gw_reply_parse(&p, (const char *)chunk + coff, n - coff, &used, &r, &err);

			if (rc < 0) {
				free(chunk);
				return mix(h, err, strlen(err));
			}
			if (used == 0 || used > n - coff)
				abort();
			if (rc == 1) {
				check_reply(&r);
				h = mix(h, &r.code, sizeof r.code);
				h = mix(h, r.enh, strlen(r.enh) + 1);
				h = mix(h, &r.nlines, sizeof r.nlines);
				h = mix(h, r.text, r.text_len + 1);
			} else if (used != n - coff) {
				abort();
			}
			coff += used;
		}
		free(chunk);
		off += n;
	}
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[][2] = {{0, 0}, {64, 256}};
	uint64_t seed = mix(14695981039346656037ull, data, size) | 1;
	size_t i;

	for (i = 0; i < sizeof limits / sizeof limits[0]; i++) {
		uint64_t whole = run(data, size, limits[i][0], limits[i][1], 0);

		if (run(data, size, limits[i][0], limits[i][1], seed) != whole)
			abort();
		if (run(data, size, limits[i][0], limits[i][1], seed * 31 + 7) != whole)
			abort();
	}
	return 0;
}
