/*
 * keyring.c - keyring as a service (docs/reference/hierarchical-keyring.md; README "Envelope
 * encryption without handling branch keys"):
 *   POST /v1/keystores/{ks}/keyring/wrap          OnEncrypt with the ACTIVE version
 *   POST /v1/keystores/{ks}/keyring/unwrap        OnDecrypt with the version inside each EDK
 *   POST /v1/keystores/{ks}/keyring/unwrap-batch  many unwraps, each version read once
 * Strict input: every member checked and every blob decoded before the first storage or KMS
 * call, so a bad request is 400 and costs nothing. Blobs are standard base64. The branch key stays
 * in the keyring module; the responses carry EDKs and data keys only (no-store).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/base64.h"
#include "common/jsonw.h"
#include "common/secret.h"
#include "common/utf8.h"
#include "handlers/handlers.h"
#include "keyring/keyring.h"

#define MAX_BATCH_REQUESTS 1000
#define MAX_EDKS 10000 /* per call, and in all for a batch */
#define RESPONSE_MAX (16u << 20)
#define WHERE_MAX 64

static const char *const wrap_members[] = {"branchKeyIdentifier", "encryptionContext",
                                           "algorithmSuiteId", "dataKey", NULL};
static const char *const unwrap_members[] = {"encryptedDataKeys", "encryptionContext",
                                             "algorithmSuiteId", "branchKeyIdentifier", NULL};
static const char *const edk_members[] = {"providerId", "providerInfo", "ciphertext", NULL};
static const char *const batch_members[] = {"requests", NULL};

/* --- shared input checks ------------------------------------------------------------------- */

/* Members of obj outside allowed: 400 naming where. */
static ks_status check_members(struct json_object *obj, const char *where,
                               const char *const *allowed, struct ks_error *err)
{
    ks_status st = ks_handler_check_members(obj, allowed, err);
    if (st != KS_OK && where[0]) {
        char message[KS_ERROR_MESSAGE_MAX];
        snprintf(message, sizeof message, "%s", err->message);
        ks_error_set(err, st, "%s.%s", where, message);
    }
    return st;
}

/* A string member; required or optional (*out NULL when absent). NUL inside is refused. */
static ks_status get_string(struct json_object *obj, const char *where, const char *name,
                            int required, const char **out, size_t *len, struct ks_error *err)
{
    struct json_object *v;
    *out = NULL;
    *len = 0;
    if (!json_object_object_get_ex(obj, name, &v)) {
        if (required)
            return ks_error_set(err, KS_E_INVALID, "%s%s%s: required", where, where[0] ? "." : "",
                                name);
        return KS_OK;
    }
    if (!json_object_is_type(v, json_type_string))
        return ks_error_set(err, KS_E_INVALID, "%s%s%s: expected a string", where,
                            where[0] ? "." : "", name);
    *out = json_object_get_string(v);
    *len = (size_t)json_object_get_string_len(v);
    if (strlen(*out) != *len)
        return ks_error_set(err, KS_E_INVALID, "%s%s%s: must not contain NUL", where,
                            where[0] ? "." : "", name);
    return KS_OK;
}

/* A base64 member into a malloc'd buffer (*out; wiped on free by the caller when secret). */
static ks_status get_blob(struct json_object *obj, const char *where, const char *name,
                          int required, unsigned char **out, size_t *out_len, struct ks_error *err)
{
    const char *text;
    size_t len;
    ks_status st = get_string(obj, where, name, required, &text, &len, err);
    *out = NULL;
    *out_len = 0;
    if (st != KS_OK || !text)
        return st;
    if (ks_base64_decode(text, len, out, out_len) != 0)
        return ks_error_set(err, KS_E_INVALID, "%s%s%s: invalid base64", where, where[0] ? "." : "",
                            name);
    return KS_OK;
}

static ks_status get_suite(struct json_object *obj, const char *where,
                           const struct ks_keyring_suite **suite, struct ks_error *err)
{
    const char *text;
    size_t len;
    ks_status st = get_string(obj, where, "algorithmSuiteId", 0, &text, &len, err);
    if (st != KS_OK)
        return st;
    *suite = text ? ks_keyring_suite_parse(text, len) : ks_keyring_suite_default();
    if (!*suite)
        return ks_error_set(err, KS_E_INVALID,
                            "%s%salgorithmSuiteId: not an ESDK algorithm suite id such as "
                            "\"0x0478\"",
                            where, where[0] ? "." : "");
    return KS_OK;
}

