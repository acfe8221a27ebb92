/*
 * mutation_internal.h - internal to keystore/: what the mutation files (mutation.c,
 * mutation_apply.c, mutation_kms.c, mutation_props.c) share. The hooks keystore.c lends them
 * are declared in keystore.h.
 * Nothing outside keystore/ includes it.
 */
#ifndef KS_KEYSTORE_MUTATION_INTERNAL_H
#define KS_KEYSTORE_MUTATION_INTERNAL_H

#include <stddef.h>

#include "common/bytes.h"
#include "common/ec.h"
#include "keystore/keystore.h"
#include "keystore/mutation_types.h"
#include "storage/storage.h"

/* --- mutation_props.c: mutable properties and item states (section 2) ----------------------- */

/* Mutable properties at item level: kms-arn and every attribute that is not immutable
 * (prefixed custom keys and un-modeled ones), names as stored. */
struct ks_mut_props {
    char *kms_arn;
    struct ks_ec ec;
    int hv; /* hierarchy version, 1 or 2 (section 12); part of the state like kms-arn */
};
void ks_mut_props_init(struct ks_mut_props *p);
/* An item's hierarchy-version: 2 for N "2", else 1 (items were checked on read). */
int ks_mut_item_hv(const struct ks_item *item);
void ks_mut_props_free(struct ks_mut_props *p);
ks_status ks_mut_props_of_item(const struct ks_item *item, struct ks_mut_props *out,
                               struct ks_error *err);
/* Terminal = input ARN or original's; input EC prefixed plus original's un-modeled
 * attributes, or original's EC when no input EC. */
ks_status ks_mut_props_terminal(const struct ks_mut_props *original, const char *arn,
                                const struct ks_ec *input_ec, struct ks_mut_props *out,
                                struct ks_error *err);
int ks_mut_props_equal(const struct ks_mut_props *a, const struct ks_mut_props *b);
/* The item with its mutable part replaced by props (enc kept). */
ks_status ks_mut_item_with_props(const struct ks_item *item, const struct ks_mut_props *props,
                                 struct ks_item *out, struct ks_error *err);

enum ks_mut_state { KS_MUT_ORIGINAL, KS_MUT_TERMINAL, KS_MUT_NEITHER };
enum ks_mut_state ks_mut_classify(const struct ks_item *item, const struct ks_mut_props *original,
                                  const struct ks_mut_props *terminal);

/* JSON of the commitment's original/terminal (storage/item.h codecs) from/to props. three:
 * the HV-2 form with a "hierarchy-version" member (either side HV-2, section 12). The reader
 * sets hv from that member, 1 when absent. */
ks_status ks_mut_props_to_json(const struct ks_mut_props *p, int three, struct ks_bytes *out,
                               struct ks_error *err);
ks_status ks_mut_props_from_json(const struct ks_bytes *json, struct ks_mut_props *out,
                                 struct ks_error *err);
/* Unprefixed view (for DescribeMutation): un-modeled attributes keep their names. */
ks_status ks_mut_props_public(const struct ks_mut_props *p, struct ks_mutation_props *out,
                              struct ks_error *err);

/* Log entries. */
ks_status ks_mut_log_add(struct ks_mutation_log *log, const char *item_type,
                         const char *description, struct ks_error *err);

/* --- mutation_kms.c: strategies, system key, concurrent pages (sections 3, 4) --------------- */

/* The relationship rules: 400 UnsupportedFeatureException before any KMS call. */
ks_status ks_mut_check_strategy(const struct ks_mutation_strategy *s, const char *original_arn,
                                const char *terminal_arn, struct ks_error *err);
/* KMS-verifies an item in the original (ACTIVE at Initialize) or terminal state. */
ks_status ks_mut_verify(const struct ks_keystore *ks, const struct ks_mutation_strategy *s,
                        const struct ks_item *item, int terminal_side, struct ks_error *err);
/* Re-wraps item (original state) under the terminal props: *out is the terminal item. */
ks_status ks_mut_transform(const struct ks_keystore *ks, const struct ks_mutation_strategy *s,
                           const struct ks_item *item, const struct ks_mut_props *terminal,
                           struct ks_item *out, struct ks_error *err);
/* A new decrypt-only version and ACTIVE under the terminal props (doNotVersion false). */
ks_status ks_mut_rotate(const struct ks_keystore *ks, const struct ks_mutation_strategy *s,
                        const struct ks_item *old_active, const struct ks_mut_props *terminal,
                        const char *now, struct ks_item *version, struct ks_item *active,
                        struct ks_error *err);

/* A KMS refusal (KS_E_KMS) on one side becomes MutationFromException / MutationToException
 * naming the operation, the side and the ARN; other statuses pass through. */
ks_status ks_mut_side_error(ks_status st, int terminal_side, const char *op, const char *arn,
                            struct ks_error *err);
