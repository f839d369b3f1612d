/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <syslog.h>

#include "iovirt-guard.h"
#include "iovirt-json.h"
#include "iovirt-memlock.h"
#include "iovirt-names.h"
#include "iovirt-plan.h"
#include "iovirt-sriov.h"
#include "iovirt-sysfs.h"
#include "iovirt-transaction.h"
#include "iovirt-variant.h"
#include "iovirtd-assign.h"
#include "iovirtd-bouncer.h"
#include "iovirtd-domain.h"
#include "iovirtd-job.h"
#include "iovirtd-log.h"
#include "iovirtd-policy.h"
#include "iovirtd-sriov.h"

int manager_load_state(Manager *m) {
        _cleanup_free_ char *boot_id = NULL;
        char **notes = NULL;
        size_t n_notes = 0;
        int r;

        m->state_dir = iovirt_state_dir();
        r = iovirt_state_load(m->state_dir, &m->state);
        if (r < 0)
                return log_error_errno(r, "Failed to read the state in %s: %m", m->state_dir);
        for (size_t i = 0; i < m->state->n_problems; i++)
                log_full_errno(LOG_CRIT, 0, NULL, "%s", m->state->problems[i]);
        /* what is recorded is still served; what would change it is refused, each time saying why */
        if (access(m->state_dir, W_OK) < 0)
                log_warning_errno(-errno, "The state directory %s cannot be written (%m): every assign, release and "
                                  "SR-IOV change is refused until it can be", m->state_dir);
        /* VFs first: an assignment of a persisted VF can only be reconciled
         * once the VF is back */
        r = manager_restore_sriov(m);
        if (r < 0)
                return r;
        r = iovirt_boot_id(&boot_id);
        if (r < 0)
                log_warning_errno(r, "Cannot read the boot id; assignments of earlier boots cannot be told apart: %m");

        r = iovirt_state_reconcile(m->host, m->state, m->state_dir, boot_id, &notes, &n_notes);
        for (size_t i = 0; i < n_notes; i++) {
                log_full_errno(LOG_WARNING, 0, NULL, "%s", notes[i]);
                free(notes[i]);
        }
        free(notes);
        if (r < 0)
                return log_error_errno(r, "Failed to reconcile the state with the host: %m");
        /* once the groups a crash cut short are settled: limits raised for none of them go back */
        r = manager_restore_memlock(m);
        if (r < 0)
                return r;
        if (n_notes > 0) {
                r = manager_refresh(m);
                if (r < 0)
                        return r;
        }
        log_info("%zu assignment%s held", m->state->n_records, m->state->n_records == 1 ? "" : "s");
        return 0;
}

/* ---- reasons as D-Bus errors: the one table ---- */

static const char *const reason_errors[_IOVIRT_REASON_MAX] = {
        [IOVIRT_REASON_NO_IOMMU] = IOVIRT_ERROR_NO_IOMMU,
        [IOVIRT_REASON_NO_SUCH_GROUP] = IOVIRT_ERROR_NO_SUCH_DEVICE,
        [IOVIRT_REASON_IN_USE] = IOVIRT_ERROR_IN_USE,
        [IOVIRT_REASON_BUSY] = IOVIRT_ERROR_BUSY,
        [IOVIRT_REASON_RELEASE_UNFINISHED] = IOVIRT_ERROR_BUSY,
        [IOVIRT_REASON_NOTHING_TO_ASSIGN] = IOVIRT_ERROR_INVALID_ARGUMENT,
        [IOVIRT_REASON_NOT_ISOLATED] = IOVIRT_ERROR_NOT_ISOLATED,
        [IOVIRT_REASON_ISOLATION_UNKNOWN] = IOVIRT_ERROR_NOT_ISOLATED,
        [IOVIRT_REASON_HOST_CRITICAL] = IOVIRT_ERROR_HOST_CRITICAL,
        [IOVIRT_REASON_HOST_UNREADABLE] = IOVIRT_ERROR_HOST_CRITICAL,
        [IOVIRT_REASON_SRIOV_CLAIMED] = IOVIRT_ERROR_IN_USE,
        [IOVIRT_REASON_SRIOV_ENABLED] = IOVIRT_ERROR_IN_USE,
        [IOVIRT_REASON_INVALID] = IOVIRT_ERROR_INVALID_ARGUMENT,
        [IOVIRT_REASON_DRIVER_UNKNOWN] = IOVIRT_ERROR_FAILED,
        [IOVIRT_REASON_NOT_VFIO_DRIVER] = IOVIRT_ERROR_INVALID_ARGUMENT,
        [IOVIRT_REASON_POLICY_UNREADABLE] = IOVIRT_ERROR_POLICY_DENIED,
        [IOVIRT_REASON_NOT_IN_POOL] = IOVIRT_ERROR_POLICY_DENIED,
        [IOVIRT_REASON_NOT_ADMITTED] = IOVIRT_ERROR_POLICY_DENIED,
        [IOVIRT_REASON_NOT_OWNER] = IOVIRT_ERROR_NOT_AUTHORIZED,
        [IOVIRT_REASON_CONSUMER_GONE] = IOVIRT_ERROR_INVALID_ARGUMENT,
        [IOVIRT_REASON_NUMA_REMOTE] = IOVIRT_ERROR_POLICY_DENIED,
        [IOVIRT_REASON_NUMA_UNKNOWN] = IOVIRT_ERROR_POLICY_DENIED,
        [IOVIRT_REASON_OVER_BUDGET] = IOVIRT_ERROR_OVER_BUDGET,
        [IOVIRT_REASON_MEMORY_CGROUP] = IOVIRT_ERROR_POLICY_DENIED,
        [IOVIRT_REASON_FACTS_UNREADABLE] = IOVIRT_ERROR_FAILED,
};

const char *manager_reason_error(IovirtReason reason) {
        const char *e = reason < _IOVIRT_REASON_MAX ? reason_errors[reason] : NULL;
        return e ? e : IOVIRT_ERROR_FAILED;
}

/* The plan as clients see it: src/'s document, each failed check with the
 * D-Bus error it is answered with. */
static json_object *plan_document(const IovirtPlan *p) {
        json_object *o = iovirt_plan_to_json(p), *checks;
        if (!o || !json_object_object_get_ex(o, "checks", &checks))
                return o;
        for (size_t i = 0; i < p->n_checks; i++)
                json_object_object_add(json_object_array_get_idx(checks, (int) i), "error",
                                       p->checks[i].status == IOVIRT_PLAN_FAIL
                                               ? json_object_new_string(manager_reason_error(p->checks[i].reason))
                                               : NULL);
        return o;
}

static int reply_plan(sd_bus_message *msg, const IovirtPlan *p) {
        _cleanup_(json_object_putp) json_object *o = plan_document(p);
        return manager_reply_json(msg, o);
}

/* ---- arguments ---- */

typedef struct AssignArgs {
        const char *target, *consumer;
        unsigned accept;
        const char *driver;              /* accept "driver=NAME": the VFIO driver asked for; NULL: the kernel's */
        int interactive;
        PolicyAsk ask;                   /* memory=, viommu, hard-limit=, numa-policy=, numa-node=, cpus=; the caller */
        const IovirtAliases *aliases;    /* the kernel's modules.alias, read once per plan */
        const IovirtPolicyRequest *policy;   /* the facts policy's checks judge, gathered once per plan */
        const LibvirtDomain *domain;     /* a libvirt domain consumer: as libvirt said; NULL: none */
        bool persistent;                 /* accept "persistent": attach to the domain's config too */
        AssignPlanHow how;               /* for a transaction of several assignments (iovirtd-domain.c) */
} AssignArgs;

static bool excluded(const AssignArgs *a, int group) {
        for (size_t i = 0; i < a->how.n_exclude; i++)
                if (a->how.exclude[i] == group)
                        return true;
        return false;
}

