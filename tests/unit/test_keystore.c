/*
 * test_keystore.c - the HV-1 branch key store (keystore/keystore.h) against the MPL's rules
 * (docs/reference/branch-key-store.md): CreateKey's checks and the exact items it writes (section
 * 2, 4), the KMS encryption contexts rebuilt by hand from section 3 (the byte-compatibility check),
 * VersionKey with the optimistic lock (section 5, 9), the gets and their item validation
 * (section 3, 6), and the KMS configuration rules (section 7).
 *
 * Every test runs on the memory storage and a local KMS whose key file lives in a temporary
 * directory. Where a KMS must misbehave or be an AWS KMS with MRKs, a fake struct ks_kms wraps
 * the local one.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ec.h"
#include "common/secret.h"
#include "common/util.h"
#include "aws/arn.h"
#include "keystore/hv2.h"
#include "keystore/keystore.h"
#include "keystore/testing.h"
#include "kms/kms.h"
#include "storage/storage.h"

#define LOGICAL "logical-ks" /* bound into the KMS EC as tablename */
#define KS_NAME "ks-name"    /* the configured name: must NOT be what is bound */
#define T0 1700000000123456ull
#define T0_TEXT "2023-11-14T22:13:20.123456Z"
#define T1 1700000005000001ull
#define T1_TEXT "2023-11-14T22:13:25.000001Z"
#define ARN2 "arn:aws:kms:local:000000000000:key/22222222-2222-4222-8222-222222222222"
#define MRK_E1 "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
#define MRK_W2 "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
#define MRK_EU1 "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
#define MRK_OTHER_ACCOUNT                                                                          \
    "arn:aws:kms:us-west-2:444455556666:key/mrk-1234abcd12ab34cd56ef1234567890ab"
#define PLAIN_E1 "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
#define PLAIN_W2 "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
#define MSG_NOT_FOUND "No item found for corresponding branch key identifier."
#define MSG_ACTIVE_ARN                                                                             \
    "Branch key's KMS Key ARN read from Dynamodb does not match Key Store's configured KMS Key "   \
    "ARN."
#define MSG_OTHER_ARN "AWS KMS Key ARN does not match configured value"
#define MSG_BAD_ARN "The `kms-arn` field for the requested branch key identifier is corrupted."
#define KEY_LEN 32

/* --- fixture ----------------------------------------------------------------------------- */

struct fixture {
    char dir[64];
    char key_file[128];
    struct ks_kms *local;
    char arn[128]; /* the key file's default key */
    uint64_t now;
    struct ks_clock clock;
    struct ks_keystore *ks;
    struct ks_kms_relationship rel; /* strict kms_key_arn = arn, local KMS */
};

static struct fixture F;

static uint64_t fixed_now(void *ctx)
{
    return *(const uint64_t *)ctx;
}

static struct ks_keystore *new_keystore(struct ks_storage *s)
{
    struct ks_keystore_params p = {KS_NAME, LOGICAL, NULL, s, &F.clock, NULL};
    struct ks_keystore *ks = NULL;
    struct ks_error err;
    cr_assert_eq(ks_keystore_create(&p, &ks, &err), KS_OK, "%s", err.message);
    return ks;
}

static struct ks_keystore *new_memory_keystore(void)
{
    struct ks_storage *s = NULL;
    struct ks_error err;
    cr_assert_eq(ks_storage_memory_create(&s, &err), KS_OK, "%s", err.message);
    return new_keystore(s);
}

static struct ks_kms_relationship relationship(struct ks_kms *kms, enum ks_kms_config_kind kind,
                                               const char *arn, const char *region)
{
    struct ks_kms_relationship r = {"rel", kms, kind, arn, region, NULL, 0, NULL};
    return r;
}

static void setup(void)
{
    static const char *const ensure[] = {ARN2};
    struct ks_error err;

    memset(&F, 0, sizeof F);
    memcpy(F.dir, "/tmp/ks-test-keystore-XXXXXX", sizeof "/tmp/ks-test-keystore-XXXXXX");
    cr_assert_not_null(mkdtemp(F.dir));
    snprintf(F.key_file, sizeof F.key_file, "%s/local.keys", F.dir);
    cr_assert_eq(ks_kms_local_open(F.key_file, ensure, 1, KS_KMS_LOCAL_MAY_CREATE, &F.local, &err),
                 KS_OK, "%s", err.message);
    cr_assert_eq(ks_kms_local_default_arn(F.local, F.arn, sizeof F.arn), KS_OK);
    cr_assert_str_neq(F.arn, ARN2);
    F.now = T0;
    F.clock.now_us = fixed_now;
    F.clock.ctx = &F.now;
    F.ks = new_memory_keystore();
    F.rel = relationship(F.local, KS_KMS_KEY_ARN, F.arn, NULL);
}

static void teardown(void)
{
    ks_keystore_destroy(F.ks);
    ks_kms_destroy(F.local);
    unlink(F.key_file);
    rmdir(F.dir);
}

TestSuite(keystore, .init = setup, .fini = teardown);

/* --- fake KMS: wraps another KMS to misbehave or to stand in for AWS KMS ----------------- */

struct fake_kms;
typedef void (*fake_hook)(struct fake_kms *f);

struct fake_kms {
    struct ks_kms base; /* first */
    struct ks_kms *inner;
    /* translate: every key id is served by the inner KMS's default key, and the response
     * echoes the key ids of the request, as AWS KMS would for the ARNs asked for. */
    int translate;
    const char *inner_arn;
    int refuse_gdk, refuse_decrypt, refuse_re_encrypt;
    int gdk_without_key_id;
    int re_encrypt_wrong_key_id, re_encrypt_wrong_source_key_id, re_encrypt_without_key_id;
    int decrypt_len;      /* > 0: the plaintext is cut or padded to this; < 0: no plaintext */
    fake_hook before_gdk; /* called once (cleared first) before the next GDKWP */
    void *hook_ctx;
    int n_gdk, n_decrypt, n_re_encrypt;
    char last_decrypt_key_id[KS_ARN_MAX_BYTES + 1];
    char last_gdk_key_id[KS_ARN_MAX_BYTES + 1];
    char first_gdk_type[128]; /* the `type` of the first GDKWP's EC */
    char last_re_encrypt_dst[KS_ARN_MAX_BYTES + 1];
};

static struct fake_kms *fake_of(struct ks_kms *k)
{
    return (struct fake_kms *)k;
}

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "(null)");
}

static int replace_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? strdup(src) : NULL;
    return src && !*dst ? -1 : 0;
}

static ks_status refuse(struct ks_error *err)
{
    return ks_error_set(err, KS_E_KMS, "AccessDeniedException: fake KMS refused the call");
}

static ks_status fake_gdk_common(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                                 size_t n, const struct ks_ec *ec, int with_plaintext,
                                 struct ks_kms_result *out, struct ks_error *err)
{
    struct fake_kms *f = fake_of(k);
    const char *use = f->translate ? f->inner_arn : key_id;
    ks_status st;

    if (f->before_gdk) {
        fake_hook h = f->before_gdk;
        f->before_gdk = NULL;
        h(f);
    }
    if (f->n_gdk++ == 0 && ec && ks_ec_get(ec, "type"))
        copy_str(f->first_gdk_type, sizeof f->first_gdk_type, ks_ec_get(ec, "type"));
    copy_str(f->last_gdk_key_id, sizeof f->last_gdk_key_id, key_id);
    if (f->refuse_gdk)
        return refuse(err);
    st = with_plaintext ? f->inner->ops->generate_data_key(f->inner, c, use, n, ec, out, err)
                        : f->inner->ops->generate_data_key_without_plaintext(f->inner, c, use, n,
                                                                             ec, out, err);
    if (st == KS_OK && f->translate && replace_str(&out->key_id, key_id) != 0)
        return ks_error_set(err, KS_E_INTERNAL, "oom");
    if (st == KS_OK && f->gdk_without_key_id)
        replace_str(&out->key_id, NULL);
    return st;
}

static ks_status fake_gdkwp(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                            size_t n, const struct ks_ec *ec, struct ks_kms_result *out,
                            struct ks_error *err)
{
    return fake_gdk_common(k, c, key_id, n, ec, 0, out, err);
}

static ks_status fake_gdk(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                          size_t n, const struct ks_ec *ec, struct ks_kms_result *out,
                          struct ks_error *err)
{
    return fake_gdk_common(k, c, key_id, n, ec, 1, out, err);
}

static ks_status fake_encrypt(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                              const unsigned char *pt, size_t pt_len, const struct ks_ec *ec,
                              struct ks_kms_result *out, struct ks_error *err)
{
    struct fake_kms *f = fake_of(k);
    return f->inner->ops->encrypt(f->inner, c, f->translate ? f->inner_arn : key_id, pt, pt_len, ec,
                                  out, err);
}

static ks_status fake_decrypt(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                              const unsigned char *ct, size_t ct_len, const struct ks_ec *ec,
                              struct ks_kms_result *out, struct ks_error *err)
{
    struct fake_kms *f = fake_of(k);
    ks_status st;

    f->n_decrypt++;
    copy_str(f->last_decrypt_key_id, sizeof f->last_decrypt_key_id, key_id);
    if (f->refuse_decrypt)
        return refuse(err);
    st =
        f->inner->ops->decrypt(f->inner, c, f->translate ? NULL : key_id, ct, ct_len, ec, out, err);
    if (st != KS_OK)
        return st;
    if (f->translate && replace_str(&out->key_id, key_id) != 0)
        return ks_error_set(err, KS_E_INTERNAL, "oom");
    if (f->decrypt_len != 0) {
        size_t len = f->decrypt_len > 0 ? (size_t)f->decrypt_len : 0;
        unsigned char *p = NULL;
        if (f->decrypt_len > 0) {
            p = ks_secret_alloc(len);
            cr_assert_not_null(p);
            memcpy(p, out->plaintext, len < out->plaintext_len ? len : out->plaintext_len);
        }
        ks_secret_free(out->plaintext, out->plaintext_len);
        out->plaintext = p;
        out->plaintext_len = len;
    }
    return st;
}

#define WRONG_ARN "arn:aws:kms:local:000000000000:key/99999999-9999-4999-8999-999999999999"

static ks_status fake_re_encrypt(struct ks_kms *k, const struct ks_kms_call *c,
                                 const unsigned char *ct, size_t ct_len,
                                 const struct ks_ec *source_ec, const char *source_key_id,
                                 const char *destination_key_id, const struct ks_ec *destination_ec,
                                 struct ks_kms_result *out, struct ks_error *err)
{
    struct fake_kms *f = fake_of(k);
    ks_status st;

    f->n_re_encrypt++;
    copy_str(f->last_re_encrypt_dst, sizeof f->last_re_encrypt_dst, destination_key_id);
    if (f->refuse_re_encrypt)
        return refuse(err);
    st = f->inner->ops->re_encrypt(
        f->inner, c, ct, ct_len, source_ec, f->translate ? NULL : source_key_id,
        f->translate ? f->inner_arn : destination_key_id, destination_ec, out, err);
    if (st != KS_OK)
        return st;
    if (f->translate && (replace_str(&out->key_id, destination_key_id) != 0 ||
                         replace_str(&out->source_key_id, source_key_id) != 0))
        return ks_error_set(err, KS_E_INTERNAL, "oom");
    if (f->re_encrypt_wrong_key_id)
        replace_str(&out->key_id, WRONG_ARN);
    if (f->re_encrypt_wrong_source_key_id)
        replace_str(&out->source_key_id, WRONG_ARN);
    if (f->re_encrypt_without_key_id)
        replace_str(&out->key_id, NULL);
    return st;
}

static ks_status fake_ping(struct ks_kms *k, struct ks_error *err)
{
    struct fake_kms *f = fake_of(k);
    return f->inner->ops->ping(f->inner, err);
}

static void fake_destroy(struct ks_kms *k)
{
    (void)k; /* fakes live on the test's stack */
}

static const struct ks_kms_ops fake_ops = {
    .version = KS_KMS_OPS_VERSION,
    .name = "fake",
    .generate_data_key_without_plaintext = fake_gdkwp,
    .generate_data_key = fake_gdk,
    .encrypt = fake_encrypt,
    .decrypt = fake_decrypt,
    .re_encrypt = fake_re_encrypt,
    .ping = fake_ping,
    .destroy = fake_destroy,
};

static void fake_init(struct fake_kms *f, int translate)
{
    memset(f, 0, sizeof *f);
    f->base.ops = &fake_ops;
    f->inner = F.local;
    f->translate = translate;
    f->inner_arn = F.arn;
}

/* --- helpers ----------------------------------------------------------------------------- */

enum kind { ACTIVE, VERSION, BEACON };

/* A copy of a reference's materials that the test owns (ks_materials_free), ref released. */
static struct ks_materials *take(struct ks_key_ref *ref)
{
    const struct ks_materials *src = ks_key_ref_materials(ref);
    struct ks_materials *m = calloc(1, sizeof *m);
    cr_assert_not_null(m);
    ks_ec_init(&m->encryption_context);
    m->branch_key_id = strdup(src->branch_key_id);
    m->version = src->version ? strdup(src->version) : NULL;
    cr_assert_eq(ks_ec_copy(&m->encryption_context, &src->encryption_context), 0);
    m->key = ks_secret_dup(src->key, src->key_len);
    m->key_len = src->key_len;
    m->hierarchy_version = src->hierarchy_version;
    ks_key_ref_release(ref);
    return m;
}

