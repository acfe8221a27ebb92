/*
 * mutate.c - keystorectl mutate: InitializeMutation (or resume it with the same input), then
 * ApplyMutation page after page until the server says completed, showing progress; plus the
 * one-page apply and the abort of `keystorectl mutation` (README "keystorectl", "Mutations").
 *
 * SIGINT sets a flag that is read between pages: the page in flight finishes (its write is one
 * storage transaction on the server either way), then the command stops with exit 130 and a rerun
 * of the same command resumes, since InitializeMutation with the same input answers 200 Resumed.
 * A second SIGINT kills at once (SA_RESETHAND); that is safe too, only slower to resume.
 */
#include "cli/ctl.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

enum { APPLY_CONFLICT_RETRIES = 5 };

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void catch_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

static json_object *member(json_object *obj, const char *name)
{
    json_object *v = NULL;
    if (obj && json_object_is_type(obj, json_type_object))
        json_object_object_get_ex(obj, name, &v);
    return v;
}

static long member_long(json_object *obj, const char *name)
{
    json_object *v = member(obj, name);
    return v && json_object_is_type(v, json_type_int) ? (long)json_object_get_int64(v) : 0;
}

/* ---- progress ------------------------------------------------------------------------------ */

struct progress {
    int tty;         /* stderr is a terminal: one bar redrawn in place; else one line per page */
    long total;      /* versions of the key (DescribeMutation: original + terminal), 0 unknown */
    long done;       /* versions in the terminal state */
    long done_start; /* done when this run started (the rate counts this run's work only) */
    long pages;
    uint64_t t0_us;
};

