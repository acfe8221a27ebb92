/*
 * test_cache.c - the shared branch key cache (keystore/cache.h) against docs/reference/cache.md:
 * the identifier bytes of the worked examples (section 1), partitions as trust boundaries (section
 * 7), TTL (section 5), LRU eviction, refcounted entries whose keys are wiped on the last release
 * and live in dump-excluded pages, storm tracking (section 4: single flight, failed fetches,
 * grace-period refresh, second fetch after the grace interval, fan-out and in-flight TTL),
 * VersionKey invalidation and the per-partition counters.
 *
 * Time comes from an injected clock; no test sleeps. A fetch callback can be held open on a
 * condition variable; where a test must know that other threads are blocked inside the cache it
 * watches the cache's own counters (which are updated in the same critical section in which a
 * caller starts waiting), yielding the CPU between looks.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ec.h"
#include "common/secret.h"
#include "common/util.h"
#include "keystore/cache.h"
#include "keystore/keystore.h"
#include "keystore/testing.h"

#define L "keystore-prod"
#define B "mtpk-tenant-42"
#define V "5f3c1d2e-9a8b-4c7d-8e6f-0a1b2c3d4e5f"
#define T0 1700000000000000ull
#define S 1000000ull

/* --- clock ------------------------------------------------------------------------------- */

static _Atomic uint64_t test_now;

static uint64_t clock_now(void *ctx)
{
    (void)ctx;
    return atomic_load(&test_now);
}

static const struct ks_clock test_clock = {clock_now, NULL};

static void set_time(uint64_t t)
{
    atomic_store(&test_now, t);
}

/* --- fetcher ----------------------------------------------------------------------------- */

struct fetcher {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls;      /* fetch calls started */
    int block_mask; /* bit i set: call i blocks until released */
    int released;   /* bit i set: call i may return */
    ks_status fail; /* non-OK: every call fails with it */
    int bad_key;    /* return materials with no key */
    const char *id; /* branch key id put into materials */
};

static void fetcher_init(struct fetcher *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->id = B;
}

static void fetcher_fini(struct fetcher *f)
{
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
}

static struct ks_materials *make_materials(const char *id, unsigned char fill)
{
    struct ks_materials *m = calloc(1, sizeof(*m));

    cr_assert_not_null(m);
    ks_ec_init(&m->encryption_context);
    m->branch_key_id = strdup(id);
    m->version = strdup(V);
    m->key = ks_secret_alloc(32);
    cr_assert(m->branch_key_id && m->version && m->key);
    m->key_len = 32;
    memset(m->key, fill, 32);
    m->hierarchy_version = 1;
    return m;
}

/* Key bytes are 0x40 + the call index, so each result tells which call produced it. */
static ks_status fetch_cb(void *ctx, struct ks_materials **out, struct ks_error *err)
{
    struct fetcher *f = ctx;
    int idx;

    pthread_mutex_lock(&f->lock);
    idx = f->calls++;
    pthread_cond_broadcast(&f->cond);
    while (idx < 30 && (f->block_mask & (1 << idx)) && !(f->released & (1 << idx)))
        pthread_cond_wait(&f->cond, &f->lock);
    pthread_mutex_unlock(&f->lock);
    if (f->fail != KS_OK)
        return ks_error_set(err, f->fail, "fetch %d failed", idx);
    *out = make_materials(f->id, (unsigned char)(0x40 + idx));
    if (f->bad_key) {
        ks_secret_free((*out)->key, 32);
        (*out)->key = NULL;
        (*out)->key_len = 0;
    }
    return KS_OK;
}

static void wait_calls(struct fetcher *f, int n)
{
    pthread_mutex_lock(&f->lock);
    while (f->calls < n)
        pthread_cond_wait(&f->cond, &f->lock);
    pthread_mutex_unlock(&f->lock);
}

