/*
 * mutation_apply.c - ApplyMutation (docs/reference/mutations.md section 6), one page at a time
 * with the page's KMS calls run concurrently (section 13), and the atomic mutation (issue 10
 * item 4) that mutates every version in one write.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keystore/mutation.h"
#include "keystore/mutation_internal.h"

static ks_status oom(struct ks_error *err)
{
    return ks_error_set(err, KS_E_INTERNAL, "out of memory");
}

void ks_mut_ctx_init(struct ks_mut_state_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    ks_mutation_init_items_init(&ctx->items);
    ks_mut_props_init(&ctx->original);
    ks_mut_props_init(&ctx->terminal);
    ks_item_init(&ctx->old_version);
    ks_item_init(&ctx->new_active);
    ks_item_init(&ctx->new_version);
    ks_item_init(&ctx->new_beacon);
}

void ks_mut_ctx_free(struct ks_mut_state_ctx *ctx)
{
    size_t i;
    ks_mutation_init_items_free(&ctx->items);
    ks_mut_props_free(&ctx->original);
    ks_mut_props_free(&ctx->terminal);
    ks_item_free(&ctx->old_version);
    ks_item_free(&ctx->new_active);
    ks_item_free(&ctx->new_version);
    ks_item_free(&ctx->new_beacon);
    for (i = 0; i < ctx->n_versions; i++) {
        ks_item_free(&ctx->versions[i]);
        ks_item_free(&ctx->mutated[i]);
    }
    free(ctx->versions);
    free(ctx->mutated);
}

/* --- one page of versions: classify, then KMS concurrently ------------------------------- */

struct page_job {
    const struct ks_keystore *ks;
    const struct ks_mutation_strategy *strategy;
    const struct ks_mut_props *original, *terminal;
    const struct ks_item *items;
    struct ks_item *out; /* terminal form of each original item */
    enum ks_mut_state *state;
};

static ks_status page_item(void *ctx, size_t i, struct ks_error *err)
{
    const struct page_job *j = ctx;
    if (j->state[i] == KS_MUT_TERMINAL)
        return ks_mut_verify(j->ks, j->strategy, &j->items[i], 1, err);
    return ks_mut_transform(j->ks, j->strategy, &j->items[i], j->terminal, &j->out[i], err);
}

/* Classifies items (any Neither: UnexpectedStateException before any KMS call), then verifies
 * the terminal ones and transforms the original ones, in_flight at a time. */
static ks_status run_page(struct page_job *j, size_t n, unsigned in_flight, const char *id,
                          struct ks_error *err)
{
    size_t i;
    for (i = 0; i < n; i++) {
        j->state[i] = ks_mut_classify(&j->items[i], j->original, j->terminal);
        if (j->state[i] == KS_MUT_NEITHER)
            return ks_error_set(err, KS_E_UNEXPECTED_STATE,
                                "a version of branch key %s is in neither the original nor the "
                                "terminal state",
                                id);
    }
    return ks_mut_parallel(n, in_flight, page_item, j, err);
}

static unsigned in_flight_of(const struct ks_mutation_settings *set)
{
    return set->kms_in_flight ? set->kms_in_flight : KS_MUTATION_KMS_IN_FLIGHT_DEFAULT;
}

/* --- atomic mutation ---------------------------------------------------------------------- */

ks_status ks_mut_atomic_collect(struct ks_keystore *ks, const struct ks_mutation_init_input *in,
                                struct ks_mut_state_ctx *ctx, struct ks_error *err)
{
    struct ks_storage *s = ks_mut_storage(ks);
    const char *active_v = ks_item_get_s(&ctx->items.active, KS_ATTR_VERSION);
    struct ks_version_page page;
    size_t i, limit = KS_STORAGE_MAX_ATOMIC_VERSIONS + (in->do_not_version ? 1 : 0);
    ks_status st;

