/*
 * test_dynamodb.c - the DynamoDB storage backend (storage/dynamodb.c) against DynamoDB Local,
 * started on 127.0.0.1 by tests/integration/run-dynamodb.mjs, which passes its endpoint in
 * KS_DYNAMODB_ENDPOINT. Every test uses its own table, so tests run in parallel on one shared
 * in-memory database. Besides the backend, each test has a raw client (aws/aws.h) to look
 * at and plant what DynamoDB holds, independently of the backend under test.
 *
 * What is checked: CreateKeyStore (creation, idempotence, a non-conforming table refused and
 * left as it was; docs/reference/branch-key-store.md section 1), the MPL's item layout stored byte
 * for byte (section 2), the conditions of both writes and the atomicity of their transactions
 * (sections 4, 5, 9), a VersionKey race between threads, and the failure statuses.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/rand.h>

#include "aws/aws.h"
#include "config/config.h"
#include "common/util.h"
#include "config/config.h"
#include "storage/storage.h"

#define ENC_LEN 32
#define KMS_ARN "arn:aws:kms:us-west-2:111122223333:key/0b9e5ac2-4a1e-4a4b-9f6a-2a1b7a0c3d11"
#define CREATE_TIME "2024-01-02T03:04:05.678901Z"
#define REGION "us-west-2"
#define NOT_CONFORMING "Configured table name does not conform to expected Key Store construction."

struct fixture {
    char table[64];
    char endpoint[128];
    struct ks_aws_credentials_provider *creds;
    struct ks_storage *s;
    struct ks_aws_client *raw; /* for looking at the table behind the backend's back */
};

static const char *endpoint_from_env(void)
{
    const char *e = getenv("KS_DYNAMODB_ENDPOINT");

    cr_assert(e && *e, "KS_DYNAMODB_ENDPOINT is not set: run tests/integration/run-dynamodb.mjs");
    /* Tests reach only this machine. */
    cr_assert(strncmp(e, "http://127.0.0.1:", 17) == 0, "not a loopback endpoint: %s", e);
    return e;
}

static void open_storage(struct fixture *f, const char *table, const char *endpoint)
{
    struct ks_storage_config cfg;
    struct ks_error err;

    memset(&cfg, 0, sizeof cfg);
    cfg.type = KS_STORAGE_DYNAMODB;
    cfg.table = (char *)(uintptr_t)table;
    cfg.region = REGION;
    cfg.endpoint = (char *)(uintptr_t)endpoint;
    cr_assert_eq(ks_storage_dynamodb_open(&cfg, f->creds, &f->s, &err), KS_OK, "%s", err.message);
}

static void fx_open_at(struct fixture *f, const char *endpoint)
{
    struct ks_aws_credentials_options cc;
    struct ks_aws_client_options opts;
    struct ks_error err;
    char uuid[KS_UUID_LEN + 1];

    memset(f, 0, sizeof *f);
    cr_assert_eq(ks_uuid_v4(uuid), 0);
    snprintf(f->table, sizeof f->table, "ks-test-%s", uuid);
    snprintf(f->endpoint, sizeof f->endpoint, "%s", endpoint);

    memset(&cc, 0, sizeof cc);
    cc.source = KS_AWS_CRED_STATIC;
    cc.access_key_id = "AKIDTEST";
    cc.secret_access_key = "secret";
    cr_assert_eq(ks_aws_credentials_provider_create(&cc, NULL, &f->creds, &err), KS_OK, "%s",
                 err.message);
    open_storage(f, f->table, f->endpoint);

    memset(&opts, 0, sizeof opts);
    opts.service = "dynamodb";
    opts.region = REGION;
    opts.endpoint = f->endpoint;
    opts.json_version = "1.0";
    opts.target_prefix = "DynamoDB_20120810";
    opts.credentials = f->creds;
    opts.service_error = KS_E_STORAGE;
    opts.max_attempts = 2;
    cr_assert_eq(ks_aws_client_create(&opts, &f->raw, &err), KS_OK, "%s", err.message);
}

static void fx_open(struct fixture *f)
{
    fx_open_at(f, endpoint_from_env());
}

static void fx_close(struct fixture *f)
{
    ks_storage_destroy(f->s);
    ks_aws_client_destroy(f->raw);
    ks_aws_credentials_provider_destroy(f->creds);
}

/* A raw call: KS_OK with *out (parsed, may be NULL: not wanted), or the status; *type gets the
 * error type. */
static ks_status raw_call(struct fixture *f, const char *op, const char *json,
                          struct json_object **out, char type[128])
{
    struct ks_aws_response resp = {NULL, 0};
    struct ks_aws_error aws_err;
    struct ks_error err;
    ks_status st;

    memset(&aws_err, 0, sizeof aws_err);
    if (out)
        *out = NULL;
    st = ks_aws_call(f->raw, op, json, strlen(json), &resp, &aws_err, &err);
    if (type)
        snprintf(type, 128, "%s", aws_err.type);
    if (st == KS_OK && out) {
        *out = json_tokener_parse(resp.body ? resp.body : "{}");
        cr_assert_not_null(*out, "%s: unparsable response", op);
    }
    ks_aws_response_free(&resp);
    return st;
}

static struct json_object *describe(struct fixture *f)
{
    char req[256];
    struct json_object *resp, *table;

    snprintf(req, sizeof req, "{\"TableName\":\"%s\"}", f->table);
    cr_assert_eq(raw_call(f, "DescribeTable", req, &resp, NULL), KS_OK);
    cr_assert(json_object_object_get_ex(resp, "Table", &table));
    json_object_get(table);
    json_object_put(resp);
    return table;
}

