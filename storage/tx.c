/*
 * tx.c - the mutation writes of the storage interface as conditional action lists (tx.h), with
 * the MPL's conditions (docs/reference/mutations.md section 8):
 *   create        attribute_not_exists(branch-key-id)
 *   overwrite     attribute_exists(branch-key-id) AND enc = old enc
 *   commitment    attribute_exists AND original, terminal, enc, uuid equal the commitment's
 *   index         attribute_exists AND pageIndex, enc, uuid equal the old index's
 * Every argument check lives here, so that all backends refuse the same calls.
 */
#include "storage/tx.h"

#include <stdlib.h>
#include <string.h>

void ks_tx_init(struct ks_tx *tx)
{
    tx->actions = NULL;
    tx->count = 0;
    tx->cap = 0;
}

void ks_tx_free(struct ks_tx *tx)
{
    size_t i;

    if (!tx)
        return;
    for (i = 0; i < tx->count; i++) {
        free(tx->actions[i].id);
        free(tx->actions[i].type);
        ks_item_free(&tx->actions[i].item);
        ks_item_free(&tx->actions[i].expect);
    }
    free(tx->actions);
    ks_tx_init(tx);
}

static ks_status oom(struct ks_error *err)
{
    return ks_error_set(err, KS_E_INTERNAL, "out of memory");
}

/* Appends an action on (id, type); *out points at it (item and expect empty). */
static ks_status add(struct ks_tx *tx, enum ks_tx_op op, enum ks_tx_cond cond, const char *id,
                     const char *type, struct ks_tx_action **out, struct ks_error *err)
{
    struct ks_tx_action *a;
    size_t i;

    /* One action per item, as DynamoDB requires of a transaction. */
    for (i = 0; i < tx->count; i++)
        if (strcmp(tx->actions[i].id, id) == 0 && strcmp(tx->actions[i].type, type) == 0)
            return ks_error_set(err, KS_E_INVALID, "item %s appears twice in one write", type);
    if (tx->count == tx->cap) {
        size_t cap = tx->cap ? tx->cap * 2 : 8;
        struct ks_tx_action *grown = realloc(tx->actions, cap * sizeof *grown);
        if (!grown)
            return oom(err);
        tx->actions = grown;
        tx->cap = cap;
    }
    a = &tx->actions[tx->count];
    memset(a, 0, sizeof *a);
    ks_item_init(&a->item);
    ks_item_init(&a->expect);
    a->op = op;
    a->cond = cond;
    a->id = strdup(id);
    a->type = strdup(type);
    tx->count++; /* counted now so that ks_tx_free frees what was allocated */
    if (!a->id || !a->type)
        return oom(err);
    *out = a;
    return KS_OK;
}

/* Copies attribute name of src into dst; absent in src is KS_E_INVALID. */
static ks_status expect_attr(struct ks_item *dst, const struct ks_item *src, const char *name,
                             const char *what, struct ks_error *err)
{
    const struct ks_attr *a = ks_item_get(src, name);
    int rc;

    if (!a)
        return ks_error_set(err, KS_E_INVALID, "%s: %s is missing", what, name);
    rc = a->type == KS_ATTR_B   ? ks_item_set_b(dst, name, a->value, a->len)
         : a->type == KS_ATTR_N ? ks_item_set_n(dst, name, (const char *)a->value)
                                : ks_item_set_s(dst, name, (const char *)a->value);
    return rc == 0 ? KS_OK : oom(err);
}

/* "branch:version:" followed by a non-empty version. */
static int is_version_type(const char *type)
{
    size_t n = strlen(KS_TYPE_VERSION_PREFIX);

    return type && strncmp(type, KS_TYPE_VERSION_PREFIX, n) == 0 && type[n] != '\0';
}

/*
 * Adds the Put of w: a create (old NULL) or an overwrite under the enc lock. want_type: the
 * required type, or NULL for any `branch:version:` type. old_required refuses a create.
 */
