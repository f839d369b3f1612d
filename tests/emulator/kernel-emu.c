/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The kernel-behaviour emulator: a preload library that goes in front of
 * libumockdev-preload and gives the testbed's PCI sysfs files what Linux
 * does on write, synchronously, with the errors Linux returns:
 *
 *   devices/<a>/driver_override  stored only; "" or "\n" clears it
 *   drivers/<d>/bind             ENODEV when <a> is bound or <d> does not match it
 *   drivers/<d>/unbind           ENODEV when <a> is not bound to <d>
 *   drivers_probe                binds an unbound <a> to its override, else to the
 *                                driver whose ID table matches; a failing probe
 *                                leaves it unbound and the write still succeeds
 *
 * Binding and unbinding move the driver links and the uevent file, create
 * /dev/vfio/N on the first vfio-pci device of group N and remove it with the
 * last, and send bind/unbind uevents to every monitor of the testbed.
 *
 * What matches what ("ID tables") is in $UMOCKDEV_DIR/emulator/native, one
 * "ADDRESS DRIVER" line per device, written by the testbed builder.  Faults
 * are read from $UMOCKDEV_DIR/emulator/faults before every write, so a test
 * can change them while the daemon runs:
 *
 *   fail ADDRESS DRIVER     probing DRIVER on ADDRESS fails (EIO)
 *   slow ADDRESS MS         probing ADDRESS takes MS milliseconds: a bind, or a
 *                           drivers_probe that found a driver, sleeps that long
 *                           before the driver takes the device (and before
 *                           "fail" is looked at); a signal cuts the sleep short
 *   vanish ADDRESS OP       writing OP (override|unbind|bind|probe) for
 *                           ADDRESS hot-unplugs the device instead (ENODEV)
 *   hold ADDRESS OP         a write of OP (override|unbind|bind|probe) for
 *                           ADDRESS waits, as soon as it arrives, until the line
 *                           is gone from the faults file (looked at every 10 ms;
 *                           after 120 s it goes on regardless).  While it waits,
 *                           $UMOCKDEV_DIR/emulator/held-ADDRESS-OP exists (it
 *                           holds "PID TID"; two writes held on one ADDRESS and
 *                           OP share it, and it goes with the first to leave);
 *                           afterwards the write does what it would have done,
 *                           judged on the state at that moment.  A transaction
 *                           held at its probe has already unbound the device,
 *                           so it is visibly half-way.
 *
 * One line per fault, "VERB ADDRESS ARG".  Several fail, vanish and hold
 * lines may name one address, each counts; of several slow lines the first
 * does.  A test that rewrites the file while a hold waits should replace it
 * by rename(): a file truncated and rewritten in place can be read empty, and
 * an empty file lifts every hold.
 *
 * Threads: several threads (and processes) may write at once, as the daemon's
 * workers do.  Each emulated operation runs under one lock, a process-wide
 * mutex and a flock() of $UMOCKDEV_DIR/emulator/lock for other processes, as
 * the kernel serialises binding under the device lock: its checks, the driver
 * links, the count of the group's vfio-pci devices and /dev/vfio/N move
 * together.  Neither a hold nor a slow probe keeps the lock: a write held or
 * sleeping on one device does not stop a write for another, and what it
 * checked before sleeping is checked again after.
 *
 * Every emulated write (a write(2) to one of the files above, failed or not)
 * is counted in $UMOCKDEV_DIR/emulator/stats, "OPS NANOSECONDS", with the
 * wall-clock time from its arrival to its return: waiting for the lock, slow
 * probes and holds included, as the daemon's thread spends it in the
 * "kernel".  Benchmarks subtract it to tell the daemon's share from the
 * emulated kernel's; writes that overlap each count their own time. */
/* the wrappers below must be the plain symbols, open64 beside open */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <glob.h>

#define SYS_PCI "/sys/bus/pci/"
#define ADDR_MAX 32
#define NAME_MAX_ 64
#define HOLD_POLL_MS 10
#define HOLD_MAX_MS 120000

typedef enum Kind { KIND_NONE, KIND_OVERRIDE, KIND_BIND, KIND_UNBIND, KIND_PROBE } Kind;

