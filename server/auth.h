/*
 * auth.h - bearer-token authentication. The config holds only SHA-256 of each token; the
 * presented token is hashed and looked up in a table keyed by that digest, O(1) in the number
 * of tenants, with CRYPTO_memcmp for the final comparison.
 *
 * Why a lookup keyed by the digest leaks nothing worth having: the digest of a high-entropy
 * token is unpredictable to anyone who does not already hold the token, so the time a probe
 * takes tells an attacker at most how the table's slots near a digest of their own choosing are
 * filled, never which digests (let alone tokens) are configured. This holds only for tokens
 * with at least 128 random bits (README "Tokens"; `keystored token new` makes 256-bit ones):
 * keystored sees only digests and cannot check a token's strength.
 *
 * A table is built once per configuration snapshot and then only read: thread-safe.
 */
#ifndef KS_SERVER_AUTH_H
#define KS_SERVER_AUTH_H

#include "config/config.h"
#include "server/router.h"

#define KS_TOKEN_MAX 4096

struct ks_auth;

/* Indexes cfg->tenants (borrowed: cfg must outlive the table). KS_E_INTERNAL on OOM. */
ks_status ks_auth_create(const struct ks_config *cfg, struct ks_auth **out, struct ks_error *err);
void ks_auth_destroy(struct ks_auth *auth);

/* The tenant of an "Authorization: Bearer <token>" value, or NULL (missing, malformed,
 * unknown). authorization may be NULL. */
const struct ks_tenant_config *ks_auth_tenant(const struct ks_auth *auth,
                                              const char *authorization);

/* 1 when a tenant of this role may call a route of this access level (README "Roles"): admin
 * everything, reader the gets and the keyring routes, keyring only the keyring routes, monitor
 * only GET /metrics. */
int ks_auth_role_allows(enum ks_role role, enum ks_access access);

#endif