static ks_status add_write(struct ks_tx *tx, const struct ks_storage_write *w, const char *id,
                           const char *want_type, int old_required, struct ks_error *err)
{
    const char *item_id, *type, *what = want_type ? want_type : "version";
    struct ks_tx_action *a;
    ks_status st;

    if (!w || !w->item)
        return ks_error_set(err, KS_E_INVALID, "%s item is missing", what);
    item_id = ks_item_get_s(w->item, KS_ATTR_BRANCH_KEY_ID);
    type = ks_item_get_s(w->item, KS_ATTR_TYPE);
    if (!item_id || strcmp(item_id, id) != 0)
        return ks_error_set(err, KS_E_INVALID, "%s item: %s must be %s", what,
                            KS_ATTR_BRANCH_KEY_ID, "the mutation's branch key id");
    if (want_type ? !type || strcmp(type, want_type) != 0 : !is_version_type(type))
        return ks_error_set(err, KS_E_INVALID, "%s item: type must be %s", what,
                            want_type ? want_type : KS_TYPE_VERSION_PREFIX "<version>");
    if (old_required && !w->old)
        return ks_error_set(err, KS_E_INVALID, "%s item: an overwrite needs the item as read",
                            what);
    if (w->old) {
        const char *old_id = ks_item_get_s(w->old, KS_ATTR_BRANCH_KEY_ID);
        const char *old_type = ks_item_get_s(w->old, KS_ATTR_TYPE);
        const struct ks_attr *enc = ks_item_get(w->old, KS_ATTR_ENC);
        if (!old_id || !old_type || strcmp(old_id, id) != 0 || strcmp(old_type, type) != 0)
            return ks_error_set(err, KS_E_INVALID, "%s item: the old item has another key", what);
        if (!enc || enc->type != KS_ATTR_B)
            return ks_error_set(err, KS_E_INVALID, "%s item: the old item has no B %s", what,
                                KS_ATTR_ENC);
    }
    st = add(tx, KS_TX_PUT, w->old ? KS_TX_MATCHES : KS_TX_NOT_EXISTS, id, type, &a, err);
    if (st == KS_OK && ks_item_copy(&a->item, w->item) != 0)
        st = oom(err);
    if (st == KS_OK && w->old)
        st = expect_attr(&a->expect, w->old, KS_ATTR_ENC, what, err);
    return st;
}

/* Index and commitment must name the same mutation. */
static ks_status check_same_mutation(const struct ks_mutation_commitment *c,
                                     const struct ks_mutation_index *x, struct ks_error *err)
{
    if (!c->branch_key_id || !x->branch_key_id || strcmp(c->branch_key_id, x->branch_key_id) != 0)
        return ks_error_set(err, KS_E_INVALID, "mutation index and commitment name other keys");
    if (!c->uuid || !x->uuid || strcmp(c->uuid, x->uuid) != 0)
        return ks_error_set(err, KS_E_INVALID, "mutation index and commitment name other uuids");
    return KS_OK;
}

/* Adds an action on the commitment under the commitment check (original, terminal, enc, uuid). */
static ks_status add_commitment_checked(struct ks_tx *tx, enum ks_tx_op op,
                                        const struct ks_mutation_commitment *c,
                                        struct ks_error *err)
{
    static const char *const names[] = {KS_ATTR_ORIGINAL, KS_ATTR_TERMINAL, KS_ATTR_ENC,
                                        KS_ATTR_UUID};
    struct ks_tx_action *a;
    struct ks_item encoded;
    ks_status st;
    size_t i;

    st = ks_mutation_commitment_to_item(c, &encoded, err);
    if (st != KS_OK)
        return st;
    st = add(tx, op, KS_TX_MATCHES, c->branch_key_id, KS_TYPE_MUTATION_COMMITMENT, &a, err);
    for (i = 0; st == KS_OK && i < sizeof names / sizeof names[0]; i++)
        st = expect_attr(&a->expect, &encoded, names[i], "mutation commitment", err);
    ks_item_free(&encoded);
    return st;
}

