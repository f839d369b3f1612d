/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "iovirt-guard.h"
#include "iovirt-host.h"
#include "iovirt-state.h"
#include "iovirt-variant.h"
#include "iovirt-verdict.h"

/* The plan of an assignment: a pure function of the host model, its
 * verdicts, the guard's scan of what the host uses, the recorded state and
 * the request.  It says which functions move from which driver, which
 * bridges stay, and carries every check with its verdict.  No I/O here.
 *
 * Checks are small named functions, one per rule, each giving a status, a
 * reason (an IovirtReason, never a D-Bus name: the daemon maps reasons to
 * errors in one table) and a sentence.  Layers above src/ (policy: pools,
 * the pinned-memory budget, NUMA) add their own rules by handing the
 * builder a list of IovirtPlanRule; src/ never calls up into them.
 *
 * A plan holds every check that applies, or is not returned: a check that
 * cannot be built (out of memory) fails the whole plan with -ENOMEM. */

typedef enum IovirtAccept {
        IOVIRT_ACCEPT_LEAKY = 1 << 0,     /* take a leaky group anyway (--accept-leaky) */
} IovirtAccept;

typedef enum IovirtPlanStatus {
        IOVIRT_PLAN_PASS,
        IOVIRT_PLAN_WARN,                 /* allowed, with something the operator should know */
        IOVIRT_PLAN_ACCEPTED,             /* would fail, but the request accepts it */
        IOVIRT_PLAN_FAIL,
        _IOVIRT_PLAN_STATUS_MAX,
} IovirtPlanStatus;

/* Why a check said what it said.  Each has a stable name (iovirt_reason_name)
 * for JSON and scripts; the daemon maps the failing ones to D-Bus errors. */
typedef enum IovirtReason {
        IOVIRT_REASON_NONE,
        IOVIRT_REASON_NO_IOMMU,           /* the IOMMU is off, or does not cover the device */
        IOVIRT_REASON_NO_SUCH_GROUP,
        IOVIRT_REASON_IN_USE,             /* assigned to a consumer */
        IOVIRT_REASON_ALREADY_ASSIGNED,   /* to this very consumer: nothing to do */
        IOVIRT_REASON_BUSY,               /* a transaction on the group is in progress */
        IOVIRT_REASON_RELEASE_UNFINISHED, /* a release left functions behind; release again */
        IOVIRT_REASON_NOTHING_TO_ASSIGN,  /* the group holds only bridges */
        IOVIRT_REASON_NOT_ISOLATED,       /* leaky */
        IOVIRT_REASON_ISOLATION_UNKNOWN,
        IOVIRT_REASON_HOST_CRITICAL,      /* the host uses it */
        IOVIRT_REASON_HOST_UNREADABLE,    /* the guard could not look */
        IOVIRT_REASON_NO_RESET,           /* a warning: the next VM sees the last one's state */
        IOVIRT_REASON_SRIOV_CLAIMED,      /* a PF and its VFs: while one side is assigned, the other is not free */
        IOVIRT_REASON_SRIOV_ENABLED,      /* a PF with VFs enabled: vfio-pci refuses it */
        IOVIRT_REASON_INVALID,            /* the request cannot be met as asked (a count above the total) */
        IOVIRT_REASON_DRIVER_UNKNOWN,     /* the VFIO driver could not be chosen (modules.alias unreadable) */
        IOVIRT_REASON_NOT_VFIO_DRIVER,    /* --driver names a driver that is not a VFIO driver */
        /* policy's (policy/iovirt-policy-check.h) */
        IOVIRT_REASON_POLICY_UNREADABLE,  /* the policy files could not be read: every assignment is refused */
        IOVIRT_REASON_NOT_IN_POOL,        /* pools are defined, and none holds the device */
        IOVIRT_REASON_NOT_ADMITTED,       /* the device's pool does not admit this consumer or caller */
        IOVIRT_REASON_NOT_OWNER,          /* a pid: consumer of another uid */
        IOVIRT_REASON_CONSUMER_GONE,      /* a pid: consumer that does not exist (or exited) */
        IOVIRT_REASON_NUMA_REMOTE,        /* the device is on another node (or socket) than the consumer */
        IOVIRT_REASON_NUMA_UNKNOWN,       /* the device's node, or where the consumer runs, is unknown */
        IOVIRT_REASON_OVER_BUDGET,        /* the host-wide pinned-memory budget */
        IOVIRT_REASON_MEMORY_CGROUP,      /* the consumer's memory cgroup cannot hold what it will pin */
        IOVIRT_REASON_FACTS_UNREADABLE,   /* what the policy needs (MemTotal, NUMA nodes, a process) could not be read */
        _IOVIRT_REASON_MAX,
} IovirtReason;

const char *iovirt_plan_status_name(IovirtPlanStatus s);
const char *iovirt_reason_name(IovirtReason r);

/* A check's id and override are not copied: they must be static strings,
 * as they outlive the rule that set them (a plan lives until its
 * transaction ends). */
typedef struct IovirtPlanCheck {
        const char *id;                   /* "iommu", "ownership", "sriov-claim", "whole-group", "driver",
                                           * "isolation", "host-critical", "host-readable", "reset" */
        IovirtPlanStatus status;
        IovirtReason reason;
        char *message;
        const char *override;             /* what would allow it; NULL: nothing may */
} IovirtPlanCheck;

/* The VFIO driver one function goes to, as the caller chose it before
 * planning (iovirt_variant_for_device_in(), or iovirt_variant_asked() for
 * --driver): the plan reads no file. */
