/*
 * rotation.c - the scheduled-rotation thread (server/rotation.h). Checks are jittered: the
 * first one comes at a random point of the first check interval, each next one after the
 * interval times a random factor in [0.75, 1.25), so that instances started together drift
 * apart. A check is one page of one key store's key list (keystore/rotation.h).
 */
#include "server/rotation.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "server/timedwait.h"

struct task {
    struct ks_rotation_task t;
    uint64_t next_us; /* monotonic */
};

struct ks_rotation_scheduler {
    struct task *tasks;
    size_t n;
    struct ks_log *log;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
};

/* A uniform random fraction in [0, 1) (falls back to 0.5 if the RNG fails). */
static double random_unit(void)
{
    uint32_t v;
    if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
        return 0.5;
    return (double)v / 4294967296.0;
}

static uint64_t jittered(uint64_t interval_s, double low, double width)
{
    return (uint64_t)((double)interval_s * 1e6 * (low + width * random_unit()));
}

static void run_check(struct ks_rotation_scheduler *s, struct task *t)
{
    struct ks_error err;

    ks_error_clear(&err);
    if (ks_rotation_check(t->t.rotation, s->log, &err) != KS_OK) {
        struct ks_log_line line;
        ks_log_begin(&line, s->log, KS_LOG_WARN, "rotation");
        ks_log_str(&line, "key_store", t->t.key_store_name);
        ks_log_str(&line, "msg", "listing keys failed; retried at the next check");
        ks_log_str(&line, "error", err.message);
        ks_log_end(&line);
    }
    t->next_us = ks_monotonic_us() + jittered(t->t.check_interval_seconds, 0.75, 0.5);
}

static void *scheduler_main(void *arg)
{
    struct ks_rotation_scheduler *s = arg;

    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        uint64_t now = ks_monotonic_us(), next = UINT64_MAX;
        size_t i;
        for (i = 0; i < s->n && !s->stop; i++) {
            if (s->tasks[i].next_us <= now) {
                /* The check runs unlocked: stop only waits for it to end. */
                pthread_mutex_unlock(&s->lock);
                run_check(s, &s->tasks[i]);
                pthread_mutex_lock(&s->lock);
                now = ks_monotonic_us();
            }
            if (s->tasks[i].next_us < next)
                next = s->tasks[i].next_us;
        }
        if (!s->stop && next > now)
            ks_timedwait_until(&s->wake, &s->lock, next);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

ks_status ks_rotation_scheduler_start(const struct ks_rotation_task *tasks, size_t n,
                                      struct ks_log *log, struct ks_rotation_scheduler **out,
                                      struct ks_error *err)
{
    struct ks_rotation_scheduler *s;
    uint64_t now = ks_monotonic_us();
    size_t i;

    *out = NULL;
    if (n == 0)
        return KS_OK;
    if (!(s = calloc(1, sizeof *s)) || !(s->tasks = calloc(n, sizeof *s->tasks))) {
        free(s);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    s->n = n;
    s->log = log;
    for (i = 0; i < n; i++) {
        s->tasks[i].t = tasks[i];
        s->tasks[i].next_us = now + jittered(tasks[i].check_interval_seconds, 0.0, 1.0);
    }
    if (pthread_mutex_init(&s->lock, NULL) != 0 || ks_timedwait_cond_init(&s->wake) != 0) {
        free(s->tasks);
        free(s);
        return ks_error_set(err, KS_E_INTERNAL, "cannot create the rotation scheduler's lock");
    }
    if (pthread_create(&s->thread, NULL, scheduler_main, s) != 0) {
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
        free(s->tasks);
        free(s);
        return ks_error_set(err, KS_E_INTERNAL, "cannot start the rotation scheduler");
    }
    *out = s;
    return KS_OK;
}

void ks_rotation_scheduler_stop(struct ks_rotation_scheduler *s)
{
    size_t i;

    if (!s)
        return;
    /* A check under way stops after its current key. */
    for (i = 0; i < s->n; i++)
        ks_rotation_cancel(s->tasks[i].t.rotation);
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s->tasks);
    free(s);
}
