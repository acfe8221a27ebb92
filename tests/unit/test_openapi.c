/*
 * test_openapi.c - openapi/openapi.yaml against the route table (server/router.c),
 * docs/architecture.md section 2 ("openapi/ ... checked against the routes in tests"): every route
 * is documented, every documented operation is a route, every operation documents a 4xx response,
 * the security of each operation matches the route's access (public routes `security: []`, the
 * rest the document's bearerAuth), and every authenticated operation documents the 429 of a
 * tenant's rate_limit (README "Rate limits"). Run from the repository root (make unit / make test
 * do).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "server/router.h"

#define OPENAPI_PATH "openapi/openapi.yaml"
#define MAX_OPS 128

struct op {
    char method[16]; /* upper case */
    char path[256];
    int has_4xx;
    int has_429;
    int security; /* -1: not given (document default), 0: empty list, 1: non-empty list */
};

struct doc {
    yaml_document_t yaml;
    struct op ops[MAX_OPS];
    size_t n_ops;
    int global_bearer; /* the document-level security names bearerAuth */
};

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
    yaml_node_pair_t *p;
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strlen(key) == k->data.scalar.length &&
            memcmp(k->data.scalar.value, key, k->data.scalar.length) == 0)
            return yaml_document_get_node(d, p->value);
    }
    return NULL;
}

static void scalar_copy(const yaml_node_t *n, char *out, size_t size)
{
    size_t len = n->data.scalar.length < size - 1 ? n->data.scalar.length : size - 1;
    memcpy(out, n->data.scalar.value, len);
    out[len] = '\0';
}

/* -1 absent, 0 empty sequence, 1 a sequence with at least one requirement naming bearerAuth,
 * 2 a non-empty sequence without bearerAuth. */
static int security_kind(yaml_document_t *d, yaml_node_t *sec)
{
    yaml_node_item_t *it;
    if (!sec)
        return -1;
    cr_assert_eq(sec->type, YAML_SEQUENCE_NODE, "security must be a list");
    if (sec->data.sequence.items.start == sec->data.sequence.items.top)
        return 0;
    for (it = sec->data.sequence.items.start; it < sec->data.sequence.items.top; it++)
        if (map_get(d, yaml_document_get_node(d, *it), "bearerAuth"))
            return 1;
    return 2;
}

static const char *const http_methods[] = {"get",  "put",     "post",  "delete", "patch",
                                           "head", "options", "trace", NULL};

static int is_http_method(const char *s)
{
    const char *const *m;
    for (m = http_methods; *m; m++)
        if (strcmp(*m, s) == 0)
            return 1;
    return 0;
}

static void load(struct doc *doc)
{
    yaml_parser_t parser;
    yaml_node_t *root, *paths;
    yaml_node_pair_t *pp;
    FILE *f = fopen(OPENAPI_PATH, "rb");

    cr_assert_not_null(f, "cannot open %s (run the tests from the repository root)", OPENAPI_PATH);
    memset(doc, 0, sizeof *doc);
    cr_assert(yaml_parser_initialize(&parser));
    yaml_parser_set_input_file(&parser, f);
    cr_assert(yaml_parser_load(&parser, &doc->yaml), "%s: YAML error at line %zu: %s", OPENAPI_PATH,
              parser.problem_mark.line + 1, parser.problem ? parser.problem : "?");
    yaml_parser_delete(&parser);
    fclose(f);

    root = yaml_document_get_root_node(&doc->yaml);
    cr_assert_not_null(root, "empty document");
    cr_assert_not_null(map_get(&doc->yaml, root, "openapi"), "no openapi: version");
    doc->global_bearer = security_kind(&doc->yaml, map_get(&doc->yaml, root, "security")) == 1;
    paths = map_get(&doc->yaml, root, "paths");
    cr_assert(paths && paths->type == YAML_MAPPING_NODE, "no paths: mapping");

    for (pp = paths->data.mapping.pairs.start; pp < paths->data.mapping.pairs.top; pp++) {
        yaml_node_t *pk = yaml_document_get_node(&doc->yaml, pp->key);
        yaml_node_t *item = yaml_document_get_node(&doc->yaml, pp->value);
        yaml_node_pair_t *mp;
        cr_assert(pk->type == YAML_SCALAR_NODE && item->type == YAML_MAPPING_NODE);
        for (mp = item->data.mapping.pairs.start; mp < item->data.mapping.pairs.top; mp++) {
            yaml_node_t *mk = yaml_document_get_node(&doc->yaml, mp->key);
            yaml_node_t *opn = yaml_document_get_node(&doc->yaml, mp->value);
            yaml_node_t *responses;
            yaml_node_pair_t *rp;
            struct op *op;
            char method[16];
            size_t i;

            scalar_copy(mk, method, sizeof method);
            if (!is_http_method(method))
                continue; /* parameters, summary, ... */
            cr_assert_lt(doc->n_ops, MAX_OPS);
            op = &doc->ops[doc->n_ops++];
            for (i = 0; method[i]; i++)
                op->method[i] = (char)(method[i] - 'a' + 'A');
            op->method[i] = '\0';
            scalar_copy(pk, op->path, sizeof op->path);
            op->security = security_kind(&doc->yaml, map_get(&doc->yaml, opn, "security"));
            responses = map_get(&doc->yaml, opn, "responses");
            cr_assert(responses && responses->type == YAML_MAPPING_NODE, "%s %s: no responses",
                      op->method, op->path);
            for (rp = responses->data.mapping.pairs.start; rp < responses->data.mapping.pairs.top;
                 rp++) {
                yaml_node_t *code = yaml_document_get_node(&doc->yaml, rp->key);
                if (code->type == YAML_SCALAR_NODE && code->data.scalar.length == 3 &&
                    code->data.scalar.value[0] == '4')
                    op->has_4xx = 1;
                if (code->type == YAML_SCALAR_NODE && code->data.scalar.length == 3 &&
                    memcmp(code->data.scalar.value, "429", 3) == 0)
                    op->has_429 = 1;
            }
        }
    }
}

