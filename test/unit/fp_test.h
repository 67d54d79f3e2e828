/*
 * fp_test.h - starting a scripted fake peer (fakepeer.h) from a cmocka
 * test: the test fails with the peer's error when it cannot start.
 *
 * Does not defend against: being included twice in one program (static helper).
 */
#ifndef FP_TEST_H
#define FP_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fakepeer.h"

/* A peer running script, each of its waits bounded by timeout_ms. */
static fp_peer *fp_test_start(const char *script, unsigned timeout_ms)
{
	char err[256] = "";
	fp_opts o;
	fp_peer *p;

	memset(&o, 0, sizeof(o));
	o.script = script;
	o.timeout_ms = timeout_ms;
	if ((p = fp_start_opts(&o, err, sizeof(err))) == NULL)
		fail_msg("fp_start: %s", err);
	return p;
}

#endif
