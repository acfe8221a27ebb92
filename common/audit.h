/*
 * audit.h - the audit log (docs/architecture.md section 12): one JSON line per audited call,
 * appended to a file with one write(2) per line on an O_APPEND descriptor, and a failure state
 * that makes the server fail closed.
 *
 * A line counts as written only when write(2) took all of it (a short write continues; an error
 * or a write of 0 bytes is a failure), the file still has a name (fstat before every line:
 * st_nlink == 0 means it was deleted under us, and writes to it would succeed into nothing), and
 * the fsync the policy asks for succeeded. The first failure puts the log in its failure state:
 * every later line is refused at once (KS_E_UNAVAILABLE) until ks_audit_reopen succeeds (SIGHUP,
 * or POST /v1/admin/reload). Lines are built with the log module's escaping (common/log.h), so
 * every line is valid JSON and valid UTF-8; the caller never passes key bytes, tokens or
 * encryption context values.
 */
#ifndef KS_COMMON_AUDIT_H
#define KS_COMMON_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/log.h"
#include "common/status.h"
#include "common/util.h"

struct ks_audit;

struct ks_audit_options {
    const char *path;             /* copied; opened O_WRONLY | O_APPEND | O_CREAT, mode 0600 */
    int fsync_every_line;         /* 1: fsync after every line */
    uint64_t fsync_interval_ms;   /* > 0: fsync a line when the last fsync is this old */
    const struct ks_clock *clock; /* NULL: the system clock */
    struct ks_log *log;           /* borrowed: failures and reopens are logged there; may be NULL */
    /* Tests only: replaces write(2) (a short or failing write on demand). NULL: write(2). */
    ssize_t (*write_fn)(int fd, const void *buf, size_t len);
};

/* Opens the file. KS_E_CONFIG naming the path and errno when it cannot be opened. */
ks_status ks_audit_open(const struct ks_audit_options *opts, struct ks_audit **out,
                        struct ks_error *err);
/* Closes the file and frees a. NULL is a no-op. */
void ks_audit_close(struct ks_audit *a);

/*
 * Opens the path anew (after logrotate renamed the file, or to leave the failure state) and
 * swaps the descriptor in; a file whose last byte is not a newline (a line cut by a failed
 * write) first gets one, so the next line starts clean. On failure the previous descriptor and
 * state are kept (lines still go to the renamed file, and its deletion is still detected) and
 * the error is returned. Thread-safe.
 */
ks_status ks_audit_reopen(struct ks_audit *a, struct ks_error *err);

/*
 * Checks the file without writing: 0 when it is healthy, else the failure state (entered here
 * when the file was deleted). For the readiness probe. Thread-safe.
 */
ks_status ks_audit_check(struct ks_audit *a, struct ks_error *err);

/* 1 while in the failure state. Thread-safe. */
int ks_audit_failed(const struct ks_audit *a);

/* Lines that could not be written (refused in the failure state included), since start: the
 * "audit failures" metric. Thread-safe. */
uint64_t ks_audit_failures(const struct ks_audit *a);

/* The fields of one line; NULL strings are written as null, status 0 and items < 0 left out. */
struct ks_audit_record {
    const char *phase; /* "request" (before the handler) or "outcome" (after it) */
    const char *request_id;
    const char *tenant;
    const char *operation; /* the MPL operation name, or the route's name */
    const char *method;
    const char *route; /* the route pattern, never the raw path */
    const char *key_store;
    const char *branch_key_id;
    const char *version;
    const char *kms_relationship;
    long long items;   /* unwrap-batch: requests in the batch */
    int status;        /* outcome: the HTTP status answered */
    const char *error; /* outcome: the exception name of an error answer */
};

/* Writes one line. KS_OK, or KS_E_UNAVAILABLE (the line is not in the file, or not whole). */
ks_status ks_audit_write(struct ks_audit *a, const struct ks_audit_record *r, struct ks_error *err);

#endif
