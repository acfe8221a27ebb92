/*
 * metrics.c - GET /metrics in the Prometheus text format (version 0.0.4): the HTTP front end's
 * requests, latency, in-flight and rate-limited counts (handlers/http_metrics.h, issue 12), the
 * shared cache's counters per partition (issue 5), storage reads per key store, KMS calls per
 * relationship, operation and outcome, and the AWS layer's retries. Counters and configured
 * names only: no key, token, tenant name or key id is ever a label (README "Metrics").
 *
 * Audit failures (issue 12, part 1): keystored_audit_failures_total is the audit log's own
 * counter (common/audit.h, ks_audit_failures): every line it could not write, including those of
 * requests refused while it was failing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "aws/backoff.h"
#include "common/audit.h"
#include "handlers/handlers.h"
#include "handlers/http_metrics.h"
#include "keyring/keyring.h"
#include "keystore/cache.h"
#include "keystore/rotation.h"

struct partition_stats {
    char *name;
    struct ks_cache_stats stats;
};

struct snapshot {
    struct partition_stats *items;
    size_t count, cap;
    int failed;
};

/* Runs under the cache lock: copies only. */
static void collect(void *ctx, const unsigned char *partition, size_t len,
                    const struct ks_cache_stats *stats)
{
    struct snapshot *snap = ctx;
    if (snap->failed)
        return;
    if (snap->count == snap->cap) {
        size_t cap = snap->cap ? 2 * snap->cap : 16;
        struct partition_stats *n = realloc(snap->items, cap * sizeof *n);
        if (!n) {
            snap->failed = 1;
            return;
        }
        snap->items = n;
        snap->cap = cap;
    }
    /* Partition bytes are not NUL-terminated: copy exactly len of them. */
    snap->items[snap->count].name = malloc(len + 1);
    if (!snap->items[snap->count].name) {
        snap->failed = 1;
        return;
    }
    memcpy(snap->items[snap->count].name, partition, len);
    snap->items[snap->count].name[len] = '\0';
    snap->items[snap->count].stats = *stats;
    snap->count++;
}

/*
 * Without server.metrics_tenant_labels, the partitions a tenant gets by default ("tenant:" and
 * its name, config/tenants.c) would put tenant names in labels: they are summed into one
 * series, partition="tenant:*". Partitions an operator named (shared ones) stay as they are.
 */
static void merge_tenant_partitions(struct snapshot *snap)
{
    static const char prefix[] = "tenant:";
    struct partition_stats *merged = NULL;
    char *star = strdup("tenant:*");
    size_t i, kept = 0, f;

    if (!star) {
        snap->failed = 1; /* nothing moved yet: the caller frees the items and answers 500 */
        return;
    }
    for (i = 0; i < snap->count; i++) {
        struct partition_stats *p = &snap->items[i];
        if (strncmp(p->name, prefix, sizeof prefix - 1) != 0) {
            snap->items[kept++] = *p;
            continue;
        }
        if (!merged) {
            free(p->name);
            p->name = star;
            star = NULL;
            snap->items[kept] = *p;
            merged = &snap->items[kept++];
            continue;
        }
        for (f = 0; f < sizeof p->stats / sizeof(uint64_t); f++)
            ((uint64_t *)&merged->stats)[f] += ((const uint64_t *)&p->stats)[f];
        free(p->name);
        p->name = NULL;
    }
    free(star); /* no default partition seen */
    snap->count = kept;
}

/* A label value: backslash, double quote and newline escaped (exposition format). */
static void label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

#define CACHE_METRIC(field, type, help)                                                            \
    {                                                                                              \
#field, offsetof(struct ks_cache_stats, field), type, help                                 \
    }

