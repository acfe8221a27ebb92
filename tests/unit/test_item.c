/*
 * test_item.c - struct ks_item and its DynamoDB AttributeValue JSON form
 * (docs/reference/aws-apis.md section 3).
 */
#include <criterion/criterion.h>

#include "common/util.h"

#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "storage/item.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Serializes item to a heap string (the sqlite.c stored form). */
static char *item_json_text(const struct ks_item *item)
{
    struct json_object *obj;
    char *text;

    cr_assert_eq(ks_item_to_json(item, &obj), 0);
    text = strdup(json_object_to_json_string_ext(obj, JSON_FLAGS));
    json_object_put(obj);
    cr_assert_not_null(text);
    return text;
}

/* Parses text as JSON and then as an item; returns the status, err filled. */
static ks_status parse_text(const char *text, struct ks_item *out, struct ks_error *err)
{
    struct json_object *obj = json_tokener_parse(text);
    ks_status st;

    cr_assert_not_null(obj, "test JSON does not parse: %s", text);
    ks_error_clear(err);
    st = ks_item_from_json(obj, out, err);
    json_object_put(obj);
    return st;
}

static void assert_items_equal(const struct ks_item *a, const struct ks_item *b)
{
    size_t i;

    cr_assert_eq(a->count, b->count);
    for (i = 0; i < a->count; i++) {
        cr_assert_str_eq(a->attrs[i].name, b->attrs[i].name);
        cr_assert_eq(a->attrs[i].type, b->attrs[i].type, "type of %s", a->attrs[i].name);
        cr_assert_eq(a->attrs[i].len, b->attrs[i].len, "length of %s", a->attrs[i].name);
        cr_assert_eq(memcmp(a->attrs[i].value, b->attrs[i].value, a->attrs[i].len), 0,
                     "bytes of %s", a->attrs[i].name);
    }
}

Test(item, set_and_get)
{
    struct ks_item item;
    const struct ks_attr *a;
    const unsigned char bytes[] = {0x00, 0x01, 0xff};

    ks_item_init(&item);
    cr_assert_eq(ks_item_set_s(&item, "type", "branch:ACTIVE"), 0);
    cr_assert_eq(ks_item_set_n(&item, "hierarchy-version", "1"), 0);
    cr_assert_eq(ks_item_set_b(&item, "enc", bytes, sizeof bytes), 0);
    cr_assert_eq(ks_item_set_s(&item, "branch-key-id", "id"), 0);
    cr_assert_eq(item.count, 4);

    /* Kept sorted by name. */
    cr_assert_str_eq(item.attrs[0].name, "branch-key-id");
    cr_assert_str_eq(item.attrs[1].name, "enc");
    cr_assert_str_eq(item.attrs[2].name, "hierarchy-version");
    cr_assert_str_eq(item.attrs[3].name, "type");

    a = ks_item_get(&item, "enc");
    cr_assert_not_null(a);
    cr_assert_eq(a->type, KS_ATTR_B);
    cr_assert_eq(a->len, 3);
    cr_assert_eq(memcmp(a->value, bytes, 3), 0);

    a = ks_item_get(&item, "hierarchy-version");
    cr_assert_eq(a->type, KS_ATTR_N);
    cr_assert_eq(a->len, 1);
    cr_assert_str_eq((const char *)a->value, "1");

    cr_assert_str_eq(ks_item_get_s(&item, "type"), "branch:ACTIVE");
    cr_assert_eq(ks_item_get(&item, "type")->len, strlen("branch:ACTIVE"));
    cr_assert_null(ks_item_get_s(&item, "enc"), "B is not S");
    cr_assert_null(ks_item_get_s(&item, "hierarchy-version"), "N is not S");
    cr_assert_null(ks_item_get(&item, "missing"));
    cr_assert_null(ks_item_get_s(&item, "missing"));
    ks_item_free(&item);
    cr_assert_eq(item.count, 0);
    ks_item_free(&item); /* twice is harmless */
}

Test(item, many_attributes_stay_sorted)
{
    struct ks_item item;
    char name[32];
    size_t i;

    ks_item_init(&item);
    for (i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "aws-crypto-ec:%03zu", (i * 37) % 100);
        cr_assert_eq(ks_item_set_s(&item, name, name), 0);
    }
    cr_assert_eq(item.count, 100);
    for (i = 1; i < item.count; i++)
        cr_assert_lt(strcmp(item.attrs[i - 1].name, item.attrs[i].name), 0);
    ks_item_free(&item);
}

