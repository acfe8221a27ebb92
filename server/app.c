/*
 * app.c - the long-lived backends and the configuration snapshots (app.h), and the accessors
 * handlers/handlers.h declares for them.
 */
#include "server/app.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/arn.h"
#include "aws/aws.h"
#include "config/compare.h"
#include "keyring/keyring.h"
#include "keystore/cache.h"
#include "keystore/rotation.h"
#include "server/ratelimit.h"

struct store_entry {
    struct store_entry *next;
    char *name;
    unsigned char fingerprint[KS_CONFIG_FINGERPRINT_LEN];
    struct ks_keystore *keystore;
    struct ks_aws_credentials_provider *credentials; /* DynamoDB only */
    struct ks_rotation *rotation; /* scheduled rotation (issue 14); NULL: off; kept on reload */
};

struct rel_entry {
    struct rel_entry *next;
    char *name;
    unsigned char fingerprint[KS_CONFIG_FINGERPRINT_LEN];
    struct ks_kms *kms;
    char *default_arn; /* local without kms_configuration: the key file's first key */
    struct ks_aws_credentials_provider *credentials; /* aws only */
    struct ks_kms_counters counters;                 /* /metrics; kept across reloads */
    struct ks_kms_relationship probe;                /* name and kms: the readiness ping */
    /* The relationship as first opened, with owned strings, for users that outlive a snapshot
     * (scheduled rotation). A reload cannot change a relationship's settings (fingerprint). */
    struct ks_kms_relationship stable;
    char *stable_arn, *stable_region;
    char **stable_grant_tokens;
};

struct ks_backends {
    /* What handlers see of the backends (handlers/handlers.h): the cache, the keyring counters
     * below, the audit log (borrowed; NULL: none) and the reload callback. */
    struct ks_app_shared shared;
    struct ks_cache_config cache_config;
    const struct ks_clock *clock;
    struct ks_keyring_counters keyring_counters; /* wraps and unwraps by outcome, kept on reload */
    struct store_entry *stores;                  /* in opening order */
    struct rel_entry *rels;
    struct ks_ratelimit_registry *limits; /* tenants' buckets, kept across reloads (issue 12) */
};

/* Declared opaque in handlers/handlers.h; handlers read its first member, the view, through the
 * inline accessors there (config, key stores, relationships, rotations, the shared backends). */
struct ks_app {
    struct ks_app_view view; /* first: handlers/handlers.h's ks_app_view_of */
    atomic_size_t refs;
    struct ks_backends *backends;
    struct ks_auth *auth;
    struct ks_ratelimit **limits; /* parallel to config->tenants; NULL: unlimited */
};
_Static_assert(offsetof(struct ks_app, view) == 0, "the view is the snapshot's first member");

const struct ks_auth *ks_app_auth(const struct ks_app *app)
{
    return app->auth;
}

struct ks_ratelimit *ks_app_tenant_limit(const struct ks_app *app,
                                         const struct ks_tenant_config *tenant)
{
    size_t i = (size_t)(tenant - app->view.config->tenants);
    return i < app->view.config->n_tenants ? app->limits[i] : NULL;
}

/* --- long-lived backends ------------------------------------------------------------------ */

ks_status ks_backends_create(const struct ks_cache_config *cache, const struct ks_clock *clock,
                             struct ks_backends **out, struct ks_error *err)
{
    struct ks_backends *b = calloc(1, sizeof *b);
    ks_status st;

    if (!b)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    b->cache_config = *cache;
    b->clock = clock;
    b->shared.keyring_counters = &b->keyring_counters;
    if ((st = ks_ratelimit_registry_create(&b->limits, err)) != KS_OK) {
        free(b);
        return st;
    }
    /* One cache for every key store, relationship and tenant (issue 5); partitions keep
     * tenants apart. */
    if ((st = ks_cache_create(cache, clock, &b->shared.cache, err)) != KS_OK) {
        ks_ratelimit_registry_destroy(b->limits);
        free(b);
        return st;
    }
    *out = b;
    return KS_OK;
}

void ks_backends_set_reload(struct ks_backends *b, ks_reload_fn fn, void *ctx)
{
    b->shared.reload = fn;
    b->shared.reload_ctx = ctx;
}

void ks_backends_set_audit(struct ks_backends *b, struct ks_audit *audit)
{
    b->shared.audit = audit;
}

static void store_entry_free(struct store_entry *e)
{
    ks_rotation_destroy(e->rotation); /* before the keystore it borrowed */
    ks_keystore_destroy(e->keystore);
    ks_aws_credentials_provider_destroy(e->credentials);
    free(e->name);
    free(e);
}

