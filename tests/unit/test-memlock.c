/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "iovirt-memlock.h"
#include "iovirt-util.h"
#include "tree.h"

#define GiB IOVIRT_GIB
#define MiB IOVIRT_MIB

static uint64_t limit(uint64_t guest, unsigned n, bool viommu, uint64_t hard) {
        uint64_t v = 0xdeadbeef;
        assert_int_equal(iovirt_memlock_limit(guest, n, viommu, hard, &v), 0);
        return v;
}

/* libvirt's qemuDomainGetMemLockLimitBytes (x86): hard_limit wins; with
 * VFIO devices factor x memory + 1 GiB, factor = devices with a vIOMMU, 1
 * without; no VFIO device: 0, nothing to set. */
static void test_limit_libvirt_rule(void **state) {
        uint64_t g = 4 * GiB;

        assert_int_equal(limit(g, 0, false, 0), 0);
        assert_int_equal(limit(g, 0, true, 0), 0);
        assert_int_equal(limit(g, 1, false, 0), 5 * GiB);
        assert_int_equal(limit(g, 1, true, 0), 5 * GiB);
        assert_int_equal(limit(g, 3, false, 0), 5 * GiB);
        assert_int_equal(limit(g, 3, true, 0), 13 * GiB);
        /* a hard limit is used as it is, with or without devices */
        assert_int_equal(limit(g, 0, false, 2 * GiB), 2 * GiB);
        assert_int_equal(limit(g, 1, false, 2 * GiB), 2 * GiB);
        assert_int_equal(limit(g, 3, true, 20 * GiB), 20 * GiB);
        /* measured in the e2e guest: libvirt 9.0, a 64 MiB guest, one hostdev */
        assert_int_equal(limit(64 * MiB, 1, false, 0), UINT64_C(1140850688));
}

static void test_pinned(void **state) {
        uint64_t p;
        assert_int_equal(iovirt_memlock_factor(0, true), 0);
        assert_int_equal(iovirt_memlock_factor(3, false), 1);
        assert_int_equal(iovirt_memlock_factor(3, true), 3);
        assert_int_equal(iovirt_memlock_pinned(4 * GiB, 0, true, &p), 0);
        assert_int_equal(p, 0);
        assert_int_equal(iovirt_memlock_pinned(4 * GiB, 1, true, &p), 0);
        assert_int_equal(p, 4 * GiB);
        assert_int_equal(iovirt_memlock_pinned(4 * GiB, 3, false, &p), 0);
        assert_int_equal(p, 4 * GiB);
        assert_int_equal(iovirt_memlock_pinned(4 * GiB, 3, true, &p), 0);
        assert_int_equal(p, 12 * GiB);
}

static void test_limit_overflow(void **state) {
        uint64_t v;
        assert_int_equal(iovirt_memlock_limit(UINT64_MAX / 2, 3, true, 0, &v), -EOVERFLOW);
        assert_int_equal(iovirt_memlock_pinned(UINT64_MAX / 2, 3, true, &v), -EOVERFLOW);
        assert_int_equal(iovirt_memlock_limit(UINT64_MAX - GiB + 1, 1, false, 0, &v), -EOVERFLOW);
        assert_int_equal(iovirt_memlock_limit(UINT64_MAX - GiB, 1, false, 0, &v), 0);
        assert_int_equal(v, UINT64_MAX);
        /* without a vIOMMU the count does not multiply */
        assert_int_equal(iovirt_memlock_limit(UINT64_MAX / 2, 3, false, 0, &v), 0);
        assert_int_equal(iovirt_memlock_limit(UINT64_MAX, 3, true, UINT64_MAX, &v), 0);
        assert_int_equal(v, UINT64_MAX);
}

static void test_size_format(void **state) {
        char b[IOVIRT_SIZE_MAX];
        assert_string_equal(iovirt_size_format(0, b), "0 B");
        assert_string_equal(iovirt_size_format(1023, b), "1023 B");
        assert_string_equal(iovirt_size_format(1024, b), "1.0 KiB");
        assert_string_equal(iovirt_size_format(1536, b), "1.5 KiB");
        assert_string_equal(iovirt_size_format(MiB - 1, b), "1.0 MiB");
        assert_string_equal(iovirt_size_format(4 * GiB, b), "4.0 GiB");
        assert_string_equal(iovirt_size_format(GiB * 61 + GiB / 5, b), "61.2 GiB");
        assert_string_equal(iovirt_size_format(GiB * 1024, b), "1.0 TiB");
        assert_string_equal(iovirt_size_format(UINT64_MAX, b), "16.0 EiB");
}