/* Gets without a reader: these tests exercise storage + KMS on every call (no cache). */
static ks_status get_any(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                         enum kind kind, const char *id, const char *version,
                         struct ks_materials **m, struct ks_error *err)
{
    struct ks_key_ref *ref = NULL;
    ks_status st = KS_E_INTERNAL;
    *m = NULL;
    ks_error_clear(err);
    switch (kind) {
    case ACTIVE:
        st = ks_keystore_get_active(ks, rel, NULL, id, &ref, err);
        break;
    case VERSION:
        st = ks_keystore_get_version(ks, rel, NULL, id, version, &ref, err);
        break;
    case BEACON:
        st = ks_keystore_get_beacon(ks, rel, NULL, id, &ref, err);
        break;
    }
    if (st == KS_OK)
        *m = take(ref);
    return st;
}

static struct ks_materials *get_ok(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                                   enum kind kind, const char *id, const char *version)
{
    struct ks_materials *m = NULL;
    struct ks_error err;
    ks_status st = get_any(ks, rel, kind, id, version, &m, &err);
    cr_assert_eq(st, KS_OK, "get %d %s: %s", (int)kind, id, err.message);
    cr_assert_not_null(m);
    cr_assert_eq(m->key_len, KEY_LEN);
    return m;
}

/* Asserts the get fails with st (and message when non-NULL); returns nothing allocated. */
static void get_fails(struct ks_keystore *ks, const struct ks_kms_relationship *rel, enum kind kind,
                      const char *id, const char *version, ks_status expected, const char *message)
{
    struct ks_materials *m = NULL;
    struct ks_error err;
    ks_status st = get_any(ks, rel, kind, id, version, &m, &err);
    cr_expect_eq(st, expected, "get %d %s: expected %d, got %d (%s)", (int)kind, id, (int)expected,
                 (int)st, err.message);
    if (st != KS_OK) {
        cr_expect_eq(err.code, st);
        if (message)
            cr_expect_not_null(strstr(err.message, message), "message '%s' lacks '%s'", err.message,
                               message);
    }
    ks_materials_free(m);
}

static void custom_ec(struct ks_ec *ec)
{
    ks_ec_init(ec);
    cr_assert_eq(ks_ec_set(ec, "department", "eng"), 0);
    cr_assert_eq(ks_ec_set(ec, "purpose", "test \xc3\xa9"), 0);
}

static char *create_ok(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                       const char *id, const struct ks_ec *ec)
{
    char *out = NULL;
    struct ks_error err;
    ks_status st = ks_keystore_create_key(ks, rel, id, ec, &out, &err);
    cr_assert_eq(st, KS_OK, "create: %s", err.message);
    cr_assert_not_null(out);
    return out;
}

/* Creates branch key "bk" with custom_ec() on F.ks; returns its version. */
static char *create_bk(void)
{
    struct ks_ec ec;
    struct ks_materials *m;
    char *id, *v;
    custom_ec(&ec);
    id = create_ok(F.ks, &F.rel, "bk", &ec);
    cr_assert_str_eq(id, "bk");
    free(id);
    ks_ec_free(&ec);
    m = get_ok(F.ks, &F.rel, ACTIVE, "bk", NULL);
    v = strdup(m->version);
    ks_materials_free(m);
    return v;
}

static void read_item(struct ks_keystore *ks, enum kind kind, const char *id, const char *version,
                      struct ks_item *out)
{
    struct ks_storage *s = ks_keystore_storage(ks);
    struct ks_error err;
    ks_status st = kind == ACTIVE    ? s->ops->get_active(s, id, out, &err)
                   : kind == VERSION ? s->ops->get_version(s, id, version, out, &err)
                                     : s->ops->get_beacon(s, id, out, &err);
    cr_assert_eq(st, KS_OK, "read item: %s", err.message);
}

/* A new keystore (same logical name) whose memory storage holds exactly these three items. */
static struct ks_keystore *reload(const struct ks_item *active, const struct ks_item *version,
                                  const struct ks_item *beacon)
{
    struct ks_storage *s = NULL;
    struct ks_error err;
    cr_assert_eq(ks_storage_memory_create(&s, &err), KS_OK);
    cr_assert_eq(s->ops->write_new_branch_key(s, active, version, beacon, &err), KS_OK, "%s",
                 err.message);
    return new_keystore(s);
}

static void expect_attr(const struct ks_item *item, const char *name, enum ks_attr_type type,
                        const char *value)
{
    const struct ks_attr *a = ks_item_get(item, name);
    cr_assert_not_null(a, "attribute %s missing", name);
    cr_expect_eq(a->type, type, "attribute %s has type %c", name, (char)a->type);
    if (value)
        cr_expect_str_eq((const char *)a->value, value, "attribute %s", name);
}

/* The KMS EC of an item, built by hand from reference section 3. */
static void hand_ec(struct ks_ec *ec, const char *id, const char *type, const char *version,
                    const char *create_time, const char *arn, const char *tablename,
                    const struct ks_ec *custom)
{
    size_t i;
    ks_ec_init(ec);
    cr_assert_eq(ks_ec_set(ec, "branch-key-id", id), 0);
    cr_assert_eq(ks_ec_set(ec, "type", type), 0);
    cr_assert_eq(ks_ec_set(ec, "create-time", create_time), 0);
    cr_assert_eq(ks_ec_set(ec, "kms-arn", arn), 0);
    cr_assert_eq(ks_ec_set(ec, "hierarchy-version", "1"), 0);
    cr_assert_eq(ks_ec_set(ec, "tablename", tablename), 0);
    if (version)
        cr_assert_eq(ks_ec_set(ec, "version", version), 0);
    for (i = 0; custom && i < custom->count; i++) {
        char k[256];
        snprintf(k, sizeof k, "aws-crypto-ec:%s", custom->entries[i].key);
        cr_assert_eq(ks_ec_set(ec, k, custom->entries[i].value), 0);
    }
}

/* Decrypts enc with the local KMS under ec; returns the status, *key (32 bytes) on success. */
static ks_status local_decrypt(const struct ks_attr *enc, const char *arn, const struct ks_ec *ec,
                               unsigned char key[KEY_LEN])
{
    struct ks_kms_call call = {NULL, 0};
    struct ks_kms_result r;
    struct ks_error err;
    ks_status st;
    ks_kms_result_init(&r);
    st = F.local->ops->decrypt(F.local, &call, arn, enc->value, enc->len, ec, &r, &err);
    if (st == KS_OK) {
        cr_assert_eq(r.plaintext_len, KEY_LEN);
        memcpy(key, r.plaintext, KEY_LEN);
    }
    ks_kms_result_free(&r);
    return st;
}

static void version_type(const char *v, char *out, size_t size)
{
    snprintf(out, size, "branch:version:%s", v);
}