static int check_target(const char *target, sd_bus_error *error) {
        if (strlen(target) > IOVIRT_ARG_MAX)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "The target is %zu bytes long; at most %d are accepted", strlen(target),
                                         IOVIRT_ARG_MAX);
        return 0;
}

static int check_consumer(const char *consumer, sd_bus_error *error) {
        _cleanup_free_ char *reason = NULL;
        int r = iovirt_consumer_valid(consumer, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT, "%s",
                                         reason ? reason : "Invalid consumer name");
        return 0;
}

static int bad_option(sd_bus_error *error, const char *s, const char *why) {
        return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT, "'%.64s' in accept: %s", s, why);
}

static int read_size_option(const char *s, const char *value, uint64_t *ret, sd_bus_error *error) {
        const char *why = NULL;
        if (iovirt_size_parse(value, ret, &why) < 0)
                return bad_option(error, s, why ? why : "not a size");
        if (*ret == 0)
                return bad_option(error, s, "zero; give the guest's memory (4G, 4096M, or bytes)");
        return 0;
}

/* What a request tells the policy; 1 when s was one of those, 0 when not */
static int read_policy_option(const char *s, PolicyAsk *ask, sd_bus_error *error) {
        int r, v;
        if (streq_ptr(s, "viommu"))
                ask->viommu = true;
        else if (strncmp(s, "memory=", 7) == 0) {
                if ((r = read_size_option(s, s + 7, &ask->memory, error)) < 0)
                        return r;
        } else if (strncmp(s, "hard-limit=", 11) == 0) {
                if ((r = read_size_option(s, s + 11, &ask->hard_limit, error)) < 0)
                        return r;
        } else if (strncmp(s, "numa-policy=", 12) == 0) {
                if ((ask->numa_policy = iovirt_numa_policy_from_string(s + 12)) < 0)
                        return bad_option(error, s, "the NUMA policies are required, legacy, preferred, socket and none");
        } else if (strncmp(s, "numa-node=", 10) == 0) {
                if (iovirt_parse_int(s + 10, &v) < 0 || v < 0 || v >= IOVIRT_NUMA_NODES_MAX)
                        return bad_option(error, s, "a NUMA node is a number from 0 to 1023");
                ask->numa_node = v;
        } else if (strncmp(s, "user=", 5) == 0) {
                if (!s[5] || strlen(s + 5) > 64 || strspn(s + 5, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                               "0123456789_.-$") != strlen(s + 5))
                        return bad_option(error, s, "a user is a user name or a uid");
                ask->user = s + 5;
        } else if (strncmp(s, "cpus=", 5) == 0) {
                _cleanup_(iovirt_bitmap_clear) IovirtBitmap cpus = {};
                r = iovirt_numa_cpulist_parse(s + 5, &cpus);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 || iovirt_bitmap_count(&cpus) == 0)
                        return bad_option(error, s, "a CPU list is as the kernel prints it: 0-3,8-11");
                ask->cpus = s + 5;
        } else
                return 0;
        return 1;
}

int assign_caller_uid(sd_bus_message *msg, uint32_t *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid;
        int r = sd_bus_query_sender_creds(msg, SD_BUS_CREDS_UID | SD_BUS_CREDS_EUID, &creds);
        if (r >= 0) {
                r = sd_bus_creds_get_euid(creds, &uid);
                if (r == -ENODATA)
                        r = sd_bus_creds_get_uid(creds, &uid);
        }
        if (r >= 0)
                *ret = uid;
        return r;
}

static int read_assign_args(sd_bus_message *msg, bool with_interactive, AssignArgs *a, sd_bus_error *error) {
        int r;
        *a = (AssignArgs) { .ask = { .numa_policy = -1, .numa_node = -1 } };
        r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "ss", &a->target, &a->consumer);
        if (r >= 0)
                r = sd_bus_message_enter_container(msg, 'a', "s");
        if (r < 0)
                return r;
        for (;;) {
                const char *s;
                r = sd_bus_message_read(msg, "s", &s);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (streq_ptr(s, "leaky"))
                        a->accept |= IOVIRT_ACCEPT_LEAKY;
                else if (streq_ptr(s, "persistent"))
                        a->persistent = true;
                else if (strncmp(s, "driver=", 7) == 0) {
                        if (a->driver)
                                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                                         "accept names a driver twice ('driver=%.64s' and '%.64s')",
                                                         a->driver, s);
                        if (!iovirt_variant_name_valid(s + 7))
                                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                                         "'%.64s' in accept: a driver name is 1-55 characters of "
                                                         "letters, digits, '_' and '-', not starting with '-'", s);
                        a->driver = s + 7;
                } else if ((r = read_policy_option(s, &a->ask, error)) == 0)
                        return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                                 "Unknown value in accept: '%.64s'; it takes 'leaky', 'driver=NAME', "
                                                 "'memory=SIZE', 'viommu', 'hard-limit=SIZE', 'numa-policy=NAME', "
                                                 "'numa-node=N', 'cpus=LIST', 'user=USER' and 'persistent'", s);
                else if (r < 0)
                        return r;
        }
        if (a->ask.numa_node >= 0 && a->ask.cpus)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "accept names both numa-node= and cpus=: where the consumer runs is one "
                                         "of them");
        r = sd_bus_message_exit_container(msg);
        if (r >= 0 && with_interactive)
                r = sd_bus_message_read(msg, "b", &a->interactive);
        if (r < 0)
                return r;
        r = check_target(a->target, error);
        if (r >= 0)
                r = check_consumer(a->consumer, error);
        if (r < 0)
                return r;
        pid_t pid;
        if (consumer_pid(a->consumer, &pid) < 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "'%.64s' names no process: a process consumer is pid:PID, PID a number "
                                         "above 0", a->consumer);
        r = assign_caller_uid(msg, &a->ask.caller_uid);
        if (r < 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_NOT_AUTHORIZED, "Cannot tell who is calling: denied");
        return 0;
}

typedef struct Drivers {
        IovirtPlanDriver *d;
        size_t n;
} Drivers;

static void drivers_clear(Drivers *x) {
        for (size_t i = 0; i < x->n; i++)
                iovirt_variant_choice_clear(&x->d[i].choice);
        free(x->d);
        *x = (Drivers) {};
}

/* The VFIO driver of each endpoint of group, for the plan (which reads no
 * file): the kernel's choice by libvirt's rule, or the one the request
 * named.  What could not be chosen goes in as an error: the plan refuses
 * it.  Nothing for a target without a group (the plan refuses that). */
static int choose_drivers(Manager *m, const AssignArgs *a, int group, Drivers *ret) {
        _cleanup_(drivers_clear) Drivers x = {};
        const IovirtGroup *g = group >= 0 ? iovirt_host_find_group(m->host, group) : NULL;
        if (!g)
                return 0;
        const IovirtGroupVerdict *gv = &m->verdicts->groups[g - m->host->groups];
        if (!(x.d = calloc(gv->n_endpoints ? gv->n_endpoints : 1, sizeof(IovirtPlanDriver))))
                return -ENOMEM;
        for (; x.n < gv->n_endpoints; x.n++) {
                IovirtPlanDriver *e = &x.d[x.n];
                const IovirtDevice *d = &m->host->devices[gv->endpoints[x.n]];
                e->device = gv->endpoints[x.n];
                e->asked = a->driver != NULL;
                int r = a->driver ? iovirt_variant_asked(a->aliases, d, a->driver, &e->choice)
                                  : iovirt_variant_for_device_in(a->aliases, d, &e->choice);
                if (r == -ENOMEM) {
                        x.n++;
                        return r;
                }
                e->error = r < 0 ? r : 0;
        }
        *ret = x;
        x = (Drivers) {};
        return 0;
}

/* A member of the group that is a PF whose VFs are changing, or one of
 * their VFs: the model of that family is about to change under the plan */