Test(item, replace_changes_value_and_type)
{
    struct ks_item item;
    const unsigned char b[] = {1, 2};

    ks_item_init(&item);
    cr_assert_eq(ks_item_set_s(&item, "x", "first"), 0);
    cr_assert_eq(ks_item_set_s(&item, "x", "second value"), 0);
    cr_assert_eq(item.count, 1);
    cr_assert_str_eq(ks_item_get_s(&item, "x"), "second value");
    cr_assert_eq(ks_item_get(&item, "x")->len, strlen("second value"));

    cr_assert_eq(ks_item_set_b(&item, "x", b, sizeof b), 0);
    cr_assert_eq(item.count, 1);
    cr_assert_eq(ks_item_get(&item, "x")->type, KS_ATTR_B);
    cr_assert_null(ks_item_get_s(&item, "x"));
    ks_item_free(&item);
}

Test(item, remove)
{
    struct ks_item item;

    ks_item_init(&item);
    cr_assert_eq(ks_item_remove(&item, "a"), 0, "remove from an empty item");
    ks_item_set_s(&item, "a", "1");
    ks_item_set_s(&item, "b", "2");
    ks_item_set_s(&item, "c", "3");
    cr_assert_eq(ks_item_remove(&item, "b"), 1);
    cr_assert_eq(ks_item_remove(&item, "b"), 0);
    cr_assert_eq(item.count, 2);
    cr_assert_str_eq(item.attrs[0].name, "a");
    cr_assert_str_eq(item.attrs[1].name, "c");
    cr_assert_null(ks_item_get(&item, "b"));
    cr_assert_eq(ks_item_remove(&item, "c"), 1);
    cr_assert_eq(ks_item_remove(&item, "a"), 1);
    cr_assert_eq(item.count, 0);
    ks_item_free(&item);
}

Test(item, empty_b_value)
{
    struct ks_item item;

    ks_item_init(&item);
    cr_assert_eq(ks_item_set_b(&item, "enc", NULL, 0), 0);
    cr_assert_eq(ks_item_get(&item, "enc")->len, 0);
    cr_assert_not_null(ks_item_get(&item, "enc")->value);
    ks_item_free(&item);
}

Test(item, copy_is_deep_and_replaces)
{
    struct ks_item src, dst;
    const unsigned char b[] = {9, 8, 7};

    ks_item_init(&src);
    ks_item_init(&dst);
    ks_item_set_s(&src, "a", "alpha");
    ks_item_set_b(&src, "b", b, sizeof b);
    ks_item_set_n(&src, "n", "42");
    ks_item_set_s(&dst, "old", "gone after copy");

    cr_assert_eq(ks_item_copy(&dst, &src), 0);
    assert_items_equal(&dst, &src);
    cr_assert_null(ks_item_get(&dst, "old"));

    /* Changing the source leaves the copy alone. */
    ks_item_set_s(&src, "a", "changed");
    ks_item_remove(&src, "n");
    cr_assert_str_eq(ks_item_get_s(&dst, "a"), "alpha");
    cr_assert_str_eq((const char *)ks_item_get(&dst, "n")->value, "42");
    cr_assert_neq(dst.attrs[0].value, src.attrs[0].value);

    cr_assert_eq(ks_item_copy(&dst, &dst), 0, "self copy");
    cr_assert_eq(dst.count, 3);

    struct ks_item empty;
    ks_item_init(&empty);
    cr_assert_eq(ks_item_copy(&dst, &empty), 0);
    cr_assert_eq(dst.count, 0);
    ks_item_free(&src);
    ks_item_free(&dst);
}

/* The exact wire form: one AttributeValue per attribute, B as standard base64 with padding. */
Test(item, to_json_exact_form)
{
    struct ks_item item;
    const unsigned char enc[] = {0x00, 0x01, 0x02, 0xfb, 0xff};
    char *text;

    ks_item_init(&item);
    ks_item_set_s(&item, "type", "branch:version:5a0f1a3e-2c51-4d2c-8b8e-2f6c3b0e1f00");
    ks_item_set_s(&item, "branch-key-id", "my/key");
    ks_item_set_b(&item, "enc", enc, sizeof enc);
    ks_item_set_n(&item, "hierarchy-version", "1");
    ks_item_set_s(&item, "aws-crypto-ec:k", "v\"q\\");
    text = item_json_text(&item);
    cr_assert_str_eq(text,
                     "{\"aws-crypto-ec:k\":{\"S\":\"v\\\"q\\\\\"},"
                     "\"branch-key-id\":{\"S\":\"my/key\"},"
                     "\"enc\":{\"B\":\"AAEC+/8=\"},"
                     "\"hierarchy-version\":{\"N\":\"1\"},"
                     "\"type\":{\"S\":\"branch:version:5a0f1a3e-2c51-4d2c-8b8e-2f6c3b0e1f00\"}}");
    free(text);
    ks_item_free(&item);
}

