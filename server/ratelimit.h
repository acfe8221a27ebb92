/*
 * ratelimit.h - per-tenant rate limits (issue 12; README "Rate limits"): one token bucket per
 * tenant with `rate_limit:`, refilled at requests_per_second and holding at most burst tokens.
 *
 * A bucket is one atomic 64-bit word, the time at which it would be full again (the "generic
 * cell rate algorithm" form of a token bucket: the same decisions, no refill arithmetic under a
 * lock). A check is a load and one compare-and-swap on the tenant's own word: thousands of
 * tenants cost nothing per request, and tenants never contend with each other.
 *
 * Buckets live in a registry owned by the long-lived backends (server/app.h) and are shared by
 * the configuration snapshots: a reload hands a tenant whose name and limit are unchanged the
 * bucket it had, so a reload neither refills nor empties it; a tenant whose limit changed gets
 * a new, full bucket. The registry's lock is taken only when a snapshot is built or freed,
 * never per request.
 */
#ifndef KS_SERVER_RATELIMIT_H
#define KS_SERVER_RATELIMIT_H

#include <stdint.h>

#include "common/status.h"

struct ks_ratelimit;          /* one tenant's bucket */
struct ks_ratelimit_registry; /* every bucket in use, by tenant name and limit */

/* A new, empty registry (caller destroys). KS_E_INTERNAL on OOM. */
ks_status ks_ratelimit_registry_create(struct ks_ratelimit_registry **out, struct ks_error *err);
/* Frees the registry and every bucket left in it. NULL is a no-op. */
void ks_ratelimit_registry_destroy(struct ks_ratelimit_registry *r);

/*
 * The bucket of tenant `name` with this limit (rps >= 1, burst >= 1): the one in use under the
 * same name and limit, or a new full one. Each call takes a reference that
 * ks_ratelimit_release gives back. NULL on OOM. Thread-safe.
 */
struct ks_ratelimit *ks_ratelimit_acquire(struct ks_ratelimit_registry *r, const char *name,
                                          uint64_t rps, uint64_t burst);
/* Drops one reference; the last removes the bucket. NULL bucket is a no-op. Thread-safe. */
void ks_ratelimit_release(struct ks_ratelimit_registry *r, struct ks_ratelimit *bucket);

/*
 * Takes one token at now_us (a monotonic clock in microseconds, passed in so that tests can
 * drive it). 1: allowed. 0: refused, nothing taken, and *retry_after_seconds (>= 1) is how
 * long until a token is there, rounded up to whole seconds (the Retry-After header).
 * Lock-free and thread-safe.
 */
int ks_ratelimit_take(struct ks_ratelimit *bucket, uint64_t now_us, unsigned *retry_after_seconds);

#endif
