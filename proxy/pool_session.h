/*
 * pool_session.h - what a session does about a blocklist verdict on its
 * pool address (pool.h decides, this acts): relay.c calls these at the
 * points named below; every action is logged in the daemon's log and the
 * session log and counted (gwp_stats).
 *
 *  - gwp_pool_session_check() on a greeting or EHLO refusal, and towards a
 *    known destination on a reply to MAIL or to the transaction's first
 *    RCPT: the address is retired; GWP_POOL_MOVE says relay.c may connect
 *    again from another address in the same session (and send the MAIL and
 *    what was pipelined with it again), before the tenant saw the verdict;
 *  - gwp_pool_session_answer() on a reply to MAIL, RCPT or the dot that the
 *    tenant is waiting for and relay.c did not move (MX mode, a RCPT after
 *    another was answered, the dot): a blocklist 5xx while the tenant has another
 *    address left becomes "451 4.7.1" with the destination's text (counted
 *    as pool_deferred), so the tenant's queue retries and the next session
 *    goes out from the other address; with no address left the 5xx goes
 *    through (it is then the truth for this tenant);
 *  - gwp_pool_session_leave() at MAIL: a connection whose address was
 *    retired meanwhile is closed, so the transaction goes out from another.
 *
 * Does not defend against: a destination that gives a blocklist wording to
 * a verdict about the mail itself (it is deferred until the tenant's
 * addresses run out, then bounced); a 5xx blocklist reply the proxy cannot
 * tell from its wording (pool_blocklist_words).
 */
#ifndef GWP_POOL_SESSION_H
#define GWP_POOL_SESSION_H

#include "relay.h"

/* Retire addr for r's destination (logged, counted): a refused connection or a blocklist verdict. */
void gwp_pool_session_retire(gwp_relay *r, const char *addr, const char *why);
/* A reply to the session bound to r->up_bind: a blocklist verdict retires it. What to do (pool.h). */
gwp_pool_act gwp_pool_session_check(gwp_relay *r, const gw_reply *rep);
/* 1 when the tenant has an address other than r->up_bind not retired for r->up_key. */
int gwp_pool_session_left(gwp_relay *r);
/*
 * The destination's reply rep (after ms) to a command the tenant waits for. 1: *out is the tenant's answer
 * instead (451 4.7.1), and the session log has both, the "<-" line marked as the proxy's; 0: rep goes as it
 * is (not logged here).
 */
int gwp_pool_session_answer(gwp_relay *r, const gw_reply *rep, long ms, gw_reply *out);
/* Before a transaction: QUIT a connection from an address retired since, when another is left. 1 when quit.
 */
int gwp_pool_session_leave(gwp_relay *r);

#endif
