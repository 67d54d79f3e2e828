/*
 * dir_check.c - the per-mode decision at RCPT (see dir_check.h): which
 * source is asked, in which order, and whose answer becomes the reply.
 *
 * Knows no transport: the directory and the call-ahead are the checker's
 * functions. Does not defend against: a checker that blocks (the sources
 * bound their own time).
 */
#include <string.h>

#include "dir_check.h"

const char *const gwm_mode_words[] = {"callahead", "directory", "directory+callahead", NULL};

static void by_callahead(const gwm_reply_opts *ro, const char *rcpt, const gwm_checker *ck,
			 gwm_check_out *out)
{
	out->ca_asked = 1;
	(void)ck->ca(ck->ctx, rcpt, &out->ca);
	gwm_reply_for_result(ro, rcpt, &out->ca, &out->reply);
	out->source = gw_ca_source_str(out->ca.source);
}

void gwm_check(gwm_mode mode, const gwm_reply_opts *ro, const char *rcpt, const gwm_checker *ck,
	       gwm_check_out *out)
{
	gw_dir_answer a;

	memset(out, 0, sizeof(*out));
	if (mode == GWM_MODE_CALLAHEAD) {
		by_callahead(ro, rcpt, ck, out);
		return;
	}
	out->dir_asked = 1;
	a = ck->dir(ck->ctx, rcpt, &out->dir);
	out->dir.answer = a;
	if (mode == GWM_MODE_DIRECTORY || a == GW_DIR_UNKNOWN) {
		gwm_reply_directory(rcpt, a, &out->reply);
		out->source = "directory";
		return;
	}
	/* exists: reachability is still checked live; temporary: the call-ahead decides alone */
	by_callahead(ro, rcpt, ck, out);
}
