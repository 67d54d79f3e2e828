/*
 * names.h - explicit {value, name} tables for libgw's public enums, and the
 * two lookups over them (internal to libgw).
 *
 * Every enum that is printed or parsed by name has one table here, written
 * as pairs so that no name depends on its position in an array: reordering,
 * inserting or renumbering an enum value cannot shift the names of the
 * others. test_names.c checks that each value has exactly one name and that
 * names round-trip. The public *_str and *_parse functions are thin wrappers
 * (names.c).
 *
 * Does not defend against: a table that names a value twice (the first wins;
 * the test catches it).
 */
#ifndef GW_NAMES_H
#define GW_NAMES_H

#include <stddef.h>

typedef struct gwn_entry {
	int value;
	const char *name;
} gwn_entry;

typedef struct gwn_table {
	const gwn_entry *v;
	size_t n;
	const char *unknown; /* what a value outside the table is called */
} gwn_table;

extern const gwn_table gwn_status, gwn_stage, gwn_proto, gwn_tls_policy, gwn_tls_level, gwn_dane_state,
    gwn_verdict, gwn_ca_source, gwn_dir_answer, gwn_dir_source, gwn_lmtp_state, gwn_lmtp_stage,
    gwn_prvs_result, gwn_prvs_skip, gwn_log_level;

/* The name of value, or t->unknown. */
const char *gwn_name(const gwn_table *t, int value);
/* The value named name (ASCII case ignored): 0 and *value_r set; -1 if none (name NULL included). */
int gwn_value(const gwn_table *t, const char *name, int *value_r);

#endif
