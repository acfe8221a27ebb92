/*
 * driver.c - a stand-in for libFuzzer's main, so that `make test` replays every target over
 * its seed corpus and regression inputs with the project's own compiler (no clang needed), in
 * the plain and in the sanitizer build (tests/fuzz/README.md).
 *
 *   <target> FILE_OR_DIR...
 *
 * Calls LLVMFuzzerInitialize (when the target has one), then LLVMFuzzerTestOneInput once per
 * regular file (directories are read one level deep). Each input is copied into a buffer of
 * exactly its size, so that AddressSanitizer sees a read past the end. Exit status 0 when every
 * input ran (a crash aborts the process), 1 on an unreadable argument or no input at all.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"

/* Weak: targets without one-time state do not define it. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL, *input;
    size_t len = 0, cap = 0, n;

    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    do {
        if (len == cap) {
            unsigned char *more = realloc(buf, cap = cap ? 2 * cap : 4096);
            if (!more)
                abort();
            buf = more;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    fclose(f);
    /* Exactly len bytes (malloc(0) may return NULL: allocate one byte then, pass none). */
    input = malloc(len ? len : 1);
    if (!input)
        abort();
    memcpy(input, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(input, len);
    free(input);
    return 0;
}

static int run_dir(const char *dir, size_t *count)
{
    struct dirent **names;
    char path[4096];
    struct stat st;
    int n = scandir(dir, &names, NULL, alphasort), rc = 0;

    if (n < 0) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(path) != 0)
                rc = -1;
            else
                (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    struct stat st;
    size_t count = 0;
    int rc = 0;

    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            rc = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (run_dir(argv[i], &count) != 0)
                rc = 1;
        } else if (run_file(argv[i]) != 0) {
            rc = 1;
        } else {
            count++;
        }
    }
    printf("%s: %zu inputs replayed\n", argv[0], count);
    return rc != 0 || count == 0;
}
