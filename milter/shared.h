/*
 * shared.h - the bounce-flood guard's state shared by gateways on Redis
 * (hiredis), never on the path of an RCPT.
 *
 * The shared state is additive: each gateway writes only its own counts,
 * under its own name (ID, stable across restarts: shared_state_id, or one
 * derived from the host name and the store's path), and reads the others':
 *   gw:flood:corr:ID  a hash KEY -> "SCORE STAMP_MS": the gateway's own
 *                     decayed count of each correspondent key, as of the
 *                     stamp (expires 10 half-lives, at least a day, after
 *                     the gateway's last write: a gateway gone for good
 *                     stops counting);
 *   gw:flood:node:ID  "HIGH BOUNCE PRVS UNKNOWN TOKEN" with a TTL of three
 *                     refreshes: its mode and its recent per-window counts
 *                     (the larger of its current and last window), and a
 *                     random token of this instance (readers before it
 *                     took the first four fields and still do).
 * Why one field per gateway rather than HINCRBYFLOAT of deltas: a delta
 * applied twice (a reply lost after Redis ran the command, a batch written
 * again after a reconnection) counts twice, and decaying a shared sum needs
 * every writer to agree on when it was last decayed; an owned value is
 * idempotent (writing it again changes nothing), each writer decays its own
 * with the same half-life as the local table, and a reader decays each
 * value from its own stamp before summing. The cost is reading every
 * gateway's hash, a few per fleet.
 *
 * One background thread, every refresh interval:
 *   - reads its own node key back first: after its first write, a token
 *     there that is not its own means another gateway was given the same
 *     ID (logged once, status=duplicate, and once when no other token was
 *     seen for 10 refreshes in a row);
 *   - writes the table's entries marked dirty for it in one pipelined batch
 *     (HSET of its own counts), its node key, and the hash's expiry;
 *   - reads every gw:flood:corr:* hash (SCAN, then HSCAN in pages): the
 *     other gateways' counts are summed into the table's fleet part
 *     (corr.h), replacing the last sums, so a correspondent seen 10 times
 *     through gw1 and 10 times through gw2 has 20 on both and never more;
 *     its own hash is merged into its own counts (the larger wins), which
 *     brings back what it had written before a restart without a store;
 *   - reads the other gateways' node keys: any one in high-load mode is "the
 *     fleet is in a flood" (honoured in auto mode), and their counts summed
 *     are the detector's ext (flood_detect.h), so a flood spread over the
 *     gateways switches them all;
 *   - with shared_cache, publishes this gateway's call-ahead verdicts and
 *     copies the others' (cache_share.h), reading from the newest entry
 *     after each new connection.
 * The callbacks only read the local table, the last fleet flag and counts.
 * Each command has a timeout (connect and reply: the refresh interval, at
 * most 2 s); Redis down, slow or refusing the password costs the thread a
 * timeout and a log line (one per outage, and one when it is back), never
 * an RCPT; the last fleet sums stay and decay, the fleet flag and counts
 * are dropped. A batch that failed is written again whole at the next
 * connection.
 *
 * AUTH: with a password, "AUTH [USER] PASSWORD" follows each connection
 * (an ACL user with Redis 6 and later). The password is never logged.
 *
 * Does not defend against: an eavesdropper on the path to Redis (hiredis
 * 0.14, Debian 12's, has no TLS: use loopback, a private network, or a
 * stunnel/spiped tunnel); a gateway that writes false counts under its own
 * or another's name (anyone with the password can); two gateways given the
 * same ID (each overwrites the other's counts: only detected and logged,
 * and only while both run); hosts whose clocks differ
 * by much (stamps are wall-clock milliseconds, a stamp from the future
 * counts as now); more than GWM_SHARED_READ_MAX entries in all (the rest
 * is not read that refresh); a long outage of Redis in a large fleet (the
 * baseline then learns this gateway's rate alone, and the fleet's sum seen
 * again afterwards may look like a flood when it is more than
 * flood_multiple times that); more than MAX_NODES gateways.
 */
#ifndef GWM_SHARED_H
#define GWM_SHARED_H

#include "corr.h"
#include "flood_detect.h"

#define GWM_SHARED_READ_MAX  200000
#define GWM_SHARED_TOKEN_LEN 32 /* hex characters of an instance's token */

typedef struct gwm_shared_conf {
	const char *host; /* redis://[USER@]HOST:PORT/DB */
	int port, db;
	const char *user;     /* NULL or "": AUTH with the password alone */
	const char *password; /* NULL or "": no AUTH */
	long refresh_ms;
	int64_t half_ms; /* the table's half-life: the expiry of this gateway's hash */
	const char *id;  /* this gateway's name in the keys: [A-Za-z0-9.-_] */
} gwm_shared_conf;

/* Start the thread on the table t. 0 ok, -1 (errno). */
int gwm_shared_start(const gwm_shared_conf *c, gwm_corr *t);
void gwm_shared_stop(void);
/* -1 not started, 0 down, 1 up at the last refresh. */
int gwm_shared_state(void);
/* 1 when another gateway announced high-load mode at the last refresh. */
int gwm_shared_fleet_high(void);
/* The other gateways' recent counts summed, as of the last refresh (0 when down). */
void gwm_shared_fleet_counts(double out[GWM_FD_KINDS]);
/* This gateway's mode and recent counts, published at the next refresh. */
void gwm_shared_set_high(int high);
void gwm_shared_set_counts(const double own[GWM_FD_KINDS]);
/* 1 when a node key's value (the "HIGH BOUNCE PRVS UNKNOWN TOKEN" written under our name) is not
 * ours: another token, or none; 0 when it carries mine or value is NULL. */
int gwm_shared_token_foreign(const char *value, const char *mine);
/* Run one refresh now, in the calling thread (tests). */
void gwm_shared_refresh_now(void);

#endif
