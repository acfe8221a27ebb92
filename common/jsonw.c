#include "common/jsonw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/secret.h"
#include "common/utf8.h"

void ks_jsonw_init(struct ks_jsonw *w, size_t max)
{
    ks_secbuf_init(&w->out, max);
    w->need_comma = 0;
}

static void put(struct ks_jsonw *w, const char *s, size_t n)
{
    if (!w->out.failed)
        ks_secbuf_append(&w->out, s, n);
}

static void comma(struct ks_jsonw *w)
{
    if (w->need_comma)
        put(w, ",", 1);
    w->need_comma = 1;
}

void ks_jsonw_object_begin(struct ks_jsonw *w)
{
    comma(w);
    put(w, "{", 1);
    w->need_comma = 0;
}

void ks_jsonw_object_end(struct ks_jsonw *w)
{
    put(w, "}", 1);
    w->need_comma = 1;
}

void ks_jsonw_array_begin(struct ks_jsonw *w)
{
    comma(w);
    put(w, "[", 1);
    w->need_comma = 0;
}

void ks_jsonw_array_end(struct ks_jsonw *w)
{
    put(w, "]", 1);
    w->need_comma = 1;
}

/* The escape for byte c, or NULL when it is written as is. esc holds a \u form. */
static const char *escape_of(unsigned char c, char esc[8])
{
    if (c == '"')
        return "\\\"";
    if (c == '\\')
        return "\\\\";
    if (c == '\n')
        return "\\n";
    if (c == '\r')
        return "\\r";
    if (c == '\t')
        return "\\t";
    if (c < 0x20) {
        snprintf(esc, 8, "\\u%04x", c);
        return esc;
    }
    return NULL;
}

/*
 * A JSON string (RFC 8259 section 7): quote, backslash and control characters escaped. Text is
 * expected to be UTF-8; a byte that does not start a well-formed sequence is written as
 * \ufffd (the replacement character) so that the output is always valid JSON in UTF-8.
 */
static void quoted(struct ks_jsonw *w, const char *s, size_t len)
{
    size_t i = 0, start = 0;
    put(w, "\"", 1);
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        const char *e = escape_of(c, esc);
        uint32_t cp;
        size_t n = 1;
        if (!e && c >= 0x80 && !(n = ks_utf8_decode(s + i, len - i, &cp))) {
            e = "\\ufffd";
            n = 1;
        }
        if (e) {
            put(w, s + start, i - start);
            put(w, e, strlen(e));
            start = i + n;
        }
        i += n;
    }
    put(w, s + start, len - start);
    put(w, "\"", 1);
}

void ks_jsonw_key(struct ks_jsonw *w, const char *key)
{
    comma(w);
    quoted(w, key, strlen(key));
    put(w, ":", 1);
    w->need_comma = 0;
}

void ks_jsonw_string(struct ks_jsonw *w, const char *s)
{
    ks_jsonw_string_len(w, s, strlen(s));
}

void ks_jsonw_string_len(struct ks_jsonw *w, const char *s, size_t len)
{
    comma(w);
    quoted(w, s, len);
}

void ks_jsonw_int(struct ks_jsonw *w, long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", v);
    comma(w);
    put(w, tmp, (size_t)n);
}

void ks_jsonw_bool(struct ks_jsonw *w, int v)
{
    comma(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void ks_jsonw_null(struct ks_jsonw *w)
{
    comma(w);
    put(w, "null", 4);
}

void ks_jsonw_base64(struct ks_jsonw *w, const void *data, size_t len)
{
    char *b64 = ks_base64_encode(data, len);
    if (!b64) {
        w->out.failed = 1;
        return;
    }
    ks_jsonw_string(w, b64);
    ks_secret_free_string(b64);
}

char *ks_jsonw_take(struct ks_jsonw *w, size_t *len)
{
    char *out;
    if (w->out.failed || !w->out.data) {
        ks_jsonw_free(w);
        return NULL;
    }
    out = w->out.data;
    if (len)
        *len = w->out.len;
    w->out.data = NULL; /* moved to the caller */
    ks_jsonw_init(w, w->out.max);
    return out;
}

void ks_jsonw_free(struct ks_jsonw *w)
{
    ks_secbuf_free(&w->out);
    w->need_comma = 0;
}
