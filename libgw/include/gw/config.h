/*
 * gw/config.h - "key = value" configuration files described by one table.
 *
 * A program describes every option once, in a gw_option table (name, type,
 * default, one-line doc, where it is stored in the program's own struct).
 * gw_config_load() applies the defaults, then the file: '#' starts a comment
 * line, blank lines are ignored, a value runs to the end of the line with
 * surrounding blanks removed and may be quoted ("..."). An unknown key, a
 * repeated key or a bad value is an error naming file:line. Every daemon's -n
 * uses this to check its configuration and exit. Knows nothing about mail.
 *
 * Storage by type: GW_OPT_STRING and GW_OPT_LIST -> char * (malloc'd, freed by
 * gw_config_free); GW_OPT_INT, GW_OPT_DURATION (milliseconds), GW_OPT_SIZE
 * (bytes) -> long; GW_OPT_BOOL and GW_OPT_ENUM (index into enum_values) -> int.
 *
 * Does not defend against: option tables whose offsets do not match the struct.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include "gw/export.h"

#include <stddef.h>
#include <stdio.h>

typedef enum gw_opt_type {
	GW_OPT_STRING,   /* any text */
	GW_OPT_LIST,     /* text: items separated by commas and/or blanks */
	GW_OPT_INT,      /* decimal integer within [min, max] */
	GW_OPT_BOOL,     /* yes/no, true/false, on/off, 1/0 */
	GW_OPT_DURATION, /* number with unit ms, s, m, h, d (no unit: seconds), within [min, max] ms */
	GW_OPT_SIZE,     /* number with unit k, m, g (powers of 1024; none: bytes), within [min, max] */
	GW_OPT_ENUM      /* one of enum_values, case-insensitive */
} gw_opt_type;

typedef struct gw_option {
	const char *name;
	gw_opt_type type;
	const char *def;                /* default as it would be written in the file; NULL: empty/0 */
	const char *doc;                /* one line */
	size_t offset;                  /* offsetof(struct, field) */
	long min, max;                  /* bounds for INT, DURATION, SIZE; both 0: no bounds */
	const char *const *enum_values; /* NULL-terminated, for GW_OPT_ENUM */
} gw_option;

/* Tables end with an entry whose name is NULL. */

/* Set every option of conf to its default. 0 ok; -1 with err filled (a bad default is a bug). */
GW_API int gw_config_defaults(const gw_option *table, void *conf, char *err, size_t errlen);
/* Defaults, then the file at path. 0 ok; -1 with err "path:line: message" (or "path: strerror"). */
GW_API int gw_config_load(const gw_option *table, void *conf, const char *path, char *err, size_t errlen);
/* Defaults, then text (name is used in messages in place of a path). */
GW_API int gw_config_parse(const gw_option *table, void *conf, const char *text, size_t len, const char *name,
			   char *err, size_t errlen);
/* Set one option from its text form, as if read from a file. 0 ok; -1 with err (no file:line). */
GW_API int gw_config_set(const gw_option *table, void *conf, const char *key, const char *value, char *err,
			 size_t errlen);
/* Free the strings of conf; numeric fields are left as they are. */
GW_API void gw_config_free(const gw_option *table, void *conf);
/* Write the effective configuration as "key = value" lines. */
GW_API void gw_config_dump(const gw_option *table, const void *conf, FILE *out);
/* Write "key (type, default X): doc" lines, one per option. */
GW_API void gw_config_describe(const gw_option *table, FILE *out);

/*
 * The line where key is set in the file at path (0 when it is not, or the
 * file cannot be read): for messages about values checked after the table.
 */
GW_API unsigned gw_config_key_line(const char *path, const char *key);

/* Split a GW_OPT_LIST value into items: calls fn for each; stops and returns fn's nonzero result. */
GW_API int gw_config_list_foreach(const char *list, int (*fn)(const char *item, size_t len, void *ctx),
				  void *ctx);

#endif
