/*
 * test_app.c - configuration snapshots over long-lived backends (server/app.h): reference
 * counts, backends reused by name across snapshots, settings that cannot change refused with
 * nothing opened, the token table of each snapshot.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/app.h"

static char dir[] = "/tmp/ks-test-app-XXXXXX";

#define TENANT(name, hash)                                                                         \
    "  - name: " name "\n"                                                                         \
    "    token_sha256: \"" hash "\"\n"                                                             \
    "    role: reader\n"                                                                           \
    "    key_stores: [default]\n"                                                                  \
    "    kms_relationships: [local]\n"
/* SHA-256 of "t1" and "t2". */
#define T1 "628b49d96dcde97a430dd4f597705899e09a968f793491e4b704cae33a40dc02"
#define H1 "c44474038d459e40e4714afefa7bf8dae9f9834b22f5e8ec1dd434ecb62b512e"

static struct ks_config *load(const char *db, const char *extra_store, const char *tenants)
{
    char yaml[4096];
    struct ks_config *cfg = NULL;
    char *errors = NULL;

    snprintf(yaml, sizeof yaml,
             "kms_relationships:\n"
             "  - {name: local, type: local, key_file: %s/k.keys}\n"
             "key_stores:\n"
             "  - {name: default, logical_key_store_name: L, kms_relationship: local,\n"
             "     storage: {type: sqlite, path: %s/%s}}\n"
             "%s"
             "tenants:\n%s",
             dir, dir, db, extra_store, tenants);
    cr_assert_eq(ks_config_load_buffer("t.yaml", yaml, strlen(yaml), &cfg, &errors), KS_OK, "%s",
                 errors ? errors : "");
    return cfg;
}

static struct ks_app *snapshot(struct ks_backends *b, struct ks_config *cfg)
{
    struct ks_app *app = NULL;
    struct ks_error err;
    cr_assert_eq(ks_app_create(b, cfg, &app, &err), KS_OK, "%s", err.message);
    return app;
}

static struct ks_backends *backends(void)
{
    struct ks_cache_config cc = {1000, 600, 10, 1, 20, 10, 0}; /* the defaults */
    struct ks_backends *b = NULL;
    struct ks_error err;
    cr_assert_eq(ks_backends_create(&cc, NULL, &b, &err), KS_OK, "%s", err.message);
    return b;
}

