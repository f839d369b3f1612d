/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "iovirtd-manager.h"

/* Assignment over the bus: PlanAssign (read-only), Assign, Release,
 * ReleaseConsumer (each behind its polkit action), ListAssignments and
 * DescribeAssignments. */

/* Reads the state records and reconciles them with the host: call after
 * the first manager_refresh(), before taking the bus name. */
int manager_load_state(Manager *m);

int method_plan_assign(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_assign(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_release(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_release_consumer(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_list_assignments(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_describe_assignments(sd_bus_message *msg, void *userdata, sd_bus_error *error);
