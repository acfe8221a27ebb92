/*
 * audit.c - the audit log (audit.h). One lock guards the descriptor and the state, so lines never
 * interleave and a reopen never races a write; the failure flag and counter are atomics so that
 * the readiness probe and /metrics read them without the lock.
 */
#include "common/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ks_audit {
    pthread_mutex_t lock;
    char *path;
    int fd;
    int fsync_every_line;
    uint64_t fsync_interval_us;
    uint64_t last_fsync_us;
    const struct ks_clock *clock;
    struct ks_log *log;
    ssize_t (*write_fn)(int fd, const void *buf, size_t len);
    atomic_int failed;
    atomic_uint_fast64_t failures;
};

/* Read-write so that a reopen can look at the last byte (end_with_newline); write-only when
 * the operator allows no more. */
static int open_file(const char *path)
{
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0 && errno == EACCES)
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    return fd;
}

/* Writes all of buf; 0, or -1 with errno (ENOSPC for a write that took nothing). */
static int write_all(struct ks_audit *a, int fd, const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = a->write_fn(fd, buf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = ENOSPC;
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

/* A regular file whose last byte is not '\n' (a line cut by a failed write) gets one. */
static int end_with_newline(struct ks_audit *a, int fd)
{
    struct stat st;
    char last = '\n';
    if (fstat(fd, &st) != 0)
        return -1;
    if (!S_ISREG(st.st_mode) || st.st_size == 0)
        return 0;
    if (pread(fd, &last, 1, st.st_size - 1) != 1)
        return 0; /* opened write-only: pread fails; nothing to repair then */
    return last == '\n' ? 0 : write_all(a, fd, "\n", 1);
}

ks_status ks_audit_open(const struct ks_audit_options *opts, struct ks_audit **out,
                        struct ks_error *err)
{
    struct ks_audit *a;

    if (!opts->path || !*opts->path)
        return ks_error_set(err, KS_E_CONFIG, "audit: no path");
    a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(opts->path)) || pthread_mutex_init(&a->lock, NULL) != 0) {
        if (a)
            free(a->path);
        free(a);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    a->fsync_every_line = opts->fsync_every_line;
    a->fsync_interval_us = opts->fsync_interval_ms * 1000u;
    a->clock = opts->clock ? opts->clock : ks_clock_system();
    a->log = opts->log;
    a->write_fn = opts->write_fn ? opts->write_fn : write;
    atomic_init(&a->failed, 0);
    atomic_init(&a->failures, 0);
    a->fd = open_file(a->path);
    if (a->fd < 0) {
        int e = errno;
        ks_error_set(err, KS_E_CONFIG, "audit.path: cannot open %.200s: %s", a->path, strerror(e));
        ks_audit_close(a);
        return KS_E_CONFIG;
    }
    a->last_fsync_us = a->clock->now_us(a->clock->ctx);
    *out = a;
    return KS_OK;
}

void ks_audit_close(struct ks_audit *a)
{
    if (!a)
        return;
    if (a->fd >= 0)
        close(a->fd);
    pthread_mutex_destroy(&a->lock);
    free(a->path);
    free(a);
}

/* Enters the failure state (logged once, on entry) and counts one failed line or check. */
static ks_status fail_locked(struct ks_audit *a, const char *why, int e, int count,
                             struct ks_error *err)
{
    struct ks_log_line line;
    if (count)
        atomic_fetch_add(&a->failures, 1);
    if (!atomic_exchange(&a->failed, 1)) {
        ks_log_begin(&line, a->log, KS_LOG_ERROR, "audit_failed");
        ks_log_str(&line, "msg",
                   "audit log failing: audited requests get 503 until it is "
                   "reopened (SIGHUP)");
        ks_log_str(&line, "path", a->path);
        ks_log_str(&line, "reason", why);
        if (e)
            ks_log_str(&line, "errno", strerror(e));
        ks_log_end(&line);
    }
    return ks_error_set(err, KS_E_UNAVAILABLE, "audit log unavailable; retry");
}

/* The file still has a name: a deleted file takes writes that no one will ever read. */
static ks_status check_locked(struct ks_audit *a, int count, struct ks_error *err)
{
    struct stat st;
    if (atomic_load(&a->failed)) {
        if (count)
            atomic_fetch_add(&a->failures, 1);
        return ks_error_set(err, KS_E_UNAVAILABLE, "audit log unavailable; retry");
    }
    if (fstat(a->fd, &st) != 0)
        return fail_locked(a, "fstat failed", errno, count, err);
    if (st.st_nlink == 0)
        return fail_locked(a, "the file was deleted", 0, count, err);
    return KS_OK;
}

/* fsync per the policy (audit.h); a failed fsync (EIO, ENOSPC) is a failed line. */
static ks_status sync_locked(struct ks_audit *a, struct ks_error *err)
{
    uint64_t now;
    if (!a->fsync_every_line && a->fsync_interval_us == 0)
        return KS_OK;
    now = a->clock->now_us(a->clock->ctx);
    if (!a->fsync_every_line && now - a->last_fsync_us < a->fsync_interval_us)
        return KS_OK;
    if (fsync(a->fd) != 0 && errno != EINVAL) /* EINVAL: a device (tests) cannot be synced */
        return fail_locked(a, "fsync failed", errno, 1, err);
    a->last_fsync_us = now;
    return KS_OK;
}

static ks_status write_locked(struct ks_audit *a, const char *buf, size_t len, struct ks_error *err)
{
    ks_status st = check_locked(a, 1, err);
    if (st != KS_OK)
        return st;
    if (write_all(a, a->fd, buf, len) != 0)
        return fail_locked(a, "write failed", errno, 1, err);
    return sync_locked(a, err);
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ": RFC 3339, UTC, milliseconds. */
static void audit_time(const struct ks_clock *clock, char out[28])
{
    ks_timestamp_iso8601(clock->now_us(clock->ctx), out);
    out[23] = 'Z';
    out[24] = '\0';
}

static size_t build_line(const struct ks_audit *a, const struct ks_audit_record *r,
                         struct ks_log_line *line)
{
    char when[28];
    audit_time(a->clock, when);
    ks_log_begin_detached(line, when);
    ks_log_str(line, "event", "audit");
    ks_log_str(line, "phase", r->phase);
    ks_log_str(line, "requestId", r->request_id);
    ks_log_str(line, "tenant", r->tenant);
    ks_log_str(line, "operation", r->operation);
    ks_log_str(line, "method", r->method);
    ks_log_str(line, "route", r->route);
    ks_log_str(line, "keyStore", r->key_store);
    ks_log_str(line, "branchKeyId", r->branch_key_id);
    ks_log_str(line, "version", r->version);
    ks_log_str(line, "kmsRelationship", r->kms_relationship);
    if (r->items >= 0)
        ks_log_int(line, "items", r->items);
    if (r->status) {
        ks_log_int(line, "status", r->status);
        ks_log_str(line, "error", r->error);
    }
    return ks_log_take(line);
}

ks_status ks_audit_write(struct ks_audit *a, const struct ks_audit_record *r, struct ks_error *err)
{
    struct ks_log_line line;
    size_t len = build_line(a, r, &line);
    ks_status st;

    pthread_mutex_lock(&a->lock);
    st = write_locked(a, line.buf, len, err);
    pthread_mutex_unlock(&a->lock);
    return st;
}

ks_status ks_audit_check(struct ks_audit *a, struct ks_error *err)
{
    ks_status st;
    pthread_mutex_lock(&a->lock);
    st = check_locked(a, 0, err);
    pthread_mutex_unlock(&a->lock);
    return st;
}

int ks_audit_failed(const struct ks_audit *a)
{
    return atomic_load(&a->failed);
}

uint64_t ks_audit_failures(const struct ks_audit *a)
{
    return a ? atomic_load(&a->failures) : 0;
}

static void log_reopen(struct ks_audit *a, int ok, int was_failed, int e)
{
    struct ks_log_line line;
    ks_log_begin(&line, a->log, ok ? KS_LOG_INFO : KS_LOG_ERROR,
                 ok ? "audit_reopened" : "audit_reopen_failed");
    ks_log_str(&line, "path", a->path);
    if (ok)
        ks_log_bool(&line, "recovered", was_failed);
    else
        ks_log_str(&line, "errno", strerror(e));
    ks_log_end(&line);
}

ks_status ks_audit_reopen(struct ks_audit *a, struct ks_error *err)
{
    struct stat st;
    int fd, was_failed, e;

    errno = 0;
    fd = open_file(a->path);
    e = errno;
    if (fd >= 0 && (fstat(fd, &st) != 0 || st.st_nlink == 0 || end_with_newline(a, fd) != 0)) {
        e = errno ? errno : ENOENT;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        log_reopen(a, 0, 0, e);
        return ks_error_set(err, KS_E_UNAVAILABLE, "audit: cannot reopen %.200s: %s", a->path,
                            strerror(e));
    }
    pthread_mutex_lock(&a->lock);
    close(a->fd);
    a->fd = fd;
    was_failed = atomic_exchange(&a->failed, 0);
    pthread_mutex_unlock(&a->lock);
    log_reopen(a, 1, was_failed, 0);
    return KS_OK;
}
