/*
 * test_aws_backoff.c - the retry policy of aws/backoff.h (docs/reference/aws-apis.md
 * section 4) on its own: ceilings, the jitter bound, the sleep hooks, and the retry quota.
 * The client-level behaviour (which waits happen when) is in test_aws_client.c.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdint.h>

#include "aws/backoff.h"

struct recorder {
    uint64_t slept[16];
    size_t n;
    uint64_t jitter_reply; /* UINT64_MAX: return the ceiling */
};

static void record(void *ctx, uint64_t ms)
{
    struct recorder *r = ctx;
    if (r->n < 16)
        r->slept[r->n] = ms;
    r->n++;
}

static uint64_t jitter(void *ctx, uint64_t ceiling)
{
    struct recorder *r = ctx;
    return r->jitter_reply == UINT64_MAX ? ceiling : r->jitter_reply;
}

Test(aws_backoff, ceilings_double_from_the_base_up_to_20_s)
{
    cr_expect_eq(ks_aws_backoff_ceiling_ms(KS_AWS_BACKOFF_THROTTLE_BASE_MS, 0), 1000);
    cr_expect_eq(ks_aws_backoff_ceiling_ms(KS_AWS_BACKOFF_THROTTLE_BASE_MS, 1), 2000);
    cr_expect_eq(ks_aws_backoff_ceiling_ms(KS_AWS_BACKOFF_THROTTLE_BASE_MS, 4), 16000);
    cr_expect_eq(ks_aws_backoff_ceiling_ms(KS_AWS_BACKOFF_THROTTLE_BASE_MS, 5), 20000);
    cr_expect_eq(ks_aws_backoff_ceiling_ms(KS_AWS_BACKOFF_THROTTLE_BASE_MS, 1000), 20000);
    cr_expect_eq(ks_aws_backoff_ceiling_ms(KS_AWS_BACKOFF_TRANSIENT_BASE_MS, 0), 50);
    cr_expect_eq(ks_aws_backoff_ceiling_ms(KS_AWS_BACKOFF_TRANSIENT_BASE_MS, 3), 400);
    cr_expect_eq(ks_aws_backoff_ceiling_ms(25, 2), 100); /* DynamoDB's transient base */
    cr_expect_eq(ks_aws_backoff_ceiling_ms(25000, 0), 20000, "a base over the cap is capped");
    cr_expect_eq(ks_aws_backoff_ceiling_ms(0, 3), 0);
}

Test(aws_backoff, sleep_goes_through_the_hooks)
{
    struct recorder r = {.jitter_reply = UINT64_MAX};
    struct ks_aws_sleep hooks = {record, jitter, &r};
    cr_expect_eq(ks_aws_backoff_sleep(&hooks, 1000, 0), 1000);
    cr_expect_eq(ks_aws_backoff_sleep(&hooks, 1000, 9), 20000);
    r.jitter_reply = 7;
    cr_expect_eq(ks_aws_backoff_sleep(&hooks, 50, 1), 7);
    /* A hook that answers above the ceiling is clamped: the cap holds whatever the jitter. */
    r.jitter_reply = 999999;
    cr_expect_eq(ks_aws_backoff_sleep(&hooks, 50, 0), 50);
    ks_aws_sleep_ms(&hooks, 123);
    cr_assert_eq(r.n, 5);
    const uint64_t want[] = {1000, 20000, 7, 50, 123};
    for (size_t i = 0; i < 5; i++)
        cr_expect_eq(r.slept[i], want[i], "sleep %zu", i);
}

Test(aws_backoff, default_jitter_stays_below_the_ceiling)
{
    /* Only the jitter is the default here; the sleep is still recorded (no waiting). */
    struct recorder r = {0};
    struct ks_aws_sleep hooks = {record, NULL, &r};
    int below_half = 0;
    for (int i = 0; i < 200; i++) {
        uint64_t d = ks_aws_backoff_sleep(&hooks, 1000, 2);
        cr_assert_lt(d, 4000);
        below_half += d < 2000;
    }
    /* Full jitter is uniform: 200 draws all in one half would be a broken RNG (p = 2^-199). */
    cr_expect_gt(below_half, 0);
    cr_expect_lt(below_half, 200);
}

Test(aws_backoff, quota_costs_refunds_and_exhaustion)
{
    struct ks_aws_retry_quota q;
    ks_aws_retry_quota_init(&q);
    cr_expect_eq(ks_aws_retry_quota_tokens(&q), KS_AWS_QUOTA_INITIAL);
    cr_expect_eq(ks_aws_retry_quota_acquire(&q, 0), 5);
    cr_expect_eq(ks_aws_retry_quota_acquire(&q, 1), 10);
    cr_expect_eq(ks_aws_retry_quota_tokens(&q), 485);
    ks_aws_retry_quota_release(&q, 10); /* success after a retry: its last cost back */
    cr_expect_eq(ks_aws_retry_quota_tokens(&q), 495);
    ks_aws_retry_quota_release(&q, 0); /* first-try success: 1 */
    cr_expect_eq(ks_aws_retry_quota_tokens(&q), 496);
    for (int i = 0; i < 10; i++)
        ks_aws_retry_quota_release(&q, 0);
    cr_expect_eq(ks_aws_retry_quota_tokens(&q), KS_AWS_QUOTA_INITIAL, "never above 500");
    int retries = 0;
    while (ks_aws_retry_quota_acquire(&q, 0) != 0)
        retries++;
    cr_expect_eq(retries, 100);
    cr_expect_eq(ks_aws_retry_quota_tokens(&q), 0);
    cr_expect_eq(ks_aws_retry_quota_acquire(&q, 1), 0);
    ks_aws_retry_quota_release(&q, 0);
    ks_aws_retry_quota_release(&q, 0);
    ks_aws_retry_quota_release(&q, 0);
    ks_aws_retry_quota_release(&q, 0);
    cr_expect_eq(ks_aws_retry_quota_acquire(&q, 0), 0, "4 tokens do not pay for a retry");
    ks_aws_retry_quota_release(&q, 0);
    cr_expect_eq(ks_aws_retry_quota_acquire(&q, 0), 5);
    ks_aws_retry_quota_destroy(&q);
}
