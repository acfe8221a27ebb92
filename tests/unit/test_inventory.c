/*
 * test_inventory.c - issue 14: create-time parsing and ordering (every format the MPL runtimes
 * write; docs/reference/branch-key-store.md section 10), ListKeys and ListVersions paging with
 * tokens (encode, decode, mismatch), the storage list_active operation on memory and SQLite,
 * the SQLite schema migration from the first release's database, and VersionKey's cutoff.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/base64.h"
#include "common/util.h"
#include "keystore/create_time.h"
#include "keystore/inventory.h"
#include "keystore/keystore.h"
#include "keystore/rotation.h"
#include "kms/kms.h"
#include "storage/storage.h"

#define ARN "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

/* --- create-time ------------------------------------------------------------------------- */

Test(create_time, formats_of_every_runtime)
{
    int64_t us;

    /* .NET / Python / Rust / ours: true microseconds. */
    cr_assert_eq(ks_create_time_parse("2023-11-14T22:13:20.123456Z", &us), 0);
    cr_expect_eq(us, 1700000000123456LL);
    /* Java: zero-padded milliseconds, read as a decimal fraction. */
    cr_assert_eq(ks_create_time_parse("2023-11-14T22:13:20.000429Z", &us), 0);
    cr_expect_eq(us, 1700000000000429LL);
    /* The SPEC's example: three digits. */
    cr_assert_eq(ks_create_time_parse("2023-11-14T22:13:20.358Z", &us), 0);
    cr_expect_eq(us, 1700000000358000LL);
    /* No fraction; an offset instead of Z. */
    cr_assert_eq(ks_create_time_parse("2023-11-14T23:13:20+01:00", &us), 0);
    cr_expect_eq(us, 1700000000000000LL);
    cr_assert_eq(ks_create_time_parse("2023-11-14T21:43:20-00:30", &us), 0);
    cr_expect_eq(us, 1700000000000000LL);
    /* Nine digits: only microseconds kept. */
    cr_assert_eq(ks_create_time_parse("2023-11-14T22:13:20.123456789Z", &us), 0);
    cr_expect_eq(us, 1700000000123456LL);
}

Test(create_time, unparseable)
{
    static const char *const bad[] = {
        "",
        "garbage",
        "2023-11-14 22:13:20Z",
        "2023-11-14T22:13:20",
        "2023-13-14T22:13:20Z",
        "2023-11-14T24:13:20Z",
        "2023-11-14T22:13:20.Z",
        "2023-11-14T22:13:20.1234567890Z",
        "2023-11-14T22:13:20ZZ",
        "2023-11-14T22:13:20+1:00",
        "1700000000",
    };
    size_t i;
    int64_t us;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(ks_create_time_parse(bad[i], &us), -1, "%s", bad[i]);
    cr_expect_eq(ks_create_time_parse(NULL, &us), -1);
}

Test(create_time, order)
{
    /* Newest first; ties by version ascending; unparseable last, by version. */
    cr_expect_lt(
        ks_create_time_cmp("2024-01-01T00:00:01.000000Z", "z", "2024-01-01T00:00:00.999999Z", "a"),
        0);
    cr_expect_lt(
        ks_create_time_cmp("2024-01-01T00:00:00Z", "a", "2024-01-01T00:00:00.000000Z", "b"), 0);
    cr_expect_gt(ks_create_time_cmp("bad", "a", "1999-01-01T00:00:00Z", "b"), 0);
    cr_expect_lt(ks_create_time_cmp("bad", "a", "worse", "b"), 0);
    cr_expect_eq(ks_create_time_cmp("x", "a", "x", "a"), 0);
}

/* --- items written straight to storage (only plain attributes are listed) ---------------- */

