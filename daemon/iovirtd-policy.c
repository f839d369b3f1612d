/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <grp.h>
#include <pwd.h>
#include <sys/epoll.h>
#include <syslog.h>

#include "iovirt-json.h"
#include "iovirt-fault.h"
#include "iovirt-memlock.h"
#include "iovirt-names.h"
#include "iovirt-sysfs.h"
#include "iovirtd-assign.h"
#include "iovirtd-job.h"
#include "iovirtd-log.h"
#include "iovirtd-policy.h"

/* ---- the files ---- */

static void strv_free(char **v) {
        for (char **s = v; s && *s; s++)
                free(*s);
        free(v);
}

/* The file's warnings, and selectors that match nothing on this host */
static void log_policy_warnings(Manager *m, const IovirtPolicy *p) {
        char **unmatched = NULL;
        for (size_t i = 0; i < p->n_warnings; i++)
                log_warning("%s", p->warnings[i]);
        if (m->host && iovirt_policy_unmatched(p, m->host, &unmatched) > 0)
                for (char **s = unmatched; *s; s++)
                        log_warning("%s", *s);
        strv_free(unmatched);
}

int manager_load_policy(Manager *m) {
        _cleanup_free_ char *error = NULL;
        int r = manager_reload_policy(m, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                log_full_errno(LOG_ERR, r, NULL, "The policy was not loaded: %s; every assignment is refused until "
                               "'iovirtctl reload' reads a good one", strna(error));
        return 0;
}

int manager_reload_policy(Manager *m, char **error) {
        _cleanup_(iovirt_policy_freep) IovirtPolicy *p = NULL;
        _cleanup_free_ char *why = NULL;
        int r = iovirt_policy_load(&p, &why);
        if (r < 0) {
                if (r == -ENOMEM && !why)
                        return r;
                /* the last good policy stays (with none, the error refuses
                 * assignments); DescribePolicy tells the error either way */
                free(m->policy_error);
                m->policy_error = strdup(why ? why : strerror(-r));
                *error = TAKE_PTR(why);
                return r == -ENOMEM ? r : -EINVAL;
        }
        log_policy_warnings(m, p);
        log_info("Policy: %zu file%s, %zu pool%s", p->n_files, p->n_files == 1 ? "" : "s", p->n_pools,
                 p->n_pools == 1 ? "" : "s");
        iovirt_policy_free(m->policy);
        m->policy = TAKE_PTR(p);
        m->policy_error = mfree(m->policy_error);
        return 0;
}

/* ---- gathering ---- */

void policy_facts_clear(PolicyFacts *f) {
        if (f->pidfd >= 0)
                close(f->pidfd);
        iovirt_numa_facts_free(f->numa);
        iovirt_bitmap_clear(&f->placement);
        free(f->placement_from);
        free(f->caller_name);
        free(f->gids);
        for (size_t i = 0; f->group_names && i < f->req.n_caller_gids; i++)
                free(f->group_names[i]);
        free(f->group_names);
        free(f->cgroup_path);
        free(f->cgroup_reason);
        *f = (PolicyFacts) { .pidfd = -EBADF };
}

int consumer_pid(const char *consumer, pid_t *ret) {
        const char *n = consumer + 4;
        int pid;
        if (strncmp(consumer, "pid:", 4) != 0) {
                *ret = 0;
                return 0;
        }
        /* one spelling per process: pid:07 or pid:+7 would be another
         * consumer (another tally, another limit) of the same process */
        if (*n < '1' || *n > '9' || strspn(n, "0123456789") != strlen(n) || iovirt_parse_int(n, &pid) < 0)
                return -EINVAL;
        *ret = pid;
        return 1;
}

/* The caller's name and groups, for Users= and Groups= given by name */
static int gather_caller(PolicyFacts *f, uint32_t uid) {
        f->req.caller_uid = uid;
        struct passwd *pw = getpwuid(uid);
        if (!pw)
                return 0;    /* no name: numeric entries still match */
        if (!(f->caller_name = strdup(pw->pw_name)))
                return -ENOMEM;
        int n = 64;
        for (int tries = 0; tries < 4; tries++) {
                gid_t *g = calloc((size_t) n, sizeof(gid_t));
                if (!g)
                        return -ENOMEM;
                int k = n;
                if (getgrouplist(pw->pw_name, pw->pw_gid, g, &k) < 0) {
                        free(g);
                        n = k > n ? k : n * 2;
                        continue;
                }
                f->gids = calloc((size_t) k + 1, sizeof(uint32_t));
                f->group_names = calloc((size_t) k + 1, sizeof(char *));
                if (!f->gids || !f->group_names) {
                        free(g);
                        return -ENOMEM;
                }
                for (int i = 0; i < k; i++) {
                        f->gids[i] = g[i];
                        struct group *gr = getgrgid(g[i]);
                        f->req.n_caller_gids = (size_t) i + 1;
                        if (gr && !(f->group_names[i] = strdup(gr->gr_name))) {
                                free(g);
                                return -ENOMEM;
                        }
                }
                free(g);
                break;
        }
        return 0;
}

/* A pid: consumer's process: pinned with a pidfd first, then read; read
 * again after, so what was read is that process's */
static int gather_process(PolicyFacts *f, pid_t pid) {
        f->req.pid = pid;
        int fd = iovirt_pidfd_open(pid);
        if (fd < 0) {
                f->req.process_error = fd;
                return 0;
        }
        f->pidfd = fd;
        int r = iovirt_process_identity(pid, &f->req.process_uid, &f->pid_start);
        if (r == -ENOMEM)
                return r;
        f->req.process_start = f->pid_start;
        f->req.process_error = r < 0 ? r : 0;
        if (r < 0)
                return 0;
        r = iovirt_cgroup_memory_max(pid, &f->req.cgroup_max, &f->cgroup_path, &f->cgroup_reason);
        if (r == -ENOMEM)
                return r;
        f->req.cgroup_error = r < 0 ? r : 0;
        f->req.cgroup_path = f->cgroup_path;
        f->req.cgroup_reason = f->cgroup_reason;
        return 0;
}

static int gather_placement(PolicyFacts *f, const PolicyAsk *ask) {
        int r;
        if (!f->numa)
                return 0;
        if (ask->numa_node >= 0) {
                r = iovirt_bitmap_set(&f->placement, (unsigned) ask->numa_node);
                if (r < 0 || asprintf(&f->placement_from, "--numa-node %d", ask->numa_node) < 0)
                        return -ENOMEM;
        } else if (ask->nodes) {
                r = iovirt_numa_nodelist_parse(ask->nodes, &f->placement);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return 0;     /* not a list iovirt reads (libvirt's ^N exclusions): unknown */
                if (asprintf(&f->placement_from, "%s %s", ask->placement_from ? ask->placement_from : "nodes",
                             ask->nodes) < 0)
                        return -ENOMEM;
        } else if (ask->cpus) {
                _cleanup_(iovirt_bitmap_clear) IovirtBitmap cpus = {};
                r = iovirt_numa_cpulist_parse(ask->cpus, &cpus);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 && ask->placement_from)
                        return 0;     /* a domain's cpuset with libvirt's ^N exclusions: unknown */
                if (r >= 0)
                        r = iovirt_numa_placement(f->numa, &cpus, NULL, &f->placement);
                if (r < 0 || asprintf(&f->placement_from, "%s %s", ask->placement_from ? ask->placement_from : "--cpus",
                                      ask->cpus) < 0)
                        return r < 0 ? r : -ENOMEM;
        } else if (f->req.pid > 0 && f->req.process_error == 0) {
                _cleanup_(iovirt_bitmap_clear) IovirtBitmap cpus = {}, mems = {};
                r = iovirt_numa_process_read(f->req.pid, &cpus, &mems);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return 0;     /* unknown: the policy says what that means */
                r = iovirt_numa_placement(f->numa, &cpus, &mems, &f->placement);
                if (r < 0 || !(f->placement_from = strdup("its Cpus_allowed_list and Mems_allowed_list")))
                        return r < 0 ? r : -ENOMEM;
        } else
                return 0;
        f->req.placement = &f->placement;
        f->req.placement_from = f->placement_from;
        return 0;
}

