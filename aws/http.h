/*
 * http.h - the libcurl pieces every AWS request shares: the one curl_global_init of the process
 * and header lists that may carry secrets (session tokens, metadata tokens) and are therefore
 * wiped before they are freed. Used by aws/client.c and aws/metadata.c; thread-safe.
 */
#ifndef KS_AWS_HTTP_H
#define KS_AWS_HTTP_H

#include <curl/curl.h>

#include "common/status.h"

/* Runs curl_global_init once per process (pthread_once); later calls return the first result.
 * KS_OK, or KS_E_INTERNAL with err filled. */
ks_status ks_aws_http_init(struct ks_error *err);

/* Appends "name: value" to *list (value may be a secret; the temporary line is wiped).
 * 0, or -1 with *list unchanged. */
int ks_aws_http_header_add(struct curl_slist **list, const char *name, const char *value);

/* Wipes every line, then frees the list. NULL is a no-op. */
void ks_aws_http_headers_free(struct curl_slist *list);

#endif
