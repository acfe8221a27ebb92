/*
 * key_stores.c - the `key_stores:` section with each store's storage (SQLite or DynamoDB) and its
 * reference to a KMS relationship (docs/architecture.md sections 1 and 4).
 */
#include "config/config.h"
#include "config/parse.h"

#include <stdlib.h>
#include <string.h>

#include "aws/arn.h"

/* DynamoDB table names: 3..255 characters of A-Z a-z 0-9 _ . - (DynamoDB naming rules). */
static int valid_table_name(const char *s)
{
    size_t len = strlen(s);
    return len >= 3 && len <= 255 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

static void parse_storage(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                          struct ks_storage_config *st)
{
    enum {
        ST_TYPE,
        ST_PATH,
        ST_TABLE,
        ST_REGION,
        ST_ENDPOINT,
        ST_CREDS,
        ST_TIMEOUT,
        ST_ATTEMPTS,
        ST_COUNT
    };
    struct ks_config_field f[ST_COUNT] = {
        [ST_TYPE] = {.key = "type"},          [ST_PATH] = {.key = "path"},
        [ST_TABLE] = {.key = "table"},        [ST_REGION] = {.key = "region"},
        [ST_ENDPOINT] = {.key = "endpoint"},  [ST_CREDS] = {.key = "credentials"},
        [ST_TIMEOUT] = {.key = "timeout_ms"}, [ST_ATTEMPTS] = {.key = "max_attempts"},
    };
    char sub[KS_CONFIG_PATH_LEN], shown[KS_CONFIG_SHOW_LEN];
    yaml_node_t *v;

    if (ks_config_get_fields(p, n, path, f, ST_COUNT) < 0)
        return;
    v = ks_config_require(p, n, path, &f[ST_TYPE], "sqlite or dynamodb");
    if (!v)
        return;
    if (ks_config_scalar_is(v, "sqlite")) {
        st->type = KS_STORAGE_SQLITE;
        ks_config_reject_fields(p, path, f, ST_COUNT,
                                KS_CONFIG_BIT(ST_TYPE) | KS_CONFIG_BIT(ST_PATH), "sqlite storage");
        if (ks_config_require(p, n, path, &f[ST_PATH], "the path of the SQLite database"))
            st->path = ks_config_get_string(p, f[ST_PATH].value,
                                            ks_config_join_path(sub, path, "path"), "a file path");
    } else if (ks_config_scalar_is(v, "dynamodb")) {
        st->type = KS_STORAGE_DYNAMODB;
        ks_config_reject_fields(p, path, f, ST_COUNT, ~KS_CONFIG_BIT(ST_PATH), "dynamodb storage");
        if (ks_config_require(p, n, path, &f[ST_TABLE], "the DynamoDB table name")) {
            st->table =
                ks_config_get_string(p, f[ST_TABLE].value, ks_config_join_path(sub, path, "table"),
                                     "a DynamoDB table name");
            if (st->table && !valid_table_name(st->table))
                ks_config_error(p, f[ST_TABLE].value,
                                "%s %s is not a valid DynamoDB table name; expected 3..255 "
                                "characters from A-Z a-z 0-9 _ . -",
                                sub, ks_config_show(f[ST_TABLE].value, shown, sizeof shown));
        }
        if (ks_config_require(p, n, path, &f[ST_REGION], "the AWS region of the table"))
            st->region = ks_config_get_region(p, f[ST_REGION].value,
                                              ks_config_join_path(sub, path, "region"));
        if (f[ST_ENDPOINT].value)
            st->endpoint = ks_config_get_endpoint(p, f[ST_ENDPOINT].value,
                                                  ks_config_join_path(sub, path, "endpoint"));
        if (ks_config_require(p, n, path, &f[ST_CREDS], "credentials: {source: ...}"))
            ks_config_parse_credentials(p, f[ST_CREDS].value,
                                        ks_config_join_path(sub, path, "credentials"),
                                        &st->credentials);
        ks_config_parse_aws_tuning(p, f[ST_TIMEOUT].value, f[ST_ATTEMPTS].value, path,
                                   &st->timeout_ms, &st->max_attempts);
    } else {
        ks_config_error(p, v, "%s is %s; expected sqlite or dynamodb",
                        ks_config_join_path(sub, path, "type"),
                        ks_config_describe(v, shown, sizeof shown));
    }
}

/* system_key: trust_storage | {kms_relationship: NAME, kms_key_arn: ARN}
 * (docs/reference/mutations.md section 3). */
static void parse_system_key(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                             struct ks_mutations_config *m)
{
    enum { K_REL, K_ARN, K_COUNT };
    struct ks_config_field f[K_COUNT] = {
        [K_REL] = {.key = "kms_relationship"}, [K_ARN] = {.key = "kms_key_arn"}};
    char sub[KS_CONFIG_PATH_LEN], shown[KS_CONFIG_SHOW_LEN];
    struct ks_arn parsed;

    if (n->type == YAML_SCALAR_NODE) {
        if (!ks_config_scalar_is(n, "trust_storage"))
            ks_config_error(p, n,
                            "%s is %s; expected trust_storage or {kms_relationship, kms_key_arn}",
                            path, ks_config_describe(n, shown, sizeof shown));
        m->system_key = KS_SYSTEM_KEY_TRUST_STORAGE;
        return;
    }
    if (ks_config_get_fields(p, n, path, f, K_COUNT) < 0)
        return;
    m->system_key = KS_SYSTEM_KEY_KMS;
    if (ks_config_require(p, n, path, &f[K_REL], "the name of a KMS relationship")) {
        ks_config_join_path(sub, path, "kms_relationship");
        m->system_key_relationship =
            ks_config_get_string(p, f[K_REL].value, sub, "the name of a KMS relationship");
        if (m->system_key_relationship && p->have_relationships &&
            !ks_config_kms_relationship(p->cfg, m->system_key_relationship,
                                        &m->system_key_relationship_index))
            ks_config_error(p, f[K_REL].value,
                            "%s %s names no KMS relationship; expected one of the names under "
                            "kms_relationships",
                            sub, ks_config_show(f[K_REL].value, shown, sizeof shown));
    }
    if (ks_config_require(p, n, path, &f[K_ARN], "a symmetric KMS key ARN")) {
        ks_config_join_path(sub, path, "kms_key_arn");
        m->system_key_arn = ks_config_get_string(p, f[K_ARN].value, sub, "a KMS key ARN");
        if (m->system_key_arn && ks_arn_parse(m->system_key_arn, &parsed) != KS_ARN_OK)
            ks_config_error(p, f[K_ARN].value,
                            "%s %s is not a valid KMS key ARN; expected "
                            "arn:<partition>:kms:<region>:<account>:key/<key id>",
                            sub, ks_config_show(f[K_ARN].value, shown, sizeof shown));
    }
}

/* mutations: {system_key, page_size, kms_in_flight} (docs/reference/mutations.md section 6). */
static void parse_mutations(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                            struct ks_mutations_config *m)
{
    enum { M_SYSTEM_KEY, M_PAGE_SIZE, M_IN_FLIGHT, M_COUNT };
    struct ks_config_field f[M_COUNT] = {[M_SYSTEM_KEY] = {.key = "system_key"},
                                         [M_PAGE_SIZE] = {.key = "page_size"},
                                         [M_IN_FLIGHT] = {.key = "kms_in_flight"}};
    char sub[KS_CONFIG_PATH_LEN];
    uint64_t v;

    if (ks_config_get_fields(p, n, path, f, M_COUNT) < 0)
        return;
    if (f[M_SYSTEM_KEY].value)
        parse_system_key(p, f[M_SYSTEM_KEY].value, ks_config_join_path(sub, path, "system_key"), m);
    if (f[M_PAGE_SIZE].value &&
        ks_config_get_uint(p, f[M_PAGE_SIZE].value, ks_config_join_path(sub, path, "page_size"), 1,
                           KS_MUTATION_PAGE_SIZE_MAX, &v) == 0)
        m->page_size = (unsigned)v;
    if (f[M_IN_FLIGHT].value &&
        ks_config_get_uint(p, f[M_IN_FLIGHT].value, ks_config_join_path(sub, path, "kms_in_flight"),
                           1, KS_MUTATION_KMS_IN_FLIGHT_MAX, &v) == 0)
        m->kms_in_flight = (unsigned)v;
}

/* rotation: {interval_seconds, check_interval_seconds} (issue 14). */
static void parse_rotation(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                           struct ks_rotation_config *r)
{
    enum { R_INTERVAL, R_CHECK, R_COUNT };
    struct ks_config_field f[R_COUNT] = {
        [R_INTERVAL] = {.key = "interval_seconds"}, [R_CHECK] = {.key = "check_interval_seconds"}};
    char sub[KS_CONFIG_PATH_LEN];
    uint64_t v;

    if (ks_config_get_fields(p, n, path, f, R_COUNT) < 0)
        return;
    /* Under 10 s two instances whose clocks differ by more than the interval would rotate one
     * key twice in one interval (README "Scheduled rotation"). */
    if (ks_config_require(p, n, path, &f[R_INTERVAL], "the rotation interval in seconds") &&
        ks_config_get_uint(p, f[R_INTERVAL].value,
                           ks_config_join_path(sub, path, "interval_seconds"),
                           KS_ROTATION_INTERVAL_MIN, KS_ROTATION_INTERVAL_MAX, &v) == 0)
        r->interval_seconds = v;
    r->check_interval_seconds = KS_ROTATION_CHECK_DEFAULT;
    if (f[R_CHECK].value &&
        ks_config_get_uint(p, f[R_CHECK].value,
                           ks_config_join_path(sub, path, "check_interval_seconds"), 1,
                           KS_ROTATION_INTERVAL_MAX, &v) == 0)
        r->check_interval_seconds = v;
    else if (r->interval_seconds && r->interval_seconds < r->check_interval_seconds)
        r->check_interval_seconds = r->interval_seconds;
}

/* Scheduled rotation versions keys: the key store's relationship must be able to (issue 14). */
static void check_rotation_relationship(struct ks_config_parser *p, yaml_node_t *n,
                                        const char *path, const struct ks_key_store_config *ks)
{
    const struct ks_kms_rel_config *rel;

    if (!ks->rotation.interval_seconds || !ks->kms_relationship || !p->have_relationships ||
        ks->kms_relationship_index >= p->cfg->n_kms_relationships)
        return;
    rel = &p->cfg->kms_relationships[ks->kms_relationship_index];
    if (rel->has_kms_configuration &&
        (rel->kms.kind == KS_KMS_DISCOVERY || rel->kms.kind == KS_KMS_MR_DISCOVERY))
        ks_config_error(p, n,
                        "%s.rotation needs a KMS relationship that can version keys, but "
                        "kms_relationship \"%s\" is %s; expected one with kms_key_arn or "
                        "kms_mr_key_arn",
                        path, ks->kms_relationship,
                        rel->kms.kind == KS_KMS_DISCOVERY ? "discovery" : "mr_discovery");
}

static void parse_key_store(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                            struct ks_key_store_config *ks)
{
    enum { S_NAME, S_LOGICAL, S_ID, S_REL, S_STORAGE, S_MUTATIONS, S_ROTATION, S_HV, S_COUNT };
    struct ks_config_field f[S_COUNT] = {
        [S_NAME] = {.key = "name"},         [S_LOGICAL] = {.key = "logical_key_store_name"},
        [S_ID] = {.key = "key_store_id"},   [S_REL] = {.key = "kms_relationship"},
        [S_STORAGE] = {.key = "storage"},   [S_MUTATIONS] = {.key = "mutations"},
        [S_ROTATION] = {.key = "rotation"}, [S_HV] = {.key = "default_hierarchy_version"},
    };
    char sub[KS_CONFIG_PATH_LEN], shown[KS_CONFIG_SHOW_LEN];

    if (ks_config_get_fields(p, n, path, f, S_COUNT) < 0)
        return;
    if (ks_config_require(p, n, path, &f[S_NAME], "a unique key store name"))
        ks->name = ks_config_get_name(p, f[S_NAME].value, ks_config_join_path(sub, path, "name"));
    if (ks_config_require(p, n, path, &f[S_LOGICAL], "the logical key store name"))
        ks->logical_key_store_name = ks_config_get_string(
            p, f[S_LOGICAL].value, ks_config_join_path(sub, path, "logical_key_store_name"),
            "a non-empty logical key store name");
    if (f[S_ID].value)
        ks->key_store_id = ks_config_get_string(
            p, f[S_ID].value, ks_config_join_path(sub, path, "key_store_id"), "a key store id");
    if (ks_config_require(p, n, path, &f[S_REL], "the name of a KMS relationship")) {
        ks_config_join_path(sub, path, "kms_relationship");
        ks->kms_relationship =
            ks_config_get_string(p, f[S_REL].value, sub, "the name of a KMS relationship");
        if (ks->kms_relationship && p->have_relationships &&
            !ks_config_kms_relationship(p->cfg, ks->kms_relationship, &ks->kms_relationship_index))
            ks_config_error(p, f[S_REL].value,
                            "%s %s names no KMS relationship; expected one of the names under "
                            "kms_relationships",
                            sub, ks_config_show(f[S_REL].value, shown, sizeof shown));
    }
    if (ks_config_require(p, n, path, &f[S_STORAGE], "storage: {type: sqlite|dynamodb, ...}"))
        parse_storage(p, f[S_STORAGE].value, ks_config_join_path(sub, path, "storage"),
                      &ks->storage);
    ks->mutations.page_size = KS_MUTATION_PAGE_SIZE_DEFAULT;
    ks->mutations.kms_in_flight = KS_MUTATION_KMS_IN_FLIGHT_DEFAULT;
    if (f[S_MUTATIONS].value)
        parse_mutations(p, f[S_MUTATIONS].value, ks_config_join_path(sub, path, "mutations"),
                        &ks->mutations);
    ks->default_hierarchy_version = 1;
    if (f[S_HV].value) {
        uint64_t hv = 1;
        if (ks_config_get_uint(p, f[S_HV].value,
                               ks_config_join_path(sub, path, "default_hierarchy_version"), 1, 2,
                               &hv) == 0)
            ks->default_hierarchy_version = (int)hv;
    }
    if (f[S_ROTATION].value) {
        parse_rotation(p, f[S_ROTATION].value, ks_config_join_path(sub, path, "rotation"),
                       &ks->rotation);
        check_rotation_relationship(p, f[S_ROTATION].value, path, ks);
    }
}

void ks_config_section_key_stores(struct ks_config_parser *p, yaml_node_t *n)
{
    struct ks_config *cfg = p->cfg;
    yaml_node_item_t *items;
    char path[KS_CONFIG_PATH_LEN];
    size_t count, i, j;

    items = ks_config_list_items(p, n, "key_stores", "key stores", &count);
    if (!items)
        return;
    cfg->key_stores = calloc(count, sizeof *cfg->key_stores);
    if (!cfg->key_stores) {
        p->oom = 1;
        return;
    }
    cfg->n_key_stores = count;
    p->have_key_stores = 1;
    for (i = 0; i < count; i++) {
        struct ks_key_store_config *ks = &cfg->key_stores[i];
        yaml_node_t *item = ks_config_node(p, items[i]);
        if (!item)
            continue;
        parse_key_store(p, item, ks_config_index_path(path, "key_stores", i), ks);
        for (j = 0; ks->name && j < i; j++) {
            if (cfg->key_stores[j].name && strcmp(cfg->key_stores[j].name, ks->name) == 0) {
                ks_config_report_duplicate(p, n, "key_stores", j, i, "name");
                break;
            }
        }
        /* docs/architecture.md section 1: two physical stores never share a logical name (it is
         * bound into every KMS encryption context and every cache identifier). */
        for (j = 0; ks->logical_key_store_name && j < i; j++) {
            if (cfg->key_stores[j].logical_key_store_name &&
                strcmp(cfg->key_stores[j].logical_key_store_name, ks->logical_key_store_name) ==
                    0) {
                ks_config_report_duplicate(p, n, "key_stores", j, i, "logical_key_store_name");
                break;
            }
        }
    }
}
