/*
 * auth.h - bearer-token authentication. The config holds only SHA-256 of each token; the
 * presented token is hashed and compared against every tenant in constant time
 * (CRYPTO_memcmp, all tenants visited). Thread-safe.
 */
#ifndef KS_SERVER_AUTH_H
#define KS_SERVER_AUTH_H

#include "config/config.h"
#include "server/router.h"

#define KS_TOKEN_MAX 4096

/* The tenant of an "Authorization: Bearer <token>" value, or NULL (missing, malformed,
 * unknown). authorization may be NULL. */
const struct ks_tenant_config *ks_auth_tenant(const struct ks_config *cfg,
                                              const char *authorization);

/* 1 when a tenant of this role may call a route of this access level (README "Roles"): admin
 * everything, reader the gets and the keyring routes, keyring only the keyring routes. */
int ks_auth_role_allows(enum ks_role role, enum ks_access access);

#endif
