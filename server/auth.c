/*
 * auth.c - the token table (auth.h): open addressing over SHA-256(token), at most half full,
 * linear probing. The slot index is taken from the digest's first bytes, which are uniform for
 * any set of tokens; the tenants' digests are distinct (config/tenants.c refuses duplicates).
 */
#include "server/auth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

struct ks_auth {
    EVP_MD *sha256; /* fetched once: EVP_sha256() would look the provider up on every call */
    size_t mask;
    const struct ks_tenant_config **slots;
};

static size_t slot_of(const unsigned char digest[32], size_t mask)
{
    uint64_t h;
    memcpy(&h, digest, sizeof h);
    return (size_t)h & mask;
}

ks_status ks_auth_create(const struct ks_config *cfg, struct ks_auth **out, struct ks_error *err)
{
    struct ks_auth *a = calloc(1, sizeof *a);
    size_t size = 16, i, j;

    while (size < 2 * cfg->n_tenants)
        size <<= 1;
    if (a) {
        a->mask = size - 1;
        a->slots = calloc(size, sizeof *a->slots);
        a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    }
    if (!a || !a->slots || !a->sha256) {
        ks_auth_destroy(a);
        return ks_error_set(err, KS_E_INTERNAL, "cannot build the token table");
    }
    for (i = 0; i < cfg->n_tenants; i++) {
        for (j = slot_of(cfg->tenants[i].token_sha256, a->mask); a->slots[j]; j = (j + 1) & a->mask)
            ;
        a->slots[j] = &cfg->tenants[i];
    }
    *out = a;
    return KS_OK;
}

void ks_auth_destroy(struct ks_auth *auth)
{
    if (!auth)
        return;
    EVP_MD_free(auth->sha256);
    free(auth->slots);
    free(auth);
}

const struct ks_tenant_config *ks_auth_tenant(const struct ks_auth *auth, const char *authorization)
{
    unsigned char digest[32];
    unsigned int digest_len = 0;
    const char *token;
    size_t j, len;

    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    token = authorization + 7;
    while (*token == ' ')
        token++;
    len = strlen(token);
    while (len > 0 && token[len - 1] == ' ')
        len--;
    if (len == 0 || len > KS_TOKEN_MAX)
        return NULL;
    if (EVP_Digest(token, len, digest, &digest_len, auth->sha256, NULL) != 1 || digest_len != 32)
        return NULL;
    /* The digest is not wiped: it is no secret (the config holds the same digests in clear) and
     * cannot be turned back into the token. */
    for (j = slot_of(digest, auth->mask); auth->slots[j]; j = (j + 1) & auth->mask)
        if (CRYPTO_memcmp(digest, auth->slots[j]->token_sha256, 32) == 0)
            return auth->slots[j];
    return NULL;
}

int ks_auth_role_allows(enum ks_role role, enum ks_access access)
{
    switch (access) {
    case KS_ACCESS_PUBLIC:
        return 1;
    case KS_ACCESS_KEYRING:
        return role == KS_ROLE_ADMIN || role == KS_ROLE_READER || role == KS_ROLE_KEYRING;
    case KS_ACCESS_READER:
        return role == KS_ROLE_ADMIN || role == KS_ROLE_READER;
    case KS_ACCESS_METRICS:
        return role == KS_ROLE_ADMIN || role == KS_ROLE_MONITOR;
    default:
        return role == KS_ROLE_ADMIN;
    }
}
