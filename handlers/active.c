/* active.c - GET /v1/keystores/{ks}/branch-keys/{id}/active: GetActiveBranchKey. */
#include "handlers/handlers.h"

ks_status ks_handle_active_get(const struct ks_request *req, struct ks_response *resp,
                               struct ks_error *err)
{
    return ks_handler_get_key(req, KS_HANDLER_ACTIVE, resp, err);
}