static int is_uuid_v4(const char *s)
{
    return s && ks_uuid_is_valid(s) && s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

/* --- CreateKey ----------------------------------------------------------------------------- */

Test(keystore, create_generated_id_is_uuid_v4)
{
    char *id = create_ok(F.ks, &F.rel, NULL, NULL), *id2;
    struct ks_materials *m;
    cr_expect(is_uuid_v4(id), "%s", id);
    m = get_ok(F.ks, &F.rel, ACTIVE, id, NULL);
    cr_expect_str_eq(m->branch_key_id, id);
    cr_expect(is_uuid_v4(m->version), "%s", m->version);
    cr_expect_eq(m->encryption_context.count, 0);
    cr_expect_eq(m->hierarchy_version, 1);
    ks_materials_free(m);
    id2 = create_ok(F.ks, &F.rel, NULL, NULL);
    cr_expect_str_neq(id, id2);
    free(id);
    free(id2);
}

Test(keystore, create_writes_exactly_the_mpl_items)
{
    struct ks_ec ec;
    struct ks_item active, version, beacon;
    struct ks_materials *m;
    char vtype[64], *v;
    size_t i;

    v = create_bk();
    cr_expect(is_uuid_v4(v), "%s", v);
    version_type(v, vtype, sizeof vtype);
    read_item(F.ks, ACTIVE, "bk", NULL, &active);
    read_item(F.ks, VERSION, "bk", v, &version);
    read_item(F.ks, BEACON, "bk", NULL, &beacon);

    /* section 2: 6 common attributes + 2 custom; ACTIVE also has version. */
    cr_expect_eq(version.count, 8);
    cr_expect_eq(active.count, 9);
    cr_expect_eq(beacon.count, 8);
    expect_attr(&version, "type", KS_ATTR_S, vtype);
    expect_attr(&active, "type", KS_ATTR_S, "branch:ACTIVE");
    expect_attr(&active, "version", KS_ATTR_S, vtype);
    expect_attr(&beacon, "type", KS_ATTR_S, "beacon:ACTIVE");
    cr_expect_null(ks_item_get(&version, "version"));
    cr_expect_null(ks_item_get(&beacon, "version"));
    {
        const struct ks_item *all[3] = {&active, &version, &beacon};
        for (i = 0; i < 3; i++) {
            expect_attr(all[i], "branch-key-id", KS_ATTR_S, "bk");
            expect_attr(all[i], "kms-arn", KS_ATTR_S, F.arn);
            expect_attr(all[i], "create-time", KS_ATTR_S, T0_TEXT);
            expect_attr(all[i], "hierarchy-version", KS_ATTR_N, "1");
            expect_attr(all[i], "enc", KS_ATTR_B, NULL);
            expect_attr(all[i], "aws-crypto-ec:department", KS_ATTR_S, "eng");
            expect_attr(all[i], "aws-crypto-ec:purpose", KS_ATTR_S, "test \xc3\xa9");
            cr_expect_null(ks_item_get(all[i], "tablename"), "tablename is never stored");
            cr_expect_null(ks_item_get(all[i], "department"), "custom keys are prefixed");
        }
    }

    /* The materials: bare uuid, prefix stripped from the custom EC (section 6). */
    custom_ec(&ec);
    m = get_ok(F.ks, &F.rel, ACTIVE, "bk", NULL);
    cr_expect_str_eq(m->version, v);
    cr_expect(ks_ec_equal(&m->encryption_context, &ec));
    ks_materials_free(m);
    m = get_ok(F.ks, &F.rel, BEACON, "bk", NULL);
    cr_expect_null(m->version);
    cr_expect(ks_ec_equal(&m->encryption_context, &ec));
    ks_materials_free(m);
    ks_ec_free(&ec);
    ks_item_free(&active);
    ks_item_free(&version);
    ks_item_free(&beacon);
    free(v);
}

/*
 * The byte-compatibility check: each item's enc decrypts with the local KMS under the EC built
 * by hand from section 3 (tablename = the LOGICAL name), and under nothing else.
 */
Test(keystore, create_binds_the_mpl_encryption_context)
{
    struct ks_ec custom, ec;
    struct ks_item active, version, beacon;
    unsigned char k_active[KEY_LEN], k_version[KEY_LEN], k_beacon[KEY_LEN], k_other[KEY_LEN];
    struct ks_materials *m;
    char vtype[64], *v;

    v = create_bk();
    custom_ec(&custom);
    version_type(v, vtype, sizeof vtype);
    read_item(F.ks, ACTIVE, "bk", NULL, &active);
    read_item(F.ks, VERSION, "bk", v, &version);
    read_item(F.ks, BEACON, "bk", NULL, &beacon);

    hand_ec(&ec, "bk", "branch:ACTIVE", vtype, T0_TEXT, F.arn, LOGICAL, &custom);
    cr_expect_eq(local_decrypt(ks_item_get(&active, "enc"), F.arn, &ec, k_active), KS_OK);
    ks_ec_free(&ec);
    hand_ec(&ec, "bk", vtype, NULL, T0_TEXT, F.arn, LOGICAL, &custom);
    cr_expect_eq(local_decrypt(ks_item_get(&version, "enc"), F.arn, &ec, k_version), KS_OK);
    ks_ec_free(&ec);
    hand_ec(&ec, "bk", "beacon:ACTIVE", NULL, T0_TEXT, F.arn, LOGICAL, &custom);
    cr_expect_eq(local_decrypt(ks_item_get(&beacon, "enc"), F.arn, &ec, k_beacon), KS_OK);
    ks_ec_free(&ec);

    /* ACTIVE and its version hold one key; the beacon key differs (section 2). */
    cr_expect_eq(memcmp(k_active, k_version, KEY_LEN), 0);
    cr_expect_neq(memcmp(k_active, k_beacon, KEY_LEN), 0);
    m = get_ok(F.ks, &F.rel, ACTIVE, "bk", NULL);
    cr_expect_eq(memcmp(m->key, k_active, KEY_LEN), 0);
    ks_materials_free(m);
    m = get_ok(F.ks, &F.rel, BEACON, "bk", NULL);
    cr_expect_eq(memcmp(m->key, k_beacon, KEY_LEN), 0);
    ks_materials_free(m);

    /* tablename is the logical name, not the configured name; and it is required. */
    hand_ec(&ec, "bk", "branch:ACTIVE", vtype, T0_TEXT, F.arn, KS_NAME, &custom);
    cr_expect_neq(local_decrypt(ks_item_get(&active, "enc"), F.arn, &ec, k_other), KS_OK);
    ks_ec_remove(&ec, "tablename");
    cr_expect_neq(local_decrypt(ks_item_get(&active, "enc"), F.arn, &ec, k_other), KS_OK);
    ks_ec_free(&ec);
    /* The version item's EC has no version attribute; custom keys stay prefixed. */
    hand_ec(&ec, "bk", vtype, vtype, T0_TEXT, F.arn, LOGICAL, &custom);
    cr_expect_neq(local_decrypt(ks_item_get(&version, "enc"), F.arn, &ec, k_other), KS_OK);
    ks_ec_free(&ec);
    hand_ec(&ec, "bk", vtype, NULL, T0_TEXT, F.arn, LOGICAL, NULL);
    cr_assert_eq(ks_ec_set(&ec, "department", "eng"), 0);
    cr_assert_eq(ks_ec_set(&ec, "purpose", "test \xc3\xa9"), 0);
    cr_expect_neq(local_decrypt(ks_item_get(&version, "enc"), F.arn, &ec, k_other), KS_OK);
    ks_ec_free(&ec);

    ks_ec_free(&custom);
    ks_item_free(&active);
    ks_item_free(&version);
    ks_item_free(&beacon);
    free(v);
}

Test(keystore, create_without_custom_ec_has_no_prefixed_attributes)
{
    struct ks_item active;
    char *id = create_ok(F.ks, &F.rel, NULL, NULL);
    read_item(F.ks, ACTIVE, id, NULL, &active);
    cr_expect_eq(active.count, 7);
    ks_item_free(&active);
    free(id);
}

Test(keystore, create_kms_calls_follow_section_4)
{
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    struct ks_ec ec;
    char *id;
    fake_init(&fake, 0);
    rel = relationship(&fake.base, KS_KMS_KEY_ARN, F.arn, NULL);
    custom_ec(&ec);
    id = create_ok(F.ks, &rel, "calls", &ec);
    cr_expect_eq(fake.n_gdk, 2, "GDKWP for the version and the beacon");
    cr_expect_eq(fake.n_re_encrypt, 1, "ReEncrypt for ACTIVE");
    cr_expect_eq(fake.n_decrypt, 0);
    cr_expect_str_eq(fake.last_gdk_key_id, F.arn);
    cr_expect_str_eq(fake.last_re_encrypt_dst, F.arn);
    cr_expect_eq(strncmp(fake.first_gdk_type, "branch:version:", 15), 0,
                 "first GDKWP is the DECRYPT_ONLY key: %s", fake.first_gdk_type);
    free(id);
    ks_ec_free(&ec);
}

Test(keystore, create_custom_id_requires_custom_ec)
{
    struct ks_ec empty;
    struct ks_error err;
    char *out = NULL;
    ks_ec_init(&empty);
    cr_expect_eq(ks_keystore_create_key(F.ks, &F.rel, "custom", NULL, &out, &err), KS_E_INVALID);
    cr_expect_not_null(
        strstr(err.message, "Custom branch key identifier requires custom encryption context."));
    cr_expect_eq(ks_keystore_create_key(F.ks, &F.rel, "custom", &empty, &out, &err), KS_E_INVALID,
                 "an empty EC does not count");
    cr_expect_not_null(
        strstr(err.message, "Custom branch key identifier requires custom encryption context."));
    cr_expect_null(out);
    get_fails(F.ks, &F.rel, ACTIVE, "custom", NULL, KS_E_NOT_FOUND, MSG_NOT_FOUND);
}

Test(keystore, create_empty_custom_id)
{
    struct ks_ec ec;
    struct ks_error err;
    char *out = NULL;
    custom_ec(&ec);
    cr_expect_eq(ks_keystore_create_key(F.ks, &F.rel, "", &ec, &out, &err), KS_E_INVALID);
    cr_expect_not_null(strstr(err.message, "Custom branch key id can not be an empty string."),
                       "%s", err.message);
    /* Check 1 comes before check 3 (section 4). */
    cr_expect_eq(ks_keystore_create_key(F.ks, &F.rel, "", NULL, &out, &err), KS_E_INVALID);
    cr_expect_not_null(
        strstr(err.message, "Custom branch key identifier requires custom encryption context."));
    cr_expect_null(out);
    ks_ec_free(&ec);
}

Test(keystore, create_refused_for_discovery_configs)
{
    struct ks_kms_relationship disc = relationship(F.local, KS_KMS_DISCOVERY, NULL, NULL);
    struct ks_kms_relationship mrd = relationship(F.local, KS_KMS_MR_DISCOVERY, NULL, "local");
    struct ks_ec ec;
    struct ks_error err;
    char *out = NULL;
    custom_ec(&ec);
    cr_expect_eq(ks_keystore_create_key(F.ks, &disc, NULL, NULL, &out, &err), KS_E_INVALID);
    cr_expect_not_null(strstr(err.message, "MUST BE kmsKeyArn or kmsMRKeyArn to Create Branch "
                                           "Keys."),
                       "%s", err.message);
    cr_expect_eq(ks_keystore_create_key(F.ks, &mrd, "x", &ec, &out, &err), KS_E_INVALID);
    cr_expect_not_null(strstr(err.message, "to Create Branch Keys."));
    /* Check 1 before check 2. */
    cr_expect_eq(ks_keystore_create_key(F.ks, &disc, "x", NULL, &out, &err), KS_E_INVALID);
    cr_expect_not_null(strstr(err.message, "requires custom encryption context"));
    cr_expect_null(out);
    ks_ec_free(&ec);
}

Test(keystore, create_refuses_invalid_utf8_ec)
{
    static const char *const bad[] = {"\xff", "\xc0\x80", "\xed\xa0\x80", "ok\xe2\x82"};
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    size_t i;
    fake_init(&fake, 0);
    rel = relationship(&fake.base, KS_KMS_KEY_ARN, F.arn, NULL);
    for (i = 0; i < 2 * (sizeof bad / sizeof bad[0]); i++) {
        struct ks_ec ec;
        struct ks_error err;
        char *out = NULL;
        const char *b = bad[i / 2];
        custom_ec(&ec);
        if (i % 2)
            cr_assert_eq(ks_ec_set(&ec, b, "value"), 0);
        else
            cr_assert_eq(ks_ec_set(&ec, "key", b), 0);
        cr_expect_eq(ks_keystore_create_key(F.ks, &rel, "utf8", &ec, &out, &err), KS_E_INVALID,
                     "case %zu", i);
        cr_expect_not_null(strstr(err.message, "Unable to UTF8 Encode element of Encryption "
                                               "Context."));
        cr_expect_null(out);
        ks_ec_free(&ec);
    }
    cr_expect_eq(fake.n_gdk, 0, "refused before any KMS call");
    get_fails(F.ks, &F.rel, ACTIVE, "utf8", NULL, KS_E_NOT_FOUND, NULL);
}

Test(keystore, create_accepts_reserved_looking_and_empty_ec_entries)
{
    /* section 4.4: no reserved names; an empty key becomes attribute "aws-crypto-ec:". */
    struct ks_ec ec;
    struct ks_item active;
    struct ks_materials *m;
    char *id;
    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, "tablename", "t"), 0);
    cr_assert_eq(ks_ec_set(&ec, "branch-key-id", "other"), 0);
    cr_assert_eq(ks_ec_set(&ec, "", ""), 0);
    cr_assert_eq(ks_ec_set(&ec, "aws-crypto-ec:nested", "n"), 0);
    id = create_ok(F.ks, &F.rel, "reserved", &ec);
    read_item(F.ks, ACTIVE, "reserved", NULL, &active);
    expect_attr(&active, "aws-crypto-ec:tablename", KS_ATTR_S, "t");
    expect_attr(&active, "aws-crypto-ec:branch-key-id", KS_ATTR_S, "other");
    expect_attr(&active, "aws-crypto-ec:", KS_ATTR_S, "");
    expect_attr(&active, "aws-crypto-ec:aws-crypto-ec:nested", KS_ATTR_S, "n");
    expect_attr(&active, "branch-key-id", KS_ATTR_S, "reserved");
    cr_expect_null(ks_item_get(&active, "tablename"));
    m = get_ok(F.ks, &F.rel, ACTIVE, "reserved", NULL);
    cr_expect(ks_ec_equal(&m->encryption_context, &ec));
    ks_materials_free(m);
    ks_item_free(&active);
    ks_ec_free(&ec);
    free(id);
}

Test(keystore, create_ec_key_length_limit)
{
    /* "aws-crypto-ec:" (14) + key <= 65535 chars (section 4.4). */
    struct ks_ec ec;
    struct ks_error err;
    char *key = malloc(65536 - 14 + 1), *out = NULL;
    cr_assert_not_null(key);
    memset(key, 'k', 65535 - 14);
    key[65535 - 14] = '\0';
    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, key, "v"), 0);
    out = create_ok(F.ks, &F.rel, "longkey", &ec);
    free(out);
    out = NULL;
    ks_ec_free(&ec);
    key[65535 - 14] = 'k';
    key[65536 - 14] = '\0';
    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, key, "v"), 0);
    cr_expect_eq(ks_keystore_create_key(F.ks, &F.rel, "longkey2", &ec, &out, &err), KS_E_INVALID);
    cr_expect_null(out);
    ks_ec_free(&ec);
    free(key);
}

Test(keystore, create_duplicate_id_changes_nothing)
{
    struct ks_ec ec2;
    struct ks_error err;
    struct ks_materials *before, *after, *beacon_before, *beacon_after;
    char *v = create_bk(), *out = NULL;
    before = get_ok(F.ks, &F.rel, ACTIVE, "bk", NULL);
    beacon_before = get_ok(F.ks, &F.rel, BEACON, "bk", NULL);
    ks_ec_init(&ec2);
    cr_assert_eq(ks_ec_set(&ec2, "department", "other"), 0);
    F.now = T1;
    cr_expect_eq(ks_keystore_create_key(F.ks, &F.rel, "bk", &ec2, &out, &err), KS_E_ALREADY_EXISTS);
    cr_expect_eq(err.code, KS_E_ALREADY_EXISTS);
    cr_expect_null(out);
    after = get_ok(F.ks, &F.rel, ACTIVE, "bk", NULL);
    beacon_after = get_ok(F.ks, &F.rel, BEACON, "bk", NULL);
    cr_expect_str_eq(after->version, v);
    cr_expect_eq(memcmp(after->key, before->key, KEY_LEN), 0);
    cr_expect(ks_ec_equal(&after->encryption_context, &before->encryption_context));
    cr_expect_eq(memcmp(beacon_after->key, beacon_before->key, KEY_LEN), 0);
    ks_materials_free(before);
    ks_materials_free(after);
    ks_materials_free(beacon_before);
    ks_materials_free(beacon_after);
    ks_ec_free(&ec2);
    free(v);
}

Test(keystore, create_refuses_bad_ids)
{
    struct ks_ec ec;
    struct ks_error err;
    char *out = NULL, *long_id = malloc(KS_BRANCH_KEY_ID_MAX + 2);
    cr_assert_not_null(long_id);
    memset(long_id, 'i', KS_BRANCH_KEY_ID_MAX + 1);
    long_id[KS_BRANCH_KEY_ID_MAX + 1] = '\0';
    custom_ec(&ec);
    cr_expect_eq(ks_keystore_create_key(F.ks, &F.rel, "bad\xff", &ec, &out, &err), KS_E_INVALID);
    cr_expect_eq(ks_keystore_create_key(F.ks, &F.rel, long_id, &ec, &out, &err), KS_E_INVALID);
    long_id[KS_BRANCH_KEY_ID_MAX] = '\0';
    out = create_ok(F.ks, &F.rel, long_id, &ec);
    free(out);
    out = create_ok(F.ks, &F.rel, "id with spaces/and:colons \xe2\x82\xac", &ec);
    free(out);
    ks_ec_free(&ec);
    free(long_id);
}

/* --- KMS misbehaviour on CreateKey ------------------------------------------------------- */

static void create_with_fake_fails(struct fake_kms *fake, const char *id, const char *message)
{
    struct ks_kms_relationship rel = relationship(&fake->base, KS_KMS_KEY_ARN, F.arn, NULL);
    struct ks_ec ec;
    struct ks_error err;
    char *out = NULL;
    custom_ec(&ec);
    cr_expect_eq(ks_keystore_create_key(F.ks, &rel, id, &ec, &out, &err), KS_E_KMS);
    if (message)
        cr_expect_not_null(strstr(err.message, message), "%s", err.message);
    cr_expect_null(out);
    get_fails(F.ks, &F.rel, ACTIVE, id, NULL, KS_E_NOT_FOUND, MSG_NOT_FOUND);
    get_fails(F.ks, &F.rel, BEACON, id, NULL, KS_E_NOT_FOUND, MSG_NOT_FOUND);
    ks_ec_free(&ec);
}

Test(keystore, create_re_encrypt_with_other_key_id_refused)
{
    struct fake_kms fake;
    fake_init(&fake, 0);
    fake.re_encrypt_wrong_key_id = 1;
    create_with_fake_fails(&fake, "rk1", "Invalid response from KMS ReEncrypt:: Invalid Key Id");
    fake_init(&fake, 0);
    fake.re_encrypt_wrong_source_key_id = 1;
    create_with_fake_fails(&fake, "rk2", "Invalid Key Id");
    fake_init(&fake, 0);
    fake.re_encrypt_without_key_id = 1;
    create_with_fake_fails(&fake, "rk3", "Invalid Key Id");
}

Test(keystore, create_kms_refusal_writes_nothing)
{
    struct fake_kms fake;
    fake_init(&fake, 0);
    fake.refuse_gdk = 1;
    create_with_fake_fails(&fake, "refused1", "AccessDeniedException");
    fake_init(&fake, 0);
    fake.refuse_re_encrypt = 1;
    create_with_fake_fails(&fake, "refused2", "AccessDeniedException");
    fake_init(&fake, 0);
    fake.gdk_without_key_id = 1; /* section 4: the response must include a KeyId */
    create_with_fake_fails(&fake, "refused3", NULL);
}

/* --- VersionKey -------------------------------------------------------------------------- */

static char *version_ok(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                        const char *id)
{
    struct ks_error err;
    char *v = NULL;
    cr_assert_eq(ks_keystore_version_key(ks, rel, id, &v, &err), KS_OK, "version: %s", err.message);
    cr_assert_not_null(v);
    return v;
}

