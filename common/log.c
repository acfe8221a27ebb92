/*
 * log.c - JSON-lines log (log.h). Escaping works on whole units: one ASCII byte, one escape or
 * one well-formed UTF-8 sequence (RFC 3629 section 4: no overlongs, no surrogates, nothing above
 * U+10FFFF) is written completely or not at all, which is what keeps truncated lines valid.
 */
#include "common/log.h"

#include "common/utf8.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Room kept at the end of every line for ,"truncated":true}\n */
#define LINE_TAIL (sizeof ",\"truncated\":true}\n" - 1)
#define REPLACEMENT_ESCAPE "\\ufffd"

struct ks_log {
    int fd;
    enum ks_log_level min_level;
    const struct ks_clock *clock;
    pthread_mutex_t lock; /* one writer at a time: a line is never split by another */
};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

ks_status ks_log_create(int fd, enum ks_log_level min_level, const struct ks_clock *clock,
                        struct ks_log **out, struct ks_error *err)
{
    struct ks_log *log;
    if (fd < 0 || (int)min_level < KS_LOG_DEBUG || min_level > KS_LOG_ERROR)
        return ks_error_set(err, KS_E_INVALID, "log: bad descriptor or level");
    log = calloc(1, sizeof *log);
    if (!log)
        return ks_error_set(err, KS_E_INTERNAL, "out of memory");
    if (pthread_mutex_init(&log->lock, NULL) != 0) {
        free(log);
        return ks_error_set(err, KS_E_INTERNAL, "log: cannot create its lock");
    }
    log->fd = fd;
    log->min_level = min_level;
    log->clock = clock ? clock : ks_clock_system();
    *out = log;
    return KS_OK;
}

void ks_log_destroy(struct ks_log *log)
{
    if (!log)
        return;
    pthread_mutex_destroy(&log->lock);
    free(log);
}

ks_status ks_log_reopen(struct ks_log *log, struct ks_error *err)
{
    /* The descriptor is borrowed (log.h): nothing of ours to reopen. */
    (void)log;
    (void)err;
    return KS_OK;
}

int ks_log_enabled(const struct ks_log *log, enum ks_log_level level)
{
    return log && level >= log->min_level && level <= KS_LOG_ERROR;
}

ks_status ks_log_level_parse(const char *name, enum ks_log_level *out)
{
    size_t i;
    for (i = 0; name && i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum ks_log_level)i;
            return KS_OK;
        }
    }
    return KS_E_INVALID;
}

const char *ks_log_level_name(enum ks_log_level level)
{
    return (int)level >= KS_LOG_DEBUG && level <= KS_LOG_ERROR ? level_names[level] : "error";
}

/* --- UTF-8 and escaping ---------------------------------------------------------------- */

/* Length (2..4) of the well-formed multi-byte sequence at p, with its code point; 0 if none
 * (the one UTF-8 decoder, common/utf8.h). */
static size_t utf8_sequence(const unsigned char *p, size_t len, unsigned *cp)
{
    uint32_t v;
    size_t n = ks_utf8_decode((const char *)p, len, &v);
    if (n < 2)
        return 0;
    *cp = v;
    return n;
}

/*
 * The escaped form of the unit at s: writes it into unit (at least 7 bytes) and returns its
 * length; *used is how many input bytes it stands for.
 */
static size_t escape_unit(const unsigned char *s, size_t len, char unit[8], size_t *used)
{
    unsigned c = s[0], cp = 0;
    const char *e = NULL;
    size_t n;

    *used = 1;
    if (c >= 0x80) {
        n = utf8_sequence(s, len, &cp);
        if (n == 0) {
            memcpy(unit, REPLACEMENT_ESCAPE, 6);
            return 6;
        }
        *used = n;
        if (cp <= 0x9f) /* C1 controls: a terminal may act on them */
            return (size_t)snprintf(unit, 8, "\\u%04x", cp);
        memcpy(unit, s, n);
        return n;
    }
    if (c == '"')
        e = "\\\"";
    else if (c == '\\')
        e = "\\\\";
    else if (c == '\n')
        e = "\\n";
    else if (c == '\r')
        e = "\\r";
    else if (c == '\t')
        e = "\\t";
    if (e) {
        memcpy(unit, e, 2);
        return 2;
    }
    if (c < 0x20 || c == 0x7f)
        return (size_t)snprintf(unit, 8, "\\u%04x", c);
    unit[0] = (char)c;
    return 1;
}

/* Length of s[0..len) without a trailing sequence that a byte cut left incomplete (a lead byte
 * followed by fewer continuation bytes than it announces). */
