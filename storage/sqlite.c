/*
 * sqlite.c - the embedded storage backend: one SQLite database file holding the items of one
 * key store, each stored attribute for attribute as DynamoDB AttributeValue map JSON
 * (ks_item_to_json), so that this backend and dynamodb.c hold the very same items
 * (docs/reference/branch-key-store.md section 2; docs/reference/aws-apis.md section 3).
 *
 * Connections. A SQLite connection carries its own transaction state, so two threads must never
 * interleave statements on one connection. The backend keeps a small pool of connections (at
 * most POOL_MAX, opened lazily); a call takes one for its whole duration, so each BEGIN..COMMIT
 * runs on a connection no other thread touches. WAL mode lets readers run beside the single
 * writer. Writers inside this process queue on write_lock before they take a connection, so they
 * wait in order instead of sleeping in SQLite's busy handler; writers in OTHER processes are kept
 * out by SQLite's own file lock, taken up front by BEGIN IMMEDIATE (waiting up to
 * BUSY_TIMEOUT_MS, then KS_E_UNAVAILABLE). Every condition of a write (attribute_not_exists,
 * enc = :encOld) is checked inside that transaction, so two processes on one file cannot both
 * win a race (seed "Mitigate Update Race", docs/reference/branch-key-store.md section 9).
 */
#include "storage/storage.h"
#include "storage/tx.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sqlite3.h>

#define POOL_MAX 8
#define BUSY_TIMEOUT_MS 5000
/* 1: the items table; 2: + items_by_type, the index ListActive reads (issue 14). */
#define SCHEMA_VERSION 2
/* An item is a flat map of scalar AttributeValues: depth 2. Anything deeper is not ours. */
#define JSON_MAX_DEPTH 8

static const char schema_sql[] = "CREATE TABLE IF NOT EXISTS items("
                                 " branch_key_id TEXT NOT NULL,"
                                 " type TEXT NOT NULL,"
                                 " item TEXT NOT NULL /* DynamoDB AttributeValue map JSON */,"
                                 " PRIMARY KEY(branch_key_id, type)"
                                 ") WITHOUT ROWID";

/* Schema version 2: listing keys reads only the ACTIVE rows, in branch key id order. */
static const char index_sql[] =
    "CREATE INDEX IF NOT EXISTS items_by_type ON items(type, branch_key_id)";

/* One connection and its prepared statements; used by one thread at a time. */
struct conn {
    sqlite3 *db;
    sqlite3_stmt *get;    /* SELECT item ... WHERE key = (?1, ?2) */
    sqlite3_stmt *exists; /* SELECT 1 ... WHERE key = (?1, ?2) */
    sqlite3_stmt *insert; /* INSERT (?1, ?2, ?3) */
    sqlite3_stmt *update; /* UPDATE item = ?3 WHERE key = (?1, ?2) */
    sqlite3_stmt *del;    /* DELETE ... WHERE key = (?1, ?2) */
    sqlite3_stmt *range;  /* versions of ?1 with ?2 < type < ?3, ascending, LIMIT ?4 */
    sqlite3_stmt *list;   /* ACTIVE rows with branch_key_id > ?1, ascending, LIMIT ?2 */
    struct conn *next;    /* in the idle list */
};

struct sqlite_storage {
    struct ks_storage base; /* first: struct ks_storage * <-> struct sqlite_storage * */
    char *path;
    pthread_mutex_t pool_lock; /* guards idle and open_count */
    pthread_cond_t pool_cond;  /* signalled when a connection is returned or a slot frees */
    struct conn *idle;
    size_t open_count;
    pthread_mutex_t write_lock; /* one writer of this process at a time (see top) */
};

static struct sqlite_storage *from_base(struct ks_storage *s)
{
    return (struct sqlite_storage *)s;
}

/*
 * Maps a SQLite result code: a lock still held by someone else after the busy timeout means the
 * store is unavailable for now (503); anything else is a storage failure (502) with SQLite's own
 * message.
 */
