/*
 * inventory.h - listing the branch keys of a key store and the versions of a key (issue 14;
 * docs/reference/branch-key-store.md section 10), with opaque page tokens that any instance
 * accepts. No key material is read into memory in the clear here: only the items' plain
 * attributes. Thread-safe.
 */
#ifndef KS_KEYSTORE_INVENTORY_H
#define KS_KEYSTORE_INVENTORY_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "keystore/create_time.h"
#include "keystore/keystore.h"

#define KS_INVENTORY_LIMIT_DEFAULT 100
#define KS_INVENTORY_LIMIT_MAX 1000

/* One key of a page; strings owned. */
struct ks_inventory_key {
    char *branch_key_id;
    char *active_version;    /* the ACTIVE's `version` without "branch:version:" */
    char *create_time;       /* as stored */
    char *hierarchy_version; /* the N value as stored ("1", "2") */
    char *kms_arn;
};

struct ks_inventory_keys {
    struct ks_inventory_key *keys;
    size_t count;
    char *next_token; /* NULL on the last page */
};

struct ks_inventory_version {
    char *version;     /* without the prefix */
    char *create_time; /* as stored */
    int active;
};

struct ks_inventory_versions {
    struct ks_inventory_version *versions;
    size_t count;
    char *next_token;
};

void ks_inventory_keys_free(struct ks_inventory_keys *k);
void ks_inventory_versions_free(struct ks_inventory_versions *v);

/*
 * ListKeys: one storage page (storage.h list_active) of at most `limit` (1..1000) keys after
 * `token` (NULL: first page). key_store_name is the configured {ks}: tokens carry it, and a
 * token of another key store, another list kind or that does not decode is KS_E_INVALID
 * ("nextToken: ..."). out is initialized by the call.
 */
ks_status ks_inventory_list_keys(struct ks_keystore *ks, const char *key_store_name, size_t limit,
                                 const char *token, struct ks_inventory_keys *out,
                                 struct ks_error *err);

/*
 * ListVersions: reads every version of the key (QueryForVersions pages), sorts them newest first
 * (create-time descending, then version ascending; an unparseable create-time last) and returns
 * the `limit` after the token's (create-time, version). Unknown key: KS_E_NOT_FOUND. The token
 * also carries the branch key id.
 */
ks_status ks_inventory_list_versions(struct ks_keystore *ks, const char *key_store_name,
                                     const char *branch_key_id, size_t limit, const char *token,
                                     struct ks_inventory_versions *out, struct ks_error *err);

#endif
