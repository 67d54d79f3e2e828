/*
 * spool.h - one message body for gw-lmtpd, held in memory up to a bound and
 * then in an unlinked temporary file, so nothing of it outlives the LMTP
 * transaction and a large message never sits in memory.
 *
 * The body arrives in chunks (already dot-unstuffed by the server engine),
 * is read back any number of times (once per destination, each from the
 * start), and is gone when the spool is reset or freed: the file never had a
 * name another process could open (O_TMPFILE, else mkstemp + unlink at once).
 *
 * Does not defend against: a full disk (an append fails and the caller
 * answers 4xx); a reader and a writer at the same time (the daemon writes the
 * whole body before any destination reads it).
 */
#ifndef GWL_SPOOL_H
#define GWL_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

#include "gw/lmtp.h"

typedef struct gwl_spool {
	const char *dir;    /* where the file goes (not owned) */
	size_t mem_limit;   /* bytes kept in memory before the file is used */
	long long max_size; /* the most the body may grow to; over it appends fail with EMSGSIZE */
	char *mem;          /* the first bytes while they fit in memory */
	size_t mem_len, mem_cap;
	int fd;         /* -1 until the body outgrows memory */
	long long size; /* bytes appended */
} gwl_spool;

/* An empty spool: memory up to mem_limit, then a file in dir; at most max_size bytes. */
void gwl_spool_init(gwl_spool *s, const char *dir, size_t mem_limit, long long max_size);
/* Append len bytes. 0, or -1 with errno (EMSGSIZE over max_size, ENOSPC, ENOMEM, ...). */
int gwl_spool_append(gwl_spool *s, const void *data, size_t len);
/* 1 when the body went to a file. */
int gwl_spool_on_disk(const gwl_spool *s);
/* Bytes appended so far. */
long long gwl_spool_size(const gwl_spool *s);
/*
 * A reader over the whole body for one delivery, rewindable, with its size.
 * Each reader has its own position (pread), so several destinations may read
 * at once. The reader points into r: do not move it while it is in use.
 */
typedef struct gwl_spool_reader {
	const gwl_spool *spool;
	long long pos;
	gw_lmtp_body body;
} gwl_spool_reader;
void gwl_spool_reader_init(gwl_spool_reader *r, const gwl_spool *s);
/* Forget the body (memory freed, file closed, so its blocks go back to the disk); ready for the next. */
void gwl_spool_reset(gwl_spool *s);

#endif