static ks_status db_error(sqlite3 *db, int rc, const char *what, struct ks_error *err)
{
    int primary = rc & 0xff;

    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
        return ks_error_set(err, KS_E_UNAVAILABLE, "%s: database is busy (%s)", what,
                            db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return ks_error_set(err, KS_E_STORAGE, "%s: %s", what,
                        db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static void conn_close(struct conn *c)
{
    if (!c)
        return;
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->exists);
    sqlite3_finalize(c->insert);
    sqlite3_finalize(c->update);
    sqlite3_finalize(c->del);
    sqlite3_finalize(c->range);
    sqlite3_finalize(c->list);
    sqlite3_close(c->db);
    free(c);
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **stmt)
{
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, NULL);
}

/* Runs one statement that returns at most one row whose first column is an integer. */
static int query_int(sqlite3 *db, const char *sql, int *value)
{
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);

    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *value = sqlite3_column_int(stmt, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        *value = 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(stmt);
    return rc;
}

/*
 * One migration step inside the caller's transaction: from `version` to the next one. 0 -> 2
 * creates everything at once; 1 -> 2 adds the index (a database made by the first release).
 */
static int migrate_step(sqlite3 *db, int *version)
{
    char sql[64];
    int rc = SQLITE_OK;

    if (*version == 0)
        rc = sqlite3_exec(db, schema_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, index_sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return rc;
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        *version = SCHEMA_VERSION;
    return rc;
}

/*
 * Makes sure the items table exists at SCHEMA_VERSION (PRAGMA user_version), migrating an older
 * database at start. Idempotent and safe against another process doing the same: the migration
 * runs in a BEGIN IMMEDIATE transaction that re-reads the version. A NEWER version is refused:
 * this release does not know what it changed.
 */
static ks_status ensure_schema(sqlite3 *db, struct ks_error *err)
{
    int version, rc;
    sqlite3_stmt *probe;

    rc = query_int(db, "PRAGMA user_version", &version);
    if (rc != SQLITE_OK)
        return db_error(db, rc, "reading the schema version", err);
    if (version >= 0 && version < SCHEMA_VERSION) {
        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = query_int(db, "PRAGMA user_version", &version);
        if (rc == SQLITE_OK && version >= 0 && version < SCHEMA_VERSION)
            rc = migrate_step(db, &version);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            ks_status st = db_error(db, rc, "migrating the schema", err);
            if (!sqlite3_get_autocommit(db))
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return st;
        }
    }
    if (version != SCHEMA_VERSION)
        return ks_error_set(err, KS_E_STORAGE,
                            "database schema version %d is not the supported version %d", version,
                            SCHEMA_VERSION);
    /* Like CreateKeyStore's check of an existing table (docs/reference/branch-key-store.md section
     * 1): the table must have our columns and key. */
    rc = sqlite3_prepare_v2(db, "SELECT branch_key_id, type, item FROM items LIMIT 0", -1, &probe,
                            NULL);
    sqlite3_finalize(probe);
    if (rc != SQLITE_OK)
        return ks_error_set(err, KS_E_STORAGE,
                            "Configured database does not conform to expected Key Store "
                            "construction: %s",
                            sqlite3_errmsg(db));
    return KS_OK;
}

/* Opens a connection to an existing file and prepares its statements. */
static ks_status conn_open(const char *path, struct conn **out, struct ks_error *err)
{
    struct conn *c = calloc(1, sizeof *c);
    char mode[16] = "";
    int rc;

    *out = NULL;
    if (!c)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    /* No SQLITE_OPEN_CREATE: the file was created 0600 by us. NOMUTEX: the pool guarantees
     * that one connection is used by one thread at a time. */
    rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        ks_status st = db_error(c->db, rc, "opening the database", err);
        conn_close(c);
        return st;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);

    /* WAL is persistent in the file; only switch when needed, so that opening a store that is
     * busy in another process does not need the exclusive lock the switch takes. */
    sqlite3_stmt *stmt;
    rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode", -1, &stmt, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const unsigned char *m = sqlite3_column_text(stmt, 0);
        snprintf(mode, sizeof mode, "%s", m ? (const char *)m : "");
        rc = SQLITE_OK;
    }
    sqlite3_finalize(stmt);
    if (rc == SQLITE_OK && strcmp(mode, "wal") != 0) {
        rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            const unsigned char *m = sqlite3_column_text(stmt, 0);
            snprintf(mode, sizeof mode, "%s", m ? (const char *)m : "");
            rc = SQLITE_OK;
        }
        sqlite3_finalize(stmt);
        if (rc == SQLITE_OK && strcmp(mode, "wal") != 0) {
            conn_close(c);
            return ks_error_set(err, KS_E_STORAGE, "the database cannot use WAL (mode %s)", mode);
        }
    }
    /* A committed branch key must survive a power loss: keys lost after data was encrypted
     * under them would lose that data. NORMAL would only sync at checkpoints in WAL mode. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(c->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        ks_status st = db_error(c->db, rc, "configuring the database", err);
        conn_close(c);
        return st;
    }

    ks_status st = ensure_schema(c->db, err);
    if (st != KS_OK) {
        conn_close(c);
        return st;
    }
    rc = prepare(c->db, "SELECT item FROM items WHERE branch_key_id = ?1 AND type = ?2", &c->get);
    if (rc == SQLITE_OK)
        rc = prepare(c->db, "SELECT 1 FROM items WHERE branch_key_id = ?1 AND type = ?2",
                     &c->exists);
    if (rc == SQLITE_OK)
        rc = prepare(c->db, "INSERT INTO items(branch_key_id, type, item) VALUES(?1, ?2, ?3)",
                     &c->insert);
    if (rc == SQLITE_OK)
        rc = prepare(c->db, "UPDATE items SET item = ?3 WHERE branch_key_id = ?1 AND type = ?2",
                     &c->update);
    if (rc == SQLITE_OK)
        rc = prepare(c->db, "DELETE FROM items WHERE branch_key_id = ?1 AND type = ?2", &c->del);
    if (rc == SQLITE_OK)
        rc = prepare(c->db,
                     "SELECT item FROM items WHERE branch_key_id = ?1 AND type > ?2 AND type < ?3"
                     " ORDER BY type LIMIT ?4",
                     &c->range);
    if (rc == SQLITE_OK)
        rc = prepare(c->db,
                     "SELECT item FROM items INDEXED BY items_by_type WHERE type = '" KS_TYPE_ACTIVE
                     "' AND branch_key_id > ?1 ORDER BY branch_key_id LIMIT ?2",
                     &c->list);
    if (rc != SQLITE_OK) {
        st = db_error(c->db, rc, "preparing statements", err);
        conn_close(c);
        return st;
    }
    *out = c;
    return KS_OK;
}

/* Takes an idle connection, opens a new one while below POOL_MAX, or waits for one. */
static ks_status acquire(struct sqlite_storage *q, struct conn **out, struct ks_error *err)
{
    struct conn *c;
    ks_status st;

    pthread_mutex_lock(&q->pool_lock);
    while (!q->idle && q->open_count >= POOL_MAX)
        pthread_cond_wait(&q->pool_cond, &q->pool_lock);
    if (q->idle) {
        c = q->idle;
        q->idle = c->next;
        pthread_mutex_unlock(&q->pool_lock);
        c->next = NULL;
        *out = c;
        return KS_OK;
    }
    q->open_count++; /* reserve the slot, then open outside the lock */
    pthread_mutex_unlock(&q->pool_lock);

    st = conn_open(q->path, out, err);
    if (st != KS_OK) {
        pthread_mutex_lock(&q->pool_lock);
        q->open_count--;
        pthread_cond_signal(&q->pool_cond);
        pthread_mutex_unlock(&q->pool_lock);
    }
    return st;
}