static const IovirtDevice *sriov_changing(Manager *m, int group, size_t device) {
        const IovirtGroup *g = group >= 0 ? iovirt_host_find_group(m->host, group) : NULL;
        size_t n = g ? g->n_members : device != IOVIRT_NONE;
        for (size_t i = 0; i < n; i++) {
                const IovirtDevice *d = &m->host->devices[g ? g->members[i] : device];
                const IovirtDevice *pf = iovirt_device_is_vf(d) ? &m->host->devices[d->physfn] : d;
                if (pf->sriov && manager_sriov_busy(m, pf->name))
                        return pf;
        }
        return NULL;
}

static int plan_device(Manager *m, const AssignArgs *a, const IovirtUsage *usage, int group, size_t device,
                       IovirtPlan **ret, sd_bus_error *error) {
        _cleanup_(drivers_clear) Drivers drivers = {};
        const IovirtDevice *pf = sriov_changing(m, group, device);
        if (pf)
                return sd_bus_error_setf(error, IOVIRT_ERROR_BUSY,
                                         "%s's VFs are being changed right now; try again when that has finished",
                                         pf->name);
        int r = choose_drivers(m, a, group, &drivers);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Could not choose the VFIO drivers: %m");
        const IovirtPlanInput in = {
                .host = m->host, .verdicts = m->verdicts, .usage = usage, .state = m->state,
                .consumer = a->consumer, .accept = a->accept, .group = group, .device = device,
                .group_locked = group >= 0 && job_group_locked(m, group), .libvirt_managed = a->how.libvirt_managed,
                .drivers = drivers.d, .n_drivers = drivers.n,
        };
        IovirtPlanRule rules[IOVIRT_POLICY_N_RULES];
        size_t n_rules = a->policy ? iovirt_policy_rules(a->policy, rules) : 0;
        r = iovirt_plan_assign(&in, rules, n_rules, ret);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Could not make a plan: %m");
        return 0;
}

static int resolve_error(int r, const char *reason, const char *what, sd_bus_error *error) {
        if (r == -ENOMEM)
                return r;
        return sd_bus_error_setf(error, r == -ENODEV ? IOVIRT_ERROR_NO_SUCH_DEVICE : IOVIRT_ERROR_INVALID_ARGUMENT,
                                 "%s", reason ? reason : what);
}

/* The order in which to try candidates: the NUMA policy's, nearest first
 * (the policy of the first candidate's pool); as given without a policy.
 * 1 when the policy ordered them (*policy names it), else 0. */
static int numa_order(Manager *m, const AssignArgs *a, const size_t *devices, size_t n, size_t *order,
                      IovirtNumaPolicy *ret_policy) {
        for (size_t i = 0; i < n; i++)
                order[i] = i;
        const IovirtPolicyRequest *req = a->policy;
        if (!req || !req->policy || !req->numa || req->numa->n_nodes <= 1)
                return 0;
        const IovirtDevice *d = &m->host->devices[devices[0]];
        const IovirtGroupVerdict *gv = d->group != IOVIRT_NONE ? &m->verdicts->groups[d->group] : NULL;
        const IovirtPolicyPool *pool = gv ? iovirt_policy_pool_of(req->policy, m->host, gv) : NULL;
        IovirtNumaPolicy policy = iovirt_policy_numa_for(req, pool);
        _cleanup_free_ int *nodes = calloc(n, sizeof(int));
        if (!nodes)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                nodes[i] = m->host->devices[devices[i]].numa_node;
        int r = iovirt_numa_choose(req->numa, policy, req->placement, nodes, n, order);
        if (r < 0)
                return r;
        *ret_policy = policy;
        return policy != IOVIRT_NUMA_NONE;
}

/* Why this one of several: a passed check the plan carries */
static int note_choice(Manager *m, IovirtPlan *p, size_t device, size_t n, size_t tried, bool by_numa,
                       IovirtNumaPolicy policy) {
        _cleanup_free_ char *text = NULL;
        const IovirtDevice *d = &m->host->devices[device];
        char node[32] = "no node";
        if (d->numa_node >= 0)
                snprintf(node, sizeof(node), "node %d", d->numa_node);
        int l = by_numa ? asprintf(&text, "%s of %zu candidates: the first that may be taken (%zu tried) in the order "
                                          "of NUMA policy '%s', nearest first; it is on %s", d->name, n, tried,
                                   iovirt_numa_policy_to_string(policy), node)
                        : asprintf(&text, "%s of %zu candidates: the first that may be taken (%zu tried), in address "
                                          "order", d->name, n, tried);
        if (l < 0)
                return -ENOMEM;
        return iovirt_plan_add_check(p, "choice", text);
}

/* One of several devices (a PF#range, a pool): a retry is safe, when the
 * consumer holds one of them already that is the plan (done); otherwise
 * the first that may be taken, in the NUMA policy's order.  When none may
 * be, the first one's refusal says why. */
static int plan_candidates(Manager *m, const AssignArgs *a, const size_t *devices, size_t n,
                           const IovirtUsage *usage, IovirtPlan **ret, sd_bus_error *error) {
        _cleanup_(iovirt_plan_freep) IovirtPlan *first = NULL;
        for (size_t i = 0; i < n; i++) {
                const IovirtRecord *rec = iovirt_state_find(m->state, m->host->devices[devices[i]].iommu_group);
                if (rec && rec->phase == IOVIRT_PHASE_ASSIGNED && streq_ptr(rec->consumer, a->consumer) &&
                    !excluded(a, rec->group))
                        return plan_device(m, a, usage, m->host->devices[devices[i]].iommu_group, devices[i], ret,
                                           error);
        }
        _cleanup_free_ size_t *order = calloc(n, sizeof(size_t));
        if (!order)
                return -ENOMEM;
        IovirtNumaPolicy policy = IOVIRT_NUMA_NONE;
        int r = numa_order(m, a, devices, n, order, &policy);
        if (r < 0)
                return r;
        bool by_numa = r > 0;
        for (size_t k = 0; k < n; k++) {
                _cleanup_(iovirt_plan_freep) IovirtPlan *p = NULL;
                size_t i = order[k];
                if (excluded(a, m->host->devices[devices[i]].iommu_group))
                        continue;
                r = plan_device(m, a, usage, m->host->devices[devices[i]].iommu_group, devices[i], &p, error);
                if (r < 0)
                        return r;
                if (!iovirt_plan_refusal(p)) {
                        if (n > 1 && (r = note_choice(m, p, devices[i], n, k + 1, by_numa, policy)) < 0)
                                return r;
                        *ret = TAKE_PTR(p);
                        return 0;
                }
                if (!first)
                        first = TAKE_PTR(p);
        }
        if (!first)
                return sd_bus_error_setf(error, IOVIRT_ERROR_IN_USE,
                                         "Each of the %zu devices '%s' offers is taken by the same request already; "
                                         "it asks for more than there are", n, a->target);
        *ret = TAKE_PTR(first);
        return 0;
}

/* PF#range: one VF of the range */
static int plan_range(Manager *m, const AssignArgs *a, const IovirtSelector *sel, const IovirtUsage *usage,
                      IovirtPlan **ret, sd_bus_error *error) {
        _cleanup_free_ char *reason = NULL;
        _cleanup_free_ size_t *vfs = NULL;
        size_t pf, n;
        int r = iovirt_selector_resolve(m->host, sel, &pf, &vfs, &n, &reason);
        if (r < 0)
                return resolve_error(r, reason, "No such VF", error);
        if (n == 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_NO_SUCH_DEVICE,
                                         "No VF of '%s' is enabled; 'iovirtctl sriov %s --vfs N' creates VFs",
                                         a->target, sel->pf);
        return plan_candidates(m, a, vfs, n, usage, ret, error);
}

