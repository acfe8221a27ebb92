/*
 * kms_relationships.c - the `kms_relationships:` section: local and aws relationships, their
 * KMSConfiguration (docs/reference/branch-key-store.md section 7), grant tokens, and the
 * `credentials:` mapping onto aws/'s struct ks_aws_credentials_options (shared with DynamoDB
 * storage). Configured ARNs are checked by the one ARN parser (aws/arn.h) that keystore/ uses for
 * stored ones, so both agree on what an ARN is.
 */
#include "config/config.h"
#include "config/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/arn.h"
#include "common/util.h"

/* Grant tokens: at most 10, each 1..8192 characters (MPL M/Index.dfy; the KMS API's own limits). */
#define MAX_GRANT_TOKENS 10
#define MAX_GRANT_TOKEN_CHARS 8192

/* The local KMS names its keys arn:aws:kms:local:000000000000:key/<lowercase uuid>. */
int ks_config_valid_local_arn(const char *s)
{
    size_t prefix = sizeof KS_CONFIG_LOCAL_ARN_PREFIX - 1;
    return strncmp(s, KS_CONFIG_LOCAL_ARN_PREFIX, prefix) == 0 && ks_uuid_is_valid(s + prefix);
}

/*
 * A kms_key_arn / kms_mr_key_arn: a valid key ARN (docs/reference/branch-key-store.md section 7:
 * 1..2048 characters, 6 ':'-separated parts, resource key/<id>; the key store refuses aliases),
 * checked by the same parser that keystore/ applies to stored ARNs.
 */
static char *get_arn(struct ks_config_parser *p, yaml_node_t *n, const char *path, int local)
{
    char shown[KS_CONFIG_SHOW_LEN];
    const char *detail = "";
    char *s = ks_config_get_string(p, n, path, "a KMS key ARN");
    struct ks_arn parsed;
    enum ks_arn_result check;

    if (!s)
        return NULL;
    check = ks_arn_parse_reason(s, &parsed, &detail);
    if (check == KS_ARN_ALIAS)
        ks_config_error(p, n, "%s: KMS alias ARN not allowed; expected a key ARN", path);
    else if (check == KS_ARN_INVALID)
        ks_config_error(p, n,
                        "%s %s is not a valid KMS key ARN (%s); expected "
                        "arn:<partition>:kms:<region>:<account>:key/<key id>",
                        path, ks_config_show(n, shown, sizeof shown), detail);
    else if (local && !ks_config_valid_local_arn(s))
        ks_config_error(p, n,
                        "%s %s is not a local KMS key ARN; expected " KS_CONFIG_LOCAL_ARN_PREFIX
                        "<lowercase UUID>",
                        path, ks_config_show(n, shown, sizeof shown));
    return s;
}

/* KMSConfiguration union (docs/reference/branch-key-store.md section 7): exactly one member. */
static void parse_kms_configuration(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                                    struct ks_kms_config *kms, int local)
{
    enum { K_KEY_ARN, K_MR_KEY_ARN, K_DISCOVERY, K_MR_DISCOVERY, K_COUNT };
    static const enum ks_kms_config_kind kinds[K_COUNT] = {KS_KMS_KEY_ARN, KS_KMS_MR_KEY_ARN,
                                                           KS_KMS_DISCOVERY, KS_KMS_MR_DISCOVERY};
    struct ks_config_field f[K_COUNT] = {
        [K_KEY_ARN] = {.key = "kms_key_arn"},
        [K_MR_KEY_ARN] = {.key = "kms_mr_key_arn"},
        [K_DISCOVERY] = {.key = "discovery"},
        [K_MR_DISCOVERY] = {.key = "mr_discovery"},
    };
    const char *one_of = "exactly one of kms_key_arn, kms_mr_key_arn, discovery, mr_discovery";
    char sub[KS_CONFIG_PATH_LEN], region_path[KS_CONFIG_PATH_LEN];
    int first = -1, i;

    if (ks_config_get_fields(p, n, path, f, K_COUNT) < 0)
        return;
    for (i = 0; i < K_COUNT; i++) {
        if (!f[i].value)
            continue;
        if (first < 0)
            first = i;
        else
            ks_config_error(p, f[i].key_node, "%s has both %s and %s; expected %s", path,
                            f[first].key, f[i].key, one_of);
    }
    if (first < 0) {
        ks_config_error(p, n, "%s has no KMS configuration; expected %s", path, one_of);
        return;
    }
    kms->kind = kinds[first];
    ks_config_join_path(sub, path, f[first].key);
    /* The local KMS has one kind of key and no multi-region keys or discovery. */
    if (local && first != K_KEY_ARN) {
        ks_config_error(p, f[first].key_node,
                        "%s is not supported by a local relationship; expected kms_key_arn", sub);
        return;
    }
    switch (first) {
    case K_KEY_ARN:
    case K_MR_KEY_ARN:
        kms->arn = get_arn(p, f[first].value, sub, local);
        break;
    case K_DISCOVERY:
        if (!ks_config_is_null(f[first].value))
            ks_config_get_fields(p, f[first].value, sub, NULL, 0);
        break;
    default: {
        struct ks_config_field r[1] = {{.key = "region"}};
        if (ks_config_get_fields(p, f[first].value, sub, r, 1) < 0)
            break;
        if (ks_config_require(p, f[first].value, sub, &r[0], "the region to decrypt in"))
            kms->region = ks_config_get_region(p, r[0].value,
                                               ks_config_join_path(region_path, sub, "region"));
        break;
    }
    }
}