static const char *member_json(struct json_object *obj, const char *name)
{
    struct json_object *v;

    cr_assert(json_object_object_get_ex(obj, name, &v), "no %s", name);
    return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

static void create_store(struct fixture *f)
{
    struct ks_error err;
    char *arn = NULL;

    cr_assert_eq(f->s->ops->create_key_store(f->s, &arn, &err), KS_OK, "%s", err.message);
    free(arn);
}

/* Number of items of branch key id whose type starts with prefix ("" = all), counted by a
 * strongly consistent Query. */
static int count_items(struct fixture *f, const char *id, const char *prefix)
{
    char req[1024], type[128];
    struct json_object *resp, *count;
    int n;

    if (*prefix)
        snprintf(req, sizeof req,
                 "{\"TableName\":\"%s\",\"ConsistentRead\":true,\"Select\":\"COUNT\","
                 "\"KeyConditionExpression\":\"#pk = :id AND begins_with(#t, :prefix)\","
                 "\"ExpressionAttributeNames\":{\"#pk\":\"branch-key-id\",\"#t\":\"type\"},"
                 "\"ExpressionAttributeValues\":{\":id\":{\"S\":\"%s\"},"
                 "\":prefix\":{\"S\":\"%s\"}}}",
                 f->table, id, prefix);
    else
        snprintf(req, sizeof req,
                 "{\"TableName\":\"%s\",\"ConsistentRead\":true,\"Select\":\"COUNT\","
                 "\"KeyConditionExpression\":\"#pk = :id\","
                 "\"ExpressionAttributeNames\":{\"#pk\":\"branch-key-id\"},"
                 "\"ExpressionAttributeValues\":{\":id\":{\"S\":\"%s\"}}}",
                 f->table, id);
    cr_assert_eq(raw_call(f, "Query", req, &resp, type), KS_OK, "Query: %s", type);
    cr_assert_not(json_object_object_get_ex(resp, "LastEvaluatedKey", NULL), "paged count");
    cr_assert(json_object_object_get_ex(resp, "Count", &count));
    n = json_object_get_int(count);
    json_object_put(resp);
    return n;
}

/* --- items as keystore/ builds them (docs/reference/branch-key-store.md section 2) -------------
 */
/* These return 0 or -1 rather than assert, so that the race threads can use them too. */

static int common_attrs(struct ks_item *item, const char *id, const char *type)
{
    return ks_item_set_s(item, KS_ATTR_BRANCH_KEY_ID, id) |
           ks_item_set_s(item, KS_ATTR_TYPE, type) | ks_item_set_s(item, KS_ATTR_KMS_ARN, KMS_ARN) |
           ks_item_set_s(item, KS_ATTR_CREATE_TIME, CREATE_TIME) |
           ks_item_set_n(item, KS_ATTR_HIERARCHY_VERSION, "1") |
           ks_item_set_s(item, KS_EC_PREFIX "department", "finance") |
           ks_item_set_s(item, KS_EC_PREFIX "unicode \xc3\xa9\xe2\x82\xac",
                         "\"q\" / \\ \xf0\x9f\x94\x91");
}

static int make_version(struct ks_item *item, const char *id, const char *version,
                        const unsigned char *enc)
{
    char type[80];

    snprintf(type, sizeof type, "%s%s", KS_TYPE_VERSION_PREFIX, version);
    ks_item_init(item);
    return common_attrs(item, id, type) | ks_item_set_b(item, KS_ATTR_ENC, enc, ENC_LEN);
}

static int make_active(struct ks_item *item, const char *id, const char *version,
                       const unsigned char *enc)
{
    char type[80];

    snprintf(type, sizeof type, "%s%s", KS_TYPE_VERSION_PREFIX, version);
    ks_item_init(item);
    return common_attrs(item, id, KS_TYPE_ACTIVE) | ks_item_set_s(item, KS_ATTR_VERSION, type) |
           ks_item_set_b(item, KS_ATTR_ENC, enc, ENC_LEN);
}

struct branch_key {
    char id[64];
    char vid[KS_UUID_LEN + 1];
    unsigned char active_enc[ENC_LEN], version_enc[ENC_LEN], beacon_enc[ENC_LEN];
    struct ks_item active, version, beacon;
};

static void make_branch_key(struct branch_key *bk, const char *id)
{
    snprintf(bk->id, sizeof bk->id, "%s", id);
    cr_assert_eq(ks_uuid_v4(bk->vid), 0);
    cr_assert_eq(RAND_bytes(bk->active_enc, ENC_LEN), 1);
    cr_assert_eq(RAND_bytes(bk->version_enc, ENC_LEN), 1);
    cr_assert_eq(RAND_bytes(bk->beacon_enc, ENC_LEN), 1);
    cr_assert_eq(make_active(&bk->active, id, bk->vid, bk->active_enc), 0);
    cr_assert_eq(make_version(&bk->version, id, bk->vid, bk->version_enc), 0);
    ks_item_init(&bk->beacon);
    cr_assert_eq(common_attrs(&bk->beacon, id, KS_TYPE_BEACON), 0);
    cr_assert_eq(ks_item_set_b(&bk->beacon, KS_ATTR_ENC, bk->beacon_enc, ENC_LEN), 0);
}

static void free_branch_key(struct branch_key *bk)
{
    ks_item_free(&bk->active);
    ks_item_free(&bk->version);
    ks_item_free(&bk->beacon);
}

static ks_status write_branch_key(struct ks_storage *s, const struct branch_key *bk,
                                  struct ks_error *err)
{
    ks_error_clear(err);
    return s->ops->write_new_branch_key(s, &bk->active, &bk->version, &bk->beacon, err);
}

/* The wire form of an item: compact AttributeValue JSON in name order. Caller frees. */
static char *item_text(const struct ks_item *item)
{
    struct json_object *obj;
    char *text;

    cr_assert_eq(ks_item_to_json(item, &obj), 0);
    text = strdup(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(obj);
    cr_assert_not_null(text);
    return text;
}

/* Read back through the backend: byte for byte the same item. */
static void assert_stored(struct fixture *f, const struct ks_item *expected)
{
    const char *id = ks_item_get_s(expected, KS_ATTR_BRANCH_KEY_ID);
    const char *type = ks_item_get_s(expected, KS_ATTR_TYPE);
    struct ks_item got;
    struct ks_error err;
    char *a, *b;
    ks_status st;

    if (strcmp(type, KS_TYPE_ACTIVE) == 0)
        st = f->s->ops->get_active(f->s, id, &got, &err);
    else if (strcmp(type, KS_TYPE_BEACON) == 0)
        st = f->s->ops->get_beacon(f->s, id, &got, &err);
    else
        st = f->s->ops->get_version(f->s, id, type + strlen(KS_TYPE_VERSION_PREFIX), &got, &err);
    cr_assert_eq(st, KS_OK, "%s: %s", type, err.message);
    a = item_text(expected);
    b = item_text(&got);
    cr_assert_str_eq(b, a, "%s differs", type);
    free(a);
    free(b);
    ks_item_free(&got);
}

static void assert_version_missing(struct fixture *f, const char *id, const char *version)
{
    struct ks_item got;
    struct ks_error err;

    cr_assert_eq(f->s->ops->get_version(f->s, id, version, &got, &err), KS_E_NOT_FOUND,
                 "version %s exists", version);
    ks_item_free(&got);
}

/* --- CreateKeyStore ------------------------------------------------------------------------ */

Test(dynamodb, create_key_store_creates_then_is_idempotent)
{
    struct fixture f;
    struct ks_storage_info info;
    struct json_object *table, *billing;
    struct ks_error err;
    char *arn1 = NULL, *arn2 = NULL, suffix[128];

    fx_open(&f);
    /* Before: no table, so ping fails as a storage error (ResourceNotFoundException). */
    cr_assert_eq(f.s->ops->ping(f.s, &err), KS_E_STORAGE);
    /* The client-facing message names the dependency and the code only; DynamoDB's text
     * ("Requested resource not found", or the table's ARN) is in the log-only detail. */
    cr_assert_str_eq(err.message, "DynamoDB ResourceNotFoundException");
    cr_assert(strstr(err.detail, "ResourceNotFoundException"), "%s", err.detail);

    cr_assert_eq(f.s->ops->create_key_store(f.s, &arn1, &err), KS_OK, "%s", err.message);
    snprintf(suffix, sizeof suffix, ":table/%s", f.table);
    cr_assert(strncmp(arn1, "arn:aws:dynamodb:", 17) == 0, "%s", arn1);
    cr_assert_str_eq(arn1 + strlen(arn1) - strlen(suffix), suffix);

    /* Exactly the MPL's table (section 1): two S keys, HASH + RANGE, on demand, ACTIVE. */
    table = describe(&f);
    cr_assert_str_eq(member_json(table, "KeySchema"),
                     "[{\"AttributeName\":\"branch-key-id\",\"KeyType\":\"HASH\"},"
                     "{\"AttributeName\":\"type\",\"KeyType\":\"RANGE\"}]");
    cr_assert_str_eq(member_json(table, "AttributeDefinitions"),
                     "[{\"AttributeName\":\"branch-key-id\",\"AttributeType\":\"S\"},"
                     "{\"AttributeName\":\"type\",\"AttributeType\":\"S\"}]");
    cr_assert_str_eq(member_json(table, "TableStatus"), "\"ACTIVE\"");
    cr_assert(json_object_object_get_ex(table, "BillingModeSummary", &billing));
    cr_assert_str_eq(member_json(billing, "BillingMode"), "\"PAY_PER_REQUEST\"");
    cr_assert_not(json_object_object_get_ex(table, "GlobalSecondaryIndexes", NULL));
    json_object_put(table);

    /* Again: the same table, nothing changed. */
    cr_assert_eq(f.s->ops->create_key_store(f.s, &arn2, &err), KS_OK, "%s", err.message);
    cr_assert_str_eq(arn2, arn1);
    cr_assert_eq(f.s->ops->ping(f.s, &err), KS_OK, "%s", err.message);
    cr_assert_eq(f.s->ops->info(f.s, &info, &err), KS_OK);
    cr_assert_str_eq(info.name, f.table);
    cr_assert_str_eq(info.kind, "dynamodb");
    cr_assert_str_eq(f.s->ops->name, "dynamodb");
    free(arn1);
    free(arn2);
    fx_close(&f);
}

/* A table with extra GSIs and provisioned billing conforms: only the keys matter (section 1). */
Test(dynamodb, create_key_store_accepts_conforming_table_with_extras)
{
    struct fixture f;
    struct ks_error err;
    char req[1024], *arn = NULL;

    fx_open(&f);
    snprintf(req, sizeof req,
             "{\"TableName\":\"%s\",\"AttributeDefinitions\":["
             "{\"AttributeName\":\"branch-key-id\",\"AttributeType\":\"S\"},"
             "{\"AttributeName\":\"type\",\"AttributeType\":\"S\"},"
             "{\"AttributeName\":\"extra\",\"AttributeType\":\"N\"}],"
             "\"KeySchema\":[{\"AttributeName\":\"branch-key-id\",\"KeyType\":\"HASH\"},"
             "{\"AttributeName\":\"type\",\"KeyType\":\"RANGE\"}],"
             "\"GlobalSecondaryIndexes\":[{\"IndexName\":\"by-extra\",\"KeySchema\":["
             "{\"AttributeName\":\"extra\",\"KeyType\":\"HASH\"}],"
             "\"Projection\":{\"ProjectionType\":\"KEYS_ONLY\"},"
             "\"ProvisionedThroughput\":{\"ReadCapacityUnits\":1,\"WriteCapacityUnits\":1}}],"
             "\"ProvisionedThroughput\":{\"ReadCapacityUnits\":1,\"WriteCapacityUnits\":1}}",
             f.table);
    cr_assert_eq(raw_call(&f, "CreateTable", req, NULL, NULL), KS_OK);
    cr_assert_eq(f.s->ops->create_key_store(f.s, &arn, &err), KS_OK, "%s", err.message);
    cr_assert_not_null(strstr(arn, f.table));
    free(arn);
    fx_close(&f);
}

/* Plants a table with the given key schema; create_key_store must refuse it and leave it. */
static void refuse_table(const char *attribute_definitions, const char *key_schema)
{
    struct fixture f;
    struct json_object *before, *after;
    struct ks_error err;
    char req[1024], *arn = (char *)"untouched";
    char *defs_before, *keys_before;

    fx_open(&f);
    snprintf(req, sizeof req,
             "{\"TableName\":\"%s\",\"AttributeDefinitions\":%s,\"KeySchema\":%s,"
             "\"BillingMode\":\"PAY_PER_REQUEST\"}",
             f.table, attribute_definitions, key_schema);
    cr_assert_eq(raw_call(&f, "CreateTable", req, NULL, NULL), KS_OK);
    before = describe(&f);
    defs_before = strdup(member_json(before, "AttributeDefinitions"));
    keys_before = strdup(member_json(before, "KeySchema"));

    ks_error_clear(&err);
    cr_assert_eq(f.s->ops->create_key_store(f.s, &arn, &err), KS_E_STORAGE);
    cr_assert_str_eq(err.message, NOT_CONFORMING);
    cr_assert_null(arn);
    /* Twice: still refused, never "fixed". */
    cr_assert_eq(f.s->ops->create_key_store(f.s, &arn, &err), KS_E_STORAGE);

    after = describe(&f);
    cr_assert_str_eq(member_json(after, "AttributeDefinitions"), defs_before);
    cr_assert_str_eq(member_json(after, "KeySchema"), keys_before);
    cr_assert_str_eq(member_json(after, "TableArn"), member_json(before, "TableArn"));
    cr_assert_str_eq(member_json(after, "CreationDateTime"),
                     member_json(before, "CreationDateTime"));
    free(defs_before);
    free(keys_before);
    json_object_put(before);
    json_object_put(after);
    fx_close(&f);
}

Test(dynamodb, wrong_schema_hash_only_refused_unaltered)
{
    refuse_table("[{\"AttributeName\":\"branch-key-id\",\"AttributeType\":\"S\"}]",
                 "[{\"AttributeName\":\"branch-key-id\",\"KeyType\":\"HASH\"}]");
}

Test(dynamodb, wrong_schema_range_of_type_n_refused_unaltered)
{
    refuse_table("[{\"AttributeName\":\"branch-key-id\",\"AttributeType\":\"S\"},"
                 "{\"AttributeName\":\"type\",\"AttributeType\":\"N\"}]",
                 "[{\"AttributeName\":\"branch-key-id\",\"KeyType\":\"HASH\"},"
                 "{\"AttributeName\":\"type\",\"KeyType\":\"RANGE\"}]");
}

Test(dynamodb, wrong_schema_swapped_keys_refused_unaltered)
{
    refuse_table("[{\"AttributeName\":\"branch-key-id\",\"AttributeType\":\"S\"},"
                 "{\"AttributeName\":\"type\",\"AttributeType\":\"S\"}]",
                 "[{\"AttributeName\":\"type\",\"KeyType\":\"HASH\"},"
                 "{\"AttributeName\":\"branch-key-id\",\"KeyType\":\"RANGE\"}]");
}

/* --- writes and reads ---------------------------------------------------------------------- */

Test(dynamodb, write_and_get_three_items_byte_exact)
{
    struct fixture f;
    struct branch_key bk;
    struct json_object *resp, *item, *expected;
    struct ks_error err;
    char req[512];

    fx_open(&f);
    create_store(&f);
    make_branch_key(&bk, "bk-roundtrip");
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_OK, "%s", err.message);
    assert_stored(&f, &bk.active);
    assert_stored(&f, &bk.version);
    assert_stored(&f, &bk.beacon);

    /* What DynamoDB itself holds is the item as given, attribute for attribute and type for
     * type (N stays N, B stays B), nothing added: the MPL's layout (section 2). */
    snprintf(req, sizeof req,
             "{\"TableName\":\"%s\",\"ConsistentRead\":true,\"Key\":{\"branch-key-id\":"
             "{\"S\":\"bk-roundtrip\"},\"type\":{\"S\":\"branch:ACTIVE\"}}}",
             f.table);
    cr_assert_eq(raw_call(&f, "GetItem", req, &resp, NULL), KS_OK);
    cr_assert(json_object_object_get_ex(resp, "Item", &item));
    cr_assert_eq(ks_item_to_json(&bk.active, &expected), 0);
    cr_assert(json_object_equal(item, expected), "stored %s\nexpected %s",
              json_object_to_json_string(item), json_object_to_json_string(expected));
    cr_assert_str_eq(member_json(item, "hierarchy-version"), "{\"N\":\"1\"}");
    json_object_put(expected);
    json_object_put(resp);
    cr_assert_eq(count_items(&f, "bk-roundtrip", ""), 3);
    free_branch_key(&bk);
    fx_close(&f);
}

Test(dynamodb, duplicate_branch_key_is_already_exists_and_writes_nothing)
{
    struct fixture f;
    struct branch_key bk1, bk2, other;
    struct ks_error err;

    fx_open(&f);
    create_store(&f);
    make_branch_key(&bk1, "bk-dup");
    make_branch_key(&bk2, "bk-dup"); /* same id, new version uuid and encs */
    cr_assert_eq(write_branch_key(f.s, &bk1, &err), KS_OK, "%s", err.message);
    cr_assert_eq(write_branch_key(f.s, &bk2, &err), KS_E_ALREADY_EXISTS);
    cr_assert_eq(err.code, KS_E_ALREADY_EXISTS);
    /* All or nothing: bk2's version item (no condition of its own failed) was not written. */
    assert_version_missing(&f, "bk-dup", bk2.vid);
    assert_stored(&f, &bk1.active);
    assert_stored(&f, &bk1.beacon);
    assert_stored(&f, &bk1.version);
    cr_assert_eq(count_items(&f, "bk-dup", ""), 3);

    /* The exact same write again (a client retry): still ALREADY_EXISTS, not a silent OK. */
    cr_assert_eq(write_branch_key(f.s, &bk1, &err), KS_E_ALREADY_EXISTS);

    /* Only the beacon exists (planted): the whole write is still refused. */
    make_branch_key(&other, "bk-beacon-only");
    {
        char req[1024], *text = item_text(&other.beacon);
        snprintf(req, sizeof req, "{\"TableName\":\"%s\",\"Item\":%s}", f.table, text);
        free(text);
        cr_assert_eq(raw_call(&f, "PutItem", req, NULL, NULL), KS_OK);
    }
    cr_assert_eq(write_branch_key(f.s, &other, &err), KS_E_ALREADY_EXISTS);
    cr_assert_eq(count_items(&f, "bk-beacon-only", ""), 1);
    free_branch_key(&bk1);
    free_branch_key(&bk2);
    free_branch_key(&other);
    fx_close(&f);
}

Test(dynamodb, invalid_items_are_refused_before_any_call)
{
    struct fixture f;
    struct branch_key bk;
    struct ks_error err;

    /* An unreachable endpoint: KS_E_INVALID proves no call was made. */
    fx_open_at(&f, "http://127.0.0.1:9");
    make_branch_key(&bk, "bk-invalid");
    cr_assert_eq(ks_item_set_s(&bk.beacon, KS_ATTR_BRANCH_KEY_ID, "another-id"), 0);
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_E_INVALID);
    cr_assert_eq(
        f.s->ops->write_new_version(f.s, &bk.active, &bk.version, bk.active_enc, ENC_LEN, &err),
        KS_E_INVALID); /* items swapped */
    free_branch_key(&bk);
    fx_close(&f);
}