Test(item, json_round_trip_is_byte_exact)
{
    struct ks_item item, back;
    struct ks_error err;
    unsigned char all[256];
    char *text, *again;
    size_t i;

    for (i = 0; i < sizeof all; i++)
        all[i] = (unsigned char)i;
    ks_item_init(&item);
    ks_item_set_s(&item, "branch-key-id", "caf\xc3\xa9 \xf0\x9f\x94\x91 tab\tnl\n\x01 / \"\\");
    ks_item_set_s(&item, "empty", "");
    ks_item_set_n(&item, "hierarchy-version", "1");
    ks_item_set_n(&item, "n2", "-12.5e+10");
    ks_item_set_b(&item, "enc", all, sizeof all);
    ks_item_set_b(&item, "enc1", all + 7, 1);
    ks_item_set_b(&item, "enc2", all + 7, 2);
    ks_item_set_b(&item, "none", NULL, 0);

    text = item_json_text(&item);
    cr_assert_eq(parse_text(text, &back, &err), KS_OK, "%s", err.message);
    assert_items_equal(&item, &back);
    again = item_json_text(&back);
    cr_assert_str_eq(again, text);
    free(text);
    free(again);
    ks_item_free(&item);
    ks_item_free(&back);
}

Test(item, from_json_accepts_dynamodb_item)
{
    struct ks_item item;
    struct ks_error err;

    cr_assert_eq(parse_text("{\"branch-key-id\": {\"S\": \"a\"}, \"enc\": {\"B\": \"AAE=\"},"
                            " \"hierarchy-version\": {\"N\": \"1\"}}",
                            &item, &err),
                 KS_OK, "%s", err.message);
    cr_assert_eq(item.count, 3);
    cr_assert_eq(ks_item_get(&item, "enc")->len, 2);
    cr_assert_eq(ks_item_get(&item, "hierarchy-version")->type, KS_ATTR_N);
    ks_item_free(&item);

    cr_assert_eq(parse_text("{}", &item, &err), KS_OK);
    cr_assert_eq(item.count, 0);
    ks_item_free(&item);
}

/* Each of these must be refused as KS_E_CORRUPT naming the attribute, leaving out empty. */
static void assert_rejected(const char *text, const char *expect_in_message)
{
    struct ks_item item;
    struct ks_error err;

    cr_assert_eq(parse_text(text, &item, &err), KS_E_CORRUPT, "accepted: %s", text);
    cr_assert_eq(err.code, KS_E_CORRUPT);
    cr_assert_eq(item.count, 0, "output not empty for %s", text);
    cr_assert_null(item.attrs);
    if (expect_in_message)
        cr_assert_not_null(strstr(err.message, expect_in_message), "message '%s' for %s",
                           err.message, text);
    ks_item_free(&item);
}

Test(item, from_json_rejects_bad_types)
{
    assert_rejected("{\"a\":{\"S\":\"x\"},\"bad\":{\"SS\":[\"a\"]}}", "bad");
    assert_rejected("{\"bad\":{\"NS\":[\"1\"]}}", "bad");
    assert_rejected("{\"bad\":{\"BS\":[\"AA==\"]}}", "bad");
    assert_rejected("{\"bad\":{\"M\":{\"x\":{\"S\":\"y\"}}}}", "bad");
    assert_rejected("{\"bad\":{\"L\":[]}}", "bad");
    assert_rejected("{\"bad\":{\"NULL\":true}}", "bad");
    assert_rejected("{\"bad\":{\"BOOL\":false}}", "bad");
    assert_rejected("{\"bad\":{\"s\":\"lowercase\"}}", "bad");
    assert_rejected("{\"bad\":{\"S\":1}}", "bad");
    assert_rejected("{\"bad\":{\"N\":1}}", "bad");
    assert_rejected("{\"bad\":{\"B\":null}}", "bad");
    assert_rejected("{\"bad\":{\"S\":[\"x\"]}}", "bad");
    assert_rejected("{\"bad\":\"plain string\"}", "bad");
    assert_rejected("{\"bad\":null}", "bad");
    assert_rejected("{\"bad\":[{\"S\":\"x\"}]}", "bad");
}

Test(item, from_json_rejects_not_exactly_one_type_member)
{
    assert_rejected("{\"bad\":{\"S\":\"a\",\"N\":\"1\"}}", "bad");
    assert_rejected("{\"bad\":{\"S\":\"a\",\"B\":\"AA==\"}}", "bad");
    assert_rejected("{\"bad\":{}}", "bad");
}

Test(item, from_json_rejects_bad_base64)
{
    assert_rejected("{\"enc\":{\"B\":\"!!!!\"}}", "enc");
    assert_rejected("{\"enc\":{\"B\":\"AAE\"}}", "enc");     /* missing padding */
    assert_rejected("{\"enc\":{\"B\":\"AAF=\"}}", "enc");    /* non-zero trailing bits */
    assert_rejected("{\"enc\":{\"B\":\"AA==\\n\"}}", "enc"); /* whitespace */
    assert_rejected("{\"enc\":{\"B\":\"AA-_\"}}", "enc");    /* URL alphabet */
    assert_rejected("{\"enc\":{\"B\":\"A===\"}}", "enc");
}

