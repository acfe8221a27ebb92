/*
 * auth.h - bearer-token authentication. The config holds only SHA-256 of each token; the
 * presented token is hashed and compared against every tenant in constant time
 * (CRYPTO_memcmp, all tenants visited). Thread-safe.
 */
#ifndef KS_SERVER_AUTH_H
#define KS_SERVER_AUTH_H

#include "config/config.h"

#define KS_TOKEN_MAX 4096

/* The tenant of an "Authorization: Bearer <token>" value, or NULL (missing, malformed,
 * unknown). authorization may be NULL. */
const struct ks_tenant_config *ks_auth_tenant(const struct ks_config *cfg,
                                              const char *authorization);

#endif
