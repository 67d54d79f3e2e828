/*
 * callbacks.h - gw-milter's libmilter callbacks: gather the context of each
 * RCPT (client, authentication, macros, recipient, route) and ask libgw.
 *
 * Decision order at RCPT: skipped client network, authenticated client,
 * {rcpt_mailer} "error" or a local mailer, recipient syntax (501 5.1.3, no
 * probe), <Postmaster>, skip_recipients, route (none: skip, or {rcpt_host}
 * with use_rcpt_host; a non-delivering transport: skip), unknown-recipient
 * limit (451 4.7.1, no probe), then the route's check mode (dir_check.h:
 * the directory, the call-ahead, or the directory then the call-ahead).
 * One log line per RCPT (plus a debug line with a directory's reason).
 *
 * Does not defend against: an MTA that does not send the macros
 * (skip_authenticated and {rcpt_mailer} then see nothing and the recipient
 * is checked); see gw-milter(8) for the settings.
 */
#ifndef GWM_CALLBACKS_H
#define GWM_CALLBACKS_H

#include <stddef.h>
#include <stdint.h>

#include <libmilter/mfapi.h>

#include "gw/time.h"

/* Clients the unknown-recipient table tracks at most. */
#define GWM_UL_CLIENTS 10000

/* The RCPT decision-time histogram's upper bounds (microseconds); one more bucket, +Inf. */
#define GWM_RCPT_BUCKETS 16
extern const uint32_t gwm_rcpt_le_us[GWM_RCPT_BUCKETS];

typedef struct gwm_cb_stats {
	uint64_t rcpts;           /* RCPT callbacks */
	uint64_t skips;           /* not checked: skip rules, no route */
	uint64_t bad_input;       /* 501 5.1.3 */
	uint64_t unknown_limited; /* 451 4.7.1 */
	uint64_t fail_open;       /* accepted by fail_open */
	uint64_t local_errors;    /* 451 4.3.0 */
	uint64_t connections;     /* open milter connections now */
	size_t ul_clients;        /* clients in the unknown-recipient table */
	/* RCPTs decided, by the time from the callback's start to its decision (the log's ms=):
	 * rcpt_time[i] at most gwm_rcpt_le_us[i] and above the bound before (not cumulative), the
	 * last over every bound; and the sum of those times. */
	uint64_t rcpt_time[GWM_RCPT_BUCKETS + 1];
	uint64_t rcpt_time_us_sum;
} gwm_cb_stats;

/* Shared state for the callbacks (the unknown-recipient table). clock NULL: monotonic. 0 ok, -1 ENOMEM. */
int gwm_callbacks_init(const gw_clock *clock);
/* Free it; no connection may be open. */
void gwm_callbacks_deinit(void);
/* Fill desc with the callbacks (name and flags included). */
void gwm_callbacks_desc(struct smfiDesc *desc);
void gwm_callbacks_stats(gwm_cb_stats *stats_r);
/* Milter connections open now (a snapshot reference each). */
uint64_t gwm_callbacks_open(void);

#endif
