/*
 * test_ratelimit.c - per-tenant token buckets (server/ratelimit.h) on an injected clock: burst,
 * refill rate, Retry-After rounding, a refusal costs nothing, tenants are independent, the
 * registry hands an unchanged limit the same bucket across "reloads" and a changed one a new
 * one; and the in-flight cap of server/admission.h.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "server/admission.h"
#include "server/ratelimit.h"

#define S 1000000ull /* one second in microseconds */

static struct ks_ratelimit_registry *reg;

static void setup(void)
{
    struct ks_error err;
    cr_assert_eq(ks_ratelimit_registry_create(&reg, &err), KS_OK);
}

static void teardown(void)
{
    ks_ratelimit_registry_destroy(reg);
}

TestSuite(ratelimit, .init = setup, .fini = teardown);

/* How many of n requests at `at` pass. */
static unsigned allowed(struct ks_ratelimit *b, uint64_t at, unsigned n, unsigned *retry)
{
    unsigned ok = 0, i;
    for (i = 0; i < n; i++)
        ok += (unsigned)ks_ratelimit_take(b, at, retry);
    return ok;
}

Test(ratelimit, burst_then_refusal_with_retry_after)
{
    struct ks_ratelimit *b = ks_ratelimit_acquire(reg, "t", 2, 3);
    unsigned retry = 0;
    uint64_t t0 = 1000 * S;

    cr_assert_not_null(b);
    cr_expect_eq(allowed(b, t0, 3, &retry), 3, "a full bucket serves its burst");
    cr_expect_eq(ks_ratelimit_take(b, t0, &retry), 0, "the 4th at once is refused");
    cr_expect_eq(retry, 1, "0.5 s to the next token, rounded up to 1 s");
    /* 0.5 s later exactly one token is back (2 per second). */
    cr_expect_eq(allowed(b, t0 + S / 2, 2, &retry), 1);
    cr_expect_eq(retry, 1);
    ks_ratelimit_release(reg, b);
}

Test(ratelimit, refill_rate_and_cap)
{
    struct ks_ratelimit *b = ks_ratelimit_acquire(reg, "t", 10, 5);
    unsigned retry = 0;
    uint64_t t0 = 50 * S;

    cr_expect_eq(allowed(b, t0, 100, &retry), 5);
    /* one second refills 10 tokens, but the bucket holds 5 */
    cr_expect_eq(allowed(b, t0 + 10 * S, 100, &retry), 5);
    /* 0.3 s: 3 tokens */
    cr_expect_eq(allowed(b, t0 + 10 * S + 3 * S / 10, 100, &retry), 3);
    ks_ratelimit_release(reg, b);
}

Test(ratelimit, retry_after_rounds_up_whole_seconds)
{
    struct ks_ratelimit *b = ks_ratelimit_acquire(reg, "slow", 1, 1);
    unsigned retry = 0;
    uint64_t t0 = 7 * S;

    cr_expect_eq(ks_ratelimit_take(b, t0, &retry), 1);
    cr_expect_eq(ks_ratelimit_take(b, t0 + 1, &retry), 0);
    cr_expect_eq(retry, 1, "just under 1 s: 1");
    cr_expect_eq(ks_ratelimit_take(b, t0 + S, &retry), 1, "one second later: allowed");
    ks_ratelimit_release(reg, b);
}

Test(ratelimit, refusals_cost_nothing)
{
    struct ks_ratelimit *b = ks_ratelimit_acquire(reg, "t", 1, 2);
    unsigned retry = 0;
    uint64_t t0 = 100 * S;

    cr_expect_eq(allowed(b, t0, 2, &retry), 2);
    cr_expect_eq(allowed(b, t0 + S / 2, 1000, &retry), 0, "hammering while empty");
    cr_expect_eq(ks_ratelimit_take(b, t0 + S, &retry), 1,
                 "the token due at +1 s is there although 1000 requests were refused");
    ks_ratelimit_release(reg, b);
}

