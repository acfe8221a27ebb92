/*
 * testing.h - TESTS ONLY. Hooks into keystore/ that unit tests use to look behind the public
 * interface: to change items behind a keystore's back, to check that a released key was wiped,
 * to wake waiters after moving an injected clock, to read one partition's counters.
 *
 * No production code calls these. Only tests include this header, and the files that define the
 * hooks (cache.c, keystore.c) include it for their prototypes; nothing else does.
 */
#ifndef KS_KEYSTORE_TESTING_H
#define KS_KEYSTORE_TESTING_H

/* Declarations only, so that cache.c can include this without keystore.h (the dependency runs
 * keystore.c -> cache.c, never back). */
struct ks_cache;
struct ks_cache_ref;
struct ks_cache_stats;
struct ks_keystore;
struct ks_storage;

/* The storage backend of ks, borrowed: for tests that change items behind the keystore's back.
 * The layers above reach storage only through the keystore's operations. */
struct ks_storage *ks_keystore_storage(struct ks_keystore *ks);

/*
 * The address of the dump-excluded slot holding ref's key. The slot stays mapped until the cache
 * is destroyed and its last ref released, so a test may read it after ks_cache_release(ref) to
 * check that the key was wiped (until the slot is reused).
 */
const unsigned char *ks_cache_debug_key_slot(const struct ks_cache_ref *ref);

/*
 * Wakes every waiting ks_cache_get so it re-reads the clock at once (waits otherwise end at the
 * next deadline computed from the clock, or when a fetch finishes): for tests that moved an
 * injected clock forward.
 */
void ks_cache_wake_all(struct ks_cache *cache);

/* Counters of one partition into *out (zeros if never seen). Returns 1 if seen, else 0.
 * (Production reads the counters through ks_cache_stats_foreach.) */
int ks_cache_stats_partition(struct ks_cache *cache, const unsigned char *partition,
                             size_t partition_len, struct ks_cache_stats *out);

#endif
