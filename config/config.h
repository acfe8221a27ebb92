/*
 * config.h - keystored configuration: YAML (libyaml) -> one immutable, validated struct
 * (docs/architecture.md section 4). Parsed once at start-up and then only read, so it is safe to
 * share between threads without locks.
 */
#ifndef KS_CONFIG_CONFIG_H
#define KS_CONFIG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "aws/aws.h"
#include "common/status.h"

/* docs/reference/branch-key-store.md section 7: the KMSConfiguration union. */
enum ks_kms_config_kind {
    KS_KMS_KEY_ARN = 0, /* kms_key_arn: strict */
    KS_KMS_MR_KEY_ARN,  /* kms_mr_key_arn */
    KS_KMS_DISCOVERY,   /* discovery: {} */
    KS_KMS_MR_DISCOVERY /* mr_discovery: {region} */
};

struct ks_kms_config {
    enum ks_kms_config_kind kind;
    char *arn;    /* KEY_ARN, MR_KEY_ARN */
    char *region; /* MR_DISCOVERY */
};

enum ks_kms_type { KS_KMS_LOCAL = 0, KS_KMS_AWS };

struct ks_kms_rel_config {
    char *name;
    enum ks_kms_type type;
    char *key_file; /* local: path of the 0600 key file */
    /* kms_configuration. A local relationship may omit it (has_kms_configuration == 0): the
     * server then uses strict kms_key_arn with the key file's first key, resolved at start. An
     * aws relationship must have it. */
    int has_kms_configuration;
    struct ks_kms_config kms;
    char *region;   /* aws */
    char *endpoint; /* aws, optional override */
    struct ks_aws_credentials_options credentials;
    char **grant_tokens; /* at most 10, each 1..8192 chars (M/Index.dfy) */
    size_t n_grant_tokens;
    /* aws, optional (docs/reference/aws-apis.md section 4): one attempt's deadline and the
     * attempts per call; 0 keeps the transport's defaults (10000 ms, 3 attempts). */
    unsigned timeout_ms;
    unsigned max_attempts;
};

enum ks_storage_type { KS_STORAGE_SQLITE = 0, KS_STORAGE_DYNAMODB };

struct ks_storage_config {
    enum ks_storage_type type;
    char *path;     /* sqlite */
    char *table;    /* dynamodb: 3..255 chars */
    char *region;   /* dynamodb */
    char *endpoint; /* dynamodb, optional */
    struct ks_aws_credentials_options credentials;
    /* dynamodb, optional: as on an aws KMS relationship; 0: 10000 ms, 4 attempts */
    unsigned timeout_ms;
    unsigned max_attempts;
};

/* `mutations:` of a key store (docs/reference/mutations.md sections 3 and 6). */
#define KS_MUTATION_PAGE_SIZE_DEFAULT 98 /* DynamoDB: 98 items + commitment + index = 100 */
#define KS_MUTATION_PAGE_SIZE_MAX 98
#define KS_MUTATION_KMS_IN_FLIGHT_DEFAULT 32
#define KS_MUTATION_KMS_IN_FLIGHT_MAX 256
enum ks_system_key_kind { KS_SYSTEM_KEY_TRUST_STORAGE = 0, KS_SYSTEM_KEY_KMS };
struct ks_mutations_config {
    enum ks_system_key_kind system_key;
    char *system_key_relationship; /* KMS: the relationship whose KMS signs */
    size_t system_key_relationship_index;
    char *system_key_arn;   /* KMS: the symmetric key that signs commitment and index */
    unsigned page_size;     /* 0 (embedded default) or 1..98: default 98 */
    unsigned kms_in_flight; /* 0 (embedded default) or 1..256: default 32 */
};

/*
 * Scheduled rotation of one key store (issue 14; docs/architecture.md section 3):
 * rotation: {interval_seconds, check_interval_seconds}. interval_seconds 0 = off (the default);
 * otherwise >= KS_ROTATION_INTERVAL_MIN. The key store's kms_relationship must be able to
 * version (kms_key_arn / kms_mr_key_arn).
 */
