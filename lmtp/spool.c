/*
 * spool.c - a message body in memory up to a bound, then in an unlinked file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool.h"

void gwl_spool_init(gwl_spool *s, const char *dir, size_t mem_limit, long long max_size)
{
	memset(s, 0, sizeof(*s));
	s->dir = dir != NULL && dir[0] ? dir : "/tmp";
	s->mem_limit = mem_limit;
	s->max_size = max_size;
	s->fd = -1;
}

/* A file nobody else can open: O_TMPFILE where the file system has it, else a name removed at once. */
static int spool_open_file(const char *dir)
{
	char path[PATH_MAX];
	int fd;

#ifdef O_TMPFILE
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
#endif
	if ((size_t)snprintf(path, sizeof(path), "%s/gw-lmtpd.XXXXXX", dir) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Move what is in memory to a new file; from now on everything goes there. */
static int spool_spill(gwl_spool *s)
{
	int fd = spool_open_file(s->dir);

	if (fd < 0)
		return -1;
	if (write_all(fd, s->mem, s->mem_len) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	s->fd = fd;
	free(s->mem);
	s->mem = NULL;
	s->mem_len = s->mem_cap = 0;
	return 0;
}

int gwl_spool_append(gwl_spool *s, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	if (s->max_size >= 0 && (long long)len > s->max_size - s->size) {
		errno = EMSGSIZE;
		return -1;
	}
	if (s->fd < 0 && s->mem_len + len > s->mem_limit && spool_spill(s) < 0)
		return -1;
	if (s->fd >= 0) {
		if (write_all(s->fd, data, len) < 0)
			return -1;
	} else {
		if (s->mem_len + len > s->mem_cap) {
			size_t cap = s->mem_cap ? s->mem_cap : 4096;
			char *m;
			while (cap < s->mem_len + len)
				cap *= 2;
			if (cap > s->mem_limit)
				cap = s->mem_limit;
			if ((m = realloc(s->mem, cap)) == NULL)
				return -1;
			s->mem = m;
			s->mem_cap = cap;
		}
		memcpy(s->mem + s->mem_len, data, len);
		s->mem_len += len;
	}
	s->size += (long long)len;
	return 0;
}

int gwl_spool_on_disk(const gwl_spool *s)
{
	return s->fd >= 0;
}

long long gwl_spool_size(const gwl_spool *s)
{
	return s->size;
}

static ssize_t reader_read(void *ctx, char *buf, size_t len)
{
	gwl_spool_reader *r = ctx;
	const gwl_spool *s = r->spool;
	long long left = s->size - r->pos;
	ssize_t n;

	if (left <= 0)
		return 0;
	if ((long long)len > left)
		len = (size_t)left;
	if (s->fd < 0) {
		memcpy(buf, s->mem + r->pos, len);
		n = (ssize_t)len;
	} else {
		do
			n = pread(s->fd, buf, len, (off_t)r->pos);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return -1;
		if (n == 0) { /* the file is shorter than what we wrote: never read it as the end */
			errno = EIO;
			return -1;
		}
	}
	r->pos += n;
	return n;
}

static int reader_rewind(void *ctx)
{
	((gwl_spool_reader *)ctx)->pos = 0;
	return 0;
}

void gwl_spool_reader_init(gwl_spool_reader *r, const gwl_spool *s)
{
	r->spool = s;
	r->pos = 0;
	gw_lmtp_body_callback(&r->body, reader_read, reader_rewind, r, s->size);
}

void gwl_spool_reset(gwl_spool *s)
{
	free(s->mem);
	if (s->fd >= 0)
		close(s->fd);
	gwl_spool_init(s, s->dir, s->mem_limit, s->max_size);
}
