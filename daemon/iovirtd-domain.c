/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <syslog.h>
#include <time.h>

#include "iovirt-domain.h"
#include "iovirt-json.h"
#include "iovirt-memlock.h"
#include "iovirt-names.h"
#include "iovirt-transaction.h"
#include "iovirtd-assign.h"
#include "iovirtd-domain.h"
#include "iovirtd-job.h"
#include "iovirtd-log.h"

/* libvirt's qemu hook, through iovirtd (data/libvirt/hooks/qemu.d/iovirt
 * calls iovirtctl libvirt-hook, which calls these):
 *
 *  - PrepareDomain (prepare begin): the domain's managed='no' hostdevs are
 *    assigned to "domain:NAME", all of them or none, with the policy
 *    applied (its memory, vIOMMU, hard limit and placement come from the
 *    XML); its managed='yes' hostdevs are planned, not bound (libvirt binds
 *    those), so that a device the host needs, or another consumer holds,
 *    refuses the start before libvirt touches it;
 *  - ReleaseDomain (release end): what was prepared goes back; nothing
 *    prepared is nothing to do (a retry).
 *
 * The hook waits on the answer while libvirtd waits on the hook, holding
 * the domain: nothing answering a hook calls libvirt, and a hook is never
 * told Busy to wait for a job that may be calling libvirt about the same
 * domain (ReleaseDomain defers instead).  Assign's domain consumers and
 * StartedDomain's attach (below) call libvirt, on jobs' threads. */

/* What iovirtd keeps of libvirt's domains */

/* A lookup answers the one call that asked for it: its dispatch again
 * after the lookup, and its plan again after polkit.  Another call looks
 * again: a domain may have stopped, started or been defined meanwhile. */
#define SEEN_MAX 64

typedef struct DomainSeen {
        char *sender;            /* the call's: its sender and cookie */
        uint64_t cookie;
        char *asked;             /* the consumer as named in the call */
        char *consumer;          /* "domain:NAME" */
        int r;                   /* the lookup's: 0, or why there is no domain */
        char *reason;
        LibvirtDomain domain;
} DomainSeen;

struct Domains {
        DomainSeen seen[SEEN_MAX];       /* the newest last */
        size_t n;
        char **releasing;                /* domains whose release end came while a job held a group of theirs */
        size_t n_releasing;
};

static Domains *domains_get(Manager *m) {
        if (!m->domains)
                m->domains = calloc(1, sizeof(Domains));
        return m->domains;
}

typedef struct DomainRequest {
        const char *name, *xml;
        int interactive;
        IovirtDomain *domain;
        char *consumer;
        PolicyAsk ask;
} DomainRequest;

static void domain_request_clear(DomainRequest *d) {
        iovirt_domain_free(d->domain);
        free(d->consumer);
        *d = (DomainRequest) {};
}

static int read_domain_request(Manager *m, sd_bus_message *msg, DomainRequest *d, sd_bus_error *error) {
        _cleanup_free_ char *reason = NULL;
        int r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "ssb", &d->name, &d->xml, &d->interactive);
        if (r >= 0)
                r = manager_accepting(m, error);
        if (r < 0)
                return r;
        r = iovirt_domain_parse(d->xml, strlen(d->xml), &d->domain, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT, "The domain XML of %.64s: %s", d->name,
                                         reason ? reason : strerror(-r));
        if (!streq_ptr(d->domain->name, d->name))
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "The hook names domain '%.64s', its XML '%.64s': the XML on stdin must be "
                                         "that domain's (virsh dumpxml %.64s)", d->name, d->domain->name, d->name);
        uint32_t uid;
        r = assign_caller_uid(msg, &uid);
        if (r < 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_NOT_AUTHORIZED,
                                         "Cannot tell who is calling (%s): denied", strerror(-r));
        if (asprintf(&d->consumer, LIBVIRT_CONSUMER_PREFIX "%s", d->name) < 0) {
                d->consumer = NULL;
                return -ENOMEM;
        }
        d->ask = (PolicyAsk) { .numa_policy = -1, .caller_uid = uid };
        domain_ask(d->domain, &d->ask);
        return 0;
}

void domain_ask(const IovirtDomain *dom, PolicyAsk *ask) {
        ask->memory = dom->max_memory > dom->memory ? dom->max_memory : dom->memory;
        ask->viommu = dom->viommu;
        ask->hard_limit = dom->hard_limit;
        ask->numa_node = -1;
        ask->nodes = dom->nodeset;
        ask->cpus = dom->nodeset ? NULL : dom->cpuset;
        ask->placement_from = dom->nodeset ? "its <numatune> nodeset" : "its <vcpu cpuset>";
}

typedef struct DomainPlans {
        IovirtPlan **plans;          /* managed='no': the groups to assign, each once */
        size_t n;
        IovirtPlan **checked;        /* managed='yes': planned, not executed */
        bool *hold;                  /* per checked: not recorded for the domain yet (a libvirt record to write) */
        size_t n_checked;
} DomainPlans;

static void domain_plans_clear(DomainPlans *p) {
        for (size_t i = 0; i < p->n; i++)
                iovirt_plan_free(p->plans[i]);
        for (size_t i = 0; i < p->n_checked; i++)
                iovirt_plan_free(p->checked[i]);
        free(p->plans);
        free(p->checked);
        free(p->hold);
        *p = (DomainPlans) {};
}