Test(item, from_json_rejects_bad_text_and_numbers)
{
    assert_rejected("{\"x\":{\"S\":\"a\\u0000b\"}}", "x");
    assert_rejected("{\"n\":{\"N\":\"\"}}", "n");
    assert_rejected("{\"n\":{\"N\":\"one\"}}", "n");
    assert_rejected("{\"n\":{\"N\":\"1e\"}}", "n");
    assert_rejected("{\"n\":{\"N\":\"1 \"}}", "n");
    assert_rejected("{\"\":{\"S\":\"empty name\"}}", NULL);
}

Test(item, from_json_rejects_non_object)
{
    assert_rejected("[]", NULL);
    assert_rejected("[{\"a\":{\"S\":\"x\"}}]", NULL);
    assert_rejected("\"text\"", NULL);
    assert_rejected("42", NULL);

    struct ks_item item;
    struct ks_error err;
    cr_assert_eq(ks_item_from_json(NULL, &item, &err), KS_E_CORRUPT);
    cr_assert_eq(item.count, 0);
}

/* --- mutation commitment and index (docs/reference/mutations.md sections 1 and 12) -------- */

#include "common/ec.h"

#define M_ARN "arn:aws:kms:us-west-2:111122223333:key/0b9e5ac2-4a1e-4a4b-9f6a-2a1b7a0c3d11"

#define ORIGINAL_JSON "{\"aws-crypto-ec\":{},\"kms-arn\":\"" M_ARN "\"}"
#define TERMINAL_JSON "{\"aws-crypto-ec\":{\"aws-crypto-ec:a\":\"b\"},\"kms-arn\":\"" M_ARN "\"}"
#define INPUT_JSON "{\"aws-crypto-ec\":{\"a\":\"b\"},\"kms-arn\":null}"

static void set_bytes(struct ks_bytes *b, const char *text)
{
    cr_assert_eq(ks_bytes_set(b, text, strlen(text)), 0);
}

static void make_commitment(struct ks_mutation_commitment *c)
{
    ks_mutation_commitment_init(c);
    c->branch_key_id = strdup("bk-1");
    c->create_time = strdup("2024-01-02T03:04:05.678000Z");
    c->uuid = strdup("9c1b2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d");
    set_bytes(&c->original, ORIGINAL_JSON);
    set_bytes(&c->terminal, TERMINAL_JSON);
    set_bytes(&c->input, INPUT_JSON);
    set_bytes(&c->enc, "trustStorage");
}

static void make_index(struct ks_mutation_index *x)
{
    ks_mutation_index_init(x);
    x->branch_key_id = strdup("bk-1");
    x->create_time = strdup("2024-01-02T03:04:06.000000Z");
    x->uuid = strdup("9c1b2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d");
    set_bytes(&x->page_index, KS_PAGE_INDEX_NOT_STARTED);
    set_bytes(&x->enc, "trustStorage");
}

static void assert_bytes_eq(const struct ks_bytes *a, const struct ks_bytes *b)
{
    cr_assert_eq(a->len, b->len);
    cr_assert_eq(memcmp(a->data, b->data, a->len), 0);
}

static void assert_attr(const struct ks_item *item, const char *name, enum ks_attr_type type,
                        const char *value)
{
    const struct ks_attr *a = ks_item_get(item, name);

    cr_assert_not_null(a, "%s missing", name);
    cr_assert_eq(a->type, type, "type of %s", name);
    cr_assert_eq(a->len, strlen(value), "length of %s", name);
    cr_assert_eq(memcmp(a->value, value, a->len), 0, "value of %s", name);
}

Test(item_mutation, commitment_layout_and_round_trip)
{
    struct ks_mutation_commitment c, back;
    struct ks_item item;
    struct ks_error err;

    make_commitment(&c);
    cr_assert_eq(ks_mutation_commitment_to_item(&c, &item, &err), KS_OK, "%s", err.message);
    /* Exactly the 9 attributes of section 1, with their DynamoDB types. */
    cr_assert_eq(item.count, 9);
    assert_attr(&item, "branch-key-id", KS_ATTR_S, "bk-1");
    assert_attr(&item, "type", KS_ATTR_S, "branch:MUTATION_COMMITMENT");
    assert_attr(&item, "create-time", KS_ATTR_S, "2024-01-02T03:04:05.678000Z");
    assert_attr(&item, "hierarchy-version", KS_ATTR_N, "1");
    assert_attr(&item, "uuid", KS_ATTR_S, c.uuid);
    assert_attr(&item, "original", KS_ATTR_B, ORIGINAL_JSON);
    assert_attr(&item, "terminal", KS_ATTR_B, TERMINAL_JSON);
    assert_attr(&item, "input", KS_ATTR_B, INPUT_JSON);
    assert_attr(&item, "enc", KS_ATTR_B, "trustStorage");

    cr_assert_eq(ks_mutation_commitment_from_item(&item, &back, &err), KS_OK, "%s", err.message);
    cr_assert_str_eq(back.branch_key_id, c.branch_key_id);
    cr_assert_str_eq(back.create_time, c.create_time);
    cr_assert_str_eq(back.uuid, c.uuid);
    assert_bytes_eq(&back.original, &c.original);
    assert_bytes_eq(&back.terminal, &c.terminal);
    assert_bytes_eq(&back.input, &c.input);
    assert_bytes_eq(&back.enc, &c.enc);
    ks_mutation_commitment_free(&back);
    ks_item_free(&item);
    ks_mutation_commitment_free(&c);
}