static void release(struct sqlite_storage *q, struct conn *c)
{
    pthread_mutex_lock(&q->pool_lock);
    c->next = q->idle;
    q->idle = c;
    pthread_cond_signal(&q->pool_cond);
    pthread_mutex_unlock(&q->pool_lock);
}

static void stmt_done(sqlite3_stmt *stmt)
{
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

static int bind_key(sqlite3_stmt *stmt, const char *id, const char *type)
{
    int rc = sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);

    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(stmt, 2, type, -1, SQLITE_STATIC);
    return rc;
}

/* Parses a stored row. Damage of any kind is KS_E_CORRUPT, never a crash. */
static ks_status parse_item(const char *text, size_t len, struct ks_item *out, struct ks_error *err)
{
    struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    struct json_object *obj;
    struct ks_error inner;
    ks_status st;

    ks_item_init(out);
    if (!tok)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = len <= (size_t)INT32_MAX ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
    if (!obj || json_tokener_get_error(tok) != json_tokener_success ||
        json_tokener_get_parse_end(tok) != len) {
        json_object_put(obj);
        json_tokener_free(tok);
        return ks_error_set(err, KS_E_CORRUPT, "stored item is not valid: not a JSON object");
    }
    json_tokener_free(tok);
    ks_error_clear(&inner);
    st = ks_item_from_json(obj, out, &inner);
    json_object_put(obj);
    if (st == KS_E_CORRUPT)
        return ks_error_set(err, st, "stored item is not valid: %s", inner.message);
    if (st != KS_OK)
        return ks_error_set(err, st, "%s", inner.message);
    return KS_OK;
}

/* Reads the row (id, type) on c: KS_OK with *out, or KS_E_NOT_FOUND, or an error. */
static ks_status row_get(struct conn *c, const char *id, const char *type, struct ks_item *out,
                         struct ks_error *err)
{
    ks_status st;
    int rc;

    ks_item_init(out);
    rc = bind_key(c->get, id, type);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(c->get);
    if (rc == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(c->get, 0);
        size_t len = (size_t)sqlite3_column_bytes(c->get, 0);
        st = text ? parse_item(text, len, out, err)
                  : ks_error_set(err, KS_E_CORRUPT, "stored item is not valid: empty");
        if (st == KS_OK)
            st = ks_storage_check_read(out, id, type, err);
        if (st != KS_OK)
            ks_item_free(out);
    } else if (rc == SQLITE_DONE) {
        st = ks_error_set(err, KS_E_NOT_FOUND, KS_STORAGE_MSG_NOT_FOUND);
    } else {
        st = db_error(c->db, rc, "reading an item", err);
    }
    stmt_done(c->get);
    return st;
}

/* 1 when the row exists, 0 when not, -1 on error (err filled through *st). */
static int row_exists(struct conn *c, const char *id, const char *type, ks_status *st,
                      struct ks_error *err)
{
    int rc = bind_key(c->exists, id, type), found = -1;

