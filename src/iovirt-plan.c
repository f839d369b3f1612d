/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>

#include "iovirt-names.h"
#include "iovirt-plan.h"
#include "iovirt-sriov.h"
#include "iovirt-sysfs.h"

static const char *const status_names[_IOVIRT_PLAN_STATUS_MAX] = {
        [IOVIRT_PLAN_PASS] = "pass",
        [IOVIRT_PLAN_WARN] = "warn",
        [IOVIRT_PLAN_ACCEPTED] = "accepted",
        [IOVIRT_PLAN_FAIL] = "fail",
};

const char *iovirt_plan_status_name(IovirtPlanStatus s) {
        return s < _IOVIRT_PLAN_STATUS_MAX ? status_names[s] : "invalid";
}

static const char *const reason_names[_IOVIRT_REASON_MAX] = {
        [IOVIRT_REASON_NONE] = NULL,
        [IOVIRT_REASON_NO_IOMMU] = "no-iommu",
        [IOVIRT_REASON_NO_SUCH_GROUP] = "no-such-group",
        [IOVIRT_REASON_IN_USE] = "in-use",
        [IOVIRT_REASON_ALREADY_ASSIGNED] = "already-assigned",
        [IOVIRT_REASON_BUSY] = "busy",
        [IOVIRT_REASON_RELEASE_UNFINISHED] = "release-unfinished",
        [IOVIRT_REASON_NOTHING_TO_ASSIGN] = "nothing-to-assign",
        [IOVIRT_REASON_NOT_ISOLATED] = "not-isolated",
        [IOVIRT_REASON_ISOLATION_UNKNOWN] = "isolation-unknown",
        [IOVIRT_REASON_HOST_CRITICAL] = "host-critical",
        [IOVIRT_REASON_HOST_UNREADABLE] = "host-unreadable",
        [IOVIRT_REASON_NO_RESET] = "no-reset",
        [IOVIRT_REASON_SRIOV_CLAIMED] = "sriov-claimed",
        [IOVIRT_REASON_SRIOV_ENABLED] = "sriov-enabled",
        [IOVIRT_REASON_INVALID] = "invalid",
        [IOVIRT_REASON_DRIVER_UNKNOWN] = "driver-unknown",
        [IOVIRT_REASON_NOT_VFIO_DRIVER] = "not-vfio-driver",
        [IOVIRT_REASON_POLICY_UNREADABLE] = "policy-unreadable",
        [IOVIRT_REASON_NOT_IN_POOL] = "not-in-pool",
        [IOVIRT_REASON_NOT_ADMITTED] = "not-admitted",
        [IOVIRT_REASON_NOT_OWNER] = "not-owner",
        [IOVIRT_REASON_CONSUMER_GONE] = "consumer-gone",
        [IOVIRT_REASON_NUMA_REMOTE] = "numa-remote",
        [IOVIRT_REASON_NUMA_UNKNOWN] = "numa-unknown",
        [IOVIRT_REASON_OVER_BUDGET] = "over-budget",
        [IOVIRT_REASON_MEMORY_CGROUP] = "memory-cgroup",
        [IOVIRT_REASON_FACTS_UNREADABLE] = "facts-unreadable",
};

const char *iovirt_reason_name(IovirtReason r) {
        return r < _IOVIRT_REASON_MAX ? reason_names[r] : NULL;
}

IovirtPlan *iovirt_plan_free(IovirtPlan *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_steps; i++) {
                free(p->steps[i].from);
                free(p->steps[i].to);
                free(p->steps[i].module);
        }
        for (size_t i = 0; i < p->n_staying; i++)
                free(p->staying[i]);
        for (size_t i = 0; i < p->n_checks; i++)
                free(p->checks[i].message);
        free(p->steps);
        free(p->staying);
        free(p->checks);
        free(p->consumer);
        free(p);
        return NULL;
}

