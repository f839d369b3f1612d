/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Allocations that fail on purpose.  A test linked with
 *   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=reallocarray,
 *   --wrap=strdup,--wrap=strndup,--wrap=vasprintf,--wrap=asprintf
 * (meson: alloc_fail_link_args) routes every allocation of libiovirt's
 * objects (and its own) through here; alloc_fail_at(N) makes the N-th one
 * from then on fail, as out-of-memory would.  Shared libraries (libc's own
 * insides, json-c, libudev) are not wrapped. */

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static long alloc_fail_index = -1;      /* which allocation fails; -1: none */
static long alloc_count;                /* allocations since alloc_fail_at() */

static inline void alloc_fail_at(long n) {
        alloc_fail_index = n;
        alloc_count = 0;
}

/* How many allocations there were since alloc_fail_at(); stops failing */
static inline long alloc_fail_stop(void) {
        alloc_fail_index = -1;
        return alloc_count;
}

static inline bool alloc_fails(void) {
        return alloc_count++ == alloc_fail_index;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_reallocarray(void *p, size_t n, size_t size);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_vasprintf(char **s, const char *fmt, va_list ap);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_reallocarray(void *p, size_t n, size_t size);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_vasprintf(char **s, const char *fmt, va_list ap);
int __wrap_asprintf(char **s, const char *fmt, ...);

void *__wrap_malloc(size_t n) {
        return alloc_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
        return alloc_fails() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n) {
        return alloc_fails() ? NULL : __real_realloc(p, n);
}

void *__wrap_reallocarray(void *p, size_t n, size_t size) {
        return alloc_fails() ? NULL : __real_reallocarray(p, n, size);
}

char *__wrap_strdup(const char *s) {
        return alloc_fails() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n) {
        return alloc_fails() ? NULL : __real_strndup(s, n);
}

int __wrap_vasprintf(char **s, const char *fmt, va_list ap) {
        if (alloc_fails())
                return -1;      /* *s is undefined then, as glibc says */
        return __real_vasprintf(s, fmt, ap);
}

int __wrap_asprintf(char **s, const char *fmt, ...) {
        va_list ap;
        if (alloc_fails())
                return -1;
        va_start(ap, fmt);
        int r = __real_vasprintf(s, fmt, ap);
        va_end(ap);
        return r;
}
