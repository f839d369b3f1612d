/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: iovirtd's D-Bus method handlers, in process.
 *
 * The real org.iovirt1.Manager vtable (daemon/, through libiovirtd_dep) is
 * served on a server sd_bus over a socketpair, with a client sd_bus as the
 * caller, both on the manager's own sd-event loop.  Each input is one call:
 *
 *   byte 0   flags: bit 0 the caller is uid 65534 (else the fuzzer's uid,
 *            root on CI), bit 1 the signature is the input's (a raw, most
 *            likely wrong one) instead of the method's
 *   byte 1   the method: an index into the vtable's methods followed by
 *            org.freedesktop.DBus.{Properties,Introspectable,Peer}'s;
 *            one past the end is a member named by the input
 *   then     [raw signature: a string], the arguments, built from the
 *            bytes after the signature (gen_type(): strings are a length
 *            byte, 0xf0+ for a two-byte length, and the bytes, made valid
 *            UTF-8; integers little-endian; an array a count byte; a
 *            variant a type byte), then one byte per polkit question (a
 *            non-root caller's guarded call asks CheckAuthorization over
 *            the same connection: authorized, challenge, no, polkit absent,
 *            polkit failing, an answer that cannot be read).
 *
 * Checked for every call: exactly one reply (a method return or an error),
 * every error named org.iovirt1.Error.* or org.freedesktop.DBus.Error.*,
 * no job or SR-IOV wait left running once it is answered, and the
 * sanitizers' verdicts (crash, leak, undefined behaviour).
 *
 * The host is the "sriov" host of tests/hosts/hosts.py, with the example
 * policy, behind the kernel-behaviour emulator of tests/emulator and
 * umockdev.  One Manager (discovery, policy, state, udev monitor) serves
 * calls for as long as they leave the testbed and the state directory as
 * they were; every call gets a new connection (its own credentials).  A
 * call that changed either (an assignment, VFs; inotify says so) ends that
 * Manager, the testbed and state directory are copied back from the
 * pristine tree, and the next call gets a new Manager: what an input does
 * depends on the input alone, up to what a Manager keeps between calls
 * that change nothing (the JSON documents it caches, the libvirt lookups
 * it remembers by sender and cookie; the cookies here are unique, as
 * (sender, cookie) is on a bus).  What persists for the process: libvirt's
 * event-loop thread, started on first use, by design.
 *
 * The sandbox (LLVMFuzzerInitialize): the testbed is built once in a
 * temporary directory (tests/hosts/build-host), then the process unshares
 * its network and PID namespaces (with a user namespace when it is not
 * root) and runs itself again as pid 2 under a reaper, with LD_PRELOAD
 * pointing at the emulator and umockdev and $UMOCKDEV_DIR, $IOVIRT_ROOT and
 * $STATE_DIRECTORY at the temporary tree.  So a mutating method writes only
 * the testbed's sysfs, ConfigureVf's rtnetlink requests reach an empty
 * network namespace, and "pid:N" consumers name only this process tree
 * (memlock raised on the reaper or on the fuzzer itself).  It refuses to
 * run when /sys is not the testbed.  The outer process removes the
 * temporary directory when the fuzzer exits.
 *
 * Where things are: $IOVIRT_FUZZ_SOURCE_DIR (the source tree, for
 * tests/hosts/build-host and tests/dbus/libvirt-host.xml) and
 * $IOVIRT_FUZZ_EMULATOR (libkernel-emu.so); each defaults to what the meson
 * build directory holding this executable says (meson-info).
 * $IOVIRT_FUZZ_DEBUG=1 lets iovirtd log at debug level. */

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "fuzz.h"
#include "iovirt-domain.h"
#include "iovirt-names.h"
#include "iovirt-sysfs.h"
#include "iovirt-util.h"
#include "iovirtd-assign.h"
#include "iovirtd-bouncer.h"
#include "iovirtd-libvirt.h"
#include "iovirtd-log.h"
#include "iovirtd-manager.h"
#include "iovirtd-policy.h"
#include "iovirtd-sriov.h"

extern char **environ;

#define ENV_SANDBOX "IOVIRT_FUZZ_SANDBOX"     /* "DIR PID": set for the fuzzer inside its sandbox */
#define ENV_SOURCE_DIR "IOVIRT_FUZZ_SOURCE_DIR"
#define ENV_EMULATOR "IOVIRT_FUZZ_EMULATOR"
#define ENV_DEBUG "IOVIRT_FUZZ_DEBUG"
#define FUZZ_HOST "sriov"
#define TESTBED_MARKER "/sys/iovirt-fuzz-testbed"
#define UMOCKDEV_PRELOAD "libumockdev-preload.so.0"
#define CALL_DEADLINE_USEC (60 * 1000000ULL)    /* a call not answered by then is a hang: abort */

#define fail(...)                                               \
        do {                                                    \
                fprintf(stderr, "fuzz-bus: " __VA_ARGS__);      \
                fputc('\n', stderr);                            \
                abort();                                        \
        } while (0)

/* ---- the sandbox ---- */

static char sandbox_dir[PATH_MAX];      /* pristine/, testbed/, state/ */
static char testbed[PATH_MAX + 16], pristine[PATH_MAX + 16], state_dir[PATH_MAX + 16];