static void test_reserve(void **state) {
        assert_int_equal(iovirt_memlock_reserve(64 * GiB, 0), 64 * GiB / 20);
        assert_int_equal(iovirt_memlock_reserve(100, 0), 512 * MiB);
        assert_int_equal(iovirt_memlock_reserve(4 * GiB, 0), 512 * MiB);      /* 5% is 204.8 MiB */
        assert_int_equal(iovirt_memlock_reserve(64 * GiB, GiB), GiB);
        assert_int_equal(iovirt_memlock_reserve(UINT64_MAX, 0), UINT64_MAX / 100 * 5 + UINT64_MAX % 100 * 5 / 100);
        assert_int_equal(iovirt_memlock_budget(64 * GiB, GiB), 63 * GiB);
        assert_int_equal(iovirt_memlock_budget(GiB, 2 * GiB), 0);
}

static void test_budget_check(void **state) {
        /* MemTotal 64.4 GiB, default reserve 3.2 GiB, budget 61.2 GiB */
        uint64_t memtotal = GiB * 64 + GiB * 2 / 5;
        uint64_t reserve = iovirt_memlock_reserve(memtotal, 0);
        char *reason = NULL;

        assert_int_equal(iovirt_memlock_budget_check(memtotal, reserve, 60 * GiB, 4 * GiB, &reason), -ENOSPC);
        assert_string_equal(reason, "4.0 GiB asked, 60.0 GiB already pinned, budget 61.2 GiB "
                                    "(MemTotal 64.4 GiB less a 3.2 GiB reserve)");
        assert_int_equal(iovirt_memlock_budget_check(memtotal, reserve, 60 * GiB, GiB, &reason), 0);
        assert_non_null(strstr(reason, "1.0 GiB asked, 60.0 GiB already pinned"));
        assert_non_null(strstr(reason, "left"));
        /* exactly the budget fits; one byte more does not */
        uint64_t budget = iovirt_memlock_budget(memtotal, reserve);
        assert_int_equal(iovirt_memlock_budget_check(memtotal, reserve, budget - GiB, GiB, NULL), 0);
        assert_int_equal(iovirt_memlock_budget_check(memtotal, reserve, budget - GiB, GiB + 1, NULL), -ENOSPC);
        /* already + asked overflows: refused, not wrapped around */
        assert_int_equal(iovirt_memlock_budget_check(memtotal, reserve, UINT64_MAX, 1, &reason), -ENOSPC);
        assert_non_null(strstr(reason, "16.0 EiB already pinned"));
        assert_int_equal(iovirt_memlock_budget_check(UINT64_MAX, 0, UINT64_MAX - 1, UINT64_MAX - 1, NULL), -ENOSPC);
        /* a reserve larger than the host: nothing may be pinned but nothing */
        assert_int_equal(iovirt_memlock_budget_check(GiB, 2 * GiB, 0, 1, NULL), -ENOSPC);
        assert_int_equal(iovirt_memlock_budget_check(GiB, 2 * GiB, 0, 0, NULL), 0);
        free(reason);
}

static void test_cgroup_check(void **state) {
        char *reason = NULL;
        assert_int_equal(iovirt_memlock_cgroup_check(UINT64_MAX, "/machine.slice", 4 * GiB, &reason), 0);
        assert_non_null(strstr(reason, "no memory.max"));
        assert_int_equal(iovirt_memlock_cgroup_check(8 * GiB, "/machine.slice", 4 * GiB, &reason), 0);
        assert_int_equal(iovirt_memlock_cgroup_check(5 * GiB, "/m", 4 * GiB, NULL), 0);
        assert_int_equal(iovirt_memlock_cgroup_check(5 * GiB - 1, "/m", 4 * GiB, NULL), -ENOSPC);
        assert_int_equal(iovirt_memlock_cgroup_check(4 * GiB, "/machine.slice/vm-web.scope", 4 * GiB, &reason), -ENOSPC);
        assert_string_equal(reason, "cgroup /machine.slice/vm-web.scope has memory.max 4.0 GiB, less than the 5.0 GiB "
                                    "its 4.0 GiB of pinned guest memory and 1.0 GiB more need");
        assert_int_equal(iovirt_memlock_cgroup_check(8 * GiB, "/m", UINT64_MAX, NULL), -ENOSPC);
        free(reason);
}

