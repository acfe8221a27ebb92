/*
 * inventory.c - keystorectl keys list / versions list (README "keystorectl"): one page, or every
 * page with --all, following nextToken until the server leaves it out (a DynamoDB page may hold
 * fewer keys than the limit, even none, while more follow).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ctl.h"
#include "common/util.h"

/* base + "?limit=N&nextToken=T" (each when given), T percent-encoded. Caller frees. */
static char *page_path(const char *base, long limit, const char *token)
{
    size_t m = token ? ks_percent_encode(token, strlen(token), 0, NULL, 0) : 0;
    size_t n = strlen(base) + m + 64, at;
    char *out = malloc(n);

    if (!out)
        return NULL;
    at = (size_t)snprintf(out, n, "%s", base);
    if (limit > 0)
        at += (size_t)snprintf(out + at, n - at, "?limit=%ld", limit);
    if (token) {
        at += (size_t)snprintf(out + at, n - at, "%cnextToken=", limit > 0 ? '&' : '?');
        ks_percent_encode(token, strlen(token), 0, out + at, n - at);
    }
    return out;
}

/* Appends the page's `member` array to all (borrowing nothing). */
static void append_items(json_object *all, json_object *page, const char *member)
{
    json_object *items;
    size_t i;

    if (!json_object_object_get_ex(page, member, &items) ||
        !json_object_is_type(items, json_type_array))
        return;
    for (i = 0; i < json_object_array_length(items); i++)
        json_object_array_add(all, json_object_get(json_object_array_get_idx(items, i)));
}

/* The page's nextToken (copied), or NULL on the last page. */
static char *next_token_of(json_object *page)
{
    json_object *t;
    if (!json_object_object_get_ex(page, "nextToken", &t) ||
        !json_object_is_type(t, json_type_string))
        return NULL;
    return strdup(json_object_get_string(t));
}

int ks_ctl_list(struct ks_ctl *ctl, const char *base, const char *member,
                const struct ks_ctl_list_opts *opts)
{
    json_object *all = json_object_new_array(), *out;
    char *token = opts->next_token ? strdup(opts->next_token) : NULL;
    int rc = KS_CTL_EXIT_OK;

    do {
        struct ks_ctl_response r;
        char *path = page_path(base, opts->limit, token);
        free(token);
        token = NULL;
        if (!path || ks_ctl_request(ctl, "GET", path, NULL, &r) != 0) {
            free(path);
            rc = KS_CTL_EXIT_TRANSPORT;
            break;
        }
        free(path);
        if (!opts->all || !ks_ctl_ok(&r) || !r.json) {
            rc = ks_ctl_report(ctl, &r); /* one page as the server sent it, or the error */
            ks_ctl_response_free(&r);
            json_object_put(all);
            return rc;
        }
        append_items(all, r.json, member);
        token = next_token_of(r.json);
        ks_ctl_response_free(&r);
    } while (token);
    free(token);
    if (rc == KS_CTL_EXIT_OK) {
        out = json_object_new_object();
        json_object_object_add(out, member, all);
        ks_ctl_print_json(ctl, out);
        json_object_put(out);
    } else {
        json_object_put(all);
    }
    return rc;
}
