/*
 * admission.h - the refusals that protect the service itself (issue 12; README "Rate limits"):
 * a tenant over its rate_limit gets 429 ThrottlingException, and a request over the global
 * server.max_in_flight_requests gets 503 at once instead of queueing. Both set Retry-After.
 * Called by server/server.c; the state they read lives elsewhere (server/ratelimit.h for the
 * buckets, handlers/http_metrics.h for the in-flight count). Thread-safe.
 */
#ifndef KS_SERVER_ADMISSION_H
#define KS_SERVER_ADMISSION_H

#include "handlers/http_metrics.h"
#include "server/app.h"

/*
 * Takes one token from tenant's bucket (no rate_limit: always KS_OK). Empty: KS_E_THROTTLED,
 * *retry_after_seconds set (>= 1), the refusal counted in m. Unauthenticated routes never get
 * here: they have no tenant.
 */
ks_status ks_admission_tenant(const struct ks_app *app, const struct ks_tenant_config *tenant,
                              struct ks_http_metrics *m, unsigned *retry_after_seconds,
                              struct ks_error *err);

/*
 * in_flight (this request included) over server.max_in_flight_requests: KS_E_UNAVAILABLE,
 * counted in m. GET /healthz and /readyz are never refused: a saturated server is alive, and
 * its readiness says what it says.
 */
ks_status ks_admission_in_flight(const struct ks_server_config *limits, long in_flight,
                                 const char *url, struct ks_http_metrics *m, struct ks_error *err);

#endif
