/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A throwaway tree for the readers: files written with their parents */
static inline char *tree_new(void) {
        char tmpl[] = "/tmp/iovirt-test-XXXXXX";
        if (!mkdtemp(tmpl))
                return NULL;
        return strdup(tmpl);
}

static inline int tree_write(const char *root, const char *rel, const char *content) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
                *p = '\0';
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        FILE *f = fopen(path, "we");
        if (!f)
                return -errno;
        fputs(content, f);
        return fclose(f) == 0 ? 0 : -errno;
}

static inline int tree_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) flag;
        (void) ftw;
        return remove(path);
}

static inline void tree_free(char *root) {
        if (root)
                nftw(root, tree_rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(root);
}
