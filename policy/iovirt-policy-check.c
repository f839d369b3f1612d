/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "iovirt-memlock.h"
#include "iovirt-policy-check.h"
#include "iovirt-sriov.h"

/* ---- pools ---- */

static bool selector_matches(const IovirtPoolSelector *s, const IovirtHost *h, size_t i) {
        const IovirtDevice *d = &h->devices[i];
        switch (s->type) {
        case IOVIRT_POOL_SELECTOR_ID:
                return d->ids_known && d->vendor == s->vendor && (s->any_device || d->device == s->device);
        case IOVIRT_POOL_SELECTOR_CLASS:
                return d->ids_known && (d->class_code & s->class_mask) == s->class_value;
        case IOVIRT_POOL_SELECTOR_ADDRESS:
                return fnmatch(s->pattern, d->name, 0) == 0;
        case IOVIRT_POOL_SELECTOR_DRIVER:
                return streq_ptr(d->driver, s->pattern);
        case IOVIRT_POOL_SELECTOR_PF_RANGE: {
                size_t pf;
                if (!iovirt_device_is_vf(d) || iovirt_pf_lookup(h, s->pattern, &pf, NULL) < 0 || pf != d->physfn)
                        return false;
                int index = iovirt_vf_index(h, i);
                return index >= 0 && (unsigned) index >= s->vf_first && (unsigned) index <= s->vf_last;
        }
        default:
                return false;
        }
}

bool iovirt_policy_pool_matches(const IovirtPolicyPool *pool, const IovirtHost *h, size_t d) {
        for (size_t i = 0; i < pool->n_selectors; i++)
                if (selector_matches(&pool->selectors[i], h, d))
                        return true;
        return false;
}

int iovirt_policy_unmatched(const IovirtPolicy *p, const IovirtHost *h, char ***ret) {
        char **v = NULL;
        size_t n = 0;
        for (size_t k = 0; k < p->n_pools; k++) {
                const IovirtPolicyPool *pool = &p->pools[k];
                for (size_t i = 0; i < pool->n_selectors; i++) {
                        bool any = false;
                        for (size_t d = 0; !any && d < h->n_devices; d++)
                                any = selector_matches(&pool->selectors[i], h, d);
                        if (any)
                                continue;
                        char **grown = realloc(v, (n + 2) * sizeof(char *));
                        if (!grown || asprintf(&grown[n], "%s:%u: pool '%s': '%s' matches no device on this host",
                                               pool->devices_origin.file, pool->devices_origin.line, pool->name,
                                               pool->selectors[i].text) < 0) {
                                v = grown ? grown : v;
                                for (size_t x = 0; x < n; x++)
                                        free(v[x]);
                                free(v);
                                return -ENOMEM;
                        }
                        v = grown;
                        v[++n] = NULL;
                }
        }
        *ret = v;
        return (int) n;
}

const IovirtPolicyPool *iovirt_policy_pool_of(const IovirtPolicy *p, const IovirtHost *h, const IovirtGroupVerdict *gv) {
        for (size_t k = 0; p && gv->n_endpoints && k < p->n_pools; k++) {
                bool all = true;
                for (size_t i = 0; all && i < gv->n_endpoints; i++)
                        all = iovirt_policy_pool_matches(&p->pools[k], h, gv->endpoints[i]);
                if (all)
                        return &p->pools[k];
        }
        return NULL;
}

static bool consumer_admitted(const IovirtPolicyPool *pool, const char *consumer) {
        if (pool->n_consumers == 0)
                return true;
        for (size_t i = 0; i < pool->n_consumers; i++)
                if (fnmatch(pool->consumers[i], consumer, 0) == 0)
                        return true;
        return false;
}

static bool id_is(const IovirtPolicyId *id, uint32_t number, const char *name) {
        return id->name ? streq_ptr(id->name, name) : id->id == number;
}

/* Root always may (it can edit the policy anyway); with neither Users=
 * nor Groups= anyone polkit lets in may */