static const char *const op_names[] = {
        [KIND_OVERRIDE] = "override",
        [KIND_BIND] = "bind",
        [KIND_UNBIND] = "unbind",
        [KIND_PROBE] = "probe",
};

/* Which open fds are emulated sysfs files.  open() and close() run in every
 * thread and in a child between fork and exec, so no lock here: kind is
 * published after arg (release) and read before it (acquire).  An fd is only
 * written while it is open, and its number comes back only after close(). */
typedef struct Tracked {
        _Atomic Kind kind;
        char arg[NAME_MAX_];      /* the device (override) or the driver (bind, unbind) */
} Tracked;

#define MAX_FD 4096
static Tracked tracked[MAX_FD];

static const char *root(void) {
        return getenv("UMOCKDEV_DIR");
}

static int (*next_open)(const char *, int, ...);
static int (*next_openat)(int, const char *, int, ...);
static ssize_t (*next_write)(int, const void *, size_t);
static int (*next_close)(int);

/* The emulated kernel's lock, for this process; kernel_lock() adds a flock()
 * for the others. */
static pthread_mutex_t kernel_mutex = PTHREAD_MUTEX_INITIALIZER;

/* A child forked while another thread is inside an operation must not
 * inherit the mutex locked */
static void before_fork(void) {
        pthread_mutex_lock(&kernel_mutex);
}

static void after_fork(void) {
        pthread_mutex_unlock(&kernel_mutex);
}

static pthread_once_t resolved = PTHREAD_ONCE_INIT;

static void resolve_once(void) {
        next_open = dlsym(RTLD_NEXT, "open");
        next_openat = dlsym(RTLD_NEXT, "openat");
        next_write = dlsym(RTLD_NEXT, "write");
        next_close = dlsym(RTLD_NEXT, "close");
        pthread_atfork(before_fork, after_fork, after_fork);
}

static void resolve(void) {
        pthread_once(&resolved, resolve_once);
}

/* ---- helpers on the testbed, by real path ---- */

static void tb(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;
        int n = snprintf(buf, size, "%s", root());
        va_start(ap, fmt);
        vsnprintf(buf + n, size - n, fmt, ap);
        va_end(ap);
}

static bool exists(const char *path) {
        struct stat st;
        return lstat(path, &st) == 0;
}

/* The device's own directory in the testbed, or false when it is gone. */
static bool device_dir(const char *addr, char *buf, size_t size) {
        char link[PATH_MAX];
        tb(link, sizeof(link), "/sys/bus/pci/devices/%s", addr);
        return realpath(link, buf) && exists(buf) && strlen(buf) < size;
}

static int read_small(const char *path, char *buf, size_t size) {
        int fd = next_open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = pread(fd, buf, size - 1, 0);
        int e = errno;
        next_close(fd);
        if (n < 0)
                return -e;
        buf[n] = 0;
        buf[strcspn(buf, "\n")] = 0;
        return (int) n;
}

static int write_small(const char *path, const char *text) {
        int fd = next_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        ssize_t n = pwrite(fd, text, strlen(text), 0);
        int e = errno;
        next_close(fd);
        return n < 0 ? -e : 0;
}

static void current_driver(const char *dir, char *buf, size_t size) {
        char link[PATH_MAX], target[PATH_MAX];
        snprintf(link, sizeof(link), "%s/driver", dir);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        buf[0] = 0;
        if (n > 0) {
                target[n] = 0;
                snprintf(buf, size, "%s", strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
        }
}

static int group_of(const char *dir) {
        char link[PATH_MAX], target[PATH_MAX];
        snprintf(link, sizeof(link), "%s/iommu_group", dir);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
                return -1;
        target[n] = 0;
        return atoi(strrchr(target, '/') + 1);
}

static void native_driver(const char *addr, char *buf, size_t size) {
        char path[PATH_MAX], line[256], a[ADDR_MAX], d[NAME_MAX_];
        tb(path, sizeof(path), "/emulator/native");
        buf[0] = 0;
        FILE *f = fopen(path, "re");
        if (!f)
                return;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "%31s %63s", a, d) == 2 && strcmp(a, addr) == 0) {
                        snprintf(buf, size, "%s", d);
                        break;
                }
        fclose(f);
}

