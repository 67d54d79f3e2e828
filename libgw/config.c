/*
 * config.c - "key = value" files described by one gw_option table.
 *
 * Values go through one function per type, for defaults, files and
 * gw_config_set() alike, so a default is checked exactly as a file value is.
 * A value is replaced only once it parsed, so after any error the struct
 * still holds a complete, consistent configuration that gw_config_free() can
 * release. Strings are never NULL after gw_config_defaults(): an option
 * without a default holds "".
 *
 * Syntax: '#' starts a comment only as the first non-blank of a line (so a
 * value may contain '#'); "key = value", "key=value", "key =" (empty value);
 * a value may be quoted, with \" and \\ as the only escapes. Keys are
 * case-sensitive; an unknown key gets a "did you mean" from the table.
 * Lines over 4096 bytes, NUL bytes and control characters in values are
 * refused.
 *
 * gw_config_defaults() overwrites string pointers without freeing them: it
 * expects a fresh struct (zeroed or uninitialised) or one that went through
 * gw_config_free().
 *
 * Does not defend against: option tables whose offsets or types do not match
 * the struct (a table is trusted code, not input).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw/config.h"
#include "util.h"

#define LINE_MAX_BYTES 4096
#define EXCERPT_MAX    40
#define CONF_FILE_MAX  (16L * 1024 * 1024)

static char **str_field(const gw_option *o, void *conf)
{
	return (char **)(void *)((char *)conf + o->offset);
}

static long *long_field(const gw_option *o, void *conf)
{
	return (long *)(void *)((char *)conf + o->offset);
}

static int *int_field(const gw_option *o, void *conf)
{
	return (int *)(void *)((char *)conf + o->offset);
}

static int is_blank(int c)
{
	return c == ' ' || c == '\t';
}

/* Unsigned decimal digits at s[*i..len) into *v; -1 on no digits or overflow past LONG_MAX. */
static int parse_digits(const char *s, size_t len, size_t *i, long *v)
{
	size_t start = *i;
	long acc = 0;

	while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
		int d = s[*i] - '0';
		if (acc > (LONG_MAX - d) / 10)
			return -1;
		acc = acc * 10 + d;
		(*i)++;
	}
	if (*i == start)
		return -1;
	*v = acc;
	return 0;
}

typedef struct unit {
	const char *name;
	long mult;
} unit;

static const unit duration_units[] = {{"ms", 1},       {"s", 1000}, {"m", 60000}, {"h", 3600000},
				      {"d", 86400000}, {"", 1000},  {NULL, 0}};
static const unit size_units[] = {
    {"k", 1024L}, {"m", 1024L * 1024}, {"g", 1024L * 1024 * 1024}, {"", 1}, {NULL, 0}};

/* "<digits><unit>" -> value * unit. 0 ok; -1 with why set. */
static int parse_scaled(const char *s, size_t len, const unit *units, long *v_r, const char **why)
{
	size_t i = 0, k;
	long v;

	if (len == 0) {
		*why = "empty value";
		return -1;
	}
	if (s[0] == '-') {
		*why = "negative value";
		return -1;
	}
	if (s[0] == '+')
		i++;
	if (i >= len || s[i] < '0' || s[i] > '9') {
		*why = "not a number";
		return -1;
	}
	if (parse_digits(s, len, &i, &v) != 0) {
		*why = "number too large";
		return -1;
	}
	for (k = 0; units[k].name != NULL; k++) {
		size_t ul = strlen(units[k].name);
		if (ul == len - i && strncasecmp(s + i, units[k].name, ul) == 0) {
			if (v > LONG_MAX / units[k].mult) {
				*why = "number too large";
				return -1;
			}
			*v_r = v * units[k].mult;
			return 0;
		}
	}
	*why = units == duration_units ? "bad unit (use ms, s, m, h or d)" : "bad unit (use k, m or g)";
	return -1;
}