/* A managed='yes' group libvirt binds for the domain: recorded as the domain's already? */
static bool held_for(Manager *m, const char *consumer, int group) {
        const IovirtRecord *rec = iovirt_state_find(m->state, group);
        return rec && rec->phase == IOVIRT_PHASE_LIBVIRT && streq_ptr(rec->consumer, consumer);
}

/* -1: group not planned yet; 0: planned with the same managed; 1: with the other */
static int group_managed_differs(const DomainPlans *p, int group, bool managed) {
        for (size_t i = 0; i < p->n; i++)
                if (p->plans[i]->group == group)
                        return managed;
        for (size_t i = 0; i < p->n_checked; i++)
                if (p->checked[i]->group == group)
                        return !managed;
        return -1;
}

/* A refused plan as a refusal of the domain's start, naming the hostdev */
static int refuse(const DomainRequest *d, const IovirtDomainHostdev *h, const IovirtPlan *p, sd_bus_error *error) {
        const IovirtPlanCheck *refusal = iovirt_plan_refusal(p);
        _cleanup_free_ char *text = iovirt_plan_refusal_text(p);
        char addr[IOVIRT_ADDRESS_MAX];
        iovirt_address_format(&h->address, addr);
        log_notice("Refused to start domain %s: %s: %s", d->name, addr, text ? text : refusal->message);
        return sd_bus_error_setf(error, manager_reason_error(refusal->reason), "%s (%s hostdev of domain %s): %s", addr,
                                 h->managed ? "managed" : "unmanaged", d->name, text ? text : refusal->message);
}

/* The same for a device of a pool its metadata asks for */
static int refuse_pool(const DomainRequest *d, const char *pool, const IovirtPlan *p, sd_bus_error *error) {
        const IovirtPlanCheck *refusal = iovirt_plan_refusal(p);
        _cleanup_free_ char *text = iovirt_plan_refusal_text(p);
        log_notice("Refused to start domain %s: pool %s: %s", d->name, pool, text ? text : refusal->message);
        return sd_bus_error_setf(error, manager_reason_error(refusal->reason),
                                 "No device of pool '%s' (asked for in domain %s's metadata) may be taken: %s", pool,
                                 d->name, text ? text : refusal->message);
}

