/*
 * gw/buf.h - bounded growable byte buffers.
 *
 * Every buffer is given its size limit when it is initialised; appending past
 * the limit fails with errno EMSGSIZE instead of growing. The contents are
 * always NUL-terminated (one spare byte beyond len) so text can be used as a
 * C string. Knows nothing about mail.
 *
 * Does not defend against: concurrent use of one buffer from several threads.
 */
#ifndef GW_BUF_H
#define GW_BUF_H

#include "gw/export.h"

#include <stdarg.h>
#include <stddef.h>

typedef struct gw_buf {
	char *data;   /* NULL until the first append */
	size_t len;   /* bytes in use, not counting the terminating NUL */
	size_t cap;   /* bytes allocated */
	size_t limit; /* the most len may ever be */
} gw_buf;

/* Initialise an empty buffer that may hold at most limit bytes. Allocates nothing. */
GW_API void gw_buf_init(gw_buf *b, size_t limit);
/* Append n bytes. 0 on success; -1 with errno EMSGSIZE (over limit) or ENOMEM, buffer unchanged. */
GW_API int gw_buf_append(gw_buf *b, const void *p, size_t n);
/* Append a NUL-terminated string. Same results as gw_buf_append. */
GW_API int gw_buf_puts(gw_buf *b, const char *s);
/* Append one byte. */
GW_API int gw_buf_putc(gw_buf *b, int c);
/* Append printf-style text. Same results as gw_buf_append. */
GW_API int gw_buf_printf(gw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
GW_API int gw_buf_vprintf(gw_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Remove the first n bytes (all when n >= len). */
GW_API void gw_buf_consume(gw_buf *b, size_t n);
/* Empty the buffer, keeping its memory and limit. */
GW_API void gw_buf_reset(gw_buf *b);
/* The contents as a C string; "" for a buffer never written. */
GW_API const char *gw_buf_cstr(const gw_buf *b);
/* Release memory; the buffer is empty and may be reused with the same limit. */
GW_API void gw_buf_free(gw_buf *b);

#endif
