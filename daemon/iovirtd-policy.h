/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "iovirt-numa.h"
#include "iovirt-policy-check.h"
#include "iovirtd-manager.h"

/* The policy in the daemon: the files loaded at start and on Reload (the
 * last good one kept), the facts a plan's policy checks need gathered from
 * the host and the consumer's process, the consumers' processes watched
 * through their pidfds, and their RLIMIT_MEMLOCK raised and put back. */

typedef struct Watch Watch;

/* What a request asks of the policy, as the bus call gave it */
typedef struct PolicyAsk {
        uint64_t memory;                 /* 0: not given */
        bool viommu;
        uint64_t hard_limit;
        unsigned pending_functions;      /* of the same request, planned before (a domain's other groups) */
        int numa_policy;                 /* -1: not given */
        int numa_node;                   /* -1: not given */
        const char *cpus;                /* NULL: not given */
        const char *nodes;               /* NUMA nodes, as a domain's <numatune> names them; NULL: not given */
        const char *placement_from;      /* what says so, for messages ("its <vcpu cpuset>"); NULL: the option */
        const char *user;                /* user=: /dev/vfio/N's owner; NULL: a pid: consumer's user */
        uint32_t caller_uid;
} PolicyAsk;

/* The gathered facts, owning what IovirtPolicyRequest points to */
typedef struct PolicyFacts {
        IovirtPolicyRequest req;
        int pidfd;                       /* a pid: consumer's, -EBADF otherwise */
        uint64_t pid_start;
        IovirtNumaFacts *numa;
        IovirtBitmap placement;
        char *placement_from;
        char *caller_name;
        uint32_t *gids;
        char **group_names;
        char *cgroup_path, *cgroup_reason;
} PolicyFacts;

void policy_facts_clear(PolicyFacts *f);

/* pid:PID as a consumer: 1 with the PID in *ret, 0 (and *ret 0) for any
 * other name, -EINVAL for a pid: that names no PID in its one spelling */
int consumer_pid(const char *consumer, pid_t *ret);

/* Whom /dev/vfio/N goes to: the user asked for (user=), else a pid:
 * consumer's user; 0 (root keeps it) otherwise.  A non-root caller may
 * name only itself: -EPERM, and -ESRCH for a user that does not exist,
 * each with a sentence in *reason. */
int policy_node_owner(const PolicyFacts *f, const PolicyAsk *ask, uint32_t *ret, char **reason);

/* Reads what the policy checks of an assignment to consumer need */
int policy_gather(Manager *m, const char *consumer, const PolicyAsk *ask, PolicyFacts *ret);

/* At start: a broken policy refuses every assignment until a reload reads a good one */
int manager_load_policy(Manager *m);
/* On Reload: -EINVAL with "file:line: message" in *error, the last good policy kept */
int manager_reload_policy(Manager *m, char **error);

/* What the consumer needs of RLIMIT_MEMLOCK once it holds the plan too,
 * and its holder record (uid, pid, memory, the limit from before) */
int policy_holder(Manager *m, const PolicyFacts *f, const IovirtPlan *plan, IovirtHolder *ret);

/* On the job's thread: raises the pid consumer's limit to holder->memlock
 * (saving the limit before in holder, unless saved already); *before is
 * what this raise changed, *raised whether it did: to put back with
 * policy_undo_raise() should the assignment fail.  Before the first raise
 * of a process, its limit from before goes to dir (memlock-PID.json):
 * *recorded when this call wrote it, for policy_undo_raise() to drop. */
int policy_raise_memlock(int pidfd, IovirtHolder *holder, const char *consumer, const char *dir,
                         struct rlimit *before, bool *raised, bool *recorded, char **reason);
void policy_undo_raise(int pidfd, const IovirtHolder *holder, const struct rlimit *before, const char *dir,
                       bool recorded);
/* After the release of the consumer's last group: the limit from before
 * its first, then its memlock record in dir dropped */
void policy_restore_memlock(const char *consumer, const IovirtHolder *holder, const char *dir);
/* At start, once the group records are reconciled: a process whose
 * memlock record is left with no group of its own had its assign or its
 * release cut short: its limit from before goes back, the record goes.
 * Negative only when memory ran out. */
int manager_restore_memlock(Manager *m);

/* Watches a pid: consumer's process (taking pidfd), once: its exit releases its groups */
int manager_watch_consumer(Manager *m, const char *consumer, int pidfd);
/* At start: the recorded pid: consumers watched again, or released when gone */
int manager_restore_watches(Manager *m);
/* After a job: the groups of exited consumers that are free now are
 * released, once; retry (a reload) tries those that failed again */
void manager_reap_consumers(Manager *m, bool retry);
void manager_watches_free(Manager *m);

int method_describe_policy(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_describe_status(sd_bus_message *msg, void *userdata, sd_bus_error *error);
