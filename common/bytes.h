/*
 * bytes.h - an owned, non-secret byte string (ciphertexts, digests). Thread-safe functions.
 */
#ifndef KS_COMMON_BYTES_H
#define KS_COMMON_BYTES_H

#include <stddef.h>

struct ks_bytes {
    unsigned char *data; /* heap, owned; NULL when len == 0 is allowed */
    size_t len;
};

/* dst gets a heap copy of src (len may be 0). Returns 0, or -1 on OOM (dst untouched). */
int ks_bytes_set(struct ks_bytes *dst, const void *src, size_t len);

/* Frees and zeroes the struct. */
void ks_bytes_free(struct ks_bytes *b);

#endif
