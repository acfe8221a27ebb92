/*
 * config.c - lookups in and freeing of a struct ks_config (docs/architecture.md section 4).
 * Loading and validation are in load.c over the section files; see there.
 */
#include "config/config.h"

#include <stdlib.h>
#include <string.h>

#include "common/secret.h"

const struct ks_key_store_config *ks_config_key_store(const struct ks_config *cfg, const char *name,
                                                      size_t *index)
{
    size_t i;
    if (!cfg || !name)
        return NULL;
    for (i = 0; i < cfg->n_key_stores; i++) {
        if (cfg->key_stores[i].name && strcmp(cfg->key_stores[i].name, name) == 0) {
            if (index)
                *index = i;
            return &cfg->key_stores[i];
        }
    }
    return NULL;
}

const struct ks_kms_rel_config *ks_config_kms_relationship(const struct ks_config *cfg,
                                                           const char *name, size_t *index)
{
    size_t i;
    if (!cfg || !name)
        return NULL;
    for (i = 0; i < cfg->n_kms_relationships; i++) {
        if (cfg->kms_relationships[i].name && strcmp(cfg->kms_relationships[i].name, name) == 0) {
            if (index)
                *index = i;
            return &cfg->kms_relationships[i];
        }
    }
    return NULL;
}

static void free_credentials(struct ks_aws_credentials_options *c)
{
    free(c->profile);
    ks_secret_free_string(c->access_key_id);
    ks_secret_free_string(c->secret_access_key);
    ks_secret_free_string(c->session_token);
}

void ks_config_free(struct ks_config *cfg)
{
    size_t i, j;

    if (!cfg)
        return;
    for (i = 0; i < cfg->n_kms_relationships; i++) {
        struct ks_kms_rel_config *rel = &cfg->kms_relationships[i];
        free(rel->name);
        free(rel->key_file);
        free(rel->kms.arn);
        free(rel->kms.region);
        free(rel->region);
        free(rel->endpoint);
        free_credentials(&rel->credentials);
        for (j = 0; j < rel->n_grant_tokens; j++)
            ks_secret_free_string(rel->grant_tokens[j]);
        free(rel->grant_tokens);
    }
    free(cfg->kms_relationships);
    for (i = 0; i < cfg->n_key_stores; i++) {
        struct ks_key_store_config *ks = &cfg->key_stores[i];
        free(ks->name);
        free(ks->logical_key_store_name);
        free(ks->key_store_id);
        free(ks->kms_relationship);
        free(ks->mutations.system_key_relationship);
        free(ks->mutations.system_key_arn);
        free(ks->storage.path);
        free(ks->storage.table);
        free(ks->storage.region);
        free(ks->storage.endpoint);
        free_credentials(&ks->storage.credentials);
    }
    free(cfg->key_stores);
    for (i = 0; i < cfg->n_tenants; i++) {
        struct ks_tenant_config *t = &cfg->tenants[i];
        free(t->name);
        ks_secret_wipe(t->token_sha256, sizeof t->token_sha256);
        free(t->key_store_indexes);
        free(t->kms_relationship_indexes);
        free(t->partition);
    }
    free(cfg->tenants);
    free(cfg->server.tls.cert_file);
    free(cfg->server.tls.key_file);
    free(cfg->listen_host);
    free(cfg->source_name);
    free(cfg->audit.path);
    free(cfg);
}
