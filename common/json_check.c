/*
 * json_check.c - the pre-scan of json_check.h: an iterative RFC 8259 recognizer with a stack of
 * open arrays and objects. Each object's member names are decoded into one arena (never longer
 * than the text: every escape decodes to fewer bytes than it takes) and checked for duplicates
 * by sorting when the object closes. A problem inside a string is remembered and the string is
 * read to its end first, so that the message can show the whole member name.
 */
#include "common/json_check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "common/util.h"

#define PATH_SHOWN 96 /* bytes of a member path shown in a message */

struct name_rec {
    const char *name; /* decoded, in the arena */
    size_t len;
    size_t at; /* offset of its opening quote */
};

struct frame {
    char kind;         /* '{' or '[' */
    size_t first_rec;  /* this object's names are recs[first_rec .. n_recs) */
    size_t arena_mark; /* arena length when it opened */
    size_t index;      /* array: the current element */
    const char *name;  /* object: the current member's decoded name (NULL before the first) */
    size_t name_len;
};

struct scan {
    const char *p;
    size_t len, pos;
    unsigned max_depth;
    unsigned flags; /* KS_JSON_* */
    struct frame *stack;
    size_t depth;
    char *arena;
    size_t arena_len;
    struct name_rec *recs;
    size_t n_recs, cap_recs;
    struct ks_error *err;
};

/* A problem found inside a string: the first one wins. */
struct string_problem {
    char what[48];
    size_t at;
};

enum want { WANT_VALUE, WANT_MEMBER, WANT_NEXT };

/* --- messages -------------------------------------------------------------------------- */

static ks_status syntax(struct scan *s, const char *what)
{
    unsigned char c = s->pos < s->len ? (unsigned char)s->p[s->pos] : 0;
    if (s->pos >= s->len)
        return ks_error_set(s->err, KS_E_INVALID,
                            "body: malformed JSON (unexpected end of input at byte %zu)", s->pos);
    if (c > 0x20 && c < 0x7f)
        return ks_error_set(s->err, KS_E_INVALID,
                            "body: malformed JSON (%s, found '%c' at byte %zu)", what, c, s->pos);
    return ks_error_set(s->err, KS_E_INVALID,
                        "body: malformed JSON (%s, found byte 0x%02x at byte %zu)", what, c,
                        s->pos);
}

/* Appends the display form of text to buf (NUL-terminated, size bytes) as far as it fits. */
static void append(char *buf, size_t size, const char *text, size_t len)
{
    size_t used = strlen(buf);
    if (size - used >= 4)
        ks_utf8_display(text, len, buf + used, size - used);
}

/*
 * The member path of the current position ("encryptionContext.role", "a[2].b") into buf. With
 * parent_only the innermost object's current member is left out (for a problem with a member
 * name itself, or with the object as a whole).
 */
static void describe(const struct scan *s, int parent_only, char *buf, size_t size)
{
    size_t i;
    buf[0] = '\0';
    for (i = 0; i < s->depth; i++) {
        const struct frame *f = &s->stack[i];
        if (f->kind == '[') {
            char idx[32];
            snprintf(idx, sizeof idx, "[%zu]", f->index);
            append(buf, size, idx, strlen(idx));
        } else if (f->name && !(parent_only && i + 1 == s->depth)) {
            if (buf[0])
                append(buf, size, ".", 1);
            append(buf, size, f->name,
                   f->name_len < KS_UTF8_NAME_SHOWN - 4 ? f->name_len : KS_UTF8_NAME_SHOWN - 4);
        }
    }
}

/* "body: member name "x" in a.b: <what> (byte n)" or, for a value, "body: a.b: <what> ..." */
static ks_status string_error(struct scan *s, const char *name, size_t name_len, const char *what,
                              size_t at)
{
    char path[PATH_SHOWN], shown[KS_UTF8_NAME_SHOWN];
    describe(s, name != NULL, path, sizeof path);
    if (!name)
        return ks_error_set(s->err, KS_E_INVALID, "body: %s%s%s (byte %zu)", path,
                            path[0] ? ": " : "", what, at);
    ks_utf8_display(name, name_len, shown, sizeof shown);
    return ks_error_set(s->err, KS_E_INVALID, "body: member name \"%s\"%s%s: %s (byte %zu)", shown,
                        path[0] ? " in " : "", path, what, at);
}

