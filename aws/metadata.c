/*
 * metadata.c - the credential sources that ask an HTTP endpoint (docs/reference/aws-apis.md):
 * the container credentials endpoint (section 5.3) and EC2 IMDSv2 (section 5.4).
 *
 * Test hooks (read through the provider's getenv, so tests inject them):
 *   KEYSTORED_CONTAINER_CREDENTIALS_HOST  replaces "http://169.254.170.2" as the base of
 *                                         AWS_CONTAINER_CREDENTIALS_RELATIVE_URI;
 *   AWS_EC2_METADATA_SERVICE_ENDPOINT     the SDKs' own IMDS endpoint override.
 *
 * Secrets (keys, session tokens, the IMDS token, the responses) live in wiped buffers; the
 * credential documents are read with aws/json_scan.h. Every failure here happens at request
 * time and is KS_E_UNAVAILABLE (aws/provider.h).
 */
#include "aws/provider.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "common/secbuf.h"
#include "common/secret.h"
#include "aws/http.h"

/* Section 5.5 (B-CRED): the advisory refresh window, for IMDS static stability. */
#define ADVISORY_REFRESH_S (15u * 60u)
/* Section 5.4: token TTL requested, and how long it is cached (aws-c-auth uses 21595 s). */
#define IMDS_TOKEN_TTL "21600"
#define IMDS_TOKEN_CACHE_S 21595u
#define IMDS_TIMEOUT_MS 1000L /* C-AUTH / B-CRED: 1 s */
#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"
#define CONTAINER_DEFAULT_HOST "http://169.254.170.2"
#define CONTAINER_CONNECT_TIMEOUT_MS 2000L
#define CONTAINER_TIMEOUT_MS 5000L
#define METADATA_MAX_BODY (64u * 1024u)

/* --- HTTP for the metadata services ------------------------------------------------------ */

/*
 * One metadata request. No proxy (a proxy must never see the metadata service), no redirects,
 * http/https only. KS_OK with *status and body filled (any HTTP status), KS_E_UNAVAILABLE when
 * nothing came back.
 */
static ks_status http_fetch(const char *method, const char *url, struct curl_slist *headers,
                            struct curl_slist *resolve, long connect_ms, long timeout_ms,
                            long *status, struct ks_secbuf *body, struct ks_error *err)
{
    CURL *h = curl_easy_init();
    if (h == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "keystored/0.1");
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (resolve != NULL) {
        curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, ks_secbuf_curl_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    CURLcode rc = curl_easy_perform(h);
    *status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        ks_secbuf_free(body);
        return ks_error_set(err, KS_E_UNAVAILABLE,
                            "AWS credentials unavailable: credentials endpoint: %s",
                            curl_easy_strerror(rc));
    }
    return KS_OK;
}

/* A metadata endpoint that answers with an error status has no credentials for us now. */
static ks_status metadata_http_error(const char *what, long status, struct ks_error *err)
{
    return ks_error_set(err, KS_E_UNAVAILABLE, "AWS credentials unavailable: %s returned HTTP %ld",
                        what, status);
}

/* Moves the credential members of a scanned document into *out (ownership passes). */
static void take_credentials(struct ks_json_scan_field *id, struct ks_json_scan_field *secret,
                             struct ks_json_scan_field *token, uint64_t expiration,
                             struct ks_aws_credentials *out)
{
    out->access_key_id = id->value;
    out->secret_access_key = secret->value;
    out->session_token = token->value != NULL && token->len > 0 ? token->value : NULL;
    out->expiration = expiration;
    id->value = secret->value = NULL;
    if (out->session_token != NULL) {
        token->value = NULL;
    }
}

/* Parses the credential document of the container and IMDS endpoints (5.3, 5.4) with the
 * wiped scanner (aws/json_scan.h). */
