/*
 * fuzz_config.c - libFuzzer target: any bytes as a configuration file for a
 * table with one option of every type. Parsing must either fail with a
 * message or succeed; either way the struct is freeable, and dumping it must
 * give text that parses back.
 *
 * Does not check that a line at the length limit survives the round trip
 * (dump writes "key = value" where the file may have had "key=value").
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct conf {
	char *hostname;
	char *peers;
	long port;
	long offset;
	long timeout;
	long max_size;
	int verbose;
	int mode;
} conf;

static const char *const modes[] = {"off", "lenient", "strict", NULL};

static const gw_option table[] = {
    {"hostname", GW_OPT_STRING, "localhost", "HELO name", offsetof(conf, hostname), 0, 0, NULL},
    {"peers", GW_OPT_LIST, NULL, "internal MTAs", offsetof(conf, peers), 0, 0, NULL},
    {"port", GW_OPT_INT, "25", "port", offsetof(conf, port), 1, 65535, NULL},
    {"offset", GW_OPT_INT, NULL, "unbounded", offsetof(conf, offset), 0, 0, NULL},
    {"timeout", GW_OPT_DURATION, "10s", "probe timeout", offsetof(conf, timeout), 100, 86400000, NULL},
    {"max_size", GW_OPT_SIZE, "10m", "largest message", offsetof(conf, max_size), 0, 0, NULL},
    {"verbose", GW_OPT_BOOL, "no", "log more", offsetof(conf, verbose), 0, 0, NULL},
    {"mode", GW_OPT_ENUM, "lenient", "strictness", offsetof(conf, mode), 0, 0, modes},
    {NULL, GW_OPT_STRING, NULL, NULL, 0, 0, 0, NULL},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	conf c, d;
	char err[512], *out = NULL;
	size_t outlen = 0;
	FILE *f;

	if (gw_config_parse(table, &c, (const char *)data, size, "fuzz", err, sizeof err) != 0) {
		if (err[0] == '\0')
			__builtin_trap(); /* a failure always says why */
		gw_config_free(table, &c);
		return 0;
	}
	f = open_memstream(&out, &outlen);
	if (f != NULL) {
		gw_config_dump(table, &c, f);
		fclose(f);
		/* What dump writes must read back. */
		if (gw_config_parse(table, &d, out, outlen, "dump", err, sizeof err) != 0) {
			/* "key=<4087 bytes>" is a legal line that dump widens to "key = ..." */
			if (strstr(err, "line too long") == NULL)
				__builtin_trap();
			gw_config_free(table, &d);
			free(out);
			gw_config_free(table, &c);
			return 0;
		}
		if (d.port != c.port || d.offset != c.offset || d.timeout != c.timeout ||
		    d.max_size != c.max_size || d.verbose != c.verbose || d.mode != c.mode ||
		    strcmp(d.hostname, c.hostname) != 0 || strcmp(d.peers, c.peers) != 0)
			__builtin_trap();
		gw_config_free(table, &d);
		free(out);
	}
	gw_config_free(table, &c);
	return 0;
}
