/*
 * item.c - one stored item as a sorted array of typed attributes, and its DynamoDB
 * AttributeValue JSON form (docs/reference/aws-apis.md section 3 "AttributeValue JSON encoding";
 * item layout in docs/reference/branch-key-store.md section 2).
 *
 * Every value buffer is allocated with one extra byte and NUL-terminated, also for B, so that S
 * and N values can be handed out as C strings and an empty B value still has a non-NULL pointer.
 */
#include "storage/item.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/base64.h"
#include "common/ec.h"
#include "common/json_check.h"
#include "common/utf8.h"
#include "common/util.h"

void ks_item_init(struct ks_item *item)
{
    item->attrs = NULL;
    item->count = 0;
    item->cap = 0;
}

static void attr_free(struct ks_attr *a)
{
    free(a->name);
    free(a->value);
    a->name = NULL;
    a->value = NULL;
    a->len = 0;
}

void ks_item_free(struct ks_item *item)
{
    size_t i;

    if (!item)
        return;
    for (i = 0; i < item->count; i++)
        attr_free(&item->attrs[i]);
    free(item->attrs);
    ks_item_init(item);
}

/*
 * Binary search by name (byte order, as strcmp). Returns 1 and the index when found, else 0 and
 * the index where name would be inserted to keep the array sorted.
 */
static int find(const struct ks_item *item, const char *name, size_t *pos)
{
    size_t lo = 0, hi = item->count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(item->attrs[mid].name, name);
        if (c == 0) {
            *pos = mid;
            return 1;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return 0;
}

/* A heap copy of len bytes plus a NUL; NULL on OOM. */
static unsigned char *dup_value(const void *data, size_t len)
{
    unsigned char *p;

    if (len == SIZE_MAX)
        return NULL;
    p = malloc(len + 1);
    if (!p)
        return NULL;
    if (len)
        memcpy(p, data, len);
    p[len] = '\0';
    return p;
}

/*
 * Inserts or replaces name with a copy of (type, data, len). Everything that can fail is done
 * before the item is touched, so on OOM the item is unchanged (docs/style.md "Errors").
 */
static int set_attr(struct ks_item *item, const char *name, enum ks_attr_type type,
                    const void *data, size_t len)
{
    unsigned char *value;
    size_t pos;

    value = dup_value(data, len);
    if (!value)
        return -1;
    if (find(item, name, &pos)) {
        struct ks_attr *a = &item->attrs[pos];
        free(a->value);
        a->type = type;
        a->value = value;
        a->len = len;
        return 0;
    }

    char *name_copy = strdup(name);
    if (!name_copy) {
        free(value);
        return -1;
    }
    if (item->count == item->cap) {
        size_t cap = item->cap ? item->cap * 2 : 8;
        struct ks_attr *grown = NULL;
        if (cap <= SIZE_MAX / sizeof *grown)
            grown = realloc(item->attrs, cap * sizeof *grown);
        if (!grown) {
            free(name_copy);
            free(value);
            return -1;
        }
        item->attrs = grown;
        item->cap = cap;
    }
    memmove(&item->attrs[pos + 1], &item->attrs[pos], (item->count - pos) * sizeof *item->attrs);
    item->attrs[pos].name = name_copy;
    item->attrs[pos].type = type;
    item->attrs[pos].value = value;
    item->attrs[pos].len = len;
    item->count++;
    return 0;
}

int ks_item_set_s(struct ks_item *item, const char *name, const char *value)
{
    return set_attr(item, name, KS_ATTR_S, value, strlen(value));
}

int ks_item_set_n(struct ks_item *item, const char *name, const char *value)
{
    return set_attr(item, name, KS_ATTR_N, value, strlen(value));
}

int ks_item_set_b(struct ks_item *item, const char *name, const void *data, size_t len)
{
    return set_attr(item, name, KS_ATTR_B, data, len);
}

int ks_item_remove(struct ks_item *item, const char *name)
{
    size_t pos;

    if (!find(item, name, &pos))
        return 0;
    attr_free(&item->attrs[pos]);
    memmove(&item->attrs[pos], &item->attrs[pos + 1],
            (item->count - pos - 1) * sizeof *item->attrs);
    item->count--;
    return 1;
}

const struct ks_attr *ks_item_get(const struct ks_item *item, const char *name)
{
    size_t pos;

    return find(item, name, &pos) ? &item->attrs[pos] : NULL;
}

const char *ks_item_get_s(const struct ks_item *item, const char *name)
{
    const struct ks_attr *a = ks_item_get(item, name);

    return a && a->type == KS_ATTR_S ? (const char *)a->value : NULL;
}

int ks_item_copy(struct ks_item *dst, const struct ks_item *src)
{
    struct ks_item tmp;
    size_t i;

    if (dst == src)
        return 0;
    /* Build the copy aside so that dst is only replaced once everything is allocated. */
    ks_item_init(&tmp);
    if (src->count) {
        tmp.attrs = calloc(src->count, sizeof *tmp.attrs);
        if (!tmp.attrs)
            return -1;
        tmp.cap = src->count;
    }
    for (i = 0; i < src->count; i++) {
        const struct ks_attr *a = &src->attrs[i];
        struct ks_attr *b = &tmp.attrs[i];
        b->name = strdup(a->name);
        b->value = dup_value(a->value, a->len);
        b->type = a->type;
        b->len = a->len;
        tmp.count = i + 1;
        if (!b->name || !b->value) {
            ks_item_free(&tmp);
            return -1;
        }
    }
    ks_item_free(dst);
    *dst = tmp;
    return 0;
}

/* --- DynamoDB AttributeValue JSON ------------------------------------------------------- */

/* One AttributeValue ({"S":..} / {"N":..} / {"B":<base64>}); NULL on OOM. */
static struct json_object *attr_to_json(const struct ks_attr *a)
{
    struct json_object *av, *v;
    char *b64 = NULL;
    const char *text = (const char *)a->value;
    size_t len = a->len;
    char member[2] = {(char)a->type, '\0'};

    if (a->type == KS_ATTR_B) {
        b64 = ks_base64_encode(a->value, a->len);
        if (!b64)
            return NULL;
        text = b64;
        len = strlen(b64);
    }
    v = len <= INT_MAX ? json_object_new_string_len(text, (int)len) : NULL;
    free(b64);
    if (!v)
        return NULL;
    av = json_object_new_object();
    if (!av || json_object_object_add(av, member, v) != 0) {
        json_object_put(v);
        json_object_put(av);
        return NULL;
    }
    return av;
}

int ks_item_to_json(const struct ks_item *item, struct json_object **out)
{
    struct json_object *map = json_object_new_object();
    size_t i;

    *out = NULL;
    if (!map)
        return -1;
    /* Attributes are added in name order, and json-c keeps insertion order, so the serialized
     * form of an item is deterministic. */
    for (i = 0; i < item->count; i++) {
        struct json_object *av = attr_to_json(&item->attrs[i]);
        if (!av || json_object_object_add(map, item->attrs[i].name, av) != 0) {
            json_object_put(av);
            json_object_put(map);
            return -1;
        }
    }
    *out = map;
    return 0;
}

/*
 * A DynamoDB number as it travels on the wire: optional '-', digits, optional fraction,
 * optional exponent. DynamoDB itself only ever sends normalized numbers; anything else stored
 * is damage.
 */
static int number_valid(const char *s, size_t len)
{
    size_t i = 0, digits = 0;

    if (i < len && s[i] == '-')
        i++;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++, digits++;
    }
    if (digits == 0)
        return 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp_digits = 0;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++, exp_digits++;
        if (exp_digits == 0)
            return 0;
    }
    return i == len;
}

