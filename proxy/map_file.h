/*
 * map_file.h - what the address-keyed map files (tls_policy, tenant_map) share:
 * the file read whole, its lines split into words, ADDRESS[/PREFIX] keys and
 * the longest-prefix match, the entry table's growth.
 *
 * Does not defend against: a file that changes while it is read (it is read
 * once, at load or reload).
 */
#ifndef GWP_MAP_FILE_H
#define GWP_MAP_FILE_H

#include <stddef.h>

/* The file's bytes (at most 1 MB) in a malloc'd buffer, *n_r its length; NULL with err. */
char *gwp_map_file_read(const char *path, size_t *n_r, char *err, size_t errlen);

/* An ADDRESS[/PREFIX] key. */
typedef struct gwp_prefix {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned bits;
} gwp_prefix;

/* "192.0.2.0/24", "2001:db8::/32" or an address alone: 0, or -1. */
int gwp_prefix_parse(const char *text, gwp_prefix *p);
/* A numeric IPv4 or IPv6 address as a full-length prefix: 0, or -1 (a name, garbage). */
int gwp_prefix_address(const char *text, gwp_prefix *p);
/* Does p hold the address a (a full-length prefix from gwp_prefix_address)? */
int gwp_prefix_covers(const gwp_prefix *p, const gwp_prefix *a);

/*
 * The next line of text[0..len) with words, from *off on: its words (split on
 * blanks, '#' to the end of the line a comment) in w[0..*nw), at most maxw, in
 * line[0..linesz), *lineno counted. 1 a line, 0 the end, -1 with err
 * "name:line: line too long". Empty lines are skipped.
 */
int gwp_map_next_line(const char *text, size_t len, size_t *off, unsigned *lineno, char *line, size_t linesz,
		      char **w, int maxw, int *nw, const char *name, char *err, size_t errlen);

/* Room for one more entry of size elsize in *arr (n used of *cap, at most max): 0, or -1 with err. */
int gwp_map_grow(void **arr, size_t *cap, size_t n, size_t elsize, size_t max, const char *name,
		 unsigned lineno, char *err, size_t errlen);

#endif