static void set_common(struct ks_item *it, const char *id, const char *type, const char *ctime)
{
    static const unsigned char enc[48] = {1, 2, 3};
    ks_item_init(it);
    cr_assert_eq(ks_item_set_s(it, KS_ATTR_BRANCH_KEY_ID, id), 0);
    cr_assert_eq(ks_item_set_s(it, KS_ATTR_TYPE, type), 0);
    cr_assert_eq(ks_item_set_s(it, KS_ATTR_CREATE_TIME, ctime), 0);
    cr_assert_eq(ks_item_set_s(it, KS_ATTR_KMS_ARN, ARN), 0);
    cr_assert_eq(ks_item_set_n(it, KS_ATTR_HIERARCHY_VERSION, "1"), 0);
    cr_assert_eq(ks_item_set_b(it, KS_ATTR_ENC, enc, sizeof enc), 0);
}

static void vtype(const char *v, char *out)
{
    snprintf(out, 128, "%s%s", KS_TYPE_VERSION_PREFIX, v);
}

/* Writes a new key (ACTIVE = version v at ctime, a beacon). */
static void put_key(struct ks_storage *s, const char *id, const char *v, const char *ctime)
{
    struct ks_item active, version, beacon;
    struct ks_error err;
    char t[128];

    vtype(v, t);
    set_common(&active, id, KS_TYPE_ACTIVE, ctime);
    cr_assert_eq(ks_item_set_s(&active, KS_ATTR_VERSION, t), 0);
    set_common(&version, id, t, ctime);
    set_common(&beacon, id, KS_TYPE_BEACON, ctime);
    cr_assert_eq(s->ops->write_new_branch_key(s, &active, &version, &beacon, &err), KS_OK, "%s",
                 err.message);
    ks_item_free(&active);
    ks_item_free(&version);
    ks_item_free(&beacon);
}

/* Adds version v at ctime and makes it ACTIVE. */
static void put_version(struct ks_storage *s, const char *id, const char *v, const char *ctime)
{
    static const unsigned char enc[48] = {1, 2, 3};
    struct ks_item active, version;
    struct ks_error err;
    char t[128];

    vtype(v, t);
    set_common(&active, id, KS_TYPE_ACTIVE, ctime);
    cr_assert_eq(ks_item_set_s(&active, KS_ATTR_VERSION, t), 0);
    set_common(&version, id, t, ctime);
    cr_assert_eq(s->ops->write_new_version(s, &version, &active, enc, sizeof enc, &err), KS_OK,
                 "%s", err.message);
    ks_item_free(&active);
    ks_item_free(&version);
}

static struct ks_keystore *keystore_on(struct ks_storage *s)
{
    struct ks_keystore_params p = {"ks-a", "logical", NULL, s, NULL, NULL};
    struct ks_keystore *ks = NULL;
    struct ks_error err;
    cr_assert_eq(ks_keystore_create(&p, &ks, &err), KS_OK, "%s", err.message);
    return ks;
}

static struct ks_storage *memory(void)
{
    struct ks_storage *s = NULL;
    struct ks_error err;
    cr_assert_eq(ks_storage_memory_create(&s, &err), KS_OK, "%s", err.message);
    return s;
}

/* --- ListVersions: order with mixed create-time formats ---------------------------------- */

static const char *const ORDER[] = {"e5", "h8", "b2", "c3", "a1", "d4", "f6", "g7"};

/* A key whose versions carry every format; version "b2" is ACTIVE (written last). */
static struct ks_keystore *mixed_key(void)
{
    struct ks_storage *s = memory();

    put_key(s, "k", "a1", "2024-01-01T00:00:00.000429Z");     /* Java: padded ms */
    put_version(s, "k", "d4", "2023-12-31T23:00:00.000000Z"); /* Go: local time, literal Z */
    put_version(s, "k", "e5", "2024-01-01T02:00:00+01:00");
    put_version(s, "k", "f6", "garbage");
    put_version(s, "k", "g7", "");
    put_version(s, "k", "h8", "2024-01-01T00:00:05.5Z");
    put_version(s, "k", "c3", "2024-01-01T00:00:05.123456Z"); /* .NET / Python */
    put_version(s, "k", "b2", "2024-01-01T00:00:05.123456Z"); /* same instant: by version */
    return keystore_on(s);
}