static void release_call(struct fetcher *f, int idx)
{
    pthread_mutex_lock(&f->lock);
    f->released |= 1 << idx;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

static int calls(struct fetcher *f)
{
    int n;

    pthread_mutex_lock(&f->lock);
    n = f->calls;
    pthread_mutex_unlock(&f->lock);
    return n;
}

/* --- cache helpers ----------------------------------------------------------------------- */

static struct ks_cache_config config(uint64_t capacity)
{
    struct ks_cache_config c = {capacity, 100, 10, 1, 20, 10, 0};
    return c;
}

static struct ks_cache *new_cache(struct ks_cache_config c)
{
    struct ks_cache *cache = NULL;
    struct ks_error err;

    cr_assert_eq(ks_cache_create(&c, &test_clock, &cache, &err), KS_OK, "%s", err.message);
    return cache;
}

static struct ks_cache_key key_of(enum ks_cache_scope scope, const char *partition, const char *bk,
                                  const char *version)
{
    struct ks_cache_key k = {
        scope,  (const unsigned char *)partition, strlen(partition), L, strlen(L), bk, strlen(bk),
        version};
    return k;
}

static struct ks_cache_key active(const char *partition, const char *bk)
{
    return key_of(KS_CACHE_ACTIVE, partition, bk, NULL);
}

static struct ks_cache_ref *get_ok(struct ks_cache *c, struct ks_cache_key k, struct fetcher *f)
{
    struct ks_cache_ref *ref = NULL;
    struct ks_error err;

    cr_assert_eq(ks_cache_get(c, &k, fetch_cb, f, &ref, &err), KS_OK, "%s", err.message);
    cr_assert_not_null(ref);
    return ref;
}

static unsigned char key_byte(const struct ks_cache_ref *ref)
{
    return ks_cache_ref_materials(ref)->key[0];
}

static struct ks_cache_stats stats(struct ks_cache *c, const char *partition)
{
    struct ks_cache_stats s;

    ks_cache_stats_partition(c, (const unsigned char *)partition, strlen(partition), &s);
    return s;
}

/* Waits (yielding) until the partition's waits counter reaches n: the waiters counted are then
 * blocked in the cache, since the counter moves in the critical section that starts the wait. */
static void wait_waits(struct ks_cache *c, const char *partition, uint64_t n)
{
    uint64_t deadline = ks_monotonic_us() + 20 * S;

    while (stats(c, partition).waits < n) {
        cr_assert(ks_monotonic_us() < deadline, "waiters never blocked");
        sched_yield();
    }
}

static int all_zero(const unsigned char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void hex_of(const unsigned char *id, char out[2 * KS_CACHE_ID_LEN + 1])
{
    ks_hex_encode(id, KS_CACHE_ID_LEN, out);
}

/* --- threads ----------------------------------------------------------------------------- */

struct getter {
    pthread_t thread;
    struct ks_cache *cache;
    struct ks_cache_key key;
    struct fetcher *fetcher;
    pthread_barrier_t *barrier;
    ks_status status;
    struct ks_error err;
    struct ks_cache_ref *ref;
};

static void *getter_main(void *arg)
{
    struct getter *g = arg;

    if (g->barrier)
        pthread_barrier_wait(g->barrier);
    g->status = ks_cache_get(g->cache, &g->key, fetch_cb, g->fetcher, &g->ref, &g->err);
    return NULL;
}

static void start_getter(struct getter *g, struct ks_cache *c, struct ks_cache_key k,
                         struct fetcher *f)
{
    memset(g, 0, sizeof(*g));
    g->cache = c;
    g->key = k;
    g->fetcher = f;
    cr_assert_eq(pthread_create(&g->thread, NULL, getter_main, g), 0);
}

static void join_getter(struct getter *g)
{
    cr_assert_eq(pthread_join(g->thread, NULL), 0);
}

static void setup(void)
{
    set_time(T0);
}

TestSuite(cache, .init = setup, .timeout = 60);

/* --- identifiers (section 1) ------------------------------------------------------------- */

Test(cache, identifier_e1_active)
{
    struct ks_cache_key k = key_of(KS_CACHE_ACTIVE, "tenant-a", B, NULL);
    unsigned char id[KS_CACHE_ID_LEN];
    char hex[2 * KS_CACHE_ID_LEN + 1];
    struct ks_error err;

    cr_assert_eq(ks_cache_identifier(&k, id, &err), KS_OK, "%s", err.message);
    hex_of(id, hex);
    cr_assert_str_eq(hex, "74042399bd619b6b7077ae0452b6694c46cf8569d2d58a664d28fd3d422f9e58f9e1627"
                          "894f49a44a0f3c575379c6a82");
}

Test(cache, identifier_d1_version)
{
    struct ks_cache_key k = key_of(KS_CACHE_VERSION, "tenant-a", B, V);
    unsigned char id[KS_CACHE_ID_LEN];
    char hex[2 * KS_CACHE_ID_LEN + 1];
    struct ks_error err;

    cr_assert_eq(ks_cache_identifier(&k, id, &err), KS_OK, "%s", err.message);
    hex_of(id, hex);
    cr_assert_str_eq(hex, "9ad26168f6bff8e115e82d035642f0e4204002e722af8e92e492f1d20761a24f79d9107"
                          "5edfb761397b79729a33e71bc");
}

Test(cache, identifier_e2_raw_uuid_partition)
{
    static const unsigned char uuid[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                           0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    struct ks_cache_key k = {KS_CACHE_ACTIVE, uuid, sizeof uuid, L, strlen(L), B, strlen(B), NULL};
    unsigned char id[KS_CACHE_ID_LEN];
    char hex[2 * KS_CACHE_ID_LEN + 1];
    struct ks_error err;

    /* The MPL's default partition: raw UUID bytes, here starting with 0x00 (allowed in P). */
    cr_assert_eq(ks_cache_identifier(&k, id, &err), KS_OK, "%s", err.message);
    hex_of(id, hex);
    cr_assert_str_eq(hex, "d06fff6d0f00e53fa47da122809579d1baf0a3575d17da6572c5246ba7eafdc92a9bbfa"
                          "83fd93c90c9a59875409c21ec");
}

Test(cache, identifier_scopes_and_partitions_differ)
{
    struct ks_cache_key keys[] = {
        key_of(KS_CACHE_ACTIVE, "tenant-a", B, NULL), key_of(KS_CACHE_ACTIVE, "tenant-b", B, NULL),
        key_of(KS_CACHE_BEACON, "tenant-a", B, NULL), key_of(KS_CACHE_VERSION, "tenant-a", B, V),
        key_of(KS_CACHE_ACTIVE, "tenant-a", "other", NULL)};
    unsigned char ids[5][KS_CACHE_ID_LEN];
    struct ks_error err;
    size_t i, j;

    for (i = 0; i < 5; i++)
        cr_assert_eq(ks_cache_identifier(&keys[i], ids[i], &err), KS_OK, "%s", err.message);
    for (i = 0; i < 5; i++)
        for (j = i + 1; j < 5; j++)
            cr_assert_neq(memcmp(ids[i], ids[j], KS_CACHE_ID_LEN), 0, "%zu == %zu", i, j);
}

Test(cache, identifier_refuses_bad_input)
{
    unsigned char id[KS_CACHE_ID_LEN];
    struct ks_error err;
    struct ks_cache_key k;

    /* NUL inside B or L: "mtpk\0x" must not become "mtpk" (or collide with another tuple). */
    k = key_of(KS_CACHE_ACTIVE, "tenant-a", "mtpk", NULL);
    k.branch_key_id = "mtpk\0x";
    k.branch_key_id_len = 6;
    cr_assert_eq(ks_cache_identifier(&k, id, &err), KS_E_INVALID);
    cr_assert(strstr(err.message, "NUL"), "%s", err.message);
    k = key_of(KS_CACHE_ACTIVE, "tenant-a", B, NULL);
    k.logical_name = "keystore\0prod";
    k.logical_name_len = 13;
    cr_assert_eq(ks_cache_identifier(&k, id, &err), KS_E_INVALID);
    cr_assert(strstr(err.message, "NUL"), "%s", err.message);

    k = key_of(KS_CACHE_ACTIVE, "", B, NULL);
    cr_assert_eq(ks_cache_identifier(&k, id, &err), KS_E_INVALID);
    k = key_of(KS_CACHE_ACTIVE, "tenant-a", "", NULL);
    cr_assert_eq(ks_cache_identifier(&k, id, &err), KS_E_INVALID);
    k = key_of(KS_CACHE_ACTIVE, "tenant-a", B, V);
    cr_assert_eq(ks_cache_identifier(&k, id, &err), KS_E_INVALID);
    k = key_of(KS_CACHE_VERSION, "tenant-a", B, NULL);
    cr_assert_eq(ks_cache_identifier(&k, id, &err), KS_E_INVALID);
    k = key_of(KS_CACHE_VERSION, "tenant-a", B, "5f3c1d2e");
    cr_assert_eq(ks_cache_identifier(&k, id, &err), KS_E_INVALID);
    k = key_of(KS_CACHE_ACTIVE, "tenant-a", "bad\xff", NULL);
    cr_assert_eq(ks_cache_identifier(&k, id, &err), KS_E_INVALID);
    k = key_of(KS_CACHE_ACTIVE, "tenant-a", B, NULL);
    k.scope = (enum ks_cache_scope)4;
    cr_assert_eq(ks_cache_identifier(&k, id, &err), KS_E_INVALID);
    k = key_of(KS_CACHE_ACTIVE, "tenant-a", B, NULL);
    k.logical_name = NULL;
    cr_assert_eq(ks_cache_identifier(&k, id, &err), KS_E_INVALID);
}

Test(cache, get_refuses_bad_key_without_fetching)
{
    struct ks_cache *c = new_cache(config(10));
    struct ks_cache_key k = key_of(KS_CACHE_ACTIVE, "tenant-a", B, NULL);
    struct ks_cache_ref *ref = (struct ks_cache_ref *)&k;
    struct fetcher f;
    struct ks_error err;

    fetcher_init(&f);
    k.branch_key_id = "a\0b";
    k.branch_key_id_len = 3;
    cr_assert_eq(ks_cache_get(c, &k, fetch_cb, &f, &ref, &err), KS_E_INVALID);
    cr_assert_null(ref);
    cr_assert_eq(calls(&f), 0);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

/* --- basic hits, partitions, scopes ------------------------------------------------------ */

Test(cache, miss_then_hit_shares_materials)
{
    struct ks_cache *c = new_cache(config(10));
    struct ks_cache_ref *r1, *r2;
    struct ks_cache_stats s;
    struct fetcher f;

    fetcher_init(&f);
    r1 = get_ok(c, active("tenant-a", B), &f);
    r2 = get_ok(c, active("tenant-a", B), &f);
    cr_assert_eq(calls(&f), 1);
    cr_assert_eq(ks_cache_ref_materials(r1), ks_cache_ref_materials(r2));
    cr_assert_str_eq(ks_cache_ref_materials(r1)->branch_key_id, B);
    cr_assert_eq(ks_cache_ref_materials(r1)->key_len, 32);
    cr_assert_eq(key_byte(r1), 0x40);
    s = stats(c, "tenant-a");
    cr_assert_eq(s.hits, 1);
    cr_assert_eq(s.misses, 1);
    cr_assert_eq(s.waits, 0);
    cr_assert_eq(s.entries, 1);
    cr_assert_eq(s.in_flight, 0);
    ks_cache_release(r1);
    ks_cache_release(r2);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

Test(cache, partitions_are_trust_boundaries)
{
    struct ks_cache *c = new_cache(config(10));
    struct ks_cache_ref *a, *b, *a2;
    struct fetcher f;

    fetcher_init(&f);
    /* Same key store and branch key, different partitions: two fetches, two entries. */
    a = get_ok(c, active("tenant-a", B), &f);
    b = get_ok(c, active("tenant-b", B), &f);
    cr_assert_eq(calls(&f), 2);
    cr_assert_neq(ks_cache_ref_materials(a), ks_cache_ref_materials(b));
    cr_assert_neq(key_byte(a), key_byte(b));
    /* A second tenant configured with the equal partition string shares tenant-a's entry. */
    a2 = get_ok(c, active("tenant-a", B), &f);
    cr_assert_eq(calls(&f), 2);
    cr_assert_eq(ks_cache_ref_materials(a), ks_cache_ref_materials(a2));
    cr_assert_eq(stats(c, "tenant-a").entries, 1);
    cr_assert_eq(stats(c, "tenant-b").entries, 1);
    ks_cache_release(a);
    ks_cache_release(a2);
    ks_cache_release(b);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

Test(cache, scopes_are_separate_entries)
{
    struct ks_cache *c = new_cache(config(10));
    struct ks_cache_ref *r[3];
    struct fetcher f;
    int i;

    fetcher_init(&f);
    r[0] = get_ok(c, key_of(KS_CACHE_ACTIVE, "p", B, NULL), &f);
    r[1] = get_ok(c, key_of(KS_CACHE_VERSION, "p", B, V), &f);
    r[2] = get_ok(c, key_of(KS_CACHE_BEACON, "p", B, NULL), &f);
    cr_assert_eq(calls(&f), 3);
    for (i = 0; i < 3; i++)
        ks_cache_release(r[i]);
    cr_assert_eq(stats(c, "p").entries, 3);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

/* --- TTL (section 5) --------------------------------------------------------------------- */

Test(cache, ttl_expiry_with_injected_clock)
{
    struct ks_cache_config cfg = config(10);
    struct ks_cache *c;
    struct ks_cache_ref *r;
    struct fetcher f;

    cfg.ttl_seconds = 60;
    cfg.grace_period_seconds = 1; /* keep the grace refresh out of this test's way */
    cfg.grace_interval_seconds = 1;
    cfg.in_flight_ttl_seconds = 1;
    c = new_cache(cfg);
    fetcher_init(&f);
    ks_cache_release(get_ok(c, active("p", B), &f));
    set_time(T0 + 58 * S);
    ks_cache_release(get_ok(c, active("p", B), &f));
    cr_assert_eq(calls(&f), 1);
    /* Valid while now <= creation + ttl (inclusive), as the MPL's LocalCMC. At T0 + 60 s the
     * entry is in its grace period, so this caller refreshes; the refresh fails and it is
     * served the entry, which proves it still valid. */
    set_time(T0 + 60 * S);
    f.fail = KS_E_KMS;
    r = get_ok(c, active("p", B), &f);
    cr_assert_eq(key_byte(r), 0x40);
    ks_cache_release(r);
    cr_assert_eq(calls(&f), 2);
    f.fail = KS_OK;
    set_time(T0 + 60 * S + 1);
    r = get_ok(c, active("p", B), &f);
    cr_assert_eq(calls(&f), 3);
    cr_assert_eq(key_byte(r), 0x42);
    cr_assert_eq(stats(c, "p").expirations, 1);
    cr_assert_eq(stats(c, "p").entries, 1);
    ks_cache_release(r);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

/* --- LRU --------------------------------------------------------------------------------- */

Test(cache, lru_eviction_order_at_capacity)
{
    struct ks_cache *c = new_cache(config(3));
    struct fetcher f;
    struct ks_cache_stats s;

    fetcher_init(&f);
    ks_cache_release(get_ok(c, active("p", "A"), &f));
    ks_cache_release(get_ok(c, active("p", "B"), &f));
    ks_cache_release(get_ok(c, active("p", "C"), &f));
    ks_cache_release(get_ok(c, active("p", "A"), &f)); /* A most recently used: B is LRU */
    cr_assert_eq(calls(&f), 3);
    ks_cache_release(get_ok(c, active("p", "D"), &f)); /* evicts B */
    cr_assert_eq(calls(&f), 4);
    s = stats(c, "p");
    cr_assert_eq(s.evictions, 1);
    cr_assert_eq(s.entries, 3);
    ks_cache_release(get_ok(c, active("p", "A"), &f));
    ks_cache_release(get_ok(c, active("p", "C"), &f));
    ks_cache_release(get_ok(c, active("p", "D"), &f));
    cr_assert_eq(calls(&f), 4);
    ks_cache_release(get_ok(c, active("p", "B"), &f)); /* refetched; evicts A (LRU now) */
    cr_assert_eq(calls(&f), 5);
    ks_cache_release(get_ok(c, active("p", "C"), &f));
    cr_assert_eq(calls(&f), 5);
    ks_cache_release(get_ok(c, active("p", "A"), &f));
    cr_assert_eq(calls(&f), 6);
    cr_assert_eq(stats(c, "p").evictions, 3);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

/* --- per-partition cap --------------------------------------------------------------------- */

/* A busy partition at its cap evicts its own least recently used entry, never another
 * partition's; the global LRU only acts when the whole cache is full. */
Test(cache, partition_cap_evicts_own_entries_only)
{
    struct ks_cache_config cfg = config(100);
    struct ks_cache *c;
    struct fetcher f;
    char id[16];
    int i;

    cfg.max_entries_per_partition = 3;
    c = new_cache(cfg);
    fetcher_init(&f);
    ks_cache_release(get_ok(c, active("quiet", "Q1"), &f));
    ks_cache_release(get_ok(c, active("quiet", "Q2"), &f));
    for (i = 0; i < 50; i++) {
        snprintf(id, sizeof id, "B%d", i);
        ks_cache_release(get_ok(c, active("busy", id), &f));
    }
    cr_assert_eq(calls(&f), 52);
    cr_assert_eq(stats(c, "busy").entries, 3);
    cr_assert_eq(stats(c, "busy").partition_evictions, 47);
    cr_assert_eq(stats(c, "busy").evictions, 0);
    /* The busy partition's three most recent are cached; the quiet one kept both its keys. */
    ks_cache_release(get_ok(c, active("busy", "B49"), &f));
    ks_cache_release(get_ok(c, active("busy", "B47"), &f));
    ks_cache_release(get_ok(c, active("quiet", "Q1"), &f));
    ks_cache_release(get_ok(c, active("quiet", "Q2"), &f));
    cr_assert_eq(calls(&f), 52);
    cr_assert_eq(stats(c, "quiet").entries, 2);
    cr_assert_eq(stats(c, "quiet").partition_evictions, 0);
    /* B47 was touched after B48: B48 is the busy partition's LRU and goes next. */
    ks_cache_release(get_ok(c, active("busy", "B50"), &f));
    ks_cache_release(get_ok(c, active("busy", "B47"), &f));
    cr_assert_eq(calls(&f), 53);
    ks_cache_release(get_ok(c, active("busy", "B48"), &f));
    cr_assert_eq(calls(&f), 54);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

/* Without a cap (0) the same traffic evicts the quiet partition's keys at capacity. */
Test(cache, no_partition_cap_lets_a_busy_partition_evict_others)
{
    struct ks_cache *c = new_cache(config(10));
    struct fetcher f;
    char id[16];
    int i;

    fetcher_init(&f);
    ks_cache_release(get_ok(c, active("quiet", "Q1"), &f));
    for (i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "B%d", i);
        ks_cache_release(get_ok(c, active("busy", id), &f));
    }
    cr_assert_eq(stats(c, "quiet").entries, 0);
    cr_assert_eq(stats(c, "quiet").evictions, 1);
    cr_assert_eq(stats(c, "busy").partition_evictions, 0);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

/* 10,000 partitions with a cap of 1: each keeps its entry; capacity still bounds the total. */
Test(cache, ten_thousand_partitions_each_keep_their_entry)
{
    struct ks_cache_config cfg = config(20000);
    struct ks_cache *c;
    struct fetcher f;
    char p[16];
    int i;

    cfg.max_entries_per_partition = 1;
    c = new_cache(cfg);
    fetcher_init(&f);
    for (i = 0; i < 10000; i++) {
        snprintf(p, sizeof p, "t%d", i);
        ks_cache_release(get_ok(c, active(p, "K"), &f));
        ks_cache_release(get_ok(c, active(p, "K2"), &f)); /* replaces K: cap 1 */
    }
    cr_assert_eq(calls(&f), 20000);
    for (i = 0; i < 10000; i++) {
        snprintf(p, sizeof p, "t%d", i);
        ks_cache_release(get_ok(c, active(p, "K2"), &f));
        cr_assert_eq(stats(c, p).entries, 1);
        cr_assert_eq(stats(c, p).partition_evictions, 1);
    }
    cr_assert_eq(calls(&f), 20000);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

Test(cache, capacity_zero_caches_nothing)
{
    struct ks_cache *c = new_cache(config(0));
    struct fetcher f;

    fetcher_init(&f);
    ks_cache_release(get_ok(c, active("p", B), &f));
    ks_cache_release(get_ok(c, active("p", B), &f));
    cr_assert_eq(calls(&f), 2);
    cr_assert_eq(stats(c, "p").entries, 0);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

/* --- refcounts, wiping, dump exclusion --------------------------------------------------- */

Test(cache, evicted_entry_stays_readable_until_released_then_wiped)
{
    struct ks_cache *c = new_cache(config(1));
    struct ks_cache_ref *r;
    const unsigned char *slot;
    struct fetcher f;

    fetcher_init(&f);
    r = get_ok(c, active("p", "A"), &f);
    slot = ks_cache_debug_key_slot(r);
    cr_assert_eq(ks_cache_ref_materials(r)->key, slot);
    ks_cache_release(get_ok(c, active("p", "B"), &f)); /* evicts A */
    cr_assert_eq(stats(c, "p").evictions, 1);
    /* Still referenced: intact. */
    cr_assert_str_eq(ks_cache_ref_materials(r)->branch_key_id, B);
    cr_assert_eq(slot[0], 0x40);
    cr_assert_eq(slot[31], 0x40);
    ks_cache_release(r);
    cr_assert(all_zero(slot, KS_CACHE_KEY_MAX), "key not wiped after the last release");
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

Test(cache, cached_entry_is_wiped_when_dropped_without_refs)
{
    struct ks_cache *c = new_cache(config(1));
    struct ks_cache_ref *r;
    const unsigned char *slot;
    struct fetcher f;

    fetcher_init(&f);
    r = get_ok(c, active("p", "A"), &f);
    slot = ks_cache_debug_key_slot(r);
    ks_cache_release(r); /* the cache still holds it */
    cr_assert_eq(slot[0], 0x40);
    cr_assert_eq(ks_cache_invalidate_active(c, L, "A"), 1);
    cr_assert(all_zero(slot, KS_CACHE_KEY_MAX));
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

Test(cache, refs_may_outlive_the_cache)
{
    struct ks_cache *c = new_cache(config(4));
    struct ks_cache_ref *r;
    struct fetcher f;

    fetcher_init(&f);
    r = get_ok(c, active("p", B), &f);
    ks_cache_destroy(c);
    cr_assert_eq(key_byte(r), 0x40);
    ks_cache_release(r); /* frees the entry and the key slab (ASan/LSan check) */
    fetcher_fini(&f);
}

/* The slot's mapping carries VmFlags "dd" (MADV_DONTDUMP) in /proc/self/smaps. */
static int mapping_is_dontdump(const void *addr)
{
    FILE *fp = fopen("/proc/self/smaps", "r");
    char line[512];
    unsigned long lo, hi, a = (unsigned long)addr;
    int inside = 0, found = -1;

    cr_assert_not_null(fp);
    while (fgets(line, sizeof line, fp)) {
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = a >= lo && a < hi;
            continue;
        }
        if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            found = strstr(line, " dd") != NULL;
            break;
        }
    }
    fclose(fp);
    return found;
}

Test(cache, key_storage_is_page_aligned_and_excluded_from_core_dumps)
{
    struct ks_cache *c = new_cache(config(4));
    struct ks_cache_ref *r;
    struct fetcher f;
    const unsigned char *slot;

    fetcher_init(&f);
    r = get_ok(c, active("p", B), &f);
    slot = ks_cache_debug_key_slot(r);
    cr_assert_eq((unsigned long)slot % KS_CACHE_KEY_MAX, 0);
    cr_assert_eq(mapping_is_dontdump(slot), 1);
    ks_cache_release(r);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

Test(cache, bad_materials_from_fetch_are_an_error_and_not_cached)
{
    struct ks_cache *c = new_cache(config(4));
    struct ks_cache_ref *ref = NULL;
    struct ks_cache_key k = active("p", B);
    struct fetcher f;
    struct ks_error err;

    fetcher_init(&f);
    f.bad_key = 1;
    cr_assert_eq(ks_cache_get(c, &k, fetch_cb, &f, &ref, &err), KS_E_INTERNAL);
    cr_assert_null(ref);
    cr_assert_eq(stats(c, "p").entries, 0);
    cr_assert_eq(stats(c, "p").fetch_errors, 1);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

/* --- storm tracking (section 4) ---------------------------------------------------------- */

#define STORM 32

Test(cache, storm_of_misses_fetches_once)
{
    struct ks_cache *c = new_cache(config(10));
    struct getter g[STORM];
    pthread_barrier_t barrier;
    struct ks_cache_stats s;
    struct fetcher f;
    int i;

    fetcher_init(&f);
    f.block_mask = 1; /* hold the first fetch open until every other caller waits */
    pthread_barrier_init(&barrier, NULL, STORM);
    for (i = 0; i < STORM; i++) {
        memset(&g[i], 0, sizeof(g[i]));
        g[i].cache = c;
        g[i].key = key_of(KS_CACHE_VERSION, "p", B, V);
        g[i].fetcher = &f;
        g[i].barrier = &barrier;
        cr_assert_eq(pthread_create(&g[i].thread, NULL, getter_main, &g[i]), 0);
    }
    wait_calls(&f, 1);
    wait_waits(c, "p", STORM - 1);
    cr_assert_eq(stats(c, "p").in_flight, 1);
    release_call(&f, 0);
    for (i = 0; i < STORM; i++)
        join_getter(&g[i]);
    cr_assert_eq(calls(&f), 1);
    for (i = 0; i < STORM; i++) {
        cr_assert_eq(g[i].status, KS_OK, "%s", g[i].err.message);
        cr_assert_eq(ks_cache_ref_materials(g[i].ref), ks_cache_ref_materials(g[0].ref));
        ks_cache_release(g[i].ref);
    }
    s = stats(c, "p");
    cr_assert_eq(s.misses, STORM);
    cr_assert_eq(s.waits, STORM - 1);
    cr_assert_eq(s.hits, 0);
    cr_assert_eq(s.in_flight, 0);
    cr_assert_eq(s.entries, 1);
    pthread_barrier_destroy(&barrier);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

Test(cache, failed_fetch_wakes_waiters_with_the_error_and_caches_nothing)
{
    struct ks_cache *c = new_cache(config(10));
    struct getter g[8];
    struct ks_cache_ref *r;
    struct ks_cache_stats s;
    struct fetcher f;
    int i;

    fetcher_init(&f);
    f.block_mask = 1;
    f.fail = KS_E_KMS;
    for (i = 0; i < 8; i++)
        start_getter(&g[i], c, active("p", B), &f);
    wait_calls(&f, 1);
    wait_waits(c, "p", 7);
    release_call(&f, 0);
    for (i = 0; i < 8; i++) {
        join_getter(&g[i]);
        cr_assert_eq(g[i].status, KS_E_KMS);
        cr_assert_null(g[i].ref);
        cr_assert_eq(g[i].err.code, KS_E_KMS);
        cr_assert_str_eq(g[i].err.message, "fetch 0 failed");
    }
    cr_assert_eq(calls(&f), 1);
    s = stats(c, "p");
    cr_assert_eq(s.fetch_errors, 1);
    cr_assert_eq(s.entries, 0);
    cr_assert_eq(s.in_flight, 0);
    /* Nothing cached, no mark left: the next get fetches at once. */
    f.fail = KS_OK;
    r = get_ok(c, active("p", B), &f);
    cr_assert_eq(calls(&f), 2);
    cr_assert_eq(key_byte(r), 0x41);
    ks_cache_release(r);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

Test(cache, grace_period_one_refresh_while_others_are_served)
{
    /* ttl 100 s, grace period 10 s, grace interval 1 s. */
    struct ks_cache *c = new_cache(config(10));
    struct ks_cache_ref *r, *old;
    struct getter refresher;
    struct fetcher f;
    int i;

    fetcher_init(&f);
    old = get_ok(c, active("p", B), &f); /* entry expires at T0 + 100 s */
    set_time(T0 + 89 * S);               /* not yet in the grace period */
    ks_cache_release(get_ok(c, active("p", B), &f));
    cr_assert_eq(calls(&f), 1);

    set_time(T0 + 90 * S); /* expiry - grace period: the grace period starts */
    f.block_mask = 1 << 1;
    start_getter(&refresher, c, active("p", B), &f);
    wait_calls(&f, 2);
    /* While the refresh runs, everyone else gets the still-valid entry without blocking. */
    for (i = 0; i < 10; i++) {
        r = get_ok(c, active("p", B), &f);
        cr_assert_eq(ks_cache_ref_materials(r), ks_cache_ref_materials(old));
        ks_cache_release(r);
    }
    cr_assert_eq(calls(&f), 2);
    cr_assert_eq(stats(c, "p").refreshes, 1);
    /* A grace interval later the refresh still runs: as in the MPL, one more caller refreshes
     * (its fetch returns at once) and the others are still served. */
    set_time(T0 + 91 * S);
    r = get_ok(c, active("p", B), &f);
    cr_assert_eq(key_byte(r), 0x42);
    ks_cache_release(r);
    cr_assert_eq(calls(&f), 3);
    r = get_ok(c, active("p", B), &f);
    cr_assert_eq(key_byte(r), 0x42);
    ks_cache_release(r);
    cr_assert_eq(calls(&f), 3);
    cr_assert_eq(stats(c, "p").refreshes, 2);
    release_call(&f, 1);
    join_getter(&refresher);
    cr_assert_eq(refresher.status, KS_OK);
    cr_assert_eq(key_byte(refresher.ref), 0x41);
    /* The new entry replaced the old one; the old ref still reads its own key. */
    r = get_ok(c, active("p", B), &f);
    cr_assert_eq(ks_cache_ref_materials(r), ks_cache_ref_materials(refresher.ref));
    cr_assert_eq(key_byte(old), 0x40);
    cr_assert_eq(calls(&f), 3);
    ks_cache_release(r);
    ks_cache_release(refresher.ref);
    ks_cache_release(old);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

Test(cache, grace_period_failed_refresh_serves_entry_and_waits_an_interval)
{
    struct ks_cache *c = new_cache(config(10));
    struct ks_cache_ref *r;
    struct fetcher f;

    fetcher_init(&f);
    ks_cache_release(get_ok(c, active("p", B), &f));
    set_time(T0 + 95 * S);
    f.fail = KS_E_KMS;
    /* The one refresher's fetch fails: it is served the still-valid entry. */
    r = get_ok(c, active("p", B), &f);
    cr_assert_eq(calls(&f), 2);
    cr_assert_eq(key_byte(r), 0x40);
    ks_cache_release(r);
    cr_assert_eq(stats(c, "p").fetch_errors, 1);
    /* Within the same grace interval nobody refreshes again. */
    set_time(T0 + 95 * S + S - 1);
    ks_cache_release(get_ok(c, active("p", B), &f));
    ks_cache_release(get_ok(c, active("p", B), &f));
    cr_assert_eq(calls(&f), 2);
    /* One interval later, exactly one caller refreshes again. */
    set_time(T0 + 96 * S);
    ks_cache_release(get_ok(c, active("p", B), &f));
    cr_assert_eq(calls(&f), 3);
    ks_cache_release(get_ok(c, active("p", B), &f));
    cr_assert_eq(calls(&f), 3);
    /* This one succeeds: the entry is replaced. */
    f.fail = KS_OK;
    set_time(T0 + 97 * S);
    r = get_ok(c, active("p", B), &f);
    cr_assert_eq(calls(&f), 4);
    cr_assert_eq(key_byte(r), 0x43);
    ks_cache_release(r);
    cr_assert_eq(stats(c, "p").refreshes, 3);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

Test(cache, grace_refresh_is_skipped_when_fan_out_is_reached)
{
    struct ks_cache_config cfg = config(10);
    struct ks_cache *c;
    struct getter busy;
    struct fetcher f, other;

    cfg.fan_out = 1;
    c = new_cache(cfg);
    fetcher_init(&f);
    fetcher_init(&other);
    ks_cache_release(get_ok(c, active("p", B), &f));
    set_time(T0 + 95 * S);
    other.block_mask = 1;
    start_getter(&busy, c, active("p", "other"), &other); /* takes the only fetch slot */
    wait_calls(&other, 1);
    ks_cache_release(get_ok(c, active("p", B), &f)); /* in grace, but no slot: served */
    cr_assert_eq(calls(&f), 1);
    release_call(&other, 0);
    join_getter(&busy);
    ks_cache_release(busy.ref);
    ks_cache_release(get_ok(c, active("p", B), &f)); /* slot free: refreshes */
    cr_assert_eq(calls(&f), 2);
    ks_cache_destroy(c);
    fetcher_fini(&f);
    fetcher_fini(&other);
}

Test(cache, stuck_fetch_second_fetch_after_grace_interval)
{
    struct ks_cache *c = new_cache(config(10));
    struct getter first, g[4];
    struct ks_cache_ref *r;
    struct fetcher f;
    int i;

    fetcher_init(&f);
    f.block_mask = 1; /* the first fetch hangs */
    start_getter(&first, c, active("p", B), &f);
    wait_calls(&f, 1);
    for (i = 0; i < 4; i++)
        start_getter(&g[i], c, active("p", B), &f);
    wait_waits(c, "p", 4);
    /* Less than the grace interval: still waiting, no second fetch. */
    set_time(T0 + S - 1);
    ks_cache_wake_all(c);
    wait_waits(c, "p", 4);
    cr_assert_eq(calls(&f), 1);
    /* The mark is a grace interval old: exactly one waiter fetches again (the MPL's second
     * fetch); it returns at once and every waiter gets its result. */
    set_time(T0 + S);
    ks_cache_wake_all(c);
    for (i = 0; i < 4; i++) {
        join_getter(&g[i]);
        cr_assert_eq(g[i].status, KS_OK, "%s", g[i].err.message);
        cr_assert_eq(key_byte(g[i].ref), 0x41);
        ks_cache_release(g[i].ref);
    }
    cr_assert_eq(calls(&f), 2);
    cr_assert_eq(stats(c, "p").in_flight, 1);
    /* The first fetch finally returns: its caller gets its own result, which is cached too. */
    release_call(&f, 0);
    join_getter(&first);
    cr_assert_eq(first.status, KS_OK);
    cr_assert_eq(key_byte(first.ref), 0x40);
    ks_cache_release(first.ref);
    r = get_ok(c, active("p", B), &f);
    cr_assert_eq(calls(&f), 2);
    ks_cache_release(r);
    cr_assert_eq(stats(c, "p").in_flight, 0);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

Test(cache, in_flight_ttl_prunes_a_stuck_mark_so_a_blocked_caller_proceeds)
{
    struct ks_cache_config cfg = config(10);
    struct ks_cache *c;
    struct getter stuck, blocked;
    struct fetcher fs, fb;

    cfg.fan_out = 1;
    c = new_cache(cfg);
    fetcher_init(&fs);
    fetcher_init(&fb);
    fs.block_mask = 1;
    start_getter(&stuck, c, active("p", "X"), &fs);
    wait_calls(&fs, 1);
    start_getter(&blocked, c, active("p", "Y"), &fb); /* fan-out reached: waits */
    wait_waits(c, "p", 1);
    set_time(T0 + 10 * S - 1);
    ks_cache_wake_all(c);
    wait_waits(c, "p", 1);
    cr_assert_eq(calls(&fb), 0);
    /* X's mark is in_flight_ttl old: pruned, so Y gets the slot and fetches. */
    set_time(T0 + 10 * S);
    ks_cache_wake_all(c);
    join_getter(&blocked);
    cr_assert_eq(blocked.status, KS_OK, "%s", blocked.err.message);
    cr_assert_eq(calls(&fb), 1);
    ks_cache_release(blocked.ref);
    release_call(&fs, 0);
    join_getter(&stuck);
    cr_assert_eq(stuck.status, KS_OK);
    ks_cache_release(stuck.ref);
    cr_assert_eq(stats(c, "p").wait_timeouts, 0);
    ks_cache_destroy(c);
    fetcher_fini(&fs);
    fetcher_fini(&fb);
}

Test(cache, waiter_fails_after_in_flight_ttl)
{
    struct ks_cache_config cfg = config(10);
    struct ks_cache *c;
    struct getter x, w, y;
    struct fetcher fx, fw, fy;

    cfg.fan_out = 1;
    c = new_cache(cfg);
    fetcher_init(&fx);
    fetcher_init(&fw);
    fetcher_init(&fy);
    fx.block_mask = fy.block_mask = 1;
    start_getter(&x, c, active("p", "X"), &fx); /* stuck, marked at T0 */
    wait_calls(&fx, 1);
    set_time(T0 + 9 * S);
    start_getter(&w, c, active("p", "W"), &fw); /* blocked by fan-out from T0 + 9 s */
    wait_waits(c, "p", 1);
    /* At T0 + 10 s X's mark is pruned and Y takes the slot (stuck too). */
    set_time(T0 + 10 * S);
    start_getter(&y, c, active("p", "Y"), &fy);
    wait_calls(&fy, 1);
    cr_assert_eq(calls(&fw), 0);
    /* W has now waited in_flight_ttl: InFlightTTLExceeded. */
    set_time(T0 + 19 * S);
    ks_cache_wake_all(c);
    join_getter(&w);
    cr_assert_eq(w.status, KS_E_UNAVAILABLE);
    cr_assert(strstr(w.err.message, "InFlightTTLExceeded"), "%s", w.err.message);
    cr_assert_null(w.ref);
    cr_assert_eq(calls(&fw), 0);
    cr_assert_eq(stats(c, "p").wait_timeouts, 1);
    release_call(&fx, 0);
    release_call(&fy, 0);
    join_getter(&x);
    join_getter(&y);
    ks_cache_release(x.ref);
    ks_cache_release(y.ref);
    ks_cache_destroy(c);
    fetcher_fini(&fx);
    fetcher_fini(&fw);
    fetcher_fini(&fy);
}

Test(cache, fan_out_bounds_concurrent_fetches_of_distinct_keys)
{
    struct ks_cache_config cfg = config(10);
    struct ks_cache *c;
    struct getter g[3];
    struct fetcher f[3];
    static const char *const ids[3] = {"K0", "K1", "K2"};
    int i;

    cfg.fan_out = 2;
    c = new_cache(cfg);
    for (i = 0; i < 3; i++) {
        fetcher_init(&f[i]);
        f[i].block_mask = 1;
    }
    start_getter(&g[0], c, active("p", ids[0]), &f[0]);
    wait_calls(&f[0], 1);
    start_getter(&g[1], c, active("p", ids[1]), &f[1]);
    wait_calls(&f[1], 1);
    start_getter(&g[2], c, active("p", ids[2]), &f[2]);
    wait_waits(c, "p", 1); /* the third distinct key waits for a slot */
    cr_assert_eq(calls(&f[2]), 0);
    cr_assert_eq(stats(c, "p").in_flight, 2);
    release_call(&f[0], 0); /* a slot frees: the third fetches (and is let through) */
    release_call(&f[2], 0);
    join_getter(&g[0]);
    join_getter(&g[2]);
    cr_assert_eq(g[2].status, KS_OK, "%s", g[2].err.message);
    cr_assert_eq(calls(&f[2]), 1);
    release_call(&f[1], 0);
    join_getter(&g[1]);
    for (i = 0; i < 3; i++) {
        ks_cache_release(g[i].ref);
        fetcher_fini(&f[i]);
    }
    ks_cache_destroy(c);
}

/* --- invalidation ------------------------------------------------------------------------ */

Test(cache, invalidate_active_drops_the_key_in_every_partition_only)
{
    struct ks_cache *c = new_cache(config(10));
    struct ks_cache_ref *held, *r;
    struct fetcher f;

    fetcher_init(&f);
    held = get_ok(c, active("tenant-a", B), &f);                                   /* 0x40 */
    ks_cache_release(get_ok(c, active("tenant-b", B), &f));                        /* 0x41 */
    ks_cache_release(get_ok(c, key_of(KS_CACHE_VERSION, "tenant-a", B, V), &f));   /* 0x42 */
    ks_cache_release(get_ok(c, key_of(KS_CACHE_BEACON, "tenant-a", B, NULL), &f)); /* 0x43 */
    ks_cache_release(get_ok(c, active("tenant-a", "other-key"), &f));              /* 0x44 */
    cr_assert_eq(calls(&f), 5);

    cr_assert_eq(ks_cache_invalidate_active(c, L, B), 2);
    cr_assert_eq(ks_cache_invalidate_active(c, "other-logical", "other-key"), 0);
    cr_assert_eq(stats(c, "tenant-a").invalidations, 1);
    cr_assert_eq(stats(c, "tenant-b").invalidations, 1);
    /* The held ref is unaffected. */
    cr_assert_eq(key_byte(held), 0x40);
    /* ACTIVE refetched in both partitions; version, beacon and other keys still cached. */
    r = get_ok(c, active("tenant-a", B), &f);
    cr_assert_eq(key_byte(r), 0x45);
    ks_cache_release(r);
    r = get_ok(c, active("tenant-b", B), &f);
    cr_assert_eq(key_byte(r), 0x46);
    ks_cache_release(r);
    ks_cache_release(get_ok(c, key_of(KS_CACHE_VERSION, "tenant-a", B, V), &f));
    ks_cache_release(get_ok(c, key_of(KS_CACHE_BEACON, "tenant-a", B, NULL), &f));
    ks_cache_release(get_ok(c, active("tenant-a", "other-key"), &f));
    cr_assert_eq(calls(&f), 7);
    ks_cache_release(held);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

Test(cache, invalidate_during_fetch_keeps_the_result_out_of_the_cache)
{
    struct ks_cache *c = new_cache(config(10));
    struct getter g;
    struct ks_cache_ref *r;
    struct fetcher f;

    fetcher_init(&f);
    f.block_mask = 1;
    start_getter(&g, c, active("p", B), &f);
    wait_calls(&f, 1);
    cr_assert_eq(ks_cache_invalidate_active(c, L, B), 0); /* VersionKey committed meanwhile */
    release_call(&f, 0);
    join_getter(&g);
    cr_assert_eq(g.status, KS_OK);
    cr_assert_eq(key_byte(g.ref), 0x40); /* the caller asked before the write: served */
    ks_cache_release(g.ref);
    cr_assert_eq(stats(c, "p").entries, 0);
    r = get_ok(c, active("p", B), &f);
    cr_assert_eq(calls(&f), 2);
    ks_cache_release(r);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

/* --- stats ------------------------------------------------------------------------------- */

struct seen {
    int n;
    uint64_t hits_a, misses_b;
};

static void collect(void *ctx, const unsigned char *partition, size_t len,
                    const struct ks_cache_stats *s)
{
    struct seen *seen = ctx;

    seen->n++;
    if (len == 8 && memcmp(partition, "tenant-a", 8) == 0)
        seen->hits_a = s->hits;
    if (len == 8 && memcmp(partition, "tenant-b", 8) == 0)
        seen->misses_b = s->misses;
}

Test(cache, stats_per_partition)
{
    struct ks_cache *c = new_cache(config(10));
    struct ks_cache_stats s;
    struct seen seen = {0, 0, 0};
    struct fetcher f;
    int i;

    fetcher_init(&f);
    for (i = 0; i < 3; i++)
        ks_cache_release(get_ok(c, active("tenant-a", B), &f));
    ks_cache_release(get_ok(c, active("tenant-b", B), &f));
    ks_cache_release(get_ok(c, active("tenant-b", "K2"), &f));
    ks_cache_stats_foreach(c, collect, &seen);
    cr_assert_eq(seen.n, 2);
    cr_assert_eq(seen.hits_a, 2);
    cr_assert_eq(seen.misses_b, 2);
    s = stats(c, "tenant-b");
    cr_assert_eq(s.entries, 2);
    cr_assert_eq(s.hits, 0);
    cr_assert_eq(ks_cache_stats_partition(c, (const unsigned char *)"nobody", 6, &s), 0);
    cr_assert_eq(s.hits, 0);
    ks_cache_destroy(c);
    fetcher_fini(&f);
}

/* --- concurrency stress (run under ASan: no use-after-free, no leak, no wrong key) -------- */

struct stress_fetch {
    const char *id;
    atomic_int *fetches;
};

static ks_status stress_fetch_cb(void *ctx, struct ks_materials **out, struct ks_error *err)
{
    struct stress_fetch *sf = ctx;

    (void)err;
    atomic_fetch_add(sf->fetches, 1);
    *out = make_materials(sf->id, (unsigned char)sf->id[0]);
    return KS_OK;
}

struct stress_thread {
    pthread_t thread;
    struct ks_cache *cache;
    atomic_int *fetches;
    unsigned seed;
    int wrong;
};

static void *stress_main(void *arg)
{
    static const char *const parts[3] = {"p0", "p1", "p2"};
    static const char *const ids[6] = {"a-key", "b-key", "c-key", "d-key", "e-key", "f-key"};
    struct stress_thread *t = arg;
    struct ks_cache_ref *ref;
    struct ks_error err;
    int i;

    for (i = 0; i < 3000; i++) {
        unsigned r = t->seed = t->seed * 1103515245u + 12345u;
        const char *id = ids[(r >> 8) % 6];
        struct ks_cache_key k = active(parts[(r >> 16) % 3], id);
        struct stress_fetch sf = {id, t->fetches};

        if ((r >> 4) % 97 == 0) {
            ks_cache_invalidate_active(t->cache, L, id);
            continue;
        }
        if (ks_cache_get(t->cache, &k, stress_fetch_cb, &sf, &ref, &err) != KS_OK) {
            t->wrong++;
            continue;
        }
        if (strcmp(ks_cache_ref_materials(ref)->branch_key_id, id) != 0 ||
            key_byte(ref) != (unsigned char)id[0])
            t->wrong++;
        ks_cache_release(ref);
    }
    return NULL;
}

Test(cache, concurrent_gets_evictions_and_invalidations)
{
    struct ks_cache *c = new_cache(config(8)); /* 18 (partition, key) pairs: constant eviction */
    struct stress_thread t[16];
    atomic_int fetches;
    struct ks_cache_stats s;
    uint64_t gets = 0;
    int i;

    atomic_init(&fetches, 0);
    for (i = 0; i < 16; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        t[i].cache = c;
        t[i].fetches = &fetches;
        t[i].seed = (unsigned)i * 7919u + 1u;
        cr_assert_eq(pthread_create(&t[i].thread, NULL, stress_main, &t[i]), 0);
    }
    for (i = 0; i < 16; i++) {
        cr_assert_eq(pthread_join(t[i].thread, NULL), 0);
        cr_assert_eq(t[i].wrong, 0);
    }
    for (i = 0; i < 3; i++) {
        char p[3] = {'p', (char)('0' + i), 0};
        s = stats(c, p);
        gets += s.hits + s.misses;
        cr_assert_eq(s.in_flight, 0);
    }
    cr_assert_gt(gets, 40000);
    cr_assert_gt(atomic_load(&fetches), 0);
    ks_cache_destroy(c);
}