int iovirt_target_resolve(const IovirtHost *h, const char *target, int *group, size_t *device, char **reason) {
        if (strncmp(target, "group:", 6) == 0) {
                int n;
                if (iovirt_parse_int(target + 6, &n) < 0 || n < 0 || strchr(target + 6, '\n')) {
                        *reason = strdup("A group is written group:N, with N a group number (iovirtctl list-groups)");
                        return -EINVAL;
                }
                if (!iovirt_host_find_group(h, n)) {
                        if (asprintf(reason, "There is no IOMMU group %d on this host%s", n,
                                     h->n_groups ? "; iovirtctl list-groups shows them" : " (the IOMMU is off)") < 0)
                                *reason = NULL;
                        return -ENODEV;
                }
                *group = n;
                *device = IOVIRT_NONE;
                return 0;
        }
        _cleanup_(iovirt_selector_clear) IovirtSelector sel = {};
        size_t i;
        int r = iovirt_selector_parse(target, &sel, reason);
        if (r > 0) {
                /* one VF of a PF: PF#N */
                _cleanup_free_ size_t *vfs = NULL;
                size_t pf, n;
                if (iovirt_selector_count(&sel) != 1)
                        return iovirt_set_reason(reason, -EINVAL,
                                                 "'%s' names several VFs; only assign takes a range (and picks one "
                                                 "free VF of it): name one VF as PF#N", target);
                r = iovirt_selector_resolve(h, &sel, &pf, &vfs, &n, reason);
                if (r == -ERANGE)
                        r = -EINVAL;
                if (r < 0)
                        return r;
                if (n == 0)
                        return iovirt_set_reason(reason, -ENODEV,
                                                 "VF %u of %s is not enabled; 'iovirtctl sriov %s --vfs N' creates VFs",
                                                 iovirt_selector_max(&sel), h->devices[pf].name, sel.pf);
                i = vfs[0];
        } else if (r == 0)
                r = iovirt_host_lookup(h, target, &i, reason);
        if (r < 0)
                return r;
        *group = h->devices[i].iommu_group;
        *device = i;
        return 0;
}

int iovirt_check_set(IovirtPlanCheck *c, IovirtPlanStatus status, IovirtReason reason, const char *override,
                     const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int l = vasprintf(&c->message, fmt, ap);
        va_end(ap);
        if (l < 0) {
                c->message = NULL;
                return -ENOMEM;
        }
        c->status = status;
        c->reason = reason;
        c->override = override;
        return 1;
}

int iovirt_plan_add_check(IovirtPlan *p, const char *id, const char *message) {
        IovirtPlanCheck *slot = GROW(p->checks, p->n_checks, p->allocated_checks);
        if (!slot)
                return -ENOMEM;
        *slot = (IovirtPlanCheck) { .id = id, .status = IOVIRT_PLAN_PASS, .reason = IOVIRT_REASON_NONE };
        if (!(slot->message = strdup(message))) {
                p->n_checks--;
                return -ENOMEM;
        }
        return 0;
}

static int join_names(IovirtText *t, const IovirtHost *h, const size_t *idx, size_t n) {
        for (size_t i = 0; i < n; i++)
                (void) iovirt_text_add(t, "%s%s", i ? ", " : "", h->devices[idx[i]].name);
        return t->failed ? -ENOMEM : 0;
}

static const char *consumer_or_unknown(const IovirtRecord *rec) {
        return rec->consumer[0] ? rec->consumer : "an unknown consumer";
}

/* The driver chosen for the endpoint device (an index into the host's
 * devices), as the caller gave it; NULL when none was. */
static const IovirtPlanDriver *driver_entry(const IovirtPlanInput *in, size_t device) {
        for (size_t i = 0; i < in->n_drivers; i++)
                if (in->drivers[i].device == device)
                        return &in->drivers[i];
        return NULL;
}

/* The VFIO driver the endpoint goes to: vfio-pci when the caller chose
 * none, NULL when its choice failed (the driver check refuses the plan) */
static const char *chosen_driver(const IovirtPlanInput *in, size_t device) {
        if (!in->drivers)
                return DRIVER_VFIO_PCI;
        const IovirtPlanDriver *e = driver_entry(in, device);
        return e && e->error >= 0 ? e->choice.driver : NULL;
}

/* Driver names as the kernel compares module names: '-' and '_' alike */
static bool driver_eq(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        for (; *a && *b; a++, b++)
                if (*a != *b && !((*a == '-' || *a == '_') && (*b == '-' || *b == '_')))
                        return false;
        return *a == *b;
}

