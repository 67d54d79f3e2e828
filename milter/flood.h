/*
 * flood.h - the bounce-flood guard of gw-milter: what the callbacks and the
 * control socket call. It ties together the correspondent table (corr.h),
 * its LMDB store (store.h), the detector (flood_detect.h), the per-network
 * probe slots, the hooks (hook.h) and the Redis sharing (shared.h).
 *
 * The callbacks only gather context and call these:
 *   connect  gwm_flood_netkey()             the client's network key
 *   MAIL     gwm_flood_mail()               counts a bounce; 1 = defer (451 4.7.1)
 *            gwm_flood_defer_log()          whether the deferral gets a log line
 *   RCPT     gwm_flood_event()              a PRVS failure, an unknown recipient
 *            gwm_flood_slot_take()/_give()  around each probe
 *   EOM      gwm_flood_learn()              the network of accepted inbound mail,
 *                                           the domains of outbound mail
 * Each of them takes a mutex for a few hash lookups: none reads the store or
 * Redis, none waits for a hook. A background thread closes the detector's
 * windows, writes what changed to the store every few seconds, and keeps the
 * operator's forced mode and the baselines there too (meta "force",
 * "baseline"), so a restart keeps what was learnt and what was forced.
 *
 * A client network is a correspondent when its decayed count is at least
 * flood_threshold; for mail with a sender (flood_defer_all) the sender's
 * domain counts too when it is a domain we send to. In high-load mode a
 * bounce (and with flood_defer_all any mail) from a network that is not a
 * correspondent gets 451 4.7.1 at MAIL, before any probe; clients that are
 * skipped, authenticated or internal are never deferred. Also in high-load
 * mode, each client network may hold at most flood_client_probes probes at
 * once: the next RCPT gets 451 4.7.1 instead of queueing behind them.
 *
 * With flood_guard = no, every call is a no-op returning "no".
 *
 * Does not defend against: a flood from networks that were correspondents
 * (they pass, by design); a sender domain forged as one we send to when
 * flood_defer_all is on; a store directory shared by two daemons.
 */
#ifndef GWM_FLOOD_H
#define GWM_FLOOD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf.h"
#include "flood_detect.h"
#include "flood_math.h"
#include "gw/time.h"

/* Distinct recipient domains of one outbound message learnt at most. */
#define GWM_FLOOD_DOMAINS_MAX 32

typedef struct gwm_flood_stats {
	int on, high;
	gwm_force force;
	double cur[GWM_FD_KINDS], last[GWM_FD_KINDS], base[GWM_FD_KINDS], threshold[GWM_FD_KINDS];
	double fleet[GWM_FD_KINDS]; /* the other gateways' recent counts (shared state) */
	uint64_t deferred, slot_limited, learnt, transitions, store_errors;
	size_t entries;
	uint64_t refused;
	int shared; /* -1 not configured, 0 down, 1 up */
} gwm_flood_stats;

/*
 * Start with conf (nothing when flood_guard = no): load the store, start the
 * background thread and the hook thread. mono times the detector, wall the
 * learnt counts (NULL: the system clocks). 0 ok, -1 with err.
 */
int gwm_flood_start(const gwm_config *conf, const gw_clock *mono, const gw_clock *wall, char *err,
		    size_t errlen);
/* Stop the threads, write what changed, close the store; the calls below keep working in memory. */
void gwm_flood_stop(void);
/* Stop, then free everything: no milter connection may be open. */
void gwm_flood_free(void);
/* The network key of sa under conf's prefixes into buf ("" when none). */
/* This gateway's name in the shared state's keys (shared.h): shared_state_id when set; else the
 * host name (A-Z a-z 0-9 . - kept, the rest '_'), and with a flood_store "-" and a hash of its path. */
void gwm_flood_shared_name(const gwm_config *conf, const char *host, char *buf, size_t size);
void gwm_flood_netkey(const gwm_config *conf, const struct sockaddr *sa, char *buf, size_t size);
/* MAIL from a client (exempt: skipped, authenticated or internal). 1: defer with 451 4.7.1. */
int gwm_flood_mail(const gwm_config *conf, const char *netkey, int exempt, int bounce,
		   const char *sender_domain);
/*
 * After a deferral at MAIL: 1 when its own log line is due, 0 when it is
 * only counted. At most GWM_FLOOD_DEFER_LINES_PER_S lines a second: a flood
 * of thousands a second would otherwise be a write (and a syslog daemon's
 * work) per deferral. The background thread logs what was only counted, at
 * most once a second ("flood action=defer stage=mail unlogged=N ms=M").
 */
int gwm_flood_defer_log(void);
#define GWM_FLOOD_DEFER_LINES_PER_S 10
/* Count a PRVS failure (GWM_FD_PRVS) or an unknown recipient (GWM_FD_UNKNOWN). */
void gwm_flood_event(int kind);
/* A probe slot for netkey: 1 taken (give it back), 0 not counted, -1 refused (451 4.7.1). */
int gwm_flood_slot_take(const gwm_config *conf, const char *netkey);
void gwm_flood_slot_give(const char *netkey);
/* Learn a correspondent network (inbound, accepted) and/or a domain we send to; either may be NULL. */
void gwm_flood_learn(const char *netkey, const char *domain);
/* 1 when the network (or the domain) is a correspondent now. */
int gwm_flood_is_corr(const gwm_config *conf, const char *netkey, const char *domain);
void gwm_flood_stats_get(gwm_flood_stats *s);
/* Control socket: "mode high|normal|auto" and "mode" alone (status). */
void gwm_flood_control_mode(const char *arg, char *out, size_t outlen);
/* Run the background thread's periodic work once, now (tests). */
void gwm_flood_tick(void);

#endif