/* The branch key id, required or optional, checked as the keystore checks ids. */
static ks_status get_branch_key_id(struct json_object *obj, const char *where, int required,
                                   const char **id, size_t *len, struct ks_error *err)
{
    ks_status st = get_string(obj, where, "branchKeyIdentifier", required, id, len, err);
    if (st != KS_OK || !*id)
        return st;
    return ks_keystore_check_branch_key_id(*id, *len, err);
}

/* The encryption context: an object of string values, each taken with its length: a value may
 * hold U+0000 (the keyring routes' pre-scan lets it through, common/json_check.h), a key may not
 * (json-c keeps member names as C strings, and the pre-scan refuses NUL there). Lone surrogates
 * and invalid UTF-8 were refused by the pre-scan; ks_keyring_check_ec checks the limits
 * (docs/reference/hierarchical-keyring.md section 4). */
static ks_status get_ec(struct json_object *obj, const char *where, struct ks_keyring_ec *ec,
                        struct ks_error *err)
{
    struct json_object *ctx;
    const char *dot = where[0] ? "." : "";
    if (!json_object_object_get_ex(obj, "encryptionContext", &ctx))
        return KS_OK;
    if (!json_object_is_type(ctx, json_type_object))
        return ks_error_set(err, KS_E_INVALID,
                            "%s%sencryptionContext: expected an object of string values", where,
                            dot);
    json_object_object_foreach(ctx, key, val)
    {
        char shown[KS_UTF8_NAME_SHOWN];
        if (!json_object_is_type(val, json_type_string)) {
            ks_utf8_display(key, strlen(key), shown, sizeof shown);
            return ks_error_set(err, KS_E_INVALID,
                                "%s%sencryptionContext.%s: expected a string value", where, dot,
                                shown);
        }
        if (ks_keyring_ec_set(ec, key, strlen(key), json_object_get_string(val),
                              (size_t)json_object_get_string_len(val)) != 0)
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    if (ec->count != (size_t)json_object_object_length(ctx))
        return ks_error_set(err, KS_E_INVALID, "%s%sencryptionContext: duplicate key", where, dot);
    return ks_keyring_check_ec(ec, err);
}

/* --- the unwrap request (also one item of a batch) ----------------------------------------- */

struct unwrap_input {
    struct ks_keyring_ec ec;
    const struct ks_keyring_suite *suite;
    const char *branch_key_id; /* borrowed from the JSON */
    size_t branch_key_id_len;
    struct ks_keyring_edk *edks;
    size_t n_edks;
    unsigned char **blobs; /* the decoded provider infos and ciphertexts, owned: 2 per EDK */
};

static void unwrap_input_free(struct unwrap_input *in)
{
    size_t i;
    for (i = 0; in->blobs && i < 2 * in->n_edks; i++)
        free(in->blobs[i]);
    free(in->blobs);
    free(in->edks);
    ks_keyring_ec_free(&in->ec);
}

/* One EDK object. Provider info and ciphertext are opaque bytes here: their length and UTF-8
 * checks apply only to aws-kms-hierarchy EDKs, when they are tried (keyring.c). */
static ks_status parse_edk(struct json_object *o, const char *where, struct ks_keyring_edk *edk,
                           unsigned char **blobs, struct ks_error *err)
{
    unsigned char *info = NULL, *ct = NULL;
    size_t info_len = 0, ct_len = 0;
    ks_status st;

    if (!json_object_is_type(o, json_type_object))
        return ks_error_set(err, KS_E_INVALID, "%s: expected an object", where);
    if ((st = check_members(o, where, edk_members, err)) != KS_OK ||
        (st = get_string(o, where, "providerId", 1, &edk->provider_id, &edk->provider_id_len,
                         err)) != KS_OK ||
        (st = get_blob(o, where, "providerInfo", 1, &info, &info_len, err)) != KS_OK ||
        (st = get_blob(o, where, "ciphertext", 1, &ct, &ct_len, err)) != KS_OK) {
        free(info);
        return st;
    }
    blobs[0] = info;
    blobs[1] = ct;
    edk->provider_info = info;
    edk->provider_info_len = info_len;
    edk->ciphertext = ct;
    edk->ciphertext_len = ct_len;
    return KS_OK;
}

static ks_status parse_edks(struct json_object *body, const char *where, size_t *edk_budget,
                            struct unwrap_input *in, struct ks_error *err)
{
    const char *dot = where[0] ? "." : "";
    struct json_object *arr;
    size_t i, n;

