/*
 * materials.h - branch key and beacon key materials: what GetActiveBranchKey,
 * GetBranchKeyVersion and GetBeaconKey hand out (docs/reference/branch-key-store.md section 6)
 * and what the shared cache holds (keystore/cache.h). Its own unit so that keystore.c and
 * cache.c both use it without using each other (docs/architecture.md section 2: keystore.c ->
 * cache.c -> materials.c).
 *
 * The key is secret: ks_materials_free wipes it (OPENSSL_cleanse through ks_secret_free) before
 * freeing it. Materials are not refcounted; the cache's entries are (cache.h).
 */
#ifndef KS_KEYSTORE_MATERIALS_H
#define KS_KEYSTORE_MATERIALS_H

#include <stddef.h>

#include "common/ec.h"

/* Branch key or beacon key materials (section 6). Every pointer is owned by the materials. */
struct ks_materials {
    char *branch_key_id;
    char *version;                   /* bare UUID; NULL for a beacon key */
    struct ks_ec encryption_context; /* custom context, aws-crypto-ec: prefix stripped */
    unsigned char *key;              /* secret; key_len bytes (32 for HV-1) */
    size_t key_len;
    int hierarchy_version; /* 1 */
    char *kms_arn;         /* the item's kms-arn: re-checked against the relationship on every
                              cache hit, so a hit answers exactly as a miss would */
};

/* Empty materials (every pointer NULL, an empty context), or NULL on OOM. Free with
 * ks_materials_free. */
struct ks_materials *ks_materials_new(void);

/* Wipes and frees the key, frees everything else and m. NULL is a no-op. Thread-safe for
 * distinct m. */
void ks_materials_free(struct ks_materials *m);

#endif
