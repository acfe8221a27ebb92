/*
 * profile.h - the parser of the AWS shared credentials and config files
 * (docs/reference/aws-apis.md section 5.2). The provider's profile source (aws/provider.h)
 * finds and reads the files; this unit only understands their text. Thread-safe.
 */
#ifndef KS_AWS_PROFILE_H
#define KS_AWS_PROFILE_H

/* The keys of one profile; each NULL when absent, else a wiped-on-free string. */
struct ks_aws_profile_values {
    char *access_key_id;
    char *secret_access_key;
    char *session_token;
};

/*
 * Parses the text of one file in place (it is modified) and collects the keys of profile:
 * '#' and ';' comment lines, "key = value" properties with keys compared case-insensitively
 * (botocore's configparser lowercases them), inline comments after whitespace, indented
 * continuation lines of a nested property ignored. In the credentials file (config_file 0) a
 * section is [name]; in the config file [profile name], and [default]. A repeated key or
 * section: the last value wins; aws_security_token is the legacy name of aws_session_token.
 * 0, or -1 on allocation failure (v then holds what was collected; clear it).
 */
int ks_aws_profile_parse(char *text, const char *profile, int config_file,
                         struct ks_aws_profile_values *v);

/* Wipes and frees the values and zeroes *v. */
void ks_aws_profile_values_clear(struct ks_aws_profile_values *v);

#endif