static bool caller_admitted(const IovirtPolicyPool *pool, const IovirtPolicyRequest *req) {
        if (req->caller_uid == 0 || (pool->n_users == 0 && pool->n_groups == 0))
                return true;
        for (size_t i = 0; i < pool->n_users; i++)
                if (id_is(&pool->users[i], req->caller_uid, req->caller_name))
                        return true;
        for (size_t i = 0; i < pool->n_groups; i++)
                for (size_t k = 0; k < req->n_caller_gids; k++)
                        if (id_is(&pool->groups[i], req->caller_gids[k],
                                  req->caller_group_names ? req->caller_group_names[k] : NULL))
                                return true;
        return false;
}

static const char *target_name(const IovirtPlanContext *ctx) {
        const IovirtPlanInput *in = ctx->in;
        if (in->device != IOVIRT_NONE)
                return in->host->devices[in->device].name;
        return ctx->verdict->n_endpoints ? in->host->devices[ctx->verdict->endpoints[0]].name : "the group";
}

static const IovirtPolicyPool *pool_of(const IovirtPlanContext *ctx, const IovirtPolicyRequest *req) {
        return iovirt_policy_pool_of(req->policy, ctx->in->host, ctx->verdict);
}

static int check_policy(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtPolicyRequest *req = userdata;
        if (req->policy)
                return 0;
        return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_POLICY_UNREADABLE, NULL,
                                "The policy could not be read (%s), so no device is assigned until it can; fix the "
                                "file and run 'iovirtctl reload'", strna(req->policy_error));
}

static int check_pool(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtPolicyRequest *req = userdata;
        const IovirtPolicy *p = req->policy;
        if (!p || p->n_pools == 0)
                return 0;
        const IovirtPolicyPool *pool = pool_of(ctx, req);
        const char *what = target_name(ctx), *consumer = ctx->in->consumer;
        if (!pool)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_NOT_IN_POOL, NULL,
                                        "%s is in no pool%s; pools are defined, so only their devices may be "
                                        "assigned ('iovirtctl policy' lists them)", what,
                                        ctx->verdict->n_endpoints > 1 ? " that holds its whole group" : "");
        if (!consumer_admitted(pool, consumer))
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_NOT_ADMITTED, NULL,
                                        "%s is in pool '%s', whose Consumers= (%s:%u) does not admit '%s'", what,
                                        pool->name, pool->consumers_origin.file, pool->consumers_origin.line,
                                        consumer);
        if (!caller_admitted(pool, req))
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_NOT_ADMITTED, NULL,
                                        "%s is in pool '%s', which uid %u (%s) may not take from: it is in neither "
                                        "its Users= nor its Groups=", what, pool->name, req->caller_uid,
                                        req->caller_name ? req->caller_name : "no user name");
        if (pool->isolation == IOVIRT_POLICY_ISOLATION_STRICT && ctx->verdict->isolation == IOVIRT_LEAKY &&
            (ctx->in->accept & IOVIRT_ACCEPT_LEAKY))
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_NOT_ADMITTED, NULL,
                                        "%s is in pool '%s', which takes isolated groups only (Isolation=strict): "
                                        "--accept-leaky is not honoured for it", what, pool->name);
        return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL,
                                "%s is in pool '%s' (%s:%u), which admits %s", what, pool->name, pool->origin.file,
                                pool->origin.line, consumer);
}

