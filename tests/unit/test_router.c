/*
 * test_router.c - the route table of docs/architecture.md section 3 and path matching: every route
 * matches with its parameters percent-decoded, a known path with another method is 405 with the
 * Allow list, unknown paths are 404, bad percent-encoding and %00 are 400 (BAD_PATH), and empty
 * segments or a trailing slash match no route.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "server/router.h"

#define VERSION_UUID "0b9e5ac2-4a1e-4a4b-9f6a-2a1b7a0c3d11"

static const char *const methods[] = {"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"};
#define N_METHODS (sizeof methods / sizeof methods[0])

/* The pattern with {ks} -> ks, {id} -> id, {v} -> v (raw, still encoded). */
static void instantiate(const char *pattern, const char *ks, const char *id, const char *v,
                        char *out, size_t size)
{
    size_t o = 0;
    while (*pattern) {
        const char *sub = NULL;
        size_t skip = 1;
        if (strncmp(pattern, "{ks}", 4) == 0)
            sub = ks, skip = 4;
        else if (strncmp(pattern, "{id}", 4) == 0)
            sub = id, skip = 4;
        else if (strncmp(pattern, "{v}", 3) == 0)
            sub = v, skip = 3;
        if (sub) {
            cr_assert_lt(o + strlen(sub), size);
            memcpy(out + o, sub, strlen(sub));
            o += strlen(sub);
        } else {
            cr_assert_lt(o + 1, size);
            out[o++] = *pattern;
        }
        pattern += skip;
    }
    out[o] = '\0';
}

Test(router, table_is_the_design)
{
    static const char *const expected[][2] = {
        {"GET", "/healthz"},
        {"GET", "/readyz"},
        {"GET", "/metrics"},
        {"GET", "/v1/openapi.yaml"},
        {"PUT", "/v1/keystores/{ks}"},
        {"GET", "/v1/keystores/{ks}"},
        {"POST", "/v1/keystores/{ks}/branch-keys"},
        {"POST", "/v1/keystores/{ks}/branch-keys/{id}/versions"},
        {"GET", "/v1/keystores/{ks}/branch-keys/{id}/active"},
        {"GET", "/v1/keystores/{ks}/branch-keys/{id}/versions/{v}"},
        {"GET", "/v1/keystores/{ks}/branch-keys/{id}/beacon"},
        {"POST", "/v1/keystores/{ks}/keyring/wrap"},
        {"POST", "/v1/keystores/{ks}/keyring/unwrap"},
        {"POST", "/v1/keystores/{ks}/keyring/unwrap-batch"},
        {"POST", "/v1/keystores/{ks}/branch-keys/{id}/mutation"},
        {"GET", "/v1/keystores/{ks}/branch-keys/{id}/mutation"},
        {"DELETE", "/v1/keystores/{ks}/branch-keys/{id}/mutation"},
        {"POST", "/v1/keystores/{ks}/branch-keys/{id}/mutation/apply"},
        {"POST", "/v1/admin/reload"},
        {"GET", "/v1/keystores/{ks}/branch-keys"},
        {"GET", "/v1/keystores/{ks}/branch-keys/{id}/versions"},
    };
    size_t n, i, j;
    const struct ks_route *r = ks_router_routes(&n);
    cr_assert_eq(n, sizeof expected / sizeof expected[0]);
    for (i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        int found = 0;
        for (j = 0; j < n; j++)
            if (strcmp(r[j].method, expected[i][0]) == 0 &&
                strcmp(r[j].pattern, expected[i][1]) == 0)
                found = 1;
        cr_expect(found, "%s %s missing", expected[i][0], expected[i][1]);
    }
    for (j = 0; j < n; j++) {
        cr_expect_not_null(r[j].handler, "%s", r[j].pattern);
        if (strncmp(r[j].pattern, "/v1/keystores", 13) == 0)
            cr_expect_neq(r[j].access, KS_ACCESS_PUBLIC, "%s must need a token", r[j].pattern);
        if (strcmp(r[j].method, "GET") == 0)
            cr_expect_eq(r[j].takes_body, 0, "GET %s takes no body", r[j].pattern);
    }
}

