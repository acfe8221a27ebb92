/*
 * test_storage.c - the storage interface, the same cases run against the memory and the SQLite
 * backend, plus what only SQLite has: the file, persistence, corrupt rows, a held lock, and a
 * VersionKey race between processes sharing one file (seed "Mitigate Update Race",
 * docs/reference/branch-key-store.md section 9).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <sqlite3.h>

#include "common/ec.h"
#include "common/util.h"
#include "storage/storage.h"

#define ENC_LEN 32
#define KMS_ARN "arn:aws:kms:us-west-2:111122223333:key/0b9e5ac2-4a1e-4a4b-9f6a-2a1b7a0c3d11"
#define CREATE_TIME "2024-01-02T03:04:05.678901Z"

enum backend { MEMORY, SQLITE };

struct fixture {
    enum backend backend;
    struct ks_storage *s;
    char dir[64];
    char path[128];
};

static void fx_open(struct fixture *f, enum backend backend)
{
    struct ks_error err;
    ks_status st;

    memset(f, 0, sizeof *f);
    f->backend = backend;
    if (backend == MEMORY) {
        st = ks_storage_memory_create(&f->s, &err);
    } else {
        snprintf(f->dir, sizeof f->dir, "/tmp/ks-test-storage-XXXXXX");
        cr_assert_not_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof f->path, "%s/keystore.db", f->dir);
        st = ks_storage_sqlite_open(f->path, &f->s, &err);
    }
    cr_assert_eq(st, KS_OK, "%s", err.message);
}

static void fx_reopen(struct fixture *f)
{
    struct ks_error err;

    ks_storage_destroy(f->s);
    cr_assert_eq(ks_storage_sqlite_open(f->path, &f->s, &err), KS_OK, "%s", err.message);
}

static void remove_suffixed(const char *path, const char *suffix)
{
    char p[160];

    snprintf(p, sizeof p, "%s%s", path, suffix);
    unlink(p);
}

static void fx_close(struct fixture *f)
{
    ks_storage_destroy(f->s);
    f->s = NULL;
    if (f->backend == SQLITE) {
        remove_suffixed(f->path, "");
        remove_suffixed(f->path, "-wal");
        remove_suffixed(f->path, "-shm");
        rmdir(f->dir);
    }
}

/* --- items as keystore/ builds them (docs/reference/branch-key-store.md section 2) -------------
 */

static void random_bytes(unsigned char *out, size_t len)
{
    cr_assert_eq(RAND_bytes(out, (int)len), 1);
}

static void common_attrs(struct ks_item *item, const char *id, const char *type)
{
    cr_assert_eq(ks_item_set_s(item, KS_ATTR_BRANCH_KEY_ID, id), 0);
    cr_assert_eq(ks_item_set_s(item, KS_ATTR_TYPE, type), 0);
    cr_assert_eq(ks_item_set_s(item, KS_ATTR_KMS_ARN, KMS_ARN), 0);
    cr_assert_eq(ks_item_set_s(item, KS_ATTR_CREATE_TIME, CREATE_TIME), 0);
    cr_assert_eq(ks_item_set_n(item, KS_ATTR_HIERARCHY_VERSION, "1"), 0);
    cr_assert_eq(ks_item_set_s(item, KS_EC_PREFIX "department", "finance"), 0);
}

static void version_type(const char *version, char *out, size_t n)
{
    snprintf(out, n, "%s%s", KS_TYPE_VERSION_PREFIX, version);
}

static void make_version(struct ks_item *item, const char *id, const char *version,
                         const unsigned char *enc)
{
    char type[80];

    version_type(version, type, sizeof type);
    ks_item_init(item);
    common_attrs(item, id, type);
    cr_assert_eq(ks_item_set_b(item, KS_ATTR_ENC, enc, ENC_LEN), 0);
}

static void make_active(struct ks_item *item, const char *id, const char *version,
                        const unsigned char *enc)
{
    char type[80];

    version_type(version, type, sizeof type);
    ks_item_init(item);
    common_attrs(item, id, KS_TYPE_ACTIVE);
    cr_assert_eq(ks_item_set_s(item, KS_ATTR_VERSION, type), 0);
    cr_assert_eq(ks_item_set_b(item, KS_ATTR_ENC, enc, ENC_LEN), 0);
}

static void make_beacon(struct ks_item *item, const char *id, const unsigned char *enc)
{
    ks_item_init(item);
    common_attrs(item, id, KS_TYPE_BEACON);
    cr_assert_eq(ks_item_set_b(item, KS_ATTR_ENC, enc, ENC_LEN), 0);
}

/* A created branch key: its three items and encs. */
struct branch_key {
    char id[64];
    char vid[KS_UUID_LEN + 1]; /* the version uuid */
    unsigned char active_enc[ENC_LEN], version_enc[ENC_LEN], beacon_enc[ENC_LEN];
    struct ks_item active, version, beacon;
};

static void make_branch_key(struct branch_key *bk, const char *id)
{
    snprintf(bk->id, sizeof bk->id, "%s", id);
    cr_assert_eq(ks_uuid_v4(bk->vid), 0);
    random_bytes(bk->active_enc, ENC_LEN);
    random_bytes(bk->version_enc, ENC_LEN);
    random_bytes(bk->beacon_enc, ENC_LEN);
    make_active(&bk->active, id, bk->vid, bk->active_enc);
    make_version(&bk->version, id, bk->vid, bk->version_enc);
    make_beacon(&bk->beacon, id, bk->beacon_enc);
}

static void free_branch_key(struct branch_key *bk)
{
    ks_item_free(&bk->active);
    ks_item_free(&bk->version);
    ks_item_free(&bk->beacon);
}

static ks_status write_branch_key(struct ks_storage *s, const struct branch_key *bk,
                                  struct ks_error *err)
{
    ks_error_clear(err);
    return s->ops->write_new_branch_key(s, &bk->active, &bk->version, &bk->beacon, err);
}

static void assert_items_equal(const struct ks_item *a, const struct ks_item *b)
{
    size_t i;

    cr_assert_eq(a->count, b->count);
    for (i = 0; i < a->count; i++) {
        cr_assert_str_eq(a->attrs[i].name, b->attrs[i].name);
        cr_assert_eq(a->attrs[i].type, b->attrs[i].type);
        cr_assert_eq(a->attrs[i].len, b->attrs[i].len, "length of %s", a->attrs[i].name);
        cr_assert_eq(memcmp(a->attrs[i].value, b->attrs[i].value, a->attrs[i].len), 0,
                     "bytes of %s", a->attrs[i].name);
    }
}

static void assert_active_is(struct ks_storage *s, const struct ks_item *expected)
{
    struct ks_item got;
    struct ks_error err;

    cr_assert_eq(s->ops->get_active(s, ks_item_get_s(expected, KS_ATTR_BRANCH_KEY_ID), &got, &err),
                 KS_OK, "%s", err.message);
    assert_items_equal(&got, expected);
    ks_item_free(&got);
}

static void assert_version_is(struct ks_storage *s, const char *id, const char *version,
                              const struct ks_item *expected)
{
    struct ks_item got;
    struct ks_error err;

    cr_assert_eq(s->ops->get_version(s, id, version, &got, &err), KS_OK, "%s", err.message);
    assert_items_equal(&got, expected);
    ks_item_free(&got);
}

static void assert_version_missing(struct ks_storage *s, const char *id, const char *version)
{
    struct ks_item got;
    struct ks_error err;

    cr_assert_eq(s->ops->get_version(s, id, version, &got, &err), KS_E_NOT_FOUND,
                 "version %s exists", version);
    cr_assert_eq(got.count, 0);
}

static void assert_branch_key_stored(struct ks_storage *s, const struct branch_key *bk)
{
    struct ks_item got;
    struct ks_error err;

    assert_active_is(s, &bk->active);
    assert_version_is(s, bk->id, bk->vid, &bk->version);
    cr_assert_eq(s->ops->get_beacon(s, bk->id, &got, &err), KS_OK, "%s", err.message);
    assert_items_equal(&got, &bk->beacon);
    ks_item_free(&got);
}

/* A VersionKey write: new version item + new ACTIVE, conditioned on old_enc. */
struct new_version {
    char vid[KS_UUID_LEN + 1]; /* the version uuid */
    unsigned char active_enc[ENC_LEN], version_enc[ENC_LEN];
    struct ks_item active, version;
};

static void make_new_version(struct new_version *nv, const char *id, const char *version)
{
    if (version)
        snprintf(nv->vid, sizeof nv->vid, "%s", version);
    else
        cr_assert_eq(ks_uuid_v4(nv->vid), 0);
    random_bytes(nv->active_enc, ENC_LEN);
    random_bytes(nv->version_enc, ENC_LEN);
    make_active(&nv->active, id, nv->vid, nv->active_enc);
    make_version(&nv->version, id, nv->vid, nv->version_enc);
}

static void free_new_version(struct new_version *nv)
{
    ks_item_free(&nv->active);
    ks_item_free(&nv->version);
}

static ks_status write_version(struct ks_storage *s, const struct new_version *nv,
                               const unsigned char *old_enc, struct ks_error *err)
{
    ks_error_clear(err);
    return s->ops->write_new_version(s, &nv->version, &nv->active, old_enc, ENC_LEN, err);
}

/* --- cases run against both backends ----------------------------------------------------- */

static void case_write_and_get(struct fixture *f)
{
    struct branch_key bk, other;
    struct ks_error err;

    make_branch_key(&bk, "bk-1");
    make_branch_key(&other, "bk-2");
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_OK, "%s", err.message);
    cr_assert_eq(write_branch_key(f->s, &other, &err), KS_OK, "%s", err.message);
    assert_branch_key_stored(f->s, &bk);
    assert_branch_key_stored(f->s, &other);
    free_branch_key(&bk);
    free_branch_key(&other);
}