/* The per-relationship cap around one KMS call (section 13), for mutation_hv2.c. */
void ks_mut_gate_enter(const struct ks_kms_relationship *rel);
void ks_mut_gate_leave(const struct ks_kms_relationship *rel);

/* --- mutation_hv2.c: the per-item path to an HV-2 terminal (section 12) -------------------- */

/* The 32-byte key of item through the read path of its hierarchy version (HV-1: Decrypt under
 * the full context; HV-2: strict model, Decrypt under the unprefixed context, 80 bytes, digest
 * compared in constant time). terminal_side names the side in a KMS refusal. */
ks_status ks_mut_hv2_unwrap(const struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                            const struct ks_item *item, int terminal_side, unsigned char key[32],
                            struct ks_error *err);
/* ks_mut_transform for an HV-2 terminal (decryptEncrypt only). */
ks_status ks_mut_hv2_transform(const struct ks_keystore *ks, const struct ks_mutation_strategy *s,
                               const struct ks_item *item, const struct ks_mut_props *terminal,
                               struct ks_item *out, struct ks_error *err);
/* Rotation to an HV-2 terminal: GenerateDataKey (encrypt relationship, arn, unprefixed context)
 * and the same material wrapped for the new version (vbkc) and the new ACTIVE (abkc). */
ks_status ks_mut_hv2_rotate(const struct ks_mutation_strategy *s, const struct ks_ec *vbkc,
                            const struct ks_ec *abkc, const char *arn, struct ks_bytes *venc,
                            struct ks_bytes *aenc, struct ks_error *err);

/* Runs job(ctx, i, err_i) for i in 0..n with at most in_flight at once (and at most the
 * per-relationship cap in flight on each relationship across all requests). Returns the first
 * failure, in index order. */
typedef ks_status (*ks_mut_job_fn)(void *ctx, size_t i, struct ks_error *err);
ks_status ks_mut_parallel(size_t n, unsigned in_flight, ks_mut_job_fn job, void *ctx,
                          struct ks_error *err);

/* System key (section 3). sign: sets enc of the commitment / index. verify: checks it. */
ks_status ks_mut_sign_commitment(const struct ks_mutation_settings *set,
                                 struct ks_mutation_commitment *c, struct ks_error *err);
ks_status ks_mut_sign_index(const struct ks_mutation_settings *set, struct ks_mutation_index *x,
                            struct ks_error *err);
ks_status ks_mut_verify_commitment(const struct ks_mutation_settings *set,
                                   const struct ks_mutation_commitment *c, struct ks_error *err);
ks_status ks_mut_verify_index(const struct ks_mutation_settings *set,
                              const struct ks_mutation_index *x, struct ks_error *err);
/* "trustStorage" | "kmsSymmetricEncryption" | "unknown" from an enc. */
const char *ks_mut_system_key_name(const struct ks_bytes *enc);

/* --- mutation.c / mutation_apply.c ------------------------------------------------------- */

/* InitializeMutation's working state. */
struct ks_mut_state_ctx {
    struct ks_mutation_init_items items; /* as read */
    struct ks_mut_props original, terminal;
    char uuid[KS_UUID_LEN + 1];
    char now[28];
    struct ks_item old_version; /* doNotVersion: the ACTIVE's version as read */
    struct ks_item new_active, new_version, new_beacon;
    /* atomic: every version as read (the ACTIVE's own excluded under doNotVersion) and its
     * terminal form */
    struct ks_item *versions, *mutated;
    size_t n_versions;
};
void ks_mut_ctx_init(struct ks_mut_state_ctx *ctx);
void ks_mut_ctx_free(struct ks_mut_state_ctx *ctx);

ks_status ks_mut_token_set(struct ks_mutation_token *t, const char *id, const char *uuid,
                           const char *create_time, struct ks_error *err);
/* Commitment and index present together and agreeing (MutationInvalidException). */
ks_status ks_mut_check_pair(const struct ks_mutation_state *m, const char *id,
                            struct ks_error *err);

/* Atomic mutation (issue 10 item 4): reads every version (400 UnsupportedFeatureException over
 * the limit, before any KMS call), then mutates them and writes all at once. */
ks_status ks_mut_atomic_collect(struct ks_keystore *ks, const struct ks_mutation_init_input *in,
                                struct ks_mut_state_ctx *ctx, struct ks_error *err);
ks_status ks_mut_atomic_write(struct ks_keystore *ks, const struct ks_mutation_settings *set,
                              const struct ks_mutation_init_input *in, struct ks_mut_state_ctx *ctx,
                              struct ks_error *err);

/* KS_OK when the storage driver has the eight mutation operations (table version >= 3), else
 * KS_E_UNSUPPORTED: the public mutation functions check it before any storage call. */
ks_status ks_mut_storage_has_mutations(const struct ks_storage *s, struct ks_error *err);

#endif
