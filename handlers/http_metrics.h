/*
 * http_metrics.h - the HTTP front end's own metrics (issue 12; README "Metrics"): requests by
 * route template, method and status, a latency histogram by route and method, requests in
 * flight, and the requests refused by a tenant's rate limit (429) or the in-flight cap (503).
 *
 * The server (server/server.c) records, GET /metrics (handlers/metrics.c) writes. Labels are
 * bounded by construction: a route is an index into the router's table (its template, never the
 * raw path: no key store name, key id or tenant), a method one of eight names ("other" for any
 * token a client invents), a status one of a fixed list ("other" beyond it). The counters are
 * preallocated atomics: recording takes no lock and never allocates. One object lives as long as
 * the server (reloads keep the counts). Thread-safe.
 */
#ifndef KS_HANDLERS_HTTP_METRICS_H
#define KS_HANDLERS_HTTP_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/status.h"

struct ks_http_metrics;

/* routes[0..n_routes) are the route templates: the array is copied, the strings are borrowed
 * (static strings that outlive the object). KS_E_INTERNAL on OOM. */
ks_status ks_http_metrics_create(const char *const *routes, size_t n_routes,
                                 struct ks_http_metrics **out, struct ks_error *err);
void ks_http_metrics_destroy(struct ks_http_metrics *m);

/* A request began (past its headers): returns the number in flight, this one included. */
long ks_http_metrics_enter(struct ks_http_metrics *m);
/* Requests in flight now. */
long ks_http_metrics_in_flight(const struct ks_http_metrics *m);

/*
 * A request that entered ended: route is an index into the routes given at create, or -1 when
 * none matched (labelled "-", as in the access log); status 0 (no answer sent: the client went
 * away) counts in flight and duration only.
 */
void ks_http_metrics_leave(struct ks_http_metrics *m, int route, const char *method, int status,
                           uint64_t elapsed_us);

/* A request refused by its tenant's rate limit (429), or by server.max_in_flight_requests. */
void ks_http_metrics_rate_limited(struct ks_http_metrics *m);
void ks_http_metrics_shed(struct ks_http_metrics *m);

/* Writes the families above in the Prometheus text format 0.0.4. m NULL writes them empty. */
void ks_http_metrics_write(const struct ks_http_metrics *m, FILE *f);

#endif