Test(item_mutation, index_layout_and_round_trip)
{
    struct ks_mutation_index x, back;
    struct ks_item item;
    struct ks_error err;

    make_index(&x);
    cr_assert_eq(ks_mutation_index_to_item(&x, &item, &err), KS_OK, "%s", err.message);
    cr_assert_eq(item.count, 7);
    assert_attr(&item, "type", KS_ATTR_S, "branch:MUTATION_INDEX");
    assert_attr(&item, "hierarchy-version", KS_ATTR_N, "1");
    assert_attr(&item, "pageIndex", KS_ATTR_B, "Not Started");
    assert_attr(&item, "uuid", KS_ATTR_S, x.uuid);
    cr_assert_eq(ks_mutation_index_from_item(&item, &back, &err), KS_OK, "%s", err.message);
    cr_assert_str_eq(back.uuid, x.uuid);
    cr_assert_str_eq(back.create_time, x.create_time);
    assert_bytes_eq(&back.page_index, &x.page_index);
    assert_bytes_eq(&back.enc, &x.enc);
    ks_mutation_index_free(&back);
    ks_item_free(&item);
    ks_mutation_index_free(&x);
}

Test(item_mutation, encode_refuses_empty_fields)
{
    struct ks_mutation_commitment c;
    struct ks_mutation_index x;
    struct ks_item item;
    struct ks_error err;

    make_commitment(&c);
    ks_bytes_free(&c.enc);
    cr_assert_eq(ks_mutation_commitment_to_item(&c, &item, &err), KS_E_INVALID);
    cr_assert(strstr(err.message, "enc"), "%s", err.message);
    cr_assert_eq(item.count, 0);
    ks_mutation_commitment_free(&c);

    make_index(&x);
    free(x.uuid);
    x.uuid = strdup("");
    cr_assert_eq(ks_mutation_index_to_item(&x, &item, &err), KS_E_INVALID);
    cr_assert(strstr(err.message, "uuid"), "%s", err.message);
    ks_mutation_index_free(&x);
}

/* Encodes a commitment, lets damage() alter the item, and expects KS_E_CORRUPT naming `what`. */
static void assert_commitment_refused(void (*damage)(struct ks_item *), const char *what)
{
    struct ks_mutation_commitment c, back;
    struct ks_item item;
    struct ks_error err;

    make_commitment(&c);
    cr_assert_eq(ks_mutation_commitment_to_item(&c, &item, &err), KS_OK);
    damage(&item);
    cr_assert_eq(ks_mutation_commitment_from_item(&item, &back, &err), KS_E_CORRUPT, "%s", what);
    cr_assert(strstr(err.message, what), "%s lacks %s", err.message, what);
    cr_assert_null(back.uuid);
    ks_item_free(&item);
    ks_mutation_commitment_free(&c);
}

static void extra_attr(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "aws-crypto-ec:x", "y"), 0);
}
static void no_enc(struct ks_item *i)
{
    ks_item_remove(i, "enc");
}
static void hv_three(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_n(i, "hierarchy-version", "3"), 0);
}
static void hv_string(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "hierarchy-version", "1"), 0);
}
static void input_as_s(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "input", "{}"), 0);
}
static void empty_uuid(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "uuid", ""), 0);
}
static void index_type(struct ks_item *i)
{
    cr_assert_eq(ks_item_set_s(i, "type", "branch:MUTATION_INDEX"), 0);
}

Test(item_mutation, decode_refuses_damage)
{
    assert_commitment_refused(extra_attr, "attributes");
    assert_commitment_refused(no_enc, "attributes");
    assert_commitment_refused(hv_three, "hierarchy-version");
    assert_commitment_refused(hv_string, "hierarchy-version");
    assert_commitment_refused(input_as_s, "input");
    assert_commitment_refused(empty_uuid, "uuid");
    assert_commitment_refused(index_type, "type");
}

/* The bytes of props JSON for (arn, ec) as a C string. */
static char *props_text(const char *arn, const struct ks_ec *ec)
{
    struct ks_bytes b = {NULL, 0};
    struct ks_error err;
    char *text;

    cr_assert_eq(ks_mutation_props_to_json(arn, ec, &b, &err), KS_OK, "%s", err.message);
    text = ks_bytes_to_string(b.data, b.len); /* b is not NUL-terminated */
    cr_assert_not_null(text);
    ks_bytes_free(&b);
    return text;
}