#define KS_ROTATION_INTERVAL_MIN 10
#define KS_ROTATION_INTERVAL_MAX 315360000 /* ten years */
#define KS_ROTATION_CHECK_DEFAULT 3600
struct ks_rotation_config {
    uint64_t interval_seconds;       /* 0: off */
    uint64_t check_interval_seconds; /* 1..interval; default 3600 (capped at the interval) */
};

struct ks_key_store_config {
    char *name;                    /* the {ks} of the REST API */
    char *logical_key_store_name;  /* bound into every KMS encryption context */
    char *key_store_id;            /* optional; a UUIDv4 is generated at start when absent */
    char *kms_relationship;        /* default relationship name */
    size_t kms_relationship_index; /* index into ks_config.kms_relationships */
    struct ks_storage_config storage;
    struct ks_mutations_config mutations;
    struct ks_rotation_config rotation; /* appended (issue 14) */
    int default_hierarchy_version;      /* CreateKey without hierarchyVersion: 1 or 2 (issue 11) */
};

struct ks_cache_config {
    uint64_t capacity;
    uint64_t ttl_seconds;
    uint64_t grace_period_seconds;
    uint64_t grace_interval_seconds;
    uint64_t fan_out;
    uint64_t in_flight_ttl_seconds;
    /* At most this many entries per partition (0: no cap beyond capacity), so that one busy
     * tenant evicts its own least recently used keys rather than every other tenant's. */
    uint64_t max_entries_per_partition;
};

/* keyring: may wrap and unwrap data keys only, never read a key (README "Roles"). monitor
 * (issue 12): may read GET /metrics only. */
enum ks_role { KS_ROLE_READER = 0, KS_ROLE_ADMIN, KS_ROLE_KEYRING, KS_ROLE_MONITOR };

/* A tenant's `rate_limit: {requests_per_second, burst}` (issue 12; README "Rate limits"): a
 * token bucket refilled at requests_per_second holding at most burst tokens. 0: no limit. */
#define KS_RATE_LIMIT_RPS_MAX 1000000
#define KS_RATE_LIMIT_BURST_MAX 1000000
struct ks_rate_limit_config {
    uint64_t requests_per_second; /* 0: unlimited (no rate_limit:); else 1..KS_RATE_LIMIT_RPS_MAX */
    uint64_t burst;               /* 1..KS_RATE_LIMIT_BURST_MAX */
};

struct ks_tenant_config {
    char *name;
    unsigned char token_sha256[32];
    enum ks_role role;
    size_t *key_store_indexes; /* into ks_config.key_stores */
    size_t n_key_stores;
    size_t *kms_relationship_indexes; /* into ks_config.kms_relationships */
    size_t n_kms_relationships;
    char *partition; /* default: the tenant's name prefixed so that it is unique */
    struct ks_rate_limit_config rate_limit; /* appended (issue 12) */
};

/* Optional `server:` section: limits of the HTTP front end. */
/*
 * server.tls (README "TLS"): keystored serves HTTPS itself when both paths are set (neither: plain
 * HTTP). The files are read once, at start (server/tls.c); the positions are where the YAML names
 * them, for start-up errors in the file:line:column form of the loader's.
 */
struct ks_tls_config {
    char *cert_file; /* PEM: the certificate, then any intermediates */
    char *key_file;  /* PEM: its private key, unencrypted (a secret: never logged) */
    size_t cert_line, cert_column, key_line, key_column; /* 1-based */
};

struct ks_server_config {
    unsigned threads;                    /* default 4 */
    size_t max_body_bytes;               /* default 65536 */
    size_t max_keyring_body_bytes;       /* default 4 MiB: the keyring routes' body cap */
    unsigned max_json_depth;             /* default 16 */
    unsigned connection_timeout_seconds; /* default 30 */
    unsigned max_connections;            /* default 0: derived from RLIMIT_NOFILE; 0..1000000 */
    unsigned max_connections_per_ip; /* default 0: none (behind a proxy all share one address) */
    unsigned header_timeout_seconds; /* default 10: a client must finish its headers by then */
    size_t max_uri_bytes;            /* default 8192: longer request lines get JSON 414 */
    size_t max_header_bytes;         /* default 16384: larger header sections get JSON 431 */
    unsigned readiness_interval_ms;  /* default 5000: background dependency probe period */
    unsigned readiness_timeout_ms;   /* default 2000: deadline of one probe */
    struct ks_tls_config tls;        /* default: none (plain HTTP) */
    /* Appended (issue 12), read per request (a reload may change them): */
    unsigned max_in_flight_requests; /* default 1024: more at once get 503 + Retry-After */
    int unauthenticated_metrics;     /* default 0: GET /metrics needs an admin or monitor token */
    int metrics_tenant_labels; /* default 0: tenants' default cache partitions summed as "tenant:*"
                                */
};