static const IovirtFunctionRecord *recorded_function(const IovirtRecord *rec, const char *address) {
        for (size_t k = 0; k < rec->n_functions; k++)
                if (streq_ptr(rec->functions[k].address, address))
                        return &rec->functions[k];
        return NULL;
}

/* The first endpoint of the group that the record does not hold, or that
 * is not on the VFIO driver its record names (*held): what keeps the
 * consumer's hold from being whole. */
static const IovirtDevice *hold_gap(const IovirtPlanContext *ctx, const char **held) {
        const IovirtHost *h = ctx->in->host;
        for (size_t i = 0; i < ctx->verdict->n_endpoints; i++) {
                const IovirtDevice *d = &h->devices[ctx->verdict->endpoints[i]];
                const IovirtFunctionRecord *f = recorded_function(ctx->record, d->name);
                const char *want = f ? iovirt_function_vfio_driver(f) : NULL;
                if (!f || !streq_ptr(d->driver, want)) {
                        if (held) {
                                const char *chosen = chosen_driver(ctx->in, ctx->verdict->endpoints[i]);
                                *held = want ? want : chosen ? chosen : DRIVER_VFIO_PCI;
                        }
                        return d;
                }
        }
        return NULL;
}

/* The first endpoint of a whole hold whose VFIO driver is not the one this
 * request chose (*held is the one it is on, *chosen the other) */
static const IovirtDevice *driver_change(const IovirtPlanContext *ctx, const char **held, const char **chosen) {
        const IovirtHost *h = ctx->in->host;
        for (size_t i = 0; i < ctx->verdict->n_endpoints; i++) {
                const IovirtDevice *d = &h->devices[ctx->verdict->endpoints[i]];
                const IovirtFunctionRecord *f = recorded_function(ctx->record, d->name);
                const char *want = chosen_driver(ctx->in, ctx->verdict->endpoints[i]);
                if (f && want && !driver_eq(iovirt_function_vfio_driver(f), want)) {
                        *held = iovirt_function_vfio_driver(f);
                        *chosen = want;
                        return d;
                }
        }
        return NULL;
}

/* Done: the consumer holds every function, each on the VFIO driver this
 * request chose */
static bool held_by_consumer(const IovirtPlanContext *ctx) {
        const char *held, *chosen;
        return ctx->record && !ctx->in->group_locked && ctx->record->phase == IOVIRT_PHASE_ASSIGNED &&
               streq_ptr(ctx->record->consumer, ctx->in->consumer) && !hold_gap(ctx, NULL) &&
               !driver_change(ctx, &held, &chosen);
}

/* ---- the checks, in the order a plan lists them ---- */

static int check_iommu(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtPlanInput *in = ctx->in;
        const char *what = in->device != IOVIRT_NONE ? in->host->devices[in->device].name : NULL;

        if (in->host->n_groups == 0)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_NO_IOMMU, NULL,
                                        "The IOMMU is off, so no device can be given to a VM safely; 'iovirtctl "
                                        "check' says how to turn it on");
        if (in->group < 0)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_NO_IOMMU, NULL,
                                        "%s is in no IOMMU group (the IOMMU does not cover it), so it cannot be "
                                        "assigned", strna(what));
        if (!ctx->group)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_NO_SUCH_GROUP, NULL,
                                        "There is no IOMMU group %d on this host", in->group);
        return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL, "The IOMMU is on; %s is in group %d",
                                what ? what : "the target", in->group);
}

