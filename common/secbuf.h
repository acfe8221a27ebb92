/*
 * secbuf.h - a growable byte buffer for data that may be secret (KMS responses with plaintexts,
 * metadata credentials, JSON responses with keys). It never reallocs: growing allocates a new
 * block, copies, and wipes the old one, so no unwiped copy is left in freed memory. A cap set at
 * init bounds it. The content is always NUL-terminated. Not thread-safe per instance.
 */
#ifndef KS_COMMON_SECBUF_H
#define KS_COMMON_SECBUF_H

#include <stddef.h>

struct ks_secbuf {
    char *data;    /* NULL until the first append */
    size_t len;    /* bytes held, excluding the NUL */
    size_t cap;    /* bytes allocated */
    size_t max;    /* most bytes it may hold */
    int too_large; /* an append would have passed max */
    int failed;    /* an append failed (too large or out of memory) */
};

void ks_secbuf_init(struct ks_secbuf *b, size_t max);

/* Appends n bytes. 0, or -1 (over max: too_large; or out of memory); b keeps what it had. */
int ks_secbuf_append(struct ks_secbuf *b, const void *p, size_t n);

/* Wipes and frees the buffer; b is reset with the same max. */
void ks_secbuf_free(struct ks_secbuf *b);

/* A libcurl CURLOPT_WRITEFUNCTION into the ks_secbuf given as CURLOPT_WRITEDATA. */
size_t ks_secbuf_curl_write(char *ptr, size_t size, size_t nmemb, void *ctx);

#endif
