/*
 * backoff.c - the retry policy of aws/backoff.h (docs/reference/aws-apis.md section 4).
 */
#include "aws/backoff.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>

#include <openssl/rand.h>

/* Process-wide counters (docs/style.md "No mutable globals": counters only, no configuration):
 * every AWS client of the process retries through this file, and /metrics reports the sum. */
static _Atomic unsigned long long retries_throttled, retries_transient, retries_refused;

void ks_aws_retry_stats_get(struct ks_aws_retry_stats *out)
{
    out->throttled = atomic_load_explicit(&retries_throttled, memory_order_relaxed);
    out->transient = atomic_load_explicit(&retries_transient, memory_order_relaxed);
    out->quota_exhausted = atomic_load_explicit(&retries_refused, memory_order_relaxed);
}

uint64_t ks_aws_backoff_ceiling_ms(unsigned base_ms, unsigned retry_index)
{
    uint64_t ceiling = base_ms;
    for (unsigned i = 0; i < retry_index && ceiling < KS_AWS_BACKOFF_CAP_MS; i++)
        ceiling *= 2u;
    return ceiling > KS_AWS_BACKOFF_CAP_MS ? KS_AWS_BACKOFF_CAP_MS : ceiling;
}

/* Uniform in [0, ceiling) from OpenSSL's CSPRNG (never the C library's PRNG). 0 if the RNG
 * fails: no wait is still a correct, if impolite, backoff. */
static uint64_t default_jitter(uint64_t ceiling_ms)
{
    uint32_t r;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        return 0;
    return (ceiling_ms * r) >> 32;
}

static void default_sleep(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000u), .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void ks_aws_sleep_ms(const struct ks_aws_sleep *hooks, uint64_t ms)
{
    if (hooks != NULL && hooks->sleep_ms != NULL)
        hooks->sleep_ms(hooks->ctx, ms);
    else
        default_sleep(ms);
}

uint64_t ks_aws_backoff_sleep(const struct ks_aws_sleep *hooks, unsigned base_ms,
                              unsigned retry_index)
{
    uint64_t ceiling = ks_aws_backoff_ceiling_ms(base_ms, retry_index);
    uint64_t delay;

    atomic_fetch_add_explicit(base_ms == KS_AWS_BACKOFF_THROTTLE_BASE_MS ? &retries_throttled
                                                                         : &retries_transient,
                              1, memory_order_relaxed);
    delay = hooks != NULL && hooks->jitter_ms != NULL ? hooks->jitter_ms(hooks->ctx, ceiling)
                                                      : default_jitter(ceiling);
    if (delay > ceiling)
        delay = ceiling;
    ks_aws_sleep_ms(hooks, delay);
    return delay;
}

void ks_aws_retry_quota_init(struct ks_aws_retry_quota *q)
{
    pthread_mutex_init(&q->lock, NULL);
    q->tokens = KS_AWS_QUOTA_INITIAL;
}

void ks_aws_retry_quota_destroy(struct ks_aws_retry_quota *q)
{
    pthread_mutex_destroy(&q->lock);
}

unsigned ks_aws_retry_quota_acquire(struct ks_aws_retry_quota *q, int timed_out)
{
    unsigned cost = timed_out ? KS_AWS_QUOTA_TIMEOUT_COST : KS_AWS_QUOTA_RETRY_COST;
    pthread_mutex_lock(&q->lock);
    if (q->tokens >= cost)
        q->tokens -= cost;
    else
        cost = 0;
    pthread_mutex_unlock(&q->lock);
    if (cost == 0)
        atomic_fetch_add_explicit(&retries_refused, 1, memory_order_relaxed);
    return cost;
}

void ks_aws_retry_quota_release(struct ks_aws_retry_quota *q, unsigned last_cost)
{
    unsigned amount = last_cost == 0 ? KS_AWS_QUOTA_SUCCESS_REFUND : last_cost;
    pthread_mutex_lock(&q->lock);
    q->tokens =
        q->tokens + amount > KS_AWS_QUOTA_INITIAL ? KS_AWS_QUOTA_INITIAL : q->tokens + amount;
    pthread_mutex_unlock(&q->lock);
}

unsigned ks_aws_retry_quota_tokens(struct ks_aws_retry_quota *q)
{
    pthread_mutex_lock(&q->lock);
    unsigned t = q->tokens;
    pthread_mutex_unlock(&q->lock);
    return t;
}