    if (!json_object_object_get_ex(body, "encryptedDataKeys", &arr))
        return ks_error_set(err, KS_E_INVALID, "%s%sencryptedDataKeys: required", where, dot);
    if (!json_object_is_type(arr, json_type_array) || json_object_array_length(arr) == 0)
        return ks_error_set(err, KS_E_INVALID,
                            "%s%sencryptedDataKeys: expected a non-empty array of EDKs", where,
                            dot);
    n = json_object_array_length(arr);
    if (n > *edk_budget)
        return ks_error_set(err, KS_E_INVALID, "encryptedDataKeys: more than %d in all", MAX_EDKS);
    *edk_budget -= n;
    in->edks = calloc(n, sizeof *in->edks);
    in->blobs = calloc(2 * n, sizeof *in->blobs);
    if (!in->edks || !in->blobs)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    for (i = 0; i < n; i++) {
        char at[WHERE_MAX + 32];
        ks_status st;
        snprintf(at, sizeof at, "%s%sencryptedDataKeys[%zu]", where, dot, i);
        st = parse_edk(json_object_array_get_idx(arr, i), at, &in->edks[i], &in->blobs[2 * i], err);
        if (st != KS_OK)
            return st;
        in->n_edks++;
    }
    return KS_OK;
}

/* An unwrap body; where names it in messages ("" or "requests[3]"). in is freed by the caller
 * in every case. */
static ks_status parse_unwrap(struct json_object *body, const char *where, size_t *edk_budget,
                              struct unwrap_input *in, struct ks_error *err)
{
    ks_status st;
    if (!body || !json_object_is_type(body, json_type_object))
        return ks_error_set(err, KS_E_INVALID, "%s: expected an unwrap request object",
                            where[0] ? where : "body");
    if ((st = check_members(body, where, unwrap_members, err)) != KS_OK ||
        (st = get_suite(body, where, &in->suite, err)) != KS_OK ||
        (st = get_branch_key_id(body, where, 0, &in->branch_key_id, &in->branch_key_id_len, err)) !=
            KS_OK ||
        (st = get_ec(body, where, &in->ec, err)) != KS_OK)
        return st;
    return parse_edks(body, where, edk_budget, in, err);
}

/* --- running and answering ----------------------------------------------------------------- */

static struct ks_reader tenant_reader(const struct ks_request *req)
{
    struct ks_reader r = {(const unsigned char *)req->tenant->partition,
                          strlen(req->tenant->partition)};
    return r;
}

static void count(const struct ks_request *req, int wrap, ks_status st)
{
    struct ks_keyring_counters *c = ks_app_keyring_counters(req->app);
    if (!c)
        return;
    if (wrap)
        c->wraps[ks_keyring_outcome_of(st)]++;
    else
        c->unwraps[ks_keyring_outcome_of(st)]++;
}

static void write_unwrap_result(struct ks_jsonw *w, const struct ks_keyring_unwrap_result *r)
{
    ks_jsonw_object_begin(w);
    ks_jsonw_key(w, "dataKey");
    ks_jsonw_base64(w, r->data_key, r->data_key_len);
    ks_jsonw_key(w, "branchKeyIdentifier");
    ks_jsonw_string(w, r->branch_key_id);
    ks_jsonw_key(w, "branchKeyVersion");
    ks_jsonw_string(w, r->version);
    ks_jsonw_key(w, "encryptedDataKeyIndex");
    ks_jsonw_int(w, (long long)r->edk_index);
    ks_jsonw_object_end(w);
}

static ks_status run_unwrap(struct ks_keyring_session *s, const struct unwrap_input *in,
                            struct ks_keyring_unwrap_result *out, struct ks_error *err)
{
    struct ks_keyring_unwrap_request r = {in->edks,  in->n_edks,        &in->ec,
                                          in->suite, in->branch_key_id, in->branch_key_id_len};
    return ks_keyring_unwrap(s, &r, out, err);
}

/* --- POST .../keyring/wrap ----------------------------------------------------------------- */

static void write_wrap_result(struct ks_jsonw *w, const char *id,
                              const struct ks_keyring_suite *suite,
                              const struct ks_keyring_wrap_result *r)
{
    ks_jsonw_object_begin(w);
    ks_jsonw_key(w, "encryptedDataKey");
    ks_jsonw_object_begin(w);
    ks_jsonw_key(w, "providerId");
    ks_jsonw_string(w, KS_KEYRING_PROVIDER_ID);
    ks_jsonw_key(w, "providerInfo");
    ks_jsonw_base64(w, id, strlen(id));
    ks_jsonw_key(w, "ciphertext");
    ks_jsonw_base64(w, r->ciphertext, r->ciphertext_len);
    ks_jsonw_object_end(w);
    ks_jsonw_key(w, "branchKeyIdentifier");
    ks_jsonw_string(w, id);
    ks_jsonw_key(w, "branchKeyVersion");
    ks_jsonw_string(w, r->version);
    ks_jsonw_key(w, "algorithmSuiteId");
    ks_jsonw_string(w, suite->id_text);
    if (r->generated) { /* a data key the caller gave is not echoed */
        ks_jsonw_key(w, "dataKey");
        ks_jsonw_base64(w, r->data_key, r->data_key_len);
    }
    ks_jsonw_object_end(w);
}

static ks_status wrap(const struct ks_request *req, struct ks_response *resp, struct ks_error *err)
{
    const struct ks_keyring_suite *suite = NULL;
    struct ks_keyring_wrap_result r = {0};
    struct ks_keyring_source src;
    struct ks_reader reader = tenant_reader(req);
    unsigned char *data_key = NULL;
    size_t data_key_len = 0, id_len;
    const char *id;
    struct ks_jsonw w;
    struct ks_keyring_ec ec;
    ks_status st;

    ks_keyring_ec_init(&ec);
    if (!req->body)
        return ks_error_set(err, KS_E_INVALID, "body: required");
    if ((st = check_members(req->body, "", wrap_members, err)) != KS_OK ||
        (st = get_branch_key_id(req->body, "", 1, &id, &id_len, err)) != KS_OK ||
        (st = get_suite(req->body, "", &suite, err)) != KS_OK ||
        (st = get_ec(req->body, "", &ec, err)) != KS_OK ||
        (st = get_blob(req->body, "", "dataKey", 0, &data_key, &data_key_len, err)) != KS_OK)
        goto done;
    if (data_key && data_key_len != suite->data_key_len) {
        st = ks_error_set(err, KS_E_INVALID, "dataKey: %zu bytes; algorithm suite %s needs %zu",
                          data_key_len, suite->id_text, suite->data_key_len);
        goto done;
    }
    src.reader = &reader;
    if ((st = ks_handler_resolve(req, NULL, &src.keystore, &src.relationship, err)) != KS_OK ||
        (st = ks_keyring_wrap(&src, id, &ec, suite, data_key, data_key_len, &r, err)) != KS_OK)
        goto done;
    ks_handler_audit_key(req, id, r.version);
    ks_jsonw_init(&w, RESPONSE_MAX);
    write_wrap_result(&w, id, suite, &r);
    resp->no_store = 1;
    st = ks_handler_finish(&w, 200, resp, err);
done:
    ks_keyring_wrap_result_free(&r);
    ks_secret_free(data_key, data_key_len);
    ks_keyring_ec_free(&ec);
    return st;
}

ks_status ks_handle_keyring_wrap(const struct ks_request *req, struct ks_response *resp,
                                 struct ks_error *err)
{
    ks_status st = wrap(req, resp, err);
    count(req, 1, st);
    return st;
}

/* --- POST .../keyring/unwrap --------------------------------------------------------------- */

static ks_status unwrap(const struct ks_request *req, struct ks_response *resp,
                        struct ks_error *err)
{
    struct ks_keyring_unwrap_result r;
    struct ks_keyring_session *session = NULL;
    struct ks_reader reader = tenant_reader(req);
    struct ks_keyring_source src;
    struct unwrap_input in;
    size_t budget = MAX_EDKS;
    struct ks_jsonw w;
    ks_status st;

