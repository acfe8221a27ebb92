/*
 * cache.c - the `cache:` section and its consistency rules (docs/reference/cache.md section 4).
 */
#include "config/config.h"
#include "config/parse.h"

#include <inttypes.h>

/*
 * The MPL models the cache counts and durations as CountingNumber (int32 >= 1); ttlSeconds is a
 * PositiveLong, but we bound it to int32 too so that ttl * 1e6 microseconds cannot overflow.
 */
#define CACHE_MAX 2147483647u

static yaml_node_t *first_of(yaml_node_t *a, yaml_node_t *b, yaml_node_t *fallback)
{
    return a ? a : b ? b : fallback;
}

/*
 * Cache settings and their consistency rules (docs/reference/cache.md section 4: SPEC storm
 * tracking "Consistency", MPL ConsistentSettings and CheckCache).
 */
void ks_config_section_cache(struct ks_config_parser *p, yaml_node_t *n)
{
    enum { C_CAPACITY, C_TTL, C_PERIOD, C_INTERVAL, C_FAN_OUT, C_IN_FLIGHT, C_PER_PART, C_COUNT };
    struct ks_config_field f[C_COUNT] = {
        [C_CAPACITY] = {.key = "capacity"},
        [C_TTL] = {.key = "ttl_seconds"},
        [C_PERIOD] = {.key = "grace_period_seconds"},
        [C_INTERVAL] = {.key = "grace_interval_seconds"},
        [C_FAN_OUT] = {.key = "fan_out"},
        [C_IN_FLIGHT] = {.key = "in_flight_ttl_seconds"},
        [C_PER_PART] = {.key = "max_entries_per_partition"},
    };
    struct ks_cache_config *c = &p->cfg->cache;
    uint64_t *dst[C_COUNT] = {&c->capacity,
                              &c->ttl_seconds,
                              &c->grace_period_seconds,
                              &c->grace_interval_seconds,
                              &c->fan_out,
                              &c->in_flight_ttl_seconds,
                              &c->max_entries_per_partition};
    char path[KS_CONFIG_PATH_LEN];
    size_t i;
    int ok = 1;

    if (ks_config_get_fields(p, n, "cache", f, C_COUNT) < 0)
        return;
    for (i = 0; i < C_COUNT; i++)
        if (f[i].value &&
            ks_config_get_uint(p, f[i].value, ks_config_join_path(path, "cache", f[i].key),
                               /* capacity 0 is the MPL's "No" cache (LocalCMC(0)): every get reads
                                * storage and KMS, concurrent misses still share one fetch */
                               i == C_CAPACITY || i == C_PER_PART ? 0 : 1, CACHE_MAX, dst[i]))
            ok = 0;
    if (!ok)
        return;
    /* Each rule is reported at the setting the operator wrote, else at the other one. */
    if (c->grace_interval_seconds > c->grace_period_seconds)
        ks_config_error(p, first_of(f[C_INTERVAL].value, f[C_PERIOD].value, n),
                        "cache.grace_interval_seconds (%" PRIu64
                        ") is greater than cache.grace_period_seconds (%" PRIu64
                        "); expected grace_interval_seconds <= grace_period_seconds",
                        c->grace_interval_seconds, c->grace_period_seconds);
    if (c->in_flight_ttl_seconds > c->grace_period_seconds)
        ks_config_error(p, first_of(f[C_IN_FLIGHT].value, f[C_PERIOD].value, n),
                        "cache.in_flight_ttl_seconds (%" PRIu64
                        ") is greater than cache.grace_period_seconds (%" PRIu64
                        "); expected in_flight_ttl_seconds <= grace_period_seconds",
                        c->in_flight_ttl_seconds, c->grace_period_seconds);
    if (c->grace_interval_seconds > c->in_flight_ttl_seconds)
        ks_config_error(p, first_of(f[C_INTERVAL].value, f[C_IN_FLIGHT].value, n),
                        "cache.grace_interval_seconds (%" PRIu64
                        ") is greater than cache.in_flight_ttl_seconds (%" PRIu64
                        "); expected grace_interval_seconds <= in_flight_ttl_seconds",
                        c->grace_interval_seconds, c->in_flight_ttl_seconds);
    if (c->ttl_seconds <= c->grace_period_seconds)
        ks_config_error(p, first_of(f[C_TTL].value, f[C_PERIOD].value, n),
                        "cache.ttl_seconds (%" PRIu64
                        ") is not greater than cache.grace_period_seconds (%" PRIu64
                        "); expected ttl_seconds > grace_period_seconds",
                        c->ttl_seconds, c->grace_period_seconds);
}
