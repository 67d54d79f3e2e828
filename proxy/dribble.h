/*
 * dribble.h - a destination that dribbles its replies: many reads of a few
 * bytes each, spread over more than dribble_time, marks it as a tarpit even
 * when no reply is slower than tarpit_delay. libgw's client engine reports
 * how each reply arrived (gw_client_set_reply_hook); this judges it.
 *
 * Does not defend against: a destination that sends each reply whole but
 * slowly (tarpit_delay is for that), or one that dribbles in chunks larger
 * than GWP_DRIBBLE_BYTES a read on average.
 */
#ifndef GWP_DRIBBLE_H
#define GWP_DRIBBLE_H

#include "gw/client.h"

/* At most this many bytes a read on average: a line-by-line EHLO reply (some 20 a line) is no dribble. */
#define GWP_DRIBBLE_BYTES 8

/* 1 when a reply that arrived as a was dribbled: reads > 0 and at least reads reads, spread over at least
 * time_ms, GWP_DRIBBLE_BYTES a read at most on average. reads 0: never. */
int gwp_dribbled(const gw_reply_arrival *a, long reads, long time_ms);

/* gw_client_reply_fn for the destination leg, ctx the gwp_relay: a dribbled reply marks its destination as a
 * tarpit (logged, counted in tarpit_marks and dribble_marks, listed with the reason); while the destination
 * is marked as a tarpit already (watch.h), it only extends the mark. */
void gwp_dribble_hook(void *ctx, gw_stage stage, const gw_reply *rep, const gw_reply_arrival *a);

#endif
