/*
 * mutations.c - branch key mutations (docs/reference/mutations.md; README "Mutations"):
 *   POST   /v1/keystores/{ks}/branch-keys/{id}/mutation        InitializeMutation -> 201 / 200
 *   POST   /v1/keystores/{ks}/branch-keys/{id}/mutation/apply  ApplyMutation -> 200
 *   GET    /v1/keystores/{ks}/branch-keys/{id}/mutation        DescribeMutation -> 200 / 404
 *   DELETE /v1/keystores/{ks}/branch-keys/{id}/mutation        abort -> 204
 * The system key, page size and KMS concurrency come from the key store's `mutations:` YAML.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/jsonw.h"
#include "common/utf8.h"
#include "handlers/handlers.h"
#include "keystore/mutation.h"

#define RESPONSE_MAX (4u << 20)

static const char *const init_members[] = {
    "terminalKmsArn", "terminalEncryptionContext", "strategy", "doNotVersion",
    "atomic",         "terminalHierarchyVersion",  NULL};
static const char *const apply_members[] = {"mutationToken", "pageSize", "strategy", NULL};
static const char *const abort_members[] = {"mutationToken", NULL};

/* --- request parsing ---------------------------------------------------------------------- */

static ks_status optional_bool(struct json_object *body, const char *name, int *out,
                               struct ks_error *err)
{
    struct json_object *v;
    *out = 0;
    if (!body || !json_object_object_get_ex(body, name, &v))
        return KS_OK;
    if (!json_object_is_type(v, json_type_boolean))
        return ks_error_set(err, KS_E_INVALID, "%s: expected true or false", name);
    *out = json_object_get_boolean(v);
    return KS_OK;
}

