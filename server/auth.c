#include "server/auth.h"

#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

const struct ks_tenant_config *ks_auth_tenant(const struct ks_config *cfg,
                                              const char *authorization)
{
    const struct ks_tenant_config *found = NULL;
    unsigned char digest[32];
    unsigned int digest_len = 0;
    const char *token;
    size_t i, len;

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
    if (EVP_Digest(token, len, digest, &digest_len, EVP_sha256(), NULL) != 1 || digest_len != 32)
        return NULL;
    /* Visit every tenant so that the time taken does not tell which one matched. */
    for (i = 0; i < cfg->n_tenants; i++) {
        if (CRYPTO_memcmp(digest, cfg->tenants[i].token_sha256, 32) == 0 && !found)
            found = &cfg->tenants[i];
    }
    OPENSSL_cleanse(digest, sizeof digest);
    return found;
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
    default:
        return role == KS_ROLE_ADMIN;
    }
}
