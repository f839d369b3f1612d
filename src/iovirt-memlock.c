/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "iovirt-memlock.h"
#include "iovirt-json.h"
#include "iovirt-names.h"
#include "iovirt-state.h"
#include "iovirt-sysfs.h"
#include "iovirt-util.h"

const char *iovirt_size_format(uint64_t bytes, char buf[static IOVIRT_SIZE_MAX]) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };

        if (bytes < IOVIRT_KIB) {
                snprintf(buf, IOVIRT_SIZE_MAX, "%" PRIu64 " B", bytes);
                return buf;
        }
        size_t u = 0;
        while (u + 1 < ELEMENTSOF(units) && bytes >= (IOVIRT_KIB << (10 * (u + 1))))
                u++;
        uint64_t unit = IOVIRT_KIB << (10 * u);
        uint64_t whole = bytes / unit, rem = bytes % unit;
        /* rem < 2^60, so rem * 10 fits */
        uint64_t tenths = (rem * 10 + unit / 2) / unit;
        if (tenths == 10) {
                whole++;
                tenths = 0;
                if (whole == 1024 && u + 1 < ELEMENTSOF(units)) {
                        whole = 1;
                        u++;
                }
        }
        snprintf(buf, IOVIRT_SIZE_MAX, "%u.%u %s", (unsigned) (whole & 0xffff), (unsigned) (tenths % 10), units[u]);   /* whole <= 1024 */
        return buf;
}

unsigned iovirt_memlock_factor(unsigned n_vfio_devices, bool viommu) {
        if (n_vfio_devices == 0)
                return 0;
        return viommu ? n_vfio_devices : 1;
}

int iovirt_memlock_pinned(uint64_t guest_memory, unsigned n_vfio_devices, bool viommu, uint64_t *ret) {
        uint64_t p;
        if (__builtin_mul_overflow(guest_memory, (uint64_t) iovirt_memlock_factor(n_vfio_devices, viommu), &p))
                return -EOVERFLOW;
        *ret = p;
        return 0;
}

int iovirt_memlock_limit(uint64_t guest_memory, unsigned n_vfio_devices, bool viommu,
                         uint64_t hard_limit, uint64_t *ret) {
        if (hard_limit > 0) {
                *ret = hard_limit;
                return 0;
        }
        if (n_vfio_devices == 0) {
                *ret = 0;
                return 0;
        }
        uint64_t p;
        int r = iovirt_memlock_pinned(guest_memory, n_vfio_devices, viommu, &p);
        if (r < 0)
                return r;
        if (__builtin_add_overflow(p, IOVIRT_MEMLOCK_SLACK, &p))
                return -EOVERFLOW;
        *ret = p;
        return 0;
}

uint64_t iovirt_memlock_reserve(uint64_t memtotal, uint64_t configured) {
        if (configured > 0)
                return configured;
        /* memtotal / 100 * 5 cannot overflow; the remainder adds < 5 bytes */
        uint64_t r = memtotal / 100 * IOVIRT_MEMLOCK_RESERVE_PERCENT +
                     memtotal % 100 * IOVIRT_MEMLOCK_RESERVE_PERCENT / 100;
        return r < IOVIRT_MEMLOCK_RESERVE_MIN ? IOVIRT_MEMLOCK_RESERVE_MIN : r;
}

uint64_t iovirt_memlock_budget(uint64_t memtotal, uint64_t reserve) {
        return reserve >= memtotal ? 0 : memtotal - reserve;
}

uint64_t iovirt_memlock_counted(uint64_t pinned, uint64_t limit) {
        uint64_t by_limit = limit > IOVIRT_MEMLOCK_SLACK ? limit - IOVIRT_MEMLOCK_SLACK : 0;
        return pinned > by_limit ? pinned : by_limit;
}

