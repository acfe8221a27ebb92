/*
 * compare.c - backend fingerprints and the settings a reload cannot apply (compare.h).
 */
#include "config/compare.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

/* A field: its length (or ~0 for NULL, so that NULL and "" differ), then its bytes. */
static int add(EVP_MD_CTX *md, const void *p, size_t len)
{
    uint64_t n = p ? (uint64_t)len : ~(uint64_t)0;
    return EVP_DigestUpdate(md, &n, sizeof n) == 1 && (!p || EVP_DigestUpdate(md, p, len) == 1);
}

static int add_str(EVP_MD_CTX *md, const char *s)
{
    return add(md, s, s ? strlen(s) : 0);
}

static int add_uint(EVP_MD_CTX *md, uint64_t v)
{
    return add(md, &v, sizeof v);
}

static int add_credentials(EVP_MD_CTX *md, const struct ks_aws_credentials_options *c)
{
    return add_uint(md, (uint64_t)c->source) && add_str(md, c->profile) &&
           add_str(md, c->access_key_id) && add_str(md, c->secret_access_key) &&
           add_str(md, c->session_token);
}

static ks_status finish(EVP_MD_CTX *md, int ok, unsigned char out[KS_CONFIG_FINGERPRINT_LEN])
{
    unsigned int len = 0;
    ok = ok && EVP_DigestFinal_ex(md, out, &len) == 1 && len == KS_CONFIG_FINGERPRINT_LEN;
    EVP_MD_CTX_free(md);
    return ok ? KS_OK : KS_E_INTERNAL;
}

ks_status ks_config_key_store_fingerprint(const struct ks_key_store_config *kc,
                                          unsigned char out[KS_CONFIG_FINGERPRINT_LEN])
{
    const struct ks_storage_config *s = &kc->storage;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 && add_str(md, "key_store") &&
             add_str(md, kc->name) && add_str(md, kc->logical_key_store_name) &&
             add_str(md, kc->key_store_id) && add_uint(md, (uint64_t)s->type) &&
             add_str(md, s->path) && add_str(md, s->table) && add_str(md, s->region) &&
             add_str(md, s->endpoint) && add_credentials(md, &s->credentials) &&
             add_uint(md, s->timeout_ms) && add_uint(md, s->max_attempts) &&
             /* a rotation schedule runs on the long-lived backend with the key store's default
              * relationship: both are fixed while it runs */
             add_str(md, kc->rotation.interval_seconds ? kc->kms_relationship : "") &&
             add_uint(md, kc->rotation.interval_seconds) &&
             add_uint(md, kc->rotation.check_interval_seconds) &&
             /* held by the long-lived keystore (server/app.c): fixed until a restart */
             add_uint(md, (uint64_t)kc->default_hierarchy_version);
    return finish(md, ok, out);
}

ks_status ks_config_kms_relationship_fingerprint(const struct ks_kms_rel_config *rc,
                                                 unsigned char out[KS_CONFIG_FINGERPRINT_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t i;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             add_str(md, "kms_relationship") && add_str(md, rc->name) &&
             add_uint(md, (uint64_t)rc->type) && add_str(md, rc->key_file) &&
             add_uint(md, (uint64_t)rc->has_kms_configuration) &&
             add_uint(md, (uint64_t)rc->kms.kind) && add_str(md, rc->kms.arn) &&
             add_str(md, rc->kms.region) && add_str(md, rc->region) && add_str(md, rc->endpoint) &&
             add_credentials(md, &rc->credentials) && add_uint(md, rc->n_grant_tokens) &&
             add_uint(md, rc->timeout_ms) && add_uint(md, rc->max_attempts);
    for (i = 0; ok && i < rc->n_grant_tokens; i++)
        ok = add_str(md, rc->grant_tokens[i]);
    return finish(md, ok, out);
}

static int differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

int ks_config_live_change_refused(const struct ks_config *running, const struct ks_config *next,
                                  char *why, size_t why_len)
{
    const struct ks_server_config *a = &running->server, *b = &next->server;
    const char *what = NULL;

    /* max_body_bytes, max_keyring_body_bytes and max_json_depth are read per request, from the
     * request's snapshot, and may change; everything else here is fixed when the daemon starts. A
     * new server: setting must be added here (or read per request). The cache section holds only
     * integers. */
    if (differs(running->listen_host, next->listen_host) ||
        running->listen_port != next->listen_port)
        what = "listen";
    else if (a->threads != b->threads)
        what = "server.threads";
    else if (a->connection_timeout_seconds != b->connection_timeout_seconds ||
             a->header_timeout_seconds != b->header_timeout_seconds)
        what = "server connection timeouts (connection_timeout_seconds, header_timeout_seconds)";
    else if (a->max_connections != b->max_connections ||
             a->max_connections_per_ip != b->max_connections_per_ip)
        what = "server connection limits (max_connections, max_connections_per_ip)";
    else if (a->max_uri_bytes != b->max_uri_bytes || a->max_header_bytes != b->max_header_bytes)
        what = "server.max_uri_bytes or server.max_header_bytes";
    else if (a->readiness_interval_ms != b->readiness_interval_ms ||
             a->readiness_timeout_ms != b->readiness_timeout_ms)
        what = "server readiness settings";
    else if (memcmp(&running->cache, &next->cache, sizeof running->cache) != 0)
        what = "cache section";
    /* The audit log is opened once at start and reopened on SIGHUP at the same path
     * (docs/architecture.md section 12): moving it is a restart, so that no line goes to a file
     * the operator does not expect. */
    else if (differs(running->audit.path, next->audit.path) ||
             running->audit.fsync != next->audit.fsync ||
             running->audit.fsync_interval_ms != next->audit.fsync_interval_ms)
        what = "audit section";
    /* The certificate and key are handed to libmicrohttpd when it starts (server/tls.c): a new
     * certificate, even under the same paths, needs a restart (README "TLS"). */
    else if (differs(a->tls.cert_file, b->tls.cert_file) ||
             differs(a->tls.key_file, b->tls.key_file))
        what = "server.tls";
    if (!what)
        return 0;
    snprintf(why, why_len, "%s changed; it cannot change without a restart (nothing was applied)",
             what);
    return 1;
}
