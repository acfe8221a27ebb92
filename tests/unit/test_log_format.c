/*
 * test_log_format.c - the log's own number and time formatting (common/log.c, which stopped
 * using snprintf on the access line's path): each must print what snprintf printed before.
 */
#include <criterion/criterion.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static uint64_t now_us;
static uint64_t clock_now(void *ctx)
{
    (void)ctx;
    return now_us;
}
static const struct ks_clock test_clock = {clock_now, NULL};

/* One line with the given members, read back from a pipe. */
static void line_of(char *out, size_t cap, long long i, double ms)
{
    struct ks_log *log = NULL;
    struct ks_log_line line;
    struct ks_error err;
    int fds[2];
    ssize_t n;

    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(ks_log_create(fds[1], KS_LOG_INFO, &test_clock, &log, &err), KS_OK);
    ks_log_begin(&line, log, KS_LOG_INFO, "e");
    ks_log_int(&line, "i", i);
    ks_log_ms(&line, "ms", ms);
    ks_log_end(&line);
    n = read(fds[0], out, cap - 1);
    cr_assert_gt(n, 0);
    out[n] = '\0';
    ks_log_destroy(log);
    close(fds[0]);
    close(fds[1]);
}

static void expect_as_snprintf(long long i, double ms)
{
    char got[512], want[256], when[28];

    line_of(got, sizeof got, i, ms);
    ks_timestamp_iso8601(now_us, when);
    snprintf(want, sizeof want,
             "{\"time\":\"%s\",\"level\":\"info\",\"event\":\"e\",\"i\":%lld,\"ms\":%.3f}\n", when,
             i, ms);
    cr_expect_str_eq(got, want);
}

Test(log_format, integers_as_snprintf)
{
    static const long long values[] = {0,         1,        -1, 9, 10, 405, -405, 1234567890123LL,
                                       LLONG_MAX, LLONG_MIN};
    size_t k;
    now_us = 1700000000123456ull;
    for (k = 0; k < sizeof values / sizeof values[0]; k++)
        expect_as_snprintf(values[k], 0.0);
}

/* Latencies as the server computes them: whole microseconds over 1000. */
Test(log_format, latencies_as_snprintf)
{
    long long us;
    now_us = 1700000000000001ull;
    for (us = 0; us < 3000000; us += 997)
        expect_as_snprintf(1, (double)us / 1000.0);
    expect_as_snprintf(1, 1.25);
    expect_as_snprintf(1, 123456789.5);
}

/* The per-thread date cache must follow the clock across seconds, minutes and days. */
Test(log_format, time_follows_the_clock)
{
    static const uint64_t times[] = {1700000000999999ull, 1700000001000000ull, 1700000059999999ull,
                                     1700000060000000ull, 1700006399999999ull, 1700006400000000ull,
                                     1700000000000000ull};
    size_t k;
    for (k = 0; k < sizeof times / sizeof times[0]; k++) {
        now_us = times[k];
        expect_as_snprintf(7, 0.5);
    }
}

Test(log_format, not_a_number_is_zero)
{
    char got[512];
    now_us = 1700000000000000ull;
    line_of(got, sizeof got, 0, 0.0 / 0.0);
    cr_expect(strstr(got, "\"ms\":0}") != NULL, "%s", got);
    line_of(got, sizeof got, 0, 1e300);
    cr_expect(strstr(got, "\"ms\":0}") != NULL, "%s", got);
}
