/*
 * system.c - routes without auth: GET /healthz (the process answers), GET /readyz (every
 * storage backend and KMS relationship reachable), GET /v1/openapi.yaml.
 * Readiness shows only "ok" / "unavailable" per component: the route is unauthenticated, so
 * dependency error text stays in the log.
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

ks_status ks_handle_readyz(const struct ks_request *req, struct ks_response *resp,
                           struct ks_error *err)
{
    const struct ks_config *cfg = ks_app_config(req->app);
    struct ks_jsonw w;
    int ready = 1;
    size_t i;

    ks_jsonw_init(&w, 1u << 20);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "checks");
    ks_jsonw_object_begin(&w);
    for (i = 0; i < cfg->n_key_stores; i++) {
        struct ks_error e;
        char name[300];
        int ok = ks_keystore_ping(ks_app_keystore(req->app, i), &e) == KS_OK;
        ready &= ok;
        snprintf(name, sizeof name, "storage:%s", cfg->key_stores[i].name);
        ks_jsonw_key(&w, name);
        ks_jsonw_string(&w, ok ? "ok" : "unavailable");
    }
    for (i = 0; i < cfg->n_kms_relationships; i++) {
        struct ks_error e;
        char name[300];
        int ok = ks_kms_relationship_ping(ks_app_relationship(req->app, i), &e) == KS_OK;
        ready &= ok;
        snprintf(name, sizeof name, "kms:%s", cfg->kms_relationships[i].name);
        ks_jsonw_key(&w, name);
        ks_jsonw_string(&w, ok ? "ok" : "unavailable");
    }
    ks_jsonw_object_end(&w);
    ks_jsonw_key(&w, "status");
    ks_jsonw_string(&w, ready ? "ready" : "unavailable");
    ks_jsonw_object_end(&w);
    return ks_handler_finish(&w, ready ? 200 : 503, resp, err);
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