int policy_gather(Manager *m, const char *consumer, const PolicyAsk *ask, PolicyFacts *ret) {
        _cleanup_(policy_facts_clear) PolicyFacts f = { .pidfd = -EBADF };
        pid_t pid;
        int r;

        f.req = (IovirtPolicyRequest) {
                .policy = m->policy, .policy_error = m->policy_error, .memory = ask->memory, .viommu = ask->viommu,
                .hard_limit = ask->hard_limit, .numa_policy = ask->numa_policy,
                .pending_functions = ask->pending_functions,
        };
        r = gather_caller(&f, ask->caller_uid);
        if (r < 0)
                return r;
        f.req.caller_name = f.caller_name;
        f.req.caller_gids = f.gids;
        f.req.caller_group_names = (const char *const *) f.group_names;
        if (consumer_pid(consumer, &pid) > 0) {
                r = gather_process(&f, pid);
                if (r < 0)
                        return r;
        }
        r = iovirt_numa_facts_read(&f.numa);
        if (r == -ENOMEM)
                return r;
        f.req.numa = f.numa;
        f.req.numa_error = r < 0 ? r : 0;
        r = gather_placement(&f, ask);
        if (r < 0)
                return r;
        /* alive after the last read of /proc/PID: what was read is the pinned process's */
        if (f.req.pid > 0 && f.req.process_error == 0) {
                r = iovirt_pidfd_alive(f.pidfd);
                f.req.process_error = r < 0 ? r : 0;
        }
        r = iovirt_meminfo_total(&f.req.memtotal);
        if (r == -ENOMEM)
                return r;
        f.req.memtotal_error = r < 0 ? r : 0;
        if (r < 0)
                f.req.memtotal = 0;
        *ret = f;
        f = (PolicyFacts) { .pidfd = -EBADF };
        /* the request points into the facts: at their new place */
        ret->req.caller_name = ret->caller_name;
        ret->req.caller_gids = ret->gids;
        ret->req.caller_group_names = (const char *const *) ret->group_names;
        ret->req.placement = ret->req.placement ? &ret->placement : NULL;
        ret->req.placement_from = ret->placement_from;
        ret->req.numa = ret->numa;
        ret->req.cgroup_path = ret->cgroup_path;
        ret->req.cgroup_reason = ret->cgroup_reason;
        return 0;
}

