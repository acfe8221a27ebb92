/*
 * mutation.c - InitializeMutation (docs/reference/mutations.md section 5), DescribeMutation
 * (section 7) and the abort keystored adds. ApplyMutation and the atomic mutation are in
 * mutation_apply.c; KMS and the system key in mutation_kms.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/arn.h"
#include "common/utf8.h"
#include "keystore/mutation.h"
#include "keystore/mutation_internal.h"

static ks_status oom(struct ks_error *err)
{
    return ks_error_set(err, KS_E_INTERNAL, "out of memory");
}

const char *ks_mutation_flag_name(enum ks_mutation_flag f)
{
    return f == KS_MUTATION_RESUMED                 ? "Resumed"
           : f == KS_MUTATION_RESUMED_WITHOUT_INDEX ? "ResumedWithoutIndex"
                                                    : "Created";
}

void ks_mutation_token_free(struct ks_mutation_token *t)
{
    free(t->identifier);
    t->identifier = NULL;
}

void ks_mutation_init_result_free(struct ks_mutation_init_result *r)
{
    ks_mutation_token_free(&r->token);
    ks_mutation_log_free(&r->log);
}

void ks_mutation_apply_result_free(struct ks_mutation_apply_result *r)
{
    ks_mutation_token_free(&r->token);
    ks_mutation_log_free(&r->log);
}

static void public_props_free(struct ks_mutation_props *p)
{
    free(p->kms_arn);
    p->kms_arn = NULL;
    ks_ec_free(&p->ec);
}

void ks_mutation_description_free(struct ks_mutation_description *d)
{
    ks_mutation_token_free(&d->token);
    public_props_free(&d->original);
    public_props_free(&d->terminal);
    free(d->input_kms_arn);
    d->input_kms_arn = NULL;
    ks_ec_free(&d->input_ec);
}

ks_status ks_mut_token_set(struct ks_mutation_token *t, const char *id, const char *uuid,
                           const char *create_time, struct ks_error *err)
{
    if (strlen(uuid) > KS_UUID_LEN || strlen(create_time) >= KS_MUTATION_TIME_MAX)
        return ks_error_set(err, KS_E_MUTATION_INVALID, "mutation uuid or create-time too long");
    if (!(t->identifier = strdup(id)))
        return oom(err);
    snprintf(t->uuid, sizeof t->uuid, "%s", uuid);
    snprintf(t->create_time, sizeof t->create_time, "%s", create_time);
    return KS_OK;
}

/* A commitment and an index that belong together (sections 6 and 7). */
ks_status ks_mut_check_pair(const struct ks_mutation_state *m, const char *id, struct ks_error *err)
{
    if (!m->has_commitment && m->has_index)
        return ks_error_set(err, KS_E_MUTATION_INVALID,
                            "a mutation index (uuid %s) exists without a commitment for this "
                            "branch key; abort the mutation (DELETE) with that uuid in the "
                            "mutationToken to remove it",
                            m->index.uuid ? m->index.uuid : "?");
    if (m->has_commitment && !m->has_index)
        return ks_error_set(err, KS_E_MUTATION_INVALID,
                            "a mutation commitment exists without an index for this branch key");
    if (m->has_commitment &&
        (strcmp(m->commitment.branch_key_id, id) != 0 || strcmp(m->index.branch_key_id, id) != 0 ||
         strcmp(m->commitment.uuid, m->index.uuid) != 0))
        return ks_error_set(err, KS_E_MUTATION_INVALID,
                            "the mutation commitment and index disagree (identifier or uuid)");
    return KS_OK;
}

/* --- input checks (section 5 "Validation") ------------------------------------------------- */

static ks_status check_terminal_ec(const struct ks_ec *ec, struct ks_error *err)
{
    size_t i;
    if (ec->count == 0)
        return ks_error_set(err, KS_E_INVALID, "terminalEncryptionContext: must not be empty");
    for (i = 0; i < ec->count; i++) {
        const char *k = ec->entries[i].key;
        if (!*k || !*ec->entries[i].value)
            return ks_error_set(err, KS_E_INVALID,
                                "terminalEncryptionContext: keys and values must be non-empty");
        if (strncmp(k, KS_EC_PREFIX, strlen(KS_EC_PREFIX)) == 0)
            return ks_error_set(err, KS_E_INVALID,
                                "terminalEncryptionContext: keys are given without the "
                                "aws-crypto-ec: prefix");
    }
    return ks_mut_check_custom_ec(ec, err);
}