Test(keystore, version_key_rotates_active)
{
    struct ks_materials *a1, *a2, *old, *new_v, *b1, *b2;
    struct ks_item vitem, active;
    struct ks_ec custom, ec;
    unsigned char k[KEY_LEN];
    char *v1 = create_bk(), *v2, vtype[64];

    a1 = get_ok(F.ks, &F.rel, ACTIVE, "bk", NULL);
    b1 = get_ok(F.ks, &F.rel, BEACON, "bk", NULL);
    F.now = T1;
    v2 = version_ok(F.ks, &F.rel, "bk");
    cr_expect(is_uuid_v4(v2), "%s", v2);
    cr_expect_str_neq(v1, v2);

    a2 = get_ok(F.ks, &F.rel, ACTIVE, "bk", NULL);
    cr_expect_str_eq(a2->version, v2, "ACTIVE points to the new version");
    cr_expect_neq(memcmp(a1->key, a2->key, KEY_LEN), 0, "a new key");
    new_v = get_ok(F.ks, &F.rel, VERSION, "bk", v2);
    cr_expect_str_eq(new_v->version, v2);
    cr_expect_eq(memcmp(new_v->key, a2->key, KEY_LEN), 0);
    old = get_ok(F.ks, &F.rel, VERSION, "bk", v1);
    cr_expect_str_eq(old->version, v1);
    cr_expect_eq(memcmp(old->key, a1->key, KEY_LEN), 0, "old version keeps its old key");
    b2 = get_ok(F.ks, &F.rel, BEACON, "bk", NULL);
    cr_expect_eq(memcmp(b1->key, b2->key, KEY_LEN), 0, "VersionKey leaves the beacon alone");

    /* The new version item carries the old ACTIVE's custom EC (section 5.7). */
    custom_ec(&custom);
    cr_expect(ks_ec_equal(&new_v->encryption_context, &custom));
    read_item(F.ks, VERSION, "bk", v2, &vitem);
    read_item(F.ks, ACTIVE, "bk", NULL, &active);
    version_type(v2, vtype, sizeof vtype);
    cr_expect_eq(vitem.count, 8);
    cr_expect_eq(active.count, 9);
    expect_attr(&vitem, "type", KS_ATTR_S, vtype);
    expect_attr(&vitem, "create-time", KS_ATTR_S, T1_TEXT);
    expect_attr(&vitem, "kms-arn", KS_ATTR_S, F.arn);
    expect_attr(&vitem, "hierarchy-version", KS_ATTR_N, "1");
    expect_attr(&vitem, "aws-crypto-ec:department", KS_ATTR_S, "eng");
    cr_expect_null(ks_item_get(&vitem, "version"));
    expect_attr(&active, "version", KS_ATTR_S, vtype);
    expect_attr(&active, "create-time", KS_ATTR_S, T1_TEXT);
    /* Byte compatibility of the new items. */
    hand_ec(&ec, "bk", vtype, NULL, T1_TEXT, F.arn, LOGICAL, &custom);
    cr_expect_eq(local_decrypt(ks_item_get(&vitem, "enc"), F.arn, &ec, k), KS_OK);
    cr_expect_eq(memcmp(k, a2->key, KEY_LEN), 0);
    ks_ec_free(&ec);
    hand_ec(&ec, "bk", "branch:ACTIVE", vtype, T1_TEXT, F.arn, LOGICAL, &custom);
    cr_expect_eq(local_decrypt(ks_item_get(&active, "enc"), F.arn, &ec, k), KS_OK);
    cr_expect_eq(memcmp(k, a2->key, KEY_LEN), 0);
    ks_ec_free(&ec);

    ks_ec_free(&custom);
    ks_item_free(&vitem);
    ks_item_free(&active);
    ks_materials_free(a1);
    ks_materials_free(a2);
    ks_materials_free(b1);
    ks_materials_free(b2);
    ks_materials_free(old);
    ks_materials_free(new_v);
    free(v1);
    free(v2);
}

Test(keystore, version_key_twice_keeps_every_version)
{
    char *v1 = create_bk(), *v2 = version_ok(F.ks, &F.rel, "bk"),
         *v3 = version_ok(F.ks, &F.rel, "bk");
    struct ks_materials *m1 = get_ok(F.ks, &F.rel, VERSION, "bk", v1),
                        *m2 = get_ok(F.ks, &F.rel, VERSION, "bk", v2),
                        *m3 = get_ok(F.ks, &F.rel, VERSION, "bk", v3),
                        *a = get_ok(F.ks, &F.rel, ACTIVE, "bk", NULL);
    cr_expect_str_eq(a->version, v3);
    cr_expect_neq(memcmp(m1->key, m2->key, KEY_LEN), 0);
    cr_expect_neq(memcmp(m2->key, m3->key, KEY_LEN), 0);
    cr_expect_eq(memcmp(a->key, m3->key, KEY_LEN), 0);
    ks_materials_free(m1);
    ks_materials_free(m2);
    ks_materials_free(m3);
    ks_materials_free(a);
    free(v1);
    free(v2);
    free(v3);
}

Test(keystore, version_key_input_and_config_checks)
{
    struct ks_kms_relationship disc = relationship(F.local, KS_KMS_DISCOVERY, NULL, NULL);
    struct ks_kms_relationship mrd = relationship(F.local, KS_KMS_MR_DISCOVERY, NULL, "local");
    struct ks_error err;
    char *v = create_bk(), *out = NULL;
    cr_expect_eq(ks_keystore_version_key(F.ks, &disc, "bk", &out, &err), KS_E_INVALID);
    cr_expect_not_null(strstr(err.message, "MUST BE kmsKeyArn or kmsMRKeyArn to Version Branch "
                                           "Keys."),
                       "%s", err.message);
    cr_expect_eq(ks_keystore_version_key(F.ks, &mrd, "bk", &out, &err), KS_E_INVALID);
    cr_expect_eq(ks_keystore_version_key(F.ks, &F.rel, "", &out, &err), KS_E_INVALID);
    cr_expect_not_null(strstr(err.message, "Empty string not supported for branch key "
                                           "identifier."));
    cr_expect_eq(ks_keystore_version_key(F.ks, &F.rel, "missing", &out, &err), KS_E_NOT_FOUND);
    cr_expect_str_eq(err.message, MSG_NOT_FOUND);
    cr_expect_null(out);
    free(v);
}

/* ACTIVE is unchanged: same version and key as `v`. */
static void expect_active_is(struct ks_keystore *ks, const char *id, const char *v)
{
    struct ks_materials *a = get_ok(ks, &F.rel, ACTIVE, id, NULL);
    struct ks_materials *m = get_ok(ks, &F.rel, VERSION, id, v);
    cr_expect_str_eq(a->version, v);
    cr_expect_eq(memcmp(a->key, m->key, KEY_LEN), 0);
    ks_materials_free(a);
    ks_materials_free(m);
}

Test(keystore, version_key_strict_arn_mismatch_writes_nothing)
{
    struct ks_kms_relationship other = relationship(F.local, KS_KMS_KEY_ARN, ARN2, NULL);
    struct ks_error err;
    char *v = create_bk(), *out = NULL;
    cr_expect_eq(ks_keystore_version_key(F.ks, &other, "bk", &out, &err), KS_E_INVALID);
    cr_expect_str_eq(err.message, MSG_ACTIVE_ARN);
    cr_expect_null(out);
    expect_active_is(F.ks, "bk", v);
    free(v);
}

Test(keystore, version_key_kms_misbehaviour_writes_nothing)
{
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    struct ks_error err;
    char *v = create_bk(), *out = NULL;
    int mode;
    rel = relationship(&fake.base, KS_KMS_KEY_ARN, F.arn, NULL);
    for (mode = 0; mode < 4; mode++) {
        fake_init(&fake, 0);
        if (mode == 0)
            fake.re_encrypt_wrong_key_id = 1;
        else if (mode == 1)
            fake.re_encrypt_wrong_source_key_id = 1;
        else if (mode == 2)
            fake.refuse_re_encrypt = 1;
        else
            fake.refuse_gdk = 1;
        cr_expect_eq(ks_keystore_version_key(F.ks, &rel, "bk", &out, &err), KS_E_KMS, "mode %d",
                     mode);
        if (mode < 2)
            cr_expect_not_null(strstr(err.message, "Invalid Key Id"), "%s", err.message);
        cr_expect_null(out);
        expect_active_is(F.ks, "bk", v);
    }
    free(v);
}

Test(keystore, version_key_authenticates_the_old_active)
{
    /* section 5.6: a tampered ACTIVE item fails the ReEncrypt authentication. */
    struct ks_item active, version, beacon;
    struct ks_keystore *ks2;
    struct ks_error err;
    char *v = create_bk(), *out = NULL;
    read_item(F.ks, ACTIVE, "bk", NULL, &active);
    read_item(F.ks, VERSION, "bk", v, &version);
    read_item(F.ks, BEACON, "bk", NULL, &beacon);
    cr_assert_eq(ks_item_set_s(&active, "aws-crypto-ec:department", "sales"), 0);
    ks2 = reload(&active, &version, &beacon);
    cr_expect_eq(ks_keystore_version_key(ks2, &F.rel, "bk", &out, &err), KS_E_KMS, "%s",
                 err.message);
    cr_expect_null(out);
    ks_keystore_destroy(ks2);
    ks_item_free(&active);
    ks_item_free(&version);
    ks_item_free(&beacon);
    free(v);
}

/* The race of section 9: another VersionKey completes while ours is between read and write. */
struct race_ctx {
    char *other_version;
    ks_status other_status;
};

static void run_competing_version_key(struct fake_kms *f)
{
    struct race_ctx *rc = f->hook_ctx;
    struct ks_error err;
    rc->other_status = ks_keystore_version_key(F.ks, &F.rel, "bk", &rc->other_version, &err);
}

Test(keystore, version_key_stale_active_is_version_race)
{
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    struct race_ctx rc = {NULL, KS_E_INTERNAL};
    struct ks_error err;
    struct ks_materials *a;
    char *v1 = create_bk(), *out = NULL, lost_type[128];
    fake_init(&fake, 0);
    fake.before_gdk = run_competing_version_key;
    fake.hook_ctx = &rc;
    rel = relationship(&fake.base, KS_KMS_KEY_ARN, F.arn, NULL);

    cr_expect_eq(ks_keystore_version_key(F.ks, &rel, "bk", &out, &err), KS_E_VERSION_RACE, "%s",
                 err.message);
    cr_expect_eq(err.code, KS_E_VERSION_RACE);
    cr_expect_null(out);
    cr_assert_eq(rc.other_status, KS_OK, "the competing VersionKey wins");
    cr_assert_not_null(rc.other_version);

    /* Nothing of the loser was written: its version item is absent, ACTIVE is the winner's. */
    copy_str(lost_type, sizeof lost_type, fake.first_gdk_type);
    cr_assert_eq(strncmp(lost_type, "branch:version:", 15), 0, "%s", lost_type);
    get_fails(F.ks, &F.rel, VERSION, "bk", lost_type + 15, KS_E_NOT_FOUND, MSG_NOT_FOUND);
    expect_active_is(F.ks, "bk", rc.other_version);
    a = get_ok(F.ks, &F.rel, VERSION, "bk", v1);
    ks_materials_free(a);
    free(rc.other_version);
    free(v1);
}

/* A storage wrapper that records every version VersionKey tried to write. */
struct recording_storage {
    struct ks_storage base;
    struct ks_storage *inner;
    pthread_mutex_t lock;
    char (*attempted)[64];
    size_t n_attempted, cap;
};

static struct recording_storage *rec_of(struct ks_storage *s)
{
    return (struct recording_storage *)s;
}

static ks_status rec_create_key_store(struct ks_storage *s, char **t, struct ks_error *e)
{
    return rec_of(s)->inner->ops->create_key_store(rec_of(s)->inner, t, e);
}
static ks_status rec_info(struct ks_storage *s, struct ks_storage_info *o, struct ks_error *e)
{
    return rec_of(s)->inner->ops->info(rec_of(s)->inner, o, e);
}
static ks_status rec_write_new_branch_key(struct ks_storage *s, const struct ks_item *a,
                                          const struct ks_item *v, const struct ks_item *b,
                                          struct ks_error *e)
{
    return rec_of(s)->inner->ops->write_new_branch_key(rec_of(s)->inner, a, v, b, e);
}
static ks_status rec_write_new_version(struct ks_storage *s, const struct ks_item *v,
                                       const struct ks_item *a, const unsigned char *old,
                                       size_t old_len, struct ks_error *e)
{
    struct recording_storage *r = rec_of(s);
    pthread_mutex_lock(&r->lock);
    if (r->n_attempted < r->cap)
        copy_str(r->attempted[r->n_attempted++], 64, ks_item_get_s(v, "type"));
    pthread_mutex_unlock(&r->lock);
    return r->inner->ops->write_new_version(r->inner, v, a, old, old_len, e);
}
static ks_status rec_get_active(struct ks_storage *s, const char *id, struct ks_item *o,
                                struct ks_error *e)
{
    return rec_of(s)->inner->ops->get_active(rec_of(s)->inner, id, o, e);
}
static ks_status rec_get_version(struct ks_storage *s, const char *id, const char *v,
                                 struct ks_item *o, struct ks_error *e)
{
    return rec_of(s)->inner->ops->get_version(rec_of(s)->inner, id, v, o, e);
}
static ks_status rec_get_beacon(struct ks_storage *s, const char *id, struct ks_item *o,
                                struct ks_error *e)
{
    return rec_of(s)->inner->ops->get_beacon(rec_of(s)->inner, id, o, e);
}
static ks_status rec_ping(struct ks_storage *s, struct ks_error *e)
{
    return rec_of(s)->inner->ops->ping(rec_of(s)->inner, e);
}
static ks_status rec_has_items(struct ks_storage *s, int *out, struct ks_error *e)
{
    return rec_of(s)->inner->ops->has_items(rec_of(s)->inner, out, e);
}
static void rec_destroy(struct ks_storage *s)
{
    struct recording_storage *r = rec_of(s);
    ks_storage_destroy(r->inner);
    pthread_mutex_destroy(&r->lock);
    free(r->attempted);
    free(r);
}