    /* One page of the most the limit allows plus one tells whether the key is over it. */
    st = s->ops->query_for_versions(s, in->branch_key_id, NULL, KS_STORAGE_MAX_PAGE, &page, err);
    if (st != KS_OK)
        return st;
    if (page.next || page.count > limit) {
        ks_version_page_free(&page);
        return ks_error_set(err, KS_E_UNSUPPORTED,
                            "atomic: a branch key with more than %d versions cannot be mutated "
                            "atomically (the limit of one storage transaction); use paged "
                            "ApplyMutation",
                            (int)limit);
    }
    ctx->versions = calloc(page.count ? page.count : 1, sizeof *ctx->versions);
    ctx->mutated = calloc(page.count ? page.count : 1, sizeof *ctx->mutated);
    if (!ctx->versions || !ctx->mutated) {
        ks_version_page_free(&page);
        return oom(err);
    }
    for (i = 0; i < page.count; i++) {
        const char *type = ks_item_get_s(&page.items[i], KS_ATTR_TYPE);
        /* Under doNotVersion the ACTIVE's own version is written as `version`. */
        if (in->do_not_version && type && active_v && strcmp(type, active_v) == 0)
            continue;
        ks_item_init(&ctx->mutated[ctx->n_versions]);
        ctx->versions[ctx->n_versions] = page.items[i];
        ks_item_init(&page.items[i]);
        ctx->n_versions++;
    }
    ks_version_page_free(&page);
    return KS_OK;
}

ks_status ks_mut_atomic_write(struct ks_keystore *ks, const struct ks_mutation_settings *set,
                              const struct ks_mutation_init_input *in, struct ks_mut_state_ctx *ctx,
                              struct ks_error *err)
{
    struct ks_storage *s = ks_mut_storage(ks);
    struct ks_storage_write active = {&ctx->new_active, &ctx->items.active};
    struct ks_storage_write version = {&ctx->new_version,
                                       in->do_not_version ? &ctx->old_version : NULL};
    struct ks_storage_write beacon = {&ctx->new_beacon, &ctx->items.beacon};
    struct ks_storage_write *writes = NULL;
    enum ks_mut_state *state = calloc(ctx->n_versions + 1, sizeof *state);
    struct page_job j = {ks,           &in->strategy, &ctx->original, &ctx->terminal, ctx->versions,
                         ctx->mutated, state};
    size_t i, n = 0;
    ks_status st;

    if (!state)
        return oom(err);
    st = run_page(&j, ctx->n_versions, in_flight_of(set), in->branch_key_id, err);
    if (st == KS_OK && !(writes = calloc(ctx->n_versions + 1, sizeof *writes)))
        st = oom(err);
    for (i = 0; st == KS_OK && i < ctx->n_versions; i++)
        if (state[i] == KS_MUT_ORIGINAL) {
            writes[n].item = &ctx->mutated[i];
            writes[n++].old = &ctx->versions[i];
        }
    if (st == KS_OK)
        st = s->ops->write_atomic_mutation(s, &active, &version, &beacon, writes, n, err);
    if (st == KS_OK)
        ks_mut_invalidate(ks, in->branch_key_id);
    free(writes);
    free(state);
    return st;
}

/* --- ApplyMutation ------------------------------------------------------------------------ */

/* GetMutation and every check of section 6 steps 1-3; fills original/terminal. */
static ks_status load_mutation(struct ks_keystore *ks, const struct ks_mutation_settings *set,
                               const struct ks_mutation_token *token, struct ks_mutation_state *m,
                               struct ks_mut_props *original, struct ks_mut_props *terminal,
                               struct ks_error *err)
{
    struct ks_storage *s = ks_mut_storage(ks);
    ks_status st;