static void rel_entry_free(struct rel_entry *e)
{
    ks_kms_destroy(e->kms);
    /* The provider last: the backend borrowed it. */
    ks_aws_credentials_provider_destroy(e->credentials);
    free(e->default_arn);
    free(e->stable_arn);
    free(e->stable_region);
    for (size_t i = 0; e->stable_grant_tokens && e->stable_grant_tokens[i]; i++)
        free(e->stable_grant_tokens[i]);
    free(e->stable_grant_tokens);
    free(e->name);
    free(e);
}

/* Frees the entries from *from on and cuts the lists there. */
static void drop_entries(struct store_entry **stores_from, struct rel_entry **rels_from)
{
    while (*rels_from) {
        struct rel_entry *next = (*rels_from)->next;
        rel_entry_free(*rels_from);
        *rels_from = next;
    }
    while (*stores_from) {
        struct store_entry *next = (*stores_from)->next;
        store_entry_free(*stores_from);
        *stores_from = next;
    }
}

void ks_backends_destroy(struct ks_backends *b)
{
    struct store_entry *e;
    if (!b)
        return;
    /* Rotations first: they borrow key stores and relationships. */
    for (e = b->stores; e; e = e->next) {
        ks_rotation_destroy(e->rotation);
        e->rotation = NULL;
    }
    /* Key stores hold the cache: they go first, relationships after (their backends never
     * touch the cache), the cache last. */
    drop_entries(&b->stores, &b->rels);
    ks_cache_destroy(b->shared.cache);
    ks_ratelimit_registry_destroy(b->limits);
    free(b);
}

void ks_backends_foreach(struct ks_backends *b,
                         void (*fn)(void *ctx, const char *name, struct ks_keystore *keystore,
                                    const struct ks_kms_relationship *relationship),
                         void *ctx)
{
    const struct store_entry *s;
    const struct rel_entry *r;
    for (s = b->stores; s; s = s->next)
        fn(ctx, s->name, s->keystore, NULL);
    for (r = b->rels; r; r = r->next)
        fn(ctx, r->name, NULL, &r->probe);
}

static struct store_entry **store_find(struct ks_backends *b, const char *name)
{
    struct store_entry **e;
    for (e = &b->stores; *e && strcmp((*e)->name, name) != 0; e = &(*e)->next)
        ;
    return e;
}

static struct rel_entry **rel_find(struct ks_backends *b, const char *name)
{
    struct rel_entry **e;
    for (e = &b->rels; *e && strcmp((*e)->name, name) != 0; e = &(*e)->next)
        ;
    return e;
}

static ks_status open_store(struct ks_backends *b, const struct ks_key_store_config *kc,
                            struct store_entry *e, struct ks_error *err)
{
    struct ks_keystore_params params;
    struct ks_storage *storage = NULL;
    ks_status st;

    if (kc->storage.type == KS_STORAGE_DYNAMODB) {
        if ((st = ks_aws_credentials_provider_create(&kc->storage.credentials, NULL,
                                                     &e->credentials, err)) != KS_OK ||
            (st = ks_storage_dynamodb_open(&kc->storage, e->credentials, &storage, err)) != KS_OK)
            return st;
    } else if ((st = ks_storage_sqlite_open(kc->storage.path, &storage, err)) != KS_OK) {
        return st;
    }
    params.name = kc->name;
    params.logical_key_store_name = kc->logical_key_store_name;
    params.key_store_id = kc->key_store_id;
    params.storage = storage;
    params.clock = b->clock;
    params.cache = b->shared.cache;
    if ((st = ks_keystore_create(&params, &e->keystore, err)) != KS_OK)
        ks_storage_destroy(storage);
    else
        ks_keystore_set_default_hierarchy_version(e->keystore, kc->default_hierarchy_version);
    return st;
}

/* The key store of kc: the open one of that name, or a new one appended at *slot. */
static ks_status use_store(struct ks_backends *b, const struct ks_key_store_config *kc,
                           struct ks_keystore **out, struct ks_error *err)
{
    struct store_entry **slot = store_find(b, kc->name), *e;
    unsigned char fp[KS_CONFIG_FINGERPRINT_LEN];
    ks_status st;