int policy_node_owner(const PolicyFacts *f, const PolicyAsk *ask, uint32_t *ret, char **reason) {
        int uid;
        if (!ask->user) {
                *ret = f->req.pid > 0 && f->req.process_error == 0 ? f->req.process_uid : 0;
                return 0;
        }
        if (iovirt_parse_int(ask->user, &uid) < 0 || uid < 0) {
                struct passwd *pw = getpwnam(ask->user);
                if (!pw)
                        return iovirt_set_reason(reason, -ESRCH, "There is no user '%s' to give " DEV_VFIO "/N to",
                                                 ask->user);
                uid = (int) pw->pw_uid;
        }
        if (ask->caller_uid != 0 && (uint32_t) uid != ask->caller_uid)
                return iovirt_set_reason(reason, -EPERM, "uid %u may give " DEV_VFIO "/N only to itself, not to "
                                         "uid %d", ask->caller_uid, uid);
        *ret = (uint32_t) uid;
        return 0;
}

/* ---- pinned memory ---- */

static uint64_t rlim_to_u64(rlim_t v) {
        return v == RLIM_INFINITY ? UINT64_MAX : (uint64_t) v;
}

static rlim_t u64_to_rlim(uint64_t v) {
        return v == UINT64_MAX ? RLIM_INFINITY : (rlim_t) v;
}


int policy_holder(Manager *m, const PolicyFacts *f, const IovirtPlan *plan, IovirtHolder *ret) {
        IovirtPinnedTally tally;
        IovirtMemlockNeed need;
        const IovirtGroup *g = iovirt_host_find_group(m->host, plan->group);
        const IovirtPolicyPool *pool =
                g ? iovirt_policy_pool_of(m->policy, m->host, &m->verdicts->groups[g - m->host->groups]) : NULL;
        int r = iovirt_pinned_tally(m->state, plan->consumer, &tally);
        if (r >= 0)
                r = iovirt_memlock_need(&f->req, pool, &tally, (unsigned) plan->n_steps + f->req.pending_functions,
                                        &need);
        if (r < 0)
                return r;
        IovirtHolder h = {
                .known = true, .uid = f->req.caller_uid, .pid = f->req.pid > 0 ? f->req.pid : 0,
                .pid_start = f->pid_start, .memory = need.memory, .viommu = need.viommu,
                .memlock = f->req.pid > 0 ? need.limit : 0,
        };
        /* The limit from before its first group, kept with every group of
         * the consumer, whichever of them raised it and whichever goes last */
        struct rlimit now;
        /* (only while it is the same process: a PID reused under the same name has limits of its own) */
        if (tally.my_holder && tally.my_holder->memlock_saved && tally.my_holder->pid == h.pid &&
            tally.my_holder->pid_start == h.pid_start) {
                h.memlock_saved = true;
                h.memlock_soft = tally.my_holder->memlock_soft;
                h.memlock_hard = tally.my_holder->memlock_hard;
        } else if (h.pid > 0 && iovirt_memlock_get(h.pid, &now) >= 0) {
                h.memlock_saved = true;
                h.memlock_soft = rlim_to_u64(now.rlim_cur);
                h.memlock_hard = rlim_to_u64(now.rlim_max);
        }
        *ret = h;
        return 0;
}

