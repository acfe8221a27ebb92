/*
 * test_aws_time.c - ISO-8601 parsing of aws/time.h, as the credential sources write it
 * (docs/reference/aws-apis.md section 5): fractions, offsets, calendar limits, garbage.
 */
#include <criterion/criterion.h>

#include <stdint.h>

#include "aws/time.h"

Test(aws_time, valid_timestamps)
{
    static const struct {
        const char *text;
        uint64_t epoch;
    } cases[] = {
        {"2015-08-30T12:36:00Z", 1440938160},
        {"2015-08-30T12:36:00.123456Z", 1440938160}, /* the fraction is dropped */
        {"2015-08-30t12:36:00z", 1440938160},
        {"2015-08-30 12:36:00Z", 1440938160},
        {"2015-08-30T14:36:00+02:00", 1440938160},
        {"2015-08-30T07:06:00-05:30", 1440938160},
        {"2024-02-29T00:00:00Z", 1709164800}, /* leap day */
        {"2000-02-29T23:59:59Z", 951868799},  /* divisible by 400: leap */
        {"1970-01-01T00:00:01Z", 1},
        {"2038-01-19T03:14:08Z", 2147483648ull}, /* past 32-bit time_t */
        {"9999-12-31T23:59:59Z", 253402300799ull},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t got = 0;
        cr_expect_eq(ks_aws_time_parse_iso8601(cases[i].text, &got), 0, "%s", cases[i].text);
        cr_expect_eq(got, cases[i].epoch, "%s: %llu", cases[i].text, (unsigned long long)got);
    }
}

Test(aws_time, invalid_timestamps_are_refused)
{
    static const char *const bad[] = {
        "",
        "2015-08-30",
        "2015-08-30T12:36:00",       /* no zone */
        "2015-08-30T12:36:00Zjunk",  /* trailing bytes */
        "2015-08-30T12:36:00.Z",     /* empty fraction */
        "2015-08-30T12:36:00+0200",  /* offset without colon */
        "2015-08-30T12:36:00+24:00", /* offset hour */
        "2015-13-01T00:00:00Z",      /* month */
        "2015-00-01T00:00:00Z",
        "2015-02-29T00:00:00Z", /* not a leap year */
        "1900-02-29T00:00:00Z", /* divisible by 100: not leap */
        "2015-04-31T00:00:00Z", /* April has 30 days */
        "2015-08-30T24:00:00Z", /* hour */
        "2015-08-30T12:60:00Z", /* minute */
        "2015-08-30T12:36:61Z", /* second (60 is a leap second, allowed) */
        "2015/08/30T12:36:00Z",
        "2O15-08-30T12:36:00Z", /* letter O */
        "1970-01-01T00:00:00Z", /* not after the epoch */
        "1969-12-31T23:59:59Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t got = 42;
        cr_expect_eq(ks_aws_time_parse_iso8601(bad[i], &got), -1, "%s", bad[i]);
        cr_expect_eq(got, 42, "%s: output touched", bad[i]);
    }
    uint64_t got;
    cr_expect_eq(ks_aws_time_parse_iso8601(NULL, &got), -1);
}
