/* beacon.c - GET /v1/keystores/{ks}/branch-keys/{id}/beacon: GetBeaconKey. */
#include "handlers/handlers.h"

ks_status ks_handle_beacon_get(const struct ks_request *req, struct ks_response *resp,
                               struct ks_error *err)
{
    const struct ks_kms_relationship *rel;
    struct ks_keystore *ks;
    struct ks_reader reader;
    struct ks_key_ref *ref;
    ks_status st;

    if ((st = ks_handler_resolve(req, NULL, &ks, &rel, err)) != KS_OK)
        return st;
    reader = ks_handler_reader(req);
    if ((st = ks_keystore_get_beacon(ks, rel, &reader, req->params[KS_PARAM_ID], &ref, err)) !=
        KS_OK)
        return st;
    return ks_handler_materials(ref, 1, resp, err);
}
