/*
 * test_log.c - common/log.h: escaping (quotes, controls, C1, invalid UTF-8), truncation at
 * character boundaries, whole lines that parse as JSON, level filtering, one line per event under
 * concurrent writers; and the client-side scrubber.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

static uint64_t fixed_now(void *ctx)
{
    (void)ctx;
    return 1700000000123456ull;
}

static const struct ks_clock fixed_clock = {fixed_now, NULL};

static char *escape(const char *s, size_t len, size_t cap, int *cut)
{
    static char out[4096];
    size_t n = ks_log_escape(s, len, out, cap, cut);
    out[n] = '\0';
    return out;
}

/* --- escaping -------------------------------------------------------------------------- */

Test(log_escape, json_specials_and_controls)
{
    int cut;
    cr_expect_str_eq(escape("a\"b\\c", 5, 100, &cut), "a\\\"b\\\\c");
    cr_expect_str_eq(escape("\n\r\t", 3, 100, &cut), "\\n\\r\\t");
    cr_expect_str_eq(escape("\x01\x1b[31m\x7f", 7, 100, &cut), "\\u0001\\u001b[31m\\u007f");
    cr_expect_str_eq(escape("x\0y", 3, 100, &cut), "x\\u0000y");
    cr_expect_eq(cut, 0);
}

Test(log_escape, forged_field_stays_inside_its_string)
{
    const char *forged = "X\",\"status\":200,\"forged\":\"1";
    cr_expect_str_eq(escape(forged, strlen(forged), 200, NULL),
                     "X\\\",\\\"status\\\":200,\\\"forged\\\":\\\"1");
}

Test(log_escape, valid_utf8_kept_c1_escaped)
{
    /* e-acute, a 4-byte key emoji, U+2028, and U+0085 (C1 NEL: escaped for terminals) */
    const char *s = "\xc3\xa9\xf0\x9f\x94\x91\xe2\x80\xa8\xc2\x85";
    cr_expect_str_eq(escape(s, strlen(s), 100, NULL),
                     "\xc3\xa9\xf0\x9f\x94\x91\xe2\x80\xa8\\u0085");
}

Test(log_escape, invalid_utf8_replaced)
{
    /* a lone continuation byte, 0xff, an overlong '/', a surrogate, above U+10FFFF, a cut 3-byte
     * sequence at the end: every byte that starts no well-formed sequence -> \ufffd */
    cr_expect_str_eq(escape("\x80", 1, 100, NULL), "\\ufffd");
    cr_expect_str_eq(escape("a\xff"
                            "b",
                            3, 100, NULL),
                     "a\\ufffdb");
    cr_expect_str_eq(escape("\xc0\xaf", 2, 100, NULL), "\\ufffd\\ufffd");
    cr_expect_str_eq(escape("\xed\xa0\x80", 3, 100, NULL), "\\ufffd\\ufffd\\ufffd");
    cr_expect_str_eq(escape("\xf4\x90\x80\x80", 4, 100, NULL), "\\ufffd\\ufffd\\ufffd\\ufffd");
    cr_expect_str_eq(escape("ok\xe2\x82", 4, 100, NULL), "ok\\ufffd\\ufffd");
}

Test(log_escape, truncation_never_splits_a_unit)
{
    int cut = 0;
    /* "a" + e-acute (2 bytes): a cap of 2 leaves the sequence out whole */
    cr_expect_str_eq(escape("a\xc3\xa9", 3, 2, &cut), "a");
    cr_expect_eq(cut, 1);
    cr_expect_str_eq(escape("a\xc3\xa9", 3, 3, &cut), "a\xc3\xa9");
    cr_expect_eq(cut, 0);
    /* an escape is 2 or 6 bytes: never half of one */
    cr_expect_str_eq(escape("ab\"", 3, 3, &cut), "ab");
    cr_expect_eq(cut, 1);
    cr_expect_str_eq(escape("a\x01", 2, 6, &cut), "a");
    cr_expect_eq(cut, 1);
    cr_expect_str_eq(escape("a\xf0\x9f\x94\x91", 5, 4, &cut), "a");
    cr_expect_eq(cut, 1);
}