static void case_duplicate_create(struct fixture *f)
{
    struct branch_key bk, again;
    struct ks_error err;

    make_branch_key(&bk, "dup");
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_OK, "%s", err.message);

    /* Same id, new version: only ACTIVE and beacon collide, yet nothing at all is written. */
    make_branch_key(&again, "dup");
    cr_assert_eq(write_branch_key(f->s, &again, &err), KS_E_ALREADY_EXISTS);
    cr_assert_eq(err.code, KS_E_ALREADY_EXISTS);
    assert_branch_key_stored(f->s, &bk);
    assert_version_missing(f->s, "dup", again.vid);

    /* The very same items again. */
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_E_ALREADY_EXISTS);
    assert_branch_key_stored(f->s, &bk);
    free_branch_key(&bk);
    free_branch_key(&again);
}

static void case_new_version(struct fixture *f)
{
    struct branch_key bk;
    struct new_version nv, nv2;
    struct ks_error err;

    make_branch_key(&bk, "versioned");
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_OK, "%s", err.message);
    make_new_version(&nv, "versioned", NULL);
    cr_assert_eq(write_version(f->s, &nv, bk.active_enc, &err), KS_OK, "%s", err.message);
    assert_active_is(f->s, &nv.active);
    assert_version_is(f->s, "versioned", nv.vid, &nv.version);
    assert_version_is(f->s, "versioned", bk.vid, &bk.version);

    /* And again, on top of the new ACTIVE. */
    make_new_version(&nv2, "versioned", NULL);
    cr_assert_eq(write_version(f->s, &nv2, nv.active_enc, &err), KS_OK, "%s", err.message);
    assert_active_is(f->s, &nv2.active);
    assert_version_is(f->s, "versioned", nv.vid, &nv.version);
    free_new_version(&nv);
    free_new_version(&nv2);
    free_branch_key(&bk);
}

static void case_stale_old_enc(struct fixture *f)
{
    struct branch_key bk;
    struct new_version first, stale;
    struct ks_error err;

    make_branch_key(&bk, "raced");
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_OK, "%s", err.message);
    make_new_version(&first, "raced", NULL);
    cr_assert_eq(write_version(f->s, &first, bk.active_enc, &err), KS_OK, "%s", err.message);

    /* A second VersionKey that read ACTIVE before the first one wrote. */
    make_new_version(&stale, "raced", NULL);
    cr_assert_eq(write_version(f->s, &stale, bk.active_enc, &err), KS_E_VERSION_RACE);
    cr_assert_eq(err.code, KS_E_VERSION_RACE);
    cr_assert_str_eq(err.message, "ACTIVE branch key changed concurrently; retry VersionKey");
    assert_version_missing(f->s, "raced", stale.vid);
    assert_active_is(f->s, &first.active);

    /* An old_enc of another length. */
    cr_assert_eq(f->s->ops->write_new_version(f->s, &stale.version, &stale.active, first.active_enc,
                                              ENC_LEN - 1, &err),
                 KS_E_VERSION_RACE);
    assert_version_missing(f->s, "raced", stale.vid);
    free_new_version(&first);
    free_new_version(&stale);
    free_branch_key(&bk);
}

static void case_version_without_active(struct fixture *f)
{
    struct new_version nv;
    unsigned char enc[ENC_LEN] = {0};
    struct ks_error err;

    make_new_version(&nv, "never-created", NULL);
    cr_assert_eq(write_version(f->s, &nv, enc, &err), KS_E_VERSION_RACE);
    assert_version_missing(f->s, "never-created", nv.vid);
    struct ks_item got;
    cr_assert_eq(f->s->ops->get_active(f->s, "never-created", &got, &err), KS_E_NOT_FOUND);
    free_new_version(&nv);
}

static void case_version_exists(struct fixture *f)
{
    struct branch_key bk;
    struct new_version nv;
    struct ks_error err;

    make_branch_key(&bk, "vexists");
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_OK, "%s", err.message);
    make_new_version(&nv, "vexists", bk.vid); /* the version that already exists */
    cr_assert_eq(write_version(f->s, &nv, bk.active_enc, &err), KS_E_ALREADY_EXISTS);
    cr_assert_eq(err.code, KS_E_ALREADY_EXISTS);
    assert_branch_key_stored(f->s, &bk); /* ACTIVE not replaced either */
    free_new_version(&nv);
    free_branch_key(&bk);
}

static void case_get_missing(struct fixture *f)
{
    struct branch_key bk;
    struct ks_item got;
    struct ks_error err;

    make_branch_key(&bk, "present");
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_OK, "%s", err.message);

    cr_assert_eq(f->s->ops->get_active(f->s, "absent", &got, &err), KS_E_NOT_FOUND);
    cr_assert_str_eq(err.message, "No item found for corresponding branch key identifier.");
    cr_assert_eq(got.count, 0);
    cr_assert_eq(f->s->ops->get_beacon(f->s, "absent", &got, &err), KS_E_NOT_FOUND);
    cr_assert_str_eq(err.message, "No item found for corresponding branch key identifier.");
    cr_assert_eq(f->s->ops->get_version(f->s, "absent", bk.vid, &got, &err), KS_E_NOT_FOUND);
    cr_assert_str_eq(err.message, "No item found for corresponding branch key identifier.");
    /* Present id, unknown version; and the key is compared exactly (no prefix match). */
    assert_version_missing(f->s, "present", "00000000-0000-4000-8000-000000000000");
    assert_version_missing(f->s, "present", "");
    cr_assert_eq(f->s->ops->get_active(f->s, "Present", &got, &err), KS_E_NOT_FOUND);
    cr_assert_eq(f->s->ops->get_active(f->s, "presen", &got, &err), KS_E_NOT_FOUND);
    free_branch_key(&bk);
}

/* A write with a bad item is KS_E_INVALID and writes nothing. */
static void case_invalid_items(struct fixture *f)
{
    struct branch_key bk;
    struct new_version nv;
    struct ks_item saved;
    struct ks_error err;

    make_branch_key(&bk, "inv");

    ks_item_init(&saved);
    ks_item_copy(&saved, &bk.active);
    ks_item_remove(&bk.active, KS_ATTR_BRANCH_KEY_ID);
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_E_INVALID);
    ks_item_set_n(&bk.active, KS_ATTR_BRANCH_KEY_ID, "7"); /* N, not S */
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_E_INVALID);
    ks_item_set_s(&bk.active, KS_ATTR_BRANCH_KEY_ID, ""); /* empty key attribute */
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_E_INVALID);
    ks_item_set_s(&bk.active, KS_ATTR_BRANCH_KEY_ID, "inv-other"); /* ids differ */
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_E_INVALID);
    ks_item_copy(&bk.active, &saved);

    ks_item_set_b(&bk.beacon, KS_ATTR_TYPE, "x", 1); /* type B */
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_E_INVALID);
    ks_item_remove(&bk.beacon, KS_ATTR_TYPE);
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_E_INVALID);
    ks_item_set_s(&bk.beacon, KS_ATTR_TYPE, KS_TYPE_ACTIVE); /* wrong role */
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_E_INVALID);
    ks_item_set_s(&bk.beacon, KS_ATTR_TYPE, KS_TYPE_BEACON);
    ks_item_set_s(&bk.version, KS_ATTR_TYPE, KS_TYPE_VERSION_PREFIX); /* no version */
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_E_INVALID);
    cr_assert_eq(err.code, KS_E_INVALID);

    struct ks_item got;
    cr_assert_eq(f->s->ops->get_active(f->s, "inv", &got, &err), KS_E_NOT_FOUND);
    cr_assert_eq(f->s->ops->get_beacon(f->s, "inv", &got, &err), KS_E_NOT_FOUND);

    /* The same for VersionKey. */
    free_branch_key(&bk);
    make_branch_key(&bk, "inv");
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_OK, "%s", err.message);
    make_new_version(&nv, "inv", NULL);
    ks_item_remove(&nv.version, KS_ATTR_TYPE);
    cr_assert_eq(write_version(f->s, &nv, bk.active_enc, &err), KS_E_INVALID);
    ks_item_set_s(&nv.version, KS_ATTR_TYPE, KS_TYPE_BEACON);
    cr_assert_eq(write_version(f->s, &nv, bk.active_enc, &err), KS_E_INVALID);
    ks_item_free(&nv.version);
    make_version(&nv.version, "inv", nv.version_enc[0] ? "a" : "b", nv.version_enc);
    ks_item_set_s(&nv.active, KS_ATTR_TYPE, KS_TYPE_BEACON);
    cr_assert_eq(write_version(f->s, &nv, bk.active_enc, &err), KS_E_INVALID);
    assert_branch_key_stored(f->s, &bk);
    free_new_version(&nv);
    ks_item_free(&saved);
    free_branch_key(&bk);
}

static void case_info_create_ping(struct fixture *f)
{
    struct ks_storage_info info;
    struct ks_error err;
    char *table_id = NULL;

    cr_assert_eq(f->s->ops->version, KS_STORAGE_OPS_VERSION);
    cr_assert_eq(f->s->ops->ping(f->s, &err), KS_OK, "%s", err.message);
    cr_assert_eq(f->s->ops->info(f->s, &info, &err), KS_OK);
    cr_assert_eq(f->s->ops->create_key_store(f->s, &table_id, &err), KS_OK, "%s", err.message);
    if (f->backend == SQLITE) {
        char expected[160];
        snprintf(expected, sizeof expected, "sqlite:%s", f->path);
        cr_assert_str_eq(table_id, expected);
        cr_assert_str_eq(info.kind, "sqlite");
        cr_assert_str_eq(info.name, f->path);
        cr_assert_str_eq(f->s->ops->name, "sqlite");
    } else {
        cr_assert_str_eq(info.kind, "memory");
        cr_assert_str_eq(f->s->ops->name, "memory");
    }
    free(table_id);

    /* Idempotent, and the data stays. */
    struct branch_key bk;
    make_branch_key(&bk, "ck");
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_OK, "%s", err.message);
    cr_assert_eq(f->s->ops->create_key_store(f->s, &table_id, &err), KS_OK, "%s", err.message);
    free(table_id);
    assert_branch_key_stored(f->s, &bk);
    free_branch_key(&bk);
}

/* --- the VersionKey race --------------------------------------------------------------------
 * Workers loop: read ACTIVE, then write a new version conditioned on the enc they read. Every
 * win is recorded with the enc it was based on; the winners must form one chain from the first
 * ACTIVE to the stored ACTIVE (two winners based on one ACTIVE would be a lost update). */

#define RACE_WORKERS 4
#define RACE_ROUNDS 25
#define RACE_ID "race-key"