static ks_status check_input(const struct ks_mutation_init_input *in, struct ks_error *err)
{
    struct ks_arn parsed;
    ks_status st;
    if ((st = ks_keystore_check_branch_key_id(in->branch_key_id, strlen(in->branch_key_id), err)) !=
        KS_OK)
        return st;
    if (in->terminal_hierarchy_version < 0 || in->terminal_hierarchy_version > 2)
        return ks_error_set(err, KS_E_INVALID, "terminalHierarchyVersion: must be \"1\" or \"2\"");
    /* A hierarchy version alone is a mutation too (HV-1 -> HV-2 keeping ARN and context). */
    if (!in->terminal_kms_arn && !in->terminal_ec && !in->terminal_hierarchy_version)
        return ks_error_set(err, KS_E_INVALID,
                            "at least one of terminalKmsArn, terminalEncryptionContext and "
                            "terminalHierarchyVersion is required");
    if (in->terminal_kms_arn && ks_arn_parse(in->terminal_kms_arn, &parsed) != KS_ARN_OK)
        return ks_error_set(err, KS_E_INVALID,
                            "terminalKmsArn: not a valid KMS key ARN (aliases are not allowed)");
    if (in->terminal_ec && (st = check_terminal_ec(in->terminal_ec, err)) != KS_OK)
        return st;
    return KS_OK;
}

/* --- resume (section 5 step 2) ------------------------------------------------------------ */

static int same_input(const struct ks_mutation_init_input *in,
                      const struct ks_mutation_commitment *c, struct ks_error *err)
{
    char *arn = NULL;
    int has_ec = 0, same, hv = 0;
    struct ks_ec ec;

    ks_ec_init(&ec);
    if (ks_mutation_input_from_json_hv(c->input.data, c->input.len, &arn, &has_ec, &ec, &hv, err) !=
        KS_OK) {
        ks_ec_free(&ec);
        return -1;
    }
    same = ((!arn && !in->terminal_kms_arn) ||
            (arn && in->terminal_kms_arn && strcmp(arn, in->terminal_kms_arn) == 0)) &&
           has_ec == (in->terminal_ec != NULL) && (!has_ec || ks_ec_equal(&ec, in->terminal_ec)) &&
           (hv > 0 ? hv : 0) == in->terminal_hierarchy_version;
    free(arn);
    ks_ec_free(&ec);
    return same;
}

static ks_status resume(struct ks_keystore *ks, const struct ks_mutation_settings *set,
                        const struct ks_mutation_init_input *in, struct ks_mutation_state *m,
                        struct ks_mutation_init_result *out, struct ks_error *err)
{
    const struct ks_mutation_commitment *c = &m->commitment;
    char type[128];
    int same = same_input(in, c, err);
    ks_status st;

    if (same < 0)
        return err->code;
    if (!same)
        return ks_error_set(err, KS_E_MUTATION_CONFLICT,
                            "a different mutation (uuid %s) is in flight for this branch key; "
                            "apply or abort it first",
                            c->uuid);
    if ((st = ks_mut_verify_commitment(set, c, err)) != KS_OK)
        return st;
    snprintf(type, sizeof type, "Mutation Commitment: %s", c->uuid);
    if ((st = ks_mut_log_add(&out->log, type, "Matched Input", err)) != KS_OK)
        return st;
    if (m->has_index) {
        if ((st = ks_mut_check_pair(m, in->branch_key_id, err)) != KS_OK ||
            (st = ks_mut_verify_index(set, &m->index, err)) != KS_OK)
            return st;
        out->flag = KS_MUTATION_RESUMED;
    } else {
        struct ks_mutation_index x;
        char now[28];
        ks_mutation_index_init(&x);
        ks_timestamp_iso8601(ks_mut_clock(ks)->now_us(ks_mut_clock(ks)->ctx), now);
        if (!(x.branch_key_id = strdup(c->branch_key_id)) || !(x.uuid = strdup(c->uuid)) ||
            !(x.create_time = strdup(now)) ||
            ks_bytes_set(&x.page_index, KS_PAGE_INDEX_NOT_STARTED,
                         strlen(KS_PAGE_INDEX_NOT_STARTED)) != 0)
            st = oom(err);
        x.hierarchy_version = c->hierarchy_version; /* the commitment's form (section 12) */
        if (st == KS_OK && (st = ks_mut_sign_index(set, &x, err)) == KS_OK)
            st = ks_mut_storage(ks)->ops->write_mutation_index(ks_mut_storage(ks), c, &x, err);
        ks_mutation_index_free(&x);
        snprintf(type, sizeof type, "Mutation Index: %s", c->uuid);
        if (st != KS_OK || (st = ks_mut_log_add(&out->log, type, "Created", err)) != KS_OK)
            return st;
        out->flag = KS_MUTATION_RESUMED_WITHOUT_INDEX;
    }
    return ks_mut_token_set(&out->token, c->branch_key_id, c->uuid, c->create_time, err);
}

