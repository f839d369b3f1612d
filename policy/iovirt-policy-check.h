/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "iovirt-numa.h"
#include "iovirt-plan.h"
#include "iovirt-policy.h"
#include "iovirt-state.h"

/* The policy judged: the plan checks policy/ contributes to src/'s plan
 * (iovirt_plan_assign's extra rules), one small function per rule, each
 * with its reason and a sentence.  Gather, then judge: the caller (the
 * daemon) reads the facts into an IovirtPolicyRequest (who asks, the
 * consumer's process, its placement and cgroup, NUMA nodes, MemTotal);
 * the rules are functions of that and of the plan's context.
 *
 * The checks, in order:
 *   "policy"         the policy files could be read (else every assignment is refused)
 *   "pool"           when pools are defined, the device is in one that admits consumer and caller
 *   "owner"          a pid: consumer exists, and is the caller's own process (root may name any)
 *   "numa"           the NUMA policy, on hosts with more than one node
 *   "memlock"        the RLIMIT_MEMLOCK the consumer gets, and the host-wide pinned budget
 *   "memory-cgroup"  the consumer's memory cgroup can hold what it will pin */

typedef struct IovirtPolicyRequest {
        const IovirtPolicy *policy;      /* NULL: the files could not be read */
        const char *policy_error;        /* then why ("file:line: message") */

        /* who asks */
        uint32_t caller_uid;
        const char *caller_name;         /* user name; NULL: none */
        const uint32_t *caller_gids;     /* primary and supplementary */
        const char *const *caller_group_names;   /* the same, by name (NULL entries: none) */
        size_t n_caller_gids;

        /* a pid: consumer's process */
        pid_t pid;                       /* 0: the consumer is a name */
        int process_error;               /* < 0: it could not be pinned or read (-ESRCH: no such process) */
        uint32_t process_uid;
        uint64_t process_start;          /* its start time: records of another are an earlier process's */

        /* the request */
        uint64_t memory;                 /* guest memory; 0: not given */
        bool viommu;
        uint64_t hard_limit;             /* 0: none */
        unsigned pending_functions;      /* VFIO functions of the same request planned before this group
                                          * (a domain's hostdevs): counted as held */
        int numa_policy;                 /* IovirtNumaPolicy asked, -1: none */
        const IovirtBitmap *placement;   /* the consumer's NUMA nodes; NULL or empty: unknown */
        const char *placement_from;      /* "--numa-node 0", "--cpus 2-3", "its Cpus_allowed_list" */

        /* the host */
        const IovirtNumaFacts *numa;     /* NULL: unreadable (numa_error) */
        int numa_error;
        uint64_t memtotal;               /* 0: unreadable (memtotal_error) */
        int memtotal_error;

        /* the consumer's memory cgroup (pid: consumers) */
        uint64_t cgroup_max;             /* UINT64_MAX: no limit */
        const char *cgroup_path;
        int cgroup_error;                /* -EOPNOTSUPP: cgroup v1; other < 0: unreadable */
        const char *cgroup_reason;
} IovirtPolicyRequest;

/* What iovirt has let consumers pin, from the recorded holders: guest
 * memory x factor per consumer (libvirt's rule without the slack). */
typedef struct IovirtPinnedTally {
        uint64_t others;                 /* every other consumer's */
        uint64_t mine;                   /* this consumer's now */
        unsigned my_functions;           /* VFIO functions it holds now */
        uint64_t my_memory;              /* guest memory its records name; 0: none */
        bool my_viommu;
        const IovirtHolder *my_holder;   /* one of its records' holder, one with the limit from before
                                          * (memlock_saved) when there is one; NULL: none */
} IovirtPinnedTally;

/* -EOVERFLOW when a sum does not fit */
int iovirt_pinned_tally(const IovirtState *s, const char *consumer, IovirtPinnedTally *ret);

/* What the consumer needs once it holds the plan's group too: its guest
 * memory (the request's, what it was assigned with, or the pool's Memory=), the limit to set
 * (0: none: no memory known) and what it pins in all. */
typedef struct IovirtMemlockNeed {
        uint64_t memory;
        bool viommu;
        unsigned functions;
        uint64_t limit;
        uint64_t pinned;
        const char *limit_from;          /* "libvirt's rule", "--hard-limit", "pool 'x' MemlockHardLimit=" */
} IovirtMemlockNeed;

/* The pool of the plan's group: the first pool holding every endpoint of
 * it; NULL when none does (or no pool is defined). */
const IovirtPolicyPool *iovirt_policy_pool_of(const IovirtPolicy *p, const IovirtHost *h, const IovirtGroupVerdict *gv);
/* Whether pool's selectors match device d */
bool iovirt_policy_pool_matches(const IovirtPolicyPool *pool, const IovirtHost *h, size_t d);

/* A warning for each selector that matches no device of h (a typo, or a
 * device not there yet): "file:line: pool 'nics': '8086:154d' matches no
 * device on this host".  Returns how many, -ENOMEM. */
int iovirt_policy_unmatched(const IovirtPolicy *p, const IovirtHost *h, char ***ret);

int iovirt_memlock_need(const IovirtPolicyRequest *req, const IovirtPolicyPool *pool, const IovirtPinnedTally *tally,
                        unsigned new_functions, IovirtMemlockNeed *ret);

/* The NUMA policy that applies, and whether it was asked for */
IovirtNumaPolicy iovirt_policy_numa_for(const IovirtPolicyRequest *req, const IovirtPolicyPool *pool);

#define IOVIRT_POLICY_N_RULES 6
/* The rules, for iovirt_plan_assign(); req must outlive the plans made with them */
size_t iovirt_policy_rules(const IovirtPolicyRequest *req, IovirtPlanRule rules[static IOVIRT_POLICY_N_RULES]);
