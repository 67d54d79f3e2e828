/*
 * null_milter.c - a milter that does nothing, the reference for bench_milter.sh.
 *
 * SYNOPSIS
 *	null_milter inet:PORT@127.0.0.1
 *
 * DESCRIPTION
 *	Answers "continue" to RCPT and DATA and "accept" at end of message. It
 *	registers the DATA callback on purpose: Postfix then waits for a reply
 *	to the DATA-stage macros instead of writing its next small packet into
 *	a delayed ACK (about 40 ms per message on an inet socket, see the
 *	milter notes in design.md), so the reference is a well-behaved milter,
 *	not a slow one. Every other step is negotiated away (SMFIP_NO*).
 *
 *	Built by bench/bench_milter.sh with `cc ... -lmilter`; not part of the
 *	CMake build (bench/CMakeLists.txt links bench_*.c against libgw only).
 *
 * BUGS
 *	None worth having: it has no state and no options.
 */
#include <libmilter/mfapi.h>
#include <stdio.h>
#include <stdlib.h>

/* Ask for RCPT, DATA and end of message only; every other step is skipped. */
static sfsistat null_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
			       unsigned long f3, unsigned long *pf0, unsigned long *pf1, unsigned long *pf2,
			       unsigned long *pf3)
{
	unsigned long want = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NOBODY | SMFIP_NOHDRS |
			     SMFIP_NOEOH | SMFIP_NOUNKNOWN;

	*pf0 = 0;
	*pf1 = want & f1;
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

/* RCPT: continue. */
static sfsistat null_envrcpt(SMFICTX *ctx, char **argv)
{
	return SMFIS_CONTINUE;
}

/* DATA: continue (registered so that Postfix waits for this reply). */
static sfsistat null_data(SMFICTX *ctx)
{
	return SMFIS_CONTINUE;
}

/* End of message: accept. */
static sfsistat null_eom(SMFICTX *ctx)
{
	return SMFIS_ACCEPT;
}

int main(int argc, char **argv)
{
	struct smfiDesc desc = {
	    .xxfi_name = "null",
	    .xxfi_version = SMFI_VERSION,
	    .xxfi_flags = 0,
	    .xxfi_envrcpt = null_envrcpt,
	    .xxfi_eom = null_eom,
	    .xxfi_data = null_data,
	    .xxfi_negotiate = null_negotiate,
	};

	if (argc != 2) {
		fprintf(stderr, "usage: null_milter inet:PORT@HOST\n");
		return 2;
	}
	if (smfi_setconn(argv[1]) == MI_FAILURE || smfi_register(desc) == MI_FAILURE) {
		fprintf(stderr, "null_milter: cannot use %s\n", argv[1]);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