/* The process's limit from before, on disk before anything is raised:
 * kept when it has one already (an earlier group of it raised first, and
 * that one's from-before is the original).  1 when written now. */
static int memlock_record(const IovirtHolder *holder, const char *consumer, const char *dir, char **reason) {
        _cleanup_(iovirt_memlock_record_clear) IovirtMemlockRecord rec = {};
        int r = iovirt_memlock_record_load(dir, holder->pid, &rec);
        if (r == -ENOMEM)
                return r;
        if (r >= 0 && rec.pid_start == holder->pid_start)
                return 0;
        /* none, another process's of the same PID, or damaged: this process's now */
        iovirt_memlock_record_clear(&rec);
        struct rlimit now;
        rec = (IovirtMemlockRecord) { .pid = holder->pid, .pid_start = holder->pid_start };
        r = iovirt_boot_id(&rec.boot_id);
        if (r >= 0 && holder->memlock_saved) {
                rec.soft = holder->memlock_soft;
                rec.hard = holder->memlock_hard;
        } else if (r >= 0 && (r = iovirt_memlock_get(holder->pid, &now)) >= 0) {
                rec.soft = rlim_to_u64(now.rlim_cur);
                rec.hard = rlim_to_u64(now.rlim_max);
        }
        if (r >= 0)
                r = (rec.consumer = strdup(consumer)) ? iovirt_memlock_record_save(dir, &rec) : -ENOMEM;
        if (r < 0)
                return iovirt_set_reason(reason, r, "Could not record RLIMIT_MEMLOCK of process %d in %s before "
                                         "raising it: %s; nothing was changed%s", (int) holder->pid, dir, strerror(-r),
                                         iovirt_state_write_advice(r));
        return 1;
}

int policy_raise_memlock(int pidfd, IovirtHolder *holder, const char *consumer, const char *dir,
                         struct rlimit *before, bool *raised, bool *recorded, char **reason) {
        struct rlimit orig;
        *raised = *recorded = false;
        if (holder->pid <= 0 || holder->memlock == 0)
                return 0;
        int r = memlock_record(holder, consumer, dir, reason);
        if (r < 0)
                return r;
        *recorded = r > 0;
        iovirt_fault_point("memlock.intent");
        r = iovirt_memlock_raise_pidfd(pidfd, holder->pid, holder->memlock, &orig, raised);
        uint32_t uid;
        uint64_t start;
        /* gone between the checks: if its PID is another process's already, that one got the raise */
        if (r == -ESRCH && *raised && iovirt_process_identity(holder->pid, &uid, &start) >= 0 &&
            start != holder->pid_start)
                (void) iovirt_memlock_restore(holder->pid, &orig);
        if (*recorded && (r < 0 || !*raised)) {
                /* nothing to put back: no record of it */
                (void) iovirt_memlock_record_remove(dir, holder->pid);
                *recorded = false;
        }
        if (r < 0) {
                char limit[IOVIRT_SIZE_MAX];
                return iovirt_set_reason(reason, r, "Could not raise RLIMIT_MEMLOCK of process %d to %s: %s; nothing "
                                         "was changed", (int) holder->pid, iovirt_size_format(holder->memlock, limit),
                                         r == -ESRCH ? "it has exited"
                                         : r == -EPERM ? "not permitted (raising a hard limit needs CAP_SYS_RESOURCE, "
                                                         "which iovirtd's unit gives it; is it running without?)"
                                                       : strerror(-r));
        }
        if (*raised)
                iovirt_fault_point("memlock.raised");
        if (!holder->memlock_saved) {
                holder->memlock_saved = true;
                holder->memlock_soft = rlim_to_u64(orig.rlim_cur);
                holder->memlock_hard = rlim_to_u64(orig.rlim_max);
        }
        *before = orig;
        return 0;
}

void policy_undo_raise(int pidfd, const IovirtHolder *holder, const struct rlimit *before, const char *dir,
                       bool recorded) {
        /* only while it is that process: a pidfd that says it is still there */
        int r = iovirt_pidfd_alive(pidfd);
        if (r >= 0)
                r = iovirt_memlock_restore(holder->pid, before);
        if (r < 0 && r != -ESRCH)
                log_warning_errno(r, "Could not put RLIMIT_MEMLOCK of process %d back after the failed assignment: %m",
                                  (int) holder->pid);
        iovirt_fault_point("memlock.undone");
        /* what this raise recorded goes with it (when it is back, or its process gone); an earlier
         * group's record stays for that group's release */
        if (recorded && (r >= 0 || r == -ESRCH))
                (void) iovirt_memlock_record_remove(dir, holder->pid);
}