static int check_owner(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtPolicyRequest *req = userdata;
        if (req->pid <= 0)
                return 0;
        if (req->process_error == -ESRCH || req->process_error == -ENOENT)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_CONSUMER_GONE, NULL,
                                        "There is no process %d (consumer %s): it does not exist or has exited",
                                        (int) req->pid, ctx->in->consumer);
        if (req->process_error < 0)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_FACTS_UNREADABLE, NULL,
                                        "Process %d could not be pinned or read (%s), so its owner cannot be told",
                                        (int) req->pid, strerror(-req->process_error));
        /* records of an exited process under this name: a recycled PID must not inherit them */
        const IovirtState *s = ctx->in->state;
        for (size_t i = 0; i < s->n_records; i++) {
                const IovirtRecord *rec = s->records[i];
                if (streq_ptr(rec->consumer, ctx->in->consumer) && rec->holder.known &&
                    rec->holder.pid_start != req->process_start)
                        return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_CONSUMER_GONE, NULL,
                                                "%s holds group %d for an earlier process of PID %d, which has "
                                                "exited; release it first (iovirtctl release --consumer %s)",
                                                ctx->in->consumer, rec->group, (int) req->pid, ctx->in->consumer);
        }
        if (req->caller_uid != 0 && req->process_uid != req->caller_uid)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_NOT_OWNER, NULL,
                                        "Process %d belongs to uid %u; uid %u may name only its own processes as "
                                        "consumers", (int) req->pid, req->process_uid, req->caller_uid);
        return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL,
                                "%s is process %d of uid %u, pinned with a pidfd", ctx->in->consumer, (int) req->pid,
                                req->process_uid);
}

/* ---- NUMA ---- */

IovirtNumaPolicy iovirt_policy_numa_for(const IovirtPolicyRequest *req, const IovirtPolicyPool *pool) {
        const IovirtPolicy *p = req->policy;
        if (!p)
                return IOVIRT_NUMA_LEGACY;
        IovirtNumaPolicy configured = pool ? iovirt_policy_pool_numa_policy(p, pool, NULL) : p->numa_default_policy;
        bool choice = pool ? iovirt_policy_pool_allow_numa_choice(p, pool, NULL) : p->numa_allow_policy_choice;
        return req->numa_policy >= 0 && choice ? (IovirtNumaPolicy) req->numa_policy : configured;
}

static int check_numa(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtPolicyRequest *req = userdata;
        if (!req->policy)
                return 0;
        const IovirtPolicyPool *pool = pool_of(ctx, req);
        bool choice = pool ? iovirt_policy_pool_allow_numa_choice(req->policy, pool, NULL)
                           : req->policy->numa_allow_policy_choice;
        if (req->numa_policy >= 0 && !choice) {
                IovirtPolicyOrigin o;
                if (pool)
                        (void) iovirt_policy_pool_allow_numa_choice(req->policy, pool, &o);
                else
                        o = req->policy->numa_allow_policy_choice_origin;
                bool own = pool && iovirt_policy_origin_set(pool->allow_numa_policy_choice_origin);
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_INVALID, NULL,
                                        "%s%s%s does not let a request choose its NUMA policy (%s=no, %s:%u); drop "
                                        "--numa-policy", pool ? "Pool '" : "The policy", pool ? pool->name : "",
                                        pool ? "'" : "", own ? "AllowNumaPolicyChoice" : "[Numa] AllowPolicyChoice",
                                        strna(o.file), o.line);
        }
        IovirtNumaPolicy policy = iovirt_policy_numa_for(req, pool);
        if (policy == IOVIRT_NUMA_NONE)
                return 0;
        if (!req->numa)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_FACTS_UNREADABLE, NULL,
                                        "The host's NUMA nodes could not be read (%s), so NUMA policy '%s' cannot be "
                                        "judged", strerror(-req->numa_error), iovirt_numa_policy_to_string(policy));
        if (req->numa->n_nodes <= 1 || ctx->verdict->n_endpoints == 0)
                return 0;      /* nothing to choose between; or nothing to assign, as whole-group says */
        const IovirtDevice *d = &ctx->in->host->devices[ctx->in->device != IOVIRT_NONE ? ctx->in->device
                                                                                         : ctx->verdict->endpoints[0]];
        _cleanup_free_ char *consumer = NULL;
        if (req->placement_from && asprintf(&consumer, "%s (%s)", ctx->in->consumer, req->placement_from) < 0)
                return -ENOMEM;
        const IovirtNumaSubject subject = { .device = d->name, .consumer = consumer ? consumer : ctx->in->consumer,
                                            .pool = pool ? pool->name : NULL };
        IovirtNumaVerdict v = {};
        int r = iovirt_numa_judge(req->numa, policy, d->numa_node, req->placement, &subject, &v);
        if (r < 0)
                return r;
        IovirtPlanStatus status = !v.allowed                                  ? IOVIRT_PLAN_FAIL
                                  : v.reason == IOVIRT_NUMA_REASON_LOCAL ||
                                                    v.reason == IOVIRT_NUMA_REASON_SAME_SOCKET
                                          ? IOVIRT_PLAN_PASS
                                          : IOVIRT_PLAN_WARN;
        bool unknown = v.reason == IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN ||
                       v.reason == IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN ||
                       v.reason == IOVIRT_NUMA_REASON_DEVICE_NODE_UNKNOWN_ALLOWED ||
                       v.reason == IOVIRT_NUMA_REASON_CONSUMER_UNKNOWN_ALLOWED;
        r = iovirt_check_set(c, status,
                             status == IOVIRT_PLAN_PASS ? IOVIRT_REASON_NONE
                             : unknown                  ? IOVIRT_REASON_NUMA_UNKNOWN
                                                        : IOVIRT_REASON_NUMA_REMOTE,
                             !v.allowed && choice ? "--numa-policy preferred" : NULL, "%s", v.sentence);
        iovirt_numa_verdict_clear(&v);
        return r;
}