static const struct {
    const char *name;
    size_t offset;
    const char *type;
    const char *help;
} cache_metrics[] = {
    CACHE_METRIC(hits, "counter", "Gets served from the cache."),
    CACHE_METRIC(misses, "counter", "Gets that found no valid entry."),
    CACHE_METRIC(waits, "counter", "Gets that waited for another request's fetch."),
    CACHE_METRIC(refreshes, "counter", "Grace-period refreshes started."),
    CACHE_METRIC(evictions, "counter", "Entries evicted at capacity (least recently used)."),
    CACHE_METRIC(partition_evictions, "counter",
                 "Entries evicted at the partition's cap (cache.max_entries_per_partition)."),
    CACHE_METRIC(expirations, "counter", "Entries dropped after their TTL."),
    CACHE_METRIC(invalidations, "counter", "ACTIVE entries dropped by VersionKey."),
    CACHE_METRIC(fetch_errors, "counter", "Fetches (storage read + KMS Decrypt) that failed."),
    CACHE_METRIC(wait_timeouts, "counter", "Waits that exceeded the in-flight TTL."),
    CACHE_METRIC(entries, "gauge", "Entries currently cached."),
    CACHE_METRIC(in_flight, "gauge", "Fetches currently running."),
};

/* Calls (or errors) of one operation on relationship i. */
static unsigned long long kms_count(const struct ks_app *app, size_t i, size_t op, int errors)
{
    const struct ks_kms_counters *c = ks_app_relationship(app, i)->counters;
    if (!c)
        return 0;
    return errors ? c->errors[op] : c->calls[op];
}

/* Keyring wraps and unwraps by outcome (issue 13): ok, invalid, unable_to_decrypt,
 * dependency_error. Counts only: never a key id, a context value or a data key. */
static void write_keyring(FILE *f, const struct ks_app *app)
{
    const struct ks_keyring_counters *c = ks_app_keyring_counters(app);
    static const char *const kinds[] = {"wraps", "unwraps"};
    size_t k, o;

    for (k = 0; k < 2; k++) {
        fprintf(f,
                "# HELP keystored_keyring_%s_total Keyring %s by outcome.\n"
                "# TYPE keystored_keyring_%s_total counter\n",
                kinds[k], kinds[k], kinds[k]);
        for (o = 0; o < KS_KEYRING_OUTCOME_COUNT; o++)
            fprintf(f, "keystored_keyring_%s_total{outcome=\"%s\"} %llu\n", kinds[k],
                    ks_keyring_outcome_name((enum ks_keyring_outcome)o),
                    !c       ? 0ULL
                    : k == 0 ? (unsigned long long)c->wraps[o]
                             : (unsigned long long)c->unwraps[o]);
    }
}

/* Scheduled rotation (issue 14): outcomes, and the age of the oldest ACTIVE, per key store
 * with `rotation:` configured. */
static void write_rotation(FILE *f, const struct ks_app *app, const struct ks_config *cfg)
{
    const struct ks_clock *clock = ks_clock_system();
    int64_t now = (int64_t)clock->now_us(clock->ctx), oldest;
    size_t i, o;

    fputs("# HELP keystored_rotations_total Scheduled rotation: keys found due, by outcome.\n"
          "# TYPE keystored_rotations_total counter\n",
          f);
    for (i = 0; i < cfg->n_key_stores; i++) {
        const struct ks_rotation *r = ks_app_rotation(app, i);
        for (o = 0; r && o < KS_ROTATION_OUTCOME_COUNT; o++) {
            fputs("keystored_rotations_total{key_store=\"", f);
            label(f, cfg->key_stores[i].name);
            fprintf(f, "\",outcome=\"%s\"} %llu\n",
                    ks_rotation_outcome_name((enum ks_rotation_outcome)o),
                    ks_rotation_count(r, (enum ks_rotation_outcome)o));
        }
    }
    fputs("# HELP keystored_oldest_active_key_age_seconds Age of the oldest ACTIVE branch key seen "
          "by the last full pass of scheduled rotation.\n"
          "# TYPE keystored_oldest_active_key_age_seconds gauge\n",
          f);
    for (i = 0; i < cfg->n_key_stores; i++) {
        const struct ks_rotation *r = ks_app_rotation(app, i);
        if (!r || ks_rotation_oldest(r, &oldest) != 0)
            continue;
        fputs("keystored_oldest_active_key_age_seconds{key_store=\"", f);
        label(f, cfg->key_stores[i].name);
        fprintf(f, "\"} %.3f\n", now > oldest ? (double)(now - oldest) / 1e6 : 0.0);
    }
}

