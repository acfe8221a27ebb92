/*
 * cache.c - the shared branch key materials cache (cache.h; docs/reference/cache.md).
 *
 * Locking: one mutex guards the tables, the LRU list, the fetches in flight and the counters,
 * as the MPL's StormTrackingCMC does. Critical sections are O(1) and never do I/O: fetches run
 * unlocked. Entry refcounts are atomic, so ks_cache_release needs no lock except the key slab's
 * when the last reference frees the key slot.
 *
 * Structures:
 * - entries: a chained hash table by identifier (sized once from the capacity), a doubly linked
 *   LRU list (head = most recently used), and for ACTIVE entries a second chained table by
 *   (logical name, branch key id) so that VersionKey finds them in every partition.
 * - flights: one per fetch running. The "current" flight of an identifier is in a table by
 *   identifier and counts against fan_out; it is the MPL's in-flight mark, with the time it was
 *   made. A flight whose mark was replaced (a second fetch after grace_interval) or pruned (older
 *   than in_flight_ttl) is "superseded": it still finishes and hands its result to its waiters.
 * - key slab: mmap'd pages marked MADV_DONTDUMP (and mlock'd when the limit allows) holding the
 *   keys; each entry owns one slot, wiped with OPENSSL_cleanse when the entry is freed. The slab
 *   is refcounted by the cache and by every slot in use, so refs may outlive the cache.
 *
 * Clock: all times come from the injected struct ks_clock (microseconds). Waits are condition
 * variable waits whose timeout is the next deadline computed from that clock; a flight that
 * finishes broadcasts, and ks_cache_wake_all lets a test that moved its clock wake waiters.
 */
#include "keystore/cache.h"
#include "keystore/testing.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/secret.h"

#define US_PER_S 1000000ull
#define RESOURCE_HIERARCHICAL 0x02 /* docs/reference/cache.md section 1 */
#define SLOT_SIZE KS_CACHE_KEY_MAX
#define CHUNK_PAGES 4
#define PARTITION_BUCKETS 16384 /* one partition per tenant: 10,000 tenants, short chains */
#define MAX_BUCKETS (1u << 20)
#define MIN_WAIT_US 1000ull

/* ---------------------------------------------------------------------------------------- */
/* key slab: page-aligned, dump-excluded storage for key bytes                               */
/* ---------------------------------------------------------------------------------------- */

struct chunk {
    struct chunk *next;
    void *base;
    size_t len;
};

struct keyslab {
    pthread_mutex_t lock;
    size_t refs; /* 1 for the cache while it lives + 1 per slot in use */
    struct chunk *chunks;
    unsigned char **free_slots; /* stack; capacity = total slots, so a push never allocates */
    size_t n_free;
    size_t n_total;
};

static void slab_unmap(struct keyslab *s)
{
    struct chunk *c, *next;

    for (c = s->chunks; c; c = next) {
        next = c->next;
        OPENSSL_cleanse(c->base, c->len);
        munmap(c->base, c->len);
        free(c);
    }
    free(s->free_slots);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static struct keyslab *slab_create(void)
{
    struct keyslab *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return NULL;
    }
    s->refs = 1;
    return s;
}

/* Adds a chunk of pages. Called with s->lock held. 0, or -1 (nothing changed). */
static int slab_grow(struct keyslab *s)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t len = (size_t)(page > 0 ? page : 4096) * CHUNK_PAGES, n = len / SLOT_SIZE, i;
    unsigned char **stack;
    struct chunk *c = calloc(1, sizeof(*c));
    void *base;

    if (!c)
        return -1;
    stack = realloc(s->free_slots, (s->n_total + n) * sizeof(*stack));
    if (!stack) {
        free(c);
        return -1;
    }
    s->free_slots = stack;
    base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        free(c);
        return -1;
    }
    /* Keys must never reach a core dump (docs/style.md "Memory"). Without that guarantee, refuse to
     * cache rather than silently weaken it. mlock only keeps them out of swap when
     * RLIMIT_MEMLOCK allows, so its failure is not fatal. */
    if (madvise(base, len, MADV_DONTDUMP) != 0) {
        munmap(base, len);
        free(c);
        return -1;
    }
    (void)mlock(base, len);
    c->base = base;
    c->len = len;
    c->next = s->chunks;
    s->chunks = c;
    for (i = n; i > 0; i--)
        s->free_slots[s->n_free++] = (unsigned char *)base + (i - 1) * SLOT_SIZE;
    s->n_total += n;
    return 0;
}

/* A zeroed slot, or NULL on failure. */
static unsigned char *slab_alloc(struct keyslab *s)
{
    unsigned char *slot = NULL;

    pthread_mutex_lock(&s->lock);
    if (s->n_free > 0 || slab_grow(s) == 0) {
        slot = s->free_slots[--s->n_free];
        s->refs++;
    }
    pthread_mutex_unlock(&s->lock);
    return slot;
}

static void slab_unref_locked_then_maybe_free(struct keyslab *s)
{
    int last = --s->refs == 0;

    pthread_mutex_unlock(&s->lock);
    if (last)
        slab_unmap(s);
}

/* Wipes a slot and returns it. May free the slab (its last slot after the cache is gone). */
static void slab_free(struct keyslab *s, unsigned char *slot)
{
    OPENSSL_cleanse(slot, SLOT_SIZE);
    pthread_mutex_lock(&s->lock);
    s->free_slots[s->n_free++] = slot;
    slab_unref_locked_then_maybe_free(s);
}

/* ---------------------------------------------------------------------------------------- */
/* types                                                                                    */
/* ---------------------------------------------------------------------------------------- */