/* ---- pinned memory ---- */

int iovirt_pinned_tally(const IovirtState *s, const char *consumer, IovirtPinnedTally *ret) {
        IovirtPinnedTally t = {};
        for (size_t i = 0; i < s->n_records; i++) {
                const IovirtRecord *rec = s->records[i];
                bool first = true;
                /* each consumer once: at its first record */
                for (size_t k = 0; first && k < i; k++)
                        first = !streq_ptr(s->records[k]->consumer, rec->consumer);
                if (!first || !rec->consumer[0])
                        continue;
                unsigned functions = 0;
                uint64_t memory = 0, memlock = 0;
                bool viommu = false;
                const IovirtHolder *holder = NULL;
                for (size_t k = i; k < s->n_records; k++) {
                        const IovirtRecord *o = s->records[k];
                        if (!streq_ptr(o->consumer, rec->consumer))
                                continue;
                        functions += (unsigned) o->n_functions;
                        if (o->holder.known) {
                                /* the one that kept the limit from before, if any does */
                                if (!holder || (!holder->memlock_saved && o->holder.memlock_saved))
                                        holder = &o->holder;
                                if (o->holder.memory > memory)
                                        memory = o->holder.memory;
                                if (o->holder.memlock > memlock)
                                        memlock = o->holder.memlock;
                                viommu = viommu || o->holder.viommu;
                        }
                }
                uint64_t pinned;
                int r = iovirt_memlock_pinned(memory, functions, viommu, &pinned);
                if (r < 0)
                        return r;
                pinned = iovirt_memlock_counted(pinned, memlock);
                if (streq_ptr(rec->consumer, consumer)) {
                        t.mine = pinned;
                        t.my_functions = functions;
                        t.my_memory = memory;
                        t.my_viommu = viommu;
                        t.my_holder = holder;
                } else if (__builtin_add_overflow(t.others, pinned, &t.others))
                        return -EOVERFLOW;
        }
        *ret = t;
        return 0;
}

