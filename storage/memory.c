/*
 * memory.c - in-memory storage backend for unit tests of the layers above storage. Same
 * semantics as sqlite.c (conditions checked and writes applied under one lock, all or nothing),
 * no persistence. Items are kept in an array and found by linear search: test-sized data only.
 */
#include "storage/storage.h"
#include "storage/tx.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct memory_storage {
    struct ks_storage base; /* first: struct ks_storage * <-> struct memory_storage * */
    pthread_mutex_t lock;   /* guards items and count: each op is one critical section */
    struct ks_item *items;
    size_t count;
    size_t cap;
};

static struct memory_storage *from_base(struct ks_storage *s)
{
    return (struct memory_storage *)s;
}

/* The stored item with key (id, type), or NULL. Caller holds the lock. */
static struct ks_item *lookup(struct memory_storage *m, const char *id, const char *type)
{
    size_t i;

    for (i = 0; i < m->count; i++) {
        const char *item_id = ks_item_get_s(&m->items[i], KS_ATTR_BRANCH_KEY_ID);
        const char *item_type = ks_item_get_s(&m->items[i], KS_ATTR_TYPE);
        if (strcmp(item_id, id) == 0 && strcmp(item_type, type) == 0)
            return &m->items[i];
    }
    return NULL;
}

/* Makes room for n more items so that the inserts that follow cannot fail half-way. */
static int reserve(struct memory_storage *m, size_t n)
{
    size_t cap = m->cap ? m->cap : 16;
    struct ks_item *grown;

    while (cap < m->count + n)
        cap *= 2;
    if (cap == m->cap)
        return 0;
    grown = realloc(m->items, cap * sizeof *grown);
    if (!grown)
        return -1;
    m->items = grown;
    m->cap = cap;
    return 0;
}

static ks_status memory_create_key_store(struct ks_storage *s, char **table_id,
                                         struct ks_error *err)
{
    (void)s;
    *table_id = strdup("memory:");
    if (!*table_id)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    return KS_OK;
}

static ks_status memory_info(struct ks_storage *s, struct ks_storage_info *out,
                             struct ks_error *err)
{
    (void)s;
    (void)err;
    memset(out, 0, sizeof *out);
    memcpy(out->name, "memory", sizeof "memory");
    memcpy(out->kind, "memory", sizeof "memory");
    return KS_OK;
}

static ks_status memory_write_new_branch_key(struct ks_storage *s, const struct ks_item *active,
                                             const struct ks_item *version,
                                             const struct ks_item *beacon, struct ks_error *err)
{
    struct memory_storage *m = from_base(s);
    const struct ks_item *items[3] = {version, active, beacon};
    struct ks_item copies[3];
    ks_status st = KS_OK;
    size_t i;

    st = ks_storage_check_new_branch_key(active, version, beacon, err);
    if (st != KS_OK)
        return st;
    for (i = 0; i < 3; i++)
        ks_item_init(&copies[i]);
    for (i = 0; i < 3; i++)
        if (ks_item_copy(&copies[i], items[i]) != 0) {
            st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
            goto out;
        }

    pthread_mutex_lock(&m->lock);
    /* attribute_not_exists on each of the three Puts (docs/reference/branch-key-store.md section
     * 4). */
    for (i = 0; i < 3 && st == KS_OK; i++)
        if (lookup(m, ks_item_get_s(items[i], KS_ATTR_BRANCH_KEY_ID),
                   ks_item_get_s(items[i], KS_ATTR_TYPE)))
            st = ks_error_set(err, KS_E_ALREADY_EXISTS, "branch key item %s already exists",
                              ks_item_get_s(items[i], KS_ATTR_TYPE));
    if (st == KS_OK && reserve(m, 3) != 0)
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    if (st == KS_OK)
        for (i = 0; i < 3; i++) {
            m->items[m->count++] = copies[i];
            ks_item_init(&copies[i]);
        }
    pthread_mutex_unlock(&m->lock);
out:
    for (i = 0; i < 3; i++)
        ks_item_free(&copies[i]);
    return st;
}