/* Every hostdev planned, then every pool request; a refusal of any refuses the whole start */
static int plan_domain(Manager *m, const DomainRequest *d, DomainPlans *ret, sd_bus_error *error) {
        _cleanup_(domain_plans_clear) DomainPlans p = {};
        const IovirtDomain *dom = d->domain;
        if (!(p.plans = calloc(dom->n_hostdevs + dom->n_pools + 1, sizeof(IovirtPlan *))) ||
            !(p.checked = calloc(dom->n_hostdevs + 1, sizeof(IovirtPlan *))) ||
            !(p.hold = calloc(dom->n_hostdevs + 1, sizeof(bool))))
                return -ENOMEM;
        /* the groups planned before count as the domain's: one budget for all of them */
        PolicyAsk ask = d->ask;
        for (size_t i = 0; i < dom->n_hostdevs; i++) {
                const IovirtDomainHostdev *h = &dom->hostdevs[i];
                _cleanup_(policy_facts_clear) PolicyFacts facts = { .pidfd = -EBADF };
                _cleanup_(iovirt_plan_freep) IovirtPlan *plan = NULL;
                char addr[IOVIRT_ADDRESS_MAX];
                iovirt_address_format(&h->address, addr);
                size_t device = iovirt_host_find_address(m->host, &h->address);
                if (device == IOVIRT_NONE)
                        return sd_bus_error_setf(error, IOVIRT_ERROR_NO_SUCH_DEVICE,
                                                 "Domain %s has a hostdev %s, which is not on this host; remove it "
                                                 "(virsh edit %s) or check that the device is there (lspci -s %s)",
                                                 d->name, addr, d->name, addr);
                int mixed = group_managed_differs(&p, m->host->devices[device].iommu_group, h->managed);
                if (mixed > 0)
                        return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                                 "Domain %s names functions of IOMMU group %d both managed='yes' and "
                                                 "managed='no': the group moves as one, so make every hostdev of it "
                                                 "managed='no' (iovirt binds them) or every one managed='yes' "
                                                 "(libvirt does)", d->name, m->host->devices[device].iommu_group);
                if (mixed == 0)
                        continue;     /* another function of a group planned already */
                const IovirtRecord *rec = iovirt_state_find(m->state, m->host->devices[device].iommu_group);
                if (h->managed && rec && streq_ptr(rec->consumer, d->consumer) && rec->phase != IOVIRT_PHASE_LIBVIRT)
                        return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                                 "Domain %s names %s managed='yes', but iovirt holds its group %d "
                                                 "bound for the domain already; make the hostdev managed='no', or "
                                                 "give the group back first (iovirtctl release group:%d)", d->name,
                                                 addr, rec->group, rec->group);
                AssignPlanHow how = { .libvirt_managed = h->managed };
                int r = assign_plan(m, addr, d->consumer, &ask, &how, &facts, &plan, error);
                if (r < 0)
                        return r;
                if (iovirt_plan_refusal(plan))
                        return refuse(d, h, plan, error);
                r = policy_holder(m, &facts, plan, &plan->holder);
                if (r < 0)
                        return r;
                if (h->managed) {
                        /* who holds it, so that status shows it and nobody else takes it meanwhile */
                        p.hold[p.n_checked] = !held_for(m, d->consumer, plan->group);
                        p.checked[p.n_checked++] = TAKE_PTR(plan);
                } else if (held_for(m, d->consumer, plan->group))
                        return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                                 "Domain %s has group %d recorded as bound by libvirt "
                                                 "(managed='yes'), and now names %s managed='no'; stop the domain "
                                                 "first, so that the group is given back", d->name, plan->group,
                                                 addr);
                else {
                        if (!plan->done)
                                ask.pending_functions += (unsigned) plan->n_steps;
                        p.plans[p.n++] = TAKE_PTR(plan);
                }
        }
        /* then one device for each pool request of its metadata, none that the domain took above */
        for (size_t i = 0; i < dom->n_pools; i++) {
                _cleanup_(policy_facts_clear) PolicyFacts facts = { .pidfd = -EBADF };
                _cleanup_(iovirt_plan_freep) IovirtPlan *plan = NULL;
                _cleanup_free_ char *target = NULL;
                _cleanup_free_ int *taken = calloc(p.n + p.n_checked + 1, sizeof(int));
                size_t n_taken = 0;
                if (!taken || asprintf(&target, "pool:%s", dom->pools[i]) < 0)
                        return -ENOMEM;
                for (size_t k = 0; k < p.n + p.n_checked; k++)
                        taken[n_taken++] = k < p.n ? p.plans[k]->group : p.checked[k - p.n]->group;
                sd_bus_error why = SD_BUS_ERROR_NULL;
                AssignPlanHow how = { .exclude = taken, .n_exclude = n_taken };
                int r = assign_plan(m, target, d->consumer, &ask, &how, &facts, &plan, &why);
                if (r < 0 && sd_bus_error_is_set(&why))
                        r = sd_bus_error_setf(error, why.name, "Domain %s asks for a device of pool '%s' in its "
                                              "metadata: %s", d->name, dom->pools[i], why.message);
                sd_bus_error_free(&why);
                if (r < 0)
                        return r;
                if (iovirt_plan_refusal(plan))
                        return refuse_pool(d, dom->pools[i], plan, error);
                r = policy_holder(m, &facts, plan, &plan->holder);
                if (r < 0)
                        return r;
                if (!plan->done)
                        ask.pending_functions += (unsigned) plan->n_steps;
                /* attached once the domain runs: its record says so from the first write, should iovirtd restart */
                plan->libvirt_attach = true;
                p.plans[p.n++] = TAKE_PTR(plan);
        }
        *ret = p;
        p = (DomainPlans) {};
        return 0;
}

/* The plans' documents; NULL when memory ran out */
static json_object *plans_array(IovirtPlan *const *plans, size_t n) {
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();
        for (size_t i = 0; a && i < n; i++) {
                json_object *o = assign_plan_document(plans[i]);
                if (!o || json_object_array_add(a, o) < 0) {
                        json_object_put(o);
                        return NULL;
                }
        }
        return TAKE_PTR(a);
}

static json_object *domain_document(const DomainRequest *d, const DomainPlans *p) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *prepared = plans_array(p->plans, p->n), *checked = plans_array(p->checked, p->n_checked);
        if (!o || !prepared || !checked || json_object_object_add(o, "prepared", prepared) < 0) {
                json_object_put(prepared);
                json_object_put(checked);
                return NULL;
        }
        if (json_object_object_add(o, "checked", checked) < 0) {
                json_object_put(checked);
                return NULL;
        }
        json_object_object_add(o, "domain", json_object_new_string(d->name));
        json_object_object_add(o, "consumer", json_object_new_string(d->consumer));
        return TAKE_PTR(o);
}

static int reply_domain(sd_bus_message *msg, const DomainRequest *d, const DomainPlans *p) {
        _cleanup_(json_object_putp) json_object *o = domain_document(d, p);
        return o ? manager_reply_json(msg, o) : -ENOMEM;
}

/* The plans with something to do: groups to bind, libvirt's to record */
static size_t to_do(const DomainPlans *p) {
        size_t n = 0;
        for (size_t i = 0; i < p->n; i++)
                n += !p->plans[i]->done;
        for (size_t i = 0; i < p->n_checked; i++)
                n += p->hold[i];
        return n;
}

int prepare_prepare_domain(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error) {
        _cleanup_(domain_request_clear) DomainRequest d = {};
        _cleanup_(domain_plans_clear) DomainPlans p = {};
        int r = read_domain_request(userdata, msg, &d, error);
        if (r >= 0)
                r = plan_domain(userdata, &d, &p, error);
        if (r < 0)
                return r;
        if (to_do(&p) == 0) {
                /* checked only, or prepared already (a retry): answered without a password */
                r = reply_domain(msg, &d, &p);
                return r < 0 ? r : 1;
        }
        *interactive = d.interactive;
        return 0;
}

