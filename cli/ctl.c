/* ctl.c - keystorectl's HTTP calls (libcurl), output and error reporting (cli/ctl.h). */
#include "cli/ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "common/util.h"

struct ks_ctl {
    char *url;
    char *token;
    long timeout_s;
    int compact;
    CURL *curl; /* one handle for the whole run: the connection is kept alive between pages */
};

/* Overwrites a secret so that it does not linger in freed memory (docs/style.md "Memory"). */
static void wipe(char *s)
{
    if (s)
        OPENSSL_cleanse(s, strlen(s));
}

struct ks_ctl *ks_ctl_create(const char *url, char *token, long timeout_s, int compact)
{
    struct ks_ctl *ctl = calloc(1, sizeof *ctl);
    size_t n = strlen(url);

    if (!ctl)
        return NULL;
    while (n > 0 && url[n - 1] == '/')
        n--;
    ctl->url = strndup(url, n);
    ctl->curl = curl_easy_init();
    ctl->token = token;
    ctl->timeout_s = timeout_s;
    ctl->compact = compact;
    if (!ctl->url || !ctl->curl) {
        ks_ctl_destroy(ctl);
        return NULL;
    }
    return ctl;
}

void ks_ctl_destroy(struct ks_ctl *ctl)
{
    if (!ctl)
        return;
    wipe(ctl->token);
    free(ctl->token);
    free(ctl->url);
    if (ctl->curl)
        curl_easy_cleanup(ctl->curl);
    free(ctl);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct ks_ctl_response *r = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(r->body, r->len + n + 1);

    if (!grown)
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    memcpy(grown + r->len, data, n);
    r->len += n;
    grown[r->len] = '\0';
    r->body = grown;
    return n;
}

/* The request headers; the Authorization line only for /v1/keystores and /metrics (admin or
 * monitor; the other public routes need none). */
static struct curl_slist *request_headers(const struct ks_ctl *ctl, const char *path, int has_body)
{
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");

    if (h && has_body)
        h = curl_slist_append(h, "Content-Type: application/json");
    if (h && ctl->token &&
        (strncmp(path, "/v1/keystores", 13) == 0 || strcmp(path, "/metrics") == 0)) {
        size_t n = strlen(ctl->token) + sizeof "Authorization: Bearer ";
        char *line = malloc(n);
        struct curl_slist *with = NULL;
        if (line) {
            snprintf(line, n, "Authorization: Bearer %s", ctl->token);
            with = curl_slist_append(h, line);
            wipe(line);
            free(line);
        }
        if (!with) {
            curl_slist_free_all(h);
            return NULL;
        }
        h = with;
    }
    return h;
}

/* curl_slist_free_all after wiping each line: one of them carries the token. */
static void free_headers(struct curl_slist *h)
{
    struct curl_slist *p;
    for (p = h; p; p = p->next)
        wipe(p->data);
    curl_slist_free_all(h);
}

static int perform(struct ks_ctl *ctl, const char *method, const char *url, const char *body,
                   struct curl_slist *headers, struct ks_ctl_response *out)
{
    CURL *c = ctl->curl;
    CURLcode rc;

    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* SIGINT is ours (mutate stops after a page) */
    curl_easy_setopt(c, CURLOPT_TIMEOUT, ctl->timeout_s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "keystorectl");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        fprintf(stderr, "keystorectl: %s %s: %s\n", method, url, curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    return 0;
}

int ks_ctl_request(struct ks_ctl *ctl, const char *method, const char *path, json_object *body,
                   struct ks_ctl_response *out)
{
    const char *text = body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN) : NULL;
    size_t n = strlen(ctl->url) + strlen(path) + 1;
    char *url = malloc(n);
    struct curl_slist *headers = request_headers(ctl, path, body != NULL);
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (url && headers) {
        snprintf(url, n, "%s%s", ctl->url, path);
        rc = perform(ctl, method, url, text, headers, out);
    } else {
        fprintf(stderr, "keystorectl: out of memory\n");
    }
    free_headers(headers);
    free(url);
    if (rc != 0)
        ks_ctl_response_free(out); /* a partial body of a failed transfer */
    else if (out->body)
        out->json = json_tokener_parse(out->body);
    return rc;
}

