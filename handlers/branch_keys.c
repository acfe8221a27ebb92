/*
 * branch_keys.c - POST /v1/keystores/{ks}/branch-keys: CreateKey
 * {branchKeyIdentifier?, encryptionContext?, kmsRelationship?, hierarchyVersion?} -> 201.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/jsonw.h"
#include "common/utf8.h"
#include "common/util.h"
#include "handlers/handlers.h"

static const char *const members[] = {"branchKeyIdentifier", "encryptionContext", "kmsRelationship",
                                      "hierarchyVersion", NULL};

/* The custom encryption context: an object of strings, given without the aws-crypto-ec: prefix
 * (docs/architecture.md section 3). */
static ks_status parse_ec(struct json_object *body, struct ks_ec *ec, struct ks_error *err)
{
    struct json_object *obj;
    if (!body || !json_object_object_get_ex(body, "encryptionContext", &obj))
        return KS_OK;
    if (!json_object_is_type(obj, json_type_object))
        return ks_error_set(err, KS_E_INVALID,
                            "encryptionContext: expected an object of string values");
    json_object_object_foreach(obj, key, val)
    {
        char shown[KS_UTF8_NAME_SHOWN];
        ks_utf8_display(key, strlen(key), shown, sizeof shown);
        if (!json_object_is_type(val, json_type_string))
            return ks_error_set(err, KS_E_INVALID, "encryptionContext.%s: expected a string value",
                                shown);
        if (strlen(json_object_get_string(val)) != (size_t)json_object_get_string_len(val))
            return ks_error_set(err, KS_E_INVALID, "encryptionContext.%s: must not contain NUL",
                                shown);
        if (ks_ec_set(ec, key, json_object_get_string(val)) != 0)
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    /* json-c keeps object keys as C strings: a key with an embedded NUL arrives truncated and
     * could collide; the count check below catches a collision. */
    if (ec->count != (size_t)json_object_object_length(obj))
        return ks_error_set(err, KS_E_INVALID, "encryptionContext: duplicate or NUL key");
    return KS_OK;
}

/* *hv = 1 or 2, or 0 when absent (the key store's default_hierarchy_version). */
static ks_status check_hierarchy_version(struct json_object *body, int *hv, struct ks_error *err)
{
    struct json_object *v;
    const char *s;
    *hv = 0;
    if (!body || !json_object_object_get_ex(body, "hierarchyVersion", &v))
        return KS_OK;
    if (json_object_is_type(v, json_type_string))
        s = json_object_get_string(v);
    else if (json_object_is_type(v, json_type_int))
        s = json_object_get_int64(v) == 1 ? "1" : json_object_get_int64(v) == 2 ? "2" : "";
    else
        s = "";
    if (strcmp(s, "1") == 0 || strcmp(s, "2") == 0) {
        *hv = s[0] - '0';
        return KS_OK;
    }
    return ks_error_set(err, KS_E_INVALID, "hierarchyVersion: expected \"1\" or \"2\"");
}

/* Percent-encodes a path segment (RFC 3986 unreserved kept) into out; 0, or -1 if too long. */
static int encode_segment(const char *s, char *out, size_t size)
{
    return ks_percent_encode(s, strlen(s), 0, out, size) < size ? 0 : -1;
}

ks_status ks_handle_branch_key_create(const struct ks_request *req, struct ks_response *resp,
                                      struct ks_error *err)
{
    const struct ks_kms_relationship *rel;
    struct ks_keystore *ks;
    const char *id = NULL, *rel_name = NULL;
    char *created = NULL;
    size_t id_len = 0;
    int hv = 0;
    struct ks_ec ec;
    struct ks_jsonw w;
    ks_status st;

    ks_ec_init(&ec);
    if ((st = ks_handler_check_members(req->body, members, err)) != KS_OK ||
        (st = ks_handler_optional_string(req->body, "branchKeyIdentifier", &id, &id_len, err)) !=
            KS_OK ||
        (st = ks_handler_optional_string(req->body, "kmsRelationship", &rel_name, NULL, err)) !=
            KS_OK ||
        (st = check_hierarchy_version(req->body, &hv, err)) != KS_OK ||
        (st = parse_ec(req->body, &ec, err)) != KS_OK)
        goto out;
    if ((st = ks_handler_resolve(req, rel_name, &ks, &rel, err)) != KS_OK)
        goto out;
    if ((st = ks_keystore_create_key_hv(ks, rel, id, &ec, hv, &created, err)) != KS_OK)
        goto out;
    ks_handler_audit_key(req, created, NULL);

    {
        char seg_ks[512], seg_id[3 * KS_BRANCH_KEY_ID_MAX + 1];
        if (encode_segment(req->params[KS_PARAM_KS], seg_ks, sizeof seg_ks) == 0 &&
            encode_segment(created, seg_id, sizeof seg_id) == 0)
            snprintf(resp->location, sizeof resp->location,
                     "/v1/keystores/%s/branch-keys/%s/active", seg_ks, seg_id);
    }
    ks_jsonw_init(&w, 8192);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "branchKeyIdentifier");
    ks_jsonw_string(&w, created);
    ks_jsonw_object_end(&w);
    st = ks_handler_finish(&w, 201, resp, err);
out:
    free(created);
    ks_ec_free(&ec);
    return st;
}