Test(inventory, versions_newest_first_every_limit)
{
    struct ks_keystore *ks = mixed_key();
    size_t limit;

    for (limit = 1; limit <= 9; limit++) {
        struct ks_inventory_versions page;
        struct ks_error err;
        char *token = NULL;
        size_t seen = 0, i, pages = 0;
        do {
            cr_assert_eq(ks_inventory_list_versions(ks, "ks-a", "k", limit, token, &page, &err),
                         KS_OK, "%s", err.message);
            free(token);
            token = page.next_token ? strdup(page.next_token) : NULL;
            cr_assert_leq(page.count, limit);
            for (i = 0; i < page.count; i++, seen++) {
                cr_assert_lt(seen, 8);
                cr_expect_str_eq(page.versions[i].version, ORDER[seen], "limit %zu", limit);
                cr_expect_eq(page.versions[i].active, strcmp(ORDER[seen], "b2") == 0);
            }
            pages++;
            ks_inventory_versions_free(&page);
        } while (token);
        cr_expect_eq(seen, 8, "limit %zu", limit);
        cr_expect_eq(pages, (8 + limit - 1) / limit, "limit %zu: no empty trailing page", limit);
    }
    ks_keystore_destroy(ks);
}

Test(inventory, versions_report_create_time_as_stored)
{
    struct ks_keystore *ks = mixed_key();
    struct ks_inventory_versions page;
    struct ks_error err;

    cr_assert_eq(ks_inventory_list_versions(ks, "ks-a", "k", 100, NULL, &page, &err), KS_OK);
    cr_assert_eq(page.count, 8);
    cr_expect_null(page.next_token);
    cr_expect_str_eq(page.versions[0].create_time, "2024-01-01T02:00:00+01:00");
    cr_expect_str_eq(page.versions[6].create_time, "garbage");
    cr_expect_str_eq(page.versions[7].create_time, "");
    ks_inventory_versions_free(&page);
    cr_expect_eq(ks_inventory_list_versions(ks, "ks-a", "nope", 10, NULL, &page, &err),
                 KS_E_NOT_FOUND);
    cr_expect_eq(ks_inventory_list_versions(ks, "ks-a", "k", 0, NULL, &page, &err), KS_E_INVALID);
    cr_expect_eq(ks_inventory_list_versions(ks, "ks-a", "k", 1001, NULL, &page, &err),
                 KS_E_INVALID);
    ks_keystore_destroy(ks);
}

/* --- tokens ------------------------------------------------------------------------------ */

/* The JSON inside a token. */
static char *token_text(const char *token)
{
    char std[4096];
    unsigned char *raw;
    size_t n = strlen(token), i, len;
    char *text;

    cr_assert_lt(n + 4, sizeof std);
    for (i = 0; i < n; i++) {
        cr_assert(token[i] != '+' && token[i] != '/' && token[i] != '=', "url-safe: %s", token);
        std[i] = token[i] == '-' ? '+' : token[i] == '_' ? '/' : token[i];
    }
    while (i % 4)
        std[i++] = '=';
    std[i] = '\0';
    cr_assert_eq(ks_base64_decode(std, i, &raw, &len), 0, "%s", token);
    text = calloc(1, len + 1);
    memcpy(text, raw, len);
    free(raw);
    return text;
}