/* KMS calls by outcome (issue 12): ok or error, from the same counters as the two families
 * above (kept for existing dashboards). */
static void write_kms_outcomes(FILE *f, const struct ks_app *app, const struct ks_config *cfg)
{
    size_t i, m;
    fputs("# HELP keystored_kms_calls_total KMS calls by relationship, operation and outcome.\n"
          "# TYPE keystored_kms_calls_total counter\n",
          f);
    for (i = 0; i < cfg->n_kms_relationships; i++) {
        for (m = 0; m < KS_KMS_OP_COUNT; m++) {
            unsigned long long calls = kms_count(app, i, m, 0), errors = kms_count(app, i, m, 1);
            fputs("keystored_kms_calls_total{relationship=\"", f);
            label(f, cfg->kms_relationships[i].name);
            fprintf(f, "\",operation=\"%s\",outcome=\"ok\"} %llu\n",
                    ks_kms_op_name((enum ks_kms_op)m), calls > errors ? calls - errors : 0ULL);
            fputs("keystored_kms_calls_total{relationship=\"", f);
            label(f, cfg->kms_relationships[i].name);
            fprintf(f, "\",operation=\"%s\",outcome=\"error\"} %llu\n",
                    ks_kms_op_name((enum ks_kms_op)m), errors);
        }
    }
}

/* Storage calls of the key paths by key store, operation and outcome (issue 12). */
static void write_storage_calls(FILE *f, const struct ks_app *app, const struct ks_config *cfg)
{
    size_t i, op, o;
    fputs("# HELP keystored_storage_calls_total Storage calls of the key operations by key store, "
          "operation and outcome.\n# TYPE keystored_storage_calls_total counter\n",
          f);
    for (i = 0; i < cfg->n_key_stores; i++) {
        for (op = 0; op < KS_KEYSTORE_STORAGE_OP_COUNT; op++) {
            for (o = 0; o < KS_KEYSTORE_STORAGE_OUTCOME_COUNT; o++) {
                fputs("keystored_storage_calls_total{key_store=\"", f);
                label(f, cfg->key_stores[i].name);
                fprintf(f, "\",operation=\"%s\",outcome=\"%s\"} %llu\n",
                        ks_keystore_storage_op_name((enum ks_keystore_storage_op)op),
                        ks_keystore_storage_outcome_name((enum ks_keystore_storage_outcome)o),
                        ks_keystore_storage_calls(ks_app_keystore(app, i),
                                                  (enum ks_keystore_storage_op)op,
                                                  (enum ks_keystore_storage_outcome)o));
            }
        }
    }
}

/* The AWS layer's retries, process-wide (aws/backoff.h): KMS and DynamoDB together. */
static void write_retries(FILE *f)
{
    struct ks_aws_retry_stats r;
    ks_aws_retry_stats_get(&r);
    fprintf(f,
            "# HELP keystored_aws_retries_total Retries of AWS calls (KMS, DynamoDB) by reason.\n"
            "# TYPE keystored_aws_retries_total counter\n"
            "keystored_aws_retries_total{reason=\"throttled\"} %llu\n"
            "keystored_aws_retries_total{reason=\"transient\"} %llu\n"
            "# HELP keystored_aws_retries_refused_total Retries not made because the retry quota "
            "was empty.\n# TYPE keystored_aws_retries_refused_total counter\n"
            "keystored_aws_retries_refused_total %llu\n",
            r.throttled, r.transient, r.quota_exhausted);
}

ks_status ks_handle_metrics(const struct ks_request *req, struct ks_response *resp,
                            struct ks_error *err)
{
    const struct ks_app *app = req->app;
    const struct ks_config *cfg = ks_app_config(app);
    struct snapshot snap = {0};
    char *text = NULL;
    size_t len = 0, i, m;
    FILE *f;

