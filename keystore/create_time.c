/*
 * create_time.c - the create-time formats of the MPL runtimes (keystore/create_time.h;
 * docs/reference/branch-key-store.md section 10).
 */
#include "keystore/create_time.h"

#include <string.h>
#include <time.h>

/* n digits at s into *v; 0 or -1. */
static int digits(const char *s, int n, int *v)
{
    int i;
    *v = 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

/* The fraction and zone after "YYYY-MM-DDTHH:MM:SS": *us and the zone offset in seconds. */
static int parse_tail(const char *p, int64_t *us, int64_t *offset)
{
    int n = 0, h, m;
    *us = 0;
    if (*p == '.') {
        for (p++; p[n] >= '0' && p[n] <= '9'; n++)
            if (n < 6)
                *us = *us * 10 + (p[n] - '0');
        if (n < 1 || n > 9)
            return -1;
        for (int i = n; i < 6; i++)
            *us *= 10;
        p += n;
    }
    *offset = 0;
    if (p[0] == 'Z' && p[1] == '\0')
        return 0;
    if ((p[0] != '+' && p[0] != '-') || digits(p + 1, 2, &h) || p[3] != ':' ||
        digits(p + 4, 2, &m) || p[6] != '\0' || h > 23 || m > 59)
        return -1;
    *offset = (p[0] == '-' ? -1 : 1) * (int64_t)(h * 3600 + m * 60);
    return 0;
}

int ks_create_time_parse(const char *s, int64_t *epoch_us)
{
    int y, mo, d, h, mi, sec;
    int64_t us, offset;
    struct tm tm;

    if (!s || strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || s[10] != 'T' || digits(s + 11, 2, &h) ||
        s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
        parse_tail(s + 19, &us, &offset) != 0)
        return -1;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *epoch_us = ((int64_t)timegm(&tm) - offset) * 1000000 + us;
    return 0;
}

int ks_create_time_cmp(const char *time_a, const char *version_a, const char *time_b,
                       const char *version_b)
{
    int64_t a = 0, b = 0;
    int ok_a = ks_create_time_parse(time_a, &a) == 0;
    int ok_b = ks_create_time_parse(time_b, &b) == 0;

    if (ok_a != ok_b)
        return ok_a ? -1 : 1; /* unparseable last */
    if (ok_a && a != b)
        return a > b ? -1 : 1; /* newest first */
    return strcmp(version_a, version_b);
}
