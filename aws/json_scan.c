/*
 * json_scan.c - the flat, wiped JSON reader of aws/json_scan.h.
 */
#include "aws/json_scan.h"

#include <string.h>

#include "common/secret.h"
#include "common/utf8.h"
#include "common/util.h"

/* Nesting followed while skipping members nobody asked for (DescribeKey's KeyMetadata is 3
 * deep); deeper is not an AWS response. */
#define SCAN_DEPTH_MAX 32
/* Longest member name compared; longer names are never wanted and are skipped undecoded. */
#define SCAN_NAME_MAX 64

struct scanner {
    const char *p, *end;
};

static void skip_ws(struct scanner *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = ks_hex_digit(p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return 0;
}

/*
 * A \u escape at p (pointing at the backslash): a code point, or a surrogate pair written as
 * two escapes. Lone surrogates and U+0000 are refused. Returns the bytes consumed, or 0.
 */
static size_t unicode_escape(const char *p, const char *end, unsigned *cp)
{
    unsigned lo;
    if (end - p < 6 || hex4(p + 2, cp) != 0 || *cp == 0 || (*cp >= 0xdc00 && *cp <= 0xdfff))
        return 0;
    if (*cp < 0xd800 || *cp > 0xdbff)
        return 6;
    if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, &lo) != 0 || lo < 0xdc00 ||
        lo > 0xdfff)
        return 0;
    *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
    return 12;
}

/* One escape at p (the backslash): its decoded bytes into tmp. Bytes consumed, or 0. */
static size_t decode_escape(const char *p, const char *end, char tmp[4], size_t *n)
{
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    unsigned cp;
    size_t used;
    if (end - p < 2)
        return 0;
    const char *hit = p[1] != '\0' ? strchr(from, p[1]) : NULL;
    if (hit != NULL) {
        tmp[0] = to[hit - from];
        *n = 1;
        return 2;
    }
    if (p[1] != 'u' || (used = unicode_escape(p, end, &cp)) == 0)
        return 0;
    *n = ks_utf8_encode(cp, tmp);
    return used;
}

/*
 * The string at s->p (its opening quote), RFC 8259 section 7. With out (room for the raw
 * length + 1: decoding never grows a string) the decoded text goes there with a NUL and its
 * length into *out_len. Advances past the closing quote. 0, or -1 when malformed.
 */
static int scan_string(struct scanner *s, char *out, size_t *out_len)
{
    if (s->p >= s->end || *s->p != '"')
        return -1;
    const char *p = s->p + 1;
    size_t o = 0;
    while (p < s->end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        char tmp[4];
        size_t n = 1;
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            tmp[0] = (char)c;
            p++;
        } else {
            size_t used = decode_escape(p, s->end, tmp, &n);
            if (used == 0)
                return -1;
            p += used;
        }
        if (out)
            memcpy(out + o, tmp, n);
        o += n;
    }
    if (p >= s->end)
        return -1;
    if (out)
        out[o] = '\0';
    if (out_len)
        *out_len = o;
    s->p = p + 1;
    return 0;
}

static int scan_literal(struct scanner *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return -1;
    s->p += n;
    return 0;
}

static int scan_number(struct scanner *s)
{
    const char *start = s->p;
    while (s->p < s->end && *s->p != '\0' && strchr("+-0123456789.eE", *s->p))
        s->p++;
    return s->p > start ? 0 : -1;
}

static int scan_skip(struct scanner *s, int depth);

/* The members or elements of an object or array whose opening bracket s->p is at. */
static int scan_container(struct scanner *s, int depth)
{
    char close = *s->p == '{' ? '}' : ']';
    if (depth >= SCAN_DEPTH_MAX)
        return -1;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    for (;;) {
        if (close == '}') {
            skip_ws(s);
            if (scan_string(s, NULL, NULL) != 0)
                return -1;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return -1;
            s->p++;
        }
        if (scan_skip(s, depth + 1) != 0)
            return -1;
        skip_ws(s);
        if (s->p >= s->end)
            return -1;
        if (*s->p == close) {
            s->p++;
            return 0;
        }
        if (*s->p != ',')
            return -1;
        s->p++;
    }
}