struct race_log {
    size_t wins, losses, unexpected;
    char unexpected_message[KS_ERROR_MESSAGE_MAX + 16];
    unsigned char win_old[RACE_ROUNDS][ENC_LEN];
    unsigned char win_new[RACE_ROUNDS][ENC_LEN];
    char win_version[RACE_ROUNDS][KS_UUID_LEN + 1];
    char lost_version[RACE_ROUNDS][KS_UUID_LEN + 1];
};

/* No cr_assert here: it also runs in forked children. */
static void race_worker(struct ks_storage *s, struct race_log *log)
{
    int round;

    for (round = 0; round < RACE_ROUNDS; round++) {
        struct ks_item active, version;
        struct ks_error err;
        unsigned char old[ENC_LEN], new_active[ENC_LEN], new_version[ENC_LEN];
        char v[KS_UUID_LEN + 1], type[80];
        const struct ks_attr *enc;
        ks_status st;

        st = s->ops->get_active(s, RACE_ID, &active, &err);
        enc = st == KS_OK ? ks_item_get(&active, KS_ATTR_ENC) : NULL;
        if (!enc || enc->len != ENC_LEN) {
            log->unexpected++;
            snprintf(log->unexpected_message, sizeof log->unexpected_message, "get: %s",
                     st == KS_OK ? "bad enc" : err.message);
            ks_item_free(&active);
            continue;
        }
        memcpy(old, enc->value, ENC_LEN);
        ks_item_free(&active);

        if (ks_uuid_v4(v) != 0 || RAND_bytes(new_active, ENC_LEN) != 1 ||
            RAND_bytes(new_version, ENC_LEN) != 1) {
            log->unexpected++;
            continue;
        }
        snprintf(type, sizeof type, "%s%s", KS_TYPE_VERSION_PREFIX, v);
        ks_item_init(&active);
        ks_item_init(&version);
        ks_item_set_s(&active, KS_ATTR_BRANCH_KEY_ID, RACE_ID);
        ks_item_set_s(&active, KS_ATTR_TYPE, KS_TYPE_ACTIVE);
        ks_item_set_s(&active, KS_ATTR_VERSION, type);
        ks_item_set_b(&active, KS_ATTR_ENC, new_active, ENC_LEN);
        ks_item_set_s(&version, KS_ATTR_BRANCH_KEY_ID, RACE_ID);
        ks_item_set_s(&version, KS_ATTR_TYPE, type);
        ks_item_set_b(&version, KS_ATTR_ENC, new_version, ENC_LEN);

        st = s->ops->write_new_version(s, &version, &active, old, ENC_LEN, &err);
        if (st == KS_OK) {
            memcpy(log->win_old[log->wins], old, ENC_LEN);
            memcpy(log->win_new[log->wins], new_active, ENC_LEN);
            memcpy(log->win_version[log->wins], v, sizeof v);
            log->wins++;
        } else if (st == KS_E_VERSION_RACE) {
            memcpy(log->lost_version[log->losses], v, sizeof v);
            log->losses++;
        } else {
            log->unexpected++;
            snprintf(log->unexpected_message, sizeof log->unexpected_message, "write: %s",
                     err.message);
        }
        ks_item_free(&active);
        ks_item_free(&version);
    }
}

static void race_setup(struct ks_storage *s, unsigned char first_enc[ENC_LEN])
{
    struct branch_key bk;
    struct ks_error err;

    make_branch_key(&bk, RACE_ID);
    cr_assert_eq(write_branch_key(s, &bk, &err), KS_OK, "%s", err.message);
    memcpy(first_enc, bk.active_enc, ENC_LEN);
    free_branch_key(&bk);
}

static void race_check(struct ks_storage *s, const struct race_log *logs, size_t n,
                       const unsigned char first_enc[ENC_LEN])
{
    size_t total = 0, i, j, k, steps = 0;
    unsigned char cur[ENC_LEN];
    char last_version[KS_UUID_LEN + 1] = "";
    struct ks_item active;
    struct ks_error err;

    for (i = 0; i < n; i++) {
        cr_assert_eq(logs[i].unexpected, 0, "worker %zu: %s", i, logs[i].unexpected_message);
        cr_assert_eq(logs[i].wins + logs[i].losses, RACE_ROUNDS);
        total += logs[i].wins;
    }
    /* Each loss means another write won in between, so someone always wins. */
    cr_assert_geq(total, 1);

    /* Follow the chain from the first ACTIVE: exactly one win per ACTIVE enc. */
    memcpy(cur, first_enc, ENC_LEN);
    for (;;) {
        size_t found = 0, fi = 0, fj = 0;
        for (i = 0; i < n; i++)
            for (j = 0; j < logs[i].wins; j++)
                if (memcmp(logs[i].win_old[j], cur, ENC_LEN) == 0)
                    found++, fi = i, fj = j;
        cr_assert_leq(found, 1, "two writers won against one ACTIVE: a lost update");
        if (!found)
            break;
        memcpy(cur, logs[fi].win_new[fj], ENC_LEN);
        memcpy(last_version, logs[fi].win_version[fj], sizeof last_version);
        steps++;
    }
    cr_assert_eq(steps, total, "every win is on the chain");

    /* The stored ACTIVE is the last winner's. */
    cr_assert_eq(s->ops->get_active(s, RACE_ID, &active, &err), KS_OK, "%s", err.message);
    cr_assert_eq(memcmp(ks_item_get(&active, KS_ATTR_ENC)->value, cur, ENC_LEN), 0);
    cr_assert_str_eq(ks_item_get_s(&active, KS_ATTR_VERSION) + strlen(KS_TYPE_VERSION_PREFIX),
                     last_version);
    ks_item_free(&active);

    /* Every winner's version row exists, no loser's does. */
    for (i = 0; i < n; i++) {
        for (j = 0; j < logs[i].wins; j++) {
            struct ks_item got;
            cr_assert_eq(s->ops->get_version(s, RACE_ID, logs[i].win_version[j], &got, &err), KS_OK,
                         "winner's version lost: %s", err.message);
            ks_item_free(&got);
        }
        for (k = 0; k < logs[i].losses; k++)
            assert_version_missing(s, RACE_ID, logs[i].lost_version[k]);
    }
}

struct race_thread {
    pthread_t thread;
    struct ks_storage *s;
    struct race_log log;
};

static void *race_thread_main(void *arg)
{
    struct race_thread *t = arg;

    race_worker(t->s, &t->log);
    return NULL;
}

static void case_thread_race(struct fixture *f)
{
    static struct race_thread threads[RACE_WORKERS];
    struct race_log logs[RACE_WORKERS];
    unsigned char first_enc[ENC_LEN];
    size_t i;

    race_setup(f->s, first_enc);
    memset(threads, 0, sizeof threads);
    for (i = 0; i < RACE_WORKERS; i++) {
        threads[i].s = f->s;
        cr_assert_eq(pthread_create(&threads[i].thread, NULL, race_thread_main, &threads[i]), 0);
    }
    for (i = 0; i < RACE_WORKERS; i++) {
        pthread_join(threads[i].thread, NULL);
        logs[i] = threads[i].log;
    }
    race_check(f->s, logs, RACE_WORKERS, first_enc);
}

/* has_items: none in a new store, some after a write, still some after a refused write. */
static void case_has_items(struct fixture *f)
{
    struct branch_key bk;
    struct ks_error err;
    int has = -1;

    cr_assert_eq(f->s->ops->has_items(f->s, &has, &err), KS_OK, "%s", err.message);
    cr_assert_eq(has, 0);
    make_branch_key(&bk, "has");
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_OK, "%s", err.message);
    has = -1;
    cr_assert_eq(f->s->ops->has_items(f->s, &has, &err), KS_OK, "%s", err.message);
    cr_assert_eq(has, 1);
    cr_assert_eq(write_branch_key(f->s, &bk, &err), KS_E_ALREADY_EXISTS);
    has = -1;
    cr_assert_eq(f->s->ops->has_items(f->s, &has, &err), KS_OK, "%s", err.message);
    cr_assert_eq(has, 1);
    free_branch_key(&bk);
}

#define BOTH_BACKENDS(name)                                                                        \
    Test(storage_memory, name)                                                                     \
    {                                                                                              \
        struct fixture f;                                                                          \
        fx_open(&f, MEMORY);                                                                       \
        case_##name(&f);                                                                           \
        fx_close(&f);                                                                              \
    }                                                                                              \
    Test(storage_sqlite, name)                                                                     \
    {                                                                                              \
        struct fixture f;                                                                          \
        fx_open(&f, SQLITE);                                                                       \
        case_##name(&f);                                                                           \
        fx_close(&f);                                                                              \
    }

BOTH_BACKENDS(write_and_get)
BOTH_BACKENDS(duplicate_create)
BOTH_BACKENDS(new_version)
BOTH_BACKENDS(stale_old_enc)
BOTH_BACKENDS(version_without_active)
BOTH_BACKENDS(version_exists)
BOTH_BACKENDS(get_missing)
BOTH_BACKENDS(invalid_items)
BOTH_BACKENDS(info_create_ping)
BOTH_BACKENDS(thread_race)
BOTH_BACKENDS(has_items)

Test(storage, destroy_null_is_noop)
{
    ks_storage_destroy(NULL);
}

/* --- SQLite only ----------------------------------------------------------------------------- */

/* A second, plain handle on the database file, as another program would have. */
static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;

    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql, msg ? msg : "");
}

static int raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt;
    int v;

    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW, "%s", sql);
    v = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

static mode_t file_mode(const char *path)
{
    struct stat st;

    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    return st.st_mode & 07777;
}

Test(storage_sqlite, file_mode_0600_whatever_the_umask)
{
    struct fixture f;
    struct branch_key bk;
    struct ks_error err;
    char wal[160];
    mode_t old = umask(0);

    fx_open(&f, SQLITE);
    umask(old);
    cr_assert_eq(file_mode(f.path), 0600, "mode %o", (unsigned)file_mode(f.path));
    make_branch_key(&bk, "m");
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_OK, "%s", err.message);
    snprintf(wal, sizeof wal, "%s-wal", f.path);
    cr_assert_eq(file_mode(wal), 0600, "wal mode %o", (unsigned)file_mode(wal));
    free_branch_key(&bk);
    fx_close(&f);
}

