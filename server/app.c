/*
 * app.c - the run-time objects of a config (app.h): backends, key stores, the shared cache, and
 * the accessors handlers/handlers.h declares for them.
 */
#include "server/app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws.h"
#include "aws/arn.h"
#include "keyring/keyring.h"
#include "keystore/cache.h"
#include "keystore/rotation.h"

extern const char ks_openapi_yaml[];
extern const size_t ks_openapi_yaml_len;

/* Declared opaque in handlers/handlers.h; handlers read it through the accessors below. */
struct ks_app {
    const struct ks_config *config;
    struct ks_keystore **keystores;                   /* parallel to config->key_stores */
    struct ks_kms_relationship *relationships;        /* parallel to config->kms_relationships */
    struct ks_kms **kms_backends;                     /* parallel to config->kms_relationships */
    char **relationship_arns;                         /* resolved ARNs (owned) */
    struct ks_aws_credentials_provider **credentials; /* AWS backends' providers (owned) */
    struct ks_kms_counters *kms_counters;             /* parallel to config->kms_relationships */
    struct ks_cache *cache;                           /* the shared branch key cache (owned) */
    struct ks_keyring_counters *keyring_counters;     /* wraps and unwraps by outcome */
    const char *openapi_yaml;
    size_t openapi_yaml_len;
    struct ks_rotation **rotations; /* parallel to config->key_stores; NULL: off (issue 14) */
};

const struct ks_config *ks_app_config(const struct ks_app *app)
{
    return app->config;
}

struct ks_keystore *ks_app_keystore(const struct ks_app *app, size_t index)
{
    return index < app->config->n_key_stores ? app->keystores[index] : NULL;
}

const struct ks_kms_relationship *ks_app_relationship(const struct ks_app *app, size_t index)
{
    return index < app->config->n_kms_relationships ? &app->relationships[index] : NULL;
}

struct ks_cache *ks_app_cache(const struct ks_app *app)
{
    return app->cache;
}

struct ks_keyring_counters *ks_app_keyring_counters(const struct ks_app *app)
{
    return app->keyring_counters;
}

struct ks_rotation *ks_app_rotation(const struct ks_app *app, size_t index)
{
    return app->rotations && index < app->config->n_key_stores ? app->rotations[index] : NULL;
}

/* Scheduled rotation of key store i when configured (issue 14); server/rotation.c runs it. */
static ks_status open_rotation(struct ks_app *app, size_t i, const struct ks_clock *clock,
                               struct ks_error *err)
{
    const struct ks_key_store_config *kc = &app->config->key_stores[i];
    struct ks_rotation_params p;

    if (!kc->rotation.interval_seconds)
        return KS_OK;
    p.keystore = app->keystores[i];
    p.rel = &app->relationships[kc->kms_relationship_index];
    p.key_store_name = kc->name;
    p.interval_seconds = kc->rotation.interval_seconds;
    p.page_size = KS_ROTATION_PAGE_DEFAULT;
    p.clock = clock;
    return ks_rotation_create(&p, &app->rotations[i], err);
}

const char *ks_app_openapi(const struct ks_app *app, size_t *len)
{
    *len = app->openapi_yaml_len;
    return app->openapi_yaml;
}

/*
 * Opens a local relationship's KMS without creating master keys while any key store holds
 * items: a new key file, or a new key for a kms_key_arn missing from the file, could not
 * decrypt those items, and creating one silently hides that the right key file is lost or
 * misnamed. Every key store counts, not only those whose default relationship this is: a tenant
 * may use any relationship it is allowed with any key store it is allowed, and a config can
 * change between runs, after which a key created now would pass this check unnoticed. The key
 * stores are only asked (one cheap read each) when a key would have to be created; one that
 * cannot be asked stops the start, since emptiness is then unknown.
 */
static ks_status open_local_kms(struct ks_app *app, const struct ks_kms_rel_config *rc,
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
    for (i = 0; i < app->config->n_key_stores; i++) {
        const char *name = app->config->key_stores[i].name;
        if ((st = ks_keystore_has_items(app->keystores[i], &has, &probe)) != KS_OK)
            return ks_error_set(err, st,
                                "cannot tell whether key store '%s' holds items (%s), and %s", name,
                                probe.message, why);
        if (has)
            return ks_error_set(err, KS_E_CONFIG, "key store '%s' holds items but %s", name, why);
    }
    return ks_kms_local_open(rc->key_file, arns, arns ? 1 : 0, KS_KMS_LOCAL_MAY_CREATE, out, err);
}

static ks_status open_relationship(struct ks_app *app, size_t i, struct ks_error *err)
{
    const struct ks_kms_rel_config *rc = &app->config->kms_relationships[i];
    struct ks_kms_relationship *rel = &app->relationships[i];
    char arn[KS_ARN_MAX + 1];
    ks_status st;

    if (rc->type == KS_KMS_AWS) {
        struct ks_aws_credentials_provider **creds = &app->credentials[i];
        if ((st = ks_aws_credentials_provider_create(&rc->credentials, NULL, creds, err)) !=
                KS_OK ||
            (st = ks_kms_aws_create(rc, *creds, &app->kms_backends[i], err)) != KS_OK)
            return st;
    } else if ((st = open_local_kms(app, rc, &app->kms_backends[i], err)) != KS_OK) {
        return st;
    }
    if (rc->has_kms_configuration) {
        rel->kind = rc->kms.kind;
        app->relationship_arns[i] = rc->kms.arn ? strdup(rc->kms.arn) : NULL;
        rel->region = rc->kms.region;
    } else {
        /* A local relationship without kms_configuration uses its key file's first key. */
        if ((st = ks_kms_local_default_arn(app->kms_backends[i], arn, sizeof arn)) != KS_OK)
            return st;
        rel->kind = KS_KMS_KEY_ARN;
        app->relationship_arns[i] = strdup(arn);
    }
    if ((rel->kind == KS_KMS_KEY_ARN || rel->kind == KS_KMS_MR_KEY_ARN) &&
        !app->relationship_arns[i])
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    rel->name = rc->name;
    rel->kms = app->kms_backends[i];
    rel->arn = app->relationship_arns[i];
    rel->grant_tokens = (const char *const *)rc->grant_tokens;
    rel->n_grant_tokens = rc->n_grant_tokens;
    rel->counters = &app->kms_counters[i];
    return KS_OK;
}

