/*
 * inventory.c - ListKeys and ListVersions (keystore/inventory.h; docs/reference/branch-key-store.md
 * section 10). Page tokens are base64url (no padding) of a small JSON object: the key store
 * name, the list kind and the position, plus the branch key id for versions. They carry no MAC:
 * a reader may read every page anyway, and any instance, before or after a restart, must accept
 * a token another one made. They never carry key material.
 */
#include "keystore/inventory.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/base64.h"

#define TOKEN_MAX 8192
#define KIND_KEYS "keys"
#define KIND_VERSIONS "versions"
/* A key has at most thousands of versions (section 10); more is refused, not paged forever. */
#define VERSIONS_MAX 100000

/* --- tokens ------------------------------------------------------------------------------ */

/* Standard base64 -> base64url without padding, in place. */
static void to_url(char *s)
{
    char *p;
    for (p = s; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    while (p > s && p[-1] == '=')
        *--p = '\0';
}

/* base64url without padding -> standard base64 (malloc'd), or NULL. */
static char *from_url(const char *s)
{
    size_t n = strlen(s), i;
    char *out = malloc(n + 4);
    if (!out)
        return NULL;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+' || c == '/' || c == '=') {
            free(out);
            return NULL;
        }
        out[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    while (i % 4)
        out[i++] = '=';
    out[i] = '\0';
    return out;
}

/* Encodes {"ks","kind", pairs...} (names[i] -> values[i], NULL values skipped). */
static char *token_encode(const char *ks_name, const char *kind, const char *const *names,
                          const char *const *values, size_t n)
{
    struct json_object *o = json_object_new_object();
    const char *text;
    char *b64 = NULL;
    size_t i;

    if (!o)
        return NULL;
    json_object_object_add(o, "ks", json_object_new_string(ks_name));
    json_object_object_add(o, "kind", json_object_new_string(kind));
    for (i = 0; i < n; i++)
        if (values[i])
            json_object_object_add(o, names[i], json_object_new_string(values[i]));
    text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    if (text)
        b64 = ks_base64_encode(text, strlen(text));
    json_object_put(o);
    if (b64)
        to_url(b64);
    return b64;
}

/* A string member or NULL. */
static const char *member(struct json_object *o, const char *name)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* Decodes a token into a JSON object whose ks and kind match; KS_E_INVALID otherwise. */
static ks_status token_decode(const char *token, const char *ks_name, const char *kind,
                              struct json_object **out, struct ks_error *err)
{
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    char *std = NULL;
    struct json_object *o = NULL;

    *out = NULL;
    if (strlen(token) > TOKEN_MAX || !(std = from_url(token)) ||
        ks_base64_decode(std, strlen(std), &raw, &raw_len) != 0) {
        free(std);
        return ks_error_set(err, KS_E_INVALID, "nextToken: not a token of this API");
    }
    free(std);
    if (memchr(raw, '\0', raw_len) == NULL) {
        struct json_tokener *tok = json_tokener_new_ex(4);
        if (tok)
            o = json_tokener_parse_ex(tok, (const char *)raw, (int)raw_len);
        if (tok && json_tokener_get_error(tok) != json_tokener_success) {
            json_object_put(o);
            o = NULL;
        }
        json_tokener_free(tok);
    }
    free(raw);
    if (!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return ks_error_set(err, KS_E_INVALID, "nextToken: not a token of this API");
    }
    if (!member(o, "ks") || strcmp(member(o, "ks"), ks_name) != 0 || !member(o, "kind") ||
        strcmp(member(o, "kind"), kind) != 0) {
        json_object_put(o);
        return ks_error_set(err, KS_E_INVALID,
                            "nextToken: the token belongs to another key store or list");
    }
    *out = o;
    return KS_OK;
}

static ks_status check_limit(size_t limit, struct ks_error *err)
{
    if (limit < 1 || limit > KS_INVENTORY_LIMIT_MAX)
        return ks_error_set(err, KS_E_INVALID, "limit: must be 1..%d", KS_INVENTORY_LIMIT_MAX);
    return KS_OK;
}

/* --- ListKeys ---------------------------------------------------------------------------- */

void ks_inventory_keys_free(struct ks_inventory_keys *k)
{
    size_t i;
    if (!k)
        return;
    for (i = 0; i < k->count; i++) {
        free(k->keys[i].branch_key_id);
        free(k->keys[i].active_version);
        free(k->keys[i].create_time);
        free(k->keys[i].hierarchy_version);
        free(k->keys[i].kms_arn);
    }
    free(k->keys);
    free(k->next_token);
    memset(k, 0, sizeof *k);
}

/* A copy of an attribute's text (S or N), "" when absent; NULL on OOM. */
static char *attr_dup(const struct ks_item *item, const char *name)
{
    const struct ks_attr *a = ks_item_get(item, name);
    if (!a || a->type == KS_ATTR_B)
        return strdup("");
    return strdup((const char *)a->value);
}

static int key_from_item(const struct ks_item *item, struct ks_inventory_key *k)
{
    const char *v = ks_item_get_s(item, KS_ATTR_VERSION);
    size_t p = strlen(KS_TYPE_VERSION_PREFIX);

    if (v && strncmp(v, KS_TYPE_VERSION_PREFIX, p) == 0)
        v += p;
    k->branch_key_id = attr_dup(item, KS_ATTR_BRANCH_KEY_ID);
    k->active_version = strdup(v ? v : "");
    k->create_time = attr_dup(item, KS_ATTR_CREATE_TIME);
    k->hierarchy_version = attr_dup(item, KS_ATTR_HIERARCHY_VERSION);
    k->kms_arn = attr_dup(item, KS_ATTR_KMS_ARN);
    return k->branch_key_id && k->active_version && k->create_time && k->hierarchy_version &&
                   k->kms_arn
               ? 0
               : -1;
}

static ks_status keys_from_page(const struct ks_active_page *page, const char *ks_name,
                                struct ks_inventory_keys *out, struct ks_error *err)
{
    static const char *const names[] = {"id", "type"};
    size_t i;

    out->keys = calloc(page->count ? page->count : 1, sizeof *out->keys);
    if (!out->keys)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    for (i = 0; i < page->count; i++) {
        out->count = i + 1;
        if (key_from_item(&page->items[i], &out->keys[i]) != 0)
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    if (page->next_id) {
        const char *values[] = {page->next_id, page->next_type};
        out->next_token = token_encode(ks_name, KIND_KEYS, names, values, 2);
        if (!out->next_token)
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    return KS_OK;
}

ks_status ks_inventory_list_keys(struct ks_keystore *ks, const char *key_store_name, size_t limit,
                                 const char *token, struct ks_inventory_keys *out,
                                 struct ks_error *err)
{
    struct ks_storage *s = ks_mut_storage(ks);
    struct json_object *t = NULL;
    struct ks_active_page page;
    const char *id = NULL, *type = NULL;
    ks_status st;

    memset(out, 0, sizeof *out);
    ks_active_page_init(&page);
    if ((st = check_limit(limit, err)) != KS_OK)
        return st;
    if (s->ops->version < 4 || !s->ops->list_active)
        return ks_error_set(err, KS_E_INTERNAL, "the storage backend cannot list keys");
    if (token && (st = token_decode(token, key_store_name, KIND_KEYS, &t, err)) != KS_OK)
        return st;
    if (t) {
        id = member(t, "id");
        type = member(t, "type");
        /* A token is not trusted: its position must be a key the table could hold. */
        if (!id || !type || !*type || strlen(type) > KS_BRANCH_KEY_ID_MAX ||
            ks_keystore_check_branch_key_id(id, strlen(id), err) != KS_OK) {
            json_object_put(t);
            return ks_error_set(err, KS_E_INVALID, "nextToken: not a token of this API");
        }
    }
    st = s->ops->list_active(s, id, type, limit, &page, err);
    json_object_put(t);
    if (st == KS_OK)
        st = keys_from_page(&page, key_store_name, out, err);
    ks_active_page_free(&page);
    if (st != KS_OK)
        ks_inventory_keys_free(out);
    return st;
}

/* --- ListVersions ------------------------------------------------------------------------ */

void ks_inventory_versions_free(struct ks_inventory_versions *v)
{
    size_t i;
    if (!v)
        return;
    for (i = 0; i < v->count; i++) {
        free(v->versions[i].version);
        free(v->versions[i].create_time);
    }
    free(v->versions);
    free(v->next_token);
    memset(v, 0, sizeof *v);
}

static int by_listing_order(const void *a, const void *b)
{
    const struct ks_inventory_version *x = a, *y = b;
    return ks_create_time_cmp(x->create_time, x->version, y->create_time, y->version);
}

/* Appends the items of one QueryForVersions page to all (grown as needed). */
static int append_versions(const struct ks_version_page *page, const char *active_version,
                           struct ks_inventory_versions *all, size_t *cap)
{
    size_t i, p = strlen(KS_TYPE_VERSION_PREFIX);

    for (i = 0; i < page->count; i++) {
        const char *type = ks_item_get_s(&page->items[i], KS_ATTR_TYPE);
        struct ks_inventory_version *v;
        if (all->count == *cap) {
            size_t n = *cap ? *cap * 2 : 64;
            struct ks_inventory_version *grown = realloc(all->versions, n * sizeof *grown);
            if (!grown)
                return -1;
            all->versions = grown;
            *cap = n;
        }
        v = &all->versions[all->count];
        v->version = strdup(type + p);
        v->create_time = attr_dup(&page->items[i], KS_ATTR_CREATE_TIME);
        v->active = active_version && strcmp(type, active_version) == 0;
        all->count++;
        if (!v->version || !v->create_time)
            return -1;
    }
    return 0;
}

/* Every version of the key, sorted in listing order. */
static ks_status read_all_versions(struct ks_storage *s, const char *id, const char *active_version,
                                   struct ks_inventory_versions *all, struct ks_error *err)
{
    struct ks_version_page page;
    char *start = NULL;
    size_t cap = 0;
    ks_status st;

    do {
        st = s->ops->query_for_versions(s, id, start, KS_STORAGE_MAX_PAGE, &page, err);
        free(start);
        start = NULL;
        if (st != KS_OK)
            return st;
        if (append_versions(&page, active_version, all, &cap) != 0)
            st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
        else if (all->count > VERSIONS_MAX)
            st = ks_error_set(err, KS_E_INVALID, "the branch key has more than %d versions",
                              VERSIONS_MAX);
        start = page.next;
        page.next = NULL;
        ks_version_page_free(&page);
    } while (st == KS_OK && start);
    free(start);
    if (st == KS_OK && all->count > 1)
        qsort(all->versions, all->count, sizeof *all->versions, by_listing_order);
    return st;
}

/* Moves all->versions[from, from + limit) into out and frees the rest of all. */
static ks_status take_page(struct ks_inventory_versions *all, size_t from, size_t limit,
                           const char *ks_name, const char *id, struct ks_inventory_versions *out,
                           struct ks_error *err)
{
    static const char *const names[] = {"key", "time", "version"};
    size_t i, end = from + limit < all->count ? from + limit : all->count;

    out->versions = calloc(end > from ? end - from : 1, sizeof *out->versions);
    if (!out->versions)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    for (i = from; i < end; i++) {
        out->versions[out->count++] = all->versions[i];
        memset(&all->versions[i], 0, sizeof all->versions[i]);
    }
    if (end < all->count && end > from) {
        const struct ks_inventory_version *last = &out->versions[out->count - 1];
        const char *values[] = {id, last->create_time, last->version};
        out->next_token = token_encode(ks_name, KIND_VERSIONS, names, values, 3);
        if (!out->next_token)
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    return KS_OK;
}

/* The index of the first version after the token's position (0 without a token). */
static ks_status resume_index(const struct ks_inventory_versions *all, const char *token,
                              const char *ks_name, const char *id, size_t *from,
                              struct ks_error *err)
{
    struct json_object *t = NULL;
    const char *time, *version;
    ks_status st;

    *from = 0;
    if (!token)
        return KS_OK;
    if ((st = token_decode(token, ks_name, KIND_VERSIONS, &t, err)) != KS_OK)
        return st;
    time = member(t, "time");
    version = member(t, "version");
    if (!member(t, "key") || strcmp(member(t, "key"), id) != 0)
        st = ks_error_set(err, KS_E_INVALID, "nextToken: the token belongs to another branch key");
    else if (!time || !version)
        st = ks_error_set(err, KS_E_INVALID, "nextToken: not a token of this API");
    while (st == KS_OK && *from < all->count &&
           ks_create_time_cmp(all->versions[*from].create_time, all->versions[*from].version, time,
                              version) <= 0)
        (*from)++;
    json_object_put(t);
    return st;
}

ks_status ks_inventory_list_versions(struct ks_keystore *ks, const char *key_store_name,
                                     const char *branch_key_id, size_t limit, const char *token,
                                     struct ks_inventory_versions *out, struct ks_error *err)
{
    struct ks_storage *s = ks_mut_storage(ks);
    struct ks_inventory_versions all;
    struct ks_item active;
    size_t from = 0;
    ks_status st;

    memset(out, 0, sizeof *out);
    memset(&all, 0, sizeof all);
    ks_item_init(&active);
    if ((st = check_limit(limit, err)) != KS_OK ||
        (st = ks_keystore_check_branch_key_id(branch_key_id, strlen(branch_key_id), err)) != KS_OK)
        return st;
    st = s->ops->get_active(s, branch_key_id, &active, err);
    if (st == KS_E_NOT_FOUND)
        ks_error_set(err, st, KS_STORAGE_MSG_NOT_FOUND);
    if (st == KS_OK)
        st =
            read_all_versions(s, branch_key_id, ks_item_get_s(&active, KS_ATTR_VERSION), &all, err);
    if (st == KS_OK)
        st = resume_index(&all, token, key_store_name, branch_key_id, &from, err);
    if (st == KS_OK)
        st = take_page(&all, from, limit, key_store_name, branch_key_id, out, err);
    ks_inventory_versions_free(&all);
    ks_item_free(&active);
    if (st != KS_OK)
        ks_inventory_versions_free(out);
    return st;
}