static void unload(struct doc *doc)
{
    yaml_document_delete(&doc->yaml);
}

static const struct op *find_op(const struct doc *doc, const char *method, const char *path)
{
    size_t i;
    for (i = 0; i < doc->n_ops; i++)
        if (strcmp(doc->ops[i].method, method) == 0 && strcmp(doc->ops[i].path, path) == 0)
            return &doc->ops[i];
    return NULL;
}

Test(openapi, every_route_is_documented)
{
    struct doc doc;
    size_t n, i, missing = 0;
    const struct ks_route *routes = ks_router_routes(&n);

    load(&doc);
    for (i = 0; i < n; i++) {
        if (!find_op(&doc, routes[i].method, routes[i].pattern)) {
            cr_log_error("route %s %s is not in %s", routes[i].method, routes[i].pattern,
                         OPENAPI_PATH);
            missing++;
        }
    }
    unload(&doc);
    cr_assert_eq(missing, 0, "%zu route(s) missing from the document", missing);
}

Test(openapi, every_documented_operation_is_a_route)
{
    struct doc doc;
    size_t n, i, j, extra = 0;
    const struct ks_route *routes = ks_router_routes(&n);

    load(&doc);
    cr_assert_gt(doc.n_ops, 0, "no operations in the document");
    for (i = 0; i < doc.n_ops; i++) {
        int found = 0;
        for (j = 0; j < n && !found; j++)
            found = strcmp(doc.ops[i].method, routes[j].method) == 0 &&
                    strcmp(doc.ops[i].path, routes[j].pattern) == 0;
        if (!found) {
            cr_log_error("%s %s is documented but is not in the route table", doc.ops[i].method,
                         doc.ops[i].path);
            extra++;
        }
    }
    unload(&doc);
    cr_assert_eq(extra, 0, "%zu documented operation(s) without a route", extra);
}

Test(openapi, every_operation_documents_a_4xx_response)
{
    struct doc doc;
    size_t i, bad = 0;

    load(&doc);
    for (i = 0; i < doc.n_ops; i++) {
        if (!doc.ops[i].has_4xx) {
            cr_log_error("%s %s has no 4xx response", doc.ops[i].method, doc.ops[i].path);
            bad++;
        }
    }
    unload(&doc);
    cr_assert_eq(bad, 0, "%zu operation(s) without a 4xx response", bad);
}

Test(openapi, security_matches_route_access)
{
    struct doc doc;
    size_t n, i, bad = 0;
    const struct ks_route *routes = ks_router_routes(&n);

    load(&doc);
    for (i = 0; i < n; i++) {
        const struct op *op = find_op(&doc, routes[i].method, routes[i].pattern);
        int bearer;
        if (!op)
            continue; /* reported by every_route_is_documented */
        bearer = op->security == 1 || (op->security == -1 && doc.global_bearer);
        if (routes[i].access == KS_ACCESS_PUBLIC ? op->security != 0 : !bearer) {
            cr_log_error("%s %s: security does not match the route (%s)", op->method, op->path,
                         routes[i].access == KS_ACCESS_PUBLIC ? "public: want security: []"
                                                              : "want bearerAuth");
            bad++;
        }
    }
    unload(&doc);
    cr_assert_eq(bad, 0, "%zu operation(s) with the wrong security", bad);
}

/* A tenant's rate_limit applies to every route that takes a token (server/admission.c). */
Test(openapi, every_authenticated_operation_documents_429)
{
    struct doc doc;
    size_t n, i, bad = 0;
    const struct ks_route *routes = ks_router_routes(&n);

    load(&doc);
    for (i = 0; i < n; i++) {
        const struct op *op = find_op(&doc, routes[i].method, routes[i].pattern);
        if (op && routes[i].access != KS_ACCESS_PUBLIC && !op->has_429) {
            cr_log_error("%s %s: no 429 (ThrottlingException) response", op->method, op->path);
            bad++;
        }
    }
    unload(&doc);
    cr_assert_eq(bad, 0, "%zu authenticated operation(s) without a 429 response", bad);
}
