/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "iovirt-bind.h"
#include "iovirt-fault.h"
#include "iovirt-names.h"
#include "iovirt-sysfs.h"

extern char **environ;

static uint64_t now_usec(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t) t.tv_sec * 1000000 + (uint64_t) t.tv_nsec / 1000;
}

int iovirt_bind_read(const char *address, char **driver, char **driver_override) {
        char dir[PATH_MAX], buf[256];
        int r;

        snprintf(dir, sizeof(dir), SYSFS_PCI_DEVICES "/%s", address);
        if (access(dir, F_OK) < 0)
                return -ENODEV;
        *driver = *driver_override = NULL;
        r = iovirt_sysfs_link_name(dir, LINK_DRIVER, buf, sizeof(buf));
        if (r >= 0 && !(*driver = strdup(buf)))
                return -ENOMEM;
        if (r < 0 && r != -ENOENT)
                return r;
        /* an override that cannot be read is not "none": it would be lost on the way back */
        r = iovirt_sysfs_read(dir, ATTR_DRIVER_OVERRIDE, buf, sizeof(buf));
        if (r < 0 && r != -ENOENT)
                return r;
        if (r > 0 && !streq_ptr(buf, "(null)") && !(*driver_override = strdup(buf)))
                return -ENOMEM;
        return 0;
}

/* One sysfs write; on failure *reason names the file, the text and the errno */
static int write_sysfs(const char *path, const char *text, char **reason) {
        int r = iovirt_sysfs_write(path, text);
        if (r < 0)
                return iovirt_set_reason(reason, r, "Writing '%s' to %s failed: %s", text[0] == '\n' ? "\\n" : text, path,
                                  strerror(-r));
        return 0;
}

static int write_attr(const char *address, const char *attr, const char *text, char **reason) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), SYSFS_PCI_DEVICES "/%s/%s", address, attr);
        return write_sysfs(path, text, reason);
}

static int write_driver_file(const char *driver, const char *file, const char *address, char **reason) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), SYSFS_PCI_DRIVERS "/%s/%s", driver, file);
        return write_sysfs(path, address, reason);
}

/* Polls the driver link: probing is synchronous for nearly every PCI
 * driver, but a driver may defer.  want NULL: any driver. */
static int wait_driver(const char *address, const char *want, uint64_t timeout_usec, char **got) {
        uint64_t end = now_usec() + timeout_usec, delay = 100;
        for (;;) {
                _cleanup_free_ char *drv = NULL, *over = NULL;
                int r = iovirt_bind_read(address, &drv, &over);
                if (r < 0)
                        return r;
                if (drv && (!want || streq_ptr(drv, want)))
                        return 0;
                if (now_usec() >= end) {
                        *got = TAKE_PTR(drv);
                        return -ETIMEDOUT;
                }
                struct timespec ts = { 0, (long) delay * 1000 };
                nanosleep(&ts, NULL);
                delay = delay < 10000 ? delay * 2 : delay;
        }
}

int iovirt_bind_load_vfio(char **reason) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), SYSFS_PCI_DRIVERS "/" DRIVER_VFIO_PCI);
        if (access(path, F_OK) == 0)
                return 0;

        const char *modprobe = getenv(IOVIRT_ENV_MODPROBE) ?: MODPROBE;
        char *argv[] = { (char *) modprobe, (char *) "vfio-pci", NULL };
        pid_t pid;
        /* from a transaction's thread, whose mask may block SIGTERM: modprobe gets none blocked */
        posix_spawnattr_t attr;
        sigset_t none;
        sigemptyset(&none);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
        int status, r = posix_spawn(&pid, modprobe, NULL, &attr, argv, environ);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return iovirt_set_reason(reason, -r, "Could not run %s to load vfio-pci: %s", modprobe, strerror(r));
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return iovirt_set_reason(reason, -errno, "Lost track of %s: %m", modprobe);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || access(path, F_OK) < 0)
                return iovirt_set_reason(reason, -ENOENT,
                                  "The vfio-pci driver is not loaded and '%s vfio-pci' failed; is the module "
                                  "installed for this kernel (CONFIG_VFIO_PCI)?", modprobe);
        return 0;
}