    if (rc == SQLITE_OK)
        rc = sqlite3_step(c->exists);
    if (rc == SQLITE_ROW)
        found = 1;
    else if (rc == SQLITE_DONE)
        found = 0;
    else
        *st = db_error(c->db, rc, "reading an item", err);
    stmt_done(c->exists);
    return found;
}

/* Runs c->insert or c->update for item (its key attributes are checked S by the caller). */
static ks_status row_write(struct conn *c, sqlite3_stmt *stmt, const struct ks_item *item,
                           struct ks_error *err)
{
    struct json_object *obj;
    const char *text;
    size_t len;
    ks_status st = KS_OK;
    int rc;

    if (ks_item_to_json(item, &obj) != 0)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    text = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (!text) {
        json_object_put(obj);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    rc = bind_key(stmt, ks_item_get_s(item, KS_ATTR_BRANCH_KEY_ID),
                  ks_item_get_s(item, KS_ATTR_TYPE));
    if (rc == SQLITE_OK)
        rc = len <= (size_t)INT32_MAX ? sqlite3_bind_text(stmt, 3, text, (int)len, SQLITE_STATIC)
                                      : SQLITE_TOOBIG;
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
        if (stmt == c->update && sqlite3_changes(c->db) != 1)
            st = ks_error_set(err, KS_E_VERSION_RACE, KS_STORAGE_MSG_VERSION_RACE);
    } else if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        /* Not reached: existence is checked first in the same transaction. */
        st = ks_error_set(err, KS_E_ALREADY_EXISTS, "branch key item %s already exists",
                          ks_item_get_s(item, KS_ATTR_TYPE));
    } else {
        st = db_error(c->db, rc, "writing an item", err);
    }
    stmt_done(stmt);
    json_object_put(obj);
    return st;
}

static ks_status tx_begin(struct conn *c, struct ks_error *err)
{
    /* IMMEDIATE takes the write lock now, so the reads that check the conditions and the
     * writes that follow see one state, and a waiting writer never deadlocks on an upgrade. */
    int rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);

    return rc == SQLITE_OK ? KS_OK : db_error(c->db, rc, "starting a write", err);
}