/* Is there a fault "VERB ADDRESS ARG" in force?  want NULL: any ARG, the
 * first one is copied to arg; else only that ARG counts. */
static bool fault(const char *verb, const char *addr, const char *want, char *arg, size_t size) {
        char path[PATH_MAX], line[256], v[32], a[ADDR_MAX], x[NAME_MAX_];
        bool found = false;
        tb(path, sizeof(path), "/emulator/faults");
        FILE *f = fopen(path, "re");
        if (!f)
                return false;
        while (!found && fgets(line, sizeof(line), f))
                if (sscanf(line, "%31s %31s %63s", v, a, x) == 3 && strcmp(v, verb) == 0 && strcmp(a, addr) == 0 &&
                    (!want || strcmp(x, want) == 0)) {
                        if (arg)
                                snprintf(arg, size, "%s", x);
                        found = true;
                }
        fclose(f);
        return found;
}

static bool fault_is(const char *verb, const char *addr, const char *arg) {
        return fault(verb, addr, arg, NULL, 0);
}

/* ---- uevents, in the format libudev's monitor expects from udevd ---- */

static uint32_t murmur2(const char *s) {
        const uint32_t m = 0x5bd1e995;
        size_t len = strlen(s), i = 0;
        uint32_t h = (uint32_t) len;
        for (; len - i >= 4; i += 4) {
                uint32_t k;
                memcpy(&k, s + i, 4);
                k *= m;
                k ^= k >> 24;
                k *= m;
                h *= m;
                h ^= k;
        }
        switch (len - i) {
        case 3:
                h ^= (uint32_t) (uint8_t) s[i + 2] << 16;
                /* fall through */
        case 2:
                h ^= (uint32_t) (uint8_t) s[i + 1] << 8;
                /* fall through */
        case 1:
                h ^= (uint8_t) s[i];
                h *= m;
        }
        h ^= h >> 13;
        h *= m;
        h ^= h >> 15;
        return h;
}

/* (under the kernel lock, like everything that changes the testbed) */
static void send_uevent(const char *action, const char *dir) {
        static unsigned seq;
        char body[4096], uev[2048], path[PATH_MAX];
        size_t n = 0, rootlen = strlen(root());

        n += snprintf(body + n, sizeof(body) - n, "ACTION=%s%cDEVPATH=%s%cSUBSYSTEM=pci%cSEQNUM=%u%c", action, 0,
                      dir + rootlen + strlen("/sys"), 0, 0, (unsigned) getpid() * 1000 + ++seq, 0);
        snprintf(path, sizeof(path), "%s/uevent", dir);
        int fd = next_open(path, O_RDONLY | O_CLOEXEC);
        ssize_t len = fd >= 0 ? pread(fd, uev, sizeof(uev) - 1, 0) : 0;
        if (fd >= 0)
                next_close(fd);
        uev[len > 0 ? len : 0] = 0;
        char *save = NULL;
        for (char *l = strtok_r(uev, "\n", &save); l && n < sizeof(body) - 256; l = strtok_r(NULL, "\n", &save))
                n += snprintf(body + n, sizeof(body) - n, "%s%c", l, 0);

        unsigned char msg[40 + sizeof(body)];
        uint32_t v;
        memcpy(msg, "libudev\0", 8);
        v = htonl(0xfeedcafe), memcpy(msg + 8, &v, 4);
        v = 40, memcpy(msg + 12, &v, 4);                         /* header size */
        v = 40, memcpy(msg + 16, &v, 4);                         /* properties offset */
        v = (uint32_t) n, memcpy(msg + 20, &v, 4);               /* properties length */
        v = htonl(murmur2("pci")), memcpy(msg + 24, &v, 4);
        memset(msg + 28, 0, 12);
        memcpy(msg + 40, body, n);

        char pattern[PATH_MAX];
        glob_t g;
        tb(pattern, sizeof(pattern), "/event[0-9]*");
        if (glob(pattern, 0, NULL, &g) != 0)
                return;
        for (size_t i = 0; i < g.gl_pathc; i++) {
                int s = socket(AF_UNIX, SOCK_RAW | SOCK_CLOEXEC, 0);
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g.gl_pathv[i]);
                /* never block: the listener may be this very process, busy in the
                 * write that caused the event (a unix datagram queue holds only
                 * net.unix.max_dgram_qlen messages).  The kernel drops netlink
                 * messages for a full receiver too. */
                if (s >= 0 && connect(s, (struct sockaddr *) &sa, sizeof(sa)) == 0)
                        (void) send(s, msg, 40 + n, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (s >= 0)
                        next_close(s);
        }
        globfree(&g);
}