/* Runs argv with the environment env and waits; 0 when it exited 0 */
static int run_wait(char *const argv[], char *const env[]) {
        pid_t pid;
        int status, r = posix_spawn(&pid, argv[0], NULL, NULL, argv, env);
        if (r != 0)
                return -r;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* The build directory holding this executable: the closest parent with meson-info/ */
static int find_build_dir(char *ret, size_t size) {
        char exe[PATH_MAX];
        ssize_t l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (l < 0)
                return -errno;
        exe[l] = '\0';
        for (char *slash; (slash = strrchr(exe, '/')) && slash != exe;) {
                *slash = '\0';
                char probe[PATH_MAX + 32];
                snprintf(probe, sizeof(probe), "%s/meson-info/meson-info.json", exe);
                if (access(probe, R_OK) == 0) {
                        snprintf(ret, size, "%s", exe);
                        return 0;
                }
        }
        return -ENOENT;
}

static int source_dir_from_meson(const char *build, char *ret, size_t size) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/meson-info/meson-info.json", build);
        json_object *info = json_object_from_file(path), *dirs, *src;
        int r = -ENOENT;
        if (info && json_object_object_get_ex(info, "directories", &dirs) &&
            json_object_object_get_ex(dirs, "source", &src) && json_object_is_type(src, json_type_string)) {
                snprintf(ret, size, "%s", json_object_get_string(src));
                r = 0;
        }
        json_object_put(info);
        return r;
}

static char *const clean_env[] = { "PATH=/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL=C", NULL };

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

/* In process: the PID namespace takes no new process once its reaper has gone */
static void remove_sandbox(void) {
        (void) nftw(sandbox_dir, remove_entry, 64, FTW_DEPTH | FTW_PHYS);
}

/* (errno kept for fail()'s %m) */
#define fail_removing(...)                      \
        do {                                    \
                int saved_errno_ = errno;       \
                remove_sandbox();               \
                errno = saved_errno_;           \
                fail(__VA_ARGS__);              \
        } while (0)

/* The testbed, its pristine copy and the state directory, in sandbox_dir */
static void build_testbed(const char *source) {
        char build_host[PATH_MAX + 64];
        snprintf(build_host, sizeof(build_host), "%s/tests/hosts/build-host", source);
        const char *tmp = getenv("TMPDIR");
        snprintf(sandbox_dir, sizeof(sandbox_dir), "%s/iovirt-fuzz-bus.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(sandbox_dir))
                fail("cannot make a temporary directory: %m");
        snprintf(pristine, sizeof(pristine), "%s/pristine", sandbox_dir);
        snprintf(testbed, sizeof(testbed), "%s/testbed", sandbox_dir);
        snprintf(state_dir, sizeof(state_dir), "%s/state", sandbox_dir);
        char *const build[] = { "/usr/bin/env", "python3", build_host, FUZZ_HOST, pristine, NULL };
        if (run_wait(build, clean_env) < 0)
                fail_removing("%s %s %s failed", build_host, FUZZ_HOST, pristine);
        char marker[PATH_MAX + 64];
        snprintf(marker, sizeof(marker), "%s%s", pristine, TESTBED_MARKER);
        FILE *f = fopen(marker, "we");
        if (!f || fputs("the fuzzer's testbed\n", f) < 0 || fclose(f) != 0)
                fail_removing("cannot write %s: %m", marker);
        /* the example policy, so that plans run its checks (it is read below $IOVIRT_ROOT) */
        char example[PATH_MAX + 64];
        snprintf(example, sizeof(example), "%s/data/policy/50-example.conf", source);
        char *const policy[] = { "/bin/sh", "-c",
                                 "mkdir -p \"$1/etc/iovirt/policy.d\" && cp \"$2\" \"$1/etc/iovirt/policy.d/\"",
                                 "sh", pristine, example, NULL };
        if (run_wait(policy, clean_env) < 0)
                fail_removing("cannot copy %s into the testbed", example);
        char *const copy[] = { "/bin/cp", "-a", pristine, testbed, NULL };
        if (run_wait(copy, clean_env) < 0 || mkdir(state_dir, 0755) < 0)
                fail_removing("cannot copy the testbed to %s", testbed);
}

static int write_text(const char *path, const char *text) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return write(fd, text, strlen(text)) == (ssize_t) strlen(text) ? 0 : -EIO;
}

/* A network, PID and mount namespace of our own; a user namespace too when not root */
static int unshare_namespaces(void) {
        uid_t uid = getuid();
        gid_t gid = getgid();
        char map[64];

        if (unshare(CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS) == 0)
                return 0;
        if (errno != EPERM || unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS) < 0)
                return -errno;
        snprintf(map, sizeof(map), "%u %u 1\n", (unsigned) uid, (unsigned) uid);
        int r = write_text("/proc/self/setgroups", "deny");
        if (r >= 0)
                r = write_text("/proc/self/uid_map", map);
        snprintf(map, sizeof(map), "%u %u 1\n", (unsigned) gid, (unsigned) gid);
        if (r >= 0)
                r = write_text("/proc/self/gid_map", map);
        return r;
}