/* Skips one value of any type (strings are checked, not decoded). 0, or -1 when malformed. */
static int scan_skip(struct scanner *s, int depth)
{
    skip_ws(s);
    if (s->p >= s->end)
        return -1;
    switch (*s->p) {
    case '"':
        return scan_string(s, NULL, NULL);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    case '{':
    case '[':
        return scan_container(s, depth);
    default:
        return scan_number(s);
    }
}

void ks_json_scan_free(struct ks_json_scan_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (f[i].value != NULL)
            ks_secret_free(f[i].value, f[i].cap);
        f[i].value = NULL;
        f[i].len = f[i].cap = 0;
    }
}

/* Decodes the string at s->p into f (a wiped buffer). 0, or -1 when malformed or on OOM. */
static int scan_field_value(struct scanner *s, struct ks_json_scan_field *f)
{
    struct scanner probe = *s;
    if (scan_string(&probe, NULL, NULL) != 0) /* finds the end: bounds the buffer */
        return -1;
    size_t raw = (size_t)(probe.p - s->p);
    f->value = (char *)ks_secret_alloc(raw);
    if (!f->value)
        return -1;
    f->cap = raw;
    return scan_string(s, f->value, &f->len);
}

/* The wanted field a member name matches, or NULL. Leaves s after the name. */
static int scan_member_name(struct scanner *s, struct ks_json_scan_field *f, size_t n,
                            struct ks_json_scan_field **hit)
{
    char name[SCAN_NAME_MAX + 1];
    size_t name_len = 0;
    struct scanner probe = *s;
    *hit = NULL;
    if (scan_string(&probe, NULL, NULL) != 0)
        return -1;
    if ((size_t)(probe.p - s->p) > SCAN_NAME_MAX + 2) {
        *s = probe; /* too long to be one we want */
        return 0;
    }
    if (scan_string(s, name, &name_len) != 0)
        return -1;
    for (size_t i = 0; i < n && !*hit; i++)
        if (f[i].name && strlen(f[i].name) == name_len && memcmp(f[i].name, name, name_len) == 0)
            *hit = &f[i];
    return 0;
}

/* One "name": value member of the top-level object. 0, or -1 when malformed. */
static int scan_member(struct scanner *s, struct ks_json_scan_field *f, size_t n)
{
    struct ks_json_scan_field *hit;
    skip_ws(s);
    if (scan_member_name(s, f, n, &hit) != 0)
        return -1;
    skip_ws(s);
    if (s->p >= s->end || *s->p != ':')
        return -1;
    s->p++;
    skip_ws(s);
    if (!hit)
        return scan_skip(s, 1);
    if (hit->seen)
        return -1; /* a wanted member given twice */
    hit->seen = 1;
    if (s->p < s->end && *s->p == '"')
        return scan_field_value(s, hit);
    return scan_literal(s, "null"); /* null is absent; any other type is malformed */
}

int ks_json_scan_object(const char *json, size_t len, struct ks_json_scan_field *f, size_t n)
{
    struct scanner s = {json, json + len};
    for (size_t i = 0; i < n; i++) {
        f[i].value = NULL;
        f[i].len = f[i].cap = 0;
        f[i].seen = 0;
    }
    if (json == NULL)
        return -1;
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return -1;
    s.p++;
    skip_ws(&s);
    if (s.p < s.end && *s.p == '}') {
        s.p++;
    } else {
        for (;;) {
            if (scan_member(&s, f, n) != 0)
                goto bad;
            skip_ws(&s);
            if (s.p < s.end && *s.p == '}') {
                s.p++;
                break;
            }
            if (s.p >= s.end || *s.p != ',')
                goto bad;
            s.p++;
        }
    }
    skip_ws(&s);
    if (s.p == s.end)
        return 0;
bad:
    ks_json_scan_free(f, n);
    return -1;
}
