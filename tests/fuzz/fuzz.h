/*
 * fuzz.h - what every fuzz target of tests/fuzz/ shares: the libFuzzer entry points (declared
 * here so that -Wmissing-prototypes holds) and small helpers to cut one input into fields.
 *
 * A target is built twice (tests/fuzz/README.md): with clang and libFuzzer (`make fuzz`), and
 * with the project's compiler and driver.c, which replays the checked-in seeds and regression
 * inputs (`make test`). A target therefore uses only LLVMFuzzerTestOneInput and, when it needs
 * one-time state, LLVMFuzzerInitialize; it aborts (FUZZ_CHECK) when an invariant of the code
 * under test is broken, which both builds report as a failure.
 */
#ifndef KS_TESTS_FUZZ_FUZZ_H
#define KS_TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant of the code under test: a broken one aborts with the line (a finding). */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A malloc'd copy of data[0..size) with a NUL after it (the input itself has none). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/*
 * Cuts the next line off *data (up to '\n', a '\r' before it dropped) into a malloc'd
 * NUL-terminated string; *data and *size move past it. The last line needs no '\n'.
 */
static inline char *fuzz_line(const uint8_t **data, size_t *size)
{
    const uint8_t *nl = *size ? memchr(*data, '\n', *size) : NULL;
    size_t len = nl ? (size_t)(nl - *data) : *size;
    char *line = fuzz_cstr(*data, len);
    *data += nl ? len + 1 : len;
    *size -= nl ? len + 1 : len;
    if (len && line[len - 1] == '\r')
        line[len - 1] = '\0';
    return line;
}

#endif