static int parse_int(const char *s, size_t len, long *v_r, const char **why)
{
	size_t i = 0;
	int neg = 0;
	long v;

	if (len == 0) {
		*why = "empty value";
		return -1;
	}
	if (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-';
		i++;
	}
	if (i >= len || s[i] < '0' || s[i] > '9') {
		*why = "not a number";
		return -1;
	}
	/* LONG_MIN is not reachable this way; no option needs it. */
	if (parse_digits(s, len, &i, &v) != 0) {
		*why = "number too large";
		return -1;
	}
	if (i != len) {
		*why = "not a number";
		return -1;
	}
	*v_r = neg ? -v : v;
	return 0;
}

/* Write a duration in ms with the largest unit that divides it exactly. */
static void format_duration(long ms, char *buf, size_t size)
{
	static const unit u[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {NULL, 0}};
	size_t k;

	for (k = 0; u[k].name != NULL; k++)
		if (ms != 0 && ms % u[k].mult == 0) {
			snprintf(buf, size, "%ld%s", ms / u[k].mult, u[k].name);
			return;
		}
	snprintf(buf, size, ms == 0 ? "0s" : "%ldms", ms);
}

static void format_size(long b, char *buf, size_t size)
{
	static const unit u[] = {{"g", 1024L * 1024 * 1024}, {"m", 1024L * 1024}, {"k", 1024L}, {NULL, 0}};
	size_t k;

	for (k = 0; u[k].name != NULL; k++)
		if (b != 0 && b % u[k].mult == 0) {
			snprintf(buf, size, "%ld%s", b / u[k].mult, u[k].name);
			return;
		}
	snprintf(buf, size, "%ld", b);
}

static void format_bound(const gw_option *o, long v, char *buf, size_t size)
{
	if (o->type == GW_OPT_DURATION)
		format_duration(v, buf, size);
	else if (o->type == GW_OPT_SIZE)
		format_size(v, buf, size);
	else
		snprintf(buf, size, "%ld", v);
}

static const char *const bool_true[] = {"yes", "true", "on", "1", NULL};
static const char *const bool_false[] = {"no", "false", "off", "0", NULL};

static int word_in(const char *s, size_t len, const char *const *words)
{
	size_t k;

	for (k = 0; words[k] != NULL; k++)
		if (strlen(words[k]) == len && strncasecmp(s, words[k], len) == 0)
			return (int)k;
	return -1;
}

static const char *type_name(gw_opt_type t)
{
	switch (t) {
	case GW_OPT_STRING:
		return "string";
	case GW_OPT_LIST:
		return "list";
	case GW_OPT_INT:
		return "integer";
	case GW_OPT_BOOL:
		return "boolean";
	case GW_OPT_DURATION:
		return "duration";
	case GW_OPT_SIZE:
		return "size";
	case GW_OPT_ENUM:
		return "enum";
	}
	return "?";
}

/*
 * Store the (already unquoted) value v[0..len) into o's field. The field
 * changes only on success. 0 ok; -1 with err (no file:line: the caller adds it).
 */