    if (ks_config_key_store_fingerprint(kc, fp) != KS_OK)
        return ks_error_set(err, KS_E_INTERNAL, "cannot fingerprint key store '%s'", kc->name);
    if (*slot) {
        if (memcmp((*slot)->fingerprint, fp, sizeof fp) != 0)
            return ks_error_set(
                err, KS_E_CONFIG,
                "key store '%s': its storage, logical_key_store_name, key_store_id, "
                "kms_relationship, rotation or default_hierarchy_version changed; that cannot "
                "change without a restart",
                kc->name);
        *out = (*slot)->keystore;
        return KS_OK;
    }
    if (!(e = calloc(1, sizeof *e)) || !(e->name = strdup(kc->name))) {
        free(e);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    memcpy(e->fingerprint, fp, sizeof fp);
    if ((st = open_store(b, kc, e, err)) != KS_OK) {
        store_entry_free(e);
        return st;
    }
    *slot = e;
    *out = e->keystore;
    return KS_OK;
}

/*
 * Opens a local relationship's KMS without creating master keys while any key store holds
 * items: a new key file, or a new key for a kms_key_arn missing from the file, could not
 * decrypt those items, and creating one silently hides that the right key file is lost or
 * misnamed. Every key store of the config counts, not only those whose default relationship
 * this is: a tenant may use any relationship it is allowed with any key store it is allowed,
 * and a config can change between runs, after which a key created now would pass this check
 * unnoticed. The key stores are only asked (one cheap read each) when a key would have to be
 * created; one that cannot be asked stops the start, since emptiness is then unknown.
 */
static ks_status open_local_kms(const struct ks_app *app, const struct ks_kms_rel_config *rc,
                                struct ks_kms **out, struct ks_error *err)
{
    const char *ensure = rc->has_kms_configuration ? rc->kms.arn : NULL;
    const char *const *arns = ensure ? &ensure : NULL;
    char why[KS_ERROR_MESSAGE_MAX];
    struct ks_error probe;
    int has = 0;
    size_t i;
    ks_status st;

    st = ks_kms_local_open(rc->key_file, arns, arns ? 1 : 0, KS_KMS_LOCAL_NO_CREATE, out, err);
    if (st != KS_E_NOT_FOUND)
        return st;
    snprintf(why, sizeof why, "%s", err->message);
    for (i = 0; i < app->view.config->n_key_stores; i++) {
        const char *name = app->view.config->key_stores[i].name;
        if ((st = ks_keystore_has_items(app->view.keystores[i], &has, &probe)) != KS_OK)
            return ks_error_set(err, st,
                                "cannot tell whether key store '%s' holds items (%s), and %s", name,
                                probe.message, why);
        if (has)
            return ks_error_set(err, KS_E_CONFIG, "key store '%s' holds items but %s", name, why);
    }
    return ks_kms_local_open(rc->key_file, arns, arns ? 1 : 0, KS_KMS_LOCAL_MAY_CREATE, out, err);
}

static ks_status open_rel(const struct ks_app *app, const struct ks_kms_rel_config *rc,
                          struct rel_entry *e, struct ks_error *err)
{
    char arn[KS_ARN_MAX + 1];
    ks_status st;

    if (rc->type == KS_KMS_AWS) {
        if ((st = ks_aws_credentials_provider_create(&rc->credentials, NULL, &e->credentials,
                                                     err)) != KS_OK ||
            (st = ks_kms_aws_create(rc, e->credentials, &e->kms, err)) != KS_OK)
            return st;
    } else if ((st = open_local_kms(app, rc, &e->kms, err)) != KS_OK) {
        return st;
    }
    if (!rc->has_kms_configuration) {
        /* A local relationship without kms_configuration uses its key file's first key. */
        if ((st = ks_kms_local_default_arn(e->kms, arn, sizeof arn)) != KS_OK)
            return ks_error_set(err, st, "KMS relationship '%s': no key in its key file", rc->name);
        if (!(e->default_arn = strdup(arn)))
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    e->probe.name = e->name;
    e->probe.kms = e->kms;
    e->probe.counters = &e->counters;
    return KS_OK;
}

/* e->stable: the relationship as opened, every string owned by e (see struct rel_entry). */
static ks_status fill_stable(struct rel_entry *e, const struct ks_kms_rel_config *rc,
                             struct ks_error *err)
{
    const char *arn = rc->has_kms_configuration ? rc->kms.arn : e->default_arn;
    const char *region = rc->has_kms_configuration ? rc->kms.region : NULL;
    size_t i;
    int oom = (arn && !(e->stable_arn = strdup(arn))) ||
              (region && !(e->stable_region = strdup(region))) ||
              !(e->stable_grant_tokens = calloc(rc->n_grant_tokens + 1, sizeof(char *)));
    for (i = 0; !oom && i < rc->n_grant_tokens; i++)
        oom = !(e->stable_grant_tokens[i] = strdup(rc->grant_tokens[i]));
    if (oom)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    e->stable.name = e->name;
    e->stable.kms = e->kms;
    e->stable.kind = rc->has_kms_configuration ? rc->kms.kind : KS_KMS_KEY_ARN;
    e->stable.arn = e->stable_arn;
    e->stable.region = e->stable_region;
    e->stable.grant_tokens = (const char *const *)e->stable_grant_tokens;
    e->stable.n_grant_tokens = rc->n_grant_tokens;
    e->stable.counters = &e->counters;
    return KS_OK;
}

static ks_status find_or_open_rel(struct ks_app *app, const struct ks_kms_rel_config *rc,
                                  struct rel_entry **out, struct ks_error *err)
{
    struct rel_entry **slot = rel_find(app->backends, rc->name), *e;
    unsigned char fp[KS_CONFIG_FINGERPRINT_LEN];
    ks_status st;

