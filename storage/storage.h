/*
 * storage.h - the key storage interface, shaped after the MPL's KeyStorageInterface
 * (docs/reference/branch-key-store.md section 9, hv-2/hv-2 Storage.smithy): a table of function
 * pointers with a version field; methods are only ever appended (SQLite's VFS is the model).
 * The keystore layer calls it and never knows which backend runs; backends never see HTTP or
 * JSON requests.
 *
 * Every method is thread-safe: one struct ks_storage serves all server threads.
 * Items passed in are borrowed; items returned are initialized by the callee and owned by the
 * caller (ks_item_free).
 */
#ifndef KS_STORAGE_STORAGE_H
#define KS_STORAGE_STORAGE_H

#include <stddef.h>

#include "common/status.h"
#include "storage/item.h"

#define KS_STORAGE_OPS_VERSION 2 /* 2: has_items */

struct ks_storage;

struct ks_storage_info {
    char name[256]; /* the table name (DynamoDB) or database path (SQLite) */
    char kind[16];  /* "sqlite", "dynamodb", "memory" */
};

struct ks_storage_ops {
    int version; /* KS_STORAGE_OPS_VERSION when this table was written */
    const char *name;

    /*
     * CreateKeyStore: create the table if missing, check it if present; idempotent.
     * *table_id is a malloc'd identifier (DynamoDB table ARN, "sqlite:<path>").
     */
    ks_status (*create_key_store)(struct ks_storage *s, char **table_id, struct ks_error *err);

    /* GetKeyStoreInfo's storage part. */
    ks_status (*info)(struct ks_storage *s, struct ks_storage_info *out, struct ks_error *err);

    /*
     * WriteNewEncryptedBranchKey: one atomic write of the three items of a new branch key, each
     * conditioned on not existing (attribute_not_exists(branch-key-id)). If any exists nothing is
     * written and KS_E_ALREADY_EXISTS is returned.
     */
    ks_status (*write_new_branch_key)(struct ks_storage *s, const struct ks_item *active,
                                      const struct ks_item *version, const struct ks_item *beacon,
                                      struct ks_error *err);

    /*
     * WriteNewEncryptedBranchKeyVersion: one atomic write of put `version` (conditioned on not
     * existing) + overwrite `active` conditioned on the stored ACTIVE existing and its `enc`
     * being exactly old_enc (seed "Mitigate Update Race"; SPEC v0.9.0). When the ACTIVE
     * condition fails nothing is written and KS_E_VERSION_RACE is returned; when the version
     * exists, KS_E_ALREADY_EXISTS.
     */
    ks_status (*write_new_version)(struct ks_storage *s, const struct ks_item *version,
                                   const struct ks_item *active, const unsigned char *old_enc,
                                   size_t old_enc_len, struct ks_error *err);

    /* GetEncryptedActiveBranchKey: item (id, "branch:ACTIVE"); KS_E_NOT_FOUND if missing.
     * Strongly consistent. */
    ks_status (*get_active)(struct ks_storage *s, const char *branch_key_id, struct ks_item *out,
                            struct ks_error *err);

    /* GetEncryptedBranchKeyVersion: item (id, "branch:version:" + version). */
    ks_status (*get_version)(struct ks_storage *s, const char *branch_key_id, const char *version,
                             struct ks_item *out, struct ks_error *err);

    /* GetEncryptedBeaconKey: item (id, "beacon:ACTIVE"). */
    ks_status (*get_beacon)(struct ks_storage *s, const char *branch_key_id, struct ks_item *out,
                            struct ks_error *err);

    /* Readiness: the backend is reachable. */
    ks_status (*ping)(struct ks_storage *s, struct ks_error *err);

    /* Frees the backend. */
    void (*destroy)(struct ks_storage *s);

    /* --- Appended in version 2 --- */