/* Drops pid's memlock record when it is that process's (start) */
static void memlock_record_drop(const char *dir, pid_t pid, uint64_t start) {
        _cleanup_(iovirt_memlock_record_clear) IovirtMemlockRecord rec = {};
        int r = iovirt_memlock_record_load(dir, pid, &rec);
        if (r >= 0 && rec.pid_start != start)
                return;
        if (r >= 0 || r == -EBADMSG)
                r = iovirt_memlock_record_remove(dir, pid);
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Could not remove %s/memlock-%d.json: %m; the next start looks at process %d "
                                  "again", dir, (int) pid, (int) pid);
}

void policy_restore_memlock(const char *consumer, const IovirtHolder *holder, const char *dir) {
        if (!holder->known || holder->pid <= 0)
                return;
        uint32_t uid;
        uint64_t start;
        /* only the very process that was raised: a PID of another is left alone */
        int r = iovirt_process_identity(holder->pid, &uid, &start);
        if (r < 0 && r != -ENOENT && r != -ESRCH) {
                /* not known to be gone: the record stays, and the next start looks again */
                log_warning_errno(r, "Could not tell whether process %d (%s) still runs: %m; its RLIMIT_MEMLOCK is "
                                  "put back at the next start", (int) holder->pid, consumer);
                return;
        }
        _cleanup_(iovirt_memlock_record_clear) IovirtMemlockRecord rec = {};
        bool saved = holder->memlock_saved;
        struct rlimit orig = { u64_to_rlim(holder->memlock_soft), u64_to_rlim(holder->memlock_hard) };
        if (!saved && iovirt_memlock_record_load(dir, holder->pid, &rec) >= 0 && rec.pid_start == holder->pid_start) {
                saved = true;           /* the group kept none: what the process's record says */
                orig = (struct rlimit) { u64_to_rlim(rec.soft), u64_to_rlim(rec.hard) };
        }
        if (r >= 0 && start == holder->pid_start && saved) {
                r = iovirt_memlock_restore(holder->pid, &orig);
                if (r < 0) {
                        /* the record stays: the next start tries again */
                        log_warning_errno(r, "Could not put RLIMIT_MEMLOCK of process %d (%s) back: %m",
                                          (int) holder->pid, consumer);
                        return;
                }
                log_info("RLIMIT_MEMLOCK of process %d (%s) is back to what it was", (int) holder->pid, consumer);
                iovirt_fault_point("memlock.restored");
        }
        memlock_record_drop(dir, holder->pid, holder->pid_start);
}

/* Whether a group may still be held by rec's process: a group whose holder
 * is unknown (its record was rebuilt from the host) may be, so it counts
 * for every process, and no limit is lowered under a running guest */
static bool pid_holds_group(Manager *m, const IovirtMemlockRecord *rec) {
        for (size_t i = 0; i < m->state->n_records; i++) {
                const IovirtHolder *h = &m->state->records[i]->holder;
                if (!h->known || (h->pid == rec->pid && h->pid_start == rec->pid_start))
                        return true;
        }
        return false;
}

/* One process's memlock record at start-up */
static int restore_memlock_one(Manager *m, pid_t pid, const char *boot_id) {
        _cleanup_(iovirt_memlock_record_clear) IovirtMemlockRecord rec = {};
        _cleanup_free_ char *problem = NULL;
        uint32_t uid;
        uint64_t start;
        int r = iovirt_memlock_record_load(m->state_dir, pid, &rec);
        if (r == -ENOMEM)
                return r;
        if (r == -EBADMSG) {
                r = iovirt_memlock_record_set_aside(m->state_dir, pid, "not a memlock record", &problem);
                if (r >= 0)
                        log_full_errno(LOG_CRIT, 0, NULL, "%s; RLIMIT_MEMLOCK of process %d is left as it is",
                                       problem, (int) pid);
                return r;
        }
        if (r < 0) {
                log_warning_errno(r, "Cannot read %s/memlock-%d.json: %m; RLIMIT_MEMLOCK of process %d is left as it "
                                  "is", m->state_dir, (int) pid, (int) pid);
                return 0;
        }
        if (!streq_ptr(rec.boot_id, boot_id)) {
                /* (pid, start time) name no process of this boot: the one raised is gone with it */
                log_info("Process %d (%s), whose RLIMIT_MEMLOCK iovirtd raised, was of an earlier boot", (int) pid,
                         rec.consumer);
                (void) iovirt_memlock_record_remove(m->state_dir, pid);
                return 0;
        }
        if (pid_holds_group(m, &rec))
                return 0;             /* its release puts it back */
        r = iovirt_process_identity(pid, &uid, &start);
        if (r == -ENOENT || r == -ESRCH || (r >= 0 && start != rec.pid_start)) {
                log_info("Process %d (%s) has exited since iovirtd raised its RLIMIT_MEMLOCK: nothing to put back",
                         (int) pid, rec.consumer);
                memlock_record_drop(m->state_dir, pid, rec.pid_start);
                return 0;
        }
        if (r >= 0) {
                struct rlimit orig = { u64_to_rlim(rec.soft), u64_to_rlim(rec.hard) };
                r = iovirt_memlock_restore(pid, &orig);
        }
        if (r < 0) {
                log_error_errno(r, "Could not put RLIMIT_MEMLOCK of process %d (%s) back after an assign or release "
                                "cut short: %m; the next start tries again", (int) pid, rec.consumer);
                return 0;
        }
        log_warning("RLIMIT_MEMLOCK of process %d (%s) is back to what it was: an assign or release of its group "
                    "was cut short", (int) pid, rec.consumer);
        memlock_record_drop(m->state_dir, pid, rec.pid_start);
        return 0;
}

