/*
 * keystore.c - HV-1 branch key store operations (docs/reference/branch-key-store.md). Each rule
 * cites the section of that file it comes from; "MPL" means the MPL main branch it restates.
 */
#include "keystore/keystore.h"

#include <stdlib.h>
#include <string.h>

#include <stdatomic.h>

#include "common/secret.h"
#include "aws/arn.h"
#include "common/utf8.h"
#include "keystore/cache.h"
#include "keystore/create_time.h"
#include "keystore/hv2_kms.h"
#include "keystore/materials.h"
#include "keystore/testing.h"

#define KEY_LEN 32       /* AES-256 branch and beacon keys */
#define ENC_MAX 6144     /* section 3: enc B 1..6144 bytes */
#define EC_KEY_MAX 65535 /* section 4: "aws-crypto-ec:" + key at most 65535 chars */
#define HV1 "1"
#define HV2 "2" /* docs/reference/hv2.md section 1 */

struct ks_keystore {
    char *name;
    char *logical_key_store_name;
    char *key_store_id;
    struct ks_storage *storage;
    const struct ks_clock *clock;
    struct ks_cache *cache; /* borrowed, may be NULL */
    _Atomic unsigned long long storage_reads;
    int default_hierarchy_version; /* 1 or 2 (docs/reference/hv2.md section 8) */
    /* issue 12: storage calls of the key paths by operation and outcome (/metrics) */
    _Atomic unsigned long long storage_calls[KS_KEYSTORE_STORAGE_OP_COUNT]
                                            [KS_KEYSTORE_STORAGE_OUTCOME_COUNT];
};

struct ks_key_ref {
    struct ks_cache_ref *cache_ref; /* from the shared cache, or */
    struct ks_materials *owned;     /* fetched for this call only */
};

const char *ks_kms_op_name(enum ks_kms_op op)
{
    static const char *const names[KS_KMS_OP_COUNT] = {
        [KS_KMS_OP_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT] = "GenerateDataKeyWithoutPlaintext",
        [KS_KMS_OP_RE_ENCRYPT] = "ReEncrypt",
        [KS_KMS_OP_DECRYPT] = "Decrypt",
        [KS_KMS_OP_ENCRYPT] = "Encrypt",
        [KS_KMS_OP_GENERATE_DATA_KEY] = "GenerateDataKey",
    };
    return (int)op >= 0 && op < KS_KMS_OP_COUNT ? names[op] : "unknown";
}

/* Counts one KMS call and whether it failed; returns st. */
static ks_status counted(const struct ks_kms_relationship *rel, enum ks_kms_op op, ks_status st)
{
    if (rel->counters) {
        atomic_fetch_add_explicit(&rel->counters->calls[op], 1, memory_order_relaxed);
        if (st != KS_OK)
            atomic_fetch_add_explicit(&rel->counters->errors[op], 1, memory_order_relaxed);
    }
    return st;
}

/* Counts one storage call by its outcome; returns st. */
static ks_status count_storage(struct ks_keystore *ks, enum ks_keystore_storage_op op, ks_status st)
{
    enum ks_keystore_storage_outcome o = st == KS_OK            ? KS_KEYSTORE_STORAGE_OK
                                         : st == KS_E_NOT_FOUND ? KS_KEYSTORE_STORAGE_NOT_FOUND
                                         : st == KS_E_ALREADY_EXISTS || st == KS_E_VERSION_RACE
                                             ? KS_KEYSTORE_STORAGE_CONFLICT
                                             : KS_KEYSTORE_STORAGE_ERROR;
    atomic_fetch_add_explicit(&ks->storage_calls[op][o], 1, memory_order_relaxed);
    return st;
}

const char *ks_keystore_storage_op_name(enum ks_keystore_storage_op op)
{
    static const char *const names[KS_KEYSTORE_STORAGE_OP_COUNT] = {
        "GetActive", "GetVersion", "GetBeacon", "WriteNewBranchKey", "WriteNewVersion"};
    return (int)op >= 0 && op < KS_KEYSTORE_STORAGE_OP_COUNT ? names[op] : "unknown";
}

const char *ks_keystore_storage_outcome_name(enum ks_keystore_storage_outcome outcome)
{
    static const char *const names[KS_KEYSTORE_STORAGE_OUTCOME_COUNT] = {"ok", "not_found",
                                                                         "conflict", "error"};
    return (int)outcome >= 0 && outcome < KS_KEYSTORE_STORAGE_OUTCOME_COUNT ? names[outcome]
                                                                            : "unknown";
}

unsigned long long ks_keystore_storage_calls(const struct ks_keystore *ks,
                                             enum ks_keystore_storage_op op,
                                             enum ks_keystore_storage_outcome outcome)
{
    if ((int)op < 0 || op >= KS_KEYSTORE_STORAGE_OP_COUNT || (int)outcome < 0 ||
        outcome >= KS_KEYSTORE_STORAGE_OUTCOME_COUNT)
        return 0;
    return atomic_load_explicit(&((struct ks_keystore *)(uintptr_t)ks)->storage_calls[op][outcome],
                                memory_order_relaxed);
}

enum item_kind { ITEM_ACTIVE, ITEM_VERSION, ITEM_BEACON };
_Static_assert((int)ITEM_VERSION == (int)KS_KEYSTORE_STORAGE_GET_VERSION &&
                   (int)ITEM_BEACON == (int)KS_KEYSTORE_STORAGE_GET_BEACON,
               "fetch_key counts its read as the storage op of the same index");

static const char *const invalid_item_message[] = {
    [ITEM_ACTIVE] = "Item found is not a valid active branch key.",
    [ITEM_VERSION] = "Item found is not a valid branch key version.",
    [ITEM_BEACON] = "Item found is not a valid beacon key.",
};

ks_status ks_keystore_create(const struct ks_keystore_params *params, struct ks_keystore **out,
                             struct ks_error *err)
{
    struct ks_keystore *ks = calloc(1, sizeof *ks);
    char uuid[KS_UUID_LEN + 1];

