/*
 * test_http_metrics.c - the HTTP front end's counters (handlers/http_metrics.h): bounded labels
 * (route templates, "-" for no route, "other" for an invented method or an unlisted status),
 * the histogram's buckets, sum and count, the in-flight gauge, and requests that got no answer.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/http_metrics.h"

static const char *const routes[] = {"/healthz", "/v1/keystores/{ks}"};

static char *render(const struct ks_http_metrics *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    ks_http_metrics_write(m, f);
    cr_assert_eq(fclose(f), 0);
    return text;
}

static void expect_line(const char *text, const char *line)
{
    char *want = malloc(strlen(line) + 3);
    snprintf(want, strlen(line) + 3, "\n%s\n", line);
    cr_expect(strstr(text, want) != NULL, "missing line: %s\nin:\n%s", line, text);
    free(want);
}

Test(http_metrics, labels_are_bounded)
{
    struct ks_http_metrics *m;
    struct ks_error err;
    char *text;

    cr_assert_eq(ks_http_metrics_create(routes, 2, &m, &err), KS_OK);
    cr_expect_eq(ks_http_metrics_enter(m), 1);
    ks_http_metrics_leave(m, 1, "GET", 200, 1500);
    ks_http_metrics_enter(m);
    ks_http_metrics_leave(m, 1, "GET", 404, 20000);
    ks_http_metrics_enter(m);
    ks_http_metrics_leave(m, -1, "BREW", 405, 10);
    ks_http_metrics_enter(m);
    ks_http_metrics_leave(m, 7, "PUT", 299, 10); /* out-of-range route, unlisted status */
    ks_http_metrics_enter(m);
    ks_http_metrics_leave(m, 0, "GET", 0, 10); /* no answer: not counted */
    cr_expect_eq(ks_http_metrics_enter(m), 1, "every leave left");
    ks_http_metrics_rate_limited(m);
    ks_http_metrics_shed(m);
    ks_http_metrics_shed(m);
    text = render(m);
    expect_line(text, "keystored_http_requests_total{route=\"/v1/keystores/{ks}\",method=\"GET\","
                      "status=\"200\"} 1");
    expect_line(text, "keystored_http_requests_total{route=\"/v1/keystores/{ks}\",method=\"GET\","
                      "status=\"404\"} 1");
    expect_line(text,
                "keystored_http_requests_total{route=\"-\",method=\"other\",status=\"405\"} 1");
    expect_line(text,
                "keystored_http_requests_total{route=\"-\",method=\"PUT\",status=\"other\"} 1");
    cr_expect(strstr(text, "BREW") == NULL, "an invented method became a label");
    cr_expect(strstr(text, "route=\"/healthz\"") == NULL, "a request without an answer counted");
    /* 1.5 ms and 20 ms: buckets le=0.001 0, le=0.0025 1, le=0.025 2 */
    expect_line(text, "keystored_http_request_duration_seconds_bucket{route=\"/v1/keystores/{ks}\","
                      "method=\"GET\",le=\"0.001\"} 0");
    expect_line(text, "keystored_http_request_duration_seconds_bucket{route=\"/v1/keystores/{ks}\","
                      "method=\"GET\",le=\"0.0025\"} 1");
    expect_line(text, "keystored_http_request_duration_seconds_bucket{route=\"/v1/keystores/{ks}\","
                      "method=\"GET\",le=\"0.025\"} 2");
    expect_line(text, "keystored_http_request_duration_seconds_bucket{route=\"/v1/keystores/{ks}\","
                      "method=\"GET\",le=\"+Inf\"} 2");
    expect_line(text, "keystored_http_request_duration_seconds_sum{route=\"/v1/keystores/{ks}\","
                      "method=\"GET\"} 0.021500");
    expect_line(text, "keystored_http_request_duration_seconds_count{route=\"/v1/keystores/{ks}\","
                      "method=\"GET\"} 2");
    expect_line(text, "keystored_http_requests_in_flight 1");
    expect_line(text, "keystored_http_rate_limited_requests_total 1");
    expect_line(text, "keystored_http_shed_requests_total 2");
    free(text);
    ks_http_metrics_destroy(m);
}

Test(http_metrics, null_writes_empty_families)
{
    char *text = render(NULL);
    cr_expect(strstr(text, "# TYPE keystored_http_requests_total counter\n") != NULL);
    expect_line(text, "keystored_http_requests_in_flight 0");
    free(text);
}
