/*
 * test_readiness.c - server/readiness.h with fake pings: "starting" until a probe finished, ok
 * and unavailable from the ping's result, a ping past the deadline counts as "timeout" (also
 * when it answers late) and is not started again while stuck, recovery once it answers in time,
 * every change logged with the error code and log-only detail, and a stop that waits for no
 * period.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "server/readiness.h"

struct fake {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int hang;          /* hold every call until released */
    unsigned sleep_ms; /* answer after this long */
    ks_status result;
    int calls;
};

static void fake_init(struct fake *f, ks_status result)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->result = result;
}

static void fake_release(struct fake *f)
{
    pthread_mutex_lock(&f->lock);
    f->hang = 0;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

static int fake_calls(struct fake *f)
{
    int n;
    pthread_mutex_lock(&f->lock);
    n = f->calls;
    pthread_mutex_unlock(&f->lock);
    return n;
}

static ks_status fake_ping(void *arg, struct ks_error *err)
{
    struct fake *f = arg;
    ks_status st;
    pthread_mutex_lock(&f->lock);
    f->calls++;
    while (f->hang)
        pthread_cond_wait(&f->cond, &f->lock);
    st = f->result;
    pthread_mutex_unlock(&f->lock);
    if (f->sleep_ms)
        usleep(f->sleep_ms * 1000u);
    if (st != KS_OK) {
        ks_error_set(err, st, "KMS AccessDeniedException");
        ks_error_set_detail(err, "User: arn:aws:iam::111122223333:role/x is not authorized");
    }
    return st;
}

static struct ks_readiness *start(struct fake **fakes, const char **names, size_t n,
                                  unsigned interval_ms, unsigned timeout_ms, struct ks_log *log)
{
    struct ks_readiness_check checks[4];
    struct ks_readiness_options o = {interval_ms, timeout_ms, log};
    struct ks_readiness *r = NULL;
    struct ks_error err;
    size_t i;
    for (i = 0; i < n; i++) {
        checks[i].name = names[i];
        checks[i].ping = fake_ping;
        checks[i].arg = fakes[i];
    }
    cr_assert_eq(ks_readiness_start(checks, n, &o, &r, &err), KS_OK);
    return r;
}

static enum ks_readiness_state state(struct ks_readiness *r, size_t i)
{
    const char *name;
    return ks_readiness_state(r, i, &name);
}

/* Waits up to 3 s for check i to reach s. */
static int wait_state(struct ks_readiness *r, size_t i, enum ks_readiness_state s)
{
    uint64_t end = ks_monotonic_us() + 3000000u;
    while (ks_monotonic_us() < end) {
        if (state(r, i) == s)
            return 1;
        usleep(5000);
    }
    return 0;
}

Test(readiness, ok_and_unavailable_with_logged_reasons)
{
    struct fake ok, bad;
    struct fake *fakes[] = {&ok, &bad};
    const char *names[] = {"storage:a", "kms:b"};
    FILE *file = tmpfile();
    struct ks_log *log = NULL;
    struct ks_error lerr;
    char text[65536];
    size_t len;
    struct ks_readiness *r;
    const char *name;

    cr_assert_not_null(file);
    cr_assert_eq(ks_log_create(fileno(file), KS_LOG_DEBUG, NULL, &log, &lerr), KS_OK);
    fake_init(&ok, KS_OK);
    fake_init(&bad, KS_E_KMS);
    r = start(fakes, names, 2, 20, 1000, log);
    cr_assert(wait_state(r, 0, KS_READINESS_OK));
    cr_assert(wait_state(r, 1, KS_READINESS_UNAVAILABLE));
    cr_assert_eq(ks_readiness_overall(r), KS_READINESS_UNAVAILABLE);
    cr_assert_eq(ks_readiness_count(r), 2u);
    ks_readiness_state(r, 1, &name);
    cr_assert_str_eq(name, "kms:b");
    usleep(100000); /* several rounds: unchanged states are not logged again */
    ks_readiness_stop(r);
    ks_log_destroy(log);
    rewind(file);
    len = fread(text, 1, sizeof text - 1, file);
    text[len] = '\0';
    fclose(file);
    cr_assert_not_null(
        strstr(text, "\"check\":\"kms:b\",\"from\":\"starting\",\"to\":\"unavailable\""), "%s",
        text);
    {
        char want[128];
        snprintf(want, sizeof want, "\"error\":\"%s\"", ks_status_exception(KS_E_KMS));
        cr_assert_not_null(strstr(text, want), "%s", text);
    }
    cr_assert_not_null(strstr(text, "\"detail\":\"User: arn:aws:iam"), "%s", text);
    cr_assert_not_null(strstr(text, "\"msg\":\"not ready\",\"failing\":\"kms:b\""), "%s", text);
    cr_assert_null(
        strstr(strstr(text, "kms:b") + 1, "\"check\":\"kms:b\",\"from\":\"unavailable\""));
}

Test(readiness, starting_then_timeout_while_stuck_then_recovers)
{
    struct fake stuck;
    struct fake *fakes[] = {&stuck};
    const char *names[] = {"kms:stuck"};
    struct ks_readiness *r;
    uint64_t t0;

    fake_init(&stuck, KS_OK);
    stuck.hang = 1;
    t0 = ks_monotonic_us();
    r = start(fakes, names, 1, 20, 100, NULL);
    cr_assert_eq(state(r, 0), KS_READINESS_STARTING);
    cr_assert_eq(ks_readiness_overall(r), KS_READINESS_STARTING);
    cr_assert(wait_state(r, 0, KS_READINESS_TIMEOUT));
    cr_assert_geq(ks_monotonic_us() - t0, 90000u, "timed out before its deadline");
    usleep(200000);
    cr_assert_eq(fake_calls(&stuck), 1, "a stuck check is not probed again");
    cr_assert_eq(ks_readiness_overall(r), KS_READINESS_UNAVAILABLE);
    fake_release(&stuck);
    /* The late OK does not count; the next round's, in time, does. */
    cr_assert(wait_state(r, 0, KS_READINESS_OK));
    cr_assert_geq(fake_calls(&stuck), 2);
    ks_readiness_stop(r);
}

Test(readiness, a_late_answer_stays_timeout)
{
    struct fake slow;
    struct fake *fakes[] = {&slow};
    const char *names[] = {"storage:slow"};
    struct ks_readiness *r;

    fake_init(&slow, KS_OK);
    slow.sleep_ms = 120;
    r = start(fakes, names, 1, 10, 50, NULL);
    cr_assert(wait_state(r, 0, KS_READINESS_TIMEOUT));
    usleep(400000);
    cr_assert_geq(fake_calls(&slow), 2);
    cr_assert_eq(state(r, 0), KS_READINESS_TIMEOUT);
    ks_readiness_stop(r);
}

Test(readiness, stop_waits_for_no_period)
{
    struct fake ok;
    struct fake *fakes[] = {&ok};
    const char *names[] = {"storage:a"};
    struct ks_readiness *r;
    uint64_t t0;

    fake_init(&ok, KS_OK);
    r = start(fakes, names, 1, 600000, 1000, NULL);
    cr_assert(wait_state(r, 0, KS_READINESS_OK));
    t0 = ks_monotonic_us();
    ks_readiness_stop(r);
    cr_assert_lt(ks_monotonic_us() - t0, 200000u);
}

Test(readiness, no_checks_is_ready_and_null_is_starting)
{
    struct ks_readiness *r = start(NULL, NULL, 0, 1000, 1000, NULL);
    const char *name;
    cr_assert_eq(ks_readiness_overall(r), KS_READINESS_OK);
    ks_readiness_stop(r);
    cr_assert_eq(ks_readiness_count(NULL), 0u);
    cr_assert_eq(ks_readiness_state(NULL, 0, &name), KS_READINESS_STARTING);
    cr_assert_eq(ks_readiness_overall(NULL), KS_READINESS_STARTING);
}
