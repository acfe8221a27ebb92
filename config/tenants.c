/*
 * tenants.c - the `tenants:` section: token hashes, roles, and the key stores and KMS
 * relationships each tenant may use (docs/architecture.md section 4). Parsed after the two lists
 * it refers to.
 */
#include "config/config.h"
#include "config/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* A tenant's list of key store or relationship names -> indexes. */
static void parse_refs(struct ks_config_parser *p, yaml_node_t *n, const char *path, int key_stores,
                       size_t **out, size_t *n_out)
{
    const char *what = key_stores ? "key store" : "KMS relationship";
    const char *section = key_stores ? "key_stores" : "kms_relationships";
    char sub[KS_CONFIG_PATH_LEN], shown[KS_CONFIG_SHOW_LEN], plural[32];
    yaml_node_item_t *items;
    size_t count, i, j;

    snprintf(plural, sizeof plural, "%s names", what);
    items = ks_config_list_items(p, n, path, plural, &count);
    if (!items)
        return;
    *out = calloc(count, sizeof **out);
    if (!*out) {
        p->oom = 1;
        return;
    }
    for (i = 0; i < count; i++) {
        yaml_node_t *v = ks_config_node(p, items[i]);
        size_t idx = 0;
        char *name;
        int found;
        if (!v)
            continue;
        ks_config_index_path(sub, path, i);
        name = ks_config_get_string(p, v, sub, plural);
        if (!name)
            continue;
        found = key_stores ? ks_config_key_store(p->cfg, name, &idx) != NULL
                           : ks_config_kms_relationship(p->cfg, name, &idx) != NULL;
        free(name);
        if (!(key_stores ? p->have_key_stores : p->have_relationships))
            continue; /* the section itself is wrong and already reported */
        if (!found) {
            ks_config_error(p, v, "%s %s names no %s; expected one of the names under %s", sub,
                            ks_config_show(v, shown, sizeof shown), what, section);
            continue;
        }
        for (j = 0; j < *n_out && (*out)[j] != idx; j++)
            ;
        if (j < *n_out) {
            ks_config_error(p, v, "%s %s is listed twice; expected each name once", sub,
                            ks_config_show(v, shown, sizeof shown));
            continue;
        }
        (*out)[(*n_out)++] = idx;
    }
}

/*
 * `rate_limit: {requests_per_second: N, burst: M}` (issue 12): both required, N in
 * 1..KS_RATE_LIMIT_RPS_MAX, M in 1..KS_RATE_LIMIT_BURST_MAX (server/ratelimit.h keeps the
 * bucket; README "Rate limits").
 */
static void parse_rate_limit(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                             struct ks_rate_limit_config *out)
{
    enum { RL_RPS, RL_BURST, RL_COUNT };
    struct ks_config_field f[RL_COUNT] = {
        [RL_RPS] = {.key = "requests_per_second"},
        [RL_BURST] = {.key = "burst"},
    };
    char sub[KS_CONFIG_PATH_LEN];
    uint64_t rps = 0, burst = 0;
    int bad = 0;

    if (ks_config_get_fields(p, n, path, f, RL_COUNT) < 0)
        return;
    if (ks_config_require(p, n, path, &f[RL_RPS], "requests per second, 1..1000000"))
        bad |= ks_config_get_uint(p, f[RL_RPS].value,
                                  ks_config_join_path(sub, path, "requests_per_second"), 1,
                                  KS_RATE_LIMIT_RPS_MAX, &rps);
    else
        bad = 1;
    if (ks_config_require(p, n, path, &f[RL_BURST], "the bucket's size in requests, 1..1000000"))
        bad |= ks_config_get_uint(p, f[RL_BURST].value, ks_config_join_path(sub, path, "burst"), 1,
                                  KS_RATE_LIMIT_BURST_MAX, &burst);
    else
        bad = 1;
    if (!bad) {
        out->requests_per_second = rps;
        out->burst = burst;
    }
}

