/*
 * system.c - routes without auth: GET /healthz (the process answers) and GET /v1/openapi.yaml.
 * GET /readyz reads the server's own probes and lives with them (server/readiness.c).
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

ks_status ks_handle_openapi(const struct ks_request *req, struct ks_response *resp,
                            struct ks_error *err)
{
    size_t len = ks_openapi_yaml_len;
    const char *text = ks_openapi_yaml;
    char *copy = malloc(len + 1);
    (void)req;
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
