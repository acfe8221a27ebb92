/*
 * server.c - the `listen:` and `server:` sections: the address keystored binds and the limits of
 * its HTTP front end (docs/architecture.md section 4). The --listen flag is parsed by the same
 * code (ks_config_parse_listen).
 */
#include "config/config.h"
#include "config/parse.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const char listen_oom[] = "out of memory";

/* RFC 1123 host name: dot-separated labels of 1..63 letters, digits and '-', no edge '-'. */
static int valid_hostname(const char *s)
{
    size_t len = strlen(s), label = 0, i;
    if (len == 0 || len > 253)
        return 0;
    for (i = 0; i <= len; i++) {
        char c = s[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return 0;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   (c == '-' && label > 0)) {
            label++;
        } else {
            return 0;
        }
    }
    return 1;
}

/* A host as the server binds it: IPv6 literal (no brackets), IPv4 literal or host name. */
const char *ks_config_check_host(const char *host)
{
    unsigned char addr[16];
    if (strchr(host, ':'))
        return inet_pton(AF_INET6, host, addr) == 1 ? NULL : "has an invalid IPv6 address";
    if (strspn(host, "0123456789.") == strlen(host))
        return inet_pton(AF_INET, host, addr) == 1 ? NULL : "has an invalid IPv4 address";
    return valid_hostname(host) ? NULL : "has an invalid host name";
}

/*
 * Splits "host:port", "[ipv6]:port". Returns NULL and a malloc'd host (brackets removed) on
 * success, else a static description of the problem (listen_oom when allocation failed).
 */
static const char *split_listen(const char *s, char **host, uint16_t *port)
{
    const char *h = s, *colon, *problem;
    size_t host_len, i, digits;
    unsigned long value = 0;
    char *copy;

    *host = NULL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return "has no closing ] after the IPv6 address";
        if (close[1] != ':')
            return "has no :port after the IPv6 address";
        h = s + 1;
        host_len = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return "has no :port";
        host_len = (size_t)(colon - s);
        if (memchr(s, ':', host_len))
            return "has an IPv6 address without brackets";
    }
    if (host_len == 0)
        return "has no host";
    digits = strlen(colon + 1);
    if (digits == 0 || digits > 5 || strspn(colon + 1, "0123456789") != digits)
        return "has a port that is not a number in 0..65535";
    for (i = 1; i <= digits; i++)
        value = value * 10 + (unsigned long)(colon[i] - '0');
    if (value > 65535)
        return "has a port that is not a number in 0..65535";
    copy = strndup(h, host_len);
    if (!copy)
        return listen_oom;
    problem = ks_config_check_host(copy);
    if (s[0] == '[' && !problem && !strchr(copy, ':'))
        problem = "has brackets around something that is not an IPv6 address";
    if (problem) {
        free(copy);
        return problem;
    }
    *host = copy;
    *port = (uint16_t)value;
    return NULL;
}

ks_status ks_config_parse_listen(const char *text, char **host, uint16_t *port,
                                 struct ks_error *err)
{
    const char *problem;
    if (!text || !host || !port)
        return ks_error_set(err, KS_E_INVALID, "listen address missing");
    problem = split_listen(text, host, port);
    if (problem == listen_oom)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    if (problem)
        return ks_error_set(err, KS_E_INVALID, "listen address %s; expected host:port", problem);
    return KS_OK;
}

void ks_config_section_listen(struct ks_config_parser *p, yaml_node_t *n)
{
    char shown[KS_CONFIG_SHOW_LEN];
    const char *problem;
    char *text = ks_config_get_string(p, n, "listen", "host:port such as 127.0.0.1:8080");
    char *host = NULL;
    uint16_t port = 0;

    if (!text)
        return;
    problem = split_listen(text, &host, &port);
    if (problem == listen_oom) {
        p->oom = 1;
    } else if (problem) {
        ks_config_error(p, n,
                        "listen %s %s; expected host:port with an IPv4 address, a host name or a "
                        "quoted \"[IPv6]:port\", port 0..65535",
                        ks_config_show(n, shown, sizeof shown), problem);
    } else {
        free(p->cfg->listen_host);
        p->cfg->listen_host = host;
        p->cfg->listen_port = port;
    }
    free(text);
}

/* A path of server.tls and where the YAML names it (server/tls.c reports read errors there). */
static char *tls_path(struct ks_config_parser *p, yaml_node_t *n, const char *key, size_t *line,
                      size_t *column)
{
    char path[KS_CONFIG_PATH_LEN];
    *line = n->start_mark.line + 1;
    *column = n->start_mark.column + 1;
    return ks_config_get_string(p, n, ks_config_join_path(path, "server.tls", key), "a file path");
}

/*
 * `server.tls`: both files or no TLS at all (README "TLS"). Only the paths are kept here: the
 * files are read when the server starts (server/tls.c), so that a reload, which parses the YAML
 * again, never reads the private key (config/compare.c refuses a change of the paths).
 */
static void section_tls(struct ks_config_parser *p, yaml_node_t *n)
{
    enum { T_CERT, T_KEY, T_COUNT };
    struct ks_config_field f[T_COUNT] = {
        [T_CERT] = {.key = "cert_file"}, [T_KEY] = {.key = "key_file"}};
    struct ks_tls_config *t = &p->cfg->server.tls;
    yaml_node_t *cert, *key;

    if (ks_config_get_fields(p, n, "server.tls", f, T_COUNT) < 0)
        return;
    cert = ks_config_require(p, n, "server.tls", &f[T_CERT], "a PEM certificate file path");
    key = ks_config_require(p, n, "server.tls", &f[T_KEY], "a PEM private key file path");
    if (!cert || !key)
        return;
    t->cert_file = tls_path(p, cert, "cert_file", &t->cert_line, &t->cert_column);
    t->key_file = tls_path(p, key, "key_file", &t->key_line, &t->key_column);
}

