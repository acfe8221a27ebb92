/*
 * test_config.c - config/: YAML -> struct ks_config, every error class with its file:line:column,
 * the embedded default and the lookups (docs/architecture.md section 4).
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aws/arn.h"
#include "common/util.h"
#include "config/compare.h"
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
    cr_assert_eq(r->credentials.source, KS_AWS_CRED_NONE);
    cr_assert_null(r->region);

    r = &cfg->kms_relationships[1];
    cr_assert_str_eq(r->name, "prod");
    cr_assert_eq(r->type, KS_KMS_AWS);
    cr_assert_null(r->key_file);
    cr_assert_str_eq(r->region, "us-west-2");
    cr_assert_str_eq(r->endpoint, "https://kms.example.test:4443");
    cr_assert_eq(r->credentials.source, KS_AWS_CRED_STATIC);
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
    cr_assert_eq(r->credentials.source, KS_AWS_CRED_PROFILE);
    cr_assert_str_eq(r->credentials.profile, "keystore");
    cr_assert_eq(r->kms.kind, KS_KMS_MR_KEY_ARN);
    cr_assert_str_eq(r->kms.arn, MRK_ARN);
    cr_assert_eq(r->n_grant_tokens, 0);

    r = &cfg->kms_relationships[3];
    cr_assert_str_eq(r->name, "readers");
    cr_assert_str_eq(r->region, "eu-west-1");
    cr_assert_eq(r->credentials.source, KS_AWS_CRED_IMDS);
    cr_assert_eq(r->kms.kind, KS_KMS_MR_DISCOVERY);
    cr_assert_str_eq(r->kms.region, "eu-west-1");
    cr_assert_null(r->kms.arn);

    r = &cfg->kms_relationships[4];
    cr_assert_str_eq(r->name, "anywhere");
    cr_assert_eq(r->credentials.source, KS_AWS_CRED_CONTAINER);
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
    cr_assert_eq(k->storage.credentials.source, KS_AWS_CRED_NONE);
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
    cr_assert_eq(k->storage.credentials.source, KS_AWS_CRED_PROFILE);
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
    cr_assert_eq(ks_hex_decode(HASH_A, hash_a, sizeof hash_a), 0);
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

/* ---------------------------------------------------------------------------------------- */
/* Valid files                                                                              */
/* ---------------------------------------------------------------------------------------- */

Test(config, full_file_every_field)
{
    struct ks_config *cfg = load_ok(full_yaml);
    cr_assert_str_eq(cfg->source_name, "t.yaml");
    check_full(cfg);
    ks_config_free(cfg);
}

Test(config, defaults)
{
    struct ks_config *cfg = load_ok(MINIMAL);
    cr_assert_str_eq(cfg->listen_host, "127.0.0.1");
    cr_assert_eq(cfg->listen_port, 8080);
    cr_assert_eq(cfg->server.threads, 4);
    cr_assert_eq(cfg->server.max_body_bytes, 65536);
    cr_assert_eq(cfg->server.max_json_depth, 16);
    cr_assert_eq(cfg->server.connection_timeout_seconds, 30);
    cr_assert_eq(cfg->cache.capacity, 1000);
    cr_assert_eq(cfg->cache.ttl_seconds, 600);
    cr_assert_eq(cfg->cache.grace_period_seconds, 10);
    cr_assert_eq(cfg->cache.grace_interval_seconds, 1);
    cr_assert_eq(cfg->cache.fan_out, 20);
    cr_assert_eq(cfg->cache.in_flight_ttl_seconds, 10);
    cr_assert_eq(cfg->kms_relationships[0].has_kms_configuration, 0);
    cr_assert_str_eq(cfg->tenants[0].partition, "tenant:app1");
    ks_config_free(cfg);
}

Test(config, partial_sections_keep_other_defaults)
{
    struct ks_config *cfg = load_ok("server: {threads: 256}\n"
                                    "cache: {capacity: 1, ttl_seconds: 11}\n" MINIMAL);
    cr_assert_eq(cfg->server.threads, 256);
    cr_assert_eq(cfg->server.max_body_bytes, 65536);
    cr_assert_eq(cfg->cache.capacity, 1);
    cr_assert_eq(cfg->cache.ttl_seconds, 11);
    cr_assert_eq(cfg->cache.fan_out, 20);
    ks_config_free(cfg);
}

Test(config, sections_in_any_order)
{
    struct ks_config *cfg = load_ok(TENANT_APP1 KS_DEFAULT REL_LOCAL);
    cr_assert_eq(cfg->tenants[0].n_key_stores, 1);
    cr_assert_eq(cfg->key_stores[0].kms_relationship_index, 0);
    ks_config_free(cfg);
}

Test(config, listen_forms)
{
    static const struct {
        const char *line, *host;
        uint16_t port;
    } cases[] = {
        {"listen: \"[::1]:9000\"\n", "::1", 9000},
        {"listen: localhost:0\n", "localhost", 0},
        {"listen: keystore.internal.example:65535\n", "keystore.internal.example", 65535},
        {"listen: 10.1.2.3:80\n", "10.1.2.3", 80},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[1024];
        struct ks_config *cfg;
        snprintf(yaml, sizeof yaml, "%s" MINIMAL, cases[i].line);
        cfg = load_ok(yaml);
        cr_assert_str_eq(cfg->listen_host, cases[i].host);
        cr_assert_eq(cfg->listen_port, cases[i].port);
        ks_config_free(cfg);
    }
}

Test(config, grant_tokens_at_the_limits)
{
    char *yaml, *big = malloc(8193);
    struct ks_config *cfg;
    size_t len;

    memset(big, 'g', 8192);
    big[8192] = '\0';
    len = strlen(big) * 10 + 4096;
    yaml = malloc(len);
    snprintf(yaml, len,
             REL_AWS("{discovery: {}}", "    grant_tokens: [%s, %s, %s, %s, %s, %s, %s, %s, %s, "
                                        "%s]\n") KS_PROD TENANT_PROD,
             big, big, big, big, big, big, big, big, big, big);
    cfg = load_ok(yaml);
    cr_assert_eq(cfg->kms_relationships[0].n_grant_tokens, 10);
    cr_assert_eq(strlen(cfg->kms_relationships[0].grant_tokens[9]), 8192);
    ks_config_free(cfg);
    free(yaml);
    free(big);
}

/* timeout_ms and max_attempts of an aws relationship and of DynamoDB storage: absent is 0
 * (the transport's defaults), bounds checked, rejected on local KMS and SQLite storage. */
Test(config, aws_timeout_and_attempts)
{
    struct ks_config *cfg = load_ok(REL_AWS("{discovery: {}}", "") KS_PROD TENANT_PROD);
    cr_assert_eq(cfg->kms_relationships[0].timeout_ms, 0);
    cr_assert_eq(cfg->kms_relationships[0].max_attempts, 0);
    ks_config_free(cfg);

    cfg = load_ok(REL_AWS(
        "{discovery: {}}",
        "    timeout_ms: 250\n    max_attempts: 2\n") "key_stores:\n"
                                                      "  - name: default\n"
                                                      "    logical_key_store_name: default\n"
                                                      "    kms_relationship: prod\n"
                                                      "    storage: {type: dynamodb, table: Tbl, "
                                                      "region: us-west-2,\n"
                                                      "              credentials: {source: env}, "
                                                      "timeout_ms: 60000, max_attempts: "
                                                      "10}\n" TENANT_PROD);
    cr_assert_eq(cfg->kms_relationships[0].timeout_ms, 250);
    cr_assert_eq(cfg->kms_relationships[0].max_attempts, 2);
    cr_assert_eq(cfg->key_stores[0].storage.timeout_ms, 60000);
    cr_assert_eq(cfg->key_stores[0].storage.max_attempts, 10);
    ks_config_free(cfg);

    expect_one_error(REL_AWS("{discovery: {}}", "    timeout_ms: 99\n") KS_PROD TENANT_PROD,
                     "kms_relationships[0].timeout_ms is \"99\", out of range; expected an integer "
                     "in 100..60000");
    expect_one_error(
        REL_AWS("{discovery: {}}", "    max_attempts: 0\n") KS_PROD TENANT_PROD,
        "kms_relationships[0].max_attempts is \"0\", out of range; expected an integer in 1..10");
    expect_one_error(
        REL_AWS("{discovery: {}}", "") "key_stores:\n"
                                       "  - name: default\n"
                                       "    logical_key_store_name: default\n"
                                       "    kms_relationship: prod\n"
                                       "    storage: {type: dynamodb, table: Tbl, "
                                       "region: us-west-2,\n"
                                       "              credentials: {source: env}, "
                                       "max_attempts: 11}\n" TENANT_PROD,
        "key_stores[0].storage.max_attempts is \"11\", out of range; expected an integer in 1..10");
    expect_one_error(REL_AWS("{discovery: {}}", "") "key_stores:\n"
                                                    "  - name: default\n"
                                                    "    logical_key_store_name: default\n"
                                                    "    kms_relationship: prod\n"
                                                    "    storage: {type: sqlite, path: /tmp/db, "
                                                    "timeout_ms: 500}\n" TENANT_PROD,
                     "timeout_ms");
    expect_one_error("kms_relationships:\n"
                     "  - name: local\n"
                     "    type: local\n"
                     "    key_file: /tmp/k\n"
                     "    max_attempts: 2\n" KS_DEFAULT TENANT_APP1,
                     "max_attempts");
}

Test(config, real_file)
{
    char path[] = "/tmp/ks-test-config-XXXXXX";
    struct ks_config *cfg = NULL;
    char *errors = NULL;
    int fd = mkstemp(path);
    FILE *f;

    cr_assert_geq(fd, 0);
    f = fdopen(fd, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(full_yaml, 1, strlen(full_yaml), f), strlen(full_yaml));
    fclose(f);
    cr_assert_eq(ks_config_load_file(path, &cfg, &errors), KS_OK, "%s", errors ? errors : "");
    cr_assert_str_eq(cfg->source_name, path);
    check_full(cfg);
    ks_config_free(cfg);

    /* Errors in a file name the file. */
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("listen: 1.2.3.4\n" MINIMAL, f);
    fclose(f);
    cr_assert_eq(ks_config_load_file(path, &cfg, &errors), KS_E_CONFIG);
    cr_assert_null(cfg);
    cr_assert(strncmp(errors, path, strlen(path)) == 0, "%s", errors);
    cr_assert(strncmp(errors + strlen(path), ":1:9: listen", 12) == 0, "%s", errors);
    free(errors);
    unlink(path);

    cr_assert_eq(ks_config_load_file(path, &cfg, &errors), KS_E_CONFIG);
    cr_assert_null(cfg);
    assert_contains(errors, "cannot open the file (No such file or directory)");
    free(errors);
}