/* ---- the kernel's side of binding ---- */

static void set_uevent_driver(const char *dir, const char *driver) {
        char path[PATH_MAX], text[2048], out[2048];
        snprintf(path, sizeof(path), "%s/uevent", dir);
        int fd = next_open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        ssize_t len = pread(fd, text, sizeof(text) - 1, 0);
        next_close(fd);
        text[len > 0 ? len : 0] = 0;
        size_t n = 0;
        if (driver)
                n += snprintf(out, sizeof(out), "DRIVER=%s\n", driver);
        char *save = NULL;
        for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
                if (strncmp(l, "DRIVER=", 7) != 0)
                        n += snprintf(out + n, sizeof(out) - n, "%s\n", l);
        write_small(path, out);
}

/* Does any device of the group still sit on vfio-pci? */
static bool group_has_vfio(int group) {
        char pattern[PATH_MAX];
        glob_t g;
        bool found = false;
        tb(pattern, sizeof(pattern), "/sys/kernel/iommu_groups/%d/devices/*", group);
        if (glob(pattern, 0, NULL, &g) != 0)
                return false;
        for (size_t i = 0; i < g.gl_pathc && !found; i++) {
                char real[PATH_MAX], drv[NAME_MAX_];
                if (!realpath(g.gl_pathv[i], real))
                        continue;
                current_driver(real, drv, sizeof(drv));
                found = strcmp(drv, "vfio-pci") == 0;
        }
        globfree(&g);
        return found;
}

static void vfio_node(int group, bool present) {
        char path[PATH_MAX];
        if (group < 0)
                return;
        tb(path, sizeof(path), "/dev/vfio/%d", group);
        if (present)
                write_small(path, "");
        else
                unlink(path);
}

/* A probe that is to be slow says so first: > 0 is the milliseconds to
 * sleep, without the lock, before the operation is tried again with slept. */
static int probe_delay(const char *addr, bool slept) {
        char arg[NAME_MAX_];
        if (slept || !fault("slow", addr, NULL, arg, sizeof(arg)))
                return 0;
        return atoi(arg) > 0 ? atoi(arg) : 0;
}

/* The driver takes the device: 0, -errno, or > 0 from probe_delay() */
static int attach(const char *addr, const char *dir, const char *driver, bool slept) {
        char drvdir[PATH_MAX], link[PATH_MAX], rel[PATH_MAX];

        int ms = probe_delay(addr, slept);
        if (ms > 0)
                return ms;
        if (fault_is("fail", addr, driver))
                return -EIO;

        tb(drvdir, sizeof(drvdir), "/sys/bus/pci/drivers/%s", driver);
        /* dir is ROOT/sys/devices/...; the link is relative, as sysfs makes it */
        size_t depth = 0;
        for (const char *p = dir + strlen(root()) + strlen("/sys/"); *p; p++)
                depth += *p == '/';
        rel[0] = 0;
        for (size_t i = 0; i < depth + 1; i++)
                strcat(rel, "../");
        strcat(rel, "bus/pci/drivers/");
        strcat(rel, driver);
        snprintf(link, sizeof(link), "%s/driver", dir);
        if (symlink(rel, link) < 0)
                return -errno;
        snprintf(link, sizeof(link), "%s/%s", drvdir, addr);
        snprintf(rel, sizeof(rel), "../../../..%s", dir + strlen(root()) + strlen("/sys"));
        (void) symlink(rel, link);
        set_uevent_driver(dir, driver);
        if (strcmp(driver, "vfio-pci") == 0)
                vfio_node(group_of(dir), true);
        send_uevent("bind", dir);
        return 0;
}