/* server.unauthenticated_metrics and server.metrics_tenant_labels: true | false (issue 12;
 * README "Metrics"). */
static void server_flag(struct ks_config_parser *p, yaml_node_t *v, const char *key, int *out)
{
    char shown[KS_CONFIG_SHOW_LEN];
    if (!v)
        return;
    if (v->type == YAML_SCALAR_NODE && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (ks_config_scalar_is(v, "true") || ks_config_scalar_is(v, "false")))
        *out = ks_config_scalar_is(v, "true");
    else
        ks_config_error(p, v, "server.%s is %s; expected true or false", key,
                        ks_config_describe(v, shown, sizeof shown));
}

/*
 * `server:` limits, each optional (defaults in set_defaults, config/load.c). The connection caps
 * keep idle connections below the descriptor limit (max_connections 0: derived from
 * RLIMIT_NOFILE; max_connections_per_ip 0: no per-address cap, since behind a proxy every client
 * shares one address), header_timeout_seconds bounds slow headers, the URI and header caps are
 * answered in JSON, and readiness is probed in the background on readiness_interval_ms with a
 * readiness_timeout_ms deadline (docs/architecture.md section 4).
 */
/* The numeric `server:` keys: name, bounds, and where the value goes (unsigned or size_t). */
struct server_uint {
    const char *key;
    uint64_t min, max;
    size_t offset;
    size_t size; /* sizeof the field: an unsigned or a size_t */
};

#define SV_UINT(k, lo, hi, field)                                                                  \
    {                                                                                              \
        k, lo, hi, offsetof(struct ks_server_config, field),                                       \
            sizeof(((struct ks_server_config *)0)->field)                                          \
    }

static const struct server_uint server_uints[] = {
    SV_UINT("threads", 1, 256, threads),
    SV_UINT("max_body_bytes", 1024, 16777216, max_body_bytes),
    SV_UINT("max_json_depth", 2, 64, max_json_depth),
    SV_UINT("connection_timeout_seconds", 1, 3600, connection_timeout_seconds),
    SV_UINT("max_connections", 0, 1000000, max_connections),
    SV_UINT("max_connections_per_ip", 0, 1000000, max_connections_per_ip),
    SV_UINT("header_timeout_seconds", 1, 3600, header_timeout_seconds),
    SV_UINT("max_uri_bytes", 256, 1048576, max_uri_bytes),
    SV_UINT("max_header_bytes", 1024, 1048576, max_header_bytes),
    SV_UINT("readiness_interval_ms", 100, 3600000, readiness_interval_ms),
    SV_UINT("readiness_timeout_ms", 100, 60000, readiness_timeout_ms),
    /* The keyring routes' own cap: a 1,000-request unwrap batch is about 330 KB. */
    SV_UINT("max_keyring_body_bytes", 1024, 67108864, max_keyring_body_bytes),
    SV_UINT("max_in_flight_requests", 1, 1000000, max_in_flight_requests),
};
#define SV_N_UINT (sizeof server_uints / sizeof server_uints[0])

static void store_uint(struct ks_server_config *s, const struct server_uint *u, uint64_t v)
{
    char *at = (char *)s + u->offset;
    if (u->size == sizeof(size_t)) {
        size_t z = (size_t)v;
        memcpy(at, &z, sizeof z);
    } else {
        unsigned w = (unsigned)v;
        memcpy(at, &w, sizeof w);
    }
}

void ks_config_section_server(struct ks_config_parser *p, yaml_node_t *n)
{
    /* The numeric keys first (server_uints, same order), then a section and two booleans. */
    enum { SV_TLS = SV_N_UINT, SV_UNAUTH_METRICS, SV_TENANT_LABELS, SV_COUNT };
    struct ks_config_field f[SV_COUNT];
    struct ks_server_config *s = &p->cfg->server;
    char path[KS_CONFIG_PATH_LEN];
    uint64_t v;
    size_t i;

    memset(f, 0, sizeof f);
    for (i = 0; i < SV_N_UINT; i++)
        f[i].key = server_uints[i].key;
    f[SV_TLS].key = "tls";
    f[SV_UNAUTH_METRICS].key = "unauthenticated_metrics";
    f[SV_TENANT_LABELS].key = "metrics_tenant_labels";
    if (ks_config_get_fields(p, n, "server", f, SV_COUNT) < 0)
        return;
    if (f[SV_TLS].value)
        section_tls(p, f[SV_TLS].value);
    server_flag(p, f[SV_UNAUTH_METRICS].value, "unauthenticated_metrics",
                &s->unauthenticated_metrics);
    server_flag(p, f[SV_TENANT_LABELS].value, "metrics_tenant_labels", &s->metrics_tenant_labels);
    for (i = 0; i < SV_N_UINT; i++) {
        const struct server_uint *u = &server_uints[i];
        if (f[i].value &&
            !ks_config_get_uint(p, f[i].value, ks_config_join_path(path, "server", u->key), u->min,
                                u->max, &v))
            store_uint(s, u, v);
    }
}
