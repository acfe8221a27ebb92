/*
 * rotation.c - one check of scheduled rotation (keystore/rotation.h).
 */
#include "keystore/rotation.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "keystore/create_time.h"

struct ks_rotation {
    struct ks_keystore *ks;
    const struct ks_kms_relationship *rel;
    const char *name;
    uint64_t interval_us;
    size_t page_size;
    const struct ks_clock *clock;
    struct ks_log *log; /* of the check under way */
    char *cursor_id;    /* the list position carried between checks; NULL: the beginning */
    char *cursor_type;
    int64_t pass_oldest;    /* this pass so far; INT64_MAX: none */
    _Atomic int64_t oldest; /* published: INT64_MAX until a key was seen */
    _Atomic unsigned long long passes;
    atomic_int cancelled;
    _Atomic unsigned long long counts[KS_ROTATION_OUTCOME_COUNT];
};

static const char *const outcome_names[KS_ROTATION_OUTCOME_COUNT] = {
    "rotated",          "not_due",         "lost_race", "under_mutation",
    "kms_arn_mismatch", "bad_create_time", "error"};

const char *ks_rotation_outcome_name(enum ks_rotation_outcome o)
{
    return o < KS_ROTATION_OUTCOME_COUNT ? outcome_names[o] : "unknown";
}

const char *ks_rotation_name(const struct ks_rotation *r)
{
    return r->name;
}

ks_status ks_rotation_create(const struct ks_rotation_params *params, struct ks_rotation **out,
                             struct ks_error *err)
{
    struct ks_rotation *r;

    *out = NULL;
    if (params->page_size < 1 || params->page_size > KS_STORAGE_MAX_LIST ||
        params->interval_seconds == 0)
        return ks_error_set(err, KS_E_INVALID, "rotation: bad page size or interval");
    if (!(r = calloc(1, sizeof *r)))
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    r->ks = params->keystore;
    r->rel = params->rel;
    r->name = params->key_store_name;
    r->interval_us = params->interval_seconds * 1000000u;
    r->page_size = params->page_size;
    r->clock = params->clock ? params->clock : ks_clock_system();
    r->pass_oldest = INT64_MAX;
    atomic_init(&r->oldest, INT64_MAX);
    *out = r;
    return KS_OK;
}

void ks_rotation_destroy(struct ks_rotation *r)
{
    if (!r)
        return;
    free(r->cursor_id);
    free(r->cursor_type);
    free(r);
}

void ks_rotation_cancel(struct ks_rotation *r)
{
    atomic_store(&r->cancelled, 1);
}

unsigned long long ks_rotation_count(const struct ks_rotation *r, enum ks_rotation_outcome o)
{
    return o < KS_ROTATION_OUTCOME_COUNT ? atomic_load(&r->counts[o]) : 0;
}

int ks_rotation_oldest(const struct ks_rotation *r, int64_t *epoch_us)
{
    int64_t v = atomic_load(&r->oldest);
    if (v == INT64_MAX)
        return -1;
    *epoch_us = v;
    return 0;
}

unsigned long long ks_rotation_passes(const struct ks_rotation *r)
{
    return atomic_load(&r->passes);
}

/* Maps VersionKey's answer to an outcome. */
static enum ks_rotation_outcome outcome_of(ks_status st, enum ks_version_due due)
{
    if (st == KS_OK)
        return KS_ROTATION_ROTATED;
    if (st == KS_E_VERSION_RACE)
        return KS_ROTATION_LOST_RACE;
    if (st == KS_E_MUTATION_CONFLICT)
        return KS_ROTATION_UNDER_MUTATION;
    if (due == KS_VERSION_NOT_DUE)
        return KS_ROTATION_NOT_DUE;
    if (due == KS_VERSION_BAD_TIME)
        return KS_ROTATION_BAD_TIME;
    if (due == KS_VERSION_KMS_ARN)
        return KS_ROTATION_KMS_ARN;
    return KS_ROTATION_ERROR;
}