static void tx_rollback(struct conn *c)
{
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Commits, or rolls back and fails: a failed write leaves the database unchanged. */
static ks_status tx_end(struct conn *c, ks_status st, struct ks_error *err)
{
    if (st == KS_OK) {
        int rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            st = db_error(c->db, rc, "committing a write", err);
    }
    if (st != KS_OK)
        tx_rollback(c);
    return st;
}

static ks_status sqlite_create_key_store(struct ks_storage *s, char **table_id,
                                         struct ks_error *err)
{
    struct sqlite_storage *q = from_base(s);
    struct conn *c;
    ks_status st;
    size_t n;

    *table_id = NULL;
    st = acquire(q, &c, err);
    if (st != KS_OK)
        return st;
    st = ensure_schema(c->db, err);
    release(q, c);
    if (st != KS_OK)
        return st;
    n = strlen("sqlite:") + strlen(q->path) + 1;
    *table_id = malloc(n);
    if (!*table_id)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    snprintf(*table_id, n, "sqlite:%s", q->path);
    return KS_OK;
}

static ks_status sqlite_info(struct ks_storage *s, struct ks_storage_info *out,
                             struct ks_error *err)
{
    struct sqlite_storage *q = from_base(s);

    (void)err;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", q->path);
    snprintf(out->kind, sizeof out->kind, "sqlite");
    return KS_OK;
}

static ks_status sqlite_write_new_branch_key(struct ks_storage *s, const struct ks_item *active,
                                             const struct ks_item *version,
                                             const struct ks_item *beacon, struct ks_error *err)
{
    struct sqlite_storage *q = from_base(s);
    const struct ks_item *items[3] = {version, active, beacon};
    struct conn *c;
    ks_status st;
    size_t i;

    st = ks_storage_check_new_branch_key(active, version, beacon, err);
    if (st != KS_OK)
        return st;
    pthread_mutex_lock(&q->write_lock);
    st = acquire(q, &c, err);
    if (st != KS_OK) {
        pthread_mutex_unlock(&q->write_lock);
        return st;
    }
    st = tx_begin(c, err);
    if (st == KS_OK) {
        /* attribute_not_exists(branch-key-id) on each of the three Puts
         * (docs/reference/branch-key-store.md section 4), checked before anything is written. */
        for (i = 0; i < 3 && st == KS_OK; i++) {
            const char *type = ks_item_get_s(items[i], KS_ATTR_TYPE);
            int found =
                row_exists(c, ks_item_get_s(items[i], KS_ATTR_BRANCH_KEY_ID), type, &st, err);
            if (found == 1)
                st = ks_error_set(err, KS_E_ALREADY_EXISTS, "branch key item %s already exists",
                                  type);
        }
        for (i = 0; i < 3 && st == KS_OK; i++)
            st = row_write(c, c->insert, items[i], err);
        st = tx_end(c, st, err);
    }
    release(q, c);
    pthread_mutex_unlock(&q->write_lock);
    return st;
}

static ks_status sqlite_write_new_version(struct ks_storage *s, const struct ks_item *version,
                                          const struct ks_item *active,
                                          const unsigned char *old_enc, size_t old_enc_len,
                                          struct ks_error *err)
{
    struct sqlite_storage *q = from_base(s);
    const char *id, *version_type;
    struct ks_item stored;
    struct conn *c;
    ks_status st;

    st = ks_storage_check_new_version(version, active, err);
    if (st != KS_OK)
        return st;
    id = ks_item_get_s(active, KS_ATTR_BRANCH_KEY_ID);
    version_type = ks_item_get_s(version, KS_ATTR_TYPE);

    pthread_mutex_lock(&q->write_lock);
    st = acquire(q, &c, err);
    if (st != KS_OK) {
        pthread_mutex_unlock(&q->write_lock);
        return st;
    }
    st = tx_begin(c, err);
    if (st == KS_OK) {
        /* The ACTIVE Put's condition "attribute_exists(branch-key-id) AND enc = :encOld"
         * (docs/reference/branch-key-store.md section 9), read inside the write transaction. */
        st = row_get(c, id, KS_TYPE_ACTIVE, &stored, err);
        if (st == KS_OK) {
            const struct ks_attr *enc = ks_item_get(&stored, KS_ATTR_ENC);
            if (!enc || enc->type != KS_ATTR_B || enc->len != old_enc_len ||
                (old_enc_len && memcmp(enc->value, old_enc, old_enc_len) != 0))
                st = ks_error_set(err, KS_E_VERSION_RACE, KS_STORAGE_MSG_VERSION_RACE);
            ks_item_free(&stored);
        } else if (st == KS_E_NOT_FOUND) {
            st = ks_error_set(err, KS_E_VERSION_RACE, KS_STORAGE_MSG_VERSION_RACE);
        }
        /* The version Put's attribute_not_exists (section 5 step 9). */
        if (st == KS_OK && row_exists(c, id, version_type, &st, err) == 1)
            st = ks_error_set(err, KS_E_ALREADY_EXISTS, "branch key version already exists");
        if (st == KS_OK)
            st = row_write(c, c->insert, version, err);
        if (st == KS_OK)
            st = row_write(c, c->update, active, err);
        st = tx_end(c, st, err);
    }
    release(q, c);
    pthread_mutex_unlock(&q->write_lock);
    return st;
}

static ks_status sqlite_get(struct ks_storage *s, const char *id, const char *type,
                            struct ks_item *out, struct ks_error *err)
{
    struct sqlite_storage *q = from_base(s);
    struct conn *c;
    ks_status st;

    ks_item_init(out);
    st = acquire(q, &c, err);
    if (st != KS_OK)
        return st;
    /* One statement in autocommit mode reads one consistent snapshot (strongly consistent,
     * as GetEncryptedActiveBranchKey asks). */
    st = row_get(c, id, type, out, err);
    release(q, c);
    return st;
}

static ks_status sqlite_get_active(struct ks_storage *s, const char *branch_key_id,
                                   struct ks_item *out, struct ks_error *err)
{
    return sqlite_get(s, branch_key_id, KS_TYPE_ACTIVE, out, err);
}

static ks_status sqlite_get_version(struct ks_storage *s, const char *branch_key_id,
                                    const char *version, struct ks_item *out, struct ks_error *err)
{
    return ks_storage_get_version_via(sqlite_get, s, branch_key_id, version, out, err);
}

static ks_status sqlite_get_beacon(struct ks_storage *s, const char *branch_key_id,
                                   struct ks_item *out, struct ks_error *err)
{
    return sqlite_get(s, branch_key_id, KS_TYPE_BEACON, out, err);
}

static ks_status sqlite_ping(struct ks_storage *s, struct ks_error *err)
{
    struct sqlite_storage *q = from_base(s);
    struct conn *c;
    ks_status st;
    int one = 0, rc;

    st = acquire(q, &c, err);
    if (st != KS_OK)
        return st;
    rc = query_int(c->db, "SELECT 1", &one);
    if (rc != SQLITE_OK)
        st = db_error(c->db, rc, "ping", err);
    else if (one != 1)
        st = ks_error_set(err, KS_E_STORAGE, "ping: unexpected answer");
    release(q, c);
    return st;
}

static ks_status sqlite_has_items(struct ks_storage *s, int *out, struct ks_error *err)
{
    struct sqlite_storage *q = from_base(s);
    struct conn *c;
    ks_status st;
    int rc;

    *out = 0;
    st = acquire(q, &c, err);
    if (st != KS_OK)
        return st;
    /* The table exists once a connection is open (ensure_schema); LIMIT 1 stops at the first
     * row. One statement in autocommit mode reads one consistent snapshot. */
    rc = query_int(c->db, "SELECT 1 FROM items LIMIT 1", out);
    if (rc != SQLITE_OK)
        st = db_error(c->db, rc, "looking for items", err);
    release(q, c);
    return st;
}

/* --- Mutations (docs/reference/mutations.md section 8) -------------------------------------- */

/* Reads (id, type) for a condition: *found 0 when absent. Damage is KS_E_CORRUPT. */
static ks_status row_read_optional(struct conn *c, const char *id, const char *type,
                                   struct ks_item *out, int *found, struct ks_error *err)
{
    ks_status st = row_get(c, id, type, out, err);

    *found = st == KS_OK;
    if (st == KS_E_NOT_FOUND) {
        ks_error_clear(err);
        st = KS_OK;
    }
    return st;
}

static ks_status row_delete(struct conn *c, const char *id, const char *type, struct ks_error *err)
{
    int rc = bind_key(c->del, id, type);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(c->del);
    stmt_done(c->del);
    return rc == SQLITE_DONE ? KS_OK : db_error(c->db, rc, "deleting an item", err);
}

/*
 * Checks every condition of tx, then applies every action, inside the one open transaction.
 * exists[i] records whether action i's item is stored, so that a Put knows insert from update.
 */
static ks_status tx_apply(struct conn *c, const struct ks_tx *tx, struct ks_error *err)
{
    unsigned char *exists = calloc(tx->count ? tx->count : 1, 1);
    ks_status st = exists ? KS_OK : ks_error_set(err, KS_E_INTERNAL, "out of memory");
    size_t i;

    for (i = 0; st == KS_OK && i < tx->count; i++) {
        const struct ks_tx_action *a = &tx->actions[i];
        struct ks_item stored;
        int found;
        st = row_read_optional(c, a->id, a->type, &stored, &found, err);
        if (st == KS_OK && !ks_tx_condition_holds(a, found ? &stored : NULL))
            st = ks_tx_conflict(a, err);
        exists[i] = (unsigned char)found;
        ks_item_free(&stored);
    }
    for (i = 0; st == KS_OK && i < tx->count; i++) {
        const struct ks_tx_action *a = &tx->actions[i];
        if (a->op == KS_TX_PUT)
            st = row_write(c, exists[i] ? c->update : c->insert, &a->item, err);
        else if (a->op == KS_TX_DELETE && exists[i])
            st = row_delete(c, a->id, a->type, err);
    }
    free(exists);
    return st;
}

/* run_tx: a built tx in one BEGIN IMMEDIATE transaction (storage/tx.c ks_tx_op_* call it). */
static ks_status sqlite_run_tx(struct ks_storage *s, struct ks_tx *tx, struct ks_error *err)
{
    struct sqlite_storage *q = from_base(s);
    struct conn *c;
    ks_status st;

    pthread_mutex_lock(&q->write_lock);
    st = acquire(q, &c, err);
    if (st == KS_OK) {
        st = tx_begin(c, err);
        if (st == KS_OK)
            st = tx_end(c, tx_apply(c, tx, err), err);
        release(q, c);
    }
    pthread_mutex_unlock(&q->write_lock);
    return st;
}

/* Commitment and index of id on c (inside the caller's read transaction), decoded. */
static ks_status read_mutation(struct conn *c, const char *id, struct ks_mutation_state *out,
                               struct ks_error *err)
{
    struct ks_item ci, xi;
    int has_c = 0, has_x = 0;
    ks_status st;

    ks_item_init(&xi);
    st = row_read_optional(c, id, KS_TYPE_MUTATION_COMMITMENT, &ci, &has_c, err);
    if (st == KS_OK)
        st = row_read_optional(c, id, KS_TYPE_MUTATION_INDEX, &xi, &has_x, err);
    if (st == KS_OK)
        st = ks_storage_mutation_state_from_items(has_c ? &ci : NULL, has_x ? &xi : NULL, out, err);
    else
        ks_mutation_state_init(out);
    ks_item_free(&ci);
    ks_item_free(&xi);
    return st;
}

/* Reads in one deferred transaction: in WAL mode all its reads see one snapshot. */
static ks_status read_begin(struct conn *c, struct ks_error *err)
{
    int rc = sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL);

    return rc == SQLITE_OK ? KS_OK : db_error(c->db, rc, "starting a read", err);
}