    /*
     * Does the table hold any item? *out is 1 or 0. A table that does not exist holds none. One
     * cheap, strongly consistent read of at most one item. Start-up asks it before it would
     * create a local KMS master key (server/app.c): items already stored were encrypted under
     * keys that a new master key could not decrypt.
     */
    ks_status (*has_items)(struct ks_storage *s, int *out, struct ks_error *err);
};

/* Every backend's struct starts with this. */
struct ks_storage {
    const struct ks_storage_ops *ops;
};

/*
 * SQLite backend (storage/sqlite.c): opens or creates the database file (0600, WAL). Writes are
 * one BEGIN IMMEDIATE transaction each, whose conditions are checked inside it, so that two
 * processes on one file cannot both win a race. Caller owns *out (ops->destroy).
 */
ks_status ks_storage_sqlite_open(const char *path, struct ks_storage **out, struct ks_error *err);

/* In-memory backend for unit tests (storage/memory.c). */
ks_status ks_storage_memory_create(struct ks_storage **out, struct ks_error *err);

/* Convenience: s->ops->destroy(s), NULL-safe. */
void ks_storage_destroy(struct ks_storage *s);

/* --- Appended: shared by every backend (storage.c) ----------------------------------------- */

/* Messages of the MPL and of our VersionKey lock (docs/reference/branch-key-store.md sections 6,
 * 9). */
#define KS_STORAGE_MSG_NOT_FOUND "No item found for corresponding branch key identifier."
#define KS_STORAGE_MSG_VERSION_RACE "ACTIVE branch key changed concurrently; retry VersionKey"

/*
 * Input checks before a write, the same for every backend so that they all refuse the same
 * items (KS_E_INVALID naming the problem): each item has `branch-key-id` and `type` as
 * non-empty S; all items share one branch-key-id; active's type is "branch:ACTIVE", beacon's
 * "beacon:ACTIVE", version's "branch:version:" + a non-empty version. Thread-safe.
 */
ks_status ks_storage_check_new_branch_key(const struct ks_item *active,
                                          const struct ks_item *version,
                                          const struct ks_item *beacon, struct ks_error *err);
ks_status ks_storage_check_new_version(const struct ks_item *version, const struct ks_item *active,
                                       struct ks_error *err);

/*
 * Check after a read: the item's `branch-key-id` and `type` are S and equal the key that was
 * requested (a row stored under another key is damage): KS_E_CORRUPT. Thread-safe.
 */
ks_status ks_storage_check_read(const struct ks_item *item, const char *branch_key_id,
                                const char *type, struct ks_error *err);

/* A backend's read of the item (branch_key_id, type). */
typedef ks_status (*ks_storage_get_fn)(struct ks_storage *s, const char *branch_key_id,
                                       const char *type, struct ks_item *out, struct ks_error *err);

/* GetEncryptedBranchKeyVersion for every backend: get(s, id, "branch:version:" + version
 * verbatim), reference section 6. out is left initialized (empty) on failure. */
ks_status ks_storage_get_version_via(ks_storage_get_fn get, struct ks_storage *s,
                                     const char *branch_key_id, const char *version,
                                     struct ks_item *out, struct ks_error *err);

/* --- Appended: DynamoDB backend (storage/dynamodb.c) --------------------------------------- */

struct ks_storage_config;
struct ks_aws_credentials_provider;

/*
 * DynamoDB backend: the MPL's table cfg->table in cfg->region (cfg->endpoint overrides the
 * regional endpoint, e.g. DynamoDB Local), over aws/aws.h (max 4 attempts). Nothing is sent
 * until the first call; create_key_store creates the table if it is missing and waits (at most
 * 60 s) until it is ACTIVE. creds is borrowed and must outlive the backend; cfg is copied.
 * A table name that is not 3..255 of [a-zA-Z0-9_.-] or a missing region is KS_E_CONFIG.
 * Caller owns *out (ops->destroy). Every method is thread-safe.
 */
ks_status ks_storage_dynamodb_open(const struct ks_storage_config *cfg,
                                   struct ks_aws_credentials_provider *creds,
                                   struct ks_storage **out, struct ks_error *err);

#endif
