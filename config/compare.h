/*
 * compare.h - fingerprints of the settings that define a long-lived backend, so that a reload
 * can tell whether a key store or KMS relationship it already has open changed
 * (docs/architecture.md section 4; README "Reload"). A fingerprint is SHA-256 over every such
 * setting, each length-prefixed (secrets included, which is why only their digest is kept).
 * Thread-safe.
 */
#ifndef KS_CONFIG_COMPARE_H
#define KS_CONFIG_COMPARE_H

#include "config/config.h"

#define KS_CONFIG_FINGERPRINT_LEN 32

/* Name, logical key store name, key_store_id and storage (not the default relationship, which
 * a reload may change). KS_E_INTERNAL when the digest cannot be computed. */
ks_status ks_config_key_store_fingerprint(const struct ks_key_store_config *kc,
                                          unsigned char out[KS_CONFIG_FINGERPRINT_LEN]);

/* Every setting of a KMS relationship. */
ks_status ks_config_kms_relationship_fingerprint(const struct ks_kms_rel_config *rc,
                                                 unsigned char out[KS_CONFIG_FINGERPRINT_LEN]);

/*
 * What differs between two configs that a running server cannot apply (listen address, the
 * server: section other than max_body_bytes and max_json_depth, the cache: section): 0 when
 * nothing, else 1 with a message naming the first such setting in why.
 */
int ks_config_live_change_refused(const struct ks_config *running, const struct ks_config *next,
                                  char *why, size_t why_len);

#endif