int iovirt_memlock_budget_check(uint64_t memtotal, uint64_t reserve, uint64_t already_pinned,
                                uint64_t asked, char **reason) {
        char a[IOVIRT_SIZE_MAX], p[IOVIRT_SIZE_MAX], b[IOVIRT_SIZE_MAX], m[IOVIRT_SIZE_MAX],
             res[IOVIRT_SIZE_MAX], left[IOVIRT_SIZE_MAX];
        uint64_t budget = iovirt_memlock_budget(memtotal, reserve), total;
        bool fits = !__builtin_add_overflow(already_pinned, asked, &total) && total <= budget;

        iovirt_size_format(asked, a);
        iovirt_size_format(already_pinned, p);
        iovirt_size_format(budget, b);
        iovirt_size_format(memtotal, m);
        iovirt_size_format(reserve, res);
        if (fits) {
                iovirt_size_format(budget - total, left);
                if (!reason)
                        return 0;
                iovirt_set_reason(reason, 0, "%s asked, %s already pinned, budget %s (MemTotal %s less a %s reserve): %s left",
                                  a, p, b, m, res, left);
                return *reason ? 0 : -ENOMEM;
        }
        if (!reason)
                return -ENOSPC;
        iovirt_set_reason(reason, 0, "%s asked, %s already pinned, budget %s (MemTotal %s less a %s reserve)",
                          a, p, b, m, res);
        return *reason ? -ENOSPC : -ENOMEM;
}

int iovirt_memlock_cgroup_check(uint64_t memory_max, const char *cgroup, uint64_t guest_memory,
                                char **reason) {
        char mx[IOVIRT_SIZE_MAX], g[IOVIRT_SIZE_MAX], need_s[IOVIRT_SIZE_MAX], s[IOVIRT_SIZE_MAX];
        uint64_t need;
        bool overflow = __builtin_add_overflow(guest_memory, IOVIRT_MEMLOCK_SLACK, &need);

        iovirt_size_format(guest_memory, g);
        iovirt_size_format(IOVIRT_MEMLOCK_SLACK, s);
        if (memory_max == UINT64_MAX) {
                if (!reason)
                        return 0;
                iovirt_set_reason(reason, 0, "cgroup %s has no memory.max", strna(cgroup));
                return *reason ? 0 : -ENOMEM;
        }
        iovirt_size_format(memory_max, mx);
        if (!overflow && need <= memory_max) {
                if (!reason)
                        return 0;
                iovirt_set_reason(reason, 0, "cgroup %s has memory.max %s, room for %s of guest memory and %s more",
                                  strna(cgroup), mx, g, s);
                return *reason ? 0 : -ENOMEM;
        }
        if (!reason)
                return -ENOSPC;
        iovirt_size_format(overflow ? UINT64_MAX : need, need_s);
        iovirt_set_reason(reason, 0,
                          "cgroup %s has memory.max %s, less than the %s its %s of pinned guest memory and %s more need",
                          strna(cgroup), mx, need_s, g, s);
        return *reason ? -ENOSPC : -ENOMEM;
}

/* "1234 kB" (procfs' "kB" is KiB) → bytes */
static int parse_kb(const char *s, uint64_t *ret) {
        while (*s == ' ' || *s == '\t')
                s++;
        if (*s < '0' || *s > '9')
                return -EBADMSG;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0)
                return -EBADMSG;
        while (*end == ' ')
                end++;
        if (strncmp(end, "kB", 2) != 0 || (end[2] != '\0' && end[2] != '\n'))
                return -EBADMSG;
        uint64_t b;
        if (__builtin_mul_overflow((uint64_t) v, IOVIRT_KIB, &b))
                return -EBADMSG;
        *ret = b;
        return 0;
}

int iovirt_meminfo_total(uint64_t *ret) {
        _cleanup_free_ char *path = iovirt_root_path(PROC_MEMINFO), *text = NULL;
        if (!path)
                return -ENOMEM;
        int r = iovirt_read_file(path, &text);
        if (r < 0)
                return r;
        for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
                if (strncmp(line, "MemTotal:", 9) == 0)
                        return parse_kb(line + 9, ret);
        return -ENODATA;
}

