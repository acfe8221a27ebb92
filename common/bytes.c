#include "common/bytes.h"

#include <stdlib.h>
#include <string.h>

int ks_bytes_set(struct ks_bytes *dst, const void *src, size_t len)
{
    unsigned char *p = malloc(len ? len : 1);
    if (!p)
        return -1;
    if (len)
        memcpy(p, src, len);
    free(dst->data);
    dst->data = p;
    dst->len = len;
    return 0;
}

void ks_bytes_free(struct ks_bytes *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
}