/* --- strings --------------------------------------------------------------------------- */

static void problem(struct string_problem *pb, size_t at, const char *what)
{
    if (pb->what[0] == '\0') {
        snprintf(pb->what, sizeof pb->what, "%s", what);
        pb->at = at;
    }
}

/* The four hex digits at p[0..3] (avail bytes there) into *v; 0, or -1. */
static int hex4(const char *p, size_t avail, uint32_t *v)
{
    size_t i;
    *v = 0;
    if (avail < 4)
        return -1;
    for (i = 0; i < 4; i++) {
        int d = ks_hex_digit(p[i]);
        if (d < 0)
            return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* Appends n decoded bytes to the arena when the string is a member name (out non-zero). */
static void emit(struct scan *s, int out, const char *b, size_t n)
{
    if (out) {
        memcpy(s->arena + s->arena_len, b, n);
        s->arena_len += n;
    }
}

/*
 * A \u escape at s->pos (the backslash): a scalar value, a surrogate pair, or a problem (NUL, lone
 * surrogate). A lone surrogate is kept as its six characters so that the message shows it.
 */
static ks_status unicode_escape(struct scan *s, int out, struct string_problem *pb)
{
    const size_t at = s->pos;
    uint32_t cp, lo;
    char enc[4];
    char what[48];

    if (hex4(s->p + at + 2, s->len - at - 2, &cp) != 0) {
        s->pos += 2;
        return syntax(s, "expected four hex digits after \\u");
    }
    s->pos += 6;
    if (cp >= 0xd800 && cp <= 0xdbff && s->len - s->pos >= 6 && s->p[s->pos] == '\\' &&
        s->p[s->pos + 1] == 'u' && hex4(s->p + s->pos + 2, 4, &lo) == 0 && lo >= 0xdc00 &&
        lo <= 0xdfff) {
        s->pos += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    } else if (cp >= 0xd800 && cp <= 0xdfff) {
        snprintf(what, sizeof what, "unpaired UTF-16 surrogate \\u%.4s", s->p + at + 2);
        problem(pb, at, what);
        emit(s, out, s->p + at, 6);
        return KS_OK;
    } else if (cp == 0 && (out || !(s->flags & KS_JSON_NUL_IN_VALUES))) {
        /* out is set for member names only (emit); values may hold it when the caller reads
         * them with their lengths (json_check.h). */
        problem(pb, at, "NUL (\\u0000) is not allowed");
    }
    emit(s, out, enc, ks_utf8_encode(cp, enc));
    return KS_OK;
}

/* A backslash escape at s->pos (RFC 8259 section 7). */
static ks_status escape(struct scan *s, int out, struct string_problem *pb)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit;
    if (s->len - s->pos < 2) {
        s->pos = s->len;
        return syntax(s, "");
    }
    if (s->p[s->pos + 1] == 'u')
        return unicode_escape(s, out, pb);
    hit = s->p[s->pos + 1] ? strchr(from, s->p[s->pos + 1]) : NULL;
    if (!hit) {
        s->pos++;
        return syntax(s, "bad escape in a string");
    }
    emit(s, out, &to[hit - from], 1);
    s->pos += 2;
    return KS_OK;
}

/* One raw character at s->pos inside a string (not a quote or backslash). */
static void raw_char(struct scan *s, int out, struct string_problem *pb)
{
    unsigned char c = (unsigned char)s->p[s->pos];
    uint32_t cp;
    size_t n = 1;
    if (c == 0)
        problem(pb, s->pos, "NUL is not allowed"); /* raw: never, whatever the flags */
    else if (c < 0x20)
        problem(pb, s->pos, "unescaped control character");
    else if (c >= 0x80 && !(n = ks_utf8_decode(s->p + s->pos, s->len - s->pos, &cp))) {
        problem(pb, s->pos, "invalid UTF-8");
        n = 1;
    }
    emit(s, out, s->p + s->pos, n);
    s->pos += n;
}

/*
 * The string at s->pos (its opening quote). A member name (is_name) is decoded into the arena
 * and becomes the innermost object's current member.
 */
static ks_status scan_string(struct scan *s, int is_name)
{
    struct string_problem pb = {{0}, 0};
    const size_t start = s->arena_len, at = s->pos;
    struct frame *top = s->depth ? &s->stack[s->depth - 1] : NULL;
    ks_status st;

    s->pos++;
    for (;;) {
        if (s->pos >= s->len)
            return syntax(s, "");
        if (s->p[s->pos] == '"')
            break;
        if (s->p[s->pos] == '\\') {
            if ((st = escape(s, is_name, &pb)) != KS_OK)
                return st;
        } else {
            raw_char(s, is_name, &pb);
        }
    }
    s->pos++;
    if (pb.what[0])
        return string_error(s, is_name ? s->arena + start : NULL, s->arena_len - start, pb.what,
                            pb.at);
    if (is_name) {
        if (s->n_recs == s->cap_recs) {
            size_t cap = s->cap_recs ? 2 * s->cap_recs : 16;
            struct name_rec *r = realloc(s->recs, cap * sizeof *r);
            if (!r)
                return ks_error_set(s->err, KS_E_INTERNAL, "out of memory");
            s->recs = r;
            s->cap_recs = cap;
        }
        s->recs[s->n_recs++] = (struct name_rec){s->arena + start, s->arena_len - start, at};
        top->name = s->arena + start;
        top->name_len = s->arena_len - start;
    }
    return KS_OK;
}

/* --- numbers and literals -------------------------------------------------------------- */

static size_t digits(struct scan *s)
{
    size_t n = 0;
    while (s->pos < s->len && s->p[s->pos] >= '0' && s->p[s->pos] <= '9') {
        s->pos++;
        n++;
    }
    return n;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? (RFC 8259 section 6). */
static ks_status scan_number(struct scan *s)
{
    if (s->p[s->pos] == '-')
        s->pos++;
    if (s->pos < s->len && s->p[s->pos] == '0')
        s->pos++;
    else if (digits(s) == 0)
        return syntax(s, "expected a digit");
    if (s->pos < s->len && s->p[s->pos] == '.') {
        s->pos++;
        if (digits(s) == 0)
            return syntax(s, "expected a digit after '.'");
    }
    if (s->pos < s->len && (s->p[s->pos] == 'e' || s->p[s->pos] == 'E')) {
        s->pos++;
        if (s->pos < s->len && (s->p[s->pos] == '+' || s->p[s->pos] == '-'))
            s->pos++;
        if (digits(s) == 0)
            return syntax(s, "expected a digit in the exponent");
    }
    return KS_OK;
}

static ks_status scan_literal(struct scan *s)
{
    static const char *const words[] = {"true", "false", "null"};
    size_t i;
    for (i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);
        if (s->len - s->pos >= n && memcmp(s->p + s->pos, words[i], n) == 0) {
            s->pos += n;
            return KS_OK;
        }
    }
    return syntax(s, "expected a value");
}

/* --- structure ------------------------------------------------------------------------- */

static int cmp_rec(const void *a, const void *b)
{
    const struct name_rec *x = a, *y = b;
    int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* The innermost object's names, sorted: two equal neighbours are a duplicate (the later one is
 * reported). */
static ks_status check_duplicates(struct scan *s)
{
    const struct frame *f = &s->stack[s->depth - 1];
    size_t n = s->n_recs - f->first_rec, i;
    struct name_rec *r;

    if (n < 2)
        return KS_OK;
    /* Only now: before any member name s->recs is NULL, and NULL + 0 is undefined behaviour
     * (UBSan, found by tests/fuzz on "{}"; tests/fuzz/regressions/json_check/). */
    r = s->recs + f->first_rec;
    qsort(r, n, sizeof *r, cmp_rec);
    for (i = 1; i < n; i++)
        if (r[i].len == r[i - 1].len && memcmp(r[i].name, r[i - 1].name, r[i].len) == 0)
            return string_error(s, r[i].name, r[i].len, "given more than once", r[i].at);
    return KS_OK;
}

static ks_status close_container(struct scan *s)
{
    struct frame *f = &s->stack[s->depth - 1];
    ks_status st;
    if (f->kind == '{' && (st = check_duplicates(s)) != KS_OK)
        return st;
    s->n_recs = f->first_rec;
    s->arena_len = f->arena_mark;
    s->depth--;
    s->pos++;
    return KS_OK;
}

static void skip_ws(struct scan *s)
{
    while (s->pos < s->len && (s->p[s->pos] == ' ' || s->p[s->pos] == '\t' ||
                               s->p[s->pos] == '\n' || s->p[s->pos] == '\r'))
        s->pos++;
}

static ks_status open_container(struct scan *s, enum want *want)
{
    char kind = s->p[s->pos];
    if (s->depth >= s->max_depth)
        return ks_error_set(s->err, KS_E_INVALID,
                            "body: JSON nested deeper than %u levels (byte %zu)", s->max_depth,
                            s->pos);
    s->stack[s->depth++] = (struct frame){kind, s->n_recs, s->arena_len, 0, NULL, 0};
    s->pos++;
    skip_ws(s);
    if (s->pos < s->len && s->p[s->pos] == (kind == '{' ? '}' : ']')) {
        *want = WANT_NEXT;
        return close_container(s);
    }
    *want = kind == '{' ? WANT_MEMBER : WANT_VALUE;
    return KS_OK;
}

static ks_status value(struct scan *s, enum want *want)
{
    char c = s->p[s->pos];
    if (c == '{' || c == '[')
        return open_container(s, want);
    *want = WANT_NEXT;
    if (c == '"')
        return scan_string(s, 0);
    if (c == '-' || (c >= '0' && c <= '9'))
        return scan_number(s);
    return scan_literal(s);
}

static ks_status member(struct scan *s, enum want *want)
{
    ks_status st;
    if (s->p[s->pos] != '"')
        return syntax(s, "expected a member name");
    if ((st = scan_string(s, 1)) != KS_OK)
        return st;
    skip_ws(s);
    if (s->pos >= s->len || s->p[s->pos] != ':')
        return syntax(s, "expected ':'");
    s->pos++;
    *want = WANT_VALUE;
    return KS_OK;
}

/* After a value inside an array or object: ',' or the closing bracket. */
static ks_status next(struct scan *s, enum want *want)
{
    struct frame *f = &s->stack[s->depth - 1];
    char c = s->p[s->pos];
    if (c == ',') {
        s->pos++;
        if (f->kind == '[')
            f->index++;
        *want = f->kind == '{' ? WANT_MEMBER : WANT_VALUE;
        return KS_OK;
    }
    if (c == (f->kind == '{' ? '}' : ']'))
        return close_container(s);
    return syntax(s, f->kind == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
}

static ks_status run(struct scan *s)
{
    enum want want = WANT_VALUE;
    ks_status st = KS_OK;
    while (st == KS_OK) {
        skip_ws(s);
        if (want == WANT_NEXT && s->depth == 0) {
            if (s->pos == s->len)
                return KS_OK;
            return ks_error_set(s->err, KS_E_INVALID,
                                "body: unexpected data after the JSON value (byte %zu)", s->pos);
        }
        if (s->pos >= s->len)
            return syntax(s, "");
        if (want == WANT_VALUE)
            st = value(s, &want);
        else if (want == WANT_MEMBER)
            st = member(s, &want);
        else
            st = next(s, &want);
    }
    return st;
}

ks_status ks_json_check(const char *text, size_t len, unsigned max_depth, struct ks_error *err)
{
    return ks_json_check_ex(text, len, max_depth, 0, err);
}

ks_status ks_json_check_ex(const char *text, size_t len, unsigned max_depth, unsigned flags,
                           struct ks_error *err)
{
    struct scan s;
    ks_status st;

    memset(&s, 0, sizeof s);
    s.p = text;
    s.len = len;
    s.max_depth = max_depth;
    s.flags = flags;
    s.err = err;
    s.arena = malloc(len ? len : 1);
    s.stack = calloc(max_depth ? max_depth : 1, sizeof *s.stack);
    if (!s.arena || !s.stack)
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    else
        st = run(&s);
    free(s.arena);
    free(s.stack);
    free(s.recs);
    return st;
}