static ks_status memory_write_new_version(struct ks_storage *s, const struct ks_item *version,
                                          const struct ks_item *active,
                                          const unsigned char *old_enc, size_t old_enc_len,
                                          struct ks_error *err)
{
    struct memory_storage *m = from_base(s);
    struct ks_item version_copy, active_copy;
    struct ks_item *stored;
    const struct ks_attr *enc;
    const char *id;
    ks_status st;

    st = ks_storage_check_new_version(version, active, err);
    if (st != KS_OK)
        return st;
    id = ks_item_get_s(active, KS_ATTR_BRANCH_KEY_ID);
    ks_item_init(&version_copy);
    ks_item_init(&active_copy);
    if (ks_item_copy(&version_copy, version) != 0 || ks_item_copy(&active_copy, active) != 0) {
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
        goto out;
    }

    pthread_mutex_lock(&m->lock);
    /* Grow first: growing moves the array, which would leave `stored` dangling. */
    if (reserve(m, 1) != 0) {
        pthread_mutex_unlock(&m->lock);
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
        goto out;
    }
    /* attribute_exists(branch-key-id) AND enc = :encOld (docs/reference/branch-key-store.md
     * section 9). */
    stored = lookup(m, id, KS_TYPE_ACTIVE);
    enc = stored ? ks_item_get(stored, KS_ATTR_ENC) : NULL;
    if (!enc || enc->type != KS_ATTR_B || enc->len != old_enc_len ||
        (old_enc_len && memcmp(enc->value, old_enc, old_enc_len) != 0))
        st = ks_error_set(err, KS_E_VERSION_RACE, KS_STORAGE_MSG_VERSION_RACE);
    else if (lookup(m, id, ks_item_get_s(version, KS_ATTR_TYPE)))
        st = ks_error_set(err, KS_E_ALREADY_EXISTS, "branch key version already exists");
    if (st == KS_OK) {
        /* Nothing below can fail: the write is all or nothing. */
        ks_item_free(stored);
        *stored = active_copy;
        ks_item_init(&active_copy);
        m->items[m->count++] = version_copy;
        ks_item_init(&version_copy);
    }
    pthread_mutex_unlock(&m->lock);
out:
    ks_item_free(&version_copy);
    ks_item_free(&active_copy);
    return st;
}

static ks_status memory_get(struct ks_storage *s, const char *id, const char *type,
                            struct ks_item *out, struct ks_error *err)
{
    struct memory_storage *m = from_base(s);
    const struct ks_item *stored;
    ks_status st = KS_OK;

    ks_item_init(out);
    pthread_mutex_lock(&m->lock);
    stored = lookup(m, id, type);
    if (!stored)
        st = ks_error_set(err, KS_E_NOT_FOUND, KS_STORAGE_MSG_NOT_FOUND);
    else if (ks_item_copy(out, stored) != 0)
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    pthread_mutex_unlock(&m->lock);
    return st;
}

static ks_status memory_get_active(struct ks_storage *s, const char *branch_key_id,
                                   struct ks_item *out, struct ks_error *err)
{
    return memory_get(s, branch_key_id, KS_TYPE_ACTIVE, out, err);
}

static ks_status memory_get_version(struct ks_storage *s, const char *branch_key_id,
                                    const char *version, struct ks_item *out, struct ks_error *err)
{
    return ks_storage_get_version_via(memory_get, s, branch_key_id, version, out, err);
}

static ks_status memory_get_beacon(struct ks_storage *s, const char *branch_key_id,
                                   struct ks_item *out, struct ks_error *err)
{
    return memory_get(s, branch_key_id, KS_TYPE_BEACON, out, err);
}

static ks_status memory_ping(struct ks_storage *s, struct ks_error *err)
{
    (void)s;
    (void)err;
    return KS_OK;
}

