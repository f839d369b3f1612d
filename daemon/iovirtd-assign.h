/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

#include "iovirt-plan.h"
#include "iovirt-transaction.h"
#include "iovirtd-manager.h"
#include "iovirtd-policy.h"

/* Assignment over the bus: PlanAssign, ListAssignments and
 * DescribeAssignments (read-only); Assign, Release and ReleaseConsumer,
 * each a prepare_*() that validates, plans and answers refusals before
 * anyone is asked for a password, and an act_*() that runs once the
 * caller is authorized, plans again and starts the transaction on its own
 * thread (iovirtd-job.h).  The bouncer's table names them. */

/* Reads the state records and reconciles them with the host: call after
 * the first manager_refresh(), before taking the bus name. */
int manager_load_state(Manager *m);

/* The D-Bus error a failed check's reason is answered with: the one table */
const char *manager_reason_error(IovirtReason reason);

int method_plan_assign(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_list_assignments(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_describe_assignments(sd_bus_message *msg, void *userdata, sd_bus_error *error);

int prepare_assign(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error);
int act_assign(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int prepare_release(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error);
int act_release(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int prepare_release_consumer(sd_bus_message *msg, void *userdata, bool *interactive, sd_bus_error *error);
int act_release_consumer(sd_bus_message *msg, void *userdata, sd_bus_error *error);
/* The polkit action a release by uid needs: release-any when a group it
 * names was assigned by another uid (or by an unknown one: root's) */
const char *escalate_release(sd_bus_message *msg, void *userdata, uid_t uid);
const char *escalate_release_consumer(sd_bus_message *msg, void *userdata, uid_t uid);

/* For transactions made of several assignments (a domain's hostdevs,
 * iovirtd-domain.c): the plan for target as Assign makes it, with the
 * policy's checks (facts cleared by the caller) and how (NULL: as Assign);
 * the plan's document as
 * Assign answers it; the placeholder record a running job holds (put in
 * the state); settling a group's outcome (NULL: dropped) and the model;
 * the kernel's times; a release answering msg. */
/* The caller's uid (effective, else real), from its bus credentials */
int assign_caller_uid(sd_bus_message *msg, uint32_t *ret);
typedef struct AssignPlanHow {
        const int *exclude;              /* groups a pool or range must not offer (the request took them) */
        size_t n_exclude;
        bool libvirt_managed;            /* a managed='yes' hostdev: its libvirt binds it (IovirtPlanInput) */
} AssignPlanHow;
int assign_plan(Manager *m, const char *target, const char *consumer, const PolicyAsk *ask, const AssignPlanHow *how,
                PolicyFacts *facts, IovirtPlan **ret, sd_bus_error *error);
json_object *assign_plan_document(const IovirtPlan *p);
int assign_placeholder(Manager *m, const IovirtPlan *p);
void assign_settle(Manager *m, const IovirtPlan *p, IovirtRecord *result);
void assign_log_moves(const IovirtMoves *moves);
int manager_start_release(Manager *m, sd_bus_message *msg, const int *groups, size_t n, sd_bus_error *error);

/* The groups consumer holds (*ret, *n); Busy when one is in a transaction */
int manager_consumer_groups(Manager *m, const char *consumer, int **ret, size_t *n, sd_bus_error *error);

/* Whether consumer holds a group */
bool manager_consumer_holds(Manager *m, const char *consumer);
/* Gives the groups back with no request to answer (a consumer's exit) */
int manager_release_groups(Manager *m, const int *groups, size_t n);
