/*
 * json_scan.h - the one JSON reader for responses that carry secrets: KMS plaintexts
 * (kms/aws_kms.c), metadata credential documents (aws/metadata.c) and awsJson error bodies
 * (aws/client.c). It picks the top-level string members it is asked for out of a JSON object
 * (RFC 8259) and decodes each into a buffer that is wiped when freed; everything else is
 * checked and skipped without being copied. json-c is not used here because it keeps unwiped
 * copies of every string it parses (docs/architecture.md section 9).
 *
 * Strict on what it decodes: escapes are RFC 8259 section 7, a lone surrogate or an escaped NUL
 * (which would cut a C string short) is malformed, and a wanted member given twice is refused,
 * since a response that says two things is not one to act on. Thread-safe (no shared state).
 */
#ifndef KS_AWS_JSON_SCAN_H
#define KS_AWS_JSON_SCAN_H

#include <stddef.h>

/*
 * One top-level member to pick. The caller sets name (NULL: slot unused); the scanner fills the
 * rest. value is the decoded text, NUL-terminated, in a buffer of cap bytes that
 * ks_json_scan_free wipes; it stays NULL when the member is absent or null (awsJson allows null
 * for optional members). A wanted member that is present but not a string is malformed.
 */
struct ks_json_scan_field {
    const char *name;
    char *value;
    size_t len;
    size_t cap;
    int seen;
};

/*
 * Scans the JSON object in json[0..len) and fills the n fields. 0, or -1 when the text is not
 * one well-formed JSON object (trailing bytes included), nests deeper than 32, repeats a wanted
 * member, or memory runs out; on -1 every field is already freed.
 */
int ks_json_scan_object(const char *json, size_t len, struct ks_json_scan_field *fields, size_t n);

/* Wipes and frees the values of the n fields (a no-op for unfilled ones) and resets them. */
void ks_json_scan_free(struct ks_json_scan_field *fields, size_t n);

#endif