typedef struct DomainJob {
        DomainRequest request;
        DomainPlans plans;
        const char *dir;
        IovirtRecord **results;      /* parallel to plans.plans */
        IovirtRecord **held;         /* parallel to plans.checked: libvirt's groups recorded */
        IovirtMoves moves;
        char *reason;
        int r;
} DomainJob;

static void domain_job_free(void *p) {
        DomainJob *j = p;
        for (size_t i = 0; j->results && i < j->plans.n; i++)
                iovirt_record_free(j->results[i]);
        for (size_t i = 0; j->held && i < j->plans.n_checked; i++)
                iovirt_record_free(j->held[i]);
        free(j->results);
        free(j->held);
        domain_plans_clear(&j->plans);
        domain_request_clear(&j->request);
        iovirt_moves_clear(&j->moves);
        free(j->reason);
        free(j);
}

/* All or none: when one group cannot be assigned, those assigned before go
 * back; one that cannot keeps its record (releasing), and says so. */
static void domain_work(void *p) {
        DomainJob *j = p;
        size_t done = 0;
        for (; done < j->plans.n; done++) {
                const IovirtPlan *plan = j->plans.plans[done];
                if (plan->done)
                        continue;
                j->r = iovirt_assign_execute(plan, j->dir, &j->results[done], &j->moves, &j->reason);
                if (j->r < 0)
                        break;
        }
        /* then libvirt's, recorded: nothing moves */
        size_t held = 0;
        for (; j->r >= 0 && held < j->plans.n_checked; held++)
                if (j->plans.hold[held])
                        j->r = iovirt_libvirt_hold(j->plans.checked[held], j->dir, &j->held[held], &j->reason);
        if (j->r >= 0)
                return;
        while (held-- > 0)
                if (j->held[held] && iovirt_record_remove(j->dir, j->held[held]->group) >= 0)
                        j->held[held] = iovirt_record_free(j->held[held]);
        while (done-- > 0) {
                _cleanup_free_ char *notes = NULL, *why = NULL;
                IovirtRecord *rec = j->results[done];
                if (!rec)
                        continue;
                if (iovirt_release_execute(rec, j->dir, &j->moves, &notes, &why) >= 0)
                        j->results[done] = iovirt_record_free(rec);
                else {
                        char *r = j->reason;
                        if (asprintf(&j->reason, "%s\n%s", strna(r), strna(why)) < 0)
                                j->reason = r;
                        else
                                free(r);
                }
        }
}

static int domain_done(Manager *m, sd_bus_message *msg, void *p) {
        DomainJob *j = p;
        assign_log_moves(&j->moves);
        for (size_t i = 0; i < j->plans.n; i++)
                if (!j->plans.plans[i]->done)
                        assign_settle(m, j->plans.plans[i], TAKE_PTR(j->results[i]));
        for (size_t i = 0; i < j->plans.n_checked; i++)
                if (j->plans.hold[i])
                        assign_settle(m, j->plans.checked[i], TAKE_PTR(j->held[i]));
        if (j->r < 0) {
                log_full_errno(LOG_ERR, j->r, NULL, "Preparing domain %s failed: %s", j->request.name, strna(j->reason));
                return sd_bus_reply_method_errorf(msg, IOVIRT_ERROR_BIND_FAILED,
                                                  "Preparing domain %s failed, and what was bound for it went back "
                                                  "(or is named below, with how to finish it): %s", j->request.name,
                                                  j->reason ? j->reason : strerror(-j->r));
        }
        size_t n = to_do(&j->plans);
        log_info("Prepared domain %s: %zu group%s", j->request.name, n, n == 1 ? "" : "s");
        for (size_t i = 0; i < j->plans.n; i++) {
                if (j->plans.plans[i]->done)
                        continue;
                int r = sd_bus_emit_signal(m->bus, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, "Assigned", "is",
                                           (int32_t) j->plans.plans[i]->group, j->request.consumer);
                if (r < 0)
                        log_warning_errno(r, "Failed to emit Assigned: %m");
        }
        return reply_domain(msg, &j->request, &j->plans);
}

int act_prepare_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(domain_request_clear) DomainRequest d = {};
        _cleanup_(domain_plans_clear) DomainPlans p = {};
        /* the host may have changed while a password was typed: plan again */
        int r = read_domain_request(m, msg, &d, error);
        if (r >= 0)
                r = plan_domain(m, &d, &p, error);
        if (r < 0)
                return r;
        if (to_do(&p) == 0)
                return reply_domain(msg, &d, &p);

        _cleanup_free_ int *groups = calloc(p.n + p.n_checked + 1, sizeof(int));
        DomainJob *j = calloc(1, sizeof(DomainJob));
        IovirtRecord **results = calloc(p.n + 1, sizeof(IovirtRecord *));
        IovirtRecord **held = calloc(p.n_checked + 1, sizeof(IovirtRecord *));
        if (!groups || !j || !results || !held) {
                free(j);
                free(results);
                free(held);
                return -ENOMEM;
        }
        size_t n_groups = 0;
        for (size_t i = 0; r >= 0 && i < p.n + p.n_checked; i++) {
                const IovirtPlan *plan = i < p.n ? p.plans[i] : p.checked[i - p.n];
                if (i < p.n ? plan->done : !p.hold[i - p.n])
                        continue;
                r = assign_placeholder(m, plan);
                if (r >= 0)
                        groups[n_groups++] = plan->group;
        }
        if (r < 0) {
                for (size_t i = 0; i < n_groups; i++)
                        iovirt_state_drop(m->state, groups[i]);
                free(j);
                free(results);
                free(held);
                return r;
        }
        *j = (DomainJob) { .request = d, .plans = p, .dir = m->state_dir, .results = results, .held = held };
        d = (DomainRequest) {};
        p = (DomainPlans) {};
        r = job_start(m, msg, groups, n_groups, domain_work, domain_done, j, domain_job_free);
        if (r < 0) {
                for (size_t i = 0; i < n_groups; i++)
                        iovirt_state_drop(m->state, groups[i]);
                return sd_bus_error_set_errnof(error, r, "Could not start preparing the domain: %m");
        }
        return 1;
}

