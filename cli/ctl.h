/*
 * ctl.h - keystorectl, the command-line client of keystored's REST API (README "keystorectl").
 *
 * A client only: it speaks HTTP/JSON to a running server through libcurl and links nothing of the
 * server's layers, only common/ helpers (docs/architecture.md section 2: cli/ is the top rank and
 * includes common/ alone). The token comes from KEYSTORED_TOKEN or --token-file, never from argv
 * (a command line is visible to every user of the machine in /proc).
 */
#ifndef KS_CLI_CTL_H
#define KS_CLI_CTL_H

#include <stddef.h>

#include <json-c/json.h>

/* Exit codes (README "keystorectl"). */
enum {
    KS_CTL_EXIT_OK = 0,
    KS_CTL_EXIT_SERVER = 1,       /* the server answered with an error status */
    KS_CTL_EXIT_USAGE = 2,        /* bad command line, unreadable token file */
    KS_CTL_EXIT_TRANSPORT = 3,    /* no answer: connection refused, timeout, not JSON */
    KS_CTL_EXIT_INTERRUPTED = 130 /* mutate stopped by SIGINT after a page; a rerun resumes */
};

/* One client: where the server is, the token, the output format, a reused curl handle. */
struct ks_ctl;

struct ks_ctl *ks_ctl_create(const char *url, char *token, long timeout_s, int compact);
/* Wipes the token and frees everything. NULL is fine. */
void ks_ctl_destroy(struct ks_ctl *ctl);

/* One answer of the server. json is the parsed body when it is JSON, else NULL. */
struct ks_ctl_response {
    long status;
    char *body;
    size_t len;
    json_object *json;
};

/*
 * One request: method on url + path (path already percent-encoded), body (NULL for none) sent as
 * application/json. The token goes only to /v1/keystores paths. 0 with *out filled whatever the
 * status; -1 when no HTTP answer came (the reason is printed on stderr).
 */
int ks_ctl_request(struct ks_ctl *ctl, const char *method, const char *path, json_object *body,
                   struct ks_ctl_response *out);
void ks_ctl_response_free(struct ks_ctl_response *r);

/* 1 for 2xx. */
int ks_ctl_ok(const struct ks_ctl_response *r);

/*
 * Prints a 2xx body on stdout (JSON pretty or compact as configured, other bodies as they came,
 * nothing for 204) and returns KS_CTL_EXIT_OK; prints an error answer on stderr
 * (ks_ctl_print_error) and returns KS_CTL_EXIT_SERVER.
 */
int ks_ctl_report(const struct ks_ctl *ctl, const struct ks_ctl_response *r);
void ks_ctl_print_json(const struct ks_ctl *ctl, json_object *obj);

/* "keystorectl: HTTP <status> <error.type>: <error.message> (request id <id>)" on stderr. */
void ks_ctl_print_error(const struct ks_ctl_response *r);

/* error.type of an error answer, or "" */
const char *ks_ctl_error_type(const struct ks_ctl_response *r);

/*
 * "/v1/keystores/<ks>[/branch-keys/<id>]<suffix>" with ks and id percent-encoded (id may be NULL).
 * Caller frees; NULL on OOM.
 */
char *ks_ctl_path(const char *ks, const char *id, const char *suffix);

/* The options of the mutation commands, parsed and checked by main.c. */
struct ks_ctl_mutation_opts {
    const char *terminal_kms_arn;
    json_object *terminal_ec;               /* object or NULL */
    const char *terminal_hierarchy_version; /* "1" | "2" or NULL */
    json_object *strategy; /* {"reEncrypt": ...} | {"decryptEncrypt": ...} or NULL */
    int do_not_version;
    int atomic;
    long page_size; /* 0: the server's default */
};

/* The InitializeMutation body of opts (new object, caller puts it). */
json_object *ks_ctl_mutation_init_body(const struct ks_ctl_mutation_opts *opts);

/* keystorectl mutate KS ID (mutate.c): initialize or resume, then apply pages until complete. */
int ks_mutate_run(struct ks_ctl *ctl, const char *ks, const char *id,
                  const struct ks_ctl_mutation_opts *opts);

/* keystorectl mutation apply KS ID: one page with the token of DescribeMutation. */
int ks_mutate_apply_once(struct ks_ctl *ctl, const char *ks, const char *id,
                         const struct ks_ctl_mutation_opts *opts);

/* keystorectl mutation abort KS ID: DescribeMutation for the token, then DELETE. */
int ks_mutate_abort(struct ks_ctl *ctl, const char *ks, const char *id);

/* keystorectl keys list / versions list (inventory.c). */
struct ks_ctl_list_opts {
    long limit;             /* 0: the server's default */
    const char *next_token; /* start after this page (NULL: the first) */
    int all;                /* follow nextToken to the end and print one combined list */
};

/* GET base[?limit&nextToken] for `member` ("branchKeys", "versions"); base percent-encoded. */
int ks_ctl_list(struct ks_ctl *ctl, const char *base, const char *member,
                const struct ks_ctl_list_opts *opts);

#endif