Test(storage_sqlite, schema_wal_and_version)
{
    struct fixture f;
    sqlite3 *db;
    sqlite3_stmt *stmt;

    fx_open(&f, SQLITE);
    db = raw_open(f.path);
    cr_assert_eq(raw_int(db, "PRAGMA user_version"), 2);
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(stmt, 0), "wal");
    sqlite3_finalize(stmt);
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'items' AND "
                             "sql LIKE '%WITHOUT ROWID%'"),
                 1);
    sqlite3_close(db);
    fx_close(&f);
}

/* What is stored is the DynamoDB AttributeValue map JSON, attribute for attribute. */
Test(storage_sqlite, stored_form_is_attribute_value_json)
{
    struct fixture f;
    struct ks_item item;
    struct ks_error err;
    const unsigned char enc[] = {0xfb, 0xff, 0x00};
    sqlite3 *db;
    sqlite3_stmt *stmt;

    fx_open(&f, SQLITE);
    struct branch_key bk;
    make_branch_key(&bk, "form");
    ks_item_set_b(&bk.beacon, KS_ATTR_ENC, enc, sizeof enc);
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_OK, "%s", err.message);

    db = raw_open(f.path);
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT item FROM items WHERE branch_key_id = 'form' "
                                    "AND type = 'beacon:ACTIVE'",
                                    -1, &stmt, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(stmt, 0),
                     "{\"aws-crypto-ec:department\":{\"S\":\"finance\"},"
                     "\"branch-key-id\":{\"S\":\"form\"},"
                     "\"create-time\":{\"S\":\"" CREATE_TIME "\"},"
                     "\"enc\":{\"B\":\"+/8A\"},"
                     "\"hierarchy-version\":{\"N\":\"1\"},"
                     "\"kms-arn\":{\"S\":\"" KMS_ARN "\"},"
                     "\"type\":{\"S\":\"beacon:ACTIVE\"}}");
    sqlite3_finalize(stmt);
    sqlite3_close(db);

    cr_assert_eq(f.s->ops->get_beacon(f.s, "form", &item, &err), KS_OK, "%s", err.message);
    assert_items_equal(&item, &bk.beacon);
    ks_item_free(&item);
    free_branch_key(&bk);
    fx_close(&f);
}

/* has_items reads the file, not this process's memory of it: rows written and deleted by
 * another program are seen, and a damaged database is an error, never "no items". */
Test(storage_sqlite, has_items_reads_the_file)
{
    struct fixture f;
    struct branch_key bk;
    struct ks_error err;
    sqlite3 *db;
    int has = -1;

    fx_open(&f, SQLITE);
    make_branch_key(&bk, "other");
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_OK, "%s", err.message);
    fx_reopen(&f);
    cr_assert_eq(f.s->ops->has_items(f.s, &has, &err), KS_OK, "%s", err.message);
    cr_assert_eq(has, 1);
    db = raw_open(f.path);
    raw_exec(db, "DELETE FROM items");
    cr_assert_eq(f.s->ops->has_items(f.s, &has, &err), KS_OK, "%s", err.message);
    cr_assert_eq(has, 0);
    raw_exec(db, "DROP TABLE items");
    sqlite3_close(db);
    has = -1;
    cr_assert_eq(f.s->ops->has_items(f.s, &has, &err), KS_E_STORAGE);
    cr_assert_eq(has, 0);
    cr_assert(strstr(err.message, "looking for items"), "%s", err.message);
    free_branch_key(&bk);
    fx_close(&f);
}

Test(storage_sqlite, reopen_persists)
{
    struct fixture f;
    struct branch_key bk;
    struct new_version nv;
    struct ks_error err;

    fx_open(&f, SQLITE);
    make_branch_key(&bk, "persist");
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_OK, "%s", err.message);
    make_new_version(&nv, "persist", NULL);
    cr_assert_eq(write_version(f.s, &nv, bk.active_enc, &err), KS_OK, "%s", err.message);
    fx_reopen(&f);
    assert_active_is(f.s, &nv.active);
    assert_version_is(f.s, "persist", nv.vid, &nv.version);
    assert_version_is(f.s, "persist", bk.vid, &bk.version);
    /* A second store object on the same file sees the same data. */
    struct ks_storage *second;
    cr_assert_eq(ks_storage_sqlite_open(f.path, &second, &err), KS_OK, "%s", err.message);
    assert_active_is(second, &nv.active);
    ks_storage_destroy(second);
    free_new_version(&nv);
    free_branch_key(&bk);
    fx_close(&f);
}

static void corrupt_active(const char *path, const char *json)
{
    sqlite3 *db = raw_open(path);
    sqlite3_stmt *stmt;

    cr_assert_eq(sqlite3_prepare_v2(db, "UPDATE items SET item = ?1 WHERE type = 'branch:ACTIVE'",
                                    -1, &stmt, NULL),
                 SQLITE_OK);
    sqlite3_bind_text(stmt, 1, json, -1, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_DONE);
    cr_assert_eq(sqlite3_changes(db), 1);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

static void assert_active_corrupt(struct fixture *f, const char *json)
{
    struct ks_item got;
    struct ks_error err;

    corrupt_active(f->path, json);
    cr_assert_eq(f->s->ops->get_active(f->s, "damaged", &got, &err), KS_E_CORRUPT, "accepted %s",
                 json);
    cr_assert_not_null(strstr(err.message, "stored item is not valid"), "%s", err.message);
    cr_assert_eq(got.count, 0);
}

Test(storage_sqlite, corrupt_row_is_corrupt)
{
    struct fixture f;
    struct branch_key bk;
    struct new_version nv;
    struct ks_error err;

    fx_open(&f, SQLITE);
    make_branch_key(&bk, "damaged");
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_OK, "%s", err.message);

    assert_active_corrupt(&f, "{not json");
    assert_active_corrupt(&f, "");
    assert_active_corrupt(&f, "[]");
    assert_active_corrupt(&f, "{\"branch-key-id\":{\"S\":\"damaged\"}} trailing");
    assert_active_corrupt(&f, "{\"branch-key-id\":{\"S\":\"damaged\"},"
                              "\"type\":{\"S\":\"branch:ACTIVE\"},\"enc\":{\"B\":\"%%%%\"}}");
    assert_active_corrupt(&f, "{\"branch-key-id\":{\"SS\":[\"damaged\"]},"
                              "\"type\":{\"S\":\"branch:ACTIVE\"}}");
    /* Valid item JSON, but stored under another key than its own attributes say. */
    assert_active_corrupt(&f, "{\"branch-key-id\":{\"S\":\"someone-else\"},"
                              "\"type\":{\"S\":\"branch:ACTIVE\"}}");
    assert_active_corrupt(&f, "{\"branch-key-id\":{\"S\":\"damaged\"},"
                              "\"type\":{\"S\":\"beacon:ACTIVE\"}}");

    /* VersionKey against a damaged ACTIVE writes nothing. */
    corrupt_active(f.path, "{not json");
    make_new_version(&nv, "damaged", NULL);
    cr_assert_eq(write_version(f.s, &nv, bk.active_enc, &err), KS_E_CORRUPT);
    assert_version_missing(f.s, "damaged", nv.vid);

    /* The other items are still readable. */
    assert_version_is(f.s, "damaged", bk.vid, &bk.version);
    free_new_version(&nv);
    free_branch_key(&bk);
    fx_close(&f);
}

/* Another process holds the write lock past the busy timeout: 503, and nothing is written. */
Test(storage_sqlite, held_lock_is_unavailable, .timeout = 30)
{
    struct fixture f;
    struct branch_key bk, other;
    struct new_version nv;
    struct ks_error err;
    struct ks_item got;
    sqlite3 *db;

    fx_open(&f, SQLITE);
    make_branch_key(&bk, "locked");
    cr_assert_eq(write_branch_key(f.s, &bk, &err), KS_OK, "%s", err.message);
    db = raw_open(f.path);
    raw_exec(db, "BEGIN IMMEDIATE");

    make_branch_key(&other, "blocked");
    cr_assert_eq(write_branch_key(f.s, &other, &err), KS_E_UNAVAILABLE);
    cr_assert_eq(err.code, KS_E_UNAVAILABLE);
    /* Readers are not blocked by a writer in WAL mode. */
    assert_active_is(f.s, &bk.active);
    raw_exec(db, "ROLLBACK");
    sqlite3_close(db);

    cr_assert_eq(f.s->ops->get_active(f.s, "blocked", &got, &err), KS_E_NOT_FOUND);
    make_new_version(&nv, "locked", NULL);
    cr_assert_eq(write_version(f.s, &nv, bk.active_enc, &err), KS_OK, "%s", err.message);
    free_new_version(&nv);
    free_branch_key(&other);
    free_branch_key(&bk);
    fx_close(&f);
}

Test(storage_sqlite, open_failures)
{
    struct ks_storage *s = (struct ks_storage *)&s;
    struct ks_error err;
    char dir[] = "/tmp/ks-test-open-XXXXXX", path[96];
    int fd;
    sqlite3 *db;

    cr_assert_eq(ks_storage_sqlite_open("/nonexistent-dir/x/keystore.db", &s, &err), KS_E_STORAGE);
    cr_assert_null(s);
    cr_assert_eq(ks_storage_sqlite_open("", &s, &err), KS_E_INVALID);

    /* Not a database. */
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/garbage.db", dir);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "this is not an SQLite database, not at all.......", 49), 49);
    close(fd);
    cr_assert_eq(ks_storage_sqlite_open(path, &s, &err), KS_E_STORAGE);
    cr_assert_null(s);
    unlink(path);

    /* A database of a newer schema. */
    snprintf(path, sizeof path, "%s/newer.db", dir);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    raw_exec(db, "PRAGMA user_version = 99");
    sqlite3_close(db);
    cr_assert_eq(ks_storage_sqlite_open(path, &s, &err), KS_E_STORAGE);
    cr_assert_not_null(strstr(err.message, "99"), "%s", err.message);
    unlink(path);

    /* Someone else's database that claims our version. */
    snprintf(path, sizeof path, "%s/foreign.db", dir);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    raw_exec(db, "CREATE TABLE other(x); PRAGMA user_version = 1");
    sqlite3_close(db);
    cr_assert_eq(ks_storage_sqlite_open(path, &s, &err), KS_E_STORAGE);
    unlink(path);
    rmdir(dir);
}