int manager_restore_memlock(Manager *m) {
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0;
        int r = iovirt_memlock_record_pids(m->state_dir, &pids, &n);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_warning_errno(r, "Cannot list the memlock records in %s: %m", m->state_dir);
                return 0;
        }
        if (n == 0)
                return 0;
        _cleanup_free_ char *boot_id = NULL;
        r = iovirt_boot_id(&boot_id);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                /* which boot a record is of cannot be told: none is acted on */
                log_warning_errno(r, "Cannot read the kernel's boot id: %m; the RLIMIT_MEMLOCK records in %s are left "
                                  "as they are", m->state_dir);
                return 0;
        }
        for (size_t i = 0; i < n; i++) {
                r = restore_memlock_one(m, pids[i], boot_id);
                if (r == -ENOMEM)
                        return r;
        }
        return 0;
}

/* ---- watching pid: consumers ---- */

struct Watch {
        Manager *manager;
        char *consumer;
        int pidfd;
        sd_event_source *source;
        bool exited;
        int *tried;                  /* the groups whose release was started since the exit (or the last reload) */
        size_t n_tried;
        Watch *next;
};

static Watch *watch_free(Watch *w) {
        if (!w)
                return NULL;
        sd_event_source_disable_unref(w->source);
        free(w->tried);
        if (w->pidfd >= 0)
                close(w->pidfd);
        free(w->consumer);
        free(w);
        return NULL;
}

static Watch *watch_find(Manager *m, const char *consumer) {
        for (Watch *w = m->watches; w; w = w->next)
                if (streq_ptr(w->consumer, consumer))
                        return w;
        return NULL;
}

/* Whether an exited consumer's groups are released: the policy at the
 * time of the exit (or of the reload that turns it on) decides; with no
 * policy read, the default */
static bool release_on_exit(Manager *m) {
        return !m->policy || m->policy->watch_process_exit;
}

static bool watch_tried(const Watch *w, int group) {
        for (size_t i = 0; i < w->n_tried; i++)
                if (w->tried[i] == group)
                        return true;
        return false;
}

static int watch_note_tried(Watch *w, const int *groups, size_t n) {
        int *t = realloc(w->tried, (w->n_tried + n) * sizeof(int));
        if (!t)
                return log_error_errno(-ENOMEM, "Cannot release the groups of %s: %m", w->consumer);
        memcpy(t + w->n_tried, groups, n * sizeof(int));
        w->tried = t;
        w->n_tried += n;
        return 0;
}