void ks_config_parse_credentials(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                                 struct ks_aws_credentials_options *cred)
{
    enum { CR_SOURCE, CR_PROFILE, CR_ACCESS_KEY_ID, CR_SECRET, CR_SESSION, CR_COUNT };
    static const struct {
        const char *name;
        enum ks_aws_cred_source source;
    } sources[] = {{"env", KS_AWS_CRED_ENV},
                   {"profile", KS_AWS_CRED_PROFILE},
                   {"container", KS_AWS_CRED_CONTAINER},
                   {"imds", KS_AWS_CRED_IMDS},
                   {"static", KS_AWS_CRED_STATIC}};
    struct ks_config_field f[CR_COUNT] = {
        [CR_SOURCE] = {.key = "source"},
        [CR_PROFILE] = {.key = "profile"},
        [CR_ACCESS_KEY_ID] = {.key = "access_key_id"},
        [CR_SECRET] = {.key = "secret_access_key"},
        [CR_SESSION] = {.key = "session_token"},
    };
    const char *expect_source = "env, profile, container, imds or static";
    char sub[KS_CONFIG_PATH_LEN], variant[32], shown[KS_CONFIG_SHOW_LEN];
    unsigned allowed = KS_CONFIG_BIT(CR_SOURCE);
    yaml_node_t *v;
    size_t i;

    if (ks_config_get_fields(p, n, path, f, CR_COUNT) < 0)
        return;
    v = ks_config_require(p, n, path, &f[CR_SOURCE], expect_source);
    if (!v)
        return;
    for (i = 0; i < sizeof sources / sizeof sources[0] && !ks_config_scalar_is(v, sources[i].name);
         i++)
        ;
    if (i == sizeof sources / sizeof sources[0]) {
        ks_config_error(p, v, "%s is %s; expected %s", ks_config_join_path(sub, path, "source"),
                        ks_config_describe(v, shown, sizeof shown), expect_source);
        return;
    }
    cred->source = sources[i].source;
    if (cred->source == KS_AWS_CRED_PROFILE)
        allowed |= KS_CONFIG_BIT(CR_PROFILE);
    if (cred->source == KS_AWS_CRED_STATIC)
        allowed |=
            KS_CONFIG_BIT(CR_ACCESS_KEY_ID) | KS_CONFIG_BIT(CR_SECRET) | KS_CONFIG_BIT(CR_SESSION);
    snprintf(variant, sizeof variant, "source %s", sources[i].name);
    ks_config_reject_fields(p, path, f, CR_COUNT, allowed, variant);

    if (cred->source == KS_AWS_CRED_PROFILE) {
        cred->profile = f[CR_PROFILE].value
                            ? ks_config_get_string(p, f[CR_PROFILE].value,
                                                   ks_config_join_path(sub, path, "profile"),
                                                   "an AWS profile name")
                            : ks_config_dup(p, "default");
    } else if (cred->source == KS_AWS_CRED_STATIC) {
        if (ks_config_require(p, n, path, &f[CR_ACCESS_KEY_ID], "an access key id"))
            cred->access_key_id = ks_config_get_string(
                p, f[CR_ACCESS_KEY_ID].value, ks_config_join_path(sub, path, "access_key_id"),
                "an access key id");
        if (ks_config_require(p, n, path, &f[CR_SECRET], "a secret access key"))
            cred->secret_access_key = ks_config_get_string(
                p, f[CR_SECRET].value, ks_config_join_path(sub, path, "secret_access_key"),
                "a secret access key");
        if (f[CR_SESSION].value)
            cred->session_token = ks_config_get_string(
                p, f[CR_SESSION].value, ks_config_join_path(sub, path, "session_token"),
                "a session token");
    }
}