/* terminalEncryptionContext: an object of strings, unprefixed. *present 0 when absent. */
static ks_status parse_ec(struct json_object *body, struct ks_ec *ec, int *present,
                          struct ks_error *err)
{
    struct json_object *obj;
    *present = 0;
    if (!body || !json_object_object_get_ex(body, "terminalEncryptionContext", &obj))
        return KS_OK;
    if (!json_object_is_type(obj, json_type_object))
        return ks_error_set(err, KS_E_INVALID,
                            "terminalEncryptionContext: expected an object of string values");
    json_object_object_foreach(obj, key, val)
    {
        char shown[KS_UTF8_NAME_SHOWN];
        ks_utf8_display(key, strlen(key), shown, sizeof shown);
        if (!json_object_is_type(val, json_type_string))
            return ks_error_set(err, KS_E_INVALID,
                                "terminalEncryptionContext.%s: expected a string value", shown);
        if (ks_ec_set(ec, key, json_object_get_string(val)) != 0)
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    *present = 1;
    return KS_OK;
}

/* A relationship member of a strategy: a string naming one the tenant may use. */
static ks_status strategy_rel(const struct ks_request *req, struct json_object *obj,
                              const char *path, const char *name,
                              const struct ks_kms_relationship **out, struct ks_error *err)
{
    struct json_object *v;
    if (!json_object_object_get_ex(obj, name, &v) || !json_object_is_type(v, json_type_string))
        return ks_error_set(err, KS_E_INVALID, "%s.%s: expected the name of a KMS relationship",
                            path, name);
    return ks_handler_resolve(req, json_object_get_string(v), NULL, out, err);
}

/*
 * strategy: {"reEncrypt": {"kmsRelationship"}} | {"decryptEncrypt": {"decrypt", "encrypt"}}.
 * Absent: reEncrypt through the key store's default relationship (*given 0).
 */
static ks_status parse_strategy(const struct ks_request *req, struct ks_mutation_strategy *s,
                                int *given, struct ks_error *err)
{
    struct json_object *obj, *inner;
    ks_status st;

    memset(s, 0, sizeof *s);
    *given = 0;
    if (!req->body || !json_object_object_get_ex(req->body, "strategy", &obj))
        return ks_handler_resolve(req, NULL, NULL, &s->reencrypt, err);
    *given = 1;
    if (!json_object_is_type(obj, json_type_object) || json_object_object_length(obj) != 1)
        return ks_error_set(err, KS_E_INVALID,
                            "strategy: expected {\"reEncrypt\": {...}} or "
                            "{\"decryptEncrypt\": {...}}");
    if (json_object_object_get_ex(obj, "reEncrypt", &inner) &&
        json_object_is_type(inner, json_type_object) && json_object_object_length(inner) == 1) {
        s->kind = KS_STRATEGY_REENCRYPT;
        return strategy_rel(req, inner, "strategy.reEncrypt", "kmsRelationship", &s->reencrypt,
                            err);
    }
    if (json_object_object_get_ex(obj, "decryptEncrypt", &inner) &&
        json_object_is_type(inner, json_type_object) && json_object_object_length(inner) == 2) {
        s->kind = KS_STRATEGY_DECRYPT_ENCRYPT;
        if ((st = strategy_rel(req, inner, "strategy.decryptEncrypt", "decrypt", &s->decrypt,
                               err)) != KS_OK)
            return st;
        return strategy_rel(req, inner, "strategy.decryptEncrypt", "encrypt", &s->encrypt, err);
    }
    return ks_error_set(err, KS_E_INVALID,
                        "strategy: expected {\"reEncrypt\": {\"kmsRelationship\"}} or "
                        "{\"decryptEncrypt\": {\"decrypt\", \"encrypt\"}}");
}

static ks_status token_string(struct json_object *tok, const char *name, const char **out,
                              int required, struct ks_error *err)
{
    struct json_object *v;
    *out = NULL;
    if (!json_object_object_get_ex(tok, name, &v))
        return required ? ks_error_set(err, KS_E_INVALID, "mutationToken.%s: required", name)
                        : KS_OK;
    if (!json_object_is_type(v, json_type_string))
        return ks_error_set(err, KS_E_INVALID, "mutationToken.%s: expected a string", name);
    *out = json_object_get_string(v);
    return KS_OK;
}

/* mutationToken {identifier, uuid, createTime?}; its identifier must be the path's {id}. */
static ks_status parse_token(const struct ks_request *req, struct ks_mutation_token *t,
                             struct ks_error *err)
{
    struct json_object *tok;
    const char *id, *uuid, *ct;
    ks_status st;

    memset(t, 0, sizeof *t);
    if (!req->body || !json_object_object_get_ex(req->body, "mutationToken", &tok) ||
        !json_object_is_type(tok, json_type_object))
        return ks_error_set(err, KS_E_INVALID,
                            "mutationToken: required, {identifier, uuid, createTime}");
    if ((st = token_string(tok, "identifier", &id, 1, err)) != KS_OK ||
        (st = token_string(tok, "uuid", &uuid, 1, err)) != KS_OK ||
        (st = token_string(tok, "createTime", &ct, 0, err)) != KS_OK)
        return st;
    if (strcmp(id, req->params[KS_PARAM_ID]) != 0)
        return ks_error_set(err, KS_E_MUTATION_INVALID,
                            "mutationToken.identifier: not the branch key of the path");
    if (!ks_uuid_is_valid(uuid))
        return ks_error_set(err, KS_E_MUTATION_INVALID, "mutationToken.uuid: not a mutation uuid");
    if (!(t->identifier = strdup(id)))
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    snprintf(t->uuid, sizeof t->uuid, "%s", uuid);
    if (ct && strlen(ct) < sizeof t->create_time)
        snprintf(t->create_time, sizeof t->create_time, "%s", ct);
    return KS_OK;
}

/* The key store of {ks} (tenant checked) and its `mutations:` settings. */
static ks_status resolve_settings(const struct ks_request *req, struct ks_keystore **ks,
                                  struct ks_mutation_settings *set, struct ks_error *err)
{
    const struct ks_key_store_config *kc;
    ks_status st;

