/*
 * http.c - libcurl set-up and wiped header lists (aws/http.h).
 */
#include "aws/http.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* curl_global_init must run once before any handle exists and is not thread-safe itself; a
 * pthread_once is the one piece of static state in aws/. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

ks_status ks_aws_http_init(struct ks_error *err)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK)
        return ks_error_set(err, KS_E_INTERNAL, "libcurl initialisation failed");
    return KS_OK;
}

int ks_aws_http_header_add(struct curl_slist **list, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    if (line == NULL)
        return -1;
    snprintf(line, n, "%s: %s", name, value);
    struct curl_slist *next = curl_slist_append(*list, line);
    OPENSSL_cleanse(line, n);
    free(line);
    if (next == NULL)
        return -1;
    *list = next;
    return 0;
}

void ks_aws_http_headers_free(struct curl_slist *list)
{
    for (struct curl_slist *l = list; l != NULL; l = l->next)
        OPENSSL_cleanse(l->data, strlen(l->data));
    curl_slist_free_all(list);
}