void manager_reap_consumers(Manager *m, bool retry) {
        for (Watch **p = &m->watches; *p;) {
                Watch *w = *p;
                if (retry) {
                        w->tried = mfree(w->tried);
                        w->n_tried = 0;
                }
                if (!w->exited && manager_consumer_holds(m, w->consumer)) {
                        p = &w->next;
                        continue;
                }
                if (w->exited && manager_consumer_holds(m, w->consumer) && !release_on_exit(m)) {
                        /* kept, for a reload that turns WatchProcessExit= on */
                        p = &w->next;
                        continue;
                }
                if (w->exited && manager_consumer_holds(m, w->consumer)) {
                        _cleanup_free_ int *groups = calloc(m->state->n_records, sizeof(int));
                        size_t n = 0;
                        for (size_t i = 0; groups && i < m->state->n_records; i++) {
                                const IovirtRecord *rec = m->state->records[i];
                                if (!streq_ptr(rec->consumer, w->consumer))
                                        continue;
                                /* one in a job: reaped again after it */
                                if (!job_group_locked(m, rec->group) && rec->phase == IOVIRT_PHASE_ASSIGNED &&
                                    !watch_tried(w, rec->group))
                                        groups[n++] = rec->group;
                        }
                        if (!groups)
                                log_error_errno(-ENOMEM, "Cannot release the groups of %s: %m", w->consumer);
                        else if (n > 0 && !m->stopping && watch_note_tried(w, groups, n) >= 0) {
                                /* once per exit (and per reload): a release that fails for
                                 * want of a state directory would fail again at once */
                                log_info("%s has exited: releasing its %zu group%s", w->consumer, n, n == 1 ? "" : "s");
                                int r = manager_release_groups(m, groups, n);
                                if (r < 0)
                                        log_error_errno(r, "Could not release the groups of %s: %m", w->consumer);
                        }
                        /* kept while it holds anything: a release that failed is retried on reload */
                        p = &w->next;
                        continue;
                }
                *p = w->next;
                watch_free(w);
        }
}

static int on_consumer_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Watch *w = userdata;
        w->exited = true;
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        log_debug("Process of %s has exited", w->consumer);
        manager_reap_consumers(w->manager, false);
        return 0;
}

/* pidfd < 0: the process is gone already */
static int watch_add(Manager *m, const char *consumer, int pidfd) {
        if (watch_find(m, consumer)) {
                if (pidfd >= 0)
                        close(pidfd);
                return 0;
        }
        Watch *w = calloc(1, sizeof(Watch));
        if (!w) {
                if (pidfd >= 0)
                        close(pidfd);
                return -ENOMEM;
        }
        *w = (Watch) { .manager = m, .pidfd = pidfd, .exited = pidfd < 0 };
        int r = (w->consumer = strdup(consumer)) ? 0 : -ENOMEM;
        if (r >= 0 && pidfd >= 0)
                r = sd_event_add_io(m->event, &w->source, pidfd, EPOLLIN, on_consumer_exit, w);
        if (r < 0) {
                watch_free(w);
                return r;
        }
        w->next = m->watches;
        m->watches = w;
        return 0;
}

int manager_watch_consumer(Manager *m, const char *consumer, int pidfd) {
        return watch_add(m, consumer, pidfd);
}

int manager_restore_watches(Manager *m) {
        for (size_t i = 0; i < m->state->n_records; i++) {
                const IovirtRecord *rec = m->state->records[i];
                const IovirtHolder *h = &rec->holder;
                if (!h->known || h->pid <= 0 || watch_find(m, rec->consumer))
                        continue;
                uint32_t uid;
                uint64_t start = 0;
                int fd = iovirt_pidfd_open(h->pid), r;
                r = fd < 0 ? fd : iovirt_process_identity(h->pid, &uid, &start);
                /* Gone: no such process, or its PID is another process's now.
                 * Anything else (no fds, a filter) says nothing: kept, not released. */
                bool gone = r == -ESRCH || r == -ENOENT || (r >= 0 && start != h->pid_start);
                if (r < 0 && !gone) {
                        log_warning_errno(r, "Cannot tell whether process %d of %s still runs; its groups stay "
                                          "assigned and its exit is not watched: %m", (int) h->pid, rec->consumer);
                        if (fd >= 0)
                                close(fd);
                        continue;
                }
                if (gone && fd >= 0) {
                        close(fd);
                        fd = -EBADF;
                }
                if (fd < 0 && release_on_exit(m))
                        log_info("%s (process %d) exited while iovirtd was not running", rec->consumer, (int) h->pid);
                /* gone: a watch that has seen the exit already */
                r = watch_add(m, rec->consumer, fd);
                if (r < 0)
                        return r;
        }
        manager_reap_consumers(m, false);
        return 0;
}

void manager_watches_free(Manager *m) {
        while (m->watches) {
                Watch *w = m->watches;
                m->watches = w->next;
                watch_free(w);
        }
}

/* ---- the bus ---- */

