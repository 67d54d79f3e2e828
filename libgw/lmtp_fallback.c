/*
 * lmtp_fallback.c - deliver one message across an ordered list of gateways
 * (gw/lmtp.h): each gateway gets only the recipients that are still
 * temporarily failed (and, unless opts.uncertain_final, uncertain).
 *
 * Delivered (2xx) and permanently failed (5xx) recipients are final the
 * moment they are decided, so a recipient a gateway accepted is never offered
 * again. The body is rewound before each gateway after the first that read
 * it; a body that cannot be rewound ends the fallback, and the recipients
 * left keep their last (temporary) result. Callbacks fire once per recipient,
 * after the last gateway, with the final result.
 *
 * Does not defend against: a gateway that accepted a recipient and lost it
 * (nothing can tell); MX lookups that block (gw_route_expand).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/log.h"
#include "lmtp_int.h"

/* Should this recipient go on to the next gateway? */
static int retry(const gw_lmtp *l, const gw_lmtp_result *r)
{
	return r->state == GW_LMTP_PENDING || r->state == GW_LMTP_TEMPFAIL ||
	       (r->state == GW_LMTP_UNCERTAIN && !l->o.uncertain_final);
}

/* Recipients never tried get a temporary failure saying why. */
static void leave_pending(const gw_lmtp_txn *txn, gw_lmtp_result *res, const char *why)
{
	size_t i;

	for (i = 0; i < txn->nrcpts; i++)
		if (res[i].state == GW_LMTP_PENDING)
			lm_result_local(&res[i], GW_LMTP_TEMPFAIL, GW_LMTP_STAGE_CONNECT, 0, "4.4.0", why,
					"");
}

static gw_status final_status(const gw_lmtp *l, const gw_lmtp_txn *txn, const gw_lmtp_result *res,
			      gw_status last)
{
	size_t i;

	for (i = 0; i < txn->nrcpts; i++)
		if (retry(l, &res[i]) || res[i].state == GW_LMTP_UNCERTAIN)
			return last != GW_OK ? last : GW_OK;
	return GW_OK;
}

gw_status gw_lmtp_send_fallback(gw_lmtp *l, const gw_nexthop *hops, size_t nhops, const gw_lmtp_txn *txn,
				gw_lmtp_result *results_r)
{
	size_t *sel, nsel, h, i;
	gw_status s = GW_OK;
	int used = 0, body_read = 0;

	if (l == NULL || (nhops > 0 && hops == NULL) || !lm_txn_ok(txn, results_r))
		return GW_E_LOCAL;
	if (txn->nrcpts == 0)
		return GW_OK;
	memset(results_r, 0, txn->nrcpts * sizeof(*results_r));
	sel = malloc(txn->nrcpts * sizeof(*sel));
	if (sel == NULL)
		return GW_E_LOCAL;
	lm_details_reset(l);
	for (h = 0; h < nhops; h++) {
		for (nsel = 0, i = 0; i < txn->nrcpts; i++)
			if (retry(l, &results_r[i]))
				sel[nsel++] = i;
		if (nsel == 0)
			break;
		if (body_read) {
			gw_lmtp_body *b = txn->body;

			if (b->rewind == NULL || b->rewind(b->rewind_ctx) < 0) {
				gw_log(GW_LOG_WARNING, "lmtp_fallback",
				       "body cannot be re-read; %zu recipients left for a later attempt",
				       nsel);
				break;
			}
		}
		s = lm_attempt(l, &hops[h], txn, sel, nsel, results_r, &used);
		body_read |= used;
	}
	free(sel);
	leave_pending(txn, results_r, nhops == 0 ? "no gateway to try" : "not tried");
	s = final_status(l, txn, results_r, s);
	lm_report(txn, results_r);
	return s;
}

gw_status gw_lmtp_send_route(gw_lmtp *l, const gw_route *route, int use_mx, const gw_lmtp_txn *txn,
			     gw_lmtp_result *results_r)
{
	const size_t max = GW_ROUTE_HOPS_MAX * GW_MX_MAX;
	char err[256] = "", text[GW_LMTP_TEXT_MAX];
	gw_nexthop *hops;
	gw_status s;
	size_t n = 0;

	if (l == NULL || route == NULL || !lm_txn_ok(txn, results_r))
		return GW_E_LOCAL;
	if (!route->has_proto) {
		snprintf(text, sizeof(text), "route %s has transport %s, not smtp, relay or lmtp", route->key,
			 route->transport);
		memset(results_r, 0, txn->nrcpts * sizeof(*results_r));
		leave_pending(txn, results_r, text);
		lm_report(txn, results_r);
		return GW_E_LOCAL;
	}
	if (lm_set_proto(l, route->proto) < 0)
		return GW_E_LOCAL;
	hops = malloc(max * sizeof(*hops)); /* about 48 KB: not on the stack */
	if (hops == NULL)
		return GW_E_LOCAL;
	if (gw_route_expand(route, use_mx, hops, max, &n, err, sizeof(err)) != GW_LOOKUP_FOUND || n == 0) {
		free(hops);
		snprintf(text, sizeof(text), "no next hop for route %s: %s", route->key,
			 err[0] ? err : "none");
		memset(results_r, 0, txn->nrcpts * sizeof(*results_r));
		leave_pending(txn, results_r, text);
		lm_report(txn, results_r);
		return GW_E_RESOLVE;
	}
	s = gw_lmtp_send_fallback(l, hops, n, txn, results_r);
	free(hops);
	return s;
}
