/*
 * test_compare.c - config/compare.h: backend fingerprints (what a reload may not change under a
 * name) and the settings a running server cannot apply.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/compare.h"

#define YAML                                                                                       \
    "listen: 127.0.0.1:%u\n"                                                                       \
    "server: {threads: %u, max_body_bytes: %u}\n"                                                  \
    "kms_relationships:\n"                                                                         \
    "  - {name: local, type: local, key_file: /tmp/k.keys}\n"                                      \
    "key_stores:\n"                                                                                \
    "  - name: default\n"                                                                          \
    "    logical_key_store_name: %s\n"                                                             \
    "    kms_relationship: local\n"                                                                \
    "    storage: {type: sqlite, path: %s}\n"                                                      \
    "cache: {capacity: %u}\n"                                                                      \
    "tenants:\n"                                                                                   \
    "  - name: app1\n"                                                                             \
    "    token_sha256: "                                                                           \
    "\"60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752\"\n"                       \
    "    role: reader\n"                                                                           \
    "    key_stores: [default]\n"                                                                  \
    "    kms_relationships: [local]\n"

static struct ks_config *load(unsigned port, unsigned threads, unsigned body, const char *logical,
                              const char *path, unsigned capacity)
{
    char yaml[2048];
    struct ks_config *cfg = NULL;
    char *errors = NULL;

    snprintf(yaml, sizeof yaml, YAML, port, threads, body, logical, path, capacity);
    cr_assert_eq(ks_config_load_buffer("t.yaml", yaml, strlen(yaml), &cfg, &errors), KS_OK, "%s",
                 errors ? errors : "");
    return cfg;
}

static int refused(const struct ks_config *a, const struct ks_config *b, const char *needle)
{
    char why[256] = "";
    int r = ks_config_live_change_refused(a, b, why, sizeof why);
    if (r && needle)
        cr_expect(strstr(why, needle) != NULL, "'%s' lacks '%s'", why, needle);
    return r;
}

Test(compare, live_changes)
{
    struct ks_config *base = load(8080, 4, 65536, "L", "/tmp/a.db", 1000);
    struct ks_config *same = load(8080, 4, 65536, "L", "/tmp/a.db", 1000);
    struct ks_config *body = load(8080, 4, 1024, "L", "/tmp/a.db", 1000);
    struct ks_config *port = load(8081, 4, 65536, "L", "/tmp/a.db", 1000);
    struct ks_config *threads = load(8080, 8, 65536, "L", "/tmp/a.db", 1000);
    struct ks_config *cache = load(8080, 4, 65536, "L", "/tmp/a.db", 999);

    cr_expect_eq(refused(base, same, NULL), 0);
    cr_expect_eq(refused(base, body, NULL), 0);
    cr_expect_eq(refused(base, port, "listen"), 1);
    cr_expect_eq(refused(base, threads, "server.threads"), 1);
    cr_expect_eq(refused(base, cache, "cache"), 1);
    ks_config_free(base);
    ks_config_free(same);
    ks_config_free(body);
    ks_config_free(port);
    ks_config_free(threads);
    ks_config_free(cache);
}

/* server.tls is read at start: turning it on or off, or new paths, need a restart. */
Test(compare, tls_change_refused)
{
    struct ks_config *plain = load(8080, 4, 65536, "L", "/tmp/a.db", 1000);
    struct ks_config *tls = load(8080, 4, 65536, "L", "/tmp/a.db", 1000);
    struct ks_config *tls2 = load(8080, 4, 65536, "L", "/tmp/a.db", 1000);
    struct ks_config *other = load(8080, 4, 65536, "L", "/tmp/a.db", 1000);

    tls->server.tls.cert_file = strdup("/c.pem");
    tls->server.tls.key_file = strdup("/k.pem");
    tls2->server.tls.cert_file = strdup("/c.pem");
    tls2->server.tls.key_file = strdup("/k.pem");
    other->server.tls.cert_file = strdup("/c.pem");
    other->server.tls.key_file = strdup("/k2.pem");
    cr_expect_eq(refused(tls, tls2, NULL), 0);
    cr_expect_eq(refused(plain, tls, "server.tls"), 1);
    cr_expect_eq(refused(tls, plain, "server.tls"), 1);
    cr_expect_eq(refused(tls, other, "server.tls"), 1);
    ks_config_free(plain);
    ks_config_free(tls);
    ks_config_free(tls2);
    ks_config_free(other);
}

Test(compare, key_store_fingerprint)
{
    struct ks_config *a = load(8080, 4, 65536, "L", "/tmp/a.db", 1000);
    struct ks_config *b = load(8080, 4, 65536, "L", "/tmp/a.db", 1000);
    struct ks_config *path = load(8080, 4, 65536, "L", "/tmp/b.db", 1000);
    struct ks_config *logical = load(8080, 4, 65536, "M", "/tmp/a.db", 1000);
    unsigned char fa[32], fb[32], fp[32], fl[32], fr[32], fr2[32];

    cr_assert_eq(ks_config_key_store_fingerprint(&a->key_stores[0], fa), KS_OK);
    cr_assert_eq(ks_config_key_store_fingerprint(&b->key_stores[0], fb), KS_OK);
    cr_assert_eq(ks_config_key_store_fingerprint(&path->key_stores[0], fp), KS_OK);
    cr_assert_eq(ks_config_key_store_fingerprint(&logical->key_stores[0], fl), KS_OK);
    cr_expect_eq(memcmp(fa, fb, 32), 0);
    cr_expect_neq(memcmp(fa, fp, 32), 0);
    cr_expect_neq(memcmp(fa, fl, 32), 0);
    cr_assert_eq(ks_config_kms_relationship_fingerprint(&a->kms_relationships[0], fr), KS_OK);
    free(a->kms_relationships[0].key_file);
    a->kms_relationships[0].key_file = strdup("/tmp/other.keys");
    cr_assert_eq(ks_config_kms_relationship_fingerprint(&a->kms_relationships[0], fr2), KS_OK);
    cr_expect_neq(memcmp(fr, fr2, 32), 0);
    ks_config_free(a);
    ks_config_free(b);
    ks_config_free(path);
    ks_config_free(logical);
}
