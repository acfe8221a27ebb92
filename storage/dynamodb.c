/*
 * dynamodb.c - the DynamoDB storage backend: the MPL's own table
 * (docs/reference/branch-key-store.md sections 1 and 2) over the awsJson 1.0 client of aws/aws.h
 * (docs/reference/aws-apis.md sections 1 and 3). Items travel exactly as ks_item_to_json writes
 * them, so the table holds byte for byte what the MPL writes, and the MPL can read what we write
 * (and the other way round).
 *
 * Writes are one TransactWriteItems each, with the MPL's condition expressions; which condition
 * failed is read from the cancellation reasons, one per action in request order
 * (docs/reference/aws-apis.md section 3, TransactionCanceledException).
 *
 * Thread safety: the struct is immutable after open; the client and the credentials provider
 * are thread-safe (aws/aws.h), so every method may run on any number of threads at once.
 */
#include "storage/storage.h"
#include "storage/tx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "aws/aws.h"
#include "config/config.h"
#include "common/util.h"

/* DescribeTable responses are the deepest we parse (TableDescription > GSIs > projection). */
#define JSON_MAX_DEPTH 32

/* CreateTable is asynchronous: wait for ACTIVE (aws-apis.md section 3, CreateTable) at most
 * this long, polling DescribeTable. */
#define TABLE_ACTIVE_WAIT_US (60ULL * 1000 * 1000)
#define TABLE_POLL_FIRST_MS 100
#define TABLE_POLL_MAX_MS 1000

/*
 * A transaction cancelled only for TransactionConflict (or throttling reasons) is sent again,
 * this many times in all, with full-jitter backoff from TX_BASE_DELAY_MS. This is on top of the
 * transport's own retries (ks_aws_call), which do not cover TransactionCanceledException.
 */
#define TX_MAX_ATTEMPTS 4
#define TX_BASE_DELAY_MS 25

/* The MPL's messages (docs/reference/branch-key-store.md sections 1 and 6). */
#define MSG_NOT_CONFORMING                                                                         \
    "Configured table name does not conform to expected Key Store construction."
#define MSG_ARN_MISMATCH                                                                           \
    "Configured DDB Table Name does not match parsed Table Name from DDB Table Arn."

/* The condition expressions, verbatim (docs/reference/branch-key-store.md sections 4, 5 and 9). */
#define COND_NOT_EXISTS "attribute_not_exists(#BranchKeyIdentifierField)"
#define COND_NOT_EXISTS_NAME "#BranchKeyIdentifierField"
/* MPL hv-2/hv-2 DefaultKeyStorageInterface.dfy `checkForOldEnc`: the SPEC v0.9.0 lock
 * "attribute_exists(branch-key-id) AND enc = :encOld" spelled with a name placeholder. */
#define COND_OLD_ENC "attribute_exists(#pk) AND enc = :encOld"
#define COND_OLD_ENC_NAME "#pk"
#define COND_OLD_ENC_VALUE ":encOld"

/* DynamoDB's limit of actions per TransactWriteItems (docs/reference/mutations.md section 8). */
#define MAX_TX_ACTIONS 100

struct ddb_storage {
    struct ks_storage base; /* first: struct ks_storage * <-> struct ddb_storage * */
    struct ks_aws_client *client;
    char *table;
    char *region;   /* kept for the client's lifetime */
    char *endpoint; /* NULL: the regional endpoint */
};

static struct ddb_storage *from_base(struct ks_storage *s)
{
    return (struct ddb_storage *)s;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON helpers                                                                               */

static struct json_object *new_s(const char *s)
{
    struct json_object *av = json_object_new_object();

    if (av && json_object_object_add(av, "S", json_object_new_string(s)) != 0) {
        json_object_put(av);
        return NULL;
    }
    return av;
}

/* Adds member name = value to obj, taking value; -1 (value released) on failure or NULL. */
static int add(struct json_object *obj, const char *name, struct json_object *value)
{
    if (!value)
        return -1;
    if (json_object_object_add(obj, name, value) != 0) {
        json_object_put(value);
        return -1;
    }
    return 0;
}

/* {"TableName": table} */
static struct json_object *request_for_table(const struct ddb_storage *d)
{
    struct json_object *req = json_object_new_object();

    if (req && add(req, "TableName", json_object_new_string(d->table)) != 0) {
        json_object_put(req);
        return NULL;
    }
    return req;
}

/* Parses a response body (a JSON object) with a depth cap. */
static ks_status parse_body(const struct ks_aws_response *resp, const char *op,
                            struct json_object **out, struct ks_error *err)
{
    struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    struct json_object *obj = NULL;

    *out = NULL;
    if (!tok)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    if (resp->len == 0 || !resp->body) {
        obj = json_object_new_object(); /* an empty body is an empty output (section 1) */
    } else if (resp->len <= (size_t)INT32_MAX) {
        obj = json_tokener_parse_ex(tok, resp->body, (int)resp->len);
        if (obj && (json_tokener_get_error(tok) != json_tokener_success ||
                    json_tokener_get_parse_end(tok) != resp->len)) {
            json_object_put(obj);
            obj = NULL;
        }
    }
    json_tokener_free(tok);
    if (!obj || !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return ks_error_set(err, KS_E_STORAGE, "DynamoDB %s: response is not a JSON object", op);
    }
    *out = obj;
    return KS_OK;
}

/*
 * Sends req (serialized here) as operation op. On KS_OK, *out (may be NULL: not wanted) is the
 * parsed response. The request holds only ciphertexts and key names, never plaintext keys.
 */
/* probe_ms > 0: one attempt within probe_ms (readiness, aws/aws.h ks_aws_call_probe). */
static ks_status call_within(struct ddb_storage *d, const char *op, struct json_object *req,
                             long probe_ms, struct json_object **out, struct ks_aws_error *aws_err,
                             struct ks_error *err)
{
    struct ks_aws_response resp = {NULL, 0};
    const char *text;
    size_t len;
    ks_status st;