    if (!ks)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    if (!params->key_store_id && ks_uuid_v4(uuid) != 0) {
        free(ks);
        return ks_error_set(err, KS_E_INTERNAL, "random source failed");
    }
    ks->name = strdup(params->name);
    ks->logical_key_store_name = strdup(params->logical_key_store_name);
    ks->default_hierarchy_version = 1;
    ks->key_store_id = strdup(params->key_store_id ? params->key_store_id : uuid);
    if (!ks->name || !ks->logical_key_store_name || !ks->key_store_id) {
        free(ks->name);
        free(ks->logical_key_store_name);
        free(ks->key_store_id);
        free(ks);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    ks->storage = params->storage;
    ks->clock = params->clock ? params->clock : ks_clock_system();
    ks->cache = params->cache;
    atomic_init(&ks->storage_reads, 0);
    *out = ks;
    return KS_OK;
}

void ks_keystore_set_default_hierarchy_version(struct ks_keystore *ks, int hv)
{
    ks->default_hierarchy_version = hv == 2 ? 2 : 1;
}

void ks_keystore_destroy(struct ks_keystore *ks)
{
    if (!ks)
        return;
    ks_storage_destroy(ks->storage);
    free(ks->name);
    free(ks->logical_key_store_name);
    free(ks->key_store_id);
    free(ks);
}

struct ks_storage *ks_keystore_storage(struct ks_keystore *ks)
{
    return ks->storage;
}

ks_status ks_keystore_has_items(struct ks_keystore *ks, int *out, struct ks_error *err)
{
    return ks->storage->ops->has_items(ks->storage, out, err);
}

ks_status ks_keystore_ping(struct ks_keystore *ks, struct ks_error *err)
{
    return ks->storage->ops->ping(ks->storage, err);
}

ks_status ks_kms_relationship_ping(const struct ks_kms_relationship *rel, struct ks_error *err)
{
    return rel->kms->ops->ping(rel->kms, err);
}

ks_status ks_keystore_info(struct ks_keystore *ks, struct ks_keystore_info *out,
                           struct ks_error *err)
{
    out->key_store_id = ks->key_store_id;
    out->logical_key_store_name = ks->logical_key_store_name;
    return ks->storage->ops->info(ks->storage, &out->storage, err);
}

ks_status ks_keystore_create_key_store(struct ks_keystore *ks, char **table_id,
                                       struct ks_error *err)
{
    return ks->storage->ops->create_key_store(ks->storage, table_id, err);
}

ks_status ks_keystore_check_branch_key_id(const char *id, size_t len, struct ks_error *err)
{
    /* section 4.3 / 5.2: the MPL only requires non-empty. keystored also refuses NUL (ids are C
     * strings and NUL would make cache identifiers ambiguous, docs/reference/cache.md section 1),
     * invalid UTF-8, and ids over KS_BRANCH_KEY_ID_MAX bytes (well under DynamoDB's 2048-byte
     * partition key limit, and short enough for a URL path segment). */
    if (len == 0)
        return ks_error_set(err, KS_E_INVALID,
                            "branchKeyIdentifier: Empty string not supported for branch key "
                            "identifier.");
    if (strlen(id) != len)
        return ks_error_set(err, KS_E_INVALID, "branchKeyIdentifier: must not contain NUL");
    if (len > KS_BRANCH_KEY_ID_MAX)
        return ks_error_set(err, KS_E_INVALID, "branchKeyIdentifier: longer than %d bytes",
                            KS_BRANCH_KEY_ID_MAX);
    if (!ks_utf8_valid(id, len))
        return ks_error_set(err, KS_E_INVALID, "branchKeyIdentifier: not valid UTF-8");
    return KS_OK;
}

/* --- encryption contexts and items (section 3) ------------------------------------------ */

/* KMS EC of an item: every attribute but enc, values verbatim (N as its raw string), plus
 * tablename = the logical key store name. */
static ks_status item_to_ec(const struct ks_keystore *ks, const struct ks_item *item,
                            struct ks_ec *ec, struct ks_error *err)
{
    size_t i;
    for (i = 0; i < item->count; i++) {
        const struct ks_attr *a = &item->attrs[i];
        if (strcmp(a->name, KS_ATTR_ENC) == 0)
            continue;
        if (ks_ec_set(ec, a->name, (const char *)a->value) != 0)
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    if (ks_ec_set(ec, KS_ATTR_TABLENAME, ks->logical_key_store_name) != 0)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    return KS_OK;
}

/* The item for a KMS EC and its enc: every EC entry but tablename (never stored, section 2),
 * hierarchy-version as N, the rest as S. */
static ks_status ec_to_item(const struct ks_ec *ec, const struct ks_bytes *enc,
                            struct ks_item *item, struct ks_error *err)
{
    size_t i;
    for (i = 0; i < ec->count; i++) {
        const struct ks_ec_entry *e = &ec->entries[i];
        int rc;
        if (strcmp(e->key, KS_ATTR_TABLENAME) == 0)
            continue;
        if (strcmp(e->key, KS_ATTR_HIERARCHY_VERSION) == 0)
            rc = ks_item_set_n(item, e->key, e->value);
        else
            rc = ks_item_set_s(item, e->key, e->value);
        if (rc != 0)
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    if (ks_item_set_b(item, KS_ATTR_ENC, enc->data, enc->len) != 0)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    return KS_OK;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* 1 for an item whose hierarchy-version is "2" (gets dispatch on it, hv2.md section 8). */
static int item_is_hv2(const struct ks_item *item)
{
    const struct ks_attr *hv = ks_item_get(item, KS_ATTR_HIERARCHY_VERSION);
    return hv && hv->type == KS_ATTR_N && strcmp((const char *)hv->value, HV2) == 0;
}

/*
 * Section 3 "Read validation" (MPL Structure.dfy BranchKeyItem?), plus: the returned
 * branch-key-id (and for versions the type) must be what was asked for. keystored also requires
 * hierarchy-version = "1" or "2" here (docs/reference/hv2.md section 1): the MPL main does not
 * check it, but an item of another hierarchy version must not be processed with either's rules.
 */
static ks_status validate_item(const struct ks_item *item, enum item_kind kind, const char *id,
                               const char *expected_type, struct ks_error *err)
{
    const char *msg = invalid_item_message[kind];
    const char *type = ks_item_get_s(item, KS_ATTR_TYPE);
    const char *bkid = ks_item_get_s(item, KS_ATTR_BRANCH_KEY_ID);
    const struct ks_attr *version = ks_item_get(item, KS_ATTR_VERSION);
    const struct ks_attr *enc = ks_item_get(item, KS_ATTR_ENC);
    const struct ks_attr *hv = ks_item_get(item, KS_ATTR_HIERARCHY_VERSION);
    const char *arn = ks_item_get_s(item, KS_ATTR_KMS_ARN);
    size_t i;

    if (!bkid || !*bkid || !type || !*type || !ks_item_get_s(item, KS_ATTR_CREATE_TIME))
        return ks_error_set(err, KS_E_CORRUPT, "%s (required attribute missing)", msg);
    if (!hv || hv->type != KS_ATTR_N || !enc || enc->type != KS_ATTR_B || !arn)
        return ks_error_set(err, KS_E_CORRUPT, "%s (required attribute missing)", msg);
    if (!ks_arn_length_ok(arn) || enc->len < 1 || enc->len > ENC_MAX)
        return ks_error_set(err, KS_E_CORRUPT, "%s (attribute out of range)", msg);
    if (strcmp((const char *)hv->value, HV1) != 0 && strcmp((const char *)hv->value, HV2) != 0)
        return ks_error_set(err, KS_E_CORRUPT, "%s (unsupported hierarchy-version)", msg);
    for (i = 0; i < item->count; i++) {
        const struct ks_attr *a = &item->attrs[i];
        if (strcmp(a->name, KS_ATTR_TABLENAME) == 0)
            return ks_error_set(err, KS_E_CORRUPT, "%s (tablename must not be stored)", msg);
        if (a != enc && a != hv && a->type != KS_ATTR_S)
            return ks_error_set(err, KS_E_CORRUPT, "%s (attribute %s must be a string)", msg,
                                a->name);
    }
    if (strcmp(type, KS_TYPE_ACTIVE) == 0) {
        const char *v = version ? (const char *)version->value : NULL;
        if (!v || version->type != KS_ATTR_S || !starts_with(v, KS_TYPE_VERSION_PREFIX) ||
            strlen(v) <= strlen(KS_TYPE_VERSION_PREFIX))
            return ks_error_set(err, KS_E_CORRUPT, "%s (bad version attribute)", msg);
    } else if (version) {
        return ks_error_set(err, KS_E_CORRUPT, "%s (version attribute on a non-ACTIVE item)", msg);
    } else if (strcmp(type, KS_TYPE_BEACON) != 0 &&
               !(starts_with(type, KS_TYPE_VERSION_PREFIX) &&
                 strlen(type) > strlen(KS_TYPE_VERSION_PREFIX))) {
        return ks_error_set(err, KS_E_CORRUPT, "%s (bad type attribute)", msg);
    }
    if (strcmp(bkid, id) != 0 || strcmp(type, expected_type) != 0)
        return ks_error_set(err, KS_E_CORRUPT, "%s (item does not match the request)", msg);
    return KS_OK;
}

/* --- KMS configuration rules (section 7) ------------------------------------------------ */

static int rel_can_write(const struct ks_kms_relationship *rel)
{
    return rel->kind == KS_KMS_KEY_ARN || rel->kind == KS_KMS_MR_KEY_ARN;
}

/* Does the stored kms-arn agree with the relationship's configuration? */
static int rel_accepts_arn(const struct ks_kms_relationship *rel, const char *stored)
{
    switch (rel->kind) {
    case KS_KMS_KEY_ARN:
        return strcmp(rel->arn, stored) == 0;
    case KS_KMS_MR_KEY_ARN:
        return ks_arn_mrk_match(rel->arn, stored);
    case KS_KMS_DISCOVERY:
    case KS_KMS_MR_DISCOVERY:
        return 1;
    }
    return 0;
}

/* The KeyId for Decrypt: configured ARN, stored ARN, or stored MRK moved to the region. */
static int rel_decrypt_key_id(const struct ks_kms_relationship *rel, const char *stored, char *out,
                              size_t out_size)
{
    struct ks_arn parsed;
    const char *src = stored;
    if (rel->kind == KS_KMS_KEY_ARN || rel->kind == KS_KMS_MR_KEY_ARN)
        src = rel->arn;
    else if (rel->kind == KS_KMS_MR_DISCOVERY && ks_arn_parse(stored, &parsed) == KS_ARN_OK &&
             ks_arn_is_mrk(&parsed))
        return ks_arn_with_region(stored, rel->region, out, out_size);
    if (strlen(src) >= out_size)
        return -1;
    memcpy(out, src, strlen(src) + 1);
    return 0;
}

static struct ks_kms_call rel_call(const struct ks_kms_relationship *rel)
{
    struct ks_kms_call call = {rel->grant_tokens, rel->n_grant_tokens};
    return call;
}

/* GenerateDataKeyWithoutPlaintext for a new key (section 4, KMS call 1 and 3). */
static ks_status new_wrapped_key(const struct ks_kms_relationship *rel, const struct ks_ec *ec,
                                 struct ks_bytes *enc, struct ks_error *err)
{
    struct ks_kms_call call = rel_call(rel);
    struct ks_kms_result r;
    ks_status st;

    ks_kms_result_init(&r);
    st = counted(rel, KS_KMS_OP_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT,
                 rel->kms->ops->generate_data_key_without_plaintext(rel->kms, &call, rel->arn,
                                                                    KEY_LEN, ec, &r, err));
    if (st == KS_OK && (!r.key_id || r.ciphertext.len < 1 || r.ciphertext.len > ENC_MAX))
        st = ks_error_set(err, KS_E_KMS,
                          "Invalid response from KMS GenerateDataKeyWithoutPlaintext");
    if (st == KS_OK) {
        *enc = r.ciphertext;
        r.ciphertext.data = NULL;
        r.ciphertext.len = 0;
    }
    ks_kms_result_free(&r);
    return st;
}

/*
 * ReEncrypt under the configured ARN from source_ec to destination_ec (section 4 call 2, and the
 * authentication of section 5.6). Both returned key ids must equal the configured ARN string.
 * enc_out may be NULL when the output is only an authentication and is discarded.
 */
static ks_status re_encrypt(const struct ks_kms_relationship *rel, const struct ks_bytes *enc,
                            const struct ks_ec *source_ec, const struct ks_ec *destination_ec,
                            struct ks_bytes *enc_out, struct ks_error *err)
{
    struct ks_kms_call call = rel_call(rel);
    struct ks_kms_result r;
    ks_status st;

    ks_kms_result_init(&r);
    st = counted(rel, KS_KMS_OP_RE_ENCRYPT,
                 rel->kms->ops->re_encrypt(rel->kms, &call, enc->data, enc->len, source_ec,
                                           rel->arn, rel->arn, destination_ec, &r, err));
    if (st == KS_OK && (!r.key_id || !r.source_key_id || strcmp(r.key_id, rel->arn) != 0 ||
                        strcmp(r.source_key_id, rel->arn) != 0))
        st = ks_error_set(err, KS_E_KMS, "Invalid response from KMS ReEncrypt:: Invalid Key Id");
    if (st == KS_OK && (r.ciphertext.len < 1 || r.ciphertext.len > ENC_MAX))
        st = ks_error_set(err, KS_E_KMS, "Invalid response from KMS ReEncrypt");
    if (st == KS_OK && enc_out) {
        *enc_out = r.ciphertext;
        r.ciphertext.data = NULL;
        r.ciphertext.len = 0;
    }
    ks_kms_result_free(&r);
    return st;
}

/* --- CreateKey (section 4) --------------------------------------------------------------- */

static ks_status check_custom_ec(const struct ks_ec *ec, struct ks_error *err)
{
    size_t i;
    for (i = 0; ec && i < ec->count; i++) {
        const char *k = ec->entries[i].key, *v = ec->entries[i].value;
        /* section 4.4: valid UTF-8 and the prefixed key at most 65535 chars (UTF-16 units). No
         * reserved names are refused: the prefix keeps them apart from the item's own. */
        if (!ks_utf8_valid(k, strlen(k)) || !ks_utf8_valid(v, strlen(v)) ||
            strlen(KS_EC_PREFIX) + ks_utf8_utf16_length(k, strlen(k)) > EC_KEY_MAX)
            return ks_error_set(err, KS_E_INVALID,
                                "encryptionContext: Unable to UTF8 Encode element of Encryption "
                                "Context.");
        /* The MPL sets no limit on values, but an encryption context entry is serialized with
         * u16 lengths (docs/architecture.md section 5), so a longer value can never be bound by
         * KMS: refuse it here rather than after KMS calls. */
        if (strlen(v) > EC_KEY_MAX) {
            char shown[KS_UTF8_NAME_SHOWN];
            ks_utf8_display(k, strlen(k), shown, sizeof shown);
            return ks_error_set(err, KS_E_INVALID,
                                "encryptionContext.%s: value longer than 65535 bytes", shown);
        }
    }
    return KS_OK;
}

static ks_status add_prefixed(struct ks_ec *dst, const struct ks_ec *custom, struct ks_error *err)
{
    size_t i;
    for (i = 0; custom && i < custom->count; i++) {
        size_t n = strlen(KS_EC_PREFIX) + strlen(custom->entries[i].key) + 1;
        char *k = malloc(n);
        int rc;
        if (!k)
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
        memcpy(k, KS_EC_PREFIX, strlen(KS_EC_PREFIX));
        memcpy(k + strlen(KS_EC_PREFIX), custom->entries[i].key, n - strlen(KS_EC_PREFIX));
        rc = ks_ec_set(dst, k, custom->entries[i].value);
        free(k);
        if (rc != 0)
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    return KS_OK;
}

/* "branch:version:<uuid>" into out (16 + 36 + 1 bytes). */
static void version_type(const char *uuid, char out[64])
{
    size_t p = strlen(KS_TYPE_VERSION_PREFIX);
    memcpy(out, KS_TYPE_VERSION_PREFIX, p);
    memcpy(out + p, uuid, strlen(uuid) + 1);
}

ks_status ks_keystore_create_key(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                                 const char *branch_key_id, const struct ks_ec *custom_ec,
                                 char **id_out, struct ks_error *err)
{
    return ks_keystore_create_key_hv(ks, rel, branch_key_id, custom_ec, 1, id_out, err);
}

/* HV-1's three KMS calls of CreateKey (section 4). */
static ks_status hv1_create_wraps(const struct ks_kms_relationship *rel,
                                  const struct ks_ec *version_ec, const struct ks_ec *active_ec,
                                  const struct ks_ec *beacon_ec, struct ks_bytes *version_enc,
                                  struct ks_bytes *active_enc, struct ks_bytes *beacon_enc,
                                  struct ks_error *err)
{
    ks_status st;
    if ((st = new_wrapped_key(rel, version_ec, version_enc, err)) != KS_OK ||
        (st = re_encrypt(rel, version_enc, version_ec, active_ec, active_enc, err)) != KS_OK)
        return st;
    return new_wrapped_key(rel, beacon_ec, beacon_enc, err);
}

ks_status ks_keystore_create_key_hv(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                                    const char *branch_key_id, const struct ks_ec *custom_ec,
                                    int hierarchy_version, char **id_out, struct ks_error *err)
{
    char generated[KS_UUID_LEN + 1], version_uuid[KS_UUID_LEN + 1], vtype[64], now[28];
    struct ks_ec version_ec, active_ec, beacon_ec;
    struct ks_bytes version_enc = {0}, active_enc = {0}, beacon_enc = {0};
    struct ks_item version_item, active_item, beacon_item;
    const char *id = branch_key_id;
    ks_status st;

    /* Checks in the MPL's order (section 4). */
    if (branch_key_id && (!custom_ec || custom_ec->count == 0))
        return ks_error_set(err, KS_E_INVALID,
                            "encryptionContext: Custom branch key identifier requires custom "
                            "encryption context.");
    if (!rel_can_write(rel))
        return ks_error_set(err, KS_E_INVALID,
                            "Key Store's kmsConfiguration MUST BE kmsKeyArn or kmsMRKeyArn to "
                            "Create Branch Keys.");
    if (branch_key_id && !*branch_key_id)
        return ks_error_set(err, KS_E_INVALID,
                            "branchKeyIdentifier: Custom branch key id can not be an empty "
                            "string.");
    if (branch_key_id &&
        (st = ks_keystore_check_branch_key_id(branch_key_id, strlen(branch_key_id), err)) != KS_OK)
        return st;
    if ((st = check_custom_ec(custom_ec, err)) != KS_OK)
        return st;
    if (hierarchy_version == 0)
        hierarchy_version = ks->default_hierarchy_version;
    if (hierarchy_version != 1 && hierarchy_version != 2)
        return ks_error_set(err, KS_E_INVALID, "hierarchyVersion: expected \"1\" or \"2\"");
    if ((!branch_key_id && ks_uuid_v4(generated) != 0) || ks_uuid_v4(version_uuid) != 0)
        return ks_error_set(err, KS_E_INTERNAL, "random source failed");
    if (!branch_key_id)
        id = generated;
    version_type(version_uuid, vtype);
    ks_timestamp_iso8601(ks->clock->now_us(ks->clock->ctx), now);

    ks_ec_init(&version_ec);
    ks_ec_init(&active_ec);
    ks_ec_init(&beacon_ec);
    ks_item_init(&version_item);
    ks_item_init(&active_item);
    ks_item_init(&beacon_item);

    /* The DECRYPT_ONLY (version) context; ACTIVE and beacon differ in type (+ version). */
    if (ks_ec_set(&version_ec, KS_ATTR_BRANCH_KEY_ID, id) ||
        ks_ec_set(&version_ec, KS_ATTR_TYPE, vtype) ||
        ks_ec_set(&version_ec, KS_ATTR_CREATE_TIME, now) ||
        ks_ec_set(&version_ec, KS_ATTR_KMS_ARN, rel->arn) ||
        ks_ec_set(&version_ec, KS_ATTR_HIERARCHY_VERSION, hierarchy_version == 2 ? HV2 : HV1) ||
        ks_ec_set(&version_ec, KS_ATTR_TABLENAME, ks->logical_key_store_name)) {
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
        goto out;
    }
    if ((st = add_prefixed(&version_ec, custom_ec, err)) != KS_OK)
        goto out;
    if (ks_ec_copy(&active_ec, &version_ec) ||
        ks_ec_set(&active_ec, KS_ATTR_TYPE, KS_TYPE_ACTIVE) ||
        ks_ec_set(&active_ec, KS_ATTR_VERSION, vtype) || ks_ec_copy(&beacon_ec, &version_ec) ||
        ks_ec_set(&beacon_ec, KS_ATTR_TYPE, KS_TYPE_BEACON)) {
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
        goto out;
    }

    st = (hierarchy_version == 2 ? ks_hv2_create_wraps : hv1_create_wraps)(
        rel, &version_ec, &active_ec, &beacon_ec, &version_enc, &active_enc, &beacon_enc, err);
    if (st != KS_OK)
        goto out;

    if ((st = ec_to_item(&version_ec, &version_enc, &version_item, err)) != KS_OK ||
        (st = ec_to_item(&active_ec, &active_enc, &active_item, err)) != KS_OK ||
        (st = ec_to_item(&beacon_ec, &beacon_enc, &beacon_item, err)) != KS_OK)
        goto out;

    st = count_storage(ks, KS_KEYSTORE_STORAGE_WRITE_NEW_BRANCH_KEY,
                       ks->storage->ops->write_new_branch_key(ks->storage, &active_item,
                                                              &version_item, &beacon_item, err));
    if (st == KS_E_ALREADY_EXISTS)
        ks_error_set(err, st, "branchKeyIdentifier: a branch key with this identifier exists");
    if (st == KS_OK && !(*id_out = strdup(id)))
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
out:
    ks_ec_free(&version_ec);
    ks_ec_free(&active_ec);
    ks_ec_free(&beacon_ec);
    ks_item_free(&version_item);
    ks_item_free(&active_item);
    ks_item_free(&beacon_item);
    ks_bytes_free(&version_enc);
    ks_bytes_free(&active_enc);
    ks_bytes_free(&beacon_enc);
    return st;
}

/* --- VersionKey (section 5, with the optimistic lock of section 9) ----------------------- */

static ks_status not_found(ks_status st, struct ks_error *err)
{
    if (st == KS_E_NOT_FOUND)
        ks_error_set(err, st, "No item found for corresponding branch key identifier.");
    return st;
}

/*
 * Issue 10: no VersionKey while a mutation is in flight (the MPL does not check). Read after
 * the ACTIVE: a mutation initialized before that read is seen here, and one initialized after
 * it rewrote the ACTIVE, so the write's enc condition fails (VersionRaceException).
 */
static ks_status refuse_under_mutation(struct ks_keystore *ks, const char *branch_key_id,
                                       struct ks_error *err)
{
    struct ks_mutation_state m;
    ks_status st;
    if (ks->storage->ops->version < 3 || !ks->storage->ops->get_mutation)
        return KS_OK;
    if ((st = ks->storage->ops->get_mutation(ks->storage, branch_key_id, &m, err)) != KS_OK)
        return st;
    if (m.has_commitment || m.has_index)
        st = ks_error_set(err, KS_E_MUTATION_CONFLICT,
                          "the branch key is under mutation; VersionKey is refused until the "
                          "mutation completes or is aborted");
    ks_mutation_state_free(&m);
    return st;
}

/*
 * Issue 14: the age check of scheduled rotation, made on the ACTIVE that this VersionKey read
 * and whose enc it locks, never on a listed copy: an instance acting on a stale list sees the
 * new ACTIVE here (or loses the enc race) and does not rotate the key a second time.
 */
static ks_status check_due(const struct ks_item *active, int64_t cutoff_us,
                           enum ks_version_due *due, struct ks_error *err)
{
    int64_t created;

    if (cutoff_us < 0)
        return KS_OK;
    if (ks_create_time_parse(ks_item_get_s(active, KS_ATTR_CREATE_TIME), &created) != 0) {
        *due = KS_VERSION_BAD_TIME;
        return ks_error_set(err, KS_E_INVALID, "the ACTIVE's create-time does not parse");
    }
    if (created >= cutoff_us) {
        *due = KS_VERSION_NOT_DUE;
        return ks_error_set(err, KS_E_INVALID, "not due: the ACTIVE is newer than the cutoff");
    }
    return KS_OK;
}

/* VersionKey's checks of the ACTIVE it read: item, mutation, ARN, then the cutoff. */
static ks_status check_active(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                              const char *branch_key_id, const struct ks_item *active,
                              int64_t cutoff_us, enum ks_version_due *due, struct ks_error *err)
{
    ks_status st;

    if ((st = validate_item(active, ITEM_ACTIVE, branch_key_id, KS_TYPE_ACTIVE, err)) != KS_OK ||
        (st = refuse_under_mutation(ks, branch_key_id, err)) != KS_OK)
        return st;
    /* hv2.md section 6 step 4: HV-2 requires the exact configured ARN, even for an MRK. */
    if (!rel_accepts_arn(rel, ks_item_get_s(active, KS_ATTR_KMS_ARN)) ||
        (item_is_hv2(active) && strcmp(rel->arn, ks_item_get_s(active, KS_ATTR_KMS_ARN)) != 0)) {
        *due = KS_VERSION_KMS_ARN;
        return ks_error_set(err, KS_E_INVALID,
                            "Branch key's KMS Key ARN read from Dynamodb does not match Key "
                            "Store's configured KMS Key ARN.");
    }
    return check_due(active, cutoff_us, due, err);
}

ks_status ks_keystore_version_key(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                                  const char *branch_key_id, char **version_out,
                                  struct ks_error *err)
{
    enum ks_version_due due = KS_VERSION_DUE;
    return ks_keystore_version_key_if_older(ks, rel, branch_key_id, -1, version_out, &due, err);
}

/* HV-1's KMS calls of VersionKey: 5.6 authenticates the old ACTIVE (output discarded), then
 * the new material for the version and ACTIVE (section 5). */
static ks_status hv1_version_wraps(const struct ks_kms_relationship *rel,
                                   const struct ks_bytes *old_enc, const struct ks_ec *old_ec,
                                   const struct ks_ec *version_ec, const struct ks_ec *active_ec,
                                   struct ks_bytes *version_enc, struct ks_bytes *active_enc,
                                   struct ks_error *err)
{
    ks_status st;
    if ((st = re_encrypt(rel, old_enc, old_ec, old_ec, NULL, err)) != KS_OK ||
        (st = new_wrapped_key(rel, version_ec, version_enc, err)) != KS_OK)
        return st;
    return re_encrypt(rel, version_enc, version_ec, active_ec, active_enc, err);
}

ks_status ks_keystore_version_key_if_older(struct ks_keystore *ks,
                                           const struct ks_kms_relationship *rel,
                                           const char *branch_key_id, int64_t cutoff_us,
                                           char **version_out, enum ks_version_due *due,
                                           struct ks_error *err)
{
    char version_uuid[KS_UUID_LEN + 1], vtype[64], now[28];
    struct ks_item old_active, version_item, active_item;
    struct ks_ec old_ec, version_ec, active_ec;
    struct ks_bytes old_enc = {0}, version_enc = {0}, active_enc = {0};
    const struct ks_attr *enc;
    ks_status st;

    *due = KS_VERSION_DUE;
    if (!rel_can_write(rel))
        return ks_error_set(err, KS_E_INVALID,
                            "Key Store's kmsConfiguration MUST BE kmsKeyArn or kmsMRKeyArn to "
                            "Version Branch Keys.");
    if ((st = ks_keystore_check_branch_key_id(branch_key_id, strlen(branch_key_id), err)) != KS_OK)
        return st;
    if (ks_uuid_v4(version_uuid) != 0)
        return ks_error_set(err, KS_E_INTERNAL, "random source failed");
    version_type(version_uuid, vtype);
    ks_timestamp_iso8601(ks->clock->now_us(ks->clock->ctx), now);

    ks_item_init(&old_active);
    ks_item_init(&version_item);
    ks_item_init(&active_item);
    ks_ec_init(&old_ec);
    ks_ec_init(&version_ec);
    ks_ec_init(&active_ec);

    st = count_storage(ks, KS_KEYSTORE_STORAGE_GET_ACTIVE,
                       ks->storage->ops->get_active(ks->storage, branch_key_id, &old_active, err));
    if (st != KS_OK) {
        not_found(st, err);
        goto out;
    }
    if ((st = check_active(ks, rel, branch_key_id, &old_active, cutoff_us, due, err)) != KS_OK)
        goto out;
    enc = ks_item_get(&old_active, KS_ATTR_ENC);
    if (ks_bytes_set(&old_enc, enc->value, enc->len) != 0) {
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
        goto out;
    }
    if ((st = item_to_ec(ks, &old_active, &old_ec, err)) != KS_OK)
        goto out;
    /* 5.7: the new version's context is the old ACTIVE's with a new type and create-time and
     * no version; kms-arn, hierarchy-version and every other attribute carry over. */
    if (ks_ec_copy(&version_ec, &old_ec) || ks_ec_set(&version_ec, KS_ATTR_TYPE, vtype) ||
        ks_ec_set(&version_ec, KS_ATTR_CREATE_TIME, now) ||
        (ks_ec_remove(&version_ec, KS_ATTR_VERSION), 0) || ks_ec_copy(&active_ec, &version_ec) ||
        ks_ec_set(&active_ec, KS_ATTR_TYPE, KS_TYPE_ACTIVE) ||
        ks_ec_set(&active_ec, KS_ATTR_VERSION, vtype)) {
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
        goto out;
    }
    /* The new version keeps the ACTIVE's hierarchy version (hv2.md section 6). */
    st = (item_is_hv2(&old_active) ? ks_hv2_version_wraps : hv1_version_wraps)(
        rel, &old_enc, &old_ec, &version_ec, &active_ec, &version_enc, &active_enc, err);
    if (st != KS_OK)
        goto out;
    if ((st = ec_to_item(&version_ec, &version_enc, &version_item, err)) != KS_OK ||
        (st = ec_to_item(&active_ec, &active_enc, &active_item, err)) != KS_OK)
        goto out;
    /* 5.9 + section 9: put the version, overwrite ACTIVE only if its enc is still old_enc. */
    st = count_storage(ks, KS_KEYSTORE_STORAGE_WRITE_NEW_VERSION,
                       ks->storage->ops->write_new_version(ks->storage, &version_item, &active_item,
                                                           old_enc.data, old_enc.len, err));
    if (st == KS_E_VERSION_RACE)
        ks_error_set(err, st,
                     "The ACTIVE branch key changed while it was being versioned (another "
                     "VersionKey won the race); nothing was written, retry.");
    else if (st == KS_E_NOT_FOUND)
        st = not_found(st, err);
    /* Issue 5: this instance drops the key's ACTIVE entries in every partition at once;
     * other instances serve theirs until the TTL ends. */
    if (st == KS_OK && ks->cache)
        ks_cache_invalidate_active(ks->cache, ks->logical_key_store_name, branch_key_id);
    if (st == KS_OK && !(*version_out = strdup(version_uuid)))
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
out:
    ks_item_free(&old_active);
    ks_item_free(&version_item);
    ks_item_free(&active_item);
    ks_ec_free(&old_ec);
    ks_ec_free(&version_ec);
    ks_ec_free(&active_ec);
    ks_bytes_free(&old_enc);
    ks_bytes_free(&version_enc);
    ks_bytes_free(&active_enc);
    return st;
}

/* --- GetActiveBranchKey / GetBranchKeyVersion / GetBeaconKey (section 6) ----------  */

static ks_status materials_from(const struct ks_item *item, enum item_kind kind, unsigned char *key,
                                struct ks_materials **out, struct ks_error *err)

{
    struct ks_materials *m = ks_materials_new();
    const char *vfield;
    size_t i;

    if (!m) {
        ks_secret_free(key, KEY_LEN);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    m->key = key;
    m->key_len = KEY_LEN;
    m->hierarchy_version = item_is_hv2(item) ? 2 : 1;
    m->branch_key_id = strdup(ks_item_get_s(item, KS_ATTR_BRANCH_KEY_ID));
    m->kms_arn = strdup(ks_item_get_s(item, KS_ATTR_KMS_ARN));
    if (!m->branch_key_id || !m->kms_arn)
        goto oom;
    if (kind != ITEM_BEACON) {
        /* The bare UUID: version (ACTIVE) or type (version item) without its prefix. */
        vfield = ks_item_get_s(item, kind == ITEM_ACTIVE ? KS_ATTR_VERSION : KS_ATTR_TYPE);
        if (!(m->version = strdup(vfield + strlen(KS_TYPE_VERSION_PREFIX))))
            goto oom;
    }
    /* Every aws-crypto-ec: attribute, prefix stripped (the MPL; JS keeps the prefix). */
    for (i = 0; i < item->count; i++) {
        const struct ks_attr *a = &item->attrs[i];
        if (starts_with(a->name, KS_EC_PREFIX) &&
            ks_ec_set(&m->encryption_context, a->name + strlen(KS_EC_PREFIX),
                      (const char *)a->value) != 0)
            goto oom;
    }
    *out = m;
    return KS_OK;
oom:
    ks_materials_free(m);
    return ks_error_set(err, KS_E_INTERNAL, "out of memory");
}

/* Section 6: the stored kms-arn does not agree with the relationship's KMS configuration. */
static ks_status arn_mismatch(enum item_kind kind, struct ks_error *err)
{
    return ks_error_set(err, KS_E_INVALID, "%s",
                        kind == ITEM_ACTIVE
                            ? "Branch key's KMS Key ARN read from Dynamodb does not match Key "
                              "Store's configured KMS Key ARN."
                            : "AWS KMS Key ARN does not match configured value");
}

/* One read of storage + one KMS Decrypt: the fetch behind the cache (section 6). */
static ks_status fetch_key(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                           const char *id, const char *version, enum item_kind kind,
                           struct ks_materials **out, struct ks_error *err)
{
    char expected_type[KS_BRANCH_KEY_ID_MAX + 64], key_id[KS_ARN_MAX_BYTES + 1];
    struct ks_item item;
    struct ks_ec ec;
    struct ks_kms_result r;
    struct ks_kms_call call = rel_call(rel);
    struct ks_arn parsed;
    const struct ks_attr *enc;
    const char *stored_arn;
    ks_status st;

    /* id and version were checked by get_key (versions are UUIDs by construction; anything
     * else cannot name an item we wrote). */
    if (kind == ITEM_VERSION) {
        version_type(version, expected_type);
    } else {
        memcpy(expected_type, kind == ITEM_ACTIVE ? KS_TYPE_ACTIVE : KS_TYPE_BEACON,
               sizeof KS_TYPE_ACTIVE);
    }

    ks_item_init(&item);
    ks_ec_init(&ec);
    ks_kms_result_init(&r);
    atomic_fetch_add_explicit(&ks->storage_reads, 1, memory_order_relaxed);
    if (kind == ITEM_ACTIVE)
        st = ks->storage->ops->get_active(ks->storage, id, &item, err);
    else if (kind == ITEM_VERSION)
        st = ks->storage->ops->get_version(ks->storage, id, version, &item, err);
    else
        st = ks->storage->ops->get_beacon(ks->storage, id, &item, err);
    count_storage(ks, (enum ks_keystore_storage_op)kind, st); /* item_kind is in op order */
    if (st != KS_OK) {
        not_found(st, err);
        goto out;
    }
    if ((st = validate_item(&item, kind, id, expected_type, err)) != KS_OK)
        goto out;
    stored_arn = ks_item_get_s(&item, KS_ATTR_KMS_ARN);
    if (ks_arn_parse(stored_arn, &parsed) != KS_ARN_OK) {
        st = ks_error_set(err, KS_E_CORRUPT,
                          "The `kms-arn` field for the requested branch key identifier is "
                          "corrupted.");
        goto out;
    }
    if (!rel_accepts_arn(rel, stored_arn)) {
        st = arn_mismatch(kind, err);
        goto out;
    }
    if (rel_decrypt_key_id(rel, stored_arn, key_id, sizeof key_id) != 0) {
        st = ks_error_set(err, KS_E_CORRUPT,
                          "The `kms-arn` field for the requested branch key identifier is "
                          "corrupted.");
        goto out;
    }
    if ((st = item_to_ec(ks, &item, &ec, err)) != KS_OK)
        goto out;
    enc = ks_item_get(&item, KS_ATTR_ENC);
    if (item_is_hv2(&item)) {
        /* hv2.md section 7: strict model, Decrypt, 80 bytes, digest. */
        if (!(r.plaintext = ks_secret_alloc(KEY_LEN))) {
            st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
            goto out;
        }
        r.plaintext_len = KEY_LEN;
        st = ks_hv2_unwrap(rel, key_id, enc->value, enc->len, &ec, r.plaintext, err);
    } else {
        st = counted(
            rel, KS_KMS_OP_DECRYPT,
            rel->kms->ops->decrypt(rel->kms, &call, key_id, enc->value, enc->len, &ec, &r, err));
    }
    if (st != KS_OK)
        goto out;
    if (!r.plaintext || r.plaintext_len != KEY_LEN) {
        st = ks_error_set(err, KS_E_KMS,
                          "Invalid response from AWS KMS Decrypt: Key is not 32 bytes.");
        goto out;
    }
    st = materials_from(&item, kind, r.plaintext, out, err);
    r.plaintext = NULL; /* ownership moved (or wiped on failure) */
    r.plaintext_len = 0;
out:
    ks_item_free(&item);
    ks_ec_free(&ec);
    ks_kms_result_free(&r);
    return st;
}

struct fetch_args {
    struct ks_keystore *ks;
    const struct ks_kms_relationship *rel;
    const char *id;
    const char *version;
    enum item_kind kind;
};

static ks_status fetch_for_cache(void *ctx, struct ks_materials **out, struct ks_error *err)
{
    const struct fetch_args *a = ctx;
    return fetch_key(a->ks, a->rel, a->id, a->version, a->kind, out, err);
}

static ks_status get_key(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                         const struct ks_reader *reader, const char *id, const char *version,
                         enum item_kind kind, struct ks_key_ref **out, struct ks_error *err)
{
    struct ks_key_ref *ref;
    ks_status st;

    /* Refuse bad input before the cache: it would only be refused again by the fetch. */
    if ((st = ks_keystore_check_branch_key_id(id, strlen(id), err)) != KS_OK)
        return st;
    if (kind == ITEM_VERSION && !ks_uuid_is_valid(version))
        return ks_error_set(err, KS_E_INVALID, "branchKeyVersion: must be a lowercase UUID string");
    if (!(ref = calloc(1, sizeof *ref)))
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    if (ks->cache && reader) {
        /* docs/reference/cache.md section 1: the MPL's identifier over (scope, partition, logical
         * key store name, branch key id[, version]). */
        struct fetch_args args = {ks, rel, id, version, kind};
        struct ks_cache_key key = {
            kind == ITEM_ACTIVE    ? KS_CACHE_ACTIVE
            : kind == ITEM_VERSION ? KS_CACHE_VERSION
                                   : KS_CACHE_BEACON,
            reader->partition,
            reader->partition_len,
            ks->logical_key_store_name,
            strlen(ks->logical_key_store_name),
            id,
            strlen(id),
            kind == ITEM_VERSION ? version : NULL,
        };
        st = ks_cache_get(ks->cache, &key, fetch_for_cache, &args, &ref->cache_ref, err);
        /* The identifier does not name the KMS relationship (docs/reference/cache.md section 1), so
         * an entry may have been fetched through another one: apply this relationship's
         * section 7 check, as the fetch would have. */
        if (st == KS_OK && !rel_accepts_arn(rel, ks_cache_ref_materials(ref->cache_ref)->kms_arn)) {
            ks_cache_release(ref->cache_ref);
            st = arn_mismatch(kind, err);
        }
    } else {
        st = fetch_key(ks, rel, id, version, kind, &ref->owned, err);
    }
    if (st != KS_OK) {
        free(ref);
        return st;
    }
    *out = ref;
    return KS_OK;
}

const struct ks_materials *ks_key_ref_materials(const struct ks_key_ref *ref)
{
    return ref->cache_ref ? ks_cache_ref_materials(ref->cache_ref) : ref->owned;
}

void ks_key_ref_release(struct ks_key_ref *ref)
{
    if (!ref)
        return;
    if (ref->cache_ref)
        ks_cache_release(ref->cache_ref);
    ks_materials_free(ref->owned);
    free(ref);
}

unsigned long long ks_keystore_storage_reads(const struct ks_keystore *ks)
{
    return atomic_load_explicit(&ks->storage_reads, memory_order_relaxed);
}

ks_status ks_keystore_get_active(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                                 const struct ks_reader *reader, const char *branch_key_id,
                                 struct ks_key_ref **out, struct ks_error *err)
{
    return get_key(ks, rel, reader, branch_key_id, NULL, ITEM_ACTIVE, out, err);
}

ks_status ks_keystore_get_version(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                                  const struct ks_reader *reader, const char *branch_key_id,
                                  const char *version, struct ks_key_ref **out,
                                  struct ks_error *err)
{
    return get_key(ks, rel, reader, branch_key_id, version, ITEM_VERSION, out, err);
}

ks_status ks_keystore_get_beacon(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                                 const struct ks_reader *reader, const char *branch_key_id,
                                 struct ks_key_ref **out, struct ks_error *err)
{
    return get_key(ks, rel, reader, branch_key_id, NULL, ITEM_BEACON, out, err);
}

/* --- hooks for keystore/mutation*.c (mutation_internal.h) -------------------------------- */

struct ks_storage *ks_mut_storage(struct ks_keystore *ks)
{
    return ks->storage;
}

const char *ks_mut_logical_name(const struct ks_keystore *ks)
{
    return ks->logical_key_store_name;
}

const struct ks_clock *ks_mut_clock(const struct ks_keystore *ks)
{
    return ks->clock;
}

void ks_mut_invalidate(struct ks_keystore *ks, const char *branch_key_id)
{
    if (ks->cache)
        ks_cache_invalidate_branch_key(ks->cache, ks->logical_key_store_name, branch_key_id);
}

ks_status ks_mut_item_ec(const struct ks_keystore *ks, const struct ks_item *item, struct ks_ec *ec,
                         struct ks_error *err)
{
    return item_to_ec(ks, item, ec, err);
}

ks_status ks_mut_ec_item(const struct ks_ec *ec, const struct ks_bytes *enc, struct ks_item *item,
                         struct ks_error *err)
{
    return ec_to_item(ec, enc, item, err);
}

ks_status ks_mut_check_item(const struct ks_item *item, int kind, const char *id,
                            const char *expected_type, struct ks_error *err)
{
    return validate_item(item, (enum item_kind)kind, id, expected_type, err);
}

ks_status ks_mut_check_custom_ec(const struct ks_ec *ec, struct ks_error *err)
{
    return check_custom_ec(ec, err);
}

ks_status ks_mut_counted(const struct ks_kms_relationship *rel, enum ks_kms_op op, ks_status st)
{
    return counted(rel, op, st);
}
