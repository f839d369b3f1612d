/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sysfs-threads: PCI sysfs writes from several threads of one process, as
 * iovirtd's workers make them, through the kernel-behaviour emulator.
 *
 *   sysfs-threads stress ROUNDS ADDRESS...
 *       one thread per ADDRESS, each ROUNDS times: driver_override vfio-pci,
 *       unbind from its driver, drivers_probe, then it must be on vfio-pci
 *       with /dev/vfio/N there; unbind from vfio-pci, clear driver_override,
 *       drivers_probe, then it must be back on its driver.  The threads of
 *       even index end on vfio-pci.  Prints one line per thing found wrong,
 *       then "writes N" (the writes the emulator saw); exits 1 if anything
 *       was wrong.
 *
 *   sysfs-threads beside WAIT PATH TEXT PATH2 TEXT2
 *       a thread writes TEXT to PATH; when WAIT holds (WAIT is a file that
 *       exists, or "sleeping": that thread sleeps in nanosleep), this thread
 *       writes TEXT2 to PATH2 and prints "second: RESULT" and "first:
 *       running" (or "first: done"); with "sleeping" it then wakes the first
 *       thread with SIGUSR1.  It waits for the first write and prints
 *       "first: RESULT".  RESULT is "ok" or the errno name.  Waiting for WAIT
 *       gives up after 10 s ("second: not started").
 *
 *   sysfs-threads stress-above FD ROUNDS ADDRESS...
 *       stress, with every fd below FD taken first: each write goes through
 *       an fd numbered FD or above, as in a daemon with thousands open
 *
 *   sysfs-threads opens PATH N
 *       opens PATH N times with open() and N times with fopen(), closing
 *       each; prints "open: leaked K" and "fopen: leaked K", the fds still
 *       open afterwards that were not before
 *
 *   sysfs-threads listen
 *       a udev monitor's socket, as libudev makes it (NETLINK_KOBJECT_UEVENT;
 *       umockdev's preload makes it a unix socket bound to
 *       $UMOCKDEV_DIR/eventN); prints "listening eventN".  For each line
 *       read on stdin it receives (recvmsg) until nothing is waiting and
 *       prints a line for each: "ENOBUFS", or the uevent's "ACTION ADDRESS";
 *       then "end".
 *
 * Paths the emulator changes are read from the testbed, $UMOCKDEV_DIR. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <linux/netlink.h>
#include <time.h>
#include <unistd.h>

#define DEVICES "/sys/bus/pci/devices/"
#define DRIVERS "/sys/bus/pci/drivers/"
#define WAIT_MS 10000

static atomic_uint writes;
static atomic_uint wrong;

/* One write(2), as the daemon makes it: 0 or -errno */
static int put(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        atomic_fetch_add(&writes, 1);
        int r = write(fd, text, strlen(text)) < 0 ? -errno : 0;
        close(fd);
        return r;
}

static const char *result(int r) {
        return r == 0 ? "ok" : strerrorname_np(-r);
}

/* The last component of a link in the testbed, "" when there is none */
static void link_name(const char *addr, const char *name, char *buf, size_t size) {
        char path[PATH_MAX], target[PATH_MAX];
        snprintf(path, sizeof(path), "%s" DEVICES "%s/%s", getenv("UMOCKDEV_DIR"), addr, name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        buf[0] = 0;
        if (n > 0) {
                target[n] = 0;
                const char *base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
                if (strlen(base) < size)
                        memcpy(buf, base, strlen(base) + 1);
        }
}

static bool node_exists(const char *group) {
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof(path), "%s/dev/vfio/%s", getenv("UMOCKDEV_DIR"), group);
        return stat(path, &st) == 0;
}