/* Writers in separate processes on one file: BEGIN IMMEDIATE makes the check-and-write
 * atomic across processes, not just threads. */
Test(storage_sqlite, process_race, .timeout = 120)
{
    struct fixture f;
    struct race_log *logs;
    unsigned char first_enc[ENC_LEN];
    int go[2];
    pid_t pids[RACE_WORKERS];
    size_t i, total = 0;
    sqlite3 *db;

    fx_open(&f, SQLITE);
    race_setup(f.s, first_enc);
    /* No connection may cross fork() (SQLite's rule): close ours, reopen afterwards. */
    ks_storage_destroy(f.s);
    f.s = NULL;

    logs = mmap(NULL, sizeof *logs * RACE_WORKERS, PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(logs, MAP_FAILED);
    memset(logs, 0, sizeof *logs * RACE_WORKERS);
    cr_assert_eq(pipe(go), 0);

    for (i = 0; i < RACE_WORKERS; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            struct ks_storage *s;
            struct ks_error err;
            char c;
            close(go[1]);
            if (ks_storage_sqlite_open(f.path, &s, &err) != KS_OK) {
                logs[i].unexpected = 1;
                snprintf(logs[i].unexpected_message, sizeof logs[i].unexpected_message, "open: %s",
                         err.message);
                _exit(1);
            }
            /* Start together: wait for the parent to close the pipe. */
            while (read(go[0], &c, 1) > 0)
                ;
            race_worker(s, &logs[i]);
            ks_storage_destroy(s);
            _exit(0);
        }
    }
    close(go[0]);
    close(go[1]);
    for (i = 0; i < RACE_WORKERS; i++) {
        int status;
        cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %zu: %s", i,
                  logs[i].unexpected_message);
        total += logs[i].wins;
    }

    fx_reopen(&f);
    race_check(f.s, logs, RACE_WORKERS, first_enc);
    db = raw_open(f.path);
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM items WHERE type LIKE 'branch:version:%'"),
                 (int)(1 + total));
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM items"), (int)(3 + total));
    sqlite3_close(db);
    munmap(logs, sizeof *logs * RACE_WORKERS);
    fx_close(&f);
}

/* The same count in one process, threads sharing one ks_storage (the server's case). */
Test(storage_sqlite, thread_race_row_count)
{
    struct fixture f;
    static struct race_thread threads[RACE_WORKERS];
    struct race_log logs[RACE_WORKERS];
    unsigned char first_enc[ENC_LEN];
    size_t i, total = 0;
    sqlite3 *db;

    fx_open(&f, SQLITE);
    race_setup(f.s, first_enc);
    memset(threads, 0, sizeof threads);
    for (i = 0; i < RACE_WORKERS; i++) {
        threads[i].s = f.s;
        cr_assert_eq(pthread_create(&threads[i].thread, NULL, race_thread_main, &threads[i]), 0);
    }
    for (i = 0; i < RACE_WORKERS; i++) {
        pthread_join(threads[i].thread, NULL);
        logs[i] = threads[i].log;
        total += logs[i].wins;
    }
    race_check(f.s, logs, RACE_WORKERS, first_enc);
    db = raw_open(f.path);
    cr_assert_eq(raw_int(db, "SELECT count(*) FROM items WHERE type LIKE 'branch:version:%'"),
                 (int)(1 + total));
    sqlite3_close(db);
    fx_close(&f);
}

/* --- mutations (docs/reference/mutations.md section 8), both backends ----------------------- */

#define TERMINAL_ARN "arn:aws:kms:us-west-2:111122223333:key/7d1f0c55-0e61-4c7e-9a53-5f7f0e3b9a21"
#define M_UUID "5b8e1a1f-3c2d-4e5f-8a9b-0c1d2e3f4a5b"

/* A branch key with `versions` versions (create, then VersionKey writes). */
static void setup_key(struct ks_storage *s, const char *id, size_t versions)
{
    unsigned char enc[ENC_LEN];
    struct branch_key bk;
    struct ks_error err;
    size_t i;

    make_branch_key(&bk, id);
    cr_assert_eq(write_branch_key(s, &bk, &err), KS_OK, "%s", err.message);
    memcpy(enc, bk.active_enc, ENC_LEN);
    for (i = 1; i < versions; i++) {
        struct new_version nv;
        make_new_version(&nv, id, NULL);
        cr_assert_eq(write_version(s, &nv, enc, &err), KS_OK, "%s", err.message);
        memcpy(enc, nv.active_enc, ENC_LEN);
        free_new_version(&nv);
    }
    free_branch_key(&bk);
}

/* Everything stored for one key, as items in a fixed order. */
#define SNAP_MAX 128
struct snap {
    struct ks_item items[SNAP_MAX];
    size_t n;
};

static void snap_add_get(struct snap *sn, ks_status st, struct ks_item *item)
{
    if (st == KS_OK) {
        cr_assert_lt(sn->n, SNAP_MAX);
        sn->items[sn->n++] = *item;
    }
}

static void snap_take(struct ks_storage *s, const char *id, struct snap *sn)
{
    struct ks_mutation_state ms;
    struct ks_version_page page;
    struct ks_error err;
    struct ks_item item;
    char *start = NULL;
    size_t i;

    sn->n = 0;
    snap_add_get(sn, s->ops->get_active(s, id, &item, &err), &item);
    snap_add_get(sn, s->ops->get_beacon(s, id, &item, &err), &item);
    do {
        cr_assert_eq(s->ops->query_for_versions(s, id, start, 5, &page, &err), KS_OK, "%s",
                     err.message);
        for (i = 0; i < page.count; i++) {
            cr_assert_lt(sn->n, SNAP_MAX);
            sn->items[sn->n++] = page.items[i];
            ks_item_init(&page.items[i]);
        }
        free(start);
        start = page.next ? strdup(page.next) : NULL;
        ks_version_page_free(&page);
    } while (start);
    cr_assert_eq(s->ops->get_mutation(s, id, &ms, &err), KS_OK, "%s", err.message);
    if (ms.has_commitment) {
        cr_assert_eq(ks_mutation_commitment_to_item(&ms.commitment, &item, &err), KS_OK);
        snap_add_get(sn, KS_OK, &item);
    }
    if (ms.has_index) {
        cr_assert_eq(ks_mutation_index_to_item(&ms.index, &item, &err), KS_OK);
        snap_add_get(sn, KS_OK, &item);
    }
    ks_mutation_state_free(&ms);
}

static void snap_free(struct snap *sn)
{
    size_t i;

    for (i = 0; i < sn->n; i++)
        ks_item_free(&sn->items[i]);
    sn->n = 0;
}

/* The table holds for id exactly what `before` recorded (a failed write wrote nothing). */
static void assert_unchanged(struct ks_storage *s, const char *id, const struct snap *before)
{
    struct snap now;
    size_t i;

    snap_take(s, id, &now);
    cr_assert_eq(now.n, before->n, "item count changed");
    for (i = 0; i < now.n; i++)
        assert_items_equal(&now.items[i], &before->items[i]);
    snap_free(&now);
}

/* The mutated form of an item: terminal ARN, a new enc. */
static void mutate_item(const struct ks_item *in, struct ks_item *out)
{
    unsigned char enc[ENC_LEN];

    random_bytes(enc, ENC_LEN);
    ks_item_init(out);
    cr_assert_eq(ks_item_copy(out, in), 0);
    cr_assert_eq(ks_item_set_s(out, KS_ATTR_KMS_ARN, TERMINAL_ARN), 0);
    cr_assert_eq(ks_item_set_b(out, KS_ATTR_ENC, enc, ENC_LEN), 0);
}

/* A copy of item whose enc differs (an "old" that lost a race). */
static void stale_copy(const struct ks_item *in, struct ks_item *out)
{
    unsigned char enc[ENC_LEN];

    random_bytes(enc, ENC_LEN);
    ks_item_init(out);
    cr_assert_eq(ks_item_copy(out, in), 0);
    cr_assert_eq(ks_item_set_b(out, KS_ATTR_ENC, enc, ENC_LEN), 0);
}

static int is_terminal(const struct ks_item *item)
{
    return strcmp(ks_item_get_s(item, KS_ATTR_KMS_ARN), TERMINAL_ARN) == 0;
}

static void set_text(struct ks_bytes *b, const char *text)
{
    cr_assert_eq(ks_bytes_set(b, text, strlen(text)), 0);
}

static void make_mut_commitment(struct ks_mutation_commitment *c, const char *id)
{
    struct ks_error err;
    struct ks_ec ec;

    ks_mutation_commitment_init(c);
    c->branch_key_id = strdup(id);
    c->create_time = strdup(CREATE_TIME);
    c->uuid = strdup(M_UUID);
    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, KS_EC_PREFIX "department", "finance"), 0);
    cr_assert_eq(ks_mutation_props_to_json(KMS_ARN, &ec, &c->original, &err), KS_OK);
    cr_assert_eq(ks_mutation_props_to_json(TERMINAL_ARN, &ec, &c->terminal, &err), KS_OK);
    cr_assert_eq(ks_mutation_input_to_json(TERMINAL_ARN, NULL, &c->input, &err), KS_OK);
    set_text(&c->enc, "trustStorage");
    ks_ec_free(&ec);
}

static void make_mut_index(struct ks_mutation_index *x, const char *id, const char *page_index)
{
    ks_mutation_index_init(x);
    x->branch_key_id = strdup(id);
    x->create_time = strdup(CREATE_TIME);
    x->uuid = strdup(M_UUID);
    set_text(&x->page_index, page_index);
    set_text(&x->enc, "trustStorage");
}

/* The writes of a rotating InitializeMutation, built from what storage returned. */
struct init_writes {
    struct ks_mutation_init_items read;
    struct ks_item active, version, beacon;
    struct ks_storage_write w_active, w_version, w_beacon;
};

