/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>

#include "iovirt-util.h"

void *iovirt_grow(void **array, size_t *n, size_t *allocated, size_t size) {
        if (*n >= *allocated) {
                size_t a = *allocated ? *allocated * 2 : 16;
                void *p = reallocarray(*array, a, size);
                if (!p)
                        return NULL;
                *array = p;
                *allocated = a;
        }
        void *e = (char *) *array + (*n)++ * size;
        memset(e, 0, size);
        return e;
}

int iovirt_strv_pushf(char ***v, size_t *n, const char *fmt, ...) {
        char *s;
        va_list ap;
        va_start(ap, fmt);
        int l = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (l < 0)
                return -ENOMEM;
        char **p = reallocarray(*v, *n + 1, sizeof(char *));
        if (!p) {
                free(s);
                return -ENOMEM;
        }
        *v = p;
        p[(*n)++] = s;
        return 0;
}

int iovirt_text_add(IovirtText *t, const char *fmt, ...) {
        char *piece;
        va_list ap;

        if (t->failed)
                return -ENOMEM;
        va_start(ap, fmt);
        int l = vasprintf(&piece, fmt, ap);
        va_end(ap);
        char *n = l < 0 ? NULL : realloc(t->s, t->len + (size_t) l + 1);
        if (!n) {
                if (l >= 0)
                        free(piece);
                t->failed = true;
                return -ENOMEM;
        }
        memcpy(n + t->len, piece, (size_t) l + 1);
        t->s = n;
        t->len += (size_t) l;
        free(piece);
        return 0;
}

int iovirt_text_line(IovirtText *t, const char *line) {
        return line ? iovirt_text_add(t, "%s%s", t->len ? "\n" : "", line) : 0;
}

char *iovirt_text_take(IovirtText *t) {
        if (t->failed)
                t->s = mfree(t->s);
        char *s = TAKE_PTR(t->s);
        *t = (IovirtText) {};
        return s;
}

void iovirt_text_clear(IovirtText *t) {
        free(t->s);
        *t = (IovirtText) {};
}

void iovirt_reason_append(char **reason, const char *sep, const char *more) {
        char *joined;
        if (!reason || asprintf(&joined, "%s%s%s", strna(*reason), sep, strna(more)) < 0)
                return;
        free(*reason);
        *reason = joined;
}

int iovirt_set_reason(char **reason, int r, const char *fmt, ...) {
        if (reason) {
                va_list ap;
                va_start(ap, fmt);
                free(*reason);
                if (vasprintf(reason, fmt, ap) < 0)
                        *reason = NULL;
                va_end(ap);
        }
        return r;
}