static void parse_grant_tokens(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                               struct ks_kms_rel_config *rel)
{
    yaml_node_item_t *item;
    size_t count;
    char sub[KS_CONFIG_PATH_LEN];

    if (n->type != YAML_SEQUENCE_NODE) {
        ks_config_error(p, n, "%s is %s; expected a list of at most %d grant tokens", path,
                        ks_config_kind(n), MAX_GRANT_TOKENS);
        return;
    }
    count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count > MAX_GRANT_TOKENS)
        ks_config_error(p, n, "%s has %zu grant tokens; expected at most %d", path, count,
                        MAX_GRANT_TOKENS);
    if (count == 0)
        return;
    rel->grant_tokens = calloc(count, sizeof *rel->grant_tokens);
    if (!rel->grant_tokens) {
        p->oom = 1;
        return;
    }
    for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
        yaml_node_t *v = ks_config_node(p, *item);
        char *s;
        size_t units;
        if (!v)
            continue;
        ks_config_index_path(sub, path, (size_t)(item - n->data.sequence.items.start));
        s = ks_config_get_string(p, v, sub, "a grant token of 1..8192 characters");
        if (!s)
            continue;
        rel->grant_tokens[rel->n_grant_tokens++] = s;
        /* The MPL counts characters in UTF-16 code units. */
        units = ks_utf8_utf16_length(s, strlen(s));
        if (units > MAX_GRANT_TOKEN_CHARS)
            ks_config_error(p, v, "%s is %zu characters long; expected 1..%d characters", sub,
                            units, MAX_GRANT_TOKEN_CHARS);
    }
}

void ks_config_parse_aws_tuning(struct ks_config_parser *p, yaml_node_t *timeout,
                                yaml_node_t *attempts, const char *path, unsigned *timeout_ms,
                                unsigned *max_attempts)
{
    char sub[KS_CONFIG_PATH_LEN];
    uint64_t v;

    if (timeout &&
        ks_config_get_uint(p, timeout, ks_config_join_path(sub, path, "timeout_ms"),
                           KS_CONFIG_AWS_TIMEOUT_MIN, KS_CONFIG_AWS_TIMEOUT_MAX, &v) == 0)
        *timeout_ms = (unsigned)v;
    if (attempts && ks_config_get_uint(p, attempts, ks_config_join_path(sub, path, "max_attempts"),
                                       1, KS_CONFIG_AWS_ATTEMPTS_MAX, &v) == 0)
        *max_attempts = (unsigned)v;
}

