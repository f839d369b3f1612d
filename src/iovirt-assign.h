/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "iovirt-guard.h"
#include "iovirt-host.h"
#include "iovirt-state.h"
#include "iovirt-verdict.h"

/* Assignment: plan, then act.  A plan is a pure function of the host model,
 * the verdicts, the host's own use of its devices and the state: which
 * functions move from which driver, and every check with its verdict.  Only
 * a plan without a failed check is executed, as one transaction whose
 * intent is on disk before the first write to sysfs. */

typedef enum IovirtAccept {
        IOVIRT_ACCEPT_LEAKY = 1 << 0,     /* take a leaky group anyway (--accept-leaky) */
} IovirtAccept;

typedef enum IovirtPlanStatus {
        IOVIRT_PLAN_PASS,
        IOVIRT_PLAN_WARN,                 /* allowed, with something the operator should know */
        IOVIRT_PLAN_ACCEPTED,             /* would fail, but the request accepts it */
        IOVIRT_PLAN_FAIL,
} IovirtPlanStatus;

typedef struct IovirtPlanCheck {
        const char *id;                   /* "iommu", "ownership", "whole-group", "isolation", "host-critical", "reset" */
        IovirtPlanStatus status;
        char *message;
        const char *error;                /* the D-Bus error name when it fails */
        const char *override;             /* what would allow it; NULL: nothing may */
} IovirtPlanCheck;

typedef struct IovirtPlanStep {
        char address[IOVIRT_ADDRESS_MAX];
        char *from;                       /* its driver now; NULL: none */
        bool moves;                       /* false: already on vfio-pci */
} IovirtPlanStep;

typedef struct IovirtPlan {
        char *consumer;
        int group;                        /* -1: the target has none */
        IovirtPlanStep *steps;            /* every endpoint of the group */
        size_t n_steps;
        char **staying;                   /* bridges of the group: they keep their drivers */
        size_t n_staying;
        IovirtPlanCheck *checks;
        size_t n_checks;
} IovirtPlan;

IovirtPlan *iovirt_plan_free(IovirtPlan *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(IovirtPlan *, iovirt_plan_free);

const char *iovirt_plan_status_name(IovirtPlanStatus s);

/* What a user typed as TARGET: "group:N" or anything iovirt_host_lookup()
 * takes.  Sets *group (-1 when the device has none) and *device (IOVIRT_NONE
 * for a group).  -ENODEV / -EINVAL with a sentence in *reason. */
int iovirt_target_resolve(const IovirtHost *h, const char *target, int *group, size_t *device, char **reason);

int iovirt_plan_assign(const IovirtHost *h, const IovirtVerdicts *v, const IovirtUsage *usage,
                       const IovirtState *state, int group, size_t device, const char *consumer, unsigned accept,
                       IovirtPlan **ret);

/* The first failed check, or NULL when the plan may be executed. */
const IovirtPlanCheck *iovirt_plan_refusal(const IovirtPlan *p);
/* Every failed check's message, one per line; NULL when none failed. */
char *iovirt_plan_refusal_text(const IovirtPlan *p);

/* {"consumer","group","functions":[{"address","from","to","moves"}],"staying":[..],
 *  "checks":[{"id","status","message","override"}],"allowed":bool} */
json_object *iovirt_plan_to_json(const IovirtPlan *p);

/* How long the kernel took to move each function in one transaction (to
 * vfio-pci, or back), as the daemon logs it for the operator. */
typedef struct IovirtMove {
        char address[IOVIRT_ADDRESS_MAX];
        char *to;                /* the driver it went to; NULL: left unbound */
        uint64_t usec;
} IovirtMove;

typedef struct IovirtMoves {
        IovirtMove *moves;
        size_t n, allocated;
} IovirtMoves;

void iovirt_moves_clear(IovirtMoves *m);

/* Executes an allowed plan.  On success the group's record is in state (and
 * on disk) as assigned.  On failure every function touched is put back, the
 * record is gone, and *reason says what failed and what could not be put
 * back. */
int iovirt_assign_execute(const IovirtPlan *p, IovirtState *state, const char *dir, IovirtMoves *moves,
                          char **reason);

/* Gives the group back to the host: every function to its recorded driver
 * and driver_override.  A function that does not come back keeps the record
 * (phase releasing, only those functions), so that a retry can finish.
 * *notes gets what the operator should know (no reset method, drift).
 * Both record each function's move in moves, when it is not NULL. */
int iovirt_release_execute(const IovirtHost *h, IovirtState *state, const char *dir, int group, IovirtMoves *moves,
                           char **notes, char **reason);

/* At start-up: finishes or rolls back what a crash cut short, ends
 * assignments of an earlier boot, and rebuilds what it can of damaged
 * records.  Each thing done is one line in *notes. */
int iovirt_state_reconcile(const IovirtHost *h, IovirtState *state, const char *dir, const char *boot_id,
                           char ***notes, size_t *n_notes);

/* The kernel's boot id, which tells one boot from the next */
int iovirt_boot_id(char **ret);

/* {"assignments":[{"group","consumer","phase","since_usec",
 *   "functions":[{"address","original_driver","original_driver_override","driver"}],"drift":[..]}]}
 * with the live drivers from the model: drift is a function not on vfio-pci. */
json_object *iovirt_assignments_to_json(const IovirtHost *h, const IovirtState *state);
