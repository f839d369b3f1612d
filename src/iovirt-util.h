/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Ownership helpers: our own small versions of the cleanup idiom systemd
 * uses internally (its macros are not part of libsystemd's API). */

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Hand ownership over: returns the pointer and clears the variable. */
#define TAKE_PTR(p)                         \
        ({                                  \
                __typeof__(p) _p_ = (p);    \
                (p) = NULL;                 \
                _p_;                        \
        })

#define TAKE_FD(fd)                         \
        ({                                  \
                int _fd_ = (fd);            \
                (fd) = -EBADF;              \
                _fd_;                       \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}
#define _cleanup_closedir_ _cleanup_(closedirp)

/* Declares fooo_freep() for a destructor fooo_free() that accepts NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p) {   \
                if (*p)                         \
                        func(*p);               \
        }

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

static inline const char *strna(const char *s) {
        return s ? s : "n/a";
}

static inline const char *strempty(const char *s) {
        return s ? s : "";
}

/* Growable array append: *array of *n elements grows by one; returns a
 * pointer to the new, zeroed element, or NULL on OOM. */
void *iovirt_grow(void **array, size_t *n, size_t *allocated, size_t size);
#define GROW(array, n, allocated) \
        ((__typeof__(array)) iovirt_grow((void **) &(array), &(n), &(allocated), sizeof((array)[0])))

/* Appends a newly formatted string to the list *v of *n strings. */
int iovirt_strv_pushf(char ***v, size_t *n, const char *fmt, ...) _printf_(3, 4);

/* Replaces *reason (when reason is not NULL) with a new sentence, and
 * returns r: "return iovirt_set_reason(reason, r, ...)".  A sentence that
 * cannot be made leaves *reason NULL; the error r still says what failed. */
int iovirt_set_reason(char **reason, int r, const char *fmt, ...) _printf_(3, 4);

/* Adds to *reason what also happened: "FIRST" SEP "MORE".  Out of memory,
 * the first part stays: it says what failed first. */
void iovirt_reason_append(char **reason, const char *sep, const char *more);

/* A sentence built piece by piece.  An allocation that fails marks it
 * failed: every later add returns -ENOMEM and take returns NULL, so a
 * message is either whole or reported as missing, never cut short. */
typedef struct IovirtText {
        char *s;
        size_t len;
        bool failed;
} IovirtText;

int iovirt_text_add(IovirtText *t, const char *fmt, ...) _printf_(2, 3);
/* Adds line, after a newline unless it is the first; NULL adds nothing. */
int iovirt_text_line(IovirtText *t, const char *line);
/* The text (NULL when empty or failed); t is empty afterwards. */
char *iovirt_text_take(IovirtText *t);
void iovirt_text_clear(IovirtText *t);
