/*
 * mutation.h - branch key mutations (docs/reference/mutations.md): move every version of a
 * branch key to another KMS key and/or custom encryption context, in pages, resumably, with the
 * MPL's mutation commitment and index items. InitializeMutation, ApplyMutation,
 * DescribeMutation and the abort (DELETE) that the MPL lacks, plus the atomic mutation the MPL
 * declares but never implemented.
 *
 * Thread-safe: every state lives in storage; concurrent calls on one key are serialized by the
 * storage conditions (a lost race is KS_E_MUTATION_CONFLICT and nothing is written).
 */
#ifndef KS_KEYSTORE_MUTATION_H
#define KS_KEYSTORE_MUTATION_H

#include <stddef.h>

#include "common/ec.h"
#include "common/status.h"
#include "keystore/keystore.h"
#include "keystore/mutation_types.h"

ks_status ks_mutation_initialize(struct ks_keystore *ks, const struct ks_mutation_settings *set,
                                 const struct ks_mutation_init_input *in,
                                 struct ks_mutation_init_result *out, struct ks_error *err);

/* One page. page_size 0: the settings' page size. */
ks_status ks_mutation_apply(struct ks_keystore *ks, const struct ks_mutation_settings *set,
                            const struct ks_mutation_token *token, unsigned page_size,
                            const struct ks_mutation_strategy *strategy,
                            struct ks_mutation_apply_result *out, struct ks_error *err);

/* DescribeMutation: KS_E_NOT_FOUND when no mutation is in flight. Counts the versions in each
 * state (one storage scan, no KMS call). */
ks_status ks_mutation_describe(struct ks_keystore *ks, const char *branch_key_id,
                               struct ks_mutation_description *out, struct ks_error *err);

/* Abort: deletes the commitment and index when uuid is the in-flight mutation's. */
ks_status ks_mutation_abort(struct ks_keystore *ks, const struct ks_mutation_token *token,
                            struct ks_error *err);

#endif
