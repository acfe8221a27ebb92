/*
 * kdf.c - SP 800-108 counter mode, HMAC-SHA-256 (docs/reference/hierarchical-keyring.md
 * section 2). With L = 256 bits and a 256-bit PRF there is exactly one block, so the loop of
 * the standard is one HMAC over counter || label || 0x00 || context || L.
 */
#include "keyring/kdf.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/secret.h"

static const char label[] = "aws-kms-hierarchy"; /* 17 bytes, no NUL on the wire */

#define LABEL_LEN (sizeof label - 1)
#define PRF_INPUT_LEN (4 + LABEL_LEN + 1 + KS_KEYRING_SALT_LEN + 4) /* 42 bytes */

int ks_keyring_kdf(const unsigned char *branch_key, size_t branch_key_len,
                   const unsigned char salt[KS_KEYRING_SALT_LEN],
                   unsigned char out[KS_KEYRING_DERIVED_KEY_LEN])
{
    /* Counter first (big-endian, starting at 1), L last: 0x00000100 = 256 bits. */
    unsigned char input[PRF_INPUT_LEN] = {0x00, 0x00, 0x00, 0x01};
    unsigned int out_len = 0;
    size_t o = 4;

    if (branch_key_len != KS_KEYRING_BRANCH_KEY_LEN)
        return -1;
    memcpy(input + o, label, LABEL_LEN);
    o += LABEL_LEN;
    input[o++] = 0x00;
    memcpy(input + o, salt, KS_KEYRING_SALT_LEN);
    o += KS_KEYRING_SALT_LEN;
    input[o++] = 0x00;
    input[o++] = 0x00;
    input[o++] = 0x01;
    input[o++] = 0x00;
    if (!HMAC(EVP_sha256(), branch_key, (int)branch_key_len, input, sizeof input, out, &out_len) ||
        out_len != KS_KEYRING_DERIVED_KEY_LEN) {
        ks_secret_wipe(out, KS_KEYRING_DERIVED_KEY_LEN);
        return -1;
    }
    return 0;
}
