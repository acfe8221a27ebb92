/*
 * test_mutation.c - branch key mutations (keystore/mutation.h; docs/reference/mutations.md) on
 * the memory storage and the local KMS: context-only and ARN-changing mutations with both
 * strategies, doNotVersion, paging and resume, the atomic mutation and its limit, the system
 * keys, and every error of the table (section 9 / README "Mutations"). After each completed
 * mutation every version is read back through the keystore under the terminal relationship and
 * compared with its original key bytes.
 */
#include <criterion/criterion.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ec.h"
#include "common/util.h"
#include "keystore/cache.h"
#include "keystore/keystore.h"
#include "keystore/mutation.h"
#include "keystore/testing.h"
#include "kms/kms.h"
#include "storage/storage.h"

#define LOGICAL "logical-ks"
#define ARN2 "arn:aws:kms:local:000000000000:key/22222222-2222-4222-8222-222222222222"
#define MAX_VERSIONS 128

struct fixture {
    char dir[64];
    char key_file[128], other_file[128];
    struct ks_kms *local, *other; /* other: a KMS that knows neither key */
    char arn[128];
    struct ks_keystore *ks;
    struct ks_kms_relationship strict1, strict2, discovery, foreign1, foreign2;
    struct ks_mutation_settings set;
    /* the key under test and its versions' original bytes */
    char *id;
    char versions[MAX_VERSIONS][40];
    unsigned char keys[MAX_VERSIONS][32];
    size_t n_versions;
    unsigned char beacon[32];
};

static struct fixture F;

static struct ks_kms_relationship rel_of(const char *name, struct ks_kms *kms,
                                         enum ks_kms_config_kind kind, const char *arn)
{
    struct ks_kms_relationship r = {name, kms, kind, arn, NULL, NULL, 0, NULL};
    return r;
}

static void setup(void)
{
    static const char *const ensure[] = {ARN2};
    struct ks_storage *s = NULL;
    struct ks_keystore_params p = {"ks", LOGICAL, NULL, NULL, NULL, NULL};
    struct ks_error err;

    memset(&F, 0, sizeof F);
    memcpy(F.dir, "/tmp/ks-test-mutation-XXXXXX", sizeof "/tmp/ks-test-mutation-XXXXXX");
    cr_assert_not_null(mkdtemp(F.dir));
    snprintf(F.key_file, sizeof F.key_file, "%s/local.keys", F.dir);
    snprintf(F.other_file, sizeof F.other_file, "%s/other.keys", F.dir);
    cr_assert_eq(ks_kms_local_open(F.key_file, ensure, 1, KS_KMS_LOCAL_MAY_CREATE, &F.local, &err),
                 KS_OK, "%s", err.message);
    cr_assert_eq(ks_kms_local_open(F.other_file, NULL, 0, KS_KMS_LOCAL_MAY_CREATE, &F.other, &err),
                 KS_OK, "%s", err.message);
    cr_assert_eq(ks_kms_local_default_arn(F.local, F.arn, sizeof F.arn), KS_OK);
    cr_assert_eq(ks_storage_memory_create(&s, &err), KS_OK);
    p.storage = s;
    cr_assert_eq(ks_keystore_create(&p, &F.ks, &err), KS_OK);
    F.strict1 = rel_of("strict1", F.local, KS_KMS_KEY_ARN, F.arn);
    F.strict2 = rel_of("strict2", F.local, KS_KMS_KEY_ARN, ARN2);
    F.discovery = rel_of("discovery", F.local, KS_KMS_DISCOVERY, NULL);
    F.foreign1 = rel_of("foreign1", F.other, KS_KMS_KEY_ARN, F.arn);
    F.foreign2 = rel_of("foreign2", F.other, KS_KMS_KEY_ARN, ARN2);
    F.set.page_size = 3;
    F.set.kms_in_flight = 4;
}

static void teardown(void)
{
    free(F.id);
    ks_keystore_destroy(F.ks);
    ks_kms_destroy(F.local);
    ks_kms_destroy(F.other);
    unlink(F.key_file);
    unlink(F.other_file);
    rmdir(F.dir);
}

TestSuite(mutation, .init = setup, .fini = teardown);

/* --- helpers ----------------------------------------------------------------------------- */

static void read_key(const struct ks_kms_relationship *rel, const char *version,
                     unsigned char out[32], struct ks_ec *ec_out, const char **arn_out)
{
    struct ks_key_ref *ref = NULL;
    struct ks_error err;
    const struct ks_materials *m;
    ks_status st = version ? ks_keystore_get_version(F.ks, rel, NULL, F.id, version, &ref, &err)
                           : ks_keystore_get_beacon(F.ks, rel, NULL, F.id, &ref, &err);
    cr_assert_eq(st, KS_OK, "read %s: %s", version ? version : "beacon", err.message);
    m = ks_key_ref_materials(ref);
    memcpy(out, m->key, 32);
    if (ec_out)
        ks_ec_copy(ec_out, &m->encryption_context);
    if (arn_out)
        *arn_out = strcmp(m->kms_arn, F.arn) == 0 ? F.arn : ARN2;
    ks_key_ref_release(ref);
}

/* A key with custom context {tenant: a} and n versions; remembers every version's bytes. */
static void make_key(size_t n)
{
    struct ks_ec ec;
    struct ks_error err;
    struct ks_key_ref *ref;
    size_t i;

    ks_ec_init(&ec);
    ks_ec_set(&ec, "tenant", "a");
    cr_assert_eq(ks_keystore_create_key(F.ks, &F.strict1, NULL, &ec, &F.id, &err), KS_OK, "%s",
                 err.message);
    ks_ec_free(&ec);
    for (i = 1; i < n; i++) {
        char *v = NULL;
        cr_assert_eq(ks_keystore_version_key(F.ks, &F.strict1, F.id, &v, &err), KS_OK);
        free(v);
    }
    /* Every version's uuid: the ACTIVE names the newest; the others come from storage. */
    {
        struct ks_storage *s = ks_keystore_storage(F.ks);
        struct ks_version_page page;
        char *start = NULL;
        do {
            cr_assert_eq(s->ops->query_for_versions(s, F.id, start, 98, &page, &err), KS_OK);
            free(start);
            start = page.next ? strdup(page.next) : NULL;
            for (i = 0; i < page.count; i++)
                snprintf(F.versions[F.n_versions++], 40, "%s",
                         ks_item_get_s(&page.items[i], "type") + strlen("branch:version:"));
            ks_version_page_free(&page);
        } while (start);
    }
    cr_assert_eq(F.n_versions, n);
    for (i = 0; i < n; i++)
        read_key(&F.strict1, F.versions[i], F.keys[i], NULL, NULL);
    read_key(&F.strict1, NULL, F.beacon, NULL, NULL);
    cr_assert_eq(ks_keystore_get_active(F.ks, &F.strict1, NULL, F.id, &ref, &err), KS_OK);
    ks_key_ref_release(ref);
}