static ks_status parse_credential_document(const char *what, const struct ks_secbuf *body,
                                           struct ks_aws_credentials *out, struct ks_error *err)
{
    enum { F_ID, F_SECRET, F_TOKEN, F_EXPIRATION, F_CODE, F_COUNT };
    struct ks_json_scan_field f[F_COUNT] = {
        [F_ID] = {.name = "AccessKeyId"}, [F_SECRET] = {.name = "SecretAccessKey"},
        [F_TOKEN] = {.name = "Token"},    [F_EXPIRATION] = {.name = "Expiration"},
        [F_CODE] = {.name = "Code"},
    };
    ks_status st = KS_E_UNAVAILABLE;
    uint64_t exp = 0;
    if (body->data == NULL || ks_json_scan_object(body->data, body->len, f, F_COUNT) != 0) {
        return ks_error_set(err, st, "AWS credentials unavailable: %s answered malformed JSON",
                            what);
    }
    const char *code = f[F_CODE].value, *secret = f[F_SECRET].value, *token = f[F_TOKEN].value;
    if (code != NULL && strcmp(code, "Success") != 0) {
        ks_error_set(err, st, "AWS credentials unavailable: %s answered a failure Code", what);
        ks_error_set_detail(err, "%s: credentials response Code %.64s", what, code);
    } else if (!ks_aws_key_id_valid(f[F_ID].value) || secret == NULL || secret[0] == '\0' ||
               !ks_aws_header_safe(secret) || (token != NULL && !ks_aws_header_safe(token))) {
        ks_error_set(err, st, "AWS credentials unavailable: %s answered no usable keys", what);
    } else if (f[F_EXPIRATION].value != NULL &&
               ks_aws_time_parse_iso8601(f[F_EXPIRATION].value, &exp) != 0) {
        ks_error_set(err, st, "AWS credentials unavailable: %s answered a bad Expiration", what);
    } else {
        take_credentials(&f[F_ID], &f[F_SECRET], &f[F_TOKEN], exp, out);
        st = KS_OK;
    }
    ks_json_scan_free(f, F_COUNT);
    return st;
}

/* --- 5.3 container ----------------------------------------------------------------------- */

/* 5.3: the hosts a plain-http full URI may resolve to. */
static int container_address_allowed(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        uint32_t a = ntohl(in->sin_addr.s_addr);
        return (a >> 24) == 127 || a == 0xa9fea902u /* 169.254.170.2 */ ||
               a == 0xa9feaa17u /* 169.254.170.23 */;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        static const unsigned char eks[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0,
                                              0,    0,    0,    0,    0, 0, 0, 0x23};
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               memcmp(&in6->sin6_addr, eks, sizeof(eks)) == 0;
    }
    return 0;
}

/*
 * Checks that every address of res is allowed (5.3) and, for a host name (not a literal),
 * builds the CURLOPT_RESOLVE entry "host:port:addr,addr" that pins curl to them.
 */
