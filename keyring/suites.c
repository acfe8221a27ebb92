/* suites.c - the ESDK suite table (docs/reference/hierarchical-keyring.md section 7). */
#include "keyring/suites.h"

#include "common/util.h"

/* Committing and non-committing, signing and non-signing suites alike: the keyring only wraps
 * the N-byte data key; commitment and signatures are the message layer's business. */
static const struct ks_keyring_suite suites[] = {
    {0x0014, "0x0014", "ALG_AES_128_GCM_IV12_TAG16_NO_KDF", 16},
    {0x0046, "0x0046", "ALG_AES_192_GCM_IV12_TAG16_NO_KDF", 24},
    {0x0078, "0x0078", "ALG_AES_256_GCM_IV12_TAG16_NO_KDF", 32},
    {0x0114, "0x0114", "ALG_AES_128_GCM_IV12_TAG16_HKDF_SHA256", 16},
    {0x0146, "0x0146", "ALG_AES_192_GCM_IV12_TAG16_HKDF_SHA256", 24},
    {0x0178, "0x0178", "ALG_AES_256_GCM_IV12_TAG16_HKDF_SHA256", 32},
    {0x0214, "0x0214", "ALG_AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256", 16},
    {0x0346, "0x0346", "ALG_AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384", 24},
    {0x0378, "0x0378", "ALG_AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384", 32},
    {0x0478, "0x0478", "ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY", 32},
    {0x0578, "0x0578", "ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384", 32},
};

#define N_SUITES (sizeof suites / sizeof suites[0])

const struct ks_keyring_suite *ks_keyring_suites(size_t *count)
{
    *count = N_SUITES;
    return suites;
}

const struct ks_keyring_suite *ks_keyring_suite_default(void)
{
    return ks_keyring_suite_find(0x0478);
}

const struct ks_keyring_suite *ks_keyring_suite_find(uint16_t id)
{
    size_t i;
    for (i = 0; i < N_SUITES; i++)
        if (suites[i].id == id)
            return &suites[i];
    return NULL;
}

const struct ks_keyring_suite *ks_keyring_suite_parse(const char *text, size_t len)
{
    unsigned value = 0;
    size_t i;

    if (len != 6 || text[0] != '0' || (text[1] != 'x' && text[1] != 'X'))
        return NULL;
    for (i = 2; i < 6; i++) {
        int d = ks_hex_digit(text[i]);
        if (d < 0)
            return NULL;
        value = value * 16 + (unsigned)d;
    }
    return ks_keyring_suite_find((uint16_t)value);
}