static ks_status memory_has_items(struct ks_storage *s, int *out, struct ks_error *err)
{
    struct memory_storage *m = from_base(s);

    (void)err;
    pthread_mutex_lock(&m->lock);
    *out = m->count > 0;
    pthread_mutex_unlock(&m->lock);
    return KS_OK;
}

/* --- Mutations (docs/reference/mutations.md section 8) -------------------------------------- */

/* Removes the stored item at p (order is not kept: lookups are linear anyway). Lock held. */
static void remove_at(struct memory_storage *m, struct ks_item *p)
{
    ks_item_free(p);
    *p = m->items[--m->count];
}

/*
 * Runs tx atomically: every condition is evaluated against the state before any write, then
 * all writes are applied, under one lock. The PUT items are moved out of tx (tx is the
 * caller's to free).
 */
static ks_status memory_execute(struct memory_storage *m, struct ks_tx *tx, struct ks_error *err)
{
    ks_status st = KS_OK;
    size_t i;

    pthread_mutex_lock(&m->lock);
    for (i = 0; i < tx->count && st == KS_OK; i++) {
        struct ks_tx_action *a = &tx->actions[i];
        if (!ks_tx_condition_holds(a, lookup(m, a->id, a->type)))
            st = ks_tx_conflict(a, err);
    }
    /* Room for every Put first, so that nothing below can fail half-way. */
    if (st == KS_OK && reserve(m, tx->count) != 0)
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    for (i = 0; i < tx->count && st == KS_OK; i++) {
        struct ks_tx_action *a = &tx->actions[i];
        struct ks_item *stored = lookup(m, a->id, a->type);
        if (a->op == KS_TX_PUT) {
            if (stored)
                ks_item_free(stored);
            else
                stored = &m->items[m->count++];
            *stored = a->item;
            ks_item_init(&a->item);
        } else if (a->op == KS_TX_DELETE && stored) {
            remove_at(m, stored);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return st;
}

/* run_tx: executes a built tx under the lock (storage/tx.c ks_tx_op_* call it). */
static ks_status memory_run_tx(struct ks_storage *s, struct ks_tx *tx, struct ks_error *err)
{
    return memory_execute(from_base(s), tx, err);
}

/* Copy of the stored item (id, type), or an empty item and *found 0. Lock held. */
static int copy_if_present(struct memory_storage *m, const char *id, const char *type,
                           struct ks_item *out, int *found)
{
    const struct ks_item *stored = lookup(m, id, type);

    *found = stored != NULL;
    return stored ? ks_item_copy(out, stored) : 0;
}

/* The items a mutation reads, copied under one lock: one consistent view. */
static const char *const mutation_types[4] = {KS_TYPE_MUTATION_COMMITMENT, KS_TYPE_MUTATION_INDEX,
                                              KS_TYPE_ACTIVE, KS_TYPE_BEACON};

/* Copies the first n of mutation_types for id (found[i] 0 when absent). */
static ks_status memory_read_items(struct memory_storage *m, const char *id, size_t n,
                                   struct ks_item items[4], int found[4], struct ks_error *err)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < 4; i++) {
        ks_item_init(&items[i]);
        found[i] = 0;
    }
    pthread_mutex_lock(&m->lock);
    for (i = 0; i < n && rc == 0; i++)
        rc = copy_if_present(m, id, mutation_types[i], &items[i], &found[i]);
    pthread_mutex_unlock(&m->lock);
    return rc == 0 ? KS_OK : ks_error_set(err, KS_E_INTERNAL, "out of memory");
}

static void free_items(struct ks_item items[4])
{
    size_t i;

    for (i = 0; i < 4; i++)
        ks_item_free(&items[i]);
}

static ks_status memory_get_mutation(struct ks_storage *s, const char *branch_key_id,
                                     struct ks_mutation_state *out, struct ks_error *err)
{
    struct ks_item items[4];
    int found[4];
    ks_status st = memory_read_items(from_base(s), branch_key_id, 2, items, found, err);