static ks_status sqlite_get_mutation(struct ks_storage *s, const char *branch_key_id,
                                     struct ks_mutation_state *out, struct ks_error *err)
{
    struct sqlite_storage *q = from_base(s);
    struct conn *c;
    ks_status st;

    ks_mutation_state_init(out);
    st = acquire(q, &c, err);
    if (st != KS_OK)
        return st;
    st = read_begin(c, err);
    if (st == KS_OK) {
        st = read_mutation(c, branch_key_id, out, err);
        tx_rollback(c);
    }
    release(q, c);
    return st;
}

static ks_status sqlite_get_items_for_initialize_mutation(struct ks_storage *s,
                                                          const char *branch_key_id,
                                                          struct ks_mutation_init_items *out,
                                                          struct ks_error *err)
{
    struct sqlite_storage *q = from_base(s);
    struct conn *c;
    ks_status st;

    ks_mutation_init_items_init(out);
    st = acquire(q, &c, err);
    if (st != KS_OK)
        return st;
    st = read_begin(c, err);
    if (st == KS_OK) {
        st = row_get(c, branch_key_id, KS_TYPE_ACTIVE, &out->active, err);
        if (st == KS_OK)
            st = row_get(c, branch_key_id, KS_TYPE_BEACON, &out->beacon, err);
        if (st == KS_OK)
            st = read_mutation(c, branch_key_id, &out->mutation, err);
        tx_rollback(c);
    }
    release(q, c);
    if (st != KS_OK)
        ks_mutation_init_items_free(out);
    return st;
}