/* pool:NAME: one device of the pool, a group's first endpoint for each group it holds whole */
static int plan_pool(Manager *m, const AssignArgs *a, const char *name, const IovirtUsage *usage, IovirtPlan **ret,
                     sd_bus_error *error) {
        const IovirtPolicy *p = a->policy ? a->policy->policy : NULL;
        const IovirtPolicyPool *pool = p ? iovirt_policy_find_pool(p, name) : NULL;
        if (!pool)
                return sd_bus_error_setf(error, IOVIRT_ERROR_NO_SUCH_DEVICE,
                                         "There is no pool '%.64s'%s; 'iovirtctl policy' lists the pools", name,
                                         p ? "" : " (the policy could not be read)");
        _cleanup_free_ size_t *devices = calloc(m->host->n_groups + 1, sizeof(size_t));
        size_t n = 0;
        if (!devices)
                return -ENOMEM;
        for (size_t g = 0; g < m->host->n_groups; g++) {
                const IovirtGroupVerdict *gv = &m->verdicts->groups[g];
                if (iovirt_policy_pool_of(p, m->host, gv) == pool)
                        devices[n++] = gv->endpoints[0];
        }
        if (n == 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_NO_SUCH_DEVICE,
                                         "Pool '%s' holds no whole IOMMU group on this host; its Devices= (%s:%u) "
                                         "match nothing that could be assigned", pool->name, pool->devices_origin.file,
                                         pool->devices_origin.line);
        return plan_candidates(m, a, devices, n, usage, ret, error);
}

/* The plan for a, or a NoSuchDevice / InvalidArgument error; *facts
 * (cleared by the caller) what policy's checks judged */
static int make_plan(Manager *m, const AssignArgs *args, PolicyFacts *facts, IovirtPlan **ret, sd_bus_error *error) {
        _cleanup_(iovirt_variant_aliases_clear) IovirtAliases aliases = {};
        _cleanup_(iovirt_usage_freep) IovirtUsage *usage = NULL;
        _cleanup_(iovirt_selector_clear) IovirtSelector sel = {};
        _cleanup_free_ char *reason = NULL;
        const char *pool = strncmp(args->target, "pool:", 5) == 0 ? args->target + 5 : NULL;
        size_t device;
        int group, r;

        r = pool ? 0 : iovirt_selector_parse(args->target, &sel, &reason);
        if (r < 0)
                return resolve_error(r, reason, "Invalid VF selector", error);
        if (r == 0 && !pool) {
                r = iovirt_target_resolve(m->host, args->target, &group, &device, &reason);
                if (r < 0)
                        return resolve_error(r, reason, "No such device", error);
        }
        r = iovirt_guard_scan(m->host, &usage);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Could not tell what the host itself uses: %m");
        /* once for every function planned; a file that cannot be read fails the plan */
        r = iovirt_variant_aliases_read(&aliases);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Could not read the kernel's module aliases: %m");
        r = policy_gather(m, args->consumer, &args->ask, facts);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Could not read what the policy needs: %m");
        AssignArgs with_aliases = *args;
        with_aliases.aliases = &aliases;
        with_aliases.policy = &facts->req;
        const AssignArgs *a = &with_aliases;
        _cleanup_(iovirt_plan_freep) IovirtPlan *plan = NULL;
        r = pool     ? plan_pool(m, a, pool, usage, &plan, error)
            : sel.pf ? plan_range(m, a, &sel, usage, &plan, error)
                     : plan_device(m, a, usage, group, device, &plan, error);
        if (r < 0)
                return r;
        /* a plain QEMU that is not root needs its group's node */
        r = policy_node_owner(facts, &args->ask, &plan->give_node_to, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, r == -EPERM ? IOVIRT_ERROR_NOT_AUTHORIZED : IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "%s", strna(reason));
        *ret = TAKE_PTR(plan);
        return 0;
}

/* A refused plan as the error of its first failed check, every failed
 * check's sentence in the message */
static int plan_refused(const IovirtPlan *p, const AssignArgs *a, sd_bus_error *error) {
        const IovirtPlanCheck *refusal = iovirt_plan_refusal(p);
        _cleanup_free_ char *text = iovirt_plan_refusal_text(p);
        log_notice("Refused to assign %s to %s: %s", a->target, a->consumer, text ? text : refusal->message);
        return sd_bus_error_setf(error, manager_reason_error(refusal->reason), "%s", text ? text : refusal->message);
}

static int assign_domain(Manager *m, sd_bus_message *msg, sd_bus_message_handler_t again, bool lookup, AssignArgs *a,
                         sd_bus_error *error);

int method_plan_assign(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(iovirt_plan_freep) IovirtPlan *plan = NULL;
        _cleanup_(policy_facts_clear) PolicyFacts facts = { .pidfd = -EBADF };
        AssignArgs a;
        int r;

        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        r = read_assign_args(msg, false, &a, error);
        if (r >= 0)
                r = assign_domain(m, msg, method_plan_assign, true, &a, error);
        if (r > 0)
                return 1;
        if (r >= 0)
                r = make_plan(m, &a, &facts, &plan, error);
        return r < 0 ? r : reply_plan(msg, plan);
}

/* The model follows the kernel at once, not when the uevents arrive. */
static void update_address(Manager *m, const char *address) {
        IovirtAddress a;
        size_t d;
        if (!m->host || iovirt_address_parse(address, &a, NULL) < 0 ||
            (d = iovirt_host_find_address(m->host, &a)) == IOVIRT_NONE)
                return;
        _cleanup_free_ char *syspath = strdup(m->host->devices[d].syspath);    /* the update replaces it */
        if (syspath)
                manager_update_device(m, syspath);
}

/* The kernel's time for each bind, as an operator would want to see it */
static void log_moves(const IovirtMoves *moves) {
        for (size_t i = 0; i < moves->n; i++)
                log_device_info(moves->moves[i].address, "%s went to %s in %.1f ms", moves->moves[i].address,
                                moves->moves[i].to ? moves->moves[i].to : "no driver", moves->moves[i].usec / 1000.0);
}

/* Puts rec (taken) in place of the group's record, which a transaction
 * on the group always has (its placeholder, or the record it releases):
 * replacing one cannot fail.  NULL drops it. */
static void state_settle(Manager *m, int group, IovirtRecord *rec) {
        if (!rec) {
                iovirt_state_drop(m->state, group);
                return;
        }
        assert(iovirt_state_find(m->state, group));
        (void) iovirt_state_put(m->state, rec);
}

/* ---- Assign: validate, plan, (authorize, plan again, act) ---- */

/* The same answer for a repeated request: the plan, marked done */
static int answer_without_acting(sd_bus_message *msg, const IovirtPlan *plan, const AssignArgs *a,
                                 sd_bus_error *error) {
        if (iovirt_plan_refusal(plan))
                return plan_refused(plan, a, error);
        return reply_plan(msg, plan);
}

static bool consumer_holds_function(Manager *m, const char *consumer, const char *address) {
        for (size_t i = 0; i < m->state->n_records; i++) {
                const IovirtRecord *rec = m->state->records[i];
                if (!streq_ptr(rec->consumer, consumer))
                        continue;
                for (size_t k = 0; k < rec->n_functions; k++)
                        if (streq_ptr(rec->functions[k].address, address))
                                return true;
        }
        return false;
}

/* A libvirt domain as the consumer: its name as the consumer, and what
 * the policy judges from its definition, which no option overrides.  1
 * when libvirt is being asked (msg goes to again afterwards). */
