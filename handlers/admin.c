/*
 * admin.c - POST /v1/admin/reload (admin role): re-reads the configuration file and swaps it in
 * (README "Reload"). The answer is {"status":"reloaded"}; an invalid file or a change that cannot
 * apply live is a 400 with the reason, and nothing changed.
 */
#include "common/jsonw.h"
#include "handlers/handlers.h"

ks_status ks_handle_admin_reload(const struct ks_request *req, struct ks_response *resp,
                                 struct ks_error *err)
{
    struct ks_jsonw w;
    ks_status st;

    if ((st = ks_app_reload(req->app, err)) != KS_OK)
        return st;
    ks_jsonw_init(&w, 256);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "status");
    ks_jsonw_string(&w, "reloaded");
    ks_jsonw_object_end(&w);
    return ks_handler_finish(&w, 200, resp, err);
}
