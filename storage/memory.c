/*
 * memory.c - in-memory storage backend for unit tests of the layers above storage. Same
 * semantics as sqlite.c (conditions checked and writes applied under one lock, all or nothing),
 * no persistence. Items are kept in an array and found by linear search: test-sized data only.
 */
#include "storage/storage.h"

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
