/*
 * time.c - ISO-8601 parsing for aws/time.h, without the C library's locale- and
 * timezone-dependent strptime/mktime.
 */
#include "aws/time.h"

#include <string.h>

/* n decimal digits at s into *out. 0, or -1. */
static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (the days-from-civil
 * algorithm published by Howard Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* The zone designator at t: Z, or +HH:MM / -HH:MM, then the end. Offset seconds, or -1. */
static int parse_zone(const char *t, int64_t *offset)
{
    int oh, om;
    if ((*t == 'Z' || *t == 'z') && t[1] == '\0') {
        *offset = 0;
        return 0;
    }
    if ((*t != '+' && *t != '-') || strlen(t) != 6 || t[3] != ':' || digits(t + 1, 2, &oh) ||
        digits(t + 4, 2, &om) || oh > 23 || om > 59)
        return -1;
    *offset = (*t == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
    return 0;
}

int ks_aws_time_parse_iso8601(const char *s, uint64_t *out)
{
    int y, mo, d, h, mi, sec;
    if (s == NULL || strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
        return -1;
    const char *t = s + 19;
    if (*t == '.') {
        t++;
        if (*t < '0' || *t > '9')
            return -1;
        while (*t >= '0' && *t <= '9')
            t++;
    }
    int64_t offset;
    if (parse_zone(t, &offset) != 0)
        return -1;
    int64_t epoch =
        days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    if (epoch <= 0)
        return -1;
    *out = (uint64_t)epoch;
    return 0;
}
