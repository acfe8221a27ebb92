/*
 * http_metrics.c - preallocated atomic counters for the HTTP front end (http_metrics.h).
 */
#include "handlers/http_metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
#define N_METHODS (sizeof methods / sizeof methods[0] + 1) /* + "other" */

static const int statuses[] = {200, 201, 204, 400, 401, 403, 404, 405, 409,
                               413, 414, 415, 429, 431, 500, 502, 503, 504};
#define N_STATUSES (sizeof statuses / sizeof statuses[0] + 1) /* + "other" */

/* Upper bounds of the latency buckets, in microseconds: 1 ms to 10 s. */
static const uint64_t bounds_us[] = {1000,   2500,   5000,    10000,   25000,   50000,   100000,
                                     250000, 500000, 1000000, 2500000, 5000000, 10000000};
static const char *const bounds_text[] = {"0.001", "0.0025", "0.005", "0.01", "0.025",
                                          "0.05",  "0.1",    "0.25",  "0.5",  "1",
                                          "2.5",   "5",      "10"};
#define N_BOUNDS (sizeof bounds_us / sizeof bounds_us[0])

/* One (route, method) pair. buckets are not cumulative here (one increment per request); the
 * writer sums them, so that count (+Inf) always equals the buckets' total within one scrape. */
struct series {
    _Atomic uint64_t requests[N_STATUSES];
    _Atomic uint64_t buckets[N_BOUNDS + 1];
    _Atomic uint64_t sum_us;
};

struct ks_http_metrics {
    const char **routes; /* the array is ours, the strings borrowed */
    size_t n_routes;
    struct series *series; /* (n_routes + 1) * N_METHODS; route n_routes is "no route" */
    atomic_long in_flight;
    _Atomic uint64_t rate_limited, shed;
};