#define WRONG(addr, round, fmt, ...)                                                    \
        do {                                                                            \
                atomic_fetch_add(&wrong, 1);                                            \
                printf("%s round %d: " fmt "\n", addr, round, ##__VA_ARGS__);           \
        } while (0)

typedef struct Cycler {
        const char *addr;
        int rounds;
        bool end_on_vfio;
} Cycler;

static void *cycle(void *userdata) {
        const Cycler *c = userdata;
        char path[PATH_MAX], native[64], drv[64], group[16];
        int r;

        link_name(c->addr, "driver", native, sizeof(native));
        link_name(c->addr, "iommu_group", group, sizeof(group));
        for (int i = 0; i < c->rounds; i++) {
                snprintf(path, sizeof(path), DEVICES "%s/driver_override", c->addr);
                if ((r = put(path, "vfio-pci")) < 0)
                        WRONG(c->addr, i, "driver_override: %s", result(r));
                link_name(c->addr, "driver", drv, sizeof(drv));
                if (drv[0]) {
                        snprintf(path, sizeof(path), DRIVERS "%s/unbind", drv);
                        if ((r = put(path, c->addr)) < 0)
                                WRONG(c->addr, i, "unbind from %s: %s", drv, result(r));
                }
                if ((r = put("/sys/bus/pci/drivers_probe", c->addr)) < 0)
                        WRONG(c->addr, i, "drivers_probe: %s", result(r));
                link_name(c->addr, "driver", drv, sizeof(drv));
                if (strcmp(drv, "vfio-pci") != 0)
                        WRONG(c->addr, i, "on '%s' after probing for vfio-pci", drv);
                if (!node_exists(group))
                        WRONG(c->addr, i, "on vfio-pci without /dev/vfio/%s", group);
                if (c->end_on_vfio && i == c->rounds - 1)
                        break;
                sched_yield();          /* let the others move: the group's node must stay */
                if (!node_exists(group))
                        WRONG(c->addr, i, "still on vfio-pci, but /dev/vfio/%s has gone", group);

                if ((r = put(DRIVERS "vfio-pci/unbind", c->addr)) < 0)
                        WRONG(c->addr, i, "unbind from vfio-pci: %s", result(r));
                snprintf(path, sizeof(path), DEVICES "%s/driver_override", c->addr);
                if ((r = put(path, "\n")) < 0)
                        WRONG(c->addr, i, "clearing driver_override: %s", result(r));
                if ((r = put("/sys/bus/pci/drivers_probe", c->addr)) < 0)
                        WRONG(c->addr, i, "drivers_probe back: %s", result(r));
                link_name(c->addr, "driver", drv, sizeof(drv));
                if (strcmp(drv, native) != 0)
                        WRONG(c->addr, i, "on '%s' after probing for '%s'", drv, native);
        }
        return NULL;
}

static int stress(int rounds, int n, char **addrs) {
        pthread_t threads[n];
        Cycler cyclers[n];
        for (int i = 0; i < n; i++) {
                cyclers[i] = (Cycler) { .addr = addrs[i], .rounds = rounds, .end_on_vfio = i % 2 == 0 };
                if (pthread_create(&threads[i], NULL, cycle, &cyclers[i]) != 0) {
                        fprintf(stderr, "pthread_create failed\n");
                        return 1;
                }
        }
        for (int i = 0; i < n; i++)
                pthread_join(threads[i], NULL);
        printf("writes %u\n", atomic_load(&writes));
        return atomic_load(&wrong) ? 1 : 0;
}

/* Takes every free fd below above, so that the next open() gets one above */
static int take_fds_below(int above) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -errno;
        if (rl.rlim_cur < (rlim_t) above + 256) {
                rl.rlim_cur = rl.rlim_max < (rlim_t) above + 256 ? rl.rlim_max : (rlim_t) above + 256;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < (rlim_t) above + 256)
                        return -EMFILE;
        }
        for (;;) {
                int fd = dup(0);
                if (fd < 0)
                        return -errno;
                if (fd >= above - 1)
                        return 0;
        }
}

/* ---- opens ---- */

static int open_fds(void) {
        struct rlimit rl;
        int n = 0;
        getrlimit(RLIMIT_NOFILE, &rl);
        for (int fd = 0; fd < (int) rl.rlim_cur && fd < 65536; fd++)
                n += fcntl(fd, F_GETFD) >= 0;
        return n;
}

static int opens(const char *path, int n) {
        int before = open_fds();
        for (int i = 0; i < n; i++) {
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                        printf("open: %s\n", strerrorname_np(errno));
                        return 1;
                }
                close(fd);
        }
        int after = open_fds();
        printf("open: leaked %d\n", after - before);
        for (int i = 0; i < n; i++) {
                FILE *f = fopen(path, "re");
                if (!f) {
                        printf("fopen: %s\n", strerrorname_np(errno));
                        return 1;
                }
                fclose(f);
        }
        printf("fopen: leaked %d\n", open_fds() - after);
        return 0;
}

/* ---- listen ---- */