/* Returns 1 when the tenant's token hash was valid (and stored). */
static int parse_tenant(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                        struct ks_tenant_config *t)
{
    enum { T_NAME, T_TOKEN, T_ROLE, T_KEY_STORES, T_RELS, T_PARTITION, T_RATE, T_COUNT };
    struct ks_config_field f[T_COUNT] = {
        [T_NAME] = {.key = "name"},
        [T_TOKEN] = {.key = "token_sha256"},
        [T_ROLE] = {.key = "role"},
        [T_KEY_STORES] = {.key = "key_stores"},
        [T_RELS] = {.key = "kms_relationships"},
        [T_PARTITION] = {.key = "partition"},
        [T_RATE] = {.key = "rate_limit"},
    };
    const char *expect_token = "the SHA-256 of the tenant's token as 64 hexadecimal digits";
    char sub[KS_CONFIG_PATH_LEN], shown[KS_CONFIG_SHOW_LEN];
    yaml_node_t *v;
    int token_ok = 0;

    if (ks_config_get_fields(p, n, path, f, T_COUNT) < 0)
        return 0;
    if (ks_config_require(p, n, path, &f[T_NAME], "a unique tenant name"))
        t->name = ks_config_get_name(p, f[T_NAME].value, ks_config_join_path(sub, path, "name"));
    /* The hash stands in for a bearer token: its value is never put in a message. */
    v = ks_config_require(p, n, path, &f[T_TOKEN], expect_token);
    if (v) {
        ks_config_join_path(sub, path, "token_sha256");
        if (v->type != YAML_SCALAR_NODE || ks_config_is_null(v))
            ks_config_error(p, v, "%s is %s; expected %s", sub, ks_config_kind(v), expect_token);
        else if (v->data.scalar.length != 64 || strlen(ks_config_text(v)) != 64 ||
                 ks_hex_decode(ks_config_text(v), t->token_sha256, sizeof t->token_sha256) != 0)
            ks_config_error(p, v, "%s is not 64 hexadecimal digits; expected %s", sub,
                            expect_token);
        else
            token_ok = 1;
    }
    v = ks_config_require(p, n, path, &f[T_ROLE], "reader, admin, keyring or monitor");
    if (v) {
        if (ks_config_scalar_is(v, "reader"))
            t->role = KS_ROLE_READER;
        else if (ks_config_scalar_is(v, "admin"))
            t->role = KS_ROLE_ADMIN;
        else if (ks_config_scalar_is(v, "keyring"))
            t->role = KS_ROLE_KEYRING;
        else if (ks_config_scalar_is(v, "monitor"))
            t->role = KS_ROLE_MONITOR;
        else
            ks_config_error(p, v, "%s is %s; expected reader, admin, keyring or monitor",
                            ks_config_join_path(sub, path, "role"),
                            ks_config_describe(v, shown, sizeof shown));
    }
    if (ks_config_require(p, n, path, &f[T_KEY_STORES],
                          "the list of key stores the tenant may use"))
        parse_refs(p, f[T_KEY_STORES].value, ks_config_join_path(sub, path, "key_stores"), 1,
                   &t->key_store_indexes, &t->n_key_stores);
    if (ks_config_require(p, n, path, &f[T_RELS],
                          "the list of KMS relationships the tenant may use"))
        parse_refs(p, f[T_RELS].value, ks_config_join_path(sub, path, "kms_relationships"), 0,
                   &t->kms_relationship_indexes, &t->n_kms_relationships);
    if (f[T_PARTITION].value) {
        t->partition = ks_config_get_string(p, f[T_PARTITION].value,
                                            ks_config_join_path(sub, path, "partition"),
                                            "a non-empty cache partition name");
    } else if (t->name) {
        /* The prefix keeps default partitions apart from any explicit one an operator picks
         * for sharing (docs/architecture.md section 1, "cache partition"). */
        t->partition = ks_config_format("tenant:%s", t->name);
        if (!t->partition)
            p->oom = 1;
    }
    if (f[T_RATE].value)
        parse_rate_limit(p, f[T_RATE].value, ks_config_join_path(sub, path, "rate_limit"),
                         &t->rate_limit);
    return token_ok;
}

void ks_config_section_tenants(struct ks_config_parser *p, yaml_node_t *n)
{
    struct ks_config *cfg = p->cfg;
    yaml_node_item_t *items;
    unsigned char *token_ok;
    char path[KS_CONFIG_PATH_LEN];
    size_t count, i, j;

    items = ks_config_list_items(p, n, "tenants", "tenants", &count);
    if (!items)
        return;
    cfg->tenants = calloc(count, sizeof *cfg->tenants);
    token_ok = calloc(count, 1);
    if (!cfg->tenants || !token_ok) {
        free(token_ok);
        p->oom = 1;
        return;
    }
    cfg->n_tenants = count;
    for (i = 0; i < count; i++) {
        struct ks_tenant_config *t = &cfg->tenants[i];
        yaml_node_t *item = ks_config_node(p, items[i]);
        if (!item)
            continue;
        token_ok[i] =
            (unsigned char)parse_tenant(p, item, ks_config_index_path(path, "tenants", i), t);
        for (j = 0; t->name && j < i; j++) {
            if (cfg->tenants[j].name && strcmp(cfg->tenants[j].name, t->name) == 0) {
                ks_config_report_duplicate(p, n, "tenants", j, i, "name");
                break;
            }
        }
        /* One token must identify one tenant, or authentication would be ambiguous. */
        for (j = 0; token_ok[i] && j < i; j++) {
            if (token_ok[j] && memcmp(cfg->tenants[j].token_sha256, t->token_sha256,
                                      sizeof t->token_sha256) == 0) {
                ks_config_error(p, ks_config_map_value(p, item, "token_sha256"),
                                "tenants[%zu].token_sha256 is the same as that of tenants[%zu]; "
                                "expected a different token for each tenant",
                                i, j);
                break;
            }
        }
    }
    free(token_ok);
}