int iovirt_memlock_get(pid_t pid, struct rlimit *ret) {
        if (prlimit(pid, RLIMIT_MEMLOCK, NULL, ret) < 0)
                return -errno;
        return 0;
}

static rlim_t rlim_max_of(rlim_t a, uint64_t b) {
        /* RLIM_INFINITY is the largest rlim_t: max() keeps it */
        return a >= (rlim_t) b ? a : (rlim_t) b;
}

int iovirt_memlock_raise(pid_t pid, uint64_t bytes, struct rlimit *orig, bool *raised) {
        struct rlimit cur, want, old;
        int r = iovirt_memlock_get(pid, &cur);
        if (r < 0)
                return r;
        want.rlim_cur = rlim_max_of(cur.rlim_cur, bytes);
        want.rlim_max = rlim_max_of(cur.rlim_max, bytes);
        if (orig)
                *orig = cur;
        if (want.rlim_cur == cur.rlim_cur && want.rlim_max == cur.rlim_max) {
                if (raised)
                        *raised = false;
                return 0;
        }
        /* old: the limit at the moment of the set, atomically */
        if (prlimit(pid, RLIMIT_MEMLOCK, &want, &old) < 0)
                return -errno;
        if (old.rlim_cur != cur.rlim_cur || old.rlim_max != cur.rlim_max) {
                /* Someone changed it between our read and our set: our set
                 * may have lowered what they raised.  Set the larger of both
                 * again, and report theirs as the original. */
                struct rlimit again = {
                        .rlim_cur = rlim_max_of(old.rlim_cur, want.rlim_cur),
                        .rlim_max = rlim_max_of(old.rlim_max, want.rlim_max),
                };
                /* raised already by the first set: said so even if this one fails */
                if (orig)
                        *orig = old;
                if (raised)
                        *raised = true;
                if (prlimit(pid, RLIMIT_MEMLOCK, &again, NULL) < 0)
                        return -errno;
        }
        if (raised)
                *raised = true;
        return 0;
}

static int proc_read(pid_t pid, const char *file, char **ret) {
        char rel[64];
        snprintf(rel, sizeof(rel), PROC_PID "/%d/%s", (int) pid, file);
        _cleanup_free_ char *path = iovirt_root_path(rel);
        return path ? iovirt_read_file(path, ret) : -ENOMEM;
}

int iovirt_process_identity(pid_t pid, uint32_t *uid, uint64_t *start_time) {
        _cleanup_free_ char *status = NULL, *stat = NULL;
        int r = proc_read(pid, "status", &status);
        if (r >= 0)
                r = proc_read(pid, "stat", &stat);
        if (r < 0)
                return r;
        const char *u = strstr(status, "\nUid:");
        unsigned long v;
        if (!u || sscanf(u + 5, "%lu", &v) != 1 || v > UINT32_MAX)
                return -EBADMSG;
        /* comm, in parentheses, may hold anything: fields count from its last ')' */
        const char *p = strrchr(stat, ')');
        unsigned long long start;
        if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                         &start) != 1)
                return -EBADMSG;
        *uid = (uint32_t) v;
        *start_time = start;
        return 0;
}

int iovirt_pidfd_open(pid_t pid) {
        if (pid <= 0)
                return -EINVAL;
        long fd = syscall(SYS_pidfd_open, pid, 0);
        return fd < 0 ? -errno : (int) fd;
}

int iovirt_pidfd_alive(int pidfd) {
        /* a pidfd polls readable once its process has exited: no permission
         * needed (signal 0 would need CAP_KILL for another uid's process) */
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        int r = poll(&p, 1, 0);
        if (r < 0)
                return -errno;
        if (p.revents & POLLNVAL)
                return -EBADF;
        return r > 0 ? -ESRCH : 0;
}

int iovirt_memlock_raise_pidfd(int pidfd, pid_t pid, uint64_t bytes, struct rlimit *orig, bool *raised) {
        int r = iovirt_pidfd_alive(pidfd);
        if (r < 0)
                return r;
        r = iovirt_memlock_raise(pid, bytes, orig, raised);
        if (r < 0)
                return r;
        return iovirt_pidfd_alive(pidfd);
}