/* --- scrubbing (client-facing text) ------------------------------------------------------ */

Test(log_scrub, invalid_bytes_become_u_fffd_and_cut_tail_is_dropped)
{
    char out[64];
    cr_expect_eq(ks_log_scrub_utf8("k\xff"
                                   "s",
                                   3, out, sizeof out),
                 5);
    cr_expect_str_eq(out, "k\xef\xbf\xbds");
    ks_log_scrub_utf8("a\0b", 3, out, sizeof out);
    cr_expect_str_eq(out, "a\xef\xbf\xbd"
                          "b");
    /* a message cut inside a sequence by %.Ns: the half sequence is dropped, not shown */
    ks_log_scrub_utf8("name '\xe2\x82", 8, out, sizeof out);
    cr_expect_str_eq(out, "name '");
    ks_log_scrub_utf8("\xc3\xa9t\xc3\xa9", 5, out, sizeof out);
    cr_expect_str_eq(out, "\xc3\xa9t\xc3\xa9");
    cr_expect(ks_utf8_valid(out, strlen(out)));
}

Test(log_scrub, small_buffer_keeps_sequences_whole)
{
    char out[4];
    /* room for 3 bytes + NUL: "a" + e-acute fits, the next e-acute does not */
    cr_expect_eq(ks_log_scrub_utf8("a\xc3\xa9\xc3\xa9", 5, out, sizeof out), 3);
    cr_expect_str_eq(out, "a\xc3\xa9");
    cr_expect_eq(ks_log_scrub_utf8("\xff", 1, out, 3), 0); /* U+FFFD needs 3 + NUL */
    cr_expect_str_eq(out, "");
}

/* --- lines ----------------------------------------------------------------------------- */

struct capture {
    int fds[2];
    struct ks_log *log;
};

static void capture_open(struct capture *c, enum ks_log_level min)
{
    struct ks_error err;
    cr_assert_eq(pipe(c->fds), 0);
    cr_assert_eq(ks_log_create(c->fds[1], min, &fixed_clock, &c->log, &err), KS_OK);
}

