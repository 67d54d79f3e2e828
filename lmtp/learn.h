/*
 * learn.h - tell gw-milter which domains gw-lmtpd delivered to, so its
 * bounce-flood guard counts them as correspondents (a domain we send to may
 * send us mail, and bounces, back). gw-lmtpd does not link gw-milter's code:
 * it speaks to gw-milter's control socket ("learn-domains D1 D2 ..."), from
 * a background thread that sends what was noted since its last round, once
 * a second, each domain once per round (one credit per domain per second,
 * however many messages went there: a burst to one domain does not make it
 * a correspondent at once). Noting is a lookup and a copy under a mutex: never a wait on
 * the milter on the LMTP path.
 *
 * Does not defend against: a lost batch (gw-milter down, slow or refusing:
 * logged and dropped; the next delivery notes the domain again); more than
 * GWL_LEARN_PENDING_MAX distinct domains in one second (the rest are
 * dropped and counted); anyone who can write the control socket teaching
 * gw-milter domains (the socket is mode 0600: share the user, or the
 * milter's directory's group).
 */
#ifndef GWL_LEARN_H
#define GWL_LEARN_H

#define GWL_LEARN_PENDING_MAX 1024

/* Start the thread sending to the unix socket path. 0, or -1 with errno. */
int gwl_learn_start(const char *path);
/* Stop it (what is pending is sent first, bounded by the socket timeouts). */
void gwl_learn_stop(void);
/* Note the domain of addr (local@domain) as delivered to; nothing when not started. */
void gwl_learn_note(const char *addr);

#endif