int iovirt_memlock_restore(pid_t pid, const struct rlimit *orig) {
        if (prlimit(pid, RLIMIT_MEMLOCK, orig, NULL) < 0)
                return -errno;
        return 0;
}

/* "max" or a decimal byte count */
static int parse_memory_max(const char *s, uint64_t *ret) {
        if (streq_ptr(s, "max")) {
                *ret = UINT64_MAX;
                return 0;
        }
        if (!s || *s < '0' || *s > '9')
                return -EBADMSG;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || *end)
                return -EBADMSG;
        *ret = v;
        return 0;
}

int iovirt_cgroup_memory_max(pid_t pid, uint64_t *ret, char **ret_path, char **reason) {
        char rel[64];
        snprintf(rel, sizeof(rel), PROC_PID "/%d/cgroup", (int) pid);
        _cleanup_free_ char *path = iovirt_root_path(rel), *text = NULL;
        if (!path)
                return -ENOMEM;
        int r = iovirt_read_file(path, &text);
        if (r < 0)
                return iovirt_set_reason(reason, r, "cannot read the cgroups of process %d: %s", (int) pid, strerror(-r));

        /* Lines "ID:CONTROLLERS:PATH": "0::PATH" is the v2 hierarchy; a v1
         * hierarchy that names memory means the memory controller is v1. */
        const char *v2 = NULL;
        size_t v2_len = 0;
        for (char *line = text; line && *line;) {
                char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t) (nl - line) : strlen(line);
                char *c1 = memchr(line, ':', len);
                char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t) (c1 + 1 - line)) : NULL;
                if (!c2)
                        return iovirt_set_reason(reason, -EBADMSG, "%s is malformed", rel);
                if (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1) {
                        v2 = c2 + 1;
                        v2_len = len - (size_t) (c2 + 1 - line);
                } else {
                        /* controllers are comma-separated: "memory" or "cpu,memory" */
                        for (const char *c = c1 + 1; c < c2;) {
                                const char *e = memchr(c, ',', (size_t) (c2 - c));
                                if (!e)
                                        e = c2;
                                if (e - c == 6 && strncmp(c, "memory", 6) == 0)
                                        return iovirt_set_reason(reason, -EOPNOTSUPP,
                                                                 "the memory controller of this host is in a cgroup v1 hierarchy: "
                                                                 "what process %d's cgroup can hold cannot be checked", (int) pid);
                                c = e + 1;
                        }
                }
                line = nl ? nl + 1 : NULL;
        }
        if (!v2 || v2_len == 0 || v2[0] != '/')
                return iovirt_set_reason(reason, -EOPNOTSUPP,
                                         "process %d is in no cgroup v2 hierarchy: what its cgroup can hold cannot be checked",
                                         (int) pid);

        _cleanup_free_ char *cg = strndup(v2, v2_len);
        if (!cg)
                return -ENOMEM;
        if (strstr(cg, "/../") || (strlen(cg) >= 3 && strcmp(cg + strlen(cg) - 3, "/..") == 0))
                return iovirt_set_reason(reason, -EBADMSG, "%s names an odd cgroup path", rel);
        /* A process in a cgroup removed since shows " (deleted)" after the path */
        char *deleted = strstr(cg, " (deleted)");
        if (deleted)
                *deleted = '\0';

        /* cgroup2 where systemd mounts it; a hybrid host has it elsewhere
         * (…/unified) with memory in v1: a host that cannot say */
        _cleanup_free_ char *controllers = iovirt_root_path(CGROUP_ROOT "/cgroup.controllers");
        if (!controllers)
                return -ENOMEM;
        if (access(controllers, F_OK) < 0)
                return iovirt_set_reason(reason, -EOPNOTSUPP,
                                         "cgroup v2 is not mounted at " CGROUP_ROOT ": what process %d's cgroup can "
                                         "hold cannot be checked", (int) pid);

        uint64_t best = UINT64_MAX;
        _cleanup_free_ char *best_path = strdup(cg);
        if (!best_path)
                return -ENOMEM;
        /* From the leaf up to (not including) the root cgroup, which has no memory.max */
        for (size_t len = strlen(cg); len > 1;) {
                cg[len] = '\0';
                _cleanup_free_ char *dir = NULL, *rooted = NULL;
                if (asprintf(&dir, CGROUP_ROOT "%s", cg) < 0 || !(rooted = iovirt_root_path(dir)))
                        return -ENOMEM;
                char buf[64];
                r = iovirt_sysfs_read(rooted, CGROUP_MEMORY_MAX, buf, sizeof(buf));
                if (r >= 0) {
                        uint64_t v;
                        if (parse_memory_max(buf, &v) < 0)
                                return iovirt_set_reason(reason, -EBADMSG, "%s/%s is malformed: '%s'", dir, CGROUP_MEMORY_MAX, buf);
                        if (v < best) {
                                best = v;
                                free(best_path);
                                if (!(best_path = strdup(cg)))
                                        return -ENOMEM;
                        }
                } else if (r == -ENOENT && access(rooted, F_OK) == 0) {
                        /* the memory controller is not enabled for this
                         * cgroup: its parents' limits still hold */
                } else if (r == -ENOENT)
                        /* no such cgroup (a private mount, a cgroup gone): nothing was read, nothing passes */
                        return iovirt_set_reason(reason, -ENOENT, "process %d's cgroup %s is not in " CGROUP_ROOT,
                                                 (int) pid, dir + strlen(CGROUP_ROOT));
                else
                        return iovirt_set_reason(reason, r, "cannot read %s/%s: %s", dir, CGROUP_MEMORY_MAX, strerror(-r));
                char *slash = strrchr(cg, '/');
                len = slash ? (size_t) (slash - cg) : 0;
        }
        *ret = best;
        if (ret_path)
                *ret_path = TAKE_PTR(best_path);
        return 0;
}