/* A new version for bk: its items with fresh encs. */
struct new_version {
    char vid[KS_UUID_LEN + 1];
    unsigned char enc[ENC_LEN], active_enc[ENC_LEN];
    struct ks_item version, active;
};

static void make_new_version(struct new_version *nv, const char *id)
{
    cr_assert_eq(ks_uuid_v4(nv->vid), 0);
    cr_assert_eq(RAND_bytes(nv->enc, ENC_LEN), 1);
    cr_assert_eq(RAND_bytes(nv->active_enc, ENC_LEN), 1);
    cr_assert_eq(make_version(&nv->version, id, nv->vid, nv->enc), 0);
    cr_assert_eq(make_active(&nv->active, id, nv->vid, nv->active_enc), 0);
}

static void free_new_version(struct new_version *nv)
{
    ks_item_free(&nv->version);
    ks_item_free(&nv->active);
}

Test(dynamodb, write_new_version_ok)
{
    struct fixture f;
    struct branch_key bk;
    struct new_version nv, nv2;
    struct ks_error err;

    fx_open(&f);
    create_store(&f);
    make_branch_key(&bk, "bk-version");
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_OK, "%s", err.message);
    make_new_version(&nv, "bk-version");
    cr_assert_eq(
        f.s->ops->write_new_version(f.s, &nv.version, &nv.active, bk.active_enc, ENC_LEN, &err),
        KS_OK, "%s", err.message);
    assert_stored(&f, &nv.active);
    assert_stored(&f, &nv.version);
    assert_stored(&f, &bk.version); /* the old version stays */
    assert_stored(&f, &bk.beacon);
    /* And again on top of the new ACTIVE. */
    make_new_version(&nv2, "bk-version");
    cr_assert_eq(
        f.s->ops->write_new_version(f.s, &nv2.version, &nv2.active, nv.active_enc, ENC_LEN, &err),
        KS_OK, "%s", err.message);
    assert_stored(&f, &nv2.active);
    cr_assert_eq(count_items(&f, "bk-version", KS_TYPE_VERSION_PREFIX), 3);
    free_new_version(&nv);
    free_new_version(&nv2);
    free_branch_key(&bk);
    fx_close(&f);
}

Test(dynamodb, stale_old_enc_is_version_race_and_writes_nothing)
{
    struct fixture f;
    struct branch_key bk;
    struct new_version nv, late;
    struct ks_error err;

    fx_open(&f);
    create_store(&f);
    make_branch_key(&bk, "bk-race");
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_OK, "%s", err.message);
    make_new_version(&nv, "bk-race");
    cr_assert_eq(
        f.s->ops->write_new_version(f.s, &nv.version, &nv.active, bk.active_enc, ENC_LEN, &err),
        KS_OK, "%s", err.message);
    /* A second VersionKey that read the ACTIVE before the first one wrote. */
    make_new_version(&late, "bk-race");
    ks_error_clear(&err);
    cr_assert_eq(
        f.s->ops->write_new_version(f.s, &late.version, &late.active, bk.active_enc, ENC_LEN, &err),
        KS_E_VERSION_RACE);
    cr_assert_str_eq(err.message, KS_STORAGE_MSG_VERSION_RACE);
    /* The transaction is atomic: the loser's version item was not written either. */
    assert_version_missing(&f, "bk-race", late.vid);
    assert_stored(&f, &nv.active);
    cr_assert_eq(count_items(&f, "bk-race", KS_TYPE_VERSION_PREFIX), 2);
    /* An old enc of another length is stale too. */
    cr_assert_eq(f.s->ops->write_new_version(f.s, &late.version, &late.active, nv.active_enc,
                                             ENC_LEN - 1, &err),
                 KS_E_VERSION_RACE);
    assert_version_missing(&f, "bk-race", late.vid);
    free_new_version(&nv);
    free_new_version(&late);
    free_branch_key(&bk);
    fx_close(&f);
}

Test(dynamodb, existing_version_is_already_exists_and_active_unchanged)
{
    struct fixture f;
    struct branch_key bk;
    struct new_version nv;
    struct ks_error err;

    fx_open(&f);
    create_store(&f);
    make_branch_key(&bk, "bk-vexists");
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_OK, "%s", err.message);
    /* A new ACTIVE whose version item reuses the existing version's key. */
    make_new_version(&nv, "bk-vexists");
    ks_item_free(&nv.version);
    cr_assert_eq(make_version(&nv.version, "bk-vexists", bk.vid, nv.enc), 0);
    cr_assert_eq(
        f.s->ops->write_new_version(f.s, &nv.version, &nv.active, bk.active_enc, ENC_LEN, &err),
        KS_E_ALREADY_EXISTS);
    assert_stored(&f, &bk.active);
    assert_stored(&f, &bk.version);
    free_new_version(&nv);
    free_branch_key(&bk);
    fx_close(&f);
}

Test(dynamodb, version_of_missing_branch_key_is_version_race)
{
    struct fixture f;
    struct new_version nv;
    struct ks_error err;
    unsigned char old[ENC_LEN] = {0};

    fx_open(&f);
    create_store(&f);
    make_new_version(&nv, "bk-nobody");
    /* attribute_exists(#pk) fails: no ACTIVE to replace (sqlite.c answers the same). */
    cr_assert_eq(f.s->ops->write_new_version(f.s, &nv.version, &nv.active, old, ENC_LEN, &err),
                 KS_E_VERSION_RACE);
    cr_assert_eq(count_items(&f, "bk-nobody", ""), 0);
    free_new_version(&nv);
    fx_close(&f);
}

Test(dynamodb, missing_items_are_not_found)
{
    struct fixture f;
    struct branch_key bk;
    struct ks_item got;
    struct ks_error err;

    fx_open(&f);
    create_store(&f);
    cr_assert_eq(f.s->ops->get_active(f.s, "nobody", &got, &err), KS_E_NOT_FOUND);
    cr_assert_str_eq(err.message, "No item found for corresponding branch key identifier.");
    cr_assert_eq(got.count, 0);
    cr_assert_eq(f.s->ops->get_beacon(f.s, "nobody", &got, &err), KS_E_NOT_FOUND);
    cr_assert_eq(f.s->ops->get_version(f.s, "nobody", "v", &got, &err), KS_E_NOT_FOUND);
    make_branch_key(&bk, "somebody");
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_OK, "%s", err.message);
    cr_assert_eq(f.s->ops->get_version(f.s, "somebody", "not-a-version", &got, &err),
                 KS_E_NOT_FOUND);
    ks_item_free(&got);
    free_branch_key(&bk);
    fx_close(&f);
}

/* Planted damage is KS_E_CORRUPT, never a crash or a wrong item. */
Test(dynamodb, corrupt_items_are_corrupt)
{
    struct fixture f;
    struct ks_item got;
    struct ks_error err;
    char req[512];

    fx_open(&f);
    create_store(&f);
    /* A string set is not an attribute type the MPL writes. */
    snprintf(req, sizeof req,
             "{\"TableName\":\"%s\",\"Item\":{\"branch-key-id\":{\"S\":\"bad\"},"
             "\"type\":{\"S\":\"branch:ACTIVE\"},\"enc\":{\"SS\":[\"a\",\"b\"]}}}",
             f.table);
    cr_assert_eq(raw_call(&f, "PutItem", req, NULL, NULL), KS_OK);
    cr_assert_eq(f.s->ops->get_active(f.s, "bad", &got, &err), KS_E_CORRUPT);
    cr_assert_eq(got.count, 0);
    ks_item_free(&got);
    fx_close(&f);
}

/* --- a VersionKey race between threads (seed "Mitigate Update Race", section 9) ----------- */

#define RACE_THREADS 8
#define RACE_ROUNDS 20

struct racer {
    struct ks_storage *s;
    char vids[RACE_ROUNDS][KS_UUID_LEN + 1];
    unsigned char encs[RACE_ROUNDS][ENC_LEN]; /* the new ACTIVE enc of each round */
    ks_status results[RACE_ROUNDS];
    char messages[RACE_ROUNDS][KS_ERROR_MESSAGE_MAX + 16];
    int setup_failed;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    int i;

    for (i = 0; i < RACE_ROUNDS; i++) {
        struct ks_item active, version, next_active;
        struct ks_error err;
        const struct ks_attr *enc;

        ks_error_clear(&err);
        r->results[i] = r->s->ops->get_active(r->s, "bk-threads", &active, &err);
        if (r->results[i] != KS_OK) {
            snprintf(r->messages[i], sizeof r->messages[i], "get: %s", err.message);
            continue;
        }
        enc = ks_item_get(&active, KS_ATTR_ENC);
        if (!enc || ks_uuid_v4(r->vids[i]) != 0 || RAND_bytes(r->encs[i], ENC_LEN) != 1 ||
            make_version(&version, "bk-threads", r->vids[i], r->encs[i]) != 0 ||
            make_active(&next_active, "bk-threads", r->vids[i], r->encs[i]) != 0) {
            r->setup_failed = 1;
            ks_item_free(&active);
            return NULL;
        }
        r->results[i] =
            r->s->ops->write_new_version(r->s, &version, &next_active, enc->value, enc->len, &err);
        snprintf(r->messages[i], sizeof r->messages[i], "%s", err.message);
        ks_item_free(&version);
        ks_item_free(&next_active);
        ks_item_free(&active);
    }
    return NULL;
}