/* Parses one AttributeValue into out under name. */
static ks_status attr_from_json(const char *name, struct json_object *av, struct ks_item *out,
                                struct ks_error *err)
{
    struct json_object_iterator it, end;
    const char *member, *text;
    struct json_object *v;
    size_t len;
    int rc;

    if (!json_object_is_type(av, json_type_object) || json_object_object_length(av) != 1)
        return ks_error_set(err, KS_E_CORRUPT,
                            "attribute %s: an AttributeValue has exactly one type member", name);
    it = json_object_iter_begin(av);
    end = json_object_iter_end(av);
    if (json_object_iter_equal(&it, &end))
        return ks_error_set(err, KS_E_CORRUPT, "attribute %s: empty AttributeValue", name);
    member = json_object_iter_peek_name(&it);
    v = json_object_iter_peek_value(&it);

    /* Only the three scalar types the MPL writes (docs/reference/branch-key-store.md section 2). */
    if (strcmp(member, "S") != 0 && strcmp(member, "N") != 0 && strcmp(member, "B") != 0)
        return ks_error_set(err, KS_E_CORRUPT, "attribute %s: unsupported type %.8s", name, member);
    if (!json_object_is_type(v, json_type_string))
        return ks_error_set(err, KS_E_CORRUPT, "attribute %s: %s value is not a string", name,
                            member);
    text = json_object_get_string(v);
    len = (size_t)json_object_get_string_len(v);

