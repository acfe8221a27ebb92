/*
 * parse.h - internal to config/: the one YAML-node helper every section parser walks the libyaml
 * document with (docs/architecture.md section 4). It holds the parser state, the error list (each
 * error carries the file:line:column of its node and the lists are sorted by position before they
 * are returned), node lookups, the typed getters and the section entry points. Not part of the
 * public API (config/config.h); nothing outside config/ includes it.
 *
 * Values that are secrets (static credentials, grant tokens) or stand in for them (tenant token
 * hashes) are never echoed into messages: ks_config_get_string never echoes; ks_config_show and
 * ks_config_describe do, so they are never called on a secret.
 */
#ifndef KS_CONFIG_PARSE_H
#define KS_CONFIG_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "common/status.h"

#include "config/config.h"

/* Longest dotted path of a node in messages ("key_stores[12].storage.credentials.source"). */
#define KS_CONFIG_PATH_LEN 160
/* Longest echo of a user value in a message, quotes and escapes included. */
#define KS_CONFIG_SHOW_LEN 200
/* A set of fields, by index, for ks_config_reject_fields. */
#define KS_CONFIG_BIT(i) (1u << (i))
/* The local KMS names its keys arn:aws:kms:local:000000000000:key/<lowercase uuid>. */
#define KS_CONFIG_LOCAL_ARN_PREFIX "arn:aws:kms:local:000000000000:key/"

struct ks_config_problem {
    size_t line;
    size_t column;
    size_t seq; /* insertion order, to keep the sort stable */
    char *text;
};

struct ks_config_parser {
    const char *name; /* file name used in messages */
    yaml_document_t *doc;
    struct ks_config *cfg;
    struct ks_config_problem *errors;
    size_t n_errors;
    size_t cap_errors;
    int oom;
    /* Set once kms_relationships / key_stores parsed as lists: only then can references into
     * them be checked (otherwise every reference would add a second, misleading error). */
    int have_relationships;
    int have_key_stores;
};

/* One allowed key of a mapping and, after ks_config_get_fields, where it was found. */
struct ks_config_field {
    const char *key;
    yaml_node_t *key_node;
    yaml_node_t *value;
};

/* --- Error list -------------------------------------------------------------------------- */