Test(router, every_route_matches_with_decoded_params)
{
    size_t n, i;
    const struct ks_route *r = ks_router_routes(&n);
    for (i = 0; i < n; i++) {
        struct ks_route_match m;
        char path[512];
        instantiate(r[i].pattern, "my%2Fks", "id%2F1%20%e2%82%AC", VERSION_UUID, path, sizeof path);
        cr_assert_eq(ks_router_match(r[i].method, path, &m), KS_MATCH_OK, "%s %s", r[i].method,
                     path);
        cr_expect_eq(m.route, &r[i], "%s %s matched another route", r[i].method, path);
        if (strstr(r[i].pattern, "{ks}")) {
            cr_assert_not_null(m.params[KS_PARAM_KS]);
            cr_expect_str_eq(m.params[KS_PARAM_KS], "my/ks");
            cr_expect_eq(m.param_lens[KS_PARAM_KS], 5);
        } else {
            cr_expect_null(m.params[KS_PARAM_KS]);
        }
        if (strstr(r[i].pattern, "{id}")) {
            cr_assert_not_null(m.params[KS_PARAM_ID]);
            cr_expect_str_eq(m.params[KS_PARAM_ID], "id/1 \xe2\x82\xac");
            cr_expect_eq(m.param_lens[KS_PARAM_ID], 8);
        } else {
            cr_expect_null(m.params[KS_PARAM_ID]);
        }
        if (strstr(r[i].pattern, "{v}")) {
            cr_assert_not_null(m.params[KS_PARAM_VERSION]);
            cr_expect_str_eq(m.params[KS_PARAM_VERSION], VERSION_UUID);
        } else {
            cr_expect_null(m.params[KS_PARAM_VERSION]);
        }
        ks_router_match_free(&m);
        ks_router_match_free(&m); /* idempotent */
    }
}

/* The methods the table has for pattern, as a set. */
static int table_has(const char *pattern, const char *method)
{
    size_t n, i;
    const struct ks_route *r = ks_router_routes(&n);
    for (i = 0; i < n; i++)
        if (strcmp(r[i].pattern, pattern) == 0 && strcmp(r[i].method, method) == 0)
            return 1;
    return 0;
}

/* allow is "A, B, ..." naming exactly the methods of pattern, each once. */
static void check_allow(const char *allow, const char *pattern)
{
    size_t i, listed = 0;
    char copy[64], *tok, *save = NULL;
    cr_assert_lt(strlen(allow), sizeof copy);
    memcpy(copy, allow, strlen(allow) + 1);
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        cr_expect(table_has(pattern, tok), "Allow '%s' lists %s for %s", allow, tok, pattern);
        listed++;
    }
    for (i = 0; i < N_METHODS; i++)
        if (table_has(pattern, methods[i]))
            cr_expect_not_null(strstr(allow, methods[i]), "Allow '%s' misses %s", allow,
                               methods[i]);
    cr_expect_gt(listed, 0);
    cr_expect_null(strstr(allow, ",,"));
    cr_expect_neq(allow[strlen(allow) - 1], ' ');
    cr_expect_neq(allow[strlen(allow) - 1], ',');
}

Test(router, other_methods_are_405_with_allow)
{
    size_t n, i, k;
    const struct ks_route *r = ks_router_routes(&n);
    for (i = 0; i < n; i++) {
        char path[512];
        instantiate(r[i].pattern, "ks", "id", VERSION_UUID, path, sizeof path);
        for (k = 0; k < N_METHODS; k++) {
            struct ks_route_match m;
            if (table_has(r[i].pattern, methods[k]))
                continue;
            cr_assert_eq(ks_router_match(methods[k], path, &m), KS_MATCH_BAD_METHOD, "%s %s",
                         methods[k], path);
            check_allow(m.allow, r[i].pattern);
            ks_router_match_free(&m);
        }
    }
}