    if (member[0] == 'B') {
        unsigned char *data;
        size_t data_len;
        if (ks_base64_decode(text, len, &data, &data_len) != 0)
            return ks_error_set(err, KS_E_CORRUPT, "attribute %s: B value is not base64", name);
        rc = ks_item_set_b(out, name, data, data_len);
        free(data);
    } else {
        /* S and N are text; the item keeps them NUL-terminated, so an embedded NUL (possible
         * in JSON as \u0000) could not be represented faithfully. */
        if (memchr(text, '\0', len) || !ks_utf8_valid(text, len))
            return ks_error_set(err, KS_E_CORRUPT, "attribute %s: %s value is not valid text", name,
                                member);
        if (member[0] == 'N' && !number_valid(text, len))
            return ks_error_set(err, KS_E_CORRUPT, "attribute %s: N value is not a number", name);
        rc = member[0] == 'S' ? ks_item_set_s(out, name, text) : ks_item_set_n(out, name, text);
    }
    if (rc != 0)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    return KS_OK;
}

ks_status ks_item_from_json(struct json_object *map, struct ks_item *out, struct ks_error *err)
{
    ks_item_init(out);
    if (!json_object_is_type(map, json_type_object))
        return ks_error_set(err, KS_E_CORRUPT, "item is not a JSON object");

    json_object_object_foreach(map, name, av)
    {
        ks_status st;
        if (name[0] == '\0') {
            ks_item_free(out);
            return ks_error_set(err, KS_E_CORRUPT, "item has an empty attribute name");
        }
        if (!ks_utf8_valid(name, strlen(name))) {
            ks_item_free(out);
            return ks_error_set(err, KS_E_CORRUPT,
                                "item has an attribute name that is not "
                                "valid UTF-8");
        }
        st = attr_from_json(name, av, out, err);
        if (st != KS_OK) {
            ks_item_free(out);
            return st;
        }
    }
    return KS_OK;
}

/* --- Mutation commitment and index items (docs/reference/mutations.md section 1) ---------- */

void ks_mutation_commitment_init(struct ks_mutation_commitment *c)
{
    memset(c, 0, sizeof *c);
}

void ks_mutation_commitment_free(struct ks_mutation_commitment *c)
{
    if (!c)
        return;
    free(c->branch_key_id);
    free(c->create_time);
    free(c->uuid);
    ks_bytes_free(&c->original);
    ks_bytes_free(&c->terminal);
    ks_bytes_free(&c->input);
    ks_bytes_free(&c->enc);
    ks_mutation_commitment_init(c);
}

void ks_mutation_index_init(struct ks_mutation_index *x)
{
    memset(x, 0, sizeof *x);
}

void ks_mutation_index_free(struct ks_mutation_index *x)
{
    if (!x)
        return;
    free(x->branch_key_id);
    free(x->create_time);
    free(x->uuid);
    ks_bytes_free(&x->page_index);
    ks_bytes_free(&x->enc);
    ks_mutation_index_init(x);
}

/* *dst = strdup(src) (NULL stays NULL); 0 or -1. */
static int dup_str(char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return src && !*dst ? -1 : 0;
}

static int dup_bytes(struct ks_bytes *dst, const struct ks_bytes *src)
{
    return ks_bytes_set(dst, src->data, src->len);
}

int ks_mutation_commitment_copy(struct ks_mutation_commitment *dst,
                                const struct ks_mutation_commitment *src)
{
    struct ks_mutation_commitment tmp;

    ks_mutation_commitment_init(&tmp);
    if (dup_str(&tmp.branch_key_id, src->branch_key_id) != 0 ||
        dup_str(&tmp.create_time, src->create_time) != 0 || dup_str(&tmp.uuid, src->uuid) != 0 ||
        dup_bytes(&tmp.original, &src->original) != 0 ||
        dup_bytes(&tmp.terminal, &src->terminal) != 0 || dup_bytes(&tmp.input, &src->input) != 0 ||
        dup_bytes(&tmp.enc, &src->enc) != 0) {
        ks_mutation_commitment_free(&tmp);
        return -1;
    }
    tmp.hierarchy_version = src->hierarchy_version;
    ks_mutation_commitment_free(dst);
    *dst = tmp;
    return 0;
}

int ks_mutation_index_copy(struct ks_mutation_index *dst, const struct ks_mutation_index *src)
{
    struct ks_mutation_index tmp;

    ks_mutation_index_init(&tmp);
    if (dup_str(&tmp.branch_key_id, src->branch_key_id) != 0 ||
        dup_str(&tmp.create_time, src->create_time) != 0 || dup_str(&tmp.uuid, src->uuid) != 0 ||
        dup_bytes(&tmp.page_index, &src->page_index) != 0 || dup_bytes(&tmp.enc, &src->enc) != 0) {
        ks_mutation_index_free(&tmp);
        return -1;
    }
    tmp.hierarchy_version = src->hierarchy_version;
    ks_mutation_index_free(dst);
    *dst = tmp;
    return 0;
}

