#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

int ks_uuid_v4(char out[KS_UUID_LEN + 1])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, KS_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return 0;
}

int ks_uuid_is_valid(const char *s)
{
    size_t i;
    if (strlen(s) != KS_UUID_LEN)
        return 0;
    for (i = 0; i < KS_UUID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static uint64_t system_now_us(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const struct ks_clock system_clock = {system_now_us, NULL};

const struct ks_clock *ks_clock_system(void)
{
    return &system_clock;
}

uint64_t ks_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void ks_timestamp_iso8601(uint64_t epoch_us, char out[28])
{
    time_t secs = (time_t)(epoch_us / 1000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* Bounded fields (years past 9999 are not representable in the format anyway). */
    snprintf(out, 28, "%04u-%02u-%02uT%02u:%02u:%02u.%06uZ", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u,
             (unsigned)(epoch_us % 1000000u));
}

void ks_hex_encode(const void *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    size_t i;
    for (i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
}

int ks_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t ks_percent_encode(const char *s, size_t len, int keep_slash, char *out, size_t out_size)
{
    static const char upper[] = "0123456789ABCDEF";
    size_t i, o = 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        char esc[3] = {'%', upper[c >> 4], upper[c & 15]};
        size_t n = plain ? 1 : 3;
        if (out && o + n < out_size)
            memcpy(out + o, plain ? (const char *)&s[i] : esc, n);
        o += n;
    }
    if (out && out_size > 0)
        out[o < out_size ? o : 0] = '\0';
    return o;
}

char *ks_percent_decode(const char *s, size_t len, int plus_is_space, size_t *out_len)
{
    char *out = malloc(len + 1);
    size_t i, o = 0;
    if (!out)
        return NULL;
    for (i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < len ? ks_hex_digit(s[i + 1]) : -1;
            int lo = i + 2 < len ? ks_hex_digit(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi | lo) == 0) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = plus_is_space && s[i] == '+' ? ' ' : s[i];
        }
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return out;
}

int ks_hex_decode(const char *hex, unsigned char *out, size_t len)
{
    size_t i;
    if (strlen(hex) != 2 * len)
        return -1;
    for (i = 0; i < len; i++) {
        int hi = ks_hex_digit(hex[2 * i]), lo = ks_hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

char *ks_bytes_to_string(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}
