/*
 * kms.h - the KMS interface: AWS KMS's semantics for the five operations keystored uses
 * (docs/reference/aws-apis.md section 2): the encryption context is bound as AAD, the key ARN is
 * returned as KeyId, and a wrong context or key is refused. A table of function pointers with a
 * version field; methods are only ever appended.
 *
 * Every method is thread-safe. Inputs are borrowed. Results go into a caller-provided
 * struct ks_kms_result, which the caller releases with ks_kms_result_free (plaintext wiped).
 * KMS refusals are KS_E_KMS with the message "KMS <error name>" ("KMS InvalidCiphertextException")
 * and AWS's or the local KMS's explanation in err->detail (log only: AWS text can name accounts
 * and roles); throttling KS_E_THROTTLED, unreachable KS_E_UNAVAILABLE.
 */
#ifndef KS_KMS_KMS_H
#define KS_KMS_KMS_H

#include <stddef.h>

#include "common/bytes.h"
#include "common/ec.h"
#include "common/status.h"

#define KS_KMS_OPS_VERSION 1

struct ks_kms;

struct ks_kms_result {
    struct ks_bytes ciphertext; /* CiphertextBlob */
    unsigned char *plaintext;   /* Plaintext (secret; wiped by ks_kms_result_free) */
    size_t plaintext_len;
    char *key_id;        /* KeyId: the ARN of the key used */
    char *source_key_id; /* ReEncrypt: SourceKeyId */
};

/* Grant tokens are passed through to AWS KMS (ignored by the local KMS). */
struct ks_kms_call {
    const char *const *grant_tokens;
    size_t n_grant_tokens;
};

struct ks_kms_ops {
    int version;
    const char *name;

    ks_status (*generate_data_key_without_plaintext)(struct ks_kms *k, const struct ks_kms_call *c,
                                                     const char *key_id, size_t number_of_bytes,
                                                     const struct ks_ec *ec,
                                                     struct ks_kms_result *out,
                                                     struct ks_error *err);

    ks_status (*generate_data_key)(struct ks_kms *k, const struct ks_kms_call *c,
                                   const char *key_id, size_t number_of_bytes,
                                   const struct ks_ec *ec, struct ks_kms_result *out,
                                   struct ks_error *err);

    ks_status (*encrypt)(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                         const unsigned char *plaintext, size_t plaintext_len,
                         const struct ks_ec *ec, struct ks_kms_result *out, struct ks_error *err);

    /* key_id may be NULL (symmetric ciphertexts name their key); when given it must match the
     * ciphertext's key, otherwise IncorrectKeyException. */
    ks_status (*decrypt)(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                         const unsigned char *ciphertext, size_t ciphertext_len,
                         const struct ks_ec *ec, struct ks_kms_result *out, struct ks_error *err);

    /* source_key_id may be NULL, as in Decrypt. */
    ks_status (*re_encrypt)(struct ks_kms *k, const struct ks_kms_call *c,
                            const unsigned char *ciphertext, size_t ciphertext_len,
                            const struct ks_ec *source_ec, const char *source_key_id,
                            const char *destination_key_id, const struct ks_ec *destination_ec,
                            struct ks_kms_result *out, struct ks_error *err);

    /* Readiness: KMS is reachable. */
    ks_status (*ping)(struct ks_kms *k, struct ks_error *err);

    void (*destroy)(struct ks_kms *k);
};

/* Every backend's struct starts with this. */
struct ks_kms {
    const struct ks_kms_ops *ops;
};

void ks_kms_result_init(struct ks_kms_result *r);
void ks_kms_result_free(struct ks_kms_result *r);

/* Convenience: k->ops->destroy(k), NULL-safe. */
void ks_kms_destroy(struct ks_kms *k);

/* May ks_kms_local_open create master keys? */
enum ks_kms_local_create {
    KS_KMS_LOCAL_MAY_CREATE = 0, /* create the key file, and ensured keys, that are missing */
    KS_KMS_LOCAL_NO_CREATE       /* never: the caller holds data that only existing keys decrypt */
};

/*
 * Local KMS (kms/local_kms.c), the embedded default: AES-256-GCM under master keys kept in
 * key_file. With KS_KMS_LOCAL_MAY_CREATE a missing key_file is created (mode 0600, parent
 * directory must exist) with one new key, and each ARN in ensure_arns that is not in the file is
 * generated and added (the file is rewritten atomically, 0600). With KS_KMS_LOCAL_NO_CREATE
 * either case is KS_E_NOT_FOUND, saying which file or key is missing, and nothing is written: a
 * new master key could not decrypt what the old one encrypted. Key ARNs are
 * arn:aws:kms:local:000000000000:key/<uuid>; an ensured ARN that is not a local-KMS ARN is
 * KS_E_CONFIG. A corrupt or unreadable key file, or one with group/other permissions, is
 * KS_E_CONFIG naming the file and line. Caller owns *out.
 */
ks_status ks_kms_local_open(const char *key_file, const char *const *ensure_arns,
                            size_t n_ensure_arns, enum ks_kms_local_create create,
                            struct ks_kms **out, struct ks_error *err);

/* The ARN of the key file's first key (the embedded default's key), copied into out. */
ks_status ks_kms_local_default_arn(struct ks_kms *k, char *out, size_t out_size);

/*
 * AWS KMS (kms/aws_kms.c): the five operations over the AWS transport (aws/aws.h) with an
 * awsJson 1.1 client for service "kms" (target TrentService) in cfg->region, at cfg->endpoint
 * when set; up to 3 attempts per call (docs/reference/aws-apis.md section 4). cfg must be an aws
 * relationship; it is read only here (nothing is kept but the key ARN that ping describes).
 * creds is borrowed and must outlive the backend. Caller owns *out (ks_kms_destroy).
 */
struct ks_kms_rel_config;
struct ks_aws_credentials_provider;
struct ks_clock;

ks_status ks_kms_aws_create(const struct ks_kms_rel_config *cfg,
                            struct ks_aws_credentials_provider *creds, struct ks_kms **out,
                            struct ks_error *err);

/* Transport knobs for tests and tuning; 0 / NULL members keep aws/aws.h's defaults (and 3
 * attempts). */
struct ks_kms_aws_tuning {
    long connect_timeout_ms;
    long request_timeout_ms; /* one attempt */
    unsigned max_attempts;
    unsigned base_delay_ms; /* transient retries; throttling waits are the transport's */
    const struct ks_clock *clock;
};

/* ks_kms_aws_create with tuning (may be NULL). */
ks_status ks_kms_aws_create_tuned(const struct ks_kms_rel_config *cfg,
                                  struct ks_aws_credentials_provider *creds,
                                  const struct ks_kms_aws_tuning *tuning, struct ks_kms **out,
                                  struct ks_error *err);

#endif