static int set_value(const gw_option *o, void *conf, const char *v, size_t len, char *err, size_t errlen)
{
	char ex[EXCERPT_MAX + 8];
	const char *why = NULL;
	size_t i;
	long n;
	int k;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			gwu_set_err(err, errlen, "%s: control character in value", o->name);
			return -1;
		}
	}
	switch (o->type) {
	case GW_OPT_STRING:
	case GW_OPT_LIST: {
		char *s = malloc(len + 1), **f = str_field(o, conf);
		if (s == NULL) {
			gwu_set_err(err, errlen, "%s: out of memory", o->name);
			return -1;
		}
		memcpy(s, v, len);
		s[len] = '\0';
		free(*f);
		*f = s;
		return 0;
	}
	case GW_OPT_BOOL:
		if ((k = word_in(v, len, bool_true)) >= 0) {
			*int_field(o, conf) = 1;
			return 0;
		}
		if ((k = word_in(v, len, bool_false)) >= 0) {
			*int_field(o, conf) = 0;
			return 0;
		}
		gwu_set_err(err, errlen, "%s: bad boolean '%s' (use yes or no)", o->name,
			    gwu_excerpt(v, len, EXCERPT_MAX, ex, sizeof ex));
		return -1;
	case GW_OPT_ENUM: {
		char list[256];
		size_t off = 0;
		if (o->enum_values != NULL && (k = word_in(v, len, o->enum_values)) >= 0) {
			*int_field(o, conf) = k;
			return 0;
		}
		list[0] = '\0';
		for (i = 0; o->enum_values != NULL && o->enum_values[i] != NULL && off < sizeof list; i++) {
			int w =
			    snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", o->enum_values[i]);
			if (w < 0)
				break;
			off += (size_t)w;
		}
		gwu_set_err(err, errlen, "%s: bad value '%s' (one of: %s)", o->name,
			    gwu_excerpt(v, len, EXCERPT_MAX, ex, sizeof ex), list);
		return -1;
	}
	case GW_OPT_INT:
		if (parse_int(v, len, &n, &why) != 0)
			goto bad_number;
		break;
	case GW_OPT_DURATION:
		if (parse_scaled(v, len, duration_units, &n, &why) != 0)
			goto bad_number;
		break;
	case GW_OPT_SIZE:
		if (parse_scaled(v, len, size_units, &n, &why) != 0)
			goto bad_number;
		break;
	default:
		gwu_set_err(err, errlen, "%s: unknown option type %d", o->name, (int)o->type);
		return -1;
	}
	if ((o->min != 0 || o->max != 0) && (n < o->min || n > o->max)) {
		char lo[32], hi[32], got[32];
		format_bound(o, o->min, lo, sizeof lo);
		format_bound(o, o->max, hi, sizeof hi);
		format_bound(o, n, got, sizeof got);
		gwu_set_err(err, errlen, "%s: %s out of range [%s, %s]", o->name, got, lo, hi);
		return -1;
	}
	*long_field(o, conf) = n;
	return 0;
bad_number:
	gwu_set_err(err, errlen, "%s: %s: '%s' (want %s)", o->name, why,
		    gwu_excerpt(v, len, EXCERPT_MAX, ex, sizeof ex),
		    o->type == GW_OPT_INT    ? "an integer"
		    : o->type == GW_OPT_SIZE ? "a size like 512, 64k, 10m, 1g"
					     : "a duration like 500ms, 10s, 5m, 1h, 2d");
	return -1;
}

/*
 * Unquote raw[0..len) (surrounding blanks already removed) into out (at
 * least len bytes). 0 ok with *olen; -1 with why.
 */
static int unquote(const char *raw, size_t len, char *out, size_t *olen, const char **why)
{
	size_t i, o = 0;

	if (len == 0 || raw[0] != '"') {
		memcpy(out, raw, len);
		*olen = len;
		return 0;
	}
	for (i = 1; i < len; i++) {
		if (raw[i] == '"')
			break;
		if (raw[i] == '\\') {
			if (i + 1 >= len || (raw[i + 1] != '"' && raw[i + 1] != '\\')) {
				*why = "bad escape in quoted value (only \\\" and \\\\)";
				return -1;
			}
			i++;
		}
		out[o++] = raw[i];
	}
	if (i >= len) {
		*why = "missing closing quote";
		return -1;
	}
	if (i + 1 != len) {
		*why = "text after closing quote";
		return -1;
	}
	*olen = o;
	return 0;
}

static size_t table_size(const gw_option *table)
{
	size_t n = 0;

	while (table[n].name != NULL)
		n++;
	return n;
}

/* Levenshtein distance, case-insensitive; big when either side is long (no suggestion then). */
static size_t edit_distance(const char *a, size_t la, const char *b)
{
	size_t lb = strlen(b), prev[65], cur[65], i, j;

	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		prev[j] = j;
	for (i = 1; i <= la; i++) {
		cur[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
			size_t best = prev[j - 1] + cost;
			if (prev[j] + 1 < best)
				best = prev[j] + 1;
			if (cur[j - 1] + 1 < best)
				best = cur[j - 1] + 1;
			cur[j] = best;
		}
		memcpy(prev, cur, (lb + 1) * sizeof *prev);
	}
	return prev[lb];
}