    if ((st = ks_keystore_check_branch_key_id(token->identifier, strlen(token->identifier), err)) !=
        KS_OK)
        return st;
    if ((st = s->ops->get_mutation(s, token->identifier, m, err)) != KS_OK)
        return st;
    if (!m->has_commitment && !m->has_index)
        return ks_error_set(err, KS_E_MUTATION_INVALID,
                            "mutationToken: no mutation is in flight for this branch key (it "
                            "completed or was aborted)");
    if ((st = ks_mut_check_pair(m, token->identifier, err)) != KS_OK)
        return st;
    if (strcmp(m->commitment.uuid, token->uuid) != 0)
        return ks_error_set(err, KS_E_MUTATION_INVALID,
                            "mutationToken: stale token (the mutation in flight is %s)",
                            m->commitment.uuid);
    if ((st = ks_mut_verify_commitment(set, &m->commitment, err)) != KS_OK ||
        (st = ks_mut_verify_index(set, &m->index, err)) != KS_OK)
        return st;
    if ((st = ks_mut_props_from_json(&m->commitment.original, original, err)) != KS_OK)
        return st;
    return ks_mut_props_from_json(&m->commitment.terminal, terminal, err);
}

/* The page's storage write: the mutated items, and the next index or the end. */
static ks_status write_page(struct ks_keystore *ks, const struct ks_mutation_settings *set,
                            const struct ks_mutation_state *m, const struct ks_version_page *page,
                            const struct page_job *j, struct ks_mutation_apply_result *out,
                            struct ks_error *err)
{
    struct ks_storage *s = ks_mut_storage(ks);
    struct ks_storage_write *writes = calloc(page->count + 1, sizeof *writes);
    struct ks_mutation_index next;
    size_t i, n = 0;
    ks_status st = KS_OK;

    ks_mutation_index_init(&next);
    if (!writes)
        return oom(err);
    for (i = 0; i < page->count; i++)
        if (j->state[i] == KS_MUT_ORIGINAL) {
            writes[n].item = &j->out[i];
            writes[n++].old = &page->items[i];
        }
    out->completed = page->next == NULL;
    if (!out->completed) {
        if (!(next.branch_key_id = strdup(m->index.branch_key_id)) ||
            !(next.uuid = strdup(m->index.uuid)) ||
            !(next.create_time = strdup(m->index.create_time)) ||
            ks_bytes_set(&next.page_index, page->next, strlen(page->next)) != 0)
            st = oom(err);
        next.hierarchy_version = m->index.hierarchy_version; /* N 1 or 2 kept (section 12) */
        if (st == KS_OK)
            st = ks_mut_sign_index(set, &next, err);
    }
    if (st == KS_OK)
        st = s->ops->write_mutated_versions(s, writes, n, &m->commitment,
                                            out->completed ? NULL : &next, &m->index,
                                            out->completed, err);
    out->versions_mutated = n;
    out->versions_verified = page->count - n;
    ks_mutation_index_free(&next);
    free(writes);
    return st;
}

static ks_status log_page(const struct ks_version_page *page, const enum ks_mut_state *state,
                          struct ks_mutation_log *log, struct ks_error *err)
{
    size_t i;
    ks_status st = KS_OK;
    for (i = 0; i < page->count && st == KS_OK; i++) {
        const char *t = ks_item_get_s(&page->items[i], KS_ATTR_TYPE);
        char type[128];
        snprintf(type, sizeof type, "%s%s",
                 state[i] == KS_MUT_ORIGINAL ? "Decrypt Only: " : "Version (Decrypt Only): ",
                 t ? t + strlen(KS_TYPE_VERSION_PREFIX) : "");
        st = ks_mut_log_add(
            log, type,
            state[i] == KS_MUT_ORIGINAL ? "Mutated to Terminal" : "Validated in Terminal", err);
    }
    return st;
}