static void detach(const char *addr, const char *dir, const char *driver) {
        char link[PATH_MAX];
        snprintf(link, sizeof(link), "%s/driver", dir);
        unlink(link);
        tb(link, sizeof(link), "/sys/bus/pci/drivers/%s/%s", driver, addr);
        unlink(link);
        set_uevent_driver(dir, NULL);
        if (strcmp(driver, "vfio-pci") == 0 && !group_has_vfio(group_of(dir)))
                vfio_node(group_of(dir), false);
        send_uevent("unbind", dir);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

/* Surprise removal: the driver lets go, the device and its links go away. */
static int vanish(const char *addr, const char *dir) {
        char drv[NAME_MAX_], link[PATH_MAX];
        int group = group_of(dir);
        current_driver(dir, drv, sizeof(drv));
        if (drv[0])
                detach(addr, dir, drv);
        send_uevent("remove", dir);
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        tb(link, sizeof(link), "/sys/bus/pci/devices/%s", addr);
        unlink(link);
        tb(link, sizeof(link), "/sys/kernel/iommu_groups/%d/devices/%s", group, addr);
        unlink(link);
        return -ENODEV;
}

static bool vanishes(const char *addr, const char *dir, const char *op) {
        if (fault_is("vanish", addr, op)) {
                vanish(addr, dir);
                return true;
        }
        return false;
}

static void override_of(const char *dir, char *buf, size_t size) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/driver_override", dir);
        if (read_small(path, buf, size) < 0 || strcmp(buf, "(null)") == 0)
                buf[0] = 0;
}

static bool driver_loaded(const char *driver) {
        char path[PATH_MAX];
        tb(path, sizeof(path), "/sys/bus/pci/drivers/%s", driver);
        return exists(path);
}

/* driver_match_device(): the override decides alone when there is one */
static bool matches(const char *addr, const char *dir, const char *driver) {
        char over[NAME_MAX_], native[NAME_MAX_];
        override_of(dir, over, sizeof(over));
        if (over[0])
                return strcmp(over, driver) == 0;
        native_driver(addr, native, sizeof(native));
        return strcmp(native, driver) == 0;
}

static int op_override(const char *addr, const char *value) {
        char dir[PATH_MAX], path[PATH_MAX], text[NAME_MAX_ + 2];
        if (!device_dir(addr, dir, sizeof(dir)))
                return -ENODEV;
        if (vanishes(addr, dir, "override"))
                return -ENODEV;
        size_t len = strcspn(value, "\n");
        if (len >= NAME_MAX_)
                return -EINVAL;
        snprintf(text, sizeof(text), "%.*s\n", (int) len, value);
        snprintf(path, sizeof(path), "%s/driver_override", dir);
        return write_small(path, len ? text : "(null)\n");
}

static int op_bind(const char *driver, const char *addr, bool slept) {
        char dir[PATH_MAX], drv[NAME_MAX_];
        if (!device_dir(addr, dir, sizeof(dir)))
                return -ENODEV;
        if (vanishes(addr, dir, "bind"))
                return -ENODEV;
        current_driver(dir, drv, sizeof(drv));
        if (drv[0] || !matches(addr, dir, driver))
                return -ENODEV;
        return attach(addr, dir, driver, slept);
}

static int op_unbind(const char *driver, const char *addr) {
        char dir[PATH_MAX], drv[NAME_MAX_];
        if (!device_dir(addr, dir, sizeof(dir)))
                return -ENODEV;
        current_driver(dir, drv, sizeof(drv));
        if (strcmp(drv, driver) != 0)
                return -ENODEV;
        if (vanishes(addr, dir, "unbind"))
                return -ENODEV;
        detach(addr, dir, driver);
        return 0;
}