int iovirt_bind_to_vfio(const char *address, uint64_t timeout_usec, char **reason) {
        _cleanup_free_ char *drv = NULL, *over = NULL, *got = NULL;
        int r;

        r = iovirt_bind_read(address, &drv, &over);
        if (r < 0)
                return iovirt_set_reason(reason, r, "%s has gone away", address);
        if (streq_ptr(drv, DRIVER_VFIO_PCI))
                return 0;
        if (!streq_ptr(over, DRIVER_VFIO_PCI)) {
                r = write_attr(address, ATTR_DRIVER_OVERRIDE, DRIVER_VFIO_PCI, reason);
                if (r < 0)
                        return r;
        }
        iovirt_fault_point("assign.override");
        if (drv) {
                r = write_driver_file(drv, "unbind", address, reason);
                if (r < 0)
                        return r;
        }
        iovirt_fault_point("assign.unbind");
        r = write_sysfs(SYSFS_PCI_DRIVERS_PROBE, address, reason);
        if (r < 0)
                return r;
        iovirt_fault_point("assign.probe");
        r = wait_driver(address, DRIVER_VFIO_PCI, timeout_usec, &got);
        if (r == -ETIMEDOUT)
                return iovirt_set_reason(reason, -EIO, "vfio-pci did not take %s (it is %s%s); the kernel log (journalctl -k) "
                                                "says why", address, got ? "on " : "without a driver", got ? got : "");
        if (r < 0)
                return iovirt_set_reason(reason, r, "%s has gone away", address);
        iovirt_fault_point("assign.bound");
        return 0;
}

int iovirt_bind_restore(const IovirtFunctionRecord *f, uint64_t timeout_usec, char **reason) {
        _cleanup_free_ char *drv = NULL, *over = NULL, *got = NULL;
        const char *want_override = f->original_known ? f->driver_override : NULL;
        int r;

        r = iovirt_bind_read(f->address, &drv, &over);
        if (r < 0)
                return iovirt_set_reason(reason, r, "%s has gone away", f->address);
        if (drv && !streq_ptr(drv, DRIVER_VFIO_PCI) && !(f->original_known && streq_ptr(drv, f->driver)))
                return iovirt_set_reason(reason, -EBUSY, "%s is on %s, which iovirt did not bind; it was left there",
                                  f->address, drv);

        if (streq_ptr(drv, DRIVER_VFIO_PCI) && !(f->original_known && streq_ptr(f->driver, DRIVER_VFIO_PCI))) {
                r = write_driver_file(DRIVER_VFIO_PCI, "unbind", f->address, reason);
                if (r < 0)
                        return r;
                drv = mfree(drv);
        }
        iovirt_fault_point("release.unbind");
        if (!streq_ptr(over, want_override)) {
                r = write_attr(f->address, ATTR_DRIVER_OVERRIDE, want_override ? want_override : "\n", reason);
                if (r < 0)
                        return r;
        }
        iovirt_fault_point("release.override");
        if (drv || (f->original_known && !f->driver))
                return 0;       /* back where it was: on its driver, or unbound as before */

        r = write_sysfs(SYSFS_PCI_DRIVERS_PROBE, f->address, reason);
        if (r < 0)
                return r;
        iovirt_fault_point("release.probe");
        r = wait_driver(f->address, f->original_known ? f->driver : NULL, timeout_usec, &got);
        if (r == -ETIMEDOUT) {
                if (!f->original_known)
                        return iovirt_set_reason(reason, -ENOENT, "No driver took %s back (its original driver was not "
                                                           "recorded)", f->address);
                return iovirt_set_reason(reason, -EIO, "%s did not go back to %s (it is %s%s); is the %s module loaded? "
                                                 "The kernel log (journalctl -k) says why",
                                  f->address, f->driver, got ? "on " : "without a driver", got ? got : "", f->driver);
        }
        if (r < 0)
                return iovirt_set_reason(reason, r, "%s has gone away", f->address);
        return 0;
}

int iovirt_bind_wait_node(int group, bool present, uint64_t timeout_usec) {
        char path[PATH_MAX];
        uint64_t end = now_usec() + timeout_usec;
        snprintf(path, sizeof(path), DEV_VFIO "/%d", group);
        for (;;) {
                if ((access(path, F_OK) == 0) == present)
                        return 0;
                if (now_usec() >= end)
                        return -ETIMEDOUT;
                struct timespec ts = { 0, 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}