/* One attribute of a mutation item's layout. */
struct field {
    const char *name;
    enum ks_attr_type type;
    size_t str_off;   /* offset of the char * (S), or SIZE_MAX */
    size_t bytes_off; /* offset of the struct ks_bytes (B), or SIZE_MAX */
};

#define NONE SIZE_MAX
#define C_STR(f) offsetof(struct ks_mutation_commitment, f), NONE
#define C_BYTES(f) NONE, offsetof(struct ks_mutation_commitment, f)
#define X_STR(f) offsetof(struct ks_mutation_index, f), NONE
#define X_BYTES(f) NONE, offsetof(struct ks_mutation_index, f)

/* The 9 commitment attributes and the 7 index attributes (section 1). `type` and
 * `hierarchy-version` are constants, not fields. */
static const struct field commitment_fields[] = {
    {KS_ATTR_BRANCH_KEY_ID, KS_ATTR_S, C_STR(branch_key_id)},
    {KS_ATTR_CREATE_TIME, KS_ATTR_S, C_STR(create_time)},
    {KS_ATTR_UUID, KS_ATTR_S, C_STR(uuid)},
    {KS_ATTR_ORIGINAL, KS_ATTR_B, C_BYTES(original)},
    {KS_ATTR_TERMINAL, KS_ATTR_B, C_BYTES(terminal)},
    {KS_ATTR_INPUT, KS_ATTR_B, C_BYTES(input)},
    {KS_ATTR_ENC, KS_ATTR_B, C_BYTES(enc)},
};
static const struct field index_fields[] = {
    {KS_ATTR_BRANCH_KEY_ID, KS_ATTR_S, X_STR(branch_key_id)},
    {KS_ATTR_CREATE_TIME, KS_ATTR_S, X_STR(create_time)},
    {KS_ATTR_UUID, KS_ATTR_S, X_STR(uuid)},
    {KS_ATTR_PAGE_INDEX, KS_ATTR_B, X_BYTES(page_index)},
    {KS_ATTR_ENC, KS_ATTR_B, X_BYTES(enc)},
};

