/*
 * dir_check.h - the decision at RCPT for a route's check mode: the
 * directory, the call-ahead, or both (gw-milter(8), "Decisions").
 *
 *   mode                 directory   call-ahead        answer
 *   callahead            -           as it says        as the call-ahead says
 *   directory            exists      -                 accept
 *                        unknown     -                 550 5.1.1
 *                        temporary   -                 451 4.4.3
 *   directory+callahead  unknown     not asked         550 5.1.1
 *                        exists      asked             as the call-ahead says
 *                        temporary   asked             as the call-ahead says
 *
 * So the directory can only ever refuse a recipient earlier; in
 * directory+callahead mode it never accepts one the internal MTA cannot take
 * now ("never accept what you cannot pass on"), and a directory that cannot
 * answer never turns into "unknown". The two sources are reached through a
 * gwm_checker (function pointers), so tests play both sides.
 *
 * Does not defend against: a directory that says "unknown" for a recipient
 * the internal MTA knows (the directory is the configured truth).
 */
#ifndef GWM_DIR_CHECK_H
#define GWM_DIR_CHECK_H

#include "gw/callahead.h"
#include "gw/directory.h"
#include "reply.h"

typedef enum gwm_mode { GWM_MODE_CALLAHEAD = 0, GWM_MODE_DIRECTORY, GWM_MODE_BOTH } gwm_mode;

/* The gw.conf words, in gwm_mode order: "callahead", "directory", "directory+callahead". */
extern const char *const gwm_mode_words[];

typedef struct gwm_checker {
	gw_dir_answer (*dir)(void *ctx, const char *rcpt, gw_dir_result *res_r);
	gw_verdict (*ca)(void *ctx, const char *rcpt, gw_ca_result *res_r);
	void *ctx;
} gwm_checker;

typedef struct gwm_check_out {
	gwm_reply reply;
	const char *source; /* "directory" when it decided, else the call-ahead's source */
	int dir_asked;
	gw_dir_result dir;
	int ca_asked;
	gw_ca_result ca;
} gwm_check_out;

/* Decide for rcpt ("local@domain") under mode. */
void gwm_check(gwm_mode mode, const gwm_reply_opts *ro, const char *rcpt, const gwm_checker *ck,
	       gwm_check_out *out);

#endif