static struct ks_mutation_strategy reencrypt(const struct ks_kms_relationship *rel)
{
    struct ks_mutation_strategy s = {KS_STRATEGY_REENCRYPT, rel, NULL, NULL};
    return s;
}

static struct ks_mutation_strategy decrypt_encrypt(const struct ks_kms_relationship *d,
                                                   const struct ks_kms_relationship *e)
{
    struct ks_mutation_strategy s = {KS_STRATEGY_DECRYPT_ENCRYPT, NULL, d, e};
    return s;
}

static ks_status init(const char *arn, const struct ks_ec *ec, struct ks_mutation_strategy s,
                      int do_not_version, int atomic, struct ks_mutation_init_result *r,
                      struct ks_error *err)
{
    struct ks_mutation_init_input in = {F.id, arn, ec, s, do_not_version, atomic, 0};
    return ks_mutation_initialize(F.ks, &F.set, &in, r, err);
}

/* ApplyMutation until complete; returns the number of pages. */
static size_t apply_all(const struct ks_mutation_token *t, struct ks_mutation_strategy s,
                        size_t *mutated)
{
    struct ks_mutation_token token = *t;
    struct ks_mutation_apply_result r;
    struct ks_error err;
    size_t pages = 0;
    char id[256];

    snprintf(id, sizeof id, "%s", t->identifier);
    token.identifier = id;
    *mutated = 0;
    for (;;) {
        cr_assert_eq(ks_mutation_apply(F.ks, &F.set, &token, 0, &s, &r, &err), KS_OK, "%s",
                     err.message);
        pages++;
        *mutated += r.versions_mutated;
        if (r.completed) {
            ks_mutation_apply_result_free(&r);
            return pages;
        }
        cr_assert_str_eq(r.token.uuid, t->uuid);
        ks_mutation_apply_result_free(&r);
        cr_assert_lt(pages, 1000);
    }
}

/* Every old version (and the beacon) reads under rel with its original bytes and context
 * {key: value}. */
static void check_terminal(const struct ks_kms_relationship *rel, const char *key,
                           const char *value)
{
    unsigned char k[32];
    size_t i;
    for (i = 0; i < F.n_versions; i++) {
        struct ks_ec ec;
        ks_ec_init(&ec);
        read_key(rel, F.versions[i], k, &ec, NULL);
        cr_assert_eq(memcmp(k, F.keys[i], 32), 0, "version %zu changed bytes", i);
        cr_assert_eq(ec.count, 1);
        cr_assert_str_eq(ks_ec_get(&ec, key), value);
        ks_ec_free(&ec);
    }
    read_key(rel, NULL, k, NULL, NULL);
    cr_assert_eq(memcmp(k, F.beacon, 32), 0, "beacon changed bytes");
}

static void assert_no_mutation(void)
{
    struct ks_mutation_description d;
    struct ks_error err;
    cr_assert_eq(ks_mutation_describe(F.ks, F.id, &d, &err), KS_E_NOT_FOUND);
}

static struct ks_ec one_ec(const char *k, const char *v)
{
    struct ks_ec ec;
    ks_ec_init(&ec);
    ks_ec_set(&ec, k, v);
    return ec;
}

/* --- successful mutations ----------------------------------------------------------------- */

Test(mutation, context_only_reencrypt_paged)
{
    struct ks_mutation_init_result r;
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "b");
    struct ks_key_ref *ref;
    size_t mutated, pages;

    make_key(7);
    cr_assert_eq(init(NULL, &ec, reencrypt(&F.strict1), 0, 0, &r, &err), KS_OK, "%s", err.message);
    cr_assert_eq(r.flag, KS_MUTATION_CREATED);
    cr_assert_eq(r.log.count, 5);
    pages = apply_all(&r.token, reencrypt(&F.strict1), &mutated);
    /* 7 old versions plus the new one created in the terminal state, 3 per page. */
    cr_assert_eq(pages, 3);
    cr_assert_eq(mutated, 7);
    check_terminal(&F.strict1, "tenant", "b");
    assert_no_mutation();
    /* Rotated: the ACTIVE is a new version under the terminal context. */
    cr_assert_eq(ks_keystore_get_active(F.ks, &F.strict1, NULL, F.id, &ref, &err), KS_OK);
    cr_assert_str_eq(ks_ec_get(&ks_key_ref_materials(ref)->encryption_context, "tenant"), "b");
    for (size_t i = 0; i < F.n_versions; i++)
        cr_assert_str_neq(ks_key_ref_materials(ref)->version, F.versions[i]);
    ks_key_ref_release(ref);
    ks_mutation_init_result_free(&r);
    ks_ec_free(&ec);
}

Test(mutation, arn_change_discovery_reencrypt)
{
    struct ks_mutation_init_result r;
    struct ks_error err;
    unsigned char k[32];
    size_t mutated;

    make_key(4);
    cr_assert_eq(init(ARN2, NULL, reencrypt(&F.discovery), 0, 0, &r, &err), KS_OK, "%s",
                 err.message);
    apply_all(&r.token, reencrypt(&F.discovery), &mutated);
    cr_assert_eq(mutated, 4);
    check_terminal(&F.strict2, "tenant", "a");
    /* Nothing is left under the original key. */
    cr_assert_eq(ks_keystore_get_version(F.ks, &F.strict1, NULL, F.id, F.versions[0],
                                         (struct ks_key_ref **)k, &err),
                 KS_E_INVALID);
    ks_mutation_init_result_free(&r);
}

