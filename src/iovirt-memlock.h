/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Pinned memory: the RLIMIT_MEMLOCK a VFIO consumer needs, the host-wide
 * budget of what iovirt lets consumers pin, and the process limits and
 * cgroup facts behind them.
 *
 * The sizing rule is libvirt's (qemuDomainGetMemLockLimitBytes in
 * src/qemu/qemu_domain.c, x86 branch): a hard limit wins; otherwise, with at
 * least one VFIO device, factor x guest memory + 1 GiB, where factor is the
 * number of VFIO devices when the guest has a vIOMMU (each device's address
 * space is mapped and accounted separately) and 1 without one (all devices
 * share the one container mapping); with no VFIO device no limit is needed.
 * libvirt also counts NVMe disks and vDPA devices into the factor and
 * returns "unlimited" for <memoryBacking><locked/>: a libvirt consumer
 * passes those in as devices; iovirt only sees VFIO devices.
 *
 * Pure functions first (testable on numbers), then the small readers and
 * the prlimit(2) wrappers. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#define IOVIRT_KIB (UINT64_C(1) << 10)
#define IOVIRT_MIB (UINT64_C(1) << 20)
#define IOVIRT_GIB (UINT64_C(1) << 30)

/* What libvirt adds on top of the pinned guest memory: room for QEMU's own
 * locked memory and emulated devices' MMIO. */
#define IOVIRT_MEMLOCK_SLACK IOVIRT_GIB
/* The default reserve: 5% of MemTotal, at least 512 MiB */
#define IOVIRT_MEMLOCK_RESERVE_PERCENT 5
#define IOVIRT_MEMLOCK_RESERVE_MIN (512 * IOVIRT_MIB)

/* "4.0 GiB", "512 B", "16.0 EiB": binary units, one decimal. Returns buf. */
#define IOVIRT_SIZE_MAX 32
const char *iovirt_size_format(uint64_t bytes, char buf[static IOVIRT_SIZE_MAX]);

/* The factor of the rule: 0 with no VFIO device, n with a vIOMMU, 1 without. */
unsigned iovirt_memlock_factor(unsigned n_vfio_devices, bool viommu);

/* What the consumer pins and what counts against the host budget: guest
 * memory x factor (not the 1 GiB slack, and not a hard limit).
 * -EOVERFLOW when it does not fit 64 bits. */
int iovirt_memlock_pinned(uint64_t guest_memory, unsigned n_vfio_devices, bool viommu, uint64_t *ret);

/* What counts against the budget for a consumer that pins pinned and whose
 * process has limit (0: none) set: the larger of pinned and the limit less
 * the slack, since the process may pin up to its limit whatever memory
 * it was said to have (a hard limit counts in full). */
uint64_t iovirt_memlock_counted(uint64_t pinned, uint64_t limit);

/* The RLIMIT_MEMLOCK the consumer's process needs, in bytes, as libvirt
 * computes it: hard_limit (0: none) as it is; otherwise factor x guest
 * memory + 1 GiB; 0 when there is no VFIO device (nothing to raise).
 * -EOVERFLOW when it does not fit 64 bits. */
int iovirt_memlock_limit(uint64_t guest_memory, unsigned n_vfio_devices, bool viommu,
                         uint64_t hard_limit, uint64_t *ret);

/* The reserve of host memory never handed out for pinning: configured
 * (0: the default, 5% of memtotal, at least 512 MiB). */
uint64_t iovirt_memlock_reserve(uint64_t memtotal, uint64_t configured);

/* The budget: memtotal less the reserve (0 when the reserve is larger). */
uint64_t iovirt_memlock_budget(uint64_t memtotal, uint64_t reserve);

/* Whether asked more bytes can be pinned on top of already_pinned.  0 (a
 * sentence in *reason saying what is left), -ENOSPC (a sentence naming
 * asked, already pinned and the budget: "4.0 GiB asked, 60.0 GiB already
 * pinned, budget 61.2 GiB (MemTotal 64.4 GiB less a 3.2 GiB reserve)"), or
 * -ENOMEM when the sentence cannot be made (fail closed). reason may be NULL. */
int iovirt_memlock_budget_check(uint64_t memtotal, uint64_t reserve, uint64_t already_pinned,
                                uint64_t asked, char **reason);

/* Whether the memory cgroup limit memory_max (UINT64_MAX: none) of the
 * consumer's cgroup can hold its guest memory plus the 1 GiB slack: pinned
 * pages are charged to the memory cgroup once and cannot be reclaimed, so a
 * smaller memory.max ends in the OOM killer instead of a failed map.
 * 0 or -ENOSPC, each with a sentence; -ENOMEM when it cannot be made. */
int iovirt_memlock_cgroup_check(uint64_t memory_max, const char *cgroup, uint64_t guest_memory,
                                char **reason);

/* MemTotal from $IOVIRT_ROOT/proc/meminfo, in bytes. -ENODATA when it has
 * no MemTotal line, -EBADMSG when it is malformed. */