static const struct ks_storage_ops rec_ops = {
    .version = KS_STORAGE_OPS_VERSION,
    .name = "recording",
    .create_key_store = rec_create_key_store,
    .info = rec_info,
    .write_new_branch_key = rec_write_new_branch_key,
    .write_new_version = rec_write_new_version,
    .get_active = rec_get_active,
    .get_version = rec_get_version,
    .get_beacon = rec_get_beacon,
    .ping = rec_ping,
    .destroy = rec_destroy,
    .has_items = rec_has_items,
};

#define THREADS 8
#define ROUNDS 25

struct versioner {
    pthread_t thread;
    pthread_barrier_t *barrier;
    char *versions[ROUNDS];
    int n_ok, n_race, n_other;
    ks_status other;
    char other_message[KS_ERROR_MESSAGE_MAX];
};

static void *versioner_main(void *arg)
{
    struct versioner *w = arg;
    int i;
    pthread_barrier_wait(w->barrier);
    for (i = 0; i < ROUNDS; i++) {
        struct ks_error err;
        char *v = NULL;
        ks_status st = ks_keystore_version_key(F.ks, &F.rel, "bk", &v, &err);
        if (st == KS_OK) {
            w->versions[w->n_ok++] = v;
        } else if (st == KS_E_VERSION_RACE) {
            w->n_race++;
        } else {
            w->n_other++;
            w->other = st;
            memcpy(w->other_message, err.message, sizeof err.message);
        }
    }
    return NULL;
}

Test(keystore, version_key_concurrent_versioners)
{
    struct recording_storage *rec = calloc(1, sizeof *rec);
    struct versioner w[THREADS];
    pthread_barrier_t barrier;
    struct ks_error err;
    struct ks_materials *a;
    size_t i, found = 0;
    int t, j, successes = 0, active_is_a_success = 0;
    char *v1;

    /* F.ks on a recording wrapper around memory storage. */
    cr_assert_not_null(rec);
    rec->base.ops = &rec_ops;
    cr_assert_eq(pthread_mutex_init(&rec->lock, NULL), 0);
    rec->cap = THREADS * ROUNDS;
    rec->attempted = calloc(rec->cap, sizeof *rec->attempted);
    cr_assert_not_null(rec->attempted);
    cr_assert_eq(ks_storage_memory_create(&rec->inner, &err), KS_OK);
    ks_keystore_destroy(F.ks);
    F.ks = new_keystore(&rec->base);
    v1 = create_bk();

    cr_assert_eq(pthread_barrier_init(&barrier, NULL, THREADS), 0);
    memset(w, 0, sizeof w);
    for (t = 0; t < THREADS; t++) {
        w[t].barrier = &barrier;
        cr_assert_eq(pthread_create(&w[t].thread, NULL, versioner_main, &w[t]), 0);
    }
    for (t = 0; t < THREADS; t++)
        pthread_join(w[t].thread, NULL);
    pthread_barrier_destroy(&barrier);

    for (t = 0; t < THREADS; t++) {
        cr_expect_eq(w[t].n_other, 0, "thread %d: status %d: %s", t, (int)w[t].other,
                     w[t].other_message);
        cr_expect_eq(w[t].n_ok + w[t].n_race + w[t].n_other, ROUNDS);
        successes += w[t].n_ok;
    }
    cr_expect_geq(successes, 1);
    cr_log_info("concurrent VersionKey: %d successes of %d", successes, THREADS * ROUNDS);
    cr_expect_eq(rec->n_attempted, (size_t)(THREADS * ROUNDS), "every call reached the write");

    /* Versions stored == 1 + successes: probe every attempted version in storage. */
    for (i = 0; i < rec->n_attempted; i++) {
        struct ks_item item;
        ks_status st =
            rec->inner->ops->get_version(rec->inner, "bk", rec->attempted[i] + 15, &item, &err);
        if (st == KS_OK)
            found++;
        ks_item_free(&item);
    }
    cr_expect_eq(found, (size_t)successes, "stored versions %zu, successes %d", found, successes);
    {
        struct ks_materials *m0 = get_ok(F.ks, &F.rel, VERSION, "bk", v1);
        ks_materials_free(m0);
    }

    /* Every success is readable; ACTIVE is one of them. */
    a = get_ok(F.ks, &F.rel, ACTIVE, "bk", NULL);
    for (t = 0; t < THREADS; t++)
        for (j = 0; j < w[t].n_ok; j++) {
            struct ks_materials *m = get_ok(F.ks, &F.rel, VERSION, "bk", w[t].versions[j]);
            if (strcmp(a->version, w[t].versions[j]) == 0) {
                active_is_a_success = 1;
                cr_expect_eq(memcmp(a->key, m->key, KEY_LEN), 0);
            }
            ks_materials_free(m);
            free(w[t].versions[j]);
        }
    cr_expect(active_is_a_success, "ACTIVE %s is none of the successful versions", a->version);
    ks_materials_free(a);
    free(v1);
}

/* --- gets --------------------------------------------------------------------------------- */

Test(keystore, get_not_found)
{
    char *v = create_bk();
    get_fails(F.ks, &F.rel, ACTIVE, "missing", NULL, KS_E_NOT_FOUND, MSG_NOT_FOUND);
    get_fails(F.ks, &F.rel, BEACON, "missing", NULL, KS_E_NOT_FOUND, MSG_NOT_FOUND);
    get_fails(F.ks, &F.rel, VERSION, "bk", "0b9e5ac2-4a1e-4a4b-9f6a-2a1b7a0c3d11", KS_E_NOT_FOUND,
              MSG_NOT_FOUND);
    get_fails(F.ks, &F.rel, VERSION, "missing", v, KS_E_NOT_FOUND, MSG_NOT_FOUND);
    get_fails(F.ks, &F.rel, ACTIVE, "", NULL, KS_E_INVALID, NULL);
    free(v);
}

Test(keystore, get_info)
{
    struct ks_keystore_info info;
    struct ks_error err;
    cr_assert_eq(ks_keystore_info(F.ks, &info, &err), KS_OK);
    cr_expect(is_uuid_v4(info.key_store_id), "%s", info.key_store_id);
    cr_expect_str_eq(info.logical_key_store_name, LOGICAL);
    cr_expect_str_eq(info.storage.kind, "memory");
}

/* One tampering: applied to the chosen item of a fresh copy of "bk", then every get of that
 * item is expected to fail with `expected`. */
typedef void (*tamper_fn)(struct ks_item *item);

static void tamper_case(const char *what, enum kind kind, tamper_fn tamper, ks_status expected,
                        const char *message)
{
    struct ks_item items[3];
    struct ks_keystore *ks2;
    char *v;
    int k;

    ks_keystore_destroy(F.ks);
    F.ks = new_memory_keystore();
    v = create_bk();
    read_item(F.ks, ACTIVE, "bk", NULL, &items[ACTIVE]);
    read_item(F.ks, VERSION, "bk", v, &items[VERSION]);
    read_item(F.ks, BEACON, "bk", NULL, &items[BEACON]);
    tamper(&items[kind]);
    ks2 = reload(&items[ACTIVE], &items[VERSION], &items[BEACON]);
    cr_log_info("tamper case: %s", what);
    get_fails(ks2, &F.rel, kind, "bk", v, expected, message);
    /* The other two items are untouched and still readable. */
    for (k = ACTIVE; k <= BEACON; k++)
        if (k != (int)kind)
            ks_materials_free(get_ok(ks2, &F.rel, (enum kind)k, "bk", v));
    ks_keystore_destroy(ks2);
    for (k = 0; k < 3; k++)
        ks_item_free(&items[k]);
    free(v);
}

static void t_custom_value(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "aws-crypto-ec:department", "sales"), 0);
}
static void t_custom_added(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "aws-crypto-ec:new", "x"), 0);
}
static void t_custom_removed(struct ks_item *i)
{
    cr_assert_eq(ks_item_remove(i, "aws-crypto-ec:department"), 1);
}
static void t_extra_s(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "extra", "x"), 0);
}
static void t_create_time(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "create-time", T1_TEXT), 0);
}
static void t_enc_byte(struct ks_item *i)
{
    const struct ks_attr *a = ks_item_get(i, "enc");
    unsigned char buf[6144];
    cr_assert_not_null(a);
    memcpy(buf, a->value, a->len);
    buf[a->len / 2] ^= 0x01;
    cr_assert_eq(ks_item_set_b(i, "enc", buf, a->len), 0);
}
static void t_enc_last_byte(struct ks_item *i)
{
    const struct ks_attr *a = ks_item_get(i, "enc");
    unsigned char buf[6144];
    memcpy(buf, a->value, a->len);
    buf[a->len - 1] ^= 0x80;
    cr_assert_eq(ks_item_set_b(i, "enc", buf, a->len), 0);
}
static void t_kms_arn_other_key(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "kms-arn", ARN2), 0);
}
static void t_tablename(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "tablename", LOGICAL), 0);
}
static void t_hv3(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_n(i, "hierarchy-version", "3"), 0);
}
/* An HV-1 item relabelled 2 goes the HV-2 path (docs/reference/hv2.md section 7): Decrypt with
 * the unprefixed context, which KMS refuses. */
static void t_hv1_as_2(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_n(i, "hierarchy-version", "2"), 0);
}
static void t_hv_as_s(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "hierarchy-version", "1"), 0);
}
static void t_add_version(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "version", "branch:version:0b9e5ac2-4a1e-4a4b-9f6a-2a1b7a0c3d11"),
                 0);
}
static void t_remove_version(struct ks_item *i)
{
    cr_assert_eq(ks_item_remove(i, "version"), 1);
}
static void t_version_bare_prefix(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "version", "branch:version:"), 0);
}
static void t_version_no_prefix(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "version", "0b9e5ac2-4a1e-4a4b-9f6a-2a1b7a0c3d11"), 0);
}
static void t_version_as_n(struct ks_item *i)
{
    const char *v = ks_item_get_s(i, "version");
    char copy[128];
    copy_str(copy, sizeof copy, v);
    cr_assert_eq(ks_item_set_n(i, "version", copy), 0);
}
static void t_create_time_as_n(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_n(i, "create-time", "1700000000"), 0);
}
static void t_enc_as_s(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "enc", "AAAA"), 0);
}
static void t_kms_arn_as_b(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_b(i, "kms-arn", F.arn, strlen(F.arn)), 0);
}
static void t_custom_as_n(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_n(i, "aws-crypto-ec:department", "5"), 0);
}
static void t_extra_n(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_n(i, "extra", "5"), 0);
}
static void t_extra_b(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_b(i, "extra", "x", 1), 0);
}
static void t_no_create_time(struct ks_item *i)
{
    cr_assert_eq(ks_item_remove(i, "create-time"), 1);
}
static void t_no_kms_arn(struct ks_item *i)
{
    cr_assert_eq(ks_item_remove(i, "kms-arn"), 1);
}
static void t_no_enc(struct ks_item *i)
{
    cr_assert_eq(ks_item_remove(i, "enc"), 1);
}
static void t_no_hv(struct ks_item *i)
{
    cr_assert_eq(ks_item_remove(i, "hierarchy-version"), 1);
}
static void t_empty_enc(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_b(i, "enc", "", 0), 0);
}
static void t_huge_enc(struct ks_item *i)
{
    static unsigned char big[6145];
    cr_assert_eq(ks_item_set_b(i, "enc", big, sizeof big), 0);
}
static void t_arn_invalid(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "kms-arn", "not-an-arn"), 0);
}
static void t_arn_alias(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "kms-arn", "arn:aws:kms:local:000000000000:alias/a"), 0);
}
static void t_arn_empty(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "kms-arn", ""), 0);
}

struct tamper_row {
    const char *what;
    tamper_fn fn;
    ks_status expected;
    const char *message;
    int kinds; /* bit per enum kind */
};

#define ALL_KINDS 7
#define NOT_ACTIVE 6
#define ONLY_ACTIVE 1

static const struct tamper_row tamper_rows[] = {
    /* Authentication failures: the item is well-formed, KMS refuses it. */
    {"custom EC value changed", t_custom_value, KS_E_KMS, NULL, ALL_KINDS},
    {"custom EC entry added", t_custom_added, KS_E_KMS, NULL, ALL_KINDS},
    {"custom EC entry removed", t_custom_removed, KS_E_KMS, NULL, ALL_KINDS},
    {"unprefixed S attribute added", t_extra_s, KS_E_KMS, NULL, ALL_KINDS},
    {"create-time changed", t_create_time, KS_E_KMS, NULL, ALL_KINDS},
    {"enc byte flipped", t_enc_byte, KS_E_KMS, NULL, ALL_KINDS},
    {"enc tag byte flipped", t_enc_last_byte, KS_E_KMS, NULL, ALL_KINDS},
    /* Invalid items (section 3 read validation). */
    {"tablename stored", t_tablename, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"hierarchy-version 3", t_hv3, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"HV-1 item relabelled hierarchy-version 2", t_hv1_as_2, KS_E_KMS, NULL, ALL_KINDS},
    {"hierarchy-version as S", t_hv_as_s, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"version on a non-ACTIVE item", t_add_version, KS_E_CORRUPT, NULL, NOT_ACTIVE},
    {"ACTIVE without version", t_remove_version, KS_E_CORRUPT, NULL, ONLY_ACTIVE},
    {"ACTIVE version is the bare prefix", t_version_bare_prefix, KS_E_CORRUPT, NULL, ONLY_ACTIVE},
    {"ACTIVE version without prefix", t_version_no_prefix, KS_E_CORRUPT, NULL, ONLY_ACTIVE},
    {"ACTIVE version as N", t_version_as_n, KS_E_CORRUPT, NULL, ONLY_ACTIVE},
    {"create-time as N", t_create_time_as_n, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"enc as S", t_enc_as_s, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"kms-arn as B", t_kms_arn_as_b, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"custom EC as N", t_custom_as_n, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"extra N attribute", t_extra_n, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"extra B attribute", t_extra_b, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"no create-time", t_no_create_time, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"no kms-arn", t_no_kms_arn, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"no enc", t_no_enc, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"no hierarchy-version", t_no_hv, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"empty enc", t_empty_enc, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"enc over 6144 bytes", t_huge_enc, KS_E_CORRUPT, NULL, ALL_KINDS},
    {"kms-arn not an ARN", t_arn_invalid, KS_E_CORRUPT, MSG_BAD_ARN, ALL_KINDS},
    {"kms-arn an alias", t_arn_alias, KS_E_CORRUPT, MSG_BAD_ARN, ALL_KINDS},
    {"kms-arn empty", t_arn_empty, KS_E_CORRUPT, NULL, ALL_KINDS},
};

