/*
 * lmtp_int.h - what the LMTP delivery files (lmtp*.c) share, internal to libgw.
 *
 * lmtp.c runs one attempt (one gateway, some recipients); lmtp_fallback.c
 * chains attempts; lmtp_args.c checks and formats MAIL/RCPT arguments;
 * lmtp_result.c fills results. Names start with lm_.
 *
 * Does not defend against: being used from several threads at once (one
 * gw_lmtp, one thread, like gw_client).
 */
#ifndef GW_LMTP_INT_H
#define GW_LMTP_INT_H

#include "gw/buf.h"
#include "gw/lmtp.h"

struct gw_lmtp {
	gw_lmtp_opts o;
	char *helo_name, *tls_ca_file, *tls_servername,
	    *bind_address; /* owned copies of o.client's strings */
	gw_client *c;
	char hop_key[GW_LMTP_GATEWAY_MAX]; /* where the open connection goes */
	int dirty;                         /* the last transaction did not end: RSET before the next */
	int64_t last_used;                 /* when the open connection last finished a transaction */
	struct lm_hop_detail *details;     /* the hops of the last send, with their peer and TLS */
	gw_lmtp_hop_tls_fn *hop_tls;       /* per-hop TLS terms (DANE), or NULL: o.client.tls everywhere */
	void *hop_tls_ctx;
	size_t ndetails, details_cap;
};

typedef struct lm_hop_detail {
	char gateway[GW_LMTP_GATEWAY_MAX];
	char peer[GW_PEER_TEXT_MAX];
	char tls[GW_TLS_TEXT_MAX];
} lm_hop_detail;

/* Forget the hop details of the previous send. */
void lm_details_reset(gw_lmtp *l);
/* Remember where the attempt through gateway went (peer address, TLS), from the client. */
void lm_details_note(gw_lmtp *l, const char *gateway);

/*
 * Deliver recipients sel[0..nsel) (indices into txn->rcpts) through hop;
 * overwrite their results. *body_used_r is set when the body was read.
 */
gw_status lm_attempt(gw_lmtp *l, const gw_nexthop *hop, const gw_lmtp_txn *txn, const size_t *sel,
		     size_t nsel, gw_lmtp_result *res, int *body_used_r);
/* Use protocol p from now on (a new engine when it changes). 0, or -1 on ENOMEM. */
int lm_set_proto(gw_lmtp *l, gw_proto p);
/* Check that the transaction's arguments are usable at all (not the addresses). 0 or -1. */
int lm_txn_ok(const gw_lmtp_txn *txn, const gw_lmtp_result *res);
/* Call txn->on_result for every recipient, in order. */
void lm_report(const gw_lmtp_txn *txn, const gw_lmtp_result *res);

/* ---- lmtp_args.c ---- */

/* "<sender> [SIZE=n] [BODY=..] [SMTPUTF8] [RET=..] [ENVID=..]" for caps into out. 0, or -1 with *err_r. */
int lm_mail_arg(const gw_lmtp_txn *txn, unsigned caps, gw_buf *out, const char **err_r);
/* "<rcpt> [NOTIFY=..] [ORCPT=..]" for caps into out. 0, or -1 with *err_r. */
int lm_rcpt_arg(const gw_lmtp_rcpt *r, int smtputf8, unsigned caps, gw_buf *out, const char **err_r);

/* ---- lmtp_result.c ---- */

void lm_result_reply(gw_lmtp_result *r, gw_lmtp_stage stage, const gw_reply *reply, const char *gateway);
/* A failure without a reply; uncertain: the message may have been taken. */
void lm_result_transport(gw_lmtp_result *r, gw_lmtp_stage stage, gw_status s, int uncertain, const char *why,
			 const char *gateway);
void lm_result_local(gw_lmtp_result *r, gw_lmtp_state state, gw_lmtp_stage stage, int code, const char *enh,
		     const char *text, const char *gateway);
/* Log one result at level (peer text sanitised). */
void lm_result_log(int level, const char *event, const gw_lmtp_rcpt *rcpt, const gw_lmtp_result *r);

#endif
