/*
 * map_file.h - the whole of a small map file (tls_policy, tenant_map) read at once.
 *
 * Does not defend against: a file that changes while it is read (it is read
 * once, at load or reload).
 */
#ifndef GWP_MAP_FILE_H
#define GWP_MAP_FILE_H

#include <stddef.h>

/* The file's bytes (at most 1 MB) in a malloc'd buffer, *n_r its length; NULL with err. */
char *gwp_map_file_read(const char *path, size_t *n_r, char *err, size_t errlen);

#endif
