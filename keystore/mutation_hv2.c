/*
 * mutation_hv2.c - the per-item path of a mutation whose terminal is hierarchy version 2
 * (docs/reference/mutations.md section 12, docs/reference/hv2.md sections 2-7): decrypt the
 * item through the normal read path (HV-1: the full branch key context as KMS context; HV-2:
 * the unprefixed custom context and the digest check), then KMS Encrypt of digest || key under
 * the terminal ARN and the unprefixed terminal context. No ReEncrypt: it would leave the
 * digest, which covers kms-arn and the context, stale.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "keystore/hv2.h"
#include "keystore/hv2_kms.h"
#include "keystore/mutation_internal.h"

#define KEY_LEN KS_HV2_KEY_LEN

/* --- KMS calls ------------------------------------------------------------------------------ */

static struct ks_kms_call call_of(const struct ks_kms_relationship *rel)
{
    struct ks_kms_call c = {rel->grant_tokens, rel->n_grant_tokens};
    return c;
}

ks_status ks_mut_hv2_unwrap(const struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                            const struct ks_item *item, int terminal_side,
                            unsigned char key[KEY_LEN], struct ks_error *err)
{
    const char *arn = ks_item_get_s(item, KS_ATTR_KMS_ARN);
    const struct ks_attr *enc = ks_item_get(item, KS_ATTR_ENC);
    struct ks_kms_call call = call_of(rel);
    struct ks_kms_result r;
    struct ks_ec bkc;
    ks_status st;

    if (!arn || !enc || enc->type != KS_ATTR_B || enc->len < 1)
        return ks_error_set(err, KS_E_CORRUPT, "item without kms-arn or enc");
    ks_ec_init(&bkc);
    if ((st = ks_mut_item_ec(ks, item, &bkc, err)) != KS_OK)
        goto out;
    if (ks_mut_item_hv(item) == 2) {
        /* Strict model first (no KMS call on failure), 80 bytes, digest in constant time. */
        ks_mut_gate_enter(rel);
        st = ks_hv2_unwrap(rel, arn, enc->value, enc->len, &bkc, key, err);
        ks_mut_gate_leave(rel);
        st = ks_mut_side_error(st, terminal_side, "Decrypt", arn, err);
        goto out;
    }
    /* HV-1: Decrypt under the full branch key context. */
    ks_kms_result_init(&r);
    ks_mut_gate_enter(rel);
    st = rel->kms->ops->decrypt(rel->kms, &call, arn, enc->value, enc->len, &bkc, &r, err);
    ks_mut_gate_leave(rel);
    st = ks_mut_counted(rel, KS_KMS_OP_DECRYPT, st);
    if (st == KS_OK &&
        (!r.key_id || strcmp(r.key_id, arn) != 0 || !r.plaintext || r.plaintext_len != KEY_LEN))
        st = ks_error_set(err, KS_E_KMS, "Invalid response from KMS Decrypt");
    st = ks_mut_side_error(st, terminal_side, "Decrypt", arn, err);
    if (st == KS_OK)
        memcpy(key, r.plaintext, KEY_LEN);
    ks_kms_result_free(&r);
out:
    ks_ec_free(&bkc);
    return st;
}

/* enc for the HV-2 branch key context bkc: Encrypt(digest(bkc) || key) under arn and the
 * unprefixed context, through rel (the encrypt side). */
static ks_status wrap_bkc(const struct ks_kms_relationship *rel, const char *arn,
                          const struct ks_ec *bkc, const unsigned char key[KEY_LEN],
                          struct ks_bytes *out, struct ks_error *err)
{
    ks_status st;

    ks_mut_gate_enter(rel);
    st = ks_hv2_wrap(rel, arn, bkc, key, out, err);
    ks_mut_gate_leave(rel);
    return ks_mut_side_error(st, 1, "Encrypt", arn, err);
}

ks_status ks_mut_hv2_transform(const struct ks_keystore *ks, const struct ks_mutation_strategy *s,
                               const struct ks_item *item, const struct ks_mut_props *terminal,
                               struct ks_item *out, struct ks_error *err)
{
    unsigned char key[KEY_LEN];
    struct ks_bytes enc = {0};
    struct ks_ec bkc;
    ks_status st;

    ks_ec_init(&bkc);
    /* The terminal context is built and checked (strict model) before any KMS call. */
    if ((st = ks_mut_item_with_props(item, terminal, out, err)) != KS_OK ||
        (st = ks_mut_item_ec(ks, out, &bkc, err)) != KS_OK)
        goto done;
    {
        struct ks_ec probe;
        ks_ec_init(&probe);
        st = ks_hv2_kms_context(&bkc, &probe, err);
        ks_ec_free(&probe);
        if (st != KS_OK)
            goto done;
    }
    if ((st = ks_mut_hv2_unwrap(ks, s->decrypt, item, 0, key, err)) == KS_OK)
        st = wrap_bkc(s->encrypt, terminal->kms_arn, &bkc, key, &enc, err);
    if (st == KS_OK && ks_item_set_b(out, KS_ATTR_ENC, enc.data, enc.len) != 0)
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
done:
    OPENSSL_cleanse(key, sizeof key);
    ks_bytes_free(&enc);
    ks_ec_free(&bkc);
    return st;
}

ks_status ks_mut_hv2_rotate(const struct ks_mutation_strategy *s, const struct ks_ec *vbkc,
                            const struct ks_ec *abkc, const char *arn, struct ks_bytes *venc,
                            struct ks_bytes *aenc, struct ks_error *err)
{
    const struct ks_kms_relationship *rel = s->encrypt;
    unsigned char key[KEY_LEN];
    struct ks_ec kctx;
    ks_status st;

    ks_ec_init(&kctx);
    if ((st = ks_hv2_kms_context(abkc, &kctx, err)) != KS_OK)
        goto out;
    /* New material under the terminal ARN and context (the encrypt relationship), then the same
     * material in the new version and the new ACTIVE (issue 11 item 2; hv2.md section 6 bug). */
    ks_mut_gate_enter(rel);
    st = ks_hv2_generate(rel, arn, &kctx, key, err);
    ks_mut_gate_leave(rel);
    st = ks_mut_side_error(st, 1, "GenerateDataKey", arn, err);
    if (st == KS_OK)
        st = wrap_bkc(rel, arn, vbkc, key, venc, err);
    if (st == KS_OK)
        st = wrap_bkc(rel, arn, abkc, key, aenc, err);
out:
    OPENSSL_cleanse(key, sizeof key);
    ks_ec_free(&kctx);
    return st;
}