/* Adds an action on the index under the index check with old's pageIndex, enc, uuid; PUT puts
 * `index`. */
static ks_status add_index_checked(struct ks_tx *tx, enum ks_tx_op op,
                                   const struct ks_mutation_index *index,
                                   const struct ks_mutation_index *old, struct ks_error *err)
{
    static const char *const names[] = {KS_ATTR_PAGE_INDEX, KS_ATTR_ENC, KS_ATTR_UUID};
    struct ks_tx_action *a;
    struct ks_item encoded;
    ks_status st;
    size_t i;

    st = ks_mutation_index_to_item(old, &encoded, err);
    if (st != KS_OK)
        return st;
    st = add(tx, op, KS_TX_MATCHES, old->branch_key_id, KS_TYPE_MUTATION_INDEX, &a, err);
    for (i = 0; st == KS_OK && i < sizeof names / sizeof names[0]; i++)
        st = expect_attr(&a->expect, &encoded, names[i], "mutation index", err);
    ks_item_free(&encoded);
    if (st == KS_OK && op == KS_TX_PUT)
        st = ks_mutation_index_to_item(index, &a->item, err);
    return st;
}

/* A bare existence condition (NOT_EXISTS) on (id, type). */
static ks_status add_absent_check(struct ks_tx *tx, const char *id, const char *type,
                                  struct ks_error *err)
{
    struct ks_tx_action *a;

    return add(tx, KS_TX_CHECK, KS_TX_NOT_EXISTS, id, type, &a, err);
}

/* ACTIVE (overwrite), the version (create or overwrite) and the beacon (overwrite). */
static ks_status add_active_version_beacon(struct ks_tx *tx, const char *id,
                                           const struct ks_storage_write *active,
                                           const struct ks_storage_write *version,
                                           const struct ks_storage_write *beacon,
                                           struct ks_error *err)
{
    ks_status st = add_write(tx, active, id, KS_TYPE_ACTIVE, 1, err);

    if (st == KS_OK)
        st = add_write(tx, version, id, NULL, 0, err);
    if (st == KS_OK)
        st = add_write(tx, beacon, id, KS_TYPE_BEACON, 1, err);
    return st;
}

/* Finishes a builder: on failure the list is freed so that nothing half-built escapes. */
static ks_status done(struct ks_tx *tx, ks_status st)
{
    if (st != KS_OK)
        ks_tx_free(tx);
    return st;
}

ks_status ks_tx_initialize_mutation(struct ks_tx *tx, const struct ks_storage_write *active,
                                    const struct ks_storage_write *version,
                                    const struct ks_storage_write *beacon,
                                    const struct ks_mutation_commitment *commitment,
                                    const struct ks_mutation_index *index, struct ks_error *err)
{
    struct ks_tx_action *a;
    ks_status st;

    ks_tx_init(tx);
    if (!commitment || !index)
        return ks_error_set(err, KS_E_INVALID, "mutation commitment and index are required");
    st = check_same_mutation(commitment, index, err);
    /* Creates first: a race with another InitializeMutation is reported on the commitment. */
    if (st == KS_OK)
        st = add(tx, KS_TX_PUT, KS_TX_NOT_EXISTS, commitment->branch_key_id,
                 KS_TYPE_MUTATION_COMMITMENT, &a, err);
    if (st == KS_OK)
        st = ks_mutation_commitment_to_item(commitment, &a->item, err);
    if (st == KS_OK)
        st = add(tx, KS_TX_PUT, KS_TX_NOT_EXISTS, index->branch_key_id, KS_TYPE_MUTATION_INDEX, &a,
                 err);
    if (st == KS_OK)
        st = ks_mutation_index_to_item(index, &a->item, err);
    if (st == KS_OK)
        st = add_active_version_beacon(tx, commitment->branch_key_id, active, version, beacon, err);
    return done(tx, st);
}