static size_t without_cut_sequence(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t back = 0, need = 1;
    unsigned lead;

    while (back < 3 && back < len && (p[len - 1 - back] & 0xc0) == 0x80)
        back++;
    if (back == len)
        return len;
    lead = p[len - 1 - back];
    if (lead >= 0xc2 && lead <= 0xdf)
        need = 2;
    else if (lead >= 0xe0 && lead <= 0xef)
        need = 3;
    else if (lead >= 0xf0 && lead <= 0xf4)
        need = 4;
    return need > back + 1 ? len - 1 - back : len;
}

size_t ks_log_escape(const char *s, size_t len, char *out, size_t cap, int *truncated)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n = 0;

    while (i < len) {
        char unit[8];
        size_t used, ulen = escape_unit(p + i, len - i, unit, &used);
        if (n + ulen > cap)
            break;
        memcpy(out + n, unit, ulen);
        n += ulen;
        i += used;
    }
    if (truncated)
        *truncated = i < len;
    return n;
}

size_t ks_log_scrub_utf8(const char *s, size_t len, char *out, size_t cap)
{
    static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n = 0;

    if (cap == 0)
        return 0;
    len = without_cut_sequence(s, len); /* text cut upstream (a %.200s, a full buffer) */
    while (i < len) {
        unsigned cp;
        size_t used = 1, seq = p[i] >= 0x80 ? utf8_sequence(p + i, len - i, &cp) : 0;
        const char *src = s + i;
        size_t slen = 1;
        if (seq > 0) {
            used = slen = seq;
        } else if (p[i] >= 0x80 || p[i] == 0) {
            src = replacement;
            slen = 3;
        }
        if (n + slen + 1 > cap)
            break;
        memcpy(out + n, src, slen);
        n += slen;
        i += used;
    }
    out[n] = '\0';
    return n;
}

/* --- building a line ------------------------------------------------------------------- */

static size_t room(const struct ks_log_line *line)
{
    return KS_LOG_LINE_MAX - LINE_TAIL - line->len;
}

static int append(struct ks_log_line *line, const char *s, size_t n)
{
    if (n > room(line))
        return -1;
    memcpy(line->buf + line->len, s, n);
    line->len += n;
    return 0;
}

/* ,"key": - the whole member is dropped (and the line marked) when even this does not fit. */
static int member(struct ks_log_line *line, const char *key)
{
    size_t start = line->len;
    int cut;
    if (append(line, ",\"", 2) != 0)
        goto full;
    line->len += ks_log_escape(key, strlen(key), line->buf + line->len, room(line), &cut);
    if (cut || append(line, "\":", 2) != 0)
        goto full;
    return 0;
full:
    line->len = start;
    line->truncated = 1;
    return -1;
}

/* Writes v's decimal digits ending at end (exclusive), at least min_digits of them; returns the
 * first. The access line's numbers and time go through here rather than snprintf, which showed
 * in the hit path's profile (bench/RESULTS.md section 7). */
static char *digits_before(char *end, unsigned long long v, int min_digits)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
        min_digits--;
    } while (v || min_digits > 0);
    return end;
}

/* ks_timestamp_iso8601's text. The date and time of the current second are kept per thread, so
 * gmtime_r runs once a second per thread. */
static void timestamp(uint64_t epoch_us, char out[28])
{
    static _Thread_local uint64_t cached_sec = UINT64_MAX;
    static _Thread_local char prefix[20];
    uint64_t sec = epoch_us / 1000000u;

    if (sec != cached_sec) {
        ks_timestamp_iso8601(epoch_us, out);
        memcpy(prefix, out, 19);
        cached_sec = sec;
    }
    memcpy(out, prefix, 19);
    out[19] = '.';
    digits_before(out + 26, epoch_us % 1000000u, 6);
    out[26] = 'Z';
    out[27] = '\0';
}

void ks_log_begin(struct ks_log_line *line, struct ks_log *log, enum ks_log_level level,
                  const char *event)
{
    char when[28];
    line->log = ks_log_enabled(log, level) ? log : NULL;
    line->len = 0;
    line->truncated = 0;
    if (!line->log)
        return;
    timestamp(log->clock->now_us(log->clock->ctx), when);
    append(line, "{\"time\":\"", 9);
    append(line, when, 27);
    append(line, "\",\"level\":\"", 11);
    append(line, level_names[level], strlen(level_names[level]));
    append(line, "\"", 1);
    ks_log_str(line, "event", event);
}

void ks_log_strn(struct ks_log_line *line, const char *key, const char *value, size_t len,
                 size_t max)
{
    size_t start = line->len, cap;
    int cut;

    if (!line->log || member(line, key) != 0)
        return;
    if (!value) {
        if (append(line, "null", 4) != 0) {
            line->len = start;
            line->truncated = 1;
        }
        return;
    }
    if (append(line, "\"", 1) != 0 || room(line) < 1) {
        line->len = start;
        line->truncated = 1;
        return;
    }
    cap = room(line) - 1 < max ? room(line) - 1 : max; /* - 1: the closing quote */
    line->len += ks_log_escape(value, len, line->buf + line->len, cap, &cut);
    append(line, "\"", 1);
    line->truncated |= cut;
}