Test(dynamodb, thread_race_versions_equal_one_plus_wins)
{
    static struct racer racers[RACE_THREADS];
    pthread_t threads[RACE_THREADS];
    struct fixture f;
    struct branch_key bk;
    struct ks_item final;
    struct ks_error err;
    const struct ks_attr *final_enc;
    int t, i, wins = 0, races = 0, final_is_a_winner = 0;

    fx_open(&f);
    create_store(&f);
    make_branch_key(&bk, "bk-threads");
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_OK, "%s", err.message);
    memset(racers, 0, sizeof racers);
    for (t = 0; t < RACE_THREADS; t++) {
        racers[t].s = f.s;
        cr_assert_eq(pthread_create(&threads[t], NULL, race, &racers[t]), 0);
    }
    for (t = 0; t < RACE_THREADS; t++)
        pthread_join(threads[t], NULL);

    cr_assert_eq(f.s->ops->get_active(f.s, "bk-threads", &final, &err), KS_OK, "%s", err.message);
    final_enc = ks_item_get(&final, KS_ATTR_ENC);
    cr_assert_not_null(final_enc);
    for (t = 0; t < RACE_THREADS; t++) {
        cr_assert_not(racers[t].setup_failed);
        for (i = 0; i < RACE_ROUNDS; i++) {
            ks_status st = racers[t].results[i];
            struct ks_item got;
            cr_assert(st == KS_OK || st == KS_E_VERSION_RACE, "thread %d round %d: %s (%s)", t, i,
                      ks_strerror(st), racers[t].messages[i]);
            /* Each attempt's version item exists exactly when its transaction won. */
            ks_status vst = f.s->ops->get_version(f.s, "bk-threads", racers[t].vids[i], &got, &err);
            cr_assert_eq(vst, st == KS_OK ? KS_OK : KS_E_NOT_FOUND, "thread %d round %d", t, i);
            ks_item_free(&got);
            if (st == KS_OK) {
                wins++;
                if (final_enc->len == ENC_LEN &&
                    memcmp(final_enc->value, racers[t].encs[i], ENC_LEN) == 0)
                    final_is_a_winner = 1;
            } else {
                races++;
            }
        }
    }
    fprintf(stderr, "thread race: %d wins, %d races\n", wins, races);
    cr_assert_geq(wins, 1);
    cr_assert_eq(count_items(&f, "bk-threads", KS_TYPE_VERSION_PREFIX), 1 + wins);
    cr_assert(final_is_a_winner, "the final ACTIVE enc is no winner's");
    ks_item_free(&final);
    free_branch_key(&bk);
    fx_close(&f);
}

/* --- failures ------------------------------------------------------------------------------ */

/* A loopback port with nothing listening: bind one, note it, close it. */
static int closed_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    cr_assert_geq(fd, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

Test(dynamodb, unreachable_is_unavailable)
{
    struct fixture f;
    struct branch_key bk;
    struct ks_item got;
    struct ks_error err;
    char endpoint[64], *arn = NULL;

    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", closed_port());
    fx_open_at(&f, endpoint);
    cr_assert_eq(f.s->ops->ping(f.s, &err), KS_E_UNAVAILABLE, "%s", err.message);
    cr_assert_eq(f.s->ops->create_key_store(f.s, &arn, &err), KS_E_UNAVAILABLE, "%s", err.message);
    cr_assert_null(arn);
    cr_assert_eq(f.s->ops->get_active(f.s, "x", &got, &err), KS_E_UNAVAILABLE, "%s", err.message);
    ks_item_free(&got);
    make_branch_key(&bk, "bk-unreachable");
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_E_UNAVAILABLE, "%s", err.message);
    free_branch_key(&bk);
    fx_close(&f);
}

/* has_items: a missing table holds none (and is not created), an empty one none, one with a
 * branch key some; an unreachable endpoint is an error, never "no items". */
Test(dynamodb, has_items_missing_empty_written_unreachable)
{
    struct fixture f;
    struct branch_key bk;
    struct ks_error err;
    struct json_object *resp = NULL;
    char endpoint[64], req[256], type[128] = "";
    int has = -1;

    fx_open(&f);
    cr_assert_eq(f.s->ops->has_items(f.s, &has, &err), KS_OK, "%s", err.message);
    cr_assert_eq(has, 0);
    snprintf(req, sizeof req, "{\"TableName\":\"%s\"}", f.table);
    cr_assert_neq(raw_call(&f, "DescribeTable", req, &resp, type), KS_OK, "has_items made a table");
    cr_assert_str_eq(type, "ResourceNotFoundException");
    create_store(&f);
    has = -1;
    cr_assert_eq(f.s->ops->has_items(f.s, &has, &err), KS_OK, "%s", err.message);
    cr_assert_eq(has, 0);
    make_branch_key(&bk, "has-items");
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_OK, "%s", err.message);
    cr_assert_eq(f.s->ops->has_items(f.s, &has, &err), KS_OK, "%s", err.message);
    cr_assert_eq(has, 1);
    free_branch_key(&bk);
    fx_close(&f);

    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", closed_port());
    fx_open_at(&f, endpoint);
    has = -1;
    cr_assert_eq(f.s->ops->has_items(f.s, &has, &err), KS_E_UNAVAILABLE, "%s", err.message);
    cr_assert_eq(has, 0);
    fx_close(&f);
}

/* --- scripted answers: what DynamoDB Local never does --------------------------------------- */
/*
 * DynamoDB Local serializes transactions, so it never cancels one for TransactionConflict, and
 * its CreateTable is ACTIVE at once. A tiny scripted HTTP endpoint on 127.0.0.1 stands in for
 * those answers: it records every request and answers from the test's script.
 */

#define FAKE_MAX_REQUESTS 32

struct fake_answer {
    int status;
    const char *body;
};

struct fake {
    int listen_fd;
    int port;
    pthread_t thread;
    /* the script: answer i for request i; the last one repeats */
    const struct fake_answer *script;
    int script_len;
    /* what arrived */
    int requests;
    char targets[FAKE_MAX_REQUESTS][64];
    char *bodies[FAKE_MAX_REQUESTS];
};

static int read_request(int fd, char *buf, size_t cap, size_t *header_len, size_t *total)
{
    size_t len = 0, content_length = 0;
    char *end = NULL, *cl;

    for (;;) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        if (!end && (end = strstr(buf, "\r\n\r\n"))) {
            *header_len = (size_t)(end + 4 - buf);
            cl = strcasestr(buf, "\r\ncontent-length:");
            content_length = cl ? strtoul(cl + 17, NULL, 10) : 0;
        }
        if (end && len >= *header_len + content_length) {
            *total = *header_len + content_length;
            return 0;
        }
        if (len + 1 >= cap)
            return -1;
    }
}

static void *fake_serve(void *arg)
{
    struct fake *fk = arg;
    static char buf[65536];

    for (;;) {
        int fd = accept(fk->listen_fd, NULL, NULL);
        size_t header_len, total;
        if (fd < 0)
            return NULL;
        while (read_request(fd, buf, sizeof buf, &header_len, &total) == 0) {
            int i = fk->requests < FAKE_MAX_REQUESTS ? fk->requests : FAKE_MAX_REQUESTS - 1;
            const struct fake_answer *a =
                &fk->script[fk->requests < fk->script_len ? fk->requests : fk->script_len - 1];
            char *t = strcasestr(buf, "\r\nx-amz-target:"), head[256];
            int n;
            if (t)
                sscanf(t + 15, " %63[^\r\n]", fk->targets[i]);
            free(fk->bodies[i]);
            fk->bodies[i] = strndup(buf + header_len, total - header_len);
            fk->requests++;
            n = snprintf(head, sizeof head,
                         "HTTP/1.1 %d X\r\nContent-Type: application/x-amz-json-1.0\r\n"
                         "Content-Length: %zu\r\n\r\n",
                         a->status, strlen(a->body));
            if (write(fd, head, (size_t)n) != n ||
                write(fd, a->body, strlen(a->body)) != (ssize_t)strlen(a->body))
                break;
        }
        close(fd);
    }
}

static void fake_start(struct fake *fk, const struct fake_answer *script, int script_len)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;

    memset(fk, 0, sizeof *fk);
    fk->script = script;
    fk->script_len = script_len;
    fk->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fk->listen_fd, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fk->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fk->listen_fd, 4), 0);
    cr_assert_eq(getsockname(fk->listen_fd, (struct sockaddr *)&a, &len), 0);
    fk->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&fk->thread, NULL, fake_serve, fk), 0);
}

/* Call after the client is gone (its connection closed), so the server thread is in accept. */
static void fake_stop(struct fake *fk)
{
    shutdown(fk->listen_fd, SHUT_RDWR);
    close(fk->listen_fd);
    pthread_join(fk->thread, NULL);
}

static void fake_free(struct fake *fk)
{
    int i;

    for (i = 0; i < FAKE_MAX_REQUESTS; i++)
        free(fk->bodies[i]);
}

static void fx_open_fake(struct fixture *f, struct fake *fk, const struct fake_answer *script,
                         int script_len)
{
    char endpoint[64];

    fake_start(fk, script, script_len);
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", fk->port);
    fx_open_at(f, endpoint);
}

#define CANCELLED(reasons)                                                                         \
    {                                                                                              \
        400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#TransactionCanceledException\","      \
             "\"Message\":\"Transaction cancelled, please refer cancellation reasons for "         \
             "specific reasons [" reasons "]\"}"                                                   \
    }

static const char *token_of(const char *body)
{
    static char token[64];
    const char *p = strstr(body, "\"ClientRequestToken\":\"");

    cr_assert_not_null(p, "no ClientRequestToken in %s", body);
    sscanf(p + 22, "%63[^\"]", token);
    return token;
}

/* A conflict is resent with the same token (idempotent), and the resend's answer counts. */
Test(dynamodb_scripted, conflict_is_resent_with_the_same_token)
{
    static const struct fake_answer script[] = {CANCELLED("None, TransactionConflict"),
                                                CANCELLED("None, TransactionConflict"),
                                                {200, "{}"}};
    struct fixture f;
    struct fake fk;
    struct new_version nv;
    struct ks_error err;
    unsigned char old[ENC_LEN] = {1};
    char first[64];

    fx_open_fake(&f, &fk, script, 3);
    make_new_version(&nv, "bk");
    cr_assert_eq(f.s->ops->write_new_version(f.s, &nv.version, &nv.active, old, ENC_LEN, &err),
                 KS_OK, "%s", err.message);
    fx_close(&f);
    fake_stop(&fk);
    cr_assert_eq(fk.requests, 3);
    snprintf(first, sizeof first, "%s", token_of(fk.bodies[0]));
    cr_assert(ks_uuid_is_valid(first), "%s", first);
    cr_assert_str_eq(token_of(fk.bodies[1]), first);
    cr_assert_str_eq(token_of(fk.bodies[2]), first);
    cr_assert_str_eq(fk.targets[0], "DynamoDB_20120810.TransactWriteItems");
    /* The request is the MPL's (sections 4, 5, 9): [Put version, Put ACTIVE]. */
    cr_assert_not_null(strstr(fk.bodies[0], "\"ConditionExpression\":\"attribute_not_exists("
                                            "#BranchKeyIdentifierField)\""));
    cr_assert_not_null(strstr(fk.bodies[0], "\"ExpressionAttributeNames\":{"
                                            "\"#BranchKeyIdentifierField\":\"branch-key-id\"}"));
    cr_assert_not_null(strstr(fk.bodies[0], "\"ConditionExpression\":\"attribute_exists(#pk) AND "
                                            "enc = :encOld\""));
    cr_assert_not_null(strstr(fk.bodies[0], "\"ExpressionAttributeNames\":{\"#pk\":"
                                            "\"branch-key-id\"}"));
    cr_assert_not_null(strstr(fk.bodies[0], "\"ExpressionAttributeValues\":{\":encOld\":{\"B\":"
                                            "\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}}"));
    cr_assert_lt(strstr(fk.bodies[0], "branch:version:"), strstr(fk.bodies[0], "branch:ACTIVE"));
    free_new_version(&nv);
    fake_free(&fk);
}

/* A conflict that persists: VersionKey's is a race (409), CreateKey's is transient (503);
 * capacity reasons that persist are throttling (429). */