static char *url_token(const char *json)
{
    char *b = ks_base64_encode(json, strlen(json)), *p;
    for (p = b; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    while (p > b && p[-1] == '=')
        *--p = '\0';
    return b;
}

Test(inventory, tokens_round_trip_and_mismatch)
{
    struct ks_keystore *ks = mixed_key();
    struct ks_inventory_versions v;
    struct ks_inventory_keys k;
    struct ks_error err;
    char *vtoken, *ktoken, *text, *t;

    cr_assert_eq(ks_inventory_list_versions(ks, "ks-a", "k", 2, NULL, &v, &err), KS_OK);
    vtoken = strdup(v.next_token);
    ks_inventory_versions_free(&v);
    text = token_text(vtoken);
    cr_expect_not_null(strstr(text, "\"ks\":\"ks-a\""), "%s", text);
    cr_expect_not_null(strstr(text, "\"kind\":\"versions\""), "%s", text);
    cr_expect_not_null(strstr(text, "\"key\":\"k\""), "%s", text);
    cr_expect_null(strstr(text, "enc"), "no key material: %s", text);
    free(text);
    put_key(ks_mut_storage(ks), "k2", "v", "2024-01-01T00:00:00Z");

    /* Another key store, list kind or branch key: 400. */
    cr_expect_eq(ks_inventory_list_versions(ks, "ks-b", "k", 2, vtoken, &v, &err), KS_E_INVALID);
    cr_expect_not_null(strstr(err.message, "nextToken"), "%s", err.message);
    cr_expect_eq(ks_inventory_list_versions(ks, "ks-a", "k2", 2, vtoken, &v, &err), KS_E_INVALID);
    cr_expect_eq(ks_inventory_list_keys(ks, "ks-a", 2, vtoken, &k, &err), KS_E_INVALID);
    cr_assert_eq(ks_inventory_list_keys(ks, "ks-a", 1, NULL, &k, &err), KS_OK, "%s", err.message);
    ktoken = strdup(k.next_token);
    ks_inventory_keys_free(&k);
    cr_expect_eq(ks_inventory_list_versions(ks, "ks-a", "k", 2, ktoken, &v, &err), KS_E_INVALID);
    cr_expect_eq(ks_inventory_list_keys(ks, "ks-b", 2, ktoken, &k, &err), KS_E_INVALID);
    /* The same tokens work where they belong (any instance: nothing but the text is needed). */
    cr_assert_eq(ks_inventory_list_keys(ks, "ks-a", 5, ktoken, &k, &err), KS_OK, "%s", err.message);
    cr_expect_eq(k.count, 1);
    cr_expect_str_eq(k.keys[0].branch_key_id, "k2");
    ks_inventory_keys_free(&k);
    cr_assert_eq(ks_inventory_list_versions(ks, "ks-a", "k", 100, vtoken, &v, &err), KS_OK);
    cr_expect_eq(v.count, 6);
    cr_expect_str_eq(v.versions[0].version, "b2");
    ks_inventory_versions_free(&v);

    /* Garbage of every kind. */
    cr_expect_eq(ks_inventory_list_keys(ks, "ks-a", 2, "!!!", &k, &err), KS_E_INVALID);
    cr_expect_eq(ks_inventory_list_keys(ks, "ks-a", 2, "eyJ", &k, &err), KS_E_INVALID);
    t = url_token("not json");
    cr_expect_eq(ks_inventory_list_keys(ks, "ks-a", 2, t, &k, &err), KS_E_INVALID);
    free(t);
    t = url_token("{\"ks\":\"ks-a\",\"kind\":\"keys\"}");
    cr_expect_eq(ks_inventory_list_keys(ks, "ks-a", 2, t, &k, &err), KS_E_INVALID);
    free(t);
    t = url_token("{\"ks\":\"ks-a\",\"kind\":\"keys\",\"id\":\"\",\"type\":\"x\"}");
    cr_expect_eq(ks_inventory_list_keys(ks, "ks-a", 2, t, &k, &err), KS_E_INVALID);
    free(t);
    t = url_token("{\"ks\":\"ks-a\",\"kind\":\"versions\",\"key\":\"k\"}");
    cr_expect_eq(ks_inventory_list_versions(ks, "ks-a", "k", 2, t, &v, &err), KS_E_INVALID);
    free(t);
    free(vtoken);
    free(ktoken);
    ks_keystore_destroy(ks);
}

/* --- ListKeys and list_active on memory and SQLite --------------------------------------- */

static char DIR_[64];

static struct ks_storage *sqlite_store(const char *name, char *path, size_t n)
{
    struct ks_storage *s = NULL;
    struct ks_error err;

    if (!DIR_[0]) {
        memcpy(DIR_, "/tmp/ks-test-inventory-XXXXXX", sizeof "/tmp/ks-test-inventory-XXXXXX");
        cr_assert_not_null(mkdtemp(DIR_));
    }
    snprintf(path, n, "%s/%s", DIR_, name);
    cr_assert_eq(ks_storage_sqlite_open(path, &s, &err), KS_OK, "%s", err.message);
    return s;
}

static void remove_db(const char *path)
{
    char p[256];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* Keys "key-00".."key-<n-1>" created in a shuffled order, each with a second version. */
static void put_keys(struct ks_storage *s, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "key-%02d", (i * 7) % n);
        put_key(s, id, "v1", "2024-01-01T00:00:00.000000Z");
        put_version(s, id, "v2", "2024-02-01T00:00:00.000000Z");
    }
}