static int assign_domain(Manager *m, sd_bus_message *msg, sd_bus_message_handler_t again, bool lookup, AssignArgs *a,
                         sd_bus_error *error) {
        int r = domain_consumer(m, msg, again, a->consumer, lookup, &a->domain, &a->consumer, error);
        if (r != 0)
                return r;
        if (!a->domain)
                return a->persistent ? sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                                         "'persistent' is for a libvirt domain, and '%.64s' is none "
                                                         "that libvirt at %s knows", a->consumer, libvirt_uri())
                                     : 0;
        const PolicyAsk *ask = &a->ask;
        if (ask->memory || ask->viommu || ask->hard_limit || ask->numa_node >= 0 || ask->cpus)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "%s is a libvirt domain: its memory, vIOMMU, hard limit and placement are "
                                         "read from its definition, so memory=, viommu, hard-limit=, numa-node= and "
                                         "cpus= are not taken ('virsh edit %s' changes them)", a->consumer,
                                         a->domain->name);
        domain_ask(a->domain->xml, &a->ask);
        /* with a vIOMMU each VFIO function counts: those the domain has that iovirt does not hold for it too */
        for (size_t i = 0; i < a->domain->xml->n_hostdevs; i++) {
                char addr[IOVIRT_ADDRESS_MAX];
                iovirt_address_format(&a->domain->xml->hostdevs[i].address, addr);
                if (!consumer_holds_function(m, a->consumer, addr))
                        a->ask.pending_functions++;
        }
        return 0;
}

/* A process's limit is raised and put back by each of its jobs: one at a
 * time, or the undo of one that failed could lower what another needs */
static int process_busy(Manager *m, const char *consumer, sd_bus_error *error) {
        pid_t pid;
        if (consumer_pid(consumer, &pid) <= 0)
                return 0;
        for (size_t i = 0; i < m->state->n_records; i++) {
                const IovirtRecord *rec = m->state->records[i];
                if (streq_ptr(rec->consumer, consumer) && job_group_locked(m, rec->group))
                        return sd_bus_error_setf(error, IOVIRT_ERROR_BUSY,
                                                 "Group %d of %s is %s right now; try again when that has finished",
                                                 rec->group, consumer,
                                                 rec->phase == IOVIRT_PHASE_RELEASING ? "being given back"
                                                                                      : "being assigned");
        }
        return 0;
}

/* Validates msg's arguments and plans.  A refusal, or a plan with nothing
 * to do, is answered here (1); 0 with *ret a plan to carry out. */
static int plan_or_answer(Manager *m, sd_bus_message *msg, bool lookup, AssignArgs *a, PolicyFacts *facts,
                          IovirtPlan **ret, sd_bus_error *error) {
        _cleanup_(iovirt_plan_freep) IovirtPlan *plan = NULL;
        int r;

        r = read_assign_args(msg, true, a, error);
        if (r >= 0)
                r = manager_accepting(m, error);
        if (r >= 0)
                r = assign_domain(m, msg, method_guarded, lookup, a, error);
        if (r > 0)
                return 1;      /* dispatched again once libvirt has answered */
        if (r >= 0)
                r = process_busy(m, a->consumer, error);
        if (r >= 0)
                r = make_plan(m, a, facts, &plan, error);
        if (r < 0)
                return r;
        if (iovirt_plan_refusal(plan) || plan->done) {
                r = answer_without_acting(msg, plan, a, error);
                return r < 0 ? r : 1;
        }
        *ret = TAKE_PTR(plan);
        return 0;
}

int prepare_assign(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error) {
        _cleanup_(iovirt_plan_freep) IovirtPlan *plan = NULL;
        _cleanup_(policy_facts_clear) PolicyFacts facts = { .pidfd = -EBADF };
        AssignArgs a;
        /* a refusal, or nothing to do: answered without asking for a password */
        int r = plan_or_answer(userdata, msg, true, &a, &facts, &plan, error);
        if (r == 0)
                *interactive = a.interactive;
        return r;
}

typedef struct AssignJob {
        IovirtPlan *plan;
        int pidfd;                   /* a pid: consumer's, -EBADF: none */
        bool raised;                 /* its RLIMIT_MEMLOCK was raised by this job, from before */
        bool memlock_recorded;       /* and its limit from before recorded by this job (memlock-PID.json) */
        struct rlimit before;
        bool raise_failed;           /* it could not be: nothing was bound */
        const char *dir;
        IovirtRecord *result;
        IovirtMoves moves;
        char *reason;
        int r;
        /* a libvirt domain consumer: what to attach to, and how it went */
        bool attach, persistent, was_active;
        char uuid[37];
        LibvirtAttach attached;
        bool attach_failed;          /* the bind went back: the error is libvirt's */
        int memlock_r;               /* libvirt_memlock_covers() after a live attach */
        uint64_t memlock_need, memlock_have;
        char *memlock_reason;
} AssignJob;

static void assign_job_free(void *p) {
        AssignJob *j = p;
        iovirt_plan_free(j->plan);
        if (j->pidfd >= 0)
                close(j->pidfd);
        iovirt_record_free(j->result);
        iovirt_moves_clear(&j->moves);
        free(j->reason);
        free(j->memlock_reason);
        free(j);
}

/* After the bind: the domain gets the group, or the group goes back.
 * A live attach is followed by a look at its QEMU's RLIMIT_MEMLOCK. */
static void attach_work(AssignJob *j) {
        _cleanup_free_ IovirtAddress *functions = NULL;
        _cleanup_free_ char *notes = NULL, *why = NULL;
        bool stuck = false;
        int r = iovirt_record_addresses(j->result, &functions);
        if (r >= 0)
                r = libvirt_attach(j->uuid, functions, j->result->n_functions, j->was_active, j->persistent,
                                   &j->attached, &stuck, &j->reason);
        if (r < 0) {
                j->r = r;
                j->attach_failed = true;
                if (stuck)      /* the guest may hold it: it stays bound, for the domain */
                        iovirt_reason_append(&j->reason, ". ", "The group stays bound to VFIO for the domain; "
                                             "'iovirtctl release' detaches it and gives it back once libvirt answers");
                else if (iovirt_release_execute(j->result, j->dir, &j->moves, &notes, &why) >= 0)
                        j->result = iovirt_record_free(j->result);
                else
                        iovirt_reason_append(&j->reason, "; and the group could not be given back: ", why);
                return;
        }
        if (j->attached & LIBVIRT_ATTACH_CONFIG) {
                /* release takes it out of the config again: the record says so */
                j->result->libvirt_config = true;
                r = iovirt_record_save(j->dir, j->result);
                if (r < 0) {
                        j->result->libvirt_config = false;
                        log_warning_errno(r, "Could not note in group %d's record that its domain's config has it; "
                                          "release leaves it there: %m", j->result->group);
                }
        }
        if (j->attached & LIBVIRT_ATTACH_LIVE)
                j->memlock_r = libvirt_domain_memlock(j->uuid, &j->memlock_need, &j->memlock_have, &j->memlock_reason);
}

/* The limit first: a VM waiting for its device can map it the moment it is
 * there.  When the assignment then fails, the limit goes back. */
static void assign_work(void *p) {
        AssignJob *j = p;
        j->r = policy_raise_memlock(j->pidfd, &j->plan->holder, j->plan->consumer, j->dir, &j->before, &j->raised,
                                    &j->memlock_recorded, &j->reason);
        if (j->r < 0) {
                j->raise_failed = true;
                return;
        }
        j->r = iovirt_assign_execute(j->plan, j->dir, &j->result, &j->moves, &j->reason);
        if (j->r >= 0 && j->attach)
                attach_work(j);
        /* what this job raised, not the consumer's original: its other groups need it */
        if (j->r < 0 && j->raised)
                policy_undo_raise(j->pidfd, &j->plan->holder, &j->before, j->dir, j->memlock_recorded);
}

/* The plan, and what libvirt did: "libvirt": {domain, attached: [live, config], memlock: {need, have, covers} or
 * memlock_unknown} */
