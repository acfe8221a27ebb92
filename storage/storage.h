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

/* 2: has_items; 3: the eight mutation operations; 4: list_active; 5: run_tx;
 * 6: delete_mutation_index */
#define KS_STORAGE_OPS_VERSION 6

struct ks_storage;

struct ks_storage_info {
    char name[256]; /* the table name (DynamoDB) or database path (SQLite) */
    char kind[16];  /* "sqlite", "dynamodb", "memory" */
};

/* --- Mutation operation arguments (version 3; docs/reference/mutations.md section 8) -------- */

/*
 * One item to write. old == NULL: create, conditioned on no item with item's key existing
 * (attribute_not_exists). old != NULL: overwrite, conditioned on the stored item existing with
 * exactly old's `enc` (the optimistic lock; old is the item as read, only its enc is used).
 * Both borrowed.
 */
struct ks_storage_write {
    const struct ks_item *item;
    const struct ks_item *old;
};

/* A commitment and an index as read, each when present. */
struct ks_mutation_state {
    int has_commitment;
    struct ks_mutation_commitment commitment;
    int has_index;
    struct ks_mutation_index index;
};

/* What GetItemsForInitializeMutation reads. */
struct ks_mutation_init_items {
    struct ks_item active;
    struct ks_item beacon;
    struct ks_mutation_state mutation;
};

/* One page of QueryForVersions. */
struct ks_version_page {
    struct ks_item *items; /* count items, ascending type */
    size_t count;
    char *next; /* token for the next page (the last item's type); NULL: no more versions */
};

/*
 * Transaction limits. DynamoDB allows 100 actions per TransactWriteItems: a page is at most 98
 * items plus the commitment and index actions; an atomic mutation is at most 95 versions plus
 * ACTIVE, beacon, the ACTIVE's version and two condition checks. Every backend enforces the same
 * limits so that they all behave the same.
 */
#define KS_STORAGE_MAX_PAGE 98
#define KS_STORAGE_MAX_ATOMIC_VERSIONS 95

void ks_mutation_state_init(struct ks_mutation_state *st);
void ks_mutation_state_free(struct ks_mutation_state *st);
void ks_mutation_init_items_init(struct ks_mutation_init_items *items);
void ks_mutation_init_items_free(struct ks_mutation_init_items *items);
void ks_version_page_init(struct ks_version_page *page);
void ks_version_page_free(struct ks_version_page *page);

/* One page of ListActive (version 4). */
struct ks_active_page {
    struct ks_item *items; /* count `branch:ACTIVE` items */
    size_t count;
    /* The exclusive start of the next page: the key (branch-key-id, type) of the last item the
     * backend READ (for DynamoDB possibly not an ACTIVE one). Both NULL: no more items. */
    char *next_id;
    char *next_type;
};

/* ListActive's largest limit (one DynamoDB Scan page; the REST API's largest limit). */
#define KS_STORAGE_MAX_LIST 1000

void ks_active_page_init(struct ks_active_page *page);
void ks_active_page_free(struct ks_active_page *page);
/* ListActive's argument checks (KS_E_INVALID), shared by the backends. */
ks_status ks_storage_check_list(const char *start_id, const char *start_type, size_t limit,
                                struct ks_error *err);

