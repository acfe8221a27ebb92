/*
 * item.h - one stored item, attribute for attribute as the MPL writes it: each attribute has a
 * name, a DynamoDB type (S, N or B) and a value (docs/reference/branch-key-store.md section 2).
 * Both backends persist exactly these attributes; sqlite.c keeps them in DynamoDB's
 * AttributeValue JSON so that the two backends hold the very same items.
 *
 * Not thread-safe per instance; the functions themselves are reentrant.
 */
#ifndef KS_STORAGE_ITEM_H
#define KS_STORAGE_ITEM_H

#include <stddef.h>

#include "common/bytes.h"
#include "common/status.h"

struct json_object;
struct ks_ec;

enum ks_attr_type { KS_ATTR_S = 'S', KS_ATTR_N = 'N', KS_ATTR_B = 'B' };

struct ks_attr {
    char *name;
    enum ks_attr_type type;
    unsigned char *value; /* S, N: NUL-terminated text (len excludes the NUL); B: raw bytes */
    size_t len;
};

struct ks_item {
    struct ks_attr *attrs; /* kept sorted by name */
    size_t count;
    size_t cap;
};

/* Item attribute names and values of the MPL (docs/reference/branch-key-store.md section 2). */
#define KS_ATTR_BRANCH_KEY_ID "branch-key-id"
#define KS_ATTR_TYPE "type"
#define KS_ATTR_VERSION "version"
#define KS_ATTR_ENC "enc"
#define KS_ATTR_KMS_ARN "kms-arn"
#define KS_ATTR_CREATE_TIME "create-time"
#define KS_ATTR_HIERARCHY_VERSION "hierarchy-version"
#define KS_ATTR_TABLENAME "tablename"
#define KS_EC_PREFIX "aws-crypto-ec:"
#define KS_TYPE_ACTIVE "branch:ACTIVE"
#define KS_TYPE_BEACON "beacon:ACTIVE"
#define KS_TYPE_VERSION_PREFIX "branch:version:"

void ks_item_init(struct ks_item *item);
void ks_item_free(struct ks_item *item);

/* Insert or replace an attribute (copies). 0, or -1 on OOM (item unchanged). */
int ks_item_set_s(struct ks_item *item, const char *name, const char *value);
int ks_item_set_n(struct ks_item *item, const char *name, const char *value);
int ks_item_set_b(struct ks_item *item, const char *name, const void *data, size_t len);

/* Removes name if present; 1 if removed. */
int ks_item_remove(struct ks_item *item, const char *name);

/* The attribute, or NULL. */
const struct ks_attr *ks_item_get(const struct ks_item *item, const char *name);

/* The S value of name, or NULL when absent or not of type S. */
const char *ks_item_get_s(const struct ks_item *item, const char *name);

/* dst (initialized; replaced) gets a deep copy. 0, or -1 on OOM. */
int ks_item_copy(struct ks_item *dst, const struct ks_item *src);

/*
 * DynamoDB AttributeValue map JSON ({"enc":{"B":"<base64>"},"type":{"S":"..."}, ...}), the wire
 * form of DynamoDB and the stored form of sqlite.c. *out is a new json object (caller puts it).
 */
int ks_item_to_json(const struct ks_item *item, struct json_object **out);

/*
 * Parses such a map. Any attribute type other than S, N and B, a member with not exactly one
 * type, bad base64 or a non-string value is KS_E_CORRUPT naming the attribute. out is
 * initialized by the call; on failure it is left empty.
 */
ks_status ks_item_from_json(struct json_object *map, struct ks_item *out, struct ks_error *err);

/* --- Mutation commitment and index items (docs/reference/mutations.md sections 1 and 12) --- */

#define KS_TYPE_MUTATION_COMMITMENT "branch:MUTATION_COMMITMENT"
#define KS_TYPE_MUTATION_INDEX "branch:MUTATION_INDEX"
#define KS_ATTR_UUID "uuid"
#define KS_ATTR_ORIGINAL "original"
#define KS_ATTR_TERMINAL "terminal"
#define KS_ATTR_INPUT "input"
#define KS_ATTR_PAGE_INDEX "pageIndex"
/* pageIndex values besides a `branch:version:` type (section 1). */
#define KS_PAGE_INDEX_NOT_STARTED "Not Started"
#define KS_PAGE_INDEX_DONE "Done"
/* The members of the original/terminal/input JSON (section 1). */
#define KS_MUTATION_JSON_EC "aws-crypto-ec"
#define KS_MUTATION_JSON_ARN "kms-arn"
/* The hierarchy version a mutation item carries when neither side is HV-2 (N "1"; section 1);
 * N "2" otherwise (section 12). */
#define KS_MUTATION_HIERARCHY_VERSION "1"
#define KS_MUTATION_JSON_HV "hierarchy-version"

/*
 * The MPL's MutationCommitment: the item `branch:MUTATION_COMMITMENT` with exactly the
 * attributes branch-key-id S, type S, create-time S, hierarchy-version N "1", uuid S, original B,
 * terminal B, input B, enc B. All fields owned; original/terminal/input are the JSON bytes
 * exactly as stored (storage compares them bytewise, never re-serializes them).
 */
struct ks_mutation_commitment {
    char *branch_key_id;
    char *create_time;
    char *uuid;
    struct ks_bytes original;
    struct ks_bytes terminal;
    struct ks_bytes input;
    struct ks_bytes enc;
    /* The stored N: 0 or 1 write N "1" (neither side HV-2), 2 writes N "2" (section 12). */
    int hierarchy_version;
};