    ks_cache_stats_foreach(ks_app_cache(app), collect, &snap);
    if (!snap.failed && !cfg->server.metrics_tenant_labels)
        merge_tenant_partitions(&snap);
    f = snap.failed ? NULL : open_memstream(&text, &len);
    if (f) {
        ks_http_metrics_write(req->http_metrics, f);
        fprintf(f,
                "# HELP keystored_audit_failures_total Audit lines that could not be written (each "
                "request answered 503).\n# TYPE keystored_audit_failures_total counter\n"
                "keystored_audit_failures_total %llu\n",
                (unsigned long long)ks_audit_failures(ks_app_audit(app)));
        for (m = 0; m < sizeof cache_metrics / sizeof cache_metrics[0]; m++) {
            const char *suffix = strcmp(cache_metrics[m].type, "counter") == 0 ? "_total" : "";
            fprintf(f, "# HELP keystored_cache_%s%s %s\n# TYPE keystored_cache_%s%s %s\n",
                    cache_metrics[m].name, suffix, cache_metrics[m].help, cache_metrics[m].name,
                    suffix, cache_metrics[m].type);
            for (i = 0; i < snap.count; i++) {
                const uint64_t *v = (const uint64_t *)((const char *)&snap.items[i].stats +
                                                       cache_metrics[m].offset);
                fprintf(f, "keystored_cache_%s%s{partition=\"", cache_metrics[m].name, suffix);
                label(f, snap.items[i].name);
                fprintf(f, "\"} %llu\n", (unsigned long long)*v);
            }
        }
        fputs("# HELP keystored_storage_reads_total Item reads by the get operations.\n"
              "# TYPE keystored_storage_reads_total counter\n",
              f);
        for (i = 0; i < cfg->n_key_stores; i++) {
            fputs("keystored_storage_reads_total{key_store=\"", f);
            label(f, cfg->key_stores[i].name);
            fprintf(f, "\"} %llu\n", ks_keystore_storage_reads(ks_app_keystore(app, i)));
        }
        fputs("# HELP keystored_kms_requests_total KMS calls by relationship and operation.\n"
              "# TYPE keystored_kms_requests_total counter\n",
              f);
        for (i = 0; i < cfg->n_kms_relationships; i++) {
            for (m = 0; m < KS_KMS_OP_COUNT; m++) {
                fputs("keystored_kms_requests_total{relationship=\"", f);
                label(f, cfg->kms_relationships[i].name);
                fprintf(f, "\",operation=\"%s\"} %llu\n", ks_kms_op_name((enum ks_kms_op)m),
                        kms_count(app, i, m, 0));
            }
        }
        fputs("# HELP keystored_kms_errors_total KMS calls that failed.\n"
              "# TYPE keystored_kms_errors_total counter\n",
              f);
        for (i = 0; i < cfg->n_kms_relationships; i++) {
            for (m = 0; m < KS_KMS_OP_COUNT; m++) {
                fputs("keystored_kms_errors_total{relationship=\"", f);
                label(f, cfg->kms_relationships[i].name);
                fprintf(f, "\",operation=\"%s\"} %llu\n", ks_kms_op_name((enum ks_kms_op)m),
                        kms_count(app, i, m, 1));
            }
        }
        write_kms_outcomes(f, app, cfg);
        write_storage_calls(f, app, cfg);
        write_retries(f);
        write_keyring(f, app);
        write_rotation(f, app, cfg);
        if (fclose(f) != 0) {
            free(text);
            text = NULL;
        }
    }
    for (i = 0; i < snap.count; i++)
        free(snap.items[i].name);
    free(snap.items);
    if (!text)
        return ks_error_set(err, KS_E_INTERNAL, "could not build the metrics");
    resp->body = text;
    resp->body_len = len;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->status = 200;
    return KS_OK;
}
