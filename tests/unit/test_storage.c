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
    cr_assert_eq(raw_int(db, "PRAGMA user_version"), 1);
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