static int check_ownership(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtRecord *rec = ctx->record;
        int g = ctx->in->group;

        if (ctx->in->group_locked)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_BUSY, NULL,
                                        "Group %d is being %s %s right now; try again when that has finished", g,
                                        rec && rec->phase == IOVIRT_PHASE_RELEASING ? "given back by" : "assigned to",
                                        rec ? consumer_or_unknown(rec) : "another consumer");
        if (!rec)
                return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL,
                                        "Group %d is not assigned to anyone", g);
        if (rec->phase == IOVIRT_PHASE_RELEASING)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_RELEASE_UNFINISHED, NULL,
                                        "Group %d is still being given back by %s: a function did not return to its "
                                        "driver; 'iovirtctl release group:%d' finishes it", g,
                                        consumer_or_unknown(rec), g);
        if (rec->phase == IOVIRT_PHASE_ASSIGNING)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_BUSY, NULL,
                                        "Group %d is being assigned to %s; try again when that has finished", g,
                                        consumer_or_unknown(rec));
        if (rec->phase == IOVIRT_PHASE_LIBVIRT)
                return streq_ptr(rec->consumer, ctx->in->consumer) && ctx->in->libvirt_managed
                               ? iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL,
                                                  "Group %d is %s's already, bound by its libvirt (managed='yes')",
                                                  g, consumer_or_unknown(rec))
                               : iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_IN_USE, NULL,
                                                  "Group %d is held by %s, whose libvirt binds it (managed='yes'); "
                                                  "iovirt does not take it over, and it is free once that domain "
                                                  "stops", g, consumer_or_unknown(rec));
        if (!streq_ptr(rec->consumer, ctx->in->consumer))
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_IN_USE, NULL,
                                        "Group %d is already assigned to %s%s; release it first (iovirtctl release "
                                        "group:%d)", g, consumer_or_unknown(rec),
                                        rec->consumer[0] ? "" : " (its state record was damaged)", g);
        const char *held = NULL, *chosen = NULL;
        const IovirtDevice *gap = hold_gap(ctx, &held);
        if (gap)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_IN_USE, NULL,
                                        "Group %d is assigned to %s, but %s is %s%s, not on %s: somebody rebound "
                                        "it; release the group (iovirtctl release group:%d) and assign it again", g,
                                        rec->consumer, gap->name, gap->driver ? "on " : "without a driver",
                                        gap->driver ? gap->driver : "", held, g);
        const IovirtDevice *change = driver_change(ctx, &held, &chosen);
        if (change)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_IN_USE, NULL,
                                        "Group %d is assigned to %s already, with %s on %s; this request would put it "
                                        "on %s: release the group (iovirtctl release group:%d) and assign it again",
                                        g, rec->consumer, change->name, held, chosen, g);
        return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_ALREADY_ASSIGNED, NULL,
                                "Group %d is already assigned to %s; nothing to do", g, rec->consumer);
}

static int check_whole_group(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtGroupVerdict *gv = ctx->verdict;
        const IovirtHost *h = ctx->in->host;
        int g = ctx->in->group;

        if (gv->n_endpoints == 0)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_NOTHING_TO_ASSIGN, NULL,
                                        "Group %d holds only bridges; there is nothing a VM could use", g);
        _cleanup_(iovirt_text_clear) IovirtText t = {};
        (void) join_names(&t, h, gv->endpoints, gv->n_endpoints);
        if (gv->n_bridges) {
                (void) iovirt_text_add(&t, "; the bridge%s ", gv->n_bridges > 1 ? "s" : "");
                (void) join_names(&t, h, gv->bridges, gv->n_bridges);
                (void) iovirt_text_add(&t, " stay%s with the host", gv->n_bridges > 1 ? "" : "s");
        }
        if (t.failed)
                return -ENOMEM;
        return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL,
                                "%zu function%s of group %d move%s together: %s", gv->n_endpoints,
                                gv->n_endpoints > 1 ? "s" : "", g, gv->n_endpoints > 1 ? "" : "s", t.s);
}

