#include "common/jsonw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/secret.h"

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

static void quoted(struct ks_jsonw *w, const char *s, size_t len)
{
    size_t i, start = 0;
    put(w, "\"", 1);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        const char *e = NULL;
        if (c == '"')
            e = "\\\"";
        else if (c == '\\')
            e = "\\\\";
        else if (c == '\n')
            e = "\\n";
        else if (c == '\r')
            e = "\\r";
        else if (c == '\t')
            e = "\\t";
        else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            e = esc;
        }
        if (e) {
            put(w, s + start, i - start);
            put(w, e, strlen(e));
            start = i + 1;
        }
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
