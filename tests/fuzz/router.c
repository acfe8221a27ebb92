/*
 * router.c - fuzz target: the route table's matcher (server/router.h) over a request line from
 * the network: "METHOD raw-path", percent-decoding of {ks}, {id} and {v} included. A match
 * fills exactly the parameters its pattern names, each of the length it reports and without a
 * NUL inside; a 405 always lists the allowed methods.
 */
#include "server/router.h"
#include "tests/fuzz/fuzz.h"

static int pattern_has(const char *pattern, const char *param)
{
    return strstr(pattern, param) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[KS_PARAM_COUNT] = {"{ks}", "{id}", "{v}"};
    char *line = fuzz_cstr(data, size), *path = strchr(line, ' ');
    struct ks_route_match m;
    enum ks_match_result r;

    if (path) {
        *path++ = '\0';
        memset(&m, 0, sizeof m);
        r = ks_router_match(line, path, &m);
        if (r == KS_MATCH_OK) {
            FUZZ_CHECK(m.route && ks_router_find(line, path) == m.route);
            for (int i = 0; i < KS_PARAM_COUNT; i++) {
                FUZZ_CHECK(!m.params[i] == !pattern_has(m.route->pattern, names[i]));
                FUZZ_CHECK(!m.params[i] || strlen(m.params[i]) == m.param_lens[i]);
            }
        } else if (r == KS_MATCH_BAD_METHOD) {
            FUZZ_CHECK(m.allow[0] != '\0');
        }
        ks_router_match_free(&m);
    }
    free(line);
    return 0;
}