/* Optional `audit:` section (issue 12; docs/architecture.md section 12, README "Audit log"):
 * the audit log's file and when it is fsync'ed. A reload may not change it (config/compare.c). */
enum ks_config_audit_fsync {
    KS_CONFIG_AUDIT_FSYNC_NONE = 0,   /* default: write(2) per line, no fsync */
    KS_CONFIG_AUDIT_FSYNC_EVERY_LINE, /* fsync: every_line */
    KS_CONFIG_AUDIT_FSYNC_INTERVAL    /* fsync: {interval_ms: N} */
};
struct ks_audit_config {
    char *path; /* NULL: no audit log */
    enum ks_config_audit_fsync fsync;
    uint64_t fsync_interval_ms; /* KS_CONFIG_AUDIT_FSYNC_INTERVAL: 1..3600000 */
};

struct ks_config {
    char *source_name; /* file name used in messages */
    char *listen_host; /* "127.0.0.1"; an IPv6 address is kept without brackets */
    uint16_t listen_port;
    struct ks_server_config server;
    struct ks_kms_rel_config *kms_relationships;
    size_t n_kms_relationships;
    struct ks_key_store_config *key_stores;
    size_t n_key_stores;
    struct ks_cache_config cache;
    struct ks_tenant_config *tenants;
    size_t n_tenants;
    struct ks_audit_config audit; /* appended (issue 12) */
};

/*
 * Parses and validates a YAML file. On success *out is a new config owned by the caller (free
 * with ks_config_free) and *errors is NULL. On failure returns KS_E_CONFIG, *out is NULL, and
 * *errors is a malloc'd text listing every error found, one per line, each as
 * "file:line:column: what; expected X" (caller frees). Not thread-safe with respect to the same
 * out pointers; otherwise reentrant.
 */
ks_status ks_config_load_file(const char *path, struct ks_config **out, char **errors);

/* Same, from a buffer; name is used as the file name in messages. */
ks_status ks_config_load_buffer(const char *name, const char *yaml, size_t len,
                                struct ks_config **out, char **errors);

/*
 * The embedded default (docs/architecture.md section 6): key store "default" (logical name
 * "default") on SQLite at <data_dir>/keystore.db, local KMS relationship "local" with key file
 * <data_dir>/local-kms.keys and strict kms_key_arn = kms_key_arn, one admin tenant "admin" with
 * the given token hash allowed both. Listens on listen_host:listen_port. Caller frees.
 */
ks_status ks_config_default(const char *data_dir, const char *listen_host, uint16_t listen_port,
                            const unsigned char admin_token_sha256[32], const char *kms_key_arn,
                            struct ks_config **out, struct ks_error *err);

/*
 * Parses "host:port" exactly as `listen:` is parsed (IPv4 literal, host name, or "[IPv6]:port";
 * port 0..65535, 0 asking the kernel for a free port), for the --listen flag (docs/architecture.md
 * section 6). On success *host is a malloc'd copy without brackets (caller frees). Thread-safe.
 */
ks_status ks_config_parse_listen(const char *text, char **host, uint16_t *port,
                                 struct ks_error *err);

/* Lookups by name; NULL when absent. */
const struct ks_key_store_config *ks_config_key_store(const struct ks_config *cfg, const char *name,
                                                      size_t *index);
const struct ks_kms_rel_config *ks_config_kms_relationship(const struct ks_config *cfg,
                                                           const char *name, size_t *index);

/* Frees everything (secrets in credentials are wiped). NULL is a no-op. */
void ks_config_free(struct ks_config *cfg);

#endif
