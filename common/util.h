/*
 * util.h - small helpers: UUIDv4, the injectable clock, timestamps, hex.
 * All functions are thread-safe.
 */
#ifndef KS_COMMON_UTIL_H
#define KS_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "common/utf8.h" /* the UTF-8 helpers lived here; callers may include it directly */

#define KS_UUID_LEN 36

/* Writes a random lowercase hyphenated UUIDv4 and a NUL into out (37 bytes). 0, or -1 if the
 * random source failed. */
int ks_uuid_v4(char out[KS_UUID_LEN + 1]);

/* 1 when s is a lowercase hyphenated UUID (any version). */
int ks_uuid_is_valid(const char *s);

/*
 * The clock, passed down from the server context so tests can inject one (docs/style.md "No mutable
 * globals"). now_us returns microseconds since the Unix epoch.
 */
struct ks_clock {
    uint64_t (*now_us)(void *ctx);
    void *ctx;
};

/* The system clock (CLOCK_REALTIME). */
const struct ks_clock *ks_clock_system(void);

/* Monotonic microseconds, for latencies. */
uint64_t ks_monotonic_us(void);

/*
 * ISO 8601 UTC with microseconds, "YYYY-MM-DDTHH:MM:SS.ssssssZ" (27 chars + NUL): the SPEC's
 * create-time format (docs/reference/branch-key-store.md section 2).
 */
void ks_timestamp_iso8601(uint64_t epoch_us, char out[28]);

/* Lowercase hex of len bytes into out (2*len+1). */
void ks_hex_encode(const void *data, size_t len, char *out);

/* The value of one hex digit (either case), or -1. */
int ks_hex_digit(char c);

/*
 * Percent-encodes len bytes of s as RFC 3986 section 2 and SigV4 want it: the unreserved bytes
 * A-Z a-z 0-9 - . _ ~ (and '/' when keep_slash, for paths) stay, every other byte becomes %XX
 * with uppercase hex (docs/reference/aws-apis.md section 6). Returns the encoded length (without
 * the NUL), like snprintf: when it is >= out_size nothing usable was written (out is then "").
 * out may be NULL (out_size 0) to measure.
 */
size_t ks_percent_encode(const char *s, size_t len, int keep_slash, char *out, size_t out_size);

/*
 * Percent-decodes len bytes of s into a new NUL-terminated string (*out_len excludes the NUL);
 * '+' becomes a space when plus_is_space (query strings). NULL on a bad escape, an escaped NUL
 * (%00) or OOM. Caller frees.
 */
char *ks_percent_decode(const char *s, size_t len, int plus_is_space, size_t *out_len);

/* Parses exactly 2*len hex digits (either case). 0, or -1. */
int ks_hex_decode(const char *hex, unsigned char *out, size_t len);

/*
 * A NUL-terminated copy of n bytes that need not be NUL-terminated themselves (strndup may read
 * past them looking for a NUL, and sanitizers with strict string checks refuse it). Caller frees;
 * NULL on OOM. Not for secrets (use common/secret.h).
 */
char *ks_bytes_to_string(const void *p, size_t n);

#endif
