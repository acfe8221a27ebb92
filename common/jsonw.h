/*
 * jsonw.h - a small streaming JSON writer into a growable buffer that is wiped whenever it is
 * released or moved (responses carry base64 key material, docs/style.md "Memory"; a
 * json-c object would leave copies in freed memory). The buffer has a cap set at creation.
 * Not thread-safe per instance.
 */
#ifndef KS_COMMON_JSONW_H
#define KS_COMMON_JSONW_H

#include <stddef.h>

#include "common/secbuf.h"

struct ks_jsonw {
    struct ks_secbuf out; /* wiped when grown or freed; failed: every later call is a no-op */
    int need_comma;       /* a value was written at the current nesting level */
};

void ks_jsonw_init(struct ks_jsonw *w, size_t max);
void ks_jsonw_object_begin(struct ks_jsonw *w);
void ks_jsonw_object_end(struct ks_jsonw *w);
void ks_jsonw_array_begin(struct ks_jsonw *w);
void ks_jsonw_array_end(struct ks_jsonw *w);
/* A member name (inside an object); the next call writes its value. */
void ks_jsonw_key(struct ks_jsonw *w, const char *key);
void ks_jsonw_string(struct ks_jsonw *w, const char *s);
void ks_jsonw_string_len(struct ks_jsonw *w, const char *s, size_t len);
void ks_jsonw_int(struct ks_jsonw *w, long long v);
void ks_jsonw_bool(struct ks_jsonw *w, int v);
void ks_jsonw_null(struct ks_jsonw *w);
/* base64 (standard) of data as a string value, via a wiped temporary. */
void ks_jsonw_base64(struct ks_jsonw *w, const void *data, size_t len);

/* Takes the NUL-terminated text (caller frees with ks_secret_free_string); NULL if failed.
 * The writer is reset. */
char *ks_jsonw_take(struct ks_jsonw *w, size_t *len);

/* Wipes and frees the buffer. */
void ks_jsonw_free(struct ks_jsonw *w);

#endif
