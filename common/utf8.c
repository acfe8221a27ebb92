/*
 * utf8.c - one UTF-8 decoder (the well-formed byte sequences of Unicode's table "Well-Formed
 * UTF-8 Byte Sequences", which RFC 3629 section 4 restates as a grammar) and what is built on it.
 */
#include "common/utf8.h"

#include <stdio.h>
#include <string.h>

size_t ks_utf8_decode(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char lo = 0x80, hi = 0xbf; /* bounds of the second byte, then of every later one */
    size_t len, i;
    uint32_t v;

    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
        v = p[0] & 0x1fu;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        v = p[0] & 0x0fu;
        if (p[0] == 0xe0)
            lo = 0xa0; /* shorter forms are overlong */
        else if (p[0] == 0xed)
            hi = 0x9f; /* ED A0..BF would encode the surrogates */
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        v = p[0] & 0x07u;
        if (p[0] == 0xf0)
            lo = 0x90; /* overlong */
        else if (p[0] == 0xf4)
            hi = 0x8f; /* beyond U+10FFFF */
    } else {
        return 0; /* continuation byte, C0/C1 (always overlong), F5..FF */
    }
    if (n < len)
        return 0;
    for (i = 1; i < len; i++) {
        if (p[i] < lo || p[i] > hi)
            return 0;
        v = v << 6 | (p[i] & 0x3fu);
        lo = 0x80;
        hi = 0xbf;
    }
    *cp = v;
    return len;
}

size_t ks_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp >= 0xd800 && cp <= 0xdfff)
        return 0;
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    if (cp > 0x10ffff)
        return 0;
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int ks_utf8_valid(const char *s, size_t len)
{
    size_t i = 0, n;
    uint32_t cp;
    while (i < len) {
        if (!(n = ks_utf8_decode(s + i, len - i, &cp)))
            return 0;
        i += n;
    }
    return 1;
}

size_t ks_utf8_utf16_length(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i, units = 0;
    for (i = 0; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            units += (p[i] & 0xf8) == 0xf0 ? 2 : 1;
    }
    return units;
}

/* The display form of the character at s: its bytes, or "\xNN" for one byte that is a control
 * character or does not start a well-formed sequence. Sets *used to the input bytes consumed. */
static size_t display_piece(const char *s, size_t n, char piece[5], size_t *used)
{
    uint32_t cp;
    size_t len = ks_utf8_decode(s, n, &cp);
    if (len == 0 || cp < 0x20 || cp == 0x7f) {
        snprintf(piece, 5, "\\x%02x", (unsigned)(unsigned char)s[0]);
        *used = 1;
        return 4;
    }
    memcpy(piece, s, len);
    *used = len;
    return len;
}

size_t ks_utf8_display(const char *s, size_t len, char *out, size_t out_size)
{
    static const char ellipsis[] = "...";
    const size_t cap = out_size - 1, el = sizeof ellipsis - 1;
    size_t i = 0, o = 0, mark = 0; /* mark: the last boundary after which "..." still fits */

    while (i < len) {
        char piece[5];
        size_t used, n = display_piece(s + i, len - i, piece, &used);
        if (o + n > cap) {
            memcpy(out + mark, ellipsis, el);
            o = mark + el;
            break;
        }
        memcpy(out + o, piece, n);
        o += n;
        i += used;
        if (o + el <= cap)
            mark = o;
    }
    out[o] = '\0';
    return o;
}