static int reply_attached(sd_bus_message *msg, const AssignJob *j) {
        _cleanup_(json_object_putp) json_object *o = plan_document(j->plan);
        json_object *l = json_object_new_object(), *where = json_object_new_array();
        if (!o || !l || !where || json_object_object_add(o, "libvirt", l) < 0) {
                json_object_put(l);
                json_object_put(where);
                return -ENOMEM;
        }
        json_object_object_add(l, "domain", json_object_new_string(j->plan->consumer + strlen(LIBVIRT_CONSUMER_PREFIX)));
        json_object_object_add(l, "uuid", json_object_new_string(j->uuid));
        if (j->attached & LIBVIRT_ATTACH_LIVE)
                json_object_array_add(where, json_object_new_string("live"));
        if (j->attached & LIBVIRT_ATTACH_CONFIG)
                json_object_array_add(where, json_object_new_string("config"));
        json_object_object_add(l, "attached", where);
        if (j->attached & LIBVIRT_ATTACH_LIVE) {
                if (j->memlock_r >= 0) {
                        json_object *ml = json_object_new_object();
                        json_object_object_add(l, "memlock", ml);
                        json_object_object_add(ml, "need", json_object_new_uint64(j->memlock_need));
                        json_object_object_add(ml, "have", json_object_new_uint64(j->memlock_have));
                        json_object_object_add(ml, "covers", json_object_new_boolean(j->memlock_r > 0));
                } else
                        json_object_object_add(l, "memlock_unknown",
                                               json_object_new_string(j->memlock_reason ? j->memlock_reason
                                                                      : "its QEMU process could not be found "
                                                                        "(libvirt's pid file)"));
        }
        return manager_reply_json(msg, o);
}

static int assign_done(Manager *m, sd_bus_message *msg, void *p) {
        AssignJob *j = p;
        const IovirtPlan *plan = j->plan;
        int r;

        bool back = !j->result;      /* nothing recorded: every function on its host driver again */
        log_moves(&j->moves);
        state_settle(m, plan->group, TAKE_PTR(j->result));
        for (size_t i = 0; i < plan->n_steps; i++)
                update_address(m, plan->steps[i].address);
        if (j->r < 0) {
                log_full_errno(LOG_ERR, j->r, NULL, "Assigning group %d to %s failed: %s", plan->group, plan->consumer,
                               strna(j->reason));
                /* the job put back what it raised, which is what another group held then: when that group
                 * was released meanwhile (its release saw this one still placed and left the limit), the
                 * consumer holds nothing now and its limit from before goes back here */
                if (back && j->raised && !manager_consumer_holds(m, plan->consumer))
                        policy_restore_memlock(plan->consumer, &plan->holder, m->state_dir);
                return sd_bus_reply_method_errorf(msg, j->raise_failed    ? IOVIRT_ERROR_FAILED
                                                       : j->attach_failed ? IOVIRT_ERROR_LIBVIRT
                                                                          : IOVIRT_ERROR_BIND_FAILED,
                                                  "%s%s", j->reason ? j->reason : strerror(-j->r),
                                                  j->attach_failed && back
                                                          ? "; the group went back to its host driver" : "");
        }
        log_info("Assigned group %d (%zu function%s) to %s", plan->group, plan->n_steps, plan->n_steps > 1 ? "s" : "",
                 plan->consumer);
        if (j->raised) {
                char limit[IOVIRT_SIZE_MAX];
                log_info("RLIMIT_MEMLOCK of process %d (%s) raised to %s", (int) plan->holder.pid, plan->consumer,
                         iovirt_size_format(plan->holder.memlock, limit));
        }
        if (j->pidfd >= 0) {
                r = manager_watch_consumer(m, plan->consumer, TAKE_FD(j->pidfd));
                if (r < 0)
                        log_warning_errno(r, "Cannot watch %s for its exit; release it by hand: %m", plan->consumer);
        }
        r = sd_bus_emit_signal(m->bus, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, "Assigned", "is",
                               (int32_t) plan->group, plan->consumer);
        if (r < 0)
                log_warning_errno(r, "Failed to emit Assigned: %m");
        if (j->attach)
                return reply_attached(msg, j);
        return reply_plan(msg, plan);
}

/* While the job runs, the group's record says who it is going to, so that
 * others are told Busy with a name, and list-assignments shows it. */
