/*
 * test_config.c - config/: YAML -> struct ks_config, every error class with its file:line:column,
 * the embedded default and the lookups (DESIGN.md section 4).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

#define HASH_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HASH_B "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
#define LOCAL_ARN "arn:aws:kms:local:000000000000:key/0b0c8a54-4f1e-4c55-9d43-5a2f3c1b7e21"
#define AWS_ARN "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
#define MRK_ARN "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"

/* Valid building blocks: 4, 5 and 6 lines. */
#define REL_LOCAL                                                                                  \
    "kms_relationships:\n"                                                                         \
    "  - name: local\n"                                                                            \
    "    type: local\n"                                                                            \
    "    key_file: /tmp/k\n"
#define KS_DEFAULT                                                                                 \
    "key_stores:\n"                                                                                \
    "  - name: default\n"                                                                          \
    "    logical_key_store_name: default\n"                                                        \
    "    kms_relationship: local\n"                                                                \
    "    storage: {type: sqlite, path: /tmp/db}\n"
#define TENANT_APP1                                                                                \
    "tenants:\n"                                                                                   \
    "  - name: app1\n"                                                                             \
    "    token_sha256: \"" HASH_A "\"\n"                                                           \
    "    role: reader\n"                                                                           \
    "    key_stores: [default]\n"                                                                  \
    "    kms_relationships: [local]\n"
#define MINIMAL REL_LOCAL KS_DEFAULT TENANT_APP1

/* An aws relationship with a configurable kms_configuration and extra lines. */
#define REL_AWS(kms, extra)                                                                        \
    "kms_relationships:\n"                                                                         \
    "  - name: prod\n"                                                                             \
    "    type: aws\n"                                                                              \
    "    region: us-west-2\n"                                                                      \
    "    credentials: {source: env}\n"                                                             \
    "    kms_configuration: " kms "\n" extra
#define KS_PROD                                                                                    \
    "key_stores:\n"                                                                                \
    "  - name: default\n"                                                                          \
    "    logical_key_store_name: default\n"                                                        \
    "    kms_relationship: prod\n"                                                                 \
    "    storage: {type: sqlite, path: /tmp/db}\n"
#define TENANT_PROD                                                                                \
    "tenants:\n"                                                                                   \
    "  - name: app1\n"                                                                             \
    "    token_sha256: \"" HASH_A "\"\n"                                                           \
    "    role: reader\n"                                                                           \
    "    key_stores: [default]\n"                                                                  \
    "    kms_relationships: [prod]\n"

static const char full_yaml[] =
    "listen: 0.0.0.0:8443\n"
    "server:\n"
    "  threads: 8\n"
    "  max_body_bytes: 1048576\n"
    "  max_json_depth: 32\n"
    "  connection_timeout_seconds: 45\n"
    "kms_relationships:\n"
    "  - name: local\n"
    "    type: local\n"
    "    key_file: ./data/local-kms.keys\n"
    "    kms_configuration: {kms_key_arn: \"" LOCAL_ARN "\"}\n"
    "  - name: prod\n"
    "    type: aws\n"
    "    region: us-west-2\n"
    "    endpoint: https://kms.example.test:4443\n"
    "    credentials: {source: static, access_key_id: AKIDEXAMPLE,\n"
    "                  secret_access_key: wJalrXUtnFEMIEXAMPLEKEY, session_token: tok}\n"
    "    kms_configuration: {kms_key_arn: \"" AWS_ARN "\"}\n"
    "    grant_tokens: [grant-one, grant-two]\n"
    "  - name: prod-mrk\n"
    "    type: aws\n"
    "    region: us-east-1\n"
    "    credentials: {source: profile, profile: keystore}\n"
    "    kms_configuration: {kms_mr_key_arn: \"" MRK_ARN "\"}\n"
    "  - name: readers\n"
    "    type: aws\n"
    "    region: eu-west-1\n"
    "    credentials: {source: imds}\n"
    "    kms_configuration: {mr_discovery: {region: eu-west-1}}\n"
    "  - name: anywhere\n"
    "    type: aws\n"
    "    region: us-west-2\n"
    "    credentials: {source: container}\n"
    "    kms_configuration: {discovery: {}}\n"
    "key_stores:\n"
    "  - name: default\n"
    "    logical_key_store_name: default\n"
    "    kms_relationship: local\n"
    "    storage: {type: sqlite, path: ./data/keystore.db}\n"
    "  - name: shared\n"
    "    logical_key_store_name: shared-prod\n"
    "    key_store_id: 6f1c2b1e-8d3a-4b7e-9c2d-1a2b3c4d5e6f\n"
    "    kms_relationship: prod\n"
    "    storage:\n"
    "      type: dynamodb\n"
    "      table: KeyStoreTable\n"
    "      region: us-west-2\n"
    "      endpoint: http://127.0.0.1:8000\n"
    "      credentials: {source: profile}\n"
    "cache:\n"
    "  capacity: 5000\n"
    "  ttl_seconds: 300\n"
    "  grace_period_seconds: 20\n"
    "  grace_interval_seconds: 2\n"
    "  fan_out: 50\n"
    "  in_flight_ttl_seconds: 15\n"
    "tenants:\n"
    "  - name: admin\n"
    "    token_sha256: \"" HASH_A "\"\n"
    "    role: admin\n"
    "    key_stores: [default, shared]\n"
    "    kms_relationships: [local, prod, prod-mrk, readers, anywhere]\n"
    "  - name: app1\n"
    "    token_sha256: \"" HASH_B "\"\n"
    "    role: reader\n"
    "    key_stores: [shared]\n"
    "    kms_relationships: [readers, prod]\n"
    "    partition: apps\n";