Test(dynamodb_scripted, persistent_conflict_is_race_or_unavailable)
{
    static const struct fake_answer conflict[] = {CANCELLED("None, TransactionConflict")};
    static const struct fake_answer conflict3[] = {CANCELLED("TransactionConflict, None, None")};
    static const struct fake_answer throttled[] = {
        CANCELLED("None, ThrottlingError, ProvisionedThroughputExceeded")};
    struct fixture f;
    struct fake fk;
    struct new_version nv;
    struct branch_key bk;
    struct ks_error err;
    unsigned char old[ENC_LEN] = {1};

    fx_open_fake(&f, &fk, conflict, 1);
    make_new_version(&nv, "bk");
    cr_assert_eq(f.s->ops->write_new_version(f.s, &nv.version, &nv.active, old, ENC_LEN, &err),
                 KS_E_VERSION_RACE);
    fx_close(&f);
    fake_stop(&fk);
    fake_free(&fk);
    cr_assert_eq(fk.requests, 4); /* TX_MAX_ATTEMPTS */

    fx_open_fake(&f, &fk, conflict3, 1);
    make_branch_key(&bk, "bk");
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_E_UNAVAILABLE);
    fx_close(&f);
    fake_stop(&fk);
    fake_free(&fk);
    cr_assert_eq(fk.requests, 4);

    fx_open_fake(&f, &fk, throttled, 1);
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_E_THROTTLED);
    fx_close(&f);
    fake_stop(&fk);
    fake_free(&fk);
    cr_assert_eq(fk.requests, 4);
    free_new_version(&nv);
    free_branch_key(&bk);
}

/* Reasons by position; a condition failure is never resent; other codes are storage errors. */
Test(dynamodb_scripted, reasons_by_position)
{
    static const struct {
        const char *reasons;
        int version_write; /* 1: write_new_version, 0: write_new_branch_key */
        ks_status expected;
    } cases[] = {
        {"ConditionalCheckFailed, None", 1, KS_E_ALREADY_EXISTS},
        {"None, ConditionalCheckFailed", 1, KS_E_VERSION_RACE},
        {"ConditionalCheckFailed, ConditionalCheckFailed", 1, KS_E_VERSION_RACE},
        {"None, ValidationError", 1, KS_E_STORAGE},
        {"None, None, ConditionalCheckFailed", 0, KS_E_ALREADY_EXISTS},
        {"TransactionConflict, ConditionalCheckFailed, None", 0, KS_E_ALREADY_EXISTS},
        {"None, ItemCollectionSizeLimitExceeded, None", 0, KS_E_STORAGE},
        {"None, None", 0, KS_E_STORAGE}, /* not one reason per action */
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        struct fake_answer script[1];
        struct fixture f;
        struct fake fk;
        struct ks_error err;
        ks_status st;

        snprintf(body, sizeof body,
                 "{\"__type\":\"com.amazonaws.dynamodb.v20120810#TransactionCanceledException\","
                 "\"Message\":\"Transaction cancelled, please refer cancellation reasons for "
                 "specific reasons [%s]\"}",
                 cases[i].reasons);
        script[0].status = 400;
        script[0].body = body;
        fx_open_fake(&f, &fk, script, 1);
        if (cases[i].version_write) {
            struct new_version nv;
            unsigned char old[ENC_LEN] = {1};
            make_new_version(&nv, "bk");
            st = f.s->ops->write_new_version(f.s, &nv.version, &nv.active, old, ENC_LEN, &err);
            free_new_version(&nv);
        } else {
            struct branch_key bk;
            make_branch_key(&bk, "bk");
            st = write_branch_key(f.s, &bk, &err);
            free_branch_key(&bk);
        }
        fx_close(&f);
        fake_stop(&fk);
        fake_free(&fk);
        cr_assert_eq(st, cases[i].expected, "[%s]: %s (%s)", cases[i].reasons, ks_strerror(st),
                     err.message);
        cr_assert_eq(fk.requests, 1, "[%s] was resent", cases[i].reasons);
    }
}

/* CreateTable is asynchronous: create_key_store waits through CREATING until ACTIVE. */
Test(dynamodb_scripted, create_waits_until_active)
{
    static const struct fake_answer script[] = {
        {400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException\","
              "\"message\":\"Requested resource not found\"}"},
        {200, "{\"TableDescription\":{\"TableStatus\":\"CREATING\"}}"},
        {400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException\","
              "\"message\":\"Requested resource not found\"}"},
        {200, "{\"Table\":{\"TableStatus\":\"CREATING\"}}"},
        {200, "{\"Table\":{\"TableStatus\":\"ACTIVE\",\"TableName\":\"%TABLE%\","
              "\"TableArn\":\"arn:aws:dynamodb:us-west-2:111122223333:table/%TABLE%\","
              "\"AttributeDefinitions\":[{\"AttributeName\":\"branch-key-id\","
              "\"AttributeType\":\"S\"},{\"AttributeName\":\"type\",\"AttributeType\":\"S\"}],"
              "\"KeySchema\":[{\"AttributeName\":\"branch-key-id\",\"KeyType\":\"HASH\"},"
              "{\"AttributeName\":\"type\",\"KeyType\":\"RANGE\"}]}}"},
    };
    struct fake_answer answers[5];
    char active[1024], expected_arn[160];
    struct fixture f;
    struct fake fk;
    struct ks_error err;
    char *arn = NULL;
    const char *p;
    size_t n = 0;

    /* The table name is random per fixture: open first, then fill it into the answer. */
    memcpy(answers, script, sizeof answers);
    fx_open_fake(&f, &fk, answers, 5);
    for (p = script[4].body; *p && n + 64 < sizeof active; p++) {
        if (strncmp(p, "%TABLE%", 7) == 0) {
            n += (size_t)snprintf(active + n, sizeof active - n, "%s", f.table);
            p += 6;
        } else {
            active[n++] = *p;
        }
    }
    active[n] = '\0';
    answers[4].body = active;
    cr_assert_eq(f.s->ops->create_key_store(f.s, &arn, &err), KS_OK, "%s", err.message);
    snprintf(expected_arn, sizeof expected_arn, "arn:aws:dynamodb:us-west-2:111122223333:table/%s",
             f.table);
    cr_assert_str_eq(arn, expected_arn);
    free(arn);
    fx_close(&f);
    fake_stop(&fk);
    cr_assert_eq(fk.requests, 5);
    cr_assert_str_eq(fk.targets[0], "DynamoDB_20120810.DescribeTable");
    cr_assert_str_eq(fk.targets[1], "DynamoDB_20120810.CreateTable");
    cr_assert_str_eq(fk.targets[4], "DynamoDB_20120810.DescribeTable");
    /* Exactly the MPL's CreateTable (section 1). */
    cr_assert_not_null(strstr(fk.bodies[1], "\"BillingMode\":\"PAY_PER_REQUEST\""));
    cr_assert_null(strstr(fk.bodies[1], "ProvisionedThroughput"));
    cr_assert_null(strstr(fk.bodies[1], "GlobalSecondaryIndexes"));
    fake_free(&fk);
}

/* A table whose ARN names another table is refused with the MPL's message (section 1). */
Test(dynamodb_scripted, arn_of_another_table_is_refused)
{
    static const struct fake_answer script[] = {
        {200, "{\"Table\":{\"TableStatus\":\"ACTIVE\",\"TableName\":\"other\","
              "\"TableArn\":\"arn:aws:dynamodb:us-west-2:111122223333:table/other\","
              "\"AttributeDefinitions\":[{\"AttributeName\":\"branch-key-id\","
              "\"AttributeType\":\"S\"},{\"AttributeName\":\"type\",\"AttributeType\":\"S\"}],"
              "\"KeySchema\":[{\"AttributeName\":\"branch-key-id\",\"KeyType\":\"HASH\"},"
              "{\"AttributeName\":\"type\",\"KeyType\":\"RANGE\"}]}}"},
    };
    struct fixture f;
    struct fake fk;
    struct ks_error err;
    char *arn = NULL;

    fx_open_fake(&f, &fk, script, 1);
    cr_assert_eq(f.s->ops->create_key_store(f.s, &arn, &err), KS_E_STORAGE);
    cr_assert_str_eq(err.message,
                     "Configured DDB Table Name does not match parsed Table Name from DDB Table "
                     "Arn.");
    cr_assert_null(arn);
    fx_close(&f);
    fake_stop(&fk);
    fake_free(&fk);
}

/* A GetItem answer that is not JSON is a storage error, not a crash. */
Test(dynamodb_scripted, garbage_response_is_storage_error)
{
    static const struct fake_answer script[] = {{200, "{\"Item\": nope"}};
    struct fixture f;
    struct fake fk;
    struct ks_item got;
    struct ks_error err;

    fx_open_fake(&f, &fk, script, 1);
    cr_assert_eq(f.s->ops->get_active(f.s, "bk", &got, &err), KS_E_STORAGE);
    cr_assert_eq(got.count, 0);
    ks_item_free(&got);
    fx_close(&f);
    fake_stop(&fk);
    /* GetItem is strongly consistent, keyed exactly (branch-key-id, type). */
    cr_assert_str_eq(fk.targets[0], "DynamoDB_20120810.GetItem");
    cr_assert_not_null(strstr(fk.bodies[0], "\"ConsistentRead\":true"));
    cr_assert_not_null(strstr(fk.bodies[0], "\"Key\":{\"branch-key-id\":{\"S\":\"bk\"},"
                                            "\"type\":{\"S\":\"branch:ACTIVE\"}}"));
    fake_free(&fk);
}

Test(dynamodb, open_refuses_bad_config)
{
    struct ks_storage_config cfg;
    struct ks_storage *s = (struct ks_storage *)&cfg;
    struct ks_error err;

    memset(&cfg, 0, sizeof cfg);
    cfg.type = KS_STORAGE_DYNAMODB;
    cfg.region = REGION;
    cfg.table = "ab"; /* 3..255 */
    cr_assert_eq(ks_storage_dynamodb_open(&cfg, NULL, &s, &err), KS_E_CONFIG);
    cr_assert_null(s);
    cfg.table = "has space";
    cr_assert_eq(ks_storage_dynamodb_open(&cfg, NULL, &s, &err), KS_E_CONFIG);
    cfg.table = "fine-name";
    cfg.region = NULL;
    cr_assert_eq(ks_storage_dynamodb_open(&cfg, NULL, &s, &err), KS_E_CONFIG);
}

/* --- mutations (docs/reference/mutations.md section 8) ------------------------------------- */

#define TERMINAL_ARN "arn:aws:kms:us-west-2:111122223333:key/7d1f0c55-0e61-4c7e-9a53-5f7f0e3b9a21"
#define M_UUID "5b8e1a1f-3c2d-4e5f-8a9b-0c1d2e3f4a5b"

/* A branch key with `versions` versions (create, then VersionKey writes). */
static void m_setup_key(struct ks_storage *s, const char *id, size_t versions)
{
    unsigned char enc[ENC_LEN];
    struct branch_key bk;
    struct ks_error err;
    size_t i;

    make_branch_key(&bk, id);
    cr_assert_eq(write_branch_key(s, &bk, &err), KS_OK, "%s", err.message);
    memcpy(enc, bk.active_enc, ENC_LEN);
    for (i = 1; i < versions; i++) {
        struct new_version nv;
        make_new_version(&nv, id);
        cr_assert_eq(s->ops->write_new_version(s, &nv.version, &nv.active, enc, ENC_LEN, &err),
                     KS_OK, "%s", err.message);
        memcpy(enc, nv.active_enc, ENC_LEN);
        free_new_version(&nv);
    }
    free_branch_key(&bk);
}

/* Everything stored for one key as the wire text of each item, read raw (one consistent Query
 * of the whole partition), so that a failed write can be shown to have written nothing. */