    if ((st = ks_handler_resolve(req, NULL, ks, NULL, err)) != KS_OK)
        return st;
    kc = ks_config_key_store(ks_app_config(req->app), req->params[KS_PARAM_KS], NULL);
    memset(set, 0, sizeof *set);
    set->page_size = kc->mutations.page_size;
    set->kms_in_flight = kc->mutations.kms_in_flight;
    if (kc->mutations.system_key == KS_SYSTEM_KEY_KMS) {
        set->kms_system_key = 1;
        set->sys_rel = ks_app_relationship(req->app, kc->mutations.system_key_relationship_index);
        set->sys_arn = kc->mutations.system_key_arn;
    }
    return KS_OK;
}

/* --- responses ---------------------------------------------------------------------------- */

static void write_token(struct ks_jsonw *w, const struct ks_mutation_token *t)
{
    ks_jsonw_key(w, "mutationToken");
    ks_jsonw_object_begin(w);
    ks_jsonw_key(w, "identifier");
    ks_jsonw_string(w, t->identifier);
    ks_jsonw_key(w, "uuid");
    ks_jsonw_string(w, t->uuid);
    ks_jsonw_key(w, "createTime");
    ks_jsonw_string(w, t->create_time);
    ks_jsonw_object_end(w);
}

static void write_log(struct ks_jsonw *w, const struct ks_mutation_log *log)
{
    size_t i;
    ks_jsonw_key(w, "mutatedBranchKeyItems");
    ks_jsonw_array_begin(w);
    for (i = 0; i < log->count; i++) {
        ks_jsonw_object_begin(w);
        ks_jsonw_key(w, "itemType");
        ks_jsonw_string(w, log->entries[i].item_type);
        ks_jsonw_key(w, "description");
        ks_jsonw_string(w, log->entries[i].description);
        ks_jsonw_object_end(w);
    }
    ks_jsonw_array_end(w);
}

static void write_ec(struct ks_jsonw *w, const struct ks_ec *ec)
{
    size_t i;
    ks_jsonw_object_begin(w);
    for (i = 0; i < ec->count; i++) {
        ks_jsonw_key(w, ec->entries[i].key);
        ks_jsonw_string(w, ec->entries[i].value);
    }
    ks_jsonw_object_end(w);
}

/* --- the handlers ------------------------------------------------------------------------- */

/* terminalHierarchyVersion: "1" or "2" (docs/reference/mutations.md section 12); 0 when absent. */
static ks_status terminal_hv(struct json_object *body, int *out, struct ks_error *err)
{
    struct json_object *v;
    const char *s;

    *out = 0;
    if (!body || !json_object_object_get_ex(body, "terminalHierarchyVersion", &v))
        return KS_OK;
    s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
    if (strcmp(s, "1") != 0 && strcmp(s, "2") != 0)
        return ks_error_set(err, KS_E_INVALID, "terminalHierarchyVersion: must be \"1\" or \"2\"");
    *out = s[0] - '0';
    return KS_OK;
}

ks_status ks_handle_mutation_init(const struct ks_request *req, struct ks_response *resp,
                                  struct ks_error *err)
{
    struct ks_mutation_init_input in;
    struct ks_mutation_init_result r;
    struct ks_mutation_settings set;
    struct ks_keystore *ks;
    struct ks_ec ec;
    struct ks_jsonw w;
    int has_ec = 0, strategy_given = 0;
    ks_status st;