Test(mutation, arn_and_context_decrypt_encrypt_do_not_version)
{
    struct ks_mutation_init_result r;
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "c");
    struct ks_key_ref *ref;
    size_t mutated;
    char active_version[40];

    make_key(5);
    cr_assert_eq(ks_keystore_get_active(F.ks, &F.strict1, NULL, F.id, &ref, &err), KS_OK);
    snprintf(active_version, sizeof active_version, "%s", ks_key_ref_materials(ref)->version);
    ks_key_ref_release(ref);
    cr_assert_eq(init(ARN2, &ec, decrypt_encrypt(&F.strict1, &F.strict2), 1, 0, &r, &err), KS_OK,
                 "%s", err.message);
    apply_all(&r.token, decrypt_encrypt(&F.strict1, &F.strict2), &mutated);
    /* doNotVersion: the ACTIVE's own version was mutated by InitializeMutation. */
    cr_assert_eq(mutated, 4);
    check_terminal(&F.strict2, "tenant", "c");
    cr_assert_eq(ks_keystore_get_active(F.ks, &F.strict2, NULL, F.id, &ref, &err), KS_OK);
    cr_assert_str_eq(ks_key_ref_materials(ref)->version, active_version);
    ks_key_ref_release(ref);
    ks_mutation_init_result_free(&r);
    ks_ec_free(&ec);
}

Test(mutation, kms_system_key_and_describe)
{
    struct ks_mutation_init_result r;
    struct ks_mutation_description d;
    struct ks_mutation_apply_result a;
    struct ks_mutation_settings trust = F.set;
    struct ks_mutation_strategy s = reencrypt(&F.strict1);
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "d");
    size_t mutated;

    make_key(3);
    F.set.kms_system_key = 1;
    F.set.sys_rel = &F.strict2;
    F.set.sys_arn = ARN2;
    cr_assert_eq(init(NULL, &ec, s, 0, 0, &r, &err), KS_OK, "%s", err.message);
    cr_assert_eq(ks_mutation_describe(F.ks, F.id, &d, &err), KS_OK, "%s", err.message);
    cr_assert_str_eq(d.system_key, "kmsSymmetricEncryption");
    cr_assert_str_eq(d.token.uuid, r.token.uuid);
    cr_assert_str_eq(d.original.kms_arn, F.arn);
    cr_assert_str_eq(ks_ec_get(&d.original.ec, "tenant"), "a");
    cr_assert_str_eq(ks_ec_get(&d.terminal.ec, "tenant"), "d");
    cr_assert_null(d.input_kms_arn);
    cr_assert_eq(d.input_has_ec, 1);
    cr_assert_eq(d.do_not_version, 0);
    cr_assert_eq(d.versions_original, 3);
    cr_assert_eq(d.versions_terminal, 1);
    cr_assert_eq(d.last_page_done, 0);
    ks_mutation_description_free(&d);
    /* The system key is not stored: applying with trustStorage fails verification. */
    cr_assert_eq(ks_mutation_apply(F.ks, &trust, &r.token, 0, &s, &a, &err),
                 KS_E_MUTATION_VERIFICATION);
    /* A KMS system key that cannot decrypt the signature: refused too (not MutationFrom). */
    F.set.sys_rel = &F.foreign2;
    cr_assert_neq(ks_mutation_apply(F.ks, &F.set, &r.token, 0, &s, &a, &err), KS_OK);
    F.set.sys_rel = &F.strict2;
    apply_all(&r.token, s, &mutated);
    check_terminal(&F.strict1, "tenant", "d");
    ks_mutation_init_result_free(&r);
    ks_ec_free(&ec);
}

Test(mutation, trust_storage_commitment_refused_by_kms_system_key)
{
    struct ks_mutation_init_result r;
    struct ks_mutation_apply_result a;
    struct ks_mutation_strategy s = reencrypt(&F.strict1);
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "e");

    make_key(2);
    cr_assert_eq(init(NULL, &ec, s, 0, 0, &r, &err), KS_OK);
    F.set.kms_system_key = 1;
    F.set.sys_rel = &F.strict2;
    F.set.sys_arn = ARN2;
    cr_assert_eq(ks_mutation_apply(F.ks, &F.set, &r.token, 0, &s, &a, &err),
                 KS_E_MUTATION_VERIFICATION);
    /* Resume verifies too. */
    ks_mutation_init_result_free(&r);
    cr_assert_eq(init(NULL, &ec, s, 0, 0, &r, &err), KS_E_MUTATION_VERIFICATION);
    ks_ec_free(&ec);
}

Test(mutation, resume_and_conflict)
{
    struct ks_mutation_init_result r, r2;
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "b"), other = one_ec("tenant", "x");
    struct ks_mutation_apply_result a;
    struct ks_mutation_strategy s = reencrypt(&F.strict1);
    size_t mutated;

    make_key(5);
    cr_assert_eq(init(NULL, &ec, s, 0, 0, &r, &err), KS_OK);
    cr_assert_eq(ks_mutation_apply(F.ks, &F.set, &r.token, 2, &s, &a, &err), KS_OK);
    cr_assert_eq(a.completed, 0);
    ks_mutation_apply_result_free(&a);
    /* The same input resumes: same token, no writes. */
    cr_assert_eq(init(NULL, &ec, s, 1, 0, &r2, &err), KS_OK, "%s", err.message);
    cr_assert_eq(r2.flag, KS_MUTATION_RESUMED);
    cr_assert_str_eq(r2.token.uuid, r.token.uuid);
    ks_mutation_init_result_free(&r2);
    /* A different one is a conflict. */
    cr_assert_eq(init(NULL, &other, s, 0, 0, &r2, &err), KS_E_MUTATION_CONFLICT);
    cr_assert_eq(init(F.arn, &ec, s, 0, 0, &r2, &err), KS_E_MUTATION_CONFLICT);
    /* VersionKey is refused while the mutation is in flight. */
    {
        char *v = NULL;
        cr_assert_eq(ks_keystore_version_key(F.ks, &F.strict1, F.id, &v, &err),
                     KS_E_MUTATION_CONFLICT);
    }
    apply_all(&r.token, s, &mutated);
    check_terminal(&F.strict1, "tenant", "b");
    /* After completion the same input is "already in the terminal state". */
    cr_assert_eq(init(NULL, &ec, s, 0, 0, &r2, &err), KS_E_MUTATION_INVALID);
    cr_assert(strstr(err.message, "terminal state"));
    ks_mutation_init_result_free(&r);
    ks_ec_free(&ec);
    ks_ec_free(&other);
}