static void init_writes_build(struct ks_storage *s, const char *id, struct init_writes *iw)
{
    unsigned char enc[ENC_LEN];
    char vid[KS_UUID_LEN + 1], vtype[80];
    struct ks_error err;

    cr_assert_eq(s->ops->get_items_for_initialize_mutation(s, id, &iw->read, &err), KS_OK, "%s",
                 err.message);
    cr_assert_eq(ks_uuid_v4(vid), 0);
    random_bytes(enc, ENC_LEN);
    make_version(&iw->version, id, vid, enc);
    cr_assert_eq(ks_item_set_s(&iw->version, KS_ATTR_KMS_ARN, TERMINAL_ARN), 0);
    mutate_item(&iw->read.active, &iw->active);
    version_type(vid, vtype, sizeof vtype);
    cr_assert_eq(ks_item_set_s(&iw->active, KS_ATTR_VERSION, vtype), 0);
    mutate_item(&iw->read.beacon, &iw->beacon);
    iw->w_active = (struct ks_storage_write){&iw->active, &iw->read.active};
    iw->w_version = (struct ks_storage_write){&iw->version, NULL};
    iw->w_beacon = (struct ks_storage_write){&iw->beacon, &iw->read.beacon};
}

static void init_writes_free(struct init_writes *iw)
{
    ks_mutation_init_items_free(&iw->read);
    ks_item_free(&iw->active);
    ks_item_free(&iw->version);
    ks_item_free(&iw->beacon);
}

static ks_status init_write(struct ks_storage *s, const struct init_writes *iw,
                            const struct ks_mutation_commitment *c,
                            const struct ks_mutation_index *x, struct ks_error *err)
{
    ks_error_clear(err);
    return s->ops->write_initialize_mutation(s, &iw->w_active, &iw->w_version, &iw->w_beacon, c, x,
                                             err);
}

/* Starts a mutation on id (commitment and index "Not Started"); c and x are what was written. */
static void start_mutation(struct ks_storage *s, const char *id, struct ks_mutation_commitment *c,
                           struct ks_mutation_index *x)
{
    struct init_writes iw;
    struct ks_error err;

    make_mut_commitment(c, id);
    make_mut_index(x, id, KS_PAGE_INDEX_NOT_STARTED);
    init_writes_build(s, id, &iw);
    cr_assert_eq(init_write(s, &iw, c, x, &err), KS_OK, "%s", err.message);
    init_writes_free(&iw);
}

static void assert_conflict(ks_status st, const struct ks_error *err, const char *what)
{
    cr_assert_eq(st, KS_E_MUTATION_CONFLICT, "%s: status %d (%s)", what, st, err->message);
    cr_assert_eq(err->code, KS_E_MUTATION_CONFLICT);
    cr_assert_eq(ks_status_http_code(st), 409);
    cr_assert_str_eq(ks_status_exception(st), "MutationConflictException");
}

static void assert_commitment_eq(const struct ks_mutation_commitment *a,
                                 const struct ks_mutation_commitment *b)
{
    struct ks_item ia, ib;
    struct ks_error err;

    cr_assert_eq(ks_mutation_commitment_to_item(a, &ia, &err), KS_OK);
    cr_assert_eq(ks_mutation_commitment_to_item(b, &ib, &err), KS_OK);
    assert_items_equal(&ia, &ib);
    ks_item_free(&ia);
    ks_item_free(&ib);
}

static void assert_index_eq(const struct ks_mutation_index *a, const struct ks_mutation_index *b)
{
    struct ks_item ia, ib;
    struct ks_error err;

    cr_assert_eq(ks_mutation_index_to_item(a, &ia, &err), KS_OK);
    cr_assert_eq(ks_mutation_index_to_item(b, &ib, &err), KS_OK);
    assert_items_equal(&ia, &ib);
    ks_item_free(&ia);
    ks_item_free(&ib);
}

/* Each lost condition of WriteInitializeMutation: 409, and nothing written. */
static void init_conflicts(struct ks_storage *s, const char *id, struct init_writes *iw,
                           const struct ks_mutation_commitment *c,
                           const struct ks_mutation_index *x)
{
    struct ks_storage_write w;
    struct ks_item stale, existing;
    struct ks_version_page page;
    struct ks_error err;
    struct snap before;

    snap_take(s, id, &before);
    stale_copy(&iw->read.active, &stale);
    w = iw->w_active;
    iw->w_active.old = &stale;
    assert_conflict(init_write(s, iw, c, x, &err), &err, "stale ACTIVE");
    cr_assert(strstr(err.message, KS_TYPE_ACTIVE), "%s", err.message);
    iw->w_active = w;
    assert_unchanged(s, id, &before);

    w = iw->w_beacon;
    iw->w_beacon.old = &stale; /* an old of another key: refused before anything runs */
    cr_assert_eq(init_write(s, iw, c, x, &err), KS_E_INVALID);
    ks_item_free(&stale);
    stale_copy(&iw->read.beacon, &stale);
    iw->w_beacon.old = &stale;
    assert_conflict(init_write(s, iw, c, x, &err), &err, "stale beacon");
    iw->w_beacon = w;
    ks_item_free(&stale);
    assert_unchanged(s, id, &before);

    /* rotate onto a version that exists; then doNotVersion's overwrite with a stale old */
    cr_assert_eq(s->ops->query_for_versions(s, id, NULL, 1, &page, &err), KS_OK);
    mutate_item(&page.items[0], &existing);
    w = iw->w_version;
    iw->w_version = (struct ks_storage_write){&existing, NULL};
    assert_conflict(init_write(s, iw, c, x, &err), &err, "version exists");
    stale_copy(&page.items[0], &stale);
    iw->w_version.old = &stale;
    assert_conflict(init_write(s, iw, c, x, &err), &err, "stale version");
    iw->w_version = w;
    assert_unchanged(s, id, &before);
    ks_item_free(&stale);
    ks_item_free(&existing);
    ks_version_page_free(&page);
    snap_free(&before);
}

static void case_mutation_initialize(struct fixture *f)
{
    struct ks_mutation_commitment c;
    struct ks_mutation_index x, bad_x;
    struct ks_mutation_init_items again;
    struct ks_mutation_state ms;
    struct init_writes iw;
    struct ks_error err;
    struct snap before;

    setup_key(f->s, "m-init", 2);
    make_mut_commitment(&c, "m-init");
    make_mut_index(&x, "m-init", KS_PAGE_INDEX_NOT_STARTED);
    init_writes_build(f->s, "m-init", &iw);
    cr_assert_eq(iw.read.mutation.has_commitment, 0);
    cr_assert_eq(iw.read.mutation.has_index, 0);
    assert_active_is(f->s, &iw.read.active);
    init_conflicts(f->s, "m-init", &iw, &c, &x);

    /* Arguments that disagree are refused before anything is written. */
    make_mut_index(&bad_x, "m-init", KS_PAGE_INDEX_NOT_STARTED);
    free(bad_x.uuid);
    bad_x.uuid = strdup("another");
    cr_assert_eq(init_write(f->s, &iw, &c, &bad_x, &err), KS_E_INVALID);
    ks_mutation_index_free(&bad_x);
    iw.w_active.old = NULL;
    cr_assert_eq(init_write(f->s, &iw, &c, &x, &err), KS_E_INVALID);
    iw.w_active.old = &iw.read.active;

    cr_assert_eq(init_write(f->s, &iw, &c, &x, &err), KS_OK, "%s", err.message);
    assert_active_is(f->s, &iw.active);
    cr_assert_eq(f->s->ops->get_mutation(f->s, "m-init", &ms, &err), KS_OK);
    cr_assert(ms.has_commitment && ms.has_index);
    assert_commitment_eq(&ms.commitment, &c);
    assert_index_eq(&ms.index, &x);
    ks_mutation_state_free(&ms);
    cr_assert_eq(f->s->ops->get_items_for_initialize_mutation(f->s, "m-init", &again, &err), KS_OK);
    cr_assert(again.mutation.has_commitment && again.mutation.has_index);
    assert_items_equal(&again.beacon, &iw.beacon);
    init_writes_free(&iw);

    /* A second InitializeMutation (fresh reads, so only the commitment's condition fails). */
    snap_take(f->s, "m-init", &before);
    init_writes_build(f->s, "m-init", &iw);
    assert_conflict(init_write(f->s, &iw, &c, &x, &err), &err, "mutation in flight");
    cr_assert(strstr(err.message, KS_TYPE_MUTATION_COMMITMENT), "%s", err.message);
    assert_unchanged(f->s, "m-init", &before);
    ks_mutation_init_items_free(&again);
    cr_assert_eq(f->s->ops->get_items_for_initialize_mutation(f->s, "nope", &again, &err),
                 KS_E_NOT_FOUND);
    snap_free(&before);
    init_writes_free(&iw);
    ks_mutation_init_items_free(&again);
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
}

/* Reads every page of id at page_size; checks order and the end token; returns the count. */
static size_t read_all_pages(struct ks_storage *s, const char *id, size_t page_size, size_t *pages)
{
    struct ks_version_page page;
    struct ks_error err;
    char last[128] = "", *start = NULL;
    size_t total = 0, i;

    *pages = 0;
    do {
        cr_assert_eq(s->ops->query_for_versions(s, id, start, page_size, &page, &err), KS_OK, "%s",
                     err.message);
        cr_assert_leq(page.count, page_size);
        if (page.next) {
            cr_assert_eq(page.count, page_size, "a short page must be the last");
            cr_assert_str_eq(page.next, ks_item_get_s(&page.items[page.count - 1], KS_ATTR_TYPE));
        }
        for (i = 0; i < page.count; i++) {
            const char *type = ks_item_get_s(&page.items[i], KS_ATTR_TYPE);
            cr_assert_str_eq(ks_item_get_s(&page.items[i], KS_ATTR_BRANCH_KEY_ID), id);
            cr_assert_eq(strncmp(type, KS_TYPE_VERSION_PREFIX, strlen(KS_TYPE_VERSION_PREFIX)), 0);
            cr_assert_gt(strcmp(type, last), 0, "not ascending: %s after %s", type, last);
            snprintf(last, sizeof last, "%s", type);
        }
        total += page.count;
        (*pages)++;
        free(start);
        start = page.next ? strdup(page.next) : NULL;
        ks_version_page_free(&page);
    } while (start);
    return total;
}