    if (out)
        *out = NULL;
    memset(aws_err, 0, sizeof *aws_err);
    text = json_object_to_json_string_length(
        req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (!text)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    st = probe_ms > 0 ? ks_aws_call_probe(d->client, op, text, len, probe_ms, &resp, aws_err, err)
                      : ks_aws_call(d->client, op, text, len, &resp, aws_err, err);
    /* Parsed even when the caller wants nothing from it: a 2xx answer that is not a JSON object
     * (section 1) did not confirm the operation, so a write answered that way is a 502, never a
     * success (docs/faults.md, DynamoDB garbage). */
    if (st == KS_OK) {
        struct json_object *parsed = NULL;
        st = parse_body(&resp, op, &parsed, err);
        if (st == KS_OK && out)
            *out = parsed;
        else
            json_object_put(parsed);
    }
    ks_aws_response_free(&resp);
    return st;
}

static ks_status call(struct ddb_storage *d, const char *op, struct json_object *req,
                      struct json_object **out, struct ks_aws_error *aws_err, struct ks_error *err)
{
    return call_within(d, op, req, 0, out, aws_err, err);
}

/* ------------------------------------------------------------------------------------------ */
/* CreateKeyStore (docs/reference/branch-key-store.md section 1; M/CreateKeyStoreTable.dfy) */

static const char *get_string(struct json_object *obj, const char *name)
{
    struct json_object *v;

    if (!json_object_object_get_ex(obj, name, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* 1 when the array member `list` of obj has an element {k1: v1, k2: v2}. */
static int has_pair(struct json_object *obj, const char *list, const char *k1, const char *v1,
                    const char *k2, const char *v2)
{
    struct json_object *arr;
    size_t i, n;

    if (!json_object_object_get_ex(obj, list, &arr) || !json_object_is_type(arr, json_type_array))
        return 0;
    n = json_object_array_length(arr);
    for (i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(arr, i);
        const char *a = get_string(e, k1), *b = get_string(e, k2);
        if (a && b && strcmp(a, v1) == 0 && strcmp(b, v2) == 0)
            return 1;
    }
    return 0;
}

/*
 * The MPL's check of a table description: AttributeDefinitions include {branch-key-id S, type
 * S}, KeySchema includes {branch-key-id HASH, type RANGE}, TableName and TableArn are present;
 * anything else (GSIs, billing, streams) is the owner's business. The name in the ARN must be
 * the configured one.
 */
static ks_status check_table(const struct ddb_storage *d, struct json_object *desc,
                             const char **arn, struct ks_error *err)
{
    const char *name, *slash;

    *arn = NULL;
    if (!desc || !json_object_is_type(desc, json_type_object) ||
        !has_pair(desc, "AttributeDefinitions", "AttributeName", KS_ATTR_BRANCH_KEY_ID,
                  "AttributeType", "S") ||
        !has_pair(desc, "AttributeDefinitions", "AttributeName", KS_ATTR_TYPE, "AttributeType",
                  "S") ||
        !has_pair(desc, "KeySchema", "AttributeName", KS_ATTR_BRANCH_KEY_ID, "KeyType", "HASH") ||
        !has_pair(desc, "KeySchema", "AttributeName", KS_ATTR_TYPE, "KeyType", "RANGE") ||
        !(name = get_string(desc, "TableName")) || !(*arn = get_string(desc, "TableArn"))) {
        *arn = NULL;
        return ks_error_set(err, KS_E_STORAGE, MSG_NOT_CONFORMING);
    }
    /* arn:<partition>:dynamodb:<region>:<account>:table/<name> */
    slash = strstr(*arn, ":table/");
    if (!slash || strcmp(slash + strlen(":table/"), d->table) != 0 || strcmp(name, d->table) != 0) {
        *arn = NULL;
        return ks_error_set(err, KS_E_STORAGE, MSG_ARN_MISMATCH);
    }
    return KS_OK;
}

/* DescribeTable: KS_OK with *resp (the whole response; the caller puts it). */
static ks_status describe_table(struct ddb_storage *d, struct json_object **resp,
                                struct ks_aws_error *aws_err, struct ks_error *err)
{
    struct json_object *req = request_for_table(d);
    ks_status st;

    *resp = NULL;
    if (!req)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    st = call(d, "DescribeTable", req, resp, aws_err, err);
    json_object_put(req);
    return st;
}

static int is_type(const struct ks_aws_error *e, const char *type)
{
    return strcmp(e->type, type) == 0;
}

static ks_status create_table(struct ddb_storage *d, struct ks_aws_error *aws_err,
                              struct ks_error *err)
{
    static const char *const names[2] = {KS_ATTR_BRANCH_KEY_ID, KS_ATTR_TYPE};
    static const char *const kinds[2] = {"HASH", "RANGE"};
    struct json_object *req = request_for_table(d), *defs, *keys;
    ks_status st;
    int i, rc = req ? 0 : -1;

    /* Exactly the MPL's CreateTable: the two key attributes, nothing else, on demand. */
    defs = json_object_new_array();
    keys = json_object_new_array();
    for (i = 0; i < 2 && rc == 0 && defs && keys; i++) {
        struct json_object *def = json_object_new_object(), *key = json_object_new_object();
        rc |= def ? add(def, "AttributeName", json_object_new_string(names[i])) : -1;
        rc |= def ? add(def, "AttributeType", json_object_new_string("S")) : -1;
        rc |= key ? add(key, "AttributeName", json_object_new_string(names[i])) : -1;
        rc |= key ? add(key, "KeyType", json_object_new_string(kinds[i])) : -1;
        if (def && json_object_array_add(defs, def) != 0) {
            json_object_put(def);
            rc = -1;
        }
        if (key && json_object_array_add(keys, key) != 0) {
            json_object_put(key);
            rc = -1;
        }
    }
    if (req) {
        rc |= add(req, "AttributeDefinitions", defs);
        rc |= add(req, "KeySchema", keys);
        rc |= add(req, "BillingMode", json_object_new_string("PAY_PER_REQUEST"));
    } else {
        json_object_put(defs);
        json_object_put(keys);
    }
    if (rc != 0) {
        json_object_put(req);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    st = call(d, "CreateTable", req, NULL, aws_err, err);
    json_object_put(req);
    return st;
}

/*
 * Polls DescribeTable until the table is ACTIVE (a data operation on a CREATING table fails),
 * at most TABLE_ACTIVE_WAIT_US. ResourceNotFound right after CreateTable is eventual
 * consistency of the control plane: keep polling. *resp is the last description.
 */
static ks_status wait_active(struct ddb_storage *d, struct json_object **resp, struct ks_error *err)
{
    uint64_t start = ks_monotonic_us();
    unsigned delay = TABLE_POLL_FIRST_MS;
    struct ks_aws_error aws_err;
    ks_status st;

    for (;;) {
        struct json_object *table;
        const char *status = NULL;

        st = describe_table(d, resp, &aws_err, err);
        if (st == KS_OK) {
            if (json_object_object_get_ex(*resp, "Table", &table))
                status = get_string(table, "TableStatus");
            if (!status || strcmp(status, "CREATING") != 0)
                return KS_OK;
            json_object_put(*resp);
            *resp = NULL;
        } else if (!is_type(&aws_err, "ResourceNotFoundException")) {
            return st;
        }
        if (ks_monotonic_us() - start >= TABLE_ACTIVE_WAIT_US)
            return ks_error_set(err, KS_E_UNAVAILABLE,
                                "DynamoDB table %s did not become ACTIVE within %llu s", d->table,
                                (unsigned long long)(TABLE_ACTIVE_WAIT_US / 1000000));
        ks_aws_client_pause(d->client, delay);
        delay = delay * 2 > TABLE_POLL_MAX_MS ? TABLE_POLL_MAX_MS : delay * 2;
    }
}

static ks_status ddb_create_key_store(struct ks_storage *s, char **table_id, struct ks_error *err)
{
    struct ddb_storage *d = from_base(s);
    struct json_object *resp = NULL, *table = NULL;
    struct ks_aws_error aws_err;
    const char *arn;
    ks_status st;

    *table_id = NULL;
    st = describe_table(d, &resp, &aws_err, err);
    if (st != KS_OK && is_type(&aws_err, "ResourceNotFoundException")) {
        st = create_table(d, &aws_err, err);
        /* Another instance created it between our two calls: check theirs like any other. */
        if (st != KS_OK && is_type(&aws_err, "ResourceInUseException"))
            st = KS_OK;
        if (st == KS_OK)
            st = wait_active(d, &resp, err);
    } else if (st == KS_OK) {
        /* An existing table is never altered, only checked, but one that is still being
         * created (by another instance) is waited for, like our own. */
        const char *status = NULL;
        if (json_object_object_get_ex(resp, "Table", &table))
            status = get_string(table, "TableStatus");
        if (status && strcmp(status, "CREATING") == 0) {
            json_object_put(resp);
            resp = NULL;
            st = wait_active(d, &resp, err);
        }
    }
    if (st == KS_OK) {
        table = NULL;
        json_object_object_get_ex(resp, "Table", &table);
        st = check_table(d, table, &arn, err);
        if (st == KS_OK && !(*table_id = strdup(arn)))
            st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    json_object_put(resp);
    return st;
}

static ks_status ddb_info(struct ks_storage *s, struct ks_storage_info *out, struct ks_error *err)
{
    struct ddb_storage *d = from_base(s);

    (void)err;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", d->table);
    snprintf(out->kind, sizeof out->kind, "dynamodb");
    return KS_OK;
}

/* One DescribeTable attempt on the probe deadline: readiness never waits out the retries. */
static ks_status ddb_ping(struct ks_storage *s, struct ks_error *err)
{
    struct ddb_storage *d = from_base(s);
    struct ks_aws_error aws_err;
    struct json_object *req = request_for_table(d), *resp = NULL;
    ks_status st;

    if (!req)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    st = call_within(d, "DescribeTable", req, KS_AWS_PROBE_TIMEOUT_MS, &resp, &aws_err, err);
    json_object_put(req);
    json_object_put(resp);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Writes: TransactWriteItems                                                                 */

/*
 * {"Put": {TableName, Item, ConditionExpression, ExpressionAttributeNames {name_key:
 * "branch-key-id"}, [ExpressionAttributeValues {":encOld": {"B": old_enc}}]}}.
 */
static struct json_object *put_action(const struct ddb_storage *d, const struct ks_item *item,
                                      const char *condition, const char *name_key,
                                      const unsigned char *old_enc, size_t old_enc_len,
                                      int with_old_enc)
{
    struct json_object *action = json_object_new_object(), *put = request_for_table(d);
    struct json_object *item_json = NULL, *names = json_object_new_object();
    int rc = action && put && names ? 0 : -1;

    if (rc == 0 && ks_item_to_json(item, &item_json) != 0)
        rc = -1;
    if (rc == 0) {
        rc |= add(put, "Item", item_json);
        rc |= add(put, "ConditionExpression", json_object_new_string(condition));
        rc |= add(names, name_key, json_object_new_string(KS_ATTR_BRANCH_KEY_ID));
        rc |= add(put, "ExpressionAttributeNames", names);
        names = NULL;
    }
    if (rc == 0 && with_old_enc) {
        /* B values travel base64 (section 3); json-c's base64 is not ours, so build
         * {"B": "..."} from a one-attribute item to get the same encoding as the items. */
        struct ks_item tmp;
        struct json_object *tmp_json = NULL, *av = NULL, *values = json_object_new_object();
        ks_item_init(&tmp);
        if (!values || ks_item_set_b(&tmp, KS_ATTR_ENC, old_enc, old_enc_len) != 0 ||
            ks_item_to_json(&tmp, &tmp_json) != 0 ||
            !json_object_object_get_ex(tmp_json, KS_ATTR_ENC, &av)) {
            rc = -1;
            json_object_put(values);
        } else {
            rc |= add(values, COND_OLD_ENC_VALUE, json_object_get(av));
            rc |= add(put, "ExpressionAttributeValues", values);
        }
        json_object_put(tmp_json);
        ks_item_free(&tmp);
    }
    if (rc == 0)
        rc = add(action, "Put", put);
    else
        json_object_put(put);
    json_object_put(names);
    if (rc != 0) {
        json_object_put(action);
        return NULL;
    }
    return action;
}

/*
 * The cancellation reason codes, one per action in request order. ks_aws_call reports the
 * error's type and message, not its body, so they are read from the message, which DynamoDB
 * writes as "Transaction cancelled, please refer cancellation reasons for specific reasons
 * [None, ConditionalCheckFailed]" in the same order as the body's CancellationReasons.
 * Returns the number of codes, or -1 when the message carries no such list.
 */
static int cancellation_reasons(const char *message, char codes[][40], int max, int *truncated)
{
    const char *p = strrchr(message, '['), *end;
    int n = 0;

    *truncated = 0;
    if (!p)
        return -1;
    /* A long list (up to 100 actions) can be cut off by the client's message buffer: then the
     * codes before the last comma are still exact, and the rest is unknown. */
    end = strchr(p, ']');
    if (!end) {
        *truncated = 1;
        end = strrchr(p, ',');
        if (!end)
            return 0;
    }
    p++;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        size_t len;
        while (p < stop && *p == ' ')
            p++;
        len = (size_t)(stop - p);
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (n >= max || len == 0 || len >= sizeof codes[0])
            return -1;
        memcpy(codes[n], p, len);
        codes[n][len] = '\0';
        n++;
        p = comma ? comma + 1 : end;
    }
    return n;
}

/*
 * Sends TransactWriteItems with `actions` and one ClientRequestToken for every attempt, so that
 * a resent transaction whose first send did commit (its answer lost, or a transport retry inside
 * ks_aws_call) is not applied twice nor reported as a failed condition: the same token within
 * 10 minutes is a no-op success (aws-apis.md section 3 "Idempotency", section 4 "Reuse the same
 * ClientRequestToken for TransactWriteItems retries"). The MPL sends none itself, but its SDK
 * fills one in (the member's idempotencyToken trait). A cancelled transaction is not recorded
 * against its token, so a resend with it runs again: seen on DynamoDB Local; for the service
 * this is inferred from its docs, which promise the no-op only after a successful call
 * [unconfirmed]. Were it otherwise, a resend would only repeat the cancellation, and the
 * result would be the same status after TX_MAX_ATTEMPTS, never a wrong one.
 *
 * On TransactionCanceledException, classify(codes, n, ctx, err) returns a final status, or
 * KS_OK to have the transaction resent (conflicts, throttling). After TX_MAX_ATTEMPTS the
 * status is `exhausted` when the last cancellation had a conflict, else KS_E_THROTTLED.
 */
static ks_status transact_write(struct ddb_storage *d, struct json_object *actions, int n_actions,
                                ks_status (*classify)(char codes[][40], int n, const void *ctx,
                                                      struct ks_error *err),
                                const void *ctx, ks_status exhausted, const char *exhausted_msg,
                                struct ks_error *err)
{
    struct json_object *req = json_object_new_object();
    char token[KS_UUID_LEN + 1];
    struct ks_aws_error aws_err;
    char codes[MAX_TX_ACTIONS][40];
    unsigned attempt;
    ks_status st;

    if (!req || ks_uuid_v4(token) != 0) {
        json_object_put(actions);
        json_object_put(req);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory or no random source");
    }
    if (add(req, "TransactItems", actions) != 0 ||
        add(req, "ClientRequestToken", json_object_new_string(token)) != 0) {
        json_object_put(req);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    for (attempt = 0;; attempt++) {
        int n, truncated;
        st = call(d, "TransactWriteItems", req, NULL, &aws_err, err);
        if (st == KS_OK || !is_type(&aws_err, "TransactionCanceledException"))
            break;
        n = cancellation_reasons(aws_err.message, codes, MAX_TX_ACTIONS, &truncated);
        /* classify sees the codes known; a cut-off list is resent like a conflict, and a
         * condition failing beyond the cut ends as `exhausted` after the resends. */
        if (n < 0 || n > n_actions || (n < n_actions && !truncated)) {
            st = ks_error_set(err, KS_E_STORAGE, "DynamoDB TransactionCanceledException");
            ks_error_set_detail(err, "DynamoDB TransactWriteItems cancelled: %s", aws_err.message);
            break;
        }
        st = classify(codes, n, ctx, err);
        if (st != KS_OK)
            break;
        if (attempt + 1 >= TX_MAX_ATTEMPTS) {
            /* Still cancelled for capacity alone: throttled (429) like any other call. */
            int i, conflict = 0;
            for (i = 0; i < n; i++)
                conflict |= strcmp(codes[i], "TransactionConflict") == 0;
            conflict |= n < n_actions; /* a cut-off list: assume the worst */
            st = conflict ? ks_error_set(err, exhausted, "%s", exhausted_msg)
                          : ks_error_set(err, KS_E_THROTTLED,
                                         "DynamoDB TransactionCanceledException (throttled)");
            ks_error_set_detail(err, "DynamoDB TransactWriteItems cancelled %u times: %s",
                                attempt + 1, aws_err.message);
            break;
        }
        /* aws-apis.md section 4, through the client's sleep hooks (aws/backoff.h). */
        ks_aws_client_backoff(d->client, TX_BASE_DELAY_MS, attempt + 1);
    }
    json_object_put(req);
    return st;
}

/*
 * Reasons that are worth a resend (aws-apis.md section 3, retry advice): every non-None code
 * is TransactionConflict, ThrottlingError or ProvisionedThroughputExceeded. Anything else
 * that is not a ConditionalCheckFailed (ValidationError, ItemCollectionSizeLimitExceeded) is a
 * storage failure. Returns KS_OK for "resend", or the status to return.
 */
static ks_status other_reasons(char codes[][40], int n, struct ks_error *err)
{
    int i;

    for (i = 0; i < n; i++) {
        if (strcmp(codes[i], "None") == 0 || strcmp(codes[i], "TransactionConflict") == 0 ||
            strcmp(codes[i], "ThrottlingError") == 0 ||
            strcmp(codes[i], "ProvisionedThroughputExceeded") == 0)
            continue;
        return ks_error_set(err, KS_E_STORAGE,
                            "DynamoDB TransactWriteItems cancelled: action %d: %s", i + 1,
                            codes[i]);
    }
    return KS_OK;
}

static int is_ccf(const char *code)
{
    return strcmp(code, "ConditionalCheckFailed") == 0;
}

/* Actions [version, ACTIVE, beacon] (the MPL's order, section 4). */
static ks_status classify_new_branch_key(char codes[][40], int n, const void *ctx,
                                         struct ks_error *err)
{
    static const char *const what[3] = {"version", KS_TYPE_ACTIVE, KS_TYPE_BEACON};
    int i;

    (void)ctx;
    for (i = 0; i < n; i++)
        if (is_ccf(codes[i]))
            return ks_error_set(err, KS_E_ALREADY_EXISTS, "branch key item %s already exists",
                                what[i]);
    return other_reasons(codes, n, err);
}

static ks_status ddb_write_new_branch_key(struct ks_storage *s, const struct ks_item *active,
                                          const struct ks_item *version,
                                          const struct ks_item *beacon, struct ks_error *err)
{
    struct ddb_storage *d = from_base(s);
    const struct ks_item *items[3] = {version, active, beacon};
    struct json_object *actions;
    ks_status st;
    int i;

    st = ks_storage_check_new_branch_key(active, version, beacon, err);
    if (st != KS_OK)
        return st;
    actions = json_object_new_array();
    for (i = 0; i < 3 && actions; i++) {
        /* "attribute_not_exists(#BranchKeyIdentifierField)" on each Put (section 4). */
        struct json_object *a =
            put_action(d, items[i], COND_NOT_EXISTS, COND_NOT_EXISTS_NAME, NULL, 0, 0);
        if (!a || json_object_array_add(actions, a) != 0) {
            json_object_put(a);
            json_object_put(actions);
            actions = NULL;
        }
    }
    if (!actions)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    /* A conflict that outlasts the resends means another write to these very items is in
     * flight: transient, so 503 (the client may retry), not a claim that the key exists. */
    return transact_write(d, actions, 3, classify_new_branch_key, NULL, KS_E_UNAVAILABLE,
                          "DynamoDB TransactWriteItems: transaction conflict persisted; retry",
                          err);
}

/* Actions [version, ACTIVE] (section 5 step 9). The ACTIVE condition decides first, as in
 * sqlite.c: a stale old enc is a race even if the version also exists. */
static ks_status classify_new_version(char codes[][40], int n, const void *ctx,
                                      struct ks_error *err)
{
    (void)ctx;
    if (n == 2 && is_ccf(codes[1]))
        return ks_error_set(err, KS_E_VERSION_RACE, KS_STORAGE_MSG_VERSION_RACE);
    if (n == 2 && is_ccf(codes[0]))
        return ks_error_set(err, KS_E_ALREADY_EXISTS, "branch key version already exists");
    return other_reasons(codes, n, err);
}

static ks_status ddb_write_new_version(struct ks_storage *s, const struct ks_item *version,
                                       const struct ks_item *active, const unsigned char *old_enc,
                                       size_t old_enc_len, struct ks_error *err)
{
    struct ddb_storage *d = from_base(s);
    struct json_object *actions, *put_version, *put_active;
    ks_status st;

    st = ks_storage_check_new_version(version, active, err);
    if (st != KS_OK)
        return st;
    actions = json_object_new_array();
    put_version = put_action(d, version, COND_NOT_EXISTS, COND_NOT_EXISTS_NAME, NULL, 0, 0);
    put_active = put_action(d, active, COND_OLD_ENC, COND_OLD_ENC_NAME, old_enc, old_enc_len, 1);
    if (!actions || !put_version || !put_active ||
        json_object_array_add(actions, put_version) != 0) {
        json_object_put(actions);
        json_object_put(put_version);
        json_object_put(put_active);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    if (json_object_array_add(actions, put_active) != 0) {
        json_object_put(actions);
        json_object_put(put_active);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    /*
     * A conflict on this transaction is another transaction on the same ACTIVE item in flight,
     * and the only writers of an ACTIVE are VersionKeys: when it outlasts the resends it is
     * reported as the race it is (409, "re-read and retry VersionKey"), which is also what the
     * client must do, rather than as an outage.
     */
    return transact_write(d, actions, 2, classify_new_version, NULL, KS_E_VERSION_RACE,
                          KS_STORAGE_MSG_VERSION_RACE, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Reads: GetItem                                                                             */

static ks_status ddb_get(struct ks_storage *s, const char *id, const char *type,
                         struct ks_item *out, struct ks_error *err)
{
    struct ddb_storage *d = from_base(s);
    struct json_object *req = request_for_table(d), *key = json_object_new_object();
    struct json_object *resp = NULL, *item;
    struct ks_aws_error aws_err;
    struct ks_error inner;
    ks_status st;
    int rc = req && key ? 0 : -1;

    ks_item_init(out);
    if (rc == 0) {
        rc |= add(key, KS_ATTR_BRANCH_KEY_ID, new_s(id));
        rc |= add(key, KS_ATTR_TYPE, new_s(type));
        rc |= add(req, "Key", key);
        key = NULL;
        /* Strongly consistent (storage.h; aws-apis.md section 3 GetItem). */
        rc |= add(req, "ConsistentRead", json_object_new_boolean(1));
    }
    json_object_put(key);
    if (rc != 0) {
        json_object_put(req);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    st = call(d, "GetItem", req, &resp, &aws_err, err);
    json_object_put(req);
    if (st != KS_OK)
        return st;
    /* `Item` is absent when there is no such item (section 3). */
    if (!json_object_object_get_ex(resp, "Item", &item) ||
        json_object_is_type(item, json_type_null)) {
        json_object_put(resp);
        return ks_error_set(err, KS_E_NOT_FOUND, KS_STORAGE_MSG_NOT_FOUND);
    }
    ks_error_clear(&inner);
    st = ks_item_from_json(item, out, &inner);
    json_object_put(resp);
    if (st == KS_E_CORRUPT)
        return ks_error_set(err, st, "stored item is not valid: %s", inner.message);
    if (st != KS_OK)
        return ks_error_set(err, st, "%s", inner.message);
    st = ks_storage_check_read(out, id, type, err);
    if (st != KS_OK)
        ks_item_free(out);
    return st;
}

static ks_status ddb_get_active(struct ks_storage *s, const char *branch_key_id,
                                struct ks_item *out, struct ks_error *err)
{
    return ddb_get(s, branch_key_id, KS_TYPE_ACTIVE, out, err);
}

static ks_status ddb_get_version(struct ks_storage *s, const char *branch_key_id,
                                 const char *version, struct ks_item *out, struct ks_error *err)
{
    return ks_storage_get_version_via(ddb_get, s, branch_key_id, version, out, err);
}

static ks_status ddb_get_beacon(struct ks_storage *s, const char *branch_key_id,
                                struct ks_item *out, struct ks_error *err)
{
    return ddb_get(s, branch_key_id, KS_TYPE_BEACON, out, err);
}

/* ------------------------------------------------------------------------------------------ */
/* has_items: Scan                                                                            */

/*
 * One Scan of at most one item, counted only (Select COUNT: no item is sent back), strongly
 * consistent (the DynamoDB API Reference, Scan: Limit, Select, ConsistentRead; aws-apis.md
 * section 3). Without a filter the one item evaluated is the one counted. A table that does not
 * exist (ResourceNotFoundException) holds no items.
 */
static ks_status ddb_has_items(struct ks_storage *s, int *out, struct ks_error *err)
{
    struct ddb_storage *d = from_base(s);
    struct json_object *req = request_for_table(d), *resp = NULL, *v;
    struct ks_aws_error aws_err;
    ks_status st;
    int rc = req ? 0 : -1;

    *out = 0;
    if (rc == 0) {
        rc |= add(req, "Limit", json_object_new_int(1));
        rc |= add(req, "Select", json_object_new_string("COUNT"));
        rc |= add(req, "ConsistentRead", json_object_new_boolean(1));
    }
    if (rc != 0) {
        json_object_put(req);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    st = call(d, "Scan", req, &resp, &aws_err, err);
    json_object_put(req);
    if (st != KS_OK && is_type(&aws_err, "ResourceNotFoundException")) {
        ks_error_clear(err);
        return KS_OK;
    }
    if (st != KS_OK)
        return st;
    if (!json_object_object_get_ex(resp, "Count", &v) || !json_object_is_type(v, json_type_int))
        st = ks_error_set(err, KS_E_STORAGE, "DynamoDB Scan: response has no Count");
    else
        *out = json_object_get_int64(v) > 0;
    json_object_put(resp);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Mutations (docs/reference/mutations.md section 8)                                          */

/* {"branch-key-id": {"S": id}, "type": {"S": type}} */
static struct json_object *key_json(const char *id, const char *type)
{
    struct json_object *key = json_object_new_object();

    if (key && (add(key, KS_ATTR_BRANCH_KEY_ID, new_s(id)) != 0 ||
                add(key, KS_ATTR_TYPE, new_s(type)) != 0)) {
        json_object_put(key);
        return NULL;
    }
    return key;
}

/*
 * The condition of action a into body: NOT_EXISTS is the MPL's create condition verbatim;
 * MATCHES is "attribute_exists(#pk) AND #a0 = :v0 AND ..." over the expected attributes, the
 * MPL's overwrite, commitment and index checks with every name behind a placeholder (`uuid` and
 * the like need none, but a placeholder is never wrong). 0, or -1 on OOM.
 */
static int add_condition(struct json_object *body, const struct ks_tx_action *a)
{
    struct json_object *names, *values = NULL, *expect_json = NULL;
    char expr[1024], ph[32];
    size_t i, used;
    int rc = 0;

    if (a->cond == KS_TX_ANY)
        return 0;
    names = json_object_new_object();
    if (!names)
        return -1;
    if (a->cond == KS_TX_NOT_EXISTS) {
        rc |= add(names, COND_NOT_EXISTS_NAME, json_object_new_string(KS_ATTR_BRANCH_KEY_ID));
        rc |= add(body, "ConditionExpression", json_object_new_string(COND_NOT_EXISTS));
        rc |= add(body, "ExpressionAttributeNames", names);
        return rc;
    }
    values = json_object_new_object();
    rc |= values ? 0 : -1;
    rc |= ks_item_to_json(&a->expect, &expect_json);
    rc |= add(names, "#pk", json_object_new_string(KS_ATTR_BRANCH_KEY_ID));
    used = (size_t)snprintf(expr, sizeof expr, "attribute_exists(#pk)");
    for (i = 0; rc == 0 && i < a->expect.count; i++) {
        struct json_object *av = NULL;
        json_object_object_get_ex(expect_json, a->expect.attrs[i].name, &av);
        snprintf(ph, sizeof ph, "#a%zu", i);
        rc |= add(names, ph, json_object_new_string(a->expect.attrs[i].name));
        snprintf(ph, sizeof ph, ":v%zu", i);
        rc |= add(values, ph, av ? json_object_get(av) : NULL);
        if (used < sizeof expr)
            used += (size_t)snprintf(expr + used, sizeof expr - used, " AND #a%zu = :v%zu", i, i);
    }
    json_object_put(expect_json);
    if (used >= sizeof expr)
        rc = -1;
    rc |= add(body, "ConditionExpression", rc == 0 ? json_object_new_string(expr) : NULL);
    rc |= add(body, "ExpressionAttributeNames", names);
    rc |= add(body, "ExpressionAttributeValues", values);
    return rc;
}

/* One TransactItems element for action a: Put, Delete or ConditionCheck. NULL on OOM. */
static struct json_object *tx_action_json(const struct ddb_storage *d, const struct ks_tx_action *a)
{
    static const char *const kinds[] = {
        [KS_TX_PUT] = "Put", [KS_TX_DELETE] = "Delete", [KS_TX_CHECK] = "ConditionCheck"};
    struct json_object *action = json_object_new_object(), *body = request_for_table(d);
    struct json_object *item_json = NULL;
    int rc = action && body ? 0 : -1;

    if (rc == 0 && a->op == KS_TX_PUT)
        rc = ks_item_to_json(&a->item, &item_json) == 0 ? add(body, "Item", item_json) : -1;
    else if (rc == 0)
        rc = add(body, "Key", key_json(a->id, a->type));
    if (rc == 0)
        rc = add_condition(body, a);
    if (rc == 0) {
        rc = add(action, kinds[a->op], body);
        body = NULL;
    }
    json_object_put(body);
    if (rc != 0) {
        json_object_put(action);
        return NULL;
    }
    return action;
}

/*
 * The first ConditionalCheckFailed names the item that lost the race (409); other reasons as
 * for every write (resend on conflict or throttling, else KS_E_STORAGE).
 */
static ks_status classify_tx(char codes[][40], int n, const void *ctx, struct ks_error *err)
{
    const struct ks_tx *tx = ctx;
    int i;

    for (i = 0; i < n && (size_t)i < tx->count; i++)
        if (is_ccf(codes[i]))
            return ks_tx_conflict(&tx->actions[i], err);
    return other_reasons(codes, n, err);
}

/* run_tx: a built tx as one TransactWriteItems (storage/tx.c ks_tx_op_* call it). */
static ks_status ddb_run_tx(struct ks_storage *s, struct ks_tx *tx, struct ks_error *err)
{
    struct ddb_storage *d = from_base(s);
    struct json_object *actions = NULL;
    ks_status st = KS_OK;
    size_t i;

    if (st == KS_OK && tx->count > MAX_TX_ACTIONS)
        st = ks_error_set(err, KS_E_INVALID, "a write has at most %d actions", MAX_TX_ACTIONS);
    if (st == KS_OK && !(actions = json_object_new_array()))
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    for (i = 0; st == KS_OK && i < tx->count; i++) {
        struct json_object *a = tx_action_json(d, &tx->actions[i]);
        if (!a || json_object_array_add(actions, a) != 0) {
            json_object_put(a);
            st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
        }
    }
    if (st == KS_OK) {
        /* A conflict that outlasts the resends is another writer on these items: a lost race. */
        st = transact_write(d, actions, (int)tx->count, classify_tx, tx, KS_E_MUTATION_CONFLICT,
                            "mutation write lost a race: a concurrent write to the same items "
                            "persisted; nothing was written",
                            err);
        actions = NULL;
    }
    json_object_put(actions);
    return st;
}

/* ddb_get, with "no such item" as KS_OK and *found 0. */
static ks_status get_optional(struct ks_storage *s, const char *id, const char *type,
                              struct ks_item *out, int *found, struct ks_error *err)
{
    ks_status st = ddb_get(s, id, type, out, err);

    *found = st == KS_OK;
    if (st == KS_E_NOT_FOUND) {
        ks_error_clear(err);
        st = KS_OK;
    }
    return st;
}

/* GetMutation: two strongly consistent GetItems (mutations.md section 12 allows either form). */
static ks_status ddb_get_mutation(struct ks_storage *s, const char *branch_key_id,
                                  struct ks_mutation_state *out, struct ks_error *err)
{
    struct ks_item c, x;
    int has_c = 0, has_x = 0;
    ks_status st;

    ks_item_init(&x);
    st = get_optional(s, branch_key_id, KS_TYPE_MUTATION_COMMITMENT, &c, &has_c, err);
    if (st == KS_OK)
        st = get_optional(s, branch_key_id, KS_TYPE_MUTATION_INDEX, &x, &has_x, err);
    if (st == KS_OK)
        st = ks_storage_mutation_state_from_items(has_c ? &c : NULL, has_x ? &x : NULL, out, err);
    else
        ks_mutation_state_init(out);
    ks_item_free(&c);
    ks_item_free(&x);
    return st;
}

/* The TransactGetItems of GetItemsForInitializeMutation, in the MPL's order. */
static const char *const init_types[4] = {KS_TYPE_MUTATION_COMMITMENT, KS_TYPE_ACTIVE,
                                          KS_TYPE_BEACON, KS_TYPE_MUTATION_INDEX};

static struct json_object *init_get_request(const struct ddb_storage *d, const char *id)
{
    struct json_object *req = json_object_new_object(), *list = json_object_new_array();
    int rc = req && list ? 0 : -1;
    size_t i;

    for (i = 0; rc == 0 && i < 4; i++) {
        struct json_object *get = request_for_table(d), *elem = json_object_new_object();
        if (!get || !elem || add(get, "Key", key_json(id, init_types[i])) != 0) {
            json_object_put(get);
            json_object_put(elem);
            rc = -1;
        } else if (add(elem, "Get", get) != 0 || json_object_array_add(list, elem) != 0) {
            json_object_put(elem);
            rc = -1;
        }
    }
    if (rc == 0 && add(req, "TransactItems", list) == 0)
        return req;
    if (rc != 0)
        json_object_put(list);
    json_object_put(req);
    return NULL;
}

/* Response i of TransactGetItems into out (*found 0 when it is an empty map). */
static ks_status init_get_item(struct json_object *responses, size_t i, const char *id,
                               struct ks_item *out, int *found, struct ks_error *err)
{
    struct json_object *r = json_object_array_get_idx(responses, i), *item = NULL;
    struct ks_error inner;
    ks_status st;

    ks_item_init(out);
    *found = 0;
    if (!r || !json_object_object_get_ex(r, "Item", &item) || !item)
        return KS_OK;
    ks_error_clear(&inner);
    st = ks_item_from_json(item, out, &inner);
    if (st != KS_OK)
        return ks_error_set(err, st, "stored item is not valid: %s", inner.message);
    *found = 1;
    return ks_storage_check_read(out, id, init_types[i], err);
}

static ks_status init_get_parse(struct json_object *resp, const char *id,
                                struct ks_mutation_init_items *out, struct ks_error *err)
{
    struct json_object *responses = NULL;
    struct ks_item items[4];
    int found[4] = {0, 0, 0, 0};
    ks_status st = KS_OK;
    size_t i;

    for (i = 0; i < 4; i++)
        ks_item_init(&items[i]);
    /* The MPL needs exactly 4 responses; an empty one is an absent item. */
    if (!json_object_object_get_ex(resp, "Responses", &responses) ||
        !json_object_is_type(responses, json_type_array) ||
        json_object_array_length(responses) != 4)
        st = ks_error_set(err, KS_E_STORAGE, "DynamoDB TransactGetItems: not 4 responses");
    for (i = 0; st == KS_OK && i < 4; i++)
        st = init_get_item(responses, i, id, &items[i], &found[i], err);
    if (st == KS_OK && (!found[1] || !found[2]))
        st = ks_error_set(err, KS_E_NOT_FOUND, KS_STORAGE_MSG_NOT_FOUND);
    if (st == KS_OK)
        st = ks_storage_mutation_state_from_items(found[0] ? &items[0] : NULL,
                                                  found[3] ? &items[3] : NULL, &out->mutation, err);
    if (st == KS_OK) {
        out->active = items[1];
        out->beacon = items[2];
        ks_item_init(&items[1]);
        ks_item_init(&items[2]);
    }
    for (i = 0; i < 4; i++)
        ks_item_free(&items[i]);
    return st;
}

/* GetItemsForInitializeMutation: one TransactGetItems (serializable, so strongly consistent). */
static ks_status ddb_get_items_for_initialize_mutation(struct ks_storage *s,
                                                       const char *branch_key_id,
                                                       struct ks_mutation_init_items *out,
                                                       struct ks_error *err)
{
    struct ddb_storage *d = from_base(s);
    struct json_object *req, *resp = NULL;
    struct ks_aws_error aws_err;
    ks_status st;

    ks_mutation_init_items_init(out);
    req = init_get_request(d, branch_key_id);
    if (!req)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    st = call(d, "TransactGetItems", req, &resp, &aws_err, err);
    json_object_put(req);
    if (st == KS_OK)
        st = init_get_parse(resp, branch_key_id, out, err);
    json_object_put(resp);
    if (st != KS_OK)
        ks_mutation_init_items_free(out);
    return st;
}

/*
 * The Query of QueryForVersions: key condition "#pk = :pk AND begins_with(#sk, :prefix)" (the
 * MPL's), ConsistentRead, Limit page_size + 1 (one more tells whether another page follows), and
 * the token as ExclusiveStartKey {branch-key-id, type}.
 */
static struct json_object *query_request(const struct ddb_storage *d, const char *id,
                                         const char *start, size_t page_size)
{
    struct json_object *req = request_for_table(d), *names = json_object_new_object();
    struct json_object *values = json_object_new_object();
    int rc = req && names && values ? 0 : -1;

    if (rc == 0) {
        rc |= add(names, "#pk", json_object_new_string(KS_ATTR_BRANCH_KEY_ID));
        rc |= add(names, "#sk", json_object_new_string(KS_ATTR_TYPE));
        rc |= add(values, ":pk", new_s(id));
        rc |= add(values, ":prefix", new_s(KS_TYPE_VERSION_PREFIX));
        rc |= add(req, "KeyConditionExpression",
                  json_object_new_string("#pk = :pk AND begins_with(#sk, :prefix)"));
        rc |= add(req, "ExpressionAttributeNames", names);
        rc |= add(req, "ExpressionAttributeValues", values);
        names = values = NULL;
        rc |= add(req, "ConsistentRead", json_object_new_boolean(1));
        rc |= add(req, "Limit", json_object_new_int64((int64_t)page_size + 1));
        if (start && *start)
            rc |= add(req, "ExclusiveStartKey", key_json(id, start));
    }
    json_object_put(names);
    json_object_put(values);
    if (rc != 0) {
        json_object_put(req);
        return NULL;
    }
    return req;
}

/* Items of a Query response into page (at most page_size; next set as storage.h says). */
static ks_status query_parse(struct json_object *resp, const char *id, size_t page_size,
                             struct ks_version_page *page, struct ks_error *err)
{
    struct json_object *items = NULL, *lek = NULL, *lek_type = NULL;
    struct ks_error inner;
    ks_status st = KS_OK;
    size_t n, i;

    if (!json_object_object_get_ex(resp, "Items", &items) ||
        !json_object_is_type(items, json_type_array))
        return ks_error_set(err, KS_E_STORAGE, "DynamoDB Query: response has no Items");
    n = json_object_array_length(items);
    page->items = calloc(n ? n : 1, sizeof *page->items);
    if (!page->items)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    for (i = 0; st == KS_OK && i < n; i++) {
        ks_error_clear(&inner);
        st = ks_item_from_json(json_object_array_get_idx(items, i), &page->items[i], &inner);
        if (st != KS_OK)
            st = ks_error_set(err, st, "stored item is not valid: %s", inner.message);
        else
            page->count = i + 1;
        if (st == KS_OK)
            st = ks_storage_check_version_read(&page->items[i], id, err);
    }
    if (st != KS_OK)
        return st;
    while (page->count > page_size)
        ks_item_free(&page->items[--page->count]);
    /* More follow when the extra item came back, or when DynamoDB stopped early (1 MB). */
    json_object_object_get_ex(resp, "LastEvaluatedKey", &lek);
    if (n > page_size || (lek && page->count > 0))
        page->next = strdup(ks_item_get_s(&page->items[page->count - 1], KS_ATTR_TYPE));
    else if (lek && json_object_object_get_ex(lek, KS_ATTR_TYPE, &lek_type) &&
             json_object_object_get_ex(lek_type, "S", &lek_type))
        page->next = strdup(json_object_get_string(lek_type));
    else
        return KS_OK;
    return page->next ? KS_OK : ks_error_set(err, KS_E_INTERNAL, "out of memory");
}

static ks_status ddb_query_for_versions(struct ks_storage *s, const char *branch_key_id,
                                        const char *start, size_t page_size,
                                        struct ks_version_page *out, struct ks_error *err)
{
    struct ddb_storage *d = from_base(s);
    struct json_object *req, *resp = NULL;
    struct ks_aws_error aws_err;
    ks_status st;

    ks_version_page_init(out);
    st = ks_storage_check_query(branch_key_id, start, page_size, err);
    if (st != KS_OK)
        return st;
    req = query_request(d, branch_key_id, start, page_size);
    if (!req)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    st = call(d, "Query", req, &resp, &aws_err, err);
    json_object_put(req);
    if (st == KS_OK)
        st = query_parse(resp, branch_key_id, page_size, out, err);
    json_object_put(resp);
    if (st != KS_OK)
        ks_version_page_free(out);
    return st;
}

/*
 * ListActive's Scan: FilterExpression "#t = :active", ConsistentRead, Limit `limit` (DynamoDB
 * counts it before the filter: a page evaluates `limit` items of any type and returns the
 * ACTIVE ones among them), ExclusiveStartKey the start key.
 */
static struct json_object *scan_request(const struct ddb_storage *d, const char *start_id,
                                        const char *start_type, size_t limit)
{
    struct json_object *req = request_for_table(d), *names = json_object_new_object();
    struct json_object *values = json_object_new_object();
    int rc = req && names && values ? 0 : -1;

    if (rc == 0) {
        rc |= add(names, "#t", json_object_new_string(KS_ATTR_TYPE));
        rc |= add(values, ":active", new_s(KS_TYPE_ACTIVE));
        rc |= add(req, "FilterExpression", json_object_new_string("#t = :active"));
        rc |= add(req, "ExpressionAttributeNames", names);
        rc |= add(req, "ExpressionAttributeValues", values);
        names = values = NULL;
        rc |= add(req, "ConsistentRead", json_object_new_boolean(1));
        rc |= add(req, "Limit", json_object_new_int64((int64_t)limit));
        if (start_id)
            rc |= add(req, "ExclusiveStartKey", key_json(start_id, start_type));
    }
    json_object_put(names);
    json_object_put(values);
    if (rc != 0) {
        json_object_put(req);
        return NULL;
    }
    return req;
}

/* The S value of attribute name of a key map, or NULL. */
static const char *key_s(struct json_object *key, const char *name)
{
    struct json_object *attr, *s;

    if (!key || !json_object_object_get_ex(key, name, &attr) ||
        !json_object_object_get_ex(attr, "S", &s) || !json_object_is_type(s, json_type_string))
        return NULL;
    return json_object_get_string(s);
}

/* Items of a Scan response into page; next_* from LastEvaluatedKey. */
static ks_status scan_parse(struct json_object *resp, struct ks_active_page *page,
                            struct ks_error *err)
{
    struct json_object *items = NULL, *lek = NULL;
    struct ks_error inner;
    ks_status st = KS_OK;
    size_t n, i;

    if (!json_object_object_get_ex(resp, "Items", &items) ||
        !json_object_is_type(items, json_type_array))
        return ks_error_set(err, KS_E_STORAGE, "DynamoDB Scan: response has no Items");
    n = json_object_array_length(items);
    page->items = calloc(n ? n : 1, sizeof *page->items);
    if (!page->items)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    for (i = 0; st == KS_OK && i < n; i++) {
        const char *type;
        ks_error_clear(&inner);
        st = ks_item_from_json(json_object_array_get_idx(items, i), &page->items[i], &inner);
        if (st != KS_OK)
            return ks_error_set(err, st, "stored item is not valid: %s", inner.message);
        page->count = i + 1;
        type = ks_item_get_s(&page->items[i], KS_ATTR_TYPE);
        if (!ks_item_get_s(&page->items[i], KS_ATTR_BRANCH_KEY_ID) || !type ||
            strcmp(type, KS_TYPE_ACTIVE) != 0)
            st = ks_error_set(err, KS_E_CORRUPT,
                              "DynamoDB Scan returned an item that is not ACTIVE");
    }
    if (st != KS_OK || !json_object_object_get_ex(resp, "LastEvaluatedKey", &lek))
        return st;
    if (!key_s(lek, KS_ATTR_BRANCH_KEY_ID) || !key_s(lek, KS_ATTR_TYPE))
        return ks_error_set(err, KS_E_STORAGE, "DynamoDB Scan: LastEvaluatedKey is not a key");
    page->next_id = strdup(key_s(lek, KS_ATTR_BRANCH_KEY_ID));
    page->next_type = strdup(key_s(lek, KS_ATTR_TYPE));
    if (!page->next_id || !page->next_type)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    return KS_OK;
}

static ks_status ddb_list_active(struct ks_storage *s, const char *start_id, const char *start_type,
                                 size_t limit, struct ks_active_page *out, struct ks_error *err)
{
    struct ddb_storage *d = from_base(s);
    struct json_object *req, *resp = NULL;
    struct ks_aws_error aws_err;
    ks_status st;

    ks_active_page_init(out);
    st = ks_storage_check_list(start_id, start_type, limit, err);
    if (st != KS_OK)
        return st;
    req = scan_request(d, start_id, start_type, limit);
    if (!req)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    st = call(d, "Scan", req, &resp, &aws_err, err);
    json_object_put(req);
    if (st == KS_OK)
        st = scan_parse(resp, out, err);
    json_object_put(resp);
    if (st != KS_OK)
        ks_active_page_free(out);
    return st;
}

static void ddb_destroy(struct ks_storage *s)
{
    struct ddb_storage *d = from_base(s);

    if (!d)
        return;
    if (d->client)
        ks_aws_client_destroy(d->client);
    free(d->table);
    free(d->region);
    free(d->endpoint);
    free(d);
}

static const struct ks_storage_ops ddb_ops = {
    .version = KS_STORAGE_OPS_VERSION,
    .name = "dynamodb",
    .create_key_store = ddb_create_key_store,
    .info = ddb_info,
    .write_new_branch_key = ddb_write_new_branch_key,
    .write_new_version = ddb_write_new_version,
    .get_active = ddb_get_active,
    .get_version = ddb_get_version,
    .get_beacon = ddb_get_beacon,
    .ping = ddb_ping,
    .destroy = ddb_destroy,
    .has_items = ddb_has_items,
    .get_items_for_initialize_mutation = ddb_get_items_for_initialize_mutation,
    .write_initialize_mutation = ks_tx_op_write_initialize_mutation,
    .write_atomic_mutation = ks_tx_op_write_atomic_mutation,
    .query_for_versions = ddb_query_for_versions,
    .write_mutated_versions = ks_tx_op_write_mutated_versions,
    .get_mutation = ddb_get_mutation,
    .delete_mutation = ks_tx_op_delete_mutation,
    .delete_mutation_index = ks_tx_op_delete_mutation_index,
    .write_mutation_index = ks_tx_op_write_mutation_index,
    .list_active = ddb_list_active,
    .run_tx = ddb_run_tx,
};

/* A plain table name: 3..255 of [a-zA-Z0-9_.-] (aws-apis.md section 3 CreateTable). */
static int table_name_valid(const char *name)
{
    size_t i, n = strlen(name);

    if (n < 3 || n > 255)
        return 0;
    for (i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

ks_status ks_storage_dynamodb_open(const struct ks_storage_config *cfg,
                                   struct ks_aws_credentials_provider *creds,
                                   struct ks_storage **out, struct ks_error *err)
{
    struct ks_aws_client_options opts;
    struct ddb_storage *d;
    ks_status st;

    *out = NULL;
    if (!cfg->table || !table_name_valid(cfg->table))
        return ks_error_set(err, KS_E_CONFIG,
                            "DynamoDB table name must be 3..255 characters of a-z A-Z 0-9 _ . -");
    if (!cfg->region || !*cfg->region)
        return ks_error_set(err, KS_E_CONFIG, "DynamoDB storage needs a region");
    d = calloc(1, sizeof *d);
    if (!d)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    d->base.ops = &ddb_ops;
    d->table = strdup(cfg->table);
    d->region = strdup(cfg->region);
    d->endpoint = cfg->endpoint ? strdup(cfg->endpoint) : NULL;
    if (!d->table || !d->region || (cfg->endpoint && !d->endpoint)) {
        ddb_destroy(&d->base);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    memset(&opts, 0, sizeof opts);
    opts.service = "dynamodb";
    opts.dependency = "DynamoDB";
    opts.region = d->region;
    opts.endpoint = d->endpoint;
    opts.json_version = "1.0";
    opts.target_prefix = "DynamoDB_20120810";
    opts.credentials = creds;
    opts.service_error = KS_E_STORAGE;
    opts.max_attempts = 4;   /* aws-apis.md section 4: 4 for DynamoDB */
    opts.base_delay_ms = 25; /* section 4: DynamoDB's transient base delay */
    /* storage: {timeout_ms, max_attempts}; 0 keeps the defaults */
    opts.request_timeout_ms = (long)cfg->timeout_ms;
    if (cfg->max_attempts)
        opts.max_attempts = cfg->max_attempts;
    st = ks_aws_client_create(&opts, &d->client, err);
    if (st != KS_OK) {
        ddb_destroy(&d->base);
        return st;
    }
    *out = &d->base;
    return KS_OK;
}