/* Follows tokens with limit; every key once, in id order. */
static void expect_every_key_once(struct ks_keystore *ks, int n, size_t limit)
{
    struct ks_inventory_keys page;
    struct ks_error err;
    char *token = NULL;
    int seen = 0;
    size_t i;

    do {
        cr_assert_eq(ks_inventory_list_keys(ks, "ks-a", limit, token, &page, &err), KS_OK, "%s",
                     err.message);
        free(token);
        token = page.next_token ? strdup(page.next_token) : NULL;
        cr_assert_leq(page.count, limit);
        for (i = 0; i < page.count; i++, seen++) {
            char id[32];
            snprintf(id, sizeof id, "key-%02d", seen);
            cr_assert_str_eq(page.keys[i].branch_key_id, id, "limit %zu", limit);
            cr_expect_str_eq(page.keys[i].active_version, "v2");
            cr_expect_str_eq(page.keys[i].create_time, "2024-02-01T00:00:00.000000Z");
            cr_expect_str_eq(page.keys[i].hierarchy_version, "1");
            cr_expect_str_eq(page.keys[i].kms_arn, ARN);
        }
        ks_inventory_keys_free(&page);
    } while (token);
    cr_expect_eq(seen, n, "limit %zu", limit);
}

static void every_key_on(struct ks_storage *s)
{
    static const size_t limits[] = {1, 2, 3, 7, 24, 25, 26, 1000};
    struct ks_keystore *ks;
    size_t i;

    put_keys(s, 25);
    ks = keystore_on(s);
    for (i = 0; i < sizeof limits / sizeof limits[0]; i++)
        expect_every_key_once(ks, 25, limits[i]);
    ks_keystore_destroy(ks);
}

Test(inventory, every_key_once_memory)
{
    every_key_on(memory());
}

Test(inventory, every_key_once_sqlite)
{
    char path[128];
    every_key_on(sqlite_store("every.db", path, sizeof path));
    remove_db(path);
    rmdir(DIR_);
}

Test(inventory, list_active_arguments)
{
    struct ks_storage *s = memory();
    struct ks_active_page page;
    struct ks_error err;

    cr_expect_eq(s->ops->list_active(s, NULL, NULL, 0, &page, &err), KS_E_INVALID);
    cr_expect_eq(s->ops->list_active(s, NULL, NULL, 1001, &page, &err), KS_E_INVALID);
    cr_expect_eq(s->ops->list_active(s, "a", NULL, 10, &page, &err), KS_E_INVALID);
    cr_expect_eq(s->ops->list_active(s, "", "", 10, &page, &err), KS_E_INVALID);
    cr_assert_eq(s->ops->list_active(s, NULL, NULL, 10, &page, &err), KS_OK);
    cr_expect_eq(page.count, 0);
    cr_expect_null(page.next_id);
    ks_active_page_free(&page);
    ks_storage_destroy(s);
}

/* --- SQLite schema migration: a database of the first release (user_version 1) ----------- */

static int raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt;
    int v = -1;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    if (sqlite3_step(stmt) == SQLITE_ROW)
        v = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

/* 1 when the plan of the list query names the index. */
static int list_uses_index(sqlite3 *db)
{
    sqlite3_stmt *stmt;
    int uses = 0;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "EXPLAIN QUERY PLAN SELECT item FROM items WHERE type = "
                                    "'branch:ACTIVE' AND branch_key_id > '' ORDER BY branch_key_id",
                                    -1, &stmt, NULL),
                 SQLITE_OK);
    while (sqlite3_step(stmt) == SQLITE_ROW)
        if (strstr((const char *)sqlite3_column_text(stmt, 3), "items_by_type"))
            uses = 1;
    sqlite3_finalize(stmt);
    return uses;
}