/* Closes the writer and reads everything written (at most one pipe buffer). */
static char *capture_close(struct capture *c, size_t *len)
{
    static char buf[65536];
    size_t n = 0;
    ssize_t r;
    ks_log_destroy(c->log);
    close(c->fds[1]);
    while ((r = read(c->fds[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    close(c->fds[0]);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static struct json_object *parse_line(const char *line, size_t len)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    o = json_tokener_parse_ex(tok, line, (int)len);
    cr_assert_eq(json_tokener_get_error(tok), json_tokener_success, "not JSON: %.300s", line);
    cr_assert_eq(json_tokener_get_parse_end(tok), len, "data after the object: %.300s", line);
    json_tokener_free(tok);
    cr_assert(json_object_is_type(o, json_type_object));
    return o;
}

static const char *member(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return NULL;
    return json_object_get_string(v);
}

Test(log_line, fields_time_level_event_and_escaped_values)
{
    struct capture c;
    struct ks_log_line line;
    struct json_object *o;
    size_t len;
    char *text;

    capture_open(&c, KS_LOG_INFO);
    ks_log_begin(&line, c.log, KS_LOG_WARN, "access");
    ks_log_str(&line, "method", "X\",\"status\":200,\"forged\":\"1");
    ks_log_strn(&line, "path", "/a\n\xff", 4, KS_LOG_VALUE_MAX);
    ks_log_str(&line, "tenant", NULL);
    ks_log_int(&line, "status", 405);
    ks_log_ms(&line, "latencyMs", 1.25);
    ks_log_bool(&line, "aborted", 1);
    ks_log_end(&line);
    text = capture_close(&c, &len);

    cr_assert_gt(len, 0);
    cr_expect_eq(text[len - 1], '\n');
    cr_expect_null(memchr(text, '\n', len - 1), "one line");
    cr_expect(ks_utf8_valid(text, len));
    o = parse_line(text, len - 1);
    cr_expect_str_eq(member(o, "time"), "2023-11-14T22:13:20.123456Z");
    cr_expect_str_eq(member(o, "level"), "warn");
    cr_expect_str_eq(member(o, "event"), "access");
    cr_expect_str_eq(member(o, "method"), "X\",\"status\":200,\"forged\":\"1");
    cr_expect_str_eq(member(o, "path"), "/a\n\xef\xbf\xbd");
    cr_expect_str_eq(member(o, "status"), "405");
    cr_expect_str_eq(member(o, "latencyMs"), "1.250");
    cr_expect_str_eq(member(o, "aborted"), "true");
    cr_expect_null(member(o, "forged"));
    cr_expect_null(member(o, "truncated"));
    cr_expect_eq(json_object_object_length(o), 9);
    json_object_put(o);
}

Test(log_line, below_minimum_level_writes_nothing)
{
    struct capture c;
    struct ks_log_line line;
    size_t len;

    capture_open(&c, KS_LOG_WARN);
    cr_expect_not(ks_log_enabled(c.log, KS_LOG_INFO));
    cr_expect(ks_log_enabled(c.log, KS_LOG_ERROR));
    cr_expect_not(ks_log_enabled(NULL, KS_LOG_ERROR));
    ks_log_begin(&line, c.log, KS_LOG_INFO, "access");
    ks_log_str(&line, "method", "GET");
    ks_log_end(&line);
    ks_log_msg(c.log, KS_LOG_DEBUG, "x", "y");
    ks_log_msg(c.log, KS_LOG_ERROR, "kept", "n=%d", 3);
    capture_close(&c, &len);
    cr_expect_eq(len, strlen("{\"time\":\"2023-11-14T22:13:20.123456Z\",\"level\":\"error\","
                             "\"event\":\"kept\",\"msg\":\"n=3\"}\n"));
}

Test(log_line, long_value_capped_and_marked)
{
    struct capture c;
    struct ks_log_line line;
    struct json_object *o;
    char *big = malloc(10000);
    size_t len;
    char *text;

    memset(big, 'x', 10000);
    capture_open(&c, KS_LOG_DEBUG);
    ks_log_begin(&line, c.log, KS_LOG_INFO, "e");
    ks_log_strn(&line, "v", big, 10000, 100);
    ks_log_str(&line, "after", "kept");
    ks_log_end(&line);
    text = capture_close(&c, &len);
    o = parse_line(text, len - 1);
    cr_expect_eq(strlen(member(o, "v")), 100);
    cr_expect_str_eq(member(o, "after"), "kept");
    cr_expect_str_eq(member(o, "truncated"), "true");
    json_object_put(o);
    free(big);
}

Test(log_line, line_cap_cuts_at_a_character_and_stays_valid)
{
    struct capture c;
    struct ks_log_line line;
    struct json_object *o;
    size_t n = 3000, i, len;
    char *wide = malloc(2 * n); /* 3000 x e-acute: 6000 bytes, over the line cap */
    char *text;

    for (i = 0; i < n; i++)
        memcpy(wide + 2 * i, "\xc3\xa9", 2);
    capture_open(&c, KS_LOG_DEBUG);
    for (i = 0; i < 3; i++) {
        ks_log_begin(&line, c.log, KS_LOG_INFO, "e");
        /* shift by one byte per line so that the cut lands at different offsets */
        ks_log_strn(&line, "pad", "abc", i, 10);
        ks_log_strn(&line, "v", wide, 2 * n, KS_LOG_LINE_MAX);
        ks_log_str(&line, "dropped", "no room left");
        ks_log_end(&line);
    }
    text = capture_close(&c, &len);
    cr_expect(ks_utf8_valid(text, len), "output is not valid UTF-8");
    for (i = 0; i < 3; i++) {
        char *nl = strchr(text, '\n');
        cr_assert_not_null(nl);
        cr_expect_leq((size_t)(nl - text) + 1, KS_LOG_LINE_MAX);
        o = parse_line(text, (size_t)(nl - text));
        cr_expect_str_eq(member(o, "truncated"), "true");
        cr_expect_null(member(o, "dropped"));
        cr_expect_eq(strlen(member(o, "v")) % 2, 0, "a sequence was cut");
        json_object_put(o);
        text = nl + 1;
    }
    free(wide);
}

Test(log_line, msg_over_the_line_cuts_before_a_split_sequence)
{
    struct capture c;
    struct json_object *o;
    char *wide = malloc(9001);
    size_t i, len;
    char *text;

    for (i = 0; i < 4500; i++)
        memcpy(wide + 2 * i, "\xc3\xa9", 2);
    wide[9000] = '\0';
    capture_open(&c, KS_LOG_DEBUG);
    ks_log_msg(c.log, KS_LOG_INFO, "e", "x%s", wide); /* 'x' shifts the cut into a sequence */
    text = capture_close(&c, &len);
    cr_expect(ks_utf8_valid(text, len));
    cr_expect_leq(len, KS_LOG_LINE_MAX);
    o = parse_line(text, len - 1);
    cr_expect_str_eq(member(o, "truncated"), "true");
    json_object_put(o);
    free(wide);
}

Test(log_level, names_round_trip_and_unknown_refused)
{
    enum ks_log_level l;
    cr_expect_eq(ks_log_level_parse("debug", &l), KS_OK);
    cr_expect_eq(l, KS_LOG_DEBUG);
    cr_expect_eq(ks_log_level_parse("error", &l), KS_OK);
    cr_expect_str_eq(ks_log_level_name(l), "error");
    cr_expect_eq(ks_log_level_parse("WARN", &l), KS_E_INVALID);
    cr_expect_eq(ks_log_level_parse("", &l), KS_E_INVALID);
    cr_expect_eq(ks_log_level_parse(NULL, &l), KS_E_INVALID);
}

/* --- concurrency ----------------------------------------------------------------------- */

#define WRITERS 8
#define LINES_EACH 200

static void *writer(void *arg)
{
    struct ks_log *log = arg;
    char value[3000];
    int i;
    memset(value, 'w', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    for (i = 0; i < LINES_EACH; i++) {
        struct ks_log_line line;
        ks_log_begin(&line, log, KS_LOG_INFO, "concurrent");
        ks_log_int(&line, "i", i);
        ks_log_strn(&line, "v", value, sizeof value - 1, KS_LOG_LINE_MAX);
        ks_log_end(&line);
    }
    return NULL;
}

Test(log_line, concurrent_writers_never_interleave)
{
    char path[] = "/tmp/keystored-test-log-XXXXXX";
    int fd = mkstemp(path);
    struct ks_log *log;
    struct ks_error err;
    pthread_t t[WRITERS];
    FILE *f;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int i, count = 0;

    cr_assert_geq(fd, 0);
    cr_assert_eq(ks_log_create(fd, KS_LOG_INFO, &fixed_clock, &log, &err), KS_OK);
    for (i = 0; i < WRITERS; i++)
        pthread_create(&t[i], NULL, writer, log);
    for (i = 0; i < WRITERS; i++)
        pthread_join(t[i], NULL);
    ks_log_destroy(log);
    close(fd);
    f = fopen(path, "r");
    cr_assert_not_null(f);
    while ((n = getline(&line, &cap, f)) > 0) {
        struct json_object *o;
        cr_assert_eq(line[n - 1], '\n');
        o = parse_line(line, (size_t)n - 1);
        cr_expect_eq(strlen(member(o, "v")), 2999);
        json_object_put(o);
        count++;
    }
    free(line);
    fclose(f);
    unlink(path);
    cr_expect_eq(count, WRITERS * LINES_EACH);
}