    memset(&in, 0, sizeof in);
    memset(&r, 0, sizeof r);
    ks_keyring_ec_init(&in.ec);
    src.reader = &reader;
    if ((st = parse_unwrap(req->body, "", &budget, &in, err)) != KS_OK ||
        (st = ks_handler_resolve(req, NULL, &src.keystore, &src.relationship, err)) != KS_OK)
        goto done;
    session = ks_keyring_session_new(&src);
    if (!session) {
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
        goto done;
    }
    if ((st = run_unwrap(session, &in, &r, err)) != KS_OK)
        goto done;
    ks_handler_audit_key(req, r.branch_key_id, r.version);
    ks_jsonw_init(&w, RESPONSE_MAX);
    write_unwrap_result(&w, &r);
    resp->no_store = 1;
    st = ks_handler_finish(&w, 200, resp, err);
done:
    ks_keyring_unwrap_result_free(&r);
    ks_keyring_session_free(session);
    unwrap_input_free(&in);
    return st;
}

ks_status ks_handle_keyring_unwrap(const struct ks_request *req, struct ks_response *resp,
                                   struct ks_error *err)
{
    ks_status st = unwrap(req, resp, err);
    count(req, 0, st);
    return st;
}

/* --- POST .../keyring/unwrap-batch --------------------------------------------------------- */

struct batch {
    struct unwrap_input *items;
    size_t n;
};

static void batch_free(struct batch *b)
{
    size_t i;
    for (i = 0; i < b->n; i++)
        unwrap_input_free(&b->items[i]);
    free(b->items);
}

/* Every request is parsed and checked before the first read: one bad request is a 400 for the
 * whole batch, and nothing is read. */
static ks_status parse_batch(struct json_object *body, struct batch *b, struct ks_error *err)
{
    struct json_object *arr;
    size_t i, n, budget = MAX_EDKS;
    ks_status st;

    if (!body)
        return ks_error_set(err, KS_E_INVALID, "body: required");
    if ((st = check_members(body, "", batch_members, err)) != KS_OK)
        return st;
    if (!json_object_object_get_ex(body, "requests", &arr) ||
        !json_object_is_type(arr, json_type_array) || json_object_array_length(arr) == 0)
        return ks_error_set(err, KS_E_INVALID, "requests: expected a non-empty array");
    n = json_object_array_length(arr);
    if (n > MAX_BATCH_REQUESTS)
        return ks_error_set(err, KS_E_INVALID, "requests: %zu; at most %d per batch", n,
                            MAX_BATCH_REQUESTS);
    b->items = calloc(n, sizeof *b->items);
    if (!b->items)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    for (i = 0; i < n; i++) {
        char where[WHERE_MAX];
        snprintf(where, sizeof where, "requests[%zu]", i);
        ks_keyring_ec_init(&b->items[i].ec);
        b->n++;
        st = parse_unwrap(json_object_array_get_idx(arr, i), where, &budget, &b->items[i], err);
        if (st != KS_OK)
            return st;
    }
    return KS_OK;
}

/* One result of the batch: the unwrap result, or {"error": {"__type", "message"}}. */
static void write_batch_item(const struct ks_request *req, struct ks_jsonw *w,
                             struct ks_keyring_session *s, const struct unwrap_input *in)
{
    struct ks_keyring_unwrap_result r;
    struct ks_error e;
    ks_status st;