static ks_status open_key_store(struct ks_app *app, size_t i, const struct ks_clock *clock,
                                struct ks_error *err)
{
    const struct ks_key_store_config *kc = &app->config->key_stores[i];
    struct ks_keystore_params params;
    struct ks_storage *storage = NULL;
    ks_status st;

    if (kc->storage.type == KS_STORAGE_DYNAMODB) {
        struct ks_aws_credentials_provider **creds =
            &app->credentials[app->config->n_kms_relationships + i];
        if ((st = ks_aws_credentials_provider_create(&kc->storage.credentials, NULL, creds, err)) !=
                KS_OK ||
            (st = ks_storage_dynamodb_open(&kc->storage, *creds, &storage, err)) != KS_OK)
            return st;
    } else if ((st = ks_storage_sqlite_open(kc->storage.path, &storage, err)) != KS_OK) {
        return st;
    }
    params.name = kc->name;
    params.logical_key_store_name = kc->logical_key_store_name;
    params.key_store_id = kc->key_store_id;
    params.storage = storage;
    params.clock = clock;
    params.cache = app->cache;
    if ((st = ks_keystore_create(&params, &app->keystores[i], err)) != KS_OK)
        ks_storage_destroy(storage);
    return st;
}

ks_status ks_app_create(const struct ks_config *cfg, const struct ks_clock *clock,
                        struct ks_app **out, struct ks_error *err)
{
    struct ks_app *app = calloc(1, sizeof *app);
    ks_status st = KS_OK;
    size_t i;

    if (!app)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    app->config = cfg;
    app->openapi_yaml = ks_openapi_yaml;
    app->openapi_yaml_len = ks_openapi_yaml_len;
    app->keystores = calloc(cfg->n_key_stores + 1, sizeof *app->keystores);
    app->relationships = calloc(cfg->n_kms_relationships + 1, sizeof *app->relationships);
    app->kms_backends = calloc(cfg->n_kms_relationships + 1, sizeof *app->kms_backends);
    app->relationship_arns = calloc(cfg->n_kms_relationships + 1, sizeof *app->relationship_arns);
    /* One credentials provider per aws relationship and per DynamoDB key store. */
    app->credentials =
        calloc(cfg->n_kms_relationships + cfg->n_key_stores + 1, sizeof *app->credentials);
    app->kms_counters = calloc(cfg->n_kms_relationships + 1, sizeof *app->kms_counters);
    app->keyring_counters = calloc(1, sizeof *app->keyring_counters);
    app->rotations = calloc(cfg->n_key_stores + 1, sizeof *app->rotations);
    if (!app->keystores || !app->relationships || !app->kms_backends || !app->relationship_arns ||
        !app->credentials || !app->kms_counters || !app->keyring_counters || !app->rotations) {
        ks_app_destroy(app);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    /* One cache for every key store, relationship and tenant (issue 5); partitions keep
     * tenants apart. */
    st = ks_cache_create(&cfg->cache, clock, &app->cache, err);
    /* Key stores first: a local relationship asks them whether it may create master keys. */
    for (i = 0; st == KS_OK && i < cfg->n_key_stores; i++)
        st = open_key_store(app, i, clock, err);
    for (i = 0; st == KS_OK && i < cfg->n_kms_relationships; i++)
        st = open_relationship(app, i, err);
    for (i = 0; st == KS_OK && i < cfg->n_key_stores; i++)
        st = open_rotation(app, i, clock, err);
    if (st != KS_OK) {
        ks_app_destroy(app);
        return st;
    }
    *out = app;
    return KS_OK;
}

void ks_app_destroy(struct ks_app *app)
{
    size_t i;
    if (!app)
        return;
    for (i = 0; app->rotations && i < app->config->n_key_stores; i++)
        ks_rotation_destroy(app->rotations[i]);
    free(app->rotations);
    for (i = 0; app->keystores && i < app->config->n_key_stores; i++)
        ks_keystore_destroy(app->keystores[i]);
    ks_cache_destroy(app->cache);
    free(app->kms_counters);
    free(app->keyring_counters);
    for (i = 0; app->kms_backends && i < app->config->n_kms_relationships; i++)
        ks_kms_destroy(app->kms_backends[i]);
    for (i = 0; app->relationship_arns && i < app->config->n_kms_relationships; i++)
        free(app->relationship_arns[i]);
    /* Providers last: the backends above borrowed them. */
    for (i = 0;
         app->credentials && i < app->config->n_kms_relationships + app->config->n_key_stores; i++)
        ks_aws_credentials_provider_destroy(app->credentials[i]);
    free(app->credentials);
    free(app->keystores);
    free(app->relationships);
    free(app->kms_backends);
    free(app->relationship_arns);
    free(app);
}
