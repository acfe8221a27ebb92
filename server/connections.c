/*
 * connections.c - the connection cap and the header deadline (connections.h).
 */
#include "server/connections.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "common/log.h"
#include "common/secret.h"
#include "common/util.h"
#include "server/timedwait.h"

/* Descriptors every process holds whatever its configuration: stdio, the listening socket, the
 * log, /dev/urandom, OpenSSL and libcurl start-up files, the local key files. */
#define RESERVE_BASE 64
/* Per pool thread: its epoll descriptor and its wake-up pipe or eventfd. */
#define RESERVE_PER_THREAD 4
/* Per dependency and per thread that may call it at once (pool threads + the readiness probe):
 * an SQLite connection holds the database, its WAL and its shared-memory file; an AWS client
 * keeps one socket per pooled handle. */
#define RESERVE_PER_DEPENDENCY_CALLER 3
/* Never less than a tenth of the limit: files opened later (a rotated log, a new SQLite pool
 * connection) must not be the ones that fail. */
#define RESERVE_MIN_DIVISOR 10
/* libmicrohttpd takes an unsigned; keystored's config allows at most this many. */
#define LIMIT_MAX 1000000u

struct conn_entry {
    struct conn_entry *prev, *next;
    int fd;
    int waiting_headers; /* the current request's headers are not complete */
    int shut;            /* shutdown(2) done: the close notification will follow */
    uint64_t deadline_us;
};

struct ks_connections {
    pthread_mutex_t lock; /* guards the list and every entry, with the close notification */
    pthread_cond_t wake;  /* the sweeper: stop */
    struct conn_entry *head;
    size_t count;
    uint64_t header_us, next_request_us;
    unsigned sweep_interval_ms;
    struct ks_log *log;
    int stop;
    int has_thread;
    pthread_t thread;
};

/* --- the cap ------------------------------------------------------------------------------ */

void ks_connections_choose_limit(uint64_t fd_limit, unsigned configured, unsigned threads,
                                 size_t dependencies, struct ks_connection_limit *out)
{
    uint64_t reserve, available, callers;

    if (threads == 0)
        threads = 1;
    callers = (uint64_t)threads + 1;
    reserve = RESERVE_BASE + (uint64_t)threads * RESERVE_PER_THREAD +
              (uint64_t)dependencies * callers * RESERVE_PER_DEPENDENCY_CALLER;
    if (reserve < fd_limit / RESERVE_MIN_DIVISOR)
        reserve = fd_limit / RESERVE_MIN_DIVISOR;
    available = fd_limit > reserve ? fd_limit - reserve : 0;
    if (available > LIMIT_MAX)
        available = LIMIT_MAX;
    memset(out, 0, sizeof *out);
    out->fd_limit = fd_limit;
    out->reserve = reserve;
    out->limit = (unsigned)available;
    if (configured != 0 && configured <= available)
        out->limit = configured;
    else if (configured != 0)
        out->clamped = 1;
    /* libmicrohttpd divides the cap evenly between its pool threads (remainder to the first
     * ones); a thread whose share is 0 would never accept. */
    if (out->limit < threads)
        out->limit = threads;
}

unsigned ks_connections_limit_for_process(unsigned configured, unsigned threads,
                                          size_t dependencies, struct ks_log *log)
{
    struct ks_connection_limit lim;
    struct rlimit rl;
    struct ks_log_line line;
    uint64_t fds = 1024; /* the usual soft default, if the limit cannot be read */

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        fds = rl.rlim_cur == RLIM_INFINITY ? (uint64_t)LIMIT_MAX * 2 : (uint64_t)rl.rlim_cur;
    ks_connections_choose_limit(fds, configured, threads, dependencies, &lim);
    ks_log_begin(&line, log, lim.clamped ? KS_LOG_WARN : KS_LOG_INFO, "connection_limit");
    ks_log_str(&line, "msg", "connection limit");
    ks_log_int(&line, "maxConnections", (long long)lim.limit);
    ks_log_int(&line, "configured", (long long)configured);
    ks_log_int(&line, "fdLimit", (long long)lim.fd_limit);
    ks_log_int(&line, "fdReserve", (long long)lim.reserve);
    if (lim.clamped)
        ks_log_str(&line, "note",
                   "server.max_connections lowered to stay below the descriptor limit");
    ks_log_end(&line);
    return lim.limit;
}

/* --- the header deadline ------------------------------------------------------------------ */