int iovirt_meminfo_total(uint64_t *ret);

/* RLIMIT_MEMLOCK of pid (0: ourselves) */
int iovirt_memlock_get(pid_t pid, struct rlimit *ret);

/* Raises pid's RLIMIT_MEMLOCK, soft and hard, to at least bytes; never
 * lowers either.  *orig receives the limit before (to give to restore),
 * *raised whether anything changed.  Raising a hard limit needs
 * CAP_SYS_RESOURCE, and acting on another uid's process too: -EPERM. */
int iovirt_memlock_raise(pid_t pid, uint64_t bytes, struct rlimit *orig, bool *raised);

/* The same on a process pinned by a pidfd (pidfd_open(2) of pid, taken when
 * the consumer was named).  prlimit(2) only takes a PID, so this checks
 * through the pidfd, before and after, that pid still is that process:
 * -ESRCH when it exited.  What that guarantees: when it returns 0 the limit
 * was set on the pinned process (a PID is not reused while its process has
 * not been reaped, and the pidfd saw it alive after prlimit).  When the
 * process exits and its PID is reused in the microseconds between the first
 * check and prlimit, a stranger may have received the raise; the -ESRCH
 * after says so, but cannot undo it. */
int iovirt_memlock_raise_pidfd(int pidfd, pid_t pid, uint64_t bytes, struct rlimit *orig, bool *raised);

/* Sets pid's RLIMIT_MEMLOCK back to orig (as raise returned it). */
int iovirt_memlock_restore(pid_t pid, const struct rlimit *orig);

/* Who process pid is: its real uid (the first of status's Uid: line) and
 * its start time (field 22 of stat, clock ticks after boot), which tells a
 * process from a later one given the same PID.  From $IOVIRT_ROOT/proc.
 * -ENOENT when it is gone, -EBADMSG when a file is malformed. */
int iovirt_process_identity(pid_t pid, uint32_t *uid, uint64_t *start_time);

/* pidfd_open(2); returns the fd */
int iovirt_pidfd_open(pid_t pid);
/* 0 when the process of pidfd is alive, -ESRCH once it has exited (a zombie included) */
int iovirt_pidfd_alive(int pidfd);

/* The memory.max that binds pid: the smallest memory.max of its cgroup v2
 * and of every ancestor, read from $IOVIRT_ROOT/proc/PID/cgroup ("0::/path")
 * and $IOVIRT_ROOT/sys/fs/cgroup/PATH/memory.max.  *ret is UINT64_MAX when
 * none is set ("max"); *path (may be NULL) the cgroup whose limit binds, or
 * the process's own cgroup when none does.  -EOPNOTSUPP on a host whose
 * memory controller is in a cgroup v1 hierarchy (a sentence in *reason:
 * what cannot be checked), -ENOENT when the process is gone. */
int iovirt_cgroup_memory_max(pid_t pid, uint64_t *ret, char **path, char **reason);

/* ---- what iovirt keeps of a process whose limit it raises ----
 * STATE_DIR/memlock-PID.json: {"version":1,"pid","pid_start","consumer","soft","hard","boot_id"}.
 * Written before the first raise of that process and removed once its
 * limit from before is back (its last group released, a failed assign
 * undone), so that a crash between the raise and the group's own record,
 * or between putting the limit back and dropping the group's record,
 * leaves something that says what to put back.  At start-up, a record of
 * a process that still runs and holds no group is such a crash: its limit
 * goes back (daemon/iovirtd-policy.c). */
typedef struct IovirtMemlockRecord {
        int32_t pid;
        uint64_t pid_start;                /* with pid, which process (iovirt_process_identity) */
        uint64_t soft, hard;               /* the limit before iovirt raised it; RLIM_INFINITY as UINT64_MAX */
        char *consumer;                    /* for the operator: "pid:N" as it was named */
        char *boot_id;                     /* the kernel's boot: a record of another boot names no process */
} IovirtMemlockRecord;

void iovirt_memlock_record_clear(IovirtMemlockRecord *r);

/* Atomically (a temporary file, fsync, rename, fsync the directory) */
int iovirt_memlock_record_save(const char *dir, const IovirtMemlockRecord *r);
/* pid's record: -ENOENT when there is none, -EBADMSG when it is damaged */
int iovirt_memlock_record_load(const char *dir, pid_t pid, IovirtMemlockRecord *ret);
/* 0 when there was none */
int iovirt_memlock_record_remove(const char *dir, pid_t pid);
/* A damaged record renamed memlock-PID.json.damaged-TIME; *problem says so */
int iovirt_memlock_record_set_aside(const char *dir, pid_t pid, const char *why, char **problem);
/* The PIDs of every record in dir (files named exactly memlock-PID.json) */
int iovirt_memlock_record_pids(const char *dir, pid_t **ret, size_t *n_ret);
