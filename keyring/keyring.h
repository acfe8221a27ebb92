/*
 * keyring.h - keyring as a service (docs/reference/hierarchical-keyring.md): wraps and unwraps
 * data keys with branch keys read through the keystore and its shared cache, producing and
 * accepting EDKs byte for byte those of AWS's hierarchical keyring. The branch key never leaves
 * this module: callers get EDKs and data keys only.
 *
 * Two levels: ks_keyring_wrap_raw / ks_keyring_unwrap_raw do the cryptography on a branch key
 * given in memory (with the salt and IV given, for known answers), and ks_keyring_wrap /
 * ks_keyring_unwrap read the key from a keystore (OnEncrypt / OnDecrypt, sections 5 and 6).
 * Data keys are returned in buffers the caller wipes through the matching *_free; derived keys
 * are wiped before a function returns. All functions are thread-safe for distinct arguments.
 */
#ifndef KS_KEYRING_KEYRING_H
#define KS_KEYRING_KEYRING_H

#include <stddef.h>

#include "common/ec.h"
#include "common/status.h"
#include "keyring/edk.h"
#include "keyring/suites.h"
#include "keystore/keystore.h"

/* Outcomes counted for /metrics (wraps and unwraps by outcome). */
enum ks_keyring_outcome {
    KS_KEYRING_OUTCOME_OK = 0,
    KS_KEYRING_OUTCOME_INVALID,           /* refused request (4xx other than below) */
    KS_KEYRING_OUTCOME_UNABLE_TO_DECRYPT, /* unwrap: every EDK failed on itself (400) */
    KS_KEYRING_OUTCOME_DEPENDENCY,        /* KMS or storage down, slow, throttled (5xx, 429) */
    KS_KEYRING_OUTCOME_COUNT
};
const char *ks_keyring_outcome_name(enum ks_keyring_outcome outcome);
/* The outcome a status stands for (KS_OK -> OK, KS_E_UNABLE_TO_DECRYPT -> ..., 5xx/429 ->
 * DEPENDENCY, other 4xx -> INVALID). */
enum ks_keyring_outcome ks_keyring_outcome_of(ks_status st);

struct ks_keyring_counters {
    _Atomic unsigned long long wraps[KS_KEYRING_OUTCOME_COUNT];
    _Atomic unsigned long long unwraps[KS_KEYRING_OUTCOME_COUNT]; /* one per unwrap request,
                                                                      batch items included */
};

/* --- the cryptography on a key in memory ------------------------------------------------- */

struct ks_keyring_wrap_input {
    const unsigned char *branch_key; /* 32 bytes */
    size_t branch_key_len;
    const char *branch_key_id; /* becomes the provider info and enters the AAD */
    size_t branch_key_id_len;
    const char *version; /* lowercase UUID text of the branch key version */
    const struct ks_ec *ec;
    const unsigned char *data_key;
    size_t data_key_len;
    const unsigned char *salt; /* 16 bytes; fresh from the CSPRNG in production */
    const unsigned char *iv;   /* 12 bytes; fresh from the CSPRNG in production */
};

/*
 * Writes the EDK ciphertext (60 + data_key_len bytes) into ciphertext. KS_E_INVALID for a bad
 * version or an encryption context over the limits; KS_E_INTERNAL for a branch key that is not
 * 32 bytes or when OpenSSL fails (ciphertext wiped then).
 */
ks_status ks_keyring_wrap_raw(const struct ks_keyring_wrap_input *in, unsigned char *ciphertext,
                              struct ks_error *err);

/*
 * Decrypts one EDK ciphertext made for data keys of data_key_len bytes under branch_key, with
 * the AAD built from branch_key_id, the version bytes inside the ciphertext and ec. On success
 * data_key (data_key_len bytes) holds the secret. KS_E_UNABLE_TO_DECRYPT when the length is
 * wrong or the tag does not verify (data_key wiped); KS_E_INVALID for an ec over the limits.
 */