    if (ks_config_kms_relationship_fingerprint(rc, fp) != KS_OK)
        return ks_error_set(err, KS_E_INTERNAL, "cannot fingerprint '%s'", rc->name);
    if (*slot) {
        if (memcmp((*slot)->fingerprint, fp, sizeof fp) != 0)
            return ks_error_set(err, KS_E_CONFIG,
                                "KMS relationship '%s' changed; a relationship's settings cannot "
                                "change without a restart",
                                rc->name);
        *out = *slot;
        return KS_OK;
    }
    if (!(e = calloc(1, sizeof *e)) || !(e->name = strdup(rc->name))) {
        free(e);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    memcpy(e->fingerprint, fp, sizeof fp);
    if ((st = open_rel(app, rc, e, err)) != KS_OK || (st = fill_stable(e, rc, err)) != KS_OK) {
        rel_entry_free(e);
        return st;
    }
    *slot = e;
    *out = e;
    return KS_OK;
}

/* The snapshot's view of relationship i: the config's settings over the long-lived backend. */
static ks_status use_rel(struct ks_app *app, size_t i, struct ks_error *err)
{
    const struct ks_kms_rel_config *rc = &app->view.config->kms_relationships[i];
    struct ks_kms_relationship *rel = &app->view.relationships[i];
    struct rel_entry *e = NULL;
    ks_status st;

    if ((st = find_or_open_rel(app, rc, &e, err)) != KS_OK)
        return st;
    rel->kind = rc->has_kms_configuration ? rc->kms.kind : KS_KMS_KEY_ARN;
    rel->arn = rc->has_kms_configuration ? rc->kms.arn : e->default_arn;
    rel->region = rc->has_kms_configuration ? rc->kms.region : NULL;
    rel->name = rc->name;
    rel->kms = e->kms;
    rel->grant_tokens = (const char *const *)rc->grant_tokens;
    rel->n_grant_tokens = rc->n_grant_tokens;
    rel->counters = &e->counters;
    return KS_OK;
}

/*
 * Scheduled rotation of key store i (issue 14), created once with the store's long-lived entry
 * and kept across reloads: its state (cursor, counters) and everything it borrows (the keystore,
 * the relationship's stable copy, the store's name) live as long as the backends. A reload
 * cannot change rotation settings (the key store fingerprint includes them).
 */
static ks_status use_rotation(struct ks_backends *b, const struct ks_config *cfg, size_t i,
                              struct ks_error *err)
{
    const struct ks_key_store_config *kc = &cfg->key_stores[i];
    struct store_entry *e = *store_find(b, kc->name);
    struct rel_entry *r = *rel_find(b, cfg->kms_relationships[kc->kms_relationship_index].name);
    struct ks_rotation_params p;