static ks_status pin_addresses(const struct addrinfo *res, const char *host, const char *port,
                               int literal, struct curl_slist **resolve, struct ks_error *err)
{
    char pin[1024];
    int pn = snprintf(pin, sizeof(pin), "%s:%s:", host, port);
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (!container_address_allowed(ai->ai_addr)) {
            return ks_error_set(err, KS_E_UNAVAILABLE,
                                "AWS credentials unavailable: AWS_CONTAINER_CREDENTIALS_FULL_URI "
                                "over http must name a loopback, 169.254.170.2, 169.254.170.23 "
                                "or fd00:ec2::23 host");
        }
        char addr[INET6_ADDRSTRLEN];
        const void *src =
            ai->ai_family == AF_INET
                ? (const void *)&((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr
                : (const void *)&((const struct sockaddr_in6 *)(const void *)ai->ai_addr)
                      ->sin6_addr;
        if (inet_ntop(ai->ai_family, src, addr, sizeof(addr)) != NULL && pn > 0 &&
            (size_t)pn < sizeof(pin)) {
            int m = snprintf(pin + pn, sizeof(pin) - (size_t)pn,
                             ai->ai_family == AF_INET6 ? "%s[%s]" : "%s%s",
                             pin[pn - 1] == ':' ? "" : ",", addr);
            pn = m > 0 ? pn + m : pn;
        }
    }
    if (!literal && pn > 0 && (size_t)pn < sizeof(pin)) {
        *resolve = curl_slist_append(NULL, pin);
        if (*resolve == NULL) {
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
        }
    }
    return KS_OK;
}

/*
 * 5.3: a full URI must be https, or http to a host whose every address is allowed. A host name
 * is resolved here and pinned with CURLOPT_RESOLVE to the addresses that were checked, so that
 * a second DNS answer cannot point curl elsewhere.
 */
static ks_status container_check_url(const char *url, struct curl_slist **resolve,
                                     struct ks_error *err)
{
    ks_status st = KS_E_UNAVAILABLE;
    char *scheme = NULL, *host = NULL, *port = NULL;
    struct addrinfo *res = NULL;
    CURLU *u = curl_url();
    if (u == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        ks_error_set(
            err, st,
            "AWS credentials unavailable: AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL");
        goto out;
    }
    if (strcmp(scheme, "https") == 0) {
        st = KS_OK;
        goto out;
    }
    if (strcmp(scheme, "http") != 0) {
        ks_error_set(err, st,
                     "AWS credentials unavailable: AWS_CONTAINER_CREDENTIALS_FULL_URI must be http "
                     "or https");
        goto out;
    }
    char bare[256];
    size_t hlen = strlen(host);
    if (hlen >= sizeof(bare)) {
        ks_error_set(err, st,
                     "AWS credentials unavailable: container credentials host is too long");
        goto out;
    }
    if (host[0] == '[' && hlen > 2) {
        memcpy(bare, host + 1, hlen - 2);
        bare[hlen - 2] = '\0';
    } else {
        memcpy(bare, host, hlen + 1);
    }
    unsigned char probe[sizeof(struct in6_addr)];
    int literal = inet_pton(AF_INET, bare, probe) == 1 || inet_pton(AF_INET6, bare, probe) == 1;
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = literal ? AI_NUMERICHOST : 0;
    if (getaddrinfo(bare, NULL, &hints, &res) != 0 || res == NULL) {
        ks_error_set(err, KS_E_UNAVAILABLE,
                     "AWS credentials unavailable: cannot resolve the container credentials host");
        st = KS_E_UNAVAILABLE;
        goto out;
    }
    st = pin_addresses(res, host, port, literal, resolve, err);
out:
    if (res != NULL) {
        freeaddrinfo(res);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return st;
}

/* 5.3: the token file wins and is re-read on every fetch (EKS rotates it). A trailing newline
 * (editors add one) is dropped; any other CR or LF is refused. */
static ks_status container_auth_token(const struct ks_aws_source_env *env, char **out,
                                      struct ks_error *err)
{
    *out = NULL;
    const char *file = ks_aws_env_get(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (file != NULL) {
        char *text = NULL;
        size_t len = 0, cap = 0;
        if (ks_aws_read_secret_file(file, &text, &len, &cap) != 1) {
            return ks_error_set(err, KS_E_UNAVAILABLE,
                                "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
        }
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) {
            text[--len] = '\0';
        }
        *out = ks_aws_secret_strndup(text, len);
        ks_secret_free(text, cap);
    } else {
        const char *token = ks_aws_env_get(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
        if (token == NULL) {
            return KS_OK;
        }
        *out = ks_aws_secret_strdup(token);
    }
    if (*out == NULL) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    if (!ks_aws_header_safe(*out)) {
        ks_secret_free_string(*out);
        *out = NULL;
        return ks_error_set(err, KS_E_UNAVAILABLE,
                            "container authorization token contains CR, LF or control bytes");
    }
    return KS_OK;
}

ks_status ks_aws_metadata_container(const struct ks_aws_source_env *env,
                                    struct ks_aws_credentials *out, struct ks_error *err)
{
    const char *relative = ks_aws_env_get(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = ks_aws_env_get(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    char url[2048];
    struct curl_slist *resolve = NULL;
    ks_status st;
    if (relative != NULL) { /* 5.3: takes priority when set */
        const char *host = ks_aws_env_get(env, "KEYSTORED_CONTAINER_CREDENTIALS_HOST");
        int n = snprintf(url, sizeof(url), "%s%s", host != NULL ? host : CONTAINER_DEFAULT_HOST,
                         relative);
        if (relative[0] != '/' || !ks_aws_header_safe(relative) || strchr(relative, ' ') != NULL ||
            n < 0 || (size_t)n >= sizeof(url)) {
            return ks_error_set(err, KS_E_UNAVAILABLE,
                                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must be a path");
        }
    } else if (full != NULL) {
        int n = snprintf(url, sizeof(url), "%s", full);
        if (n < 0 || (size_t)n >= sizeof(url) || !ks_aws_header_safe(full)) {
            return ks_error_set(
                err, KS_E_UNAVAILABLE,
                "AWS credentials unavailable: AWS_CONTAINER_CREDENTIALS_FULL_URI is invalid");
        }
        st = container_check_url(url, &resolve, err);
        if (st != KS_OK) {
            return st;
        }
    } else {
        return ks_error_set(err, KS_E_UNAVAILABLE,
                            "neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor "
                            "AWS_CONTAINER_CREDENTIALS_FULL_URI is set");
    }
    char *token = NULL;
    struct curl_slist *headers = NULL;
    st = container_auth_token(env, &token, err);
    if (st == KS_OK && token != NULL &&
        ks_aws_http_header_add(&headers, "Authorization", token) != 0) {
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    ks_secret_free_string(token);
    struct ks_secbuf body;
    ks_secbuf_init(&body, METADATA_MAX_BODY);
    long status = 0;
    if (st == KS_OK) {
        st = http_fetch("GET", url, headers, resolve, CONTAINER_CONNECT_TIMEOUT_MS,
                        CONTAINER_TIMEOUT_MS, &status, &body, err);
    }
    if (st == KS_OK) {
        st = status == 200
                 ? parse_credential_document("container credentials endpoint", &body, out, err)
                 : metadata_http_error("container credentials endpoint", status, err);
    }
    ks_secbuf_free(&body);
    ks_aws_http_headers_free(headers);
    curl_slist_free_all(resolve);
    return st;
}

/* --- 5.4 IMDSv2 -------------------------------------------------------------------------- */

static ks_status imds_request(const char *method, const char *url, const char *token, long *status,
                              struct ks_secbuf *body, struct ks_error *err)
{
    struct curl_slist *headers = NULL;
    int rc = token != NULL ? ks_aws_http_header_add(&headers, "X-aws-ec2-metadata-token", token)
                           : ks_aws_http_header_add(
                                 &headers, "X-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL);
    if (rc != 0) {
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    ks_status st =
        http_fetch(method, url, headers, NULL, IMDS_TIMEOUT_MS, IMDS_TIMEOUT_MS, status, body, err);
    ks_aws_http_headers_free(headers);
    return st;
}

/* Role names are IAM names ([A-Za-z0-9+=,.@_-]); anything else would change the path. */
static int role_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > 128) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("+=,.@_-", ch) != NULL)) {
            return 0;
        }
    }
    return 1;
}

static ks_status imds_token(const struct ks_aws_source_env *env, struct ks_aws_imds_token *t,
                            const char *base, struct ks_error *err)
{
    uint64_t now = ks_aws_env_now(env);
    if (t->value != NULL && now < t->expiry) {
        return KS_OK;
    }
    ks_secret_free_string(t->value);
    t->value = NULL;
    char url[1024];
    snprintf(url, sizeof(url), "%s/latest/api/token", base);
    struct ks_secbuf body;
    ks_secbuf_init(&body, METADATA_MAX_BODY);
    long status = 0;
    ks_status st = imds_request("PUT", url, NULL, &status, &body, err);
    if (st != KS_OK) {
        return st;
    }
    if (status != 200) {
        st = metadata_http_error("IMDS token request", status, err);
    } else if (body.data == NULL || body.len == 0 || !ks_aws_header_safe(body.data)) {
        st = ks_error_set(err, KS_E_UNAVAILABLE,
                          "AWS credentials unavailable: IMDS returned an unusable token");
    } else if ((t->value = ks_aws_secret_strndup(body.data, body.len)) == NULL) {
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    } else {
        t->expiry = now + IMDS_TOKEN_CACHE_S;
    }
    ks_secbuf_free(&body);
    return st;
}

/*
 * 5.5 "static stability": IMDS may hand out credentials already inside the refresh window;
 * like botocore, use them until now + 15 min + a random 2-10 min instead of refreshing on
 * every call.
 */
static void imds_extend_expiration(const struct ks_aws_source_env *env,
                                   struct ks_aws_credentials *c)
{
    uint64_t now = ks_aws_env_now(env);
    if (c->expiration == 0 || c->expiration >= now + ADVISORY_REFRESH_S) {
        return;
    }
    uint16_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1) {
        r = 0;
    }
    c->expiration = now + ADVISORY_REFRESH_S + 120u + (uint64_t)(r % 481u);
}

ks_status ks_aws_metadata_imds(const struct ks_aws_source_env *env, struct ks_aws_imds_token *t,
                               struct ks_aws_credentials *out, struct ks_error *err)
{
    const char *disabled = ks_aws_env_get(env, "AWS_EC2_METADATA_DISABLED");
    if (disabled != NULL && strcasecmp(disabled, "true") == 0) {
        return ks_error_set(
            err, KS_E_UNAVAILABLE,
            "AWS credentials unavailable: IMDS is disabled (AWS_EC2_METADATA_DISABLED)");
    }
    const char *endpoint = ks_aws_env_get(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
    char base[512];
    int n = snprintf(base, sizeof(base), "%s", endpoint != NULL ? endpoint : IMDS_DEFAULT_ENDPOINT);
    if (n < 0 || (size_t)n >= sizeof(base) || !ks_aws_header_safe(base)) {
        return ks_error_set(
            err, KS_E_UNAVAILABLE,
            "AWS credentials unavailable: AWS_EC2_METADATA_SERVICE_ENDPOINT is invalid");
    }
    while (n > 0 && base[n - 1] == '/') {
        base[--n] = '\0';
    }
    /* A 401 means the cached token is no longer accepted: fetch a new one once (C-AUTH). */
    for (int round = 0; round < 2; round++) {
        ks_status st = imds_token(env, t, base, err);
        if (st != KS_OK) {
            return st;
        }
        char url[1024];
        snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", base);
        struct ks_secbuf body;
        ks_secbuf_init(&body, METADATA_MAX_BODY);
        long status = 0;
        st = imds_request("GET", url, t->value, &status, &body, err);
        if (st != KS_OK) {
            return st;
        }
        if (status == 200) {
            /* The first line is the role name. */
            size_t len = body.data != NULL ? strcspn(body.data, "\r\n") : 0;
            if (!role_name_valid(body.data, len)) {
                ks_secbuf_free(&body);
                return ks_error_set(
                    err, KS_E_UNAVAILABLE,
                    "AWS credentials unavailable: IMDS returned no usable role name");
            }
            n = snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%.*s",
                         base, (int)len, body.data);
            ks_secbuf_free(&body);
            st = imds_request("GET", url, t->value, &status, &body, err);
            if (st != KS_OK) {
                return st;
            }
            if (status == 200) {
                st = parse_credential_document("IMDS", &body, out, err);
                ks_secbuf_free(&body);
                if (st == KS_OK) {
                    imds_extend_expiration(env, out);
                }
                return st;
            }
        }
        ks_secbuf_free(&body);
        if (status != 401) {
            return status == 404 ? ks_error_set(err, KS_E_UNAVAILABLE,
                                                "AWS credentials unavailable: no IAM role is "
                                                "attached to this instance")
                                 : metadata_http_error("IMDS", status, err);
        }
        ks_secret_free_string(t->value);
        t->value = NULL;
    }
    return ks_error_set(err, KS_E_UNAVAILABLE,
                        "AWS credentials unavailable: IMDS keeps refusing its own token");
}

void ks_aws_imds_token_clear(struct ks_aws_imds_token *t)
{
    ks_secret_free_string(t->value);
    t->value = NULL;
    t->expiry = 0;
}