    if (st == KS_OK)
        st = ks_storage_mutation_state_from_items(found[0] ? &items[0] : NULL,
                                                  found[1] ? &items[1] : NULL, out, err);
    else
        ks_mutation_state_init(out);
    free_items(items);
    return st;
}

static ks_status memory_get_items_for_initialize_mutation(struct ks_storage *s,
                                                          const char *branch_key_id,
                                                          struct ks_mutation_init_items *out,
                                                          struct ks_error *err)
{
    struct ks_item items[4];
    int found[4];
    ks_status st;

    ks_mutation_init_items_init(out);
    st = memory_read_items(from_base(s), branch_key_id, 4, items, found, err);
    if (st == KS_OK && (!found[2] || !found[3]))
        st = ks_error_set(err, KS_E_NOT_FOUND, KS_STORAGE_MSG_NOT_FOUND);
    if (st == KS_OK)
        st = ks_storage_mutation_state_from_items(found[0] ? &items[0] : NULL,
                                                  found[1] ? &items[1] : NULL, &out->mutation, err);
    if (st == KS_OK) {
        out->active = items[2];
        out->beacon = items[3];
        ks_item_init(&items[2]);
        ks_item_init(&items[3]);
    }
    free_items(items);
    return st;
}

/* Ascending bytewise order of `type`, DynamoDB's sort-key order. */
static int by_type(const void *a, const void *b)
{
    return strcmp(ks_item_get_s(a, KS_ATTR_TYPE), ks_item_get_s(b, KS_ATTR_TYPE));
}

/* Copies the version items of id after `start` into a sorted array. Lock held. */
static int collect_versions(struct memory_storage *m, const char *id, const char *start,
                            struct ks_item **out, size_t *n)
{
    size_t i, prefix = strlen(KS_TYPE_VERSION_PREFIX);

    *out = NULL;
    *n = 0;
    if (m->count == 0)
        return 0;
    *out = calloc(m->count, sizeof **out);
    if (!*out)
        return -1;
    for (i = 0; i < m->count; i++) {
        const char *type = ks_item_get_s(&m->items[i], KS_ATTR_TYPE);
        if (strcmp(ks_item_get_s(&m->items[i], KS_ATTR_BRANCH_KEY_ID), id) != 0 ||
            strncmp(type, KS_TYPE_VERSION_PREFIX, prefix) != 0 ||
            (start && strcmp(type, start) <= 0))
            continue;
        ks_item_init(&(*out)[*n]);
        if (ks_item_copy(&(*out)[*n], &m->items[i]) != 0)
            return -1;
        (*n)++;
    }
    qsort(*out, *n, sizeof **out, by_type);
    return 0;
}

static ks_status memory_query_for_versions(struct ks_storage *s, const char *branch_key_id,
                                           const char *start, size_t page_size,
                                           struct ks_version_page *out, struct ks_error *err)
{
    struct memory_storage *m = from_base(s);
    struct ks_item *all;
    size_t n, i;
    int rc;