/* ---- ReleaseDomain ---- */

/* The groups "domain:NAME" holds; Busy when one is in a transaction */
static int domain_groups(Manager *m, sd_bus_message *msg, int **ret, size_t *n, bool *interactive,
                         sd_bus_error *error) {
        _cleanup_free_ char *consumer = NULL;
        const char *name;
        int interactive_arg;
        int r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "sb", &name, &interactive_arg);
        if (r >= 0)
                r = manager_accepting(m, error);
        if (r < 0)
                return r;
        if (asprintf(&consumer, LIBVIRT_CONSUMER_PREFIX "%s", name) < 0)
                return -ENOMEM;
        r = iovirt_consumer_valid(consumer, NULL);
        if (r < 0)
                return r == -ENOMEM ? r
                                    : sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                                        "'%.64s' is no domain name iovirt takes", name);
        _cleanup_free_ int *groups = calloc(m->state->n_records + 1, sizeof(int));
        if (!groups)
                return -ENOMEM;
        *n = 0;
        for (size_t i = 0; i < m->state->n_records; i++)
                if (streq_ptr(m->state->records[i]->consumer, consumer))
                        groups[(*n)++] = m->state->records[i]->group;
        *ret = TAKE_PTR(groups);
        *interactive = interactive_arg;
        return 0;
}

static int reply_nothing(sd_bus_message *msg) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object_object_add(o, "released", json_object_new_array());
        return manager_reply_json(msg, o);
}

int prepare_release_domain(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error) {
        _cleanup_free_ int *groups = NULL;
        size_t n;
        int r = domain_groups(userdata, msg, &groups, &n, interactive, error);
        if (r < 0)
                return r;
        if (n > 0)
                return 0;
        /* a domain that got nothing: nothing to do, the same answer each time */
        r = reply_nothing(msg);
        return r < 0 ? r : 1;
}

const char *escalate_release_domain(sd_bus_message *msg, void *userdata, uid_t uid) {
        Manager *m = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ int *groups = NULL;
        bool interactive;
        size_t n = 0;
        int r = domain_groups(m, msg, &groups, &n, &interactive, &error);
        sd_bus_error_free(&error);
        if (r < 0)
                return IOVIRT_ACTION_RELEASE_ANY;
        for (size_t i = 0; i < n; i++) {
                const IovirtRecord *rec = iovirt_state_find(m->state, groups[i]);
                if ((rec->holder.known ? rec->holder.uid : 0) != uid)
                        return IOVIRT_ACTION_RELEASE_ANY;
        }
        return NULL;
}

/* libvirt's groups of the domain leave the state at once: libvirt gives
 * the devices back itself, iovirt only forgets who held them.  The rest
 * stay in groups[0..*n). */
static int forget_libvirt_groups(Manager *m, int *groups, size_t *n) {
        size_t kept = 0;
        for (size_t i = 0; i < *n; i++) {
                const IovirtRecord *rec = iovirt_state_find(m->state, groups[i]);
                if (rec->phase != IOVIRT_PHASE_LIBVIRT) {
                        groups[kept++] = groups[i];
                        continue;
                }
                int r = iovirt_record_remove(m->state_dir, groups[i]);
                if (r < 0)
                        return r;
                log_info("Group %d is no longer held by %s (libvirt's, managed='yes')", groups[i], rec->consumer);
                r = sd_bus_emit_signal(m->bus, IOVIRT_OBJECT_PATH, IOVIRT_MANAGER_INTERFACE, "Released", "is",
                                       (int32_t) groups[i], rec->consumer);
                if (r < 0)
                        log_warning_errno(r, "Failed to emit Released: %m");
                iovirt_state_drop(m->state, groups[i]);
        }
        *n = kept;
        return 0;
}

static bool any_locked(Manager *m, const int *groups, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (job_group_locked(m, groups[i]))
                        return true;
        return false;
}

/* release end while a job holds a group of the domain: that job may be
 * calling libvirt about the domain, which libvirt holds until the hook
 * returns.  The hook is answered now; the release follows the job. */
