/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

/* The bouncer: decides whether the sender of a method call may do what it
 * asks.  One table maps each mutating method to its polkit action; a method
 * missing from it is denied.  uid 0 is always allowed; everyone else is
 * asked about through polkit's CheckAuthorization, asynchronously, so that a
 * password prompt never blocks other clients.  With no polkit on the bus,
 * only uid 0 is allowed: fail closed. */

typedef struct Bouncer Bouncer;

/* What to run once the call is authorized; it replies to m itself. */
typedef int (*BouncerAct)(sd_bus_message *m, void *userdata, sd_bus_error *error);

int bouncer_new(sd_bus *bus, Bouncer **ret);
Bouncer *bouncer_free(Bouncer *b);

/* The polkit action guarding a method, or NULL (denied). */
const char *bouncer_action_for(const char *method);

/* Checks the sender of m for the action of its method.  Returns 1 when act
 * ran (allowed at once), 0 when the answer is pending (act or an error reply
 * follows later), negative on failure (error is set). */
int bouncer_check(Bouncer *b, sd_bus_message *m, bool interactive, BouncerAct act, void *userdata,
                  sd_bus_error *error);
