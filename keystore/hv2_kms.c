/*
 * hv2_kms.c - GenerateDataKey, Encrypt and Decrypt for HV-2 (docs/reference/hv2.md sections 5-7).
 */
#include "keystore/hv2_kms.h"

#include <string.h>

#include "common/secret.h"

#define ENC_MAX 6144 /* docs/reference/branch-key-store.md section 3: enc is 1..6144 bytes */

static struct ks_kms_call rel_call(const struct ks_kms_relationship *rel)
{
    struct ks_kms_call call = {rel->grant_tokens, rel->n_grant_tokens};
    return call;
}

ks_status ks_hv2_generate(const struct ks_kms_relationship *rel, const char *arn,
                          const struct ks_ec *kms_ec, unsigned char key_out[KS_HV2_KEY_LEN],
                          struct ks_error *err)
{
    struct ks_kms_call call = rel_call(rel);
    struct ks_kms_result r;
    ks_status st;

    ks_kms_result_init(&r);
    st = ks_kms_rel_count(
        rel, KS_KMS_OP_GENERATE_DATA_KEY,
        rel->kms->ops->generate_data_key(rel->kms, &call, arn, KS_HV2_KEY_LEN, kms_ec, &r, err));
    if (st == KS_OK && (!r.plaintext || r.plaintext_len != KS_HV2_KEY_LEN || !r.key_id ||
                        strcmp(r.key_id, arn) != 0))
        st = ks_error_set(err, KS_E_KMS, "Invalid response from KMS GenerateDataKey");
    if (st == KS_OK)
        memcpy(key_out, r.plaintext, KS_HV2_KEY_LEN);
    ks_kms_result_free(&r);
    return st;
}

ks_status ks_hv2_wrap(const struct ks_kms_relationship *rel, const char *arn,
                      const struct ks_ec *bkc, const unsigned char key[KS_HV2_KEY_LEN],
                      struct ks_bytes *enc, struct ks_error *err)
{
    unsigned char plain[KS_HV2_PLAINTEXT_LEN];
    struct ks_kms_call call = rel_call(rel);
    struct ks_kms_result r;
    struct ks_ec kms_ec;
    ks_status st;

    ks_ec_init(&kms_ec);
    ks_kms_result_init(&r);
    if ((st = ks_hv2_kms_context(bkc, &kms_ec, err)) != KS_OK ||
        (st = ks_hv2_pack(bkc, key, plain, err)) != KS_OK)
        goto out;
    st = ks_kms_rel_count(
        rel, KS_KMS_OP_ENCRYPT,
        rel->kms->ops->encrypt(rel->kms, &call, arn, plain, sizeof plain, &kms_ec, &r, err));
    if (st == KS_OK && (!r.key_id || strcmp(r.key_id, arn) != 0 || r.ciphertext.len < 1 ||
                        r.ciphertext.len > ENC_MAX))
        st = ks_error_set(err, KS_E_KMS, "Invalid response from KMS Encrypt");
    if (st == KS_OK) {
        *enc = r.ciphertext;
        r.ciphertext.data = NULL;
        r.ciphertext.len = 0;
    }
out:
    ks_secret_wipe(plain, sizeof plain);
    ks_ec_free(&kms_ec);
    ks_kms_result_free(&r);
    return st;
}

ks_status ks_hv2_unwrap(const struct ks_kms_relationship *rel, const char *key_id,
                        const unsigned char *enc, size_t enc_len, const struct ks_ec *bkc,
                        unsigned char key_out[KS_HV2_KEY_LEN], struct ks_error *err)
{
    struct ks_kms_call call = rel_call(rel);
    struct ks_kms_result r;
    struct ks_ec kms_ec;
    ks_status st;

    ks_ec_init(&kms_ec);
    ks_kms_result_init(&r);
    /* Section 7 step 3: refuse an un-modeled attribute before KMS sees anything. */
    if ((st = ks_hv2_kms_context(bkc, &kms_ec, err)) != KS_OK)
        goto out;
    st = ks_kms_rel_count(
        rel, KS_KMS_OP_DECRYPT,
        rel->kms->ops->decrypt(rel->kms, &call, key_id, enc, enc_len, &kms_ec, &r, err));
    if (st == KS_OK)
        st = ks_hv2_unpack(bkc, r.plaintext, r.plaintext ? r.plaintext_len : 0, key_out, err);
out:
    ks_ec_free(&kms_ec);
    ks_kms_result_free(&r);
    return st;
}

ks_status ks_hv2_create_wraps(const struct ks_kms_relationship *rel,
                              const struct ks_ec *version_bkc, const struct ks_ec *active_bkc,
                              const struct ks_ec *beacon_bkc, struct ks_bytes *version_enc,
                              struct ks_bytes *active_enc, struct ks_bytes *beacon_enc,
                              struct ks_error *err)
{
    unsigned char branch[KS_HV2_KEY_LEN], beacon[KS_HV2_KEY_LEN], digest[KS_HV2_DIGEST_LEN];
    struct ks_ec kms_ec;
    ks_status st;

    ks_ec_init(&kms_ec);
    /* The u16 limits of section 3 in bytes (CreateKey's own check counts UTF-16 units): a 400
     * before any KMS call, not after two GenerateDataKey calls. */
    if ((st = ks_hv2_digest(version_bkc, digest, err)) == KS_OK &&
        (st = ks_hv2_digest(active_bkc, digest, err)) == KS_OK &&
        (st = ks_hv2_kms_context(version_bkc, &kms_ec, err)) == KS_OK &&
        (st = ks_hv2_generate(rel, rel->arn, &kms_ec, branch, err)) == KS_OK &&
        (st = ks_hv2_generate(rel, rel->arn, &kms_ec, beacon, err)) == KS_OK &&
        (st = ks_hv2_wrap(rel, rel->arn, version_bkc, branch, version_enc, err)) == KS_OK &&
        (st = ks_hv2_wrap(rel, rel->arn, active_bkc, branch, active_enc, err)) == KS_OK)
        st = ks_hv2_wrap(rel, rel->arn, beacon_bkc, beacon, beacon_enc, err);
    ks_secret_wipe(branch, sizeof branch);
    ks_secret_wipe(beacon, sizeof beacon);
    ks_ec_free(&kms_ec);
    return st;
}

ks_status ks_hv2_version_wraps(const struct ks_kms_relationship *rel,
                               const struct ks_bytes *old_enc, const struct ks_ec *old_bkc,
                               const struct ks_ec *version_bkc, const struct ks_ec *active_bkc,
                               struct ks_bytes *version_enc, struct ks_bytes *active_enc,
                               struct ks_error *err)
{
    unsigned char old_key[KS_HV2_KEY_LEN], fresh[KS_HV2_KEY_LEN];
    struct ks_ec kms_ec;
    ks_status st;

    ks_ec_init(&kms_ec);
    if ((st = ks_hv2_unwrap(rel, rel->arn, old_enc->data, old_enc->len, old_bkc, old_key, err)) ==
            KS_OK &&
        (st = ks_hv2_kms_context(version_bkc, &kms_ec, err)) == KS_OK &&
        (st = ks_hv2_generate(rel, rel->arn, &kms_ec, fresh, err)) == KS_OK &&
        (st = ks_hv2_wrap(rel, rel->arn, version_bkc, fresh, version_enc, err)) == KS_OK)
        st = ks_hv2_wrap(rel, rel->arn, active_bkc, fresh, active_enc, err);
    ks_secret_wipe(old_key, sizeof old_key);
    ks_secret_wipe(fresh, sizeof fresh);
    ks_ec_free(&kms_ec);
    return st;
}