struct partition {
    struct partition *next;
    struct ks_cache_ref *lru_head, *lru_tail; /* this partition's entries, most recent first */
    uint64_t hash;
    struct ks_cache_stats stats;
    size_t len;
    unsigned char bytes[];
};

/*
 * An entry. A struct ks_cache_ref handed out is a pointer to one; refs counts the cache's own
 * reference (while indexed), each flight's that returned it, and each caller's.
 */
struct ks_cache_ref {
    atomic_size_t refs;
    struct ks_materials *materials; /* key points into slot */
    unsigned char *slot;
    struct keyslab *slab;
    /* The rest is guarded by the cache lock and meaningful only while indexed. */
    int indexed;
    unsigned char id[KS_CACHE_ID_LEN];
    uint64_t hash;
    struct ks_cache_ref *hprev, *hnext; /* identifier table chain */
    struct ks_cache_ref *lru_prev, *lru_next;
    struct ks_cache_ref *plru_prev, *plru_next; /* the partition's own LRU list */
    struct ks_cache_ref *lbprev, *lbnext;       /* (L, B) table chain, ACTIVE only */
    uint64_t lb_hash;
    char *logical_name, *branch_key_id; /* ACTIVE only (owned) */
    enum ks_cache_scope scope;
    struct partition *partition;
    uint64_t expiry_us;
    uint64_t refresh_mark_us; /* last grace refresh started, 0: none */
};

struct flight {
    unsigned char id[KS_CACHE_ID_LEN];
    uint64_t hash;
    struct flight *hprev, *hnext;       /* flight table chain (current only) */
    struct flight *all_prev, *all_next; /* every running flight */
    struct partition *partition;
    enum ks_cache_scope scope;
    char *logical_name, *branch_key_id; /* ACTIVE only (owned; moved into the entry) */
    uint64_t marked_us;
    int current;   /* in the flight table, counts against fan_out */
    int running;   /* in the all list */
    int no_insert; /* invalidated while running: hand out, do not cache */
    int done;
    ks_status status;
    struct ks_error error;
    struct ks_cache_ref *result; /* one reference held by the flight */
    unsigned refs;               /* the fetcher + each waiter holding it (cache lock) */
    pthread_cond_t cond;
};

struct ks_cache {
    pthread_mutex_t lock;
    pthread_cond_t slot_cond; /* waiters blocked by fan_out */
    size_t slot_waiters;
    const struct ks_clock *clock;
    uint64_t max_per_partition; /* 0: none */
    uint64_t capacity, ttl_us, grace_period_us, grace_interval_us, in_flight_ttl_us, fan_out;
    uint64_t seed[2];

    struct ks_cache_ref **buckets;    /* by identifier */
    struct ks_cache_ref **lb_buckets; /* ACTIVE by (L, B) */
    size_t mask;
    uint64_t n_entries;
    struct ks_cache_ref *lru_head, *lru_tail;

    struct flight **flight_buckets;
    size_t flight_mask;
    uint64_t n_current;
    struct flight *running;

    struct partition *partitions[PARTITION_BUCKETS];
    struct keyslab *slab;
};

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    /* splitmix64's finalizer */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* Identifiers are SHA-384 outputs, but their inputs partly come from callers; a secret seed
 * keeps anyone from steering them into one bucket. */
static uint64_t hash_id(const struct ks_cache *c, const unsigned char id[KS_CACHE_ID_LEN])
{
    uint64_t h = c->seed[0], w;
    size_t i;

    for (i = 0; i < KS_CACHE_ID_LEN; i += 8) {
        memcpy(&w, id + i, 8);
        h = mix64(h ^ w);
    }
    return h;
}

