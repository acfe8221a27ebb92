/*
 * admission.c - rate limits and the in-flight cap (admission.h).
 */
#include "server/admission.h"

#include <string.h>

#include "common/util.h"
#include "server/ratelimit.h"

ks_status ks_admission_tenant(const struct ks_app *app, const struct ks_tenant_config *tenant,
                              struct ks_http_metrics *m, unsigned *retry_after_seconds,
                              struct ks_error *err)
{
    struct ks_ratelimit *bucket = ks_app_tenant_limit(app, tenant);
    if (!bucket || ks_ratelimit_take(bucket, ks_monotonic_us(), retry_after_seconds))
        return KS_OK;
    if (m)
        ks_http_metrics_rate_limited(m);
    /* The tenant's own limit: no name in the message beyond what the caller already knows. */
    return ks_error_set(err, KS_E_THROTTLED,
                        "rate limit exceeded (%llu requests per second, burst %llu); retry after "
                        "%u s",
                        (unsigned long long)tenant->rate_limit.requests_per_second,
                        (unsigned long long)tenant->rate_limit.burst, *retry_after_seconds);
}

ks_status ks_admission_in_flight(const struct ks_server_config *limits, long in_flight,
                                 const char *url, struct ks_http_metrics *m, struct ks_error *err)
{
    if (in_flight <= (long)limits->max_in_flight_requests || !url || strcmp(url, "/healthz") == 0 ||
        strcmp(url, "/readyz") == 0)
        return KS_OK;
    if (m)
        ks_http_metrics_shed(m);
    return ks_error_set(err, KS_E_UNAVAILABLE, "too many requests in flight (over %u); retry",
                        limits->max_in_flight_requests);
}