static void setup(void)
{
    memcpy(dir, "/tmp/ks-test-app-XXXXXX", sizeof dir);
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(app, .init = setup, .fini = teardown);

static void count(void *ctx, const char *name, struct ks_keystore *keystore,
                  const struct ks_kms_relationship *relationship)
{
    (void)name;
    (void)relationship;
    ((size_t *)ctx)[keystore ? 0 : 1]++;
}

Test(app, refcount_keeps_the_snapshot_until_the_last_release)
{
    struct ks_backends *b = backends();
    struct ks_app *app = snapshot(b, load("a.db", "", TENANT("t1", T1)));

    cr_assert_eq(ks_app_refs(app), 1);
    cr_assert_eq(ks_app_ref(app), app);
    cr_assert_eq(ks_app_refs(app), 2);
    ks_app_unref(app);
    cr_assert_eq(ks_app_refs(app), 1);
    cr_assert_str_eq(ks_app_config(app)->tenants[0].name, "t1");
    ks_app_unref(app);
    ks_backends_destroy(b);
}

Test(app, backends_are_reused_by_name_and_new_ones_opened)
{
    struct ks_backends *b = backends();
    struct ks_app *one = snapshot(b, load("a.db", "", TENANT("t1", T1)));
    struct ks_app *two =
        snapshot(b, load("a.db",
                         "  - {name: extra, logical_key_store_name: X, kms_relationship: local,\n"
                         "     storage: {type: sqlite, path: /tmp/ks-test-app-extra.db}}\n",
                         TENANT("t1", T1) TENANT("t2", H1)));
    size_t n[2] = {0, 0};

    /* Same key store object and the same KMS counters: the cache and metrics carry over. */
    cr_assert_eq(ks_app_keystore(one, 0), ks_app_keystore(two, 0));
    cr_assert_eq(ks_app_relationship(one, 0)->counters, ks_app_relationship(two, 0)->counters);
    cr_assert_eq(ks_app_relationship(one, 0)->kms, ks_app_relationship(two, 0)->kms);
    cr_assert_not_null(ks_app_keystore(two, 1));
    cr_assert_eq(ks_app_cache(one), ks_app_cache(two));
    ks_backends_foreach(b, count, n);
    cr_assert_eq(n[0], 2);
    cr_assert_eq(n[1], 1);
    cr_assert_eq(ks_app_config(two)->n_tenants, 2);
    ks_app_unref(one);
    ks_app_unref(two);
    ks_backends_destroy(b);
    unlink("/tmp/ks-test-app-extra.db");
}

Test(app, changed_storage_is_refused_and_nothing_is_opened)
{
    struct ks_backends *b = backends();
    struct ks_app *one = snapshot(b, load("a.db", "", TENANT("t1", T1)));
    struct ks_config *moved =
        load("b.db",
             "  - {name: extra, logical_key_store_name: X, kms_relationship: local,\n"
             "     storage: {type: sqlite, path: /tmp/ks-test-app-extra2.db}}\n",
             TENANT("t1", T1));
    struct ks_app *two = NULL;
    struct ks_error err;
    size_t n[2] = {0, 0};

    cr_assert_eq(ks_app_create(b, moved, &two, &err), KS_E_CONFIG);
    cr_assert_null(two);
    cr_assert(strstr(err.message, "key store 'default'") != NULL, "%s", err.message);
    ks_backends_foreach(b, count, n);
    cr_assert_eq(n[0], 1);
    ks_config_free(moved); /* still the caller's */
    ks_app_unref(one);
    ks_backends_destroy(b);
    unlink("/tmp/ks-test-app-extra2.db");
}

Test(app, cache_section_change_is_refused)
{
    struct ks_backends *b = backends();
    struct ks_config *cfg = load("a.db", "cache: {capacity: 5}\n", TENANT("t1", T1));
    struct ks_app *app = NULL;
    struct ks_error err;

    cr_assert_eq(ks_app_create(b, cfg, &app, &err), KS_E_CONFIG);
    cr_assert(strstr(err.message, "cache") != NULL, "%s", err.message);
    ks_config_free(cfg);
    ks_backends_destroy(b);
}

Test(app, each_snapshot_authenticates_its_own_tenants)
{
    struct ks_backends *b = backends();
    struct ks_app *one = snapshot(b, load("a.db", "", TENANT("t1", T1)));
    struct ks_app *two = snapshot(b, load("a.db", "", TENANT("t2", H1)));

    cr_assert_eq(ks_auth_tenant(ks_app_auth(one), "Bearer t1"), &ks_app_config(one)->tenants[0]);
    cr_assert_null(ks_auth_tenant(ks_app_auth(one), "Bearer t2"));
    cr_assert_null(ks_auth_tenant(ks_app_auth(two), "Bearer t1"));
    cr_assert_eq(ks_auth_tenant(ks_app_auth(two), "Bearer t2"), &ks_app_config(two)->tenants[0]);
    ks_app_unref(one);
    ks_app_unref(two);
    ks_backends_destroy(b);
}

/* A key store a snapshot drops stays open, idle, and comes back as the same object. */
Test(app, removed_backend_stays_open_and_is_reused)
{
    static const char extra[] =
        "  - {name: extra, logical_key_store_name: X, kms_relationship: local,\n"
        "     storage: {type: sqlite, path: /tmp/ks-test-app-extra3.db}}\n";
    struct ks_backends *b = backends();
    struct ks_app *one = snapshot(b, load("a.db", extra, TENANT("t1", T1)));
    struct ks_app *two = snapshot(b, load("a.db", "", TENANT("t1", T1)));
    struct ks_app *three;
    size_t n[2] = {0, 0};

    cr_assert_eq(ks_app_config(two)->n_key_stores, 1);
    ks_app_unref(one); /* the snapshot goes; the backend stays */
    three = snapshot(b, load("a.db", extra, TENANT("t1", T1)));
    ks_backends_foreach(b, count, n);
    cr_assert_eq(n[0], 2);
    cr_assert_eq(ks_app_keystore(three, 0), ks_app_keystore(two, 0));
    cr_assert_not_null(ks_app_keystore(three, 1));
    ks_app_unref(two);
    ks_app_unref(three);
    ks_backends_destroy(b);
    unlink("/tmp/ks-test-app-extra3.db");
}