Test(mutation, atomic)
{
    struct ks_mutation_init_result r;
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "z");

    make_key(6);
    cr_assert_eq(init(ARN2, &ec, reencrypt(&F.discovery), 0, 1, &r, &err), KS_OK, "%s",
                 err.message);
    cr_assert_eq(r.completed, 1);
    cr_assert_null(r.token.identifier);
    check_terminal(&F.strict2, "tenant", "z");
    assert_no_mutation();
    ks_mutation_init_result_free(&r);
    ks_ec_free(&ec);
}

Test(mutation, atomic_do_not_version_at_the_limit_and_over)
{
    struct ks_mutation_init_result r;
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "z");

    make_key(97);
    cr_assert_eq(init(NULL, &ec, reencrypt(&F.strict1), 1, 1, &r, &err), KS_E_UNSUPPORTED);
    cr_assert(strstr(err.message, "96"), "%s", err.message);
    cr_assert_eq(init(NULL, &ec, reencrypt(&F.strict1), 0, 1, &r, &err), KS_E_UNSUPPORTED);
    cr_assert(strstr(err.message, "95"), "%s", err.message);
    assert_no_mutation();
    ks_ec_free(&ec);
}

/* --- the error table ---------------------------------------------------------------------- */

Test(mutation, strategy_rules_refused_before_kms)
{
    struct ks_mutation_init_result r;
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "b");

    make_key(1);
    /* A strict relationship cannot reEncrypt to another ARN. */
    cr_assert_eq(init(ARN2, NULL, reencrypt(&F.strict1), 0, 0, &r, &err), KS_E_UNSUPPORTED);
    cr_assert(strstr(err.message, "strict1"), "%s", err.message);
    /* decrypt must accept the original ARN, encrypt the terminal one. */
    cr_assert_eq(init(ARN2, NULL, decrypt_encrypt(&F.strict2, &F.strict2), 0, 0, &r, &err),
                 KS_E_UNSUPPORTED);
    cr_assert_eq(init(ARN2, NULL, decrypt_encrypt(&F.strict1, &F.strict1), 0, 0, &r, &err),
                 KS_E_UNSUPPORTED);
    /* A context-only change through a relationship of another key. */
    cr_assert_eq(init(NULL, &ec, reencrypt(&F.strict2), 0, 0, &r, &err), KS_E_UNSUPPORTED);
    assert_no_mutation();
    ks_ec_free(&ec);
}

Test(mutation, bad_input)
{
    struct ks_mutation_init_result r;
    struct ks_error err;
    struct ks_ec empty, prefixed = one_ec("aws-crypto-ec:x", "1"), blank = one_ec("x", "");

    ks_ec_init(&empty);
    make_key(1);
    cr_assert_eq(init(NULL, NULL, reencrypt(&F.strict1), 0, 0, &r, &err), KS_E_INVALID);
    cr_assert_eq(init(NULL, &empty, reencrypt(&F.strict1), 0, 0, &r, &err), KS_E_INVALID);
    cr_assert_eq(init(NULL, &prefixed, reencrypt(&F.strict1), 0, 0, &r, &err), KS_E_INVALID);
    cr_assert_eq(init(NULL, &blank, reencrypt(&F.strict1), 0, 0, &r, &err), KS_E_INVALID);
    cr_assert_eq(init("arn:aws:kms:us-east-1:111122223333:alias/x", NULL, reencrypt(&F.discovery),
                      0, 0, &r, &err),
                 KS_E_INVALID);
    /* Nothing to do: the terminal state is the current one. */
    cr_assert_eq(init(F.arn, NULL, reencrypt(&F.strict1), 0, 0, &r, &err), KS_E_MUTATION_INVALID);
    ks_ec_free(&prefixed);
    ks_ec_free(&blank);
}

Test(mutation, tokens_stale_unknown_and_abort)
{
    struct ks_mutation_init_result r;
    struct ks_mutation_apply_result a;
    struct ks_mutation_token bad;
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "b");
    struct ks_mutation_strategy s = reencrypt(&F.strict1);
    unsigned char k[32];

    make_key(3);
    cr_assert_eq(init(NULL, &ec, s, 0, 0, &r, &err), KS_OK);
    bad = r.token;
    memcpy(bad.uuid, "00000000-0000-4000-8000-000000000000", 37);
    cr_assert_eq(ks_mutation_apply(F.ks, &F.set, &bad, 0, &s, &a, &err), KS_E_MUTATION_INVALID);
    cr_assert_eq(ks_mutation_abort(F.ks, &bad, &err), KS_E_MUTATION_INVALID);
    cr_assert_eq(ks_mutation_abort(F.ks, &r.token, &err), KS_OK, "%s", err.message);
    assert_no_mutation();
    /* Aborted: the token is stale, every item still reads under its own ARN and context. */
    cr_assert_eq(ks_mutation_apply(F.ks, &F.set, &r.token, 0, &s, &a, &err), KS_E_MUTATION_INVALID);
    for (size_t i = 0; i < F.n_versions; i++) {
        read_key(&F.strict1, F.versions[i], k, NULL, NULL);
        cr_assert_eq(memcmp(k, F.keys[i], 32), 0);
    }
    ks_mutation_init_result_free(&r);
    ks_ec_free(&ec);
}

Test(mutation, kms_refusals_name_the_side)
{
    struct ks_mutation_init_result r;
    struct ks_error err;

    make_key(2);
    /* The original side: a KMS that does not have the original key. */
    cr_assert_eq(init(ARN2, NULL, decrypt_encrypt(&F.foreign1, &F.strict2), 0, 0, &r, &err),
                 KS_E_MUTATION_FROM);
    cr_assert(strstr(err.message, "KMS "), "%s", err.message);
    cr_assert(strstr(err.message, F.arn), "%s", err.message);
    /* The terminal side. */
    cr_assert_eq(init(ARN2, NULL, decrypt_encrypt(&F.strict1, &F.foreign2), 0, 0, &r, &err),
                 KS_E_MUTATION_TO);
    cr_assert(strstr(err.message, ARN2), "%s", err.message);
    assert_no_mutation();
}

