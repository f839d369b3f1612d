/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/* The one place where iovirt reads sysfs, procfs and device nodes.  Every
 * call returns a negative errno on failure and never follows a link it was
 * not asked to follow.  Paths under /sys and /dev are used as they are (umockdev
 * redirects them in tests); /proc and /lib paths are prefixed with
 * $IOVIRT_ROOT so that tests can swap them too. */

/* Reads a small attribute of the directory dirfd into buf, without the
 * trailing newline.  Returns its length. */
int iovirt_sysfs_read_at(int dirfd, const char *name, char *buf, size_t size);

/* Reads the link dirfd/name and stores the last component of its target
 * (e.g. "e1000e" for driver -> ../../bus/pci/drivers/e1000e).  Returns its
 * length, -ENOENT when there is no such link. */
int iovirt_sysfs_link_name_at(int dirfd, const char *name, char *buf, size_t size);

/* The same for the attribute name of the directory dir (a canonical sysfs
 * path, as udev gives it: no link is followed on the way). */
int iovirt_sysfs_read(const char *dir, const char *name, char *buf, size_t size);
int iovirt_sysfs_link_name(const char *dir, const char *name, char *buf, size_t size);

/* Reads a whole (small) file into a new NUL-terminated string. */
int iovirt_read_file(const char *path, char **ret);
/* The files read whole: less than 16 MiB */
#define IOVIRT_READ_MAX ((size_t) 16 * 1024 * 1024 - 2)
/* All of fd until its end, at most max bytes (-EFBIG past it); NUL-terminated */
int iovirt_read_fd(int fd, size_t max, char **ret, size_t *ret_size);
/* The same, with the length read (the text may hold NUL bytes); at most 16 MiB, -EFBIG past it. */
int iovirt_read_file_sized(const char *path, char **ret, size_t *ret_size);

/* path prefixed with $IOVIRT_ROOT (or as it is without it); a new string. */
char *iovirt_root_path(const char *path);

/* Parses a decimal integer, allowing a trailing newline.  -EINVAL otherwise. */
int iovirt_parse_int(const char *s, int *ret);

/* One write(2) of text to an existing sysfs file (no link followed at the
 * end, nothing created), as the kernel expects attributes to be written. */
int iovirt_sysfs_write(const char *path, const char *text);