/* --- a new mutation (section 5 step 3) ---------------------------------------------------- */

static ks_status build_commitment(const struct ks_mutation_settings *set,
                                  const struct ks_mutation_init_input *in,
                                  const struct ks_mut_state_ctx *ctx,
                                  struct ks_mutation_commitment *c, struct ks_mutation_index *x,
                                  struct ks_error *err)
{
    ks_status st;
    int three;
    if (!(c->branch_key_id = strdup(in->branch_key_id)) || !(c->uuid = strdup(ctx->uuid)) ||
        !(c->create_time = strdup(ctx->now)) || !(x->branch_key_id = strdup(in->branch_key_id)) ||
        !(x->uuid = strdup(ctx->uuid)) || !(x->create_time = strdup(ctx->now)) ||
        ks_bytes_set(&x->page_index, KS_PAGE_INDEX_NOT_STARTED,
                     strlen(KS_PAGE_INDEX_NOT_STARTED)) != 0)
        return oom(err);
    /* N 1 and two members when neither side is HV-2 (both MPL branches read that), N 2 and
     * three members otherwise (section 12). */
    three = ctx->original.hv == 2 || ctx->terminal.hv == 2;
    c->hierarchy_version = x->hierarchy_version = three ? 2 : 1;
    if ((st = ks_mut_props_to_json(&ctx->original, three, &c->original, err)) != KS_OK ||
        (st = ks_mut_props_to_json(&ctx->terminal, three, &c->terminal, err)) != KS_OK ||
        (st = ks_mutation_input_to_json_hv(in->terminal_kms_arn, in->terminal_ec,
                                           !three ? 0
                                           : in->terminal_hierarchy_version
                                               ? in->terminal_hierarchy_version
                                               : -1,
                                           &c->input, err)) != KS_OK)
        return st;
    if ((st = ks_mut_sign_commitment(set, c, err)) != KS_OK)
        return st;
    return ks_mut_sign_index(set, x, err);
}

static ks_status log_created(const struct ks_mutation_init_input *in,
                             const struct ks_mut_state_ctx *ctx, struct ks_mutation_log *log,
                             struct ks_error *err)
{
    const char *v = ks_item_get_s(&ctx->new_active, KS_ATTR_VERSION);
    char type[256];
    ks_status st = KS_OK;
    v = v ? v + strlen(KS_TYPE_VERSION_PREFIX) : "";
    if (!in->atomic) {
        snprintf(type, sizeof type, "Mutation Commitment: %s", ctx->uuid);
        st = ks_mut_log_add(log, type, "Created", err);
        snprintf(type, sizeof type, "Mutation Index: %s", ctx->uuid);
        if (st == KS_OK)
            st = ks_mut_log_add(log, type, "Created", err);
    }
    snprintf(type, sizeof type, "Active: %s", v);
    if (st == KS_OK)
        st = ks_mut_log_add(log, type, in->do_not_version ? "Mutated" : "Rotated", err);
    snprintf(type, sizeof type, "Decrypt Only: %s", v);
    if (st == KS_OK)
        st = ks_mut_log_add(log, type, in->do_not_version ? "Mutated" : "Created", err);
    if (st == KS_OK)
        st = ks_mut_log_add(log, "Beacon", "Mutated", err);
    return st;
}

