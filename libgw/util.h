/*
 * util.h - small helpers shared inside libgw (not installed, not public).
 * Knows nothing about mail.
 */
#ifndef GW_UTIL_H
#define GW_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* strdup(s), or NULL for NULL; sets *failed on ENOMEM so callers check once after several copies. */
char *gwu_strdup_opt(const char *s, int *failed);
/* vsnprintf into err when err is not NULL and errlen > 0. */
void gwu_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A printable copy of at most max bytes of s[0..len) for messages ('?' for other bytes, "..." when cut). */
const char *gwu_excerpt(const char *s, size_t len, size_t max, char *buf, size_t size);
/* FNV-1a of s[0..len) with a final mix: table buckets use the low bits, which plain FNV leaves weak. */
uint32_t gwu_hash(const char *s, size_t len);

#endif
