/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test-only preload: after libudev has listed the devices, removes the
 * testbed directory named by $IOVIRT_TEST_VANISH, as if the device had been
 * hot-unplugged between udev's listing and our reading of it. */
#include <dlfcn.h>
#include <ftw.h>
#include <libudev.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

int udev_enumerate_scan_devices(struct udev_enumerate *e) {
        int (*real)(struct udev_enumerate *) = (int (*)(struct udev_enumerate *)) dlsym(
                RTLD_NEXT, "udev_enumerate_scan_devices");
        int r = real(e);
        const char *dir = getenv("UMOCKDEV_DIR"), *victim = getenv("IOVIRT_TEST_VANISH");
        if (r >= 0 && dir && victim) {
                char path[4096];
                snprintf(path, sizeof(path), "%s%s", dir, victim);
                nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        }
        return r;
}
