/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the fuzz targets share: the entry point libFuzzer (and replay.c)
 * calls, an assertion that survives NDEBUG and says what failed, and a
 * NUL-terminated copy of an input for parsers that take C strings. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property the target checks beyond "no crash": abort() is what libFuzzer
 * and the replay both report as a failure, with this line in the log. */
#define fuzz_assert(cond)                                                                     \
        do {                                                                                  \
                if (!(cond)) {                                                                \
                        fprintf(stderr, "%s:%d: %s: property violated: %s\n", __FILE__, __LINE__, \
                                __func__, #cond);                                             \
                        abort();                                                              \
                }                                                                             \
        } while (0)

/* The input as a C string: NULL when it holds a NUL byte (a string from the
 * command line, a D-Bus string or a file read as text cannot) or memory ran
 * out.  The caller frees it. */
static inline char *fuzz_string(const uint8_t *data, size_t size) {
        if (memchr(data, 0, size))
                return NULL;
        char *s = malloc(size + 1);
        if (!s)
                return NULL;
        memcpy(s, data, size);
        s[size] = '\0';
        return s;
}