static int exit_status(int status) {
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void setenv_or_fail(const char *name, const char *value) {
        if (setenv(name, value, 1) < 0)
                fail("setenv %s: %m", name);
}

/* The environment the fuzzer runs in, for the child that becomes it */
static void sandbox_env(const char *source, const char *emulator) {
        char buf[2 * PATH_MAX + 64];
        const char *old = getenv("LD_PRELOAD");
        /* a preloaded sanitizer runtime (gcc's shared libasan) stays first */
        snprintf(buf, sizeof(buf), "%s%s%s " UMOCKDEV_PRELOAD, old && *old ? old : "", old && *old ? " " : "",
                 emulator);
        setenv_or_fail("LD_PRELOAD", buf);
        setenv_or_fail("UMOCKDEV_DIR", testbed);
        setenv_or_fail(IOVIRT_ENV_ROOT, testbed);
        setenv_or_fail(IOVIRT_ENV_STATE_DIRECTORY, state_dir);
        setenv_or_fail(IOVIRT_ENV_MODPROBE, "/bin/false");    /* the testbed has its modules loaded */
        setenv_or_fail(IOVIRT_ENV_SRIOV_TIMEOUT, "5");
        snprintf(buf, sizeof(buf), "test://%s/tests/dbus/libvirt-host.xml", source);
        setenv_or_fail(LIBVIRT_ENV_URI, buf);
        setenv_or_fail(LIBVIRT_ENV_LOOKUP_TIMEOUT, "5");
        setenv_or_fail(LIBVIRT_ENV_DETACH_TIMEOUT, "5");
        /* gcc's libasan wants to come first; the preloads are after it on purpose */
        old = getenv("ASAN_OPTIONS");
        snprintf(buf, sizeof(buf), "%s%sverify_asan_link_order=0", old && *old ? old : "", old && *old ? ":" : "");
        setenv_or_fail("ASAN_OPTIONS", buf);
        unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
        unsetenv("NOTIFY_SOCKET");
        unsetenv("JOURNAL_STREAM");
}

/* Outside: build the sandbox, run ourselves in it, clean up, exit with its status */
static _Noreturn void run_sandboxed(char **argv) {
        char build[PATH_MAX], source[PATH_MAX], emulator[PATH_MAX + 64];
        const char *e;
        bool have_build = find_build_dir(build, sizeof(build)) >= 0;

        if ((e = getenv(ENV_SOURCE_DIR)) && *e)
                snprintf(source, sizeof(source), "%s", e);
        else if (!have_build || source_dir_from_meson(build, source, sizeof(source)) < 0)
                fail("cannot tell where the source tree is: set $" ENV_SOURCE_DIR);
        if ((e = getenv(ENV_EMULATOR)) && *e)
                snprintf(emulator, sizeof(emulator), "%s", e);
        else if (have_build)
                snprintf(emulator, sizeof(emulator), "%s/tests/emulator/libkernel-emu.so", build);
        else
                fail("cannot tell where the kernel-behaviour emulator is: set $" ENV_EMULATOR);
        if (access(emulator, R_OK) < 0)
                fail("%s: %m (set $" ENV_EMULATOR " to tests/emulator's libkernel-emu.so)", emulator);

        build_testbed(source);
        int r = unshare_namespaces();
        if (r < 0) {
                errno = -r;
                fail_removing("cannot unshare the network, PID and mount namespaces (so that no real interface or process "
                     "is touched): %m");
        }
        sandbox_env(source, emulator);
        /* the user's ^C goes to the fuzzer, which prints its statistics and exits; we clean up after it */
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);

        pid_t reaper = fork();
        if (reaper < 0)
                fail("fork: %m");
        if (reaper == 0) {
                /* pid 1 of the new namespace: the fuzzer's parent, gone with it.  /proc
                 * is mounted again for it, or the tids LeakSanitizer reads there would
                 * be the outer namespace's, and it could not stop the fuzzer's threads */
                if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
                        fprintf(stderr, "fuzz-bus: cannot mount /proc for the new PID namespace: %m\n");
                        _exit(127);
                }
                pid_t child = fork();
                if (child < 0)
                        _exit(127);
                if (child == 0) {
                        char owner[PATH_MAX + 32];
                        snprintf(owner, sizeof(owner), "%d %s", (int) getpid(), sandbox_dir);
                        setenv_or_fail(ENV_SANDBOX, owner);
                        signal(SIGINT, SIG_DFL);
                        signal(SIGTERM, SIG_DFL);
                        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                        execv("/proc/self/exe", argv);
                        fprintf(stderr, "fuzz-bus: exec /proc/self/exe: %m\n");
                        _exit(127);
                }
                int status;
                while (waitpid(child, &status, 0) < 0)
                        if (errno != EINTR)
                                _exit(127);
                _exit(exit_status(status));
        }
        int status;
        while (waitpid(reaper, &status, 0) < 0)
                if (errno != EINTR)
                        fail("waitpid: %m");
        remove_sandbox();
        /* nothing to check here, and LeakSanitizer cannot stop the world once the namespace has gone */
        _exit(exit_status(status));
}