static int op_probe(const char *addr, bool slept) {
        char dir[PATH_MAX], drv[NAME_MAX_], over[NAME_MAX_], native[NAME_MAX_];
        if (!device_dir(addr, dir, sizeof(dir)))
                return -ENODEV;
        if (vanishes(addr, dir, "probe"))
                return -ENODEV;
        current_driver(dir, drv, sizeof(drv));
        if (drv[0])
                return 0;
        override_of(dir, over, sizeof(over));
        native_driver(addr, native, sizeof(native));
        const char *candidate = over[0] ? over : native;
        if (candidate[0] && driver_loaded(candidate)) {
                int r = attach(addr, dir, candidate, slept);
                if (r > 0)
                        return r;       /* slow: sleep first */
        }
        return 0;       /* a failed probe is not the writer's error */
}

/* ---- bookkeeping of what the emulation cost ---- */

/* Any number of threads and processes: each call has its own open file
 * description, so the flock() serialises them all.  The numbers only grow,
 * so the new text is written over the old before the file is cut to it: a
 * reader never finds it empty. */
static void account(uint64_t ns) {
        char path[PATH_MAX], text[64] = "";
        unsigned long long ops = 0, total = 0;
        tb(path, sizeof(path), "/emulator/stats");
        int fd = next_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return;
        while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
                ;
        ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
        text[n > 0 ? n : 0] = 0;
        sscanf(text, "%llu %llu", &ops, &total);
        n = snprintf(text, sizeof(text), "%llu %llu\n", ops + 1, total + (unsigned long long) ns);
        if (pwrite(fd, text, (size_t) n, 0) == n)
                (void) ftruncate(fd, n);
        next_close(fd);
}

static uint64_t now_ns(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t) t.tv_sec * 1000000000u + (uint64_t) t.tv_nsec;
}

static void sleep_ms(int ms) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

/* ---- the kernel's lock ---- */

/* Returns the fd that holds the flock(), or -1 when there is no emulator
 * directory to put it in (then the mutex alone serialises). */
static int kernel_lock(void) {
        char path[PATH_MAX];
        pthread_mutex_lock(&kernel_mutex);
        tb(path, sizeof(path), "/emulator/lock");
        int fd = next_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
                while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
                        ;
        return fd;
}

static void kernel_unlock(int fd) {
        if (fd >= 0)
                next_close(fd);         /* lets go of the flock() */
        pthread_mutex_unlock(&kernel_mutex);
}

/* ---- holds: a test stops a write where it arrives, until it lets go ---- */

static void hold(const char *addr, Kind kind) {
        const char *op = op_names[kind];
        char path[PATH_MAX], text[64];

        if (!fault_is("hold", addr, op))
                return;
        tb(path, sizeof(path), "/emulator/held-%s-%s", addr, op);
        snprintf(text, sizeof(text), "%d %d\n", (int) getpid(), (int) gettid());
        (void) write_small(path, text);
        uint64_t end = now_ns() + (uint64_t) HOLD_MAX_MS * 1000000u;
        while (fault_is("hold", addr, op)) {
                if (now_ns() >= end) {
                        fprintf(stderr, "kernel-emu: 'hold %s %s' still there after %d s, going on\n", addr, op,
                                HOLD_MAX_MS / 1000);
                        break;
                }
                sleep_ms(HOLD_POLL_MS);
        }
        unlink(path);
}

/* One operation under the lock; a slow probe sleeps outside it, and the
 * operation is judged again on what it finds after. */
static int emulate(Kind kind, const char *arg, const char *text, const char *addr) {
        for (bool slept = false;; slept = true) {
                int lock = kernel_lock(), r;
                switch (kind) {
                case KIND_OVERRIDE:
                        r = op_override(arg, text);
                        break;
                case KIND_BIND:
                        r = op_bind(arg, addr, slept);
                        break;
                case KIND_UNBIND:
                        r = op_unbind(arg, addr);
                        break;
                case KIND_PROBE:
                        r = op_probe(addr, slept);
                        break;
                default:
                        r = -EINVAL;
                }
                kernel_unlock(lock);
                if (r <= 0)
                        return r;
                sleep_ms(r);
        }
}

/* ---- the wrappers ---- */

