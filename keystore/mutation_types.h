/*
 * mutation_types.h - the types of branch key mutations (keystore/mutation.h has the
 * operations): strategies, settings, token, log, results. Split from mutation.h so that the
 * mutation files share them without an include cycle.
 */
#ifndef KS_KEYSTORE_MUTATION_TYPES_H
#define KS_KEYSTORE_MUTATION_TYPES_H

#include <stddef.h>

#include "common/ec.h"
#include "common/status.h"
#include "common/util.h"
#include "keystore/keystore.h"

/* KeyManagementStrategy (section 4). KS_STRATEGY_DEFAULT: reEncrypt through `reencrypt`, which
 * the caller sets to the key store's default relationship. */
enum ks_strategy_kind { KS_STRATEGY_REENCRYPT = 0, KS_STRATEGY_DECRYPT_ENCRYPT };

struct ks_mutation_strategy {
    enum ks_strategy_kind kind;
    const struct ks_kms_relationship *reencrypt; /* REENCRYPT */
    const struct ks_kms_relationship *decrypt;   /* DECRYPT_ENCRYPT: the original side */
    const struct ks_kms_relationship *encrypt;   /* DECRYPT_ENCRYPT: the terminal side */
};

/* The key store's `mutations:` settings at run time (docs/reference/mutations.md section 3). */
struct ks_mutation_settings {
    int kms_system_key;                        /* 0: trustStorage */
    const struct ks_kms_relationship *sys_rel; /* kmsSymmetricEncryption: its KMS */
    const char *sys_arn;                       /* kmsSymmetricEncryption: the key */
    unsigned page_size;                        /* 0: 98 */
    unsigned kms_in_flight;                    /* 0: 32 */
};

#define KS_MUTATION_TIME_MAX 40

struct ks_mutation_token {
    char *identifier;
    char uuid[KS_UUID_LEN + 1];
    char create_time[KS_MUTATION_TIME_MAX];
};
void ks_mutation_token_free(struct ks_mutation_token *t);

/* MutatedBranchKeyItems: (itemType, description) pairs, in order. */
struct ks_mutation_log_entry {
    char *item_type;
    char *description;
};
struct ks_mutation_log {
    struct ks_mutation_log_entry *entries;
    size_t count;
    size_t cap;
};
void ks_mutation_log_free(struct ks_mutation_log *log);

enum ks_mutation_flag {
    KS_MUTATION_CREATED = 0,
    KS_MUTATION_RESUMED,
    KS_MUTATION_RESUMED_WITHOUT_INDEX
};
const char *ks_mutation_flag_name(enum ks_mutation_flag f);

struct ks_mutation_init_input {
    const char *branch_key_id;
    const char *terminal_kms_arn;         /* NULL: unchanged */
    const struct ks_ec *terminal_ec;      /* unprefixed; NULL: unchanged */
    struct ks_mutation_strategy strategy; /* already resolved (tenant checks done) */
    int do_not_version;
    int atomic;
    /* terminalHierarchyVersion: 1 or 2; 0 when absent (the ACTIVE's; section 12) */
    int terminal_hierarchy_version;
};

struct ks_mutation_init_result {
    enum ks_mutation_flag flag;
    int completed; /* atomic: done, no token */
    struct ks_mutation_token token;
    struct ks_mutation_log log;
};
void ks_mutation_init_result_free(struct ks_mutation_init_result *r);

struct ks_mutation_apply_result {
    int completed;
    struct ks_mutation_token token; /* while not completed */
    struct ks_mutation_log log;
    size_t versions_mutated;
    size_t versions_verified;
};
void ks_mutation_apply_result_free(struct ks_mutation_apply_result *r);

struct ks_mutation_props {
    char *kms_arn;
    struct ks_ec ec;       /* unprefixed custom context */
    int hierarchy_version; /* 1 or 2 */
};

struct ks_mutation_description {
    struct ks_mutation_token token;
    struct ks_mutation_props original, terminal;
    char *input_kms_arn; /* NULL when not asked */
    int input_has_ec;
    struct ks_ec input_ec;
    int input_hierarchy_version; /* 0: not asked for */
    int do_not_version;          /* not stored by the MPL: always 0 here (reported as false) */
    const char *system_key;      /* "trustStorage" | "kmsSymmetricEncryption" | "unknown" */
    int last_page_done;
    size_t versions_original, versions_terminal;
};
void ks_mutation_description_free(struct ks_mutation_description *d);

#endif