Test(keystore, get_refuses_tampered_items, .timeout = 120)
{
    size_t r;
    int k;
    for (r = 0; r < sizeof tamper_rows / sizeof tamper_rows[0]; r++)
        for (k = ACTIVE; k <= BEACON; k++)
            if (tamper_rows[r].kinds & (1 << k))
                tamper_case(tamper_rows[r].what, (enum kind)k, tamper_rows[r].fn,
                            tamper_rows[r].expected, tamper_rows[r].message);
}

Test(keystore, get_invalid_item_messages_name_the_kind)
{
    /* section 6: "Item found is not a valid active branch key." etc. */
    tamper_case("tablename", ACTIVE, t_tablename, KS_E_CORRUPT,
                "Item found is not a valid active branch key.");
    tamper_case("tablename", VERSION, t_tablename, KS_E_CORRUPT,
                "Item found is not a valid branch key version.");
    tamper_case("tablename", BEACON, t_tablename, KS_E_CORRUPT,
                "Item found is not a valid beacon key.");
}

Test(keystore, get_strict_arn_mismatch)
{
    /* The stored kms-arn names another key of the same KMS: refused before any Decrypt. */
    struct fake_kms fake;
    struct ks_kms_relationship other;
    char *v = create_bk();
    fake_init(&fake, 0);
    other = relationship(&fake.base, KS_KMS_KEY_ARN, ARN2, NULL);
    get_fails(F.ks, &other, ACTIVE, "bk", NULL, KS_E_INVALID, MSG_ACTIVE_ARN);
    get_fails(F.ks, &other, VERSION, "bk", v, KS_E_INVALID, MSG_OTHER_ARN);
    get_fails(F.ks, &other, BEACON, "bk", NULL, KS_E_INVALID, MSG_OTHER_ARN);
    cr_expect_eq(fake.n_decrypt, 0);
    free(v);
}

Test(keystore, get_tampered_kms_arn)
{
    /* Strict config: the ARN check refuses it; discovery: Decrypt with the stored ARN does. */
    struct ks_kms_relationship disc = relationship(F.local, KS_KMS_DISCOVERY, NULL, NULL);
    struct ks_item items[3];
    struct ks_keystore *ks2;
    char *v = create_bk();
    read_item(F.ks, ACTIVE, "bk", NULL, &items[ACTIVE]);
    read_item(F.ks, VERSION, "bk", v, &items[VERSION]);
    read_item(F.ks, BEACON, "bk", NULL, &items[BEACON]);
    t_kms_arn_other_key(&items[ACTIVE]);
    ks2 = reload(&items[ACTIVE], &items[VERSION], &items[BEACON]);
    get_fails(ks2, &F.rel, ACTIVE, "bk", NULL, KS_E_INVALID, MSG_ACTIVE_ARN);
    get_fails(ks2, &disc, ACTIVE, "bk", NULL, KS_E_KMS, NULL);
    ks_keystore_destroy(ks2);
    ks_item_free(&items[ACTIVE]);
    ks_item_free(&items[VERSION]);
    ks_item_free(&items[BEACON]);
    free(v);
}

/* --- KMS configurations (section 7) on hand-built items ---------------------------------- */

/*
 * Writes branch key `id` into ks's storage, built by hand from sections 2 and 3: stored kms-arn
 * `arn`, keys wrapped by the local KMS under the hand-built EC (as an AWS KMS would under
 * `arn`). extra (may be NULL) is an unprefixed S attribute added to every item and its EC.
 */
static void hand_build(struct ks_keystore *ks, const char *id, const char *arn,
                       const char *version_uuid, const char *extra, unsigned char key[KEY_LEN],
                       unsigned char beacon_key[KEY_LEN])
{
    struct ks_kms_call call = {NULL, 0};
    struct ks_storage *s = ks_keystore_storage(ks);
    struct ks_ec custom, ecs[3];
    struct ks_item items[3];
    struct ks_kms_result r[3];
    struct ks_error err;
    char vtype[64];
    size_t i, e;

    custom_ec(&custom);
    version_type(version_uuid, vtype, sizeof vtype);
    hand_ec(&ecs[ACTIVE], id, "branch:ACTIVE", vtype, T0_TEXT, arn, LOGICAL, &custom);
    hand_ec(&ecs[VERSION], id, vtype, NULL, T0_TEXT, arn, LOGICAL, &custom);
    hand_ec(&ecs[BEACON], id, "beacon:ACTIVE", NULL, T0_TEXT, arn, LOGICAL, &custom);
    for (i = 0; i < 3; i++) {
        ks_kms_result_init(&r[i]);
        if (extra)
            cr_assert_eq(ks_ec_set(&ecs[i], "extra", extra), 0);
    }
    cr_assert_eq(F.local->ops->generate_data_key(F.local, &call, F.arn, KEY_LEN, &ecs[VERSION],
                                                 &r[VERSION], &err),
                 KS_OK, "%s", err.message);
    cr_assert_eq(F.local->ops->encrypt(F.local, &call, F.arn, r[VERSION].plaintext, KEY_LEN,
                                       &ecs[ACTIVE], &r[ACTIVE], &err),
                 KS_OK);
    cr_assert_eq(F.local->ops->generate_data_key(F.local, &call, F.arn, KEY_LEN, &ecs[BEACON],
                                                 &r[BEACON], &err),
                 KS_OK);
    memcpy(key, r[VERSION].plaintext, KEY_LEN);
    memcpy(beacon_key, r[BEACON].plaintext, KEY_LEN);
    for (i = 0; i < 3; i++) {
        ks_item_init(&items[i]);
        for (e = 0; e < ecs[i].count; e++) {
            const char *k = ecs[i].entries[e].key, *v = ecs[i].entries[e].value;
            if (strcmp(k, "tablename") == 0)
                continue;
            if (strcmp(k, "hierarchy-version") == 0)
                cr_assert_eq(ks_item_set_n(&items[i], k, v), 0);
            else
                cr_assert_eq(ks_item_set_s(&items[i], k, v), 0);
        }
        cr_assert_eq(ks_item_set_b(&items[i], "enc", r[i].ciphertext.data, r[i].ciphertext.len), 0);
    }
    cr_assert_eq(
        s->ops->write_new_branch_key(s, &items[ACTIVE], &items[VERSION], &items[BEACON], &err),
        KS_OK, "%s", err.message);
    for (i = 0; i < 3; i++) {
        ks_item_free(&items[i]);
        ks_ec_free(&ecs[i]);
        ks_kms_result_free(&r[i]);
    }
    ks_ec_free(&custom);
}

#define HAND_V "0b9e5ac2-4a1e-4a4b-9f6a-2a1b7a0c3d11"

/* Gets all three of hand-built `id` through rel; expects success, the keys, and the KeyId the
 * fake KMS received for Decrypt. */
static void expect_hand_gets(struct fake_kms *fake, const struct ks_kms_relationship *rel,
                             const char *id, const unsigned char key[KEY_LEN],
                             const unsigned char beacon_key[KEY_LEN], const char *decrypt_key_id)
{
    int k;
    for (k = ACTIVE; k <= BEACON; k++) {
        struct ks_materials *m;
        fake->last_decrypt_key_id[0] = '\0';
        m = get_ok(F.ks, rel, (enum kind)k, id, HAND_V);
        cr_expect_eq(memcmp(m->key, k == BEACON ? beacon_key : key, KEY_LEN), 0, "kind %d", k);
        cr_expect_str_eq(fake->last_decrypt_key_id, decrypt_key_id, "Decrypt KeyId, kind %d", k);
        if (k != BEACON)
            cr_expect_str_eq(m->version, HAND_V);
        ks_materials_free(m);
    }
}

static void expect_hand_refused(struct fake_kms *fake, const struct ks_kms_relationship *rel,
                                const char *id)
{
    int n = fake->n_decrypt;
    get_fails(F.ks, rel, ACTIVE, id, HAND_V, KS_E_INVALID, MSG_ACTIVE_ARN);
    get_fails(F.ks, rel, VERSION, id, HAND_V, KS_E_INVALID, MSG_OTHER_ARN);
    get_fails(F.ks, rel, BEACON, id, HAND_V, KS_E_INVALID, MSG_OTHER_ARN);
    cr_expect_eq(fake->n_decrypt, n, "refused before Decrypt");
}

Test(keystore, hand_built_items_are_read)
{
    /* The reverse byte-compatibility check: items written as the MPL writes them are read. */
    unsigned char key[KEY_LEN], beacon_key[KEY_LEN];
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    struct ks_ec custom;
    struct ks_materials *m;
    fake_init(&fake, 0);
    rel = relationship(&fake.base, KS_KMS_KEY_ARN, F.arn, NULL);
    hand_build(F.ks, "hand", F.arn, HAND_V, NULL, key, beacon_key);
    expect_hand_gets(&fake, &rel, "hand", key, beacon_key, F.arn);
    custom_ec(&custom);
    m = get_ok(F.ks, &rel, ACTIVE, "hand", NULL);
    cr_expect(ks_ec_equal(&m->encryption_context, &custom));
    ks_materials_free(m);
    ks_ec_free(&custom);
}

Test(keystore, extra_unprefixed_attribute_is_accepted_and_carried_over)
{
    /* section 3: extra unprefixed S attributes are accepted and go into the EC; section 5.7:
     * they carry over to a new version. They are not custom EC in the materials. */
    unsigned char key[KEY_LEN], beacon_key[KEY_LEN];
    struct ks_materials *m;
    struct ks_item item;
    char *v2;
    hand_build(F.ks, "extra", F.arn, HAND_V, "x-value", key, beacon_key);
    m = get_ok(F.ks, &F.rel, ACTIVE, "extra", NULL);
    cr_expect_eq(memcmp(m->key, key, KEY_LEN), 0);
    cr_expect_null(ks_ec_get(&m->encryption_context, "extra"));
    cr_expect_eq(m->encryption_context.count, 2);
    ks_materials_free(m);
    v2 = version_ok(F.ks, &F.rel, "extra");
    read_item(F.ks, VERSION, "extra", v2, &item);
    expect_attr(&item, "extra", KS_ATTR_S, "x-value");
    ks_item_free(&item);
    read_item(F.ks, ACTIVE, "extra", NULL, &item);
    expect_attr(&item, "extra", KS_ATTR_S, "x-value");
    ks_item_free(&item);
    ks_materials_free(get_ok(F.ks, &F.rel, VERSION, "extra", v2));
    ks_materials_free(get_ok(F.ks, &F.rel, ACTIVE, "extra", NULL));
    free(v2);
}

Test(keystore, mr_key_arn_accepts_mrk_in_another_region)
{
    unsigned char key[KEY_LEN], beacon_key[KEY_LEN];
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    fake_init(&fake, 1);
    hand_build(F.ks, "mrk", MRK_E1, HAND_V, NULL, key, beacon_key);
    /* kmsMRKeyArn(us-west-2 replica): MrkMatch, Decrypt KeyId = the configured ARN. */
    rel = relationship(&fake.base, KS_KMS_MR_KEY_ARN, MRK_W2, NULL);
    expect_hand_gets(&fake, &rel, "mrk", key, beacon_key, MRK_W2);
    /* kmsMRKeyArn with the same ARN. */
    rel = relationship(&fake.base, KS_KMS_MR_KEY_ARN, MRK_E1, NULL);
    expect_hand_gets(&fake, &rel, "mrk", key, beacon_key, MRK_E1);
    /* kmsMRKeyArn in another account: no match. */
    rel = relationship(&fake.base, KS_KMS_MR_KEY_ARN, MRK_OTHER_ACCOUNT, NULL);
    expect_hand_refused(&fake, &rel, "mrk");
}

Test(keystore, strict_key_arn_refuses_mrk_replica)
{
    unsigned char key[KEY_LEN], beacon_key[KEY_LEN];
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    fake_init(&fake, 1);
    hand_build(F.ks, "mrk", MRK_E1, HAND_V, NULL, key, beacon_key);
    rel = relationship(&fake.base, KS_KMS_KEY_ARN, MRK_W2, NULL);
    expect_hand_refused(&fake, &rel, "mrk");
    rel = relationship(&fake.base, KS_KMS_KEY_ARN, MRK_E1, NULL);
    expect_hand_gets(&fake, &rel, "mrk", key, beacon_key, MRK_E1);
}

