/*
 * utf8.h - UTF-8 (RFC 3629): decoding one sequence, validity, UTF-16 length, and a display copy
 * for messages. Well-formed means: shortest form, no surrogates (U+D800..U+DFFF), at most
 * U+10FFFF, no truncated sequence. All functions are pure and thread-safe.
 */
#ifndef KS_COMMON_UTF8_H
#define KS_COMMON_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * Decodes the sequence at s (n bytes available, n > 0): its length 1..4 with *cp set, or 0 when
 * the bytes there do not start a well-formed sequence (*cp is then unspecified).
 */
size_t ks_utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Encodes cp (a scalar value: <= U+10FFFF, not a surrogate) into out; returns 1..4, or 0. */
size_t ks_utf8_encode(uint32_t cp, char out[4]);

/* 1 when the len bytes are well-formed UTF-8 (NUL counts as a valid code point). */
int ks_utf8_valid(const char *s, size_t len);

/* Number of UTF-16 code units of valid UTF-8 text (the MPL measures lengths in those). */
size_t ks_utf8_utf16_length(const char *s, size_t len);

/*
 * Writes len bytes of untrusted text into out (out_size >= 4 bytes, always NUL-terminated) for
 * display in a message: well-formed sequences are copied, every byte of an ill-formed sequence
 * and every control character (NUL included) becomes "\xNN". When the result does not fit, it is
 * cut on a character boundary and ends with "...". Returns the length written.
 */
size_t ks_utf8_display(const char *s, size_t len, char *out, size_t out_size);

/* The buffer size for a name shown in a message: 64 bytes and "..." (ks_utf8_display). */
#define KS_UTF8_NAME_SHOWN 68

#endif
