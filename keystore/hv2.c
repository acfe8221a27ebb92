/*
 * hv2.c - the HV-2 digest, strict model and plaintext layout (docs/reference/hv2.md sections 3,
 * 4, 5 and 7).
 */
#include "keystore/hv2.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* docs/reference/hv2.md section 4: the names the store itself writes. */
static const char *const reserved_names[] = {
    "branch-key-id", "type",    "create-time", "hierarchy-version",
    "tablename",     "kms-arn", "enc",         "version",
};

int ks_hv2_is_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof reserved_names / sizeof reserved_names[0]; i++)
        if (strcmp(name, reserved_names[i]) == 0)
            return 1;
    return 0;
}

/* The u16 limits of section 3, checked first so the 400 names the entry. */
static ks_status check_lengths(const struct ks_ec *bkc, struct ks_error *err)
{
    if (bkc->count > 0xffff)
        return ks_error_set(err, KS_E_INVALID, "encryption context has too many entries");
    for (size_t i = 0; i < bkc->count; i++) {
        if (strlen(bkc->entries[i].key) > 0xffff)
            return ks_error_set(err, KS_E_INVALID, "encryption context key %zu is over 65535 bytes",
                                i);
        if (strlen(bkc->entries[i].value) > 0xffff)
            return ks_error_set(err, KS_E_INVALID,
                                "encryption context value %zu is over 65535 bytes", i);
    }
    return KS_OK;
}

ks_status ks_hv2_digest(const struct ks_ec *bkc, unsigned char out[KS_HV2_DIGEST_LEN],
                        struct ks_error *err)
{
    ks_status st = check_lengths(bkc, err);
    if (st != KS_OK)
        return st;
    unsigned char *ser = NULL;
    size_t len = 0;
    if (ks_ec_serialize(bkc, &ser, &len) != 0)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    unsigned int dlen = 0;
    int ok = EVP_Digest(ser, len, out, &dlen, EVP_sha384(), NULL);
    free(ser);
    if (!ok || dlen != KS_HV2_DIGEST_LEN)
        return ks_error_set(err, KS_E_INTERNAL, "SHA-384 failed");
    return KS_OK;
}

ks_status ks_hv2_kms_context(const struct ks_ec *bkc, struct ks_ec *kms_ec, struct ks_error *err)
{
    size_t plen = strlen(KS_HV2_EC_PREFIX);
    ks_ec_free(kms_ec);
    ks_ec_init(kms_ec);
    for (size_t i = 0; i < bkc->count; i++) {
        const char *key = bkc->entries[i].key;
        if (ks_hv2_is_reserved(key))
            continue;
        if (strncmp(key, KS_HV2_EC_PREFIX, plen) != 0) {
            ks_ec_free(kms_ec);
            return ks_error_set(err, KS_E_CORRUPT,
                                "invalid encryption context: un-modeled attribute in an HV-2 "
                                "branch key item");
        }
        /* The map is keyed by prefixed names, so stripped names are unique by construction;
         * the check stays for a caller passing a hand-built context. */
        if (ks_ec_get(kms_ec, key + plen) != NULL) {
            ks_ec_free(kms_ec);
            return ks_error_set(err, KS_E_CORRUPT, "invalid encryption context: duplicate key");
        }
        if (ks_ec_set(kms_ec, key + plen, bkc->entries[i].value) != 0) {
            ks_ec_free(kms_ec);
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
        }
    }
    return KS_OK;
}

ks_status ks_hv2_pack(const struct ks_ec *bkc, const unsigned char key[KS_HV2_KEY_LEN],
                      unsigned char out[KS_HV2_PLAINTEXT_LEN], struct ks_error *err)
{
    ks_status st = ks_hv2_digest(bkc, out, err);
    if (st != KS_OK) {
        OPENSSL_cleanse(out, KS_HV2_PLAINTEXT_LEN);
        return st;
    }
    memcpy(out + KS_HV2_DIGEST_LEN, key, KS_HV2_KEY_LEN);
    return KS_OK;
}

ks_status ks_hv2_unpack(const struct ks_ec *bkc, const unsigned char *plain, size_t len,
                        unsigned char key_out[KS_HV2_KEY_LEN], struct ks_error *err)
{
    if (len != KS_HV2_PLAINTEXT_LEN)
        return ks_error_set(err, KS_E_CORRUPT,
                            "KMS Decrypt plaintext is not 80 bytes: the HV-2 branch key item may "
                            "have been tampered with");
    unsigned char digest[KS_HV2_DIGEST_LEN];
    ks_status st = ks_hv2_digest(bkc, digest, err);
    if (st != KS_OK)
        return st;
    /* Constant time, unlike the MPL's plain comparison (docs/reference/hv2.md section 10). */
    if (CRYPTO_memcmp(digest, plain, KS_HV2_DIGEST_LEN) != 0)
        return ks_error_set(err, KS_E_CORRUPT,
                            "HV-2 branch key item failed the digest check: tampered, or a wrong "
                            "logical key store name");
    memcpy(key_out, plain + KS_HV2_DIGEST_LEN, KS_HV2_KEY_LEN);
    return KS_OK;
}