static int defer_release(Manager *m, sd_bus_message *msg, const char *name, const int *groups, size_t n) {
        Domains *d = domains_get(m);
        char **list = d ? reallocarray(d->releasing, d->n_releasing + 1, sizeof(char *)) : NULL;
        if (!list)
                return -ENOMEM;
        d->releasing = list;
        if (asprintf(&d->releasing[d->n_releasing], LIBVIRT_CONSUMER_PREFIX "%s", name) < 0)
                return -ENOMEM;
        d->n_releasing++;
        log_info("Releasing domain %s once the transaction on its groups has ended", name);
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *a = json_object_new_array();
        if (!o || !a || json_object_object_add(o, "deferred", a) < 0) {
                json_object_put(a);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                json_object_array_add(a, json_object_new_int(groups[i]));
        json_object_object_add(o, "released", json_object_new_array());
        return manager_reply_json(msg, o);
}

/* What release end asked for, now that no job holds the domain's groups */
void domain_release_deferred(Manager *m) {
        Domains *d = m->domains;
        for (size_t i = d ? d->n_releasing : 0; i-- > 0;) {
                _cleanup_free_ int *groups = calloc(m->state->n_records + 1, sizeof(int));
                size_t n = 0;
                if (!groups)
                        return;
                for (size_t k = 0; k < m->state->n_records; k++)
                        if (streq_ptr(m->state->records[k]->consumer, d->releasing[i]))
                                groups[n++] = m->state->records[k]->group;
                if (any_locked(m, groups, n))
                        continue;
                _cleanup_free_ char *consumer = d->releasing[i];
                memmove(&d->releasing[i], &d->releasing[i + 1], (d->n_releasing - i - 1) * sizeof(char *));
                d->n_releasing--;
                int r = forget_libvirt_groups(m, groups, &n);
                if (r >= 0 && n > 0)
                        r = manager_release_groups(m, groups, n);
                if (r < 0)
                        log_error_errno(r, "Releasing %s after its transaction failed: %m; 'iovirtctl release "
                                        "--consumer %s' gives its groups back", consumer, consumer);
        }
}

int act_release_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ int *groups = NULL;
        bool interactive;
        size_t n;
        int r = domain_groups(m, msg, &groups, &n, &interactive, error);
        if (r < 0)
                return r;
        if (any_locked(m, groups, n)) {
                const char *name;
                (void) sd_bus_message_rewind(msg, true);
                r = sd_bus_message_read(msg, "s", &name);
                return r < 0 ? r : defer_release(m, msg, name, groups, n);
        }
        r = forget_libvirt_groups(m, groups, &n);
        if (r < 0)
                return r;
        if (n == 0)
                return reply_nothing(msg);
        return manager_start_release(m, msg, groups, n, error);
}

/* ---- domains as Assign's consumers ---- */

static void seen_clear(DomainSeen *s) {
        free(s->sender);
        free(s->asked);
        free(s->consumer);
        free(s->reason);
        libvirt_domain_clear(&s->domain);
        *s = (DomainSeen) {};
}

void domains_free(Domains *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->n; i++)
                seen_clear(&s->seen[i]);
        for (size_t i = 0; i < s->n_releasing; i++)
                free(s->releasing[i]);
        free(s->releasing);
        free(s);
}

/* What was looked up for this call */
static DomainSeen *seen_find(Manager *m, sd_bus_message *msg, const char *asked) {
        uint64_t cookie = 0;
        (void) sd_bus_message_get_cookie(msg, &cookie);
        for (size_t i = m->domains ? m->domains->n : 0; i-- > 0;) {
                DomainSeen *s = &m->domains->seen[i];
                if (s->cookie == cookie && streq_ptr(s->sender, sd_bus_message_get_sender(msg)) &&
                    streq_ptr(s->asked, asked))
                        return s;
        }
        return NULL;
}

/* Takes *s; the oldest goes when there is no room */
static int seen_put(Manager *m, DomainSeen *s) {
        Domains *d = domains_get(m);
        if (!d)
                return -ENOMEM;
        DomainSeen *old = d->n == SEEN_MAX ? &d->seen[0] : NULL;
        if (old) {
                seen_clear(old);
                memmove(old, old + 1, (size_t) (&d->seen[d->n] - (old + 1)) * sizeof(DomainSeen));
                d->n--;
        }
        d->seen[d->n++] = *s;
        *s = (DomainSeen) {};
        return 0;
}

typedef struct LookupJob {
        DomainSeen seen;
        sd_bus_message_handler_t again;
        const char *name;        /* in seen.asked */
} LookupJob;

static void lookup_job_free(void *p) {
        LookupJob *j = p;
        seen_clear(&j->seen);
        free(j);
}

static void lookup_work(void *p) {
        LookupJob *j = p;
        j->seen.r = libvirt_lookup(j->name, &j->seen.domain, &j->seen.reason);
}