ks_status ks_http_metrics_create(const char *const *routes, size_t n_routes,
                                 struct ks_http_metrics **out, struct ks_error *err)
{
    struct ks_http_metrics *m = calloc(1, sizeof *m);
    if (m) {
        m->series = calloc((n_routes + 1) * N_METHODS, sizeof *m->series);
        m->routes = calloc(n_routes + 1, sizeof *m->routes);
    }
    if (!m || !m->series || !m->routes) {
        ks_http_metrics_destroy(m);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    memcpy(m->routes, routes, n_routes * sizeof *routes);
    m->n_routes = n_routes;
    atomic_init(&m->in_flight, 0);
    *out = m;
    return KS_OK;
}

void ks_http_metrics_destroy(struct ks_http_metrics *m)
{
    if (!m)
        return;
    free(m->series);
    free(m->routes);
    free(m);
}

long ks_http_metrics_enter(struct ks_http_metrics *m)
{
    return atomic_fetch_add(&m->in_flight, 1) + 1;
}

long ks_http_metrics_in_flight(const struct ks_http_metrics *m)
{
    return atomic_load(&((struct ks_http_metrics *)(uintptr_t)m)->in_flight);
}

static size_t method_index(const char *method)
{
    size_t i;
    for (i = 0; method && i < N_METHODS - 1; i++)
        if (strcmp(method, methods[i]) == 0)
            return i;
    return N_METHODS - 1;
}

static size_t status_index(int status)
{
    size_t i;
    for (i = 0; i < N_STATUSES - 1; i++)
        if (statuses[i] == status)
            return i;
    return N_STATUSES - 1;
}

void ks_http_metrics_leave(struct ks_http_metrics *m, int route, const char *method, int status,
                           uint64_t elapsed_us)
{
    size_t r = route >= 0 && (size_t)route < m->n_routes ? (size_t)route : m->n_routes, b;
    struct series *s = &m->series[r * N_METHODS + method_index(method)];

    if (status) {
        for (b = 0; b < N_BOUNDS && elapsed_us > bounds_us[b]; b++)
            ;
        atomic_fetch_add_explicit(&s->requests[status_index(status)], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->sum_us, elapsed_us, memory_order_relaxed);
    }
    atomic_fetch_sub(&m->in_flight, 1);
}

void ks_http_metrics_rate_limited(struct ks_http_metrics *m)
{
    atomic_fetch_add_explicit(&m->rate_limited, 1, memory_order_relaxed);
}

void ks_http_metrics_shed(struct ks_http_metrics *m)
{
    atomic_fetch_add_explicit(&m->shed, 1, memory_order_relaxed);
}

static uint64_t load(const _Atomic uint64_t *v)
{
    return atomic_load_explicit((_Atomic uint64_t *)(uintptr_t)v, memory_order_relaxed);
}

/* {route="...",method="..." : templates hold no quote, backslash or newline (router.c). */
static void labels(FILE *f, const struct ks_http_metrics *m, size_t r, size_t meth)
{
    fprintf(f, "{route=\"%s\",method=\"%s\"", r < m->n_routes ? m->routes[r] : "-",
            meth < N_METHODS - 1 ? methods[meth] : "other");
}

static void write_requests(const struct ks_http_metrics *m, FILE *f)
{
    size_t r, meth, st;
    fputs("# HELP keystored_http_requests_total HTTP requests answered, by route template, method "
          "and status.\n# TYPE keystored_http_requests_total counter\n",
          f);
    for (r = 0; m && r <= m->n_routes; r++) {
        for (meth = 0; meth < N_METHODS; meth++) {
            const struct series *s = &m->series[r * N_METHODS + meth];
            for (st = 0; st < N_STATUSES; st++) {
                uint64_t n = load(&s->requests[st]);
                if (!n)
                    continue;
                fputs("keystored_http_requests_total", f);
                labels(f, m, r, meth);
                if (st < N_STATUSES - 1)
                    fprintf(f, ",status=\"%d\"} %llu\n", statuses[st], (unsigned long long)n);
                else
                    fprintf(f, ",status=\"other\"} %llu\n", (unsigned long long)n);
            }
        }
    }
}

static void write_histogram(const struct ks_http_metrics *m, FILE *f)
{
    size_t r, meth, b;
    fputs("# HELP keystored_http_request_duration_seconds Time from the request line to the "
          "answer, by route template and method.\n"
          "# TYPE keystored_http_request_duration_seconds histogram\n",
          f);
    for (r = 0; m && r <= m->n_routes; r++) {
        for (meth = 0; meth < N_METHODS; meth++) {
            const struct series *s = &m->series[r * N_METHODS + meth];
            uint64_t counts[N_BOUNDS + 1], total = 0;
            for (b = 0; b <= N_BOUNDS; b++)
                total += counts[b] = load(&s->buckets[b]);
            if (!total)
                continue;
            for (b = 0, total = 0; b <= N_BOUNDS; b++) {
                total += counts[b];
                fputs("keystored_http_request_duration_seconds_bucket", f);
                labels(f, m, r, meth);
                fprintf(f, ",le=\"%s\"} %llu\n", b < N_BOUNDS ? bounds_text[b] : "+Inf",
                        (unsigned long long)total);
            }
            fputs("keystored_http_request_duration_seconds_sum", f);
            labels(f, m, r, meth);
            fprintf(f, "} %.6f\n", (double)load(&s->sum_us) / 1e6);
            fputs("keystored_http_request_duration_seconds_count", f);
            labels(f, m, r, meth);
            fprintf(f, "} %llu\n", (unsigned long long)total);
        }
    }
}

void ks_http_metrics_write(const struct ks_http_metrics *m, FILE *f)
{
    write_requests(m, f);
    write_histogram(m, f);
    fprintf(f,
            "# HELP keystored_http_requests_in_flight Requests past their headers and not yet "
            "answered.\n# TYPE keystored_http_requests_in_flight gauge\n"
            "keystored_http_requests_in_flight %ld\n",
            m ? ks_http_metrics_in_flight(m) : 0L);
    fprintf(f,
            "# HELP keystored_http_rate_limited_requests_total Requests refused with 429 by their "
            "tenant's rate_limit.\n# TYPE keystored_http_rate_limited_requests_total counter\n"
            "keystored_http_rate_limited_requests_total %llu\n",
            m ? (unsigned long long)load(&m->rate_limited) : 0ULL);
    fprintf(f,
            "# HELP keystored_http_shed_requests_total Requests refused with 503 over "
            "server.max_in_flight_requests.\n# TYPE keystored_http_shed_requests_total counter\n"
            "keystored_http_shed_requests_total %llu\n",
            m ? (unsigned long long)load(&m->shed) : 0ULL);
}
