/*
 * test_audit.c - common/audit.h: lines that parse as JSON with every field, a short write that
 * continues, a write that fails half way (failure state, the next line refused, the reopen
 * repairing the cut line), /dev/full, a file deleted under the writer (st_nlink 0), a rename and
 * reopen (logrotate), the readiness check, the failure counter.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/audit.h"
#include "server/audit_hook.h"

static uint64_t fixed_now(void *ctx)
{
    (void)ctx;
    return 1700000000123456ull;
}

static const struct ks_clock fixed_clock = {fixed_now, NULL};

/* A fresh path in a fresh directory (removed by the test). */
static void temp_path(char dir[64], char path[96])
{
    snprintf(dir, 64, "%s", "/tmp/ks-audit-test-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, 96, "%s/audit.log", dir);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    static char buf[65536];
    size_t n;
    cr_assert_not_null(f, "cannot open %s", path);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Is text one whole JSON value? (parsed and freed) */
static int is_json(const char *text)
{
    json_object *o = json_tokener_parse(text);
    json_object_put(o);
    return o != NULL;
}

static struct ks_audit *open_at(const char *path, ssize_t (*write_fn)(int, const void *, size_t))
{
    struct ks_audit_options o = {path, 1, 0, &fixed_clock, NULL, write_fn};
    struct ks_audit *a = NULL;
    struct ks_error err;
    cr_assert_eq(ks_audit_open(&o, &a, &err), KS_OK, "%s", err.message);
    return a;
}

static const struct ks_audit_record sample = {
    "outcome", "rid-1",       "admin", "CreateKey", "POST", "/v1/keystores/{ks}/branch-keys",
    "default", "key-\"1\"\n", "v1",    "local",     -1,     201,
    NULL};

static ks_status write_sample(struct ks_audit *a)
{
    struct ks_error err;
    return ks_audit_write(a, &sample, &err);
}

Test(audit, line_has_every_field_as_json)
{
    char dir[64], path[96];
    struct json_object *o, *v;
    struct ks_audit *a;

    temp_path(dir, path);
    a = open_at(path, NULL);
    cr_assert_eq(write_sample(a), KS_OK);
    ks_audit_close(a);
    o = json_tokener_parse(slurp(path));
    cr_assert_not_null(o, "not JSON: %s", slurp(path));
    cr_expect_str_eq(json_object_get_string(json_object_object_get(o, "time")),
                     "2023-11-14T22:13:20.123Z");
    cr_expect_str_eq(json_object_get_string(json_object_object_get(o, "operation")), "CreateKey");
    cr_expect_str_eq(json_object_get_string(json_object_object_get(o, "branchKeyId")),
                     "key-\"1\"\n");
    cr_expect_str_eq(json_object_get_string(json_object_object_get(o, "kmsRelationship")), "local");
    cr_expect_eq(json_object_get_int(json_object_object_get(o, "status")), 201);
    cr_expect(json_object_object_get_ex(o, "error", &v) && v == NULL, "error: null");
    cr_expect(!json_object_object_get_ex(o, "items", &v), "items left out");
    json_object_put(o);
    cr_expect_eq(strchr(slurp(path), '\n') - slurp(path) + 1, (long)strlen(slurp(path)),
                 "exactly one line");
    unlink(path);
    rmdir(dir);
}

/* --- write(2) stand-ins ------------------------------------------------------------------- */

static int calls;

/* Writes at most 7 bytes per call: a line takes several calls and must still arrive whole. */
static ssize_t short_writes(int fd, const void *buf, size_t len)
{
    calls++;
    return write(fd, buf, len < 7 ? len : 7);
}

/* The first call writes 10 bytes, the second fails with ENOSPC (a disk filling up mid-line). */
static ssize_t half_then_full(int fd, const void *buf, size_t len)
{
    if (calls++ == 0)
        return write(fd, buf, len < 10 ? len : 10);
    errno = ENOSPC;
    return -1;
}

Test(audit, short_writes_continue)
{
    char dir[64], path[96];
    struct ks_audit *a;

    temp_path(dir, path);
    calls = 0;
    a = open_at(path, short_writes);
    cr_assert_eq(write_sample(a), KS_OK);
    cr_expect_gt(calls, 10);
    cr_expect_eq(ks_audit_failed(a), 0);
    ks_audit_close(a);
    cr_expect(is_json(slurp(path)));
    unlink(path);
    rmdir(dir);
}

Test(audit, partial_write_fails_and_reopen_repairs_the_line)
{
    char dir[64], path[96];
    struct ks_error err;
    struct ks_audit *a;
    char *text, *nl;

    temp_path(dir, path);
    calls = 0;
    a = open_at(path, half_then_full);
    cr_expect_eq(write_sample(a), KS_E_UNAVAILABLE);
    cr_expect_eq(ks_audit_failed(a), 1);
    cr_expect_eq(ks_audit_failures(a), 1);
    /* Sticky: the next line is refused without trying (the stand-in is not called again). */
    calls = 100;
    cr_expect_eq(write_sample(a), KS_E_UNAVAILABLE);
    cr_expect_eq(calls, 100);
    cr_expect_eq(ks_audit_failures(a), 2);
    cr_expect_eq(ks_audit_check(a, &err), KS_E_UNAVAILABLE);
    /* The reopen ends the cut line, then lines arrive whole again (the stand-in writes all of
     * the newline and then the line, 10 and ... : use plain write from here). */
    ks_audit_close(a);
    a = open_at(path, NULL);
    cr_assert_eq(ks_audit_reopen(a, &err), KS_OK, "%s", err.message);
    cr_expect_eq(write_sample(a), KS_OK);
    ks_audit_close(a);
    text = slurp(path);
    nl = strchr(text, '\n');
    cr_assert_not_null(nl);
    cr_expect_eq(nl - text, 10, "the cut line keeps its 10 bytes: %s", text);
    cr_expect(is_json(nl + 1), "the next line is whole: %s", nl + 1);
    unlink(path);
    rmdir(dir);
}

Test(audit, reopen_leaves_the_failure_state)
{
    char dir[64], path[96];
    struct ks_error err;
    struct ks_audit *a;

    temp_path(dir, path);
    calls = 0;
    a = open_at(path, half_then_full);
    cr_expect_eq(write_sample(a), KS_E_UNAVAILABLE);
    calls = 0; /* the stand-in writes 10 bytes, then fails: the reopen's newline passes */
    cr_assert_eq(ks_audit_reopen(a, &err), KS_OK, "%s", err.message);
    cr_expect_eq(ks_audit_failed(a), 0);
    cr_expect_eq(ks_audit_check(a, &err), KS_OK);
    ks_audit_close(a);
    unlink(path);
    rmdir(dir);
}

Test(audit, dev_full_fails)
{
    struct ks_error err;
    struct ks_audit *a = open_at("/dev/full", NULL);
    cr_expect_eq(ks_audit_check(a, &err), KS_OK, "nothing written yet");
    cr_expect_eq(write_sample(a), KS_E_UNAVAILABLE);
    cr_expect_eq(ks_audit_failed(a), 1);
    cr_expect_eq(ks_audit_check(a, &err), KS_E_UNAVAILABLE);
    cr_expect_eq(err.code, KS_E_UNAVAILABLE);
    /* Reopening /dev/full succeeds, and the next line fails again. */
    cr_expect_eq(ks_audit_reopen(a, &err), KS_OK);
    cr_expect_eq(ks_audit_failed(a), 0);
    cr_expect_eq(write_sample(a), KS_E_UNAVAILABLE);
    cr_expect_eq(ks_audit_failures(a), 2);
    ks_audit_close(a);
}

Test(audit, deleted_file_fails_until_reopened)
{
    char dir[64], path[96];
    struct ks_error err;
    struct ks_audit *a;
    struct stat st;

    temp_path(dir, path);
    a = open_at(path, NULL);
    cr_assert_eq(write_sample(a), KS_OK);
    cr_assert_eq(unlink(path), 0);
    /* The readiness check sees it without a write. */
    cr_expect_eq(ks_audit_check(a, &err), KS_E_UNAVAILABLE);
    cr_expect_eq(ks_audit_failed(a), 1);
    cr_expect_eq(write_sample(a), KS_E_UNAVAILABLE);
    cr_expect_eq(stat(path, &st), -1, "nothing recreated the file by itself");
    cr_assert_eq(ks_audit_reopen(a, &err), KS_OK, "%s", err.message);
    cr_expect_eq(write_sample(a), KS_OK);
    ks_audit_close(a);
    cr_expect(is_json(slurp(path)));
    unlink(path);
    rmdir(dir);
}

Test(audit, rename_then_reopen_writes_the_new_file)
{
    char dir[64], path[96], rotated[112];
    struct ks_error err;
    struct ks_audit *a;

    temp_path(dir, path);
    snprintf(rotated, sizeof rotated, "%s.1", path);
    a = open_at(path, NULL);
    cr_assert_eq(write_sample(a), KS_OK);
    cr_assert_eq(rename(path, rotated), 0);
    /* Until the reopen, lines go on into the renamed file (it still has a name). */
    cr_assert_eq(write_sample(a), KS_OK);
    cr_assert_eq(ks_audit_reopen(a, &err), KS_OK, "%s", err.message);
    cr_assert_eq(write_sample(a), KS_OK);
    ks_audit_close(a);
    cr_expect_eq(strlen(slurp(path)) * 2, strlen(slurp(rotated)), "1 line new, 2 rotated");
    unlink(path);
    unlink(rotated);
    rmdir(dir);
}

Test(audit, reopen_failure_keeps_the_old_descriptor)
{
    char dir[64], path[96];
    struct ks_error err;
    struct ks_audit *a;

    temp_path(dir, path);
    a = open_at(path, NULL);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(rmdir(dir), 0); /* the path cannot be created any more */
    cr_expect_eq(ks_audit_reopen(a, &err), KS_E_UNAVAILABLE);
    cr_expect(strstr(err.message, "cannot reopen") != NULL, "%s", err.message);
    cr_expect_eq(write_sample(a), KS_E_UNAVAILABLE, "the deleted file still fails");
    ks_audit_close(a);
}

Test(audit, open_failure_names_the_path)
{
    struct ks_audit_options o = {"/nonexistent-dir/x/audit.log", 0, 0, NULL, NULL, NULL};
    struct ks_audit *a = NULL;
    struct ks_error err;
    cr_expect_eq(ks_audit_open(&o, &a, &err), KS_E_CONFIG);
    cr_expect(strstr(err.message, "/nonexistent-dir/x/audit.log") != NULL, "%s", err.message);
    cr_expect_null(a);
}

/* --- server/audit_hook.c: the fail-closed rule around a handler ------------------------------- */

/* The first call (the request line) succeeds; later ones fail (the disk fills up in between). */
static ssize_t first_only(int fd, const void *buf, size_t len)
{
    if (calls++ == 0)
        return write(fd, buf, len);
    errno = ENOSPC;
    return -1;
}

Test(audit_hook, outcome_failure_replaces_the_answer)
{
    char dir[64], path[96];
    struct ks_audit_call c;
    struct ks_request req;
    struct ks_response resp;
    struct ks_error err;
    struct ks_audit *a;

    temp_path(dir, path);
    calls = 0;
    a = open_at(path, first_only);
    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    req.route = "/v1/keystores/{ks}/branch-keys/{id}/active";
    ks_audit_hook_init(&c, a, "rid-9", "GET");
    cr_assert_eq(ks_audit_hook_before(&c, &req, &err), KS_OK);
    cr_expect_eq(req.audit, &c.note, "the handler gets the note");
    ks_handler_audit_key(&req, "key-9", "v-9");
    resp.status = 200;
    cr_expect_eq(ks_audit_hook_after(&c, &req, KS_OK, &resp, &err), KS_E_UNAVAILABLE);
    cr_expect_eq(err.code, KS_E_UNAVAILABLE);
    /* The next request's line is refused before its handler, and no outcome line is tried. */
    memset(&req, 0, sizeof req);
    req.route = "/v1/keystores/{ks}/branch-keys";
    ks_audit_hook_init(&c, a, "rid-10", "POST");
    cr_expect_eq(ks_audit_hook_before(&c, &req, &err), KS_E_UNAVAILABLE);
    cr_expect_null(req.audit);
    cr_expect_eq(ks_audit_hook_after(&c, &req, KS_E_UNAVAILABLE, &resp, &err), KS_E_UNAVAILABLE);
    cr_expect_eq(ks_audit_failures(a), 2, "the refused outcome is not counted twice");
    ks_audit_close(a);
    cr_expect(strstr(slurp(path), "\"phase\":\"request\"") != NULL, "%s", slurp(path));
    cr_expect(strstr(slurp(path), "\"operation\":\"GetActiveBranchKey\"") != NULL);
    unlink(path);
    rmdir(dir);
}

Test(audit_hook, gets_without_key_material_are_not_audited)
{
    char dir[64], path[96];
    struct ks_audit_call c;
    struct ks_request req;
    struct ks_response resp = {0};
    struct ks_error err;
    struct ks_audit *a;

    temp_path(dir, path);
    a = open_at(path, NULL);
    memset(&req, 0, sizeof req);
    req.route = "/v1/keystores/{ks}/branch-keys";
    ks_audit_hook_init(&c, a, "rid-1", "GET");
    cr_expect_eq(ks_audit_hook_before(&c, &req, &err), KS_OK);
    cr_expect_null(req.audit);
    cr_expect_eq(ks_audit_hook_after(&c, &req, KS_OK, &resp, &err), KS_OK);
    /* A writing route missing from the table is audited under its method and pattern. */
    req.route = "/v1/some/new/route";
    ks_audit_hook_init(&c, a, "rid-2", "PATCH");
    cr_expect_eq(ks_audit_hook_before(&c, &req, &err), KS_OK);
    ks_audit_close(a);
    cr_expect(strstr(slurp(path), "\"rid-1\"") == NULL);
    cr_expect(strstr(slurp(path), "\"operation\":\"PATCH /v1/some/new/route\"") != NULL, "%s",
              slurp(path));
    unlink(path);
    rmdir(dir);
}
