/*
 * gw/export.h - GW_API marks the declarations that libgw.so exports.
 *
 * libgw is built with -fvisibility=hidden, so a function or variable is part
 * of the shared library's ABI only if its public declaration carries GW_API.
 * Internal helpers (net, tls, probe pool, route health, ...) stay hidden and
 * are reached by the tests through the static library instead.
 * test/sh/exported_symbols.sh checks that what libgw.so exports is exactly
 * what the installed headers declare.
 */
#ifndef GW_EXPORT_H
#define GW_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define GW_API __attribute__((visibility("default")))
#else
#define GW_API
#endif

#endif
