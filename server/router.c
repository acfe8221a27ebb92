/* router.c - the route table of docs/architecture.md section 3 and segment-wise matching. */
#include "server/router.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "server/readiness.h"

static const struct ks_route routes[] = {
    {"GET", "/healthz", KS_ACCESS_PUBLIC, 0, 0, ks_handle_healthz},
    {"GET", "/readyz", KS_ACCESS_PUBLIC, 0, 0, ks_handle_readyz},
    {"GET", "/metrics", KS_ACCESS_METRICS, 0, 0, ks_handle_metrics},
    {"GET", "/v1/openapi.yaml", KS_ACCESS_PUBLIC, 0, 0, ks_handle_openapi},
    {"PUT", "/v1/keystores/{ks}", KS_ACCESS_ADMIN, 1, 0, ks_handle_keystore_put},
    {"GET", "/v1/keystores/{ks}", KS_ACCESS_READER, 0, 1, ks_handle_keystore_get},
    {"POST", "/v1/keystores/{ks}/branch-keys", KS_ACCESS_ADMIN, 1, 0, ks_handle_branch_key_create},
    {"POST", "/v1/keystores/{ks}/branch-keys/{id}/versions", KS_ACCESS_ADMIN, 1, 0,
     ks_handle_version_create},
    {"GET", "/v1/keystores/{ks}/branch-keys/{id}/active", KS_ACCESS_READER, 0, 1,
     ks_handle_active_get},
    {"GET", "/v1/keystores/{ks}/branch-keys/{id}/versions/{v}", KS_ACCESS_READER, 0, 1,
     ks_handle_version_get},
    {"GET", "/v1/keystores/{ks}/branch-keys/{id}/beacon", KS_ACCESS_READER, 0, 1,
     ks_handle_beacon_get},
    {"POST", "/v1/keystores/{ks}/keyring/wrap", KS_ACCESS_KEYRING, 1, 1, ks_handle_keyring_wrap},
    {"POST", "/v1/keystores/{ks}/keyring/unwrap", KS_ACCESS_KEYRING, 1, 1,
     ks_handle_keyring_unwrap},
    {"POST", "/v1/keystores/{ks}/keyring/unwrap-batch", KS_ACCESS_KEYRING, 1, 1,
     ks_handle_keyring_unwrap_batch},
    {"POST", "/v1/keystores/{ks}/branch-keys/{id}/mutation", KS_ACCESS_ADMIN, 1, 0,
     ks_handle_mutation_init},
    {"GET", "/v1/keystores/{ks}/branch-keys/{id}/mutation", KS_ACCESS_ADMIN, 0, 0,
     ks_handle_mutation_describe},
    {"DELETE", "/v1/keystores/{ks}/branch-keys/{id}/mutation", KS_ACCESS_ADMIN, 1, 0,
     ks_handle_mutation_abort},
    {"POST", "/v1/keystores/{ks}/branch-keys/{id}/mutation/apply", KS_ACCESS_ADMIN, 1, 0,
     ks_handle_mutation_apply},
    {"POST", "/v1/admin/reload", KS_ACCESS_ADMIN, 0, 0, ks_handle_admin_reload},
    {"GET", "/v1/keystores/{ks}/branch-keys", KS_ACCESS_READER, 0, 0, ks_handle_keys_list},
    {"GET", "/v1/keystores/{ks}/branch-keys/{id}/versions", KS_ACCESS_READER, 0, 0,
     ks_handle_versions_list},
};

int ks_route_takes_paging(const struct ks_route *route)
{
    return route->handler == ks_handle_keys_list || route->handler == ks_handle_versions_list;
}

const struct ks_route *ks_router_routes(size_t *count)
{
    *count = sizeof routes / sizeof routes[0];
    return routes;
}

static int param_index(const char *seg, size_t len)
{
    if (len == 4 && memcmp(seg, "{ks}", 4) == 0)
        return KS_PARAM_KS;
    if (len == 4 && memcmp(seg, "{id}", 4) == 0)
        return KS_PARAM_ID;
    if (len == 3 && memcmp(seg, "{v}", 3) == 0)
        return KS_PARAM_VERSION;
    return -1;
}

/* 1 when the raw path fits the pattern (segment count and literals), without decoding. */
static int path_fits(const char *pattern, const char *path)
{
    while (*pattern && *path) {
        const char *pe = strchr(pattern + 1, '/'), *se = strchr(path + 1, '/');
        size_t pl = pe ? (size_t)(pe - pattern) : strlen(pattern);
        size_t sl = se ? (size_t)(se - path) : strlen(path);
        if (param_index(pattern + 1, pl - 1) >= 0) {
            if (sl <= 1)
                return 0; /* empty parameter */
        } else if (pl != sl || memcmp(pattern, path, pl) != 0) {
            return 0;
        }
        pattern += pl;
        path += sl;
    }
    return !*pattern && !*path;
}

static enum ks_match_result extract(const char *pattern, const char *path, struct ks_route_match *m)
{
    while (*pattern) {
        const char *pe = strchr(pattern + 1, '/'), *se = strchr(path + 1, '/');
        size_t pl = pe ? (size_t)(pe - pattern) : strlen(pattern);
        size_t sl = se ? (size_t)(se - path) : strlen(path);
        int idx = param_index(pattern + 1, pl - 1);
        if (idx >= 0) {
            m->params[idx] = ks_percent_decode(path + 1, sl - 1, 0, &m->param_lens[idx]);
            if (!m->params[idx])
                return KS_MATCH_BAD_PATH;
        }
        pattern += pl;
        path += sl;
    }
    return KS_MATCH_OK;
}

enum ks_match_result ks_router_match(const char *method, const char *raw_path,
                                     struct ks_route_match *match)
{
    size_t i, n = sizeof routes / sizeof routes[0];
    int path_known = 0;

    memset(match, 0, sizeof *match);
    if (raw_path[0] != '/')
        return KS_MATCH_NO_ROUTE;
    for (i = 0; i < n; i++) {
        if (!path_fits(routes[i].pattern, raw_path))
            continue;
        if (strcmp(routes[i].method, method) == 0) {
            enum ks_match_result r;
            match->route = &routes[i];
            r = extract(routes[i].pattern, raw_path, match);
            if (r != KS_MATCH_OK)
                ks_router_match_free(match);
            return r;
        }
        if (strlen(match->allow) + strlen(routes[i].method) + 3 < sizeof match->allow) {
            if (path_known)
                strncat(match->allow, ", ", sizeof match->allow - strlen(match->allow) - 1);
            strncat(match->allow, routes[i].method, sizeof match->allow - strlen(match->allow) - 1);
        }
        path_known = 1;
    }
    return path_known ? KS_MATCH_BAD_METHOD : KS_MATCH_NO_ROUTE;
}

void ks_router_match_free(struct ks_route_match *match)
{
    int i;
    for (i = 0; i < KS_PARAM_COUNT; i++) {
        free(match->params[i]);
        match->params[i] = NULL;
    }
}

const struct ks_route *ks_router_find(const char *method, const char *raw_path)
{
    size_t i, n = sizeof routes / sizeof routes[0];
    if (raw_path[0] != '/')
        return NULL;
    for (i = 0; i < n; i++)
        if (strcmp(routes[i].method, method) == 0 && path_fits(routes[i].pattern, raw_path))
            return &routes[i];
    return NULL;
}
