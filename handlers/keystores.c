/*
 * keystores.c - the key store resource:
 *   PUT /v1/keystores/{ks}  CreateKeyStore (create the table if missing; idempotent)
 *   GET /v1/keystores/{ks}  GetKeyStoreInfo (docs/reference/branch-key-store.md section 1)
 */
#include <stdlib.h>

#include "common/jsonw.h"
#include "handlers/handlers.h"

static const char *const no_members[] = {NULL};

ks_status ks_handle_keystore_put(const struct ks_request *req, struct ks_response *resp,
                                 struct ks_error *err)
{
    struct ks_keystore *ks;
    char *table_id = NULL;
    struct ks_jsonw w;
    ks_status st;

    if ((st = ks_handler_check_members(req->body, no_members, err)) != KS_OK ||
        (st = ks_handler_resolve(req, NULL, &ks, NULL, err)) != KS_OK)
        return st;
    if ((st = ks_keystore_create_key_store(ks, &table_id, err)) != KS_OK)
        return st;
    ks_jsonw_init(&w, 8192);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "tableArn");
    ks_jsonw_string(&w, table_id);
    ks_jsonw_object_end(&w);
    free(table_id);
    return ks_handler_finish(&w, 200, resp, err);
}

static void write_kms_configuration(struct ks_jsonw *w, const struct ks_kms_relationship *rel)
{
    ks_jsonw_object_begin(w);
    switch (rel->kind) {
    case KS_KMS_KEY_ARN:
        ks_jsonw_key(w, "kmsKeyArn");
        ks_jsonw_string(w, rel->arn);
        break;
    case KS_KMS_MR_KEY_ARN:
        ks_jsonw_key(w, "kmsMRKeyArn");
        ks_jsonw_string(w, rel->arn);
        break;
    case KS_KMS_DISCOVERY:
        ks_jsonw_key(w, "discovery");
        ks_jsonw_object_begin(w);
        ks_jsonw_object_end(w);
        break;
    case KS_KMS_MR_DISCOVERY:
        ks_jsonw_key(w, "mrDiscovery");
        ks_jsonw_object_begin(w);
        ks_jsonw_key(w, "region");
        ks_jsonw_string(w, rel->region);
        ks_jsonw_object_end(w);
        break;
    }
    ks_jsonw_object_end(w);
}

ks_status ks_handle_keystore_get(const struct ks_request *req, struct ks_response *resp,
                                 struct ks_error *err)
{
    const struct ks_kms_relationship *rel;
    struct ks_keystore_info info;
    struct ks_keystore *ks;
    struct ks_jsonw w;
    size_t i;
    ks_status st;

    if ((st = ks_handler_resolve(req, NULL, &ks, &rel, err)) != KS_OK ||
        (st = ks_keystore_info(ks, &info, err)) != KS_OK)
        return st;
    ks_jsonw_init(&w, 1u << 20);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "keyStoreId");
    ks_jsonw_string(&w, info.key_store_id);
    ks_jsonw_key(&w, "keyStoreName");
    ks_jsonw_string(&w, info.storage.name);
    ks_jsonw_key(&w, "logicalKeyStoreName");
    ks_jsonw_string(&w, info.logical_key_store_name);
    ks_jsonw_key(&w, "storage");
    ks_jsonw_string(&w, info.storage.kind);
    ks_jsonw_key(&w, "kmsRelationship");
    ks_jsonw_string(&w, rel->name);
    ks_jsonw_key(&w, "grantTokens");
    ks_jsonw_array_begin(&w);
    /* Grant tokens are capabilities: their count is informative, their text is not ours to
     * hand to every reader. */
    for (i = 0; i < rel->n_grant_tokens; i++)
        ks_jsonw_string(&w, "<redacted>");
    ks_jsonw_array_end(&w);
    ks_jsonw_key(&w, "kmsConfiguration");
    write_kms_configuration(&w, rel);
    ks_jsonw_object_end(&w);
    return ks_handler_finish(&w, 200, resp, err);
}
