/*
 * cache.h - the one branch key materials cache shared by every key store, KMS relationship and
 * tenant (docs/architecture.md section 2 "keystore/"; docs/reference/cache.md).
 *
 * Entries are keyed by the MPL's cache identifiers (docs/reference/cache.md section 1): SHA-384
 * over resource id 0x02, scope, partition id, logical key store name, branch key id [, version],
 * NUL-separated. The partition is the trust boundary (section 7): tenants with equal partitions
 * share entries, others never do. The caller derives it from the authenticated tenant, never from
 * request data.
 *
 * Behaviour:
 * - TTL from the config (section 5), capacity with least-recently-used eviction, O(1) get/put.
 * - Entries are refcounted: a struct ks_cache_ref keeps its materials alive and unchanged after
 *   the entry was evicted, expired, replaced or invalidated (like h2o_cache entries). The 32-byte
 *   key lives in page-aligned memory marked MADV_DONTDUMP and is wiped when the last reference
 *   goes.
 * - Storm tracking with the MPL's settings (section 4): a miss is fetched by one request while the
 *   others for the same identifier wait on a condition variable; in the grace period one request
 *   per grace interval refreshes while the rest keep being served the still-valid entry; fan-out
 *   caps the identifiers being fetched at once; in-flight TTL bounds every wait. A failed fetch
 *   wakes its waiters with the error and caches nothing.
 * - ks_cache_invalidate_active drops a branch key's ACTIVE entries in every partition (VersionKey).
 * - Per-partition counters for metrics.
 *
 * All functions are thread-safe unless stated otherwise. The cache knows materials
 * (keystore/materials.h), never the keystore: keystore.c -> cache.c -> materials.c. Test hooks
 * are in keystore/testing.h.
 */
#ifndef KS_KEYSTORE_CACHE_H
#define KS_KEYSTORE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/util.h"
#include "config/config.h"
#include "keystore/materials.h"

#define KS_CACHE_ID_LEN 48 /* full SHA-384 digest, never truncated (docs/reference/cache.md 1) */

/* Scope byte of the identifier (docs/reference/cache.md section 1). */
enum ks_cache_scope {
    KS_CACHE_ACTIVE = 1,  /* GetActiveBranchKey (encrypt) */
    KS_CACHE_VERSION = 2, /* GetBranchKeyVersion (decrypt) */
    KS_CACHE_BEACON = 3   /* GetBeaconKey */
};

/*
 * What a cached value is for. All pointers are borrowed for the duration of the call.
 * partition: the tenant's partition id: the UTF-8 bytes of its configured string, or raw bytes
 *   such as the MPL's default 16-byte UUID (which may contain 0x00, see ks_cache_identifier).
 * logical_name: the key store's logical key store name (not its configured name).
 * branch_key_id: as the caller received it, with its length (so an embedded NUL is seen and
 *   refused rather than silently truncating the id).
 * version: the bare 36-char UUID for KS_CACHE_VERSION; must be NULL otherwise.
 */
struct ks_cache_key {
    enum ks_cache_scope scope;
    const unsigned char *partition;
    size_t partition_len;
    const char *logical_name;
    size_t logical_name_len;
    const char *branch_key_id;
    size_t branch_key_id_len;
    const char *version;
};

/*
 * The cache identifier of key into out (docs/reference/cache.md section 1): SHA-384 of
 * 02 00 scope 00 P 00 L 00 B [00 V].
 *
 * NUL: the fields are only NUL-separated, so docs/reference/cache.md suggests refusing NUL in P, L
 * and B. keystored refuses it in L, B and V. In P it is allowed, and must be: the MPL's default
 * partition is 16 raw UUID bytes, which may hold 0x00 (worked example E2 starts with one). That
 * is still unambiguous: with L, B and V free of NUL and the scope fixed by the header, the
 * preimage splits uniquely from the right (B after the last NUL, L before it, P the rest).
 *
 * Also refused with KS_E_INVALID: an unknown scope, an empty partition, an empty L or B, L or B
 * that is not valid UTF-8, a version with a scope other than KS_CACHE_VERSION (or none with
 * it), a version that is not 36 ASCII characters. Pure function; thread-safe.
 */
ks_status ks_cache_identifier(const struct ks_cache_key *key, unsigned char out[KS_CACHE_ID_LEN],
                              struct ks_error *err);

struct ks_cache;
struct ks_cache_ref;

/*
 * Creates a cache. config and clock are copied / borrowed: config is copied; clock (NULL: system
 * clock) must outlive the cache. A config with capacity 0 caches nothing but still lets
 * concurrent misses share one fetch. fan_out 0 is treated as 1. The caller frees the cache with
 * ks_cache_destroy. KS_E_INTERNAL on OOM.
 */
ks_status ks_cache_create(const struct ks_cache_config *config, const struct ks_clock *clock,
                          struct ks_cache **out, struct ks_error *err);

/*
 * Drops every entry (each is freed once its outstanding refs are released; refs may outlive the
 * cache) and frees the cache. Not thread-safe: no other call on this cache may be running or
 * start, in particular no ks_cache_get may be waiting or fetching. NULL is a no-op.
 */