static void log_outcome(struct ks_rotation *r, const char *id, enum ks_rotation_outcome o,
                        const char *version, const struct ks_error *err)
{
    struct ks_log_line line;
    int bad = o == KS_ROTATION_ERROR;

    if (o == KS_ROTATION_NOT_DUE)
        return;
    ks_log_begin(&line, r->log, bad ? KS_LOG_WARN : KS_LOG_INFO, "rotation");
    ks_log_str(&line, "key_store", r->name);
    ks_log_str(&line, "branch_key_id", id);
    ks_log_str(&line, "outcome", ks_rotation_outcome_name(o));
    if (version)
        ks_log_str(&line, "version", version);
    if (o != KS_ROTATION_ROTATED && err)
        ks_log_str(&line, "error", err->message);
    ks_log_end(&line);
}

/* One listed key: rotated when due. Returns the create-time to count for the oldest age
 * (now when rotated; INT64_MAX when it does not parse). */
static int64_t rotate_one(struct ks_rotation *r, const struct ks_item *active, int64_t now,
                          int64_t cutoff)
{
    const char *id = ks_item_get_s(active, KS_ATTR_BRANCH_KEY_ID);
    enum ks_version_due due = KS_VERSION_DUE;
    enum ks_rotation_outcome o;
    struct ks_error err;
    char *version = NULL;
    int64_t created;
    ks_status st;

    ks_error_clear(&err);
    if (ks_create_time_parse(ks_item_get_s(active, KS_ATTR_CREATE_TIME), &created) != 0) {
        atomic_fetch_add(&r->counts[KS_ROTATION_BAD_TIME], 1);
        log_outcome(r, id, KS_ROTATION_BAD_TIME, NULL, NULL);
        return INT64_MAX;
    }
    if (created >= cutoff)
        return created; /* not due by the list: not an attempt */
    st = ks_keystore_version_key_if_older(r->ks, r->rel, id, cutoff, &version, &due, &err);
    o = outcome_of(st, due);
    atomic_fetch_add(&r->counts[o], 1);
    log_outcome(r, id, o, version, &err);
    free(version);
    return o == KS_ROTATION_ROTATED || o == KS_ROTATION_NOT_DUE || o == KS_ROTATION_LOST_RACE
               ? now
               : created;
}

/* Moves the cursor to the page's end; at the end of the list publishes the pass and wraps. */
static void advance(struct ks_rotation *r, struct ks_active_page *page)
{
    free(r->cursor_id);
    free(r->cursor_type);
    r->cursor_id = page->next_id;
    r->cursor_type = page->next_type;
    page->next_id = page->next_type = NULL;
    if (r->cursor_id)
        return;
    atomic_store(&r->oldest, r->pass_oldest);
    atomic_fetch_add(&r->passes, 1);
    r->pass_oldest = INT64_MAX;
}

ks_status ks_rotation_check(struct ks_rotation *r, struct ks_log *log, struct ks_error *err)
{
    struct ks_storage *s = ks_mut_storage(r->ks);
    int64_t now = (int64_t)r->clock->now_us(r->clock->ctx);
    int64_t cutoff = now - (int64_t)r->interval_us;
    struct ks_active_page page;
    size_t i;
    ks_status st;

    r->log = log;
    if (atomic_load(&r->cancelled))
        return KS_OK;
    st = s->ops->list_active(s, r->cursor_id, r->cursor_type, r->page_size, &page, err);
    if (st != KS_OK)
        return st;
    for (i = 0; i < page.count && !atomic_load(&r->cancelled); i++) {
        int64_t t = rotate_one(r, &page.items[i], now, cutoff);
        if (t < r->pass_oldest)
            r->pass_oldest = t;
    }
    if (i < page.count) { /* cancelled: keep the cursor, the rest of the page comes again */
        ks_active_page_free(&page);
        return KS_OK;
    }
    /* During the first pass the oldest so far is all there is. */
    if (atomic_load(&r->passes) == 0 && r->pass_oldest != INT64_MAX)
        atomic_store(&r->oldest, r->pass_oldest);
    advance(r, &page);
    ks_active_page_free(&page);
    return KS_OK;
}
