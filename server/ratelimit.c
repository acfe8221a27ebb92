/*
 * ratelimit.c - token buckets as one atomic word each, and the registry that keeps them across
 * reloads (ratelimit.h).
 */
#include "server/ratelimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_SECOND 1000000000ull

struct ks_ratelimit {
    /* The theoretical arrival time (ns): when the bucket would be full again. A request at now
     * is allowed when tat - now, after adding this request's cost, stays within the burst. */
    _Atomic uint64_t tat;
    uint64_t interval_ns; /* one token: 1 s / requests_per_second */
    uint64_t window_ns;   /* burst tokens: burst * interval_ns */
    uint64_t rps, burst;
    size_t refs; /* under the registry's lock */
    struct ks_ratelimit *next;
    char name[];
};

struct ks_ratelimit_registry {
    pthread_mutex_t lock;
    struct ks_ratelimit **slots; /* chains by hash of the name */
    size_t mask, count;
};

ks_status ks_ratelimit_registry_create(struct ks_ratelimit_registry **out, struct ks_error *err)
{
    struct ks_ratelimit_registry *r = calloc(1, sizeof *r);
    if (r) {
        r->mask = 63;
        r->slots = calloc(r->mask + 1, sizeof *r->slots);
    }
    if (!r || !r->slots || pthread_mutex_init(&r->lock, NULL) != 0) {
        if (r)
            free(r->slots);
        free(r);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    *out = r;
    return KS_OK;
}

void ks_ratelimit_registry_destroy(struct ks_ratelimit_registry *r)
{
    size_t i;
    if (!r)
        return;
    for (i = 0; i <= r->mask; i++) {
        while (r->slots[i]) {
            struct ks_ratelimit *next = r->slots[i]->next;
            free(r->slots[i]);
            r->slots[i] = next;
        }
    }
    free(r->slots);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* FNV-1a of the tenant name. */
static size_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

/* Doubles the table when it is fuller than two per chain (a reload of 10,000 tenants). */
static void grow(struct ks_ratelimit_registry *r)
{
    size_t size = 2 * (r->mask + 1), i;
    struct ks_ratelimit **slots;

    if (r->count <= 2 * (r->mask + 1) || !(slots = calloc(size, sizeof *slots)))
        return; /* a failed grow only makes chains longer */
    for (i = 0; i <= r->mask; i++) {
        while (r->slots[i]) {
            struct ks_ratelimit *b = r->slots[i];
            size_t j = hash_name(b->name) & (size - 1);
            r->slots[i] = b->next;
            b->next = slots[j];
            slots[j] = b;
        }
    }
    free(r->slots);
    r->slots = slots;
    r->mask = size - 1;
}

static struct ks_ratelimit *new_bucket(const char *name, uint64_t rps, uint64_t burst)
{
    size_t len = strlen(name);
    struct ks_ratelimit *b = calloc(1, sizeof *b + len + 1);
    if (!b)
        return NULL;
    memcpy(b->name, name, len + 1);
    b->rps = rps;
    b->burst = burst;
    b->interval_ns = NS_PER_SECOND / rps; /* rps <= 10^6: at least 1000 ns */
    b->window_ns = burst * b->interval_ns;
    atomic_init(&b->tat, 0); /* in the past: full */
    return b;
}

struct ks_ratelimit *ks_ratelimit_acquire(struct ks_ratelimit_registry *r, const char *name,
                                          uint64_t rps, uint64_t burst)
{
    struct ks_ratelimit *b;
    size_t slot;

    if (rps == 0 || burst == 0)
        return NULL;
    pthread_mutex_lock(&r->lock);
    slot = hash_name(name) & r->mask;
    for (b = r->slots[slot]; b; b = b->next)
        if (b->rps == rps && b->burst == burst && strcmp(b->name, name) == 0)
            break;
    if (!b && (b = new_bucket(name, rps, burst)) != NULL) {
        b->next = r->slots[slot];
        r->slots[slot] = b;
        r->count++;
        grow(r);
    }
    if (b)
        b->refs++;
    pthread_mutex_unlock(&r->lock);
    return b;
}

void ks_ratelimit_release(struct ks_ratelimit_registry *r, struct ks_ratelimit *bucket)
{
    struct ks_ratelimit **p;
    if (!bucket)
        return;
    pthread_mutex_lock(&r->lock);
    if (--bucket->refs == 0) {
        for (p = &r->slots[hash_name(bucket->name) & r->mask]; *p && *p != bucket; p = &(*p)->next)
            ;
        if (*p)
            *p = bucket->next;
        r->count--;
        free(bucket);
    }
    pthread_mutex_unlock(&r->lock);
}

int ks_ratelimit_take(struct ks_ratelimit *bucket, uint64_t now_us, unsigned *retry_after_seconds)
{
    uint64_t now = now_us * 1000u;
    uint64_t old = atomic_load_explicit(&bucket->tat, memory_order_relaxed), next;

    do {
        next = (old > now ? old : now) + bucket->interval_ns;
        if (next - now > bucket->window_ns) {
            /* Refused: the state is left as it was, so a refused request costs nothing. */
            uint64_t wait = next - now - bucket->window_ns;
            uint64_t seconds = (wait + NS_PER_SECOND - 1) / NS_PER_SECOND;
            *retry_after_seconds = seconds < 1 ? 1u : seconds > 3600 ? 3600u : (unsigned)seconds;
            return 0;
        }
    } while (!atomic_compare_exchange_weak_explicit(&bucket->tat, &old, next, memory_order_relaxed,
                                                    memory_order_relaxed));
    return 1;
}
