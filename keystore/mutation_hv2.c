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
#include <openssl/evp.h>

#include "common/secret.h"
#include "keystore/mutation_internal.h"

#define KEY_LEN 32
#define DIGEST_LEN 48
#define PT_LEN (DIGEST_LEN + KEY_LEN)
#define ENC_MAX 6144

/* --- branch key context digest (hv2.md section 3) ------------------------------------------
 * The core's serialization module (issue 11 item 4) replaces these two functions on merge. */

static int by_key_bytes(const void *x, const void *y)
{
    /* strcmp compares as unsigned char: the unsigned UTF-8 byte order of hv2.md section 3. */
    return strcmp((*(const struct ks_ec_entry *const *)x)->key,
                  (*(const struct ks_ec_entry *const *)y)->key);
}

static int put_u16(EVP_MD_CTX *md, size_t n)
{
    unsigned char b[2] = {(unsigned char)(n >> 8), (unsigned char)n};
    return n < 65536 && EVP_DigestUpdate(md, b, 2) == 1;
}

/* SHA-384 of the canonical serialization of bkc: u16 count, pairs sorted by key bytes, each
 * u16 length + bytes. 0, or -1 (a length over 65535, OOM). */
static int bkc_digest(const struct ks_ec *bkc, unsigned char out[DIGEST_LEN])
{
    const struct ks_ec_entry **sorted = malloc((bkc->count + 1) * sizeof *sorted);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;
    int ok = sorted && md && EVP_DigestInit_ex(md, EVP_sha384(), NULL) == 1;
    size_t i;

    for (i = 0; ok && i < bkc->count; i++)
        sorted[i] = &bkc->entries[i];
    if (ok)
        qsort(sorted, bkc->count, sizeof *sorted, by_key_bytes);
    if (ok && bkc->count > 0)
        ok = put_u16(md, bkc->count);
    for (i = 0; ok && i < bkc->count; i++) {
        size_t kl = strlen(sorted[i]->key), vl = strlen(sorted[i]->value);
        ok = put_u16(md, kl) && EVP_DigestUpdate(md, sorted[i]->key, kl) == 1 && put_u16(md, vl) &&
             EVP_DigestUpdate(md, sorted[i]->value, vl) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(md, out, &len) == 1 && len == DIGEST_LEN;
    EVP_MD_CTX_free(md);
    free(sorted);
    return ok ? 0 : -1;
}

/* --- the strict model and the KMS context (hv2.md sections 4 and 7) ----------------------- */

static int restricted(const char *k)
{
    static const char *const names[] = {KS_ATTR_BRANCH_KEY_ID,
                                        KS_ATTR_TYPE,
                                        KS_ATTR_CREATE_TIME,
                                        KS_ATTR_HIERARCHY_VERSION,
                                        KS_ATTR_TABLENAME,
                                        KS_ATTR_KMS_ARN,
                                        KS_ATTR_ENC,
                                        KS_ATTR_VERSION,
                                        NULL};
    size_t i;
    for (i = 0; names[i]; i++)
        if (strcmp(names[i], k) == 0)
            return 1;
    return 0;
}

/* ecToKMS: the prefixed custom pairs, unprefixed. Any other non-reserved name breaks the strict
 * model (refused before any KMS call); unprefixed keys stay unique because the prefix is
 * common to all of them. */
static ks_status kms_context(const struct ks_ec *bkc, struct ks_ec *out, struct ks_error *err)
{
    size_t i, p = strlen(KS_EC_PREFIX);

    for (i = 0; i < bkc->count; i++) {
        const char *k = bkc->entries[i].key;
        if (restricted(k))
            continue;
        if (strncmp(k, KS_EC_PREFIX, p) != 0)
            return ks_error_set(err, KS_E_CORRUPT,
                                "hierarchy version 2 branch key context has the un-modeled "
                                "attribute %s (Invalid encryption context found.)",
                                k);
        if (ks_ec_set(out, k + p, bkc->entries[i].value) != 0)
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    return KS_OK;
}

/* --- KMS calls ------------------------------------------------------------------------------ */

static struct ks_kms_call call_of(const struct ks_kms_relationship *rel)
{
    struct ks_kms_call c = {rel->grant_tokens, rel->n_grant_tokens};
    return c;
}

/* MutationFromException / MutationToException for a KMS refusal (as mutation_kms.c). */
static ks_status side(ks_status st, int terminal_side, const char *op, const char *arn,
                      struct ks_error *err)
{
    char msg[KS_ERROR_MESSAGE_MAX];
    if (st != KS_E_KMS)
        return st;
    memcpy(msg, err->message, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    return ks_error_set(err, terminal_side ? KS_E_MUTATION_TO : KS_E_MUTATION_FROM,
                        "%s refused on the %s side (%s): %s", op,
                        terminal_side ? "terminal" : "original", arn, msg);
}

ks_status ks_mut_hv2_unwrap(const struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                            const struct ks_item *item, int terminal_side,
                            unsigned char key[KEY_LEN], struct ks_error *err)
{
    const char *arn = ks_item_get_s(item, KS_ATTR_KMS_ARN);
    const struct ks_attr *enc = ks_item_get(item, KS_ATTR_ENC);
    int hv2 = ks_mut_item_hv(item) == 2;
    struct ks_kms_call call = call_of(rel);
    struct ks_kms_result r;
    struct ks_ec bkc, kctx;
    unsigned char digest[DIGEST_LEN];
    ks_status st;

    if (!arn || !enc || enc->type != KS_ATTR_B || enc->len < 1)
        return ks_error_set(err, KS_E_CORRUPT, "item without kms-arn or enc");
    ks_ec_init(&bkc);
    ks_ec_init(&kctx);
    ks_kms_result_init(&r);
    st = ks_mut_item_ec(ks, item, &bkc, err);
    if (st == KS_OK && hv2)
        st = kms_context(&bkc, &kctx, err);
    if (st != KS_OK)
        goto out;
    ks_mut_gate_enter(rel);
    st = rel->kms->ops->decrypt(rel->kms, &call, arn, enc->value, enc->len, hv2 ? &kctx : &bkc, &r,
                                err);
    ks_mut_gate_leave(rel);
    st = ks_mut_counted(rel, KS_KMS_OP_DECRYPT, st);
    if (st == KS_OK && (!r.key_id || strcmp(r.key_id, arn) != 0 || !r.plaintext ||
                        r.plaintext_len != (hv2 ? PT_LEN : KEY_LEN)))
        st = ks_error_set(err, KS_E_KMS, "Invalid response from KMS Decrypt");
    st = side(st, terminal_side, "Decrypt", arn, err);
    if (st == KS_OK && hv2 && bkc_digest(&bkc, digest) != 0)
        st = ks_error_set(err, KS_E_INVALID, "branch key context too long to digest");
    /* Constant time (hv2.md section 10): the digest guards the whole context. */
    if (st == KS_OK && hv2 && CRYPTO_memcmp(digest, r.plaintext, DIGEST_LEN) != 0)
        st = ks_error_set(err, KS_E_CORRUPT,
                          "This branch key item has failed the authentication check (digest "
                          "mismatch)");
    if (st == KS_OK)
        memcpy(key, r.plaintext + (hv2 ? DIGEST_LEN : 0), KEY_LEN);
out:
    ks_kms_result_free(&r);
    ks_ec_free(&bkc);
    ks_ec_free(&kctx);
    return st;
}

/* enc for the HV-2 branch key context bkc: Encrypt(digest(bkc) || key) under arn and the
 * unprefixed context, through rel (the encrypt side). */
static ks_status wrap_bkc(const struct ks_kms_relationship *rel, const char *arn,
                          const struct ks_ec *bkc, const unsigned char key[KEY_LEN],
                          struct ks_bytes *out, struct ks_error *err)
{
    struct ks_kms_call call = call_of(rel);
    struct ks_kms_result r;
    unsigned char pt[PT_LEN];
    struct ks_ec kctx;
    ks_status st;

    ks_ec_init(&kctx);
    ks_kms_result_init(&r);
    if ((st = kms_context(bkc, &kctx, err)) != KS_OK)
        goto out;
    if (bkc_digest(bkc, pt) != 0) {
        st = ks_error_set(err, KS_E_INVALID, "branch key context too long to digest");
        goto out;
    }
    memcpy(pt + DIGEST_LEN, key, KEY_LEN);
    ks_mut_gate_enter(rel);
    st = rel->kms->ops->encrypt(rel->kms, &call, arn, pt, PT_LEN, &kctx, &r, err);
    ks_mut_gate_leave(rel);
    st = ks_mut_counted(rel, KS_KMS_OP_ENCRYPT, st);
    if (st == KS_OK && (!r.key_id || strcmp(r.key_id, arn) != 0 || r.ciphertext.len < 1 ||
                        r.ciphertext.len > ENC_MAX))
        st = ks_error_set(err, KS_E_KMS, "Invalid response from KMS Encrypt");
    st = side(st, 1, "Encrypt", arn, err);
    if (st == KS_OK) {
        *out = r.ciphertext;
        r.ciphertext.data = NULL;
        r.ciphertext.len = 0;
    }
out:
    OPENSSL_cleanse(pt, sizeof pt);
    ks_kms_result_free(&r);
    ks_ec_free(&kctx);
    return st;
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
        st = kms_context(&bkc, &probe, err);
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
    struct ks_kms_call call = call_of(rel);
    struct ks_kms_result r;
    struct ks_ec kctx;
    ks_status st;

    ks_ec_init(&kctx);
    ks_kms_result_init(&r);
    if ((st = kms_context(abkc, &kctx, err)) != KS_OK)
        goto out;
    /* New material under the terminal ARN and context (the encrypt relationship), then the same
     * material in the new version and the new ACTIVE (issue 11 item 2; hv2.md section 6 bug). */
    ks_mut_gate_enter(rel);
    st = rel->kms->ops->generate_data_key(rel->kms, &call, arn, KEY_LEN, &kctx, &r, err);
    ks_mut_gate_leave(rel);
    if (st == KS_OK &&
        (!r.key_id || strcmp(r.key_id, arn) != 0 || !r.plaintext || r.plaintext_len != KEY_LEN))
        st = ks_error_set(err, KS_E_KMS, "Invalid response from KMS GenerateDataKey");
    st = side(st, 1, "GenerateDataKey", arn, err);
    if (st == KS_OK)
        st = wrap_bkc(rel, arn, vbkc, r.plaintext, venc, err);
    if (st == KS_OK)
        st = wrap_bkc(rel, arn, abkc, r.plaintext, aenc, err);
out:
    ks_kms_result_free(&r); /* wipes the plaintext key */
    ks_ec_free(&kctx);
    return st;
}