Test(inventory, sqlite_migrates_a_first_release_database)
{
    struct ks_storage *s;
    struct ks_keystore *ks;
    struct ks_error err;
    char path[128];
    sqlite3 *db;

    /* Items written by the code path of today, then the schema put back exactly as the first
     * release made it: the items table alone, user_version 1. */
    s = sqlite_store("old.db", path, sizeof path);
    put_keys(s, 12);
    ks_storage_destroy(s);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(
        sqlite3_exec(db, "DROP INDEX items_by_type; PRAGMA user_version = 1", NULL, NULL, NULL),
        SQLITE_OK);
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = "
                             "'items_by_type'"),
                 0);
    cr_expect_eq(list_uses_index(db), 0);
    sqlite3_close(db);

    /* Opening migrates at start: version 2, the index, and every item still there. */
    cr_assert_eq(ks_storage_sqlite_open(path, &s, &err), KS_OK, "%s", err.message);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_expect_eq(raw_int(db, "PRAGMA user_version"), 2);
    cr_expect_eq(list_uses_index(db), 1);
    cr_expect_eq(raw_int(db, "SELECT count(*) FROM items"), 12 * 4);
    sqlite3_close(db);
    ks = keystore_on(s);
    expect_every_key_once(ks, 12, 5);
    ks_keystore_destroy(ks);

    /* Idempotent: a second open of the migrated file changes nothing. */
    cr_assert_eq(ks_storage_sqlite_open(path, &s, &err), KS_OK, "%s", err.message);
    ks_storage_destroy(s);
    remove_db(path);
    rmdir(DIR_);
}

/* --- VersionKey with a cutoff ------------------------------------------------------------ */

static uint64_t clock_now(void *ctx)
{
    return *(const uint64_t *)ctx;
}

Test(inventory, version_key_cutoff)
{
    char dir[64] = "/tmp/ks-test-cutoff-XXXXXX", key_file[128], arn[128];
    struct ks_kms *kms;
    struct ks_storage *s = memory();
    struct ks_keystore *ks;
    struct ks_error err;
    uint64_t now = 1700000000000000ull;
    struct ks_clock clock = {clock_now, &now};
    struct ks_keystore_params p = {"ks-a", "logical", NULL, s, &clock, NULL};
    struct ks_kms_relationship rel;
    struct ks_inventory_versions v;
    enum ks_version_due due;
    char *id = NULL, *version = NULL;

    cr_assert_not_null(mkdtemp(dir));
    snprintf(key_file, sizeof key_file, "%s/local.keys", dir);
    cr_assert_eq(ks_kms_local_open(key_file, NULL, 0, KS_KMS_LOCAL_MAY_CREATE, &kms, &err), KS_OK,
                 "%s", err.message);
    cr_assert_eq(ks_kms_local_default_arn(kms, arn, sizeof arn), KS_OK);
    memset(&rel, 0, sizeof rel);
    rel.name = "rel";
    rel.kms = kms;
    rel.kind = KS_KMS_KEY_ARN;
    rel.arn = arn;
    cr_assert_eq(ks_keystore_create(&p, &ks, &err), KS_OK, "%s", err.message);
    cr_assert_eq(ks_keystore_create_key(ks, &rel, NULL, NULL, &id, &err), KS_OK, "%s", err.message);

    /* Created at `now`: a cutoff at now is not older -> not due, nothing written. */
    now += 5000000;
    cr_expect_eq(
        ks_keystore_version_key_if_older(ks, &rel, id, 1700000000000000LL, &version, &due, &err),
        KS_E_INVALID);
    cr_expect_eq(due, KS_VERSION_NOT_DUE);
    cr_expect_null(version);
    /* Older than the cutoff: rotated; again with the same cutoff: the new ACTIVE is not due. */
    cr_assert_eq(
        ks_keystore_version_key_if_older(ks, &rel, id, 1700000000000001LL, &version, &due, &err),
        KS_OK, "%s", err.message);
    cr_expect_eq(due, KS_VERSION_DUE);
    free(version);
    version = NULL;
    cr_expect_eq(
        ks_keystore_version_key_if_older(ks, &rel, id, 1700000000000001LL, &version, &due, &err),
        KS_E_INVALID);
    cr_expect_eq(due, KS_VERSION_NOT_DUE);
    cr_assert_eq(ks_inventory_list_versions(ks, "ks-a", id, 10, NULL, &v, &err), KS_OK);
    cr_expect_eq(v.count, 2);
    ks_inventory_versions_free(&v);

    /* An unparseable create-time is reported, not rotated; a foreign ARN likewise. */
    put_key(s, "bad-time", "v1", "yesterday");
    cr_expect_eq(ks_keystore_version_key_if_older(ks, &rel, "bad-time", 1900000000000000LL,
                                                  &version, &due, &err),
                 KS_E_INVALID);
    cr_expect_eq(due, KS_VERSION_KMS_ARN); /* the ARN is checked first: ARN is not ours */
    rel.arn = ARN;
    cr_expect_eq(ks_keystore_version_key_if_older(ks, &rel, "bad-time", 1900000000000000LL,
                                                  &version, &due, &err),
                 KS_E_INVALID);
    cr_expect_eq(due, KS_VERSION_BAD_TIME);
    cr_expect_null(version);

    free(id);
    ks_keystore_destroy(ks);
    ks_kms_destroy(kms);
    unlink(key_file);
    rmdir(dir);
}