Test(item_mutation, props_json_exact_bytes_of_the_reference_example)
{
    struct ks_ec ec;
    char *text;

    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, "aws-crypto-ec:Robbie", "x"), 0);
    text = props_text(M_ARN, &ec);
    cr_assert_str_eq(
        text, "{\"aws-crypto-ec\":{\"aws-crypto-ec:Robbie\":\"x\"},\"kms-arn\":\"" M_ARN "\"}");
    free(text);
    ks_ec_free(&ec);

    ks_ec_init(&ec);
    text = props_text(M_ARN, &ec);
    cr_assert_str_eq(text, "{\"aws-crypto-ec\":{},\"kms-arn\":\"" M_ARN "\"}");
    free(text);
}

Test(item_mutation, props_json_keys_in_utf16_order)
{
    struct ks_ec ec;
    char *text;

    /* U+1F600 (surrogates D83D DE00) sorts BEFORE U+FF61 in UTF-16 order, after it in UTF-8
     * byte order (F0.. > EF..); "b" before "ba" (proper prefix first); "Z" before "a". */
    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, "aws-crypto-ec:\xef\xbd\xa1", "1"), 0);
    cr_assert_eq(ks_ec_set(&ec, "aws-crypto-ec:\xf0\x9f\x98\x80", "2"), 0);
    cr_assert_eq(ks_ec_set(&ec, "aws-crypto-ec:ba", "3"), 0);
    cr_assert_eq(ks_ec_set(&ec, "aws-crypto-ec:b", "4"), 0);
    cr_assert_eq(ks_ec_set(&ec, "aws-crypto-ec:Z", "5"), 0);
    text = props_text("a", &ec);
    cr_assert_str_eq(text,
                     "{\"aws-crypto-ec\":{\"aws-crypto-ec:Z\":\"5\",\"aws-crypto-ec:b\":\"4\","
                     "\"aws-crypto-ec:ba\":\"3\",\"aws-crypto-ec:\xf0\x9f\x98\x80\":\"2\","
                     "\"aws-crypto-ec:\xef\xbd\xa1\":\"1\"},\"kms-arn\":\"a\"}");
    free(text);
    ks_ec_free(&ec);
}

Test(item_mutation, props_json_escapes)
{
    struct ks_ec ec;
    char *text;

    /* The MPL's escapes, uppercase \u00XX, raw non-ASCII, and 0x1F escaped (not left raw). */
    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, "k", "\"\\\b\f\n\r\t\x01\x1f\x7f/\xc3\xa9"), 0);
    text = props_text("a", &ec);
    cr_assert_str_eq(text, "{\"aws-crypto-ec\":{\"k\":\"\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001F\x7f/"
                           "\xc3\xa9\"},\"kms-arn\":\"a\"}");
    free(text);
    ks_ec_free(&ec);
}

Test(item_mutation, props_json_round_trip_and_refusals)
{
    static const char *const bad[] = {
        "{\"kms-arn\":\"a\",\"aws-crypto-ec\":{}}",                        /* order */
        "{\"aws-crypto-ec\":{}}",                                          /* count */
        "{\"aws-crypto-ec\":{},\"kms-arn\":\"a\",\"x\":1}",                /* count */
        "{\"aws-crypto-ec\":{\"k\":1},\"kms-arn\":\"a\"}",                 /* value type */
        "{\"aws-crypto-ec\":{\"k\":\"a\",\"k\":\"b\"},\"kms-arn\":\"a\"}", /* duplicate */
        "{\"aws-crypto-ec\":{\"enc\":\"a\"},\"kms-arn\":\"a\"}",           /* reserved */
        "{\"aws-crypto-ec\":null,\"kms-arn\":\"a\"}",                      /* null */
        "{\"aws-crypto-ec\":{},\"kms-arn\":null}",                         /* null */
        "[]",
        "{\"aws-crypto-ec\":{},\"kms-arn\":\"a\"} x",
    };
    struct ks_ec ec, back;
    struct ks_bytes b = {NULL, 0};
    struct ks_error err;
    char *arn;
    size_t i;

    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, "aws-crypto-ec:d\x1f\xf0\x9f\x98\x80", "v\n"), 0);
    cr_assert_eq(ks_ec_set(&ec, "unmodeled", "u"), 0);
    cr_assert_eq(ks_mutation_props_to_json(M_ARN, &ec, &b, &err), KS_OK);
    cr_assert_eq(ks_mutation_props_from_json(b.data, b.len, &arn, &back, &err), KS_OK, "%s",
                 err.message);
    cr_assert_str_eq(arn, M_ARN);
    cr_assert(ks_ec_equal(&ec, &back));
    free(arn);
    ks_ec_free(&back);
    ks_bytes_free(&b);
    ks_ec_free(&ec);

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(ks_mutation_props_from_json((const unsigned char *)bad[i], strlen(bad[i]),
                                                 &arn, &back, &err),
                     KS_E_CORRUPT, "accepted %s", bad[i]);
        cr_assert_null(arn);
        cr_assert_eq(back.count, 0);
    }
}

