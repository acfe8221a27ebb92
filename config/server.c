/*
 * server.c - the `listen:` and `server:` sections: the address keystored binds and the limits of
 * its HTTP front end (docs/architecture.md section 4). The --listen flag is parsed by the same
 * code (ks_config_parse_listen).
 */
#include "config/config.h"
#include "config/parse.h"

#include <arpa/inet.h>
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
void ks_config_section_server(struct ks_config_parser *p, yaml_node_t *n)
{
    enum {
        SV_THREADS,
        SV_BODY,
        SV_DEPTH,
        SV_TIMEOUT,
        SV_MAX_CONN,
        SV_MAX_CONN_IP,
        SV_HEADER_TIMEOUT,
        SV_MAX_URI,
        SV_MAX_HEADER,
        SV_READY_INTERVAL,
        SV_READY_TIMEOUT,
        SV_KEYRING_BODY,
        SV_MAX_IN_FLIGHT,
        SV_UNAUTH_METRICS, /* booleans from here on: read by server_flags, not the loop */
        SV_TENANT_LABELS,
        SV_COUNT
    };
    struct ks_config_field f[SV_COUNT] = {
        [SV_THREADS] = {.key = "threads"},
        [SV_BODY] = {.key = "max_body_bytes"},
        [SV_DEPTH] = {.key = "max_json_depth"},
        [SV_TIMEOUT] = {.key = "connection_timeout_seconds"},
        [SV_MAX_CONN] = {.key = "max_connections"},
        [SV_MAX_CONN_IP] = {.key = "max_connections_per_ip"},
        [SV_HEADER_TIMEOUT] = {.key = "header_timeout_seconds"},
        [SV_MAX_URI] = {.key = "max_uri_bytes"},
        [SV_MAX_HEADER] = {.key = "max_header_bytes"},
        [SV_READY_INTERVAL] = {.key = "readiness_interval_ms"},
        [SV_READY_TIMEOUT] = {.key = "readiness_timeout_ms"},
        [SV_KEYRING_BODY] = {.key = "max_keyring_body_bytes"},
        [SV_MAX_IN_FLIGHT] = {.key = "max_in_flight_requests"},
        [SV_UNAUTH_METRICS] = {.key = "unauthenticated_metrics"},
        [SV_TENANT_LABELS] = {.key = "metrics_tenant_labels"},
    };
    static const uint64_t min[SV_COUNT] = {1, 1024, 2, 1, 0, 0, 1, 256, 1024, 100, 100, 1024, 1};
    static const uint64_t max[SV_COUNT] = {256,     16777216, 64,      3600,    1000000,
                                           1000000, 3600,     1048576, 1048576, 3600000,
                                           60000,   67108864, 1000000};
    struct ks_server_config *s = &p->cfg->server;
    char path[KS_CONFIG_PATH_LEN];
    uint64_t v[SV_COUNT];
    size_t i;

    if (ks_config_get_fields(p, n, "server", f, SV_COUNT) < 0)
        return;
    server_flag(p, f[SV_UNAUTH_METRICS].value, "unauthenticated_metrics",
                &s->unauthenticated_metrics);
    server_flag(p, f[SV_TENANT_LABELS].value, "metrics_tenant_labels", &s->metrics_tenant_labels);
    for (i = 0; i < SV_UNAUTH_METRICS; i++) {
        if (!f[i].value ||
            ks_config_get_uint(p, f[i].value, ks_config_join_path(path, "server", f[i].key), min[i],
                               max[i], &v[i]))
            continue;
        switch (i) {
        case SV_THREADS:
            s->threads = (unsigned)v[i];
            break;
        case SV_BODY:
            s->max_body_bytes = (size_t)v[i];
            break;
        case SV_DEPTH:
            s->max_json_depth = (unsigned)v[i];
            break;
        case SV_TIMEOUT:
            s->connection_timeout_seconds = (unsigned)v[i];
            break;
        case SV_MAX_CONN:
            s->max_connections = (unsigned)v[i];
            break;
        case SV_MAX_CONN_IP:
            s->max_connections_per_ip = (unsigned)v[i];
            break;
        case SV_HEADER_TIMEOUT:
            s->header_timeout_seconds = (unsigned)v[i];
            break;
        case SV_MAX_URI:
            s->max_uri_bytes = (size_t)v[i];
            break;
        case SV_MAX_HEADER:
            s->max_header_bytes = (size_t)v[i];
            break;
        case SV_READY_INTERVAL:
            s->readiness_interval_ms = (unsigned)v[i];
            break;
        case SV_READY_TIMEOUT:
            s->readiness_timeout_ms = (unsigned)v[i];
            break;
        case SV_MAX_IN_FLIGHT:
            s->max_in_flight_requests = (unsigned)v[i];
            break;
        default:
            /* The keyring routes' own cap: a 1,000-request unwrap batch is about 330 KB. */
            s->max_keyring_body_bytes = (size_t)v[i];
            break;
        }
    }
}