void ks_ctl_response_free(struct ks_ctl_response *r)
{
    if (r->body) {
        /* GET .../active and friends return key material */
        OPENSSL_cleanse(r->body, r->len);
        free(r->body);
    }
    if (r->json)
        json_object_put(r->json);
    memset(r, 0, sizeof *r);
}

int ks_ctl_ok(const struct ks_ctl_response *r)
{
    return r->status >= 200 && r->status < 300;
}

void ks_ctl_print_json(const struct ks_ctl *ctl, json_object *obj)
{
    int flags =
        ctl->compact ? JSON_C_TO_STRING_PLAIN : JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED;
    printf("%s\n", json_object_to_json_string_ext(obj, flags | JSON_C_TO_STRING_NOSLASHESCAPE));
    fflush(stdout);
}

int ks_ctl_report(const struct ks_ctl *ctl, const struct ks_ctl_response *r)
{
    if (!ks_ctl_ok(r)) {
        /* an answer that is not an error object (GET /readyz's 503 lists its checks) is shown */
        if (r->json && json_object_is_type(r->json, json_type_object) &&
            !json_object_object_get_ex(r->json, "error", NULL))
            ks_ctl_print_json(ctl, r->json);
        ks_ctl_print_error(r);
        return KS_CTL_EXIT_SERVER;
    }
    if (r->status == 204 || !r->body)
        return KS_CTL_EXIT_OK;
    if (r->json && json_object_is_type(r->json, json_type_object))
        ks_ctl_print_json(ctl, r->json);
    else
        fwrite(r->body, 1, r->len, stdout);
    fflush(stdout);
    return KS_CTL_EXIT_OK;
}

static const char *error_member(const struct ks_ctl_response *r, const char *name)
{
    json_object *err, *v;
    if (r->json && json_object_object_get_ex(r->json, "error", &err) &&
        json_object_object_get_ex(err, name, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

const char *ks_ctl_error_type(const struct ks_ctl_response *r)
{
    const char *t = error_member(r, "type");
    return t ? t : "";
}

void ks_ctl_print_error(const struct ks_ctl_response *r)
{
    const char *type = error_member(r, "type"), *message = error_member(r, "message");
    const char *request_id = error_member(r, "requestId");

    if (type || message)
        fprintf(stderr, "keystorectl: HTTP %ld %s: %s", r->status, type ? type : "-",
                message ? message : "-");
    else
        fprintf(stderr, "keystorectl: HTTP %ld", r->status);
    if (request_id)
        fprintf(stderr, " (request id %s)", request_id);
    fputc('\n', stderr);
}

/* Appends "/" and s percent-encoded (every byte but the unreserved ones, '/' included). */
static int append_segment(char *out, size_t size, size_t *at, const char *s)
{
    size_t n;
    if (*at + 1 >= size)
        return -1;
    out[(*at)++] = '/';
    n = ks_percent_encode(s, strlen(s), 0, out + *at, size - *at);
    if (n >= size - *at)
        return -1;
    *at += n;
    return 0;
}

char *ks_ctl_path(const char *ks, const char *id, const char *suffix)
{
    size_t size = sizeof "/v1/keystores/branch-keys" + 3 * strlen(ks) + 2 +
                  (id ? 3 * strlen(id) + 1 : 0) + strlen(suffix) + 1;
    char *out = malloc(size);
    size_t at = sizeof "/v1/keystores" - 1;

    if (!out)
        return NULL;
    memcpy(out, "/v1/keystores", at);
    if (append_segment(out, size, &at, ks) != 0 ||
        (id && (append_segment(out, size, &at, "branch-keys") != 0 ||
                append_segment(out, size, &at, id) != 0))) {
        free(out);
        return NULL;
    }
    snprintf(out + at, size - at, "%s", suffix);
    return out;
}