Test(item_mutation, input_json_with_nulls)
{
    struct ks_ec ec, back;
    struct ks_bytes b = {NULL, 0};
    struct ks_error err;
    char *arn;
    int has_ec;

    cr_assert_eq(ks_mutation_input_to_json(NULL, NULL, &b, &err), KS_OK);
    cr_assert_eq(b.len, strlen("{\"aws-crypto-ec\":null,\"kms-arn\":null}"));
    cr_assert_eq(memcmp(b.data, "{\"aws-crypto-ec\":null,\"kms-arn\":null}", b.len), 0);
    cr_assert_eq(ks_mutation_input_from_json(b.data, b.len, &arn, &has_ec, &back, &err), KS_OK);
    cr_assert_null(arn);
    cr_assert_eq(has_ec, 0);
    ks_bytes_free(&b);

    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, "b", "2"), 0);
    cr_assert_eq(ks_ec_set(&ec, "a", "1"), 0);
    cr_assert_eq(ks_mutation_input_to_json("arn", &ec, &b, &err), KS_OK);
    cr_assert_eq(
        memcmp(b.data, "{\"aws-crypto-ec\":{\"a\":\"1\",\"b\":\"2\"},\"kms-arn\":\"arn\"}", b.len),
        0);
    cr_assert_eq(ks_mutation_input_from_json(b.data, b.len, &arn, &has_ec, &back, &err), KS_OK);
    cr_assert_str_eq(arn, "arn");
    cr_assert_eq(has_ec, 1);
    cr_assert(ks_ec_equal(&ec, &back));
    free(arn);
    ks_ec_free(&back);
    ks_ec_free(&ec);
    ks_bytes_free(&b);
}

/* What the MPL writes for a value with 0x1F (raw, section 1) still reads back. */
Test(item_mutation, props_json_reads_the_mpl_raw_unit_separator)
{
    static const char mpl[] = "{\"aws-crypto-ec\":{\"k\\u0001\":\"a\x1f"
                              "b\"},\"kms-arn\":\"arn\"}";
    struct ks_ec ec;
    struct ks_error err;
    char *arn;

    cr_assert_eq(
        ks_mutation_props_from_json((const unsigned char *)mpl, strlen(mpl), &arn, &ec, &err),
        KS_OK, "%s", err.message);
    cr_assert_str_eq(ks_ec_get(&ec, "k\x01"), "a\x1f"
                                              "b");
    free(arn);
    ks_ec_free(&ec);
}

/* --- HV-2 forms (docs/reference/mutations.md section 12) ----------------------------------- */

Test(item_mutation, hv2_commitment_and_index_write_and_read_n_2)
{
    struct ks_mutation_commitment c, back;
    struct ks_mutation_index x, xback;
    struct ks_item item;
    struct ks_error err;

    make_commitment(&c);
    c.hierarchy_version = 2;
    cr_assert_eq(ks_mutation_commitment_to_item(&c, &item, &err), KS_OK, "%s", err.message);
    assert_attr(&item, "hierarchy-version", KS_ATTR_N, "2");
    cr_assert_eq(ks_mutation_commitment_from_item(&item, &back, &err), KS_OK, "%s", err.message);
    cr_assert_eq(back.hierarchy_version, 2);
    ks_mutation_commitment_free(&back);
    ks_item_free(&item);
    /* The HV-1 form reads back as 1. */
    c.hierarchy_version = 0;
    cr_assert_eq(ks_mutation_commitment_to_item(&c, &item, &err), KS_OK);
    assert_attr(&item, "hierarchy-version", KS_ATTR_N, "1");
    cr_assert_eq(ks_mutation_commitment_from_item(&item, &back, &err), KS_OK);
    cr_assert_eq(back.hierarchy_version, 1);
    ks_mutation_commitment_free(&back);
    ks_item_free(&item);
    ks_mutation_commitment_free(&c);

    make_index(&x);
    x.hierarchy_version = 2;
    cr_assert_eq(ks_mutation_index_to_item(&x, &item, &err), KS_OK, "%s", err.message);
    assert_attr(&item, "hierarchy-version", KS_ATTR_N, "2");
    cr_assert_eq(ks_mutation_index_from_item(&item, &xback, &err), KS_OK, "%s", err.message);
    cr_assert_eq(xback.hierarchy_version, 2);
    ks_mutation_index_free(&xback);
    ks_item_free(&item);
    ks_mutation_index_free(&x);
}

static char *bytes_text(const struct ks_bytes *b)
{
    char *t = malloc(b->len + 1);

    cr_assert_not_null(t);
    memcpy(t, b->data, b->len);
    t[b->len] = '\0';
    return t;
}