static char *m_snapshot(struct fixture *f, const char *id)
{
    char req[512], type[128];
    struct json_object *resp, *items;
    char *text;

    snprintf(req, sizeof req,
             "{\"TableName\":\"%s\",\"ConsistentRead\":true,"
             "\"KeyConditionExpression\":\"#pk = :id\","
             "\"ExpressionAttributeNames\":{\"#pk\":\"branch-key-id\"},"
             "\"ExpressionAttributeValues\":{\":id\":{\"S\":\"%s\"}}}",
             f->table, id);
    cr_assert_eq(raw_call(f, "Query", req, &resp, type), KS_OK, "Query: %s", type);
    cr_assert_not(json_object_object_get_ex(resp, "LastEvaluatedKey", NULL));
    cr_assert(json_object_object_get_ex(resp, "Items", &items));
    text = strdup(json_object_to_json_string_ext(items, JSON_C_TO_STRING_PLAIN));
    json_object_put(resp);
    return text;
}

static void m_assert_unchanged(struct fixture *f, const char *id, const char *before)
{
    char *now = m_snapshot(f, id);

    cr_assert_str_eq(now, before, "a failed write changed the table");
    free(now);
}

static void m_mutate(const struct ks_item *in, struct ks_item *out)
{
    unsigned char enc[ENC_LEN];

    cr_assert_eq(RAND_bytes(enc, ENC_LEN), 1);
    ks_item_init(out);
    cr_assert_eq(ks_item_copy(out, in), 0);
    cr_assert_eq(ks_item_set_s(out, KS_ATTR_KMS_ARN, TERMINAL_ARN), 0);
    cr_assert_eq(ks_item_set_b(out, KS_ATTR_ENC, enc, ENC_LEN), 0);
}

static void m_stale(const struct ks_item *in, struct ks_item *out)
{
    unsigned char enc[ENC_LEN];

    cr_assert_eq(RAND_bytes(enc, ENC_LEN), 1);
    ks_item_init(out);
    cr_assert_eq(ks_item_copy(out, in), 0);
    cr_assert_eq(ks_item_set_b(out, KS_ATTR_ENC, enc, ENC_LEN), 0);
}

static void m_text(struct ks_bytes *b, const char *text)
{
    cr_assert_eq(ks_bytes_set(b, text, strlen(text)), 0);
}

static void m_commitment(struct ks_mutation_commitment *c, const char *id)
{
    ks_mutation_commitment_init(c);
    c->branch_key_id = strdup(id);
    c->create_time = strdup(CREATE_TIME);
    c->uuid = strdup(M_UUID);
    m_text(&c->original, "{\"aws-crypto-ec\":{},\"kms-arn\":\"" KMS_ARN "\"}");
    m_text(&c->terminal, "{\"aws-crypto-ec\":{},\"kms-arn\":\"" TERMINAL_ARN "\"}");
    m_text(&c->input, "{\"aws-crypto-ec\":null,\"kms-arn\":\"" TERMINAL_ARN "\"}");
    m_text(&c->enc, "trustStorage");
}

static void m_index(struct ks_mutation_index *x, const char *id, const char *page_index)
{
    ks_mutation_index_init(x);
    x->branch_key_id = strdup(id);
    x->create_time = strdup(CREATE_TIME);
    x->uuid = strdup(M_UUID);
    m_text(&x->page_index, page_index);
    m_text(&x->enc, "trustStorage");
}

static void m_assert_conflict(ks_status st, const struct ks_error *err, const char *what)
{
    cr_assert_eq(st, KS_E_MUTATION_CONFLICT, "%s: status %d (%s)", what, st, err->message);
}

/* The writes of a rotating InitializeMutation, built from what storage returned. */
struct m_init {
    struct ks_mutation_init_items read;
    struct ks_item active, version, beacon;
    struct ks_storage_write w_active, w_version, w_beacon;
};

static void m_init_build(struct ks_storage *s, const char *id, struct m_init *mi)
{
    unsigned char enc[ENC_LEN];
    char vid[KS_UUID_LEN + 1], vtype[80];
    struct ks_error err;

    cr_assert_eq(s->ops->get_items_for_initialize_mutation(s, id, &mi->read, &err), KS_OK, "%s",
                 err.message);
    cr_assert_eq(ks_uuid_v4(vid), 0);
    cr_assert_eq(RAND_bytes(enc, ENC_LEN), 1);
    cr_assert_eq(make_version(&mi->version, id, vid, enc), 0);
    cr_assert_eq(ks_item_set_s(&mi->version, KS_ATTR_KMS_ARN, TERMINAL_ARN), 0);
    m_mutate(&mi->read.active, &mi->active);
    snprintf(vtype, sizeof vtype, "%s%s", KS_TYPE_VERSION_PREFIX, vid);
    cr_assert_eq(ks_item_set_s(&mi->active, KS_ATTR_VERSION, vtype), 0);
    m_mutate(&mi->read.beacon, &mi->beacon);
    mi->w_active = (struct ks_storage_write){&mi->active, &mi->read.active};
    mi->w_version = (struct ks_storage_write){&mi->version, NULL};
    mi->w_beacon = (struct ks_storage_write){&mi->beacon, &mi->read.beacon};
}

static void m_init_free(struct m_init *mi)
{
    ks_mutation_init_items_free(&mi->read);
    ks_item_free(&mi->active);
    ks_item_free(&mi->version);
    ks_item_free(&mi->beacon);
}

static ks_status m_init_write(struct ks_storage *s, const struct m_init *mi,
                              const struct ks_mutation_commitment *c,
                              const struct ks_mutation_index *x, struct ks_error *err)
{
    ks_error_clear(err);
    return s->ops->write_initialize_mutation(s, &mi->w_active, &mi->w_version, &mi->w_beacon, c, x,
                                             err);
}

static void m_start(struct ks_storage *s, const char *id, struct ks_mutation_commitment *c,
                    struct ks_mutation_index *x)
{
    struct m_init mi;
    struct ks_error err;

    m_commitment(c, id);
    m_index(x, id, KS_PAGE_INDEX_NOT_STARTED);
    m_init_build(s, id, &mi);
    cr_assert_eq(m_init_write(s, &mi, c, x, &err), KS_OK, "%s", err.message);
    m_init_free(&mi);
}

/* The raw commitment item: exactly the MPL's layout (section 1), hierarchy-version N "1". */
static void m_assert_commitment_layout(struct fixture *f, const char *id)
{
    char req[512], type[128];
    struct json_object *resp, *item, *v;

    snprintf(req, sizeof req,
             "{\"TableName\":\"%s\",\"ConsistentRead\":true,\"Key\":{\"branch-key-id\":"
             "{\"S\":\"%s\"},\"type\":{\"S\":\"branch:MUTATION_COMMITMENT\"}}}",
             f->table, id);
    cr_assert_eq(raw_call(f, "GetItem", req, &resp, type), KS_OK, "%s", type);
    cr_assert(json_object_object_get_ex(resp, "Item", &item));
    cr_assert_eq(json_object_object_length(item), 9);
    cr_assert(json_object_object_get_ex(item, "hierarchy-version", &v));
    cr_assert_str_eq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), "{\"N\":\"1\"}");
    cr_assert(json_object_object_get_ex(item, "original", &v));
    cr_assert(json_object_object_get_ex(v, "B", NULL), "original is B");
    cr_assert(json_object_object_get_ex(item, "uuid", &v));
    cr_assert_str_eq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                     "{\"S\":\"" M_UUID "\"}");
    json_object_put(resp);
}

Test(dynamodb_mutation, initialize_conditions_and_layout)
{
    struct ks_mutation_commitment c;
    struct ks_mutation_index x;
    struct ks_mutation_state ms;
    struct ks_item stale;
    struct fixture f;
    struct m_init mi;
    struct ks_error err;
    char *before;

    fx_open(&f);
    create_store(&f);
    m_setup_key(f.s, "mi", 2);
    m_commitment(&c, "mi");
    m_index(&x, "mi", KS_PAGE_INDEX_NOT_STARTED);
    m_init_build(f.s, "mi", &mi);
    cr_assert_eq(mi.read.mutation.has_commitment + mi.read.mutation.has_index, 0);
    assert_stored(&f, &mi.read.active);
    before = m_snapshot(&f, "mi");

    m_stale(&mi.read.active, &stale);
    mi.w_active.old = &stale;
    m_assert_conflict(m_init_write(f.s, &mi, &c, &x, &err), &err, "stale ACTIVE");
    cr_assert(strstr(err.message, KS_TYPE_ACTIVE), "%s", err.message);
    mi.w_active.old = &mi.read.active;
    ks_item_free(&stale);
    m_stale(&mi.read.beacon, &stale);
    mi.w_beacon.old = &stale;
    m_assert_conflict(m_init_write(f.s, &mi, &c, &x, &err), &err, "stale beacon");
    mi.w_beacon.old = &mi.read.beacon;
    ks_item_free(&stale);
    m_assert_unchanged(&f, "mi", before);
    free(before);

    cr_assert_eq(m_init_write(f.s, &mi, &c, &x, &err), KS_OK, "%s", err.message);
    assert_stored(&f, &mi.active);
    assert_stored(&f, &mi.version);
    assert_stored(&f, &mi.beacon);
    m_assert_commitment_layout(&f, "mi");
    cr_assert_eq(f.s->ops->get_mutation(f.s, "mi", &ms, &err), KS_OK, "%s", err.message);
    cr_assert(ms.has_commitment && ms.has_index);
    cr_assert_eq(ms.commitment.terminal.len, c.terminal.len);
    cr_assert_eq(memcmp(ms.commitment.terminal.data, c.terminal.data, c.terminal.len), 0);
    cr_assert_eq(memcmp(ms.index.page_index.data, "Not Started", 11), 0);
    ks_mutation_state_free(&ms);
    m_init_free(&mi);

    /* A second one (fresh reads): the commitment exists. */
    before = m_snapshot(&f, "mi");
    m_init_build(f.s, "mi", &mi);
    cr_assert(mi.read.mutation.has_commitment && mi.read.mutation.has_index);
    m_assert_conflict(m_init_write(f.s, &mi, &c, &x, &err), &err, "in flight");
    cr_assert(strstr(err.message, KS_TYPE_MUTATION_COMMITMENT), "%s", err.message);
    m_assert_unchanged(&f, "mi", before);
    free(before);
    m_init_free(&mi);
    cr_assert_eq(f.s->ops->get_items_for_initialize_mutation(f.s, "none", &mi.read, &err),
                 KS_E_NOT_FOUND);
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
    fx_close(&f);
}

/* Reads all pages; checks order and tokens; returns the number of versions. */
static size_t m_read_pages(struct ks_storage *s, const char *id, size_t page_size, size_t *pages)
{
    struct ks_version_page page;
    struct ks_error err;
    char last[128] = "", *start = NULL;
    size_t total = 0, i;

    *pages = 0;
    do {
        cr_assert_eq(s->ops->query_for_versions(s, id, start, page_size, &page, &err), KS_OK, "%s",
                     err.message);
        cr_assert_leq(page.count, page_size);
        for (i = 0; i < page.count; i++) {
            const char *type = ks_item_get_s(&page.items[i], KS_ATTR_TYPE);
            cr_assert_gt(strcmp(type, last), 0, "not ascending: %s after %s", type, last);
            snprintf(last, sizeof last, "%s", type);
        }
        if (page.next)
            cr_assert_str_eq(page.next, last);
        total += page.count;
        (*pages)++;
        free(start);
        start = page.next ? strdup(page.next) : NULL;
        ks_version_page_free(&page);
    } while (start);
    return total;
}