/* Encodes the fields of obj (a commitment or an index) plus type and hierarchy-version. */
static ks_status fields_to_item(const void *obj, const struct field *fields, size_t n,
                                const char *type, int hv, struct ks_item *out, struct ks_error *err)
{
    const char *base = obj;
    int rc = 0;
    size_t i;

    ks_item_init(out);
    for (i = 0; i < n; i++) {
        const struct field *f = &fields[i];
        if (f->type == KS_ATTR_S) {
            const char *v = *(char *const *)(base + f->str_off);
            if (!v || !*v || !ks_utf8_valid(v, strlen(v)))
                goto invalid;
            rc = ks_item_set_s(out, f->name, v);
        } else {
            const struct ks_bytes *b = (const struct ks_bytes *)(base + f->bytes_off);
            if (b->len == 0)
                goto invalid;
            rc = ks_item_set_b(out, f->name, b->data, b->len);
        }
        if (rc != 0)
            break;
    }
    if (rc == 0)
        rc = ks_item_set_s(out, KS_ATTR_TYPE, type);
    if (rc == 0)
        rc = ks_item_set_n(out, KS_ATTR_HIERARCHY_VERSION,
                           hv == 2 ? "2" : KS_MUTATION_HIERARCHY_VERSION);
    if (rc != 0) {
        ks_item_free(out);
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    return KS_OK;
invalid:
    ks_item_free(out);
    return ks_error_set(err, KS_E_INVALID, "%s: %s must be non-empty%s", type, fields[i].name,
                        fields[i].type == KS_ATTR_S ? " UTF-8 text" : "");
}

/* Decodes item into obj's fields: exactly n + 2 attributes, each of its type and non-empty. */
static ks_status fields_from_item(const struct ks_item *item, const struct field *fields, size_t n,
                                  const char *type, void *obj, int *hv, struct ks_error *err)
{
    const struct ks_attr *a;
    char *base = obj;
    size_t i;

    a = ks_item_get(item, KS_ATTR_TYPE);
    if (!a || a->type != KS_ATTR_S || strcmp((const char *)a->value, type) != 0)
        return ks_error_set(err, KS_E_CORRUPT, "stored %s is not valid: %s", type, KS_ATTR_TYPE);
    a = ks_item_get(item, KS_ATTR_HIERARCHY_VERSION);
    /* N 1 or N 2: both MPL branches' forms (section 12). */
    if (!a || a->type != KS_ATTR_N ||
        (strcmp((const char *)a->value, "1") != 0 && strcmp((const char *)a->value, "2") != 0))
        return ks_error_set(err, KS_E_CORRUPT, "stored %s is not valid: %s must be N 1 or 2", type,
                            KS_ATTR_HIERARCHY_VERSION);
    *hv = ((const char *)a->value)[0] - '0';
    if (item->count != n + 2)
        return ks_error_set(err, KS_E_CORRUPT,
                            "stored %s is not valid: it has %zu attributes, not %zu", type,
                            item->count, n + 2);
    for (i = 0; i < n; i++) {
        const struct field *f = &fields[i];
        a = ks_item_get(item, f->name);
        if (!a || a->type != f->type || a->len == 0 ||
            (f->type == KS_ATTR_S && !ks_utf8_valid((const char *)a->value, a->len)))
            return ks_error_set(err, KS_E_CORRUPT,
                                "stored %s is not valid: %s must be a non-empty %c", type, f->name,
                                (char)f->type);
        if (f->type == KS_ATTR_S
                ? dup_str((char **)(base + f->str_off), (const char *)a->value)
                : ks_bytes_set((struct ks_bytes *)(base + f->bytes_off), a->value, a->len))
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    }
    return KS_OK;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

ks_status ks_mutation_commitment_to_item(const struct ks_mutation_commitment *c,
                                         struct ks_item *out, struct ks_error *err)
{
    return fields_to_item(c, commitment_fields, COUNT(commitment_fields),
                          KS_TYPE_MUTATION_COMMITMENT, c->hierarchy_version, out, err);
}

ks_status ks_mutation_index_to_item(const struct ks_mutation_index *x, struct ks_item *out,
                                    struct ks_error *err)
{
    return fields_to_item(x, index_fields, COUNT(index_fields), KS_TYPE_MUTATION_INDEX,
                          x->hierarchy_version, out, err);
}

ks_status ks_mutation_commitment_from_item(const struct ks_item *item,
                                           struct ks_mutation_commitment *out, struct ks_error *err)
{
    ks_status st;

    ks_mutation_commitment_init(out);
    st = fields_from_item(item, commitment_fields, COUNT(commitment_fields),
                          KS_TYPE_MUTATION_COMMITMENT, out, &out->hierarchy_version, err);
    if (st != KS_OK)
        ks_mutation_commitment_free(out);
    return st;
}

ks_status ks_mutation_index_from_item(const struct ks_item *item, struct ks_mutation_index *out,
                                      struct ks_error *err)
{
    ks_status st;

    ks_mutation_index_init(out);
    st = fields_from_item(item, index_fields, COUNT(index_fields), KS_TYPE_MUTATION_INDEX, out,
                          &out->hierarchy_version, err);
    if (st != KS_OK)
        ks_mutation_index_free(out);
    return st;
}

/* --- original / terminal / input JSON (docs/reference/mutations.md sections 1 and 12) ------- */

/* A growable byte buffer; failed set on OOM, after which appends are no-ops. */
struct buf {
    char *data;
    size_t len, cap;
    int failed;
};

static void buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        char *grown;
        while (cap < b->len + n + 1)
            cap *= 2;
        grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void buf_puts(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/*
 * A JSON string as the MPL's serializer writes it (section 1): \" \\ \b \f \n \r \t, other
 * control characters as \u00XX with uppercase hex, everything else (non-ASCII included) raw.
 * The MPL leaves 0x1F raw, which is not valid JSON; keystored escapes it (issue 10 item 5).
 */
static void buf_quoted(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    buf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *e = c == '"'    ? "\\\""
                        : c == '\\' ? "\\\\"
                        : c == '\b' ? "\\b"
                        : c == '\f' ? "\\f"
                        : c == '\n' ? "\\n"
                        : c == '\r' ? "\\r"
                        : c == '\t' ? "\\t"
                                    : NULL;
        if (e) {
            buf_puts(b, e);
        } else if (c < 0x20) {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_put(b, u, sizeof u);
        } else {
            buf_put(b, (const char *)&c, 1);
        }
    }
    buf_put(b, "\"", 1);
}

/* The next UTF-16 code unit of valid UTF-8 at *s (*pending holds a low surrogate to come). */
static unsigned next_unit(const char **s, unsigned *pending)
{
    uint32_t cp;
    size_t n;

    if (*pending) {
        unsigned u = *pending;
        *pending = 0;
        return u;
    }
    n = ks_utf8_decode(*s, strlen(*s), &cp);
    *s += n ? n : 1;
    if (cp < 0x10000)
        return cp;
    cp -= 0x10000;
    *pending = 0xDC00 + (cp & 0x3FF);
    return 0xD800 + (cp >> 10);
}

/*
 * Dafny string order (section 12): UTF-16 code units compared lexicographically, a proper
 * prefix first. Differs from byte order only between non-BMP characters and U+E000..U+FFFF.
 */
static int utf16_cmp(const char *a, const char *b)
{
    unsigned pa = 0, pb = 0;

    while ((*a || pa) && (*b || pb)) {
        unsigned ua = next_unit(&a, &pa), ub = next_unit(&b, &pb);
        if (ua != ub)
            return ua < ub ? -1 : 1;
    }
    return (*a || pa) ? 1 : (*b || pb) ? -1 : 0;
}

static int entry_utf16_cmp(const void *x, const void *y)
{
    return utf16_cmp(((const struct ks_ec_entry *)x)->key, ((const struct ks_ec_entry *)y)->key);
}

/* Writes ec as a JSON object in UTF-16 key order. -1 on invalid UTF-8 or OOM (b->failed). */
static int buf_ec(struct buf *b, const struct ks_ec *ec)
{
    struct ks_ec_entry *sorted = NULL;
    size_t i;

    for (i = 0; i < ec->count; i++)
        if (!ks_utf8_valid(ec->entries[i].key, strlen(ec->entries[i].key)) ||
            !ks_utf8_valid(ec->entries[i].value, strlen(ec->entries[i].value)))
            return -1;
    if (ec->count) {
        sorted = malloc(ec->count * sizeof *sorted);
        if (!sorted) {
            b->failed = 1;
            return 0;
        }
        memcpy(sorted, ec->entries, ec->count * sizeof *sorted);
        qsort(sorted, ec->count, sizeof *sorted, entry_utf16_cmp);
    }
    buf_put(b, "{", 1);
    for (i = 0; i < ec->count; i++) {
        if (i)
            buf_put(b, ",", 1);
        buf_quoted(b, sorted[i].key);
        buf_put(b, ":", 1);
        buf_quoted(b, sorted[i].value);
    }
    buf_put(b, "}", 1);
    free(sorted);
    return 0;
}

/* Shared by props and input: {"aws-crypto-ec":<ec|null>,"kms-arn":<arn|null>}. */
static ks_status two_members_to_json(const char *kms_arn, const struct ks_ec *ec, int hv,
                                     struct ks_bytes *out, struct ks_error *err)
{
    struct buf b = {NULL, 0, 0, 0};
    int bad = 0;
    ks_status st = KS_OK;

    buf_puts(&b, "{\"" KS_MUTATION_JSON_EC "\":");
    if (ec)
        bad = buf_ec(&b, ec);
    else
        buf_puts(&b, "null");
    buf_puts(&b, ",\"" KS_MUTATION_JSON_ARN "\":");
    if (kms_arn && !ks_utf8_valid(kms_arn, strlen(kms_arn)))
        bad = -1;
    else if (kms_arn)
        buf_quoted(&b, kms_arn);
    else
        buf_puts(&b, "null");
    /* HV-2 form: a third member (section 12); -1 is the input's "not asked for". */
    if (hv != 0)
        buf_puts(&b, hv < 0    ? ",\"" KS_MUTATION_JSON_HV "\":null"
                     : hv == 2 ? ",\"" KS_MUTATION_JSON_HV "\":\"2\""
                               : ",\"" KS_MUTATION_JSON_HV "\":\"1\"");
    buf_put(&b, "}", 1);
    if (bad)
        st = ks_error_set(err, KS_E_INVALID, "mutation properties: text is not valid UTF-8");
    else if (b.failed || ks_bytes_set(out, b.data, b.len) != 0)
        st = ks_error_set(err, KS_E_INTERNAL, "out of memory");
    free(b.data);
    return st;
}

ks_status ks_mutation_props_to_json(const char *kms_arn, const struct ks_ec *ec,
                                    struct ks_bytes *out, struct ks_error *err)
{
    if (!kms_arn || !ec)
        return ks_error_set(err, KS_E_INVALID, "mutation properties need an ARN and a context");
    return two_members_to_json(kms_arn, ec, 0, out, err);
}

ks_status ks_mutation_input_to_json(const char *kms_arn, const struct ks_ec *ec,
                                    struct ks_bytes *out, struct ks_error *err)
{
    return two_members_to_json(kms_arn, ec, 0, out, err);
}

ks_status ks_mutation_props_to_json_hv(const char *kms_arn, const struct ks_ec *ec, int hv,
                                       struct ks_bytes *out, struct ks_error *err)
{
    if (!kms_arn || !ec || hv < 0 || hv > 2)
        return ks_error_set(err, KS_E_INVALID, "mutation properties need an ARN and a context");
    return two_members_to_json(kms_arn, ec, hv, out, err);
}

ks_status ks_mutation_input_to_json_hv(const char *kms_arn, const struct ks_ec *ec, int hv,
                                       struct ks_bytes *out, struct ks_error *err)
{
    return two_members_to_json(kms_arn, ec, hv, out, err);
}

/* Names the MPL refuses in the mutable-properties context (section 1). */
static int reserved_name(const char *k)
{
    static const char *const names[] = {
        KS_ATTR_BRANCH_KEY_ID, KS_ATTR_TYPE,    KS_ATTR_CREATE_TIME, KS_ATTR_HIERARCHY_VERSION,
        KS_ATTR_TABLENAME,     KS_ATTR_KMS_ARN, KS_ATTR_ENC,         KS_ATTR_VERSION};
    size_t i;

    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(k, names[i]) == 0)
            return 1;
    return 0;
}

static ks_status parse_strict(const unsigned char *data, size_t len, const char *what,
                              struct json_object **out, struct ks_error *err);

/*
 * The MPL writes 0x1F raw inside strings (section 1), which strict JSON refuses. A copy with each
 * raw 0x1F written as \u001F parses to the same text; 0x1F never occurs inside a multi-byte
 * UTF-8 sequence, and outside strings it is invalid either way. NULL on OOM; *len updated.
 */
static unsigned char *escape_unit_separators(const unsigned char *data, size_t *len)
{
    size_t i, n = 0, extra = 0;
    unsigned char *out;

    for (i = 0; i < *len; i++)
        extra += data[i] == 0x1F ? 5 : 0;
    out = malloc(*len + extra + 1);
    if (!out)
        return NULL;
    for (i = 0; i < *len; i++) {
        if (data[i] == 0x1F) {
            memcpy(out + n, "\\u001F", 6);
            n += 6;
        } else {
            out[n++] = data[i];
        }
    }
    *len = n;
    return out;
}

/* Parses data: strict JSON (no duplicates, no NUL, no lone surrogates), an object. */
static ks_status parse_object(const unsigned char *data, size_t len, const char *what,
                              struct json_object **out, struct ks_error *err)
{
    unsigned char *copy = NULL;
    ks_status st;

    *out = NULL;
    if (memchr(data, 0x1F, len)) {
        copy = escape_unit_separators(data, &len);
        if (!copy)
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
        data = copy;
    }
    st = parse_strict(data, len, what, out, err);
    free(copy);
    return st;
}

static ks_status parse_strict(const unsigned char *data, size_t len, const char *what,
                              struct json_object **out, struct ks_error *err)
{
    struct ks_error inner;
    struct json_tokener *tok;

    ks_error_clear(&inner);
    if (ks_json_check((const char *)data, len, 4, &inner) != KS_OK)
        return ks_error_set(err, KS_E_CORRUPT, "mutation %s is not valid JSON: %s", what,
                            inner.message);
    tok = json_tokener_new_ex(4);
    if (!tok)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    *out = len <= INT_MAX ? json_tokener_parse_ex(tok, (const char *)data, (int)len) : NULL;
    json_tokener_free(tok);
    if (!*out || !json_object_is_type(*out, json_type_object)) {
        json_object_put(*out);
        *out = NULL;
        return ks_error_set(err, KS_E_CORRUPT, "mutation %s is not a JSON object", what);
    }
    return KS_OK;
}

/*
 * The two members in order: "aws-crypto-ec" (object of strings, or null when allowed) and
 * "kms-arn" (string, or null when allowed). ec gets the pairs; reserved names refused when
 * props (the original/terminal form).
 */
/* The optional third member (section 12): "hierarchy-version" with "1" or "2" (input: or null).
 * *hv: 0 when absent, 1 or 2, -1 for null. */
static ks_status third_member_from_json(struct json_object_iterator *it,
                                        struct json_object_iterator *end, const char *what,
                                        int props, int *hv, struct ks_error *err)
{
    struct json_object *v;
    const char *s;

    *hv = 0;
    json_object_iter_next(it);
    if (json_object_iter_equal(it, end))
        return KS_OK;
    v = json_object_iter_peek_value(it);
    if (strcmp(json_object_iter_peek_name(it), KS_MUTATION_JSON_HV) != 0)
        return ks_error_set(err, KS_E_CORRUPT, "mutation %s: third member must be %s", what,
                            KS_MUTATION_JSON_HV);
    if (!v && !props) {
        *hv = -1;
        return KS_OK;
    }
    s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
    if (strcmp(s, "1") != 0 && strcmp(s, "2") != 0)
        return ks_error_set(err, KS_E_CORRUPT, "mutation %s: %s must be \"1\" or \"2\"", what,
                            KS_MUTATION_JSON_HV);
    *hv = s[0] - '0';
    return KS_OK;
}

static ks_status two_members_from_json(struct json_object *obj, const char *what, int props,
                                       char **kms_arn, int *has_ec, struct ks_ec *ec, int *hv,
                                       struct ks_error *err)
{
    struct json_object_iterator it = json_object_iter_begin(obj), end = json_object_iter_end(obj);
    struct json_object *v_ec, *v_arn;
    int n = json_object_object_length(obj);

    if ((n != 2 && n != 3) || strcmp(json_object_iter_peek_name(&it), KS_MUTATION_JSON_EC) != 0)
        return ks_error_set(err, KS_E_CORRUPT, "mutation %s: members must be %s, %s", what,
                            KS_MUTATION_JSON_EC, KS_MUTATION_JSON_ARN);
    v_ec = json_object_iter_peek_value(&it);
    json_object_iter_next(&it);
    if (json_object_iter_equal(&it, &end) ||
        strcmp(json_object_iter_peek_name(&it), KS_MUTATION_JSON_ARN) != 0)
        return ks_error_set(err, KS_E_CORRUPT, "mutation %s: members must be %s, %s", what,
                            KS_MUTATION_JSON_EC, KS_MUTATION_JSON_ARN);
    v_arn = json_object_iter_peek_value(&it);
    if (third_member_from_json(&it, &end, what, props, hv, err) != KS_OK)
        return KS_E_CORRUPT;
    if (!(props ? json_object_is_type(v_arn, json_type_string)
                : !v_arn || json_object_is_type(v_arn, json_type_string)))
        return ks_error_set(err, KS_E_CORRUPT, "mutation %s: %s must be a string", what,
                            KS_MUTATION_JSON_ARN);
    if (!(json_object_is_type(v_ec, json_type_object) || (!props && !v_ec)))
        return ks_error_set(err, KS_E_CORRUPT, "mutation %s: %s must be an object", what,
                            KS_MUTATION_JSON_EC);
    *has_ec = v_ec != NULL;
    if (v_ec) {
        json_object_object_foreach(v_ec, k, v)
        {
            if (!json_object_is_type(v, json_type_string))
                return ks_error_set(err, KS_E_CORRUPT, "mutation %s: context values are strings",
                                    what);
            if (props && reserved_name(k))
                return ks_error_set(err, KS_E_CORRUPT, "mutation %s: reserved name %s in context",
                                    what, k);
            if (ks_ec_set(ec, k, json_object_get_string(v)) != 0)
                return ks_error_set(err, KS_E_INTERNAL, "out of memory");
        }
    }
    *kms_arn = v_arn ? strdup(json_object_get_string(v_arn)) : NULL;
    if (v_arn && !*kms_arn)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    return KS_OK;
}

static ks_status members_from_json(const unsigned char *data, size_t len, const char *what,
                                   int props, char **kms_arn, int *has_ec, struct ks_ec *ec,
                                   int *hv, struct ks_error *err)
{
    struct json_object *obj;
    ks_status st;

    *kms_arn = NULL;
    ks_ec_init(ec);
    st = parse_object(data, len, what, &obj, err);
    if (st == KS_OK)
        st = two_members_from_json(obj, what, props, kms_arn, has_ec, ec, hv, err);
    json_object_put(obj);
    if (st != KS_OK) {
        free(*kms_arn);
        *kms_arn = NULL;
        ks_ec_free(ec);
    }
    return st;
}

ks_status ks_mutation_props_from_json(const unsigned char *data, size_t len, char **kms_arn,
                                      struct ks_ec *ec, struct ks_error *err)
{
    int has_ec, hv;

    return members_from_json(data, len, "properties", 1, kms_arn, &has_ec, ec, &hv, err);
}

ks_status ks_mutation_input_from_json(const unsigned char *data, size_t len, char **kms_arn,
                                      int *has_ec, struct ks_ec *ec, struct ks_error *err)
{
    int hv;

    return members_from_json(data, len, "input", 0, kms_arn, has_ec, ec, &hv, err);
}

ks_status ks_mutation_props_from_json_hv(const unsigned char *data, size_t len, char **kms_arn,
                                         struct ks_ec *ec, int *hv, struct ks_error *err)
{
    int has_ec;

    return members_from_json(data, len, "properties", 1, kms_arn, &has_ec, ec, hv, err);
}

ks_status ks_mutation_input_from_json_hv(const unsigned char *data, size_t len, char **kms_arn,
                                         int *has_ec, struct ks_ec *ec, int *hv,
                                         struct ks_error *err)
{
    return members_from_json(data, len, "input", 0, kms_arn, has_ec, ec, hv, err);
}
