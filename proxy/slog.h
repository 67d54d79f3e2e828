/*
 * slog.h - the session log: every command and reply a session relays, in
 * the notation of the operators' transparent-proxy paper, one line each with
 * a wall-clock timestamp in milliseconds:
 *
 *   2026-12-02T01:09:07.123Z 4f1c0a2b -> RCPT TO:<a@example.com>
 *   2026-12-02T01:09:07.135Z 4f1c0a2b <- 250 2.1.5 Ok [12ms]
 *
 *   <-  reply to the client          ->  command to the destination
 *   |<  reply consumed by the proxy  |>  command from the proxy itself
 *   >|  command from the client held (answered) by the proxy
 *   ==  the session's summary line (one per session)
 *
 * A reply line ends with the milliseconds the destination took, when it came
 * from one. Peer text is cut and escaped (gw_log_sanitize): a peer cannot
 * forge lines. Lines go to a file or, without one, to the daemon's log as
 * event "s". For a file, whole lines of every session are gathered and
 * appended in batches (one write() each, so lines never interleave): a
 * session calls gwp_slog_flush() before it answers or waits for its client,
 * so whatever a client has seen is logged by then; lines of a session that
 * waits on its destination are written within 100 ms by the log's own
 * thread; close writes the rest.
 *
 * Does not defend against: a full disk (lines are dropped); log rotation
 * other than by SIGHUP (the file is opened again on reload); a crash
 * (the lines of the last 100 ms may be lost).
 */
#ifndef GWP_SLOG_H
#define GWP_SLOG_H

#include <stddef.h>

#include "gw/reply.h"

#define GWP_SLOG_TEXT_MAX 200 /* bytes of peer text kept per line */

typedef struct gwp_slog gwp_slog;

/* A log appending to path, or to the daemon's log when path is NULL or "". NULL with err. */
gwp_slog *gwp_slog_open(const char *path, char *err, size_t errlen);
/* Write the lines gathered so far, and close (NULL: nothing). */
void gwp_slog_close(gwp_slog **l);
/* Write the lines gathered so far (of every session) now. */
void gwp_slog_flush(gwp_slog *l);
/* write() calls made so far: lines are written in batches, not one call each. */
size_t gwp_slog_writes(gwp_slog *l);

/* One line: dir is one of the notation's arrows; text[0..len) is sanitised; ms < 0: no delay. */
void gwp_slog_line(gwp_slog *l, const char *sid, const char *dir, const char *text, size_t len, long ms);
/* A reply as one line: "250 2.1.5 first line" plus " (+N lines)" for a multi-line reply. */
void gwp_slog_reply(gwp_slog *l, const char *sid, const char *dir, const gw_reply *r, long ms);
/*
 * A summary value as key=VALUE parses: v itself when it is a non-empty run of printable characters without
 * spaces, double quotes or backslashes; otherwise v in double quotes with '"' and '\\' escaped by a
 * backslash. Returns out.
 */
const char *gwp_slog_value(char *out, size_t outlen, const char *v);
/* The summary line ("==" and printf-style KEY=VALUE fields, not sanitised: callers sanitise peer text). */
void gwp_slog_summary(gwp_slog *l, const char *sid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
