/*
 * suites.h - the ESDK algorithm suites a keyring wrap or unwrap may name, with the length of
 * their data keys (docs/reference/hierarchical-keyring.md section 7). Every ESDK suite uses
 * direct key wrapping, so the suite only decides N, the data key length, and with it the EDK
 * ciphertext length (60 + N). The table is static: thread-safe.
 */
#ifndef KS_KEYRING_SUITES_H
#define KS_KEYRING_SUITES_H

#include <stddef.h>
#include <stdint.h>

struct ks_keyring_suite {
    uint16_t id;         /* 0x0478 */
    const char *id_text; /* "0x0478", as the REST API writes it */
    const char *name;    /* the MPL's name, e.g. ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY */
    size_t data_key_len; /* N: 16, 24 or 32 */
};

/* The suite used when a request names none: 0x0478 (committing, no signature). */
const struct ks_keyring_suite *ks_keyring_suite_default(void);

/* The suite with this id, or NULL when it is not an ESDK suite. */
const struct ks_keyring_suite *ks_keyring_suite_find(uint16_t id);

/*
 * Parses the REST form: "0x" followed by exactly four hex digits (either case), len bytes.
 * NULL when the text is malformed or names no ESDK suite.
 */
const struct ks_keyring_suite *ks_keyring_suite_parse(const char *text, size_t len);

/* The table itself and its length (tests and docs iterate over it). */
const struct ks_keyring_suite *ks_keyring_suites(size_t *count);

#endif
