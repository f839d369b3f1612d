/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

/* The bouncer: decides whether the sender of a method call may do what it
 * asks.  One table lists every method that changes something: its polkit
 * action, how it is validated and planned (prepare), and what it does once
 * authorized (act).  Each of them is exported with method_guarded() as its
 * handler; a method so exported but missing from the table is denied.
 * Every other method of the vtable is read-only.
 *
 * The order for a guarded call: prepare validates the arguments and makes
 * the plan, and answers its refusals (and requests with nothing to do) at
 * once, without polkit: reading is open to everyone, so this tells nobody
 * anything new, and nobody types a password to be told "leaky".  Only a
 * call that would be carried out is authorized; act then plans again, since
 * the host may have changed while the password was typed.
 *
 * uid 0 is always allowed; everyone else is asked about through polkit's
 * CheckAuthorization, asynchronously, so that a password prompt never
 * blocks other clients.  With no polkit on the bus, only uid 0 is allowed:
 * fail closed. */

typedef struct Bouncer Bouncer;

/* What to run once the call is authorized; it replies to m itself (now or
 * later), or returns a negative errno / sets error. */
typedef int (*BouncerAct)(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* Validates and plans: 0 to go on to authorization (with the call's
 * interactive flag), 1 when it has replied already, or an error. */
typedef int (*BouncerPrepare)(sd_bus_message *m, void *userdata, bool *interactive, sd_bus_error *error);
/* A stricter action for what this caller asks (a release of another
 * uid's assignment), or NULL for the table's */
typedef const char *(*BouncerEscalate)(sd_bus_message *m, void *userdata, uid_t uid);

typedef struct GuardedMethod {
        const char *interface;
        const char *method;
        const char *action;          /* polkit */
        BouncerPrepare prepare;
        BouncerAct act;
        BouncerEscalate escalate;    /* NULL: the action is the action */
} GuardedMethod;

extern const GuardedMethod guarded_methods[];
extern const size_t n_guarded_methods;

const GuardedMethod *bouncer_find(const char *interface, const char *method);

int bouncer_new(sd_bus *bus, Bouncer **ret);
Bouncer *bouncer_free(Bouncer *b);
/* Answers every call still waiting for polkit with Busy: iovirtd is
 * stopping, and nobody should be left waiting for nothing. */
void bouncer_stop(Bouncer *b);

/* The vtable handler of every guarded method; userdata is the Manager.
 * prepare, then polkit for the method's action, then act: nothing else
 * reaches an act. */
int method_guarded(sd_bus_message *m, void *userdata, sd_bus_error *error);