/* The page after the index's position, mutated and written. */
static ks_status apply_page(struct ks_keystore *ks, const struct ks_mutation_settings *set,
                            const struct ks_mutation_strategy *strategy,
                            const struct ks_mutation_state *m, const struct ks_mut_props *original,
                            const struct ks_mut_props *terminal, unsigned page_size,
                            struct ks_mutation_apply_result *out, struct ks_error *err)
{
    struct ks_storage *s = ks_mut_storage(ks);
    const struct ks_bytes *pi = &m->index.page_index;
    char *start = NULL;
    struct ks_version_page page;
    struct page_job j = {ks, strategy, original, terminal, NULL, NULL, NULL};
    size_t i;
    ks_status st;

    /* "Not Started" (or "Done", never persisted) starts from the first version. */
    if (!(pi->len == strlen(KS_PAGE_INDEX_NOT_STARTED) &&
          memcmp(pi->data, KS_PAGE_INDEX_NOT_STARTED, pi->len) == 0) &&
        !(pi->len == strlen(KS_PAGE_INDEX_DONE) && memcmp(pi->data, KS_PAGE_INDEX_DONE, 4) == 0)) {
        if (!(start = calloc(1, pi->len + 1)))
            return oom(err);
        memcpy(start, pi->data, pi->len);
    }
    st = s->ops->query_for_versions(s, m->commitment.branch_key_id, start, page_size, &page, err);
    free(start);
    if (st != KS_OK)
        return st;
    j.items = page.items;
    j.out = calloc(page.count + 1, sizeof *j.out);
    j.state = calloc(page.count + 1, sizeof *j.state);
    if (!j.out || !j.state)
        st = oom(err);
    for (i = 0; st == KS_OK && i < page.count; i++)
        ks_item_init(&j.out[i]);
    if (st == KS_OK)
        st = run_page(&j, page.count, in_flight_of(set), m->commitment.branch_key_id, err);
    if (st == KS_OK)
        st = write_page(ks, set, m, &page, &j, out, err);
    if (st == KS_OK)
        st = log_page(&page, j.state, &out->log, err);
    for (i = 0; j.out && i < page.count; i++)
        ks_item_free(&j.out[i]);
    free(j.out);
    free(j.state);
    ks_version_page_free(&page);
    return st;
}

ks_status ks_mutation_apply(struct ks_keystore *ks, const struct ks_mutation_settings *set,
                            const struct ks_mutation_token *token, unsigned page_size,
                            const struct ks_mutation_strategy *strategy,
                            struct ks_mutation_apply_result *out, struct ks_error *err)
{
    struct ks_mutation_state m;
    struct ks_mut_props original, terminal;
    ks_status st;

    memset(out, 0, sizeof *out);
    if ((st = ks_mut_storage_has_mutations(ks_mut_storage(ks), err)) != KS_OK)
        return st;
    if (!page_size)
        page_size = set->page_size ? set->page_size : KS_MUTATION_PAGE_SIZE_DEFAULT;
    if (page_size > KS_STORAGE_MAX_PAGE)
        return ks_error_set(err, KS_E_INVALID, "pageSize: expected 1..%d", KS_STORAGE_MAX_PAGE);
    ks_mutation_state_init(&m);
    ks_mut_props_init(&original);
    ks_mut_props_init(&terminal);
    st = load_mutation(ks, set, token, &m, &original, &terminal, err);
    if (st == KS_OK)
        st = ks_mut_check_strategy(strategy, original.kms_arn, terminal.kms_arn, err);
    if (st == KS_OK)
        st = apply_page(ks, set, strategy, &m, &original, &terminal, page_size, out, err);
    /* Versions were rewritten: drop this instance's entries of the key (every page, so that
     * a cached version never outlives its item by more than one page). */
    if (st == KS_OK)
        ks_mut_invalidate(ks, token->identifier);
    if (st == KS_OK && !out->completed)
        st = ks_mut_token_set(&out->token, m.commitment.branch_key_id, m.commitment.uuid,
                              m.commitment.create_time, err);
    ks_mutation_state_free(&m);
    ks_mut_props_free(&original);
    ks_mut_props_free(&terminal);
    if (st != KS_OK)
        ks_mutation_apply_result_free(out);
    return st;
}