struct ks_tx; /* storage/tx.h */

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

    /* --- Appended in version 3: mutations (docs/reference/mutations.md section 8) ---
     *
     * Every write below is one atomic transaction (DynamoDB: one TransactWriteItems; SQLite: one
     * BEGIN IMMEDIATE transaction; memory: one critical section) whose conditions are checked
     * inside it: when any condition fails nothing is written and KS_E_MUTATION_CONFLICT is
     * returned, naming the item whose condition failed (never KS_E_STORAGE). Bad arguments
     * (wrong types, ids that disagree, too many items, duplicate keys) are KS_E_INVALID before
     * anything is sent. Reads are strongly consistent.
     */

    /*
     * GetItemsForInitializeMutation: the ACTIVE, the beacon, and the commitment and index if
     * present. ACTIVE or beacon missing: KS_E_NOT_FOUND. A commitment or index item that does
     * not decode (ks_mutation_commitment_from_item): KS_E_CORRUPT. out is initialized by the
     * call (ks_mutation_init_items_free); left empty on failure.
     */
    ks_status (*get_items_for_initialize_mutation)(struct ks_storage *s, const char *branch_key_id,
                                                   struct ks_mutation_init_items *out,
                                                   struct ks_error *err);

    /*
     * WriteInitializeMutation: in one transaction
     *   - overwrite active->item   (active->old required: stored ACTIVE exists with old's enc),
     *   - overwrite beacon->item   (beacon->old required: same lock on the beacon),
     *   - version->item: created when version->old is NULL (rotate: must not exist) or
     *     overwritten when not (doNotVersion's mutate: enc lock),
     *   - create the commitment and the index (neither may exist).
     * All items share commitment->branch_key_id; commitment and index share id and uuid.
     */
    ks_status (*write_initialize_mutation)(struct ks_storage *s,
                                           const struct ks_storage_write *active,
                                           const struct ks_storage_write *version,
                                           const struct ks_storage_write *beacon,
                                           const struct ks_mutation_commitment *commitment,
                                           const struct ks_mutation_index *index,
                                           struct ks_error *err);

    /*
     * WriteAtomicMutation (declared by the MPL, never implemented there): active, version and
     * beacon as in write_initialize_mutation, plus items[0..count) (each an overwrite of a
     * `branch:version:` item, old required), conditioned on NO commitment and NO index existing
     * for the branch key. count <= KS_STORAGE_MAX_ATOMIC_VERSIONS, and no key may appear twice
     * (with doNotVersion the ACTIVE's version is `version`, not one of items).
     */
    ks_status (*write_atomic_mutation)(struct ks_storage *s, const struct ks_storage_write *active,
                                       const struct ks_storage_write *version,
                                       const struct ks_storage_write *beacon,
                                       const struct ks_storage_write *items, size_t count,
                                       struct ks_error *err);

    /*
     * QueryForVersions: up to page_size (1..KS_STORAGE_MAX_PAGE) `branch:version:` items of
     * branch_key_id in ascending `type` order (bytewise, DynamoDB's sort-key order), starting
     * after `start` (exclusive; NULL or "" = from the first). out->next is the token for the
     * next page, or NULL when no version follows this page. A token is the `type` of the last
     * item of the page, i.e. exactly the MPL's `pageIndex` (docs/reference/mutations.md section
     * 1): a start token that is not "branch:version:" + something is KS_E_INVALID. An item under
     * the prefix that is not a valid item of this key is KS_E_CORRUPT. out is initialized by the
     * call (ks_version_page_free).
     */
    ks_status (*query_for_versions)(struct ks_storage *s, const char *branch_key_id,
                                    const char *start, size_t page_size,
                                    struct ks_version_page *out, struct ks_error *err);

    /*
     * WriteMutatedVersions: overwrites items[0..count) (old required: enc lock; count <=
     * KS_STORAGE_MAX_PAGE; may be 0), with the commitment check (the stored commitment exists
     * and its original, terminal, enc and uuid equal `commitment`'s) and the index check (the
     * stored index exists and its pageIndex, enc and uuid equal `old_index`'s).
     * end_mutation: deletes the commitment and the index (both under their checks); `index` is
     * ignored and may be NULL. Otherwise: the commitment is only checked, and `index` replaces
     * the stored index (same id and uuid as the commitment).
     */
    ks_status (*write_mutated_versions)(struct ks_storage *s, const struct ks_storage_write *items,
                                        size_t count,
                                        const struct ks_mutation_commitment *commitment,
                                        const struct ks_mutation_index *index,
                                        const struct ks_mutation_index *old_index, int end_mutation,
                                        struct ks_error *err);

    /*
     * GetMutation: the commitment and the index of branch_key_id, each if present (neither is
     * KS_OK with both flags 0). Undecodable item: KS_E_CORRUPT. out is initialized by the call
     * (ks_mutation_state_free).
     */
    ks_status (*get_mutation)(struct ks_storage *s, const char *branch_key_id,
                              struct ks_mutation_state *out, struct ks_error *err);

    /*
     * DeleteMutation: deletes the commitment (commitment check, as in write_mutated_versions)
     * and the index of commitment->branch_key_id (no condition: it may be absent).
     */
    ks_status (*delete_mutation)(struct ks_storage *s,
                                 const struct ks_mutation_commitment *commitment,
                                 struct ks_error *err);

    /*
     * WriteMutationIndex: creates `index` (must not exist) under the commitment check. index
     * shares id and uuid with the commitment.
     */
    ks_status (*write_mutation_index)(struct ks_storage *s,
                                      const struct ks_mutation_commitment *commitment,
                                      const struct ks_mutation_index *index, struct ks_error *err);

    /* --- Appended in version 4: inventory (docs/reference/branch-key-store.md section 10) ---
     *
     * ListActive: the `branch:ACTIVE` items after the key (start_id, start_type) (exclusive; both
     * NULL = from the beginning), in the backend's storage order: ascending branch-key-id for
     * SQLite and memory, DynamoDB's Scan order (by partition-key hash) for DynamoDB. A page
     * READS at most `limit` (1..KS_STORAGE_MAX_LIST) items: SQLite and memory read only ACTIVE
     * items (SQLite through the (type, branch_key_id) index), so a page holds `limit` of them
     * unless it is the last; DynamoDB's Scan counts its Limit before its FilterExpression
     * (`type = branch:ACTIVE`), so a page may hold fewer, or none, with next_id set. Callers
     * follow next_* until both are NULL. Strongly consistent per page (ConsistentRead). An
     * ACTIVE item whose branch-key-id is not S is KS_E_CORRUPT. out is initialized by the call
     * (ks_active_page_free). The versions of a key are listed with query_for_versions.
     */
    ks_status (*list_active)(struct ks_storage *s, const char *start_id, const char *start_type,
                             size_t limit, struct ks_active_page *out, struct ks_error *err);

    /*
     * version 5: runs a write built by storage/tx.c (struct ks_tx) all or nothing, every
     * condition checked, a failed one KS_E_MUTATION_CONFLICT. The five mutation writes above
     * are tx.c's shared functions over it (ks_tx_op_*): a driver fills those slots with them
     * and writes only this method.
     */
    ks_status (*run_tx)(struct ks_storage *s, struct ks_tx *tx, struct ks_error *err);

    /*
     * version 6: DeleteMutationIndex, keystored's repair of a mutation index whose commitment
     * is gone (the MPL has no way out of that state; docs/reference/mutations.md): deletes the
     * index under the index check (pageIndex, enc and uuid as read) and only while no
     * commitment exists, atomically. A driver fills it with ks_tx_op_delete_mutation_index.
     */
    ks_status (*delete_mutation_index)(struct ks_storage *s, const struct ks_mutation_index *index,
                                       struct ks_error *err);
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