static void parse_relationship(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                               struct ks_kms_rel_config *rel)
{
    enum {
        R_NAME,
        R_TYPE,
        R_KEY_FILE,
        R_KMS,
        R_REGION,
        R_ENDPOINT,
        R_CREDS,
        R_GRANTS,
        R_TIMEOUT,
        R_ATTEMPTS,
        R_COUNT
    };
    struct ks_config_field f[R_COUNT] = {
        [R_NAME] = {.key = "name"},          [R_TYPE] = {.key = "type"},
        [R_KEY_FILE] = {.key = "key_file"},  [R_KMS] = {.key = "kms_configuration"},
        [R_REGION] = {.key = "region"},      [R_ENDPOINT] = {.key = "endpoint"},
        [R_CREDS] = {.key = "credentials"},  [R_GRANTS] = {.key = "grant_tokens"},
        [R_TIMEOUT] = {.key = "timeout_ms"}, [R_ATTEMPTS] = {.key = "max_attempts"},
    };
    char sub[KS_CONFIG_PATH_LEN], shown[KS_CONFIG_SHOW_LEN];
    yaml_node_t *v;

    if (ks_config_get_fields(p, n, path, f, R_COUNT) < 0)
        return;
    if (ks_config_require(p, n, path, &f[R_NAME], "a unique relationship name"))
        rel->name = ks_config_get_name(p, f[R_NAME].value, ks_config_join_path(sub, path, "name"));
    v = ks_config_require(p, n, path, &f[R_TYPE], "local or aws");
    if (!v)
        return;
    if (ks_config_scalar_is(v, "local")) {
        rel->type = KS_KMS_LOCAL;
        ks_config_reject_fields(p, path, f, R_COUNT,
                                KS_CONFIG_BIT(R_NAME) | KS_CONFIG_BIT(R_TYPE) |
                                    KS_CONFIG_BIT(R_KEY_FILE) | KS_CONFIG_BIT(R_KMS),
                                "a local relationship");
        if (ks_config_require(p, n, path, &f[R_KEY_FILE], "the path of the local KMS key file"))
            rel->key_file = ks_config_get_string(
                p, f[R_KEY_FILE].value, ks_config_join_path(sub, path, "key_file"), "a file path");
        if (f[R_KMS].value) {
            rel->has_kms_configuration = 1;
            parse_kms_configuration(p, f[R_KMS].value,
                                    ks_config_join_path(sub, path, "kms_configuration"), &rel->kms,
                                    1);
        }
    } else if (ks_config_scalar_is(v, "aws")) {
        rel->type = KS_KMS_AWS;
        ks_config_reject_fields(p, path, f, R_COUNT, ~KS_CONFIG_BIT(R_KEY_FILE),
                                "an aws relationship");
        if (ks_config_require(p, n, path, &f[R_REGION], "the AWS region of KMS"))
            rel->region = ks_config_get_region(p, f[R_REGION].value,
                                               ks_config_join_path(sub, path, "region"));
        if (f[R_ENDPOINT].value)
            rel->endpoint = ks_config_get_endpoint(p, f[R_ENDPOINT].value,
                                                   ks_config_join_path(sub, path, "endpoint"));
        if (ks_config_require(p, n, path, &f[R_CREDS], "credentials: {source: ...}"))
            ks_config_parse_credentials(p, f[R_CREDS].value,
                                        ks_config_join_path(sub, path, "credentials"),
                                        &rel->credentials);
        if (ks_config_require(p, n, path, &f[R_KMS],
                              "kms_key_arn, kms_mr_key_arn, discovery or "
                              "mr_discovery")) {
            rel->has_kms_configuration = 1;
            parse_kms_configuration(p, f[R_KMS].value,
                                    ks_config_join_path(sub, path, "kms_configuration"), &rel->kms,
                                    0);
        }
        if (f[R_GRANTS].value)
            parse_grant_tokens(p, f[R_GRANTS].value, ks_config_join_path(sub, path, "grant_tokens"),
                               rel);
        ks_config_parse_aws_tuning(p, f[R_TIMEOUT].value, f[R_ATTEMPTS].value, path,
                                   &rel->timeout_ms, &rel->max_attempts);
    } else {
        ks_config_error(p, v, "%s is %s; expected local or aws",
                        ks_config_join_path(sub, path, "type"),
                        ks_config_describe(v, shown, sizeof shown));
    }
}

void ks_config_section_relationships(struct ks_config_parser *p, yaml_node_t *n)
{
    struct ks_config *cfg = p->cfg;
    yaml_node_item_t *items;
    char path[KS_CONFIG_PATH_LEN];
    size_t count, i, j;

    items = ks_config_list_items(p, n, "kms_relationships", "KMS relationships", &count);
    if (!items)
        return;
    cfg->kms_relationships = calloc(count, sizeof *cfg->kms_relationships);
    if (!cfg->kms_relationships) {
        p->oom = 1;
        return;
    }
    cfg->n_kms_relationships = count;
    p->have_relationships = 1;
    for (i = 0; i < count; i++) {
        struct ks_kms_rel_config *rel = &cfg->kms_relationships[i];
        yaml_node_t *item = ks_config_node(p, items[i]);
        if (!item)
            continue;
        parse_relationship(p, item, ks_config_index_path(path, "kms_relationships", i), rel);
        for (j = 0; rel->name && j < i; j++) {
            if (cfg->kms_relationships[j].name &&
                strcmp(cfg->kms_relationships[j].name, rel->name) == 0) {
                ks_config_report_duplicate(p, n, "kms_relationships", j, i, "name");
                break;
            }
        }
    }
}
