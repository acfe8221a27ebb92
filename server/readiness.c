/*
 * readiness.c - background dependency probes (readiness.h).
 *
 * Threads: one supervisor and one per check. Everything below is guarded by r->lock; a probe
 * thread drops it only while its ping runs.
 */
#include "server/readiness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/jsonw.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/util.h"
#include "server/timedwait.h"

struct probe {
    struct ks_readiness_check check;
    struct ks_readiness *r;
    pthread_t thread;
    int has_thread;
    int requested;       /* the supervisor asks for a ping */
    int running;         /* requested or inside its ping */
    uint64_t started_us; /* when it was requested */
    enum ks_readiness_state state;
};

struct ks_readiness {
    pthread_mutex_t lock;
    pthread_cond_t supervisor_wake; /* stop, or a probe finished */
    pthread_cond_t probe_wake;      /* stop, or a ping requested */
    int stop;
    int has_supervisor;
    pthread_t supervisor;
    uint64_t interval_us, timeout_us;
    struct ks_log *log;
    enum ks_readiness_state overall; /* last overall state logged */
    size_t n;
    struct probe *probes;
};

static const char *state_name(enum ks_readiness_state s)
{
    switch (s) {
    case KS_READINESS_OK:
        return "ok";
    case KS_READINESS_UNAVAILABLE:
        return "unavailable";
    case KS_READINESS_TIMEOUT:
        return "timeout";
    case KS_READINESS_STARTING:
        break;
    }
    return "starting";
}

/* --- log (one JSON line per change, common/log.h) ------------------------------------------ */

static enum ks_readiness_state overall_locked(const struct ks_readiness *r)
{
    enum ks_readiness_state s = KS_READINESS_OK;
    size_t i;
    for (i = 0; i < r->n; i++) {
        if (r->probes[i].state == KS_READINESS_STARTING)
            return KS_READINESS_STARTING;
        if (r->probes[i].state != KS_READINESS_OK)
            s = KS_READINESS_UNAVAILABLE;
    }
    return s;
}

static void log_overall_locked(struct ks_readiness *r)
{
    enum ks_readiness_state now = overall_locked(r);
    struct ks_log_line line;
    char failing[1024];
    size_t i, used = 0;

    if (now == r->overall)
        return;
    r->overall = now;
    failing[0] = '\0';
    for (i = 0; i < r->n; i++) {
        int n;
        if (r->probes[i].state == KS_READINESS_OK)
            continue;
        n = snprintf(failing + used, sizeof failing - used, "%s%s", used ? "," : "",
                     r->probes[i].check.name);
        if (n < 0 || (size_t)n >= sizeof failing - used)
            break;
        used += (size_t)n;
    }
    ks_log_begin(&line, r->log, now == KS_READINESS_OK ? KS_LOG_INFO : KS_LOG_WARN, "readiness");
    ks_log_str(&line, "msg", now == KS_READINESS_OK ? "ready" : "not ready");
    ks_log_str(&line, "failing", failing); /* check names, comma-separated */
    ks_log_end(&line);
}

/* Records a check's new state; a change is logged with why (err: the ping's error, or NULL). */
static void set_state_locked(struct probe *p, enum ks_readiness_state s, const struct ks_error *err)
{
    struct ks_readiness *r = p->r;
    struct ks_log_line line;

    if (p->state == s)
        return;
    ks_log_begin(&line, r->log, s == KS_READINESS_OK ? KS_LOG_INFO : KS_LOG_WARN,
                 "readiness_check");
    ks_log_str(&line, "msg", "readiness check changed");
    ks_log_str(&line, "check", p->check.name);
    ks_log_str(&line, "from", state_name(p->state));
    ks_log_str(&line, "to", state_name(s));
    if (s == KS_READINESS_TIMEOUT) {
        ks_log_str(&line, "reason", "no answer within server.readiness_timeout_ms");
        ks_log_int(&line, "timeoutMs", (long long)(r->timeout_us / 1000u));
    } else if (err && err->code != KS_OK) {
        ks_log_str(&line, "error", ks_status_exception(err->code));
        ks_log_str(&line, "message", err->message);
        if (err->detail[0])
            ks_log_str(&line, "detail", err->detail);
    }
    ks_log_end(&line);
    p->state = s;
    log_overall_locked(r);
}

/* --- threads -------------------------------------------------------------------------------- */

