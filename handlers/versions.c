/*
 * versions.c - the versions of a branch key:
 *   POST /v1/keystores/{ks}/branch-keys/{id}/versions  VersionKey {kmsRelationship?} -> 201
 *   GET  /v1/keystores/{ks}/branch-keys/{id}/versions/{v}  GetBranchKeyVersion
 */
#include <stdlib.h>

#include "common/jsonw.h"
#include "handlers/handlers.h"

static const char *const members[] = {"kmsRelationship", NULL};

ks_status ks_handle_version_create(const struct ks_request *req, struct ks_response *resp,
                                   struct ks_error *err)
{
    const struct ks_kms_relationship *rel;
    struct ks_keystore *ks;
    const char *rel_name = NULL;
    char *version = NULL;
    struct ks_jsonw w;
    ks_status st;

    if ((st = ks_handler_check_members(req->body, members, err)) != KS_OK ||
        (st = ks_handler_optional_string(req->body, "kmsRelationship", &rel_name, NULL, err)) !=
            KS_OK ||
        (st = ks_handler_resolve(req, rel_name, &ks, &rel, err)) != KS_OK)
        return st;
    if ((st = ks_keystore_version_key(ks, rel, req->params[KS_PARAM_ID], &version, err)) != KS_OK)
        return st;
    ks_handler_audit_key(req, NULL, version);
    ks_jsonw_init(&w, 8192);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "branchKeyIdentifier");
    ks_jsonw_string(&w, req->params[KS_PARAM_ID]);
    ks_jsonw_key(&w, "branchKeyVersion");
    ks_jsonw_string(&w, version);
    ks_jsonw_object_end(&w);
    free(version);
    return ks_handler_finish(&w, 201, resp, err);
}

ks_status ks_handle_version_get(const struct ks_request *req, struct ks_response *resp,
                                struct ks_error *err)
{
    return ks_handler_get_key(req, KS_HANDLER_VERSION, resp, err);
}