    ks_version_page_init(out);
    ks_status st = ks_storage_check_query(branch_key_id, start, page_size, err);
    if (st != KS_OK)
        return st;
    pthread_mutex_lock(&m->lock);
    rc = collect_versions(m, branch_key_id, start && *start ? start : NULL, &all, &n);
    pthread_mutex_unlock(&m->lock);
    if (rc == 0 && n > page_size) {
        out->next = strdup(ks_item_get_s(&all[page_size - 1], KS_ATTR_TYPE));
        rc = out->next ? 0 : -1;
    }
    for (i = page_size; i < n; i++)
        ks_item_free(&all[i]);
    out->items = all;
    out->count = n < page_size ? n : page_size;
    if (rc != 0) {
        ks_version_page_free(out);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    return KS_OK;
}

/* Ascending bytewise order of `branch-key-id` (the SQLite backend's storage order). */
static int by_id(const void *a, const void *b)
{
    return strcmp(ks_item_get_s(a, KS_ATTR_BRANCH_KEY_ID), ks_item_get_s(b, KS_ATTR_BRANCH_KEY_ID));
}

/* Copies the ACTIVE items after start_id (NULL: all) into a sorted array. Lock held. */
static int collect_active(struct memory_storage *m, const char *start_id, struct ks_item **out,
                          size_t *n)
{
    size_t i;

    *n = 0;
    *out = calloc(m->count ? m->count : 1, sizeof **out);
    if (!*out)
        return -1;
    for (i = 0; i < m->count; i++) {
        const char *id = ks_item_get_s(&m->items[i], KS_ATTR_BRANCH_KEY_ID);
        if (strcmp(ks_item_get_s(&m->items[i], KS_ATTR_TYPE), KS_TYPE_ACTIVE) != 0 ||
            (start_id && strcmp(id, start_id) <= 0))
            continue;
        ks_item_init(&(*out)[*n]);
        if (ks_item_copy(&(*out)[*n], &m->items[i]) != 0)
            return -1;
        (*n)++;
    }
    qsort(*out, *n, sizeof **out, by_id);
    return 0;
}

static ks_status memory_list_active(struct ks_storage *s, const char *start_id,
                                    const char *start_type, size_t limit,
                                    struct ks_active_page *out, struct ks_error *err)
{
    struct memory_storage *m = from_base(s);
    struct ks_item *all = NULL;
    size_t n = 0, i;
    int rc;

    ks_active_page_init(out);
    ks_status st = ks_storage_check_list(start_id, start_type, limit, err);
    if (st != KS_OK)
        return st;
    pthread_mutex_lock(&m->lock);
    rc = collect_active(m, start_id, &all, &n);
    pthread_mutex_unlock(&m->lock);
    out->items = all;
    out->count = n < limit ? n : limit;
    for (i = limit; i < n; i++)
        ks_item_free(&all[i]);
    if (rc == 0 && n > limit) {
        out->next_id = strdup(ks_item_get_s(&all[limit - 1], KS_ATTR_BRANCH_KEY_ID));
        out->next_type = strdup(KS_TYPE_ACTIVE);
        rc = out->next_id && out->next_type ? 0 : -1;
    }
    if (rc != 0) {
        ks_active_page_free(out);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    return KS_OK;
}

static void memory_destroy(struct ks_storage *s)
{
    struct memory_storage *m = from_base(s);
    size_t i;

    for (i = 0; i < m->count; i++)
        ks_item_free(&m->items[i]);
    free(m->items);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static const struct ks_storage_ops memory_ops = {
    .version = KS_STORAGE_OPS_VERSION,
    .name = "memory",
    .create_key_store = memory_create_key_store,
    .info = memory_info,
    .write_new_branch_key = memory_write_new_branch_key,
    .write_new_version = memory_write_new_version,
    .get_active = memory_get_active,
    .get_version = memory_get_version,
    .get_beacon = memory_get_beacon,
    .ping = memory_ping,
    .destroy = memory_destroy,
    .has_items = memory_has_items,
    .get_items_for_initialize_mutation = memory_get_items_for_initialize_mutation,
    .write_initialize_mutation = ks_tx_op_write_initialize_mutation,
    .write_atomic_mutation = ks_tx_op_write_atomic_mutation,
    .query_for_versions = memory_query_for_versions,
    .write_mutated_versions = ks_tx_op_write_mutated_versions,
    .get_mutation = memory_get_mutation,
    .delete_mutation = ks_tx_op_delete_mutation,
    .delete_mutation_index = ks_tx_op_delete_mutation_index,
    .write_mutation_index = ks_tx_op_write_mutation_index,
    .list_active = memory_list_active,
    .run_tx = memory_run_tx,
};

ks_status ks_storage_memory_create(struct ks_storage **out, struct ks_error *err)
{
    struct memory_storage *m = calloc(1, sizeof *m);

    *out = NULL;
    if (!m)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return ks_error_set(err, KS_E_INTERNAL, "pthread_mutex_init failed");
    }
    m->base.ops = &memory_ops;
    *out = &m->base;
    return KS_OK;
}
