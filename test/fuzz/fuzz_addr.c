/*
 * fuzz_addr.c - libFuzzer target for RFC 5321 path parsing.
 *
 * The input is what follows "MAIL FROM:" or "RCPT TO:". It is parsed under
 * every combination of flags from an allocation of exactly its size; what
 * parses must be within the limits, and the formatted mailbox must parse back
 * to the same mailbox.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *s, size_t size, unsigned flags)
{
	static gw_path path, again;
	const char *err = NULL;
	char out[GW_PATH_MAX + 8];
	size_t i, n;

	if (gw_path_parse(s, size, flags, &path, &err) != 0) {
		if (err == NULL || err[0] == '\0')
			abort();
		return;
	}
	if (strlen(path.mbox.local) > GW_LOCAL_MAX || strlen(path.mbox.domain) > GW_DOMAIN_MAX ||
	    path.nparams > GW_PARAMS_MAX)
		abort();
	if (path.mbox.null && !(flags & GW_PATH_REVERSE))
		abort();
	if (path.mbox.utf8 && !(flags & GW_PATH_SMTPUTF8))
		abort();
	if (path.nparams > 0 && !(flags & GW_PATH_PARAMS))
		abort();
	for (i = 0; i < path.nparams; i++)
		if (gw_path_param(&path, path.params[i].keyword) != &path.params[i])
			abort();
	for (i = 0; path.mbox.domain[i] != '\0'; i++)
		if (path.mbox.domain[i] >= 'A' && path.mbox.domain[i] <= 'Z' &&
		    !(i >= 1 && i <= 4 && path.mbox.literal))
			abort();
	n = gw_mailbox_format(&path.mbox, out, sizeof out);
	if (n >= sizeof out || strlen(out) != n)
		abort();
	if (path.mbox.null) {
		if (n != 0)
			abort();
		return;
	}
	if (gw_path_parse(out, n, (flags & ~GW_PATH_PARAMS) | GW_PATH_BARE, &again, &err) != 0)
		abort();
	if (memcmp(&again.mbox, &path.mbox, sizeof path.mbox) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size > 0 ? size : 1);
	unsigned flags;

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	for (flags = 0; flags < 32; flags++)
		check(s, size, flags);
	free(s);
	return 0;
}