static ks_status write_new(struct ks_keystore *ks, const struct ks_mutation_settings *set,
                           const struct ks_mutation_init_input *in, struct ks_mut_state_ctx *ctx,
                           struct ks_mutation_init_result *out, struct ks_error *err)
{
    struct ks_storage *s = ks_mut_storage(ks);
    struct ks_storage_write active = {&ctx->new_active, &ctx->items.active};
    struct ks_storage_write version = {&ctx->new_version,
                                       in->do_not_version ? &ctx->old_version : NULL};
    struct ks_storage_write beacon = {&ctx->new_beacon, &ctx->items.beacon};
    struct ks_mutation_commitment c;
    struct ks_mutation_index x;
    ks_status st;

    ks_mutation_commitment_init(&c);
    ks_mutation_index_init(&x);
    st = build_commitment(set, in, ctx, &c, &x, err);
    if (st == KS_OK)
        st = s->ops->write_initialize_mutation(s, &active, &version, &beacon, &c, &x, err);
    /* The ACTIVE and beacon were rewritten: this instance forgets the key at once. */
    if (st == KS_OK)
        ks_mut_invalidate(ks, in->branch_key_id);
    if (st == KS_OK)
        st = ks_mut_token_set(&out->token, in->branch_key_id, ctx->uuid, ctx->now, err);
    ks_mutation_commitment_free(&c);
    ks_mutation_index_free(&x);
    return st;
}

/* The ACTIVE, its version (doNotVersion) or a new version, and the beacon, re-protected. */
static ks_status mutate_heads(struct ks_keystore *ks, const struct ks_mutation_init_input *in,
                              struct ks_mut_state_ctx *ctx, struct ks_error *err)
{
    const struct ks_mutation_strategy *s = &in->strategy;
    struct ks_storage *st_ = ks_mut_storage(ks);
    ks_status st;

    /* Step 3.2: the ACTIVE must decrypt on the original side (MutationFromException). */
    if ((st = ks_mut_verify(ks, s, &ctx->items.active, 0, err)) != KS_OK)
        return st;
    if (ks_mut_classify(&ctx->items.beacon, &ctx->original, &ctx->terminal) != KS_MUT_ORIGINAL)
        return ks_error_set(err, KS_E_UNEXPECTED_STATE,
                            "the beacon key of %s is not in the original state (kms-arn and "
                            "encryption context of the ACTIVE)",
                            in->branch_key_id);
    if (in->do_not_version) {
        const char *v = ks_item_get_s(&ctx->items.active, KS_ATTR_VERSION);
        st = st_->ops->get_version(st_, in->branch_key_id, v + strlen(KS_TYPE_VERSION_PREFIX),
                                   &ctx->old_version, err);
        if (st != KS_OK)
            return st == KS_E_NOT_FOUND ? ks_error_set(err, KS_E_UNEXPECTED_STATE,
                                                       "the ACTIVE's version item is missing")
                                        : st;
        if (ks_mut_classify(&ctx->old_version, &ctx->original, &ctx->terminal) != KS_MUT_ORIGINAL)
            return ks_error_set(err, KS_E_UNEXPECTED_STATE,
                                "the ACTIVE's version item is not in the original state");
        if ((st = ks_mut_transform(ks, s, &ctx->items.active, &ctx->terminal, &ctx->new_active,
                                   err)) != KS_OK ||
            (st = ks_mut_transform(ks, s, &ctx->old_version, &ctx->terminal, &ctx->new_version,
                                   err)) != KS_OK)
            return st;
    } else if ((st = ks_mut_rotate(ks, s, &ctx->items.active, &ctx->terminal, ctx->now,
                                   &ctx->new_version, &ctx->new_active, err)) != KS_OK) {
        return st;
    }
    return ks_mut_transform(ks, s, &ctx->items.beacon, &ctx->terminal, &ctx->new_beacon, err);
}

/*
 * The terminal hierarchy version (section 12): the requested one or the ACTIVE's. HV-2 -> HV-1
 * is refused; an HV-2 terminal needs decryptEncrypt (reEncrypt would leave the digest inside
 * the ciphertext stale: it covers kms-arn and the context) and the strict model (hv2.md
 * section 7): the terminal context holds only prefixed custom keys, unique once unprefixed.
 */