static void case_mutation_query_pages(struct fixture *f)
{
    struct ks_mutation_commitment c;
    struct ks_mutation_index x;
    struct ks_version_page page;
    struct ks_error err;
    size_t pages;

    setup_key(f->s, "q", 7);
    setup_key(f->s, "q2", 2);
    start_mutation(f->s, "q", &c, &x); /* 8 versions, plus a commitment and an index */
    cr_assert_eq(read_all_pages(f->s, "q", 3, &pages), 8);
    cr_assert_eq(pages, 3);
    cr_assert_eq(read_all_pages(f->s, "q", 8, &pages), 8);
    cr_assert_eq(pages, 1, "a full last page says no more follow");
    cr_assert_eq(read_all_pages(f->s, "q", 4, &pages), 8);
    cr_assert_eq(pages, 2);
    cr_assert_eq(read_all_pages(f->s, "q", 1, &pages), 8);
    cr_assert_eq(pages, 8);
    cr_assert_eq(read_all_pages(f->s, "q", KS_STORAGE_MAX_PAGE, &pages), 8);
    cr_assert_eq(read_all_pages(f->s, "q2", 3, &pages), 2);
    cr_assert_eq(read_all_pages(f->s, "none", 3, &pages), 0);

    /* A token past the last version: an empty last page. */
    cr_assert_eq(f->s->ops->query_for_versions(f->s, "q", "branch:version:~", 3, &page, &err),
                 KS_OK);
    cr_assert_eq(page.count, 0);
    cr_assert_null(page.next);
    ks_version_page_free(&page);

    cr_assert_eq(f->s->ops->query_for_versions(f->s, "q", NULL, 0, &page, &err), KS_E_INVALID);
    cr_assert_eq(
        f->s->ops->query_for_versions(f->s, "q", NULL, KS_STORAGE_MAX_PAGE + 1, &page, &err),
        KS_E_INVALID);
    cr_assert_eq(f->s->ops->query_for_versions(f->s, "q", "Not Started", 3, &page, &err),
                 KS_E_INVALID);
    cr_assert_eq(f->s->ops->query_for_versions(f->s, "q", "branch:version:", 3, &page, &err),
                 KS_E_INVALID);
    cr_assert_eq(page.count, 0);
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
}

/* One ApplyMutation page's writes: the items of page mutated (terminal ones skipped). */
struct page_writes {
    struct ks_item items[KS_STORAGE_MAX_PAGE];
    struct ks_storage_write w[KS_STORAGE_MAX_PAGE];
    size_t n;
};

static void page_writes_build(const struct ks_version_page *page, struct page_writes *pw)
{
    size_t i;

    pw->n = 0;
    for (i = 0; i < page->count; i++) {
        if (is_terminal(&page->items[i]))
            continue;
        mutate_item(&page->items[i], &pw->items[pw->n]);
        pw->w[pw->n] = (struct ks_storage_write){&pw->items[pw->n], &page->items[i]};
        pw->n++;
    }
}

static void page_writes_free(struct page_writes *pw)
{
    size_t i;

    for (i = 0; i < pw->n; i++)
        ks_item_free(&pw->items[i]);
    pw->n = 0;
}

/* Each lost condition of WriteMutatedVersions: 409, nothing written. */
static void apply_conflicts(struct ks_storage *s, const char *id, struct page_writes *pw,
                            const struct ks_mutation_commitment *c,
                            const struct ks_mutation_index *x, const struct ks_mutation_index *nx)
{
    struct ks_mutation_commitment other;
    struct ks_mutation_index old_stale;
    const struct ks_item *keep;
    struct ks_item stale;
    struct ks_error err;
    struct snap before;

    snap_take(s, id, &before);
    make_mut_index(&old_stale, id, "branch:version:zzz");
    assert_conflict(s->ops->write_mutated_versions(s, pw->w, pw->n, c, nx, &old_stale, 0, &err),
                    &err, "index moved");
    cr_assert(strstr(err.message, KS_TYPE_MUTATION_INDEX), "%s", err.message);
    assert_conflict(s->ops->write_mutated_versions(s, pw->w, pw->n, c, NULL, &old_stale, 1, &err),
                    &err, "index moved, last page");
    ks_mutation_index_free(&old_stale);

    make_mut_commitment(&other, id);
    ks_bytes_free(&other.terminal);
    set_text(&other.terminal, "{\"aws-crypto-ec\":{},\"kms-arn\":\"x\"}");
    assert_conflict(s->ops->write_mutated_versions(s, pw->w, pw->n, &other, nx, x, 0, &err), &err,
                    "commitment differs");
    cr_assert(strstr(err.message, KS_TYPE_MUTATION_COMMITMENT), "%s", err.message);
    ks_mutation_commitment_free(&other);

    /* A stale item in the middle of the batch: the items before it are not written either. */
    keep = pw->w[pw->n / 2].old;
    stale_copy(keep, &stale);
    pw->w[pw->n / 2].old = &stale;
    assert_conflict(s->ops->write_mutated_versions(s, pw->w, pw->n, c, nx, x, 0, &err), &err,
                    "stale version");
    cr_assert(strstr(err.message, ks_item_get_s(keep, KS_ATTR_TYPE)), "%s", err.message);
    pw->w[pw->n / 2].old = keep;
    ks_item_free(&stale);
    assert_unchanged(s, id, &before);

    cr_assert_eq(
        s->ops->write_mutated_versions(s, pw->w, KS_STORAGE_MAX_PAGE + 1, c, nx, x, 0, &err),
        KS_E_INVALID);
    keep = pw->w[0].old;
    pw->w[0].old = NULL; /* an overwrite without the item as read */
    cr_assert_eq(s->ops->write_mutated_versions(s, pw->w, pw->n, c, nx, x, 0, &err), KS_E_INVALID);
    pw->w[0].old = pw->w[1].old;
    cr_assert_eq(s->ops->write_mutated_versions(s, pw->w, pw->n, c, nx, x, 0, &err), KS_E_INVALID);
    pw->w[0].old = keep;
    assert_unchanged(s, id, &before);
    snap_free(&before);
}

/* ApplyMutation's loop over storage: pages of page_size until the mutation ends. */
static size_t apply_all(struct ks_storage *s, const char *id,
                        const struct ks_mutation_commitment *c, struct ks_mutation_index *x,
                        size_t page_size, int test_conflicts)
{
    size_t pages = 0;
    int end = 0;

    while (!end) {
        struct ks_version_page page;
        struct ks_mutation_index nx;
        struct page_writes pw;
        struct ks_error err;
        const char *start = (const char *)x->page_index.data;
        char tok[128];

        snprintf(tok, sizeof tok, "%.*s", (int)x->page_index.len, start);
        cr_assert_eq(s->ops->query_for_versions(s, id, strcmp(tok, "Not Started") ? tok : NULL,
                                                page_size, &page, &err),
                     KS_OK, "%s", err.message);
        page_writes_build(&page, &pw);
        end = page.next == NULL;
        make_mut_index(&nx, id, end ? KS_PAGE_INDEX_DONE : page.next);
        if (test_conflicts && pages == 0 && pw.n >= 2)
            apply_conflicts(s, id, &pw, c, x, &nx);
        cr_assert_eq(
            s->ops->write_mutated_versions(s, pw.w, pw.n, c, end ? NULL : &nx, x, end, &err), KS_OK,
            "%s", err.message);
        ks_mutation_index_free(x);
        *x = nx;
        page_writes_free(&pw);
        ks_version_page_free(&page);
        pages++;
    }
    return pages;
}

static void assert_all_terminal(struct ks_storage *s, const char *id, size_t versions)
{
    struct snap now;
    size_t i;

    snap_take(s, id, &now);
    cr_assert_eq(now.n, versions + 2, "ACTIVE, beacon and %zu versions, no mutation items",
                 versions);
    for (i = 0; i < now.n; i++)
        cr_assert(is_terminal(&now.items[i]), "%s not terminal",
                  ks_item_get_s(&now.items[i], KS_ATTR_TYPE));
    snap_free(&now);
}

static void case_mutation_apply_pages(struct fixture *f)
{
    struct ks_mutation_commitment c;
    struct ks_mutation_index x;
    struct ks_mutation_state ms;
    struct ks_error err;

    setup_key(f->s, "apply", 9); /* + 1 from the rotation: 10 versions, pages 4, 4, 2 */
    start_mutation(f->s, "apply", &c, &x);
    cr_assert_eq(apply_all(f->s, "apply", &c, &x, 4, 1), 3);
    cr_assert_eq(f->s->ops->get_mutation(f->s, "apply", &ms, &err), KS_OK);
    cr_assert_eq(ms.has_commitment, 0, "the last page deletes the commitment");
    cr_assert_eq(ms.has_index, 0, "the last page deletes the index");
    ks_mutation_state_free(&ms);
    assert_all_terminal(f->s, "apply", 10);

    /* The finished mutation cannot be written again: the commitment is gone. */
    assert_conflict(f->s->ops->write_mutated_versions(f->s, NULL, 0, &c, NULL, &x, 1, &err), &err,
                    "after the end");
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
}