/* The option named key[0..klen), or NULL with err naming it and maybe a close match. */
static const gw_option *find_option(const gw_option *table, const char *key, size_t klen, char *err,
				    size_t errlen)
{
	const gw_option *best = NULL;
	size_t k, bestd = SIZE_MAX;
	char ex[EXCERPT_MAX + 8];

	for (k = 0; table[k].name != NULL; k++)
		if (strlen(table[k].name) == klen && memcmp(table[k].name, key, klen) == 0)
			return &table[k];
	for (k = 0; table[k].name != NULL; k++) {
		size_t d = edit_distance(key, klen, table[k].name);
		if (d < bestd) {
			bestd = d;
			best = &table[k];
		}
	}
	gwu_excerpt(key, klen, EXCERPT_MAX, ex, sizeof ex);
	/* d < klen: "ab" is two edits from any two-letter name, which is no hint at all. */
	if (best != NULL && bestd <= 2 && bestd < klen)
		gwu_set_err(err, errlen, "unknown key '%s' (did you mean '%s'?)", ex, best->name);
	else
		gwu_set_err(err, errlen, "unknown key '%s'", ex);
	return NULL;
}

int gw_config_defaults(const gw_option *table, void *conf, char *err, size_t errlen)
{
	size_t k;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	/* First make every string freeable, so a bad default leaves nothing dangling. */
	for (k = 0; table[k].name != NULL; k++)
		if (table[k].type == GW_OPT_STRING || table[k].type == GW_OPT_LIST)
			*str_field(&table[k], conf) = NULL;
	for (k = 0; table[k].name != NULL; k++) {
		const gw_option *o = &table[k];
		const char *def = o->def;
		char e[256];

		if (def == NULL) {
			if (o->type == GW_OPT_STRING || o->type == GW_OPT_LIST)
				def = "";
			else if (o->type == GW_OPT_BOOL || o->type == GW_OPT_ENUM) {
				*int_field(o, conf) = 0;
				continue;
			} else {
				*long_field(o, conf) = 0;
				continue;
			}
		}
		if (o->type == GW_OPT_BOOL || o->type == GW_OPT_ENUM)
			*int_field(o, conf) = 0;
		else if (o->type != GW_OPT_STRING && o->type != GW_OPT_LIST)
			*long_field(o, conf) = 0;
		if (set_value(o, conf, def, strlen(def), e, sizeof e) != 0) {
			gwu_set_err(err, errlen, "bad default: %s", e);
			return -1;
		}
	}
	return 0;
}

int gw_config_parse(const gw_option *table, void *conf, const char *text, size_t len, const char *name,
		    char *err, size_t errlen)
{
	unsigned *seen = NULL, line = 0;
	char *value = NULL;
	size_t pos = 0;
	int rc = -1;

	if (name == NULL)
		name = "(config)";
	if (gw_config_defaults(table, conf, err, errlen) != 0)
		return -1;
	seen = calloc(table_size(table) + 1, sizeof *seen);
	value = malloc(LINE_MAX_BYTES + 1);
	if (seen == NULL || value == NULL) {
		gwu_set_err(err, errlen, "%s: out of memory", name);
		goto out;
	}
	if (text == NULL)
		len = 0;
	while (pos < len) {
		const char *l = text + pos, *nl = memchr(l, '\n', len - pos), *why = NULL;
		size_t ll = nl != NULL ? (size_t)(nl - l) : len - pos, i = 0, ks, kl, vs, vl;
		const gw_option *o;
		char e[384], ex[EXCERPT_MAX + 8];

		pos += ll + (nl != NULL);
		line++;
		if (memchr(l, '\0', ll) != NULL) {
			gwu_set_err(err, errlen, "%s:%u: NUL byte in line", name, line);
			goto out;
		}
		if (ll > 0 && l[ll - 1] == '\r')
			ll--;
		if (ll > LINE_MAX_BYTES) {
			gwu_set_err(err, errlen, "%s:%u: line too long (over %d bytes)", name, line,
				    LINE_MAX_BYTES);
			goto out;
		}
		while (i < ll && is_blank((unsigned char)l[i]))
			i++;
		if (i == ll || l[i] == '#')
			continue;
		ks = i;
		while (i < ll && !is_blank((unsigned char)l[i]) && l[i] != '=')
			i++;
		kl = i - ks;
		while (i < ll && is_blank((unsigned char)l[i]))
			i++;
		if (i == ll || l[i] != '=') {
			gwu_set_err(err, errlen, "%s:%u: missing '=' after '%s'", name, line,
				    gwu_excerpt(l + ks, kl, EXCERPT_MAX, ex, sizeof ex));
			goto out;
		}
		if (kl == 0) {
			gwu_set_err(err, errlen, "%s:%u: missing key before '='", name, line);
			goto out;
		}
		i++;
		while (i < ll && is_blank((unsigned char)l[i]))
			i++;
		vs = i;
		vl = ll - vs;
		while (vl > 0 && is_blank((unsigned char)l[vs + vl - 1]))
			vl--;
		if ((o = find_option(table, l + ks, kl, e, sizeof e)) == NULL) {
			gwu_set_err(err, errlen, "%s:%u: %s", name, line, e);
			goto out;
		}
		if (seen[o - table] != 0) {
			gwu_set_err(err, errlen, "%s:%u: repeated key '%s' (first set at line %u)", name,
				    line, o->name, seen[o - table]);
			goto out;
		}
		if (unquote(l + vs, vl, value, &vl, &why) != 0) {
			gwu_set_err(err, errlen, "%s:%u: %s: %s", name, line, o->name, why);
			goto out;
		}
		if (set_value(o, conf, value, vl, e, sizeof e) != 0) {
			gwu_set_err(err, errlen, "%s:%u: %s", name, line, e);
			goto out;
		}
		seen[o - table] = line;
	}
	rc = 0;
out:
	free(seen);
	free(value);
	return rc;
}