Test(config, example_files_load)
{
    /* KS_SOURCE_DIR: the repository root, passed by the Makefile (runs from any directory). */
    static const char *const files[] = {KS_SOURCE_DIR "/config/examples/full.yaml",
                                        KS_SOURCE_DIR "/config/examples/default.yaml"};
    for (size_t i = 0; i < 2; i++) {
        struct ks_config *cfg = NULL;
        char *errors = NULL;
        cr_assert_eq(ks_config_load_file(files[i], &cfg, &errors), KS_OK, "%s",
                     errors ? errors : "");
        ks_config_free(cfg);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Error classes                                                                            */
/* ---------------------------------------------------------------------------------------- */

Test(config, unknown_key)
{
    expect_one_error(MINIMAL "listn: 1.2.3.4:5\n",
                     "t.yaml:16:1: top level: unknown key \"listn\"; expected one of listen, "
                     "server, kms_relationships, key_stores, cache, tenants, audit\n");
    expect_one_error("kms_relationships:\n"
                     "  - name: local\n"
                     "    type: local\n"
                     "    keyfile: /tmp/k\n"
                     "    key_file: /tmp/k\n" KS_DEFAULT TENANT_APP1,
                     "t.yaml:4:5: kms_relationships[0]: unknown key \"keyfile\"; expected one of "
                     "name, type, key_file, kms_configuration, region, endpoint, credentials, "
                     "grant_tokens, timeout_ms, max_attempts\n");
    expect_one_error("cache: {size: 3}\n" MINIMAL, "t.yaml:1:9: cache: unknown key \"size\"");
    expect_one_error(REL_AWS("{discovery: {x: 1}}", "") KS_PROD TENANT_PROD,
                     "kms_relationships[0].kms_configuration.discovery: unknown key \"x\"; "
                     "expected an empty mapping {}");
}

Test(config, key_not_valid_for_variant)
{
    expect_one_error("kms_relationships:\n"
                     "  - name: local\n"
                     "    type: local\n"
                     "    region: us-west-2\n"
                     "    key_file: /tmp/k\n" KS_DEFAULT TENANT_APP1,
                     "t.yaml:4:5: kms_relationships[0]: key \"region\" is not valid for a local "
                     "relationship; expected only name, type, key_file, kms_configuration\n");
    expect_one_error(REL_LOCAL
                     "key_stores:\n"
                     "  - name: default\n"
                     "    logical_key_store_name: default\n"
                     "    kms_relationship: local\n"
                     "    storage: {type: sqlite, path: /tmp/db, table: T12}\n" TENANT_APP1,
                     "t.yaml:9:44: key_stores[0].storage: key \"table\" is not valid for sqlite "
                     "storage; expected only type, path\n");
    expect_one_error("kms_relationships:\n"
                     "  - name: prod\n"
                     "    type: aws\n"
                     "    region: us-west-2\n"
                     "    credentials: {source: env, profile: x}\n"
                     "    kms_configuration: {discovery: {}}\n" KS_PROD TENANT_PROD,
                     "t.yaml:5:32: kms_relationships[0].credentials: key \"profile\" is not valid "
                     "for source env; expected only source\n");
}

Test(config, wrong_types)
{
    char *errors;

    expect_one_error("cache: {capacity: [1]}\n" MINIMAL,
                     "t.yaml:1:19: cache.capacity is a list; expected an integer in "
                     "0..2147483647\n");
    expect_one_error("cache: {capacity: \"10\"}\n" MINIMAL,
                     "t.yaml:1:19: cache.capacity is the string \"10\"; expected an integer");
    expect_one_error("cache: {capacity: 1.5}\n" MINIMAL,
                     "t.yaml:1:19: cache.capacity is \"1.5\"; expected an integer in "
                     "0..2147483647\n");
    expect_one_error("server: {threads: four}\n" MINIMAL,
                     "t.yaml:1:19: server.threads is \"four\"; expected an integer in 1..256\n");
    expect_one_error("listen: {host: x}\n" MINIMAL,
                     "t.yaml:1:9: listen is a mapping; expected host:port");
    expect_one_error("server: [1]\n" MINIMAL, "t.yaml:1:9: server is a list; expected a mapping\n");
    expect_one_error("cache:\n" MINIMAL, "cache is empty; expected a mapping\n");
    expect_one_error(REL_LOCAL "key_stores: {name: x}\n" TENANT_APP1,
                     "t.yaml:5:13: key_stores is a mapping; expected a list of key stores\n");
    errors = load_errors(REL_LOCAL "key_stores:\n"
                                   "  - name: [default]\n"
                                   "    logical_key_store_name: default\n"
                                   "    kms_relationship: local\n"
                                   "    storage: {type: sqlite, path: /tmp/db}\n" TENANT_APP1);
    cr_assert_str_eq(errors, "t.yaml:6:11: key_stores[0].name is a list; expected a name of 1..64 "
                             "characters from A-Z a-z 0-9 _ . -\n"
                             "t.yaml:14:18: tenants[0].key_stores[0] \"default\" names no key "
                             "store; expected one of the names under key_stores\n");
    free(errors);
}

Test(config, missing_required_keys)
{
    char *errors = load_errors("kms_relationships:\n"
                               "  - name: local\n"
                               "    key_file: /tmp/k\n" KS_DEFAULT);
    cr_assert_str_eq(errors, "t.yaml:1:1: top level: missing required key \"tenants\"; expected "
                             "a list of tenants\n"
                             "t.yaml:2:5: kms_relationships[0]: missing required key \"type\"; "
                             "expected local or aws\n");
    free(errors);
    expect_one_error(REL_AWS("{discovery: {}}", "") KS_PROD "tenants:\n"
                                                            "  - name: app1\n"
                                                            "    role: reader\n"
                                                            "    key_stores: [default]\n"
                                                            "    kms_relationships: [prod]\n",
                     "t.yaml:13:5: tenants[0]: missing required key \"token_sha256\"");
    expect_one_error("kms_relationships:\n"
                     "  - name: prod\n"
                     "    type: aws\n"
                     "    region: us-west-2\n"
                     "    credentials: {source: env}\n" KS_PROD TENANT_PROD,
                     "t.yaml:2:5: kms_relationships[0]: missing required key "
                     "\"kms_configuration\"");
    expect_one_error("kms_relationships:\n"
                     "  - name: prod\n"
                     "    type: aws\n"
                     "    region: us-west-2\n"
                     "    credentials: {source: static, access_key_id: AKID}\n"
                     "    kms_configuration: {discovery: {}}\n" KS_PROD TENANT_PROD,
                     "t.yaml:5:18: kms_relationships[0].credentials: missing required key "
                     "\"secret_access_key\"");
    expect_one_error(
        REL_LOCAL
        "key_stores:\n"
        "  - name: default\n"
        "    logical_key_store_name: default\n"
        "    kms_relationship: local\n"
        "    storage: {type: dynamodb, table: KeyStore, credentials: {source: env}}\n" TENANT_APP1,
        "t.yaml:9:14: key_stores[0].storage: missing required key \"region\"");
}

Test(config, empty_lists_and_bad_enums)
{
    expect_one_error(REL_LOCAL KS_DEFAULT "tenants: []\n",
                     "t.yaml:10:10: tenants is empty; expected a non-empty list of tenants\n");
    expect_one_error(
        REL_LOCAL KS_DEFAULT "tenants:\n"
                             "  - name: app1\n"
                             "    token_sha256: \"" HASH_A "\"\n"
                             "    role: owner\n"
                             "    key_stores: [default]\n"
                             "    kms_relationships: [local]\n",
        "t.yaml:13:11: tenants[0].role is \"owner\"; expected reader, admin, keyring or monitor\n");
    expect_one_error("kms_relationships:\n"
                     "  - name: local\n"
                     "    type: gcp\n" KS_DEFAULT TENANT_APP1,
                     "t.yaml:3:11: kms_relationships[0].type is \"gcp\"; expected local or aws\n");
    expect_one_error("kms_relationships:\n"
                     "  - name: prod\n"
                     "    type: aws\n"
                     "    region: us-west-2\n"
                     "    credentials: {source: vault}\n"
                     "    kms_configuration: {discovery: {}}\n" KS_PROD TENANT_PROD,
                     "t.yaml:5:27: kms_relationships[0].credentials.source is \"vault\"; expected "
                     "env, profile, container, imds or static\n");
    expect_one_error(REL_LOCAL "key_stores:\n"
                               "  - name: default\n"
                               "    logical_key_store_name: default\n"
                               "    kms_relationship: local\n"
                               "    storage: {type: postgres}\n" TENANT_APP1,
                     "t.yaml:9:21: key_stores[0].storage.type is \"postgres\"; expected sqlite or "
                     "dynamodb\n");
}

Test(config, out_of_range_numbers)
{
    static const struct {
        const char *yaml, *error;
    } cases[] = {
        {"server: {threads: 0}\n", "server.threads is \"0\", out of range; expected an integer "
                                   "in 1..256"},
        {"server: {threads: 257}\n", "expected an integer in 1..256"},
        {"server: {threads: -3}\n", "server.threads is \"-3\", out of range"},
        {"server: {max_body_bytes: 1023}\n", "expected an integer in 1024..16777216"},
        {"server: {max_body_bytes: 16777217}\n", "expected an integer in 1024..16777216"},
        {"server: {max_json_depth: 1}\n", "expected an integer in 2..64"},
        {"server: {max_json_depth: 65}\n", "expected an integer in 2..64"},
        {"server: {connection_timeout_seconds: 0}\n", "expected an integer in 1..3600"},
        {"server: {connection_timeout_seconds: 3601}\n", "expected an integer in 1..3600"},
        {"cache: {capacity: -1}\n", "cache.capacity is \"-1\", out of range"},
        {"cache: {fan_out: 0}\n", "cache.fan_out is \"0\", out of range"},
        {"cache: {capacity: 99999999999999999999999}\n", "out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml, "%s" MINIMAL, cases[i].yaml);
        expect_one_error(yaml, cases[i].error);
    }
    /* The bounds themselves are valid. */
    ks_config_free(load_ok("server: {threads: 1, max_body_bytes: 16777216, max_json_depth: 2,\n"
                           "         connection_timeout_seconds: 3600}\n" MINIMAL));
    /* capacity 0 is the MPL's "No" cache. */
    {
        struct ks_config *cfg = load_ok("cache: {capacity: 0}\n" MINIMAL);
        cr_expect_eq(cfg->cache.capacity, 0);
        ks_config_free(cfg);
    }
}

Test(config, duplicate_names)
{
    expect_one_error(REL_LOCAL "  - name: local\n"
                               "    type: local\n"
                               "    key_file: /tmp/k2\n" KS_DEFAULT TENANT_APP1,
                     "t.yaml:5:11: kms_relationships[1].name \"local\" is already used by "
                     "kms_relationships[0] (line 2); expected a unique name\n");
    expect_one_error(REL_LOCAL KS_DEFAULT
                     "  - name: default\n"
                     "    logical_key_store_name: other\n"
                     "    kms_relationship: local\n"
                     "    storage: {type: sqlite, path: /tmp/db2}\n" TENANT_APP1,
                     "t.yaml:10:11: key_stores[1].name \"default\" is already used by "
                     "key_stores[0] (line 6); expected a unique name\n");
    expect_one_error(REL_LOCAL KS_DEFAULT
                     "  - name: second\n"
                     "    logical_key_store_name: default\n"
                     "    kms_relationship: local\n"
                     "    storage: {type: sqlite, path: /tmp/db2}\n" TENANT_APP1,
                     "t.yaml:11:29: key_stores[1].logical_key_store_name \"default\" is already "
                     "used by key_stores[0] (line 7); expected a unique logical_key_store_name\n");
    expect_one_error(REL_LOCAL KS_DEFAULT TENANT_APP1 "  - name: app1\n"
                                                      "    token_sha256: \"" HASH_B "\"\n"
                                                      "    role: admin\n"
                                                      "    key_stores: [default]\n"
                                                      "    kms_relationships: [local]\n",
                     "t.yaml:16:11: tenants[1].name \"app1\" is already used by tenants[0] "
                     "(line 11); expected a unique name\n");
    /* An invalid name is still what references resolve against: one error, not three. */
    expect_one_error("kms_relationships:\n"
                     "  - name: \"loc al\"\n"
                     "    type: local\n"
                     "    key_file: /tmp/k\n"
                     "key_stores:\n"
                     "  - name: default\n"
                     "    logical_key_store_name: default\n"
                     "    kms_relationship: loc al\n"
                     "    storage: {type: sqlite, path: /tmp/db}\n"
                     "tenants:\n"
                     "  - name: app1\n"
                     "    token_sha256: \"" HASH_A "\"\n"
                     "    role: reader\n"
                     "    key_stores: [default]\n"
                     "    kms_relationships: [loc al]\n",
                     "t.yaml:2:11: kms_relationships[0].name \"loc al\" is not a valid name; "
                     "expected 1..64 characters from A-Z a-z 0-9 _ . -\n");
}

Test(config, duplicate_yaml_keys)
{
    expect_one_error("cache:\n"
                     "  ttl_seconds: 100\n"
                     "  ttl_seconds: 200\n" MINIMAL,
                     "t.yaml:3:3: cache: duplicate key \"ttl_seconds\" (first at line 2); "
                     "expected each key once\n");
    expect_one_error(MINIMAL "tenants: []\n",
                     "t.yaml:16:1: top level: duplicate key \"tenants\" (first at line 10)");
}

Test(config, dangling_references)
{
    expect_one_error(REL_LOCAL KS_DEFAULT "tenants:\n"
                                          "  - name: app1\n"
                                          "    token_sha256: \"" HASH_A "\"\n"
                                          "    role: reader\n"
                                          "    key_stores: [default, archive]\n"
                                          "    kms_relationships: [local]\n",
                     "t.yaml:14:27: tenants[0].key_stores[1] \"archive\" names no key store; "
                     "expected one of the names under key_stores\n");
    expect_one_error(REL_LOCAL KS_DEFAULT "tenants:\n"
                                          "  - name: app1\n"
                                          "    token_sha256: \"" HASH_A "\"\n"
                                          "    role: reader\n"
                                          "    key_stores: [default]\n"
                                          "    kms_relationships: [prod]\n",
                     "t.yaml:15:25: tenants[0].kms_relationships[0] \"prod\" names no KMS "
                     "relationship; expected one of the names under kms_relationships\n");
    expect_one_error(REL_LOCAL "key_stores:\n"
                               "  - name: default\n"
                               "    logical_key_store_name: default\n"
                               "    kms_relationship: remote\n"
                               "    storage: {type: sqlite, path: /tmp/db}\n" TENANT_APP1,
                     "t.yaml:8:23: key_stores[0].kms_relationship \"remote\" names no KMS "
                     "relationship; expected one of the names under kms_relationships\n");
    expect_one_error(REL_LOCAL KS_DEFAULT "tenants:\n"
                                          "  - name: app1\n"
                                          "    token_sha256: \"" HASH_A "\"\n"
                                          "    role: reader\n"
                                          "    key_stores: [default, default]\n"
                                          "    kms_relationships: [local]\n",
                     "t.yaml:14:27: tenants[0].key_stores[1] \"default\" is listed twice");
}

Test(config, invalid_arns)
{
    static const struct {
        const char *kms, *error;
    } cases[] = {
        {"{kms_key_arn: \"arn:aws:kms:us-west-2:111122223333\"}",
         "not exactly 6 ':'-separated parts"},
        {"{kms_key_arn: \"arn:aws:kms:us-west-2:111122223333:key/a:b\"}",
         "not exactly 6 ':'-separated parts"},
        {"{kms_key_arn: \"urn:aws:kms:us-west-2:111122223333:key/abc\"}",
         "does not start with arn:"},
        {"{kms_key_arn: \"arn::kms:us-west-2:111122223333:key/abc\"}", "empty partition"},
        {"{kms_key_arn: \"arn:aws:s3:us-west-2:111122223333:key/abc\"}", "service is not kms"},
        {"{kms_key_arn: \"arn:aws:kms::111122223333:key/abc\"}", "empty region"},
        {"{kms_key_arn: \"arn:aws:kms:us-west-2::key/abc\"}", "empty account"},
        {"{kms_key_arn: \"arn:aws:kms:us-west-2:111122223333:key/\"}",
         "resource is not key/<key id>"},
        {"{kms_key_arn: \"arn:aws:kms:us-west-2:111122223333:keys/abc\"}",
         "resource is not key/<key id>"},
        {"{kms_mr_key_arn: \"arn:aws:kms:us-west-2:111122223333:abc\"}",
         "kms_relationships[0].kms_configuration.kms_mr_key_arn \"arn:aws:kms:us-west-2:"
         "111122223333:abc\" is not a valid KMS key ARN (resource is not key/<key id>); expected "
         "arn:<partition>:kms:<region>:<account>:key/<key id>\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[2048];
        snprintf(yaml, sizeof yaml, REL_AWS("%s", "") KS_PROD TENANT_PROD, cases[i].kms);
        expect_one_error(yaml, cases[i].error);
    }
}

Test(config, arn_length_limit)
{
    size_t len = 2048 + 4096, prefix = strlen("arn:aws:kms:us-west-2:111122223333:key/");
    char *arn = malloc(2050), *yaml = malloc(len);
    memcpy(arn, "arn:aws:kms:us-west-2:111122223333:key/", prefix);
    memset(arn + prefix, 'a', 2048 - prefix);
    arn[2048] = '\0';
    snprintf(yaml, len, REL_AWS("{kms_key_arn: %s}", "") KS_PROD TENANT_PROD, arn);
    ks_config_free(load_ok(yaml));
    arn[2048] = 'a';
    arn[2049] = '\0';
    snprintf(yaml, len, REL_AWS("{kms_key_arn: %s}", "") KS_PROD TENANT_PROD, arn);
    expect_one_error(yaml, "(not 1..2048 characters long)");
    free(arn);
    free(yaml);
}

Test(config, alias_arn)
{
    expect_one_error(
        REL_AWS("{kms_key_arn: \"arn:aws:kms:us-west-2:111122223333:alias/my-key\"}", "")
            KS_PROD TENANT_PROD,
        "t.yaml:6:38: kms_relationships[0].kms_configuration.kms_key_arn: KMS alias ARN not "
        "allowed; expected a key ARN\n");
}

Test(config, local_relationship_kms_configuration)
{
    expect_one_error("kms_relationships:\n"
                     "  - name: local\n"
                     "    type: local\n"
                     "    key_file: /tmp/k\n"
                     "    kms_configuration: {kms_key_arn: \"" AWS_ARN
                     "\"}\n" KS_DEFAULT TENANT_APP1,
                     "t.yaml:5:38: kms_relationships[0].kms_configuration.kms_key_arn \"" AWS_ARN
                     "\" is not a local KMS key ARN; expected "
                     "arn:aws:kms:local:000000000000:key/<lowercase UUID>\n");
    expect_one_error("kms_relationships:\n"
                     "  - name: local\n"
                     "    type: local\n"
                     "    key_file: /tmp/k\n"
                     "    kms_configuration: {kms_key_arn: \"arn:aws:kms:local:000000000000:key/"
                     "0B0C8A54-4F1E-4C55-9D43-5A2F3C1B7E21\"}\n" KS_DEFAULT TENANT_APP1,
                     "is not a local KMS key ARN");
    expect_one_error("kms_relationships:\n"
                     "  - name: local\n"
                     "    type: local\n"
                     "    key_file: /tmp/k\n"
                     "    kms_configuration: {discovery: {}}\n" KS_DEFAULT TENANT_APP1,
                     "t.yaml:5:25: kms_relationships[0].kms_configuration.discovery is not "
                     "supported by a local relationship; expected kms_key_arn\n");
}

Test(config, kms_configuration_union)
{
    expect_one_error(REL_AWS("{kms_key_arn: \"" AWS_ARN "\", discovery: {}}", "")
                         KS_PROD TENANT_PROD,
                     "kms_relationships[0].kms_configuration has both kms_key_arn and discovery; "
                     "expected exactly one of kms_key_arn, kms_mr_key_arn, discovery, "
                     "mr_discovery\n");
    expect_one_error(REL_AWS("{}", "") KS_PROD TENANT_PROD,
                     "t.yaml:6:24: kms_relationships[0].kms_configuration has no KMS "
                     "configuration; expected exactly one of");
    expect_one_error(REL_AWS("{mr_discovery: {}}", "") KS_PROD TENANT_PROD,
                     "kms_relationships[0].kms_configuration.mr_discovery: missing required key "
                     "\"region\"");
    expect_one_error(REL_AWS("{mr_discovery: {region: \"US West\"}}", "") KS_PROD TENANT_PROD,
                     "kms_relationships[0].kms_configuration.mr_discovery.region \"US West\" is "
                     "not a valid AWS region");
    expect_one_error(REL_AWS("kms_key_arn", "") KS_PROD TENANT_PROD,
                     "kms_relationships[0].kms_configuration is a scalar; expected a mapping");
    ks_config_free(load_ok(REL_AWS("{discovery: }", "") KS_PROD TENANT_PROD));
}

Test(config, endpoints)
{
    expect_one_error(REL_AWS("{discovery: {}}", "    endpoint: kms.example.com\n")
                         KS_PROD TENANT_PROD,
                     "t.yaml:7:15: kms_relationships[0].endpoint \"kms.example.com\" is not a URL; "
                     "expected an http:// or https:// URL with a host\n");
    expect_one_error(REL_AWS("{discovery: {}}", "    endpoint: \"https://\"\n") KS_PROD TENANT_PROD,
                     "is not a URL");
    char *errors = load_errors(
        REL_LOCAL "key_stores:\n"
                  "  - name: default\n"
                  "    logical_key_store_name: default\n"
                  "    kms_relationship: local\n"
                  "    storage: {type: dynamodb, table: ab, region: us-west-2,\n"
                  "              endpoint: ftp://x, credentials: {source: env}}\n" TENANT_APP1);
    cr_assert_str_eq(errors, "t.yaml:9:38: key_stores[0].storage.table \"ab\" is not a valid "
                             "DynamoDB table name; expected 3..255 characters from A-Z a-z 0-9 _ "
                             ". -\n"
                             "t.yaml:10:25: key_stores[0].storage.endpoint \"ftp://x\" is not a "
                             "URL; expected an http:// or https:// URL with a host\n");
    free(errors);
}

Test(config, cache_inconsistency)
{
    char *errors = load_errors("cache: {grace_period_seconds: 5, grace_interval_seconds: 6,\n"
                               "        in_flight_ttl_seconds: 5}\n" MINIMAL);
    cr_assert_str_eq(errors, "t.yaml:1:58: cache.grace_interval_seconds (6) is greater than "
                             "cache.grace_period_seconds (5); expected grace_interval_seconds <= "
                             "grace_period_seconds\n"
                             "t.yaml:1:58: cache.grace_interval_seconds (6) is greater than "
                             "cache.in_flight_ttl_seconds (5); expected grace_interval_seconds <= "
                             "in_flight_ttl_seconds\n");
    free(errors);
    expect_one_error("cache: {ttl_seconds: 10}\n" MINIMAL,
                     "t.yaml:1:22: cache.ttl_seconds (10) is not greater than "
                     "cache.grace_period_seconds (10); expected ttl_seconds > "
                     "grace_period_seconds\n");
    expect_one_error("cache: {in_flight_ttl_seconds: 11}\n" MINIMAL,
                     "cache.in_flight_ttl_seconds (11) is greater than cache.grace_period_seconds "
                     "(10); expected in_flight_ttl_seconds <= grace_period_seconds\n");
    expect_one_error("cache: {in_flight_ttl_seconds: 2, grace_interval_seconds: 3}\n" MINIMAL,
                     "cache.grace_interval_seconds (3) is greater than "
                     "cache.in_flight_ttl_seconds (2); expected grace_interval_seconds <= "
                     "in_flight_ttl_seconds\n");
    /* A default on one side: the error sits at the setting that was written. */
    expect_one_error("cache:\n"
                     "  grace_period_seconds: 700\n"
                     "  in_flight_ttl_seconds: 700\n" MINIMAL,
                     "t.yaml:2:25: cache.ttl_seconds (600) is not greater than");
}

Test(config, grant_token_limits)
{
    char *yaml, *big = malloc(8194);
    char *errors;
    size_t len;

    expect_one_error(
        REL_AWS("{discovery: {}}", "    grant_tokens: [a, b, c, d, e, f, g, h, i, j, k]\n")
            KS_PROD TENANT_PROD,
        "t.yaml:7:19: kms_relationships[0].grant_tokens has 11 grant tokens; "
        "expected at most 10\n");
    expect_one_error(REL_AWS("{discovery: {}}", "    grant_tokens: [a, \"\"]\n")
                         KS_PROD TENANT_PROD,
                     "t.yaml:7:23: kms_relationships[0].grant_tokens[1] is empty; expected a "
                     "grant token of 1..8192 characters\n");
    expect_one_error(REL_AWS("{discovery: {}}", "    grant_tokens: one\n") KS_PROD TENANT_PROD,
                     "grant_tokens is a scalar; expected a list of at most 10 grant tokens");

    memset(big, 'g', 8193);
    big[8193] = '\0';
    len = 8193 + 4096;
    yaml = malloc(len);
    snprintf(yaml, len,
             REL_AWS("{discovery: {}}", "    grant_tokens: [ok, %s]\n") KS_PROD TENANT_PROD, big);
    errors = load_errors(yaml);
    cr_assert_str_eq(errors, "t.yaml:7:24: kms_relationships[0].grant_tokens[1] is 8193 "
                             "characters long; expected 1..8192 characters\n");
    free(errors);
    free(yaml);
    free(big);
}

Test(config, bad_token_hash_never_echoed)
{
    static const char *const bad[] = {
        "\"" HASH_A "0\"",                                                      /* 65 */
        "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0\"",  /* 63 */
        "\"zz86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"", /* not hex */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[2048], *errors;
        snprintf(yaml, sizeof yaml,
                 REL_LOCAL KS_DEFAULT "tenants:\n"
                                      "  - name: app1\n"
                                      "    token_sha256: %s\n"
                                      "    role: reader\n"
                                      "    key_stores: [default]\n"
                                      "    kms_relationships: [local]\n",
                 bad[i]);
        errors = load_errors(yaml);
        cr_assert_str_eq(errors, "t.yaml:12:19: tenants[0].token_sha256 is not 64 hexadecimal "
                                 "digits; expected the SHA-256 of the tenant's token as 64 "
                                 "hexadecimal digits\n");
        free(errors);
    }
}

Test(config, duplicate_token_hash)
{
    char *errors = load_errors(REL_LOCAL KS_DEFAULT TENANT_APP1 "  - name: app2\n"
                                                                "    token_sha256: \"" HASH_A "\"\n"
                                                                "    role: admin\n"
                                                                "    key_stores: [default]\n"
                                                                "    kms_relationships: [local]\n");
    cr_assert_str_eq(errors, "t.yaml:17:19: tenants[1].token_sha256 is the same as that of "
                             "tenants[0]; expected a different token for each tenant\n");
    cr_assert_null(strstr(errors, "9f86d0"));
    free(errors);
}

Test(config, secrets_never_echoed)
{
    char *errors = load_errors("kms_relationships:\n"
                               "  - name: prod\n"
                               "    type: aws\n"
                               "    region: us-west-2\n"
                               "    credentials: {source: static, access_key_id: AKIDSECRET1,\n"
                               "                  secret_access_key: [SECRETVALUE2],\n"
                               "                  session_token: \"\"}\n"
                               "    kms_configuration: {discovery: {}}\n"
                               "    grant_tokens: [GRANTSECRET3, \"\"]\n"
                               "    colour: red\n" KS_PROD TENANT_PROD);
    cr_assert_null(strstr(errors, "SECRET"), "%s", errors);
    assert_contains(errors, "t.yaml:6:38: kms_relationships[0].credentials.secret_access_key is "
                            "a list; expected a secret access key\n");
    assert_contains(errors, "t.yaml:7:34: kms_relationships[0].credentials.session_token is "
                            "empty; expected a session token\n");
    assert_contains(errors, "t.yaml:10:5: kms_relationships[0]: unknown key \"colour\"");
    cr_assert_eq(count_lines(errors), 4, "%s", errors);
    free(errors);
}

Test(config, bad_listen)
{
    static const struct {
        const char *line, *error;
    } cases[] = {
        {"listen: 127.0.0.1\n", "t.yaml:1:9: listen \"127.0.0.1\" has no :port; expected "
                                "host:port with an IPv4 address, a host name or a quoted "
                                "\"[IPv6]:port\", port 0..65535\n"},
        {"listen: 127.0.0.1:70000\n", "has a port that is not a number in 0..65535"},
        {"listen: 127.0.0.1:http\n", "has a port that is not a number in 0..65535"},
        {"listen: \"127.0.0.1:\"\n", "has a port that is not a number in 0..65535"},
        {"listen: \":8080\"\n", "has no host"},
        {"listen: 300.1.2.3:8080\n", "has an invalid IPv4 address"},
        {"listen: bad_host:8080\n", "has an invalid host name"},
        {"listen: -bad.example:8080\n", "has an invalid host name"},
        {"listen: \"::1:8080\"\n", "has an IPv6 address without brackets"},
        {"listen: \"[::1]\"\n", "has no :port after the IPv6 address"},
        {"listen: \"[::g]:80\"\n", "has an invalid IPv6 address"},
        {"listen: \"[10.0.0.1]:80\"\n", "has brackets around something that is not an IPv6"},
        {"listen: 8080\n", "\"8080\" has no :port"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml, "%s" MINIMAL, cases[i].line);
        expect_one_error(yaml, cases[i].error);
    }
}

Test(config, parse_listen_for_the_flag)
{
    struct ks_error err;
    char *host = NULL;
    uint16_t port = 0;

    cr_assert_eq(ks_config_parse_listen("[::1]:8081", &host, &port, &err), KS_OK);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 8081);
    free(host);
    cr_assert_eq(ks_config_parse_listen("nohost", &host, &port, &err), KS_E_INVALID);
    cr_assert_null(host);
    cr_assert_str_eq(err.message, "listen address has no :port; expected host:port");
}

/* ---------------------------------------------------------------------------------------- */
/* Several errors, syntax errors, odd documents                                             */
/* ---------------------------------------------------------------------------------------- */

Test(config, all_errors_reported_sorted_with_positions)
{
    char *errors = load_errors("listen: nohost\n"
                               "cache: {fan_out: 0}\n"
                               "kms_relationships:\n"
                               "  - name: local\n"
                               "    type: local\n"
                               "    key_file: /tmp/k\n"
                               "    colour: red\n"
                               "key_stores:\n"
                               "  - name: default\n"
                               "    logical_key_store_name: default\n"
                               "    kms_relationship: nope\n"
                               "    storage: {type: sqlite, path: /tmp/db}\n"
                               "tenants:\n"
                               "  - name: app1\n"
                               "    token_sha256: xyz\n"
                               "    role: superuser\n"
                               "    key_stores: [default, missing]\n"
                               "    kms_relationships: [local]\n");
    cr_assert_str_eq(
        errors,
        "t.yaml:1:9: listen \"nohost\" has no :port; expected host:port with an IPv4 address, a "
        "host name or a quoted \"[IPv6]:port\", port 0..65535\n"
        "t.yaml:2:18: cache.fan_out is \"0\", out of range; expected an integer in "
        "1..2147483647\n"
        "t.yaml:7:5: kms_relationships[0]: unknown key \"colour\"; expected one of name, type, "
        "key_file, kms_configuration, region, endpoint, credentials, grant_tokens, timeout_ms, "
        "max_attempts\n"
        "t.yaml:11:23: key_stores[0].kms_relationship \"nope\" names no KMS relationship; "
        "expected one of the names under kms_relationships\n"
        "t.yaml:15:19: tenants[0].token_sha256 is not 64 hexadecimal digits; expected the "
        "SHA-256 of the tenant's token as 64 hexadecimal digits\n"
        "t.yaml:16:11: tenants[0].role is \"superuser\"; expected reader, admin, keyring or "
        "monitor\n"
        "t.yaml:17:27: tenants[0].key_stores[1] \"missing\" names no key store; expected one of "
        "the names under key_stores\n");
    free(errors);
}

Test(config, syntax_error)
{
    char *errors = load_errors("listen: 127.0.0.1:8080\n"
                               "cache:\n"
                               "  capacity: 10\n"
                               " ttl_seconds: 20\n"
                               "tenants: [\n");
    cr_assert(strncmp(errors, "t.yaml:4:2: YAML syntax error: ", 31) == 0, "%s", errors);
    assert_contains(errors, "; expected valid YAML\n");
    cr_assert_eq(count_lines(errors), 1, "%s", errors);
    free(errors);

    errors = load_errors(MINIMAL "cache: {capacity: 10\n");
    cr_assert(strncmp(errors,
                      "t.yaml:17:1: YAML syntax error: did not find expected ',' or '}' "
                      "(while parsing a flow mapping at line 16); expected valid YAML\n",
                      200) == 0,
              "%s", errors);
    free(errors);

    errors = load_errors(MINIMAL "listen: *nowhere\n");
    assert_contains(errors, "t.yaml:16:9: YAML syntax error: found undefined alias");
    free(errors);
}

Test(config, invalid_utf8_and_nul)
{
    static const char bad_utf8[] = "listen: \"127.0.0.1:80\"\n# \xff\xfe\n";
    struct ks_config *cfg = NULL;
    char *errors = NULL;

    cr_assert_eq(ks_config_load_buffer("t.yaml", bad_utf8, sizeof bad_utf8 - 1, &cfg, &errors),
                 KS_E_CONFIG);
    cr_assert_null(cfg);
    cr_assert(strncmp(errors, "t.yaml:2:3: invalid input: ", 27) == 0, "%s", errors);
    free(errors);

    expect_one_error(REL_LOCAL "key_stores:\n"
                               "  - name: default\n"
                               "    logical_key_store_name: \"def\\0ault\"\n"
                               "    kms_relationship: local\n"
                               "    storage: {type: sqlite, path: /tmp/db}\n" TENANT_APP1,
                     "t.yaml:7:29: key_stores[0].logical_key_store_name contains a NUL "
                     "character");
}

Test(config, empty_and_non_mapping_documents)
{
    expect_one_error("", "t.yaml:1:1: the configuration is empty; expected a mapping");
    expect_one_error("# only a comment\n", "the configuration is empty");
    expect_one_error("- a\n- b\n", "t.yaml:1:1: top level is a list; expected a mapping\n");
    expect_one_error(MINIMAL "---\nlisten: 1.2.3.4:5\n",
                     "t.yaml:17:1: a second YAML document starts here; expected exactly one "
                     "document\n");
}

/* ---------------------------------------------------------------------------------------- */
/* Embedded default and lookups                                                             */
/* ---------------------------------------------------------------------------------------- */

Test(config, embedded_default)
{
    unsigned char hash[32];
    struct ks_config *cfg = NULL;
    struct ks_error err;
    const struct ks_kms_rel_config *r;
    const struct ks_key_store_config *k;
    const struct ks_tenant_config *t;

    for (size_t i = 0; i < 32; i++)
        hash[i] = (unsigned char)i;
    cr_assert_eq(ks_config_default("/var/lib/ks", "127.0.0.1", 8080, hash, LOCAL_ARN, &cfg, &err),
                 KS_OK);
    cr_assert_str_eq(cfg->listen_host, "127.0.0.1");
    cr_assert_eq(cfg->listen_port, 8080);
    cr_assert_eq(cfg->server.threads, 4);
    cr_assert_eq(cfg->server.max_body_bytes, 65536);
    cr_assert_eq(cfg->cache.capacity, 1000);
    cr_assert_eq(cfg->cache.ttl_seconds, 600);
    cr_assert_eq(cfg->n_kms_relationships, 1);
    r = &cfg->kms_relationships[0];
    cr_assert_str_eq(r->name, "local");
    cr_assert_eq(r->type, KS_KMS_LOCAL);
    cr_assert_str_eq(r->key_file, "/var/lib/ks/local-kms.keys");
    cr_assert_eq(r->has_kms_configuration, 1);
    cr_assert_eq(r->kms.kind, KS_KMS_KEY_ARN);
    cr_assert_str_eq(r->kms.arn, LOCAL_ARN);
    cr_assert_eq(cfg->n_key_stores, 1);
    k = &cfg->key_stores[0];
    cr_assert_str_eq(k->name, "default");
    cr_assert_str_eq(k->logical_key_store_name, "default");
    cr_assert_str_eq(k->kms_relationship, "local");
    cr_assert_eq(k->kms_relationship_index, 0);
    cr_assert_eq(k->storage.type, KS_STORAGE_SQLITE);
    cr_assert_str_eq(k->storage.path, "/var/lib/ks/keystore.db");
    cr_assert_eq(cfg->n_tenants, 1);
    t = &cfg->tenants[0];
    cr_assert_str_eq(t->name, "admin");
    cr_assert_eq(t->role, KS_ROLE_ADMIN);
    cr_assert_arr_eq(t->token_sha256, hash, 32);
    cr_assert_eq(t->n_key_stores, 1);
    cr_assert_eq(t->key_store_indexes[0], 0);
    cr_assert_eq(t->n_kms_relationships, 1);
    cr_assert_eq(t->kms_relationship_indexes[0], 0);
    cr_assert_str_eq(t->partition, "tenant:admin");
    ks_config_free(cfg);

    /* No ARN yet: the server resolves the key file's first key; trailing '/' is not doubled. */
    cr_assert_eq(ks_config_default("./data/", "::1", 0, hash, NULL, &cfg, &err), KS_OK);
    cr_assert_eq(cfg->kms_relationships[0].has_kms_configuration, 0);
    cr_assert_null(cfg->kms_relationships[0].kms.arn);
    cr_assert_str_eq(cfg->kms_relationships[0].key_file, "./data/local-kms.keys");
    cr_assert_str_eq(cfg->key_stores[0].storage.path, "./data/keystore.db");
    cr_assert_str_eq(cfg->listen_host, "::1");
    ks_config_free(cfg);
}

Test(config, embedded_default_refuses_bad_input)
{
    unsigned char hash[32] = {0};
    struct ks_config *cfg = (struct ks_config *)&hash;
    struct ks_error err;

    cr_assert_eq(ks_config_default("./data", "127.0.0.1", 8080, hash, AWS_ARN, &cfg, &err),
                 KS_E_INVALID);
    cr_assert_null(cfg);
    cr_assert(strstr(err.message, "not a local KMS key ARN") != NULL, "%s", err.message);
    cr_assert_eq(ks_config_default(NULL, "127.0.0.1", 8080, hash, NULL, &cfg, &err), KS_E_INVALID);
    cr_assert_eq(ks_config_default("./data", "bad host", 8080, hash, NULL, &cfg, &err),
                 KS_E_INVALID);
    cr_assert_eq(ks_config_default("./data", "127.0.0.1", 8080, NULL, NULL, &cfg, &err),
                 KS_E_INVALID);
    cr_assert_null(cfg);
}

Test(config, lookups)
{
    struct ks_config *cfg = load_ok(full_yaml);
    size_t idx = 99;

    cr_assert_eq(ks_config_key_store(cfg, "shared", &idx), &cfg->key_stores[1]);
    cr_assert_eq(idx, 1);
    cr_assert_eq(ks_config_key_store(cfg, "default", NULL), &cfg->key_stores[0]);
    cr_assert_null(ks_config_key_store(cfg, "nope", &idx));
    cr_assert_eq(idx, 1);
    cr_assert_eq(ks_config_kms_relationship(cfg, "anywhere", &idx), &cfg->kms_relationships[4]);
    cr_assert_eq(idx, 4);
    cr_assert_null(ks_config_kms_relationship(cfg, "shared", NULL));
    cr_assert_null(ks_config_key_store(NULL, "shared", NULL));
    ks_config_free(cfg);
    ks_config_free(NULL);
}

Test(config, anchors_aliases_and_crlf)
{
    struct ks_config *cfg =
        load_ok("kms_relationships:\r\n"
                "  - name: prod\r\n"
                "    type: aws\r\n"
                "    region: us-west-2\r\n"
                "    credentials: &creds {source: profile, profile: ops}\r\n"
                "    kms_configuration: {discovery: {}}\r\n"
                "key_stores:\r\n"
                "  - name: default\r\n"
                "    logical_key_store_name: default\r\n"
                "    kms_relationship: prod\r\n"
                "    storage: {type: dynamodb, table: Tbl, region: us-west-2,\r\n"
                "              credentials: *creds}\r\n" TENANT_PROD);
    cr_assert_str_eq(cfg->kms_relationships[0].credentials.profile, "ops");
    cr_assert_str_eq(cfg->key_stores[0].storage.credentials.profile, "ops");
    ks_config_free(cfg);
}

Test(config, self_referencing_alias)
{
    char *errors = load_errors(REL_AWS("{discovery: {}}", "    grant_tokens: &self [a, *self]\n")
                                   KS_PROD TENANT_PROD);
    /* The walk follows the schema, never the node graph, so a cycle is just a wrong type. */
    cr_assert_str_eq(errors, "t.yaml:7:19: kms_relationships[0].grant_tokens[1] is a list; "
                             "expected a grant token of 1..8192 characters\n");
    free(errors);
}

/* ---------------------------------------------------------------------------------------- */
/* server: limits of the HTTP front end                                                     */
/* ---------------------------------------------------------------------------------------- */

/* Each server limit: its key, its range, its default, and where it lands in the struct. */
static const struct server_limit {
    const char *key;
    uint64_t min, max, def;
} server_limits[] = {
    {"threads", 1, 256, 4},
    {"max_body_bytes", 1024, 16777216, 65536},
    {"max_json_depth", 2, 64, 16},
    {"connection_timeout_seconds", 1, 3600, 30},
    {"max_connections", 0, 1000000, 0},
    {"max_connections_per_ip", 0, 1000000, 0},
    {"header_timeout_seconds", 1, 3600, 10},
    {"max_uri_bytes", 256, 1048576, 8192},
    {"max_header_bytes", 1024, 1048576, 16384},
    {"readiness_interval_ms", 100, 3600000, 5000},
    {"readiness_timeout_ms", 100, 60000, 2000},
    {"max_keyring_body_bytes", 1024, 67108864, 4194304},
};

static uint64_t server_value(const struct ks_server_config *s, size_t i)
{
    switch (i) {
    case 0:
        return s->threads;
    case 1:
        return s->max_body_bytes;
    case 2:
        return s->max_json_depth;
    case 3:
        return s->connection_timeout_seconds;
    case 4:
        return s->max_connections;
    case 5:
        return s->max_connections_per_ip;
    case 6:
        return s->header_timeout_seconds;
    case 7:
        return s->max_uri_bytes;
    case 8:
        return s->max_header_bytes;
    case 9:
        return s->readiness_interval_ms;
    case 10:
        return s->readiness_timeout_ms;
    default:
        return s->max_keyring_body_bytes;
    }
}

#define N_SERVER_LIMITS (sizeof server_limits / sizeof server_limits[0])

Test(config, server_limit_defaults)
{
    struct ks_config *cfg = load_ok(MINIMAL);
    size_t i;
    cr_assert_eq(N_SERVER_LIMITS, 12);
    for (i = 0; i < N_SERVER_LIMITS; i++)
        cr_expect_eq(server_value(&cfg->server, i), server_limits[i].def, "%s",
                     server_limits[i].key);
    ks_config_free(cfg);
}

Test(config, server_limit_bounds_are_accepted_and_stored)
{
    size_t i, b;
    for (i = 0; i < N_SERVER_LIMITS; i++) {
        for (b = 0; b < 2; b++) {
            uint64_t v = b ? server_limits[i].max : server_limits[i].min;
            char yaml[2048];
            struct ks_config *cfg;
            snprintf(yaml, sizeof yaml, "server: {%s: %" PRIu64 "}\n" MINIMAL, server_limits[i].key,
                     v);
            cfg = load_ok(yaml);
            cr_expect_eq(server_value(&cfg->server, i), v, "%s", server_limits[i].key);
            ks_config_free(cfg);
        }
    }
}

Test(config, server_limits_out_of_range)
{
    size_t i, b;
    for (i = 0; i < N_SERVER_LIMITS; i++) {
        for (b = 0; b < 2; b++) {
            char yaml[2048], error[256], value[32];
            if (b == 0 && server_limits[i].min == 0)
                snprintf(value, sizeof value, "-1");
            else
                snprintf(value, sizeof value, "%" PRIu64,
                         b ? server_limits[i].max + 1 : server_limits[i].min - 1);
            snprintf(yaml, sizeof yaml, "server:\n  %s: %s\n" MINIMAL, server_limits[i].key, value);
            snprintf(error, sizeof error,
                     "t.yaml:2:%zu: server.%s is \"%s\", out of range; expected an integer in "
                     "%" PRIu64 "..%" PRIu64 "\n",
                     strlen(server_limits[i].key) + 5, server_limits[i].key, value,
                     server_limits[i].min, server_limits[i].max);
            char *errors = load_errors(yaml);
            cr_expect_str_eq(errors, error);
            free(errors);
        }
    }
}

Test(config, server_limits_wrong_types)
{
    expect_one_error("server: {max_connections: \"10\"}\n" MINIMAL,
                     "server.max_connections is the string \"10\"; expected an integer in "
                     "0..1000000");
    expect_one_error("server: {readiness_timeout_ms: 1.5}\n" MINIMAL,
                     "server.readiness_timeout_ms is \"1.5\"; expected an integer in 100..60000");
    expect_one_error("server: {max_uri_bytes: [1]}\n" MINIMAL,
                     "server.max_uri_bytes is a list; expected an integer in 256..1048576");
    expect_one_error("server: {max_header_byte: 2048}\n" MINIMAL,
                     "server: unknown key \"max_header_byte\"; expected one of threads, "
                     "max_body_bytes, max_json_depth, connection_timeout_seconds, "
                     "max_connections, max_connections_per_ip, header_timeout_seconds, "
                     "max_uri_bytes, max_header_bytes, readiness_interval_ms, "
                     "readiness_timeout_ms, max_keyring_body_bytes, max_in_flight_requests, tls, "
                     "unauthenticated_metrics, metrics_tenant_labels");
}

/* ---------------------------------------------------------------------------------------- */
/* One ARN parser: config/ and keystore/ (aws/arn.h) agree                                   */
/* ---------------------------------------------------------------------------------------- */

/* "arn:aws:kms:us-west-2:111122223333:key/" + fill repeated + 'a' padding: units UTF-16 code
 * units in all. Caller frees. */
static char *wide_arn(const char *fill, size_t fill_units, size_t units)
{
    static const char prefix[] = "arn:aws:kms:us-west-2:111122223333:key/";
    size_t at = sizeof prefix - 1, have = at;
    char *s = malloc(units * 4 + 1);
    cr_assert_not_null(s);
    memcpy(s, prefix, at);
    for (; have + fill_units <= units; have += fill_units, at += strlen(fill))
        memcpy(s + at, fill, strlen(fill));
    for (; have < units; have++)
        s[at++] = 'a';
    s[at] = '\0';
    return s;
}

/* 1 when config/ accepts arn as a kms_key_arn; on refusal the error is checked. */
static int config_accepts_arn(const char *arn)
{
    size_t len = strlen(arn) + 4096;
    char *yaml = malloc(len), *errors = NULL;
    struct ks_config *cfg = NULL;
    ks_status st;

    cr_assert_not_null(yaml);
    snprintf(yaml, len, REL_AWS("{kms_key_arn: \"%s\"}", "") KS_PROD TENANT_PROD, arn);
    st = ks_config_load_buffer("t.yaml", yaml, strlen(yaml), &cfg, &errors);
    cr_assert(st == KS_OK || st == KS_E_CONFIG, "status %d", (int)st);
    if (st != KS_OK) {
        cr_expect(strstr(errors, "kms_relationships[0].kms_configuration.kms_key_arn") != NULL,
                  "%s", errors);
        cr_expect_eq(count_lines(errors), 1, "%s", errors);
    }
    ks_config_free(cfg);
    free(errors);
    free(yaml);
    return st == KS_OK;
}

Test(config, arn_rules_agree_with_the_keystore_parser)
{
    /* Before: config counted UTF-16 units and keystore/ bytes, so an ARN of 2048 characters with
     * non-ASCII ones was valid in the config and "out of range" when read back from storage. */
    static const struct {
        const char *what, *fill;
        size_t fill_units, units;
        int valid;
    } cases[] = {
        {"ASCII, 2048", "a", 1, 2048, 1},
        {"ASCII, 2049", "a", 1, 2049, 0},
        {"2-byte UTF-8, 2048 units (> 2048 bytes)", "\xc3\xa9", 1, 2048, 1},
        {"2-byte UTF-8, 2049 units", "\xc3\xa9", 1, 2049, 0},
        {"3-byte UTF-8, 2048 units (> 6000 bytes)", "\xe2\x82\xac", 1, 2048, 1},
        {"3-byte UTF-8, 2049 units", "\xe2\x82\xac", 1, 2049, 0},
        {"surrogate pairs, 2048 units", "\xf0\x9f\x98\x80", 2, 2048, 1},
        {"surrogate pairs, 2049 units", "\xf0\x9f\x98\x80", 2, 2049, 0},
        {"surrogate pairs, 1025 of them (2050 units, 4100+ bytes)", "\xf0\x9f\x98\x80", 2, 2050, 0},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *arn = wide_arn(cases[i].fill, cases[i].fill_units, cases[i].units);
        struct ks_arn parsed;
        int keystore_valid = ks_arn_parse(arn, &parsed) == KS_ARN_OK && ks_arn_length_ok(arn);
        cr_expect_eq(keystore_valid, cases[i].valid, "keystore: %s", cases[i].what);
        cr_expect_eq(config_accepts_arn(arn), cases[i].valid, "config: %s", cases[i].what);
        free(arn);
    }
}

Test(config, arn_shapes_agree_with_the_keystore_parser)
{
    static const char *const arns[] = {
        AWS_ARN,
        MRK_ARN,
        "arn:aws-cn:kms:cn-north-1:111122223333:key/k/with/slashes",
        "arn:aws:kms:us-west-2:111122223333:alias/a",
        "arn:aws:kms:us-west-2:111122223333:key/",
        "arn:aws:kms:us-west-2:111122223333:key",
        "arn:aws:kms:us-west-2:111122223333:grant/k",
        "arn:aws:kms:us-west-2:111122223333:key/k:x",
        "arn::kms:us-west-2:111122223333:key/k",
        "arn:aws:kms::111122223333:key/k",
        "arn:aws:kms:us-west-2::key/k",
        "arn:aws:KMS:us-west-2:111122223333:key/k",
        "arn:aws:kms:us-west-2:111122223333:Key/k",
        "arn:aws:kms:\xc3\xa9u-west-2:111122223333:key/\xe2\x82\xac",
    };
    static const int valid[] = {1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    size_t i;
    cr_assert_eq(sizeof arns / sizeof arns[0], sizeof valid / sizeof valid[0]);
    for (i = 0; i < sizeof arns / sizeof arns[0]; i++) {
        struct ks_arn parsed;
        cr_expect_eq(ks_arn_parse(arns[i], &parsed) == KS_ARN_OK, valid[i], "keystore: %s",
                     arns[i]);
        cr_expect_eq(config_accepts_arn(arns[i]), valid[i], "config: %s", arns[i]);
    }
}

Test(config, arn_length_error_names_utf16_characters)
{
    char *arn = wide_arn("\xe2\x82\xac", 1, 2049), *yaml = malloc(16384), *errors;
    snprintf(yaml, 16384, REL_AWS("{kms_key_arn: \"%s\"}", "") KS_PROD TENANT_PROD, arn);
    errors = load_errors(yaml);
    assert_contains(errors, "t.yaml:6:38: kms_relationships[0].kms_configuration.kms_key_arn "
                            "\"arn:aws:kms:us-west-2:111122223333:key/\\xe2\\x82\\xac");
    assert_contains(errors, "...\" is not a valid KMS key ARN (not 1..2048 characters long); "
                            "expected arn:<partition>:kms:<region>:<account>:key/<key id>\n");
    free(errors);
    free(yaml);
    free(arn);
}

/* ---------------------------------------------------------------------------------------- */
/* Reading the file                                                                         */
/* ---------------------------------------------------------------------------------------- */

Test(config, oversized_file_refused)
{
    char path[] = "/tmp/ks-test-config-XXXXXX";
    struct ks_config *cfg = NULL;
    char *errors = NULL, *comment;
    size_t size = 16u * 1024u * 1024u + 1;
    int fd = mkstemp(path);
    FILE *f;

    cr_assert_geq(fd, 0);
    f = fdopen(fd, "w");
    cr_assert_not_null(f);
    /* A valid config padded with a comment to one byte over the limit. */
    cr_assert_geq(fputs(MINIMAL "#", f), 0);
    comment = malloc(size);
    cr_assert_not_null(comment);
    memset(comment, 'x', size);
    cr_assert_eq(fwrite(comment, 1, size - strlen(MINIMAL "#"), f), size - strlen(MINIMAL "#"));
    fclose(f);
    cr_assert_eq(ks_config_load_file(path, &cfg, &errors), KS_E_CONFIG);
    cr_assert_null(cfg);
    assert_contains(errors, ":1:1: the file is larger than 16777216 bytes; expected a "
                            "configuration file\n");
    free(errors);

    /* One byte less loads. */
    cr_assert_eq(truncate(path, (off_t)size - 1), 0);
    cr_assert_eq(ks_config_load_file(path, &cfg, &errors), KS_OK, "%s", errors ? errors : "");
    ks_config_free(cfg);
    unlink(path);
    free(comment);
}

Test(config, unreadable_file_refused)
{
    struct ks_config *cfg = NULL;
    char *errors = NULL;
    /* fopen succeeds on a directory; reading it fails. */
    cr_assert_eq(ks_config_load_file("/tmp", &cfg, &errors), KS_E_CONFIG);
    cr_assert_null(cfg);
    cr_assert_str_eq(errors, "/tmp:1:1: cannot read the file (Is a directory); expected a "
                             "readable YAML file\n");
    free(errors);
}

/* ---------------------------------------------------------------------------------------- */
/* The keyring role and the keyring routes' body cap (issue 13)                              */
/* ---------------------------------------------------------------------------------------- */

Test(config, keyring_role)
{
    struct ks_config *cfg = load_ok(REL_LOCAL KS_DEFAULT "tenants:\n"
                                                         "  - name: enc\n"
                                                         "    token_sha256: \"" HASH_A "\"\n"
                                                         "    role: keyring\n"
                                                         "    key_stores: [default]\n"
                                                         "    kms_relationships: [local]\n");
    cr_assert_eq(cfg->n_tenants, 1);
    cr_expect_eq(cfg->tenants[0].role, KS_ROLE_KEYRING);
    ks_config_free(cfg);
    expect_one_error(REL_LOCAL KS_DEFAULT "tenants:\n"
                                          "  - name: enc\n"
                                          "    token_sha256: \"" HASH_A "\"\n"
                                          "    role: Keyring\n"
                                          "    key_stores: [default]\n"
                                          "    kms_relationships: [local]\n",
                     "tenants[0].role is \"Keyring\"; expected reader, admin, keyring or monitor");
}

/* issue 12: a tenant's rate_limit, the monitor role, server.max_in_flight_requests and
 * server.unauthenticated_metrics. */
#define RL_TENANT(extra)                                                                           \
    REL_LOCAL KS_DEFAULT "tenants:\n"                                                              \
                         "  - name: enc\n"                                                         \
                         "    token_sha256: \"" HASH_A "\"\n"                                      \
                         "    role: admin\n"                                                       \
                         "    key_stores: [default]\n"                                             \
                         "    kms_relationships: [local]\n" extra

Test(config, rate_limit)
{
    struct ks_config *cfg =
        load_ok(RL_TENANT("    rate_limit: {requests_per_second: 2, burst: 3}\n"));
    cr_expect_eq(cfg->tenants[0].rate_limit.requests_per_second, 2);
    cr_expect_eq(cfg->tenants[0].rate_limit.burst, 3);
    ks_config_free(cfg);
    cfg = load_ok(RL_TENANT(""));
    cr_expect_eq(cfg->tenants[0].rate_limit.requests_per_second, 0, "no rate_limit: unlimited");
    ks_config_free(cfg);
    expect_one_error(RL_TENANT("    rate_limit: {requests_per_second: 0, burst: 3}\n"),
                     "t.yaml:16:39: tenants[0].rate_limit.requests_per_second is \"0\", out of "
                     "range; expected an integer in 1..1000000");
    expect_one_error(RL_TENANT("    rate_limit: {requests_per_second: 5, burst: 0}\n"),
                     "tenants[0].rate_limit.burst is \"0\", out of range; expected an integer in "
                     "1..1000000");
    expect_one_error(RL_TENANT("    rate_limit: {requests_per_second: 1000001, burst: 1}\n"),
                     "tenants[0].rate_limit.requests_per_second is \"1000001\", out of range");
    expect_one_error(RL_TENANT("    rate_limit: {requests_per_second: 5}\n"),
                     "tenants[0].rate_limit: missing required key \"burst\"");
    expect_one_error(RL_TENANT("    rate_limit: {requests_per_second: 5, burst: 2, rps: 1}\n"),
                     "rps");
    expect_one_error(RL_TENANT("    rate_limit: 5\n"), "tenants[0].rate_limit");
}

Test(config, monitor_role_and_metrics_keys)
{
    struct ks_config *cfg =
        load_ok("server: {max_in_flight_requests: 7, "
                "unauthenticated_metrics: true}\n" REL_LOCAL KS_DEFAULT "tenants:\n"
                "  - name: prom\n"
                "    token_sha256: \"" HASH_A "\"\n"
                "    role: monitor\n"
                "    key_stores: [default]\n"
                "    kms_relationships: [local]\n");
    if (!cfg)
        return;
    cr_expect_eq(cfg->tenants[0].role, KS_ROLE_MONITOR);
    cr_expect_eq(cfg->server.max_in_flight_requests, 7);
    cr_expect_eq(cfg->server.unauthenticated_metrics, 1);
    ks_config_free(cfg);
    cfg = load_ok(MINIMAL);
    cr_expect_eq(cfg->server.max_in_flight_requests, 1024, "default");
    cr_expect_eq(cfg->server.unauthenticated_metrics, 0, "default: a token is needed");
    cr_expect_eq(cfg->server.metrics_tenant_labels, 0, "default: no tenant names in labels");
    ks_config_free(cfg);
    cfg = load_ok("server: {metrics_tenant_labels: true}\n" MINIMAL);
    cr_expect_eq(cfg->server.metrics_tenant_labels, 1);
    ks_config_free(cfg);
    expect_one_error("server: {metrics_tenant_labels: 1}\n" MINIMAL,
                     "server.metrics_tenant_labels is \"1\"; expected true or false");
    expect_one_error("server: {max_in_flight_requests: 0}\n" MINIMAL,
                     "server.max_in_flight_requests is \"0\", out of range; expected an integer "
                     "in 1..1000000");
    expect_one_error("server: {unauthenticated_metrics: yes}\n" MINIMAL,
                     "server.unauthenticated_metrics is \"yes\"; expected true or false");
    expect_one_error("server: {unauthenticated_metrics: \"true\"}\n" MINIMAL,
                     "server.unauthenticated_metrics is");
}

Test(config, server_tls)
{
    struct ks_config *cfg = load_ok(MINIMAL);
    cr_expect_null(cfg->server.tls.cert_file);
    cr_expect_null(cfg->server.tls.key_file);
    ks_config_free(cfg);
    cfg = load_ok("server:\n"
                  "  tls:\n"
                  "    cert_file: /etc/keystored/cert.pem\n"
                  "    key_file: /etc/keystored/key.pem\n" MINIMAL);
    cr_expect_str_eq(cfg->server.tls.cert_file, "/etc/keystored/cert.pem");
    cr_expect_str_eq(cfg->server.tls.key_file, "/etc/keystored/key.pem");
    /* where the YAML names them: server/tls.c reports unreadable files there */
    cr_expect_eq(cfg->server.tls.cert_line, 3);
    cr_expect_eq(cfg->server.tls.cert_column, 16);
    cr_expect_eq(cfg->server.tls.key_line, 4);
    cr_expect_eq(cfg->server.tls.key_column, 15);
    ks_config_free(cfg);
}

Test(config, server_tls_errors)
{
    expect_one_error("server: {tls: {cert_file: /c.pem}}\n" MINIMAL,
                     "t.yaml:1:15: server.tls: missing required key \"key_file\"; expected a PEM "
                     "private key file path");
    expect_one_error("server: {tls: {key_file: /k.pem}}\n" MINIMAL,
                     "t.yaml:1:15: server.tls: missing required key \"cert_file\"");
    expect_one_error(
        "server: {tls: {cert_file: /c.pem, key_file: /k.pem, ca_file: /a.pem}}\n" MINIMAL,
        "server.tls: unknown key \"ca_file\"; expected one of cert_file, key_file");
    expect_one_error("server: {tls: true}\n" MINIMAL, "server.tls");
    expect_one_error("server: {tls: {cert_file: /c.pem, key_file: [1]}}\n" MINIMAL,
                     "server.tls.key_file");
    expect_one_error("server: {tls: {cert_file: \"\", key_file: /k.pem}}\n" MINIMAL,
                     "server.tls.cert_file");
}

Test(config, max_keyring_body_bytes)
{
    struct ks_config *cfg = load_ok("server: {max_keyring_body_bytes: 8388608}\n" MINIMAL);
    cr_expect_eq(cfg->server.max_keyring_body_bytes, 8388608);
    cr_expect_eq(cfg->server.max_body_bytes, 65536, "the general cap is separate");
    ks_config_free(cfg);
    cfg = load_ok(MINIMAL);
    cr_expect_eq(cfg->server.max_keyring_body_bytes, 4194304);
    ks_config_free(cfg);
    expect_one_error("server: {max_keyring_body_bytes: 67108865}\n" MINIMAL,
                     "server.max_keyring_body_bytes is \"67108865\", out of range; expected an "
                     "integer in 1024..67108864");
    expect_one_error("server: {max_keyring_body_bytes: \"4MiB\"}\n" MINIMAL,
                     "expected an integer in 1024..67108864");
}

/* --- mutations: (docs/reference/mutations.md sections 3 and 6) --------------------------- */

#define KS_WITH_MUTATIONS(m)                                                                       \
    "key_stores:\n"                                                                                \
    "  - name: default\n"                                                                          \
    "    logical_key_store_name: default\n"                                                        \
    "    kms_relationship: local\n"                                                                \
    "    storage: {type: sqlite, path: /tmp/db}\n"                                                 \
    "    mutations: " m "\n"

Test(config, mutations_defaults)
{
    struct ks_config *cfg = load_ok(MINIMAL);
    const struct ks_mutations_config *m = &cfg->key_stores[0].mutations;
    cr_assert_eq(m->system_key, KS_SYSTEM_KEY_TRUST_STORAGE);
    cr_assert_eq(m->page_size, 98);
    cr_assert_eq(m->kms_in_flight, 32);
    cr_assert_null(m->system_key_arn);
    ks_config_free(cfg);
}

Test(config, mutations_all_keys)
{
    struct ks_config *cfg = load_ok(REL_LOCAL KS_WITH_MUTATIONS(
        "{system_key: {kms_relationship: local, kms_key_arn: "
        "\"" LOCAL_ARN "\"}, page_size: 7, kms_in_flight: 3}") TENANT_APP1);
    const struct ks_mutations_config *m = &cfg->key_stores[0].mutations;
    cr_assert_eq(m->system_key, KS_SYSTEM_KEY_KMS);
    cr_assert_str_eq(m->system_key_relationship, "local");
    cr_assert_eq(m->system_key_relationship_index, 0);
    cr_assert_str_eq(m->system_key_arn, LOCAL_ARN);
    cr_assert_eq(m->page_size, 7);
    cr_assert_eq(m->kms_in_flight, 3);
    ks_config_free(cfg);
    cfg = load_ok(REL_LOCAL KS_WITH_MUTATIONS("{system_key: trust_storage}") TENANT_APP1);
    cr_assert_eq(cfg->key_stores[0].mutations.system_key, KS_SYSTEM_KEY_TRUST_STORAGE);
    cr_assert_eq(cfg->key_stores[0].mutations.page_size, 98);
    ks_config_free(cfg);
}

Test(config, mutations_errors)
{
    expect_one_error(
        REL_LOCAL KS_WITH_MUTATIONS("{page_size: 99}") TENANT_APP1,
        "key_stores[0].mutations.page_size is \"99\", out of range; expected an integer in 1..98");
    expect_one_error(
        REL_LOCAL KS_WITH_MUTATIONS("{page_size: 0}") TENANT_APP1,
        "key_stores[0].mutations.page_size is \"0\", out of range; expected an integer in 1..98");
    expect_one_error(
        REL_LOCAL KS_WITH_MUTATIONS("{kms_in_flight: 257}") TENANT_APP1,
        "key_stores[0].mutations.kms_in_flight is \"257\", out of range; expected an integer in "
        "1..256");
    expect_one_error(REL_LOCAL KS_WITH_MUTATIONS("{system_key: trust}") TENANT_APP1,
                     "key_stores[0].mutations.system_key is \"trust\"; expected trust_storage or "
                     "{kms_relationship, kms_key_arn}");
    expect_one_error(REL_LOCAL KS_WITH_MUTATIONS("{system_key: {kms_relationship: nope, "
                                                 "kms_key_arn: \"" LOCAL_ARN "\"}}") TENANT_APP1,
                     "key_stores[0].mutations.system_key.kms_relationship \"nope\" names no KMS "
                     "relationship");
    expect_one_error(REL_LOCAL KS_WITH_MUTATIONS("{system_key: {kms_relationship: local, "
                                                 "kms_key_arn: \"arn:aws:kms:x\"}}") TENANT_APP1,
                     "key_stores[0].mutations.system_key.kms_key_arn \"arn:aws:kms:x\" is not a "
                     "valid KMS key ARN");
    expect_one_error(REL_LOCAL KS_WITH_MUTATIONS("{system_key: {kms_relationship: local}}")
                         TENANT_APP1,
                     "key_stores[0].mutations.system_key: missing required key \"kms_key_arn\"");
    expect_one_error(REL_LOCAL KS_WITH_MUTATIONS("{pages: 3}") TENANT_APP1,
                     "key_stores[0].mutations: unknown key \"pages\"");
}

/* cache.max_entries_per_partition: default 0 (no cap), 0 allowed, a count otherwise. */
Test(config, cache_max_entries_per_partition)
{
    struct ks_config *cfg = load_ok(MINIMAL);
    cr_assert_eq(cfg->cache.max_entries_per_partition, 0);
    ks_config_free(cfg);
    cfg = load_ok("cache: {max_entries_per_partition: 25}\n" MINIMAL);
    cr_assert_eq(cfg->cache.max_entries_per_partition, 25);
    cr_assert_eq(cfg->cache.capacity, 1000);
    ks_config_free(cfg);
    expect_one_error("cache: {max_entries_per_partition: -1}\n" MINIMAL,
                     "cache.max_entries_per_partition");
    expect_one_error("cache: {max_entries_per_partition: 2147483648}\n" MINIMAL,
                     "cache.max_entries_per_partition");
}

/* --- rotation: (issue 14) ---------------------------------------------------------------- */

#define KS_WITH_ROTATION(rel, r)                                                                   \
    "key_stores:\n"                                                                                \
    "  - name: default\n"                                                                          \
    "    logical_key_store_name: default\n"                                                        \
    "    kms_relationship: " rel "\n"                                                              \
    "    storage: {type: sqlite, path: /tmp/db}\n"                                                 \
    "    rotation: " r "\n"

Test(config, rotation_defaults_and_keys)
{
    struct ks_config *cfg = load_ok(MINIMAL);
    cr_assert_eq(cfg->key_stores[0].rotation.interval_seconds, 0);
    ks_config_free(cfg);
    cfg = load_ok(REL_LOCAL KS_WITH_ROTATION(
        "local", "{interval_seconds: 31536000, check_interval_seconds: 60}") TENANT_APP1);
    cr_assert_eq(cfg->key_stores[0].rotation.interval_seconds, 31536000);
    cr_assert_eq(cfg->key_stores[0].rotation.check_interval_seconds, 60);
    ks_config_free(cfg);
    /* check_interval_seconds defaults to 3600, capped at the interval. */
    cfg = load_ok(REL_LOCAL KS_WITH_ROTATION("local", "{interval_seconds: 86400}") TENANT_APP1);
    cr_assert_eq(cfg->key_stores[0].rotation.check_interval_seconds, 3600);
    ks_config_free(cfg);
    cfg = load_ok(REL_LOCAL KS_WITH_ROTATION("local", "{interval_seconds: 10}") TENANT_APP1);
    cr_assert_eq(cfg->key_stores[0].rotation.interval_seconds, 10);
    cr_assert_eq(cfg->key_stores[0].rotation.check_interval_seconds, 10);
    ks_config_free(cfg);
    /* A strict aws relationship can version. */
    cfg = load_ok(REL_AWS("{kms_key_arn: \"" AWS_ARN "\"}", "")
                      KS_WITH_ROTATION("prod", "{interval_seconds: 100}") TENANT_PROD);
    cr_assert_eq(cfg->key_stores[0].rotation.interval_seconds, 100);
    ks_config_free(cfg);
}

Test(config, rotation_errors)
{
    expect_one_error(REL_LOCAL KS_WITH_ROTATION("local", "{interval_seconds: 9}") TENANT_APP1,
                     "key_stores[0].rotation.interval_seconds is \"9\", out of range; expected an "
                     "integer in 10..");
    expect_one_error(REL_LOCAL KS_WITH_ROTATION("local", "{check_interval_seconds: 5}") TENANT_APP1,
                     "key_stores[0].rotation: missing required key \"interval_seconds\"");
    expect_one_error(REL_LOCAL KS_WITH_ROTATION(
                         "local", "{interval_seconds: 60, check_interval_seconds: 0}") TENANT_APP1,
                     "key_stores[0].rotation.check_interval_seconds is \"0\", out of range");
    expect_one_error(REL_LOCAL KS_WITH_ROTATION("local", "{interval_seconds: 60, every: 1}")
                         TENANT_APP1,
                     "key_stores[0].rotation: unknown key \"every\"");
    /* Refused at start: these relationships cannot version keys. */
    expect_one_error(REL_AWS("{discovery: {}}", "")
                         KS_WITH_ROTATION("prod", "{interval_seconds: 60}") TENANT_PROD,
                     "key_stores[0].rotation needs a KMS relationship that can version keys, but "
                     "kms_relationship \"prod\" is discovery");
    expect_one_error(REL_AWS("{mr_discovery: {region: us-west-2}}", "")
                         KS_WITH_ROTATION("prod", "{interval_seconds: 60}") TENANT_PROD,
                     "kms_relationship \"prod\" is mr_discovery");
}

/* --- default_hierarchy_version (issue 11) ------------------------------------------------ */

#define KS_WITH_HV(hv)                                                                             \
    "key_stores:\n"                                                                                \
    "  - name: default\n"                                                                          \
    "    logical_key_store_name: default\n"                                                        \
    "    kms_relationship: local\n"                                                                \
    "    storage: {type: sqlite, path: /tmp/db}\n"                                                 \
    "    default_hierarchy_version: " hv "\n"

Test(config, default_hierarchy_version)
{
    struct ks_config *cfg = load_ok(MINIMAL);
    cr_assert_eq(cfg->key_stores[0].default_hierarchy_version, 1);
    ks_config_free(cfg);
    cfg = load_ok(REL_LOCAL KS_WITH_HV("2") TENANT_APP1);
    cr_assert_eq(cfg->key_stores[0].default_hierarchy_version, 2);
    ks_config_free(cfg);
    cfg = load_ok(REL_LOCAL KS_WITH_HV("1") TENANT_APP1);
    cr_assert_eq(cfg->key_stores[0].default_hierarchy_version, 1);
    ks_config_free(cfg);
    expect_one_error(REL_LOCAL KS_WITH_HV("3") TENANT_APP1, "default_hierarchy_version");
    expect_one_error(REL_LOCAL KS_WITH_HV("v2") TENANT_APP1, "default_hierarchy_version");
}

/* ---------------------------------------------------------------------------------------- */
/* audit: (issue 12)                                                                        */
/* ---------------------------------------------------------------------------------------- */

Test(config, audit_absent_path_and_fsync_forms)
{
    struct ks_config *cfg = load_ok(MINIMAL);
    cr_expect_null(cfg->audit.path);
    cr_expect_eq(cfg->audit.fsync, KS_CONFIG_AUDIT_FSYNC_NONE);
    ks_config_free(cfg);

    cfg = load_ok("audit: {path: /var/log/a.log}\n" MINIMAL);
    cr_expect_str_eq(cfg->audit.path, "/var/log/a.log");
    cr_expect_eq(cfg->audit.fsync, KS_CONFIG_AUDIT_FSYNC_NONE);
    ks_config_free(cfg);

    cfg = load_ok("audit:\n  path: a.log\n  fsync: every_line\n" MINIMAL);
    cr_expect_eq(cfg->audit.fsync, KS_CONFIG_AUDIT_FSYNC_EVERY_LINE);
    ks_config_free(cfg);

    cfg = load_ok("audit: {path: a.log, fsync: {interval_ms: 250}}\n" MINIMAL);
    cr_expect_eq(cfg->audit.fsync, KS_CONFIG_AUDIT_FSYNC_INTERVAL);
    cr_expect_eq(cfg->audit.fsync_interval_ms, 250);
    ks_config_free(cfg);

    cfg = load_ok("audit: {path: a.log, fsync: none}\n" MINIMAL);
    cr_expect_eq(cfg->audit.fsync, KS_CONFIG_AUDIT_FSYNC_NONE);
    ks_config_free(cfg);
}

Test(config, audit_errors_name_file_line)
{
    expect_one_error("audit: {}\n" MINIMAL,
                     "t.yaml:1:8: audit: missing required key \"path\"; expected the audit "
                     "log's file path\n");
    expect_one_error("audit: a.log\n" MINIMAL, "t.yaml:1:8: audit is ");
    expect_one_error("audit: {path: a.log, fsync: sometimes}\n" MINIMAL,
                     "t.yaml:1:29: audit.fsync is \"sometimes\"; expected every_line, none or a "
                     "mapping {interval_ms: 1..3600000}\n");
    expect_one_error("audit:\n  path: a.log\n  fsync: {interval_ms: 0}\n" MINIMAL,
                     "t.yaml:3:24: audit.fsync.interval_ms");
    expect_one_error("audit:\n  path: a.log\n  fsync: {interval_ms: 3600001}\n" MINIMAL,
                     "t.yaml:3:24: audit.fsync.interval_ms");
    {
        char *errors = load_errors("audit:\n  path: a.log\n  fsync: {every: 1}\n" MINIMAL);
        assert_contains(errors, "t.yaml:3:11: audit.fsync: unknown key \"every\"");
        assert_contains(errors, "t.yaml:3:10: audit.fsync: missing required key \"interval_ms\"");
        free(errors);
    }
    expect_one_error("audit:\n  path: a.log\n  rotate: daily\n" MINIMAL, "t.yaml:3:3:");
    expect_one_error("audit: {path: \"\"}\n" MINIMAL, "t.yaml:1:15: audit.path");
}

Test(config, audit_change_refused_on_reload)
{
    struct ks_config *a = load_ok("audit: {path: a.log}\n" MINIMAL);
    struct ks_config *same = load_ok("audit: {path: a.log}\n" MINIMAL);
    struct ks_config *moved = load_ok("audit: {path: b.log}\n" MINIMAL);
    struct ks_config *synced = load_ok("audit: {path: a.log, fsync: every_line}\n" MINIMAL);
    struct ks_config *none = load_ok(MINIMAL);
    char why[256];

    cr_expect_eq(ks_config_live_change_refused(a, same, why, sizeof why), 0);
    cr_expect_eq(ks_config_live_change_refused(a, moved, why, sizeof why), 1);
    cr_expect(strstr(why, "audit section") != NULL, "%s", why);
    cr_expect_eq(ks_config_live_change_refused(a, synced, why, sizeof why), 1);
    cr_expect_eq(ks_config_live_change_refused(a, none, why, sizeof why), 1);
    cr_expect_eq(ks_config_live_change_refused(none, a, why, sizeof why), 1);
    ks_config_free(a);
    ks_config_free(same);
    ks_config_free(moved);
    ks_config_free(synced);
    ks_config_free(none);
}