static void format_eta(double seconds, char *out, size_t size)
{
    long s = seconds > 0 && seconds < 1e7 ? (long)(seconds + 0.5) : -1;
    if (s < 0)
        snprintf(out, size, "--:--");
    else if (s >= 3600)
        snprintf(out, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(out, size, "%ld:%02ld", s / 60, s % 60);
}

static void progress_show(const struct progress *p)
{
    double elapsed = (double)(ks_monotonic_us() - p->t0_us) / 1e6;
    double rate = elapsed > 0 ? (double)(p->done - p->done_start) / elapsed : 0;
    long left = p->total > p->done ? p->total - p->done : 0;
    char eta[32];

    format_eta(rate > 0 ? (double)left / rate : -1, eta, sizeof eta);
    if (p->tty) {
        enum { WIDTH = 30 };
        char bar[WIDTH + 1];
        int i, fill = p->total > 0
                          ? (int)(WIDTH * (p->done > p->total ? p->total : p->done) / p->total)
                          : 0;
        for (i = 0; i < WIDTH; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = '\0';
        fprintf(stderr, "\r[%s] %ld/%ld versions  %.1f/s  ETA %s  page %ld\033[K", bar, p->done,
                p->total, rate, eta, p->pages);
    } else {
        fprintf(stderr, "keystorectl: page %ld: %ld/%ld versions, %.1f versions/s, ETA %s\n",
                p->pages, p->done, p->total, rate, eta);
    }
    fflush(stderr);
}

static void progress_end(const struct progress *p)
{
    if (p->tty && p->pages > 0)
        fputc('\n', stderr);
}

/* ---- requests ------------------------------------------------------------------------------ */

/* GET .../mutation; 0 with *out filled (any status), -1 when the server did not answer. */
static int describe(struct ks_ctl *ctl, const char *ks, const char *id, struct ks_ctl_response *out)
{
    char *path = ks_ctl_path(ks, id, "/mutation");
    int rc = path ? ks_ctl_request(ctl, "GET", path, NULL, out) : -1;
    free(path);
    return rc;
}

/* The mutation token of DescribeMutation (a new reference), or NULL with the error printed. */
static json_object *token_from_describe(struct ks_ctl *ctl, const char *ks, const char *id,
                                        int *exit_code)
{
    struct ks_ctl_response r;
    json_object *token = NULL;

    *exit_code = KS_CTL_EXIT_TRANSPORT;
    if (describe(ctl, ks, id, &r) != 0)
        return NULL;
    if (!ks_ctl_ok(&r)) {
        ks_ctl_print_error(&r);
        *exit_code = KS_CTL_EXIT_SERVER;
    } else if (!(token = member(r.json, "mutationToken"))) {
        fprintf(stderr, "keystorectl: DescribeMutation answered without mutationToken\n");
    } else {
        json_object_get(token);
        *exit_code = KS_CTL_EXIT_OK;
    }
    ks_ctl_response_free(&r);
    return token;
}

static json_object *apply_body(json_object *token, const struct ks_ctl_mutation_opts *opts)
{
    json_object *body = json_object_new_object();
    json_object_object_add(body, "mutationToken", json_object_get(token));
    if (opts->page_size > 0)
        json_object_object_add(body, "pageSize", json_object_new_int64(opts->page_size));
    if (opts->strategy)
        json_object_object_add(body, "strategy", json_object_get(opts->strategy));
    return body;
}

/*
 * One ApplyMutation. A 409 MutationConflictException is a lost race with another client applying
 * the same mutation (issue: "one page write wins, the other gets 409 and retries"): retried a few
 * times after a short pause. 0 with *out a 2xx answer (caller frees); else the exit code, the
 * error printed and *out empty.
 */
static int apply_page(struct ks_ctl *ctl, const char *path, json_object *token,
                      const struct ks_ctl_mutation_opts *opts, struct ks_ctl_response *out)
{
    json_object *body = apply_body(token, opts);
    int attempt, rc = KS_CTL_EXIT_TRANSPORT;

    for (attempt = 0; attempt <= APPLY_CONFLICT_RETRIES; attempt++) {
        if (ks_ctl_request(ctl, "POST", path, body, out) != 0)
            break;
        if (ks_ctl_ok(out)) {
            rc = KS_CTL_EXIT_OK;
            break;
        }
        if (out->status != 409 || strcmp(ks_ctl_error_type(out), "MutationConflictException") ||
            attempt == APPLY_CONFLICT_RETRIES) {
            ks_ctl_print_error(out);
            ks_ctl_response_free(out);
            rc = KS_CTL_EXIT_SERVER;
            break;
        }
        ks_ctl_response_free(out);
        usleep(100000u * (unsigned)(attempt + 1));
    }
    json_object_put(body);
    return rc;
}

int ks_mutate_apply_once(struct ks_ctl *ctl, const char *ks, const char *id,
                         const struct ks_ctl_mutation_opts *opts)
{
    struct ks_ctl_response r;
    int rc;
    json_object *token = token_from_describe(ctl, ks, id, &rc);
    char *path = ks_ctl_path(ks, id, "/mutation/apply");

    if (token && path) {
        rc = apply_page(ctl, path, token, opts, &r);
        if (rc == KS_CTL_EXIT_OK)
            rc = ks_ctl_report(ctl, &r);
        ks_ctl_response_free(&r);
    }
    json_object_put(token);
    free(path);
    return rc;
}

int ks_mutate_abort(struct ks_ctl *ctl, const char *ks, const char *id)
{
    struct ks_ctl_response r;
    int rc;
    json_object *token = token_from_describe(ctl, ks, id, &rc);
    char *path = ks_ctl_path(ks, id, "/mutation");

    if (token && path) {
        json_object *body = json_object_new_object();
        json_object_object_add(body, "mutationToken", json_object_get(token));
        rc = KS_CTL_EXIT_TRANSPORT;
        if (ks_ctl_request(ctl, "DELETE", path, body, &r) == 0) {
            rc = ks_ctl_report(ctl, &r);
            if (rc == KS_CTL_EXIT_OK)
                fprintf(stderr, "keystorectl: mutation of %s aborted\n", id);
            ks_ctl_response_free(&r);
        }
        json_object_put(body);
    }
    json_object_put(token);
    free(path);
    return rc;
}

/* ---- mutate -------------------------------------------------------------------------------- */

json_object *ks_ctl_mutation_init_body(const struct ks_ctl_mutation_opts *opts)
{
    json_object *body = json_object_new_object();
    if (opts->terminal_kms_arn)
        json_object_object_add(body, "terminalKmsArn",
                               json_object_new_string(opts->terminal_kms_arn));
    if (opts->terminal_ec)
        json_object_object_add(body, "terminalEncryptionContext",
                               json_object_get(opts->terminal_ec));
    if (opts->terminal_hierarchy_version)
        json_object_object_add(body, "terminalHierarchyVersion",
                               json_object_new_string(opts->terminal_hierarchy_version));
    if (opts->strategy)
        json_object_object_add(body, "strategy", json_object_get(opts->strategy));
    if (opts->do_not_version)
        json_object_object_add(body, "doNotVersion", json_object_new_boolean(1));
    if (opts->atomic)
        json_object_object_add(body, "atomic", json_object_new_boolean(1));
    return body;
}

/*
 * The 400 MutationInvalidException of InitializeMutation plus a 404 from DescribeMutation means
 * the key is already in the terminal state and nothing is in flight: a rerun after completion
 * (issue 10, "Nothing to do"). 1 then.
 */
static int already_done(struct ks_ctl *ctl, const char *ks, const char *id,
                        const struct ks_ctl_response *init)
{
    struct ks_ctl_response r;
    int done;

    if (init->status != 400 || strcmp(ks_ctl_error_type(init), "MutationInvalidException") != 0)
        return 0;
    if (describe(ctl, ks, id, &r) != 0)
        return 0;
    done = r.status == 404;
    ks_ctl_response_free(&r);
    return done;
}

/*
 * InitializeMutation. 0 with *token set (a new reference) or, for an atomic mutation or nothing
 * left to do, with *token NULL and the final answer printed; else the exit code.
 */
static int initialize(struct ks_ctl *ctl, const char *ks, const char *id,
                      const struct ks_ctl_mutation_opts *opts, json_object **token)
{
    struct ks_ctl_response r;
    json_object *body = ks_ctl_mutation_init_body(opts), *flag;
    char *path = ks_ctl_path(ks, id, "/mutation");
    int rc = KS_CTL_EXIT_TRANSPORT;

    *token = NULL;
    if (path && ks_ctl_request(ctl, "POST", path, body, &r) == 0) {
        rc = KS_CTL_EXIT_OK;
        if (ks_ctl_ok(&r) && (*token = member(r.json, "mutationToken"))) {
            json_object_get(*token);
            flag = member(r.json, "initializeMutationFlag");
            fprintf(stderr, "keystorectl: mutation of %s: %s\n", id,
                    flag ? json_object_get_string(flag) : "initialized");
        } else if (ks_ctl_ok(&r)) {
            rc = ks_ctl_report(ctl, &r); /* atomic: completed in one write, no token */
        } else if (already_done(ctl, ks, id, &r)) {
            fprintf(stderr,
                    "keystorectl: %s is already in the terminal state and no mutation is "
                    "in flight: nothing to do\n",
                    id);
            printf("{\"completed\": true}\n");
        } else {
            ks_ctl_print_error(&r);
            if (r.status == 409 && !strcmp(ks_ctl_error_type(&r), "MutationConflictException"))
                fprintf(stderr,
                        "keystorectl: another mutation is in flight: see `keystorectl "
                        "mutation show %s %s` (abort it with `mutation abort`)\n",
                        ks, id);
            rc = KS_CTL_EXIT_SERVER;
        }
        ks_ctl_response_free(&r);
    }
    json_object_put(body);
    free(path);
    return rc;
}

/* The starting point of the progress: versions counts of DescribeMutation (0 when unknown). */
static void progress_start(struct ks_ctl *ctl, const char *ks, const char *id, struct progress *p)
{
    struct ks_ctl_response r;

    memset(p, 0, sizeof *p);
    p->tty = isatty(STDERR_FILENO);
    p->t0_us = ks_monotonic_us();
    if (describe(ctl, ks, id, &r) != 0)
        return;
    if (ks_ctl_ok(&r)) {
        json_object *versions = member(r.json, "versions");
        p->done = member_long(versions, "terminal");
        p->total = member_long(versions, "original") + p->done;
        p->done_start = p->done;
    }
    ks_ctl_response_free(&r);
}

/* Applies pages until completed or SIGINT; the last answer printed on completion. */
static int apply_all(struct ks_ctl *ctl, const char *ks, const char *id,
                     const struct ks_ctl_mutation_opts *opts, json_object *token)
{
    struct progress p;
    char *path = ks_ctl_path(ks, id, "/mutation/apply");
    int rc = KS_CTL_EXIT_OK, finished = 0;

    progress_start(ctl, ks, id, &p);
    json_object_get(token);
    while (path && rc == KS_CTL_EXIT_OK && !interrupted) {
        struct ks_ctl_response r;
        json_object *completed, *next;
        rc = apply_page(ctl, path, token, opts, &r);
        if (rc != KS_CTL_EXIT_OK)
            break;
        p.pages++;
        /* versionsMutated and versionsVerified count this page's versions */
        p.done += member_long(r.json, "versionsMutated") + member_long(r.json, "versionsVerified");
        completed = member(r.json, "completed");
        if (completed && json_object_get_boolean(completed)) {
            if (p.total < p.done)
                p.total = p.done;
            progress_show(&p);
            progress_end(&p);
            rc = ks_ctl_report(ctl, &r);
            ks_ctl_response_free(&r);
            finished = 1;
            break;
        }
        progress_show(&p);
        if ((next = member(r.json, "mutationToken"))) {
            json_object_put(token);
            token = json_object_get(next);
        }
        ks_ctl_response_free(&r);
    }
    if (!finished && interrupted && rc == KS_CTL_EXIT_OK) {
        progress_end(&p);
        fprintf(stderr,
                "keystorectl: interrupted after %ld page(s), %ld/%ld versions done; run the "
                "same command again to resume\n",
                p.pages, p.done, p.total);
        rc = KS_CTL_EXIT_INTERRUPTED;
    } else if (rc != KS_CTL_EXIT_OK) {
        progress_end(&p);
    }
    if (!path)
        rc = KS_CTL_EXIT_TRANSPORT;
    json_object_put(token);
    free(path);
    return rc;
}

int ks_mutate_run(struct ks_ctl *ctl, const char *ks, const char *id,
                  const struct ks_ctl_mutation_opts *opts)
{
    json_object *token = NULL;
    int rc;

    catch_sigint();
    rc = initialize(ctl, ks, id, opts, &token);
    if (rc != KS_CTL_EXIT_OK || !token)
        return rc;
    rc = apply_all(ctl, ks, id, opts, token);
    json_object_put(token);
    return rc;
}
