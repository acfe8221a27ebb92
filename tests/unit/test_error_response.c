/*
 * test_error_response.c - handlers/common.c's error answer: what a client may read of a
 * struct ks_error (docs/architecture.md section 3; issue 9 item 6).
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "common/secret.h"
#include "common/util.h"
#include "handlers/handlers.h"

struct answer {
    ks_status answered;
    int http;
    char type[64], message[1024], request_id[200];
};

static struct answer render(const struct ks_error *err, const char *rid)
{
    struct ks_response resp;
    struct answer a;
    struct json_object *o, *e, *v;

    memset(&resp, 0, sizeof resp);
    memset(&a, 0, sizeof a);
    a.answered = ks_handler_error_response(err, rid, &resp);
    a.http = resp.status;
    cr_assert_not_null(resp.body);
    cr_expect(resp.no_store);
    cr_expect(ks_utf8_valid(resp.body, resp.body_len), "body is not valid UTF-8");
    o = json_tokener_parse(resp.body);
    cr_assert_not_null(o, "not JSON: %s", resp.body);
    cr_assert(json_object_object_get_ex(o, "error", &e));
    cr_expect_eq(json_object_object_length(o), 1);
    cr_expect_eq(json_object_object_length(e), 3, "error members: %s", resp.body);
    cr_assert(json_object_object_get_ex(e, "type", &v));
    snprintf(a.type, sizeof a.type, "%s", json_object_get_string(v));
    cr_assert(json_object_object_get_ex(e, "message", &v));
    snprintf(a.message, sizeof a.message, "%s", json_object_get_string(v));
    cr_assert(json_object_object_get_ex(e, "requestId", &v));
    snprintf(a.request_id, sizeof a.request_id, "%s", json_object_get_string(v));
    json_object_put(o);
    ks_secret_free_string(resp.body);
    return a;
}

Test(error_response, client_error_keeps_its_message)
{
    struct ks_error err;
    struct answer a;
    ks_error_set(&err, KS_E_INVALID, "branchKeyIdentifier: expected a string");
    a = render(&err, "rid-1");
    cr_expect_eq(a.answered, KS_E_INVALID);
    cr_expect_eq(a.http, 400);
    cr_expect_str_eq(a.type, "KeyStoreException");
    cr_expect_str_eq(a.message, "branchKeyIdentifier: expected a string");
    cr_expect_str_eq(a.request_id, "rid-1");
}

Test(error_response, dependency_error_names_dependency_and_code_never_detail)
{
    struct ks_error err;
    struct answer a;
    ks_error_set(&err, KS_E_KMS, "KMS AccessDeniedException");
    ks_error_set_detail(&err, "User: arn:aws:iam::123456789012:role/app is not authorized");
    a = render(&err, "rid-2");
    cr_expect_eq(a.http, 502);
    cr_expect_str_eq(a.type, "KeyManagementException");
    cr_expect_str_eq(a.message, "KMS AccessDeniedException");
    cr_expect_null(strstr(a.message, "123456789012"));
    cr_expect_str_eq(a.request_id, "rid-2");
}

Test(error_response, internal_error_hides_its_free_text)
{
    struct ks_error err;
    struct answer a;
    ks_error_set(&err, KS_E_INTERNAL, "sqlite3_prepare failed at /srv/keystored/data/ks.db");
    a = render(&err, "rid-3");
    cr_expect_eq(a.http, 500);
    cr_expect_str_eq(a.type, "InternalServerError");
    cr_expect_null(strstr(a.message, "sqlite"), "internal text leaked: %s", a.message);
    cr_expect_str_eq(a.message, ks_strerror(KS_E_INTERNAL));
}

Test(error_response, config_status_at_request_time_is_an_internal_error)
{
    struct ks_error err;
    struct answer a;
    ks_error_set(&err, KS_E_CONFIG, "AWS credentials in the environment are malformed");
    a = render(&err, "rid-4");
    cr_expect_eq(a.answered, KS_E_INTERNAL);
    cr_expect_eq(a.http, 500);
    cr_expect_str_eq(a.type, "InternalServerError");
    cr_expect_null(strstr(a.message, "AWS"), "config text leaked: %s", a.message);
}

Test(error_response, unknown_or_ok_status_is_an_internal_error)
{
    struct ks_error err;
    struct answer a;
    ks_error_clear(&err);
    a = render(&err, "rid-5");
    cr_expect_eq(a.answered, KS_E_INTERNAL);
    cr_expect_eq(a.http, 500);
    err.code = (ks_status)999;
    snprintf(err.message, sizeof err.message, "bogus");
    a = render(&err, "rid-6");
    cr_expect_eq(a.http, 500);
    cr_expect_str_eq(a.type, "InternalServerError");
}

Test(error_response, invalid_utf8_in_a_message_is_replaced_and_cut_tail_dropped)
{
    struct ks_error err;
    struct answer a;
    /* a key store name with invalid bytes, and a message cut inside a 3-byte sequence:
     * ks_error_set already shows invalid bytes as \xNN text (common/utf8.h) */
    ks_error_set(&err, KS_E_NOT_FOUND, "key store '%s' is not configured", "\xff\xc3(");
    a = render(&err, "rid-7");
    cr_expect_str_eq(a.message, "key store '\\xff\\xc3(' is not configured");
    ks_error_set(&err, KS_E_NO_ROUTE, "no route for %.5s", "/ab\xe2\x82\xac");
    a = render(&err, "rid-8");
    cr_expect_str_eq(a.message, "no route for /ab\\xe2\\x82");
    /* a message that bypassed ks_error_set still reaches the client as valid UTF-8 */
    snprintf(err.message, sizeof err.message, "bad \xff and cut \xe2\x82");
    a = render(&err, "rid-8b");
    cr_expect_str_eq(a.message, "bad \xef\xbf\xbd and cut ");
}

Test(error_response, empty_message_gets_the_table_text)
{
    struct ks_error err;
    struct answer a;
    ks_error_set(&err, KS_E_UNAVAILABLE, "%s", "");
    a = render(&err, "rid-9");
    cr_expect_eq(a.http, 503);
    cr_expect_str_eq(a.message, ks_strerror(KS_E_UNAVAILABLE));
}