static void test_meminfo(void **state) {
        char *root = tree_new();
        uint64_t v;
        assert_non_null(root);
        assert_int_equal(setenv("IOVIRT_ROOT", root, 1), 0);

        assert_int_equal(iovirt_meminfo_total(&v), -ENOENT);
        assert_int_equal(tree_write(root, "proc/meminfo", "MemTotal:       65843236 kB\nMemFree:          123 kB\n"), 0);
        assert_int_equal(iovirt_meminfo_total(&v), 0);
        assert_int_equal(v, UINT64_C(65843236) * 1024);
        assert_int_equal(tree_write(root, "proc/meminfo", "MemFree: 1 kB\nMemTotal: 2048 kB"), 0);
        assert_int_equal(iovirt_meminfo_total(&v), 0);
        assert_int_equal(v, 2 * MiB);
        assert_int_equal(tree_write(root, "proc/meminfo", "MemFree: 1 kB\n"), 0);
        assert_int_equal(iovirt_meminfo_total(&v), -ENODATA);
        assert_int_equal(tree_write(root, "proc/meminfo", "MemTotal: lots\n"), 0);
        assert_int_equal(iovirt_meminfo_total(&v), -EBADMSG);
        assert_int_equal(tree_write(root, "proc/meminfo", "MemTotal: 12 MB\n"), 0);
        assert_int_equal(iovirt_meminfo_total(&v), -EBADMSG);
        assert_int_equal(tree_write(root, "proc/meminfo", "MemTotal: 99999999999999999999 kB\n"), 0);
        assert_int_equal(iovirt_meminfo_total(&v), -EBADMSG);

        unsetenv("IOVIRT_ROOT");
        assert_int_equal(iovirt_meminfo_total(&v), 0);           /* this host's own */
        assert_true(v > 64 * MiB);
        tree_free(root);
}