int gw_config_load(const gw_option *table, void *conf, const char *path, char *err, size_t errlen)
{
	FILE *f;
	char *text = NULL;
	size_t len = 0, cap = 0;
	int rc;

	if ((f = fopen(path, "r")) == NULL) {
		gwu_set_err(err, errlen, "%s: %s", path, strerror(errno));
		/* Still leave conf consistent, as every other failure does. */
		if (gw_config_defaults(table, conf, NULL, 0) != 0)
			return -1;
		return -1;
	}
	for (;;) {
		size_t got;
		if (len == cap) {
			char *nt;
			if ((long)cap >= CONF_FILE_MAX) {
				gwu_set_err(err, errlen, "%s: file too large", path);
				goto fail;
			}
			cap = cap ? cap * 2 : 8192;
			if ((nt = realloc(text, cap)) == NULL) {
				gwu_set_err(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			text = nt;
		}
		if ((got = fread(text + len, 1, cap - len, f)) == 0)
			break;
		len += got;
	}
	if (ferror(f)) {
		gwu_set_err(err, errlen, "%s: read error", path);
		goto fail;
	}
	fclose(f);
	rc = gw_config_parse(table, conf, text, len, path, err, errlen);
	free(text);
	return rc;
fail:
	fclose(f);
	free(text);
	gw_config_defaults(table, conf, NULL, 0);
	return -1;
}

int gw_config_set(const gw_option *table, void *conf, const char *key, const char *value, char *err,
		  size_t errlen)
{
	const gw_option *o;
	const char *why = NULL;
	size_t vl, vs = 0;
	char *buf;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (key == NULL || (o = find_option(table, key, strlen(key), err, errlen)) == NULL)
		return -1;
	if (value == NULL)
		value = "";
	vl = strlen(value);
	if (vl > LINE_MAX_BYTES) {
		gwu_set_err(err, errlen, "%s: value too long (over %d bytes)", o->name, LINE_MAX_BYTES);
		return -1;
	}
	while (vs < vl && is_blank((unsigned char)value[vs]))
		vs++;
	while (vl > vs && is_blank((unsigned char)value[vl - 1]))
		vl--;
	if ((buf = malloc(vl - vs + 1)) == NULL) {
		gwu_set_err(err, errlen, "%s: out of memory", o->name);
		return -1;
	}
	if (unquote(value + vs, vl - vs, buf, &vl, &why) != 0) {
		gwu_set_err(err, errlen, "%s: %s", o->name, why);
		free(buf);
		return -1;
	}
	rc = set_value(o, conf, buf, vl, err, errlen);
	free(buf);
	return rc;
}

void gw_config_free(const gw_option *table, void *conf)
{
	size_t k;

	if (table == NULL || conf == NULL)
		return;
	for (k = 0; table[k].name != NULL; k++)
		if (table[k].type == GW_OPT_STRING || table[k].type == GW_OPT_LIST) {
			char **f = str_field(&table[k], conf);
			free(*f);
			*f = NULL;
		}
}

/* Write s so that the parser reads it back unchanged: quoted when blanks, quotes or '\' would be lost. */
static void put_string(const char *s, FILE *out)
{
	size_t len = strlen(s);

	if (len > 0 && !is_blank((unsigned char)s[0]) && !is_blank((unsigned char)s[len - 1]) &&
	    s[0] != '"') {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

/* Write the value of o as the file would have it. */
static void put_value(const gw_option *o, const void *conf, FILE *out)
{
	char buf[64];
	void *c = (void *)(uintptr_t)conf; /* the field helpers take a mutable pointer; nothing is written */

	switch (o->type) {
	case GW_OPT_STRING:
	case GW_OPT_LIST:
		put_string(*str_field(o, c) != NULL ? *str_field(o, c) : "", out);
		return;
	case GW_OPT_BOOL:
		fputs(*int_field(o, c) ? "yes" : "no", out);
		return;
	case GW_OPT_ENUM: {
		int v = *int_field(o, c), k;
		for (k = 0; o->enum_values != NULL && o->enum_values[k] != NULL; k++)
			if (k == v) {
				fputs(o->enum_values[k], out);
				return;
			}
		fprintf(out, "%d", v); /* out of range: show it rather than hide it */
		return;
	}
	case GW_OPT_INT:
	case GW_OPT_DURATION:
	case GW_OPT_SIZE:
		format_bound(o, *long_field(o, c), buf, sizeof buf);
		fputs(buf, out);
		return;
	}
}

void gw_config_dump(const gw_option *table, const void *conf, FILE *out)
{
	size_t k;

	for (k = 0; table[k].name != NULL; k++) {
		fprintf(out, "%s = ", table[k].name);
		put_value(&table[k], conf, out);
		fputc('\n', out);
	}
}

void gw_config_describe(const gw_option *table, FILE *out)
{
	size_t k, i;

	for (k = 0; table[k].name != NULL; k++) {
		const gw_option *o = &table[k];
		char lo[32], hi[32];

		fprintf(out, "%s (%s", o->name, type_name(o->type));
		if (o->type == GW_OPT_ENUM && o->enum_values != NULL) {
			for (i = 0; o->enum_values[i] != NULL; i++)
				fprintf(out, "%s%s", i ? "|" : " ", o->enum_values[i]);
		}
		if ((o->type == GW_OPT_INT || o->type == GW_OPT_DURATION || o->type == GW_OPT_SIZE) &&
		    (o->min != 0 || o->max != 0)) {
			format_bound(o, o->min, lo, sizeof lo);
			format_bound(o, o->max, hi, sizeof hi);
			fprintf(out, " in [%s, %s]", lo, hi);
		}
		fputs(", default ", out);
		if (o->def == NULL || o->def[0] == '\0')
			fputs(o->type == GW_OPT_STRING || o->type == GW_OPT_LIST ? "\"\"" : "0", out);
		else
			fputs(o->def, out);
		fprintf(out, "): %s\n", o->doc != NULL ? o->doc : "");
	}
}

int gw_config_list_foreach(const char *list, int (*fn)(const char *item, size_t len, void *ctx), void *ctx)
{
	const char *p = list;

	if (list == NULL)
		return 0;
	for (;;) {
		const char *start;
		int rc;

		while (*p == ',' || is_blank((unsigned char)*p))
			p++;
		if (*p == '\0')
			return 0;
		start = p;
		while (*p != '\0' && *p != ',' && !is_blank((unsigned char)*p))
			p++;
		if ((rc = fn(start, (size_t)(p - start), ctx)) != 0)
			return rc;
	}
}

unsigned gw_config_key_line(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	char buf[1100];
	unsigned line = 0, found = 0;
	size_t kl = strlen(key);

	if (f == NULL)
		return 0;
	while (found == 0 && fgets(buf, sizeof(buf), f) != NULL) {
		const char *p = buf + strspn(buf, " \t");
		line++;
		if (strncmp(p, key, kl) == 0 && (p[kl] == '=' || p[kl] == ' ' || p[kl] == '\t'))
			found = line;
	}
	fclose(f);
	return found;
}