Test(mutation, version_in_neither_state)
{
    struct ks_mutation_init_result r;
    struct ks_mutation_apply_result a;
    struct ks_mutation_state m;
    struct ks_storage *st;
    struct ks_item odd, cur;
    struct ks_storage_write w;
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "b");
    struct ks_mutation_strategy s = reencrypt(&F.strict1);

    make_key(2);
    cr_assert_eq(init(NULL, &ec, s, 0, 0, &r, &err), KS_OK);
    /* Rewrite one old version with a third context, through a page write of the mutation. */
    st = ks_keystore_storage(F.ks);
    cr_assert_eq(st->ops->get_mutation(st, F.id, &m, &err), KS_OK);
    ks_item_init(&cur);
    cr_assert_eq(st->ops->get_version(st, F.id, F.versions[0], &cur, &err), KS_OK);
    ks_item_init(&odd);
    ks_item_copy(&odd, &cur);
    ks_item_set_s(&odd, "aws-crypto-ec:tenant", "other");
    w.item = &odd;
    w.old = &cur;
    cr_assert_eq(
        st->ops->write_mutated_versions(st, &w, 1, &m.commitment, &m.index, &m.index, 0, &err),
        KS_OK, "%s", err.message);
    cr_assert_eq(ks_mutation_apply(F.ks, &F.set, &r.token, 0, &s, &a, &err), KS_E_UNEXPECTED_STATE);
    ks_item_free(&odd);
    ks_item_free(&cur);
    ks_mutation_state_free(&m);
    ks_mutation_init_result_free(&r);
    ks_ec_free(&ec);
}

Test(mutation, lost_page_race_is_a_conflict)
{
    struct ks_mutation_init_result r;
    struct ks_mutation_apply_result a;
    struct ks_mutation_state m;
    struct ks_storage *st;
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "b");
    struct ks_mutation_strategy s = reencrypt(&F.strict1);

    make_key(4);
    cr_assert_eq(init(NULL, &ec, s, 0, 0, &r, &err), KS_OK);
    st = ks_keystore_storage(F.ks);
    cr_assert_eq(st->ops->get_mutation(st, F.id, &m, &err), KS_OK);
    cr_assert_eq(ks_mutation_apply(F.ks, &F.set, &r.token, 2, &s, &a, &err), KS_OK);
    ks_mutation_apply_result_free(&a);
    /* A client that read the index before that page was written loses. */
    cr_assert_eq(
        st->ops->write_mutated_versions(st, NULL, 0, &m.commitment, &m.index, &m.index, 0, &err),
        KS_E_MUTATION_CONFLICT);
    ks_mutation_state_free(&m);
    ks_mutation_init_result_free(&r);
    ks_ec_free(&ec);
}

Test(mutation, beacon_not_original)
{
    struct ks_mutation_init_result r;
    struct ks_storage *st;
    struct ks_item active, version, beacon, odd;
    struct ks_storage_write wa, wv, wb;
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "b");
    const char *v;

    make_key(1);
    st = ks_keystore_storage(F.ks);
    ks_item_init(&active);
    ks_item_init(&version);
    ks_item_init(&beacon);
    ks_item_init(&odd);
    cr_assert_eq(st->ops->get_active(st, F.id, &active, &err), KS_OK);
    v = ks_item_get_s(&active, "version") + strlen("branch:version:");
    cr_assert_eq(st->ops->get_version(st, F.id, v, &version, &err), KS_OK);
    cr_assert_eq(st->ops->get_beacon(st, F.id, &beacon, &err), KS_OK);
    /* The beacon gets another context behind the keystore's back (one atomic write that
     * rewrites ACTIVE and version unchanged). */
    ks_item_copy(&odd, &beacon);
    ks_item_set_s(&odd, "aws-crypto-ec:tenant", "other");
    wa.item = wa.old = &active;
    wv.item = wv.old = &version;
    wb.item = &odd;
    wb.old = &beacon;
    cr_assert_eq(st->ops->write_atomic_mutation(st, &wa, &wv, &wb, NULL, 0, &err), KS_OK, "%s",
                 err.message);
    cr_assert_eq(init(NULL, &ec, reencrypt(&F.strict1), 0, 0, &r, &err), KS_E_UNEXPECTED_STATE);
    cr_assert(strstr(err.message, "beacon"), "%s", err.message);
    assert_no_mutation();
    ks_item_free(&active);
    ks_item_free(&version);
    ks_item_free(&beacon);
    ks_item_free(&odd);
    ks_ec_free(&ec);
}

/* --- concurrent pages (issue 10 item 3) and the cache (item 5) --------------------------- */

/* A KMS that forwards to the local one after a short sleep and records how many calls were in
 * flight at once. */
struct slow_kms {
    struct ks_kms base;
    struct ks_kms *inner;
    atomic_int now, peak;
};

static struct slow_kms SLOW;

static void slow_enter(void)
{
    int n = atomic_fetch_add(&SLOW.now, 1) + 1, p = atomic_load(&SLOW.peak);
    while (n > p && !atomic_compare_exchange_weak(&SLOW.peak, &p, n))
        ;
    usleep(3000);
}

static ks_status slow_re_encrypt(struct ks_kms *k, const struct ks_kms_call *c,
                                 const unsigned char *ct, size_t ct_len, const struct ks_ec *sec,
                                 const char *sid, const char *did, const struct ks_ec *dec,
                                 struct ks_kms_result *out, struct ks_error *err)
{
    ks_status st;
    (void)k;
    slow_enter();
    st = SLOW.inner->ops->re_encrypt(SLOW.inner, c, ct, ct_len, sec, sid, did, dec, out, err);
    atomic_fetch_sub(&SLOW.now, 1);
    return st;
}

static ks_status slow_gdk(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                          size_t n, const struct ks_ec *ec, struct ks_kms_result *out,
                          struct ks_error *err)
{
    (void)k;
    return SLOW.inner->ops->generate_data_key_without_plaintext(SLOW.inner, c, key_id, n, ec, out,
                                                                err);
}