static uint64_t hash_bytes(uint64_t seed, const void *p, size_t len, uint64_t h)
{
    const unsigned char *b = p;
    size_t i;

    h ^= seed;
    for (i = 0; i < len; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return mix64(h);
}

static uint64_t hash_lb(const struct ks_cache *c, const char *l, const char *b)
{
    return hash_bytes(c->seed[1], b, strlen(b) + 1,
                      hash_bytes(c->seed[1], l, strlen(l) + 1, 0xcbf29ce484222325ull));
}

static uint64_t now_us(const struct ks_cache *c)
{
    return c->clock->now_us(c->clock->ctx);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* A NUL-terminated copy of len bytes (checked free of NUL by ks_cache_identifier). */
static char *dup_string(const char *s, size_t len)
{
    char *d = malloc(len + 1);

    if (d) {
        memcpy(d, s, len);
        d[len] = 0;
    }
    return d;
}

/* ---------------------------------------------------------------------------------------- */
/* identifier                                                                               */
/* ---------------------------------------------------------------------------------------- */

ks_status ks_cache_identifier(const struct ks_cache_key *key, unsigned char out[KS_CACHE_ID_LEN],
                              struct ks_error *err)
{
    static const unsigned char nul = 0;
    unsigned char head[4];
    unsigned int len = 0;
    size_t i, l_len, b_len;
    EVP_MD_CTX *md;
    int ok;

    if (!key || key->scope < KS_CACHE_ACTIVE || key->scope > KS_CACHE_BEACON)
        return ks_error_set(err, KS_E_INVALID, "cache identifier: unknown scope");
    if (!key->partition || key->partition_len == 0)
        return ks_error_set(err, KS_E_INVALID, "cache identifier: empty partition");
    /* Fields are only NUL-separated (docs/reference/cache.md section 1, note). A NUL in L or B
     * could make two tuples hash alike; in P it cannot (cache.h), and the MPL's raw UUID partitions
     * need it. */
    l_len = key->logical_name_len;
    b_len = key->branch_key_id_len;
    if (!key->logical_name || l_len == 0 || !key->branch_key_id || b_len == 0)
        return ks_error_set(err, KS_E_INVALID,
                            "cache identifier: empty logical key store name or branch key id");
    if (memchr(key->logical_name, 0, l_len) || memchr(key->branch_key_id, 0, b_len))
        return ks_error_set(err, KS_E_INVALID,
                            "cache identifier: logical key store name or branch key id contains "
                            "NUL");
    if (!ks_utf8_valid(key->logical_name, l_len) || !ks_utf8_valid(key->branch_key_id, b_len))
        return ks_error_set(err, KS_E_INVALID, "cache identifier: name is not valid UTF-8");
    if ((key->scope == KS_CACHE_VERSION) != (key->version != NULL))
        return ks_error_set(err, KS_E_INVALID,
                            "cache identifier: a version goes with the version scope only");
    if (key->version) {
        /* V is the 36-char UUID string, ASCII (docs/reference/cache.md section 1). */
        if (strlen(key->version) != KS_UUID_LEN)
            return ks_error_set(err, KS_E_INVALID, "cache identifier: version is not a UUID");
        for (i = 0; i < KS_UUID_LEN; i++)
            if ((unsigned char)key->version[i] >= 0x80)
                return ks_error_set(err, KS_E_INVALID, "cache identifier: version not ASCII");
    }

    head[0] = RESOURCE_HIERARCHICAL;
    head[1] = 0;
    head[2] = (unsigned char)key->scope;
    head[3] = 0;
    md = EVP_MD_CTX_new();
    if (!md)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    ok = EVP_DigestInit_ex(md, EVP_sha384(), NULL) == 1 &&
         EVP_DigestUpdate(md, head, sizeof(head)) == 1 &&
         EVP_DigestUpdate(md, key->partition, key->partition_len) == 1 &&
         EVP_DigestUpdate(md, &nul, 1) == 1 &&
         EVP_DigestUpdate(md, key->logical_name, l_len) == 1 &&
         EVP_DigestUpdate(md, &nul, 1) == 1 && EVP_DigestUpdate(md, key->branch_key_id, b_len) == 1;
    if (ok && key->version)
        ok = EVP_DigestUpdate(md, &nul, 1) == 1 &&
             EVP_DigestUpdate(md, key->version, KS_UUID_LEN) == 1;
    ok = ok && EVP_DigestFinal_ex(md, out, &len) == 1 && len == KS_CACHE_ID_LEN;
    EVP_MD_CTX_free(md);
    if (!ok)
        return ks_error_set(err, KS_E_INTERNAL, "SHA-384 failed");
    return KS_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* create / destroy                                                                         */
/* ---------------------------------------------------------------------------------------- */

static size_t bucket_count(uint64_t n)
{
    size_t b = 16;

    while (b < n && b < MAX_BUCKETS)
        b <<= 1;
    return b;
}

ks_status ks_cache_create(const struct ks_cache_config *config, const struct ks_clock *clock,
                          struct ks_cache **out, struct ks_error *err)
{
    struct ks_cache *c;
    pthread_condattr_t attr;
    size_t nb, nf;
    int cond_ok = 0;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    c->clock = clock ? clock : ks_clock_system();
    c->capacity = config->capacity;
    c->max_per_partition = config->max_entries_per_partition;
    c->ttl_us = sat_mul(config->ttl_seconds, US_PER_S);
    c->grace_period_us = sat_mul(config->grace_period_seconds, US_PER_S);
    c->grace_interval_us = sat_mul(config->grace_interval_seconds, US_PER_S);
    c->in_flight_ttl_us = sat_mul(config->in_flight_ttl_seconds, US_PER_S);
    c->fan_out = config->fan_out ? config->fan_out : 1;
    nb = bucket_count(c->capacity);
    nf = bucket_count(c->fan_out);
    c->mask = nb - 1;
    c->flight_mask = nf - 1;
    c->buckets = calloc(nb, sizeof(*c->buckets));
    c->lb_buckets = calloc(nb, sizeof(*c->lb_buckets));
    c->flight_buckets = calloc(nf, sizeof(*c->flight_buckets));
    c->slab = slab_create();
    if (pthread_condattr_init(&attr) == 0) {
        /* Timeouts count on the monotonic clock, immune to wall-clock jumps. */
        cond_ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
                  pthread_cond_init(&c->slot_cond, &attr) == 0;
        pthread_condattr_destroy(&attr);
    }
    if (!c->buckets || !c->lb_buckets || !c->flight_buckets || !c->slab || !cond_ok ||
        RAND_bytes((unsigned char *)c->seed, sizeof(c->seed)) != 1 ||
        pthread_mutex_init(&c->lock, NULL) != 0) {
        if (cond_ok)
            pthread_cond_destroy(&c->slot_cond);
        if (c->slab)
            slab_unmap(c->slab);
        free(c->buckets);
        free(c->lb_buckets);
        free(c->flight_buckets);
        free(c);
        return ks_error_set(err, KS_E_INTERNAL, "cannot create the cache");
    }
    *out = c;
    return KS_OK;
}

static void entry_free(struct ks_cache_ref *e)
{
    slab_free(e->slab, e->slot);
    e->materials->key = NULL;
    e->materials->key_len = 0;
    ks_materials_free(e->materials);
    free(e->logical_name);
    free(e->branch_key_id);
    free(e);
}

static void entry_ref(struct ks_cache_ref *e)
{
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
}

static void entry_unref(struct ks_cache_ref *e)
{
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        entry_free(e);
}

enum drop_reason {
    DROP_EVICT,
    DROP_PARTITION_CAP,
    DROP_EXPIRE,
    DROP_INVALIDATE,
    DROP_REPLACE,
    DROP_DESTROY
};

/* The partition's own LRU list (cache lock held): what the per-partition cap evicts from. */
static void plru_unlink(struct partition *p, struct ks_cache_ref *e)
{
    if (e->plru_prev)
        e->plru_prev->plru_next = e->plru_next;
    else
        p->lru_head = e->plru_next;
    if (e->plru_next)
        e->plru_next->plru_prev = e->plru_prev;
    else
        p->lru_tail = e->plru_prev;
    e->plru_prev = e->plru_next = NULL;
}

static void plru_push(struct partition *p, struct ks_cache_ref *e)
{
    e->plru_prev = NULL;
    e->plru_next = p->lru_head;
    if (p->lru_head)
        p->lru_head->plru_prev = e;
    else
        p->lru_tail = e;
    p->lru_head = e;
}

/* Unlinks an indexed entry and drops the cache's reference. Cache lock held. */
static void entry_drop(struct ks_cache *c, struct ks_cache_ref *e, enum drop_reason why)
{
    struct ks_cache_stats *st = &e->partition->stats;

    if (e->hprev)
        e->hprev->hnext = e->hnext;
    else
        c->buckets[e->hash & c->mask] = e->hnext;
    if (e->hnext)
        e->hnext->hprev = e->hprev;
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    if (e->scope == KS_CACHE_ACTIVE) {
        if (e->lbprev)
            e->lbprev->lbnext = e->lbnext;
        else
            c->lb_buckets[e->lb_hash & c->mask] = e->lbnext;
        if (e->lbnext)
            e->lbnext->lbprev = e->lbprev;
    }
    plru_unlink(e->partition, e);
    e->indexed = 0;
    c->n_entries--;
    st->entries--;
    if (why == DROP_EVICT)
        st->evictions++;
    else if (why == DROP_PARTITION_CAP)
        st->partition_evictions++;
    else if (why == DROP_EXPIRE)
        st->expirations++;
    else if (why == DROP_INVALIDATE)
        st->invalidations++;
    entry_unref(e);
}

void ks_cache_destroy(struct ks_cache *cache)
{
    struct partition *p, *next;
    size_t i;

    if (!cache)
        return;
    while (cache->lru_head)
        entry_drop(cache, cache->lru_head, DROP_DESTROY);
    for (i = 0; i < PARTITION_BUCKETS; i++)
        for (p = cache->partitions[i]; p; p = next) {
            next = p->next;
            free(p);
        }
    /* Refs still out keep the slab (and their entries) alive; they no longer point back. */
    pthread_mutex_lock(&cache->slab->lock);
    slab_unref_locked_then_maybe_free(cache->slab);
    pthread_cond_destroy(&cache->slot_cond);
    pthread_mutex_destroy(&cache->lock);
    free(cache->buckets);
    free(cache->lb_buckets);
    free(cache->flight_buckets);
    free(cache);
}

/* ---------------------------------------------------------------------------------------- */
/* tables (cache lock held)                                                                 */
/* ---------------------------------------------------------------------------------------- */

static struct partition *partition_get(struct ks_cache *c, const unsigned char *bytes, size_t len)
{
    uint64_t h = hash_bytes(c->seed[1], bytes, len, 0xcbf29ce484222325ull);
    struct partition **head = &c->partitions[h % PARTITION_BUCKETS], *p;

    for (p = *head; p; p = p->next)
        if (p->hash == h && p->len == len && memcmp(p->bytes, bytes, len) == 0)
            return p;
    p = calloc(1, sizeof(*p) + len);
    if (!p)
        return NULL;
    p->hash = h;
    p->len = len;
    memcpy(p->bytes, bytes, len);
    p->next = *head;
    *head = p;
    return p;
}

static struct partition *partition_find(struct ks_cache *c, const unsigned char *bytes, size_t len)
{
    uint64_t h = hash_bytes(c->seed[1], bytes, len, 0xcbf29ce484222325ull);
    struct partition *p;

    for (p = c->partitions[h % PARTITION_BUCKETS]; p; p = p->next)
        if (p->hash == h && p->len == len && memcmp(p->bytes, bytes, len) == 0)
            return p;
    return NULL;
}

static struct ks_cache_ref *entry_find(struct ks_cache *c, const unsigned char *id, uint64_t h)
{
    struct ks_cache_ref *e;

    for (e = c->buckets[h & c->mask]; e; e = e->hnext)
        if (e->hash == h && memcmp(e->id, id, KS_CACHE_ID_LEN) == 0)
            return e;
    return NULL;
}

static void lru_touch(struct ks_cache *c, struct ks_cache_ref *e)
{
    if (e->partition->lru_head != e) {
        plru_unlink(e->partition, e);
        plru_push(e->partition, e);
    }
    if (c->lru_head == e)
        return;
    e->lru_prev->lru_next = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    c->lru_head->lru_prev = e;
    c->lru_head = e;
}

/* Indexes e (built by a flight, not yet indexed), replacing an entry with the same identifier
 * and evicting the least recently used one at capacity (LocalCMC put). Takes a reference. */
static void entry_insert(struct ks_cache *c, struct ks_cache_ref *e)
{
    struct ks_cache_ref *old = entry_find(c, e->id, e->hash), **head;

    if (old)
        entry_drop(c, old, DROP_REPLACE);
    /* The partition's own cap first: a busy tenant at its cap replaces its own least recently
     * used entry, so the global LRU below only evicts when the whole cache is full. */
    while (c->max_per_partition && e->partition->stats.entries >= c->max_per_partition &&
           e->partition->lru_tail)
        entry_drop(c, e->partition->lru_tail, DROP_PARTITION_CAP);
    while (c->n_entries >= c->capacity && c->lru_tail)
        entry_drop(c, c->lru_tail, DROP_EVICT);
    entry_ref(e);
    e->indexed = 1;
    head = &c->buckets[e->hash & c->mask];
    e->hprev = NULL;
    e->hnext = *head;
    if (*head)
        (*head)->hprev = e;
    *head = e;
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = e;
    else
        c->lru_tail = e;
    c->lru_head = e;
    if (e->scope == KS_CACHE_ACTIVE) {
        head = &c->lb_buckets[e->lb_hash & c->mask];
        e->lbprev = NULL;
        e->lbnext = *head;
        if (*head)
            (*head)->lbprev = e;
        *head = e;
    }
    plru_push(e->partition, e);
    c->n_entries++;
    e->partition->stats.entries++;
}

static struct flight *flight_find(struct ks_cache *c, const unsigned char *id, uint64_t h)
{
    struct flight *f;

    for (f = c->flight_buckets[h & c->flight_mask]; f; f = f->hnext)
        if (f->hash == h && memcmp(f->id, id, KS_CACHE_ID_LEN) == 0)
            return f;
    return NULL;
}

/* Removes f's in-flight mark: it stops counting against fan_out and stops being the flight
 * that callers of its identifier wait on. Its waiters are woken to look again. */
static void flight_supersede(struct ks_cache *c, struct flight *f)
{
    if (!f->current)
        return;
    if (f->hprev)
        f->hprev->hnext = f->hnext;
    else
        c->flight_buckets[f->hash & c->flight_mask] = f->hnext;
    if (f->hnext)
        f->hnext->hprev = f->hprev;
    f->hprev = f->hnext = NULL;
    f->current = 0;
    c->n_current--;
    pthread_cond_broadcast(&f->cond);
    if (c->slot_waiters)
        pthread_cond_broadcast(&c->slot_cond);
}

static void flight_put(struct flight *f)
{
    if (--f->refs > 0)
        return;
    if (f->result)
        entry_unref(f->result);
    pthread_cond_destroy(&f->cond);
    free(f->logical_name);
    free(f->branch_key_id);
    free(f);
}

/*
 * 1 when a new fetch may start: fewer than fan_out identifiers marked in flight. When the cap is
 * reached, marks older than in_flight_ttl are pruned first (MPL StormTracker; the MPL prunes at
 * most once a second, here the scan is bounded by the number of fetches running).
 */
static int fan_out_room(struct ks_cache *c, uint64_t now)
{
    struct flight *f, *next;

    if (c->n_current < c->fan_out)
        return 1;
    for (f = c->running; f; f = next) {
        next = f->all_next;
        if (f->current && now - f->marked_us >= c->in_flight_ttl_us && now >= f->marked_us)
            flight_supersede(c, f);
    }
    return c->n_current < c->fan_out;
}

/* The earliest time a current mark becomes prunable (for a waiter blocked by fan_out). */
static uint64_t next_prune_us(const struct ks_cache *c)
{
    uint64_t t = UINT64_MAX;
    const struct flight *f;

    for (f = c->running; f; f = f->all_next)
        if (f->current && sat_add(f->marked_us, c->in_flight_ttl_us) < t)
            t = sat_add(f->marked_us, c->in_flight_ttl_us);
    return t;
}

/* Starts a flight for key, marked now, held once by the caller. NULL on OOM. */
static struct flight *flight_start(struct ks_cache *c, const struct ks_cache_key *key,
                                   const unsigned char *id, uint64_t h, struct partition *p,
                                   uint64_t now)
{
    struct flight *f = calloc(1, sizeof(*f)), **head;
    pthread_condattr_t attr;
    int ok = 0;

    if (!f)
        return NULL;
    if (key->scope == KS_CACHE_ACTIVE) {
        f->logical_name = dup_string(key->logical_name, key->logical_name_len);
        f->branch_key_id = dup_string(key->branch_key_id, key->branch_key_id_len);
        if (!f->logical_name || !f->branch_key_id)
            goto fail;
    }
    if (pthread_condattr_init(&attr) != 0)
        goto fail;
    ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
         pthread_cond_init(&f->cond, &attr) == 0;
    pthread_condattr_destroy(&attr);
    if (!ok)
        goto fail;
    memcpy(f->id, id, KS_CACHE_ID_LEN);
    f->hash = h;
    f->partition = p;
    f->scope = key->scope;
    f->marked_us = now;
    f->refs = 1;
    f->current = 1;
    f->running = 1;
    head = &c->flight_buckets[h & c->flight_mask];
    f->hnext = *head;
    if (*head)
        (*head)->hprev = f;
    *head = f;
    f->all_next = c->running;
    if (c->running)
        c->running->all_prev = f;
    c->running = f;
    c->n_current++;
    p->stats.in_flight++;
    return f;
fail:
    free(f->logical_name);
    free(f->branch_key_id);
    free(f);
    return NULL;
}

/* Builds an unindexed entry (one reference, for the flight) from fetched materials, moving the
 * key into the slab. Runs unlocked. Takes ownership of m in every case. */
static ks_status entry_build(struct ks_cache *c, struct flight *f, struct ks_materials *m,
                             uint64_t now, struct ks_cache_ref **out, struct ks_error *err)
{
    struct ks_cache_ref *e;

    *out = NULL;
    if (!m || !m->key || m->key_len == 0 || m->key_len > SLOT_SIZE) {
        ks_materials_free(m);
        return ks_error_set(err, KS_E_INTERNAL, "cache: fetch returned no usable key");
    }
    e = calloc(1, sizeof(*e));
    if (!e || !(e->slot = slab_alloc(c->slab))) {
        free(e);
        ks_materials_free(m);
        return ks_error_set(err, KS_E_INTERNAL, "cache: out of memory");
    }
    memcpy(e->slot, m->key, m->key_len);
    ks_secret_free(m->key, m->key_len);
    m->key = e->slot;
    e->materials = m;
    e->slab = c->slab;
    atomic_init(&e->refs, 1);
    memcpy(e->id, f->id, KS_CACHE_ID_LEN);
    e->hash = f->hash;
    e->scope = f->scope;
    e->partition = f->partition;
    /* section 5: expiry = now + ttl, guarded against overflow. */
    e->expiry_us = sat_add(now, c->ttl_us);
    *out = e;
    return KS_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* get                                                                                      */
/* ---------------------------------------------------------------------------------------- */

static int entry_valid(const struct ks_cache_ref *e, uint64_t now)
{
    return now <= e->expiry_us; /* section 5: valid while now <= expiryTime */
}

static int in_grace(const struct ks_cache *c, const struct ks_cache_ref *e, uint64_t now)
{
    return sat_add(now, c->grace_period_us) >= e->expiry_us;
}

/* Condition-variable wait until woken or until the clock reaches event_us (approximately: the
 * remaining time on the injected clock is waited on the monotonic clock). */
static void wait_until(struct ks_cache *c, pthread_cond_t *cond, uint64_t now, uint64_t event_us)
{
    uint64_t wait = event_us > now ? event_us - now : 0;
    struct timespec ts;

    if (wait < MIN_WAIT_US)
        wait = MIN_WAIT_US;
    if (wait > c->in_flight_ttl_us && c->in_flight_ttl_us >= MIN_WAIT_US)
        wait = c->in_flight_ttl_us;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(wait / US_PER_S);
    ts.tv_nsec += (long)(wait % US_PER_S) * 1000;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    (void)pthread_cond_timedwait(cond, &c->lock, &ts);
}

/* Hands a finished flight's outcome to a caller. Cache lock held. */
static ks_status flight_outcome(struct flight *f, struct ks_cache_ref **out, struct ks_error *err)
{
    if (f->status == KS_OK) {
        entry_ref(f->result);
        *out = f->result;
        return KS_OK;
    }
    if (err)
        *err = f->error;
    return f->status;
}

/* Runs the fetch of flight f (held by the caller, lock held on entry and on return) and
 * finishes it: caches the result unless invalidated, wakes its waiters. */
static void flight_run(struct ks_cache *c, struct flight *f, ks_cache_fetch_fn fetch, void *ctx)
{
    struct ks_materials *m = NULL;
    struct ks_cache_ref *e = NULL;
    struct ks_error ferr;
    ks_status st;

    pthread_mutex_unlock(&c->lock);
    ks_error_clear(&ferr);
    st = fetch(ctx, &m, &ferr);
    if (st == KS_OK)
        st = entry_build(c, f, m, now_us(c), &e, &ferr);
    else if (ferr.code == KS_OK)
        ks_error_set(&ferr, st, "%s", ks_strerror(st));
    pthread_mutex_lock(&c->lock);

    flight_supersede(c, f); /* Put/failure clears the mark (MPL) */
    if (f->all_prev)
        f->all_prev->all_next = f->all_next;
    else
        c->running = f->all_next;
    if (f->all_next)
        f->all_next->all_prev = f->all_prev;
    f->running = 0;
    f->partition->stats.in_flight--;
    f->done = 1;
    f->status = st;
    if (st == KS_OK) {
        if (f->scope == KS_CACHE_ACTIVE) {
            e->logical_name = f->logical_name;
            e->branch_key_id = f->branch_key_id;
            e->lb_hash = hash_lb(c, e->logical_name, e->branch_key_id);
            f->logical_name = f->branch_key_id = NULL;
        }
        f->result = e;
        if (!f->no_insert && c->capacity > 0)
            entry_insert(c, e);
    } else {
        f->error = ferr;
        f->error.code = st;
        f->partition->stats.fetch_errors++;
    }
    pthread_cond_broadcast(&f->cond);
    if (c->slot_waiters)
        pthread_cond_broadcast(&c->slot_cond);
}

/* One ks_cache_get call: what it looks up and what it has done so far. */
struct get_call {
    struct ks_cache *c;
    const struct ks_cache_key *key;
    unsigned char id[KS_CACHE_ID_LEN];
    uint64_t h;
    struct partition *p;
    uint64_t start;
    struct flight *waited; /* the flight this call waits on (one reference held), or NULL */
    int missed, waiting_counted;
};

/* What one look at the tables decided. */
enum get_next {
    GET_DONE,    /* answered (hit, a waited-on flight's outcome, or a timeout) */
    GET_FETCH,   /* fetch: a miss, or the MPL's second fetch */
    GET_REFRESH, /* fetch: a grace-period refresh of a still-valid entry */
    GET_WAIT     /* wait for a fetch in flight or for room under fan_out, then look again */
};

/* Ends a call: drops the flight it waited on, if any, and the cache lock. */
static void get_finish(struct get_call *g)
{
    if (g->waited)
        flight_put(g->waited);
    g->waited = NULL;
    pthread_mutex_unlock(&g->c->lock);
}

/* Hands entry e to the caller as a new reference. Cache lock held. */
static ks_status serve_entry(struct ks_cache *c, struct ks_cache_ref *e, struct ks_cache_ref **out)
{
    lru_touch(c, e);
    entry_ref(e);
    *out = e;
    return KS_OK;
}

/* A valid entry in its grace period: one caller per grace interval refreshes (MPL
 * CheckNewEntry) if fan-out allows; a waiter never does (it asked for the fetch's result). */
static int should_refresh(struct get_call *g, struct ks_cache_ref *e, int stale, uint64_t now)
{
    struct ks_cache *c = g->c;

    return !g->waited && in_grace(c, e, now) && stale &&
           (!e->refresh_mark_us || now - e->refresh_mark_us >= c->grace_interval_us ||
            now < e->refresh_mark_us) &&
           fan_out_room(c, now);
}

/* Validates key and takes the cache lock; on failure the lock is not held. */
static ks_status get_begin(struct get_call *g, struct ks_cache *cache,
                           const struct ks_cache_key *key, struct ks_error *err)
{
    ks_status st;

    memset(g, 0, sizeof(*g));
    g->c = cache;
    g->key = key;
    st = ks_cache_identifier(key, g->id, err);
    if (st != KS_OK)
        return st;
    g->h = hash_id(cache, g->id);
    pthread_mutex_lock(&cache->lock);
    g->p = partition_get(cache, key->partition, key->partition_len);
    if (!g->p) {
        pthread_mutex_unlock(&cache->lock);
        return ks_error_set(err, KS_E_INTERNAL, "cache: out of memory");
    }
    g->start = now_us(cache);
    /* LocalCMC: each get prunes an expired LRU tail entry (entryPruningTailSize 1). */
    if (cache->lru_tail && !entry_valid(cache->lru_tail, g->start))
        entry_drop(cache, cache->lru_tail, DROP_EXPIRE);
    return KS_OK;
}

/*
 * One look at the tables (lock held): answers from a valid entry or from the flight this call
 * waited on (GET_DONE with *st), or says to fetch, refresh or wait. *fp is the identifier's
 * current flight and *stale whether another fetch may start beside it.
 */
static enum get_next get_look(struct get_call *g, uint64_t now, struct flight **fp, int *stale,
                              struct ks_cache_ref **out, ks_status *st, struct ks_error *err)
{
    struct ks_cache *c = g->c;
    struct ks_cache_ref *e;

    /* A waiter gets the outcome of the fetch it waited on, error included. */
    if (g->waited && g->waited->done) {
        *st = flight_outcome(g->waited, out, err);
        return GET_DONE;
    }
    e = entry_find(c, g->id, g->h);
    if (e && !entry_valid(e, now)) {
        entry_drop(c, e, DROP_EXPIRE);
        e = NULL;
    }
    *fp = flight_find(c, g->id, g->h);
    *stale = !*fp || now < (*fp)->marked_us || now - (*fp)->marked_us >= c->grace_interval_us;
    if (e) {
        if (should_refresh(g, e, *stale, now)) {
            e->refresh_mark_us = now;
            g->p->stats.refreshes++;
            return GET_REFRESH;
        }
        if (!g->waited)
            g->p->stats.hits++;
        *st = serve_entry(c, e, out);
        return GET_DONE;
    }
    if (!g->missed) {
        g->p->stats.misses++;
        g->missed = 1;
    }
    /* Miss: fetch if the identifier is not in flight, or was marked grace_interval ago or more
     * (the MPL's second fetch), and fan_out allows (MPL CheckInFlight). */
    if (*stale && fan_out_room(c, now))
        return GET_FETCH;
    if (now - g->start >= c->in_flight_ttl_us && now >= g->start) {
        g->p->stats.wait_timeouts++;
        *st = ks_error_set(err, KS_E_UNAVAILABLE,
                           "InFlightTTLExceeded: waited too long for the branch key materials "
                           "being fetched by another request");
        return GET_DONE;
    }
    return GET_WAIT;
}

/* Waits (lock held) on flight f of this identifier, or for room under fan_out when f may be
 * joined by another fetch (stale), until woken or the next deadline. */
static void get_wait(struct get_call *g, struct flight *f, int stale, uint64_t now)
{
    struct ks_cache *c = g->c;
    uint64_t event = sat_add(g->start, c->in_flight_ttl_us);

    if (!g->waiting_counted) {
        g->p->stats.waits++;
        g->waiting_counted = 1;
    }
    if (f && f != g->waited) {
        if (g->waited)
            flight_put(g->waited);
        f->refs++;
        g->waited = f;
    }
    if (!stale) {
        if (sat_add(f->marked_us, c->grace_interval_us) < event)
            event = sat_add(f->marked_us, c->grace_interval_us);
        wait_until(c, &f->cond, now, event);
    } else {
        /* Blocked by fan_out: woken when any fetch ends or a mark is pruned. */
        if (next_prune_us(c) < event)
            event = next_prune_us(c);
        c->slot_waiters++;
        wait_until(c, &c->slot_cond, now, event);
        c->slot_waiters--;
    }
}

/* This caller fetches (lock held): a miss, a second fetch (superseding the current flight f),
 * or a grace-period refresh; the new flight is marked at now, when the decision was made. */
static ks_status get_fetch(struct get_call *g, struct flight *f, int refresh, uint64_t now,
                           ks_cache_fetch_fn fetch, void *fetch_ctx, struct ks_cache_ref **out,
                           struct ks_error *err)
{
    struct ks_cache *c = g->c;
    struct ks_cache_ref *e;
    ks_status st;

    if (f)
        flight_supersede(c, f);
    if (g->waited) {
        flight_put(g->waited);
        g->waited = NULL;
    }
    f = flight_start(c, g->key, g->id, g->h, g->p, now);
    if (!f)
        return ks_error_set(err, KS_E_INTERNAL, "cache: out of memory");
    flight_run(c, f, fetch, fetch_ctx);
    if (refresh && f->status != KS_OK) {
        /* A failed refresh: the entry is still within its TTL, which is the MPL's own bound for
         * serving it, so keep serving it; the next refresh waits a grace interval. */
        e = entry_find(c, g->id, g->h);
        if (e && entry_valid(e, now_us(c))) {
            flight_put(f);
            return serve_entry(c, e, out);
        }
    }
    st = flight_outcome(f, out, err);
    flight_put(f);
    return st;
}

ks_status ks_cache_get(struct ks_cache *cache, const struct ks_cache_key *key,
                       ks_cache_fetch_fn fetch, void *fetch_ctx, struct ks_cache_ref **out,
                       struct ks_error *err)
{
    struct get_call g;
    struct flight *f = NULL;
    enum get_next next;
    uint64_t now;
    int stale = 0;
    ks_status st = KS_OK;

    *out = NULL;
    if (!fetch)
        return ks_error_set(err, KS_E_INVALID, "cache: no fetch callback");
    st = get_begin(&g, cache, key, err);
    if (st != KS_OK)
        return st;
    for (;;) {
        now = now_us(cache);
        next = get_look(&g, now, &f, &stale, out, &st, err);
        if (next != GET_WAIT)
            break;
        get_wait(&g, f, stale, now);
    }
    if (next != GET_DONE)
        st = get_fetch(&g, f, next == GET_REFRESH, now, fetch, fetch_ctx, out, err);
    get_finish(&g);
    return st;
}

const struct ks_materials *ks_cache_ref_materials(const struct ks_cache_ref *ref)
{
    return ref->materials;
}

void ks_cache_release(struct ks_cache_ref *ref)
{
    if (ref)
        entry_unref(ref);
}

const unsigned char *ks_cache_debug_key_slot(const struct ks_cache_ref *ref)
{
    return ref->slot;
}

/* ---------------------------------------------------------------------------------------- */
/* invalidation, wake-up, stats                                                             */
/* ---------------------------------------------------------------------------------------- */

size_t ks_cache_invalidate_active(struct ks_cache *cache, const char *logical_name,
                                  const char *branch_key_id)
{
    struct ks_cache_ref *e, *next;
    struct flight *f;
    uint64_t h;
    size_t n = 0;

    if (!logical_name || !branch_key_id)
        return 0;
    h = hash_lb(cache, logical_name, branch_key_id);
    pthread_mutex_lock(&cache->lock);
    for (e = cache->lb_buckets[h & cache->mask]; e; e = next) {
        next = e->lbnext;
        if (e->lb_hash == h && strcmp(e->logical_name, logical_name) == 0 &&
            strcmp(e->branch_key_id, branch_key_id) == 0) {
            entry_drop(cache, e, DROP_INVALIDATE);
            n++;
        }
    }
    /* A fetch that started before the write may return the old ACTIVE version: its waiters
     * get it, the cache does not keep it. */
    for (f = cache->running; f; f = f->all_next)
        if (f->scope == KS_CACHE_ACTIVE && strcmp(f->logical_name, logical_name) == 0 &&
            strcmp(f->branch_key_id, branch_key_id) == 0)
            f->no_insert = 1;
    pthread_mutex_unlock(&cache->lock);
    return n;
}

size_t ks_cache_invalidate_branch_key(struct ks_cache *cache, const char *logical_name,
                                      const char *branch_key_id)
{
    struct ks_cache_ref *e, *next;
    struct flight *f;
    size_t n;

    if (!logical_name || !branch_key_id)
        return 0;
    n = ks_cache_invalidate_active(cache, logical_name, branch_key_id);
    /* Version and beacon entries keep only their identifier digest: match them by the branch
     * key id of their materials (the same id in another logical key store is dropped too,
     * which costs one refetch and is never wrong). */
    pthread_mutex_lock(&cache->lock);
    for (e = cache->lru_head; e; e = next) {
        next = e->lru_next;
        if (e->scope != KS_CACHE_ACTIVE && e->materials && e->materials->branch_key_id &&
            strcmp(e->materials->branch_key_id, branch_key_id) == 0) {
            entry_drop(cache, e, DROP_INVALIDATE);
            n++;
        }
    }
    for (f = cache->running; f; f = f->all_next)
        if (f->scope != KS_CACHE_ACTIVE)
            f->no_insert = 1;
    pthread_mutex_unlock(&cache->lock);
    return n;
}

void ks_cache_wake_all(struct ks_cache *cache)
{
    struct flight *f;

    pthread_mutex_lock(&cache->lock);
    for (f = cache->running; f; f = f->all_next)
        pthread_cond_broadcast(&f->cond);
    pthread_cond_broadcast(&cache->slot_cond);
    pthread_mutex_unlock(&cache->lock);
}

void ks_cache_stats_foreach(struct ks_cache *cache,
                            void (*fn)(void *ctx, const unsigned char *partition,
                                       size_t partition_len, const struct ks_cache_stats *stats),
                            void *ctx)
{
    struct partition *p;
    struct ks_cache_stats snapshot;
    size_t i;

    pthread_mutex_lock(&cache->lock);
    for (i = 0; i < PARTITION_BUCKETS; i++)
        for (p = cache->partitions[i]; p; p = p->next) {
            snapshot = p->stats;
            fn(ctx, p->bytes, p->len, &snapshot);
        }
    pthread_mutex_unlock(&cache->lock);
}

int ks_cache_stats_partition(struct ks_cache *cache, const unsigned char *partition,
                             size_t partition_len, struct ks_cache_stats *out)
{
    struct partition *p;

    pthread_mutex_lock(&cache->lock);
    p = partition_find(cache, partition, partition_len);
    if (p)
        *out = p->stats;
    else
        memset(out, 0, sizeof(*out));
    pthread_mutex_unlock(&cache->lock);
    return p != NULL;
}
