/*
 * hv2.h - hierarchy version 2 (docs/reference/hv2.md): the branch key context digest, the strict
 * data model check and the KMS plaintext layout. Pure functions, no KMS or storage; thread-safe.
 *
 * The branch key context (section 2) is the HV-1 KMS encryption context: every item attribute
 * but `enc`, numbers as strings, plus `tablename` = the configured logical key store name, custom
 * keys with their `aws-crypto-ec:` prefix. Its digest (section 3) is SHA-384 over the canonical
 * serialization of common/ec.h. The KMS plaintext is digest (48) || key (32) (section 5).
 */
#ifndef KS_KEYSTORE_HV2_H
#define KS_KEYSTORE_HV2_H

#include <stddef.h>

#include "common/ec.h"
#include "common/status.h"

#define KS_HV2_DIGEST_LEN 48
#define KS_HV2_KEY_LEN 32
#define KS_HV2_PLAINTEXT_LEN (KS_HV2_DIGEST_LEN + KS_HV2_KEY_LEN)
#define KS_HV2_EC_PREFIX "aws-crypto-ec:"

/*
 * SHA-384 of the canonical serialization of bkc into out. KS_E_INVALID (400, names the entry)
 * when a key, a value or the count does not fit in u16 (section 3); KS_E_INTERNAL on OOM.
 */
ks_status ks_hv2_digest(const struct ks_ec *bkc, unsigned char out[KS_HV2_DIGEST_LEN],
                        struct ks_error *err);

/* 1 when name is one of the reserved branch key context names (section 4). */
int ks_hv2_is_reserved(const char *name);

/*
 * The strict data model (section 7 step 3): every key outside the reserved set starts with
 * `aws-crypto-ec:`, and stripping the prefix yields unique keys. On success kms_ec (initialized,
 * replaced) gets the KMS encryption context: those custom keys without the prefix (section 4).
 * On violation KS_E_CORRUPT (BranchKeyCiphertextException) naming the offending attribute.
 */
ks_status ks_hv2_kms_context(const struct ks_ec *bkc, struct ks_ec *kms_ec, struct ks_error *err);

/* out = digest(bkc) || key, the 80-byte KMS plaintext. Wipes out on failure. */
ks_status ks_hv2_pack(const struct ks_ec *bkc, const unsigned char key[KS_HV2_KEY_LEN],
                      unsigned char out[KS_HV2_PLAINTEXT_LEN], struct ks_error *err);

/*
 * Checks a Decrypt result against bkc (section 7 steps 6-7): exactly 80 bytes, and the first 48
 * equal (constant time) to the recomputed digest. On success copies the key into key_out.
 * KS_E_CORRUPT otherwise, with a message that names what failed and carries no bytes.
 */
ks_status ks_hv2_unpack(const struct ks_ec *bkc, const unsigned char *plain, size_t len,
                        unsigned char key_out[KS_HV2_KEY_LEN], struct ks_error *err);

#endif