Test(router, keystore_allow_lists_both_methods)
{
    struct ks_route_match m;
    cr_assert_eq(ks_router_match("DELETE", "/v1/keystores/ks", &m), KS_MATCH_BAD_METHOD);
    cr_expect(strcmp(m.allow, "GET, PUT") == 0 || strcmp(m.allow, "PUT, GET") == 0, "%s", m.allow);
    ks_router_match_free(&m);
    cr_assert_eq(ks_router_match("PUT", "/v1/keystores/ks/branch-keys", &m), KS_MATCH_BAD_METHOD);
    cr_expect(strcmp(m.allow, "POST, GET") == 0 || strcmp(m.allow, "GET, POST") == 0, "%s",
              m.allow);
    ks_router_match_free(&m);
    /* Methods are case-sensitive (RFC 9110 section 9.1). */
    cr_expect_eq(ks_router_match("get", "/healthz", &m), KS_MATCH_BAD_METHOD);
    ks_router_match_free(&m);
}

Test(router, unknown_paths_are_404)
{
    static const char *const paths[] = {
        "/",
        "",
        "healthz",
        "/healthzz",
        "/health",
        "/v1",
        "/v1/",
        "/v1/keystores",
        "/v1/keystores/ks/branch-keys/id",
        "/v1/keystores/ks/branch-keys/id/unknown",
        "/v1/keystores/ks/branch-keys/id/versions/v/extra",
        "/v2/keystores/ks",
        "/V1/keystores/ks",
        "/v1/%6beystores/ks", /* literal segments are not decoded */
    };
    size_t i;
    for (i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct ks_route_match m;
        cr_expect_eq(ks_router_match("GET", paths[i], &m), KS_MATCH_NO_ROUTE, "'%s'", paths[i]);
        cr_expect_null(m.params[KS_PARAM_KS]);
        ks_router_match_free(&m);
    }
}

Test(router, empty_segment_and_trailing_slash_match_nothing)
{
    static const char *const paths[] = {
        "/healthz/",
        "//healthz",
        "/v1//openapi.yaml",
        "/v1/keystores/",
        "/v1/keystores/ks/",
        "/v1/keystores//branch-keys",
        "/v1/keystores/ks/branch-keys/",
        "/v1/keystores/ks/branch-keys//active",
        "/v1/keystores/ks/branch-keys/id/active/",
        "/v1/keystores/ks/branch-keys/id/versions/",
        "/v1/keystores/ks/branch-keys/id/versions//",
        "/v1/keystores/ks//branch-keys/id/active",
    };
    size_t i, k;
    for (i = 0; i < sizeof paths / sizeof paths[0]; i++)
        for (k = 0; k < N_METHODS; k++) {
            struct ks_route_match m;
            cr_expect_eq(ks_router_match(methods[k], paths[i], &m), KS_MATCH_NO_ROUTE, "%s '%s'",
                         methods[k], paths[i]);
            ks_router_match_free(&m);
        }
}

Test(router, bad_percent_encoding_is_bad_path)
{
    static const char *const ids[] = {
        "%",    "%2",  "a%",    "a%2", "%zz", "%2g", "%g2",
        "%%41", "%00", "a%00b", "%0",  "%-1", "% 1", "%+1",
    };
    size_t i;
    for (i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        struct ks_route_match m;
        char path[256];
        snprintf(path, sizeof path, "/v1/keystores/ks/branch-keys/%s/active", ids[i]);
        cr_expect_eq(ks_router_match("GET", path, &m), KS_MATCH_BAD_PATH, "'%s'", path);
        cr_expect_null(m.params[KS_PARAM_ID]);
        ks_router_match_free(&m);
        snprintf(path, sizeof path, "/v1/keystores/%s", ids[i]);
        cr_expect_eq(ks_router_match("PUT", path, &m), KS_MATCH_BAD_PATH, "'%s'", path);
        ks_router_match_free(&m);
    }
}