static int placeholder_record(const IovirtPlan *p, IovirtRecord **ret) {
        _cleanup_(iovirt_record_freep) IovirtRecord *rec = calloc(1, sizeof(IovirtRecord));
        if (!rec || !(rec->consumer = strdup(p->consumer)) ||
            (p->n_steps && !(rec->functions = calloc(p->n_steps, sizeof(IovirtFunctionRecord)))))
                return -ENOMEM;
        rec->group = p->group;
        rec->phase = IOVIRT_PHASE_ASSIGNING;
        rec->holder = p->holder;     /* what it will pin counts from now */
        for (; rec->n_functions < p->n_steps; rec->n_functions++) {
                IovirtFunctionRecord *f = &rec->functions[rec->n_functions];
                const IovirtPlanStep *s = &p->steps[rec->n_functions];
                memcpy(f->address, s->address, IOVIRT_ADDRESS_MAX);
                /* where it is going, as list-assignments shows it meanwhile */
                if (s->to && !(f->vfio_driver = strdup(s->to))) {
                        rec->n_functions++;
                        return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(rec);
        return 0;
}

int act_assign(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(iovirt_plan_freep) IovirtPlan *plan = NULL;
        _cleanup_(iovirt_record_freep) IovirtRecord *placeholder = NULL;
        _cleanup_(policy_facts_clear) PolicyFacts facts = { .pidfd = -EBADF };
        AssignArgs a;
        int r;

        /* the host may have changed while a password was typed: plan again */
        r = plan_or_answer(m, msg, false, &a, &facts, &plan, error);
        if (r != 0)
                return r;
        r = policy_holder(m, &facts, plan, &plan->holder);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Could not size the pinned memory of %s: %m", plan->consumer);
        int group = plan->group;
        AssignJob *j = calloc(1, sizeof(AssignJob));
        if (!j)
                return -ENOMEM;
        *j = (AssignJob) { .plan = TAKE_PTR(plan), .pidfd = TAKE_FD(facts.pidfd), .dir = m->state_dir,
                           .attach = a.domain, .persistent = a.persistent };
        if (a.domain) {
                memcpy(j->uuid, a.domain->uuid, sizeof(j->uuid));
                j->was_active = a.domain->active;
        }

        /* The placeholder goes in first: once it is there, settling the
         * result only replaces it, which cannot fail, so the group is never
         * without a record while the job or its outcome holds it. */
        r = placeholder_record(j->plan, &placeholder);
        if (r >= 0)
                r = iovirt_state_put(m->state, placeholder);
        if (r < 0) {
                assign_job_free(j);
                return r;
        }
        TAKE_PTR(placeholder);
        r = job_start(m, msg, &group, 1, assign_work, assign_done, j, assign_job_free);
        if (r < 0) {
                iovirt_state_drop(m->state, group);
                return sd_bus_error_set_errnof(error, r, "Could not start assigning group %d: %m", group);
        }
        return 1;
}

/* ---- Release and ReleaseConsumer ---- */

typedef struct ReleaseJob {
        IovirtRecord **records;      /* copies: the job's own */
        size_t n_records;
        char **notes;                /* per record: what the model says (no reset), then what happened */
        const char *dir;
        IovirtMoves moves;
        size_t n_done;               /* records released before one failed */
        char *reason;
        int r;
        bool detach;                 /* a domain consumer's running guest lets go first */
        bool detach_failed;          /* it did not: the device is still the guest's */
} ReleaseJob;

static void release_job_free(void *p) {
        ReleaseJob *j = p;
        for (size_t i = 0; i < j->n_records; i++) {
                iovirt_record_free(j->records[i]);
                free(j->notes[i]);
        }
        free(j->records);
        free(j->notes);
        iovirt_moves_clear(&j->moves);
        free(j->reason);
        free(j);
}

/* A domain consumer's group leaves its guest (and, when iovirt put it
 * there, its config) before it leaves VFIO: never unbound under a guest */
static int detach_from_domain(const IovirtRecord *rec, char **reason) {
        _cleanup_free_ IovirtAddress *functions = NULL;
        _cleanup_free_ char *why = NULL;
        const char *name = rec->consumer + strlen(LIBVIRT_CONSUMER_PREFIX);
        int r = iovirt_record_addresses(rec, &functions);
        if (r == -EINVAL)
                return iovirt_set_reason(reason, r, "Group %d's record names a function that is no PCI address, so "
                                         "what to detach from domain %s cannot be told", rec->group, name);
        if (r >= 0)
                r = libvirt_detach(name, functions, rec->n_functions, rec->libvirt_config, &why);
        if (r < 0 && r != -ENOMEM)
                return iovirt_set_reason(reason, r, "Group %d stays with domain %s: %s", rec->group, name, strna(why));
        return r;
}

static void release_work(void *p) {
        ReleaseJob *j = p;
        for (; j->n_done < j->n_records; j->n_done++) {
                _cleanup_free_ char *gone = NULL;
                const IovirtRecord *rec = j->records[j->n_done];
                if (j->detach && strncmp(rec->consumer, LIBVIRT_CONSUMER_PREFIX, strlen(LIBVIRT_CONSUMER_PREFIX)) == 0 &&
                    (j->r = detach_from_domain(rec, &j->reason)) < 0) {
                        j->detach_failed = true;
                        return;
                }
                j->r = iovirt_release_execute(j->records[j->n_done], j->dir, &j->moves, &gone, &j->reason);
                if (j->r < 0)
                        return;
                if (gone) {
                        char *n = j->notes[j->n_done];
                        if (asprintf(&j->notes[j->n_done], "%s%s%s", n ? n : "", n ? "\n" : "", gone) < 0)
                                j->notes[j->n_done] = n;       /* keep the first part */
                        else
                                free(n);
                }
        }
}

bool manager_consumer_holds(Manager *m, const char *consumer) {
        for (size_t i = 0; i < m->state->n_records; i++)
                if (streq_ptr(m->state->records[i]->consumer, consumer))
                        return true;
        return false;
}

static json_object *released_document(const IovirtRecord *rec, const char *notes) {
        json_object *o = json_object_new_object(), *fns = json_object_new_array(), *nl = json_object_new_array();
        json_object_object_add(o, "group", json_object_new_int(rec->group));
        json_object_object_add(o, "consumer", json_object_new_string(rec->consumer));
        for (size_t i = 0; i < rec->n_functions; i++)
                json_object_array_add(fns, json_object_new_string(rec->functions[i].address));
        for (const char *l = notes; l && *l;) {
                size_t n = strcspn(l, "\n");
                json_object_array_add(nl, json_object_new_string_len(l, (int) n));
                l += n + (l[n] == '\n');
        }
        json_object_object_add(o, "functions", fns);
        json_object_object_add(o, "notes", nl);
        return o;
}

static int reply_released(sd_bus_message *msg, json_object *list) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object_object_add(o, "released", list);
        return manager_reply_json(msg, o);
}

static int release_done(Manager *m, sd_bus_message *msg, void *p) {
        ReleaseJob *j = p;
        json_object *list = json_object_new_array();
        int r;

        log_moves(&j->moves);
        for (size_t i = 0; i < j->n_records; i++) {
                IovirtRecord *rec = j->records[i];
                int group = rec->group;
                for (size_t k = 0; k < rec->n_functions; k++)
                        update_address(m, rec->functions[k].address);
                if (i > j->n_done) {
                        /* not reached: as it was */
                        iovirt_state_find(m->state, group)->phase = rec->phase;
                        continue;
                }
                if (i == j->n_done) {
                        /* it failed: what did not come back stays recorded */
                        log_full_errno(LOG_ERR, j->r, NULL, "Releasing group %d from %s failed: %s", group,
                                       rec->consumer, strna(j->reason));
                        j->records[i] = NULL;
                        state_settle(m, group, rec);
                        continue;
                }
                log_info("Released group %d from %s%s%s", group, rec->consumer[0] ? rec->consumer : "an unknown consumer",
                         j->notes[i] ? ": " : "", j->notes[i] ? j->notes[i] : "");
                json_object_array_add(list, released_document(rec, j->notes[i]));
                state_settle(m, group, NULL);
                /* its last group: the limit it had before */
                if (!manager_consumer_holds(m, rec->consumer))
                        policy_restore_memlock(rec->consumer, &rec->holder, m->state_dir);
                r = sd_bus_emit_signal(m->bus, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, "Released", "is",
                                       (int32_t) group, rec->consumer);
                if (r < 0)
                        log_warning_errno(r, "Failed to emit Released: %m");
        }
        if (!msg || j->r < 0) {      /* no request: a consumer's exit released them */
                json_object_put(list);
                return msg ? sd_bus_reply_method_errorf(msg, j->detach_failed ? IOVIRT_ERROR_LIBVIRT
                                                                              : IOVIRT_ERROR_BIND_FAILED,
                                                        "%s", j->reason ? j->reason : strerror(-j->r))
                           : 0;
        }
        return reply_released(msg, list);
}

/* Starts a job giving back each of the groups, in order */
static int start_release(Manager *m, sd_bus_message *msg, const int *groups, size_t n, bool detach,
                         sd_bus_error *error) {
        ReleaseJob *j = calloc(1, sizeof(ReleaseJob));
        int r;

        if (!j)
                return -ENOMEM;
        j->dir = m->state_dir;
        j->detach = detach;
        j->records = calloc(n, sizeof(IovirtRecord *));
        j->notes = calloc(n, sizeof(char *));
        if (!j->records || !j->notes) {
                release_job_free(j);
                return -ENOMEM;
        }
        for (; j->n_records < n; j->n_records++) {
                const IovirtRecord *rec = iovirt_state_find(m->state, groups[j->n_records]);
                r = iovirt_record_copy(rec, &j->records[j->n_records]);
                if (r >= 0)
                        r = iovirt_release_notes(m->host, rec, &j->notes[j->n_records]);
                if (r < 0) {
                        j->n_records++;
                        release_job_free(j);
                        return r;
                }
        }
        r = job_start(m, msg, groups, n, release_work, release_done, j, release_job_free);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Could not start the release: %m");
        for (size_t i = 0; i < n; i++)
                iovirt_state_find(m->state, groups[i])->phase = IOVIRT_PHASE_RELEASING;
        return 1;
}

int manager_release_groups(Manager *m, const int *groups, size_t n) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = start_release(m, NULL, groups, n, false, &error);
        sd_bus_error_free(&error);
        return r < 0 ? r : 0;
}

/* A group libvirt binds (managed='yes') is libvirt's to give back, when its domain stops */
static int libvirt_managed(const IovirtRecord *rec, sd_bus_error *error) {
        const char *name = rec->consumer + strlen(LIBVIRT_CONSUMER_PREFIX);
        return sd_bus_error_setf(error, IOVIRT_ERROR_IN_USE,
                                 "Group %d is held by %s, whose libvirt bound it (managed='yes'): libvirt gives it "
                                 "back when the domain stops, and iovirt forgets it then; iovirt does not move it. "
                                 "Should the record outlive the domain (libvirtd lost), 'iovirtctl libvirt-hook %s "
                                 "release end </dev/null' forgets it", rec->group, rec->consumer, name);
}

