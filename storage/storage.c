/*
 * storage.c - what every storage backend shares: destroy, and the checks of the items a write is
 * given and a read returns, so that the SQLite, memory and DynamoDB backends accept and refuse
 * exactly the same items.
 */
#include "storage/storage.h"

#include <stdlib.h>
#include <string.h>

void ks_storage_destroy(struct ks_storage *s)
{
    if (s)
        s->ops->destroy(s);
}

/*
 * The key attributes (docs/reference/branch-key-store.md section 1: `branch-key-id` S HASH, `type`
 * S RANGE) must be present, S and non-empty: DynamoDB refuses an empty key attribute, and the
 * SQLite primary key is built from them.
 */
static ks_status check_key(const struct ks_item *item, const char *what, const char **id,
                           const char **type, struct ks_error *err)
{
    *id = ks_item_get_s(item, KS_ATTR_BRANCH_KEY_ID);
    *type = ks_item_get_s(item, KS_ATTR_TYPE);
    if (!*id || !**id)
        return ks_error_set(err, KS_E_INVALID, "%s item: %s must be a non-empty S attribute", what,
                            KS_ATTR_BRANCH_KEY_ID);
    if (!*type || !**type)
        return ks_error_set(err, KS_E_INVALID, "%s item: %s must be a non-empty S attribute", what,
                            KS_ATTR_TYPE);
    return KS_OK;
}

/* "branch:version:" followed by a non-empty version (section 3 read validation). */
static int is_version_type(const char *type)
{
    size_t n = strlen(KS_TYPE_VERSION_PREFIX);

    return strncmp(type, KS_TYPE_VERSION_PREFIX, n) == 0 && type[n] != '\0';
}

static ks_status check_active_and_version(const struct ks_item *active,
                                          const struct ks_item *version, const char **id,
                                          struct ks_error *err)
{
    const char *active_type, *version_id, *version_type;
    ks_status st;

    st = check_key(active, "ACTIVE", id, &active_type, err);
    if (st != KS_OK)
        return st;
    st = check_key(version, "version", &version_id, &version_type, err);
    if (st != KS_OK)
        return st;
    if (strcmp(active_type, KS_TYPE_ACTIVE) != 0)
        return ks_error_set(err, KS_E_INVALID, "ACTIVE item: type must be %s", KS_TYPE_ACTIVE);
    if (!is_version_type(version_type))
        return ks_error_set(err, KS_E_INVALID, "version item: type must be %s<version>",
                            KS_TYPE_VERSION_PREFIX);
    if (strcmp(*id, version_id) != 0)
        return ks_error_set(err, KS_E_INVALID, "the items of one write must share %s",
                            KS_ATTR_BRANCH_KEY_ID);
    return KS_OK;
}

ks_status ks_storage_check_new_branch_key(const struct ks_item *active,
                                          const struct ks_item *version,
                                          const struct ks_item *beacon, struct ks_error *err)
{
    const char *id, *beacon_id, *beacon_type;
    ks_status st;

    st = check_active_and_version(active, version, &id, err);
    if (st != KS_OK)
        return st;
    st = check_key(beacon, "beacon", &beacon_id, &beacon_type, err);
    if (st != KS_OK)
        return st;
    if (strcmp(beacon_type, KS_TYPE_BEACON) != 0)
        return ks_error_set(err, KS_E_INVALID, "beacon item: type must be %s", KS_TYPE_BEACON);
    if (strcmp(id, beacon_id) != 0)
        return ks_error_set(err, KS_E_INVALID, "the items of one write must share %s",
                            KS_ATTR_BRANCH_KEY_ID);
    return KS_OK;
}

ks_status ks_storage_check_new_version(const struct ks_item *version, const struct ks_item *active,
                                       struct ks_error *err)
{
    const char *id;

    return check_active_and_version(active, version, &id, err);
}

ks_status ks_storage_check_read(const struct ks_item *item, const char *branch_key_id,
                                const char *type, struct ks_error *err)
{
    const char *id = ks_item_get_s(item, KS_ATTR_BRANCH_KEY_ID);
    const char *stored_type = ks_item_get_s(item, KS_ATTR_TYPE);

    /* The MPL requires the returned key to equal the requested one (section 3). */
    if (!id || strcmp(id, branch_key_id) != 0 || !stored_type || strcmp(stored_type, type) != 0)
        return ks_error_set(err, KS_E_CORRUPT,
                            "stored item is not valid: its key attributes do not match its key");
    return KS_OK;
}

ks_status ks_storage_get_version_via(ks_storage_get_fn get, struct ks_storage *s,
                                     const char *branch_key_id, const char *version,
                                     struct ks_item *out, struct ks_error *err)
{
    size_t p = strlen(KS_TYPE_VERSION_PREFIX), v = strlen(version);
    char *type = malloc(p + v + 1);
    ks_status st;

    if (!type) {
        ks_item_init(out);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    memcpy(type, KS_TYPE_VERSION_PREFIX, p);
    memcpy(type + p, version, v + 1);
    st = get(s, branch_key_id, type, out, err);
    free(type);
    return st;
}

/* --- Mutation operation arguments ---------------------------------------------------------- */

void ks_mutation_state_init(struct ks_mutation_state *st)
{
    st->has_commitment = 0;
    st->has_index = 0;
    ks_mutation_commitment_init(&st->commitment);
    ks_mutation_index_init(&st->index);
}

void ks_mutation_state_free(struct ks_mutation_state *st)
{
    if (!st)
        return;
    ks_mutation_commitment_free(&st->commitment);
    ks_mutation_index_free(&st->index);
    ks_mutation_state_init(st);
}

void ks_mutation_init_items_init(struct ks_mutation_init_items *items)
{
    ks_item_init(&items->active);
    ks_item_init(&items->beacon);
    ks_mutation_state_init(&items->mutation);
}

void ks_mutation_init_items_free(struct ks_mutation_init_items *items)
{
    if (!items)
        return;
    ks_item_free(&items->active);
    ks_item_free(&items->beacon);
    ks_mutation_state_free(&items->mutation);
}

void ks_version_page_init(struct ks_version_page *page)
{
    page->items = NULL;
    page->count = 0;
    page->next = NULL;
}

void ks_version_page_free(struct ks_version_page *page)
{
    size_t i;

    if (!page)
        return;
    for (i = 0; i < page->count; i++)
        ks_item_free(&page->items[i]);
    free(page->items);
    free(page->next);
    ks_version_page_init(page);
}

void ks_active_page_init(struct ks_active_page *page)
{
    page->items = NULL;
    page->count = 0;
    page->next_id = NULL;
    page->next_type = NULL;
}

void ks_active_page_free(struct ks_active_page *page)
{
    size_t i;

    if (!page)
        return;
    for (i = 0; i < page->count; i++)
        ks_item_free(&page->items[i]);
    free(page->items);
    free(page->next_id);
    free(page->next_type);
    ks_active_page_init(page);
}

ks_status ks_storage_check_list(const char *start_id, const char *start_type, size_t limit,
                                struct ks_error *err)
{
    if (limit < 1 || limit > KS_STORAGE_MAX_LIST)
        return ks_error_set(err, KS_E_INVALID, "list limit must be 1..%d", KS_STORAGE_MAX_LIST);
    if ((start_id == NULL) != (start_type == NULL) || (start_id && (!*start_id || !*start_type)))
        return ks_error_set(err, KS_E_INVALID, "list start key must have an id and a type");
    return KS_OK;
}