/* Steps c->range (bound by the caller) into page: at most limit rows. */
static ks_status range_rows(struct conn *c, const char *id, size_t limit,
                            struct ks_version_page *page, size_t *rows, struct ks_error *err)
{
    ks_status st = KS_OK;
    int rc;

    *rows = 0;
    page->items = calloc(limit, sizeof *page->items);
    if (!page->items)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    while (st == KS_OK && (rc = sqlite3_step(c->range)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(c->range, 0);
        size_t len = (size_t)sqlite3_column_bytes(c->range, 0);
        struct ks_item *item = &page->items[*rows];
        st = text ? parse_item(text, len, item, err)
                  : ks_error_set(err, KS_E_CORRUPT, "stored item is not valid: empty");
        if (st == KS_OK) {
            (*rows)++;
            page->count = *rows;
            st = ks_storage_check_version_read(item, id, err);
        }
    }
    if (st == KS_OK && rc != SQLITE_DONE)
        st = db_error(c->db, rc, "reading versions", err);
    return st;
}

static ks_status sqlite_query_for_versions(struct ks_storage *s, const char *branch_key_id,
                                           const char *start, size_t page_size,
                                           struct ks_version_page *out, struct ks_error *err)
{
    struct sqlite_storage *q = from_base(s);
    /* The type range of the prefix: ':' + 1 is ';' (BINARY collation compares bytes, as
     * DynamoDB orders sort keys). */
    const char *low = start && *start ? start : KS_TYPE_VERSION_PREFIX, *high = "branch:version;";
    size_t rows = 0;
    struct conn *c;
    ks_status st;
    int rc;

