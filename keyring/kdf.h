/*
 * kdf.h - the wrapping key derivation of AWS's hierarchical keyring
 * (docs/reference/hierarchical-keyring.md section 2): NIST SP 800-108 KDF in counter mode with
 * HMAC-SHA-256 as PRF, key = the 32-byte branch key, label "aws-kms-hierarchy", context = the
 * EDK's 16-byte salt, L = 256 bits. Pure and thread-safe.
 */
#ifndef KS_KEYRING_KDF_H
#define KS_KEYRING_KDF_H

#include <stddef.h>

#define KS_KEYRING_BRANCH_KEY_LEN 32
#define KS_KEYRING_SALT_LEN 16
#define KS_KEYRING_DERIVED_KEY_LEN 32

/*
 * Writes the 32-byte derived key K into out (a secret: the caller wipes it). Returns 0, or -1
 * when branch_key_len is not 32 (refused, never padded or cut) or OpenSSL fails (out wiped).
 */
int ks_keyring_kdf(const unsigned char *branch_key, size_t branch_key_len,
                   const unsigned char salt[KS_KEYRING_SALT_LEN],
                   unsigned char out[KS_KEYRING_DERIVED_KEY_LEN]);

#endif
