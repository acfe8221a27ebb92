/*
 * mutation_props.c - mutable properties of branch key items and the state of an item
 * (docs/reference/mutations.md section 2), and the mutation log.
 */
#include <stdlib.h>
#include <string.h>

#include "keystore/mutation_internal.h"

/* Never mutated: the item's identity, its time, its hierarchy version, the ACTIVE's version
 * pointer and its ciphertext (section 2). tablename is never stored. */
static int immutable(const char *name)
{
    static const char *const names[] = {
        KS_ATTR_BRANCH_KEY_ID, KS_ATTR_TYPE,    KS_ATTR_CREATE_TIME, KS_ATTR_HIERARCHY_VERSION,
        KS_ATTR_TABLENAME,     KS_ATTR_VERSION, KS_ATTR_ENC,         NULL};
    size_t i;
    for (i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

int ks_mut_item_hv(const struct ks_item *item)
{
    const struct ks_attr *a = ks_item_get(item, KS_ATTR_HIERARCHY_VERSION);
    return a && a->type == KS_ATTR_N && strcmp((const char *)a->value, "2") == 0 ? 2 : 1;
}

static int prefixed(const char *name)
{
    return strncmp(name, KS_EC_PREFIX, strlen(KS_EC_PREFIX)) == 0;
}

void ks_mut_props_init(struct ks_mut_props *p)
{
    p->kms_arn = NULL;
    ks_ec_init(&p->ec);
    p->hv = 1;
}

void ks_mut_props_free(struct ks_mut_props *p)
{
    free(p->kms_arn);
    p->kms_arn = NULL;
    ks_ec_free(&p->ec);
}

static ks_status oom(struct ks_error *err)
{
    return ks_error_set(err, KS_E_INTERNAL, "out of memory");
}

ks_status ks_mut_props_of_item(const struct ks_item *item, struct ks_mut_props *out,
                               struct ks_error *err)
{
    const char *arn = ks_item_get_s(item, KS_ATTR_KMS_ARN);
    size_t i;

    ks_mut_props_init(out);
    if (!arn)
        return ks_error_set(err, KS_E_CORRUPT, "item without kms-arn");
    if (!(out->kms_arn = strdup(arn)))
        return oom(err);
    /* The hierarchy version is part of the state (section 12): an HV-1 item is not yet in an
     * HV-2 terminal state even when its kms-arn and context match. */
    out->hv = ks_mut_item_hv(item);
    for (i = 0; i < item->count; i++) {
        const struct ks_attr *a = &item->attrs[i];
        if (immutable(a->name) || strcmp(a->name, KS_ATTR_KMS_ARN) == 0)
            continue;
        if (a->type != KS_ATTR_S)
            return ks_error_set(err, KS_E_CORRUPT, "attribute %s must be a string", a->name);
        if (ks_ec_set(&out->ec, a->name, (const char *)a->value) != 0)
            return oom(err);
    }
    return KS_OK;
}

static ks_status set_prefixed(struct ks_ec *ec, const char *key, const char *value)
{
    size_t p = strlen(KS_EC_PREFIX), n = strlen(key);
    char *k = malloc(p + n + 1);
    int rc;
    if (!k)
        return KS_E_INTERNAL;
    memcpy(k, KS_EC_PREFIX, p);
    memcpy(k + p, key, n + 1);
    rc = ks_ec_set(ec, k, value);
    free(k);
    return rc == 0 ? KS_OK : KS_E_INTERNAL;
}

ks_status ks_mut_props_terminal(const struct ks_mut_props *original, const char *arn,
                                const struct ks_ec *input_ec, struct ks_mut_props *out,
                                struct ks_error *err)
{
    size_t i;

    ks_mut_props_init(out);
    out->hv = original->hv; /* the caller sets the requested terminal hierarchy version */
    if (!(out->kms_arn = strdup(arn ? arn : original->kms_arn)))
        return oom(err);
    if (!input_ec)
        return ks_ec_copy(&out->ec, &original->ec) == 0 ? KS_OK : oom(err);
    for (i = 0; i < input_ec->count; i++)
        if (set_prefixed(&out->ec, input_ec->entries[i].key, input_ec->entries[i].value) != KS_OK)
            return oom(err);
    /* Un-modeled attributes (neither reserved nor prefixed) carry over (section 2). */
    for (i = 0; i < original->ec.count; i++)
        if (!prefixed(original->ec.entries[i].key) &&
            ks_ec_set(&out->ec, original->ec.entries[i].key, original->ec.entries[i].value) != 0)
            return oom(err);
    return KS_OK;
}

int ks_mut_props_equal(const struct ks_mut_props *a, const struct ks_mut_props *b)
{
    return a->hv == b->hv && strcmp(a->kms_arn, b->kms_arn) == 0 && ks_ec_equal(&a->ec, &b->ec);
}

ks_status ks_mut_item_with_props(const struct ks_item *item, const struct ks_mut_props *props,
                                 struct ks_item *out, struct ks_error *err)
{
    size_t i;

    ks_item_init(out);
    for (i = 0; i < item->count; i++) {
        const struct ks_attr *a = &item->attrs[i];
        int rc = 0;
        if (!immutable(a->name))
            continue;
        if (a->type == KS_ATTR_B)
            rc = ks_item_set_b(out, a->name, a->value, a->len);
        else if (a->type == KS_ATTR_N)
            rc = ks_item_set_n(out, a->name, (const char *)a->value);
        else
            rc = ks_item_set_s(out, a->name, (const char *)a->value);
        if (rc != 0)
            return oom(err);
    }
    if (ks_item_set_s(out, KS_ATTR_KMS_ARN, props->kms_arn) != 0 ||
        ks_item_set_n(out, KS_ATTR_HIERARCHY_VERSION, props->hv == 2 ? "2" : "1") != 0)
        return oom(err);
    for (i = 0; i < props->ec.count; i++)
        if (ks_item_set_s(out, props->ec.entries[i].key, props->ec.entries[i].value) != 0)
            return oom(err);
    return KS_OK;
}

enum ks_mut_state ks_mut_classify(const struct ks_item *item, const struct ks_mut_props *original,
                                  const struct ks_mut_props *terminal)
{
    struct ks_mut_props p;
    enum ks_mut_state st = KS_MUT_NEITHER;

    if (ks_mut_props_of_item(item, &p, NULL) == KS_OK) {
        if (ks_mut_props_equal(&p, original))
            st = KS_MUT_ORIGINAL;
        else if (ks_mut_props_equal(&p, terminal))
            st = KS_MUT_TERMINAL;
    }
    ks_mut_props_free(&p);
    return st;
}

ks_status ks_mut_props_to_json(const struct ks_mut_props *p, int three, struct ks_bytes *out,
                               struct ks_error *err)
{
    return ks_mutation_props_to_json_hv(p->kms_arn, &p->ec, three ? p->hv : 0, out, err);
}

ks_status ks_mut_props_from_json(const struct ks_bytes *json, struct ks_mut_props *out,
                                 struct ks_error *err)
{
    ks_status st;
    int hv = 0;

    ks_mut_props_init(out);
    ks_ec_free(&out->ec);
    st = ks_mutation_props_from_json_hv(json->data, json->len, &out->kms_arn, &out->ec, &hv, err);
    out->hv = hv == 2 ? 2 : 1;
    return st;
}

ks_status ks_mut_props_public(const struct ks_mut_props *p, struct ks_mutation_props *out,
                              struct ks_error *err)
{
    size_t i;

    out->kms_arn = NULL;
    ks_ec_init(&out->ec);
    out->hierarchy_version = p->hv;
    if (!(out->kms_arn = strdup(p->kms_arn)))
        return oom(err);
    for (i = 0; i < p->ec.count; i++) {
        const char *k = p->ec.entries[i].key;
        if (ks_ec_set(&out->ec, prefixed(k) ? k + strlen(KS_EC_PREFIX) : k,
                      p->ec.entries[i].value) != 0)
            return oom(err);
    }
    return KS_OK;
}

ks_status ks_mut_log_add(struct ks_mutation_log *log, const char *item_type,
                         const char *description, struct ks_error *err)
{
    struct ks_mutation_log_entry *e;

    if (log->count == log->cap) {
        size_t cap = log->cap ? 2 * log->cap : 8;
        struct ks_mutation_log_entry *n = realloc(log->entries, cap * sizeof *n);
        if (!n)
            return oom(err);
        log->entries = n;
        log->cap = cap;
    }
    e = &log->entries[log->count];
    e->item_type = strdup(item_type);
    e->description = strdup(description);
    if (!e->item_type || !e->description) {
        free(e->item_type);
        free(e->description);
        return oom(err);
    }
    log->count++;
    return KS_OK;
}

void ks_mutation_log_free(struct ks_mutation_log *log)
{
    size_t i;
    for (i = 0; i < log->count; i++) {
        free(log->entries[i].item_type);
        free(log->entries[i].description);
    }
    free(log->entries);
    log->entries = NULL;
    log->count = log->cap = 0;
}