static void test_cgroup_reader(void **state) {
        char *root = tree_new(), *path = NULL, *reason = NULL;
        uint64_t v;
        assert_non_null(root);
        assert_int_equal(setenv("IOVIRT_ROOT", root, 1), 0);

        assert_int_equal(iovirt_cgroup_memory_max(4242, &v, &path, &reason), -ENOENT);
        assert_non_null(reason);

        /* cgroup2 not mounted where systemd mounts it: a host that cannot say */
        assert_int_equal(tree_write(root, "proc/4242/cgroup", "0::/machine.slice/vm-web.scope\n"), 0);
        assert_int_equal(iovirt_cgroup_memory_max(4242, &v, &path, &reason), -EOPNOTSUPP);
        assert_non_null(strstr(reason, "not mounted"));
        assert_int_equal(tree_write(root, "sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n"), 0);

        /* mounted, but no such cgroup (another mount namespace, a cgroup gone): nothing read, nothing passes */
        assert_int_equal(iovirt_cgroup_memory_max(4242, &v, &path, &reason), -ENOENT);
        assert_non_null(strstr(reason, "/machine.slice/vm-web.scope is not in"));

        /* v2: the smallest limit on the way up binds */
        assert_int_equal(tree_write(root, "sys/fs/cgroup/machine.slice/memory.max", "8589934592\n"), 0);
        assert_int_equal(tree_write(root, "sys/fs/cgroup/machine.slice/vm-web.scope/memory.max", "max\n"), 0);
        assert_int_equal(iovirt_cgroup_memory_max(4242, &v, &path, &reason), 0);
        assert_int_equal(v, 8 * GiB);
        assert_string_equal(path, "/machine.slice");
        path = mfree(path);
        assert_int_equal(tree_write(root, "sys/fs/cgroup/machine.slice/vm-web.scope/memory.max", "4294967296\n"), 0);
        assert_int_equal(iovirt_cgroup_memory_max(4242, &v, &path, &reason), 0);
        assert_int_equal(v, 4 * GiB);
        assert_string_equal(path, "/machine.slice/vm-web.scope");
        path = mfree(path);

        /* no limit anywhere; a cgroup without the memory controller */
        assert_int_equal(tree_write(root, "proc/4243/cgroup", "0::/user.slice/session-1.scope\n"), 0);
        assert_int_equal(tree_write(root, "sys/fs/cgroup/user.slice/memory.max", "max\n"), 0);
        assert_int_equal(tree_write(root, "sys/fs/cgroup/user.slice/session-1.scope/cgroup.procs", "4243\n"), 0);
        assert_int_equal(iovirt_cgroup_memory_max(4243, &v, &path, &reason), 0);
        assert_int_equal(v, UINT64_MAX);
        assert_string_equal(path, "/user.slice/session-1.scope");
        path = mfree(path);

        /* the root cgroup has no memory.max */
        assert_int_equal(tree_write(root, "proc/1/cgroup", "0::/\n"), 0);
        assert_int_equal(iovirt_cgroup_memory_max(1, &v, NULL, &reason), 0);
        assert_int_equal(v, UINT64_MAX);

        /* a hybrid host: memory in a v1 hierarchy */
        assert_int_equal(tree_write(root, "proc/4244/cgroup", "12:cpu,cpuacct:/\n4:memory:/vm\n0::/vm\n"), 0);
        assert_int_equal(iovirt_cgroup_memory_max(4244, &v, &path, &reason), -EOPNOTSUPP);
        assert_non_null(strstr(reason, "cgroup v1"));
        assert_null(path);
        /* pure v1 */
        assert_int_equal(tree_write(root, "proc/4245/cgroup", "2:pids:/\n1:name=systemd:/\n"), 0);
        assert_int_equal(iovirt_cgroup_memory_max(4245, &v, &path, &reason), -EOPNOTSUPP);
        assert_non_null(strstr(reason, "no cgroup v2"));

        /* malformed */
        assert_int_equal(tree_write(root, "proc/4246/cgroup", "garbage\n"), 0);
        assert_int_equal(iovirt_cgroup_memory_max(4246, &v, &path, &reason), -EBADMSG);
        assert_int_equal(tree_write(root, "proc/4247/cgroup", "0::/bad\n"), 0);
        assert_int_equal(tree_write(root, "sys/fs/cgroup/bad/memory.max", "lots\n"), 0);
        assert_int_equal(iovirt_cgroup_memory_max(4247, &v, &path, &reason), -EBADMSG);
        assert_int_equal(tree_write(root, "proc/4248/cgroup", "0::/../../etc\n"), 0);
        assert_int_equal(iovirt_cgroup_memory_max(4248, &v, &path, &reason), -EBADMSG);

        unsetenv("IOVIRT_ROOT");
        free(reason);
        tree_free(root);
}

/* ---- prlimit on a real process ---- */

static pid_t child = -1;

static pid_t spawn_sleeper(void) {
        pid_t parent = getpid();
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(0);
                for (;;)
                        pause();
        }
        child = pid;
        return pid;
}

static void reap(pid_t pid) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        child = -1;
}

/* a failed assertion must not leave the sleeper behind */
static int teardown_child(void **state) {
        if (child > 0)
                reap(child);
        return 0;
}

/* "Max locked memory   65536   65536   bytes" of /proc/PID/limits */
static void read_limits(pid_t pid, uint64_t *soft, uint64_t *hard) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/limits", (int) pid);
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        size_t n = 0;
        char *line = NULL;
        bool found = false;
        while (getline(&line, &n, f) > 0)
                if (strncmp(line, "Max locked memory", 17) == 0) {
                        char s[32], h[32];
                        assert_int_equal(sscanf(line + 17, "%31s %31s", s, h), 2);
                        *soft = streq_ptr(s, "unlimited") ? UINT64_MAX : strtoull(s, NULL, 10);
                        *hard = streq_ptr(h, "unlimited") ? UINT64_MAX : strtoull(h, NULL, 10);
                        found = true;
                }
        free(line);
        fclose(f);
        assert_true(found);
}

static void assert_limits(pid_t pid, uint64_t soft, uint64_t hard) {
        uint64_t s, h;
        read_limits(pid, &s, &h);
        assert_int_equal(s, soft);
        assert_int_equal(h, hard);
}

