/*
 * profile.c - the shared credentials and config files (docs/reference/aws-apis.md section 5.2):
 * the INI-like parser of aws/profile.h and the profile source of aws/provider.h. The file text
 * is read into a wiped buffer, parsed in place and wiped; values are copied into wiped buffers.
 */
#include "aws/profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/secret.h"
#include "aws/provider.h"

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
    return s;
}

void ks_aws_profile_values_clear(struct ks_aws_profile_values *v)
{
    ks_secret_free_string(v->access_key_id);
    ks_secret_free_string(v->secret_access_key);
    ks_secret_free_string(v->session_token);
    memset(v, 0, sizeof(*v));
}

/*
 * Does section header text (between the brackets, trimmed) name the profile? In the
 * credentials file sections are [name]; in the config file [profile name], except [default]
 * (SDKREF-FILES; botocore also accepts [profile default]).
 */
static int section_matches(const char *section, const char *profile, int config_file)
{
    if (!config_file) {
        return strcmp(section, profile) == 0;
    }
    if (strcmp(profile, "default") == 0 && strcmp(section, "default") == 0) {
        return 1;
    }
    if (strncmp(section, "profile", 7) != 0 || (section[7] != ' ' && section[7] != '\t')) {
        return 0;
    }
    const char *name = section + 7;
    while (*name == ' ' || *name == '\t') {
        name++;
    }
    return strcmp(name, profile) == 0;
}

static int set_value(char **slot, const char *value)
{
    char *v = ks_aws_secret_strdup(value);
    if (v == NULL) {
        return -1;
    }
    ks_secret_free_string(*slot);
    *slot = v;
    return 0;
}

int ks_aws_profile_parse(char *text, const char *profile, int config_file,
                         struct ks_aws_profile_values *v)
{
    int in_profile = 0, after_property = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        int indented = line[0] == ' ' || line[0] == '\t';
        char *t = trim(line);
        if (t[0] == '\0' || t[0] == '#' || t[0] == ';') {
            continue;
        }
        if (t[0] == '[') {
            char *close = strchr(t, ']');
            after_property = 0;
            if (close == NULL) {
                in_profile = 0; /* malformed header: ignore the section */
                continue;
            }
            *close = '\0';
            in_profile = section_matches(trim(t + 1), profile, config_file);
            continue;
        }
        if (indented && after_property) {
            continue; /* a sub-property ("s3 =\n  max_concurrent_requests = 20") */
        }
        char *eq = strchr(t, '=');
        if (eq == NULL) {
            continue;
        }
        after_property = 1;
        if (!in_profile) {
            continue;
        }
        *eq = '\0';
        char *key = trim(t);
        char *value = eq + 1;
        for (char *c = value; *c != '\0'; c++) {
            if ((*c == '#' || *c == ';') && c > value && (c[-1] == ' ' || c[-1] == '\t')) {
                *c = '\0';
                break;
            }
        }
        value = trim(value);
        char **slot = NULL;
        if (strcasecmp(key, "aws_access_key_id") == 0) {
            slot = &v->access_key_id;
        } else if (strcasecmp(key, "aws_secret_access_key") == 0) {
            slot = &v->secret_access_key;
        } else if (strcasecmp(key, "aws_session_token") == 0 ||
                   (strcasecmp(key, "aws_security_token") == 0 && v->session_token == NULL)) {
            slot = &v->session_token;
        }
        if (slot != NULL && value[0] != '\0' && set_value(slot, value) != 0) {
            return -1;
        }
    }
    return 0;
}

/* The path from env var name, else ~/.aws/<file>; a leading "~/" is expanded. 0, or -1. */
static int profile_path(const struct ks_aws_source_env *env, const char *env_name, const char *file,
                        char *out, size_t out_size)
{
    const char *path = ks_aws_env_get(env, env_name);
    const char *home = ks_aws_env_get(env, "HOME");
    int n;
    if (path != NULL && strncmp(path, "~/", 2) != 0) {
        n = snprintf(out, out_size, "%s", path);
    } else if (home == NULL) {
        return -1;
    } else if (path != NULL) {
        n = snprintf(out, out_size, "%s%s", home, path + 1);
    } else {
        n = snprintf(out, out_size, "%s/.aws/%s", home, file);
    }
    return (n > 0 && (size_t)n < out_size) ? 0 : -1;
}

ks_status ks_aws_profile_fetch(const struct ks_aws_source_env *env, const char *profile,
                               struct ks_aws_credentials *out, struct ks_error *err)
{
    static const struct {
        const char *env;
        const char *file;
        int config_file;
    } files[] = {
        /* 5.2: the credentials file is read first and wins. */
        {"AWS_SHARED_CREDENTIALS_FILE", "credentials", 0},
        {"AWS_CONFIG_FILE", "config", 1},
    };
    int found_file = 0;
    for (size_t i = 0; i < 2; i++) {
        char path[4096];
        if (profile_path(env, files[i].env, files[i].file, path, sizeof(path)) != 0) {
            continue;
        }
        char *text = NULL;
        size_t len = 0, cap = 0;
        int rc = ks_aws_read_secret_file(path, &text, &len, &cap);
        if (rc < 0) {
            return ks_error_set(err, KS_E_UNAVAILABLE,
                                "AWS credentials unavailable: cannot read AWS %s file",
                                files[i].file);
        }
        if (rc == 0) {
            continue;
        }
        found_file = 1;
        struct ks_aws_profile_values v = {0};
        int prc = ks_aws_profile_parse(text, profile, files[i].config_file, &v);
        ks_secret_free(text, cap);
        if (prc != 0) {
            ks_aws_profile_values_clear(&v);
            return ks_error_set(err, KS_E_INTERNAL, "out of memory");
        }
        if (v.access_key_id == NULL && v.secret_access_key == NULL) {
            ks_aws_profile_values_clear(&v);
            continue;
        }
        ks_status st = KS_OK;
        if (!ks_aws_key_id_valid(v.access_key_id) || v.secret_access_key == NULL ||
            !ks_aws_header_safe(v.secret_access_key) ||
            (v.session_token != NULL && !ks_aws_header_safe(v.session_token))) {
            st = ks_error_set(err, KS_E_UNAVAILABLE,
                              "AWS profile '%s' in the %s file has partial credentials", profile,
                              files[i].file);
        } else {
            out->access_key_id = v.access_key_id;
            out->secret_access_key = v.secret_access_key;
            out->session_token = v.session_token;
            out->expiration = 0;
            memset(&v, 0, sizeof(v));
        }
        ks_aws_profile_values_clear(&v);
        return st;
    }
    return ks_error_set(err, KS_E_UNAVAILABLE,
                        found_file ? "AWS profile '%s' has no credentials"
                                   : "no AWS credentials or config file (profile '%s')",
                        profile);
}