Test(item_mutation, hv2_props_json_three_members_exact_and_round_trip)
{
    struct ks_bytes b = {NULL, 0};
    struct ks_ec ec, back;
    struct ks_error err;
    char *arn = NULL, *text;
    int hv = -7;

    ks_ec_init(&ec);
    cr_assert_eq(ks_ec_set(&ec, "aws-crypto-ec:a", "b"), 0);
    cr_assert_eq(ks_mutation_props_to_json_hv("arn:x", &ec, 2, &b, &err), KS_OK, "%s", err.message);
    text = bytes_text(&b);
    cr_assert_str_eq(text, "{\"aws-crypto-ec\":{\"aws-crypto-ec:a\":\"b\"},\"kms-arn\":\"arn:x\","
                           "\"hierarchy-version\":\"2\"}");
    free(text);
    cr_assert_eq(ks_mutation_props_from_json_hv(b.data, b.len, &arn, &back, &hv, &err), KS_OK, "%s",
                 err.message);
    cr_assert_eq(hv, 2);
    cr_assert_str_eq(arn, "arn:x");
    cr_assert_str_eq(ks_ec_get(&back, "aws-crypto-ec:a"), "b");
    free(arn);
    ks_ec_free(&back);
    /* The two-member form reads with hv 0, and the old reader accepts the three-member one. */
    cr_assert_eq(ks_mutation_props_to_json_hv("arn:x", &ec, 0, &b, &err), KS_OK);
    cr_assert_eq(ks_mutation_props_from_json_hv(b.data, b.len, &arn, &back, &hv, &err), KS_OK);
    cr_assert_eq(hv, 0);
    free(arn);
    ks_ec_free(&back);
    cr_assert_eq(ks_mutation_props_to_json_hv("arn:x", &ec, 1, &b, &err), KS_OK);
    cr_assert_eq(ks_mutation_props_from_json(b.data, b.len, &arn, &back, &err), KS_OK, "%s",
                 err.message);
    free(arn);
    ks_ec_free(&back);
    ks_bytes_free(&b);
    ks_ec_free(&ec);
}

static void assert_hv_json_refused(const char *json, int props)
{
    struct ks_ec ec;
    struct ks_error err;
    char *arn = (char *)"unset";
    int hv, has_ec;
    ks_status st = props ? ks_mutation_props_from_json_hv((const unsigned char *)json, strlen(json),
                                                          &arn, &ec, &hv, &err)
                         : ks_mutation_input_from_json_hv((const unsigned char *)json, strlen(json),
                                                          &arn, &has_ec, &ec, &hv, &err);

    cr_assert_eq(st, KS_E_CORRUPT, "%s accepted", json);
    cr_assert_null(arn);
}

Test(item_mutation, hv2_json_refusals_and_input_null)
{
    struct ks_bytes b = {NULL, 0};
    struct ks_ec ec;
    struct ks_error err;
    char *arn;
    int hv, has_ec;

    assert_hv_json_refused("{\"aws-crypto-ec\":{},\"kms-arn\":\"a\",\"hierarchy-version\":\"3\"}",
                           1);
    assert_hv_json_refused("{\"aws-crypto-ec\":{},\"kms-arn\":\"a\",\"hierarchy-version\":2}", 1);
    assert_hv_json_refused("{\"aws-crypto-ec\":{},\"kms-arn\":\"a\",\"hierarchy-version\":null}",
                           1);
    assert_hv_json_refused("{\"aws-crypto-ec\":{},\"kms-arn\":\"a\",\"other\":\"2\"}", 1);
    assert_hv_json_refused("{\"aws-crypto-ec\":null,\"kms-arn\":null,\"x\":null}", 0);
    assert_hv_json_refused(
        "{\"aws-crypto-ec\":{},\"kms-arn\":\"a\",\"hierarchy-version\":\"2\",\"y\":\"1\"}", 1);

    /* input: null hierarchy version (not asked for) round-trips as -1. */
    cr_assert_eq(ks_mutation_input_to_json_hv(NULL, NULL, -1, &b, &err), KS_OK);
    cr_assert_eq(ks_mutation_input_from_json_hv(b.data, b.len, &arn, &has_ec, &ec, &hv, &err),
                 KS_OK, "%s", err.message);
    cr_assert_eq(hv, -1);
    cr_assert_null(arn);
    cr_assert_eq(has_ec, 0);
    ks_ec_free(&ec);
    cr_assert_eq(ks_mutation_input_to_json_hv("arn:t", NULL, 2, &b, &err), KS_OK);
    cr_assert_eq(ks_mutation_input_from_json_hv(b.data, b.len, &arn, &has_ec, &ec, &hv, &err),
                 KS_OK);
    cr_assert_eq(hv, 2);
    cr_assert_str_eq(arn, "arn:t");
    free(arn);
    ks_ec_free(&ec);
    ks_bytes_free(&b);
}
