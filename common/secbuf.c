#include "common/secbuf.h"

#include <stdlib.h>
#include <string.h>

#include "common/secret.h"

void ks_secbuf_init(struct ks_secbuf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

int ks_secbuf_append(struct ks_secbuf *b, const void *p, size_t n)
{
    if (n > b->max - b->len) {
        b->too_large = b->failed = 1;
        return -1;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *data;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > b->max + 1)
            cap = b->max + 1;
        /* Not realloc: it could leave an unwiped copy of the old block behind. */
        if (!(data = malloc(cap))) {
            b->failed = 1;
            return -1;
        }
        if (b->data) {
            memcpy(data, b->data, b->len);
            ks_secret_free(b->data, b->cap);
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

void ks_secbuf_free(struct ks_secbuf *b)
{
    size_t max = b->max;
    ks_secret_free(b->data, b->cap);
    ks_secbuf_init(b, max);
}

size_t ks_secbuf_curl_write(char *ptr, size_t size, size_t nmemb, void *ctx)
{
    size_t n = size * nmemb;
    /* Returning less than n makes curl fail the transfer with CURLE_WRITE_ERROR. */
    return ks_secbuf_append(ctx, ptr, n) == 0 ? n : 0;
}
