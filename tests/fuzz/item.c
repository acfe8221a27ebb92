/*
 * item.c - fuzz target: the DynamoDB item decoder (storage/item.h), which reads every item that
 * comes back from DynamoDB or out of SQLite: ks_item_from_json over an AttributeValue map
 * ({"enc":{"B":"<base64>"},"type":{"S":"..."}}), parsed by json-c as storage/dynamodb.c does.
 * A decoded item must survive ks_item_to_json and back unchanged; the mutation commitment and
 * index decoders run over it too, and what they accept must encode back to the same item.
 */
#include <json-c/json.h>

#include "storage/item.h"
#include "tests/fuzz/fuzz.h"

static int items_equal(const struct ks_item *a, const struct ks_item *b)
{
    if (a->count != b->count)
        return 0;
    for (size_t i = 0; i < a->count; i++) {
        const struct ks_attr *x = &a->attrs[i], *y = &b->attrs[i];
        if (strcmp(x->name, y->name) != 0 || x->type != y->type || x->len != y->len ||
            (x->len && memcmp(x->value, y->value, x->len) != 0))
            return 0;
    }
    return 1;
}

static void round_trip(const struct ks_item *item)
{
    struct json_object *json = NULL;
    struct ks_item again;
    struct ks_error err;

    FUZZ_CHECK(ks_item_to_json(item, &json) == 0);
    FUZZ_CHECK(ks_item_from_json(json, &again, &err) == KS_OK);
    FUZZ_CHECK(items_equal(item, &again));
    json_object_put(json);
    ks_item_free(&again);
}

static void mutation_items(const struct ks_item *item)
{
    struct ks_mutation_commitment c;
    struct ks_mutation_index x;
    struct ks_item back;
    struct ks_error err;

    if (ks_mutation_commitment_from_item(item, &c, &err) == KS_OK) {
        FUZZ_CHECK(ks_mutation_commitment_to_item(&c, &back, &err) == KS_OK);
        FUZZ_CHECK(items_equal(item, &back));
        ks_item_free(&back);
    }
    ks_mutation_commitment_free(&c);
    if (ks_mutation_index_from_item(item, &x, &err) == KS_OK) {
        FUZZ_CHECK(ks_mutation_index_to_item(&x, &back, &err) == KS_OK);
        FUZZ_CHECK(items_equal(item, &back));
        ks_item_free(&back);
    }
    ks_mutation_index_free(&x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_tokener *tok = json_tokener_new_ex(32); /* storage/dynamodb.c's depth */
    struct json_object *map = NULL;
    struct ks_item item;
    struct ks_error err;

    if (!tok || size > INT32_MAX)
        abort();
    map = json_tokener_parse_ex(tok, (const char *)data, (int)size);
    json_tokener_free(tok);
    if (!map)
        return 0;
    if (ks_item_from_json(map, &item, &err) == KS_OK) {
        round_trip(&item);
        mutation_items(&item);
    } else {
        FUZZ_CHECK(item.count == 0);
    }
    ks_item_free(&item);
    json_object_put(map);
    return 0;
}