    if (!kc->rotation.interval_seconds || !e || e->rotation)
        return KS_OK;
    if (!r)
        return ks_error_set(err, KS_E_INTERNAL, "key store '%s': relationship not open", kc->name);
    p.keystore = e->keystore;
    p.rel = &r->stable;
    p.key_store_name = e->name;
    p.interval_seconds = kc->rotation.interval_seconds;
    p.page_size = KS_ROTATION_PAGE_DEFAULT;
    p.clock = b->clock;
    return ks_rotation_create(&p, &e->rotation, err);
}

/* The view's rotations: each key store's scheduler (kept with its long-lived entry), or NULL. */
static void fill_rotations(struct ks_app *app)
{
    const struct ks_config *cfg = app->view.config;
    size_t i;
    for (i = 0; i < cfg->n_key_stores; i++) {
        struct store_entry *e = *store_find(app->backends, cfg->key_stores[i].name);
        app->view.rotations[i] = e ? e->rotation : NULL;
    }
}

/* --- snapshots ---------------------------------------------------------------------------- */

/* The buckets of the tenants with `rate_limit:` (server/ratelimit.h: the same bucket as the
 * previous snapshot's when name and limit are unchanged). */
static ks_status use_limits(struct ks_app *app, struct ks_error *err)
{
    const struct ks_config *cfg = app->view.config;
    size_t i;

    if (!(app->limits = calloc(cfg->n_tenants + 1, sizeof *app->limits)))
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    for (i = 0; i < cfg->n_tenants; i++) {
        const struct ks_rate_limit_config *rl = &cfg->tenants[i].rate_limit;
        if (!rl->requests_per_second)
            continue;
        app->limits[i] = ks_ratelimit_acquire(app->backends->limits, cfg->tenants[i].name,
                                              rl->requests_per_second, rl->burst);
        if (!app->limits[i])
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    return KS_OK;
}

static void release_limits(struct ks_app *app)
{
    size_t i;
    for (i = 0; app->limits && app->view.config && i < app->view.config->n_tenants; i++)
        ks_ratelimit_release(app->backends->limits, app->limits[i]);
    free(app->limits);
    app->limits = NULL;
}

static void app_free(struct ks_app *app)
{
    release_limits(app);
    ks_auth_destroy(app->auth);
    free(app->view.keystores);
    free(app->view.relationships);
    free(app->view.rotations);
    ks_config_free(app->view.config);
    free(app);
}

/* The last entry's next pointer of each list: what a failed create cuts back to. */
static struct store_entry **stores_end(struct ks_backends *b)
{
    struct store_entry **e = &b->stores;
    while (*e)
        e = &(*e)->next;
    return e;
}

static struct rel_entry **rels_end(struct ks_backends *b)
{
    struct rel_entry **e = &b->rels;
    while (*e)
        e = &(*e)->next;
    return e;
}

ks_status ks_app_create(struct ks_backends *b, struct ks_config *cfg, struct ks_app **out,
                        struct ks_error *err)
{
    struct store_entry **stores_mark = stores_end(b);
    struct rel_entry **rels_mark = rels_end(b);
    struct ks_app *app = calloc(1, sizeof *app);
    ks_status st = KS_OK;
    size_t i;

    if (!app)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    atomic_init(&app->refs, 1);
    app->backends = b;
    app->view.shared = &b->shared;
    app->view.keystores = calloc(cfg->n_key_stores + 1, sizeof *app->view.keystores);
    app->view.relationships = calloc(cfg->n_kms_relationships + 1, sizeof *app->view.relationships);
    app->view.rotations = calloc(cfg->n_key_stores + 1, sizeof *app->view.rotations);
    if (!app->view.keystores || !app->view.relationships || !app->view.rotations)
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    else if (memcmp(&b->cache_config, &cfg->cache, sizeof cfg->cache) != 0)
        st = ks_error_set(err, KS_E_CONFIG,
                          "the cache section changed; it cannot change without a restart");
    else
        st = ks_auth_create(cfg, &app->auth, err);
    app->view.config = cfg;
    /* Key stores first: a local relationship asks them whether it may create master keys. */
    for (i = 0; st == KS_OK && i < cfg->n_key_stores; i++)
        st = use_store(b, &cfg->key_stores[i], &app->view.keystores[i], err);
    for (i = 0; st == KS_OK && i < cfg->n_kms_relationships; i++)
        st = use_rel(app, i, err);
    for (i = 0; st == KS_OK && i < cfg->n_key_stores; i++)
        st = use_rotation(b, cfg, i, err);
    if (st == KS_OK)
        st = use_limits(app, err);
    if (st == KS_OK)
        fill_rotations(app);
    if (st != KS_OK) {
        /* Nothing changes: what this call opened is closed again, cfg stays the caller's. */
        drop_entries(stores_mark, rels_mark);
        release_limits(app);
        app->view.config = NULL;
        app_free(app);
        return st;
    }
    *out = app;
    return KS_OK;
}

struct ks_app *ks_app_ref(struct ks_app *app)
{
    atomic_fetch_add_explicit(&app->refs, 1, memory_order_relaxed);
    return app;
}

size_t ks_app_refs(const struct ks_app *app)
{
    return atomic_load(&((struct ks_app *)(uintptr_t)app)->refs);
}

void ks_app_unref(struct ks_app *app)
{
    if (app && atomic_fetch_sub_explicit(&app->refs, 1, memory_order_acq_rel) == 1)
        app_free(app);
}