void ks_log_str(struct ks_log_line *line, const char *key, const char *value)
{
    ks_log_strn(line, key, value, value ? strlen(value) : 0, KS_LOG_VALUE_MAX);
}

static void raw_member(struct ks_log_line *line, const char *key, const char *text, size_t n)
{
    size_t start = line->len;
    if (!line->log || member(line, key) != 0)
        return;
    if (append(line, text, n) != 0) {
        line->len = start;
        line->truncated = 1;
    }
}

void ks_log_int(struct ks_log_line *line, const char *key, long long value)
{
    char tmp[32], *end = tmp + sizeof tmp, *p;
    /* Through unsigned: -LLONG_MIN does not fit a long long. */
    unsigned long long mag =
        value < 0 ? 0ull - (unsigned long long)value : (unsigned long long)value;

    p = digits_before(end, mag, 1);
    if (value < 0)
        *--p = '-';
    raw_member(line, key, p, (size_t)(end - p));
}

void ks_log_ms(struct ks_log_line *line, const char *key, double value)
{
    char tmp[48], *end = tmp + sizeof tmp, *p;
    unsigned long long thousandths;
    int negative = value < 0;

    /* JSON has no NaN or infinity; a clock that went backwards is still a number. */
    if (value != value || value > 1e15 || value < -1e15) {
        raw_member(line, key, "0", 1);
        return;
    }
    /* Rounded half away from zero to three decimals, as "%.3f" prints these values. */
    thousandths = (unsigned long long)((negative ? -value : value) * 1000.0 + 0.5);
    p = digits_before(end, thousandths % 1000u, 3);
    *--p = '.';
    p = digits_before(p, thousandths / 1000u, 1);
    if (negative && thousandths)
        *--p = '-';
    raw_member(line, key, p, (size_t)(end - p));
}

void ks_log_bool(struct ks_log_line *line, const char *key, int value)
{
    raw_member(line, key, value ? "true" : "false", value ? 4 : 5);
}

/* One write(2) under the lock; a short write (signal, full disk) continues where it stopped. */
static void write_line(struct ks_log *log, const char *buf, size_t len)
{
    size_t off = 0;
    pthread_mutex_lock(&log->lock);
    while (off < len) {
        ssize_t n = write(log->fd, buf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* nowhere left to report a failing log */
        off += (size_t)n;
    }
    pthread_mutex_unlock(&log->lock);
}

/* Closes the line: the truncation mark and "}\n". The tail room was kept by room(): these
 * copies cannot overflow. */
static void close_line(struct ks_log_line *line)
{
    static const char tail[] = ",\"truncated\":true";
    if (line->truncated) {
        memcpy(line->buf + line->len, tail, sizeof tail - 1);
        line->len += sizeof tail - 1;
    }
    memcpy(line->buf + line->len, "}\n", 2);
    line->len += 2;
}

void ks_log_end(struct ks_log_line *line)
{
    if (!line->log)
        return;
    close_line(line);
    write_line(line->log, line->buf, line->len);
    line->log = NULL;
}

/* Marks a detached line as enabled; it is never written through or locked. */
static struct ks_log detached_marker;

void ks_log_begin_detached(struct ks_log_line *line, const char *time)
{
    line->log = &detached_marker;
    line->len = 0;
    line->truncated = 0;
    append(line, "{\"time\":\"", 9);
    line->len += ks_log_escape(time, strlen(time), line->buf + line->len, 64, NULL);
    append(line, "\"", 1);
}

size_t ks_log_take(struct ks_log_line *line)
{
    if (!line->log)
        return 0;
    close_line(line);
    line->log = NULL;
    return line->len;
}

void ks_log_msg(struct ks_log *log, enum ks_log_level level, const char *event, const char *fmt,
                ...)
{
    struct ks_log_line line;
    char text[KS_LOG_LINE_MAX];
    va_list ap;
    int n;
    size_t len;

    if (!ks_log_enabled(log, level))
        return;
    va_start(ap, fmt);
    n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    len = n < 0 ? 0 : (size_t)n;
    ks_log_begin(&line, log, level, event);
    if (len >= sizeof text) {
        len = without_cut_sequence(text, sizeof text - 1);
        line.truncated = 1;
    }
    ks_log_strn(&line, "msg", text, len, KS_LOG_LINE_MAX);
    ks_log_end(&line);
}