/* Records "file:line:column: <text>"; line and column are 1-based. */
void ks_config_error_at(struct ks_config_parser *p, size_t line, size_t column, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

/* Records a problem at a node (libyaml marks are 0-based, messages 1-based). */
void ks_config_error(struct ks_config_parser *p, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sorted by position, one error per line, each line ending in '\n'. NULL on OOM. */
char *ks_config_join_errors(struct ks_config_parser *p);

void ks_config_free_errors(struct ks_config_parser *p);

/* A malloc'd formatted string (for text outside the error list), NULL on OOM. */
char *ks_config_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --- Nodes ------------------------------------------------------------------------------- */

yaml_node_t *ks_config_node(struct ks_config_parser *p, int id);

/* A scalar's value; libyaml NUL-terminates every scalar. */
const char *ks_config_text(const yaml_node_t *n);

/* 1 when n is a scalar equal to s. */
int ks_config_scalar_is(const yaml_node_t *n, const char *s);

/* YAML 1.1 core null: an empty or ~/null plain scalar ("key:" with nothing after it). */
int ks_config_is_null(const yaml_node_t *n);

/* "a mapping", "a list", "empty" or "a scalar". */
const char *ks_config_kind(const yaml_node_t *n);

/* A scalar quoted for a message, escaped to stay on one line, truncated to fit. Never on a
 * secret. */
const char *ks_config_show(const yaml_node_t *n, char *buf, size_t size);

/* What a node is, for "X is <this>; expected Y": the quoted value of a scalar, else its kind. */
const char *ks_config_describe(const yaml_node_t *n, char *buf, size_t size);

/* path, or "top level" for the root. */
const char *ks_config_where(const char *path);

/* "base.key" and "base[i]" into out (KS_CONFIG_PATH_LEN bytes); returns out. */
const char *ks_config_join_path(char *out, const char *base, const char *key);
const char *ks_config_index_path(char *out, const char *base, size_t i);

/* The value of key in a mapping (first occurrence), or NULL. */
yaml_node_t *ks_config_map_value(struct ks_config_parser *p, yaml_node_t *map, const char *key);

/*
 * Matches the keys of a mapping against the allowed fields, reporting a non-mapping node, keys
 * that are not scalars, repeated keys and unknown keys. Fills f[i].key_node and f[i].value (NULL
 * when absent). Returns 0 when map is a mapping, -1 otherwise.
 */
int ks_config_get_fields(struct ks_config_parser *p, yaml_node_t *map, const char *path,
                         struct ks_config_field *f, size_t n);

/* Reports keys present but not in allowed (a KS_CONFIG_BIT set) for the chosen variant. */
void ks_config_reject_fields(struct ks_config_parser *p, const char *path,
                             const struct ks_config_field *f, size_t n, unsigned allowed,
                             const char *variant);

/* f's value, or NULL after reporting that the key is missing from map. */
yaml_node_t *ks_config_require(struct ks_config_parser *p, yaml_node_t *map, const char *path,
                               const struct ks_config_field *f, const char *expect);

/* Items of a required, non-empty list; NULL (error reported) otherwise. */
yaml_node_item_t *ks_config_list_items(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                                       const char *what, size_t *count);

/* Reports that item `later` of a list repeats `key`'s value of item `earlier`. */
void ks_config_report_duplicate(struct ks_config_parser *p, yaml_node_t *list, const char *section,
                                size_t earlier, size_t later, const char *key);

/* --- Typed getters: a malloc'd value, or NULL (error reported or OOM flagged) -------------- */

char *ks_config_dup(struct ks_config_parser *p, const char *s);

/* A non-empty scalar without NUL. Never echoes the value, so it is safe for secrets. */
char *ks_config_get_string(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                           const char *expect);

/* An unsigned decimal integer in min..max into *out. 0, or -1 (error reported). */
int ks_config_get_uint(struct ks_config_parser *p, yaml_node_t *n, const char *path, uint64_t min,
                       uint64_t max, uint64_t *out);

/* A name of relationships, key stores and tenants (kept even when invalid, error reported). */
char *ks_config_get_name(struct ks_config_parser *p, yaml_node_t *n, const char *path);

/* An AWS region, and an http(s):// endpoint URL (both kept even when invalid). */
char *ks_config_get_region(struct ks_config_parser *p, yaml_node_t *n, const char *path);
char *ks_config_get_endpoint(struct ks_config_parser *p, yaml_node_t *n, const char *path);

/* --- Sections (one file each) ------------------------------------------------------------ */

/* server.c: `listen:` and `server:`; the host check shared with ks_config_default. */
void ks_config_section_listen(struct ks_config_parser *p, yaml_node_t *n);
void ks_config_section_server(struct ks_config_parser *p, yaml_node_t *n);
const char *ks_config_check_host(const char *host);

/* cache.c: `cache:`. */
void ks_config_section_cache(struct ks_config_parser *p, yaml_node_t *n);

/* audit.c: the `audit:` section (issue 12). */
void ks_config_section_audit(struct ks_config_parser *p, yaml_node_t *n);

/* kms_relationships.c: `kms_relationships:`, and `credentials:` mapped onto aws/'s options (also
 * used by DynamoDB storage). */
void ks_config_section_relationships(struct ks_config_parser *p, yaml_node_t *n);
void ks_config_parse_credentials(struct ks_config_parser *p, yaml_node_t *n, const char *path,
                                 struct ks_aws_credentials_options *cred);
int ks_config_valid_local_arn(const char *s);
/* `timeout_ms` (KS_CONFIG_AWS_TIMEOUT_MIN..MAX) and `max_attempts` (1..KS_CONFIG_AWS_ATTEMPTS_MAX)
 * of an aws relationship or DynamoDB storage; either node may be NULL (absent: 0 kept). */
#define KS_CONFIG_AWS_TIMEOUT_MIN 100
#define KS_CONFIG_AWS_TIMEOUT_MAX 60000
#define KS_CONFIG_AWS_ATTEMPTS_MAX 10
void ks_config_parse_aws_tuning(struct ks_config_parser *p, yaml_node_t *timeout,
                                yaml_node_t *attempts, const char *path, unsigned *timeout_ms,
                                unsigned *max_attempts);

/* key_stores.c: `key_stores:` with their storage. */
void ks_config_section_key_stores(struct ks_config_parser *p, yaml_node_t *n);

/* tenants.c: `tenants:` (after the two lists they refer to). */
void ks_config_section_tenants(struct ks_config_parser *p, yaml_node_t *n);

#endif