Test(keystore, mr_key_arn_refuses_non_mrk_in_another_region)
{
    unsigned char key[KEY_LEN], beacon_key[KEY_LEN];
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    fake_init(&fake, 1);
    hand_build(F.ks, "plain", PLAIN_E1, HAND_V, NULL, key, beacon_key);
    rel = relationship(&fake.base, KS_KMS_MR_KEY_ARN, PLAIN_W2, NULL);
    expect_hand_refused(&fake, &rel, "plain");
    rel = relationship(&fake.base, KS_KMS_MR_KEY_ARN, PLAIN_E1, NULL);
    expect_hand_gets(&fake, &rel, "plain", key, beacon_key, PLAIN_E1);
}

Test(keystore, discovery_accepts_any_and_decrypts_with_stored_arn)
{
    unsigned char key[KEY_LEN], beacon_key[KEY_LEN], key2[KEY_LEN], beacon_key2[KEY_LEN];
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    fake_init(&fake, 1);
    hand_build(F.ks, "mrk", MRK_E1, HAND_V, NULL, key, beacon_key);
    hand_build(F.ks, "plain", PLAIN_W2, HAND_V, NULL, key2, beacon_key2);
    rel = relationship(&fake.base, KS_KMS_DISCOVERY, NULL, NULL);
    expect_hand_gets(&fake, &rel, "mrk", key, beacon_key, MRK_E1);
    expect_hand_gets(&fake, &rel, "plain", key2, beacon_key2, PLAIN_W2);
}

Test(keystore, mr_discovery_rewrites_region_of_mrk_only)
{
    unsigned char key[KEY_LEN], beacon_key[KEY_LEN], key2[KEY_LEN], beacon_key2[KEY_LEN];
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    fake_init(&fake, 1);
    hand_build(F.ks, "mrk", MRK_E1, HAND_V, NULL, key, beacon_key);
    hand_build(F.ks, "plain", PLAIN_E1, HAND_V, NULL, key2, beacon_key2);
    rel = relationship(&fake.base, KS_KMS_MR_DISCOVERY, NULL, "eu-west-1");
    expect_hand_gets(&fake, &rel, "mrk", key, beacon_key, MRK_EU1);
    expect_hand_gets(&fake, &rel, "plain", key2, beacon_key2, PLAIN_E1);
}

Test(keystore, discovery_refuses_invalid_stored_arn)
{
    /* Discovery accepts any VALID key ARN (section 7): an alias or garbage is corrupt. */
    struct ks_kms_relationship disc = relationship(F.local, KS_KMS_DISCOVERY, NULL, NULL);
    struct ks_kms_relationship mrd = relationship(F.local, KS_KMS_MR_DISCOVERY, NULL, "x");
    struct ks_item items[3];
    struct ks_keystore *ks2;
    char *v = create_bk();
    read_item(F.ks, ACTIVE, "bk", NULL, &items[ACTIVE]);
    read_item(F.ks, VERSION, "bk", v, &items[VERSION]);
    read_item(F.ks, BEACON, "bk", NULL, &items[BEACON]);
    t_arn_alias(&items[ACTIVE]);
    t_arn_invalid(&items[BEACON]);
    ks2 = reload(&items[ACTIVE], &items[VERSION], &items[BEACON]);
    get_fails(ks2, &disc, ACTIVE, "bk", NULL, KS_E_CORRUPT, MSG_BAD_ARN);
    get_fails(ks2, &mrd, ACTIVE, "bk", NULL, KS_E_CORRUPT, MSG_BAD_ARN);
    get_fails(ks2, &disc, BEACON, "bk", NULL, KS_E_CORRUPT, MSG_BAD_ARN);
    ks_materials_free(get_ok(ks2, &disc, VERSION, "bk", v));
    ks_keystore_destroy(ks2);
    ks_item_free(&items[ACTIVE]);
    ks_item_free(&items[VERSION]);
    ks_item_free(&items[BEACON]);
    free(v);
}

Test(keystore, version_key_mr_key_arn_keeps_stored_arn)
{
    /* section 5.7 and 7: under kmsMRKeyArn(replica) the new items keep the stored ARN; the KMS
     * calls use the configured one. */
    unsigned char key[KEY_LEN], beacon_key[KEY_LEN];
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    struct ks_item item;
    struct ks_materials *m;
    char *v2;
    fake_init(&fake, 1);
    hand_build(F.ks, "mrk", MRK_E1, HAND_V, NULL, key, beacon_key);
    rel = relationship(&fake.base, KS_KMS_MR_KEY_ARN, MRK_W2, NULL);
    v2 = version_ok(F.ks, &rel, "mrk");
    cr_expect_str_eq(fake.last_gdk_key_id, MRK_W2);
    cr_expect_str_eq(fake.last_re_encrypt_dst, MRK_W2);
    read_item(F.ks, VERSION, "mrk", v2, &item);
    expect_attr(&item, "kms-arn", KS_ATTR_S, MRK_E1);
    ks_item_free(&item);
    read_item(F.ks, ACTIVE, "mrk", NULL, &item);
    expect_attr(&item, "kms-arn", KS_ATTR_S, MRK_E1);
    ks_item_free(&item);
    m = get_ok(F.ks, &rel, ACTIVE, "mrk", NULL);
    cr_expect_str_eq(m->version, v2);
    ks_materials_free(m);
    /* The old version is still readable with its key. */
    m = get_ok(F.ks, &rel, VERSION, "mrk", HAND_V);
    cr_expect_eq(memcmp(m->key, key, KEY_LEN), 0);
    ks_materials_free(m);
    free(v2);
}

Test(keystore, create_with_mr_key_arn_stores_configured_arn)
{
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    struct ks_item item;
    char *id;
    fake_init(&fake, 1);
    rel = relationship(&fake.base, KS_KMS_MR_KEY_ARN, MRK_W2, NULL);
    id = create_ok(F.ks, &rel, NULL, NULL);
    read_item(F.ks, ACTIVE, id, NULL, &item);
    expect_attr(&item, "kms-arn", KS_ATTR_S, MRK_W2);
    ks_item_free(&item);
    ks_materials_free(get_ok(F.ks, &rel, BEACON, id, NULL));
    free(id);
}

/* --- Decrypt response checks (section 6) ------------------------------------------------- */

Test(keystore, decrypt_plaintext_must_be_32_bytes)
{
    static const int lens[] = {31, 33, 1, -1};
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    char *v = create_bk();
    size_t i;
    int k;
    rel = relationship(&fake.base, KS_KMS_KEY_ARN, F.arn, NULL);
    for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        fake_init(&fake, 0);
        fake.decrypt_len = lens[i];
        for (k = ACTIVE; k <= BEACON; k++)
            get_fails(F.ks, &rel, (enum kind)k, "bk", v, KS_E_KMS,
                      "Invalid response from AWS KMS Decrypt: Key is not 32 bytes.");
    }
    free(v);
}

Test(keystore, decrypt_refusal_is_kms_error)
{
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    char *v = create_bk();
    int k;
    fake_init(&fake, 0);
    fake.refuse_decrypt = 1;
    rel = relationship(&fake.base, KS_KMS_KEY_ARN, F.arn, NULL);
    for (k = ACTIVE; k <= BEACON; k++)
        get_fails(F.ks, &rel, (enum kind)k, "bk", v, KS_E_KMS, "AccessDeniedException");
    free(v);
}

Test(keystore, decrypt_key_id_is_the_configured_arn)
{
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    struct ks_materials *m;
    char *v = create_bk();
    fake_init(&fake, 0);
    rel = relationship(&fake.base, KS_KMS_KEY_ARN, F.arn, NULL);
    m = get_ok(F.ks, &rel, VERSION, "bk", v);
    cr_expect_str_eq(fake.last_decrypt_key_id, F.arn);
    ks_materials_free(m);
    free(v);
}

/* --- materials ---------------------------------------------------------------------------- */

Test(keystore, materials_free_is_null_safe_and_complete)
{
    /* Run under ASan: every part of the materials is released. */
    char *v = create_bk();
    ks_materials_free(NULL);
    ks_materials_free(get_ok(F.ks, &F.rel, ACTIVE, "bk", NULL));
    ks_materials_free(get_ok(F.ks, &F.rel, VERSION, "bk", v));
    ks_materials_free(get_ok(F.ks, &F.rel, BEACON, "bk", NULL));
    free(v);
}

/* --- input validation shared with the handlers ------------------------------------------- */

Test(keystore, check_branch_key_id)
{
    struct ks_error err;
    char *id = malloc(KS_BRANCH_KEY_ID_MAX + 2);
    cr_assert_not_null(id);
    memset(id, 'a', KS_BRANCH_KEY_ID_MAX + 1);
    id[KS_BRANCH_KEY_ID_MAX + 1] = '\0';
    cr_expect_eq(ks_keystore_check_branch_key_id("bk", 2, &err), KS_OK);
    cr_expect_eq(ks_keystore_check_branch_key_id("\xe2\x82\xac", 3, &err), KS_OK);
    cr_expect_eq(ks_keystore_check_branch_key_id("", 0, &err), KS_E_INVALID);
    cr_expect_not_null(
        strstr(err.message, "Empty string not supported for branch key identifier."));
    cr_expect_eq(ks_keystore_check_branch_key_id("a\0b", 3, &err), KS_E_INVALID, "NUL inside");
    cr_expect_eq(ks_keystore_check_branch_key_id("\xc0\x80", 2, &err), KS_E_INVALID);
    cr_expect_eq(ks_keystore_check_branch_key_id("\xed\xa0\x80", 3, &err), KS_E_INVALID);
    cr_expect_eq(ks_keystore_check_branch_key_id(id, KS_BRANCH_KEY_ID_MAX + 1, &err), KS_E_INVALID);
    id[KS_BRANCH_KEY_ID_MAX] = '\0';
    cr_expect_eq(ks_keystore_check_branch_key_id(id, KS_BRANCH_KEY_ID_MAX, &err), KS_OK);
    free(id);
}

Test(keystore, get_version_refuses_non_uuid_versions)
{
    /* keystored only ever writes lowercase UUID versions; anything else is refused before I/O. */
    char *v = create_bk(), upper[KS_UUID_LEN + 1];
    size_t i;
    for (i = 0; i <= KS_UUID_LEN; i++)
        upper[i] = (char)(v[i] >= 'a' && v[i] <= 'f' ? v[i] - 32 : v[i]);
    get_fails(F.ks, &F.rel, VERSION, "bk", "", KS_E_INVALID, NULL);
    get_fails(F.ks, &F.rel, VERSION, "bk", "not-a-uuid", KS_E_INVALID, NULL);
    if (strcmp(upper, v) != 0)
        get_fails(F.ks, &F.rel, VERSION, "bk", upper, KS_E_INVALID, NULL);
    free(v);
}

/* "arn:aws:kms:us-east-1:111122223333:key/" + euro signs (3 bytes, 1 UTF-16 unit each): units
 * UTF-16 code units in all. Caller frees. */
static char *euro_arn(size_t units)
{
    static const char prefix[] = "arn:aws:kms:us-east-1:111122223333:key/";
    size_t i, at = sizeof prefix - 1;
    char *s = malloc(at + 3 * units + 1);
    cr_assert_not_null(s);
    memcpy(s, prefix, at);
    for (i = sizeof prefix - 1; i < units; i++, at += 3)
        memcpy(s + at, "\xe2\x82\xac", 3);
    s[at] = '\0';
    return s;
}

Test(keystore, stored_arn_length_counts_utf16_units)
{
    /* aws/arn.h, as config/ counts (docs/reference/branch-key-store.md sections 5 and 7): a
     * stored kms-arn is 1..2048 characters in UTF-16 code units, so 2048 three-byte characters
     * (over 6000 bytes) are read, and 2049 are not. */
    unsigned char key[KEY_LEN], beacon_key[KEY_LEN], key2[KEY_LEN], beacon_key2[KEY_LEN];
    char *ok = euro_arn(KS_ARN_MAX), *too_long = euro_arn(KS_ARN_MAX + 1);
    struct fake_kms fake;
    struct ks_kms_relationship rel;
    int k;

    cr_assert_gt(strlen(ok), 3 * (KS_ARN_MAX - 64));
    fake_init(&fake, 1);
    hand_build(F.ks, "wide", ok, HAND_V, NULL, key, beacon_key);
    hand_build(F.ks, "wider", too_long, HAND_V, NULL, key2, beacon_key2);
    rel = relationship(&fake.base, KS_KMS_DISCOVERY, NULL, NULL);
    expect_hand_gets(&fake, &rel, "wide", key, beacon_key, ok);
    for (k = ACTIVE; k <= BEACON; k++)
        get_fails(F.ks, &rel, (enum kind)k, "wider", HAND_V, KS_E_CORRUPT,
                  "(attribute out of range)");
    free(ok);
    free(too_long);
}

/* --- hierarchy version 2 (docs/reference/hv2.md) ---------------------------------------- */

static char *create_hv(struct ks_keystore *ks, const struct ks_kms_relationship *rel,
                       const char *id, int hv)
{
    struct ks_ec ec;
    char *out = NULL;
    struct ks_error err;
    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, "department", "admin"), 0);
    cr_assert_eq(ks_keystore_create_key_hv(ks, rel, id, &ec, hv, &out, &err), KS_OK, "%s",
                 err.message);
    ks_ec_free(&ec);
    return out;
}

static unsigned long long calls(const struct ks_kms_counters *c, enum ks_kms_op op)
{
    return (unsigned long long)c->calls[op];
}

/* The branch key context of a stored item by hand (section 2): attributes but enc, tablename. */
static void hand_bkc(const struct ks_item *item, const char *tablename, struct ks_ec *bkc)
{
    ks_ec_init(bkc);
    for (size_t i = 0; i < item->count; i++)
        if (strcmp(item->attrs[i].name, "enc") != 0)
            cr_assert_eq(ks_ec_set(bkc, item->attrs[i].name, (const char *)item->attrs[i].value),
                         0);
    cr_assert_eq(ks_ec_set(bkc, "tablename", tablename), 0);
}

