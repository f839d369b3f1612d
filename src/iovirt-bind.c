/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
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
#include "iovirt-variant.h"

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

/* The name driver goes by in /sys/bus/pci/drivers: as it is, then with
 * '-' as '_' (libvirt's fallback for names written either way), then the
 * pci:NAME that /sys/module/MODULE/drivers lists (libvirt's
 * virPCIDeviceFindDriver).  -ENOENT when it is not there. */
static int driver_name(const char *driver, const char *module, char buf[static NAME_MAX + 1]) {
        char path[PATH_MAX];

        snprintf(buf, NAME_MAX + 1, "%s", driver);
        for (int pass = 0; pass < 2; pass++) {
                if (pass == 1)
                        for (char *p = buf; *p; p++)
                                if (*p == '-')
                                        *p = '_';
                snprintf(path, sizeof(path), SYSFS_PCI_DRIVERS "/%s", buf);
                if (access(path, F_OK) == 0)
                        return 0;
        }
        if (!module)
                return -ENOENT;
        snprintf(path, sizeof(path), SYSFS_MODULE "/%s/drivers", module);
        _cleanup_closedir_ DIR *dir = opendir(path);
        if (!dir)
                return -ENOENT;
        for (struct dirent *de; (de = readdir(dir));) {
                char drv[PATH_MAX];
                if (strncmp(de->d_name, "pci:", 4) != 0 || !iovirt_variant_name_valid(de->d_name + 4))
                        continue;
                snprintf(drv, sizeof(drv), SYSFS_PCI_DRIVERS "/%s", de->d_name + 4);
                if (access(drv, F_OK) == 0) {
                        snprintf(buf, NAME_MAX + 1, "%s", de->d_name + 4);
                        return 0;
                }
        }
        return -ENOENT;
}

/* modprobe NAME; 0 when it exited 0 */
static int run_modprobe(const char *name, const char *driver, char **reason) {
        const char *modprobe = getenv(IOVIRT_ENV_MODPROBE) ?: MODPROBE;
        char *argv[] = { (char *) modprobe, (char *) name, NULL };
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
                return iovirt_set_reason(reason, -r, "Could not run %s to load %s: %s", modprobe, driver, strerror(r));
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return iovirt_set_reason(reason, -errno, "Lost track of %s: %m", modprobe);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ENOENT;
}

int iovirt_bind_load_driver(const char *driver, const char *module, char **ret_name, char **reason) {
        char name[NAME_MAX + 1];
        bool vfio_pci = streq_ptr(driver, DRIVER_VFIO_PCI);
        /* never a name modprobe could take for an option */
        if (!iovirt_variant_name_valid(driver) || (module && !iovirt_variant_name_valid(module)))
                return iovirt_set_reason(reason, -EINVAL, "'%s' (module '%s') is not a driver name iovirt binds",
                                         strna(driver), strna(module));
        const char *modprobe = getenv(IOVIRT_ENV_MODPROBE) ?: MODPROBE;
        /* modprobe takes either spelling; vfio-pci as operators type it */
        const char *arg = vfio_pci || !module ? driver : module;

        int r = driver_name(driver, module, name);
        if (r == -ENOENT) {
                r = run_modprobe(arg, driver, reason);
                if (r >= 0)
                        r = driver_name(driver, module, name);
                if (r == -ENOENT) {
                        if (vfio_pci)
                                return iovirt_set_reason(reason, -ENOENT,
                                                         "The vfio-pci driver is not loaded and '%s vfio-pci' failed; is "
                                                         "the module installed for this kernel (CONFIG_VFIO_PCI)?",
                                                         modprobe);
                        return iovirt_set_reason(reason, -ENOENT,
                                                 "The VFIO variant driver %s is not loaded and '%s %s' did not load it; "
                                                 "is its module installed for this kernel? (--driver vfio-pci binds "
                                                 "vfio-pci instead)", driver, modprobe, arg);
                }
        }
        if (r < 0)
                return r;
        *ret_name = strdup(name);
        return *ret_name ? 0 : -ENOMEM;
}

int iovirt_bind_to_vfio(const char *address, const char *driver, uint64_t timeout_usec, char **reason) {
        _cleanup_free_ char *drv = NULL, *over = NULL, *got = NULL;
        int r;

        r = iovirt_bind_read(address, &drv, &over);
        if (r < 0)
                return iovirt_set_reason(reason, r, "%s has gone away", address);
        if (streq_ptr(drv, driver))
                return 0;
        /* a variant driver never autoprobes (its IDs are for driver_override
         * only): the override is the way in, as for vfio-pci */
        if (!streq_ptr(over, driver)) {
                r = write_attr(address, ATTR_DRIVER_OVERRIDE, driver, reason);
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
        r = wait_driver(address, driver, timeout_usec, &got);
        if (r == -ETIMEDOUT)
                return iovirt_set_reason(reason, -EIO, "%s did not take %s (it is %s%s); the kernel log (journalctl -k) "
                                                "says why", driver, address, got ? "on " : "without a driver",
                                         got ? got : "");
        if (r < 0)
                return iovirt_set_reason(reason, r, "%s has gone away", address);
        iovirt_fault_point("assign.bound");
        return 0;
}

int iovirt_bind_restore(const IovirtFunctionRecord *f, uint64_t timeout_usec, char **reason) {
        _cleanup_free_ char *drv = NULL, *over = NULL, *got = NULL;
        const char *want_override = f->original_known ? f->driver_override : NULL;
        const char *vfio = iovirt_function_vfio_driver(f);      /* vfio-pci or the variant it went to */
        int r;

        r = iovirt_bind_read(f->address, &drv, &over);
        if (r < 0)
                return iovirt_set_reason(reason, r, "%s has gone away", f->address);
        if (drv && !streq_ptr(drv, vfio) && !(f->original_known && streq_ptr(drv, f->driver)))
                return iovirt_set_reason(reason, -EBUSY, "%s is on %s, which iovirt did not bind; it was left there",
                                  f->address, drv);

        if (streq_ptr(drv, vfio) && !(f->original_known && streq_ptr(f->driver, vfio))) {
                r = write_driver_file(vfio, "unbind", f->address, reason);
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

/* By path, below $IOVIRT_ROOT (tests point it at the testbed, whose nodes
 * are plain files), never through a link: opening a VFIO group's node
 * would claim the group, which has one opener. */
static int node_chown(int group, uint32_t uid, uint32_t gid, bool keep_gid, uint32_t *old_uid, uint32_t *old_gid) {
        char rel[64];
        struct stat st;
        snprintf(rel, sizeof(rel), DEV_VFIO "/%d", group);
        _cleanup_free_ char *path = iovirt_root_path(rel);
        if (!path)
                return -ENOMEM;
        if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (old_uid)
                *old_uid = st.st_uid;
        if (old_gid)
                *old_gid = st.st_gid;
        if (fchownat(AT_FDCWD, path, uid, keep_gid ? st.st_gid : gid, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        return 0;
}

int iovirt_bind_node_give(int group, uint32_t uid, uint32_t *old_uid, uint32_t *old_gid) {
        return node_chown(group, uid, 0, true, old_uid, old_gid);
}

int iovirt_bind_node_restore(int group, uint32_t uid, uint32_t gid) {
        int r = node_chown(group, uid, gid, false, NULL, NULL);
        return r == -ENOENT ? 0 : r;
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
