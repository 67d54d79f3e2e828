/*
 * lmtp_body.c - message body sources for gw/lmtp.h: a buffer, a file
 * descriptor or a read callback, each with a size (when known) and a rewind
 * (so a fallback gateway can be sent the same bytes again).
 *
 * An fd is rewound with lseek() to the offset it had when the body was made;
 * a pipe cannot be rewound (callers spool it to a file first, as gw-send does).
 *
 * Does not defend against: a file that changes while it is being sent; the
 * size is taken once, from fstat().
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw/lmtp.h"

static int mem_rewind(void *ctx)
{
	gw_body_mem *m = ctx;

	m->off = 0;
	return 0;
}

void gw_lmtp_body_memory(gw_lmtp_body *b, const char *data, size_t len)
{
	memset(b, 0, sizeof(*b));
	b->fd = -1;
	gw_body_from_memory(&b->src, &b->mem, data, len);
	b->rewind = mem_rewind;
	b->rewind_ctx = &b->mem;
	b->size = (long long)b->mem.len;
}

static int fd_rewind(void *ctx)
{
	gw_lmtp_body *b = ctx;

	return lseek(b->fd, b->fd_start, SEEK_SET) == b->fd_start ? 0 : -1;
}

int gw_lmtp_body_fd(gw_lmtp_body *b, int fd)
{
	struct stat st;

	memset(b, 0, sizeof(*b));
	b->fd = fd;
	b->size = -1;
	gw_body_from_fd(&b->src, &b->fd);
	if (fstat(fd, &st) < 0)
		return -1;
	if (S_ISREG(st.st_mode)) {
		b->fd_start = lseek(fd, 0, SEEK_CUR);
		if (b->fd_start >= 0) {
			b->rewind = fd_rewind;
			b->rewind_ctx = b;
			b->size = st.st_size > b->fd_start ? (long long)(st.st_size - b->fd_start) : 0;
		}
	}
	return 0;
}

void gw_lmtp_body_callback(gw_lmtp_body *b, ssize_t (*read_fn)(void *ctx, char *buf, size_t len),
			   int (*rewind_fn)(void *ctx), void *ctx, long long size)
{
	memset(b, 0, sizeof(*b));
	b->fd = -1;
	b->src.read = read_fn;
	b->src.ctx = ctx;
	b->rewind = rewind_fn;
	b->rewind_ctx = ctx;
	b->size = size < 0 ? -1 : size;
}
