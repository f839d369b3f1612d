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
 *   devices/<a>/sriov_numvfs     drivers/pci/iov.c sriov_numvfs_store(), below
 *   devices/<a>/sriov_drivers_autoprobe
 *                                kstrtobool(): stored as 0 or 1, else EINVAL
 *
 * Binding and unbinding move the driver links and the uevent file, create
 * /dev/vfio/N on the first device of group N on a VFIO driver (vfio-pci, or
 * a variant whose name ends in _vfio_pci, as mlx5_vfio_pci) and remove it
 * with the last, and send bind/unbind uevents to every monitor of the
 * testbed.  A VF is probed (by drivers_probe, bind or its creation) only
 * with a driver_override or while its PF's sriov_drivers_autoprobe is 1
 * (pci_device_can_probe(); bind fails with ENODEV).  A PF's driver that lets
 * go (unbind, or the PF vanishing) removes its VFs first, as PF drivers do
 * in their remove().
 *
 * sriov_numvfs, as Linux checks it: text kstrtou16() refuses is EINVAL (a
 * number beyond 16 bits ERANGE); above sriov_totalvfs ERANGE; the count it
 * has already succeeds and does nothing; a PF without a driver, or whose
 * driver has no sriov_configure, ENOENT; a non-zero count while VFs are
 * enabled EBUSY.  0 removes every VF in index order: a bound VF is unbound
 * first (unbind; /dev/vfio/N goes with the group's last VFIO device), then
 * its virtfnN and physfn links, its directory and its group membership go
 * (a group left empty goes too) and "remove" is announced.  N creates VFs
 * 0..N-1 at the PF's routing ID + offset + i * stride (perhaps on another
 * bus), each from the builder's template with its physfn, virtfnI,
 * subsystem and iommu_group links, announced ("add"), then probed as
 * drivers_probe would ("bind") when it can be; then the PF announces the
 * change ("change").  The PF's config space follows (NumVFs, VF Enable and
 * VF MSE), and sriov_numvfs reads the count once the write is done.  A new
 * VF whose path to the root is isolated by ACS gets a group of its own, the
 * lowest number no live group has, as iommu_group_alloc() does; otherwise
 * it joins the group of the bridge above it.  A VF of a PF on vfio-pci gets
 * "vfio-pci" as driver_override when it appears, as vfio-pci's bus notifier
 * gives it.  vfio-pci has a sriov_configure, which refuses (ENOENT) while
 * /sys/module/vfio_pci/parameters/enable_sriov, if there is one, says N.
 *
 * The builder (tests/hosts/testbed.py) writes what this needs below
 * $UMOCKDEV_DIR/emulator/: native, one "ADDRESS DRIVER" line per device
 * whose ID table matches a driver ("ID tables"), VFs the kernel could
 * create included; for each PF, sriov/PF/template/ (a VF's attribute files
 * and config space; PCI_SLOT_NAME in its uevent is replaced), sriov/PF/vfs
 * ("INDEX ADDRESS GROUP SYSPATH" for each VF that can exist, GROUP "new", a
 * number, or "-" without IOMMU: enabling a count beyond the lines there
 * fails with ENOMEM, as a VF bus beyond the bridge's range does) and
 * sriov/PF/no-configure (the PF's drivers without sriov_configure, one a
 * line).  Faults are read from $UMOCKDEV_DIR/emulator/faults before every
 * write, so a test can change them while the daemon runs:
 *
 *   fail ADDRESS DRIVER     probing DRIVER on ADDRESS fails (EIO)
 *   fail PF sriov           the PF driver's sriov_configure fails (EIO), for
 *                           enabling and for removing VFs alike: nothing
 *                           changes
 *   slow ADDRESS MS         probing ADDRESS takes MS milliseconds: a bind, or a
 *                           drivers_probe that found a driver, sleeps that long
 *                           before the driver takes the device (and before
 *                           "fail" is looked at); a signal cuts the sleep short
 *   quiet ADDRESS uevents   nothing is announced for ADDRESS: its uevents are
 *                           lost (as when a netlink receive buffer overflows),
 *                           while sysfs changes as it would
 *   vanish ADDRESS OP       writing OP (override|unbind|bind|probe|sriov|
 *                           autoprobe) for ADDRESS hot-unplugs the device
 *                           instead (ENODEV); sriov is a write to
 *                           sriov_numvfs, autoprobe to sriov_drivers_autoprobe
 *   overflow monitor uevents
 *                           the next receive (recvmsg, recv) on a udev monitor's
 *                           socket fails with ENOBUFS, as the kernel reports a
 *                           netlink receive buffer that overflowed; the message
 *                           waiting stays for the receive after.  The socket is
 *                           umockdev's stand-in for NETLINK_KOBJECT_UEVENT, the
 *                           one bound to $UMOCKDEV_DIR/eventN.  Once: it creates
 *                           $UMOCKDEV_DIR/emulator/overflowed ("PID FD") and
 *                           fires again only after that file is gone.  (A
 *                           uevent that does not fit a listener's queue does
 *                           the same without a fault: see send_to().)
 *   hold ADDRESS OP         a write of OP (override|unbind|bind|probe|sriov|
 *                           autoprobe) for ADDRESS waits, as soon as it
 *                           arrives, until the line
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
 * does.  VFs probed as they are created are never slow (the kernel probes
 * them under the PF's lock; here that would stop every other write).  A
 * test that rewrites the file while a hold waits should replace it by
 * rename(): a file truncated and rewritten in place can be read empty, and
 * an empty file lifts every hold.
 *
 * Threads: several threads (and processes) may write at once, as the daemon's
 * workers do.  Each emulated operation runs under one lock, a process-wide
 * mutex and a flock() of $UMOCKDEV_DIR/emulator/lock for other processes, as
 * the kernel serialises binding under the device lock: its checks, the driver
 * links, the count of the group's vfio-pci devices and /dev/vfio/N move
 * together.  A sriov_numvfs write creates or removes all its VFs under it,
 * as the kernel does under the PF's device lock.  Neither a hold nor a slow
 * probe keeps the lock: a write held or sleeping on one device does not
 * stop a write for another, and what it checked before sleeping is checked
 * again after.
 *
 * Every emulated write (a write(2) to one of the files above, failed or not)
 * is counted in $UMOCKDEV_DIR/emulator/stats, "OPS NANOSECONDS", with the
 * wall-clock time from its arrival to its return: waiting for the lock, slow
 * probes and holds included, as the daemon's thread spends it in the
 * "kernel"; not the time spent waiting for a listener to read its uevents
 * (see send_to()), which is the listener's.  Benchmarks subtract it to tell
 * the daemon's share from the emulated kernel's; writes that overlap each
 * count their own time.
 *
 * Every fd a process opens for writing to one of those files is emulated,
 * whatever its number: an fd that cannot be tracked fails the open (EMFILE,
 * said on stderr), never lets the write reach the plain file.  And since
 * umockdev's preload leaks a socket on each open() or fopen() of a path
 * below /dev/ that has no ioctl handler (see dev_path_without_ioctl()),
 * such paths are opened here instead, where umockdev would have opened them:
 * a daemon under load must not run through its fd numbers. */
/* the wrappers below must be the plain symbols, open64 beside open */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
#define UEVENT_WAIT_MS 200
#define UEVENT_STALL_MS 2000

typedef enum Kind {
        KIND_NONE,
        KIND_OVERRIDE,
        KIND_BIND,
        KIND_UNBIND,
        KIND_PROBE,
        KIND_NUMVFS,
        KIND_AUTOPROBE,
} Kind;

static const char *const op_names[] = {
        [KIND_OVERRIDE] = "override",
        [KIND_BIND] = "bind",
        [KIND_UNBIND] = "unbind",
        [KIND_PROBE] = "probe",
        [KIND_NUMVFS] = "sriov",
        [KIND_AUTOPROBE] = "autoprobe",
};

/* Writes whose device is the file's directory, not the text */
static bool kind_on_device(Kind kind) {
        return kind == KIND_OVERRIDE || kind == KIND_NUMVFS || kind == KIND_AUTOPROBE;
}

/* Which open fds are emulated sysfs files.  open() and close() run in every
 * thread and in a child between fork and exec, so no lock here: kind is
 * published after arg and file (release) and read before them (acquire).
 * An fd is only written while it is open, and its number comes back only
 * after close(); the file's identity is checked again on each write, for an
 * fd closed behind close()'s back (fclose(), close_range()) and reused.
 *
 * Any fd number: a daemon with thousands of fds open (200 bus clients, or
 * fds leaked) gets numbers past any fixed table, and a write on an fd the
 * table did not cover went to the plain file, silently: no unbind, no probe,
 * an sriov_numvfs that only changed its text.  So the table is chunks of
 * TRACK_CHUNK, mapped when first needed (mmap: no malloc between fork and
 * exec), up to RLIMIT_NOFILE's ceiling (nr_open, 1 Mi by default). */
typedef struct Tracked {
        _Atomic Kind kind;
        dev_t dev;                /* the file opened, as fstat() says */
        ino_t ino;
        char arg[NAME_MAX_];      /* the device (override, sriov) or the driver (bind, unbind) */
} Tracked;

#define TRACK_CHUNK 4096
#define TRACK_CHUNKS 1024
static _Atomic(Tracked *) tracked[TRACK_CHUNKS];

/* fd's entry, NULL when it has none (create: make its chunk, NULL only
 * when that fails or fd is beyond every chunk) */
static Tracked *tracked_at(int fd, bool create) {
        if (fd < 0 || (size_t) fd >= (size_t) TRACK_CHUNK * TRACK_CHUNKS)
                return NULL;
        _Atomic(Tracked *) *slot = &tracked[fd / TRACK_CHUNK];
        Tracked *chunk = atomic_load_explicit(slot, memory_order_acquire);
        if (!chunk && create) {
                Tracked *fresh = mmap(NULL, TRACK_CHUNK * sizeof(Tracked), PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (fresh == MAP_FAILED)
                        return NULL;
                Tracked *none = NULL;
                if (atomic_compare_exchange_strong(slot, &none, fresh))
                        chunk = fresh;
                else {          /* another thread was first */
                        munmap(fresh, TRACK_CHUNK * sizeof(Tracked));
                        chunk = none;
                }
        }
        return chunk ? &chunk[fd % TRACK_CHUNK] : NULL;
}

static const char *root(void) {
        return getenv("UMOCKDEV_DIR");
}

static int (*next_open)(const char *, int, ...);
static int (*next_openat)(int, const char *, int, ...);
static FILE *(*next_fopen)(const char *, const char *);
static FILE *(*libc_fopen)(const char *, const char *);
static ssize_t (*next_write)(int, const void *, size_t);
static int (*next_close)(int);
static ssize_t (*next_recvmsg)(int, struct msghdr *, int);
static ssize_t (*next_recv)(int, void *, size_t, int);
static int (*next_bind)(int, const struct sockaddr *, socklen_t);

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
        next_recvmsg = dlsym(RTLD_NEXT, "recvmsg");
        next_recv = dlsym(RTLD_NEXT, "recv");
        next_bind = dlsym(RTLD_NEXT, "bind");
        next_fopen = dlsym(RTLD_NEXT, "fopen");
        /* fopen() itself, behind umockdev's: see dev_path_without_ioctl() */
        void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
        libc_fopen = libc ? dlsym(libc, "fopen") : NULL;
        pthread_atfork(before_fork, after_fork, after_fork);
}

static void resolve(void) {
        pthread_once(&resolved, resolve_once);
}

/* ---- helpers on the testbed, by real path ---- */

/* The emulator's own files are opened by the system call itself: they are
 * real paths already, and umockdev's open() and fopen() would take a
 * testbed below /dev (/dev/shm) for device nodes, and leak a socket on
 * each, looking for their ioctl handlers. */
static int raw_open(const char *path, int flags, ...) {
        mode_t mode = 0;
        if (flags & O_CREAT) {
                va_list ap;
                va_start(ap, flags);
                mode = va_arg(ap, mode_t);
                va_end(ap);
        }
        return (int) syscall(SYS_openat, AT_FDCWD, path, flags | O_LARGEFILE, mode);
}

/* (umockdev has its own fopen() too) */
static FILE *raw_fopen(const char *path) {
        int fd = raw_open(path, O_RDONLY | O_CLOEXEC);
        FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
        if (fd >= 0 && !f)
                next_close(fd);
        return f;
}

__attribute__((format(printf, 3, 4))) static void tb(char *buf, size_t size, const char *fmt, ...) {
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
        int fd = raw_open(path, O_RDONLY | O_CLOEXEC);
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
        int fd = raw_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
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
        FILE *f = raw_fopen(path);
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
        FILE *f = raw_fopen(path);
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

static uint64_t now_ns(void);

/* Time this thread spent waiting for listeners to make room, which is not
 * the emulated kernel's (see account()) */
static _Thread_local uint64_t listener_wait_ns;

/* Listeners whose queue stayed full: not waited for again until then */
static struct {
        char path[sizeof(((struct sockaddr_un *) 0)->sun_path)];
        uint64_t until;
} stalled[16];

static bool stalled_now(const char *path, uint64_t now) {
        for (size_t i = 0; i < sizeof(stalled) / sizeof(stalled[0]); i++)
                if (strcmp(stalled[i].path, path) == 0 && now < stalled[i].until)
                        return true;
        return false;
}

static void stall(const char *path, uint64_t now) {
        size_t oldest = 0;
        for (size_t i = 0; i < sizeof(stalled) / sizeof(stalled[0]); i++)
                if (stalled[i].until < stalled[oldest].until)
                        oldest = i;
        snprintf(stalled[oldest].path, sizeof(stalled[oldest].path), "%s", path);
        stalled[oldest].until = now + (uint64_t) UEVENT_STALL_MS * 1000000u;
}

/* The marker of messages lost for the listener bound at path (its eventN) */
static void dropped_marker(const char *path, char *buf, size_t size) {
        const char *base = strrchr(path, '/');
        tb(buf, size, "/emulator/dropped-%s", base ? base + 1 : path);
}

static bool try_send(int s, const void *msg, size_t len) {
        return send(s, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0 || errno != EAGAIN;
}

/* One datagram to a listener.  A unix datagram queue holds only
 * net.unix.max_dgram_qlen messages (10 by default), where udevd's monitors
 * have buffers of 128 MiB: a full queue is waited for, up to
 * UEVENT_WAIT_MS, as a listener that reads (the daemon's event loop beside
 * the worker that writes) empties it.  Never longer: the listener may be
 * this very thread, busy in the write that caused the event; the message
 * is dropped then and that listener not waited for again for
 * UEVENT_STALL_MS.  A drop is never silent: as the kernel does for a
 * netlink receiver whose buffer is full (netlink_overrun(): sk_err =
 * ENOBUFS), the listener's next receive fails with ENOBUFS (recvmsg()
 * below), and the messages queued before stay for the receives after.
 * The mark is a file, emulator/dropped-eventN, as the writer may be another
 * process; one mark stands for any number of drops until the listener
 * takes it.  (Every sender holds the kernel lock, so only the listener
 * races with this.) */
static void send_to(int s, const char *path, const void *msg, size_t len) {
        if (try_send(s, msg, len))
                return;
        uint64_t start = now_ns(), end = start + (uint64_t) UEVENT_WAIT_MS * 1000000u, now = start;
        bool sent = false, waited_enough = stalled_now(path, start);
        while (!sent && !waited_enough && now < end) {
                struct pollfd p = { .fd = s, .events = POLLOUT };
                if (poll(&p, 1, (int) ((end - now) / 1000000u) + 1) < 0 && errno != EINTR)
                        break;
                sent = try_send(s, msg, len);
                now = now_ns();
        }
        listener_wait_ns += now - start;
        if (sent)
                return;
        if (!waited_enough)
                stall(path, now);

        char marker[PATH_MAX];
        dropped_marker(path, marker, sizeof(marker));
        int m = raw_open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        bool armed = m >= 0;
        if (m >= 0)
                next_close(m);
        else if (errno != EEXIST)
                fprintf(stderr, "kernel-emu: cannot mark %s's lost uevents (%s): %s\n", path, marker, strerror(errno));
        /* The listener may have emptied its queue (and gone to sleep in
         * poll(), with nothing to wake it to its ENOBUFS) since the last
         * try: then the message fits after all, and is not lost. */
        if (try_send(s, msg, len) && armed)
                unlink(marker);
}

/* (under the kernel lock, like everything that changes the testbed) */
static void send_uevent(const char *action, const char *dir) {
        static unsigned seq;
        char body[4096], uev[2048], path[PATH_MAX];
        size_t n = 0, rootlen = strlen(root());
        const char *base = strrchr(dir, '/');

        if (fault_is("quiet", base ? base + 1 : dir, "uevents"))
                return;

        n += snprintf(body + n, sizeof(body) - n, "ACTION=%s%cDEVPATH=%s%cSUBSYSTEM=pci%cSEQNUM=%u%c", action, 0,
                      dir + rootlen + strlen("/sys"), 0, 0, (unsigned) getpid() * 1000 + ++seq, 0);
        snprintf(path, sizeof(path), "%s/uevent", dir);
        int fd = raw_open(path, O_RDONLY | O_CLOEXEC);
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
                if (s >= 0 && connect(s, (struct sockaddr *) &sa, sizeof(sa)) == 0)
                        send_to(s, sa.sun_path, msg, 40 + n);
                if (s >= 0)
                        next_close(s);
        }
        globfree(&g);
}

/* ---- the kernel's side of binding ---- */

static void set_uevent_driver(const char *dir, const char *driver) {
        char path[PATH_MAX], text[2048], out[2048];
        snprintf(path, sizeof(path), "%s/uevent", dir);
        int fd = raw_open(path, O_RDONLY | O_CLOEXEC);
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

/* vfio-pci, or a VFIO variant driver (mlx5_vfio_pci, ...): binding one
 * makes the group's /dev/vfio/N */
static bool is_vfio(const char *driver) {
        size_t n = strlen(driver), suffix = strlen("_vfio_pci");
        return strcmp(driver, "vfio-pci") == 0 || (n > suffix && strcmp(driver + n - suffix, "_vfio_pci") == 0);
}

/* Does any device of the group still sit on a VFIO driver? */
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
                found = is_vfio(drv);
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

static void override_of(const char *dir, char *buf, size_t size);

/* pci_device_can_probe(): a VF is probed only with an override, or while
 * its PF's sriov_drivers_autoprobe is 1 */
static bool can_probe(const char *dir) {
        char path[PATH_MAX], text[16], over[NAME_MAX_];
        snprintf(path, sizeof(path), "%s/physfn", dir);
        if (!exists(path))
                return true;
        override_of(dir, over, sizeof(over));
        if (over[0])
                return true;
        snprintf(path, sizeof(path), "%s/physfn/sriov_drivers_autoprobe", dir);
        return read_small(path, text, sizeof(text)) < 0 || strcmp(text, "0") != 0;
}

/* The driver takes the device: 0, -errno, or > 0 from probe_delay() */
static int attach(const char *addr, const char *dir, const char *driver, bool slept) {
        char drvdir[PATH_MAX], link[PATH_MAX], rel[PATH_MAX];

        if (!can_probe(dir))
                return -ENODEV;         /* pci_device_probe() refuses it */
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
        if (is_vfio(driver))
                vfio_node(group_of(dir), true);
        send_uevent("bind", dir);
        return 0;
}

static void sriov_disable(const char *dir);

/* The driver lets go: a PF's driver removes its VFs first, as PF drivers
 * (vfio-pci included) do in their remove() */
static void detach(const char *addr, const char *dir, const char *driver) {
        char link[PATH_MAX];
        sriov_disable(dir);
        snprintf(link, sizeof(link), "%s/driver", dir);
        unlink(link);
        tb(link, sizeof(link), "/sys/bus/pci/drivers/%s/%s", driver, addr);
        unlink(link);
        set_uevent_driver(dir, NULL);
        if (is_vfio(driver) && !group_has_vfio(group_of(dir)))
                vfio_node(group_of(dir), false);
        send_uevent("unbind", dir);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

/* The device is gone from the bus: announced, then its directory, its
 * links and its group membership go; a group left empty goes too. */
static void forget(const char *addr, const char *dir) {
        char link[PATH_MAX];
        int group = group_of(dir);
        send_uevent("remove", dir);
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        tb(link, sizeof(link), "/sys/bus/pci/devices/%s", addr);
        unlink(link);
        if (group < 0)
                return;
        tb(link, sizeof(link), "/sys/kernel/iommu_groups/%d/devices/%s", group, addr);
        unlink(link);
        tb(link, sizeof(link), "/sys/kernel/iommu_groups/%d/devices", group);
        if (rmdir(link) == 0) {
                tb(link, sizeof(link), "/sys/kernel/iommu_groups/%d", group);
                rmdir(link);
        }
}

/* Surprise removal: the driver lets go, the device and its links go away. */
static int vanish(const char *addr, const char *dir) {
        char drv[NAME_MAX_];
        current_driver(dir, drv, sizeof(drv));
        if (drv[0])
                detach(addr, dir, drv);
        else
                sriov_disable(dir);
        forget(addr, dir);
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

/* ---- SR-IOV: drivers/pci/iov.c ---- */

#define PCI_EXT_CAP_ID_SRIOV 0x10
#define PCI_SRIOV_CTRL 0x08
#define PCI_SRIOV_CTRL_VFE 0x0001
#define PCI_SRIOV_CTRL_MSE 0x0008
#define PCI_SRIOV_NUM_VF 0x10
#define CONFIG_SIZE 4096
#define TEMPLATE_MAX 32

static int read_uint(const char *dir, const char *name, unsigned *ret) {
        char path[PATH_MAX], text[32], *end;
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        int r = read_small(path, text, sizeof(text));
        if (r < 0)
                return r;
        errno = 0;
        unsigned long v = strtoul(text, &end, 10);
        if (errno != 0 || end == text || *end || v > UINT_MAX)
                return -EIO;
        *ret = (unsigned) v;
        return 0;
}

static void write_uint(const char *dir, const char *name, unsigned v) {
        char path[PATH_MAX], text[32];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        snprintf(text, sizeof(text), "%u\n", v);
        write_small(path, text);
}

/* lib/kstrtox.c kstrtou16(s, 0, ...): "+", 0x and 0 prefixes, one trailing
 * newline; -ERANGE beyond 16 bits, -EINVAL for anything else */
static int kstrtou16(const char *s, unsigned *ret) {
        unsigned base = 10;
        unsigned long long v = 0;
        bool overflow = false;
        size_t digits = 0;

        if (*s == '+')
                s++;
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && strchr("0123456789abcdefABCDEF", s[2]) && s[2]) {
                base = 16;
                s += 2;
        } else if (s[0] == '0')
                base = 8;
        for (;; s++, digits++) {
                unsigned d;
                if (*s >= '0' && *s <= '9')
                        d = (unsigned) (*s - '0');
                else if ((*s | 0x20) >= 'a' && (*s | 0x20) <= 'f')
                        d = (unsigned) ((*s | 0x20) - 'a' + 10);
                else
                        break;
                if (d >= base)
                        break;
                if (v > (ULLONG_MAX - d) / base)
                        overflow = true;
                v = v * base + d;
        }
        if (overflow)
                return -ERANGE;
        if (digits == 0)
                return -EINVAL;
        if (*s == '\n')
                s++;
        if (*s)
                return -EINVAL;
        if (v > 0xffff)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

/* lib/kstrtox.c kstrtobool(): the first character decides (on/off the first two) */
static int kstrtobool(const char *s, bool *ret) {
        if (strchr("yYtT1", s[0]) && s[0])
                *ret = true;
        else if (strchr("nNfF0", s[0]) && s[0])
                *ret = false;
        else if ((s[0] == 'o' || s[0] == 'O') && (s[1] == 'n' || s[1] == 'N'))
                *ret = true;
        else if ((s[0] == 'o' || s[0] == 'O') && (s[1] == 'f' || s[1] == 'F'))
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

/* The PF's SR-IOV capability: NumVFs and VF Enable / VF MSE, as
 * pci_iov_set_numvfs() and sriov_enable()/sriov_disable() write them */
static void sriov_set_config(const char *dir, unsigned num) {
        char path[PATH_MAX];
        uint8_t cfg[CONFIG_SIZE];
        snprintf(path, sizeof(path), "%s/config", dir);
        int fd = raw_open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return;
        ssize_t n = pread(fd, cfg, sizeof(cfg), 0);
        unsigned off = 0x100;
        for (int hops = 0; n == CONFIG_SIZE && off >= 0x100 && off + 0x14 <= CONFIG_SIZE && hops < 960; hops++) {
                uint32_t hdr = (uint32_t) cfg[off] | (uint32_t) cfg[off + 1] << 8 | (uint32_t) cfg[off + 2] << 16 |
                               (uint32_t) cfg[off + 3] << 24;
                if ((hdr & 0xffff) == PCI_EXT_CAP_ID_SRIOV) {
                        uint16_t ctrl = (uint16_t) (cfg[off + PCI_SRIOV_CTRL] | cfg[off + PCI_SRIOV_CTRL + 1] << 8);
                        if (num)
                                ctrl |= PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE;
                        else
                                ctrl &= (uint16_t) ~(PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
                        uint8_t c[2] = { ctrl & 0xff, ctrl >> 8 }, v[2] = { num & 0xff, (num >> 8) & 0xff };
                        (void) !pwrite(fd, c, 2, off + PCI_SRIOV_CTRL);
                        (void) !pwrite(fd, v, 2, off + PCI_SRIOV_NUM_VF);
                        break;
                }
                off = (hdr >> 20) & 0xffc;
        }
        next_close(fd);
}

/* A relative link at path (in dir) to what lies at target below the
 * testbed's /sys, as sysfs makes them */
static int link_sys(const char *dir, const char *name, const char *target) {
        char rel[PATH_MAX] = "", path[PATH_MAX];
        for (const char *p = dir + strlen(root()) + strlen("/sys"); *p; p++)
                if (*p == '/')
                        strcat(rel, "../");
        strcat(rel, target);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        return symlink(rel, path) < 0 ? -errno : 0;
}

/* pci_iov_remove_virtfn(): VF i of the PF in pfdir goes: its driver lets
 * go (unbind), the virtfn/physfn links, then the device (remove). */
static void vf_remove(const char *pfdir, unsigned i) {
        char link[PATH_MAX], target[PATH_MAX], dir[PATH_MAX], addr[ADDR_MAX], drv[NAME_MAX_];
        snprintf(link, sizeof(link), "%s/virtfn%u", pfdir, i);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
                return;
        target[n] = 0;
        snprintf(addr, sizeof(addr), "%s", strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
        unlink(link);
        if (!device_dir(addr, dir, sizeof(dir)))
                return;         /* gone already (it vanished) */
        current_driver(dir, drv, sizeof(drv));
        if (drv[0])
                detach(addr, dir, drv);
        snprintf(link, sizeof(link), "%s/physfn", dir);
        unlink(link);
        forget(addr, dir);
}

/* sriov_disable(): every VF goes, in index order; NumVFs 0.  Nothing for a
 * device that is no PF or has no VFs. */
static void sriov_disable(const char *dir) {
        unsigned num;
        if (read_uint(dir, "sriov_numvfs", &num) < 0 || num == 0)
                return;
        for (unsigned i = 0; i < num; i++)
                vf_remove(dir, i);
        sriov_set_config(dir, 0);
        write_uint(dir, "sriov_numvfs", 0);
}

typedef struct Template {
        size_t n;
        char name[TEMPLATE_MAX][NAME_MAX_];
        char *data[TEMPLATE_MAX];
        size_t len[TEMPLATE_MAX];
} Template;

static void template_clear(Template *t) {
        for (size_t i = 0; i < t->n; i++)
                free(t->data[i]);
        t->n = 0;
}

static int template_load(const char *pf, Template *t) {
        char dirpath[PATH_MAX], path[PATH_MAX];
        t->n = 0;
        tb(dirpath, sizeof(dirpath), "/emulator/sriov/%s/template", pf);
        glob_t g;
        snprintf(path, sizeof(path), "%s/*", dirpath);
        if (glob(path, 0, NULL, &g) != 0)
                return -ENOENT;
        int r = 0;
        for (size_t i = 0; i < g.gl_pathc && r == 0; i++) {
                if (t->n == TEMPLATE_MAX) {
                        r = -E2BIG;
                        break;
                }
                int fd = raw_open(g.gl_pathv[i], O_RDONLY | O_CLOEXEC);
                struct stat st;
                if (fd < 0 || fstat(fd, &st) < 0 || !(t->data[t->n] = malloc((size_t) st.st_size + 1))) {
                        r = fd < 0 ? -errno : -ENOMEM;
                        if (fd >= 0)
                                next_close(fd);
                        break;
                }
                ssize_t n = pread(fd, t->data[t->n], (size_t) st.st_size, 0);
                next_close(fd);
                snprintf(t->name[t->n], NAME_MAX_, "%s", strrchr(g.gl_pathv[i], '/') + 1);
                t->len[t->n] = n > 0 ? (size_t) n : 0;
                t->data[t->n][t->len[t->n]] = 0;
                t->n++;
        }
        globfree(&g);
        if (r < 0)
                template_clear(t);
        return r;
}

/* One VF the kernel could create, from emulator/sriov/PF/vfs */
typedef struct VfSpec {
        char addr[ADDR_MAX];
        char group[16];         /* "new", a number, or "-" */
        char syspath[PATH_MAX];
} VfSpec;

/* The VFs 0..num-1, or -ENOMEM when one cannot be (sriov_enable(): its bus
 * is beyond the bridge's range) */
static int vf_specs(const char *pf, unsigned num, VfSpec *specs) {
        char path[PATH_MAX], line[PATH_MAX + 128];
        unsigned found = 0, i;
        tb(path, sizeof(path), "/emulator/sriov/%s/vfs", pf);
        FILE *f = raw_fopen(path);
        if (!f)
                return -ENOMEM;
        while (fgets(line, sizeof(line), f)) {
                VfSpec s;
                if (sscanf(line, "%u %31s %15s %4095s", &i, s.addr, s.group, s.syspath) == 4 && i < num) {
                        specs[i] = s;
                        found++;
                }
        }
        fclose(f);
        return found == num ? 0 : -ENOMEM;
}

/* The group a new VF joins: an iommu_group_alloc() takes the lowest number
 * no group has (ida_alloc); *next is where to start looking */
static int vf_group(const char *spec, int *next) {
        char path[PATH_MAX];
        if (strcmp(spec, "-") == 0)
                return -1;
        int g = atoi(spec);
        if (strcmp(spec, "new") == 0)
                for (g = *next;; g++) {
                        tb(path, sizeof(path), "/sys/kernel/iommu_groups/%d", g);
                        if (!exists(path))
                                break;
                }
        tb(path, sizeof(path), "/sys/kernel/iommu_groups/%d", g);
        mkdir(path, 0755);
        tb(path, sizeof(path), "/sys/kernel/iommu_groups/%d/devices", g);
        mkdir(path, 0755);
        if (strcmp(spec, "new") == 0)
                *next = g + 1;
        return g;
}

static int write_file(const char *dir, const char *name, const char *data, size_t len) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        int fd = raw_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        ssize_t n = pwrite(fd, data, len, 0);
        int e = errno;
        next_close(fd);
        return n < 0 ? -e : 0;
}

/* pci_iov_add_virtfn() and pci_bus_add_device(): VF i appears (add), with
 * its links, and is probed (bind) when it can be */
static int vf_add(const char *pf, const char *pfdir, unsigned i, const VfSpec *spec, const Template *t,
                  const char *override, int *next_group) {
        char dir[PATH_MAX], path[PATH_MAX], target[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s%s", root(), spec->syspath);
        if (mkdir(dir, 0755) < 0)
                return -errno;
        for (size_t k = 0; k < t->n; k++) {
                if (strcmp(t->name[k], "uevent") == 0) {
                        /* the template's own slot name is VF 0's */
                        char out[2048];
                        size_t n = 0;
                        char *copy = strdup(t->data[k]), *save = NULL;
                        if (!copy)
                                return -ENOMEM;
                        char *l = strtok_r(copy, "\n", &save);
                        for (; l && n < sizeof(out); l = strtok_r(NULL, "\n", &save)) {
                                bool slot = strncmp(l, "PCI_SLOT_NAME=", 14) == 0;
                                n += (size_t) snprintf(out + n, sizeof(out) - n, "%s%s\n", slot ? "PCI_SLOT_NAME=" : l,
                                                       slot ? spec->addr : "");
                        }
                        free(copy);
                        write_file(dir, "uevent", out, n < sizeof(out) ? n : sizeof(out) - 1);
                } else if (strcmp(t->name[k], "driver_override") == 0 && override)
                        write_file(dir, "driver_override", override, strlen(override));
                else
                        write_file(dir, t->name[k], t->data[k], t->len[k]);
        }
        const char *rel = spec->syspath + strlen("/sys/");
        link_sys(dir, "subsystem", "bus/pci");
        int group = vf_group(spec->group, next_group);
        if (group >= 0) {
                snprintf(target, sizeof(target), "kernel/iommu_groups/%d", group);
                link_sys(dir, "iommu_group", target);
                tb(path, sizeof(path), "/sys/kernel/iommu_groups/%d/devices", group);
                link_sys(path, spec->addr, rel);
        }
        tb(path, sizeof(path), "/sys/bus/pci/devices");
        link_sys(path, spec->addr, rel);
        snprintf(path, sizeof(path), "%s/virtfn%u", pfdir, i);
        snprintf(target, sizeof(target), "../%s", spec->addr);
        symlink(target, path);
        snprintf(path, sizeof(path), "%s/physfn", dir);
        snprintf(target, sizeof(target), "../%s", pf);
        symlink(target, path);
        /* device_add() announces it before pci_iov_sysfs_link(), but
         * listeners hear it from udevd, which is done with it by then */
        send_uevent("add", dir);

        /* pci_bus_add_device(): device_attach(), as drivers_probe does */
        char over[NAME_MAX_], native[NAME_MAX_];
        override_of(dir, over, sizeof(over));
        native_driver(spec->addr, native, sizeof(native));
        const char *candidate = over[0] ? over : native;
        if (candidate[0] && driver_loaded(candidate))
                (void) attach(spec->addr, dir, candidate, true);        /* a failed probe is no error */
        return 0;
}

/* sriov_enable(): VFs 0..num-1 appear, each probed before the next; the PF
 * announces the change */
static int sriov_enable(const char *pf, const char *dir, unsigned num) {
        VfSpec *specs = calloc(num, sizeof(VfSpec));
        Template t = { 0 };
        char drv[NAME_MAX_];
        if (!specs)
                return -ENOMEM;
        int r = vf_specs(pf, num, specs);
        if (r < 0)
                fprintf(stderr, "kernel-emu: %s: no VF 0..%u in emulator/sriov/%s/vfs (ENOMEM, as a bus out of "
                        "range)\n", pf, num - 1, pf);
        else if ((r = template_load(pf, &t)) < 0)
                fprintf(stderr, "kernel-emu: %s: no VF template in emulator/sriov/%s/template: %s\n", pf, pf,
                        strerror(-r));
        if (r < 0) {
                free(specs);
                return r;
        }
        /* vfio-pci's bus notifier gives the PF's new VFs its own name as override */
        current_driver(dir, drv, sizeof(drv));
        const char *override = strcmp(drv, "vfio-pci") == 0 ? "vfio-pci\n" : NULL;
        sriov_set_config(dir, num);
        int next_group = 0;
        for (unsigned i = 0; i < num && r == 0; i++)
                r = vf_add(pf, dir, i, &specs[i], &t, override, &next_group);
        if (r < 0) {
                /* as sriov_add_vfs() unwinds: the VFs made so far go */
                write_uint(dir, "sriov_numvfs", num);
                sriov_disable(dir);
        } else {
                send_uevent("change", dir);
                write_uint(dir, "sriov_numvfs", num);
        }
        template_clear(&t);
        free(specs);
        return r;
}

/* Has the PF's driver a sriov_configure()?  Not the one named in
 * emulator/sriov/PF/no-configure; vfio-pci's refuses (ENOENT) while its
 * enable_sriov parameter is off. */
static bool has_sriov_configure(const char *pf, const char *driver) {
        char path[PATH_MAX], line[256], text[16];
        bool found = false;
        if (strcmp(driver, "vfio-pci") == 0) {
                tb(path, sizeof(path), "/sys/module/vfio_pci/parameters/enable_sriov");
                if (read_small(path, text, sizeof(text)) >= 0 && strchr("nN0", text[0]))
                        return false;
        }
        tb(path, sizeof(path), "/emulator/sriov/%s/no-configure", pf);
        FILE *f = raw_fopen(path);
        if (!f)
                return true;
        while (!found && fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\n")] = 0;
                found = strcmp(line, driver) == 0;
        }
        fclose(f);
        return !found;
}

/* sriov_numvfs_store() */
static int op_numvfs(const char *pf, const char *text) {
        char dir[PATH_MAX], drv[NAME_MAX_];
        unsigned num, total, cur;
        if (!device_dir(pf, dir, sizeof(dir)))
                return -ENODEV;
        if (vanishes(pf, dir, "sriov"))
                return -ENODEV;
        int r = kstrtou16(text, &num);
        if (r < 0)
                return r;
        if ((r = read_uint(dir, "sriov_totalvfs", &total)) < 0 || (r = read_uint(dir, "sriov_numvfs", &cur)) < 0) {
                fprintf(stderr, "kernel-emu: %s: no SR-IOV counts to read: %s\n", pf, strerror(-r));
                return -EIO;    /* no PF: the kernel has no such file */
        }
        if (num > total)
                return -ERANGE;
        if (num == cur)
                return 0;
        current_driver(dir, drv, sizeof(drv));
        if (!drv[0] || !has_sriov_configure(pf, drv))
                return -ENOENT;
        if (num == 0) {
                if (fault_is("fail", pf, "sriov"))
                        return -EIO;
                sriov_disable(dir);
                return 0;
        }
        if (cur)
                return -EBUSY;
        if (fault_is("fail", pf, "sriov"))
                return -EIO;
        return sriov_enable(pf, dir, num);
}

/* sriov_drivers_autoprobe_store(): stored as 0 or 1 */
static int op_autoprobe(const char *pf, const char *text) {
        char dir[PATH_MAX], path[PATH_MAX];
        bool on;
        if (!device_dir(pf, dir, sizeof(dir)))
                return -ENODEV;
        if (vanishes(pf, dir, "autoprobe"))
                return -ENODEV;
        snprintf(path, sizeof(path), "%s/sriov_drivers_autoprobe", dir);
        if (!exists(path))
                return -EIO;
        if (kstrtobool(text, &on) < 0)
                return -EINVAL;
        return write_small(path, on ? "1\n" : "0\n");
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
        int fd = raw_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
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
        int fd = raw_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
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
                case KIND_NUMVFS:
                        r = op_numvfs(arg, text);
                        break;
                case KIND_AUTOPROBE:
                        r = op_autoprobe(arg, text);
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

/* fd was just opened at path for writing: is it one of the emulated files?
 * -EMFILE when it is and cannot be tracked. */
static int track(int fd, const char *path) {
        Tracked *t = tracked_at(fd, false);
        if (t)
                atomic_store(&t->kind, KIND_NONE);
        if (!root() || (strncmp(path, SYS_PCI, strlen(SYS_PCI)) != 0 && strncmp(path, "/sys/devices/", 13) != 0))
                return 0;
        const char *base = strrchr(path, '/') + 1;
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%.*s", (int) (base - 1 - path), path);
        const char *pbase = strrchr(parent, '/') ? strrchr(parent, '/') + 1 : parent;
        Kind kind = KIND_NONE;

        if (strcmp(path, SYS_PCI "drivers_probe") == 0)
                kind = KIND_PROBE;
        else if (strcmp(base, "driver_override") == 0)
                kind = KIND_OVERRIDE;
        else if (strcmp(base, "sriov_numvfs") == 0)
                kind = KIND_NUMVFS;
        else if (strcmp(base, "sriov_drivers_autoprobe") == 0)
                kind = KIND_AUTOPROBE;
        else if (strncmp(path, SYS_PCI "drivers/", strlen(SYS_PCI "drivers/")) == 0 && strcmp(base, "bind") == 0)
                kind = KIND_BIND;
        else if (strncmp(path, SYS_PCI "drivers/", strlen(SYS_PCI "drivers/")) == 0 && strcmp(base, "unbind") == 0)
                kind = KIND_UNBIND;
        if (kind == KIND_NONE)
                return 0;
        struct stat st;
        if (!(t = tracked_at(fd, true)) || syscall(SYS_fstat, fd, &st) < 0) {
                fprintf(stderr, "kernel-emu: cannot follow writes on fd %d (%s); refusing to open it (EMFILE)\n", fd,
                        path);
                return -EMFILE;
        }
        t->dev = st.st_dev;
        t->ino = st.st_ino;
        snprintf(t->arg, sizeof(t->arg), "%s", pbase);
        atomic_store_explicit(&t->kind, kind, memory_order_release);
        return 0;
}

/* ---- umockdev's ioctl sockets ---- */

static bool raw_exists(const char *path) {
        return syscall(SYS_faccessat, AT_FDCWD, path, F_OK) == 0;
}

/* umockdev's open() and fopen() (0.17.16; 0.19 alike) hand every path
 * below /dev/ to ioctl_emulate_open(), which makes a socket for
 * $UMOCKDEV_DIR/ioctl/PATH, else ioctl/_default, and when neither is there
 * returns without closing it: one fd leaked per open of /dev/null, of a
 * testbed node, or of any file of a testbed below /dev/shm, which tests
 * and benchmarks use (iovirtd reads its $IOVIRT_ROOT files there, some
 * 150 a second under load: 9,400 fds in a minute).  (For a path the
 * testbed has, it even exits.)  Such a path, without an ioctl handler to
 * talk to, is opened here instead: the testbed's copy when there is one
 * (and the testbed is not disabled), as trap_path() would choose, else the
 * path itself.  True with the path to open in real. */
static bool dev_path_without_ioctl(const char *path, char *real, size_t size) {
        char p[PATH_MAX];
        const char *r = root();
        if (!path || strncmp(path, "/dev/", 5) != 0)
                return false;
        if (r) {
                snprintf(p, sizeof(p), "%s/ioctl/%s", r, path);
                if (raw_exists(p))
                        return false;
                snprintf(p, sizeof(p), "%s/ioctl/_default", r);
                if (raw_exists(p))
                        return false;
                snprintf(p, sizeof(p), "%s/disabled", r);
                if (!raw_exists(p)) {
                        snprintf(p, sizeof(p), "%s%s", r, path);
                        if (raw_exists(p) && strlen(p) < size) {
                                memcpy(real, p, strlen(p) + 1);
                                return true;
                        }
                }
        }
        if (strlen(path) >= size)
                return false;
        memcpy(real, path, strlen(path) + 1);
        return true;
}

static int flags_need_mode(int flags) {
        return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

static int do_openat(int dirfd, const char *path, int flags, mode_t mode) {
        char real[PATH_MAX];
        resolve();
        int fd;
        if (dirfd == AT_FDCWD && dev_path_without_ioctl(path, real, sizeof(real)))
                fd = (int) syscall(SYS_openat, AT_FDCWD, real, flags, mode);
        else
                fd = dirfd == AT_FDCWD ? next_open(path, flags, mode) : next_openat(dirfd, path, flags, mode);
        if (fd >= 0 && (flags & O_ACCMODE) != O_RDONLY && path[0] == '/') {
                int r = track(fd, path);
                if (r < 0) {
                        next_close(fd);
                        errno = -r;
                        return -1;
                }
        }
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

/* what open() becomes with _FORTIFY_SOURCE when the flags are not constant */
int __open_2(const char *path, int flags) {
        return do_openat(AT_FDCWD, path, flags, 0);
}

int __open64_2(const char *path, int flags) {
        return do_openat(AT_FDCWD, path, flags | O_LARGEFILE, 0);
}

static FILE *do_fopen(const char *path, const char *mode) {
        char real[PATH_MAX];
        resolve();
        if (libc_fopen && dev_path_without_ioctl(path, real, sizeof(real)))
                return libc_fopen(real, mode);
        return next_fopen(path, mode);
}

FILE *fopen(const char *path, const char *mode) {
        return do_fopen(path, mode);
}

FILE *fopen64(const char *path, const char *mode) {
        return do_fopen(path, mode);
}

int close(int fd) {
        resolve();
        Tracked *t = tracked_at(fd, false);
        if (t)
                atomic_store(&t->kind, KIND_NONE);      /* before the number can come back */
        return next_close(fd);
}

ssize_t write(int fd, const void *buf, size_t count) {
        resolve();
        Tracked *t = tracked_at(fd, false);
        Kind kind = t ? atomic_load_explicit(&t->kind, memory_order_acquire) : KIND_NONE;
        struct stat st;
        if (kind != KIND_NONE && (syscall(SYS_fstat, fd, &st) < 0 || st.st_dev != t->dev || st.st_ino != t->ino)) {
                /* closed without close() and the number reused: not ours any more */
                atomic_store(&t->kind, KIND_NONE);
                kind = KIND_NONE;
        }
        if (kind == KIND_NONE || !root())
                return next_write(fd, buf, count);

        char arg[NAME_MAX_], text[256], addr[ADDR_MAX];
        memcpy(arg, t->arg, sizeof(arg));
        arg[sizeof(arg) - 1] = 0;
        snprintf(text, sizeof(text), "%.*s", (int) (count < sizeof(text) ? count : sizeof(text) - 1),
                 (const char *) buf);
        snprintf(addr, sizeof(addr), "%.*s", (int) strcspn(text, "\n"), text);

        uint64_t t0 = now_ns();
        listener_wait_ns = 0;
        hold(kind_on_device(kind) ? arg : addr, kind);
        int r = emulate(kind, arg, text, addr);
        uint64_t spent = now_ns() - t0;
        account(spent > listener_wait_ns ? spent - listener_wait_ns : 0);
        if (r < 0) {
                errno = -r;
                return -1;
        }
        return (ssize_t) count;
}

/* ---- the udev monitor's receive buffer overflowing ---- */

/* Is fd umockdev's stand-in for a NETLINK_KOBJECT_UEVENT socket: a unix
 * socket bound to $UMOCKDEV_DIR/eventN (its bind() names it so)?  path:
 * where it is bound. */
static bool monitor_socket(int fd, char path[static sizeof(((struct sockaddr_un *) 0)->sun_path)]) {
        struct sockaddr_un sa;
        socklen_t len = sizeof(sa);
        char prefix[PATH_MAX];
        if (!root() || getsockname(fd, (struct sockaddr *) &sa, &len) < 0 || sa.sun_family != AF_UNIX ||
            len <= offsetof(struct sockaddr_un, sun_path))
                return false;
        size_t got = len - offsetof(struct sockaddr_un, sun_path);
        sa.sun_path[got < sizeof(sa.sun_path) ? got : sizeof(sa.sun_path) - 1] = 0;
        tb(prefix, sizeof(prefix), "/event");
        size_t n = strlen(prefix);
        memcpy(path, sa.sun_path, sizeof(sa.sun_path));
        return strncmp(sa.sun_path, prefix, n) == 0 && sa.sun_path[n] && strspn(sa.sun_path + n, "0123456789") ==
               strlen(sa.sun_path + n);
}

/* A monitor's receive fails with ENOBUFS once for each "overflow monitor
 * uevents" (whoever creates emulator/overflowed takes it), and once for any
 * number of uevents send_to() dropped for it since its last ENOBUFS (whoever
 * removes emulator/dropped-eventN takes it) */
static bool overflows(int fd) {
        char path[PATH_MAX], text[64], bound[sizeof(((struct sockaddr_un *) 0)->sun_path)];
        if (!monitor_socket(fd, bound))
                return false;
        dropped_marker(bound, path, sizeof(path));
        if (unlink(path) == 0)
                return true;
        if (!fault_is("overflow", "monitor", "uevents"))
                return false;
        tb(path, sizeof(path), "/emulator/overflowed");
        int m = raw_open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (m < 0)
                return false;
        int n = snprintf(text, sizeof(text), "%d %d\n", (int) getpid(), fd);
        (void) !pwrite(m, text, (size_t) n, 0);
        next_close(m);
        return true;
}

/* A monitor just bound has lost nothing: a mark left for an earlier
 * listener at the same eventN (a daemon that was restarted) is not its */
int bind(int fd, const struct sockaddr *addr, socklen_t len) {
        char bound[sizeof(((struct sockaddr_un *) 0)->sun_path)], marker[PATH_MAX];
        resolve();
        int r = next_bind(fd, addr, len);
        if (r == 0 && monitor_socket(fd, bound)) {
                dropped_marker(bound, marker, sizeof(marker));
                (void) unlink(marker);
        }
        return r;
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
        resolve();
        if (overflows(fd)) {
                errno = ENOBUFS;
                return -1;
        }
        return next_recvmsg(fd, msg, flags);
}

ssize_t recv(int fd, void *buf, size_t len, int flags) {
        resolve();
        if (overflows(fd)) {
                errno = ENOBUFS;
                return -1;
        }
        return next_recv(fd, buf, len, flags);
}
