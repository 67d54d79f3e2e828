/*
 * lmtpd_metrics.c - gw-lmtpd's counters in Prometheus text format (see lmtpd_metrics.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "lmtpd_metrics.h"

typedef struct out {
	char *p;
	size_t len, cap;
	int full;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len)
		o->full = 1;
	else
		o->len += (size_t)n;
}

/* One metric without labels: HELP, TYPE and the sample. */
static void one(out *o, const char *name, const char *type, const char *help, unsigned long v)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n%s %lu\n", name, help, name, type, name, v);
}

size_t gwl_metrics_text(const gwl_counters *c, char *buf, size_t size)
{
	out o = {buf, 0, size, 0};
	const gwl_relay_stats *r = &c->relay;

	if (size == 0)
		return 0;
	buf[0] = '\0';
	one(&o, "gw_lmtpd_sessions", "gauge", "LMTP sessions open now.", c->sessions);
	one(&o, "gw_lmtpd_sessions_total", "counter", "LMTP sessions accepted.", c->sessions_total);
	one(&o, "gw_lmtpd_transactions_total", "counter", "Messages relayed (one per DATA).",
	    r->transactions);
	put(&o,
	    "# HELP gw_lmtpd_recipients_total Recipients by the answer given for them.\n"
	    "# TYPE gw_lmtpd_recipients_total counter\n"
	    "gw_lmtpd_recipients_total{result=\"delivered\"} %lu\n"
	    "gw_lmtpd_recipients_total{result=\"tempfail\"} %lu\n"
	    "gw_lmtpd_recipients_total{result=\"permfail\"} %lu\n"
	    "gw_lmtpd_recipients_total{result=\"uncertain\"} %lu\n",
	    r->delivered, r->tempfail, r->permfail, r->uncertain);
	one(&o, "gw_lmtpd_late_total", "counter",
	    "Recipients whose outcome came after the deadline (answered 451 already).", r->late);
	one(&o, "gw_lmtpd_connections_reused_total", "counter", "Outbound connections reused.",
	    r->connections_reused);
	one(&o, "gw_lmtpd_dane_verified_total", "counter",
	    "Recipients delivered through a DANE-verified session.", r->dane_verified);
	one(&o, "gw_lmtpd_dane_failed_total", "counter", "Recipients DANE kept from a host.", r->dane_failed);
	one(&o, "gw_lmtpd_healthy", "gauge", "1 when the relay thinks it can reach the outside.",
	    c->healthy ? 1UL : 0UL);
	return o.full ? 0 : o.len;
}