static ks_status slow_decrypt(struct ks_kms *k, const struct ks_kms_call *c, const char *key_id,
                              const unsigned char *ct, size_t ct_len, const struct ks_ec *ec,
                              struct ks_kms_result *out, struct ks_error *err)
{
    (void)k;
    return SLOW.inner->ops->decrypt(SLOW.inner, c, key_id, ct, ct_len, ec, out, err);
}

Test(mutation, page_kms_calls_run_concurrently_up_to_kms_in_flight)
{
    static struct ks_kms_ops ops;
    struct ks_kms_relationship slow;
    struct ks_mutation_init_result r;
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "fast");
    size_t mutated;

    make_key(24);
    ops = *F.local->ops;
    ops.re_encrypt = slow_re_encrypt;
    ops.generate_data_key_without_plaintext = slow_gdk;
    ops.decrypt = slow_decrypt;
    memset(&SLOW, 0, sizeof SLOW);
    SLOW.base.ops = &ops;
    SLOW.inner = F.local;
    slow = rel_of("slow", &SLOW.base, KS_KMS_KEY_ARN, F.arn);
    F.set.page_size = 24;
    F.set.kms_in_flight = 6;
    cr_assert_eq(init(NULL, &ec, reencrypt(&slow), 0, 0, &r, &err), KS_OK, "%s", err.message);
    atomic_store(&SLOW.peak, 0);
    apply_all(&r.token, reencrypt(&slow), &mutated);
    cr_assert_eq(mutated, 24);
    cr_assert_gt(atomic_load(&SLOW.peak), 1, "calls of a page never overlapped");
    cr_assert_leq(atomic_load(&SLOW.peak), 6, "more than kms_in_flight at once");
    check_terminal(&F.strict1, "tenant", "fast");
    ks_mutation_init_result_free(&r);
    ks_ec_free(&ec);
}

Test(mutation, cache_forgets_the_key_at_initialize_and_completion)
{
    struct ks_cache_config cc = {100, 3600, 0, 0, 8, 10, 0};
    struct ks_cache *cache = NULL;
    struct ks_storage *s = NULL;
    struct ks_keystore *ks2 = NULL;
    struct ks_keystore_params p = {"ks", LOGICAL, NULL, NULL, NULL, NULL};
    struct ks_reader reader = {(const unsigned char *)"p", 1};
    struct ks_mutation_init_result r;
    struct ks_mutation_apply_result a;
    struct ks_mutation_strategy st = reencrypt(&F.strict1);
    struct ks_key_ref *ref;
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "cached");
    struct ks_keystore *saved = F.ks;

    cr_assert_eq(ks_cache_create(&cc, NULL, &cache, &err), KS_OK, "%s", err.message);
    cr_assert_eq(ks_storage_memory_create(&s, &err), KS_OK);
    p.storage = s;
    p.cache = cache;
    cr_assert_eq(ks_keystore_create(&p, &ks2, &err), KS_OK);
    F.ks = ks2;
    make_key(2);
    /* Cache the ACTIVE and the old version under the original context. */
    cr_assert_eq(ks_keystore_get_active(F.ks, &F.strict1, &reader, F.id, &ref, &err), KS_OK);
    ks_key_ref_release(ref);
    cr_assert_eq(
        ks_keystore_get_version(F.ks, &F.strict1, &reader, F.id, F.versions[0], &ref, &err), KS_OK);
    ks_key_ref_release(ref);
    cr_assert_eq(init(NULL, &ec, st, 0, 0, &r, &err), KS_OK);
    /* InitializeMutation rewrote the ACTIVE: the cached one is gone. */
    cr_assert_eq(ks_keystore_get_active(F.ks, &F.strict1, &reader, F.id, &ref, &err), KS_OK);
    cr_assert_str_eq(ks_ec_get(&ks_key_ref_materials(ref)->encryption_context, "tenant"), "cached");
    ks_key_ref_release(ref);
    cr_assert_eq(ks_mutation_apply(F.ks, &F.set, &r.token, 10, &st, &a, &err), KS_OK);
    cr_assert_eq(a.completed, 1);
    ks_mutation_apply_result_free(&a);
    /* Completed: the cached old version shows its terminal context. */
    cr_assert_eq(
        ks_keystore_get_version(F.ks, &F.strict1, &reader, F.id, F.versions[0], &ref, &err), KS_OK);
    cr_assert_str_eq(ks_ec_get(&ks_key_ref_materials(ref)->encryption_context, "tenant"), "cached");
    ks_key_ref_release(ref);
    ks_mutation_init_result_free(&r);
    ks_ec_free(&ec);
    F.ks = saved;
    ks_keystore_destroy(ks2);
    ks_cache_destroy(cache);
}

/* A storage driver from before the mutation operations (table version 2) is refused with 400
 * UnsupportedFeatureException by every mutation call, never called through a NULL method. */
Test(mutation, storage_without_mutation_operations_is_refused)
{
    struct ks_storage *s = ks_keystore_storage(F.ks);
    const struct ks_storage_ops *real = s->ops;
    struct ks_storage_ops old = *real;
    struct ks_mutation_description d;
    struct ks_mutation_token token;
    struct ks_error err;

    make_key(1);
    old.version = 2;
    old.get_mutation = NULL;
    s->ops = &old;
    cr_expect_eq(ks_mutation_describe(F.ks, F.id, &d, &err), KS_E_UNSUPPORTED);
    cr_expect_not_null(strstr(err.message, "no mutation operations"), "%s", err.message);
    struct ks_mutation_apply_result res;
    memset(&token, 0, sizeof token);
    token.identifier = F.id;
    cr_expect_eq(ks_mutation_abort(F.ks, &token, &err), KS_E_UNSUPPORTED);
    cr_expect_eq(ks_mutation_apply(F.ks, &F.set, &token, 1, NULL, &res, &err), KS_E_UNSUPPORTED);
    s->ops = real;
    cr_expect_eq(ks_mutation_describe(F.ks, F.id, &d, &err), KS_E_NOT_FOUND);
}

/* --- hierarchy version 2 terminals (issue 11 item 6; mutations.md section 12) ------------- */

#include <openssl/evp.h>

static ks_status init_hv(const char *arn, const struct ks_ec *ec, struct ks_mutation_strategy s,
                         int do_not_version, int hv, struct ks_mutation_init_result *r,
                         struct ks_error *err)
{
    struct ks_mutation_init_input in = {F.id, arn, ec, s, do_not_version, 0, hv};
    return ks_mutation_initialize(F.ks, &F.set, &in, r, err);
}