static void test_prlimit_child(void **state) {
        pid_t pid = spawn_sleeper();
        struct rlimit cur, orig, got;
        bool raised;

        /* Start below the child's hard limit H (lowering needs no privilege) */
        assert_int_equal(iovirt_memlock_get(pid, &cur), 0);
        rlim_t H = cur.rlim_max == RLIM_INFINITY || cur.rlim_max < 64 * 1024 ? 16 * MiB : cur.rlim_max;
        struct rlimit start = { H / 2, H };
        assert_int_equal(prlimit(pid, RLIMIT_MEMLOCK, &start, NULL), 0);
        assert_int_equal(iovirt_memlock_get(pid, &got), 0);
        assert_int_equal(got.rlim_cur, H / 2);
        assert_limits(pid, H / 2, H);

        /* between soft and hard: only the soft limit moves */
        assert_int_equal(iovirt_memlock_raise(pid, H / 4 * 3, &orig, &raised), 0);
        assert_true(raised);
        assert_int_equal(orig.rlim_cur, H / 2);
        assert_int_equal(orig.rlim_max, H);
        assert_limits(pid, H / 4 * 3, H);
        /* never lower */
        struct rlimit orig2;
        assert_int_equal(iovirt_memlock_raise(pid, H / 4, &orig2, &raised), 0);
        assert_false(raised);
        assert_limits(pid, H / 4 * 3, H);
        assert_int_equal(iovirt_memlock_restore(pid, &orig), 0);
        assert_limits(pid, H / 2, H);

        /* up to the hard limit */
        assert_int_equal(iovirt_memlock_raise(pid, H, &orig, &raised), 0);
        assert_true(raised);
        assert_limits(pid, H, H);
        assert_int_equal(iovirt_memlock_restore(pid, &orig), 0);
        assert_limits(pid, H / 2, H);

        /* past it: soft and hard, which needs CAP_SYS_RESOURCE (root in a
         * container may lack it: then -EPERM and nothing changed) */
        int r = iovirt_memlock_raise(pid, 2 * H, &orig, &raised);
        if (r == 0) {
                assert_true(raised);
                assert_limits(pid, 2 * H, 2 * H);
                assert_int_equal(iovirt_memlock_raise(pid, H, NULL, &raised), 0);
                assert_false(raised);
                assert_int_equal(iovirt_memlock_restore(pid, &orig), 0);
                assert_limits(pid, H / 2, H);
                /* an unlimited hard limit stays unlimited */
                struct rlimit inf = { H / 2, RLIM_INFINITY };
                assert_int_equal(prlimit(pid, RLIMIT_MEMLOCK, &inf, NULL), 0);
                assert_int_equal(iovirt_memlock_raise(pid, 2 * H, &orig, &raised), 0);
                assert_limits(pid, 2 * H, UINT64_MAX);
                assert_int_equal(iovirt_memlock_restore(pid, &orig), 0);
                assert_limits(pid, H / 2, UINT64_MAX);
                assert_int_equal(prlimit(pid, RLIMIT_MEMLOCK, &start, NULL), 0);
        } else {
                assert_int_equal(r, -EPERM);
                print_message("no CAP_SYS_RESOURCE: raising a hard limit is refused, as it should be\n");
                assert_limits(pid, H / 2, H);
        }

        /* the pidfd-pinned variant: fine while alive, -ESRCH once gone */
        int pidfd = iovirt_pidfd_open(pid);
        assert_true(pidfd >= 0);
        assert_int_equal(iovirt_pidfd_alive(pidfd), 0);
        assert_int_equal(iovirt_memlock_raise_pidfd(pidfd, pid, H, &orig, &raised), 0);
        assert_true(raised);
        assert_limits(pid, H, H);
        assert_int_equal(iovirt_memlock_restore(pid, &orig), 0);
        assert_limits(pid, H / 2, H);
        reap(pid);
        assert_int_equal(iovirt_pidfd_alive(pidfd), -ESRCH);
        assert_int_equal(iovirt_memlock_raise_pidfd(pidfd, pid, H, &orig, &raised), -ESRCH);
        close(pidfd);
        assert_int_equal(iovirt_memlock_get(pid, &got), -ESRCH);
        assert_int_equal(iovirt_pidfd_open(0), -EINVAL);
}

/* ---- memlock-PID.json: what a crash must not lose ---- */

