/*
 * common.c - what every handler file shares: resolving the key store and KMS relationship with
 * the tenant's permissions (docs/architecture.md section 4), strict body member checks, JSON
 * output, and the error answer.
 */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "common/jsonw.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/utf8.h"
#include "handlers/handlers.h"

#define RESPONSE_MAX (1u << 20)
#define ERROR_BODY_MAX 4096

static int tenant_has(const size_t *indexes, size_t n, size_t index)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (indexes[i] == index)
            return 1;
    return 0;
}

ks_status ks_handler_resolve(const struct ks_request *req, const char *body_relationship,
                             struct ks_keystore **ks, const struct ks_kms_relationship **rel,
                             struct ks_error *err)
{
    const struct ks_config *cfg = ks_app_config(req->app);
    const struct ks_key_store_config *kscfg;
    const char *rel_name;
    size_t ks_index, rel_index;
    char shown[KS_UTF8_NAME_SHOWN];

    kscfg = ks_config_key_store(cfg, req->params[KS_PARAM_KS], &ks_index);
    if (!kscfg) {
        /* The name comes from the URL: shown as valid UTF-8, never raw (common/utf8.h). */
        ks_utf8_display(req->params[KS_PARAM_KS], req->param_lens[KS_PARAM_KS], shown,
                        sizeof shown);
        return ks_error_set(err, KS_E_NOT_FOUND, "key store '%s' is not configured", shown);
    }
    if (!tenant_has(req->tenant->key_store_indexes, req->tenant->n_key_stores, ks_index))
        return ks_error_set(err, KS_E_FORBIDDEN, "tenant '%s' may not use key store '%s'",
                            req->tenant->name, kscfg->name);
    rel_name = body_relationship ? body_relationship : req->kms_relationship_query;
    if (rel_name) {
        if (!ks_config_kms_relationship(cfg, rel_name, &rel_index)) {
            ks_utf8_display(rel_name, strlen(rel_name), shown, sizeof shown);
            return ks_error_set(err, KS_E_NOT_FOUND, "kmsRelationship: '%s' is not configured",
                                shown);
        }
    } else {
        rel_index = kscfg->kms_relationship_index;
    }
    if (!tenant_has(req->tenant->kms_relationship_indexes, req->tenant->n_kms_relationships,
                    rel_index))
        return ks_error_set(err, KS_E_FORBIDDEN, "tenant '%s' may not use KMS relationship '%s'",
                            req->tenant->name, cfg->kms_relationships[rel_index].name);
    if (req->audit) {
        req->audit->key_store = kscfg->name;
        req->audit->kms_relationship = cfg->kms_relationships[rel_index].name;
    }
    if (ks)
        *ks = ks_app_keystore(req->app, ks_index);
    if (rel)
        *rel = ks_app_relationship(req->app, rel_index);
    return KS_OK;
}

ks_status ks_handler_check_members(struct json_object *body, const char *const *allowed,
                                   struct ks_error *err)
{
    if (!body)
        return KS_OK;
    json_object_object_foreach(body, key, val)
    {
        const char *const *a;
        char shown[KS_UTF8_NAME_SHOWN];
        (void)val;
        for (a = allowed; *a; a++)
            if (strcmp(*a, key) == 0)
                break;
        if (!*a) {
            ks_utf8_display(key, strlen(key), shown, sizeof shown);
            return ks_error_set(err, KS_E_INVALID, "%s: unknown field", shown);
        }
    }
    return KS_OK;
}

ks_status ks_handler_optional_string(struct json_object *body, const char *name, const char **out,
                                     size_t *len, struct ks_error *err)
{
    struct json_object *v;
    *out = NULL;
    if (len)
        *len = 0;
    if (!body || !json_object_object_get_ex(body, name, &v))
        return KS_OK;
    if (!json_object_is_type(v, json_type_string))
        return ks_error_set(err, KS_E_INVALID, "%s: expected a string", name);
    *out = json_object_get_string(v);
    if (len)
        *len = (size_t)json_object_get_string_len(v);
    if (strlen(*out) != (size_t)json_object_get_string_len(v))
        return ks_error_set(err, KS_E_INVALID, "%s: must not contain NUL", name);
    return KS_OK;
}

ks_status ks_handler_finish(struct ks_jsonw *w, int status, struct ks_response *resp,
                            struct ks_error *err)
{
    resp->body = ks_jsonw_take(w, &resp->body_len);
    if (!resp->body)
        return ks_error_set(err, KS_E_INTERNAL, "could not build the response");
    resp->status = status;
    return KS_OK;
}

/* src into dst (cap > 0), cut to fit at a byte boundary: the log's escaper keeps the line valid
 * UTF-8 whatever the cut. */