/* The call again, now that its domain is known: as the bus would have dispatched it */
static int lookup_done(Manager *m, sd_bus_message *msg, void *p) {
        LookupJob *j = p;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        (void) sd_bus_message_get_cookie(msg, &j->seen.cookie);
        if (sd_bus_message_get_sender(msg) && !(j->seen.sender = strdup(sd_bus_message_get_sender(msg))))
                return -ENOMEM;
        if (j->seen.r >= 0 && asprintf(&j->seen.consumer, LIBVIRT_CONSUMER_PREFIX "%s", j->seen.domain.name) < 0) {
                j->seen.consumer = NULL;
                return -ENOMEM;
        }
        if (j->seen.r < 0 && j->seen.r != -ENOENT)
                log_notice("Looking up libvirt domain '%s' failed: %s", j->name, strna(j->seen.reason));
        int r = seen_put(m, &j->seen);
        if (r < 0)
                return r;
        r = j->again(msg, m, &error);
        if (sd_bus_error_is_set(&error))
                r = sd_bus_reply_method_error(msg, &error);
        else if (r < 0)
                r = sd_bus_reply_method_errno(msg, r, NULL);
        sd_bus_error_free(&error);
        return r < 0 ? r : 0;
}

int domain_consumer(Manager *m, sd_bus_message *msg, sd_bus_message_handler_t again, const char *asked, bool lookup,
                    const LibvirtDomain **ret, const char **consumer, sd_bus_error *error) {
        bool prefixed = strncmp(asked, LIBVIRT_CONSUMER_PREFIX, strlen(LIBVIRT_CONSUMER_PREFIX)) == 0;
        const char *name = prefixed ? asked + strlen(LIBVIRT_CONSUMER_PREFIX) : asked;
        *ret = NULL;
        *consumer = asked;
        /* "pid:42", "nova:...": a name of another kind, never a domain's */
        if (!prefixed && strchr(asked, ':'))
                return 0;
        if (!*name)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT,
                                         "'%s' names no domain: write domain:NAME or domain:UUID", asked);
        DomainSeen *s = seen_find(m, msg, asked);
        if (!s) {
                if (!lookup)
                        return sd_bus_error_setf(error, IOVIRT_ERROR_BUSY,
                                                 "What libvirt said of domain '%.64s' was forgotten while the call "
                                                 "was authorized; call again", name);
                LookupJob *j = calloc(1, sizeof(LookupJob));
                if (!j || !(j->seen.asked = strdup(asked))) {
                        free(j);
                        return -ENOMEM;
                }
                j->name = j->seen.asked + (name - asked);
                j->again = again;
                int r = job_start(m, msg, NULL, 0, lookup_work, lookup_done, j, lookup_job_free);
                if (r < 0)
                        return sd_bus_error_set_errnof(error, r, "Could not start looking the domain up: %m");
                return 1;
        }
        if (s->r < 0) {
                /* a bare name libvirt does not know (or cannot say it knows) is a name */
                if (!prefixed && (s->r == -ENOENT || s->r == -ECONNREFUSED || s->r == -ETIMEDOUT))
                        return 0;
                return sd_bus_error_setf(error, s->r == -ENOENT   ? IOVIRT_ERROR_INVALID_ARGUMENT
                                                : s->r == -ENOMEM ? IOVIRT_ERROR_FAILED
                                                                  : IOVIRT_ERROR_LIBVIRT,
                                         "%s", strna(s->reason));
        }
        *ret = &s->domain;
        *consumer = s->consumer;
        return 0;
}

/* ---- StartedDomain: the pool devices, attached once the domain runs ----
 *
 * A pool device is not in the domain's XML, so libvirt does not give it to
 * QEMU at start; it is attached live.  libvirt's "started begin" hook is
 * called while libvirt still holds the domain, and a hook must not call
 * libvirt: the attach is queued, and the hook answered first.  Its libvirt
 * calls then wait for libvirt to finish the start, on the job's thread. */

typedef struct AttachGroup {
        int group;
        IovirtAddress *functions;
        size_t n;
        int r;
        char *reason;
} AttachGroup;

typedef struct StartedJob {
        char *name;
        AttachGroup *groups;
        size_t n;
        int memlock_r;
        uint64_t need, have;
        char *memlock_reason;
} StartedJob;

static void started_job_free(void *p) {
        StartedJob *j = p;
        for (size_t i = 0; i < j->n; i++) {
                free(j->groups[i].functions);
                free(j->groups[i].reason);
        }
        free(j->groups);
        free(j->name);
        free(j->memlock_reason);
        free(j);
}

/* The domain's pool groups, held and not attached by anyone yet; Busy when one is in a job */
static int pool_groups(Manager *m, const char *consumer, int **ret, size_t *n, sd_bus_error *error) {
        _cleanup_free_ int *all = NULL;
        size_t n_all = 0;
        int r = manager_consumer_groups(m, consumer, &all, &n_all, error);
        if (r < 0)
                return r;
        *n = 0;
        for (size_t i = 0; i < n_all; i++) {
                const IovirtRecord *rec = iovirt_state_find(m->state, all[i]);
                if (rec->libvirt_attach && rec->phase == IOVIRT_PHASE_ASSIGNED)
                        all[(*n)++] = all[i];
        }
        *ret = TAKE_PTR(all);
        return 0;
}