static ks_status hv_terminal(const struct ks_mutation_init_input *in, struct ks_mut_state_ctx *ctx,
                             struct ks_error *err)
{
    size_t i;

    if (in->terminal_hierarchy_version)
        ctx->terminal.hv = in->terminal_hierarchy_version;
    if (ctx->original.hv == 2 && ctx->terminal.hv == 1)
        return ks_error_set(err, KS_E_UNSUPPORTED,
                            "terminalHierarchyVersion: hierarchy version 2 -> 1 is not supported");
    if (ctx->terminal.hv != 2)
        return KS_OK;
    if (in->strategy.kind != KS_STRATEGY_DECRYPT_ENCRYPT)
        return ks_error_set(err, KS_E_UNSUPPORTED,
                            "strategy: a hierarchy version 2 terminal needs decryptEncrypt "
                            "(reEncrypt would leave the branch key context digest stale)");
    for (i = 0; i < ctx->terminal.ec.count; i++)
        if (strncmp(ctx->terminal.ec.entries[i].key, KS_EC_PREFIX, strlen(KS_EC_PREFIX)) != 0)
            return ks_error_set(err, KS_E_UNSUPPORTED,
                                "hierarchy version 2 allows only aws-crypto-ec: attributes; the "
                                "branch key has the un-modeled attribute %s",
                                ctx->terminal.ec.entries[i].key);
    return KS_OK;
}

static ks_status start_new(struct ks_keystore *ks, const struct ks_mutation_settings *set,
                           const struct ks_mutation_init_input *in, struct ks_mut_state_ctx *ctx,
                           struct ks_mutation_init_result *out, struct ks_error *err)
{
    ks_status st;

    if ((st = ks_mut_props_of_item(&ctx->items.active, &ctx->original, err)) != KS_OK ||
        (st = ks_mut_props_terminal(&ctx->original, in->terminal_kms_arn, in->terminal_ec,
                                    &ctx->terminal, err)) != KS_OK)
        return st;
    if ((st = hv_terminal(in, ctx, err)) != KS_OK)
        return st;
    /* Nothing to do (issue 10): checked only here, so that a resume is never refused. */
    if (ks_mut_props_equal(&ctx->original, &ctx->terminal))
        return ks_error_set(err, KS_E_MUTATION_INVALID,
                            "the branch key is already in the terminal state (kms-arn and "
                            "encryption context); nothing to mutate");
    if ((st = ks_mut_check_strategy(&in->strategy, ctx->original.kms_arn, ctx->terminal.kms_arn,
                                    err)) != KS_OK)
        return st;
    if (in->atomic && (st = ks_mut_atomic_collect(ks, in, ctx, err)) != KS_OK)
        return st;
    if (ks_uuid_v4(ctx->uuid) != 0)
        return ks_error_set(err, KS_E_INTERNAL, "random source failed");
    ks_timestamp_iso8601(ks_mut_clock(ks)->now_us(ks_mut_clock(ks)->ctx), ctx->now);
    if ((st = mutate_heads(ks, in, ctx, err)) != KS_OK)
        return st;
    if (in->atomic)
        st = ks_mut_atomic_write(ks, set, in, ctx, err);
    else
        st = write_new(ks, set, in, ctx, out, err);
    if (st == KS_OK)
        st = log_created(in, ctx, &out->log, err);
    out->flag = KS_MUTATION_CREATED;
    out->completed = in->atomic;
    return st;
}

/*
 * A storage driver older than the mutation operations (driver table version 3) has none of
 * them: refuse instead of calling a NULL method.
 */
ks_status ks_mut_storage_has_mutations(const struct ks_storage *s, struct ks_error *err)
{
    const struct ks_storage_ops *o = s->ops;
    if (o->version >= 3 && o->get_items_for_initialize_mutation && o->write_initialize_mutation &&
        o->write_atomic_mutation && o->query_for_versions && o->write_mutated_versions &&
        o->get_mutation && o->delete_mutation && o->write_mutation_index)
        return KS_OK;
    return ks_error_set(err, KS_E_UNSUPPORTED,
                        "this key store's storage backend has no mutation operations");
}