Test(dynamodb_mutation, query_pages)
{
    struct ks_mutation_commitment c;
    struct ks_mutation_index x;
    struct ks_version_page page;
    struct fixture f;
    struct ks_error err;
    size_t pages;

    fx_open(&f);
    create_store(&f);
    m_setup_key(f.s, "q", 7);
    m_setup_key(f.s, "q2", 2);
    m_start(f.s, "q", &c, &x); /* 8 versions, a commitment and an index */
    cr_assert_eq(m_read_pages(f.s, "q", 3, &pages), 8);
    cr_assert_eq(pages, 3);
    cr_assert_eq(m_read_pages(f.s, "q", 8, &pages), 8);
    cr_assert_eq(pages, 1, "no empty last page");
    cr_assert_eq(m_read_pages(f.s, "q", 1, &pages), 8);
    cr_assert_eq(pages, 8);
    cr_assert_eq(m_read_pages(f.s, "q2", 98, &pages), 2);
    cr_assert_eq(m_read_pages(f.s, "none", 3, &pages), 0);
    cr_assert_eq(f.s->ops->query_for_versions(f.s, "q", "branch:version:~", 3, &page, &err), KS_OK,
                 "%s", err.message);
    cr_assert_eq(page.count, 0);
    cr_assert_null(page.next);
    ks_version_page_free(&page);
    cr_assert_eq(f.s->ops->query_for_versions(f.s, "q", "bogus", 3, &page, &err), KS_E_INVALID);
    cr_assert_eq(f.s->ops->query_for_versions(f.s, "q", NULL, 99, &page, &err), KS_E_INVALID);
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
    fx_close(&f);
}

/* One page's overwrites. */
struct m_page {
    struct ks_version_page page;
    struct ks_item items[KS_STORAGE_MAX_PAGE];
    struct ks_storage_write w[KS_STORAGE_MAX_PAGE];
    size_t n;
};

static void m_page_read(struct ks_storage *s, const char *id, const char *start, size_t size,
                        struct m_page *mp)
{
    struct ks_error err;
    size_t i;

    cr_assert_eq(s->ops->query_for_versions(s, id, start, size, &mp->page, &err), KS_OK, "%s",
                 err.message);
    mp->n = 0;
    for (i = 0; i < mp->page.count; i++) {
        if (strcmp(ks_item_get_s(&mp->page.items[i], KS_ATTR_KMS_ARN), TERMINAL_ARN) == 0)
            continue;
        m_mutate(&mp->page.items[i], &mp->items[mp->n]);
        mp->w[mp->n] = (struct ks_storage_write){&mp->items[mp->n], &mp->page.items[i]};
        mp->n++;
    }
}

static void m_page_free(struct m_page *mp)
{
    size_t i;

    for (i = 0; i < mp->n; i++)
        ks_item_free(&mp->items[i]);
    ks_version_page_free(&mp->page);
}

Test(dynamodb_mutation, apply_pages_conditions_and_end)
{
    struct ks_mutation_commitment c, other;
    struct ks_mutation_index x, nx, stale_x;
    struct ks_mutation_state ms;
    const struct ks_item *keep;
    struct ks_item stale;
    struct m_page mp;
    struct fixture f;
    struct ks_error err;
    char *before, tok[128];

    fx_open(&f);
    create_store(&f);
    m_setup_key(f.s, "ap", 4); /* 5 with the rotation: pages of 3 and 2 */
    m_start(f.s, "ap", &c, &x);
    m_page_read(f.s, "ap", NULL, 3, &mp);
    cr_assert_geq(mp.n, 2, "at most the new version is terminal already");
    cr_assert_not_null(mp.page.next);
    m_index(&nx, "ap", mp.page.next);
    before = m_snapshot(&f, "ap");

    m_index(&stale_x, "ap", "branch:version:zzz");
    m_assert_conflict(f.s->ops->write_mutated_versions(f.s, mp.w, mp.n, &c, &nx, &stale_x, 0, &err),
                      &err, "index moved");
    cr_assert(strstr(err.message, KS_TYPE_MUTATION_INDEX), "%s", err.message);
    m_commitment(&other, "ap");
    ks_bytes_free(&other.original);
    m_text(&other.original, "{\"aws-crypto-ec\":{},\"kms-arn\":\"x\"}");
    m_assert_conflict(f.s->ops->write_mutated_versions(f.s, mp.w, mp.n, &other, &nx, &x, 0, &err),
                      &err, "commitment differs");
    cr_assert(strstr(err.message, KS_TYPE_MUTATION_COMMITMENT), "%s", err.message);
    keep = mp.w[1].old;
    m_stale(keep, &stale);
    mp.w[1].old = &stale;
    m_assert_conflict(f.s->ops->write_mutated_versions(f.s, mp.w, mp.n, &c, &nx, &x, 0, &err), &err,
                      "stale version");
    cr_assert(strstr(err.message, ks_item_get_s(keep, KS_ATTR_TYPE)), "%s", err.message);
    mp.w[1].old = keep;
    ks_item_free(&stale);
    m_assert_unchanged(&f, "ap", before);
    free(before);

    cr_assert_eq(f.s->ops->write_mutated_versions(f.s, mp.w, mp.n, &c, &nx, &x, 0, &err), KS_OK,
                 "%s", err.message);
    assert_stored(&f, &mp.items[0]);
    assert_stored(&f, &mp.items[1]);
    cr_assert_eq(f.s->ops->get_mutation(f.s, "ap", &ms, &err), KS_OK);
    cr_assert_eq(ms.index.page_index.len, strlen(mp.page.next));
    ks_mutation_state_free(&ms);
    /* The old index no longer matches: a second client replaying the page loses. */
    m_assert_conflict(f.s->ops->write_mutated_versions(f.s, NULL, 0, &c, &nx, &x, 0, &err), &err,
                      "replayed page");
    m_page_free(&mp);

    snprintf(tok, sizeof tok, "%.*s", (int)nx.page_index.len, (const char *)nx.page_index.data);
    m_page_read(f.s, "ap", tok, 3, &mp);
    cr_assert_eq(mp.page.count, 2);
    cr_assert_null(mp.page.next);
    cr_assert_eq(f.s->ops->write_mutated_versions(f.s, mp.w, mp.n, &c, NULL, &nx, 1, &err), KS_OK,
                 "%s", err.message);
    cr_assert_eq(f.s->ops->get_mutation(f.s, "ap", &ms, &err), KS_OK);
    cr_assert_eq(ms.has_commitment + ms.has_index, 0);
    cr_assert_eq(count_items(&f, "ap", "branch:MUTATION"), 0);
    m_page_free(&mp);
    ks_mutation_index_free(&stale_x);
    ks_mutation_index_free(&nx);
    ks_mutation_index_free(&x);
    ks_mutation_commitment_free(&other);
    ks_mutation_commitment_free(&c);
    fx_close(&f);
}

Test(dynamodb_mutation, index_recreated_and_delete)
{
    struct ks_mutation_commitment c, other;
    struct ks_mutation_index x;
    struct ks_mutation_state ms;
    struct fixture f;
    struct ks_error err;
    char req[512], type[128];

    fx_open(&f);
    create_store(&f);
    m_setup_key(f.s, "ix", 2);
    m_start(f.s, "ix", &c, &x);
    m_assert_conflict(f.s->ops->write_mutation_index(f.s, &c, &x, &err), &err, "index exists");
    snprintf(req, sizeof req,
             "{\"TableName\":\"%s\",\"Key\":{\"branch-key-id\":{\"S\":\"ix\"},"
             "\"type\":{\"S\":\"branch:MUTATION_INDEX\"}}}",
             f.table);
    cr_assert_eq(raw_call(&f, "DeleteItem", req, NULL, type), KS_OK, "%s", type);
    m_commitment(&other, "ix");
    ks_bytes_free(&other.enc);
    m_text(&other.enc, "another");
    m_assert_conflict(f.s->ops->write_mutation_index(f.s, &other, &x, &err), &err, "differs");
    cr_assert_eq(f.s->ops->write_mutation_index(f.s, &c, &x, &err), KS_OK, "%s", err.message);
    cr_assert_eq(f.s->ops->get_mutation(f.s, "ix", &ms, &err), KS_OK);
    cr_assert(ms.has_commitment && ms.has_index);
    ks_mutation_state_free(&ms);

    m_assert_conflict(f.s->ops->delete_mutation(f.s, &other, &err), &err, "delete, differs");
    cr_assert_eq(count_items(&f, "ix", "branch:MUTATION"), 2);
    cr_assert_eq(f.s->ops->delete_mutation(f.s, &c, &err), KS_OK, "%s", err.message);
    cr_assert_eq(count_items(&f, "ix", "branch:MUTATION"), 0);
    m_assert_conflict(f.s->ops->delete_mutation(f.s, &c, &err), &err, "delete twice");
    m_assert_conflict(f.s->ops->write_mutation_index(f.s, &c, &x, &err), &err, "no commitment");
    cr_assert_eq(count_items(&f, "ix", "branch:MUTATION"), 0);
    ks_mutation_commitment_free(&other);
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
    fx_close(&f);
}

Test(dynamodb_mutation, atomic)
{
    struct ks_mutation_commitment c;
    struct ks_mutation_index x;
    const struct ks_item *keep;
    struct ks_item stale;
    struct m_init mi;
    struct m_page mp;
    struct fixture f;
    struct ks_error err;
    char *before;

    fx_open(&f);
    create_store(&f);
    m_setup_key(f.s, "at", 4);
    m_init_build(f.s, "at", &mi);
    m_page_read(f.s, "at", NULL, KS_STORAGE_MAX_PAGE, &mp);
    before = m_snapshot(&f, "at");
    keep = mp.w[2].old;
    m_stale(keep, &stale);
    mp.w[2].old = &stale;
    m_assert_conflict(f.s->ops->write_atomic_mutation(f.s, &mi.w_active, &mi.w_version,
                                                      &mi.w_beacon, mp.w, mp.n, &err),
                      &err, "stale version");
    mp.w[2].old = keep;
    ks_item_free(&stale);
    m_assert_unchanged(&f, "at", before);
    free(before);
    cr_assert_eq(f.s->ops->write_atomic_mutation(f.s, &mi.w_active, &mi.w_version, &mi.w_beacon,
                                                 mp.w, mp.n, &err),
                 KS_OK, "%s", err.message);
    assert_stored(&f, &mi.active);
    assert_stored(&f, &mp.items[3]);
    m_page_free(&mp);
    m_init_free(&mi);

    /* A mutation in flight: nothing is written. */
    m_setup_key(f.s, "at2", 2);
    m_start(f.s, "at2", &c, &x);
    m_init_build(f.s, "at2", &mi);
    m_page_read(f.s, "at2", NULL, KS_STORAGE_MAX_PAGE, &mp);
    before = m_snapshot(&f, "at2");
    m_assert_conflict(f.s->ops->write_atomic_mutation(f.s, &mi.w_active, &mi.w_version,
                                                      &mi.w_beacon, mp.w, mp.n, &err),
                      &err, "in flight");
    cr_assert(strstr(err.message, KS_TYPE_MUTATION_COMMITMENT), "%s", err.message);
    m_assert_unchanged(&f, "at2", before);
    free(before);
    m_page_free(&mp);
    m_init_free(&mi);
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
    fx_close(&f);
}

/*
 * A full page: 98 overwrites + commitment + index = 100 actions, DynamoDB's limit. A stale item
 * at the very end makes the cancellation reasons list longer than the client keeps of the
 * message: still a conflict (after the resends), and nothing written.
 */
