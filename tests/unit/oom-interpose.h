/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Allocations that fail on purpose, in the whole process: for tests of
 * code whose shared libraries (json-c, libxml2) allocate inside
 * themselves, out of reach of alloc-fail.h's ld --wrap.  Include it in
 * one test program only: it defines malloc, calloc and realloc. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* json-c and libxml2 are shared libraries that allocate inside themselves, out of reach of
 * alloc-fail.h's ld --wrap: malloc, calloc and realloc are defined here
 * instead, for everyone (glibc lets a program replace them, and its own
 * strdup(), duplocale() and the rest call them), passing on to glibc's.
 * Not under AddressSanitizer, whose malloc this one would shadow while its
 * free() got glibc's pointers; nor under plain valgrind, which replaces a
 * program's malloc with its own (run valgrind with
 * --soname-synonyms=somalloc=nouserintercepts to keep this one, then it
 * checks the failure paths for leaks too).  oom_usable() tells. */

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define OOM_INTERPOSED 0
#else
#define OOM_INTERPOSED 1
#endif

static long oom_index = -1;     /* which allocation fails; -1: none */
static long oom_count;          /* allocations since oom_fail_at() */

static inline void oom_fail_at(long n) {
        oom_count = 0;
        oom_index = n;
}

/* How many allocations there were since oom_fail_at(); stops failing */
static inline long oom_stop(void) {
        oom_index = -1;
        return oom_count;
}

#if OOM_INTERPOSED
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);

static bool oom_fails(void) {
        if (oom_index < 0 || oom_count++ != oom_index)
                return false;
        errno = ENOMEM;         /* as glibc's do */
        return true;
}

void *malloc(size_t n) {
        return oom_fails() ? NULL : __libc_malloc(n);
}

void *calloc(size_t n, size_t size) {
        return oom_fails() ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t n) {
        return oom_fails() ? NULL : __libc_realloc(p, n);
}
#endif

/* Whether the first allocation from here on really fails */
static inline bool oom_usable(void) {
        char *(*volatile dup)(const char *) = strdup;
        oom_fail_at(0);
        char *p = dup("x");
        oom_stop();
        free(p);
        return !p;
}

static inline void skip_unless_oom_usable(void) {
        if (oom_usable())
                return;
        print_message("    skipped: allocations cannot be made to fail here (%s)\n",
                      OOM_INTERPOSED ? "valgrind without --soname-synonyms=somalloc=nouserintercepts?"
                                     : "AddressSanitizer");
        skip();
}
