/*
 * gw/metrics_http.h - a tiny HTTP/1.0 responder for a daemon's metrics: one
 * thread answers "GET /metrics" on a listening socket with the text a
 * callback writes (Content-Type: text/plain; version=0.0.4, the Prometheus
 * text format), 404 for any other path, 405 for any other method, 400 for
 * a request it cannot read. One request per connection, served one at a
 * time.
 *
 * Does not defend against: many slow clients (each holds the thread for at
 * most the 2 s read timeout, so a flood of them delays scrapes but cannot
 * grow memory or threads); anyone who can reach the address reading the
 * counters (bind it to loopback or a management network; there is no TLS
 * and no authentication).
 */
#ifndef GW_METRICS_HTTP_H
#define GW_METRICS_HTTP_H

#include "gw/export.h"

#include <stddef.h>

typedef struct gw_metrics_http gw_metrics_http;

/* Writes the exposition into out (NUL-terminated); its length, or 0 when it failed or did not fit. */
typedef size_t (*gw_metrics_text_fn)(void *arg, char *out, size_t outlen);

/*
 * A listening socket for spec, "[address]:port" (bound as the caller, so a
 * port below 1024 needs root: call it before dropping privileges). The fd,
 * or -1 with err.
 */
GW_API int gw_metrics_http_listen(const char *spec, char *err, size_t errlen);
/*
 * Serve lfd (a listening socket, e.g. from gw_daemon_listen, which the
 * responder owns from here on, even when it fails) from a new thread,
 * calling text(arg, ...) for each scrape (from that thread). The responder,
 * or NULL with err.
 */
GW_API gw_metrics_http *gw_metrics_http_start(int lfd, gw_metrics_text_fn text, void *arg, char *err,
					      size_t errlen);
/* Stop the thread, close the socket, free, set *h to NULL. NULL is fine. */
GW_API void gw_metrics_http_stop(gw_metrics_http **h);

#endif