ks_status ks_mutation_initialize(struct ks_keystore *ks, const struct ks_mutation_settings *set,
                                 const struct ks_mutation_init_input *in,
                                 struct ks_mutation_init_result *out, struct ks_error *err)
{
    struct ks_storage *s = ks_mut_storage(ks);
    struct ks_mut_state_ctx ctx;
    ks_status st;

    memset(out, 0, sizeof *out);
    if ((st = ks_mut_storage_has_mutations(s, err)) != KS_OK ||
        (st = check_input(in, err)) != KS_OK)
        return st;
    ks_mut_ctx_init(&ctx);
    st = s->ops->get_items_for_initialize_mutation(s, in->branch_key_id, &ctx.items, err);
    if (st == KS_E_NOT_FOUND)
        ks_error_set(err, st, "No item found for corresponding branch key identifier.");
    if (st == KS_OK && (st = ks_mut_check_item(&ctx.items.active, 0, in->branch_key_id,
                                               KS_TYPE_ACTIVE, err)) == KS_OK)
        st = ks_mut_check_item(&ctx.items.beacon, 2, in->branch_key_id, KS_TYPE_BEACON, err);
    if (st == KS_OK && !ctx.items.mutation.has_commitment && ctx.items.mutation.has_index)
        st = ks_mut_check_pair(&ctx.items.mutation, in->branch_key_id, err);
    if (st == KS_OK && ctx.items.mutation.has_commitment)
        st = resume(ks, set, in, &ctx.items.mutation, out, err);
    else if (st == KS_OK)
        st = start_new(ks, set, in, &ctx, out, err);
    ks_mut_ctx_free(&ctx);
    if (st != KS_OK)
        ks_mutation_init_result_free(out);
    return st;
}

/* --- DescribeMutation and abort ----------------------------------------------------------- */

/* Counts the versions in each state: one paged scan of storage, no KMS call. */
static ks_status count_versions(struct ks_keystore *ks, const char *id,
                                const struct ks_mut_props *original,
                                const struct ks_mut_props *terminal,
                                struct ks_mutation_description *out, struct ks_error *err)
{
    struct ks_storage *s = ks_mut_storage(ks);
    char *start = NULL;
    ks_status st;

    do {
        struct ks_version_page page;
        size_t i;
        st = s->ops->query_for_versions(s, id, start, KS_STORAGE_MAX_PAGE, &page, err);
        free(start);
        start = NULL;
        if (st != KS_OK)
            return st;
        for (i = 0; i < page.count; i++) {
            enum ks_mut_state k = ks_mut_classify(&page.items[i], original, terminal);
            out->versions_original += k == KS_MUT_ORIGINAL;
            out->versions_terminal += k == KS_MUT_TERMINAL;
        }
        if (page.next && !(start = strdup(page.next)))
            st = oom(err);
        ks_version_page_free(&page);
    } while (st == KS_OK && start);
    return st;
}

static ks_status describe_props(struct ks_keystore *ks, const struct ks_mutation_state *m,
                                struct ks_mutation_description *out, struct ks_error *err)
{
    const struct ks_mutation_commitment *c = &m->commitment;
    struct ks_mut_props original, terminal;
    struct ks_item active;
    ks_status st;

    ks_mut_props_init(&original);
    ks_mut_props_init(&terminal);
    ks_item_init(&active);
    if ((st = ks_mut_props_from_json(&c->original, &original, err)) == KS_OK &&
        (st = ks_mut_props_from_json(&c->terminal, &terminal, err)) == KS_OK &&
        (st = ks_mut_props_public(&original, &out->original, err)) == KS_OK &&
        (st = ks_mut_props_public(&terminal, &out->terminal, err)) == KS_OK)
        st = count_versions(ks, c->branch_key_id, &original, &terminal, out, err);
    /* doNotVersion is not stored (the MPL's input has no member for it): a rotating
     * mutation's ACTIVE was created at the commitment's create-time. */
    if (st == KS_OK && ks_mut_storage(ks)->ops->get_active(ks_mut_storage(ks), c->branch_key_id,
                                                           &active, err) == KS_OK) {
        const char *t = ks_item_get_s(&active, KS_ATTR_CREATE_TIME);
        out->do_not_version = !t || strcmp(t, c->create_time) != 0;
    }
    ks_item_free(&active);
    ks_mut_props_free(&original);
    ks_mut_props_free(&terminal);
    return st;
}

