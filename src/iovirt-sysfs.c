/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>

#include "iovirt-names.h"
#include "iovirt-sysfs.h"
#include "iovirt-util.h"

int iovirt_sysfs_read_at(int dirfd, const char *name, char *buf, size_t size) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        /* pread: a sysfs attribute is produced whole at offset 0 (and
         * umockdev's preload wraps read() but not pread()) */
        ssize_t l = pread(fd, buf, size - 1, 0);
        if (l < 0)
                return -errno;
        while (l > 0 && (buf[l - 1] == '\n' || buf[l - 1] == '\0'))
                l--;
        buf[l] = '\0';
        return (int) l;
}

int iovirt_sysfs_link_name_at(int dirfd, const char *name, char *buf, size_t size) {
        char target[PATH_MAX];
        ssize_t l = readlinkat(dirfd, name, target, sizeof(target) - 1);
        if (l < 0)
                return -errno;
        target[l] = '\0';
        const char *base = strrchr(target, '/');
        base = base ? base + 1 : target;
        size_t bl = strlen(base);
        if (bl == 0 || bl >= size)
                return -EINVAL;
        memcpy(buf, base, bl + 1);
        return (int) bl;
}

static int attr_path(char path[static PATH_MAX], const char *dir, const char *name) {
        int l = snprintf(path, PATH_MAX, "%s/%s", dir, name);
        return l < 0 || l >= PATH_MAX ? -ENAMETOOLONG : 0;
}

int iovirt_sysfs_read(const char *dir, const char *name, char *buf, size_t size) {
        char path[PATH_MAX];
        int r = attr_path(path, dir, name);
        return r < 0 ? r : iovirt_sysfs_read_at(AT_FDCWD, path, buf, size);
}

int iovirt_sysfs_link_name(const char *dir, const char *name, char *buf, size_t size) {
        char path[PATH_MAX];
        int r = attr_path(path, dir, name);
        return r < 0 ? r : iovirt_sysfs_link_name_at(AT_FDCWD, path, buf, size);
}

int iovirt_read_fd(int fd, size_t max, char **ret, size_t *ret_size) {
        size_t n = 0, allocated = 4096;
        _cleanup_free_ char *buf = malloc(allocated);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (n + 1 >= allocated) {
                        /* room for one byte past max: enough to tell it is too much */
                        size_t want = allocated * 2 > max + 2 ? max + 2 : allocated * 2;
                        char *p = realloc(buf, want);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        allocated = want;
                }
                ssize_t l = read(fd, buf + n, allocated - n - 1);
                if (l < 0 && errno == EINTR)
                        continue;
                if (l < 0)
                        return -errno;
                if (l == 0)
                        break;
                n += (size_t) l;
                if (n > max)
                        return -EFBIG;
        }
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = n;
        return 0;
}

int iovirt_read_file_sized(const char *path, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return iovirt_read_fd(fd, IOVIRT_READ_MAX, ret, ret_size);
}

int iovirt_read_file(const char *path, char **ret) {
        return iovirt_read_file_sized(path, ret, NULL);
}

char *iovirt_root_path(const char *path) {
        const char *root = getenv(IOVIRT_ENV_ROOT);
        char *p;
        if (!root || !*root)
                root = "";
        if (asprintf(&p, "%s%s", root, path) < 0)
                return NULL;
        return p;
}

int iovirt_parse_int(const char *s, int *ret) {
        char *end;
        if (!s || !*s)
                return -EINVAL;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno != 0 || end == s || (*end && strcmp(end, "\n") != 0) || v < INT_MIN || v > INT_MAX)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

int iovirt_sysfs_write(const char *path, const char *text) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        size_t n = strlen(text);
        ssize_t l = write(fd, text, n);
        if (l < 0)
                return -errno;
        return (size_t) l == n ? 0 : -EIO;
}
