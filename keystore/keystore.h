/*
 * keystore.h - the branch key store domain (docs/architecture.md section 2): CreateKeyStore,
 * GetKeyStoreInfo, CreateKey, VersionKey, GetActiveBranchKey, GetBranchKeyVersion,
 * GetBeaconKey for hierarchy version 1, with the MPL's KMS encryption contexts, item checks and
 * input validation (docs/reference/branch-key-store.md). Plaintext keys exist only in this layer
 * and in the ks_materials it hands out, which wipe them when freed.
 *
 * A struct ks_keystore is one configured key store: a storage backend, its logical key store
 * name, and a clock. KMS relationships are passed per call, since a tenant may choose one.
 * Every operation is thread-safe; the keystore keeps no mutable state.
 */
#ifndef KS_KEYSTORE_KEYSTORE_H
#define KS_KEYSTORE_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/ec.h"
#include "common/status.h"
#include "common/util.h"
#include "config/config.h"
#include "keystore/materials.h"
#include "kms/kms.h"
#include "storage/storage.h"

#include "keystore/kms_rel.h"

struct ks_keystore;
struct ks_cache;
struct ks_cache_ref;

struct ks_keystore_params {
    const char *name;                   /* configured key store name */
    const char *logical_key_store_name; /* bound into every KMS encryption context */
    const char *key_store_id;           /* NULL: a UUIDv4 is generated */
    struct ks_storage *storage;         /* owned by the keystore from a successful create on */
    const struct ks_clock *clock;       /* NULL: system clock */
    struct ks_cache *cache;             /* shared branch key cache, borrowed; NULL: none */
};

/* Creates a keystore. On success it owns params->storage. Caller frees with ks_keystore_destroy. */
ks_status ks_keystore_create(const struct ks_keystore_params *params, struct ks_keystore **out,
                             struct ks_error *err);
void ks_keystore_destroy(struct ks_keystore *ks);

/* CreateKey's default hierarchy version (YAML default_hierarchy_version): 2, or 1 for anything
 * else. Set once after ks_keystore_create, before requests. */
void ks_keystore_set_default_hierarchy_version(struct ks_keystore *ks, int hv);

struct ks_keystore_info {
    const char *key_store_id;           /* borrowed from the keystore */
    const char *logical_key_store_name; /* borrowed */
    struct ks_storage_info storage;     /* table name: "keyStoreName" */
};

ks_status ks_keystore_info(struct ks_keystore *ks, struct ks_keystore_info *out,
                           struct ks_error *err);

/* Start-up: *out = 1 when the key store's storage holds any item (a missing table holds none).
 * One cheap read (storage.h has_items). */
ks_status ks_keystore_has_items(struct ks_keystore *ks, int *out, struct ks_error *err);

/* Readiness: the key store's storage is reachable. */
ks_status ks_keystore_ping(struct ks_keystore *ks, struct ks_error *err);

/* Readiness: the relationship's KMS is reachable. */
ks_status ks_kms_relationship_ping(const struct ks_kms_relationship *rel, struct ks_error *err);

/* CreateKeyStore: creates the table if missing; *table_id is malloc'd. */
ks_status ks_keystore_create_key_store(struct ks_keystore *ks, char **table_id,
                                       struct ks_error *err);

/*
 * CreateKey (docs/reference/branch-key-store.md section 4). branch_key_id NULL generates a UUIDv4;
 * custom_ec (unprefixed keys; may be NULL or empty) becomes aws-crypto-ec:<k> attributes.
 * *id_out is malloc'd. KS_E_ALREADY_EXISTS when the id is taken (nothing written).
 */
ks_status ks_keystore_create_key(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                                 const char *branch_key_id, const struct ks_ec *custom_ec,
                                 char **id_out, struct ks_error *err);

/* CreateKey with hierarchy_version 1 or 2 (docs/reference/hv2.md section 5), or 0 for the key
 * store's default hierarchy version (below); the above is 1. */
ks_status ks_keystore_create_key_hv(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                                    const char *branch_key_id, const struct ks_ec *custom_ec,
                                    int hierarchy_version, char **id_out, struct ks_error *err);

/*
 * VersionKey (section 5 + section 9's optimistic lock). *version_out (malloc'd) is the new
 * version. A concurrent VersionKey that won is KS_E_VERSION_RACE and nothing is written.
 */
ks_status ks_keystore_version_key(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                                  const char *branch_key_id, char **version_out,
                                  struct ks_error *err);

/*
 * Scheduled rotation (issue 14): VersionKey only if the ACTIVE it reads and locks was created
 * before cutoff_us (epoch microseconds; < 0: no cutoff, as ks_keystore_version_key). When it is
 * not, nothing is written and KS_E_INVALID is returned with *due set: NOT_DUE (created at or
 * after the cutoff) or BAD_TIME (its create-time does not parse; keystore/inventory.h). A stored
 * kms-arn the relationship does not accept sets KMS_ARN. *due is DUE otherwise.
 */
enum ks_version_due {
    KS_VERSION_DUE = 0,
    KS_VERSION_NOT_DUE,
    KS_VERSION_BAD_TIME,
    KS_VERSION_KMS_ARN
};
ks_status ks_keystore_version_key_if_older(struct ks_keystore *ks,
                                           const struct ks_kms_relationship *rel,
                                           const char *branch_key_id, int64_t cutoff_us,
                                           char **version_out, enum ks_version_due *due,
                                           struct ks_error *err);