static int check_isolation(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtGroupVerdict *gv = ctx->verdict;
        const IovirtHost *h = ctx->in->host;
        int g = ctx->in->group;

        switch (gv->isolation) {
        case IOVIRT_ISOLATED:
                return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL,
                                        "Group %d is isolated: nothing outside it can reach it by DMA", g);
        case IOVIRT_SHARED:
                return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL,
                                        "Group %d is shared by several functions, which go to %s together", g,
                                        ctx->in->consumer);
        case IOVIRT_LEAKY: {
                _cleanup_(iovirt_text_clear) IovirtText t = {};
                (void) join_names(&t, h, gv->peers, gv->n_peers);
                for (size_t i = 0; i < gv->n_causes; i++) {
                        char cause[256];
                        iovirt_cause_text(h, &gv->causes[i], cause, sizeof(cause));
                        (void) iovirt_text_add(&t, "%s%s", i ? "; " : " (", cause);
                }
                (void) iovirt_text_add(&t, "%s", gv->n_causes ? ")" : "");
                if (t.failed)
                        return -ENOMEM;
                bool ok = ctx->in->accept & IOVIRT_ACCEPT_LEAKY;
                return iovirt_check_set(c, ok ? IOVIRT_PLAN_ACCEPTED : IOVIRT_PLAN_FAIL, IOVIRT_REASON_NOT_ISOLATED,
                                        "--accept-leaky",
                                        "Group %d is leaky: %s outside it can reach it by peer-to-peer DMA%s: %s", g,
                                        gv->n_peers == 1 ? "a device" : "devices",
                                        ok ? ", accepted by the request" : "", strna(t.s));
        }
        case IOVIRT_BRIDGES:
                /* whole-group refuses it too; this rule never passes a group it has no verdict on */
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_NOTHING_TO_ASSIGN, NULL,
                                        "Group %d holds only bridges: there is no endpoint whose isolation could "
                                        "be judged", g);
        default: {
                const char *who = gv->unknown_device != IOVIRT_NONE ? h->devices[gv->unknown_device].name : NULL;
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_ISOLATION_UNKNOWN, NULL,
                                        "The isolation of group %d is unknown: %s could not be read (iovirtctl show %s)",
                                        g, who ? who : "config space", who ? who : "");
        }
        }
}

static int check_host_critical(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtGroupVerdict *gv = ctx->verdict;
        const IovirtUsage *usage = ctx->in->usage;
        const IovirtHost *h = ctx->in->host;
        _cleanup_(iovirt_text_clear) IovirtText t = {};
        int g = ctx->in->group;

        for (size_t i = 0; i < gv->n_endpoints; i++)
                for (size_t u = 0; u < usage->n_uses; u++)
                        if (usage->uses[u].device == gv->endpoints[i])
                                (void) iovirt_text_add(&t, "%s%s %s", t.len ? "; " : "",
                                                       h->devices[gv->endpoints[i]].name, usage->uses[u].what);
        if (t.failed)
                return -ENOMEM;
        if (t.s)
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_HOST_CRITICAL, NULL,
                                        "The host needs group %d: %s. Stop using it first (unmount, swapoff, "
                                        "'ip link set dev IFACE down', another console)", g, t.s);
        if (usage->n_blind)
                return 0;     /* no use found, but not everything was read: host-readable says so */
        return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL,
                                "No mount, swap, array, active network interface or console uses group %d", g);
}

/* What the guard could not read, it cannot vouch for */
static int check_host_readable(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtUsage *usage = ctx->in->usage;
        _cleanup_(iovirt_text_clear) IovirtText t = {};

        if (usage->n_blind == 0)
                return 0;
        for (size_t b = 0; b < usage->n_blind; b++) {
                _cleanup_free_ char *why = iovirt_blind_spot_text(&usage->blind[b]);
                if (!why)
                        return -ENOMEM;
                (void) iovirt_text_add(&t, "%s%s", t.len ? "; " : "", why);
        }
        if (t.failed)
                return -ENOMEM;
        return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_HOST_UNREADABLE, NULL,
                                "Cannot tell whether the host needs group %d: %s. Refused until iovirtd can read it "
                                "(is it running with the privileges its unit gives it?)", ctx->in->group, t.s);
}

/* The why of a choice without its leading "DRIVER: " */
static const char *why_after_driver(const IovirtVariantChoice *c) {
        size_t l = c->driver ? strlen(c->driver) : 0;
        if (c->why && l && strncmp(c->why, c->driver, l) == 0 && strncmp(c->why + l, ": ", 2) == 0)
                return c->why + l + 2;
        return c->why;
}

/* Which VFIO driver each function goes to, and why: the caller's choice,
 * by libvirt's rule on the kernel's modules.alias or as --driver named it.
 * A choice that could not be made refuses the plan: vfio-pci where the
 * kernel has a variant driver would be a guess, and a --driver that is no
 * VFIO driver would give a host driver the device. */