/* Inside: whether this process is the one its sandbox was made for (a
 * libFuzzer -fork/-jobs worker inherits the environment, not the sandbox) */
static bool in_own_sandbox(void) {
        const char *e = getenv(ENV_SANDBOX);
        int pid, n = 0;
        if (!e || sscanf(e, "%d %n", &pid, &n) != 1 || pid != (int) getpid() || !e[n])
                return false;
        snprintf(sandbox_dir, sizeof(sandbox_dir), "%s", e + n);
        snprintf(pristine, sizeof(pristine), "%s/pristine", sandbox_dir);
        snprintf(testbed, sizeof(testbed), "%s/testbed", sandbox_dir);
        snprintf(state_dir, sizeof(state_dir), "%s/state", sandbox_dir);
        return true;
}

/* Fail closed: mutating methods run for real, so /sys must be the testbed */
static void refuse_real_host(void) {
        const char *umockdev = getenv("UMOCKDEV_DIR"), *root = getenv(IOVIRT_ENV_ROOT),
                   *state = getenv(IOVIRT_ENV_STATE_DIRECTORY), *preload = getenv("LD_PRELOAD");
        if (!umockdev || !streq_ptr(umockdev, testbed) || !streq_ptr(root, testbed) || !streq_ptr(state, state_dir))
                fail("refusing to run: $UMOCKDEV_DIR, $" IOVIRT_ENV_ROOT " and $" IOVIRT_ENV_STATE_DIRECTORY
                     " are not the sandbox's");
        if (!preload || !strstr(preload, UMOCKDEV_PRELOAD) || !strstr(preload, "kernel-emu"))
                fail("refusing to run: the emulator and umockdev are not preloaded");
        /* sysfs cannot hold a file of ours: seeing it through /sys proves the redirection */
        if (access(TESTBED_MARKER, F_OK) < 0)
                fail("refusing to run: /sys is the real one (%s is not there: %m)", TESTBED_MARKER);
}

/* What a call may have changed: drivers, overrides, VF counts, /dev/vfio, the state directory */
static char *fingerprint(void) {
        IovirtText t = {};
        char path[PATH_MAX * 2], buf[PATH_MAX * 3];
        struct dirent **list = NULL;
        int n;

        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices", testbed);
        n = scandir(path, &list, NULL, alphasort);
        for (int i = 0; i < n; i++) {
                const char *a = list[i]->d_name;
                if (a[0] != '.') {
                        (void) iovirt_text_add(&t, "%s", a);
                        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/driver", testbed, a);
                        ssize_t l = readlink(path, buf, sizeof(buf) - 1);
                        buf[l < 0 ? 0 : l] = '\0';
                        (void) iovirt_text_add(&t, " %s", buf);
                        static const char *const attrs[] = { "driver_override", "sriov_numvfs",
                                                             "sriov_drivers_autoprobe" };
                        for (size_t k = 0; k < ELEMENTSOF(attrs); k++) {
                                _cleanup_free_ char *s = NULL;
                                snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/%s", testbed, a, attrs[k]);
                                (void) iovirt_read_file(path, &s);
                                (void) iovirt_text_add(&t, " [%s]", strempty(s));
                        }
                        (void) iovirt_text_line(&t, "");
                }
                free(list[i]);
        }
        free(list);
        static const char *const dirs[] = { "dev/vfio", "state" };
        for (size_t k = 0; k < ELEMENTSOF(dirs); k++) {
                snprintf(path, sizeof(path), "%s/%s", k == 0 ? testbed : sandbox_dir, dirs[k]);
                list = NULL;
                n = scandir(path, &list, NULL, alphasort);
                for (int i = 0; i < n; i++) {
                        struct stat st = {};
                        snprintf(buf, sizeof(buf), "%s/%s", path, list[i]->d_name);
                        (void) lstat(buf, &st);
                        (void) iovirt_text_add(&t, "%s %s %u %u %lld\n", dirs[k], list[i]->d_name,
                                               (unsigned) st.st_uid, (unsigned) st.st_mode,
                                               (long long) (S_ISREG(st.st_mode) ? st.st_size : 0));
                        free(list[i]);
                }
                free(list);
        }
        char *s = iovirt_text_take(&t);
        if (!s)
                fail("out of memory taking the testbed's fingerprint");
        return s;
}

static char *pristine_fingerprint;

/* Every directory of the testbed and the state directory, watched: any
 * change in them (a file written, a link made or removed) is an event, so
 * telling whether a call changed something costs one read(2) */
static int inotify_fd = -EBADF;

static int watch_dir(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        if (flag == FTW_D && inotify_add_watch(inotify_fd, path,
                                               IN_MODIFY | IN_ATTRIB | IN_CREATE | IN_DELETE | IN_DELETE_SELF |
                                               IN_MOVED_FROM | IN_MOVED_TO | IN_MOVE_SELF | IN_DONT_FOLLOW) < 0)
                fail("cannot watch %s: %m", path);
        return 0;
}

static void watch_testbed(void) {
        if (inotify_fd >= 0)
                close(inotify_fd);
        inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (inotify_fd < 0)
                fail("inotify_init1: %m");
        if (nftw(testbed, watch_dir, 64, FTW_PHYS) < 0 || nftw(state_dir, watch_dir, 64, FTW_PHYS) < 0)
                fail("cannot watch the testbed: %m");
}