ks_status ks_tx_atomic_mutation(struct ks_tx *tx, const struct ks_storage_write *active,
                                const struct ks_storage_write *version,
                                const struct ks_storage_write *beacon,
                                const struct ks_storage_write *items, size_t count,
                                struct ks_error *err)
{
    const char *id;
    ks_status st;
    size_t i;

    ks_tx_init(tx);
    if (count > KS_STORAGE_MAX_ATOMIC_VERSIONS)
        return ks_error_set(err, KS_E_INVALID,
                            "an atomic mutation writes at most %d versions besides the ACTIVE's",
                            KS_STORAGE_MAX_ATOMIC_VERSIONS);
    if (count && !items)
        return ks_error_set(err, KS_E_INVALID, "version items are missing");
    id = active && active->item ? ks_item_get_s(active->item, KS_ATTR_BRANCH_KEY_ID) : NULL;
    if (!id || !*id)
        return ks_error_set(err, KS_E_INVALID, "ACTIVE item: %s must be a non-empty S attribute",
                            KS_ATTR_BRANCH_KEY_ID);
    /* No mutation may be in flight (the seed's condition for WriteAtomicMutation). */
    st = add_absent_check(tx, id, KS_TYPE_MUTATION_COMMITMENT, err);
    if (st == KS_OK)
        st = add_absent_check(tx, id, KS_TYPE_MUTATION_INDEX, err);
    if (st == KS_OK)
        st = add_active_version_beacon(tx, id, active, version, beacon, err);
    for (i = 0; st == KS_OK && i < count; i++)
        st = add_write(tx, &items[i], id, NULL, 1, err);
    return done(tx, st);
}

ks_status ks_tx_mutated_versions(struct ks_tx *tx, const struct ks_storage_write *items,
                                 size_t count, const struct ks_mutation_commitment *commitment,
                                 const struct ks_mutation_index *index,
                                 const struct ks_mutation_index *old_index, int end_mutation,
                                 struct ks_error *err)
{
    ks_status st;
    size_t i;

    ks_tx_init(tx);
    if (count > KS_STORAGE_MAX_PAGE)
        return ks_error_set(err, KS_E_INVALID, "a page writes at most %d versions",
                            KS_STORAGE_MAX_PAGE);
    if (count && !items)
        return ks_error_set(err, KS_E_INVALID, "version items are missing");
    if (!commitment || !old_index || (!end_mutation && !index))
        return ks_error_set(err, KS_E_INVALID, "mutation commitment and index are required");
    st = check_same_mutation(commitment, old_index, err);
    if (st == KS_OK && !end_mutation)
        st = check_same_mutation(commitment, index, err);
    if (st == KS_OK)
        st = add_commitment_checked(tx, end_mutation ? KS_TX_DELETE : KS_TX_CHECK, commitment, err);
    if (st == KS_OK)
        st = add_index_checked(tx, end_mutation ? KS_TX_DELETE : KS_TX_PUT, index, old_index, err);
    for (i = 0; st == KS_OK && i < count; i++)
        st = add_write(tx, &items[i], commitment->branch_key_id, NULL, 1, err);
    return done(tx, st);
}

ks_status ks_tx_delete_mutation(struct ks_tx *tx, const struct ks_mutation_commitment *commitment,
                                struct ks_error *err)
{
    struct ks_tx_action *a;
    ks_status st;

    ks_tx_init(tx);
    if (!commitment)
        return ks_error_set(err, KS_E_INVALID, "mutation commitment is required");
    st = add_commitment_checked(tx, KS_TX_DELETE, commitment, err);
    if (st == KS_OK)
        st = add(tx, KS_TX_DELETE, KS_TX_ANY, commitment->branch_key_id, KS_TYPE_MUTATION_INDEX, &a,
                 err);
    return done(tx, st);
}