/* The recorded group TARGET names, or an error (NoSuchDevice, NotAssigned, Busy) */
static int release_target(Manager *m, sd_bus_message *msg, int *ret, bool *interactive, sd_bus_error *error) {
        _cleanup_free_ char *reason = NULL;
        const char *target;
        int group, interactive_arg, r;
        size_t device;

        r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "sb", &target, &interactive_arg);
        if (r >= 0)
                r = check_target(target, error);
        if (r >= 0)
                r = manager_accepting(m, error);
        if (r < 0)
                return r;
        /* a recorded group may have left the host; its record still names it */
        if (strncmp(target, "group:", 6) == 0 && iovirt_parse_int(target + 6, &group) >= 0 &&
            iovirt_state_find(m->state, group))
                r = 0;
        else
                r = iovirt_target_resolve(m->host, target, &group, &device, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, r == -ENODEV ? IOVIRT_ERROR_NO_SUCH_DEVICE : IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "%s", reason ? reason : "No such device");
        if (group < 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_NOT_ASSIGNED,
                                         "%s is in no IOMMU group, so it cannot have been assigned", target);
        const IovirtRecord *rec = iovirt_state_find(m->state, group);
        if (!rec)
                return sd_bus_error_setf(error, IOVIRT_ERROR_NOT_ASSIGNED,
                                         "Group %d is not assigned; iovirtctl list-assignments shows what is", group);
        if (job_group_locked(m, group))
                return sd_bus_error_setf(error, IOVIRT_ERROR_BUSY,
                                         "Group %d is being %s %s right now; try again when that has finished", group,
                                         rec->phase == IOVIRT_PHASE_RELEASING ? "given back by" : "assigned to",
                                         rec->consumer[0] ? rec->consumer : "an unknown consumer");
        if (rec->phase == IOVIRT_PHASE_LIBVIRT)
                return libvirt_managed(rec, error);
        *ret = group;
        *interactive = interactive_arg;
        return 0;
}

int prepare_release(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error) {
        int group;
        return release_target(userdata, msg, &group, interactive, error);
}

static bool owned_by(const IovirtRecord *rec, uid_t uid) {
        return (rec->holder.known ? rec->holder.uid : 0) == uid;
}

const char *escalate_release(sd_bus_message *msg, void *userdata, uid_t uid) {
        Manager *m = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        bool interactive;
        int group, r = release_target(m, msg, &group, &interactive, &error);
        sd_bus_error_free(&error);
        const IovirtRecord *rec = r >= 0 ? iovirt_state_find(m->state, group) : NULL;
        /* gone meanwhile: act answers that; the stricter action meanwhile */
        return rec && owned_by(rec, uid) ? NULL : IOVIRT_ACTION_RELEASE_ANY;
}

int act_release(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        bool interactive;
        int group, r = release_target(userdata, msg, &group, &interactive, error);
        return r < 0 ? r : start_release(userdata, msg, &group, 1, true, error);
}

/* The groups consumer holds; Busy when one of them is in a transaction */
static int consumer_groups(Manager *m, sd_bus_message *msg, int **ret, size_t *n, bool *interactive,
                           sd_bus_error *error) {
        const char *consumer;
        int interactive_arg, r;

        r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "sb", &consumer, &interactive_arg);
        if (r >= 0)
                r = check_consumer(consumer, error);
        if (r >= 0)
                r = manager_accepting(m, error);
        if (r >= 0)
                r = manager_consumer_groups(m, consumer, ret, n, error);
        if (r < 0)
                return r;
        /* a bare name assign took for a libvirt domain's: that domain's, as recorded (no libvirt call) */
        if (*n == 0 && !strchr(consumer, ':')) {
                _cleanup_free_ char *domain = NULL;
                if (asprintf(&domain, LIBVIRT_CONSUMER_PREFIX "%s", consumer) < 0)
                        return -ENOMEM;
                *ret = mfree(*ret);
                r = manager_consumer_groups(m, domain, ret, n, error);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < *n; i++) {
                const IovirtRecord *rec = iovirt_state_find(m->state, (*ret)[i]);
                if (rec && rec->phase == IOVIRT_PHASE_LIBVIRT)
                        return libvirt_managed(rec, error);
        }
        *interactive = interactive_arg;
        return 0;
}

int manager_consumer_groups(Manager *m, const char *consumer, int **ret, size_t *n, sd_bus_error *error) {
        _cleanup_free_ int *groups = calloc(m->state->n_records + 1, sizeof(int));
        if (!groups)
                return -ENOMEM;
        *n = 0;
        for (size_t i = 0; i < m->state->n_records; i++) {
                const IovirtRecord *rec = m->state->records[i];
                if (!streq_ptr(rec->consumer, consumer))
                        continue;
                if (job_group_locked(m, rec->group))
                        return sd_bus_error_setf(error, IOVIRT_ERROR_BUSY,
                                                 "Group %d of %s is in a transaction right now; try again when that "
                                                 "has finished", rec->group, consumer);
                groups[(*n)++] = rec->group;
        }
        *ret = TAKE_PTR(groups);
        return 0;
}

int prepare_release_consumer(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error) {
        _cleanup_free_ int *groups = NULL;
        size_t n;
        int r = consumer_groups(userdata, msg, &groups, &n, interactive, error);
        if (r < 0)
                return r;
        if (n > 0)
                return 0;
        /* nothing held: a retried release succeeds, changing nothing */
        r = reply_released(msg, json_object_new_array());
        return r < 0 ? r : 1;
}

const char *escalate_release_consumer(sd_bus_message *msg, void *userdata, uid_t uid) {
        Manager *m = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ int *groups = NULL;
        bool interactive;
        size_t n = 0;
        int r = consumer_groups(m, msg, &groups, &n, &interactive, &error);
        sd_bus_error_free(&error);
        if (r < 0)
                return IOVIRT_ACTION_RELEASE_ANY;
        for (size_t i = 0; i < n; i++)
                if (!owned_by(iovirt_state_find(m->state, groups[i]), uid))
                        return IOVIRT_ACTION_RELEASE_ANY;
        return NULL;
}

int act_release_consumer(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ int *groups = NULL;
        bool interactive;
        size_t n;
        int r = consumer_groups(userdata, msg, &groups, &n, &interactive, error);
        if (r < 0)
                return r;
        if (n == 0)
                return reply_released(msg, json_object_new_array());
        return start_release(userdata, msg, groups, n, true, error);
}

int method_list_assignments(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(issas)");
        for (size_t i = 0; r >= 0 && i < m->state->n_records; i++) {
                const IovirtRecord *rec = m->state->records[i];
                r = sd_bus_message_open_container(reply, 'r', "issas");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "iss", rec->group, rec->consumer, iovirt_phase_name(rec->phase));
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'a', "s");
                for (size_t k = 0; r >= 0 && k < rec->n_functions; k++)
                        r = sd_bus_message_append(reply, "s", rec->functions[k].address);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r < 0 ? r : sd_bus_send(NULL, reply, NULL);
}

int method_describe_assignments(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        if (manager_model_ready(m, error) < 0)
                return -EBUSY;
        _cleanup_(json_object_putp) json_object *o = iovirt_assignments_to_json(m->host, m->state);
        return manager_reply_json(msg, o);
}

/* ---- for other transactions made of assignments (iovirtd-domain.c) ---- */

int assign_plan(Manager *m, const char *target, const char *consumer, const PolicyAsk *ask, const AssignPlanHow *how,
                PolicyFacts *facts, IovirtPlan **ret, sd_bus_error *error) {
        AssignArgs a = { .target = target, .consumer = consumer, .ask = *ask, .how = *how };
        int r = check_target(target, error);
        if (r >= 0)
                r = check_consumer(consumer, error);
        return r < 0 ? r : make_plan(m, &a, facts, ret, error);
}

json_object *assign_plan_document(const IovirtPlan *p) {
        return plan_document(p);
}

int assign_placeholder(Manager *m, const IovirtPlan *p) {
        _cleanup_(iovirt_record_freep) IovirtRecord *rec = NULL;
        int r = placeholder_record(p, &rec);
        if (r >= 0)
                r = iovirt_state_put(m->state, rec);
        if (r >= 0)
                TAKE_PTR(rec);
        return r;
}

void assign_settle(Manager *m, const IovirtPlan *p, IovirtRecord *result) {
        state_settle(m, p->group, result);
        for (size_t i = 0; i < p->n_steps; i++)
                update_address(m, p->steps[i].address);
}

void assign_log_moves(const IovirtMoves *moves) {
        log_moves(moves);
}

int manager_start_release(Manager *m, sd_bus_message *msg, const int *groups, size_t n, sd_bus_error *error) {
        /* the hook's, at "release end": the domain is gone, and libvirt waits on the hook */
        return start_release(m, msg, groups, n, false, error);
}
