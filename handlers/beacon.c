/* beacon.c - GET /v1/keystores/{ks}/branch-keys/{id}/beacon: GetBeaconKey. */
#include "handlers/handlers.h"

ks_status ks_handle_beacon_get(const struct ks_request *req, struct ks_response *resp,
                               struct ks_error *err)
{
    const struct ks_kms_relationship *rel;
    struct ks_keystore *ks;
    struct ks_materials *m;
    ks_status st;

    if ((st = ks_handler_resolve(req, NULL, &ks, &rel, err)) != KS_OK)
        return st;
    if ((st = ks_keystore_get_beacon(ks, rel, req->params[KS_PARAM_ID], &m, err)) != KS_OK)
        return st;
    st = ks_handler_materials(m, 1, resp, err);
    ks_materials_free(m);
    return st;
}