/* ---- what iovirt keeps of a process whose limit it raises ---- */

#define MEMLOCK_RECORD_PREFIX "memlock-"
#define MEMLOCK_RECORD_SUFFIX ".json"

void iovirt_memlock_record_clear(IovirtMemlockRecord *r) {
        if (r) {
                r->consumer = mfree(r->consumer);
                r->boot_id = mfree(r->boot_id);
        }
}

static void record_name(char buf[static 64], pid_t pid) {
        snprintf(buf, 64, MEMLOCK_RECORD_PREFIX "%d" MEMLOCK_RECORD_SUFFIX, (int) pid);
}

static int add_u64(json_object *o, const char *key, uint64_t v) {
        json_object *x = json_object_new_uint64(v);
        if (!x || json_object_object_add(o, key, x) < 0) {
                json_object_put(x);
                return -ENOMEM;
        }
        return 0;
}

int iovirt_memlock_record_save(const char *dir, const IovirtMemlockRecord *r) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *c = json_object_new_string(r->consumer ? r->consumer : "");
        char name[64];
        const char *text;
        size_t size = 0;

        if (!o || !c || json_object_object_add(o, "consumer", c) < 0) {
                json_object_put(c);
                return -ENOMEM;
        }
        if (r->pid <= 0)
                return -EINVAL;
        int k = add_u64(o, "version", IOVIRT_STATE_VERSION);
        if (k >= 0)
                k = add_u64(o, "pid", (uint64_t) r->pid);
        if (k >= 0)
                k = add_u64(o, "pid_start", r->pid_start);
        if (k >= 0)
                k = add_u64(o, "soft", r->soft);
        if (k >= 0)
                k = add_u64(o, "hard", r->hard);
        json_object *b = k >= 0 && r->boot_id ? json_object_new_string(r->boot_id) : NULL;
        if (k >= 0 && r->boot_id && (!b || json_object_object_add(o, "boot_id", b) < 0)) {
                json_object_put(b);
                k = -ENOMEM;
        }
        if (k >= 0)
                k = iovirt_json_text(o, &text, &size);
        if (k < 0)
                return k;
        record_name(name, r->pid);
        return iovirt_file_save_atomic(dir, name, text, size);
}

