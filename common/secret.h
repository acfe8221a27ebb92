/*
 * secret.h - heap buffers for key material. Every buffer that ever held a plaintext key or token
 * is released through ks_secret_free, which wipes it with OPENSSL_cleanse first (docs/style.md
 * "Memory"). Thread-safe.
 */
#ifndef KS_COMMON_SECRET_H
#define KS_COMMON_SECRET_H

#include <stddef.h>

/* Zeroed buffer of len bytes (len may be 0: returns a valid 1-byte allocation). NULL on OOM. */
unsigned char *ks_secret_alloc(size_t len);

/* Copy of src, or NULL on OOM. */
unsigned char *ks_secret_dup(const void *src, size_t len);

/* Wipes len bytes of p and frees it. NULL is a no-op. */
void ks_secret_free(void *p, size_t len);

/* Wipes a NUL-terminated heap string and frees it. NULL is a no-op. */
void ks_secret_free_string(char *s);

/* Wipes len bytes in place (for stack buffers). */
void ks_secret_wipe(void *p, size_t len);

#endif
