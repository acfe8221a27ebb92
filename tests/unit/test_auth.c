/*
 * test_auth.c - bearer-token authentication (server/auth.h): the Authorization value is parsed
 * as "Bearer <token>" (scheme case-insensitive, RFC 9110 section 11.1), the token's SHA-256 is
 * looked up in the table of the tenants' digests, and the right tenant is returned.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "server/auth.h"

static struct ks_tenant_config tenants[3];
static struct ks_config cfg;
static char *long_token; /* KS_TOKEN_MAX chars: tenant "long" */
static char *over_token; /* KS_TOKEN_MAX + 1 chars: tenant "over", refused by length */

static char name_alice[] = "alice", name_bob[] = "bob", name_long[] = "long", name_over[] = "over";

static void set_tenant(struct ks_tenant_config *t, char *name, const char *token, enum ks_role role)
{
    t->name = name;
    t->role = role;
    SHA256((const unsigned char *)token, strlen(token), t->token_sha256);
}

static char *repeated(char c, size_t n)
{
    char *s = malloc(n + 1);
    cr_assert_not_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void setup(void)
{
    memset(&cfg, 0, sizeof cfg);
    memset(tenants, 0, sizeof tenants);
    long_token = repeated('L', KS_TOKEN_MAX);
    over_token = repeated('O', KS_TOKEN_MAX + 1);
    set_tenant(&tenants[0], name_alice, "token-alice", KS_ROLE_ADMIN);
    set_tenant(&tenants[1], name_bob, "token-bob", KS_ROLE_READER);
    set_tenant(&tenants[2], name_long, long_token, KS_ROLE_READER);
    cfg.tenants = tenants;
    cfg.n_tenants = 2;
}

static void teardown(void)
{
    free(long_token);
    free(over_token);
}

TestSuite(auth, .init = setup, .fini = teardown);

/* The tenant a table built from cfg as it is now finds. */
static const struct ks_tenant_config *lookup(const char *authorization)
{
    struct ks_auth *a = NULL;
    struct ks_error err;
    const struct ks_tenant_config *t;

    cr_assert_eq(ks_auth_create(&cfg, &a, &err), KS_OK);
    t = ks_auth_tenant(a, authorization);
    ks_auth_destroy(a);
    return t;
}

static const char *who(const char *authorization)
{
    const struct ks_tenant_config *t = lookup(authorization);
    return t ? t->name : NULL;
}

Test(auth, right_tenant_chosen)
{
    cr_expect_str_eq(who("Bearer token-alice"), "alice");
    cr_expect_str_eq(who("Bearer token-bob"), "bob");
    cr_expect_eq(lookup("Bearer token-bob"), &tenants[1]);
    cr_expect_eq(lookup("Bearer token-alice"), &tenants[0]);
}

Test(auth, scheme_is_case_insensitive)
{
    cr_expect_str_eq(who("bearer token-alice"), "alice");
    cr_expect_str_eq(who("BEARER token-bob"), "bob");
    cr_expect_str_eq(who("BeArEr token-alice"), "alice");
}

Test(auth, extra_spaces_around_token)
{
    cr_expect_str_eq(who("Bearer   token-alice"), "alice");
    cr_expect_str_eq(who("Bearer token-alice   "), "alice");
    cr_expect_str_eq(who("Bearer    token-bob    "), "bob");
}

Test(auth, token_is_case_sensitive_and_exact)
{
    cr_expect_null(who("Bearer TOKEN-ALICE"));
    cr_expect_null(who("Bearer token-alic"));
    cr_expect_null(who("Bearer token-alicee"));
    cr_expect_null(who("Bearer token-alice token-bob"));
    cr_expect_null(who("Bearer unknown"));
}

Test(auth, missing_or_empty)
{
    cr_expect_null(who(NULL));
    cr_expect_null(who(""));
    cr_expect_null(who("Bearer"));
    cr_expect_null(who("Bearer "));
    cr_expect_null(who("Bearer      "));
}

Test(auth, wrong_scheme_or_shape)
{
    cr_expect_null(who("Basic dG9rZW4tYWxpY2U="));
    cr_expect_null(who("Token token-alice"));
    cr_expect_null(who("token-alice"));
    cr_expect_null(who("Bearertoken-alice"));
    cr_expect_null(who("Bearer\ttoken-alice")); /* 1*SP between scheme and token */
    cr_expect_null(who("Bearer: token-alice"));
    cr_expect_null(who("Beare token-alice"));
    cr_expect_null(who("XBearer token-alice"));
}

Test(auth, token_length_limit)
{
    size_t n = strlen("Bearer ") + KS_TOKEN_MAX + 2;
    char *h = malloc(n);
    cr_assert_not_null(h);
    cfg.n_tenants = 3;
    /* At the limit: accepted. */
    snprintf(h, n, "Bearer %s", long_token);
    cr_expect_str_eq(who(h), "long");
    /* One over, with a tenant whose hash matches: refused by the length check alone. */
    set_tenant(&tenants[2], name_over, over_token, KS_ROLE_READER);
    snprintf(h, n, "Bearer %s", over_token);
    cr_expect_null(who(h));
    free(h);
}

Test(auth, no_tenants)
{
    cfg.n_tenants = 0;
    cr_expect_null(who("Bearer token-alice"));
}

/* README "Roles": keyring may only wrap and unwrap; reader reads and wraps/unwraps; admin all. */
Test(auth, role_matrix)
{
    static const struct {
        enum ks_role role;
        enum ks_access access;
        int allowed;
    } m[] = {
        {KS_ROLE_KEYRING, KS_ACCESS_KEYRING, 1},
        {KS_ROLE_KEYRING, KS_ACCESS_READER, 0},
        {KS_ROLE_KEYRING, KS_ACCESS_ADMIN, 0},
        {KS_ROLE_KEYRING, KS_ACCESS_PUBLIC, 1},
        {KS_ROLE_READER, KS_ACCESS_KEYRING, 1},
        {KS_ROLE_READER, KS_ACCESS_READER, 1},
        {KS_ROLE_READER, KS_ACCESS_ADMIN, 0},
        {KS_ROLE_ADMIN, KS_ACCESS_KEYRING, 1},
        {KS_ROLE_ADMIN, KS_ACCESS_READER, 1},
        {KS_ROLE_ADMIN, KS_ACCESS_ADMIN, 1},
        /* issue 12: GET /metrics is admin or monitor; monitor reads nothing else */
        {KS_ROLE_ADMIN, KS_ACCESS_METRICS, 1},
        {KS_ROLE_MONITOR, KS_ACCESS_METRICS, 1},
        {KS_ROLE_READER, KS_ACCESS_METRICS, 0},
        {KS_ROLE_KEYRING, KS_ACCESS_METRICS, 0},
        {KS_ROLE_MONITOR, KS_ACCESS_READER, 0},
        {KS_ROLE_MONITOR, KS_ACCESS_KEYRING, 0},
        {KS_ROLE_MONITOR, KS_ACCESS_ADMIN, 0},
        {KS_ROLE_MONITOR, KS_ACCESS_PUBLIC, 1},
    };
    size_t i;
    for (i = 0; i < sizeof m / sizeof m[0]; i++)
        cr_expect_eq(ks_auth_role_allows(m[i].role, m[i].access), m[i].allowed, "role %d access %d",
                     (int)m[i].role, (int)m[i].access);
}

/* A digest that shares alice's slot (same first bytes) but differs in its last byte: placed
 * first, it makes alice's lookup probe past it, and alone it must not match alice's token. */
Test(auth, same_slot_compared_in_full)
{
    static char name_near[] = "near";
    struct ks_tenant_config t[2];

    memset(t, 0, sizeof t);
    t[0].name = name_near;
    memcpy(t[0].token_sha256, tenants[0].token_sha256, 32);
    t[0].token_sha256[31] ^= 1;
    t[1] = tenants[0];
    cfg.tenants = t;
    cfg.n_tenants = 2;
    cr_expect_str_eq(who("Bearer token-alice"), "alice");
    cfg.n_tenants = 1;
    cr_expect_null(who("Bearer token-alice"));
}

/* 10,000 tenants: each token finds its own tenant, and an unknown one finds none. */
Test(auth, ten_thousand_tenants)
{
    enum { N = 10000 };
    struct ks_tenant_config *many = calloc(N, sizeof *many);
    static char names[N][16];
    char token[32], header[48];
    struct ks_auth *a = NULL;
    struct ks_error err;
    size_t i;

    cr_assert_not_null(many);
    for (i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "t%zu", i);
        snprintf(token, sizeof token, "tok-%zu", i);
        set_tenant(&many[i], names[i], token, KS_ROLE_READER);
    }
    cfg.tenants = many;
    cfg.n_tenants = N;
    cr_assert_eq(ks_auth_create(&cfg, &a, &err), KS_OK);
    for (i = 0; i < N; i++) {
        snprintf(header, sizeof header, "Bearer tok-%zu", i);
        cr_assert_eq(ks_auth_tenant(a, header), &many[i], "tenant %zu", i);
    }
    cr_expect_null(ks_auth_tenant(a, "Bearer tok-10000"));
    ks_auth_destroy(a);
    free(many);
}
