/*
 * backoff.h - the one retry policy of keystored's AWS calls: the AWS SDKs' "standard" mode
 * (docs/reference/aws-apis.md section 4). Full-jitter exponential backoff, a throttling base
 * separate from the transient base, a 20 s cap, and the per-client retry quota (token bucket).
 *
 * Sleeping goes through struct ks_aws_sleep so that tests record the delays the policy asks for
 * instead of waiting them out; aws/client.c takes one in its options and storage/dynamodb.c
 * backs off through the client (ks_aws_client_backoff), so both follow the same hooks.
 */
#ifndef KS_AWS_BACKOFF_H
#define KS_AWS_BACKOFF_H

#include <pthread.h>
#include <stdint.h>

/* Section 4, "Suggested keystored policy". */
#define KS_AWS_BACKOFF_THROTTLE_BASE_MS 1000u
#define KS_AWS_BACKOFF_TRANSIENT_BASE_MS 50u
#define KS_AWS_BACKOFF_CAP_MS 20000u
/* Section 4, retry quota: a bucket of 500, a retry costs 5 (10 after a timeout), a first-try
 * success refunds 1, a success after retries refunds its last cost. */
#define KS_AWS_QUOTA_INITIAL 500u
#define KS_AWS_QUOTA_RETRY_COST 5u
#define KS_AWS_QUOTA_TIMEOUT_COST 10u
#define KS_AWS_QUOTA_SUCCESS_REFUND 1u

/*
 * How to wait. Every member may be NULL: sleep_ms defaults to nanosleep (restarted on EINTR),
 * jitter_ms to a uniform draw in [0, ceiling_ms) from OpenSSL's CSPRNG. ctx is passed to both.
 * Tests set sleep_ms to record and jitter_ms to return ceiling_ms, which makes the delays the
 * policy's ceilings exactly.
 */
struct ks_aws_sleep {
    void (*sleep_ms)(void *ctx, uint64_t ms);
    uint64_t (*jitter_ms)(void *ctx, uint64_t ceiling_ms);
    void *ctx;
};

/* min(base_ms * 2^retry_index, KS_AWS_BACKOFF_CAP_MS); retry_index 0 is the first retry. */
uint64_t ks_aws_backoff_ceiling_ms(unsigned base_ms, unsigned retry_index);

/* Waits a jittered delay below the ceiling through hooks (NULL: the defaults); returns the
 * delay waited, in ms. Thread-safe when the hooks are. */
uint64_t ks_aws_backoff_sleep(const struct ks_aws_sleep *hooks, unsigned base_ms,
                              unsigned retry_index);

/* Waits exactly ms through hooks (NULL: nanosleep): fixed polling intervals. */
void ks_aws_sleep_ms(const struct ks_aws_sleep *hooks, uint64_t ms);

/*
 * The retry quota of one client. Members are private; embed it, then init/destroy.
 * acquire and release are thread-safe.
 */
struct ks_aws_retry_quota {
    pthread_mutex_t lock;
    unsigned tokens;
};

void ks_aws_retry_quota_init(struct ks_aws_retry_quota *q);
void ks_aws_retry_quota_destroy(struct ks_aws_retry_quota *q);

/* Takes the cost of one retry (after a timeout when timed_out). Returns the cost taken, or 0
 * when the bucket cannot pay it: then no retry may happen. */
unsigned ks_aws_retry_quota_acquire(struct ks_aws_retry_quota *q, int timed_out);

/* Refunds after a success: KS_AWS_QUOTA_SUCCESS_REFUND when it took no retry (last_cost 0),
 * else last_cost; the bucket never exceeds KS_AWS_QUOTA_INITIAL. */
void ks_aws_retry_quota_release(struct ks_aws_retry_quota *q, unsigned last_cost);

/* Tokens left (for tests and metrics). */
unsigned ks_aws_retry_quota_tokens(struct ks_aws_retry_quota *q);

/*
 * Process-wide retry counts for GET /metrics (issue 12): every backoff wait is one retry, by
 * its base (the throttling base: throttled; any other: transient, timeouts included), and every
 * retry the quota refused. aws/ is the lowest layer, so it only counts; handlers/metrics.c
 * reads them here. Thread-safe (relaxed atomics).
 */
struct ks_aws_retry_stats {
    unsigned long long throttled;       /* retries after a throttling error */
    unsigned long long transient;       /* retries after a transient error or a timeout */
    unsigned long long quota_exhausted; /* retries not made: the retry quota was empty */
};
void ks_aws_retry_stats_get(struct ks_aws_retry_stats *out);

#endif
