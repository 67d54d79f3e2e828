/*
 * buf.c - bounded growable byte buffers (see gw/buf.h).
 *
 * Capacity doubles as text is appended but never beyond limit + 1 (the spare
 * byte holds the terminating NUL), so a peer that sends without end gets
 * EMSGSIZE, not our memory. Every failure leaves the buffer as it was, so a
 * caller may report the error and keep what it had. Sizes are checked for
 * size_t overflow before any arithmetic that could wrap.
 *
 * Does not defend against: concurrent use of one buffer, or a gw_buf that was
 * never initialised.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/buf.h"

/* The first allocation; small enough for a reply line, large enough to skip early reallocs. */
#define BUF_MIN_CAP 64

void gw_buf_init(gw_buf *b, size_t limit)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->limit = limit;
}

/* Make room for n more bytes plus the NUL; 0, or -1 with errno and b unchanged. */
static int buf_reserve(gw_buf *b, size_t n)
{
	size_t need, max_cap, cap;
	char *p;

	if (b->len > b->limit || n > b->limit - b->len) {
		errno = EMSGSIZE;
		return -1;
	}
	/* len + n <= limit, so only the +1 for the NUL can wrap (limit == SIZE_MAX). */
	if (b->len + n == SIZE_MAX) {
		errno = ENOMEM;
		return -1;
	}
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	max_cap = b->limit == SIZE_MAX ? SIZE_MAX : b->limit + 1;
	cap = b->cap > 0 ? b->cap : BUF_MIN_CAP;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	if (cap > max_cap)
		cap = max_cap;
	p = realloc(b->data, cap);
	if (p == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (b->data == NULL)
		p[0] = '\0';
	b->data = p;
	b->cap = cap;
	return 0;
}

int gw_buf_append(gw_buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int gw_buf_puts(gw_buf *b, const char *s)
{
	return gw_buf_append(b, s, strlen(s));
}

int gw_buf_putc(gw_buf *b, int c)
{
	char ch = (char)c;

	return gw_buf_append(b, &ch, 1);
}

int gw_buf_vprintf(gw_buf *b, const char *fmt, va_list ap)
{
	va_list aq;
	size_t room;
	int n;

	/* First try the spare room we already have; most lines fit. */
	room = b->data != NULL ? b->cap - b->len : 0;
	va_copy(aq, ap);
	n = vsnprintf(room > 0 ? b->data + b->len : NULL, room, fmt, aq);
	va_end(aq);
	if (n < 0) {
		if (b->data != NULL)
			b->data[b->len] = '\0';
		return -1;
	}
	if ((size_t)n < room) {
		/* cap never exceeds limit + 1, so text that fits is within the limit. */
		b->len += (size_t)n;
		return 0;
	}
	/* A truncated attempt may have overwritten our NUL; restore it before anything can fail. */
	if (b->data != NULL)
		b->data[b->len] = '\0';
	if (buf_reserve(b, (size_t)n) < 0)
		return -1;
	va_copy(aq, ap);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, aq);
	va_end(aq);
	if (n < 0 || (size_t)n >= b->cap - b->len) {
		/* The arguments changed under us (or libc failed); keep the old contents. */
		b->data[b->len] = '\0';
		if (n >= 0)
			errno = EINVAL;
		return -1;
	}
	b->len += (size_t)n;
	return 0;
}

int gw_buf_printf(gw_buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = gw_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void gw_buf_consume(gw_buf *b, size_t n)
{
	if (b->data == NULL)
		return;
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	b->data[b->len] = '\0';
}

void gw_buf_reset(gw_buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

const char *gw_buf_cstr(const gw_buf *b)
{
	return b->data != NULL ? b->data : "";
}

void gw_buf_free(gw_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}