/* --- scheduled rotation: one check at a time (keystore/rotation.h) ----------------------- */

struct rot_fixture {
    char dir[64], key_file[128], arn[128];
    struct ks_kms *kms;
    struct ks_storage *s;
    struct ks_keystore *ks;
    struct ks_kms_relationship rel;
    uint64_t now;
    struct ks_clock clock;
};

static void rot_setup(struct rot_fixture *f)
{
    struct ks_keystore_params p = {"ks-a", "logical", NULL, NULL, &f->clock, NULL};
    struct ks_error err;

    memset(f, 0, sizeof *f);
    memcpy(f->dir, "/tmp/ks-test-rotation-XXXXXX", sizeof "/tmp/ks-test-rotation-XXXXXX");
    cr_assert_not_null(mkdtemp(f->dir));
    snprintf(f->key_file, sizeof f->key_file, "%s/local.keys", f->dir);
    cr_assert_eq(ks_kms_local_open(f->key_file, NULL, 0, KS_KMS_LOCAL_MAY_CREATE, &f->kms, &err),
                 KS_OK, "%s", err.message);
    cr_assert_eq(ks_kms_local_default_arn(f->kms, f->arn, sizeof f->arn), KS_OK);
    f->rel.name = "rel";
    f->rel.kms = f->kms;
    f->rel.kind = KS_KMS_KEY_ARN;
    f->rel.arn = f->arn;
    f->now = 1700000000000000ull;
    f->clock.now_us = clock_now;
    f->clock.ctx = &f->now;
    f->s = memory();
    p.storage = f->s;
    cr_assert_eq(ks_keystore_create(&p, &f->ks, &err), KS_OK, "%s", err.message);
}

static void rot_teardown(struct rot_fixture *f)
{
    ks_keystore_destroy(f->ks);
    ks_kms_destroy(f->kms);
    unlink(f->key_file);
    rmdir(f->dir);
}

static struct ks_rotation *new_rotation(struct rot_fixture *f, size_t page)
{
    struct ks_rotation_params p = {f->ks, &f->rel, "ks-a", 10, page, &f->clock};
    struct ks_rotation *r = NULL;
    struct ks_error err;
    cr_assert_eq(ks_rotation_create(&p, &r, &err), KS_OK, "%s", err.message);
    return r;
}

static size_t version_count(struct ks_keystore *ks, const char *id)
{
    struct ks_inventory_versions v;
    struct ks_error err;
    size_t n;
    cr_assert_eq(ks_inventory_list_versions(ks, "ks-a", id, 1000, NULL, &v, &err), KS_OK, "%s",
                 err.message);
    n = v.count;
    ks_inventory_versions_free(&v);
    return n;
}

