/*
 * inventory.c - listing (issue 14; docs/architecture.md section 3):
 *   GET /v1/keystores/{ks}/branch-keys?limit&nextToken                 ListKeys
 *   GET /v1/keystores/{ks}/branch-keys/{id}/versions?limit&nextToken   ListVersions
 * Reader role. Pages carry no key material; nextToken is absent on the last page.
 */
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "handlers/handlers.h"
#include "keystore/inventory.h"

/* ?limit=: 1..1000 in plain decimal, default 100. */
static ks_status parse_limit(const struct ks_request *req, size_t *limit, struct ks_error *err)
{
    const char *s = req->limit_query;
    size_t v = 0, i;

    *limit = KS_INVENTORY_LIMIT_DEFAULT;
    if (!s)
        return KS_OK;
    for (i = 0; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 4)
            return ks_error_set(err, KS_E_INVALID, "limit: must be an integer 1..%d",
                                KS_INVENTORY_LIMIT_MAX);
        v = v * 10 + (size_t)(s[i] - '0');
    }
    if (i == 0 || v < 1 || v > KS_INVENTORY_LIMIT_MAX)
        return ks_error_set(err, KS_E_INVALID, "limit: must be an integer 1..%d",
                            KS_INVENTORY_LIMIT_MAX);
    *limit = v;
    return KS_OK;
}

static ks_status list_args(const struct ks_request *req, struct ks_keystore **ks, size_t *limit,
                           struct ks_error *err)
{
    ks_status st;

    if ((st = parse_limit(req, limit, err)) != KS_OK)
        return st;
    if (req->next_token_query && !*req->next_token_query)
        return ks_error_set(err, KS_E_INVALID, "nextToken: must not be empty");
    return ks_handler_resolve(req, NULL, ks, NULL, err);
}

static void write_token(struct ks_jsonw *w, const char *token)
{
    if (!token)
        return;
    ks_jsonw_key(w, "nextToken");
    ks_jsonw_string(w, token);
}

ks_status ks_handle_keys_list(const struct ks_request *req, struct ks_response *resp,
                              struct ks_error *err)
{
    struct ks_inventory_keys keys;
    struct ks_keystore *ks;
    struct ks_jsonw w;
    size_t limit, i;
    ks_status st;

    if ((st = list_args(req, &ks, &limit, err)) != KS_OK ||
        (st = ks_inventory_list_keys(ks, req->params[KS_PARAM_KS], limit, req->next_token_query,
                                     &keys, err)) != KS_OK)
        return st;
    ks_jsonw_init(&w, 16u << 20);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "branchKeys");
    ks_jsonw_array_begin(&w);
    for (i = 0; i < keys.count; i++) {
        const struct ks_inventory_key *k = &keys.keys[i];
        ks_jsonw_object_begin(&w);
        ks_jsonw_key(&w, "branchKeyIdentifier");
        ks_jsonw_string(&w, k->branch_key_id);
        ks_jsonw_key(&w, "activeVersion");
        ks_jsonw_string(&w, k->active_version);
        ks_jsonw_key(&w, "createTime");
        ks_jsonw_string(&w, k->create_time);
        ks_jsonw_key(&w, "hierarchyVersion");
        ks_jsonw_string(&w, k->hierarchy_version);
        ks_jsonw_key(&w, "kmsArn");
        ks_jsonw_string(&w, k->kms_arn);
        ks_jsonw_object_end(&w);
    }
    ks_jsonw_array_end(&w);
    write_token(&w, keys.next_token);
    ks_jsonw_object_end(&w);
    ks_inventory_keys_free(&keys);
    return ks_handler_finish(&w, 200, resp, err);
}

ks_status ks_handle_versions_list(const struct ks_request *req, struct ks_response *resp,
                                  struct ks_error *err)
{
    struct ks_inventory_versions versions;
    struct ks_keystore *ks;
    struct ks_jsonw w;
    size_t limit, i;
    ks_status st;

    if ((st = list_args(req, &ks, &limit, err)) != KS_OK ||
        (st = ks_inventory_list_versions(ks, req->params[KS_PARAM_KS], req->params[KS_PARAM_ID],
                                         limit, req->next_token_query, &versions, err)) != KS_OK)
        return st;
    ks_jsonw_init(&w, 16u << 20);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "versions");
    ks_jsonw_array_begin(&w);
    for (i = 0; i < versions.count; i++) {
        ks_jsonw_object_begin(&w);
        ks_jsonw_key(&w, "branchKeyVersion");
        ks_jsonw_string(&w, versions.versions[i].version);
        ks_jsonw_key(&w, "createTime");
        ks_jsonw_string(&w, versions.versions[i].create_time);
        ks_jsonw_key(&w, "active");
        ks_jsonw_bool(&w, versions.versions[i].active);
        ks_jsonw_object_end(&w);
    }
    ks_jsonw_array_end(&w);
    write_token(&w, versions.next_token);
    ks_jsonw_object_end(&w);
    ks_inventory_versions_free(&versions);
    return ks_handler_finish(&w, 200, resp, err);
}
