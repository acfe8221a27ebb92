#include "common/secret.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

unsigned char *ks_secret_alloc(size_t len)
{
    return calloc(1, len ? len : 1);
}

unsigned char *ks_secret_dup(const void *src, size_t len)
{
    unsigned char *p = ks_secret_alloc(len);
    if (p && len)
        memcpy(p, src, len);
    return p;
}

void ks_secret_free(void *p, size_t len)
{
    if (!p)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

void ks_secret_free_string(char *s)
{
    if (s)
        ks_secret_free(s, strlen(s));
}

void ks_secret_wipe(void *p, size_t len)
{
    OPENSSL_cleanse(p, len);
}
