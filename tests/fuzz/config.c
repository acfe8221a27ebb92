/*
 * config.c - fuzz target: the YAML configuration loader (ks_config_load_buffer, config/), which
 * reads an operator's file at start and at every reload. The input is the whole file. A loaded
 * configuration is also fingerprinted and compared with itself (config/compare.h), as a reload
 * does; a refusal must come with the error list, a success without one.
 */
#include "config/compare.h"
#include "config/config.h"
#include "tests/fuzz/fuzz.h"

static void exercise(const struct ks_config *cfg)
{
    unsigned char fp[KS_CONFIG_FINGERPRINT_LEN];
    char why[256];

    for (size_t i = 0; i < cfg->n_key_stores; i++)
        FUZZ_CHECK(ks_config_key_store_fingerprint(&cfg->key_stores[i], fp) == KS_OK);
    for (size_t i = 0; i < cfg->n_kms_relationships; i++)
        FUZZ_CHECK(ks_config_kms_relationship_fingerprint(&cfg->kms_relationships[i], fp) == KS_OK);
    /* A configuration never differs from itself. */
    FUZZ_CHECK(ks_config_live_change_refused(cfg, cfg, why, sizeof why) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ks_config *cfg = NULL;
    char *errors = NULL;
    ks_status st = ks_config_load_buffer("fuzz.yaml", (const char *)data, size, &cfg, &errors);

    if (st == KS_OK) {
        FUZZ_CHECK(cfg != NULL && errors == NULL);
        exercise(cfg);
    } else {
        FUZZ_CHECK(cfg == NULL && errors != NULL && errors[0] != '\0');
    }
    ks_config_free(cfg);
    free(errors);
    return 0;
}