typedef struct IovirtPlanDriver {
        size_t device;                    /* an endpoint of the group, in host->devices */
        int error;                        /* < 0: no driver could be chosen (choice.why says why): -EINVAL for
                                           * a --driver that is no VFIO driver, else what could not be read */
        bool asked;                       /* --driver NAME */
        IovirtVariantChoice choice;
} IovirtPlanDriver;

/* What was asked, and everything the plan may look at. */
typedef struct IovirtPlanInput {
        const IovirtHost *host;
        const IovirtVerdicts *verdicts;
        const IovirtUsage *usage;         /* the guard's scan */
        const IovirtState *state;
        const char *consumer;
        unsigned accept;                  /* IovirtAccept */
        int group;                        /* -1: the target has none */
        size_t device;                    /* the device named, or IOVIRT_NONE for group:N */
        bool group_locked;                /* a transaction on the group is running now */
        bool libvirt_managed;             /* the consumer's libvirt binds it (a managed='yes' hostdev, checked
                                           * at prepare begin): its own libvirt record is no refusal */
        /* The VFIO driver of each endpoint of the group.  NULL: none was
         * chosen, and every function goes to vfio-pci (hand-built plans);
         * otherwise an endpoint without one fails the plan. */
        const IovirtPlanDriver *drivers;
        size_t n_drivers;
} IovirtPlanInput;

/* What a check sees: the input and the group it is about. */
typedef struct IovirtPlanContext {
        const IovirtPlanInput *in;
        const IovirtGroup *group;
        const IovirtGroupVerdict *verdict;
        const IovirtRecord *record;       /* the group's record; NULL: not assigned */
} IovirtPlanContext;

/* One rule.  Fills ret (its id is set already) with iovirt_check_set() and
 * returns 1, returns 0 when it has nothing to say, or a negative errno. */
typedef int (*IovirtCheckFn)(const IovirtPlanContext *ctx, void *userdata, IovirtPlanCheck *ret);

typedef struct IovirtPlanRule {
        const char *id;
        IovirtCheckFn check;
        void *userdata;
} IovirtPlanRule;

/* Sets the verdict of a check; 1, or -ENOMEM when the sentence cannot be made. */
int iovirt_check_set(IovirtPlanCheck *c, IovirtPlanStatus status, IovirtReason reason, const char *override,
                     const char *fmt, ...) _printf_(5, 6);

typedef struct IovirtPlanStep {
        char address[IOVIRT_ADDRESS_MAX];
        char *from;                       /* its driver now; NULL: none */
        char *to;                         /* the VFIO driver it goes to: vfio-pci or a variant driver; NULL
                                           * when none could be chosen (the plan is refused) */
        char *module;                     /* what loads it, when it is not there (modprobe's argument) */
        bool moves;                       /* false: already on it */
} IovirtPlanStep;

typedef struct IovirtPlan {
        char *consumer;
        int group;                        /* -1: the target has none */
        bool done;                        /* the consumer holds the group already: nothing to do */
        IovirtPlanStep *steps;            /* every endpoint of the group */
        size_t n_steps;
        char **staying;                   /* bridges of the group: they keep their drivers */
        size_t n_staying;
        IovirtPlanCheck *checks;
        size_t n_checks, allocated_checks;
        /* who the group goes to, recorded with it: the caller fills it in
         * before the plan is executed (policy's, not a check's) */
        IovirtHolder holder;
        uint32_t give_node_to;            /* /dev/vfio/N's new owner (a plain QEMU's user); 0: root keeps it */
        bool libvirt_attach;               /* a libvirt domain's pool device: its record says to attach it
                                           * once the domain runs (IovirtRecord) */
} IovirtPlan;

IovirtPlan *iovirt_plan_free(IovirtPlan *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(IovirtPlan *, iovirt_plan_free);

/* What a user typed as TARGET: "group:N", one VF as "PF#N", or anything
 * iovirt_host_lookup() takes.  Sets *group (-1 when the device has none) and *device (IOVIRT_NONE
 * for a group).  -ENODEV / -EINVAL with a sentence in *reason. */
int iovirt_target_resolve(const IovirtHost *h, const char *target, int *group, size_t *device, char **reason);

/* The built-in checks, then extra (policy's), in order.  Once the IOMMU
 * check fails there is no group to judge, and the plan ends there. */
int iovirt_plan_assign(const IovirtPlanInput *in, const IovirtPlanRule *extra, size_t n_extra, IovirtPlan **ret);

/* Adds a passed check saying why the caller chose this plan among
 * several (id static, as a rule's): "choice" */
int iovirt_plan_add_check(IovirtPlan *p, const char *id, const char *message);

/* The first failed check, or NULL when the plan may be executed. */
const IovirtPlanCheck *iovirt_plan_refusal(const IovirtPlan *p);
/* The same for any list of checks (SR-IOV plans have theirs) */
const IovirtPlanCheck *iovirt_checks_refusal(const IovirtPlanCheck *c, size_t n);
char *iovirt_checks_refusal_text(const IovirtPlanCheck *c, size_t n);
/* [{"id","status","reason","message","override"}] */
json_object *iovirt_checks_to_json(const IovirtPlanCheck *c, size_t n);
/* Every failed check's message, one per line, with what would allow it;
 * NULL when none failed (or out of memory: check iovirt_plan_refusal). */
char *iovirt_plan_refusal_text(const IovirtPlan *p);

/* {"consumer","group","done","functions":[{"address","from","to","moves"}],"staying":[..],
 *  "checks":[{"id","status","reason","message","override"}],"allowed":bool,"node_owner":uid|null} */
json_object *iovirt_plan_to_json(const IovirtPlan *p);