Test(router, percent_encoding_edge_cases_decode)
{
    struct ks_route_match m;
    cr_assert_eq(ks_router_match("GET", "/v1/keystores/%41%2f%2F%25", &m), KS_MATCH_OK);
    cr_expect_str_eq(m.params[KS_PARAM_KS], "A//%");
    cr_expect_eq(m.param_lens[KS_PARAM_KS], 4);
    ks_router_match_free(&m);
    /* Ending exactly on an escape. */
    cr_assert_eq(ks_router_match("GET", "/v1/keystores/ab%7e", &m), KS_MATCH_OK);
    cr_expect_str_eq(m.params[KS_PARAM_KS], "ab~");
    ks_router_match_free(&m);
    /* '+' is not a space in a path. */
    cr_assert_eq(ks_router_match("GET", "/v1/keystores/a+b", &m), KS_MATCH_OK);
    cr_expect_str_eq(m.params[KS_PARAM_KS], "a+b");
    ks_router_match_free(&m);
}

Test(router, literal_named_ids)
{
    /* An id that spells a literal segment is still an id. */
    struct ks_route_match m;
    cr_assert_eq(ks_router_match("PUT", "/v1/keystores/ks/branch-keys/active/versions", &m),
                 KS_MATCH_BAD_METHOD);
    cr_expect(strcmp(m.allow, "POST, GET") == 0 || strcmp(m.allow, "GET, POST") == 0, "%s",
              m.allow);
    ks_router_match_free(&m);
    cr_assert_eq(ks_router_match("GET", "/v1/keystores/ks/branch-keys/active/versions", &m),
                 KS_MATCH_OK);
    cr_expect_str_eq(m.params[KS_PARAM_ID], "active");
    ks_router_match_free(&m);
    cr_assert_eq(ks_router_match("GET", "/v1/keystores/ks/branch-keys/active/active", &m),
                 KS_MATCH_OK);
    cr_expect_str_eq(m.params[KS_PARAM_ID], "active");
    ks_router_match_free(&m);
    cr_assert_eq(
        ks_router_match("GET", "/v1/keystores/branch-keys/branch-keys/versions/active", &m),
        KS_MATCH_OK);
    cr_expect_str_eq(m.params[KS_PARAM_KS], "branch-keys");
    cr_expect_str_eq(m.params[KS_PARAM_ID], "versions");
    ks_router_match_free(&m);
}

/* The keyring routes: their own access level (and with it their own body cap, server.c), found
 * without decoding by ks_router_find. */
Test(router, keyring_routes_and_find)
{
    static const char *const paths[] = {"/v1/keystores/ks/keyring/wrap",
                                        "/v1/keystores/ks/keyring/unwrap",
                                        "/v1/keystores/a%2Fb/keyring/unwrap-batch"};
    const struct ks_route *r;
    size_t i;
    for (i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        r = ks_router_find("POST", paths[i]);
        cr_assert_not_null(r, "%s", paths[i]);
        cr_expect_eq(r->access, KS_ACCESS_KEYRING, "%s", paths[i]);
        cr_expect(r->takes_body);
        cr_expect_null(ks_router_find("GET", paths[i]), "%s", paths[i]);
    }
    r = ks_router_find("GET", "/v1/keystores/ks/branch-keys/id/active");
    cr_assert_not_null(r);
    cr_expect_eq(r->access, KS_ACCESS_READER);
    cr_expect_null(ks_router_find("POST", "/v1/keystores/ks/keyring/wrap/x"));
    cr_expect_null(ks_router_find("POST", "/v1/keystores//keyring/wrap"));
    cr_expect_null(ks_router_find("POST", "keyring/wrap"));
}
