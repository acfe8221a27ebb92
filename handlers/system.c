/*
 * system.c - routes without auth: GET /healthz (the process answers), GET /readyz (every
 * storage backend and KMS relationship reachable, as the background probes last found),
 * GET /v1/openapi.yaml.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/secret.h"
#include "handlers/handlers.h"

ks_status ks_handle_healthz(const struct ks_request *req, struct ks_response *resp,
                            struct ks_error *err)
{
    struct ks_jsonw w;
    (void)req;
    ks_jsonw_init(&w, 256);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "status");
    ks_jsonw_string(&w, "ok");
    ks_jsonw_object_end(&w);
    return ks_handler_finish(&w, 200, resp, err);
}

/*
 * Answers from the server's background probes (req->readiness): never waits on a dependency.
 * 200 when every check is ok; 503 "starting" until each has finished one probe, else 503
 * "unavailable". Each check shows only its state ("ok", "unavailable", "timeout", "starting"):
 * the route is unauthenticated, so the dependency's error text stays in the log.
 */
ks_status ks_handle_readyz(const struct ks_request *req, struct ks_response *resp,
                           struct ks_error *err)
{
    static const char *const state_names[] = {
        [KS_READINESS_STARTING] = "starting",
        [KS_READINESS_OK] = "ok",
        [KS_READINESS_UNAVAILABLE] = "unavailable",
        [KS_READINESS_TIMEOUT] = "timeout",
    };
    size_t i, n = ks_readiness_count(req->readiness);
    int starting = req->readiness == NULL, failing = 0;
    struct ks_jsonw w;

    ks_jsonw_init(&w, 1u << 20);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "checks");
    ks_jsonw_object_begin(&w);
    for (i = 0; i < n; i++) {
        const char *name;
        enum ks_readiness_state s = ks_readiness_state(req->readiness, i, &name);
        starting |= s == KS_READINESS_STARTING;
        failing |= s != KS_READINESS_OK;
        ks_jsonw_key(&w, name);
        ks_jsonw_string(&w, state_names[s]);
    }
    ks_jsonw_object_end(&w);
    ks_jsonw_key(&w, "status");
    ks_jsonw_string(&w, starting ? "starting" : failing ? "unavailable" : "ready");
    ks_jsonw_object_end(&w);
    return ks_handler_finish(&w, starting || failing ? 503 : 200, resp, err);
}

ks_status ks_handle_openapi(const struct ks_request *req, struct ks_response *resp,
                            struct ks_error *err)
{
    size_t len;
    const char *text = ks_app_openapi(req->app, &len);
    char *copy = malloc(len + 1);
    if (!copy)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    memcpy(copy, text, len);
    copy[len] = '\0';
    resp->body = copy;
    resp->body_len = len;
    resp->content_type = "application/yaml";
    resp->status = 200;
    return KS_OK;
}
