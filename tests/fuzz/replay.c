/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runs a fuzz target's corpus as an ordinary test, with any compiler: every
 * file named on the command line, or every file in a named directory (not
 * recursing), goes once through LLVMFuzzerTestOneInput, one TAP line each.
 * A property a target asserts aborts the run; the "# input" comment before
 * each file names the one that did.  An empty or missing corpus fails: a
 * replay that ran nothing proves nothing. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "iovirt-util.h"

/* Defined by targets that need set-up once (libFuzzer calls it too) */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static unsigned n_run;

static int read_all(const char *path, uint8_t **ret, size_t *ret_size) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        size_t size = 0, allocated = 0;
        _cleanup_free_ uint8_t *buf = NULL;
        for (;;) {
                if (allocated - size < 4096) {
                        uint8_t *n = realloc(buf, allocated + 65536);
                        if (!n)
                                return -ENOMEM;
                        buf = n;
                        allocated += 65536;
                }
                size_t l = fread(buf + size, 1, allocated - size, f);
                size += l;
                if (l == 0)
                        break;
        }
        if (ferror(f))
                return -EIO;
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

static int run_file(const char *path) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0;
        printf("# input %s\n", path);
        fflush(stdout);
        int r = read_all(path, &data, &size);
        if (r < 0) {
                printf("not ok %u - %s: %s\n", ++n_run, path, strerror(-r));
                return r;
        }
        /* libFuzzer hands over a buffer of exactly size bytes; so do we,
         * so that ASan sees a read past the end */
        uint8_t *exact = malloc(size ? size : 1);
        if (!exact)
                return -ENOMEM;
        memcpy(exact, data, size);
        LLVMFuzzerTestOneInput(exact, size);
        free(exact);
        printf("ok %u - %s (%zu bytes)\n", ++n_run, path, size);
        return 0;
}

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The directory's regular files in name order (the same order every run) */
static int run_dir(const char *dir) {
        _cleanup_closedir_ DIR *d = opendir(dir);
        if (!d)
                return -errno;
        char **names = NULL;
        size_t n = 0, allocated = 0;
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char **slot = GROW(names, n, allocated);
                if (!slot || asprintf(slot, "%s/%s", dir, de->d_name) < 0) {
                        if (slot)
                                n--;
                        r = -ENOMEM;
                        break;
                }
        }
        if (r >= 0)
                qsort(names, n, sizeof(char *), compare_names);
        for (size_t i = 0; i < n; i++) {
                struct stat st;
                if (r >= 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
                        int k = run_file(names[i]);
                        if (k < 0)
                                r = k;
                }
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char **argv) {
        int r = 0;
        if (argc < 2) {
                fprintf(stderr, "usage: %s CORPUS-DIR|FILE...\n", argv[0]);
                return 2;
        }
        if (LLVMFuzzerInitialize)
                LLVMFuzzerInitialize(&argc, &argv);
        for (int i = 1; i < argc; i++) {
                struct stat st;
                int k;
                if (stat(argv[i], &st) < 0)
                        k = -errno;
                else
                        k = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(argv[i]);
                if (k < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(-k));
                        r = k;
                }
        }
        if (n_run == 0) {
                printf("not ok 1 - no input in the corpus: a replay that runs nothing proves nothing\n1..1\n");
                return 1;
        }
        printf("1..%u\n", n_run);
        return r < 0 ? 1 : 0;
}