static int listen_uevents(void) {
        int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
        struct sockaddr_nl nl = { .nl_family = AF_NETLINK, .nl_groups = 2 };
        struct sockaddr_un sa;
        socklen_t len = sizeof(sa);
        char line[64];

        if (s < 0 || bind(s, (struct sockaddr *) &nl, sizeof(nl)) < 0 ||
            getsockname(s, (struct sockaddr *) &sa, &len) < 0 || sa.sun_family != AF_UNIX) {
                printf("no monitor socket: %s\n", strerrorname_np(errno));
                return 1;
        }
        printf("listening %s\n", strrchr(sa.sun_path, '/') ? strrchr(sa.sun_path, '/') + 1 : sa.sun_path);
        while (fgets(line, sizeof(line), stdin)) {
                for (;;) {
                        char buf[8192], action[64] = "", addr[64] = "";
                        struct iovec iov = { buf, sizeof(buf) - 1 };
                        struct sockaddr_nl from;
                        struct msghdr msg = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
                                              .msg_iovlen = 1 };
                        ssize_t n = recvmsg(s, &msg, 0);
                        if (n < 0 && errno == ENOBUFS) {
                                printf("ENOBUFS\n");
                                continue;
                        }
                        if (n < 0)
                                break;
                        buf[n] = 0;
                        /* "libudev" header (40 bytes), then KEY=VALUE\0... */
                        for (size_t off = 40; off < (size_t) n; off += strlen(buf + off) + 1) {
                                if (strncmp(buf + off, "ACTION=", 7) == 0)
                                        snprintf(action, sizeof(action), "%s", buf + off + 7);
                                else if (strncmp(buf + off, "PCI_SLOT_NAME=", 14) == 0)
                                        snprintf(addr, sizeof(addr), "%s", buf + off + 14);
                        }
                        printf("%s %s\n", action, addr);
                }
                printf("end\n");
        }
        return 0;
}

/* ---- beside ---- */

typedef struct First {
        const char *path, *text;
        atomic_int tid;
        atomic_bool done;
        int r;
} First;

static void *first_write(void *userdata) {
        First *f = userdata;
        atomic_store(&f->tid, (int) gettid());
        f->r = put(f->path, f->text);
        atomic_store(&f->done, true);
        return NULL;
}

/* Is thread tid inside nanosleep(2)?  /proc/self/task/TID/syscall starts
 * with the number of the system call it is blocked in. */
static bool sleeping(int tid) {
        char path[64], buf[64] = "";
        snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
        FILE *f = fopen(path, "re");
        if (!f)
                return false;
        bool in = fgets(buf, sizeof(buf), f) != NULL;
        fclose(f);
        long nr = in ? strtol(buf, NULL, 10) : -1;
        return in && (nr == SYS_clock_nanosleep || nr == SYS_nanosleep);
}

static void nothing(int sig) {
        (void) sig;
}

static int beside(const char *wait, char **args) {
        First f = { .path = args[0], .text = args[1] };
        bool by_sleep = strcmp(wait, "sleeping") == 0;
        pthread_t t;

        struct sigaction sa = { .sa_handler = nothing };   /* no SA_RESTART: the signal ends a sleep */
        sigaction(SIGUSR1, &sa, NULL);
        if (pthread_create(&t, NULL, first_write, &f) != 0) {
                fprintf(stderr, "pthread_create failed\n");
                return 1;
        }
        bool ready = false;
        for (int ms = 0; ms < WAIT_MS && !ready && !atomic_load(&f.done); ms++) {
                ready = by_sleep ? atomic_load(&f.tid) && sleeping(atomic_load(&f.tid)) : access(wait, F_OK) == 0;
                if (!ready)
                        nanosleep(&(struct timespec) { 0, 1000000 }, NULL);
        }
        if (ready) {
                int r = put(args[2], args[3]);
                printf("second: %s\n", result(r));
                printf("first: %s\n", atomic_load(&f.done) ? "done" : "running");
        } else
                printf("second: not started\n");
        fflush(stdout);
        if (by_sleep)
                pthread_kill(t, SIGUSR1);
        pthread_join(t, NULL);
        printf("first: %s\n", result(f.r));
        return 0;
}

int main(int argc, char **argv) {
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (argc >= 4 && strcmp(argv[1], "stress") == 0)
                return stress(atoi(argv[2]), argc - 3, argv + 3);
        if (argc >= 5 && strcmp(argv[1], "stress-above") == 0) {
                int r = take_fds_below(atoi(argv[2]));
                if (r < 0) {
                        printf("cannot take the fds below %s: %s\n", argv[2], strerrorname_np(-r));
                        return 1;
                }
                return stress(atoi(argv[3]), argc - 4, argv + 4);
        }
        if (argc == 4 && strcmp(argv[1], "opens") == 0)
                return opens(argv[2], atoi(argv[3]));
        if (argc == 2 && strcmp(argv[1], "listen") == 0)
                return listen_uevents();
        if (argc == 7 && strcmp(argv[1], "beside") == 0)
                return beside(argv[2], argv + 3);
        fprintf(stderr, "usage: sysfs-threads stress ROUNDS ADDRESS...\n"
                        "       sysfs-threads stress-above FD ROUNDS ADDRESS...\n"
                        "       sysfs-threads opens PATH N\n"
                        "       sysfs-threads listen\n"
                        "       sysfs-threads beside WAIT PATH TEXT PATH2 TEXT2\n");
        return 2;
}