Test(dynamodb_mutation, full_page_of_98)
{
    struct ks_mutation_commitment c;
    struct ks_mutation_index x;
    const struct ks_item *keep;
    struct ks_item stale;
    struct m_page mp;
    struct fixture f;
    struct ks_error err;
    char *before;

    fx_open(&f);
    create_store(&f);
    m_setup_key(f.s, "full", KS_STORAGE_MAX_PAGE - 1);
    m_start(f.s, "full", &c, &x); /* 98 versions, one of them terminal already */
    m_page_read(f.s, "full", NULL, KS_STORAGE_MAX_PAGE, &mp);
    cr_assert_eq(mp.page.count, KS_STORAGE_MAX_PAGE);
    cr_assert_null(mp.page.next);
    /* Fill the page to 98 writes: the terminal version is overwritten too (enc lock holds). */
    for (size_t i = 0; i < mp.page.count && mp.n < KS_STORAGE_MAX_PAGE; i++)
        if (strcmp(ks_item_get_s(&mp.page.items[i], KS_ATTR_KMS_ARN), TERMINAL_ARN) == 0) {
            m_mutate(&mp.page.items[i], &mp.items[mp.n]);
            mp.w[mp.n] = (struct ks_storage_write){&mp.items[mp.n], &mp.page.items[i]};
            mp.n++;
        }
    cr_assert_eq(mp.n, KS_STORAGE_MAX_PAGE);
    before = m_snapshot(&f, "full");
    keep = mp.w[mp.n - 1].old;
    m_stale(keep, &stale);
    mp.w[mp.n - 1].old = &stale;
    m_assert_conflict(f.s->ops->write_mutated_versions(f.s, mp.w, mp.n, &c, NULL, &x, 1, &err),
                      &err, "stale last item");
    mp.w[mp.n - 1].old = keep;
    ks_item_free(&stale);
    m_assert_unchanged(&f, "full", before);
    free(before);
    cr_assert_eq(f.s->ops->write_mutated_versions(f.s, mp.w, mp.n, &c, NULL, &x, 1, &err), KS_OK,
                 "%s", err.message);
    cr_assert_eq(count_items(&f, "full", "branch:MUTATION"), 0);
    assert_stored(&f, &mp.items[mp.n - 1]);
    m_page_free(&mp);
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
    fx_close(&f);
}

/*
 * A mutation write as sent (mutations.md section 8): ConditionCheck on the commitment with the
 * commitment check, Put of the new index under the old index's check, Put of each version under
 * the enc lock; a ConditionalCheckFailed is 409 at once, naming the item, with no resend; a
 * conflict that persists is 409 too.
 */
Test(dynamodb_scripted, mutation_write_request_and_reasons)
{
    static const struct fake_answer ccf[] = {CANCELLED("None, ConditionalCheckFailed, None")};
    static const struct fake_answer conflict[] = {CANCELLED("None, None, TransactionConflict")};
    struct ks_mutation_commitment c;
    struct ks_mutation_index x, nx;
    struct ks_storage_write w;
    struct ks_item old, item;
    struct fixture f;
    struct fake fk;
    struct ks_error err;
    const char *body;

    m_commitment(&c, "bk");
    m_index(&x, "bk", KS_PAGE_INDEX_NOT_STARTED);
    m_index(&nx, "bk", "branch:version:b");
    cr_assert_eq(make_version(&old, "bk", "b",
                              (const unsigned char *)"0123456789abcdef0123456789"
                                                     "abcdef"),
                 0);
    m_mutate(&old, &item);
    w = (struct ks_storage_write){&item, &old};

    fx_open_fake(&f, &fk, ccf, 1);
    m_assert_conflict(f.s->ops->write_mutated_versions(f.s, &w, 1, &c, &nx, &x, 0, &err), &err,
                      "scripted");
    cr_assert(strstr(err.message, KS_TYPE_MUTATION_INDEX), "%s", err.message);
    fx_close(&f);
    fake_stop(&fk);
    cr_assert_eq(fk.requests, 1, "a lost condition is not resent");
    body = fk.bodies[0];
    cr_assert_str_eq(fk.targets[0], "DynamoDB_20120810.TransactWriteItems");
    cr_assert_not_null(strstr(body, "{\"ConditionCheck\":{"), "%s", body);
    /* The commitment check: exists, and enc, original, terminal, uuid equal. */
    cr_assert_not_null(strstr(body, "\"ConditionExpression\":\"attribute_exists(#pk) AND #a0 = "
                                    ":v0 AND #a1 = :v1 AND #a2 = :v2 AND #a3 = :v3\""),
                       "%s", body);
    cr_assert_not_null(strstr(body, "\"#a1\":\"original\""));
    cr_assert_not_null(strstr(body, "\"#a3\":\"uuid\""));
    cr_assert_not_null(strstr(body, "\":v0\":{\"B\":\"dHJ1c3RTdG9yYWdl\"}")); /* trustStorage */
    /* The index check uses the OLD pageIndex ("Not Started"), the Put the new one. */
    cr_assert_not_null(strstr(body, "\"#a1\":\"pageIndex\""));
    cr_assert_not_null(strstr(body, "{\"B\":\"Tm90IFN0YXJ0ZWQ=\"}"));
    cr_assert_not_null(strstr(body, "\"pageIndex\":{\"B\":\"YnJhbmNoOnZlcnNpb246Yg==\"}"));
    /* The version's enc lock. */
    cr_assert_not_null(strstr(body, "\"ConditionExpression\":\"attribute_exists(#pk) AND #a0 = "
                                    ":v0\""));
    cr_assert_lt(strstr(body, "MUTATION_COMMITMENT"), strstr(body, "MUTATION_INDEX"));
    fake_free(&fk);

    fx_open_fake(&f, &fk, conflict, 1);
    m_assert_conflict(f.s->ops->write_mutated_versions(f.s, &w, 1, &c, &nx, &x, 0, &err), &err,
                      "persistent conflict");
    fx_close(&f);
    fake_stop(&fk);
    cr_assert_eq(fk.requests, 4);
    fake_free(&fk);
    ks_item_free(&old);
    ks_item_free(&item);
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
    ks_mutation_index_free(&nx);
}

/* --- ListActive (issue 14; docs/reference/branch-key-store.md section 10) ------------------ */

/* Follows every page at `limit`; every key once, counting the empty and short pages. */
static void list_all(struct fixture *f, size_t limit, int n_keys, int *pages, int *empty)
{
    char *id = NULL, *type = NULL;
    int seen[16] = {0}, total = 0, i;
    struct ks_error err;

    *pages = *empty = 0;
    do {
        struct ks_active_page page;
        size_t j;
        cr_assert_eq(f->s->ops->list_active(f->s, id, type, limit, &page, &err), KS_OK, "%s",
                     err.message);
        free(id);
        free(type);
        id = page.next_id;
        type = page.next_type;
        page.next_id = page.next_type = NULL;
        cr_assert_leq(page.count, limit, "a page holds at most limit items");
        (*pages)++;
        *empty += page.count == 0;
        for (j = 0; j < page.count; j++) {
            const char *bk = ks_item_get_s(&page.items[j], KS_ATTR_BRANCH_KEY_ID);
            cr_assert_str_eq(ks_item_get_s(&page.items[j], KS_ATTR_TYPE), KS_TYPE_ACTIVE);
            cr_assert(strncmp(bk, "list-", 5) == 0, "%s", bk);
            i = (int)strtol(bk + 5, NULL, 10);
            cr_assert(i >= 0 && i < n_keys);
            seen[i]++;
            total++;
        }
        ks_active_page_free(&page);
        cr_assert_lt(*pages, 1000);
    } while (id);
    cr_assert_null(type);
    cr_assert_eq(total, n_keys, "limit %zu", limit);
    for (i = 0; i < n_keys; i++)
        cr_assert_eq(seen[i], 1, "key %d seen %d times at limit %zu", i, seen[i], limit);
}

Test(dynamodb, list_active_every_key_once_short_and_empty_pages)
{
    static const size_t limits[] = {1, 2, 3, 5, 100};
    struct fixture f;
    int i, pages, empty;
    size_t l;

    fx_open(&f);
    create_store(&f);
    /* 12 keys with 1..3 versions: 12 ACTIVE items among 12 * 2 + 24 = 48 items. */
    for (i = 0; i < 12; i++) {
        char id[32];
        snprintf(id, sizeof id, "list-%d", i);
        m_setup_key(f.s, id, (size_t)(i % 3) + 1);
    }
    for (l = 0; l < sizeof limits / sizeof limits[0]; l++) {
        list_all(&f, limits[l], 12, &pages, &empty);
        if (limits[l] == 1)
            cr_expect_gt(empty, 0, "limit 1: the filter leaves empty pages (%d pages)", pages);
        if (limits[l] <= 3)
            cr_expect_gt(pages, (int)((12 + limits[l] - 1) / limits[l]),
                         "limit %zu: short pages expected", limits[l]);
    }
    fx_close(&f);
}

Test(dynamodb_scripted, list_active_request_and_tokens)
{
    static const struct fake_answer script[] = {
        {200, "{\"Items\":[{\"branch-key-id\":{\"S\":\"a\"},\"type\":{\"S\":\"branch:ACTIVE\"}}],"
              "\"LastEvaluatedKey\":{\"branch-key-id\":{\"S\":\"a\"},"
              "\"type\":{\"S\":\"branch:version:x\"}}}"},
        {200, "{\"Items\":[],\"Count\":0,\"ScannedCount\":2}"},
        {200, "{\"Items\":[{\"branch-key-id\":{\"S\":\"b\"},\"type\":{\"S\":\"beacon:ACTIVE\"}}]}"},
    };
    struct ks_active_page page;
    struct fixture f;
    struct fake fk;
    struct ks_error err;

    fx_open_fake(&f, &fk, script, 3);
    cr_assert_eq(f.s->ops->list_active(f.s, NULL, NULL, 2, &page, &err), KS_OK, "%s", err.message);
    cr_assert_eq(page.count, 1);
    /* The next page starts after the last item EVALUATED, here a version item. */
    cr_assert_str_eq(page.next_id, "a");
    cr_assert_str_eq(page.next_type, "branch:version:x");
    ks_active_page_free(&page);
    cr_assert_eq(f.s->ops->list_active(f.s, "a", "branch:version:x", 2, &page, &err), KS_OK);
    cr_assert_eq(page.count, 0);
    cr_assert_null(page.next_id, "no LastEvaluatedKey: the end");
    ks_active_page_free(&page);
    /* The filter is DynamoDB's: an answer with another type is damage. */
    cr_assert_eq(f.s->ops->list_active(f.s, NULL, NULL, 2, &page, &err), KS_E_CORRUPT);
    cr_assert_eq(f.s->ops->list_active(f.s, NULL, NULL, 0, &page, &err), KS_E_INVALID);
    fx_close(&f);
    fake_stop(&fk);
    cr_assert_eq(fk.requests, 3, "an invalid limit sends nothing");
    cr_assert_str_eq(fk.targets[0], "DynamoDB_20120810.Scan");
    cr_assert_not_null(strstr(fk.bodies[0], "\"FilterExpression\":\"#t = :active\""), "%s",
                       fk.bodies[0]);
    cr_assert_not_null(strstr(fk.bodies[0], "\"#t\":\"type\""));
    cr_assert_not_null(strstr(fk.bodies[0], "\":active\":{\"S\":\"branch:ACTIVE\"}"));
    cr_assert_not_null(strstr(fk.bodies[0], "\"ConsistentRead\":true"));
    cr_assert_not_null(strstr(fk.bodies[0], "\"Limit\":2"));
    cr_assert_null(strstr(fk.bodies[0], "ExclusiveStartKey"));
    cr_assert_not_null(strstr(fk.bodies[1], "\"ExclusiveStartKey\":{\"branch-key-id\":{\"S\":"
                                            "\"a\"},\"type\":{\"S\":\"branch:version:x\"}}"),
                       "%s", fk.bodies[1]);
    fake_free(&fk);
}