/* Branch key or beacon key materials (section 6): struct ks_materials, keystore/materials.h. */

/*
 * A held reference to materials: an entry of the shared cache (kept alive, and its key unwiped,
 * until released) or materials fetched for this call only. Release exactly once.
 */
struct ks_key_ref;
const struct ks_materials *ks_key_ref_materials(const struct ks_key_ref *ref);
void ks_key_ref_release(struct ks_key_ref *ref);

/*
 * Who reads: the cache partition of the tenant (docs/reference/cache.md section 7: derived from the
 * authenticated tenant, never from request data). NULL, or a keystore without a cache, reads
 * storage and KMS on every call.
 */
struct ks_reader {
    const unsigned char *partition;
    size_t partition_len;
};

/*
 * GetActiveBranchKey / GetBranchKeyVersion / GetBeaconKey. Through the shared cache when the
 * keystore has one and reader is given: a miss is fetched once per identifier while concurrent
 * callers wait (storm tracking); *out is owned by the caller (ks_key_ref_release).
 */
ks_status ks_keystore_get_active(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                                 const struct ks_reader *reader, const char *branch_key_id,
                                 struct ks_key_ref **out, struct ks_error *err);
ks_status ks_keystore_get_version(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                                  const struct ks_reader *reader, const char *branch_key_id,
                                  const char *version, struct ks_key_ref **out,
                                  struct ks_error *err);
ks_status ks_keystore_get_beacon(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                                 const struct ks_reader *reader, const char *branch_key_id,
                                 struct ks_key_ref **out, struct ks_error *err);

/* Storage reads made by this keystore's get operations, for /metrics and the stampede benchmark. */
unsigned long long ks_keystore_storage_reads(const struct ks_keystore *ks);

/* Storage calls of the key paths by operation and outcome, for /metrics (issue 12). Counters
 * only; thread-safe. */
enum ks_keystore_storage_op {
    KS_KEYSTORE_STORAGE_GET_ACTIVE = 0,
    KS_KEYSTORE_STORAGE_GET_VERSION,
    KS_KEYSTORE_STORAGE_GET_BEACON,
    KS_KEYSTORE_STORAGE_WRITE_NEW_BRANCH_KEY,
    KS_KEYSTORE_STORAGE_WRITE_NEW_VERSION,
    KS_KEYSTORE_STORAGE_OP_COUNT
};
enum ks_keystore_storage_outcome {
    KS_KEYSTORE_STORAGE_OK = 0,
    KS_KEYSTORE_STORAGE_NOT_FOUND, /* the item is not there */
    KS_KEYSTORE_STORAGE_CONFLICT,  /* a condition failed: the id exists, a version race */
    KS_KEYSTORE_STORAGE_ERROR,     /* anything else: the backend failed */
    KS_KEYSTORE_STORAGE_OUTCOME_COUNT
};
const char *ks_keystore_storage_op_name(enum ks_keystore_storage_op op);
const char *ks_keystore_storage_outcome_name(enum ks_keystore_storage_outcome outcome);
unsigned long long ks_keystore_storage_calls(const struct ks_keystore *ks,
                                             enum ks_keystore_storage_op op,
                                             enum ks_keystore_storage_outcome outcome);

/*
 * Input validation shared with the handlers so that bad input is refused before any I/O:
 * a branch key id must be non-empty valid UTF-8 without NUL, at most KS_BRANCH_KEY_ID_MAX bytes.
 */
#define KS_BRANCH_KEY_ID_MAX 1024
ks_status ks_keystore_check_branch_key_id(const char *id, size_t len, struct ks_error *err);

/* --- For keystore/mutation*.c only (keystore/mutation_internal.h): item contexts and checks,
 * so that a mutated item is built exactly as CreateKey builds one. Not for handlers. --- */

struct ks_storage *ks_mut_storage(struct ks_keystore *ks);
const char *ks_mut_logical_name(const struct ks_keystore *ks);
const struct ks_clock *ks_mut_clock(const struct ks_keystore *ks);
/* Drops every cached entry of the branch key on this instance (docs/reference/mutations.md
 * section 13: other instances keep theirs up to the TTL). */
void ks_mut_invalidate(struct ks_keystore *ks, const char *branch_key_id);
/* The KMS encryption context of an item (every attribute but enc, plus tablename). */
ks_status ks_mut_item_ec(const struct ks_keystore *ks, const struct ks_item *item, struct ks_ec *ec,
                         struct ks_error *err);
/* The item for such a context and enc. */
ks_status ks_mut_ec_item(const struct ks_ec *ec, const struct ks_bytes *enc, struct ks_item *item,
                         struct ks_error *err);
/* Read validation of an ACTIVE (kind 0), version (1) or beacon (2) item. */
ks_status ks_mut_check_item(const struct ks_item *item, int kind, const char *id,
                            const char *expected_type, struct ks_error *err);
/* CreateKey's custom context checks. */
ks_status ks_mut_check_custom_ec(const struct ks_ec *ec, struct ks_error *err);
/* Counts a KMS call on rel's counters; returns st. */
ks_status ks_mut_counted(const struct ks_kms_relationship *rel, enum ks_kms_op op, ks_status st);

#endif
