/*
 * audit.c - the `audit:` section (issue 12; docs/architecture.md section 12, README "Audit log"):
 *
 *   audit:
 *     path: /var/log/keystored/audit.log   # required
 *     fsync: every_line                     # or {interval_ms: N}, or none (the default)
 */
#include "config/config.h"
#include "config/parse.h"

/* An hour: a longer interval is not an fsync policy any more. */
#define FSYNC_INTERVAL_MAX_MS 3600000u

static const char fsync_expect[] = "every_line, none or a mapping {interval_ms: 1..3600000}";

/* fsync: every_line | none | {interval_ms: N} */
static void parse_fsync(struct ks_config_parser *p, yaml_node_t *n, struct ks_audit_config *a)
{
    struct ks_config_field f[1] = {{.key = "interval_ms"}};
    char shown[KS_CONFIG_SHOW_LEN];

    if (n->type == YAML_SCALAR_NODE && ks_config_scalar_is(n, "every_line")) {
        a->fsync = KS_CONFIG_AUDIT_FSYNC_EVERY_LINE;
        return;
    }
    if (n->type == YAML_SCALAR_NODE && ks_config_scalar_is(n, "none")) {
        a->fsync = KS_CONFIG_AUDIT_FSYNC_NONE;
        return;
    }
    if (n->type != YAML_MAPPING_NODE) {
        ks_config_error(p, n, "audit.fsync is %s; expected %s",
                        ks_config_describe(n, shown, sizeof shown), fsync_expect);
        return;
    }
    if (ks_config_get_fields(p, n, "audit.fsync", f, 1) < 0)
        return;
    if (!ks_config_require(p, n, "audit.fsync", &f[0], "a number of milliseconds"))
        return;
    if (ks_config_get_uint(p, f[0].value, "audit.fsync.interval_ms", 1, FSYNC_INTERVAL_MAX_MS,
                           &a->fsync_interval_ms) == 0)
        a->fsync = KS_CONFIG_AUDIT_FSYNC_INTERVAL;
}

void ks_config_section_audit(struct ks_config_parser *p, yaml_node_t *n)
{
    enum { A_PATH, A_FSYNC, A_COUNT };
    struct ks_config_field f[A_COUNT] = {[A_PATH] = {.key = "path"}, [A_FSYNC] = {.key = "fsync"}};
    struct ks_audit_config *a = &p->cfg->audit;

    if (ks_config_get_fields(p, n, "audit", f, A_COUNT) < 0)
        return;
    if (ks_config_require(p, n, "audit", &f[A_PATH], "the audit log's file path"))
        a->path = ks_config_get_string(p, f[A_PATH].value, "audit.path", "a file path");
    if (f[A_FSYNC].value)
        parse_fsync(p, f[A_FSYNC].value, a);
}