static void test_record_round_trip(void **state) {
        char *dir = tree_new();
        assert_non_null(dir);
        IovirtMemlockRecord r = { .pid = 4242, .pid_start = 987654321, .soft = 8 * MiB, .hard = UINT64_MAX,
                                  .consumer = (char *) "pid:4242", .boot_id = (char *) "b007" }, back = {};
        assert_int_equal(iovirt_memlock_record_load(dir, 4242, &back), -ENOENT);
        assert_int_equal(iovirt_memlock_record_save(dir, &r), 0);
        assert_int_equal(iovirt_memlock_record_load(dir, 4242, &back), 0);
        assert_int_equal(back.pid, 4242);
        assert_int_equal(back.pid_start, 987654321);
        assert_int_equal(back.soft, 8 * MiB);
        assert_true(back.hard == UINT64_MAX);           /* RLIM_INFINITY survives */
        assert_string_equal(back.consumer, "pid:4242");
        assert_string_equal(back.boot_id, "b007");
        iovirt_memlock_record_clear(&back);
        assert_null(back.consumer);
        assert_null(back.boot_id);

        /* only canonical names are records; a temporary file left by a crash is removed */
        assert_int_equal(tree_write(dir, "memlock-0042.json", "{}"), 0);
        assert_int_equal(tree_write(dir, "memlock-7.json.damaged-1", "{}"), 0);
        assert_int_equal(tree_write(dir, "group-3.json", "{}"), 0);
        assert_int_equal(tree_write(dir, ".memlock-4242.json.XXXX", "{"), 0);
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0;
        assert_int_equal(iovirt_memlock_record_pids(dir, &pids, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(pids[0], 4242);
        char path[4096];
        snprintf(path, sizeof(path), "%s/.memlock-4242.json.XXXX", dir);
        assert_int_equal(access(path, F_OK), -1);

        /* a record of another pid, a wrong version, a negative limit, no consumer, no boot: damaged */
        static const char *const damaged[] = {
                "",
                "{\"version\":1,\"pid\":4243,\"pid_start\":1,\"soft\":1,\"hard\":1,\"consumer\":\"pid:4243\",\"boot_id\":\"b\"}",
                "{\"version\":99,\"pid\":4242,\"pid_start\":1,\"soft\":1,\"hard\":1,\"consumer\":\"x\",\"boot_id\":\"b\"}",
                "{\"version\":1,\"pid\":4242,\"pid_start\":1,\"soft\":-1,\"hard\":1,\"consumer\":\"x\",\"boot_id\":\"b\"}",
                "{\"version\":1,\"pid\":4242,\"pid_start\":1,\"soft\":1,\"hard\":1,\"boot_id\":\"b\"}",
                "{\"version\":1,\"pid\":4242,\"pid_start\":1,\"soft\":1,\"hard\":1,\"consumer\":\"x\"}",
                "{\"version\":1,\"pid\":4242,\"pid_start\":1,\"soft\":1,\"hard\":1,\"consumer\":\"x\",\"boot_id\":\"b\"} trailing",
        };
        for (size_t i = 0; i < ELEMENTSOF(damaged); i++) {
                assert_int_equal(tree_write(dir, "memlock-4242.json", damaged[i]), 0);
                assert_int_equal(iovirt_memlock_record_load(dir, 4242, &back), -EBADMSG);
        }
        _cleanup_free_ char *problem = NULL;
        assert_int_equal(iovirt_memlock_record_set_aside(dir, 4242, "damaged", &problem), 0);
        assert_non_null(problem);
        assert_int_equal(iovirt_memlock_record_load(dir, 4242, &back), -ENOENT);

        assert_int_equal(iovirt_memlock_record_save(dir, &r), 0);
        assert_int_equal(iovirt_memlock_record_remove(dir, 4242), 0);
        assert_int_equal(iovirt_memlock_record_remove(dir, 4242), 0);     /* gone already: nothing to do */
        assert_int_equal(iovirt_memlock_record_load(dir, 4242, &back), -ENOENT);
        r.pid = 0;
        assert_int_equal(iovirt_memlock_record_save(dir, &r), -EINVAL);
        tree_free(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_limit_libvirt_rule),
                cmocka_unit_test(test_pinned),
                cmocka_unit_test(test_limit_overflow),
                cmocka_unit_test(test_size_format),
                cmocka_unit_test(test_reserve),
                cmocka_unit_test(test_budget_check),
                cmocka_unit_test(test_cgroup_check),
                cmocka_unit_test(test_meminfo),
                cmocka_unit_test(test_cgroup_reader),
                cmocka_unit_test_teardown(test_prlimit_child, teardown_child),
                cmocka_unit_test(test_record_round_trip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