ks_status ks_mutation_describe(struct ks_keystore *ks, const char *branch_key_id,
                               struct ks_mutation_description *out, struct ks_error *err)
{
    struct ks_storage *s = ks_mut_storage(ks);
    struct ks_mutation_state m;
    ks_status st;

    memset(out, 0, sizeof *out);
    ks_ec_init(&out->original.ec);
    ks_ec_init(&out->terminal.ec);
    ks_ec_init(&out->input_ec);
    if ((st = ks_mut_storage_has_mutations(s, err)) != KS_OK ||
        (st = ks_keystore_check_branch_key_id(branch_key_id, strlen(branch_key_id), err)) != KS_OK)
        return st;
    if ((st = s->ops->get_mutation(s, branch_key_id, &m, err)) != KS_OK)
        return st;
    if (!m.has_commitment && !m.has_index)
        st = ks_error_set(err, KS_E_NOT_FOUND, "No mutation in flight for this branch key.");
    if (st == KS_OK)
        st = ks_mut_check_pair(&m, branch_key_id, err);
    if (st == KS_OK)
        st = ks_mut_token_set(&out->token, branch_key_id, m.commitment.uuid,
                              m.commitment.create_time, err);
    if (st == KS_OK)
        st = ks_mutation_input_from_json_hv(m.commitment.input.data, m.commitment.input.len,
                                            &out->input_kms_arn, &out->input_has_ec, &out->input_ec,
                                            &out->input_hierarchy_version, err);
    if (out->input_hierarchy_version < 0)
        out->input_hierarchy_version = 0;
    if (st == KS_OK)
        st = describe_props(ks, &m, out, err);
    if (st == KS_OK) {
        out->system_key = ks_mut_system_key_name(&m.commitment.enc);
        out->last_page_done = out->versions_original == 0;
    }
    ks_mutation_state_free(&m);
    if (st != KS_OK)
        ks_mutation_description_free(out);
    return st;
}

/*
 * An index whose commitment is gone (a store written by another tool, or edited by hand) blocks
 * every mutation of the key, and the MPL offers no way out: keystored's abort removes it when the
 * token names its uuid, under the index check and only while no commitment exists.
 */
static ks_status abort_orphan_index(struct ks_storage *s, const struct ks_mutation_index *index,
                                    const struct ks_mutation_token *token, struct ks_error *err)
{
    if (!index->uuid || strcmp(index->uuid, token->uuid) != 0)
        return ks_error_set(err, KS_E_MUTATION_INVALID,
                            "mutationToken: stale token (the orphaned mutation index is %s)",
                            index->uuid ? index->uuid : "?");
    if (s->ops->version < 6 || !s->ops->delete_mutation_index)
        return ks_error_set(err, KS_E_UNSUPPORTED,
                            "this key store's storage backend cannot delete a mutation index");
    return s->ops->delete_mutation_index(s, index, err);
}

ks_status ks_mutation_abort(struct ks_keystore *ks, const struct ks_mutation_token *token,
                            struct ks_error *err)
{
    struct ks_storage *s = ks_mut_storage(ks);
    struct ks_mutation_state m;
    ks_status st;

    if ((st = ks_mut_storage_has_mutations(s, err)) != KS_OK ||
        (st = ks_keystore_check_branch_key_id(token->identifier, strlen(token->identifier), err)) !=
            KS_OK)
        return st;
    if ((st = s->ops->get_mutation(s, token->identifier, &m, err)) != KS_OK)
        return st;
    if (!m.has_commitment && m.has_index)
        st = abort_orphan_index(s, &m.index, token, err);
    else if (!m.has_commitment)
        st = ks_error_set(err, KS_E_MUTATION_INVALID,
                          "mutationToken: no mutation is in flight for this branch key");
    else if (strcmp(m.commitment.uuid, token->uuid) != 0)
        st = ks_error_set(err, KS_E_MUTATION_INVALID,
                          "mutationToken: stale token (the mutation in flight is %s)",
                          m.commitment.uuid);
    else
        st = s->ops->delete_mutation(s, &m.commitment, err);
    if (st == KS_OK)
        ks_mut_invalidate(ks, token->identifier);
    ks_mutation_state_free(&m);
    return st;
}