static struct ks_config *load_ok(const char *yaml)
{
    struct ks_config *cfg = NULL;
    char *errors = NULL;
    ks_status st = ks_config_load_buffer("t.yaml", yaml, strlen(yaml), &cfg, &errors);
    cr_assert_eq(st, KS_OK, "unexpected errors:\n%s", errors ? errors : "(none)");
    cr_assert_null(errors);
    cr_assert_not_null(cfg);
    return cfg;
}

/* Loads a config that must fail; returns the error text (caller frees). */
static char *load_errors(const char *yaml)
{
    struct ks_config *cfg = NULL;
    char *errors = NULL;
    ks_status st = ks_config_load_buffer("t.yaml", yaml, strlen(yaml), &cfg, &errors);
    cr_assert_eq(st, KS_E_CONFIG, "status %d", (int)st);
    cr_assert_null(cfg);
    cr_assert_not_null(errors);
    return errors;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void assert_contains(const char *errors, const char *needle)
{
    cr_assert(strstr(errors, needle) != NULL, "expected \"%s\" in:\n%s", needle, errors);
}

/* The config must fail with exactly one error containing needle. */
static void expect_one_error(const char *yaml, const char *needle)
{
    char *errors = load_errors(yaml);
    assert_contains(errors, needle);
    cr_assert_eq(count_lines(errors), 1, "expected one error, got:\n%s", errors);
    free(errors);
}

static void check_full(const struct ks_config *cfg)
{
    const struct ks_kms_rel_config *r;
    const struct ks_key_store_config *k;
    const struct ks_tenant_config *t;
    unsigned char hash_a[32];

    cr_assert_str_eq(cfg->listen_host, "0.0.0.0");
    cr_assert_eq(cfg->listen_port, 8443);
    cr_assert_eq(cfg->server.threads, 8);
    cr_assert_eq(cfg->server.max_body_bytes, 1048576);
    cr_assert_eq(cfg->server.max_json_depth, 32);
    cr_assert_eq(cfg->server.connection_timeout_seconds, 45);

    cr_assert_eq(cfg->n_kms_relationships, 5);
    r = &cfg->kms_relationships[0];
    cr_assert_str_eq(r->name, "local");
    cr_assert_eq(r->type, KS_KMS_LOCAL);
    cr_assert_str_eq(r->key_file, "./data/local-kms.keys");
    cr_assert_eq(r->has_kms_configuration, 1);
    cr_assert_eq(r->kms.kind, KS_KMS_KEY_ARN);
    cr_assert_str_eq(r->kms.arn, LOCAL_ARN);
    cr_assert_eq(r->credentials.source, KS_CRED_NONE);
    cr_assert_null(r->region);

    r = &cfg->kms_relationships[1];
    cr_assert_str_eq(r->name, "prod");
    cr_assert_eq(r->type, KS_KMS_AWS);
    cr_assert_null(r->key_file);
    cr_assert_str_eq(r->region, "us-west-2");
    cr_assert_str_eq(r->endpoint, "https://kms.example.test:4443");
    cr_assert_eq(r->credentials.source, KS_CRED_STATIC);
    cr_assert_str_eq(r->credentials.access_key_id, "AKIDEXAMPLE");
    cr_assert_str_eq(r->credentials.secret_access_key, "wJalrXUtnFEMIEXAMPLEKEY");
    cr_assert_str_eq(r->credentials.session_token, "tok");
    cr_assert_null(r->credentials.profile);
    cr_assert_eq(r->has_kms_configuration, 1);
    cr_assert_eq(r->kms.kind, KS_KMS_KEY_ARN);
    cr_assert_str_eq(r->kms.arn, AWS_ARN);
    cr_assert_eq(r->n_grant_tokens, 2);
    cr_assert_str_eq(r->grant_tokens[0], "grant-one");
    cr_assert_str_eq(r->grant_tokens[1], "grant-two");

    r = &cfg->kms_relationships[2];
    cr_assert_str_eq(r->name, "prod-mrk");
    cr_assert_null(r->endpoint);
    cr_assert_eq(r->credentials.source, KS_CRED_PROFILE);
    cr_assert_str_eq(r->credentials.profile, "keystore");
    cr_assert_eq(r->kms.kind, KS_KMS_MR_KEY_ARN);
    cr_assert_str_eq(r->kms.arn, MRK_ARN);
    cr_assert_eq(r->n_grant_tokens, 0);

    r = &cfg->kms_relationships[3];
    cr_assert_str_eq(r->name, "readers");
    cr_assert_str_eq(r->region, "eu-west-1");
    cr_assert_eq(r->credentials.source, KS_CRED_IMDS);
    cr_assert_eq(r->kms.kind, KS_KMS_MR_DISCOVERY);
    cr_assert_str_eq(r->kms.region, "eu-west-1");
    cr_assert_null(r->kms.arn);

    r = &cfg->kms_relationships[4];
    cr_assert_str_eq(r->name, "anywhere");
    cr_assert_eq(r->credentials.source, KS_CRED_CONTAINER);
    cr_assert_eq(r->kms.kind, KS_KMS_DISCOVERY);
    cr_assert_null(r->kms.arn);
    cr_assert_null(r->kms.region);

    cr_assert_eq(cfg->n_key_stores, 2);
    k = &cfg->key_stores[0];
    cr_assert_str_eq(k->name, "default");
    cr_assert_str_eq(k->logical_key_store_name, "default");
    cr_assert_null(k->key_store_id);
    cr_assert_str_eq(k->kms_relationship, "local");
    cr_assert_eq(k->kms_relationship_index, 0);
    cr_assert_eq(k->storage.type, KS_STORAGE_SQLITE);
    cr_assert_str_eq(k->storage.path, "./data/keystore.db");
    cr_assert_null(k->storage.table);
    cr_assert_eq(k->storage.credentials.source, KS_CRED_NONE);
    k = &cfg->key_stores[1];
    cr_assert_str_eq(k->name, "shared");
    cr_assert_str_eq(k->logical_key_store_name, "shared-prod");
    cr_assert_str_eq(k->key_store_id, "6f1c2b1e-8d3a-4b7e-9c2d-1a2b3c4d5e6f");
    cr_assert_str_eq(k->kms_relationship, "prod");
    cr_assert_eq(k->kms_relationship_index, 1);
    cr_assert_eq(k->storage.type, KS_STORAGE_DYNAMODB);
    cr_assert_null(k->storage.path);
    cr_assert_str_eq(k->storage.table, "KeyStoreTable");
    cr_assert_str_eq(k->storage.region, "us-west-2");
    cr_assert_str_eq(k->storage.endpoint, "http://127.0.0.1:8000");
    cr_assert_eq(k->storage.credentials.source, KS_CRED_PROFILE);
    cr_assert_str_eq(k->storage.credentials.profile, "default");

    cr_assert_eq(cfg->cache.capacity, 5000);
    cr_assert_eq(cfg->cache.ttl_seconds, 300);
    cr_assert_eq(cfg->cache.grace_period_seconds, 20);
    cr_assert_eq(cfg->cache.grace_interval_seconds, 2);
    cr_assert_eq(cfg->cache.fan_out, 50);
    cr_assert_eq(cfg->cache.in_flight_ttl_seconds, 15);

    cr_assert_eq(cfg->n_tenants, 2);
    t = &cfg->tenants[0];
    cr_assert_str_eq(t->name, "admin");
    cr_assert_eq(ks_hex_decode_for_test(HASH_A, hash_a), 0);
    cr_assert_arr_eq(t->token_sha256, hash_a, 32);
    cr_assert_eq(t->role, KS_ROLE_ADMIN);
    cr_assert_eq(t->n_key_stores, 2);
    cr_assert_eq(t->key_store_indexes[0], 0);
    cr_assert_eq(t->key_store_indexes[1], 1);
    cr_assert_eq(t->n_kms_relationships, 5);
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(t->kms_relationship_indexes[i], i);
    cr_assert_str_eq(t->partition, "tenant:admin");
    t = &cfg->tenants[1];
    cr_assert_str_eq(t->name, "app1");
    cr_assert_eq(t->token_sha256[0], 0x60);
    cr_assert_eq(t->token_sha256[31], 0x52);
    cr_assert_eq(t->role, KS_ROLE_READER);
    cr_assert_eq(t->n_key_stores, 1);
    cr_assert_eq(t->key_store_indexes[0], 1);
    cr_assert_eq(t->n_kms_relationships, 2);
    cr_assert_eq(t->kms_relationship_indexes[0], 3);
    cr_assert_eq(t->kms_relationship_indexes[1], 1);
    cr_assert_str_eq(t->partition, "apps");
}