static void track(int fd, const char *path) {
        if (fd < 0 || fd >= MAX_FD)
                return;
        atomic_store(&tracked[fd].kind, KIND_NONE);
        if (!root() || (strncmp(path, SYS_PCI, strlen(SYS_PCI)) != 0 && strncmp(path, "/sys/devices/", 13) != 0))
                return;
        const char *base = strrchr(path, '/') + 1;
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%.*s", (int) (base - 1 - path), path);
        const char *pbase = strrchr(parent, '/') ? strrchr(parent, '/') + 1 : parent;
        Kind kind = KIND_NONE;

        if (strcmp(path, SYS_PCI "drivers_probe") == 0)
                kind = KIND_PROBE;
        else if (strcmp(base, "driver_override") == 0)
                kind = KIND_OVERRIDE;
        else if (strncmp(path, SYS_PCI "drivers/", strlen(SYS_PCI "drivers/")) == 0 && strcmp(base, "bind") == 0)
                kind = KIND_BIND;
        else if (strncmp(path, SYS_PCI "drivers/", strlen(SYS_PCI "drivers/")) == 0 && strcmp(base, "unbind") == 0)
                kind = KIND_UNBIND;
        if (kind == KIND_NONE)
                return;
        snprintf(tracked[fd].arg, sizeof(tracked[fd].arg), "%s", pbase);
        atomic_store_explicit(&tracked[fd].kind, kind, memory_order_release);
}

static int flags_need_mode(int flags) {
        return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

static int do_openat(int dirfd, const char *path, int flags, mode_t mode) {
        resolve();
        int fd = dirfd == AT_FDCWD ? next_open(path, flags, mode) : next_openat(dirfd, path, flags, mode);
        if (fd >= 0 && (flags & O_ACCMODE) != O_RDONLY && path[0] == '/')
                track(fd, path);
        return fd;
}

#define MODE_ARG(flags)                                         \
        ({                                                      \
                mode_t _m = 0;                                  \
                if (flags_need_mode(flags)) {                   \
                        va_list ap;                             \
                        va_start(ap, flags);                    \
                        _m = va_arg(ap, mode_t);                \
                        va_end(ap);                             \
                }                                               \
                _m;                                             \
        })

int open(const char *path, int flags, ...) {
        return do_openat(AT_FDCWD, path, flags, MODE_ARG(flags));
}

int open64(const char *path, int flags, ...) {
        return do_openat(AT_FDCWD, path, flags | O_LARGEFILE, MODE_ARG(flags));
}

int openat(int dirfd, const char *path, int flags, ...) {
        return do_openat(dirfd, path, flags, MODE_ARG(flags));
}

int openat64(int dirfd, const char *path, int flags, ...) {
        return do_openat(dirfd, path, flags | O_LARGEFILE, MODE_ARG(flags));
}

int close(int fd) {
        resolve();
        if (fd >= 0 && fd < MAX_FD)
                atomic_store(&tracked[fd].kind, KIND_NONE);     /* before the number can come back */
        return next_close(fd);
}

ssize_t write(int fd, const void *buf, size_t count) {
        resolve();
        Kind kind = fd >= 0 && fd < MAX_FD ? atomic_load_explicit(&tracked[fd].kind, memory_order_acquire) : KIND_NONE;
        if (kind == KIND_NONE || !root())
                return next_write(fd, buf, count);

        char arg[NAME_MAX_], text[256], addr[ADDR_MAX];
        memcpy(arg, tracked[fd].arg, sizeof(arg));
        arg[sizeof(arg) - 1] = 0;
        snprintf(text, sizeof(text), "%.*s", (int) (count < sizeof(text) ? count : sizeof(text) - 1),
                 (const char *) buf);
        snprintf(addr, sizeof(addr), "%.*s", (int) strcspn(text, "\n"), text);

        uint64_t t0 = now_ns();
        hold(kind == KIND_OVERRIDE ? arg : addr, kind);
        int r = emulate(kind, arg, text, addr);
        account(now_ns() - t0);
        if (r < 0) {
                errno = -r;
                return -1;
        }
        return (ssize_t) count;
}