int method_describe_policy(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(iovirt_policy_freep) IovirtPolicy *defaults = m->policy ? NULL : iovirt_policy_new();
        const IovirtPolicy *p = m->policy ? m->policy : defaults;
        if (!p)
                return -ENOMEM;
        _cleanup_(json_object_putp) json_object *o = iovirt_policy_to_json(p);
        if (!o)
                return -ENOMEM;
        /* none loaded: what refuses every assignment, and what the defaults would be */
        json_object_object_add(o, "loaded", json_object_new_boolean(m->policy != NULL));
        /* against the host as it is now: a selector may match once a VF is made */
        char **unmatched = NULL;
        int r = m->host ? iovirt_policy_unmatched(p, m->host, &unmatched) : 0;
        if (r < 0)
                return r;
        json_object *u = json_object_new_array();
        for (char **s = unmatched; s && *s; s++)
                json_object_array_add(u, json_object_new_string(*s));
        strv_free(unmatched);
        json_object_object_add(o, "unmatched", u);
        json_object_object_add(o, "error", m->policy_error ? json_object_new_string(m->policy_error) : NULL);
        return manager_reply_json(msg, o);
}

/* One consumer's line of DescribeStatus; NULL when memory ran out */
static json_object *consumer_status(Manager *m, const char *consumer, const IovirtPinnedTally *t, uint64_t budget) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *groups = json_object_new_array();
        const IovirtHolder *h = t->my_holder;
        uint64_t limit = 0;
        if (!o || !groups || json_object_object_add(o, "groups", groups) < 0) {
                json_object_put(groups);
                return NULL;
        }
        for (size_t i = 0; i < m->state->n_records; i++) {
                const IovirtRecord *rec = m->state->records[i];
                if (!streq_ptr(rec->consumer, consumer))
                        continue;
                json_object_array_add(groups, json_object_new_int(rec->group));
                if (rec->holder.memlock > limit)
                        limit = rec->holder.memlock;
        }
        json_object_object_add(o, "consumer", json_object_new_string(consumer));
        json_object_object_add(o, "functions", json_object_new_int((int) t->my_functions));
        json_object_object_add(o, "uid", h ? json_object_new_int64(h->uid) : NULL);
        json_object_object_add(o, "pid", h && h->pid > 0 ? json_object_new_int(h->pid) : NULL);
        json_object_object_add(o, "memory", t->my_memory ? json_object_new_uint64(t->my_memory) : NULL);
        json_object_object_add(o, "viommu", json_object_new_boolean(t->my_viommu));
        json_object_object_add(o, "memlock", limit ? json_object_new_uint64(limit) : NULL);
        json_object_object_add(o, "pinned", json_object_new_uint64(t->mine));
        json_object_object_add(o, "budget_share",
                               budget ? json_object_new_double((double) t->mine / (double) budget) : NULL);
        return TAKE_PTR(o);
}

int method_describe_status(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *budget = json_object_new_object(),
                                                *consumers = json_object_new_array();
        uint64_t memtotal = 0, reserve = 0, total = 0, pinned = 0;
        int unreadable = iovirt_meminfo_total(&memtotal);
        if (!o || !budget || !consumers || unreadable == -ENOMEM)
                return -ENOMEM;
        if (unreadable >= 0 && m->policy) {
                reserve = iovirt_policy_reserve_bytes(m->policy, memtotal);
                total = iovirt_memlock_budget(memtotal, reserve);
        }
        for (size_t i = 0; i < m->state->n_records; i++) {
                const char *c = m->state->records[i]->consumer;
                bool first = true;
                for (size_t k = 0; first && k < i; k++)
                        first = !streq_ptr(m->state->records[k]->consumer, c);
                if (!first || !c[0])
                        continue;
                IovirtPinnedTally t;
                int r = iovirt_pinned_tally(m->state, c, &t);
                if (r < 0)
                        return sd_bus_error_set_errnof(error, r, "Could not count what %s pins: %m", c);
                json_object *co = consumer_status(m, c, &t, total);
                if (!co || json_object_array_add(consumers, co) < 0) {
                        json_object_put(co);
                        return -ENOMEM;
                }
                pinned = pinned + t.mine < pinned ? UINT64_MAX : pinned + t.mine;
        }
        json_object_object_add(budget, "memtotal", memtotal ? json_object_new_uint64(memtotal) : NULL);
        json_object_object_add(budget, "reserve", memtotal && m->policy ? json_object_new_uint64(reserve) : NULL);
        json_object_object_add(budget, "budget", total ? json_object_new_uint64(total) : NULL);
        json_object_object_add(budget, "pinned", json_object_new_uint64(pinned));
        json_object_object_add(budget, "error", unreadable < 0 ? json_object_new_string(strerror(-unreadable)) : NULL);
        json_object_object_add(o, "budget", TAKE_PTR(budget));
        json_object_object_add(o, "consumers", TAKE_PTR(consumers));
        json_object_object_add(o, "policy_loaded", json_object_new_boolean(m->policy != NULL));
        return manager_reply_json(msg, o);
}
