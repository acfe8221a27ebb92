/*
 * hv2_kms.h - the KMS calls of hierarchy version 2 (docs/reference/hv2.md sections 5-7) through a
 * KMS relationship: new material by GenerateDataKey, wrapping digest || key by Encrypt, and
 * unwrapping by Decrypt with the strict model check before the call and the length and digest
 * checks after it. The KMS encryption context is always the branch key context's custom keys
 * without their prefix (section 4). Thread-safe; every call is counted on the relationship.
 */
#ifndef KS_KEYSTORE_HV2_KMS_H
#define KS_KEYSTORE_HV2_KMS_H

#include "keystore/hv2.h"
#include "keystore/kms_rel.h"

/*
 * GenerateDataKey of 32 bytes under arn with kms_ec (section 5 calls 1-2). The response's KeyId
 * must equal arn exactly. key_out is secret: the caller wipes it.
 */
ks_status ks_hv2_generate(const struct ks_kms_relationship *rel, const char *arn,
                          const struct ks_ec *kms_ec, unsigned char key_out[KS_HV2_KEY_LEN],
                          struct ks_error *err);

/*
 * Encrypt of digest(bkc) || key under arn (section 5 calls 3-5), the KMS context derived from
 * bkc (strict model checked first). The response's KeyId must equal arn and the ciphertext be
 * 1..6144 bytes. enc (zeroed) receives the ciphertext.
 */
ks_status ks_hv2_wrap(const struct ks_kms_relationship *rel, const char *arn,
                      const struct ks_ec *bkc, const unsigned char key[KS_HV2_KEY_LEN],
                      struct ks_bytes *enc, struct ks_error *err);

/*
 * Section 7 steps 3-7: the strict model check (no KMS call on failure), Decrypt of enc with
 * KeyId key_id and the derived KMS context, then exactly 80 bytes and the digest of bkc (compared
 * in constant time). key_out (secret) gets the key.
 */
ks_status ks_hv2_unwrap(const struct ks_kms_relationship *rel, const char *key_id,
                        const unsigned char *enc, size_t enc_len, const struct ks_ec *bkc,
                        unsigned char key_out[KS_HV2_KEY_LEN], struct ks_error *err);

/*
 * CreateKey's KMS calls for HV-2 (section 5): GenerateDataKey twice (branch and beacon material)
 * under rel->arn with the custom context unprefixed, then Encrypt of digest || material for the
 * version, ACTIVE and beacon contexts. The three enc (zeroed) receive the ciphertexts.
 */
ks_status ks_hv2_create_wraps(const struct ks_kms_relationship *rel,
                              const struct ks_ec *version_bkc, const struct ks_ec *active_bkc,
                              const struct ks_ec *beacon_bkc, struct ks_bytes *version_enc,
                              struct ks_bytes *active_enc, struct ks_bytes *beacon_enc,
                              struct ks_error *err);

/*
 * VersionKey's KMS calls for HV-2 (section 6, with its bug fixed): authenticate the old ACTIVE by
 * unwrap under rel->arn (key discarded), GenerateDataKey of new material, and Encrypt of that SAME
 * material for the new version and the new ACTIVE, so GetBranchKeyVersion(new) = GetActive.
 */
ks_status ks_hv2_version_wraps(const struct ks_kms_relationship *rel,
                               const struct ks_bytes *old_enc, const struct ks_ec *old_bkc,
                               const struct ks_ec *version_bkc, const struct ks_ec *active_bkc,
                               struct ks_bytes *version_enc, struct ks_bytes *active_enc,
                               struct ks_error *err);

#endif
