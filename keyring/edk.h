/*
 * edk.h - the bytes of an encrypted data key (EDK) of AWS's hierarchical keyring
 * (docs/reference/hierarchical-keyring.md sections 1, 3 and 4): the ciphertext layout
 * salt[16] || iv[12] || version[16] || encrypted data key[N] || tag[16], the 16-byte form of a
 * branch key version, the AES-GCM additional data and the encryption context limits. Pure and
 * thread-safe.
 */
#ifndef KS_KEYRING_EDK_H
#define KS_KEYRING_EDK_H

#include <stddef.h>

#include "common/ec.h"
#include "common/status.h"
#include "keyring/kdf.h"

#define KS_KEYRING_PROVIDER_ID "aws-kms-hierarchy"
#define KS_KEYRING_PROVIDER_ID_LEN 17
#define KS_KEYRING_IV_LEN 12
#define KS_KEYRING_VERSION_LEN 16
#define KS_KEYRING_TAG_LEN 16
/* Everything but the encrypted data key: salt + iv + version + tag = 60 bytes. */
#define KS_KEYRING_EDK_OVERHEAD                                                                    \
    (KS_KEYRING_SALT_LEN + KS_KEYRING_IV_LEN + KS_KEYRING_VERSION_LEN + KS_KEYRING_TAG_LEN)
#define KS_KEYRING_VERSION_TEXT_LEN 36

/* Views into one EDK ciphertext (borrowed from it). */
struct ks_keyring_edk_fields {
    const unsigned char *salt;      /* 16 bytes: the KDF context */
    const unsigned char *iv;        /* 12 bytes */
    const unsigned char *version;   /* 16 raw UUID bytes */
    const unsigned char *encrypted; /* encrypted_len bytes */
    size_t encrypted_len;           /* N, the suite's data key length */
    const unsigned char *tag;       /* 16 bytes */
};

/* Splits a ciphertext made for data keys of data_key_len bytes. Returns 0, or -1 when len is
 * not exactly 60 + data_key_len (section 6: checked before any key store call). */
int ks_keyring_edk_split(const unsigned char *ciphertext, size_t len, size_t data_key_len,
                         struct ks_keyring_edk_fields *out);

/* "e9ce18a3-edb5-4272-9f86-1cacb7997ff6" -> the 16 bytes e9ce18a3edb5...; the text must be a
 * lowercase hyphenated UUID (the key store's versions are). Returns 0, or -1. */
int ks_keyring_version_encode(const char *version, unsigned char out[KS_KEYRING_VERSION_LEN]);

/* 16 bytes -> lowercase 8-4-4-4-12 text and a NUL (37 bytes). */
void ks_keyring_version_decode(const unsigned char in[KS_KEYRING_VERSION_LEN],
                               char out[KS_KEYRING_VERSION_TEXT_LEN + 1]);

/*
 * The encryption context limits of the canonical serialization (section 4): fewer than 65536
 * pairs, every key and value shorter than 65536 bytes. KS_E_INVALID naming the limit otherwise
 * (refused, never truncated).
 */
ks_status ks_keyring_check_ec(const struct ks_ec *ec, struct ks_error *err);

/*
 * The AES-GCM additional data (section 3): "aws-kms-hierarchy" || id bytes || version[16] ||
 * SER(ec), no lengths, no separators; an empty ec adds nothing. *out is malloc'd (free()); it
 * holds no secret. Returns 0, or -1 when ec is over the limits or on OOM.
 */
int ks_keyring_aad(const char *branch_key_id, size_t id_len,
                   const unsigned char version[KS_KEYRING_VERSION_LEN], const struct ks_ec *ec,
                   unsigned char **out, size_t *len);

#endif
