/*
 * log.h - the one log of keystored: one JSON object per line, one write(2) per line.
 *
 *   {"time":"2024-05-01T12:00:00.123456Z","level":"info","event":"access","method":"GET",...}
 *
 * Every string (keys included) is escaped on the way in, so no value can end its string early
 * and add a field (the forged access-log field of issue 9): '"', '\\', control characters, DEL and
 * the C1 controls become escapes, and every byte that does not start a well-formed UTF-8
 * sequence becomes \ufffd. Each line is therefore valid JSON and valid UTF-8. A value longer than
 * its cap, or a line longer than KS_LOG_LINE_MAX, is cut at a character boundary (never inside a
 * UTF-8 sequence or an escape) and the line gets "truncated":true.
 *
 * A line is built on the caller's stack (struct ks_log_line) and written with one write(2) under
 * the log's lock, so lines from concurrent threads never interleave; KS_LOG_LINE_MAX is PIPE_BUF,
 * so a line written to a pipe is atomic even against other writers of that pipe.
 * Tokens and key material never go into a log line (docs/architecture.md section 9).
 */
#ifndef KS_COMMON_LOG_H
#define KS_COMMON_LOG_H

#include <stddef.h>

#include "common/status.h"
#include "common/util.h"

enum ks_log_level { KS_LOG_DEBUG = 0, KS_LOG_INFO, KS_LOG_WARN, KS_LOG_ERROR };

#define KS_LOG_LINE_MAX 4096  /* bytes of one line, newline included (Linux PIPE_BUF) */
#define KS_LOG_VALUE_MAX 1024 /* escaped bytes of one string value by default */

struct ks_log;

/*
 * A log writing to fd (borrowed: not closed by ks_log_destroy), dropping events below
 * min_level, stamping lines with clock (NULL: the system clock). Thread-safe once created.
 */
ks_status ks_log_create(int fd, enum ks_log_level min_level, const struct ks_clock *clock,
                        struct ks_log **out, struct ks_error *err);
void ks_log_destroy(struct ks_log *log);

/*
 * The SIGHUP hook: reopens the log's file after a rotation (logrotate moves the file, then sends
 * SIGHUP). A log writing to a descriptor it was given (stderr, the only kind today) has no file
 * of its own to reopen, so this is a no-op that returns KS_OK; a log file option added later
 * reopens here. Thread-safe.
 */
ks_status ks_log_reopen(struct ks_log *log, struct ks_error *err);

/* 1 when an event of level would be written (log may be NULL: never). */
int ks_log_enabled(const struct ks_log *log, enum ks_log_level level);

/* "debug", "info", "warn", "error" (case-sensitive). KS_E_INVALID for anything else. */
ks_status ks_log_level_parse(const char *name, enum ks_log_level *out);
const char *ks_log_level_name(enum ks_log_level level);

/*
 * One line being built. ks_log_begin writes time, level and event; the field calls append one
 * member each; ks_log_end writes the line. Below the minimum level (or with log NULL) every call
 * is a no-op, so callers need no checks.
 */
struct ks_log_line {
    struct ks_log *log; /* NULL: disabled */
    size_t len;
    int truncated;
    char buf[KS_LOG_LINE_MAX];
};

void ks_log_begin(struct ks_log_line *line, struct ks_log *log, enum ks_log_level level,
                  const char *event);
/* A string member; value NULL writes null. Capped at KS_LOG_VALUE_MAX escaped bytes. */
void ks_log_str(struct ks_log_line *line, const char *key, const char *value);
/* len bytes of value (may hold NUL bytes: they are escaped), capped at max escaped bytes. */
void ks_log_strn(struct ks_log_line *line, const char *key, const char *value, size_t len,
                 size_t max);
void ks_log_int(struct ks_log_line *line, const char *key, long long value);
/* A number with three decimals (latencies in milliseconds). */
void ks_log_ms(struct ks_log_line *line, const char *key, double value);
void ks_log_bool(struct ks_log_line *line, const char *key, int value);
void ks_log_end(struct ks_log_line *line);

/*
 * A line for a writer of its own (the audit log, common/audit.h), with the same escaping:
 * ks_log_begin_detached starts {"time":"<time>" (no level, no log: nothing is written), the field
 * calls append as usual, and ks_log_take closes the line ("}\n" included) and returns its length
 * in line->buf instead of writing it.
 */
void ks_log_begin_detached(struct ks_log_line *line, const char *time);
size_t ks_log_take(struct ks_log_line *line);

/* A line with a printf-formatted "msg" member: the common case of a plain message. */
void ks_log_msg(struct ks_log *log, enum ks_log_level level, const char *event, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

/*
 * The escaper behind every string: writes the JSON string content (no quotes) of len bytes of s
 * into out, at most cap bytes and never a partial escape or UTF-8 sequence; out is not
 * NUL-terminated. Returns the bytes written; *truncated (may be NULL) says whether input was
 * left over.
 */
size_t ks_log_escape(const char *s, size_t len, char *out, size_t cap, int *truncated);

/*
 * Copies len bytes of s into out (cap > 0 bytes, NUL-terminated) as valid UTF-8: NUL and bytes
 * that do not start a well-formed sequence become U+FFFD, a sequence cut short at the very end
 * of s (text truncated upstream) is dropped, and a sequence that does not fit is left out whole.
 * For text shown to clients (error messages) that may hold request bytes. Returns the bytes written
 * before the NUL.
 */
size_t ks_log_scrub_utf8(const char *s, size_t len, char *out, size_t cap);

#endif