/* The index of a mutation whose commitment is gone: the index as read, and no commitment. */
ks_status ks_tx_delete_mutation_index(struct ks_tx *tx, const struct ks_mutation_index *index,
                                      struct ks_error *err)
{
    ks_status st;

    ks_tx_init(tx);
    if (!index)
        return ks_error_set(err, KS_E_INVALID, "mutation index is required");
    st = add_absent_check(tx, index->branch_key_id, KS_TYPE_MUTATION_COMMITMENT, err);
    if (st == KS_OK)
        st = add_index_checked(tx, KS_TX_DELETE, NULL, index, err);
    return done(tx, st);
}

ks_status ks_tx_mutation_index(struct ks_tx *tx, const struct ks_mutation_commitment *commitment,
                               const struct ks_mutation_index *index, struct ks_error *err)
{
    struct ks_tx_action *a;
    ks_status st;

    ks_tx_init(tx);
    if (!commitment || !index)
        return ks_error_set(err, KS_E_INVALID, "mutation commitment and index are required");
    st = check_same_mutation(commitment, index, err);
    if (st == KS_OK)
        st = add_commitment_checked(tx, KS_TX_CHECK, commitment, err);
    if (st == KS_OK)
        st = add(tx, KS_TX_PUT, KS_TX_NOT_EXISTS, index->branch_key_id, KS_TYPE_MUTATION_INDEX, &a,
                 err);
    if (st == KS_OK)
        st = ks_mutation_index_to_item(index, &a->item, err);
    return done(tx, st);
}

static int attr_equal(const struct ks_attr *a, const struct ks_attr *b)
{
    return a && b && a->type == b->type && a->len == b->len &&
           (a->len == 0 || memcmp(a->value, b->value, a->len) == 0);
}

int ks_tx_condition_holds(const struct ks_tx_action *a, const struct ks_item *stored)
{
    size_t i;

    switch (a->cond) {
    case KS_TX_ANY:
        return 1;
    case KS_TX_NOT_EXISTS:
        return stored == NULL;
    case KS_TX_MATCHES:
        if (!stored)
            return 0;
        for (i = 0; i < a->expect.count; i++)
            if (!attr_equal(&a->expect.attrs[i], ks_item_get(stored, a->expect.attrs[i].name)))
                return 0;
        return 1;
    }
    return 0;
}

ks_status ks_tx_conflict(const struct ks_tx_action *a, struct ks_error *err)
{
    const char *why = a->cond == KS_TX_NOT_EXISTS ? "it exists" : "it changed or is gone";

    return ks_error_set(err, KS_E_MUTATION_CONFLICT,
                        "mutation write lost a race: the condition on %s failed (%s); nothing "
                        "was written",
                        a->type, why);
}

ks_status ks_storage_check_query(const char *branch_key_id, const char *start, size_t page_size,
                                 struct ks_error *err)
{
    if (!branch_key_id || !*branch_key_id)
        return ks_error_set(err, KS_E_INVALID, "branch key id is empty");
    if (page_size < 1 || page_size > KS_STORAGE_MAX_PAGE)
        return ks_error_set(err, KS_E_INVALID, "page size must be 1..%d", KS_STORAGE_MAX_PAGE);
    /* The MPL's pageIndex rule: the prefix and something after it (section 1). */
    if (start && *start && !is_version_type(start))
        return ks_error_set(err, KS_E_INVALID, "page token must be %s<version>",
                            KS_TYPE_VERSION_PREFIX);
    return KS_OK;
}

ks_status ks_storage_check_version_read(const struct ks_item *item, const char *branch_key_id,
                                        struct ks_error *err)
{
    const char *id = ks_item_get_s(item, KS_ATTR_BRANCH_KEY_ID);