    memset(&r, 0, sizeof r);
    ks_error_clear(&e);
    st = run_unwrap(s, in, &r, &e);
    count(req, 0, st);
    if (st == KS_OK) {
        write_unwrap_result(w, &r);
        ks_keyring_unwrap_result_free(&r);
        return;
    }
    if (st <= KS_OK || st >= KS_STATUS_COUNT || st == KS_E_CONFIG)
        st = KS_E_INTERNAL;
    ks_jsonw_object_begin(w);
    ks_jsonw_key(w, "error");
    ks_jsonw_object_begin(w);
    ks_jsonw_key(w, "__type");
    ks_jsonw_string(w, ks_status_exception(st));
    ks_jsonw_key(w, "message");
    /* As for a whole answer: a 500 says only "internal error" (handlers.h). */
    ks_jsonw_string(w, st == KS_E_INTERNAL || !e.message[0] ? ks_strerror(st) : e.message);
    ks_jsonw_object_end(w);
    ks_jsonw_object_end(w);
}

static ks_status unwrap_batch(const struct ks_request *req, struct ks_response *resp,
                              struct ks_error *err)
{
    struct ks_keyring_session *session = NULL;
    struct ks_reader reader = tenant_reader(req);
    struct ks_keyring_source src;
    struct batch b = {NULL, 0};
    struct ks_jsonw w;
    ks_status st;
    size_t i;

    src.reader = &reader;
    st = parse_batch(req->body, &b, err);
    if (st == KS_OK && req->audit)
        req->audit->items = (long long)b.n;
    if (st != KS_OK ||
        (st = ks_handler_resolve(req, NULL, &src.keystore, &src.relationship, err)) != KS_OK)
        goto done;
    /* One session for the whole batch: each distinct branch key version is read once. */
    session = ks_keyring_session_new(&src);
    if (!session) {
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
        goto done;
    }
    ks_jsonw_init(&w, RESPONSE_MAX);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "results");
    ks_jsonw_array_begin(&w);
    for (i = 0; i < b.n; i++)
        write_batch_item(req, &w, session, &b.items[i]);
    ks_jsonw_array_end(&w);
    ks_jsonw_object_end(&w);
    resp->no_store = 1;
    st = ks_handler_finish(&w, 200, resp, err);
done:
    ks_keyring_session_free(session);
    batch_free(&b);
    return st;
}

ks_status ks_handle_keyring_unwrap_batch(const struct ks_request *req, struct ks_response *resp,
                                         struct ks_error *err)
{
    ks_status st = unwrap_batch(req, resp, err);
    if (st != KS_OK)
        count(req, 0, st); /* a refused batch counts once; its items were counted otherwise */
    return st;
}