    memset(&in, 0, sizeof in);
    memset(&r, 0, sizeof r);
    ks_ec_init(&ec);
    in.branch_key_id = req->params[KS_PARAM_ID];
    if ((st = ks_handler_check_members(req->body, init_members, err)) != KS_OK ||
        (st = ks_handler_optional_string(req->body, "terminalKmsArn", &in.terminal_kms_arn, NULL,
                                         err)) != KS_OK ||
        (st = parse_ec(req->body, &ec, &has_ec, err)) != KS_OK ||
        (st = optional_bool(req->body, "doNotVersion", &in.do_not_version, err)) != KS_OK ||
        (st = optional_bool(req->body, "atomic", &in.atomic, err)) != KS_OK ||
        (st = terminal_hv(req->body, &in.terminal_hierarchy_version, err)) != KS_OK ||
        (st = resolve_settings(req, &ks, &set, err)) != KS_OK ||
        (st = parse_strategy(req, &in.strategy, &strategy_given, err)) != KS_OK)
        goto out;
    if (in.terminal_kms_arn && !strategy_given) {
        st = ks_error_set(err, KS_E_INVALID,
                          "strategy: required when terminalKmsArn is given ({\"reEncrypt\": "
                          "{\"kmsRelationship\"}} or {\"decryptEncrypt\": {\"decrypt\", "
                          "\"encrypt\"}})");
        goto out;
    }
    in.terminal_ec = has_ec ? &ec : NULL;
    if ((st = ks_mutation_initialize(ks, &set, &in, &r, err)) != KS_OK)
        goto out;
    ks_jsonw_init(&w, RESPONSE_MAX);
    ks_jsonw_object_begin(&w);
    if (r.completed) {
        ks_jsonw_key(&w, "completed");
        ks_jsonw_bool(&w, 1);
    } else {
        write_token(&w, &r.token);
    }
    ks_jsonw_key(&w, "initializeMutationFlag");
    ks_jsonw_string(&w, ks_mutation_flag_name(r.flag));
    write_log(&w, &r.log);
    ks_jsonw_object_end(&w);
    st = ks_handler_finish(&w, r.flag == KS_MUTATION_CREATED ? 201 : 200, resp, err);
out:
    ks_mutation_init_result_free(&r);
    ks_ec_free(&ec);
    return st;
}

static ks_status page_size_of(struct json_object *body, unsigned *out, struct ks_error *err)
{
    struct json_object *v;
    int64_t n;
    *out = 0;
    if (!body || !json_object_object_get_ex(body, "pageSize", &v))
        return KS_OK;
    n = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
    if (n < 1 || n > 98)
        return ks_error_set(err, KS_E_INVALID, "pageSize: expected an integer in 1..98");
    *out = (unsigned)n;
    return KS_OK;
}

ks_status ks_handle_mutation_apply(const struct ks_request *req, struct ks_response *resp,
                                   struct ks_error *err)
{
    struct ks_mutation_apply_result r;
    struct ks_mutation_settings set;
    struct ks_mutation_strategy strategy;
    struct ks_mutation_token token;
    struct ks_keystore *ks;
    struct ks_jsonw w;
    unsigned page_size;
    int given;
    ks_status st;

    memset(&r, 0, sizeof r);
    memset(&token, 0, sizeof token);
    if ((st = ks_handler_check_members(req->body, apply_members, err)) != KS_OK ||
        (st = parse_token(req, &token, err)) != KS_OK ||
        (st = page_size_of(req->body, &page_size, err)) != KS_OK ||
        (st = resolve_settings(req, &ks, &set, err)) != KS_OK ||
        (st = parse_strategy(req, &strategy, &given, err)) != KS_OK ||
        (st = ks_mutation_apply(ks, &set, &token, page_size, &strategy, &r, err)) != KS_OK)
        goto out;
    ks_jsonw_init(&w, RESPONSE_MAX);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "completed");
    ks_jsonw_bool(&w, r.completed);
    if (!r.completed)
        write_token(&w, &r.token);
    write_log(&w, &r.log);
    ks_jsonw_key(&w, "versionsMutated");
    ks_jsonw_int(&w, (long long)r.versions_mutated);
    ks_jsonw_key(&w, "versionsVerified");
    ks_jsonw_int(&w, (long long)r.versions_verified);
    ks_jsonw_object_end(&w);
    st = ks_handler_finish(&w, 200, resp, err);
out:
    ks_mutation_apply_result_free(&r);
    ks_mutation_token_free(&token);
    return st;
}