    if (!id || strcmp(id, branch_key_id) != 0 ||
        !is_version_type(ks_item_get_s(item, KS_ATTR_TYPE)))
        return ks_error_set(err, KS_E_CORRUPT,
                            "stored item is not valid: not a branch key version of this key");
    return KS_OK;
}

ks_status ks_storage_mutation_state_from_items(const struct ks_item *commitment,
                                               const struct ks_item *index,
                                               struct ks_mutation_state *out, struct ks_error *err)
{
    ks_status st = KS_OK;

    ks_mutation_state_init(out);
    if (commitment) {
        st = ks_mutation_commitment_from_item(commitment, &out->commitment, err);
        out->has_commitment = st == KS_OK;
    }
    if (st == KS_OK && index) {
        st = ks_mutation_index_from_item(index, &out->index, err);
        out->has_index = st == KS_OK;
    }
    if (st != KS_OK)
        ks_mutation_state_free(out);
    return st;
}

/* --- the mutation writes of every driver ---------------------------------------------------- */

/* Runs a built tx through the driver (or returns the builder's failure) and frees it. */
static ks_status run(struct ks_storage *s, struct ks_tx *tx, ks_status built, struct ks_error *err)
{
    ks_status st = built == KS_OK ? s->ops->run_tx(s, tx, err) : built;
    ks_tx_free(tx);
    return st;
}

ks_status ks_tx_op_write_initialize_mutation(struct ks_storage *s,
                                             const struct ks_storage_write *active,
                                             const struct ks_storage_write *version,
                                             const struct ks_storage_write *beacon,
                                             const struct ks_mutation_commitment *commitment,
                                             const struct ks_mutation_index *index,
                                             struct ks_error *err)
{
    struct ks_tx tx;
    ks_status st = ks_tx_initialize_mutation(&tx, active, version, beacon, commitment, index, err);
    return run(s, &tx, st, err);
}

ks_status ks_tx_op_write_atomic_mutation(struct ks_storage *s,
                                         const struct ks_storage_write *active,
                                         const struct ks_storage_write *version,
                                         const struct ks_storage_write *beacon,
                                         const struct ks_storage_write *items, size_t count,
                                         struct ks_error *err)
{
    struct ks_tx tx;
    ks_status st = ks_tx_atomic_mutation(&tx, active, version, beacon, items, count, err);
    return run(s, &tx, st, err);
}

ks_status ks_tx_op_write_mutated_versions(struct ks_storage *s,
                                          const struct ks_storage_write *items, size_t count,
                                          const struct ks_mutation_commitment *commitment,
                                          const struct ks_mutation_index *index,
                                          const struct ks_mutation_index *old_index,
                                          int end_mutation, struct ks_error *err)
{
    struct ks_tx tx;
    ks_status st =
        ks_tx_mutated_versions(&tx, items, count, commitment, index, old_index, end_mutation, err);
    return run(s, &tx, st, err);
}

ks_status ks_tx_op_delete_mutation(struct ks_storage *s,
                                   const struct ks_mutation_commitment *commitment,
                                   struct ks_error *err)
{
    struct ks_tx tx;
    ks_status st = ks_tx_delete_mutation(&tx, commitment, err);
    return run(s, &tx, st, err);
}

ks_status ks_tx_op_delete_mutation_index(struct ks_storage *s,
                                         const struct ks_mutation_index *index,
                                         struct ks_error *err)
{
    struct ks_tx tx;
    ks_status st = ks_tx_delete_mutation_index(&tx, index, err);
    return run(s, &tx, st, err);
}

ks_status ks_tx_op_write_mutation_index(struct ks_storage *s,
                                        const struct ks_mutation_commitment *commitment,
                                        const struct ks_mutation_index *index, struct ks_error *err)
{
    struct ks_tx tx;
    ks_status st = ks_tx_mutation_index(&tx, commitment, index, err);
    return run(s, &tx, st, err);
}