int iovirt_memlock_record_load(const char *dir, pid_t pid, IovirtMemlockRecord *ret) {
        char name[64], path[PATH_MAX];
        _cleanup_free_ char *text = NULL, *why = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *c, *b;
        uint64_t version, p;
        size_t size = 0;

        record_name(name, pid);
        if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        int k = iovirt_read_file_sized(path, &text, &size);
        if (k < 0)
                return k;
        k = iovirt_json_text_parse(text, size, &o, &why);
        if (k < 0)
                return k == -ENOMEM ? k : -EBADMSG;
        IovirtMemlockRecord r = {};
        if (!json_object_is_type(o, json_type_object) || iovirt_json_get_u64(o, "version", UINT32_MAX, &version) < 0 ||
            version != IOVIRT_STATE_VERSION || iovirt_json_get_u64(o, "pid", INT32_MAX, &p) < 0 || p != (uint64_t) pid ||
            iovirt_json_get_u64(o, "pid_start", UINT64_MAX, &r.pid_start) < 0 ||
            iovirt_json_get_u64(o, "soft", UINT64_MAX, &r.soft) < 0 ||
            iovirt_json_get_u64(o, "hard", UINT64_MAX, &r.hard) < 0 || !json_object_object_get_ex(o, "consumer", &c) ||
            !json_object_is_type(c, json_type_string) || !json_object_object_get_ex(o, "boot_id", &b) ||
            !json_object_is_type(b, json_type_string))
                return -EBADMSG;
        r.pid = (int32_t) p;
        if (!(r.consumer = strdup(json_object_get_string(c))) || !(r.boot_id = strdup(json_object_get_string(b)))) {
                iovirt_memlock_record_clear(&r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

int iovirt_memlock_record_remove(const char *dir, pid_t pid) {
        char name[64];
        record_name(name, pid);
        return iovirt_file_remove(dir, name);
}

int iovirt_memlock_record_set_aside(const char *dir, pid_t pid, const char *why, char **problem) {
        char name[64];
        record_name(name, pid);
        return iovirt_file_set_aside(dir, name, why, problem);
}

/* "memlock-1234.json": 1234; -1 for any other name (a leading zero, a sign, a temporary file) */
static pid_t record_name_pid(const char *name) {
        size_t pl = strlen(MEMLOCK_RECORD_PREFIX);
        if (strncmp(name, MEMLOCK_RECORD_PREFIX, pl) != 0)
                return -1;
        const char *p = name + pl;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 10 || p[0] == '0' || strcmp(p + digits, MEMLOCK_RECORD_SUFFIX) != 0)
                return -1;
        long long v = 0;
        for (size_t i = 0; i < digits; i++)
                v = v * 10 + (p[i] - '0');
        return v <= INT32_MAX ? (pid_t) v : -1;
}

int iovirt_memlock_record_pids(const char *dir, pid_t **ret, size_t *n_ret) {
        _cleanup_free_ pid_t *v = NULL;
        size_t n = 0, allocated = 0;
        _cleanup_closedir_ DIR *d = opendir(dir);
        if (!d)
                return -errno;
        for (struct dirent *de; (de = readdir(d));) {
                if (strncmp(de->d_name, "." MEMLOCK_RECORD_PREFIX, strlen(MEMLOCK_RECORD_PREFIX) + 1) == 0) {
                        unlinkat(dirfd(d), de->d_name, 0);      /* an interrupted save */
                        continue;
                }
                pid_t pid = record_name_pid(de->d_name);
                if (pid <= 0)
                        continue;
                pid_t *slot = GROW(v, n, allocated);
                if (!slot)
                        return -ENOMEM;
                *slot = pid;
        }
        *ret = TAKE_PTR(v);
        *n_ret = n;
        return 0;
}