static void case_mutation_index_and_delete(struct fixture *f)
{
    struct ks_mutation_commitment c, other;
    struct ks_mutation_index x;
    struct ks_mutation_state ms;
    struct ks_error err;
    struct snap before;

    setup_key(f->s, "idx", 2);
    start_mutation(f->s, "idx", &c, &x);
    snap_take(f->s, "idx", &before);
    assert_conflict(f->s->ops->write_mutation_index(f->s, &c, &x, &err), &err, "index exists");
    cr_assert(strstr(err.message, KS_TYPE_MUTATION_INDEX), "%s", err.message);
    make_mut_commitment(&other, "idx");
    ks_bytes_free(&other.enc);
    set_text(&other.enc, "another signature");
    assert_conflict(f->s->ops->write_mutation_index(f->s, &other, &x, &err), &err,
                    "commitment differs");
    assert_conflict(f->s->ops->delete_mutation(f->s, &other, &err), &err, "delete, differs");
    free(other.uuid);
    other.uuid = strdup("another");
    cr_assert_eq(f->s->ops->write_mutation_index(f->s, &other, &x, &err), KS_E_INVALID);
    assert_unchanged(f->s, "idx", &before);

    /* DeleteMutationIndex (version 6) removes only an index whose commitment is gone. */
    assert_conflict(f->s->ops->delete_mutation_index(f->s, &x, &err), &err,
                    "index delete while the commitment exists");
    assert_unchanged(f->s, "idx", &before);

    cr_assert_eq(f->s->ops->delete_mutation(f->s, &c, &err), KS_OK, "%s", err.message);
    cr_assert_eq(f->s->ops->get_mutation(f->s, "idx", &ms, &err), KS_OK);
    cr_assert_eq(ms.has_commitment + ms.has_index, 0);
    assert_conflict(f->s->ops->delete_mutation_index(f->s, &x, &err), &err,
                    "index delete with no index");
    assert_conflict(f->s->ops->delete_mutation(f->s, &c, &err), &err, "delete twice");
    assert_conflict(f->s->ops->write_mutation_index(f->s, &c, &x, &err), &err, "no commitment");
    cr_assert_eq(f->s->ops->get_mutation(f->s, "idx", &ms, &err), KS_OK);
    cr_assert_eq(ms.has_commitment + ms.has_index, 0, "nothing written");
    snap_free(&before);
    ks_mutation_commitment_free(&other);
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
}

/* The writes of an atomic mutation of every version of id (rotating). */
struct atomic_writes {
    struct init_writes iw;
    struct ks_version_page page;
    struct page_writes pw;
};

static void atomic_build(struct ks_storage *s, const char *id, struct atomic_writes *aw)
{
    struct ks_error err;

    init_writes_build(s, id, &aw->iw);
    cr_assert_eq(s->ops->query_for_versions(s, id, NULL, KS_STORAGE_MAX_PAGE, &aw->page, &err),
                 KS_OK);
    page_writes_build(&aw->page, &aw->pw);
}

static void atomic_free(struct atomic_writes *aw)
{
    init_writes_free(&aw->iw);
    page_writes_free(&aw->pw);
    ks_version_page_free(&aw->page);
}

static ks_status atomic_write(struct ks_storage *s, struct atomic_writes *aw, size_t n,
                              struct ks_error *err)
{
    ks_error_clear(err);
    return s->ops->write_atomic_mutation(s, &aw->iw.w_active, &aw->iw.w_version, &aw->iw.w_beacon,
                                         aw->pw.w, n, err);
}

static void case_mutation_atomic(struct fixture *f)
{
    struct ks_mutation_commitment c;
    struct ks_mutation_index x;
    struct atomic_writes aw;
    const struct ks_item *keep;
    struct ks_item stale;
    struct ks_error err;
    struct snap before;

    setup_key(f->s, "atom", 5);
    atomic_build(f->s, "atom", &aw);
    snap_take(f->s, "atom", &before);
    keep = aw.pw.w[2].old;
    stale_copy(keep, &stale);
    aw.pw.w[2].old = &stale;
    assert_conflict(atomic_write(f->s, &aw, aw.pw.n, &err), &err, "stale version");
    aw.pw.w[2].old = keep;
    ks_item_free(&stale);
    cr_assert_eq(atomic_write(f->s, &aw, KS_STORAGE_MAX_ATOMIC_VERSIONS + 1, &err), KS_E_INVALID);
    cr_assert(strstr(err.message, "95"), "%s", err.message);
    /* doNotVersion's ACTIVE version may not also be one of the items. */
    aw.iw.w_version = aw.pw.w[0];
    cr_assert_eq(atomic_write(f->s, &aw, aw.pw.n, &err), KS_E_INVALID);
    aw.iw.w_version = (struct ks_storage_write){&aw.iw.version, NULL};
    assert_unchanged(f->s, "atom", &before);
    cr_assert_eq(atomic_write(f->s, &aw, aw.pw.n, &err), KS_OK, "%s", err.message);
    assert_all_terminal(f->s, "atom", 6);
    atomic_free(&aw);
    snap_free(&before);

    /* With a mutation in flight, nothing is written. */
    setup_key(f->s, "atom2", 3);
    start_mutation(f->s, "atom2", &c, &x);
    atomic_build(f->s, "atom2", &aw);
    snap_take(f->s, "atom2", &before);
    assert_conflict(atomic_write(f->s, &aw, aw.pw.n, &err), &err, "mutation in flight");
    cr_assert(strstr(err.message, KS_TYPE_MUTATION_COMMITMENT), "%s", err.message);
    assert_unchanged(f->s, "atom2", &before);
    atomic_free(&aw);
    snap_free(&before);
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
}

BOTH_BACKENDS(mutation_initialize)
BOTH_BACKENDS(mutation_query_pages)
BOTH_BACKENDS(mutation_apply_pages)
BOTH_BACKENDS(mutation_index_and_delete)
BOTH_BACKENDS(mutation_atomic)

/* --- mutations, SQLite only: states no sequence of operations produces -------------------- */

Test(storage_sqlite, mutation_index_recreated_and_delete_without_index)
{
    struct ks_mutation_commitment c;
    struct ks_mutation_index x;
    struct ks_mutation_state ms;
    struct fixture f;
    struct ks_error err;
    sqlite3 *db;

    fx_open(&f, SQLITE);
    setup_key(f.s, "ri", 2);
    start_mutation(f.s, "ri", &c, &x);
    db = raw_open(f.path);
    raw_exec(db, "DELETE FROM items WHERE type = 'branch:MUTATION_INDEX'");
    /* ResumedWithoutIndex: WriteMutationIndex re-creates it under the commitment check. */
    cr_assert_eq(f.s->ops->write_mutation_index(f.s, &c, &x, &err), KS_OK, "%s", err.message);
    cr_assert_eq(f.s->ops->get_mutation(f.s, "ri", &ms, &err), KS_OK);
    cr_assert(ms.has_commitment && ms.has_index);
    assert_index_eq(&ms.index, &x);
    ks_mutation_state_free(&ms);
    raw_exec(db, "DELETE FROM items WHERE type = 'branch:MUTATION_INDEX'");
    cr_assert_eq(f.s->ops->delete_mutation(f.s, &c, &err), KS_OK, "%s", err.message);
    cr_assert_eq(f.s->ops->get_mutation(f.s, "ri", &ms, &err), KS_OK);
    cr_assert_eq(ms.has_commitment + ms.has_index, 0);
    sqlite3_close(db);
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
    fx_close(&f);
}

Test(storage_sqlite, mutation_corrupt_commitment)
{
    struct ks_mutation_commitment c;
    struct ks_mutation_index x;
    struct ks_mutation_state ms;
    struct ks_mutation_init_items items;
    struct fixture f;
    struct ks_error err;
    sqlite3 *db;

    fx_open(&f, SQLITE);
    setup_key(f.s, "cc", 2);
    start_mutation(f.s, "cc", &c, &x);
    db = raw_open(f.path);
    /* An extra attribute: the MPL's reader refuses a commitment that is not exactly 9. */
    raw_exec(db, "UPDATE items SET item = json_set(item, '$.extra', json('{\"S\":\"x\"}'))"
                 " WHERE type = 'branch:MUTATION_COMMITMENT'");
    cr_assert_eq(f.s->ops->get_mutation(f.s, "cc", &ms, &err), KS_E_CORRUPT);
    cr_assert(strstr(err.message, "attributes"), "%s", err.message);
    cr_assert_eq(ms.has_commitment + ms.has_index, 0);
    cr_assert_eq(f.s->ops->get_items_for_initialize_mutation(f.s, "cc", &items, &err),
                 KS_E_CORRUPT);
    cr_assert_eq(items.active.count, 0);
    sqlite3_close(db);
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
    fx_close(&f);
}

/* --- two clients applying the same page (issue 10 item 7) ---------------------------------- */

#define APPLY_RACERS 6

struct apply_racer {
    struct ks_storage *s;
    pthread_barrier_t *go;
    const struct page_writes *pw;
    const struct ks_mutation_commitment *c;
    const struct ks_mutation_index *x, *nx;
    ks_status st;
};

static void *apply_racer_main(void *arg)
{
    struct apply_racer *r = arg;
    struct ks_error err;

    pthread_barrier_wait(r->go);
    r->st = r->s->ops->write_mutated_versions(r->s, r->pw->w, r->pw->n, r->c, r->nx, r->x, 0, &err);
    return NULL;
}

static void case_mutation_page_race(struct fixture *f)
{
    struct apply_racer racers[APPLY_RACERS];
    pthread_t threads[APPLY_RACERS];
    struct ks_mutation_commitment c;
    struct ks_mutation_index x, nx;
    struct ks_version_page page;
    struct ks_mutation_state ms;
    pthread_barrier_t go;
    struct page_writes pw;
    struct ks_error err;
    int wins = 0, i;

    setup_key(f->s, "race", 6);
    start_mutation(f->s, "race", &c, &x);
    cr_assert_eq(f->s->ops->query_for_versions(f->s, "race", NULL, 4, &page, &err), KS_OK);
    page_writes_build(&page, &pw);
    make_mut_index(&nx, "race", page.next);
    pthread_barrier_init(&go, NULL, APPLY_RACERS);
    for (i = 0; i < APPLY_RACERS; i++) {
        racers[i] = (struct apply_racer){f->s, &go, &pw, &c, &x, &nx, KS_OK};
        cr_assert_eq(pthread_create(&threads[i], NULL, apply_racer_main, &racers[i]), 0);
    }
    for (i = 0; i < APPLY_RACERS; i++) {
        pthread_join(threads[i], NULL);
        if (racers[i].st == KS_OK)
            wins++;
        else
            cr_assert_eq(racers[i].st, KS_E_MUTATION_CONFLICT, "racer %d: %d", i, racers[i].st);
    }
    cr_assert_eq(wins, 1, "exactly one page write wins");
    cr_assert_eq(f->s->ops->get_mutation(f->s, "race", &ms, &err), KS_OK);
    assert_index_eq(&ms.index, &nx);
    ks_mutation_state_free(&ms);
    pthread_barrier_destroy(&go);
    page_writes_free(&pw);
    ks_version_page_free(&page);
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
    ks_mutation_index_free(&nx);
}

BOTH_BACKENDS(mutation_page_race)