/* Whether anything changed since the last look */
static bool testbed_changed(void) {
        bool changed = false;
        for (;;) {
                char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
                ssize_t l = read(inotify_fd, buf, sizeof(buf));
                if (l < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                fail("reading the testbed's inotify events: %m");
                        return changed;
                }
                changed = changed || l > 0;
        }
}

static void restore_testbed(void) {
        char *const sh[] = { "/bin/sh", "-c", "rm -rf \"$1\" \"$3\" && cp -a \"$2\" \"$1\" && mkdir \"$3\"", "sh",
                             testbed, pristine, state_dir, NULL };
        if (run_wait(sh, clean_env) < 0)
                fail("cannot put the pristine testbed back in %s", testbed);
}

/* ---- the methods ---- */

typedef struct Method {
        const char *interface;
        const char *member;
        const char *signature;
} Method;

static Method methods[64];
static size_t n_methods;

static void collect_methods(void) {
        for (const sd_bus_vtable *v = manager_vtable; v->type != _SD_BUS_VTABLE_END; v++)
                if (v->type == _SD_BUS_VTABLE_METHOD && n_methods < ELEMENTSOF(methods) - 8)
                        methods[n_methods++] = (Method) { IOVIRT_MANAGER_INTERFACE, v->x.method.member,
                                                          v->x.method.signature };
        static const Method std[] = {
                { "org.freedesktop.DBus.Properties", "Get", "ss" },
                { "org.freedesktop.DBus.Properties", "GetAll", "s" },
                { "org.freedesktop.DBus.Properties", "Set", "ssv" },
                { "org.freedesktop.DBus.Introspectable", "Introspect", "" },
                { "org.freedesktop.DBus.Peer", "Ping", "" },
        };
        for (size_t i = 0; i < ELEMENTSOF(std); i++)
                methods[n_methods++] = std[i];
}

/* ---- the input ---- */

typedef struct Input {
        const uint8_t *p;
        size_t left;
} Input;

static uint8_t take_u8(Input *in) {
        if (!in->left)
                return 0;
        in->left--;
        return *in->p++;
}

static uint64_t take_le(Input *in, unsigned bytes) {
        uint64_t v = 0;
        for (unsigned i = 0; i < bytes; i++)
                v |= (uint64_t) take_u8(in) << (8 * i);
        return v;
}

/* A string: a length byte (0xf0 and above: two more bytes of length), then
 * its bytes; NULs and bytes that are not UTF-8 become '?', since no client
 * can send those (sd-bus refuses them before they reach a handler) */
static char *take_string(Input *in) {
        size_t len = take_u8(in);
        if (len >= 0xf0)
                len = take_le(in, 2);
        if (len > in->left)
                len = in->left;
        char *s = malloc(len + 1);
        if (!s)
                fail("out of memory");
        memcpy(s, in->p, len);
        s[len] = '\0';
        in->p += len;
        in->left -= len;
        for (size_t i = 0; i < len; i++)
                if (s[i] == '\0' || (unsigned char) s[i] >= 0x80)
                        s[i] = '?';
        return s;
}

static const char *const variant_types[] = { "s", "b", "u", "i", "y", "q", "n", "x", "t", "d", "o", "g", "as",
                                             "ay", "a{sv}", "a{ss}", "(su)", "v" };

/* Past the complete type at s, or NULL when there is none */
static const char *type_end(const char *s, unsigned depth) {
        if (depth > 32 || !*s)
                return NULL;
        if (strchr("ybnqiuxtdsoghv", *s))
                return s + 1;
        if (*s == 'a')
                return type_end(s + 1, depth + 1);
        if (*s == '(') {
                const char *p = s + 1;
                while (p && *p != ')')
                        p = type_end(p, depth + 1);
                return p && p > s + 1 ? p + 1 : NULL;
        }
        if (*s == '{') {
                const char *p = type_end(s + 1, depth + 1);
                p = p ? type_end(p, depth + 1) : NULL;
                return p && *p == '}' ? p + 1 : NULL;
        }
        return NULL;
}

/* Appends one value of the complete type at *sig to m from the input,
 * advancing *sig; negative when the type is not one a client can send */
