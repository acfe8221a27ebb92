/*
 * tx.h - a conditional multi-item write, the one shape every mutation write of the storage
 * interface takes (docs/reference/mutations.md section 8): a list of actions, each a Put, a
 * Delete or a bare condition check on one item, each with a condition. storage.c turns the
 * mutation operations into such lists (one place for the argument checks and the MPL's
 * conditions); each backend executes a list atomically, as DynamoDB's TransactWriteItems does.
 * Internal to storage/: only backends include it.
 */
#ifndef KS_STORAGE_TX_H
#define KS_STORAGE_TX_H

#include <stddef.h>

#include "storage/storage.h"

enum ks_tx_op { KS_TX_PUT, KS_TX_DELETE, KS_TX_CHECK };

enum ks_tx_cond {
    KS_TX_ANY,        /* no condition */
    KS_TX_NOT_EXISTS, /* attribute_not_exists(branch-key-id) */
    KS_TX_MATCHES     /* attribute_exists(branch-key-id) AND each attribute of expect is equal */
};

struct ks_tx_action {
    enum ks_tx_op op;
    enum ks_tx_cond cond;
    char *id;              /* owned: the item's branch-key-id */
    char *type;            /* owned: the item's type; names the item in a conflict message */
    struct ks_item item;   /* owned: PUT's item */
    struct ks_item expect; /* owned: MATCHES's attributes (name, type, value all compared) */
};

struct ks_tx {
    struct ks_tx_action *actions;
    size_t count;
    size_t cap;
};

void ks_tx_init(struct ks_tx *tx);
void ks_tx_free(struct ks_tx *tx);

/* The builders: check the arguments (KS_E_INVALID) and fill tx (initialized by the call). */
ks_status ks_tx_initialize_mutation(struct ks_tx *tx, const struct ks_storage_write *active,
                                    const struct ks_storage_write *version,
                                    const struct ks_storage_write *beacon,
                                    const struct ks_mutation_commitment *commitment,
                                    const struct ks_mutation_index *index, struct ks_error *err);
ks_status ks_tx_atomic_mutation(struct ks_tx *tx, const struct ks_storage_write *active,
                                const struct ks_storage_write *version,
                                const struct ks_storage_write *beacon,
                                const struct ks_storage_write *items, size_t count,
                                struct ks_error *err);
ks_status ks_tx_mutated_versions(struct ks_tx *tx, const struct ks_storage_write *items,
                                 size_t count, const struct ks_mutation_commitment *commitment,
                                 const struct ks_mutation_index *index,
                                 const struct ks_mutation_index *old_index, int end_mutation,
                                 struct ks_error *err);
ks_status ks_tx_delete_mutation(struct ks_tx *tx, const struct ks_mutation_commitment *commitment,
                                struct ks_error *err);
ks_status ks_tx_delete_mutation_index(struct ks_tx *tx, const struct ks_mutation_index *index,
                                      struct ks_error *err);
ks_status ks_tx_mutation_index(struct ks_tx *tx, const struct ks_mutation_commitment *commitment,
                               const struct ks_mutation_index *index, struct ks_error *err);

/*
 * The mutation writes of struct ks_storage_ops, shared by every driver: build the tx, then
 * s->ops->run_tx (the driver's only write method for mutations). Signatures and semantics are
 * those of the ops (storage/storage.h).
 */
ks_status ks_tx_op_write_initialize_mutation(struct ks_storage *s,
                                             const struct ks_storage_write *active,
                                             const struct ks_storage_write *version,
                                             const struct ks_storage_write *beacon,
                                             const struct ks_mutation_commitment *commitment,
                                             const struct ks_mutation_index *index,
                                             struct ks_error *err);
ks_status ks_tx_op_write_atomic_mutation(struct ks_storage *s,
                                         const struct ks_storage_write *active,
                                         const struct ks_storage_write *version,
                                         const struct ks_storage_write *beacon,
                                         const struct ks_storage_write *items, size_t count,
                                         struct ks_error *err);
ks_status ks_tx_op_write_mutated_versions(struct ks_storage *s,
                                          const struct ks_storage_write *items, size_t count,
                                          const struct ks_mutation_commitment *commitment,
                                          const struct ks_mutation_index *index,
                                          const struct ks_mutation_index *old_index,
                                          int end_mutation, struct ks_error *err);
ks_status ks_tx_op_delete_mutation(struct ks_storage *s,
                                   const struct ks_mutation_commitment *commitment,
                                   struct ks_error *err);
ks_status ks_tx_op_delete_mutation_index(struct ks_storage *s,
                                         const struct ks_mutation_index *index,
                                         struct ks_error *err);
ks_status ks_tx_op_write_mutation_index(struct ks_storage *s,
                                        const struct ks_mutation_commitment *commitment,
                                        const struct ks_mutation_index *index,
                                        struct ks_error *err);

/*
 * Does `stored` (NULL: no item) satisfy the action's condition? For backends that evaluate
 * conditions themselves (memory.c, sqlite.c). 1 or 0.
 */
int ks_tx_condition_holds(const struct ks_tx_action *a, const struct ks_item *stored);

/* The failed condition of action a: KS_E_MUTATION_CONFLICT naming the item. */
ks_status ks_tx_conflict(const struct ks_tx_action *a, struct ks_error *err);

/* QueryForVersions' argument checks (KS_E_INVALID), shared by the backends. */
ks_status ks_storage_check_query(const char *branch_key_id, const char *start, size_t page_size,
                                 struct ks_error *err);

/* A read version item must be a `branch:version:` item of branch_key_id (else KS_E_CORRUPT). */
ks_status ks_storage_check_version_read(const struct ks_item *item, const char *branch_key_id,
                                        struct ks_error *err);

/* Decodes the commitment / index items read (either may be NULL: absent) into out. */
ks_status ks_storage_mutation_state_from_items(const struct ks_item *commitment,
                                               const struct ks_item *index,
                                               struct ks_mutation_state *out, struct ks_error *err);

#endif
