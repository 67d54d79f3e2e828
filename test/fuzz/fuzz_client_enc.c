/*
 * fuzz_client_enc.c - libFuzzer target for the body's wire form
 * (libgw/client_enc.c).
 *
 * The first byte picks DATA or BDAT and a chunk size; the rest is the body.
 * Encoded whole and in chunks, the output must be the same; a NUL must be
 * refused both ways; otherwise the output has only CRLF line ends, no line
 * over 998 octets (a stuffed dot not counted), with DATA no line that starts
 * with a single dot, and ends with CRLF.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client_enc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Encode in[0..n) in pieces of step bytes into a new buffer; NULL when refused (a NUL). */
static char *encode(const char *in, size_t n, int dot, size_t step, size_t *len_r)
{
	char *out = malloc(CL_ENC_ROOM(n) + 2);
	size_t off = 0, len = 0;
	cl_enc e;

	if (out == NULL)
		abort();
	cl_enc_init(&e, dot);
	while (off < n) {
		size_t k = n - off < step ? n - off : step;
		ssize_t w = cl_enc_run(&e, in + off, k, out + len, NULL);

		if (w < 0) {
			free(out);
			return NULL;
		}
		if ((size_t)w > CL_ENC_ROOM(k))
			abort();
		len += (size_t)w;
		off += k;
	}
	len += cl_enc_finish(&e, out + len);
	*len_r = len;
	return out;
}

static void check_wire(const char *w, size_t n, int dot)
{
	size_t i, start = 0;

	if (n > 0 && (n < 2 || w[n - 2] != '\r' || w[n - 1] != '\n'))
		abort();
	for (i = 0; i < n; i++) {
		if (w[i] == '\0' || (w[i] == '\r' && (i + 1 == n || w[i + 1] != '\n')) ||
		    (w[i] == '\n' && (i == 0 || w[i - 1] != '\r')))
			abort();
		if (w[i] == '\n') {
			size_t len = i - 1 - start;

			if (dot && len > 0 && w[start] == '.') {
				if (len < 2 || w[start + 1] != '.')
					abort();
				len--;
			}
			if (len > CL_ENC_LINE_MAX)
				abort();
			start = i + 1;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data + 1;
	size_t n, step, la = 0, lb = 0;
	char *a, *b;
	int dot;

	if (size == 0)
		return 0;
	dot = data[0] & 1;
	step = (size_t)(data[0] >> 1) + 1;
	n = size - 1;
	a = encode(in, n, dot, n > 0 ? n : 1, &la);
	b = encode(in, n, dot, step, &lb);
	if ((a == NULL) != (b == NULL) || (a == NULL) != (memchr(in, '\0', n) != NULL))
		abort();
	if (a != NULL) {
		if (la != lb || memcmp(a, b, la) != 0)
			abort();
		check_wire(a, la, dot);
	}
	free(a);
	free(b);
	return 0;
}