static int gen_type(sd_bus_message *m, const char **sig, Input *in, unsigned depth) {
        const char *start = *sig, *end = type_end(start, 0);
        char contents[256];
        int r;

        if (!end || depth > 16 || (size_t) (end - start) >= sizeof(contents))
                return -EINVAL;
        *sig = end;
        switch (*start) {
        case 'y': {
                uint8_t v = take_u8(in);
                return sd_bus_message_append_basic(m, 'y', &v);
        }
        case 'b': {
                int v = take_u8(in) & 1;
                return sd_bus_message_append_basic(m, 'b', &v);
        }
        case 'n':
        case 'q': {
                uint16_t v = (uint16_t) take_le(in, 2);
                return sd_bus_message_append_basic(m, *start, &v);
        }
        case 'i':
        case 'u': {
                uint32_t v = (uint32_t) take_le(in, 4);
                return sd_bus_message_append_basic(m, *start, &v);
        }
        case 'x':
        case 't': {
                uint64_t v = take_le(in, 8);
                return sd_bus_message_append_basic(m, *start, &v);
        }
        case 'd': {
                uint64_t bits = take_le(in, 8);
                double v;
                memcpy(&v, &bits, sizeof(v));
                return sd_bus_message_append_basic(m, 'd', &v);
        }
        case 's': {
                _cleanup_free_ char *s = take_string(in);
                return sd_bus_message_append_basic(m, 's', s);
        }
        case 'o': {
                _cleanup_free_ char *s = take_string(in);
                char path[300] = "/";
                size_t n = 1;
                for (char *c = s; *c && n < sizeof(path) - 1; c++)
                        if (('a' <= *c && *c <= 'z') || ('A' <= *c && *c <= 'Z') || ('0' <= *c && *c <= '9'))
                                path[n++] = *c;
                path[n] = '\0';
                return sd_bus_message_append_basic(m, 'o', path);
        }
        case 'g':
                return sd_bus_message_append_basic(m, 'g', variant_types[take_u8(in) % ELEMENTSOF(variant_types)]);
        case 'v': {
                const char *inner = variant_types[take_u8(in) % ELEMENTSOF(variant_types)], *c = inner;
                r = sd_bus_message_open_container(m, 'v', inner);
                if (r >= 0)
                        r = gen_type(m, &c, in, depth + 1);
                return r < 0 ? r : sd_bus_message_close_container(m);
        }
        case 'a': {
                unsigned n = take_u8(in) % 8;
                snprintf(contents, sizeof(contents), "%.*s", (int) (end - start - 1), start + 1);
                r = sd_bus_message_open_container(m, 'a', contents);
                for (unsigned i = 0; r >= 0 && i < n; i++) {
                        const char *c = contents;
                        if (*c != '{') {
                                r = gen_type(m, &c, in, depth + 1);
                                continue;
                        }
                        char entry[256];
                        snprintf(entry, sizeof(entry), "%.*s", (int) strlen(contents) - 2, contents + 1);
                        c = entry;
                        r = sd_bus_message_open_container(m, 'e', entry);
                        while (r >= 0 && *c)
                                r = gen_type(m, &c, in, depth + 1);
                        if (r >= 0)
                                r = sd_bus_message_close_container(m);
                }
                return r < 0 ? r : sd_bus_message_close_container(m);
        }
        case '(': {
                snprintf(contents, sizeof(contents), "%.*s", (int) (end - start - 2), start + 1);
                const char *c = contents;
                r = sd_bus_message_open_container(m, 'r', contents);
                while (r >= 0 && *c)
                        r = gen_type(m, &c, in, depth + 1);
                return r < 0 ? r : sd_bus_message_close_container(m);
        }
        default:
                return -EINVAL;     /* 'h': no fds on this connection; '{' outside an array */
        }
}

/* ---- one call ---- */

typedef struct Call {
        const char *interface, *member;
        uint64_t cookie;
        unsigned replies;            /* answers to the call: the first through its callback, more through the filter */
        char *error;                 /* the first answer's error name and message, if it was one */
        Input *in;                   /* polkit's answers come from it */
} Call;

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Call *c = userdata;
        c->replies++;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        if (e && !c->error && asprintf(&c->error, "%s: %s", e->name, strna(e->message)) < 0)
                fail("out of memory");
        return 1;       /* taken: 0 would hand it on to the filter too */
}

/* As polkitd would answer CheckAuthorization, as the input says */
static int answer_polkit(Call *c, sd_bus_message *q) {
        switch (take_u8(c->in) % 6) {
        case 0:
                return sd_bus_reply_method_return(q, "(bba{ss})", 1, 0, 0);
        case 1:
                return sd_bus_reply_method_return(q, "(bba{ss})", 0, 1, 0);
        case 2:
                return sd_bus_reply_method_return(q, "(bba{ss})", 0, 0, 1,
                                                  "polkit.retains_authorization_after_challenge", "1");
        case 3:
                return sd_bus_reply_method_errorf(q, SD_BUS_ERROR_SERVICE_UNKNOWN, "no polkit");
        case 4:
                return sd_bus_reply_method_errorf(q, "org.freedesktop.PolicyKit1.Error.Failed", "polkit failed");
        default:
                return sd_bus_reply_method_return(q, "s", "not what polkit says");
        }
}

/* Everything the client gets that no reply callback took */
static int on_message(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Call *c = userdata;
        uint64_t cookie = 0;

        if (getenv(ENV_DEBUG)) {
                uint8_t type = 0;
                (void) sd_bus_message_get_type(msg, &type);
                fprintf(stderr, "fuzz-bus: the caller got a message of type %u: %s.%s\n", type,
                        strna(sd_bus_message_get_interface(msg)), strna(sd_bus_message_get_member(msg)));
        }

        if (sd_bus_message_is_method_call(msg, POLKIT_INTERFACE, "CheckAuthorization")) {
                if (answer_polkit(c, msg) < 0)
                        fail("cannot answer CheckAuthorization");
                return 1;
        }
        if (sd_bus_message_is_method_call(msg, NULL, NULL))
                fail("iovirtd called %s.%s on its caller", strna(sd_bus_message_get_interface(msg)),
                     strna(sd_bus_message_get_member(msg)));
        if (sd_bus_message_get_reply_cookie(msg, &cookie) >= 0 && cookie == c->cookie) {
                c->replies++;    /* a second answer: checked after the call */
                return 1;
        }
        return 0;                /* signals */
}

