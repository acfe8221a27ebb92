/*
 * kms_rel.h - a KMS relationship at run time and its call counters, shared by keystore.c and the
 * HV-2 KMS calls (hv2_kms.c) without an include cycle between them.
 */
#ifndef KS_KEYSTORE_KMS_REL_H
#define KS_KEYSTORE_KMS_REL_H

#include <stdatomic.h>
#include <stddef.h>

#include "config/config.h"
#include "kms/kms.h"

/* KMS calls made through a relationship, by operation (for /metrics). */
enum ks_kms_op {
    KS_KMS_OP_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT = 0,
    KS_KMS_OP_RE_ENCRYPT,
    KS_KMS_OP_DECRYPT,
    KS_KMS_OP_ENCRYPT,           /* mutations: decryptEncrypt strategy and the KMS system key */
    KS_KMS_OP_GENERATE_DATA_KEY, /* HV-2 (docs/reference/hv2.md section 5) */
    KS_KMS_OP_COUNT
};
const char *ks_kms_op_name(enum ks_kms_op op);

struct ks_kms_counters {
    _Atomic unsigned long long calls[KS_KMS_OP_COUNT];
    _Atomic unsigned long long errors[KS_KMS_OP_COUNT];
};

/* A KMS relationship at run time: the backend plus the KMS configuration and grant tokens. */
struct ks_kms_relationship {
    const char *name;
    struct ks_kms *kms;              /* borrowed; owned by whoever built the relationships */
    enum ks_kms_config_kind kind;    /* docs/reference/branch-key-store.md section 7 */
    const char *arn;                 /* kms_key_arn / kms_mr_key_arn */
    const char *region;              /* mr_discovery */
    const char *const *grant_tokens; /* passed through to KMS */
    size_t n_grant_tokens;
    struct ks_kms_counters *counters; /* may be NULL; owned by whoever built the relationship */
};

/* Counts one KMS call on rel (and whether it failed); returns st. */
static inline ks_status ks_kms_rel_count(const struct ks_kms_relationship *rel, enum ks_kms_op op,
                                         ks_status st)
{
    if (rel->counters) {
        atomic_fetch_add_explicit(&rel->counters->calls[op], 1, memory_order_relaxed);
        if (st != KS_OK)
            atomic_fetch_add_explicit(&rel->counters->errors[op], 1, memory_order_relaxed);
    }
    return st;
}

#endif