static int check_driver(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtPlanInput *in = ctx->in;
        const IovirtGroupVerdict *gv = ctx->verdict;
        const IovirtHost *h = in->host;
        _cleanup_(iovirt_text_clear) IovirtText t = {};

        if (gv->n_endpoints == 0)
                return 0;
        if (!in->drivers)
                return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL,
                                        "vfio-pci for every function of group %d (no VFIO variant driver was looked "
                                        "for)", in->group);
        for (size_t i = 0; i < gv->n_endpoints; i++) {
                const IovirtDevice *d = &h->devices[gv->endpoints[i]];
                const IovirtPlanDriver *e = driver_entry(in, gv->endpoints[i]);
                if (!e)
                        return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_DRIVER_UNKNOWN, NULL,
                                                "No VFIO driver was chosen for %s; refused rather than guessed",
                                                d->name);
                if (e->error >= 0 && e->choice.driver)
                        continue;
                if (e->asked && e->error == -EINVAL)
                        return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_NOT_VFIO_DRIVER, NULL,
                                                "Refused to bind %s: %s", d->name,
                                                e->choice.why ? e->choice.why : "not a VFIO driver");
                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_DRIVER_UNKNOWN, "--driver NAME",
                                        "The VFIO driver of %s cannot be chosen: %s. Refused rather than guessed (the "
                                        "kernel may have a variant driver for it)", d->name,
                                        e->choice.why ? e->choice.why : strerror(-(e->error < 0 ? e->error : EINVAL)));
        }
        for (size_t i = 0; i < gv->n_endpoints; i++) {
                const IovirtPlanDriver *e = driver_entry(in, gv->endpoints[i]);
                const char *why = why_after_driver(&e->choice);
                (void) iovirt_text_add(&t, "%s%s for %s%s%s", t.len ? "; " : "", e->choice.driver,
                                       h->devices[gv->endpoints[i]].name, why ? ": " : "", why ? why : "");
        }
        if (t.failed)
                return -ENOMEM;
        return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL, "%s", t.s);
}

/* OpenStack Nova's claim rules, for a PF and its VFs: while a VF is
 * assigned its PF is not free, and while a PF is assigned its VFs are not.
 * A PF with VFs enabled but none assigned is refused too: vfio-pci will
 * not take it ("Cannot bind to PF with SR-IOV enabled"). */
static int check_sriov_claim(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtHost *h = ctx->in->host;
        const IovirtGroupVerdict *gv = ctx->verdict;
        bool family = false;

        for (size_t i = 0; i < gv->n_endpoints; i++) {
                const IovirtDevice *d = &h->devices[gv->endpoints[i]];
                if (iovirt_device_is_vf(d)) {
                        const IovirtDevice *pf = &h->devices[d->physfn];
                        const IovirtRecord *rec = pf->iommu_group >= 0 && pf->iommu_group != ctx->in->group
                                                          ? iovirt_state_find(ctx->in->state, pf->iommu_group)
                                                          : NULL;
                        family = true;
                        if (rec)
                                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_SRIOV_CLAIMED, NULL,
                                                        "%s is a VF of %s, which is assigned to %s: a VF cannot be "
                                                        "assigned while its PF is; release the PF first", d->name,
                                                        pf->name, consumer_or_unknown(rec));
                }
                for (size_t k = 0; k < d->n_vfs; k++) {
                        const IovirtDevice *vf = &h->devices[d->vfs[k]];
                        const IovirtRecord *rec = vf->iommu_group >= 0 && vf->iommu_group != ctx->in->group
                                                          ? iovirt_state_find(ctx->in->state, vf->iommu_group)
                                                          : NULL;
                        family = true;
                        if (rec)
                                return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_SRIOV_CLAIMED, NULL,
                                                        "%s is the PF of %s, which is assigned to %s: a PF cannot be "
                                                        "assigned while one of its VFs is; release its VFs first",
                                                        d->name, vf->name, consumer_or_unknown(rec));
                }
                if (d->n_vfs > 0 && !(d->driver && iovirt_variant_is_vfio(d->driver)))
                        return iovirt_check_set(c, IOVIRT_PLAN_FAIL, IOVIRT_REASON_SRIOV_ENABLED, NULL,
                                                "%s has %zu VF%s enabled, and vfio-pci does not take a PF with SR-IOV "
                                                "enabled; remove them first (iovirtctl sriov %s --vfs 0)", d->name,
                                                d->n_vfs, d->n_vfs == 1 ? "" : "s", d->name);
        }
        if (!family)
                return 0;
        return iovirt_check_set(c, IOVIRT_PLAN_PASS, IOVIRT_REASON_NONE, NULL,
                                "No PF or VF of group %d's SR-IOV family is assigned elsewhere", ctx->in->group);
}