static void write_props(struct ks_jsonw *w, const char *name, const struct ks_mutation_props *p)
{
    ks_jsonw_key(w, name);
    ks_jsonw_object_begin(w);
    ks_jsonw_key(w, "kmsArn");
    ks_jsonw_string(w, p->kms_arn);
    ks_jsonw_key(w, "encryptionContext");
    write_ec(w, &p->ec);
    ks_jsonw_key(w, "hierarchyVersion");
    ks_jsonw_string(w, p->hierarchy_version == 2 ? "2" : "1");
    ks_jsonw_object_end(w);
}

static void write_description(struct ks_jsonw *w, const struct ks_mutation_description *d)
{
    ks_jsonw_object_begin(w);
    write_token(w, &d->token);
    write_props(w, "original", &d->original);
    write_props(w, "terminal", &d->terminal);
    ks_jsonw_key(w, "input");
    ks_jsonw_object_begin(w);
    ks_jsonw_key(w, "terminalKmsArn");
    if (d->input_kms_arn)
        ks_jsonw_string(w, d->input_kms_arn);
    else
        ks_jsonw_null(w);
    ks_jsonw_key(w, "terminalEncryptionContext");
    if (d->input_has_ec)
        write_ec(w, &d->input_ec);
    else
        ks_jsonw_null(w);
    ks_jsonw_key(w, "doNotVersion");
    ks_jsonw_bool(w, d->do_not_version);
    ks_jsonw_key(w, "terminalHierarchyVersion");
    if (d->input_hierarchy_version)
        ks_jsonw_string(w, d->input_hierarchy_version == 2 ? "2" : "1");
    else
        ks_jsonw_null(w);
    ks_jsonw_object_end(w);
    ks_jsonw_key(w, "systemKey");
    ks_jsonw_string(w, d->system_key);
    ks_jsonw_key(w, "createTime");
    ks_jsonw_string(w, d->token.create_time);
    ks_jsonw_key(w, "lastPageDone");
    ks_jsonw_bool(w, d->last_page_done);
    ks_jsonw_key(w, "versions");
    ks_jsonw_object_begin(w);
    ks_jsonw_key(w, "original");
    ks_jsonw_int(w, (long long)d->versions_original);
    ks_jsonw_key(w, "terminal");
    ks_jsonw_int(w, (long long)d->versions_terminal);
    ks_jsonw_object_end(w);
    ks_jsonw_object_end(w);
}

ks_status ks_handle_mutation_describe(const struct ks_request *req, struct ks_response *resp,
                                      struct ks_error *err)
{
    struct ks_mutation_description d;
    struct ks_keystore *ks;
    struct ks_jsonw w;
    ks_status st;

    if ((st = ks_handler_resolve(req, NULL, &ks, NULL, err)) != KS_OK ||
        (st = ks_mutation_describe(ks, req->params[KS_PARAM_ID], &d, err)) != KS_OK)
        return st;
    ks_jsonw_init(&w, RESPONSE_MAX);
    write_description(&w, &d);
    ks_mutation_description_free(&d);
    return ks_handler_finish(&w, 200, resp, err);
}

ks_status ks_handle_mutation_abort(const struct ks_request *req, struct ks_response *resp,
                                   struct ks_error *err)
{
    struct ks_mutation_token token;
    struct ks_keystore *ks;
    ks_status st;

    memset(&token, 0, sizeof token);
    if ((st = ks_handler_check_members(req->body, abort_members, err)) == KS_OK &&
        (st = parse_token(req, &token, err)) == KS_OK &&
        (st = ks_handler_resolve(req, NULL, &ks, NULL, err)) == KS_OK &&
        (st = ks_mutation_abort(ks, &token, err)) == KS_OK) {
        resp->status = 204;
        resp->body = NULL;
        resp->body_len = 0;
    }
    ks_mutation_token_free(&token);
    return st;
}
