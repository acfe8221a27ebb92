/*
 * rotation.h - scheduled rotation of one key store (issue 14; docs/architecture.md section 3,
 * "Scheduled rotation"): the logic of one check. The thread that runs the checks on a jittered
 * schedule lives in server/rotation.c.
 *
 * A check reads ONE page of the key list after a cursor that it carries over to the next check
 * (bounded work; a large store is covered over several checks, then the cursor wraps), and
 * versions each listed key whose ACTIVE is older than the interval. The age is checked again
 * by VersionKey on the ACTIVE it reads and locks (ks_keystore_version_key_if_older), so an
 * instance acting on a stale list never rotates a key a second time; of two instances racing
 * on one key the `enc` lock lets exactly one win. Skipped and counted, never failed: keys under
 * mutation, keys whose kms-arn the relationship does not accept, unparseable create-times.
 *
 * Checks of one struct ks_rotation run one at a time (one scheduler thread); the counters and
 * the oldest age are read by /metrics from any thread.
 */
#ifndef KS_KEYSTORE_ROTATION_H
#define KS_KEYSTORE_ROTATION_H

#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "common/status.h"
#include "common/util.h"
#include "keystore/keystore.h"

/* What became of a key a check found due (keystored_rotations_total{outcome}). */
enum ks_rotation_outcome {
    KS_ROTATION_ROTATED = 0,
    KS_ROTATION_NOT_DUE,        /* the ACTIVE VersionKey read is newer than the list said */
    KS_ROTATION_LOST_RACE,      /* another instance versioned it first (enc lock) */
    KS_ROTATION_UNDER_MUTATION, /* skipped */
    KS_ROTATION_KMS_ARN,        /* skipped: the relationship does not accept its kms-arn */
    KS_ROTATION_BAD_TIME,       /* skipped: create-time does not parse */
    KS_ROTATION_ERROR,          /* storage or KMS failure; retried at a later check */
    KS_ROTATION_OUTCOME_COUNT
};
const char *ks_rotation_outcome_name(enum ks_rotation_outcome o);

struct ks_rotation;

struct ks_rotation_params {
    struct ks_keystore *keystore;          /* borrowed */
    const struct ks_kms_relationship *rel; /* borrowed; can version (config checks it) */
    const char *key_store_name;            /* borrowed: log lines */
    uint64_t interval_seconds;
    size_t page_size;             /* keys listed per check, 1..1000 */
    const struct ks_clock *clock; /* NULL: system clock */
};

/* Keys listed per check when the configuration says nothing else. */
#define KS_ROTATION_PAGE_DEFAULT 100

ks_status ks_rotation_create(const struct ks_rotation_params *params, struct ks_rotation **out,
                             struct ks_error *err);
void ks_rotation_destroy(struct ks_rotation *r);

/* The key store name given at create (borrowed from the caller, who keeps it alive). */
const char *ks_rotation_name(const struct ks_rotation *r);

/*
 * One check (see top), logging each attempt to log (borrowed; NULL: none). A failed list is
 * returned (the cursor stays); failed keys are counted.
 */
ks_status ks_rotation_check(struct ks_rotation *r, struct ks_log *log, struct ks_error *err);

/* Asks a check under way to stop after the key it is versioning (the cursor then stays, so
 * nothing is skipped); later checks return at once. Thread-safe: for shutdown. */
void ks_rotation_cancel(struct ks_rotation *r);

/* Counter of an outcome (thread-safe). */
unsigned long long ks_rotation_count(const struct ks_rotation *r, enum ks_rotation_outcome o);

/*
 * Create-time (epoch µs) of the oldest ACTIVE seen over the last full pass of the key list
 * (during the first pass: so far), counting a key rotated by this instance as new. 0 and
 * *epoch_us set, or -1 before any parseable key was seen. Thread-safe.
 */
int ks_rotation_oldest(const struct ks_rotation *r, int64_t *epoch_us);

/* Full passes over the key list so far (tests). */
unsigned long long ks_rotation_passes(const struct ks_rotation *r);

#endif