int iovirt_memlock_need(const IovirtPolicyRequest *req, const IovirtPolicyPool *pool, const IovirtPinnedTally *tally,
                        unsigned new_functions, IovirtMemlockNeed *ret) {
        IovirtMemlockNeed n = {
                /* what it was assigned with before a pool's default: the guest did not shrink */
                .memory = req->memory       ? req->memory
                          : tally->my_memory ? tally->my_memory
                          : pool             ? pool->guest_memory
                                             : 0,
                .viommu = req->viommu || tally->my_viommu,
                .functions = tally->my_functions + new_functions,
                .limit_from = "libvirt's rule",
        };
        uint64_t hard = req->hard_limit;
        if (hard)
                n.limit_from = "--hard-limit";
        else if (pool && pool->memlock_hard_limit) {
                hard = pool->memlock_hard_limit;
                n.limit_from = "the pool's MemlockHardLimit=";
        }
        if (n.memory == 0 && !hard) {
                *ret = n;
                return 0;
        }
        int r = iovirt_memlock_pinned(n.memory, n.functions, n.viommu, &n.pinned);
        if (r >= 0)
                r = iovirt_memlock_limit(n.memory, n.functions, n.viommu, hard, &n.limit);
        if (r < 0)
                return r;
        *ret = n;
        return 0;
}

/* The functions the plan adds to what the consumer holds: none when it
 * holds the group already */
static unsigned new_functions(const IovirtPlanContext *ctx, const IovirtPolicyRequest *req) {
        if (ctx->record && streq_ptr(ctx->record->consumer, ctx->in->consumer))
                return req->pending_functions;
        return (unsigned) ctx->verdict->n_endpoints + req->pending_functions;
}

static int check_memlock(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtPolicyRequest *req = userdata;
        const IovirtPolicyPool *pool = pool_of(ctx, req);
        const char *consumer = ctx->in->consumer;
        IovirtPinnedTally tally;
        IovirtMemlockNeed need;
        char a[IOVIRT_SIZE_MAX], b[IOVIRT_SIZE_MAX];
        int r;

        if (!req->policy)
                return 0;
        r = iovirt_pinned_tally(ctx->in->state, consumer, &tally);
        if (r >= 0)
                r = iovirt_memlock_need(req, pool, &tally, new_functions(ctx, req), &need);
        if (r == -EOVERFLOW)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_INVALID, NULL,
                                        "The pinned memory of %s does not fit in 64 bits: check --memory", consumer);
        if (r < 0)
                return r;
        if (req->memory && tally.my_memory && req->memory != tally.my_memory)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_INVALID, NULL,
                                        "%s holds devices with a guest memory of %s; a request for it must name the "
                                        "same (or none), not %s", consumer, iovirt_size_format(tally.my_memory, a),
                                        iovirt_size_format(req->memory, b));
        if (need.memory == 0 && need.limit == 0) {
                if (req->pid <= 0)
                        return 0;     /* a name: nothing to raise, nothing known to count */
                return iovirt_check_set(c, IOVIRT_PLAN_WARN, IOVIRT_REASON_NONE, "--memory SIZE",
                                        "The guest memory of %s is not known (no --memory, no pool Memory=): its "
                                        "RLIMIT_MEMLOCK stays as it is and nothing is counted against the pinned "
                                        "budget", consumer);
        }
        if (req->memtotal == 0)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_FACTS_UNREADABLE, NULL,
                                        "MemTotal could not be read (%s), so the pinned budget cannot be checked",
                                        strerror(-req->memtotal_error));
        uint64_t reserve = iovirt_policy_reserve_bytes(req->policy, req->memtotal);
        _cleanup_free_ char *why = NULL;
        /* what a process may pin is its limit (less the slack), whatever
         * memory it says: a hard limit counts as much; what the consumer
         * holds is counted already, the change is what is asked */
        uint64_t counted = iovirt_memlock_counted(need.pinned, req->pid > 0 ? need.limit : 0);
        uint64_t asked = counted > tally.mine ? counted - tally.mine : 0;
        uint64_t already;
        if (__builtin_add_overflow(tally.others, tally.mine, &already))
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_INVALID, NULL,
                                        "What the consumers pin already does not fit in 64 bits: a state record "
                                        "names an impossible guest memory ('iovirtctl status' shows them)");
        r = iovirt_memlock_budget_check(req->memtotal, reserve, already, asked, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_OVER_BUDGET, NULL,
                                        "Pinning the guest memory of %s would break the host's pinned budget: %s; "
                                        "release devices of other consumers ('iovirtctl status' shows what each "
                                        "pins), or lower [Memory] Reserve=", consumer, strna(why));
        if (req->pid <= 0)
                return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL,
                                        "%s pins %s (%u VFIO function%s%s); %s", consumer,
                                        iovirt_size_format(need.pinned, a), need.functions,
                                        need.functions == 1 ? "" : "s", need.viommu ? ", vIOMMU" : "", strna(why));
        return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL,
                                "RLIMIT_MEMLOCK of process %d is raised to %s (%s, %u VFIO function%s%s), never "
                                "lowered; %s", (int) req->pid, iovirt_size_format(need.limit, a), need.limit_from,
                                need.functions, need.functions == 1 ? "" : "s", need.viommu ? ", vIOMMU" : "",
                                strna(why));
}

