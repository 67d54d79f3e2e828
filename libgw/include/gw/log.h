/*
 * gw/log.h - one line per event, with key=value fields, to syslog or stderr.
 *
 * gw_log(GW_LOG_INFO, "rcpt", "client=%s verdict=%s", ...) writes
 * "rcpt client=... verdict=..." at that level. Text that came from a peer must
 * go through gw_log_sanitize first: it keeps a short printable prefix and
 * escapes the rest, so a hostile peer cannot forge log lines or flood the log.
 * Knows nothing about mail.
 *
 * Does not defend against: callers that pass unsanitised peer text as fields.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

#include "gw/export.h"

#include <stddef.h>

enum { GW_LOG_ERR = 3, GW_LOG_WARNING = 4, GW_LOG_NOTICE = 5, GW_LOG_INFO = 6, GW_LOG_DEBUG = 7 };

/* The longest prefix of peer text that gw_log_sanitize keeps by default. */
#define GW_LOG_PEER_MAX 100

/* Where lines go: GW_LOG_STDERR or GW_LOG_SYSLOG (facility LOG_MAIL). */
enum { GW_LOG_STDERR = 0, GW_LOG_SYSLOG = 1 };

/* Set the program name, destination and the least important level written. Thread-safe to call once at start.
 */
GW_API void gw_log_open(const char *ident, int dest, int max_level);
/* Change the least important level written. */
GW_API void gw_log_set_level(int max_level);
/* Parse "err", "warning", "notice", "info", "debug" (any case) into GW_LOG_*; -1 if unknown. */
GW_API int gw_log_level_parse(const char *name);
/* The name of a GW_LOG_* level ("err" ... "debug"); "unknown" for any other number. */
GW_API const char *gw_log_level_str(int level);
/* Redirect every line to fn (tests); NULL restores the destination set by gw_log_open. */
GW_API void gw_log_set_sink(void (*fn)(int level, const char *line, void *ctx), void *ctx);
/*
 * 1 when a line at level would be written, else 0: callers skip preparing
 * (sanitising, formatting) what gw_log would drop anyway.
 */
GW_API int gw_log_enabled(int level);
/* Write "event fields" at level; fields is printf-style. Lines are cut at 1000 bytes. */
GW_API void gw_log(int level, const char *event, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Copy at most max bytes of peer text into dst as printable ASCII: bytes outside
 * 0x20-0x7e become "\xHH", backslash becomes "\\", and "..." marks a cut.
 * Always NUL-terminates when size > 0. Returns strlen(dst).
 */
GW_API size_t gw_log_sanitize(char *dst, size_t size, const char *src, size_t len, size_t max);

#endif
