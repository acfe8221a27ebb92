/*
 * materials.c - create and free struct ks_materials (materials.h). The key is wiped before it
 * is freed (docs/style.md "Memory").
 */
#include "keystore/materials.h"

#include <stdlib.h>

#include "common/secret.h"

struct ks_materials *ks_materials_new(void)
{
    struct ks_materials *m = calloc(1, sizeof *m);

    if (m)
        ks_ec_init(&m->encryption_context);
    return m;
}

void ks_materials_free(struct ks_materials *m)
{
    if (!m)
        return;
    free(m->branch_key_id);
    free(m->version);
    free(m->kms_arn);
    ks_ec_free(&m->encryption_context);
    ks_secret_free(m->key, m->key_len);
    free(m);
}