static int started_request(Manager *m, sd_bus_message *msg, const char **name, char **consumer, int **groups,
                           size_t *n, bool *interactive, sd_bus_error *error) {
        int interactive_arg;
        int r = sd_bus_message_rewind(msg, true);
        if (r >= 0)
                r = sd_bus_message_read(msg, "sb", name, &interactive_arg);
        if (r >= 0)
                r = manager_accepting(m, error);
        if (r < 0)
                return r;
        if (asprintf(consumer, LIBVIRT_CONSUMER_PREFIX "%s", *name) < 0) {
                *consumer = NULL;
                return -ENOMEM;
        }
        if (iovirt_consumer_valid(*consumer, NULL) < 0)
                return sd_bus_error_setf(error, IOVIRT_ERROR_INVALID_ARGUMENT, "'%.64s' is no domain name iovirt takes",
                                         *name);
        r = pool_groups(m, *consumer, groups, n, error);
        if (r < 0)
                return r;
        *interactive = interactive_arg;
        return 0;
}

static int reply_queued(sd_bus_message *msg, const int *groups, size_t n) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *a = json_object_new_array();
        if (!o || !a || json_object_object_add(o, "queued", a) < 0) {
                json_object_put(a);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                json_object_array_add(a, json_object_new_int(groups[i]));
        return manager_reply_json(msg, o);
}

int prepare_started_domain(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error) {
        _cleanup_free_ char *consumer = NULL;
        _cleanup_free_ int *groups = NULL;
        const char *name;
        size_t n = 0;
        int r = started_request(userdata, msg, &name, &consumer, &groups, &n, interactive, error);
        if (r < 0)
                return r;
        if (n > 0)
                return 0;
        /* no pool device: nothing to attach, the same answer each time */
        r = reply_queued(msg, NULL, 0);
        return r < 0 ? r : 1;
}

static void started_work(void *p) {
        StartedJob *j = p;
        bool attached = false;
        for (size_t i = 0; i < j->n; i++) {
                AttachGroup *g = &j->groups[i];
                LibvirtAttach where;
                bool stuck;     /* either way the group stays bound for the domain until release end */
                g->r = libvirt_attach(j->name, g->functions, g->n, true, false, &where, &stuck, &g->reason);
                attached |= g->r >= 0;
        }
        /* its QEMU's limit once it has a device more; none attached, nothing to ask libvirt again */
        j->memlock_r = attached ? libvirt_domain_memlock(j->name, &j->need, &j->have, &j->memlock_reason) : 1;
}

/* No request to answer: the hook was answered when the job started */
static int started_done(Manager *m, sd_bus_message *msg, void *p) {
        StartedJob *j = p;
        char need[IOVIRT_SIZE_MAX], have[IOVIRT_SIZE_MAX];
        (void) m;
        (void) msg;
        for (size_t i = 0; i < j->n; i++) {
                const AttachGroup *g = &j->groups[i];
                if (g->r >= 0)
                        log_info("Attached group %d, a pool device, to domain %s", g->group, j->name);
                else
                        log_full_errno(LOG_ERR, 0, NULL, "Could not attach group %d, a pool device, to running domain %s: %s. It stays bound "
                                  "to VFIO for the domain: attach it by hand (virsh attach-device), or give it back "
                                  "(iovirtctl release group:%d)", g->group, j->name, strna(g->reason), g->group);
        }
        if (j->memlock_r == 0)
                log_warning("RLIMIT_MEMLOCK of domain %s's QEMU is %s, less than the %s libvirt's rule asks for its "
                            "devices: the guest may fail to map its memory for them", j->name,
                            j->have == UINT64_MAX ? "unlimited" : iovirt_size_format(j->have, have),
                            j->need == UINT64_MAX ? "unlimited" : iovirt_size_format(j->need, need));
        else if (j->memlock_r < 0)
                log_warning("Whether domain %s's QEMU may lock enough memory for its devices cannot be told: %s",
                            j->name, j->memlock_reason ? j->memlock_reason : "its QEMU process could not be found");
        return 0;
}

int act_started_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ char *consumer = NULL;
        _cleanup_free_ int *groups = NULL;
        const char *name;
        bool interactive;
        size_t n = 0;
        int r = started_request(m, msg, &name, &consumer, &groups, &n, &interactive, error);
        if (r < 0)
                return r;
        if (n == 0)
                return reply_queued(msg, NULL, 0);
        StartedJob *j = calloc(1, sizeof(StartedJob));
        if (!j || !(j->name = strdup(name)) || !(j->groups = calloc(n, sizeof(AttachGroup)))) {
                if (j)
                        started_job_free(j);
                return -ENOMEM;
        }
        for (; j->n < n; j->n++) {
                const IovirtRecord *rec = iovirt_state_find(m->state, groups[j->n]);
                AttachGroup *g = &j->groups[j->n];
                g->group = rec->group;
                g->n = rec->n_functions;
                r = iovirt_record_addresses(rec, &g->functions);
                if (r < 0) {
                        j->n++;
                        started_job_free(j);
                        return r == -ENOMEM ? r
                                            : sd_bus_error_setf(error, IOVIRT_ERROR_FAILED, "Group %d's record names a "
                                                                "function that is no PCI address; nothing was "
                                                                "attached", rec->group);
                }
        }
        /* queued first, answered then: once the hook has its answer, libvirt finishes the start */
        r = job_start(m, NULL, groups, n, started_work, started_done, j, started_job_free);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Could not queue the attach of domain %s's pool devices: %m",
                                               name);
        log_info("Attaching %zu pool device%s to domain %s once its start has finished", n, n == 1 ? "" : "s", name);
        return reply_queued(msg, groups, n);
}