static void *sweeper_main(void *arg)
{
    struct ks_connections *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        uint64_t next = ks_monotonic_us() + (uint64_t)c->sweep_interval_ms * 1000u;
        size_t shut;
        pthread_mutex_unlock(&c->lock);
        shut = ks_connections_sweep(c, ks_monotonic_us());
        if (shut > 0) {
            struct ks_log_line line;
            ks_log_begin(&line, c->log, KS_LOG_WARN, "header_deadline");
            ks_log_str(&line, "msg", "connections closed: headers not complete by the deadline");
            ks_log_int(&line, "connections", (long long)shut);
            ks_log_int(&line, "headerTimeoutMs", (long long)(c->header_us / 1000u));
            ks_log_end(&line);
        }
        pthread_mutex_lock(&c->lock);
        while (!c->stop && ks_monotonic_us() < next)
            ks_timedwait_until(&c->wake, &c->lock, next);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

ks_status ks_connections_create(const struct ks_connections_options *opts,
                                struct ks_connections **out, struct ks_error *err)
{
    struct ks_connections *c = calloc(1, sizeof *c);
    unsigned next_ms;

    if (!c)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    next_ms = opts->idle_timeout_ms > opts->header_timeout_ms ? opts->idle_timeout_ms
                                                              : opts->header_timeout_ms;
    c->header_us = (uint64_t)opts->header_timeout_ms * 1000u;
    c->next_request_us = (uint64_t)next_ms * 1000u;
    c->sweep_interval_ms = opts->sweep_interval_ms;
    c->log = opts->log;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return ks_error_set(err, KS_E_INTERNAL, "cannot create a mutex");
    }
    if (ks_timedwait_cond_init(&c->wake) != 0) {
        pthread_mutex_destroy(&c->lock);
        free(c);
        return ks_error_set(err, KS_E_INTERNAL, "cannot create a condition variable");
    }
    if (c->sweep_interval_ms > 0) {
        if (pthread_create(&c->thread, NULL, sweeper_main, c) != 0) {
            ks_connections_destroy(c);
            return ks_error_set(err, KS_E_INTERNAL, "cannot start the connection sweeper");
        }
        c->has_thread = 1;
    }
    *out = c;
    return KS_OK;
}

void ks_connections_destroy(struct ks_connections *c)
{
    struct conn_entry *e, *next;
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stop = 1;
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->lock);
    if (c->has_thread)
        pthread_join(c->thread, NULL);
    /* Entries left over belong to connections libmicrohttpd never reported closed (it was
     * stopped first, so there are none unless a notification was lost). */
    for (e = c->head; e; e = next) {
        next = e->next;
        free(e);
    }
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void ks_connections_opened(struct ks_connections *c, int fd, void **slot)
{
    struct conn_entry *e = calloc(1, sizeof *e);
    *slot = e;
    if (!e)
        return;
    e->fd = fd;
    e->waiting_headers = 1;
    e->deadline_us = ks_monotonic_us() + c->header_us;
    pthread_mutex_lock(&c->lock);
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    c->count++;
    pthread_mutex_unlock(&c->lock);
}

void ks_connections_closed(struct ks_connections *c, void **slot)
{
    struct conn_entry *e = *slot;
    if (!e)
        return;
    pthread_mutex_lock(&c->lock);
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    c->count--;
    pthread_mutex_unlock(&c->lock);
    free(e);
    *slot = NULL;
}

void ks_connections_headers_done(struct ks_connections *c, void *handle)
{
    struct conn_entry *e = handle;
    if (!e)
        return;
    pthread_mutex_lock(&c->lock);
    e->waiting_headers = 0;
    pthread_mutex_unlock(&c->lock);
}

void ks_connections_request_done(struct ks_connections *c, void *handle)
{
    struct conn_entry *e = handle;
    if (!e)
        return;
    pthread_mutex_lock(&c->lock);
    e->waiting_headers = 1;
    e->deadline_us = ks_monotonic_us() + c->next_request_us;
    pthread_mutex_unlock(&c->lock);
}

size_t ks_connections_sweep(struct ks_connections *c, uint64_t now_us)
{
    struct conn_entry *e;
    size_t n = 0;
    pthread_mutex_lock(&c->lock);
    for (e = c->head; e; e = e->next) {
        if (!e->waiting_headers || e->shut || e->deadline_us > now_us)
            continue;
        /* Under the lock that the close notification takes before libmicrohttpd closes fd:
         * the descriptor is still this connection's. libmicrohttpd then reads end-of-file,
         * closes the connection and notifies the close. */
        shutdown(e->fd, SHUT_RDWR);
        e->shut = 1;
        n++;
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

size_t ks_connections_count(struct ks_connections *c)
{
    size_t n;
    pthread_mutex_lock(&c->lock);
    n = c->count;
    pthread_mutex_unlock(&c->lock);
    return n;
}