ks_status ks_keyring_unwrap_raw(const unsigned char *branch_key, size_t branch_key_len,
                                const char *branch_key_id, size_t branch_key_id_len,
                                const struct ks_ec *ec, const unsigned char *ciphertext,
                                size_t ciphertext_len, size_t data_key_len, unsigned char *data_key,
                                struct ks_error *err);

/* --- over a keystore ----------------------------------------------------------------------- */

/* Where branch keys come from: the key store, the KMS relationship and the tenant's cache
 * partition (all borrowed). */
struct ks_keyring_source {
    struct ks_keystore *keystore;
    const struct ks_kms_relationship *relationship;
    const struct ks_reader *reader;
};

struct ks_keyring_wrap_result {
    char *version;             /* the ACTIVE version used (malloc'd) */
    unsigned char *data_key;   /* secret, wiped by ks_keyring_wrap_result_free */
    size_t data_key_len;       /* the suite's N */
    int generated;             /* 1 when keystored made the data key */
    unsigned char *ciphertext; /* the EDK ciphertext, 60 + N bytes */
    size_t ciphertext_len;
};
void ks_keyring_wrap_result_free(struct ks_keyring_wrap_result *r);

/*
 * OnEncrypt (section 5): reads the ACTIVE version of branch_key_id (through the cache), uses
 * data_key (must be suite->data_key_len bytes: KS_E_INVALID otherwise) or makes one from the
 * CSPRNG when it is NULL, draws a fresh salt and IV, and wraps. out is filled on success only.
 */
ks_status ks_keyring_wrap(const struct ks_keyring_source *src, const char *branch_key_id,
                          const struct ks_ec *ec, const struct ks_keyring_suite *suite,
                          const unsigned char *data_key, size_t data_key_len,
                          struct ks_keyring_wrap_result *out, struct ks_error *err);

/* One EDK as given to unwrap (borrowed views; provider info is raw bytes). */
struct ks_keyring_edk {
    const char *provider_id;
    size_t provider_id_len;
    const unsigned char *provider_info;
    size_t provider_info_len;
    const unsigned char *ciphertext;
    size_t ciphertext_len;
};

/*
 * A session holds the branch key versions read during one request or one batch, so that each
 * distinct (branch key id, version) is read once (issue "unwrap-batch"), and keeps their cache
 * references until it is freed. Failed reads are remembered too. Not thread-safe per instance.
 */
struct ks_keyring_session;
struct ks_keyring_session *ks_keyring_session_new(const struct ks_keyring_source *src);
void ks_keyring_session_free(struct ks_keyring_session *s);
/* Key store reads the session made (distinct versions asked for). */
size_t ks_keyring_session_reads(const struct ks_keyring_session *s);

struct ks_keyring_unwrap_request {
    const struct ks_keyring_edk *edks;
    size_t n_edks;
    const struct ks_ec *ec;
    const struct ks_keyring_suite *suite;
    const char *branch_key_id; /* optional filter (NULL: any id) */
    size_t branch_key_id_len;
};

struct ks_keyring_unwrap_result {
    char *branch_key_id; /* malloc'd */
    char version[KS_KEYRING_VERSION_TEXT_LEN + 1];
    unsigned char *data_key; /* secret, wiped by ks_keyring_unwrap_result_free */
    size_t data_key_len;
    size_t edk_index; /* index into the request's edks */
};
void ks_keyring_unwrap_result_free(struct ks_keyring_unwrap_result *r);

/*
 * OnDecrypt (section 6): skips EDKs of other providers (and of other ids when a filter is
 * given), checks each kept EDK's length and provider info before any read, reads the version
 * named inside the EDK, tries in order; the first success wins. When none succeeds: a
 * dependency failure of any attempt (KS_E_KMS, KS_E_STORAGE, KS_E_UNAVAILABLE, KS_E_THROTTLED,
 * ...) is returned as is; otherwise KS_E_UNABLE_TO_DECRYPT with why each EDK failed (never key
 * bytes).
 */
ks_status ks_keyring_unwrap(struct ks_keyring_session *s,
                            const struct ks_keyring_unwrap_request *req,
                            struct ks_keyring_unwrap_result *out, struct ks_error *err);

#endif
