/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sysfs-write PATH TEXT: one write(2) of TEXT to PATH, as an operator's
 * "echo TEXT > PATH" does; prints the errno name on failure and exits 1.
 * (A shell's echo writes through stdio, which a preload cannot see.) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
        if (argc != 3) {
                fprintf(stderr, "usage: sysfs-write PATH TEXT\n");
                return 2;
        }
        int fd = open(argv[1], O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
                printf("open: %s\n", strerrorname_np(errno));
                return 1;
        }
        if (write(fd, argv[2], strlen(argv[2])) < 0) {
                printf("%s\n", strerrorname_np(errno));
                return 1;
        }
        close(fd);
        printf("ok\n");
        return 0;
}
