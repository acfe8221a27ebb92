/*
 * rotation.h - the scheduled-rotation thread (issue 14): runs ks_rotation_check
 * (keystore/rotation.h) for every key store with `rotation:` configured, each on its own
 * jittered schedule so that instances do not scan in lockstep.
 */
#ifndef KS_SERVER_ROTATION_H
#define KS_SERVER_ROTATION_H

#include <stddef.h>

#include "common/log.h"
#include "keystore/rotation.h"

struct ks_rotation_task {
    struct ks_rotation *rotation; /* borrowed until stop */
    const char *key_store_name;   /* borrowed: log lines */
    uint64_t check_interval_seconds;
};

struct ks_rotation_scheduler;

/* Copies tasks[0..n) and starts the thread (n == 0: *out NULL, nothing started). */
ks_status ks_rotation_scheduler_start(const struct ks_rotation_task *tasks, size_t n,
                                      struct ks_log *log, struct ks_rotation_scheduler **out,
                                      struct ks_error *err);

/* Wakes the thread, waits for the check under way (if any) to finish, frees. NULL-safe. */
void ks_rotation_scheduler_stop(struct ks_rotation_scheduler *s);

#endif