void ks_cache_destroy(struct ks_cache *cache);

/*
 * Produces the materials for a miss or a refresh. Called without any cache lock held, in the
 * thread of the ks_cache_get that fetches. On success returns KS_OK and *out, whose ownership
 * passes to the cache (it is freed with ks_materials_free, and its key moved into dump-excluded
 * memory; key_len must be 1..KS_CACHE_KEY_MAX). On failure returns the status and fills err;
 * *out is ignored.
 */
typedef ks_status (*ks_cache_fetch_fn)(void *ctx, struct ks_materials **out, struct ks_error *err);

#define KS_CACHE_KEY_MAX 64

/*
 * Get-or-fetch with storm tracking (docs/reference/cache.md section 4):
 * - a valid entry outside the grace period is a hit;
 * - a valid entry inside the grace period is a hit for everyone except one caller per grace
 *   interval (if fan-out allows), which refreshes synchronously with fetch(ctx) and gets the new
 *   materials (or, should the refresh fail, the still-valid entry; if that is gone too, the error);
 * - on a miss one caller fetches; concurrent callers for the same identifier wait for it and get
 *   its result: the same materials, or its error (then nothing is cached, and the next call
 *   fetches again);
 * - a waiter whose identifier has been in flight for grace_interval or longer fetches itself
 *   (the MPL's "second fetch"), if fan-out allows;
 * - a caller that must wait longer than in_flight_ttl from the start of its call fails with
 *   KS_E_UNAVAILABLE ("InFlightTTLExceeded"), which says nothing about the key.
 * On KS_OK, *out is a new reference the caller must release with ks_cache_release. On failure
 * *out is NULL and err is filled. KS_E_INVALID for a bad key (ks_cache_identifier).
 */
ks_status ks_cache_get(struct ks_cache *cache, const struct ks_cache_key *key,
                       ks_cache_fetch_fn fetch, void *fetch_ctx, struct ks_cache_ref **out,
                       struct ks_error *err);

/*
 * The materials of a reference: borrowed, immutable, valid until ks_cache_release(ref). The
 * caller must not free or modify them. Thread-safe (the materials are never written while
 * referenced).
 */
const struct ks_materials *ks_cache_ref_materials(const struct ks_cache_ref *ref);

/*
 * Drops a reference. The last one wipes the key and frees the materials. NULL is a no-op.
 * Thread-safe, lock-free unless it is the last reference; may run after ks_cache_destroy.
 */
void ks_cache_release(struct ks_cache_ref *ref);

/*
 * VersionKey happened: drops the ACTIVE entries of (logical_name, branch_key_id) in every
 * partition, and keeps any ACTIVE fetch of that key already in flight from being cached (its
 * waiters still get its result: they asked before the write was seen). Call it after the write
 * has committed. Outstanding refs stay valid. Returns the number of entries dropped. O(1) in the
 * cache size plus the matches (a secondary index by (L, B)), plus a scan of the fetches in flight
 * (at most fan_out plus superseded ones).
 */
size_t ks_cache_invalidate_active(struct ks_cache *cache, const char *logical_name,
                                  const char *branch_key_id);

/*
 * A mutation rewrote the branch key's items (docs/reference/mutations.md section 13): drops
 * every entry of the key (ACTIVE, versions, beacon) in every partition, and keeps fetches in
 * flight from being cached. O(entries). Returns the number of entries dropped.
 */
size_t ks_cache_invalidate_branch_key(struct ks_cache *cache, const char *logical_name,
                                      const char *branch_key_id);

/* Per-partition counters. Counters only grow; entries and in_flight are current values. */
struct ks_cache_stats {
    uint64_t hits;      /* served from a valid entry */
    uint64_t misses;    /* found no valid entry (one per call, whether it fetched or waited) */
    uint64_t waits;     /* blocked on another request's fetch (one per call) */
    uint64_t refreshes; /* grace-period refreshes started */
    uint64_t evictions; /* dropped for capacity (LRU) */
    uint64_t partition_evictions; /* dropped for the per-partition cap (own LRU) */
    uint64_t expirations;         /* dropped because their TTL ran out */
    uint64_t invalidations;       /* dropped by ks_cache_invalidate_active */
    uint64_t fetch_errors;        /* fetch callbacks that failed */
    uint64_t wait_timeouts;       /* InFlightTTLExceeded */
    uint64_t entries;             /* entries currently cached */
    uint64_t in_flight;           /* fetches currently running */
};

/*
 * Calls fn once per partition ever seen, with the partition bytes (borrowed for the call) and a
 * snapshot of its counters. fn runs under the cache lock: it must not call into the cache.
 * Partitions are kept until ks_cache_destroy (there is one per configured tenant).
 */
void ks_cache_stats_foreach(struct ks_cache *cache,
                            void (*fn)(void *ctx, const unsigned char *partition,
                                       size_t partition_len, const struct ks_cache_stats *stats),
                            void *ctx);

#endif