/* Decrypts a stored HV-2 enc with the local KMS directly; returns the plaintext length. */
static size_t raw_decrypt(const struct ks_item *item, const struct ks_ec *ec, unsigned char *out)
{
    const struct ks_attr *enc = ks_item_get(item, "enc");
    struct ks_kms_call call = {NULL, 0};
    struct ks_kms_result r;
    struct ks_error err;
    size_t n = 0;
    ks_kms_result_init(&r);
    if (F.local->ops->decrypt(F.local, &call, F.arn, enc->value, enc->len, ec, &r, &err) == KS_OK) {
        n = r.plaintext_len;
        memcpy(out, r.plaintext, n < 80 ? n : 80);
    }
    ks_kms_result_free(&r);
    return n;
}

Test(keystore, hv2_create_items_plaintext_and_kms_calls)
{
    struct ks_kms_counters counters = {0};
    struct ks_kms_relationship rel = F.rel;
    struct ks_item item;
    struct ks_ec bkc, kms_ec, prefixed;
    unsigned char plain[80], digest[48];
    struct ks_error err;
    struct ks_materials *m;
    rel.counters = &counters;
    free(create_hv(F.ks, &rel, "h2", 2));
    /* hv2.md section 5: GenerateDataKey x2, Encrypt x3, nothing else. */
    cr_expect_eq(calls(&counters, KS_KMS_OP_GENERATE_DATA_KEY), 2);
    cr_expect_eq(calls(&counters, KS_KMS_OP_ENCRYPT), 3);
    cr_expect_eq(calls(&counters, KS_KMS_OP_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT), 0);
    cr_expect_eq(calls(&counters, KS_KMS_OP_RE_ENCRYPT), 0);
    ks_item_init(&item);
    read_item(F.ks, ACTIVE, "h2", NULL, &item);
    expect_attr(&item, "hierarchy-version", KS_ATTR_N, "2");
    expect_attr(&item, "aws-crypto-ec:department", KS_ATTR_S, "admin");
    cr_expect_null(ks_item_get(&item, "tablename"));
    /* The KMS context is the custom one unprefixed; the prefixed one is refused by KMS. */
    ks_ec_init(&kms_ec);
    ks_ec_set(&kms_ec, "department", "admin");
    hand_bkc(&item, LOGICAL, &bkc);
    cr_assert_eq(raw_decrypt(&item, &kms_ec, plain), 80);
    cr_assert_eq(ks_hv2_digest(&bkc, digest, &err), KS_OK);
    cr_expect_eq(memcmp(plain, digest, 48), 0, "digest || key layout");
    ks_ec_init(&prefixed);
    ks_ec_set(&prefixed, "aws-crypto-ec:department", "admin");
    cr_expect_eq(raw_decrypt(&item, &prefixed, plain), 0);
    m = get_ok(F.ks, &rel, ACTIVE, "h2", NULL);
    cr_expect_eq(m->hierarchy_version, 2);
    cr_expect_str_eq(ks_ec_get(&m->encryption_context, "department"), "admin");
    cr_expect_eq(memcmp(m->key, plain + 48, 32), 0);
    ks_materials_free(m);
    ks_ec_free(&bkc);
    ks_ec_free(&kms_ec);
    ks_ec_free(&prefixed);
    ks_item_free(&item);
}

Test(keystore, hv2_version_key_wraps_the_same_new_material)
{
    struct ks_kms_counters counters = {0};
    struct ks_kms_relationship rel = F.rel;
    struct ks_materials *old, *active, *newv, *oldv;
    char *nv = NULL;
    struct ks_error err;
    struct ks_item item;
    free(create_hv(F.ks, &F.rel, "h2", 2));
    old = get_ok(F.ks, &F.rel, ACTIVE, "h2", NULL);
    rel.counters = &counters;
    F.now = T1;
    cr_assert_eq(ks_keystore_version_key(F.ks, &rel, "h2", &nv, &err), KS_OK, "%s", err.message);
    cr_expect_eq(calls(&counters, KS_KMS_OP_DECRYPT), 1);
    cr_expect_eq(calls(&counters, KS_KMS_OP_GENERATE_DATA_KEY), 1);
    cr_expect_eq(calls(&counters, KS_KMS_OP_ENCRYPT), 2);
    cr_expect_eq(calls(&counters, KS_KMS_OP_RE_ENCRYPT), 0);
    active = get_ok(F.ks, &F.rel, ACTIVE, "h2", NULL);
    newv = get_ok(F.ks, &F.rel, VERSION, "h2", nv);
    oldv = get_ok(F.ks, &F.rel, VERSION, "h2", old->version);
    cr_expect_str_eq(active->version, nv);
    /* The MPL branch's bug (hv2.md section 6) would make these differ. */
    cr_expect_eq(memcmp(active->key, newv->key, 32), 0);
    cr_expect_neq(memcmp(active->key, old->key, 32), 0);
    cr_expect_eq(memcmp(oldv->key, old->key, 32), 0);
    ks_item_init(&item);
    read_item(F.ks, VERSION, "h2", nv, &item);
    expect_attr(&item, "hierarchy-version", KS_ATTR_N, "2");
    expect_attr(&item, "create-time", KS_ATTR_S, T1_TEXT);
    ks_item_free(&item);
    ks_materials_free(old);
    ks_materials_free(active);
    ks_materials_free(newv);
    ks_materials_free(oldv);
    free(nv);
}

/* Creates an HV-2 "h2", reads its ACTIVE, applies fn, and returns a keystore holding it. */
static struct ks_keystore *hv2_tampered(void (*fn)(struct ks_item *))
{
    struct ks_item items[3];
    struct ks_keystore *ks;
    struct ks_materials *m;
    char *v;
    static int created; /* one HV-2 key on F.ks serves every row */
    if (!created++)
        free(create_hv(F.ks, &F.rel, "h2", 2));
    m = get_ok(F.ks, &F.rel, ACTIVE, "h2", NULL);
    v = strdup(m->version);
    ks_materials_free(m);
    for (int k = 0; k < 3; k++)
        ks_item_init(&items[k]);
    read_item(F.ks, ACTIVE, "h2", NULL, &items[ACTIVE]);
    read_item(F.ks, VERSION, "h2", v, &items[VERSION]);
    read_item(F.ks, BEACON, "h2", NULL, &items[BEACON]);
    fn(&items[ACTIVE]);
    ks = reload(&items[ACTIVE], &items[VERSION], &items[BEACON]);
    for (int k = 0; k < 3; k++)
        ks_item_free(&items[k]);
    free(v);
    return ks;
}

static void t2_unmodeled(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "extra", "x"), 0);
}
static void t2_custom_value(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "aws-crypto-ec:department", "sales"), 0);
}
static void t2_create_time(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "create-time", T1_TEXT), 0);
}
static void t2_enc_32(struct ks_item *i)
{
    /* A 32-byte plaintext encrypted under the right key and context: KMS accepts it. */
    unsigned char pt[32] = {1};
    struct ks_ec ec;
    struct ks_kms_call call = {NULL, 0};
    struct ks_kms_result r;
    struct ks_error err;
    ks_ec_init(&ec);
    ks_ec_set(&ec, "department", "admin");
    ks_kms_result_init(&r);
    cr_assert_eq(F.local->ops->encrypt(F.local, &call, F.arn, pt, 32, &ec, &r, &err), KS_OK);
    cr_assert_eq(ks_item_set_b(i, "enc", r.ciphertext.data, r.ciphertext.len), 0);
    ks_kms_result_free(&r);
    ks_ec_free(&ec);
}

static void hv2_tamper_row(void (*fn)(struct ks_item *), ks_status expected, const char *message,
                           unsigned long long decrypts)
{
    struct ks_kms_counters counters = {0};
    struct ks_kms_relationship rel = F.rel;
    struct ks_keystore *ks = hv2_tampered(fn);
    rel.counters = &counters;
    get_fails(ks, &rel, ACTIVE, "h2", NULL, expected, message);
    cr_expect_eq(calls(&counters, KS_KMS_OP_DECRYPT), decrypts);
    ks_keystore_destroy(ks);
}

Test(keystore, hv2_tamper_matrix)
{
    /* Issue 11 item 8, at the keystore layer. */
    hv2_tamper_row(t2_unmodeled, KS_E_CORRUPT, "un-modeled", 0);
    hv2_tamper_row(t2_custom_value, KS_E_KMS, "InvalidCiphertextException", 1);
    hv2_tamper_row(t2_create_time, KS_E_CORRUPT, "digest", 1);
    hv2_tamper_row(t2_enc_32, KS_E_CORRUPT, "80 bytes", 1);
    hv2_tamper_row(t_kms_arn_other_key, KS_E_INVALID, MSG_ACTIVE_ARN, 0);
}

Test(keystore, hv2_other_logical_name_fails_the_digest)
{
    struct ks_keystore_params p = {KS_NAME, "another-logical", NULL, NULL, &F.clock, NULL};
    struct ks_item items[3];
    struct ks_keystore *ks = NULL;
    struct ks_materials *m;
    struct ks_error err;
    free(create_hv(F.ks, &F.rel, "h2", 2));
    m = get_ok(F.ks, &F.rel, ACTIVE, "h2", NULL);
    for (int k = 0; k < 3; k++)
        ks_item_init(&items[k]);
    read_item(F.ks, ACTIVE, "h2", NULL, &items[ACTIVE]);
    read_item(F.ks, VERSION, "h2", m->version, &items[VERSION]);
    read_item(F.ks, BEACON, "h2", NULL, &items[BEACON]);
    cr_assert_eq(ks_storage_memory_create(&p.storage, &err), KS_OK);
    cr_assert_eq(p.storage->ops->write_new_branch_key(p.storage, &items[ACTIVE], &items[VERSION],
                                                      &items[BEACON], &err),
                 KS_OK);
    cr_assert_eq(ks_keystore_create(&p, &ks, &err), KS_OK);
    get_fails(ks, &F.rel, ACTIVE, "h2", NULL, KS_E_CORRUPT, "logical key store name");
    get_fails(ks, &F.rel, VERSION, "h2", m->version, KS_E_CORRUPT, "digest");
    get_fails(ks, &F.rel, BEACON, "h2", NULL, KS_E_CORRUPT, "digest");
    ks_keystore_destroy(ks);
    for (int k = 0; k < 3; k++)
        ks_item_free(&items[k]);
    ks_materials_free(m);
}

Test(keystore, hv2_mixed_store_and_default)
{
    struct ks_materials *a1, *a2, *b2, *d;
    char *v = NULL, *id;
    struct ks_error err;
    free(create_hv(F.ks, &F.rel, "one", 1));
    free(create_hv(F.ks, &F.rel, "two", 2));
    cr_assert_eq(ks_keystore_version_key(F.ks, &F.rel, "one", &v, &err), KS_OK, "%s", err.message);
    free(v);
    cr_assert_eq(ks_keystore_version_key(F.ks, &F.rel, "two", &v, &err), KS_OK, "%s", err.message);
    a1 = get_ok(F.ks, &F.rel, ACTIVE, "one", NULL);
    a2 = get_ok(F.ks, &F.rel, ACTIVE, "two", NULL);
    b2 = get_ok(F.ks, &F.rel, BEACON, "two", NULL);
    cr_expect_eq(a1->hierarchy_version, 1);
    cr_expect_eq(a2->hierarchy_version, 2);
    cr_expect_str_eq(a2->version, v);
    cr_expect_eq(b2->hierarchy_version, 2);
    /* default_hierarchy_version: 2 applies when the request names none (0). */
    ks_keystore_set_default_hierarchy_version(F.ks, 2);
    id = create_hv(F.ks, &F.rel, NULL, 0);
    d = get_ok(F.ks, &F.rel, ACTIVE, id, NULL);
    cr_expect_eq(d->hierarchy_version, 2);
    ks_materials_free(a1);
    ks_materials_free(a2);
    ks_materials_free(b2);
    ks_materials_free(d);
    free(v);
    free(id);
}

Test(keystore, hv2_version_key_requires_the_exact_arn)
{
    /* hv2.md section 6 step 4: an MRK relationship that matches HV-1-style is not enough. */
    struct ks_kms_relationship other = relationship(F.local, KS_KMS_KEY_ARN, ARN2, NULL);
    char *v = NULL;
    struct ks_error err;
    free(create_hv(F.ks, &F.rel, "h2", 2));
    cr_expect_eq(ks_keystore_version_key(F.ks, &other, "h2", &v, &err), KS_E_INVALID);
    cr_expect_null(v);
}

Test(keystore, hv2_over_long_key_in_bytes_is_400_before_kms)
{
    /* 22,000 three-byte characters: 22,000 UTF-16 units (HV-1's limit counts those) but 66,000
     * bytes, over the u16 of the digest's serialization (hv2.md section 3). */
    struct ks_kms_counters counters = {0};
    struct ks_kms_relationship rel = F.rel;
    size_t n = 22000;
    char *key = malloc(3 * n + 1);
    struct ks_ec ec;
    char *out = NULL;
    struct ks_error err;
    for (size_t i = 0; i < n; i++)
        memcpy(key + 3 * i, "\xe2\x82\xac", 3);
    key[3 * n] = '\0';
    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, key, "v"), 0);
    rel.counters = &counters;
    cr_expect_eq(ks_keystore_create_key_hv(F.ks, &rel, NULL, &ec, 2, &out, &err), KS_E_INVALID);
    cr_expect_not_null(strstr(err.message, "65535"), "%s", err.message);
    for (int op = 0; op < KS_KMS_OP_COUNT; op++)
        cr_expect_eq(calls(&counters, (enum ks_kms_op)op), 0, "KMS op %d called", op);
    cr_expect_null(out);
    ks_ec_free(&ec);
    free(key);
}