Test(ratelimit, tenants_are_independent)
{
    struct ks_ratelimit *a = ks_ratelimit_acquire(reg, "a", 2, 3);
    struct ks_ratelimit *c = ks_ratelimit_acquire(reg, "c", 2, 3);
    unsigned retry = 0;

    cr_assert_neq(a, c);
    cr_expect_eq(allowed(a, 5 * S, 10, &retry), 3);
    cr_expect_eq(allowed(c, 5 * S, 10, &retry), 3, "a's empty bucket does not touch c's");
    ks_ratelimit_release(reg, a);
    ks_ratelimit_release(reg, c);
}

/* A reload builds the new snapshot (acquire) before the old one is freed (release). */
Test(ratelimit, reload_keeps_an_unchanged_bucket_and_renews_a_changed_one)
{
    struct ks_ratelimit *old = ks_ratelimit_acquire(reg, "t", 2, 3), *same, *changed;
    unsigned retry = 0;

    cr_expect_eq(allowed(old, 9 * S, 3, &retry), 3);
    same = ks_ratelimit_acquire(reg, "t", 2, 3);
    ks_ratelimit_release(reg, old);
    cr_expect_eq(same, old, "same name and limit: the same bucket");
    cr_expect_eq(ks_ratelimit_take(same, 9 * S, &retry), 0, "still empty after the reload");
    changed = ks_ratelimit_acquire(reg, "t", 2, 5);
    ks_ratelimit_release(reg, same);
    cr_expect_eq(allowed(changed, 9 * S, 10, &retry), 5, "a changed limit starts full");
    ks_ratelimit_release(reg, changed);
}

Test(ratelimit, many_tenants)
{
    static struct ks_ratelimit *b[5000];
    unsigned retry = 0;
    char name[32];
    size_t i;

    for (i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "tenant-%zu", i);
        b[i] = ks_ratelimit_acquire(reg, name, 1, 1);
        cr_assert_not_null(b[i]);
    }
    for (i = 0; i < 5000; i++)
        cr_expect_eq(ks_ratelimit_take(b[i], 3 * S, &retry), 1, "tenant %zu", i);
    for (i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "tenant-%zu", i);
        cr_expect_eq(ks_ratelimit_acquire(reg, name, 1, 1), b[i], "found again after growth");
        ks_ratelimit_release(reg, b[i]);
        ks_ratelimit_release(reg, b[i]);
    }
}

struct race {
    struct ks_ratelimit *b;
    unsigned ok;
};

static void *hammer(void *arg)
{
    struct race *r = arg;
    unsigned retry, i;
    for (i = 0; i < 10000; i++)
        r->ok += (unsigned)ks_ratelimit_take(r->b, 42 * S, &retry);
    return NULL;
}

Test(ratelimit, concurrent_takes_never_exceed_the_burst)
{
    struct ks_ratelimit *b = ks_ratelimit_acquire(reg, "t", 1, 100);
    struct race r[4];
    pthread_t th[4];
    unsigned total = 0;
    int i;

    for (i = 0; i < 4; i++) {
        r[i].b = b;
        r[i].ok = 0;
        cr_assert_eq(pthread_create(&th[i], NULL, hammer, &r[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += r[i].ok;
    }
    cr_expect_eq(total, 100, "exactly the burst passed at one instant");
    ks_ratelimit_release(reg, b);
}

Test(ratelimit, in_flight_cap)
{
    struct ks_server_config sc;
    struct ks_error err;

    memset(&sc, 0, sizeof sc);
    sc.max_in_flight_requests = 2;
    cr_expect_eq(ks_admission_in_flight(&sc, 2, "/v1/keystores/x", NULL, &err), KS_OK);
    cr_expect_eq(ks_admission_in_flight(&sc, 3, "/v1/keystores/x", NULL, &err), KS_E_UNAVAILABLE);
    cr_expect_eq(ks_admission_in_flight(&sc, 3, "/healthz", NULL, &err), KS_OK);
    cr_expect_eq(ks_admission_in_flight(&sc, 3, "/readyz", NULL, &err), KS_OK);
}