static int check_memory_cgroup(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtPolicyRequest *req = userdata;
        if (!req->policy || req->pid <= 0 || req->process_error < 0)
                return 0;
        const IovirtPolicyPool *pool = pool_of(ctx, req);
        IovirtPinnedTally tally;
        IovirtMemlockNeed need;
        int r = iovirt_pinned_tally(ctx->in->state, ctx->in->consumer, &tally);
        if (r >= 0)
                r = iovirt_memlock_need(req, pool, &tally, new_functions(ctx, req), &need);
        if (r < 0)
                return r == -EOVERFLOW ? 0 : r;       /* the memlock check says so */
        /* a hard limit alone: what it lets the process pin, as the guest memory */
        uint64_t guest = need.memory ? need.memory : iovirt_memlock_counted(0, need.limit);
        if (guest == 0)
                return 0;
        bool refuse = req->policy->memory_cgroup == IOVIRT_MEMORY_CGROUP_REFUSE;
        IovirtPlanStatus bad = refuse ? IOVIRT_PLAN_FAIL : IOVIRT_PLAN_WARN;
        /* cgroup v1 is a host that cannot say, which the policy decides on; a
         * v2 file that cannot be read is a check that cannot be made */
        if (req->cgroup_error < 0 && req->cgroup_error != -EOPNOTSUPP)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_FACTS_UNREADABLE, NULL,
                                        "The memory cgroup of process %d could not be read: %s", (int) req->pid,
                                        req->cgroup_reason ? req->cgroup_reason : strerror(-req->cgroup_error));
        if (req->cgroup_error < 0)
                return iovirt_check_set(c, bad, IOVIRT_REASON_MEMORY_CGROUP, NULL,
                                        "The memory cgroup of process %d cannot be checked: %s%s", (int) req->pid,
                                        req->cgroup_reason ? req->cgroup_reason : strerror(-req->cgroup_error),
                                        refuse ? " (MemoryCgroup=refuse)" : "");
        _cleanup_free_ char *why = NULL;
        r = iovirt_memlock_cgroup_check(req->cgroup_max, req->cgroup_path, guest, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return iovirt_check_set(c, bad, IOVIRT_REASON_MEMORY_CGROUP, NULL, "%s%s", strna(why),
                                        refuse ? " (MemoryCgroup=refuse)" : "");
        return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL, "%s", strna(why));
}

size_t iovirt_policy_rules(const IovirtPolicyRequest *req, IovirtPlanRule rules[static IOVIRT_POLICY_N_RULES]) {
        void *u = (void *) req;
        rules[0] = (IovirtPlanRule) { "policy", check_policy, u };
        rules[1] = (IovirtPlanRule) { "pool", check_pool, u };
        rules[2] = (IovirtPlanRule) { "owner", check_owner, u };
        rules[3] = (IovirtPlanRule) { "numa", check_numa, u };
        rules[4] = (IovirtPlanRule) { "memlock", check_memlock, u };
        rules[5] = (IovirtPlanRule) { "memory-cgroup", check_memory_cgroup, u };
        return IOVIRT_POLICY_N_RULES;
}