static uint64_t now_usec(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t) t.tv_sec * 1000000 + (uint64_t) t.tv_nsec / 1000;
}

static Manager *manager_up(void) {
        Manager *m = NULL;
        int r;
        if ((r = manager_new(&m)) < 0 || (r = manager_start_monitor(m)) < 0 || (r = manager_refresh(m)) < 0 ||
            (r = manager_load_policy(m)) < 0 || (r = manager_load_state(m)) < 0 ||
            (r = manager_restore_watches(m)) < 0)
                fail("cannot set up iovirtd's manager on the testbed: %s", strerror(-r));
        return m;
}

/* The server end on the manager's loop, exported as iovirtd exports it; the client end returned */
static sd_bus *connect_buses(Manager *m, bool as_nobody, Call *c) {
        sd_bus *client = NULL;
        sd_id128_t id;
        int pair[2], r;

        /* a socketpair's peer credentials are its creator's effective ones */
        if (as_nobody && geteuid() == 0 && setresuid(-1, 65534, -1) < 0)
                fail("seteuid(65534): %m");
        r = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair);
        if (as_nobody && getuid() == 0 && setresuid(-1, 0, -1) < 0)
                fail("seteuid(0): %m");
        if (r < 0)
                fail("socketpair: %m");

        assert(!m->bus && !m->bouncer);
        if ((r = sd_bus_new(&m->bus)) < 0 || (r = sd_bus_set_fd(m->bus, pair[0], pair[0])) < 0 ||
            (r = sd_id128_randomize(&id)) < 0 || (r = sd_bus_set_server(m->bus, 1, id)) < 0 ||
            (r = sd_bus_set_anonymous(m->bus, 1)) < 0 ||
            (r = sd_bus_add_object_vtable(m->bus, NULL, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, manager_vtable,
                                          m)) < 0 ||
            (r = bouncer_new(m->bus, &m->bouncer)) < 0 ||
            (r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL)) < 0 || (r = sd_bus_start(m->bus)) < 0)
                fail("cannot set up the server bus: %s", strerror(-r));
        if ((r = sd_bus_new(&client)) < 0 || (r = sd_bus_set_fd(client, pair[1], pair[1])) < 0 ||
            (r = sd_bus_set_anonymous(client, 1)) < 0 || (r = sd_bus_add_filter(client, NULL, on_message, c)) < 0 ||
            (r = sd_bus_attach_event(client, m->event, SD_EVENT_PRIORITY_NORMAL)) < 0 || (r = sd_bus_start(client)) < 0)
                fail("cannot set up the client bus: %s", strerror(-r));
        return client;
}

/* The caller hangs up; iovirtd's end goes, as a client's connection to the bus daemon would */
static void disconnect_buses(Manager *m, sd_bus *client) {
        sd_bus_flush_close_unref(client);
        m->bouncer = bouncer_free(m->bouncer);
        m->bus = sd_bus_flush_close_unref(m->bus);
}

/* Nothing left running on iovirtd's side */
static bool quiet(const Manager *m) {
        return !m->jobs && !m->sriov_waits;
}

static bool error_name_ok(const char *e) {
        return strncmp(e, "org.iovirt1.Error.", 18) == 0 || strncmp(e, "org.freedesktop.DBus.Error.", 27) == 0;
}

/* A member name from the input: letters, digits and '_' */
static char *take_member(Input *in) {
        char *s = take_string(in);
        size_t n = 0;
        for (char *c = s; *c && n < 64; c++)
                if (('a' <= *c && *c <= 'z') || ('A' <= *c && *c <= 'Z') || ('0' <= *c && *c <= '9') || *c == '_')
                        s[n++] = *c;
        s[n] = '\0';
        if (n == 0 || ('0' <= s[0] && s[0] <= '9')) {
                free(s);
                s = strdup("NoSuchMethod");
                if (!s)
                        fail("out of memory");
        }
        return s;
}

static bool initialized;
static Manager *manager;          /* iovirtd's, kept while calls leave the testbed as it was */
static uint64_t next_cookie = 1;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        if (initialized)
                return 0;
        if (!in_own_sandbox())
                run_sandboxed(*argv);
        refuse_real_host();
        /* loaded now; children (llvm-symbolizer, libFuzzer's -fork workers) go without them */
        unsetenv("LD_PRELOAD");
        initialized = true;
        signal(SIGPIPE, SIG_IGN);     /* as iovirtd: libvirt's client writes with plain write(2) */
        iovirt_domain_init();
        log_set_max_level(getenv(ENV_DEBUG) ? LOG_DEBUG : LOG_EMERG);
        collect_methods();
        pristine_fingerprint = fingerprint();
        watch_testbed();
        return 0;
}