static int by_key(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* The test's own SHA-384 of hv2.md section 3's serialization of the item's branch key context
 * (its attributes but enc, numbers as strings, plus tablename). */
static void test_digest(const struct ks_item *item, unsigned char out[48])
{
    const char *names[64], *vals[64];
    size_t n = 0, i, j;
    unsigned char b[2];
    unsigned int len;
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    for (i = 0; i < item->count; i++)
        if (strcmp(item->attrs[i].name, "enc") != 0)
            names[n++] = item->attrs[i].name;
    names[n++] = "tablename";
    qsort(names, n, sizeof names[0], by_key);
    EVP_DigestInit_ex(md, EVP_sha384(), NULL);
    b[0] = 0;
    b[1] = (unsigned char)n;
    EVP_DigestUpdate(md, b, 2);
    for (i = 0; i < n; i++) {
        const struct ks_attr *a = ks_item_get(item, names[i]);
        vals[i] = a ? (const char *)a->value : LOGICAL;
        for (j = 0; j < 2; j++) {
            const char *s = j ? vals[i] : names[i];
            b[0] = (unsigned char)(strlen(s) >> 8);
            b[1] = (unsigned char)strlen(s);
            EVP_DigestUpdate(md, b, 2);
            EVP_DigestUpdate(md, s, strlen(s));
        }
    }
    EVP_DigestFinal_ex(md, out, &len);
    EVP_MD_CTX_free(md);
}

/* The stored item is HV-2 under arn: N 2, Decrypt under the unprefixed context gives 80 bytes,
 * digest || key, the digest matching the item and the key equal to want. */
static void check_hv2_item(const struct ks_item *item, const char *arn, const unsigned char *want)
{
    const struct ks_attr *hv = ks_item_get(item, "hierarchy-version");
    const struct ks_attr *enc = ks_item_get(item, "enc");
    struct ks_kms_call call = {NULL, 0};
    struct ks_kms_result r;
    struct ks_error err;
    unsigned char digest[48];
    struct ks_ec ec;
    size_t i;

    cr_assert_not_null(hv);
    cr_assert_str_eq((const char *)hv->value, "2");
    cr_assert_str_eq(ks_item_get_s(item, "kms-arn"), arn);
    ks_ec_init(&ec);
    for (i = 0; i < item->count; i++)
        if (strncmp(item->attrs[i].name, "aws-crypto-ec:", 14) == 0)
            ks_ec_set(&ec, item->attrs[i].name + 14, (const char *)item->attrs[i].value);
    ks_kms_result_init(&r);
    cr_assert_eq(F.local->ops->decrypt(F.local, &call, arn, enc->value, enc->len, &ec, &r, &err),
                 KS_OK, "%s", err.message);
    cr_assert_eq(r.plaintext_len, 80);
    test_digest(item, digest);
    cr_assert_eq(memcmp(r.plaintext, digest, 48), 0, "digest");
    if (want)
        cr_assert_eq(memcmp(r.plaintext + 48, want, 32), 0, "key bytes changed");
    ks_kms_result_free(&r);
    ks_ec_free(&ec);
}

static void check_all_hv2(const char *arn)
{
    struct ks_storage *s = ks_keystore_storage(F.ks);
    struct ks_item item;
    struct ks_error err;
    size_t i;

    for (i = 0; i < F.n_versions; i++) {
        cr_assert_eq(s->ops->get_version(s, F.id, F.versions[i], &item, &err), KS_OK);
        check_hv2_item(&item, arn, F.keys[i]);
        ks_item_free(&item);
    }
    cr_assert_eq(s->ops->get_beacon(s, F.id, &item, &err), KS_OK);
    check_hv2_item(&item, arn, F.beacon);
    ks_item_free(&item);
    cr_assert_eq(s->ops->get_active(s, F.id, &item, &err), KS_OK);
    check_hv2_item(&item, arn, NULL);
    ks_item_free(&item);
}

Test(mutation, hv2_terminal_needs_decrypt_encrypt_and_valid_version)
{
    struct ks_mutation_init_result r;
    struct ks_error err;

    make_key(2);
    cr_assert_eq(init_hv(NULL, NULL, reencrypt(&F.strict1), 1, 2, &r, &err), KS_E_UNSUPPORTED);
    cr_assert(strstr(err.message, "decryptEncrypt"), "%s", err.message);
    cr_assert_eq(init_hv(NULL, NULL, decrypt_encrypt(&F.strict1, &F.strict1), 1, 3, &r, &err),
                 KS_E_INVALID);
    cr_assert(strstr(err.message, "terminalHierarchyVersion"), "%s", err.message);
    /* Asking for HV-1 on an HV-1 key with nothing else is nothing to do. */
    cr_assert_eq(init_hv(NULL, NULL, decrypt_encrypt(&F.strict1, &F.strict1), 1, 1, &r, &err),
                 KS_E_MUTATION_INVALID);
    assert_no_mutation();
    check_terminal(&F.strict1, "tenant", "a");
}

Test(mutation, hv1_to_hv2_paged_commitment_n2)
{
    struct ks_mutation_init_result r;
    struct ks_mutation_state m;
    struct ks_storage *s = ks_keystore_storage(F.ks);
    struct ks_error err;
    char *t;
    size_t mutated;

    make_key(7);
    cr_assert_eq(init_hv(NULL, NULL, decrypt_encrypt(&F.strict1, &F.strict1), 1, 2, &r, &err),
                 KS_OK, "%s", err.message);
    /* Commitment and index in the N 2 form, JSON with the third member. */
    cr_assert_eq(s->ops->get_mutation(s, F.id, &m, &err), KS_OK);
    cr_assert_eq(m.commitment.hierarchy_version, 2);
    cr_assert_eq(m.index.hierarchy_version, 2);
    t = ks_bytes_to_string(m.commitment.terminal.data, m.commitment.terminal.len);
    cr_assert(strstr(t, "\"hierarchy-version\":\"2\""), "%s", t);
    free(t);
    t = ks_bytes_to_string(m.commitment.original.data, m.commitment.original.len);
    cr_assert(strstr(t, "\"hierarchy-version\":\"1\""), "%s", t);
    free(t);
    ks_mutation_state_free(&m);
    /* A reEncrypt apply is refused; decryptEncrypt completes. */
    {
        struct ks_mutation_apply_result a;
        cr_assert_eq(ks_mutation_apply(F.ks, &F.set, &r.token, 0,
                                       &(struct ks_mutation_strategy){KS_STRATEGY_REENCRYPT,
                                                                      &F.strict1, NULL, NULL},
                                       &a, &err),
                     KS_E_UNSUPPORTED);
    }
    apply_all(&r.token, decrypt_encrypt(&F.strict1, &F.strict1), &mutated);
    cr_assert_eq(mutated, 6);
    assert_no_mutation();
    check_all_hv2(F.arn);
    /* The keystore's own HV-2 read path gives every original key back. */
    check_terminal(&F.strict1, "tenant", "a");
    ks_mutation_init_result_free(&r);
}

Test(mutation, hv2_resume_downgrade_and_hv2_to_hv2_new_arn)
{
    struct ks_mutation_init_result r, again;
    struct ks_error err;
    size_t mutated;

    make_key(4);
    cr_assert_eq(init_hv(NULL, NULL, decrypt_encrypt(&F.strict1, &F.strict1), 1, 2, &r, &err),
                 KS_OK, "%s", err.message);
    /* The same request resumes (the input's hierarchy version matches)... */
    cr_assert_eq(init_hv(NULL, NULL, decrypt_encrypt(&F.strict1, &F.strict1), 1, 2, &again, &err),
                 KS_OK, "%s", err.message);
    cr_assert_eq(again.flag, KS_MUTATION_RESUMED);
    ks_mutation_init_result_free(&again);
    /* ...a different hierarchy version is another mutation. */
    cr_assert_eq(init_hv(NULL, NULL, decrypt_encrypt(&F.strict1, &F.strict1), 1, 1, &again, &err),
                 KS_E_MUTATION_CONFLICT, "%s", err.message);
    apply_all(&r.token, decrypt_encrypt(&F.strict1, &F.strict1), &mutated);
    ks_mutation_init_result_free(&r);
    /* HV-2 -> HV-1 is refused. */
    cr_assert_eq(init_hv(ARN2, NULL, decrypt_encrypt(&F.strict1, &F.strict2), 1, 1, &r, &err),
                 KS_E_UNSUPPORTED);
    /* HV-2 -> HV-2 under a new KMS key (the retired-key case): HV 2 inferred from the ACTIVE. */
    cr_assert_eq(init_hv(ARN2, NULL, decrypt_encrypt(&F.strict1, &F.strict2), 1, 0, &r, &err),
                 KS_OK, "%s", err.message);
    apply_all(&r.token, decrypt_encrypt(&F.strict1, &F.strict2), &mutated);
    cr_assert_eq(mutated, 3);
    check_all_hv2(ARN2);
    check_terminal(&F.strict2, "tenant", "a");
    ks_mutation_init_result_free(&r);
}

Test(mutation, hv1_to_hv2_rotation_new_arn_and_context)
{
    struct ks_mutation_init_result r;
    struct ks_storage *s = ks_keystore_storage(F.ks);
    struct ks_item active, version;
    struct ks_error err;
    struct ks_ec ec = one_ec("tenant", "z");
    struct ks_kms_call call = {NULL, 0};
    struct ks_kms_result ra, rv;
    struct ks_ec kctx = one_ec("tenant", "z");
    size_t mutated;

    make_key(3);
    cr_assert_eq(init_hv(ARN2, &ec, decrypt_encrypt(&F.strict1, &F.strict2), 0, 2, &r, &err), KS_OK,
                 "%s", err.message);
    apply_all(&r.token, decrypt_encrypt(&F.strict1, &F.strict2), &mutated);
    cr_assert_eq(mutated, 3);
    check_all_hv2(ARN2);
    check_terminal(&F.strict2, "tenant", "z");
    /* The new ACTIVE and its new version hold the same new material. */
    cr_assert_eq(s->ops->get_active(s, F.id, &active, &err), KS_OK);
    cr_assert_eq(s->ops->get_version(s, F.id,
                                     ks_item_get_s(&active, "version") + strlen("branch:version:"),
                                     &version, &err),
                 KS_OK);
    ks_kms_result_init(&ra);
    ks_kms_result_init(&rv);
    cr_assert_eq(F.local->ops->decrypt(F.local, &call, ARN2, ks_item_get(&active, "enc")->value,
                                       ks_item_get(&active, "enc")->len, &kctx, &ra, &err),
                 KS_OK);
    cr_assert_eq(F.local->ops->decrypt(F.local, &call, ARN2, ks_item_get(&version, "enc")->value,
                                       ks_item_get(&version, "enc")->len, &kctx, &rv, &err),
                 KS_OK);
    cr_assert_eq(memcmp(ra.plaintext + 48, rv.plaintext + 48, 32), 0);
    for (size_t i = 0; i < F.n_versions; i++)
        cr_assert_neq(memcmp(ra.plaintext + 48, F.keys[i], 32), 0, "rotation reused old bytes");
    ks_kms_result_free(&ra);
    ks_kms_result_free(&rv);
    ks_item_free(&active);
    ks_item_free(&version);
    ks_ec_free(&ec);
    ks_ec_free(&kctx);
    ks_mutation_init_result_free(&r);
}

Test(mutation, hv1_to_hv2_atomic)
{
    struct ks_mutation_init_input in = {NULL, NULL, NULL, decrypt_encrypt(&F.strict1, &F.strict1),
                                        1,    1,    2};
    struct ks_mutation_init_result r;
    struct ks_error err;

    make_key(4);
    in.branch_key_id = F.id;
    cr_assert_eq(ks_mutation_initialize(F.ks, &F.set, &in, &r, &err), KS_OK, "%s", err.message);
    cr_assert(r.completed);
    assert_no_mutation();
    check_all_hv2(F.arn);
    check_terminal(&F.strict1, "tenant", "a");
    ks_mutation_init_result_free(&r);
    /* Done: asking for HV 2 again is nothing to do. */
    cr_assert_eq(ks_mutation_initialize(F.ks, &F.set, &in, &r, &err), KS_E_MUTATION_INVALID);
}