    ks_version_page_init(out);
    st = ks_storage_check_query(branch_key_id, start, page_size, err);
    if (st != KS_OK)
        return st;
    st = acquire(q, &c, err);
    if (st != KS_OK)
        return st;
    /* One row more than a page tells whether another page follows. */
    rc = bind_key(c->range, branch_key_id, low);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(c->range, 3, high, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(c->range, 4, (sqlite3_int64)page_size + 1);
    st = rc == SQLITE_OK ? range_rows(c, branch_key_id, page_size + 1, out, &rows, err)
                         : db_error(c->db, rc, "reading versions", err);
    stmt_done(c->range);
    release(q, c);
    if (st == KS_OK && rows > page_size) {
        ks_item_free(&out->items[page_size]);
        out->count = page_size;
        out->next = strdup(ks_item_get_s(&out->items[page_size - 1], KS_ATTR_TYPE));
        if (!out->next)
            st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    if (st != KS_OK)
        ks_version_page_free(out);
    return st;
}

/* Rows of the list statement into page (at most `limit` + 1 read). */
static ks_status list_rows(struct conn *c, size_t cap, struct ks_active_page *page,
                           struct ks_error *err)
{
    ks_status st = KS_OK;
    int rc = SQLITE_DONE;

    page->items = calloc(cap, sizeof *page->items);
    if (!page->items)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    while (st == KS_OK && page->count < cap && (rc = sqlite3_step(c->list)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(c->list, 0);
        struct ks_item *item = &page->items[page->count];
        st = text ? parse_item(text, (size_t)sqlite3_column_bytes(c->list, 0), item, err)
                  : ks_error_set(err, KS_E_CORRUPT, "stored item is not valid: empty");
        if (st != KS_OK)
            break;
        page->count++;
        if (!ks_item_get_s(item, KS_ATTR_BRANCH_KEY_ID) || !ks_item_get_s(item, KS_ATTR_TYPE) ||
            strcmp(ks_item_get_s(item, KS_ATTR_TYPE), KS_TYPE_ACTIVE) != 0)
            st = ks_error_set(err, KS_E_CORRUPT, "stored ACTIVE item has a bad key");
    }
    if (st == KS_OK && page->count < cap && rc != SQLITE_DONE)
        st = db_error(c->db, rc, "listing keys", err);
    return st;
}

static ks_status sqlite_list_active(struct ks_storage *s, const char *start_id,
                                    const char *start_type, size_t limit,
                                    struct ks_active_page *out, struct ks_error *err)
{
    struct sqlite_storage *q = from_base(s);
    struct conn *c;
    ks_status st;
    int rc;

    ks_active_page_init(out);
    if ((st = ks_storage_check_list(start_id, start_type, limit, err)) != KS_OK ||
        (st = acquire(q, &c, err)) != KS_OK)
        return st;
    /* Any start type resumes after that key's ACTIVE: only ACTIVE rows are read. */
    rc = sqlite3_bind_text(c->list, 1, start_id ? start_id : "", -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(c->list, 2, (sqlite3_int64)limit + 1);
    st = rc == SQLITE_OK ? list_rows(c, limit + 1, out, err)
                         : db_error(c->db, rc, "listing keys", err);
    stmt_done(c->list);
    release(q, c);
    if (st == KS_OK && out->count > limit) {
        ks_item_free(&out->items[--out->count]);
        out->next_id = strdup(ks_item_get_s(&out->items[limit - 1], KS_ATTR_BRANCH_KEY_ID));
        out->next_type = strdup(KS_TYPE_ACTIVE);
        if (!out->next_id || !out->next_type)
            st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    if (st != KS_OK)
        ks_active_page_free(out);
    return st;
}

static void sqlite_destroy(struct ks_storage *s)
{
    struct sqlite_storage *q = from_base(s);

    /* Every call has returned its connection by now (the caller stops using s first). */
    while (q->idle) {
        struct conn *c = q->idle;
        q->idle = c->next;
        conn_close(c);
    }
    pthread_cond_destroy(&q->pool_cond);
    pthread_mutex_destroy(&q->pool_lock);
    pthread_mutex_destroy(&q->write_lock);
    free(q->path);
    free(q);
}

static const struct ks_storage_ops sqlite_ops = {
    .version = KS_STORAGE_OPS_VERSION,
    .name = "sqlite",
    .create_key_store = sqlite_create_key_store,
    .info = sqlite_info,
    .write_new_branch_key = sqlite_write_new_branch_key,
    .write_new_version = sqlite_write_new_version,
    .get_active = sqlite_get_active,
    .get_version = sqlite_get_version,
    .get_beacon = sqlite_get_beacon,
    .ping = sqlite_ping,
    .destroy = sqlite_destroy,
    .has_items = sqlite_has_items,
    .get_items_for_initialize_mutation = sqlite_get_items_for_initialize_mutation,
    .write_initialize_mutation = ks_tx_op_write_initialize_mutation,
    .write_atomic_mutation = ks_tx_op_write_atomic_mutation,
    .query_for_versions = sqlite_query_for_versions,
    .write_mutated_versions = ks_tx_op_write_mutated_versions,
    .get_mutation = sqlite_get_mutation,
    .delete_mutation = ks_tx_op_delete_mutation,
    .delete_mutation_index = ks_tx_op_delete_mutation_index,
    .write_mutation_index = ks_tx_op_write_mutation_index,
    .list_active = sqlite_list_active,
    .run_tx = sqlite_run_tx,
};

/*
 * Creates the file 0600 ourselves (docs/architecture.md section 6: files 0600), independent of the
 * umask, before SQLite sees it; SQLite then gives its -wal and -shm files the same mode. An
 * existing file is left as it is.
 */
static ks_status create_file(const char *path, struct ks_error *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

    if (fd < 0) {
        if (errno == EEXIST)
            return KS_OK;
        return ks_error_set(err, KS_E_STORAGE, "cannot create %s: %s", path, strerror(errno));
    }
    if (fchmod(fd, 0600) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        return ks_error_set(err, KS_E_STORAGE, "cannot chmod %s: %s", path, strerror(e));
    }
    close(fd);
    return KS_OK;
}

ks_status ks_storage_sqlite_open(const char *path, struct ks_storage **out, struct ks_error *err)
{
    struct sqlite_storage *q;
    struct conn *c;
    ks_status st;

    *out = NULL;
    if (!path || !*path)
        return ks_error_set(err, KS_E_INVALID, "sqlite storage: empty path");
    /* Connections move between threads (one at a time), which needs SQLite's multi-thread
     * mode at least. */
    if (!sqlite3_threadsafe())
        return ks_error_set(err, KS_E_STORAGE, "sqlite was built without thread support");
    st = create_file(path, err);
    if (st != KS_OK)
        return st;

    q = calloc(1, sizeof *q);
    if (!q)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    q->path = strdup(path);
    if (!q->path) {
        free(q);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    pthread_mutex_init(&q->pool_lock, NULL);
    pthread_cond_init(&q->pool_cond, NULL);
    pthread_mutex_init(&q->write_lock, NULL);
    q->base.ops = &sqlite_ops;

    /* The first connection checks the file now (WAL, schema), so a bad path fails at start. */
    st = acquire(q, &c, err);
    if (st != KS_OK) {
        sqlite_destroy(&q->base);
        return st;
    }
    release(q, c);
    *out = &q->base;
    return KS_OK;
}