/* Not a refusal, but the next VM would see the last one's state */
static int check_reset(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *c) {
        const IovirtGroupVerdict *gv = ctx->verdict;
        _cleanup_(iovirt_text_clear) IovirtText t = {};

        for (size_t i = 0; i < gv->n_endpoints; i++) {
                const IovirtDevice *d = &ctx->in->host->devices[gv->endpoints[i]];
                if (d->reset_methods && !d->reset_methods[0])
                        (void) iovirt_text_add(&t, "%s%s", t.len ? ", " : "", d->name);
        }
        if (t.failed)
                return -ENOMEM;
        if (!t.s)
                return 0;
        return iovirt_check_set(c, IOVIRT_PLAN_WARN, IOVIRT_REASON_NO_RESET, NULL,
                                "%s cannot be reset: a VM that gets %s after another sees what the last one left", t.s,
                                strchr(t.s, ',') ? "them" : "it");
}

static const IovirtPlanRule builtin_rules[] = {
        { "ownership", check_ownership, NULL },
        { "sriov-claim", check_sriov_claim, NULL },
        { "whole-group", check_whole_group, NULL },
        { "driver", check_driver, NULL },
        { "isolation", check_isolation, NULL },
        { "host-critical", check_host_critical, NULL },
        { "host-readable", check_host_readable, NULL },
        { "reset", check_reset, NULL },
};

/* ---- the builder ---- */

static int plan_run_rule(IovirtPlan *p, const IovirtPlanContext *ctx, const IovirtPlanRule *rule) {
        IovirtPlanCheck c = { .id = rule->id };
        int r = rule->check(ctx, rule->userdata, &c);
        if (r <= 0) {
                free(c.message);
                return r;
        }
        if (!c.message)
                return -EINVAL;     /* a rule that said something must say what */
        IovirtPlanCheck *slot = GROW(p->checks, p->n_checks, p->allocated_checks);
        if (!slot) {
                free(c.message);
                return -ENOMEM;
        }
        *slot = c;
        return 1;
}

static int plan_steps(IovirtPlan *p, const IovirtPlanInput *in, const IovirtGroupVerdict *gv) {
        const IovirtHost *h = in->host;
        if (gv->n_endpoints && !(p->steps = calloc(gv->n_endpoints, sizeof(IovirtPlanStep))))
                return -ENOMEM;
        for (size_t i = 0; i < gv->n_endpoints; i++) {
                const IovirtDevice *d = &h->devices[gv->endpoints[i]];
                const IovirtPlanDriver *e = in->drivers ? driver_entry(in, gv->endpoints[i]) : NULL;
                const char *to = chosen_driver(in, gv->endpoints[i]);
                const char *module = !in->drivers ? "vfio_pci" : to ? e->choice.module : NULL;
                IovirtPlanStep *s = &p->steps[p->n_steps++];
                memcpy(s->address, d->name, sizeof(s->address));
                if ((d->driver && !(s->from = strdup(d->driver))) || (to && !(s->to = strdup(to))) ||
                    (module && !(s->module = strdup(module))))
                        return -ENOMEM;
                s->moves = !to || !driver_eq(d->driver, to);
        }
        if (gv->n_bridges && !(p->staying = calloc(gv->n_bridges, sizeof(char *))))
                return -ENOMEM;
        for (size_t i = 0; i < gv->n_bridges; i++)
                if (!(p->staying[p->n_staying++] = strdup(h->devices[gv->bridges[i]].name)))
                        return -ENOMEM;
        return 0;
}