static void *probe_main(void *arg)
{
    struct probe *p = arg;
    struct ks_readiness *r = p->r;

    pthread_mutex_lock(&r->lock);
    for (;;) {
        struct ks_error err;
        uint64_t started;
        ks_status st;

        while (!r->stop && !p->requested)
            pthread_cond_wait(&r->probe_wake, &r->lock);
        if (r->stop)
            break;
        p->requested = 0;
        started = p->started_us;
        pthread_mutex_unlock(&r->lock);
        ks_error_clear(&err);
        st = p->check.ping(p->check.arg, &err);
        if (st != KS_OK && err.code == KS_OK)
            ks_error_set(&err, st, "%s", ks_strerror(st));
        pthread_mutex_lock(&r->lock);
        p->running = 0;
        /* A late answer does not count: the check stays timed out until a probe finishes in
         * time. */
        if (ks_monotonic_us() - started > r->timeout_us)
            set_state_locked(p, KS_READINESS_TIMEOUT, NULL);
        else
            set_state_locked(p, st == KS_OK ? KS_READINESS_OK : KS_READINESS_UNAVAILABLE, &err);
        pthread_cond_broadcast(&r->supervisor_wake);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* Requests a ping from every check that is not still busy with an earlier one. */
static void request_round_locked(struct ks_readiness *r, uint64_t now)
{
    size_t i;
    for (i = 0; i < r->n; i++) {
        struct probe *p = &r->probes[i];
        if (p->running)
            continue; /* stuck in an earlier ping: already counted as timed out */
        p->requested = 1;
        p->running = 1;
        p->started_us = now;
    }
    pthread_cond_broadcast(&r->probe_wake);
}

/* Marks every ping still running past its deadline as timed out. 1 when some ping of this
 * round is still within its deadline. */
static int expire_locked(struct ks_readiness *r, uint64_t now)
{
    int pending = 0;
    size_t i;
    for (i = 0; i < r->n; i++) {
        struct probe *p = &r->probes[i];
        if (!p->running)
            continue;
        if (now - p->started_us >= r->timeout_us)
            set_state_locked(p, KS_READINESS_TIMEOUT, NULL);
        else
            pending = 1;
    }
    return pending;
}

static void *supervisor_main(void *arg)
{
    struct ks_readiness *r = arg;

    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        uint64_t round = ks_monotonic_us(), deadline = round + r->timeout_us;
        uint64_t next = round + r->interval_us;

        request_round_locked(r, round);
        while (!r->stop && expire_locked(r, ks_monotonic_us()))
            ks_timedwait_until(&r->supervisor_wake, &r->lock, deadline);
        while (!r->stop && ks_monotonic_us() < next)
            ks_timedwait_until(&r->supervisor_wake, &r->lock, next);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* --- API ------------------------------------------------------------------------------------ */

static ks_status start_threads(struct ks_readiness *r, struct ks_error *err)
{
    size_t i;
    for (i = 0; i < r->n; i++) {
        if (pthread_create(&r->probes[i].thread, NULL, probe_main, &r->probes[i]) != 0)
            return ks_error_set(err, KS_E_INTERNAL, "cannot start a readiness probe thread");
        r->probes[i].has_thread = 1;
    }
    if (pthread_create(&r->supervisor, NULL, supervisor_main, r) != 0)
        return ks_error_set(err, KS_E_INTERNAL, "cannot start the readiness thread");
    r->has_supervisor = 1;
    return KS_OK;
}

ks_status ks_readiness_start(const struct ks_readiness_check *checks, size_t n,
                             const struct ks_readiness_options *opts, struct ks_readiness **out,
                             struct ks_error *err)
{
    struct ks_readiness *r = calloc(1, sizeof *r);
    size_t i;

    if (!r || !(r->probes = calloc(n + 1, sizeof *r->probes))) {
        free(r);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    r->n = n;
    r->interval_us = (uint64_t)(opts->interval_ms ? opts->interval_ms : 1) * 1000u;
    r->timeout_us = (uint64_t)(opts->timeout_ms ? opts->timeout_ms : 1) * 1000u;
    r->log = opts->log;
    r->overall = KS_READINESS_STARTING;
    for (i = 0; i < n; i++) {
        r->probes[i].check = checks[i];
        r->probes[i].r = r;
    }
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r->probes);
        free(r);
        return ks_error_set(err, KS_E_INTERNAL, "cannot create a mutex");
    }
    if (ks_timedwait_cond_init(&r->supervisor_wake) != 0 ||
        pthread_cond_init(&r->probe_wake, NULL) != 0) {
        /* Destroying a condition variable that was never initialised is undefined: only the
         * unlikely failure of the second init leaks the first. */
        pthread_mutex_destroy(&r->lock);
        free(r->probes);
        free(r);
        return ks_error_set(err, KS_E_INTERNAL, "cannot create a condition variable");
    }
    if (start_threads(r, err) != KS_OK) {
        ks_readiness_stop(r);
        return err->code;
    }
    /* No checks: nothing can fail, ready at once. */
    if (n == 0) {
        pthread_mutex_lock(&r->lock);
        log_overall_locked(r);
        pthread_mutex_unlock(&r->lock);
    }
    *out = r;
    return KS_OK;
}

void ks_readiness_stop(struct ks_readiness *r)
{
    size_t i;
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = 1;
    pthread_cond_broadcast(&r->supervisor_wake);
    pthread_cond_broadcast(&r->probe_wake);
    pthread_mutex_unlock(&r->lock);
    if (r->has_supervisor)
        pthread_join(r->supervisor, NULL);
    for (i = 0; i < r->n; i++)
        if (r->probes[i].has_thread)
            pthread_join(r->probes[i].thread, NULL);
    pthread_cond_destroy(&r->probe_wake);
    pthread_cond_destroy(&r->supervisor_wake);
    pthread_mutex_destroy(&r->lock);
    free(r->probes);
    free(r);
}

size_t ks_readiness_count(struct ks_readiness *r)
{
    return r ? r->n : 0;
}

enum ks_readiness_state ks_readiness_state(struct ks_readiness *r, size_t i, const char **name)
{
    enum ks_readiness_state s;
    if (!r || i >= r->n) {
        *name = "";
        return KS_READINESS_STARTING;
    }
    pthread_mutex_lock(&r->lock);
    s = r->probes[i].state;
    pthread_mutex_unlock(&r->lock);
    *name = r->probes[i].check.name;
    return s;
}

enum ks_readiness_state ks_readiness_overall(struct ks_readiness *r)
{
    enum ks_readiness_state s;
    if (!r)
        return KS_READINESS_STARTING;
    pthread_mutex_lock(&r->lock);
    s = overall_locked(r);
    pthread_mutex_unlock(&r->lock);
    return s;
}

/* --- GET /readyz ---------------------------------------------------------------------- */

/*
 * Answers from the server's background probes (req->readiness): never waits on a dependency.
 * 200 when every check is ok; 503 "starting" until each has finished one probe, else 503
 * "unavailable". Each check shows only its state ("ok", "unavailable", "timeout", "starting"):
 * the route is unauthenticated, so the dependency's error text stays in the log.
 */
ks_status ks_handle_readyz(const struct ks_request *req, struct ks_response *resp,
                           struct ks_error *err)
{
    static const char *const state_names[] = {
        [KS_READINESS_STARTING] = "starting",
        [KS_READINESS_OK] = "ok",
        [KS_READINESS_UNAVAILABLE] = "unavailable",
        [KS_READINESS_TIMEOUT] = "timeout",
    };
    size_t i, n = ks_readiness_count(req->readiness);
    int starting = req->readiness == NULL, failing = 0;
    struct ks_jsonw w;

    ks_jsonw_init(&w, 1u << 20);
    ks_jsonw_object_begin(&w);
    ks_jsonw_key(&w, "checks");
    ks_jsonw_object_begin(&w);
    for (i = 0; i < n; i++) {
        const char *name;
        enum ks_readiness_state s = ks_readiness_state(req->readiness, i, &name);
        starting |= s == KS_READINESS_STARTING;
        failing |= s != KS_READINESS_OK;
        ks_jsonw_key(&w, name);
        ks_jsonw_string(&w, state_names[s]);
    }
    ks_jsonw_object_end(&w);
    ks_jsonw_key(&w, "status");
    ks_jsonw_string(&w, starting ? "starting" : failing ? "unavailable" : "ready");
    ks_jsonw_object_end(&w);
    return ks_handler_finish(&w, starting || failing ? 503 : 200, resp, err);
}