/*
 * The MPL's MutationIndex: `branch:MUTATION_INDEX` with exactly branch-key-id S, type S,
 * create-time S, hierarchy-version N "1", uuid S, pageIndex B, enc B. page_index holds
 * KS_PAGE_INDEX_NOT_STARTED, KS_PAGE_INDEX_DONE or a `branch:version:<v>` type (UTF-8).
 */
struct ks_mutation_index {
    char *branch_key_id;
    char *create_time;
    char *uuid;
    struct ks_bytes page_index;
    struct ks_bytes enc;
    int hierarchy_version; /* as in the commitment */
};

void ks_mutation_commitment_init(struct ks_mutation_commitment *c);
void ks_mutation_commitment_free(struct ks_mutation_commitment *c);
/* dst (initialized; replaced) gets a deep copy. 0, or -1 on OOM. */
int ks_mutation_commitment_copy(struct ks_mutation_commitment *dst,
                                const struct ks_mutation_commitment *src);
void ks_mutation_index_init(struct ks_mutation_index *x);
void ks_mutation_index_free(struct ks_mutation_index *x);
int ks_mutation_index_copy(struct ks_mutation_index *dst, const struct ks_mutation_index *src);

/*
 * Encode into an item (out initialized by the call). Every string field must be non-empty
 * and every bytes field non-empty (the MPL's reader refuses empty ones): KS_E_INVALID naming
 * the field. OOM: KS_E_INTERNAL.
 */
ks_status ks_mutation_commitment_to_item(const struct ks_mutation_commitment *c,
                                         struct ks_item *out, struct ks_error *err);
ks_status ks_mutation_index_to_item(const struct ks_mutation_index *x, struct ks_item *out,
                                    struct ks_error *err);

/*
 * Decode a stored item (out initialized by the call, empty on failure). Exactly the attributes
 * above with their types, type equal to the item type, hierarchy-version N "1" or "2", non-empty
 * values, S values valid UTF-8: anything else (a missing, extra or mistyped attribute) is
 * KS_E_CORRUPT naming the attribute, as the MPL's KeyStorageException.
 */
ks_status ks_mutation_commitment_from_item(const struct ks_item *item,
                                           struct ks_mutation_commitment *out,
                                           struct ks_error *err);
ks_status ks_mutation_index_from_item(const struct ks_item *item, struct ks_mutation_index *out,
                                      struct ks_error *err);

/*
 * The `original` / `terminal` JSON (section 1, key order section 12): compact
 * {"aws-crypto-ec":{<ec>},"kms-arn":"<arn>"}; ec holds item-level names (prefixed
 * `aws-crypto-ec:`, plus un-modeled attributes), written in UTF-16 code-unit order, escaped as
 * the MPL's serializer does except that 0x1F is escaped too (issue 10 item 5). out (replaced)
 * gets the bytes. KS_E_INVALID when a string is not valid UTF-8; KS_E_INTERNAL on OOM.
 */
ks_status ks_mutation_props_to_json(const char *kms_arn, const struct ks_ec *ec,
                                    struct ks_bytes *out, struct ks_error *err);

/*
 * Parses such JSON: exactly the two members in that order, an object of strings without
 * duplicate keys and without the reserved names (section 1), a string ARN (not validated
 * here: the keystore parses ARNs). *kms_arn is malloc'd; ec (initialized by the call) gets the
 * pairs. Failures: KS_E_CORRUPT naming the problem.
 */
ks_status ks_mutation_props_from_json(const unsigned char *data, size_t len, char **kms_arn,
                                      struct ks_ec *ec, struct ks_error *err);

/*
 * The `input` JSON: {"aws-crypto-ec":<object|null>,"kms-arn":<string|null>}; ec is the
 * caller's UNPREFIXED terminal context. kms_arn NULL and/or ec NULL write null.
 */
ks_status ks_mutation_input_to_json(const char *kms_arn, const struct ks_ec *ec,
                                    struct ks_bytes *out, struct ks_error *err);

/* Parses it; *kms_arn NULL when null; *has_ec 0 when null (ec then empty). */
ks_status ks_mutation_input_from_json(const unsigned char *data, size_t len, char **kms_arn,
                                      int *has_ec, struct ks_ec *ec, struct ks_error *err);

/*
 * The HV-2 forms (docs/reference/mutations.md section 12): a third member
 * "hierarchy-version" after the two above. hv 0 writes the two-member HV-1 form; 1 or 2 write
 * "hierarchy-version":"<hv>" (input: hv -1 writes null, "not asked for"). Readers accept both
 * forms: *hv gets 0 for two members, else 1 or 2 (input: -1 for null); any other third member
 * or value is KS_E_CORRUPT.
 */
ks_status ks_mutation_props_to_json_hv(const char *kms_arn, const struct ks_ec *ec, int hv,
                                       struct ks_bytes *out, struct ks_error *err);
ks_status ks_mutation_input_to_json_hv(const char *kms_arn, const struct ks_ec *ec, int hv,
                                       struct ks_bytes *out, struct ks_error *err);
ks_status ks_mutation_props_from_json_hv(const unsigned char *data, size_t len, char **kms_arn,
                                         struct ks_ec *ec, int *hv, struct ks_error *err);
ks_status ks_mutation_input_from_json_hv(const unsigned char *data, size_t len, char **kms_arn,
                                         int *has_ec, struct ks_ec *ec, int *hv,
                                         struct ks_error *err);

#endif