int iovirt_plan_assign(const IovirtPlanInput *in, const IovirtPlanRule *extra, size_t n_extra, IovirtPlan **ret) {
        _cleanup_(iovirt_plan_freep) IovirtPlan *p = calloc(1, sizeof(IovirtPlan));
        IovirtPlanContext ctx = { .in = in };
        int r;

        if (!p || !(p->consumer = strdup(in->consumer)))
                return -ENOMEM;
        p->group = in->group;
        if (in->host->n_groups > 0 && in->group >= 0 && (ctx.group = iovirt_host_find_group(in->host, in->group))) {
                ctx.verdict = &in->verdicts->groups[ctx.group - in->host->groups];
                ctx.record = iovirt_state_find(in->state, in->group);
        }

        r = plan_run_rule(p, &ctx, &(const IovirtPlanRule) { "iommu", check_iommu, NULL });
        if (r < 0)
                return r;
        if (iovirt_plan_refusal(p)) {      /* no group to judge */
                *ret = TAKE_PTR(p);
                return 0;
        }
        r = plan_steps(p, in, ctx.verdict);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(builtin_rules) + n_extra; i++) {
                r = plan_run_rule(p, &ctx, i < ELEMENTSOF(builtin_rules) ? &builtin_rules[i]
                                                                          : &extra[i - ELEMENTSOF(builtin_rules)]);
                if (r < 0)
                        return r;
        }
        p->done = held_by_consumer(&ctx);
        *ret = TAKE_PTR(p);
        return 0;
}

const IovirtPlanCheck *iovirt_checks_refusal(const IovirtPlanCheck *c, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (c[i].status == IOVIRT_PLAN_FAIL)
                        return &c[i];
        return NULL;
}

const IovirtPlanCheck *iovirt_plan_refusal(const IovirtPlan *p) {
        return iovirt_checks_refusal(p->checks, p->n_checks);
}

char *iovirt_checks_refusal_text(const IovirtPlanCheck *c, size_t n) {
        IovirtText t = {};
        for (size_t i = 0; i < n; i++)
                if (c[i].status == IOVIRT_PLAN_FAIL) {
                        (void) iovirt_text_line(&t, c[i].message);
                        if (c[i].override)
                                (void) iovirt_text_add(&t, " (%s allows it)", c[i].override);
                }
        return iovirt_text_take(&t);
}

char *iovirt_plan_refusal_text(const IovirtPlan *p) {
        return iovirt_checks_refusal_text(p->checks, p->n_checks);
}

static json_object *string_or_null(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

json_object *iovirt_checks_to_json(const IovirtPlanCheck *checks, size_t n) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
                const IovirtPlanCheck *k = &checks[i];
                json_object *c = json_object_new_object();
                json_object_object_add(c, "id", json_object_new_string(k->id));
                json_object_object_add(c, "status", json_object_new_string(iovirt_plan_status_name(k->status)));
                json_object_object_add(c, "reason", string_or_null(iovirt_reason_name(k->reason)));
                json_object_object_add(c, "message", json_object_new_string(k->message));
                json_object_object_add(c, "override", string_or_null(k->override));
                json_object_array_add(a, c);
        }
        return a;
}

json_object *iovirt_plan_to_json(const IovirtPlan *p) {
        json_object *o = json_object_new_object(), *steps = json_object_new_array(),
                    *staying = json_object_new_array(), *checks = iovirt_checks_to_json(p->checks, p->n_checks);
        json_object_object_add(o, "consumer", json_object_new_string(p->consumer));
        json_object_object_add(o, "group", p->group >= 0 ? json_object_new_int(p->group) : NULL);
        json_object_object_add(o, "done", json_object_new_boolean(p->done));
        for (size_t i = 0; i < p->n_steps; i++) {
                json_object *s = json_object_new_object();
                json_object_object_add(s, "address", json_object_new_string(p->steps[i].address));
                json_object_object_add(s, "from", string_or_null(p->steps[i].from));
                json_object_object_add(s, "to", string_or_null(p->steps[i].to));
                json_object_object_add(s, "moves", json_object_new_boolean(p->steps[i].moves));
                json_object_array_add(steps, s);
        }
        for (size_t i = 0; i < p->n_staying; i++)
                json_object_array_add(staying, json_object_new_string(p->staying[i]));
        json_object_object_add(o, "functions", steps);
        json_object_object_add(o, "staying", staying);
        json_object_object_add(o, "checks", checks);
        json_object_object_add(o, "allowed", json_object_new_boolean(!iovirt_plan_refusal(p)));
        /* null: root keeps /dev/vfio/N */
        json_object_object_add(o, "node_owner", p->give_node_to ? json_object_new_int64(p->give_node_to) : NULL);
        return o;
}
