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

#include "common/status.h"

struct json_object;

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

#endif