static void check(struct ks_rotation *r)
{
    struct ks_error err;
    cr_assert_eq(ks_rotation_check(r, NULL, &err), KS_OK, "%s", err.message);
}

Test(rotation, pages_cursor_skips_and_counts)
{
    struct rot_fixture f;
    struct ks_rotation *a, *b;
    char *ids[5];
    int64_t oldest;
    size_t i;

    rot_setup(&f);
    for (i = 0; i < 5; i++) {
        struct ks_error err;
        cr_assert_eq(ks_keystore_create_key(f.ks, &f.rel, NULL, NULL, &ids[i], &err), KS_OK, "%s",
                     err.message);
    }
    put_key(f.s, "zz-foreign-arn", "v1", "2023-01-01T00:00:00Z"); /* ARN is not f.arn */
    put_key(f.s, "zz-bad-time", "v1", "last tuesday");
    a = new_rotation(&f, 3); /* 7 keys: pages of 3, 3, 1 */
    b = new_rotation(&f, 100);

    /* Not yet due (5 s old, interval 10 s): listed, nothing attempted but the foreign key. */
    f.now += 5000000;
    check(a);
    check(a);
    check(a);
    cr_expect_eq(ks_rotation_passes(a), 1);
    cr_expect_eq(ks_rotation_count(a, KS_ROTATION_ROTATED), 0);
    cr_expect_eq(ks_rotation_count(a, KS_ROTATION_KMS_ARN), 1);
    cr_expect_eq(ks_rotation_count(a, KS_ROTATION_BAD_TIME), 1);
    cr_assert_eq(ks_rotation_oldest(a, &oldest), 0);
    cr_expect_eq(oldest, 1672531200000000LL, "the foreign key is the oldest");

    /* Due: the cursor wrapped, so three checks cover the store again; each key once. */
    f.now += 6000000;
    check(a);
    cr_expect_eq(ks_rotation_count(a, KS_ROTATION_ROTATED), 3, "first page: 3 keys");
    check(a);
    check(a);
    cr_expect_eq(ks_rotation_count(a, KS_ROTATION_ROTATED), 5);
    cr_expect_eq(ks_rotation_count(a, KS_ROTATION_KMS_ARN), 2);
    cr_expect_eq(ks_rotation_count(a, KS_ROTATION_BAD_TIME), 2);
    cr_expect_eq(ks_rotation_count(a, KS_ROTATION_ERROR), 0);
    for (i = 0; i < 5; i++)
        cr_expect_eq(version_count(f.ks, ids[i]), 2, "key %zu", i);
    cr_expect_eq(version_count(f.ks, "zz-foreign-arn"), 1);
    cr_expect_eq(version_count(f.ks, "zz-bad-time"), 1);

    /* A second instance at the same moment: every good key is fresh, nothing rotated twice. */
    check(b);
    cr_expect_eq(ks_rotation_count(b, KS_ROTATION_ROTATED), 0);
    for (i = 0; i < 5; i++)
        cr_expect_eq(version_count(f.ks, ids[i]), 2, "key %zu", i);
    /* An interval later both would rotate once more; b goes first, a then finds them fresh. */
    f.now += 10000001;
    check(b);
    cr_expect_eq(ks_rotation_count(b, KS_ROTATION_ROTATED), 5);
    check(a);
    check(a);
    check(a);
    cr_expect_eq(ks_rotation_count(a, KS_ROTATION_ROTATED), 5);
    for (i = 0; i < 5; i++)
        cr_expect_eq(version_count(f.ks, ids[i]), 3, "key %zu", i);
    /* Cancelled (shutdown): a check rotates nothing, however due. */
    f.now += 10000001;
    ks_rotation_cancel(b);
    check(b);
    cr_expect_eq(ks_rotation_count(b, KS_ROTATION_ROTATED), 5);
    cr_expect_eq(version_count(f.ks, ids[0]), 3);
    for (i = 0; i < 5; i++)
        free(ids[i]);
    ks_rotation_destroy(a);
    ks_rotation_destroy(b);
    rot_teardown(&f);
}
