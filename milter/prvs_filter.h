/*
 * prvs_filter.h - gw-milter's BATV/PRVS decisions, as pure functions.
 *
 * The callbacks gather the context (client class, sender, recipient, day)
 * and call these; the answers say what to do and what to log, and the
 * callbacks make the smfi_* calls. Nothing here reads the clock, the
 * configuration file or libmilter, so the unit test drives every row of
 * the decision table with a fixed day and a ring built in memory.
 *
 *   RCPT, tagged recipient, valid tag          -> STRIP (accept; probe and deliver the plain
 *                                                address), any sender
 *   RCPT, bounce from an untrusted client to a -> REJECT 550 5.7.1 "<rcpt>: this address sent
 *   signing domain, no valid tag                  no mail that could bounce" (expired tags:
 *                                                "<rcpt>: bounce to an expired address tag")
 *   same, recipient on prvs_exempt             -> PASS (or STRIP when it carries a tag)
 *   RCPT, anything else                        -> NONE (call-ahead as usual)
 *   end of message, internal or authenticated  -> SIGN with the library's signing key, unless
 *   client, sender in a signing domain            null, tagged, exempt or too long
 *
 * "Bounce" is MAIL FROM:<>, and MAILER-DAEMON@any when prvs_verify_mailer_daemon
 * is set. Internal and authenticated clients ("trusted") are not verified:
 * they are the side that sends the signed mail, not the side forged
 * bounces come from.
 *
 * Addresses are "local@domain" with the domain in lower case (as gw/addr.h
 * parses it). gw-milter signs and verifies that form, so a remote MTA that
 * re-cases the domain of a bounce does not break the tag.
 *
 * Does not defend against: what gw/prvs.h does not (replay of a tag within
 * its lifetime, guessing 24 bits); a tag made by another signer over a domain
 * written in upper case (it fails to verify here).
 */
#ifndef GWM_PRVS_FILTER_H
#define GWM_PRVS_FILTER_H

#include <stddef.h>

#include "gw/prvs.h"
#include "reply.h"

/* The PRVS part of a loaded configuration (owned by gwm_config). */
typedef struct gwm_prvs_conf {
	gw_prvs_ring *ring;  /* NULL: PRVS off */
	char **sign_domains; /* lower case */
	size_t nsign_domains;
	char **exempt; /* recipients accepting unsigned bounces: "@domain" or "local@domain" */
	size_t nexempt;
	char **sign_exempt; /* senders never signed, same syntax */
	size_t nsign_exempt;
	int verify;               /* prvs_verify */
	int verify_mailer_daemon; /* prvs_verify_mailer_daemon */
} gwm_prvs_conf;

typedef enum gwm_prvs_action {
	GWM_PRVS_NONE = 0, /* no PRVS decision: call-ahead as usual */
	GWM_PRVS_PASS,     /* an unsigned bounce accepted (exempt) */
	GWM_PRVS_STRIP,    /* accepted: probe and deliver the plain address */
	GWM_PRVS_REJECT,   /* 550 5.7.1 in reply */
	GWM_PRVS_TEMPFAIL  /* 451 4.3.0 in reply: the check itself failed */
} gwm_prvs_action;

/* What one RCPT came to. */
typedef struct gwm_prvs_rcpt_dec {
	gwm_prvs_action action;
	gw_prvs_result result;            /* GW_PRVS_NOT_TAGGED for a plain recipient */
	const char *why;                  /* short reason for the log */
	int log;                          /* a PRVS decision worth its log line */
	char plain[GW_PRVS_ADDR_MAX + 1]; /* STRIP: the address without its tag */
	gwm_reply reply;                  /* REJECT / TEMPFAIL */
} gwm_prvs_rcpt_dec;

/* What the end of one message came to. */
typedef struct gwm_prvs_sign_dec {
	int sign;        /* 1: change MAIL FROM to addr */
	const char *why; /* "signed" or why not */
	int log;         /* a PRVS decision worth its log line */
	char addr[GW_PRVS_ADDR_MAX + 1];
} gwm_prvs_sign_dec;

/* Is PRVS configured (a key ring loaded)? */
int gwm_prvs_on(const gwm_prvs_conf *pc);
/* Is domain (any case) one of prvs_sign_domains? */
int gwm_prvs_signing_domain(const gwm_prvs_conf *pc, const char *domain);
/* Is sender ("local@domain", "" for <>) a bounce for verification purposes? */
int gwm_prvs_bounce(const gwm_prvs_conf *pc, const char *sender);

/*
 * Decide one RCPT. bounce: gwm_prvs_bounce() of this message's sender;
 * trusted: the client is internal or authenticated; rcpt: "local@domain".
 */
void gwm_prvs_rcpt(const gwm_prvs_conf *pc, long day, int bounce, int trusted, const char *rcpt,
		   gwm_prvs_rcpt_dec *d);

/*
 * Decide the signing of one message at its end. sender: "local@domain" or ""
 * for <>; internal / authenticated: the client's class.
 */
void gwm_prvs_sign(const gwm_prvs_conf *pc, long day, int internal, int authenticated, const char *sender,
		   gwm_prvs_sign_dec *d);

/* A short name for an action ("none", "pass", "strip", "reject", "tempfail"). */
const char *gwm_prvs_action_str(gwm_prvs_action a);

/* Free what gwm_config_load put into pc (ring wiped), leaving it zeroed. */
void gwm_prvs_conf_clear(gwm_prvs_conf *pc);

#endif