/* A driver (the other helper's replay, say) that did not call LLVMFuzzerInitialize */
static void init_from_cmdline(void) {
        static char buf[8192];
        static char *args[64];
        int n = 0;
        _cleanup_close_ int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
        ssize_t l = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        if (l <= 0)
                fail("cannot read /proc/self/cmdline: %m");
        buf[l] = '\0';
        for (char *p = buf; p < buf + l && n < (int) ELEMENTSOF(args) - 1; p += strlen(p) + 1)
                args[n++] = p;
        args[n] = NULL;
        char **argv = args;
        LLVMFuzzerInitialize(&n, &argv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Input in = { data, size };
        Call c = { .in = &in };
        _cleanup_free_ char *member = NULL, *raw_sig = NULL;
        const char *interface, *signature;
        int r;

        if (!initialized)
                init_from_cmdline();

        uint8_t flags = take_u8(&in);
        size_t which = take_u8(&in) % (n_methods + 1);
        if (which < n_methods) {
                interface = methods[which].interface;
                c.member = methods[which].member;
                signature = strempty(methods[which].signature);
        } else {
                interface = IOVIRT_MANAGER_INTERFACE;
                c.member = member = take_member(&in);
                signature = "";
        }
        if ((flags & 2) || which == n_methods) {
                raw_sig = take_string(&in);
                signature = raw_sig;
        }
        c.interface = interface;

        /* one manager for as long as the host and the state stay as they were */
        if (!manager) {
                manager = manager_up();
                (void) testbed_changed();     /* (what setting up did: nothing a call did) */
        }
        Manager *m = manager;
        sd_bus *client = connect_buses(m, flags & 1, &c);
        /* authenticated both ways first: whatever the call becomes, nothing below waits for a peer
         * that only this thread could drive (sd_bus_flush() of a bus still authenticating would) */
        uint64_t deadline = now_usec() + CALL_DEADLINE_USEC;
        while (sd_bus_is_ready(client) <= 0 || sd_bus_is_ready(m->bus) <= 0) {
                if (now_usec() > deadline)
                        fail("the buses did not finish authenticating within %llu s",
                             (unsigned long long) (CALL_DEADLINE_USEC / 1000000));
                if ((r = sd_event_run(m->event, 100 * 1000)) < 0)
                        fail("the event loop failed: %s", strerror(-r));
        }
        sd_bus_message *msg = NULL;
        r = sd_bus_message_new_method_call(client, &msg, NULL, IOVIRT_OBJECT_PATH, interface, c.member);
        if (r < 0)
                fail("cannot make a call of %s: %s", c.member, strerror(-r));
        for (const char *p = signature; r >= 0 && *p;)
                r = gen_type(msg, &p, &in, 0);
        /* cookies unique over the manager's life, as (sender, cookie) is on a bus: iovirtd keys
         * libvirt lookups by them, and every connection here has no name and would start at 1 */
        if (r >= 0)    /* (sealed here, the message keeps this timeout: sd-bus's own answers after it) */
                r = sd_bus_message_seal(msg, c.cookie = next_cookie++, 2 * CALL_DEADLINE_USEC);
        if (r >= 0)
                r = sd_bus_call_async(client, NULL, msg, on_reply, &c, 2 * CALL_DEADLINE_USEC);
        sd_bus_message_unref(msg);

        if (r >= 0) {
                /* answered, and nothing of it still running */
                deadline = now_usec() + CALL_DEADLINE_USEC;
                while (!(c.replies > 0 && quiet(m))) {
                        if (now_usec() > deadline)
                                fail("%s.%s: %s within %llu s", interface, c.member,
                                     c.replies ? "a job or SR-IOV wait still running" : "no answer",
                                     (unsigned long long) (CALL_DEADLINE_USEC / 1000000));
                        if ((r = sd_event_run(m->event, 100 * 1000)) < 0)
                                fail("the event loop failed: %s", strerror(-r));
                }
                /* whatever else is queued: a second answer would be among it */
                for (unsigned i = 0; i < 1000 && (r = sd_event_run(m->event, 0)) > 0; i++)
                        ;
                if (r < 0)
                        fail("the event loop failed: %s", strerror(-r));
                if (c.replies != 1)
                        fail("%s.%s was answered %u times", interface, c.member, c.replies);
                if (c.error && !error_name_ok(c.error))
                        fail("%s.%s answered an error outside org.iovirt1.Error and org.freedesktop.DBus.Error: %s",
                             interface, c.member, c.error);
                if (!quiet(m))
                        fail("%s.%s left work running after its answer", interface, c.member);
        }
        /* else: not a message a client can send (a raw signature sd-bus refuses) */
        free(c.error);

        disconnect_buses(m, client);
        if (testbed_changed()) {
                /* the next call starts from the pristine host again, with a new manager */
                if (getenv(ENV_DEBUG))
                        fprintf(stderr, "fuzz-bus: %s.%s changed the host or the state; putting them back\n",
                                interface, c.member);
                manager = manager_free(manager);
                restore_testbed();
                _cleanup_free_ char *again = fingerprint();
                if (!streq_ptr(again, pristine_fingerprint))
                        fail("the testbed copied back from %s differs from the pristine one", pristine);
                watch_testbed();
        }
        return 0;
}