static void note_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void ks_handler_audit_key(const struct ks_request *req, const char *branch_key_id,
                          const char *version)
{
    if (!req->audit)
        return;
    if (branch_key_id)
        note_copy(req->audit->branch_key_id, sizeof req->audit->branch_key_id, branch_key_id);
    if (version)
        note_copy(req->audit->version, sizeof req->audit->version, version);
}

/* Writes the materials of ref as the get response ({branchKeyIdentifier, branchKeyVersion,
 * encryptionContext, branchKey, hierarchyVersion} or the beacon form) with no-store, then
 * releases ref (the cache entry stays alive until the response text holds its copy). */
static ks_status write_materials(struct ks_key_ref *ref, int beacon, struct ks_response *resp,
                                 struct ks_error *err)
{
    const struct ks_materials *m = ks_key_ref_materials(ref);
    struct ks_jsonw w;
    ks_status st;
    size_t i;

    ks_jsonw_init(&w, RESPONSE_MAX);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, beacon ? "beaconKeyIdentifier" : "branchKeyIdentifier");
    ks_jsonw_string(&w, m->branch_key_id);
    if (!beacon) {
        ks_jsonw_key(&w, "branchKeyVersion");
        ks_jsonw_string(&w, m->version);
    }
    ks_jsonw_key(&w, "encryptionContext");
    ks_jsonw_object_begin(&w);
    for (i = 0; i < m->encryption_context.count; i++) {
        ks_jsonw_key(&w, m->encryption_context.entries[i].key);
        ks_jsonw_string(&w, m->encryption_context.entries[i].value);
    }
    ks_jsonw_object_end(&w);
    ks_jsonw_key(&w, beacon ? "beaconKey" : "branchKey");
    ks_jsonw_base64(&w, m->key, m->key_len);
    ks_jsonw_key(&w, "hierarchyVersion");
    ks_jsonw_string(&w, m->hierarchy_version == 2 ? "2" : "1");
    ks_jsonw_object_end(&w);
    resp->no_store = 1;
    st = ks_handler_finish(&w, 200, resp, err);
    ks_key_ref_release(ref);
    return st;
}

ks_status ks_handler_get_key(const struct ks_request *req, enum ks_handler_key which,
                             struct ks_response *resp, struct ks_error *err)
{
    const struct ks_kms_relationship *rel;
    struct ks_reader reader = {(const unsigned char *)req->tenant->partition,
                               strlen(req->tenant->partition)};
    const char *id = req->params[KS_PARAM_ID];
    struct ks_keystore *ks;
    struct ks_key_ref *ref;
    ks_status st;

    if ((st = ks_handler_resolve(req, NULL, &ks, &rel, err)) != KS_OK)
        return st;
    if (which == KS_HANDLER_ACTIVE)
        st = ks_keystore_get_active(ks, rel, &reader, id, &ref, err);
    else if (which == KS_HANDLER_VERSION)
        st =
            ks_keystore_get_version(ks, rel, &reader, id, req->params[KS_PARAM_VERSION], &ref, err);
    else
        st = ks_keystore_get_beacon(ks, rel, &reader, id, &ref, err);
    if (st != KS_OK)
        return st;
    ks_handler_audit_key(req, NULL, ks_key_ref_materials(ref)->version);
    return write_materials(ref, which == KS_HANDLER_BEACON, resp, err);
}

ks_status ks_handler_error_response(const struct ks_error *err, const char *request_id,
                                    struct ks_response *resp)
{
    ks_status code = err->code;
    char message[KS_ERROR_MESSAGE_MAX * 3]; /* every byte may become a 3-byte U+FFFD */
    struct ks_jsonw w;

    if (code <= KS_OK || code >= KS_STATUS_COUNT || code == KS_E_CONFIG)
        code = KS_E_INTERNAL;
    if (code == KS_E_INTERNAL || !err->message[0])
        snprintf(message, sizeof message, "%s", ks_strerror(code));
    else
        ks_log_scrub_utf8(err->message, strnlen(err->message, sizeof err->message), message,
                          sizeof message);
    ks_jsonw_init(&w, ERROR_BODY_MAX);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "error");
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "type");
    ks_jsonw_string(&w, ks_status_exception(code));
    ks_jsonw_key(&w, "message");
    ks_jsonw_string(&w, message);
    ks_jsonw_key(&w, "requestId");
    ks_jsonw_string(&w, request_id);
    ks_jsonw_object_end(&w);
    ks_jsonw_object_end(&w);
    resp->body = ks_jsonw_take(&w, &resp->body_len);
    resp->status = ks_status_http_code(code);
    resp->content_type = NULL;
    resp->no_store = 1;
    return code;
}
